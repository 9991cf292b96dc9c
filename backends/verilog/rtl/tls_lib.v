// Small fixed blocks shared by the generated engines.

// Widens a weight ROM word: `LANES` codes of `B` bits (two's complement)
// become 8-bit codes; the `NB` 36-bit scale fields pass through. This is
// wiring only (sign extension), no logic.
// Scratchpad lines are V x 48 bits: past Verilator's 8k-bit replication
// warning at V = 256, on purpose.
/* verilator lint_off WIDTHCONCAT */
module tls_widen #(
    parameter integer LANES = 16,
    parameter integer B = 4,
    parameter integer NB = 1
) (
    input  wire [LANES*B + NB*36 - 1:0] narrow,
    output wire [LANES*8 + NB*36 - 1:0] wide
);
  genvar i;
  generate
    for (i = 0; i < LANES; i = i + 1) begin : g_lane
      if (B == 8) begin : g_same
        assign wide[8*i+7:8*i] = narrow[B*i+B-1:B*i];
      end else begin : g_ext
        assign wide[8*i+7:8*i] = {{(8 - B) {narrow[B*i+B-1]}}, narrow[B*i+B-1:B*i]};
      end
    end
  endgenerate
  assign wide[LANES*8+NB*36-1:LANES*8] = narrow[LANES*B+NB*36-1:LANES*B];
endmodule

// Streams `cfg_n` scratchpad words out of the chip with valid/ready, one
// line of V words per beat while the receiver is ready (the scratchpad
// read register holds the current line while it waits). `cfg_src` is
// line-aligned (the allocator starts every vector on a line); beat b
// carries words `V·b ..` of the vector in lanes 0.., `o_count` of them
// valid (V but in the last beat), and `o_index` = V·b. With the receiver
// always ready: start in cycle 0, beats in cycles 2 .. ceil(n/V) + 1,
// `done` in cycle ceil(n/V) + 2 (n >= 1).
module tls_out #(
    parameter integer AW = 16,
    parameter integer VW = 16,
    parameter integer V = 1,
    parameter integer CW = 1   // bits of o_count: holds V
) (
    input  wire            clk,
    input  wire            rst,
    input  wire            start,
    input  wire [AW-1:0]   cfg_src,
    input  wire [VW-1:0]   cfg_n,
    output reg             done,
    output wire            busy,
    output wire            ra_en,
    output wire [AW-1:0]   ra_addr,
    input  wire [48*V-1:0] ra_data,
    output wire            o_valid,
    input  wire            o_ready,
    output wire [48*V-1:0] o_data,
    output wire [CW-1:0]   o_count,
    output wire [VW-1:0]   o_index,
    output wire            o_last
);
  // 0 idle, 1 first read issued, 2 presenting the line at word `i`.
  reg [1:0] state;
  reg [VW-1:0] i;
  // Words left from `i` on (cfg_n > i while presenting).
  localparam [31:0] V32 = V;
  wire [VW-1:0] left = cfg_n - i;
  /* verilator lint_off UNUSEDSIGNAL */
  wire [AW+VW+31:0] v_ext = {{(AW+VW){1'b0}}, V32};
  wire [VW+31:0] left_ext = {32'd0, left};
  /* verilator lint_on UNUSEDSIGNAL */
  wire last = (left_ext <= {{VW{1'b0}}, V32});
  wire fire = (state == 2'd2) && o_ready;
  wire rd_first = (state == 2'd1);
  wire rd_next = fire && !last;
  assign busy = (state != 2'd0);
  assign ra_en = rd_first || rd_next;
  // Zero-extended or truncated index (the high bits are deliberately unused).
  /* verilator lint_off UNUSEDSIGNAL */
  wire [AW+VW-1:0] i_ext = {{AW{1'b0}}, i};
  /* verilator lint_on UNUSEDSIGNAL */
  wire [AW-1:0] i_a = i_ext[AW-1:0];
  assign ra_addr = rd_first ? cfg_src + i_a :
                   rd_next ? cfg_src + i_a + v_ext[AW-1:0] :
                   {AW{1'b0}};
  assign o_valid = (state == 2'd2);
  assign o_data = (state == 2'd2) ? ra_data : {48*V{1'b0}};
  assign o_count = (state != 2'd2) ? {CW{1'b0}} : last ? left_ext[CW-1:0] : v_ext[CW-1:0];
  assign o_index = (state == 2'd2) ? i : {VW{1'b0}};
  assign o_last = (state == 2'd2) && last;
  always @(posedge clk) begin
    if (rst) begin
      state <= 2'd0;
      i <= {VW{1'b0}};
      done <= 1'b0;
    end else begin
      done <= 1'b0;
      case (state)
        2'd0: if (start) begin
          i <= {VW{1'b0}};
          state <= 2'd1;
        end
        2'd1: state <= 2'd2;
        default: if (fire) begin
          if (last) begin
            state <= 2'd0;
            done <= 1'b1;
          end else begin
            i <= i + v_ext[VW-1:0];
          end
        end
      endcase
    end
  end
endmodule
/* verilator lint_on WIDTHCONCAT */
