#!/usr/bin/env python3
"""Builds taalasc's bundled example model, examples/tiny-llama/.

Produces (in examples/tiny-llama/):
  tokenizer.json          byte-level BPE, vocab 512, `<|endoftext|>` (id 0) = BOS = EOS,
                          post-processor prepends BOS ("<|endoftext|> $A")
  config.json             LlamaForCausalLM: hidden 64, 2 layers, 4 heads / 2 kv heads (GQA),
  generation_config.json  head_dim 32 (so heads x head_dim = 128 != hidden), intermediate 192, vocab 512, max positions 256,
  model.safetensors       rope_theta 10000, untied embeddings, float32 weights
  sample.txt              ~5 KB of HELD-OUT text (never trained on) for `taalasc eval`
  oracle.json             greedy continuation of "The capital of France is" from transformers,
  logits.npy              float32 logits of the prompt tokens, held-out perplexities, versions
  README.md               what the model is and how it was made

The model is really trained (from scratch, under a minute on 2 idle CPU cores) on gensim's test
corpus lee_background.cor (Lee et al. news articles, one per line; gensim is LGPL-2.1).
After dropping exact duplicate lines, the first 90 % of the articles train both the
tokenizer and the model; the last 10 % are held out for the perplexity figures and sample.txt.

The step count (1200, ~45 s on 2 idle cores) is where held-out perplexity bottoms out for this
recipe: the corpus is only ~150k tokens and longer schedules overfit (6000 steps, ~5 min:
held-out ppl 30.5 vs 20.1).

Everything is seeded and run single-process with torch deterministic algorithms and
2 threads, so a rerun with the same versions reproduces the files.

Versions used for the committed files (also recorded in oracle.json):
  python 3.11.7, torch 2.15.0 (CPU), transformers 5.24.0, tokenizers 0.23.3,
  safetensors 0.8.0, numpy 2.4.6

Rerun (from the repository root):
    python3 examples/make_tiny_llama.py
Options: --text PATH (or env LEE_TEXT) for the corpus, --steps N, --out DIR.
"""
import argparse
import json
import math
import os
import platform
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import safetensors
import tokenizers
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_TEXT = os.environ.get("LEE_TEXT", "/work/dl/gensim/gensim/test/test_data/lee_background.cor")
DEFAULT_OUT = os.path.join(REPO, "examples", "tiny-llama")

EOT = "<|endoftext|>"
VOCAB = 512
SEED = 1234
TRAIN_FRACTION = 0.9
SEQ_LEN = 128
BATCH = 16
LR = 3e-3
MIN_LR_FRACTION = 0.1
WARMUP = 100
WEIGHT_DECAY = 0.1
STEPS = 1200
PROMPT = "The capital of France is"
GREEDY_NEW = 12
SAMPLE_BYTES = 5000
EVAL_CTX = 64
OUTPUT_FILES = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                "sample.txt", "oracle.json", "logits.npy", "README.md"]


def read_lines(path):
    """Non-empty lines, exact duplicates dropped (first occurrence kept, order preserved).

    lee_background.cor repeats 7 articles verbatim, two of them across the 90 % boundary;
    without dropping them, held-out text would have been trained on."""
    with open(path, encoding="utf-8") as f:
        lines = [l.strip() for l in f]
    lines = [l for l in lines if l]
    return list(dict.fromkeys(lines)), len(lines)


def train_tokenizer(train_lines):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        min_frequency=2,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(train_lines, trainer=trainer, length=len(train_lines))
    assert tok.token_to_id(EOT) == 0, "the special token must be id 0"
    assert tok.get_vocab_size() == VOCAB, tok.get_vocab_size()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{EOT} $A",
        pair=f"{EOT} $A {EOT} $B:1",
        special_tokens=[(EOT, 0)],
    )
    return tok


def stream(tok, lines):
    """All articles as one id stream, each one preceded by <|endoftext|> (id 0)."""
    out = []
    for enc in tok.encode_batch(lines, add_special_tokens=False):
        out.append(0)
        out.extend(enc.ids)
    return torch.tensor(out, dtype=torch.long)


def make_config():
    return LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=192,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        hidden_act="silu",
        max_position_embeddings=256,
        initializer_range=0.02,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        attention_bias=False,
        mlp_bias=False,
        attention_dropout=0.0,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=None,
        use_cache=True,
    )


@torch.no_grad()
def window_nll(model, ids, ctx):
    """Mean NLL over non-overlapping windows of ctx+1 tokens, every position scored."""
    model.eval()
    n = (len(ids) - 1) // ctx
    total, count = 0.0, 0
    for i in range(n):
        w = ids[i * ctx : i * ctx + ctx + 1].unsqueeze(0)
        logits = model(w[:, :-1]).logits.double()
        lp = torch.log_softmax(logits, -1)
        total -= lp.gather(-1, w[:, 1:].unsqueeze(-1)).sum().item()
        count += ctx
    return total / count, count


@torch.no_grad()
def llamacpp_ppl(model, ids, ctx, bos):
    """taalasc eval / llama-perplexity convention (see driver/src/eval.rs)."""
    model.eval()
    n = len(ids) // ctx
    first = ctx // 2
    total, count = 0.0, 0
    for i in range(n):
        c = list(ids[i * ctx : (i + 1) * ctx])
        c[0] = bos
        logits = model(torch.tensor([c])).logits[0].double()
        lp = torch.log_softmax(logits, -1)
        for j in range(first, ctx - 1):
            total -= lp[j, c[j + 1]].item()
        count += ctx - 1 - first
    return math.exp(total / count), n, count


def lr_at(step, steps):
    if step < WARMUP:
        return LR * (step + 1) / WARMUP
    p = (step - WARMUP) / max(1, steps - WARMUP)
    return LR * (MIN_LR_FRACTION + (1 - MIN_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * p)))


def train(model, train_ids, val_ids, steps, eval_every):
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}],
        lr=LR,
        betas=(0.9, 0.95),
        eps=1e-8,
    )
    gen = torch.Generator().manual_seed(SEED + 1)
    offsets_hi = len(train_ids) - SEQ_LEN - 1
    t0 = time.time()
    log = []
    for step in range(steps):
        model.train()
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps)
        starts = torch.randint(0, offsets_hi + 1, (BATCH,), generator=gen)
        batch = torch.stack([train_ids[s : s + SEQ_LEN + 1] for s in starts.tolist()])
        logits = model(batch[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (step + 1) % 100 == 0 or step == 0:
            line = f"step {step + 1:5d}  loss {loss.item():.4f}  lr {lr_at(step, steps):.2e}  {time.time() - t0:6.1f}s"
            if eval_every and ((step + 1) % eval_every == 0):
                v, _ = window_nll(model, val_ids, SEQ_LEN)
                line += f"  val_nll {v:.4f}  val_ppl {math.exp(v):.2f}"
            print(line, flush=True)
            log.append(line)
    return time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--text", default=DEFAULT_TEXT)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--eval-every", type=int, default=0, help="print held-out ppl while training (exploration)")
    args = ap.parse_args()

    torch.set_num_threads(2)
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    torch.use_deterministic_algorithms(True)

    lines, n_raw = read_lines(args.text)
    n_train = int(round(len(lines) * TRAIN_FRACTION))
    train_lines, held_lines = lines[:n_train], lines[n_train:]
    print(f"{n_raw} articles, {len(lines)} distinct: {len(train_lines)} train, {len(held_lines)} held out")

    tok = train_tokenizer(train_lines)
    train_ids = stream(tok, train_lines)
    val_ids = stream(tok, held_lines)
    n_train_bytes = sum(len(l.encode()) + 1 for l in train_lines)
    print(f"train tokens {len(train_ids)} ({n_train_bytes / len(train_ids):.2f} bytes/token), held-out tokens {len(val_ids)}")

    cfg = make_config()
    torch.manual_seed(SEED)
    model = LlamaForCausalLM._from_config(cfg, attn_implementation="sdpa", dtype=torch.float32)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"parameters: {n_params}")

    train_seconds = train(model, train_ids, val_ids, args.steps, args.eval_every)
    print(f"trained {args.steps} steps in {train_seconds:.1f}s")

    # ---- save -------------------------------------------------------------------
    out = args.out
    os.makedirs(out, exist_ok=True)
    for name in OUTPUT_FILES:  # only what this script writes; nothing else is touched
        if os.path.exists(os.path.join(out, name)):
            os.remove(os.path.join(out, name))
    model = model.to(torch.float32).eval()
    model.generation_config = GenerationConfig(bos_token_id=0, eos_token_id=0, pad_token_id=0, do_sample=False)
    # transformers 5 always writes safetensors; the flag is kept for transformers 4.x.
    model.save_pretrained(out, safe_serialization=True)
    tok.save(os.path.join(out, "tokenizer.json"))

    # sample.txt: whole held-out articles, about SAMPLE_BYTES bytes.
    sample = []
    for l in held_lines:
        if sum(len(s.encode()) + 1 for s in sample) >= SAMPLE_BYTES:
            break
        sample.append(l)
    sample_text = "\n".join(sample) + "\n"
    with open(os.path.join(out, "sample.txt"), "w", encoding="utf-8") as f:
        f.write(sample_text)

    # ---- oracle, from a fresh float32 eager load of what was saved ----------------
    ref = LlamaForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
    rtok = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))

    heldout_nll, heldout_count = window_nll(ref, val_ids, SEQ_LEN)
    train_nll, _ = window_nll(ref, train_ids[: len(val_ids)], SEQ_LEN)
    sample_ids = rtok.encode(sample_text).ids  # with BOS, as taalasc eval tokenizes
    eval_ppl, eval_chunks, eval_scored = llamacpp_ppl(ref, sample_ids, EVAL_CTX, 0)
    print(f"held-out ppl {math.exp(heldout_nll):.3f} ({heldout_count} tokens); "
          f"same-size train slice ppl {math.exp(train_nll):.3f}")
    print(f"sample.txt: {len(sample_text.encode())} bytes, {len(sample_ids)} tokens, "
          f"llama.cpp-convention ppl at ctx {EVAL_CTX}: {eval_ppl:.4f} ({eval_chunks} chunks)")

    prompt_tokens = rtok.encode(PROMPT).ids
    assert prompt_tokens[0] == 0
    inp = torch.tensor([prompt_tokens])
    with torch.no_grad():
        logits = ref(inp).logits[0].float().numpy()
        gen = ref.generate(
            inp,
            attention_mask=torch.ones_like(inp),
            do_sample=False,
            max_new_tokens=GREEDY_NEW,
            pad_token_id=0,
        )[0].tolist()
    cont = gen[len(prompt_tokens):]
    np.save(os.path.join(out, "logits.npy"), logits.astype(np.float32))
    top = np.sort(logits, axis=-1)
    oracle = {
        "prompt_text": PROMPT,
        "prompt_tokens": prompt_tokens,
        "greedy_max_new": GREEDY_NEW,
        "greedy_continuation": cont,
        "greedy_continuation_text": rtok.decode(cont),
        "greedy_full_text": rtok.decode(gen),
        "logits_file": "logits.npy",
        "logits_shape": list(logits.shape),
        "logits_dtype": "float32",
        "top1_per_position": [int(i) for i in logits.argmax(-1)],
        "min_top1_top2_gap": float((top[:, -1] - top[:, -2]).min()),
        "max_abs_logit": float(np.abs(logits).max()),
        "heldout_ppl": math.exp(heldout_nll),
        "heldout_ppl_method": (
            f"held-out articles (last {len(held_lines)} of {len(lines)} distinct non-empty lines), each preceded by "
            f"<|endoftext|>, concatenated, cut into non-overlapping windows of {SEQ_LEN}+1 tokens, "
            "every position scored; float32 eager attention, NLL in float64"
        ),
        "heldout_tokens_scored": heldout_count,
        "sample_eval": {
            "ctx": EVAL_CTX,
            "text_tokens": len(sample_ids),
            "chunks": eval_chunks,
            "tokens_scored": eval_scored,
            "perplexity": eval_ppl,
            "method": "llama.cpp convention as `taalasc eval --ctx 64`: tokenize with BOS, "
                      "chunk[0] := BOS, score positions ctx/2..ctx-2",
        },
        "training": {
            "steps": args.steps,
            "seconds": round(train_seconds, 1),
            "seq_len": SEQ_LEN,
            "batch": BATCH,
            "lr": LR,
            "schedule": f"linear warmup {WARMUP} steps, cosine to {MIN_LR_FRACTION} x lr",
            "weight_decay": WEIGHT_DECAY,
            "seed": SEED,
            "train_tokens": len(train_ids),
            "parameters": n_params,
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "safetensors": safetensors.__version__,
            "numpy": np.__version__,
        },
        "notes": "Computed by transformers from the saved folder, loaded with dtype=float32 and "
                 "attn_implementation='eager'; generate(do_sample=False) with the saved generation config "
                 "(stops at <|endoftext|>, id 0).",
    }
    with open(os.path.join(out, "oracle.json"), "w") as f:
        json.dump(oracle, f, indent=1)
        f.write("\n")
    print(f"prompt {prompt_tokens} -> {cont}")
    print(f"greedy: {rtok.decode(gen)!r}")

    # A few more greedy samples for the README.
    samples = {}
    for p in ["The prime minister said", "Police say the fire", "In Afghanistan,"]:
        ids = rtok.encode(p).ids
        with torch.no_grad():
            g = ref.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             do_sample=False, max_new_tokens=40, pad_token_id=0)[0].tolist()
        samples[p] = rtok.decode(g)
        print(f"greedy: {samples[p]!r}")

    write_readme(out, oracle, samples, n_raw, len(lines), len(train_lines), len(held_lines), n_params,
                 len(sample_text.encode()))
    for f in OUTPUT_FILES:  # safetensors creates its file 0600
        os.chmod(os.path.join(out, f), 0o644)
    total = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    for f in sorted(os.listdir(out)):
        print(f"  {f:24s} {os.path.getsize(os.path.join(out, f)):8d} bytes")
    print(f"  total {total} bytes")


def write_readme(out, o, samples, n_raw, n_lines, n_train, n_held, n_params, sample_bytes):
    t = o["training"]
    v = o["versions"]
    s = o["sample_eval"]
    more = "\n".join(f"    {json.dumps(txt, ensure_ascii=False)}" for txt in samples.values())
    text = f"""# tiny-llama: taalasc's bundled example model

A deliberately tiny but genuinely trained Llama (`LlamaForCausalLM`, {n_params:,} parameters,
float32 safetensors) with its own byte-level BPE tokenizer. It writes semi-plausible
news-style English, which is enough to make compiler and quantization experiments
meaningful (perplexity moves when the numbers get worse) while staying small enough
to ship in the repository and run in tests.

    taalasc inspect examples/tiny-llama
    taalasc run     examples/tiny-llama --prompt "The capital of France is" --max-tokens 12
    taalasc eval    examples/tiny-llama --text examples/tiny-llama/sample.txt --ctx 64

## Files

| file | contents |
|---|---|
| `config.json`, `generation_config.json` | Hugging Face Llama config |
| `model.safetensors` | float32 weights, untied `lm_head` |
| `tokenizer.json` | byte-level BPE (Hugging Face `tokenizers` format) |
| `sample.txt` | {sample_bytes} bytes of held-out text (never seen in training) |
| `oracle.json`, `logits.npy` | reference outputs from transformers (see below) |

## Shape

- hidden 64, 2 layers, 4 attention heads, 2 KV heads (grouped-query attention), head_dim 32 (heads x head_dim = 128, wider than hidden: a whole 32-element activation block per head)
- SwiGLU MLP, intermediate 192; RMSNorm eps 1e-5; RoPE theta 10000; max positions 256
- vocab 512, untied input/output embeddings
- tokenizer: byte-level BPE, ByteLevel pre-tokenizer (GPT-2 regex, no prefix space), ByteLevel
  decoder; `<|endoftext|>` is id 0 and serves as BOS and EOS; the post-processor prepends it
  (`<|endoftext|> $A`)

## How it was made

    python3 examples/make_tiny_llama.py

The script is deterministic (fixed seeds, torch deterministic algorithms, 2 threads). With
python {v['python']}, torch {v['torch']} (CPU), transformers {v['transformers']},
tokenizers {v['tokenizers']}, safetensors {v['safetensors']} and numpy {v['numpy']}:

- data: the {n_raw} non-empty lines (one news article each) of `lee_background.cor`, minus
  {n_raw - n_lines} exact duplicates (first occurrence kept) = {n_lines} articles, in file order;
  the first {n_train} train the tokenizer and the model, the last {n_held} are held out
- training: {t['steps']} steps of AdamW (betas 0.9/0.95, weight decay {t['weight_decay']}, grad
  clip 1.0), lr {t['lr']} with {t['schedule']}, batch {t['batch']} x {t['seq_len']} tokens
  sampled at random offsets from the {t['train_tokens']:,}-token training stream (articles
  separated by `<|endoftext|>`); {t['seconds']} s on 2 otherwise idle CPU cores (wall time
  grows a lot when the machine is busy; the result does not change)
- why {t['steps']} steps: the training text is only ~150k tokens, so the model overfits
  quickly. Same recipe with other step counts (held-out ppl, measured on the earlier head_dim 16
  variant): 900 -> 20.89, 1200 -> 20.12,
  1500 -> 20.29, 2000 -> 20.81, 6000 -> 30.52 (while its train-slice ppl falls to 6.4)
- held-out perplexity (transformers, float32, eager attention, {o['heldout_tokens_scored']:,}
  tokens in non-overlapping 128-token windows): **{o['heldout_ppl']:.2f}** (vocab 512)
- `taalasc eval ... --ctx 64` convention (llama.cpp's: chunks of 64 starting with BOS, second
  half scored) on `sample.txt`, computed with transformers: **{s['perplexity']:.4f}**
  ({s['chunks']} chunks, {s['tokens_scored']} scored tokens); `taalasc eval` should print the
  same figure up to float rounding

## Reference outputs (`oracle.json`, `logits.npy`)

Computed by transformers from the saved folder (dtype float32, `attn_implementation="eager"`):
`prompt_tokens` is the tokenization of `"{o['prompt_text']}"` with the BOS the tokenizer adds,
`logits.npy` their float32 logits `{o['logits_shape']}`, and `greedy_continuation` the
{o['greedy_max_new']} ids from `generate(do_sample=False)`:

    {json.dumps(o['greedy_full_text'], ensure_ascii=False)}

More greedy samples (40 new tokens):

{more}

## License / source

The weights and tokenizer were trained by the taalasc authors with the script above. The
training text is `gensim/test/test_data/lee_background.cor` from gensim
(https://github.com/piskvorky/gensim), a package distributed under LGPL-2.1; the corpus is
the Lee et al. (2005) news document collection shipped there as test data. `sample.txt` is
an excerpt of that same file (whole articles from its last 10 % of lines, which were not
used for training). The articles are news text that gensim redistributes as test data; treat
this model and sample as test/demonstration material, not as a general-purpose model.
"""
    with open(os.path.join(out, "README.md"), "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
