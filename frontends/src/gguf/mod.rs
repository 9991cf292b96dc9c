//! GGUF checkpoints (llama.cpp's single-file format, versions 2 and 3).
//!
//! [`reader`] parses and validates the container without touching tensor
//! data; [`names`] maps the `llama` architecture's metadata and tensor names
//! onto the shared lowering template; [`tokenizer`] rebuilds the tokenizer
//! stored in the metadata.

pub mod metadata;
pub mod names;
pub mod reader;
pub mod tokenizer;

#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod writer;

pub use metadata::{Metadata, Value, ValueType};
pub use reader::{GgufFile, Header, TensorInfo};

use crate::arch::lower;
use crate::error::LoadError;
use crate::{LoadedModel, SourceFormat};
use std::path::Path;

/// Loads a GGUF file: graph, lazily-read weights and (if the metadata holds
/// one) the tokenizer.
pub fn load(path: &Path, layers: Option<usize>) -> Result<LoadedModel, LoadError> {
    load_parsed(GgufFile::open(path)?, layers)
}

/// [`load`] from the bytes of a GGUF file held in memory; `path` only names
/// it in messages. The same checks, for fuzzing and property tests.
pub fn load_bytes(
    path: &Path,
    bytes: &[u8],
    layers: Option<usize>,
) -> Result<LoadedModel, LoadError> {
    let file = crate::tensors::MappedFile::from_bytes(path, bytes)?;
    load_parsed(GgufFile::from_mapped(file)?, layers)
}

fn load_parsed(file: GgufFile, layers: Option<usize>) -> Result<LoadedModel, LoadError> {
    let path = &file.path().to_path_buf();
    let (metadata, index) = file.into_parts();
    let mut spec = names::arch_spec(&metadata, &index)?;
    crate::arch::check_layer_count(
        &index,
        "blk.",
        spec.hparams.n_layers,
        path,
        &format!("{}.block_count", spec.hparams.architecture),
    )?;
    crate::arch::keep_layers(&mut spec, layers, path)?;
    let scheme = names::LlamaCppNames {
        path: path.to_path_buf(),
        n_heads: spec.hparams.n_heads,
        n_kv_heads: spec.hparams.n_kv_heads,
    };
    let (model, weights) = lower(&spec, index, &scheme)?;
    let tokenizer = tokenizer::from_metadata(&metadata, spec.hparams.vocab_size)?;
    Ok(LoadedModel {
        model,
        weights,
        tokenizer,
        format: SourceFormat::Gguf,
        path: path.to_path_buf(),
    })
}
