//! `choose` against brute force, the error cases, and a SmolLM2-sized run.

use taalasc_egraph::lang::{self, QuantLang};
use taalasc_egraph::{
    choose, choose_with, saturate, Candidate, FormatChoice, LayerChoices, Limits, Objective,
    PassError,
};
use taalasc_quant::WeightFormat;

/// The tests' fixed-seed generator.
use taalasc_testrng::SplitMix64 as Rng;

fn fmt(name: &str) -> WeightFormat {
    name.parse().unwrap()
}

const FORMATS: [&str; 10] = [
    "s2g32", "a2g64", "s3g32", "a3g64", "s4g32", "a4g32", "s5g64", "s6g32", "a8g128", "s8g32",
];

/// Up to 6 layers × 1..=3 candidates with random bits and losses.
fn random_instance(rng: &mut Rng) -> Vec<LayerChoices> {
    let n_layers = 1 + rng.below(6) as usize;
    (0..n_layers)
        .map(|k| LayerChoices {
            name: format!("layer{k}"),
            candidates: (0..1 + rng.below(3) as usize)
                .map(|c| Candidate {
                    format: fmt(FORMATS[(k + c) % FORMATS.len()]),
                    fused: rng.below(2) == 0,
                    mixed: rng.below(4) == 0,
                    bits: 100 + rng.below(5000),
                    loss: 10.0 * rng.unit(),
                })
                .collect(),
        })
        .collect()
}

/// Every combination: (choice, Σ bits, Σ loss in layer order).
fn all_plans(layers: &[LayerChoices]) -> Vec<(Vec<usize>, u64, f64)> {
    let mut plans = vec![(vec![], 0u64, 0.0f64)];
    for layer in layers {
        plans = plans
            .into_iter()
            .flat_map(|(choice, bits, loss)| {
                layer.candidates.iter().enumerate().map(move |(c, cand)| {
                    let mut choice = choice.clone();
                    choice.push(c);
                    (choice, bits + cand.bits, loss + cand.loss)
                })
            })
            .collect();
    }
    plans
}

fn best_loss(plans: &[(Vec<usize>, u64, f64)], budget: u64) -> Option<f64> {
    plans
        .iter()
        .filter(|p| p.1 <= budget)
        .map(|p| p.2)
        .min_by(f64::total_cmp)
}

fn best_bits(plans: &[(Vec<usize>, u64, f64)], budget: f64) -> Option<u64> {
    plans.iter().filter(|p| p.2 <= budget).map(|p| p.1).min()
}

/// The plan's totals are those of its choice.
fn check_totals(layers: &[LayerChoices], plan: &FormatChoice) {
    let (bits, loss) = layers
        .iter()
        .zip(&plan.choice)
        .fold((0u64, 0.0f64), |(b, l), (layer, &c)| {
            (b + layer.candidates[c].bits, l + layer.candidates[c].loss)
        });
    assert_eq!((plan.total_bits, plan.total_loss), (bits, loss));
    assert_eq!(plan.stop_reason, "Saturated");
}

fn rom_budgets(plans: &[(Vec<usize>, u64, f64)]) -> Vec<u64> {
    let lo = plans.iter().map(|p| p.1).min().unwrap();
    let hi = plans.iter().map(|p| p.1).max().unwrap();
    let mut budgets: Vec<u64> = (0..=8).map(|i| lo + (hi - lo) * i / 8).collect();
    budgets.push(hi + 100);
    budgets
}

fn loss_budgets(plans: &[(Vec<usize>, u64, f64)]) -> Vec<f64> {
    let lo = plans.iter().map(|p| p.2).min_by(f64::total_cmp).unwrap();
    let hi = plans.iter().map(|p| p.2).max_by(f64::total_cmp).unwrap();
    let mut budgets: Vec<f64> = (0..=8).map(|i| lo + (hi - lo) * i as f64 / 8.0).collect();
    // Budgets equal to a plan's exact loss.
    budgets.extend(plans.iter().step_by(7).map(|p| p.2));
    budgets
}

#[test]
fn rom_budget_hits_the_brute_force_optimum() {
    let mut rng = Rng(0x7a41_a5c0);
    for _ in 0..40 {
        let layers = random_instance(&mut rng);
        let plans = all_plans(&layers);
        for budget in rom_budgets(&plans) {
            let plan = choose(&layers, &Objective::RomBudget { bits: budget }).unwrap();
            check_totals(&layers, &plan);
            assert!(plan.total_bits <= budget);
            assert_eq!(
                Some(plan.total_loss),
                best_loss(&plans, budget),
                "{layers:?} {budget}"
            );
            assert!(plan.proven_optimal);
            assert_eq!(plan.rounding_bits, 0);
            assert!(plan.lower_bound <= plan.total_loss + 1e-9);
        }
    }
}

#[test]
fn loss_budget_hits_the_brute_force_optimum() {
    let mut rng = Rng(0x1055_b0d6);
    for _ in 0..40 {
        let layers = random_instance(&mut rng);
        let plans = all_plans(&layers);
        for budget in loss_budgets(&plans) {
            let plan = choose(&layers, &Objective::LossBudget { loss: budget }).unwrap();
            check_totals(&layers, &plan);
            assert!(plan.total_loss <= budget);
            assert_eq!(
                Some(plan.total_bits),
                best_bits(&plans, budget),
                "{layers:?} {budget}"
            );
            assert!(plan.proven_optimal);
            assert!(plan.lower_bound <= plan.total_bits as f64 + 1e-6);
        }
    }
}

/// A DP forced down to a handful of states: still feasible, and within the
/// documented rounding bound `δ = FormatChoice::rounding_bits` of the optimum.
#[test]
fn a_coarse_dp_stays_within_its_rounding_bound() {
    let mut rng = Rng(0xc0a7_5e00);
    let coarse = Limits {
        dp_work: 40,
        dp_cells: 40,
        ..Limits::default()
    };
    let mut rounded = 0;
    for _ in 0..60 {
        let layers = random_instance(&mut rng);
        let plans = all_plans(&layers);
        for budget in rom_budgets(&plans) {
            let plan =
                choose_with(&layers, &Objective::RomBudget { bits: budget }, &coarse).unwrap();
            check_totals(&layers, &plan);
            let optimum = best_loss(&plans, budget).unwrap();
            assert!(plan.total_bits <= budget);
            assert!(plan.total_loss >= optimum);
            assert!(plan.lower_bound <= optimum + 1e-9);
            let shrunk = budget.saturating_sub(plan.rounding_bits);
            if let Some(shrunk_optimum) = best_loss(&plans, shrunk) {
                assert!(plan.total_loss <= shrunk_optimum, "{layers:?} {budget}");
            }
            if plan.proven_optimal {
                assert_eq!(plan.total_loss, optimum);
            }
            rounded += usize::from(plan.rounding_bits > 0);
        }
        for budget in loss_budgets(&plans) {
            let objective = Objective::LossBudget { loss: budget };
            let plan = choose_with(&layers, &objective, &coarse).unwrap();
            check_totals(&layers, &plan);
            let optimum = best_bits(&plans, budget).unwrap();
            assert!(plan.total_loss <= budget);
            assert!(plan.total_bits >= optimum);
            assert!(plan.total_bits <= optimum + plan.rounding_bits);
            assert!(plan.lower_bound <= optimum as f64 + 1e-6);
            if plan.proven_optimal {
                assert_eq!(plan.total_bits, optimum);
            }
            rounded += usize::from(plan.rounding_bits > 0);
        }
    }
    assert!(rounded > 100, "the coarse path ran {rounded} times");
}

fn uniform_layers(sensitivity: &[f64]) -> Vec<LayerChoices> {
    let (rows, cols) = (64, 256);
    sensitivity
        .iter()
        .enumerate()
        .map(|(k, &s)| LayerChoices {
            name: format!("model.layers.{k}.self_attn.q_proj"),
            candidates: ["s2g32", "s4g32", "s8g32"]
                .iter()
                .map(|name| {
                    let format = fmt(name);
                    Candidate {
                        format,
                        fused: false,
                        mixed: false,
                        bits: format.storage_bits(rows, cols),
                        // Error power falls 4× per extra bit.
                        loss: s * 0.25f64.powi(format.bits as i32 - 2),
                    }
                })
                .collect(),
        })
        .collect()
}

#[test]
fn infeasible_budgets_name_what_is_needed() {
    let layers = uniform_layers(&[1.0, 2.0]);
    let needed = 2 * fmt("s2g32").storage_bits(64, 256);
    let err = choose(&layers, &Objective::RomBudget { bits: needed - 1 }).unwrap_err();
    assert_eq!(
        err,
        PassError::Infeasible {
            needed_bits: needed,
            budget: needed - 1
        }
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&needed.to_string()) && msg.contains("1 over"),
        "{msg}"
    );
    assert!(choose(&layers, &Objective::RomBudget { bits: needed }).is_ok());

    let least = 1.0 / 4096.0 + 2.0 / 4096.0;
    let err = choose(&layers, &Objective::LossBudget { loss: least / 2.0 }).unwrap_err();
    assert_eq!(
        err,
        PassError::InfeasibleLoss {
            needed_loss: least,
            budget: least / 2.0
        }
    );
    let plan = choose(&layers, &Objective::LossBudget { loss: least }).unwrap();
    assert_eq!(plan.choice, vec![2, 2]);
    assert!(matches!(
        choose(&layers, &Objective::LossBudget { loss: f64::NAN }),
        Err(PassError::BadLossBudget(_))
    ));
}

#[test]
fn bad_inputs_are_rejected_by_name() {
    let mut layers = uniform_layers(&[1.0, 2.0]);
    layers[1].candidates[2].loss = -1.0;
    let err = choose(&layers, &Objective::RomBudget { bits: 1 << 30 }).unwrap_err();
    assert!(matches!(&err, PassError::BadLoss { index: 2, .. }), "{err}");
    assert!(
        err.to_string().contains("layers.1.self_attn.q_proj"),
        "{err}"
    );
    layers[1].candidates.clear();
    assert_eq!(
        choose(&layers, &Objective::RomBudget { bits: 1 << 30 }).unwrap_err(),
        PassError::NoCandidates {
            layer: layers[1].name.clone()
        }
    );
}

/// Equal bits, but spent where they matter: a mixed plan beats every uniform
/// plan that fits the budget.
#[test]
fn mixed_precision_beats_every_uniform_plan() {
    let layers = uniform_layers(&[100.0, 1.0, 50.0, 0.01]);
    let uniform = |c: usize| -> (u64, f64) {
        layers.iter().fold((0, 0.0), |(b, l), layer| {
            (b + layer.candidates[c].bits, l + layer.candidates[c].loss)
        })
    };
    let budget = uniform(1).0; // all layers at 4 bits
    let plan = choose(&layers, &Objective::RomBudget { bits: budget }).unwrap();
    check_totals(&layers, &plan);
    assert_eq!(plan.choice, vec![2, 0, 1, 0]); // 8 + 2 + 4 + 2 bits
    assert_eq!(plan.total_bits, budget);
    for c in 0..3 {
        let (bits, loss) = uniform(c);
        if bits <= budget {
            assert!(
                plan.total_loss < loss,
                "uniform {c}: {loss} vs {}",
                plan.total_loss
            );
        }
    }
    assert!(plan.total_loss < uniform(1).1 / 2.0);
}

#[test]
fn rules_add_exactly_the_candidates_of_each_layer() {
    let mut layers = uniform_layers(&[1.0, 2.0, 3.0]);
    layers[0].candidates.push(Candidate {
        format: fmt("s4g32"),
        fused: true,
        mixed: false,
        bits: 1,
        loss: 0.5,
    });
    layers[2].candidates.remove(1); // layer 2 has no s4g32
    let sat = saturate(&layers, &Limits::default()).unwrap();
    assert_eq!(
        sat.rules,
        vec![
            "linear→q:s2g32",
            "linear→q:s4g32",
            "linear→q:s8g32",
            "linear→q:s4g32+fused"
        ]
    );
    assert_eq!((sat.iterations, sat.stop_reason.as_str()), (2, "Saturated"));
    assert_eq!(
        sat.egraph.total_number_of_nodes(),
        lang::saturated_size(&layers)
    );
    let classes = lang::layer_classes(&sat.egraph, sat.root).unwrap();
    for (k, (&class, layer)) in classes.iter().zip(&layers).enumerate() {
        let mut qs: Vec<String> = sat.egraph[class]
            .nodes
            .iter()
            .filter(|n| matches!(n, QuantLang::Q(_)))
            .map(|n| {
                let QuantLang::Q([c, l]) = n else {
                    unreachable!()
                };
                format!("{:?}/{:?}", sat.egraph[*c].data, sat.egraph[*l].data)
            })
            .collect();
        qs.sort();
        let mut want: Vec<String> = (0..layer.candidates.len())
            .map(|c| format!("Index({c})/Index({k})"))
            .collect();
        want.sort();
        assert_eq!(qs, want, "layer {k}");
    }
    // The fused node is read like any other: a loose ROM budget takes the
    // most accurate (s8g32 loses 1/4096 < 0.5), a loss budget the 1-bit one.
    let plan = choose(&layers, &Objective::RomBudget { bits: 1 << 20 }).unwrap();
    assert_eq!(plan.choice[0], 2);
    let plan = choose(&layers, &Objective::LossBudget { loss: 10.0 }).unwrap();
    assert_eq!(plan.choice[0], 3);
}

#[test]
fn an_empty_model_is_an_empty_plan() {
    let plan = choose(&[], &Objective::RomBudget { bits: 0 }).unwrap();
    assert_eq!(
        (plan.choice.len(), plan.total_bits, plan.total_loss),
        (0, 0, 0.0)
    );
    assert_eq!(plan.stop_reason, "Saturated");
}

/// SmolLM2-135M's linears: 30 layers × (q, k, v, o, gate, up, down), each
/// with 10 formats × {plain, fused} = 20 candidates and synthetic losses.
fn smollm2_like() -> Vec<LayerChoices> {
    let mut rng = Rng(0x5_3011_2135);
    let shapes = [
        ("self_attn.q_proj", 576, 576),
        ("self_attn.k_proj", 192, 576),
        ("self_attn.v_proj", 192, 576),
        ("self_attn.o_proj", 576, 576),
        ("mlp.gate_proj", 1536, 576),
        ("mlp.up_proj", 1536, 576),
        ("mlp.down_proj", 576, 1536),
    ];
    let mut layers = Vec::new();
    for block in 0..30 {
        for &(name, rows, cols) in &shapes {
            let sensitivity = (rows * cols) as f64 * (0.2 + 5.0 * rng.unit().powi(3));
            let candidates = FORMATS
                .iter()
                .flat_map(|&f| [(f, false), (f, true)])
                .map(|(f, fused)| {
                    let format = fmt(f);
                    let group_penalty = 1.0 + format.group_len(cols) as f64 / 256.0;
                    let sym_penalty = if format.symmetric { 1.15 } else { 1.0 };
                    let fused_factor = if fused { 0.8 + 0.4 * rng.unit() } else { 1.0 };
                    Candidate {
                        format,
                        fused,
                        mixed: false,
                        bits: format.storage_bits(rows, cols),
                        loss: sensitivity
                            * 0.25f64.powi(format.bits as i32)
                            * group_penalty
                            * sym_penalty
                            * fused_factor,
                    }
                })
                .collect();
            layers.push(LayerChoices {
                name: format!("model.layers.{block}.{name}"),
                candidates,
            });
        }
    }
    layers
}

#[test]
fn smollm2_scale_is_bounded_and_deterministic() {
    let layers = smollm2_like();
    assert_eq!(layers.len(), 210);
    // Σ rows·cols: 3.54M weights per block, 106M in all (the embedding is not here).
    let weights: u64 = 30 * (2 * 576 * 576 + 2 * 192 * 576 + 3 * 1536 * 576);
    let expected_nodes = 1 + 210 + 210 * 20 + 210;
    let rom = choose(
        &layers,
        &Objective::RomBudget {
            bits: weights * 17 / 4,
        },
    )
    .unwrap();
    // Real formats share factors (rows × 16-bit scales): g = 3072 bits here.
    assert!(rom.proven_optimal && rom.rounding_bits == 0);
    // Bits with no common factor (gcd 1) force the rounded DP at full size.
    let mut jittered = layers.clone();
    let mut rng = Rng(0x0dd);
    for c in jittered.iter_mut().flat_map(|l| &mut l.candidates) {
        c.bits += rng.below(1000);
    }
    for (label, layers, objective) in [
        (
            "rom 4.25 b/w",
            &layers,
            Objective::RomBudget {
                bits: weights * 17 / 4,
            },
        ),
        (
            "rom 3.00 b/w",
            &layers,
            Objective::RomBudget { bits: weights * 3 },
        ),
        (
            "loss of the 4.25 b/w plan",
            &layers,
            Objective::LossBudget {
                loss: rom.total_loss,
            },
        ),
        (
            "gcd 1, rom 4.25 b/w",
            &jittered,
            Objective::RomBudget {
                bits: weights * 17 / 4,
            },
        ),
        (
            "gcd 1, loss",
            &jittered,
            Objective::LossBudget {
                loss: rom.total_loss,
            },
        ),
    ] {
        let plan = choose(layers, &objective).unwrap();
        check_totals(layers, &plan);
        println!(
            "{label}: {:.3} s, {} nodes, {} classes, {} iterations, {}, \
             {:.4} bits/weight, loss {:.6e} (lower bound {:.6e}), u = {} bits, δ = {} bits, proven {}",
            plan.seconds,
            plan.egraph_nodes,
            plan.egraph_classes,
            plan.iterations,
            plan.stop_reason,
            plan.total_bits as f64 / weights as f64,
            plan.total_loss,
            plan.lower_bound,
            plan.dp_unit_bits,
            plan.rounding_bits,
            plan.proven_optimal,
        );
        assert_eq!(plan.egraph_nodes, expected_nodes);
        assert_eq!(plan.egraph_classes, 210 + 210 + 1);
        assert_eq!(plan.iterations, 2);
        match objective {
            Objective::RomBudget { bits } => {
                assert!(plan.total_bits <= bits);
                assert!(plan.lower_bound <= plan.total_loss * (1.0 + 1e-12));
            }
            Objective::LossBudget { loss } => {
                assert!(plan.total_loss <= loss);
                assert!(plan.lower_bound <= plan.total_bits as f64 * (1.0 + 1e-12));
            }
        }
        // δ is a small fraction of the ROM.
        assert!((plan.rounding_bits as f64) < 0.005 * plan.total_bits as f64);
        let again = choose(layers, &objective).unwrap();
        assert_eq!(
            (&again.choice, again.total_bits, again.total_loss),
            (&plan.choice, plan.total_bits, plan.total_loss)
        );
        let json = serde_json::to_string(&plan).unwrap();
        assert!(json.contains("\"stop_reason\":\"Saturated\""));
    }
}
