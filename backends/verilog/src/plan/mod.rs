//! The hardware plan: a chip image lowered onto engines, instructions,
//! scratchpad addresses and memory macros (RFC 0003).
//!
//! ```text
//! ChipImage ──plan()──▶ Plan { engines: [Engine { program, spad, roms }], schedule, stages }
//!                          │
//!                          ├─▶ emit.rs   Verilog text (read-only over the plan)
//!                          └─▶ roms.rs   $readmemh images of every macro
//! ```
//!
//! `lower.rs` selects instructions and allocates scratchpads; `legal.rs`
//! checks the printers' limits and stores the stages and interface
//! widths; `text.rs` prints the plan for people. Every other module of the
//! crate reads a plan and none is read by this one.
//!
//! Engine 0 is the I/O engine (embedding, final norm, head, logits
//! stream); engine `l + 1` runs decoder layer `l`. A token visits engine 0,
//! then every layer engine in order, then engine 0 again; values that cross
//! engines (the residual stream) are copied by the chip controller between
//! phases. Nothing here writes files.

mod legal;
mod lower;
mod text;

pub use legal::{check_limits, Stage, Widths, PC_BITS, POS_BITS};
pub use lower::{plan, plan_with};

use serde::Serialize;
use std::collections::BTreeMap;
use taalasc_ir::WeightId;
use taalasc_numerics as nx;

/// Why a chip image cannot be lowered to hardware.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The image is not legal for the datapath, or a node or weight is
    /// beyond what the units lower (the error names it).
    #[error(transparent)]
    Image(#[from] taalasc_image::ImageError),
    #[error("--lanes {0}: expected a power of two from 1 to 256")]
    Lanes(usize),
    #[error("--users {0}: expected 1 to 256 user slots")]
    Users(usize),
    #[error("beyond the emitter's field widths: {0}")]
    Limit(String),
}

/// Elementwise operations of `tls_elem` (`cfg_op`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ElemOp {
    /// `residual_add(a as R32, b as W48)`.
    Resid = 0,
    AddW = 1,
    MulW = 2,
    Silu = 3,
    Gelu = 4,
    Copy = 5,
}

impl ElemOp {
    /// Its name in the manifest (`resid`, `add_w`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ElemOp::Resid => "resid",
            ElemOp::AddW => "add_w",
            ElemOp::MulW => "mul_w",
            ElemOp::Silu => "silu",
            ElemOp::Gelu => "gelu",
            ElemOp::Copy => "copy",
        }
    }
}

/// One instruction of an engine's program. Addresses are scratchpad words.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "instr", rename_all = "snake_case")]
pub enum Instr {
    /// Row `token` (or `pos`) of a table into the residual stream.
    Embed {
        mat: usize,
        dst: u32,
        cols: usize,
        /// Adds to the values at `dst` (learned positions) and reads row `pos`.
        positions: bool,
    },
    Norm {
        src: u32,
        dst: u32,
        n: usize,
        m_n: i64,
        eps: i64,
        /// Index into the engine's Q15.16 ROMs (`gains`), for the gain and
        /// the LayerNorm bias.
        gain: usize,
        bias: Option<usize>,
    },
    Linear {
        mat: usize,
        src: u32,
        dst: u32,
        rows: usize,
        cols: usize,
        /// Convert the input to `A8` first (false: reuse the previous one).
        load: bool,
        bias: Option<usize>,
    },
    Rope {
        table: usize,
        src: u32,
        heads: usize,
        head_dim: usize,
        rot: usize,
    },
    Attn {
        unit: usize,
        q: u32,
        k: u32,
        v: u32,
        dst: u32,
    },
    Elem {
        op: ElemOp,
        a: u32,
        b: u32,
        dst: u32,
        n: usize,
    },
    /// Streams `n` logits out of the chip.
    Out { src: u32, n: usize },
}

impl Instr {
    /// The unit that executes it (module `tls_<unit>`).
    pub fn unit(&self) -> &'static str {
        match self {
            Instr::Embed { .. } => "embed",
            Instr::Norm { .. } => "norm",
            Instr::Linear { .. } => "matvec",
            Instr::Rope { .. } => "rope",
            Instr::Attn { .. } => "attn",
            Instr::Elem { .. } => "elem",
            Instr::Out { .. } => "out",
        }
    }
}

/// A quantized matrix held in a weight ROM.
#[derive(Clone, Debug, Serialize)]
pub struct MatRom {
    pub weight: String,
    #[serde(skip)]
    pub id: WeightId,
    pub rows: usize,
    pub cols: usize,
    /// Widest code width (`b`); narrower parts are stored sign-extended.
    pub bits: u8,
    pub asym: bool,
    pub code_bias: i32,
    pub format: String,
    /// Words per row (`ceil(cols / lanes)`).
    pub chunks: usize,
    /// ROM word width in bits: `lanes·b + nb·36`.
    pub word_bits: usize,
    pub file: String,
    /// Bits the behavioral ROM holds (`rows·chunks·word_bits`).
    pub stored_bits: u64,
    /// Bits of the format as counted by `build` (codes, scales, width list):
    /// what a mask ROM packing the format exactly would hold.
    pub packed_bits: u64,
}

/// A vector ROM (norm gains, LayerNorm and linear biases) or a RoPE table.
#[derive(Clone, Debug, Serialize)]
pub struct VecRom {
    pub name: String,
    pub width: u32,
    pub depth: usize,
    pub file: String,
    #[serde(skip)]
    pub source: VecSource,
}

#[derive(Clone, Debug)]
pub enum VecSource {
    /// Q15.16 values (32 bits).
    Fixed(WeightId),
    /// `W48` values.
    Wide(WeightId),
    /// RoPE `{cos, sin}` per (position, pair).
    Rope { inv_freqs: Vec<f64> },
}

/// One attention unit (a `tls_attn` instance with its KV cache).
#[derive(Clone, Debug, Serialize)]
pub struct AttnUnit {
    pub node: String,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub window: usize,
    pub scale_mant: u32,
    pub scale_shift: i32,
    /// KV cache bits (K and V, mantissas and exponents, every user slot).
    pub kv_bits: u64,
}

/// Where an IR node's value lives (for tracing and debugging).
#[derive(Clone, Debug, Serialize)]
pub struct NodeSlot {
    pub node: String,
    pub engine: usize,
    /// Program counter of the instruction that writes it.
    pub pc: usize,
    pub addr: u32,
    pub width: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Engine {
    pub index: usize,
    /// `io` or `layer N`.
    pub role: String,
    pub program: Vec<Instr>,
    /// Node each instruction computes (same order as `program`).
    pub nodes: Vec<String>,
    pub mats: Vec<MatRom>,
    /// Q15.16 vectors: norm gains and LayerNorm biases.
    pub gains: Vec<VecRom>,
    /// `W48` vectors: linear biases.
    pub biases: Vec<VecRom>,
    pub ropes: Vec<VecRom>,
    pub attns: Vec<AttnUnit>,
    /// Scratchpad words used.
    pub spad_words: u32,
    /// Largest matvec input, in 32-blocks (the A8 buffer).
    pub max_blocks: usize,
}

impl Engine {
    pub fn uses(&self, unit: &str) -> bool {
        self.program.iter().any(|i| i.unit() == unit)
    }
}

/// One step of the per-token schedule run by the chip controller.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Copies `n` words between engines' scratchpads.
    Copy {
        from: usize,
        src: u32,
        to: usize,
        dst: u32,
        n: usize,
        /// The value is `W48`, not a residual `R32`: it cannot cross a
        /// chip link, which carries 32-bit words (RFC 0004).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        wide: bool,
    },
    /// Runs instructions `pc0..pc1` of an engine.
    Run {
        engine: usize,
        pc0: usize,
        pc1: usize,
    },
}

#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub lanes: usize,
    /// User slots: each has its own KV cache region and position.
    pub users: usize,
    pub context: usize,
    pub vocab: usize,
    pub engines: Vec<Engine>,
    pub schedule: Vec<Step>,
    pub slots: Vec<NodeSlot>,
    /// Scratchpad address bits (every engine).
    pub spad_aw: u32,
    /// The schedule as pipeline stages (computed once, by legalization).
    #[serde(skip)]
    stages: Vec<Stage>,
    /// Widths of the chip interface (computed once, by legalization).
    #[serde(skip)]
    widths: Widths,
}

/// Bits needed to address `n` items (at least 1).
pub fn addr_bits(n: usize) -> u32 {
    (usize::BITS - n.saturating_sub(1).leading_zeros()).max(1)
}

/// File-safe name of a weight or node (`layers.0.attn.q.weight` →
/// `layers_0_attn_q_weight`).
pub fn file_name(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// KV-cache bits of one position of one user in an attention unit: K and
/// V, 8-bit codes plus one 8-bit scale per 32 values (RFC 0002's A8).
pub fn kv_bits_per_position(kv_heads: usize, head_dim: usize) -> u64 {
    let blocks = (kv_heads * head_dim / nx::A8_BLOCK) as u64;
    2 * blocks * (nx::A8_BLOCK as u64 * 8 + 8)
}

/// Scale fields of one block in a ROM word: `{d_mant, d_exp, m_mant, m_exp}`.
pub const SCALE_FIELD_BITS: usize = 36;

/// Blocks of scale fields per ROM word.
pub fn blocks_per_word(lanes: usize) -> usize {
    (lanes / nx::A8_BLOCK).max(1)
}

/// Totals of the plan's memory macros, in bits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct MacroBits {
    pub weight_rom_stored: u64,
    pub weight_rom_packed: u64,
    pub vector_rom: u64,
    pub table_rom: u64,
    pub kv_sram: u64,
    pub scratchpad_sram: u64,
}

impl Plan {
    /// The schedule as pipeline stages, in order: every plan `plan()`
    /// returns forms a token pipeline.
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// Widths of the chip interface (scratchpad address, token, logit
    /// index).
    pub fn widths(&self) -> Widths {
        self.widths
    }

    /// Totals of the plan's memory macros, in bits.
    pub fn macro_bits(&self) -> MacroBits {
        let mut m = MacroBits::default();
        let mut seen = BTreeMap::new();
        for e in &self.engines {
            for r in &e.mats {
                m.weight_rom_stored += r.stored_bits;
                m.weight_rom_packed += r.packed_bits;
            }
            for r in e.gains.iter().chain(&e.biases).chain(&e.ropes) {
                m.vector_rom += r.width as u64 * r.depth as u64;
            }
            for a in &e.attns {
                m.kv_sram += a.kv_bits;
            }
            m.scratchpad_sram += e.spad_words as u64 * 48;
            for u in ["norm", "elem", "attn"] {
                if e.uses(u) {
                    *seen.entry(u).or_insert(0u64) += 1;
                }
            }
        }
        // Table ROMs: one set per unit instance.
        m.table_rom = seen
            .iter()
            .map(|(u, n)| n * crate::tables::unit_table_bits(u))
            .sum();
        m
    }
}
