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
pub use lower::{plan, plan_with, scale_layout, weight_macros};

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
    /// The `--lanes` value (MAC lanes per matvec unit) is not a power of
    /// two in 1..=256.
    #[error("--lanes {0}: expected a power of two from 1 to 256")]
    Lanes(usize),
    /// The `--users` value (KV-cache user slots) is outside 1..=256.
    #[error("--users {0}: expected 1 to 256 user slots")]
    Users(usize),
    /// The plan needs a field wider than the printers' fixed widths (the
    /// message names the field and the value).
    #[error("beyond the emitter's field widths: {0}")]
    Limit(String),
}

/// Elementwise operations of `tls_elem` (`cfg_op`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ElemOp {
    /// `residual_add(a as R32, b as W48)`.
    Resid = 0,
    /// `add_w48(a, b)`: saturating `W48` sum (bias or skip add).
    AddW = 1,
    /// `mul_w48(a, b)`: `W48` product rounded back to 24 fraction bits
    /// (the SwiGLU/GeGLU gate).
    MulW = 2,
    /// `silu(a)` on `W48`, sigmoid from the `sigmoid.hex` table.
    Silu = 3,
    /// `gelu(a)` on `W48`, from the `gelu.hex` table.
    Gelu = 4,
    /// `a` unchanged (a scratchpad move).
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
        /// Index of the table in the engine's `mats` (a tied table shares
        /// the head's ROM).
        mat: usize,
        /// First scratchpad word of the `R32` row written.
        dst: u32,
        /// Row length in values (a multiple of 32).
        cols: usize,
        /// Adds to the values at `dst` (learned positions) and reads row `pos`.
        positions: bool,
    },
    /// RMSNorm or LayerNorm of `n` `R32` values into `n` `W48` values
    /// (`tls_norm`).
    Norm {
        /// First scratchpad word of the `R32` input.
        src: u32,
        /// First scratchpad word of the `W48` output.
        dst: u32,
        /// Vector length in values (`cfg_n`, 20 bits).
        n: usize,
        /// `M_n = ceil(2^40 / n)`, the fixed-point `1/n` of `NormConsts`
        /// (`cfg_mn`, 41 bits unsigned).
        m_n: i64,
        /// `eps_fixed = round(eps · 2^32)`, the model's epsilon at the
        /// fixed-point scale of the variance (`cfg_eps`, 48 bits unsigned).
        eps: i64,
        /// Index into the engine's Q15.16 ROMs (`gains`), for the gain and
        /// the LayerNorm bias.
        gain: usize,
        /// Index into `gains` of the LayerNorm bias; `None` for RMSNorm.
        bias: Option<usize>,
    },
    /// Matrix-vector product `dst = W·src (+ bias)` on `tls_matvec`.
    Linear {
        /// Index of the matrix in the engine's `mats`.
        mat: usize,
        /// First scratchpad word of the `W48` input (`cols` words).
        src: u32,
        /// First scratchpad word of the `W48` output (`rows` words).
        dst: u32,
        /// Output length (matrix rows, `cfg_rows`, 24 bits).
        rows: usize,
        /// Input length (matrix columns, a multiple of 32, `cfg_cols`).
        cols: usize,
        /// Convert the input to `A8` first (false: reuse the previous one).
        load: bool,
        /// Index into the engine's `biases` (`W48` ROM), if the layer has a
        /// bias.
        bias: Option<usize>,
    },
    /// Rotary position embedding in place on `heads` heads (`tls_rope`).
    Rope {
        /// Index of the `{cos, sin}` table in the engine's `ropes`.
        table: usize,
        /// First scratchpad word of the `W48` heads, rotated in place.
        src: u32,
        /// Number of heads (`cfg_n_heads`, 8 bits).
        heads: usize,
        /// Values per head (`cfg_hd`, 10 bits).
        head_dim: usize,
        /// Rotated features per head (`rotary_dim`, even; the rest pass
        /// through; `cfg_rot`, 10 bits).
        rot: usize,
    },
    /// One attention step of the current user's position (`tls_attn`):
    /// appends K and V to the cache, then softmax-weighted sum of V.
    Attn {
        /// Index of the unit in the engine's `attns`.
        unit: usize,
        /// First scratchpad word of the `W48` queries (all heads).
        q: u32,
        /// First scratchpad word of the `W48` keys of this position.
        k: u32,
        /// First scratchpad word of the `W48` values of this position.
        v: u32,
        /// First scratchpad word of the `W48` output (`heads·head_dim`).
        dst: u32,
    },
    /// Elementwise `dst[i] = op(a[i], b[i])` for `i < n` (`tls_elem`);
    /// `dst` may equal `a` or `b`.
    Elem {
        /// The operation (`cfg_op`, 3 bits).
        op: ElemOp,
        /// First scratchpad word of operand `a`.
        a: u32,
        /// First scratchpad word of operand `b` (0 and ignored for SiLU and
        /// GELU).
        b: u32,
        /// First scratchpad word of the result.
        dst: u32,
        /// Number of values (`cfg_n`, 20 bits).
        n: usize,
    },
    /// Streams `n` logits out of the chip.
    Out {
        /// First scratchpad word of the `W48` logits.
        src: u32,
        /// Number of logits (the vocabulary size).
        n: usize,
    },
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

/// A quantized matrix held in packed weight ROMs (`rtl/UNITS.md`, "Packed
/// weight ROMs"): a code ROM, a scale ROM and, for `Row8` scales, a row
/// exponent ROM, read through one `tls_wfetch` adapter.
#[derive(Clone, Debug, Serialize)]
pub struct MatRom {
    /// Name of the weight in the image (`layers.0.attn.q.weight`).
    pub weight: String,
    /// The weight's id in the image.
    #[serde(skip)]
    pub id: WeightId,
    /// Matrix rows (output length of the matvec).
    pub rows: usize,
    /// Matrix columns (input length, a multiple of 32).
    pub cols: usize,
    /// Widest code width (`b`); narrower parts of a mixed-width matrix are
    /// stored sign-extended to it.
    pub bits: u8,
    /// The format is asymmetric: each group has an offset (`m_mant`,
    /// `m_exp`) besides its scale.
    pub asym: bool,
    /// Added to each stored i8 code to get the format's code: 0 or
    /// `2^(b-1)` (unsigned codes), at most 128.
    pub code_bias: i32,
    /// The weight format's name as the image spells it.
    pub format: String,
    /// Words per row (`ceil(cols / lanes)`).
    pub chunks: usize,
    /// Rows per word of every macro (`tls_wfetch`'s `ROWS`; the plan uses
    /// [`WEIGHT_ROWS`]): word `g` holds rows `g·slices ..`, slice `j` row
    /// `g·slices + j`.
    pub slices: usize,
    /// How the scale ROM is laid out and addressed.
    pub scales: ScaleLayout,
    /// The code ROM's `$readmemh` image (under `rom/`); the scale and
    /// exponent images are named in `macros`.
    pub file: String,
    /// The macros that hold the matrix, in the order
    /// `codes, scales[, exponents]`.
    pub macros: Vec<WeightMacro>,
    /// Bits the ROM macros hold (sum of `width · depth` over `macros`):
    /// what the RTL stores and the cost model charges.
    pub stored_bits: u64,
    /// Bits of the format as counted by `build` (codes, scales, width list):
    /// what a mask ROM packing the format exactly would hold. Equal to
    /// `stored_bits` unless the layout pads (see [`ScaleLayout`]).
    pub packed_bits: u64,
}

/// Row slices per weight ROM word the plan uses (`ROWS` of `tls_wfetch`):
/// rows read in one cycle.
pub const WEIGHT_ROWS: usize = 1;

/// How a matrix's scales (and offsets) sit in its scale ROM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ScaleLayout {
    /// `tls_wfetch`'s `SMODE`: 0 one group per row (word = row group), 1 a
    /// chunk lies in one group (word = row group · `words_per_row` + chunk
    /// / 2^`cpg_log2`), 2 a chunk covers `per_word` groups (word = the code
    /// word's address).
    pub mode: u8,
    /// Columns per stored scale entry: the format's group length, or 32
    /// when that group is not a power of two (then each entry repeats per
    /// 32-block: padding the macros hold and the report charges).
    pub granule: usize,
    /// Scale words per row group.
    pub words_per_row: usize,
    /// Entries per row in one scale word (mode 2: `lanes / granule`).
    pub per_word: usize,
    /// `log2(granule / lanes)` (mode 1).
    pub cpg_log2: u32,
    /// `log2(granule / 32)` (mode 2).
    pub blocks_log2: u32,
    /// Scales are `Row8` (8-bit `n_g` plus a row exponent ROM), not SF16.
    pub row8: bool,
    /// Bits of one stored scale or offset: 16 (SF16) or 8 (`Row8`).
    pub kind_bits: usize,
}

/// One ROM macro of a matrix.
#[derive(Clone, Debug, Serialize)]
pub struct WeightMacro {
    /// `codes`, `scales` or `exponents`.
    pub kind: &'static str,
    /// Word width in bits.
    pub width: usize,
    /// Words.
    pub depth: usize,
    /// The `$readmemh` image's file name (under `rom/`).
    pub file: String,
}

/// A vector ROM (norm gains, LayerNorm and linear biases) or a RoPE table.
#[derive(Clone, Debug, Serialize)]
pub struct VecRom {
    /// Name of the source weight (`ropeN` for a RoPE table); the file name
    /// is its file-safe form.
    pub name: String,
    /// Word width in bits: 32 (Q15.16 or RoPE `{cos, sin}` Q1.14 pair) or
    /// 48 (`W48`).
    pub width: u32,
    /// Words: the vector length, or `context · rot/2` for a RoPE table.
    pub depth: usize,
    /// The `$readmemh` image's file name (`e<engine>_<name>.hex`, under
    /// `rom/`).
    pub file: String,
    /// Where the words come from.
    #[serde(skip)]
    pub source: VecSource,
}

/// The data a [`VecRom`] holds, and how its words are encoded.
#[derive(Clone, Debug)]
pub enum VecSource {
    /// Q15.16 values (32 bits).
    Fixed(WeightId),
    /// `W48` values.
    Wide(WeightId),
    /// RoPE `{cos, sin}` per (position, pair).
    Rope {
        /// Inverse frequency of each rotated pair (radians per position).
        inv_freqs: Vec<f64>,
    },
}

/// One attention unit (a `tls_attn` instance with its KV cache).
#[derive(Clone, Debug, Serialize)]
pub struct AttnUnit {
    /// Name of the IR attention node.
    pub node: String,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (divides `heads`; grouped-query attention when
    /// fewer).
    pub kv_heads: usize,
    /// Values per head (a multiple of 32, whole A8 blocks).
    pub head_dim: usize,
    /// Sliding window in positions; 0 means the whole context.
    pub window: usize,
    /// 16-bit mantissa, in `[2^15, 2^16)`, of the score scale
    /// `1/sqrt(head_dim) ≈ scale_mant · 2^-scale_shift` (`ScoreScale`).
    pub scale_mant: u32,
    /// Rounded right shift after multiplying a score by `scale_mant`
    /// (`15 − floor(log2 scale)`).
    pub scale_shift: i32,
    /// KV cache bits (K and V, mantissas and exponents, every user slot).
    pub kv_bits: u64,
}

/// Where an IR node's value lives (for tracing and debugging).
#[derive(Clone, Debug, Serialize)]
pub struct NodeSlot {
    /// Name of the IR node.
    pub node: String,
    /// Index of the engine whose scratchpad holds it.
    pub engine: usize,
    /// Program counter of the instruction that writes it.
    pub pc: usize,
    /// First scratchpad word of the value.
    pub addr: u32,
    /// Values (words) it occupies.
    pub width: usize,
}

/// One engine: a program over its units, its scratchpad and its ROMs.
/// Engine 0 is the I/O engine, engine `l + 1` decoder layer `l`.
#[derive(Clone, Debug, Serialize)]
pub struct Engine {
    /// Position in `Plan::engines` (the `tls_engine<index>` module).
    pub index: usize,
    /// `io` or `layer N`.
    pub role: String,
    /// Instructions, run in ranges by the schedule's `Run` steps.
    pub program: Vec<Instr>,
    /// Node each instruction computes (same order as `program`).
    pub nodes: Vec<String>,
    /// Weight ROMs (matrices and embedding tables).
    pub mats: Vec<MatRom>,
    /// Q15.16 vectors: norm gains and LayerNorm biases.
    pub gains: Vec<VecRom>,
    /// `W48` vectors: linear biases.
    pub biases: Vec<VecRom>,
    /// RoPE `{cos, sin}` tables.
    pub ropes: Vec<VecRom>,
    /// Attention units, with their KV caches.
    pub attns: Vec<AttnUnit>,
    /// Scratchpad words used.
    pub spad_words: u32,
    /// Largest matvec input, in 32-blocks (the A8 buffer).
    pub max_blocks: usize,
}

impl Engine {
    /// Whether any instruction runs on `unit` (a name from
    /// [`Instr::unit`]), i.e. whether the engine instantiates it.
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
        /// Source engine.
        from: usize,
        /// First source scratchpad word.
        src: u32,
        /// Destination engine.
        to: usize,
        /// First destination scratchpad word.
        dst: u32,
        /// Words copied.
        n: usize,
        /// The value is `W48`, not a residual `R32`: it cannot cross a
        /// chip link, which carries 32-bit words (RFC 0004).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        wide: bool,
    },
    /// Runs instructions `pc0..pc1` of an engine.
    Run {
        /// The engine.
        engine: usize,
        /// First instruction run.
        pc0: usize,
        /// One past the last instruction run.
        pc1: usize,
    },
}

/// The whole chip's hardware: engines, the per-token schedule and where
/// each node's value lives. Printed as the manifest's `plan`.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// MAC lanes of every matvec unit (power of two, 1..=256); also the
    /// values per weight ROM word.
    pub lanes: usize,
    /// User slots: each has its own KV cache region and position.
    pub users: usize,
    /// Positions per user (the KV cache depth and RoPE table length).
    pub context: usize,
    /// Vocabulary size: token ids and logits per token.
    pub vocab: usize,
    /// Engine 0 (I/O), then one per decoder layer.
    pub engines: Vec<Engine>,
    /// What the chip controller does for one token, in order.
    pub schedule: Vec<Step>,
    /// Where every traced node's value lives.
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

/// Scale fields of one block in an expanded weight word (what `tls_wfetch`
/// gives the units): `{d_mant, d_exp, m_mant, m_exp}`.
pub const SCALE_FIELD_BITS: usize = 36;

/// Blocks of scale fields per expanded weight word.
pub fn blocks_per_word(lanes: usize) -> usize {
    (lanes / nx::A8_BLOCK).max(1)
}

/// Totals of the plan's memory macros, in bits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct MacroBits {
    /// Weight ROM bits the RTL's macros hold (sum of
    /// `MatRom::stored_bits`): what the cost model charges.
    pub weight_rom_stored: u64,
    /// Weight ROM bits with each format packed exactly (sum of
    /// `MatRom::packed_bits`).
    pub weight_rom_packed: u64,
    /// Gain, bias and RoPE ROM bits (`width · depth` each).
    pub vector_rom: u64,
    /// Function-table ROM bits (exp2, recip, rsqrt, sigmoid, gelu), one set
    /// per norm, elem and attn unit instance.
    pub table_rom: u64,
    /// KV-cache SRAM bits, every attention unit and user slot.
    pub kv_sram: u64,
    /// Scratchpad SRAM bits (48-bit words, every engine).
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
