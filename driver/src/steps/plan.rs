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
    let (plan, all) = plan_for(s.image(), hw, &s.cfg.model)?;
    s.candidates = all;
    s.plan = Some(plan);
    Ok(())
}

/// The plan of `image` under `hw` (with `--target-tps-user`, the chosen
/// candidate and every candidate evaluated). Reads only the image's
/// metadata (shapes and formats), never its codes.
pub fn plan_for(
    image: &dyn taalasc_image::ImageSource,
    hw: &crate::config::HardwareConfig,
    model: &std::path::Path,
) -> anyhow::Result<(taalasc_verilog::Plan, Vec<crate::target::Candidate>)> {
    if let (Some(target), Some(chips)) = (hw.target_tps_user, &hw.chips) {
        let budget = taalasc_partition::Budget::load(&chips.budget)?;
        let goal = crate::target::Target {
            tps_user: target,
            context: hw.target_context,
        };
        let (plan, sys, all) = crate::target::choose(
            image,
            goal,
            (
                hw.users,
                (!hw.search_attn).then_some(hw.attn),
                hw.layers_per_engine,
            ),
            &budget,
            chips.min_chips,
            crate::target::Search::Pruned,
        )
        .with_context(|| format!("{}", model.display()))?;
        let pos = goal.position(plan.context);
        eprintln!(
            "build: --target-tps-user {target}: {} lanes x {} rows, attention {}, {} layer(s) per engine, {:.1} tokens/s per user at {} positions of context, {} chip(s)",
            plan.lanes,
            plan.rows,
            crate::target::attn_text(&plan.attn_par),
            plan.layers_per_engine,
            budget.clock_mhz * 1e6 / crate::target::latency_at(&plan, &sys, pos).max(1) as f64,
            pos + 1,
            sys.partition.chips.len()
        );
        return Ok((plan, all));
    }
    let mut plan = taalasc_verilog::plan::plan_shared(
        image,
        hw.lanes,
        hw.rows,
        hw.users,
        hw.chips.is_some(),
        hw.layers_per_engine.unwrap_or(1),
    )
    .with_context(|| format!("{} cannot be lowered to RTL", model.display()))?;
    plan.set_attn_parallel(hw.attn)?;
    Ok((plan, Vec::new()))
}

/// The plan in its text form: one line per instruction; with
/// `--target-tps-user`, first every candidate evaluated.
pub fn text(s: &State) -> String {
    let mut t = String::new();
    for c in &s.candidates {
        t += &format!(
            "# candidate lanes {} rows {} layers-per-engine {}: {:.1} tokens/s per user, {} chip(s), {:.3} mm2, attention {} {} {} (heads, positions, blocks per cycle)\n",
            c.lanes,
            c.rows,
            c.layers_per_engine,
            c.tps_user,
            c.chips,
            c.area_mm2,
            c.attn.heads,
            c.attn.positions,
            c.attn.blocks
        );
    }
    t + &plan_text(s.plan.as_ref().expect("the plan step ran"))
}

/// `plan` in its text form (`inspect CHIP --plan`, `build --dump-after plan`).
pub fn plan_text(plan: &taalasc_verilog::Plan) -> String {
    plan.to_text()
}
