//! Weights: metadata in the IR, values behind a lazily-read [`WeightSource`].

use crate::dtype::DType;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

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

    /// The weight's rows as they are stored (still in `dtype`'s blocks),
    /// for executors that compute from the stored format without an f32
    /// copy. `Ok(None)` (the default) when the source cannot give them
    /// (not a matrix, a transform that moves elements within rows, rows
    /// that are not whole blocks): use [`WeightSource::load_f32`] then.
    /// Like `load_f32`, rejects a weight holding NaN or Inf.
    fn raw_rows(&self, id: WeightId) -> Result<Option<RawRows>, WeightError> {
        let _ = id;
        Ok(None)
    }
}

/// Appends the f32 values of a run of whole `dtype` blocks (one stored row)
/// to the vector, bit for bit as [`WeightSource::load_f32`] decodes them.
pub type RowDecoder = fn(&[u8], &mut Vec<f32>);

/// A matrix weight in its stored form: `rows` rows of `cols` elements, each
/// row `row_bytes` bytes of `dtype` blocks, shared with the source (a
/// memory map) rather than copied.
#[derive(Clone)]
pub struct RawRows {
    /// Storage format of every row.
    pub dtype: DType,
    /// Rows of the canonical `[rows, cols]` matrix.
    pub rows: usize,
    /// Elements per row (a whole number of `dtype` blocks).
    pub cols: usize,
    /// Stored bytes per row.
    pub row_bytes: usize,
    /// The bytes holding the stored rows.
    pub bytes: Arc<dyn AsRef<[u8]> + Send + Sync>,
    /// Where stored row 0 starts in `bytes`; stored row `s` is
    /// `bytes[offset + s * row_bytes..][..row_bytes]`.
    pub offset: usize,
    /// Canonical row `r` is stored row `order[r]` (a pure row reordering or
    /// selection, e.g. GGUF's rotary un-permutation); `None`: row `r` is
    /// stored row `r`.
    pub order: Option<Arc<[u32]>>,
    /// Decodes stored rows to f32 exactly as `load_f32` does.
    pub decode: RowDecoder,
}

impl RawRows {
    /// The stored bytes of canonical row `r` (`r < rows`).
    pub fn row(&self, r: usize) -> &[u8] {
        let s = self.order.as_ref().map_or(r, |o| o[r] as usize);
        let all: &[u8] = (*self.bytes).as_ref();
        &all[self.offset + s * self.row_bytes..][..self.row_bytes]
    }
}

impl fmt::Debug for RawRows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawRows")
            .field("dtype", &self.dtype)
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("row_bytes", &self.row_bytes)
            .field("offset", &self.offset)
            .field("reordered", &self.order.is_some())
            .finish()
    }
}
