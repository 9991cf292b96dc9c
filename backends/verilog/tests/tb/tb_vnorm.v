// Testbench of tls_norm and tls_rope at V = 1, 4 and 8 lanes, driven by
// `tests/unit_vnorm.rs`. Each width has its own line scratchpad (aligned
// V-word line reads on two ports, masked line writes) loaded from
// `spad_in.hex` (4096 48-bit words), its gain and bias ROMs (`gain_V.hex`,
// `bias_V.hex`: 2048/V words of V Q15.16 values) and RoPE table
// (`rope_V.hex`: 4096 words of V {cos, sin} entries); all three run the
// program `prog.hex` side by side (272-bit instructions, field map in
// `tb_vnorm_one`; unit 15 ends it). Writes `spad_out_V.hex`,
// `cycles_V.hex` (start-to-done cycles per instruction) and `errs.hex`
// (protocol: idle outputs zero, done outside busy, timeout).
module tb_vnorm_one #(
    parameter integer V = 1
) (
    input  wire         clk,
    input  wire         rst,
    input  wire         start,
    input  wire [271:0] ins,
    output wire         done,
    output wire         busy,
    output wire         idle_bad
);
  localparam integer AW = 12;
  localparam integer LV = $clog2(V);
  // instruction fields
  wire [3:0]  f_unit = ins[3:0];
  wire [15:0] f_src = ins[19:4];
  wire [15:0] f_dst = ins[35:20];
  wire [19:0] f_n = ins[55:36];
  wire [40:0] f_mn = ins[96:56];
  wire [47:0] f_eps = ins[144:97];
  wire        f_layer = ins[145];
  wire [15:0] f_gbase = ins[161:146];  // elements, a multiple of 8
  wire [15:0] f_bbase = ins[177:162];
  wire [7:0]  f_heads = ins[185:178];
  wire [9:0]  f_hd = ins[195:186];
  wire [9:0]  f_rot = ins[205:196];
  wire [15:0] f_pos = ins[221:206];
  wire [15:0] f_tbase = (V == 1) ? ins[237:222] : (V == 4) ? ins[253:238] : ins[269:254];

  reg  [47:0] mem[0:4095];
  reg  [48*V-1:0] da, db;
  wire n_ra_en, n_w_en, n_g_en, n_b_en, n_busy, n_done;
  wire r_ra_en, r_rb_en, r_w_en, r_t_en, r_busy, r_done;
  wire [V-1:0] n_w_mask, r_w_mask;
  wire [AW-1:0] n_ra_addr, n_w_addr, r_ra_addr, r_rb_addr, r_w_addr;
  wire [48*V-1:0] n_w_data, r_w_data;
  wire [10:0] n_g_addr, n_b_addr;
  wire [11:0] r_t_addr;
  wire [32*V-1:0] g_q, b_q, t_q;
  wire [AW-1:0] aa = (n_ra_addr | r_ra_addr) & ~(V[AW-1:0] - 1'b1);
  wire [AW-1:0] ab = r_rb_addr & ~(V[AW-1:0] - 1'b1);
  integer i;
  always @(posedge clk) begin
    for (i = 0; i < V; i = i + 1) begin
      if (n_ra_en || r_ra_en) da[48*i+:48] <= mem[aa+i];
      if (r_rb_en) db[48*i+:48] <= mem[ab+i];
      if (n_w_en && n_w_mask[i]) mem[n_w_addr+i] <= n_w_data[48*i+:48];
      if (r_w_en && r_w_mask[i]) mem[r_w_addr+i] <= r_w_data[48*i+:48];
    end
  end

  tls_norm #(.AW(AW), .GAW(11), .V(V), .TABLE_DIR("tables/")) u_norm (
      .clk(clk), .rst(rst), .start(start && f_unit == 4'd0),
      .cfg_src(f_src[AW-1:0]), .cfg_dst(f_dst[AW-1:0]), .cfg_n(f_n), .cfg_mn(f_mn),
      .cfg_eps(f_eps), .cfg_layer(f_layer),
      .busy(n_busy), .done(n_done),
      .ra_en(n_ra_en), .ra_addr(n_ra_addr), .ra_data(da),
      .w_en(n_w_en), .w_mask(n_w_mask), .w_addr(n_w_addr), .w_data(n_w_data),
      .g_en(n_g_en), .g_addr(n_g_addr), .g_data(g_q),
      .b_en(n_b_en), .b_addr(n_b_addr), .b_data(b_q)
  );
  wire [10:0] gb = f_gbase[10:0] >> LV;
  wire [10:0] bb = f_bbase[10:0] >> LV;
  tls_rom #(.W(32 * V), .D(2048 / V), .AW(11), .FILE(V == 1 ? "gain_1.hex" : V == 4 ? "gain_4.hex" : "gain_8.hex")) u_gain (
      .clk(clk), .en(n_g_en), .addr(n_g_addr + gb), .data(g_q)
  );
  tls_rom #(.W(32 * V), .D(2048 / V), .AW(11), .FILE(V == 1 ? "bias_1.hex" : V == 4 ? "bias_4.hex" : "bias_8.hex")) u_bias (
      .clk(clk), .en(n_b_en), .addr(n_b_addr + bb), .data(b_q)
  );

  tls_rope #(.AW(AW), .TAW(12), .V(V)) u_rope (
      .clk(clk), .rst(rst), .start(start && f_unit == 4'd1),
      .cfg_src(f_src[AW-1:0]), .cfg_n_heads(f_heads), .cfg_hd(f_hd), .cfg_rot(f_rot),
      .cfg_pos(f_pos),
      .busy(r_busy), .done(r_done),
      .ra_en(r_ra_en), .ra_addr(r_ra_addr), .ra_data(da),
      .rb_en(r_rb_en), .rb_addr(r_rb_addr), .rb_data(db),
      .w_en(r_w_en), .w_mask(r_w_mask), .w_addr(r_w_addr), .w_data(r_w_data),
      .t_en(r_t_en), .t_addr(r_t_addr), .t_data(t_q)
  );
  tls_rom #(.W(32 * V), .D(4096), .AW(12), .FILE(V == 1 ? "rope_1.hex" : V == 4 ? "rope_4.hex" : "rope_8.hex")) u_rtab (
      .clk(clk), .en(r_t_en), .addr(r_t_addr + f_tbase[11:0]), .data(t_q)
  );

  assign done = n_done | r_done;
  assign busy = n_busy | r_busy;
  assign idle_bad = (!n_busy && (n_ra_en || n_w_en || n_g_en || n_b_en || (|n_w_mask)
                                 || (|n_ra_addr) || (|n_w_addr) || (|n_w_data)
                                 || (|n_g_addr) || (|n_b_addr)))
                  || (!r_busy && (r_ra_en || r_rb_en || r_w_en || r_t_en || (|r_w_mask)
                                  || (|r_ra_addr) || (|r_rb_addr) || (|r_w_addr)
                                  || (|r_w_data) || (|r_t_addr)))
                  || (n_busy && r_busy);
endmodule

module tb_vnorm;
  reg clk = 1'b0;
  always #5 clk = ~clk;
  reg rst;
  reg [271:0] prog[0:63];
  reg [31:0] cyc1[0:63];
  reg [31:0] cyc4[0:63];
  reg [31:0] cyc8[0:63];
  reg [31:0] errs[0:1];
  reg [271:0] ins;
  reg start;
  integer pc, cyc, nerr;
  reg d1, d4, d8;  // done seen
  wire done1, done4, done8, busy1, busy4, busy8, bad1, bad4, bad8;
  tb_vnorm_one #(.V(1)) u1 (.clk(clk), .rst(rst), .start(start), .ins(ins), .done(done1), .busy(busy1), .idle_bad(bad1));
  tb_vnorm_one #(.V(4)) u4 (.clk(clk), .rst(rst), .start(start), .ins(ins), .done(done4), .busy(busy4), .idle_bad(bad4));
  tb_vnorm_one #(.V(8)) u8 (.clk(clk), .rst(rst), .start(start), .ins(ins), .done(done8), .busy(busy8), .idle_bad(bad8));

  initial begin
    $readmemh("prog.hex", prog);
    $readmemh("spad_in.hex", u1.mem);
    $readmemh("spad_in.hex", u4.mem);
    $readmemh("spad_in.hex", u8.mem);
    rst = 1'b1;
    start = 1'b0;
    nerr = 0;
    pc = 0;
    ins = 272'd0;
    repeat (4) @(posedge clk);
    rst <= 1'b0;
    @(posedge clk);
    while (prog[pc][3:0] != 4'd15) begin
      ins <= prog[pc];
      @(posedge clk);
      start <= 1'b1;
      cyc = 0;
      d1 = 1'b0;
      d4 = 1'b0;
      d8 = 1'b0;
      @(posedge clk);
      start <= 1'b0;
      while (!(d1 && d4 && d8) && cyc < 100000) begin
        if (done1 && !d1) begin d1 = 1'b1; cyc1[pc] = cyc + 1; end
        if (done4 && !d4) begin d4 = 1'b1; cyc4[pc] = cyc + 1; end
        if (done8 && !d8) begin d8 = 1'b1; cyc8[pc] = cyc + 1; end
        if ((done1 && !busy1) || (done4 && !busy4) || (done8 && !busy8)) nerr = nerr + 1;
        if (bad1 || bad4 || bad8) nerr = nerr + 1;
        @(posedge clk);
        cyc = cyc + 1;
      end
      if (cyc >= 100000) nerr = nerr + 1000000;
      @(posedge clk);
      if (bad1 || bad4 || bad8 || busy1 || busy4 || busy8) nerr = nerr + 1;
      pc = pc + 1;
    end
    errs[0] = nerr;
    errs[1] = pc;
    $writememh("errs.hex", errs);
    $writememh("cycles_1.hex", cyc1);
    $writememh("cycles_4.hex", cyc4);
    $writememh("cycles_8.hex", cyc8);
    $writememh("spad_out_1.hex", u1.mem);
    $writememh("spad_out_4.hex", u4.mem);
    $writememh("spad_out_8.hex", u8.mem);
    $finish;
  end
endmodule
