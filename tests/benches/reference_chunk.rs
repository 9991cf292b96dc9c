//! Integer reference speed on SmolLM2-135M: one 512-token chunk scored as
//! `eval` does (logits from position 256), against the float reference on
//! the same chunk in the same run, and decode (one token per call, as `run`
//! generates) on rayon's global pool and on the calling thread alone
//! (`cargo bench -p taalasc-tests --bench reference_chunk`).
//! The chip image is the default build (a4g32/s8g32 imported losslessly).

use std::time::Instant;
use taalasc::build::{build_image, BuildOptions};
use taalasc_reference::Reference;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let (loaded, float) = taalasc::load_float(&taalasc_tests::smollm2_gguf()).expect("SmolLM2");
    let opts = BuildOptions {
        context: 512,
        ..BuildOptions::defaults(&loaded.model)
    };
    let (image, _) = build_image(&loaded, &opts, None).expect("image");
    let t = Instant::now();
    let r = Reference::new(&image, 0).expect("reference");
    let prep = t.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(taalasc_tests::lee_text()).unwrap();
    let ids = loaded
        .tokenizer
        .as_ref()
        .unwrap()
        .encode(&text, true)
        .unwrap();
    let chunk = &ids[..512];
    let (mut tr, mut tf) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let t = Instant::now();
        std::hint::black_box(r.forward(&mut r.session(), chunk, 256).unwrap());
        tr.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        std::hint::black_box(float.forward(&mut float.session(), chunk, 256).unwrap());
        tf.push(t.elapsed().as_secs_f64());
    }
    let (r_s, f_s) = (median(tr), median(tf));
    println!("SmolLM2-135M, one 512-token chunk (logits for 256 positions), median of 3:");
    println!(
        "  integer reference: {r_s:.2} s ({:.0} tokens/s); preparing the image took {prep:.2} s",
        512.0 / r_s
    );
    println!(
        "  float reference:   {f_s:.2} s ({:.0} tokens/s)",
        512.0 / f_s
    );
    println!("  reference / float = {:.2}x", r_s / f_s);
    // Decode: 64 positions one call each, every core and one thread.
    let decode = |r: &Reference| {
        let mut v = Vec::new();
        for _ in 0..3 {
            let mut s = r.session();
            let t = Instant::now();
            for &tok in &ids[..64] {
                std::hint::black_box(r.forward(&mut s, &[tok], 0).unwrap());
            }
            v.push(t.elapsed().as_secs_f64() * 1e3 / 64.0);
        }
        median(v)
    };
    let one = Reference::new(&image, 1).expect("reference");
    let (all_ms, one_ms) = (decode(&r), decode(&one));
    println!(
        "  integer decode, 64 positions: {all_ms:.2} ms/token on {} threads, {one_ms:.2} ms/token on 1 ({:.2}x)",
        rayon::current_num_threads(),
        one_ms / all_ms
    );
}
