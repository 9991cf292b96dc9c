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
use taalasc_quant::{CodeWidths, GgufBlocks, QTensor, QuantMethod, WeightFormat};

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
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
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
    pub widths: std::collections::BTreeMap<String, CodeWidths>,
    /// How weights are rounded.
    pub quantizer: Quantizer,
    /// GPTQ settings (used when `quantizer` is GPTQ).
    pub gptq: taalasc_quant::GptqOptions,
    /// Format of the embedding and position tables.
    pub table: WeightFormat,
    /// KV-cache and RoPE positions.
    pub context: usize,
}

/// One quantized weight in the report.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct WeightReport {
    /// The weight's name in the IR.
    pub name: String,
    /// Its decoder layer (none for the embedding, final norm and head).
    pub layer: Option<usize>,
    /// Its format name (`a4g32`, `q15.16` for gains, `w48` for biases, or a
    /// width mix such as `a4g32h[groups 3:10,4:8]`).
    pub format: String,
    /// How it was made; serialized as `"import"`, `"rtn"`, `"gptq"`, `"fixed"`.
    pub method: QuantMethod,
    /// Its parameters.
    pub params: u64,
    /// Its ROM bits, scales and offsets included.
    pub bits: u64,
}

/// Every weight's format and bits: the body of `report.json`.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct BuildReport {
    /// The options the image was built with.
    pub options: BuildOptions,
    /// Every weight, in IR order.
    pub weights: Vec<WeightReport>,
    /// Parameters over all weights.
    pub params: u64,
    /// ROM bits over all weights.
    pub total_bits: u64,
    /// Every tensor counted: embedding, head, gains, biases, all scales.
    pub bits_per_weight: f64,
}

/// The on-chip role of a weight, decided by the ops that read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WeightRole {
    /// An embedding or position table (a tied head included).
    Table,
    /// The weight matrix of a linear layer.
    Linear,
    /// A linear layer's bias (`W48`).
    Bias,
    /// A norm's gain or bias (Q15.16).
    Gain,
}

impl WeightRole {
    /// A matrix the chip quantizes to a weight format: a linear layer or a table.
    pub(crate) fn is_matrix(self) -> bool {
        matches!(self, WeightRole::Table | WeightRole::Linear)
    }
}

/// The on-chip role of each weight, decided by the ops that read it, and
/// the decoder layer it belongs to.
pub(crate) fn roles(model: &taalasc_ir::Model) -> (Vec<Option<WeightRole>>, Vec<Option<usize>>) {
    let mut role: Vec<Option<WeightRole>> = vec![None; model.weights.len()];
    let mut layer_of: Vec<Option<usize>> = vec![None; model.weights.len()];
    for n in model.graph.node_indices() {
        let node = &model.graph[n];
        let mut set = |id: WeightId, r: WeightRole| {
            let slot = &mut role[id.0 as usize];
            // A tied table read by Embed and the head keeps the table format.
            if slot.is_none() || r == WeightRole::Table {
                *slot = Some(r);
            }
            layer_of[id.0 as usize] = layer_of[id.0 as usize].or(node.layer);
        };
        match &node.op {
            Op::Embed { table } | Op::AddPositions { table } => set(*table, WeightRole::Table),
            Op::Linear { weight, bias } => {
                set(*weight, WeightRole::Linear);
                if let Some(b) = bias {
                    set(*b, WeightRole::Bias);
                }
            }
            Op::RmsNorm { gain, .. } => set(*gain, WeightRole::Gain),
            Op::LayerNorm { gain, bias, .. } => {
                set(*gain, WeightRole::Gain);
                set(*bias, WeightRole::Gain);
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
        widths: &'o CodeWidths,
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
    static UNIFORM: CodeWidths = CodeWidths {
        groups: Vec::new(),
        rows: Vec::new(),
    };
    let model = &loaded.model;
    let (role, _) = roles(model);
    let mut infos = Vec::with_capacity(model.weights.len());
    let mut jobs = Vec::with_capacity(model.weights.len());
    for (i, info) in model.weights.iter().enumerate() {
        let (p, job) = match role[i] {
            Some(r @ (WeightRole::Linear | WeightRole::Table)) => {
                let fmt = match opts.per_weight.get(&info.name) {
                    Some(f) => f,
                    None if r == WeightRole::Table => &opts.table,
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
            Some(WeightRole::Bias) => (ParamInfo::Wide(info.numel() as usize), Job::Bias),
            Some(WeightRole::Gain) => (ParamInfo::Fixed16(info.numel() as usize), Job::Gain),
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

/// ROM bits of a weight as the build stores and reports it: a matrix's
/// codes and scales, a W48 word per bias value, 32 bits per gain.
pub(crate) fn stored_bits(p: &ParamInfo) -> u64 {
    match p {
        ParamInfo::Matrix(m) => m.storage_bits(),
        ParamInfo::Wide(n) => *n as u64 * nx::W_BITS as u64,
        ParamInfo::Fixed16(n) => *n as u64 * 32,
    }
}

/// The image's metadata alone (every weight's on-chip form), as the build
/// lays it out before quantizing (`build --estimate` plans from it).
pub(crate) fn planned_info(
    loaded: &LoadedModel,
    opts: &BuildOptions,
) -> anyhow::Result<taalasc_image::ImageInfo> {
    Ok(jobs(loaded, opts)?.0)
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

/// RTN of rows `r0..` of a matrix (`w` holds them), on rayon's pool
/// ([`taalasc_quant::quantize_rtn_rows`]), errors naming the weight.
fn rtn_rows(
    w: &[f32],
    r0: usize,
    cols: usize,
    fmt: &WeightFormat,
    widths: &CodeWidths,
    name: &str,
) -> anyhow::Result<QTensor> {
    taalasc_quant::quantize_rtn_rows(w, r0, cols, fmt, widths)
        .with_context(|| format!("quantizing `{name}`"))
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
    mut put: impl FnMut(WeightId, Piece) -> anyhow::Result<()> + Send,
) -> anyhow::Result<BuildReport> {
    // Two stages: this thread reads each weight (and imports it, or runs
    // GPTQ, as it must); a second one quantizes the RTN ones on the pool and
    // writes every piece, in order. So reading the next weight overlaps
    // quantizing and writing this one. At most three weights (or slices)
    // are held: one being quantized, one queued, one being read. (A third
    // thread for writing was slower on 2 cores.)
    let (tx, rx) = std::sync::mpsc::sync_channel::<Work>(1);
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || -> anyhow::Result<()> {
            for work in rx {
                match work {
                    Work::Put(id, piece) => put(id, piece)?,
                    Work::Rtn {
                        id,
                        values,
                        r0,
                        cols,
                        fmt,
                        widths,
                        name,
                    } => {
                        let q = rtn_rows(&values, r0, cols, &fmt, &widths, &name)?;
                        drop(values);
                        put(id, Piece::Rows(q))?;
                    }
                }
            }
            Ok(())
        });
        let read = read_each(loaded, opts, calib, jobs, slice_elems, &tx);
        drop(tx);
        // The writer's error is an earlier weight's: it comes first.
        let written = writer.join().expect("the writing thread does not panic");
        written.and(read)
    })
}

/// What the second stage of [`quantize_each`] does with a weight.
enum Work {
    /// Write a made piece.
    Put(WeightId, Piece),
    /// RTN of rows `r0..` of a matrix (`values` holds them), then write.
    Rtn {
        id: WeightId,
        values: Vec<f32>,
        r0: usize,
        cols: usize,
        fmt: WeightFormat,
        widths: CodeWidths,
        name: String,
    },
}

/// The reading stage of [`quantize_each`]: each weight's work, in order.
/// A closed channel means the writer stopped on an error, which it reports.
fn read_each(
    loaded: &LoadedModel,
    opts: &BuildOptions,
    calib: Option<&crate::calib::Calibration>,
    jobs: &[Job<'_>],
    slice_elems: usize,
    tx: &std::sync::mpsc::SyncSender<Work>,
) -> anyhow::Result<BuildReport> {
    let put = |id: WeightId, piece: Piece| -> anyhow::Result<()> {
        tx.send(Work::Put(id, piece))
            .map_err(|_| anyhow::anyhow!("the image writer stopped"))
    };
    let rtn = |id: WeightId,
               values: Vec<f32>,
               r0: usize,
               rows: (usize, &WeightFormat, &CodeWidths),
               name: &str| {
        let (cols, fmt, widths) = rows;
        tx.send(Work::Rtn {
            id,
            values,
            r0,
            cols,
            fmt: *fmt,
            widths: widths.clone(),
            name: name.to_string(),
        })
        .map_err(|_| anyhow::anyhow!("the image writer stopped"))
    };
    let model = &loaded.model;
    let (_, layer_of) = roles(model);
    if opts.quantizer == Quantizer::Gptq && calib.is_none() {
        bail!("GPTQ needs calibration text (--calib FILE)");
    }
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
                        QuantMethod::Import
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
                        QuantMethod::Gptq
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
                        let m = (cols, fmt, gb);
                        match if step < rows { reading(0..step)? } else { None } {
                            Some(first) => {
                                rtn(id, first, 0, m, &info.name)?;
                                for r0 in (step..rows).step_by(step) {
                                    let r1 = (r0 + step).min(rows);
                                    let w = reading(r0..r1)?.expect("rows read like the first");
                                    rtn(id, w, r0, m, &info.name)?;
                                }
                            }
                            None => rtn(id, values()?, 0, m, &info.name)?,
                        }
                        QuantMethod::Rtn
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
                let bits = stored_bits(&ParamInfo::Wide(v.len()));
                put(id, Piece::Whole(Param::Wide(v)))?;
                ("w48".to_string(), QuantMethod::Fixed, bits)
            }
            Job::Gain => {
                let v: Vec<i32> = values()?
                    .iter()
                    .map(|&x| nx::formats::r32_from_f64(x as f64))
                    .collect();
                let bits = stored_bits(&ParamInfo::Fixed16(v.len()));
                put(id, Piece::Whole(Param::Fixed16(v)))?;
                ("q15.16".to_string(), QuantMethod::Fixed, bits)
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
/// RTL backend. Only metadata is held. The `write` step completes the
/// folder and renames it into place ([`crate::output::Staging::finish`]);
/// dropped before that, the staging folder is removed.
pub struct StreamedImage {
    image: taalasc_image::LazyImage,
    dir: std::path::PathBuf,
    staging: Option<crate::output::Staging>,
}

impl StreamedImage {
    /// The staging folder the image is being written in.
    pub fn staging(&self) -> &Path {
        &self.dir
    }

    /// The claim on the output folder, to finish it; `None` once taken.
    pub fn take_staging(&mut self) -> Option<crate::output::Staging> {
        self.staging.take()
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

/// Quantizes `loaded` straight into the staging folder of a claimed
/// output folder ([`crate::output::claim`]): one weight at a time, large RTN
/// matrices a slice of rows at a time ([`RTN_SLICE_ELEMS`]); each is
/// written to `weights.safetensors` and dropped. Memory does not grow with
/// the model: at most one weight (or slice) is held, plus metadata. The
/// file's bytes are those [`ChipImage::to_files`] gives for the same image.
pub fn build_streamed(
    loaded: &LoadedModel,
    opts: &BuildOptions,
    calib: Option<&crate::calib::Calibration>,
    staging: crate::output::Staging,
) -> anyhow::Result<(StreamedImage, BuildReport)> {
    build_streamed_sliced(loaded, opts, calib, staging, RTN_SLICE_ELEMS)
}

/// [`build_streamed`] with RTN slices of `slice_elems` weights (tests).
pub fn build_streamed_sliced(
    loaded: &LoadedModel,
    opts: &BuildOptions,
    calib: Option<&crate::calib::Calibration>,
    staging: crate::output::Staging,
    slice_elems: usize,
) -> anyhow::Result<(StreamedImage, BuildReport)> {
    let (info, jobs) = jobs(loaded, opts)?;
    let dir = staging.dir().to_path_buf();
    let result = (|| -> anyhow::Result<_> {
        let wpath = dir.join(taalasc_image::WEIGHTS_FILE);
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
    // On an error the staging folder goes with `staging`.
    let (image, report) = result.with_context(|| format!("writing {}", staging.out().display()))?;
    Ok((
        StreamedImage {
            image,
            dir,
            staging: Some(staging),
        },
        report,
    ))
}

/// A source tensor's llama.cpp blocks as the plain view
/// [`taalasc_quant`] imports from.
fn blocks_of(blocks: &SourceBlocks) -> GgufBlocks<'_> {
    match blocks {
        SourceBlocks::Q4_1 {
            rows,
            cols,
            d,
            m,
            q,
        } => GgufBlocks::Q4_1 {
            rows: *rows,
            cols: *cols,
            d,
            m,
            q,
        },
        SourceBlocks::Q8_0 { rows, cols, d, q } => GgufBlocks::Q8_0 {
            rows: *rows,
            cols: *cols,
            d,
            q,
        },
    }
}

/// Lossless import when the source block format is exactly the chip format
/// ([`taalasc_quant::import_exact`]).
fn import(
    loaded: &LoadedModel,
    id: WeightId,
    fmt: &WeightFormat,
) -> anyhow::Result<Option<QTensor>> {
    Ok(match loaded.weights.load_blocks(id)? {
        Some(b) => taalasc_quant::import_exact(&blocks_of(&b), fmt)?,
        None => None,
    })
}

/// The format that holds weight `id`'s source blocks exactly, if it is
/// stored in llama.cpp blocks.
fn exact_format(loaded: &LoadedModel, id: WeightId) -> anyhow::Result<Option<WeightFormat>> {
    Ok(loaded
        .weights
        .load_blocks(id)?
        .map(|b| blocks_of(&b).exact_format()))
}

/// A chip image [`write_image`] can write: held in memory ([`ChipImage`])
/// or streamed into the staging folder already ([`StreamedImage`]).
pub trait ImageFiles: ImageSource {
    /// Puts `graph.json` and `weights.safetensors` into the staging folder
    /// `tmp` (for a streamed image, its own).
    fn stage(&self, tmp: &Path) -> anyhow::Result<()>;
}

impl ImageFiles for ChipImage {
    fn stage(&self, tmp: &Path) -> anyhow::Result<()> {
        let (graph, weights) = self.to_files();
        std::fs::write(tmp.join(taalasc_image::GRAPH_FILE), graph)?;
        std::fs::write(tmp.join(taalasc_image::WEIGHTS_FILE), weights)?;
        Ok(())
    }
}

impl ImageFiles for StreamedImage {
    fn stage(&self, tmp: &Path) -> anyhow::Result<()> {
        anyhow::ensure!(
            tmp == self.dir,
            "the image was streamed into {}, not {}: write it to the folder it was built for",
            self.dir.display(),
            tmp.display()
        );
        std::fs::write(
            tmp.join(taalasc_image::GRAPH_FILE),
            self.image.info().model.to_json(),
        )?;
        Ok(())
    }
}

/// Writes an image folder into the claimed `staging` folder (with
/// `manifest` and `report` as given, and the RTL of `rtl` or `board`) and
/// renames it into place; the folder appears whole or not at all.
pub fn write_image(
    staging: crate::output::Staging,
    image: &impl ImageFiles,
    manifest: &serde_json::Value,
    report: &serde_json::Value,
    rtl: Option<(&taalasc_verilog::Plan, &str)>,
    board: Option<&taalasc_verilog::board::Board>,
) -> anyhow::Result<std::path::PathBuf> {
    let tmp = staging.dir().to_path_buf();
    let out = staging.out().to_path_buf();
    let result = (|| -> anyhow::Result<std::path::PathBuf> {
        image.stage(&tmp)?;
        crate::files::write_atomic(
            &tmp.join(crate::manifest::MANIFEST_FILE),
            (serde_json::to_string_pretty(manifest)? + "\n").as_bytes(),
        )?;
        crate::files::write_atomic(
            &tmp.join(crate::manifest::REPORT_FILE),
            (serde_json::to_string_pretty(report)? + "\n").as_bytes(),
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
        staging.finish()
    })();
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
    /// Weight-name pattern; `*` matches any characters.
    pub pattern: String,
    /// The format of the weights it matches.
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
        // One message with the reason: clap shows only the outermost one.
        let format = format
            .parse::<WeightFormat>()
            .map_err(|e| anyhow::anyhow!("--layer-format `{s}`: {e:#}"))?;
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
/// each matched weight, by name. A rule that matches none of them is an
/// error naming it, so a misspelt pattern never goes unnoticed; two rules
/// that give one weight different formats are an error naming both and the
/// weight, so no rule is silently overridden (give the default with
/// `--bits`, the exceptions with `--layer-format`).
pub fn apply_layer_rules(
    model: &taalasc_ir::Model,
    rules: &[LayerRule],
) -> anyhow::Result<std::collections::BTreeMap<String, WeightFormat>> {
    let (role, _) = roles(model);
    let mut out = std::collections::BTreeMap::new();
    let mut by: std::collections::BTreeMap<String, &LayerRule> = Default::default();
    for rule in rules {
        let mut hits = 0;
        for (i, info) in model.weights.iter().enumerate() {
            if role[i].is_some_and(WeightRole::is_matrix) && glob_match(&rule.pattern, &info.name) {
                if let Some(first) = by.get(&info.name).filter(|r| r.format != rule.format) {
                    bail!(
                        "--layer-format `{}={}` and `{}={}` both match `{}` with different formats; make the patterns disjoint (give the default with --bits)",
                        first.pattern,
                        first.format,
                        rule.pattern,
                        rule.format,
                        info.name
                    );
                }
                by.insert(info.name.clone(), rule);
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

pub use taalasc_egraph::cost::{
    AutoChoice, AutoReport, AutoTarget, ChosenLayer, AUTO_CANDIDATES, IMPORTANCE_PROBE,
    MIX_FAMILIES, MIX_STEP_BITS,
};

/// Measures every linear layer's sensitivity to every candidate (plain
/// formats and width mixes, [`taalasc_egraph::cost::all_candidates`]) and
/// lets the e-graph pass choose one per layer
/// ([`taalasc_egraph::cost::choose_formats`]); the layers in `pinned`
/// (`--layer-format`) keep their format and their bits come off the budget
/// first. With `probe`, each layer's losses are scaled by its importance,
/// measured by running the float model on the probe window with only that
/// layer at [`IMPORTANCE_PROBE`].
pub fn plan_auto(
    loaded: &LoadedModel,
    calib: &crate::calib::Calibration,
    probe: Option<(&mut taalasc_float::FloatModel, &[u32])>,
    target: AutoTarget,
    pinned: &std::collections::BTreeMap<String, WeightFormat>,
) -> anyhow::Result<AutoChoice> {
    use taalasc_egraph::cost;
    let model = &loaded.model;
    let (role, _) = roles(model);
    let mut fixed_bits = 0u64;
    let mut linears = Vec::new();
    for (i, info) in model.weights.iter().enumerate() {
        match role[i] {
            // Pinned by --layer-format: not chosen, its bits fixed.
            Some(r) if r.is_matrix() && pinned.contains_key(&info.name) => {
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
            Some(WeightRole::Linear | WeightRole::Table) => linears.push(WeightId(i as u32)),
            Some(WeightRole::Bias) => fixed_bits += info.numel() * nx::W_BITS as u64,
            Some(WeightRole::Gain) => fixed_bits += info.numel() * 32,
            None => {}
        }
    }
    let t0 = std::time::Instant::now();
    // As many as rayon's global pool (`--threads`).
    let threads = rayon::current_num_threads();
    let row_weights = head_row_weights(model, calib);
    let layer_data = |j: usize| -> anyhow::Result<cost::LayerData<'_>> {
        let id = linears[j];
        let info = model.weight(id);
        let (rows, cols) = (info.shape[0], info.shape[1]);
        Ok(cost::LayerData {
            name: info.name.clone(),
            rows,
            cols,
            weights: loaded.weights.load_f32(id)?,
            diag: cost::layer_diag(calib.hessian(id), cols),
            row_weights: row_weights.get(&id).map(Vec::as_slice),
            exact: exact_format(loaded, id)?,
        })
    };
    let (layer_choices, mixes) =
        cost::all_candidates(linears.len(), threads, &cost::auto_candidates(), layer_data)?;
    // The proxy measures each layer's own output error; layers differ in how
    // much of that reaches the logits. Scale each layer's proxy by its
    // measured end-to-end effect: KL(float ‖ float with only this layer at
    // the probe format) / proxy(probe format).
    let mut importance = Vec::new();
    if let Some((float, window)) = probe {
        let base = float.forward(&mut float.session(), window, 0)?;
        let base_lp: Vec<Vec<f64>> = base
            .rows()
            .into_iter()
            .map(|r| taalasc_float::log_softmax(r.as_slice().expect("row")))
            .collect();
        for (j, &id) in linears.iter().enumerate() {
            let (q, proxy) = cost::probe_layer(&layer_data(j)?)?;
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
            importance.push(cost::importance(kl, proxy));
        }
    }
    let measured = cost::Measured {
        calibration_tokens: calib.tokens,
        importance,
        sensitivity_seconds: t0.elapsed().as_secs_f64(),
    };
    Ok(cost::choose_formats(
        layer_choices,
        &mixes,
        &measured,
        target,
        fixed_bits,
        model.param_count(),
    )?)
}

/// Row weights of the head (the weight read by the logits op, when it has
/// a row per vocabulary entry) from the calibration's token probabilities
/// ([`taalasc_egraph::cost::head_row_weights`]). Empty without calibration
/// probabilities.
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
                if model.weight(*weight).shape[0] == p.len() {
                    out.insert(*weight, taalasc_egraph::cost::head_row_weights(p));
                }
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
}
