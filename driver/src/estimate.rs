//! `build --estimate`: the hardware a checkpoint would get and its system
//! report, planned from the checkpoint's shapes and the chosen formats
//! alone. No weight is read or quantized and no RTL is written, so an 8B
//! model's design point costs seconds instead of the build's quantization.
//!
//! The plan, the stage costs, the partition and the report are the same
//! functions a real build runs: they read only the image's metadata
//! ([`taalasc_image::ImageSource::info`], known before any weight is
//! quantized), which is why the figures equal those of `taalasc report`
//! on the built chip (`tests/system_report.rs` checks it).

use crate::config::{BuildConfig, LinearFormat};
use crate::steps::{self, State};
use anyhow::{bail, Context};
use std::borrow::Cow;
use std::path::PathBuf;
use taalasc_image::{ImageError, ImageInfo, ImageSource};
use taalasc_ir::WeightId;
use taalasc_quant::QTensor;

/// An image of which only the metadata exists: every read of a weight's
/// values is an error naming it.
pub(crate) struct Shapes(ImageInfo);

impl Shapes {
    fn unread(&self, id: WeightId) -> ImageError {
        ImageError::Param {
            weight: self.0.model.weight(id).name.clone(),
            message: "--estimate plans from shapes and formats; the weight is not quantized".into(),
        }
    }
}

impl ImageSource for Shapes {
    fn info(&self) -> Cow<'_, ImageInfo> {
        Cow::Borrowed(&self.0)
    }
    fn matrix_rows(
        &self,
        id: WeightId,
        _rows: std::ops::Range<usize>,
    ) -> Result<Cow<'_, QTensor>, ImageError> {
        Err(self.unread(id))
    }
    fn fixed16_values(&self, id: WeightId) -> Result<Cow<'_, [i32]>, ImageError> {
        Err(self.unread(id))
    }
    fn wide_values(&self, id: WeightId) -> Result<Cow<'_, [i64]>, ImageError> {
        Err(self.unread(id))
    }
}

/// The image `cfg` would build, metadata only (shapes and the chosen
/// formats), and the checkpoint's architecture: the build's own first
/// steps resolve the options and formats.
pub(crate) fn shapes(cfg: &BuildConfig) -> anyhow::Result<(Shapes, String)> {
    let mut s = State::new(cfg.clone());
    steps::load::run(&mut s)?;
    steps::choose_formats::run(&mut s)?;
    let info = crate::build::planned_info(s.loaded(), s.opts())?;
    Ok((Shapes(info), s.loaded().model.hparams.architecture.clone()))
}

/// Plans, partitions and reports `cfg` from shapes and formats; writes
/// `report.json` and `report.html` into `cfg.out` (which must not exist;
/// written beside it and renamed into place) and returns it.
pub fn estimate(cfg: &BuildConfig) -> anyhow::Result<PathBuf> {
    let Some(hw) = &cfg.hardware else {
        bail!("--estimate plans the hardware: it cannot go with --no-rtl");
    };
    let Some(chips) = &hw.chips else {
        bail!("--estimate reports a system: give --chip-budget (or --chips)");
    };
    if matches!(cfg.linear, LinearFormat::Auto(_)) {
        bail!("--estimate takes fixed formats: --bits auto measures sensitivities on quantized weights");
    }
    // Claimed before any work: an existing path is refused untouched.
    let staging = crate::output::claim(
        &cfg.out,
        crate::output::FolderKind::Estimate,
        crate::output::Existing::Refuse,
    )?;
    let (image, architecture) = shapes(cfg)?;
    let weight_bits = image.0.params.iter().map(crate::build::stored_bits).sum();
    let params = image.0.model.param_count();
    let (plan, _) = crate::steps::plan::plan_for(&image, hw, &cfg.model)?;
    let system = crate::system::partition(&plan, &chips.budget, chips.min_chips)?;
    eprintln!(
        "build --estimate: {} chip(s) on budget `{}`: {}",
        system.partition.chips.len(),
        system.budget.name,
        system.summary()
    );
    let input = crate::report::system_input(
        cfg.model.display().to_string(),
        architecture,
        (params, weight_bits),
        &plan,
        &system,
    )?;
    // Written in the staging folder and renamed into place: never half a
    // folder.
    taalasc_report::write(&taalasc_report::compute(&input), staging.dir())
        .with_context(|| format!("writing {}", staging.dir().display()))?;
    staging.finish()?;
    Ok(cfg.out.clone())
}
