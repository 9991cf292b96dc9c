//! `--threads N`: every command takes it, 0 is refused naming the flag,
//! and the chip image does not depend on it.

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
