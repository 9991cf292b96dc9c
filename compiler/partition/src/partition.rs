//! # The partition pass: which contiguous range of stages each chip holds
//!
//! A model is a chain of stages (embedding, decoder layers, head). A chip
//! holds a contiguous range `first..end` of them; between two chips a link
//! carries the residual of every token. [`partition`] picks the cuts.
//!
//! ```text
//!  &[StageCost], &Budget ──Chain──► prefix sums, chip footprints, link costs
//!                                          │ egraph::saturate: (part 0 n),
//!                                          │ rules one-chip and cut (both
//!                                          ▼ conditional on the budget)
//!           class of (part a n) = { (part a n), (chip a n)?, (link (chip a i) (part i n)) … }
//!                                          │ extract: exact DP over the
//!                                          ▼ (acyclic) e-graph, per chip count
//!                                      Partition
//! ```
//!
//! - `egraph`: the language, the analysis (each class's stage span and
//!   what holding that span on one chip costs), the two rules, saturation.
//! - `extract`: the objective, and why egg's `Extractor` cannot
//!   express it; three exact DP passes over the e-graph.
//!
//! ## Feasibility
//!
//! A chip holding stages `first..end` is feasible when
//!
//! - its area `rom_mm2(Σ rom_bits) + sram_mm2(Σ sram_bits) +
//!   logic_mm2(Σ logic_cells)` ([`Budget`]'s helpers) is at most
//!   `die_mm2`, and
//! - its link pins fit `io_pins`: `link_bits_per_cycle + 2` (data plus
//!   valid/ready) for the incoming link unless it holds the first stage,
//!   as many again for the outgoing link unless it holds the last one.
//!
//! ## Objective
//!
//! Lexicographic, smallest first:
//!
//! 1. the number of chips, at least `min_chips`;
//! 2. the pipeline's throughput bound [`Partition::slowest_stage_cycles`]:
//!    the largest of every stage's cycles and every link's busy cycles;
//! 3. the link bits per token, summed over the links;
//! 4. the area of the largest chip (evenly filled chips);
//! 5. the list of cut positions, lexicographically (earliest cuts first),
//!    so that the result is deterministic.
//!
//! In a real model every cut carries the same residual, so (2) and (3) tie
//! between partitions with the same number of chips and (4) decides.
//!
//! Everything iterates in a fixed order and compares exactly: the same input
//! always gives the same partition.

mod egraph;
mod extract;
#[cfg(test)]
mod tests;

use crate::{Budget, StageCost};
use serde::{Deserialize, Serialize};

/// One chip of a partition: stages `first..end` and what they cost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChipCost {
    /// The first stage on this chip.
    pub first: usize,
    /// One past the last stage on this chip.
    pub end: usize,
    /// Σ `rom_bits` of its stages.
    pub rom_bits: u64,
    /// Σ `sram_bits` of its stages.
    pub sram_bits: u64,
    /// Σ `logic_cells` of its stages.
    pub logic_cells: u64,
    /// `budget.rom_mm2(rom_bits)`.
    pub rom_mm2: f64,
    /// `budget.sram_mm2(sram_bits)`.
    pub sram_mm2: f64,
    /// `budget.logic_mm2(logic_cells)`.
    pub logic_mm2: f64,
    /// `rom_mm2 + sram_mm2 + logic_mm2`.
    pub area_mm2: f64,
    /// `area_mm2 / budget.die_mm2`.
    pub utilization: f64,
    /// The slowest stage on this chip, cycles per token.
    pub slowest_stage_cycles: u64,
    /// Link pins used (in plus out, data plus valid/ready).
    pub link_pins: u32,
}

/// The link after stage `after_stage`: between chip `k` and chip `k + 1`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkCost {
    /// The last stage before the link (the chip boundary is at
    /// `after_stage + 1`).
    pub after_stage: usize,
    /// Payload bits per token (the stage's `out_bits`) plus the header
    /// ([`LINK_HEADER_BITS`]).
    pub bits_per_token: u64,
    /// Cycles one token occupies the link ([`link_busy_cycles`]). This
    /// bounds the pipeline's throughput like a stage does.
    pub busy_cycles: u64,
    /// Cycles a token additionally waits in flight (`link_latency_cycles`);
    /// adds to each token's latency, not to the throughput bound.
    pub latency_cycles: u64,
}

/// Sizes of the partition e-graph, for the record.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EgraphStats {
    /// E-classes of the saturated e-graph.
    pub classes: usize,
    /// E-nodes of the saturated e-graph.
    pub nodes: usize,
    /// Runner iterations, the last one being the one that found nothing new.
    pub iterations: usize,
}

/// The result of [`partition`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Partition {
    /// The chips in chain order; their ranges cover `0..stages.len()`.
    pub chips: Vec<ChipCost>,
    /// One per cut, in order (`chips.len() - 1` of them).
    pub links: Vec<LinkCost>,
    /// The pipeline's throughput bound: the slowest stage or link, cycles
    /// per token.
    pub slowest_stage_cycles: u64,
    /// Σ `bits_per_token` over the links.
    pub link_bits_per_token: u64,
    /// The e-graph the partition was extracted from.
    pub egraph: EgraphStats,
}

/// Cycles a message of `bits` occupies a link `width` bits wide, as
/// `tls_link` does it: the chips' link ports move one 32-bit word per
/// cycle, so a link of 32 bits or more takes one cycle per word, and a
/// narrower one `32 / width` beats plus one cycle to present each word.
pub fn link_busy_cycles(bits: u64, width: u64) -> u64 {
    let words = bits.div_ceil(32);
    if width >= 32 {
        words
    } else {
        words * (32 / width.max(1) + 1)
    }
}

/// Bits of the header a link sends before each token's payload.
pub const LINK_HEADER_BITS: u64 = 64;

/// Why there is no partition.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PartitionError {
    /// One stage alone is larger than a die.
    #[error("stage `{stage}` alone needs {need_mm2:.4} mm2 (ROM {rom_mm2:.4}, SRAM {sram_mm2:.4}, logic {logic_mm2:.4}) but budget `{budget}` gives a die of {die_mm2:.4} mm2: use a larger die, fewer bits, fewer users or a shorter context")]
    StageTooBig {
        /// The stage's name (`embed`, `layer 3`, `head`).
        stage: String,
        /// The budget's name.
        budget: String,
        /// The stage's total area, `rom_mm2 + sram_mm2 + logic_mm2`, mm².
        need_mm2: f64,
        /// Mask-ROM area of the stage's weights and tables, mm².
        rom_mm2: f64,
        /// SRAM area of the stage's KV cache and buffers, mm².
        sram_mm2: f64,
        /// Logic area of the stage's cells, mm².
        logic_mm2: f64,
        /// The budget's die area, mm².
        die_mm2: f64,
    },
    /// `min_chips` is larger than the number of stages.
    #[error("--chips {min_chips} asks for more chips than the model has stages ({stages})")]
    TooManyChips {
        /// The chip count asked for (`--chips`).
        min_chips: usize,
        /// The model's pipeline stages.
        stages: usize,
    },
    /// An empty stage list.
    #[error("the model has no stages to partition")]
    NoStages,
    /// Every stage fits a die, but the budget's link pins do not allow as
    /// many chips in a chain as the model (or `--chips`) needs.
    #[error("no partition fits budget `{budget}`: {reason}")]
    Infeasible {
        /// The budget's name.
        budget: String,
        /// Why the chain's link pins do not allow the chips needed, with the
        /// figures.
        reason: String,
    },
    /// The e-graph runner stopped on a limit. The limits are set above the
    /// proven saturation bounds, so this is a bug, reported rather than
    /// extracted from a partial e-graph.
    #[error("the partition e-graph did not saturate (stopped by {stop_reason})")]
    NotSaturated {
        /// The runner's stop reason (iteration, node or time limit).
        stop_reason: String,
    },
    /// More stages than the e-graph's `u32` indices can name.
    #[error("{stages} stages are more than the partition e-graph indexes (2^32 - 1)")]
    TooManyStages {
        /// The number of stages given.
        stages: usize,
    },
}

/// Splits `stages` into chips that fit `budget`: the fewest chips (at least
/// `min_chips`; 0 counts as 1), then the smallest throughput bound, then
/// the least link traffic, then the most evenly filled chips, then the
/// earliest cuts (see the [module documentation](self)).
///
/// Errors: [`PartitionError::NoStages`], [`PartitionError::TooManyChips`]
/// when `min_chips > stages.len()`, [`PartitionError::StageTooBig`] naming
/// the first stage larger than a die, [`PartitionError::Infeasible`] when
/// link pins limit the chain.
pub fn partition(
    stages: &[StageCost],
    budget: &Budget,
    min_chips: usize,
) -> Result<Partition, PartitionError> {
    let n = stages.len();
    if n == 0 {
        return Err(PartitionError::NoStages);
    }
    if min_chips > n {
        return Err(PartitionError::TooManyChips {
            min_chips,
            stages: n,
        });
    }
    if u32::try_from(n).is_err() {
        return Err(PartitionError::TooManyStages { stages: n });
    }
    let min_chips = min_chips.max(1);
    let chain = Chain::new(stages, budget);
    for (i, stage) in stages.iter().enumerate() {
        let f = chain.footprint(i, i + 1);
        // Written so that a NaN area (from an unchecked budget) is too big.
        if f.area_mm2 <= budget.die_mm2 {
            continue;
        }
        return Err(PartitionError::StageTooBig {
            stage: stage.name.clone(),
            budget: budget.name.clone(),
            need_mm2: f.area_mm2,
            rom_mm2: f.rom_mm2,
            sram_mm2: f.sram_mm2,
            logic_mm2: f.logic_mm2,
            die_mm2: budget.die_mm2,
        });
    }

    let sat = egraph::saturate(chain)?;
    let stats = EgraphStats {
        classes: sat.egraph.number_of_classes(),
        nodes: sat.egraph.total_number_of_nodes(),
        iterations: sat.iterations,
    };
    let chain = &sat.egraph.analysis.chain;
    let Some(cuts) = extract::extract(&sat.egraph, sat.root, min_chips) else {
        return Err(PartitionError::Infeasible {
            budget: budget.name.clone(),
            reason: chain.pins_reason(min_chips),
        });
    };
    Ok(chain.partition_of(&cuts, stats))
}

/// What holding a range of stages on one chip costs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Footprint {
    pub rom_bits: u64,
    pub sram_bits: u64,
    pub logic_cells: u64,
    pub rom_mm2: f64,
    pub sram_mm2: f64,
    pub logic_mm2: f64,
    pub area_mm2: f64,
    /// Link pins of a chip holding exactly this range (u64: no overflow for
    /// any link width).
    pub link_pins: u64,
    /// Area and pins fit the budget.
    pub fits: bool,
}

/// The stage chain as the pass sees it: prefix sums for O(1) range sums,
/// the link after each stage, and the budget. Owned by the e-graph's
/// analysis, so the rules and the extractor all read the same figures.
#[derive(Debug)]
pub(crate) struct Chain {
    budget: Budget,
    /// `prefix[i]` = Σ over stages `0..i` of (rom, sram, logic); u128 so
    /// that no sum of u64s overflows.
    prefix: Vec<[u128; 3]>,
    /// Per stage: cycles per token.
    cycles: Vec<u64>,
    /// Per stage `i`: the link a cut after it would need.
    links: Vec<LinkCost>,
}

impl Chain {
    pub fn new(stages: &[StageCost], budget: &Budget) -> Chain {
        let mut prefix = Vec::with_capacity(stages.len() + 1);
        let mut sum = [0u128; 3];
        prefix.push(sum);
        for s in stages {
            sum[0] += s.rom_bits as u128;
            sum[1] += s.sram_bits as u128;
            sum[2] += s.logic_cells as u128;
            prefix.push(sum);
        }
        // Budget::check rejects a zero width; an unchecked one is read as 1
        // bit per cycle rather than dividing by zero.
        let width = u64::from(budget.link_bits_per_cycle.max(1));
        let links = stages
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let bits = s.out_bits.saturating_add(LINK_HEADER_BITS);
                LinkCost {
                    after_stage: i,
                    bits_per_token: bits,
                    busy_cycles: link_busy_cycles(bits, width),
                    latency_cycles: u64::from(budget.link_latency_cycles),
                }
            })
            .collect();
        Chain {
            budget: budget.clone(),
            prefix,
            cycles: stages.iter().map(|s| s.cycles).collect(),
            links,
        }
    }

    /// Number of stages.
    pub fn len(&self) -> usize {
        self.cycles.len()
    }

    /// Pins of one link: data plus valid/ready.
    fn pins_per_link(&self) -> u64 {
        u64::from(self.budget.link_bits_per_cycle) + 2
    }

    /// What a chip holding stages `first..end` costs, and whether it fits.
    pub fn footprint(&self, first: usize, end: usize) -> Footprint {
        let sum = |k: usize| {
            let s = self.prefix[end][k] - self.prefix[first][k];
            u64::try_from(s).unwrap_or(u64::MAX)
        };
        let (rom_bits, sram_bits, logic_cells) = (sum(0), sum(1), sum(2));
        let rom_mm2 = self.budget.rom_mm2(rom_bits);
        let sram_mm2 = self.budget.sram_mm2(sram_bits);
        let logic_mm2 = self.budget.logic_mm2(logic_cells);
        let area_mm2 = rom_mm2 + sram_mm2 + logic_mm2;
        let links = u64::from(first > 0) + u64::from(end < self.len());
        let link_pins = links * self.pins_per_link();
        Footprint {
            rom_bits,
            sram_bits,
            logic_cells,
            rom_mm2,
            sram_mm2,
            logic_mm2,
            area_mm2,
            link_pins,
            fits: area_mm2 <= self.budget.die_mm2 && link_pins <= u64::from(self.budget.io_pins),
        }
    }

    /// The link a cut after stage `after` needs.
    pub fn link(&self, after: usize) -> &LinkCost {
        &self.links[after]
    }

    /// The largest stage cycles of the whole chain: part of every
    /// partition's throughput bound.
    pub fn slowest_stage(&self) -> u64 {
        self.cycles.iter().copied().max().unwrap_or(0)
    }

    /// The most chips a chain may have with this budget's pins: a chip
    /// between two others needs two links, the end chips one.
    fn max_chips_by_pins(&self) -> usize {
        let pins = u64::from(self.budget.io_pins);
        if pins < self.pins_per_link() {
            1
        } else if pins < 2 * self.pins_per_link() {
            2.min(self.len())
        } else {
            self.len()
        }
    }

    /// Why no partition exists once every stage fits a die: any split into
    /// more chips is feasible by area (a part of a feasible chip is
    /// feasible), so only the link pins can stand in the way.
    fn pins_reason(&self, min_chips: usize) -> String {
        let max = self.max_chips_by_pins();
        let pins = format!(
            "{} link pins allow at most {max} chip(s) in a chain (a chip with one link needs {} pins, one between two chips {})",
            self.budget.io_pins,
            self.pins_per_link(),
            2 * self.pins_per_link()
        );
        if min_chips > max {
            format!("--chips {min_chips} asks for {min_chips} chips, but {pins}")
        } else if max < self.len() {
            format!("the stages need more than {max} chip(s), but {pins}")
        } else {
            format!("no split into {min_chips} or more chips fits (unexpected: every stage fits a die and {pins})")
        }
    }

    /// The partition with these cut positions (a cut `c` puts stages `..c`
    /// and `c..` on different chips).
    fn partition_of(&self, cuts: &[usize], egraph: EgraphStats) -> Partition {
        let bounds: Vec<usize> = std::iter::once(0)
            .chain(cuts.iter().copied())
            .chain(std::iter::once(self.len()))
            .collect();
        let chips: Vec<ChipCost> = bounds
            .windows(2)
            .map(|w| {
                let (first, end) = (w[0], w[1]);
                let f = self.footprint(first, end);
                ChipCost {
                    first,
                    end,
                    rom_bits: f.rom_bits,
                    sram_bits: f.sram_bits,
                    logic_cells: f.logic_cells,
                    rom_mm2: f.rom_mm2,
                    sram_mm2: f.sram_mm2,
                    logic_mm2: f.logic_mm2,
                    area_mm2: f.area_mm2,
                    utilization: f.area_mm2 / self.budget.die_mm2,
                    slowest_stage_cycles: self.cycles[first..end]
                        .iter()
                        .copied()
                        .max()
                        .unwrap_or(0),
                    link_pins: u32::try_from(f.link_pins).unwrap_or(u32::MAX),
                }
            })
            .collect();
        let links: Vec<LinkCost> = cuts.iter().map(|&c| self.link(c - 1).clone()).collect();
        let slowest_link = links.iter().map(|l| l.busy_cycles).max().unwrap_or(0);
        Partition {
            slowest_stage_cycles: self.slowest_stage().max(slowest_link),
            link_bits_per_token: links
                .iter()
                .fold(0u64, |s, l| s.saturating_add(l.bits_per_token)),
            chips,
            links,
            egraph,
        }
    }
}
