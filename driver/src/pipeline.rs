//! The build pipeline: one straight list of named steps ([`PIPELINE`]),
//! each a function in its own file under `steps/`, each timed.
//!
//! ```text
//!  checkpoint
//!     │ load            frontends: config, tensors (memory-mapped), tokenizer → model IR
//!     │ verify-ir       the IR verifier (acyclic, shapes on every edge)
//!     │ calibrate       float model on --calib text: input Hessians, token probabilities
//!     │ choose-formats  --layer-format rules, the e-graph --bits auto pass
//!     │ quantize        every weight quantized and streamed into the staging folder
//!     │ verify-image    the chip-image verifier: legal for the integer datapath
//!     │ plan            the hardware plan: engines, programs, scratchpads, macros
//!     │ partition       --chip-budget/--chips: the e-graph partition into chips
//!     │ emit            Verilog, ROM images, harness, filelists into the staging folder
//!     ▼ write           manifest.json, report.json; the staging folder renamed into place
//!  chip folder
//! ```
//!
//! A step that does not apply (no `--calib`, `--no-rtl`, one chip) records
//! why in its text form and takes no time. `--stop-after STEP` ends the
//! build after STEP and writes nothing (the staging folder is removed);
//! `--dump-after STEP` returns STEP's result in its text form. Every step's
//! wall time is returned; the chip folder gets it as `timings.json`, which
//! is the only file whose bytes vary between two builds of the same input.

use crate::config::BuildConfig;
pub use crate::config::Step;
use crate::steps::{self, State};
use std::time::Instant;

/// One step of [`PIPELINE`]: its name and the function that runs it.
pub struct StepFn {
    /// The step.
    pub step: Step,
    /// Runs the step on the build's state.
    pub run: fn(&mut State) -> anyhow::Result<()>,
}

/// The build, in order. Each step reads what the earlier ones left in
/// [`State`] and adds its own result.
pub const PIPELINE: [StepFn; 10] = [
    StepFn {
        step: Step::Load,
        run: steps::load::run,
    },
    StepFn {
        step: Step::VerifyIr,
        run: steps::verify_ir::run,
    },
    StepFn {
        step: Step::Calibrate,
        run: steps::calibrate::run,
    },
    StepFn {
        step: Step::ChooseFormats,
        run: steps::choose_formats::run,
    },
    StepFn {
        step: Step::Quantize,
        run: steps::quantize::run,
    },
    StepFn {
        step: Step::VerifyImage,
        run: steps::verify_image::run,
    },
    StepFn {
        step: Step::Plan,
        run: steps::plan::run,
    },
    StepFn {
        step: Step::Partition,
        run: steps::partition::run,
    },
    StepFn {
        step: Step::Emit,
        run: steps::emit::run,
    },
    StepFn {
        step: Step::Write,
        run: steps::write::run,
    },
];

/// A failed build: the step, and why.
#[derive(Debug, thiserror::Error)]
#[error("{cause:#}")]
pub struct BuildError {
    /// The step that failed.
    pub step: Step,
    /// What went wrong, naming the file, tensor or field.
    pub cause: anyhow::Error,
}

/// The wall time of one step.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StepTime {
    /// The step's name.
    pub step: &'static str,
    /// Seconds it took.
    pub seconds: f64,
}

/// What a build did.
pub struct Built {
    /// The chip folder, or `None` when the build stopped early.
    pub out: Option<std::path::PathBuf>,
    /// The last step run.
    pub last: Step,
    /// The wall time of each step run, in order.
    pub timings: Vec<StepTime>,
    /// The text form of each `--dump-after` step that ran, in step order.
    pub dumps: Vec<(Step, String)>,
    /// `report.json` as written (or as it would be, when stopped early).
    pub report: Option<crate::manifest::BuildReportFile>,
    /// One line on what was written.
    pub summary: String,
}

/// The file beside the outputs that holds each step's wall time.
pub use crate::manifest::TIMINGS_FILE;

/// Runs [`PIPELINE`] on `cfg`.
pub fn build(cfg: &BuildConfig) -> Result<Built, BuildError> {
    cfg.validate().map_err(|cause| BuildError {
        step: Step::Load,
        cause,
    })?;
    let mut state = State::new(cfg.clone());
    // The output path is checked (and its staging folder claimed) before
    // any work: a refused path costs nothing and is left untouched.
    let writes = matches!(cfg.stop_after, None | Some(Step::Write));
    let existing = match (writes, cfg.force) {
        (false, _) => crate::output::Existing::NotWritten,
        (true, false) => crate::output::Existing::Refuse,
        (true, true) => crate::output::Existing::Replace,
    };
    state.staging = Some(
        crate::output::claim(&cfg.out, crate::output::FolderKind::Chip, existing).map_err(
            |cause| BuildError {
                step: Step::Load,
                cause,
            },
        )?,
    );
    let mut timings = Vec::new();
    let mut dumps = Vec::new();
    let mut last = Step::Load;
    for s in &PIPELINE {
        let t0 = Instant::now();
        (s.run)(&mut state).map_err(|cause| BuildError {
            step: s.step,
            cause,
        })?;
        timings.push(StepTime {
            step: s.step.name(),
            seconds: t0.elapsed().as_secs_f64(),
        });
        last = s.step;
        if cfg.dump_after.contains(&s.step) {
            dumps.push((s.step, steps::dump(s.step, &state)));
        }
        if cfg.stop_after == Some(s.step) {
            break;
        }
    }
    let out = state.written.clone();
    if let Some(dir) = &out {
        write_timings(dir, &timings).map_err(|cause| BuildError {
            step: Step::Write,
            cause,
        })?;
    }
    Ok(Built {
        out,
        last,
        timings,
        dumps,
        report: state.report_file.take(),
        summary: state.summary(),
    })
}

/// Writes `timings.json` into the finished chip folder (atomically).
fn write_timings(dir: &std::path::Path, timings: &[StepTime]) -> anyhow::Result<()> {
    crate::manifest::write_json(
        &dir.join(TIMINGS_FILE),
        &serde_json::json!({ "steps": timings }),
    )
}
