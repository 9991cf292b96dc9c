//! The report's arithmetic against figures worked out by hand for a small
//! synthetic system, and the HTML's promises (self-contained, escaped,
//! deterministic).
//!
//! The system: a die of 100 mm², SRAM 10 Mbit/mm², ROM 40 Mbit/mm², logic
//! 1 mm² per million cells, 1 GHz; MAC 0.2 pJ, ROM 0.05 pJ/bit, SRAM 0.1
//! pJ/bit, link 1 pJ/bit, static 0.01 W/mm². Three stages on two chips:
//!
//! | stage | ROM bits | fixed SRAM | KV/pos | cells | cycles | MACs | ROM read | SRAM |
//! |---|---|---|---|---|---|---|---|---|
//! | embed | 400 M | 10 M | 0 | 1 M | 1,000 | 0 | 1,000 | 0 |
//! | layer 0 | 800 M | 10 M | 1,000 | 4 M | 5,000 | 1 M | 8 M | 2 M |
//! | head | 1,200 M | 10 M | 0 | 2 M | 3,000 | 0.5 M | 4 M | 0.1 M |
//!
//! chip 0 = embed + layer 0 (ROM 30, logic 5, SRAM 2 + 4·1024·1000/10⁷ =
//! 2.4096 mm²), chip 1 = head (ROM 30, logic 2, SRAM 1 mm²); one link after
//! layer 0 of 4,096 + 64 bits: 65 busy cycles + 20 latency. S = 4, T = 1024.

use taalasc_partition::partition::EgraphStats;
use taalasc_partition::{Budget, ChipCost, LinkCost, Partition, StageCost};
use taalasc_report::{compute, render_html, Measured, Quality, QualityPoint, ReportInput};

fn budget() -> Budget {
    let mut b = Budget::preset("hc1").unwrap();
    b.name = "test".into();
    b.die_mm2 = 100.0;
    b.sram_mbit_per_mm2 = 10.0;
    b.rom_mbit_per_mm2 = 40.0;
    b.logic_mm2_per_mcell = 1.0;
    b.link_bits_per_cycle = 64;
    b.link_latency_cycles = 20;
    b.clock_mhz = 1000.0;
    b.energy.mac_pj = 0.2;
    b.energy.sram_pj_per_bit = 0.1;
    b.energy.rom_pj_per_bit = 0.05;
    b.energy.link_pj_per_bit = 1.0;
    b.energy.static_w_per_mm2 = 0.01;
    b.check("test").unwrap();
    b
}

#[allow(clippy::too_many_arguments)]
fn stage(
    name: &str,
    rom: u64,
    kv: u64,
    cells: u64,
    cycles: u64,
    macs: u64,
    rom_read: u64,
    sram: u64,
    out: u64,
) -> StageCost {
    let fixed = 10_000_000;
    StageCost {
        name: name.into(),
        rom_bits: rom,
        sram_bits: fixed + 4 * 1024 * kv,
        kv_bits_per_position: kv,
        fixed_sram_bits: fixed,
        logic_cells: cells,
        cycles,
        macs,
        rom_read_bits: rom_read,
        sram_access_bits: sram,
        out_bits: out,
    }
}

fn chip(b: &Budget, stages: &[StageCost], first: usize, end: usize) -> ChipCost {
    let s = &stages[first..end];
    let rom: u64 = s.iter().map(|s| s.rom_bits).sum();
    let sram: u64 = s.iter().map(|s| s.sram_bits).sum();
    let cells: u64 = s.iter().map(|s| s.logic_cells).sum();
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
        slowest_stage_cycles: s.iter().map(|s| s.cycles).max().unwrap(),
        link_pins: 0,
    }
}

fn input() -> ReportInput {
    let b = budget();
    let stages = vec![
        stage("embed", 400_000_000, 0, 1_000_000, 1000, 0, 1000, 0, 4096),
        stage(
            "layer 0",
            800_000_000,
            1000,
            4_000_000,
            5000,
            1_000_000,
            8_000_000,
            2_000_000,
            4096,
        ),
        stage(
            "head",
            1_200_000_000,
            0,
            2_000_000,
            3000,
            500_000,
            4_000_000,
            100_000,
            0,
        ),
    ];
    let chips = vec![chip(&b, &stages, 0, 2), chip(&b, &stages, 2, 3)];
    let partition = Partition {
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
    };
    ReportInput {
        model: "tiny <test> & model".into(),
        architecture: "LlamaForCausalLM".into(),
        params: 1_234_567,
        weight_bits: 2_400_000_000,
        bits_per_weight: 4.5,
        lanes: 16,
        users: 4,
        context: 1024,
        budget: b,
        stages,
        partition,
        measured: None,
        quality: None,
        quality_vs_area: vec![],
        rom_density_sensitivity: vec![],
        context_points: vec![],
        weights_per_token: 0,
        kv_values_per_position: 0,
        clock_evidence: None,
        attn_macs_per_position: 0,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1e-30)
}

macro_rules! assert_close {
    ($a:expr, $b:expr) => {{
        let (a, b) = ($a as f64, $b as f64);
        assert!(close(a, b), "{} = {a}, expected {b}", stringify!($a));
    }};
}

#[test]
fn timing_latency_and_aggregate_tokens_per_s() {
    let r = compute(&input());
    let t = &r.timing;
    // L = 1000 + 5000 + 3000 + 65 + 20.
    assert_eq!(t.latency_cycles, 9085);
    assert_eq!(t.throughput_bound_cycles, 5000);
    assert_eq!(t.bound_by, "stage layer 0");
    assert_eq!(t.max_tokens_in_flight, 3);
    // P = max(5000, 9085 / min(4, 3)) = 5000: bound by the slowest stage.
    assert_close!(t.cycles_per_token, 5000.0);
    assert_close!(t.aggregate_tokens_per_s, 200_000.0);
    assert_close!(t.tokens_per_s_per_user, 1e9 / 9085.0);
    assert_close!(t.tokens_per_s_per_user_at_users, 50_000.0);
    assert_close!(t.users_in_flight, 1.817);
    assert_close!(t.users_to_saturate, 1.817);
    assert_close!(t.peak_aggregate_tokens_per_s, 200_000.0);

    // One user: P = max(5000, 9085 / 1) = L.
    let mut one = input();
    one.users = 1;
    let t1 = compute(&one).timing;
    assert_close!(t1.cycles_per_token, 9085.0);
    assert_close!(t1.aggregate_tokens_per_s, 1e9 / 9085.0);
    assert_close!(t1.users_in_flight, 1.0);

    // Balanced stages: the latency over the tokens in flight sets the pace.
    // L = 3 · 1000 + 85 = 3085; S = 4 users but only 3 stages: P = 3085 / 3.
    let mut even = input();
    for s in &mut even.stages {
        s.cycles = 1000;
    }
    let te = compute(&even).timing;
    assert_eq!(te.latency_cycles, 3085);
    assert_eq!(te.max_tokens_in_flight, 3);
    assert_close!(te.cycles_per_token, 3085.0 / 3.0);
    assert_close!(te.aggregate_tokens_per_s, 1e9 * 3.0 / 3085.0);
    assert_close!(te.users_in_flight, 3.0);
    assert_close!(te.tokens_per_s_per_user_at_users, 1e9 * 3.0 / 3085.0 / 4.0);
    even.users = 2;
    let te = compute(&even).timing;
    assert_close!(te.cycles_per_token, 1542.5);
    assert_close!(te.users_in_flight, 2.0);

    // A link slower than every stage sets the bound.
    let mut slow = input();
    slow.partition.links[0].busy_cycles = 6000;
    let ts = compute(&slow).timing;
    assert_eq!(ts.throughput_bound_cycles, 6000);
    assert_eq!(ts.bound_by, "link after layer 0");
    assert_eq!(ts.latency_cycles, 1000 + 5000 + 3000 + 6000 + 20);
    assert_close!(ts.aggregate_tokens_per_s, 1e9 / 6000.0);

    // Measured next to predicted at the measured user count.
    let mut m = input();
    m.measured = Some(Measured {
        users: 2,
        latency_cycles_per_token: 10_000.0,
        throughput_cycles_per_token: 4_000.0,
        bit_exact: true,
        positions: 8,
        command: "taalasc sim x.chip".into(),
    });
    let tm = compute(&m).timing.measured.unwrap();
    assert_close!(tm.tokens_per_s_per_user, 100_000.0);
    assert_close!(tm.aggregate_tokens_per_s, 250_000.0);
    assert_close!(tm.users_in_flight, 2.5);
    // Predicted at 2 users: max(5000, 9085 / 2 = 4542.5) = 5000.
    assert_close!(tm.predicted_cycles_per_token, 5000.0);
    assert_close!(tm.throughput_vs_predicted, -0.2);
    assert_close!(tm.latency_vs_predicted, 10_000.0 / 9085.0 - 1.0);
}

#[test]
fn clock_checked_against_the_synthesized_path() {
    // No evidence: no check (and the page says so).
    assert!(compute(&input()).timing.clock_check.is_none());
    let ev = |fo4: f64| taalasc_partition::ClockEvidence {
        unit: "tls_attn".into(),
        params: "HP=1".into(),
        library: "lib".into(),
        crit_ns: 1.0,
        crit_fo4: fo4,
        at_design_widths: false,
        unmeasured: vec!["tls_elem".into()],
        node_fo4_ps: 10.0,
        node_fo4_source: "assumption: test".into(),
    };
    // 250 FO4 × 10 ps = 2.5 ns: at most 400 MHz, below the budget's 1 GHz;
    // one user at 400 MHz over L = 9085 cycles.
    let mut i = input();
    i.clock_evidence = Some(ev(250.0));
    let r = compute(&i);
    let c = r.timing.clock_check.as_ref().unwrap();
    assert_close!(c.max_clock_mhz, 400.0);
    assert!(!c.budget_clock_met);
    assert_close!(c.tokens_per_s_per_user_at_max_clock, 400e6 / 9085.0);
    let html = render_html(&r);
    assert!(html.contains("allows at most 400.0 MHz"), "{html}");
    assert!(html.contains("is NOT"), "{html}");
    assert!(
        html.contains("not synthesized at all (their paths are unknown): tls_elem"),
        "{html}"
    );
    assert!(html.contains("only at other widths"), "{html}");
    // Every synthesized unit at the design's width, one unit not at all:
    // only the second caveat.
    let mut exact = ev(250.0);
    exact.at_design_widths = true;
    i.clock_evidence = Some(exact);
    let html = render_html(&compute(&i));
    assert!(html.contains("not synthesized at all"), "{html}");
    assert!(!html.contains("only at other widths"), "{html}");
    // 50 FO4: 2 GHz allowed, the budget's 1 GHz is met and stays the clock.
    i.clock_evidence = Some(ev(50.0));
    let c = compute(&i).timing.clock_check.unwrap();
    assert_close!(c.max_clock_mhz, 2000.0);
    assert!(c.budget_clock_met);
    assert_close!(c.tokens_per_s_per_user_at_max_clock, 1e9 / 9085.0);
}

#[test]
fn context_and_users_that_fit() {
    let r = compute(&input());
    let c0 = &r.chips[0];
    // Free for KV: 100 − 30 ROM − 5 logic − 2 fixed SRAM = 63 mm² = 630 Mbit.
    assert_close!(c0.kv_free_mm2, 63.0);
    assert_eq!(c0.kv_free_bits, 630_000_000);
    assert_eq!(c0.kv_bits_per_position, 1000);
    assert_eq!(c0.fixed_sram_bits, 20_000_000);
    // ⌊630e6 / (4 · 1000)⌋ and ⌊630e6 / (1024 · 1000)⌋ = ⌊615.23⌋.
    assert_eq!(c0.max_context_at_users, Some(157_500));
    assert_eq!(c0.max_users_at_context, Some(615));
    // The built 4 × 1024 cache: 4,096,000 bits at 10 Mbit/mm².
    assert_close!(c0.kv_built_mm2, 0.4096);
    // The head's chip holds no KV cache: it does not limit.
    let c1 = &r.chips[1];
    assert_eq!(c1.kv_bits_per_position, 0);
    assert_eq!(c1.max_context_at_users, None);
    assert_eq!(c1.max_users_at_context, None);
    assert_eq!(r.memory.max_context_at_users, Some(157_500));
    assert_eq!(r.memory.max_users_at_context, Some(615));
    assert_eq!(r.memory.limiting_chip, Some(0));
    assert!(r.memory.built_fits);

    // KV on both chips: the tighter one wins. Chip 1: 100 − 30 − 2 − 1 = 67
    // mm² = 670 Mbit at 3,000 bits per position → ⌊670e6 / 12,000⌋ = 55,833.
    let mut both = input();
    both.stages[2].kv_bits_per_position = 3000;
    let r = compute(&both);
    assert_eq!(r.chips[1].max_context_at_users, Some(55_833));
    assert_eq!(r.chips[1].max_users_at_context, Some(218)); // ⌊670e6 / 3,072,000⌋
    assert_eq!(r.memory.max_context_at_users, Some(55_833));
    assert_eq!(r.memory.max_users_at_context, Some(218));
    assert_eq!(r.memory.limiting_chip, Some(1));

    // A context the free area cannot hold.
    let mut big = input();
    big.context = 200_000;
    assert!(!compute(&big).memory.built_fits);
}

#[test]
fn energy_per_token_and_power() {
    let r = compute(&input());
    let e = &r.energy;
    assert_close!(e.mac_pj, 0.2);
    assert_close!(e.rom_pj_per_bit, 0.05);
    assert_close!(e.sram_pj_per_bit, 0.1);
    // 1.5 M MACs × 0.2 pJ; 12,001,000 ROM bits × 0.05; 2.1 M SRAM bits × 0.1;
    // 4,160 link bits × 1.
    assert_close!(e.mac_j, 300_000e-12);
    assert_close!(e.rom_j, 600_050e-12);
    assert_close!(e.sram_j, 210_000e-12);
    assert_close!(e.link_j, 4_160e-12);
    assert_close!(e.dynamic_j, 1_114_210e-12);
    // Static: 0.01 W/mm² × (37.4096 + 33) mm² = 0.704096 W over 200,000 tokens/s.
    assert_close!(e.static_w, 0.704096);
    assert_close!(e.static_j, 0.704096 / 200_000.0);
    assert_close!(e.total_j, 1.11421e-6 + 3.52048e-6);
    assert_close!(e.total_mj, 4.63469e-3);
    assert_close!(e.system_power_w, 4.63469e-6 * 200_000.0);
    // Per chip: chip 0 runs embed + layer 0 and sends the link.
    let c0_dyn = 300_000e-12 * (1_000_000.0 / 1_500_000.0)
        + (1000.0 + 8e6) * 0.05e-12
        + 2e6 * 0.1e-12
        + 4160e-12;
    assert_close!(r.chips[0].power_w, c0_dyn * 2e5 + 0.374096);
    let c1_dyn = 0.5e6 * 0.2e-12 + 4e6 * 0.05e-12 + 1e5 * 0.1e-12;
    assert_close!(r.chips[1].power_w, c1_dyn * 2e5 + 0.33);
    assert_close!(r.chips[0].power_w + r.chips[1].power_w, e.system_power_w);
}

#[test]
fn cost_per_million_tokens() {
    let r = compute(&input());
    let c = &r.cost;
    // 100 mm²: π·150²/100 − π·300/√200 = 640.21 gross dies, yield e^−0.1,
    // USD 10,000 a wafer, × 2 → USD 34.53 a chip.
    let gross =
        std::f64::consts::PI * 22_500.0 / 100.0 - std::f64::consts::PI * 300.0 / 200f64.sqrt();
    let chip = 10_000.0 / (gross * (-0.1f64).exp()) * 2.0;
    assert!((chip - 34.525).abs() < 0.01, "{chip}");
    assert_close!(c.chip_usd, chip);
    assert_eq!(c.chips, 2);
    assert_close!(c.hardware_usd, 2.0 * chip);
    let seconds = 3.0 * 365.0 * 86_400.0;
    assert_close!(c.capex_usd_per_s, 2.0 * chip / seconds);
    let power = 4.63469e-6 * 200_000.0;
    assert_close!(c.energy_usd_per_s, power / 1000.0 * 0.15 / 3600.0);
    let per_m = (2.0 * chip / seconds + power / 1000.0 * 0.15 / 3600.0) / 200_000.0 * 1e6;
    assert_close!(c.usd_per_mtoken, per_m);
    // About USD 0.0000038 per million tokens for this toy.
    assert!((per_m - 3.842e-6).abs() < 1e-9, "{per_m}");
    assert_close!(c.capex_usd_per_mtoken + c.energy_usd_per_mtoken, per_m);
    assert_eq!(c.utilization, 1.0);
    // Every chip costs a whole die.
    assert_close!(r.chips[1].chip_usd, chip);
}

#[test]
fn chips_links_and_assumptions() {
    let r = compute(&input());
    assert_eq!(r.chips[0].stage_names, vec!["embed", "layer 0"]);
    assert_close!(r.chips[0].area_mm2, 37.4096);
    assert_close!(r.chips[0].utilization, 0.374096);
    assert_close!(r.chips[1].free_mm2, 67.0);
    assert_eq!(r.links[0].from_chip, Some(0));
    assert_eq!(r.links[0].to_chip, Some(1));
    assert_eq!(r.links[0].after_stage_name, "layer 0");
    assert_close!(r.links[0].bytes_per_token, 520.0);
    assert_eq!(r.link_bits_per_token, 4160);
    assert_eq!(r.stages[2].chip, Some(1));
    let a = r
        .assumptions
        .iter()
        .find(|a| a.field == "energy.mac_pj")
        .unwrap();
    assert_eq!(a.kind, taalasc_report::SourceKind::Assumption);
    assert_eq!(a.value, "0.2");
    let h = r
        .assumptions
        .iter()
        .find(|a| a.field == "energy.sram_pj_per_bit")
        .unwrap();
    assert_eq!(h.kind, taalasc_report::SourceKind::Citation);
    assert!(h.source.contains("ISCA 2021"), "{}", h.source);
    assert!(r
        .assumptions
        .iter()
        .any(|a| a.field == "report.utilization"));
    // report.json carries the input and the derived figures.
    let json: serde_json::Value = serde_json::from_str(&taalasc_report::to_json(&r)).unwrap();
    assert_eq!(json["timing"]["latency_cycles"], 9085);
    assert_eq!(json["input"]["users"], 4);
    assert_eq!(json["memory"]["max_users_at_context"], 615);
}

fn full() -> ReportInput {
    let mut i = input();
    i.measured = Some(Measured {
        users: 4,
        latency_cycles_per_token: 9100.0,
        throughput_cycles_per_token: 5010.0,
        bit_exact: true,
        positions: 16,
        command: "taalasc sim t.chip --users 4".into(),
    });
    i.quality = Some(Quality {
        text: "lee_background.cor".into(),
        tokens_scored: 37485,
        ppl: 27.2925,
        float_ppl: 27.1365,
        kl: 0.0072,
        top1: 0.944,
    });
    i.quality_vs_area = vec![
        QualityPoint {
            label: "s8g32h".into(),
            bits_per_weight: 8.268,
            rom_mbit: 1112.0,
            area_mm2: 60.0,
            chips: 1,
            ppl: 27.2781,
            kl: 0.008,
            top1: 0.942,
        },
        QualityPoint {
            label: "a4g32h".into(),
            bits_per_weight: 4.532,
            rom_mbit: 609.6,
            area_mm2: 40.0,
            chips: 1,
            ppl: 28.3787,
            kl: 0.0452,
            top1: 0.856,
        },
        QualityPoint {
            label: "s3g32h".into(),
            bits_per_weight: 3.27,
            rom_mbit: 440.0,
            area_mm2: 33.0,
            chips: 1,
            ppl: 60.1366,
            kl: 0.832,
            top1: 0.506,
        },
    ];
    i
}

#[test]
fn html_has_the_charts_and_key_numbers() {
    let r = compute(&full());
    let html = render_html(&r);
    // One stacked bar per chip, the stage cycles, the energy, the sweep,
    // and tokens/s and energy over users (no context points given).
    assert_eq!(html.matches("<svg").count(), 2 + 3 + 2);
    assert_eq!(html.matches("</svg>").count(), 2 + 3 + 2);
    for s in [
        "200,000",      // aggregate tokens/s
        "110,072",      // tokens/s per user, 1e9 / 9085
        "9,085 cycles", // latency
        "0.004635 mJ",  // energy per token
        "$0.000003842", // cost per million tokens
        "157,500",      // context that fits at 4 users
        "615",          // users that fit at 1,024 positions
        "37.41",        // chip 0 area
        "27.2925",      // perplexity
        "+0.57%",       // vs float
        "94.4%",        // top-1
        "199,601",      // measured aggregate: 1e9 / 5010
        "s3g32h (3.27 b/w)",
        "Perplexity versus area",
        "measured in RTL simulation",
    ] {
        assert!(html.contains(s), "missing {s}");
    }
    // Without measurement, quality and sweep: fewer charts, and it says so.
    let bare = render_html(&compute(&input()));
    assert_eq!(bare.matches("<svg").count(), 2 + 2 + 2);
    assert!(bare.contains("no eval text given"));
    assert!(bare.contains("No sweep"));
    assert!(bare.contains("not simulated"));
}

#[test]
fn html_is_self_contained() {
    let html = render_html(&compute(&full()));
    let lower = html.to_ascii_lowercase();
    for bad in ["http", "<script", "src=", "href=", "@import", "url("] {
        assert!(!lower.contains(bad), "the page contains {bad}");
    }
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.ends_with("</html>\n"));
}

#[test]
fn html_is_deterministic() {
    let a = render_html(&compute(&full()));
    let b = render_html(&compute(&full()));
    assert_eq!(a, b);
    let j1 = taalasc_report::to_json(&compute(&full()));
    let j2 = taalasc_report::to_json(&compute(&full()));
    assert_eq!(j1, j2);
}

#[test]
fn html_escapes_text() {
    let mut i = full();
    i.quality_vs_area[0].label = "x<y".into();
    let html = render_html(&compute(&i));
    assert!(html.contains("tiny &lt;test&gt; &amp; model"));
    assert!(!html.contains("tiny <test>"));
    assert!(html.contains("x&lt;y"));
    assert!(!html.contains("x<y"));
}

#[test]
fn writes_both_files() {
    let dir = std::env::temp_dir().join(format!("taalasc-report-test-{}", std::process::id()));
    let r = compute(&full());
    taalasc_report::write(&r, &dir).unwrap();
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert_eq!(html, render_html(&r));
    let json = std::fs::read_to_string(dir.join("report.json")).unwrap();
    assert_eq!(json, taalasc_report::to_json(&r));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn degenerate_inputs_do_not_panic() {
    let mut i = input();
    i.stages.clear();
    i.partition.chips.clear();
    i.partition.links.clear();
    let r = compute(&i);
    assert_eq!(r.timing.aggregate_tokens_per_s, 0.0);
    assert_eq!(r.memory.max_context_at_users, None);
    let html = render_html(&r);
    assert!(html.contains("</html>"));
}
