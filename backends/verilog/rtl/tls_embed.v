// tls_embed: one row of a quantized table into the residual stream
// (UNITS.md, `tls_embed`; `table_value` and the Embed / AddPositions arms
// of backends/reference/src/exec.rs).
//
// Element i of row r: weight ROM word (r/ROWS)·CH + i/LANES (CH =
// ceil(cols / LANES)), row slice r % ROWS of it (bits [WW·(r % ROWS) +:
// WW]), code in lane i % LANES, scale fields of its 32-block (field
// (i % LANES)/32 when LANES >= 32, else field 0); the layout of tls_matvec
// (a tied table shares the head's ROM). wr_grp = r/ROWS and wr_chunk =
// i/LANES give the word's row group and chunk apart.
//   code = code_i + code_bias
//   w    = block_term(d_mant, d_exp, code, 0) [+ block_term(m_mant, m_exp, 1, 0)]
//   v    = sat_w48(w)
//   out  = residual_add(base, v), base = cfg_add ? spad[dst + i] (R32) : 0
// written (sign-extended R32) to spad[dst + i].
//
// Steps of E = min(V, LANES) elements (V: the scratchpad line, words; dst
// is a multiple of V): step k reads one ROM word (chunk k·E / LANES, lanes
// k·E mod LANES ..) and, when cfg_add, the scratchpad line holding
// dst + k·E, and writes its E values into that line with one masked line
// write (mask bits (k·E mod V) ..; elements past cols masked off). The ROM
// is read once per step (the word is not latched), so the unit relies only
// on `wr_data` being valid the cycle after `wr_en`.
//
// Cycles (start in cycle 0, `done` in cycle D, busy in 1..D), with
// S = ceil(cols / E) steps:
//   D = S + 6 (cols > 0; cycle 1 computes row·CH, step k is read in
//   cycle 2 + k and written in cycle 6 + k),  D = 1 (cols = 0).
// At V = 1: one element per cycle, D = cols + 6.
// Pipeline (RFC 0005, "Pipelining for the clock"): p1 selects the codes
// and fields and forms the code-scale products, p2 shifts, adds and
// saturates them into w, p3 adds w into the residual; the write is
// registered.
// Scratchpad lines are V x 48 bits: past Verilator's 8k-bit replication
// warning at V = 256, on purpose.
/* verilator lint_off WIDTHCONCAT */
module tls_embed #(
    parameter integer AW = 16,
    parameter integer LANES = 32,
    parameter integer ROWS = 1,
    parameter integer WAW = 16,
    parameter integer RW = 24,
    parameter integer V = 1,
    parameter integer NB = (LANES >= 32) ? LANES / 32 : 1,
    parameter integer WW = LANES * 8 + NB * 36
) (
    input  wire           clk,
    input  wire           rst,
    input  wire           start,
    input  wire [AW-1:0]  cfg_dst,
    input  wire [19:0]    cfg_cols,
    input  wire [23:0]    cfg_row,
    input  wire           cfg_add,
    input  wire           cfg_asym,
    input  wire [7:0]     cfg_code_bias,
    output wire           busy,
    output reg            done,
    // weight ROM
    output wire           wr_en,
    output wire [WAW-1:0] wr_addr,
    output wire [RW-1:0]  wr_grp,
    output wire [19:0]    wr_chunk,
    input  wire [ROWS*WW-1:0] wr_data,
    // scratchpad
    output wire           ra_en,
    output wire [AW-1:0]  ra_addr,
    input  wire [48*V-1:0] ra_data,
    output reg            w_en,
    output reg  [V-1:0]   w_mask,
    output reg  [AW-1:0]  w_addr,
    output reg  [48*V-1:0] w_data
);
  localparam integer LG = $clog2(LANES);
  localparam integer LGR = $clog2(ROWS);
  localparam integer SLW = (LGR > 0) ? LGR : 1;

  // sat_w48(rshr(p, -up)) of a 22-bit signed p, any 7-bit signed up
  // (`shift_sat_w48` in compiler/numerics/src/linear.rs).
  function [47:0] shsat;
    input [21:0] p;
    input [6:0] up;
    reg [69:0] l;
    reg [22:0] r;
    begin
      if (up[6]) begin
        // rshr(p, s) = ((p >>> (s - 1)) + 1) >>> 1, s = -up in 1..64
        r = $signed({p[21], p}) >>> (~up);
        r = r + 23'd1;
        shsat = {{26{r[22]}}, r[22:1]};
      end else if (p == 22'd0) begin
        shsat = 48'd0;
      end else if (up >= 7'd48) begin
        shsat = {p[21], {47{~p[21]}}};
      end else begin
        l = {{48{p[21]}}, p} << up;
        if ((&l[69:47]) | ~(|l[69:47])) shsat = l[47:0];
        else shsat = {l[69], {47{~l[69]}}};
      end
    end
  endfunction

  localparam integer E = (V < LANES) ? V : LANES;  // elements per step
  localparam integer LGE = $clog2(E);
  localparam integer NPOS = LANES / E;  // steps per ROM word
  localparam integer LGP = $clog2(NPOS);
  localparam integer PW = (LGP > 0) ? LGP : 1;
  localparam integer EPV = V / E;  // steps per scratchpad line
  localparam integer LGEV = $clog2(EPV);
  localparam integer OW = (LGEV > 0) ? LGEV : 1;

  reg           run;
  reg           setup;
  reg  [20:0]   ic;  // steps issued
  reg  [20:0]   wc;  // steps written
  reg  [WAW-1:0] wbase;  // (row / ROWS) · CH
  reg  [RW-1:0] grp;  // row / ROWS
  reg  [SLW-1:0] slice;  // row % ROWS
  reg           p1, p2, p3;
  reg  [PW-1:0] pos1;  // step within the ROM word
  reg  [OW-1:0] vo1, vo2, vo3;  // step within the scratchpad line
  reg  [E-1:0]  ok1, ok2, ok3;  // elements before cols
  reg  [48*E-1:0] v3;
  reg  [32*E-1:0] base2, base3;

  wire [20:0]   cols_x = {1'b0, cfg_cols};
  wire [20:0]   steps = (cols_x + E[20:0] - 21'd1) >> LGE;
  wire          issue = run && !setup && (ic != steps);
  wire [20:0]   ch = (cols_x + LANES[20:0] - 21'd1) >> LG;
  wire [23:0]   row_grp = cfg_row >> LGR;
  wire [44:0]   wb_full = {21'd0, row_grp} * {24'd0, ch};
  wire [WAW+44:0] wb_x = {{WAW{1'b0}}, wb_full};
  wire [AW+20:0] ie_a = {{AW{1'b0}}, ic} << LGE;  // first element of step ic
  wire [AW+20:0] we_a = {{AW{1'b0}}, wc} << LGE;
  wire [WAW+20:0] chunk = ({{WAW{1'b0}}, ic} << LGE) >> LG;
  wire [20:0]   ick = (ic << LGE) >> LG;
  /* verilator lint_off UNUSEDSIGNAL */
  wire [20:0]   ic_p = ic;
  wire [20:0]   ie = ic << LGE;
  /* verilator lint_on UNUSEDSIGNAL */
  localparam [AW-1:0] VMASK = ~(V[AW-1:0] - 1'b1);

  assign busy    = run;
  assign wr_en   = issue;
  assign wr_addr = issue ? wbase + chunk[WAW-1:0] : {WAW{1'b0}};
  assign wr_grp  = issue ? grp : {RW{1'b0}};
  assign wr_chunk = issue ? ick[19:0] : 20'd0;
  assign ra_en   = issue && cfg_add;
  assign ra_addr = (issue && cfg_add) ? cfg_dst + ie_a[AW-1:0] : {AW{1'b0}};

  // stage 1 (p1): the row's slice, the step's E lane codes and scale
  // fields from the word. Indexed part-selects, so synthesis builds
  // balanced multiplexer trees (log2 of the choices deep); a chain of
  // `if (pos1 == q)` overrides mapped to one mux per choice in series,
  // 412 FO4 at 256 lanes.
  wire [WW-1:0] wsl = (LGR > 0) ? wr_data[WW*slice+:WW] : wr_data[WW-1:0];
  wire [8*LANES-1:0] codes = wsl[8*LANES-1:0];
  wire [36*NB-1:0] flds = wsl[WW-1:8*LANES];
  wire [8*E-1:0] code = codes[8*E*pos1+:8*E];
  reg [36*E-1:0] fld;
  integer j, q;
  always @* begin
    for (j = 0; j < E; j = j + 1) begin
      fld[36*j+:36] = flds[36*((pos1*E+j)>>5)+:36];
    end
  end

  // The scratchpad line read (cfg_add): the step's E words.
  reg [32*E-1:0] rbase;
  always @* begin
    for (j = 0; j < E; j = j + 1) rbase[32*j+:32] = ra_data[48*(vo1*E+j)+:32];
  end

  wire [48*E-1:0] vv;
  wire [32*E-1:0] r32;
  genvar ge;
  generate
    for (ge = 0; ge < E; ge = ge + 1) begin : g_el
      wire [7:0] cd = code[8*ge+:8];
      wire [35:0] fd = fld[36*ge+:36];
      wire [9:0]  cval = {{2{cd[7]}}, cd} + {2'b00, cfg_code_bias};
      wire signed [21:0] dprod = $signed(fd[35:24]) * $signed(cval);
      // p1 -> p2: the product, the scale exponents and the minimum's mantissa
      reg  [21:0] dprod2;
      reg  [6:0]  d_up2, m_up2;
      reg  [11:0] m_m2;
      always @(posedge clk) begin
        if (rst) begin
          dprod2 <= 22'd0;
          d_up2 <= 7'd0;
          m_up2 <= 7'd0;
          m_m2 <= 12'd0;
        end else if (p1) begin
          dprod2 <= dprod;
          d_up2 <= {fd[23], fd[23:18]} + 7'd24;
          m_up2 <= {fd[5], fd[5:0]} + 7'd24;
          m_m2 <= fd[17:6];
        end
      end
      // stage 2 (p2): w = sat_w48(d-term [+ m-term])
      wire [47:0] t_d = shsat(dprod2, d_up2);
      wire [47:0] t_m = cfg_asym ? shsat({{10{m_m2[11]}}, m_m2}, m_up2) : 48'd0;
      wire [48:0] wsum = {t_d[47], t_d} + {t_m[47], t_m};
      assign vv[48*ge+:48] = (wsum[48] == wsum[47]) ? wsum[47:0] : {wsum[48], {47{~wsum[48]}}};
      // stage 3 (p3): residual_add(base, v) = sat32(base + rshr(v, 8))
      wire [40:0] v2e = v3[48*ge+7+:41];  // bits 47..7 of v
      wire [31:0] b2e = base3[32*ge+:32];
      wire [41:0] rsum = {{10{b2e[31]}}, b2e} + {{2{v2e[40]}}, v2e[40:1]} + {41'd0, v2e[0]};
      wire        r_ok = (&rsum[41:31]) | ~(|rsum[41:31]);
      assign r32[32*ge+:32] = r_ok ? rsum[31:0] : {rsum[41], {31{~rsum[41]}}};
    end
  endgenerate

  // The step's values in their place in the line.
  reg [48*V-1:0] wline;
  reg [V-1:0] wmask;
  always @* begin
    wline = {(48 * V) {1'b0}};
    wmask = {V{1'b0}};
    for (q = 0; q < EPV; q = q + 1) begin
      if ({{(32 - OW) {1'b0}}, vo3} == q) begin
        for (j = 0; j < E; j = j + 1) begin
          wline[48*(q*E+j)+:48] = {{16{r32[32*j+31]}}, r32[32*j+:32]};
          wmask[q*E+j] = ok3[j];
        end
      end
    end
  end

  // Deliberately unused: the sign-extension bits of R32 scratchpad words,
  // bits below the rounding position, and index/address bits above the
  // truncated widths.
  wire unused_bits = &{1'b0, ick[20], ra_data, v3, wb_x[WAW+44:WAW], chunk[WAW+20:WAW],
                       ie_a[AW+20:AW], we_a[AW+20:AW], ic_p, ie};

  always @(posedge clk) begin
    if (rst) begin
      run <= 1'b0;
      setup <= 1'b0;
      done <= 1'b0;
      ic <= 21'd0;
      wc <= 21'd0;
      wbase <= {WAW{1'b0}};
      grp <= {RW{1'b0}};
      slice <= {SLW{1'b0}};
      p1 <= 1'b0;
      p2 <= 1'b0;
      p3 <= 1'b0;
      pos1 <= {PW{1'b0}};
      vo1 <= {OW{1'b0}};
      vo2 <= {OW{1'b0}};
      vo3 <= {OW{1'b0}};
      ok1 <= {E{1'b0}};
      ok2 <= {E{1'b0}};
      ok3 <= {E{1'b0}};
      v3 <= {(48 * E) {1'b0}};
      base2 <= {(32 * E) {1'b0}};
      base3 <= {(32 * E) {1'b0}};
      w_en <= 1'b0;
      w_mask <= {V{1'b0}};
      w_addr <= {AW{1'b0}};
      w_data <= {(48 * V) {1'b0}};
    end else begin
      done <= 1'b0;
      p1 <= issue;
      p2 <= p1;
      p3 <= p2;
      if (issue) begin
        ic <= ic + 21'd1;
        pos1 <= (LGP > 0) ? ic_p[PW-1:0] : {PW{1'b0}};
        vo1 <= (LGEV > 0) ? ic_p[OW-1:0] : {OW{1'b0}};
        for (j = 0; j < E; j = j + 1) ok1[j] <= ({11'd0, ie} + j) < {11'd0, cols_x};
      end
      if (p1) begin
        base2 <= cfg_add ? rbase : {(32 * E) {1'b0}};
        vo2 <= vo1;
        ok2 <= ok1;
      end
      if (p2) begin
        v3 <= vv;
        base3 <= base2;
        vo3 <= vo2;
        ok3 <= ok2;
      end
      w_en <= p3;
      w_mask <= p3 ? wmask : {V{1'b0}};
      w_addr <= p3 ? (cfg_dst + we_a[AW-1:0]) & VMASK : {AW{1'b0}};
      w_data <= p3 ? wline : {(48 * V) {1'b0}};
      if (p3) wc <= wc + 21'd1;
      if (start) begin
        run <= 1'b1;
        setup <= 1'b1;
        ic <= 21'd0;
        wc <= 21'd0;
        done <= (cfg_cols == 20'd0);
      end else if (done) begin
        run <= 1'b0;
        setup <= 1'b0;
      end else if (setup) begin
        setup <= 1'b0;
        wbase <= wb_x[WAW-1:0];
        grp <= row_grp[RW-1:0];
        slice <= (LGR > 0) ? cfg_row[SLW-1:0] : {SLW{1'b0}};
      end else if (run && w_en && (wc == steps)) begin
        done <= 1'b1;
      end
    end
  end
endmodule
/* verilator lint_on WIDTHCONCAT */
