// tls_wfetch: weight ROM fetch adapter (contract: UNITS.md, "Packed weight
// ROMs").
//
// Sits between one matrix's packed ROM macros and the weight read port of
// tls_matvec / tls_embed. The macros hold exactly the format:
//   code ROM   word grp*CH + c: ROWS row slices of LANES codes of B bits
//              (two's complement; slice j = row grp*ROWS + j), zero past
//              the last column / row;
//   scale ROM  the group scales (and offsets) stored once per group, as
//              SF16 (16 bits) or Row8 (8-bit n_g), ROWS row slices of SPW
//              entries {offset (asymmetric only), scale}, LSB first;
//   exp ROM    (Row8 only) word grp: ROWS row slices of {E_m (asymmetric
//              only), E_d}, 8-bit signed row exponents.
// Scale ROM addressing (SMODE): 0 = one group per row (word grp); 1 = a
// chunk lies in one group (word grp*GPR + (c >> CPGL)); 2 = a chunk covers
// SPW groups (word grp*CH + c = the code address; block slot k takes entry
// k >> GLB).
//
// Output: the expanded word the units read (UNITS.md, tls_matvec), one
// slice per row: LANES codes sign-extended to 8 bits, then NB 36-bit scale
// fields {d_mant:12, d_exp:6, m_mant:12, m_exp:6} = Sf16::mant_exp of the
// group's scale and offset (offset fields 0 when symmetric; every field of
// a block past the last column 0). Latency: `en` with addresses in cycle
// t, `data` in cycle t+1, held until the next `en` (as tls_rom).
//
// A scale or exponent word is read only when its address differs from the
// previous read of that macro (the macro holds its output), so one pass
// over a matrix reads every word of every macro once.
module tls_wfetch #(
    parameter integer LANES = 16,
    parameter integer ROWS = 1,
    parameter integer B = 4,
    parameter integer COLS = 64,  // row length (blocks past it read 0)
    parameter integer ASYM = 0,  // offsets stored
    parameter integer SF = 0,  // 0: SF16 scales, 1: Row8 (n_g + row exponents)
    parameter integer DSIGNED = 1,  // Row8 scale integers are signed
    parameter integer SMODE = 0,
    parameter integer GPR = 1,  // scale words per row group (SMODE 1)
    parameter integer CPGL = 0,  // log2 chunks per group (SMODE 1)
    parameter integer SPW = 1,  // entries per row slice of a scale word
    parameter integer GLB = 0,  // log2 blocks per group (SMODE 2)
    parameter integer CAW = 4,  // code ROM address bits
    parameter integer GAW = 4,  // row group bits (also the exp ROM address)
    parameter integer CHW = 4,  // chunk bits
    parameter integer SAW = 4  // scale ROM address bits
) (
    input  wire                clk,
    input  wire                rst,
    input  wire                en,
    input  wire [CAW-1:0]      addr,
    input  wire [GAW-1:0]      grp,
    input  wire [CHW-1:0]      chunk,

    output wire                c_en,
    output wire [CAW-1:0]      c_addr,
    input  wire [ROWS*LANES*B-1:0] c_data,
    output wire                s_en,
    output wire [SAW-1:0]      s_addr,
    input  wire [ROWS*SPW*(((SF != 0) ? 8 : 16) * ((ASYM != 0) ? 2 : 1))-1:0] s_data,
    output wire                e_en,
    output wire [GAW-1:0]      e_addr,
    /* verilator lint_off UNUSEDSIGNAL */
    // Unused with SF16 scales (the engine ties it to 0).
    input  wire [ROWS*((ASYM != 0) ? 16 : 8)-1:0] e_data,
    /* verilator lint_on UNUSEDSIGNAL */

    output wire [ROWS*(LANES*8 + ((LANES >= 32) ? LANES / 32 : 1) * 36)-1:0] data
);
  localparam integer NB = (LANES >= 32) ? LANES / 32 : 1;
  localparam integer WS = LANES * 8 + NB * 36;  // expanded slice
  localparam integer KW = ((SF != 0) ? 8 : 16);  // one stored scale or offset
  localparam integer SEW = KW * ((ASYM != 0) ? 2 : 1);  // one scale entry
  localparam integer EEW = (ASYM != 0) ? 16 : 8;  // one row's exponents
  localparam integer NBLK = COLS / 32;  // blocks per row

  // SF16 -> {mant[11:0], exp[5:0]} (Sf16::mant_exp).
  function [17:0] sf16_dec;
    input [15:0] h;
    reg [11:0] mag;
    reg [5:0] ex;
    begin
      if (h[14:10] == 5'd0) begin
        mag = {2'b00, h[9:0]};
        ex = 6'b101000;  // -24
      end else begin
        mag = {2'b01, h[9:0]};
        ex = {1'b0, h[14:10]} - 6'd25;
      end
      sf16_dec = {h[15] ? (~mag + 12'd1) : mag, ex};
    end
  endfunction

  // Row8: n * 2^E (n signed when SGN, else unsigned; -24 <= E <= 7) as
  // the SF16 {mant, exp} of the same value: normalized (|mant| in
  // [1024, 2048)) when exp >= -24, else subnormal with exp = -24.
  function [17:0] r8_dec;
    input [7:0] n;
    input sgn;
    input [7:0] ee;
    reg neg;
    reg [7:0] a;
    reg [3:0] p;
    reg [3:0] up;  // 10 - p
    reg signed [7:0] e;
    reg [11:0] m;
    reg [3:0] sub;  // E + 24 (< 10 where used)
    integer j;
    begin
      neg = sgn && n[7];
      a = neg ? (~n + 8'd1) : n;
      p = 4'd0;
      for (j = 0; j < 8; j = j + 1) if (a[j]) p = j[3:0];
      up = 4'd10 - p;
      e = $signed(ee) - $signed({4'd0, up});
      sub = ee[3:0] + 4'd8;
      m = 12'd0;
      if (a == 8'd0) begin
        r8_dec = {12'd0, 6'b101000};
      end else begin
        if (e >= -8'sd24) begin
          m = {4'd0, a} << up;
        end else begin
          m = {4'd0, a} << sub;
          e = -8'sd24;
        end
        r8_dec = {neg ? (~m + 12'd1) : m, e[5:0]};
      end
    end
  endfunction

  // ---- addresses ----
  assign c_en = en;
  assign c_addr = addr;
  assign e_addr = grp;

  generate
    if (SMODE == 0) begin : g_srow
      assign s_addr = grp;
    end else if (SMODE == 1) begin : g_sgrp
      /* verilator lint_off UNUSEDSIGNAL */
      // Only the low SAW bits form an address (< rows/ROWS * GPR).
      wire [31:0] full = {{(32 - GAW) {1'b0}}, grp} * GPR + ({{(32 - CHW) {1'b0}}, chunk} >> CPGL);
      /* verilator lint_on UNUSEDSIGNAL */
      assign s_addr = full[SAW-1:0];
    end else begin : g_schunk
      assign s_addr = addr;
    end
  endgenerate

  // Skip a scale / exponent read when the macro already holds the word.
  reg s_ok, e_ok;
  reg [SAW-1:0] s_last;
  reg [GAW-1:0] e_last;
  assign s_en = en && !(s_ok && s_last == s_addr);
  assign e_en = (SF != 0) && en && !(e_ok && e_last == grp);
  always @(posedge clk) begin
    if (rst) begin
      s_ok <= 1'b0;
      e_ok <= 1'b0;
      s_last <= {SAW{1'b0}};
      e_last <= {GAW{1'b0}};
    end else begin
      if (s_en) begin
        s_ok <= 1'b1;
        s_last <= s_addr;
      end
      if (e_en) begin
        e_ok <= 1'b1;
        e_last <= grp;
      end
    end
  end

  // The chunk of the word on the output (for the past-the-row blocks).
  reg [CHW-1:0] ch_q;
  always @(posedge clk) begin
    if (rst) ch_q <= {CHW{1'b0}};
    else if (en) ch_q <= chunk;
  end

  // ---- expansion ----
  // The scale fields of every row slice and block slot, decoded.
  wire [ROWS*NB*36-1:0] fields;
  genvar j, k;
  generate
    for (j = 0; j < ROWS; j = j + 1) begin : g_row
      for (k = 0; k < NB; k = k + 1) begin : g_slot
        localparam integer ENT = (SMODE == 2) ? (k >> GLB) : 0;
        localparam integer SB = (j * SPW + ENT) * SEW;
        wire [17:0] d_f;
        wire [17:0] m_f;
        if (SF == 0) begin : g_sf16
          assign d_f = sf16_dec(s_data[SB+:16]);
          if (ASYM != 0) begin : g_off
            assign m_f = sf16_dec(s_data[SB+16+:16]);
          end else begin : g_nooff
            assign m_f = 18'd0;
          end
        end else begin : g_row8
          assign d_f = r8_dec(s_data[SB+:8], DSIGNED != 0, e_data[j*EEW+:8]);
          if (ASYM != 0) begin : g_off
            assign m_f = r8_dec(s_data[SB+8+:8], 1'b1, e_data[j*EEW+8+:8]);
          end else begin : g_nooff
            assign m_f = 18'd0;
          end
        end
        // Block ch*NB + k exists (LANES >= 32), or the chunk's block does.
        /* verilator lint_off UNUSEDSIGNAL */
        wire [31:0] blk = (LANES >= 32) ? ({{(32 - CHW) {1'b0}}, ch_q} * NB + k) : 32'd0;
        /* verilator lint_on UNUSEDSIGNAL */
        wire live = (blk < NBLK);
        assign fields[(j*NB+k)*36+:36] = live ? {d_f, m_f} : 36'd0;
      end
    end
  endgenerate

  // The expanded word, written slice by slice in one procedural block.
  // (As one continuous assignment per code, Verilator builds the word as
  // a chain of concatenations, each copying the whole word so far:
  // quadratic in the width, and most of a wide chip's simulation time.)
  reg [ROWS*WS-1:0] word;
  /* verilator lint_off UNUSEDSIGNAL */
  reg [7+B:0] ext;  // a code with 8 copies of its sign bit above it
  /* verilator lint_on UNUSEDSIGNAL */
  integer r, i, s;
  always @* begin
    // Every bit of the word is written below (LANES codes and NB fields
    // per row slice): the block holds no state.
    ext = {(8 + B) {1'b0}};
    for (r = 0; r < ROWS; r = r + 1) begin
      for (i = 0; i < LANES; i = i + 1) begin
        ext = {{8{c_data[(r*LANES+i)*B+B-1]}}, c_data[(r*LANES+i)*B+:B]};
        word[r*WS+8*i+:8] = ext[7:0];
      end
      for (s = 0; s < NB; s = s + 1) word[r*WS+LANES*8+36*s+:36] = fields[(r*NB+s)*36+:36];
    end
  end
  assign data = word;
endmodule
