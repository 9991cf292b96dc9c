//! Float reference speed on the real SmolLM2-135M (run: `cargo bench -p taalasc-tests --bench float_decode`).
//!
//! Reports prefill and greedy-decode tokens/s, and, as a baseline measured in
//! the same run, the time of one bare pass of f32 dot products (8 lanes, the
//! same threads) over every weight row of the model: the least work one decode
//! step must do. The ratio
//! decode-step / baseline says how close the executor is to streaming the
//! weights once per token.

use std::time::Instant;
use taalasc_float::FloatModel;
use taalasc_ir::{Op, WeightSource};

/// A plain 8-accumulator dot product (vectorizes), for the baseline.
fn dot8(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let path = taalasc_tests::smollm2_gguf();
    let loaded = taalasc_frontends::load(&path).expect("load SmolLM2");
    let t = Instant::now();
    let float = FloatModel::new(&loaded.model, &loaded.weights).expect("weights");
    eprintln!(
        "dequantized {} weights to f32 in {:.2} s",
        loaded.model.weights.len(),
        t.elapsed().as_secs_f64()
    );
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());

    let prompt: Vec<u32> = (0..64).map(|i| 100 + (i * 37) % 4000).collect();
    let (mut prefill, mut decode) = (Vec::new(), Vec::new());
    let new_tokens = 64;
    for _ in 0..3 {
        let mut s = float.session();
        let t = Instant::now();
        let logits = float.forward(&mut s, &prompt, prompt.len() - 1).unwrap();
        prefill.push(prompt.len() as f64 / t.elapsed().as_secs_f64());
        let mut next = taalasc_float::argmax(logits.row(0).as_slice().unwrap());
        let t = Instant::now();
        for _ in 0..new_tokens {
            let l = float.forward(&mut s, &[next], 0).unwrap();
            next = taalasc_float::argmax(l.row(0).as_slice().unwrap());
        }
        decode.push(new_tokens as f64 / t.elapsed().as_secs_f64());
    }

    // Baseline: one dot product per weight row of every linear (including the
    // head), over f32 copies, single pass, same threads as the executor.
    let mut mats: Vec<(usize, Vec<f32>)> = Vec::new();
    for n in loaded.model.graph.node_indices() {
        if let Op::Linear { weight, .. } = loaded.model.graph[n].op {
            let cols = loaded.model.weight(weight).shape[1];
            mats.push((cols, loaded.weights.load_f32(weight).unwrap()));
        }
    }
    let macs: usize = mats.iter().map(|(_, m)| m.len()).sum();
    let x = vec![0.5f32; 1536];
    let mut base = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let mut acc = 0.0f32;
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|k| {
                    let mats = &mats;
                    let x = &x;
                    s.spawn(move || {
                        let mut a = 0.0f32;
                        for (cols, m) in mats {
                            let rows = m.len() / cols;
                            for r in (k..rows).step_by(threads) {
                                a += dot8(&m[r * cols..(r + 1) * cols], &x[..*cols]);
                            }
                        }
                        a
                    })
                })
                .collect();
            for h in handles {
                acc += h.join().unwrap();
            }
        });
        std::hint::black_box(acc);
        base.push(t.elapsed().as_secs_f64());
    }
    let base = median(base);
    let (pf, dc) = (median(prefill), median(decode));
    println!(
        "SmolLM2-135M float reference, {threads} threads, {} linear MACs per token",
        macs
    );
    println!("  prefill (64 tokens):        {pf:8.1} tokens/s");
    println!(
        "  greedy decode (64 tokens):  {dc:8.1} tokens/s  ({:.2} ms/token)",
        1e3 / dc
    );
    println!(
        "  baseline, one f32 pass over all weights: {:.2} ms  => decode step / baseline = {:.2}x",
        base * 1e3,
        (1.0 / dc) / base
    );
}
