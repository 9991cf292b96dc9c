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

/// The timing evidence behind a design's clock: the longest critical path
/// among the synthesized units the design instantiates (the backend's unit
/// table, one Liberty library), and the clock it allows at the budget's
/// node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClockEvidence {
    /// The unit whose path is longest (`tls_attn`).
    pub unit: String,
    /// The parameters of the synthesized row (`HP=1,KP=2`, or `-`).
    pub params: String,
    /// The Liberty library it was synthesized on.
    pub library: String,
    /// The path in that library, ns.
    pub crit_ns: f64,
    /// The path in FO4 delays of that library.
    pub crit_fo4: f64,
    /// Whether every synthesized unit of the design (those not in
    /// `unmeasured`) has a row at the design's own width. Otherwise the
    /// nearest synthesized width of a unit stands in: paths grow with
    /// width, so for a design wider than every row the path is then a
    /// lower bound.
    pub at_design_widths: bool,
    /// Units of the design with no synthesized row at all (their paths are
    /// not known).
    pub unmeasured: Vec<String>,
    /// FO4 delay at the budget's node, ps (with its source).
    pub node_fo4_ps: f64,
    /// Where `node_fo4_ps` comes from.
    pub node_fo4_source: String,
}

impl ClockEvidence {
    /// The clock the path allows at the node, MHz ([`budget::clock_mhz`]).
    pub fn max_clock_mhz(&self) -> f64 {
        budget::clock_mhz(self.crit_fo4, self.node_fo4_ps)
    }
}
