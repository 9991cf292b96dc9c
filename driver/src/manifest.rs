//! The chip folder's two descriptive files, typed: `manifest.json`
//! ([`Manifest`]: what the folder holds and how it was made) and
//! `report.json` ([`BuildReportFile`]: the bits of every weight, the
//! `--bits auto` choice, and what `synth` measured). Each is read and
//! written here only, and always written atomically.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The manifest's format tag.
pub const MANIFEST_FORMAT: &str = "taalasc-chip-image-1";
/// The manifest's file name in a chip folder.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The build report's file name in a chip folder.
pub const REPORT_FILE: &str = "report.json";

/// The checkpoint a chip was built from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// The checkpoint's path (canonical when it could be resolved).
    pub path: PathBuf,
    /// Its container: `hf` or `gguf`.
    pub format: String,
    /// The model family, as the checkpoint names it.
    pub architecture: String,
    /// Decoder layers kept (`build --layers N`); absent for the whole model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers_kept: Option<usize>,
}

/// The hardware section as recorded: the Verilog backend's manifest (top,
/// lanes, users, files, macro bits, the plan as JSON, re-planned from the
/// image and compared when read) and, for a build with a chip budget, the
/// system view (budget, stage costs, partition, board).
pub type Hardware = taalasc_verilog::HardwareManifest<serde_json::Value, crate::system::System>;

/// `manifest.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// The checkpoint.
    pub source: Source,
    /// KV-cache positions.
    pub context: usize,
    /// The linear layers' format name, or `auto`.
    pub linear_format: String,
    /// The tables' format name.
    pub table_format: String,
    /// The rounding method.
    pub quantizer: crate::build::Quantizer,
    /// The calibration text, if any.
    pub calibration: Option<String>,
    /// Bits per weight over all parameters, scales included.
    pub bits_per_weight: f64,
    /// The image's files.
    pub files: Vec<String>,
    /// The RTL, when the build lowered the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware: Option<Hardware>,
}

/// `report.json`: the build's report, what `--bits auto` chose, and what
/// `synth` measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BuildReportFile {
    /// Every weight's format and bits, and the totals.
    #[serde(flatten)]
    pub build: crate::build::BuildReport,
    /// What the `--bits auto` pass chose, wall times left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto: Option<taalasc_egraph::cost::AutoReport>,
    /// Yosys results per synthesized top (`taalasc synth`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synth: Option<std::collections::BTreeMap<String, SynthRecord>>,
    /// Macro bits of the design (`taalasc synth`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macro_bits: Option<taalasc_verilog::MacroBits>,
}

/// What `synth` records of one synthesized top (its wall time is printed,
/// not recorded: the same design gives the same file).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SynthRecord {
    /// The top module.
    pub top: String,
    /// Cells per module (its own cells, submodules excluded).
    pub modules: std::collections::BTreeMap<String, taalasc_verilog::synth::ModuleCells>,
    /// Cells of the whole hierarchy, each macro counted as one.
    pub total_cells: u64,
    /// Whether `check -assert` passed.
    pub check_passed: bool,
}

impl From<&taalasc_verilog::synth::SynthResult> for SynthRecord {
    fn from(r: &taalasc_verilog::synth::SynthResult) -> SynthRecord {
        SynthRecord {
            top: r.top.clone(),
            modules: r.modules.clone(),
            total_cells: r.total_cells,
            check_passed: r.check_passed,
        }
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}", path.display()))
}

/// Pretty JSON with a final newline, the form of every JSON file a build writes.
pub fn to_json_text<T: Serialize>(v: &T) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(v)? + "\n")
}

/// Writes `v` to `path` as [`to_json_text`], atomically (temporary file,
/// then rename): the one writer of every JSON file in a chip folder.
pub fn write_json<T: Serialize>(path: &Path, v: &T) -> anyhow::Result<()> {
    crate::output::write_atomic(path, to_json_text(v)?.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

impl Manifest {
    /// Reads `chip/manifest.json`; an error names the file and the field.
    pub fn read(chip: &Path) -> anyhow::Result<Manifest> {
        read_json(&chip.join(MANIFEST_FILE))
    }

    /// Writes `dir/manifest.json` atomically.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        write_json(&dir.join(MANIFEST_FILE), self)
    }
}

impl BuildReportFile {
    /// Reads `chip/report.json`; an error names the file and the field.
    pub fn read(chip: &Path) -> anyhow::Result<BuildReportFile> {
        read_json(&chip.join(REPORT_FILE))
    }

    /// Writes `dir/report.json` atomically.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        write_json(&dir.join(REPORT_FILE), self)
    }
}
