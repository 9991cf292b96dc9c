//! The integer interpreter of a chip image.

use matvec::{row_of, Acts, Prepared};
use rayon::prelude::*;
use std::collections::HashMap;
use taalasc_image::{ChipImage, Dtype, ImageInfo, Types};
use taalasc_ir::{NodeIndex, Op, WeightId};
use taalasc_numerics::{self as nx, NormConsts, RopeTable, ScoreScale, WeightRow};
use taalasc_quant::QTensor;

mod attend;
mod matvec;
mod simd;

/// Why the reference refuses an image or a call.
#[derive(Debug, thiserror::Error)]
pub enum RefError {
    /// A token id past the embedding table.
    #[error("token id {token} at position {position} is outside the vocabulary (size {vocab})")]
    TokenOutOfRange {
        /// The token id.
        token: u32,
        /// Its position in the sequence.
        position: usize,
        /// Rows of the embedding table.
        vocab: usize,
    },
    /// A call would run past the chip's context.
    #[error("position {position} does not fit the chip's context of {context} positions")]
    ContextFull {
        /// The last position the call would run.
        position: usize,
        /// Positions the chip holds.
        context: usize,
    },
    /// `logits_from` past the tokens of the call.
    #[error("`logits_from` = {from} is past the {tokens} tokens of this call")]
    BadLogitsRange {
        /// The `logits_from` asked for.
        from: usize,
        /// Tokens of the call.
        tokens: usize,
    },
    /// The image is illegal for the datapath ([`taalasc_image::verify()`]:
    /// `node `X`: ...` or `weight `W`: ...`), or a weight read failed.
    #[error(transparent)]
    Image(#[from] taalasc_image::ImageError),
}

/// A value flowing along a graph edge, `[positions × width]` row-major.
enum Val {
    /// Residual stream, `R32`.
    R(Vec<i32>),
    /// Wide values, `W48` in i64.
    W(Vec<i64>),
    /// The token input (no data).
    Tokens,
}

impl Val {
    /// The datapath type this container holds.
    fn dtype(&self) -> Dtype {
        match self {
            Val::R(_) => Dtype::R32,
            Val::W(_) => Dtype::W48,
            Val::Tokens => Dtype::Tokens,
        }
    }
}

/// KV cache of one attention node: per KV head, `[positions × head_dim]`
/// mantissas and `[positions × head_dim/32]` exponents, all `A8`.
#[derive(Clone, Debug, Default)]
struct Kv {
    k_mant: Vec<Vec<i8>>,
    k_exp: Vec<Vec<i8>>,
    v_mant: Vec<Vec<i8>>,
    v_exp: Vec<Vec<i8>>,
    /// K again, packed for the AVX-512 score kernel (empty without it).
    k_pack: Vec<attend::PackedK>,
}

/// A callback receiving each node's output values (see
/// [`Reference::forward_traced`]).
pub type NodeTrace<'t> = dyn FnMut(NodeIndex, &[i64]) + 't;

/// Per-sequence state: KV caches and the next position.
#[derive(Clone, Debug, Default)]
pub struct RefSession {
    caches: Vec<Kv>,
    pos: usize,
}

impl RefSession {
    /// The next position this session runs.
    pub fn position(&self) -> usize {
        self.pos
    }
}

/// A chip image prepared for execution (tables built once).
pub struct Reference<'a> {
    image: &'a ChipImage,
    /// Every node's datapath type, from the image verifier.
    types: Types,
    order: Vec<NodeIndex>,
    inputs: Vec<Vec<NodeIndex>>,
    uses: Vec<usize>,
    attn_slot: HashMap<NodeIndex, usize>,
    /// Each RoPE node's table, an index into `rope_tables`.
    rope: HashMap<NodeIndex, usize>,
    /// The distinct RoPE tables (every layer of a model usually shares one).
    rope_tables: Vec<RopeTable>,
    norms: HashMap<NodeIndex, NormConsts>,
    head: NodeIndex,
    /// 1: everything on the calling thread; 0: rayon's global pool; N > 1:
    /// the global pool, work cut for N workers.
    threads: usize,
    /// Every linear layer's matrix, prepared for the matrix-vector unit.
    prepared: HashMap<WeightId, Prepared>,
    /// At the first of several linears (the head aside) that read one
    /// input, all of them in order; empty elsewhere. A decoded position
    /// runs them as one parallel step ([`matvec::linear_many`]).
    siblings: Vec<Vec<NodeIndex>>,
}

/// Element `(r, i)` of a quantized table in `W48` (embedding and position
/// rows): `d·q (+ m)` with the same block terms as the matrix-vector unit.
fn table_value(q: &QTensor, row: &WeightRow<'_>, i: usize) -> i64 {
    let _ = q;
    let g = i / row.group;
    let code = row.codes[i] as i64 + row.code_bias as i64;
    let (dm, de) = row.scales[g].mant_exp();
    let mut w = nx::block_term(dm, de, code, 0);
    if let Some(off) = row.offsets {
        let (mm, me) = off[g].mant_exp();
        w += nx::block_term(mm, me, 1, 0);
    }
    nx::sat_w48(w as i128)
}

/// Checks an image against the datapath's constraints, from its metadata
/// alone: what [`Reference::new`] refuses, without reading a weight value.
/// A build checks a large image this way. The rules are
/// [`taalasc_image::verify()`]'s; this is kept for callers of the reference.
pub fn check_image(info: &ImageInfo) -> Result<(), RefError> {
    taalasc_image::verify(info)?;
    Ok(())
}

impl<'a> Reference<'a> {
    /// Validates the image against the datapath's constraints and builds the
    /// RoPE and norm constants. `threads` = 1 runs every pass on the calling
    /// thread; any other value runs on rayon's global pool (whose size the
    /// caller sets, e.g. the driver's `--threads`), 0 cutting the work for
    /// the pool's size and N > 1 for N workers. The outputs are the same bits
    /// whatever `threads` and the pool's size.
    pub fn new(image: &'a ChipImage, threads: usize) -> Result<Self, RefError> {
        let model = &image.model;
        let order = model.topo_order();
        let n = model.graph.node_count();
        let inputs: Vec<Vec<NodeIndex>> = (0..n).map(|i| model.inputs(NodeIndex::new(i))).collect();
        let types = image.verify()?;
        let mut uses = vec![0; n];
        for ins in &inputs {
            for i in ins {
                uses[i.index()] += 1;
            }
        }
        let mut attn_slot = HashMap::new();
        let mut rope = HashMap::new();
        let mut rope_tables = Vec::new();
        let mut rope_keys: Vec<Vec<u64>> = Vec::new();
        let mut norms = HashMap::new();
        let mut matrices = Vec::new();
        for &nd in &order {
            let node = &model.graph[nd];
            match &node.op {
                Op::Linear { weight, .. } if !matrices.iter().any(|(w, _)| w == weight) => {
                    matrices.push((*weight, image.matrix(*weight)?));
                }
                Op::RmsNorm { eps, .. } | Op::LayerNorm { eps, .. } => {
                    norms.insert(nd, NormConsts::new(node.width, *eps));
                }
                Op::Rope { spec, .. } => {
                    // Nodes of equal frequencies share one table (built once).
                    let freqs: Vec<u64> = spec.inv_freqs().iter().map(|f| f.to_bits()).collect();
                    let i = match rope_keys.iter().position(|k| *k == freqs) {
                        Some(i) => i,
                        None => {
                            rope_tables.push(RopeTable::new(&spec.inv_freqs(), image.context));
                            rope_keys.push(freqs);
                            rope_tables.len() - 1
                        }
                    };
                    rope.insert(nd, i);
                }
                Op::Attention { .. } => {
                    let slot = attn_slot.len();
                    attn_slot.insert(nd, slot);
                }
                _ => {}
            }
        }
        // Every matrix repacked once, on the pool unless the reference runs
        // on the calling thread only (start-up time).
        let prepare = |(w, q): (WeightId, &QTensor)| (w, Prepared::new(q, false));
        let prepared: HashMap<WeightId, Prepared> = if threads == 1 {
            matrices.into_iter().map(prepare).collect()
        } else {
            matrices.into_par_iter().map(prepare).collect()
        };
        let head = inputs[model.output.index()][0];
        let siblings = model.sibling_linears(&order, head);
        Ok(Reference {
            image,
            types,
            order,
            inputs,
            uses,
            attn_slot,
            rope,
            rope_tables,
            norms,
            head,
            threads,
            prepared,
            siblings,
        })
    }

    /// Workers the work of one pass is cut for (1: the calling thread only).
    fn workers(&self) -> usize {
        match self.threads {
            0 => rayon::current_num_threads(),
            n => n,
        }
    }

    /// The image this runs.
    pub fn image(&self) -> &ChipImage {
        self.image
    }

    /// A new sequence: empty KV caches, position 0.
    pub fn session(&self) -> RefSession {
        RefSession {
            caches: vec![Kv::default(); self.attn_slot.len()],
            pos: 0,
        }
    }

    /// Runs `tokens` at the session's next positions. Returns the integer
    /// logits (`W48`, 24 fraction bits) `[tokens.len() - logits_from, vocab]`
    /// row-major.
    pub fn forward(
        &self,
        s: &mut RefSession,
        tokens: &[u32],
        logits_from: usize,
    ) -> Result<Vec<i64>, RefError> {
        // The whole pass runs on one of rayon's workers, so that each
        // parallel step splits across the pool without a hand-off to and
        // from the caller's thread (which would sleep and wake once per
        // step: many times per decoded token).
        rayon::scope(|_| self.forward_traced(s, tokens, logits_from, None))
    }

    /// [`Reference::forward`], calling `trace(node, values)` with every
    /// node's output (`[tokens × width]`, residual values widened to i64)
    /// as soon as it is computed: the values the RTL cross-check compares
    /// unit by unit.
    pub fn forward_traced(
        &self,
        s: &mut RefSession,
        tokens: &[u32],
        logits_from: usize,
        mut trace: Option<&mut NodeTrace<'_>>,
    ) -> Result<Vec<i64>, RefError> {
        if logits_from > tokens.len() {
            return Err(RefError::BadLogitsRange {
                from: logits_from,
                tokens: tokens.len(),
            });
        }
        if s.pos + tokens.len() > self.image.context {
            return Err(RefError::ContextFull {
                position: s.pos + tokens.len() - 1,
                context: self.image.context,
            });
        }
        let model = &self.image.model;
        let t_n = tokens.len();
        let pos0 = s.pos;
        let mut values: Vec<Option<Val>> = (0..model.graph.node_count()).map(|_| None).collect();
        let mut remaining = self.uses.clone();
        let mut pool = Pool::default();
        let mut acts = Acts::default();
        // Products computed ahead with an earlier sibling (`siblings`).
        let mut pending: Vec<Option<Val>> = (0..values.len()).map(|_| None).collect();
        for &nd in &self.order {
            let node = &model.graph[nd];
            let ins = &self.inputs[nd.index()];
            let width = node.width;
            let w_in = |i: usize| -> &[i64] {
                match values[ins[i].index()].as_ref() {
                    Some(Val::W(v)) => v,
                    _ => panic!("verified graph: operand {i} of `{}` is wide", node.name),
                }
            };
            // This node is the last reader of operand `i`: its buffer can be
            // reused in place.
            let last = |i: usize| remaining[ins[i].index()] == 1;
            let threads = self.workers();
            let out = match &node.op {
                Op::Tokens => Val::Tokens,
                Op::Embed { table } => {
                    let q = self.image.matrix(*table)?;
                    if let Some((t, &tok)) = tokens
                        .iter()
                        .enumerate()
                        .find(|(_, &tok)| tok as usize >= q.rows)
                    {
                        return Err(RefError::TokenOutOfRange {
                            token: tok,
                            position: pos0 + t,
                            vocab: q.rows,
                        });
                    }
                    let mut out = pool.r(t_n * width);
                    par_rows(threads, &mut out, width, |t, o| {
                        let row = row_of(q, tokens[t] as usize);
                        for (i, o) in o.iter_mut().enumerate() {
                            *o = nx::residual_add(0, table_value(q, &row, i));
                        }
                    });
                    Val::R(out)
                }
                Op::AddPositions { table } => {
                    let q = self.image.matrix(*table)?;
                    let mut out = match take_or_clone(&mut values, ins[0], last(0)) {
                        Val::R(x) => x,
                        _ => unreachable!("positions add to the residual stream"),
                    };
                    par_rows(threads, &mut out, width, |t, o| {
                        let row = row_of(q, pos0 + t);
                        for (i, o) in o.iter_mut().enumerate() {
                            *o = nx::residual_add(*o, table_value(q, &row, i));
                        }
                    });
                    Val::R(out)
                }
                Op::RmsNorm { gain, .. } | Op::LayerNorm { gain, .. } => {
                    let Some(Val::R(x)) = values[ins[0].index()].as_ref() else {
                        unreachable!("norms read the residual stream")
                    };
                    let c = &self.norms[&nd];
                    let g = self.image.fixed(*gain)?;
                    let bias = match &node.op {
                        Op::LayerNorm { bias, .. } => Some(self.image.fixed(*bias)?),
                        _ => None,
                    };
                    let mut out = pool.w(t_n * width);
                    par_rows(threads, &mut out, width, |t, o| {
                        let xr = &x[t * width..(t + 1) * width];
                        match bias {
                            Some(b) => nx::layer_norm(xr, g, Some(b), c, o),
                            None => nx::rms_norm(xr, g, c, o),
                        }
                    });
                    Val::W(out)
                }
                // Computed with an earlier sibling.
                Op::Linear { .. } if pending[nd.index()].is_some() => {
                    pending[nd.index()].take().expect("checked just above")
                }
                Op::Linear { weight, bias } => {
                    let from = if nd == self.head { logits_from } else { 0 };
                    let x = w_in(0);
                    let q = self.image.matrix(*weight)?;
                    let b = bias.map(|b| self.image.wide(b)).transpose()?;
                    acts.fill(x, q.cols, from, t_n, threads);
                    let sib = &self.siblings[nd.index()];
                    if sib.is_empty() {
                        // The logits leave the pass: a buffer of their own.
                        let out = if nd == self.head {
                            vec![0; acts.n * q.rows]
                        } else {
                            pool.w(acts.n * q.rows)
                        };
                        Val::W(matvec::linear(
                            q,
                            &self.prepared[weight],
                            b,
                            &acts,
                            threads,
                            out,
                        ))
                    } else {
                        // This linear and the later ones that read `x`.
                        let mut mats = Vec::with_capacity(sib.len());
                        let mut outs = Vec::with_capacity(sib.len());
                        for &m in sib {
                            let Op::Linear { weight, bias } = &model.graph[m].op else {
                                unreachable!("siblings are linears")
                            };
                            let q = self.image.matrix(*weight)?;
                            let b = bias.map(|b| self.image.wide(b)).transpose()?;
                            mats.push((q, &self.prepared[weight], b));
                            outs.push(pool.w(acts.n * q.rows));
                        }
                        let mut got = matvec::linear_many(&mats, &acts, threads, outs).into_iter();
                        let out = got.next().expect("a product per linear");
                        for (&m, o) in sib[1..].iter().zip(got) {
                            pending[m.index()] = Some(Val::W(o));
                        }
                        Val::W(out)
                    }
                }
                Op::Rope { head_dim, spec, .. } => {
                    let mut x = take_w(&mut values, ins[0], last(0));
                    let table = &self.rope_tables[self.rope[&nd]];
                    par_rows(threads, &mut x, width, |t, row| {
                        nx::rotate(row, *head_dim, spec.rotary_dim, pos0 + t, table)
                    });
                    Val::W(x)
                }
                Op::Attention {
                    n_heads,
                    n_kv_heads,
                    head_dim,
                    window,
                } => {
                    let kv = &mut s.caches[self.attn_slot[&nd]];
                    Val::W(attention(
                        (w_in(0), w_in(1), w_in(2)),
                        kv,
                        (*n_heads, *n_kv_heads, *head_dim),
                        *window,
                        (pos0, t_n),
                        threads,
                        pool.w(t_n * n_heads * head_dim),
                    ))
                }
                Op::Add => match (self.types.of(ins[0]), self.types.of(ins[1])) {
                    (Dtype::R32, Dtype::W48) => {
                        let Val::R(mut r) = take_or_clone(&mut values, ins[0], last(0)) else {
                            unreachable!()
                        };
                        let Some(Val::W(w)) = values[ins[1].index()].as_ref() else {
                            unreachable!()
                        };
                        par_rows(threads, &mut r, width, |t, row| {
                            for (r, &w) in row.iter_mut().zip(&w[t * width..]) {
                                *r = nx::residual_add(*r, w);
                            }
                        });
                        Val::R(r)
                    }
                    (Dtype::W48, Dtype::W48) => {
                        let mut a = take_w(&mut values, ins[0], last(0));
                        let b = w_ref(&values, ins[1]);
                        par_rows(threads, &mut a, width, |t, row| {
                            for (a, &b) in row.iter_mut().zip(&b[t * width..]) {
                                *a = nx::add_w48(*a, b);
                            }
                        });
                        Val::W(a)
                    }
                    _ => unreachable!("verified image: add operands are (R32, W48) or (W48, W48)"),
                },
                Op::Mul => {
                    let mut a = take_w(&mut values, ins[0], last(0));
                    let b = w_ref(&values, ins[1]);
                    par_rows(threads, &mut a, width, |t, row| {
                        for (a, &b) in row.iter_mut().zip(&b[t * width..]) {
                            *a = nx::mul_w48(*a, b);
                        }
                    });
                    Val::W(a)
                }
                Op::Silu | Op::GeluTanh => {
                    let mut x = take_w(&mut values, ins[0], last(0));
                    let gelu = matches!(node.op, Op::GeluTanh);
                    par_rows(threads, &mut x, width, |_, row| {
                        for v in row {
                            *v = if gelu { nx::gelu(*v) } else { nx::silu(*v) };
                        }
                    });
                    Val::W(x)
                }
                Op::Logits => Val::W(take_w(&mut values, ins[0], last(0))),
            };
            for i in ins {
                remaining[i.index()] -= 1;
                if remaining[i.index()] == 0 {
                    if let Some(v) = values[i.index()].take() {
                        pool.put(v);
                    }
                }
            }
            debug_assert_eq!(
                out.dtype(),
                self.types.of(nd),
                "node `{}`: computed type disagrees with the image verifier",
                node.name
            );
            if let Some(t) = trace.as_mut() {
                match &out {
                    Val::W(v) => t(nd, v),
                    Val::R(v) => t(nd, &v.iter().map(|&x| x as i64).collect::<Vec<_>>()),
                    Val::Tokens => {}
                }
            }
            values[nd.index()] = Some(out);
        }
        s.pos += t_n;
        match values[model.output.index()].take() {
            Some(Val::W(v)) => Ok(v),
            _ => unreachable!("logits are wide"),
        }
    }
}

/// Buffers of dropped values, reused for new values within one forward
/// pass (fresh allocations of these sizes would page-fault on first touch).
#[derive(Default)]
struct Pool {
    w: Vec<Vec<i64>>,
    r: Vec<Vec<i32>>,
}

impl Pool {
    fn put(&mut self, v: Val) {
        match v {
            Val::W(v) => self.w.push(v),
            Val::R(v) => self.r.push(v),
            Val::Tokens => {}
        }
    }

    /// `n` values with unspecified contents: every caller overwrites all of
    /// them.
    fn w(&mut self, n: usize) -> Vec<i64> {
        reuse(&mut self.w, n)
    }

    /// As [`Pool::w`].
    fn r(&mut self, n: usize) -> Vec<i32> {
        reuse(&mut self.r, n)
    }
}

/// The smallest free buffer holding `n` values (resized to `n`), or a new one.
fn reuse<T: Copy + Default>(free: &mut Vec<Vec<T>>, n: usize) -> Vec<T> {
    let best = free
        .iter()
        .enumerate()
        .filter(|(_, v)| v.capacity() >= n)
        .min_by_key(|(_, v)| v.capacity())
        .map(|(i, _)| i);
    match best {
        Some(i) => {
            let mut v = free.swap_remove(i);
            v.resize(n, T::default());
            v
        }
        None => vec![T::default(); n],
    }
}

/// Operand `i` by value: moved out when this node is its last reader
/// (`last`), cloned otherwise.
fn take_or_clone(values: &mut [Option<Val>], i: NodeIndex, last: bool) -> Val {
    let v = &mut values[i.index()];
    match (last, v.as_ref()) {
        (true, _) => v.take().expect("operand computed"),
        (false, Some(Val::R(x))) => Val::R(x.clone()),
        (false, Some(Val::W(x))) => Val::W(x.clone()),
        (false, _) => unreachable!("operand computed"),
    }
}

/// A wide operand by value (see [`take_or_clone`]).
fn take_w(values: &mut [Option<Val>], i: NodeIndex, last: bool) -> Vec<i64> {
    match take_or_clone(values, i, last) {
        Val::W(v) => v,
        _ => panic!("verified graph: operand is wide"),
    }
}

/// A wide operand by reference.
fn w_ref(values: &[Option<Val>], i: NodeIndex) -> &[i64] {
    match values[i.index()].as_ref() {
        Some(Val::W(v)) => v,
        _ => panic!("verified graph: operand is wide"),
    }
}

/// Runs `f` on every item: on the calling thread when `threads` <= 1,
/// else as tasks on rayon's global pool (sized by the driver's `--threads`).
/// Which thread computes an item never changes its value.
pub(crate) fn par_for_each<I>(threads: usize, items: I, f: impl Fn(I::Item) + Sync + Send)
where
    I: Iterator,
    I::Item: Send,
{
    if threads <= 1 {
        items.for_each(f);
        return;
    }
    let items: Vec<I::Item> = items.collect();
    if items.len() <= 1 {
        items.into_iter().for_each(f);
        return;
    }
    items.into_par_iter().for_each(f);
}

/// Runs `f(position, row)` over the `width`-value rows of `out`, in chunks
/// of positions over the workers.
fn par_rows<T: Send>(
    threads: usize,
    out: &mut [T],
    width: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    if width == 0 {
        return;
    }
    let n = out.len() / width;
    let per = n.div_ceil(threads.max(1) * 4).max(8);
    par_for_each(
        threads,
        out.chunks_mut(per * width).enumerate(),
        |(ci, chunk)| {
            for (i, row) in chunk.chunks_exact_mut(width).enumerate() {
                f(ci * per + i, row);
            }
        },
    );
}

/// Attention for positions `pos0..pos0 + t_n`: appends K and V (in `A8`) to
/// the cache, then each query head attends over its window.
///
/// Position `t` reads cache rows up to its own, so appending all `t_n` rows
/// first changes nothing; the (position, head) outputs are then split over
/// the workers, so that one decoded position uses every core (each output
/// is computed by the same operations either way).
fn attention(
    (q, k, v): (&[i64], &[i64], &[i64]),
    kv: &mut Kv,
    (n_heads, n_kv_heads, hd): (usize, usize, usize),
    window: Option<usize>,
    (pos0, t_n): (usize, usize),
    threads: usize,
    mut out: Vec<i64>,
) -> Vec<i64> {
    let kv_w = n_kv_heads * hd;
    let q_w = n_heads * hd;
    if kv.k_mant.is_empty() {
        *kv = Kv {
            k_mant: vec![Vec::new(); n_kv_heads],
            k_exp: vec![Vec::new(); n_kv_heads],
            v_mant: vec![Vec::new(); n_kv_heads],
            v_exp: vec![Vec::new(); n_kv_heads],
            k_pack: if simd::have_avx512() {
                vec![attend::PackedK::default(); n_kv_heads]
            } else {
                Vec::new()
            },
        };
    }
    for t in 0..t_n {
        for h in 0..n_kv_heads {
            let ka = nx::to_a8_vec(&k[t * kv_w + h * hd..t * kv_w + (h + 1) * hd], nx::W_FRAC)
                .expect("head_dim checked");
            let va = nx::to_a8_vec(&v[t * kv_w + h * hd..t * kv_w + (h + 1) * hd], nx::W_FRAC)
                .expect("head_dim checked");
            kv.k_mant[h].extend_from_slice(&ka.mant);
            kv.k_exp[h].extend_from_slice(&ka.exp);
            kv.v_mant[h].extend_from_slice(&va.mant);
            kv.v_exp[h].extend_from_slice(&va.exp);
            if let Some(kp) = kv.k_pack.get_mut(h) {
                kp.push(&ka.mant, &ka.exp);
            }
        }
    }
    let job = AttnJob {
        q,
        kv,
        n_heads,
        n_kv_heads,
        hd,
        window,
        pos0,
    };
    assert_eq!(out.len(), t_n * q_w, "attention: output buffer");
    if t_n == 0 || q_w == 0 {
        return out;
    }
    if threads <= 1 {
        let mut scratch = attend::Scratch::default();
        for (i, oh) in out.chunks_exact_mut(hd).enumerate() {
            job.run(i / n_heads, i % n_heads, &mut scratch, oh);
        }
    } else {
        // One task per (position, head); rayon balances the later
        // positions' longer windows.
        out.par_chunks_exact_mut(hd)
            .enumerate()
            .for_each_init(attend::Scratch::default, |scratch, (i, oh)| {
                job.run(i / n_heads, i % n_heads, scratch, oh)
            });
    }
    out
}

/// The read-only inputs of one attention node's heads.
struct AttnJob<'a> {
    q: &'a [i64],
    kv: &'a Kv,
    n_heads: usize,
    n_kv_heads: usize,
    hd: usize,
    window: Option<usize>,
    pos0: usize,
}

impl AttnJob<'_> {
    /// The output of head `h` at position `t` (relative to `pos0`).
    fn run(&self, t: usize, h: usize, scratch: &mut attend::Scratch, oh: &mut [i64]) {
        let hd = self.hd;
        let q_w = self.n_heads * hd;
        let scale = ScoreScale::inv_sqrt(hd);
        let group = self.n_heads / self.n_kv_heads;
        let p = self.pos0 + t;
        let lo = self.window.map_or(0, |w| (p + 1).saturating_sub(w));
        let kvh = h / group;
        let qa = nx::to_a8_vec(
            &self.q[t * q_w + h * hd..t * q_w + (h + 1) * hd],
            nx::W_FRAC,
        )
        .expect("head_dim checked");
        attend::Head {
            q_mant: &qa.mant,
            q_exp: &qa.exp,
            k_mant: &self.kv.k_mant[kvh],
            k_exp: &self.kv.k_exp[kvh],
            v_mant: &self.kv.v_mant[kvh],
            v_exp: &self.kv.v_exp[kvh],
            k_pack: self.kv.k_pack.get(kvh),
            hd,
            lo,
            p,
            scale,
        }
        .run(scratch, oh);
    }
}
