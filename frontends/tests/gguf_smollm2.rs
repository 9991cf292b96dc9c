//! Smoke test on the real SmolLM2-135M-Instruct Q4_1 GGUF (98 MB, not in the
//! repository). `scripts/fetch-data.sh` downloads it to `.cache/data/`;
//! `TAALASC_SMOLLM2_GGUF` overrides the path. The test fails, rather than
//! skipping, when the file is missing.

use std::path::PathBuf;
use taalasc_frontends::gguf::GgufFile;
use taalasc_ir::{DType, WeightId, WeightSource};

const ENV: &str = "TAALASC_SMOLLM2_GGUF";

fn model_path() -> PathBuf {
    let p = std::env::var_os(ENV).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../.cache/data/SmolLM2-135M-Instruct.Q4_1.gguf")
    });
    assert!(
        p.is_file(),
        "{} is missing: run `bash scripts/fetch-data.sh` (part of scripts/test.sh) or set {ENV}",
        p.display()
    );
    p
}

#[test]
fn smollm2_q4_1_gguf_loads() {
    let path = model_path();
    let m = taalasc_frontends::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let h = &m.model.hparams;
    assert_eq!(h.architecture, "llama");
    assert_eq!(h.d_model, 576);
    assert_eq!(h.n_layers, 30);
    assert_eq!((h.n_heads, h.n_kv_heads, h.head_dim), (9, 3, 64));
    assert_eq!(h.d_ff, 1536);
    assert_eq!(h.vocab_size, 49152);
    assert_eq!(h.max_positions, 8192);
    assert!(h.tied_embeddings);
    assert_eq!((h.bos_token_id, h.eos_token_id), (Some(1), Some(2)));
    let rope = m
        .model
        .graph
        .node_weights()
        .find_map(|n| match &n.op {
            taalasc_ir::Op::Rope { spec, .. } => Some(spec.clone()),
            _ => None,
        })
        .expect("a rope node");
    assert_eq!(rope.theta, 100000.0);
    assert_eq!(rope.rotary_dim, 64);
    assert_eq!(rope.scaling, taalasc_ir::RopeScaling::None);
    let eps = m
        .model
        .graph
        .node_weights()
        .find_map(|n| match n.op {
            taalasc_ir::Op::RmsNorm { eps, .. } => Some(eps),
            _ => None,
        })
        .expect("an rms_norm node");
    assert_eq!(eps, 1e-5);

    // Storage types: token_embd Q8_0, norms F32, every projection Q4_1.
    // 1 embedding + 30 * 9 + final norm; tied, so no separate head.
    assert_eq!(m.model.weights.len(), 1 + 30 * 9 + 1);
    for w in &m.model.weights {
        let want = if w.name == "tok_embeddings" {
            DType::Q8_0
        } else if w.name.ends_with(".gain") {
            DType::F32
        } else {
            DType::Q4_1
        };
        assert_eq!(w.dtype, want, "{} ({})", w.name, w.source_tensor);
    }
    for (i, w) in m.model.weights.iter().enumerate() {
        let v = m
            .weights
            .load_f32(WeightId(i as u32))
            .unwrap_or_else(|e| panic!("{}: {e}", w.name));
        assert_eq!(v.len() as u64, w.numel(), "{}", w.name);
        assert!(v.iter().all(|x| x.is_finite()), "{}", w.name);
        assert!(v.iter().any(|&x| x != 0.0), "{} is all zeros", w.name);
    }

    // Tokenizer: `smollm` pre-tokenizer, no BOS added, 17 control tokens.
    let file = GgufFile::open(&path).unwrap();
    let md = file.metadata();
    assert_eq!(md.str("tokenizer.ggml.model").unwrap(), Some("gpt2"));
    assert_eq!(md.str("tokenizer.ggml.pre").unwrap(), Some("smollm"));
    let types = taalasc_frontends::gguf::tokenizer::type_counts(md).unwrap();
    assert_eq!(
        (types.get(&1), types.get(&3), types.len()),
        (Some(&49135), Some(&17), 2)
    );
    let tok = m
        .tokenizer
        .as_ref()
        .expect("SmolLM2's GGUF embeds its tokenizer");
    assert!(!tok.add_bos);
    assert_eq!(tok.vocab_size(), 49152);
    let text = "The capital of France is";
    let ids = tok.encode(text, true).unwrap();
    // Independently computed with the `tokenizers` Python package from the
    // same GGUF metadata (tests/fixtures/smollm2/oracle.json, prompt_tokens).
    assert_eq!(ids, vec![504, 3575, 282, 4649, 314]);
    assert_eq!(tok.decode(&ids).unwrap(), text);
    // Digits split one by one; control tokens stay whole.
    let ids = tok.encode("<|im_start|>user\nIn 2024", false).unwrap();
    assert_eq!(ids[0], 1, "<|im_start|> is token 1");
    assert_eq!(tok.decode(&ids).unwrap(), "<|im_start|>user\nIn 2024");
    let digits = tok.encode("2024", false).unwrap();
    assert_eq!(digits.len(), 4, "{digits:?}");
}
