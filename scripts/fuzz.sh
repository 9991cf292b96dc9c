#!/usr/bin/env bash
# Runs each cargo-fuzz target of fuzz/ for N executions (default 1,000,000),
# one after another in a single process each, and prints per target the
# executions, exec/s, corpus size and any crash. Needs `cargo install
# cargo-fuzz` and a nightly toolchain.
#
#   scripts/fuzz.sh [N] [target...]     (targets: gguf safetensors_header hf_config)
set -euo pipefail
N=${1:-1000000}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(gguf safetensors_header hf_config)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT/fuzz"
python3 "$ROOT/scripts/fuzz_seeds.py" seeds
mkdir -p seeds/hf_config logs
for f in "$ROOT"/tests/fixtures/hf/*/config.json "$ROOT"/examples/tiny-llama/config.json; do
    cp "$f" "seeds/hf_config/$(basename "$(dirname "$f")").json"
done
for t in "${TARGETS[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    start=$(date +%s)
    status=0
    cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        -runs="$N" -print_final_stats=1 -artifact_prefix="artifacts/$t/" \
        >"logs/$t.log" 2>&1 || status=$?
    secs=$(( $(date +%s) - start ))
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$' || echo "?")
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$' || echo "?")
    corpus=$(ls "corpus/$t" | wc -l)
    crashes=$(ls "artifacts/$t" | wc -l)
    echo "$t: exit $status, $execs executions in ${secs}s ($rate exec/s), corpus $corpus files, $crashes crash artifacts (log: fuzz/logs/$t.log)"
done
