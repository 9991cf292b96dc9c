// tls_matvec: matrix-vector product with LANES MACs (contract: UNITS.md).
//
// Implements `linear_row` (compiler/numerics/src/linear.rs) for every row of
// one matrix, with the input converted to A8 by `to_a8_into(x, 24, ..)`.
//
// Load phase (cfg_load = 1): the W48 input spad[src .. src+cols) is read
// twice, 33 cycles apart, through the two scratchpad read ports: port a
// finds the block maximum |x| and from it the A8 shift s (`a8_shift`),
// port b reads the same block again and forms the mantissas
// rshr(x, s). Mantissas go into the input buffer `xbuf` (one word = LANES
// mantissas, the layout of one weight ROM word), the shift s and the block
// sum A_b into `xexp` (one word = NB blocks). Load phase: cols + 35 cycles.
//
// Product phase: one weight ROM word per cycle, no bubbles between rows.
// Pipeline (one register stage each):
//   S0  ROM / buffer addresses (row, chunk counters)
//   S1  LANES products a_i * (c_i + code_bias)        (mac_active)
//   S2  adder tree per block slot: partial P
//   S3  P summed over the chunks of a block (LANES < 32)
//   S4  mant * P, mant_m * A_b, shift up = exp + s (= exp + E_b + 24)
//   S5  shift, round half up / saturate to W48 (block_term)
//   S6  sum of the 2*NB block terms of the word
//   S7  row accumulator (64 bits); bias ROM read at the row's last word
//   S8  sat_w48(acc + bias) -> registered scratchpad write
// Product phase: rows*CH + 9 cycles (first ROM read to the last write;
// `done` is high in the cycle of the last `w_en`, whose write commits at
// the end of that cycle). No stalls: the pipeline never waits.
//
// Buffers (tls_sram macros): xbuf ceil(XB*32/LANES) x LANES*8 bits, xexp
// ceil(XB/NB) x NB*19 bits. Requires cols a multiple of 32 with
// 32 <= cols <= XB*32 (cfg_load = 0 reuses the buffer, so cols must match
// the loading instruction); rows = 0 finishes without writing.
module tls_matvec #(
    parameter integer LANES = 32,
    parameter integer AW = 16,
    parameter integer XB = 64,
    parameter integer WAW = 16,
    parameter integer RW = 24
) (
    input  wire                clk,
    input  wire                rst,
    input  wire                start,
    output reg                 done,
    output reg                 busy,
    output wire                busy_load,
    output wire                mac_active,

    input  wire [AW-1:0]       cfg_src,
    input  wire [AW-1:0]       cfg_dst,
    input  wire [RW-1:0]       cfg_rows,
    input  wire [19:0]         cfg_cols,
    input  wire                cfg_load,
    input  wire                cfg_asym,
    input  wire [7:0]          cfg_code_bias,
    input  wire                cfg_has_bias,

    // Scratchpad: two read ports (load phase), one write port (outputs).
    output wire                ra_en,
    output wire [AW-1:0]       ra_addr,
    input  wire [47:0]         ra_data,
    output wire                rb_en,
    output wire [AW-1:0]       rb_addr,
    input  wire [47:0]         rb_data,
    output reg                 w_en,
    output reg  [AW-1:0]       w_addr,
    output reg  [47:0]         w_data,

    // Weight ROM: word row*CH + c.
    output wire                wr_en,
    output wire [WAW-1:0]      wr_addr,
    output wire [RW-1:0]       wr_grp,
    output wire [19:0]         wr_chunk,
    input  wire [LANES*8 + ((LANES >= 32) ? LANES / 32 : 1) * 36 - 1:0] wr_data,

    // Bias ROM (signed W48 per row).
    output wire                br_en,
    output wire [RW-1:0]       br_addr,
    input  wire [47:0]         br_data
);
  // ------------------------------------------------------------------
  // Geometry
  // ------------------------------------------------------------------
  localparam integer NB = (LANES >= 32) ? LANES / 32 : 1;  // block slots per word
  localparam integer BL = (LANES >= 32) ? 32 : LANES;  // lanes per slot
  localparam integer CPB = (LANES >= 32) ? 1 : 32 / LANES;  // words per block
  localparam integer LG = $clog2(LANES);
  localparam integer LGCPB = $clog2(CPB);
  localparam integer LGNB = $clog2(NB);
  localparam integer WW = LANES * 8 + NB * 36;
  localparam integer XW = (XB * 32 + LANES - 1) / LANES;  // xbuf words
  localparam integer XWA = (XW > 1) ? $clog2(XW) : 1;
  localparam integer XE = (XB + NB - 1) / NB;  // xexp words
  localparam integer XEA = (XE > 1) ? $clog2(XE) : 1;
  localparam integer EW = 19;  // xexp slot: {A_b[12:0], s[5:0]}
  localparam integer PW = 18;  // lane product a * (c + code_bias)
  localparam integer SW = 22;  // block partial P (|P| < 2^21)
  localparam integer CW = (AW > 21) ? AW : 21;  // load counter width
  localparam integer LOFF = 33;  // port b trails port a by this many cycles

  localparam integer LMASK_I = LANES - 1;
  localparam integer CPBMASK_I = CPB - 1;
  localparam integer NBMASK_I = NB - 1;
  localparam [CW-1:0] LOFF_W = LOFF[CW-1:0];
  localparam [19:0] LMASK = LMASK_I[19:0];
  localparam [19:0] CPBMASK = CPBMASK_I[19:0];
  localparam [19:0] NBMASK = NBMASK_I[19:0];
  localparam signed [47:0] WMAX = 48'sh7FFF_FFFF_FFFF;
  localparam signed [47:0] WMIN = 48'sh8000_0000_0000;

  localparam [1:0] ST_IDLE = 2'd0;
  localparam [1:0] ST_LOAD = 2'd1;
  localparam [1:0] ST_PROD = 2'd2;
  localparam [1:0] ST_DRAIN = 2'd3;

  // ------------------------------------------------------------------
  // Helpers
  // ------------------------------------------------------------------

  // a8_shift(m): the smallest s with rshr(m, s) <= 127, i.e. the number of
  // thresholds m >= 127.5 * 2^j (j >= 0) that m reaches (m <= 2^47 gives
  // s <= 41). The thresholds form a thermometer code t; its count is found
  // by a 6-step binary search (a mux tree, not a chain of incrementers).
  function [5:0] a8_shift;
    input [47:0] m;
    reg [63:0] t;
    reg [5:0] n;
    integer j;
    begin
      t = 64'd0;
      t[0] = (m >= 48'd128);
      for (j = 1; j <= 40; j = j + 1) t[j] = (m >= (48'd255 << (j - 1)));
      n = 6'd0;
      for (j = 5; j >= 0; j = j - 1) begin
        if (t[n+(6'd1<<j)-6'd1]) n = n + (6'd1 << j);
      end
      a8_shift = n;
    end
  endfunction

  // shift_sat_w48(p, up): up >= 0 exact left shift saturating to W48 (any
  // nonzero p saturates for up >= 48); up < 0 round-half-up right shift by
  // -up ((x >>> s) + x[s-1], computed as ((2x >>> s) + 1) >>> 1).
  function signed [47:0] shift_sat;
    input signed [33:0] p;
    input signed [7:0] up;
    reg signed [81:0] wide;
    reg signed [34:0] y;
    reg signed [34:0] q;
    reg [7:0] s;
    begin
      wide = 82'sd0;
      y = 35'sd0;
      q = 35'sd0;
      s = 8'd0;
      if (p == 34'sd0) begin
        shift_sat = 48'sd0;
      end else if (up >= 8'sd48) begin
        shift_sat = p[33] ? WMIN : WMAX;
      end else if (up >= 8'sd0) begin
        wide = $signed({{48{p[33]}}, p}) <<< up[5:0];
        if (wide[81:47] == {35{wide[81]}}) shift_sat = wide[47:0];
        else shift_sat = wide[81] ? WMIN : WMAX;
      end else begin
        s = -up;
        y = $signed({p, 1'b0}) >>> s;
        q = (y + 35'sd1) >>> 1;
        shift_sat = {{13{q[34]}}, q};
      end
    end
  endfunction

  // ------------------------------------------------------------------
  // Control
  // ------------------------------------------------------------------
  reg [1:0] st;
  reg [CW-1:0] lt;  // load phase cycle
  reg [19:0] c;  // chunk (word) within the row
  reg [19:0] chm1;  // CH - 1
  reg [RW-1:0] r;  // row being read
  reg [RW-1:0] rowsm1;
  reg [WAW-1:0] k;  // weight ROM address
  reg zdone;  // rows == 0: finish without a product phase

  wire ld = (st == ST_LOAD);
  wire issue = (st == ST_PROD);
  wire [CW-1:0] cols_w = {{(CW - 20) {1'b0}}, cfg_cols};
  wire [19:0] cols_m1 = cfg_cols - 20'd1;
  wire ld_end = ld && (lt == cols_w + LOFF_W + 1'b1);
  wire rows_zero = (cfg_rows == {RW{1'b0}});

  wire [19:0] cblk = c & CPBMASK;
  wire i_rf = (c == 20'd0);
  wire i_rl = (c == chm1);
  wire i_bf = (cblk == 20'd0);
  wire i_bl = (cblk == CPBMASK);
  wire i_fin = i_rl && (r == rowsm1);

  reg s8_v, s8_fin;

  always @(posedge clk) begin
    if (rst) begin
      st <= ST_IDLE;
      busy <= 1'b0;
      lt <= {CW{1'b0}};
      c <= 20'd0;
      chm1 <= 20'd0;
      r <= {RW{1'b0}};
      rowsm1 <= {RW{1'b0}};
      k <= {WAW{1'b0}};
      zdone <= 1'b0;
    end else begin
      zdone <= 1'b0;
      case (st)
        ST_IDLE: begin
          if (start) begin
            busy <= 1'b1;
            lt <= {CW{1'b0}};
            c <= 20'd0;
            r <= {RW{1'b0}};
            k <= {WAW{1'b0}};
            chm1 <= cols_m1 >> LG;  // ceil(cols / LANES) - 1
            rowsm1 <= cfg_rows - 1'b1;
            if (cfg_load) begin
              st <= ST_LOAD;
            end else if (rows_zero) begin
              st <= ST_DRAIN;
              zdone <= 1'b1;
            end else begin
              st <= ST_PROD;
            end
          end
        end
        ST_LOAD: begin
          lt <= lt + 1'b1;
          if (ld_end) begin
            if (rows_zero) begin
              st <= ST_DRAIN;
              zdone <= 1'b1;
            end else begin
              st <= ST_PROD;
            end
          end
        end
        ST_PROD: begin
          k <= k + 1'b1;
          if (i_rl) begin
            c <= 20'd0;
            r <= r + 1'b1;
          end else begin
            c <= c + 20'd1;
          end
          if (i_fin) st <= ST_DRAIN;
        end
        default: begin  // ST_DRAIN: wait for the last write
          if (done) begin
            st <= ST_IDLE;
            busy <= 1'b0;
          end
        end
      endcase
    end
  end

  assign busy_load = ld;

  // ------------------------------------------------------------------
  // Load phase
  // ------------------------------------------------------------------
  /* verilator lint_off UNUSEDSIGNAL */
  // Bits above 19 are zero whenever port b reads (cols < 2^20).
  wire [CW-1:0] lt_b = lt - LOFF_W;
  /* verilator lint_on UNUSEDSIGNAL */
  assign ra_en = ld && (lt < cols_w);
  assign ra_addr = ra_en ? cfg_src + lt[AW-1:0] : {AW{1'b0}};
  assign rb_en = ld && (lt >= LOFF_W) && (lt < cols_w + LOFF_W);
  assign rb_addr = rb_en ? cfg_src + lt_b[AW-1:0] : {AW{1'b0}};

  // Pass 1 (port a): block maximum of |x|, then the shift.
  reg p1_v, p1_first, p1_last;
  reg [47:0] mx;
  reg bm_v;
  reg [47:0] bm;
  reg [5:0] s_pend;
  wire [47:0] ax = ra_data[47] ? (~ra_data + 48'd1) : ra_data;
  wire [47:0] mx_base = p1_first ? 48'd0 : mx;
  wire [47:0] mx_next = (ax > mx_base) ? ax : mx_base;

  always @(posedge clk) begin
    if (rst) begin
      p1_v <= 1'b0;
      bm_v <= 1'b0;
    end else begin
      p1_v <= ra_en;
      bm_v <= p1_v && p1_last;
    end
    p1_first <= (lt[4:0] == 5'd0);
    p1_last <= (lt[4:0] == 5'd31);
    if (p1_v) mx <= mx_next;
    if (p1_v && p1_last) bm <= mx_next;
    if (bm_v) s_pend <= a8_shift(bm);
  end

  // Pass 2 (port b): mantissas rshr(x, s), 33 cycles behind pass 1 so that
  // the block's shift is ready when its first element arrives.
  reg p2_v;
  reg [19:0] p2_j;
  reg [5:0] s_use;
  wire p2_first = (p2_j[4:0] == 5'd0);
  wire [5:0] sh = p2_first ? s_pend : s_use;
  wire signed [48:0] x2 = {rb_data, 1'b0};
  /* verilator lint_off UNUSEDSIGNAL */
  // Only the low 9 bits of the shifted value form the (8-bit) mantissa.
  wire signed [48:0] y2 = x2 >>> sh;
  /* verilator lint_on UNUSEDSIGNAL */
  wire [7:0] m2 = y2[8:1] + {7'd0, y2[0]};  // ((2x >>> s) + 1) >>> 1

  reg q_v;
  reg [19:0] q_j;
  reg [7:0] q_m;
  reg [5:0] q_s;
  always @(posedge clk) begin
    if (rst) begin
      p2_v <= 1'b0;
      q_v <= 1'b0;
    end else begin
      p2_v <= rb_en;
      q_v <= p2_v;
    end
    p2_j <= lt_b[19:0];
    if (p2_v) s_use <= sh;
    q_j <= p2_j;
    q_m <= m2;
    q_s <= sh;
  end

  // Assemble buffer words and write them.
  wire [19:0] q_lane = q_j & LMASK;
  wire q_wend = (q_lane == LMASK) || (q_j == cols_m1);
  wire q_bf = (q_j[4:0] == 5'd0);
  wire q_bl = (q_j[4:0] == 5'd31);
  wire [19:0] q_blk = {5'd0, q_j[19:5]};
  wire [19:0] q_slot = q_blk & NBMASK;
  wire q_xend = q_bl && ((q_slot == NBMASK) || (q_j == cols_m1));

  reg [LANES*8-1:0] xasm;
  wire [LANES*8-1:0] xasm_next;
  reg [NB*EW-1:0] easm;
  wire [NB*EW-1:0] easm_next;
  reg signed [12:0] asum;
  wire signed [12:0] asum_next = (q_bf ? 13'sd0 : asum) + {{5{q_m[7]}}, q_m};

  genvar gi;
  generate
    for (gi = 0; gi < LANES; gi = gi + 1) begin : g_asm
      localparam [19:0] IPOS = gi;
      assign xasm_next[8*gi+:8] = (q_lane == IPOS) ? q_m : xasm[8*gi+:8];
    end
    for (gi = 0; gi < NB; gi = gi + 1) begin : g_easm
      localparam [19:0] IPOS = gi;
      assign easm_next[EW*gi+:EW] = (q_bl && q_slot == IPOS) ? {asum_next, q_s} : easm[EW*gi+:EW];
    end
  endgenerate

  wire xb_we = q_v && q_wend;
  wire xe_we = q_v && q_xend;
  always @(posedge clk) begin
    if (rst) begin
      xasm <= {(LANES * 8) {1'b0}};
      easm <= {(NB * EW) {1'b0}};
    end else if (q_v) begin
      xasm <= q_wend ? {(LANES * 8) {1'b0}} : xasm_next;
      easm <= q_xend ? {(NB * EW) {1'b0}} : easm_next;
    end
    if (q_v) asum <= asum_next;
  end

  // ------------------------------------------------------------------
  // Input buffers
  // ------------------------------------------------------------------
  wire [LANES*8-1:0] xb_rdata;
  wire [NB*EW-1:0] xe_rdata;

  tls_sram #(
      .W (LANES * 8),
      .D (XW),
      .AW(XWA)
  ) u_xbuf (
      .clk  (clk),
      .we   (xb_we),
      .waddr(q_j[XWA+LG-1:LG]),
      .wdata(xasm_next),
      .re   (issue),
      .raddr(c[XWA-1:0]),
      .rdata(xb_rdata)
  );

  tls_sram #(
      .W (NB * EW),
      .D (XE),
      .AW(XEA)
  ) u_xexp (
      .clk  (clk),
      .we   (xe_we),
      .waddr(q_blk[XEA+LGNB-1:LGNB]),
      .wdata(easm_next),
      .re   (issue),
      .raddr(c[XEA+LGCPB-1:LGCPB]),
      .rdata(xe_rdata)
  );

  // ------------------------------------------------------------------
  // Product phase
  // ------------------------------------------------------------------
  assign wr_en = issue;
  assign wr_addr = issue ? k : {WAW{1'b0}};
  assign wr_grp = issue ? r : {RW{1'b0}};
  assign wr_chunk = issue ? c : 20'd0;

  // Tags: valid, row first/last, block first/last, final word.
  reg s1_v, s1_rf, s1_rl, s1_bf, s1_bl, s1_fin;
  reg s2_v, s2_rf, s2_rl, s2_bf, s2_bl, s2_fin;
  reg s3_v, s3_rf, s3_rl, s3_bf, s3_bl, s3_fin;
  reg s4_v, s4_rf, s4_rl, s4_tv, s4_fin;
  reg s5_v, s5_rf, s5_rl, s5_fin;
  reg s6_v, s6_rf, s6_rl, s6_fin;
  reg s7_v, s7_rf, s7_rl, s7_fin;

  always @(posedge clk) begin
    if (rst) begin
      s1_v <= 1'b0;
      s2_v <= 1'b0;
      s3_v <= 1'b0;
      s4_v <= 1'b0;
      s5_v <= 1'b0;
      s6_v <= 1'b0;
      s7_v <= 1'b0;
      s8_v <= 1'b0;
    end else begin
      s1_v <= issue;
      s2_v <= s1_v;
      s3_v <= s2_v;
      s4_v <= s3_v;
      s5_v <= s4_v;
      s6_v <= s5_v;
      s7_v <= s6_v;
      s8_v <= s7_v && s7_rl;
    end
    {s1_rf, s1_rl, s1_bf, s1_bl, s1_fin} <= {i_rf, i_rl, i_bf, i_bl, i_fin};
    {s2_rf, s2_rl, s2_bf, s2_bl, s2_fin} <= {s1_rf, s1_rl, s1_bf, s1_bl, s1_fin};
    {s3_rf, s3_rl, s3_bf, s3_bl, s3_fin} <= {s2_rf, s2_rl, s2_bf, s2_bl, s2_fin};
    {s4_rf, s4_rl, s4_tv, s4_fin} <= {s3_rf, s3_rl, s3_v && s3_bl, s3_fin};
    {s5_rf, s5_rl, s5_fin} <= {s4_rf, s4_rl, s4_fin};
    {s6_rf, s6_rl, s6_fin} <= {s5_rf, s5_rl, s5_fin};
    {s7_rf, s7_rl, s7_fin} <= {s6_rf, s6_rl, s6_fin};
    s8_fin <= s7_fin;
  end

  assign mac_active = s1_v;

  // S1: lane products a_i * (c_i + code_bias), exact in 18 bits
  // (|a| <= 127, -128 <= c + code_bias <= 383).
  wire [LANES*PW-1:0] prod;
  reg [LANES*PW-1:0] s2_prod;
  generate
    for (gi = 0; gi < LANES; gi = gi + 1) begin : g_lane
      wire signed [PW-1:0] a = {{(PW - 8) {xb_rdata[8*gi+7]}}, xb_rdata[8*gi+:8]};
      wire signed [9:0] cc = {{2{wr_data[8*gi+7]}}, wr_data[8*gi+:8]} + {2'b00, cfg_code_bias};
      wire signed [PW-1:0] cw = {{(PW - 10) {cc[9]}}, cc};
      assign prod[PW*gi+:PW] = a * cw;
    end
  endgenerate

  reg [NB*36-1:0] s2_f, s3_f, s4_f;
  reg [NB*EW-1:0] s2_e, s3_e, s4_e;
  always @(posedge clk) begin
    s2_prod <= prod;
    s2_f <= wr_data[WW-1:LANES*8];
    s2_e <= xe_rdata;
    s3_f <= s2_f;
    s3_e <= s2_e;
    s4_f <= s3_f;
    s4_e <= s3_e;
  end

  // S2..S5 per block slot.
  reg [NB*SW-1:0] s3_p;
  reg [NB*48-1:0] s6_td, s6_tm;
  generate
    for (gi = 0; gi < NB; gi = gi + 1) begin : g_slot
      // S2: balanced adder tree over the BL lane products (heap layout:
      // node n = node 2n+1 + node 2n+2, leaves at BL-1 ..).
      wire [(2*BL-1)*SW-1:0] tr  /* verilator split_var */;
      genvar gl;
      for (gl = 0; gl < BL; gl = gl + 1) begin : g_leaf
        wire [PW-1:0] pv = s2_prod[PW*(gi*BL+gl)+:PW];
        assign tr[SW*(BL-1+gl)+:SW] = {{(SW - PW) {pv[PW-1]}}, pv};
      end
      for (gl = 0; gl < BL - 1; gl = gl + 1) begin : g_node
        assign tr[SW*gl+:SW] = tr[SW*(2*gl+1)+:SW] + tr[SW*(2*gl+2)+:SW];
      end
      always @(posedge clk) s3_p[SW*gi+:SW] <= tr[SW-1:0];

      // S3: P over the CPB words of a block (LANES < 32); 0 unless the
      // word is the block's last.
      reg signed [SW-1:0] pacc;
      reg signed [SW-1:0] s4_p;
      wire signed [SW-1:0] pnext = (s3_bf ? {SW{1'b0}} : pacc) + s3_p[SW*gi+:SW];
      always @(posedge clk) begin
        if (s3_v) pacc <= pnext;
        s4_p <= (s3_v && s3_bl) ? pnext : {SW{1'b0}};
      end

      // S4: scale products and shifts.
      wire [35:0] f = s4_f[36*gi+:36];
      wire [EW-1:0] e = s4_e[EW*gi+:EW];
      wire signed [33:0] dm = {{22{f[35]}}, f[35:24]};
      wire signed [33:0] mm = {{22{f[17]}}, f[17:6]};
      wire signed [33:0] pp = {{(34 - SW) {s4_p[SW-1]}}, s4_p};
      wire signed [33:0] aa = {{21{e[18]}}, e[18:6]};
      wire [7:0] sb = {2'b00, e[5:0]};
      reg signed [33:0] s5_pd, s5_pm;
      reg signed [7:0] s5_ud, s5_um;
      always @(posedge clk) begin
        s5_pd <= dm * pp;
        s5_pm <= (s4_tv && cfg_asym) ? mm * aa : 34'sd0;
        s5_ud <= {{2{f[23]}}, f[23:18]} + sb;
        s5_um <= {{2{f[5]}}, f[5:0]} + sb;
      end

      // S5: block terms.
      always @(posedge clk) begin
        s6_td[48*gi+:48] <= shift_sat(s5_pd, s5_ud);
        s6_tm[48*gi+:48] <= shift_sat(s5_pm, s5_um);
      end
    end
  endgenerate

  // S6: sum of the word's 2*NB block terms (heap tree, 64 bits).
  localparam integer NT = 2 * NB;
  wire [(2*NT-1)*64-1:0] tt  /* verilator split_var */;
  generate
    for (gi = 0; gi < NB; gi = gi + 1) begin : g_tleaf
      wire [47:0] td = s6_td[48*gi+:48];
      wire [47:0] tm = s6_tm[48*gi+:48];
      assign tt[64*(NT-1+2*gi)+:64] = {{16{td[47]}}, td};
      assign tt[64*(NT-1+2*gi+1)+:64] = {{16{tm[47]}}, tm};
    end
    for (gi = 0; gi < NT - 1; gi = gi + 1) begin : g_tnode
      assign tt[64*gi+:64] = tt[64*(2*gi+1)+:64] + tt[64*(2*gi+2)+:64];
    end
  endgenerate

  reg [63:0] s7_bs;
  always @(posedge clk) s7_bs <= tt[63:0];

  // S7: row accumulator; the bias ROM is read at the row's last word.
  reg [63:0] acc;
  reg [63:0] s8_rs;
  reg [RW-1:0] orow;
  reg [AW-1:0] s8_row;
  wire [63:0] acc_next = (s7_rf ? 64'd0 : acc) + s7_bs;
  wire s7_out = s7_v && s7_rl;
  wire [AW-1:0] orow_a;
  generate
    if (RW >= AW) begin : g_row_trunc
      assign orow_a = orow[AW-1:0];
    end else begin : g_row_ext
      assign orow_a = {{(AW - RW) {1'b0}}, orow};
    end
  endgenerate
  assign br_en = s7_out && cfg_has_bias;
  assign br_addr = br_en ? orow : {RW{1'b0}};

  always @(posedge clk) begin
    if (rst || !busy) orow <= {RW{1'b0}};
    else if (s7_out) orow <= orow + 1'b1;
    if (s7_v) acc <= acc_next;
    s8_rs <= acc_next;
    s8_row <= orow_a;
  end

  // S8: bias, saturation, write.
  wire [47:0] bias = cfg_has_bias ? br_data : 48'd0;
  wire [64:0] ysum = {s8_rs[63], s8_rs} + {{17{bias[47]}}, bias};
  wire y_fits = (ysum[64:47] == {18{ysum[64]}});
  wire [47:0] y = y_fits ? ysum[47:0] : (ysum[64] ? WMIN : WMAX);

  always @(posedge clk) begin
    if (rst) begin
      w_en <= 1'b0;
      w_addr <= {AW{1'b0}};
      w_data <= 48'd0;
      done <= 1'b0;
    end else begin
      w_en <= s8_v;
      w_addr <= s8_v ? cfg_dst + s8_row : {AW{1'b0}};
      w_data <= s8_v ? y : 48'd0;
      done <= (s8_v && s8_fin) || zdone;
    end
  end
endmodule
