//! Calibration: input statistics of every linear layer, from running the
//! float model on real text. They feed GPTQ (full Hessians) and the
//! per-layer sensitivities of the `--bits auto` e-graph pass (diagonals).

use std::collections::HashMap;
use taalasc_float::FloatModel;
use taalasc_ir::{Model, NodeIndex, Op, WeightId};
use taalasc_quant::Hessian;

/// `H = Σ x xᵀ` of the input of each linear weight.
pub struct Calibration {
    /// Keyed by the node that feeds the linear (q/k/v share one, gate/up another).
    by_input: HashMap<NodeIndex, Hessian>,
    /// Weight → the node feeding it.
    input_of: HashMap<WeightId, NodeIndex>,
    /// Positions run through the float model.
    pub tokens: usize,
    /// Windows run.
    pub chunks: usize,
    /// Mean next-token probability of each vocabulary entry under the float
    /// model over the calibration positions (when asked for): how much the
    /// head's row for that token weighs in the KL divergence.
    pub token_probs: Option<Vec<f64>>,
}

impl Calibration {
    /// Runs `chunks` non-overlapping windows of `ctx` tokens of `ids`
    /// through the float model, accumulating each linear input's `XᵀX`
    /// (computed in f32 per window, summed in f64), and with `probs` the mean
    /// softmax of the logits ([`Calibration::token_probs`]).
    pub fn run(
        model: &Model,
        float: &FloatModel,
        ids: &[u32],
        ctx: usize,
        chunks: usize,
        probs: bool,
    ) -> anyhow::Result<Calibration> {
        let mut input_of = HashMap::new();
        let mut feeds: HashMap<NodeIndex, NodeIndex> = HashMap::new();
        for n in model.graph.node_indices() {
            if let Op::Linear { weight, .. } = model.graph[n].op {
                let src = model.inputs(n)[0];
                input_of.entry(weight).or_insert(src);
                feeds.insert(n, src);
            }
        }
        let windows: Vec<&[u32]> = ids.chunks_exact(ctx).take(chunks).collect();
        anyhow::ensure!(
            !windows.is_empty(),
            "calibration text has {} tokens, fewer than one window of {ctx}",
            ids.len()
        );
        let mut by_input: HashMap<NodeIndex, Hessian> = HashMap::new();
        let mut prob_sum: Vec<f64> = Vec::new();
        let mut positions = 0usize;
        for w in &windows {
            let mut session = float.session();
            let mut seen: std::collections::HashSet<NodeIndex> = std::collections::HashSet::new();
            let logits_from = if probs { 0 } else { w.len() };
            let logits = float.forward_probed(&mut session, w, logits_from, &mut |n, x| {
                let src = feeds[&n];
                if !seen.insert(src) {
                    return; // q/k/v (and gate/up) read the same input once
                }
                let xtx = x.t().dot(&x);
                let h = by_input
                    .entry(src)
                    .or_insert_with(|| Hessian::new(x.ncols()));
                for (acc, v) in h.h.iter_mut().zip(xtx.iter()) {
                    *acc += *v as f64;
                }
                h.samples += x.nrows();
            })?;
            for row in logits.rows() {
                let lp = taalasc_float::log_softmax(row.as_slice().expect("contiguous row"));
                prob_sum.resize(lp.len(), 0.0);
                for (s, l) in prob_sum.iter_mut().zip(lp) {
                    *s += l.exp();
                }
                positions += 1;
            }
        }
        let token_probs = probs.then(|| {
            let n = positions.max(1) as f64;
            prob_sum.iter().map(|s| s / n).collect()
        });
        Ok(Calibration {
            by_input,
            input_of,
            tokens: windows.len() * ctx,
            chunks: windows.len(),
            token_probs,
        })
    }

    /// The input Hessian of a linear weight.
    pub fn hessian(&self, w: WeightId) -> Option<&Hessian> {
        self.input_of.get(&w).and_then(|n| self.by_input.get(n))
    }
}
