//! Load errors. Every variant names the file and, where there is one, the
//! tensor or config field at fault.

use std::path::PathBuf;

/// Why a checkpoint could not be loaded. Every variant carries the path of the
/// file (or folder) at fault; the `Display` text starts with it.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Reading or mapping a file failed at the OS level (missing, unreadable,
    /// not mappable).
    #[error("{path}: {source}")]
    Io {
        /// The file or folder being read.
        path: PathBuf,
        /// The underlying OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not in the format its name or magic claims, or is damaged.
    #[error("{path}: {message}")]
    Format {
        /// The file (or folder) at fault.
        path: PathBuf,
        /// What is wrong, and where in the file.
        message: String,
    },
    /// A tensor's header entry is inconsistent (bad dtype, offsets, size).
    #[error("{path}: tensor `{tensor}`: {message}")]
    Tensor {
        /// The file holding the tensor.
        path: PathBuf,
        /// The tensor's name as stored in the checkpoint.
        tensor: String,
        /// What is wrong with the entry.
        message: String,
    },
    /// A config field is missing, mistyped or inconsistent.
    #[error("{path}: field `{field}`: {message}")]
    Config {
        /// The config file (`config.json`) or GGUF file holding the field.
        path: PathBuf,
        /// The field's name: a JSON key, or a dotted GGUF metadata key.
        field: String,
        /// What is wrong with the field.
        message: String,
    },
    /// A tensor the architecture needs is not in the checkpoint.
    #[error("{path}: tensor `{tensor}` is missing (needed for {role})")]
    MissingTensor {
        /// The checkpoint (folder or main file).
        path: PathBuf,
        /// The name looked for: the source tensor name, or the canonical IR weight
        /// name when the name scheme has no tensor for the role.
        tensor: String,
        /// The weight's role in the template (and layer), e.g. `QWeight of layer 3`.
        role: String,
    },
    /// A tensor's shape (after any layout transforms) disagrees with what the
    /// config implies.
    #[error("{path}: tensor `{tensor}` has shape {found:?}, but {reason} implies {expected:?}")]
    Shape {
        /// The file holding the tensor.
        path: PathBuf,
        /// The tensor's name as stored in the checkpoint.
        tensor: String,
        /// The shape found, outermost dimension first.
        found: Vec<usize>,
        /// The shape the config implies, outermost dimension first.
        expected: Vec<usize>,
        /// Where the expected shape comes from (the config source and the
        /// hyperparameters involved).
        reason: String,
    },
    /// The checkpoint names an architecture this crate does not lower.
    #[error("{path}: unknown architecture `{arch}` (supported: {supported})")]
    UnknownArchitecture {
        /// The config or GGUF file that names the architecture.
        path: PathBuf,
        /// The architecture as named (`architectures[0]` or `general.architecture`).
        arch: String,
        /// The supported names, comma-separated, for the message.
        supported: String,
    },
    /// The tokenizer could not be read or rebuilt, or failed on a text.
    #[error("{path}: tokenizer: {message}")]
    Tokenizer {
        /// The `tokenizer.json` or GGUF file the tokenizer comes from.
        path: PathBuf,
        /// The `tokenizers` crate's error, or what is inconsistent.
        message: String,
    },
    /// The lowered graph failed [`taalasc_ir`]'s verifier: a frontend bug or an
    /// inconsistent checkpoint that slipped past the shape checks.
    #[error("{path}: the graph failed verification: {source}")]
    Verify {
        /// The checkpoint the graph was lowered from.
        path: PathBuf,
        /// The verifier's finding.
        #[source]
        source: taalasc_ir::VerifyError,
    },
}

impl LoadError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LoadError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        LoadError::Format {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn tensor(
        path: impl Into<PathBuf>,
        tensor: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        LoadError::Tensor {
            path: path.into(),
            tensor: tensor.into(),
            message: message.into(),
        }
    }

    pub(crate) fn config(
        path: impl Into<PathBuf>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        LoadError::Config {
            path: path.into(),
            field: field.into(),
            message: message.into(),
        }
    }
}
