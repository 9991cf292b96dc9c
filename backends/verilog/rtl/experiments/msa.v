// Multiply-select-add experiment (issue 13): two lane arrays that compute
// the same thing, for synthesis only (not part of any chip).
//
// Each cycle, R rows each take one dot product of K signed 8-bit
// activations x[k] with K signed B-bit weight codes w[r][k] and add it to a
// 24-bit accumulator:  acc[r] += sum_k x[k] * w[r][k].
// Activations and codes arrive registered (codes as from a ROM port), so
// every path is register to register.
//
// msa_mul: one general 8 x B multiplier per weight (R*K multipliers).
// msa_sel: per column k, the products x[k]*v for every code value v
//   (2^B of them: constant multiplies, shifts and adds) are computed once
//   and shared by the R rows; each row selects its product by its code and
//   accumulates (the "multiply-select-add" of HNLPU, arXiv 2508.16151).

module msa_mul #(
    parameter integer R = 4,
    parameter integer K = 8,
    parameter integer B = 4
) (
    input  wire              clk,
    input  wire              rst,
    input  wire [K*8-1:0]    x_in,
    input  wire [R*K*B-1:0]  w_in,
    output wire [R*24-1:0]   acc_out
);
  reg [K*8-1:0] x;
  reg [R*K*B-1:0] w;
  always @(posedge clk) begin
    x <= x_in;
    w <= w_in;
  end
  genvar r, k;
  generate
    for (r = 0; r < R; r = r + 1) begin : row
      wire signed [8+B+7:0] part [0:K];
      assign part[0] = 0;
      for (k = 0; k < K; k = k + 1) begin : col
        wire signed [7:0] xk = x[k*8 +: 8];
        wire signed [B-1:0] wk = w[(r*K+k)*B +: B];
        wire signed [8+B-1:0] p = xk * wk;
        assign part[k+1] = part[k] + {{8{p[8+B-1]}}, p};
      end
      reg signed [23:0] acc;
      always @(posedge clk)
        if (rst) acc <= 0;
        else acc <= acc + part[K];
      assign acc_out[r*24 +: 24] = acc;
    end
  endgenerate
endmodule

module msa_sel #(
    parameter integer R = 4,
    parameter integer K = 8,
    parameter integer B = 4
) (
    input  wire              clk,
    input  wire              rst,
    input  wire [K*8-1:0]    x_in,
    input  wire [R*K*B-1:0]  w_in,
    output wire [R*24-1:0]   acc_out
);
  localparam integer NV = 1 << B;
  reg [K*8-1:0] x;
  reg [R*K*B-1:0] w;
  always @(posedge clk) begin
    x <= x_in;
    w <= w_in;
  end
  genvar r, k, v;
  generate
    // Shared products: prod[k][v] = x[k] * (v as a signed B-bit code).
    for (k = 0; k < K; k = k + 1) begin : col
      wire signed [7:0] xk = x[k*8 +: 8];
      wire [(8+B)*NV-1:0] prods;
      for (v = 0; v < NV; v = v + 1) begin : val
        // the code v read as a signed B-bit value
        localparam [B-1:0] VB = v;
        wire signed [B-1:0] vc = VB;
        wire signed [8+B-1:0] p = xk * vc;
        assign prods[v*(8+B) +: 8+B] = p;
      end
    end
    for (r = 0; r < R; r = r + 1) begin : row
      wire signed [8+B+7:0] part [0:K];
      assign part[0] = 0;
      for (k = 0; k < K; k = k + 1) begin : sel
        wire [B-1:0] code = w[(r*K+k)*B +: B];
        wire signed [8+B-1:0] p = col[k].prods[code*(8+B) +: 8+B];
        assign part[k+1] = part[k] + {{8{p[8+B-1]}}, p};
      end
      reg signed [23:0] acc;
      always @(posedge clk)
        if (rst) acc <= 0;
        else acc <= acc + part[K];
      assign acc_out[r*24 +: 24] = acc;
    end
  endgenerate
endmodule
