//! `choose-formats`: each weight's format. `--layer-format` rules pin some
//! (resolved in `load`); with `--bits auto` the e-graph pass chooses the
//! others from measured sensitivities within the target.

use super::State;
use crate::config::LinearFormat;
use std::fmt::Write as _;

/// Runs the `--bits auto` pass (when asked for) and adds the pinned formats.
pub fn run(s: &mut State) -> anyhow::Result<()> {
    if let LinearFormat::Auto(target) = s.cfg.linear {
        let c = s
            .calib
            .as_mut()
            .expect("config validation requires --calib with --bits auto");
        // Importance probe: the last --probe-tokens calibration tokens.
        let probe = s.cfg.calib.as_ref().map_or(0, |c| c.probe_tokens);
        let n = c.ids.len();
        let window: Vec<u32> = c.ids[n.saturating_sub(probe)..].to_vec();
        let loaded = s.loaded.as_ref().expect("the load step ran");
        let choice = crate::build::plan_auto(
            loaded,
            &c.stats,
            Some((&mut c.float, &window)),
            target,
            &s.pinned,
        )?;
        let rep = choice.report;
        eprintln!(
            "build: e-graph pass chose formats for {} layers in {:.3} s ({} e-nodes, {} e-classes, stop: {}); sensitivities took {:.1} s",
            rep.layers, rep.plan.seconds, rep.plan.egraph_nodes, rep.plan.egraph_classes, rep.plan.stop_reason, rep.sensitivity_seconds
        );
        let opts = s.opts.as_mut().expect("the load step ran");
        opts.per_weight = choice.formats;
        opts.widths = choice.widths;
        s.auto = Some(rep);
    }
    let pinned = std::mem::take(&mut s.pinned);
    s.opts
        .as_mut()
        .expect("the load step ran")
        .per_weight
        .extend(pinned);
    Ok(())
}

/// The formats in text: the defaults, then every weight with its own.
pub fn text(s: &State) -> String {
    let o = s.opts();
    let mut t = String::new();
    let linear = match s.cfg.linear {
        LinearFormat::Auto(_) => format!("auto (weights below; others {})", o.linear),
        _ => o.linear.name(),
    };
    let _ = writeln!(t, "linear {linear}");
    let _ = writeln!(t, "table {}", o.table.name());
    for (name, f) in &o.per_weight {
        let _ = writeln!(t, "weight {name} {}", f.name());
    }
    t
}
