#!/usr/bin/env bash
# The main job on the bundled example model, from a fresh Debian machine with Rust:
#   bash scripts/example.sh
# Builds taalasc, then inspects, runs and scores examples/tiny-llama (a small
# Llama trained on news text, with its own tokenizer, shipped in the
# repository), builds its chip image and RTL, runs the image on the bit-exact
# integer reference, and simulates the RTL under Verilator against it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# `sim` (the last step) needs Verilator, which compiles with g++ and make.
source scripts/tools.sh
need_tools verilator g++ make
# The dev profile, which Cargo.toml optimises (opt-level 2, dependencies 3):
# the test suite builds the same binary, so CI compiles the workspace once
# instead of once more for `--release`.
cargo build --quiet --bin taalasc
bin=target/debug/taalasc
model=examples/tiny-llama
set -x
$bin inspect $model
$bin run $model --prompt "The capital of France is" --max-tokens 12
$bin eval $model --text examples/tiny-llama/sample.txt --ctx 64
$bin build $model -o target/tiny-llama.chip --force
$bin run target/tiny-llama.chip --prompt "The capital of France is" --max-tokens 12
$bin eval target/tiny-llama.chip --text examples/tiny-llama/sample.txt --ctx 64
$bin sim target/tiny-llama.chip --prompt "The capital of France is"
