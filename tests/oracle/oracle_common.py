"""Helpers shared by the oracle fixture generators in tests/oracle/.

Not a fixture generator itself.  See make_hf_fixtures.py / make_gguf_fixtures.py.
"""
import json
import os
import sys

import numpy as np
import torch

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LEE_PATH = os.environ.get(
    "LEE_TEXT", "/work/dl/gensim/gensim/test/test_data/lee_background.cor")
PROMPT_TEXT = "The capital of France is"
EOT = "<|endoftext|>"


def versions():
    import tokenizers
    import transformers
    from importlib.metadata import version
    try:
        gguf_v = version("gguf")
    except Exception:
        gguf_v = None
    try:
        st_v = version("safetensors")
    except Exception:
        st_v = None
    return {"transformers": transformers.__version__, "torch": torch.__version__,
            "tokenizers": tokenizers.__version__, "gguf": gguf_v, "safetensors": st_v,
            "numpy": np.__version__, "python": sys.version.split()[0]}


def randomize_(model, seed, lin_std=0.15, emb_std=0.5, norm_std=0.2, bias_std=0.1):
    """Overwrite every parameter with seeded random values.

    * norm / layernorm gains: 1 + norm_std * randn
    * every bias (linear, conv1d, layernorm): bias_std * randn
    * embeddings (token and position): emb_std * randn
    * all other weights: lin_std * randn
    Tied parameters are shared Parameter objects, so they stay tied.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            shape = p.shape
            r = torch.randn(shape, generator=g, dtype=torch.float32)
            if leaf == "bias":
                v = bias_std * r
            elif "norm" in name or ".ln_" in name or name.startswith("ln_"):
                v = 1.0 + norm_std * r
            elif "embed" in name or ".wte." in name or ".wpe." in name:
                v = emb_std * r
            else:
                v = lin_std * r
            p.copy_(v.to(p.dtype))
    return model


def random_tokens(seed, n, vocab, lo=3):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(lo, vocab, (n,), generator=g).tolist()


@torch.no_grad()
def logits_of(model, ids):
    out = model(torch.tensor([ids], dtype=torch.long)).logits[0]
    return out.to(torch.float32).numpy()


@torch.no_grad()
def greedy(model, prompt, n_new):
    """model.generate(do_sample=False) cross-checked with a manual argmax loop.

    EOS stopping is disabled so exactly n_new tokens are produced from plain argmax.
    """
    saved = (model.generation_config.eos_token_id, model.config.eos_token_id)
    model.generation_config.eos_token_id = None  # no EOS stopping: exactly n_new argmax steps
    model.config.eos_token_id = None
    try:
        out = model.generate(torch.tensor([prompt], dtype=torch.long), do_sample=False,
                             max_new_tokens=n_new, pad_token_id=0)
    finally:
        model.generation_config.eos_token_id, model.config.eos_token_id = saved
    cont = out[0, len(prompt):].tolist()
    seq = list(prompt)
    for _ in range(n_new):
        lg = model(torch.tensor([seq], dtype=torch.long)).logits[0, -1]
        seq.append(int(torch.argmax(lg)))
    manual = seq[len(prompt):]
    assert cont == manual, f"generate {cont} != manual argmax {manual}"
    assert len(cont) == n_new
    return cont


def min_top2_gap(logits):
    s = np.sort(logits, axis=-1)
    return float((s[:, -1] - s[:, -2]).min())


def lee_paragraphs(n):
    with open(LEE_PATH, "rb") as fh:
        lines = [l.strip() for l in fh.read().decode("utf-8").split("\n") if l.strip()]
    return lines[:n]


def train_bytelevel_bpe(vocab_size, n_paragraphs=8):
    """Tiny GPT-2-style byte-level BPE trained on the first paragraphs of lee_background.cor.

    ids: 0 = <|endoftext|>, 1..256 = the 256 byte symbols, then merges.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, show_progress=False,
        special_tokens=[EOT], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(lee_paragraphs(n_paragraphs), trainer=trainer)
    assert tok.get_vocab_size() == vocab_size, tok.get_vocab_size()
    return tok


def tokenizer_vocab_and_merges(tok):
    """(tokens in id order, merges as 'a b' strings) of a trained BPE tokenizer."""
    d = json.loads(tok.to_str())
    vocab = d["model"]["vocab"]
    tokens = [None] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    assert all(t is not None for t in tokens)
    merges = []
    for m in d["model"]["merges"]:
        merges.append(m if isinstance(m, str) else " ".join(m))
    return tokens, merges


def write_json(path, obj):
    with open(path, "w") as fh:
        json.dump(obj, fh, indent=1)
        fh.write("\n")


def dir_size(path):
    tot = 0
    for root, _, files in os.walk(path):
        for f in files:
            tot += os.path.getsize(os.path.join(root, f))
    return tot
