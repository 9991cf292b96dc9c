// tls_norm: RMSNorm / LayerNorm of n R32 values into W48 (UNITS.md,
// `tls_norm`; `rms_norm` / `layer_norm` in compiler/numerics/src/norm.rs).
//
//   [LayerNorm] pass A: Σ r_i (exact, 56 bits); mu = div_n(Σ, M_n)
//               c_i = sat32(r_i - mu)           (RMSNorm: c_i = r_i)
//   pass B:     S = Σ c_i^2 (exact, 84 bits); mean = div_n(S, M_n)
//               v = clamp(mean + eps, 1, 2^64 - 1); (t, te) = rsqrt(v, 32)
//   pass C:     u_i = shift_sat_w48(c_i · t, te + 8)
//               y_i = sat_w48(rshr(u_i · g_i, 16) [+ b_i << 8])  -> spad[dst + i]
// div_n(x) = rshr(x · M_n, 40) is a serial shift-and-add multiply, one bit
// of M_n per cycle (41 cycles) plus one cycle for the rounding shift.
// rsqrt: leading-one detection, even shift 2k with rounding, carry
// renormalization (m = 4096 -> 1024, k + 1), one read of `rsqrt.hex`.
//
// V lanes (RFC 0005, vector-wide units): every pass reads one aligned
// scratchpad line of V values per cycle (lane j of line l is element
// l·V + j; cfg_src and cfg_dst are multiples of V, as the plan aligns every
// vector), and pass C writes one line per cycle, the last line masked to
// the lanes below n. The sums add the line's V terms in one adder tree
// (integer sums: the same bits in any order); lanes past n add nothing.
// The gain and bias ROMs hold lines of V Q15.16 words (word l = elements
// l·V .. l·V + V - 1, lane j in bits 32·j..), one word read per line.
//
// Cycles (start in cycle 0, `done` in cycle D, busy in 1..D; n >= 1), with
// L = ceil(n / V) lines:
//   RMSNorm:   D = 2L + 54
//   LayerNorm: D = 3L + 99
// (pass A: L + 3 cycles, pass B L + 4, each division 42, rsqrt 2, pass C
// L + 5, then the `done` cycle.)
//   n = 0:     D = 1 (nothing written)
// Pass C reads line l (scratchpad and gain/bias ROMs) and writes it 5
// cycles later, one line per cycle; dst may equal src. Its stages: p1
// c·t, p2 the shift to u, p3 u·g, p4 the rounding, bias and saturation.
// Pass B squares in p2 and adds the line's squares into the sum in p3
// (RFC 0005, "Pipelining for the clock": no multiplier shares a stage
// with the adder after it).
// Scratchpad lines are V x 48 bits: past Verilator's 8k-bit replication
// warning at V = 256, on purpose.
/* verilator lint_off WIDTHCONCAT */
module tls_norm #(
    parameter integer AW = 16,
    parameter integer GAW = 12,
    parameter integer V = 1,
    parameter TABLE_DIR = "rom/tables/"
) (
    input  wire           clk,
    input  wire           rst,
    input  wire           start,
    input  wire [AW-1:0]  cfg_src,
    input  wire [AW-1:0]  cfg_dst,
    input  wire [19:0]    cfg_n,
    input  wire [40:0]    cfg_mn,
    input  wire [47:0]    cfg_eps,
    input  wire           cfg_layer,
    output wire           busy,
    output reg            done,
    // scratchpad
    output wire           ra_en,
    output wire [AW-1:0]  ra_addr,
    input  wire [48*V-1:0] ra_data,
    output reg            w_en,
    output reg  [V-1:0]   w_mask,
    output reg  [AW-1:0]  w_addr,
    output reg  [48*V-1:0] w_data,
    // gain ROM (Q15.16) and bias ROM (Q15.16, LayerNorm only): V per word
    output wire           g_en,
    output wire [GAW-1:0] g_addr,
    input  wire [32*V-1:0] g_data,
    output wire           b_en,
    output wire [GAW-1:0] b_addr,
    input  wire [32*V-1:0] b_data
);
  localparam integer LV = $clog2(V);
  localparam [3:0] S_IDLE = 4'd0, S_SUM = 4'd1, S_DIV = 4'd2, S_SQ = 4'd3, S_RS1 = 4'd4,
                   S_RS2 = 4'd5, S_OUT = 4'd6;

  reg  [3:0]   st;
  reg          div_var;  // the running division is the variance (else the mean)
  reg  [20:0]  ic;  // lines issued in this pass
  reg  [20:0]  wc;  // lines written
  reg          p1, p2, p3, p4;  // pipeline valid flags
  reg          q3;  // pass B: the line's squares are registered
  reg  [V-1:0] m1, m2, m3, m4;  // lanes holding elements (< n), per stage
  reg  [55:0]  acc_s;  // Σ r_i
  reg  [83:0]  acc_q;  // Σ c_i^2
  reg  [33:0]  mu;  // LayerNorm mean (R32 units)
  reg  [125:0] d_prod, d_op;  // serial multiply
  reg  [40:0]  d_m;
  reg  [5:0]   d_cnt;
  reg  [63:0]  v64;
  reg  [7:0]   rk;  // rsqrt shift k (signed)
  reg  [18:0]  t_r;  // rsqrt mantissa
  reg  [6:0]   up_r;  // te + 8 = 1 - k (signed)

  // Lines: ceil(n / V).
  wire [20:0]  n_x = {1'b0, cfg_n};
  wire [20:0]  lines = (n_x + V[20:0] - 21'd1) >> LV;
  wire         pass = (st == S_SUM) || (st == S_SQ) || (st == S_OUT);
  wire         issue = pass && (ic != lines);
  wire         pass_end = pass && !issue && !p1 && !p2 && !p3 && !q3;

  wire [AW+20:0]  ic_a = {{AW{1'b0}}, ic} << LV;
  wire [AW+20:0]  wc_a = {{AW{1'b0}}, wc} << LV;
  wire [GAW+20:0] ic_g = {{GAW{1'b0}}, ic};
  wire            rd_gb = issue && (st == S_OUT);
  assign busy    = (st != S_IDLE);
  assign ra_en   = issue;
  assign ra_addr = issue ? cfg_src + ic_a[AW-1:0] : {AW{1'b0}};
  assign g_en    = rd_gb;
  assign g_addr  = rd_gb ? ic_g[GAW-1:0] : {GAW{1'b0}};
  assign b_en    = rd_gb && cfg_layer;
  assign b_addr  = (rd_gb && cfg_layer) ? ic_g[GAW-1:0] : {GAW{1'b0}};

  // u = shift_sat_w48(pt1, up): up in [-26, 6] since v in [1, 2^64)
  wire [6:0]  sr = ~up_r;  // -up - 1 when up < 0

  // ---- lanes ----
  wire [V-1:0]   imask;  // lanes of the issued line below n
  wire [56*V-1:0] xs;  // r_j (pass A terms, zero past n)
  wire [84*V-1:0] qs;  // c_j^2 (pass B terms, zero past n)
  wire [48*V-1:0] ys;  // outputs
  genvar j;
  generate
    for (j = 0; j < V; j = j + 1) begin : g_lane
      wire [AW+20:0] e = ic_a + j;
      assign imask[j] = e < {{AW{1'b0}}, n_x};
      // ---- element path (ra_data valid while p1) ----
      wire [31:0] x32 = ra_data[48*j+:32];
      wire [34:0] cdiff = {{3{x32[31]}}, x32} - {mu[33], mu};
      wire        c_ok = (&cdiff[34:31]) | ~(|cdiff[34:31]);
      wire [31:0] c32 = !cfg_layer ? x32 : c_ok ? cdiff[31:0] : {cdiff[34], {31{~cdiff[34]}}};
      reg  [31:0] c1;
      reg  [51:0] pt1;
      reg  [31:0] g1, b1, g2, b2, b3;
      reg  [47:0] u2;
      reg  [64:0] gp3;  // u·g from the rounding bit (bit 15) up
      wire signed [63:0] sq = $signed(c1) * $signed(c1);
      wire signed [51:0] pt = $signed(c32) * $signed({1'b0, t_r});
      wire [52:0] r_sh = $signed({pt1[51], pt1}) >>> sr;
      wire [52:0] r_rd = r_sh + 53'd1;  // rshr = (r_sh + 1) >>> 1
      wire [59:0] l_sh = {{8{pt1[51]}}, pt1} << up_r[2:0];
      wire        l_ok = (&l_sh[59:47]) | ~(|l_sh[59:47]);
      wire [47:0] u = up_r[6] ? r_rd[48:1] : l_ok ? l_sh[47:0] : {l_sh[59], {47{~l_sh[59]}}};
      // y = sat_w48(rshr(u·g, 16) + (b << 8))
      wire signed [79:0] gp = $signed(u2) * $signed(g2);
      wire [65:0] ysum = {{2{gp3[64]}}, gp3[64:1]} + {65'd0, gp3[0]}
                       + (cfg_layer ? {{26{b3[31]}}, b3, 8'd0} : 66'd0);
      wire        y_ok = (&ysum[65:47]) | ~(|ysum[65:47]);
      assign ys[48*j+:48] = y_ok ? ysum[47:0] : {ysum[65], {47{~ysum[65]}}};
      assign xs[56*j+:56] = m1[j] ? {{24{x32[31]}}, x32} : 56'd0;
      reg  [63:0] sq3;  // c^2 (0 past n), summed in stage 3 of pass B
      assign qs[84*j+:84] = {20'd0, sq3};
      // Deliberately unused: the sign-extension bits of R32 scratchpad
      // words and bits below a rounding position.
      wire unused_lane = &{1'b0, ra_data[48*j+32+:16], r_rd[52:49], r_rd[0], gp[14:0]};
      always @(posedge clk) begin
        if (rst) begin
          c1 <= 32'd0;
          pt1 <= 52'd0;
          g1 <= 32'd0;
          b1 <= 32'd0;
          g2 <= 32'd0;
          b2 <= 32'd0;
          b3 <= 32'd0;
          u2 <= 48'd0;
          gp3 <= 65'd0;
          sq3 <= 64'd0;
        end else begin
          if (p2) sq3 <= m2[j] ? sq : 64'd0;
          if (p1) begin
            c1 <= c32;
            pt1 <= pt;
            g1 <= g_data[32*j+:32];
            b1 <= b_data[32*j+:32];
          end
          if (p2) begin
            u2 <= u;
            g2 <= g1;
            b2 <= b1;
          end
          if (p3) begin
            gp3 <= gp[79:15];
            b3 <= b2;
          end
        end
      end
    end
  endgenerate
  // The line's terms summed (adder trees; integer sums, order free).
  reg [55:0] line_s;
  reg [83:0] line_q;
  integer q;
  always @* begin
    line_s = 56'd0;
    line_q = 84'd0;
    for (q = 0; q < V; q = q + 1) begin
      line_s = line_s + xs[56*q+:56];
      line_q = line_q + qs[84*q+:84];
    end
  end

  // ---- division result: rshr(d_prod, 40) ----
  wire [85:0] d_res = d_prod[125:40] + {85'd0, d_prod[39]};
  // ---- rsqrt ----
  wire [86:0] vsum = {d_res[85], d_res} + {39'd0, cfg_eps};
  wire [63:0] v_cl = vsum[86] ? 64'd1 : (|vsum[85:64]) ? {64{1'b1}} :
                     (vsum[63:0] == 64'd0) ? 64'd1 : vsum[63:0];
  reg  [7:0]  vlen;
  integer b;
  always @* begin
    vlen = 8'd0;
    for (b = 0; b < 64; b = b + 1) begin
      if (v64[b]) vlen = b[7:0] + 8'd1;
    end
  end
  wire [7:0]  km = vlen - 8'd11;
  wire [7:0]  k0 = {km[7], km[7:1]};  // floor((len - 11) / 2)
  wire        kpos = !k0[7] && (k0 != 8'd0);
  wire [7:0]  s1 = {k0[6:0], 1'b0} - 8'd1;  // 2k - 1
  wire [64:0] m_r = ({1'b0, v64} >> s1) + 65'd1;
  wire [7:0]  nk2 = 8'd0 - {k0[6:0], 1'b0};  // -2k when k <= 0 (0..10)
  wire [12:0] m_l = v64[12:0] << nk2[3:0];
  wire [12:0] m0 = kpos ? m_r[13:1] : m_l;
  wire        m_carry = m0[12];  // m == 4096
  wire [11:0] m_idx = m_carry ? 12'd0 : m0[11:0] - 12'd1024;
  wire        rs_rd = (st == S_RS1);
  wire [18:0] rs_q;
  tls_rom #(
      .W(19), .D(3072), .AW(12), .FILE({TABLE_DIR, "rsqrt.hex"})
  ) u_rsqrt (
      .clk(clk), .en(rs_rd), .addr(rs_rd ? m_idx : 12'd0), .data(rs_q)
  );

  // Deliberately unused: bits below a rounding position, and
  // index/address bits above the truncated width.
  wire unused_bits = &{1'b0, rk[7], ic_a[AW+20:AW], wc_a[AW+20:AW], ic_g[GAW+20:GAW], km[0],
                       m_r[64:14], m_r[0], nk2[7:4]};

  always @(posedge clk) begin
    if (rst) begin
      st <= S_IDLE;
      div_var <= 1'b0;
      done <= 1'b0;
      ic <= 21'd0;
      wc <= 21'd0;
      p1 <= 1'b0;
      p2 <= 1'b0;
      p3 <= 1'b0;
      p4 <= 1'b0;
      q3 <= 1'b0;
      acc_s <= 56'd0;
      acc_q <= 84'd0;
      mu <= 34'd0;
      d_prod <= 126'd0;
      d_op <= 126'd0;
      d_m <= 41'd0;
      d_cnt <= 6'd0;
      v64 <= 64'd0;
      rk <= 8'd0;
      t_r <= 19'd0;
      up_r <= 7'd0;
      m1 <= {V{1'b0}};
      m2 <= {V{1'b0}};
      m3 <= {V{1'b0}};
      m4 <= {V{1'b0}};
      w_en <= 1'b0;
      w_mask <= {V{1'b0}};
      w_addr <= {AW{1'b0}};
      w_data <= {(48 * V) {1'b0}};
    end else begin
      done <= 1'b0;
      p1 <= issue;
      p2 <= p1;
      p3 <= p2 && (st == S_OUT);
      p4 <= p3;
      q3 <= p2 && (st == S_SQ);
      m1 <= issue ? imask : {V{1'b0}};
      m2 <= m1;
      m3 <= m2;
      m4 <= m3;
      if (issue) ic <= ic + 21'd1;
      // pass A / B sums (pass C: the lanes' registers)
      if (p1 && st == S_SUM) acc_s <= acc_s + line_s;
      if (q3) acc_q <= acc_q + line_q;
      w_en <= p4;
      w_mask <= p4 ? m4 : {V{1'b0}};
      w_addr <= p4 ? cfg_dst + wc_a[AW-1:0] : {AW{1'b0}};
      w_data <= p4 ? ys : {(48 * V) {1'b0}};
      if (p4) wc <= wc + 21'd1;
      case (st)
        S_IDLE: begin
          if (start) begin
            ic <= 21'd0;
            wc <= 21'd0;
            acc_s <= 56'd0;
            acc_q <= 84'd0;
            mu <= 34'd0;
            if (cfg_n == 20'd0) begin
              st <= S_OUT;  // nothing to write: done in the next cycle
              done <= 1'b1;
            end else begin
              st <= cfg_layer ? S_SUM : S_SQ;
            end
          end
        end
        S_SUM, S_SQ: begin
          if (pass_end) begin
            st <= S_DIV;
            div_var <= (st == S_SQ);
            d_prod <= 126'd0;
            d_op <= (st == S_SQ) ? {42'd0, acc_q} : {{70{acc_s[55]}}, acc_s};
            d_m <= cfg_mn;
            d_cnt <= 6'd41;
          end
        end
        S_DIV: begin
          if (d_cnt != 6'd0) begin
            if (d_m[0]) d_prod <= d_prod + d_op;
            d_op <= {d_op[124:0], 1'b0};
            d_m <= {1'b0, d_m[40:1]};
            d_cnt <= d_cnt - 6'd1;
          end else if (div_var) begin
            st <= S_RS1;
            v64 <= v_cl;
          end else begin
            st <= S_SQ;
            mu <= d_res[33:0];
            ic <= 21'd0;
          end
        end
        S_RS1: begin  // table read at m_idx(v64)
          st <= S_RS2;
          rk <= k0 + {7'd0, m_carry};
        end
        S_RS2: begin
          st <= S_OUT;
          ic <= 21'd0;
          t_r <= rs_q;
          up_r <= 7'd1 - rk[6:0];
        end
        S_OUT: begin
          if (done) st <= S_IDLE;
          else if (w_en && (wc == lines)) done <= 1'b1;
        end
        default: st <= S_IDLE;
      endcase
    end
  end
endmodule
/* verilator lint_on WIDTHCONCAT */
