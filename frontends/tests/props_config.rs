//! Property tests of `config.json`: random values in every field and damaged
//! text never panic, and every error names the file.

use props_common::*;
use proptest::prelude::*;
use serde_json::json;

mod props_common;

proptest! {
    #![proptest_config(cases())]

    /// The tiny config with one to three fields set to random JSON values
    /// (or removed), beside a valid checkpoint.
    #[test]
    fn config_random_fields(
        edits in proptest::collection::vec((proptest::sample::select(FIELDS), proptest::option::of(json_value())), 1..4),
        gpt2 in any::<bool>(),
    ) {
        let s = scratch();
        write_tiny_weights_once(&s.dir);
        let mut cfg = tiny_config();
        if gpt2 {
            cfg["architectures"] = json!(["GPT2LMHeadModel"]);
        }
        for (field, v) in edits {
            match v {
                Some(v) => cfg[field] = v,
                None => {
                    cfg.as_object_mut().unwrap().remove(field);
                }
            }
        }
        std::fs::write(s.dir.join("config.json"), cfg.to_string()).unwrap();
        check_load(&s.dir, &s.dir)?;
    }

    /// A real config's text damaged one to four times.
    #[test]
    fn config_mutated_text(muts in proptest::collection::vec(mutation(), 1..5)) {
        let s = scratch();
        write_tiny_weights_once(&s.dir);
        let mut text = serde_json::to_vec_pretty(&tiny_config()).unwrap();
        for m in &muts {
            apply(&mut text, m);
        }
        std::fs::write(s.dir.join("config.json"), &text).unwrap();
        check_load(&s.dir, &s.dir)?;
    }
}

/// The weights never change between cases: write them once per folder.
fn write_tiny_weights_once(dir: &std::path::Path) {
    let p = dir.join("model.safetensors");
    if !p.exists() {
        std::fs::write(p, safetensors_bytes(&tiny_hf_tensors())).unwrap();
    }
}
