//! `taalasc synth`: Yosys on a built chip's compute fabric (ROM and SRAM
//! macros as blackboxes), `check -assert`, and the cells per module recorded
//! in the chip's `report.json`.

use crate::manifest::BuildReportFile;
use anyhow::{bail, Context};
use std::path::Path;
use taalasc_verilog::plan::MacroBits;
use taalasc_verilog::synth::SynthResult;

/// What `synth` measured.
pub struct SynthOutcome {
    /// The Yosys result of the top synthesized.
    pub result: SynthResult,
    /// The design's macro bits (blackboxes: not in the cell counts).
    pub macro_bits: MacroBits,
}

/// Synthesizes the chip (or one engine of it, or one chip of a board) and
/// records the result in `chip/report.json`.
pub fn synthesize(
    chip: &Path,
    engine: Option<usize>,
    chip_index: Option<usize>,
    liberty: Option<&Path>,
) -> anyhow::Result<SynthOutcome> {
    synthesize_to(chip, engine, chip_index, liberty, None)
}

/// What one synthesis records: the key in `report.json`'s `synth` map
/// (the top, and the library when mapped onto one), the record, and the
/// design's macro bits. A `synth --result` job writes this (in a
/// [`crate::job_result::JobResult`]); `gather` records it as `synth` would.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SynthEntry {
    /// The key in `report.json`'s `synth` map.
    pub key: String,
    /// What is recorded under it.
    pub record: crate::manifest::SynthRecord,
    /// The design's macro bits.
    pub macro_bits: MacroBits,
}

/// Records synthesis entries in `chip/report.json` (and its digest in the
/// manifest), as one `synth` run per entry in turn would.
pub fn record(chip: &Path, entries: &[SynthEntry]) -> anyhow::Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut report = BuildReportFile::read(chip)?;
    for e in entries {
        report
            .synth
            .get_or_insert_with(Default::default)
            .insert(e.key.clone(), e.record.clone());
        report.macro_bits = Some(e.macro_bits.clone());
    }
    report.write(chip)?;
    crate::manifest::Manifest::record_digest(chip, crate::manifest::REPORT_FILE)
}

/// The job parameters of one synthesis (what its result depends on beyond
/// the chip folder): for [`crate::job_result::fingerprint`].
pub fn job_params(
    engine: Option<usize>,
    chip_index: Option<usize>,
    liberty: Option<&Path>,
) -> anyhow::Result<serde_json::Value> {
    let lib = liberty
        .map(|l| {
            crate::manifest::file_digest(l).with_context(|| format!("--liberty {}", l.display()))
        })
        .transpose()?;
    Ok(serde_json::json!({
        "kind": "synth",
        "engine": engine,
        "chip_index": chip_index,
        "liberty_sha256": lib,
    }))
}

/// As [`synthesize`]; with `result`, the entry goes to that file (a job
/// result for `taalasc gather`) and the chip folder's `report.json` is
/// left alone, so that jobs may synthesize engines of one chip at once.
pub fn synthesize_to(
    chip: &Path,
    engine: Option<usize>,
    chip_index: Option<usize>,
    liberty: Option<&Path>,
    result: Option<&Path>,
) -> anyhow::Result<SynthOutcome> {
    // A job's result file is checked before the work.
    let result_file = result;
    if let Some(r) = result_file {
        crate::job_result::check_result_path(r)?;
    }
    let (_, plan, system) = crate::chip::open_chip(chip)?;
    let board = system.and_then(|s| s.board);
    // The folder to synthesize in, its sources, its engines and its top.
    let (dir, sources, engines, chip_top) = match (&board, chip_index) {
        (Some(b), Some(k)) => {
            let (src, engs) = taalasc_verilog::board::chip_synth_sources(&plan, b, k)
                .map_err(|m| anyhow::anyhow!("--chip-index {k}: {m}"))?;
            (
                chip.join(format!("chip{k}")),
                src,
                engs,
                format!("taalasc_chip{k}"),
            )
        }
        (Some(b), None) => bail!(
            "{} is a board of {} chips: pick one with --chip-index K",
            chip.display(),
            b.cuts.len() - 1
        ),
        (None, Some(_)) => bail!("--chip-index applies to multi-chip builds only"),
        (None, None) => (
            chip.to_path_buf(),
            taalasc_verilog::output::synth_sources(&plan),
            (0..plan.engines.len()).collect(),
            taalasc_verilog::output::TOP.to_string(),
        ),
    };
    // Yosys' scripts and logs go there: never through a planted link.
    crate::output::own_subfolder(&dir, "synth")?;
    let top = match engine {
        Some(e) => {
            anyhow::ensure!(
                engines.contains(&e),
                "--engine {e}: this chip has engines {:?}",
                engines
            );
            format!("taalasc_engine_{e}")
        }
        None => chip_top,
    };
    let (result, key) = match liberty {
        None => {
            eprintln!("synth: yosys synth + check -assert on {top} (macros as blackboxes)...");
            (
                taalasc_verilog::synth::synth_sources(&dir, &sources, &top)?,
                top,
            )
        }
        Some(lib) => {
            // Decompressed (or copied) into the chip's synth folder, never
            // next to the input.
            let lib = taalasc_verilog::synth::liberty::load(lib, &dir.join("synth"))?;
            eprintln!(
                "synth: yosys synth + dfflibmap + abc -liberty {} + check -assert on {top} (macros as blackboxes)...",
                lib.name
            );
            let r = taalasc_verilog::synth::synth_liberty(&dir, &sources, &top, &[], &lib, false)?;
            (r, format!("{top} liberty={}", lib.name))
        }
    };
    let macro_bits = plan.macro_bits();
    // Recorded without the wall time: the same design gives the same file.
    let entry = SynthEntry {
        key,
        record: (&result).into(),
        macro_bits: macro_bits.clone(),
    };
    match result_file {
        Some(r) => {
            let id = crate::job_result::synth_id(chip_index, engine);
            let params = job_params(engine, chip_index, liberty)?;
            crate::job_result::write_result(
                r,
                &id,
                &crate::job_result::fingerprint(chip, &params)?,
                &entry,
            )?;
        }
        None => record(chip, std::slice::from_ref(&entry))?,
    }
    Ok(SynthOutcome { result, macro_bits })
}

/// Synthesizes one unit standalone onto a Liberty library
/// (`taalasc synth --unit`): `params` are `NAME=VALUE` overrides, `rtl`
/// extra Verilog files (a unit outside the library: an experiment).
pub fn synthesize_unit(
    unit: &str,
    params: &[String],
    rtl: &[std::path::PathBuf],
    liberty: &Path,
    work: &Path,
) -> anyhow::Result<SynthResult> {
    let params = params
        .iter()
        .map(|p| {
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--param {p}: expected NAME=VALUE"))?;
            let v: i64 = v
                .trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("--param {p}: {v} is not an integer"))?;
            Ok((k.trim().to_string(), v))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let extra = rtl
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f)
                .map_err(|e| anyhow::anyhow!("--rtl {}: {e}", f.display()))?;
            let name = f
                .file_name()
                .ok_or_else(|| anyhow::anyhow!("--rtl {}: not a file", f.display()))?
                .to_string_lossy()
                .into_owned();
            Ok((name, text))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if extra.is_empty() && taalasc_verilog::synth::unit_source(unit).is_none() {
        bail!("--unit {unit}: no such unit (tls_matvec, tls_embed, tls_norm, tls_elem, tls_rope, tls_attn, tls_link, tls_out; or give its file with --rtl)");
    }
    std::fs::create_dir_all(work).map_err(|e| anyhow::anyhow!("--work {}: {e}", work.display()))?;
    let lib = taalasc_verilog::synth::liberty::load(liberty, work)?;
    Ok(taalasc_verilog::synth::synth_unit(
        work, unit, &params, &extra, &lib,
    )?)
}

/// One row of the unit table `backends/verilog/synth/units.tsv`: unit,
/// params (`K=V,...` or `-`), library, µm², NAND2-eq, critical path ns,
/// FO4, cells, check.
pub fn tsv_line(r: &SynthResult, params: &[String]) -> String {
    let lib = r.liberty.as_ref().map_or("-", |l| l.name.as_str());
    let f = |x: Option<f64>, p: usize| x.map_or("-".to_string(), |x| format!("{x:.p$}"));
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
        r.top,
        if params.is_empty() {
            "-".to_string()
        } else {
            params.join(",")
        },
        lib,
        f(r.area_um2, 1),
        f(r.nand2_eq, 1),
        f(r.delay_ns, 3),
        f(r.delay_fo4, 1),
        r.total_cells,
        if r.check_passed { "ok" } else { "FAILED" }
    )
}
