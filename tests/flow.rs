//! The token-flow model against Verilator: several users in flight and
//! prefilled prompts (RFC 0005 §Prefill). The model replays the chip
//! controller's handoff rules and the harness's offering rules with each
//! engine run priced by the unit formulas; it must give every token's
//! latency and the run's total cycles exactly, and the simulation must stay
//! bit-exact when a prompt's tokens follow each other through the pipeline.
//!
//! Needs verilator (scripts/test.sh installs it).

use taalasc::sim::{simulate, SimConfig};
use taalasc_tests::repo_root;
use taalasc_verilog::flow::replay;
use taalasc_verilog::sim::interleave;

#[test]
fn prefill_is_bit_exact_and_the_flow_model_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let chip = dir.path().join("chip");
    taalasc_tests::build_lib(
        &repo_root().join("examples/tiny-llama"),
        &chip,
        &["--lanes", "16", "--context", "16", "--users", "2"],
    );
    // User 0: a 6-token prompt, prefilled; user 1: a 3-token prompt and
    // two decode tokens, offered with jitter so arrivals fall in every
    // phase of the pipeline.
    let users = vec![vec![1, 2, 3, 4, 5, 6], vec![7, 8, 9, 10, 11]];
    let cfg = SimConfig {
        users: users.clone(),
        arrival_jitter: 700,
        prefill: 3,
        vcd: None,
        ..Default::default()
    };
    let o = simulate(&chip, &cfg).unwrap();
    assert!(o.bit_exact, "{:?}", o.first_mismatch);
    assert_eq!(o.positions, 11);
    let f = o.flow.as_ref().expect("a single chip is modelled");
    let measured: Vec<u64> = o.per_token.iter().map(|c| c.total).collect();
    assert_eq!(f.latency, measured, "every token's latency");
    assert_eq!(f.total, o.total_cycles, "the run's total cycles");
    assert_eq!(o.flow_exact(), Some(true));

    // One user, the whole prompt prefilled: the same bits, and the model
    // says how much sooner the last logit comes than token by token.
    let one = vec![vec![1, 2, 3, 4, 5, 6]];
    let cfg = SimConfig {
        users: one.clone(),
        arrival_jitter: 0,
        prefill: 6,
        vcd: None,
        ..Default::default()
    };
    let o = simulate(&chip, &cfg).unwrap();
    assert!(o.bit_exact, "{:?}", o.first_mismatch);
    assert_eq!(o.flow_exact(), Some(true));
    let (_, plan, _) = taalasc::chip::open_chip(&chip).unwrap();
    let serial_in = interleave(&one, 0, 0);
    let serial = replay(&plan, &serial_in).unwrap();
    // Four stages (embedding, two layers, head): prefill overlaps them.
    assert!(
        (o.total_cycles as f64) < 0.7 * serial.total as f64,
        "prefill {} cycles against {} token by token",
        o.total_cycles,
        serial.total
    );
    // A prefilled token enters before its predecessor's logits: its
    // latency is longer than alone (it queues behind the earlier tokens),
    // while the run is shorter.
    assert!(o.per_token[5].total > serial.latency[5]);
    // One token at a time, the model is RFC 0005's per-token formula.
    for (p, l) in serial.latency.iter().enumerate() {
        assert_eq!(
            *l,
            taalasc_verilog::perf::predicted(&plan, p),
            "position {p}"
        );
    }
}
