#!/usr/bin/env bash
# Rebuilds backends/verilog/synth/units.tsv from the finished runs in
# target/synth-units (or $SYNTH_WORK; every run folder with a complete log;
# reruns nothing:
# `taalasc synth --unit` reuses a finished log) -- used to merge the
# per-library runs of scripts/synth-units.sh. Column 10: Yosys CPU seconds
# (ABC runs in a child process and is not included); column 11: the last
# commit that changed backends/verilog/rtl (the RTL the runs synthesized:
# `taalasc synth --unit` reruns a unit whose source is newer than its log).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-backends/verilog/synth/units.tsv}
BIN=target/debug/taalasc
WORK=${SYNTH_WORK:-target/synth-units}
RTL=$(git log -1 --format=%h -- backends/verilog/rtl)
printf 'unit\tparams\tlibrary\tarea_um2\tnand2_eq\tcrit_ns\tcrit_fo4\tcells\tcheck\tyosys_cpu_s\trtl\n' > "$OUT.tmp"
for d in "$WORK"/*/; do
  tag=$(basename "$d")
  log=$(ls "$d"synth/*.liberty.log 2>/dev/null | head -1) || true
  [ -n "$log" ] && grep -q "End of script" "$log" || continue
  unit=${tag%%-*}
  rest=${tag#*-}
  params=${rest%-*}
  libtag=${rest##*-}
  case $libtag in
    sky130hd_tt) lib=backends/verilog/synth/liberty/sky130hd_tt.lib.gz ;;
    osu018_stdcells) lib=/usr/share/qflow/tech/osu018/osu018_stdcells.lib ;;
    *) continue ;;
  esac
  pargs=()
  if [ "$params" != - ] && [ -n "$params" ]; then
    IFS=_ read -ra ps <<< "$params"
    for p in "${ps[@]}"; do pargs+=(--param "$p"); done
  fi
  secs=$(grep -o "CPU: user [0-9.]*s" "$log" | tail -1 | grep -o "[0-9.]*" | head -1)
  line=$("$BIN" synth --unit "$unit" "${pargs[@]}" --liberty "$lib" --work "$d" --tsv)
  printf '%s\t%s\t%s\n' "$line" "${secs%.*}" "$RTL" >> "$OUT.tmp"
done
{ head -1 "$OUT.tmp"; tail -n +2 "$OUT.tmp" | sort -t$'\t' -k3,3 -k1,1 -k2,2V; } > "$OUT"
rm "$OUT.tmp"
cat "$OUT"
