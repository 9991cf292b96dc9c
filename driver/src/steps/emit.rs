//! `emit`: the RTL of the plan (one chip, or the chips and the board) into
//! the staging folder: Verilog, `$readmemh` ROM images, harness, filelists,
//! Yosys scripts.

use super::State;
use crate::config::Step;
use std::path::{Path, PathBuf};

/// Prints the design into the staging folder, unless `--no-rtl`.
pub fn run(s: &mut State) -> anyhow::Result<()> {
    let Some(plan) = &s.plan else {
        s.skip(Step::Emit, "--no-rtl");
        return Ok(());
    };
    let image = s.image();
    let dir = image.staging().to_path_buf();
    let before = files(&dir)?;
    match s.system.as_ref().and_then(|sys| sys.board.as_ref()) {
        Some(board) => taalasc_verilog::board::write_board(&dir, image, plan, board)?,
        None => {
            let name = &s.loaded().model.hparams.architecture;
            taalasc_verilog::output::write_rtl(&dir, image, plan, name)?
        }
    }
    s.emitted = files(&dir)?
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    Ok(())
}

/// Every file below `dir`, relative to it, sorted.
fn files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    Ok(crate::files::files_below(dir)?
        .into_iter()
        .map(PathBuf::from)
        .collect())
}

/// The files emitted, one per line.
pub fn text(s: &State) -> String {
    s.emitted
        .iter()
        .map(|p| format!("{}\n", p.display()))
        .collect()
}
