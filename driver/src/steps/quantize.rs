//! `quantize`: every weight into its on-chip form, streamed into the output
//! folder's staging folder one weight (or slice of rows) at a time; the
//! image keeps metadata only.

use super::State;
use std::fmt::Write as _;

/// Quantizes (or imports) every weight into the staging folder.
pub fn run(s: &mut State) -> anyhow::Result<()> {
    let staging = s.staging.take().expect("the build claimed its output");
    let (image, report) = crate::build::build_streamed(
        s.loaded(),
        s.opts(),
        s.calib.as_ref().map(|c| &c.stats),
        staging,
    )?;
    s.image = Some(image);
    s.report = Some(report);
    Ok(())
}

/// The image summary: one line per weight (name, format, how it was made,
/// parameters, bits), then the totals.
pub fn text(s: &State) -> String {
    let r = s.report.as_ref().expect("the quantize step ran");
    let mut t = String::new();
    for w in &r.weights {
        let layer = w.layer.map_or("-".to_string(), |l| l.to_string());
        let _ = writeln!(
            t,
            "{:<40} layer {:>3}  {:<28} {:<7} {:>12} params {:>14} bits",
            w.name, layer, w.format, w.method, w.params, w.bits
        );
    }
    let _ = writeln!(
        t,
        "total: {} weights, {} parameters, {} bits, {:.4} bits per weight",
        r.weights.len(),
        r.params,
        r.total_bits,
        r.bits_per_weight
    );
    t
}
