#!/usr/bin/env python3
"""Re-check the committed oracle fixtures in a fresh process.

For every tests/fixtures/hf/<variant>/:
  * reload the checkpoint with transformers (float32, eager), recompute logits for
    oracle["tokens"] and the greedy continuation; logits must equal logits.npy (|d| <= 1e-6)
    and the greedy ids must match exactly;
  * recompute the logits with a small float64 NUMPY reference forward pass written from the
    architecture definitions (no transformers code), reading config.json (both the 4.x and
    5.x layouts) and the safetensors files directly; must agree with logits.npy to 1e-4.
  * gpt2_tokenizer: tokenizer.json must encode prompt_text to prompt_tokens.
For tests/fixtures/gguf/:
  * quants.gguf: every tensor dequantized with gguf.quants must equal quants_expected/*.npy;
  * tiny_llama.gguf: numpy forward from the GGUF tensors (own un-permutation of attn_q/attn_k)
    and transformers' GGUF loader must both reproduce tiny_llama_logits.npy.
For tests/fixtures/smollm2/ (skipped if the GGUF is absent, or with --no-smollm2):
  * transformers recomputes prompt_logits.npy and the greedy continuation.

Rerun (from the repo root):
    python3 tests/oracle/verify_fixtures.py [--no-smollm2]
"""
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle_common as C  # noqa: E402

FIX = os.path.join(C.REPO, "tests", "fixtures")


# ----------------------------------------------------------------------------- numpy reference

def rms_norm(x, g, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * g


def layer_norm(x, g, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def softmax(x):
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


def rope_inv_freq(head_dim, theta, scaling):
    inv = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    if not scaling or scaling.get("rope_type", scaling.get("type")) in (None, "default"):
        return inv
    assert scaling.get("rope_type", scaling.get("type")) == "llama3", scaling
    factor = scaling["factor"]
    lo, hi = scaling["low_freq_factor"], scaling["high_freq_factor"]
    orig = scaling["original_max_position_embeddings"]
    out = np.empty_like(inv)
    for i, f in enumerate(inv):
        wavelen = 2 * math.pi / f
        if wavelen < orig / hi:
            out[i] = f
        elif wavelen > orig / lo:
            out[i] = f / factor
        else:
            s = (orig / wavelen - lo) / (hi - lo)
            out[i] = (1 - s) * f / factor + s * f
    return out


def rope_rotate_half(x, pos, inv_freq):
    # x: [T, H, D]; HF convention: pairs (i, i + D/2)
    ang = pos[:, None] * inv_freq[None, :]           # [T, D/2]
    cos = np.cos(np.concatenate([ang, ang], -1))[:, None, :]
    sin = np.sin(np.concatenate([ang, ang], -1))[:, None, :]
    half = x.shape[-1] // 2
    rot = np.concatenate([-x[..., half:], x[..., :half]], -1)
    return x * cos + rot * sin


def causal_attention(q, k, v):
    # q [T, H, D], k/v [T, KV, D]
    T, H, D = q.shape
    rep = H // k.shape[1]
    k = np.repeat(k, rep, axis=1)
    v = np.repeat(v, rep, axis=1)
    s = np.einsum("thd,shd->hts", q, k) / math.sqrt(D)
    mask = np.triu(np.ones((T, T), dtype=bool), 1)
    s[:, mask] = -np.inf
    p = softmax(s)
    return np.einsum("hts,shd->thd", p, v).reshape(T, H * D)


def llama_forward(w, cfg, tokens):
    """w: dict of HF-named float64 arrays. cfg: parsed hyper-parameters."""
    H, KV, D = cfg["n_head"], cfg["n_kv"], cfg["head_dim"]
    eps = cfg["eps"]
    inv = rope_inv_freq(D, cfg["theta"], cfg["scaling"])
    T = len(tokens)
    pos = np.arange(T, dtype=np.float64)
    x = w["model.embed_tokens.weight"][tokens]
    for i in range(cfg["n_layer"]):
        p = f"model.layers.{i}."

        def lin(name, h):
            y = h @ w[p + name + ".weight"].T
            b = w.get(p + name + ".bias")
            return y if b is None else y + b
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = lin("self_attn.q_proj", h).reshape(T, H, D)
        k = lin("self_attn.k_proj", h).reshape(T, KV, D)
        v = lin("self_attn.v_proj", h).reshape(T, KV, D)
        q = rope_rotate_half(q, pos, inv)
        k = rope_rotate_half(k, pos, inv)
        x = x + lin("self_attn.o_proj", causal_attention(q, k, v))
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        g = lin("mlp.gate_proj", h)
        x = x + lin("mlp.down_proj", g / (1 + np.exp(-g)) * lin("mlp.up_proj", h))
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return x @ head.T


def gelu_new(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def gpt2_forward(w, cfg, tokens):
    E, H, eps = cfg["n_embd"], cfg["n_head"], cfg["layer_norm_epsilon"]
    D = E // H
    T = len(tokens)
    x = w["wte.weight"][tokens] + w["wpe.weight"][np.arange(T)]
    for i in range(cfg["n_layer"]):
        p = f"h.{i}."
        a = layer_norm(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps)
        qkv = a @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]   # Conv1D [in, out]
        q, k, v = (qkv[:, j * E:(j + 1) * E].reshape(T, H, D) for j in range(3))
        x = x + causal_attention(q, k, v) @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        m = layer_norm(x, w[p + "ln_2.weight"], w[p + "ln_2.bias"], eps)
        m = gelu_new(m @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"])
        x = x + m @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
    x = layer_norm(x, w["ln_f.weight"], w["ln_f.bias"], eps)
    return x @ w["wte.weight"].T


def load_safetensors_dir(d):
    from safetensors.torch import load_file
    out = {}
    for f in sorted(os.listdir(d)):
        if f.endswith(".safetensors"):
            for k, v in load_file(os.path.join(d, f)).items():
                out[k] = v.to(torch.float64).numpy()
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        wm = json.load(open(idx))["weight_map"]
        assert set(wm) == set(out), "index.json weight_map does not match shard contents"
    return out


def parse_llama_cfg(cfg):
    if "rope_parameters" in cfg:
        rp = dict(cfg["rope_parameters"])
        theta = rp.pop("rope_theta")
        scaling = rp
    else:
        theta = cfg.get("rope_theta", 10000.0)
        scaling = cfg.get("rope_scaling")
    H = cfg["num_attention_heads"]
    return {"n_head": H, "n_kv": cfg.get("num_key_value_heads", H),
            "head_dim": cfg.get("head_dim") or cfg["hidden_size"] // H,
            "eps": cfg["rms_norm_eps"], "theta": theta, "scaling": scaling,
            "n_layer": cfg["num_hidden_layers"]}


def numpy_reference(d, tokens):
    cfg = json.load(open(os.path.join(d, "config.json")))
    w = load_safetensors_dir(d)
    if cfg["model_type"] == "gpt2":
        w = {(k[len("transformer."):] if k.startswith("transformer.") else k): v
             for k, v in w.items()}
        return gpt2_forward(w, cfg, np.asarray(tokens))
    if cfg.get("tie_word_embeddings"):
        assert "lm_head.weight" not in w
    return llama_forward(w, parse_llama_cfg(cfg), np.asarray(tokens))


# ----------------------------------------------------------------------------- checks

def check_hf():
    from transformers import AutoModelForCausalLM
    root = os.path.join(FIX, "hf")
    for v in sorted(os.listdir(root)):
        d = os.path.join(root, v)
        o = json.load(open(os.path.join(d, "oracle.json")))
        assert o["variant"] == v
        exp = np.load(os.path.join(d, o["logits_file"]))
        assert exp.dtype == np.float32
        m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
        got = C.logits_of(m, o["tokens"])
        d_hf = float(np.abs(got - exp).max())
        cont = C.greedy(m, o["greedy_prompt"], o["greedy_max_new"])
        ref = numpy_reference(d, o["tokens"])
        d_np = float(np.abs(ref - exp).max())
        same_top1 = bool((ref.argmax(-1) == exp.argmax(-1)).all())
        print(f"hf/{v}: transformers |d| {d_hf:.1e}, numpy-f64 |d| {d_np:.1e}, "
              f"top1 same {same_top1}, greedy ok {cont == o['greedy_continuation']}")
        assert d_hf <= 1e-6 and d_np <= 1e-4 and same_top1
        assert cont == o["greedy_continuation"]
        if v == "gpt2_tokenizer":
            from tokenizers import Tokenizer
            t = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
            assert t.encode(o["prompt_text"], add_special_tokens=False).ids == o["prompt_tokens"]
            assert t.get_vocab_size() == json.load(open(os.path.join(d, "config.json")))["vocab_size"]


def gguf_unpermute(w, n_head):
    rows, cols = w.shape
    return w.reshape(n_head, rows // n_head // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


def check_gguf():
    import gguf
    from gguf import quants
    root = os.path.join(FIX, "gguf")
    meta = json.load(open(os.path.join(root, "quants.json")))
    r = gguf.GGUFReader(os.path.join(root, "quants.gguf"))
    for t in r.tensors:
        e = meta["tensors"][t.name]
        assert t.tensor_type.name == e["ggml_type"] and int(t.tensor_type) == e["ggml_type_id"]
        data = np.asarray(t.data)
        if e["ggml_type"] in ("F32", "F16"):
            got = data.astype(np.float32)
        else:
            got = quants.dequantize(data, t.tensor_type).astype(np.float32)
        exp = np.load(os.path.join(root, e["expected_file"]))
        assert np.array_equal(got.reshape(exp.shape), exp), t.name
    print(f"gguf/quants.gguf: {len(r.tensors)} tensors match")

    o = json.load(open(os.path.join(root, "tiny_llama_oracle.json")))
    exp = np.load(os.path.join(root, o["logits_file"]))
    r = gguf.GGUFReader(os.path.join(root, "tiny_llama.gguf"))
    f = {k: r.fields[k].contents() for k in r.fields if not k.startswith("tokenizer.ggml.")}
    H, KV = f["llama.attention.head_count"], f["llama.attention.head_count_kv"]
    inv_map = {"token_embd.weight": "model.embed_tokens.weight",
               "output_norm.weight": "model.norm.weight", "output.weight": "lm_head.weight"}
    layer = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj",
             "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
             "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
             "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
    w = {}
    for t in r.tensors:
        data = np.asarray(t.data)
        if t.tensor_type.name in ("F32", "F16"):
            a = data.astype(np.float64)
        else:
            a = quants.dequantize(data, t.tensor_type).astype(np.float64)
        ne = [int(x) for x in t.shape]
        a = a.reshape(list(reversed(ne)))
        if t.name in inv_map:
            name = inv_map[t.name]
        else:
            _, i, kind, _ = t.name.split(".")
            name = f"model.layers.{i}.{layer[kind]}.weight"
            if kind == "attn_q":
                a = gguf_unpermute(a, H)
            elif kind == "attn_k":
                a = gguf_unpermute(a, KV)
        w[name] = a
    cfg = {"n_head": H, "n_kv": KV, "head_dim": f["llama.rope.dimension_count"],
           "eps": f["llama.attention.layer_norm_rms_epsilon"], "theta": f["llama.rope.freq_base"],
           "scaling": None, "n_layer": f["llama.block_count"]}
    ref = llama_forward(w, cfg, np.asarray(o["tokens"]))
    d_np = float(np.abs(ref - exp).max())
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(root, gguf_file="tiny_llama.gguf",
                                             dtype=torch.float32,
                                             attn_implementation="eager").eval()
    d_hf = float(np.abs(C.logits_of(m, o["tokens"]) - exp).max())
    cont = C.greedy(m, o["greedy_prompt"], o["greedy_max_new"])
    print(f"gguf/tiny_llama: numpy-f64 |d| {d_np:.1e}, transformers-gguf |d| {d_hf:.1e}, "
          f"greedy ok {cont == o['greedy_continuation']}")
    assert d_np <= 1e-4 and d_hf <= 1e-5 and cont == o["greedy_continuation"]
    assert (ref.argmax(-1) == exp.argmax(-1)).all()


def check_smollm2():
    d = os.path.join(FIX, "smollm2")
    o = json.load(open(os.path.join(d, "oracle.json")))
    import make_smollm2_oracle as S
    if not os.path.exists(S.GGUF_PATH):
        print("smollm2: GGUF not present, skipped")
        return
    m = S.load_model()
    exp = np.load(os.path.join(d, "prompt_logits.npy"))
    got = C.logits_of(m, o["prompt_logits_tokens"])
    cont = C.greedy(m, o["prompt_tokens"], o["greedy_max_new"])
    diff = float(np.abs(got - exp).max())
    print(f"smollm2: prompt logits |d| {diff:.1e}, greedy ok {cont == o['greedy_continuation']}")
    assert diff <= 1e-5 and cont == o["greedy_continuation"]
    tok, _ = S.build_tokenizer(S.GGUF_PATH)
    assert tok.encode(o["prompt_text"], add_special_tokens=False).ids == o["prompt_tokens"]


if __name__ == "__main__":
    torch.set_num_threads(2)
    check_hf()
    check_gguf()
    if "--no-smollm2" not in sys.argv:
        check_smollm2()
    print("all fixtures verified")
