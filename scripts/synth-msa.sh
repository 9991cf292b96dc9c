#!/usr/bin/env bash
# The multiply-select-add measurement (issue 13): synthesizes the two lane
# arrays of backends/verilog/rtl/experiments/msa.v (msa_mul: one general
# multiplier per weight; msa_sel: products per code value shared across
# rows, selected per lane) onto both libraries and writes
#   backends/verilog/synth/msa.tsv  (the unit-table columns plus R, K, B and
#   NAND2-eq per weight: nand2_eq / (R*K)).
# MSA_RS="1 4 16 64" MSA_K=8 MSA_B=4 SYNTH_LIBS="sky130 osu018" choose the runs.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/tools.sh
need_tools yosys gzip osu018
OUT=${1:-backends/verilog/synth/msa.tsv}
SKY=${SKY130_LIB:-backends/verilog/synth/liberty/sky130hd_tt.lib.gz}
[ -r "$SKY" ] || { echo "${0##*/}: $SKY (sky130_fd_sc_hd liberty) is missing; set SKY130_LIB" >&2; exit 1; }
cargo build --bin taalasc -q
BIN=target/debug/taalasc
WORK=${SYNTH_WORK:-target/synth-msa}
K=${MSA_K:-8}
B=${MSA_B:-4}
TMP=$OUT.partial
[ -s "$TMP" ] || printf 'unit\tparams\tlibrary\tarea_um2\tnand2_eq\tcrit_ns\tcrit_fo4\tcells\tcheck\tseconds\tnand2_eq_per_weight\n' > "$TMP"
for l in ${SYNTH_LIBS:-sky130 osu018}; do
  case $l in sky130) lib=$SKY ;; osu018) lib=$OSU018_LIB ;; *) echo "unknown library $l" >&2; exit 1 ;; esac
  for R in ${MSA_RS:-1 4 16 64}; do
    for unit in msa_mul msa_sel; do
      t0=$(date +%s)
      line=$(nice "$BIN" synth --unit $unit --rtl backends/verilog/rtl/experiments/msa.v \
        --param R=$R --param K=$K --param B=$B --liberty "$lib" \
        --work "$WORK/$unit-R$R-K$K-B$B-$l" --tsv)
      per=$(echo "$line" | awk -F'\t' -v w=$((R * K)) '{ printf "%.1f", $5 / w }')
      printf '%s\t%s\t%s\n' "$line" "$(( $(date +%s) - t0 ))" "$per" | tee -a "$TMP"
    done
  done
done
mv "$TMP" "$OUT"
echo "wrote $OUT" >&2
