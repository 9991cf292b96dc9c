// tls_rope: rotary position embedding in place (UNITS.md, `tls_rope`;
// `rotate` in compiler/numerics/src/rope.rs).
//
// Per head h (base = src + h·hd) and pair i < rot/2, with (c, s) = table
// entry pos·(rot/2) + i (Q1.14):
//   a = spad[base + i], b = spad[base + i + rot/2]
//   a' = sat_w48(rshr(a·c - b·s, 14)), b' = sat_w48(rshr(b·c + a·s, 14))
// Features at or beyond rot are neither read nor written.
//
// Cycles (start in cycle 0, `done` in cycle D, busy in 1..D): two cycles
// per pair (the single write port writes a' then b'):
//   P = n_heads · (rot/2);  D = 2P + 5 (P > 0),  D = 1 (P = 0).
// Pair p issues its reads (both scratchpad ports and the table) in cycle
// 2 + 2p (cycle 1 computes the table base pos·(rot/2)), writes a' in
// cycle 5 + 2p and b' in 6 + 2p.
module tls_rope #(
    parameter integer AW = 16,
    parameter integer TAW = 16
) (
    input  wire           clk,
    input  wire           rst,
    input  wire           start,
    input  wire [AW-1:0]  cfg_src,
    input  wire [7:0]     cfg_n_heads,
    input  wire [9:0]     cfg_hd,
    input  wire [9:0]     cfg_rot,
    input  wire [15:0]    cfg_pos,
    output wire           busy,
    output reg            done,
    // scratchpad
    output wire           ra_en,
    output wire [AW-1:0]  ra_addr,
    input  wire [47:0]    ra_data,
    output wire           rb_en,
    output wire [AW-1:0]  rb_addr,
    input  wire [47:0]    rb_data,
    output reg            w_en,
    output reg  [AW-1:0]  w_addr,
    output reg  [47:0]    w_data,
    // cos/sin table: {cos[15:0], sin[15:0]}
    output wire           t_en,
    output wire [TAW-1:0] t_addr,
    input  wire [31:0]    t_data
);
  wire [8:0]  half = cfg_rot[9:1];

  reg         run;
  reg         setup;  // first busy cycle: table base
  reg         ph;  // issue when ph == 0
  reg  [7:0]  hc;  // head being issued
  reg  [8:0]  pc;  // pair within the head
  reg  [17:0] hbase;  // hc · hd
  reg  [24:0] tbase;  // pos · half
  reg         more;  // pairs left to issue
  reg         p1, p2, p3, p4;  // p1: data valid; a' written in p3, b' in p4
  reg  [47:0] ya, yb;
  reg  [AW-1:0] ia_addr, ib_addr;  // addresses of the issued pair
  reg  [AW-1:0] wa_addr, wb_addr;  // addresses of the pair being written

  wire        issue = run && !setup && more && !ph;
  // addresses, wide enough for every parameter value, then truncated
  wire [AW+24:0] a_off = {{(AW + 7) {1'b0}}, hbase} + {{(AW + 16) {1'b0}}, pc};
  wire [AW+24:0] b_off = a_off + {{(AW + 16) {1'b0}}, half};
  wire [AW+24:0] t_off = {{AW{1'b0}}, tbase} + {{(AW + 16) {1'b0}}, pc};
  wire [TAW+24:0] t_off_x = {{TAW{1'b0}}, t_off[24:0]};
  wire [AW-1:0] a_adr = cfg_src + a_off[AW-1:0];
  wire [AW-1:0] b_adr = cfg_src + b_off[AW-1:0];

  assign busy    = run;
  assign ra_en   = issue;
  assign ra_addr = issue ? a_adr : {AW{1'b0}};
  assign rb_en   = issue;
  assign rb_addr = issue ? b_adr : {AW{1'b0}};
  assign t_en    = issue;
  assign t_addr  = issue ? t_off_x[TAW-1:0] : {TAW{1'b0}};

  // rotation (operands valid while p1)
  wire signed [15:0] cc = t_data[31:16];
  wire signed [15:0] ss = t_data[15:0];
  wire signed [63:0] ac = $signed(ra_data) * cc;
  wire signed [63:0] as_ = $signed(ra_data) * ss;
  wire signed [63:0] bc = $signed(rb_data) * cc;
  wire signed [63:0] bs = $signed(rb_data) * ss;
  wire [64:0] na = {ac[63], ac} - {bs[63], bs};
  wire [64:0] nb = {bc[63], bc} + {as_[63], as_};
  // rshr(., 14): 51-bit quotient plus the rounding bit
  wire [51:0] ra_r = {na[64], na[64:14]} + {51'd0, na[13]};
  wire [51:0] rb_r = {nb[64], nb[64:14]} + {51'd0, nb[13]};
  wire        a_ok = (&ra_r[51:47]) | ~(|ra_r[51:47]);
  wire        b_ok = (&rb_r[51:47]) | ~(|rb_r[51:47]);
  wire [47:0] a_new = a_ok ? ra_r[47:0] : {ra_r[51], {47{~ra_r[51]}}};
  wire [47:0] b_new = b_ok ? rb_r[47:0] : {rb_r[51], {47{~rb_r[51]}}};

  // Deliberately unused: bit 0 of rot (always even), bits below the
  // rounding position, and address bits above the truncated widths.
  wire unused_bits = &{1'b0, cfg_rot[0], b_off[AW+24:AW], t_off[AW+24:25], t_off_x[TAW+24:TAW],
                       na[12:0], nb[12:0]};

  wire        last_pair = (pc == half - 9'd1);
  wire        last_head = (hc == cfg_n_heads - 8'd1);

  always @(posedge clk) begin
    if (rst) begin
      run <= 1'b0;
      setup <= 1'b0;
      done <= 1'b0;
      ph <= 1'b0;
      hc <= 8'd0;
      pc <= 9'd0;
      hbase <= 18'd0;
      tbase <= 25'd0;
      more <= 1'b0;
      p1 <= 1'b0;
      p2 <= 1'b0;
      p3 <= 1'b0;
      p4 <= 1'b0;
      ya <= 48'd0;
      yb <= 48'd0;
      ia_addr <= {AW{1'b0}};
      ib_addr <= {AW{1'b0}};
      wa_addr <= {AW{1'b0}};
      wb_addr <= {AW{1'b0}};
      w_en <= 1'b0;
      w_addr <= {AW{1'b0}};
      w_data <= 48'd0;
    end else begin
      done <= 1'b0;
      p1 <= issue;
      p2 <= p1;
      p3 <= p2;
      p4 <= p3;
      ph <= issue;
      if (issue) begin
        ia_addr <= a_adr;
        ib_addr <= b_adr;
        if (last_pair) begin
          pc <= 9'd0;
          hc <= hc + 8'd1;
          hbase <= hbase + {8'd0, cfg_hd};
          if (last_head) more <= 1'b0;
        end else begin
          pc <= pc + 9'd1;
        end
      end
      if (p1) begin
        ya <= a_new;
        yb <= b_new;
        wa_addr <= ia_addr;
        wb_addr <= ib_addr;
      end
      w_en <= p2 || p3;
      w_addr <= p2 ? wa_addr : p3 ? wb_addr : {AW{1'b0}};
      w_data <= p2 ? ya : p3 ? yb : 48'd0;
      if (start) begin
        run <= 1'b1;
        setup <= 1'b1;
        hc <= 8'd0;
        pc <= 9'd0;
        hbase <= 18'd0;
        more <= (half != 9'd0) && (cfg_n_heads != 8'd0);
        done <= (half == 9'd0) || (cfg_n_heads == 8'd0);
      end else if (done) begin
        run <= 1'b0;
        setup <= 1'b0;
      end else if (setup) begin
        setup <= 1'b0;
        tbase <= {9'd0, cfg_pos} * {16'd0, half};
      end else if (run && !more && p4 && !p1 && !p2 && !p3) begin
        done <= 1'b1;  // the last b' was written in this cycle
      end
    end
  end
endmodule
