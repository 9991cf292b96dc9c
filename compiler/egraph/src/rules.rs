//! The one rule family of the pass: `linear→q:<format>[+mixed][+fused]`.
//!
//! One rewrite per candidate *kind* (weight format × mixed widths × fused) present in the
//! input, named after the kind (`linear→q:a4g32`, `linear→q:s3row+fused`).
//! Each matches `(layer ?k)` and, on the condition that layer `k` has a
//! candidate of its kind, adds `(q c ?k)` to the layer's class for every such
//! candidate `c` (one, or several mixed-width ones). A layer without the kind is left alone.
//!
//! The rules only ever add one node per (layer, candidate), so the e-graph
//! saturates on the second iteration with exactly
//! [`saturated_size`](crate::lang::saturated_size) nodes.

use std::collections::{HashMap, HashSet};

use egg::{Applier, Id, PatternAst, Subst, Symbol, Var};
use taalasc_quant::WeightFormat;

use crate::lang::{ClassData, EGraph, LayerIndex, QuantLang};
use crate::LayerChoices;

/// A rewrite of this pass.
pub type Rewrite = egg::Rewrite<QuantLang, LayerIndex>;

/// What a rewrite introduces: a weight format, with or without the preceding
/// RMSNorm gain folded into the weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Kind {
    /// The weight format.
    pub format: WeightFormat,
    /// RMSNorm gain folded into the weights.
    pub fused: bool,
    /// Column groups of different widths, at most `format`'s.
    pub mixed: bool,
}

impl Kind {
    /// `linear→q:<format>` or `linear→q:<format>+fused`.
    pub fn rule_name(&self) -> String {
        let fused = if self.fused { "+fused" } else { "" };
        let mixed = if self.mixed { "+mixed" } else { "" };
        format!("linear→q:{}{mixed}{fused}", self.format.name())
    }
}

/// The kinds present in `layers`, in order of first appearance (layer by
/// layer, candidate by candidate), so the rule list is deterministic.
pub fn kinds(layers: &[LayerChoices]) -> Vec<Kind> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for cand in layers.iter().flat_map(|l| &l.candidates) {
        let kind = Kind {
            format: cand.format,
            fused: cand.fused,
            mixed: cand.mixed,
        };
        if seen.insert(kind) {
            out.push(kind);
        }
    }
    out
}

/// The rule family: one named, conditional rewrite per kind present in
/// `layers`.
pub fn rules(layers: &[LayerChoices]) -> Vec<Rewrite> {
    let kinds = kinds(layers);
    let index: HashMap<Kind, usize> = kinds.iter().enumerate().map(|(i, &k)| (k, i)).collect();
    // per_kind[kind][layer] = that layer's candidates of that kind.
    let mut per_kind = vec![vec![Vec::new(); layers.len()]; kinds.len()];
    for (k, layer) in layers.iter().enumerate() {
        for (c, cand) in layer.candidates.iter().enumerate() {
            let kind = Kind {
                format: cand.format,
                fused: cand.fused,
                mixed: cand.mixed,
            };
            per_kind[index[&kind]][k].push(c as u32);
        }
    }
    let layer_var: Var = "?k".parse().expect("a pattern variable");
    kinds
        .iter()
        .zip(per_kind)
        .map(|(kind, candidates)| {
            let searcher: egg::Pattern<QuantLang> =
                "(layer ?k)".parse().expect("a well-formed pattern");
            Rewrite::new(
                kind.rule_name(),
                searcher,
                Quantize {
                    layer_var,
                    candidates,
                },
            )
            .expect("the applier binds only ?k")
        })
        .collect()
}

/// Applier of one kind: `candidates[k]` lists layer `k`'s candidates of the
/// kind (empty: the condition fails and nothing is added).
struct Quantize {
    layer_var: Var,
    candidates: Vec<Vec<u32>>,
}

impl Quantize {
    /// The condition: the matched class is a layer that has this kind.
    fn candidates_of(&self, egraph: &EGraph, index_class: Id) -> &[u32] {
        match egraph[index_class].data {
            ClassData::Index(k) => self
                .candidates
                .get(k as usize)
                .map(Vec::as_slice)
                .unwrap_or(&[]),
            _ => &[],
        }
    }
}

impl Applier<QuantLang, LayerIndex> for Quantize {
    fn apply_one(
        &self,
        egraph: &mut EGraph,
        eclass: Id,
        subst: &Subst,
        _searcher_ast: Option<&PatternAst<QuantLang>>,
        rule_name: Symbol,
    ) -> Vec<Id> {
        let index_class = subst[self.layer_var];
        let mut changed = Vec::new();
        for &c in self.candidates_of(egraph, index_class) {
            let c = egraph.add(QuantLang::Num(c));
            let q = egraph.add(QuantLang::Q([c, index_class]));
            if egraph.union_trusted(eclass, q, rule_name) {
                changed.push(eclass);
            }
        }
        changed
    }

    fn vars(&self) -> Vec<Var> {
        vec![self.layer_var]
    }
}
