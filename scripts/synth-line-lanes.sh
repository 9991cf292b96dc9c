#!/bin/sh
# Generic Yosys cells of tls_matvec (LANES=4) and tls_embed (LANES=64) at
# scratchpad lines V = 1 and 8: the per-lane figures of
# `cost::cells::MATVEC_LOAD_LANE_GENERIC` and `EMBED_LANE_GENERIC`.
# Usage: scripts/synth-line-lanes.sh   (Yosys 0.23; a few minutes)
set -eu
rtl="$(cd "$(dirname "$0")/.." && pwd)/backends/verilog/rtl"
tmp=$(mktemp -d)
for v in 1 8; do
  yosys -q -l "$tmp/m$v.log" -p "read_verilog $rtl/tls_macros_bb.v; read_verilog $rtl/tls_matvec.v; \
    chparam -set LANES 4 -set XB 8 -set AW 12 -set WAW 10 -set V $v tls_matvec; \
    hierarchy -top tls_matvec; synth -top tls_matvec -flatten; stat" >/dev/null
  printf 'tls_matvec LANES=4 V=%s\t%s\n' "$v" "$(grep -m1 'Number of cells' "$tmp/m$v.log" | awk '{print $4}')"
  yosys -q -l "$tmp/e$v.log" -p "read_verilog $rtl/tls_embed.v; \
    chparam -set LANES 64 -set AW 12 -set WAW 10 -set V $v tls_embed; \
    hierarchy -top tls_embed; synth -top tls_embed -flatten; stat" >/dev/null
  printf 'tls_embed LANES=64 V=%s\t%s\n' "$v" "$(grep -m1 'Number of cells' "$tmp/e$v.log" | awk '{print $4}')"
done
rm -rf "$tmp"
