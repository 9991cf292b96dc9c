#!/usr/bin/env bash
# Synthesizes every hand-written unit a chip instantiates standalone onto
# both standard-cell libraries, at three or more widths of its parallelism
# parameter(s), with `taalasc synth --unit` (flattened; ROM/SRAM macros as
# blackboxes; `check -assert` must pass), then writes the committed table
# the cost model reads (scripts/synth-table.sh):
#   scripts/synth-units.sh [OUT.tsv]        (default backends/verilog/synth/units.tsv)
# SYNTH_LIBS="sky130 osu018" (default both) picks the libraries.
# SYNTH_UNITS_ONLY=tls_norm restricts it to units whose name matches.
# SYNTH_TIMEOUT=seconds per run (default 1800): a run that does not finish
# is reported and left out of the table (its unit then has fewer widths).
# Runs one at a time under `nice -n 10`. Slow: a benchmark, not a test
# (the wide tls_matvec and tls_attn points take many minutes each on a
# loaded 2-core machine). A finished run is reused (`taalasc synth --unit`
# keeps its log), so a rerun only re-reads logs.
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
# unit and its parameters; the widths are the parallelism parameters
# (W: link width; V: scratchpad line width; LANES/ROWS: MAC lanes and rows
# per cycle, V = ROWS; HP/KP/BPC: attention heads, positions and blocks per
# cycle), the rest small model shapes (the unit's defaults otherwise).
# Cheap points first.
RUNS=(
  "tls_link W=8" "tls_link W=32" "tls_link W=128"
  "tls_out V=1 CW=1" "tls_out V=4 CW=3" "tls_out V=16 CW=5"
  "tls_norm V=1" "tls_norm V=2" "tls_norm V=4"
  "tls_elem V=1" "tls_elem V=2" "tls_elem V=4"
  "tls_rope V=1" "tls_rope V=2" "tls_rope V=4"
  "tls_wfetch LANES=4 COLS=1024 ASYM=1 CAW=12 SAW=10"
  "tls_wfetch LANES=16 COLS=1024 ASYM=1 CAW=12 SAW=10"
  "tls_wfetch LANES=64 COLS=1024 ASYM=1 CAW=12 SAW=10"
  "tls_embed LANES=16 V=1" "tls_embed LANES=64 V=1" "tls_embed LANES=256 V=1"
  "tls_matvec LANES=4 ROWS=1" "tls_matvec LANES=16 ROWS=1"
  "tls_embed LANES=64 V=4" "tls_embed LANES=64 V=16"
  "tls_attn HD=64 NH=4 NKV=1 CTX=16 HP=1 KP=1 BPC=1"
  "tls_attn HD=64 NH=4 NKV=1 CTX=16 HP=1 KP=2 BPC=1"
  "tls_attn HD=64 NH=4 NKV=1 CTX=16 HP=2 KP=1 BPC=1"
  "tls_attn HD=64 NH=4 NKV=1 CTX=16 HP=1 KP=4 BPC=1"
  "tls_matvec LANES=16 ROWS=4"
  "tls_matvec LANES=64 ROWS=1"
  "tls_attn HD=64 NH=4 NKV=1 CTX=16 HP=2 KP=2 BPC=2"
  "tls_matvec LANES=4 ROWS=16"
  "tls_attn HD=64 NH=4 NKV=1 CTX=16 HP=4 KP=4 BPC=2"
  "tls_matvec LANES=256 ROWS=1"
  "tls_norm V=16" "tls_elem V=16" "tls_rope V=16"
)
LIBS=()
for l in ${SYNTH_LIBS:-sky130 osu018}; do
  case $l in
    sky130) LIBS+=("$SKY") ;;
    osu018) LIBS+=("$OSU") ;;
    *) echo "${0##*/}: unknown library $l (sky130, osu018)" >&2; exit 1 ;;
  esac
done
failed=0
for lib in "${LIBS[@]}"; do
  for run in "${RUNS[@]}"; do
    set -- $run
    unit=$1; shift
    [ -n "${SYNTH_UNITS_ONLY:-}" ] && [[ "$unit" != *"$SYNTH_UNITS_ONLY"* ]] && continue
    pargs=()
    for p in "$@"; do pargs+=(--param "$p"); done
    joined="$*"
    tag=$unit-${joined// /_}-$(basename "$lib" | cut -d. -f1)
    t0=$(date +%s)
    if line=$(timeout "${SYNTH_TIMEOUT:-1800}" nice -n 10 "$BIN" synth --unit "$unit" "${pargs[@]}" --liberty "$lib" --work "$WORK/$tag" --tsv); then
      printf '%s\t%ss\n' "$line" "$(( $(date +%s) - t0 ))" >&2
    else
      echo "${0##*/}: $tag did not finish (timeout or error) after $(( $(date +%s) - t0 )) s; left out" >&2
      failed=$((failed + 1))
    fi
  done
done
scripts/synth-table.sh "$OUT"
[ "$failed" -eq 0 ] || echo "${0##*/}: $failed run(s) left out of $OUT" >&2
