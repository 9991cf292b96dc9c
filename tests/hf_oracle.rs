//! Every Hugging Face fixture against the logits and greedy continuations that
//! transformers produced (`tests/oracle/make_hf_fixtures.py`).
//! Rule: max |Δlogit| ≤ 1e-4, same top-1 at every position, identical greedy tokens.

use taalasc_float::FloatModel;
use taalasc_tests::*;

const VARIANTS: &[&str] = &[
    "llama_gqa",
    "llama_mqa_tied",
    "llama3_rope",
    "mistral",
    "mistral_window",
    "qwen2",
    "gpt2",
    "gpt2_noprefix",
    "gpt2_tokenizer",
    "llama_sharded",
    "llama_bf16",
    "llama_f16",
    "llama_config_v4",
];

fn check(variant: &str) {
    let dir = fixture(&format!("hf/{variant}"));
    let oracle = read_json(&dir.join("oracle.json"));
    let loaded = taalasc_frontends::load(&dir).unwrap_or_else(|e| panic!("{variant}: {e}"));
    let float = FloatModel::new(&loaded.model, &loaded.weights).unwrap();
    let tokens = ids(&oracle["tokens"]);
    let mut session = float.session();
    let logits = float.forward(&mut session, &tokens, 0).unwrap();
    let (shape, want) = read_npy(&dir.join("logits.npy"));
    assert_eq!(
        shape,
        vec![tokens.len(), loaded.model.hparams.vocab_size],
        "{variant}: logits shape"
    );
    let got: Vec<f32> = logits.iter().copied().collect();
    let (max, bad_rows) = compare_logits(&got, &want, shape[1]);
    assert!(max <= 1e-4, "{variant}: max |Δlogit| = {max}");
    assert!(
        bad_rows.is_empty(),
        "{variant}: top-1 differs at positions {bad_rows:?}"
    );

    // Incremental decoding through the KV cache must give the same logits as
    // the whole-prompt pass, position by position.
    let mut s2 = float.session();
    for (i, &t) in tokens.iter().enumerate() {
        let row = float.forward(&mut s2, &[t], 0).unwrap();
        let (m, _) = compare_logits(
            row.as_slice().unwrap(),
            &want[i * shape[1]..(i + 1) * shape[1]],
            shape[1],
        );
        assert!(
            m <= 1e-4,
            "{variant}: incremental position {i}: max |Δ| = {m}"
        );
    }

    let prompt = ids(&oracle["greedy_prompt"]);
    let max_new = oracle["greedy_max_new"].as_u64().unwrap() as usize;
    let cont = float.generate_greedy(&prompt, max_new, None).unwrap();
    assert_eq!(
        cont,
        ids(&oracle["greedy_continuation"]),
        "{variant}: greedy continuation"
    );
}

macro_rules! oracle_tests {
    ($($name:ident),*) => { $( #[test] fn $name() { check(stringify!($name)); } )* };
}

oracle_tests!(
    llama_gqa,
    llama_mqa_tied,
    llama3_rope,
    mistral,
    mistral_window,
    qwen2,
    gpt2,
    gpt2_noprefix,
    gpt2_tokenizer,
    llama_sharded,
    llama_bf16,
    llama_f16,
    llama_config_v4
);

#[test]
fn every_fixture_directory_is_tested() {
    let mut on_disk: Vec<String> = std::fs::read_dir(fixture("hf"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = VARIANTS.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

#[test]
fn fixture_properties_the_tests_rely_on() {
    // Tied checkpoints really store no lm_head, sharded ones really have shards,
    // and the v4-layout config really uses the 4.x keys.
    let tied = taalasc_frontends::load(&fixture("hf/llama_mqa_tied")).unwrap();
    assert!(tied.model.hparams.tied_embeddings);
    assert!(tied.weights.index.get("lm_head.weight").is_none());
    let sharded = taalasc_frontends::load(&fixture("hf/llama_sharded")).unwrap();
    assert!(sharded.weights.index.files.len() >= 2);
    let v4 = read_json(&fixture("hf/llama_config_v4/config.json"));
    assert!(v4.get("rope_theta").is_some() && v4.get("rope_parameters").is_none());
    let v5 = read_json(&fixture("hf/llama_gqa/config.json"));
    assert!(v5.get("rope_parameters").is_some());
    let bf16 = taalasc_frontends::load(&fixture("hf/llama_bf16")).unwrap();
    assert!(bf16
        .model
        .weights
        .iter()
        .all(|w| w.dtype == taalasc_ir::DType::BF16));
}

#[test]
fn tokenizer_json_matches_python_tokenizers() {
    let dir = fixture("hf/gpt2_tokenizer");
    let oracle = read_json(&dir.join("oracle.json"));
    let loaded = taalasc_frontends::load(&dir).unwrap();
    let tok = loaded.tokenizer.expect("tokenizer.json is loaded");
    let text = oracle["prompt_text"].as_str().unwrap();
    assert_eq!(
        tok.encode(text, false).unwrap(),
        ids(&oracle["prompt_tokens"])
    );
    assert_eq!(tok.decode(&ids(&oracle["prompt_tokens"])).unwrap(), text);
}

/// The tiny Llama written as GGUF the way llama.cpp's converter does (Q/K rows
/// permuted, one F16 and one Q8_0 tensor, an embedded BPE tokenizer), against
/// transformers run on the un-permuted weights.
#[test]
fn gguf_tiny_llama() {
    let dir = fixture("gguf");
    let oracle = read_json(&dir.join("tiny_llama_oracle.json"));
    let loaded = taalasc_frontends::load(&dir.join("tiny_llama.gguf")).unwrap();
    let float = FloatModel::new(&loaded.model, &loaded.weights).unwrap();
    let tokens = ids(&oracle["tokens"]);
    let logits = float.forward(&mut float.session(), &tokens, 0).unwrap();
    let (shape, want) = read_npy(&dir.join("tiny_llama_logits.npy"));
    let got: Vec<f32> = logits.iter().copied().collect();
    let (max, bad) = compare_logits(&got, &want, shape[1]);
    assert!(max <= 1e-4, "max |Δlogit| = {max}");
    assert!(bad.is_empty(), "top-1 differs at {bad:?}");
    let cont = float
        .generate_greedy(
            &ids(&oracle["greedy_prompt"]),
            oracle["greedy_max_new"].as_u64().unwrap() as usize,
            None,
        )
        .unwrap();
    assert_eq!(cont, ids(&oracle["greedy_continuation"]));
    let tok = loaded.tokenizer.expect("GGUF tokenizer");
    assert_eq!(
        tok.encode(oracle["prompt_text"].as_str().unwrap(), false)
            .unwrap(),
        ids(&oracle["prompt_tokens"])
    );
}

/// The bundled example (a small Llama trained by `examples/make_tiny_llama.py`)
/// against transformers: prompt tokenization with BOS, logits, greedy text,
/// and the llama.cpp-convention perplexity of its held-out sample.
#[test]
fn example_tiny_llama() {
    let dir = repo_root().join("examples/tiny-llama");
    let oracle = read_json(&dir.join("oracle.json"));
    let (loaded, float) = taalasc::load_float(&dir).unwrap();
    let tok = loaded.tokenizer.as_ref().unwrap();
    let prompt = tok
        .encode(oracle["prompt_text"].as_str().unwrap(), true)
        .unwrap();
    assert_eq!(prompt, ids(&oracle["prompt_tokens"]));
    let logits = float.forward(&mut float.session(), &prompt, 0).unwrap();
    let (shape, want) = read_npy(&dir.join("logits.npy"));
    let got: Vec<f32> = logits.iter().copied().collect();
    let (max, bad) = compare_logits(&got, &want, shape[1]);
    assert!(
        max <= 1e-4 && bad.is_empty(),
        "max |Δ| {max}, top-1 differs at {bad:?}"
    );
    let n = oracle["greedy_max_new"].as_u64().unwrap() as usize;
    let cont = float
        .generate_greedy(&prompt, n, loaded.model.hparams.eos_token_id)
        .unwrap();
    assert_eq!(cont, ids(&oracle["greedy_continuation"]));
    assert_eq!(
        tok.decode(&cont).unwrap(),
        oracle["greedy_continuation_text"].as_str().unwrap()
    );

    let sample = &oracle["sample_eval"];
    let text = std::fs::read_to_string(dir.join("sample.txt")).unwrap();
    let ids_all = tok.encode(&text, true).unwrap();
    assert_eq!(
        ids_all.len() as u64,
        sample["text_tokens"].as_u64().unwrap()
    );
    let c = taalasc::eval::chunks(&ids_all, 64, loaded.model.hparams.bos_token_id, None);
    let r = taalasc::eval::perplexity(&float, &c, ids_all.len(), true, &|_| {}).unwrap();
    assert_eq!(
        r.tokens_scored as u64,
        sample["tokens_scored"].as_u64().unwrap()
    );
    let want = sample["perplexity"].as_f64().unwrap();
    assert!(
        (r.perplexity / want - 1.0).abs() < 1e-4,
        "{} vs {want}",
        r.perplexity
    );
}
