// tls_elem: elementwise ops over the scratchpad (UNITS.md, `tls_elem`).
//
//   op 0 RESID  sat32(a[31:0] + rshr(b, 8))           residual_add
//   op 1 ADDW   sat_w48(a + b)                        add_w48
//   op 2 MULW   sat_w48(rshr(a * b, 24))              mul_w48
//   op 3 SILU   sat_w48(rshr(a * sigmoid(a), 15))     silu
//   op 4 GELU   sat_w48(rshr(a * gelu_gate(a), 15))   gelu
//   op 5 COPY   a                                     (6, 7: COPY as well)
//
// V lanes (RFC 0005, vector-wide units): one scratchpad line of V words
// per read port and per write is processed per step; lane j of line l is
// element l·V + j. cfg_a, cfg_b and cfg_dst are multiples of V (the plan
// aligns every vector to the line); the last line's lanes past n are not
// written (w_mask). V = 1 is one element per step.
//
// Cycles (start pulse in cycle 0, `done` in cycle D, busy in 1..D), with
// L = ceil(n / V) lines:
//   RESID / ADDW / MULW / COPY:  D = L + 4   (one line per cycle)
//   SILU / GELU:                 D = 2L + 5  (two table reads per element)
//   n = 0:                       D = 1
// Line l issues its reads in cycle 1 + l (1 + 2l for SILU/GELU) and is
// written 3 (5) cycles later. dst may equal a or b (each line is read
// before it is written; different lines never alias).
//
// Pipeline (RFC 0005, "Pipelining for the clock": no stage holds two
// multipliers, or a multiplier and its rounding, in series): the simple
// ops compute in stage p1, up to MULW's 96-bit product (kept as its 73
// bits from the rounding position up), and MULW rounds and saturates in
// p2; SILU/GELU interpolate the gate in p3 and multiply, round and
// saturate in p4.
//
// SILU/GELU: `interp_p15` (scalar.rs). The GELU table has half the step of
// the sigmoid table; `off = 2x + 2^28` (= 2·(x - lo·2^24)) with step 2^17
// gives the same index, and rshr((t1-t0)·2f, 17) = rshr((t1-t0)·f, 16),
// so both tables share one datapath. One `tls_rom` per table and lane
// (V copies: the tables' bits are charged V times), read twice per element
// (entries idx and idx + 1).
// Scratchpad lines are V x 48 bits: past Verilator's 8k-bit replication
// warning at V = 256, on purpose.
/* verilator lint_off WIDTHCONCAT */
module tls_elem #(
    parameter integer AW = 16,
    parameter integer V = 1,
    parameter TABLE_DIR = "rom/tables/"
) (
    input  wire            clk,
    input  wire            rst,
    input  wire            start,
    input  wire [2:0]      cfg_op,
    input  wire [AW-1:0]   cfg_a,
    input  wire [AW-1:0]   cfg_b,
    input  wire [AW-1:0]   cfg_dst,
    input  wire [19:0]     cfg_n,
    output wire            busy,
    output reg             done,
    // scratchpad: line reads (V words from an aligned address), masked line writes
    output wire            ra_en,
    output wire [AW-1:0]   ra_addr,
    input  wire [48*V-1:0] ra_data,
    output wire            rb_en,
    output wire [AW-1:0]   rb_addr,
    input  wire [48*V-1:0] rb_data,
    output reg             w_en,
    output reg  [V-1:0]    w_mask,
    output reg  [AW-1:0]   w_addr,
    output reg  [48*V-1:0] w_data
);
  localparam [2:0] OP_RESID = 3'd0, OP_ADDW = 3'd1, OP_MULW = 3'd2, OP_SILU = 3'd3,
                   OP_GELU = 3'd4;
  localparam integer LV = $clog2(V);

  reg         run;
  reg         ph;  // SILU/GELU: issue only when ph == 0
  reg  [20:0] ic;  // lines issued
  reg  [20:0] wc;  // lines written
  reg         p1, p2, p3, p4;  // pipeline valid flags

  // Lines: ceil(n / V).
  wire [20:0] n_x = {1'b0, cfg_n};
  wire [20:0] lines = (n_x + V[20:0] - 21'd1) >> LV;
  wire        act = (cfg_op == OP_SILU) || (cfg_op == OP_GELU);
  wire        useb = (cfg_op == OP_RESID) || (cfg_op == OP_ADDW) || (cfg_op == OP_MULW);
  wire        issue = run && (ic != lines) && (!act || !ph);

  wire [AW+20:0] ic_x = {{AW{1'b0}}, ic} << LV;
  wire [AW+20:0] wc_x = {{AW{1'b0}}, wc} << LV;
  assign busy    = run;
  assign ra_en   = issue;
  assign ra_addr = issue ? cfg_a + ic_x[AW-1:0] : {AW{1'b0}};
  assign rb_en   = issue && useb;
  assign rb_addr = (issue && useb) ? cfg_b + ic_x[AW-1:0] : {AW{1'b0}};

  // table port timing (shared by the lanes)
  wire        t_rd = run && act && (p1 || p2);
  wire        wfire = act ? p4 : p2;
  wire [48*V-1:0] wres;

  genvar j;
  generate
    for (j = 0; j < V; j = j + 1) begin : g_lane
      wire [47:0] a = ra_data[48*j+:48];
      wire [47:0] b = rb_data[48*j+:48];
      // ---- simple ops (operands valid while p1) ----
      // RESID: sat32(r + rshr(w, 8)), 42-bit sum
      wire [41:0] res_sum = {{10{a[31]}}, a[31:0]} + {{2{b[47]}}, b[47:8]} + {41'd0, b[7]};
      wire        res_ok = (&res_sum[41:31]) | ~(|res_sum[41:31]);
      wire [31:0] res32 = res_ok ? res_sum[31:0] : {res_sum[41], {31{~res_sum[41]}}};
      wire [47:0] r_resid = {{16{res32[31]}}, res32};
      // ADDW
      wire [48:0] add_sum = {a[47], a} + {b[47], b};
      wire        add_ok = add_sum[48] == add_sum[47];
      wire [47:0] r_add = add_ok ? add_sum[47:0] : {add_sum[48], {47{~add_sum[48]}}};
      // MULW: rshr(a*b, 24) on 73 bits; the product's bits 95..23 are
      // registered (s1), rounded and saturated in p2
      wire signed [95:0] mul_p = $signed(a) * $signed(b);
      reg  [47:0] r_simple1;
      always @* begin
        case (cfg_op)
          OP_RESID: r_simple1 = r_resid;
          OP_ADDW:  r_simple1 = r_add;
          default:  r_simple1 = a;
        endcase
      end
      reg  [72:0] s1;
      wire [72:0] mul_r = {s1[72], s1[72:1]} + {72'd0, s1[0]};
      wire        mul_ok = (&mul_r[72:47]) | ~(|mul_r[72:47]);
      wire [47:0] r_mul = mul_ok ? mul_r[47:0] : {mul_r[72], {47{~mul_r[72]}}};
      wire [47:0] r_simple = (cfg_op == OP_MULW) ? r_mul : s1[47:0];

      // ---- SILU / GELU ----
      // stage 1 (p1): offset, index, fraction; read entry idx
      wire [49:0] x50 = {{2{a[47]}}, a};
      wire [49:0] off = ((cfg_op == OP_SILU) ? x50 : {x50[48:0], 1'b0}) + 50'd268435456;  // + 2^28
      wire        off_lo = off[49];
      wire        off_hi = !off[49] && (|off[48:29]);
      reg  [47:0] x1;
      reg  [16:0] f1;
      reg  [11:0] idx1;
      reg         lo1, hi1;
      reg  [15:0] t0;
      wire [12:0] t_addr = !t_rd ? 13'd0 : p1 ? {1'b0, off[28:17]} : {1'b0, idx1} + 13'd1;
      wire [15:0] sig_q, gel_q;
      tls_rom #(
          .W(16), .D(4097), .AW(13), .FILE({TABLE_DIR, "sigmoid.hex"})
      ) u_sig (
          .clk(clk), .en(t_rd && (cfg_op == OP_SILU)), .addr(t_addr), .data(sig_q)
      );
      tls_rom #(
          .W(16), .D(4097), .AW(13), .FILE({TABLE_DIR, "gelu.hex"})
      ) u_gelu (
          .clk(clk), .en(t_rd && (cfg_op == OP_GELU)), .addr(t_addr), .data(gel_q)
      );
      wire [15:0] t_q = (cfg_op == OP_SILU) ? sig_q : gel_q;
      // stage 3 (p3): t_q = entry idx + 1; interpolate the gate
      wire [16:0] t_diff = {1'b0, t_q} - {1'b0, t0};
      wire signed [34:0] i_p = $signed(t_diff) * $signed({1'b0, f1});
      wire [17:0] i_sum = {2'b00, t0} + i_p[34:17] + {17'd0, i_p[16]};
      wire [16:0] gate = lo1 ? 17'd0 : hi1 ? 17'd32768 : i_sum[16:0];
      // stage 4 (p4): x · gate, rounded and saturated
      reg  [47:0] x3;
      reg  [16:0] gate3;
      wire signed [65:0] a_p = $signed(x3) * $signed({1'b0, gate3});
      wire [51:0] a_r = {a_p[65], a_p[65:15]} + {51'd0, a_p[14]};
      wire        a_ok = (&a_r[51:47]) | ~(|a_r[51:47]);
      wire [47:0] r_act = a_ok ? a_r[47:0] : {a_r[51], {47{~a_r[51]}}};
      assign wres[48*j+:48] = act ? r_act : r_simple;

      // Deliberately unused: bits below a rounding position and the carry
      // of the interpolation sum (the gate is at most 32768).
      wire unused_bits = &{1'b0, mul_p[22:0], i_p[15:0], i_sum[17], a_p[13:0]};

      always @(posedge clk) begin
        if (rst) begin
          x1 <= 48'd0;
          f1 <= 17'd0;
          idx1 <= 12'd0;
          lo1 <= 1'b0;
          hi1 <= 1'b0;
          t0 <= 16'd0;
          s1 <= 73'd0;
          x3 <= 48'd0;
          gate3 <= 17'd0;
        end else begin
          if (p1) s1 <= (cfg_op == OP_MULW) ? mul_p[95:23] : {25'd0, r_simple1};
          if (p3) begin
            x3 <= x1;
            gate3 <= gate;
          end
          if (p1) begin
            x1 <= a;
            f1 <= off[16:0];
            idx1 <= off[28:17];
            lo1 <= off_lo;
            hi1 <= off_hi;
          end
          if (p2) t0 <= t_q;
        end
      end
    end
  endgenerate

  // Lanes of the line being written that hold elements (< n).
  wire [V-1:0] wmask;
  generate
    for (j = 0; j < V; j = j + 1) begin : g_mask
      wire [AW+20:0] e = wc_x + j;
      assign wmask[j] = e < {{AW{1'b0}}, n_x};
    end
  endgenerate

  // Deliberately unused: address bits above AW.
  wire unused_addr = &{1'b0, ic_x[AW+20:AW], wc_x[AW+20:AW]};

  always @(posedge clk) begin
    if (rst) begin
      run <= 1'b0;
      done <= 1'b0;
      ph <= 1'b0;
      ic <= 21'd0;
      wc <= 21'd0;
      p1 <= 1'b0;
      p2 <= 1'b0;
      p3 <= 1'b0;
      p4 <= 1'b0;
      w_en <= 1'b0;
      w_mask <= {V{1'b0}};
      w_addr <= {AW{1'b0}};
      w_data <= {(48 * V) {1'b0}};
    end else begin
      p1 <= issue;
      p2 <= p1;
      p3 <= p2;
      p4 <= p3;
      if (issue) ic <= ic + 21'd1;
      ph <= (run && act) ? ~ph : 1'b0;
      w_en <= wfire;
      w_mask <= wfire ? wmask : {V{1'b0}};
      w_addr <= wfire ? cfg_dst + wc_x[AW-1:0] : {AW{1'b0}};
      w_data <= wfire ? wres : {(48 * V) {1'b0}};
      if (wfire) wc <= wc + 21'd1;
      done <= 1'b0;
      if (start) begin
        run <= 1'b1;
        ic <= 21'd0;
        wc <= 21'd0;
        ph <= 1'b0;
        done <= (cfg_n == 20'd0);
      end else if (done) begin
        run <= 1'b0;
      end else if (run && w_en && (wc == lines)) begin
        done <= 1'b1;
      end
    end
  end
endmodule
/* verilator lint_on WIDTHCONCAT */
