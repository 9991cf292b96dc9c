//! Verilator simulation speed of a SmolLM2-135M chip, against the integer
//! reference executing the same tokens in the same run:
//! `cargo build --release --bin taalasc && cargo bench -p taalasc-tests --bench rtl_sim`
//! (the bench drives the release CLI next to it).
//!
//! The chip is SmolLM2's first `LAYERS` decoder layers plus its head (real
//! weights, 16 lanes; set `TAALASC_BENCH_LAYERS=30` for the whole model):
//! built by `taalasc build`, simulated by `taalasc sim --json`, which also
//! checks it bit for bit. The reference runs the same prompt one token at a
//! time, as the chip does.

use std::process::Command;
use std::time::Instant;
use taalasc_image::ChipImage;
use taalasc_reference::Reference;

fn main() {
    let layers: usize = std::env::var("TAALASC_BENCH_LAYERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let dir = tempfile::tempdir().unwrap();
    let chip = dir.path().join("chip");
    let bin = taalasc_tests::taalasc_bin();
    let gguf = taalasc_tests::smollm2_gguf();
    let t = Instant::now();
    let st = Command::new(&bin)
        .args([
            "build",
            gguf.to_str().unwrap(),
            "-o",
            chip.to_str().unwrap(),
        ])
        .args([
            "--layers",
            &layers.to_string(),
            "--context",
            "64",
            "--lanes",
            "16",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let build_s = t.elapsed().as_secs_f64();
    let tokens = [1u32, 504, 3575, 282, 4649];
    let list: Vec<String> = tokens.iter().map(|t| t.to_string()).collect();
    let out = Command::new(&bin)
        .args([
            "sim",
            chip.to_str().unwrap(),
            "--tokens",
            &list.join(","),
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["bit_exact"], true);
    let sim_s = j["sim_seconds"].as_f64().unwrap();
    let cycles = j["cycles_per_token"].as_f64().unwrap();
    // The reference on the same image and tokens, one token per call.
    let image = ChipImage::read(&chip).unwrap();
    let r = Reference::new(&image, 1).unwrap();
    let mut s = r.session();
    let t = Instant::now();
    for &tok in &tokens {
        std::hint::black_box(r.forward(&mut s, &[tok], 0).unwrap());
    }
    let ref_s = t.elapsed().as_secs_f64();
    let n = tokens.len() as f64;
    println!(
        "SmolLM2-135M, first {layers} layers + head, 16 lanes, {} tokens:",
        tokens.len()
    );
    println!(
        "  Verilator: {sim_s:.2} s ({:.3} tokens/s, {:.0} simulated cycles/s); Verilator build {:.0} s; taalasc build {build_s:.1} s",
        n / sim_s,
        n * cycles / sim_s,
        j["build_seconds"].as_f64().unwrap()
    );
    println!(
        "  integer reference (1 thread): {ref_s:.3} s ({:.1} tokens/s)",
        n / ref_s
    );
    println!("  Verilator / reference time = {:.0}x", sim_s / ref_s);
}
