//! # taalasc-reference: the bit-exact integer reference
//!
//! Executes a [`ChipImage`](taalasc_image::ChipImage) (the quantized model: IR graph, quantized weight
//! matrices, fixed-point gains and biases) with exactly the integer
//! arithmetic of the chip, as specified by `taalasc-numerics` (RFC 0002).
//! There is no floating point anywhere in [`Reference::forward`]; floats
//! appear only when tables are built from the image.
//!
//! The result does not depend on how positions are batched or how many
//! threads run: every output element is computed by the same sequence of
//! integer operations either way (tests check both).
//!
//! The image's legality and every value's datapath type (`R32` residual,
//! `W48` wide) come from the image crate's verifier
//! ([`taalasc_image::verify()`]); [`Reference::new`] refuses what it refuses,
//! and the interpreter takes its type decisions from its [`taalasc_image::Types`]
//! (checking, in debug builds, that every computed value agrees).

#![warn(missing_docs)]

mod exec;

pub use exec::{check_image, NodeTrace, RefError, RefSession, Reference};
