//! The RTL output folder (written inside a chip image folder):
//!
//! ```text
//! rtl/*.v            units (hand-written), engines and chip top (generated)
//! rtl/tls_macros_bb.v  blackbox macros, for synthesis only
//! rom/*.hex          weight, gain, bias and RoPE ROM images; rom/tables/*.hex
//! taalasc.f          Verilator/simulator filelist
//! harness/main.cpp   Verilator C++ harness (`taalasc sim`)
//! synth/synth.ys     Yosys script (`taalasc synth`)
//! taalasc.core       FuseSoC CAPI2 core
//! ```
//!
//! The caller writes into a temporary folder and renames it (atomic); this
//! module only fills a folder. Every file is a pure function of the plan
//! and the image, so two builds give identical bytes.

use crate::emit::{chip_module, engine_module};
use crate::plan::Plan;
use crate::roms::for_each_rom;
use std::path::Path;
use taalasc_reference::image::ChipImage;

/// The hand-written RTL library, embedded in the binary: `(file, text)`.
/// Simulation order: macros first.
pub const LIBRARY: &[(&str, &str)] = &[
    ("tls_macros.v", include_str!("../rtl/tls_macros.v")),
    ("tls_lib.v", include_str!("../rtl/tls_lib.v")),
    ("tls_matvec.v", include_str!("../rtl/tls_matvec.v")),
    ("tls_embed.v", include_str!("../rtl/tls_embed.v")),
    ("tls_norm.v", include_str!("../rtl/tls_norm.v")),
    ("tls_elem.v", include_str!("../rtl/tls_elem.v")),
    ("tls_rope.v", include_str!("../rtl/tls_rope.v")),
    ("tls_attn.v", include_str!("../rtl/tls_attn.v")),
];

/// Blackbox macros for synthesis.
pub const MACROS_BB: (&str, &str) = ("tls_macros_bb.v", include_str!("../rtl/tls_macros_bb.v"));

/// The Verilator harness.
pub const HARNESS: &str = include_str!("../harness/main.cpp");

/// Top module of every chip.
pub const TOP: &str = "taalasc_chip";

fn write(dir: &Path, rel: &str, text: &str) -> std::io::Result<()> {
    let p = dir.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&p, text)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", p.display())))
}

/// Generated RTL files of the plan, in filelist order: `(rel path, text)`.
pub fn generated(plan: &Plan) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = plan
        .engines
        .iter()
        .map(|e| {
            (
                format!("rtl/taalasc_engine_{}.v", e.index),
                engine_module(plan, e),
            )
        })
        .collect();
    v.push((format!("rtl/{TOP}.v"), chip_module(plan)));
    v
}

/// Simulation sources, relative to the output folder, in order.
pub fn sim_sources(plan: &Plan) -> Vec<String> {
    LIBRARY
        .iter()
        .map(|(f, _)| format!("rtl/{f}"))
        .chain(generated_names(plan))
        .collect()
}

fn generated_names(plan: &Plan) -> Vec<String> {
    plan.engines
        .iter()
        .map(|e| format!("rtl/taalasc_engine_{}.v", e.index))
        .chain(std::iter::once(format!("rtl/{TOP}.v")))
        .collect()
}

/// Synthesis sources: blackbox macros instead of the behavioral ones.
pub fn synth_sources(plan: &Plan) -> Vec<String> {
    std::iter::once(format!("rtl/{}", MACROS_BB.0))
        .chain(LIBRARY.iter().skip(1).map(|(f, _)| format!("rtl/{f}")))
        .chain(generated_names(plan))
        .collect()
}

/// The Yosys script for `top` (the chip, or one engine module).
pub fn yosys_script(plan: &Plan, top: &str) -> String {
    let mut s = String::from(
        "# Synthesis of the compute fabric; ROM and SRAM macros are blackboxes\n# (their area comes from the macro model in manifest.json).\n",
    );
    for f in synth_sources(plan) {
        s.push_str(&format!("read_verilog -DSYNTHESIS {f}\n"));
    }
    s.push_str(&format!(
        "hierarchy -check -top {top}\nsynth -top {top}\n# no multiple drivers, undriven wires or combinational loops\ncheck -assert\n# no latches (the only clock gate is the tls_icg cell)\nselect -assert-none t:$_DLATCH* t:$dlatch* t:$adlatch*\nstat\n"
    ));
    s
}

/// The FuseSoC CAPI2 core description.
pub fn core_file(plan: &Plan, name: &str) -> String {
    let mut s = format!(
        "CAPI=2:\nname: taalasc:chip:{}:0.1.0\ndescription: taalasc chip ({} engines, {} lanes); weights in $readmemh ROM macros\n\nfilesets:\n  rtl:\n    file_type: verilogSource\n    files:\n",
        crate::plan::file_name(name).to_lowercase(),
        plan.engines.len(),
        plan.lanes
    );
    for f in sim_sources(plan) {
        s.push_str(&format!("      - {f}\n"));
    }
    s.push_str("  synth_macros:\n    file_type: verilogSource\n    files:\n");
    s.push_str(&format!("      - rtl/{}\n", MACROS_BB.0));
    s.push_str("  roms:\n    file_type: user\n    files:\n");
    for e in &plan.engines {
        for f in e.mats.iter().map(|m| &m.file).chain(
            e.gains
                .iter()
                .chain(&e.biases)
                .chain(&e.ropes)
                .map(|v| &v.file),
        ) {
            s.push_str(&format!("      - rom/{f}: {{copyto: rom/{f}}}\n"));
        }
    }
    for t in crate::tables::table_roms() {
        s.push_str(&format!(
            "      - rom/tables/{0}: {{copyto: rom/tables/{0}}}\n",
            t.file
        ));
    }
    s.push_str("  harness:\n    file_type: cppSource\n    files:\n      - harness/main.cpp\n\n");
    s.push_str(&format!(
        "targets:\n  default:\n    filesets: [rtl]\n    toplevel: {TOP}\n  lint:\n    default_tool: verilator\n    filesets: [rtl]\n    toplevel: {TOP}\n    tools:\n      verilator:\n        mode: lint-only\n        verilator_options: [-Wall, -Wno-DECLFILENAME]\n  sim:\n    default_tool: verilator\n    filesets: [rtl, roms, harness]\n    toplevel: {TOP}\n    tools:\n      verilator:\n        mode: cc\n        verilator_options: [-O2]\n"
    ));
    s
}

/// Writes the RTL folder contents of `plan` into `dir`.
pub fn write_rtl(dir: &Path, image: &ChipImage, plan: &Plan, name: &str) -> std::io::Result<()> {
    for (f, text) in LIBRARY.iter().chain(std::iter::once(&MACROS_BB)) {
        write(dir, &format!("rtl/{f}"), text)?;
    }
    for (rel, text) in generated(plan) {
        write(dir, &rel, &text)?;
    }
    std::fs::create_dir_all(dir.join("rom/tables"))?;
    crate::tables::write_tables(&dir.join("rom/tables"))?;
    for_each_rom(image, plan, |file, text| {
        write(dir, &format!("rom/{file}"), &text)
    })?;
    let list: String = sim_sources(plan).iter().map(|f| format!("{f}\n")).collect();
    write(dir, "taalasc.f", &list)?;
    write(dir, "harness/main.cpp", HARNESS)?;
    write(dir, "synth/synth.ys", &yosys_script(plan, TOP))?;
    write(dir, "taalasc.core", &core_file(plan, name))?;
    Ok(())
}
