//! `taalasc report`: the system report of a 2-chip build of
//! examples/tiny-llama, with a measured simulation, quality on real text
//! and a quality-versus-area sweep. The report's quality figures must be
//! the ones `taalasc eval` gives for the same chip and chunks; the sweep
//! must show more ROM and less divergence at 8 bits than at 3; the measured
//! figures must be the last `taalasc sim`'s; and the files must be
//! byte-identical when written twice.

use serde_json::Value;
use taalasc_tests::{lee_text, repo_root, taalasc_ok as ok};

#[test]
fn report_of_a_two_chip_build_with_quality_sweep_and_measured_cycles() {
    let dir = tempfile::tempdir().unwrap();
    let chip = dir.path().join("r.chip");
    let c = chip.to_str().unwrap();
    ok(&[
        "build",
        repo_root().join("examples/tiny-llama").to_str().unwrap(),
        "-o",
        c,
        "--lanes",
        "16",
        "--context",
        "32",
        "--users",
        "2",
        "--chips",
        "2",
    ]);
    let sim: Value = serde_json::from_str(&ok(&[
        "sim",
        c,
        "--tokens",
        "1,5,9,100",
        "--tokens",
        "3,3,12",
        "--json",
    ]))
    .unwrap();
    assert_eq!(sim["bit_exact"], true);
    let text = lee_text();
    let t = text.to_str().unwrap();
    let args = [
        "report",
        c,
        "--text",
        t,
        "--ctx",
        "32",
        "--chunks",
        "3",
        "--sweep",
        "s3g32,s8g32",
    ];
    ok(&args);
    let rj = chip.join("report/report.json");
    let html_path = chip.join("report/report.html");
    let first = (
        std::fs::read(&rj).unwrap(),
        std::fs::read(&html_path).unwrap(),
    );
    let r: Value = serde_json::from_slice(&first.0).unwrap();
    let html = String::from_utf8(first.1.clone()).unwrap();

    // Chips and links as built.
    assert_eq!(r["chips"].as_array().unwrap().len(), 2);
    assert_eq!(r["links"].as_array().unwrap().len(), 1);
    // The residual of 64 values at 32 bits plus the 64-bit header.
    assert_eq!(r["link_bits_per_token"], 64 * 32 + 64);

    // Measured figures: the last sim's.
    let m = &r["input"]["measured"];
    assert_eq!(m["bit_exact"], true);
    assert_eq!(m["users"], 2);
    assert_eq!(m["latency_cycles_per_token"], sim["cycles_per_token"]);

    // Quality: what `eval` says about the same chip on the same chunks.
    let e: Value = serde_json::from_str(&ok(&[
        "eval", c, "--text", t, "--ctx", "32", "--chunks", "3", "--json",
    ]))
    .unwrap();
    let e = if e.is_array() { e[0].clone() } else { e };
    let q = &r["input"]["quality"];
    assert_eq!(q["ppl"], e["perplexity"]);
    assert_eq!(q["kl"], e["kl_mean"]);
    assert_eq!(q["top1"], e["top1"]);
    assert_eq!(q["tokens_scored"], e["tokens_scored"]);

    // The sweep: 8-bit weights take more ROM and diverge less than 3-bit.
    let pts = r["input"]["quality_vs_area"].as_array().unwrap();
    assert_eq!(pts.len(), 2);
    let (p3, p8) = (&pts[0], &pts[1]);
    assert_eq!(
        (p3["label"].as_str(), p8["label"].as_str()),
        (Some("s3g32"), Some("s8g32"))
    );
    assert!(p8["rom_mbit"].as_f64() > p3["rom_mbit"].as_f64(), "{pts:?}");
    assert!(p8["bits_per_weight"].as_f64() > p3["bits_per_weight"].as_f64());
    assert!(p8["kl"].as_f64() < p3["kl"].as_f64(), "{pts:?}");

    // The ROM-density sensitivity keeps the 2 chips asked for, and a
    // denser ROM leaves more SRAM for context.
    let sens = r["input"]["rom_density_sensitivity"].as_array().unwrap();
    assert_eq!(sens.len(), 4, "{sens:?}");
    for x in sens {
        assert_eq!(x["chips"], 2);
    }
    let ctx: Vec<u64> = sens
        .iter()
        .map(|x| x["max_context_at_users"].as_u64().unwrap())
        .collect();
    assert!(ctx.windows(2).all(|w| w[0] < w[1]), "{ctx:?}");
    assert!(html.contains("Sensitivity to the mask-ROM density"));

    // Issue 13: the GPU baseline sees the model's shape (2 layers of 4
    // query and 2 KV heads of 32, FFN 192, dim 64, untied head of 512
    // rows): K and V values 2·2·2·32 per position, attention MACs 2·2·128,
    // weights read per token 2·(128·64·2 + 64·64·2 + 3·192·64) + 512·64
    // + one embedding row of 64.
    let inp = &r["input"];
    assert_eq!(inp["kv_values_per_position"], 256);
    assert_eq!(inp["attn_macs_per_position"], 512);
    assert_eq!(inp["weights_per_token"], 2 * 61_440 + 512 * 64 + 64);
    // The curves over context: every context has the stage costs of its
    // last token, the stages of the build; a longer context is slower.
    let cps = inp["context_points"].as_array().unwrap();
    assert_eq!(cps.len(), 5);
    for cp in cps {
        assert_eq!(
            cp["stages"].as_array().unwrap().len(),
            r["stages"].as_array().unwrap().len()
        );
        assert_eq!(
            cp["position"].as_u64().unwrap() + 1,
            cp["context"].as_u64().unwrap()
        );
    }
    let oc = r["curves"]["over_context"].as_array().unwrap();
    assert_eq!(oc.len(), 5);
    let fit: Vec<f64> = oc
        .iter()
        .filter(|p| p["fits"] == true)
        .map(|p| p["tokens_per_s_per_user"].as_f64().unwrap())
        .collect();
    assert!(
        !fit.is_empty() && fit.windows(2).all(|w| w[1] < w[0]),
        "{fit:?}"
    );
    for p in oc.iter().filter(|p| p["fits"] == false) {
        assert!(p["reason"].as_str().unwrap().contains("KV cache"), "{p}");
    }
    // The users curve ends at the users that fit at the built context.
    let ou = r["curves"]["over_users"].as_array().unwrap();
    assert_eq!(ou[0]["users"], 1);
    let max = r["curves"]["max_users_at_context"].as_u64().unwrap();
    assert_eq!(ou.last().unwrap()["users"].as_u64().unwrap(), max.min(4096));
    // The comparison names every kind of row.
    let kinds: Vec<&str> = r["comparison"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"vendor claim") && kinds.iter().any(|k| k.starts_with("roofline")));

    // The clock check: the longest critical path among the units this
    // chip instantiates, each synthesized at its own width (16 lanes × 1
    // row, lines of one word), read from the committed unit table on
    // sky130 here, independently of the cost model's lookup. The serial
    // attention unit was synthesized at head size 64, not tiny-llama's 32:
    // so not every unit is at the design's width.
    let table =
        std::fs::read_to_string(repo_root().join("backends/verilog/synth/units.tsv")).unwrap();
    let at_width = [
        ("tls_matvec", "LANES=16,ROWS=1"),
        ("tls_wfetch", "LANES=16,COLS=1024,ASYM=1,CAW=12,SAW=10"),
        ("tls_embed", "LANES=16,V=1"),
        ("tls_attn", "HD=64,NH=4,NKV=1,CTX=16,HP=1,KP=1,BPC=1"),
        ("tls_norm", "V=1"),
        ("tls_elem", "V=1"),
        ("tls_rope", "V=1"),
        ("tls_out", "V=1,CW=1"),
    ];
    let worst = table
        .lines()
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|f| f[2].starts_with("sky130") && at_width.contains(&(f[0], f[1])))
        .map(|f| (f[6].parse::<f64>().unwrap(), f[0].to_string()))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap();
    let cc = &r["timing"]["clock_check"];
    assert_eq!(cc["evidence"]["unit"], worst.1.as_str(), "{cc}");
    assert_eq!(cc["evidence"]["crit_fo4"].as_f64(), Some(worst.0), "{cc}");
    assert_eq!(cc["evidence"]["at_design_widths"], false, "{cc}");
    assert_eq!(cc["evidence"]["unmeasured"], serde_json::json!([]), "{cc}");
    // hc1: 10 ps per FO4 (an assumption, named), 1 GHz asked.
    let fmax = 1e6 / (worst.0 * 10.0);
    assert!(
        (cc["max_clock_mhz"].as_f64().unwrap() - fmax).abs() < 1e-9 * fmax,
        "{cc}"
    );
    assert_eq!(cc["budget_clock_met"], fmax >= 1000.0);
    assert!(html.contains("Clock check."));

    // The page: one chart per chip, stage cycles, energy, the sweep, two
    // over context and two over users.
    assert_eq!(html.matches("<svg").count(), 2 + 2 + 1 + 2 + 2);
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("<script"));

    // Same input, same bytes.
    ok(&args);
    assert_eq!(std::fs::read(&rj).unwrap(), first.0);
    assert_eq!(std::fs::read(&html_path).unwrap(), first.1);
}

/// `build --estimate` plans from shapes and formats alone, with the same
/// plan, stage costs, partition and report code as a build: its report
/// equals `taalasc report` on the chip actually built (two chips, wide
/// lines, parallel attention, two users), field for field. It writes no
/// chip, and refuses to replace a folder.
#[test]
fn estimate_equals_the_report_of_the_built_chip() {
    let dir = tempfile::tempdir().unwrap();
    let model = repo_root().join("examples/tiny-llama");
    let m = model.to_str().unwrap();
    let flags = [
        "--lanes",
        "8",
        "--rows",
        "4",
        "--context",
        "64",
        "--users",
        "2",
        "--attn-heads",
        "2",
        "--chips",
        "2",
    ];
    let chip = dir.path().join("chip");
    let est = dir.path().join("est");
    ok(&[&["build", m, "-o", chip.to_str().unwrap()][..], &flags[..]].concat());
    ok(&["report", chip.to_str().unwrap()]);
    ok(&[
        &["build", m, "-o", est.to_str().unwrap(), "--estimate"][..],
        &flags[..],
    ]
    .concat());
    let read = |p: std::path::PathBuf| -> Value {
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
    };
    let built = read(chip.join("report/report.json"));
    let estimated = read(est.join("report.json"));
    assert_eq!(built["chips"].as_array().unwrap().len(), 2);
    assert!(built["timing"]["tokens_per_s_per_user"].as_f64().unwrap() > 0.0);
    assert_eq!(estimated, built);
    assert!(!est.join("manifest.json").exists() && !est.join("rtl").exists());
    // A second estimate into the same folder is refused.
    let o = taalasc_tests::taalasc_run(
        &[
            &["build", m, "-o", est.to_str().unwrap(), "--estimate"][..],
            &flags[..],
        ]
        .concat(),
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
}
