//! `--threads N`: every command takes it, 0 is refused naming the flag,
//! and the chip image does not depend on it. `--simd LEVEL`: both
//! references give the same logits, bit for bit, at every level this CPU has.

use std::path::Path;
use taalasc_tests::*;

/// Every file below a chip folder but `timings.json`, by relative path.
fn folder_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                if rel != "timings.json" {
                    out.push((rel, std::fs::read(&p).unwrap()));
                }
            }
        }
    }
    out.sort();
    out
}

/// Builds `model` with `extra` flags on 1, 2 and 3 threads: the same bytes.
fn same_image_on_any_threads(model: &Path, extra: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let mut first: Option<Vec<(String, Vec<u8>)>> = None;
    for threads in ["1", "2", "3"] {
        let out = tmp.path().join(format!("t{threads}.chip"));
        let mut args = vec![
            "build",
            model.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--threads",
            threads,
        ];
        args.extend_from_slice(extra);
        taalasc_ok(&args);
        let files = folder_bytes(&out);
        assert!(files.iter().any(|(n, _)| n == "weights.safetensors"));
        match &first {
            None => first = Some(files),
            Some(want) => {
                assert_eq!(files.len(), want.len(), "{threads} threads: files");
                for ((n, b), (wn, wb)) in files.iter().zip(want) {
                    assert_eq!(n, wn);
                    assert!(b == wb, "{threads} threads: {n} differs from 1 thread");
                }
            }
        }
    }
}

#[test]
fn tiny_image_is_the_same_on_any_threads() {
    let tiny = repo_root().join("examples/tiny-llama");
    same_image_on_any_threads(&tiny, &["--format", "s3g32h"]);
}

#[test]
fn smollm2_rtn_image_is_the_same_on_any_threads() {
    // Two layers: linears of 576 x 1536, quantized by RTN in parallel
    // slices of rows; the Q8_0 embedding is imported.
    same_image_on_any_threads(
        &smollm2_gguf(),
        &[
            "--layers",
            "2",
            "--no-rtl",
            "--format",
            "a4g32h",
            "--quantizer",
            "rtn",
        ],
    );
}

#[test]
fn every_command_takes_threads_and_refuses_zero() {
    let tiny = repo_root().join("examples/tiny-llama");
    let tiny = tiny.to_str().unwrap();
    // Before or after the verb.
    let out = taalasc_ok(&["--threads", "2", "inspect", tiny, "--json"]);
    assert!(out.contains("\"architecture\""), "{out}");
    taalasc_ok(&["inspect", tiny, "--threads", "1"]);
    taalasc_ok(&[
        "run",
        tiny,
        "--tokens",
        "1,2,3",
        "--max-tokens",
        "2",
        "--threads",
        "2",
    ]);
    let help = taalasc_ok(&["--help"]);
    assert!(help.contains("--threads"), "{help}");
    for verb in ["build", "inspect", "run", "sim", "synth", "report", "eval"] {
        let o = taalasc_run(&[verb, "--threads", "1", "--help"]);
        assert!(o.status.success(), "{verb} --threads 1 --help");
        for bad in ["--threads=0", "--threads=-1", "--threads=two"] {
            let o = taalasc_run(&[verb, tiny, bad]);
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(!o.status.success(), "{verb} {bad} succeeded");
            assert!(err.contains("--threads"), "{verb} {bad}: {err}");
            assert!(!err.contains("panicked"), "{err}");
        }
    }
}

/// `taalasc run MODEL --dump-logits` at `--simd level`: the .npy's bytes.
fn logits_at(model: &Path, level: &str, dir: &Path) -> Vec<u8> {
    let out = dir.join(format!("{level}.npy"));
    taalasc_ok(&[
        "--simd",
        level,
        "run",
        model.to_str().unwrap(),
        "--tokens",
        "1,504,3260,282,4649,314,260,5061,30,330",
        "--max-tokens",
        "1",
        "--dump-logits",
        out.to_str().unwrap(),
    ]);
    std::fs::read(&out).unwrap()
}

#[test]
fn every_simd_level_gives_the_same_logits() {
    // The real SmolLM2 (float: its Q4_1 and Q8_0 blocks) and a 2-layer chip
    // of it (integer: the packed AVX-512 and AVX2 kernels, the portable
    // loop); levels this CPU lacks fall back, so each compares what runs.
    let tmp = tempfile::tempdir().unwrap();
    let chip = tmp.path().join("s.chip");
    taalasc_ok(&[
        "build",
        smollm2_gguf().to_str().unwrap(),
        "-o",
        chip.to_str().unwrap(),
        "--layers",
        "2",
        "--no-rtl",
    ]);
    for model in [smollm2_gguf(), chip] {
        let want = logits_at(&model, "portable", tmp.path());
        assert!(
            want.len() > 10 * 49152 * 4,
            "{}: logits dumped",
            model.display()
        );
        for level in ["avx2", "avx512"] {
            let got = logits_at(&model, level, tmp.path());
            assert!(
                got == want,
                "{}: --simd {level} differs from portable",
                model.display()
            );
        }
    }
    let o = taalasc_run(&["--simd", "sse9", "inspect", "x"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--simd"), "{err}");
    assert!(err.contains("portable, avx2 or avx512"), "{err}");
}
