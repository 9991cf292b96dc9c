//! Writes a report for a synthetic SmolLM2-135M-shaped system (30 layers,
//! d = 576, 4 users × 2,048 positions) split by a greedy stand-in for the
//! partition pass over 20 mm² dies, with the README's measured timing and
//! quality figures:
//!
//! ```sh
//! cargo run -p taalasc-report --example synthetic -- /tmp/report-example
//! bash scripts/report-screenshot.sh /tmp/report-example/report.html /tmp/report.png
//! ```
//!
//! The figures are illustrative, not a build of the model.

use taalasc_partition::partition::{EgraphStats, LINK_HEADER_BITS};
use taalasc_partition::{Budget, ChipCost, LinkCost, Partition, StageCost};
use taalasc_report::{compute, write, Measured, Quality, QualityPoint, ReportInput};

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/tmp/taalasc-report-example".into());
    let mut budget = Budget::preset("hc1").expect("preset");
    budget.name = "hc1, 20 mm² dies".into();
    budget.die_mm2 = 20.0;
    budget.sources.insert(
        "die_mm2".into(),
        "assumption: a small die, to show a split".into(),
    );

    let (d, kv_dim, ffn, vocab, layers) = (576u64, 192u64, 1536u64, 49_152u64, 30);
    let (users, context, lanes, bpw) = (4u64, 2048u64, 16u64, 4.532);
    let layer_params = 2 * d * d + 2 * d * kv_dim + 3 * d * ffn;
    let kv = 2 * kv_dim * 8;
    let fixed = 64 * 1024;
    let out_bits = 32 * d;
    let mut stages = vec![StageCost {
        name: "embed".into(),
        rom_bits: (vocab * d) as f64 as u64 * 9 / 2,
        sram_bits: fixed,
        kv_bits_per_position: 0,
        fixed_sram_bits: fixed,
        logic_cells: 40_000,
        cycles: 620,
        macs: 0,
        rom_read_bits: d * 9 / 2,
        sram_access_bits: 2 * 32 * d,
        out_bits,
    }];
    for l in 0..layers {
        stages.push(StageCost {
            name: format!("layer {l}"),
            rom_bits: (layer_params as f64 * bpw) as u64,
            sram_bits: fixed + users * context * kv,
            kv_bits_per_position: kv,
            fixed_sram_bits: fixed,
            logic_cells: 180_000,
            cycles: layer_params / lanes + 1024 * 9 + 3_000,
            macs: layer_params + 1024 * 2 * kv_dim * 3,
            rom_read_bits: (layer_params as f64 * bpw) as u64,
            sram_access_bits: 1024 * kv + 16 * 32 * d,
            out_bits,
        });
    }
    stages.push(StageCost {
        name: "head".into(),
        rom_bits: 4 * 16 * d,
        sram_bits: fixed,
        kv_bits_per_position: 0,
        fixed_sram_bits: fixed,
        logic_cells: 60_000,
        cycles: vocab * d / lanes + 2_000,
        macs: vocab * d,
        rom_read_bits: vocab * d * 9 / 2,
        sram_access_bits: 32 * vocab,
        out_bits: 0,
    });

    // Greedy: fill each die in order (the real pass is exact).
    let area = |s: &StageCost| {
        budget.rom_mm2(s.rom_bits) + budget.sram_mm2(s.sram_bits) + budget.logic_mm2(s.logic_cells)
    };
    let mut cuts = vec![0];
    let mut used = 0.0;
    for (i, s) in stages.iter().enumerate() {
        if used + area(s) > budget.die_mm2 {
            cuts.push(i);
            used = 0.0;
        }
        used += area(s);
    }
    cuts.push(stages.len());
    let chips: Vec<ChipCost> = cuts
        .windows(2)
        .map(|w| {
            let s = &stages[w[0]..w[1]];
            let rom: u64 = s.iter().map(|s| s.rom_bits).sum();
            let sram: u64 = s.iter().map(|s| s.sram_bits).sum();
            let cells: u64 = s.iter().map(|s| s.logic_cells).sum();
            let (r, m, l) = (
                budget.rom_mm2(rom),
                budget.sram_mm2(sram),
                budget.logic_mm2(cells),
            );
            ChipCost {
                first: w[0],
                end: w[1],
                rom_bits: rom,
                sram_bits: sram,
                logic_cells: cells,
                rom_mm2: r,
                sram_mm2: m,
                logic_mm2: l,
                area_mm2: r + m + l,
                utilization: (r + m + l) / budget.die_mm2,
                slowest_stage_cycles: s.iter().map(|s| s.cycles).max().unwrap_or(0),
                link_pins: 2 * (budget.link_bits_per_cycle + 2),
            }
        })
        .collect();
    let links: Vec<LinkCost> = cuts[1..cuts.len() - 1]
        .iter()
        .map(|&c| {
            let bits = stages[c - 1].out_bits + LINK_HEADER_BITS;
            LinkCost {
                after_stage: c - 1,
                bits_per_token: bits,
                busy_cycles: bits.div_ceil(budget.link_bits_per_cycle as u64),
                latency_cycles: budget.link_latency_cycles as u64,
            }
        })
        .collect();
    let partition = Partition {
        slowest_stage_cycles: stages.iter().map(|s| s.cycles).max().unwrap_or(0),
        link_bits_per_token: links.iter().map(|l| l.bits_per_token).sum(),
        chips,
        links,
        egraph: EgraphStats::default(),
    };
    let params = layers * layer_params + vocab * d + 61 * d;
    let sweep = [
        ("uniform 8-bit GPTQ", 8.268, 27.2781, 0.0080, 0.942),
        ("default a4g32", 5.744, 27.2925, 0.0072, 0.944),
        ("uniform 6-bit GPTQ", 6.531, 27.5239, 0.0149, 0.922),
        ("uniform 4-bit GPTQ", 4.532, 28.3787, 0.0452, 0.856),
        ("auto 4.0 GPTQ 128", 4.000, 30.6895, 0.1325, 0.801),
        ("auto 3.5 GPTQ", 3.500, 39.3109, 0.3871, 0.674),
        ("uniform 3-bit GPTQ", 3.270, 60.1366, 0.8320, 0.506),
    ];
    let other_mm2: f64 = partition
        .chips
        .iter()
        .map(|c| c.sram_mm2 + c.logic_mm2)
        .sum();
    let quality_vs_area = sweep
        .iter()
        .map(|&(label, b, ppl, kl, top1)| {
            let rom_mbit = params as f64 * b / 1e6;
            let area_mm2 = rom_mbit / budget.rom_mbit_per_mm2 + other_mm2;
            QualityPoint {
                label: label.into(),
                bits_per_weight: b,
                rom_mbit,
                area_mm2,
                chips: (area_mm2 / budget.die_mm2).ceil() as usize,
                ppl,
                kl,
                top1,
            }
        })
        .collect();
    let input = ReportInput {
        model: "SmolLM2-135M-Instruct (synthetic stage costs)".into(),
        architecture: "LlamaForCausalLM".into(),
        params,
        weight_bits: (params as f64 * bpw) as u64,
        bits_per_weight: bpw,
        lanes: lanes as usize,
        users: users as usize,
        context: context as usize,
        budget,
        stages,
        partition,
        measured: Some(Measured {
            users: 4,
            latency_cycles_per_token: 8_887_132.0,
            throughput_cycles_per_token: 3_780_000.0,
            bit_exact: true,
            positions: 8,
            command: "taalasc sim smollm2.chip --users 4 (one chip, no links)".into(),
        }),
        quality: Some(Quality {
            text: ".cache/data/lee_background.cor".into(),
            tokens_scored: 37_485,
            ppl: 28.3787,
            float_ppl: 27.1365,
            kl: 0.0452,
            top1: 0.856,
        }),
        quality_vs_area,
        rom_density_sensitivity: vec![],
        context_points: vec![],
        weights_per_token: 0,
        kv_values_per_position: 0,
        clock_evidence: None,
        attn_macs_per_position: 0,
    };
    let report = compute(&input);
    write(&report, std::path::Path::new(&dir)).expect("write the report");
    println!(
        "{dir}/report.html: {} chips, {:.1} tokens/s per user, {:.1} aggregate",
        report.cost.chips,
        report.timing.tokens_per_s_per_user,
        report.timing.aggregate_tokens_per_s
    );
}
