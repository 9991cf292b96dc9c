//! The build's steps, one file each, in [`crate::pipeline::PIPELINE`]
//! order. Every step reads what the earlier ones left in [`State`] and
//! adds its own result; [`dump`] prints any step's result in its text form.

pub mod calibrate;
pub mod choose_formats;
pub mod emit;
pub mod load;
pub mod partition;
pub mod plan;
pub mod quantize;
pub mod verify_image;
pub mod verify_ir;
pub mod write;

use crate::build::{AutoReport, BuildOptions, BuildReport, StreamedImage};
use crate::calib::Calibration;
use crate::config::BuildConfig;
use crate::config::Step;
use crate::manifest::BuildReportFile;
use crate::system::System;
use std::collections::BTreeMap;
use std::path::PathBuf;
use taalasc_float::FloatModel;
use taalasc_frontends::LoadedModel;
use taalasc_quant::WeightFormat;

/// Calibration statistics and what made them.
pub struct Calibrated {
    /// Input statistics of every linear layer.
    pub stats: Calibration,
    /// The float model that ran.
    pub float: FloatModel,
    /// The calibration text's tokens.
    pub ids: Vec<u32>,
    /// Tokens per window.
    pub window: usize,
}

/// Everything a build has made so far. Each field is set by one step.
pub struct State {
    /// What was asked for.
    pub cfg: BuildConfig,
    /// `load`: the checkpoint.
    pub loaded: Option<LoadedModel>,
    /// `load`: the options resolved against the model; `choose-formats`
    /// adds the per-weight formats.
    pub opts: Option<BuildOptions>,
    /// `load`: the formats `--layer-format` pins, by weight name.
    pub pinned: BTreeMap<String, WeightFormat>,
    /// `calibrate`.
    pub calib: Option<Calibrated>,
    /// `choose-formats`: what `--bits auto` chose.
    pub auto: Option<AutoReport>,
    /// Before `load`: the claim on the output folder (RFC 0006), taken by
    /// `quantize`.
    pub staging: Option<crate::output::Staging>,
    /// `quantize`: the image, streamed into the staging folder.
    pub image: Option<StreamedImage>,
    /// `quantize`: every weight's format and bits.
    pub report: Option<BuildReport>,
    /// `verify-image`: every node's datapath type.
    pub types: Option<taalasc_image::Types>,
    /// `plan`: the hardware plan.
    pub plan: Option<taalasc_verilog::Plan>,
    /// `plan` with `--target-tps-user`: every parallelism evaluated.
    pub candidates: Vec<crate::target::Candidate>,
    /// `partition`: chips and board.
    pub system: Option<System>,
    /// `emit`: files written into the staging folder, relative to it.
    pub emitted: Vec<PathBuf>,
    /// `write`: report.json as written.
    pub report_file: Option<BuildReportFile>,
    /// `write`: the chip folder.
    pub written: Option<PathBuf>,
    /// Why a step had nothing to do, by step.
    pub skipped: BTreeMap<Step, String>,
}

impl State {
    /// The state before the first step.
    pub fn new(cfg: BuildConfig) -> State {
        State {
            cfg,
            loaded: None,
            opts: None,
            pinned: BTreeMap::new(),
            calib: None,
            auto: None,
            staging: None,
            image: None,
            report: None,
            types: None,
            plan: None,
            candidates: Vec::new(),
            system: None,
            emitted: Vec::new(),
            report_file: None,
            written: None,
            skipped: BTreeMap::new(),
        }
    }

    /// The checkpoint (after `load`).
    pub fn loaded(&self) -> &LoadedModel {
        self.loaded.as_ref().expect("the load step ran")
    }

    /// The resolved options (after `load`).
    pub fn opts(&self) -> &BuildOptions {
        self.opts.as_ref().expect("the load step ran")
    }

    /// The streamed image (after `quantize`).
    pub fn image(&self) -> &StreamedImage {
        self.image.as_ref().expect("the quantize step ran")
    }

    /// Records that `step` had nothing to do, and why.
    pub fn skip(&mut self, step: Step, why: impl Into<String>) {
        self.skipped.insert(step, why.into());
    }

    /// One line on what the build wrote (or how far it got).
    pub fn summary(&self) -> String {
        match (&self.written, &self.report) {
            (Some(out), Some(report)) => format!(
                "wrote {}: {} weights, {:.4} bits per weight over all {} parameters ({} tensors imported losslessly)",
                out.display(),
                report.weights.len(),
                report.bits_per_weight,
                report.params,
                report.weights.iter().filter(|w| w.method == taalasc_quant::QuantMethod::Import).count()
            ),
            _ => "stopped early: nothing written".to_string(),
        }
    }
}

/// `step`'s result in its text form (`--dump-after`).
pub fn dump(step: Step, s: &State) -> String {
    if let Some(why) = s.skipped.get(&step) {
        return format!("# {step}: nothing to do ({why})\n");
    }
    match step {
        Step::Load | Step::VerifyIr => s.loaded().model.to_string(),
        Step::Calibrate => calibrate::text(s),
        Step::ChooseFormats => choose_formats::text(s),
        Step::Quantize => quantize::text(s),
        Step::VerifyImage => verify_image::text(s),
        Step::Plan => plan::text(s),
        Step::Partition => partition::text(s),
        Step::Emit => emit::text(s),
        Step::Write => write::text(s),
    }
}
