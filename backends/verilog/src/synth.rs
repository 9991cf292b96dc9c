//! `taalasc synth`: Yosys over the compute fabric, macros as blackboxes,
//! then `check -assert` (no multiple drivers, undriven wires or
//! combinational loops) and an assertion that no latch was inferred, and
//! the cell counts per module.

use crate::plan::Plan;
use crate::tools::{run, ToolError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Cells of one synthesized module (its own cells, submodules excluded).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModuleCells {
    /// Cells in the module (a submodule instance counts as one).
    pub cells: u64,
    /// Wires in the module, as Yosys `stat` counts them.
    pub wires: u64,
    /// Cell count by type (`$_AND_`, `tls_rom`, ...).
    pub by_type: BTreeMap<String, u64>,
}

/// What one Yosys run over a top module found.
#[derive(Clone, Debug, Serialize)]
pub struct SynthResult {
    /// The top module synthesized.
    pub top: String,
    /// Cells of every module under `top`, by readable name
    /// ([`module_name`]).
    pub modules: BTreeMap<String, ModuleCells>,
    /// Cells of the whole hierarchy under `top`, macros counted as one cell
    /// each.
    pub total_cells: u64,
    /// `check -assert` and the no-latch assertion passed (always true in a
    /// returned result: a failure is an error).
    pub check_passed: bool,
    /// Wall-clock seconds Yosys ran.
    pub seconds: f64,
}

/// A readable module name: Yosys names parameterized copies
/// `$paramod$<hash>\\tls_attn` or `$paramod\\tls_attn_shsat\\PW=s32'0..010101`;
/// this gives `tls_attn` and `tls_attn_shsat PW=21`.
pub fn module_name(raw: &str) -> String {
    let Some(rest) = raw.strip_prefix("$paramod") else {
        return raw.to_string();
    };
    let mut parts = rest.split('\\').skip(1);
    let base = parts.next().unwrap_or(rest).to_string();
    let params: Vec<String> = parts
        .map(|p| match p.split_once('=') {
            Some((k, v)) => {
                let bits = v.split_once('\'').map_or(v, |(_, b)| b);
                match u64::from_str_radix(bits, 2) {
                    Ok(n) => format!("{k}={n}"),
                    Err(_) => p.to_string(),
                }
            }
            None => p.to_string(),
        })
        .collect();
    if params.is_empty() {
        base
    } else {
        format!("{base} {}", params.join(" "))
    }
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
            cur = (!in_hier).then(|| module_name(name));
            if let Some(c) = &cur {
                modules
                    .entry(c.clone())
                    .or_insert_with(ModuleCells::default);
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
            m.cells += n;
        } else if let Some(n) = num("Number of wires:") {
            m.wires += n;
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
    synth_sources(dir, &crate::output::synth_sources(plan), top)
}

/// [`synth`] of the given synthesis sources (relative to `dir`): one chip
/// of a board ([`crate::board::chip_synth_sources`]).
pub fn synth_sources(dir: &Path, sources: &[String], top: &str) -> Result<SynthResult, ToolError> {
    let script = dir.join("synth").join(format!("{top}.ys"));
    std::fs::create_dir_all(dir.join("synth")).map_err(|e| ToolError::Io {
        path: dir.join("synth").display().to_string(),
        source: e,
    })?;
    std::fs::write(&script, crate::output::yosys_script_of(sources, top)).map_err(|e| {
        ToolError::Io {
            path: script.display().to_string(),
            source: e,
        }
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
        // `check -assert` and the latch selection abort Yosys (an error
        // above) on any problem.
        check_passed: true,
        seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yosys_module_names_are_made_readable() {
        assert_eq!(module_name("$paramod$5a25\\tls_attn"), "tls_attn");
        assert_eq!(
            module_name("$paramod\\tls_attn_shsat\\PW=s32'00000000000000000000000000010101"),
            "tls_attn_shsat PW=21"
        );
        assert_eq!(module_name("taalasc_engine_1"), "taalasc_engine_1");
    }

    #[test]
    fn stat_text_is_parsed_per_module() {
        let text = "=== $paramod$ab\\tls_norm ===\n\n   Number of wires:         12\n   Number of cells:        30\n     $_AND_         20\n     $_OR_          10\n\n=== top ===\n   Number of cells:   3\n     tls_rom   2\n     $_NOT_   1\n\n=== design hierarchy ===\n   Number of cells:   33\n";
        let (m, total) = parse_stat(text);
        assert_eq!(total, Some(33));
        assert_eq!(m["tls_norm"].cells, 30);
        assert_eq!(m["tls_norm"].wires, 12);
        assert_eq!(m["tls_norm"].by_type["$_AND_"], 20);
        assert_eq!(m["top"].by_type["tls_rom"], 2);
    }
}
