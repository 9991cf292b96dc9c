//! `taalasc synth`: Yosys over the compute fabric, macros as blackboxes,
//! then `check -assert` (no multiple drivers, undriven wires or
//! combinational loops) and an assertion that no latch was inferred, and
//! the cell counts per module. With a Liberty library
//! ([`synth_liberty`]): technology mapping onto its cells, area in µm² and
//! NAND2-equivalents and the critical path per module.

pub mod liberty;

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
    /// With a Liberty library: the module's own cell area, µm² (macros,
    /// being blackboxes, count 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area_um2: Option<f64>,
    /// With a Liberty library: `area_um2` over the library's NAND2 area.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nand2_eq: Option<f64>,
    /// With a Liberty library: the longest combinational path of the
    /// module's own logic (ABC `stime`), ns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ns: Option<f64>,
    /// `delay_ns` in FO4 delays of the library.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_fo4: Option<f64>,
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
    /// The Liberty library mapped onto (`--liberty`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub liberty: Option<liberty::Liberty>,
    /// With a Liberty library: cell area of the whole hierarchy, µm².
    #[serde(skip_serializing_if = "Option::is_none")]
    pub area_um2: Option<f64>,
    /// With a Liberty library: `area_um2` in NAND2-equivalents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nand2_eq: Option<f64>,
    /// With a Liberty library: the longest module critical path, ns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_ns: Option<f64>,
    /// `delay_ns` in FO4.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_fo4: Option<f64>,
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
        liberty: None,
        area_um2: None,
        nand2_eq: None,
        delay_ns: None,
        delay_fo4: None,
    })
}

pub use taalasc_partition::budget::N6_FO4_PS_ASSUMED;

/// The clock a critical path of `fo4` FO4 implies at N6, MHz (logic only:
/// no flop overhead, wires or margin), with [`N6_FO4_PS_ASSUMED`].
pub fn n6_clock_mhz(fo4: f64) -> f64 {
    taalasc_partition::budget::clock_mhz(fo4, N6_FO4_PS_ASSUMED)
}

/// The ABC script of the Liberty flow: Yosys' own `-liberty` script
/// without its `dc2` (see below), ABC's delay-oriented `&nf` mapping with
/// area recovery (no delay target), then buffering of high fanout nets and
/// gate sizing (`buffer`, `upsize`, `dnsize`, ABC's defaults), then
/// `stime -p`, which prints the critical path.
///
/// `dc2` is left out because it is an area rewrite that undoes the
/// carry-prefix trees Yosys builds for adders (`$lcu`, Brent–Kung), and
/// every unit's critical path runs through adders. Measured on sky130
/// (RFC 0005, synthesis table): a registered 48-bit adder maps to 6.20 ns
/// with `dc2` and 2.22 ns without (area +4.7 %); `tls_embed` at 256 lanes
/// 11.37 → 6.26 ns (+6 %), `tls_elem` V = 1 10.52 → 7.86 ns (+10 %),
/// `tls_norm` V = 1 15.32 → 10.06 ns (+5 %).
///
/// The SAT sweep is bounded at [`FRAIG_CONFLICTS`] conflicts per node
/// (`&fraig -x -C N`; ABC's default is 1,000,000).
pub fn abc_script() -> String {
    format!(
        "strash\n&get -n\n&fraig -x -C {FRAIG_CONFLICTS}\n&put\nscorr\ndretime\nstrash\n&get -n\n&dch -f\n&nf\n&put\nbuffer\nupsize\ndnsize\nstime -p\n"
    )
}

/// The conflict bound of the SAT sweep of every unit and whole chip
/// ([`synth_unit`], `taalasc synth --liberty`): with ABC's default the
/// sweep of the element-wise unit (its 48 × 48 multiplier) does not finish
/// in reasonable time, and those of the norm and attention take minutes.
///
/// Measured on sky130 with Berkeley ABC from Debian (RFC 0005, synthesis
/// table): on `tls_elem` V = 1 (34,859 AIG nodes) the whole ABC run had
/// not finished after 63 minutes of CPU and `&fraig -x` alone not after 5;
/// with `-C 1000` the sweep takes 41 s and the whole script 47 s. On
/// `tls_norm` V = 1 (41,864 nodes) the bound costs 91 merges: 40,868
/// nodes after the sweep instead of 40,777 (+0.22 %), in 11 s instead
/// of 354 s.
pub const FRAIG_CONFLICTS: u32 = 1000;

/// The Yosys script of the Liberty flow over `sources` (relative to the
/// work folder), `top` with parameters `params` set by `chparam`, mapped
/// onto `lib` (the path Yosys reads). `flatten`: one module (a standalone
/// unit, whose critical path then crosses its submodules).
pub fn liberty_script(
    sources: &[String],
    top: &str,
    params: &[(String, i64)],
    lib: &Path,
    flatten: bool,
) -> String {
    let lib = lib.display();
    let mut s =
        String::from("# Synthesis onto a Liberty library; ROM and SRAM macros are blackboxes.\n");
    s.push_str(&format!("read_liberty -lib {lib}\n"));
    for f in sources {
        s.push_str(&format!("read_verilog -DSYNTHESIS {f}\n"));
    }
    for (k, v) in params {
        s.push_str(&format!("chparam -set {k} {v} {top}\n"));
    }
    s.push_str(&format!(
        "hierarchy -check -top {top}\nsynth -top {top}{}\n\
         # no latches (the only clock gate is the tls_icg cell)\n\
         select -assert-none t:$_DLATCH* t:$dlatch* t:$adlatch*\n\
         dfflibmap -liberty {lib}\n\
         abc -liberty {lib} -script +{}\n\
         opt_clean\n\
         # no multiple drivers, undriven wires or combinational loops\n\
         check -assert\n\
         # every cell is a library cell or a macro\n\
         select -assert-none t:$*\n\
         stat -liberty {lib}\n",
        if flatten { " -flatten" } else { "" },
        abc_script()
            .lines()
            .map(|l| l.replace(' ', ","))
            .collect::<Vec<_>>()
            .join(";")
    ));
    s
}

/// What the Liberty flow's log says beyond `stat`: area per module and
/// for the top, and the critical path (ps) per module from ABC `stime`.
pub fn parse_liberty_log(text: &str) -> LibertyLog {
    let mut out = LibertyLog::default();
    let mut cur: Option<String> = None;
    for l in text.lines() {
        let t = l.trim();
        if let Some(r) = t.split_once("Extracting gate netlist of module `") {
            cur =
                r.1.split_once('\'')
                    .map(|(m, _)| module_name(m.trim_start_matches('\\')));
        } else if let Some(r) = t.strip_prefix("ABC: WireLoad") {
            let d = r
                .split_once("Delay =")
                .and_then(|(_, x)| x.trim_start().split_once(" ps"))
                .and_then(|(x, _)| x.trim().parse::<f64>().ok());
            if let (Some(m), Some(d)) = (&cur, d) {
                out.delay_ps.insert(m.clone(), d);
            }
        } else if let Some(r) = t.strip_prefix("Chip area for module '") {
            if let Some((m, a)) = r.split_once("': ") {
                if let Ok(a) = a.trim().parse::<f64>() {
                    out.area.insert(module_name(m.trim_start_matches('\\')), a);
                }
            }
        } else if let Some(r) = t.strip_prefix("Chip area for top module '") {
            if let Some((_, a)) = r.split_once("': ") {
                out.top_area = a.trim().parse::<f64>().ok();
            }
        }
    }
    out
}

/// See [`parse_liberty_log`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LibertyLog {
    /// Cell area per module (its own cells), µm².
    pub area: BTreeMap<String, f64>,
    /// Area of the whole hierarchy under the top, when Yosys prints it.
    pub top_area: Option<f64>,
    /// Critical path per module, ps.
    pub delay_ps: BTreeMap<String, f64>,
}

/// Synthesizes `top` from `sources` (relative to `dir`) onto the library
/// `lib` ([`liberty::load`]) in `dir/synth`; `params` override `top`'s
/// parameters.
pub fn synth_liberty(
    dir: &Path,
    sources: &[String],
    top: &str,
    params: &[(String, i64)],
    lib: &liberty::Liberty,
    flatten: bool,
) -> Result<SynthResult, ToolError> {
    let sdir = dir.join("synth");
    let io = |p: &Path, e: std::io::Error| ToolError::Io {
        path: p.display().to_string(),
        source: e,
    };
    std::fs::create_dir_all(&sdir).map_err(|e| io(&sdir, e))?;
    let stem = format!("{top}.liberty");
    let script = sdir.join(format!("{stem}.ys"));
    // Sources are relative to `dir`; the library path is made absolute.
    let libpath = std::fs::canonicalize(&lib.path).map_err(|e| io(&lib.path, e))?;
    let text = liberty_script(sources, top, params, &libpath, flatten);
    let logp = sdir.join(format!("{stem}.log"));
    // A finished run of the same script in the same folder, whose sources
    // and library are older than its log, is reused: wide units take many
    // minutes. (Writers use [`write_if_changed`], so unchanged files keep
    // their times.)
    let done = |t: &str| t.contains("Chip area for module") && t.contains("End of script");
    let reuse = std::fs::read_to_string(&script).is_ok_and(|old| old == text)
        && std::fs::read_to_string(&logp).is_ok_and(|t| done(&t))
        && std::fs::metadata(&logp)
            .and_then(|m| m.modified())
            .ok()
            .zip(
                sources
                    .iter()
                    .map(|f| dir.join(f))
                    .chain(std::iter::once(libpath.clone()))
                    .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
                    .collect::<Option<Vec<_>>>(),
            )
            .is_some_and(|(log, srcs)| srcs.iter().all(|s| *s <= log));
    let t0 = std::time::Instant::now();
    if !reuse {
        std::fs::write(&script, &text).map_err(|e| io(&script, e))?;
        run(
            dir,
            "yosys",
            &[
                "-q".into(),
                "-l".into(),
                format!("synth/{stem}.log"),
                "-s".into(),
                format!("synth/{stem}.ys"),
            ],
        )?;
    }
    let seconds = t0.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&logp).map_err(|e| io(&logp, e))?;
    let (mut modules, total) = parse_stat(&text);
    let lg = parse_liberty_log(&text);
    let n2 = lib.nand2_area_um2;
    for (m, c) in modules.iter_mut() {
        if let Some(&a) = lg.area.get(m) {
            c.area_um2 = Some(a);
            c.nand2_eq = Some(a / n2);
        }
        if let Some(&d) = lg.delay_ps.get(m) {
            c.delay_ns = Some(d / 1000.0);
            c.delay_fo4 = Some(d / 1000.0 / lib.fo4_ns);
        }
    }
    // Yosys prints per-module areas; the top's hierarchy total is the sum
    // over instances, which `stat` prints as the top's area when flat.
    let area = lg
        .top_area
        .or_else(|| lg.area.get(&module_name(top)).copied());
    let delay = modules
        .values()
        .filter_map(|c| c.delay_ns)
        .fold(None, |a: Option<f64>, d| Some(a.map_or(d, |a| a.max(d))));
    let total_cells = total.unwrap_or_else(|| modules.get(top).map_or(0, |m| m.cells));
    Ok(SynthResult {
        top: top.into(),
        modules,
        total_cells,
        check_passed: true,
        seconds,
        liberty: Some(lib.clone()),
        area_um2: area,
        nand2_eq: area.map(|a| a / n2),
        delay_ns: delay,
        delay_fo4: delay.map(|d| d / lib.fo4_ns),
    })
}

/// Writes `data` to `path` unless it already holds exactly that.
pub fn write_if_changed(path: &Path, data: &[u8]) -> std::io::Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == data) {
        return Ok(());
    }
    std::fs::write(path, data)
}

/// The RTL file of a hand-written unit (`tls_matvec` -> its text), from
/// the library embedded in the binary.
pub fn unit_source(unit: &str) -> Option<(&'static str, &'static str)> {
    if unit == "tls_link" {
        return Some(("tls_link.v", crate::board::TLS_LINK));
    }
    if matches!(unit, "tls_out" | "tls_widen") {
        return crate::output::LIBRARY
            .iter()
            .find(|(f, _)| *f == "tls_lib.v")
            .copied();
    }
    crate::output::LIBRARY
        .iter()
        .skip(1)
        .find(|(f, _)| f.strip_suffix(".v") == Some(unit))
        .copied()
}

/// Synthesizes one unit standalone onto `lib`, flattened, in `work`:
/// the blackbox macros, `tls_lib.v`, the unit's file (or, for a unit not in
/// the library, the `extra` Verilog files, given as `(name, text)`), with
/// `params` set.
pub fn synth_unit(
    work: &Path,
    unit: &str,
    params: &[(String, i64)],
    extra: &[(String, String)],
    lib: &liberty::Liberty,
) -> Result<SynthResult, ToolError> {
    let rtl = work.join("rtl");
    let io = |p: &Path, e: std::io::Error| ToolError::Io {
        path: p.display().to_string(),
        source: e,
    };
    std::fs::create_dir_all(&rtl).map_err(|e| io(&rtl, e))?;
    let mut files: Vec<(String, String)> = vec![
        (
            crate::output::MACROS_BB.0.to_string(),
            crate::output::MACROS_BB.1.to_string(),
        ),
        unit_source("tls_out")
            .map(|(f, t)| (f.to_string(), t.to_string()))
            .expect("tls_lib.v is in the library"),
    ];
    if let Some((f, t)) = unit_source(unit) {
        if f != "tls_lib.v" {
            files.push((f.to_string(), t.to_string()));
        }
    }
    files.extend(extra.iter().cloned());
    let mut sources = Vec::new();
    for (f, t) in &files {
        let p = rtl.join(f);
        write_if_changed(&p, t.as_bytes()).map_err(|e| io(&p, e))?;
        sources.push(format!("rtl/{f}"));
    }
    synth_liberty(work, &sources, unit, params, lib, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sat_sweep_is_bounded_and_there_is_no_dc2() {
        let lib = Path::new("/l.lib");
        let srcs = ["rtl/a.v".to_string()];
        let bounded = liberty_script(&srcs, "tls_elem", &[], lib, true);
        assert!(
            bounded.contains("&get,-n;&fraig,-x,-C,1000;&put;"),
            "{bounded}"
        );
        // No area rewrite between the sweep and the mapping: `dc2` turns
        // the adders' carry trees into chains (see `abc_script`).
        assert!(bounded.contains("&put;scorr;dretime;strash;"), "{bounded}");
        assert!(!bounded.contains("dc2"), "{bounded}");
    }

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
