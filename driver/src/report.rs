//! `taalasc report CHIP`: the system report of a build (RFC 0004): what
//! each chip holds and costs, link traffic, speed per user and per chip,
//! the context and users that fit, energy and cost per token, and, given a
//! text, the quality the bits cost with a quality-versus-area sweep.
//! Writes `CHIP/report/report.json` and a self-contained `report.html`.

use crate::build::{build_image, BuildOptions};
use crate::eval::{self, LogitsEngine};
use crate::system::System;
use anyhow::Context;
use std::path::{Path, PathBuf};
use taalasc_image::ChipImage;
use taalasc_reference::Reference;
use taalasc_report::{Measured, Quality, QualityPoint, ReportInput, Sensitivity};
use taalasc_verilog::Plan;

/// What `taalasc report` was asked for.
#[derive(Clone, Debug)]
pub struct ReportOptions {
    /// The chip folder.
    pub chip: PathBuf,
    /// Text to score quality on (perplexity, KL, top-1 against the float model).
    pub text: Option<PathBuf>,
    /// Tokens per scored chunk.
    pub ctx: usize,
    /// Chunks of the text to score.
    pub chunks: usize,
    /// Linear-layer formats to rebuild and score for the quality-versus-area chart.
    pub sweep: Vec<String>,
    /// Budget for a chip built without `--chip-budget` (default hc1).
    pub budget: Option<String>,
    /// Output folder (default `CHIP/report`).
    pub out: Option<PathBuf>,
}

/// Perplexity, KL and top-1 of each image against the float model of the
/// same source and layers, plus the float model's own perplexity, on the
/// first `chunks` chunks of `ctx` tokens of `text` (llama.cpp's scoring).
fn score(
    images: &[&ChipImage],
    source: &Path,
    layers: Option<usize>,
    text: &Path,
    ctx: usize,
    chunks: usize,
) -> anyhow::Result<(f64, Vec<eval::PerplexityReport>)> {
    anyhow::ensure!(chunks > 0, "--chunks must be at least 1");
    let mut reports = score_range(
        images,
        source,
        layers,
        text,
        ctx,
        eval::ChunkRange::first(Some(chunks)),
    )?;
    let float_ppl = reports.remove(0).perplexity;
    Ok((float_ppl, reports))
}

/// [`score`] of the chunks `range`: the float model's report first, then
/// each image's, each with its per-chunk sums (shards of the run over all
/// chunks, [`eval::merge_shards`]).
fn score_range(
    images: &[&ChipImage],
    source: &Path,
    layers: Option<usize>,
    text: &Path,
    ctx: usize,
    range: eval::ChunkRange,
) -> anyhow::Result<Vec<eval::PerplexityReport>> {
    let prep = eval::prepare_range(source, layers, text, ctx, range, eval::BosPolicy::Auto)?;
    let refs = images
        .iter()
        .map(|img| Reference::new(img, rayon::current_num_threads()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut engines: Vec<&dyn LogitsEngine> = vec![&prep.float];
    engines.extend(refs.iter().map(|r| r as &dyn LogitsEngine));
    let reports = eval::quality_many_at(
        &engines,
        Some(&prep.float),
        prep.first_chunk,
        &prep.chunks,
        prep.text_tokens,
        prep.bos.is_some(),
        &|_| {},
    )?;
    Ok(reports)
}

/// One point of a quality table, as a `report --point` job scores it: the
/// chip itself (its quality and the float model's perplexity) or the
/// chip rebuilt with one `--sweep` format.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PointResult {
    /// The chip's own quality.
    Chip(Quality),
    /// One point of the quality-versus-area sweep.
    Sweep(QualityPoint),
    /// One chunk range of a point (`report --point P --chunks-from A
    /// --chunks-to B`); `gather` merges a point's ranges ([`merge_ranges`]).
    Range(Box<RangeResult>),
}

/// A point scored on chunks `A..B` of the text: eval's reports with their
/// exact per-chunk sums, which merge (log-likelihoods added in chunk
/// order, never perplexities) into the point scored on all chunks, bit for
/// bit.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RangeResult {
    /// `chip` or the format.
    pub point: String,
    /// The image's scores over the range (against the float model).
    pub image: eval::PerplexityReport,
    /// The float model's own scores over the range (the `chip` point).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub float: Option<eval::PerplexityReport>,
    /// A sweep point's build figures (its quality fields are the range's
    /// alone; [`merge_ranges`] replaces them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<QualityPoint>,
}

/// Merges the chunk ranges of point `point` (any order; together one range
/// of chunks from 0 without a gap or an overlap) into the result of the
/// point scored on all of them at once: eval's per-chunk sums are added in
/// chunk order ([`eval::merge_shards`]) and the figures computed from the
/// totals, as one pass computes them.
pub fn merge_ranges(
    text: &Path,
    point: &str,
    ranges: &[RangeResult],
) -> anyhow::Result<PointResult> {
    anyhow::ensure!(
        !ranges.is_empty(),
        "point `{point}`: no chunk ranges to merge"
    );
    for r in ranges {
        anyhow::ensure!(
            r.point == point,
            "a range of point `{}` is among those of `{point}`",
            r.point
        );
    }
    let images: Vec<eval::ShardResult> = ranges.iter().map(|r| r.image.clone()).collect();
    let image = eval::merge_shards(&images)
        .with_context(|| format!("merging the chunk ranges of point `{point}`"))?;
    anyhow::ensure!(
        image.chunks_from == 0,
        "point `{point}`: its ranges start at chunk {}, not 0",
        image.chunks_from
    );
    if point == CHIP_POINT {
        let floats = ranges
            .iter()
            .map(|r| r.float.clone())
            .collect::<Option<Vec<_>>>()
            .with_context(|| format!("point `{point}`: a range lacks the float model's scores"))?;
        let float = eval::merge_shards(&floats)
            .with_context(|| format!("merging the float model's chunk ranges of `{point}`"))?;
        return Ok(PointResult::Chip(quality_of(
            text,
            &image,
            float.perplexity,
        )));
    }
    let build = |r: &RangeResult| -> anyhow::Result<QualityPoint> {
        let q = r
            .sweep
            .clone()
            .with_context(|| format!("point `{point}`: a range lacks the build's figures"))?;
        Ok(QualityPoint {
            ppl: image.perplexity,
            kl: image.kl_mean.unwrap_or(0.0),
            top1: image.top1.unwrap_or(1.0),
            ..q
        })
    };
    let q = build(&ranges[0])?;
    for r in &ranges[1..] {
        anyhow::ensure!(
            build(r)? == q,
            "point `{point}`: the ranges of chunks {}..{} and {}..{} rebuilt different images (bits per weight, ROM or area differ)",
            ranges[0].image.chunks_from,
            ranges[0].image.chunks_to,
            r.image.chunks_from,
            r.image.chunks_to
        );
    }
    Ok(PointResult::Sweep(q))
}

/// The label of the chip's own point (`--point chip`).
pub const CHIP_POINT: &str = "chip";

/// The chip folder's manifest (checked) and build report, and its system
/// view (partitioned on the budget for a chip built without one).
fn open(
    opts: &ReportOptions,
    plan: &Plan,
    system: Option<System>,
) -> anyhow::Result<(
    crate::manifest::Manifest,
    crate::manifest::BuildReportFile,
    System,
)> {
    let chip = &opts.chip;
    let manifest = crate::manifest::Manifest::read(chip)?;
    manifest.verify(chip, crate::manifest::Check::ImageAndReport)?;
    let build = crate::manifest::BuildReportFile::read(chip)?;
    let system = match system {
        Some(s) => s,
        None => crate::system::partition(plan, opts.budget.as_deref().unwrap_or("hc1"), 1)?,
    };
    Ok((manifest, build, system))
}

/// The chip's image rebuilt with linear layers in format `f` (its
/// context and table format kept), planned as the chip and partitioned on
/// its budget: (image, bits per weight, system).
fn rebuild(
    loaded: &taalasc_frontends::LoadedModel,
    f: &str,
    context: usize,
    manifest: &crate::manifest::Manifest,
    plan: &Plan,
    system: &System,
) -> anyhow::Result<(ChipImage, f64, System)> {
    let mut o = BuildOptions::defaults(&loaded.model);
    o.linear = f.parse().with_context(|| format!("--sweep format `{f}`"))?;
    o.context = context;
    o.table = manifest.table_format.parse()?;
    eprintln!("report: rebuilding with linear layers {f}...");
    let (img, rep) = build_image(loaded, &o, None)?;
    let mut p = taalasc_verilog::plan::plan_shared(
        &img,
        plan.lanes,
        plan.rows,
        plan.users,
        true,
        plan.layers_per_engine,
    )?;
    p.set_attn_parallel(plan.attn_par)?;
    let s = crate::system::partition_with(&p, system.budget.clone(), system.min_chips)?;
    Ok((img, rep.bits_per_weight, s))
}

fn quality_of(text: &Path, q: &eval::PerplexityReport, float_ppl: f64) -> Quality {
    Quality {
        text: text.display().to_string(),
        tokens_scored: q.tokens_scored,
        ppl: q.perplexity,
        float_ppl,
        kl: q.kl_mean.unwrap_or(0.0),
        top1: q.top1.unwrap_or(1.0),
    }
}

fn point_of(label: &str, bpw: f64, s: &System, r: &eval::PerplexityReport) -> QualityPoint {
    QualityPoint {
        label: label.to_string(),
        bits_per_weight: bpw,
        rom_mbit: s.stages.iter().map(|c| c.rom_bits).sum::<u64>() as f64 / 1e6,
        area_mm2: s.partition.chips.iter().map(|c| c.area_mm2).sum(),
        chips: s.partition.chips.len(),
        ppl: r.perplexity,
        kl: r.kl_mean.unwrap_or(0.0),
        top1: r.top1.unwrap_or(1.0),
    }
}

/// What a point's result depends on beyond the chip folder (for
/// [`crate::job_result::fingerprint`]): the point, the text (its path as
/// recorded and its bytes), the chunks scored and the budget.
pub fn job_params(
    opts: &ReportOptions,
    point: &str,
    range: Option<(usize, usize)>,
) -> anyhow::Result<serde_json::Value> {
    let text = opts
        .text
        .as_deref()
        .context("a quality point is scored on a text: give --text FILE")?;
    let digest =
        crate::manifest::file_digest(text).with_context(|| format!("--text {}", text.display()))?;
    let mut v = serde_json::json!({
        "kind": "sweep",
        "point": point,
        "text": text.display().to_string(),
        "text_sha256": digest,
        "ctx": opts.ctx,
        "chunks": opts.chunks,
        "budget": opts.budget,
    });
    if let Some((a, b)) = range {
        v["chunks_from"] = a.into();
        v["chunks_to"] = b.into();
    }
    Ok(v)
}

/// What one quality point scores: the chip's own image (`rebuilt: None`),
/// or the image rebuilt in the point's format with its bits per weight and
/// system figures.
struct PointInput<'a> {
    text: &'a Path,
    source: PathBuf,
    layers: Option<usize>,
    image: ChipImage,
    rebuilt: Option<(f64, System)>,
}

/// Opens `opts.chip` for `point` (see [`PointInput`]), rebuilding unless the
/// point is the chip itself.
fn point_input<'a>(
    opts: &'a ReportOptions,
    plan: &Plan,
    system: Option<System>,
    point: &str,
) -> anyhow::Result<PointInput<'a>> {
    let (manifest, _, system) = open(opts, plan, system)?;
    let text = opts
        .text
        .as_deref()
        .context("--point scores on a text: give --text FILE")?;
    let source = manifest.source.path.clone();
    let layers = manifest.source.layers_kept;
    let image = crate::chip::read_image(&opts.chip)?;
    if point == CHIP_POINT {
        return Ok(PointInput {
            text,
            source,
            layers,
            image,
            rebuilt: None,
        });
    }
    let loaded = crate::load_layers(&source, layers)?;
    let (img, bpw, s) = rebuild(&loaded, point, image.context, &manifest, plan, &system)?;
    Ok(PointInput {
        text,
        source,
        layers,
        image: img,
        rebuilt: Some((bpw, s)),
    })
}

/// Scores one point of the quality table of `opts` (`chip`, or a format
/// of `opts.sweep`'s kind) on `opts.text` against the float model: the
/// figures `report` computes for it, bit for bit (each image's tallies are
/// its own, whatever else is scored in the same pass).
pub fn score_point(
    opts: &ReportOptions,
    plan: &Plan,
    system: Option<System>,
    point: &str,
) -> anyhow::Result<PointResult> {
    let p = point_input(opts, plan, system, point)?;
    let (float_ppl, reports) = score(
        &[&p.image],
        &p.source,
        p.layers,
        p.text,
        opts.ctx,
        opts.chunks,
    )?;
    Ok(match p.rebuilt {
        None => PointResult::Chip(quality_of(p.text, &reports[0], float_ppl)),
        Some((bpw, s)) => PointResult::Sweep(point_of(point, bpw, &s, &reports[0])),
    })
}

/// [`score_point`] on chunks `from..to` of the first `opts.chunks` chunks
/// of the text: the range's per-chunk sums, one part of the point.
pub fn score_point_range(
    opts: &ReportOptions,
    plan: &Plan,
    system: Option<System>,
    point: &str,
    (from, to): (usize, usize),
) -> anyhow::Result<PointResult> {
    anyhow::ensure!(
        from < to && to <= opts.chunks,
        "--chunks-from {from} --chunks-to {to}: give a non-empty range of the --chunks {} scored (FROM < TO <= {})",
        opts.chunks,
        opts.chunks
    );
    let p = point_input(opts, plan, system, point)?;
    let range = eval::ChunkRange {
        from: Some(from),
        to: Some(to),
    };
    let mut reports = score_range(&[&p.image], &p.source, p.layers, p.text, opts.ctx, range)?;
    // The float model's sums, then the image's.
    let image = reports.remove(1);
    let float = reports.remove(0);
    Ok(PointResult::Range(Box::new(match p.rebuilt {
        None => RangeResult {
            point: point.into(),
            image,
            float: Some(float),
            sweep: None,
        },
        Some((bpw, s)) => RangeResult {
            point: point.into(),
            sweep: Some(point_of(point, bpw, &s, &image)),
            image,
            float: None,
        },
    })))
}

/// Builds the report of `opts.chip`; returns the folder written.
pub fn report(
    opts: &ReportOptions,
    plan: &Plan,
    system: Option<System>,
) -> anyhow::Result<PathBuf> {
    let chip = &opts.chip;
    let (manifest, _, system) = open(opts, plan, system)?;
    let source = manifest.source.path.clone();
    let layers = manifest.source.layers_kept;
    // Quality of this build, and of the sweep's rebuilds, on the same chunks.
    let mut quality = None;
    let mut sweep = Vec::new();
    if let Some(text) = &opts.text {
        // Scoring runs the reference: it needs the whole image.
        let image = &crate::chip::read_image(chip)?;
        let mut rebuilt = Vec::new();
        if !opts.sweep.is_empty() {
            let loaded = crate::load_layers(&source, layers)?;
            for f in &opts.sweep {
                let (img, bpw, s) = rebuild(&loaded, f, image.context, &manifest, plan, &system)?;
                rebuilt.push((f.clone(), img, bpw, s));
            }
        }
        let mut images: Vec<&ChipImage> = vec![image];
        images.extend(rebuilt.iter().map(|r| &r.1));
        eprintln!(
            "report: scoring {} image(s) and the float model on {} chunk(s) of {} tokens...",
            images.len(),
            opts.chunks,
            opts.ctx
        );
        let (float_ppl, reports) = score(&images, &source, layers, text, opts.ctx, opts.chunks)?;
        quality = Some(quality_of(text, &reports[0], float_ppl));
        for ((label, _, bpw, s), r) in rebuilt.iter().zip(&reports[1..]) {
            sweep.push(point_of(label, *bpw, s, r));
        }
    } else if !opts.sweep.is_empty() {
        anyhow::bail!("--sweep scores each setting on a text: give --text FILE too");
    }
    write_report(opts, plan, Some(system), quality, sweep)
}

/// Writes the report of `opts.chip` with the quality and sweep points
/// given (scored by [`report`] or by `report --point` jobs that
/// `taalasc gather` merges) and the chip's last simulation record.
pub fn write_report(
    opts: &ReportOptions,
    plan: &Plan,
    system: Option<System>,
    quality: Option<Quality>,
    sweep: Vec<QualityPoint>,
) -> anyhow::Result<PathBuf> {
    let chip = &opts.chip;
    let (manifest, build, system) = open(opts, plan, system)?;
    let source = manifest.source.path.clone();
    // The last simulation of this chip, if one was run.
    let sim_dir = if system.board.is_some() {
        chip.join("board")
    } else {
        chip.to_path_buf()
    };
    let record = sim_dir.join(crate::sim::SIM_RESULT);
    let measured = match std::fs::read_to_string(&record) {
        Ok(t) => {
            let v: crate::sim::SimRecord =
                serde_json::from_str(&t).with_context(|| format!("{}", record.display()))?;
            Some(Measured {
                users: v.users,
                latency_cycles_per_token: v.cycles_per_token,
                throughput_cycles_per_token: v.throughput_cycles_per_token,
                bit_exact: v.bit_exact,
                positions: v.positions,
                command: v.command,
            })
        }
        Err(_) => None,
    };
    let base = system_input(
        source.display().to_string(),
        manifest.source.architecture.clone(),
        (build.build.params, build.build.total_bits),
        plan,
        &system,
    )?;
    let input = ReportInput {
        measured,
        quality,
        quality_vs_area: sweep,
        ..base
    };
    let out = opts.out.clone().unwrap_or_else(|| chip.join("report"));
    // A new folder, or the report taalasc wrote there before: never a
    // folder with anything else in it (RFC 0006).
    let staging = crate::output::claim(
        &out,
        crate::output::FolderKind::Report,
        crate::output::Existing::Replace,
    )?;
    taalasc_report::write(&taalasc_report::compute(&input), staging.dir())
        .with_context(|| format!("writing {}", out.display()))?;
    staging.finish()
}

/// The report's input for `plan` partitioned as `system`, with `params`
/// parameters stored in `weight_bits` ROM bits: everything but what a
/// simulation or a quality run measures (those are left empty).
pub fn system_input(
    model: String,
    architecture: String,
    (params, weight_bits): (u64, u64),
    plan: &Plan,
    system: &System,
) -> anyhow::Result<ReportInput> {
    let shape = model_shape(plan);
    let input = ReportInput {
        model,
        architecture,
        params,
        weight_bits,
        bits_per_weight: weight_bits as f64 / params.max(1) as f64,
        lanes: plan.lanes,
        users: plan.users,
        context: plan.context,
        budget: system.budget.clone(),
        stages: system.stages.clone(),
        partition: system.partition.clone(),
        measured: None,
        quality: None,
        quality_vs_area: Vec::new(),
        rom_density_sensitivity: Vec::new(),
        context_points: context_points(plan, system)?,
        weights_per_token: shape.0,
        kv_values_per_position: shape.1,
        attn_macs_per_position: shape.2,
        clock_evidence: clock_evidence(plan, &system.budget),
    };
    Ok(ReportInput {
        rom_density_sensitivity: rom_sensitivity(&input, system.min_chips),
        ..input
    })
}

/// The synthesized units' evidence on the clock, at the budget's FO4 figure
/// (none when the budget has none).
pub fn clock_evidence(
    plan: &Plan,
    budget: &taalasc_partition::Budget,
) -> Option<taalasc_partition::ClockEvidence> {
    let fo4 = budget.fo4_ps?;
    let source = budget
        .sources
        .get("fo4_ps")
        .map_or("assumption: the budget gives no source", |s| s.as_str());
    taalasc_verilog::cost::clock_evidence(plan, (fo4, source))
}

/// Stage costs of the last token of each context of the report's curves
/// (`taalasc_report::curves::CONTEXTS`), from the same cost model as the
/// build's own stage costs.
fn context_points(
    plan: &Plan,
    system: &System,
) -> anyhow::Result<Vec<taalasc_report::ContextStages>> {
    taalasc_report::curves::CONTEXTS
        .iter()
        .map(|&t| {
            let stages = taalasc_verilog::cost::stage_costs_at(plan, t - 1);
            anyhow::ensure!(
                stages.len() == system.stages.len(),
                "the plan has {} pipeline stages but the build's partition {}: rebuild the chip",
                stages.len(),
                system.stages.len()
            );
            Ok(taalasc_report::ContextStages {
                context: t,
                position: t - 1,
                stages,
            })
        })
        .collect()
}

/// What a GPU serving the same model reads and computes per token:
/// (weights read: every linear layer's matrix and one embedding row; K and
/// V values per position, all layers; attention MACs per cached position,
/// `2·heads·head_dim` per layer).
fn model_shape(plan: &Plan) -> (u64, u64, u64) {
    use taalasc_verilog::plan::Instr;
    let (mut w, mut kv, mut attn) = (0u64, 0u64, 0u64);
    for s in plan.stages() {
        let e = &plan.engines[s.engine];
        for i in &e.program[s.pc0..s.pc1] {
            match i {
                Instr::Linear { rows, cols, .. } => w += (*rows * *cols) as u64,
                Instr::Embed { cols, .. } => w += *cols as u64,
                Instr::Attn { unit, .. } => {
                    let a = &e.attns[*unit];
                    kv += 2 * (a.kv_heads * a.head_dim) as u64;
                    attn += 2 * (a.heads * a.head_dim) as u64;
                }
                _ => {}
            }
        }
    }
    (w, kv, attn)
}

/// The build partitioned again (at least `min_chips` chips, as built) with
/// mask ROM 1, 2, 4 and 8 times as dense as the budget's SRAM (and at the budget's own figure, if it is none of
/// those): the one budget figure that is an assumption and decides chips
/// per model. Densities at which some stage fits no die are left out.
fn rom_sensitivity(input: &ReportInput, min_chips: usize) -> Vec<Sensitivity> {
    let b = &input.budget;
    let mut densities: Vec<f64> = [1.0, 2.0, 4.0, 8.0]
        .iter()
        .map(|k| k * b.sram_mbit_per_mm2)
        .collect();
    if !densities.contains(&b.rom_mbit_per_mm2) {
        densities.push(b.rom_mbit_per_mm2);
        densities.sort_by(f64::total_cmp);
    }
    densities
        .into_iter()
        .filter_map(|d| {
            let mut budget = b.clone();
            budget.rom_mbit_per_mm2 = d;
            let partition = taalasc_partition::partition(&input.stages, &budget, min_chips).ok()?;
            let r = taalasc_report::compute(&ReportInput {
                budget,
                partition,
                measured: None,
                quality: None,
                quality_vs_area: Vec::new(),
                ..input.clone()
            });
            Some(Sensitivity {
                rom_mbit_per_mm2: d,
                chips: r.chips.len(),
                max_context_at_users: r.memory.max_context_at_users,
                tokens_per_s_per_user: r.timing.tokens_per_s_per_user,
                aggregate_tokens_per_s: r.timing.aggregate_tokens_per_s,
                energy_per_token_j: r.energy.total_j,
                usd_per_mtoken: r.cost.usd_per_mtoken,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// Logits that depend on the token and the position: every chunk has
    /// its own NLL, so the order of the sums matters.
    struct Toy(f32);
    impl eval::LogitsEngine for Toy {
        fn chunk_logits(&self, tokens: &[u32], from: usize) -> anyhow::Result<Array2<f32>> {
            Ok(Array2::from_shape_fn(
                (tokens.len() - from, 11),
                |(r, v)| {
                    let t = tokens[from + r] as usize;
                    ((t * 7 + v * 3 + r * r) % 11) as f32 * self.0
                        + (v == (t + 1) % 11) as u8 as f32
                },
            ))
        }
    }

    #[test]
    fn chunk_ranges_merge_to_the_bits_of_one_pass() {
        let mut x = 99u64;
        let ids: Vec<u32> = (0..70)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                ((x >> 33) % 11) as u32
            })
            .collect();
        let chunks = eval::chunks(&ids, 10, None, None);
        assert_eq!(chunks.len(), 7);
        let (float, image) = (Toy(0.9), Toy(0.4));
        let engines: [&dyn eval::LogitsEngine; 2] = [&float, &image];
        let base: &dyn eval::LogitsEngine = &float;
        let pass = |first: usize, c: &[Vec<u32>]| {
            eval::quality_many_at(&engines, Some(base), first, c, 70, false, &|_| {}).unwrap()
        };
        let whole = pass(0, &chunks);
        let text = Path::new("/t.txt");
        let want = PointResult::Chip(quality_of(text, &whole[1], whole[0].perplexity));
        let range = |a: usize, b: usize| {
            let mut r = pass(a, &chunks[a..b]);
            RangeResult {
                point: CHIP_POINT.into(),
                float: Some(r.remove(0)),
                image: r.remove(0),
                sweep: None,
            }
        };
        let parts = [range(3, 7), range(0, 2), range(2, 3)];
        let json = |p: &PointResult| serde_json::to_string(p).unwrap();
        assert_eq!(
            json(&merge_ranges(text, CHIP_POINT, &parts).unwrap()),
            json(&want)
        );
        // Perplexities differ between ranges: combining them is not the merge.
        assert_ne!(parts[0].image.perplexity, parts[1].image.perplexity);
        let e = merge_ranges(text, CHIP_POINT, &parts[..2]).unwrap_err();
        assert!(
            format!("{e:#}").contains("chunks 2..3 are missing"),
            "{e:#}"
        );
        let e = merge_ranges(text, CHIP_POINT, &parts[..1]).unwrap_err();
        assert!(format!("{e:#}").contains("start at chunk 3"), "{e:#}");
        // A sweep point: the build's figures kept, quality from the totals.
        let q = QualityPoint {
            label: "s3g32".into(),
            bits_per_weight: 3.5,
            rom_mbit: 1.0,
            area_mm2: 2.0,
            chips: 1,
            ppl: 0.0,
            kl: 0.0,
            top1: 0.0,
        };
        let sweep: Vec<RangeResult> = parts
            .iter()
            .map(|r| RangeResult {
                point: "s3g32".into(),
                float: None,
                sweep: Some(q.clone()),
                ..r.clone()
            })
            .collect();
        let got = merge_ranges(text, "s3g32", &sweep).unwrap();
        let want = PointResult::Sweep(QualityPoint {
            ppl: whole[1].perplexity,
            kl: whole[1].kl_mean.unwrap(),
            top1: whole[1].top1.unwrap(),
            ..q.clone()
        });
        assert_eq!(json(&got), json(&want));
        let mut odd = sweep.clone();
        odd[1].sweep.as_mut().unwrap().bits_per_weight = 4.0;
        let e = merge_ranges(text, "s3g32", &odd).unwrap_err();
        assert!(e.to_string().contains("rebuilt different images"), "{e}");
    }
}
