//! What `sim` compiles and runs: never code from the chip folder.
//!
//! A chip folder may come from elsewhere (RFC 0006, "Threat model"). Its
//! harness is C++, its Verilog can call `$system`, and a binary in it is
//! anything at all; its manifest, digests included, can be forged with
//! them. So `sim` trusts only the image's data (`graph.json`,
//! `weights.safetensors`, checked against the manifest's digests) and its
//! own code:
//!
//! 1. it regenerates every hardware file (Verilog, ROM images, harness,
//!    filelist) from the image and the checked plan, into a private folder
//!    under the user's cache ([`cache_root`]), never into the chip folder;
//! 2. it compares each with the folder's copy: a file that differs or is
//!    missing is an error naming it (unless `--rtl-from-folder` asks to
//!    simulate the folder's own Verilog and ROM images, as mutation tests
//!    and hand edits do; the harness and filelist are the compiler's even
//!    then);
//! 3. it builds the Verilator model there, keyed by the SHA-256 of
//!    everything it is built from (taalasc's version, Verilator's version,
//!    the top, tracing, and every source file): a cached model is reused
//!    only when that key matches, and a changed RTL is a new key.
//!
//! The simulation then runs in a private folder beside the model; only
//! `sim/result.json` is written into the chip folder.

use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Models kept in the cache; older ones (by last use) are removed.
pub const CACHE_ENTRIES: usize = 16;

/// The marker of a finished cache entry.
const COMPLETE: &str = ".complete";

/// The folder `sim` builds its models in: `$TAALASC_CACHE_DIR/sim`, else
/// `$XDG_CACHE_HOME/taalasc/sim`, else `$HOME/.cache/taalasc/sim`.
pub fn cache_root() -> anyhow::Result<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let base = var("TAALASC_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("taalasc")))
        .or_else(|| var("HOME").map(|d| d.join(".cache/taalasc")))
        .context(
            "no cache folder for the Verilator model: set TAALASC_CACHE_DIR (or XDG_CACHE_HOME or HOME)",
        )?;
    let abs = std::path::absolute(&base).with_context(|| format!("{}", base.display()))?;
    Ok(abs.join("sim"))
}

/// A Verilator model ready to run, in the cache.
pub struct Model {
    /// The simulation executable.
    pub exe: PathBuf,
    /// The cache entry holding it and its sources.
    pub entry: PathBuf,
    /// Wall time spent building it (0 when it was cached).
    pub build_seconds: f64,
    /// Files of the chip folder simulated in place of the compiler's
    /// (`--rtl-from-folder`).
    pub from_folder: Vec<String>,
}

/// What to regenerate: one chip, or a board of chips.
pub enum Design<'a> {
    /// One chip; `name` is the model family (it appears in the core file).
    Chip {
        /// The architecture name recorded in the manifest.
        name: &'a str,
    },
    /// A board.
    Board(&'a taalasc_verilog::board::Board),
}

/// `PID-N`: unique among the folders this process and any other running
/// one makes (sims may run in several threads of one process).
pub fn unique() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{n}", std::process::id())
}

/// May `--rtl-from-folder` take this file from the chip folder? Verilog
/// and ROM images only: never the harness, filelists or scripts.
fn rtl_or_rom(rel: &str) -> bool {
    let parts: Vec<&str> = rel.split('/').collect();
    let dir_ok = parts[..parts.len() - 1]
        .iter()
        .any(|c| *c == "rtl" || *c == "rom");
    dir_ok && (rel.ends_with(".v") || rel.ends_with(".hex"))
}

/// Regenerates the hardware files of `design` into a private folder,
/// compares them with the chip folder `chip`, and returns a Verilator
/// model of them with top `top` (in `sim_sub`, the folder of the design
/// relative to the chip folder: `""` or `"board"`), built or taken from
/// the cache.
#[allow(clippy::too_many_arguments)]
pub fn model(
    chip: &Path,
    image: &dyn taalasc_image::ImageSource,
    plan: &taalasc_verilog::Plan,
    design: Design<'_>,
    sim_sub: &str,
    top: &str,
    vcd: bool,
    rtl_from_folder: bool,
) -> anyhow::Result<Model> {
    let root = cache_root()?;
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let gen = root.join(format!("gen-{}", unique()));
    if gen.exists() {
        std::fs::remove_dir_all(&gen).with_context(|| format!("removing {}", gen.display()))?;
    }
    // Removed on every way out but the rename into the cache.
    struct Cleanup(PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = Cleanup(gen.clone());
    std::fs::create_dir_all(&gen).with_context(|| format!("creating {}", gen.display()))?;
    match design {
        Design::Chip { name } => taalasc_verilog::output::write_rtl(&gen, image, plan, name),
        Design::Board(b) => taalasc_verilog::board::write_board(&gen, image, plan, b),
    }
    .with_context(|| {
        format!(
            "regenerating the RTL of {} in {}",
            chip.display(),
            gen.display()
        )
    })?;
    // The folder's copy of each file, against the compiler's.
    let mut differ = Vec::new();
    let mut taken = Vec::new();
    let mut digests = BTreeMap::new();
    for rel in crate::files::files_below(&gen)? {
        let mut ours = std::fs::read(gen.join(&rel)).with_context(|| format!("reading {rel}"))?;
        let theirs = std::fs::read(chip.join(&rel)).ok();
        if theirs.as_deref() != Some(&ours[..]) {
            match theirs {
                Some(t) if rtl_from_folder && rtl_or_rom(&rel) => {
                    std::fs::write(gen.join(&rel), &t).with_context(|| format!("writing {rel}"))?;
                    ours = t;
                    taken.push(rel.clone());
                }
                Some(_) if rtl_from_folder => {
                    eprintln!(
                        "sim: {} differs from the compiler's; the compiler's is used (--rtl-from-folder takes Verilog and ROM images only)",
                        chip.join(&rel).display()
                    );
                }
                Some(_) => differ.push(format!("{} differs", chip.join(&rel).display())),
                None => differ.push(format!("{} is missing", chip.join(&rel).display())),
            }
        }
        digests.insert(rel, crate::manifest::sha256_hex(&ours));
    }
    if !differ.is_empty() {
        let n = differ.len();
        differ.truncate(5);
        bail!(
            "{}: {n} hardware file(s) are not what this taalasc generates from the chip image ({}{}). sim compiles only RTL it generates itself: rebuild the chip, or pass --rtl-from-folder to simulate the folder's own Verilog and ROM images",
            chip.display(),
            differ.join("; "),
            if n > 5 { "; ..." } else { "" }
        );
    }
    if !taken.is_empty() {
        eprintln!(
            "sim: --rtl-from-folder: simulating the folder's own {} (differs from the compiler's)",
            taken.join(", ")
        );
    }
    let key = model_key(top, vcd, &digests)?;
    let entry = root.join(&key);
    let obj = if vcd { "sim/obj_vcd" } else { "sim/obj" };
    let exe_rel = Path::new(sim_sub).join(obj).join(format!("V{top}"));
    if entry.join(COMPLETE).is_file() && entry.join(&exe_rel).is_file() {
        // Marks the entry as used, for pruning.
        std::fs::write(entry.join(COMPLETE), &key)
            .with_context(|| format!("writing {}", entry.join(COMPLETE).display()))?;
        return Ok(Model {
            exe: entry.join(&exe_rel),
            entry,
            build_seconds: 0.0,
            from_folder: taken,
        });
    }
    eprintln!(
        "sim: building the Verilator model in {} (once per design)...",
        entry.display()
    );
    let t0 = std::time::Instant::now();
    taalasc_verilog::sim::build(&gen.join(sim_sub), top, vcd)?;
    let build_seconds = t0.elapsed().as_secs_f64();
    std::fs::write(gen.join(COMPLETE), &key)
        .with_context(|| format!("writing {}", gen.join(COMPLETE).display()))?;
    if entry.join(COMPLETE).is_file() && entry.join(&exe_rel).is_file() {
        // Another sim of the same design finished first (and may be running
        // it): use its model; ours goes with `_cleanup`.
    } else {
        if entry.exists() {
            // Not a finished entry (entries are renamed in whole): debris.
            std::fs::remove_dir_all(&entry)
                .with_context(|| format!("removing {}", entry.display()))?;
        }
        std::fs::rename(&gen, &entry)
            .with_context(|| format!("renaming {} to {}", gen.display(), entry.display()))?;
        prune(&root, &entry);
    }
    Ok(Model {
        exe: entry.join(&exe_rel),
        entry,
        build_seconds,
        from_folder: taken,
    })
}

/// The cache key: SHA-256 over taalasc's version, Verilator's version, the
/// top, tracing, and every source file's path and digest.
fn model_key(top: &str, vcd: bool, digests: &BTreeMap<String, String>) -> anyhow::Result<String> {
    let verilator = std::process::Command::new("verilator")
        .arg("--version")
        .output()
        .context(
            "running `verilator --version` (is Verilator installed? apt-get install verilator)",
        )?;
    let mut text = format!(
        "taalasc {}\n{}top {top}\nvcd {vcd}\n",
        env!("CARGO_PKG_VERSION"),
        String::from_utf8_lossy(&verilator.stdout)
    );
    for (rel, d) in digests {
        text += &format!("{d} {rel}\n");
    }
    Ok(crate::manifest::sha256_hex(text.as_bytes()))
}

/// Removes cache entries past the [`CACHE_ENTRIES`] most recently used
/// (never `keep`), and build folders whose process is gone.
fn prune(root: &Path, keep: &Path) {
    let Ok(rd) = std::fs::read_dir(root) else {
        return;
    };
    let mut entries: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("gen-").and_then(|r| r.split('-').next()) {
            // A build folder of a sim that was killed.
            if !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(&p);
            }
            continue;
        }
        if p == keep || name.len() != 64 {
            continue;
        }
        let used = std::fs::metadata(p.join(COMPLETE))
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH);
        entries.push((used, p));
    }
    entries.sort();
    let excess = (entries.len() + 1).saturating_sub(CACHE_ENTRIES);
    for (_, p) in entries.into_iter().take(excess) {
        let _ = std::fs::remove_dir_all(p);
    }
}
