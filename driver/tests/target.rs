//! `build --target-tps-user`: the parallelism chosen for a speed target,
//! and the error an unreachable one gives.

use std::path::Path;
use taalasc::config::ChipsConfig;
use taalasc::{BuildConfig, Step};

fn tiny_llama() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/tiny-llama"
    ))
}

fn config(out: &Path, target: f64) -> BuildConfig {
    let mut c = BuildConfig::new(tiny_llama(), out);
    c.context = Some(16);
    let hw = c.hardware.as_mut().unwrap();
    hw.target_tps_user = Some(target);
    hw.chips = Some(ChipsConfig {
        budget: "hc1".into(),
        min_chips: 1,
    });
    c.stop_after = Some(Step::Partition);
    c
}

/// `(lanes, tokens/s per user)` of every candidate, and the lanes chosen,
/// from the plan's dump.
fn candidates(target: f64) -> (Vec<(usize, f64)>, usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&dir.path().join("x.chip"), target);
    c.stop_after = Some(Step::Plan);
    c.dump_after = vec![Step::Plan];
    let built = taalasc::build(&c).unwrap();
    let text = &built.dumps[0].1;
    let mut all = Vec::new();
    let mut chosen = 0;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# candidate lanes ") {
            let (l, r) = rest.split_once(": ").unwrap();
            let tps: f64 = r.split(' ').next().unwrap().parse().unwrap();
            all.push((l.parse().unwrap(), tps));
        } else if let Some(rest) = line.strip_prefix("plan: ") {
            chosen = rest.split(' ').next().unwrap().parse().unwrap();
        }
    }
    (all, chosen)
}

#[test]
fn a_reachable_target_gets_the_smallest_parallelism_that_meets_it() {
    // 1 token/s: every option meets it; the fewest lanes win (one chip
    // each, least area).
    let (all, chosen) = candidates(1.0);
    assert_eq!(all.len(), taalasc::target::LANE_OPTIONS.len());
    assert_eq!(chosen, 1);
    // More lanes never make a user slower, and they do make it faster.
    for w in all.windows(2) {
        assert!(w[1].1 >= w[0].1, "{all:?}");
    }
    assert!(all[8].1 > 10.0 * all[0].1, "{all:?}");
    // A target between two options' speeds picks the faster of the two.
    let mid = (all[3].1 + all[4].1) / 2.0;
    let (_, chosen) = candidates(mid);
    assert_eq!(chosen, all[4].0);
}

#[test]
fn an_unreachable_target_names_the_best_figure_and_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let e = taalasc::build(&config(&dir.path().join("x.chip"), 1e9))
        .err()
        .expect("1e9 tokens/s per user is out of reach");
    let msg = format!("{e:#}");
    assert!(
        msg.contains("--target-tps-user 1000000000: unreachable on budget `hc1`"),
        "{msg}"
    );
    assert!(msg.contains("the best is"), "{msg}");
    assert!(msg.contains("256 lanes"), "{msg}");
    assert!(!dir.path().join("x.chip").exists());
}
