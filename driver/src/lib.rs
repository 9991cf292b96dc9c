//! # taalasc: the driver
//!
//! The compiler's pipeline and the command line's verbs as library
//! functions, so tests and benches call exactly what users run. The driver
//! is the one crate above the three stages: it uses `frontends` (checkpoints
//! into the model IR) and the backends (references, Verilog, report), which
//! use the `compiler` crates.
//!
//! ```text
//! checkpoint ──load──▶ model IR ──quantize──▶ chip image ──plan/emit──▶ RTL
//!                          │                      │
//!                          └─ float reference      └─ integer reference (bit-exact)
//! ```
//!
//! [`pipeline::build`] runs the named steps of [`pipeline::PIPELINE`] on a typed
//! [`BuildConfig`]; [`sim::simulate`], [`synth::synthesize`],
//! [`report::report`], [`run::run`] and [`eval::eval_models`] are the other
//! verbs.

#![warn(missing_docs)]

pub mod args;
pub mod build;
pub mod calib;
pub mod chip;
pub mod config;
pub mod estimate;
pub mod eval;
pub mod files;
pub mod inspect;
pub mod job_result;
pub mod jobs;
pub mod manifest;
pub mod output;
pub mod pipeline;
pub mod report;
pub mod run;
pub mod sim;
pub mod simtree;
pub mod steps;
pub mod synth;
pub mod system;
pub mod target;

pub use config::BuildConfig;
pub use pipeline::{build, BuildError, Built, Step};

use anyhow::Context;
use std::path::Path;
use taalasc_float::FloatModel;
use taalasc_frontends::LoadedModel;

/// Loads any supported checkpoint.
pub fn load(path: &Path) -> anyhow::Result<LoadedModel> {
    Ok(taalasc_frontends::load(path)?)
}

/// [`load`], keeping only the first `layers` decoder layers when given.
pub fn load_layers(path: &Path, layers: Option<usize>) -> anyhow::Result<LoadedModel> {
    Ok(taalasc_frontends::load_layers(path, layers)?)
}

/// Loads a checkpoint and materializes its float reference.
pub fn load_float(path: &Path) -> anyhow::Result<(LoadedModel, FloatModel)> {
    load_float_layers(path, None)
}

/// [`load_float`] of the first `layers` decoder layers (the float baseline
/// of a chip built with `--layers`).
pub fn load_float_layers(
    path: &Path,
    layers: Option<usize>,
) -> anyhow::Result<(LoadedModel, FloatModel)> {
    let loaded = load_layers(path, layers)?;
    let float = FloatModel::new(&loaded.model, &loaded.weights)
        .with_context(|| format!("reading the weights of {}", path.display()))?;
    Ok((loaded, float))
}

/// Is `path` a chip folder (it has a `manifest.json` or a `graph.json`)?
/// Whether it is a whole and unchanged one is for [`chip::read_image`] to
/// say, naming the file.
pub fn is_chip_image(path: &Path) -> bool {
    path.join(manifest::MANIFEST_FILE).is_file() || path.join(taalasc_image::GRAPH_FILE).is_file()
}

/// The chip image's recorded source checkpoint (for float comparisons).
pub fn image_source(path: &Path) -> anyhow::Result<std::path::PathBuf> {
    Ok(manifest::Manifest::read(path)?.source.path)
}

/// Decoder layers a chip image kept of its source (`build --layers N`), or
/// `None` when it holds the whole model.
pub fn image_layers(path: &Path) -> anyhow::Result<Option<usize>> {
    Ok(manifest::Manifest::read(path)?.source.layers_kept)
}

/// Integer logits (`W48`) as floats, for scoring.
pub fn w48_logits(v: &[i64], vocab: usize) -> ndarray::Array2<f32> {
    let rows = v.len() / vocab;
    ndarray::Array2::from_shape_vec(
        (rows, vocab),
        v.iter()
            .map(|&x| (x as f64 / (1u64 << taalasc_numerics::W_FRAC) as f64) as f32)
            .collect(),
    )
    .expect("logit shape")
}

impl eval::LogitsEngine for taalasc_reference::Reference<'_> {
    fn chunk_logits(&self, tokens: &[u32], from: usize) -> anyhow::Result<ndarray::Array2<f32>> {
        let mut s = self.session();
        let v = self.forward(&mut s, tokens, from)?;
        Ok(w48_logits(&v, self.image().model.hparams.vocab_size))
    }
}

/// Parses `1,2,3` (spaces allowed) into token ids.
pub fn parse_tokens(s: &str) -> anyhow::Result<Vec<u32>> {
    s.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<u32>()
                .with_context(|| format!("`{t}` is not a token id"))
        })
        .collect()
}

/// What the integer reference computes for each user's sequence run alone:
/// every traced node's values and the logits, the RTL's expected values.
pub fn expected_traces(
    image: &taalasc_image::ChipImage,
    seqs: &[Vec<u32>],
) -> anyhow::Result<Vec<taalasc_verilog::sim::Expected>> {
    let reference = taalasc_reference::Reference::new(image, 1)?;
    let model = &image.model;
    let mut out = Vec::new();
    for s in seqs {
        let mut nodes = std::collections::HashMap::new();
        let mut session = reference.session();
        let logits = {
            let mut cb = |nd: taalasc_ir::NodeIndex, v: &[i64]| {
                nodes.insert(model.graph[nd].name.clone(), v.to_vec());
            };
            reference.forward_traced(&mut session, s, 0, Some(&mut cb))?
        };
        out.push(taalasc_verilog::sim::Expected {
            positions: s.len(),
            nodes,
            logits,
        });
    }
    Ok(out)
}
