//! `taalasc synth`: Yosys over the compute fabric, macros as blackboxes,
//! then `check -assert` (no latches, multiple drivers or combinational
//! loops), and the cell counts per module.

use crate::output::yosys_script;
use crate::plan::Plan;
use crate::tools::{run, ToolError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Cells of one synthesized module (its own cells, submodules excluded).
#[derive(Clone, Debug, Default, Serialize)]
pub struct ModuleCells {
    pub cells: u64,
    pub wires: u64,
    /// Cell count by type (`$_AND_`, `tls_rom`, ...).
    pub by_type: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SynthResult {
    pub top: String,
    pub modules: BTreeMap<String, ModuleCells>,
    /// Cells of the whole hierarchy under `top`, macros counted as one cell
    /// each.
    pub total_cells: u64,
    pub check_passed: bool,
    pub seconds: f64,
}

/// Parses the text of Yosys `stat`.
pub fn parse_stat(text: &str) -> (BTreeMap<String, ModuleCells>, Option<u64>) {
    let mut modules = BTreeMap::new();
    let mut cur: Option<String> = None;
    let mut total = None;
    let mut in_hier = false;
    for line in text.lines() {
        let l = line.trim();
        if let Some(name) = l.strip_prefix("=== ").and_then(|r| r.strip_suffix(" ===")) {
            in_hier = name == "design hierarchy";
            cur = (!in_hier).then(|| name.to_string());
            if let Some(c) = &cur {
                modules.insert(c.clone(), ModuleCells::default());
            }
            continue;
        }
        let num = |prefix: &str| -> Option<u64> {
            l.strip_prefix(prefix)
                .and_then(|r| r.trim().parse::<u64>().ok())
        };
        if in_hier {
            if let Some(n) = num("Number of cells:") {
                total = Some(n);
            }
            continue;
        }
        let Some(c) = &cur else { continue };
        let m = modules.get_mut(c).expect("inserted");
        if let Some(n) = num("Number of cells:") {
            m.cells = n;
        } else if let Some(n) = num("Number of wires:") {
            m.wires = n;
        } else if m.cells > 0 {
            let mut it = l.split_whitespace();
            if let (Some(ty), Some(n), None) = (it.next(), it.next(), it.next()) {
                if let Ok(n) = n.parse::<u64>() {
                    *m.by_type.entry(ty.to_string()).or_default() += n;
                }
            }
        }
    }
    (modules, total)
}

/// Synthesizes `top` (the chip or one `taalasc_engine_N`) in `dir`.
pub fn synth(dir: &Path, plan: &Plan, top: &str) -> Result<SynthResult, ToolError> {
    let script = dir.join("synth").join(format!("{top}.ys"));
    std::fs::create_dir_all(dir.join("synth")).map_err(|e| ToolError::Io {
        path: dir.join("synth").display().to_string(),
        source: e,
    })?;
    std::fs::write(&script, yosys_script(plan, top)).map_err(|e| ToolError::Io {
        path: script.display().to_string(),
        source: e,
    })?;
    let t0 = std::time::Instant::now();
    let log = run(
        dir,
        "yosys",
        &[
            "-q".into(),
            "-l".into(),
            format!("synth/{top}.log"),
            "-s".into(),
            format!("synth/{top}.ys"),
        ],
    )?;
    let seconds = t0.elapsed().as_secs_f64();
    let _ = log;
    let text = std::fs::read_to_string(dir.join(format!("synth/{top}.log"))).map_err(|e| {
        ToolError::Io {
            path: dir.join(format!("synth/{top}.log")).display().to_string(),
            source: e,
        }
    })?;
    let (modules, total) = parse_stat(&text);
    let total_cells = total.unwrap_or_else(|| modules.get(top).map_or(0, |m| m.cells));
    Ok(SynthResult {
        top: top.into(),
        modules,
        total_cells,
        // `check -assert` aborts Yosys (an error above) on any problem.
        check_passed: true,
        seconds,
    })
}
