//! The hardware plan: a chip image lowered onto engines, instructions,
//! scratchpad addresses and memory macros (RFC 0003).
//!
//! ```text
//! ChipImage ──plan()──▶ Plan { engines: [Engine { program, spad, roms }], schedule }
//!                          │
//!                          ├─▶ emit.rs   Verilog text (read-only over the plan)
//!                          └─▶ roms.rs   $readmemh images of every macro
//! ```
//!
//! Engine 0 is the I/O engine (embedding, final norm, head, logits
//! stream); engine `l + 1` runs decoder layer `l`. A token visits engine 0,
//! then every layer engine in order, then engine 0 again; values that cross
//! engines (the residual stream) are copied by the chip controller between
//! phases. Nothing here writes files.

use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use taalasc_image::{ImageInfo, ImageSource, ParamInfo};
use taalasc_ir::{NodeIndex, Op, WeightId};
use taalasc_numerics::{self as nx, NormConsts, ScoreScale};

/// Why a chip image cannot be lowered to hardware.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("node `{node}`: {message}")]
    Unsupported { node: String, message: String },
    #[error("weight `{weight}`: {message}")]
    BadParam { weight: String, message: String },
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

/// Scratchpad allocator: first fit over freed regions, deterministic.
#[derive(Default)]
struct Spad {
    /// Free regions `(start, len)`, sorted by start.
    free: Vec<(u32, u32)>,
    top: u32,
}

impl Spad {
    fn alloc(&mut self, n: usize) -> u32 {
        let n = n as u32;
        if let Some(i) = self.free.iter().position(|&(_, len)| len >= n) {
            let (s, len) = self.free[i];
            if len == n {
                self.free.remove(i);
            } else {
                self.free[i] = (s + n, len - n);
            }
            return s;
        }
        let s = self.top;
        self.top += n;
        s
    }

    fn release(&mut self, start: u32, n: usize) {
        self.free.push((start, n as u32));
        self.free.sort_unstable();
        // Merge neighbours.
        let mut merged: Vec<(u32, u32)> = Vec::new();
        for (s, l) in self.free.drain(..) {
            match merged.last_mut() {
                Some((ps, pl)) if *ps + *pl == s => *pl += l,
                _ => merged.push((s, l)),
            }
        }
        self.free = merged;
    }
}

/// Lowers `image` onto engines with `lanes` MAC lanes per matrix-vector
/// unit and `users` user slots (KV cache regions).
pub fn plan(image: &dyn ImageSource, lanes: usize, users: usize) -> Result<Plan, PlanError> {
    plan_with(image, lanes, users, false)
}

/// As [`plan`]; with `split_io` the embedding and the head get an engine
/// each (engine 0 and engine `layers + 1`), so that every engine runs one
/// pipeline stage and the stage chain can be cut across chips (RFC 0004).
pub fn plan_with(
    image: &dyn ImageSource,
    lanes: usize,
    users: usize,
    split_io: bool,
) -> Result<Plan, PlanError> {
    // Metadata only (formats, shapes, widths): no weight value is read.
    let info = image.info();
    let image: &ImageInfo = &info;
    if !(lanes.is_power_of_two() && (1..=256).contains(&lanes)) {
        return Err(PlanError::Lanes(lanes));
    }
    if !(1..=256).contains(&users) {
        return Err(PlanError::Users(users));
    }
    let model = &image.model;
    let order = model.topo_order();
    let n = model.graph.node_count();
    let inputs: Vec<Vec<NodeIndex>> = (0..n).map(|i| model.inputs(NodeIndex::new(i))).collect();
    let name = |nd: NodeIndex| model.graph[nd].name.clone();
    let unsupported = |nd: NodeIndex, message: String| PlanError::Unsupported {
        node: name(nd),
        message,
    };
    let n_layers = model.hparams.n_layers;
    let engine_of = |nd: NodeIndex| model.graph[nd].layer.map_or(0, |l| l + 1);
    // Residual-stream values (R32) versus wide ones (W48), as the reference.
    let mut is_r = vec![false; n];
    for &nd in &order {
        is_r[nd.index()] = match model.graph[nd].op {
            Op::Embed { .. } | Op::AddPositions { .. } => true,
            Op::Add => is_r[inputs[nd.index()][0].index()],
            _ => false,
        };
    }
    // Consumers, for liveness.
    let mut last_use = vec![0usize; n];
    let n_engines = n_layers + 1 + split_io as usize;
    let mut engines: Vec<Engine> = (0..n_engines)
        .map(|e| Engine {
            index: e,
            role: match e {
                0 if split_io => "embed".into(),
                0 => "io".into(),
                e if e > n_layers => "head".into(),
                e => format!("layer {}", e - 1),
            },
            program: Vec::new(),
            nodes: Vec::new(),
            mats: Vec::new(),
            gains: Vec::new(),
            biases: Vec::new(),
            ropes: Vec::new(),
            attns: Vec::new(),
            spad_words: 0,
            max_blocks: 0,
        })
        .collect();
    // Phases: io (before the layers), each layer, io (after).
    let phase_of = |nd: NodeIndex| -> usize {
        match model.graph[nd].layer {
            Some(l) => l + 1,
            None => {
                // Before the first layer: the embedding (and positions).
                if matches!(
                    model.graph[nd].op,
                    Op::Tokens | Op::Embed { .. } | Op::AddPositions { .. }
                ) {
                    0
                } else {
                    n_layers + 1
                }
            }
        }
    };
    for &nd in &order {
        for i in &inputs[nd.index()] {
            last_use[i.index()] = last_use[i.index()].max(phase_of(nd));
        }
    }
    let mut phases: Vec<Vec<NodeIndex>> = vec![Vec::new(); n_layers + 2];
    for &nd in &order {
        phases[phase_of(nd)].push(nd);
    }
    let mut spads: Vec<Spad> = (0..n_engines).map(|_| Spad::default()).collect();
    // Address of each value in each engine that holds it.
    let mut home: Vec<HashMap<usize, u32>> = vec![HashMap::new(); n];
    let mut schedule = Vec::new();
    let mut slots = Vec::new();
    let mut mat_index: Vec<HashMap<WeightId, usize>> = vec![HashMap::new(); n_engines];
    let mut rope_index: Vec<Vec<(Vec<u64>, usize)>> = vec![Vec::new(); n_engines];
    for (ph, nodes) in phases.iter().enumerate() {
        let nodes: Vec<NodeIndex> = nodes
            .iter()
            .copied()
            .filter(|&nd| !matches!(model.graph[nd].op, Op::Tokens))
            .collect();
        if nodes.is_empty() {
            continue;
        }
        let e = if split_io && ph == n_layers + 1 {
            n_layers + 1
        } else {
            engine_of(nodes[0])
        };
        // Copy in operands that live in other engines.
        for &nd in &nodes {
            for &i in &inputs[nd.index()] {
                if matches!(model.graph[i].op, Op::Tokens)
                    || phase_of(i) == ph
                    || home[i.index()].contains_key(&e)
                {
                    continue;
                }
                let (&from, &src) = home[i.index()]
                    .iter()
                    .min()
                    .expect("operands are computed before their consumers");
                let w = model.graph[i].width;
                let dst = spads[e].alloc(w);
                home[i.index()].insert(e, dst);
                schedule.push(Step::Copy {
                    from,
                    src,
                    to: e,
                    dst,
                    n: w,
                    wide: !is_r[i.index()],
                });
            }
        }
        let pc0 = engines[e].program.len();
        // Last use of each value within this phase (instruction position).
        let mut dies_at: HashMap<usize, usize> = HashMap::new();
        for (k, &nd) in nodes.iter().enumerate() {
            for &i in &inputs[nd.index()] {
                dies_at.insert(i.index(), k);
            }
        }
        let mut prev_linear_input: Option<NodeIndex> = None;
        for (k, &nd) in nodes.iter().enumerate() {
            let node = &model.graph[nd];
            let ins = &inputs[nd.index()];
            let addr_of =
                |i: usize, home: &Vec<HashMap<usize, u32>>| -> u32 { home[ins[i].index()][&e] };
            let width = node.width;
            let eng = &mut engines[e];
            let instr = match &node.op {
                Op::Tokens => unreachable!("filtered"),
                Op::Embed { table } | Op::AddPositions { table } => {
                    let positions = matches!(node.op, Op::AddPositions { .. });
                    let mat = mat_rom(image, eng, &mut mat_index[e], *table, lanes)?;
                    let dst = if positions {
                        // In place on the embedding.
                        let a = addr_of(0, &home);
                        if dies_at.get(&ins[0].index()) != Some(&k) || last_use[ins[0].index()] > ph
                        {
                            return Err(unsupported(
                                nd,
                                "the embedding is read again after positions are added".into(),
                            ));
                        }
                        a
                    } else {
                        spads[e].alloc(width)
                    };
                    Instr::Embed {
                        mat,
                        dst,
                        cols: width,
                        positions,
                    }
                }
                Op::RmsNorm { gain, eps } | Op::LayerNorm { gain, eps, .. } => {
                    let c = NormConsts::new(width, *eps);
                    let gain_i = vec_rom(eng, &image.model, *gain, width, true, false);
                    let bias = match &node.op {
                        Op::LayerNorm { bias, .. } => {
                            Some(vec_rom(eng, &image.model, *bias, width, true, false))
                        }
                        _ => None,
                    };
                    Instr::Norm {
                        src: addr_of(0, &home),
                        dst: spads[e].alloc(width),
                        n: width,
                        m_n: c.m_n,
                        eps: c.eps_fixed,
                        gain: gain_i,
                        bias,
                    }
                }
                Op::Linear { weight, bias } => {
                    let mat = mat_rom(image, eng, &mut mat_index[e], *weight, lanes)?;
                    let cols = eng.mats[mat].cols;
                    if !cols.is_multiple_of(nx::A8_BLOCK) {
                        return Err(unsupported(
                            nd,
                            format!("input width {cols} is not a multiple of 32"),
                        ));
                    }
                    eng.max_blocks = eng.max_blocks.max(cols / nx::A8_BLOCK);
                    let bias = bias.map(|b| vec_rom(eng, &image.model, b, width, false, true));
                    let load = prev_linear_input != Some(ins[0]);
                    prev_linear_input = Some(ins[0]);
                    Instr::Linear {
                        mat,
                        src: addr_of(0, &home),
                        dst: spads[e].alloc(width),
                        rows: width,
                        cols,
                        load,
                        bias,
                    }
                }
                Op::Rope {
                    n_heads,
                    head_dim,
                    spec,
                } => {
                    let freqs = spec.inv_freqs();
                    let key: Vec<u64> = freqs.iter().map(|f| f.to_bits()).collect();
                    let table = match rope_index[e].iter().find(|(k, _)| *k == key) {
                        Some(&(_, t)) => t,
                        None => {
                            let t = eng.ropes.len();
                            eng.ropes.push(VecRom {
                                name: format!("rope{t}"),
                                width: 32,
                                depth: image.context * freqs.len(),
                                file: format!("e{e}_rope{t}.hex"),
                                source: VecSource::Rope { inv_freqs: freqs },
                            });
                            rope_index[e].push((key, t));
                            t
                        }
                    };
                    // In place: the input must die here.
                    if dies_at.get(&ins[0].index()) != Some(&k) || last_use[ins[0].index()] > ph {
                        return Err(unsupported(
                            nd,
                            "RoPE input is read by another node too".into(),
                        ));
                    }
                    Instr::Rope {
                        table,
                        src: addr_of(0, &home),
                        heads: *n_heads,
                        head_dim: *head_dim,
                        rot: spec.rotary_dim,
                    }
                }
                Op::Attention {
                    n_heads,
                    n_kv_heads,
                    head_dim,
                    window,
                } => {
                    if !head_dim.is_multiple_of(nx::A8_BLOCK) || n_heads % n_kv_heads != 0 {
                        return Err(unsupported(
                            nd,
                            format!("head_dim {head_dim} must be a multiple of 32 and heads {n_heads} a multiple of KV heads {n_kv_heads}"),
                        ));
                    }
                    let s = ScoreScale::inv_sqrt(*head_dim);
                    let unit = eng.attns.len();
                    eng.attns.push(AttnUnit {
                        node: node.name.clone(),
                        heads: *n_heads,
                        kv_heads: *n_kv_heads,
                        head_dim: *head_dim,
                        window: window.unwrap_or(0),
                        scale_mant: s.mant,
                        scale_shift: s.shift,
                        kv_bits: (users * image.context) as u64
                            * kv_bits_per_position(*n_kv_heads, *head_dim),
                    });
                    Instr::Attn {
                        unit,
                        q: addr_of(0, &home),
                        k: addr_of(1, &home),
                        v: addr_of(2, &home),
                        dst: spads[e].alloc(width),
                    }
                }
                Op::Add | Op::Mul => {
                    let (a, b) = (addr_of(0, &home), addr_of(1, &home));
                    let op = match (&node.op, is_r[ins[0].index()], is_r[ins[1].index()]) {
                        (Op::Add, true, false) => ElemOp::Resid,
                        (Op::Add, false, false) => ElemOp::AddW,
                        (Op::Mul, false, false) => ElemOp::MulW,
                        _ => {
                            return Err(unsupported(
                                nd,
                                "operands must be (residual, wide) for add or (wide, wide)".into(),
                            ))
                        }
                    };
                    Instr::Elem {
                        op,
                        a,
                        b,
                        dst: spads[e].alloc(width),
                        n: width,
                    }
                }
                Op::Silu | Op::GeluTanh => Instr::Elem {
                    op: if matches!(node.op, Op::Silu) {
                        ElemOp::Silu
                    } else {
                        ElemOp::Gelu
                    },
                    a: addr_of(0, &home),
                    b: 0,
                    dst: spads[e].alloc(width),
                    n: width,
                },
                Op::Logits => Instr::Out {
                    src: addr_of(0, &home),
                    n: width,
                },
            };
            // The value's home in this engine.
            let addr = match &instr {
                Instr::Embed { dst, .. }
                | Instr::Norm { dst, .. }
                | Instr::Linear { dst, .. }
                | Instr::Attn { dst, .. }
                | Instr::Elem { dst, .. } => Some(*dst),
                Instr::Rope { src, .. } => Some(*src),
                Instr::Out { .. } => None,
            };
            let pc = engines[e].program.len();
            if let Some(a) = addr {
                home[nd.index()].insert(e, a);
                slots.push(NodeSlot {
                    node: node.name.clone(),
                    engine: e,
                    pc,
                    addr: a,
                    width,
                });
            }
            engines[e].program.push(instr);
            engines[e].nodes.push(node.name.clone());
            // Free operands that die here (not in-place ones: their region
            // now belongs to this node).
            let in_place = matches!(
                engines[e].program.last(),
                Some(Instr::Rope { .. })
                    | Some(Instr::Embed {
                        positions: true,
                        ..
                    })
            );
            for &i in ins {
                if in_place || matches!(model.graph[i].op, Op::Tokens) {
                    continue;
                }
                let dead_here = dies_at.get(&i.index()) == Some(&k) && last_use[i.index()] <= ph;
                if dead_here {
                    if let Some(a) = home[i.index()].remove(&e) {
                        spads[e].release(a, model.graph[i].width);
                    }
                }
            }
        }
        schedule.push(Step::Run {
            engine: e,
            pc0,
            pc1: engines[e].program.len(),
        });
        // Values that other engines still need stay; values only this
        // engine used are freed above. So the I/O engine's embedding
        // output (read by the next engine) is never reused by its head
        // phase: the token pipeline (RFC 0003) runs one token's head while
        // the next token's embedding waits there to be handed on.
    }
    for (e, s) in spads.iter().enumerate() {
        engines[e].spad_words = s.top.max(1);
    }
    let max_words = engines.iter().map(|e| e.spad_words).max().unwrap_or(1);
    let plan = Plan {
        lanes,
        users,
        context: image.context,
        vocab: model.hparams.vocab_size,
        engines,
        schedule,
        slots,
        spad_aw: addr_bits(max_words as usize),
    };
    crate::emit::check_limits(&plan).map_err(PlanError::Limit)?;
    Ok(plan)
}

/// The engine's weight ROM for matrix `id` (shared when read twice, e.g.
/// a tied table read by the embedding and the head).
fn mat_rom(
    image: &ImageInfo,
    eng: &mut Engine,
    index: &mut HashMap<WeightId, usize>,
    id: WeightId,
    lanes: usize,
) -> Result<usize, PlanError> {
    if let Some(&m) = index.get(&id) {
        return Ok(m);
    }
    let name = image.model.weight(id).name.clone();
    let q = match image.param(id) {
        ParamInfo::Matrix(q) => q,
        _ => {
            return Err(PlanError::BadParam {
                weight: name,
                message: "expected a quantized matrix".into(),
            })
        }
    };
    if !q.cols.is_multiple_of(nx::A8_BLOCK) {
        return Err(PlanError::BadParam {
            weight: name,
            message: format!("{} columns are not a multiple of 32", q.cols),
        });
    }
    let bits = q.format.bits;
    let chunks = q.cols.div_ceil(lanes);
    let word_bits = lanes * bits as usize + blocks_per_word(lanes) * SCALE_FIELD_BITS;
    let m = eng.mats.len();
    eng.mats.push(MatRom {
        weight: name.clone(),
        id,
        rows: q.rows,
        cols: q.cols,
        bits,
        asym: !q.format.symmetric,
        code_bias: q.format.code_bias(),
        format: q.format_name(),
        chunks,
        word_bits,
        file: format!("e{}_{}.hex", eng.index, file_name(&name)),
        stored_bits: (q.rows * chunks * word_bits) as u64,
        packed_bits: q.storage_bits(),
    });
    index.insert(id, m);
    Ok(m)
}

/// A gain/bias ROM of the engine (one per weight).
fn vec_rom(
    eng: &mut Engine,
    model: &taalasc_ir::Model,
    id: WeightId,
    depth: usize,
    fixed: bool,
    bias: bool,
) -> usize {
    let name = model.weight(id).name.clone();
    let list = if bias {
        &mut eng.biases
    } else {
        &mut eng.gains
    };
    if let Some(i) = list.iter().position(|r| r.name == name) {
        return i;
    }
    list.push(VecRom {
        file: format!("e{}_{}.hex", eng.index, file_name(&name)),
        name,
        width: if fixed { 32 } else { 48 },
        depth,
        source: if fixed {
            VecSource::Fixed(id)
        } else {
            VecSource::Wide(id)
        },
    });
    list.len() - 1
}

/// Totals of the plan's memory macros, in bits.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MacroBits {
    pub weight_rom_stored: u64,
    pub weight_rom_packed: u64,
    pub vector_rom: u64,
    pub table_rom: u64,
    pub kv_sram: u64,
    pub scratchpad_sram: u64,
}

impl Plan {
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
