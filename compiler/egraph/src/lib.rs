//! # taalasc-egraph: the e-graph quantization pass
//!
//! Every linear layer of a model gets alternative implementations, one per
//! [`Candidate`]: a weight format (bits × group × symmetric/asymmetric,
//! RFC 0002 §Weights), optionally with the preceding RMSNorm gain folded into
//! the weights (`fused`), each with its exact ROM cost in bits (scales
//! included) and a measured quality loss. [`choose`] picks one per layer:
//!
//! - [`Objective::RomBudget`]: least total loss with total bits ≤ budget;
//! - [`Objective::LossBudget`]: fewest total bits with total loss ≤ budget.
//!
//! ```text
//!  &[LayerChoices] ──lang::model_term──► (seq (layer 0) … (layer L-1))
//!                                              │ rules::rules: linear→q:<format>[+mixed][+fused]
//!                                              │ Runner: SimpleScheduler, explicit limits,
//!                                              ▼ must stop Saturated (2 iterations)
//!            class k = { (layer k), (q c k) for every candidate c of layer k }
//!                                              │ extract: multiple-choice knapsack DP
//!                                              ▼ over the q-nodes of the layer classes
//!                                            FormatChoice
//! ```
//!
//! - [`lang`]: the language, the analysis ([`lang::LayerIndex`]), node costs,
//!   and the only conversion between layer lists and terms.
//! - [`rules`]: the one rule family.
//! - [`extract`]: the budgeted extractor and its guarantees.
//! - [`cost`]: the `--bits auto` cost model: each layer's candidates (plain
//!   formats and width mixes) with their ROM bits and measured losses, and
//!   the choice for a ROM or loss target ([`cost::choose_formats`]).
//!
//! Everything is deterministic: the same input gives the same plan.
//!
//! **Not modeled:** layers are independent. Folding an RMSNorm gain into
//! one of the projections that share that norm (Q/K/V, gate/up) while
//! another keeps the gain is the caller's to rule out, by offering `fused`
//! candidates only where that is consistent.
//!
//! ```
//! use taalasc_egraph::{choose, Candidate, LayerChoices, Objective};
//! let f = |name: &str| name.parse().unwrap();
//! let layer = |name: &str, sensitivity: f64| LayerChoices {
//!     name: name.into(),
//!     candidates: vec![
//!         Candidate { format: f("s2g32"), fused: false, mixed: false, bits: 2_500, loss: 16.0 * sensitivity },
//!         Candidate { format: f("s4g32"), fused: false, mixed: false, bits: 4_500, loss: sensitivity },
//!         Candidate { format: f("s6g32"), fused: false, mixed: false, bits: 6_500, loss: sensitivity / 16.0 },
//!     ],
//! };
//! let layers = [layer("q_proj", 8.0), layer("k_proj", 0.125)];
//! // Two 4-bit layers' worth of ROM is better spent as 6 + 2 bits.
//! let plan = choose(&layers, &Objective::RomBudget { bits: 9_000 }).unwrap();
//! assert_eq!(plan.choice, vec![2, 0]);
//! assert_eq!((plan.total_bits, plan.total_loss), (9_000, 0.5 + 2.0));
//! assert!(plan.proven_optimal);
//! assert_eq!(plan.stop_reason, "Saturated");
//! ```

#![warn(missing_docs)]

pub mod cost;
pub mod extract;
pub mod lang;
pub mod rules;

use std::time::{Duration, Instant};

use egg::{Id, Runner, SimpleScheduler, StopReason};
use serde::{Deserialize, Serialize};
use taalasc_quant::WeightFormat;

use crate::lang::{EGraph, LayerIndex, QuantLang};

/// One way to implement one linear layer.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The weight format.
    pub format: WeightFormat,
    /// The preceding RMSNorm gain is folded into the weights.
    pub fused: bool,
    /// Column groups or rows of different code widths (`format` is the widest); the
    /// caller keeps which (see `taalasc_quant::QTensor::bits_at`).
    #[serde(default)]
    pub mixed: bool,
    /// ROM bits, codes and scales (and offsets) included.
    pub bits: u64,
    /// Measured sensitivity, a finite number ≥ 0; losses add across layers.
    pub loss: f64,
}

/// A linear layer and its candidates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerChoices {
    /// Tensor name, for messages (`model.layers.3.mlp.down_proj`).
    pub name: String,
    /// At least one, at most 65 536.
    pub candidates: Vec<Candidate>,
}

/// What [`choose`] optimizes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Objective {
    /// Least total loss with total ROM bits ≤ `bits`.
    RomBudget {
        /// The ROM budget in bits.
        bits: u64,
    },
    /// Fewest total ROM bits with total loss ≤ `loss` (summed layer by
    /// layer in order, exactly as [`FormatChoice::total_loss`]).
    LossBudget {
        /// The loss budget.
        loss: f64,
    },
}

/// The pass's result: the chosen candidate of each layer, with totals and
/// the pass's statistics. The fields serialize in declaration order, which
/// is the key order of `report.json` (`lower_bound` sits where the wall
/// time was before wall times left the file): keep it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FormatChoice {
    /// Per layer, the index of the chosen candidate.
    pub choice: Vec<usize>,
    /// Σ bits of the chosen candidates.
    pub total_bits: u64,
    /// Σ loss of the chosen candidates, summed in layer order.
    pub total_loss: f64,
    /// E-nodes in the saturated e-graph.
    pub egraph_nodes: usize,
    /// E-classes in the saturated e-graph.
    pub egraph_classes: usize,
    /// Runner iterations (2 when there is at least one layer).
    pub iterations: usize,
    /// The runner's `StopReason` (always `Saturated` in a returned plan).
    pub stop_reason: String,
    /// LP-relaxation lower bound on the optimum objective (loss for
    /// `RomBudget`, bits for `LossBudget`).
    pub lower_bound: f64,
    /// Wall time of the whole pass (printed, not recorded: the same input
    /// gives the same bytes).
    #[serde(skip)]
    pub seconds: f64,
    /// The extractor's DP unit `u` in bits (0: no DP was needed); see
    /// [`extract`].
    pub dp_unit_bits: u64,
    /// The budget-side rounding bound `L·(u − g)` (0 when exact):
    /// `RomBudget` plans lose no more than the optimum under a budget this
    /// much smaller; `LossBudget` plans use at most this many bits more than
    /// the optimum.
    pub rounding_bits: u64,
    /// Proven optimal: exact DP, or the plan meets [`Self::lower_bound`].
    pub proven_optimal: bool,
}

/// Everything that can go wrong in the pass.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PassError {
    /// A layer without candidates.
    #[error("layer {layer:?} has no candidate implementation")]
    NoCandidates {
        /// The layer's name.
        layer: String,
    },
    /// More candidates than the extractor indexes.
    #[error("layer {layer:?} has {count} candidates (at most 65536 are supported)")]
    TooManyCandidates {
        /// The layer's name.
        layer: String,
        /// How many it has.
        count: usize,
    },
    /// A loss that is negative, infinite or NaN.
    #[error(
        "layer {layer:?} candidate {index} ({format}): loss {loss} is not a finite number >= 0"
    )]
    BadLoss {
        /// The layer's name.
        layer: String,
        /// The candidate's index.
        index: usize,
        /// The candidate's format name.
        format: String,
        /// The offending loss.
        loss: f64,
    },
    /// A loss budget that is negative or NaN.
    #[error("loss budget {0} is not a number >= 0")]
    BadLossBudget(f64),
    /// The ROM budget is below the smallest plan.
    #[error(
        "ROM budget of {budget} bits is infeasible: the smallest candidate of every layer \
         together needs {needed_bits} bits ({} over)", .needed_bits - .budget
    )]
    Infeasible {
        /// Σ over layers of the smallest candidate's bits.
        needed_bits: u64,
        /// The budget.
        budget: u64,
    },
    /// The loss budget is below the most accurate plan.
    #[error(
        "loss budget {budget} is infeasible: the most accurate candidate of every layer \
         together loses {needed_loss}"
    )]
    InfeasibleLoss {
        /// Σ over layers of the least loss.
        needed_loss: f64,
        /// The budget.
        budget: f64,
    },
    /// The runner stopped on a limit; a partial e-graph would make the plan
    /// depend on timing, so the pass refuses it.
    #[error("the e-graph did not saturate (stopped by {stop_reason}); raise the pass limits")]
    NotSaturated {
        /// The runner's `StopReason`.
        stop_reason: String,
    },
    /// A layer class without any quantized form.
    #[error("layer {layer:?}: its e-class holds no quantized form (q …)")]
    Unextractable {
        /// The layer's name.
        layer: String,
    },
    /// The e-graph does not have the shape the pass builds.
    #[error("malformed e-graph: {0}")]
    Malformed(String),
}

/// Bounds on the pass. The defaults keep a SmolLM2-sized model (210 layers ×
/// 20 candidates) well under a second.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Runner iterations; saturation takes 2.
    pub iter_limit: usize,
    /// Runner wall time (a safety net: the rules add one node per candidate).
    pub time_limit: Duration,
    /// Extractor: at most this many DP cell updates (Σ candidates × states).
    pub dp_work: u64,
    /// Extractor: at most this many back-pointers (layers × states, 2 bytes
    /// each).
    pub dp_cells: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            iter_limit: 4,
            time_limit: Duration::from_secs(10),
            dp_work: 1 << 28,
            dp_cells: 1 << 24,
        }
    }
}

/// A saturated e-graph of the pass.
#[derive(Debug)]
pub struct Saturated {
    /// The e-graph.
    pub egraph: EGraph,
    /// The class of the `(seq …)` root.
    pub root: Id,
    /// The rewrites, by name, in application order.
    pub rules: Vec<String>,
    /// Runner iterations.
    pub iterations: usize,
    /// The runner's `StopReason`, `Saturated`.
    pub stop_reason: String,
}

/// Checks the input, builds `(seq (layer 0) …)`, runs [`rules::rules`] to
/// saturation under `limits` (the node limit is the exact saturated size,
/// [`lang::saturated_size`]).
pub fn saturate(layers: &[LayerChoices], limits: &Limits) -> Result<Saturated, PassError> {
    validate(layers)?;
    let rules = rules::rules(layers);
    let runner = Runner::<QuantLang, LayerIndex, ()>::new(LayerIndex)
        .with_scheduler(SimpleScheduler)
        .with_iter_limit(limits.iter_limit)
        .with_node_limit(lang::saturated_size(layers))
        .with_time_limit(limits.time_limit)
        .with_expr(&lang::model_term(layers.len()))
        .run(&rules);
    let reason = runner
        .stop_reason
        .clone()
        .unwrap_or_else(|| StopReason::Other("runner did not stop".into()));
    let stop_reason = format!("{reason:?}");
    if !matches!(reason, StopReason::Saturated) {
        return Err(PassError::NotSaturated { stop_reason });
    }
    Ok(Saturated {
        root: runner.egraph.find(runner.roots[0]),
        rules: rules.iter().map(|r| r.name.to_string()).collect(),
        iterations: runner.iterations.len(),
        egraph: runner.egraph,
        stop_reason,
    })
}

/// The pass with default [`Limits`].
pub fn choose(layers: &[LayerChoices], objective: &Objective) -> Result<FormatChoice, PassError> {
    choose_with(layers, objective, &Limits::default())
}

/// The pass: [`saturate`], then [`extract::extract`].
pub fn choose_with(
    layers: &[LayerChoices],
    objective: &Objective,
    limits: &Limits,
) -> Result<FormatChoice, PassError> {
    let start = Instant::now();
    if let Objective::LossBudget { loss } = *objective {
        if loss.is_nan() || loss < 0.0 {
            return Err(PassError::BadLossBudget(loss));
        }
    }
    let sat = saturate(layers, limits)?;
    let solution = extract::extract(&sat.egraph, sat.root, layers, objective, limits)?;
    Ok(FormatChoice {
        choice: solution.choice,
        total_bits: solution.total_bits,
        total_loss: solution.total_loss,
        egraph_nodes: sat.egraph.total_number_of_nodes(),
        egraph_classes: sat.egraph.number_of_classes(),
        iterations: sat.iterations,
        stop_reason: sat.stop_reason,
        seconds: start.elapsed().as_secs_f64(),
        dp_unit_bits: solution.dp_unit_bits,
        rounding_bits: solution.rounding_bits,
        proven_optimal: solution.proven_optimal,
        lower_bound: solution.lower_bound,
    })
}

fn validate(layers: &[LayerChoices]) -> Result<(), PassError> {
    if layers.len() > u32::MAX as usize {
        return Err(PassError::Malformed(format!(
            "{} layers (at most 2^32 - 1)",
            layers.len()
        )));
    }
    for layer in layers {
        let count = layer.candidates.len();
        if count == 0 {
            return Err(PassError::NoCandidates {
                layer: layer.name.clone(),
            });
        }
        if count > 1 << 16 {
            return Err(PassError::TooManyCandidates {
                layer: layer.name.clone(),
                count,
            });
        }
        for (index, c) in layer.candidates.iter().enumerate() {
            if !(c.loss.is_finite() && c.loss >= 0.0) {
                return Err(PassError::BadLoss {
                    layer: layer.name.clone(),
                    index,
                    format: c.format.name(),
                    loss: c.loss,
                });
            }
        }
    }
    Ok(())
}
