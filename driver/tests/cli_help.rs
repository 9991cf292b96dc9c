//! The binary's help names every verb and option users rely on.

use std::process::Command;

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_taalasc"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn every_verb_has_help() {
    let top = help(&["--help"]);
    for verb in ["inspect", "run", "eval", "build"] {
        assert!(top.contains(verb), "top-level help lacks `{verb}`:\n{top}");
    }
    assert!(help(&["run", "--help"]).contains("--dump-logits"));
    assert!(help(&["eval", "--help"]).contains("--ctx"));
    assert!(help(&["inspect", "--help"]).contains("--json"));
    let build = help(&["build", "--help"]);
    for opt in [
        "--bits",
        "--rom-budget",
        "--bpw",
        "--calib",
        "--quantizer",
        "--context",
        "--layer-format",
    ] {
        assert!(build.contains(opt), "build help lacks `{opt}`");
    }
    assert!(help(&["run", "--help"]).contains("--engine"));
}

#[test]
fn run_needs_a_prompt() {
    let out = Command::new(env!("CARGO_BIN_EXE_taalasc"))
        .args(["run", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "clap usage errors exit with 2");
}

#[test]
fn a_closed_output_pipe_ends_quietly() {
    // `taalasc inspect --ir MODEL | head -1`: the reader goes away before the
    // IR is written. No panic, no error message, success.
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/tiny-llama");
    let mut child = Command::new(env!("CARGO_BIN_EXE_taalasc"))
        .args(["inspect", "--ir", model])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // close the read end before anything is written
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert!(err.is_empty(), "{err}");
}
