//! # taalasc-ir: the model IR
//!
//! Frontends lift checkpoints into a [`Model`]: a petgraph DAG whose nodes are
//! typed tensor ops ([`Op`]) with a per-position width, and whose edges carry a
//! port number. Weights are not stored in the graph: each op names a
//! [`WeightId`] whose [`WeightInfo`] gives the shape and source dtype, and a
//! [`WeightSource`] (implemented by the frontend over memory-mapped files)
//! produces the values only when a later stage asks for them.
//!
//! Architecture invariant: this crate does no IO and knows no file format.

#![warn(missing_docs)]

mod builder;
pub mod dtype;
mod json;
pub mod model;
pub mod op;
mod print;
pub mod simd;
pub mod verify;
pub mod weights;

pub use builder::Builder;
pub use dtype::DType;
pub use json::{JsonError, GRAPH_FORMAT};
pub use model::{Edge, HParams, LayerSummary, Model, Node};
pub use op::{Op, RopeScaling, RopeSpec};
pub use petgraph::graph::NodeIndex;
pub use simd::{set_simd_cap, simd_cap, SimdLevel};
pub use verify::{verify, VerifyError};
pub use weights::{RawRows, RowDecoder, WeightError, WeightId, WeightInfo, WeightSource};
