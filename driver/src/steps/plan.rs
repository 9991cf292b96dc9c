//! `plan`: the image lowered onto engines (one per decoder layer plus the
//! I/O engine, or one per pipeline stage for a multi-chip build): programs,
//! scratchpad addresses, ROM and SRAM macros (RFC 0003).

use super::State;
use crate::config::Step;
use anyhow::Context;

/// Plans the hardware, unless `--no-rtl`.
pub fn run(s: &mut State) -> anyhow::Result<()> {
    let Some(hw) = &s.cfg.hardware else {
        s.skip(Step::Plan, "--no-rtl");
        return Ok(());
    };
    let mut plan =
        taalasc_verilog::plan::plan_with(s.image(), hw.lanes, hw.users, hw.chips.is_some())
            .with_context(|| format!("{} cannot be lowered to RTL", s.cfg.model.display()))?;
    plan.set_attn_parallel(hw.attn)?;
    s.plan = Some(plan);
    Ok(())
}

/// The plan in its text form: one line per instruction.
pub fn text(s: &State) -> String {
    plan_text(s.plan.as_ref().expect("the plan step ran"))
}

/// `plan` in its text form (`inspect CHIP --plan`, `build --dump-after plan`).
pub fn plan_text(plan: &taalasc_verilog::Plan) -> String {
    plan.to_text()
}
