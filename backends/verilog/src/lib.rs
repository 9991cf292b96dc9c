//! The Verilog backend (RFC 0003): emits the chip's RTL from a chip image,
//! with weights in ROM macros and the KV cache in SRAM macros, and drives
//! Verilator and Yosys over it.

pub mod board;
pub mod chip;
pub mod cost;
pub mod emit;
pub mod output;
pub mod plan;
pub mod roms;
pub mod tables;
pub mod tools;

pub use plan::{plan, Plan, PlanError};
pub mod sim;
pub mod synth;

/// Clock the microarchitecture targets (RFC 0003): every unit is pipelined
/// so that one multiply, one shift and one add sit between registers.
pub const TARGET_CLOCK_MHZ: f64 = 1000.0;

/// The `hardware` section of a chip's `manifest.json`: the plan (engines,
/// programs, memory map, schedule), the macro bit counts and the RTL files.
/// [`manifest`] of a build that is a board of chips (RFC 0004): the top,
/// filelist, sources and harness are the board's (paths relative to the
/// image folder), and each chip has its own Yosys script.
pub fn manifest_for(
    plan: &Plan,
    board: Option<&board::Board>,
) -> Result<serde_json::Value, String> {
    let Some(b) = board else {
        return Ok(manifest(plan));
    };
    let files: Vec<String> = board::board_sources(plan, b)?
        .into_iter()
        .map(|f| match f.strip_prefix("../") {
            Some(chip) => chip.to_string(),
            None => format!("board/{f}"),
        })
        .collect();
    let chips = b.cuts.len() - 1;
    let mut m = manifest(plan);
    m["top"] = board::BOARD_TOP.into();
    m["filelist"] = "board/taalasc.f".into();
    m["rtl_files"] = files.into();
    m["synth_script"] = (0..chips)
        .map(|k| format!("chip{k}/synth/synth.ys"))
        .collect::<Vec<_>>()
        .into();
    m["core"] = serde_json::Value::Null;
    m["harness"] = "board/harness/main.cpp".into();
    Ok(m)
}

pub fn manifest(plan: &Plan) -> serde_json::Value {
    serde_json::json!({
        "top": output::TOP,
        "lanes": plan.lanes,
        "users": plan.users,
        "target_clock_mhz": TARGET_CLOCK_MHZ,
        "context": plan.context,
        "macro_bits": plan.macro_bits(),
        "filelist": "taalasc.f",
        "rtl_files": output::sim_sources(plan),
        "synth_script": "synth/synth.ys",
        "core": "taalasc.core",
        "harness": "harness/main.cpp",
        "plan": plan,
    })
}
pub mod perf;
