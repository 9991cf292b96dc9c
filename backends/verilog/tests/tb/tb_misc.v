// Testbench of tls_norm, tls_elem, tls_rope and tls_embed (LANES 16 and
// 64), driven by `tests/unit_misc.rs`.
//
// Files (in the working directory): `prog.hex` (288-bit instructions, see
// the field map below; unit 15 ends the program), `spad_in.hex` (32768
// 48-bit words), `gain.hex` / `bias.hex` (16384 × 32), `rope.hex`
// (16384 × 32), `w16.hex` (8192 × 164), `w64.hex` (4096 × 584), tables in
// `tables/`. Writes `spad_out.hex`, `cycles.hex` (start-to-done cycles of
// each instruction) and `errs.hex` (protocol violations: idle outputs not
// zero, done outside busy, two units busy, timeout).
//
// The scratchpad has lines of VL = 64 words, as an engine at `--rows 64`:
// both tls_embed instances run at V = 64 (line reads, masked line writes;
// E = 16 resp. 64 elements a step), the other units write one word (a
// one-hot line write) and read words.
module tb_misc;
  localparam integer AW = 15;
  localparam integer SD = 32768;
  localparam integer VL = 64;

  reg clk = 1'b0;
  always #5 clk = ~clk;

  reg [287:0] prog[0:63];
  reg [31:0] cycles[0:63];
  reg [31:0] errs[0:1];
  reg [287:0] ins;
  reg rst;
  reg [1:0] ts;  // 0 fetch, 1 start, 2 wait
  integer pc, cyc, nerr, total;

  wire [3:0]  f_unit = ins[3:0];
  wire [15:0] f_src = ins[19:4];
  wire [15:0] f_dst = ins[35:20];
  wire [15:0] f_a = ins[51:36];
  wire [15:0] f_b = ins[67:52];
  wire [19:0] f_n = ins[87:68];
  wire [40:0] f_mn = ins[128:88];
  wire [47:0] f_eps = ins[176:129];
  wire        f_layer = ins[177];
  wire [2:0]  f_op = ins[180:178];
  wire [7:0]  f_heads = ins[188:181];
  wire [9:0]  f_hd = ins[198:189];
  wire [9:0]  f_rot = ins[208:199];
  wire [15:0] f_pos = ins[224:209];
  wire [23:0] f_row = ins[248:225];
  wire        f_add = ins[249];
  wire        f_asym = ins[250];
  wire [7:0]  f_cb = ins[258:251];
  wire [15:0] f_base = ins[274:259];

  wire go = (ts == 2'd1) && (f_unit != 4'd15);
  wire st_norm = go && (f_unit == 4'd0);
  wire st_elem = go && (f_unit == 4'd1);
  wire st_rope = go && (f_unit == 4'd2);
  wire st_e16 = go && (f_unit == 4'd3);
  wire st_e64 = go && (f_unit == 4'd4);

  // scratchpad
  wire ra_en, rb_en, w_en;
  wire [AW-1:0] ra_addr, rb_addr, w_addr;
  wire [47:0] ra_data, rb_data, w_data;
  wire [VL*48-1:0] ra_line;
  wire [VL-1:0] l_we;
  wire [AW-1:0] l_waddr;
  wire [VL*48-1:0] l_wdata;
  /* verilator lint_off UNUSEDSIGNAL */
  wire [VL*48-1:0] rb_line;
  /* verilator lint_on UNUSEDSIGNAL */
  tls_sram2r #(.W(48), .D(SD), .AW(AW), .V(VL)) u_sp (
      .clk(clk), .we(l_we), .waddr(l_waddr), .wdata(l_wdata),
      .rea(ra_en), .raddra(ra_addr), .rdataa(ra_data), .rlinea(ra_line),
      .reb(rb_en), .raddrb(rb_addr), .rdatab(rb_data), .rlineb(rb_line)
  );

  // ---- tls_norm ----
  wire n_busy, n_done, n_ra_en, n_w_en, n_g_en, n_b_en;
  wire [AW-1:0] n_ra_addr, n_w_addr;
  wire [47:0] n_w_data;
  wire [13:0] n_g_addr, n_b_addr;
  wire [31:0] g_q, b_q;
  tls_norm #(.AW(AW), .GAW(14), .TABLE_DIR("tables/")) u_norm (
      .clk(clk), .rst(rst), .start(st_norm),
      .cfg_src(f_src[AW-1:0]), .cfg_dst(f_dst[AW-1:0]), .cfg_n(f_n), .cfg_mn(f_mn),
      .cfg_eps(f_eps), .cfg_layer(f_layer),
      .busy(n_busy), .done(n_done),
      .ra_en(n_ra_en), .ra_addr(n_ra_addr), .ra_data(ra_data),
      .w_en(n_w_en), .w_addr(n_w_addr), .w_data(n_w_data),
      .g_en(n_g_en), .g_addr(n_g_addr), .g_data(g_q),
      .b_en(n_b_en), .b_addr(n_b_addr), .b_data(b_q)
  );
  tls_rom #(.W(32), .D(16384), .AW(14), .FILE("gain.hex")) u_gain (
      .clk(clk), .en(n_g_en), .addr(n_g_addr + f_base[13:0]), .data(g_q)
  );
  tls_rom #(.W(32), .D(16384), .AW(14), .FILE("bias.hex")) u_bias (
      .clk(clk), .en(n_b_en), .addr(n_b_addr + f_base[13:0]), .data(b_q)
  );

  // ---- tls_elem ----
  wire e_busy, e_done, e_ra_en, e_rb_en, e_w_en;
  wire [AW-1:0] e_ra_addr, e_rb_addr, e_w_addr;
  wire [47:0] e_w_data;
  tls_elem #(.AW(AW), .TABLE_DIR("tables/")) u_elem (
      .clk(clk), .rst(rst), .start(st_elem),
      .cfg_op(f_op), .cfg_a(f_a[AW-1:0]), .cfg_b(f_b[AW-1:0]), .cfg_dst(f_dst[AW-1:0]),
      .cfg_n(f_n),
      .busy(e_busy), .done(e_done),
      .ra_en(e_ra_en), .ra_addr(e_ra_addr), .ra_data(ra_data),
      .rb_en(e_rb_en), .rb_addr(e_rb_addr), .rb_data(rb_data),
      .w_en(e_w_en), .w_addr(e_w_addr), .w_data(e_w_data)
  );

  // ---- tls_rope ----
  wire r_busy, r_done, r_ra_en, r_rb_en, r_w_en, r_t_en;
  wire [AW-1:0] r_ra_addr, r_rb_addr, r_w_addr;
  wire [47:0] r_w_data;
  wire [13:0] r_t_addr;
  wire [31:0] t_q;
  tls_rope #(.AW(AW), .TAW(14)) u_rope (
      .clk(clk), .rst(rst), .start(st_rope),
      .cfg_src(f_src[AW-1:0]), .cfg_n_heads(f_heads), .cfg_hd(f_hd), .cfg_rot(f_rot),
      .cfg_pos(f_pos),
      .busy(r_busy), .done(r_done),
      .ra_en(r_ra_en), .ra_addr(r_ra_addr), .ra_data(ra_data),
      .rb_en(r_rb_en), .rb_addr(r_rb_addr), .rb_data(rb_data),
      .w_en(r_w_en), .w_addr(r_w_addr), .w_data(r_w_data),
      .t_en(r_t_en), .t_addr(r_t_addr), .t_data(t_q)
  );
  tls_rom #(.W(32), .D(16384), .AW(14), .FILE("rope.hex")) u_rtab (
      .clk(clk), .en(r_t_en), .addr(r_t_addr + f_base[13:0]), .data(t_q)
  );

  // ---- tls_embed, LANES 16 ----
  wire a_busy, a_done, a_wr_en, a_ra_en, a_w_en;
  wire [12:0] a_wr_addr;
  wire [163:0] a_wr_data;
  wire [AW-1:0] a_ra_addr, a_w_addr;
  wire [VL-1:0] a_w_mask;
  wire [VL*48-1:0] a_w_data;
  tls_embed #(.AW(AW), .LANES(16), .WAW(13), .V(VL)) u_e16 (
      .clk(clk), .rst(rst), .start(st_e16),
      .cfg_dst(f_dst[AW-1:0]), .cfg_cols(f_n), .cfg_row(f_row), .cfg_add(f_add),
      .cfg_asym(f_asym), .cfg_code_bias(f_cb),
      .busy(a_busy), .done(a_done),
      .wr_en(a_wr_en), .wr_addr(a_wr_addr), .wr_data(a_wr_data),
      .ra_en(a_ra_en), .ra_addr(a_ra_addr), .ra_data(ra_line),
      .w_en(a_w_en), .w_mask(a_w_mask), .w_addr(a_w_addr), .w_data(a_w_data)
  );
  tls_rom #(.W(164), .D(8192), .AW(13), .FILE("w16.hex")) u_w16 (
      .clk(clk), .en(a_wr_en), .addr(a_wr_addr + f_base[12:0]), .data(a_wr_data)
  );

  // ---- tls_embed, LANES 64 ----
  wire c_busy, c_done, c_wr_en, c_ra_en, c_w_en;
  wire [11:0] c_wr_addr;
  wire [583:0] c_wr_data;
  wire [AW-1:0] c_ra_addr, c_w_addr;
  wire [VL-1:0] c_w_mask;
  wire [VL*48-1:0] c_w_data;
  tls_embed #(.AW(AW), .LANES(64), .WAW(12), .V(VL)) u_e64 (
      .clk(clk), .rst(rst), .start(st_e64),
      .cfg_dst(f_dst[AW-1:0]), .cfg_cols(f_n), .cfg_row(f_row), .cfg_add(f_add),
      .cfg_asym(f_asym), .cfg_code_bias(f_cb),
      .busy(c_busy), .done(c_done),
      .wr_en(c_wr_en), .wr_addr(c_wr_addr), .wr_data(c_wr_data),
      .ra_en(c_ra_en), .ra_addr(c_ra_addr), .ra_data(ra_line),
      .w_en(c_w_en), .w_mask(c_w_mask), .w_addr(c_w_addr), .w_data(c_w_data)
  );
  tls_rom #(.W(584), .D(4096), .AW(12), .FILE("w64.hex")) u_w64 (
      .clk(clk), .en(c_wr_en), .addr(c_wr_addr + f_base[11:0]), .data(c_wr_data)
  );

  // The engine ORs the ports of its units (idle outputs are zero).
  assign ra_en = n_ra_en | e_ra_en | r_ra_en | a_ra_en | c_ra_en;
  assign ra_addr = n_ra_addr | e_ra_addr | r_ra_addr | a_ra_addr | c_ra_addr;
  assign rb_en = e_rb_en | r_rb_en;
  assign rb_addr = e_rb_addr | r_rb_addr;
  // One-word writes become one-hot line writes (as in the engine); the
  // embed units write masked lines.
  assign w_en = n_w_en | e_w_en | r_w_en;
  assign w_addr = n_w_addr | e_w_addr | r_w_addr;
  assign w_data = n_w_data | e_w_data | r_w_data;
  wire [VL-1:0] w_hot = {{(VL - 1) {1'b0}}, w_en} << w_addr[5:0];
  assign l_we = w_hot | ({VL{a_w_en}} & a_w_mask) | ({VL{c_w_en}} & c_w_mask);
  assign l_waddr = (w_en ? {w_addr[AW-1:6], 6'd0} : {AW{1'b0}}) | a_w_addr | c_w_addr;
  assign l_wdata = {VL{w_data}} | a_w_data | c_w_data;

  wire any_done = n_done | e_done | r_done | a_done | c_done;
  wire [4:0] busys = {c_busy, a_busy, r_busy, e_busy, n_busy};
  wire [4:0] dones = {c_done, a_done, r_done, e_done, n_done};
  wire n_idle_bad = !n_busy && (|{n_ra_en, n_ra_addr, n_w_en, n_w_addr, n_w_data, n_g_en,
                                  n_g_addr, n_b_en, n_b_addr});
  wire e_idle_bad = !e_busy && (|{e_ra_en, e_ra_addr, e_rb_en, e_rb_addr, e_w_en, e_w_addr,
                                  e_w_data});
  wire r_idle_bad = !r_busy && (|{r_ra_en, r_ra_addr, r_rb_en, r_rb_addr, r_w_en, r_w_addr,
                                  r_w_data, r_t_en, r_t_addr});
  wire a_idle_bad = !a_busy && (|{a_wr_en, a_wr_addr, a_ra_en, a_ra_addr, a_w_en, a_w_addr,
                                  a_w_data, a_w_mask});
  wire c_idle_bad = !c_busy && (|{c_wr_en, c_wr_addr, c_ra_en, c_ra_addr, c_w_en, c_w_addr,
                                  c_w_data, c_w_mask});
  wire proto_bad = n_idle_bad | e_idle_bad | r_idle_bad | a_idle_bad | c_idle_bad
                 | (|(dones & ~busys)) | ((busys & (busys - 5'd1)) != 5'd0);

  initial begin
    $readmemh("prog.hex", prog);
    $readmemh("spad_in.hex", u_sp.mem);
  end

  always @(posedge clk) begin
    if (rst) begin
      ts <= 2'd0;
      pc <= 0;
      cyc <= 0;
      nerr <= 0;
      total <= 0;
    end else begin
      total <= total + 1;
      if (proto_bad) nerr <= nerr + 1;
      if (total > 4000000) begin
        errs[0] = nerr + 1000000;
        errs[1] = pc;
        $writememh("errs.hex", errs);
        $writememh("cycles.hex", cycles);
        $writememh("spad_out.hex", u_sp.mem);
        $finish;
      end
      case (ts)
        2'd0: begin
          ins <= prog[pc];
          ts <= 2'd1;
        end
        2'd1: begin
          if (f_unit == 4'd15) begin
            errs[0] = nerr;
            errs[1] = pc;
            $writememh("errs.hex", errs);
            $writememh("cycles.hex", cycles);
            $writememh("spad_out.hex", u_sp.mem);
            $finish;
          end
          cyc <= 0;
          ts <= 2'd2;
        end
        default: begin
          cyc <= cyc + 1;
          if (any_done) begin
            cycles[pc] <= cyc + 1;
            pc <= pc + 1;
            ts <= 2'd0;
          end
        end
      endcase
    end
  end

  initial begin
    rst = 1'b1;
    ins = 288'd0;
    repeat (4) @(posedge clk);
    #1 rst = 1'b0;
  end
endmodule
