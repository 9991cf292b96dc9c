#!/usr/bin/env bash
# Synthesizes every hand-written unit standalone onto both standard-cell
# libraries with `taalasc synth --unit` and writes the committed table the
# cost model reads:
#   scripts/synth-units.sh [OUT.tsv]        (default backends/verilog/synth/units.tsv)
# SYNTH_LIBS="sky130 osu018" (default both) picks the libraries; rows are
# written as each run finishes (OUT.partial), OUT when all are done.
# Slow (tls_matvec at 256 lanes takes minutes): a benchmark, not a test.
# SYNTH_UNITS_ONLY=tls_norm restricts it to units whose name matches (for a quick look).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/tools.sh
need_tools yosys gzip osu018
OUT=${1:-backends/verilog/synth/units.tsv}
SKY=${SKY130_LIB:-backends/verilog/synth/liberty/sky130hd_tt.lib.gz}
[ -r "$SKY" ] || { echo "${0##*/}: $SKY (sky130_fd_sc_hd liberty) is missing; set SKY130_LIB" >&2; exit 1; }
OSU=$OSU018_LIB
cargo build --bin taalasc -q
BIN=target/debug/taalasc
WORK=${SYNTH_WORK:-target/synth-units}
mkdir -p "$WORK"
# unit and its parameter sets ("-" = its one configuration)
# (matvec at 256 lanes is left out by default: about an hour per library
# on a loaded 2-core machine; SYNTH_UNITS_WIDE=1 adds it.)
RUNS=(
  "tls_link W=8" "tls_link W=32" "tls_link W=128"
  "tls_matvec LANES=4" "tls_matvec LANES=16"
  "tls_embed LANES=16" "tls_embed LANES=64" "tls_embed LANES=256"
  "tls_out -" "tls_rope -" "tls_elem -" "tls_norm -"
  "tls_matvec LANES=64" "tls_attn -"
)
[ -n "${SYNTH_UNITS_WIDE:-}" ] && RUNS+=("tls_matvec LANES=256")
LIBS=()
for l in ${SYNTH_LIBS:-sky130 osu018}; do
  case $l in
    sky130) LIBS+=("$SKY") ;;
    osu018) LIBS+=("$OSU") ;;
    *) echo "${0##*/}: unknown library $l (sky130, osu018)" >&2; exit 1 ;;
  esac
done
TMP=$OUT.partial
printf 'unit\tparams\tlibrary\tarea_um2\tnand2_eq\tcrit_ns\tcrit_fo4\tcells\tcheck\tseconds\n' > "$TMP"
for lib in "${LIBS[@]}"; do
  for run in "${RUNS[@]}"; do
    set -- $run
    unit=$1; shift
    [ -n "${SYNTH_UNITS_ONLY:-}" ] && [[ "$unit" != *"$SYNTH_UNITS_ONLY"* ]] && continue
    pargs=()
    for p in "$@"; do [ "$p" = - ] || pargs+=(--param "$p"); done
    tag=$unit-${*// /_}-$(basename "$lib" | cut -d. -f1)
    t0=$(date +%s)
    line=$(nice "$BIN" synth --unit "$unit" "${pargs[@]}" --liberty "$lib" --work "$WORK/$tag" --tsv)
    printf '%s\t%s\n' "$line" "$(( $(date +%s) - t0 ))" | tee -a "$TMP"
  done
done
mv "$TMP" "$OUT"
echo "wrote $OUT" >&2
