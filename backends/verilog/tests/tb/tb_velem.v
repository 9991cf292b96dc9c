// Testbench of tls_elem at V = 1, 4 and 8 lanes, driven by
// `tests/unit_velem.rs`. Each width has its own line scratchpad (aligned
// V-word line reads on two ports, masked line writes) loaded from
// `spad_in.hex` (4096 48-bit words); all three run the program `prog.hex`
// (80-bit instructions {n[19:0], dst[15:0], b[15:0], a[15:0], op[2:0]},
// op 7 with n = 0xfffff ends it) side by side. Writes `spad_out_V.hex`
// and `cycles_V.hex` (start-to-done cycles per instruction), and
// `errs.hex` (protocol: idle outputs zero, done outside busy, timeout).
module tb_velem_spad #(
    parameter integer V = 1,
    parameter integer AW = 12,
    parameter integer D = 4096
) (
    input  wire            clk,
    input  wire            rea,
    input  wire [AW-1:0]   aa,
    output reg  [48*V-1:0] da,
    input  wire            reb,
    input  wire [AW-1:0]   ab,
    output reg  [48*V-1:0] db,
    input  wire            we,
    input  wire [V-1:0]    wm,
    input  wire [AW-1:0]   wa,
    input  wire [48*V-1:0] wd
);
  reg [47:0] mem[0:D-1];
  integer i;
  always @(posedge clk) begin
    for (i = 0; i < V; i = i + 1) begin
      if (rea) da[48*i+:48] <= mem[aa+i];
      if (reb) db[48*i+:48] <= mem[ab+i];
      if (we && wm[i]) mem[wa+i] <= wd[48*i+:48];
    end
  end
endmodule

module tb_velem_one #(
    parameter integer V = 1
) (
    input  wire        clk,
    input  wire        rst,
    input  wire        start,
    input  wire [79:0] ins,
    output wire        done,
    output wire        busy,
    output wire        idle_bad
);
  localparam integer AW = 12;
  wire ra_en, rb_en, w_en;
  wire [V-1:0] w_mask;
  wire [AW-1:0] ra_addr, rb_addr, w_addr;
  wire [48*V-1:0] ra_data, rb_data, w_data;
  tb_velem_spad #(.V(V), .AW(AW)) u_sp (
      .clk(clk), .rea(ra_en), .aa(ra_addr), .da(ra_data), .reb(rb_en), .ab(rb_addr),
      .db(rb_data), .we(w_en), .wm(w_mask), .wa(w_addr), .wd(w_data)
  );
  tls_elem #(.AW(AW), .V(V), .TABLE_DIR("tables/")) u_elem (
      .clk(clk), .rst(rst), .start(start),
      .cfg_op(ins[2:0]), .cfg_a(ins[14:3]), .cfg_b(ins[30:19]), .cfg_dst(ins[46:35]),
      .cfg_n(ins[70:51]),
      .busy(busy), .done(done),
      .ra_en(ra_en), .ra_addr(ra_addr), .ra_data(ra_data),
      .rb_en(rb_en), .rb_addr(rb_addr), .rb_data(rb_data),
      .w_en(w_en), .w_mask(w_mask), .w_addr(w_addr), .w_data(w_data)
  );
  assign idle_bad = !busy && (ra_en || rb_en || w_en || (|w_mask) || (|ra_addr) || (|rb_addr)
                              || (|w_addr) || (|w_data));
endmodule

module tb_velem;
  reg clk = 1'b0;
  always #5 clk = ~clk;
  reg rst;
  reg [79:0] prog[0:63];
  reg [31:0] cyc1[0:63];
  reg [31:0] cyc4[0:63];
  reg [31:0] cyc8[0:63];
  reg [31:0] errs[0:1];
  reg [79:0] ins;
  reg start;
  integer pc, cyc, nerr;
  reg d1, d4, d8;  // done seen
  wire done1, done4, done8, busy1, busy4, busy8, bad1, bad4, bad8;
  tb_velem_one #(.V(1)) u1 (.clk(clk), .rst(rst), .start(start), .ins(ins), .done(done1), .busy(busy1), .idle_bad(bad1));
  tb_velem_one #(.V(4)) u4 (.clk(clk), .rst(rst), .start(start), .ins(ins), .done(done4), .busy(busy4), .idle_bad(bad4));
  tb_velem_one #(.V(8)) u8 (.clk(clk), .rst(rst), .start(start), .ins(ins), .done(done8), .busy(busy8), .idle_bad(bad8));

  initial begin
    $readmemh("prog.hex", prog);
    $readmemh("spad_in.hex", u1.u_sp.mem);
    $readmemh("spad_in.hex", u4.u_sp.mem);
    $readmemh("spad_in.hex", u8.u_sp.mem);
    rst = 1'b1;
    start = 1'b0;
    nerr = 0;
    pc = 0;
    repeat (4) @(posedge clk);
    rst <= 1'b0;
    @(posedge clk);
    while (!(prog[pc][2:0] == 3'd7 && prog[pc][70:51] == 20'hfffff)) begin
      ins <= prog[pc];
      @(posedge clk);
      start <= 1'b1;
      cyc = 0;
      d1 = 1'b0;
      d4 = 1'b0;
      d8 = 1'b0;
      @(posedge clk);
      start <= 1'b0;
      // done is a one-cycle pulse: look at every cycle from the first
      // after start (cycle k after the start pulse is counted as k + 1).
      while (!(d1 && d4 && d8) && cyc < 100000) begin
        if (done1 && !d1) begin d1 = 1'b1; cyc1[pc] = cyc + 1; end
        if (done4 && !d4) begin d4 = 1'b1; cyc4[pc] = cyc + 1; end
        if (done8 && !d8) begin d8 = 1'b1; cyc8[pc] = cyc + 1; end
        if ((done1 && !busy1) || (done4 && !busy4) || (done8 && !busy8)) nerr = nerr + 1;
        @(posedge clk);
        cyc = cyc + 1;
      end
      if (cyc >= 100000) nerr = nerr + 1000000;
      // one idle cycle between instructions, outputs must be zero
      @(posedge clk);
      if (bad1 || bad4 || bad8) nerr = nerr + 1;
      pc = pc + 1;
    end
    errs[0] = nerr;
    errs[1] = pc;
    $writememh("errs.hex", errs);
    $writememh("cycles_1.hex", cyc1);
    $writememh("cycles_4.hex", cyc4);
    $writememh("cycles_8.hex", cyc8);
    $writememh("spad_out_1.hex", u1.u_sp.mem);
    $writememh("spad_out_4.hex", u4.u_sp.mem);
    $writememh("spad_out_8.hex", u8.u_sp.mem);
    $finish;
  end
endmodule
