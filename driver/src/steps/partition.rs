//! `partition`: with `--chip-budget`/`--chips`, every pipeline stage costed
//! and the stage chain cut into chips by the e-graph partition pass
//! (RFC 0004), and the board that links them.

use super::State;
use crate::config::Step;
use std::fmt::Write as _;

/// Partitions the plan into chips, when a budget or chip count is given.
pub fn run(s: &mut State) -> anyhow::Result<()> {
    let Some(chips) = s.cfg.hardware.as_ref().and_then(|h| h.chips.clone()) else {
        s.skip(Step::Partition, "one chip: no --chip-budget or --chips");
        return Ok(());
    };
    let Some(plan) = &s.plan else {
        s.skip(Step::Partition, "--no-rtl");
        return Ok(());
    };
    let sys = crate::system::partition(plan, &chips.budget, chips.min_chips)?;
    eprintln!(
        "build: {} chip(s) on budget `{}` ({}): {}",
        sys.partition.chips.len(),
        sys.budget.name,
        sys.budget.process,
        sys.summary()
    );
    s.system = Some(sys);
    Ok(())
}

/// The partition in text: the budget, then one line per chip.
pub fn text(s: &State) -> String {
    let sys = s.system.as_ref().expect("the partition step ran");
    let mut t = format!(
        "budget {} ({}, {} mm2), {} stages\n",
        sys.budget.name,
        sys.budget.process,
        sys.budget.die_mm2,
        sys.stages.len()
    );
    for (k, c) in sys.partition.chips.iter().enumerate() {
        let _ = writeln!(
            t,
            "chip{k}: {}..{} ({:.3} mm2)",
            sys.stages[c.first].name,
            sys.stages[c.end - 1].name,
            c.area_mm2
        );
    }
    t
}
