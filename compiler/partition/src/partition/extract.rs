//! Exact extraction of the best partition from the saturated e-graph.
//!
//! ## Why not egg's `Extractor`
//!
//! egg's `Extractor` gives every e-node a cost from its children's costs
//! and keeps, per class, the one cheapest node. That is exact only for a
//! cost that is monotone and totally ordered per class, and it costs terms
//! as trees (FACTS.md). Our objective is neither:
//!
//! - "at least `min_chips` chips" is not a property of one best term per
//!   class: the best 2-chip chain of a class may be useless when the caller
//!   forces 5 chips, so every class needs its best term *per chip count*;
//! - the throughput bound is a maximum, and "max first, then a sum" does
//!   not compose: a sub-chain with a slower link but fewer link bits can be
//!   the better choice once a still slower link elsewhere dominates the
//!   maximum, so keeping one best sub-chain per class loses optima. The same
//!   holds for the largest chip area followed by the cut tie-break.
//!
//! ## Method
//!
//! The e-graph is acyclic (a link's halves span fewer stages than the link),
//! so a per-class dynamic program in order of span length sees every child
//! before its parents. [`read`] turns the saturated e-graph into that order:
//! per class its span, whether it holds a `chip` (with the chip's area from
//! the analysis) and its `link` nodes. A `part` node stands for a choice
//! not yet made and is never extracted itself.
//!
//! Each pass computes, for every class and every chip count `k`, the best
//! value of a term of that class with exactly `k` chips (a `chip` node has
//! `k = 1`; a `link` over halves with `k₁` and `k₂` chips has `k₁ + k₂`),
//! and a back-pointer. Three passes settle the objective one criterion at a
//! time, each turning the previous optimum into a constraint:
//!
//! 1. **Bottleneck**: the least possible largest link busy time, per `k`.
//!    A maximum alone composes exactly. `K` is the smallest `k ≥ min_chips`
//!    with a value (none: only the link pins can be the reason). The
//!    throughput bound is `T = max(slowest stage, that bottleneck)`: every
//!    stage's cycles count whatever the cut, so links up to `T` are free.
//! 2. **Bits, then largest chip**: links slower than `T` are forbidden;
//!    minimize (Σ link bits, largest chip area) lexicographically. This
//!    composes exactly: a smaller sum below is a smaller sum above, and at
//!    an equal sum a smaller maximum below never gives a larger maximum
//!    above. Gives the optimum bits `S*` and largest chip `A*`.
//! 3. **Bits, then earliest cuts**: chips larger than `A*` are forbidden
//!    too; minimize Σ link bits, ties broken by the cut list. Also exact: a
//!    term's cut list is its left half's cuts, the cut between the halves,
//!    then the right half's, so a lexicographically smaller half gives a
//!    smaller whole at the same place. The cut lists are compared lazily,
//!    by walking back-pointers until they differ (usually at the first cut).
//!
//! The terms pass 3 allows with `S*` bits are exactly the terms optimal on
//! criteria 1 to 4: each of its constraints is met with equality by every
//! optimum, and nothing within them does better. Pass 3 picks the earliest
//! cuts among them.
//!
//! ## Cost
//!
//! A link costs one step per pair of chip counts of its halves. Chip counts
//! are capped at the span length in pass 1 and at `K` in passes 2 and 3,
//! and the rules' left halves are single chips, so a pass takes at most
//! `Σ_links min(cap, right span) ≤ n³/6` steps: 1.3M for 200 stages. The
//! whole pass (saturation and the three passes) takes 15 to 90 ms for 200
//! stages in the workspace's dev profile, whatever the chip count.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use egg::Id;

use super::egraph::{ClassData, EGraph, PartLang};
use super::Chain;

/// One class of the e-graph, as the DP reads it.
#[derive(Clone, Debug)]
struct Class {
    /// Its stage span `first..end`.
    first: usize,
    end: usize,
    /// The area of `(chip first end)`, if the class holds that node.
    chip_area: Option<f64>,
    /// Its `(link l r)` nodes, as indices of `l` and `r` in [`Dag::classes`].
    links: Vec<(usize, usize)>,
}

/// The classes reachable from the root, children before parents.
#[derive(Clone, Debug)]
struct Dag {
    classes: Vec<Class>,
    root: usize,
}

/// Reads the e-graph below `root`, ordered by span length (then first
/// stage, then class id: a fixed order), so that children come first.
fn read(egraph: &EGraph, root: Id) -> Dag {
    let span = |id: Id| match egraph[id].data {
        ClassData::Stages(s) => s,
        other => panic!("class {id} is not a stage span: {other:?}"),
    };
    // Every class reachable through links.
    let root = egraph.find(root);
    let mut reachable = HashSet::from([root]);
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        for node in &egraph[id].nodes {
            if let PartLang::Link(children) = node {
                for &c in children {
                    let c = egraph.find(c);
                    if reachable.insert(c) {
                        stack.push(c);
                    }
                }
            }
        }
    }
    let mut seen: Vec<Id> = reachable.into_iter().collect();
    seen.sort_by_key(|&id| {
        let s = span(id);
        (s.end - s.first, s.first, s.end, usize::from(id))
    });
    let index: HashMap<Id, usize> = seen.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let classes = seen
        .iter()
        .map(|&id| {
            let s = span(id);
            let mut class = Class {
                first: s.first,
                end: s.end,
                chip_area: None,
                links: vec![],
            };
            for node in &egraph[id].nodes {
                match node {
                    PartLang::Chip(_) => {
                        // The rules add only chips that fit.
                        debug_assert!(s.one_chip.fits);
                        class.chip_area = Some(s.one_chip.area_mm2);
                    }
                    PartLang::Link([l, r]) => {
                        let (l, r) = (index[&egraph.find(*l)], index[&egraph.find(*r)]);
                        class.links.push((l, r));
                    }
                    PartLang::Part(_) | PartLang::Num(_) => {}
                }
            }
            class
        })
        .collect();
    Dag {
        classes,
        root: index[&root],
    }
}

/// How a class's best term with `k` chips is built.
#[derive(Clone, Copy, Debug)]
enum Choice {
    /// Its `chip` node (`k = 1`).
    Chip,
    /// Its link `link` (an index into [`Class::links`]), the left half with
    /// `left_chips` chips, the right half with the rest.
    Link { link: usize, left_chips: usize },
}

/// A class's best term with some number of chips.
#[derive(Clone, Copy, Debug)]
struct Best<V> {
    value: V,
    choice: Choice,
}

/// Per class, `table[k - 1]` = the best term with `k` chips, if any.
type Table<V> = Vec<Option<Best<V>>>;

/// One pass's value: how a chip and a link contribute, and how values
/// compare.
trait Pass {
    type V: Copy;
    /// The value of a (feasible) chip of this area, or `None` if this pass
    /// forbids it.
    fn chip(&self, area_mm2: f64) -> Option<Self::V>;
    /// The value of `left`, the link after stage `cut - 1`, then `right`;
    /// `None` if this pass forbids the link.
    fn join(&self, left: Self::V, cut: usize, right: Self::V) -> Option<Self::V>;
    /// The order of values (`Less` is better).
    fn cmp(&self, a: &Self::V, b: &Self::V) -> Ordering;
    /// Break ties by the cut list (only the last pass needs it).
    const CUT_TIES: bool;
}

/// A step of the lazy in-order walk of a term's cut list.
#[derive(Clone, Copy, Debug)]
enum Frame {
    /// The best term of class `.0` with `.1` chips.
    Term(usize, usize),
    /// A cut position.
    Cut(usize),
}

/// The cut list of a term, lazily, from the frames of its choice.
struct Cuts<'a, V> {
    dag: &'a Dag,
    tables: &'a [Table<V>],
    stack: &'a mut Vec<Frame>,
}

impl<V> Iterator for Cuts<'_, V> {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        loop {
            match self.stack.pop()? {
                Frame::Cut(c) => return Some(c),
                Frame::Term(class, k) => {
                    let best = self.tables[class][k - 1]
                        .as_ref()
                        .expect("back-pointers lead to terms");
                    push_choice(self.dag, self.stack, class, k, best.choice);
                }
            }
        }
    }
}

/// Pushes the frames of `choice` for class `class` with `k` chips, in
/// reverse (the stack pops the left half first).
fn push_choice(dag: &Dag, stack: &mut Vec<Frame>, class: usize, k: usize, choice: Choice) {
    if let Choice::Link { link, left_chips } = choice {
        let (l, r) = dag.classes[class].links[link];
        stack.push(Frame::Term(r, k - left_chips));
        stack.push(Frame::Cut(dag.classes[l].end));
        stack.push(Frame::Term(l, left_chips));
    }
}

/// Runs one pass over every class, for chip counts up to `max_chips`.
fn run<P: Pass>(dag: &Dag, pass: &P, max_chips: usize) -> Vec<Table<P::V>> {
    let mut tables: Vec<Table<P::V>> = Vec::with_capacity(dag.classes.len());
    let (mut stack_a, mut stack_b) = (Vec::new(), Vec::new());
    for (c, class) in dag.classes.iter().enumerate() {
        let mut table: Table<P::V> = Vec::new();
        if let Some(value) = class.chip_area.and_then(|a| pass.chip(a)) {
            table.push(Some(Best {
                value,
                choice: Choice::Chip,
            }));
        }
        for (link, &(l, r)) in class.links.iter().enumerate() {
            assert!(l < c && r < c, "a link's halves come before it");
            debug_assert!(
                dag.classes[l].first == class.first && dag.classes[r].end == class.end,
                "a link's halves cover its span"
            );
            let cut = dag.classes[l].end;
            for (kl, left) in tables[l].iter().enumerate() {
                let Some(left) = left else { continue };
                for (kr, right) in tables[r].iter().enumerate() {
                    let k = kl + kr + 2;
                    if k > max_chips {
                        break;
                    }
                    let Some(right) = right else { continue };
                    let Some(value) = pass.join(left.value, cut, right.value) else {
                        continue;
                    };
                    let choice = Choice::Link {
                        link,
                        left_chips: kl + 1,
                    };
                    if table.len() < k {
                        table.resize(k, None);
                    }
                    let better = match &table[k - 1] {
                        None => true,
                        Some(cur) => match pass.cmp(&value, &cur.value) {
                            Ordering::Less => true,
                            Ordering::Greater => false,
                            Ordering::Equal if !P::CUT_TIES => false,
                            Ordering::Equal => {
                                stack_a.clear();
                                stack_b.clear();
                                push_choice(dag, &mut stack_a, c, k, choice);
                                push_choice(dag, &mut stack_b, c, k, cur.choice);
                                let new = Cuts {
                                    dag,
                                    tables: &tables,
                                    stack: &mut stack_a,
                                };
                                let old = Cuts {
                                    dag,
                                    tables: &tables,
                                    stack: &mut stack_b,
                                };
                                new.cmp(old) == Ordering::Less
                            }
                        },
                    };
                    if better {
                        table[k - 1] = Some(Best { value, choice });
                    }
                }
            }
        }
        tables.push(table);
    }
    tables
}

/// Pass 1: the largest link busy time of a term (0 without links).
struct Bottleneck<'a> {
    chain: &'a Chain,
}

impl Pass for Bottleneck<'_> {
    type V = u64;
    fn chip(&self, _area_mm2: f64) -> Option<u64> {
        Some(0)
    }
    fn join(&self, left: u64, cut: usize, right: u64) -> Option<u64> {
        Some(left.max(self.chain.link(cut - 1).busy_cycles).max(right))
    }
    fn cmp(&self, a: &u64, b: &u64) -> Ordering {
        a.cmp(b)
    }
    const CUT_TIES: bool = false;
}

/// Pass 2: (Σ link bits, largest chip area), links no slower than `max_busy`.
struct BitsThenArea<'a> {
    chain: &'a Chain,
    max_busy: u64,
}

impl Pass for BitsThenArea<'_> {
    type V = (u64, f64);
    fn chip(&self, area_mm2: f64) -> Option<(u64, f64)> {
        Some((0, area_mm2))
    }
    fn join(&self, left: (u64, f64), cut: usize, right: (u64, f64)) -> Option<(u64, f64)> {
        let link = self.chain.link(cut - 1);
        (link.busy_cycles <= self.max_busy).then(|| {
            (
                left.0
                    .saturating_add(link.bits_per_token)
                    .saturating_add(right.0),
                left.1.max(right.1),
            )
        })
    }
    fn cmp(&self, a: &(u64, f64), b: &(u64, f64)) -> Ordering {
        a.0.cmp(&b.0).then(a.1.total_cmp(&b.1))
    }
    const CUT_TIES: bool = false;
}

/// Pass 3: Σ link bits, ties to the earliest cuts; links no slower than
/// `max_busy`, chips no larger than `max_area`.
struct BitsThenCuts<'a> {
    chain: &'a Chain,
    max_busy: u64,
    max_area: f64,
}

impl Pass for BitsThenCuts<'_> {
    type V = u64;
    fn chip(&self, area_mm2: f64) -> Option<u64> {
        (area_mm2 <= self.max_area).then_some(0)
    }
    fn join(&self, left: u64, cut: usize, right: u64) -> Option<u64> {
        let link = self.chain.link(cut - 1);
        (link.busy_cycles <= self.max_busy).then(|| {
            left.saturating_add(link.bits_per_token)
                .saturating_add(right)
        })
    }
    fn cmp(&self, a: &u64, b: &u64) -> Ordering {
        a.cmp(b)
    }
    const CUT_TIES: bool = true;
}

/// The best partition's cut positions (see the module documentation), or
/// `None` when no term of the root class has at least `min_chips` (≥ 1)
/// chips.
pub fn extract(egraph: &EGraph, root: Id, min_chips: usize) -> Option<Vec<usize>> {
    solve(&read(egraph, root), &egraph.analysis.chain, min_chips)
}

/// [`extract`] on the e-graph as read.
fn solve(dag: &Dag, chain: &Chain, min_chips: usize) -> Option<Vec<usize>> {
    let n = chain.len();

    let tables = run(dag, &Bottleneck { chain }, n);
    let root_table = &tables[dag.root];
    let chips = (min_chips.max(1)..=root_table.len()).find(|&k| root_table[k - 1].is_some())?;
    let bottleneck = root_table[chips - 1].as_ref()?.value;
    let max_busy = bottleneck.max(chain.slowest_stage());

    let pass2 = BitsThenArea { chain, max_busy };
    let tables = run(dag, &pass2, chips);
    let (bits, max_area) = tables[dag.root][chips - 1]
        .as_ref()
        .expect("pass 1's optimum is allowed")
        .value;

    let pass3 = BitsThenCuts {
        chain,
        max_busy,
        max_area,
    };
    let tables = run(dag, &pass3, chips);
    let best = tables[dag.root][chips - 1]
        .as_ref()
        .expect("pass 2's optimum is allowed");
    assert_eq!(best.value, bits, "pass 3 keeps pass 2's optimum bits");
    let mut stack = vec![Frame::Term(dag.root, chips)];
    let cuts: Vec<usize> = Cuts {
        dag,
        tables: &tables,
        stack: &mut stack,
    }
    .collect();
    debug_assert_eq!(cuts.len(), chips - 1);
    Some(cuts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::egraph::saturate;
    use crate::{Budget, StageCost};

    /// The cut tie-break must not depend on the order in which egg lists a
    /// class's nodes (which follows the order the rules added them, earliest
    /// cut first): reversing every class's links changes nothing.
    #[test]
    fn ties_do_not_depend_on_node_order() {
        let budget = Budget {
            die_mm2: 1000.0,
            ..Budget::preset("hc1").unwrap()
        };
        let stages: Vec<StageCost> = (0..7)
            .map(|i| StageCost {
                name: format!("s{i}"),
                rom_bits: 1_000_000_000,
                sram_bits: 0,
                kv_bits_per_position: 0,
                fixed_sram_bits: 0,
                logic_cells: 0,
                cycles: 100,
                macs: 0,
                rom_read_bits: 0,
                sram_access_bits: 0,
                out_bits: 1000,
            })
            .collect();
        let sat = saturate(Chain::new(&stages, &budget)).unwrap();
        let chain = &sat.egraph.analysis.chain;
        let dag = read(&sat.egraph, sat.root);
        let mut reversed = dag.clone();
        for class in &mut reversed.classes {
            class.links.reverse();
        }
        // Seven 10 mm² stages, all links alike. Two chips: 3+4 and 4+3
        // stages tie, the cut after 3 is earlier. Three chips: every split
        // into at most 3 stages per chip ties, 1+3+3 has the earliest cuts.
        // Five chips: two chips of 2, earliest 1+1+1+2+2.
        for (min, cuts) in [(2, vec![3]), (3, vec![1, 4]), (5, vec![1, 2, 3, 5])] {
            assert_eq!(solve(&dag, chain, min), Some(cuts.clone()), "{min}");
            assert_eq!(solve(&reversed, chain, min), Some(cuts), "{min}");
        }
    }
}
