//! # Extraction under a global budget
//!
//! ## Why not egg's `Extractor`
//!
//! egg's extractor picks, class by class, the node of least cost. A budget
//! couples all the classes: the best 6-bit form of one layer is only
//! affordable if another layer drops to 2 bits. No per-class cost order can
//! express that, and `LpExtractor` would need CBC and be much slower than
//! the DP below (FACTS.md, extraction-gym).
//!
//! ## The problem
//!
//! After saturation the root class holds `(seq l₀ … l_{L-1})`, and layer class
//! `l_k` holds `(layer k)` (unquantized, cost [`Cost::INFINITE`], never chosen)
//! and one `(q c k)` per candidate `c`. The layer classes share nothing, so an
//! extraction is one q-node per layer class, and the two objectives are the
//! multiple-choice knapsack problem (MCKP):
//!
//! ```text
//! RomBudget B:   minimize Σ_k loss(k, c_k)   subject to Σ_k bits(k, c_k) ≤ B
//! LossBudget Λ:  minimize Σ_k bits(k, c_k)   subject to Σ_k loss(k, c_k) ≤ Λ
//! ```
//!
//! NP-hard in general but pseudo-polynomial in the budget, and at our sizes
//! (L ≈ 210 layers, ≈ 20 nodes per class) a dynamic program over the layer
//! sequence is exact or within a stated bound, in a fraction of a second.
//!
//! ## Method
//!
//! 1. **Read** ([`read_layers`]): for each child class of the `seq`, in order,
//!    cost every `(q c k)` node with [`lang::q_cost`]. Only what the e-graph
//!    holds can be chosen.
//! 2. **Prune**: per layer keep the Pareto front (bits strictly increasing,
//!    loss strictly decreasing; of identical candidates the lowest index).
//!    A dominated node is never needed, since costs only add.
//! 3. **Trivial cases**: the cheapest node of every layer over the ROM budget
//!    → [`PassError::Infeasible`] naming the bits needed; the most accurate
//!    node of every layer fits → that plan, optimal. (Symmetrically for
//!    the loss budget.)
//! 4. **DP over layers** on the *extra* bits `e = bits − bits_min(k)` of each
//!    node, in units of `u`: node weight `w = ⌈e/u⌉`, state `r` = units used so
//!    far, `dp[r]` = least loss of a prefix using at most `r` units (loss
//!    summed in layer order, so it is bit-identical to [`FormatChoice::total_loss`](crate::FormatChoice)).
//!    Each layer is one min-plus pass; a back-pointer per (layer, state)
//!    rebuilds the plan. `RomBudget`: states `0..=⌊(B − Σ bits_min)/u⌋`, take the
//!    smallest state reaching the least loss (fewest bits among ties).
//!    `LossBudget`: states up to the most accurate plan, take the smallest
//!    state whose loss is within the budget.
//! 5. **Fill** (only when `u` is coarse): the true bits left over by the
//!    rounding are spent greedily on single-layer upgrades (`RomBudget`), or
//!    single-layer downgrades that stay within the loss budget are taken
//!    (`LossBudget`). This never makes the plan worse.
//! 6. **Check**: the LP relaxation (greedy over the slopes of every layer's
//!    lower convex hull, Sinha–Zoltners) is a lower bound on the optimum; the
//!    plan is reported `proven_optimal` when the DP was exact or the plan meets
//!    the bound.
//!
//! ## Resolution and guarantees
//!
//! Let `g` be the gcd of all extra bits (real formats share large factors:
//! the row count, 16-bit scales). The DP may have `S` states with
//! `Σ_k |front_k| · S ≤ dp_work` and `L · S ≤ dp_cells` ([`Limits`]). When
//! the budget range in units of `g` fits, `u = g` and the DP is **exact**.
//! Otherwise `u` is the smallest multiple of `g` that fits. Rounding up costs
//! each layer at most `u − g` bits, so with `δ = L·(u − g)`
//! ([`FormatChoice::rounding_bits`](crate::FormatChoice)):
//!
//! - every plan is feasible (bits are only rounded up, loss is never rounded);
//! - `RomBudget B`: loss ≤ the optimum loss under the budget `B − δ`;
//! - `LossBudget Λ`: bits ≤ the optimum bits + `δ`.
//!
//! With the default limits at 210 layers × 20 Pareto nodes, `S ≈ 64k`, so `δ`
//! is about 0.33 % of the span between the cheapest and the most accurate
//! plan: for SmolLM2's linears at 2–8 bits (a span of about 6 bits per
//! weight) `δ` is about 0.02 bits per weight. With the real formats' costs
//! `g = 3072` (the 192-row K/V projections × 16-bit scales) and a ROM budget
//! between 3 and 4.25 bits per weight is solved exactly (measured in
//! `tests/choose.rs`). `δ` is a worst case; the reported `lower_bound` gives
//! the actual gap.
//!
//! ## Cost, determinism
//!
//! Time `O(Σ_k |front_k| · S)`, memory `2·L·S` bytes of back-pointers (32 MiB at
//! the default `dp_cells`). Everything iterates in layer and candidate order
//! with strict comparisons, so the same input always gives the same plan;
//! between equally good nodes of a layer the lower candidate index wins.

use egg::Id;

use crate::lang::{self, ClassData, Cost, EGraph};
use crate::{LayerChoices, Limits, Objective, PassError};

/// One q-node of a layer class, costed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Item {
    /// The candidate index `c` of `(q c k)`.
    pub cand: usize,
    /// Its ROM bits.
    pub bits: u64,
    /// Its loss.
    pub loss: f64,
}

/// What the extractor found.
#[derive(Clone, Debug, PartialEq)]
pub struct Solution {
    /// Per layer, the chosen candidate index.
    pub choice: Vec<usize>,
    /// Σ bits.
    pub total_bits: u64,
    /// Σ loss in layer order.
    pub total_loss: f64,
    /// The DP unit `u` (0: no DP was needed).
    pub dp_unit_bits: u64,
    /// `L·(u − g)`, 0 when exact.
    pub rounding_bits: u64,
    /// Exact DP, or the plan meets `lower_bound`.
    pub proven_optimal: bool,
    /// LP lower bound on the objective (loss, or bits for `LossBudget`).
    pub lower_bound: f64,
}

/// Extracts one q-node per layer class of the `seq` at `root`.
pub fn extract(
    egraph: &EGraph,
    root: Id,
    layers: &[LayerChoices],
    objective: &Objective,
    limits: &Limits,
) -> Result<Solution, PassError> {
    let items = read_layers(egraph, root, layers)?;
    solve(&items, objective, limits)
}

/// The costed q-nodes of every layer class, in `seq` order, each list sorted
/// by candidate index.
pub fn read_layers(
    egraph: &EGraph,
    root: Id,
    layers: &[LayerChoices],
) -> Result<Vec<Vec<Item>>, PassError> {
    let classes = lang::layer_classes(egraph, root)
        .ok_or_else(|| PassError::Malformed("the root class holds no (seq …)".into()))?;
    if classes.len() != layers.len() {
        return Err(PassError::Malformed(format!(
            "the model has {} layer classes for {} layers",
            classes.len(),
            layers.len()
        )));
    }
    classes
        .iter()
        .zip(layers)
        .enumerate()
        .map(|(k, (&class, layer))| {
            if egraph[class].data != ClassData::Layer(k as u32) {
                return Err(PassError::Malformed(format!(
                    "child {k} of the seq is {:?}, not layer {k}",
                    egraph[class].data
                )));
            }
            let mut items: Vec<Item> = egraph[class]
                .nodes
                .iter()
                .filter_map(|node| lang::q_cost(egraph, layers, node))
                .map(|(cand, Cost { bits, loss })| Item { cand, bits, loss })
                .collect();
            items.sort_by_key(|i| i.cand);
            if items.is_empty() {
                return Err(PassError::Unextractable {
                    layer: layer.name.clone(),
                });
            }
            Ok(items)
        })
        .collect()
}

/// Solves the MCKP over the layers' items (see the module docs).
pub fn solve(
    layers: &[Vec<Item>],
    objective: &Objective,
    limits: &Limits,
) -> Result<Solution, PassError> {
    let fronts: Vec<Vec<Item>> = layers.iter().map(|items| pareto(items)).collect();
    if fronts.iter().any(Vec::is_empty) {
        return Err(PassError::Malformed("a layer without items".into()));
    }
    let cheapest: Vec<usize> = vec![0; fronts.len()];
    let most_accurate: Vec<usize> = fronts.iter().map(|f| f.len() - 1).collect();
    let (min_bits, loss_at_min_bits) = totals(&fronts, &cheapest);
    let (bits_at_min_loss, min_loss) = totals(&fronts, &most_accurate);

    let trivial = |choice: Vec<usize>, bound: f64| finish(&fronts, choice, 0, 0, true, bound);
    let cap = match *objective {
        Objective::RomBudget { bits: budget } => {
            if min_bits > budget {
                return Err(PassError::Infeasible {
                    needed_bits: min_bits,
                    budget,
                });
            }
            if bits_at_min_loss <= budget {
                return Ok(trivial(most_accurate, min_loss));
            }
            budget - min_bits
        }
        Objective::LossBudget { loss: budget } => {
            if budget.is_nan() || budget < 0.0 {
                return Err(PassError::BadLossBudget(budget));
            }
            if min_loss > budget {
                return Err(PassError::InfeasibleLoss {
                    needed_loss: min_loss,
                    budget,
                });
            }
            if loss_at_min_bits <= budget {
                return Ok(trivial(cheapest, min_bits as f64));
            }
            bits_at_min_loss - min_bits
        }
    };

    // Some layer has two or more items here (otherwise a trivial case hit),
    // so g > 0.
    let extra = |k: usize, j: usize| fronts[k][j].bits - fronts[k][0].bits;
    let g = (0..fronts.len())
        .flat_map(|k| (1..fronts[k].len()).map(move |j| (k, j)))
        .fold(0, |acc, (k, j)| gcd(acc, extra(k, j)));
    let n_items: u64 = fronts.iter().map(|f| f.len() as u64).sum();
    let states = (limits.dp_work / n_items)
        .min(limits.dp_cells / fronts.len() as u64)
        .max(1);
    let unit = if cap / g <= states {
        g
    } else {
        g * (cap / g).div_ceil(states)
    };
    let weights: Vec<Vec<usize>> = fronts
        .iter()
        .enumerate()
        .map(|(k, f)| {
            (0..f.len())
                .map(|j| extra(k, j).div_ceil(unit) as usize)
                .collect()
        })
        .collect();
    let r_max = match objective {
        Objective::RomBudget { .. } => (cap / unit) as usize,
        Objective::LossBudget { .. } => weights.iter().map(|w| w[w.len() - 1]).sum(),
    };

    let dp = Dp::run(&fronts, &weights, r_max);
    let state = match *objective {
        Objective::RomBudget { .. } => {
            let best = dp.last[r_max];
            dp.last.iter().position(|&v| v <= best)
        }
        Objective::LossBudget { loss: budget } => dp.last.iter().position(|&v| v <= budget),
    }
    .ok_or_else(|| PassError::Malformed("the DP found no plan".into()))?;
    let mut choice = dp.plan(&weights, state);

    let exact = unit == g;
    if !exact {
        fill(&fronts, &mut choice, objective);
    }
    let bound = lp_bound(&fronts, objective, min_bits, loss_at_min_bits);
    let rounding = (fronts.len() as u64).saturating_mul(unit - g);
    let mut solution = finish(&fronts, choice, unit, rounding, exact, bound);
    solution.proven_optimal |= match objective {
        Objective::RomBudget { .. } => solution.total_loss <= bound + 1e-12 * bound.abs(),
        Objective::LossBudget { .. } => {
            solution.total_bits as f64 <= (bound - 1e-9 * bound.abs()).ceil()
        }
    };
    Ok(solution)
}

/// The DP table: the last row of losses and a back-pointer per (layer,
/// state).
struct Dp {
    width: usize,
    last: Vec<f64>,
    back: Vec<u16>,
}

impl Dp {
    fn run(fronts: &[Vec<Item>], weights: &[Vec<usize>], r_max: usize) -> Dp {
        let width = r_max + 1;
        // At most `r` units: every state starts at zero loss.
        let mut prev = vec![0.0f64; width];
        let mut next = vec![f64::INFINITY; width];
        let mut back = vec![0u16; fronts.len() * width];
        for (k, front) in fronts.iter().enumerate() {
            next.fill(f64::INFINITY);
            let back_k = &mut back[k * width..(k + 1) * width];
            for (j, item) in front.iter().enumerate() {
                let w = weights[k][j];
                if w > r_max {
                    break; // weights grow along the front
                }
                let cells = next[w..].iter_mut().zip(back_k[w..].iter_mut());
                for ((n, b), &p) in cells.zip(&prev[..width - w]) {
                    let v = p + item.loss;
                    if v < *n {
                        *n = v;
                        *b = j as u16;
                    }
                }
            }
            std::mem::swap(&mut prev, &mut next);
        }
        Dp {
            width,
            last: prev,
            back,
        }
    }

    /// Per layer, the front index chosen on the way to `state`.
    fn plan(&self, weights: &[Vec<usize>], mut state: usize) -> Vec<usize> {
        let mut choice = vec![0; weights.len()];
        for k in (0..weights.len()).rev() {
            let j = self.back[k * self.width + state] as usize;
            choice[k] = j;
            state -= weights[k][j];
        }
        choice
    }
}

/// Spends what rounding left over (see the module docs, step 5): repeatedly
/// the single-layer move with the largest gain, ties to the first layer.
fn fill(fronts: &[Vec<Item>], choice: &mut [usize], objective: &Objective) {
    let moves: usize = fronts.iter().map(Vec::len).sum();
    for _ in 0..moves {
        let (bits, loss) = totals(fronts, choice);
        let mut best: Option<(f64, usize, usize)> = None;
        let mut consider = |gain: f64, k: usize, j: usize| {
            if best.is_none_or(|(g, _, _)| gain > g) {
                best = Some((gain, k, j));
            }
        };
        match *objective {
            Objective::RomBudget { bits: budget } => {
                let room = budget.saturating_sub(bits);
                for (k, f) in fronts.iter().enumerate() {
                    let cur = f[choice[k]];
                    // More bits, less loss along the front.
                    for (j, it) in f.iter().enumerate().skip(choice[k] + 1) {
                        if it.bits - cur.bits > room {
                            break;
                        }
                        consider(cur.loss - it.loss, k, j);
                    }
                }
            }
            Objective::LossBudget { loss: budget } => {
                for (k, f) in fronts.iter().enumerate() {
                    let cur = f[choice[k]];
                    // The first affordable item saves the most bits.
                    let fits = f[..choice[k]]
                        .iter()
                        .position(|it| loss - cur.loss + it.loss <= budget);
                    if let Some(j) = fits {
                        consider((cur.bits - f[j].bits) as f64, k, j);
                    }
                }
            }
        }
        let Some((_, k, j)) = best else { return };
        let old = choice[k];
        choice[k] = j;
        if let Objective::LossBudget { loss: budget } = *objective {
            // The incremental test above is not the layer-order sum.
            if totals(fronts, choice).1 > budget {
                choice[k] = old;
                return;
            }
        }
    }
}

/// The LP relaxation of the MCKP: fractional choices along each layer's lower
/// convex hull, taken in order of steepest loss decrease per bit.
fn lp_bound(fronts: &[Vec<Item>], objective: &Objective, min_bits: u64, loss0: f64) -> f64 {
    struct Segment {
        slope: f64,
        bits: f64,
        loss: f64,
        layer: usize,
    }
    let mut segments = Vec::new();
    for (layer, f) in fronts.iter().enumerate() {
        let hull = lower_hull(f);
        for w in hull.windows(2) {
            let (a, b) = (f[w[0]], f[w[1]]);
            let bits = (b.bits - a.bits) as f64;
            let loss = b.loss - a.loss;
            segments.push(Segment {
                slope: loss / bits,
                bits,
                loss,
                layer,
            });
        }
    }
    // Stable: a layer's own segments keep their (convex) order.
    segments.sort_by(|a, b| a.slope.total_cmp(&b.slope).then(a.layer.cmp(&b.layer)));
    match *objective {
        Objective::RomBudget { bits: budget } => {
            let mut room = budget.saturating_sub(min_bits) as f64;
            let mut loss = loss0;
            for s in &segments {
                if s.bits <= room {
                    room -= s.bits;
                    loss += s.loss;
                } else {
                    loss += s.loss * room / s.bits;
                    break;
                }
            }
            loss.max(0.0)
        }
        Objective::LossBudget { loss: budget } => {
            let mut loss = loss0;
            let mut bits = min_bits as f64;
            for s in &segments {
                if loss <= budget {
                    break;
                }
                let need = loss - budget;
                if -s.loss <= need {
                    bits += s.bits;
                    loss += s.loss;
                } else {
                    bits += s.bits * need / -s.loss;
                    break;
                }
            }
            bits
        }
    }
}

/// Indices of the lower convex hull of a Pareto front (x = bits increasing).
fn lower_hull(front: &[Item]) -> Vec<usize> {
    let mut hull: Vec<usize> = Vec::with_capacity(front.len());
    for (i, p) in front.iter().enumerate() {
        while let [.., a, b] = hull[..] {
            let (a, b) = (front[a], front[b]);
            let cross = (b.bits - a.bits) as f64 * (p.loss - a.loss)
                - (b.loss - a.loss) * (p.bits - a.bits) as f64;
            if cross > 0.0 {
                break;
            }
            hull.pop();
        }
        hull.push(i);
    }
    hull
}

/// The Pareto front: bits strictly increasing, loss strictly decreasing; of
/// identical items the lowest candidate index.
fn pareto(items: &[Item]) -> Vec<Item> {
    let mut sorted = items.to_vec();
    sorted.sort_by(|a, b| {
        a.bits
            .cmp(&b.bits)
            .then(a.loss.total_cmp(&b.loss))
            .then(a.cand.cmp(&b.cand))
    });
    let mut front: Vec<Item> = Vec::with_capacity(sorted.len());
    for item in sorted {
        if front.last().is_none_or(|last| item.loss < last.loss) {
            front.push(item);
        }
    }
    front
}

/// Σ bits (saturating) and Σ loss in layer order of a choice of front items.
fn totals(fronts: &[Vec<Item>], choice: &[usize]) -> (u64, f64) {
    fronts
        .iter()
        .zip(choice)
        .fold((0u64, 0.0f64), |(bits, loss), (f, &j)| {
            (bits.saturating_add(f[j].bits), loss + f[j].loss)
        })
}

fn finish(
    fronts: &[Vec<Item>],
    choice: Vec<usize>,
    unit: u64,
    rounding: u64,
    proven_optimal: bool,
    lower_bound: f64,
) -> Solution {
    let (total_bits, total_loss) = totals(fronts, &choice);
    Solution {
        choice: fronts
            .iter()
            .zip(&choice)
            .map(|(f, &j)| f[j].cand)
            .collect(),
        total_bits,
        total_loss,
        dp_unit_bits: unit,
        rounding_bits: rounding,
        proven_optimal,
        lower_bound,
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(cand: usize, bits: u64, loss: f64) -> Item {
        Item { cand, bits, loss }
    }

    #[test]
    fn pareto_keeps_strictly_better_items_and_the_lowest_index_of_twins() {
        let items = [
            item(0, 10, 5.0),
            item(1, 10, 5.0), // twin of 0
            item(2, 12, 5.0), // more bits, same loss
            item(3, 20, 1.0),
            item(4, 15, 7.0), // dominated by 0
            item(5, 30, 0.0),
        ];
        let cands: Vec<usize> = pareto(&items).iter().map(|i| i.cand).collect();
        assert_eq!(cands, vec![0, 3, 5]);
    }

    #[test]
    fn the_hull_drops_points_above_the_chords() {
        let front = [
            item(0, 0, 10.0),
            item(1, 1, 9.0), // above the chord 0 → 2
            item(2, 2, 0.0),
            item(3, 4, -1.0),
        ];
        assert_eq!(lower_hull(&front), vec![0, 2, 3]);
    }

    #[test]
    fn the_lp_bound_interpolates_the_last_segment() {
        let fronts = vec![vec![item(0, 0, 10.0), item(1, 10, 0.0)]];
        let rom = Objective::RomBudget { bits: 4 };
        assert!((lp_bound(&fronts, &rom, 0, 10.0) - 6.0).abs() < 1e-12);
        let lossb = Objective::LossBudget { loss: 2.5 };
        assert!((lp_bound(&fronts, &lossb, 0, 10.0) - 7.5).abs() < 1e-12);
    }

    #[test]
    fn gcd_units_make_the_dp_exact() {
        let layers = vec![
            vec![item(0, 1000, 3.0), item(1, 3000, 1.0)],
            vec![item(0, 1000, 4.0), item(1, 5000, 0.5)],
        ];
        let s = solve(
            &layers,
            &Objective::RomBudget { bits: 6000 },
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(s.choice, vec![0, 1]);
        assert_eq!((s.dp_unit_bits, s.rounding_bits), (2000, 0));
        assert!(s.proven_optimal);
    }
}
