//! # taalasc-float: the f32 reference executor
//!
//! Interprets a [`taalasc_ir::Model`] in f32 with ndarray, one batch of
//! positions at a time, keeping a per-attention-node KV cache so that a prompt
//! can be prefilled in one call and then decoded token by token.
//!
//! This is the float baseline every later stage is measured against (quality
//! reports, the bit-exact integer reference, the RTL), so it follows the
//! Hugging Face reference implementations op for op; tests hold it to
//! |Δlogit| ≤ 1e-4 against transformers.
//!
//! Matrix weights stay in their stored format when the [`WeightSource`] can
//! give its rows ([`WeightSource::raw_rows`]: GGUF blocks, f16/bf16/f32 rows,
//! shared with the memory map): each row is decoded on the fly inside the dot
//! product ([`rows`]), so no f32 copy of a quantized matrix is ever made.
//! Other weights (vectors, and matrices a source can only give as f32, e.g.
//! transposed GPT-2 `Conv1D` weights) are read once as f32;
//! [`FloatModel::resident_f32_bytes`] reports how much that holds.
//!
//! Matrix products run on rayon's global thread pool (sized by its user), and
//! use AVX2 when the CPU has it (detected at run time). Results do not
//! depend on either: see [`rows`].

#![warn(missing_docs)]

mod kernels;
pub mod rows;
#[cfg(target_arch = "x86_64")]
mod simd;
mod team;

use ndarray::{s, Array2, ArrayView2};
use rows::{Isa, Matrix};
use std::collections::HashMap;
use taalasc_ir::{Model, NodeIndex, Op, RawRows, WeightError, WeightId, WeightSource};

/// Why the float executor could not load a model ([`FloatModel::new`]) or
/// run a call ([`FloatModel::forward`]).
#[derive(Debug, thiserror::Error)]
pub enum FloatError {
    /// A weight could not be read or decoded (or its values do not fit its
    /// IR shape).
    #[error(transparent)]
    Weight(#[from] WeightError),
    /// An input token id is not a row of the embedding table.
    #[error("token id {token} at position {position} is outside the vocabulary (size {vocab})")]
    TokenOutOfRange {
        /// The offending token id.
        token: u32,
        /// Its absolute position in the session (0-based).
        position: usize,
        /// Rows of the embedding table.
        vocab: usize,
    },
    /// A learned-position model (GPT-2) was run past its position table.
    #[error("position {position} is beyond the model's {max} learned positions")]
    PositionOutOfRange {
        /// The last position the call would reach (0-based).
        position: usize,
        /// Rows of the position table (`max_positions`).
        max: usize,
    },
    /// A node computed a NaN or infinite value (weights or activations
    /// that overflow f32): the first such node of the call.
    #[error("{}node `{node}` ({op}) computed a non-finite value ({value}) at position {position}, feature {feature}: the model's weights or activations overflow f32", layer.map_or(String::new(), |l| format!("layer {l}, ")))]
    NonFinite {
        /// The decoder layer of the node (`None`: embedding or head).
        layer: Option<usize>,
        /// The node's IR name.
        node: String,
        /// The node's op mnemonic.
        op: &'static str,
        /// The absolute position of the first bad value.
        position: usize,
        /// Its feature index.
        feature: usize,
        /// The value (NaN or ±inf).
        value: f32,
    },
    /// `logits_from` is larger than the number of tokens given.
    #[error("`logits_from` = {from} is past the {tokens} tokens of this call")]
    BadLogitsRange {
        /// The `logits_from` asked for.
        from: usize,
        /// The tokens in the call.
        tokens: usize,
    },
}

/// A model ready to run: graph plus weights (stored rows or f32).
pub struct FloatModel {
    model: Model,
    order: Vec<NodeIndex>,
    inputs: Vec<Vec<NodeIndex>>,
    /// Every weight; vectors are one-row dense matrices.
    weights: Vec<Matrix>,
    /// The source's stored rows of each weight that has them, kept so that
    /// [`FloatModel::swap_weight`] can return to them.
    stored: Vec<Option<RawRows>>,
    isa: Isa,
    /// Attention node → cache slot.
    attn_slot: HashMap<NodeIndex, usize>,
    /// Node → number of consumers (to free activations early).
    uses: Vec<usize>,
    /// The linear that feeds the logits (only its requested rows are computed).
    head: NodeIndex,
    /// At the first of several linears (the head aside) that read one
    /// input, all of them in order; empty elsewhere. They run as one
    /// parallel region ([`rows::matmul_many`]).
    siblings: Vec<Vec<NodeIndex>>,
}

/// Per-sequence decoding state: the KV caches and the next position.
#[derive(Clone, Debug, Default)]
pub struct Session {
    /// One `(k, v)` pair per attention node, `[positions, kv_width]` each,
    /// row-major, and the same keys by feature for decode steps.
    caches: Vec<(Vec<f32>, Vec<f32>, kernels::KeysByFeature)>,
    pos: usize,
}

impl Session {
    /// Positions processed so far.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl FloatModel {
    /// Binds every weight of `source`: matrices to their stored rows when
    /// the source has them (nothing is decoded), the rest read as f32.
    pub fn new(model: &Model, source: &dyn WeightSource) -> Result<Self, FloatError> {
        let mut weights = Vec::with_capacity(model.weights.len());
        let mut stored = Vec::with_capacity(model.weights.len());
        for (i, info) in model.weights.iter().enumerate() {
            let id = WeightId(i as u32);
            if let [r, c] = info.shape[..] {
                if let Some(raw) = source.raw_rows(id)? {
                    if (raw.rows, raw.cols) != (r, c) {
                        return Err(WeightError::Invalid {
                            file: String::new(),
                            tensor: info.source_tensor.clone(),
                            message: format!(
                                "stored rows are {} x {}, the model expects {r} x {c}",
                                raw.rows, raw.cols
                            ),
                        }
                        .into());
                    }
                    weights.push(Matrix::Stored(raw.clone()));
                    stored.push(Some(raw));
                    continue;
                }
            }
            // No stored rows (a vector, or a matrix the source only gives
            // as f32): an f32 copy, counted by `resident_f32_bytes`.
            stored.push(None);
            let data = source.load_f32(id)?;
            let shape = match info.shape.as_slice() {
                [n] => (1, *n),
                [r, c] => (*r, *c),
                other => (1, other.iter().product()),
            };
            weights.push(Matrix::Dense(Array2::from_shape_vec(shape, data).map_err(
                |e| WeightError::Invalid {
                    file: String::new(),
                    tensor: info.source_tensor.clone(),
                    message: e.to_string(),
                },
            )?));
        }
        let order = model.topo_order();
        let n = model.graph.node_count();
        let inputs: Vec<Vec<NodeIndex>> = (0..n).map(|i| model.inputs(NodeIndex::new(i))).collect();
        let mut uses = vec![0; n];
        for ins in &inputs {
            for i in ins {
                uses[i.index()] += 1;
            }
        }
        let attn_slot = order
            .iter()
            .filter(|&&n| matches!(model.graph[n].op, Op::Attention { .. }))
            .enumerate()
            .map(|(slot, &n)| (n, slot))
            .collect();
        let head = inputs[model.output.index()][0];
        let siblings = model.sibling_linears(&order, head);
        Ok(FloatModel {
            model: model.clone(),
            order,
            inputs,
            weights,
            stored,
            isa: Isa::detect(),
            attn_slot,
            uses,
            head,
            siblings,
        })
    }

    /// The IR graph this executor runs (a copy of the one it was built from).
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Swaps in other values for one weight (same shape), returning the old
    /// ones: lets quantization measure a single layer's effect end to end.
    /// Swapping back values equal (bit for bit) to the source's returns the
    /// weight to its stored rows, so no f32 copy outlives the measurement.
    pub fn swap_weight(&mut self, id: WeightId, values: Vec<f32>) -> Vec<f32> {
        let i = id.0 as usize;
        let (rows, cols) = (self.weights[i].rows(), self.weights[i].cols());
        assert_eq!(values.len(), rows * cols, "swap_weight: size");
        let old = self.weights[i].to_f32();
        self.weights[i] = match &self.stored[i] {
            Some(raw)
                if Matrix::Stored(raw.clone())
                    .to_f32()
                    .iter()
                    .map(|v| v.to_bits())
                    .eq(values.iter().map(|v| v.to_bits())) =>
            {
                Matrix::Stored(raw.clone())
            }
            _ => Matrix::Dense(Array2::from_shape_vec((rows, cols), values).expect("same size")),
        };
        old
    }

    /// Bytes of f32 weight values this executor holds in memory: vectors,
    /// and matrices its source could not give as stored rows (or swapped
    /// in). Stored rows are not counted: they stay in the source's map.
    pub fn resident_f32_bytes(&self) -> usize {
        self.weights.iter().map(Matrix::resident_f32_bytes).sum()
    }

    /// How each matrix weight is held: its IR name and `Some(dtype)` for
    /// stored rows, `None` for f32 in memory.
    pub fn weight_storage(&self) -> Vec<(String, Option<taalasc_ir::DType>)> {
        self.model
            .weights
            .iter()
            .zip(&self.weights)
            .filter(|(info, _)| info.shape.len() == 2)
            .map(|(info, w)| {
                let d = match w {
                    Matrix::Stored(r) => Some(r.dtype),
                    Matrix::Dense(_) => None,
                };
                (info.name.clone(), d)
            })
            .collect()
    }

    /// Uses `isa` for the matrix products instead of the detected best one
    /// (for tests that compare the paths; results are the same bits).
    /// Refuses an instruction set this CPU lacks.
    pub fn set_isa(&mut self, isa: Isa) -> bool {
        let ok = Isa::available().contains(&isa);
        if ok {
            self.isa = isa;
        }
        ok
    }

    /// A fresh session at position 0.
    pub fn session(&self) -> Session {
        Session {
            caches: vec![Default::default(); self.attn_slot.len()],
            pos: 0,
        }
    }

    fn w(&self, id: WeightId) -> &Matrix {
        &self.weights[id.0 as usize]
    }

    /// The weight of linear node `n`.
    fn linear_w(&self, n: NodeIndex) -> &Matrix {
        match &self.model.graph[n].op {
            Op::Linear { weight, .. } => self.w(*weight),
            op => unreachable!("a sibling is a linear, not {}", op.mnemonic()),
        }
    }

    /// A 1-D weight (always f32, as one row).
    fn row(&self, id: WeightId) -> ndarray::ArrayView1<'_, f32> {
        match &self.weights[id.0 as usize] {
            Matrix::Dense(a) => a.row(0),
            Matrix::Stored(_) => unreachable!("vectors are always read as f32"),
        }
    }

    /// Rows `rows` of a matrix weight as f32.
    fn rows_f32(&self, id: WeightId, rows: impl Iterator<Item = usize>) -> Array2<f32> {
        let w = self.w(id);
        let mut data = Vec::new();
        let mut n = 0;
        for r in rows {
            w.row_into(r, &mut data);
            n += 1;
        }
        Array2::from_shape_vec((n, w.cols()), data).expect("row shape")
    }

    /// Runs `tokens` at the session's next positions, appending to its KV
    /// cache. Returns logits `[tokens.len() - logits_from, vocab]` for the
    /// positions from `logits_from` on (earlier rows skip the LM head).
    pub fn forward(
        &self,
        session: &mut Session,
        tokens: &[u32],
        logits_from: usize,
    ) -> Result<Array2<f32>, FloatError> {
        // The whole call runs on one of rayon's workers, so that the matrix
        // products inside it split across the pool without a hand-off to
        // and from the caller's thread each time.
        // A decode step's parallel steps are short: the pool's other workers
        // stay on them ([`team`]). A prefill's are long, so a wake-up costs
        // it little, and its attention's products run on matrixmultiply's
        // own threads, which spinning workers would compete with.
        rayon::scope(|_| {
            let mut pass = || self.forward_probed(session, tokens, logits_from, &mut |_, _| {});
            if tokens.len() == 1 {
                team::Team::scope(pass)
            } else {
                pass()
            }
        })
    }

    /// [`FloatModel::forward`], calling `probe(node, input)` with the input
    /// activations `[positions, in]` of every `Linear` node before it runs
    /// (calibration statistics for quantization).
    pub fn forward_probed(
        &self,
        session: &mut Session,
        tokens: &[u32],
        logits_from: usize,
        probe: &mut dyn FnMut(NodeIndex, ArrayView2<f32>),
    ) -> Result<Array2<f32>, FloatError> {
        if logits_from > tokens.len() {
            return Err(FloatError::BadLogitsRange {
                from: logits_from,
                tokens: tokens.len(),
            });
        }
        let pos0 = session.pos;
        let mut values: Vec<Option<Array2<f32>>> = vec![None; self.model.graph.node_count()];
        let mut remaining = self.uses.clone();
        // Products computed ahead with an earlier sibling (`siblings`).
        let mut pending: Vec<Option<Array2<f32>>> = vec![None; values.len()];
        for &n in &self.order {
            let node = &self.model.graph[n];
            let ins = &self.inputs[n.index()];
            let arg = |i: usize| {
                values[ins[i].index()]
                    .as_ref()
                    .expect("operand computed")
                    .view()
            };
            let out = match &node.op {
                Op::Tokens => Array2::zeros((tokens.len(), 0)),
                Op::Embed { table } => {
                    let vocab = self.w(*table).rows();
                    if let Some((i, &tok)) = tokens
                        .iter()
                        .enumerate()
                        .find(|(_, &t)| t as usize >= vocab)
                    {
                        return Err(FloatError::TokenOutOfRange {
                            token: tok,
                            position: pos0 + i,
                            vocab,
                        });
                    }
                    self.rows_f32(*table, tokens.iter().map(|&t| t as usize))
                }
                Op::AddPositions { table } => {
                    let max = self.w(*table).rows();
                    let end = pos0 + tokens.len();
                    if end > max {
                        return Err(FloatError::PositionOutOfRange {
                            position: end - 1,
                            max,
                        });
                    }
                    &arg(0) + &self.rows_f32(*table, pos0..end)
                }
                Op::RmsNorm { gain, eps } => kernels::rms_norm(arg(0), self.row(*gain), *eps),
                Op::LayerNorm { gain, bias, eps } => {
                    kernels::layer_norm(arg(0), self.row(*gain), self.row(*bias), *eps)
                }
                Op::Linear { weight, bias } => {
                    let x = arg(0);
                    probe(n, x.view());
                    let x = if n == self.head {
                        x.slice_move(s![logits_from.., ..])
                    } else {
                        x
                    };
                    let mut out = if let Some(out) = pending[n.index()].take() {
                        out
                    } else if self.siblings[n.index()].is_empty() {
                        rows::matmul(self.isa, x, self.w(*weight))
                    } else {
                        // This linear and the later ones that read `x`.
                        let sib = &self.siblings[n.index()];
                        let ws: Vec<&Matrix> = sib.iter().map(|&m| self.linear_w(m)).collect();
                        let mut outs = rows::matmul_many(self.isa, x, &ws).into_iter();
                        let out = outs.next().expect("a product per linear");
                        for (&m, o) in sib[1..].iter().zip(outs) {
                            pending[m.index()] = Some(o);
                        }
                        out
                    };
                    if let Some(b) = bias {
                        out += &self.row(*b);
                    }
                    out
                }
                Op::Rope {
                    n_heads,
                    head_dim,
                    spec,
                } => {
                    let mut x = arg(0).to_owned();
                    kernels::rope(&mut x, *n_heads, *head_dim, spec, pos0);
                    x
                }
                Op::Attention {
                    n_heads,
                    n_kv_heads,
                    head_dim,
                    window,
                } => {
                    let (kc, vc, keys_t) = &mut session.caches[self.attn_slot[&n]];
                    kc.extend(arg(1).iter());
                    vc.extend(arg(2).iter());
                    let kv_w = n_kv_heads * head_dim;
                    let total = kc.len() / kv_w;
                    let k = ArrayView2::from_shape((total, kv_w), kc).expect("cache shape");
                    let v = ArrayView2::from_shape((total, kv_w), vc).expect("cache shape");
                    kernels::attention(
                        arg(0),
                        k,
                        v,
                        keys_t,
                        *n_heads,
                        *n_kv_heads,
                        *head_dim,
                        pos0,
                        *window,
                    )
                }
                Op::Add => &arg(0) + &arg(1),
                Op::Mul => &arg(0) * &arg(1),
                Op::Silu => arg(0).mapv(|x| x / (1.0 + (-x).exp())),
                Op::GeluTanh => arg(0).mapv(kernels::gelu_tanh),
                Op::Logits => arg(0).to_owned(),
            };
            // One pass over each node's output: the first node (in
            // topological, so layer, order) that overflows is named.
            if let Some(i) = out.iter().position(|x| !x.is_finite()) {
                let cols = out.ncols().max(1);
                let row0 = if n == self.head || n == self.model.output {
                    logits_from
                } else {
                    0
                };
                return Err(FloatError::NonFinite {
                    layer: node.layer,
                    node: node.name.clone(),
                    op: node.op.mnemonic(),
                    position: pos0 + row0 + i / cols,
                    feature: i % cols,
                    value: out.iter().nth(i).copied().unwrap_or(f32::NAN),
                });
            }
            for i in ins {
                remaining[i.index()] -= 1;
                if remaining[i.index()] == 0 {
                    values[i.index()] = None;
                }
            }
            values[n.index()] = Some(out);
        }
        session.pos += tokens.len();
        Ok(values[self.model.output.index()]
            .take()
            .expect("output computed"))
    }

    /// Greedy decoding: feeds `prompt`, then appends the argmax token
    /// `max_new` times (stopping early at `stop`). Returns the new tokens.
    pub fn generate_greedy(
        &self,
        prompt: &[u32],
        max_new: usize,
        stop: Option<u32>,
    ) -> Result<Vec<u32>, FloatError> {
        let mut session = self.session();
        let mut out = Vec::new();
        if prompt.is_empty() || max_new == 0 {
            return Ok(out);
        }
        let mut logits = self.forward(&mut session, prompt, prompt.len() - 1)?;
        loop {
            let next = argmax(logits.row(logits.nrows() - 1).as_slice().expect("row"));
            out.push(next);
            if out.len() == max_new || Some(next) == stop {
                return Ok(out);
            }
            logits = self.forward(&mut session, &[next], 0)?;
        }
    }
}

/// Index of the largest value (the first one on ties, like `torch.argmax`).
pub fn argmax<T: PartialOrd + Copy>(v: &[T]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

/// Log-softmax of one row, in f64 for accurate perplexity sums.
pub fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
    let lse = max + sum.ln();
    row.iter().map(|&x| x as f64 - lse).collect()
}
