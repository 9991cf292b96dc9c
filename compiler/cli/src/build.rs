//! `taalasc build`: quantize a checkpoint into a chip image.
//!
//! Every IR weight gets its on-chip form: linear weights and tables become
//! quantized matrices (`taalasc-quant`), norm gains fixed-point Q15.16, linear
//! biases `W48`. When a source tensor is already stored in a block format that
//! the chosen chip format holds exactly (GGUF Q4_1 → a4g32, Q8_0 → s8g32), its
//! codes and scales are imported as they are: no re-rounding.

use anyhow::{bail, Context};
use serde::Serialize;
use std::path::Path;
use taalasc_frontends::tensors::SourceBlocks;
use taalasc_frontends::LoadedModel;
use taalasc_ir::{Op, WeightId, WeightSource};
use taalasc_numerics as nx;
use taalasc_quant::{QTensor, WeightFormat};
use taalasc_reference::{ChipImage, Param};

/// How weights are rounded onto their format's grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Quantizer {
    /// Round to nearest, per group, with a small scale search.
    Rtn,
    /// GPTQ: Hessian-based error-compensating rounding (needs calibration text).
    Gptq,
}

/// GPTQ's column order (see [`taalasc_quant::GptqOptions::act_order`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum GptqOrder {
    /// Decreasing input energy `H_ii`, group parameters fixed up front.
    Act,
    /// Input order, each group's parameters chosen when it is reached.
    Natural,
}

/// What `build` was asked for.
#[derive(Clone, Debug, Serialize)]
pub struct BuildOptions {
    /// Format of every linear layer (the head included unless tied), unless
    /// `per_weight` names another.
    pub linear: WeightFormat,
    /// Per-weight formats chosen by the `--bits auto` pass, by weight name.
    pub per_weight: std::collections::BTreeMap<String, WeightFormat>,
    pub quantizer: Quantizer,
    /// GPTQ settings (used when `quantizer` is GPTQ).
    pub gptq: taalasc_quant::GptqOptions,
    /// Format of the embedding and position tables.
    pub table: WeightFormat,
    /// KV-cache and RoPE positions.
    pub context: usize,
}

/// One quantized weight in the report.
#[derive(Clone, Debug, Serialize)]
pub struct WeightReport {
    pub name: String,
    pub layer: Option<usize>,
    pub format: String,
    pub method: &'static str,
    pub params: u64,
    pub bits: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct BuildReport {
    pub options: BuildOptions,
    pub weights: Vec<WeightReport>,
    pub params: u64,
    pub total_bits: u64,
    /// Every tensor counted: embedding, head, gains, biases, all scales.
    pub bits_per_weight: f64,
}

/// The on-chip role of each weight, decided by the ops that read it, and
/// the decoder layer it belongs to.
#[allow(clippy::type_complexity)]
pub(crate) fn roles(model: &taalasc_ir::Model) -> (Vec<Option<&'static str>>, Vec<Option<usize>>) {
    let mut role: Vec<Option<&'static str>> = vec![None; model.weights.len()];
    let mut layer_of: Vec<Option<usize>> = vec![None; model.weights.len()];
    for n in model.graph.node_indices() {
        let node = &model.graph[n];
        let mut set = |id: WeightId, r: &'static str| {
            let slot = &mut role[id.0 as usize];
            // A tied table read by Embed and the head keeps the table format.
            if slot.is_none() || r == "table" {
                *slot = Some(r);
            }
            layer_of[id.0 as usize] = layer_of[id.0 as usize].or(node.layer);
        };
        match &node.op {
            Op::Embed { table } | Op::AddPositions { table } => set(*table, "table"),
            Op::Linear { weight, bias } => {
                set(*weight, "linear");
                if let Some(b) = bias {
                    set(*b, "bias");
                }
            }
            Op::RmsNorm { gain, .. } => set(*gain, "gain"),
            Op::LayerNorm { gain, bias, .. } => {
                set(*gain, "gain");
                set(*bias, "gain");
            }
            _ => {}
        }
    }
    (role, layer_of)
}

/// Quantizes `loaded` into a chip image. `calib` is needed by GPTQ.
pub fn build_image(
    loaded: &LoadedModel,
    opts: &BuildOptions,
    calib: Option<&crate::calib::Calibration>,
) -> anyhow::Result<(ChipImage, BuildReport)> {
    let model = &loaded.model;
    let (role, layer_of) = roles(model);
    if opts.quantizer == Quantizer::Gptq && calib.is_none() {
        bail!("GPTQ needs calibration text (--calib FILE)");
    }
    let mut params = Vec::with_capacity(model.weights.len());
    let mut weights = Vec::new();
    for (i, info) in model.weights.iter().enumerate() {
        let id = WeightId(i as u32);
        let values = || {
            loaded
                .weights
                .load_f32(id)
                .with_context(|| format!("reading `{}`", info.name))
        };
        let (param, format, method, bits) = match role[i] {
            Some(r @ ("linear" | "table")) => {
                let fmt = match opts.per_weight.get(&info.name) {
                    Some(f) => f,
                    None if r == "table" => &opts.table,
                    None => &opts.linear,
                };
                let [rows, cols] = info.shape[..] else {
                    bail!(
                        "`{}` has shape {:?}, expected a matrix",
                        info.name,
                        info.shape
                    );
                };
                // GPTQ needs the input statistics of the layer; a table that is
                // only looked up (not a tied head) has none and uses RTN.
                let hessian = calib
                    .and_then(|c| c.hessian(id))
                    .filter(|_| opts.quantizer == Quantizer::Gptq);
                let (q, method) = match (import(loaded, id, fmt)?, hessian) {
                    (Some(q), _) => (q, "import"),
                    (None, Some(h)) => (
                        taalasc_quant::quantize_gptq(&values()?, rows, cols, fmt, h, &opts.gptq)
                            .with_context(|| format!("GPTQ of `{}`", info.name))?,
                        "gptq",
                    ),
                    (None, None) => (
                        taalasc_quant::quantize_rtn(&values()?, rows, cols, fmt)
                            .with_context(|| format!("quantizing `{}`", info.name))?,
                        "rtn",
                    ),
                };
                let bits = q.storage_bits();
                (Param::Matrix(q), fmt.name(), method, bits)
            }
            Some("bias") => {
                let v: Vec<i64> = values()?
                    .iter()
                    .map(|&x| nx::formats::w48_from_f64(x as f64))
                    .collect();
                let bits = v.len() as u64 * nx::W_BITS as u64;
                (Param::Wide(v), "w48".to_string(), "fixed", bits)
            }
            Some(_) => {
                let v: Vec<i32> = values()?
                    .iter()
                    .map(|&x| nx::formats::r32_from_f64(x as f64))
                    .collect();
                let bits = v.len() as u64 * 32;
                (Param::Fixed16(v), "q15.16".to_string(), "fixed", bits)
            }
            None => bail!("weight `{}` is read by no op", info.name),
        };
        weights.push(WeightReport {
            name: info.name.clone(),
            layer: layer_of[i],
            format,
            method,
            params: info.numel(),
            bits,
        });
        params.push(param);
    }
    let total_bits: u64 = weights.iter().map(|w| w.bits).sum();
    let n_params = model.param_count();
    let report = BuildReport {
        options: opts.clone(),
        weights,
        params: n_params,
        total_bits,
        bits_per_weight: total_bits as f64 / n_params as f64,
    };
    Ok((
        ChipImage {
            model: model.clone(),
            params,
            context: opts.context,
        },
        report,
    ))
}

/// Lossless import when the source block format is exactly the chip format.
fn import(
    loaded: &LoadedModel,
    id: WeightId,
    fmt: &WeightFormat,
) -> anyhow::Result<Option<QTensor>> {
    let name = fmt.name();
    Ok(match loaded.weights.load_blocks(id)? {
        Some(SourceBlocks::Q4_1 {
            rows,
            cols,
            d,
            m,
            q,
        }) if name == "a4g32" => Some(taalasc_quant::import_q4_1(rows, cols, &d, &m, &q)?),
        Some(SourceBlocks::Q8_0 { rows, cols, d, q }) if name == "s8g32" => {
            Some(taalasc_quant::import_q8_0(rows, cols, &d, &q)?)
        }
        _ => None,
    })
}

/// Writes the image folder atomically: everything goes into a temporary
/// sibling folder, which is then renamed over `out`.
pub fn write_image(
    out: &Path,
    image: &ChipImage,
    manifest: &serde_json::Value,
    report: &serde_json::Value,
) -> anyhow::Result<()> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = out
        .file_name()
        .context("output path has no folder name")?
        .to_string_lossy()
        .into_owned();
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let result = (|| -> anyhow::Result<()> {
        let (graph, weights) = image.to_files();
        std::fs::write(tmp.join(taalasc_reference::image::GRAPH_FILE), graph)?;
        std::fs::write(tmp.join(taalasc_reference::image::WEIGHTS_FILE), weights)?;
        std::fs::write(
            tmp.join("manifest.json"),
            serde_json::to_string_pretty(manifest)? + "\n",
        )?;
        std::fs::write(
            tmp.join("report.json"),
            serde_json::to_string_pretty(report)? + "\n",
        )?;
        if out.exists() {
            let old = parent.join(format!(".{name}.old-{}", std::process::id()));
            std::fs::rename(out, &old)?;
            std::fs::rename(&tmp, out)?;
            std::fs::remove_dir_all(&old)?;
        } else {
            std::fs::rename(&tmp, out)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result.with_context(|| format!("writing {}", out.display()))
}

impl BuildOptions {
    /// Defaults for `model`: a4g32 linear layers (which hold GGUF Q4_1
    /// exactly), s8g32 tables (which hold Q8_0 exactly), and a context of the
    /// model's maximum positions capped at 2048.
    pub fn defaults(model: &taalasc_ir::Model) -> BuildOptions {
        BuildOptions {
            linear: "a4g32".parse().expect("valid format"),
            per_weight: Default::default(),
            quantizer: Quantizer::Rtn,
            gptq: taalasc_quant::GptqOptions {
                act_order: true,
                ..Default::default()
            },
            table: "s8g32".parse().expect("valid format"),
            context: model.hparams.max_positions.min(2048),
        }
    }
}

/// Linear-layer formats the `--bits auto` pass chooses among: free `SF16`
/// scales for the exact imports (a4g32 holds GGUF Q4_1, s8g32 Q8_0) and the
/// large groups, where scales cost little anyway; two-level 8-bit scales
/// (`h`, half the scale storage) for the rest.
pub const AUTO_CANDIDATES: &[&str] = &[
    "a4g32", "s8g32", "a2g64", "a2g128", "a3g64", "a3g128", "a4g64", "a4g128", "a5g128", "a6g128",
    "a8g128", "a2g32h", "a2g64h", "a3g32h", "s3g32h", "a3g64h", "a4g32h", "s4g32h", "a4g64h",
    "a5g32h", "a5g64h", "a6g32h", "s6g32h", "a8g32h", "s8g32h",
];

/// What `--bits auto` optimizes.
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoTarget {
    /// Least loss within a total ROM budget in bits (every tensor and scale counted).
    RomBits(u64),
    /// Least loss within `bits_per_weight × parameters` ROM bits.
    BitsPerWeight(f64),
    /// Fewest bits with total loss at most this.
    Loss(f64),
}

/// What the pass did, for `report.json`.
#[derive(Clone, Debug, Serialize)]
pub struct AutoReport {
    pub target: AutoTarget,
    /// Bits of everything the pass does not choose (tables, gains, biases).
    pub fixed_bits: u64,
    pub layers: usize,
    pub candidates_per_layer: usize,
    pub sensitivity_seconds: f64,
    pub calibration_tokens: usize,
    /// Per layer (in plan order): measured KL per unit of proxy loss, from
    /// quantizing that layer alone to the probe format (empty if not measured).
    pub importance: Vec<f64>,
    pub plan: taalasc_egraph::Plan,
    /// The chosen format of each layer with its ROM bits and predicted loss
    /// (KL units when importance was measured), most costly first.
    pub chosen: Vec<ChosenLayer>,
}

/// One layer's choice in [`AutoReport::chosen`].
#[derive(Clone, Debug, Serialize)]
pub struct ChosenLayer {
    pub name: String,
    pub format: String,
    pub bits: u64,
    pub loss: f64,
}

/// Measures every linear layer's sensitivity to every candidate format and
/// lets the e-graph pass choose one format per layer.
///
/// Sensitivity: `Σ (Δw)² · E[x²]` over the layer, from plain RTN of each
/// candidate and the calibration inputs' mean squares (diagonal of the input
/// Hessian); an exactly importable format (GGUF Q4_1 as a4g32) has loss 0.
pub fn plan_auto(
    loaded: &LoadedModel,
    calib: &crate::calib::Calibration,
    probe: Option<(&mut taalasc_float::FloatModel, &[u32])>,
    target: AutoTarget,
) -> anyhow::Result<(std::collections::BTreeMap<String, WeightFormat>, AutoReport)> {
    let model = &loaded.model;
    let (role, _) = roles(model);
    let formats: Vec<WeightFormat> = AUTO_CANDIDATES
        .iter()
        .map(|f| f.parse().expect("valid candidate"))
        .collect();
    let mut fixed_bits = 0u64;
    let mut linears = Vec::new();
    for (i, info) in model.weights.iter().enumerate() {
        match role[i] {
            // Embedding (and tied head) tables are chosen too: at SmolLM2's
            // size the table alone is a fifth of the parameters.
            Some("linear" | "table") => linears.push(WeightId(i as u32)),
            Some("bias") => fixed_bits += info.numel() * nx::W_BITS as u64,
            Some(_) => fixed_bits += info.numel() * 32,
            None => {}
        }
    }
    let t0 = std::time::Instant::now();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let layer_choices: Vec<anyhow::Result<taalasc_egraph::LayerChoices>> =
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|k| {
                    let (linears, formats) = (&linears, &formats);
                    s.spawn(move || {
                        linears
                            .iter()
                            .enumerate()
                            .filter(|(j, _)| j % threads == k)
                            .map(|(_, &id)| sensitivity(loaded, calib, id, formats))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let mut per_thread: Vec<std::vec::IntoIter<_>> = handles
                .into_iter()
                .map(|h| h.join().expect("sensitivity worker").into_iter())
                .collect();
            (0..linears.len())
                .map(|j| {
                    per_thread[j % threads]
                        .next()
                        .expect("one result per layer")
                })
                .collect()
        });
    let mut layer_choices: Vec<taalasc_egraph::LayerChoices> =
        layer_choices.into_iter().collect::<anyhow::Result<_>>()?;
    // The proxy measures each layer's own output error; layers differ in how
    // much of that reaches the logits. Scale each layer's proxy by its
    // measured end-to-end effect: KL(float ‖ float with only this layer at
    // the probe format) / proxy(probe format).
    let mut importance = Vec::new();
    if let Some((float, window)) = probe {
        let probe_fmt: WeightFormat = IMPORTANCE_PROBE.parse().expect("valid probe format");
        let base = float.forward(&mut float.session(), window, 0)?;
        let base_lp: Vec<Vec<f64>> = base
            .rows()
            .into_iter()
            .map(|r| taalasc_float::log_softmax(r.as_slice().expect("row")))
            .collect();
        for (j, &id) in linears.iter().enumerate() {
            let info = model.weight(id);
            let w = loaded.weights.load_f32(id)?;
            let q =
                taalasc_quant::quantize_rtn_plain(&w, info.shape[0], info.shape[1], &probe_fmt)?;
            let proxy =
                taalasc_quant::weighted_error(&w, &q, &layer_diag(calib, id, info.shape[1]));
            let old = float.swap_weight(id, q.dequant_f32());
            let out = float.forward(&mut float.session(), window, 0);
            float.swap_weight(id, old);
            let out = out?;
            let kl: f64 = out
                .rows()
                .into_iter()
                .zip(&base_lp)
                .map(|(r, b)| {
                    let q = taalasc_float::log_softmax(r.as_slice().expect("row"));
                    b.iter()
                        .zip(&q)
                        .map(|(&p, &q)| p.exp() * (p - q))
                        .sum::<f64>()
                })
                .sum::<f64>()
                / window.len() as f64;
            let scale = if proxy > 0.0 {
                kl.max(0.0) / proxy
            } else {
                0.0
            };
            importance.push(scale);
            for c in &mut layer_choices[j].candidates {
                c.loss *= scale;
            }
        }
    }
    let sensitivity_seconds = t0.elapsed().as_secs_f64();

    let objective = match target {
        AutoTarget::RomBits(b) => taalasc_egraph::Objective::RomBudget {
            bits: b.saturating_sub(fixed_bits),
        },
        AutoTarget::BitsPerWeight(x) => taalasc_egraph::Objective::RomBudget {
            bits: ((x * model.param_count() as f64) as u64).saturating_sub(fixed_bits),
        },
        AutoTarget::Loss(l) => taalasc_egraph::Objective::LossBudget { loss: l },
    };
    let plan = taalasc_egraph::choose(&layer_choices, &objective).with_context(|| match target {
        AutoTarget::Loss(l) => format!("--loss-budget {l}"),
        _ => format!(
            "the ROM budget ({:?}) minus {fixed_bits} bits of gains and biases leaves the layers {} bits",
            target,
            match objective {
                taalasc_egraph::Objective::RomBudget { bits } => bits,
                _ => 0,
            }
        ),
    })?;
    let chosen = linears
        .iter()
        .zip(&plan.choice)
        .zip(&layer_choices)
        .map(|((&id, &c), lc)| (model.weight(id).name.clone(), lc.candidates[c].format))
        .collect();
    let mut chosen_report: Vec<ChosenLayer> = plan
        .choice
        .iter()
        .zip(&layer_choices)
        .map(|(&c, lc)| ChosenLayer {
            name: lc.name.clone(),
            format: lc.candidates[c].format.name(),
            bits: lc.candidates[c].bits,
            loss: lc.candidates[c].loss,
        })
        .collect();
    // Most costly first; ties (e.g. lossless layers) by name, for stable output.
    chosen_report.sort_by(|a, b| b.loss.total_cmp(&a.loss).then(a.name.cmp(&b.name)));
    Ok((
        chosen,
        AutoReport {
            target,
            fixed_bits,
            layers: linears.len(),
            candidates_per_layer: formats.len(),
            sensitivity_seconds,
            calibration_tokens: calib.tokens,
            importance,
            plan,
            chosen: chosen_report,
        },
    ))
}

/// Format used to measure each layer's end-to-end importance.
pub const IMPORTANCE_PROBE: &str = "a3g32";

/// Mean squared input per column: the diagonal that weights a layer's
/// quantization error. A table that is also the (tied) head uses the head's
/// input statistics; a table read only by lookups uses unit weights.
fn layer_diag(calib: &crate::calib::Calibration, id: WeightId, cols: usize) -> Vec<f64> {
    match calib.hessian(id) {
        Some(h) => h.mean_diag(),
        None => vec![1.0; cols],
    }
}

fn sensitivity(
    loaded: &LoadedModel,
    calib: &crate::calib::Calibration,
    id: WeightId,
    formats: &[WeightFormat],
) -> anyhow::Result<taalasc_egraph::LayerChoices> {
    let info = loaded.model.weight(id);
    let (rows, cols) = (info.shape[0], info.shape[1]);
    let w = loaded.weights.load_f32(id)?;
    let diag = layer_diag(calib, id, cols);
    let mut candidates = Vec::with_capacity(formats.len());
    for fmt in formats {
        if cols % fmt.group_len(cols) != 0 {
            continue; // groups must tile the row
        }
        let loss = match import(loaded, id, fmt)? {
            Some(_) => 0.0,
            None => {
                let q = taalasc_quant::quantize_rtn_plain(&w, rows, cols, fmt)
                    .with_context(|| format!("quantizing `{}` as {fmt}", info.name))?;
                taalasc_quant::weighted_error(&w, &q, &diag)
            }
        };
        candidates.push(taalasc_egraph::Candidate {
            format: *fmt,
            fused: false,
            bits: fmt.storage_bits(rows, cols),
            loss,
        });
    }
    Ok(taalasc_egraph::LayerChoices {
        name: info.name.clone(),
        candidates,
    })
}
