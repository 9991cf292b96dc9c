//! The quantization language, its one analysis, node costs, and the one place
//! where a list of layers becomes a term (and a term's classes become layers).
//!
//! ```text
//! (seq (layer 0) (layer 1) … (layer L-1))          the model before the pass
//! class of (layer k) = { (layer k), (q c k), (q c' k), … }   after the rules
//! ```
//!
//! - `(layer k)`: linear layer `k`, unquantized. It is a leaf in spirit: its
//!   only child is the index `k`, so two layers never hash-cons together even
//!   when their shapes agree.
//! - `(q c k)`: layer `k` implemented by its candidate `c` (an index into
//!   [`LayerChoices::candidates`](crate::LayerChoices)). The second child is
//!   the *index* class of `k`, not the layer class, so the e-graph stays
//!   acyclic.
//! - `(seq l₀ l₁ …)`: the model, the layers in order. Layers are independent:
//!   the cost of the model is the sum of its layers' costs.

use egg::{define_language, Analysis, DidMerge, Id, RecExpr};

use crate::LayerChoices;

define_language! {
    /// Terms of the quantization pass.
    #[allow(missing_docs)]
    pub enum QuantLang {
        "seq" = Seq(Box<[Id]>),
        "layer" = Layer(Id),
        "q" = Q([Id; 2]),
        Num(u32),
    }
}

/// The e-graph of this pass.
pub type EGraph = egg::EGraph<QuantLang, LayerIndex>;

/// What an e-class stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassData {
    /// A number (a layer index or a candidate index).
    Index(u32),
    /// Layer `k`: `(layer k)` and its quantized forms `(q c k)`.
    Layer(u32),
    /// The model `(seq …)`, or an ill-formed term.
    Other,
}

/// The analysis: which layer (or number) each class is. Rules read it to
/// check that a candidate exists for the layer they rewrite; `merge` asserts
/// that a rewrite never equates two different layers.
#[derive(Clone, Copy, Debug, Default)]
pub struct LayerIndex;

impl Analysis<QuantLang> for LayerIndex {
    type Data = ClassData;

    fn make(egraph: &mut EGraph, enode: &QuantLang, _id: Id) -> ClassData {
        let layer_of = |i: &Id| match egraph[*i].data {
            ClassData::Index(k) => ClassData::Layer(k),
            _ => ClassData::Other,
        };
        match enode {
            QuantLang::Num(n) => ClassData::Index(*n),
            QuantLang::Layer(k) => layer_of(k),
            QuantLang::Q([_, k]) => layer_of(k),
            QuantLang::Seq(_) => ClassData::Other,
        }
    }

    fn merge(&mut self, to: &mut ClassData, from: ClassData) -> DidMerge {
        assert_eq!(*to, from, "merged classes that stand for different things");
        DidMerge(false, false)
    }
}

/// The cost of implementing a class: ROM bits (codes and scales) and
/// measured quality loss. Costs only grow along a term (every node adds a
/// non-negative amount) and saturate instead of overflowing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cost {
    /// ROM bits, scales included.
    pub bits: u64,
    /// Measured sensitivity (≥ 0).
    pub loss: f64,
}

impl Cost {
    /// Nothing.
    pub const ZERO: Cost = Cost { bits: 0, loss: 0.0 };
    /// Not implementable (an unquantized `(layer k)` has no ROM form).
    pub const INFINITE: Cost = Cost {
        bits: u64::MAX,
        loss: f64::INFINITY,
    };

    /// Saturating sum.
    pub fn saturating_add(self, other: Cost) -> Cost {
        Cost {
            bits: self.bits.saturating_add(other.bits),
            loss: self.loss + other.loss,
        }
    }
}

/// The own cost of a layer-class node: `(q c k)` costs candidate `c` of layer
/// `k`; `(layer k)` (unquantized) and anything ill-formed cost
/// [`Cost::INFINITE`]. Returns the candidate index alongside.
pub fn q_cost(
    egraph: &EGraph,
    layers: &[LayerChoices],
    enode: &QuantLang,
) -> Option<(usize, Cost)> {
    let QuantLang::Q([c, k]) = enode else {
        return None;
    };
    let (ClassData::Index(c), ClassData::Index(k)) = (egraph[*c].data, egraph[*k].data) else {
        return None;
    };
    let cand = layers.get(k as usize)?.candidates.get(c as usize)?;
    Some((
        c as usize,
        Cost {
            bits: cand.bits,
            loss: cand.loss,
        },
    ))
}

/// The model before the pass: `(seq (layer 0) … (layer n-1))`. The root is
/// the last node.
pub fn model_term(n_layers: usize) -> RecExpr<QuantLang> {
    let mut expr = RecExpr::default();
    let layers: Vec<Id> = (0..n_layers)
        .map(|k| {
            let index = expr.add(QuantLang::Num(k as u32));
            expr.add(QuantLang::Layer(index))
        })
        .collect();
    expr.add(QuantLang::Seq(layers.into_boxed_slice()));
    expr
}

/// The layer classes of the model rooted at `root`, in order (`None` when
/// the root holds no `seq`).
pub fn layer_classes(egraph: &EGraph, root: Id) -> Option<Vec<Id>> {
    egraph[root].nodes.iter().find_map(|n| match n {
        QuantLang::Seq(ls) => Some(ls.iter().map(|&l| egraph.find(l)).collect()),
        _ => None,
    })
}

/// Exactly how many e-nodes the saturated e-graph of `layers` holds: the
/// `seq`, one `(layer k)` and one `(q c k)` per candidate, and one number per
/// distinct index (layer indices and candidate indices share numbers).
pub fn saturated_size(layers: &[LayerChoices]) -> usize {
    let max_cands = layers.iter().map(|l| l.candidates.len()).max().unwrap_or(0);
    let candidates: usize = layers.iter().map(|l| l.candidates.len()).sum();
    1 + layers.len() + candidates + layers.len().max(max_cands)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_term_prints_as_a_sequence_of_layers() {
        assert_eq!(
            model_term(3).to_string(),
            "(seq (layer 0) (layer 1) (layer 2))"
        );
        let parsed: RecExpr<QuantLang> = "(seq (layer 0) (q 2 0))".parse().unwrap();
        assert_eq!(parsed.to_string(), "(seq (layer 0) (q 2 0))");
    }

    #[test]
    fn costs_saturate() {
        let big = Cost {
            bits: u64::MAX - 1,
            loss: 1.0,
        };
        assert_eq!(big.saturating_add(big).bits, u64::MAX);
        assert_eq!(Cost::ZERO.saturating_add(big), big);
        assert!(Cost::INFINITE.saturating_add(Cost::ZERO).loss.is_infinite());
    }
}
