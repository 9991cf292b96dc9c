//! Float reference speed on the real SmolLM2-135M (run: `cargo bench -p taalasc-tests --bench float_decode`).
//!
//! Reports prefill and greedy-decode tokens/s, and, as baselines measured in
//! the same run: one pass of the executor's own row kernels
//! (`rows::matmul` of one activation row, on the same rayon pool) over every
//! linear weight in its stored format, the least work one decode step must
//! do with those kernels; and one bare pass of f32 dot products (8 lanes)
//! over f32 copies of the same weights. The ratio decode-step / kernel pass
//! says how much a decode step spends outside the matrix-vector products.

use std::time::Instant;
use taalasc_float::rows::{self, Isa, Matrix};
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
        "bound {} weights in {:.3} s",
        loaded.model.weights.len(),
        t.elapsed().as_secs_f64()
    );
    let threads = rayon::current_num_threads();

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

    // Kernel baseline: one matrix-vector product per linear (the head
    // included), in the stored format, on the executor's pool.
    let mut stored: Vec<Matrix> = Vec::new();
    let mut mats: Vec<(usize, Vec<f32>)> = Vec::new();
    for n in loaded.model.graph.node_indices() {
        if let Op::Linear { weight, .. } = loaded.model.graph[n].op {
            let cols = loaded.model.weight(weight).shape[1];
            let raw = loaded
                .weights
                .raw_rows(weight)
                .unwrap()
                .expect("stored rows");
            stored.push(Matrix::Stored(raw));
            mats.push((cols, loaded.weights.load_f32(weight).unwrap()));
        }
    }
    let isa = Isa::detect();
    let mut kernel = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let mut acc = 0.0f32;
        for m in &stored {
            let x = ndarray::Array2::from_elem((1, m.cols()), 0.5f32);
            acc += rows::matmul(isa, x.view(), m)[[0, 0]];
        }
        std::hint::black_box(acc);
        kernel.push(t.elapsed().as_secs_f64());
    }
    let kernel = median(kernel);
    drop(stored);

    // f32 baseline: one dot product per weight row over f32 copies, single
    // pass, the same number of threads.
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
        "SmolLM2-135M float reference, {threads} threads, {isa:?}, {} linear MACs per token",
        macs
    );
    println!("  prefill (64 tokens):        {pf:8.1} tokens/s");
    println!(
        "  greedy decode (64 tokens):  {dc:8.1} tokens/s  ({:.2} ms/token)",
        1e3 / dc
    );
    println!(
        "  kernels, one pass over the stored weights: {:.2} ms  => decode step / kernels = {:.2}x",
        kernel * 1e3,
        (1.0 / dc) / kernel
    );
    println!(
        "  one f32 pass over f32 copies of all weights: {:.2} ms",
        base * 1e3
    );
}
