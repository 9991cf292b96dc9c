// Testbench of `tls_attn` (driven by `tests/unit_attn.rs`): a behavioral
// line scratchpad of V-word lines (two read ports returning the aligned
// line that holds the address, one masked line write port, 1-cycle reads;
// V = 1 is a one-word scratchpad) preloaded with
// q/k/v of T positions of each of SLOTS users, one `start` per step
// s = t*SLOTS + u in order (user slot u, position t: q at QB + s*NH*HD,
// k at KB + s*NKV*HD, v at VB + s*NKV*HD, output at OB + s*NH*HD), then the
// whole scratchpad is written to OUT_FILE and the cycle counts and protocol
// checks to STAT_FILE.
//
// STAT_FILE lines: "pos <s> <cycles start->done> <busy cycles>", then
// "viol <idle outputs nonzero> <writes outside dst> <done without busy>
// <start-to-busy errors> <timeouts>" (a write outside dst: a masked lane
// outside cfg_dst .. + NH*HD, a write without a lane or at an address not
// a multiple of V).
module tb_attn #(
    parameter integer AW = 15,
    parameter integer HD = 64,
    parameter integer NH = 4,
    parameter integer NKV = 2,
    parameter integer CTX = 64,
    parameter integer WINDOW = 0,
    parameter integer SCALE_MANT = 32768,
    parameter integer SCALE_SHIFT = 18,
    parameter integer HP = 1,
    parameter integer KP = 1,
    parameter integer BPC = 1,
    parameter integer V = 1,
    parameter integer SLOTS = 1,
    parameter integer T = 40,
    parameter integer QB = 0,
    parameter integer KB = 0,
    parameter integer VB = 0,
    parameter integer OB = 0,
    parameter TABLE_DIR = "tables/",
    parameter IN_FILE = "in.hex",
    parameter OUT_FILE = "out.hex",
    parameter STAT_FILE = "stat.txt"
) (
    input wire clk,
    output reg fin
);
  // One model class per configuration: keeps the generated C++ functions
  // small (one flat `top` takes g++ minutes).
  /* verilator no_inline_module */
  localparam integer D = 1 << AW;
  reg [47:0] mem[0:D-1];

  reg rst;
  reg start;
  reg [AW-1:0] cq, ck, cv, cd;
  reg [15:0] cpos;
  reg [7:0] cslot;
  wire ra_en, rb_en, w_en, done, busy;
  wire [AW-1:0] ra_addr, rb_addr, w_addr;
  wire [48*V-1:0] w_data;
  wire [V-1:0] w_mask;
  reg [48*V-1:0] ra_data, rb_data;

  tls_attn #(
      .AW(AW),
      .HD(HD),
      .NH(NH),
      .NKV(NKV),
      .CTX(CTX),
      .WINDOW(WINDOW),
      .SCALE_MANT(SCALE_MANT),
      .SCALE_SHIFT(SCALE_SHIFT),
      .SLOTS(SLOTS),
      .HP(HP),
      .KP(KP),
      .BPC(BPC),
      .V(V),
      .TABLE_DIR(TABLE_DIR)
  ) dut (
      .clk(clk),
      .rst(rst),
      .cfg_slot(cslot),
      .start(start),
      .cfg_q(cq),
      .cfg_k(ck),
      .cfg_v(cv),
      .cfg_dst(cd),
      .cfg_pos(cpos),
      .ra_en(ra_en),
      .ra_addr(ra_addr),
      .ra_data(ra_data),
      .rb_en(rb_en),
      .rb_addr(rb_addr),
      .rb_data(rb_data),
      .w_en(w_en),
      .w_mask(w_mask),
      .w_addr(w_addr),
      .w_data(w_data),
      .done(done),
      .busy(busy)
  );

  localparam [AW-1:0] LMASK = ~(V[AW-1:0] - 1'b1);
  integer li;
  // Reads take the words before this cycle's write: every lane is read
  // first, then the write lanes (blocking: Verilator does not support
  // delayed array writes in loops it does not unroll, as at V = 256; only
  // this block and the final dump touch `mem`).
  always @(posedge clk) begin
    for (li = 0; li < V; li = li + 1) begin
      if (ra_en) ra_data[48*li+:48] <= mem[(ra_addr&LMASK)+li];
      if (rb_en) rb_data[48*li+:48] <= mem[(rb_addr&LMASK)+li];
    end
    for (li = 0; li < V; li = li + 1) if (w_en && w_mask[li]) mem[w_addr+li] = w_data[48*li+:48];
  end
  // written lanes outside dst
  integer bad_lanes;
  integer wl;
  always @* begin
    bad_lanes = 0;
    for (wl = 0; wl < V; wl = wl + 1)
    if (w_en && w_mask[wl] && (w_addr + wl < cd || w_addr + wl >= cd + NH * HD))
      bad_lanes = bad_lanes + 1;
  end

  integer cyc = 0;
  integer busy_cyc = 0;
  integer t_start = 0;
  integer t_done = 0;
  integer v_idle = 0;
  integer v_addr = 0;
  integer v_done = 0;
  integer v_busy = 0;
  integer v_tmo = 0;
  reg start_d = 1'b0;
  always @(posedge clk) begin
    cyc <= cyc + 1;
    start_d <= start;
    if (busy) busy_cyc <= busy_cyc + 1;
    if (start) t_start <= cyc;
    if (done) t_done <= cyc;
    if (!rst && !busy && (ra_en || rb_en || w_en || (|ra_addr) || (|rb_addr) || (|w_addr)
                          || (|w_data) || (|w_mask)))
      v_idle <= v_idle + 1;
    if (bad_lanes > 0 || (w_en && (w_mask == 0 || (w_addr & ~LMASK) != 0)))
      v_addr <= v_addr + 1;
    if (done && !busy) v_done <= v_done + 1;
    if (start_d && !busy) v_busy <= v_busy + 1;
  end

  integer fd;
  integer t;
  integer n;
  integer b0;
  initial begin
    $readmemh(IN_FILE, mem);
    fin = 1'b0;
    rst = 1'b1;
    start = 1'b0;
    cq = 0;
    ck = 0;
    cv = 0;
    cd = 0;
    cpos = 0;
    cslot = 0;
    fd = $fopen(STAT_FILE, "w");
    repeat (3) @(negedge clk);
    rst = 1'b0;
    @(negedge clk);
    for (t = 0; t < T * SLOTS; t = t + 1) begin
      cq = QB + t * NH * HD;
      ck = KB + t * NKV * HD;
      cv = VB + t * NKV * HD;
      cd = OB + t * NH * HD;
      cpos = t / SLOTS;
      cslot = t % SLOTS;
      start = 1'b1;
      b0 = busy_cyc;
      @(negedge clk);
      start = 1'b0;
      n = 0;
      while (!done && n < 1000000) begin
        @(negedge clk);
        n = n + 1;
      end
      if (!done) v_tmo = v_tmo + 1;
      @(negedge clk);
      $fwrite(fd, "pos %0d %0d %0d\n", t, t_done - t_start, busy_cyc - b0);
    end
    repeat (2) @(negedge clk);
    $fwrite(fd, "viol %0d %0d %0d %0d %0d\n", v_idle, v_addr, v_done, v_busy, v_tmo);
    $fclose(fd);
    $writememh(OUT_FILE, mem);
    fin = 1'b1;
  end
endmodule
