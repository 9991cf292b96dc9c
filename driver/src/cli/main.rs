//! The `taalasc` command line: parses flags, turns them into the driver's
//! typed inputs, calls the driver library and prints. No compiler logic
//! lives here.

use anyhow::bail;
use clap::Parser;
use std::path::{Path, PathBuf};
use taalasc::args::{BuildArgs, Cli, Command};
use taalasc::run::Prompt;

/// `print!` / `println!` to standard output that return the write error
/// instead of panicking, so that a closed pipe (`taalasc inspect --ir | head`)
/// ends the program quietly.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($t)*)?
    }};
}
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($t)*)?
    }};
}

fn main() {
    let cli = Cli::parse();
    taalasc::args::init_simd(cli.simd);
    let run = taalasc::args::init_threads(cli.threads).and_then(|()| dispatch(cli.command));
    if let Err(e) = run {
        let closed_pipe = e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        });
        if closed_pipe {
            // The reader has gone (e.g. `| head`): nothing left to say.
            std::process::exit(0);
        }
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn dispatch(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Inspect {
            model,
            json,
            ir,
            plan,
        } => {
            if plan {
                let (_, p, _) = taalasc::chip::open_chip(&model)?;
                out!("{}", taalasc::steps::plan::plan_text(&p));
                return Ok(());
            }
            let m = taalasc::load(&model)?;
            let report = taalasc::inspect::report(&m);
            if ir {
                out!("{}", m.model);
            } else if json {
                outln!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                out!("{}", taalasc::inspect::render(&report));
            }
        }
        Command::Build(args) => build(*args)?,
        Command::Sim {
            chip,
            prompt,
            tokens,
            vcd,
            arrival_jitter,
            prefill,
            rtl_from_folder,
            shards,
            shard,
            result,
            json,
        } => {
            let shard = shard.as_deref().map(parse_shard).transpose()?;
            sim(
                &chip,
                &prompt,
                &tokens,
                vcd,
                (arrival_jitter, prefill, rtl_from_folder),
                (shards, shard, result),
                json,
            )?
        }
        Command::Synth {
            chip,
            engine,
            chip_index,
            json,
            liberty,
            unit,
            param,
            rtl,
            work,
            tsv,
            result,
        } => match (unit, chip) {
            (Some(unit), _) => synth_unit(
                &unit,
                &param,
                &rtl,
                liberty.as_deref(),
                work.as_deref(),
                json,
                tsv,
            )?,
            (None, Some(chip)) => synth(
                &chip,
                (engine, chip_index),
                liberty.as_deref(),
                result.as_deref(),
                json,
            )?,
            (None, None) => anyhow::bail!("synth: give a chip folder or --unit"),
        },
        Command::Report {
            chip,
            text,
            ctx,
            chunks,
            sweep,
            chip_budget,
            out,
            point,
            result,
            chunks_from,
            chunks_to,
        } => {
            anyhow::ensure!(ctx >= 4, "--ctx must be at least 4");
            let (_, plan, system) = taalasc::chip::open_chip(&chip)?;
            if system.is_some() && chip_budget.is_some() {
                bail!("{} was built with a chip budget; --chip-budget applies only to chips built without one", chip.display());
            }
            let opts = taalasc::report::ReportOptions {
                chip: chip.clone(),
                text,
                ctx,
                chunks,
                sweep,
                budget: chip_budget,
                out,
            };
            if let (Some(point), Some(result)) = (point, result) {
                taalasc::jobs::check_result_path(&result)?;
                let range = chunks_from.zip(chunks_to);
                let params = taalasc::report::job_params(&opts, &point, range)?;
                let (r, job) = match range {
                    None => (
                        taalasc::report::score_point(&opts, &plan, system, &point)?,
                        format!("sweep-{point}"),
                    ),
                    Some(r) => (
                        taalasc::report::score_point_range(&opts, &plan, system, &point, r)?,
                        format!("sweep-{point}-chunks{}-{}", r.0, r.1),
                    ),
                };
                let inputs = taalasc::jobs::fingerprint(&chip, &params)?;
                taalasc::jobs::write_result(&result, &job, &inputs, &r)?;
                outln!("wrote {}", result.display());
                return Ok(());
            }
            let dir = taalasc::report::report(&opts, &plan, system)?;
            outln!(
                "wrote {} and {}",
                dir.join("report.json").display(),
                dir.join("report.html").display()
            );
        }
        Command::Run {
            model,
            engine,
            prompt,
            tokens,
            max_tokens,
            ignore_eos,
            dump_logits,
            json,
        } => {
            let prompt = match (prompt, tokens) {
                (Some(text), _) => Prompt::Text(text),
                (None, Some(t)) => Prompt::Tokens(taalasc::parse_tokens(&t)?),
                (None, None) => bail!("give --prompt or --tokens"),
            };
            let r = taalasc::run::run(
                &model,
                engine,
                &prompt,
                max_tokens,
                ignore_eos,
                dump_logits.as_ref(),
            )?;
            if json {
                let v = serde_json::json!({
                    "prompt_tokens": r.prompt_tokens,
                    "generated_tokens": r.generated,
                    "generated_text": r.generated_text,
                    "stopped_at_context": r.stopped_at_context,
                    "logits_file": dump_logits.map(|p| p.display().to_string()),
                });
                outln!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                outln!("prompt tokens: {:?}", r.prompt_tokens);
                outln!("generated tokens: {:?}", r.generated);
                if let Some(t) = r.generated_text {
                    outln!("generated text: {t:?}");
                }
            }
        }
        Command::Eval {
            models,
            text,
            ctx,
            chunks,
            chunks_from,
            chunks_to,
            bos,
            json,
            json_out,
            no_float_cache,
        } => {
            let opts = taalasc::eval::EvalOptions {
                text,
                ctx,
                range: taalasc::eval::ChunkRange {
                    from: chunks_from,
                    to: chunks_to.or(chunks),
                },
                bos,
                show_progress: !json,
                float_cache: !no_float_cache,
            };
            eval(&models, &opts, json, json_out.as_deref())?
        }
        Command::Jobs {
            chip,
            what,
            emit,
            out,
            prompt,
            tokens,
            shards,
            sweep,
            text,
            ctx,
            chunks,
            chunk_shards,
            chip_budget,
            liberty,
            engines,
            job_threads,
        } => {
            anyhow::ensure!(ctx >= 4, "--ctx must be at least 4");
            let opts = taalasc::jobs::JobsOptions {
                chip,
                what,
                emit: emit.clone(),
                out,
                prompts: prompt,
                tokens,
                shards,
                sweep,
                text,
                ctx,
                chunks,
                chunk_shards,
                budget: chip_budget,
                liberty,
                engines,
                job_threads,
            };
            let plan = taalasc::jobs::write_jobs(&opts)?;
            let dir = std::path::absolute(&opts.out)?;
            outln!("wrote {} jobs to {}:", plan.jobs.len(), dir.display());
            if emit.contains(&taalasc::jobs::Emit::Ninja) {
                outln!("  ninja:  ninja -C {} -j N", dir.display());
            }
            if emit.contains(&taalasc::jobs::Emit::Slurm) {
                outln!(
                    "  slurm:  sh {}",
                    dir.join(taalasc::jobs::SUBMIT_FILE).display()
                );
            }
            outln!(
                "  then:   taalasc gather {} (ninja and the Slurm gather job run it)",
                dir.display()
            );
        }
        Command::Gather { dir } => {
            let g = taalasc::jobs::gather(&dir)?;
            outln!("merged {} jobs:", g.jobs);
            for w in &g.written {
                outln!("  wrote {}", w.display());
            }
            if !g.failures.is_empty() {
                for f in &g.failures {
                    eprintln!("error: {f}");
                }
                std::process::exit(1);
            }
        }
    }
    Ok(())
}

fn eval(
    models: &[PathBuf],
    opts: &taalasc::eval::EvalOptions,
    json: bool,
    json_out: Option<&Path>,
) -> anyhow::Result<()> {
    let (scored, float_path) = taalasc::eval::eval_models(models, opts)?;
    let ctx = opts.ctx;
    if json || json_out.is_some() {
        let text =
            serde_json::to_string_pretty(&taalasc::eval::scores_json(&scored, &float_path)?)?;
        if let Some(path) = json_out {
            taalasc::files::write_atomic(path, format!("{text}\n").as_bytes())
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        }
        if json {
            outln!("{text}");
            return Ok(());
        }
    }
    for s in &scored {
        let r = &s.report;
        if scored.len() > 1 {
            outln!("{}:", s.model.display());
        }
        if let (Some(kl), Some(top1)) = (r.kl_mean, r.top1) {
            outln!(
                "chip image vs its float source {}: KL {kl:.5} nats, top-1 agreement {:.2}%, {} bits per weight",
                float_path.display(),
                top1 * 100.0,
                s.bits_per_weight.map_or("?".to_string(), |b| format!("{b:.4}"))
            );
        }
        outln!(
            "perplexity {:.4} over {} chunks of {} ({} tokens scored, {} tokens in the text, BOS per chunk: {})",
            r.perplexity, r.chunks, ctx, r.tokens_scored, r.text_tokens, r.bos_per_chunk
        );
    }
    Ok(())
}

fn build(a: BuildArgs) -> anyhow::Result<()> {
    let (json, timings, estimate) = (a.json, a.timings, a.estimate);
    let cfg = a.into_config()?;
    if estimate {
        let out = taalasc::estimate::estimate(&cfg)?;
        outln!(
            "wrote {}: the system report of {} planned from its shapes and formats (no chip)",
            out.display(),
            cfg.model.display()
        );
        return Ok(());
    }
    let built = taalasc::build(&cfg)?;
    if timings {
        for t in &built.timings {
            eprintln!("build: {:<15} {:>9.3} s", t.step, t.seconds);
        }
        let total: f64 = built.timings.iter().map(|t| t.seconds).sum();
        eprintln!("build: {:<15} {total:>9.3} s", "total");
    }
    for (_, d) in &built.dumps {
        out!("{d}");
    }
    match (&built.report, json) {
        (Some(r), true) => outln!("{}", serde_json::to_string_pretty(r)?),
        _ if built.out.is_none() => {
            eprintln!("build: stopped after {}: nothing written", built.last)
        }
        _ => outln!("{}", built.summary),
    }
    Ok(())
}

fn parse_shard(s: &str) -> anyhow::Result<(usize, usize)> {
    let bad = || anyhow::anyhow!("--shard {s}: expected I/N, e.g. 0/3");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    Ok((
        i.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    ))
}

#[allow(clippy::type_complexity)]
fn sim(
    chip: &Path,
    prompts: &[String],
    tokens: &[String],
    vcd: Option<PathBuf>,
    (arrival_jitter, prefill, rtl_from_folder): (u32, usize, bool),
    (shards, shard, result): (usize, Option<(usize, usize)>, Option<PathBuf>),
    json: bool,
) -> anyhow::Result<()> {
    let users = taalasc::sim::resolve_users(chip, prompts, tokens)?;
    let cfg = taalasc::sim::SimConfig {
        users,
        arrival_jitter,
        prefill,
        vcd,
        rtl_from_folder,
        shards,
        shard,
        result,
    };
    let o = taalasc::sim::simulate(chip, &cfg)?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&o.to_json())?);
    } else {
        match &o.first_mismatch {
            None => outln!(
                "bit-exact: {} user(s), {} positions, {} values compared (every unit output and logit)",
                o.users.len(),
                o.positions,
                o.values_compared
            ),
            Some(m) => outln!("MISMATCH at {m}"),
        }
        let p = &o.perf;
        outln!(
            "cycles per token: {:.0} (matvec {:.0}, attention {:.0}, nonlinear {:.0}, control {:.0}); formula {:.0}",
            p.cycles_per_token,
            p.phases.matvec,
            p.phases.attention,
            p.phases.nonlinear,
            p.phases.control,
            p.predicted
        );
        outln!(
            "MAC utilization in matvec phases: {:.1}% ({} lanes); simulated {} tokens in {:.2} s ({:.2} tokens/s)",
            100.0 * p.mac_utilization,
            o.lanes,
            o.tokens,
            o.sim_seconds,
            o.tokens as f64 / o.sim_seconds
        );
        match (&o.flow, o.flow_exact()) {
            (Some(f), Some(true)) => outln!(
                "token-flow model: exact ({} cycles from the first token in to the last logit out, every token's latency)",
                f.total
            ),
            (Some(f), _) => outln!(
                "token-flow model: DIFFERS: {} cycles measured, {} modelled; latencies measured {:?}, modelled {:?}",
                o.total_cycles,
                f.total,
                o.per_token.iter().map(|c| c.total).collect::<Vec<_>>(),
                f.latency
            ),
            (None, _) => outln!("token-flow model: not modelled for a board (its links)"),
        }
    }
    if !o.bit_exact {
        std::process::exit(1);
    }
    Ok(())
}

fn synth(
    chip: &Path,
    (engine, chip_index): (Option<usize>, Option<usize>),
    liberty: Option<&Path>,
    result: Option<&Path>,
    json: bool,
) -> anyhow::Result<()> {
    let o = taalasc::synth::synthesize_to(chip, engine, chip_index, liberty, result)?;
    let r = &o.result;
    if json {
        outln!("{}", serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    print_synth(r)?;
    let mb = &o.macro_bits;
    outln!(
        "macros: weight ROM {} bits packed ({} as stored), vectors {} bits, tables {} bits, KV SRAM {} bits, scratchpads {} bits",
        mb.weight_rom_packed, mb.weight_rom_stored, mb.vector_rom, mb.table_rom, mb.kv_sram, mb.scratchpad_sram
    );
    Ok(())
}

fn print_synth(r: &taalasc_verilog::synth::SynthResult) -> anyhow::Result<()> {
    outln!(
        "{}: {} cells in total ({:.1} s), check -assert passed; per module:",
        r.top,
        r.total_cells,
        r.seconds
    );
    for (m, c) in &r.modules {
        match (c.area_um2, c.nand2_eq) {
            (Some(a), Some(n)) => {
                let d = match (c.delay_ns, c.delay_fo4) {
                    (Some(d), Some(f)) => format!("{d:>8.3} ns {f:>6.1} FO4"),
                    _ => "critical path n/a".into(),
                };
                outln!(
                    "  {m:<40} {:>9} cells {a:>12.1} um2 {n:>10.0} NAND2-eq {d}",
                    c.cells
                )
            }
            _ => outln!("  {m:<40} {:>9} cells", c.cells),
        }
    }
    if let Some(l) = &r.liberty {
        outln!(
            "library {} ({}): NAND2-eq = {} ({} um2); FO4 = {:.1} ps ({}, load 4x its input capacitance, settled FO4-chain slew)",
            l.name,
            l.source,
            l.nand2_cell,
            l.nand2_area_um2,
            l.fo4_ns * 1000.0,
            l.inverter_cell
        );
        if let (Some(a), Some(n), Some(d), Some(f)) =
            (r.area_um2, r.nand2_eq, r.delay_ns, r.delay_fo4)
        {
            outln!(
                "total: {a:.1} um2 = {n:.0} NAND2-eq; critical path {d:.3} ns = {f:.1} FO4, which at N6 (FO4 {} ps, an assumption) allows at most {:.0} MHz (logic only: no flop overhead, wires or margin)",
                taalasc_verilog::synth::N6_FO4_PS_ASSUMED,
                taalasc_verilog::synth::n6_clock_mhz(f)
            );
        }
    }
    Ok(())
}

fn synth_unit(
    unit: &str,
    params: &[String],
    rtl: &[PathBuf],
    liberty: Option<&Path>,
    work: Option<&Path>,
    json: bool,
    tsv: bool,
) -> anyhow::Result<()> {
    let (Some(liberty), Some(work)) = (liberty, work) else {
        anyhow::bail!("synth --unit needs --liberty FILE and --work DIR");
    };
    let r = taalasc::synth::synthesize_unit(unit, params, rtl, liberty, work)?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&r)?);
    } else if tsv {
        outln!("{}", taalasc::synth::tsv_line(&r, params));
    } else {
        print_synth(&r)?;
    }
    Ok(())
}
