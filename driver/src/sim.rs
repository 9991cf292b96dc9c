//! `taalasc sim`: the chip's (or board's) RTL under Verilator, compared bit
//! for bit with the integer reference at every unit output and logit, for
//! every user.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use taalasc_verilog::perf::PerfSummary;
use taalasc_verilog::sim::{self, Check, Mismatch};

/// The simulation record `sim` leaves in the simulated folder, for `report`.
pub const SIM_RESULT: &str = "sim/result.json";

/// What to simulate.
#[derive(Clone, Debug, Default)]
pub struct SimConfig {
    /// One token sequence per user, user k in slot k.
    pub users: Vec<Vec<u32>>,
    /// Offer each token after a pseudo-random 0..N idle cycles (fixed seed).
    pub arrival_jitter: u32,
    /// The first N tokens of each user are a prompt, prefilled back to back.
    pub prefill: usize,
    /// Dump waves of the whole run to this VCD file.
    pub vcd: Option<PathBuf>,
    /// Simulate the folder's own Verilog and ROM images where they differ
    /// from what the compiler generates (mutation tests, hand edits).
    pub rtl_from_folder: bool,
}

/// The outcome of a simulation.
pub struct SimOutcome {
    /// Every user bit-exact at every position.
    pub bit_exact: bool,
    /// Positions compared, over all users.
    pub positions: usize,
    /// Values compared, over all users.
    pub values_compared: u64,
    /// The first difference, if any.
    pub first_mismatch: Option<Mismatch>,
    /// Per user.
    pub users: Vec<Check>,
    /// Cycles per token by phase, against the formula.
    pub perf: PerfSummary,
    /// MAC lanes per matrix-vector unit.
    pub lanes: usize,
    /// Tokens simulated.
    pub tokens: usize,
    /// Wall time of the simulation run.
    pub sim_seconds: f64,
    /// Wall time of building the Verilator model (0 when it was built before).
    pub build_seconds: f64,
    /// The Verilator model that ran (in the cache, never in the chip folder).
    pub model: PathBuf,
    /// The chip folder's files simulated in place of the compiler's
    /// (`--rtl-from-folder`).
    pub rtl_from_folder: Vec<String>,
    /// Cycles of every token.
    pub per_token: Vec<taalasc_verilog::sim::Cycles>,
    /// Cycles from the first token in to the last logit out.
    pub total_cycles: u64,
    /// The token-flow model's latencies and total for the same run
    /// (`None` for a board: its links are not modelled).
    pub flow: Option<taalasc_verilog::flow::FlowRun>,
}

/// The last simulation's result, kept in the chip folder for `report`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SimRecord {
    /// The command that ran it.
    pub command: String,
    /// Every user bit-exact.
    pub bit_exact: bool,
    /// Users simulated.
    pub users: usize,
    /// Positions compared.
    pub positions: usize,
    /// Cycles from a token's arrival to its logits.
    pub cycles_per_token: f64,
    /// Cycles between tokens leaving the chip with users in flight.
    pub throughput_cycles_per_token: f64,
}

/// Regenerates the RTL of `chip`, compares it with the folder's, builds its
/// Verilator model in the cache (once per design; see [`crate::simtree`]) and runs
/// `cfg.users` through it, comparing every user with its own reference run.
pub fn simulate(chip: &Path, cfg: &SimConfig) -> anyhow::Result<SimOutcome> {
    // Verilator's make and the simulation run in other folders: every path
    // handed on is absolute.
    let chip = &std::path::absolute(chip).with_context(|| format!("{}", chip.display()))?;
    let (lazy, plan, system) = crate::chip::open_chip(chip)?;
    let board = system.and_then(|s| s.board);
    let image = taalasc_image::ChipImage::read(chip)?;
    // A board simulates as one design from its board/ folder.
    let (sim_sub, top) = match &board {
        Some(_) => ("board", taalasc_verilog::board::BOARD_TOP),
        None => ("", taalasc_verilog::output::TOP),
    };
    let sim_dir = chip.join(sim_sub);
    // The record goes into the chip folder, never through a link planted
    // there: checked before any work.
    crate::output::own_subfolder(&sim_dir, "sim")?;
    let seqs = &cfg.users;
    anyhow::ensure!(!seqs.is_empty(), "give --prompt or --tokens");
    anyhow::ensure!(
        seqs.len() <= plan.users,
        "{} users given, the chip has {} user slots (build with --users {})",
        seqs.len(),
        plan.users,
        seqs.len()
    );
    for (u, s) in seqs.iter().enumerate() {
        anyhow::ensure!(!s.is_empty(), "the prompt has no tokens");
        anyhow::ensure!(
            s.len() <= plan.context,
            "user {u}: {} tokens do not fit the chip's context of {} positions",
            s.len(),
            plan.context
        );
    }
    let vcd = cfg
        .vcd
        .as_deref()
        .map(std::path::absolute)
        .transpose()
        .context("the --vcd path")?;
    // The RTL is regenerated and compared, never taken from the folder.
    let name = crate::manifest::Manifest::read(chip)?.source.architecture;
    let design = match &board {
        Some(b) => crate::simtree::Design::Board(b),
        None => crate::simtree::Design::Chip { name: &name },
    };
    let model = crate::simtree::model(
        chip,
        &lazy,
        &plan,
        design,
        sim_sub,
        top,
        vcd.is_some(),
        cfg.rtl_from_folder,
    )?;
    let inputs = sim::interleave(seqs, cfg.arrival_jitter, cfg.prefill);
    // A private run folder: the model's entry may serve other sims too.
    let work = model
        .entry
        .join(sim_sub)
        .join(format!("sim/run-{}", crate::simtree::unique()));
    let rtl = sim::run_rtl(&model.exe, &work, &inputs, vcd.as_deref());
    let _ = std::fs::remove_dir_all(&work);
    let rtl = rtl?;
    let expected = crate::expected_traces(&image, seqs)?;
    let checks = sim::compare(&plan, &expected, &inputs, &rtl)?;
    // Each token's position within its own sequence, for the cycle formula.
    let mut next = vec![0usize; seqs.len()];
    let token_pos: Vec<usize> = inputs
        .iter()
        .map(|t| {
            let p = next[t.slot as usize];
            next[t.slot as usize] += 1;
            p
        })
        .collect();
    let perf = taalasc_verilog::perf::summarize(&plan, &rtl.cycles, &token_pos, rtl.total_cycles);
    let flow = match board {
        Some(_) => None,
        None => taalasc_verilog::flow::replay(&plan, &inputs),
    };
    let outcome = SimOutcome {
        bit_exact: checks.iter().all(|c| c.bit_exact),
        positions: checks.iter().map(|c| c.positions).sum(),
        values_compared: checks.iter().map(|c| c.values_compared).sum(),
        first_mismatch: checks.iter().find_map(|c| c.first_mismatch.clone()),
        users: checks,
        perf,
        lanes: plan.lanes,
        tokens: inputs.len(),
        sim_seconds: rtl.seconds,
        build_seconds: model.build_seconds,
        model: model.exe.clone(),
        rtl_from_folder: model.from_folder.clone(),
        per_token: rtl.cycles,
        total_cycles: rtl.total_cycles,
        flow,
    };
    let record = SimRecord {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        bit_exact: outcome.bit_exact,
        users: outcome.users.len(),
        positions: outcome.positions,
        cycles_per_token: outcome.perf.cycles_per_token,
        throughput_cycles_per_token: outcome.perf.throughput_cycles_per_token,
    };
    crate::manifest::write_json(&sim_dir.join(SIM_RESULT), &record)?;
    Ok(outcome)
}

impl SimOutcome {
    /// Whether every token's measured latency and the run's total cycles
    /// equal the token-flow model's (`None` when there is no model).
    pub fn flow_exact(&self) -> Option<bool> {
        self.flow.as_ref().map(|f| {
            f.total == self.total_cycles
                && f.latency.len() == self.per_token.len()
                && f.latency
                    .iter()
                    .zip(&self.per_token)
                    .all(|(m, c)| *m == c.total)
        })
    }

    /// The outcome as one JSON object (`sim --json`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "bit_exact": self.bit_exact,
            "positions": self.positions,
            "values_compared": self.values_compared,
            "first_mismatch": self.first_mismatch,
            "users": self.users,
            "cycles_per_token": self.perf.cycles_per_token,
            "throughput_cycles_per_token": self.perf.throughput_cycles_per_token,
            "tokens_in_flight": self.perf.cycles_per_token / self.perf.throughput_cycles_per_token.max(1.0),
            "phases_per_token": self.perf.phases,
            "predicted_cycles_per_token": self.perf.predicted,
            "mac_utilization": self.perf.mac_utilization,
            "lanes": self.lanes,
            "sim_seconds": self.sim_seconds,
            "sim_tokens_per_second": self.tokens as f64 / self.sim_seconds,
            "build_seconds": self.build_seconds,
            "model": self.model,
            "rtl_from_folder": self.rtl_from_folder,
            "per_token": self.per_token,
            "total_cycles": self.total_cycles,
            "flow_model": self.flow.as_ref().map(|f| serde_json::json!({
                "latency": f.latency,
                "total_cycles": f.total,
                "exact": self.flow_exact(),
            })),
        })
    }
}
