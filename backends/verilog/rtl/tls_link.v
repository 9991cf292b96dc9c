// tls_link: a chip-to-chip link carrying 32-bit words.
//
// The wire moves W bits per cycle (W a power of two, 8..1024) and each beat
// arrives D cycles after it leaves (D >= 1). Words go in and come out with
// valid/ready on both sides. Flow control is by credits: the sender may
// have at most DEPTH beats outstanding, where DEPTH (the receiver's buffer)
// is the smallest power of two >= 2D + 4; a credit returns D cycles after
// the receiver frees its slot. So the link runs at full rate across any
// latency and never drops or overwrites a beat.
//
// W >= 32: a beat packs up to W/32 words. A beat leaves when it is full or
//   when the word just taken has `i_last` set (the end of a message), so a
//   message never waits for the next one.
// W < 32: a word is sent as 32/W beats, low bits first.
//
// The chip side moves one word per cycle, so a link wider than 32 bits
// saves beats (and pins toggling) but not cycles: a message of n words
// takes n cycles plus D (RFC 0004).
module tls_link #(
    parameter integer W = 32,
    parameter integer D = 4
) (
    input  wire        clk,
    input  wire        rst,
    input  wire        i_valid,
    output wire        i_ready,
    input  wire [31:0] i_data,
    input  wire        i_last,
    output wire        o_valid,
    input  wire        o_ready,
    output wire [31:0] o_data
);
  localparam integer P = (W >= 32) ? W / 32 : 1;  // words per beat
  localparam integer R = (W >= 32) ? 1 : 32 / W;  // beats per word
  localparam integer CB = $clog2(P + 1);          // word-count field
  localparam integer BW = (W >= 32) ? W + CB : W; // beat width
  localparam integer DA = $clog2(2 * D + 4);
  localparam integer DEPTH = 1 << DA;

  // ---- sender: builds beats, spends credits ----
  reg  [DA:0]    credits;
  wire           send;
  wire [BW-1:0]  tx_beat;

  // ---- the wire: D stages of beats, D stages of returned credits ----
  reg  [D-1:0]   wv;
  reg  [BW-1:0]  wd [0:D-1];
  reg  [D-1:0]   cr;
  wire           pop;
  integer k;
  always @(posedge clk) begin
    if (rst) begin
      wv <= {D{1'b0}};
      cr <= {D{1'b0}};
      for (k = 0; k < D; k = k + 1) wd[k] <= {BW{1'b0}};
    end else begin
      wv[0] <= send;
      cr[0] <= pop;
      wd[0] <= tx_beat;
      for (k = 1; k < D; k = k + 1) begin
        wv[k] <= wv[k-1];
        cr[k] <= cr[k-1];
        wd[k] <= wd[k-1];
      end
    end
  end
  always @(posedge clk) begin
    if (rst) credits <= DEPTH[DA:0];
    else credits <= credits - {{DA{1'b0}}, send} + {{DA{1'b0}}, cr[D-1]};
  end

  // ---- receiver buffer ----
  reg  [BW-1:0]  buf_d [0:DEPTH-1];
  reg  [DA-1:0]  rp, wp;
  reg  [DA:0]    cnt;
  wire           have = cnt != 0;
  wire [BW-1:0]  head = buf_d[rp];
  always @(posedge clk) begin
    if (rst) begin
      rp <= {DA{1'b0}};
      wp <= {DA{1'b0}};
      cnt <= {(DA+1){1'b0}};
    end else begin
      if (wv[D-1]) begin
        buf_d[wp] <= wd[D-1];
        wp <= wp + 1'b1;
      end
      if (pop) rp <= rp + 1'b1;
      cnt <= cnt + {{DA{1'b0}}, wv[D-1]} - {{DA{1'b0}}, pop};
    end
  end

  generate
    if (W >= 32) begin : g_pack
      reg [W-1:0]  acc;
      reg [CB-1:0] n;
      reg          full;
      assign send = full && credits != 0;
      assign i_ready = !full || send;
      assign tx_beat = {n, acc};
      wire          take = i_valid && i_ready;
      wire [CB-1:0] base = send ? {CB{1'b0}} : n;
      /* verilator lint_off WIDTH */
      wire          fills = (base + 1'b1 == P);
      /* verilator lint_on WIDTH */
      always @(posedge clk) begin
        if (rst) begin
          acc <= {W{1'b0}};
          n <= {CB{1'b0}};
          full <= 1'b0;
        end else begin
          if (send) begin
            full <= 1'b0;
            n <= {CB{1'b0}};
          end
          if (take) begin
            acc[base*32 +: 32] <= i_data;
            n <= base + 1'b1;
            full <= fills || i_last;
          end
        end
      end
      // Unpack the head beat one word per cycle.
      reg  [CB-1:0] j;
      wire [CB-1:0] hn = head[W +: CB];
      assign o_valid = have;
      assign o_data = head[j*32 +: 32];
      assign pop = have && o_ready && (j + 1'b1 == hn);
      always @(posedge clk) begin
        if (rst) j <= {CB{1'b0}};
        else if (have && o_ready) j <= pop ? {CB{1'b0}} : j + 1'b1;
      end
    end else begin : g_split
      localparam integer RB = $clog2(R);
      reg [31:0]   sh;
      reg [RB-1:0] s;
      reg          busy;
      /* verilator lint_off WIDTH */
      wire         last_sub = (s == R - 1);
      /* verilator lint_on WIDTH */
      assign send = busy && credits != 0;
      assign i_ready = !busy || (send && last_sub);
      assign tx_beat = sh[W-1:0];
      always @(posedge clk) begin
        if (rst) begin
          sh <= 32'd0;
          s <= {RB{1'b0}};
          busy <= 1'b0;
        end else begin
          if (send) begin
            sh <= sh >> W;
            s <= s + 1'b1;
            if (last_sub) begin
              busy <= 1'b0;
              s <= {RB{1'b0}};
            end
          end
          if (i_valid && i_ready) begin
            sh <= i_data;
            busy <= 1'b1;
            s <= {RB{1'b0}};
          end
        end
      end
      // Reassemble: take R beats, then present the word.
      reg [31:0]   asm_w;
      reg [RB-1:0] t;
      reg          wv_o;
      assign pop = have && !wv_o;
      assign o_valid = wv_o;
      assign o_data = asm_w;
      /* verilator lint_off WIDTH */
      wire         t_last = (t == R - 1);
      /* verilator lint_on WIDTH */
      always @(posedge clk) begin
        if (rst) begin
          asm_w <= 32'd0;
          t <= {RB{1'b0}};
          wv_o <= 1'b0;
        end else begin
          if (wv_o && o_ready) wv_o <= 1'b0;
          if (pop) begin
            asm_w[t*W +: W] <= head;
            t <= t_last ? {RB{1'b0}} : t + 1'b1;
            if (t_last) wv_o <= 1'b1;
          end
        end
      end
      /* verilator lint_off UNUSEDSIGNAL */
      wire unused_last = i_last;
      /* verilator lint_on UNUSEDSIGNAL */
    end
  endgenerate
endmodule
