#!/usr/bin/env python3
"""Independent oracle fixtures for the GGUF reader: quant formats and a tiny Llama.

Produces (in tests/fixtures/gguf/):
  quants.gguf             GGUF v3, arch "quanttest": one [4, 256] tensor per ggml type
                          (numpy shape [4, 256] = GGUF ne [256, 4]), named t_<type>
                          (t_f32, t_f16, t_bf16, t_q8_0, t_q4_0, t_q4_1, t_q5_0, t_q5_1,
                          t_q2_k, t_q3_k, t_q4_k, t_q5_k, t_q6_k), plus metadata KVs of every
                          scalar / array type.
  quants_expected/<name>.npy
                          float32 [4, 256]: gguf.quants.dequantize(raw bytes, type) (for F32 / F16
                          / BF16: the stored values widened to float32).
  quants.json             per tensor: ggml type name + id, numpy shape, ne, byte size, data
                          offset; and the expected metadata KVs.
  tiny_llama.gguf         tiny random Llama (GQA 4 heads / 2 kv heads, head_dim 16, 2 layers,
                          random RMSNorm gains) converted like llama.cpp's convert_hf_to_gguf.py
                          does for LlamaForCausalLM, with an embedded GPT-2-style BPE tokenizer.
  tiny_llama_oracle.json  tokens, prompt_text / prompt_tokens, greedy prompt / continuation, ...
  tiny_llama_logits.npy   float32 [len(tokens), vocab] logits of the HF model (UNPERMUTED weights)

Quantized tensors: types gguf.quants can quantize (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, BF16) get
random normal data (one row scaled x8 and, for Q4_0, one all-zero block to hit the d == 0
path).  For the K-quants (Q2_K .. Q6_K; gguf-py cannot quantize them) random raw block bytes are
written, with the f16 super-block scale fields (d, and dmin where present) overwritten by
sane finite f16 values; the expected floats are whatever gguf.quants.dequantize makes of them.

tiny_llama conversion (own code, following the documented llama.cpp conventions):
  * metadata: general.architecture = "llama", llama.context_length, llama.embedding_length,
    llama.block_count, llama.feed_forward_length, llama.attention.head_count,
    llama.attention.head_count_kv, llama.rope.freq_base, llama.attention.layer_norm_rms_epsilon,
    llama.rope.dimension_count, llama.vocab_size, general.file_type;
  * tensors: token_embd, blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm,
    ffn_gate, ffn_up, ffn_down}, output_norm, output (all ".weight"); a PyTorch [out, in] matrix
    is written as is, i.e. GGUF ne = [in, out];
  * Q and K rows permuted the llama.cpp way:
        w.reshape(n_head, 2, rows // n_head // 2, cols).swapaxes(1, 2).reshape(rows, cols)
    with n_head = head_count for attn_q and head_count_kv for attn_k (interleaved-pair RoPE in
    GGUF vs. rotate-half RoPE in HF).  Readers must undo it.
  * storage types: everything F32 except blk.0.ffn_up.weight (F16) and blk.1.ffn_down.weight
    (Q8_0); the HF model's weights are replaced by the f16-rounded / Q8_0-dequantized values
    BEFORE computing the expected logits, so the oracle is exact for the stored file.
  * tokenizer: tokenizer.ggml.model "gpt2", tokenizer.ggml.pre "gpt2", tokens, token_type
    (1 normal, 3 control), merges ("a b"), bos/eos = <|endoftext|> (id 0), add_bos_token false.
The file is verified by (a) reading it back with gguf.GGUFReader and un-permuting, and
(b) loading it with transformers (from_pretrained(gguf_file=...), which un-permutes itself) and
comparing logits; transformers' GGUF tokenizer is compared too.

Versions used: transformers 5.24.0, torch 2.15.0, gguf (gguf-py) 0.19.0, tokenizers 0.23.3,
numpy 2.4.6 (recorded in the json files).

Rerun (from the repo root):
    python3 tests/oracle/make_gguf_fixtures.py
"""
import os
import shutil
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle_common as C  # noqa: E402

import gguf  # noqa: E402
from gguf import GGMLQuantizationType as QT  # noqa: E402
from gguf import quants  # noqa: E402

OUT = os.path.join(C.REPO, "tests", "fixtures", "gguf")
SHAPE = (4, 256)


# ----------------------------------------------------------------------------- quants.gguf

def kquant_random_blocks(qt, n_blocks, rng):
    """Random raw K-quant blocks with sane f16 super-block scale fields."""
    block_elems, block_bytes = gguf.GGML_QUANT_SIZES[qt]
    raw = rng.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
    d = rng.uniform(0.002, 0.03, size=n_blocks).astype(np.float16).view(np.uint8).reshape(-1, 2)
    dmin = rng.uniform(0.001, 0.02, size=n_blocks).astype(np.float16).view(np.uint8).reshape(-1, 2)
    # offsets of the f16 fields inside each block (ggml-common.h block layouts)
    if qt in (QT.Q4_K, QT.Q5_K):      # d, dmin, scales[12], (qh[32]), qs[128]
        raw[:, 0:2], raw[:, 2:4] = d, dmin
        layout = {"d": 0, "dmin": 2}
    elif qt == QT.Q2_K:               # scales[16], qs[64], d, dmin
        raw[:, 80:82], raw[:, 82:84] = d, dmin
        layout = {"d": 80, "dmin": 82}
    elif qt == QT.Q3_K:               # hmask[32], qs[64], scales[12], d
        raw[:, 108:110] = d
        layout = {"d": 108}
    elif qt == QT.Q6_K:               # ql[128], qh[64], scales[16] (int8), d
        raw[:, 208:210] = d
        layout = {"d": 208}
    else:
        raise ValueError(qt)
    return raw, layout


def make_quants():
    rng = np.random.default_rng(1234)
    entries = []  # (name, qt, raw_or_array, expected, note)
    x = rng.standard_normal(SHAPE).astype(np.float32)
    x[1] *= 8.0  # one row with larger magnitude

    # plain floats
    entries.append(("t_f32", QT.F32, x.copy(), x.copy(), "random normal"))
    h = x.astype(np.float16)
    entries.append(("t_f16", QT.F16, h, h.astype(np.float32), "random normal rounded to f16"))
    b = quants.quantize(x, QT.BF16)
    entries.append(("t_bf16", QT.BF16, b, quants.dequantize(b, QT.BF16).astype(np.float32),
                    "random normal rounded to bf16 (gguf-py rounding, nearest-even)"))
    # quantizable block types
    for name, qt in (("t_q8_0", QT.Q8_0), ("t_q4_0", QT.Q4_0), ("t_q4_1", QT.Q4_1),
                     ("t_q5_0", QT.Q5_0), ("t_q5_1", QT.Q5_1)):
        data = rng.standard_normal(SHAPE).astype(np.float32)
        data[1] *= 8.0
        note = "gguf.quants.quantize of random normal data (row 1 scaled x8)"
        if qt == QT.Q4_0:
            data[2, :32] = 0.0
            note += "; row 2 first block all zeros (d == 0)"
        q = quants.quantize(data, qt)
        entries.append((name, qt, q, quants.dequantize(q, qt).astype(np.float32), note))
    # K-quants: random raw bytes
    layouts = {}
    for name, qt in (("t_q2_k", QT.Q2_K), ("t_q3_k", QT.Q3_K), ("t_q4_k", QT.Q4_K),
                     ("t_q5_k", QT.Q5_K), ("t_q6_k", QT.Q6_K)):
        n_blocks = SHAPE[0] * SHAPE[1] // 256
        raw, layout = kquant_random_blocks(qt, n_blocks, rng)
        raw = raw.reshape(SHAPE[0], -1)
        exp = quants.dequantize(raw, qt).astype(np.float32)
        assert exp.shape == SHAPE and np.isfinite(exp).all()
        layouts[name] = layout
        entries.append((name, qt, raw, exp,
                        f"random raw block bytes, f16 scale fields at byte offsets {layout} "
                        "set to finite values in [0.001, 0.03]"))

    path = os.path.join(OUT, "quants.gguf")
    w = gguf.GGUFWriter(path, arch="quanttest")
    kvs = {}

    def kv(key, fn, val, vtype, note=None):
        fn(key, val)
        e = {"type": vtype, "value": val}
        if note:
            e["note"] = note
        kvs[key] = e

    kv("test.u8", w.add_uint8, 200, "UINT8")
    kv("test.i8", w.add_int8, -100, "INT8")
    kv("test.u16", w.add_uint16, 60000, "UINT16")
    kv("test.i16", w.add_int16, -30000, "INT16")
    kv("test.u32", w.add_uint32, 4000000000, "UINT32")
    kv("test.i32", w.add_int32, -2000000000, "INT32")
    kv("test.f32", w.add_float32, 0.15625, "FLOAT32")
    kv("test.u64", w.add_uint64, 2 ** 40 + 7, "UINT64")
    kv("test.i64", w.add_int64, -(2 ** 40) - 7, "INT64")
    kv("test.f64", w.add_float64, 3.141592653589793, "FLOAT64")
    kv("test.bool_true", w.add_bool, True, "BOOL")
    kv("test.bool_false", w.add_bool, False, "BOOL")
    kv("test.string", w.add_string, "héllo wörld ✓", "STRING", "UTF-8, non-ASCII")
    # gguf-py's add_string / add_array silently skip empty values: use add_key_value
    kv("test.empty_string",
       lambda k, v: w.add_key_value(k, v, gguf.GGUFValueType.STRING), "", "STRING")
    kv("test.arr_i32", w.add_array, [1, -2, 3, -4], "ARRAY[INT32]")
    kv("test.arr_f32", w.add_array, [0.5, -1.25, 2.0], "ARRAY[FLOAT32]")
    kv("test.arr_str", w.add_array, ["a", "bc", "", "déf"], "ARRAY[STRING]")
    # (gguf-py refuses to write empty arrays, so there is none here)
    for name, qt, data, _exp, _note in entries:
        if qt in (QT.F32, QT.F16):
            w.add_tensor(name, data)
        else:
            w.add_tensor(name, data, raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    # read back and check
    exp_dir = os.path.join(OUT, "quants_expected")
    os.makedirs(exp_dir, exist_ok=True)
    r = gguf.GGUFReader(path)
    info = {}
    by_name = {t.name: t for t in r.tensors}
    data_start = min(int(t.data_offset) for t in r.tensors)
    assert data_start % 32 == 0
    for name, qt, _data, exp, note in entries:
        t = by_name[name]
        assert t.tensor_type == qt, (name, t.tensor_type, qt)
        if qt in (QT.F32, QT.F16):
            got = np.asarray(t.data).astype(np.float32).reshape(SHAPE)
        else:
            got = quants.dequantize(np.asarray(t.data), qt).astype(np.float32).reshape(SHAPE)
        assert np.array_equal(got, exp), name
        np.save(os.path.join(exp_dir, name + ".npy"), exp.astype(np.float32))
        info[name] = {
            "ggml_type": qt.name, "ggml_type_id": int(qt),
            "numpy_shape": list(SHAPE), "ne": [int(v) for v in t.shape],
            "n_bytes": int(t.n_bytes), "data_offset_in_file": int(t.data_offset),
            "offset_in_data_section": int(t.data_offset) - data_start,
            "block_size": gguf.GGML_QUANT_SIZES[qt][0],
            "type_size": gguf.GGML_QUANT_SIZES[qt][1],
            "expected_file": f"quants_expected/{name}.npy",
            "note": note,
        }
        if name in layouts:
            info[name]["f16_scale_offsets_in_block"] = layouts[name]
    # metadata read-back
    for key, e in kvs.items():
        v = r.fields[key].contents()
        if e["type"].startswith("FLOAT32"):
            assert abs(v - e["value"]) < 1e-7
        elif e["type"] == "ARRAY[FLOAT32]":
            assert np.allclose(v, e["value"])
        else:
            assert v == e["value"], (key, v, e["value"])
    meta = {
        "file": "quants.gguf", "gguf_version": 3, "alignment": 32,
        "data_section_offset": data_start,
        "architecture": "quanttest",
        "tensor_count": len(entries),
        "tensors": info, "metadata": kvs,
        "versions": C.versions(),
        "notes": ("Expected values = gguf.quants.dequantize (gguf-py) as float32, row-major "
                  "numpy shape [4, 256] (GGUF ne [256, 4]). GGUF also holds general.architecture "
                  "= quanttest; the KV array element types are those gguf-py picks (python int -> "
                  "INT32, float -> FLOAT32, str -> STRING)."),
    }
    C.write_json(os.path.join(OUT, "quants.json"), meta)
    print("quants.gguf:", os.path.getsize(path), "bytes,", len(entries), "tensors")


# ----------------------------------------------------------------------------- tiny_llama.gguf

def llama_permute(w, n_head):
    rows, cols = w.shape
    return (w.reshape(n_head, 2, rows // n_head // 2, cols)
            .swapaxes(1, 2)
            .reshape(rows, cols))


def llama_unpermute(w, n_head):
    rows, cols = w.shape
    return (w.reshape(n_head, rows // n_head // 2, 2, cols)
            .swapaxes(1, 2)
            .reshape(rows, cols))


HF_TO_GGUF = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
LAYER_MAP = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def gguf_name(hf):
    if hf in HF_TO_GGUF:
        return HF_TO_GGUF[hf]
    parts = hf.split(".")
    assert parts[0] == "model" and parts[1] == "layers", hf
    return f"blk.{int(parts[2])}." + LAYER_MAP[".".join(parts[3:])]


STORE_TYPES = {"blk.0.ffn_up.weight": QT.F16, "blk.1.ffn_down.weight": QT.Q8_0}


def make_tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = C.train_bytelevel_bpe(288)
    tokens_list, merges = C.tokenizer_vocab_and_merges(tok)
    vocab = len(tokens_list)
    eot = tok.token_to_id(C.EOT)
    assert eot == 0
    n_head, n_kv, hidden, n_layer, ff = 4, 2, 64, 2, 128
    head_dim = hidden // n_head
    theta, eps, ctx = 10000.0, 1e-5, 128

    prompt_ids = tok.encode(C.PROMPT_TEXT, add_special_tokens=False).ids
    text = "The capital of France is Paris, and 42 people were there in 2001."
    text_ids = tok.encode(text, add_special_tokens=False).ids
    assert tok.decode(text_ids) == text and tok.decode(prompt_ids) == C.PROMPT_TEXT

    for seed in range(1, 50):
        torch.manual_seed(seed)
        cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=ff,
                          num_hidden_layers=n_layer, num_attention_heads=n_head,
                          num_key_value_heads=n_kv, max_position_embeddings=ctx,
                          rms_norm_eps=eps, tie_word_embeddings=False,
                          bos_token_id=eot, eos_token_id=eot,
                          rope_parameters={"rope_type": "default", "rope_theta": theta})
        cfg._attn_implementation = "eager"
        model = LlamaForCausalLM(cfg).eval()
        C.randomize_(model, seed)

        # weights as stored (rounded through their storage type), in HF orientation
        stored = {}   # gguf name -> (array to write, qtype)
        with torch.no_grad():
            for hf_name, p in model.state_dict().items():
                g = gguf_name(hf_name)
                w = p.detach().numpy().astype(np.float32)
                qt = STORE_TYPES.get(g, QT.F32)
                if qt == QT.F16:
                    w_eff = w.astype(np.float16).astype(np.float32)
                elif qt == QT.Q8_0:
                    assert not (g.endswith("attn_q.weight") or g.endswith("attn_k.weight"))
                    q8 = quants.quantize(w, QT.Q8_0)
                    w_eff = quants.dequantize(q8, QT.Q8_0).astype(np.float32)
                else:
                    w_eff = w
                # put the storage-rounded values back into the HF model
                p.copy_(torch.from_numpy(w_eff.copy()))
                arr = w_eff
                if g.endswith("attn_q.weight"):
                    arr = llama_permute(w_eff, n_head)
                elif g.endswith("attn_k.weight"):
                    arr = llama_permute(w_eff, n_kv)
                if qt == QT.F16:
                    stored[g] = (arr.astype(np.float16), qt)
                elif qt == QT.Q8_0:
                    stored[g] = (q8, qt)  # the original quantized bytes
                else:
                    stored[g] = (np.ascontiguousarray(arr), qt)

        logits = C.logits_of(model, text_ids)
        cont = C.greedy(model, prompt_ids, 8)
        full = prompt_ids + cont[:-1]
        gap = min(C.min_top2_gap(logits),
                  C.min_top2_gap(C.logits_of(model, full)[len(prompt_ids) - 1:]))
        if gap >= 1e-3 and len(set(cont)) >= 4:
            break
        print(f"tiny_llama: seed {seed} rejected (gap {gap:.2e}, greedy {cont})")
    else:
        raise RuntimeError("no good seed")

    # ---- write the GGUF
    path = os.path.join(OUT, "tiny_llama.gguf")
    w = gguf.GGUFWriter(path, arch="llama")
    w.add_name("tiny-random-llama")
    w.add_context_length(ctx)
    w.add_embedding_length(hidden)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_rope_freq_base(theta)
    w.add_layer_norm_rms_eps(eps)
    w.add_rope_dimension_count(head_dim)
    w.add_vocab_size(vocab)
    w.add_file_type(0)  # LLAMA_FTYPE_ALL_F32 (mostly; two tensors are F16 / Q8_0)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt2")
    w.add_token_list(tokens_list)
    w.add_token_types([3 if t == C.EOT else 1 for t in tokens_list])
    w.add_token_merges(merges)
    w.add_bos_token_id(eot)
    w.add_eos_token_id(eot)
    w.add_add_bos_token(False)
    w.add_quantization_version(2)
    order = ["token_embd.weight"]
    for i in range(n_layer):
        order += [f"blk.{i}." + v for v in LAYER_MAP.values()]
    order += ["output_norm.weight", "output.weight"]
    assert sorted(order) == sorted(stored)
    for g in order:
        arr, qt = stored[g]
        if qt == QT.Q8_0:
            w.add_tensor(g, arr, raw_dtype=qt)
        else:
            w.add_tensor(g, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    # ---- check (a): read back with GGUFReader, un-permute, compare to HF weights
    r = gguf.GGUFReader(path)
    sd = model.state_dict()
    hf_by_g = {gguf_name(k): k for k in sd}
    tensor_info = {}
    for t in r.tensors:
        data = np.asarray(t.data)
        if t.tensor_type in (QT.F32, QT.F16):
            arr = data.astype(np.float32)
        else:
            arr = quants.dequantize(data, t.tensor_type).astype(np.float32)
        ref = sd[hf_by_g[t.name]].numpy()
        arr = arr.reshape(ref.shape)
        if t.name.endswith("attn_q.weight"):
            arr = llama_unpermute(arr, n_head)
        elif t.name.endswith("attn_k.weight"):
            arr = llama_unpermute(arr, n_kv)
        assert np.array_equal(arr, ref), t.name
        tensor_info[t.name] = {"ggml_type": t.tensor_type.name, "ne": [int(v) for v in t.shape],
                               "hf_name": hf_by_g[t.name]}

    # ---- check (b): transformers' own GGUF loader
    from transformers import AutoModelForCausalLM, AutoTokenizer
    m2 = AutoModelForCausalLM.from_pretrained(OUT, gguf_file="tiny_llama.gguf",
                                              dtype=torch.float32, attn_implementation="eager")
    m2.eval()
    l2 = C.logits_of(m2, text_ids)
    hf_gguf_diff = float(np.abs(l2 - logits).max())
    assert hf_gguf_diff < 1e-5, hf_gguf_diff
    hf_tok = AutoTokenizer.from_pretrained(OUT, gguf_file="tiny_llama.gguf")
    hf_prompt = hf_tok(C.PROMPT_TEXT, add_special_tokens=False).input_ids
    hf_text = hf_tok(text, add_special_tokens=False).input_ids
    tok_agree = hf_prompt == prompt_ids and hf_text == text_ids
    np.save(os.path.join(OUT, "tiny_llama_logits.npy"), logits.astype(np.float32))
    oracle = {
        "gguf_file": "tiny_llama.gguf",
        "architecture": "llama",
        "hparams": {"vocab_size": vocab, "context_length": ctx, "embedding_length": hidden,
                    "block_count": n_layer, "feed_forward_length": ff, "head_count": n_head,
                    "head_count_kv": n_kv, "head_dim": head_dim, "rope_freq_base": theta,
                    "rms_eps": eps, "rope_dimension_count": head_dim,
                    "tie_word_embeddings": False},
        "tensors": tensor_info,
        "tokens": text_ids,
        "tokens_text": text,
        "prompt_text": C.PROMPT_TEXT,
        "prompt_tokens": prompt_ids,
        "prompt_token_strings": [tok.id_to_token(i) for i in prompt_ids],
        "greedy_prompt": prompt_ids,
        "greedy_max_new": 8,
        "greedy_continuation": cont,
        "logits_file": "tiny_llama_logits.npy",
        "logits_shape": list(logits.shape),
        "min_top1_top2_gap": gap,
        "top1_per_position": logits.argmax(-1).tolist(),
        "bos_token_id": eot, "eos_token_id": eot, "eot_token": C.EOT,
        "n_merges": len(merges),
        "transformers_gguf_load_max_abs_logit_diff": hf_gguf_diff,
        "transformers_gguf_tokenizer_agrees": tok_agree,
        "seed": seed,
        "transformers_version": C.versions()["transformers"],
        "versions": C.versions(),
        "notes": (
            "HF LlamaForCausalLM (GQA 4/2, hidden 64, head_dim 16, 2 layers, ff 128, untied, "
            "rope_theta 10000, rms eps 1e-5, random norm gains) converted to GGUF by own code "
            "following convert_hf_to_gguf.py: [out,in] matrices written as is (GGUF ne [in,out]), "
            "attn_q rows permuted with n_head=4 and attn_k rows with n_head=head_count_kv=2 via "
            "reshape(n, 2, rows/n/2, cols).swapaxes(1,2).reshape(rows, cols). blk.0.ffn_up is "
            "F16 and blk.1.ffn_down is Q8_0; the HF model used for the expected logits holds "
            "the f16-rounded / Q8_0-dequantized values, so logits are exact for the file. "
            "Expected logits/greedy come from the HF model with UNPERMUTED weights (float32, "
            "eager). Tokenizer: byte-level BPE trained with the tokenizers library (vocab 288: "
            "id 0 <|endoftext|>, ids 1..256 byte alphabet, then merges) on the first 8 "
            "paragraphs of lee_background.cor; prompt_tokens / tokens from that tokenizer, no "
            "special tokens. Verified: GGUFReader round trip (exact), transformers' GGUF loader "
            "(max |dlogit| recorded)."),
    }
    C.write_json(os.path.join(OUT, "tiny_llama_oracle.json"), oracle)
    print(f"tiny_llama.gguf: {os.path.getsize(path)} bytes, seed {seed}, gap {gap:.4f}, "
          f"greedy {cont}, transformers-gguf diff {hf_gguf_diff:.2e}, tokenizer agree {tok_agree}")


def main():
    torch.set_num_threads(2)
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    make_quants()
    make_tiny_llama()
    print("total size:", C.dir_size(OUT))


if __name__ == "__main__":
    main()
