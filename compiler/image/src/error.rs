//! [`ImageError`]: every error of the image crate, from reading and writing
//! files to the verifier's legality rules.

use std::ops::Range;
use std::path::Path;
use taalasc_ir::{Model, WeightId};

/// Errors reading, writing or verifying a chip image. Each names the file,
/// the node or the weight it is about.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not a well-formed chip image (or a write disagrees with
    /// the image's layout).
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// A weight is not of the kind or shape its ops read (see
    /// [`crate::verify()`]), or a read asked for something it does not hold.
    #[error("weight `{weight}`: {message}")]
    Param {
        /// The weight's IR name.
        weight: String,
        /// What is wrong with it.
        message: String,
    },
    /// A node the datapath cannot run (see [`crate::verify()`]): e.g. a
    /// `head_dim` that is not a whole number of activation blocks.
    #[error("node `{node}`: {message}")]
    Unsupported {
        /// The node's IR name.
        node: String,
        /// Why the datapath cannot run it.
        message: String,
    },
}

/// Weight `id` is not `what` (its name, or `w<id>` when the model has no
/// such weight).
pub(crate) fn not_a(model: &Model, id: WeightId, what: &str) -> ImageError {
    ImageError::Param {
        weight: model
            .weights
            .get(id.0 as usize)
            .map_or_else(|| id.to_string(), |w| w.name.clone()),
        message: format!("expected {what}"),
    }
}

/// Rows `rows` asked of matrix `id`, which has `n` rows.
pub(crate) fn bad_rows(model: &Model, id: WeightId, rows: &Range<usize>, n: usize) -> ImageError {
    ImageError::Param {
        weight: model.weight(id).name.clone(),
        message: format!("rows {}..{} of a matrix of {n} rows", rows.start, rows.end),
    }
}

/// Wraps an I/O error on `path`.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ImageError + '_ {
    move |source| ImageError::Io {
        path: path.display().to_string(),
        source,
    }
}
