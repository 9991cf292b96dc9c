//! A built chip folder, opened: its image (read lazily), its hardware plan
//! (re-planned from the image and checked against the one recorded) and,
//! for a multi-chip build, its system view.

use crate::system::System;
use anyhow::Context;
use taalasc_verilog::Plan;

/// The chip image of the chip folder `chip`, read after its manifest's
/// format and the digests of `graph.json` and `weights.safetensors` are
/// checked: a changed or foreign file is an error naming it, before any
/// arithmetic.
pub fn read_image(chip: &std::path::Path) -> anyhow::Result<taalasc_image::ChipImage> {
    let manifest = crate::manifest::Manifest::read(chip)?;
    manifest.verify(chip, crate::manifest::Check::Image)?;
    Ok(taalasc_image::ChipImage::read(chip)?)
}

/// A built chip folder: its image (read lazily: weights stay on disk until
/// asked for), its hardware plan (checked against the one recorded in
/// manifest.json) and, for a build with a chip budget, its system view
/// (partition and board).
pub fn open_chip(
    chip: &std::path::Path,
) -> anyhow::Result<(taalasc_image::LazyImage, Plan, Option<System>)> {
    let manifest = crate::manifest::Manifest::read(chip)?;
    manifest.verify(chip, crate::manifest::Check::Image)?;
    let image = taalasc_image::LazyImage::open(chip)?;
    let mpath = chip.join(crate::manifest::MANIFEST_FILE);
    let mut hw = manifest.hardware.with_context(|| {
        format!(
            "{}: no `hardware` section: no RTL in this chip folder (it was built with --no-rtl); rebuild without it",
            mpath.display()
        )
    })?;
    let system = hw.system.take();
    // Layers per engine are recorded in the plan (absent: 1).
    let per_engine = match hw.plan.get("layers_per_engine") {
        Some(v) => v.as_u64().filter(|&n| n >= 1).with_context(|| {
            format!(
                "{}: hardware.plan.layers_per_engine: expected a count of at least 1",
                mpath.display()
            )
        })? as usize,
        None => 1,
    };
    // The recorded widths are the manifest's, not flags: errors name its
    // fields (the planner's own messages speak of the build flags).
    use taalasc_verilog::plan::{MAX_LANES, MAX_ROWS};
    for (field, v, max) in [("lanes", hw.lanes, MAX_LANES), ("rows", hw.rows, MAX_ROWS)] {
        anyhow::ensure!(
            v.is_power_of_two() && v <= max,
            "{}: hardware.{field} = {v}: expected a power of two from 1 to {max}; the file was edited or is not from this taalasc",
            mpath.display()
        );
    }
    let mut plan = taalasc_verilog::plan::plan_shared(
        &image,
        hw.lanes,
        hw.rows,
        hw.users,
        system.is_some(),
        per_engine,
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "{}: the recorded hardware (lanes {}, rows {}, users {}, layers per engine {per_engine}) cannot be planned for this image: {e}",
            mpath.display(),
            hw.lanes,
            hw.rows,
            hw.users
        )
    })?;
    // The attention parallelism is recorded in the plan (absent: serial).
    if let Some(par) = hw.plan.get("attn_par") {
        let par = serde_json::from_value(par.clone())
            .with_context(|| format!("{}: hardware.plan.attn_par", mpath.display()))?;
        plan.set_attn_parallel(par)?;
    }
    // The recorded design must be the one this image plans to: a stale or
    // edited folder is an error, not a silent re-plan.
    let expected =
        taalasc_verilog::manifest_for(&plan, system.as_ref().and_then(|s| s.board.as_ref()))
            .map_err(|m| anyhow::anyhow!("{}: hardware.system.board: {m}", mpath.display()))?;
    anyhow::ensure!(
        expected == serde_json::to_value(&hw)?,
        "{}: the recorded hardware plan does not match the image; rebuild the chip",
        mpath.display()
    );
    Ok((image, plan, system))
}
