//! Stage-level golden tests: each stage of the build of every small RTL
//! fixture, snapshotted on its own in its text form: the model IR, the chip
//! image summary, the hardware plan (one line per instruction) and a layer
//! engine's Verilog. A change in planning then shows as a plan diff, not
//! only as a Verilog diff.
//!
//! Snapshots record decisions, not truth (bit-exactness is `rtl.rs`'s and
//! `board.rs`'s job). Refresh with `INSTA_UPDATE=always cargo test -p
//! taalasc-tests --test stages` and review the diff; CI runs with
//! `INSTA_UPDATE=no`, so an unreviewed change fails.

use taalasc::{BuildConfig, Step};
use taalasc_tests::fixture;

/// Builds `name` (4 lanes, 8 positions) and snapshots its stages.
fn stages(name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = BuildConfig::new(fixture(&format!("rtl/{name}")), dir.path().join("chip"));
    cfg.context = Some(8);
    if let Some(h) = cfg.hardware.as_mut() {
        h.lanes = 4;
    }
    cfg.dump_after = vec![Step::Load, Step::Quantize, Step::Plan];
    let built = taalasc::build(&cfg).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    let steps: Vec<Step> = built.dumps.iter().map(|d| d.0).collect();
    assert_eq!(steps, cfg.dump_after, "{name}: a dump is missing");
    for (step, text) in &built.dumps {
        assert!(text.lines().count() > 5, "{name}: {step} dump is {text:?}");
        insta::assert_snapshot!(format!("{name}__{step}"), text);
    }
    let engine = std::fs::read_to_string(dir.path().join("chip/rtl/taalasc_engine_1.v")).unwrap();
    insta::assert_snapshot!(format!("{name}__engine_1.v"), engine);
}

#[test]
fn llama_tied_mqa_stages() {
    stages("llama_tied_mqa");
}

#[test]
fn gpt2_stages() {
    stages("gpt2");
}

#[test]
fn mistral_window_stages() {
    stages("mistral_window");
}

#[test]
fn qwen2_bias_stages() {
    stages("qwen2_bias");
}
