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
//! stream); engine `l / G + 1` runs decoder layer `l`, `G` the layers per
//! engine (1 unless `--layers-per-engine`; a shared engine runs its layers
//! one after the other as one pipeline stage, their matrices stacked in
//! weight banks and their KV caches in regions of one attention unit). A
//! token visits engine 0, then every layer engine in order, then engine 0
//! again; values that cross engines (the residual stream) are copied by
//! the chip controller between phases. Nothing here writes files.

mod legal;
mod lower;
mod text;

pub use legal::{check_limits, Stage, Widths, PC_BITS, POS_BITS};
pub use lower::{plan, plan_shared, plan_with, plan_with_rows, scale_layout, weight_macros};

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
    /// The `--lanes` value (MAC lanes per matvec row, the columns of one
    /// ROM row slice) is not a power of two in 1..=[`MAX_LANES`].
    #[error("--lanes {0}: expected a power of two from 1 to 16384")]
    Lanes(usize),
    /// The `--rows` value (rows per cycle of every matvec unit) is not a
    /// power of two in 1..=[`MAX_ROWS`].
    #[error("--rows {0}: expected a power of two from 1 to 256")]
    Rows(usize),
    /// The `--users` value (KV-cache user slots) is outside 1..=256.
    #[error("--users {0}: expected 1 to 256 user slots")]
    Users(usize),
    /// The plan needs a field wider than the printers' fixed widths (the
    /// message names the field and the value).
    #[error("beyond the emitter's field widths: {0}")]
    Limit(String),
    /// An attention parallelism flag (`--attn-heads`, `--attn-positions`,
    /// `--attn-blocks`) does not fit an attention unit (the message names
    /// the flag, the value and the unit).
    #[error("{0}")]
    AttnParallel(String),
    /// The `--layers-per-engine` value is 0, or its KV regions (user
    /// slots times layers) exceed the attention unit's 256.
    #[error("--layers-per-engine {0}: {1}")]
    LayersPerEngine(usize, String),
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
        /// Which of the unit's layers runs (an engine shared by layers
        /// keeps one KV cache region per layer and user slot: region
        /// `slot · layers + layer`). Left out of the JSON when 0.
        #[serde(skip_serializing_if = "is_zero")]
        layer: usize,
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

fn is_zero(x: &usize) -> bool {
    *x == 0
}

fn is_one(x: &usize) -> bool {
    *x == 1
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
    /// Words per row group (`ceil(cols / lanes)`).
    pub chunks: usize,
    /// Row groups: `ceil(rows / R)`, `R` the plan's rows per cycle (one
    /// word of every macro holds the `R` rows of a group).
    pub groups: usize,
    /// Rows per word of every macro (`tls_wfetch`'s `ROWS`, the plan's
    /// `rows`): word `g` holds rows `g·slices ..`, slice `j` row
    /// `g·slices + j` (zero past the last row).
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
    /// The engine's weight bank that holds it ([`Engine::banks`]).
    #[serde(skip)]
    pub bank: usize,
    /// Its place in the bank: its words start at `slot` times its depth in
    /// every macro of the bank.
    #[serde(skip)]
    pub slot: usize,
}

/// Matrices of one engine stacked in one set of ROM macros behind one
/// `tls_wfetch`: they have the same shape, code width, offsets and scale
/// layout, so one adapter decodes each of them, and an instruction adds
/// its matrix's base word to the adapter's addresses. A bank of one
/// matrix uses that matrix's macros and images as they are.
#[derive(Clone, Debug, Serialize)]
pub struct WeightBank {
    /// Indices into the engine's `mats`, in slot order.
    pub mats: Vec<usize>,
    /// The stacked macros (`codes, scales[, exponents]`): each as wide as
    /// a member's, as deep as all members' together.
    pub macros: Vec<WeightMacro>,
}

impl MatRom {
    /// Code ROM words, the units' weight address space: `groups·chunks`.
    pub fn depth(&self) -> usize {
        self.groups * self.chunks
    }
}

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
    /// Word width in bits, `R` the plan's rows per cycle (the scratchpad
    /// line): `32·R` (`R` Q15.16 norm values, or `R` RoPE `{cos, sin}`
    /// Q1.14 pairs) or `48·R` (`R` `W48` linear biases, one row group);
    /// value `j` in bits `w·j..`.
    pub width: u32,
    /// Words: `ceil(n / R)` for a norm vector, `ceil(rows / R)` for a
    /// linear bias, or `context · ceil((rot/2) / R)` for a RoPE table.
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
    /// `W48` values, `width / 48` per word (zero past the last).
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
    /// KV cache bits (K and V, mantissas and exponents, every user slot
    /// and layer).
    pub kv_bits: u64,
    /// Decoder layers that share the unit (`--layers-per-engine`): each
    /// has its own KV cache region per user slot. Left out of the JSON when
    /// 1.
    #[serde(skip_serializing_if = "is_one")]
    pub layers: usize,
    /// How much of the walk over the cache runs in one cycle (left out of
    /// the JSON when serial).
    #[serde(skip_serializing_if = "AttnParallel::is_serial")]
    pub par: AttnParallel,
}

/// Parallelism of a `tls_attn` unit (its `HP`, `KP` and `BPC`
/// parameters): `heads` query heads of one KV head per pass, `positions`
/// KV positions and `blocks` 32-blocks of head_dim per cycle. All 1 is the
/// serial unit (one 32-block of one head per cycle). The K and V caches are
/// banked `positions · blocks` ways (same total bits); the unit holds one
/// exp2 table per (head, position) lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AttnParallel {
    /// Query heads per pass (`HP`): divides the heads per KV head.
    pub heads: usize,
    /// KV positions per cycle (`KP`): a power of two dividing the context.
    pub positions: usize,
    /// 32-blocks of head_dim per cycle (`BPC`): divides head_dim / 32.
    pub blocks: usize,
}

impl Default for AttnParallel {
    fn default() -> Self {
        AttnParallel {
            heads: 1,
            positions: 1,
            blocks: 1,
        }
    }
}

impl AttnUnit {
    /// What makes two attention nodes one unit's work: heads, KV heads,
    /// head size, window and score scale (the layers of a shared engine
    /// that agree on all of them share one unit, a KV region each).
    pub fn shape(&self) -> (usize, usize, usize, usize, u32, i32) {
        (
            self.heads,
            self.kv_heads,
            self.head_dim,
            self.window,
            self.scale_mant,
            self.scale_shift,
        )
    }
}

impl AttnParallel {
    /// One 32-block of one head per cycle (the default).
    pub fn is_serial(&self) -> bool {
        *self == AttnParallel::default()
    }

    /// exp2 table ROMs the unit holds (one per head and position lane).
    pub fn exp2_tables(&self) -> u64 {
        (self.heads * self.positions) as u64
    }

    /// Table ROM bits beyond the unit's one set (exp2 and recip, counted
    /// by `tables::unit_table_bits("attn")`): the replicated exp2 tables.
    pub fn extra_table_bits(&self) -> u64 {
        if self.exp2_tables() == 1 {
            return 0;
        }
        let exp2: u64 = crate::tables::table_roms()
            .iter()
            .filter(|t| t.file == "exp2.hex")
            .map(|t| t.width as u64 * t.entries.len() as u64)
            .sum();
        (self.exp2_tables() - 1) * exp2
    }
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
/// Engine 0 is the I/O engine, engine `l / G + 1` decoder layer `l` (`G`
/// = [`Plan::layers_per_engine`]).
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
    /// The weight ROM banks that hold `mats` (every matrix in one bank).
    pub banks: Vec<WeightBank>,
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
    /// MAC lanes per row of every matvec unit (power of two,
    /// 1..=[`MAX_LANES`]); also the columns of one ROM row slice.
    pub lanes: usize,
    /// Rows per cycle of every matvec unit (power of two,
    /// 1..=[`MAX_ROWS`]): row slices per weight ROM word, biases per bias
    /// ROM word, and the scratchpad's line (every matvec output is aligned
    /// to it).
    pub rows: usize,
    /// User slots: each has its own KV cache region and position.
    pub users: usize,
    /// Positions per user (the KV cache depth and RoPE table length).
    pub context: usize,
    /// Vocabulary size: token ids and logits per token.
    pub vocab: usize,
    /// Engine 0 (I/O), then one per `layers_per_engine` decoder layers.
    pub engines: Vec<Engine>,
    /// Decoder layers run by one engine (`--layers-per-engine`): its
    /// matrix-vector unit, attention and other units serve them in turn,
    /// one token at a time. Left out of the JSON when 1.
    #[serde(skip_serializing_if = "is_one")]
    pub layers_per_engine: usize,
    /// What the chip controller does for one token, in order.
    pub schedule: Vec<Step>,
    /// Where every traced node's value lives.
    pub slots: Vec<NodeSlot>,
    /// Scratchpad address bits (every engine).
    pub spad_aw: u32,
    /// Attention parallelism asked for (`--attn-heads`, `--attn-positions`,
    /// `--attn-blocks`); every attention unit has it. Left out of the JSON
    /// when serial (a manifest without it re-plans serial).
    #[serde(skip_serializing_if = "AttnParallel::is_serial")]
    pub attn_par: AttnParallel,
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

/// Bits of a count that holds 0 ..= `v` (the words of one scratchpad line
/// in a beat of the logits port, `tls_out`'s `CW`).
pub fn count_bits(v: usize) -> u32 {
    addr_bits(v + 1)
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

/// Largest `--lanes`: a whole row of 16384 columns per word (a Llama-8B
/// row is 4096 or 14336).
pub const MAX_LANES: usize = 16384;
/// Largest `--rows` (rows per cycle and the scratchpad line): 256 lines
/// hold two Llama-8B heads of 128.
pub const MAX_ROWS: usize = 256;

/// Scale fields of one block in an expanded weight word (what `tls_wfetch`
/// gives the units): `{d_mant, d_exp, m_mant, m_exp}`.
pub const SCALE_FIELD_BITS: usize = 36;

/// Blocks of scale fields per expanded weight word.
pub fn blocks_per_word(lanes: usize) -> usize {
    (lanes / nx::A8_BLOCK).max(1)
}

/// Bits of one expanded row slice of a weight word, what `tls_wfetch`
/// gives the units per row: `lanes` 8-bit codes and the scale fields of
/// its blocks.
pub fn expanded_slice_bits(lanes: usize) -> usize {
    lanes * 8 + blocks_per_word(lanes) * SCALE_FIELD_BITS
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
    /// Gives every attention unit the parallelism `par` (the walk over the
    /// KV cache only: the cache bits stay the same). An error names the
    /// flag that does not fit a unit: `heads` must divide the query heads
    /// per KV head, `positions` must be a power of two dividing the
    /// context, `blocks` must divide head_dim / 32.
    pub fn set_attn_parallel(&mut self, par: AttnParallel) -> Result<(), PlanError> {
        let err = |m: String| Err(PlanError::AttnParallel(m));
        if par.heads == 0 || par.positions == 0 || par.blocks == 0 {
            return err(format!(
                "--attn-heads {}, --attn-positions {}, --attn-blocks {}: each must be at least 1",
                par.heads, par.positions, par.blocks
            ));
        }
        if !par.positions.is_power_of_two() || !self.context.is_multiple_of(par.positions) {
            return err(format!(
                "--attn-positions {}: expected a power of two dividing the context ({} positions)",
                par.positions, self.context
            ));
        }
        for e in &mut self.engines {
            for a in &mut e.attns {
                let group = a.heads / a.kv_heads;
                if group % par.heads != 0 {
                    return err(format!(
                        "--attn-heads {}: must divide the {group} query heads per KV head of \
                         attention `{}` ({} heads, {} KV heads)",
                        par.heads, a.node, a.heads, a.kv_heads
                    ));
                }
                let bph = a.head_dim / nx::A8_BLOCK;
                if !bph.is_multiple_of(par.blocks) {
                    return err(format!(
                        "--attn-blocks {}: must divide the {bph} 32-blocks of head_dim {} of \
                         attention `{}`",
                        par.blocks, a.head_dim, a.node
                    ));
                }
                a.par = par;
            }
        }
        self.attn_par = par;
        Ok(())
    }

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
                m.table_rom += a.par.extra_table_bits();
            }
            m.scratchpad_sram += e.spad_words as u64 * 48;
            for u in ["norm", "elem", "attn"] {
                if e.uses(u) {
                    *seen.entry(u).or_insert(0u64) += 1;
                }
            }
        }
        // Table ROMs: one set per unit instance; the element-wise unit has
        // one per lane (`rows` lanes, RFC 0005).
        m.table_rom += seen
            .iter()
            .map(|(u, n)| {
                let lanes = if *u == "elem" { self.rows as u64 } else { 1 };
                n * lanes * crate::tables::unit_table_bits(u)
            })
            .sum::<u64>();
        m
    }
}
