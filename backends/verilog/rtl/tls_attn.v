// tls_attn: attention over the on-chip KV cache for ONE token position.
//
// Implements `attention` of `backends/reference/src/exec.rs` with `t_n = 1`
// (see `UNITS.md`, section `tls_attn`), bit-exact with
// `compiler/numerics/src/attention.rs`:
//
//   1. for each KV head: k and v (W48, spad[cfg_k + kvh*HD ..],
//      spad[cfg_v + kvh*HD ..]) converted to A8 per 32-block
//      (`to_a8(.., 24)`) and written into the K and V caches at cfg_pos;
//   2. in NH/HP passes, each over HP query heads h of one KV head
//      (h / (NH/NKV)): their q converted to A8 (kept in registers),
//      s_j = scale_score(dot_a8(q, k_j), SCALE) for j = lo ..= pos
//        (KP positions x BPC 32-blocks x HP heads per cycle; each head's
//        scores go to a score SRAM, its max is tracked on the fly),
//      e_j = exp_neg(max - s_j), S = sum e_j,
//      A_i = sum_j block_term(e_j, -15, v_ji, Ev_jb) (KP positions x BPC V
//        blocks per cycle, HP*HD accumulators of ACW = 49 + clog2(SD)
//        bits, exact), then per head (R, re) = recip(S),
//      o_i = sat_w48(rshr(A_i * R, -(re + 15))) -> spad[cfg_dst + h*HD + i]
//        (O values per cycle).
//   lo = WINDOW ? max(0, pos + 1 - WINDOW) : 0.
//
// Parallelism (defaults HP = KP = BPC = 1: one 32-block of one head per
// cycle):
//   HP  query heads per pass; divides NH/NKV, so the heads of a pass share
//       one KV head and read each K/V word once;
//   KP  KV positions per cycle; a power of two dividing CTX;
//   BPC 32-blocks of head_dim per cycle; divides HD/32 (HD/32: whole-head
//       dot products per cycle).
// Every sum is exact before its one saturation (dot_a8: BPH terms in DW
// bits; S and A_i: at most SD nonzero terms in SW / ACW bits) and the max
// is order-free, so any parallelism gives the same bits. Lanes outside
// lo ..= pos (in the first and last row of KP positions) are masked: they
// take no part in the max and get e = 0.
//
// KV cache layout: K and V each in NB = KP*BPC banks (`tls_sram`, 264-bit
// words, one read and one write port each, depth
// SLOTS*NKV*(CTX/KP)*(HD/32/BPC); total bits as with one bank). Word
// {exp[7:0], mant[255:0]} (mantissa i of the block at bits [8i+7:8i],
// signed; exponent signed) of block b of position j of KV head kvh of
// user slot u lives in bank (j mod KP)*BPC + (b mod BPC) at address
// ((u*NKV + kvh)*(CTX/KP) + j/KP)*(BPH/BPC) + b/BPC, so one read address
// serves every bank in a cycle: KP*BPC*264 bits read per cycle from K
// (score pass) or V (V pass), CE banks (one per converted block, below)
// written per cycle by the append. cfg_pos must be < CTX (no ring buffer).
// Score SRAM: HP*KP*48-bit words, depth SDR = min(CTX/KP, (SD+KP-2)/KP + 1)
// with SD = (0 < WINDOW < CTX) ? WINDOW : CTX; row r holds the scores of
// positions (lo/KP + r)*KP + p, p < KP, of every head of the pass.
// Tables: one exp2 ROM per (head, position) lane (HP*KP x 4096 x 16 bits),
// one recip ROM (4096 x 17).
//
// Scratchpad traffic at the line width V (the plan's rows per cycle): a
// read port returns the V-word aligned line holding its address, a write
// is a masked line. The A8 conversion (k, v, q) works on groups of CE
// consecutive 32-blocks, CE = min(V/32, largest power of two dividing
// BPC) at V >= 64, else 1 (so CE divides BPH, a group never straddles a
// line, and the CE blocks of a group share a cache word and go to CE
// different banks: the append writes them in one cycle). It reads every
// group twice: pass 1 finds max |x| of each block, pass 2 forms the
// mantissas with each block's shift a8_shift(max); one gap cycle in
// between; CE block lanes, each with its own max, shift and mantissas. A
// pass reads E = min(V, 32) words per port per cycle, from both ports
// while E < 32 (port b at the next E words), so it takes Q = 16/min(V, 16)
// cycles (V = 1: 16 pairs of words; V >= 32: one 32*CE-word part of a line
// through port a), a group 2Q + 1 cycles, plus 3 cycles per vector (k, v
// or q of one head) to hand over: C = (2Q + 1)*BPH/CE + 3 per vector (at
// V <= 32: (2Q + 1)*BPH + 3; Llama-3.1-8B, BPH = BPC = 4 at V >= 128:
// 3 + 3 = 6). One group per step beats pipelining the passes of
// consecutive blocks (max of block b+1 while the mantissas of block b,
// through port b): that gives about BPH + 5 = 9 at BPH = 4, CE lanes give
// 6 with the same read traffic, and the q of a pass is then converted
// while the V pass runs (no wait below). The q of the next pass's HP heads
// are converted while this pass runs its V pass and outputs; the next pass
// waits if that takes longer (the max(0, ..) term below). Outputs go out
// in chunks of O = min(V, 2^tz(HD)) words (the largest power of two
// dividing HD, at most V: a chunk never straddles a line), one masked line
// write per chunk: N = HD/O writes and 3 cycles per head. Lines of V > HD
// words hold several heads: only the head's lanes are written.
//
// Cycles from `start` to `done` (BPH = HD/32, P = NH/HP passes,
// W = BPH/BPC cache words per position, R = pos/KP - lo/KP + 1 cache rows
// of the window), checked exactly by the unit test (`tests/unit_attn.rs`)
// against `perf::attn_cycles`:
//   cycles = (2*NKV + HP)*C + P*(2*R*W + 12) + NH*(N + 3)
//            + (P - 1)*max(0, HP*(C - N - 3) - R*W - 7)
// i.e. the A8 conversion of k, v and the first pass's q; per pass R*W
// cycles for the scores and R*W for the V sum (no bubbles) and 12 of
// pipeline fill/drain; per head N output line writes and 3 cycles. With
// V = HP = KP = BPC = 1 (n = R positions; C = 33*BPH + 3, N = HD):
//   cycles = (2*NKV + 1)*(33*BPH + 3) + NH*(2*n*BPH + HD + 15).
// `busy` is high for exactly these cycles (from the cycle after `start`
// through the cycle of `done`).
//
// Parameter constraints (not checked in RTL): HD a multiple of 32, V a
// power of two 1 ..= 256 (tested at 1, 4, 8, 64 and 256), cfg_q, cfg_k,
// cfg_v and cfg_dst multiples of V (the plan starts every vector on a
// line; min(V, 32*CE) for cfg_q/k/v and O for cfg_dst suffice), NH a
// multiple of NKV, NH/NKV a multiple of HP, BPC divides HD/32, KP a power
// of two dividing CTX, CTX >= 2, AW >= 6 (and AW, clog2 of the cache depth
// <= 32), CTX <= 2^16, |SCALE_SHIFT| < 512, 0 <= WINDOW < 2^17; at run
// time cfg_pos < CTX. The clamp of A8 mantissas to +-127 in `to_a8` is a
// no-op (rshr by a8_shift never leaves the range) and is not built.
//
// Arithmetic widths (all signed unless noted):
//   dot block  P   = sum q_i k_i                       21 bits (|P| <= 2^19)
//   score term     = shift_sat_w48(P, Eq + Ek + 24)    48
//   dot sum        = sum over BPH terms                49 + clog2(BPH), then sat_w48
//   scaled score   = shift_sat_w48(s * SCALE_MANT, -SCALE_SHIFT), product 65
//   d = max - s_j  (>= 0, < 2^48), dc = min(d, 2^29)  unsigned 30
//   u = rshr(dc * LOG2E_Q, 36)                         unsigned 19
//   e = i > 16 ? 0 : rshr(exp2[u & 4095], i), i = u >> 12   unsigned 17 (<= 32768)
//   V term x = e * v (25 bits), shift_sat_w48(x, Ev + 9)  48
//   A_i (exact)                                         ACW = 49 + clog2(SD)
//   S (exact, unsigned)                                 SW = 17 + clog2(SD)
//   out product A_i * R (R <= 2^16)                     ACW + 18, then
//   rshr by 13 + k (k = bitlen(S) - 13 after the recip renormalization), sat_w48.
// S >= 32768 always (the max gets exp_neg(0) = 32768), so recip always takes
// its right-shift branch (k >= 3) and the output shift is a right shift.

// shift_sat_w48(p, up) of `compiler/numerics/src/linear.rs` for a PW-bit
// signed p: up >= 0 an exact left shift saturating to W48 (any nonzero p
// saturates when up >= 48), up < 0 a round-half-up right shift by -up
// (0 when -up >= PW), then saturated to W48. Combinational.
// Scratchpad lines are V x 48 bits: past Verilator's 8k-bit replication
// warning at V = 256, on purpose.
/* verilator lint_off WIDTHCONCAT */
module tls_attn_shsat #(
    parameter integer PW = 24
) (
    input  wire signed [PW-1:0] p,
    input  wire signed [9:0]    up,
    output reg  signed [47:0]   y
);
  // One routine per width in a Verilator model, not one copy per instance.
  /* verilator no_inline_module */
  localparam integer WW = PW + 49;
  localparam [WW-1:0] WMAX = {{(WW - 47) {1'b0}}, {47{1'b1}}};
  localparam [WW-1:0] WMIN = {{(WW - 47) {1'b1}}, {47{1'b0}}};
  localparam [9:0] PWC = PW[9:0];
  wire signed [WW-1:0] pw = {{49{p[PW-1]}}, p};
  wire        [9:0]    nr = 10'd0 - up;  // -up, meaningful when up < 0
  reg  signed [WW-1:0] w;
  reg  signed [WW-1:0] t;
  always @* begin
    t = {WW{1'b0}};
    if (!up[9]) begin
      if (p == {PW{1'b0}}) w = {WW{1'b0}};
      else if (up >= 10'sd48) w = p[PW-1] ? WMIN : WMAX;
      else w = pw <<< up[5:0];
    end else if (nr >= PWC) begin
      w = {WW{1'b0}};
    end else begin
      // rshr(p, n) = ((p >>> (n - 1)) + 1) >>> 1 (same floor, no overflow in WW bits)
      t = (pw >>> (nr - 10'd1)) + $signed({{(WW - 1) {1'b0}}, 1'b1});
      w = t >>> 1;
    end
    if (w > $signed(WMAX)) y = {1'b0, {47{1'b1}}};
    else if (w < $signed(WMIN)) y = {1'b1, {47{1'b0}}};
    else y = w[47:0];
  end
endmodule

module tls_attn #(
    parameter integer AW = 16,
    parameter integer HD = 64,
    parameter integer NH = 4,
    parameter integer NKV = 2,
    parameter integer CTX = 64,
    parameter integer SLOTS = 1,
    parameter integer WINDOW = 0,
    parameter integer SCALE_MANT = 32768,
    parameter integer SCALE_SHIFT = 18,
    // parallelism (1, 1, 1: one 32-block of one head per cycle)
    parameter integer HP = 1,  // query heads per pass (divides NH/NKV)
    parameter integer KP = 1,  // KV positions per cycle (power of two, divides CTX)
    parameter integer BPC = 1,  // 32-blocks of head_dim per cycle (divides HD/32)
    // scratchpad line width: words per line read and per masked line write
    // (a power of two, 1 ..= 64; the plan's rows per cycle)
    parameter integer V = 1,
    parameter TABLE_DIR = "rom/tables/"
) (
    input  wire          clk,
    input  wire          rst,
    input  wire          start,
    input  wire [AW-1:0] cfg_q,
    input  wire [AW-1:0] cfg_k,
    input  wire [AW-1:0] cfg_v,
    input  wire [AW-1:0] cfg_dst,
    input  wire [  15:0] cfg_pos,
    input  wire [   7:0] cfg_slot,
    // scratchpad
    // scratchpad: line reads (the V words of the aligned line holding the
    // address), masked line writes (w_addr a multiple of V)
    output wire            ra_en,
    output wire [  AW-1:0] ra_addr,
    input  wire [48*V-1:0] ra_data,
    output wire            rb_en,
    output wire [  AW-1:0] rb_addr,
    input  wire [48*V-1:0] rb_data,
    output reg             w_en,
    output reg  [   V-1:0] w_mask,
    output reg  [  AW-1:0] w_addr,
    output reg  [48*V-1:0] w_data,
    output wire          done,
    output wire          busy
);
  // ---------------------------------------------------------------- sizes
  localparam integer BPH = HD / 32;
  localparam integer G = NH / NKV;
  localparam integer NP = NH / HP;  // passes
  localparam integer GP = G / HP;  // passes per KV head
  localparam integer BB = BPH / BPC;  // cache words per position and bank
  localparam integer CR = CTX / KP;  // cache rows per KV head and slot
  localparam integer NB = KP * BPC;  // cache banks (K and V each)
  localparam integer LKP = $clog2(KP);
  localparam integer SD = (WINDOW > 0 && WINDOW < CTX) ? WINDOW : CTX;
  // score rows: positions lo ..= pos span at most this many rows of KP
  localparam integer SDR0 = (SD + KP - 2) / KP + 1;
  localparam integer SDR = (SDR0 < CR) ? SDR0 : CR;
  // Each user slot owns NKV*CR*BB words of every bank of both caches, at
  // slot*NKV*CR*BB: users never read each other's keys and values.
  localparam integer SLOT_WORDS_I = NKV * CR * BB;
  localparam integer CD = SLOTS * SLOT_WORDS_I;
  localparam integer CAW = (CD > 1) ? $clog2(CD) : 1;
  localparam integer SAW = (SDR > 1) ? $clog2(SDR) : 1;
  // converter: CE 32-blocks per step (a group), NG groups per vector
  localparam integer BPCLOW = BPC & (~BPC + 1);  // largest power of two dividing BPC
  localparam integer VB32 = (V >= 64) ? V / 32 : 1;
  localparam integer CE = (VB32 < BPCLOW) ? VB32 : BPCLOW;
  localparam integer LCE = $clog2(CE);
  localparam integer NG = BPH / CE;
  localparam integer BW = (NG > 1) ? $clog2(NG) : 1;  // converter group
  localparam integer WBW = (BB > 1) ? $clog2(BB) : 1;  // walk word in a position
  localparam integer PW = (KP > 1) ? LKP : 1;
  localparam integer NPW = (NP > 1) ? $clog2(NP) : 1;
  localparam integer GPW = (GP > 1) ? $clog2(GP) : 1;
  localparam integer HPW = (HP > 1) ? $clog2(HP) : 1;
  localparam integer KW = (NKV > 1) ? $clog2(2 * NKV) : 1;
  // scratchpad I/O at line width V: the converter reads E words per port
  // per cycle (NV per cycle, NVL of them per block lane, CPP cycles per
  // pass over a group of CE 32-blocks); the
  // output writes O words per cycle (NCH chunks per head). O is the largest
  // power of two dividing HD, at most V: a chunk never straddles a line.
  localparam integer E = (V < 32) ? V : 32;
  localparam integer NV = (E >= 32) ? 32 * CE : 2 * E;
  localparam integer NVL = NV / CE;
  localparam integer CPP = 32 / NVL;
  localparam integer HDLOW = HD & (~HD + 1);
  localparam integer O = (V < HDLOW) ? V : HDLOW;
  localparam integer NCH = HD / O;
  localparam integer LV = $clog2(V);
  localparam integer LO = $clog2(O);
  localparam integer IW = (NCH > 1) ? $clog2(NCH) : 1;
  localparam integer DW = 49 + $clog2(BPH);  // dot-product block sum
  localparam integer ACW = 49 + $clog2(SD);  // V accumulators
  localparam integer SW = 17 + $clog2(SD);  // softmax denominator S
  localparam integer OPW = ACW + 18;  // A_i * R
  localparam integer CRBB_I = CR * BB;
  localparam integer LAST_B_I = NG - 1;
  localparam integer LAST_BB_I = BB - 1;
  localparam integer LAST_NP_I = NP - 1;
  localparam integer LAST_GP_I = GP - 1;
  localparam integer LAST_HP_I = HP - 1;
  localparam integer LAST_KJ_I = 2 * NKV - 1;
  localparam integer LAST_I_I = NCH - 1;
  localparam integer LAST_PAIR_I = CPP - 1;
  localparam integer NV2_I = NV;
  localparam integer E_I = E;
  localparam integer KPM1_I = KP - 1;
  localparam integer GSTEP_I = 32 * CE;
  localparam integer SC_UP_I = -SCALE_SHIFT;

  localparam [CAW-1:0] CRBB = CRBB_I[CAW-1:0];
  localparam [31:0] SLOT_WORDS = SLOT_WORDS_I;
  localparam [BW-1:0] LAST_B = LAST_B_I[BW-1:0];
  localparam [WBW-1:0] LAST_BB = LAST_BB_I[WBW-1:0];
  localparam [NPW-1:0] LAST_NP = LAST_NP_I[NPW-1:0];
  localparam [GPW-1:0] LAST_GP = LAST_GP_I[GPW-1:0];
  localparam [HPW-1:0] LAST_HP = LAST_HP_I[HPW-1:0];
  localparam [KW-1:0] LAST_KJ = LAST_KJ_I[KW-1:0];
  localparam [IW-1:0] LAST_I = LAST_I_I[IW-1:0];
  localparam [3:0] LAST_PAIR = LAST_PAIR_I[3:0];
  localparam [AW-1:0] ANV = NV2_I[AW-1:0];
  localparam [AW-1:0] AE = E_I[AW-1:0];
  localparam [15:0] KPM1 = KPM1_I[15:0];
  localparam [16:0] WIN17 = WINDOW[16:0];
  localparam [31:0] BB32 = BB;
  localparam [AW-1:0] HDA = HD[AW-1:0];
  localparam [AW-1:0] AGS = GSTEP_I[AW-1:0];
  localparam [15:0] SMANT = SCALE_MANT[15:0];
  localparam [9:0] SC_UP = SC_UP_I[9:0];
  localparam [24:0] LOG2E_Q = 25'd24204406;  // round(log2(e) * 2^24)

  // 32-lane A8 dot product (|.| <= 32 * 2^14 < 2^20)
  function automatic signed [20:0] dot32(input [255:0] a, input [255:0] b);
    integer i;
    reg signed [15:0] pr;
    reg signed [20:0] s;
    begin
      s = 21'sd0;
      for (i = 0; i < 32; i = i + 1) begin
        pr = $signed(a[8*i+:8]) * $signed(b[8*i+:8]);
        s  = s + {{5{pr[15]}}, pr};
      end
      dot32 = s;
    end
  endfunction

  // ---------------------------------------------------------------- FSM
  localparam [3:0] ST_IDLE = 4'd0, ST_KV = 4'd1, ST_Q = 4'd2, ST_SC = 4'd3,
                   ST_SCD = 4'd4, ST_VS = 4'd5, ST_VSD = 4'd6, ST_RC = 4'd7,
                   ST_OUT = 4'd8, ST_OUTD = 4'd9, ST_FIN = 4'd10;
  reg  [     3:0] state;
  assign busy = (state != ST_IDLE);
  assign done = (state == ST_FIN);

  reg  [  KW-1:0] kvj;  // KV conversion job: even = K, odd = V of head kvj/2
  reg  [  AW-1:0] k_run;  // cfg_k + kvh*HD
  reg  [  AW-1:0] v_run;  // cfg_v + kvh*HD
  reg  [ CAW-1:0] cw_base;  // cache write word: (slot*NKV + kvh)*CR*BB + (pos/KP)*BB
  reg  [  PW-1:0] pw_lane;  // pos mod KP: the bank of this position
  reg  [ NPW-1:0] hg;  // pass (query heads hg*HP ..)
  reg  [ GPW-1:0] gp;  // pass within its KV head
  reg  [ HPW-1:0] ol;  // head lane of the output
  reg  [ HPW-1:0] qj;  // head lane of the q being converted
  reg  [  AW-1:0] q_run;  // address of the q being converted
  reg  [  AW-1:0] dst_run;  // cfg_dst + h*HD of the output head
  reg  [ CAW-1:0] head_cbase;  // cache read word of row lo/KP of this KV head
  reg  [ SAW-1:0] jlast;  // rows - 1
  reg  [  PW-1:0] lo_lane;  // lo mod KP: lanes below it in row 0 are masked
  reg  [  PW-1:0] hi_lane;  // pos mod KP: lanes above it in row jlast are masked
  // row/word scan of the score and V passes
  reg  [ SAW-1:0] sc_j;
  reg  [ WBW-1:0] sc_b;
  reg  [ CAW-1:0] sc_addr;
  wire            sc_lastb = (sc_b == LAST_BB);
  wire            sc_end = sc_lastb && (sc_j == jlast);
  // output scan
  reg  [  IW-1:0] oi;

  // valid lanes of row r: lo <= r*KP + p + (lo/KP)*KP <= pos
  function automatic [KP-1:0] row_mask(input [SAW-1:0] r, input [SAW-1:0] rl, input [PW-1:0] lo_p,
                                       input [PW-1:0] hi_p);
    integer p;
    begin
      for (p = 0; p < KP; p = p + 1)
      row_mask[p] = !((r == {SAW{1'b0}}) && (p[PW-1:0] < lo_p)) && !((r == rl) && (p[PW-1:0] > hi_p));
    end
  endfunction

  // ---------------------------------------------------------------- config
  wire [    16:0] pos1 = {1'b0, cfg_pos} + 17'd1;
  wire            win_cut = (WINDOW > 0) && (pos1 > WIN17);
  wire [    15:0] lo16 = win_cut ? cfg_pos - WIN17[15:0] + 16'd1 : 16'd0;
  wire [    15:0] lo_row = lo16 >> LKP;
  wire [    15:0] pos_row = cfg_pos >> LKP;
  /* verilator lint_off UNUSEDSIGNAL */
  wire [    15:0] rows_m1 = pos_row - lo_row;
  wire [    15:0] lo_p16 = lo16 & KPM1;
  wire [    15:0] pos_p16 = cfg_pos & KPM1;
  // Products wider than the cache address: the high bits are 0 because
  // pos < CTX (deliberately truncated below).
  wire [    31:0] slot_base32 = {24'd0, cfg_slot} * SLOT_WORDS;
  wire [    31:0] lo_bph32 = slot_base32 + {16'd0, lo_row} * BB32;
  wire [    31:0] pos_bph32 = slot_base32 + {16'd0, pos_row} * BB32;
  /* verilator lint_on UNUSEDSIGNAL */

  // ---------------------------------------------------------------- A8 converter
  // A vector (k, v or q of one head) is converted in NG groups of CE
  // consecutive 32-blocks; a group is read twice, CPP cycles per pass: NV
  // words per cycle (the E words of port a's line at cv_ra, then, when
  // E < 32, the E of port b's line at cv_ra + E; when E = 32 the CE*32-word
  // part of port a's line holding the group). Block lane c (< CE) takes
  // block g*CE + c of group g: words [NVL*c, NVL*c + NVL) of the cycle's
  // NV, its own max, shift and mantissas (to_a8 works per block).
  localparam [1:0] CV_MAX = 2'd0, CV_GAP = 2'd1, CV_QNT = 2'd2;
  reg           cv_start;  // pulse: convert BPH blocks from spad[cv_src ..]
  reg  [AW-1:0] cv_src;
  reg           cv_run;
  reg  [   1:0] cv_pass;
  reg  [   3:0] cv_pair;
  reg  [BW-1:0] cv_blk;  // group
  reg  [AW-1:0] cv_bbase;
  reg           cv_dmax;  // read data of this cycle belongs to pass 1
  reg           cv_dqnt;  // ... to pass 2
  reg           cv_dlast;  // ... and is the group's last read
  reg  [BW-1:0] cv_dblk;
  reg           cv_ovalid;  // the group's CE block words are ready (one cycle)
  reg  [BW-1:0] cv_oblk;
  // block word of lane c at [264c+263:264c]: {exp[7:0], mant[255:0]}
  wire [CE*264-1:0] cv_oword;
  wire          cv_issue = cv_run && (cv_pass != CV_GAP);
  wire [AW-1:0] cv_ra = cv_bbase + {{(AW - 4) {1'b0}}, cv_pair} * ANV;
  assign ra_en   = cv_issue;
  assign ra_addr = cv_issue ? cv_ra : {AW{1'b0}};

  // the NV words read this cycle, word i at bits [48i+47:48i] (address
  // order)
  wire [NV*48-1:0] cv_words;
  generate
    if (E < 32) begin : g_cv_two
      // V = E: whole lines from both ports
      assign rb_en = cv_issue;
      assign rb_addr = cv_issue ? cv_ra + AE : {AW{1'b0}};
      assign cv_words = {rb_data, ra_data};
    end else begin : g_cv_one
      // one NV-word (CE blocks) part of port a's line (the group's, at an
      // address multiple of NV)
      assign rb_en = 1'b0;
      assign rb_addr = {AW{1'b0}};
      if (V > NV) begin : g_cv_part
        reg [LV-LCE-6:0] cv_dpart;  // part of the line read in the previous cycle
        always @(posedge clk) cv_dpart <= cv_ra[LV-1:5+LCE];
        assign cv_words = ra_data[cv_dpart*(NV*48)+:NV*48];
      end else begin : g_cv_line
        assign cv_words = ra_data;
      end
      /* verilator lint_off UNUSEDSIGNAL */
      wire unused_rb = &{1'b0, rb_data};
      /* verilator lint_on UNUSEDSIGNAL */
    end
  endgenerate

  genvar gc;
  generate
    for (gc = 0; gc < CE; gc = gc + 1) begin : g_cvl
      wire [NVL*48-1:0] words = cv_words[gc*NVL*48+:NVL*48];
      reg  [      47:0] max_ab;  // max |x| over the lane's words of this cycle
      reg  [      47:0] ab;
      integer mi;
      always @* begin
        max_ab = 48'd0;
        for (mi = 0; mi < NVL; mi = mi + 1) begin
          ab = words[48*mi+47] ? 48'd0 - words[48*mi+:48] : words[48*mi+:48];
          if (ab > max_ab) max_ab = ab;
        end
      end

      reg  [47:0] mx;  // max |x| of the block (unsigned)
      reg  [ 5:0] sh;  // a8_shift(mx)
      // a8_shift(mx): s0 = max(0, bitlen - 7), plus one if rshr(mx, s0) > 127.
      reg  [ 5:0] bl;
      reg  [ 5:0] s0;
      reg  [48:0] r;
      wire [ 5:0] snext = s0 + {5'd0, (r > 49'd127)};
      integer bi;
      always @* begin
        bl = 6'd0;
        for (bi = 0; bi < 48; bi = bi + 1) if (mx[bi]) bl = bi[5:0] + 6'd1;
        s0 = (bl > 6'd7) ? bl - 6'd7 : 6'd0;
        r  = (s0 == 6'd0) ? {1'b0, mx} : ({1'b0, mx} + (49'd1 << (s0 - 6'd1))) >> s0;
      end

      // mantissas rshr(x, sh): |result| <= 127, so the low 8 bits are the
      // value (the wide intermediates are deliberately truncated).
      wire signed [48:0] half_s = (sh == 6'd0) ? 49'sd0 : $signed(49'd1 << (sh - 6'd1));
      reg [NVL*8-1:0] q;
      /* verilator lint_off UNUSEDSIGNAL */
      reg signed [48:0] qw;  // low 8 bits used
      /* verilator lint_on UNUSEDSIGNAL */
      integer qi;
      always @* begin
        for (qi = 0; qi < NVL; qi = qi + 1) begin
          qw = ($signed({words[48*qi+47], words[48*qi+:48]}) + half_s) >>> sh;
          q[8*qi+:8] = qw[7:0];
        end
      end

      // the block's mantissas in address order: this cycle's NVL enter at the top
      reg  [255:0] mant;
      wire [255:0] mant_next;
      if (NVL < 32) begin : g_mant_shift
        assign mant_next = {q, mant[255:NVL*8]};
      end else begin : g_mant_whole
        assign mant_next = q;
      end

      always @(posedge clk) begin
        if (cv_run && cv_pass == CV_MAX && cv_pair == 4'd0) mx <= 48'd0;
        else if (cv_dmax) mx <= (max_ab > mx) ? max_ab : mx;
        if (cv_run && cv_pass == CV_QNT && cv_pair == 4'd0) sh <= snext;
        if (cv_dqnt) mant <= mant_next;
      end
      wire [7:0] ex = {2'b00, sh} - 8'd24;
      assign cv_oword[gc*264+:264] = {ex, mant};
    end
  endgenerate

  always @(posedge clk) begin
    if (rst) begin
      cv_run <= 1'b0;
      cv_dmax <= 1'b0;
      cv_dqnt <= 1'b0;
      cv_dlast <= 1'b0;
      cv_ovalid <= 1'b0;
      cv_pass <= CV_MAX;
      cv_pair <= 4'd0;
      cv_blk <= {BW{1'b0}};
      cv_bbase <= {AW{1'b0}};
      cv_dblk <= {BW{1'b0}};
      cv_oblk <= {BW{1'b0}};
    end else begin
      cv_dmax   <= cv_run && (cv_pass == CV_MAX);
      cv_dqnt   <= cv_run && (cv_pass == CV_QNT);
      cv_dlast  <= cv_run && (cv_pass == CV_QNT) && (cv_pair == LAST_PAIR);
      cv_dblk   <= cv_blk;
      cv_ovalid <= cv_dqnt && cv_dlast;
      cv_oblk   <= cv_dblk;
      if (cv_start) begin
        cv_run <= 1'b1;
        cv_pass <= CV_MAX;
        cv_pair <= 4'd0;
        cv_blk <= {BW{1'b0}};
        cv_bbase <= cv_src;
      end else if (cv_run) begin
        case (cv_pass)
          CV_MAX: begin
            if (cv_pair == LAST_PAIR) begin
              cv_pair <= 4'd0;
              cv_pass <= CV_GAP;
            end else begin
              cv_pair <= cv_pair + 4'd1;
            end
          end
          CV_GAP: cv_pass <= CV_QNT;
          default: begin
            if (cv_pair == LAST_PAIR) begin
              cv_pair <= 4'd0;
              if (cv_blk == LAST_B) begin
                cv_run <= 1'b0;
              end else begin
                cv_blk <= cv_blk + {{(BW - 1) {1'b0}}, 1'b1};
                cv_bbase <= cv_bbase + AGS;
                cv_pass <= CV_MAX;
              end
            end else begin
              cv_pair <= cv_pair + 4'd1;
            end
          end
        endcase
      end
    end
  end
  // ---------------------------------------------------------------- memories
  // K and V caches: KP*BPC banks each (`tls_sram`, 264-bit words, one read
  // and one write port). Block b of position j lives in bank
  // (j mod KP)*BPC + (b mod BPC) at word (slot*NKV + kvh)*CR*BB + (j/KP)*BB
  // + b/BPC: one read address serves every bank of a cycle. The append
  // writes the CE blocks of a converter group in one cycle: CE divides
  // BPC, so they share the word b/BPC and go to CE different banks
  // (block lane c to the bank with b mod BPC = (g*CE mod BPC) + c).
  wire            kv_wr = (state == ST_KV) && cv_ovalid;
  /* verilator lint_off UNUSEDSIGNAL */
  wire [    31:0] c_wblk = {{(32 - BW) {1'b0}}, cv_oblk} * CE;  // block of lane 0
  wire [    31:0] c_wword32 = c_wblk / BPC;
  /* verilator lint_on UNUSEDSIGNAL */
  wire [    31:0] c_wbank32 = c_wblk % BPC;  // a multiple of CE
  wire [ CAW-1:0] c_waddr = cw_base + c_wword32[CAW-1:0];
  wire            kc_re = (state == ST_SC);
  wire [NB*264-1:0] kc_rdata;
  reg             e3_v;
  reg  [ CAW-1:0] e3_vaddr;
  wire [NB*264-1:0] vc_rdata;

  genvar gb;
  generate
    for (gb = 0; gb < NB; gb = gb + 1) begin : g_kvbank
      localparam integer BP_I = gb / BPC;
      localparam integer BC_I = gb % BPC;
      localparam integer BL_I = BC_I % CE;  // the block lane that writes this bank
      wire bank_w = kv_wr && ({{(32 - PW) {1'b0}}, pw_lane} == BP_I) &&
                    (c_wbank32 == BC_I - BL_I);
      tls_sram #(
          .W (264),
          .D (CD),
          .AW(CAW)
      ) u_kcache (
          .clk  (clk),
          .we   (bank_w && !kvj[0]),
          .waddr(c_waddr),
          .wdata(cv_oword[BL_I*264+:264]),
          .re   (kc_re),
          .raddr(sc_addr),
          .rdata(kc_rdata[gb*264+:264])
      );
      tls_sram #(
          .W (264),
          .D (CD),
          .AW(CAW)
      ) u_vcache (
          .clk  (clk),
          .we   (bank_w && kvj[0]),
          .waddr(c_waddr),
          .wdata(cv_oword[BL_I*264+:264]),
          .re   (e3_v),
          .raddr(e3_vaddr),
          .rdata(vc_rdata[gb*264+:264])
      );
    end
  endgenerate

  // q of the current pass's HP heads, A8 words per block (lane-major)
  // (q of the next pass is converted while this pass runs its V pass and
  // output: the scores, the only reader, are done by then.)
  reg [HP*BPH*264-1:0] qbuf;
  wire q_last = (state != ST_KV) && cv_ovalid && (cv_oblk == LAST_B);
  wire q_all = q_last && (qj == LAST_HP);  // the pass's last q is in
  reg q_rdy;  // q of the next pass is in qbuf
  /* verilator lint_off UNUSEDSIGNAL */
  wire [31:0] q_widx = {{(32 - HPW) {1'b0}}, qj} * BPH + {{(32 - BW) {1'b0}}, cv_oblk} * CE;
  /* verilator lint_on UNUSEDSIGNAL */
  always @(posedge clk) begin
    if (state != ST_KV && cv_ovalid) qbuf[q_widx*264+:CE*264] <= cv_oword;
  end

  // ---------------------------------------------------------------- scores
  // lane (hh, p, c): head hh of the pass, position lane p, block lane c
  localparam integer NL = HP * KP * BPC;
  reg                    p1_v, p1_first, p1_last;
  reg        [  WBW-1:0] p1_b;
  reg        [  SAW-1:0] p1_j;
  reg                    p2_v, p2_first, p2_last;
  reg        [  SAW-1:0] p2_j;
  reg        [NL*21-1:0] p2_p;
  reg        [NL*10-1:0] p2_up;
  reg                    p3_v;
  reg        [  SAW-1:0] p3_j;
  reg                    p4_v;
  reg        [  SAW-1:0] p4_j;
  reg        [HP*KP*48-1:0] p4_score;
  reg        [HP*48-1:0] sc_max;
  wire       [HP*KP*48-1:0] sc_scaled;

  localparam [DW-1:0] DMAX = {{(DW - 47) {1'b0}}, {47{1'b1}}};
  localparam [DW-1:0] DMIN = {{(DW - 47) {1'b1}}, {47{1'b0}}};
  /* verilator lint_off UNUSEDSIGNAL */
  wire [31:0] p1_b32 = {{(32 - WBW) {1'b0}}, p1_b};
  /* verilator lint_on UNUSEDSIGNAL */
  genvar hh, pp, cc, l;
  generate
    for (hh = 0; hh < HP; hh = hh + 1) begin : g_sh
      for (pp = 0; pp < KP; pp = pp + 1) begin : g_sp
        wire [BPC*48-1:0] terms;
        for (cc = 0; cc < BPC; cc = cc + 1) begin : g_sc
          localparam integer LI = (hh * KP + pp) * BPC + cc;
          localparam [31:0] QOFF = hh * BPH + cc;
          wire [31:0] qidx = QOFF + p1_b32 * BPC;
          wire [263:0] qw = qbuf[qidx*264+:264];
          wire [263:0] kw = kc_rdata[(pp*BPC+cc)*264+:264];
          always @(posedge clk) begin
            p2_p[LI*21+:21] <= dot32(qw[255:0], kw[255:0]);
            p2_up[LI*10+:10] <= $signed({{2{qw[263]}}, qw[263:256]}) +
                                $signed({{2{kw[263]}}, kw[263:256]}) + 10'sd24;
          end
          wire signed [47:0] t;
          tls_attn_shsat #(
              .PW(21)
          ) u_sc_term (
              .p (p2_p[LI*21+:21]),
              .up(p2_up[LI*10+:10]),
              .y (t)
          );
          assign terms[cc*48+:48] = t;
        end
        // dot_a8: exact sum of the BPH block terms, then sat_w48
        reg signed [DW-1:0] csum;
        integer ci;
        always @* begin
          csum = {DW{1'b0}};
          for (ci = 0; ci < BPC; ci = ci + 1)
          csum = csum + {{(DW - 48) {terms[ci*48+47]}}, terms[ci*48+:48]};
        end
        reg signed [DW-1:0] p3_acc;
        always @(posedge clk) if (p2_v) p3_acc <= p2_first ? csum : p3_acc + csum;
        wire signed [47:0] dot_s = (p3_acc > $signed(DMAX)) ? {1'b0, {47{1'b1}}} :
                                   (p3_acc < $signed(DMIN)) ? {1'b1, {47{1'b0}}} : p3_acc[47:0];
        wire signed [64:0] dot_s65 = {{17{dot_s[47]}}, dot_s};
        wire signed [64:0] smant65 = {49'd0, SMANT};
        wire signed [64:0] sc_prod = dot_s65 * smant65;  // |.| < 2^63: exact
        tls_attn_shsat #(
            .PW(65)
        ) u_sc_scale (
            .p (sc_prod),
            .up(SC_UP),
            .y (sc_scaled[(hh*KP+pp)*48+:48])
        );
      end
    end
  endgenerate

  // running max over the valid lanes, per head lane
  wire [KP-1:0] p4_mask = row_mask(p4_j, jlast, lo_lane, hi_lane);
  reg  [HP*48-1:0] max_next;
  integer mh, mp;
  reg mx_have;
  reg signed [47:0] mx_m, mx_s;
  always @* begin
    max_next = sc_max;
    for (mh = 0; mh < HP; mh = mh + 1) begin
      mx_m = sc_max[mh*48+:48];
      mx_have = (p4_j != {SAW{1'b0}});
      for (mp = 0; mp < KP; mp = mp + 1) begin
        mx_s = p4_score[(mh*KP+mp)*48+:48];
        if (p4_mask[mp] && (!mx_have || mx_s > mx_m)) begin
          mx_m = mx_s;
          mx_have = 1'b1;
        end
      end
      max_next[mh*48+:48] = mx_m;
    end
  end

  always @(posedge clk) begin
    if (rst) begin
      p1_v <= 1'b0;
      p2_v <= 1'b0;
      p3_v <= 1'b0;
      p4_v <= 1'b0;
    end else begin
      p1_v <= kc_re;
      p2_v <= p1_v;
      p3_v <= p2_v && p2_last;
      p4_v <= p3_v;
    end
    p1_b <= sc_b;
    p1_j <= sc_j;
    p1_first <= (sc_b == {WBW{1'b0}});
    p1_last <= sc_lastb;
    p2_first <= p1_first;
    p2_last <= p1_last;
    p2_j <= p1_j;
    p3_j <= p2_j;
    p4_score <= sc_scaled;
    p4_j <= p3_j;
    if (p4_v) sc_max <= max_next;
  end

  // score SRAM: row r (positions (lo/KP + r)*KP ..) of every head lane
  wire sb_re = (state == ST_VS);
  wire [HP*KP*48-1:0] sb_rdata;
  tls_sram #(
      .W (HP * KP * 48),
      .D (SDR),
      .AW(SAW)
  ) u_scores (
      .clk  (clk),
      .we   (p4_v),
      .waddr(p4_j),
      .wdata(p4_score),
      .re   (sb_re),
      .raddr(sc_j),
      .rdata(sb_rdata)
  );

  // ---------------------------------------------------------------- exp + V sum
  reg                e1_v, e1_first, e1_b0;
  reg      [WBW-1:0] e1_b;
  reg      [CAW-1:0] e1_vaddr;
  reg      [ KP-1:0] e1_m;
  reg                e2_v, e2_first, e2_b0;
  reg      [WBW-1:0] e2_b;
  reg      [CAW-1:0] e2_vaddr;
  reg      [ KP-1:0] e2_m;
  reg                e3_first, e3_b0;
  reg      [WBW-1:0] e3_b;
  reg      [ KP-1:0] e3_m;
  reg                e4_v, e4_first, e4_b0;
  reg      [WBW-1:0] e4_b;
  reg                e5_v, e5_first;
  reg      [WBW-1:0] e5_b;
  reg [HP*KP*17-1:0] e4_e;
  wire     [ KP-1:0] vs_mask = row_mask(sc_j, jlast, lo_lane, hi_lane);

  // per (head lane, position lane): e = exp_neg(max - s), 0 on masked lanes;
  // one exp2 table ROM per lane
  generate
    for (hh = 0; hh < HP; hh = hh + 1) begin : g_eh
      for (pp = 0; pp < KP; pp = pp + 1) begin : g_ep
        localparam integer EI = hh * KP + pp;
        wire [47:0] sm = sc_max[hh*48+:48];
        wire [47:0] sj = sb_rdata[EI*48+:48];
        wire signed [48:0] ex_d = $signed({sm[47], sm}) - $signed({sj[47], sj});  // >= 0 (valid)
        wire [29:0] ex_dc = (ex_d[48:29] != 20'd0) ? 30'h2000_0000 : {1'b0, ex_d[28:0]};
        // dc * LOG2E_Q < 2^54; u = rshr(., 36) takes bits [54:35] only.
        /* verilator lint_off UNUSEDSIGNAL */
        wire [54:0] ex_prod = {25'd0, ex_dc} * {30'd0, LOG2E_Q};
        /* verilator lint_on UNUSEDSIGNAL */
        wire [18:0] ex_u = ex_prod[54:36] + {18'd0, ex_prod[35]};
        reg  [18:0] e2_u;
        reg  [ 6:0] e3_i;
        always @(posedge clk) begin
          e2_u <= ex_u;
          e3_i <= e2_u[18:12];
        end
        wire [15:0] exp2_data;
        tls_rom #(
            .W(16),
            .D(4096),
            .AW(12),
            .FILE({TABLE_DIR, "exp2.hex"})
        ) u_exp2 (
            .clk (clk),
            .en  (e2_v),
            .addr(e2_u[11:0]),
            .data(exp2_data)
        );
        // e = i > 16 ? 0 : rshr(t, i)
        wire [16:0] ex_t = {1'b0, exp2_data};
        wire [16:0] ex_half = (e3_i == 7'd0) ? 17'd0 : (17'd1 << (e3_i[4:0] - 5'd1));
        wire [16:0] ex_e = (e3_i > 7'd16 || !e3_m[pp]) ? 17'd0 : (ex_t + ex_half) >> e3_i[4:0];
        always @(posedge clk) e4_e[EI*17+:17] <= ex_e;
      end
    end
  endgenerate

  // V terms: lane (hh, c, l) sums its KP positions exactly, then
  // accumulates into A of block e5_b*BPC + c of head lane hh
  wire [HP*BPC*32*ACW-1:0] vsum_flat;  // at most SD nonzero terms: exact
  generate
    for (hh = 0; hh < HP; hh = hh + 1) begin : g_vh
      for (cc = 0; cc < BPC; cc = cc + 1) begin : g_vc
        for (l = 0; l < 32; l = l + 1) begin : g_vl
          wire [KP*48-1:0] vt;
          for (pp = 0; pp < KP; pp = pp + 1) begin : g_vp
            localparam integer VB = pp * BPC + cc;
            wire signed [9:0] v_up = $signed({{2{vc_rdata[VB*264+263]}}, vc_rdata[VB*264+256+:8]})
                                     + 10'sd9;
            wire signed [24:0] e25 = {8'd0, e4_e[(hh*KP+pp)*17+:17]};
            wire signed [24:0] v25 = {{17{vc_rdata[VB*264+8*l+7]}}, vc_rdata[VB*264+8*l+:8]};
            wire signed [24:0] x = e25 * v25;  // |x| <= 2^22
            // e4 -> e5: the product and its shift, registered in every
            // lane (RFC 0005, "Pipelining for the clock"). The shift is
            // don't-care when x = 0 (the term is 0 at any shift), so each
            // lane registers 0 there: the lanes' shift registers then hold
            // different functions and synthesis keeps them apart, instead of
            // merging them into one register that drives all 32·KP lanes'
            // shifters.
            reg signed [24:0] x5;
            reg signed [9:0] up5;
            always @(posedge clk) begin
              x5 <= x;
              up5 <= (x == 25'sd0) ? 10'sd0 : v_up;
            end
            wire signed [47:0] y;
            tls_attn_shsat #(
                .PW(25)
            ) u_vt (
                .p (x5),
                .up(up5),
                .y (y)
            );
            assign vt[pp*48+:48] = y;
          end
          reg signed [ACW-1:0] s;
          integer vi;
          always @* begin
            s = {ACW{1'b0}};
            for (vi = 0; vi < KP; vi = vi + 1) s = s + {{(ACW - 48) {vt[vi*48+47]}}, vt[vi*48+:48]};
          end
          assign vsum_flat[((hh*BPC+cc)*32+l)*ACW+:ACW] = s;
        end
      end
    end
  endgenerate

  // accumulators A_i of head lane hh, block ab (updated when its word
  // e5_b = ab / BPC is in flight, from block lane ab mod BPC)
  wire [HP*HD*ACW-1:0] acc_flat;
  wire [HP*SW-1:0] s_sum_flat;
  genvar ab;
  generate
    for (hh = 0; hh < HP; hh = hh + 1) begin : g_ah
      for (ab = 0; ab < BPH; ab = ab + 1) begin : g_bank
        localparam integer ABW_I = ab / BPC;
        localparam integer ABC_I = ab % BPC;
        localparam [WBW-1:0] ABW = ABW_I[WBW-1:0];
        for (l = 0; l < 32; l = l + 1) begin : g_lane
          reg signed [ACW-1:0] a;
          wire signed [ACW-1:0] tx = vsum_flat[((hh*BPC+ABC_I)*32+l)*ACW+:ACW];
          always @(posedge clk) begin
            if (e5_v && e5_b == ABW) a <= (e5_first ? {ACW{1'b0}} : a) + tx;
          end
          assign acc_flat[((hh*BPH+ab)*32+l)*ACW+:ACW] = a;
        end
      end
      // S of head lane hh: the row's e, once per row (word 0)
      reg [SW-1:0] s_sum;
      reg [SW-1:0] s_row;
      integer si;
      always @* begin
        s_row = {SW{1'b0}};
        for (si = 0; si < KP; si = si + 1)
        s_row = s_row + {{(SW - 17) {1'b0}}, e4_e[(hh*KP+si)*17+:17]};
      end
      always @(posedge clk) if (e4_v && e4_b0) s_sum <= (e4_first ? {SW{1'b0}} : s_sum) + s_row;
      assign s_sum_flat[hh*SW+:SW] = s_sum;
    end
  endgenerate

  always @(posedge clk) begin
    if (rst) begin
      e1_v <= 1'b0;
      e2_v <= 1'b0;
      e3_v <= 1'b0;
      e4_v <= 1'b0;
      e5_v <= 1'b0;
    end else begin
      e1_v <= sb_re;
      e2_v <= e1_v;
      e3_v <= e2_v;
      e4_v <= e3_v;
      e5_v <= e4_v;
    end
    e1_b <= sc_b;
    e1_first <= (sc_j == {SAW{1'b0}});
    e1_b0 <= (sc_b == {WBW{1'b0}});
    e1_vaddr <= sc_addr;
    e1_m <= vs_mask;
    e2_b <= e1_b;
    e2_first <= e1_first;
    e2_b0 <= e1_b0;
    e2_vaddr <= e1_vaddr;
    e2_m <= e1_m;
    e3_b <= e2_b;
    e3_first <= e2_first;
    e3_b0 <= e2_b0;
    e3_vaddr <= e2_vaddr;
    e3_m <= e2_m;
    e4_b <= e3_b;
    e4_first <= e3_first;
    e4_b0 <= e3_b0;
    e5_b <= e4_b;
    e5_first <= e4_first;
  end

  // ---------------------------------------------------------------- recip + output
  // output head lane ol: k = bitlen(S) - 13 (>= 3), m = rshr(S, k) in
  // [4096, 8192]; 8192 -> 4096, k + 1.
  /* verilator lint_off UNUSEDSIGNAL */
  wire [31:0] ol32 = {{(32 - HPW) {1'b0}}, ol};
  /* verilator lint_on UNUSEDSIGNAL */
  wire [SW-1:0] rc_s = s_sum_flat[ol32*SW+:SW];
  reg  [7:0] rc_bl;
  integer ri;
  always @* begin
    rc_bl = 8'd0;
    for (ri = 0; ri < SW; ri = ri + 1) if (rc_s[ri]) rc_bl = ri[7:0] + 8'd1;
  end
  wire [7:0] rc_k = rc_bl - 8'd13;
  /* verilator lint_off UNUSEDSIGNAL */
  // m <= 8192: only bits [13:0] are meaningful
  wire [SW:0] rc_m = ({1'b0, rc_s} + ({{SW{1'b0}}, 1'b1} << (rc_k - 8'd1))) >> rc_k;
  /* verilator lint_on UNUSEDSIGNAL */
  wire rc_carry = rc_m[13];
  wire rc_en = (state == ST_RC);
  wire [11:0] rc_addr = rc_carry ? 12'd0 : rc_m[11:0];
  wire [16:0] recip_data;
  tls_rom #(
      .W(17),
      .D(4096),
      .AW(12),
      .FILE({TABLE_DIR, "recip.hex"})
  ) u_recip (
      .clk (clk),
      .en  (rc_en),
      .addr(rc_addr),
      .data(recip_data)
  );
  reg [9:0] o_sh;  // -(re + 15) = 13 + k

  // O output lanes: chunk oi of head lane ol (values oi*O + j, j < O),
  // written as lanes of the line that holds them (a masked line write).
  reg o1_v;
  /* verilator lint_off UNUSEDSIGNAL */
  reg [AW-1:0] o1_addr;  // address of the chunk's first value (a multiple of O)
  /* verilator lint_on UNUSEDSIGNAL */
  wire [O*48-1:0] o_vals;
  /* verilator lint_off UNUSEDSIGNAL */
  wire [31:0] o_base = ol32 * HD + {{(32 - IW) {1'b0}}, oi} * O;
  /* verilator lint_on UNUSEDSIGNAL */
  wire signed [OPW-1:0] o_r = {{(OPW - 17) {1'b0}}, recip_data};
  genvar oj;
  generate
    for (oj = 0; oj < O; oj = oj + 1) begin : g_out
      /* verilator lint_off UNUSEDSIGNAL */
      wire [31:0] o_idx = o_base + oj;
      /* verilator lint_on UNUSEDSIGNAL */
      wire signed [ACW-1:0] o_acc = acc_flat[o_idx*ACW+:ACW];
      wire signed [OPW-1:0] o_a = {{18{o_acc[ACW-1]}}, o_acc};
      reg signed [OPW-1:0] o1_prod;
      always @(posedge clk) o1_prod <= o_a * o_r;  // |A| < 2^(ACW-1), R <= 2^16: exact
      tls_attn_shsat #(
          .PW(OPW)
      ) u_out (
          .p (o1_prod),
          .up(10'd0 - o_sh),
          .y (o_vals[oj*48+:48])
      );
    end
  endgenerate

  // the chunk placed in its line: lanes (o1_addr mod V) .. + O
  localparam [48*V-1:0] ZLINE = 0;
  wire [   V-1:0] o_mask;
  wire [48*V-1:0] o_line;
  wire [  AW-1:0] o_laddr;
  generate
    if (O == V) begin : g_oline_whole
      assign o_mask  = {V{1'b1}};
      assign o_line  = o_vals;
      assign o_laddr = o1_addr;
    end else begin : g_oline_part
      wire [LV-LO-1:0] o_part = o1_addr[LV-1:LO];
      assign o_mask  = {{(V - O) {1'b0}}, {O{1'b1}}} << (o_part * O);
      // (no replication of zeros: lines of V > 170 words are more than 8k bits)
      reg [48*V-1:0] o_ext;
      always @* begin
        o_ext = ZLINE;
        o_ext[O*48-1:0] = o_vals;
      end
      assign o_line  = o_ext << (o_part * (O * 48));
      assign o_laddr = {o1_addr[AW-1:LV], {LV{1'b0}}};
    end
  endgenerate

  always @(posedge clk) begin
    if (rst) begin
      o1_v <= 1'b0;
      w_en <= 1'b0;
      w_mask <= {V{1'b0}};
      w_addr <= {AW{1'b0}};
      w_data <= ZLINE;
    end else begin
      o1_v <= (state == ST_OUT);
      w_en <= o1_v;
      w_mask <= o1_v ? o_mask : {V{1'b0}};
      w_addr <= o1_v ? o_laddr : {AW{1'b0}};
      w_data <= o1_v ? o_line : ZLINE;
    end
    o1_addr <= dst_run + ({{(AW - IW) {1'b0}}, oi} << LO);
    if (rc_en) o_sh <= {2'b00, rc_k} + (rc_carry ? 10'd14 : 10'd13);
  end

  // ---------------------------------------------------------------- control
  always @(posedge clk) begin
    if (rst) begin
      state <= ST_IDLE;
      cv_start <= 1'b0;
      cv_src <= {AW{1'b0}};
      kvj <= {KW{1'b0}};
      k_run <= {AW{1'b0}};
      v_run <= {AW{1'b0}};
      cw_base <= {CAW{1'b0}};
      pw_lane <= {PW{1'b0}};
      hg <= {NPW{1'b0}};
      gp <= {GPW{1'b0}};
      ol <= {HPW{1'b0}};
      qj <= {HPW{1'b0}};
      q_run <= {AW{1'b0}};
      dst_run <= {AW{1'b0}};
      head_cbase <= {CAW{1'b0}};
      jlast <= {SAW{1'b0}};
      lo_lane <= {PW{1'b0}};
      hi_lane <= {PW{1'b0}};
      sc_j <= {SAW{1'b0}};
      sc_b <= {WBW{1'b0}};
      sc_addr <= {CAW{1'b0}};
      oi <= {IW{1'b0}};
      q_rdy <= 1'b0;
    end else begin
      cv_start <= 1'b0;
      if (q_all) q_rdy <= 1'b1;
      // chain the q conversions of a pass's head lanes
      if (q_last) begin
        if (qj == LAST_HP) begin
          qj <= {HPW{1'b0}};
        end else begin
          qj <= qj + {{(HPW - 1) {1'b0}}, 1'b1};
          cv_start <= 1'b1;
          cv_src <= q_run + HDA;
          q_run <= q_run + HDA;
        end
      end
      case (state)
        ST_IDLE:
        if (start) begin
          state <= ST_KV;
          cv_start <= 1'b1;
          cv_src <= cfg_k;
          kvj <= {KW{1'b0}};
          k_run <= cfg_k;
          v_run <= cfg_v;
          cw_base <= pos_bph32[CAW-1:0];
          pw_lane <= pos_p16[PW-1:0];
          hg <= {NPW{1'b0}};
          gp <= {GPW{1'b0}};
          ol <= {HPW{1'b0}};
          qj <= {HPW{1'b0}};
          q_run <= cfg_q;
          dst_run <= cfg_dst;
          head_cbase <= lo_bph32[CAW-1:0];
          jlast <= rows_m1[SAW-1:0];
          lo_lane <= lo_p16[PW-1:0];
          hi_lane <= pos_p16[PW-1:0];
        end
        ST_KV:
        if (cv_ovalid && cv_oblk == LAST_B) begin
          cv_start <= 1'b1;
          if (kvj == LAST_KJ) begin
            state  <= ST_Q;
            cv_src <= q_run;
          end else begin
            kvj <= kvj + {{(KW - 1) {1'b0}}, 1'b1};
            if (!kvj[0]) begin
              cv_src <= v_run;
            end else begin
              cv_src <= k_run + HDA;
              k_run <= k_run + HDA;
              v_run <= v_run + HDA;
              cw_base <= cw_base + CRBB;
            end
          end
        end
        ST_Q:
        if (q_rdy || q_all) begin
          state <= ST_SC;
          q_rdy <= 1'b0;
          sc_j <= {SAW{1'b0}};
          sc_b <= {WBW{1'b0}};
          sc_addr <= head_cbase;
        end
        ST_SC, ST_VS: begin
          sc_addr <= sc_addr + {{(CAW - 1) {1'b0}}, 1'b1};
          if (sc_lastb) begin
            sc_b <= {WBW{1'b0}};
            sc_j <= sc_j + {{(SAW - 1) {1'b0}}, 1'b1};
          end else begin
            sc_b <= sc_b + {{(WBW - 1) {1'b0}}, 1'b1};
          end
          if (sc_end) state <= (state == ST_SC) ? ST_SCD : ST_VSD;
        end
        ST_SCD:
        if (!(p1_v || p2_v || p3_v || p4_v)) begin
          state <= ST_VS;
          sc_j <= {SAW{1'b0}};
          sc_b <= {WBW{1'b0}};
          sc_addr <= head_cbase;
          if (hg != LAST_NP) begin
            cv_start <= 1'b1;
            cv_src <= q_run + HDA;
            q_run <= q_run + HDA;
          end
        end
        ST_VSD: if (!(e1_v || e2_v || e3_v || e4_v || e5_v)) state <= ST_RC;
        ST_RC: begin
          state <= ST_OUT;
          oi <= {IW{1'b0}};
        end
        ST_OUT: begin
          oi <= oi + {{(IW - 1) {1'b0}}, 1'b1};
          if (oi == LAST_I) state <= ST_OUTD;
        end
        ST_OUTD:
        if (!o1_v) begin
          dst_run <= dst_run + HDA;
          if (ol != LAST_HP) begin
            state <= ST_RC;
            ol <= ol + {{(HPW - 1) {1'b0}}, 1'b1};
          end else if (hg == LAST_NP) begin
            state <= ST_FIN;
          end else begin
            state <= ST_Q;
            ol <= {HPW{1'b0}};
            hg <= hg + {{(NPW - 1) {1'b0}}, 1'b1};
            if (gp == LAST_GP) begin
              gp <= {GPW{1'b0}};
              head_cbase <= head_cbase + CRBB;
            end else begin
              gp <= gp + {{(GPW - 1) {1'b0}}, 1'b1};
            end
          end
        end
        ST_FIN: state <= ST_IDLE;
        default: state <= ST_IDLE;
      endcase
    end
  end
endmodule
/* verilator lint_on WIDTHCONCAT */
