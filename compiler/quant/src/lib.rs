//! # taalasc-quant: weight quantization (RFC 0002 §Weights)
//!
//! Turns f32 weight matrices `[rows, cols]` (one output per row, `cols`
//! inputs) into [`QTensor`]s: `b`-bit integer codes in groups of `G`
//! consecutive inputs of a row, each group with an `SF16` scale `d_g` and,
//! for asymmetric formats, an `SF16` offset `m_g`.
//!
//! - [`mod@format`]: [`WeightFormat`] (`a4g32`, `s8g32`, `s3row`, ...) and its
//!   exact storage cost.
//! - [`tensor`]: [`QTensor`], dequantization, lossless import of llama.cpp
//!   `Q4_1` / `Q8_0` blocks.
//! - [`rtn`]: round-to-nearest, plain or with a small per-group scale search.
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

pub mod format;
pub mod gptq;
mod group;
mod linalg;
pub mod loss;
pub mod rtn;
pub mod tensor;

#[cfg(test)]
mod testutil;

pub use format::{Group, ScaleStore, WeightFormat, SUPPORTED_BITS};
pub use gptq::{quantize_gptq, quantize_gptq_mixed, GptqOptions, Hessian};
pub use loss::{hessian_error, weighted_error, weighted_error_parts};
pub use rtn::{quantize_rtn, quantize_rtn_mixed, quantize_rtn_plain, quantize_rtn_with, ScaleRule};
pub use taalasc_numerics::Sf16;
pub use tensor::{import_q4_1, import_q8_0, mixed_name, mixed_storage_bits, QTensor, Widths};

/// Everything that can go wrong while quantizing.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum QuantError {
    #[error("unsupported weight width {0} bits (supported: 2, 3, 4, 5, 6, 8)")]
    UnsupportedBits(u8),
    #[error("group size {0} is not a positive multiple of 32")]
    BadGroupSize(usize),
    #[error("cannot parse weight format {0:?} (expected e.g. \"a4g32\", \"s8g128\", \"s3row\")")]
    BadFormatName(String),
    #[error("a weight matrix needs at least one column")]
    NoColumns,
    #[error("{cols} columns are not a multiple of the group size {group}")]
    ColsNotGroupMultiple { cols: usize, group: usize },
    #[error("{what} holds {got} values, expected {expected}")]
    ShapeMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("weight {index} (row {row}, column {col}) is not finite: {value}")]
    NonFiniteWeight {
        index: usize,
        row: usize,
        col: usize,
        value: f32,
    },
    #[error("{what} {value:e} of row {row}, group {group} overflows SF16 (|x| > 65504)")]
    ScaleOverflow {
        what: &'static str,
        row: usize,
        group: usize,
        value: f64,
    },
    #[error("Hessian is {n}x{n} but the weight has {cols} columns")]
    HessianShape { n: usize, cols: usize },
    #[error("Hessian entry ({row}, {col}) is not finite")]
    NonFiniteHessian { row: usize, col: usize },
    #[error(
        "Hessian is not positive definite (pivot at input {pivot}) even after damping by {damp:e}; \
         raise GptqOptions::damp"
    )]
    NotPositiveDefinite { pivot: usize, damp: f64 },
    #[error("bad GPTQ option: {0}")]
    BadOption(String),
    #[error("import: {0}")]
    Import(String),
}
