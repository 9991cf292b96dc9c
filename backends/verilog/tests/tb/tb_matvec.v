// Testbench of tls_matvec (driven by tests/unit_matvec.rs).
//
// Runs the NI instructions of `prog.hex` back to back (each `start` in the
// cycle after the previous `done`) on one tls_matvec, with the scratchpad
// preloaded from `spad.hex` and all matrices concatenated in `w.hex` /
// `b.hex` (the instruction gives the base of its matrix; the unit addresses
// from 0 as in the engine). Writes the final scratchpad to `spad_out.hex`
// and per instruction {busy, busy_load, product-phase, mac_active} cycle
// counts to `stat.hex`; the last `stat.hex` line holds the number of
// cycles in which an idle unit drove a nonzero output, or a ROM read whose
// address was not wr_grp * CH + wr_chunk. With ROWS > 1 a weight word
// holds ROWS row slices, a bias word ROWS biases, and the scratchpad takes
// line writes of ROWS words. The scratchpad's line is V words (a multiple
// of ROWS; the engine has V = ROWS): the unit reads whole lines, and its
// ROWS-word writes go to their place in the line.
//
// prog.hex, one instruction per line, 32-bit fields from the LSB:
// src, dst, rows, cols, flags {code_bias[15:8], has_bias[2], asym[1],
// load[0]}, weight base, bias base.
module tb_matvec #(
    parameter integer LANES = 4,
    parameter integer ROWS = 1,
    parameter integer AW = 12,
    parameter integer XB = 18,
    parameter integer WAW = 16,
    parameter integer WD = 1024,
    parameter integer BAW = 10,
    parameter integer BD = 256,
    parameter integer NI = 1,
    parameter integer V = ROWS
) ();
  localparam integer NB = (LANES >= 32) ? LANES / 32 : 1;
  localparam integer WW = LANES * 8 + NB * 36;

  reg clk = 1'b0;
  always #5 clk = ~clk;
  reg rst = 1'b1;

  reg [223:0] prog[0:NI-1];
  reg [127:0] stat[0:NI];
  initial begin
    $readmemh("prog.hex", prog);
    $readmemh("spad.hex", u_spad.mem);
  end

  reg start = 1'b0;
  reg [223:0] cur = 224'd0;
  integer idx = 0;
  reg running = 1'b0;
  reg [31:0] n_busy, n_load, n_prod, n_mac, n_viol, n_cyc;

  wire done, busy, busy_load, mac_active;
  wire ra_en, rb_en, wr_en, br_en;
  wire [ROWS-1:0] w_en;
  wire [AW-1:0] ra_addr, rb_addr, w_addr;
  wire [V*48-1:0] ra_data, rb_data;
  wire [ROWS*48-1:0] w_data, br_data;
  wire [WAW-1:0] wr_addr;
  wire [ROWS*WW-1:0] wr_data;
  wire [23:0] br_addr, wr_grp;
  wire [19:0] wr_chunk;
  wire [31:0] ch = (cur[96+31:96] + LANES - 1) / LANES;
  wire [63:0] want_addr = {40'd0, wr_grp} * {32'd0, ch} + {44'd0, wr_chunk};
  wire bad_addr = wr_en && (want_addr != {{(64 - WAW) {1'b0}}, wr_addr});

  tls_matvec #(
      .LANES(LANES),
      .ROWS(ROWS),
      .AW(AW),
      .XB(XB),
      .WAW(WAW),
      .RW(24),
      .V(V)
  ) dut (
      .clk(clk),
      .rst(rst),
      .start(start),
      .done(done),
      .busy(busy),
      .busy_load(busy_load),
      .mac_active(mac_active),
      .cfg_src(cur[AW-1:0]),
      .cfg_dst(cur[32+AW-1:32]),
      .cfg_rows(cur[64+23:64]),
      .cfg_cols(cur[96+19:96]),
      .cfg_load(cur[128]),
      .cfg_asym(cur[129]),
      .cfg_code_bias(cur[128+15:128+8]),
      .cfg_has_bias(cur[130]),
      .ra_en(ra_en),
      .ra_addr(ra_addr),
      .ra_data(ra_data),
      .rb_en(rb_en),
      .rb_addr(rb_addr),
      .rb_data(rb_data),
      .w_en(w_en),
      .w_addr(w_addr),
      .w_data(w_data),
      .wr_en(wr_en),
      .wr_addr(wr_addr),
      .wr_grp(wr_grp),
      .wr_chunk(wr_chunk),
      .wr_data(wr_data),
      .br_en(br_en),
      .br_addr(br_addr),
      .br_data(br_data)
  );

  // A ROWS-word write at w_addr (a multiple of ROWS) within its V-word line.
  localparam [AW-1:0] VMASK = V - 1;
  wire [AW-1:0] w_off = w_addr & VMASK;
  wire [2*V-1:0] s_we_x = {{(2 * V - ROWS) {1'b0}}, w_en} << w_off;
  wire [2*V*48-1:0] s_wd_x = {{((2 * V - ROWS) * 48) {1'b0}}, w_data} << (48 * w_off);
  wire [V-1:0] s_we = s_we_x[V-1:0];
  wire [V*48-1:0] s_wdata = s_wd_x[V*48-1:0];
  tls_sram2r #(
      .W (48),
      .D (1 << AW),
      .AW(AW),
      .V (V)
  ) u_spad (
      .clk(clk),
      .we(s_we),
      .waddr(w_addr & ~VMASK),
      .wdata(s_wdata),
      .rea(ra_en),
      .raddra(ra_addr),
      .rlinea(ra_data),
      .reb(rb_en),
      .raddrb(rb_addr),
      .rlineb(rb_data)
  );

  tls_rom #(
      .W(ROWS * WW),
      .D(WD),
      .AW(WAW),
      .FILE("w.hex")
  ) u_wrom (
      .clk (clk),
      .en  (wr_en),
      .addr(cur[160+WAW-1:160] + wr_addr),
      .data(wr_data)
  );

  tls_rom #(
      .W(ROWS * 48),
      .D(BD),
      .AW(BAW),
      .FILE("b.hex")
  ) u_brom (
      .clk (clk),
      .en  (br_en),
      .addr(cur[192+BAW-1:192] + br_addr[BAW-1:0]),
      .data(br_data)
  );

  wire idle_nonzero = !busy && (done || busy_load || mac_active || ra_en || rb_en || w_en
      || wr_en || br_en || (ra_addr != 0) || (rb_addr != 0) || (w_addr != 0)
      || (w_data != 0) || (wr_addr != 0) || (br_addr != 0) || (wr_grp != 0)
      || (wr_chunk != 0));

  always @(posedge clk) begin
    start <= 1'b0;
    n_cyc <= n_cyc + 1;
    if (rst) begin
      n_busy <= 0;
      n_load <= 0;
      n_prod <= 0;
      n_mac <= 0;
      n_viol <= 0;
      n_cyc <= 0;
    end else begin
      if (idle_nonzero || bad_addr) n_viol <= n_viol + 1;
      if (!running && idx == 0) begin
        cur <= prog[0];
        start <= 1'b1;
        running <= 1'b1;
        n_busy <= 0;
        n_load <= 0;
        n_prod <= 0;
        n_mac <= 0;
      end else if (running) begin
        if (done) begin
          // This cycle counts (busy is high through the cycle of done).
          stat[idx] <= {n_busy + {31'd0, busy}, n_load + {31'd0, busy_load},
                        n_prod + {31'd0, busy && !busy_load}, n_mac + {31'd0, mac_active}};
          n_busy <= 0;
          n_load <= 0;
          n_prod <= 0;
          n_mac <= 0;
          idx <= idx + 1;
          if (idx + 1 < NI) begin
            cur <= prog[idx+1];
            start <= 1'b1;
          end else begin
            running <= 1'b0;
          end
        end else begin
          if (busy) n_busy <= n_busy + 1;
          if (busy_load) n_load <= n_load + 1;
          if (busy && !busy_load) n_prod <= n_prod + 1;
          if (mac_active) n_mac <= n_mac + 1;
        end
      end
      if (!running && idx == NI) begin
        stat[NI] <= {n_viol, n_cyc, 64'd0};
        idx <= idx + 1;
      end
      if (idx == NI + 1) begin
        $writememh("spad_out.hex", u_spad.mem);
        $writememh("stat.hex", stat);
        $finish;
      end
      if (n_cyc > 32'd2000000) begin
        $display("tb_matvec: timeout");
        $writememh("stat.hex", stat);
        $finish;
      end
    end
  end

  initial begin
    repeat (3) @(posedge clk);
    rst <= 1'b0;
  end
endmodule
