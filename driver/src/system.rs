//! `build --chip-budget/--chips`: cost every pipeline stage of the plan,
//! partition the stage chain across chips (RFC 0004), and describe the
//! board that links them.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use taalasc_partition::{Budget, Partition, StageCost};
use taalasc_verilog::board::{Board, LinkSpec};
use taalasc_verilog::Plan;

/// The multi-chip view of a build, kept in manifest.json (`hardware.system`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct System {
    /// What one die may hold.
    pub budget: Budget,
    /// Every pipeline stage's cost (embedding, each layer, head).
    pub stages: Vec<StageCost>,
    /// The stage chain cut into chips.
    pub partition: Partition,
    /// The board, when the partition has more than one chip.
    pub board: Option<Board>,
    /// The fewest chips asked for (`--chips`).
    #[serde(default = "one")]
    pub min_chips: usize,
}

fn one() -> usize {
    1
}

impl System {
    /// One line: chips, their stage ranges and fill.
    pub fn summary(&self) -> String {
        self.partition
            .chips
            .iter()
            .enumerate()
            .map(|(k, c)| {
                format!(
                    "chip{k} = {}..{} ({:.3} of {:.1} mm2)",
                    self.stages[c.first].name,
                    self.stages[c.end - 1].name,
                    c.area_mm2,
                    self.budget.die_mm2
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Partitions `plan` (planned with one engine per stage) under the budget
/// `spec` (a preset or a file) into at least `min_chips` chips.
pub fn partition(plan: &Plan, spec: &str, min_chips: usize) -> anyhow::Result<System> {
    partition_with(plan, Budget::load(spec)?, min_chips)
}

/// [`partition`] under a budget already read.
pub fn partition_with(plan: &Plan, budget: Budget, min_chips: usize) -> anyhow::Result<System> {
    let stages = taalasc_verilog::cost::stage_costs(plan);
    let partition = taalasc_partition::partition(&stages, &budget, min_chips)
        .with_context(|| format!("partitioning under chip budget `{}`", budget.name))?;
    let board = (partition.chips.len() > 1).then(|| Board {
        cuts: partition
            .chips
            .iter()
            .map(|c| c.first)
            .chain(std::iter::once(stages.len()))
            .collect(),
        link: LinkSpec {
            width: budget.link_bits_per_cycle,
            latency: budget.link_latency_cycles,
        },
    });
    if let Some(b) = &board {
        b.parts(plan)
            .map_err(|m| anyhow::anyhow!("the partition cannot be emitted: {m}"))?;
    }
    Ok(System {
        budget,
        stages,
        partition,
        board,
        min_chips,
    })
}
