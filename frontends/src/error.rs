//! Load errors. Every variant names the file and, where there is one, the
//! tensor or config field at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not in the format its name or magic claims, or is damaged.
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    /// A tensor's header entry is inconsistent (bad dtype, offsets, size).
    #[error("{path}: tensor `{tensor}`: {message}")]
    Tensor {
        path: PathBuf,
        tensor: String,
        message: String,
    },
    /// A config field is missing, mistyped or inconsistent.
    #[error("{path}: field `{field}`: {message}")]
    Config {
        path: PathBuf,
        field: String,
        message: String,
    },
    #[error("{path}: tensor `{tensor}` is missing (needed for {role})")]
    MissingTensor {
        path: PathBuf,
        tensor: String,
        role: String,
    },
    #[error("{path}: tensor `{tensor}` has shape {found:?}, but {reason} implies {expected:?}")]
    Shape {
        path: PathBuf,
        tensor: String,
        found: Vec<usize>,
        expected: Vec<usize>,
        reason: String,
    },
    #[error("{path}: unknown architecture `{arch}` (supported: {supported})")]
    UnknownArchitecture {
        path: PathBuf,
        arch: String,
        supported: String,
    },
    #[error("{path}: tokenizer: {message}")]
    Tokenizer { path: PathBuf, message: String },
    #[error("{path}: the graph failed verification: {source}")]
    Verify {
        path: PathBuf,
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
