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
use taalasc_image::{ChipImage, ImageSource, Param, ParamInfo};
use taalasc_image::{ImageWriter, MatrixInfo};
use taalasc_ir::{Op, WeightId, WeightSource};
use taalasc_numerics as nx;
use taalasc_quant::{QTensor, WeightFormat, Widths};

/// How weights are rounded onto their format's grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
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
    /// Per-weight formats chosen by the `--bits auto` pass or pinned by
    /// `--layer-format`, by weight name.
    pub per_weight: std::collections::BTreeMap<String, WeightFormat>,
    /// Code widths per column group or row, for the weights of `per_weight`
    /// whose parts differ (see [`taalasc_quant::QTensor::bits_at`]). Not in
    /// `report.json` (a head has one entry per vocabulary row): the report
    /// names each mix (`a4g32h[groups 3:10,4:8]`) and the image holds it.
    #[serde(skip)]
    pub widths: std::collections::BTreeMap<String, taalasc_quant::Widths>,
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

/// How one weight is made, decided from metadata before any value is read.
enum Job<'o> {
    Matrix {
        fmt: &'o WeightFormat,
        widths: &'o Widths,
        rows: usize,
        cols: usize,
    },
    Bias,
    Gain,
}

/// The image's metadata (every weight's on-chip form) and how each weight
/// is made: known before any weight is quantized, so `weights.safetensors`
/// can be laid out up front and the hardware planned without the codes.
fn jobs<'o>(
    loaded: &LoadedModel,
    opts: &'o BuildOptions,
) -> anyhow::Result<(taalasc_image::ImageInfo, Vec<Job<'o>>)> {
    static UNIFORM: Widths = Widths {
        groups: Vec::new(),
        rows: Vec::new(),
    };
    let model = &loaded.model;
    let (role, _) = roles(model);
    let mut infos = Vec::with_capacity(model.weights.len());
    let mut jobs = Vec::with_capacity(model.weights.len());
    for (i, info) in model.weights.iter().enumerate() {
        let (p, job) = match role[i] {
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
                let widths = opts.widths.get(&info.name).unwrap_or(&UNIFORM);
                (
                    ParamInfo::Matrix(MatrixInfo::new(*fmt, rows, cols, widths.clone())),
                    Job::Matrix {
                        fmt,
                        widths,
                        rows,
                        cols,
                    },
                )
            }
            Some("bias") => (ParamInfo::Wide(info.numel() as usize), Job::Bias),
            Some(_) => (ParamInfo::Fixed16(info.numel() as usize), Job::Gain),
            None => bail!("weight `{}` is read by no op", info.name),
        };
        infos.push(p);
        jobs.push(job);
    }
    Ok((
        taalasc_image::ImageInfo {
            model: model.clone(),
            params: infos,
            context: opts.context,
        },
        jobs,
    ))
}

/// A made weight, or a slice of a matrix's rows (in order).
enum Piece {
    Rows(QTensor),
    Whole(Param),
}

/// Elements of a large matrix quantized at a time by RTN (whose rows are
/// independent): 16M, 64 MB of f32, so an 8B model's 525M-weight embedding
/// never sits in memory as f32.
pub const RTN_SLICE_ELEMS: usize = 1 << 24;

/// RTN of rows `r0..` of a matrix (`w` holds them), on `threads` threads
/// (rows are independent, so the result does not depend on the split).
#[allow(clippy::too_many_arguments)]
fn rtn_rows(
    w: &[f32],
    r0: usize,
    cols: usize,
    fmt: &WeightFormat,
    widths: &Widths,
    name: &str,
    threads: usize,
) -> anyhow::Result<QTensor> {
    let rows = w.len() / cols.max(1);
    let part = |a: usize, b: usize| -> anyhow::Result<QTensor> {
        let sub = Widths {
            groups: widths.groups.clone(),
            rows: if widths.rows.is_empty() {
                Vec::new()
            } else {
                widths.rows[r0 + a..r0 + b].to_vec()
            },
        };
        taalasc_quant::quantize_rtn_mixed(
            &w[a * cols..b * cols],
            b - a,
            cols,
            fmt,
            &sub,
            taalasc_quant::ScaleRule::Search,
        )
        .map_err(|e| match e {
            // Rows numbered in the whole matrix.
            taalasc_quant::QuantError::ScaleOverflow {
                what,
                row,
                group,
                value,
            } => taalasc_quant::QuantError::ScaleOverflow {
                what,
                row: row + r0 + a,
                group,
                value,
            },
            e => e,
        })
        .with_context(|| format!("quantizing `{name}`"))
    };
    let threads = threads.clamp(1, rows.max(1));
    if threads == 1 || rows * cols < 1 << 16 {
        return part(0, rows);
    }
    let per = rows.div_ceil(threads);
    let parts: Vec<anyhow::Result<QTensor>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..rows)
            .step_by(per)
            .map(|a| {
                let part = &part;
                s.spawn(move || part(a, (a + per).min(rows)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("RTN worker"))
            .collect()
    });
    let mut parts = parts.into_iter();
    let mut q = parts.next().expect("one part at least")?;
    for p in parts {
        let p = p?;
        q.rows += p.rows;
        q.codes.extend_from_slice(&p.codes);
        q.scales.extend_from_slice(&p.scales);
        q.offsets.extend_from_slice(&p.offsets);
        q.widths.rows.extend_from_slice(&p.widths.rows);
    }
    Ok(q)
}

/// Quantizes every weight in turn, handing each one (or, for RTN of a
/// matrix of more than `slice_elems` weights, each slice of its rows) to
/// `put` as soon as it is made; nothing is kept but the report.
fn quantize_each(
    loaded: &LoadedModel,
    opts: &BuildOptions,
    calib: Option<&crate::calib::Calibration>,
    jobs: &[Job<'_>],
    slice_elems: usize,
    mut put: impl FnMut(WeightId, Piece) -> anyhow::Result<()>,
) -> anyhow::Result<BuildReport> {
    let model = &loaded.model;
    let (_, layer_of) = roles(model);
    if opts.quantizer == Quantizer::Gptq && calib.is_none() {
        bail!("GPTQ needs calibration text (--calib FILE)");
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut weights = Vec::new();
    for (i, (info, job)) in model.weights.iter().zip(jobs).enumerate() {
        let id = WeightId(i as u32);
        let values = || {
            loaded
                .weights
                .load_f32(id)
                .with_context(|| format!("reading `{}`", info.name))
        };
        let (format, method, bits) = match *job {
            Job::Matrix {
                fmt,
                widths: gb,
                rows,
                cols,
            } => {
                // GPTQ needs the input statistics of the layer; a table that is
                // only looked up (not a tied head) has none and uses RTN.
                let hessian = calib
                    .and_then(|c| c.hessian(id))
                    .filter(|_| opts.quantizer == Quantizer::Gptq);
                let imported = if gb.is_uniform() {
                    import(loaded, id, fmt)?
                } else {
                    None
                };
                let method = match (imported, hessian) {
                    (Some(q), _) => {
                        put(id, Piece::Rows(q))?;
                        "import"
                    }
                    (None, Some(h)) => {
                        let q = taalasc_quant::quantize_gptq_mixed(
                            &values()?,
                            rows,
                            cols,
                            fmt,
                            gb,
                            h,
                            &opts.gptq,
                        )
                        .with_context(|| format!("GPTQ of `{}`", info.name))?;
                        put(id, Piece::Rows(q))?;
                        "gptq"
                    }
                    (None, None) => {
                        // A large matrix a slice of rows at a time, when its
                        // rows can be read so; else whole.
                        let step = (slice_elems / cols.max(1)).max(1);
                        let reading = |r: std::ops::Range<usize>| {
                            loaded
                                .weights
                                .load_f32_rows(id, r)
                                .with_context(|| format!("reading `{}`", info.name))
                        };
                        match if step < rows { reading(0..step)? } else { None } {
                            Some(first) => {
                                let q = rtn_rows(&first, 0, cols, fmt, gb, &info.name, threads)?;
                                drop(first);
                                put(id, Piece::Rows(q))?;
                                for r0 in (step..rows).step_by(step) {
                                    let r1 = (r0 + step).min(rows);
                                    let w = reading(r0..r1)?.expect("rows read like the first");
                                    let q = rtn_rows(&w, r0, cols, fmt, gb, &info.name, threads)?;
                                    drop(w);
                                    put(id, Piece::Rows(q))?;
                                }
                            }
                            None => {
                                let w = values()?;
                                let q = rtn_rows(&w, 0, cols, fmt, gb, &info.name, threads)?;
                                drop(w);
                                put(id, Piece::Rows(q))?;
                            }
                        }
                        "rtn"
                    }
                };
                let m = MatrixInfo::new(*fmt, rows, cols, gb.clone());
                (m.format_name(), method, m.storage_bits())
            }
            Job::Bias => {
                let v: Vec<i64> = values()?
                    .iter()
                    .map(|&x| nx::formats::w48_from_f64(x as f64))
                    .collect();
                let bits = v.len() as u64 * nx::W_BITS as u64;
                put(id, Piece::Whole(Param::Wide(v)))?;
                ("w48".to_string(), "fixed", bits)
            }
            Job::Gain => {
                let v: Vec<i32> = values()?
                    .iter()
                    .map(|&x| nx::formats::r32_from_f64(x as f64))
                    .collect();
                let bits = v.len() as u64 * 32;
                put(id, Piece::Whole(Param::Fixed16(v)))?;
                ("q15.16".to_string(), "fixed", bits)
            }
        };
        weights.push(WeightReport {
            name: info.name.clone(),
            layer: layer_of[i],
            format,
            method,
            params: info.numel(),
            bits,
        });
    }
    let total_bits: u64 = weights.iter().map(|w| w.bits).sum();
    let n_params = model.param_count();
    Ok(BuildReport {
        options: opts.clone(),
        weights,
        params: n_params,
        total_bits,
        bits_per_weight: total_bits as f64 / n_params as f64,
    })
}

/// Quantizes `loaded` into a chip image held in memory (for the reference
/// executor; `taalasc build` streams instead, see [`build_streamed`]).
/// `calib` is needed by GPTQ.
pub fn build_image(
    loaded: &LoadedModel,
    opts: &BuildOptions,
    calib: Option<&crate::calib::Calibration>,
) -> anyhow::Result<(ChipImage, BuildReport)> {
    let (info, jobs) = jobs(loaded, opts)?;
    let mut params: Vec<Option<Param>> = vec![None; info.params.len()];
    let report = quantize_each(loaded, opts, calib, &jobs, usize::MAX, |id, piece| {
        let p = match piece {
            Piece::Rows(q) => Param::Matrix(q),
            Piece::Whole(p) => p,
        };
        // What the streamed build would lay out for it.
        anyhow::ensure!(
            p.info() == *info.param(id),
            "`{}`: made as {:?}, planned as {:?}",
            info.model.weight(id).name,
            p.info(),
            info.param(id)
        );
        params[id.0 as usize] = Some(p);
        Ok(())
    })?;
    Ok((
        ChipImage {
            model: info.model,
            params: params
                .into_iter()
                .map(|p| p.expect("every weight is made"))
                .collect(),
            context: info.context,
        },
        report,
    ))
}

/// A chip image being built into its output folder's staging folder:
/// `weights.safetensors` is written there, every weight streamed in as it
/// is quantized, and read back a slice at a time ([`ImageSource`]) by the
/// RTL backend. Only metadata is held. [`write_image`] completes the folder
/// and renames it into place; dropped before that, the staging folder is
/// removed.
pub struct StreamedImage {
    image: taalasc_image::LazyImage,
    staging: std::path::PathBuf,
}

impl Drop for StreamedImage {
    fn drop(&mut self) {
        // Gone already once write_image renamed it into place.
        let _ = std::fs::remove_dir_all(&self.staging);
    }
}

impl StreamedImage {
    /// The staging folder the image is being written in.
    pub fn staging(&self) -> &Path {
        &self.staging
    }
}

impl ImageSource for StreamedImage {
    fn info(&self) -> std::borrow::Cow<'_, taalasc_image::ImageInfo> {
        self.image.info()
    }
    fn matrix_rows(
        &self,
        id: WeightId,
        rows: std::ops::Range<usize>,
    ) -> Result<std::borrow::Cow<'_, QTensor>, taalasc_image::ImageError> {
        self.image.matrix_rows(id, rows)
    }
    fn fixed16_values(
        &self,
        id: WeightId,
    ) -> Result<std::borrow::Cow<'_, [i32]>, taalasc_image::ImageError> {
        self.image.fixed16_values(id)
    }
    fn wide_values(
        &self,
        id: WeightId,
    ) -> Result<std::borrow::Cow<'_, [i64]>, taalasc_image::ImageError> {
        self.image.wide_values(id)
    }
}

/// Quantizes `loaded` straight into the staging folder of the image folder
/// `out` (written by [`write_image`]): one weight at a time, large RTN
/// matrices a slice of rows at a time ([`RTN_SLICE_ELEMS`]); each is
/// written to `weights.safetensors` and dropped. Memory does not grow with
/// the model: at most one weight (or slice) is held, plus metadata. The
/// file's bytes are those [`ChipImage::to_files`] gives for the same image.
pub fn build_streamed(
    loaded: &LoadedModel,
    opts: &BuildOptions,
    calib: Option<&crate::calib::Calibration>,
    out: &Path,
) -> anyhow::Result<(StreamedImage, BuildReport)> {
    build_streamed_sliced(loaded, opts, calib, out, RTN_SLICE_ELEMS)
}

/// [`build_streamed`] with RTN slices of `slice_elems` weights (tests).
pub fn build_streamed_sliced(
    loaded: &LoadedModel,
    opts: &BuildOptions,
    calib: Option<&crate::calib::Calibration>,
    out: &Path,
    slice_elems: usize,
) -> anyhow::Result<(StreamedImage, BuildReport)> {
    let (info, jobs) = jobs(loaded, opts)?;
    let staging = staging_dir(out)?;
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    std::fs::create_dir_all(&staging).with_context(|| format!("creating {}", staging.display()))?;
    let result = (|| -> anyhow::Result<_> {
        let wpath = staging.join(taalasc_image::WEIGHTS_FILE);
        let mut w = ImageWriter::create(&wpath, info)?;
        let report = quantize_each(loaded, opts, calib, &jobs, slice_elems, |id, piece| {
            match piece {
                Piece::Rows(q) => w.put_rows(id, &q)?,
                Piece::Whole(p) => w.put(id, &p)?,
            }
            Ok(())
        })?;
        Ok((w.finish()?, report))
    })();
    match result {
        Ok((image, report)) => Ok((StreamedImage { image, staging }, report)),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(e).with_context(|| format!("writing {}", out.display()))
        }
    }
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

/// The temporary sibling folder an image folder is written in before it is
/// renamed over `out`.
fn staging_dir(out: &Path) -> anyhow::Result<std::path::PathBuf> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = out
        .file_name()
        .context("output path has no folder name")?
        .to_string_lossy()
        .into_owned();
    Ok(parent.join(format!(".{name}.tmp-{}", std::process::id())))
}

/// A chip image [`write_image`] can write: held in memory ([`ChipImage`])
/// or streamed into the staging folder already ([`StreamedImage`]).
pub trait ImageFiles: ImageSource {
    /// Puts `graph.json` and `weights.safetensors` into the staging folder
    /// `tmp`, creating it (afresh) unless it is the image's own.
    fn stage(&self, tmp: &Path) -> anyhow::Result<()>;
}

impl ImageFiles for ChipImage {
    fn stage(&self, tmp: &Path) -> anyhow::Result<()> {
        if tmp.exists() {
            std::fs::remove_dir_all(tmp)?;
        }
        std::fs::create_dir_all(tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let (graph, weights) = self.to_files();
        std::fs::write(tmp.join(taalasc_image::GRAPH_FILE), graph)?;
        std::fs::write(tmp.join(taalasc_image::WEIGHTS_FILE), weights)?;
        Ok(())
    }
}

impl ImageFiles for StreamedImage {
    fn stage(&self, tmp: &Path) -> anyhow::Result<()> {
        anyhow::ensure!(
            tmp == self.staging,
            "the image was streamed into {}, not {}: write it to the folder it was built for",
            self.staging.display(),
            tmp.display()
        );
        std::fs::write(
            tmp.join(taalasc_image::GRAPH_FILE),
            self.image.info().model.to_json(),
        )?;
        Ok(())
    }
}

/// Writes the image folder atomically: everything goes into a temporary
/// sibling folder, which is then renamed over `out`.
pub fn write_image(
    out: &Path,
    image: &impl ImageFiles,
    manifest: &serde_json::Value,
    report: &serde_json::Value,
    rtl: Option<(&taalasc_verilog::Plan, &str)>,
    board: Option<&taalasc_verilog::board::Board>,
) -> anyhow::Result<()> {
    let tmp = staging_dir(out)?;
    let result = (|| -> anyhow::Result<()> {
        image.stage(&tmp)?;
        std::fs::write(
            tmp.join("manifest.json"),
            serde_json::to_string_pretty(manifest)? + "\n",
        )?;
        std::fs::write(
            tmp.join("report.json"),
            serde_json::to_string_pretty(report)? + "\n",
        )?;
        match (rtl, board) {
            (Some((plan, _)), Some(board)) => {
                taalasc_verilog::board::write_board(&tmp, image, plan, board)?
            }
            (Some((plan, name)), None) => {
                taalasc_verilog::output::write_rtl(&tmp, image, plan, name)?
            }
            (None, _) => {}
        }
        if out.exists() {
            let old = tmp.with_extension(format!("old-{}", std::process::id()));
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
            widths: Default::default(),
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

/// A `--layer-format PATTERN=FORMAT` rule: every linear layer or table whose
/// weight name matches `PATTERN` (`*` matches any run of characters) gets
/// `FORMAT`, and `--bits auto` leaves it out of its choice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerRule {
    pub pattern: String,
    pub format: WeightFormat,
}

impl std::str::FromStr for LayerRule {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<LayerRule> {
        let (pattern, format) = s
            .split_once('=')
            .with_context(|| format!("--layer-format `{s}`: expected PATTERN=FORMAT"))?;
        if pattern.is_empty() {
            bail!("--layer-format `{s}`: empty weight-name pattern");
        }
        let format = format
            .parse()
            .with_context(|| format!("--layer-format `{s}`"))?;
        Ok(LayerRule {
            pattern: pattern.to_string(),
            format,
        })
    }
}

/// Whether `name` matches `pattern`, where `*` matches any run of characters
/// (none included) and every other character itself.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    // Greedy match with backtracking to the last `*`.
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        if i < p.len() && p[i] == b'*' {
            star = Some((i, j));
            i += 1;
        } else if i < p.len() && p[i] == n[j] {
            i += 1;
            j += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == b'*')
}

/// Applies `rules` to the model's linear layers and tables: the format of
/// each matched weight, by name (a later rule wins over an earlier one).
/// A rule that matches none of them is an error naming it, so a misspelt
/// pattern never goes unnoticed.
pub fn apply_layer_rules(
    model: &taalasc_ir::Model,
    rules: &[LayerRule],
) -> anyhow::Result<std::collections::BTreeMap<String, WeightFormat>> {
    let (role, _) = roles(model);
    let mut out = std::collections::BTreeMap::new();
    for rule in rules {
        let mut hits = 0;
        for (i, info) in model.weights.iter().enumerate() {
            if matches!(role[i], Some("linear" | "table")) && glob_match(&rule.pattern, &info.name)
            {
                out.insert(info.name.clone(), rule.format);
                hits += 1;
            }
        }
        if hits == 0 {
            bail!(
                "--layer-format `{}={}`: no linear layer or table is named like `{}` (see `taalasc inspect --ir`)",
                rule.pattern,
                rule.format,
                rule.pattern
            );
        }
    }
    Ok(out)
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
    /// Bits of everything the pass does not choose (gains, biases, and the
    /// layers pinned by `--layer-format`).
    pub fixed_bits: u64,
    pub layers: usize,
    /// Most candidates of any layer (plain formats and width mixes).
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

/// Measures every linear layer's sensitivity to every candidate (plain
/// formats and width mixes, see [`sensitivity`]) and lets the e-graph pass
/// choose one per layer; the layers in `pinned` (`--layer-format`) keep
/// their format and their bits come off the budget first.
pub fn plan_auto(
    loaded: &LoadedModel,
    calib: &crate::calib::Calibration,
    probe: Option<(&mut taalasc_float::FloatModel, &[u32])>,
    target: AutoTarget,
    pinned: &std::collections::BTreeMap<String, WeightFormat>,
) -> anyhow::Result<AutoChoice> {
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
            // Pinned by --layer-format: not chosen, its bits fixed.
            Some("linear" | "table") if pinned.contains_key(&info.name) => {
                let [rows, cols] = info.shape[..] else {
                    bail!(
                        "`{}` has shape {:?}, expected a matrix",
                        info.name,
                        info.shape
                    );
                };
                fixed_bits += pinned[&info.name].storage_bits(rows, cols);
            }
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
    let row_weights = head_row_weights(model, calib);
    let layer_choices: Vec<anyhow::Result<(taalasc_egraph::LayerChoices, Vec<Widths>)>> =
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|k| {
                    let (linears, formats, row_weights) = (&linears, &formats, &row_weights);
                    s.spawn(move || {
                        linears
                            .iter()
                            .enumerate()
                            .filter(|(j, _)| j % threads == k)
                            .map(|(_, &id)| {
                                let rw = row_weights.get(&id).map(Vec::as_slice);
                                sensitivity(loaded, calib, id, formats, rw)
                            })
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
    let (mut layer_choices, mixes): (Vec<taalasc_egraph::LayerChoices>, Vec<Vec<Widths>>) =
        layer_choices
            .into_iter()
            .collect::<anyhow::Result<Vec<_>>>()?
            .into_iter()
            .unzip();
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
            let rw = row_weights.get(&id).map(Vec::as_slice);
            let diag = layer_diag(calib, id, info.shape[1]);
            let proxy: f64 = taalasc_quant::weighted_error_parts(&w, &q, &diag, rw)
                .1
                .iter()
                .sum();
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
    let mut formats_out = std::collections::BTreeMap::new();
    let mut widths = std::collections::BTreeMap::new();
    let mut chosen_report = Vec::with_capacity(linears.len());
    for (((&id, &c), lc), mix) in linears
        .iter()
        .zip(&plan.choice)
        .zip(&layer_choices)
        .zip(&mixes)
    {
        let name = model.weight(id).name.clone();
        let cand = &lc.candidates[c];
        formats_out.insert(name.clone(), cand.format);
        if !mix[c].is_uniform() {
            widths.insert(name.clone(), mix[c].clone());
        }
        chosen_report.push(ChosenLayer {
            name,
            format: taalasc_quant::mixed_name(&cand.format, &mix[c]),
            bits: cand.bits,
            loss: cand.loss,
        });
    }
    // Most costly first; ties (e.g. lossless layers) by name, for stable output.
    chosen_report.sort_by(|a, b| b.loss.total_cmp(&a.loss).then(a.name.cmp(&b.name)));
    let candidates_per_layer = layer_choices
        .iter()
        .map(|l| l.candidates.len())
        .max()
        .unwrap_or(0);
    Ok(AutoChoice {
        formats: formats_out,
        widths,
        report: AutoReport {
            target,
            fixed_bits,
            layers: linears.len(),
            candidates_per_layer,
            sensitivity_seconds,
            calibration_tokens: calib.tokens,
            importance,
            plan,
            chosen: chosen_report,
        },
    })
}

/// What [`plan_auto`] chose.
pub struct AutoChoice {
    /// Format of each chosen weight, by name (the widest, when mixed).
    pub formats: std::collections::BTreeMap<String, WeightFormat>,
    /// Column-group or row widths of the weights given mixed widths.
    pub widths: std::collections::BTreeMap<String, Widths>,
    pub report: AutoReport,
}

/// Format used to measure each layer's end-to-end importance.
pub const IMPORTANCE_PROBE: &str = "a3g32";

/// Row weights of the head (the weight read by the logits op): `V · p̄_t`,
/// with `p̄_t` the float model's mean probability of token `t` on the
/// calibration text (mixed 95:5 with uniform, so no row weighs nothing).
/// To second order, KL(p ‖ p + δ) ≈ ½ Σ_t p_t δ_t² − ½ (Σ_t p_t δ_t)², so a
/// logit error costs in proportion to its token's probability: rare tokens'
/// rows can take fewer bits. A tied embedding table shares the weights (a
/// token is looked up about as often as it is predicted). Empty without
/// calibration probabilities.
fn head_row_weights(
    model: &taalasc_ir::Model,
    calib: &crate::calib::Calibration,
) -> std::collections::HashMap<WeightId, Vec<f64>> {
    let mut out = std::collections::HashMap::new();
    let Some(p) = &calib.token_probs else {
        return out;
    };
    for m in model.graph.node_indices() {
        if !matches!(model.graph[m].op, Op::Logits) {
            continue;
        }
        for n in model.inputs(m) {
            if let Op::Linear { weight, .. } = &model.graph[n].op {
                let rows = model.weight(*weight).shape[0];
                if rows == p.len() {
                    let v = rows as f64;
                    out.insert(
                        *weight,
                        p.iter().map(|&p| v * (0.95 * p + 0.05 / v)).collect(),
                    );
                }
            }
        }
    }
    out
}

/// Mean squared input per column: the diagonal that weights a layer's
/// quantization error. A table that is also the (tied) head uses the head's
/// input statistics; a table read only by lookups uses unit weights.
fn layer_diag(calib: &crate::calib::Calibration, id: WeightId, cols: usize) -> Vec<f64> {
    match calib.hessian(id) {
        Some(h) => h.mean_diag(),
        None => vec![1.0; cols],
    }
}

/// Families of formats (same groups, symmetry and scale storage, several
/// code widths) whose column groups `--bits auto` may also give different
/// widths within one layer: the inputs that carry more energy get more bits.
pub const MIX_FAMILIES: &[&[&str]] = &[
    &["a2g32h", "a3g32h", "a4g32h", "a5g32h", "a6g32h", "a8g32h"],
    &["s3g32h", "s4g32h", "s6g32h", "s8g32h"],
    &["a2g64h", "a3g64h", "a4g64h", "a5g64h"],
];

/// Width mixes offered per family and layer: one each time the mean code
/// width grows by this many bits.
pub const MIX_STEP_BITS: f64 = 0.25;

/// One layer's candidates: every format of `formats` whose groups tile its
/// rows, and the width mixes of [`MIX_FAMILIES`] (per column group; with
/// `row_weights`, the head's, also per row); alongside each candidate its
/// widths (uniform when plain).
///
/// Loss: `Σ_r row_weight_r Σ_i (Δw_ri)² · E[x_i²]` from plain RTN of each
/// candidate and the calibration inputs' mean squares (diagonal of the
/// input Hessian); an exactly importable format (GGUF Q4_1 as a4g32) has
/// loss 0.
fn sensitivity(
    loaded: &LoadedModel,
    calib: &crate::calib::Calibration,
    id: WeightId,
    formats: &[WeightFormat],
    row_weights: Option<&[f64]>,
) -> anyhow::Result<(taalasc_egraph::LayerChoices, Vec<Widths>)> {
    let info = loaded.model.weight(id);
    let (rows, cols) = (info.shape[0], info.shape[1]);
    let w = loaded.weights.load_f32(id)?;
    let diag = layer_diag(calib, id, cols);
    let mut candidates = Vec::with_capacity(formats.len());
    let mut mixes = Vec::new();
    // Per format: the errors of each column group and of each row.
    let mut parts = std::collections::HashMap::new();
    for fmt in formats {
        if cols % fmt.group_len(cols) != 0 {
            continue; // groups must tile the row
        }
        let loss = match import(loaded, id, fmt)? {
            Some(_) => 0.0,
            None => {
                let q = taalasc_quant::quantize_rtn_plain(&w, rows, cols, fmt)
                    .with_context(|| format!("quantizing `{}` as {fmt}", info.name))?;
                let (groups, by_row) =
                    taalasc_quant::weighted_error_parts(&w, &q, &diag, row_weights);
                let loss = by_row.iter().sum();
                parts.insert(*fmt, (groups, by_row));
                loss
            }
        };
        candidates.push(taalasc_egraph::Candidate {
            format: *fmt,
            fused: false,
            mixed: false,
            bits: fmt.storage_bits(rows, cols),
            loss,
        });
        mixes.push(Widths::default());
    }
    let g = |f: &WeightFormat| f.group_len(cols);
    for family in MIX_FAMILIES {
        let levels: Vec<WeightFormat> = family
            .iter()
            .map(|f| f.parse::<WeightFormat>().expect("valid family format"))
            .filter(|f| parts.contains_key(f))
            .collect();
        if levels.len() < 2 {
            continue;
        }
        // Column groups: `rows × G` codes each.
        let group_sizes: Vec<f64> = (0..parts[&levels[0]].0.len())
            .map(|k| (rows * g(&levels[0]).min(cols - k * g(&levels[0]))) as f64)
            .collect();
        let by_group: Vec<(u8, &[f64])> = levels
            .iter()
            .map(|f| (f.bits, parts[f].0.as_slice()))
            .collect();
        let mut found: Vec<Widths> = width_mixes(&by_group, &group_sizes)
            .into_iter()
            .map(|groups| Widths {
                groups,
                rows: Vec::new(),
            })
            .collect();
        if row_weights.is_some() {
            let by_row: Vec<(u8, &[f64])> = levels
                .iter()
                .map(|f| (f.bits, parts[f].1.as_slice()))
                .collect();
            found.extend(
                width_mixes(&by_row, &vec![cols as f64; rows])
                    .into_iter()
                    .map(|rows| Widths {
                        groups: Vec::new(),
                        rows,
                    }),
            );
        }
        for widths in found {
            let list = if widths.rows.is_empty() {
                &widths.groups
            } else {
                &widths.rows
            };
            let widest = *list.iter().max().expect("at least one entry");
            let format = levels[0].with_bits(widest);
            let at = |k: usize| {
                levels
                    .iter()
                    .position(|f| f.bits == list[k])
                    .expect("a family width")
            };
            let loss = (0..list.len())
                .map(|k| {
                    let (groups, by_row) = &parts[&levels[at(k)]];
                    if widths.rows.is_empty() {
                        groups[k]
                    } else {
                        by_row[k]
                    }
                })
                .sum();
            candidates.push(taalasc_egraph::Candidate {
                format,
                fused: false,
                mixed: true,
                bits: taalasc_quant::mixed_storage_bits(&format, &widths, rows, cols),
                loss,
            });
            mixes.push(widths);
        }
    }
    Ok((
        taalasc_egraph::LayerChoices {
            name: info.name.clone(),
            candidates,
        },
        mixes,
    ))
}

/// Width mixes of one family for one layer's parts (column groups or rows).
/// `levels`: the family's widths, increasing, each with every part's error;
/// `sizes`: codes per part. Starting from every part at the narrowest width,
/// repeatedly widens the part with the largest error drop per extra bit
/// (jumping over widths that drop less per bit), and keeps the allocation
/// each time the mean width passes another [`MIX_STEP_BITS`]. Returns the
/// widths per part of each kept allocation, only those whose parts differ
/// (uniform ones are plain candidates already).
fn width_mixes(levels: &[(u8, &[f64])], sizes: &[f64]) -> Vec<Vec<u8>> {
    let parts = sizes.len();
    let total: f64 = sizes.iter().sum();
    let bits = |l: usize| levels[l].0 as f64;
    // A part's best widening from level `l0`: (error drop per bit, level).
    let best_from = |k: usize, l0: usize| -> Option<(f64, usize)> {
        let e0 = levels[l0].1[k];
        let mut best: Option<(f64, usize)> = None;
        for (l, level) in levels.iter().enumerate().skip(l0 + 1) {
            let gain = (e0 - level.1[k]) / ((bits(l) - bits(l0)) * sizes[k]);
            if best.is_none_or(|(b, _)| gain > b) {
                best = Some((gain, l));
            }
        }
        best
    };
    // Max-heap of widenings; ties go to the lower part index (deterministic).
    #[derive(PartialEq)]
    struct Step(f64, std::cmp::Reverse<usize>, usize);
    impl Eq for Step {}
    impl PartialOrd for Step {
        fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for Step {
        fn cmp(&self, o: &Self) -> std::cmp::Ordering {
            self.0.total_cmp(&o.0).then(self.1.cmp(&o.1))
        }
    }
    let mut heap: std::collections::BinaryHeap<Step> = (0..parts)
        .filter_map(|k| best_from(k, 0).map(|(g, l)| Step(g, std::cmp::Reverse(k), l)))
        .collect();
    let mut at = vec![0usize; parts];
    let mut mean = bits(0);
    let mut next = bits(0) + MIX_STEP_BITS;
    let mut out = Vec::new();
    while let Some(Step(_, std::cmp::Reverse(k), l)) = heap.pop() {
        mean += (bits(l) - bits(at[k])) * sizes[k] / total;
        at[k] = l;
        if let Some((g, l2)) = best_from(k, l) {
            heap.push(Step(g, std::cmp::Reverse(k), l2));
        }
        if mean + 1e-9 >= next {
            while next <= mean + 1e-9 {
                next += MIX_STEP_BITS;
            }
            if at.iter().any(|&a| a != at[0]) {
                out.push(at.iter().map(|&a| levels[a].0).collect());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_stars_anywhere() {
        let m = |p, n| glob_match(p, n);
        assert!(m("layers.*.mlp.down.weight", "layers.12.mlp.down.weight"));
        assert!(!m("layers.*.mlp.down.weight", "layers.12.mlp.up.weight"));
        assert!(m("*", ""));
        assert!(m("tok_embeddings", "tok_embeddings"));
        assert!(!m("tok_embeddings", "tok_embeddings2"));
        assert!(m("*.q.*", "layers.0.attn.q.weight"));
        assert!(m("a*b*c", "abbbc"));
        assert!(!m("a*b*c", "abbb"));
        // Backtracking past an early partial match.
        assert!(m("*ab", "aab"));
        assert!(m("layers.1*", "layers.17.attn.o.weight"));
        assert!(!m("layers.1", "layers.17"));
    }

    #[test]
    fn layer_rules_parse_and_name_what_is_wrong() {
        let r: LayerRule = "layers.*.mlp.down.weight=a6g32h".parse().unwrap();
        assert_eq!(r.pattern, "layers.*.mlp.down.weight");
        assert_eq!(r.format.name(), "a6g32h");
        for bad in ["layers.0", "=a4g32", "x=a7g32", "x=q4_0"] {
            let e = bad.parse::<LayerRule>().unwrap_err();
            assert!(format!("{e:#}").contains(bad), "{bad}: {e:#}");
        }
    }

    /// Errors of parts at the widths of `levels`: `e[l][k]`.
    fn mixes(levels: &[(u8, Vec<f64>)], sizes: &[f64]) -> Vec<Vec<u8>> {
        let l: Vec<(u8, &[f64])> = levels.iter().map(|(b, e)| (*b, e.as_slice())).collect();
        width_mixes(&l, sizes)
    }

    #[test]
    fn width_mixes_widen_the_best_part_per_bit_first() {
        // Part 0 gains 9 by widening, part 1 gains 0.1: part 0 first. Each
        // widening moves the mean width by 1 bit, past a 0.25 step.
        let levels = [(2, vec![10.0, 1.0]), (4, vec![1.0, 0.9])];
        assert_eq!(mixes(&levels, &[1.0, 1.0]), vec![vec![4, 2]]);
        // Per bit of ROM, not per part: a part 3x as large gains 3x less
        // per bit for the same error drop.
        let levels = [(2, vec![10.0, 10.0]), (4, vec![1.0, 1.5])];
        assert_eq!(mixes(&levels, &[3.0, 1.0]), vec![vec![2, 4]]);
        // A width that drops less per bit is jumped over.
        let levels = [
            (2, vec![10.0, 10.0]),
            (3, vec![9.9, 9.0]),
            (4, vec![0.0, 8.0]),
        ];
        let got = mixes(&levels, &[1.0, 1.0]);
        assert_eq!(got[0], vec![4, 2], "{got:?}");
        // Uniform allocations are never returned.
        assert!(got.iter().all(|w| w.iter().any(|&b| b != w[0])));
    }

    #[test]
    fn width_mixes_keep_one_allocation_per_step() {
        // 8 equal parts whose error falls 4x per bit: the mean width passes
        // 2.25, 2.5, ... 3.75 once each as parts widen 2 → 3 (jumping to 4
        // would gain less per bit), then 4.25 ... on the way to all-4.
        let e2 = vec![16.0; 8];
        let e3: Vec<f64> = (0..8).map(|k| 4.0 - 0.01 * k as f64).collect();
        let e4 = vec![1.0; 8];
        let levels = [(2, e2), (3, e3), (4, e4)];
        let got = mixes(&levels, &[1.0; 8]);
        // Steps at 2.25..2.875 (parts widened one by one to 3), 3.25..3.875.
        assert_eq!(got.len(), 6, "{got:?}");
        // Widened in order of the largest drop: part 0's 3-bit error is the
        // largest... so the smallest drop; part 7 widens first.
        assert_eq!(got[0], vec![2, 2, 2, 2, 2, 2, 3, 3]);
        let mean = |w: &Vec<u8>| w.iter().map(|&b| b as f64).sum::<f64>() / 8.0;
        assert!(got.windows(2).all(|p| mean(&p[0]) < mean(&p[1])));
    }
}
