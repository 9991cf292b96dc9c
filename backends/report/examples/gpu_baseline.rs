//! Prints the report's GPU roofline for Llama 3.1 8B (dim 4096, 32 layers,
//! 32/8 heads of 128, FFN 14336, vocab 128256, untied head) at the
//! contexts of the report's curves:
//!
//! ```sh
//! cargo run -p taalasc-report --example gpu_baseline
//! ```

use taalasc_report::curves::CONTEXTS;
use taalasc_report::gpu::{baseline, GpuModel};

fn main() {
    let params = 8_030_261_248u64;
    let m = GpuModel {
        params,
        weights_per_token: params - 128_256 * 4096,
        kv_values_per_position: 2 * 32 * 8 * 128,
        attn_macs_per_position: 2 * 32 * 128 * 32,
    };
    println!("| GPU | precision | context | max batch | batch | bound | tokens/s per user | aggregate tokens/s | mJ/token | USD/Mtok |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for t in CONTEXTS {
        let g = baseline(m, t as u64);
        for s in &g.series {
            for p in s.points.iter().filter(|p| p.fits) {
                if ![1, 8, 64, 256].contains(&p.batch)
                    && p.batch != s.max_batch.next_power_of_two() / 2
                {
                    continue;
                }
                println!(
                    "| {} | {} | {} | {} | {} | {} | {:.1} | {:.0} | {:.3} | {:.4} |",
                    s.gpu,
                    s.precision,
                    t,
                    s.max_batch,
                    p.batch,
                    p.bound.as_deref().unwrap_or(""),
                    p.tokens_per_s_per_user.unwrap(),
                    p.aggregate_tokens_per_s.unwrap(),
                    p.energy_per_token_j.unwrap() * 1e3,
                    p.usd_per_mtoken.unwrap()
                );
            }
        }
    }
}
