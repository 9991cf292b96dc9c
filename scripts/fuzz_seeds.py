#!/usr/bin/env python3
"""Writes small valid seed inputs for the cargo-fuzz targets (fuzz/seeds/<target>/).

Each seed is a complete, loadable input, so the fuzzer starts from the
accepting paths and mutates inward. Usage: fuzz_seeds.py OUT_DIR
"""
import json, os, struct, sys

out = sys.argv[1]

# --- GGUF: a 1-layer llama, d=8, 2 heads (1 kv head), ff 16, vocab 16, with an SPM vocabulary.
def s(x):
    b = x.encode()
    return struct.pack("<Q", len(b)) + b

T_U32, T_F32, T_STRING, T_ARRAY, T_I32 = 4, 6, 8, 9, 5
def kv(key, ty, payload):
    return s(key) + struct.pack("<I", ty) + payload

tokens = ["<unk>", "<s>", "</s>"] + ["\u2581" + c for c in "abcdefghijklm"]
kvs = [
    kv("general.architecture", T_STRING, s("llama")),
    kv("llama.embedding_length", T_U32, struct.pack("<I", 8)),
    kv("llama.block_count", T_U32, struct.pack("<I", 1)),
    kv("llama.feed_forward_length", T_U32, struct.pack("<I", 16)),
    kv("llama.attention.head_count", T_U32, struct.pack("<I", 2)),
    kv("llama.attention.head_count_kv", T_U32, struct.pack("<I", 1)),
    kv("llama.context_length", T_U32, struct.pack("<I", 32)),
    kv("llama.rope.freq_base", T_F32, struct.pack("<f", 10000.0)),
    kv("llama.attention.layer_norm_rms_epsilon", T_F32, struct.pack("<f", 1e-5)),
    kv("tokenizer.ggml.model", T_STRING, s("llama")),
    kv("tokenizer.ggml.tokens", T_ARRAY,
       struct.pack("<IQ", T_STRING, len(tokens)) + b"".join(s(t) for t in tokens)),
    kv("tokenizer.ggml.scores", T_ARRAY,
       struct.pack("<IQ", T_F32, len(tokens)) + b"".join(struct.pack("<f", -i) for i in range(len(tokens)))),
    kv("tokenizer.ggml.token_type", T_ARRAY,
       struct.pack("<IQ", T_I32, len(tokens)) + b"".join(struct.pack("<i", 2 if i == 0 else 3 if i < 3 else 1) for i in range(len(tokens)))),
    kv("tokenizer.ggml.bos_token_id", T_U32, struct.pack("<I", 1)),
    kv("tokenizer.ggml.eos_token_id", T_U32, struct.pack("<I", 2)),
]
# ne is [in, out] (innermost first); F32 = ggml type 0.
tensors = [
    ("token_embd.weight", [8, 16]), ("output_norm.weight", [8]),
    ("blk.0.attn_norm.weight", [8]), ("blk.0.attn_q.weight", [8, 8]),
    ("blk.0.attn_k.weight", [8, 4]), ("blk.0.attn_v.weight", [8, 4]),
    ("blk.0.attn_output.weight", [8, 8]), ("blk.0.ffn_norm.weight", [8]),
    ("blk.0.ffn_gate.weight", [8, 16]), ("blk.0.ffn_up.weight", [8, 16]),
    ("blk.0.ffn_down.weight", [16, 8]),
]
ALIGN = 32
head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs)
data = b""
for name, ne in tensors:
    n = 1
    for d in ne:
        n *= d
    off = len(data)
    head += s(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
    head += struct.pack("<IQ", 0, off)
    data += b"".join(struct.pack("<f", ((i * 7919) % 13 - 6) / 16) for i in range(n))
    data += b"\0" * (-len(data) % ALIGN)
head += b"\0" * (-len(head) % ALIGN)
os.makedirs(f"{out}/gguf", exist_ok=True)
open(f"{out}/gguf/tiny.gguf", "wb").write(head + data)

# --- safetensors: three small tensors and metadata.
def st(entries):
    hdr, data = {"__metadata__": {"format": "pt"}}, b""
    for name, dtype, shape, size in entries:
        hdr[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + size]}
        data += bytes((i * 37) % 251 for i in range(size))
    h = json.dumps(hdr).encode()
    return struct.pack("<Q", len(h)) + h + data
os.makedirs(f"{out}/safetensors_header", exist_ok=True)
open(f"{out}/safetensors_header/small.safetensors", "wb").write(
    st([("a.weight", "F32", [2, 3], 24), ("b.bias", "F16", [4], 8), ("c", "BF16", [], 2)]))
open(f"{out}/safetensors_header/empty_tensor.safetensors", "wb").write(
    st([("z", "F32", [0, 5], 0), ("y", "F32", [1], 4)]))
