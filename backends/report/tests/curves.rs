//! Issue 13's report figures: curves over context and users, the area
//! split, the GPU roofline against FACTS.md's ceilings, and a walk of
//! report.json checking every cited figure has a source or says it is an
//! assumption.
//!
//! The system is the one of tests/report.rs (two chips, three stages,
//! 1 GHz, S = 4, T = 1024), with layer 0 taking `5000 + T` cycles and
//! `2M + 1000·T` SRAM bits at context `T`.

use serde_json::Value;
use taalasc_partition::partition::EgraphStats;
use taalasc_partition::{Budget, ChipCost, LinkCost, Partition, StageCost};
use taalasc_report::curves::CONTEXTS;
use taalasc_report::gpu::{baseline, gpus, roofline_step, GpuModel};
use taalasc_report::{compute, render_html, to_json, ContextStages, ReportInput};

fn budget() -> Budget {
    let mut b = Budget::preset("hc1").unwrap();
    b.name = "test".into();
    b.die_mm2 = 100.0;
    b.sram_mbit_per_mm2 = 10.0;
    b.rom_mbit_per_mm2 = 40.0;
    b.logic_mm2_per_mcell = 1.0;
    b.link_bits_per_cycle = 64;
    b.clock_mhz = 1000.0;
    b.energy.mac_pj = 0.2;
    b.energy.sram_pj_per_bit = 0.1;
    b.energy.rom_pj_per_bit = 0.05;
    b.energy.link_pj_per_bit = 1.0;
    b.energy.static_w_per_mm2 = 0.01;
    b
}

fn stages(kv: u64, t: Option<u64>) -> Vec<StageCost> {
    let st = |name: &str, rom: u64, kv: u64, cells: u64, cycles, macs, rr, sram| StageCost {
        name: name.into(),
        rom_bits: rom,
        sram_bits: 10_000_000 + 4 * 1024 * kv,
        kv_bits_per_position: kv,
        fixed_sram_bits: 10_000_000,
        logic_cells: cells,
        cycles,
        macs,
        rom_read_bits: rr,
        sram_access_bits: sram,
        out_bits: 4096,
    };
    let (cyc, sram) = match t {
        Some(t) => (5000 + t, 2_000_000 + 1000 * t),
        None => (5000, 2_000_000),
    };
    vec![
        st("embed", 400_000_000, 0, 1_000_000, 1000, 0, 1000, 0),
        st(
            "layer 0",
            800_000_000,
            kv,
            4_000_000,
            cyc,
            1_000_000,
            8_000_000,
            sram,
        ),
        st(
            "head",
            1_200_000_000,
            0,
            2_000_000,
            3000,
            500_000,
            4_000_000,
            100_000,
        ),
    ]
}

fn chip(b: &Budget, s: &[StageCost], first: usize, end: usize) -> ChipCost {
    let s2 = &s[first..end];
    let rom: u64 = s2.iter().map(|s| s.rom_bits).sum();
    let sram: u64 = s2.iter().map(|s| s.sram_bits).sum();
    let cells: u64 = s2.iter().map(|s| s.logic_cells).sum();
    let (r, m, l) = (b.rom_mm2(rom), b.sram_mm2(sram), b.logic_mm2(cells));
    ChipCost {
        first,
        end,
        rom_bits: rom,
        sram_bits: sram,
        logic_cells: cells,
        rom_mm2: r,
        sram_mm2: m,
        logic_mm2: l,
        area_mm2: r + m + l,
        utilization: (r + m + l) / b.die_mm2,
        slowest_stage_cycles: s2.iter().map(|s| s.cycles).max().unwrap(),
        link_pins: 0,
    }
}

fn input(kv: u64) -> ReportInput {
    let b = budget();
    let st = stages(kv, None);
    let chips = vec![chip(&b, &st, 0, 2), chip(&b, &st, 2, 3)];
    ReportInput {
        model: "test".into(),
        architecture: "LlamaForCausalLM".into(),
        params: 1_000_000,
        weight_bits: 3_000_000_000,
        bits_per_weight: 4.5,
        lanes: 16,
        users: 4,
        context: 1024,
        budget: b,
        stages: st,
        partition: Partition {
            chips,
            links: vec![LinkCost {
                after_stage: 1,
                bits_per_token: 4160,
                busy_cycles: 65,
                latency_cycles: 20,
            }],
            slowest_stage_cycles: 5000,
            link_bits_per_token: 4160,
            egraph: EgraphStats::default(),
        },
        measured: None,
        quality: None,
        quality_vs_area: vec![],
        rom_density_sensitivity: vec![],
        context_points: CONTEXTS
            .iter()
            .map(|&t| ContextStages {
                context: t,
                position: t - 1,
                stages: stages(kv, Some(t as u64)),
            })
            .collect(),
        weights_per_token: 900_000,
        kv_values_per_position: 128,
        clock_evidence: None,
        attn_macs_per_position: 64,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-30)
}

#[test]
fn curve_over_context_has_the_hand_worked_speed_and_stops_where_kv_does_not_fit() {
    // 100,000 KV bits per position: chip 0 has 100 − 30 − 5 − 2 = 63 mm²
    // = 630 Mbit free, so 6,144 positions fit (614.4 Mbit) and 8,192 do not.
    let r = compute(&input(100_000));
    let c = &r.curves.over_context;
    assert_eq!(
        c.iter().map(|p| p.context).collect::<Vec<_>>(),
        CONTEXTS.to_vec()
    );
    assert_eq!(
        c.iter().map(|p| p.fits).collect::<Vec<_>>(),
        [true, true, true, true, false]
    );
    let why = c[4].reason.as_deref().unwrap();
    assert!(
        why.contains("chip 0") && why.contains("81.92") && why.contains("63.00"),
        "{why}"
    );
    assert_eq!(c[4].tokens_per_s_per_user, None);
    assert_eq!(c[3].max_users, Some(1));
    // Latency 1,000 + (5,000 + T) + 3,000 + 65 + 20 cycles at 1 GHz.
    for p in &c[..4] {
        let l = 9085.0 + p.context as f64;
        assert!(close(p.tokens_per_s_per_user.unwrap(), 1e9 / l), "{p:?}");
        assert!(close(p.kv_sram_mm2, p.context as f64 * 1e5 / 1e7));
        // Dynamic energy: MACs 1.5 M × 0.2 pJ, ROM 12,001,000 × 0.05 pJ,
        // SRAM (2.1 M + 1000·T) × 0.1 pJ, link 4,160 × 1 pJ.
        let dynamic = (1.5e6 * 0.2
            + 12_001_000.0 * 0.05
            + (2_100_000.0 + 1000.0 * p.context as f64) * 0.1
            + 4160.0)
            * 1e-12;
        assert!(close(p.dynamic_j.unwrap(), dynamic), "{p:?}");
        // Static: 0.01 W/mm² × (ROM 60 + logic 7 + fixed SRAM 3 + KV) over f/L.
        let area = 70.0 + p.kv_sram_mm2;
        assert!(close(
            p.energy_per_token_j.unwrap(),
            dynamic + 0.01 * area * l / 1e9
        ));
    }
    // Physics: a longer context is never faster, nor cheaper in energy.
    for w in c[..4].windows(2) {
        assert!(w[1].tokens_per_s_per_user < w[0].tokens_per_s_per_user);
        assert!(w[1].energy_per_token_j > w[0].energy_per_token_j);
        assert!(w[1].kv_sram_mm2 > w[0].kv_sram_mm2);
    }
}

#[test]
fn curve_over_users_runs_to_the_users_that_fit() {
    // 1,000 KV bits per position: 630 Mbit / 1,024,000 = 615 users at T = 1024.
    let r = compute(&input(1000));
    let u = &r.curves.over_users;
    assert_eq!(r.curves.max_users_at_context, Some(615));
    assert_eq!(u.first().unwrap().users, 1);
    assert_eq!(u.last().unwrap().users, 615);
    assert!(u.iter().any(|p| p.users == 4));
    // P(1) = L = 9,085; from 2 users on, the 5,000-cycle stage bounds it.
    assert!(close(u[0].aggregate_tokens_per_s, 1e9 / 9085.0));
    let last = u.last().unwrap();
    assert!(close(last.aggregate_tokens_per_s, 200_000.0));
    assert!(close(last.tokens_per_s_per_user, 200_000.0 / 615.0));
    let area = 70.0 + 615.0 * 1024.0 * 1000.0 / 1e7;
    assert!(close(
        last.energy_per_token_j,
        r.energy.dynamic_j + 0.01 * area / 200_000.0
    ));
    // Physics: more users never lower the aggregate nor raise each user's speed.
    for w in u.windows(2) {
        assert!(w[1].users > w[0].users);
        assert!(w[1].aggregate_tokens_per_s >= w[0].aggregate_tokens_per_s);
        assert!(w[1].tokens_per_s_per_user <= w[0].tokens_per_s_per_user);
    }
}

#[test]
fn area_split_shows_rom_at_100_and_50_and_every_density_has_a_source() {
    let r = compute(&input(1000));
    let a = &r.area_split;
    let c0 = &a.chips[0];
    assert!(close(c0.rom_mm2, 30.0));
    assert!(close(c0.other_sram_mm2, 2.0));
    assert!(close(c0.kv_sram_mm2, 4.0 * 1024.0 * 1000.0 / 1e7));
    assert!(close(c0.logic_mm2, 5.0));
    // The budget's 40 Mbit/mm², then 100 and 50, always.
    let dens: Vec<f64> = c0.rom_at.iter().map(|x| x.rom_mbit_per_mm2).collect();
    assert_eq!(dens, [40.0, 100.0, 50.0]);
    assert!(close(c0.rom_at[1].rom_mm2, 12.0));
    assert!(close(c0.rom_at[2].rom_mm2, 24.0));
    let parts: Vec<&str> = a.densities.iter().map(|d| d.part.as_str()).collect();
    assert_eq!(parts, ["ROM", "KV SRAM", "other SRAM", "logic"]);
    for d in a.densities.iter().chain(&a.references) {
        assert!(!d.source.is_empty(), "{d:?}");
    }
}

/// Llama 3.1 8B: 8.03 B parameters, of which the 128,256 × 4,096
/// embedding table is looked up (one row per token), the rest read.
fn llama8b() -> GpuModel {
    let params = 8_030_261_248u64;
    GpuModel {
        params,
        weights_per_token: params - 128_256 * 4096,
        kv_values_per_position: 2 * 32 * 8 * 128,
        attn_macs_per_position: 2 * 32 * 128 * 32,
    }
}

#[test]
fn gpu_roofline_gives_the_facts_ceilings() {
    let m = llama8b();
    let h200 = gpus().into_iter().find(|g| g.name == "H200 SXM").unwrap();
    // FACTS.md: batch-1 ceilings of an 8B model at 4.8 TB/s: 320 and 640
    // tokens/s at 16 and 8 bits.
    for (bits, ceiling) in [(16, 320.0), (8, 640.0)] {
        let (s, memory_bound) = roofline_step(&h200, &m, bits, 1, 0, 1.0, 1.0);
        assert!(memory_bound);
        let tps = 1.0 / s;
        assert!((tps / ceiling - 1.0).abs() < 0.01, "{bits} bits: {tps}");
    }
    // At 8,192 positions the KV caches cap the batch: (0.9·HBM − 16.06 GB)
    // / (8,192 · 128 KiB) = 52 users on an H100, 103 on an H200.
    let g = baseline(m, 8192);
    let cap = |gpu: &str, p: &str| {
        g.series
            .iter()
            .find(|s| s.gpu == gpu && s.precision == p)
            .unwrap()
            .max_batch
    };
    assert_eq!(cap("H100 SXM", "BF16"), 52);
    assert_eq!(cap("H200 SXM", "BF16"), 103);
    for s in &g.series {
        let fit: Vec<_> = s.points.iter().filter(|p| p.fits).collect();
        assert!(s.points.iter().all(|p| p.fits == (p.batch <= s.max_batch)));
        // Physics: batching raises the aggregate, lowers each user's speed
        // and the energy and price per token.
        for w in fit.windows(2) {
            assert!(w[1].aggregate_tokens_per_s > w[0].aggregate_tokens_per_s);
            assert!(w[1].tokens_per_s_per_user <= w[0].tokens_per_s_per_user);
            assert!(w[1].energy_per_token_j < w[0].energy_per_token_j);
            assert!(w[1].usd_per_mtoken < w[0].usd_per_mtoken);
        }
    }
    // H200 BF16 at batch 1 and 8,192 positions: 15.01 GB of weights and
    // 1.07 GB of KV per step at 4.8 TB/s; 700 W; USD 4 per hour.
    let p = &g.series[2].points[0];
    let step = (m.weights_per_token as f64 * 2.0 + 8192.0 * 65536.0 * 2.0) / 4.8e12;
    assert!(close(p.step_s.unwrap(), step));
    assert!(close(p.energy_per_token_j.unwrap(), 700.0 * step));
    assert!(close(p.usd_per_mtoken.unwrap(), 4.0 / 3600.0 * step * 1e6));
}

/// Numbers directly inside `v` (not in nested objects or arrays).
fn own_numbers(v: &Value) -> Vec<String> {
    v.as_object()
        .map(|o| {
            o.iter()
                .filter(|(_, x)| x.is_number())
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_cited_figure_in_the_json_has_a_source_or_says_assumption() {
    let r = compute(&input(1000));
    let j: Value = serde_json::from_str(&to_json(&r)).unwrap();
    let labelled = |s: &str| !s.trim().is_empty();
    // The budget: every number has an entry in `assumptions`.
    let fields: Vec<(String, String)> = j["assumptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["field"].as_str().unwrap().to_string(),
                a["source"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut stack = vec![(String::new(), j["input"]["budget"].clone())];
    let mut n = 0;
    while let Some((at, v)) = stack.pop() {
        for (k, x) in v.as_object().unwrap() {
            let path = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            if k == "sources" {
                continue;
            }
            if x.is_object() {
                stack.push((path, x.clone()));
            } else if x.is_number() {
                n += 1;
                assert!(
                    fields.iter().any(|(f, s)| *f == path && labelled(s)),
                    "budget figure {path} has no source"
                );
            }
        }
    }
    assert!(n >= 17, "{n}");
    // Each GPU figure has its own source; the roofline's factors are stated.
    for g in j["gpu_baseline"]["gpus"].as_array().unwrap() {
        for k in own_numbers(g) {
            let s = g["sources"][&k].as_str().unwrap_or("");
            assert!(labelled(s), "GPU {} figure {k} has no source", g["name"]);
        }
        let price = g["sources"]["usd_per_hour"].as_str().unwrap();
        assert!(price.starts_with("assumption"), "{price}");
    }
    let ga = &j["gpu_baseline"]["assumptions"];
    for k in own_numbers(&j["gpu_baseline"]) {
        if k != "context" {
            assert!(
                ga[&k].as_str().is_some_and(|s| s.starts_with("assumption")),
                "{k}"
            );
        }
    }
    // Densities, references and comparison rows carry a source; rows say
    // what kind of figure they are.
    for sec in [
        &j["area_split"]["densities"],
        &j["area_split"]["references"],
        &j["comparison"],
    ] {
        for row in sec.as_array().unwrap() {
            assert!(labelled(row["source"].as_str().unwrap_or("")), "{row}");
        }
    }
    let kinds: Vec<&str> = j["comparison"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    for k in ["vendor claim", "simulated after layout (not fabricated)"] {
        assert!(kinds.contains(&k), "{kinds:?}");
    }
    assert!(kinds.iter().any(|k| k.starts_with("roofline model")));
    assert!(kinds.iter().any(|k| k.starts_with("taalasc model")));
    // Budget energies: the cited 7 nm SRAM read, no 45 nm scale.
    let text = to_json(&r);
    assert!(!text.contains("node_scale"));
}

#[test]
fn the_page_shows_the_new_sections_and_stays_byte_identical() {
    let i = input(100_000);
    let a = render_html(&compute(&i));
    let b = render_html(&compute(&i.clone()));
    assert_eq!(a, b);
    for s in [
        "Area by kind",
        "total with ROM at 50 Mbit/mm²",
        "total with ROM at 100 Mbit/mm²",
        "Speed and energy over context",
        "no: chip 0",
        "Users in flight",
        "Against other systems",
        "vendor claim",
        "simulated after layout (not fabricated)",
        "GPU serving baseline",
        "H200 SXM BF16",
        "glennklockwood.com/garden/processors/h100",
    ] {
        assert!(a.contains(s), "missing {s}");
    }
    // 2 chip bars + cycles + energy + 2 context + 2 users charts.
    assert_eq!(a.matches("<svg").count(), 8);
    assert!(!a.contains("http"));
}
