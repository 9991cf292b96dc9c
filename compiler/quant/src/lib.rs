//! # taalasc-quant: weight quantization (RFC 0002 §Weights)
//!
//! Turns f32 weight matrices `[rows, cols]` (one output per row, `cols`
//! inputs) into [`QTensor`]s: `b`-bit integer codes in groups of `G`
//! consecutive inputs of a row, each group with an `SF16` scale `d_g` and,
//! for asymmetric formats, an `SF16` offset `m_g`.
//!
//! - [`mod@format`]: [`WeightFormat`] (`a4g32`, `s8g32`, `s3row`, ...) and its
//!   exact storage cost.
//! - [`tensor`]: [`QTensor`] and its [`CodeWidths`], dequantization.
//! - [`mod@import`]: lossless import of llama.cpp `Q4_1` / `Q8_0` blocks
//!   ([`GgufBlocks`], [`import_exact`]).
//! - [`rtn`]: round-to-nearest, plain or with a small per-group scale search;
//!   [`parallel`]: the same over a matrix's rows on several threads.
//! - [`gptq`]: GPTQ (Frantar et al. 2022), Hessian-aware error-compensating
//!   rounding from calibration activations ([`Hessian`]).
//! - [`loss`]: loss measures, the sensitivity proxies ([`weighted_error`], [`hessian_error`]).
//!
//! Every function is deterministic: results never depend on the thread count.
//!
//! ## Code convention (shared with the integer reference and the emitter)
//!
//! Codes are stored as `i8`. Symmetric codes `q ∈ [-2^(b-1), 2^(b-1)-1]` are
//! stored as they are; asymmetric codes `q ∈ [0, 2^b-1]` are stored centred,
//! `c = q - 2^(b-1)` ([`WeightFormat::code_bias`]), so every width up to 8
//! bits fits an `i8` and both kinds share the stored range
//! `[-2^(b-1), 2^(b-1)-1]`. The value of element `i` of group `g`:
//!
//! ```text
//! symmetric:   w = d_g · c
//! asymmetric:  w = d_g · (c + 2^(b-1)) + m_g
//! ```

#![warn(missing_docs)]

pub mod format;
pub mod gptq;
mod group;
pub mod import;
mod linalg;
pub mod loss;
pub mod parallel;
pub mod rtn;
mod screen;
pub mod tensor;

#[cfg(test)]
mod testutil;

pub use format::{Group, ScaleStore, WeightFormat, SUPPORTED_BITS};
pub use gptq::{quantize_gptq, quantize_gptq_mixed, GptqOptions, Hessian};
pub use import::{import_exact, import_q4_1, import_q8_0, GgufBlocks, GGUF_BLOCK};
pub use loss::{hessian_error, weighted_error, weighted_error_parts};
pub use parallel::quantize_rtn_rows;
pub use rtn::{quantize_rtn, quantize_rtn_mixed, quantize_rtn_plain, quantize_rtn_with, ScaleRule};
pub use taalasc_numerics::Sf16;
pub use tensor::{mixed_name, mixed_storage_bits, CodeWidths, QTensor};

/// How a weight's on-chip values were made; serialized as its lowercase
/// name (`"import"`, `"rtn"`, `"gptq"`, `"fixed"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuantMethod {
    /// Source blocks taken over exactly ([`import_exact`]).
    Import,
    /// Round to nearest ([`quantize_rtn_rows`]).
    Rtn,
    /// GPTQ ([`quantize_gptq_mixed`]).
    Gptq,
    /// Not quantized to a code grid: converted to a fixed-point format
    /// (norm gains, biases).
    Fixed,
}

impl QuantMethod {
    /// The serialized name.
    pub fn name(self) -> &'static str {
        match self {
            QuantMethod::Import => "import",
            QuantMethod::Rtn => "rtn",
            QuantMethod::Gptq => "gptq",
            QuantMethod::Fixed => "fixed",
        }
    }
}

impl std::fmt::Display for QuantMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// Everything that can go wrong while quantizing.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum QuantError {
    /// A code width the datapath does not have.
    #[error("unsupported weight width {0} bits (supported: 2, 3, 4, 5, 6, 8)")]
    UnsupportedBits(u8),
    /// A group size that is not a positive multiple of 32.
    #[error("group size {0} is not a positive multiple of 32")]
    BadGroupSize(usize),
    /// A format name that does not parse.
    #[error("cannot parse weight format {0:?} (expected e.g. \"a4g32\", \"s8g128\", \"s3row\")")]
    BadFormatName(String),
    /// A matrix without columns.
    #[error("a weight matrix needs at least one column")]
    NoColumns,
    /// Columns that the groups do not tile.
    #[error("{cols} columns are not a multiple of the group size {group}")]
    ColsNotGroupMultiple {
        /// Columns of the matrix.
        cols: usize,
        /// The format's group size.
        group: usize,
    },
    /// A buffer of the wrong length.
    #[error("{what} holds {got} values, expected {expected}")]
    ShapeMismatch {
        /// Which buffer.
        what: &'static str,
        /// The length its shape asks for.
        expected: usize,
        /// Its length.
        got: usize,
    },
    /// A NaN or infinite weight.
    #[error("weight {index} (row {row}, column {col}) is not finite: {value}")]
    NonFiniteWeight {
        /// Row-major index.
        index: usize,
        /// Its row.
        row: usize,
        /// Its column.
        col: usize,
        /// The value.
        value: f32,
    },
    /// A group scale or offset beyond the SF16 range.
    #[error("{what} {value:e} of row {row}, group {group} overflows SF16 (|x| > 65504)")]
    ScaleOverflow {
        /// `scale` or `offset`.
        what: &'static str,
        /// The row (in the whole matrix).
        row: usize,
        /// The column group.
        group: usize,
        /// The value needed.
        value: f64,
    },
    /// A Hessian of the wrong size.
    #[error("Hessian is {n}x{n} but the weight has {cols} columns")]
    HessianShape {
        /// The Hessian's size.
        n: usize,
        /// The weight's columns.
        cols: usize,
    },
    /// A NaN or infinite Hessian entry.
    #[error("Hessian entry ({row}, {col}) is not finite")]
    NonFiniteHessian {
        /// Its row.
        row: usize,
        /// Its column.
        col: usize,
    },
    /// A Hessian that damping does not make positive definite.
    #[error(
        "Hessian is not positive definite (pivot at input {pivot}) even after damping by {damp:e}; \
         raise GptqOptions::damp"
    )]
    NotPositiveDefinite {
        /// The input whose pivot failed.
        pivot: usize,
        /// The damping applied.
        damp: f64,
    },
    /// A GPTQ option out of range.
    #[error("bad GPTQ option: {0}")]
    BadOption(String),
    /// A code outside the range of its group's width.
    #[error("code {code} at {index} outside [{lo}, {hi}]")]
    CodeOutOfRange {
        /// The stored code.
        code: i8,
        /// Its row-major index.
        index: usize,
        /// Smallest allowed stored code.
        lo: i32,
        /// Largest allowed stored code.
        hi: i32,
    },
    /// A NaN or infinite SF16 scale or offset.
    #[error("SF16 {bits:#06x} is not finite")]
    NonFiniteSf16 {
        /// Its bits.
        bits: u16,
    },
    /// Scales or offsets of a two-level (`h`) format that the row's 8-bit
    /// integers and one exponent do not hold.
    #[error(
        "the {what} of row {row} are not 8-bit integers times one power of two (format {format})"
    )]
    NotRow8 {
        /// `scales` or `offsets`.
        what: &'static str,
        /// The row.
        row: usize,
        /// The format's name.
        format: String,
    },
    /// A code-width list that does not fit its format or shape.
    #[error("code widths: {0}")]
    BadWidths(String),
    /// Source blocks whose rows the blocks do not tile.
    #[error("import: {cols} columns are not a positive multiple of the block size {GGUF_BLOCK}")]
    ImportCols {
        /// Columns of the source matrix.
        cols: usize,
    },
    /// A `Q4_1` code above 15.
    #[error("import: Q4_1 code {code} at {index} exceeds 15")]
    Q4Code {
        /// The code.
        code: u8,
        /// Its index.
        index: usize,
    },
    /// A NaN or infinite block scale or minimum.
    #[error("import: {what} of block {block} is not finite (f16 bits {bits:#06x})")]
    NonFiniteBlock {
        /// Which value (`Q4_1 scale`, `Q4_1 min`, `Q8_0 scale`).
        what: &'static str,
        /// The block.
        block: usize,
        /// Its f16 bits.
        bits: u16,
    },
}
