//! `build --target-tps-user N`: the parallelism that meets a speed target.
//!
//! A candidate is one option per stage of the datapath, planned, costed
//! stage by stage and partitioned under the chip budget (RFC 0004):
//!
//! - the matrix-vector stage: MAC lanes × rows per cycle (the vector units
//!   are as wide as the rows);
//! - the attention stage: query heads per pass, KV positions and 32-blocks
//!   per cycle (searched unless `--attn-*` fixes them);
//! - the layers per engine, 1 or all (unless given).
//!
//! A candidate meets the target when one user's tokens per second,
//! `f / L` with `L = Σ stage cycles + Σ link busy and latency cycles` (the
//! report's formula) for the token at the middle of the context, or at
//! the end of `--target-context` positions, reaches it. Among those the
//! fewest chips win, then the least area. An unreachable target is an
//! error that names the best reachable figure and the phase that limits
//! it.
//!
//! ## Search
//!
//! The two stages are nearly separable: a token's cycles are the
//! attention instructions' cycles, which only the attention option and
//! the rows change, plus the rest, which only the matrix-vector option
//! changes; and each option adds its own units' area. So, per
//! layers-per-engine setting:
//!
//! 1. every matrix-vector option is evaluated at the reference attention
//!    (serial, or the one given), and only those no other option beats on
//!    (cycles outside attention, chips, area) are kept;
//! 2. attention moves q and its output a scratchpad line (`rows` values)
//!    at a time, so its cycles also depend on the rows: per rows value of
//!    that front, every attention option is evaluated at the smallest
//!    matrix-vector option with those rows, and only those no other beats
//!    on (attention cycles, area added) are kept;
//! 3. every pair of the two fronts (same rows) is evaluated whole (plan,
//!    costs, partition), and the choice is made among every candidate
//!    evaluated.
//!
//! A pruned option can only lose if a combination's chip count is not
//! monotone in its parts' areas. [`Search::Exhaustive`] evaluates every
//! combination instead; a test checks that both choose the same design.

use crate::system::{partition_with, System};
use anyhow::Context;
use taalasc_image::ImageSource;
use taalasc_partition::Budget;
use taalasc_verilog::perf::{copy_cycles, instr_cycles, SEQ_OVERHEAD, STEP_OVERHEAD};
use taalasc_verilog::plan::{AttnParallel, Instr, Step};
use taalasc_verilog::Plan;

/// The matrix-vector lanes per row a target may choose from (powers of
/// two, as `--lanes` takes them; options past the widest matrix's columns
/// are skipped: they add lanes that read nothing).
pub const LANE_OPTIONS: [usize; 15] = [
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384,
];
/// The rows per cycle a target may choose from (as `--rows` takes them).
pub const ROW_OPTIONS: [usize; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];

/// One evaluated candidate.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// MAC lanes per row of every matrix-vector unit.
    pub lanes: usize,
    /// Rows per cycle of every matrix-vector unit.
    pub rows: usize,
    /// Decoder layers per layer engine.
    pub layers_per_engine: usize,
    /// The attention parallelism of every attention unit.
    pub attn: AttnParallel,
    /// One user's tokens per second.
    pub tps_user: f64,
    /// Chips of the partition.
    pub chips: usize,
    /// Σ chip area in use, mm².
    pub area_mm2: f64,
    /// One token's cycles by phase: matrix-vector, attention, other units,
    /// control (sequencer, copies, links).
    pub phases: [u64; 4],
    /// One token's latency in cycles (the report's `L`).
    pub latency: u64,
}

/// One token's latency in cycles under `sys` (the report's `L`) for the
/// token at 0-based position `pos` of `plan` (attention covers `pos + 1`
/// positions; the report's headline is at `plan.context / 2`).
pub fn latency_at(plan: &Plan, sys: &System, pos: usize) -> u64 {
    taalasc_verilog::cost::stage_costs_at(plan, pos)
        .iter()
        .map(|s| s.cycles)
        .sum::<u64>()
        + link_cycles(sys)
}

/// Cycles a token spends on the partition's links.
fn link_cycles(sys: &System) -> u64 {
    sys.partition
        .links
        .iter()
        .map(|l| l.busy_cycles + l.latency_cycles)
        .sum()
}

/// One token's cycles at `pos` by phase (see [`Candidate::phases`]).
pub fn phases(plan: &Plan, pos: usize) -> [u64; 4] {
    let mut p = [0u64; 4];
    for st in &plan.schedule {
        match st {
            Step::Copy { n, .. } => p[3] += copy_cycles(plan, *n),
            Step::Run { engine, pc0, pc1 } => {
                p[3] += STEP_OVERHEAD;
                for i in &plan.engines[*engine].program[*pc0..*pc1] {
                    p[3] += SEQ_OVERHEAD;
                    let c = instr_cycles(plan, *engine, i, pos);
                    let k = match i {
                        Instr::Linear { .. } => 0,
                        Instr::Attn { .. } => 1,
                        _ => 2,
                    };
                    p[k] += c;
                }
            }
        }
    }
    p
}

const PHASE_NAMES: [&str; 4] = [
    "matrix-vector products",
    "attention",
    "norms, element-wise units, RoPE and A8 conversions",
    "control (sequencer, copies between engines, links)",
];

/// Evaluates `lanes` × `rows` with attention `attn` for the image: plan,
/// stage costs, partition, and one user's speed for the token at 0-based
/// position `pos`. `None` when it fits no partition.
fn evaluate(
    image: &dyn ImageSource,
    (lanes, rows): (usize, usize),
    (users, attn, per_engine): (usize, AttnParallel, usize),
    (budget, min_chips): (&Budget, usize),
    pos: usize,
) -> anyhow::Result<Option<(Candidate, Plan, System)>> {
    let mut plan = taalasc_verilog::plan::plan_shared(image, lanes, rows, users, true, per_engine)?;
    plan.set_attn_parallel(attn)?;
    let sys = match partition_with(&plan, budget.clone(), min_chips) {
        Ok(s) => s,
        // A candidate that fits no partition is not a choice.
        Err(_) => return Ok(None),
    };
    let l = latency_at(&plan, &sys, pos).max(1);
    let c = Candidate {
        lanes,
        rows,
        layers_per_engine: per_engine,
        attn,
        tps_user: budget.clock_mhz * 1e6 / l as f64,
        chips: sys.partition.chips.len(),
        area_mm2: sys.partition.chips.iter().map(|c| c.area_mm2).sum(),
        phases: phases(&plan, pos),
        latency: l,
    };
    Ok(Some((c, plan, sys)))
}

/// Every attention parallelism the model's attention units accept: query
/// heads per pass dividing the heads per KV head, KV positions per cycle a
/// power of two dividing the context, 32-blocks per cycle dividing
/// head_dim / 32 (what [`Plan::set_attn_parallel`] checks).
pub fn attn_options(probe: &Plan) -> Vec<AttnParallel> {
    let units: Vec<_> = probe.engines.iter().flat_map(|e| &e.attns).collect();
    let Some(first) = units.first() else {
        return vec![AttnParallel::default()];
    };
    let group = first.heads / first.kv_heads.max(1);
    let blocks = first.head_dim / taalasc_numerics::A8_BLOCK;
    let divisors = |n: usize| (1..=n).filter(move |d| n.is_multiple_of(*d));
    let mut out = Vec::new();
    for heads in divisors(group) {
        for blocks in divisors(blocks) {
            let mut positions = 1;
            while positions <= probe.context && probe.context.is_multiple_of(positions) {
                let a = AttnParallel {
                    heads,
                    positions,
                    blocks,
                };
                if probe.clone().set_attn_parallel(a).is_ok() {
                    out.push(a);
                }
                positions *= 2;
            }
        }
    }
    out
}

/// Drops every option another one beats or ties on all of `key`'s
/// criteria (smaller is better); of identical keys the first stays.
fn pareto<T>(items: Vec<T>, key: impl Fn(&T) -> [f64; 3]) -> Vec<T> {
    let keys: Vec<[f64; 3]> = items.iter().map(&key).collect();
    let beaten = |i: usize| {
        keys.iter().enumerate().any(|(j, k)| {
            j != i && k.iter().zip(&keys[i]).all(|(a, b)| a <= b) && (k != &keys[i] || j < i)
        })
    };
    let keep: Vec<bool> = (0..items.len()).map(|i| !beaten(i)).collect();
    items
        .into_iter()
        .zip(keep)
        .filter_map(|(x, k)| k.then_some(x))
        .collect()
}

/// How [`choose`] searches the options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Search {
    /// Per stage, only the options no other option of that stage beats
    /// (the method of the module doc).
    Pruned,
    /// Every combination (the reference the pruned search is tested
    /// against; slow on large models).
    Exhaustive,
}

/// A speed target: tokens/s per user for the token at the end of
/// `context` positions (`None`: the middle of the built context).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Target {
    /// Tokens per second for one user (`--target-tps-user`).
    pub tps_user: f64,
    /// Positions of context the token attends to (`--target-context`).
    pub context: Option<usize>,
}

impl Target {
    /// The 0-based position of the token the target is met for, in a
    /// build of `built` positions of context.
    pub fn position(&self, built: usize) -> usize {
        self.context.map_or(built / 2, |n| n - 1)
    }
}

/// Picks the matrix-vector parallelism, the attention parallelism (`attn`
/// `None`: searched; given: kept) and the layers per engine (searched over
/// 1 and all layers unless given) for `target`: the plan and partition of
/// the candidate with the fewest chips, then the least area, among those
/// that meet it, and every candidate evaluated (for the record). Errors
/// when none meets it, with the best one's figures.
pub fn choose(
    image: &dyn ImageSource,
    goal: Target,
    (users, attn, per_engine): (usize, Option<AttnParallel>, Option<usize>),
    budget: &Budget,
    min_chips: usize,
    search: Search,
) -> anyhow::Result<(Plan, System, Vec<Candidate>)> {
    let Target {
        tps_user: target,
        context,
    } = goal;
    anyhow::ensure!(
        target.is_finite() && target > 0.0,
        "--target-tps-user {target}: expected a positive number of tokens per second"
    );
    // The widest matrix: lanes past it read nothing.
    let probe = taalasc_verilog::plan::plan_with(image, 1, users, true)?;
    if let Some(n) = context {
        anyhow::ensure!(
            (1..=probe.context).contains(&n),
            "--target-context {n}: expected 1 to the built context ({} positions)",
            probe.context
        );
    }
    let pos = goal.position(probe.context);
    let widest = probe
        .engines
        .iter()
        .flat_map(|e| &e.program)
        .filter_map(|i| match i {
            Instr::Linear { cols, .. } => Some(*cols),
            _ => None,
        })
        .max()
        .unwrap_or(1);
    // One engine per layer, or one for all of them (one user's token is
    // in one layer at a time: the shared engine gives the same speed per
    // user for about 1/layers of the logic, and fewer tokens in flight).
    let n_layers = image.info().model.hparams.n_layers.max(1);
    let sharing: Vec<usize> = match per_engine {
        Some(g) => vec![g],
        None if n_layers > 1 => vec![1, n_layers],
        None => vec![1],
    };
    let mv_options: Vec<(usize, usize)> = LANE_OPTIONS
        .iter()
        .filter(|&&l| l < 2 * widest)
        .flat_map(|&l| ROW_OPTIONS.iter().map(move |&r| (l, r)))
        .collect();
    let at_options = match attn {
        Some(a) => vec![a],
        None => attn_options(&probe),
    };
    let reference = attn.unwrap_or_default();

    let mut all: Vec<Candidate> = Vec::new();
    let mut best: Option<(Candidate, Plan, System)> = None;
    // Every option evaluated: its candidate's index in `all`, or `None`
    // when it fit no partition.
    let mut done: std::collections::HashMap<_, Option<usize>> = std::collections::HashMap::new();
    let mut eval =
        |lr: (usize, usize), a: AttnParallel, g: usize| -> anyhow::Result<Option<Candidate>> {
            let key = (lr, a.heads, a.positions, a.blocks, g);
            if let Some(&k) = done.get(&key) {
                return Ok(k.map(|k| all[k].clone()));
            }
            let Some((c, plan, sys)) = evaluate(image, lr, (users, a, g), (budget, min_chips), pos)
                .with_context(|| {
                    format!(
                        "planning at {} lanes x {} rows, attention {}, {g} layer(s) per engine",
                        lr.0,
                        lr.1,
                        attn_text(&a)
                    )
                })?
            else {
                done.insert(key, None);
                return Ok(None);
            };
            done.insert(key, Some(all.len()));
            all.push(c.clone());
            if c.tps_user >= target
                && best
                    .as_ref()
                    .is_none_or(|(b, _, _)| (c.chips, c.area_mm2) < (b.chips, b.area_mm2))
            {
                best = Some((c.clone(), plan, sys));
            }
            Ok(Some(c))
        };
    for &g in &sharing {
        if search == Search::Exhaustive {
            for &lr in &mv_options {
                for &a in &at_options {
                    eval(lr, a, g)?;
                }
            }
            continue;
        }
        // Stage 1, the matrix-vector and vector units: every option at
        // the reference attention; its cycles without attention's.
        let mut mv = Vec::new();
        for &lr in &mv_options {
            if let Some(c) = eval(lr, reference, g)? {
                mv.push(c);
            }
        }
        let front = pareto(mv.clone(), |c| {
            [(c.latency - c.phases[1]) as f64, c.chips as f64, c.area_mm2]
        });
        // Stage 2, attention, per rows per cycle (attention moves q and
        // its output a scratchpad line at a time): every option at the
        // smallest matrix-vector option with those rows; its attention
        // cycles and the area it adds. Then every pair of the fronts,
        // evaluated whole.
        let mut row_options: Vec<usize> = front.iter().map(|c| c.rows).collect();
        row_options.sort_unstable();
        row_options.dedup();
        for rows in row_options {
            let base = mv
                .iter()
                .filter(|c| c.rows == rows)
                .min_by(|a, b| a.area_mm2.total_cmp(&b.area_mm2))
                .cloned()
                .expect("a front member has these rows");
            let mut at = Vec::new();
            for &a in &at_options {
                if let Some(c) = eval((base.lanes, rows), a, g)? {
                    at.push(c);
                }
            }
            let at = pareto(at, |c| {
                [c.phases[1] as f64, c.area_mm2 - base.area_mm2, 0.0]
            });
            for m in front.iter().filter(|m| m.rows == rows) {
                for a in &at {
                    eval((m.lanes, rows), a.attn, g)?;
                }
            }
        }
    }
    match best {
        Some((_, plan, sys)) => Ok((plan, sys, all)),
        None => {
            // The fastest; of equally fast ones, the smallest.
            let Some(top) = all.iter().max_by(|a, b| {
                a.tps_user
                    .total_cmp(&b.tps_user)
                    .then(b.area_mm2.total_cmp(&a.area_mm2))
            }) else {
                anyhow::bail!(
                    "--target-tps-user {target}: no parallelism fits the chip budget `{}`",
                    budget.name
                );
            };
            let (k, worst) = top
                .phases
                .iter()
                .enumerate()
                .max_by_key(|(_, v)| **v)
                .expect("four phases");
            let total: u64 = top.phases.iter().sum();
            let why = match k {
                0 => ": the widest matrix-vector option that fits is not enough",
                1 if attn.is_none() => ": the widest attention option that fits is not enough",
                1 => ", which --attn-heads, --attn-positions and --attn-blocks set (leave them out to search them)",
                _ => ", which no wider option searched shortens further",
            };
            anyhow::bail!(
                "--target-tps-user {target}{}: unreachable on budget `{}`; the best is {:.1} tokens/s per user \
                 ({} lanes x {} rows, attention {}, {} layer(s) per engine, {} chip(s), {:.1} mm2). A token takes {} cycles there, {:.0}% of them in {} ({} cycles){why}",
                context.map_or(String::new(), |n| format!(" at {n} positions of context")),
                budget.name,
                top.tps_user,
                top.lanes,
                top.rows,
                attn_text(&top.attn),
                top.layers_per_engine,
                top.chips,
                top.area_mm2,
                total,
                100.0 * *worst as f64 / total.max(1) as f64,
                PHASE_NAMES[k],
                worst,
            )
        }
    }
}

/// `HP heads x KP positions x BPC blocks per cycle`.
pub fn attn_text(a: &AttnParallel) -> String {
    format!(
        "{} head(s) x {} position(s) x {} block(s) per cycle",
        a.heads, a.positions, a.blocks
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BuildConfig;

    /// tiny-llama at 16 positions, as shapes and formats.
    fn tiny() -> crate::estimate::Shapes {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/tiny-llama");
        let mut c = BuildConfig::new(root, "unused.chip");
        c.context = Some(16);
        crate::estimate::shapes(&c).unwrap().0
    }

    fn hc1() -> Budget {
        Budget::load("hc1").unwrap()
    }

    #[test]
    fn the_stages_cycles_and_areas_add_up() {
        // What the pruning relies on: attention's cycles depend only on
        // the attention option, the other cycles only on the
        // matrix-vector option, and each adds its own area.
        let image = tiny();
        let ev = |lr, a: AttnParallel| {
            evaluate(&image, lr, (1, a, 1), (&hc1(), 1), 8)
                .unwrap()
                .unwrap()
                .0
        };
        let serial = AttnParallel::default();
        let wide = AttnParallel {
            heads: 2,
            positions: 4,
            blocks: 1,
        };
        // Two matrix-vector options with the same rows (attention's
        // cycles depend on the rows too).
        let (small, big) = ((1, 4), (64, 4));
        let (s0, s1, b0, b1) = (
            ev(small, serial),
            ev(small, wide),
            ev(big, serial),
            ev(big, wide),
        );
        assert!(s1.phases[1] < s0.phases[1], "{s0:?} {s1:?}");
        assert!(b0.latency - b0.phases[1] < s0.latency - s0.phases[1]);
        // ... and the rows do change them.
        let rows8 = ev((64, 8), wide);
        assert_ne!(rows8.phases[1], b1.phases[1]);
        assert_eq!(s1.phases[1], b1.phases[1]);
        assert_eq!(s0.phases[1], b0.phases[1]);
        assert_eq!(s1.latency - s1.phases[1], s0.latency - s0.phases[1]);
        assert_eq!(b1.latency - b1.phases[1], b0.latency - b0.phases[1]);
        let (ds, db) = (s1.area_mm2 - s0.area_mm2, b1.area_mm2 - b0.area_mm2);
        // (Within 0.1 %: the area model is not exactly additive.)
        assert!(ds > 0.0 && (ds - db).abs() < 1e-3 * ds, "{ds} {db}");
    }

    #[test]
    fn the_pruned_search_chooses_what_every_combination_would() {
        let image = tiny();
        let run = |tps_user, search| {
            let t = Target {
                tps_user,
                context: None,
            };
            choose(&image, t, (1, None, None), &hc1(), 1, search)
        };
        // The fastest design on record sets the range of targets.
        let (_, _, all) = run(1.0, Search::Exhaustive).unwrap();
        let fastest = all.iter().map(|c| c.tps_user).fold(0.0, f64::max);
        let n_pairs = all.len();
        let mut distinct = std::collections::BTreeSet::new();
        for k in 1..=12 {
            let target = fastest * k as f64 / 12.0;
            let (p, ps, pruned_all) = run(target, Search::Pruned).unwrap();
            let (e, es, _) = run(target, Search::Exhaustive).unwrap();
            assert!(
                pruned_all.len() < n_pairs / 2,
                "{} of {n_pairs}",
                pruned_all.len()
            );
            let figures = |plan: &Plan, sys: &System| {
                (
                    sys.partition.chips.len(),
                    sys.partition.chips.iter().map(|c| c.area_mm2).sum::<f64>(),
                    plan.lanes,
                    plan.rows,
                    plan.attn_par,
                )
            };
            let (pf, ef) = (figures(&p, &ps), figures(&e, &es));
            assert_eq!((pf.0, pf.1), (ef.0, ef.1), "target {target}: {pf:?} {ef:?}");
            assert!(budget_tps(&p, &ps) >= target);
            distinct.insert(format!("{pf:?}"));
        }
        // The targets reach designs with attention wider than serial.
        assert!(distinct.len() >= 4, "{distinct:?}");
        assert!(distinct
            .iter()
            .any(|d| !d.contains("heads: 1, positions: 1, blocks: 1")));
    }

    #[test]
    fn a_target_at_a_context_is_met_there() {
        let image = tiny();
        let run = |tps_user, context| {
            let t = Target { tps_user, context };
            choose(&image, t, (1, None, None), &hc1(), 1, Search::Pruned)
        };
        // Candidates' speeds at the last of 16 positions are below those
        // at the middle (attention covers more positions) for the same
        // design.
        let (_, _, mid) = run(1.0, None).unwrap();
        let (_, _, end) = run(1.0, Some(16)).unwrap();
        let (m, e) = (&mid[0], &end[0]);
        assert_eq!((m.lanes, m.rows, m.attn), (e.lanes, e.rows, e.attn));
        assert!(
            e.tps_user < m.tps_user && e.phases[1] > m.phases[1],
            "{m:?} {e:?}"
        );
        // A target that the middle-of-context choice misses at the end:
        // the choice at the end meets it there, with more area.
        let fastest = mid.iter().map(|c| c.tps_user).fold(0.0, f64::max);
        let mut differs = false;
        for k in 1..=8 {
            let target = fastest * k as f64 / 10.0;
            let (pm, sm, _) = run(target, None).unwrap();
            let (pe, se, _) = run(target, Some(16)).unwrap();
            let f = |plan: &Plan, sys: &System| {
                sys.budget.clock_mhz * 1e6 / latency_at(plan, sys, 15).max(1) as f64
            };
            assert!(f(&pe, &se) >= target, "target {target}");
            if f(&pm, &sm) < target {
                differs = true;
                let area =
                    |sys: &System| -> f64 { sys.partition.chips.iter().map(|c| c.area_mm2).sum() };
                assert!(area(&se) > area(&sm), "target {target}");
            }
        }
        assert!(differs, "no target told the two positions apart");
        let Err(e) = run(1.0, Some(17)) else {
            panic!("a context past the built one was accepted");
        };
        assert!(
            format!("{e:#}")
                .contains("--target-context 17: expected 1 to the built context (16 positions)"),
            "{e:#}"
        );
    }

    fn budget_tps(plan: &Plan, sys: &System) -> f64 {
        sys.budget.clock_mhz * 1e6 / latency_at(plan, sys, plan.context / 2).max(1) as f64
    }
}
