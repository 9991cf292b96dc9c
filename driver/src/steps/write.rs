//! `write`: `graph.json`, `manifest.json` and `report.json` join the
//! weights and RTL in the staging folder, which is then renamed into place:
//! the chip folder appears whole or not at all.

use super::State;
use crate::config::LinearFormat;
use crate::manifest::{BuildReportFile, Hardware, Manifest, Source, MANIFEST_FORMAT};
use anyhow::Context;

/// Completes the staging folder and puts it in place.
pub fn run(s: &mut State) -> anyhow::Result<()> {
    let mut manifest = manifest(s)?;
    let report = report_file(s)?;
    let out = s.cfg.out.clone();
    let image = s.image.as_mut().expect("the quantize step ran");
    let tmp = image.staging().to_path_buf();
    let staging = image
        .take_staging()
        .expect("the staging folder is written once");
    let result = (|| -> anyhow::Result<()> {
        crate::build::ImageFiles::stage(s.image(), &tmp)?;
        report.write(&tmp)?;
        // Every file is in place but the manifest: its digests cover them.
        manifest.digests = crate::manifest::digests_of(&tmp, crate::output::STAGING_LOCK)?;
        manifest.write(&tmp)?;
        staging.finish()?;
        Ok(())
    })();
    result.with_context(|| format!("writing {}", out.display()))?;
    s.report_file = Some(report);
    s.written = Some(out);
    Ok(())
}

/// `manifest.json` of this build.
fn manifest(s: &State) -> anyhow::Result<Manifest> {
    let cfg = &s.cfg;
    let loaded = s.loaded();
    let opts = s.opts();
    let report = s.report.as_ref().expect("the quantize step ran");
    let hardware = match &s.plan {
        None => None,
        Some(plan) => {
            let board = s.system.as_ref().and_then(|sys| sys.board.as_ref());
            let m = taalasc_verilog::hardware_manifest(plan, board)
                .map_err(|m| anyhow::anyhow!("the board cannot be emitted: {m}"))?;
            Some(Hardware {
                plan: serde_json::to_value(&m.plan)?,
                system: s.system.clone(),
                top: m.top,
                lanes: m.lanes,
                rows: m.rows,
                users: m.users,
                target_clock_mhz: m.target_clock_mhz,
                context: m.context,
                macro_bits: m.macro_bits,
                filelist: m.filelist,
                rtl_files: m.rtl_files,
                synth_script: m.synth_script,
                core: m.core,
                harness: m.harness,
            })
        }
    };
    Ok(Manifest {
        format: MANIFEST_FORMAT.to_string(),
        source: Source {
            path: std::fs::canonicalize(&cfg.model).unwrap_or(cfg.model.clone()),
            format: format!("{:?}", loaded.format).to_lowercase(),
            architecture: loaded.model.hparams.architecture.clone(),
            layers_kept: cfg.layers,
        },
        context: opts.context,
        linear_format: match cfg.linear {
            LinearFormat::Auto(_) => "auto".to_string(),
            _ => opts.linear.name(),
        },
        table_format: opts.table.name(),
        quantizer: opts.quantizer,
        calibration: cfg.calib.as_ref().map(|c| c.text.display().to_string()),
        bits_per_weight: report.bits_per_weight,
        files: ["graph.json", "weights.safetensors", "report.json"]
            .map(String::from)
            .to_vec(),
        // Filled in by `run` once every other file is written.
        digests: Default::default(),
        hardware,
    })
}

/// `report.json` of this build (no wall times: the same input gives the
/// same bytes; they are printed and kept in `timings.json`).
fn report_file(s: &State) -> anyhow::Result<BuildReportFile> {
    Ok(BuildReportFile {
        build: s.report.clone().expect("the quantize step ran"),
        auto: s.auto.clone(),
        synth: None,
        macro_bits: None,
    })
}

/// The manifest as written (its digests included).
pub fn text(s: &State) -> String {
    let written = s
        .written
        .as_ref()
        .map(|dir| crate::manifest::Manifest::read(dir));
    match written {
        Some(m) => m,
        None => manifest(s),
    }
    .and_then(|m| crate::manifest::to_json_text(&m))
    .unwrap_or_else(|e| format!("# {e:#}\n"))
}
