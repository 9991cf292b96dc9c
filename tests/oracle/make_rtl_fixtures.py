#!/usr/bin/env python3
"""Tiny random checkpoints for the RTL cross-checks (tests/rtl.rs).

The chip datapath needs head_dim to be a multiple of 32 (A8 blocks), which
the HF oracle fixtures (head_dim 8 or 16) are not. These models are the
smallest shapes that exercise every unit of the RTL in several families:

  llama_tied_mqa   LlamaForCausalLM, 2 heads / 1 KV head (MQA), head_dim 32,
                   tied embeddings (the embedding ROM is shared by the head)
  qwen2_bias       Qwen2ForCausalLM, q/k/v biases (linear bias ROMs), tied
  gpt2             GPT2LMHeadModel: LayerNorm with bias, GELU(tanh), learned
                   positions, biases everywhere, tied
  mistral_window   MistralForCausalLM, GQA 4/2, sliding window 4

Every parameter (gains and biases included) is overwritten with seeded random
values (oracle_common.randomize_), so no code path sees the default 1/0 init.
The expected values of the RTL tests are the bit-exact reference's; the
reference itself is held to transformers by tests/hf_oracle.rs.

Rerun (repo root, CPU, a few seconds): python3 tests/oracle/make_rtl_fixtures.py
"""
import os
import shutil
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle_common as C  # noqa: E402

from transformers import (GPT2Config, GPT2LMHeadModel, LlamaConfig,  # noqa: E402
                          LlamaForCausalLM, MistralConfig, MistralForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(REPO, "tests", "fixtures", "rtl")


def llama_kw(**kw):
    base = dict(vocab_size=96, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=1, head_dim=32,
                max_position_embeddings=64, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2)
    base.update(kw)
    return base


def save(name, model, seed, **rand):
    torch.manual_seed(seed)
    C.randomize_(model, seed, **rand)
    d = os.path.join(OUT, name)
    if os.path.exists(d):
        shutil.rmtree(d)
    model.save_pretrained(d, safe_serialization=True)
    gc = os.path.join(d, "generation_config.json")
    if os.path.exists(gc):
        os.remove(gc)
    print(name, sum(p.numel() for p in model.parameters()), "parameters")


def main():
    save("llama_tied_mqa", LlamaForCausalLM(LlamaConfig(**llama_kw(tie_word_embeddings=True))), 11)
    q = Qwen2Config(**llama_kw(num_key_value_heads=2, tie_word_embeddings=True,
                               use_sliding_window=False, sliding_window=None))
    save("qwen2_bias", Qwen2ForCausalLM(q), 12, emb_std=0.1, lin_std=0.25)
    g = GPT2Config(vocab_size=96, n_embd=64, n_layer=2, n_head=2, n_positions=64,
                   activation_function="gelu_new", tie_word_embeddings=True,
                   bos_token_id=1, eos_token_id=2)
    save("gpt2", GPT2LMHeadModel(g), 13)
    m = MistralConfig(**llama_kw(num_attention_heads=4, num_key_value_heads=2,
                                 hidden_size=64, sliding_window=4, tie_word_embeddings=False))
    save("mistral_window", MistralForCausalLM(m), 14)


if __name__ == "__main__":
    main()
