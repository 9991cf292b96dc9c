#!/usr/bin/env bash
# The main job on the bundled example model, from a fresh Debian machine with Rust:
#   bash scripts/example.sh
# Builds taalasc, then inspects and runs examples/tiny-llama (a small random
# Llama with its own tokenizer, shipped in the repository).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release --quiet --bin taalasc
bin=target/release/taalasc
model=examples/tiny-llama
set -x
$bin inspect $model
$bin run $model --prompt "The capital of France is" --max-tokens 12
$bin eval $model --text examples/tiny-llama/sample.txt --ctx 64
