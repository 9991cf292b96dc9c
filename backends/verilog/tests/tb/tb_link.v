// Testbench of tls_link, driven by `tests/unit_link.rs`. Each lane sends
// N pseudo-random words through one link (its own W and D), in messages
// of 1..9 words (`i_last` on the final word), and checks that the words
// come out in order, none lost or repeated. Phase 1 (free-running: source
// always valid, sink always ready) measures the cycles; phase 2 stalls
// both sides at random. Prints one line per lane:
//   lane W D words cycles_free errors
module tb_link_lane #(
    parameter integer W = 32,
    parameter integer D = 4,
    parameter integer N = 2000,
    parameter [31:0] SEED = 32'h1234_5678
) (
    input  wire clk,
    input  wire rst,
    input  wire stall_phase,
    output reg  done,
    output reg [31:0] errors,
    output reg [31:0] cyc_free
);
  reg  [31:0] tx_lfsr, rx_lfsr, st_lfsr;
  reg  [31:0] sent, got;
  reg  [3:0]  left;     // words left in this message
  wire        i_ready, o_valid;
  wire [31:0] o_data;
  wire i_valid = (sent < N) && (!stall_phase || st_lfsr[0]);
  wire o_ready = !stall_phase || st_lfsr[1];
  wire i_last = (left == 4'd1) || (sent == N - 1);  // every message ends with i_last
  tls_link #(.W(W), .D(D)) dut (
    .clk(clk), .rst(rst),
    .i_valid(i_valid), .i_ready(i_ready), .i_data(tx_lfsr), .i_last(i_last),
    .o_valid(o_valid), .o_ready(o_ready), .o_data(o_data)
  );
  function [31:0] step(input [31:0] x);
    step = {x[30:0], x[31] ^ x[21] ^ x[1] ^ x[0]};
  endfunction
  always @(posedge clk) begin
    if (rst) begin
      tx_lfsr <= SEED; rx_lfsr <= SEED; st_lfsr <= ~SEED;
      sent <= 0; got <= 0; left <= 4'd3; errors <= 0; done <= 0; cyc_free <= 0;
    end else begin
      st_lfsr <= step(st_lfsr ^ 32'h9e37_79b9);
      if (!done) cyc_free <= cyc_free + 1;
      if (i_valid && i_ready) begin
        tx_lfsr <= step(tx_lfsr);
        sent <= sent + 1;
        left <= (left == 4'd1) ? (tx_lfsr[3:0] % 4'd9) + 4'd1 : left - 4'd1;
      end
      if (o_valid && o_ready) begin
        if (o_data != rx_lfsr) errors <= errors + 1;
        rx_lfsr <= step(rx_lfsr);
        got <= got + 1;
        if (got + 1 == N) done <= 1;
      end
      if (got > N) errors <= errors + 1;
    end
  end
endmodule

module tb_link;
  reg clk = 1'b0;
  always #5 clk = ~clk;
  reg rst;
  reg stall;
  localparam integer L = 6;
  wire [L-1:0] done;
  wire [31:0] err [0:L-1];
  wire [31:0] cyc [0:L-1];
  tb_link_lane #(.W(8),   .D(1),  .SEED(32'h0000_0001)) l0 (clk, rst, stall, done[0], err[0], cyc[0]);
  tb_link_lane #(.W(16),  .D(3),  .SEED(32'h0bad_cafe)) l1 (clk, rst, stall, done[1], err[1], cyc[1]);
  tb_link_lane #(.W(32),  .D(1),  .SEED(32'h1357_9bdf)) l2 (clk, rst, stall, done[2], err[2], cyc[2]);
  tb_link_lane #(.W(32),  .D(20), .SEED(32'h2468_ace0)) l3 (clk, rst, stall, done[3], err[3], cyc[3]);
  tb_link_lane #(.W(128), .D(5),  .SEED(32'hdead_beef)) l4 (clk, rst, stall, done[4], err[4], cyc[4]);
  tb_link_lane #(.W(256), .D(20), .SEED(32'h0f0f_f0f0)) l5 (clk, rst, stall, done[5], err[5], cyc[5]);
  localparam [L*32-1:0] WS = {32'd256, 32'd128, 32'd32, 32'd32, 32'd16, 32'd8};
  localparam [L*32-1:0] DS = {32'd20, 32'd5, 32'd20, 32'd1, 32'd3, 32'd1};
  integer i, t, phase;
  reg [31:0] free [0:L-1];
  initial begin
    for (phase = 0; phase < 2; phase = phase + 1) begin
      stall = (phase == 1);
      rst = 1'b1;
      repeat (3) @(posedge clk);
      rst = 1'b0;
      t = 0;
      while (done != {L{1'b1}} && t < 200000) begin
        @(posedge clk);
        t = t + 1;
      end
      #1;
      for (i = 0; i < L; i = i + 1) begin
        if (phase == 0) free[i] = cyc[i];
        $display("phase %0d lane %0d W %0d D %0d words 2000 cycles %0d errors %0d done %0d",
                 phase, i, WS[i*32 +: 32], DS[i*32 +: 32], cyc[i], err[i], done[i]);
      end
    end
    $finish;
  end
endmodule
