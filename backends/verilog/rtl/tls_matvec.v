// tls_matvec: matrix-vector product with LANES MACs (contract: UNITS.md).
//
// Implements `linear_row` (compiler/numerics/src/linear.rs) for every row of
// one matrix, with the input converted to A8 by `to_a8_into(x, 24, ..)`.
//
// Load phase (cfg_load = 1): the W48 input spad[src .. src+cols) is read
// twice, one scratchpad line of V words per cycle through each read port
// (LN = ceil(cols/V) lines; src is a multiple of V): port a finds each
// block's maximum |x| (a comparator tree over the line's values of the
// block, accumulated over the LPB = max(1, 32/V) lines of a block; a line
// of V = 64 holds two blocks) and from it the A8 shift s (`a8_shift`);
// port b, LPB + 1 cycles behind, reads the same lines again and forms the
// mantissas rshr(x, s) (0 past cols). Mantissas go into the input buffer
// `xbuf` (one word = LANES mantissas, the layout of one weight ROM word),
// the shift s and the block sum A_b into `xexp` (one word = NB blocks);
// both take a line's items per cycle (`tls_mv_ibuf`: a word register when
// the line is narrower than the word, banks when wider; the read side is
// one word per cycle either way).
// Load phase: ceil(cols/V) + max(1, 32/V) + 3 cycles (cols + 35 at V = 1;
// `perf::matvec_load_cycles`).
//
// Product phase: one weight ROM word per cycle, no bubbles between rows.
// Rows go in groups of ROWS (g = row / ROWS): the word at address
// g*CH + c holds ROWS row slices, slice j (bits [j*WW +: WW], WW = LANES*8
// + NB*36, the layout of a one-row word) being chunk c of row g*ROWS + j.
// ROWS product pipelines share the one input-buffer read (every row uses
// the same columns); rows past `rows` in the last group are not written.
// Pipeline (one register stage each, every stage once per row slice):
//   S0  ROM / buffer addresses (row, chunk counters)
//   S1  LANES products a_i * (c_i + code_bias)        (mac_active)
//   S2  adder tree per block slot: partial P
//   S3  P summed over the chunks of a block (LANES < 32)
//   S4  mant * P, mant_m * A_b, shift up = exp + s (= exp + E_b + 24)
//   S5  shift, round half up / saturate to W48 (block_term)
//   S6  sum of the 2*NB block terms of the word
//   S7  row accumulator (64 bits); bias ROM read at the group's last word
//       (one word of ROWS biases per group)
//   S8  sat_w48(acc + bias) -> registered scratchpad line write: w_en is
//       a mask of the group's ROWS rows, w_addr = dst + g*ROWS, lane j of
//       w_data goes to w_addr + j
// Product phase: ceil(rows/ROWS)*CH + 9 cycles (first ROM read to the last write;
// `done` is high in the cycle of the last `w_en`, whose write commits at
// the end of that cycle). No stalls: the pipeline never waits.
//
// Buffers (tls_sram macros): xbuf ceil(XB*32/LANES) x LANES*8 bits, xexp
// ceil(XB/NB) x NB*19 bits (split into V/LANES, resp. V/(32*NB), banks
// when the line is wider than a word). LANES is a power of two up to 16384
// (a whole row per word), ROWS a power of two up to 256, V (the scratchpad
// line, default ROWS) a power of two up to 256. Requires cols a multiple of 32 with
// 32 <= cols <= XB*32 (cfg_load = 0 reuses the buffer, so cols must match
// the loading instruction); rows = 0 finishes without writing.
module tls_matvec #(
    parameter integer LANES = 32,
    parameter integer ROWS = 1,
    parameter integer AW = 16,
    parameter integer XB = 64,
    parameter integer WAW = 16,
    parameter integer RW = 24,
    parameter integer V = ROWS
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
    input  wire [V*48-1:0]     ra_data,
    output wire                rb_en,
    output wire [AW-1:0]       rb_addr,
    input  wire [V*48-1:0]     rb_data,
    // Line write: lane j (mask bit j) to word w_addr + j.
    output reg  [ROWS-1:0]     w_en,
    output reg  [AW-1:0]       w_addr,
    output reg  [ROWS*48-1:0]  w_data,

    // Weight ROM: word g*CH + c (row group g, chunk c, also given apart).
    output wire                wr_en,
    output wire [WAW-1:0]      wr_addr,
    output wire [RW-1:0]       wr_grp,
    output wire [19:0]         wr_chunk,
    input  wire [ROWS*(LANES*8 + ((LANES >= 32) ? LANES / 32 : 1) * 36)-1:0] wr_data,

    // Bias ROM: one word of ROWS signed W48 biases per row group.
    output wire                br_en,
    output wire [RW-1:0]       br_addr,
    input  wire [ROWS*48-1:0]  br_data
);
  // ------------------------------------------------------------------
  // Geometry
  // ------------------------------------------------------------------
  localparam integer NB = (LANES >= 32) ? LANES / 32 : 1;  // block slots per word
  localparam integer BL = (LANES >= 32) ? 32 : LANES;  // lanes per slot
  localparam integer CPB = (LANES >= 32) ? 1 : 32 / LANES;  // words per block
  localparam integer LG = $clog2(LANES);
  localparam integer LGR = $clog2(ROWS);
  localparam integer LH = (LANES > 128) ? 128 : LANES;  // lanes per loop level
  localparam integer LGCPB = $clog2(CPB);
  localparam integer WW = LANES * 8 + NB * 36;
  localparam integer XW = (XB * 32 + LANES - 1) / LANES;  // xbuf words
  localparam integer XWA = (XW > 1) ? $clog2(XW) : 1;
  localparam integer XE = (XB + NB - 1) / NB;  // xexp words
  localparam integer XEA = (XE > 1) ? $clog2(XE) : 1;
  localparam integer EW = 19;  // xexp slot: {A_b[12:0], s[5:0]}
  localparam integer PW = 18;  // lane product a * (c + code_bias)
  localparam integer SW = 22;  // block partial P (|P| < 2^21)
  localparam integer CW = (AW > 21) ? AW : 21;  // load counter width
  localparam integer LGV = $clog2(V);
  localparam integer SV = (V >= 32) ? 32 : V;  // values per block slot of a line
  localparam integer BPL = (V >= 32) ? V / 32 : 1;  // block slots per line
  localparam integer LPB = (V >= 32) ? 1 : 32 / V;  // lines per block
  localparam integer LOFF = LPB + 1;  // port b trails port a by this many cycles
  localparam integer LPBMASK_I = LPB - 1;
  localparam [19:0] LPBMASK = LPBMASK_I[19:0];

  localparam integer CPBMASK_I = CPB - 1;
  localparam [CW-1:0] LOFF_W = LOFF[CW-1:0];
  localparam [19:0] CPBMASK = CPBMASK_I[19:0];
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
  reg [RW-1:0] r;  // row group being read
  reg [RW-1:0] rowsm1;  // row groups - 1
  reg [WAW-1:0] k;  // weight ROM address
  reg zdone;  // rows == 0: finish without a product phase

  wire ld = (st == ST_LOAD);
  wire issue = (st == ST_PROD);
  wire [19:0] cols_m1 = cfg_cols - 20'd1;
  /* verilator lint_off UNUSEDSIGNAL */
  wire [20:0] lines_x = ({1'b0, cfg_cols} + V[20:0] - 21'd1) >> LGV;  // ceil(cols / V)
  /* verilator lint_on UNUSEDSIGNAL */
  wire [19:0] lines_m1 = lines_x[19:0] - 20'd1;
  wire [CW-1:0] lines_w = {{(CW - 20) {1'b0}}, lines_x[19:0]};
  wire ld_end = ld && (lt == lines_w + LOFF_W + 1'b1);
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
            rowsm1 <= (cfg_rows - 1'b1) >> LGR;  // ceil(rows / ROWS) - 1
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
  // Load phase: line l = words src + l*V .. src + l*V + V - 1 (src is a
  // multiple of V), LN = ceil(cols / V) lines. Port a reads line l in load
  // cycle l, port b in cycle l + LOFF.
  // ------------------------------------------------------------------
  /* verilator lint_off UNUSEDSIGNAL */
  // Bits above 19 are zero whenever port b reads (lines < 2^20).
  wire [CW-1:0] lt_b = lt - LOFF_W;
  wire [AW+CW-1:0] lt_a_x = {{AW{1'b0}}, lt} << LGV;
  wire [AW+CW-1:0] lt_b_x = {{AW{1'b0}}, lt_b} << LGV;
  /* verilator lint_on UNUSEDSIGNAL */
  assign ra_en = ld && (lt < lines_w);
  assign ra_addr = ra_en ? cfg_src + lt_a_x[AW-1:0] : {AW{1'b0}};
  assign rb_en = ld && (lt >= LOFF_W) && (lt < lines_w + LOFF_W);
  assign rb_addr = rb_en ? cfg_src + lt_b_x[AW-1:0] : {AW{1'b0}};

  // Pass 1 (port a): per block slot, the maximum |x| of the line's SV
  // values (comparator tree), accumulated over the LPB lines of a block;
  // then the shift.
  reg p1_v, p1_first, p1_last;
  reg [BPL*48-1:0] mx;
  reg bm_v;
  reg [BPL*48-1:0] bm;
  reg [BPL*6-1:0] s_pend;
  wire [BPL*48-1:0] mx_next;

  // Pass 2 (port b): mantissas rshr(x, s), LOFF cycles behind pass 1 so
  // that the block's shift is ready when its first line arrives.
  reg p2_v;
  reg [19:0] p2_l;  // line index
  /* verilator lint_off UNUSEDSIGNAL */
  // Unread when V >= 32 (every line starts its blocks).
  reg [5:0] s_use;  // the current block's shift (LPB > 1)
  wire p2_first = ((p2_l & LPBMASK) == 20'd0);
  /* verilator lint_on UNUSEDSIGNAL */
  wire [BPL*6-1:0] sh;
  wire [V*8-1:0] m2;

  // The stage that writes the buffers.
  reg q_v;
  reg [19:0] q_l;
  reg [V*8-1:0] q_m;
  reg [BPL*6-1:0] q_s;
  wire q_bf = ((q_l & LPBMASK) == 20'd0);
  wire q_bl = ((q_l & LPBMASK) == LPBMASK);
  wire q_last = (q_l == lines_m1);
  reg [BPL*13-1:0] asum;
  wire [BPL*13-1:0] asum_next;
  wire [BPL*EW-1:0] eitem;

  always @(posedge clk) begin
    if (rst) begin
      p1_v <= 1'b0;
      bm_v <= 1'b0;
      p2_v <= 1'b0;
      q_v <= 1'b0;
    end else begin
      p1_v <= ra_en;
      bm_v <= p1_v && p1_last;
      p2_v <= rb_en;
      q_v <= p2_v;
    end
    p1_first <= ((lt[19:0] & LPBMASK) == 20'd0);
    p1_last <= ((lt[19:0] & LPBMASK) == LPBMASK);
    if (p1_v) mx <= mx_next;
    if (p1_v && p1_last) bm <= mx_next;
    p2_l <= lt_b[19:0];
    if (p2_v) s_use <= sh[5:0];
    q_l <= p2_l;
    q_m <= m2;
    q_s <= sh;
    if (q_v) asum <= asum_next;
  end

  genvar gi, gr, gh;
  generate
    for (gi = 0; gi < BPL; gi = gi + 1) begin : g_lslot
      // |x| of the slot's SV values, a heap-ordered max tree.
      wire [(2*SV-1)*48-1:0] mt  /* verilator split_var */;
      genvar gl;
      for (gl = 0; gl < SV; gl = gl + 1) begin : g_mleaf
        wire [47:0] xv = ra_data[48*(gi*SV+gl)+:48];
        assign mt[48*(SV-1+gl)+:48] = xv[47] ? (~xv + 48'd1) : xv;
      end
      for (gl = 0; gl < SV - 1; gl = gl + 1) begin : g_mnode
        wire [47:0] ml = mt[48*(2*gl+1)+:48];
        wire [47:0] mr = mt[48*(2*gl+2)+:48];
        assign mt[48*gl+:48] = (ml > mr) ? ml : mr;
      end
      wire [47:0] base = p1_first ? 48'd0 : mx[48*gi+:48];
      wire [47:0] lm = mt[47:0];
      assign mx_next[48*gi+:48] = (lm > base) ? lm : base;
      always @(posedge clk) begin
        if (bm_v) s_pend[6*gi+:6] <= a8_shift(bm[48*gi+:48]);
      end

      // The slot's shift for pass 2: with LPB > 1 lines per block the
      // block's first line takes the fresh shift, the others keep it.
      if (LPB > 1) begin : g_shb
        assign sh[6*gi+:6] = p2_first ? s_pend[6*gi+:6] : s_use;
      end else begin : g_shl
        assign sh[6*gi+:6] = s_pend[6*gi+:6];
      end

      // Values past cols (the last line's second slot when V = 64) give
      // mantissa 0: the buffer holds zeros there, as at V = 1.
      /* verilator lint_off UNUSEDSIGNAL */
      localparam [39:0] GOFF = gi * 32;
      wire [39:0] p2_pos = ({20'd0, p2_l} << LGV) + GOFF;
      wire [39:0] q_pos = ({20'd0, q_l} << LGV) + GOFF;
      /* verilator lint_on UNUSEDSIGNAL */
      wire p2_ok = (p2_pos < {20'd0, cfg_cols});
      wire q_ok = (q_pos < {20'd0, cfg_cols});
      for (gl = 0; gl < SV; gl = gl + 1) begin : g_mant
        wire signed [48:0] x2 = {rb_data[48*(gi*SV+gl)+:48], 1'b0};
        /* verilator lint_off UNUSEDSIGNAL */
        // Only the low 9 bits of the shifted value form the (8-bit) mantissa.
        wire signed [48:0] y2 = x2 >>> sh[6*gi+:6];
        /* verilator lint_on UNUSEDSIGNAL */
        // ((2x >>> s) + 1) >>> 1
        assign m2[8*(gi*SV+gl)+:8] = p2_ok ? y2[8:1] + {7'd0, y2[0]} : 8'd0;
      end

      // Block sum A_b: the slot's SV mantissas (heap adder tree), summed
      // over the block's lines.
      wire [(2*SV-1)*13-1:0] at  /* verilator split_var */;
      for (gl = 0; gl < SV; gl = gl + 1) begin : g_aleaf
        wire [7:0] mv = q_m[8*(gi*SV+gl)+:8];
        assign at[13*(SV-1+gl)+:13] = {{5{mv[7]}}, mv};
      end
      for (gl = 0; gl < SV - 1; gl = gl + 1) begin : g_anode
        assign at[13*gl+:13] = at[13*(2*gl+1)+:13] + at[13*(2*gl+2)+:13];
      end
      assign asum_next[13*gi+:13] = (q_bf ? 13'd0 : asum[13*gi+:13]) + at[12:0];
      assign eitem[EW*gi+:EW] = q_ok ? {asum_next[13*gi+:13], q_s[6*gi+:6]} : {EW{1'b0}};
    end
  endgenerate

  // ------------------------------------------------------------------
  // Input buffers: xbuf (LANES mantissas a word) takes the V mantissas of
  // a line, xexp (NB block slots a word) the BPL blocks that a line ends.
  // ------------------------------------------------------------------
  /* verilator lint_off UNUSEDSIGNAL */
  wire [39:0] q_n0 = {20'd0, q_l} << LGV;  // first value of the line
  /* verilator lint_on UNUSEDSIGNAL */
  wire [19:0] q_b0 = q_n0[24:5];  // first block the line ends
  wire [LANES*8-1:0] xb_rdata;
  wire [NB*EW-1:0] xe_rdata;

  tls_mv_ibuf #(
      .IW(8),
      .Q (LANES),
      .P (V),
      .D (XW),
      .RA(XWA)
  ) u_xbuf (
      .clk    (clk),
      .rst    (rst),
      .in_v   (q_v),
      .in_n0  (q_n0[19:0]),
      .in_d   (q_m),
      .in_last(q_last),
      .re     (issue),
      .raddr  (c[XWA-1:0]),
      .rdata  (xb_rdata)
  );

  tls_mv_ibuf #(
      .IW(EW),
      .Q (NB),
      .P (BPL),
      .D (XE),
      .RA(XEA)
  ) u_xexp (
      .clk    (clk),
      .rst    (rst),
      .in_v   (q_v && q_bl),
      .in_n0  (q_b0),
      .in_d   (eitem),
      .in_last(q_last),
      .re     (issue),
      .raddr  (c[XEA+LGCPB-1:LGCPB]),
      .rdata  (xe_rdata)
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

  // Row slices: everything from S1 to S8 once per row j of the group.
  // Shared: the input buffer word and the block exponents.
  reg [NB*EW-1:0] s2_e, s3_e, s4_e;
  always @(posedge clk) begin
    s2_e <= xe_rdata;
    s3_e <= s2_e;
    s4_e <= s3_e;
  end

  // S7: the group's output bookkeeping (row group, line address, mask).
  localparam integer NT = 2 * NB;
  localparam integer RMASK_I = ROWS - 1;
  localparam [RW-1:0] RMASK = RMASK_I[RW-1:0];
  localparam [AW-1:0] ROWS_A = ROWS[AW-1:0];
  reg [RW-1:0] orow;  // row group of the S7 word
  reg [AW-1:0] obase;  // its first row (orow * ROWS)
  reg [AW-1:0] s8_row;
  reg [ROWS-1:0] s8_m;
  /* verilator lint_off UNUSEDSIGNAL */
  // Unread when ROWS = 1 (every group is one whole row).
  wire [RW-1:0] rows_m1 = cfg_rows - 1'b1;
  wire o_last = (orow == rowsm1);
  /* verilator lint_on UNUSEDSIGNAL */
  wire s7_out = s7_v && s7_rl;
  assign br_en = s7_out && cfg_has_bias;
  assign br_addr = br_en ? orow : {RW{1'b0}};

  always @(posedge clk) begin
    if (rst || !busy) begin
      orow <= {RW{1'b0}};
      obase <= {AW{1'b0}};
    end else if (s7_out) begin
      orow <= orow + 1'b1;
      obase <= obase + ROWS_A;
    end
    s8_row <= obase;
    s8_m <= m7;
  end

  wire [ROWS*48-1:0] ys;
  wire [ROWS-1:0] m7;
  generate
    for (gr = 0; gr < ROWS; gr = gr + 1) begin : g_row
      localparam [RW-1:0] RJ = gr;
      wire [WW-1:0] wd = wr_data[WW*gr+:WW];

      // S1: lane products a_i * (c_i + code_bias), exact in 18 bits
      // (|a| <= 127, -128 <= c + code_bias <= 383).
      wire [LANES*PW-1:0] prod;
      reg [LANES*PW-1:0] s2_prod;
      for (gh = 0; gh < LANES; gh = gh + LH) begin : g_laneh
        for (gi = 0; gi < LH; gi = gi + 1) begin : g_lane
          localparam integer I = gh + gi;
          wire signed [PW-1:0] a = {{(PW - 8) {xb_rdata[8*I+7]}}, xb_rdata[8*I+:8]};
          wire signed [9:0] cc = {{2{wd[8*I+7]}}, wd[8*I+:8]} + {2'b00, cfg_code_bias};
          wire signed [PW-1:0] cw = {{(PW - 10) {cc[9]}}, cc};
          assign prod[PW*I+:PW] = a * cw;
        end
      end

      reg [NB*36-1:0] s2_f, s3_f, s4_f;
      always @(posedge clk) begin
        s2_prod <= prod;
        s2_f <= wd[WW-1:LANES*8];
        s3_f <= s2_f;
        s4_f <= s3_f;
      end

      // S2..S5 per block slot.
      reg [NB*SW-1:0] s3_p;
      reg [NB*48-1:0] s6_td, s6_tm;
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

      // S6: sum of the word's 2*NB block terms (heap tree, 64 bits).
      wire [(2*NT-1)*64-1:0] tt  /* verilator split_var */;
      for (gi = 0; gi < NB; gi = gi + 1) begin : g_tleaf
        wire [47:0] td = s6_td[48*gi+:48];
        wire [47:0] tm = s6_tm[48*gi+:48];
        assign tt[64*(NT-1+2*gi)+:64] = {{16{td[47]}}, td};
        assign tt[64*(NT-1+2*gi+1)+:64] = {{16{tm[47]}}, tm};
      end
      for (gi = 0; gi < NT - 1; gi = gi + 1) begin : g_tnode
        assign tt[64*gi+:64] = tt[64*(2*gi+1)+:64] + tt[64*(2*gi+2)+:64];
      end

      reg [63:0] s7_bs;
      always @(posedge clk) s7_bs <= tt[63:0];

      // S7: row accumulator; row j of the last group is written only if
      // it exists (j <= (rows - 1) mod ROWS).
      reg [63:0] acc;
      reg [63:0] s8_rs;
      wire [63:0] acc_next = (s7_rf ? 64'd0 : acc) + s7_bs;
      if (gr == 0) begin : g_m0
        assign m7[gr] = 1'b1;  // a group's first row always exists
      end else begin : g_mj
        assign m7[gr] = !o_last || (RJ <= (rows_m1 & RMASK));
      end
      always @(posedge clk) begin
        if (s7_v) acc <= acc_next;
        s8_rs <= acc_next;
      end

      // S8: bias, saturation.
      wire [47:0] bias = cfg_has_bias ? br_data[48*gr+:48] : 48'd0;
      wire [64:0] ysum = {s8_rs[63], s8_rs} + {{17{bias[47]}}, bias};
      wire y_fits = (ysum[64:47] == {18{ysum[64]}});
      assign ys[48*gr+:48] = y_fits ? ysum[47:0] : (ysum[64] ? WMIN : WMAX);
    end
  endgenerate

  // S8: registered scratchpad line write (ROWS * 48 bits: past Verilator's
  // 8k-bit replication warning at ROWS = 256).
  /* verilator lint_off WIDTHCONCAT */
  always @(posedge clk) begin
    if (rst) begin
      w_en <= {ROWS{1'b0}};
      w_addr <= {AW{1'b0}};
      w_data <= {(ROWS * 48) {1'b0}};
      done <= 1'b0;
    end else begin
      w_en <= s8_v ? s8_m : {ROWS{1'b0}};
      w_addr <= s8_v ? cfg_dst + s8_row : {AW{1'b0}};
      w_data <= s8_v ? ys : {(ROWS * 48) {1'b0}};
      done <= (s8_v && s8_fin) || zdone;
    end
  end
  /* verilator lint_on WIDTHCONCAT */
endmodule

// tls_mv_ibuf: one input buffer of tls_matvec. The read side is a plain
// memory of D words of Q items (IW bits each): word `raddr` one cycle after
// `re`. The write side takes P items per cycle (`in_n0`, a multiple of P,
// is the index of the first; `in_last` marks the vector's last items):
//   P <= Q: the items gather into a word register at slot (in_n0 / P) mod
//           (Q / P); the word is written when its last slot or the
//           vector's last items arrive (slots not reached stay zero);
//   P >  Q: P / Q banks, word w in bank w mod (P / Q) at w / (P / Q): the P
//           items (P / Q whole words) are written at once, one per bank.
module tls_mv_ibuf #(
    parameter integer IW = 8,
    parameter integer Q = 32,
    parameter integer P = 1,
    parameter integer D = 16,
    parameter integer RA = 4
) (
    input  wire          clk,
    input  wire          rst,
    input  wire          in_v,
    input  wire [19:0]   in_n0,
    input  wire [P*IW-1:0] in_d,
    input  wire          in_last,
    input  wire          re,
    input  wire [RA-1:0] raddr,
    output wire [Q*IW-1:0] rdata
);
  localparam integer LGQ = $clog2(Q);
  localparam integer LGP = $clog2(P);
  generate
    if (P <= Q) begin : g_asm
      localparam integer NS = Q / P;  // slots per word
      localparam integer NSM_I = NS - 1;
      localparam [19:0] NSM = NSM_I[19:0];
      /* verilator lint_off UNUSEDSIGNAL */
      wire [19:0] pos = (in_n0 >> LGP) & NSM;
      wire [19:0] wa = in_n0 >> LGQ;
      /* verilator lint_on UNUSEDSIGNAL */
      reg [Q*IW-1:0] asm;
      wire [Q*IW-1:0] asm_next;
      genvar gs;
      for (gs = 0; gs < NS; gs = gs + 1) begin : g_slot
        localparam [19:0] SPOS = gs;
        assign asm_next[P*IW*gs+:P*IW] = (pos == SPOS) ? in_d : asm[P*IW*gs+:P*IW];
      end
      wire we = in_v && ((pos == NSM) || in_last);
      always @(posedge clk) begin
        if (rst) asm <= {(Q * IW) {1'b0}};
        else if (in_v) asm <= we ? {(Q * IW) {1'b0}} : asm_next;
      end
      tls_sram #(
          .W (Q * IW),
          .D (D),
          .AW(RA)
      ) u_mem (
          .clk  (clk),
          .we   (we),
          .waddr(wa[RA-1:0]),
          .wdata(asm_next),
          .re   (re),
          .raddr(raddr),
          .rdata(rdata)
      );
    end else begin : g_bank
      localparam integer KB = P / Q;  // banks
      localparam integer LGK = $clog2(KB);
      localparam integer BD = (D + KB - 1) / KB;
      localparam integer BA = (BD > 1) ? $clog2(BD) : 1;
      /* verilator lint_off UNUSEDSIGNAL */
      wire [19:0] wa = in_n0 >> LGP;
      wire [RA-1:0] ra = raddr >> LGK;
      wire unused = &{1'b0, in_last, rst};
      /* verilator lint_on UNUSEDSIGNAL */
      wire [LGK-1:0] rsel_n = raddr[LGK-1:0];
      reg [LGK-1:0] rsel;
      always @(posedge clk) if (re) rsel <= rsel_n;
      wire [KB*Q*IW-1:0] bq;
      genvar gk;
      for (gk = 0; gk < KB; gk = gk + 1) begin : g_k
        localparam [LGK-1:0] KPOS = gk;
        tls_sram #(
            .W (Q * IW),
            .D (BD),
            .AW(BA)
        ) u_mem (
            .clk  (clk),
            .we   (in_v),
            .waddr(wa[BA-1:0]),
            .wdata(in_d[Q*IW*gk+:Q*IW]),
            .re   (re && (rsel_n == KPOS)),
            .raddr(ra[BA-1:0]),
            .rdata(bq[Q*IW*gk+:Q*IW])
        );
      end
      assign rdata = bq[Q*IW*rsel+:Q*IW];
    end
  endgenerate
endmodule
