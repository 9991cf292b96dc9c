//! `build --target-tps-user N`: the parallelism that meets a speed target.
//!
//! Every candidate parallelism is planned, costed stage by stage and
//! partitioned under the chip budget (RFC 0004); a candidate meets the
//! target when one user's tokens per second, `f / L` with
//! `L = Σ stage cycles + Σ link busy and latency cycles` (the report's
//! formula), reaches it. Among those the fewest chips win, then the least
//! area. An unreachable target is an error that names the best reachable
//! figure and the phase that limits it.

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
    /// One user's tokens per second.
    pub tps_user: f64,
    /// Chips of the partition.
    pub chips: usize,
    /// Σ chip area in use, mm².
    pub area_mm2: f64,
    /// One token's cycles by phase: matrix-vector, attention, other units,
    /// control (sequencer, copies, links).
    pub phases: [u64; 4],
}

/// One token's latency in cycles under `sys` (the report's `L`).
pub fn latency_cycles(sys: &System) -> u64 {
    sys.stages.iter().map(|s| s.cycles).sum::<u64>()
        + sys
            .partition
            .links
            .iter()
            .map(|l| l.busy_cycles + l.latency_cycles)
            .sum::<u64>()
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

/// Evaluates `lanes` × `rows` for the image: plan, stage costs, partition.
fn evaluate(
    image: &dyn ImageSource,
    (lanes, rows): (usize, usize),
    (users, attn, per_engine): (usize, AttnParallel, usize),
    budget: &Budget,
    min_chips: usize,
) -> anyhow::Result<Option<(Candidate, Plan, System)>> {
    let mut plan = taalasc_verilog::plan::plan_shared(image, lanes, rows, users, true, per_engine)?;
    plan.set_attn_parallel(attn)?;
    let sys = match partition_with(&plan, budget.clone(), min_chips) {
        Ok(s) => s,
        // A candidate that fits no partition is not a choice.
        Err(_) => return Ok(None),
    };
    let l = latency_cycles(&sys).max(1);
    let c = Candidate {
        lanes,
        rows,
        layers_per_engine: per_engine,
        tps_user: budget.clock_mhz * 1e6 / l as f64,
        chips: sys.partition.chips.len(),
        area_mm2: sys.partition.chips.iter().map(|c| c.area_mm2).sum(),
        phases: phases(&plan, plan.context / 2),
    };
    Ok(Some((c, plan, sys)))
}

/// Picks the matrix-vector parallelism and the layers per engine for
/// `target` tokens/s per user (the attention parallelism `attn` is given,
/// not searched; the layers per engine are searched over 1 and all layers
/// unless given): the plan and
/// partition of the candidate with the fewest chips, then the least area,
/// among those that meet it, and every candidate evaluated (for the
/// record). Errors when none meets it, with the best one's figures.
pub fn choose(
    image: &dyn ImageSource,
    target: f64,
    (users, attn, per_engine): (usize, AttnParallel, Option<usize>),
    budget: &Budget,
    min_chips: usize,
) -> anyhow::Result<(Plan, System, Vec<Candidate>)> {
    anyhow::ensure!(
        target.is_finite() && target > 0.0,
        "--target-tps-user {target}: expected a positive number of tokens per second"
    );
    let mut all = Vec::new();
    let mut best: Option<(Candidate, Plan, System)> = None;
    // The widest matrix: lanes past it read nothing.
    let probe = taalasc_verilog::plan::plan_with(image, 1, users, true)?;
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
    let options = LANE_OPTIONS
        .iter()
        .filter(|&&l| l < 2 * widest)
        .flat_map(|&l| ROW_OPTIONS.iter().map(move |&r| (l, r)))
        .flat_map(|lr| sharing.iter().map(move |&g| (lr, g)));
    for ((lanes, rows), g) in options {
        let Some((c, plan, sys)) =
            evaluate(image, (lanes, rows), (users, attn, g), budget, min_chips).with_context(
                || format!("planning at {lanes} lanes x {rows} rows, {g} layer(s) per engine"),
            )?
        else {
            continue;
        };
        all.push(c.clone());
        if c.tps_user < target {
            continue;
        }
        let better = match &best {
            None => true,
            Some((b, _, _)) => (c.chips, c.area_mm2) < (b.chips, b.area_mm2),
        };
        if better {
            best = Some((c, plan, sys));
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
            anyhow::bail!(
                "--target-tps-user {target}: unreachable on budget `{}`; the best is {:.1} tokens/s per user \
                 ({} lanes x {} rows, {} layer(s) per engine, {} chip(s), {:.1} mm2). A token takes {} cycles there, {:.0}% of them in {} ({} cycles){}",
                budget.name,
                top.tps_user,
                top.lanes,
                top.rows,
                top.layers_per_engine,
                top.chips,
                top.area_mm2,
                total,
                100.0 * *worst as f64 / total.max(1) as f64,
                PHASE_NAMES[k],
                worst,
                if k == 0 {
                    ": the widest matrix-vector option is not enough"
                } else {
                    ", which wider matrix-vector units do not shorten"
                }
            )
        }
    }
}
