//! The `--bits auto` cost model: which candidates each linear layer (or
//! table) gets, what each costs in ROM bits and in quality, and the choice
//! of one per layer within a target ([`choose_formats`]).
//!
//! Everything here is plain computation on data the caller hands over; the
//! caller runs the float model (calibration statistics, the importance
//! probe) and reads the weights:
//!
//! ```text
//!  per layer: LayerData (weights, input diagonal, head row weights, exact source format)
//!        │ layer_candidates (or all_candidates, on several threads)
//!        ▼
//!  LayerChoices + width mixes ──┐
//!  Measured (importances, …) ───┼─ choose_formats ──► AutoChoice (formats, widths, AutoReport)
//!  AutoTarget, fixed bits ──────┘
//! ```
//!
//! Loss of a candidate: `Σ_r row_weight_r Σ_i (Δw_ri)² · E[x_i²]` from
//! plain RTN to that candidate and the calibration inputs' mean squares
//! (the diagonal of the input Hessian); a format that holds the source
//! exactly (GGUF Q4_1 as a4g32) loses 0. A measured importance per layer
//! (end-to-end KL per unit of that proxy) scales each layer's losses.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use taalasc_quant::{CodeWidths, Hessian, QTensor, QuantError, WeightFormat};

use crate::{Candidate, FormatChoice, LayerChoices, Objective, PassError};

/// Linear-layer formats the `--bits auto` pass chooses among: free `SF16`
/// scales for the exact imports (a4g32 holds GGUF Q4_1, s8g32 Q8_0) and the
/// large groups, where scales cost little anyway; two-level 8-bit scales
/// (`h`, half the scale storage) for the rest.
pub const AUTO_CANDIDATES: &[&str] = &[
    "a4g32", "s8g32", "a2g64", "a2g128", "a3g64", "a3g128", "a4g64", "a4g128", "a5g128", "a6g128",
    "a8g128", "a2g32h", "a2g64h", "a3g32h", "s3g32h", "a3g64h", "a4g32h", "s4g32h", "a4g64h",
    "a5g32h", "a5g64h", "a6g32h", "s6g32h", "a8g32h", "s8g32h",
];

/// Format used to measure each layer's end-to-end importance.
pub const IMPORTANCE_PROBE: &str = "a3g32";

/// Families of formats (same groups, symmetry and scale storage, several
/// code widths) whose column groups `--bits auto` may also give different
/// widths within one layer: the inputs that carry more energy get more bits.
pub const MIX_FAMILIES: &[&[&str]] = &[
    &["a2g32h", "a3g32h", "a4g32h", "a5g32h", "a6g32h", "a8g32h"],
    &["s3g32h", "s4g32h", "s6g32h", "s8g32h"],
    &["a2g64h", "a3g64h", "a4g64h", "a5g64h"],
];

/// Width mixes offered per family and layer: one each time the mean code
/// width grows by this many bits.
pub const MIX_STEP_BITS: f64 = 0.25;

/// [`AUTO_CANDIDATES`], parsed.
pub fn auto_candidates() -> Vec<WeightFormat> {
    AUTO_CANDIDATES
        .iter()
        .map(|f| f.parse().expect("valid candidate"))
        .collect()
}

/// [`IMPORTANCE_PROBE`], parsed.
pub fn importance_probe() -> WeightFormat {
    IMPORTANCE_PROBE.parse().expect("valid probe format")
}

/// What the cost model needs of one layer `[rows, cols]`.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerData<'a> {
    /// The weight's name, for the plan and messages.
    pub name: String,
    /// Output rows.
    pub rows: usize,
    /// Input columns.
    pub cols: usize,
    /// The float weights, row-major.
    pub weights: Vec<f32>,
    /// Mean squared input per column ([`layer_diag`]).
    pub diag: Vec<f64>,
    /// Per-row weights of the error (the head's, [`head_row_weights`]);
    /// `None`: every row weighs 1.
    pub row_weights: Option<&'a [f64]>,
    /// The format that holds the source exactly (its GGUF blocks), if any:
    /// that candidate loses nothing.
    pub exact: Option<WeightFormat>,
}

/// What the caller measured by running the float model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Measured {
    /// Calibration tokens the statistics come from.
    pub calibration_tokens: usize,
    /// Per layer, in order: end-to-end KL per unit of proxy loss
    /// ([`importance`]); empty when not measured (losses stay proxies).
    pub importance: Vec<f64>,
    /// Wall time of the measurements and [`all_candidates`] (reported).
    pub sensitivity_seconds: f64,
}

/// What `--bits auto` optimizes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoTarget {
    /// Least loss within a total ROM budget in bits (every tensor and scale counted).
    RomBits(u64),
    /// Least loss within `bits_per_weight × parameters` ROM bits.
    BitsPerWeight(f64),
    /// Fewest bits with total loss at most this.
    Loss(f64),
}

/// What the pass did, for `report.json` (without wall times: the same
/// input gives the same bytes). The fields serialize in declaration order,
/// the key order of `report.json` (`chosen` sits where the wall time was
/// before wall times left the file): keep it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AutoReport {
    /// The target it was given.
    pub target: AutoTarget,
    /// Bits of everything the pass does not choose (gains, biases, and the
    /// layers pinned by `--layer-format`).
    pub fixed_bits: u64,
    /// Layers chosen for.
    pub layers: usize,
    /// Most candidates of any layer (plain formats and width mixes).
    pub candidates_per_layer: usize,
    /// The chosen format of each layer with its ROM bits and predicted loss
    /// (KL units when importance was measured), most costly first.
    pub chosen: Vec<ChosenLayer>,
    /// Wall time of the sensitivity measurements (printed, not recorded).
    #[serde(skip)]
    pub sensitivity_seconds: f64,
    /// Calibration tokens the statistics come from.
    pub calibration_tokens: usize,
    /// Per layer (in plan order): measured KL per unit of proxy loss, from
    /// quantizing that layer alone to the probe format (empty if not measured).
    pub importance: Vec<f64>,
    /// The e-graph pass's choice.
    pub plan: FormatChoice,
}

/// One layer's choice in [`AutoReport::chosen`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChosenLayer {
    /// The weight's name.
    pub name: String,
    /// The chosen format's name, with its width mix if mixed
    /// (`a4g32h[groups 3:10,4:8]`).
    pub format: String,
    /// Its ROM bits.
    pub bits: u64,
    /// Its predicted loss.
    pub loss: f64,
}

/// What [`choose_formats`] chose.
#[derive(Clone, Debug)]
pub struct AutoChoice {
    /// Format of each chosen weight, by name (the widest, when mixed).
    pub formats: BTreeMap<String, WeightFormat>,
    /// Column-group or row widths of the weights given mixed widths.
    pub widths: BTreeMap<String, CodeWidths>,
    /// What the pass did.
    pub report: AutoReport,
}

/// Everything that can go wrong in the cost model.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CostError {
    /// A candidate's quantization failed.
    #[error("quantizing `{layer}` as {format}")]
    Quantize {
        /// The layer's name.
        layer: String,
        /// The format's name.
        format: String,
        /// What went wrong.
        #[source]
        source: QuantError,
    },
    /// The pass found no plan within the loss budget.
    #[error("loss budget {loss}")]
    LossBudget {
        /// The budget.
        loss: f64,
        /// What went wrong.
        #[source]
        source: PassError,
    },
    /// The pass found no plan within the ROM budget.
    #[error(
        "the ROM budget ({target:?}) minus {fixed_bits} bits of gains and biases leaves the layers {bits} bits"
    )]
    RomBudget {
        /// The target.
        target: AutoTarget,
        /// Bits not chosen by the pass.
        fixed_bits: u64,
        /// What is left for the layers.
        bits: u64,
        /// What went wrong.
        #[source]
        source: PassError,
    },
    /// Per-layer inputs of different lengths.
    #[error("{layers} layers, but {what} for {got}")]
    LayerCount {
        /// Layers with candidates.
        layers: usize,
        /// Which input.
        what: &'static str,
        /// How many it covers.
        got: usize,
    },
}

/// Row weights of the head: `V · p̄_t`, with `p̄_t` the float model's mean
/// probability of token `t` on the calibration text (`token_probs`, mixed
/// 95:5 with uniform, so no row weighs nothing). To second order,
/// KL(p ‖ p + δ) ≈ ½ Σ_t p_t δ_t² − ½ (Σ_t p_t δ_t)², so a logit error costs
/// in proportion to its token's probability: rare tokens' rows can take
/// fewer bits. A tied embedding table shares the weights (a token is looked
/// up about as often as it is predicted).
pub fn head_row_weights(token_probs: &[f64]) -> Vec<f64> {
    let v = token_probs.len() as f64;
    token_probs
        .iter()
        .map(|&p| v * (0.95 * p + 0.05 / v))
        .collect()
}

/// Mean squared input per column: the diagonal that weights a layer's
/// quantization error. A table that is also the (tied) head uses the head's
/// input statistics; a table read only by lookups (no `hessian`) uses unit
/// weights.
pub fn layer_diag(hessian: Option<&Hessian>, cols: usize) -> Vec<f64> {
    match hessian {
        Some(h) => h.mean_diag(),
        None => vec![1.0; cols],
    }
}

/// One layer's candidates: every format of `formats` whose groups tile its
/// rows, and the width mixes of [`MIX_FAMILIES`] (per column group; with
/// row weights, the head's, also per row); alongside each candidate its
/// widths (uniform when plain). Losses as in the [module docs](self).
pub fn layer_candidates(
    layer: &LayerData<'_>,
    formats: &[WeightFormat],
) -> Result<(LayerChoices, Vec<CodeWidths>), CostError> {
    let (rows, cols) = (layer.rows, layer.cols);
    let w = &layer.weights;
    let mut candidates = Vec::with_capacity(formats.len());
    let mut mixes = Vec::new();
    // Per format: the errors of each column group and of each row.
    let mut parts = HashMap::new();
    for fmt in formats {
        if cols % fmt.group_len(cols) != 0 {
            continue; // groups must tile the row
        }
        let loss = if layer.exact == Some(*fmt) {
            0.0
        } else {
            let q = taalasc_quant::quantize_rtn_plain(w, rows, cols, fmt).map_err(|source| {
                CostError::Quantize {
                    layer: layer.name.clone(),
                    format: fmt.name(),
                    source,
                }
            })?;
            let (groups, by_row) =
                taalasc_quant::weighted_error_parts(w, &q, &layer.diag, layer.row_weights);
            let loss = by_row.iter().sum();
            parts.insert(*fmt, (groups, by_row));
            loss
        };
        candidates.push(Candidate {
            format: *fmt,
            fused: false,
            mixed: false,
            bits: fmt.storage_bits(rows, cols),
            loss,
        });
        mixes.push(CodeWidths::default());
    }
    let g = |f: &WeightFormat| f.group_len(cols);
    for family in MIX_FAMILIES {
        let levels: Vec<WeightFormat> = family
            .iter()
            .map(|f| f.parse::<WeightFormat>().expect("valid family format"))
            .filter(|f| parts.contains_key(f))
            .collect();
        if levels.len() < 2 {
            continue;
        }
        // Column groups: `rows × G` codes each.
        let group_sizes: Vec<f64> = (0..parts[&levels[0]].0.len())
            .map(|k| (rows * g(&levels[0]).min(cols - k * g(&levels[0]))) as f64)
            .collect();
        let by_group: Vec<(u8, &[f64])> = levels
            .iter()
            .map(|f| (f.bits, parts[f].0.as_slice()))
            .collect();
        let mut found: Vec<CodeWidths> = width_mixes(&by_group, &group_sizes)
            .into_iter()
            .map(|groups| CodeWidths {
                groups,
                rows: Vec::new(),
            })
            .collect();
        if layer.row_weights.is_some() {
            let by_row: Vec<(u8, &[f64])> = levels
                .iter()
                .map(|f| (f.bits, parts[f].1.as_slice()))
                .collect();
            found.extend(
                width_mixes(&by_row, &vec![cols as f64; rows])
                    .into_iter()
                    .map(|rows| CodeWidths {
                        groups: Vec::new(),
                        rows,
                    }),
            );
        }
        for widths in found {
            let list = if widths.rows.is_empty() {
                &widths.groups
            } else {
                &widths.rows
            };
            let widest = *list.iter().max().expect("at least one entry");
            let format = levels[0].with_bits(widest);
            let at = |k: usize| {
                levels
                    .iter()
                    .position(|f| f.bits == list[k])
                    .expect("a family width")
            };
            let loss = (0..list.len())
                .map(|k| {
                    let (groups, by_row) = &parts[&levels[at(k)]];
                    if widths.rows.is_empty() {
                        groups[k]
                    } else {
                        by_row[k]
                    }
                })
                .sum();
            candidates.push(Candidate {
                format,
                fused: false,
                mixed: true,
                bits: taalasc_quant::mixed_storage_bits(&format, &widths, rows, cols),
                loss,
            });
            mixes.push(widths);
        }
    }
    Ok((
        LayerChoices {
            name: layer.name.clone(),
            candidates,
        },
        mixes,
    ))
}

/// [`layer_candidates`] of `count` layers on `threads` threads (layer `j`
/// on thread `j % threads`; the result does not depend on the split).
/// `load(j)` reads layer `j`'s data; it runs on the worker threads, so at
/// most `threads` layers' weights are held at once. The first error in
/// layer order is returned.
pub fn all_candidates<'a, E>(
    count: usize,
    threads: usize,
    formats: &[WeightFormat],
    load: impl Fn(usize) -> Result<LayerData<'a>, E> + Sync,
) -> Result<(Vec<LayerChoices>, Vec<Vec<CodeWidths>>), E>
where
    E: From<CostError> + Send,
{
    let threads = threads.max(1);
    let results: Vec<Result<(LayerChoices, Vec<CodeWidths>), E>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                let load = &load;
                s.spawn(move || {
                    (0..count)
                        .filter(|j| j % threads == k)
                        .map(|j| -> Result<_, E> { Ok(layer_candidates(&load(j)?, formats)?) })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut per_thread: Vec<std::vec::IntoIter<_>> = handles
            .into_iter()
            .map(|h| h.join().expect("sensitivity worker").into_iter())
            .collect();
        (0..count)
            .map(|j| {
                per_thread[j % threads]
                    .next()
                    .expect("one result per layer")
            })
            .collect()
    });
    Ok(results
        .into_iter()
        .collect::<Result<Vec<_>, E>>()?
        .into_iter()
        .unzip())
}

/// The importance probe's quantization of one layer: the layer at
/// [`IMPORTANCE_PROBE`] (the caller runs the float model with it in place)
/// and its proxy loss (as in [`layer_candidates`]).
pub fn probe_layer(layer: &LayerData<'_>) -> Result<(QTensor, f64), CostError> {
    let probe = importance_probe();
    let q = taalasc_quant::quantize_rtn_plain(&layer.weights, layer.rows, layer.cols, &probe)
        .map_err(|source| CostError::Quantize {
            layer: layer.name.clone(),
            format: probe.name(),
            source,
        })?;
    let proxy: f64 =
        taalasc_quant::weighted_error_parts(&layer.weights, &q, &layer.diag, layer.row_weights)
            .1
            .iter()
            .sum();
    Ok((q, proxy))
}

/// A layer's importance: the measured end-to-end KL divergence with only
/// that layer at the probe format, per unit of its proxy loss there (0 when
/// the proxy is 0; a negative KL, rounding noise, counts as 0).
pub fn importance(kl: f64, proxy: f64) -> f64 {
    if proxy > 0.0 {
        kl.max(0.0) / proxy
    } else {
        0.0
    }
}

/// The e-graph objective for `target`, given `fixed_bits` outside the
/// pass's choice and `params` parameters in all.
pub fn objective(target: AutoTarget, fixed_bits: u64, params: u64) -> Objective {
    match target {
        AutoTarget::RomBits(b) => Objective::RomBudget {
            bits: b.saturating_sub(fixed_bits),
        },
        AutoTarget::BitsPerWeight(x) => Objective::RomBudget {
            bits: ((x * params as f64) as u64).saturating_sub(fixed_bits),
        },
        AutoTarget::Loss(l) => Objective::LossBudget { loss: l },
    }
}

/// Chooses one candidate per layer (`layers`, with each candidate's widths
/// in `mixes`, from [`all_candidates`]) for `target`: the losses are first
/// scaled by each layer's measured importance (when measured), the ROM
/// budget reduced by `fixed_bits` (gains, biases, pinned layers) of a model
/// of `params` parameters.
pub fn choose_formats(
    mut layers: Vec<LayerChoices>,
    mixes: &[Vec<CodeWidths>],
    measured: &Measured,
    target: AutoTarget,
    fixed_bits: u64,
    params: u64,
) -> Result<AutoChoice, CostError> {
    if mixes.len() != layers.len() {
        return Err(CostError::LayerCount {
            layers: layers.len(),
            what: "width mixes",
            got: mixes.len(),
        });
    }
    if !measured.importance.is_empty() {
        if measured.importance.len() != layers.len() {
            return Err(CostError::LayerCount {
                layers: layers.len(),
                what: "importances",
                got: measured.importance.len(),
            });
        }
        for (layer, &scale) in layers.iter_mut().zip(&measured.importance) {
            for c in &mut layer.candidates {
                c.loss *= scale;
            }
        }
    }
    let objective = objective(target, fixed_bits, params);
    let plan = crate::choose(&layers, &objective).map_err(|source| match objective {
        Objective::LossBudget { loss } => CostError::LossBudget { loss, source },
        Objective::RomBudget { bits } => CostError::RomBudget {
            target,
            fixed_bits,
            bits,
            source,
        },
    })?;
    let mut formats = BTreeMap::new();
    let mut widths = BTreeMap::new();
    let mut chosen = Vec::with_capacity(layers.len());
    for ((&c, lc), mix) in plan.choice.iter().zip(&layers).zip(mixes) {
        let cand = &lc.candidates[c];
        formats.insert(lc.name.clone(), cand.format);
        if !mix[c].is_uniform() {
            widths.insert(lc.name.clone(), mix[c].clone());
        }
        chosen.push(ChosenLayer {
            name: lc.name.clone(),
            format: taalasc_quant::mixed_name(&cand.format, &mix[c]),
            bits: cand.bits,
            loss: cand.loss,
        });
    }
    // Most costly first; ties (e.g. lossless layers) by name, for stable output.
    chosen.sort_by(|a, b| b.loss.total_cmp(&a.loss).then(a.name.cmp(&b.name)));
    let candidates_per_layer = layers.iter().map(|l| l.candidates.len()).max().unwrap_or(0);
    Ok(AutoChoice {
        formats,
        widths,
        report: AutoReport {
            target,
            fixed_bits,
            layers: layers.len(),
            candidates_per_layer,
            sensitivity_seconds: measured.sensitivity_seconds,
            calibration_tokens: measured.calibration_tokens,
            importance: measured.importance.clone(),
            plan,
            chosen,
        },
    })
}

/// Width mixes of one family for one layer's parts (column groups or rows).
/// `levels`: the family's widths, increasing, each with every part's error;
/// `sizes`: codes per part. Starting from every part at the narrowest width,
/// repeatedly widens the part with the largest error drop per extra bit
/// (jumping over widths that drop less per bit), and keeps the allocation
/// each time the mean width passes another [`MIX_STEP_BITS`]. Returns the
/// widths per part of each kept allocation, only those whose parts differ
/// (uniform ones are plain candidates already).
pub fn width_mixes(levels: &[(u8, &[f64])], sizes: &[f64]) -> Vec<Vec<u8>> {
    let parts = sizes.len();
    let total: f64 = sizes.iter().sum();
    let bits = |l: usize| levels[l].0 as f64;
    // A part's best widening from level `l0`: (error drop per bit, level).
    let best_from = |k: usize, l0: usize| -> Option<(f64, usize)> {
        let e0 = levels[l0].1[k];
        let mut best: Option<(f64, usize)> = None;
        for (l, level) in levels.iter().enumerate().skip(l0 + 1) {
            let gain = (e0 - level.1[k]) / ((bits(l) - bits(l0)) * sizes[k]);
            if best.is_none_or(|(b, _)| gain > b) {
                best = Some((gain, l));
            }
        }
        best
    };
    // Max-heap of widenings; ties go to the lower part index (deterministic).
    #[derive(PartialEq)]
    struct Step(f64, std::cmp::Reverse<usize>, usize);
    impl Eq for Step {}
    impl PartialOrd for Step {
        fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for Step {
        fn cmp(&self, o: &Self) -> std::cmp::Ordering {
            self.0.total_cmp(&o.0).then(self.1.cmp(&o.1))
        }
    }
    let mut heap: std::collections::BinaryHeap<Step> = (0..parts)
        .filter_map(|k| best_from(k, 0).map(|(g, l)| Step(g, std::cmp::Reverse(k), l)))
        .collect();
    let mut at = vec![0usize; parts];
    let mut mean = bits(0);
    let mut next = bits(0) + MIX_STEP_BITS;
    let mut out = Vec::new();
    while let Some(Step(_, std::cmp::Reverse(k), l)) = heap.pop() {
        mean += (bits(l) - bits(at[k])) * sizes[k] / total;
        at[k] = l;
        if let Some((g, l2)) = best_from(k, l) {
            heap.push(Step(g, std::cmp::Reverse(k), l2));
        }
        if mean + 1e-9 >= next {
            while next <= mean + 1e-9 {
                next += MIX_STEP_BITS;
            }
            if at.iter().any(|&a| a != at[0]) {
                out.push(at.iter().map(|&a| levels[a].0).collect());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Errors of parts at the widths of `levels`: `e[l][k]`.
    fn mixes(levels: &[(u8, Vec<f64>)], sizes: &[f64]) -> Vec<Vec<u8>> {
        let l: Vec<(u8, &[f64])> = levels.iter().map(|(b, e)| (*b, e.as_slice())).collect();
        width_mixes(&l, sizes)
    }

    #[test]
    fn width_mixes_widen_the_best_part_per_bit_first() {
        // Part 0 gains 9 by widening, part 1 gains 0.1: part 0 first. Each
        // widening moves the mean width by 1 bit, past a 0.25 step.
        let levels = [(2, vec![10.0, 1.0]), (4, vec![1.0, 0.9])];
        assert_eq!(mixes(&levels, &[1.0, 1.0]), vec![vec![4, 2]]);
        // Per bit of ROM, not per part: a part 3x as large gains 3x less
        // per bit for the same error drop.
        let levels = [(2, vec![10.0, 10.0]), (4, vec![1.0, 1.5])];
        assert_eq!(mixes(&levels, &[3.0, 1.0]), vec![vec![2, 4]]);
        // A width that drops less per bit is jumped over.
        let levels = [
            (2, vec![10.0, 10.0]),
            (3, vec![9.9, 9.0]),
            (4, vec![0.0, 8.0]),
        ];
        let got = mixes(&levels, &[1.0, 1.0]);
        assert_eq!(got[0], vec![4, 2], "{got:?}");
        // Uniform allocations are never returned.
        assert!(got.iter().all(|w| w.iter().any(|&b| b != w[0])));
    }

    #[test]
    fn width_mixes_keep_one_allocation_per_step() {
        // 8 equal parts whose error falls 4x per bit: the mean width passes
        // 2.25, 2.5, ... 3.75 once each as parts widen 2 → 3 (jumping to 4
        // would gain less per bit), then 4.25 ... on the way to all-4.
        let e2 = vec![16.0; 8];
        let e3: Vec<f64> = (0..8).map(|k| 4.0 - 0.01 * k as f64).collect();
        let e4 = vec![1.0; 8];
        let levels = [(2, e2), (3, e3), (4, e4)];
        let got = mixes(&levels, &[1.0; 8]);
        // Steps at 2.25..2.875 (parts widened one by one to 3), 3.25..3.875.
        assert_eq!(got.len(), 6, "{got:?}");
        // Widened in order of the largest drop: part 0's 3-bit error is the
        // largest... so the smallest drop; part 7 widens first.
        assert_eq!(got[0], vec![2, 2, 2, 2, 2, 2, 3, 3]);
        let mean = |w: &Vec<u8>| w.iter().map(|&b| b as f64).sum::<f64>() / 8.0;
        assert!(got.windows(2).all(|p| mean(&p[0]) < mean(&p[1])));
    }

    fn f(name: &str) -> WeightFormat {
        name.parse().unwrap()
    }

    /// A `[rows, cols]` layer whose column groups of 32 grow in magnitude,
    /// so wider codes pay off more on the later groups.
    fn layer(rows: usize, cols: usize) -> LayerData<'static> {
        let weights = (0..rows * cols)
            .map(|i| {
                let (r, c) = (i / cols, i % cols);
                let x = ((r * 7919 + c * 104_729) % 1000) as f32 / 1000.0 - 0.5;
                x * (1 + c / 32) as f32 * 0.01
            })
            .collect();
        LayerData {
            name: "l".into(),
            rows,
            cols,
            weights,
            diag: vec![1.0; cols],
            row_weights: None,
            exact: None,
        }
    }

    #[test]
    fn candidates_cost_their_storage_and_rtn_error() {
        let l = layer(4, 128);
        let formats = [
            f("a4g32"),
            f("a2g64"),
            f("a3g32h"),
            f("a4g32h"),
            f("s8g256"),
        ];
        let (choices, mixes) = layer_candidates(&l, &formats).unwrap();
        assert_eq!(choices.name, "l");
        // s8g256 does not tile 128 columns: left out. Plain formats first,
        // in order, then the a*g32h family's mixes.
        let plain: Vec<String> = choices.candidates[..4]
            .iter()
            .map(|c| c.format.name())
            .collect();
        assert_eq!(plain, ["a4g32", "a2g64", "a3g32h", "a4g32h"]);
        assert_eq!(choices.candidates.len(), mixes.len());
        for (c, m) in choices.candidates.iter().zip(&mixes) {
            assert_eq!(c.mixed, !m.is_uniform());
            assert_eq!(
                c.bits,
                taalasc_quant::mixed_storage_bits(&c.format, m, 4, 128)
            );
        }
        // Plain loss: the diagonal-weighted squared RTN error.
        let q = taalasc_quant::quantize_rtn_plain(&l.weights, 4, 128, &f("a2g64")).unwrap();
        let want = taalasc_quant::weighted_error(&l.weights, &q, &l.diag);
        let got = choices.candidates[1].loss;
        assert!(
            (got - want).abs() <= 1e-12 * want.max(1.0),
            "{got} vs {want}"
        );
        assert!(choices.candidates[0].loss < got);
        // Mixes of the 3/4-bit family: widths 3 and 4 over the 4 groups,
        // the later (larger) groups wider, losses between the plain ones.
        let (lo, hi) = (choices.candidates[3].loss, choices.candidates[2].loss);
        let mixed: Vec<_> = choices.candidates.iter().zip(&mixes).skip(4).collect();
        assert!(!mixed.is_empty());
        for (c, m) in mixed {
            assert_eq!(c.format.name(), "a4g32h");
            assert!(m.rows.is_empty() && m.groups.len() == 4, "{m:?}");
            assert!(m.groups.iter().all(|&b| b == 3 || b == 4));
            assert!(m.groups.windows(2).all(|p| p[0] <= p[1]), "{m:?}");
            assert!(
                lo <= c.loss && c.loss <= hi,
                "{} not in [{lo}, {hi}]",
                c.loss
            );
        }
    }

    #[test]
    fn an_exact_source_format_loses_nothing_and_row_weights_add_row_mixes() {
        let rows_w = vec![4.0, 0.01, 0.01, 4.0];
        let l = LayerData {
            exact: Some(f("a4g32")),
            row_weights: Some(&rows_w),
            ..layer(4, 64)
        };
        let (choices, mixes) =
            layer_candidates(&l, &[f("a4g32"), f("a2g32h"), f("a4g32h")]).unwrap();
        assert_eq!(choices.candidates[0].loss, 0.0);
        assert!(choices.candidates[1].loss > choices.candidates[2].loss);
        // Row mixes: the heavy rows 0 and 3 get 4 bits first.
        let by_row: Vec<&CodeWidths> = mixes.iter().filter(|m| !m.rows.is_empty()).collect();
        assert!(by_row.iter().any(|m| m.rows == [4, 2, 2, 4]), "{by_row:?}");
        // Row weights scale the plain loss row by row.
        let plain = LayerData {
            row_weights: None,
            exact: None,
            ..l.clone()
        };
        let (p, _) = layer_candidates(&plain, &[f("a2g32h")]).unwrap();
        assert!(p.candidates[0].loss != choices.candidates[1].loss);
    }

    #[test]
    fn all_candidates_match_one_layer_at_a_time() {
        let layers: Vec<LayerData> = (1..6).map(|k| layer(k, 64)).collect();
        let formats = auto_candidates();
        let one: Vec<_> = layers
            .iter()
            .map(|l| layer_candidates(l, &formats).unwrap())
            .collect();
        for threads in [1, 2, 4, 9] {
            let (choices, mixes) = all_candidates(
                layers.len(),
                threads,
                &formats,
                |j| -> Result<_, CostError> { Ok(layers[j].clone()) },
            )
            .unwrap();
            assert_eq!(choices.len(), 5);
            for (j, (c, m)) in choices.iter().zip(&mixes).enumerate() {
                assert_eq!(
                    (c, m),
                    (&one[j].0, &one[j].1),
                    "layer {j} on {threads} threads"
                );
            }
        }
        // The first failing layer's error, whichever thread met it.
        let e = all_candidates(5, 3, &formats, |j| {
            if j >= 2 {
                Err(format!("layer {j}"))
            } else {
                Ok(layers[j].clone())
            }
        });
        assert_eq!(e.unwrap_err(), "layer 2");
    }

    impl From<CostError> for String {
        fn from(e: CostError) -> String {
            e.to_string()
        }
    }

    #[test]
    fn head_rows_weigh_by_token_probability() {
        let w = head_row_weights(&[0.7, 0.3, 0.0, 0.0]);
        let want = [
            4.0 * (0.95 * 0.7 + 0.0125),
            4.0 * (0.95 * 0.3 + 0.0125),
            0.05,
            0.05,
        ];
        for (g, w) in w.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{g} vs {w}");
        }
        // Mean weight 1 when the probabilities sum to 1.
        assert!((w.iter().sum::<f64>() - 4.0).abs() < 1e-12);
        assert_eq!(layer_diag(None, 3), vec![1.0; 3]);
    }

    #[test]
    fn importance_and_objective() {
        assert_eq!(importance(0.5, 2.0), 0.25);
        assert_eq!(importance(-0.1, 2.0), 0.0);
        assert_eq!(importance(0.5, 0.0), 0.0);
        assert_eq!(
            objective(AutoTarget::RomBits(1000), 300, 7),
            Objective::RomBudget { bits: 700 }
        );
        assert_eq!(
            objective(AutoTarget::RomBits(100), 300, 7),
            Objective::RomBudget { bits: 0 }
        );
        assert_eq!(
            objective(AutoTarget::BitsPerWeight(4.5), 100, 1000),
            Objective::RomBudget { bits: 4400 }
        );
        assert_eq!(
            objective(AutoTarget::Loss(0.5), 100, 1000),
            Objective::LossBudget { loss: 0.5 }
        );
        let (q, proxy) = probe_layer(&layer(2, 64)).unwrap();
        assert_eq!(q.format.name(), IMPORTANCE_PROBE);
        let l = layer(2, 64);
        assert_eq!(
            proxy,
            taalasc_quant::weighted_error(&l.weights, &q, &l.diag)
        );
    }

    fn cand(format: &str, bits: u64, loss: f64) -> Candidate {
        Candidate {
            format: f(format),
            fused: false,
            mixed: false,
            bits,
            loss,
        }
    }

    #[test]
    fn choose_formats_scales_by_importance_and_reports_the_costliest_first() {
        let layers = vec![
            LayerChoices {
                name: "a".into(),
                candidates: vec![cand("a2g32h", 100, 8.0), cand("a4g32", 200, 1.0)],
            },
            LayerChoices {
                name: "b".into(),
                candidates: vec![cand("a2g32h", 100, 4.0), cand("a4g32", 200, 0.0)],
            },
        ];
        let mixed = CodeWidths {
            groups: vec![2, 4],
            rows: Vec::new(),
        };
        let mixes = vec![
            vec![CodeWidths::default(), CodeWidths::default()],
            vec![CodeWidths::default(), mixed.clone()],
        ];
        let measured = Measured {
            calibration_tokens: 2048,
            importance: vec![0.1, 10.0],
            sensitivity_seconds: 1.5,
        };
        // 300 bits for the two layers (400 minus 100 fixed): one may be wide.
        // Scaled losses: a 0.8 / 0.1, b 40 / 0: widening b saves more.
        let c = choose_formats(
            layers.clone(),
            &mixes,
            &measured,
            AutoTarget::RomBits(400),
            100,
            50,
        )
        .unwrap();
        assert_eq!(c.report.plan.choice, vec![0, 1]);
        assert_eq!(c.formats["a"].name(), "a2g32h");
        assert_eq!(c.formats["b"].name(), "a4g32");
        assert_eq!(c.widths.len(), 1);
        assert_eq!(c.widths["b"], mixed);
        let chosen: Vec<(&str, &str, u64, f64)> = c
            .report
            .chosen
            .iter()
            .map(|l| (l.name.as_str(), l.format.as_str(), l.bits, l.loss))
            .collect();
        assert_eq!(
            chosen,
            [
                ("a", "a2g32h", 100, 0.8),
                ("b", "a4g32[groups 2:1,4:1]", 200, 0.0)
            ]
        );
        assert_eq!(
            (
                c.report.layers,
                c.report.candidates_per_layer,
                c.report.fixed_bits
            ),
            (2, 2, 100)
        );
        assert_eq!(c.report.importance, measured.importance);
        assert_eq!(c.report.calibration_tokens, 2048);
        // Without importances the proxies decide: widening a saves 7 > 4.
        let c = choose_formats(
            layers.clone(),
            &mixes,
            &Measured::default(),
            AutoTarget::RomBits(400),
            100,
            50,
        )
        .unwrap();
        assert_eq!(c.report.plan.choice, vec![1, 0]);
        // Infeasible: the budget is named.
        let e = choose_formats(layers, &mixes, &measured, AutoTarget::RomBits(250), 100, 50)
            .unwrap_err();
        assert!(
            matches!(
                e,
                CostError::RomBudget {
                    bits: 150,
                    fixed_bits: 100,
                    source: PassError::Infeasible { .. },
                    ..
                }
            ),
            "{e}"
        );
    }
}
