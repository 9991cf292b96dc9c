// tls_rope: rotary position embedding in place (UNITS.md, `tls_rope`;
// `rotate` in compiler/numerics/src/rope.rs).
//
// Per head h (base = src + h·hd) and pair i < rot/2, with (c, s) the table
// entry of (pos, i) (Q1.14):
//   a = spad[base + i], b = spad[base + i + rot/2]
//   a' = sat_w48(rshr(a·c - b·s, 14)), b' = sat_w48(rshr(b·c + a·s, 14))
// Features at or beyond rot are neither read nor written.
//
// V lanes (RFC 0005, vector-wide units): the scratchpad ports read aligned
// lines of V words and the write is a masked line. The table holds lines
// of V entries: word pos·H + k (H = ceil((rot/2) / V)) holds pairs
// k·V .. k·V + V - 1, lane j = {cos[15:0], sin[15:0]} in bits 32·j.. (zero
// past rot/2). cfg_src is a multiple of V (the plan aligns every vector).
//   Line mode (hd and rot/2 multiples of V; always at V = 1): a step is V
//   pairs: line src + h·hd + k·V (the a's), the line rot/2 further (the
//   b's) and table word pos·H + k, lane j rotating pair k·V + j; a' and b'
//   are written as two whole lines.
//   Head mode (not line mode; rot = hd, hd a power of two dividing V, so a
//   line holds V/hd whole heads): a step is one line src + s·V; lane j
//   holds feature i = j mod hd of its head and takes its partner from
//   lane j xor (rot/2), its table entry from lane j mod (rot/2) of word
//   pos·H; lanes with i < rot/2 keep a', the others b', and the line is
//   written once, masked to the n_heads·hd words of the vector.
//   Pair mode (otherwise: heads or halves not on lines): a step is one
//   pair; the lanes all take the pair's words (lane a mod V of the line
//   read at a, b mod V of the one at b, table lane i mod V), and a', b' are
//   written with one-hot masks.
//
// Cycles (start in cycle 0, `done` in cycle D, busy in 1..D): two cycles
// per step (the single write port writes a' then b'; head mode writes
// once and keeps the step length):
//   S = n_heads · (rot/2) / G, G = V in line mode, 1 in pair mode;
//   S = ceil(n_heads · hd / V) in head mode;
//   D = 2S + 6 (S > 0),  D = 1 (S = 0).
// Step p issues its reads (both scratchpad ports and the table) in cycle
// 2 + 2p (cycle 1 computes the table base pos·H), writes a' in cycle
// 6 + 2p and b' in 7 + 2p. Pipeline: p1 forms a·c − b·s and b·c + a·s
// (registered from the rounding position up), p2 rounds and saturates,
// so that no stage holds the products and the rounding in series
// (RFC 0005, "Pipelining for the clock").
// Scratchpad lines are V x 48 bits: past Verilator's 8k-bit replication
// warning at V = 256, on purpose.
/* verilator lint_off WIDTHCONCAT */
module tls_rope #(
    parameter integer AW = 16,
    parameter integer TAW = 16,
    parameter integer V = 1
) (
    input  wire            clk,
    input  wire            rst,
    input  wire            start,
    input  wire [AW-1:0]   cfg_src,
    input  wire [7:0]      cfg_n_heads,
    input  wire [9:0]      cfg_hd,
    input  wire [9:0]      cfg_rot,
    input  wire [15:0]     cfg_pos,
    output wire            busy,
    output reg             done,
    // scratchpad: line reads, masked line writes
    output wire            ra_en,
    output wire [AW-1:0]   ra_addr,
    input  wire [48*V-1:0] ra_data,
    output wire            rb_en,
    output wire [AW-1:0]   rb_addr,
    input  wire [48*V-1:0] rb_data,
    output reg             w_en,
    output reg  [V-1:0]    w_mask,
    output reg  [AW-1:0]   w_addr,
    output reg  [48*V-1:0] w_data,
    // cos/sin table: V x {cos[15:0], sin[15:0]}
    output wire            t_en,
    output wire [TAW-1:0]  t_addr,
    input  wire [32*V-1:0] t_data
);
  localparam integer LV = $clog2(V);
  localparam [AW-1:0] LMASK = ~(V[AW-1:0] - 1'b1);
  wire [8:0]  half = cfg_rot[9:1];
  wire [9:0]  vm = V[9:0] - 10'd1;
  // Line mode: every head and half starts on a line.
  wire        lmode_c = ((cfg_hd & vm) == 10'd0) && (({1'b0, half} & vm) == 10'd0);
  // Head mode: whole heads per line, every feature rotated.
  wire        hmode_c = !lmode_c && (cfg_rot == cfg_hd) && (cfg_hd != 10'd0)
                      && ((cfg_hd & (cfg_hd - 10'd1)) == 10'd0) && ({1'b0, cfg_hd} <= V[10:0]);
  // The modes, registered at `start` (the configuration holds while busy),
  // so that the lanes' operand choice does not start at the configuration.
  reg         lmode, hmode;
  // Head mode's partner distance: bit k set when rot/2 = 2^k (k < LV),
  // registered at `start` likewise.
  localparam integer HKW = (LV > 0) ? LV : 1;
  reg  [HKW-1:0] hk;
  reg  [HKW-1:0] hk_c;
  integer kk;
  always @* begin
    hk_c = {HKW{1'b0}};
    for (kk = 0; kk < LV; kk = kk + 1) hk_c[kk] = ({1'b0, half} == (10'd1 << kk));
  end
  wire [9:0]  step = lmode ? V[9:0] : 10'd1;  // pairs per step
  wire [9:0]  hwords = ({1'b0, half} + vm) >> LV;  // H = ceil(half / V)
  wire [17:0] n_words = {10'd0, cfg_n_heads} * {8'd0, cfg_hd};  // head mode: words rotated

  reg         run;
  reg         setup;  // first busy cycle: table base
  reg         ph;  // issue when ph == 0
  reg  [7:0]  hc;  // head being issued
  reg  [9:0]  pc;  // first pair of the step within the head
  reg  [17:0] hbase;  // hc · hd
  reg  [25:0] tbase;  // pos · H
  reg         more;  // steps left to issue
  reg         p1, p2, p3, p4, p5;  // p1: data valid; a' written in p4, b' in p5
  reg  [48*V-1:0] ya, yb;
  reg  [AW-1:0] ia_addr, ib_addr;  // word addresses of the issued step
  reg  [9:0]  it_pair;  // its first pair (table lane in pair mode)
  reg  [AW-1:0] wa_addr, wb_addr;  // word addresses of the step being written
  reg  [17:0] i_lim, w_lim;  // head mode: words of the vector from the step's line on

  wire        issue = run && !setup && more && !ph;
  // addresses, wide enough for every parameter value, then truncated
  wire [AW+25:0] a_off = {{(AW + 8) {1'b0}}, hbase} + {{(AW + 16) {1'b0}}, pc};
  wire [AW+25:0] b_off = a_off + {{(AW + 17) {1'b0}}, half};
  wire [25:0] t_off = tbase + {16'd0, pc >> LV};
  wire [TAW+25:0] t_off_x = {{TAW{1'b0}}, t_off};
  wire [AW-1:0] a_adr = cfg_src + a_off[AW-1:0];
  wire [AW-1:0] b_adr = cfg_src + b_off[AW-1:0];

  assign busy    = run;
  assign ra_en   = issue;
  assign ra_addr = issue ? (a_adr & LMASK) : {AW{1'b0}};
  assign rb_en   = issue;
  assign rb_addr = issue ? (b_adr & LMASK) : {AW{1'b0}};
  assign t_en    = issue;
  assign t_addr  = issue ? t_off_x[TAW-1:0] : {TAW{1'b0}};

  // Pair mode: the words of the step's one pair (operands valid while p1).
  wire [AW-1:0] sa = ia_addr & ~LMASK;
  wire [AW-1:0] sb = ib_addr & ~LMASK;
  wire [9:0]    stl = it_pair & vm;
  wire [47:0] a_sel = ra_data[48*sa+:48];
  wire [47:0] b_sel = rb_data[48*sb+:48];
  wire [31:0] t_sel = t_data[32*stl+:32];

  // rotation, one per lane
  wire [48*V-1:0] a_new, b_new, h_new;
  genvar j;
  generate
    for (j = 0; j < V; j = j + 1) begin : g_lane
      // Head mode: the partner (lane j xor rot/2) and the table entry (lane
      // j mod rot/2), one choice per power of two rot/2 can be.
      reg [47:0] hp;
      reg [31:0] ht;
      integer k;
      always @* begin
        hp = 48'd0;
        ht = 32'd0;
        for (k = 0; k < LV; k = k + 1) begin
          if (hk[k]) begin
            hp = ra_data[48*(j^(1<<k))+:48];
            ht = t_data[32*(j&((1<<k)-1))+:32];
          end
        end
      end
      localparam [9:0] JB = j;
      // head mode (rot/2 = 2^k): the lane holds a b when its bit k is set
      wire        hb = |(JB[HKW-1:0] & hk);
      wire [47:0] own = ra_data[48*j+:48];
      wire [47:0] av = hmode ? (hb ? hp : own) : lmode ? own : a_sel;
      wire [47:0] bv = hmode ? (hb ? own : hp) : lmode ? rb_data[48*j+:48] : b_sel;
      wire [31:0] tv = hmode ? ht : lmode ? t_data[32*j+:32] : t_sel;
      wire signed [15:0] cc = tv[31:16];
      wire signed [15:0] ss = tv[15:0];
      wire signed [63:0] ac = $signed(av) * cc;
      wire signed [63:0] as_ = $signed(av) * ss;
      wire signed [63:0] bc = $signed(bv) * cc;
      wire signed [63:0] bs = $signed(bv) * ss;
      wire [64:0] na = {ac[63], ac} - {bs[63], bs};
      wire [64:0] nb = {bc[63], bc} + {as_[63], as_};
      // p1 -> p2: the sums from the rounding bit up, and the lane's side
      reg  [51:0] na2, nb2;
      always @(posedge clk) begin
        if (rst) begin
          na2 <= 52'd0;
          nb2 <= 52'd0;
        end else if (p1) begin
          na2 <= na[64:13];
          nb2 <= nb[64:13];
        end
      end
      // rshr(., 14): 51-bit quotient plus the rounding bit
      wire [51:0] ra_r = {na2[51], na2[51:1]} + {51'd0, na2[0]};
      wire [51:0] rb_r = {nb2[51], nb2[51:1]} + {51'd0, nb2[0]};
      wire        a_ok = (&ra_r[51:47]) | ~(|ra_r[51:47]);
      wire        b_ok = (&rb_r[51:47]) | ~(|rb_r[51:47]);
      assign a_new[48*j+:48] = a_ok ? ra_r[47:0] : {ra_r[51], {47{~ra_r[51]}}};
      assign b_new[48*j+:48] = b_ok ? rb_r[47:0] : {rb_r[51], {47{~rb_r[51]}}};
      assign h_new[48*j+:48] = hb ? b_new[48*j+:48] : a_new[48*j+:48];
      // Deliberately unused: bits below the rounding position.
      wire unused_lane = &{1'b0, na[12:0], nb[12:0]};
    end
  endgenerate

  // Write mask of the word at `a` in its line: all lanes in line mode.
  function automatic [V-1:0] wmask(input [AW-1:0] a, input lm);
    wmask = lm ? {V{1'b1}} : (~({V{1'b1}} << 1) << (a & ~LMASK));
  endfunction
  // Head mode: the lanes below the vector's end.
  function automatic [V-1:0] hmask(input [17:0] lim);
    integer m;
    for (m = 0; m < V; m = m + 1) hmask[m] = (m < lim);
  endfunction

  // Deliberately unused: bit 0 of rot (always even), and address bits
  // above the truncated widths.
  wire unused_bits = &{1'b0, cfg_rot[0], b_off[AW+25:AW], a_off[AW+25:AW],
                       t_off_x[TAW+25:TAW]};

  wire        last_pair = (pc + step == {1'b0, half});
  wire        last_head = (hc == cfg_n_heads - 8'd1);

  always @(posedge clk) begin
    if (rst) begin
      run <= 1'b0;
      setup <= 1'b0;
      done <= 1'b0;
      ph <= 1'b0;
      hc <= 8'd0;
      pc <= 10'd0;
      hbase <= 18'd0;
      tbase <= 26'd0;
      more <= 1'b0;
      lmode <= 1'b0;
      hmode <= 1'b0;
      hk <= {HKW{1'b0}};
      p1 <= 1'b0;
      p2 <= 1'b0;
      p3 <= 1'b0;
      p4 <= 1'b0;
      p5 <= 1'b0;
      ya <= {(48 * V) {1'b0}};
      yb <= {(48 * V) {1'b0}};
      ia_addr <= {AW{1'b0}};
      ib_addr <= {AW{1'b0}};
      it_pair <= 10'd0;
      i_lim <= 18'd0;
      w_lim <= 18'd0;
      wa_addr <= {AW{1'b0}};
      wb_addr <= {AW{1'b0}};
      w_en <= 1'b0;
      w_mask <= {V{1'b0}};
      w_addr <= {AW{1'b0}};
      w_data <= {(48 * V) {1'b0}};
    end else begin
      done <= 1'b0;
      p1 <= issue;
      p2 <= p1;
      p3 <= p2;
      p4 <= p3;
      p5 <= p4;
      ph <= issue;
      if (issue) begin
        ia_addr <= a_adr;
        ib_addr <= b_adr;
        it_pair <= pc;
        i_lim <= n_words - hbase;
        if (hmode) begin
          hbase <= hbase + V[17:0];
          if (hbase + V[17:0] >= n_words) more <= 1'b0;
        end else if (last_pair) begin
          pc <= 10'd0;
          hc <= hc + 8'd1;
          hbase <= hbase + {8'd0, cfg_hd};
          if (last_head) more <= 1'b0;
        end else begin
          pc <= pc + step;
        end
      end
      if (p2) begin
        ya <= hmode ? h_new : a_new;
        yb <= b_new;
        wa_addr <= ia_addr;
        wb_addr <= ib_addr;
        w_lim <= i_lim;
      end
      w_en <= p3 || (p4 && !hmode);
      w_mask <= p3 ? (hmode ? hmask(w_lim) : wmask(wa_addr, lmode))
              : (p4 && !hmode) ? wmask(wb_addr, lmode) : {V{1'b0}};
      w_addr <= p3 ? (wa_addr & LMASK) : p4 ? (wb_addr & LMASK) : {AW{1'b0}};
      w_data <= p3 ? ya : p4 ? yb : {(48 * V) {1'b0}};
      if (start) begin
        run <= 1'b1;
        setup <= 1'b1;
        hc <= 8'd0;
        pc <= 10'd0;
        hbase <= 18'd0;
        more <= (half != 9'd0) && (cfg_n_heads != 8'd0);
        lmode <= lmode_c;
        hmode <= hmode_c;
        hk <= hk_c;
        done <= (half == 9'd0) || (cfg_n_heads == 8'd0);
      end else if (done) begin
        run <= 1'b0;
        setup <= 1'b0;
      end else if (setup) begin
        setup <= 1'b0;
        tbase <= {10'd0, cfg_pos} * {16'd0, hwords};
      end else if (run && !more && p5 && !p1 && !p2 && !p3 && !p4) begin
        done <= 1'b1;  // the last b' was written in this cycle
      end
    end
  end
endmodule
/* verilator lint_on WIDTHCONCAT */
