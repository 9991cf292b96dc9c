//! The partition choices as an e-graph.
//!
//! ```text
//! (part a b)   stages a..b on a chain of one or more chips (to be decided)
//! (chip a b)   one chip holds stages a..b
//! (link L R)   the chain L, a link, then the chain R (L ends where R starts)
//! ```
//!
//! `a` and `b` are `Num` leaves. The pass starts from `(part 0 n)` and runs
//! two conditional rules, both matching `(part ?a ?b)`:
//!
//! - `one-chip`: `(part a b) → (chip a b)` if that chip fits the budget;
//! - `cut`: `(part a b) → (link (chip a i) (part i b))` for every `i` in
//!   `a+1..b` whose chip `a..i` fits: the first chip is peeled off, the
//!   rest is again a choice.
//!
//! Infeasible chips are never added: the appliers check them first.
//! [`ChainCosts`], the analysis, gives every class its stage span and what
//! holding that span on one chip costs (the `one-chip` rule's condition, and
//! the chip areas the extractor reads).
//!
//! ## Size and saturation
//!
//! Every `part` has `b = n`, so the saturated e-graph holds at most `n + 1`
//! numbers, `n` parts, `n(n+1)/2` chips and `n(n−1)/2` links: at most
//! `(n+1)²` nodes (exactly that when everything fits one chip), about 40k
//! for 200 stages. Iteration `t` creates the parts reachable with `t` cuts,
//! so after at most `n` iterations nothing is new and iteration `n + 1` at
//! the latest finds the e-graph saturated. The runner's limits are set well
//! above both bounds, so stopping on one is a bug and is reported
//! ([`PartitionError::NotSaturated`]).
//!
//! The e-graph is acyclic: a `link`'s children span strictly fewer stages
//! than the link itself, and rules only merge classes of the same span.

use std::time::Duration;

use egg::{
    define_language, Analysis, Applier, DidMerge, Id, PatternAst, RecExpr, Runner, SimpleScheduler,
    StopReason, Subst, Symbol, Var,
};

use super::{Chain, Footprint, PartitionError};

define_language! {
    /// Terms of the partition pass.
    pub enum PartLang {
        "part" = Part([Id; 2]),
        "chip" = Chip([Id; 2]),
        "link" = Link([Id; 2]),
        Num(u32),
    }
}

/// The e-graph of this pass.
pub type EGraph = egg::EGraph<PartLang, ChainCosts>;

/// A rewrite of this pass.
type Rewrite = egg::Rewrite<PartLang, ChainCosts>;

/// Stages `first..end`, and what holding all of them on one chip costs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Span {
    pub first: usize,
    pub end: usize,
    pub one_chip: Footprint,
}

/// What an e-class stands for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ClassData {
    /// A stage index (a `Num`).
    Index(u32),
    /// A chain or a chip over a span of stages.
    Stages(Span),
    /// An ill-formed term (out-of-range indices, a link whose halves do not
    /// meet); the rules never build one.
    Malformed,
}

/// The analysis: owns the [`Chain`] (so the rules and the extractor read
/// the same figures) and gives each class its [`ClassData`].
#[derive(Debug)]
pub struct ChainCosts {
    pub chain: Chain,
}

impl ChainCosts {
    /// The span `first..end`, if it is a non-empty range of the chain.
    fn span(&self, first: u32, end: u32) -> ClassData {
        let (first, end) = (first as usize, end as usize);
        if first < end && end <= self.chain.len() {
            ClassData::Stages(Span {
                first,
                end,
                one_chip: self.chain.footprint(first, end),
            })
        } else {
            ClassData::Malformed
        }
    }
}

impl Analysis<PartLang> for ChainCosts {
    type Data = ClassData;

    fn make(egraph: &mut EGraph, enode: &PartLang, _id: Id) -> ClassData {
        match enode {
            PartLang::Num(k) => ClassData::Index(*k),
            PartLang::Part([a, b]) | PartLang::Chip([a, b]) => {
                match (&egraph[*a].data, &egraph[*b].data) {
                    (ClassData::Index(a), ClassData::Index(b)) => egraph.analysis.span(*a, *b),
                    _ => ClassData::Malformed,
                }
            }
            PartLang::Link([l, r]) => match (&egraph[*l].data, &egraph[*r].data) {
                (ClassData::Stages(l), ClassData::Stages(r)) if l.end == r.first => {
                    egraph.analysis.span(l.first as u32, r.end as u32)
                }
                _ => ClassData::Malformed,
            },
        }
    }

    fn merge(&mut self, to: &mut ClassData, from: ClassData) -> DidMerge {
        assert_eq!(
            *to, from,
            "merged classes that stand for different stage spans"
        );
        DidMerge(false, false)
    }
}

/// `one-chip`: adds `(chip a b)` to the class of `(part a b)` if one chip
/// can hold the span.
struct OneChip {
    a: Var,
    b: Var,
}

impl Applier<PartLang, ChainCosts> for OneChip {
    fn apply_one(
        &self,
        egraph: &mut EGraph,
        eclass: Id,
        subst: &Subst,
        _searcher_ast: Option<&PatternAst<PartLang>>,
        rule_name: Symbol,
    ) -> Vec<Id> {
        let ClassData::Stages(span) = egraph[eclass].data else {
            return vec![];
        };
        if !span.one_chip.fits {
            return vec![];
        }
        let chip = egraph.add(PartLang::Chip([subst[self.a], subst[self.b]]));
        if egraph.union_trusted(eclass, chip, rule_name) {
            vec![eclass]
        } else {
            vec![]
        }
    }

    fn vars(&self) -> Vec<Var> {
        vec![self.a, self.b]
    }
}

/// `cut`: adds `(link (chip a i) (part i b))` to the class of `(part a b)`
/// for every `i` whose first chip `a..i` fits.
struct Cut {
    a: Var,
    b: Var,
}

impl Applier<PartLang, ChainCosts> for Cut {
    fn apply_one(
        &self,
        egraph: &mut EGraph,
        eclass: Id,
        subst: &Subst,
        _searcher_ast: Option<&PatternAst<PartLang>>,
        rule_name: Symbol,
    ) -> Vec<Id> {
        let ClassData::Stages(span) = egraph[eclass].data else {
            return vec![];
        };
        let (a, b) = (subst[self.a], subst[self.b]);
        let mut changed = vec![];
        for i in span.first + 1..span.end {
            // The first chip's area only grows with `i` (bits are
            // non-negative, the budget's helpers increase with them) and its
            // pins do not change (it always has an outgoing link here), so
            // the first chip that does not fit ends the search.
            if !egraph.analysis.chain.footprint(span.first, i).fits {
                break;
            }
            let i = egraph.add(PartLang::Num(i as u32));
            let chip = egraph.add(PartLang::Chip([a, i]));
            let rest = egraph.add(PartLang::Part([i, b]));
            let link = egraph.add(PartLang::Link([chip, rest]));
            if egraph.union_trusted(eclass, link, rule_name) {
                changed.push(eclass);
            }
        }
        changed
    }

    fn vars(&self) -> Vec<Var> {
        vec![self.a, self.b]
    }
}

/// The two rules.
fn rules() -> Vec<Rewrite> {
    let a: Var = "?a".parse().expect("a pattern variable");
    let b: Var = "?b".parse().expect("a pattern variable");
    let part = || -> egg::Pattern<PartLang> { "(part ?a ?b)".parse().expect("a pattern") };
    vec![
        Rewrite::new("one-chip", part(), OneChip { a, b }).expect("binds only ?a ?b"),
        Rewrite::new("cut", part(), Cut { a, b }).expect("binds only ?a ?b"),
    ]
}

/// A saturated partition e-graph.
pub struct Saturated {
    /// The e-graph; its analysis owns the chain.
    pub egraph: EGraph,
    /// The class of `(part 0 n)`.
    pub root: Id,
    /// Runner iterations.
    pub iterations: usize,
}

/// Builds `(part 0 n)` and runs the rules to saturation (see the module
/// documentation for the bounds the limits are derived from).
pub fn saturate(chain: Chain) -> Result<Saturated, PartitionError> {
    let n = chain.len();
    let mut term = RecExpr::default();
    let zero = term.add(PartLang::Num(0));
    let end = term.add(PartLang::Num(n as u32));
    term.add(PartLang::Part([zero, end]));
    // Before a rebuild the hash-cons may briefly hold stale copies of
    // nodes, so the node limit is twice the saturated bound.
    let node_bound = (n + 1) * (n + 1);
    let runner = Runner::<PartLang, ChainCosts, ()>::new(ChainCosts { chain })
        .with_scheduler(SimpleScheduler)
        .with_iter_limit(2 * n + 8)
        .with_node_limit(2 * node_bound + 64)
        .with_time_limit(Duration::from_secs(60))
        .with_expr(&term)
        .run(&rules());
    let reason = runner
        .stop_reason
        .clone()
        .unwrap_or_else(|| StopReason::Other("runner did not stop".into()));
    if !matches!(reason, StopReason::Saturated) {
        return Err(PartitionError::NotSaturated {
            stop_reason: format!("{reason:?}"),
        });
    }
    Ok(Saturated {
        root: runner.egraph.find(runner.roots[0]),
        iterations: runner.iterations.len(),
        egraph: runner.egraph,
    })
}
