//! Recomputes the committed Llama-3.1-8B-shaped report
//! (`docs/report-llama8b-shape.json`, built before issue 13) with the
//! 7 nm-class energies of the `hc1` preset, and prints the figures issue 13
//! added that need no rebuild: the energy split, the area by kind with the
//! ROM at 100 and 50 Mbit/mm², and the comparison rows. Its budget is in
//! the legacy 45 nm format, so this also shows such a file still loads.
//! The curves over context need the plan: rebuild and rerun `taalasc
//! report` for them (RFC 0004, "Llama-3.1-8B-shaped plan").
//!
//! ```sh
//! cargo run -p taalasc-report --example llama8b_docs
//! ```

use taalasc_partition::Budget;
use taalasc_report::{compute, ReportInput};

fn main() {
    let path = "docs/report-llama8b-shape.json";
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let v: serde_json::Value = serde_json::from_str(&text).expect("report JSON");
    let mut i: ReportInput = serde_json::from_value(v["input"].clone()).expect("report input");
    println!("legacy budget energy, converted: {:?}", i.budget.energy);
    let old = compute(&i).energy;
    i.budget.energy = Budget::preset("hc1").expect("preset").energy;
    // Llama 3.1 8B's shape: the embedding table is looked up, not read.
    i.weights_per_token = i.params - 128_256 * 4096;
    i.kv_values_per_position = 2 * 32 * 8 * 128;
    i.attn_macs_per_position = 2 * 32 * 128 * 32;
    let r = compute(&i);
    let e = &r.energy;
    println!(
        "dynamic energy per token: {:.2} mJ before, {:.2} mJ now (ROM {:.2}, SRAM {:.2}, MAC {:.2}); total at the built users {:.1} mJ",
        old.dynamic_j * 1e3,
        e.dynamic_j * 1e3,
        e.rom_j * 1e3,
        e.sram_j * 1e3,
        e.mac_j * 1e3,
        e.total_j * 1e3
    );
    for c in &r.area_split.chips {
        println!(
            "chip {}: ROM {:.1}, KV SRAM {:.1}, other SRAM {:.1}, logic {:.1} = {:.1} mm2",
            c.chip, c.rom_mm2, c.kv_sram_mm2, c.other_sram_mm2, c.logic_mm2, c.total_mm2
        );
        for x in &c.rom_at {
            println!(
                "  ROM at {} Mbit/mm2: {:.1} mm2, chip {:.1} mm2{}",
                x.rom_mbit_per_mm2,
                x.rom_mm2,
                x.total_mm2,
                if x.fits_die { "" } else { " (over the die)" }
            );
        }
    }
    println!("{}", r.curves.users_limit);
    println!("| system | kind | tokens/s per user | aggregate | mJ/token | USD/Mtok |");
    println!("|---|---|---|---|---|---|");
    let f = |x: Option<f64>, k: f64, d: usize| x.map_or("-".into(), |v| format!("{:.*}", d, v * k));
    for row in &r.comparison {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            row.system,
            row.kind,
            f(row.tokens_per_s_per_user, 1.0, 1),
            f(row.aggregate_tokens_per_s, 1.0, 0),
            f(row.energy_per_token_j, 1e3, 2),
            f(row.usd_per_mtoken, 1.0, 3)
        );
    }
}
