//! Multi-chip partitioning (RFC 0004).
//!
//! - [`budget`]: what one chip may hold (area, densities, pins, link,
//!   clock) and the energy and cost assumptions, each with its source.
//! - [`StageCost`]: what one pipeline stage (embedding, a decoder layer,
//!   the head) needs, measured from the hardware plan by the backend.
//! - [`mod@partition`]: splits the stage chain into chips, e-graph plus an
//!   exact extraction.

#![warn(missing_docs)]

pub mod budget;
pub mod partition;

pub use budget::{Budget, BudgetError};
pub use partition::{
    partition, ChipCost, EgraphStats, LinkCost, Partition, PartitionError, LINK_HEADER_BITS,
};

use serde::{Deserialize, Serialize};

/// The resources and work of one pipeline stage, per token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageCost {
    /// `embed`, `layer 3`, `head`.
    pub name: String,
    /// Weight ROM bits as the format packs them, plus vector and table ROMs.
    pub rom_bits: u64,
    /// SRAM bits at the build's users and context: KV cache and scratchpad.
    pub sram_bits: u64,
    /// KV-cache bits one position of one user needs in this stage.
    pub kv_bits_per_position: u64,
    /// SRAM bits that do not depend on users or context (scratchpad).
    pub fixed_sram_bits: u64,
    /// Logic, in generic synthesized cells (the backend's calibrated model).
    pub logic_cells: u64,
    /// Cycles this stage takes per token (at the middle of the context).
    pub cycles: u64,
    /// Multiply-accumulates per token.
    pub macs: u64,
    /// ROM bits read per token (every weight once, plus scales).
    pub rom_read_bits: u64,
    /// SRAM bits read and written per token (KV cache and scratchpad).
    pub sram_access_bits: u64,
    /// Bits this stage hands to the next one per token: the link traffic
    /// when a chip boundary falls after it.
    pub out_bits: u64,
}
