//! Bit-exact tests of the hand-written units `tls_norm`, `tls_elem`,
//! `tls_rope` and `tls_embed` against `taalasc_numerics`.
//!
//! One Verilator build of `tests/tb/tb_misc.v` runs a program of
//! instructions over a shared scratchpad; the same program is applied to a
//! Rust model of the scratchpad, and every word is compared. The testbench
//! also checks the port protocol (idle outputs zero, `done` inside `busy`,
//! one unit busy at a time) and reports each instruction's start-to-done
//! cycles, which are checked against the formulas in the RTL headers.

use std::path::Path;
use std::process::Command;

use taalasc_numerics::{self as nx, NormConsts, RopeTable, Sf16, W_MAX, W_MIN};
use taalasc_verilog::{tables, tools};

const SD: usize = 32768; // scratchpad words (AW = 15)
const GD: usize = 16384; // gain / bias ROM entries
const TD: usize = 16384; // RoPE table entries
const W16_D: usize = 8192;
const W64_D: usize = 4096;
const INS_BITS: usize = 288;
const MASK48: u64 = (1 << 48) - 1;

mod common;
use common::Rng;

/// The value kinds the unit tests draw.
trait Draw {
    fn r32(&mut self) -> i32;
    fn w48(&mut self) -> i64;
    fn around(&mut self, lo: i64, step_bits: u32) -> i64;
    fn sf16(&mut self) -> Sf16;
}

impl Draw for Rng {
    /// R32 values: extremes, small values and every magnitude.
    fn r32(&mut self) -> i32 {
        match self.below(12) {
            0 => self.pick(&[i32::MIN, i32::MAX, 0, 1, -1, i32::MIN + 1, i32::MAX - 1]),
            1 => self.below(7) as i32 - 3,
            _ => (self.next_u64() as i32) >> self.below(32),
        }
    }
    /// W48 values: extremes and every magnitude.
    fn w48(&mut self) -> i64 {
        match self.below(10) {
            0 => self.pick(&[
                W_MIN,
                W_MAX,
                0,
                1,
                -1,
                W_MIN + 1,
                W_MAX - 1,
                1 << 24,
                -(1 << 24),
            ]),
            _ => (self.next_u64() as i64) >> (16 + self.below(48)),
        }
    }
    /// W48 values around a table range `[-lo, lo)` (real), with its edges.
    fn around(&mut self, lo: i64, step_bits: u32) -> i64 {
        let e = lo << 24;
        match self.below(8) {
            0 => self.pick(&[
                -e - 1,
                -e,
                -e + 1,
                e - 1,
                e,
                e + 1,
                0,
                -1,
                1,
                W_MIN,
                W_MAX,
                e - (1 << step_bits),
                -e + (1 << step_bits),
                (1 << step_bits) - 1,
            ]),
            1 => ((self.below(2 * lo as u64 * 128) as i64) - lo * 128) << (step_bits - 7),
            7 => self.w48(),
            _ => (self.below(2 * (e + (2 << 24)) as u64) as i64) - e - (2 << 24),
        }
    }
    /// Any finite SF16, biased towards realistic magnitudes.
    fn sf16(&mut self) -> Sf16 {
        loop {
            let bits = if self.below(4) == 0 {
                self.next_u64() as u16
            } else {
                (self.below(0x2c00) as u16) | ((self.next_u64() as u16) & 0x8000)
            };
            if (bits >> 10) & 0x1f != 31 {
                return Sf16(bits);
            }
        }
    }
}

fn sext48(w: u64) -> i64 {
    ((w << 16) as i64) >> 16
}

fn w48(x: i64) -> u64 {
    x as u64 & MASK48
}

fn r32_of(w: u64) -> i32 {
    w as u32 as i32
}

fn set_bits(v: &mut [u64], pos: usize, width: usize, val: u64) {
    for k in 0..width {
        if (val >> k) & 1 == 1 {
            v[(pos + k) / 64] |= 1 << ((pos + k) % 64);
        }
    }
}

fn bits_hex(v: &[u64], nbits: usize) -> String {
    let digits = nbits.div_ceil(4);
    (0..digits)
        .rev()
        .map(|d| {
            let nib = (v[4 * d / 64] >> (4 * d % 64)) & 0xf;
            char::from_digit(nib as u32, 16).unwrap()
        })
        .collect()
}

fn hex_file(words: impl IntoIterator<Item = u64>, digits: usize) -> String {
    let mut s = String::new();
    for w in words {
        s.push_str(&format!("{w:0digits$x}\n"));
    }
    s
}

/// A quantized table as the reference holds it (`row_of`).
struct QTable {
    rows: usize,
    cols: usize,
    group: usize,
    code_bias: i32,
    codes: Vec<i8>,
    scales: Vec<Sf16>,
    offsets: Option<Vec<Sf16>>,
}

impl QTable {
    fn random(
        rng: &mut Rng,
        rows: usize,
        cols: usize,
        group: usize,
        bits: u32,
        asym: bool,
    ) -> Self {
        let gpr = cols.div_ceil(group);
        let lo = -(1i32 << (bits - 1));
        let codes = (0..rows * cols)
            .map(|_| match rng.below(8) {
                0 => lo as i8,
                1 => (-lo - 1) as i8,
                _ => (lo + rng.below(1 << bits) as i32) as i8,
            })
            .collect();
        // Extreme scales: the largest halves saturate 8-bit codes (up = 29),
        // the smallest give single-LSB terms.
        let scale = |rng: &mut Rng| match rng.below(4) {
            0 => Sf16(rng.pick(&[0x7bff, 0xfbff, 0x7800, 0xf800, 0x0001, 0x8001, 0, 0x3c00])),
            _ => rng.sf16(),
        };
        let scales = (0..rows * gpr).map(|_| scale(rng)).collect();
        let offsets = asym.then(|| (0..rows * gpr).map(|_| scale(rng)).collect());
        QTable {
            rows,
            cols,
            group,
            code_bias: if asym { 1 << (bits - 1) } else { 0 },
            codes,
            scales,
            offsets,
        }
    }

    /// `table_value` of backends/reference/src/exec.rs.
    fn value(&self, r: usize, i: usize) -> i64 {
        let gpr = self.cols.div_ceil(self.group);
        let g = r * gpr + i / self.group;
        let code = self.codes[r * self.cols + i] as i64 + self.code_bias as i64;
        let (dm, de) = self.scales[g].mant_exp();
        let mut w = nx::block_term(dm, de, code, 0);
        if let Some(off) = &self.offsets {
            let (mm, me) = off[g].mant_exp();
            w += nx::block_term(mm, me, 1, 0);
        }
        nx::sat_w48(w as i128)
    }

    /// ROM words in the tls_matvec layout for `lanes`, as bit vectors.
    fn rom_words(&self, lanes: usize) -> Vec<Vec<u64>> {
        let nb = (lanes / 32).max(1);
        let width = lanes * 8 + nb * 36;
        let ch = self.cols.div_ceil(lanes);
        let gpr = self.cols.div_ceil(self.group);
        let mut out = Vec::new();
        for r in 0..self.rows {
            for c in 0..ch {
                let mut w = vec![0u64; width.div_ceil(64)];
                for l in 0..lanes {
                    let col = c * lanes + l;
                    if col < self.cols {
                        set_bits(
                            &mut w,
                            8 * l,
                            8,
                            self.codes[r * self.cols + col] as u8 as u64,
                        );
                    }
                }
                for k in 0..nb {
                    let block = if lanes >= 32 {
                        c * lanes / 32 + k
                    } else {
                        c * lanes / 32
                    };
                    if block * 32 >= self.cols {
                        continue;
                    }
                    let g = r * gpr + block * 32 / self.group;
                    let (dm, de) = self.scales[g].mant_exp();
                    let (mm, me) = self.offsets.as_ref().map_or((0, 0), |o| o[g].mant_exp());
                    let f = ((dm as u64 & 0xfff) << 24)
                        | ((de as u64 & 0x3f) << 18)
                        | ((mm as u64 & 0xfff) << 6)
                        | (me as u64 & 0x3f);
                    set_bits(&mut w, lanes * 8 + 36 * k, 36, f);
                }
                out.push(w);
            }
        }
        out
    }
}

enum Ins {
    Norm {
        src: usize,
        dst: usize,
        n: usize,
        eps_fixed: i64,
        layer: bool,
        base: usize,
    },
    Elem {
        op: u8,
        a: usize,
        b: usize,
        dst: usize,
        n: usize,
    },
    Rope {
        src: usize,
        heads: usize,
        hd: usize,
        rot: usize,
        pos: usize,
        base: usize,
        table: RopeTable,
    },
    Embed {
        lanes: usize,
        dst: usize,
        row: usize,
        add: bool,
        base: usize,
        table: QTable,
    },
}

impl Ins {
    /// The testbench's 288-bit instruction word.
    fn encode(&self) -> Vec<u64> {
        let mut v = vec![0u64; 5];
        let mut f = |pos: usize, width: usize, val: u64| set_bits(&mut v, pos, width, val);
        match self {
            Ins::Norm {
                src,
                dst,
                n,
                eps_fixed,
                layer,
                base,
            } => {
                f(0, 4, 0);
                f(4, 16, *src as u64);
                f(20, 16, *dst as u64);
                f(68, 20, *n as u64);
                f(
                    88,
                    41,
                    if *n > 0 {
                        nx::div_n_const(*n) as u64
                    } else {
                        0
                    },
                );
                f(129, 48, *eps_fixed as u64);
                f(177, 1, *layer as u64);
                f(259, 16, *base as u64);
            }
            Ins::Elem { op, a, b, dst, n } => {
                f(0, 4, 1);
                f(20, 16, *dst as u64);
                f(36, 16, *a as u64);
                f(52, 16, *b as u64);
                f(68, 20, *n as u64);
                f(178, 3, *op as u64);
            }
            Ins::Rope {
                src,
                heads,
                hd,
                rot,
                pos,
                base,
                ..
            } => {
                f(0, 4, 2);
                f(4, 16, *src as u64);
                f(181, 8, *heads as u64);
                f(189, 10, *hd as u64);
                f(199, 10, *rot as u64);
                f(209, 16, *pos as u64);
                f(259, 16, *base as u64);
            }
            Ins::Embed {
                lanes,
                dst,
                row,
                add,
                base,
                table,
            } => {
                f(0, 4, if *lanes == 16 { 3 } else { 4 });
                f(20, 16, *dst as u64);
                f(68, 20, table.cols as u64);
                f(225, 24, *row as u64);
                f(249, 1, *add as u64);
                f(250, 1, table.offsets.is_some() as u64);
                f(251, 8, table.code_bias as u64);
                f(259, 16, *base as u64);
            }
        }
        v
    }

    /// Start-to-done cycles, as documented at the top of each unit.
    fn cycles(&self) -> u64 {
        match self {
            Ins::Norm { n: 0, .. } => 1,
            Ins::Norm { n, layer, .. } => {
                let n = *n as u64;
                if *layer {
                    3 * n + 99
                } else {
                    2 * n + 54
                }
            }
            Ins::Elem { n: 0, .. } => 1,
            Ins::Elem { op, n, .. } => {
                let n = *n as u64;
                if *op == 3 || *op == 4 {
                    2 * n + 5
                } else {
                    n + 4
                }
            }
            Ins::Rope { heads, rot, .. } => {
                let p = (*heads * (*rot / 2)) as u64;
                if p == 0 {
                    1
                } else {
                    2 * p + 6
                }
            }
            // Steps of E = min(V, LANES) elements, one line write each.
            Ins::Embed { table, lanes, .. } => {
                if table.cols == 0 {
                    1
                } else {
                    table.cols.div_ceil(EMBED_V.min(*lanes)) as u64 + 6
                }
            }
        }
    }

    fn name(&self) -> String {
        match self {
            Ins::Norm { n, layer, .. } => format!("{} n={n}", if *layer { "layer" } else { "rms" }),
            Ins::Elem { op, n, .. } => format!("elem op={op} n={n}"),
            Ins::Rope {
                heads,
                hd,
                rot,
                pos,
                ..
            } => format!("rope heads={heads} hd={hd} rot={rot} pos={pos}"),
            Ins::Embed {
                lanes, table, add, ..
            } => format!(
                "embed lanes={lanes} cols={} asym={} add={add}",
                table.cols,
                table.offsets.is_some()
            ),
        }
    }
}

/// ROM images and the scratchpad, shared by the program and the model.
struct Mem {
    spad: Vec<u64>,
    gain: Vec<i32>,
    bias: Vec<i32>,
    rope: Vec<u32>,
    w16: Vec<Vec<u64>>,
    w64: Vec<Vec<u64>>,
}

/// The Rust model of one instruction on the scratchpad.
fn apply(ins: &Ins, m: &mut Mem) {
    match ins {
        Ins::Norm {
            src,
            dst,
            n,
            eps_fixed,
            layer,
            base,
        } => {
            let n = *n;
            if n == 0 {
                return;
            }
            let r: Vec<i32> = (0..n).map(|i| r32_of(m.spad[src + i])).collect();
            let g = &m.gain[*base..base + n];
            let b = &m.bias[*base..base + n];
            let c = NormConsts {
                n,
                m_n: nx::div_n_const(n),
                eps_fixed: *eps_fixed,
            };
            let mut out = vec![0i64; n];
            if *layer {
                nx::layer_norm(&r, g, Some(b), &c, &mut out);
            } else {
                nx::rms_norm(&r, g, &c, &mut out);
            }
            for (i, &y) in out.iter().enumerate() {
                m.spad[dst + i] = w48(y);
            }
        }
        Ins::Elem { op, a, b, dst, n } => {
            for i in 0..*n {
                let (x, y) = (sext48(m.spad[a + i]), sext48(m.spad[b + i]));
                let z = match op {
                    0 => nx::residual_add(x as i32, y) as i64,
                    1 => nx::add_w48(x, y),
                    2 => nx::mul_w48(x, y),
                    3 => nx::silu(x),
                    4 => nx::gelu(x),
                    _ => x,
                };
                m.spad[dst + i] = w48(z);
            }
        }
        Ins::Rope {
            src,
            heads,
            hd,
            rot,
            pos,
            table,
            ..
        } => {
            let len = heads * hd;
            let mut x: Vec<i64> = (0..len).map(|i| sext48(m.spad[src + i])).collect();
            if len > 0 {
                nx::rotate(&mut x, *hd, *rot, *pos, table);
            }
            for (i, &v) in x.iter().enumerate() {
                m.spad[src + i] = w48(v);
            }
        }
        Ins::Embed {
            dst,
            row,
            add,
            table,
            ..
        } => {
            for i in 0..table.cols {
                let base = if *add { r32_of(m.spad[dst + i]) } else { 0 };
                m.spad[dst + i] = w48(nx::residual_add(base, table.value(*row, i)) as i64);
            }
        }
    }
}

/// Builds the program (and fills the ROM images and the initial scratchpad).
fn program(m: &mut Mem) -> Vec<Ins> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut next = 0usize;
    // Every vector starts on a scratchpad line (as the plan places them):
    // the embed units write whole lines.
    let mut alloc = |n: usize| {
        let a = next.next_multiple_of(EMBED_V);
        next = a + n;
        assert!(next <= SD, "scratchpad overflow");
        a
    };
    let mut prog = Vec::new();

    // ---- norms ----
    let mut gnext = 0usize;
    let mut gains = |rng: &mut Rng, m: &mut Mem, n: usize| {
        let b = gnext;
        gnext += n;
        assert!(gnext <= GD);
        for i in 0..n {
            m.gain[b + i] = match rng.below(16) {
                0 => rng.pick(&[i32::MIN, i32::MAX, 0, 1, -1, 1 << 16]),
                1 => rng.next_u64() as i32,
                _ => rng.below(200_000) as i32 - 50_000,
            };
            m.bias[b + i] = match rng.below(16) {
                0 => rng.pick(&[i32::MIN, i32::MAX, 0, 1, -1]),
                _ => rng.below(70_000) as i32 - 35_000,
            };
        }
        b
    };
    let eps = |e: f32| NormConsts::new(1, e).eps_fixed;
    #[derive(Clone, Copy)]
    enum Fill {
        Random,
        Offset,
        Equal,
        Value(i32),
        Zero,
        Tiny,
        Extreme,
    }
    // n = 273 / 275 with all values i32::MAX / i32::MIN: the mean rounds
    // beyond the i32 range (2^31 / -2^31 - 1), so centring saturates.
    // n = 1, r = 32767, eps = 0: v = 32767^2 takes the rsqrt rounding carry
    // (m = 4096 -> 1024, k + 1); r = i32::MIN: largest v; r = 1: left shift.
    let cases: [(usize, bool, f32, Fill, bool); 19] = [
        (64, false, 1e-5, Fill::Random, false),
        (576, false, 1e-6, Fill::Random, false),
        (64, true, 1e-5, Fill::Offset, false),
        (576, true, 1e-5, Fill::Random, false),
        (64, true, 1e-5, Fill::Equal, false),
        (273, true, 0.0, Fill::Value(i32::MAX), false),
        (275, true, 1e-5, Fill::Value(i32::MIN), true),
        (1, false, 0.0, Fill::Value(32767), false),
        (1, false, 0.0, Fill::Value(i32::MIN), false),
        (1, false, 0.0, Fill::Value(1), false),
        (1, false, 0.0, Fill::Value(0), false),
        (32, false, 0.0, Fill::Zero, false),
        (96, false, 0.0, Fill::Tiny, false),
        (96, true, 0.0, Fill::Tiny, true),
        (1, false, 1e-5, Fill::Random, false),
        (3, true, 1e-5, Fill::Random, true),
        (0, false, 1e-5, Fill::Random, false),
        (8192, false, 1e-5, Fill::Extreme, true),
        (8192, true, 1e-5, Fill::Extreme, true),
    ];
    let mut big_gain = None;
    for (n, layer, e, fill, in_place) in cases {
        let src = alloc(n);
        let dst = if in_place { src } else { alloc(n) };
        let base = if n >= 8192 {
            *big_gain.get_or_insert_with(|| gains(&mut rng, m, n))
        } else {
            gains(&mut rng, m, n)
        };
        let off = (rng.next_u64() as i32) >> 4;
        let eq = rng.r32();
        for i in 0..n {
            let x = match fill {
                Fill::Random => rng.r32(),
                Fill::Offset => {
                    ((rng.next_u64() as i32) >> (5 + rng.below(20))).saturating_add(off)
                }
                Fill::Equal => eq,
                Fill::Value(v) => v,
                Fill::Zero => 0,
                Fill::Tiny => rng.below(7) as i32 - 3,
                Fill::Extreme => match rng.below(4) {
                    0 => i32::MIN,
                    1 => i32::MAX,
                    2 => i32::MIN + rng.below(1000) as i32,
                    _ => rng.r32(),
                },
            };
            m.spad[src + i] = w48(x as i64);
        }
        prog.push(Ins::Norm {
            src,
            dst,
            n,
            eps_fixed: eps(e),
            layer,
            base,
        });
    }

    // ---- elementwise ----
    let n = 200;
    for (op, alias) in [
        (0u8, 0u8),
        (0, 1),
        (1, 2),
        (2, 0),
        (2, 1),
        (3, 1),
        (4, 0),
        (5, 0),
        (3, 0),
        (4, 2),
    ] {
        let a = alloc(n);
        let b = alloc(n);
        let dst = match alias {
            1 => a,
            2 => b,
            _ => alloc(n),
        };
        for i in 0..n {
            let (x, y) = match op {
                0 => (rng.r32() as i64, rng.w48()),
                3 => (rng.around(16, 17), rng.w48()),
                4 => (rng.around(8, 16), rng.w48()),
                _ => (rng.w48(), rng.w48()),
            };
            m.spad[a + i] = w48(x);
            m.spad[b + i] = w48(y);
        }
        prog.push(Ins::Elem { op, a, b, dst, n });
    }
    let a = alloc(4);
    prog.push(Ins::Elem {
        op: 3,
        a,
        b: a,
        dst: a,
        n: 0,
    });

    // ---- rope ----
    let mut tnext = 0usize;
    for (heads, hd, rot, pos, positions, real) in [
        (3usize, 64usize, 32usize, 5usize, 8usize, false),
        (2, 32, 32, 7, 10, true),
        (1, 96, 64, 0, 3, true),
        (2, 64, 64, 2, 4, false),
        (2, 32, 0, 1, 2, true),
    ] {
        let pairs = rot / 2;
        let table = if real {
            let inv: Vec<f64> = (0..pairs)
                .map(|i| 10000f64.powf(-(2.0 * i as f64) / rot as f64))
                .collect();
            RopeTable::new(&inv, positions)
        } else {
            let mut e = || match rng.below(6) {
                0 => rng.pick(&[i16::MIN, i16::MAX, 0, 16384, -16384, 1, -1]),
                _ => rng.next_u64() as i16,
            };
            let cos: Vec<i16> = (0..pairs * positions).map(|_| e()).collect();
            let sin: Vec<i16> = (0..pairs * positions).map(|_| e()).collect();
            RopeTable {
                pairs,
                positions,
                cos,
                sin,
            }
        };
        let base = tnext;
        tnext += pairs * positions;
        assert!(tnext <= TD);
        for k in 0..pairs * positions {
            m.rope[base + k] = ((table.cos[k] as u16 as u32) << 16) | table.sin[k] as u16 as u32;
        }
        let src = alloc(heads * hd);
        for i in 0..heads * hd {
            m.spad[src + i] = w48(rng.w48());
        }
        prog.push(Ins::Rope {
            src,
            heads,
            hd,
            rot,
            pos,
            base,
            table,
        });
    }

    // ---- embed ----
    let (mut b16, mut b64) = (0usize, 0usize);
    for (lanes, rows, cols, group, bits, asym, row, add) in [
        (
            16usize, 5usize, 96usize, 32usize, 4u32, false, 3usize, false,
        ),
        (16, 4, 64, 32, 8, true, 1, true),
        (16, 2, 512, 32, 8, true, 1, true),
        (16, 3, 128, 128, 3, true, 2, false),
        (64, 3, 96, 32, 4, true, 2, true),
        (64, 6, 160, 160, 8, false, 5, false),
        (64, 3, 320, 32, 8, false, 2, false),
        (64, 2, 256, 128, 2, true, 0, true),
        (64, 2, 64, 64, 8, true, 1, true),
        (64, 2, 448, 32, 8, true, 0, true),
    ] {
        let table = QTable::random(&mut rng, rows, cols, group, bits, asym);
        let words = table.rom_words(lanes);
        let base = if lanes == 16 { &mut b16 } else { &mut b64 };
        let at = *base;
        *base += words.len();
        let rom = if lanes == 16 { &mut m.w16 } else { &mut m.w64 };
        assert!(*base <= rom.len());
        for (k, w) in words.into_iter().enumerate() {
            rom[at + k] = w;
        }
        let dst = alloc(cols);
        for i in 0..cols {
            m.spad[dst + i] = w48(rng.r32() as i64);
        }
        prog.push(Ins::Embed {
            lanes,
            dst,
            row,
            add,
            base: at,
            table,
        });
    }
    prog
}

/// The scratchpad line of both `tls_embed` instances in `tb_misc.v` (`VL`).
const EMBED_V: usize = 64;

#[test]
fn misc_units_bit_exact() {
    let keep = std::env::var_os("TLS_KEEP").is_some();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    tables::write_tables(&dir.join("tables")).unwrap();

    let w16_words = (16 * 8 + 36usize).div_ceil(64);
    let w64_words = (64 * 8 + 2 * 36usize).div_ceil(64);
    let mut m = Mem {
        spad: vec![0; SD],
        gain: vec![0; GD],
        bias: vec![0; GD],
        rope: vec![0; TD],
        w16: vec![vec![0; w16_words]; W16_D],
        w64: vec![vec![0; w64_words]; W64_D],
    };
    let prog = program(&mut m);
    assert!(prog.len() < 64);

    let mut ptext = String::new();
    for ins in &prog {
        ptext.push_str(&bits_hex(&ins.encode(), INS_BITS));
        ptext.push('\n');
    }
    let mut end = vec![0u64; 5];
    set_bits(&mut end, 0, 4, 15);
    ptext.push_str(&bits_hex(&end, INS_BITS));
    ptext.push('\n');
    let write = |name: &str, text: String| std::fs::write(dir.join(name), text).unwrap();
    write("prog.hex", ptext);
    write("spad_in.hex", hex_file(m.spad.iter().copied(), 12));
    write(
        "gain.hex",
        hex_file(m.gain.iter().map(|&g| g as u32 as u64), 8),
    );
    write(
        "bias.hex",
        hex_file(m.bias.iter().map(|&g| g as u32 as u64), 8),
    );
    write("rope.hex", hex_file(m.rope.iter().map(|&g| g as u64), 8));
    let rom_text = |rom: &[Vec<u64>], bits: usize| {
        let mut s = String::new();
        for w in rom {
            s.push_str(&bits_hex(w, bits));
            s.push('\n');
        }
        s
    };
    write("w16.hex", rom_text(&m.w16, 16 * 8 + 36));
    write("w64.hex", rom_text(&m.w64, 64 * 8 + 2 * 36));

    // Expected: the program on the model.
    let mut want = m.spad.clone();
    let mut states = Vec::new();
    {
        let mut mm = Mem {
            spad: std::mem::take(&mut want),
            gain: m.gain.clone(),
            bias: m.bias.clone(),
            rope: Vec::new(),
            w16: Vec::new(),
            w64: Vec::new(),
        };
        for ins in &prog {
            apply(ins, &mut mm);
            states.push(mm.spad.clone());
        }
        want = mm.spad;
    }

    let t0 = std::time::Instant::now();
    let srcs: Vec<_> = [
        "tls_macros.v",
        "tls_norm.v",
        "tls_elem.v",
        "tls_rope.v",
        "tls_embed.v",
    ]
    .iter()
    .map(|f| tools::rtl_lib(f))
    .chain([Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tb/tb_misc.v")])
    .collect();
    let bin = tools::verilator_binary(dir, "tb_misc", &srcs).unwrap();
    let t1 = std::time::Instant::now();
    let out = Command::new(&bin).current_dir(dir).output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "tb_misc: verilator build {:.1} s, run {:.2} s",
        (t1 - t0).as_secs_f64(),
        t1.elapsed().as_secs_f64()
    );

    let read_hex = |name: &str| -> Vec<u64> {
        std::fs::read_to_string(dir.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("//"))
            .map(|l| u64::from_str_radix(l, 16).unwrap())
            .collect()
    };
    let errs = read_hex("errs.hex");
    let cycles = read_hex("cycles.hex");
    let got = read_hex("spad_out.hex");
    assert_eq!(errs[1] as usize, prog.len(), "program did not complete");
    assert_eq!(errs[0], 0, "protocol violations (cycles)");
    assert_eq!(got.len(), SD);

    // Every word bit for bit; on a mismatch, name the first instruction
    // whose output region differs.
    let mut bad = Vec::new();
    for (a, (&g, &w)) in got.iter().zip(&want).enumerate() {
        if g != w {
            bad.push(a);
        }
    }
    if let Some(&a) = bad.first() {
        let culprit = prog
            .iter()
            .zip(&states)
            .find(|(_, s)| s[a] == want[a])
            .map_or("?".to_string(), |(i, _)| i.name());
        panic!(
            "{} scratchpad words differ; first at {a}: got {:012x} want {:012x} (last written by {culprit})",
            bad.len(),
            got[a],
            want[a]
        );
    }

    let mut report = String::new();
    for (k, ins) in prog.iter().enumerate() {
        report.push_str(&format!("{:<48} {} cycles\n", ins.name(), cycles[k]));
    }
    eprint!("{report}");
    for (k, ins) in prog.iter().enumerate() {
        assert_eq!(cycles[k], ins.cycles(), "cycle count of {}", ins.name());
    }
    if keep {
        let p = tmp.keep();
        eprintln!("kept {}", p.display());
    }
}

fn lint(file: &str, top: &str, params: &[&str]) {
    let mut cmd = Command::new("verilator");
    cmd.args([
        "--lint-only",
        "-Wall",
        "-Wno-DECLFILENAME",
        "--top-module",
        top,
    ])
    .args(params)
    .arg(tools::rtl_lib(file))
    .arg(tools::rtl_lib("tls_macros.v"));
    let out = cmd
        .output()
        .expect("verilator is not installed (apt-get install -y verilator)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.trim().is_empty(),
        "lint {file} {params:?}:\n{text}"
    );
}

#[test]
fn misc_units_lint_clean() {
    for (file, top) in [
        ("tls_norm.v", "tls_norm"),
        ("tls_elem.v", "tls_elem"),
        ("tls_rope.v", "tls_rope"),
        ("tls_embed.v", "tls_embed"),
    ] {
        lint(file, top, &[]);
        lint(file, top, &["-GAW=9"]);
        lint(file, top, &["-GAW=22"]);
    }
    for lanes in [1, 8, 16, 32, 64, 256] {
        lint("tls_embed.v", "tls_embed", &[&format!("-GLANES={lanes}")]);
    }
    lint("tls_norm.v", "tls_norm", &["-GGAW=20"]);
    lint("tls_rope.v", "tls_rope", &["-GTAW=8"]);
    lint("tls_rope.v", "tls_rope", &["-GTAW=28"]);
    lint("tls_embed.v", "tls_embed", &["-GWAW=30"]);
    for v in [
        "-GLANES=16 -GV=64",
        "-GLANES=64 -GV=8",
        "-GLANES=8 -GROWS=4 -GV=4",
    ] {
        let args: Vec<&str> = v.split_whitespace().collect();
        lint("tls_embed.v", "tls_embed", &args);
    }
}
