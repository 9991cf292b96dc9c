//! The build pipeline as a library: named steps in order, each timed;
//! `stop_after` writes nothing; `dump_after` returns a step's text form.

use std::path::Path;
use taalasc::{BuildConfig, Step};

fn tiny_llama() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/tiny-llama"
    ))
}

#[test]
fn every_step_runs_in_order_and_is_timed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.chip");
    let built = taalasc::build(&BuildConfig::new(tiny_llama(), &out)).unwrap();
    let names: Vec<&str> = built.timings.iter().map(|t| t.step).collect();
    assert_eq!(
        names,
        [
            "load",
            "verify-ir",
            "calibrate",
            "choose-formats",
            "quantize",
            "verify-image",
            "plan",
            "partition",
            "emit",
            "write"
        ]
    );
    assert!(built.timings.iter().all(|t| t.seconds >= 0.0));
    assert_eq!(built.out.as_deref(), Some(out.as_path()));
    // The wall times sit beside the outputs, in their own file.
    let t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("timings.json")).unwrap()).unwrap();
    assert_eq!(t["steps"].as_array().unwrap().len(), 10);
    assert!(out.join("rtl/taalasc_chip.v").is_file());
    // The manifest reads back typed.
    let m = taalasc::manifest::Manifest::read(&out).unwrap();
    assert_eq!(m.source.architecture, "LlamaForCausalLM");
    assert!(m.hardware.unwrap().system.is_none());
}

#[test]
fn stop_after_plan_dumps_the_plan_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = BuildConfig::new(tiny_llama(), dir.path().join("x.chip"));
    cfg.stop_after = Some(Step::Plan);
    cfg.dump_after = vec![Step::Plan];
    let built = taalasc::build(&cfg).unwrap();
    assert_eq!(built.last, Step::Plan);
    assert_eq!(built.out, None);
    assert_eq!(built.timings.len(), 7);
    let (step, text) = &built.dumps[0];
    assert_eq!(*step, Step::Plan);
    assert!(text.lines().count() > 20, "{text}");
    // Nothing is left: no chip folder, no staging folder.
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_step_that_does_not_apply_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = BuildConfig::new(tiny_llama(), dir.path().join("x.chip"));
    cfg.hardware = None;
    cfg.dump_after = vec![Step::Calibrate, Step::Plan];
    let built = taalasc::build(&cfg).unwrap();
    assert_eq!(
        built.dumps[0].1,
        "# calibrate: nothing to do (no --calib text)\n"
    );
    assert_eq!(built.dumps[1].1, "# plan: nothing to do (--no-rtl)\n");
    assert!(!dir.path().join("x.chip/rtl").exists());
}

#[test]
fn dumping_after_the_stop_is_an_error() {
    let mut cfg = BuildConfig::new(tiny_llama(), "unused.chip");
    cfg.stop_after = Some(Step::Load);
    cfg.dump_after = vec![Step::Plan];
    let e = taalasc::build(&cfg).err().unwrap();
    assert!(
        e.to_string()
            .contains("--dump-after plan comes after --stop-after load"),
        "{e}"
    );
    assert!(!Path::new("unused.chip").exists());
}
