//! # taalasc-frontends: checkpoints in, model IR out
//!
//! [`load`] accepts what users actually hold: a Hugging Face folder, a
//! `.safetensors` file with `config.json` beside it, a
//! `model.safetensors.index.json` for sharded checkpoints, or a `.gguf` file.
//! Every format ends in the same place: a verified [`taalasc_ir::Model`] plus a
//! [`MappedWeights`] that reads tensor values lazily from memory-mapped files.
//!
//! Architecture invariant: only this crate reads checkpoint files.

#![warn(missing_docs)]

pub mod arch;
pub mod dequant;
pub mod error;
pub mod gguf;
pub mod hf;
pub mod json;
pub mod tensors;
pub mod tokenizer;

pub use error::LoadError;
pub use tensors::MappedWeights;
pub use tokenizer::TextTokenizer;

use std::path::{Path, PathBuf};
use taalasc_ir::Model;

/// The container a model was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceFormat {
    /// Hugging Face safetensors: a single file, a sharded index, or a folder holding either (with `config.json`).
    Safetensors,
    /// A llama.cpp GGUF file (versions 2 and 3), or a folder holding exactly one.
    Gguf,
}

/// A loaded checkpoint: graph, lazily-read weights, and its tokenizer if it ships one.
pub struct LoadedModel {
    /// The verified IR graph. With [`load_layers`], only the kept decoder layers are in it.
    pub model: Model,
    /// Lazily-read weight values, indexed by the graph's [`taalasc_ir::WeightId`]s.
    pub weights: MappedWeights,
    /// The checkpoint's own tokenizer: `tokenizer.json` beside HF weights, or the
    /// vocabulary in GGUF metadata. `None` when the checkpoint ships neither.
    pub tokenizer: Option<TextTokenizer>,
    /// Which container the checkpoint was read from.
    pub format: SourceFormat,
    /// The checkpoint's path, for messages and reports: the GGUF file itself
    /// (also when a folder holding it was given), or the HF folder or file the
    /// caller named.
    pub path: PathBuf,
}

/// Loads any supported checkpoint, choosing the frontend from the path.
pub fn load(path: &Path) -> Result<LoadedModel, LoadError> {
    load_layers(path, None)
}

/// [`load`], keeping only the first `layers` decoder layers (embedding,
/// final norm and head stay): a real model's slice, for hardware tests
/// and quick builds. Weights of the dropped layers are never bound or read.
/// `Some(0)` or more layers than the model has is an error naming the file.
pub fn load_layers(path: &Path, layers: Option<usize>) -> Result<LoadedModel, LoadError> {
    if !path.exists() {
        return Err(LoadError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
        ));
    }
    let is_gguf = |p: &Path| {
        p.extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
    };
    if is_gguf(path) {
        return gguf::load(path, layers);
    }
    if path.is_dir() && !path.join("config.json").exists() {
        // A folder holding exactly one GGUF file (and no HF config) is that file.
        let ggufs: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| LoadError::io(path, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_gguf(p))
            .collect();
        if ggufs.len() == 1 {
            return gguf::load(&ggufs[0], layers);
        }
    }
    hf::load(path, layers)
}
