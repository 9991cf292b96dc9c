//! The full llama.cpp-convention perplexity run on SmolLM2-135M (147 chunks of
//! 512 on lee_background.cor), checked against llama.cpp's own figure.
//!
//! Too long for the CI suite (minutes on 2 cores), which pins the first 4
//! chunks against transformers instead (`tests/smollm2.rs`). Run:
//!
//! ```sh
//! cargo bench -p taalasc-tests --bench smollm2_perplexity
//! ```
//!
//! Exits non-zero when the result is not within 0.5% of llama.cpp's 27.1363
//! (`llama-perplexity -c 512` on the F32 dequantization of the same GGUF).

use std::time::Instant;
use taalasc::eval::{chunks, perplexity};

const LLAMA_CPP_PPL: f64 = 27.1363;

fn main() {
    let (loaded, float) = taalasc::load_float(&taalasc_tests::smollm2_gguf()).expect("SmolLM2");
    let text = std::fs::read_to_string(taalasc_tests::lee_text()).unwrap();
    let ids = loaded
        .tokenizer
        .as_ref()
        .unwrap()
        .encode(&text, true)
        .unwrap();
    let c = chunks(&ids, 512, None, None);
    let t = Instant::now();
    let r = perplexity(&float, &c, ids.len(), false, &|d| {
        if d % 10 == 0 {
            eprintln!("  {d}/{} chunks", c.len());
        }
    })
    .unwrap();
    let secs = t.elapsed().as_secs_f64();
    let rel = r.perplexity / LLAMA_CPP_PPL - 1.0;
    println!(
        "SmolLM2-135M float reference: perplexity {:.4} over {} chunks ({} tokens scored) in {secs:.0} s; llama.cpp {LLAMA_CPP_PPL}: {:+.3}%",
        r.perplexity,
        r.chunks,
        r.tokens_scored,
        rel * 100.0
    );
    if r.chunks != 147 || rel.abs() > 0.005 {
        eprintln!("FAIL: expected 147 chunks within 0.5% of {LLAMA_CPP_PPL}");
        std::process::exit(1);
    }
}
