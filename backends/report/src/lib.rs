//! The system report (RFC 0004, "The report"): from a build's stage costs,
//! its partition across chips and the chip budget, every figure a reader
//! asks of a model-on-silicon system: area per chip, link traffic, speed
//! per user and in aggregate, the context and users that fit, energy and
//! cost per token, and the quality the bits cost.
//!
//! - [`compute`] derives the figures ([`SystemReport`], which is
//!   `report.json`);
//! - [`render_html`] draws them as one self-contained page (inline CSS and
//!   SVG, no scripts, no external URLs);
//! - [`write`](fn@write) writes both files atomically.
//!
//! Same input, byte-identical output: every number in the HTML is printed
//! with a fixed rule, and nothing depends on time, locale or hash order.
//!
//! # Formulas
//!
//! With `f` the clock (`budget.clock_mhz · 10⁶` Hz), `c_i` the cycles of
//! stage `i`, `b_j`/`l_j` the busy and latency cycles of link `j`, `S` the
//! user slots and `n` the number of stages:
//!
//! - latency per token `L = Σ c_i + Σ (b_j + l_j)` (predicted);
//! - throughput bound `B = max(max c_i, max b_j)`;
//! - cycles per token at `S` users `P = max(B, L / min(S, n))`: at most
//!   `min(S, n)` tokens are in flight (one per user, one per stage);
//! - tokens/s per user alone `f / L`; aggregate at `S` users `f / P`; per
//!   user at `S` users `f / (P·S)`; users in flight `L / P`;
//! - free KV bits of a chip `K = (die − ROM − logic − fixed SRAM) ·
//!   sram density`; with `k` its KV bits per position and user, max context
//!   at `S` users `min over chips ⌊K / (S·k)⌋`, max users at context `T`
//!   `min over chips ⌊K / (T·k)⌋` (chips with `k = 0` do not limit);
//! - energy per token `E = Σ_i (MACs·E_mac + ROM bits·E_rom + SRAM bits·E_sram)`
//!   `+ link bits·E_link + W_static / (f / P)`, with the static power
//!   `W_static = static_w_per_mm2 · Σ chip area in use`; system power
//!   `E · f / P`;
//! - cost per million tokens `(chips · chip_usd / (years · 365 · 86400 s)`
//!   `+ power · USD per kWh / 3.6·10⁶ J) / (f / P) · 10⁶`: the hardware
//!   written off over `amortization_years` at 100% utilization; every chip
//!   costs a whole die of `die_mm2`.

#![warn(missing_docs)]

pub mod curves;
mod fmt;
pub mod gpu;
mod html;
mod html_compare;
mod html_table;
mod svg;

pub use curves::{AreaSplit, ContextStages, Curves};
pub use gpu::{ComparisonRow, GpuBaseline};
pub use html::render_html;

use serde::{Deserialize, Serialize};
use std::path::Path;
use taalasc_partition::{Budget, ClockEvidence, Partition, StageCost};

/// What the CLI knows about a build.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReportInput {
    /// Display name or source path of the model.
    pub model: String,
    /// Architecture as the source names it (`LlamaForCausalLM`, `llama`, ...).
    pub architecture: String,
    /// Weight elements in the model, as the build counted them.
    pub params: u64,
    /// All stored weight bits (report.json `total_bits`).
    pub weight_bits: u64,
    /// Average stored bits per weight, scales and offsets included.
    pub bits_per_weight: f64,
    /// Weight codes each matrix engine reads from ROM per cycle (RFC 0003
    /// `--lanes`: a power of two, 1 to 256).
    pub lanes: usize,
    /// User slots `S` built into each chip.
    pub users: usize,
    /// Positions per user `T` built into each chip.
    pub context: usize,
    /// The chip budget the build was partitioned against.
    pub budget: Budget,
    /// Per-token costs of every pipeline stage, in pipeline order.
    pub stages: Vec<StageCost>,
    /// The split of `stages` into chips, with its links.
    pub partition: Partition,
    /// From an RTL simulation, when one was run.
    pub measured: Option<Measured>,
    /// From `eval`, when an evaluation text was given.
    pub quality: Option<Quality>,
    /// One point per bit setting; may be empty.
    pub quality_vs_area: Vec<QualityPoint>,
    /// The same build partitioned again at other mask-ROM densities (the
    /// budget's least certain figure); may be empty.
    #[serde(default)]
    pub rom_density_sensitivity: Vec<Sensitivity>,
    /// Stage costs at the last position of each context of
    /// [`curves::CONTEXTS`] (for the curves over context); may be empty.
    #[serde(default)]
    pub context_points: Vec<ContextStages>,
    /// Weights read per decoded token (the linear layers; one row of the
    /// embedding table). 0: unknown, `params` is used.
    #[serde(default)]
    pub weights_per_token: u64,
    /// K and V values per position and user, all layers (for the GPU
    /// baseline's KV bytes).
    #[serde(default)]
    pub kv_values_per_position: u64,
    /// Attention multiply-accumulates per token per cached position, all
    /// layers (`2·heads·head_dim` per layer).
    #[serde(default)]
    pub attn_macs_per_position: u64,
    /// The longest synthesized critical path among the design's units and
    /// the clock it allows at the budget's node; `None` when the budget
    /// has no FO4 figure or no unit was synthesized.
    #[serde(default)]
    pub clock_evidence: Option<ClockEvidence>,
}

/// The system at one mask-ROM density, everything else as built.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sensitivity {
    /// The mask-ROM density tried, Mbit per mm².
    pub rom_mbit_per_mm2: f64,
    /// Chips the build needs at that density.
    pub chips: usize,
    /// At the built users; `None` when no chip holds a KV cache.
    pub max_context_at_users: Option<u64>,
    /// `f / L`, one user alone.
    pub tokens_per_s_per_user: f64,
    /// `f / P` at the built users.
    pub aggregate_tokens_per_s: f64,
    /// Total energy per token, J.
    pub energy_per_token_j: f64,
    /// Cost per million tokens, USD.
    pub usd_per_mtoken: f64,
}

/// Timing measured by `taalasc sim`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// Users simulated.
    pub users: usize,
    /// Cycles from a token entering the chip to its logits, per token.
    pub latency_cycles_per_token: f64,
    /// Cycles between successive tokens leaving the chip with `users` users.
    pub throughput_cycles_per_token: f64,
    /// Whether the simulated RTL matched the expected outputs bit for bit.
    pub bit_exact: bool,
    /// Positions simulated.
    pub positions: usize,
    /// The command that measured it.
    pub command: String,
}

/// Quality from `taalasc eval`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    /// The evaluation text (path).
    pub text: String,
    /// Tokens whose next-token prediction was scored.
    pub tokens_scored: usize,
    /// Perplexity of the chip's (bit-exact reference) predictions.
    pub ppl: f64,
    /// Perplexity of the float model on the same tokens.
    pub float_ppl: f64,
    /// Mean KL(float ‖ chip), nats.
    pub kl: f64,
    /// Agreement with the float model's argmax, a fraction.
    pub top1: f64,
}

/// One bit setting of a quality-versus-area sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QualityPoint {
    /// The setting's name: the `--sweep` weight format (`a4g32`, `s8g32`, ...).
    pub label: String,
    /// Average stored bits per weight at this setting.
    pub bits_per_weight: f64,
    /// Mask-ROM at this setting (weights, vectors and tables, all stages),
    /// Mbit (10⁶ bits).
    pub rom_mbit: f64,
    /// Total silicon for the model at this setting, mm².
    pub area_mm2: f64,
    /// Chips the setting needs.
    pub chips: usize,
    /// Perplexity on the evaluation text.
    pub ppl: f64,
    /// Mean KL(float ‖ chip), nats.
    pub kl: f64,
    /// A fraction.
    pub top1: f64,
}

/// report.json: the input and every derived figure.
#[derive(Clone, Debug, Serialize)]
pub struct SystemReport {
    /// `taalasc-report/1`.
    pub schema: String,
    /// Everything the report was derived from, as given.
    pub input: ReportInput,
    /// One entry per chip, in chain order.
    pub chips: Vec<ChipReport>,
    /// One entry per pipeline stage, in order.
    pub stages: Vec<StageReport>,
    /// One entry per chip-to-chip link, in chain order.
    pub links: Vec<LinkReport>,
    /// Σ link bits per token over every link.
    pub link_bits_per_token: u64,
    /// `link_bits_per_token / 8`.
    pub link_bytes_per_token: f64,
    /// Latency, throughput and users, predicted (and measured if given).
    pub timing: Timing,
    /// Context and users the free SRAM holds.
    pub memory: MemoryFit,
    /// Energy per token and its parts.
    pub energy: EnergyReport,
    /// Cost per token and its parts.
    pub cost: CostReport,
    /// Every budget figure with its source, then the report's own modelling
    /// rules (`report.*`).
    pub assumptions: Vec<Assumption>,
    /// Speed and energy over context and over users in flight.
    pub curves: Curves,
    /// Area per chip by kind (ROM, KV SRAM, other SRAM, logic), with each
    /// density's source; ROM at 100 and at 50 Mbit/mm² as well.
    pub area_split: AreaSplit,
    /// An H100/H200 serving the same model, batch 1 to 256 (roofline).
    pub gpu_baseline: GpuBaseline,
    /// This system beside HC1, HNLPU and the GPUs, each row labelled.
    pub comparison: Vec<ComparisonRow>,
}

/// One chip: its stages, area, memory headroom, cost and power.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChipReport {
    /// Position in the chain, from 0.
    pub index: usize,
    /// Stages `first..end`.
    pub first: usize,
    /// One past its last stage (stages `first..end`).
    pub end: usize,
    /// Names of its stages, in order.
    pub stage_names: Vec<String>,
    /// Mask-ROM area, mm².
    pub rom_mm2: f64,
    /// SRAM area (KV cache at the built users and context, and scratchpad), mm².
    pub sram_mm2: f64,
    /// Logic area, mm².
    pub logic_mm2: f64,
    /// `rom_mm2 + sram_mm2 + logic_mm2`.
    pub area_mm2: f64,
    /// The budget's die area, mm² (every chip is a whole die).
    pub die_mm2: f64,
    /// `die − area`.
    pub free_mm2: f64,
    /// `area / die`.
    pub utilization: f64,
    /// `economics.chip_usd(die_mm2)`: a die is the whole budget area.
    pub chip_usd: f64,
    /// At the predicted aggregate throughput: its stages' and outgoing
    /// link's energy per token times tokens/s, plus its static power.
    pub power_w: f64,
    /// `static_w_per_mm2 · area_mm2`, W.
    pub static_w: f64,
    /// Σ `fixed_sram_bits` of its stages.
    pub fixed_sram_bits: u64,
    /// Σ `kv_bits_per_position` of its stages (one position, one user).
    pub kv_bits_per_position: u64,
    /// `die − ROM − logic − fixed SRAM`, mm².
    pub kv_free_mm2: f64,
    /// `⌊kv_free_mm2 · sram density⌋` bits.
    pub kv_free_bits: u64,
    /// SRAM the built `users × context` KV cache takes, mm².
    pub kv_built_mm2: f64,
    /// `⌊kv_free_bits / (S·k)⌋`; `None` when the chip holds no KV cache.
    pub max_context_at_users: Option<u64>,
    /// `⌊kv_free_bits / (T·k)⌋`; `None` when the chip holds no KV cache.
    pub max_users_at_context: Option<u64>,
}

/// One pipeline stage.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageReport {
    /// Position in the pipeline, from 0.
    pub index: usize,
    /// `embed`, `layer 3`, `head`.
    pub name: String,
    /// The chip that holds it (`None` if the partition does not cover it).
    pub chip: Option<usize>,
    /// Cycles per token.
    pub cycles: u64,
    /// Multiply-accumulates per token.
    pub macs: u64,
    /// Mask-ROM bits read per token.
    pub rom_read_bits: u64,
    /// SRAM bits read and written per token.
    pub sram_access_bits: u64,
    /// Dynamic energy per token, J.
    pub energy_j: f64,
}

/// One chip-to-chip link.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LinkReport {
    /// Index of the stage the link follows.
    pub after_stage: usize,
    /// Name of that stage.
    pub after_stage_name: String,
    /// The chip that sends (holds `after_stage`).
    pub from_chip: Option<usize>,
    /// The chip that receives (holds `after_stage + 1`).
    pub to_chip: Option<usize>,
    /// Bits sent per token, header included.
    pub bits_per_token: u64,
    /// `bits_per_token / 8`.
    pub bytes_per_token: f64,
    /// Cycles the link is busy per token (sets the throughput bound if it is
    /// the slowest part).
    pub busy_cycles: u64,
    /// Cycles a token additionally waits in flight; adds to latency, not to
    /// the throughput bound.
    pub latency_cycles: u64,
    /// `bits_per_token · link_pj_per_bit`, J.
    pub energy_j: f64,
}

/// Speed, predicted from the cycle model and, when given, measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Timing {
    /// `f` in MHz (the budget's clock).
    pub clock_mhz: f64,
    /// `S`, the user slots built in.
    pub users: usize,
    /// `n`, the pipeline stages.
    pub stages: usize,
    /// Σ stage cycles.
    pub stage_cycles: u64,
    /// Σ (link busy + latency).
    pub link_cycles: u64,
    /// `L`, predicted latency per token, cycles.
    pub latency_cycles: u64,
    /// `B = max(slowest stage, slowest link busy)`.
    pub throughput_bound_cycles: u64,
    /// What sets `B`: `stage NAME` or `link after NAME`.
    pub bound_by: String,
    /// `min(S, n)`.
    pub max_tokens_in_flight: usize,
    /// `P = max(B, L / min(S, n))`.
    pub cycles_per_token: f64,
    /// `f / L`: one user alone.
    pub tokens_per_s_per_user: f64,
    /// `f / (P·S)`: each of `S` busy users.
    pub tokens_per_s_per_user_at_users: f64,
    /// `f / P`.
    pub aggregate_tokens_per_s: f64,
    /// `f / B`: with enough users.
    pub peak_aggregate_tokens_per_s: f64,
    /// `L / P`.
    pub users_in_flight: f64,
    /// `L / B`: users needed to reach the bound.
    pub users_to_saturate: f64,
    /// Which figures the energy and cost use.
    pub basis: String,
    /// The simulation's figures beside the prediction, when one was run.
    pub measured: Option<MeasuredTiming>,
    /// What the synthesized units say about `clock_mhz`, when known.
    pub clock_check: Option<ClockCheck>,
}

/// The budget's clock against the one the synthesized critical path allows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClockCheck {
    /// The evidence: unit, path, library, the node's FO4 figure.
    pub evidence: ClockEvidence,
    /// `1 / (crit FO4 · node FO4)`, MHz: logic only (no flop overhead,
    /// wires or margin), so an upper bound on the clock.
    pub max_clock_mhz: f64,
    /// `clock_mhz ≤ max_clock_mhz`.
    pub budget_clock_met: bool,
    /// `min(clock, max clock) / L`: one user alone at the clock the path
    /// allows.
    pub tokens_per_s_per_user_at_max_clock: f64,
}

/// Measured timing beside the prediction at the same user count.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MeasuredTiming {
    /// Users simulated.
    pub users: usize,
    /// Measured cycles from a token entering to its logits.
    pub latency_cycles_per_token: f64,
    /// Measured cycles between successive tokens leaving.
    pub throughput_cycles_per_token: f64,
    /// `f / measured latency`.
    pub tokens_per_s_per_user: f64,
    /// `f / measured throughput`.
    pub aggregate_tokens_per_s: f64,
    /// `measured latency / measured throughput`.
    pub users_in_flight: f64,
    /// The prediction `P` at the measured user count.
    pub predicted_cycles_per_token: f64,
    /// `measured latency / L − 1`.
    pub latency_vs_predicted: f64,
    /// `measured throughput / P(users) − 1`.
    pub throughput_vs_predicted: f64,
    /// Whether the simulated RTL matched the expected outputs bit for bit.
    pub bit_exact: bool,
    /// Positions simulated.
    pub positions: usize,
    /// The command that measured it.
    pub command: String,
}

/// How much context and how many users the SRAM left over holds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MemoryFit {
    /// `S`, the user slots built in.
    pub users: usize,
    /// `T`, the positions per user built in.
    pub context: usize,
    /// At `S` users, min over chips; `None`: no chip holds a KV cache.
    pub max_context_at_users: Option<u64>,
    /// At context `T`, min over chips; `None`: no chip holds a KV cache.
    pub max_users_at_context: Option<u64>,
    /// The chip that sets both limits.
    pub limiting_chip: Option<usize>,
    /// Whether the built `S × T` fits every chip's free area.
    pub built_fits: bool,
}

/// Energy per token and its parts.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EnergyReport {
    /// Per-operation energies at the node, pJ.
    pub mac_pj: f64,
    /// Mask-ROM read, pJ per bit.
    pub rom_pj_per_bit: f64,
    /// SRAM read or write, pJ per bit.
    pub sram_pj_per_bit: f64,
    /// Chip-to-chip link, pJ per bit.
    pub link_pj_per_bit: f64,
    /// Static power density, W per mm² of area in use.
    pub static_w_per_mm2: f64,
    /// Multiply-accumulates per token, all stages.
    pub macs: u64,
    /// Mask-ROM bits read per token, all stages.
    pub rom_read_bits: u64,
    /// SRAM bits read and written per token, all stages.
    pub sram_access_bits: u64,
    /// Link bits per token, all links.
    pub link_bits: u64,
    /// Joules per token.
    pub mac_j: f64,
    /// `rom_read_bits · rom_pj_per_bit`.
    pub rom_j: f64,
    /// `sram_access_bits · sram_pj_per_bit`.
    pub sram_j: f64,
    /// `link_bits · link_pj_per_bit`.
    pub link_j: f64,
    /// Static power's share: `static_w / (f / P)`.
    pub static_j: f64,
    /// `mac_j + rom_j + sram_j + link_j`.
    pub dynamic_j: f64,
    /// `dynamic_j + static_j`.
    pub total_j: f64,
    /// `total_j` in millijoules.
    pub total_mj: f64,
    /// `static_w_per_mm2 · Σ chip area`.
    pub static_w: f64,
    /// `total_j · aggregate tokens/s`.
    pub system_power_w: f64,
}

/// Cost per token from the stated economics.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CostReport {
    /// Chips per copy of the model.
    pub chips: usize,
    /// Area of one die, mm² (the budget's whole die).
    pub die_mm2: f64,
    /// Gross dies per 300 mm wafer.
    pub dies_per_wafer: f64,
    /// Fraction of dies without a defect, `exp(−A·D0)`.
    pub die_yield: f64,
    /// System cost of one chip, USD (good die times the system cost factor).
    pub chip_usd: f64,
    /// `chips · chip_usd`.
    pub hardware_usd: f64,
    /// Years the hardware is written off over.
    pub amortization_years: f64,
    /// 365 days.
    pub seconds_per_year: f64,
    /// Always 1: the hardware runs at its aggregate throughput all the time.
    pub utilization: f64,
    /// `hardware_usd / (amortization_years · seconds_per_year)`.
    pub capex_usd_per_s: f64,
    /// System power, W (as [`EnergyReport::system_power_w`]).
    pub system_power_w: f64,
    /// Electricity price, USD per kWh.
    pub electricity_usd_per_kwh: f64,
    /// `system_power_w / 3.6·10⁶ · electricity_usd_per_kwh`.
    pub energy_usd_per_s: f64,
    /// `capex_usd_per_s / (f / P) · 10⁶`.
    pub capex_usd_per_mtoken: f64,
    /// `energy_usd_per_s / (f / P) · 10⁶`.
    pub energy_usd_per_mtoken: f64,
    /// `capex_usd_per_mtoken + energy_usd_per_mtoken`.
    pub usd_per_mtoken: f64,
}

/// Whether a figure is ours to defend or someone else's measurement/claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// Our own assumption (the source says so).
    Assumption,
    /// A published figure, vendor claim or design document.
    Citation,
}

/// One figure and where it comes from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Assumption {
    /// Field path in the budget (`energy.node_scale`) or `report.*` for
    /// the report's own modelling choices.
    pub field: String,
    /// The value, as JSON text (`""` when it is a rule, not a number).
    pub value: String,
    /// Assumption or citation (from whether `source` says "assumption").
    pub kind: SourceKind,
    /// The budget's `sources` text, or the rule's statement.
    pub source: String,
}

pub(crate) const SECONDS_PER_YEAR: f64 = 365.0 * 86_400.0;

/// Derives every figure of the report from `input`. Never panics: empty
/// stages or a partition that does not cover them give zeros.
/// The formulas are in the crate documentation.
pub fn compute(input: &ReportInput) -> SystemReport {
    let b = &input.budget;
    let stages = &input.stages;
    let part = &input.partition;
    let f_hz = b.clock_mhz * 1e6;
    let users = input.users.max(1);
    let context = input.context;
    let e = &b.energy;
    let (mac_pj, rom_pj, sram_pj) = (e.mac_pj, e.rom_pj_per_bit, e.sram_pj_per_bit);

    let chip_of = |stage: usize| {
        part.chips
            .iter()
            .position(|c| (c.first..c.end).contains(&stage))
    };
    let stage_name = |i: usize| {
        stages
            .get(i)
            .map(|s| s.name.clone())
            .unwrap_or_else(|| format!("stage {i}"))
    };
    let stage_energy_j = |s: &StageCost| {
        (s.macs as f64 * mac_pj
            + s.rom_read_bits as f64 * rom_pj
            + s.sram_access_bits as f64 * sram_pj)
            * 1e-12
    };

    // Stages and links.
    let stage_reports: Vec<StageReport> = stages
        .iter()
        .enumerate()
        .map(|(i, s)| StageReport {
            index: i,
            name: s.name.clone(),
            chip: chip_of(i),
            cycles: s.cycles,
            macs: s.macs,
            rom_read_bits: s.rom_read_bits,
            sram_access_bits: s.sram_access_bits,
            energy_j: stage_energy_j(s),
        })
        .collect();
    let links: Vec<LinkReport> = part
        .links
        .iter()
        .map(|l| LinkReport {
            after_stage: l.after_stage,
            after_stage_name: stage_name(l.after_stage),
            from_chip: chip_of(l.after_stage),
            to_chip: chip_of(l.after_stage + 1),
            bits_per_token: l.bits_per_token,
            bytes_per_token: l.bits_per_token as f64 / 8.0,
            busy_cycles: l.busy_cycles,
            latency_cycles: l.latency_cycles,
            energy_j: l.bits_per_token as f64 * e.link_pj_per_bit * 1e-12,
        })
        .collect();
    let link_bits: u64 = links.iter().map(|l| l.bits_per_token).sum();

    // Timing.
    let stage_cycles: u64 = stages.iter().map(|s| s.cycles).sum();
    let link_cycles: u64 = links.iter().map(|l| l.busy_cycles + l.latency_cycles).sum();
    let latency = stage_cycles + link_cycles;
    let slowest_stage = stages
        .iter()
        .enumerate()
        .max_by_key(|(i, s)| (s.cycles, usize::MAX - i));
    let slowest_link = links
        .iter()
        .max_by_key(|l| (l.busy_cycles, usize::MAX - l.after_stage));
    let stage_bound = slowest_stage.map_or(0, |(_, s)| s.cycles);
    let link_bound = slowest_link.map_or(0, |l| l.busy_cycles);
    let (bound, bound_by) = if link_bound > stage_bound {
        let l = slowest_link.expect("a link set the bound");
        (link_bound, format!("link after {}", l.after_stage_name))
    } else {
        let name = slowest_stage.map_or(String::new(), |(_, s)| s.name.clone());
        (stage_bound, format!("stage {name}"))
    };
    let cycles_at = |s: usize| -> f64 {
        let in_flight = s.max(1).min(stages.len()).max(1);
        (bound as f64).max(latency as f64 / in_flight as f64)
    };
    let rate = |cycles: f64| if cycles > 0.0 { f_hz / cycles } else { 0.0 };
    let p = cycles_at(users);
    let aggregate = rate(p);
    let measured = input.measured.as_ref().map(|m| {
        let pm = cycles_at(m.users);
        MeasuredTiming {
            users: m.users,
            latency_cycles_per_token: m.latency_cycles_per_token,
            throughput_cycles_per_token: m.throughput_cycles_per_token,
            tokens_per_s_per_user: rate(m.latency_cycles_per_token),
            aggregate_tokens_per_s: rate(m.throughput_cycles_per_token),
            users_in_flight: ratio(m.latency_cycles_per_token, m.throughput_cycles_per_token),
            predicted_cycles_per_token: pm,
            latency_vs_predicted: ratio(m.latency_cycles_per_token, latency as f64) - 1.0,
            throughput_vs_predicted: ratio(m.throughput_cycles_per_token, pm) - 1.0,
            bit_exact: m.bit_exact,
            positions: m.positions,
            command: m.command.clone(),
        }
    });
    let timing = Timing {
        clock_mhz: b.clock_mhz,
        users,
        stages: stages.len(),
        stage_cycles,
        link_cycles,
        latency_cycles: latency,
        throughput_bound_cycles: bound,
        bound_by,
        max_tokens_in_flight: users.min(stages.len()),
        cycles_per_token: p,
        tokens_per_s_per_user: rate(latency as f64),
        tokens_per_s_per_user_at_users: aggregate / users as f64,
        aggregate_tokens_per_s: aggregate,
        peak_aggregate_tokens_per_s: rate(bound as f64),
        users_in_flight: ratio(latency as f64, p),
        users_to_saturate: ratio(latency as f64, bound as f64),
        basis: "energy and cost use the predicted aggregate throughput at the built users".into(),
        measured,
        clock_check: input.clock_evidence.as_ref().map(|ev| {
            let fmax = ev.max_clock_mhz();
            ClockCheck {
                evidence: ev.clone(),
                max_clock_mhz: fmax,
                budget_clock_met: b.clock_mhz <= fmax,
                tokens_per_s_per_user_at_max_clock: if latency > 0 {
                    fmax.min(b.clock_mhz) * 1e6 / latency as f64
                } else {
                    0.0
                },
            }
        }),
    };

    // Energy.
    let sum = |g: fn(&StageCost) -> u64| stages.iter().map(g).sum::<u64>();
    let (macs, rom_bits, sram_bits) = (
        sum(|s| s.macs),
        sum(|s| s.rom_read_bits),
        sum(|s| s.sram_access_bits),
    );
    let area_used: f64 = part.chips.iter().map(|c| c.area_mm2).sum();
    let static_w = e.static_w_per_mm2 * area_used;
    let mac_j = macs as f64 * mac_pj * 1e-12;
    let rom_j = rom_bits as f64 * rom_pj * 1e-12;
    let sram_j = sram_bits as f64 * sram_pj * 1e-12;
    let link_j = link_bits as f64 * e.link_pj_per_bit * 1e-12;
    let static_j = ratio(static_w, aggregate);
    let dynamic_j = mac_j + rom_j + sram_j + link_j;
    let total_j = dynamic_j + static_j;
    let system_power_w = dynamic_j * aggregate + static_w;
    let energy = EnergyReport {
        mac_pj,
        rom_pj_per_bit: rom_pj,
        sram_pj_per_bit: sram_pj,
        link_pj_per_bit: e.link_pj_per_bit,
        static_w_per_mm2: e.static_w_per_mm2,
        macs,
        rom_read_bits: rom_bits,
        sram_access_bits: sram_bits,
        link_bits,
        mac_j,
        rom_j,
        sram_j,
        link_j,
        static_j,
        dynamic_j,
        total_j,
        total_mj: total_j * 1e3,
        static_w,
        system_power_w,
    };

    // Chips.
    let chip_usd = b.economics.chip_usd(b.die_mm2);
    let fixed_density = b.sram_mbit_per_mm2 * 1e6;
    let chips: Vec<ChipReport> = part
        .chips
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let own = stages.get(c.first..c.end.min(stages.len())).unwrap_or(&[]);
            let fixed_sram_bits: u64 = own.iter().map(|s| s.fixed_sram_bits).sum();
            let kv: u64 = own.iter().map(|s| s.kv_bits_per_position).sum();
            let kv_free_mm2 = b.die_mm2 - c.rom_mm2 - c.logic_mm2 - b.sram_mm2(fixed_sram_bits);
            let kv_free_bits = (kv_free_mm2 * fixed_density).max(0.0).floor() as u64;
            let per = |n: usize| (kv > 0).then(|| kv_free_bits / (n.max(1) as u64 * kv));
            let dyn_j: f64 = own.iter().map(stage_energy_j).sum::<f64>()
                + links
                    .iter()
                    .filter(|l| l.from_chip == Some(k))
                    .map(|l| l.energy_j)
                    .sum::<f64>();
            let chip_static = e.static_w_per_mm2 * c.area_mm2;
            ChipReport {
                index: k,
                first: c.first,
                end: c.end,
                stage_names: (c.first..c.end).map(stage_name).collect(),
                rom_mm2: c.rom_mm2,
                sram_mm2: c.sram_mm2,
                logic_mm2: c.logic_mm2,
                area_mm2: c.area_mm2,
                die_mm2: b.die_mm2,
                free_mm2: b.die_mm2 - c.area_mm2,
                utilization: c.area_mm2 / b.die_mm2,
                chip_usd,
                power_w: dyn_j * aggregate + chip_static,
                static_w: chip_static,
                fixed_sram_bits,
                kv_bits_per_position: kv,
                kv_free_mm2,
                kv_free_bits,
                kv_built_mm2: b.sram_mm2(kv * users as u64 * context as u64),
                max_context_at_users: per(users),
                max_users_at_context: per(context),
            }
        })
        .collect();

    // Memory fit.
    let limiting = chips
        .iter()
        .filter(|c| c.max_context_at_users.is_some())
        .min_by(|a, b| {
            let fa = a.kv_free_bits as f64 / a.kv_bits_per_position as f64;
            let fb = b.kv_free_bits as f64 / b.kv_bits_per_position as f64;
            fa.total_cmp(&fb).then(a.index.cmp(&b.index))
        });
    let memory = MemoryFit {
        users,
        context,
        max_context_at_users: chips.iter().filter_map(|c| c.max_context_at_users).min(),
        max_users_at_context: chips.iter().filter_map(|c| c.max_users_at_context).min(),
        limiting_chip: limiting.map(|c| c.index),
        built_fits: chips.iter().all(|c| {
            c.kv_bits_per_position == 0
                || (c.kv_bits_per_position as u128) * users as u128 * context as u128
                    <= c.kv_free_bits as u128
        }),
    };

    // Cost.
    let ec = &b.economics;
    let hardware_usd = part.chips.len() as f64 * chip_usd;
    let capex_usd_per_s = hardware_usd / (ec.amortization_years * SECONDS_PER_YEAR);
    let energy_usd_per_s = system_power_w / 3.6e6 * ec.electricity_usd_per_kwh;
    let per_mtoken = |usd_per_s: f64| ratio(usd_per_s, aggregate) * 1e6;
    let cost = CostReport {
        chips: part.chips.len(),
        die_mm2: b.die_mm2,
        dies_per_wafer: ec.dies_per_wafer(b.die_mm2),
        die_yield: ec.yield_of(b.die_mm2),
        chip_usd,
        hardware_usd,
        amortization_years: ec.amortization_years,
        seconds_per_year: SECONDS_PER_YEAR,
        utilization: 1.0,
        capex_usd_per_s,
        system_power_w,
        electricity_usd_per_kwh: ec.electricity_usd_per_kwh,
        energy_usd_per_s,
        capex_usd_per_mtoken: per_mtoken(capex_usd_per_s),
        energy_usd_per_mtoken: per_mtoken(energy_usd_per_s),
        usd_per_mtoken: per_mtoken(capex_usd_per_s + energy_usd_per_s),
    };

    let ctx = curves::Ctx {
        input,
        chips: &chips,
        links: &links,
        chip_usd,
    };
    let curves = ctx.curves();
    let area_split = ctx.area_split();
    let gpu_model = gpu::GpuModel {
        params: input.params,
        weights_per_token: if input.weights_per_token > 0 {
            input.weights_per_token
        } else {
            input.params
        },
        kv_values_per_position: input.kv_values_per_position,
        attn_macs_per_position: input.attn_macs_per_position,
    };
    let gpu_baseline = gpu::baseline(gpu_model, context as u64);
    let comparison = comparison_rows(
        input,
        &timing,
        &energy,
        &cost,
        &curves,
        &gpu_baseline,
        part.chips.iter().map(|c| c.area_mm2).sum(),
    );
    SystemReport {
        schema: "taalasc-report/2".into(),
        input: input.clone(),
        chips,
        stages: stage_reports,
        links,
        link_bits_per_token: link_bits,
        link_bytes_per_token: link_bits as f64 / 8.0,
        timing,
        memory,
        energy,
        cost,
        assumptions: assumptions(b),
        curves,
        area_split,
        gpu_baseline,
        comparison,
    }
}

/// This build at one user, at the built users and at the users that fit,
/// then HC1, HNLPU and each GPU at batch 1 and at its largest batch.
fn comparison_rows(
    input: &ReportInput,
    t: &Timing,
    e: &EnergyReport,
    c: &CostReport,
    curves: &Curves,
    g: &GpuBaseline,
    area: f64,
) -> Vec<ComparisonRow> {
    let b = &input.budget;
    let ours = |label: String, per_user: f64, agg: f64, j: f64, usd: f64, power: Option<f64>| {
        ComparisonRow {
            system: label,
            kind: "taalasc model (predicted from the stage-cost model)".into(),
            model: input.model.clone(),
            chips: Some(c.chips as f64),
            node: format!("{} (budget {})", b.process, b.name),
            area_mm2: Some(area),
            tokens_per_s_per_user: Some(per_user),
            aggregate_tokens_per_s: Some(agg),
            energy_per_token_j: Some(j),
            usd_per_mtoken: Some(usd),
            power_w: power,
            source_kind: SourceKind::Assumption,
            source: "assumption: this report's model (budget figures and their sources in `assumptions`)".into(),
        }
    };
    let mut rows = Vec::new();
    if let Some(p) = curves.over_users.first().filter(|_| t.users != 1) {
        rows.push(ours(
            "this build, 1 user".into(),
            p.tokens_per_s_per_user,
            p.aggregate_tokens_per_s,
            p.energy_per_token_j,
            p.usd_per_mtoken,
            Some(p.energy_per_token_j * p.aggregate_tokens_per_s),
        ));
    }
    rows.push(ours(
        format!(
            "this build, {} user{} as built",
            t.users,
            if t.users == 1 { "" } else { "s" }
        ),
        t.tokens_per_s_per_user_at_users,
        t.aggregate_tokens_per_s,
        e.total_j,
        c.usd_per_mtoken,
        Some(e.system_power_w),
    ));
    if let Some(p) = curves
        .over_users
        .last()
        .filter(|p| p.users != t.users as u64)
    {
        rows.push(ours(
            format!("this build, {} users (the most that fit)", p.users),
            p.tokens_per_s_per_user,
            p.aggregate_tokens_per_s,
            p.energy_per_token_j,
            p.usd_per_mtoken,
            Some(p.energy_per_token_j * p.aggregate_tokens_per_s),
        ));
    }
    rows.extend(gpu::published_rows());
    for s in &g.series {
        let spec = g.gpus.iter().find(|x| x.name == s.gpu);
        let last_fit = s.points.iter().rev().find(|p| p.fits && p.batch > 1);
        let first = s.points.first().filter(|p| p.fits);
        for p in [first, last_fit].into_iter().flatten() {
            rows.push(ComparisonRow {
                system: format!("{} {}, batch {}", s.gpu, s.precision, p.batch),
                kind: "roofline model (cited specs, assumed efficiency and price)".into(),
                model: input.model.clone(),
                chips: Some(1.0),
                node: "TSMC 4N".into(),
                area_mm2: None,
                tokens_per_s_per_user: p.tokens_per_s_per_user,
                aggregate_tokens_per_s: p.aggregate_tokens_per_s,
                energy_per_token_j: p.energy_per_token_j,
                usd_per_mtoken: p.usd_per_mtoken,
                power_w: spec.map(|x| x.board_w),
                source_kind: SourceKind::Assumption,
                source: format!(
                    "roofline of the cited {} figures (gpu_baseline.gpus) with the assumptions in gpu_baseline.assumptions, context {}",
                    s.gpu, g.context
                ),
            });
        }
    }
    rows
}

/// `a / b`, 0 when `b` is 0.
fn ratio(a: f64, b: f64) -> f64 {
    if b != 0.0 {
        a / b
    } else {
        0.0
    }
}

/// The budget's sources with their values, then the report's own rules.
fn assumptions(b: &Budget) -> Vec<Assumption> {
    let json = serde_json::to_value(b).expect("a budget serializes");
    let mut out: Vec<Assumption> = b
        .sources
        .iter()
        .map(|(field, source)| {
            let value = field
                .split('.')
                .try_fold(&json, |v, k| v.get(k))
                .map_or(String::new(), |v| v.to_string());
            let kind = if source.to_ascii_lowercase().contains("assumption") {
                SourceKind::Assumption
            } else {
                SourceKind::Citation
            };
            Assumption {
                field: field.clone(),
                value,
                kind,
                source: source.clone(),
            }
        })
        .collect();
    // Budget figures the budget gives no source for (a budget from before a
    // field existed) are labelled as such.
    let mut leaves = Vec::new();
    numeric_leaves(&json, "", &mut leaves);
    for (field, value) in leaves {
        if !field.starts_with("sources") && !b.sources.contains_key(&field) {
            out.push(Assumption {
                field,
                value,
                kind: SourceKind::Assumption,
                source: "assumption: the budget gives no source for this figure".into(),
            });
        }
    }
    let ours: [(&str, &str); 7] = [
        (
            "report.tokens_in_flight",
            "assumption: at most min(S, stages) tokens are in flight, one per user and one per stage; cycles per token = max(slowest stage or link, latency / min(S, stages))",
        ),
        (
            "report.utilization",
            "assumption: cost per token counts the hardware busy 100% of the time at the predicted aggregate throughput",
        ),
        (
            "report.year",
            "assumption: a year of write-off is 365 days of 86,400 s",
        ),
        (
            "report.chip_area",
            "assumption: every chip costs a whole die of the budget's area, whatever it uses",
        ),
        (
            "report.static_area",
            "assumption: static power scales with the area in use, not the whole die",
        ),
        (
            "report.link_energy",
            "assumption: a link's energy is charged to the chip that sends",
        ),
        (
            "report.sram_writes",
            "assumption: an SRAM write costs what a read of the same bits does",
        ),
    ];
    out.extend(ours.iter().map(|(field, source)| Assumption {
        field: field.to_string(),
        value: String::new(),
        kind: SourceKind::Assumption,
        source: source.to_string(),
    }));
    out
}

/// Every number under `v` with its dotted path.
fn numeric_leaves(v: &serde_json::Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                let p = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                numeric_leaves(x, &p, out);
            }
        }
        serde_json::Value::Number(n) => out.push((at.to_string(), n.to_string())),
        _ => {}
    }
}

/// `report.json`'s text: pretty JSON, newline-terminated.
pub fn to_json(report: &SystemReport) -> String {
    let mut s = serde_json::to_string_pretty(report).expect("a report serializes");
    s.push('\n');
    s
}

/// A report that could not be written; names the file.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file or the folder could not be created, written or renamed.
    #[error("{path}: {source}")]
    Io {
        /// The path that failed.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Writes `report.json` and `report.html` into `dir` (created if missing),
/// each atomically (a temporary file renamed into place).
pub fn write(report: &SystemReport, dir: &Path) -> Result<(), ReportError> {
    let io = |p: &Path| {
        let path = p.display().to_string();
        move |source| ReportError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    for (name, text) in [
        ("report.json", to_json(report)),
        ("report.html", render_html(report)),
    ] {
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
    }
    Ok(())
}
