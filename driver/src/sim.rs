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
    /// Split the users into this many shards (user u in shard u mod N),
    /// each simulated on its own (its users interleaved, in their own
    /// slots), one after another; the record merges them ([`merge`]).
    /// 0 or 1: one run of every user.
    pub shards: usize,
    /// Simulate only shard `i` of `n` and write its part to `result` (a
    /// job of `taalasc jobs`; `taalasc gather` merges the parts into the
    /// record `shards: n` writes), leaving the chip folder alone.
    pub shard: Option<(usize, usize)>,
    /// The job result file of `shard`.
    pub result: Option<PathBuf>,
}

/// One shard's part of a simulation: what [`merge`] needs, all integers
/// (so that merging in shard order gives the same bytes however the
/// shards ran).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimPart {
    /// The shard (`i` of `n`).
    pub shard: (usize, usize),
    /// Its users (slots), ascending.
    pub users: Vec<usize>,
    /// Every one of its users bit-exact.
    pub bit_exact: bool,
    /// Positions compared.
    pub positions: usize,
    /// Values compared.
    pub values_compared: u64,
    /// The first difference, as text.
    pub first_mismatch: Option<String>,
    /// Tokens simulated.
    pub tokens: usize,
    /// The sum of every token's latency (entry to last logit), cycles.
    pub latency_sum: u64,
    /// Cycles from the first token in to the last logit out.
    pub total_cycles: u64,
}

/// The users of shard `i` of `n` among `users` users: user u goes to
/// shard u mod n.
pub fn shard_users(users: usize, (i, n): (usize, usize)) -> Vec<usize> {
    (0..users).filter(|u| u % n.max(1) == i).collect()
}

/// The record of a simulation run as the shards `parts` (in shard order):
/// bit-exact when every part is; latency and throughput are the sums of
/// cycles over the sum of tokens, as if the shards ran one after another.
/// A single part gives exactly the figures of [`taalasc_verilog::perf::summarize`].
pub fn merge(command: String, parts: &[SimPart]) -> SimRecord {
    let tokens = parts.iter().map(|p| p.tokens).sum::<usize>().max(1) as f64;
    let shards = parts.first().map_or(1, |p| p.shard.1);
    SimRecord {
        command,
        bit_exact: parts.iter().all(|p| p.bit_exact),
        users: parts.iter().map(|p| p.users.len()).sum(),
        positions: parts.iter().map(|p| p.positions).sum(),
        cycles_per_token: parts.iter().map(|p| p.latency_sum).sum::<u64>() as f64 / tokens,
        throughput_cycles_per_token: parts.iter().map(|p| p.total_cycles).sum::<u64>() as f64
            / tokens,
        shards,
    }
}

/// The command a record names: `taalasc sim CHIP` with every user as
/// `--tokens` (prompts as the ids they tokenized to) and the flags that
/// change what is measured; the same for one run and for its shards run
/// as jobs, so a gathered record is byte-identical to the single run's.
pub fn record_command(chip: &Path, cfg: &SimConfig) -> String {
    let mut c = format!("taalasc sim {}", chip.display());
    for u in &cfg.users {
        let t: Vec<String> = u.iter().map(u32::to_string).collect();
        c += &format!(" --tokens {}", t.join(","));
    }
    if cfg.arrival_jitter > 0 {
        c += &format!(" --arrival-jitter {}", cfg.arrival_jitter);
    }
    if cfg.prefill > 0 {
        c += &format!(" --prefill {}", cfg.prefill);
    }
    if cfg.rtl_from_folder {
        c += " --rtl-from-folder";
    }
    if cfg.shards > 1 {
        c += &format!(" --shards {}", cfg.shards);
    }
    c
}

/// What a shard's result depends on beyond the chip folder, for
/// [`crate::job_result::fingerprint`].
pub fn job_params(cfg: &SimConfig, shard: (usize, usize)) -> serde_json::Value {
    serde_json::json!({
        "kind": "sim",
        "shard": [shard.0, shard.1],
        "users": cfg.users,
        "arrival_jitter": cfg.arrival_jitter,
        "prefill": cfg.prefill,
        "rtl_from_folder": cfg.rtl_from_folder,
    })
}

/// The sim folder of `chip` (the board's for a board) where `sim` keeps
/// its record.
pub fn sim_dir(chip: &Path) -> anyhow::Result<PathBuf> {
    let (_, _, system) = crate::chip::open_chip(chip)?;
    Ok(match system.and_then(|s| s.board) {
        Some(_) => chip.join("board"),
        None => chip.to_path_buf(),
    })
}

/// Writes `record` as the simulation record of `chip` (checking that its
/// `sim/` folder is taalasc's own).
pub fn write_record(chip: &Path, record: &SimRecord) -> anyhow::Result<()> {
    let dir = sim_dir(chip)?;
    crate::output::own_subfolder(&dir, "sim")?;
    crate::manifest::write_json(&dir.join(SIM_RESULT), record)
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
    /// Shards the users were split into (`--shards`; 1: one run).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub shards: usize,
}

fn one() -> usize {
    1
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

/// Regenerates the RTL of `chip`, compares it with the folder's, builds its
/// Verilator model in the cache (once per design; see [`crate::simtree`]) and runs
/// `cfg.users` through it, comparing every user with its own reference run.
/// With `cfg.shards` > 1 the users run in that many separate simulations
/// (user u in shard u mod N, in its own slot); with `cfg.shard`, only that
/// shard runs and its [`SimPart`] goes to `cfg.result`.
pub fn simulate(chip: &Path, cfg: &SimConfig) -> anyhow::Result<SimOutcome> {
    // Verilator's make and the simulation run in other folders: every path
    // handed on is absolute.
    let chip = &std::path::absolute(chip).with_context(|| format!("{}", chip.display()))?;
    if let Some(r) = &cfg.result {
        anyhow::ensure!(cfg.shard.is_some(), "--result goes with --shard I/N");
        crate::job_result::check_result_path(r)?;
    }
    anyhow::ensure!(
        cfg.shard.is_none() || cfg.result.is_some(),
        "--shard I/N writes its part to a job result file: give --result FILE (taalasc jobs does)"
    );
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
    if cfg.shard.is_none() {
        crate::output::own_subfolder(&sim_dir, "sim")?;
    }
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
    let n = cfg.shard.map_or(cfg.shards.max(1), |s| s.1);
    anyhow::ensure!(
        n >= 1 && n <= seqs.len(),
        "{n} shards of {} users: every shard needs a user (at most {} shards)",
        seqs.len(),
        seqs.len()
    );
    if let Some((i, n)) = cfg.shard {
        anyhow::ensure!(i < n, "--shard {i}/{n}: the shards are 0 to {}", n - 1);
    }
    let vcd = cfg
        .vcd
        .as_deref()
        .map(std::path::absolute)
        .transpose()
        .context("the --vcd path")?;
    anyhow::ensure!(
        vcd.is_none() || n == 1,
        "--vcd dumps one run: it cannot go with --shards"
    );
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
    let run = Run {
        plan: &plan,
        image: &image,
        board: board.is_some(),
        model: &model,
        sim_sub,
        vcd: vcd.as_deref(),
    };
    let shards: Vec<usize> = match cfg.shard {
        Some((i, _)) => vec![i],
        None => (0..n).collect(),
    };
    let mut outcomes = Vec::new();
    let mut parts = Vec::new();
    for i in shards {
        let (o, p) = run.shard(cfg, (i, n))?;
        outcomes.push(o);
        parts.push(p);
    }
    if let (Some(shard), Some(r)) = (cfg.shard, &cfg.result) {
        let id = crate::job_result::sim_id(shard);
        let inputs = crate::job_result::fingerprint(chip, &job_params(cfg, shard))?;
        crate::job_result::write_result(r, &id, &inputs, &parts[0])?;
    } else {
        let record = merge(record_command(chip, cfg), &parts);
        crate::manifest::write_json(&sim_dir.join(SIM_RESULT), &record)?;
    }
    Ok(combine(outcomes))
}

/// What every shard of one simulation shares.
struct Run<'a> {
    plan: &'a taalasc_verilog::Plan,
    image: &'a taalasc_image::ChipImage,
    board: bool,
    model: &'a crate::simtree::Model,
    sim_sub: &'a str,
    vcd: Option<&'a Path>,
}

impl Run<'_> {
    /// Simulates the users of `shard`, each in its own slot (the other
    /// slots idle), and compares each with its own reference run.
    fn shard(
        &self,
        cfg: &SimConfig,
        shard: (usize, usize),
    ) -> anyhow::Result<(SimOutcome, SimPart)> {
        let plan = self.plan;
        let chosen = shard_users(cfg.users.len(), shard);
        // The other users' slots stay empty: the chosen keep their slots.
        let seqs: Vec<Vec<u32>> = (0..cfg.users.len())
            .map(|u| {
                if chosen.contains(&u) {
                    cfg.users[u].clone()
                } else {
                    Vec::new()
                }
            })
            .collect();
        let inputs = sim::interleave(&seqs, cfg.arrival_jitter, cfg.prefill);
        // A private run folder: the model's entry may serve other sims too.
        let work = self
            .model
            .entry
            .join(self.sim_sub)
            .join(format!("sim/run-{}", crate::simtree::unique()));
        let rtl = sim::run_rtl(&self.model.exe, &work, &inputs, self.vcd);
        let _ = std::fs::remove_dir_all(&work);
        let rtl = rtl?;
        let chosen_seqs: Vec<Vec<u32>> = chosen.iter().map(|&u| cfg.users[u].clone()).collect();
        let mut traced = crate::expected_traces(self.image, &chosen_seqs)?.into_iter();
        let expected: Vec<sim::Expected> = (0..cfg.users.len())
            .map(|u| {
                if chosen.contains(&u) {
                    traced.next().expect("one trace per chosen user")
                } else {
                    sim::Expected::default()
                }
            })
            .collect();
        let checks: Vec<Check> = sim::compare(plan, &expected, &inputs, &rtl)?
            .into_iter()
            .filter(|c| chosen.contains(&c.user))
            .collect();
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
        let perf =
            taalasc_verilog::perf::summarize(plan, &rtl.cycles, &token_pos, rtl.total_cycles);
        let flow = if self.board {
            None
        } else {
            taalasc_verilog::flow::replay(plan, &inputs)
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
            build_seconds: self.model.build_seconds,
            model: self.model.exe.clone(),
            rtl_from_folder: self.model.from_folder.clone(),
            per_token: rtl.cycles,
            total_cycles: rtl.total_cycles,
            flow,
        };
        let part = SimPart {
            shard,
            users: chosen,
            bit_exact: outcome.bit_exact,
            positions: outcome.positions,
            values_compared: outcome.values_compared,
            first_mismatch: outcome.first_mismatch.as_ref().map(|m| m.to_string()),
            tokens: outcome.per_token.len(),
            latency_sum: outcome.per_token.iter().map(|c| c.total).sum(),
            total_cycles: outcome.total_cycles,
        };
        Ok((outcome, part))
    }
}

/// The outcomes of the shards of one run as one: checks of every user,
/// sums of positions and values, per-phase means weighted by tokens, the
/// shards' tokens one after another (no token-flow model across shards).
fn combine(mut outcomes: Vec<SimOutcome>) -> SimOutcome {
    if outcomes.len() == 1 {
        return outcomes.remove(0);
    }
    let tokens: usize = outcomes.iter().map(|o| o.per_token.len()).sum();
    let w = |o: &SimOutcome| o.per_token.len() as f64 / tokens.max(1) as f64;
    let mean = |f: &dyn Fn(&PerfSummary) -> f64| outcomes.iter().map(|o| w(o) * f(&o.perf)).sum();
    let mut perf = PerfSummary {
        cycles_per_token: mean(&|p| p.cycles_per_token),
        throughput_cycles_per_token: mean(&|p| p.throughput_cycles_per_token),
        predicted: mean(&|p| p.predicted),
        mac_utilization: mean(&|p| p.mac_utilization),
        ..Default::default()
    };
    perf.phases.matvec = mean(&|p| p.phases.matvec);
    perf.phases.attention = mean(&|p| p.phases.attention);
    perf.phases.nonlinear = mean(&|p| p.phases.nonlinear);
    perf.phases.control = mean(&|p| p.phases.control);
    perf.measured_over_predicted = if perf.predicted > 0.0 {
        perf.cycles_per_token / perf.predicted
    } else {
        0.0
    };
    let mut users: Vec<Check> = outcomes.iter().flat_map(|o| o.users.clone()).collect();
    users.sort_by_key(|c| c.user);
    let first = &outcomes[0];
    SimOutcome {
        bit_exact: outcomes.iter().all(|o| o.bit_exact),
        positions: outcomes.iter().map(|o| o.positions).sum(),
        values_compared: outcomes.iter().map(|o| o.values_compared).sum(),
        first_mismatch: users.iter().find_map(|c| c.first_mismatch.clone()),
        users,
        perf,
        lanes: first.lanes,
        tokens: outcomes.iter().map(|o| o.tokens).sum(),
        sim_seconds: outcomes.iter().map(|o| o.sim_seconds).sum(),
        build_seconds: first.build_seconds,
        model: first.model.clone(),
        rtl_from_folder: first.rtl_from_folder.clone(),
        per_token: outcomes.iter().flat_map(|o| o.per_token.clone()).collect(),
        total_cycles: outcomes.iter().map(|o| o.total_cycles).sum(),
        flow: None,
    }
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

/// The users of a simulation of `chip`, as `sim` takes them: each prompt
/// tokenized by the source model's tokenizer (BOS as it says), then each
/// comma-separated token list.
pub fn resolve_users(
    chip: &Path,
    prompts: &[String],
    tokens: &[String],
) -> anyhow::Result<Vec<Vec<u32>>> {
    use crate::run::Prompt;
    let tokenizer = if prompts.is_empty() {
        None
    } else {
        crate::image_source(chip)
            .ok()
            .and_then(|p| crate::load(&p).ok())
            .and_then(|l| l.tokenizer)
    };
    let mut users = Vec::new();
    for p in prompts {
        users.push(crate::run::prompt_ids(
            tokenizer.as_ref(),
            chip,
            &Prompt::Text(p.clone()),
        )?);
    }
    for t in tokens {
        let ids = crate::parse_tokens(t)?;
        users.push(crate::run::prompt_ids(None, chip, &Prompt::Tokens(ids))?);
    }
    Ok(users)
}
