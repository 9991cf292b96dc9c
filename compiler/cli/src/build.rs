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

/// What `build` was asked for.
#[derive(Clone, Debug, Serialize)]
pub struct BuildOptions {
    /// Format of every linear layer (the head included unless tied).
    pub linear: WeightFormat,
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

/// Quantizes `loaded` into a chip image.
pub fn build_image(
    loaded: &LoadedModel,
    opts: &BuildOptions,
) -> anyhow::Result<(ChipImage, BuildReport)> {
    let model = &loaded.model;
    // Which op reads each weight decides its on-chip form.
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
                let fmt = if r == "table" {
                    &opts.table
                } else {
                    &opts.linear
                };
                let [rows, cols] = info.shape[..] else {
                    bail!(
                        "`{}` has shape {:?}, expected a matrix",
                        info.name,
                        info.shape
                    );
                };
                let (q, method) = match import(loaded, id, fmt)? {
                    Some(q) => (q, "import"),
                    None => (
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
    report: &BuildReport,
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
            table: "s8g32".parse().expect("valid format"),
            context: model.hparams.max_positions.min(2048),
        }
    }
}
