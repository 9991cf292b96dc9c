//! The chip folder's two descriptive files, typed: `manifest.json`
//! ([`Manifest`]: what the folder holds and how it was made) and
//! `report.json` ([`BuildReportFile`]: the bits of every weight, the
//! `--bits auto` choice, and what `synth` measured). Each is read and
//! written here only, and always written atomically.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The manifest's format tag: the family and this version. Version 2
/// added [`Manifest::digests`].
pub const MANIFEST_FORMAT: &str = "taalasc-chip-image-2";
pub use crate::output::{MANIFEST_FILE, MANIFEST_FORMAT_FAMILY, REPORT_FILE, TIMINGS_FILE};

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
    /// The SHA-256 (lower-case hex) of every file the build wrote, by path
    /// relative to the folder; all but this manifest and the files later
    /// commands rewrite ([`crate::output::written_by_commands`]).
    pub digests: BTreeMap<String, String>,
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
    crate::files::write_atomic(path, to_json_text(v)?.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// The SHA-256 of the file at `path`, in lower-case hex, read a buffer at
/// a time.
pub fn file_digest(path: &Path) -> anyhow::Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// Lower-case hex SHA-256 of `bytes` (what [`file_digest`] gives for a file
/// holding them).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(bytes))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The digests of every file below `dir` (relative paths, `/`-separated)
/// but those [`crate::output::written_by_commands`] and `skip` (the staging folder's lock).
pub fn digests_of(dir: &Path, skip: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for rel in crate::files::files_below(dir)? {
        if rel != skip && !crate::output::written_by_commands(&rel) {
            out.insert(rel.clone(), file_digest(&dir.join(&rel))?);
        }
    }
    Ok(out)
}

/// Which of a chip folder's files a command reads, and so checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// The chip image: `graph.json` and `weights.safetensors` (`run`,
    /// `eval`, `sim`, `synth`; `sim` checks the hardware files by
    /// regenerating them).
    Image,
    /// The image and `report.json` (`report`).
    ImageAndReport,
}

impl Manifest {
    /// Reads `chip/manifest.json`; an error names the file and the field.
    /// A manifest of another format version is an error naming both.
    pub fn read(chip: &Path) -> anyhow::Result<Manifest> {
        let path = chip.join(MANIFEST_FILE);
        let v: serde_json::Value = read_json(&path)?;
        let format = v.get("format").and_then(|f| f.as_str()).with_context(|| {
            format!(
                "{}: no `format` string: not a taalasc chip manifest",
                path.display()
            )
        })?;
        anyhow::ensure!(
            format == MANIFEST_FORMAT,
            "{}: format `{format}` is not `{MANIFEST_FORMAT}`, the chip-image format this taalasc reads; rebuild the chip with this version",
            path.display()
        );
        serde_json::from_value(v).with_context(|| format!("{}", path.display()))
    }

    /// Checks the digest of every file of `which` kind in the chip folder
    /// `chip`; an error names the first file that is missing or changed.
    pub fn verify(&self, chip: &Path, which: Check) -> anyhow::Result<()> {
        let image = [taalasc_image::GRAPH_FILE, taalasc_image::WEIGHTS_FILE];
        let files: &[&str] = match which {
            Check::Image => &image,
            Check::ImageAndReport => &[image[0], image[1], REPORT_FILE],
        };
        for f in files {
            anyhow::ensure!(
                self.digests.contains_key(*f),
                "{}: lists no digest of {f}",
                chip.join(MANIFEST_FILE).display()
            );
        }
        for (rel, want) in &self.digests {
            if !files.contains(&rel.as_str()) {
                continue;
            }
            anyhow::ensure!(
                !rel.split('/')
                    .any(|c| c.is_empty() || c == "." || c == ".."),
                "{}: digests: `{rel}` is not a path inside the chip folder",
                chip.join(MANIFEST_FILE).display()
            );
            let p = chip.join(rel);
            anyhow::ensure!(
                p.is_file(),
                "{}: missing (manifest.json lists it); rebuild the chip",
                p.display()
            );
            let got = file_digest(&p)?;
            anyhow::ensure!(
                &got == want,
                "{}: changed since the build (SHA-256 {got}, manifest.json says {want}); restore it or rebuild the chip",
                p.display()
            );
        }
        Ok(())
    }

    /// Records the digest of `rel` as it now is, after a command other than
    /// `build` rewrote it (`synth` adds to `report.json`), and writes the
    /// manifest back.
    pub fn record_digest(chip: &Path, rel: &str) -> anyhow::Result<()> {
        let mut m = Manifest::read(chip)?;
        m.digests
            .insert(rel.to_string(), file_digest(&chip.join(rel))?);
        m.write(chip)
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
