#!/usr/bin/env python3
"""Independent oracle fixtures: tiny random Hugging Face checkpoints + expected outputs.

Produces tests/fixtures/hf/<variant>/ for each variant below:
  config.json, model.safetensors (or model-0000N-of-0000M.safetensors + model.safetensors.index.json),
  generation_config.json  -- exactly as transformers' save_pretrained(..., safe_serialization=True)
                             writes them (except gpt2_noprefix and llama_config_v4, see below)
  oracle.json             -- variant, tokens, greedy_prompt, greedy_max_new, greedy_continuation,
                             logits_file, versions, notes, ...
  logits.npy              -- float32 [len(tokens), vocab]: model(tokens).logits
  tokenizer.json          -- gpt2_tokenizer only

Variants: llama_gqa, llama_mqa_tied, llama3_rope, mistral, mistral_window, qwen2, gpt2, gpt2_noprefix,
llama_sharded, llama_bf16, llama_f16, llama_config_v4 (or llama_config_v5), gpt2_tokenizer.

How expected values are produced: every model is built from a config with transformers,
every parameter (including norm gains, norm biases, linear biases) is overwritten with seeded
random values (oracle_common.randomize_), the checkpoint is saved, then RELOADED from the
fixture directory with from_pretrained(dir, dtype=torch.float32, attn_implementation="eager")
and the expected logits / greedy continuation are computed from the reloaded model in float32
(for the bf16 / f16 checkpoints this means: stored half-precision weights upcast to f32, f32
compute).  Greedy continuations come from model.generate(do_sample=False) with EOS stopping
disabled and are cross-checked against a manual full-recompute argmax loop.  Seeds are chosen
so that the top-1/top-2 logit gap is >= 1e-3 at every checked position (so |dlogit| <= 1e-4
implies the same top-1).

transformers 5.x writes the new config layout ("rope_parameters", "dtype"); the variant
llama_config_v4 is post-edited into the 4.x layout (top-level "rope_theta", "rope_scaling",
"torch_dtype") and verified to load back to identical logits.  If an installed transformers
writes the 4.x layout, the script instead produces llama_config_v5 (post-edited to 5.x).

Versions used for the committed fixtures: transformers 5.24.0, torch 2.15.0, tokenizers 0.23.3,
safetensors 0.8.0, numpy 2.4.6 (each oracle.json records them).

Rerun (from the repo root; deterministic, CPU only, < 1 min):
    python3 tests/oracle/make_hf_fixtures.py
"""
import json
import os
import shutil
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle_common as C  # noqa: E402

import transformers  # noqa: E402
from transformers import (AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel,  # noqa: E402
                          LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM)
from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

OUT = os.path.join(C.REPO, "tests", "fixtures", "hf")
N_TOKENS = 12
N_PROMPT = 5
N_NEW = 8
MIN_GAP = 1e-3
MIN_DISTINCT = 4  # greedy continuation must not be a degenerate repetition
TRANSFORMERS_V5 = int(transformers.__version__.split(".")[0]) >= 5


def rope(theta, scaling=None):
    """Config kwargs for RoPE in the layout the installed transformers expects."""
    if TRANSFORMERS_V5:
        p = {"rope_type": "default", "rope_theta": float(theta)}
        if scaling:
            p.update(scaling)
        return {"rope_parameters": p}
    kw = {"rope_theta": float(theta)}
    if scaling:
        kw["rope_scaling"] = dict(scaling)
    return kw


def llama_cfg(**over):
    kw = dict(vocab_size=128, hidden_size=32, intermediate_size=80, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
              rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
              hidden_act="silu")
    kw.update(rope(10000.0))
    kw.update(over)
    return kw


def safetensors_keys(d):
    keys = []
    for f in sorted(os.listdir(d)):
        if f.endswith(".safetensors"):
            with safe_open(os.path.join(d, f), "pt") as sf:
                keys += list(sf.keys())
    return keys


def reload(d, cls=None):
    loader = cls or AutoModelForCausalLM
    m = loader.from_pretrained(d, dtype=torch.float32, attn_implementation="eager")
    m.eval()
    return m


def check_gaps(model, tokens, prompt, cont):
    lg = C.logits_of(model, tokens)
    g1 = C.min_top2_gap(lg)
    full = prompt + cont[:-1]
    lg2 = C.logits_of(model, full)[len(prompt) - 1:]
    g2 = C.min_top2_gap(lg2)
    return min(g1, g2)


def finish(d, variant, model, vocab, seed, notes, extra=None, tokens=None, prompt=None):
    """Compute and write oracle.json + logits.npy from `model` (already reloaded, f32, eager)."""
    if tokens is None:
        tokens = C.random_tokens(seed + 1000, N_TOKENS, vocab)
    if prompt is None:
        prompt = C.random_tokens(seed + 2000, N_PROMPT, vocab)
    logits = C.logits_of(model, tokens).astype(np.float32)
    assert logits.shape == (len(tokens), vocab), logits.shape
    cont = C.greedy(model, prompt, N_NEW)
    gap = check_gaps(model, tokens, prompt, cont)
    np.save(os.path.join(d, "logits.npy"), logits)
    spread = float(np.abs(logits - logits.mean(0, keepdims=True)).max())
    o = {
        "variant": variant,
        "tokens": tokens,
        "greedy_prompt": prompt,
        "greedy_max_new": N_NEW,
        "greedy_continuation": cont,
        "logits_file": "logits.npy",
        "logits_shape": list(logits.shape),
        "logits_dtype": "float32",
        "min_top1_top2_gap": gap,
        "max_abs_logit": float(np.abs(logits).max()),
        "max_logit_deviation_across_positions": spread,
        "top1_per_position": logits.argmax(-1).tolist(),
        "seed": seed,
        "transformers_version": transformers.__version__,
        "versions": C.versions(),
        "notes": notes,
    }
    if extra:
        o.update(extra)
    C.write_json(os.path.join(d, "oracle.json"), o)
    return o, gap


def fresh_dir(variant):
    d = os.path.join(OUT, variant)
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)
    return d


def build_and_check(variant, make, seeds=range(1, 50)):
    """make(seed, d) -> (model_f32_reloaded, vocab, notes, extra, tokens, prompt).

    Retries seeds until every checked top-1/top-2 gap is >= MIN_GAP.
    """
    for seed in seeds:
        d = fresh_dir(variant)
        torch.manual_seed(seed)
        model, vocab, notes, extra, tokens, prompt = make(seed, d)
        o, gap = finish(d, variant, model, vocab, seed, notes, extra, tokens, prompt)
        distinct = len(set(o["greedy_continuation"]))
        if gap >= MIN_GAP and distinct >= MIN_DISTINCT:
            size = C.dir_size(d)
            assert size < 1_000_000, (variant, size)
            print(f"{variant}: seed {seed} gap {gap:.4f} size {size} B "
                  f"greedy {o['greedy_continuation']}")
            return o
        print(f"{variant}: seed {seed} rejected (gap {gap:.2e}, {distinct} distinct greedy ids)")
    raise RuntimeError(f"no good seed for {variant}")


def save_and_reload(model, d, cls=None, **save_kw):
    model.save_pretrained(d, safe_serialization=True, **save_kw)
    return reload(d, cls)


def assert_same(a, b, what, tol=0.0):
    diff = float(np.abs(a - b).max())
    assert diff <= tol, f"{what}: max |diff| {diff} > {tol}"
    return diff


# ----------------------------------------------------------------------------- llama family

def make_llama_like(cls, cfg_cls, cfg_kw, tied_expect=None, dtype=None, save_kw=None,
                    notes="", rand_kw=None):
    def make(seed, d):
        cfg = cfg_cls(**cfg_kw)
        model = cls(cfg).eval()
        C.randomize_(model, seed, **(rand_kw or {}))
        ref_model = model
        if dtype is not None:
            model = model.to(dtype)
            # in-memory reference: a fresh f32 model holding the rounded weights upcast to f32
            # (not model.to(f32): that would also round-trip the non-persistent RoPE inv_freq
            # buffer through the half type)
            ref_model = cls(cfg).eval()
            ref_model.load_state_dict({k: v.to(torch.float32)
                                       for k, v in model.state_dict().items()})
        reloaded = save_and_reload(model, d, cls, **(save_kw or {}))
        keys = safetensors_keys(d)
        if tied_expect is True:
            assert "lm_head.weight" not in keys, "tied model must not save lm_head.weight"
        elif tied_expect is False:
            assert "lm_head.weight" in keys
        toks = C.random_tokens(seed + 1000, N_TOKENS, cfg.vocab_size)
        assert_same(C.logits_of(ref_model, toks), C.logits_of(reloaded, toks),
                    "reloaded vs in-memory", tol=1e-5)
        extra = {"safetensors_keys": sorted(keys),
                 "tie_word_embeddings": bool(cfg.tie_word_embeddings)}
        if dtype is not None:
            with safe_open(os.path.join(d, "model.safetensors"), "pt") as sf:
                dts = {str(sf.get_tensor(k).dtype) for k in sf.keys()}
            extra["stored_dtypes"] = sorted(dts)
            assert dts == {str(dtype)}, dts
        return reloaded, cfg.vocab_size, notes, extra, None, None
    return make


def variant_llama_gqa():
    return build_and_check("llama_gqa", make_llama_like(
        LlamaForCausalLM, LlamaConfig, llama_cfg(), tied_expect=False,
        notes="LlamaForCausalLM, 2 layers, hidden 32, 4 heads / 2 kv heads (head_dim 8), "
              "intermediate 80, vocab 128, untied lm_head, rope_theta 10000, rms eps 1e-5, "
              "random norm gains."))


def variant_llama_mqa_tied():
    return build_and_check("llama_mqa_tied", make_llama_like(
        LlamaForCausalLM, LlamaConfig,
        llama_cfg(num_key_value_heads=1, tie_word_embeddings=True, vocab_size=160,
                  rms_norm_eps=1e-6, **rope(500000.0)),
        tied_expect=True, rand_kw={"emb_std": 0.1, "lin_std": 0.25},
        notes="LlamaForCausalLM, 4 heads / 1 kv head (MQA), tie_word_embeddings=true: the "
              "safetensors has no lm_head.weight (asserted); output projection = "
              "model.embed_tokens.weight. rope_theta 500000, rms eps 1e-6, vocab 160."))


def variant_llama3_rope():
    scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 32}
    return build_and_check("llama3_rope", make_llama_like(
        LlamaForCausalLM, LlamaConfig,
        llama_cfg(hidden_size=64, intermediate_size=160, num_key_value_heads=4,
                  **rope(10000.0, scaling)),
        tied_expect=False,
        notes="LlamaForCausalLM, MHA 4/4, hidden 64, head_dim 16, llama3 rope scaling "
              "(factor 8, low_freq_factor 1, high_freq_factor 4, "
              "original_max_position_embeddings 32, rope_theta 10000). With head_dim 16 the "
              "8 frequencies hit all three llama3 branches: wavelen 2*pi (< 32/4 = 8) kept, "
              "wavelen ~19.9 (between 8 and 32) smoothed, the rest (> 32) divided by 8. "
              "Resulting inv_freq recorded in 'inv_freq'."))


def variant_mistral():
    kw = llama_cfg(vocab_size=112, intermediate_size=96, sliding_window=None)
    kw.pop("hidden_act")
    return build_and_check("mistral", make_llama_like(
        MistralForCausalLM, MistralConfig, kw, tied_expect=False,
        notes="MistralForCausalLM, 4 heads / 2 kv heads, hidden 32, sliding_window null, "
              "untied, vocab 112, rope_theta 10000."))


def variant_mistral_window():
    kw = llama_cfg(vocab_size=112, intermediate_size=96, sliding_window=4)
    kw.pop("hidden_act")
    return build_and_check("mistral_window", make_llama_like(
        MistralForCausalLM, MistralConfig, kw, tied_expect=False,
        notes="MistralForCausalLM like `mistral` but sliding_window 4, shorter than the "
              "12-token sequence, so position p attends only to positions p-3..p."))


def variant_qwen2():
    kw = llama_cfg(vocab_size=144, tie_word_embeddings=True, rms_norm_eps=1e-6,
                   **rope(1000000.0))
    kw.pop("hidden_act")
    kw.update(use_sliding_window=False, sliding_window=None)
    return build_and_check("qwen2", make_llama_like(
        Qwen2ForCausalLM, Qwen2Config, kw, tied_expect=True,
        rand_kw={"emb_std": 0.1, "lin_std": 0.25},
        notes="Qwen2ForCausalLM, 4 heads / 2 kv heads, q/k/v projections with biases "
              "(randomised, std 0.1), o_proj without bias, tied embeddings (like the small "
              "Qwen2/2.5 0.5B checkpoints; transformers' Qwen2Config default is untied), "
              "no lm_head.weight saved, rope_theta 1e6, rms eps 1e-6, vocab 144."))


def variant_llama_sharded():
    return build_and_check("llama_sharded", make_llama_like(
        LlamaForCausalLM, LlamaConfig, llama_cfg(vocab_size=96), tied_expect=False,
        save_kw={"max_shard_size": "40KB"},
        notes="LlamaForCausalLM GQA 4/2 saved with max_shard_size=40KB: several "
              "model-0000N-of-0000M.safetensors shards + model.safetensors.index.json."))


def variant_llama_half(name, dtype):
    def make(seed, d):
        mk = make_llama_like(LlamaForCausalLM, LlamaConfig, llama_cfg(vocab_size=128),
                             tied_expect=False, dtype=dtype)
        return mk(seed, d)
    dn = {torch.bfloat16: "bfloat16", torch.float16: "float16"}[dtype]
    return build_and_check(name, lambda s, d: _with_notes(make(s, d), (
        f"LlamaForCausalLM GQA 4/2 saved in {dn} (config dtype {dn}); all stored tensors are "
        f"{dn}. Expected logits: the {dn} weights loaded with dtype=float32 (exact upcast) and "
        "computed in float32 with eager attention.")),
        seeds=range(101 if dtype == torch.bfloat16 else 201, 300))


def _with_notes(res, notes):
    model, vocab, _, extra, t, p = res
    return model, vocab, notes, extra, t, p


def variant_config_layout():
    """Checkpoint whose config.json uses the *other* layout than the installed transformers."""
    scaling = {"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 32}
    name = "llama_config_v4" if TRANSFORMERS_V5 else "llama_config_v5"

    def make(seed, d):
        cfg = LlamaConfig(**llama_cfg(hidden_size=64, intermediate_size=128,
                                      **rope(500000.0, scaling)))
        model = LlamaForCausalLM(cfg).eval()
        C.randomize_(model, seed)
        model.save_pretrained(d, safe_serialization=True)
        toks = C.random_tokens(seed + 1000, N_TOKENS, cfg.vocab_size)
        before = C.logits_of(reload(d), toks)
        path = os.path.join(d, "config.json")
        raw = json.load(open(path))
        orig_keys = sorted(raw)
        if TRANSFORMERS_V5:
            rp = raw.pop("rope_parameters")
            raw["rope_theta"] = rp.pop("rope_theta")
            raw["rope_scaling"] = rp  # keeps rope_type "llama3" and the llama3 fields
            raw["torch_dtype"] = raw.pop("dtype")
            raw["transformers_version"] = "4.46.3"
        else:  # pragma: no cover - only with transformers 4.x installed
            theta = raw.pop("rope_theta")
            rs = raw.pop("rope_scaling", None) or {"rope_type": "default"}
            rs = dict(rs)
            rs["rope_theta"] = theta
            raw["rope_parameters"] = rs
            raw["dtype"] = raw.pop("torch_dtype")
            raw["transformers_version"] = "5.0.0"
        with open(path, "w") as fh:
            json.dump(raw, fh, indent=2, sort_keys=True)
            fh.write("\n")
        model2 = reload(d)
        after = C.logits_of(model2, toks)
        diff = assert_same(before, after, "config layout rewrite", tol=0.0)
        extra = {"config_layout": "4.x" if TRANSFORMERS_V5 else "5.x",
                 "config_keys_as_saved_by_installed_transformers": orig_keys,
                 "config_keys_after_edit": sorted(raw),
                 "reload_max_abs_diff_vs_unedited": diff,
                 "inv_freq": model2.model.rotary_emb.inv_freq.tolist()}
        notes = (f"LlamaForCausalLM GQA 4/2, hidden 64 (head_dim 16), llama3 rope scaling "
                 f"(factor 4, low 1, high 4, original_max_position_embeddings 32, "
                 f"rope_theta 500000). Saved by transformers {transformers.__version__} and "
                 f"then config.json rewritten into the {extra['config_layout']} layout "
                 + ("(top-level rope_theta, rope_scaling{rope_type: llama3, ...}, torch_dtype, "
                    "transformers_version 4.46.3). " if TRANSFORMERS_V5 else
                    "(rope_parameters, dtype). ")
                 + "transformers reloads the edited config to bit-identical logits.")
        return model2, cfg.vocab_size, notes, extra, toks, None
    return build_and_check(name, make)


# ----------------------------------------------------------------------------- gpt2 family

def gpt2_cfg(vocab, **over):
    kw = dict(vocab_size=vocab, n_embd=32, n_layer=2, n_head=4, n_positions=128,
              n_inner=96, activation_function="gelu_new", layer_norm_epsilon=1e-5,
              bos_token_id=vocab - 1, eos_token_id=vocab - 1, tie_word_embeddings=True)
    kw.update(over)
    return GPT2Config(**kw)


def variant_gpt2():
    def make(seed, d):
        cfg = gpt2_cfg(128)
        model = GPT2LMHeadModel(cfg).eval()
        C.randomize_(model, seed, emb_std=0.1, lin_std=0.25)
        reloaded = save_and_reload(model, d, GPT2LMHeadModel)
        keys = safetensors_keys(d)
        assert "lm_head.weight" not in keys
        toks = C.random_tokens(seed + 1000, N_TOKENS, 128)
        assert_same(C.logits_of(model, toks), C.logits_of(reloaded, toks), "reload", 1e-5)
        notes = ("GPT2LMHeadModel saved normally by save_pretrained: keys carry the "
                 "'transformer.' prefix (transformer.wte.weight, transformer.h.N.attn.c_attn.*, "
                 "...), Conv1D weights stored [in, out], tied lm_head (no lm_head.weight), no "
                 "attn.bias mask buffers. n_embd 32, 4 heads, n_inner 96, gelu_new, learned "
                 "positions (n_positions 128), layer_norm_epsilon 1e-5, random LayerNorm "
                 "gains and biases, random Conv1D biases.")
        return reloaded, 128, notes, {"safetensors_keys": sorted(keys)}, None, None
    return build_and_check("gpt2", make)


def variant_gpt2_noprefix():
    def make(seed, d):
        vocab = 120
        cfg = gpt2_cfg(vocab, n_embd=48, n_inner=128, layer_norm_epsilon=1e-5)
        model = GPT2LMHeadModel(cfg).eval()
        C.randomize_(model, seed, emb_std=0.1, lin_std=0.25)
        sd = model.state_dict()
        out = {}
        for k, v in sd.items():
            if k == "lm_head.weight":
                continue  # tied
            assert k.startswith("transformer."), k
            out[k[len("transformer."):]] = v.detach().clone().contiguous()
        # like the original openai-community/gpt2 checkpoint: causal-mask buffers h.N.attn.bias
        n = cfg.n_positions
        mask = torch.tril(torch.ones(n, n, dtype=torch.float32)).view(1, 1, n, n)
        for i in range(cfg.n_layer):
            out[f"h.{i}.attn.bias"] = mask.clone()
        save_file(out, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
        cfg.save_pretrained(d)
        reloaded = reload(d, GPT2LMHeadModel)
        toks = C.random_tokens(seed + 1000, N_TOKENS, vocab)
        assert_same(C.logits_of(model, toks), C.logits_of(reloaded, toks), "reload", 1e-5)
        keys = safetensors_keys(d)
        assert not any(k.startswith("transformer.") for k in keys)
        assert "lm_head.weight" not in keys
        notes = ("GPT-2 written with safetensors.torch.save_file (metadata {format: pt}) with the "
                 "'transformer.' prefix stripped, like the original openai-community/gpt2 "
                 "checkpoint: keys wte.weight, wpe.weight, h.N.ln_1.*, h.N.attn.c_attn.*, "
                 "h.N.attn.c_proj.*, h.N.ln_2.*, h.N.mlp.c_fc.*, h.N.mlp.c_proj.*, ln_f.*; "
                 "no lm_head.weight (tied to wte). ALSO contains h.N.attn.bias = the [1,1,128,128] "
                 "lower-triangular causal-mask buffer (as in the original checkpoint): it is NOT "
                 "a parameter and must be ignored (do not confuse with h.N.attn.c_attn.bias). "
                 "config.json from GPT2Config.save_pretrained. n_embd 48, 4 heads (head_dim 12), "
                 "n_inner 128, vocab 120. transformers loads it (prefix-less keys accepted, mask "
                 "buffers ignored) to identical logits.")
        return reloaded, vocab, notes, {"safetensors_keys": sorted(keys)}, None, None
    return build_and_check("gpt2_noprefix", make)


def variant_gpt2_tokenizer():
    tok = C.train_bytelevel_bpe(320)
    tok2 = C.train_bytelevel_bpe(320)
    assert tok.to_str() == tok2.to_str(), "tokenizer training is not deterministic"
    vocab = tok.get_vocab_size()
    eot = tok.token_to_id(C.EOT)
    prompt_ids = tok.encode(C.PROMPT_TEXT, add_special_tokens=False).ids
    assert tok.decode(prompt_ids) == C.PROMPT_TEXT
    text = "The capital of France is Paris, and 42 people were there in 2001."
    text_ids = tok.encode(text, add_special_tokens=False).ids
    assert tok.decode(text_ids) == text

    def make(seed, d):
        cfg = gpt2_cfg(vocab, bos_token_id=eot, eos_token_id=eot)
        model = GPT2LMHeadModel(cfg).eval()
        C.randomize_(model, seed, emb_std=0.1, lin_std=0.25)
        reloaded = save_and_reload(model, d, GPT2LMHeadModel)
        tok.save(os.path.join(d, "tokenizer.json"))
        # reload the tokenizer file and re-encode to be sure the file round-trips
        from tokenizers import Tokenizer
        t2 = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        assert t2.encode(C.PROMPT_TEXT, add_special_tokens=False).ids == prompt_ids
        assert t2.encode(text, add_special_tokens=False).ids == text_ids
        toks_pieces = [tok.id_to_token(i) for i in prompt_ids]
        extra = {"prompt_text": C.PROMPT_TEXT, "prompt_tokens": prompt_ids,
                 "prompt_token_strings": toks_pieces,
                 "tokens_text": text, "tokenizer_vocab_size": vocab,
                 "eot_token": C.EOT, "eot_id": eot}
        notes = ("GPT2LMHeadModel (as 'gpt2') with vocab_size == size of the shipped "
                 "tokenizer.json: a byte-level BPE trained with the tokenizers library "
                 "(BpeTrainer vocab_size 320, min_frequency 2, special <|endoftext|> = id 0, "
                 "ids 1..256 = the byte alphabet, rest merges) on the first 8 paragraphs of "
                 "lee_background.cor; pre_tokenizer ByteLevel(add_prefix_space=False, "
                 "use_regex=True), decoder ByteLevel, no post-processor. 'tokens' = ids of "
                 "tokens_text, greedy_prompt = prompt_tokens (no special tokens added).")
        return reloaded, vocab, notes, extra, text_ids, prompt_ids
    return build_and_check("gpt2_tokenizer", make)


def main():
    torch.set_num_threads(2)
    os.makedirs(OUT, exist_ok=True)
    results = {}
    for fn in (variant_llama_gqa, variant_llama_mqa_tied, variant_llama3_rope,
               variant_mistral, variant_qwen2, variant_gpt2, variant_gpt2_noprefix,
               variant_llama_sharded,
               lambda: variant_llama_half("llama_bf16", torch.bfloat16),
               lambda: variant_llama_half("llama_f16", torch.float16),
               variant_config_layout, variant_gpt2_tokenizer, variant_mistral_window):
        o = fn()
        results[o["variant"]] = o
    # extra facts attached after the fact
    lr = os.path.join(OUT, "llama3_rope", "oracle.json")
    o = json.load(open(lr))
    m = reload(os.path.join(OUT, "llama3_rope"))
    o["inv_freq"] = m.model.rotary_emb.inv_freq.tolist()
    C.write_json(lr, o)
    sh = os.path.join(OUT, "llama_sharded")
    shards = sorted(f for f in os.listdir(sh) if f.endswith(".safetensors"))
    assert len(shards) >= 2 and os.path.exists(os.path.join(sh, "model.safetensors.index.json"))
    print("shards:", shards)
    print("total size:", C.dir_size(OUT))


if __name__ == "__main__":
    main()
