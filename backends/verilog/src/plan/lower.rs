//! Lowering a chip image onto engines: instruction selection, scratchpad
//! allocation, the inter-engine copies of the schedule, then legalization
//! (`legal.rs`). Every decision the printers rely on is taken here.

use super::legal::legalize;
use super::{
    addr_bits, file_name, kv_bits_per_position, AttnParallel, AttnUnit, ElemOp, Engine, Instr,
    MatRom, NodeSlot, Plan, PlanError, ScaleLayout, Step, VecRom, VecSource, WeightBank,
    WeightMacro, MAX_LANES, MAX_ROWS,
};
use std::collections::HashMap;
use taalasc_image::{ImageError, ImageInfo, ImageSource, ParamInfo, Types};
use taalasc_ir::{Model, NodeIndex, Op, WeightId};
use taalasc_numerics::{self as nx, NormConsts, ScoreScale};
use taalasc_quant::{ScaleStore, WeightFormat};

/// Scratchpad allocator: first fit over freed regions, deterministic.
#[derive(Default)]
struct Spad {
    /// Free regions `(start, len)`, sorted by start.
    free: Vec<(u32, u32)>,
    top: u32,
    /// Words per scratchpad line: every vector starts on a line, so the
    /// vector-wide units read and write whole lines (RFC 0005).
    line: u32,
}

impl Spad {
    fn alloc(&mut self, n: usize) -> u32 {
        self.alloc_aligned(n, self.line.max(1) as usize)
    }

    /// `n` words starting at a multiple of `align` (a matvec output: the
    /// unit writes lines of `align` words).
    fn alloc_aligned(&mut self, n: usize, align: usize) -> u32 {
        let (n, al) = (n as u32, align as u32);
        let fit = |&(s, len): &(u32, u32)| s.next_multiple_of(al) + n <= s + len;
        if let Some(i) = self.free.iter().position(fit) {
            let (s, len) = self.free[i];
            let a = s.next_multiple_of(al);
            let mut parts = Vec::with_capacity(2);
            if a > s {
                parts.push((s, a - s));
            }
            if a + n < s + len {
                parts.push((a + n, s + len - a - n));
            }
            self.free.splice(i..=i, parts);
            return a;
        }
        let a = self.top.next_multiple_of(al);
        if a > self.top {
            self.release(self.top, (a - self.top) as usize);
        }
        self.top = a + n;
        a
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

/// As [`plan_with_rows`] with one row per cycle.
pub fn plan_with(
    image: &dyn ImageSource,
    lanes: usize,
    users: usize,
    split_io: bool,
) -> Result<Plan, PlanError> {
    plan_with_rows(image, lanes, 1, users, split_io)
}

/// As [`plan`], with `rows` rows per cycle of every matvec unit; with
/// `split_io` the embedding and the head get an engine each (engine 0 and
/// the last engine), so that every engine runs one pipeline stage and
/// the stage chain can be cut across chips (RFC 0004).
pub fn plan_with_rows(
    image: &dyn ImageSource,
    lanes: usize,
    rows: usize,
    users: usize,
    split_io: bool,
) -> Result<Plan, PlanError> {
    plan_shared(image, lanes, rows, users, split_io, 1)
}

/// As [`plan_with_rows`], with `layers_per_engine` decoder layers on each
/// layer engine (the last engine takes what remains): one matrix-vector
/// unit, attention unit and set of element units serves them in turn.
pub fn plan_shared(
    image: &dyn ImageSource,
    lanes: usize,
    rows: usize,
    users: usize,
    split_io: bool,
    layers_per_engine: usize,
) -> Result<Plan, PlanError> {
    plan_image(image, lanes, rows, users, split_io, layers_per_engine).map_err(|e| {
        // An image read from a folder: its errors name the folder's graph.json.
        match (e, image.graph_path()) {
            (
                PlanError::Image(e @ (ImageError::Unsupported { .. } | ImageError::Param { .. })),
                Some(path),
            ) => PlanError::Image(ImageError::Format {
                path: path.display().to_string(),
                message: e.to_string(),
            }),
            // A structure the emitter cannot hand over is the graph's too.
            (PlanError::Limit(m), Some(path)) => {
                PlanError::Limit(format!("{}: {m}", path.display()))
            }
            (e, _) => e,
        }
    })
}

/// [`plan_shared`], with errors about the image as found.
fn plan_image(
    image: &dyn ImageSource,
    lanes: usize,
    rows: usize,
    users: usize,
    split_io: bool,
    layers_per_engine: usize,
) -> Result<Plan, PlanError> {
    // Metadata only (formats, shapes, widths): no weight value is read.
    let info = image.info();
    check_options(lanes, rows, users)?;
    let n_layers = info.model.hparams.n_layers;
    if layers_per_engine == 0 {
        return Err(PlanError::LayersPerEngine(
            0,
            "expected at least 1 decoder layer per engine".into(),
        ));
    }
    // KV regions of one attention unit: `cfg_slot` is 8 bits.
    let shared = layers_per_engine.min(n_layers.max(1));
    if users * shared > 256 {
        return Err(PlanError::LayersPerEngine(
            layers_per_engine,
            format!(
                "{users} user slots times {shared} layers is {} KV cache regions in one attention unit; at most 256 fit its slot field",
                users * shared
            ),
        ));
    }
    // The image's legality and every value's datapath type come from the
    // image verifier: the plan infers none of them again.
    let types = taalasc_image::verify(&info)?;
    let mut lw = Lowering::new(&info, types, (lanes, rows), users, split_io, shared);
    for (ph, nodes) in lw.phases().into_iter().enumerate() {
        lw.lower_phase(ph, &nodes)?;
    }
    legalize(lw.finish())
}

/// The lane, row and user counts the units support.
fn check_options(lanes: usize, rows: usize, users: usize) -> Result<(), PlanError> {
    if !(lanes.is_power_of_two() && (1..=MAX_LANES).contains(&lanes)) {
        return Err(PlanError::Lanes(lanes));
    }
    if !(rows.is_power_of_two() && (1..=MAX_ROWS).contains(&rows)) {
        return Err(PlanError::Rows(rows));
    }
    if !(1..=256).contains(&users) {
        return Err(PlanError::Users(users));
    }
    Ok(())
}

/// The engines of a plan before lowering: engine 0 (I/O, or embedding
/// with `split_io`), one per `g` layers, then the head's with `split_io`.
fn new_engines(n_layers: usize, g: usize, split_io: bool) -> Vec<Engine> {
    let layer_engines = n_layers.div_ceil(g);
    let n_engines = layer_engines + 1 + split_io as usize;
    (0..n_engines)
        .map(|e| Engine {
            index: e,
            role: match e {
                0 if split_io => "embed".into(),
                0 => "io".into(),
                e if e > layer_engines => "head".into(),
                e if g == 1 => format!("layer {}", e - 1),
                e => {
                    let l0 = (e - 1) * g;
                    format!("layers {l0}-{}", (l0 + g).min(n_layers) - 1)
                }
            },
            program: Vec::new(),
            nodes: Vec::new(),
            mats: Vec::new(),
            banks: Vec::new(),
            gains: Vec::new(),
            biases: Vec::new(),
            ropes: Vec::new(),
            attns: Vec::new(),
            spad_words: 0,
            max_blocks: 0,
        })
        .collect()
}

/// The state of a lowering: the engines being filled, their scratchpads,
/// where each value lives, and the schedule so far.
struct Lowering<'a> {
    image: &'a ImageInfo,
    model: &'a Model,
    lanes: usize,
    /// Rows per cycle of the matvec units (the scratchpad line).
    rows: usize,
    users: usize,
    split_io: bool,
    n_layers: usize,
    /// Decoder layers per layer engine.
    per_engine: usize,
    order: Vec<NodeIndex>,
    inputs: Vec<Vec<NodeIndex>>,
    /// Every value's datapath type (R32 residual or W48 wide), from the
    /// image verifier.
    types: Types,
    /// The last phase that reads each value.
    last_use: Vec<usize>,
    engines: Vec<Engine>,
    spads: Vec<Spad>,
    /// Address of each value in each engine that holds it.
    home: Vec<HashMap<usize, u32>>,
    schedule: Vec<Step>,
    slots: Vec<NodeSlot>,
    mat_index: Vec<HashMap<WeightId, usize>>,
    rope_index: Vec<Vec<(Vec<u64>, usize)>>,
}

/// Per-phase state of instruction selection.
struct PhaseCtx {
    ph: usize,
    e: usize,
    /// Last use of each value within this phase (instruction position).
    dies_at: HashMap<usize, usize>,
    prev_linear_input: Option<NodeIndex>,
}

impl<'a> Lowering<'a> {
    fn new(
        image: &'a ImageInfo,
        types: Types,
        (lanes, rows): (usize, usize),
        users: usize,
        split_io: bool,
        per_engine: usize,
    ) -> Self {
        let model = &image.model;
        let order = model.topo_order();
        let n = model.graph.node_count();
        let inputs: Vec<Vec<NodeIndex>> = (0..n).map(|i| model.inputs(NodeIndex::new(i))).collect();
        let n_layers = model.hparams.n_layers;
        let engines = new_engines(n_layers, per_engine, split_io);
        let n_engines = engines.len();
        let mut lw = Lowering {
            image,
            model,
            lanes,
            rows,
            users,
            split_io,
            n_layers,
            per_engine,
            order,
            inputs,
            types,
            last_use: vec![0usize; n],
            engines,
            spads: (0..n_engines)
                .map(|_| Spad {
                    line: rows as u32,
                    ..Spad::default()
                })
                .collect(),
            home: vec![HashMap::new(); n],
            schedule: Vec::new(),
            slots: Vec::new(),
            mat_index: vec![HashMap::new(); n_engines],
            rope_index: vec![Vec::new(); n_engines],
        };
        // Consumers, for liveness.
        for k in 0..lw.order.len() {
            let nd = lw.order[k];
            let ph = lw.phase_of(nd);
            for &i in &lw.inputs[nd.index()] {
                lw.last_use[i.index()] = lw.last_use[i.index()].max(ph);
            }
        }
        lw
    }

    /// Phases: io (before the layers), each layer, io (after).
    fn phase_of(&self, nd: NodeIndex) -> usize {
        match self.model.graph[nd].layer {
            Some(l) => l + 1,
            None => {
                // Before the first layer: the embedding (and positions).
                if matches!(
                    self.model.graph[nd].op,
                    Op::Tokens | Op::Embed { .. } | Op::AddPositions { .. }
                ) {
                    0
                } else {
                    self.n_layers + 1
                }
            }
        }
    }

    /// The nodes of each phase, in topological order.
    fn phases(&self) -> Vec<Vec<NodeIndex>> {
        let mut phases: Vec<Vec<NodeIndex>> = vec![Vec::new(); self.n_layers + 2];
        for &nd in &self.order {
            phases[self.phase_of(nd)].push(nd);
        }
        phases
    }

    fn unsupported(&self, nd: NodeIndex, message: String) -> PlanError {
        PlanError::Image(ImageError::Unsupported {
            node: self.model.graph[nd].name.clone(),
            message,
        })
    }

    /// Lowers the nodes of phase `ph` onto one engine: copies of operands
    /// from other engines, then one instruction per node, then a run step.
    fn lower_phase(&mut self, ph: usize, nodes: &[NodeIndex]) -> Result<(), PlanError> {
        let model = self.model;
        let nodes: Vec<NodeIndex> = nodes
            .iter()
            .copied()
            .filter(|&nd| !matches!(model.graph[nd].op, Op::Tokens))
            .collect();
        if nodes.is_empty() {
            return Ok(());
        }
        let e = if self.split_io && ph == self.n_layers + 1 {
            self.engines.len() - 1
        } else {
            model.graph[nodes[0]]
                .layer
                .map_or(0, |l| l / self.per_engine + 1)
        };
        self.copy_in(ph, e, &nodes);
        let pc0 = self.engines[e].program.len();
        // The engine ran the previous phase and nothing was copied in: this
        // phase continues that run (one pipeline stage, one token at a
        // time in the engine).
        let continues = matches!(
            self.schedule.last(),
            Some(Step::Run { engine, pc1, .. }) if *engine == e && *pc1 == pc0
        );
        let mut dies_at: HashMap<usize, usize> = HashMap::new();
        for (k, &nd) in nodes.iter().enumerate() {
            for &i in &self.inputs[nd.index()] {
                dies_at.insert(i.index(), k);
            }
        }
        let mut cx = PhaseCtx {
            ph,
            e,
            dies_at,
            prev_linear_input: None,
        };
        for (k, &nd) in nodes.iter().enumerate() {
            let instr = self.select(&mut cx, k, nd)?;
            self.place(&cx, k, nd, instr);
        }
        let end = self.engines[e].program.len();
        match self.schedule.last_mut() {
            Some(Step::Run { pc1, .. }) if continues => *pc1 = end,
            _ => self.schedule.push(Step::Run {
                engine: e,
                pc0,
                pc1: end,
            }),
        }
        // Values that other engines still need stay; values only this
        // engine used are freed in `place`. So the I/O engine's embedding
        // output (read by the next engine) is never reused by its head
        // phase: the token pipeline (RFC 0003) runs one token's head while
        // the next token's embedding waits there to be handed on.
        Ok(())
    }

    /// Copy in operands of phase `ph` that live in other engines.
    fn copy_in(&mut self, ph: usize, e: usize, nodes: &[NodeIndex]) {
        let model = self.model;
        for &nd in nodes {
            for &i in &self.inputs[nd.index()] {
                if matches!(model.graph[i].op, Op::Tokens)
                    || self.phase_of(i) == ph
                    || self.home[i.index()].contains_key(&e)
                {
                    continue;
                }
                let (&from, &src) = self.home[i.index()]
                    .iter()
                    .min()
                    .expect("operands are computed before their consumers");
                let w = model.graph[i].width;
                let dst = self.spads[e].alloc(w);
                self.home[i.index()].insert(e, dst);
                self.schedule.push(Step::Copy {
                    from,
                    src,
                    to: e,
                    dst,
                    n: w,
                    wide: !self.types.is_residual(i),
                });
            }
        }
    }

    /// Whether operand `i` of node `k` of the phase is read by nothing
    /// after it (so it may be overwritten in place).
    fn dies_here(&self, cx: &PhaseCtx, k: usize, i: NodeIndex) -> bool {
        cx.dies_at.get(&i.index()) == Some(&k) && self.last_use[i.index()] <= cx.ph
    }

    /// Instruction selection for node `nd` (the `k`-th of its phase):
    /// allocates its output and the ROMs it reads.
    fn select(&mut self, cx: &mut PhaseCtx, k: usize, nd: NodeIndex) -> Result<Instr, PlanError> {
        let (image, model, e) = (self.image, self.model, cx.e);
        let node = &model.graph[nd];
        let ins = &self.inputs[nd.index()];
        let addr_of = |i: usize| -> u32 { self.home[ins[i].index()][&e] };
        let width = node.width;
        Ok(match &node.op {
            Op::Tokens => unreachable!("filtered"),
            Op::Embed { table } | Op::AddPositions { table } => {
                let positions = matches!(node.op, Op::AddPositions { .. });
                let mat = mat_rom(
                    image,
                    &mut self.engines[e],
                    &mut self.mat_index[e],
                    *table,
                    (self.lanes, self.rows),
                )?;
                let dst = if positions {
                    // In place on the embedding.
                    if !self.dies_here(cx, k, ins[0]) {
                        return Err(self.unsupported(
                            nd,
                            "the embedding is read again after positions are added".into(),
                        ));
                    }
                    addr_of(0)
                } else {
                    self.spads[e].alloc(width)
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
                let eng = &mut self.engines[e];
                let gain_i = vec_rom(eng, model, *gain, width, true, self.rows);
                let bias = match &node.op {
                    Op::LayerNorm { bias, .. } => {
                        Some(vec_rom(eng, model, *bias, width, true, self.rows))
                    }
                    _ => None,
                };
                Instr::Norm {
                    src: addr_of(0),
                    dst: self.spads[e].alloc(width),
                    n: width,
                    m_n: c.m_n,
                    eps: c.eps_fixed,
                    gain: gain_i,
                    bias,
                }
            }
            Op::Linear { weight, bias } => {
                let mat = mat_rom(
                    image,
                    &mut self.engines[e],
                    &mut self.mat_index[e],
                    *weight,
                    (self.lanes, self.rows),
                )?;
                let eng = &mut self.engines[e];
                // Whole activation blocks: the image verifier's rule; and
                // at least one scratchpad line (the A8 buffer's banks each
                // take a part of a line).
                let cols = eng.mats[mat].cols;
                eng.max_blocks = eng
                    .max_blocks
                    .max(cols / nx::A8_BLOCK)
                    .max(self.rows.div_ceil(nx::A8_BLOCK));
                let rpc = self.rows;
                let bias = bias.map(|b| vec_rom(eng, model, b, width, false, rpc));
                let load = cx.prev_linear_input != Some(ins[0]);
                cx.prev_linear_input = Some(ins[0]);
                Instr::Linear {
                    mat,
                    src: addr_of(0),
                    // Line writes of `rows` words: aligned to the line.
                    dst: self.spads[e].alloc_aligned(width, rpc),
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
                let table = match self.rope_index[e].iter().find(|(k, _)| *k == key) {
                    Some(&(_, t)) => t,
                    None => {
                        let eng = &mut self.engines[e];
                        let t = eng.ropes.len();
                        // Lines of `rows` pairs (`tls_rope`'s lanes): words
                        // of `rows` entries, ceil(pairs / rows) per position.
                        eng.ropes.push(VecRom {
                            name: format!("rope{t}"),
                            width: 32 * self.rows as u32,
                            depth: image.context * freqs.len().div_ceil(self.rows),
                            file: format!("e{e}_rope{t}.hex"),
                            source: VecSource::Rope { inv_freqs: freqs },
                        });
                        self.rope_index[e].push((key, t));
                        t
                    }
                };
                // In place: the input must die here.
                if !self.dies_here(cx, k, ins[0]) {
                    return Err(
                        self.unsupported(nd, "RoPE input is read by another node too".into())
                    );
                }
                Instr::Rope {
                    table,
                    src: addr_of(0),
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
                // head_dim in whole activation blocks and heads a multiple of
                // KV heads: the image verifier's rules.
                let s = ScoreScale::inv_sqrt(*head_dim);
                let eng = &mut self.engines[e];
                let region = (self.users * image.context) as u64
                    * kv_bits_per_position(*n_kv_heads, *head_dim);
                let a = AttnUnit {
                    node: node.name.clone(),
                    heads: *n_heads,
                    kv_heads: *n_kv_heads,
                    head_dim: *head_dim,
                    window: window.unwrap_or(0),
                    scale_mant: s.mant,
                    scale_shift: s.shift,
                    kv_bits: region,
                    layers: 1,
                    par: AttnParallel::default(),
                };
                // A layer of a shared engine uses the unit of an earlier
                // layer of the same shape, in a KV region of its own.
                let same = |u: &AttnUnit| u.shape() == a.shape();
                let (unit, layer) = match eng.attns.iter().position(same) {
                    Some(u) => {
                        let x = &mut eng.attns[u];
                        x.layers += 1;
                        x.kv_bits += region;
                        (u, x.layers - 1)
                    }
                    None => {
                        eng.attns.push(a);
                        (eng.attns.len() - 1, 0)
                    }
                };
                Instr::Attn {
                    unit,
                    q: addr_of(0),
                    k: addr_of(1),
                    v: addr_of(2),
                    dst: self.spads[e].alloc(width),
                    layer,
                }
            }
            Op::Add | Op::Mul => {
                let (a, b) = (addr_of(0), addr_of(1));
                let op = match (
                    &node.op,
                    self.types.is_residual(ins[0]),
                    self.types.is_residual(ins[1]),
                ) {
                    (Op::Add, true, false) => ElemOp::Resid,
                    (Op::Add, false, false) => ElemOp::AddW,
                    (Op::Mul, false, false) => ElemOp::MulW,
                    _ => unreachable!("the image verifier admits no other operand types"),
                };
                Instr::Elem {
                    op,
                    a,
                    b,
                    dst: self.spads[e].alloc(width),
                    n: width,
                }
            }
            Op::Silu | Op::GeluTanh => Instr::Elem {
                op: if matches!(node.op, Op::Silu) {
                    ElemOp::Silu
                } else {
                    ElemOp::Gelu
                },
                a: addr_of(0),
                b: 0,
                dst: self.spads[e].alloc(width),
                n: width,
            },
            Op::Logits => Instr::Out {
                src: addr_of(0),
                n: width,
            },
        })
    }

    /// Appends `instr` (node `nd`, the `k`-th of its phase) to its
    /// engine's program, records where its value lives, and frees the
    /// operands that die here.
    fn place(&mut self, cx: &PhaseCtx, k: usize, nd: NodeIndex, instr: Instr) {
        let (model, e) = (self.model, cx.e);
        let node = &model.graph[nd];
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
        let pc = self.engines[e].program.len();
        if let Some(a) = addr {
            self.home[nd.index()].insert(e, a);
            self.slots.push(NodeSlot {
                node: node.name.clone(),
                engine: e,
                pc,
                addr: a,
                width: node.width,
            });
        }
        // Free operands that die here (not in-place ones: their region
        // now belongs to this node).
        let in_place = matches!(
            instr,
            Instr::Rope { .. }
                | Instr::Embed {
                    positions: true,
                    ..
                }
        );
        self.engines[e].program.push(instr);
        self.engines[e].nodes.push(node.name.clone());
        for k_in in 0..self.inputs[nd.index()].len() {
            let i = self.inputs[nd.index()][k_in];
            if in_place || matches!(model.graph[i].op, Op::Tokens) {
                continue;
            }
            if self.dies_here(cx, k, i) {
                if let Some(a) = self.home[i.index()].remove(&e) {
                    self.spads[e].release(a, model.graph[i].width);
                }
            }
        }
    }

    /// The plan: scratchpad sizes and address width fixed.
    fn finish(mut self) -> Plan {
        for (e, s) in self.spads.iter().enumerate() {
            // Whole lines: the scratchpad is `rows` banks of equal depth.
            self.engines[e].spad_words = s.top.max(1).next_multiple_of(self.rows as u32);
        }
        let max_words = self.engines.iter().map(|e| e.spad_words).max().unwrap_or(1);
        for e in &mut self.engines {
            stack_banks(e);
        }
        Plan {
            lanes: self.lanes,
            rows: self.rows,
            users: self.users,
            context: self.image.context,
            vocab: self.model.hparams.vocab_size,
            engines: self.engines,
            schedule: self.schedule,
            slots: self.slots,
            spad_aw: addr_bits(max_words as usize),
            attn_par: AttnParallel::default(),
            layers_per_engine: self.per_engine,
            stages: Vec::new(),
            widths: Default::default(),
        }
    }
}

/// Groups the engine's matrices into weight banks: matrices of the same
/// shape, code width, offsets, code bias and scale layout share one set of
/// macros and one `tls_wfetch`, stacked in the order they were first read.
/// A bank of one matrix keeps that matrix's macros and image names.
fn stack_banks(e: &mut Engine) {
    type Key = (usize, usize, u8, bool, i32, ScaleLayout, usize);
    let key = |m: &MatRom| -> Key {
        (
            m.rows,
            m.cols,
            m.bits,
            m.asym,
            m.code_bias,
            m.scales,
            m.slices,
        )
    };
    let mut keys: Vec<Key> = Vec::new();
    let mut banks: Vec<Vec<usize>> = Vec::new();
    for (k, m) in e.mats.iter().enumerate() {
        match keys.iter().position(|x| *x == key(m)) {
            Some(b) => banks[b].push(k),
            None => {
                keys.push(key(m));
                banks.push(vec![k]);
            }
        }
    }
    e.banks = banks
        .into_iter()
        .enumerate()
        .map(|(b, mats)| {
            for (slot, &k) in mats.iter().enumerate() {
                e.mats[k].bank = b;
                e.mats[k].slot = slot;
            }
            let first = &e.mats[mats[0]];
            let macros = if mats.len() == 1 {
                first.macros.clone()
            } else {
                let stem = format!("e{}_bank{b}", e.index);
                first
                    .macros
                    .iter()
                    .map(|r| WeightMacro {
                        kind: r.kind,
                        width: r.width,
                        depth: r.depth * mats.len(),
                        file: match r.kind {
                            "codes" => format!("{stem}.hex"),
                            "scales" => format!("{stem}.s.hex"),
                            _ => format!("{stem}.e.hex"),
                        },
                    })
                    .collect()
            };
            WeightBank { mats, macros }
        })
        .collect();
}

/// The engine's weight ROM for matrix `id` (shared when read twice,
/// e.g. a tied table read by the embedding and the head).
fn mat_rom(
    image: &ImageInfo,
    eng: &mut Engine,
    index: &mut HashMap<WeightId, usize>,
    id: WeightId,
    (lanes, rpc): (usize, usize),
) -> Result<usize, PlanError> {
    if let Some(&m) = index.get(&id) {
        return Ok(m);
    }
    let name = image.model.weight(id).name.clone();
    let q = match image.param(id) {
        ParamInfo::Matrix(q) => q,
        _ => {
            return Err(ImageError::Param {
                weight: name,
                message: "expected a quantized matrix".into(),
            }
            .into())
        }
    };
    if !q.cols.is_multiple_of(nx::A8_BLOCK) {
        return Err(ImageError::Param {
            weight: name,
            message: format!("{} columns are not a multiple of 32", q.cols),
        }
        .into());
    }
    let bits = q.format.bits;
    let chunks = q.cols.div_ceil(lanes);
    let groups = q.rows.div_ceil(rpc);
    let scales = scale_layout(&q.format, q.cols, lanes);
    let file = format!("e{}_{}.hex", eng.index, file_name(&name));
    let macros = weight_macros(
        q.rows,
        rpc,
        chunks,
        lanes,
        bits,
        !q.format.symmetric,
        &scales,
        &file,
    );
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
        groups,
        slices: rpc,
        scales,
        stored_bits: macros.iter().map(|r| (r.width * r.depth) as u64).sum(),
        macros,
        file,
        packed_bits: q.storage_bits(),
        bank: 0,
        slot: 0,
    });
    index.insert(id, m);
    Ok(m)
}

/// Where a matrix's scales sit in its scale ROM (`rtl/UNITS.md`, "Packed
/// weight ROMs"): one entry per group when the group is the whole row or a
/// power of two (so chunks and groups nest), else one per 32-block.
pub fn scale_layout(f: &WeightFormat, cols: usize, lanes: usize) -> ScaleLayout {
    let g = f.group_len(cols);
    let granule = if g == cols || g.is_power_of_two() {
        g
    } else {
        nx::A8_BLOCK
    };
    let chunks = cols.div_ceil(lanes);
    let (mode, words_per_row, per_word) = if granule == cols {
        (0, 1, 1)
    } else if lanes <= granule {
        (1, cols / granule, 1)
    } else {
        (2, chunks, lanes / granule)
    };
    let log2 = |x: usize| x.max(1).trailing_zeros();
    let row8 = f.scales == ScaleStore::Row8;
    ScaleLayout {
        mode,
        granule,
        words_per_row,
        per_word,
        cpg_log2: if mode == 1 { log2(granule / lanes) } else { 0 },
        blocks_log2: if mode == 2 {
            log2(granule / nx::A8_BLOCK)
        } else {
            0
        },
        row8,
        kind_bits: if row8 { 8 } else { 16 },
    }
}

/// The ROM macros of a `rows x (chunks · lanes)` matrix of `bits`-bit
/// codes: codes, scales and (`Row8`) row exponents, `slices` rows per
/// word; `file` names the code image (the others add `.s` and `.e`).
#[allow(clippy::too_many_arguments)]
pub fn weight_macros(
    rows: usize,
    slices: usize,
    chunks: usize,
    lanes: usize,
    bits: u8,
    asym: bool,
    s: &ScaleLayout,
    file: &str,
) -> Vec<WeightMacro> {
    let groups = rows.div_ceil(slices);
    let kinds = 1 + asym as usize;
    let stem = file.trim_end_matches(".hex");
    let mut v = vec![
        WeightMacro {
            kind: "codes",
            width: slices * lanes * bits as usize,
            depth: groups * chunks,
            file: file.to_string(),
        },
        WeightMacro {
            kind: "scales",
            width: slices * s.per_word * s.kind_bits * kinds,
            depth: groups * s.words_per_row,
            file: format!("{stem}.s.hex"),
        },
    ];
    if s.row8 {
        v.push(WeightMacro {
            kind: "exponents",
            width: slices * 8 * kinds,
            depth: groups,
            file: format!("{stem}.e.hex"),
        });
    }
    v
}

/// A gain/bias ROM of the engine (one per weight): Q15.16 norm vectors
/// (`fixed`, `rpc` values per word: one scratchpad line, `tls_norm` reads
/// a line of gains per cycle), else a linear bias with `rpc` (rows per
/// cycle) `W48` values per word.
fn vec_rom(
    eng: &mut Engine,
    model: &Model,
    id: WeightId,
    depth: usize,
    fixed: bool,
    rpc: usize,
) -> usize {
    let bias = !fixed;
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
        width: if fixed { 32 } else { 48 } * rpc as u32,
        depth: depth.div_ceil(rpc),
        source: if fixed {
            VecSource::Fixed(id)
        } else {
            VecSource::Wide(id)
        },
    });
    list.len() - 1
}
