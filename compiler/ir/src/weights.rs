//! Weights: metadata in the IR, values behind a lazily-read [`WeightSource`].

use crate::dtype::DType;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Index of a weight in [`crate::Model::weights`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WeightId(pub u32);

impl fmt::Display for WeightId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "w{}", self.0)
    }
}

/// What the IR knows about a weight without reading its values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeightInfo {
    /// Canonical IR name, e.g. `layers.3.attn.q.weight`.
    pub name: String,
    /// Name of the tensor in its source file (before any split or transpose).
    pub source_tensor: String,
    /// Logical shape in canonical layout (`[out, in]` for linear weights).
    pub shape: Vec<usize>,
    /// Storage dtype in the source file.
    pub dtype: DType,
}

impl WeightInfo {
    /// Element count: the product of `shape`.
    pub fn numel(&self) -> u64 {
        self.shape.iter().map(|&d| d as u64).product()
    }

    /// Bytes this weight occupies at its source dtype.
    pub fn source_bytes(&self) -> u64 {
        let (elems, bytes) = self.dtype.block();
        self.numel().div_ceil(elems as u64) * bytes as u64
    }
}

/// Error raised while reading weight values. Always names the file and tensor.
#[derive(Debug, thiserror::Error)]
pub enum WeightError {
    #[error(
        "{file}: tensor `{tensor}`: element {index} is {value} (NaN/Inf weights are rejected)"
    )]
    /// A decoded value is NaN or infinite.
    NonFinite {
        /// The source file.
        file: String,
        /// The tensor's name in the source file.
        tensor: String,
        /// Index of the first bad element in the tensor's flat source order.
        index: usize,
        /// The bad value.
        value: f32,
    },
    /// The stored bytes or layout cannot give the weight (size mismatch, bad
    /// transform, undecodable block).
    #[error("{file}: tensor `{tensor}`: {message}")]
    Invalid {
        /// The source file.
        file: String,
        /// The tensor's name in the source file.
        tensor: String,
        /// What is wrong.
        message: String,
    },
    /// The id is not bound to any tensor of the source.
    #[error("no weight with id {0}")]
    UnknownId(WeightId),
}

/// Where weight values come from. Frontends implement this over memory-mapped
/// files; nothing is read until a weight is asked for.
pub trait WeightSource: Send + Sync {
    /// The weight's values as f32 in canonical row-major layout, with every
    /// source-format transform (dequantization, transposition, splitting,
    /// row un-permutation) applied. Rejects NaN and Inf.
    fn load_f32(&self, id: WeightId) -> Result<Vec<f32>, WeightError>;
}
