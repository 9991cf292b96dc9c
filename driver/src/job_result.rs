//! A job's result file (RFC 0007): what `synth --result`, `sim --shard
//! --result` and `report --point --result` write, and the fingerprint of
//! the inputs it was computed from. Below the commands, so that they and
//! `jobs` (which plans and gathers them) share it.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The format tag of a job's result file.
pub const RESULT_SCHEMA: &str = "taalasc-job-result/1";

/// One job's result file: what it computed, and from what.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobResult<T> {
    /// Always [`RESULT_SCHEMA`].
    pub schema: String,
    /// The job (informative: `gather` goes by the file and the inputs).
    pub job: String,
    /// [`fingerprint`] of the chip folder and the job's parameters.
    pub inputs: String,
    /// The result.
    pub result: T,
}

/// Checks that a job may write its result to `path`: a new file (its
/// folder is created), or a result file a job wrote before; never a link,
/// a folder or any other file.
pub fn check_result_path(path: &Path) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("--result: creating {}", parent.display()))?;
            }
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("--result {}", path.display())),
        Ok(m) => {
            let ours = m.is_file()
                && !m.file_type().is_symlink()
                && std::fs::read_to_string(path)
                    .ok()
                    .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                    .and_then(|v| v.get("schema")?.as_str().map(str::to_owned))
                    .is_some_and(|s| s == RESULT_SCHEMA);
            anyhow::ensure!(
                ours,
                "--result {}: exists and is not a job result taalasc wrote; taalasc replaces only its own results. Nothing was changed.",
                path.display()
            );
            Ok(())
        }
    }
}

/// Writes a job's result atomically (after [`check_result_path`]).
pub fn write_result<T: Serialize>(
    path: &Path,
    job: &str,
    inputs: &str,
    result: &T,
) -> anyhow::Result<()> {
    check_result_path(path)?;
    crate::manifest::write_json(
        path,
        &JobResult {
            schema: RESULT_SCHEMA.into(),
            job: job.into(),
            inputs: inputs.into(),
            result,
        },
    )
}

/// SHA-256 of the chip folder's digests (every file the build wrote but
/// `report.json`, which `synth` and `gather` add to) and `params`: what a
/// job's result depends on.
pub fn fingerprint(chip: &Path, params: &serde_json::Value) -> anyhow::Result<String> {
    use sha2::Digest;
    let mut m = crate::manifest::Manifest::read(chip)?;
    m.digests.remove(crate::manifest::REPORT_FILE);
    let text = serde_json::to_string(&serde_json::json!({
        "chip": m.digests,
        "hardware": m.hardware.map(serde_json::to_value).transpose()?,
        "params": params,
    }))?;
    Ok(sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The job name of a synthesis.
pub fn synth_id(chip_index: Option<usize>, engine: Option<usize>) -> String {
    let mut s = "synth".to_string();
    if let Some(k) = chip_index {
        s += &format!("-chip{k}");
    }
    match engine {
        Some(e) => s += &format!("-engine{e}"),
        None if chip_index.is_none() => s += "-chip",
        None => {}
    }
    s
}

/// The job name of simulation shard `i` of `n`.
pub fn sim_id((i, n): (usize, usize)) -> String {
    format!("sim-shard{i}of{n}")
}
