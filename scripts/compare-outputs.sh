#!/usr/bin/env bash
# Builds a fixed set of chips with one taalasc binary into one folder, so that
# two binaries (before and after a refactor) can be compared with `diff -r`:
#   bash scripts/compare-outputs.sh BIN OUT
#   diff -r -x timings.json -x sim OUT_BEFORE OUT_AFTER
# Every input path is repo-relative, so manifests record the same source paths
# whichever binary ran. Needs the data of scripts/fetch-data.sh.
set -euo pipefail
bin=$(realpath "$1")
out=$2
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p "$out"
out=$(realpath "$out")
data=.cache/data
step() { echo "compare-outputs: $*" >&2; }
for f in tests/fixtures/rtl/*/; do
  name=$(basename "$f")
  step "RTL fixture $name"
  "$bin" build "$f" -o "$out/rtl-$name.chip" --lanes 4 --context 8 >/dev/null
done
step "tiny-llama, default options"
"$bin" build examples/tiny-llama -o "$out/tiny-llama.chip" >/dev/null
step "tiny-llama, 2-chip board, 3 users"
"$bin" build examples/tiny-llama -o "$out/tiny-llama-board.chip" --lanes 16 --context 32 --users 3 --chips 2 >/dev/null
step "SmolLM2, 2 layers, RTL at 16 lanes"
"$bin" build $data/SmolLM2-135M-Instruct.Q4_1.gguf -o "$out/smollm2-2l.chip" --layers 2 --lanes 16 >/dev/null
step "SmolLM2, --bits auto --bpw 4.0 (image only)"
"$bin" build $data/SmolLM2-135M-Instruct.Q4_1.gguf -o "$out/smollm2-auto.chip" --context 1024 \
  --bits auto --bpw 4.0 --calib $data/calib_wiki.txt --calib-chunks 4 --no-rtl >/dev/null
step "done: $out"
