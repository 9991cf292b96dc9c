"""Checks the `taalasc` CLI against the committed transformers oracles, with numpy.

For every fixture under tests/fixtures/hf/, the GGUF tiny Llama and the
bundled example model, runs
    taalasc run FIXTURE --tokens ... --max-tokens 0 --dump-logits OUT.npy
and compares OUT.npy with the fixture's logits (max |delta| <= 1e-4, same top-1
at every position), then runs
    taalasc run FIXTURE --tokens GREEDY_PROMPT --max-tokens N --json
and requires the exact greedy continuation.

Usage: python3 tests/oracle/check_cli.py path/to/taalasc
Prints 'N passed, N failed' and exits non-zero on any failure.
"""
import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures"


def cases():
    for d in sorted((FIX / "hf").iterdir()):
        yield d.name, d, d / "oracle.json", d / "logits.npy"
    g = FIX / "gguf"
    yield "gguf_tiny_llama", g / "tiny_llama.gguf", g / "tiny_llama_oracle.json", g / "tiny_llama_logits.npy"
    e = ROOT / "examples" / "tiny-llama"
    yield "example_tiny_llama", e, e / "oracle.json", e / "logits.npy"


def run(binary, args):
    p = subprocess.run([binary, *map(str, args)], capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError(f"taalasc {' '.join(map(str, args))} exited {p.returncode}: {p.stderr}")
    return p.stdout


def check(binary, model, oracle_path, logits_path):
    oracle = json.loads(oracle_path.read_text())
    want = np.load(logits_path)
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "logits.npy"
        toks = ",".join(map(str, oracle.get("tokens", oracle.get("prompt_tokens"))))
        run(binary, ["run", model, "--tokens", toks, "--max-tokens", 0, "--dump-logits", out])
        got = np.load(out)
    assert got.dtype == np.float32, got.dtype
    assert got.shape == want.shape, (got.shape, want.shape)
    delta = float(np.abs(got - want).max())
    assert delta <= 1e-4, f"max |delta logit| = {delta}"
    bad = np.nonzero(got.argmax(-1) != want.argmax(-1))[0]
    assert bad.size == 0, f"top-1 differs at positions {bad.tolist()}"
    prompt = ",".join(map(str, oracle.get("greedy_prompt", oracle.get("prompt_tokens"))))
    res = json.loads(run(binary, ["run", model, "--tokens", prompt, "--max-tokens", oracle["greedy_max_new"], "--json"]))
    assert res["generated_tokens"] == oracle["greedy_continuation"], (res["generated_tokens"], oracle["greedy_continuation"])
    return delta


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    binary = sys.argv[1]
    passed = failed = 0
    for name, model, oracle, logits in cases():
        try:
            delta = check(binary, model, oracle, logits)
            print(f"ok   {name:<18} max|delta|={delta:.2e}")
            passed += 1
        except AssertionError as e:
            print(f"FAIL {name:<18} {e}")
            failed += 1
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
