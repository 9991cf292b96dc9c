//! `calibrate`: the float model on the calibration text, recording each
//! linear layer's input statistics (GPTQ's Hessians, `--bits auto`'s
//! sensitivities) and, for `--bits auto`, the mean token probabilities.

use super::{Calibrated, State};
use crate::calib::Calibration;
use crate::config::LinearFormat;
use crate::config::Step;
use anyhow::Context;

/// Runs `--calib-chunks` windows of the calibration text through the float model.
pub fn run(s: &mut State) -> anyhow::Result<()> {
    let Some(c) = s.cfg.calib.clone() else {
        s.skip(Step::Calibrate, "no --calib text");
        return Ok(());
    };
    let loaded = s.loaded();
    let text = std::fs::read_to_string(&c.text)
        .with_context(|| format!("reading {}", c.text.display()))?;
    let tok = loaded.tokenizer.as_ref().with_context(|| {
        format!(
            "{} ships no tokenizer to read --calib",
            s.cfg.model.display()
        )
    })?;
    let ids = tok.encode(&text, true)?;
    let float = taalasc_float::FloatModel::new(&loaded.model, &loaded.weights)?;
    let window = 512.min(loaded.model.hparams.max_positions);
    let auto = matches!(s.cfg.linear, LinearFormat::Auto(_));
    let stats = Calibration::run(&loaded.model, &float, &ids, window, c.chunks, auto)?;
    s.calib = Some(Calibrated {
        stats,
        float,
        ids,
        window,
    });
    Ok(())
}

/// The calibration in text: windows, tokens, and whether token
/// probabilities were kept.
pub fn text(s: &State) -> String {
    let c = s.calib.as_ref().expect("the calibrate step ran");
    format!(
        "calibration: {} windows of {} tokens ({} positions) from {} ({} text tokens); token probabilities: {}\n",
        c.stats.chunks,
        c.window,
        c.stats.tokens,
        s.cfg.calib.as_ref().map(|c| c.text.display().to_string()).unwrap_or_default(),
        c.ids.len(),
        if c.stats.token_probs.is_some() { "kept" } else { "not needed" }
    )
}
