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

/// One candidate of the plan's dump.
#[derive(Debug)]
struct Cand {
    lanes: usize,
    rows: usize,
    /// Decoder layers per layer engine.
    shared: usize,
    tps: f64,
    area: f64,
    /// Attention heads, positions and blocks per cycle.
    attn: (usize, usize, usize),
}

impl Cand {
    fn key(&self) -> (usize, usize, usize) {
        (self.lanes, self.rows, self.shared)
    }
}

/// Every candidate, and the `(lanes, rows, layers per engine)` chosen,
/// from the plan's dump.
fn candidates(target: f64) -> (Vec<Cand>, (usize, usize, usize)) {
    candidates_with(target, None)
}

/// [`candidates`] with the attention parallelism fixed (`--attn-*`).
fn candidates_with(
    target: f64,
    attn: Option<(usize, usize, usize)>,
) -> (Vec<Cand>, (usize, usize, usize)) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&dir.path().join("x.chip"), target);
    if let Some((heads, positions, blocks)) = attn {
        let hw = c.hardware.as_mut().unwrap();
        hw.attn = taalasc_verilog::plan::AttnParallel {
            heads,
            positions,
            blocks,
        };
        hw.search_attn = false;
    }
    c.stop_after = Some(Step::Plan);
    c.dump_after = vec![Step::Plan];
    let built = taalasc::build(&c).unwrap();
    let text = &built.dumps[0].1;
    let mut all = Vec::new();
    let mut chosen = (0, 0, 0);
    for line in text.lines() {
        let w: Vec<&str> = line.split(' ').collect();
        if line.starts_with("# candidate lanes ") {
            // # candidate lanes L rows R layers-per-engine G: T tokens/s
            // per user, C chip(s), A mm2, attention H P B (...)
            all.push(Cand {
                lanes: w[3].parse().unwrap(),
                rows: w[5].parse().unwrap(),
                shared: w[7].trim_end_matches(':').parse().unwrap(),
                tps: w[8].parse().unwrap(),
                area: w[14].parse().unwrap(),
                attn: (
                    w[17].parse().unwrap(),
                    w[18].parse().unwrap(),
                    w[19].parse().unwrap(),
                ),
            });
        } else if line.starts_with("plan: ") {
            // plan: L lanes[ x R rows per cycle], ..., N engines[ (G
            // layers per engine)]
            let rows = if w[3] == "x" {
                w[4].parse().unwrap()
            } else {
                1
            };
            let shared = match line.split_once(" (") {
                Some((_, g)) => g.split(' ').next().unwrap().parse().unwrap(),
                None => 1,
            };
            chosen = (w[1].parse().unwrap(), rows, shared);
        }
    }
    (all, chosen)
}

#[test]
fn a_reachable_target_gets_the_least_area_that_meets_it() {
    // 1 token/s: every option meets it; the narrowest, with both layers
    // on one engine, wins.
    let (all, chosen) = candidates(1.0);
    assert!(all.len() > 40, "{all:?}");
    assert_eq!(chosen, (1, 1, 2));
    let find = |k: (usize, usize, usize)| all.iter().find(|c| c.key() == k).unwrap();
    // More MAC lanes make a user faster.
    let speed = |l: usize, r: usize| find((l, r, 1)).tps;
    assert!(speed(16, 1) > speed(8, 1) && speed(16, 4) > speed(16, 1));
    // Sharing an engine saves logic for about the same speed per user (no
    // copy between the layers: a little faster).
    for (l, r) in [(16, 1), (64, 4)] {
        let (own, shared) = (find((l, r, 1)), find((l, r, 2)));
        assert!(shared.area < own.area, "{own:?} {shared:?}");
        assert!(shared.tps >= own.tps, "{own:?} {shared:?}");
    }
    // A target between the slowest and the fastest: the chosen option
    // meets it, and every option with less area does not (one chip each).
    let fastest = all.iter().map(|c| c.tps).fold(0.0, f64::max);
    let target = (all[0].tps + fastest) / 2.0;
    let (_, key) = candidates(target);
    let pick = find(key);
    assert!(pick.tps >= target, "{pick:?} for {target}");
    for c in &all {
        if c.area < pick.area {
            assert!(
                c.tps < target,
                "{c:?} is smaller than {pick:?} and meets {target}"
            );
        }
    }
}

#[test]
fn attention_is_searched_unless_fixed() {
    // Searched: serial and wider attention options are both evaluated.
    let (all, _) = candidates(1.0);
    assert!(all.iter().any(|c| c.attn == (1, 1, 1)));
    assert!(all.iter().any(|c| c.attn.1 > 1), "{all:?}");
    // Fixed (`--attn-positions 2`): every candidate keeps it.
    let (all, _) = candidates_with(1.0, Some((1, 2, 1)));
    assert!(all.iter().all(|c| c.attn == (1, 2, 1)), "{all:?}");
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
    assert!(msg.contains("lanes x"), "{msg}");
    assert!(!dir.path().join("x.chip").exists());
}

#[test]
fn a_target_context_needs_a_target() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&dir.path().join("x.chip"), 1.0);
    let hw = c.hardware.as_mut().unwrap();
    hw.target_tps_user = None;
    hw.target_context = Some(8);
    let e = taalasc::build(&c).err().expect("no target to meet");
    assert!(
        format!("{e:#}").contains("--target-context 8 sets where --target-tps-user is met"),
        "{e:#}"
    );
    // With a target, the plan meets it at that context.
    let mut c = config(&dir.path().join("y.chip"), 1.0);
    c.hardware.as_mut().unwrap().target_context = Some(16);
    c.stop_after = Some(Step::Plan);
    assert!(taalasc::build(&c).is_ok());
}
