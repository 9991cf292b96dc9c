#!/usr/bin/env python3
"""Writes a Llama-3.1-8B-shaped Hugging Face checkpoint with synthetic weights.

    python3 examples/make_llama8b_shape.py OUT_DIR [--seed N] [--layers N]

OUT_DIR gets:
  config.json                         LlamaForCausalLM, hidden 4096, 32 layers, 32 heads,
                                      8 KV heads (GQA, head_dim 128), intermediate 14336,
                                      vocab 128256, rope_theta 500000 with Llama 3.1's
                                      `llama3` rope scaling (factor 8, low/high frequency
                                      factors 1/4, original 8192 positions; taalasc's
                                      frontend reads it), rms_norm_eps 1e-5,
                                      max_position_embeddings 8192, untied embeddings,
                                      BOS 128000, EOS 128001, torch_dtype bfloat16
  model-0000K-of-0000N.safetensors    BF16 tensors under transformers' names, sharded at
  model.safetensors.index.json        ~5 GB like the real checkpoint (16.06 GB in all)

No tokenizer.json is written: `taalasc build` does not need one (it is read only for
--prompt, --calib and eval text), so such a build runs with --tokens or no text at all.

Weights: every matrix ~ N(0, 0.02^2) (transformers' initializer_range), every RMSNorm gain
1 + N(0, 0.02^2) ("near 1", so the gain code path is not all ones). Deterministic: tensor
k is drawn from numpy's PCG64 seeded with (seed, k), in fixed 16M-element chunks, so the
same seed gives the same bytes on any machine with numpy >= 1.17. Float32 samples are
rounded to BF16 by round-to-nearest-even.

Memory: tensors are generated and written one chunk at a time (16M elements: 64 MB of
float32 plus temporaries), so Python's RSS stays small although the checkpoint is 16 GB.
Measured on the 2-core machine (numpy 2.4.6, other jobs running): 6 min 35 s, peak RSS
296 MB. Shards are written as NAME.tmp and renamed when complete.

--layers N writes only N decoder layers (a smaller file with the same per-layer shape,
for quick checks); taalasc's own `build --layers N` slices the full checkpoint instead.
Needs only numpy: no torch, nothing downloaded.
"""
import argparse
import json
import os
import sys

import numpy as np

HIDDEN = 4096
LAYERS = 32
HEADS = 32
KV_HEADS = 8
HEAD_DIM = HIDDEN // HEADS
FFN = 14336
VOCAB = 128256
STD = 0.02
CHUNK = 1 << 24  # elements generated at a time
SHARD_BYTES = 5 * 10**9  # a new shard starts once a shard would pass this


def tensor_list(layers):
    """(name, shape, kind) in file order; kind is "matrix" or "gain"."""
    out = [("model.embed_tokens.weight", (VOCAB, HIDDEN), "matrix")]
    for l in range(layers):
        p = f"model.layers.{l}"
        out += [
            (f"{p}.input_layernorm.weight", (HIDDEN,), "gain"),
            (f"{p}.self_attn.q_proj.weight", (HEADS * HEAD_DIM, HIDDEN), "matrix"),
            (f"{p}.self_attn.k_proj.weight", (KV_HEADS * HEAD_DIM, HIDDEN), "matrix"),
            (f"{p}.self_attn.v_proj.weight", (KV_HEADS * HEAD_DIM, HIDDEN), "matrix"),
            (f"{p}.self_attn.o_proj.weight", (HIDDEN, HEADS * HEAD_DIM), "matrix"),
            (f"{p}.post_attention_layernorm.weight", (HIDDEN,), "gain"),
            (f"{p}.mlp.gate_proj.weight", (FFN, HIDDEN), "matrix"),
            (f"{p}.mlp.up_proj.weight", (FFN, HIDDEN), "matrix"),
            (f"{p}.mlp.down_proj.weight", (HIDDEN, FFN), "matrix"),
        ]
    out += [
        ("model.norm.weight", (HIDDEN,), "gain"),
        ("lm_head.weight", (VOCAB, HIDDEN), "matrix"),
    ]
    return out


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def bf16_bytes(x):
    """float32 array -> BF16 little-endian bytes, round to nearest even."""
    u = x.view(np.uint32)
    u = u + (np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1)))
    return (u >> np.uint32(16)).astype("<u2").tobytes()


def write_tensor(f, seed, k, shape, kind):
    rng = np.random.Generator(np.random.PCG64([seed, k]))
    left = numel(shape)
    while left:
        n = min(CHUNK, left)
        x = rng.standard_normal(n, dtype=np.float32)
        x *= np.float32(STD)
        if kind == "gain":
            x += np.float32(1.0)
        f.write(bf16_bytes(x))
        left -= n


def shards(tensors):
    """Splits the tensor list into shards of at most SHARD_BYTES (one tensor at least)."""
    groups, cur, size = [], [], 0
    for t in tensors:
        b = 2 * numel(t[1])
        if cur and size + b > SHARD_BYTES:
            groups.append(cur)
            cur, size = [], 0
        cur.append(t)
        size += b
    groups.append(cur)
    return groups


def header(group):
    h, off = {"__metadata__": {"format": "pt"}}, 0
    for name, shape, _ in group:
        b = 2 * numel(shape)
        h[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + b]}
        off += b
    text = json.dumps(h, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return len(text).to_bytes(8, "little") + text, off


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layers", type=int, default=LAYERS)
    a = ap.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "num_hidden_layers": a.layers,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "head_dim": HEAD_DIM,
        "intermediate_size": FFN,
        "vocab_size": VOCAB,
        "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0,
        "rope_scaling": {
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": False,
        "bos_token_id": 128000,
        "eos_token_id": 128001,
        "initializer_range": STD,
        "torch_dtype": "bfloat16",
        "synthetic": f"examples/make_llama8b_shape.py --seed {a.seed} --layers {a.layers}",
    }
    with open(os.path.join(a.out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    tensors = tensor_list(a.layers)
    index = {k: i for i, (k, _, _) in enumerate(tensors)}
    groups = shards(tensors)
    weight_map, total = {}, 0
    for s, group in enumerate(groups):
        name = f"model-{s + 1:05d}-of-{len(groups):05d}.safetensors"
        path = os.path.join(a.out_dir, name)
        head, size = header(group)
        with open(path + ".tmp", "wb") as f:
            f.write(head)
            for tname, shape, kind in group:
                write_tensor(f, a.seed, index[tname], shape, kind)
                weight_map[tname] = name
                print(f"  {tname} {list(shape)}", file=sys.stderr, flush=True)
        os.replace(path + ".tmp", path)
        total += size
        print(f"wrote {path} ({size / 1e9:.2f} GB)", file=sys.stderr, flush=True)
    with open(os.path.join(a.out_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
        f.write("\n")
    print(f"{a.out_dir}: {len(tensors)} tensors, {total / 1e9:.2f} GB BF16 in {len(groups)} shards")


if __name__ == "__main__":
    main()
