//! `tls_wfetch` (the packed weight ROM fetch adapter) against the expanded
//! word the units read (`rtl/UNITS.md`, `tls_matvec`'s weight port), bit
//! for bit, at `ROWS` 1 and 2.
//!
//! The ROM images are written by `roms::mat_hex` from random matrices (SF16
//! and `Row8` scales, symmetric and asymmetric, every scale layout mode,
//! lanes that do not divide the row), so the test holds the image writer
//! and the decoder together to the one definition of the expanded word:
//! codes sign-extended to 8 bits, then per 32-block
//! `{Sf16::mant_exp(scale), Sf16::mant_exp(offset)}` of the block's group,
//! zero past the row. One Verilator build holds every configuration; the
//! testbench feeds each instance every (row group, chunk) in a shuffled
//! order, with idle cycles and repeats, and prints the output word.

use std::fmt::Write as _;
use std::path::Path;

use taalasc_ir::WeightId;
use taalasc_numerics::Sf16;
use taalasc_quant::{QTensor, WeightFormat};
use taalasc_verilog::plan::{addr_bits, scale_layout, weight_macros, MatRom};
use taalasc_verilog::roms::mat_hex;
use taalasc_verilog::tools::{rtl_lib, run, verilator_binary};

mod common;
use common::Rng;

/// One adapter under test.
struct Case {
    format: &'static str,
    rows: usize,
    cols: usize,
    lanes: usize,
    slices: usize,
}

const CASES: &[Case] = &[
    // SF16, chunk inside a group (mode 1), asymmetric.
    Case {
        format: "a4g32",
        rows: 5,
        cols: 96,
        lanes: 16,
        slices: 1,
    },
    Case {
        format: "a4g32",
        rows: 5,
        cols: 96,
        lanes: 16,
        slices: 2,
    },
    // Row8 symmetric, a chunk covers two groups (mode 2), 64 ∤ 96: padding.
    Case {
        format: "s4g32h",
        rows: 3,
        cols: 96,
        lanes: 64,
        slices: 2,
    },
    Case {
        format: "s4g32h",
        rows: 3,
        cols: 96,
        lanes: 64,
        slices: 1,
    },
    // Row8 asymmetric, lanes 8 inside groups of 64.
    Case {
        format: "a3g64h",
        rows: 4,
        cols: 128,
        lanes: 8,
        slices: 2,
    },
    // One group per row (mode 0), 8-bit codes, 64 ∤ 160.
    Case {
        format: "s8row",
        rows: 3,
        cols: 160,
        lanes: 64,
        slices: 1,
    },
    // A group that is not a power of two: per-32-block entries.
    Case {
        format: "a2g96",
        rows: 2,
        cols: 192,
        lanes: 32,
        slices: 2,
    },
    // Four rows per word (the plan's `--rows 4`), Row8 asymmetric, mode 2,
    // 6 rows: the second word's last two slices are padding.
    Case {
        format: "a4g32h",
        rows: 6,
        cols: 96,
        lanes: 64,
        slices: 4,
    },
    Case {
        format: "a6row",
        rows: 3,
        cols: 64,
        lanes: 4,
        slices: 1,
    },
];

/// A random SF16 value (subnormals and both signs included).
fn sf16(rng: &mut Rng, positive: bool) -> Sf16 {
    let sign = if positive {
        0
    } else {
        (rng.below(2) as u16) << 15
    };
    let e = rng.below(31) as u16;
    Sf16(sign | (e << 10) | rng.below(1024) as u16)
}

/// `n · 2^e` as an SF16 (exact for 8-bit `n` and `-24 <= e <= 7`).
fn row8(n: i32, e: i32) -> Sf16 {
    Sf16::from_f32(n as f32 * (e as f32).exp2()).expect("exact SF16")
}

fn random_matrix(rng: &mut Rng, c: &Case) -> QTensor {
    let f: WeightFormat = c.format.parse().unwrap();
    let gpr = f.groups_per_row(c.cols);
    let (lo, hi) = f.code_range();
    let codes = (0..c.rows * c.cols)
        .map(|_| rng.range(lo as i64, hi as i64) as i8)
        .collect();
    let mut scales = Vec::new();
    let mut offsets = Vec::new();
    for r in 0..c.rows {
        // Row exponents across the range; row 1 all zero scales.
        let (ed, em) = (rng.range(-24, 7) as i32, rng.range(-24, 7) as i32);
        for _ in 0..gpr {
            if f.scales == taalasc_quant::ScaleStore::Row8 {
                let n = if r == 1 {
                    0
                } else if f.symmetric {
                    {
                        let x = rng.range(-128, 127) as i32;
                        rng.pick(&[-128, 127, 1, -1, x, x])
                    }
                } else {
                    {
                        let x = rng.range(0, 255) as i32;
                        rng.pick(&[255, 1, x, x])
                    }
                };
                scales.push(row8(n, ed));
                if !f.symmetric {
                    offsets.push(row8(rng.range(-128, 127) as i32, em));
                }
            } else {
                scales.push(sf16(rng, !f.symmetric));
                if !f.symmetric {
                    offsets.push(sf16(rng, false));
                }
            }
        }
    }
    QTensor {
        format: f,
        rows: c.rows,
        cols: c.cols,
        codes,
        scales,
        offsets,
        widths: Default::default(),
    }
}

fn mat_rom(q: &QTensor, c: &Case, k: usize) -> MatRom {
    let chunks = c.cols.div_ceil(c.lanes);
    let scales = scale_layout(&q.format, c.cols, c.lanes);
    let file = format!("w{k}.hex");
    let macros = weight_macros(
        c.rows,
        c.slices,
        chunks,
        c.lanes,
        q.format.bits,
        !q.format.symmetric,
        &scales,
        &file,
    );
    MatRom {
        weight: format!("w{k}"),
        id: WeightId(0),
        rows: c.rows,
        cols: c.cols,
        bits: q.format.bits,
        asym: !q.format.symmetric,
        code_bias: q.format.code_bias(),
        format: c.format.into(),
        chunks,
        groups: c.rows.div_ceil(c.slices),
        slices: c.slices,
        scales,
        file,
        stored_bits: macros.iter().map(|r| (r.width * r.depth) as u64).sum(),
        macros,
        packed_bits: q.storage_bits(),
        bank: 0,
        slot: 0,
    }
}

/// The expanded word of (row group, chunk), as hex, every slice whose row
/// exists (slices past the last row are not compared: `None`).
fn expected(q: &QTensor, c: &Case, grp: usize, ch: usize) -> Vec<Option<String>> {
    let nb = (c.lanes / 32).max(1);
    let ws = c.lanes * 8 + nb * 36;
    let gpr = q.format.groups_per_row(q.cols);
    let glen = q.format.group_len(q.cols);
    let mut out = Vec::new();
    for j in 0..c.slices {
        let r = grp * c.slices + j;
        if r >= c.rows {
            out.push(None);
            continue;
        }
        let mut bits = vec![false; ws];
        let mut put = |at: usize, w: usize, v: i64| {
            for b in 0..w {
                bits[at + b] = (v >> b) & 1 == 1;
            }
        };
        for i in 0..c.lanes {
            let col = ch * c.lanes + i;
            if col < c.cols {
                put(8 * i, 8, q.codes[r * c.cols + col] as i64);
            }
        }
        for k in 0..nb {
            let blk = if c.lanes >= 32 {
                ch * nb + k
            } else {
                ch * c.lanes / 32
            };
            if blk * 32 >= c.cols {
                continue;
            }
            let g = blk * 32 / glen;
            let (dm, de) = q.scales[r * gpr + g].mant_exp();
            let (mm, me) = if q.format.symmetric {
                (0, 0)
            } else {
                q.offsets[r * gpr + g].mant_exp()
            };
            let at = c.lanes * 8 + 36 * k;
            // {d_mant:12, d_exp:6, m_mant:12, m_exp:6}, MSB first.
            put(at + 24, 12, dm as i64);
            put(at + 18, 6, de as i64);
            put(at + 6, 12, mm as i64);
            put(at, 6, me as i64);
        }
        out.push(Some(hex_of(&bits)));
    }
    out
}

fn hex_of(bits: &[bool]) -> String {
    let digits = bits.len().div_ceil(4);
    (0..digits)
        .rev()
        .map(|d| {
            let nib = (0..4)
                .filter(|b| bits.get(4 * d + b) == Some(&true))
                .map(|b| 1 << b)
                .sum::<u32>();
            char::from_digit(nib, 16).unwrap()
        })
        .collect()
}

/// The testbench: per case the macros, the adapter and a stimulus ROM of
/// `{en, grp, chunk}` per cycle; prints `case cycle data` after each read.
fn testbench(
    dir: &Path,
    mats: &[(QTensor, MatRom)],
    stims: &[Vec<(bool, usize, usize)>],
) -> String {
    let mut s =
        String::from("module tb_wfetch;\n  reg clk = 0;\n  reg rst = 1;\n  integer t = 0;\n");
    let cycles = stims.iter().map(Vec::len).max().unwrap();
    for (k, ((q, m), st)) in mats.iter().zip(stims).enumerate() {
        let c = &CASES[k];
        let nb = (c.lanes / 32).max(1);
        let ws = c.slices * (c.lanes * 8 + nb * 36);
        let groups = c.rows.div_ceil(c.slices);
        let (caw, gaw, chw) = (
            addr_bits(groups * m.chunks),
            addr_bits(groups),
            addr_bits(m.chunks),
        );
        let saw = addr_bits(m.macros[1].depth);
        let texts = mat_hex(q, m, c.lanes).unwrap();
        for (r, t) in m.macros.iter().zip(&texts) {
            assert_eq!(t.lines().count(), r.depth, "{} lines", r.file);
            std::fs::write(dir.join(&r.file), t).unwrap();
        }
        // Stimulus: {en, grp[15:0], chunk[15:0]}.
        let mut sh = String::new();
        // Padded with idle cycles to the run's length.
        let pad = std::iter::repeat_n(&(false, 0, 0), cycles + 8 - st.len());
        for &(en, g, ch) in st.iter().chain(pad) {
            let _ = writeln!(
                sh,
                "{:09x}",
                ((en as u64) << 32) | ((g as u64) << 16) | ch as u64
            );
        }
        std::fs::write(dir.join(format!("st{k}.hex")), sh).unwrap();
        let sl = &m.scales;
        let kinds = 1 + m.asym as usize;
        let _ = writeln!(s, "  wire [32:0] st{k};\n  tls_rom #(.W(33), .D({}), .AW(12), .FILE(\"st{k}.hex\")) st{k}_r (.clk(clk), .en(1'b1), .addr(t[11:0]), .data(st{k}));", cycles + 8);
        let _ = writeln!(
            s,
            "  wire en{k} = st{k}[32] && !rst;\n  wire [{}:0] w{k};",
            ws - 1
        );
        for (r, (p, aw)) in m.macros.iter().zip([("c", caw), ("s", saw), ("e", gaw)]) {
            let _ = writeln!(
                s,
                "  wire m{k}_{p}_en; wire [{}:0] m{k}_{p}_addr; wire [{}:0] m{k}_{p}_q;",
                aw - 1,
                r.width - 1
            );
            let _ = writeln!(s, "  tls_rom #(.W({}), .D({}), .AW({aw}), .FILE(\"{}\")) m{k}{p} (.clk(clk), .en(m{k}_{p}_en), .addr(m{k}_{p}_addr), .data(m{k}_{p}_q));", r.width, r.depth, r.file);
        }
        let e_data = if sl.row8 {
            format!("m{k}_e_q")
        } else {
            let _ = writeln!(s, "  wire m{k}_e_en; wire [{}:0] m{k}_e_addr;", gaw - 1);
            format!("{}'d0", c.slices * 8 * kinds)
        };
        let _ = writeln!(
            s,
            "  tls_wfetch #(.LANES({}), .ROWS({}), .B({}), .COLS({}), .ASYM({}), .SF({}), .DSIGNED({}), .SMODE({}), .GPR({}), .CPGL({}), .SPW({}), .GLB({}), .CAW({caw}), .GAW({gaw}), .CHW({chw}), .SAW({saw})) f{k} (\n    .clk(clk), .rst(rst), .en(en{k}), .addr(st{k}[{}:16] * {} + st{k}[{}:0]), .grp(st{k}[{}:16]), .chunk(st{k}[{}:0]),\n    .c_en(m{k}_c_en), .c_addr(m{k}_c_addr), .c_data(m{k}_c_q), .s_en(m{k}_s_en), .s_addr(m{k}_s_addr), .s_data(m{k}_s_q),\n    .e_en(m{k}_e_en), .e_addr(m{k}_e_addr), .e_data({e_data}), .data(w{k}));",
            c.lanes, c.slices, m.bits, c.cols, m.asym as u8, sl.row8 as u8, !m.asym as u8, sl.mode,
            sl.words_per_row, sl.cpg_log2, sl.per_word, sl.blocks_log2,
            16 + caw - 1, m.chunks, caw - 1, 16 + gaw - 1, chw - 1
        );
        let _ = writeln!(s, "  reg v{k} = 0;\n  always @(posedge clk) begin\n    v{k} <= en{k};\n    if (v{k}) $display(\"%0d %0d %h\", {k}, t, w{k});\n  end");
    }
    let _ = writeln!(
        s,
        "  always #1 clk = ~clk;\n  always @(posedge clk) begin\n    t <= t + 1;\n    if (t == 1) rst <= 0;\n    if (t == {}) $finish;\n  end\nendmodule",
        cycles + 4
    );
    s
}

#[test]
fn wfetch_expands_packed_roms_bit_exact_rows_1_2_and_4() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x005e_ed13);
    let mut mats = Vec::new();
    let mut stims = Vec::new();
    for (k, c) in CASES.iter().enumerate() {
        let q = random_matrix(&mut rng, c);
        let m = mat_rom(&q, c, k);
        // The macros hold the format exactly unless the layout pads.
        let pads = c.cols % c.lanes != 0 || c.format == "a2g96";
        if !pads && c.rows.is_multiple_of(c.slices) {
            assert_eq!(m.stored_bits, m.packed_bits, "{}", c.format);
        } else {
            assert!(m.stored_bits > m.packed_bits, "{}", c.format);
        }
        // Reads start at cycle 2 (reset), every (group, chunk) once in a
        // shuffled order, then a repeat, with idle cycles between.
        let groups = c.rows.div_ceil(c.slices);
        let mut order: Vec<(usize, usize)> = (0..groups)
            .flat_map(|g| (0..m.chunks).map(move |ch| (g, ch)))
            .collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        order.extend_from_slice(&order.clone()[..order.len().min(3)]);
        let mut st = vec![(false, 0, 0); 2];
        for (g, ch) in order {
            st.push((true, g, ch));
            if rng.below(4) == 0 {
                st.push((false, 0, 0));
            }
        }
        mats.push((q, m));
        stims.push(st);
    }
    let tb = testbench(dir.path(), &mats, &stims);
    let tbf = dir.path().join("tb_wfetch.v");
    std::fs::write(&tbf, tb).unwrap();
    let bin = verilator_binary(
        dir.path(),
        "tb_wfetch",
        &[rtl_lib("tls_macros.v"), rtl_lib("tls_wfetch.v"), tbf],
    )
    .expect("verilator builds the testbench");
    let out = run(dir.path(), bin.to_str().unwrap(), &[]).expect("testbench runs");
    let mut seen = vec![0usize; CASES.len()];
    for line in out.lines().filter(|l| !l.starts_with('-')) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 3 {
            continue;
        }
        let (k, t): (usize, usize) = (f[0].parse().unwrap(), f[1].parse().unwrap());
        let c = &CASES[k];
        // The stimulus ROM's registered output adds a cycle: the word
        // printed at t was read with stimulus t - 2.
        let (en, g, ch) = stims[k][t - 2];
        assert!(en, "case {k}: output without a read at {t}");
        let want = expected(&mats[k].0, c, g, ch);
        let nb = (c.lanes / 32).max(1);
        let wsd = (c.lanes * 8 + nb * 36) / 4;
        let got = f[2];
        assert_eq!(got.len(), c.slices * wsd);
        for (j, w) in want.iter().enumerate() {
            if let Some(w) = w {
                let at = got.len() - (j + 1) * wsd;
                assert_eq!(
                    &got[at..at + wsd],
                    w,
                    "case {k} ({}, lanes {}, rows {}): group {g} chunk {ch} slice {j}",
                    c.format,
                    c.lanes,
                    c.slices
                );
            }
        }
        seen[k] += 1;
    }
    for (k, st) in stims.iter().enumerate() {
        assert_eq!(seen[k], st.iter().filter(|s| s.0).count(), "case {k} reads");
    }
}

#[test]
fn wfetch_lint_clean() {
    let dir = tempfile::tempdir().unwrap();
    for (params, name) in [
        (
            "-GROWS=1 -GLANES=16 -GSF=0 -GASYM=1 -GSMODE=1 -GGPR=3 -GCPGL=1",
            "sf16",
        ),
        (
            "-GROWS=2 -GLANES=64 -GSF=1 -GASYM=0 -GSMODE=2 -GSPW=2 -GCOLS=96",
            "row8",
        ),
        ("-GROWS=1 -GLANES=8 -GSF=1 -GASYM=1 -GSMODE=0", "row"),
    ] {
        let mut args: Vec<String> = [
            "--lint-only",
            "-Wall",
            "-Wno-DECLFILENAME",
            "--top-module",
            "tls_wfetch",
        ]
        .map(String::from)
        .to_vec();
        args.extend(params.split(' ').map(String::from));
        args.push(rtl_lib("tls_wfetch.v").display().to_string());
        let o = run(dir.path(), "verilator", &args);
        assert!(o.is_ok(), "{name}: {o:?}");
        let text = o.unwrap();
        assert!(!text.contains("%Warning"), "{name}: {text}");
    }
}
