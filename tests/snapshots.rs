//! Snapshots of the IR text and `inspect --json` for small fixtures.
//!
//! A snapshot records a decision (op order, naming, what inspect reports); it
//! does not prove correctness — `hf_oracle.rs` does that. Review changes with
//! `cargo insta review`; CI runs with `INSTA_UPDATE=no`.

use taalasc_tests::*;

fn load(variant: &str) -> taalasc_frontends::LoadedModel {
    taalasc_frontends::load(&fixture(&format!("hf/{variant}"))).unwrap()
}

#[test]
fn ir_text_llama_gqa() {
    insta::assert_snapshot!(load("llama_gqa").model.to_string());
}

#[test]
fn ir_text_gpt2() {
    insta::assert_snapshot!(load("gpt2").model.to_string());
}

#[test]
fn inspect_json_llama_mqa_tied() {
    let m = load("llama_mqa_tied");
    let mut report = serde_json::to_value(taalasc::inspect::report(&m)).unwrap();
    report["path"] = "tests/fixtures/hf/llama_mqa_tied".into();
    // The head reads the embedding table: parameters are counted once.
    let h = &m.model.hparams;
    let embed = (h.vocab_size * h.d_model) as u64;
    assert_eq!(
        report["layers"][h.n_layers + 1]["params"].as_u64(),
        Some(h.d_model as u64)
    );
    assert_eq!(report["layers"][0]["params"].as_u64(), Some(embed));
    insta::assert_json_snapshot!(report);
}
