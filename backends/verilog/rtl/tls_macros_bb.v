// Blackbox declarations of the memory macros, for synthesis only: Yosys
// maps the compute fabric and leaves these as cells whose area comes from
// the macro model (bits × density), not from gates. The weight ROM fetch
// adapter `tls_wfetch` (tls_wfetch.v) is logic, not a macro: synthesis
// reads it with the units and maps it to gates.
(* blackbox *)
module tls_rom #(
    parameter integer W = 8,
    parameter integer D = 16,
    parameter integer AW = 4,
    parameter FILE = ""
) (
    input  wire          clk,
    input  wire          en,
    input  wire [AW-1:0] addr,
    output wire [W-1:0]  data
);
endmodule

(* blackbox *)
module tls_icg (
    input  wire clk,
    input  wire en,
    output wire gclk
);
endmodule

(* blackbox *)
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
    output wire [W-1:0]  rdata
);
endmodule

(* blackbox *)
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
    output wire [W-1:0]  rdataa,
    output wire [V*W-1:0] rlinea,
    input  wire          reb,
    input  wire [AW-1:0] raddrb,
    output wire [W-1:0]  rdatab,
    output wire [V*W-1:0] rlineb
);
endmodule
