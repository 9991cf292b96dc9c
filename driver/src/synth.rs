//! `taalasc synth`: Yosys on a built chip's compute fabric (ROM and SRAM
//! macros as blackboxes), `check -assert`, and the cells per module recorded
//! in the chip's `report.json`.

use crate::manifest::BuildReportFile;
use anyhow::bail;
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
) -> anyhow::Result<SynthOutcome> {
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
    eprintln!("synth: yosys synth + check -assert on {top} (macros as blackboxes)...");
    let result = taalasc_verilog::synth::synth_sources(&dir, &sources, &top)?;
    let macro_bits = plan.macro_bits();
    // Recorded without the wall time: the same design gives the same file.
    let mut report = BuildReportFile::read(chip)?;
    report
        .synth
        .get_or_insert_with(Default::default)
        .insert(top, (&result).into());
    report.macro_bits = Some(macro_bits.clone());
    report.write(chip)?;
    Ok(SynthOutcome { result, macro_bits })
}
