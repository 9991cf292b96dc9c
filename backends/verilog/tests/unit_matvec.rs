//! `tls_matvec` against `taalasc_numerics::linear_row`, bit for bit, and
//! its performance contract (rows stream with no bubbles).
//!
//! One Verilator build per `LANES` value; each build runs a program of
//! instructions back to back (a load instruction followed by instructions
//! that reuse the loaded input, as q/k/v do) over random W48 inputs,
//! random codes of 2..8 bits, random `SF16` scales and offsets (subnormal
//! to large, so that terms round right and saturate left), symmetric and
//! asymmetric rows, with and without bias. The whole final scratchpad is
//! compared with the expected image (outputs in place, every other word
//! untouched).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use taalasc_numerics::{
    block_term, linear_row, to_a8_vec, Sf16, WeightRow, A8_BLOCK, W_MAX, W_MIN,
};
use taalasc_verilog::perf::matvec_load_cycles;
use taalasc_verilog::tools::{rtl_lib, run, verilator_binary};

mod common;
use common::Rng;

fn clamp_w48(x: i64) -> i64 {
    x.clamp(W_MIN, W_MAX)
}

/// One block of 32 W48 inputs from one of several magnitude classes, so
/// that A8 exponents span the whole range (zero blocks, s = 0 blocks, the
/// `a8_shift` boundaries, values at saturation, round-half ties).
fn random_block(rng: &mut Rng, out: &mut [i64]) {
    match rng.below(8) {
        0 => out.fill(0),
        1 => {
            let m = rng.pick(&[3i64, 127, 128, 255]);
            for o in out.iter_mut() {
                *o = rng.range(-m, m);
            }
        }
        2 => {
            let sh = 16 + rng.below(48) as u32;
            for o in out.iter_mut() {
                *o = clamp_w48((rng.next_u64() as i64) >> sh);
            }
        }
        3 => {
            for o in out.iter_mut() {
                let small = rng.range(0, 1000);
                *o = match rng.below(6) {
                    0 => W_MAX,
                    1 => W_MIN,
                    2 => W_MAX - small,
                    3 => W_MIN + small,
                    4 => 0,
                    _ => clamp_w48((rng.next_u64() as i64) >> 16),
                };
            }
        }
        4 => {
            for o in out.iter_mut() {
                let sh = 16 + rng.below(48) as u32;
                *o = clamp_w48((rng.next_u64() as i64) >> sh);
            }
        }
        5 => {
            // Ties: multiples of a power of two.
            let t = rng.below(41) as u32;
            for o in out.iter_mut() {
                *o = clamp_w48(rng.range(-300, 300) << t);
            }
        }
        6 => {
            // The block maximum right at an a8_shift threshold
            // (m >= 127.5 * 2^k), the rest smaller.
            let k = rng.below(40) as u32;
            let base: i64 = if k == 0 { 128 } else { 255 << (k - 1) };
            let m = clamp_w48(base + rng.range(-1, 1));
            for o in out.iter_mut() {
                *o = if m > 0 { rng.range(-m, m) } else { 0 };
            }
            let i = rng.below(out.len() as u64) as usize;
            out[i] = if rng.below(2) == 0 { m } else { -m };
        }
        _ => {
            // Mostly zeros, one large value.
            out.fill(0);
            let i = rng.below(out.len() as u64) as usize;
            out[i] = clamp_w48((rng.next_u64() as i64) >> rng.range(16, 60));
        }
    }
}

fn random_vector(rng: &mut Rng, cols: usize) -> Vec<i64> {
    let mut x = vec![0i64; cols];
    for b in x.chunks_exact_mut(A8_BLOCK) {
        random_block(rng, b);
    }
    x
}

/// A random finite `SF16`: subnormal, tiny, large, typical or any exponent.
fn random_sf16(rng: &mut Rng) -> Sf16 {
    let sign = (rng.below(2) as u16) << 15;
    let e = match rng.below(8) {
        0 => 0,
        1 => 1 + rng.below(4),
        2 => 26 + rng.below(5),
        // Typical weight scales, 2^-10 .. 2^0.
        3..=5 => 5 + rng.below(11),
        _ => rng.below(31),
    } as u16;
    let f = match rng.below(12) {
        0 => 0,
        1 => 1023,
        _ => rng.below(1024) as u16,
    };
    Sf16(sign | (e << 10) | f)
}

struct Matrix {
    rows: usize,
    cols: usize,
    codes: Vec<i8>,
    code_bias: i32,
    group: usize,
    scales: Vec<Sf16>,
    offsets: Option<Vec<Sf16>>,
    has_bias: bool,
    /// The bias ROM contents (read only when `has_bias`).
    bias: Vec<i64>,
}

impl Matrix {
    fn groups(&self) -> usize {
        self.cols.div_ceil(self.group)
    }
}

fn random_matrix(rng: &mut Rng, rows: usize, cols: usize) -> Matrix {
    let b = rng.pick(&[2u32, 3, 4, 8]);
    let half = 1i32 << (b - 1);
    let asym = rng.below(2) == 1;
    let code_bias = if rng.below(2) == 1 { half } else { 0 };
    let unsigned = code_bias == 0 && asym && b <= 7 && rng.below(2) == 1;
    let codes: Vec<i8> = (0..rows * cols)
        .map(|_| {
            let q = if code_bias != 0 {
                rng.range(0, (1 << b) - 1) - code_bias as i64
            } else if unsigned {
                rng.range(0, (1 << b) - 1)
            } else {
                rng.range(-(half as i64), half as i64 - 1)
            };
            q as i8
        })
        .collect();
    let group = match rng.below(4) {
        0 => 32,
        1 => 64,
        2 => 128,
        _ => cols,
    };
    let ng = cols.div_ceil(group);
    let scales = (0..rows * ng).map(|_| random_sf16(rng)).collect();
    let offsets = asym.then(|| (0..rows * ng).map(|_| random_sf16(rng)).collect());
    let has_bias = rng.below(3) != 0;
    let bias = (0..rows)
        .map(|_| match rng.below(6) {
            0 => W_MAX,
            1 => W_MIN,
            2 => 0,
            3 => rng.range(-1 << 30, 1 << 30),
            _ => clamp_w48((rng.next_u64() as i64) >> 16),
        })
        .collect();
    Matrix {
        rows,
        cols,
        codes,
        code_bias,
        group,
        scales,
        offsets,
        has_bias,
        bias,
    }
}

/// How often the interesting arithmetic cases occur (the test requires
/// each of them).
#[derive(Default, Debug)]
struct Coverage {
    right_shift: usize,
    left_exact: usize,
    left_saturated: usize,
    out_saturated: usize,
    zero_blocks: usize,
}

/// The expected outputs, by `linear_row`.
fn expected(x: &[i64], m: &Matrix, cov: &mut Coverage) -> Vec<i64> {
    let a8 = to_a8_vec(x, 24).unwrap();
    let sums = a8.block_sums();
    cov.zero_blocks += a8
        .mant
        .chunks_exact(A8_BLOCK)
        .filter(|b| b.iter().all(|&v| v == 0))
        .count();
    let ng = m.groups();
    (0..m.rows)
        .map(|r| {
            let codes = &m.codes[r * m.cols..(r + 1) * m.cols];
            let scales = &m.scales[r * ng..(r + 1) * ng];
            let row = WeightRow {
                codes,
                code_bias: m.code_bias,
                group: m.group,
                scales,
                offsets: m.offsets.as_ref().map(|o| &o[r * ng..(r + 1) * ng]),
            };
            let bias = if m.has_bias { m.bias[r] } else { 0 };
            // Coverage of the block terms.
            for (b, qa) in codes.chunks_exact(A8_BLOCK).enumerate() {
                let xa = &a8.mant[b * A8_BLOCK..(b + 1) * A8_BLOCK];
                let p: i64 = xa
                    .iter()
                    .zip(qa)
                    .map(|(&a, &q)| a as i64 * (q as i64 + m.code_bias as i64))
                    .sum();
                let (dm, de) = scales[b * A8_BLOCK / m.group].mant_exp();
                let e_b = a8.exp[b] as i32;
                if dm as i64 * p != 0 {
                    let t = block_term(dm, de, p, e_b);
                    if de + e_b + 24 < 0 {
                        cov.right_shift += 1;
                    } else if t == W_MAX || t == W_MIN {
                        cov.left_saturated += 1;
                    } else {
                        cov.left_exact += 1;
                    }
                }
            }
            let y = linear_row(&a8.mant, &a8.exp, &sums, &row, bias);
            if y == W_MAX || y == W_MIN {
                cov.out_saturated += 1;
            }
            y
        })
        .collect()
}

/// A wide ROM word, little-endian 64-bit limbs.
struct Word(Vec<u64>);

impl Word {
    fn new(bits: usize) -> Word {
        Word(vec![0; bits.div_ceil(64)])
    }

    fn set(&mut self, pos: usize, width: usize, value: u64) {
        for i in 0..width {
            if (value >> i) & 1 == 1 {
                let p = pos + i;
                self.0[p / 64] |= 1 << (p % 64);
            }
        }
    }

    fn hex(&self, bits: usize) -> String {
        let digits = bits.div_ceil(4);
        (0..digits)
            .rev()
            .map(|d| {
                let p = d * 4;
                let nib = (self.0[p / 64] >> (p % 64)) & 0xf;
                char::from_digit(nib as u32, 16).unwrap()
            })
            .collect()
    }
}

fn nb_of(lanes: usize) -> usize {
    (lanes / 32).max(1)
}

fn word_bits(lanes: usize) -> usize {
    lanes * 8 + nb_of(lanes) * 36
}

fn ch_of(cols: usize, lanes: usize) -> usize {
    cols.div_ceil(lanes)
}

/// The weight ROM words of a matrix (UNITS.md layout): word `g·CH + c`
/// holds chunk `c` of rows `g·R .. g·R + R` (slice `j` at bit `j·bits`,
/// zero past the last row).
fn rom_words(m: &Matrix, lanes: usize, rpc: usize) -> Vec<Word> {
    let ch = ch_of(m.cols, lanes);
    let bits = word_bits(lanes);
    let mut out = Vec::new();
    for g in 0..m.rows.div_ceil(rpc) {
        for c in 0..ch {
            let mut w = Word::new(bits * rpc);
            for j in 0..rpc {
                let r = g * rpc + j;
                if r < m.rows {
                    row_slice(&mut w, j * bits, m, r, c, lanes);
                }
            }
            out.push(w);
        }
    }
    out
}

/// Chunk `c` of row `r` (a one-row word) at bit `at` of `w`.
fn row_slice(w: &mut Word, at: usize, m: &Matrix, r: usize, c: usize, lanes: usize) {
    let nb = nb_of(lanes);
    let ng = m.groups();
    let blocks = m.cols / A8_BLOCK;
    for i in 0..lanes {
        let col = c * lanes + i;
        if col < m.cols {
            w.set(at + 8 * i, 8, m.codes[r * m.cols + col] as u8 as u64);
        }
    }
    for k in 0..nb {
        let b = if lanes >= 32 {
            c * nb + k
        } else {
            c * lanes / 32
        };
        if b >= blocks {
            continue;
        }
        let g = b * A8_BLOCK / m.group;
        let (dm, de) = m.scales[r * ng + g].mant_exp();
        let (mm, me) = match &m.offsets {
            Some(o) => o[r * ng + g].mant_exp(),
            None => (0, 0),
        };
        let field = ((dm as u64 & 0xfff) << 24)
            | ((de as u64 & 0x3f) << 18)
            | ((mm as u64 & 0xfff) << 6)
            | (me as u64 & 0x3f);
        w.set(at + lanes * 8 + 36 * k, 36, field);
    }
}

struct Instr {
    src: usize,
    dst: usize,
    load: bool,
    wbase: usize,
    bbase: usize,
    m: Matrix,
    /// Index of the input vector.
    x: usize,
}

fn w48_hex(v: i64) -> String {
    format!("{:012x}", (v as u64) & ((1 << 48) - 1))
}

/// Values of a `$writememh` file (comments and address lines skipped).
fn read_mem(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| l.split("//").next().unwrap().trim())
        .filter(|l| !l.is_empty() && !l.starts_with('@'))
        .flat_map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .collect()
}

/// Scratchpad address bits (words `1 << AW`); lines of 64 words or more
/// need [`AW_WIDE`] to hold the aligned vectors.
const AW: usize = 12;
const AW_WIDE: usize = 14;
const XB: usize = 18;

/// One build of the unit: `LANES`, `ROWS` (rows per cycle), the input
/// buffer's blocks `XB` (the largest `cols` is `XB * 32`) and the
/// scratchpad line `V` (words per line read; a multiple of `ROWS`).
#[derive(Clone, Copy)]
struct Cfg {
    lanes: usize,
    rows: usize,
    xb: usize,
    v: usize,
}

impl Cfg {
    fn name(&self) -> String {
        format!(
            "LANES {} ROWS {} XB {} V {}",
            self.lanes, self.rows, self.xb, self.v
        )
    }
}

/// Column counts of the input vectors for one `LANES` value (every one a
/// multiple of 32, at most `XB * 32`): the edge cases (one block, a half
/// empty last word when `LANES = 64`, the largest buffer), then random.
fn cols_list(rng: &mut Rng, lanes: usize, xb: usize) -> Vec<usize> {
    let mut v: Vec<usize> = [32, 96, 64, xb * 32, 160]
        .into_iter()
        .filter(|&c| c <= xb * 32)
        .collect();
    let extra = if lanes < 4 { 2 } else { 5 };
    for _ in 0..extra {
        v.push(32 * rng.range(1, xb as i64) as usize);
    }
    v
}

/// Builds and runs one configuration; returns a summary line.
fn run_cfg(cfg: Cfg, seed: u64, cov: &mut Coverage) -> String {
    let Cfg {
        lanes,
        rows: rpc,
        xb,
        v,
    } = cfg;
    let name = cfg.name();
    let mut rng = Rng(seed);
    let aw = if v >= 64 { AW_WIDE } else { AW };
    let spad_words = 1usize << aw;
    // Random background: stray writes or missed outputs show up.
    let mut spad: Vec<i64> = (0..spad_words)
        .map(|_| clamp_w48((rng.next_u64() as i64) >> 16))
        .collect();
    let mut xs: Vec<Vec<i64>> = Vec::new();
    let mut prog: Vec<Instr> = Vec::new();
    let mut next_free = 0usize;
    let (mut wbase, mut bbase) = (0usize, 0usize);
    for (gi, cols) in cols_list(&mut rng, lanes, xb).into_iter().enumerate() {
        let x = random_vector(&mut rng, cols);
        // Line reads: the input starts on a line (as the plan places it).
        let src = next_free.next_multiple_of(v);
        next_free = src + cols;
        spad[src..src + cols].copy_from_slice(&x);
        xs.push(x);
        // The load instruction, then two that reuse the buffer.
        for j in 0..3 {
            let ch = ch_of(cols, lanes);
            // Mostly short rows; one group streams many single-word rows.
            let rows = if ch == 1 && j == 1 {
                24
            } else {
                rng.range(1, 9) as usize
            };
            let m = random_matrix(&mut rng, rows, cols);
            // Line writes: the destination is aligned to the line (ROWS
            // words); the words past the last row stay untouched.
            let dst = next_free.next_multiple_of(rpc);
            next_free = dst + rows.next_multiple_of(rpc);
            prog.push(Instr {
                src,
                dst,
                load: j == 0,
                wbase,
                bbase,
                m,
                x: gi,
            });
            wbase += rows.div_ceil(rpc) * ch;
            bbase += rows.div_ceil(rpc);
        }
    }
    assert!(next_free <= spad_words, "scratchpad too small");
    let spad_in = spad.clone();
    for ins in &prog {
        let y = expected(&xs[ins.x], &ins.m, cov);
        spad[ins.dst..ins.dst + ins.m.rows].copy_from_slice(&y);
    }

    let dir = tempfile::tempdir().unwrap();
    // TAALASC_KEEP_TB=1 keeps the testbench directory (for debugging).
    let d = if std::env::var_os("TAALASC_KEEP_TB").is_some() {
        let d = dir.keep();
        eprintln!("{name}: testbench in {}", d.display());
        d
    } else {
        dir.path().to_path_buf()
    };
    let d = d.as_path();
    let bits = word_bits(lanes);
    let mut w_hex = String::new();
    let mut b_hex = String::new();
    let mut p_hex = String::new();
    for ins in &prog {
        for w in rom_words(&ins.m, lanes, rpc) {
            writeln!(w_hex, "{}", w.hex(bits * rpc)).unwrap();
        }
        // One bias word per row group: row g·R + j in lane j.
        for g in ins.m.bias.chunks(rpc) {
            let line: String = (0..rpc)
                .rev()
                .map(|j| w48_hex(g.get(j).copied().unwrap_or(0)))
                .collect();
            writeln!(b_hex, "{line}").unwrap();
        }
        let flags = ins.load as u64
            | (ins.m.offsets.is_some() as u64) << 1
            | (ins.m.has_bias as u64) << 2
            | (ins.m.code_bias as u64) << 8;
        let fields = [
            ins.src as u64,
            ins.dst as u64,
            ins.m.rows as u64,
            ins.m.cols as u64,
            flags,
            ins.wbase as u64,
            ins.bbase as u64,
        ];
        let line: String = fields.iter().rev().map(|f| format!("{f:08x}")).collect();
        writeln!(p_hex, "{line}").unwrap();
    }
    let spad_hex: String = spad_in.iter().map(|&v| w48_hex(v) + "\n").collect();
    std::fs::write(d.join("w.hex"), &w_hex).unwrap();
    std::fs::write(d.join("b.hex"), &b_hex).unwrap();
    std::fs::write(d.join("prog.hex"), &p_hex).unwrap();
    std::fs::write(d.join("spad.hex"), spad_hex).unwrap();

    let clog2 = |n: usize| (usize::BITS - (n.max(2) - 1).leading_zeros()) as usize;
    let top = format!("top_matvec_l{lanes}_r{rpc}_v{v}");
    let wrapper = format!(
        "module {top};\n  tb_matvec #(.LANES({lanes}), .ROWS({rpc}), .AW({aw}), .XB({xb}), .WAW({waw}), \
         .WD({wd}), .BAW({baw}), .BD({bd}), .NI({ni}), .V({v})) tb ();\nendmodule\n",
        waw = clog2(wbase),
        wd = wbase,
        baw = clog2(bbase),
        bd = bbase,
        ni = prog.len()
    );
    std::fs::write(d.join("top.v"), wrapper).unwrap();
    let tb = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tb/tb_matvec.v");
    let sources: Vec<PathBuf> = vec![
        rtl_lib("tls_macros.v"),
        rtl_lib("tls_matvec.v"),
        tb,
        d.join("top.v"),
    ];
    let t0 = std::time::Instant::now();
    let bin = verilator_binary(d, &top, &sources).unwrap_or_else(|e| panic!("{e}"));
    let t_build = t0.elapsed();
    let t1 = std::time::Instant::now();
    run(d, bin.to_str().unwrap(), &[]).unwrap_or_else(|e| panic!("{e}"));
    let t_sim = t1.elapsed();

    // Every scratchpad word, bit for bit.
    let got = read_mem(&d.join("spad_out.hex"));
    assert_eq!(got.len(), spad_words, "{name}: spad_out.hex length");
    let mut bad = Vec::new();
    for (a, (g, &want)) in got.iter().zip(&spad).enumerate() {
        let g = u64::from_str_radix(g, 16).unwrap();
        if g != (want as u64) & ((1 << 48) - 1) {
            bad.push(format!("spad[{a}] = {g:012x}, want {}", w48_hex(want)));
        }
    }
    if !bad.is_empty() {
        let owner = |a: usize| {
            prog.iter()
                .position(|i| (i.dst..i.dst + i.m.rows).contains(&a))
                .map_or("no instruction".to_string(), |p| format!("instruction {p}"))
        };
        let first: usize = bad[0]
            .trim_start_matches("spad[")
            .split(']')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        panic!(
            "{name}: {} wrong words (first in {}):\n{}",
            bad.len(),
            owner(first),
            bad[..bad.len().min(20)].join("\n")
        );
    }

    // Cycle counts.
    let stat = read_mem(&d.join("stat.hex"));
    assert_eq!(stat.len(), prog.len() + 1, "stat.hex length");
    let field = |s: &str, i: usize| u64::from_str_radix(&s[8 * i..8 * i + 8], 16).unwrap();
    let last = format!("{:0>32}", stat[prog.len()]);
    assert_eq!(
        field(&last, 0),
        0,
        "{name}: idle unit drove outputs, or a ROM address was not wr_grp*CH + wr_chunk"
    );
    let mut lat = None;
    let mut load_extra = None;
    for (i, ins) in prog.iter().enumerate() {
        let s = format!("{:0>32}", stat[i]);
        let (busy, load, prod, mac) = (field(&s, 0), field(&s, 1), field(&s, 2), field(&s, 3));
        let words = (ins.m.rows.div_ceil(rpc) * ch_of(ins.m.cols, lanes)) as u64;
        assert_eq!(mac, words, "{name} instr {i}: mac_active cycles");
        assert_eq!(busy, load + prod, "{name} instr {i}: busy cycles");
        assert!(
            prod <= words + 16,
            "{name} instr {i}: product phase {prod} cycles for {words} words"
        );
        let l = prod - words;
        assert_eq!(*lat.get_or_insert(l), l, "{name}: latency not constant");
        if ins.load {
            let e = load as i64 - ins.m.cols.div_ceil(v) as i64;
            assert_eq!(
                *load_extra.get_or_insert(e),
                e,
                "load phase not ceil(cols/V) + const"
            );
            assert!(
                load <= 2 * ins.m.cols as u64 + 64,
                "load phase {load} cycles"
            );
            // The load reads one line per cycle and port: exactly the
            // formula of the cycle model (`perf::instr_cycles`).
            assert_eq!(
                load,
                matvec_load_cycles(ins.m.cols as u64, v as u64),
                "{name} instr {i}: load phase cycles (cols {})",
                ins.m.cols
            );
        } else {
            assert_eq!(load, 0, "{name} instr {i}: load phase without cfg_load");
        }
    }
    format!(
        "{name}: {} instructions, {} outputs exact; product phase = ceil(rows/ROWS)*CH + {}, \
         load phase = ceil(cols/V) + {} (V = {v}); build {:.1}s, sim {:.2}s, {} cycles",
        prog.len(),
        prog.iter().map(|i| i.m.rows).sum::<usize>(),
        lat.unwrap(),
        load_extra.unwrap(),
        t_build.as_secs_f64(),
        t_sim.as_secs_f64(),
        field(&last, 1)
    )
}

/// Runs `run_cfg` for each configuration, one build at a time, and
/// requires every arithmetic case to have occurred.
fn run_all(cfgs: &[Cfg], seed: u64) {
    let mut cov = Coverage::default();
    for (i, &c) in cfgs.iter().enumerate() {
        let line = run_cfg(c, seed ^ (i as u64 + 1), &mut cov);
        println!("{line}");
    }
    println!("{cov:?}");
    assert!(cov.right_shift > 0, "no right-shifted block terms");
    assert!(cov.left_exact > 0, "no exact left-shifted block terms");
    assert!(cov.left_saturated > 0, "no saturated block terms");
    assert!(cov.out_saturated > 0, "no saturated outputs");
    assert!(cov.zero_blocks > 0, "no zero blocks");
}

fn cfg(lanes: usize, rows: usize, xb: usize, v: usize) -> Cfg {
    Cfg { lanes, rows, xb, v }
}

/// Also the load at scratchpad lines of V = 8, 64, 1 and 4 words (one line
/// per cycle and read port): V above `LANES` (a banked input buffer: 2
/// banks at `LANES` 4; at `LANES` 16, 4 banks of mantissas and 2 of block
/// exponents), V = 64 (lines of two blocks, the last line half past `cols`
/// when `cols` is 32, 96, 160, ...), V = 1, and V below `LANES` (blocks
/// spanning 8 lines). Outputs bit for bit as `linear_row` over
/// `to_a8_vec`; load cycles exactly `perf::matvec_load_cycles`.
#[test]
fn matvec_bit_exact_and_streaming() {
    // Sequential on purpose: one Verilator build at a time.
    run_all(
        &[
            cfg(4, 1, XB, 8),
            cfg(16, 1, XB, 64),
            cfg(32, 1, XB, 1),
            cfg(64, 1, XB, 4),
        ],
        0x9E37_79B9_7F4A_7C15,
    );
}

/// The extreme lane counts (one MAC; four blocks per word), about 40 s:
/// every lane count `--lanes` accepts at its ends is tested (at `LANES`
/// 128 with lines of V = 32, one block a line).
#[test]
fn matvec_bit_exact_lanes_1_and_128() {
    run_all(
        &[cfg(1, 1, XB, 1), cfg(128, 1, XB, 32)],
        0x2545_F491_4F6C_DD1D,
    );
}

/// Several rows per cycle (`ROWS` 2, 4 and 256), row counts that are not
/// multiples of `ROWS` (the last group's missing rows must not be
/// written: the scratchpad's background would show it), and whole rows
/// per word (`LANES` 64 with `cols` <= 64: one word per row).
#[test]
fn matvec_bit_exact_rows_per_cycle_and_whole_rows() {
    run_all(
        &[
            Cfg {
                lanes: 16,
                rows: 4,
                xb: 10,
                v: 4,
            },
            Cfg {
                lanes: 64,
                rows: 2,
                xb: 2,
                v: 2,
            },
            // The widest row group (the 8B plan's R): one partial group.
            Cfg {
                lanes: 4,
                rows: 256,
                xb: 16,
                v: 256,
            },
        ],
        0x1234_5678_9ABC_DEF1,
    );
}

#[test]
fn matvec_lint_clean() {
    let dir = tempfile::tempdir().unwrap();
    for g in [
        ["-GLANES=1", "-GXB=4", "-GAW=8", "-GWAW=12"],
        ["-GLANES=4", "-GXB=18", "-GAW=12", "-GWAW=10"],
        ["-GLANES=32", "-GXB=64", "-GAW=16", "-GWAW=16"],
        ["-GLANES=64", "-GXB=3", "-GAW=10", "-GWAW=8"],
        ["-GLANES=128", "-GXB=48", "-GAW=14", "-GWAW=14"],
        ["-GLANES=4", "-GXB=18", "-GAW=12", "-GWAW=10 -GROWS=4"],
        ["-GLANES=512", "-GXB=16", "-GAW=12", "-GWAW=10 -GROWS=2"],
        ["-GLANES=16", "-GXB=18", "-GAW=12", "-GWAW=10 -GV=64"],
        ["-GLANES=128", "-GXB=48", "-GAW=14", "-GWAW=14 -GV=64"],
        ["-GLANES=4", "-GXB=18", "-GAW=12", "-GWAW=10 -GROWS=2 -GV=8"],
        ["-GLANES=64", "-GXB=3", "-GAW=10", "-GWAW=8 -GROWS=64"],
        ["-GLANES=8", "-GXB=16", "-GAW=12", "-GWAW=8 -GROWS=256"],
    ] {
        let mut args: Vec<String> = [
            "--lint-only",
            "-Wall",
            "-Wno-DECLFILENAME",
            "--top-module",
            "tls_matvec",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(
            g.iter()
                .flat_map(|s| s.split_whitespace())
                .map(str::to_string),
        );
        args.push(rtl_lib("tls_matvec.v").display().to_string());
        args.push(rtl_lib("tls_macros.v").display().to_string());
        let out = run(dir.path(), "verilator", &args).unwrap_or_else(|e| panic!("lint {g:?}: {e}"));
        assert!(out.trim().is_empty(), "lint {g:?}: {out}");
    }
}
