//! Where taalasc writes folders: the output contract (RFC 0006). Single
//! files are written atomically by [`crate::files`].
//!
//! A folder (a chip, an estimate, a report) is written by [`claim`]ing its
//! path first. The claim touches nothing unless the path is new, or holds a
//! folder of the same kind taalasc wrote and may replace (a chip with
//! `--force`, a report). The folder is built in one staging folder beside
//! it (`.NAME.taalasc-staging`), locked while a build writes it, and renamed
//! into place by [`Staging::finish`]. A staging folder whose build was
//! killed is removed by the next claim.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};

/// The file that marks (and, locked, guards) a staging folder.
pub const STAGING_LOCK: &str = ".taalasc-lock";

// The chip folder's names the contract needs (the typed manifest,
// `crate::manifest`, re-exports them).
/// What every version's format tag starts with: a folder whose manifest
/// has it was written by some taalasc.
pub const MANIFEST_FORMAT_FAMILY: &str = "taalasc-chip-image-";
/// The manifest's file name in a chip folder.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The file of a chip folder that holds each build step's wall time (the
/// one file whose bytes differ between builds of the same input).
pub const TIMINGS_FILE: &str = "timings.json";
/// The build report's file name in a chip folder.
pub const REPORT_FILE: &str = "report.json";

/// Is `rel` (a path in a chip folder, `/`-separated) one that no digest
/// covers: the manifest itself, `timings.json` (wall times, written after
/// the folder is in place), anything in a `sim/`, `synth/` or top-level
/// `report/` folder (what those commands write), and the staging folders
/// of those commands. (`report.json` has a digest, which `synth` updates
/// when it adds to the file.)
pub fn written_by_commands(rel: &str) -> bool {
    matches!(rel, MANIFEST_FILE | TIMINGS_FILE | "report")
        || rel.split('/').any(|c| {
            c == "sim"
                || c == "synth"
                // What a killed `report` left (output::claim's staging).
                || (c.starts_with('.')
                    && (c.ends_with(".taalasc-staging") || c.ends_with(".taalasc-replaced")))
        })
}

/// Which kind of folder a claim is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FolderKind {
    /// A chip folder (`build`): `--force` may replace one built earlier.
    Chip,
    /// A system estimate (`build --estimate`): always a new folder.
    Estimate,
    /// A system report (`report`): may replace a report folder taalasc
    /// wrote (`report.json` and `report.html`, nothing else).
    Report,
    /// A jobs folder (`jobs`, RFC 0007): claimed when new; `jobs` itself
    /// rewrites the plan files of a jobs folder it wrote.
    Jobs,
}

/// What a claim may do to an existing output path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    /// The path must not exist.
    Refuse,
    /// A folder of the same kind that taalasc wrote is replaced (a chip
    /// folder with `--force`, a report folder by `report`); anything else
    /// is still refused.
    Replace,
    /// The build stops before writing (`--stop-after`): the path is not
    /// looked at.
    NotWritten,
}

/// A claimed output folder: its staging folder, created afresh and locked
/// for as long as this value lives. Dropped before [`Staging::finish`],
/// the staging folder is removed and the output path is untouched.
#[derive(Debug)]
pub struct Staging {
    out: PathBuf,
    dir: PathBuf,
    existing: Existing,
    // Held for the lock; closed (and the lock released) on drop.
    _lock: std::fs::File,
    done: bool,
}

/// `PARENT/.NAME.SUFFIX` for the output path `out`.
fn sibling(out: &Path, suffix: &str) -> anyhow::Result<PathBuf> {
    let name = out
        .file_name()
        .with_context(|| format!("{}: the output path has no folder name", out.display()))?
        .to_string_lossy()
        .into_owned();
    Ok(out.with_file_name(format!(".{name}.{suffix}")))
}

/// The one staging folder of the output folder `out`.
pub fn staging_path(out: &Path) -> anyhow::Result<PathBuf> {
    sibling(out, "taalasc-staging")
}

/// Where an earlier chip folder waits while `--force` replaces it.
fn replaced_path(out: &Path) -> anyhow::Result<PathBuf> {
    sibling(out, "taalasc-replaced")
}

/// Does `dir` hold a `manifest.json` whose format is a taalasc chip image's?
fn is_chip_folder(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join(MANIFEST_FILE)) else {
        return false;
    };
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("format")?.as_str().map(str::to_owned))
        .is_some_and(|f| f.starts_with(MANIFEST_FORMAT_FAMILY))
}

/// Does `dir` hold a system report taalasc wrote, and nothing else?
fn is_report_folder(dir: &Path) -> bool {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return false;
    };
    let only_ours = rd.flatten().all(|e| {
        let n = e.file_name();
        e.file_type().is_ok_and(|t| t.is_file()) && (n == "report.json" || n == "report.html")
    });
    let schema = std::fs::read_to_string(dir.join("report.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("schema")?.as_str().map(str::to_owned));
    only_ours && schema.is_some_and(|s| s.starts_with("taalasc-report/"))
}

/// The first file below the chip folder `dir` that taalasc did not write:
/// not in its manifest's digests, not one of the files later commands
/// write (report.json, timings.json, `sim/`, `synth/`, `report/`).
fn foreign_entry(dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    // The manifest's `digests` keys, read untyped (any format version).
    let listed: std::collections::BTreeSet<String> =
        std::fs::read_to_string(dir.join(MANIFEST_FILE))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| Some(v.get("digests")?.as_object()?.keys().cloned().collect()))
            .unwrap_or_default();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d)
            .with_context(|| format!("reading {}", d.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("reading {}", d.display()))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(dir).expect("below dir");
            let rel_s = rel.to_string_lossy().replace('\\', "/");
            if written_by_commands(&rel_s) || listed.contains(&rel_s) {
                continue;
            }
            let ft = e.file_type()?;
            if ft.is_dir() && !ft.is_symlink() {
                stack.push(p);
            } else {
                return Ok(Some(p));
            }
        }
    }
    Ok(None)
}

/// Claims the output folder `out` of a `kind` build: checks what is there
/// against `existing` (touching nothing when refused), removes the staging
/// folder a killed build left, and creates and locks a fresh one.
pub fn claim(out: &Path, kind: FolderKind, existing: Existing) -> anyhow::Result<Staging> {
    let shown = out.display();
    match std::fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("{shown}: cannot look at the output path"))
        }
        Ok(_) if existing == Existing::NotWritten => {}
        Ok(meta) => {
            let link = meta.file_type().is_symlink();
            let ours = !link
                && meta.is_dir()
                && match kind {
                    FolderKind::Chip => is_chip_folder(out),
                    FolderKind::Report => is_report_folder(out),
                    FolderKind::Estimate | FolderKind::Jobs => false,
                };
            let what = if link {
                "a symbolic link"
            } else if !meta.is_dir() {
                "a file"
            } else if ours && kind == FolderKind::Chip {
                "a chip folder taalasc built earlier"
            } else if ours {
                "a report taalasc wrote"
            } else {
                match kind {
                    FolderKind::Chip => {
                        "a folder that is not a chip folder taalasc wrote (no taalasc manifest.json)"
                    }
                    _ => "a folder that holds more than a report taalasc wrote",
                }
            };
            let allowed = match kind {
                FolderKind::Chip => "a new path or, with --force, over a chip folder it built",
                FolderKind::Estimate => "a new path (--estimate never replaces a folder)",
                FolderKind::Jobs => "a new path or over a jobs folder it wrote",
                FolderKind::Report => "a new path or over a report it wrote",
            };
            if !ours {
                bail!("{shown}: already exists and is {what}; taalasc writes only to {allowed}. Nothing was changed.");
            }
            if existing == Existing::Refuse {
                bail!("{shown}: already exists and is {what}; pass --force to replace it. Nothing was changed.");
            }
            if kind == FolderKind::Chip {
                let listed = std::fs::read_to_string(out.join(MANIFEST_FILE))
                    .ok()
                    .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                    .is_some_and(|v| v.get("digests").is_some_and(|d| d.is_object()));
                anyhow::ensure!(
                    listed,
                    "{shown}: a chip folder of an older taalasc, whose manifest lists no files, so --force cannot tell its files from yours; remove it yourself. Nothing was changed."
                );
                if let Some(f) = foreign_entry(out)? {
                    bail!(
                        "{shown}: --force replaces only what taalasc wrote, and {} is not one of its files; move it away first. Nothing was changed.",
                        f.display()
                    );
                }
            }
        }
    }
    let dir = staging_path(out)?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating the output's parent folder {}", parent.display()))?;
    }
    remove_stale(&dir, out)?;
    std::fs::create_dir(&dir).with_context(|| {
        format!(
            "{}: creating the staging folder (is another build writing {shown}?)",
            dir.display()
        )
    })?;
    let lock_path = dir.join(STAGING_LOCK);
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("creating {}", lock_path.display()))?;
    lock.try_lock()
        .map_err(|e| anyhow::anyhow!("{}: cannot lock the staging folder: {e}", dir.display()))?;
    Ok(Staging {
        out: out.to_path_buf(),
        dir,
        existing,
        _lock: lock,
        done: false,
    })
}

/// Removes the staging folder `dir` of `out` when a killed build left it
/// (its lock is free), and the earlier chip folder a killed `--force`
/// replacement left beside `out`. A folder there without taalasc's lock
/// file, or one whose build is still running, is an error.
fn remove_stale(dir: &Path, out: &Path) -> anyhow::Result<()> {
    if std::fs::symlink_metadata(dir).is_ok() {
        let lock_path = dir.join(STAGING_LOCK);
        let lock = std::fs::OpenOptions::new()
            .write(true)
            .open(&lock_path)
            .map_err(|_| {
                anyhow::anyhow!(
                    "{}: exists but is not a staging folder of taalasc (no {STAGING_LOCK}); remove it or choose another output path",
                    dir.display()
                )
            })?;
        match lock.try_lock() {
            Ok(()) => {
                eprintln!(
                    "taalasc: removing {}, left by a build of {} that was killed",
                    dir.display(),
                    out.display()
                );
                std::fs::remove_dir_all(dir).with_context(|| {
                    format!("removing the stale staging folder {}", dir.display())
                })?;
            }
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "another taalasc build is writing {} (its staging folder {} is locked)",
                out.display(),
                dir.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", lock_path.display()))
            }
        }
    }
    let old = replaced_path(out)?;
    if std::fs::symlink_metadata(&old).is_ok() {
        anyhow::ensure!(
            old.is_dir() && (is_chip_folder(&old) || is_report_folder(&old)),
            "{}: exists but is not a folder taalasc set aside; remove it or choose another output path",
            old.display()
        );
        eprintln!(
            "taalasc: removing {}, an earlier folder a killed replacement set aside",
            old.display()
        );
        std::fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
    }
    Ok(())
}

impl Staging {
    /// The staging folder, to write the output in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The output path.
    pub fn out(&self) -> &Path {
        &self.out
    }

    /// Renames the finished staging folder to the output path. An earlier
    /// folder there (claimed with [`Existing::Replace`]) is set
    /// aside first and removed after; anything else that appeared there
    /// since the claim is an error, and is left alone.
    pub fn finish(mut self) -> anyhow::Result<PathBuf> {
        std::fs::remove_file(self.dir.join(STAGING_LOCK))
            .with_context(|| format!("removing {}", self.dir.join(STAGING_LOCK).display()))?;
        let out = self.out.clone();
        let exists = std::fs::symlink_metadata(&out).is_ok();
        if exists {
            anyhow::ensure!(
                self.existing == Existing::Replace
                    && out.is_dir()
                    && (is_chip_folder(&out) || is_report_folder(&out)),
                "{}: appeared while the build ran; it was left alone and the build is not written",
                out.display()
            );
            let old = replaced_path(&out)?;
            std::fs::rename(&out, &old)
                .with_context(|| format!("setting {} aside as {}", out.display(), old.display()))?;
            std::fs::rename(&self.dir, &out)
                .with_context(|| format!("renaming {} to {}", self.dir.display(), out.display()))?;
            self.done = true;
            std::fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
        } else {
            std::fs::rename(&self.dir, &out)
                .with_context(|| format!("renaming {} to {}", self.dir.display(), out.display()))?;
            self.done = true;
        }
        Ok(out)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The folder `dir/name` that a command writes its records in, created if
/// need be: an error, naming it, when a link or a file is there (a folder
/// from elsewhere could point it at the user's files).
pub fn own_subfolder(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let sub = dir.join(name);
    if let Ok(m) = std::fs::symlink_metadata(&sub) {
        anyhow::ensure!(
            m.is_dir() && !m.file_type().is_symlink(),
            "{}: is a link or a file, not a folder; taalasc writes its records there: remove it",
            sub.display()
        );
    }
    std::fs::create_dir_all(&sub).with_context(|| format!("creating {}", sub.display()))?;
    Ok(sub)
}
