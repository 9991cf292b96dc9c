//! `tls_norm` and `tls_rope` with V lanes (RFC 0005: vector-wide units)
//! against `taalasc_numerics`, bit for bit, at V = 1, 4 and 8 side by
//! side: RMSNorm, LayerNorm with bias (saturating centring included),
//! lengths that are not a multiple of V (the last line is masked, its
//! lanes past n add nothing to the sums), in place and n = 0; RoPE with
//! full and partial rotary, in line mode (head_dim and rot/2 multiples of
//! V), head mode (whole heads per line) and pair mode (heads or halves off
//! the lines), and no heads. Every
//! scratchpad word of every width is compared with the Rust model, and
//! each instruction's cycles with the units' formulas (the same as
//! `perf::instr_cycles`): norms `2L + 54` / `3L + 99` with `L = ceil(n /
//! V)`, RoPE `2S + 6` with `S = perf::rope_steps`.

use std::path::Path;
use std::process::Command;

use taalasc_numerics::{self as nx, NormConsts, RopeTable, W_MAX, W_MIN};
use taalasc_verilog::perf::{rope_mode, rope_steps, RopeMode};
use taalasc_verilog::{tables, tools};

mod common;
use common::Rng;

const SD: usize = 4096;
const GD: usize = 2048;
const TD: usize = 4096;
const MASK48: u64 = (1 << 48) - 1;
const WIDTHS: [usize; 3] = [1, 4, 8];

fn w48(x: i64) -> u64 {
    x as u64 & MASK48
}

fn sext48(v: u64) -> i64 {
    ((v << 16) as i64) >> 16
}

fn r32(rng: &mut Rng) -> i32 {
    match rng.below(12) {
        0 => rng.pick(&[i32::MIN, i32::MAX, 0, 1, -1, 1 << 16, -(1 << 16)]),
        _ => (rng.next_u64() as i32) >> rng.below(31),
    }
}

fn w48v(rng: &mut Rng) -> i64 {
    match rng.below(10) {
        0 => rng.pick(&[W_MIN, W_MAX, 0, 1, -1, 1 << 24, -(1 << 24)]),
        _ => (rng.next_u64() as i64) >> (16 + rng.below(48)),
    }
}

enum Ins {
    Norm {
        src: usize,
        dst: usize,
        n: usize,
        layer: bool,
        eps_fixed: i64,
        /// First gain / bias element (a multiple of 8).
        base: usize,
    },
    Rope {
        src: usize,
        heads: usize,
        hd: usize,
        rot: usize,
        pos: usize,
        table: RopeTable,
        /// First table word of each width's ROM.
        tbase: [usize; 3],
    },
}

/// Little-endian bit fields of one instruction word.
struct Word(Vec<bool>);

impl Word {
    fn put(&mut self, at: usize, width: usize, v: u64) {
        for b in 0..width {
            self.0[at + b] = (v >> b) & 1 == 1;
        }
    }
    fn hex(&self) -> String {
        (0..self.0.len() / 4)
            .rev()
            .map(|d| {
                let n = (0..4).fold(0, |a, b| a | (self.0[4 * d + b] as u32) << b);
                char::from_digit(n, 16).unwrap()
            })
            .collect()
    }
}

impl Ins {
    fn word(&self) -> String {
        let mut w = Word(vec![false; 272]);
        match self {
            Ins::Norm {
                src,
                dst,
                n,
                layer,
                eps_fixed,
                base,
            } => {
                w.put(0, 4, 0);
                w.put(4, 16, *src as u64);
                w.put(20, 16, *dst as u64);
                w.put(36, 20, *n as u64);
                w.put(56, 41, nx::div_n_const((*n).max(1)) as u64);
                w.put(97, 48, *eps_fixed as u64);
                w.put(145, 1, *layer as u64);
                w.put(146, 16, *base as u64);
                w.put(162, 16, *base as u64);
            }
            Ins::Rope {
                src,
                heads,
                hd,
                rot,
                pos,
                tbase,
                ..
            } => {
                w.put(0, 4, 1);
                w.put(4, 16, *src as u64);
                w.put(178, 8, *heads as u64);
                w.put(186, 10, *hd as u64);
                w.put(196, 10, *rot as u64);
                w.put(206, 16, *pos as u64);
                for (k, t) in tbase.iter().enumerate() {
                    w.put(222 + 16 * k, 16, *t as u64);
                }
            }
        }
        w.hex()
    }

    fn cycles(&self, v: usize) -> u64 {
        match self {
            Ins::Norm { n: 0, .. } => 1,
            Ins::Norm { n, layer, .. } => {
                let l = n.div_ceil(v) as u64;
                if *layer {
                    3 * l + 99
                } else {
                    2 * l + 54
                }
            }
            Ins::Rope { heads, hd, rot, .. } => {
                let s = rope_steps(v, *heads, *hd, *rot);
                if s == 0 {
                    1
                } else {
                    2 * s as u64 + 6
                }
            }
        }
    }

    fn name(&self) -> String {
        match self {
            Ins::Norm { n, layer, .. } => {
                format!("{} n={n}", if *layer { "layer" } else { "rms" })
            }
            Ins::Rope { heads, hd, rot, .. } => format!("rope heads={heads} hd={hd} rot={rot}"),
        }
    }
}

fn apply(ins: &Ins, spad: &mut [u64], gain: &[i32], bias: &[i32]) {
    match ins {
        Ins::Norm { n: 0, .. } => {}
        Ins::Norm {
            src,
            dst,
            n,
            layer,
            eps_fixed,
            base,
        } => {
            let r: Vec<i32> = (0..*n).map(|i| sext48(spad[src + i]) as i32).collect();
            let c = NormConsts {
                n: *n,
                m_n: nx::div_n_const(*n),
                eps_fixed: *eps_fixed,
            };
            let (g, b) = (&gain[*base..base + n], &bias[*base..base + n]);
            let mut out = vec![0i64; *n];
            if *layer {
                nx::layer_norm(&r, g, Some(b), &c, &mut out);
            } else {
                nx::rms_norm(&r, g, &c, &mut out);
            }
            for (i, y) in out.iter().enumerate() {
                spad[dst + i] = w48(*y);
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
            let mut x: Vec<i64> = (0..heads * hd).map(|i| sext48(spad[src + i])).collect();
            nx::rotate(&mut x, *hd, *rot, *pos, table);
            for (i, y) in x.iter().enumerate() {
                spad[src + i] = w48(*y);
            }
        }
    }
}

/// Lines of `v` 32-bit words, lane j in bits 32·j.. (zero past the end).
fn lines32(vals: &[u32], v: usize) -> Vec<String> {
    vals.chunks(v)
        .map(|g| {
            (0..v)
                .rev()
                .map(|j| format!("{:08x}", g.get(j).copied().unwrap_or(0)))
                .collect()
        })
        .collect()
}

#[test]
fn vector_norm_and_rope_bit_exact_at_1_4_and_8_lanes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    tables::write_tables(&dir.join("tables")).unwrap();
    let mut rng = Rng(0x0a5e_0013_7f4a_7c15);
    let mut spad = vec![0u64; SD];
    for w in spad.iter_mut() {
        *w = w48(w48v(&mut rng));
    }
    // Vectors aligned to the widest line (8 words), as the plan aligns them.
    let mut next = 0usize;
    let mut alloc = |n: usize| {
        let at = next;
        next += n.div_ceil(8) * 8 + 8;
        assert!(next <= SD);
        at
    };
    let mut gain = vec![0i32; GD];
    let mut bias = vec![0i32; GD];
    let mut gnext = 0usize;
    let mut prog = Vec::new();

    // ---- norms: (n, layer, eps, in place, fill) ----
    // fill 0: random R32; 1: all i32::MAX (LayerNorm: the mean rounds past
    // the i32 range, centring saturates); 2: small values; 3: extremes.
    for (n, layer, eps, in_place, fill) in [
        (37usize, false, 1e-5f32, false, 0u8),
        (64, false, 1e-6, true, 0),
        (1, false, 0.0, false, 0),
        (5, false, 1e-5, false, 3),
        (100, false, 1e-5, false, 2),
        (29, true, 1e-5, false, 0),
        (64, true, 1e-5, true, 0),
        (77, true, 0.0, false, 1),
        (3, true, 1e-5, false, 3),
        (200, true, 1e-5, false, 0),
        (0, false, 1e-5, false, 0),
    ] {
        let src = alloc(n);
        let dst = if in_place { src } else { alloc(n) };
        let base = gnext;
        gnext += n.div_ceil(8) * 8;
        assert!(gnext <= GD);
        for i in 0..n {
            gain[base + i] = match rng.below(16) {
                0 => rng.pick(&[i32::MIN, i32::MAX, 0, 1, -1, 1 << 16]),
                _ => rng.below(200_000) as i32 - 50_000,
            };
            bias[base + i] = match rng.below(16) {
                0 => rng.pick(&[i32::MIN, i32::MAX, 0, 1, -1]),
                _ => rng.below(70_000) as i32 - 35_000,
            };
            let x = match fill {
                0 => r32(&mut rng),
                1 => i32::MAX,
                2 => rng.below(7) as i32 - 3,
                _ => rng.pick(&[i32::MIN, i32::MAX, i32::MIN + 5, 0]),
            };
            spad[src + i] = w48(x as i64);
        }
        prog.push(Ins::Norm {
            src,
            dst,
            n,
            layer,
            eps_fixed: NormConsts::new(1, eps).eps_fixed,
            base,
        });
    }

    // ---- rope: (heads, hd, rot, pos, positions) ----
    // Line mode at V = 4 and 8: hd 32 / rot 32, hd 64 / rot 32 (partial),
    // hd 32 / rot 16 (partial). Pair mode: hd 16 / rot 8 at V = 8 (half
    // below the line), hd 24 / rot 12 at V = 4 and 8 (heads off the
    // lines). Head mode (whole heads per line): hd 8 / rot 8 at V = 8,
    // hd 4 / rot 4 at V = 4 and 8 (three heads: the last line half
    // full at V = 8), hd 2 / rot 2 (five heads, 2 or 4 per line).
    let mut tnext = [0usize; 3];
    let mut tab: [Vec<String>; 3] = Default::default();
    for (heads, hd, rot, pos, positions, real) in [
        (3usize, 32usize, 32usize, 5usize, 8usize, false),
        (2, 64, 32, 7, 10, true),
        (2, 32, 16, 0, 3, false),
        (2, 16, 8, 2, 4, false),
        (3, 24, 12, 3, 5, false),
        (4, 8, 8, 1, 2, false),
        (3, 4, 4, 2, 3, false),
        (5, 2, 2, 1, 2, true),
        (0, 32, 32, 1, 2, false),
        (2, 32, 0, 1, 2, false),
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
        let mut tbase = [0usize; 3];
        for (k, v) in WIDTHS.into_iter().enumerate() {
            tbase[k] = tnext[k];
            for p in 0..positions {
                let row: Vec<u32> = (0..pairs)
                    .map(|i| {
                        let (c, s) = table.cos_sin(p, i);
                        ((c as u16 as u32) << 16) | s as u16 as u32
                    })
                    .collect();
                let words = lines32(&row, v);
                tnext[k] += words.len();
                tab[k].extend(words);
            }
            assert!(tnext[k] <= TD);
        }
        let src = alloc(heads * hd);
        for i in 0..heads * hd {
            spad[src + i] = w48(w48v(&mut rng));
        }
        prog.push(Ins::Rope {
            src,
            heads,
            hd,
            rot,
            pos,
            table,
            tbase,
        });
    }
    // Every mode is exercised at V = 8, line and head mode at V = 4, and a
    // head-mode vector that ends inside a line at both.
    for (v, mode) in [
        (8, RopeMode::Pair),
        (8, RopeMode::Line),
        (8, RopeMode::Head),
        (4, RopeMode::Line),
        (4, RopeMode::Head),
    ] {
        assert!(prog.iter().any(
            |i| matches!(i, Ins::Rope { hd, rot, heads, .. } if *heads > 0 && *rot > 0 && rope_mode(v, *hd, *rot) == mode)
        ));
    }
    for v in [4, 8] {
        assert!(prog
            .iter()
            .any(|i| matches!(i, Ins::Rope { hd, rot, heads, .. }
            if rope_mode(v, *hd, *rot) == RopeMode::Head && (heads * hd) % v != 0)));
    }

    let hex = |lines: Vec<String>| lines.join("\n") + "\n";
    let write = |name: &str, text: String| std::fs::write(dir.join(name), text).unwrap();
    write(
        "spad_in.hex",
        hex(spad.iter().map(|w| format!("{w:012x}")).collect()),
    );
    for (k, v) in WIDTHS.into_iter().enumerate() {
        let g: Vec<u32> = gain.iter().map(|&x| x as u32).collect();
        let b: Vec<u32> = bias.iter().map(|&x| x as u32).collect();
        write(&format!("gain_{v}.hex"), hex(lines32(&g, v)));
        write(&format!("bias_{v}.hex"), hex(lines32(&b, v)));
        let mut t = tab[k].clone();
        t.resize(TD, "0".repeat(8 * v));
        write(&format!("rope_{v}.hex"), hex(t));
    }
    let mut end = Word(vec![false; 272]);
    end.put(0, 4, 15);
    write(
        "prog.hex",
        hex(prog.iter().map(Ins::word).chain([end.hex()]).collect()),
    );

    let mut want = spad.clone();
    for ins in &prog {
        apply(ins, &mut want, &gain, &bias);
    }

    let srcs = vec![
        tools::rtl_lib("tls_macros.v"),
        tools::rtl_lib("tls_norm.v"),
        tools::rtl_lib("tls_rope.v"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tb/tb_vnorm.v"),
    ];
    let bin = tools::verilator_binary(dir, "tb_vnorm", &srcs).unwrap();
    let out = Command::new(&bin).current_dir(dir).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
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
    assert_eq!(errs[1] as usize, prog.len(), "program did not complete");
    assert_eq!(errs[0], 0, "protocol violations");
    for v in WIDTHS {
        let got = read_hex(&format!("spad_out_{v}.hex"));
        assert_eq!(got.len(), SD);
        if let Some(a) = (0..SD).find(|&a| got[a] != want[a]) {
            panic!(
                "V = {v}: word {a} is {:012x}, the model says {:012x}",
                got[a], want[a]
            );
        }
        let cycles = read_hex(&format!("cycles_{v}.hex"));
        for (k, ins) in prog.iter().enumerate() {
            assert_eq!(
                cycles[k],
                ins.cycles(v),
                "V = {v}: cycles of instruction {k} ({})",
                ins.name()
            );
        }
    }
}

#[test]
fn vector_norm_and_rope_lint_clean() {
    for v in [1, 2, 4, 8, 64] {
        for (file, top, extra) in [
            ("tls_norm.v", "tls_norm", "-GGAW=12"),
            ("tls_rope.v", "tls_rope", "-GTAW=8"),
            ("tls_rope.v", "tls_rope", "-GTAW=28"),
        ] {
            let out = Command::new("verilator")
                .args([
                    "--lint-only",
                    "-Wall",
                    "-Wno-DECLFILENAME",
                    "--top-module",
                    top,
                ])
                .arg(format!("-GV={v}"))
                .arg(extra)
                .arg(tools::rtl_lib(file))
                .arg(tools::rtl_lib("tls_macros.v"))
                .output()
                .expect("verilator is not installed (apt-get install -y verilator)");
            let text = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && text.trim().is_empty(),
                "{top} V = {v} {extra}:\n{text}"
            );
        }
    }
}
