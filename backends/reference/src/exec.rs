//! The integer interpreter of a chip image.

use crate::image::{ChipImage, Param};
use std::collections::HashMap;
use taalasc_ir::{NodeIndex, Op, WeightId};
use taalasc_numerics::{self as nx, NormConsts, RopeTable, ScoreScale, WeightRow};
use taalasc_quant::QTensor;

#[derive(Debug, thiserror::Error)]
pub enum RefError {
    #[error("token id {token} at position {position} is outside the vocabulary (size {vocab})")]
    TokenOutOfRange {
        token: u32,
        position: usize,
        vocab: usize,
    },
    #[error("position {position} does not fit the chip's context of {context} positions")]
    ContextFull { position: usize, context: usize },
    #[error("node `{node}`: {message}")]
    Unsupported { node: String, message: String },
    #[error("weight `{weight}`: {message}")]
    BadParam { weight: String, message: String },
    #[error("`logits_from` = {from} is past the {tokens} tokens of this call")]
    BadLogitsRange { from: usize, tokens: usize },
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

/// KV cache of one attention node: per KV head, `[positions × head_dim]`
/// mantissas and `[positions × head_dim/32]` exponents, all `A8`.
#[derive(Clone, Debug, Default)]
struct Kv {
    k_mant: Vec<Vec<i8>>,
    k_exp: Vec<Vec<i8>>,
    v_mant: Vec<Vec<i8>>,
    v_exp: Vec<Vec<i8>>,
}

/// Per-sequence state: KV caches and the next position.
#[derive(Clone, Debug, Default)]
pub struct RefSession {
    caches: Vec<Kv>,
    pos: usize,
}

impl RefSession {
    pub fn position(&self) -> usize {
        self.pos
    }
}

/// A chip image prepared for execution (tables built once).
pub struct Reference<'a> {
    image: &'a ChipImage,
    order: Vec<NodeIndex>,
    inputs: Vec<Vec<NodeIndex>>,
    uses: Vec<usize>,
    attn_slot: HashMap<NodeIndex, usize>,
    rope: HashMap<NodeIndex, RopeTable>,
    norms: HashMap<NodeIndex, NormConsts>,
    head: NodeIndex,
    threads: usize,
}

fn code_bias(q: &QTensor) -> i32 {
    if q.format.symmetric {
        0
    } else {
        1 << (q.format.bits - 1)
    }
}

fn row_of<'q>(q: &'q QTensor, r: usize) -> WeightRow<'q> {
    let group = q.format.group_len(q.cols);
    let gpr = q.cols.div_ceil(group);
    WeightRow {
        codes: &q.codes[r * q.cols..(r + 1) * q.cols],
        code_bias: code_bias(q),
        group,
        scales: &q.scales[r * gpr..(r + 1) * gpr],
        offsets: (!q.format.symmetric).then(|| &q.offsets[r * gpr..(r + 1) * gpr]),
    }
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

impl<'a> Reference<'a> {
    /// Validates the image against the datapath's constraints and builds the
    /// RoPE and norm constants. `threads` = 0 uses every core.
    pub fn new(image: &'a ChipImage, threads: usize) -> Result<Self, RefError> {
        let model = &image.model;
        let order = model.topo_order();
        let n = model.graph.node_count();
        let inputs: Vec<Vec<NodeIndex>> = (0..n).map(|i| model.inputs(NodeIndex::new(i))).collect();
        let mut uses = vec![0; n];
        for ins in &inputs {
            for i in ins {
                uses[i.index()] += 1;
            }
        }
        let mut attn_slot = HashMap::new();
        let mut rope = HashMap::new();
        let mut norms = HashMap::new();
        let unsupported = |node: NodeIndex, message: String| RefError::Unsupported {
            node: model.graph[node].name.clone(),
            message,
        };
        for &nd in &order {
            let node = &model.graph[nd];
            match &node.op {
                Op::Linear { weight, bias } => {
                    let in_w = model.graph[inputs[nd.index()][0]].width;
                    if !in_w.is_multiple_of(nx::A8_BLOCK) {
                        return Err(unsupported(
                            nd,
                            format!("input width {in_w} is not a multiple of the {}-element activation block", nx::A8_BLOCK),
                        ));
                    }
                    image.matrix(*weight)?;
                    if let Some(b) = bias {
                        image.wide(*b)?;
                    }
                }
                Op::Embed { table } | Op::AddPositions { table } => {
                    image.matrix(*table)?;
                }
                Op::RmsNorm { gain, eps } => {
                    image.fixed(*gain)?;
                    norms.insert(nd, NormConsts::new(node.width, *eps));
                }
                Op::LayerNorm { gain, bias, eps } => {
                    image.fixed(*gain)?;
                    image.fixed(*bias)?;
                    norms.insert(nd, NormConsts::new(node.width, *eps));
                }
                Op::Rope { spec, .. } => {
                    rope.insert(nd, RopeTable::new(&spec.inv_freqs(), image.context));
                }
                Op::Attention { head_dim, .. } => {
                    if !head_dim.is_multiple_of(nx::A8_BLOCK) {
                        return Err(unsupported(
                            nd,
                            format!("head_dim {head_dim} is not a multiple of the {}-element activation block", nx::A8_BLOCK),
                        ));
                    }
                    let slot = attn_slot.len();
                    attn_slot.insert(nd, slot);
                }
                _ => {}
            }
        }
        let head = inputs[model.output.index()][0];
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        Ok(Reference {
            image,
            order,
            inputs,
            uses,
            attn_slot,
            rope,
            norms,
            head,
            threads,
        })
    }

    pub fn image(&self) -> &ChipImage {
        self.image
    }

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
            let out = match &node.op {
                Op::Tokens => Val::Tokens,
                Op::Embed { table } => {
                    let q = self.image.matrix(*table)?;
                    let mut out = vec![0i32; t_n * width];
                    for (t, &tok) in tokens.iter().enumerate() {
                        if tok as usize >= q.rows {
                            return Err(RefError::TokenOutOfRange {
                                token: tok,
                                position: pos0 + t,
                                vocab: q.rows,
                            });
                        }
                        let row = row_of(q, tok as usize);
                        for (i, o) in out[t * width..(t + 1) * width].iter_mut().enumerate() {
                            *o = nx::residual_add(0, table_value(q, &row, i));
                        }
                    }
                    Val::R(out)
                }
                Op::AddPositions { table } => {
                    let q = self.image.matrix(*table)?;
                    let Some(Val::R(x)) = values[ins[0].index()].as_ref() else {
                        unreachable!("positions add to the residual stream")
                    };
                    let mut out = x.clone();
                    for t in 0..t_n {
                        let row = row_of(q, pos0 + t);
                        for (i, o) in out[t * width..(t + 1) * width].iter_mut().enumerate() {
                            *o = nx::residual_add(*o, table_value(q, &row, i));
                        }
                    }
                    Val::R(out)
                }
                Op::RmsNorm { gain, .. } | Op::LayerNorm { gain, .. } => {
                    let Some(Val::R(x)) = values[ins[0].index()].as_ref() else {
                        unreachable!("norms read the residual stream")
                    };
                    let c = &self.norms[&nd];
                    let g = self.image.fixed(*gain)?;
                    let mut out = vec![0i64; t_n * width];
                    for t in 0..t_n {
                        let (xr, o) = (
                            &x[t * width..(t + 1) * width],
                            &mut out[t * width..(t + 1) * width],
                        );
                        match &node.op {
                            Op::LayerNorm { bias, .. } => {
                                nx::layer_norm(xr, g, Some(self.image.fixed(*bias)?), c, o)
                            }
                            _ => nx::rms_norm(xr, g, c, o),
                        }
                    }
                    Val::W(out)
                }
                Op::Linear { weight, bias } => {
                    let from = if nd == self.head { logits_from } else { 0 };
                    let x = w_in(0);
                    let q = self.image.matrix(*weight)?;
                    let b = bias.map(|b| self.image.wide(b)).transpose()?;
                    Val::W(self.linear(x, q, b, from, t_n))
                }
                Op::Rope { head_dim, spec, .. } => {
                    let mut x = w_in(0).to_vec();
                    let table = &self.rope[&nd];
                    for t in 0..t_n {
                        nx::rotate(
                            &mut x[t * width..(t + 1) * width],
                            *head_dim,
                            spec.rotary_dim,
                            pos0 + t,
                            table,
                        );
                    }
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
                        pos0,
                        t_n,
                    ))
                }
                Op::Add => match (
                    values[ins[0].index()].as_ref(),
                    values[ins[1].index()].as_ref(),
                ) {
                    (Some(Val::R(r)), Some(Val::W(w))) => Val::R(
                        r.iter()
                            .zip(w)
                            .map(|(&r, &w)| nx::residual_add(r, w))
                            .collect(),
                    ),
                    (Some(Val::W(a)), Some(Val::W(b))) => {
                        Val::W(a.iter().zip(b).map(|(&a, &b)| nx::add_w48(a, b)).collect())
                    }
                    _ => {
                        return Err(RefError::Unsupported {
                            node: node.name.clone(),
                            message: "add needs (residual, wide) or (wide, wide) operands".into(),
                        })
                    }
                },
                Op::Mul => Val::W(
                    w_in(0)
                        .iter()
                        .zip(w_in(1))
                        .map(|(&a, &b)| nx::mul_w48(a, b))
                        .collect(),
                ),
                Op::Silu => Val::W(w_in(0).iter().map(|&x| nx::silu(x)).collect()),
                Op::GeluTanh => Val::W(w_in(0).iter().map(|&x| nx::gelu(x)).collect()),
                Op::Logits => Val::W(w_in(0).to_vec()),
            };
            for i in ins {
                remaining[i.index()] -= 1;
                if remaining[i.index()] == 0 {
                    values[i.index()] = None;
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

    /// `x [t_n × in]` (W48) times the quantized matrix, for positions
    /// `from..t_n`. Rows are split across threads; each output element is
    /// computed by one call of `linear_row`, so the split cannot change bits.
    fn linear(
        &self,
        x: &[i64],
        q: &QTensor,
        bias: Option<&[i64]>,
        from: usize,
        t_n: usize,
    ) -> Vec<i64> {
        let (rows, cols) = (q.rows, q.cols);
        let acts: Vec<(nx::A8Vec, Vec<i32>)> = (from..t_n)
            .map(|t| {
                let a = nx::to_a8_vec(&x[t * cols..(t + 1) * cols], nx::W_FRAC)
                    .expect("width checked in new()");
                let sums = a.block_sums();
                (a, sums)
            })
            .collect();
        let t_out = t_n - from;
        let mut out = vec![0i64; t_out * rows];
        let chunk = rows.div_ceil(self.threads.max(1)).max(1);
        let parts: Vec<Vec<i64>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..rows)
                .step_by(chunk)
                .map(|r0| {
                    let acts = &acts;
                    scope.spawn(move || {
                        let r1 = (r0 + chunk).min(rows);
                        let mut part = vec![0i64; (r1 - r0) * t_out];
                        for r in r0..r1 {
                            let row = row_of(q, r);
                            let b = bias.map_or(0, |b| b[r]);
                            for (t, (a, sums)) in acts.iter().enumerate() {
                                part[(r - r0) * t_out + t] =
                                    nx::linear_row(&a.mant, &a.exp, sums, &row, b);
                            }
                        }
                        part
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("linear worker"))
                .collect()
        });
        for (ci, part) in parts.iter().enumerate() {
            let r0 = ci * chunk;
            for (k, &v) in part.iter().enumerate() {
                let (r, t) = (r0 + k / t_out, k % t_out);
                out[t * rows + r] = v;
            }
        }
        out
    }
}

/// Attention for positions `pos0..pos0 + t_n`: appends K and V (in `A8`) to
/// the cache, then each query head attends over its window.
fn attention(
    (q, k, v): (&[i64], &[i64], &[i64]),
    kv: &mut Kv,
    (n_heads, n_kv_heads, hd): (usize, usize, usize),
    window: Option<usize>,
    pos0: usize,
    t_n: usize,
) -> Vec<i64> {
    let kv_w = n_kv_heads * hd;
    let q_w = n_heads * hd;
    if kv.k_mant.is_empty() {
        *kv = Kv {
            k_mant: vec![Vec::new(); n_kv_heads],
            k_exp: vec![Vec::new(); n_kv_heads],
            v_mant: vec![Vec::new(); n_kv_heads],
            v_exp: vec![Vec::new(); n_kv_heads],
        };
    }
    let bph = hd / nx::A8_BLOCK;
    let scale = ScoreScale::inv_sqrt(hd);
    let group = n_heads / n_kv_heads;
    let mut out = vec![0i64; t_n * q_w];
    let mut scores = Vec::new();
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
        }
        let p = pos0 + t;
        let lo = window.map_or(0, |w| (p + 1).saturating_sub(w));
        for h in 0..n_heads {
            let kvh = h / group;
            let qa = nx::to_a8_vec(&q[t * q_w + h * hd..t * q_w + (h + 1) * hd], nx::W_FRAC)
                .expect("head_dim checked");
            scores.clear();
            for j in lo..=p {
                let s = nx::dot_a8(
                    &qa.mant,
                    &qa.exp,
                    &kv.k_mant[kvh][j * hd..(j + 1) * hd],
                    &kv.k_exp[kvh][j * bph..(j + 1) * bph],
                );
                scores.push(nx::scale_score(s, scale));
            }
            nx::attend(
                &scores,
                &kv.v_mant[kvh][lo * hd..(p + 1) * hd],
                &kv.v_exp[kvh][lo * bph..(p + 1) * bph],
                hd,
                &mut out[t * q_w + h * hd..t * q_w + (h + 1) * hd],
            );
        }
    }
    out
}

impl ChipImage {
    fn param_err(&self, id: WeightId, message: &str) -> RefError {
        RefError::BadParam {
            weight: self.model.weight(id).name.clone(),
            message: message.into(),
        }
    }

    fn matrix(&self, id: WeightId) -> Result<&QTensor, RefError> {
        match self.param(id) {
            Param::Matrix(q) => Ok(q),
            _ => Err(self.param_err(id, "expected a quantized matrix")),
        }
    }

    fn fixed(&self, id: WeightId) -> Result<&[i32], RefError> {
        match self.param(id) {
            Param::Fixed16(v) => Ok(v),
            _ => Err(self.param_err(id, "expected Q15.16 values")),
        }
    }

    fn wide(&self, id: WeightId) -> Result<&[i64], RefError> {
        match self.param(id) {
            Param::Wide(v) => Ok(v),
            _ => Err(self.param_err(id, "expected W48 values")),
        }
    }
}
