//! `taalasc jobs` and `taalasc gather` (RFC 0007): a chip's synthesis,
//! simulation and quality sweep cut into independent jobs, written as a
//! ninja file and as Slurm array scripts, and their results merged back
//! into the files the single-process commands write, byte for byte.
//!
//! A job is an ordinary `taalasc` command (`synth --engine N --result
//! FILE`, `sim --shard I/N --result FILE`, `report --point P --result
//! FILE`, with `--chunks-from A --chunks-to B` for one chunk range of a
//! point) that writes one [`JobResult`] atomically to its own file under
//! `DIR/results/` and touches nothing else: rerunning it replaces only that
//! file. A result records a fingerprint of everything it was computed
//! from (the chip folder's digests and the job's parameters), so `gather`
//! takes no result of another chip or another text.

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The plan file of a jobs folder.
pub const JOBS_FILE: &str = "jobs.json";
/// Its format tag.
pub const JOBS_SCHEMA: &str = "taalasc-jobs/1";
/// What `gather` writes last into the jobs folder (ninja's target).
pub const GATHER_FILE: &str = "gather.json";
/// The ninja file.
pub const NINJA_FILE: &str = "build.ninja";
/// The script that submits every Slurm array and the gather job.
pub const SUBMIT_FILE: &str = "submit.sh";

pub use crate::job_result::{
    check_result_path, fingerprint, sim_id, synth_id, write_result, JobResult, RESULT_SCHEMA,
};

/// The job name of quality point `k` (`chip` or a `--sweep` format).
fn sweep_id(k: Option<usize>, point: &str) -> String {
    let clean: String = point
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    match k {
        None => "sweep-chip".into(),
        Some(k) => format!("sweep-{k}-{clean}"),
    }
}

/// What kinds of jobs to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum What {
    /// One synthesis per engine (of every chip of a board).
    Synth,
    /// The simulation's users in shards.
    Sim,
    /// The quality of the chip and of each `--sweep` format, one job each
    /// (`--chunk-shards K`: K each, over ranges of the chunks), and the
    /// system report.
    Sweep,
    /// All three.
    All,
}

/// Which job runners to write for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Emit {
    /// `build.ninja`.
    Ninja,
    /// `slurm/*.sbatch` and `submit.sh`.
    Slurm,
}

/// What `taalasc jobs` was asked for.
#[derive(Clone, Debug)]
pub struct JobsOptions {
    /// The chip folder.
    pub chip: PathBuf,
    /// Job kinds.
    pub what: Vec<What>,
    /// Runners.
    pub emit: Vec<Emit>,
    /// The jobs folder.
    pub out: PathBuf,
    /// Simulation users, as `sim` takes them: prompts first, then token lists.
    pub prompts: Vec<String>,
    /// Token lists (`1,2,3`).
    pub tokens: Vec<String>,
    /// Simulation shards.
    pub shards: usize,
    /// Sweep formats.
    pub sweep: Vec<String>,
    /// Quality text.
    pub text: Option<PathBuf>,
    /// Tokens per scored chunk.
    pub ctx: usize,
    /// Chunks scored.
    pub chunks: usize,
    /// Jobs per quality point, each over a contiguous range of the chunks.
    pub chunk_shards: usize,
    /// Budget for a chip built without one.
    pub budget: Option<String>,
    /// Liberty library for synthesis.
    pub liberty: Option<PathBuf>,
    /// Engines to synthesize (empty: every engine).
    pub engines: Vec<usize>,
    /// Worker threads of each job: `--threads K` in every job's command and
    /// K CPUs per Slurm task (`None`: each job uses every core it is given).
    pub job_threads: Option<usize>,
}

/// One job's kind and parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Spec {
    /// `synth --engine`.
    Synth {
        /// The chip of a board.
        chip_index: Option<usize>,
        /// The engine.
        engine: usize,
    },
    /// `sim --shard`.
    Sim {
        /// Shard `.0` of `.1`.
        shard: (usize, usize),
    },
    /// `report --point` (`--chunks-from A --chunks-to B`: one chunk range
    /// of the point).
    Sweep {
        /// `chip` or a format.
        point: String,
        /// The chunk range `A..B`, when the point is split (`--chunk-shards`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chunks: Option<(usize, usize)>,
    },
}

/// Resources a job asks a cluster for.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// CPUs.
    pub cpus: usize,
    /// Memory, MiB.
    pub mem_mb: u64,
    /// Wall time limit, minutes.
    pub minutes: u64,
}

/// One job of the plan.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Job {
    /// Its name (the result is `results/ID.json`, the log `logs/ID.log`).
    pub id: String,
    /// Kind and parameters.
    pub spec: Spec,
    /// The command, first the taalasc binary.
    pub argv: Vec<String>,
    /// The result file (absolute).
    pub result: PathBuf,
    /// The log file (absolute).
    pub log: PathBuf,
    /// What it asks a cluster for.
    pub resources: Resources,
}

/// `jobs.json`: the plan `gather` merges by.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobsFile {
    /// Always [`JOBS_SCHEMA`].
    pub schema: String,
    /// The chip folder (absolute).
    pub chip: PathBuf,
    /// The taalasc binary the jobs run.
    pub taalasc: PathBuf,
    /// The simulation's users (token ids) and shards, when simulated.
    pub sim_users: Vec<Vec<u32>>,
    /// Simulation shards (0 when not simulated).
    pub shards: usize,
    /// The quality text, when a sweep is planned.
    pub text: Option<PathBuf>,
    /// Tokens per chunk.
    pub ctx: usize,
    /// Chunks.
    pub chunks: usize,
    /// Jobs per quality point (each over a range of the chunks).
    #[serde(default = "one")]
    pub chunk_shards: usize,
    /// Sweep formats.
    pub sweep: Vec<String>,
    /// Budget for a chip built without one.
    pub budget: Option<String>,
    /// Liberty library of the syntheses.
    pub liberty: Option<PathBuf>,
    /// The jobs.
    pub jobs: Vec<Job>,
    /// The gather command.
    pub gather: Vec<String>,
}

fn one() -> usize {
    1
}

fn abs(p: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("{}", p.display()))
}

/// Quotes `s` for a POSIX shell when it needs it.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A command line for a shell.
pub fn shell_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

fn p(s: &Path) -> String {
    s.display().to_string()
}

// Measured figures the resource estimates scale (RFC 0007, "Resources").
/// Yosys on one SmolLM2-135M layer engine at 16 lanes × 1 row: minutes.
const SYNTH_LAYER_MINUTES: f64 = 5.0;
/// Its peak resident memory, MiB (1,392,012 KB measured, `/usr/bin/time -v`).
const SYNTH_LAYER_MB: f64 = 1360.0;
/// Verilator cycles per second on the 2-layer SmolLM2 slice at 16 lanes.
const SIM_CYCLES_PER_S: f64 = 870_000.0;
/// Building a Verilator model of it, minutes.
const SIM_BUILD_MINUTES: f64 = 5.0;
/// Minutes to rebuild and score one SmolLM2-135M point per 1,024 scored
/// positions (e.g. ctx 256 × 4 chunks). Measured: 0.24 (5 points at ctx
/// 512 × 5 chunks, `ninja -j 1`, 184.6 s on a 2-core AVX-512 EPYC,
/// 2026-12-07, the first point filling the float cache); 1.0 leaves room
/// for slower nodes (the AVX2 kernels are about 1.4× slower, the portable
/// path about 4×).
const SWEEP_POINT_MINUTES: f64 = 1.0;

fn minutes(m: f64) -> u64 {
    // Twice the estimate, at least 10 minutes.
    (2.0 * m).ceil().max(10.0) as u64
}

/// Writes the jobs folder of `opts`; returns its plan.
pub fn plan_jobs(opts: &JobsOptions) -> anyhow::Result<JobsFile> {
    let chip = abs(&opts.chip)?;
    let (_, plan, system) = crate::chip::open_chip(&chip)?;
    let board = system.as_ref().and_then(|s| s.board.clone());
    let dir = abs(&opts.out)?;
    let taalasc = std::env::current_exe().context("the taalasc binary's path")?;
    let t = p(&taalasc);
    let what = |w: What| opts.what.contains(&w) || opts.what.contains(&What::All);
    let result = |id: &str| dir.join("results").join(format!("{id}.json"));
    let log = |id: &str| dir.join("logs").join(format!("{id}.log"));
    let mut jobs = Vec::new();
    let liberty = opts.liberty.as_deref().map(abs).transpose()?;
    if let Some(l) = &liberty {
        anyhow::ensure!(l.is_file(), "--liberty {}: no such file", l.display());
    }
    if what(What::Synth) {
        let chips: Vec<(Option<usize>, Vec<usize>)> = match &board {
            Some(b) => (0..b.cuts.len() - 1)
                .map(|k| {
                    taalasc_verilog::board::chip_synth_sources(&plan, b, k)
                        .map(|(_, e)| (Some(k), e))
                        .map_err(|m| anyhow::anyhow!("chip {k}: {m}"))
                })
                .collect::<anyhow::Result<_>>()?,
            None => vec![(None, (0..plan.engines.len()).collect())],
        };
        for e in &opts.engines {
            anyhow::ensure!(
                chips.iter().any(|(_, es)| es.contains(e)),
                "--engine {e}: this chip has engines 0 to {}",
                plan.engines.len() - 1
            );
        }
        for (k, engines) in chips {
            for e in engines {
                if !opts.engines.is_empty() && !opts.engines.contains(&e) {
                    continue;
                }
                let id = synth_id(k, Some(e));
                let mut argv = vec![t.clone(), "synth".into(), p(&chip)];
                if let Some(k) = k {
                    argv.extend(["--chip-index".into(), k.to_string()]);
                }
                argv.extend(["--engine".into(), e.to_string()]);
                if let Some(l) = &liberty {
                    argv.extend(["--liberty".into(), p(l)]);
                }
                argv.extend(["--result".into(), p(&result(&id))]);
                // Yosys sees the engine's logic (its ROMs are blackboxes):
                // MAC lanes × rows.
                let scale = (plan.lanes * plan.rows.max(1)) as f64 / 16.0;
                jobs.push(Job {
                    resources: Resources {
                        cpus: 1,
                        mem_mb: (SYNTH_LAYER_MB * scale * 2.0).max(2048.0) as u64,
                        minutes: minutes(SYNTH_LAYER_MINUTES * scale),
                    },
                    result: result(&id),
                    log: log(&id),
                    spec: Spec::Synth {
                        chip_index: k,
                        engine: e,
                    },
                    argv,
                    id,
                });
            }
        }
    }
    let mut sim_users = Vec::new();
    if what(What::Sim) {
        sim_users = crate::sim::resolve_users(&chip, &opts.prompts, &opts.tokens)?;
        anyhow::ensure!(
            !sim_users.is_empty(),
            "--what sim: give the users to simulate (--prompt or --tokens, one per user)"
        );
        let n = opts.shards.max(1);
        anyhow::ensure!(
            n <= sim_users.len(),
            "--shards {n}: only {} users to simulate; every shard needs one",
            sim_users.len()
        );
        let cpt = (0..plan.context.min(64))
            .map(|p| taalasc_verilog::perf::predicted(&plan, p))
            .max()
            .unwrap_or(0) as f64;
        for i in 0..n {
            let id = sim_id((i, n));
            let mut argv = vec![t.clone(), "sim".into(), p(&chip)];
            let users = crate::sim::shard_users(sim_users.len(), (i, n));
            for u in &sim_users {
                let s: Vec<String> = u.iter().map(u32::to_string).collect();
                argv.extend(["--tokens".into(), s.join(",")]);
            }
            argv.extend(["--shard".into(), format!("{i}/{n}")]);
            argv.extend(["--result".into(), p(&result(&id))]);
            let tokens: usize = users.iter().map(|&u| sim_users[u].len()).sum();
            jobs.push(Job {
                resources: Resources {
                    cpus: 1,
                    mem_mb: 4096,
                    minutes: minutes(
                        SIM_BUILD_MINUTES + tokens as f64 * cpt / SIM_CYCLES_PER_S / 60.0,
                    ),
                },
                result: result(&id),
                log: log(&id),
                spec: Spec::Sim { shard: (i, n) },
                argv,
                id,
            });
        }
    }
    let text = opts.text.as_deref().map(abs).transpose()?;
    if what(What::Sweep) {
        let Some(text) = &text else {
            bail!(
                "--what sweep scores the chip and each --sweep format on a text: give --text FILE"
            );
        };
        anyhow::ensure!(text.is_file(), "--text {}: no such file", text.display());
        for f in &opts.sweep {
            f.parse::<taalasc_quant::WeightFormat>()
                .with_context(|| format!("--sweep format `{f}`"))?;
        }
        let params = crate::manifest::BuildReportFile::read(&chip)?.build.params as f64;
        // --chunk-shards K: each point in K jobs over contiguous ranges of
        // the chunks the single run scores (the text cut as it cuts it).
        let k = opts.chunk_shards.max(1);
        let ranges: Vec<Option<(usize, usize)>> = if k == 1 {
            vec![None]
        } else {
            let m = crate::manifest::Manifest::read(&chip)?;
            anyhow::ensure!(opts.chunks > 0, "--chunks must be at least 1");
            let n = crate::eval::chunks_scored(
                &m.source.path,
                m.source.layers_kept,
                text,
                opts.ctx,
                opts.chunks,
                crate::eval::BosPolicy::Auto,
            )?;
            anyhow::ensure!(
                k <= n,
                "--chunk-shards {k}: only {n} chunks of {} tokens to score (--chunks {} of {}); every range needs one",
                opts.ctx,
                opts.chunks,
                text.display()
            );
            let mut seen = std::collections::BTreeSet::new();
            for f in &opts.sweep {
                anyhow::ensure!(
                    seen.insert(f),
                    "--sweep lists `{f}` twice: with --chunk-shards, give each format once"
                );
            }
            (0..k).map(|i| Some((i * n / k, (i + 1) * n / k))).collect()
        };
        let per_chunk = SWEEP_POINT_MINUTES * (params / 135e6) * opts.ctx as f64 / 1024.0;
        let points = std::iter::once((None, crate::report::CHIP_POINT.to_string())).chain(
            opts.sweep
                .iter()
                .enumerate()
                .map(|(k, f)| (Some(k), f.clone())),
        );
        for ((k, point), range) in
            points.flat_map(|pt| ranges.iter().map(move |r| (pt.clone(), *r)))
        {
            let id = match range {
                None => sweep_id(k, &point),
                Some((a, b)) => format!("{}-chunks{a}-{b}", sweep_id(k, &point)),
            };
            let mut argv = vec![
                t.clone(),
                "report".into(),
                p(&chip),
                "--text".into(),
                p(text),
                "--ctx".into(),
                opts.ctx.to_string(),
                "--chunks".into(),
                opts.chunks.to_string(),
            ];
            if let Some(b) = &opts.budget {
                argv.extend(["--chip-budget".into(), b.clone()]);
            }
            argv.extend(["--point".into(), point.clone()]);
            if let Some((a, b)) = range {
                argv.extend(["--chunks-from".into(), a.to_string()]);
                argv.extend(["--chunks-to".into(), b.to_string()]);
            }
            argv.extend(["--result".into(), p(&result(&id))]);
            let scored = range.map_or(opts.chunks, |(a, b)| b - a);
            jobs.push(Job {
                resources: Resources {
                    cpus: 2,
                    mem_mb: ((params * 12.0 / 1048576.0) as u64 + 1024).max(2048),
                    minutes: minutes(per_chunk * scored as f64),
                },
                result: result(&id),
                log: log(&id),
                spec: Spec::Sweep {
                    point,
                    chunks: range,
                },
                argv,
                id,
            });
        }
    }
    anyhow::ensure!(
        !jobs.is_empty(),
        "no jobs: give --what synth, sim, sweep or all"
    );
    if let Some(k) = opts.job_threads {
        anyhow::ensure!(k >= 1, "--job-threads must be at least 1");
        for j in &mut jobs {
            j.argv
                .splice(1..1, ["--threads".to_string(), k.to_string()]);
            j.resources.cpus = k;
        }
    }
    Ok(JobsFile {
        schema: JOBS_SCHEMA.into(),
        taalasc: taalasc.clone(),
        gather: vec![t, "gather".into(), p(&dir)],
        chip,
        sim_users,
        shards: if what(What::Sim) {
            opts.shards.max(1)
        } else {
            0
        },
        text,
        ctx: opts.ctx,
        chunks: opts.chunks,
        chunk_shards: opts.chunk_shards.max(1),
        sweep: if what(What::Sweep) {
            opts.sweep.clone()
        } else {
            Vec::new()
        },
        budget: opts.budget.clone(),
        liberty,
        jobs,
    })
}

/// Escapes a path for a ninja build line.
fn ninja_path(s: &str) -> String {
    s.replace('$', "$$").replace(' ', "$ ").replace(':', "$:")
}

/// Escapes a shell command for a ninja variable.
fn ninja_value(s: &str) -> String {
    s.replace('$', "$$")
}

/// `build.ninja` of `plan` in the jobs folder `dir`.
pub fn ninja(plan: &JobsFile, dir: &Path) -> anyhow::Result<String> {
    let mut s = String::new();
    s += "# Written by `taalasc jobs` (RFC 0007). Run `ninja -C DIR -j N`: one edge per job,\n";
    s += "# each writing its result atomically under results/; ninja reruns a job when the chip\n";
    s += "# folder's files (or the text) are newer than its result, then `taalasc gather`.\n";
    s += "ninja_required_version = 1.7\n\n";
    s += "rule job\n  command = $cmd\n  description = $id\n\n";
    // Every file of the chip folder the build wrote but report.json
    // (which synth and gather add to), and the text.
    let m = crate::manifest::Manifest::read(&plan.chip)?;
    s += "build chip-inputs: phony";
    for rel in m.digests.keys() {
        if rel != crate::manifest::REPORT_FILE {
            s += &format!(" $\n    {}", ninja_path(&p(&plan.chip.join(rel))));
        }
    }
    s += "\n\n";
    for j in &plan.jobs {
        let mut extra = String::new();
        if let (Spec::Sweep { .. }, Some(t)) = (&j.spec, &plan.text) {
            extra += &format!(" {}", ninja_path(&p(t)));
        }
        if let (Spec::Synth { .. }, Some(l)) = (&j.spec, &plan.liberty) {
            extra += &format!(" {}", ninja_path(&p(l)));
        }
        let log = shell_quote(&p(&j.log));
        let cmd = format!(
            "{} > {log} 2>&1 || {{ tail -n 20 {log}; exit 1; }}",
            shell_line(&j.argv)
        );
        s += &format!(
            "build {}: job | chip-inputs{extra}\n  id = {}\n  cmd = {}\n\n",
            ninja_path(&format!("results/{}.json", j.id)),
            j.id,
            ninja_value(&cmd)
        );
    }
    s += &format!("build {GATHER_FILE}: job");
    for j in &plan.jobs {
        s += &format!(" $\n    {}", ninja_path(&format!("results/{}.json", j.id)));
    }
    s += &format!(
        "\n  id = gather\n  cmd = {}\n\ndefault {GATHER_FILE}\n",
        ninja_value(&shell_line(&plan.gather))
    );
    let _ = dir;
    Ok(s)
}

/// The Slurm files of `plan`: one array script per job kind (its tasks
/// ask for the most any of them needs), a gather script, and `submit.sh`,
/// which submits the arrays and the gather job after them
/// (`--dependency=afterany:`: it runs whether they succeed or fail, and
/// names the failures).
pub fn slurm(plan: &JobsFile, dir: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut arrays = Vec::new();
    for (kind, name) in [("synth", "synth"), ("sim", "sim"), ("sweep", "sweep")] {
        let jobs: Vec<&Job> = plan
            .jobs
            .iter()
            .filter(|j| {
                matches!(
                    (&j.spec, kind),
                    (Spec::Synth { .. }, "synth")
                        | (Spec::Sim { .. }, "sim")
                        | (Spec::Sweep { .. }, "sweep")
                )
            })
            .collect();
        if jobs.is_empty() {
            continue;
        }
        let cpus = jobs.iter().map(|j| j.resources.cpus).max().unwrap_or(1);
        let mem = jobs
            .iter()
            .map(|j| j.resources.mem_mb)
            .max()
            .unwrap_or(1024);
        let min = jobs.iter().map(|j| j.resources.minutes).max().unwrap_or(10);
        let mut s = String::from("#!/bin/bash\n");
        s += &format!(
            "# Written by `taalasc jobs` (RFC 0007): the {name} jobs, one array task each.\n"
        );
        s += &format!("#SBATCH --job-name=taalasc-{name}\n");
        s += &format!("#SBATCH --array=0-{}\n", jobs.len() - 1);
        s += &format!(
            "#SBATCH --cpus-per-task={cpus}\n#SBATCH --mem={mem}M\n#SBATCH --time={min}\n"
        );
        s += &format!("#SBATCH --chdir={}\n", p(dir));
        s += &format!(
            "#SBATCH --output={}\n",
            p(&dir.join("logs").join(format!("slurm-{name}-%A_%a.log")))
        );
        s += "case \"$SLURM_ARRAY_TASK_ID\" in\n";
        for (i, j) in jobs.iter().enumerate() {
            s += &format!(
                "  {i}) # {}\n    exec {} > {} 2>&1 ;;\n",
                j.id,
                shell_line(&j.argv),
                shell_quote(&p(&j.log))
            );
        }
        s += "  *) echo \"no task $SLURM_ARRAY_TASK_ID\" >&2; exit 2 ;;\nesac\n";
        files.push((format!("slurm/{name}.sbatch"), s));
        arrays.push(name);
    }
    let mut g = String::from("#!/bin/bash\n");
    g += "# Written by `taalasc jobs`: merges the results (submit.sh runs it after every array).\n";
    g += "#SBATCH --job-name=taalasc-gather\n#SBATCH --cpus-per-task=1\n#SBATCH --mem=2048M\n#SBATCH --time=30\n";
    g += &format!("#SBATCH --chdir={}\n", p(dir));
    g += &format!(
        "#SBATCH --output={}\n",
        p(&dir.join("logs").join("gather.log"))
    );
    g += &format!("exec {}\n", shell_line(&plan.gather));
    files.push(("slurm/gather.sbatch".into(), g));
    let mut sub = String::from("#!/bin/sh\n");
    sub += "# Written by `taalasc jobs`: submits every job array, then the gather job after them\n";
    sub += "# (afterany: it runs when they end, failed or not, and names any failed job).\n";
    sub += "# Prints the gather job's id.\nset -e\n";
    sub += &format!("cd {}\n", shell_quote(&p(dir)));
    let mut deps = Vec::new();
    for (i, a) in arrays.iter().enumerate() {
        sub += &format!("a{i}=$(sbatch --parsable slurm/{a}.sbatch)\n");
        deps.push(format!("${{a{i}%%;*}}"));
    }
    sub += &format!(
        "sbatch --parsable --dependency=afterany:{} slurm/gather.sbatch\n",
        deps.join(":")
    );
    files.push((SUBMIT_FILE.into(), sub));
    files
}

/// Is `dir` a jobs folder taalasc wrote: its `jobs.json` has our schema
/// and it holds nothing but what `jobs`, the jobs, ninja and `gather`
/// write.
fn is_jobs_folder(dir: &Path) -> bool {
    let schema_ok = std::fs::read_to_string(dir.join(JOBS_FILE))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("schema")?.as_str().map(str::to_owned))
        .is_some_and(|s| s == JOBS_SCHEMA);
    let Ok(rd) = std::fs::read_dir(dir) else {
        return false;
    };
    let known = [
        JOBS_FILE,
        NINJA_FILE,
        SUBMIT_FILE,
        GATHER_FILE,
        "slurm",
        "results",
        "logs",
        ".ninja_log",
        ".ninja_deps",
    ];
    schema_ok
        && rd.flatten().all(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            known.contains(&n.as_str()) || (n.starts_with('.') && n.contains(".tmp-"))
        })
}

/// `taalasc jobs`: plans the jobs and writes the jobs folder `opts.out`:
/// a new folder (claimed through the output contract, RFC 0006), or one
/// `jobs` wrote before, whose plan files are rewritten (each atomically)
/// and whose results are kept for ninja to judge. Anything else is refused.
pub fn write_jobs(opts: &JobsOptions) -> anyhow::Result<JobsFile> {
    let dir = abs(&opts.out)?;
    let exists = std::fs::symlink_metadata(&dir).is_ok();
    if exists {
        let m = std::fs::symlink_metadata(&dir)?;
        anyhow::ensure!(
            m.is_dir() && !m.file_type().is_symlink() && is_jobs_folder(&dir),
            "{}: already exists and is not a jobs folder taalasc wrote; taalasc writes only to a new path or over its own jobs folder. Nothing was changed.",
            dir.display()
        );
    }
    let plan = plan_jobs(opts)?;
    let mut files: Vec<(String, String)> =
        vec![(JOBS_FILE.into(), crate::manifest::to_json_text(&plan)?)];
    if opts.emit.contains(&Emit::Ninja) {
        files.push((NINJA_FILE.into(), ninja(&plan, &dir)?));
    }
    if opts.emit.contains(&Emit::Slurm) {
        files.extend(slurm(&plan, &dir));
    }
    let write_all = |root: &Path| -> anyhow::Result<()> {
        for sub in ["results", "logs", "slurm"] {
            std::fs::create_dir_all(root.join(sub))
                .with_context(|| format!("creating {}", root.join(sub).display()))?;
        }
        for (rel, text) in &files {
            crate::files::write_atomic(&root.join(rel), text.as_bytes())
                .with_context(|| format!("writing {}", root.join(rel).display()))?;
            if rel.ends_with(".sh") || rel.ends_with(".sbatch") {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(root.join(rel), std::fs::Permissions::from_mode(0o755))?;
            }
        }
        Ok(())
    };
    if exists {
        write_all(&dir)?;
    } else {
        let staging = crate::output::claim(
            &dir,
            crate::output::FolderKind::Jobs,
            crate::output::Existing::Refuse,
        )?;
        write_all(staging.dir())?;
        staging.finish()?;
    }
    Ok(plan)
}

/// A job `gather` could not take, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    /// The job.
    pub job: String,
    /// What is wrong.
    pub why: String,
    /// The command that reruns it.
    pub rerun: String,
}

/// The last non-empty line of a log, if any.
fn last_line(log: &Path) -> Option<String> {
    let t = std::fs::read_to_string(log).ok()?;
    t.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
}

/// Reads one job's result, checked against the inputs it must come from.
fn take<T: for<'de> Deserialize<'de>>(job: &Job, want_inputs: &str) -> Result<T, String> {
    let text = match std::fs::read_to_string(&job.result) {
        Ok(t) => t,
        Err(_) => {
            let log = match last_line(&job.log) {
                Some(l) => format!(
                    "failed or was killed; its log {} ends: {l}",
                    job.log.display()
                ),
                None => format!(
                    "did not run, or was killed before it logged ({} is empty or missing)",
                    job.log.display()
                ),
            };
            return Err(format!("no result {}: the job {log}", job.result.display()));
        }
    };
    let r: JobResult<T> = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{}: not a job result of this taalasc ({e})",
            job.result.display()
        )
    })?;
    if r.schema != RESULT_SCHEMA {
        return Err(format!(
            "{}: schema `{}` is not `{RESULT_SCHEMA}`",
            job.result.display(),
            r.schema
        ));
    }
    if r.inputs != want_inputs {
        return Err(format!(
            "{}: stale: computed from another chip folder or other inputs than the plan's (the chip was rebuilt, or the text or library changed)",
            job.result.display()
        ));
    }
    Ok(r.result)
}

/// What `gather` merged.
#[derive(Clone, Debug, Serialize)]
pub struct Gathered {
    /// Jobs merged.
    pub jobs: usize,
    /// Files written.
    pub written: Vec<PathBuf>,
    /// Problems in results that were merged nonetheless (a simulation that
    /// was not bit-exact): gather exits non-zero after writing them.
    pub failures: Vec<String>,
}

/// `taalasc gather DIR`: checks every job's result and, when all are
/// there and current, merges them into the files the single-process
/// commands write: synthesis cells into the chip's `report.json` (as
/// `synth` per engine), the simulation record (as `sim --shards N`), and
/// the system report (as `report --text --sweep`). Any missing, failed or
/// stale job is an error naming it and the command that reruns it, and
/// nothing is written.
pub fn gather(dir: &Path) -> anyhow::Result<Gathered> {
    let dir = abs(dir)?;
    let path = dir.join(JOBS_FILE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: not a jobs folder of `taalasc jobs`", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?;
    anyhow::ensure!(
        v.get("schema").and_then(|s| s.as_str()) == Some(JOBS_SCHEMA),
        "{}: not a plan of this taalasc (schema is not `{JOBS_SCHEMA}`)",
        path.display()
    );
    let plan: JobsFile =
        serde_json::from_value(v).with_context(|| format!("{}", path.display()))?;
    let chip = &plan.chip;
    let (_, hw_plan, system) = crate::chip::open_chip(chip)?;
    let sim_cfg = crate::sim::SimConfig {
        users: plan.sim_users.clone(),
        shards: plan.shards,
        ..Default::default()
    };
    let ropts = crate::report::ReportOptions {
        chip: chip.clone(),
        text: plan.text.clone(),
        ctx: plan.ctx,
        chunks: plan.chunks,
        sweep: plan.sweep.clone(),
        budget: plan.budget.clone(),
        out: None,
    };
    let mut problems = Vec::new();
    let mut synth = Vec::new();
    let mut parts = Vec::new();
    let mut quality = None;
    let mut points = Vec::new();
    let mut ranges: std::collections::BTreeMap<String, Vec<crate::report::RangeResult>> =
        Default::default();
    for j in &plan.jobs {
        let params = match &j.spec {
            Spec::Synth { chip_index, engine } => {
                crate::synth::job_params(Some(*engine), *chip_index, plan.liberty.as_deref())?
            }
            Spec::Sim { shard } => crate::sim::job_params(&sim_cfg, *shard),
            Spec::Sweep { point, chunks } => crate::report::job_params(&ropts, point, *chunks)?,
        };
        let inputs = fingerprint(chip, &params)?;
        let taken = match &j.spec {
            Spec::Synth { .. } => {
                take::<crate::synth::SynthEntry>(j, &inputs).map(|e| synth.push(e))
            }
            Spec::Sim { .. } => take::<crate::sim::SimPart>(j, &inputs).map(|p| parts.push(p)),
            Spec::Sweep { point, chunks } => take::<crate::report::PointResult>(j, &inputs)
                .and_then(|r| {
                    match r {
                        crate::report::PointResult::Chip(q)
                            if point == crate::report::CHIP_POINT && chunks.is_none() =>
                        {
                            quality = Some(q)
                        }
                        crate::report::PointResult::Sweep(q)
                            if q.label == *point && chunks.is_none() =>
                        {
                            points.push(q)
                        }
                        crate::report::PointResult::Range(r)
                            if r.point == *point
                                && *chunks == Some((r.image.chunks_from, r.image.chunks_to)) =>
                        {
                            ranges.entry(point.clone()).or_default().push(*r)
                        }
                        _ => {
                            return Err(format!(
                                "{}: holds another point or chunk range than `{point}`{}",
                                j.result.display(),
                                chunks.map_or(String::new(), |(a, b)| format!(" chunks {a}..{b}"))
                            ))
                        }
                    }
                    Ok(())
                }),
        };
        if let Err(why) = taken {
            problems.push(Problem {
                job: j.id.clone(),
                why,
                rerun: shell_line(&j.argv),
            });
        }
    }
    if !problems.is_empty() {
        let mut msg = format!(
            "{} of {} jobs have no usable result; nothing was merged. Rerun each (or `ninja -C {}` / its Slurm array task), then `taalasc gather {}` again:",
            problems.len(),
            plan.jobs.len(),
            shell_quote(&p(&dir)),
            shell_quote(&p(&dir))
        );
        for pr in &problems {
            msg += &format!("\n  {}: {}\n    rerun: {}", pr.job, pr.why, pr.rerun);
        }
        bail!(msg);
    }
    if !ranges.is_empty() {
        // Split points, before anything is written: each point's chunk
        // ranges merged (per-chunk log-likelihoods summed in chunk order),
        // in --sweep order.
        let text = plan
            .text
            .as_deref()
            .context("jobs.json plans quality points but names no text")?;
        let mut merge = |point: &str| -> anyhow::Result<crate::report::PointResult> {
            let r = ranges
                .remove(point)
                .with_context(|| format!("jobs.json plans no chunk ranges of point `{point}`"))?;
            crate::report::merge_ranges(text, point, &r)
        };
        match merge(crate::report::CHIP_POINT)? {
            crate::report::PointResult::Chip(q) => quality = Some(q),
            _ => bail!("the chip's chunk ranges did not merge into its quality"),
        }
        for f in &plan.sweep {
            match merge(f)? {
                crate::report::PointResult::Sweep(q) => points.push(q),
                _ => bail!("the chunk ranges of `{f}` did not merge into a sweep point"),
            }
        }
    }
    let mut written = Vec::new();
    let mut failures = Vec::new();
    if !synth.is_empty() {
        for e in &synth {
            if !e.record.check_passed {
                failures.push(format!("synthesis of {}: check -assert failed", e.key));
            }
        }
        crate::synth::record(chip, &synth)?;
        written.push(chip.join(crate::manifest::REPORT_FILE));
    }
    if !parts.is_empty() {
        parts.sort_by_key(|p| p.shard.0);
        for p in &parts {
            if let Some(m) = &p.first_mismatch {
                failures.push(format!(
                    "simulation shard {}/{}: not bit-exact: {m}",
                    p.shard.0, p.shard.1
                ));
            }
        }
        let record = crate::sim::merge(crate::sim::record_command(chip, &sim_cfg), &parts);
        crate::sim::write_record(chip, &record)?;
        written.push(crate::sim::sim_dir(chip)?.join(crate::sim::SIM_RESULT));
    }
    if quality.is_some() {
        // Points in --sweep order, as `report` lists them.
        let out = crate::report::write_report(&ropts, &hw_plan, system, quality, points)?;
        written.push(out.join("report.json"));
        written.push(out.join("report.html"));
    }
    let g = Gathered {
        jobs: plan.jobs.len(),
        written,
        failures,
    };
    crate::manifest::write_json(&dir.join(GATHER_FILE), &g)?;
    Ok(g)
}
