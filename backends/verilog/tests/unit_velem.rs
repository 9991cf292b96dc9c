//! `tls_elem` with V lanes (RFC 0005: vector-wide element-wise units)
//! against `taalasc_numerics`, bit for bit, at V = 1, 4 and 8 side by
//! side: residual add, W48 add and multiply, SiLU, GELU and copy, vectors
//! whose length is not a multiple of V (the last line is masked), outputs
//! over an input, and n = 0. Every scratchpad word of every width is
//! compared with the Rust model, and each instruction's cycles with the
//! unit's formula (`L + 4`, `2L + 5`, `L = ceil(n / V)`).

use std::path::Path;
use std::process::Command;

use taalasc_numerics::{self as nx, W_MAX, W_MIN};
use taalasc_verilog::{tables, tools};

mod common;
use common::Rng;

const SD: usize = 4096;
const MASK48: u64 = (1 << 48) - 1;
const WIDTHS: [usize; 3] = [1, 4, 8];

fn w48(x: i64) -> u64 {
    x as u64 & MASK48
}

fn sext48(v: u64) -> i64 {
    ((v << 16) as i64) >> 16
}

fn w48_value(rng: &mut Rng) -> i64 {
    match rng.below(10) {
        0 => rng.pick(&[W_MIN, W_MAX, 0, 1, -1, 1 << 24, -(1 << 24)]),
        _ => (rng.next_u64() as i64) >> (16 + rng.below(48)),
    }
}

/// Around a table's range `[-lo, lo)` (real), edges included.
fn around(rng: &mut Rng, lo: i64) -> i64 {
    let e = lo << 24;
    match rng.below(6) {
        0 => rng.pick(&[-e - 1, -e, -e + 1, e - 1, e, e + 1, 0, -1, 1, W_MIN, W_MAX]),
        _ => (rng.next_u64() as i64) % (e + (e >> 2)),
    }
}

struct Ins {
    op: u8,
    a: usize,
    b: usize,
    dst: usize,
    n: usize,
}

impl Ins {
    fn word(&self) -> u128 {
        self.op as u128
            | (self.a as u128) << 3
            | (self.b as u128) << 19
            | (self.dst as u128) << 35
            | (self.n as u128) << 51
    }
    fn cycles(&self, v: usize) -> u64 {
        let l = self.n.div_ceil(v) as u64;
        match (self.n, self.op) {
            (0, _) => 1,
            (_, 3 | 4) => 2 * l + 5,
            _ => l + 4,
        }
    }
}

fn apply(ins: &Ins, spad: &mut [u64]) {
    for i in 0..ins.n {
        let (x, y) = (sext48(spad[ins.a + i]), sext48(spad[ins.b + i]));
        let z = match ins.op {
            0 => nx::residual_add(x as i32, y) as i64,
            1 => nx::add_w48(x, y),
            2 => nx::mul_w48(x, y),
            3 => nx::silu(x),
            4 => nx::gelu(x),
            _ => x,
        };
        spad[ins.dst + i] = w48(z);
    }
}

#[test]
fn vector_elem_bit_exact_at_1_4_and_8_lanes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    tables::write_tables(&dir.join("tables")).unwrap();
    let mut rng = Rng(0x7e1e_3000_9e37_79b9);
    let mut spad = vec![0u64; SD];
    for w in spad.iter_mut() {
        *w = w48(w48_value(&mut rng));
    }
    // Vectors aligned to the widest line (8 words), as the plan aligns them.
    let mut next = 0usize;
    let mut alloc = |n: usize| {
        let at = next;
        next += n.div_ceil(8) * 8 + 8;
        assert!(next <= SD);
        at
    };
    let mut prog = Vec::new();
    for (op, n, alias) in [
        (0u8, 61usize, 0u8),
        (0, 64, 1),
        (1, 37, 2),
        (2, 29, 0),
        (2, 8, 1),
        (3, 45, 1),
        (4, 33, 0),
        (5, 13, 0),
        (3, 7, 0),
        (4, 64, 2),
        (1, 1, 0),
    ] {
        let a = alloc(n);
        let b = alloc(n);
        let dst = match alias {
            1 => a,
            2 => b,
            _ => alloc(n),
        };
        for i in 0..n {
            let x = match op {
                0 => (rng.next_u64() as i32 >> rng.below(32)) as i64,
                3 => around(&mut rng, 16),
                4 => around(&mut rng, 8),
                _ => w48_value(&mut rng),
            };
            spad[a + i] = w48(x);
        }
        prog.push(Ins { op, a, b, dst, n });
    }
    let a = alloc(8);
    prog.push(Ins {
        op: 3,
        a,
        b: a,
        dst: a,
        n: 0,
    });

    let hex = |words: &mut dyn Iterator<Item = String>| words.collect::<Vec<_>>().join("\n") + "\n";
    std::fs::write(
        dir.join("spad_in.hex"),
        hex(&mut spad.iter().map(|w| format!("{w:012x}"))),
    )
    .unwrap();
    let end = Ins {
        op: 7,
        a: 0,
        b: 0,
        dst: 0,
        n: 0xfffff,
    };
    std::fs::write(
        dir.join("prog.hex"),
        hex(&mut prog
            .iter()
            .chain([&end])
            .map(|i| format!("{:020x}", i.word()))),
    )
    .unwrap();

    let mut want = spad.clone();
    for ins in &prog {
        apply(ins, &mut want);
    }

    let srcs = vec![
        tools::rtl_lib("tls_macros.v"),
        tools::rtl_lib("tls_elem.v"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tb/tb_velem.v"),
    ];
    let bin = tools::verilator_binary(dir, "tb_velem", &srcs).unwrap();
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
                "V = {v}: cycles of instruction {k} (op {}, n {})",
                ins.op,
                ins.n
            );
        }
    }
}

#[test]
fn vector_elem_lint_clean() {
    for v in [1, 2, 4, 8, 64] {
        let out = Command::new("verilator")
            .args([
                "--lint-only",
                "-Wall",
                "-Wno-DECLFILENAME",
                "--top-module",
                "tls_elem",
            ])
            .arg(format!("-GV={v}"))
            .arg(tools::rtl_lib("tls_elem.v"))
            .arg(tools::rtl_lib("tls_macros.v"))
            .output()
            .expect("verilator is not installed (apt-get install -y verilator)");
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && text.trim().is_empty(),
            "V = {v}:\n{text}"
        );
    }
}
