#!/usr/bin/env bash
# Builds every chip image of the README quality table from SmolLM2-135M and
# scores them all on lee_background.cor (ctx 512, llama.cpp convention, all
# chunks) in one `taalasc eval` pass, so every row sees the same windows and
# the float model runs once per chunk.
#
#   bash scripts/quality-table.sh [OUT_DIR] [--chunks N]
#
# Takes about 110 minutes on 2 cores. Prints one JSON object per image.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/quality}
shift || true
mkdir -p "$out"
bash scripts/fetch-data.sh >/dev/null
cargo build --release -p taalasc
t=target/release/taalasc
model=.cache/data/SmolLM2-135M-Instruct.Q4_1.gguf
calib=(--calib .cache/data/calib_wiki.txt --calib-chunks 32)
build() {
    local name=$1
    shift
    if [ ! -d "$out/$name.chip" ]; then
        echo "== build $name: $*" >&2
        "$t" build "$model" -o "$out/$name.chip" --context 1024 "$@" >&2
    fi
    images+=("$out/$name.chip")
}
images=()
build default
# Uniform: every matrix, the embedding (tied head) included, in one format.
for f in s8g32h a6g32h a4g32h s3g32h; do
    build "$f-rtn" --format "$f" --table-format "$f" --quantizer rtn
    build "$f-gptq" --format "$f" --table-format "$f" --quantizer gptq "${calib[@]}"
done
# `auto` at the exact ROM of uniform a4g32h, for the equal-ROM comparison.
rom=$(python3 -c "import json;print(json.load(open('$out/a4g32h-gptq.chip/report.json'))['total_bits'])")
for q in rtn gptq; do
    build "auto3.5-$q" --bits auto --bpw 3.5 --quantizer $q "${calib[@]}"
    build "auto-rom-a4g32h-$q" --bits auto --rom-budget "$rom" --quantizer $q "${calib[@]}"
done
build auto4.0-gptq --bits auto --bpw 4.0 --quantizer gptq "${calib[@]}"
# The same with 2x and 4x the calibration (64 and 128 windows; builds of
# about 6 and 12 minutes).
for n in 64 128; do
    build "auto4.0-gptq-c$n" --bits auto --bpw 4.0 --quantizer gptq \
        --calib .cache/data/calib_wiki.txt --calib-chunks "$n"
done
"$t" eval "${images[@]}" --text .cache/data/lee_background.cor --ctx 512 --json "$@" \
    > "$out/eval.json"
python3 - "$out/eval.json" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
rows = rows if isinstance(rows, list) else [rows]
print("| image | bits/weight | ppl | KL (nats) | top-1 |")
print("|---|---|---|---|---|")
for r in rows:
    name = r["model"].rsplit("/", 1)[-1].removesuffix(".chip")
    print(f"| {name} | {r['bits_per_weight']:.3f} | {r['perplexity']:.4f} | {r['kl_mean']:.4f} | {100*r['top1']:.1f}% |")
PY
