// tls_embed: one row of a quantized table into the residual stream
// (UNITS.md, `tls_embed`; `table_value` and the Embed / AddPositions arms
// of backends/reference/src/exec.rs).
//
// Element i of row r: weight ROM word r·CH + i/LANES (CH = ceil(cols /
// LANES)), code in lane i % LANES, scale fields of its 32-block (field
// (i % LANES)/32 when LANES >= 32, else field 0); the layout of tls_matvec.
//   code = code_i + code_bias
//   w    = block_term(d_mant, d_exp, code, 0) [+ block_term(m_mant, m_exp, 1, 0)]
//   v    = sat_w48(w)
//   out  = residual_add(base, v), base = cfg_add ? spad[dst + i] (R32) : 0
// written (sign-extended R32) to spad[dst + i].
//
// The ROM is read once per element (the word is not latched), so the unit
// relies only on `wr_data` being valid the cycle after `wr_en`.
//
// Cycles (start in cycle 0, `done` in cycle D, busy in 1..D):
//   D = cols + 5 (cols > 0; cycle 1 computes row·CH, element i is read in
//   cycle 2 + i and written in cycle 5 + i),  D = 1 (cols = 0).
module tls_embed #(
    parameter integer AW = 16,
    parameter integer LANES = 32,
    parameter integer WAW = 16,
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
    output wire [23:0]    wr_grp,
    output wire [19:0]    wr_chunk,
    input  wire [WW-1:0]  wr_data,
    // scratchpad
    output wire           ra_en,
    output wire [AW-1:0]  ra_addr,
    input  wire [47:0]    ra_data,
    output reg            w_en,
    output reg  [AW-1:0]  w_addr,
    output reg  [47:0]    w_data
);
  localparam integer LG = $clog2(LANES);
  localparam integer LW = (LG > 0) ? LG : 1;

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

  reg           run;
  reg           setup;
  reg  [20:0]   ic;  // elements issued
  reg  [20:0]   wc;  // elements written
  reg  [WAW-1:0] wbase;  // row · CH
  reg           p1, p2;
  reg  [LW-1:0] lane1;
  reg  [47:0]   v2;
  reg  [31:0]   base2;

  wire          issue = run && !setup && (ic != {1'b0, cfg_cols});
  wire [20:0]   ch = ({1'b0, cfg_cols} + LANES[20:0] - 21'd1) >> LG;
  wire [44:0]   wb_full = {21'd0, cfg_row} * {24'd0, ch};
  wire [WAW+44:0] wb_x = {{WAW{1'b0}}, wb_full};
  wire [WAW+20:0] ic_x = {{WAW{1'b0}}, ic};
  wire [WAW+20:0] chunk = ic_x >> LG;
  wire [AW+20:0] ic_a = {{AW{1'b0}}, ic};
  wire [AW+20:0] wc_a = {{AW{1'b0}}, wc};
  wire [LW+20:0] ic_l = {{LW{1'b0}}, ic};

  assign busy    = run;
  assign wr_en   = issue;
  assign wr_addr = issue ? wbase + chunk[WAW-1:0] : {WAW{1'b0}};
  assign wr_grp = issue ? cfg_row : 24'd0;
  assign wr_chunk = issue ? chunk[19:0] : 20'd0;
  assign ra_en   = issue && cfg_add;
  assign ra_addr = (issue && cfg_add) ? cfg_dst + ic_a[AW-1:0] : {AW{1'b0}};

  // stage 1 (p1): lane code and scale fields from the word
  reg [7:0]  code;
  reg [35:0] fld;
  integer j;
  always @* begin
    code = 8'd0;
    fld  = 36'd0;
    for (j = 0; j < LANES; j = j + 1) begin
      if ({{(32 - LW) {1'b0}}, lane1} == j) code = wr_data[8*j+:8];
    end
    for (j = 0; j < NB; j = j + 1) begin
      if (({{(32 - LW) {1'b0}}, lane1} >> 5) == j) fld = wr_data[LANES*8+36*j+:36];
    end
  end
  wire [9:0]  cval = {{2{code[7]}}, code} + {2'b00, cfg_code_bias};
  wire signed [21:0] dprod = $signed(fld[35:24]) * $signed(cval);
  wire [6:0]  d_up = {fld[23], fld[23:18]} + 7'd24;
  wire [6:0]  m_up = {fld[5], fld[5:0]} + 7'd24;
  wire [47:0] t_d = shsat(dprod, d_up);
  wire [47:0] t_m = cfg_asym ? shsat({{10{fld[17]}}, fld[17:6]}, m_up) : 48'd0;
  wire [48:0] wsum = {t_d[47], t_d} + {t_m[47], t_m};
  wire [47:0] v = (wsum[48] == wsum[47]) ? wsum[47:0] : {wsum[48], {47{~wsum[48]}}};
  // stage 2 (p2): residual_add(base, v) = sat32(base + rshr(v, 8))
  wire [41:0] rsum = {{10{base2[31]}}, base2} + {{2{v2[47]}}, v2[47:8]} + {41'd0, v2[7]};
  wire        r_ok = (&rsum[41:31]) | ~(|rsum[41:31]);
  wire [31:0] r32 = r_ok ? rsum[31:0] : {rsum[41], {31{~rsum[41]}}};

  // Deliberately unused: the sign-extension bits of R32 scratchpad words,
  // bits below the rounding position, and index/address bits above the
  // truncated widths.
  wire unused_bits = &{1'b0, ra_data[47:32], v2[6:0], wb_x[WAW+44:WAW], chunk[WAW+20:WAW],
                       ic_a[AW+20:AW], wc_a[AW+20:AW], ic_l[LW+20:LW]};

  always @(posedge clk) begin
    if (rst) begin
      run <= 1'b0;
      setup <= 1'b0;
      done <= 1'b0;
      ic <= 21'd0;
      wc <= 21'd0;
      wbase <= {WAW{1'b0}};
      p1 <= 1'b0;
      p2 <= 1'b0;
      lane1 <= {LW{1'b0}};
      v2 <= 48'd0;
      base2 <= 32'd0;
      w_en <= 1'b0;
      w_addr <= {AW{1'b0}};
      w_data <= 48'd0;
    end else begin
      done <= 1'b0;
      p1 <= issue;
      p2 <= p1;
      if (issue) begin
        ic <= ic + 21'd1;
        lane1 <= (LG > 0) ? ic_l[LW-1:0] : {LW{1'b0}};
      end
      if (p1) begin
        v2 <= v;
        base2 <= cfg_add ? ra_data[31:0] : 32'd0;
      end
      w_en <= p2;
      w_addr <= p2 ? cfg_dst + wc_a[AW-1:0] : {AW{1'b0}};
      w_data <= p2 ? {{16{r32[31]}}, r32} : 48'd0;
      if (p2) wc <= wc + 21'd1;
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
      end else if (run && w_en && (wc == {1'b0, cfg_cols})) begin
        done <= 1'b1;
      end
    end
  end
endmodule
