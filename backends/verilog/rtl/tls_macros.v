// taalasc memory macros, behavioral models for simulation.
//
// Weight ROMs, tables, KV caches and scratchpads are macros: in simulation
// these models load `$readmemh` files; in synthesis `tls_macros_bb.v`
// declares them as blackboxes and the area model prices their bits.

// Read-only memory, synchronous read: `data` holds mem[addr] the cycle
// after `en`.
module tls_rom #(
    parameter integer W = 8,
    parameter integer D = 16,
    parameter integer AW = 4,
    parameter FILE = ""
) (
    input  wire          clk,
    input  wire          en,
    input  wire [AW-1:0] addr,
    output reg  [W-1:0]  data
);
  reg [W-1:0] mem[0:D-1];
  initial begin
    $readmemh(FILE, mem);
  end
  always @(posedge clk) begin
    if (en) data <= mem[addr];
  end
endmodule

// Integrated clock gate (a standard cell in silicon): `gclk` follows
// `clk` in the cycles whose `en` was high at the preceding falling edge, so
// the gated clock never glitches. Idle engines are gated: they neither
// toggle nor (in Verilator) cost simulation time.
module tls_icg (
    input  wire clk,
    input  wire en,
    output wire gclk
);
  reg en_q;
  always @(negedge clk) begin
    en_q <= en;
  end
  assign gclk = clk & en_q;
endmodule

// Single-port-write, single-port-read memory, synchronous read (1 cycle).
// A read and a write of the same address in one cycle returns the old data.
module tls_sram #(
    parameter integer W = 8,
    parameter integer D = 16,
    parameter integer AW = 4
) (
    input  wire          clk,
    input  wire          we,
    input  wire [AW-1:0] waddr,
    input  wire [W-1:0]  wdata,
    input  wire          re,
    input  wire [AW-1:0] raddr,
    output reg  [W-1:0]  rdata
);
  reg [W-1:0] mem[0:D-1];
  always @(posedge clk) begin
    if (we) mem[waddr] <= wdata;
    if (re) rdata <= mem[raddr];
  end
endmodule

// Two read ports, one line write port (the engine scratchpad). The depth
// need not be a power of two: the engines share one address width, and no
// unit issues an address at or above D (so the wider index is deliberate).
// The write port writes a line of V words: `waddr` is the line's first
// word (a multiple of V), lane i of `wdata` goes to word waddr + i when
// `we[i]`. In silicon these are V banks interleaved by address mod V, each
// with one write port; a read goes to one bank. V = 1 is a plain
// one-word write port. Each read port gives the word at its address and
// the whole line (V words from the line-aligned address) that holds it:
// in silicon the V banks all read, and the word is one bank's output.
// One process per lane (a generate loop, not a `for` in one process: the
// latter stops compiling in Verilator past 64 lanes, its unroll limit).
/* verilator lint_off WIDTH */
/* verilator lint_off UNUSEDSIGNAL */
module tls_sram2r #(
    parameter integer W = 48,
    parameter integer D = 16,
    parameter integer AW = 4,
    parameter integer V = 1
) (
    input  wire          clk,
    input  wire [V-1:0]  we,
    input  wire [AW-1:0] waddr,
    input  wire [V*W-1:0] wdata,
    input  wire          rea,
    input  wire [AW-1:0] raddra,
    output reg  [W-1:0]  rdataa,
    output wire [V*W-1:0] rlinea,
    input  wire          reb,
    input  wire [AW-1:0] raddrb,
    output reg  [W-1:0]  rdatab,
    output wire [V*W-1:0] rlineb
);
  localparam [AW-1:0] LMASK = ~(V[AW-1:0] - 1'b1);
  reg [W-1:0] mem[0:D-1];
  always @(posedge clk) begin
    if (rea) rdataa <= mem[raddra];
    if (reb) rdatab <= mem[raddrb];
  end
  genvar gi;
  generate
    for (gi = 0; gi < V; gi = gi + 1) begin : g_lane
      reg [W-1:0] qa, qb;
      always @(posedge clk) begin
        if (we[gi]) mem[waddr+gi] <= wdata[W*gi+:W];
        if (rea) qa <= mem[(raddra&LMASK)+gi];
        if (reb) qb <= mem[(raddrb&LMASK)+gi];
      end
      assign rlinea[W*gi+:W] = qa;
      assign rlineb[W*gi+:W] = qb;
    end
  endgenerate
endmodule
/* verilator lint_on UNUSEDSIGNAL */
/* verilator lint_on WIDTH */
