//! The Verilog backend (RFC 0003): emits the chip's RTL from a chip image,
//! with weights in ROM macros and the KV cache in SRAM macros, and drives
//! Verilator and Yosys over it.
//!
//! Module order (no edge goes back): `plan` (lowering, legalization, the
//! plan's text form; reads only the `tables` data) is read by every other
//! module; `vlog` (the shared Verilog writer and the chip's ports) by the
//! printers `emit` (engines), `chip` (chip tops) and `board`; `output`,
//! `roms`, `cost`, `perf`, `sim` and `synth` read the plan and the printers.

#![warn(missing_docs)]

pub mod board;
pub mod chip;
pub mod cost;
pub mod emit;
pub mod flow;
pub mod output;
pub mod perf;
pub mod plan;
pub mod roms;
pub mod tables;
pub mod tools;
pub mod vlog;

pub use plan::{plan, MacroBits, Plan, PlanError};
use serde::{Deserialize, Serialize};
pub mod sim;
pub mod synth;

/// Clock the microarchitecture targets (RFC 0003): every unit is pipelined
/// so that one multiply, one shift and one add sit between registers.
pub const TARGET_CLOCK_MHZ: f64 = 1000.0;

/// The `hardware` section of a chip's `manifest.json`: the plan (engines,
/// programs, memory map, schedule), the macro bit counts and the RTL files.
/// Fields print in declaration order (the manifest's key order).
///
/// `P` is the plan: a [`Plan`] when written, any JSON when read back
/// ([`RecordedHardware`]: the driver re-plans from the image and compares).
/// `S` is the system view the driver adds for a multi-chip build.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HardwareManifest<P = Plan, S = serde_json::Value> {
    /// Top module of the simulation (the chip, or the board).
    pub top: String,
    /// MAC lanes per row of every matrix-vector unit.
    pub lanes: usize,
    /// Rows per cycle of every matrix-vector unit (1 when absent: a
    /// manifest written before `--rows`).
    #[serde(default = "one_row")]
    pub rows: usize,
    /// User slots.
    pub users: usize,
    /// The clock the design targets, MHz.
    pub target_clock_mhz: f64,
    /// KV-cache positions per user.
    pub context: usize,
    /// Bits of every memory macro kind.
    pub macro_bits: MacroBits,
    /// The simulation filelist, relative to the image folder.
    pub filelist: String,
    /// Simulation sources, relative to the image folder, in order.
    pub rtl_files: Vec<String>,
    /// The Yosys script (one chip), or one per chip of a board.
    pub synth_script: SynthScripts,
    /// The FuseSoC core (`null` for a board).
    pub core: Option<String>,
    /// The Verilator harness.
    pub harness: String,
    /// The hardware plan.
    pub plan: P,
    /// The system view of a build with a chip budget (partition and
    /// board), which the driver adds after the fields above.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<S>,
}

fn one_row() -> usize {
    1
}

/// The Yosys script of a chip, or one per chip of a board.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SynthScripts {
    /// The script of a single-chip build (path relative to the output
    /// folder).
    One(String),
    /// One script per chip of a board, in chip order.
    PerChip(Vec<String>),
}

/// The `hardware` section as read back from a `manifest.json`: the plan
/// stays JSON.
pub type RecordedHardware = HardwareManifest<serde_json::Value>;

impl RecordedHardware {
    /// Reads the `hardware` section of a parsed `manifest.json`; `None`
    /// when the image was built without RTL.
    pub fn from_manifest(
        manifest: &serde_json::Value,
    ) -> Option<Result<RecordedHardware, serde_json::Error>> {
        manifest
            .get("hardware")
            .map(|hw| serde_json::from_value(hw.clone()))
    }
}

/// The `hardware` section of a build, typed; `board` is the board of
/// chips when the build is cut across chips (RFC 0004): then the top,
/// filelist, sources and harness are the board's (paths relative to the
/// image folder), and each chip has its own Yosys script.
pub fn hardware_manifest(
    plan: &Plan,
    board: Option<&board::Board>,
) -> Result<HardwareManifest, String> {
    let mut m = HardwareManifest {
        top: output::TOP.into(),
        lanes: plan.lanes,
        rows: plan.rows,
        users: plan.users,
        target_clock_mhz: TARGET_CLOCK_MHZ,
        context: plan.context,
        macro_bits: plan.macro_bits(),
        filelist: "taalasc.f".into(),
        rtl_files: output::sim_sources(plan),
        synth_script: SynthScripts::One("synth/synth.ys".into()),
        core: Some("taalasc.core".into()),
        harness: "harness/main.cpp".into(),
        plan: plan.clone(),
        system: None,
    };
    if let Some(b) = board {
        m.top = board::BOARD_TOP.into();
        m.filelist = "board/taalasc.f".into();
        m.rtl_files = board::board_sources(plan, b)?
            .into_iter()
            .map(|f| match f.strip_prefix("../") {
                Some(chip) => chip.to_string(),
                None => format!("board/{f}"),
            })
            .collect();
        m.synth_script = SynthScripts::PerChip(
            (0..b.cuts.len() - 1)
                .map(|k| format!("chip{k}/synth/synth.ys"))
                .collect(),
        );
        m.core = None;
        m.harness = "board/harness/main.cpp".into();
    }
    Ok(m)
}

/// [`hardware_manifest`] as JSON (the `hardware` value of `manifest.json`).
pub fn manifest_for(
    plan: &Plan,
    board: Option<&board::Board>,
) -> Result<serde_json::Value, String> {
    let m = hardware_manifest(plan, board)?;
    Ok(serde_json::to_value(&m).expect("a manifest is JSON"))
}

/// [`manifest_for`] of a single chip.
pub fn manifest(plan: &Plan) -> serde_json::Value {
    manifest_for(plan, None).expect("a single chip has no board to check")
}
