//! The partition pass: which contiguous range of stages each chip holds.
//! (Implementation in progress: see RFC 0004.)

use crate::{Budget, StageCost};
use serde::Serialize;

/// One chip of a partition: stages `first..end` and what they cost.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChipCost {
    pub first: usize,
    pub end: usize,
    pub rom_bits: u64,
    pub sram_bits: u64,
    pub logic_cells: u64,
    pub rom_mm2: f64,
    pub sram_mm2: f64,
    pub logic_mm2: f64,
    pub area_mm2: f64,
    /// `area_mm2 / budget.die_mm2`.
    pub utilization: f64,
    /// The slowest stage on this chip, cycles per token.
    pub slowest_stage_cycles: u64,
    /// Link pins used (in plus out, data plus valid/ready).
    pub link_pins: u32,
}

/// The link after stage `after`: between chip `k` and chip `k + 1`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LinkCost {
    pub after_stage: usize,
    /// Payload bits per token (the stage's `out_bits`) plus the header.
    pub bits_per_token: u64,
    /// Cycles one token occupies the link: `ceil(bits / width)`, plus the
    /// latency for the token that waits on it.
    pub busy_cycles: u64,
    pub latency_cycles: u64,
}

/// Sizes of the partition e-graph, for the record.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EgraphStats {
    pub classes: usize,
    pub nodes: usize,
    pub iterations: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Partition {
    pub chips: Vec<ChipCost>,
    pub links: Vec<LinkCost>,
    /// The pipeline's throughput bound: the slowest stage or link.
    pub slowest_stage_cycles: u64,
    pub link_bits_per_token: u64,
    pub egraph: EgraphStats,
}

/// Bits of the header a link sends before each token's payload.
pub const LINK_HEADER_BITS: u64 = 64;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PartitionError {
    #[error("stage `{stage}` alone needs {need_mm2:.2} mm2 (ROM {rom_mm2:.2}, SRAM {sram_mm2:.2}, logic {logic_mm2:.2}) but budget `{budget}` gives a die of {die_mm2:.2} mm2: use a larger die, fewer bits, fewer users or a shorter context")]
    StageTooBig {
        stage: String,
        budget: String,
        need_mm2: f64,
        rom_mm2: f64,
        sram_mm2: f64,
        logic_mm2: f64,
        die_mm2: f64,
    },
    #[error("--chips {min_chips} asks for more chips than the model has stages ({stages})")]
    TooManyChips { min_chips: usize, stages: usize },
    #[error("the model has no stages to partition")]
    NoStages,
}

/// Splits `stages` into the fewest chips that fit `budget` (at least
/// `min_chips`), then the slowest stage, then link traffic.
pub fn partition(
    stages: &[StageCost],
    budget: &Budget,
    min_chips: usize,
) -> Result<Partition, PartitionError> {
    // TEMPORARY (replaced by the e-graph pass): even split into min_chips.
    let n = stages.len();
    let k = min_chips.max(1);
    let cuts: Vec<usize> = (0..=k).map(|i| i * n / k).collect();
    let chips = cuts
        .windows(2)
        .map(|w| ChipCost {
            first: w[0],
            end: w[1],
            rom_bits: 0,
            sram_bits: 0,
            logic_cells: 0,
            rom_mm2: 0.0,
            sram_mm2: 0.0,
            logic_mm2: 0.0,
            area_mm2: 0.0,
            utilization: 0.0,
            slowest_stage_cycles: 0,
            link_pins: 0,
        })
        .collect();
    let _ = budget;
    Ok(Partition {
        chips,
        links: vec![],
        slowest_stage_cycles: 0,
        link_bits_per_token: 0,
        egraph: EgraphStats::default(),
    })
}
