//! RTL cross-checks: chips built by `taalasc build` are simulated under
//! Verilator by `taalasc sim` and compared, every unit output and every logit
//! at every position, with the bit-exact reference (which tests/hf_oracle.rs
//! and tests/smollm2.rs hold to transformers and llama.cpp). Also: lint,
//! Yosys `check -assert`, a flipped ROM bit that must be caught, and
//! byte-identical builds.
//!
//! Fixtures: tests/fixtures/rtl/* (tests/oracle/make_rtl_fixtures.py) and
//! examples/tiny-llama. Needs verilator and yosys (scripts/test.sh installs
//! them; a missing tool fails the test with the install command).

use serde_json::Value;
use std::path::Path;
use taalasc_tests::{fixture, output_files, repo_root, smollm2_gguf};

use taalasc_tests::{taalasc_ok as ok, taalasc_run as run};

/// Builds through the library (`taalasc::build`), from the CLI's flags.
fn build(model: &Path, out: &Path, extra: &[&str]) {
    taalasc_tests::build_lib(model, out, extra);
}

/// The simulation of one sequence, through the library (`sim --json`'s object).
fn sim_json(chip: &Path, tokens: &str) -> Value {
    taalasc_tests::sim_lib(chip, &[tokens])
}

fn lint(chip: &Path) {
    taalasc_tests::verilator_lint(chip, "taalasc_chip");
}

/// Builds `model` with `lanes`, lints it, simulates `tokens` and asserts
/// bit-exactness and the cycle model. Returns the sim JSON.
fn cross_check(model: &Path, lanes: usize, tokens: &str, dir: &Path) -> Value {
    cross_check_rows(model, lanes, 1, tokens, dir)
}

/// As [`cross_check`], with `rows` rows per cycle of every matvec unit.
fn cross_check_rows(model: &Path, lanes: usize, rows: usize, tokens: &str, dir: &Path) -> Value {
    cross_check_with(model, (lanes, rows), tokens, dir, &["--context", "32"])
}

/// [`cross_check_rows`] with other build flags than `--context 32`.
fn cross_check_with(
    model: &Path,
    (lanes, rows): (usize, usize),
    tokens: &str,
    dir: &Path,
    extra: &[&str],
) -> Value {
    let chip = dir.join("chip");
    let (lanes_s, rows_s) = (lanes.to_string(), rows.to_string());
    let mut args = vec!["--lanes", lanes_s.as_str(), "--rows", rows_s.as_str()];
    args.extend_from_slice(extra);
    build(model, &chip, &args);
    lint(&chip);
    let j = sim_json(&chip, tokens);
    let n = tokens.split(',').count();
    assert_eq!(j["bit_exact"], true, "{}: {j:#}", model.display());
    assert_eq!(j["first_mismatch"], Value::Null);
    assert_eq!(j["positions"], n);
    let vocab = {
        let m: Value =
            serde_json::from_str(&std::fs::read_to_string(chip.join("manifest.json")).unwrap())
                .unwrap();
        m["hardware"]["plan"]["vocab"].as_u64().unwrap()
    };
    // Every logit and at least one unit output per position were compared.
    assert!(j["values_compared"].as_u64().unwrap() > n as u64 * vocab);
    let measured = j["cycles_per_token"].as_f64().unwrap();
    let formula = j["predicted_cycles_per_token"].as_f64().unwrap();
    // One user, token by token: every token's latency is the formula's
    // (RFC 0005 §The cycle formula), exactly.
    assert_eq!(measured, formula, "cycles {measured} vs formula {formula}");
    assert_eq!(j["lanes"], lanes);
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(chip.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(m["hardware"]["rows"], rows);
    assert_eq!(m["hardware"]["plan"]["rows"], rows);
    j
}

/// The parallel settings of the tiny fixtures beyond the one each test
/// above runs: `(lanes, rows)` of 8 x 4, then whole rows (`lanes` at
/// least every matrix's columns: 256 covers the widest, gpt2's and
/// tiny-llama's 4·64 and 192; 128 the fixtures whose widest is 96) at one
/// row per cycle. Five tokens each: every node at five positions, the
/// sliding window of mistral (4) slides once. The matvec term is exact,
/// so the measured cycles stay within 2% of the formula.
fn wide_settings(model: &Path, whole: usize, tokens: &str) {
    // Whole rows at one row per cycle (several rows per cycle are the
    // 8 x 4 setting): the Verilator build grows with lanes x rows, and the
    // suite has a time budget (RFC 0005 §Status).
    for (lanes, rows) in [(8, 4), (whole, 1)] {
        let dir = tempfile::tempdir().unwrap();
        let t0 = std::time::Instant::now();
        let j = cross_check_rows(model, lanes, rows, tokens, dir.path());
        let measured = j["cycles_per_token"].as_f64().unwrap();
        let formula = j["predicted_cycles_per_token"].as_f64().unwrap();
        assert_eq!(
            measured,
            formula,
            "{}: lanes {lanes} rows {rows}: cycles against the formula",
            model.display()
        );
        println!(
            "{} lanes {lanes} rows {rows}: bit-exact, {measured} cycles/token (formula {formula}), {:.1} s",
            model.display(),
            t0.elapsed().as_secs_f64()
        );
    }
}

#[test]
fn tiny_llama_gqa_bit_exact_8x4_and_whole_rows() {
    wide_settings(&repo_root().join("examples/tiny-llama"), 256, "1,5,9,100,7");
}

#[test]
fn tied_mqa_llama_bit_exact_8x4_and_whole_rows() {
    wide_settings(&fixture("rtl/llama_tied_mqa"), 128, "1,5,9,70,7");
}

#[test]
fn qwen2_biases_bit_exact_8x4_and_whole_rows() {
    wide_settings(&fixture("rtl/qwen2_bias"), 128, "1,5,9,70,7");
}

#[test]
fn gpt2_bit_exact_8x4_and_whole_rows() {
    wide_settings(&fixture("rtl/gpt2"), 256, "1,5,9,70,7");
}

#[test]
fn mistral_window_bit_exact_8x4_and_whole_rows() {
    wide_settings(&fixture("rtl/mistral_window"), 128, "1,5,9,70,7");
}

#[test]
fn tiny_llama_gqa_bit_exact_and_a_flipped_rom_bit_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let j = cross_check(
        &repo_root().join("examples/tiny-llama"),
        16,
        "1,5,9,100,7,3,3,12,40,41,2,300",
        dir.path(),
    );
    assert!(
        j["mac_utilization"].as_f64().unwrap() >= 0.90,
        "MAC utilization {j:#}"
    );
    // Flip one bit of layer 0's q projection ROM: the sign bit of the code
    // of row 0, column 0 (lane 0 of the first word, bits 3..0; 4-bit codes).
    // The code moves by 8, so output 0 moves by 8·a_0·d. The cross-check
    // must stop at that node, position 0, element 0, and the CLI must exit 1.
    let chip = dir.path().join("chip");
    let rom = chip.join("rom/e1_layers_0_attn_q_weight.hex");
    let text = std::fs::read_to_string(&rom).unwrap();
    let first = text.lines().next().unwrap();
    let last = first.len() - 1;
    let digit = u8::from_str_radix(&first[last..], 16).unwrap() ^ 0x8;
    let flipped = format!("{}{digit:x}", &first[..last]);
    std::fs::write(&rom, text.replacen(first, &flipped, 1)).unwrap();
    // sim compiles only the RTL it generates unless asked to take the
    // folder's own (`--rtl-from-folder`).
    let o = run(&["sim", chip.to_str().unwrap(), "--tokens", "1,5,9"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("rom/e1_layers_0_attn_q_weight.hex differs"),
        "{err}"
    );
    let o = run(&[
        "sim",
        chip.to_str().unwrap(),
        "--tokens",
        "1,5,9",
        "--rtl-from-folder",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains(
            "MISMATCH at user 0 position 0: node `layers.0.attn.q` (engine 1, unit matvec), element 0"
        ),
        "{out}"
    );
}

#[test]
fn tied_mqa_llama_bit_exact_32_lanes() {
    let dir = tempfile::tempdir().unwrap();
    cross_check(
        &fixture("rtl/llama_tied_mqa"),
        32,
        "1,5,9,70,7,3,3,12,40,41",
        dir.path(),
    );
}

#[test]
fn qwen2_biases_bit_exact_64_lanes() {
    let dir = tempfile::tempdir().unwrap();
    cross_check(
        &fixture("rtl/qwen2_bias"),
        64,
        "1,5,9,70,7,3,3,12,40,41",
        dir.path(),
    );
}

#[test]
fn gpt2_layernorm_gelu_positions_bit_exact_4_lanes() {
    let dir = tempfile::tempdir().unwrap();
    cross_check(
        &fixture("rtl/gpt2"),
        4,
        "1,5,9,70,7,3,3,12,40,41",
        dir.path(),
    );
}

#[test]
fn mistral_sliding_window_bit_exact_8_lanes() {
    // Ten positions with a window of 4: the window slides six times.
    let dir = tempfile::tempdir().unwrap();
    cross_check(
        &fixture("rtl/mistral_window"),
        8,
        "1,5,9,70,7,3,3,12,40,41",
        dir.path(),
    );
}

/// `Row8` scales (8-bit `n_g` plus row exponents, decoded by `tls_wfetch`)
/// in every layout: asymmetric linear layers at 64 lanes (a chunk covers
/// two groups), 64-column groups (a chunk lies in one group), a symmetric
/// whole-row table (one scale per row), and the packed macros equal to the
/// format's bits; at one row per cycle and at 4 rows per word (every macro
/// word holds 4 row slices, `tls_wfetch` at `ROWS = 4`).
#[test]
fn row8_scales_bit_exact_64_lanes() {
    for rows in [1, 4] {
        let dir = tempfile::tempdir().unwrap();
        let t0 = std::time::Instant::now();
        cross_check_with(
            &repo_root().join("examples/tiny-llama"),
            (64, rows),
            "1,5,9,100,7,3",
            dir.path(),
            &[
                "--context",
                "8",
                "--format",
                "a4g32h",
                "--table-format",
                "s8rowh",
                "--layer-format",
                "layers.1.*=s3g64h",
            ],
        );
        let chip = dir.path().join("chip");
        let m: Value =
            serde_json::from_str(&std::fs::read_to_string(chip.join("manifest.json")).unwrap())
                .unwrap();
        let mb = &m["hardware"]["macro_bits"];
        // tiny-llama's rows are multiples of 4: no padding rows either.
        assert_eq!(mb["weight_rom_stored"], mb["weight_rom_packed"], "{mb:#}");
        assert!(chip.join("rom/e1_layers_0_attn_q_weight.e.hex").is_file());
        let engine1 = std::fs::read_to_string(chip.join("rtl/taalasc_engine_1.v")).unwrap();
        assert!(
            engine1.contains(&format!("tls_wfetch #(.LANES(64), .ROWS({rows}), .B(4)")),
            "tls_wfetch at ROWS = {rows}"
        );
        println!(
            "Row8, 64 lanes x {rows} rows: {:.1} s",
            t0.elapsed().as_secs_f64()
        );
    }
}

/// The real SmolLM2-135M weights (Q4_1 imported losslessly, Q8_0
/// embedding/head), first 2 of its 30 layers plus the 49,152-row head.
#[test]
fn smollm2_two_real_layers_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let chip = dir.path().join("smol2");
    build(
        &smollm2_gguf(),
        &chip,
        &["--layers", "2", "--context", "64", "--lanes", "16"],
    );
    lint(&chip);
    let j = sim_json(&chip, "1,504,3");
    assert_eq!(j["bit_exact"], true, "{j:#}");
    assert_eq!(j["positions"], 3);
    assert!(j["mac_utilization"].as_f64().unwrap() >= 0.90, "{j:#}");
    let measured = j["cycles_per_token"].as_f64().unwrap();
    let formula = j["predicted_cycles_per_token"].as_f64().unwrap();
    assert_eq!(measured, formula, "cycles per token against the formula");
}

/// The whole SmolLM2-135M (30 layers, 134.5 M weights in ROM) at a wide
/// setting (64 lanes x 4 rows: 256 MACs per cycle per engine), two users
/// in flight: every position of both users bit-exact against each user's
/// own reference run, and every token's latency and the run's total
/// cycles equal to the token-flow model (RFC 0005). Fifteen layers share
/// each of two layer engines (`--layers-per-engine 15`: weight banks 15
/// matrices deep, 30 KV regions in one attention unit), so the two users'
/// tokens pass each other between the engines, and the Verilator model has
/// three engines instead of 31. The benchmark `smollm2_wide` runs 16
/// tokens at 512 MACs and times them.
#[test]
fn smollm2_full_model_wide_two_users_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let chip = dir.path().join("smol");
    build(
        &smollm2_gguf(),
        &chip,
        &[
            "--context",
            "16",
            "--lanes",
            "64",
            "--rows",
            "4",
            "--users",
            "2",
            "--layers-per-engine",
            "15",
        ],
    );
    let j = taalasc_tests::sim_lib(&chip, &["1,504", "3575"]);
    assert_eq!(j["bit_exact"], true, "{j:#}");
    assert_eq!(j["first_mismatch"], Value::Null);
    assert_eq!(j["positions"], 3, "{j:#}");
    assert_eq!(j["flow_model"]["exact"], true, "{j:#}");
    // 30 layers of 3,538,944 weights and the 28,311,552-weight head at
    // 256 weights per cycle: no token can be faster than that.
    let ideal = (30.0 * 3_538_944.0 + 28_311_552.0) / 256.0;
    for t in j["per_token"].as_array().unwrap() {
        let c = t["total"].as_f64().unwrap();
        assert!(c > ideal, "{c} cycles vs the ideal {ideal}");
    }
}

#[test]
fn rtl_build_is_byte_identical_and_snapshotted() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let model = fixture("rtl/llama_tied_mqa");
    build(&model, &a, &["--lanes", "4", "--context", "8"]);
    build(&model, &b, &["--lanes", "4", "--context", "8"]);
    let (fa, fb) = (output_files(&a), output_files(&b));
    assert!(fa.len() > 20, "{} files", fa.len());
    assert_eq!(
        fa.iter().map(|f| &f.0).collect::<Vec<_>>(),
        fb.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    for ((p, x), (_, y)) in fa.iter().zip(&fb) {
        assert!(x == y, "{p} differs between two builds");
    }
    // Snapshots record the emitted design of the smallest model: the I/O
    // engine, a layer engine, the chip top and the hardware manifest.
    for f in ["taalasc_engine_0.v", "taalasc_engine_1.v", "taalasc_chip.v"] {
        let text = std::fs::read_to_string(a.join("rtl").join(f)).unwrap();
        insta::assert_snapshot!(f, text);
    }
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("manifest.json")).unwrap()).unwrap();
    insta::assert_json_snapshot!("manifest_hardware", m["hardware"]);
}

#[test]
fn yosys_synthesizes_an_engine_with_check_assert() {
    let dir = tempfile::tempdir().unwrap();
    let chip = dir.path().join("chip");
    build(
        &repo_root().join("examples/tiny-llama"),
        &chip,
        &["--lanes", "4", "--context", "8"],
    );
    // Engine 1 holds every unit a Llama layer needs (matvec, norm, RoPE,
    // attention, elementwise); macros are blackboxes.
    let out = ok(&["synth", chip.to_str().unwrap(), "--engine", "1", "--json"]);
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["check_passed"], true);
    let modules = j["modules"].as_object().unwrap();
    let cells = |unit: &str| -> u64 {
        modules
            .iter()
            .filter(|(k, _)| k.ends_with(unit))
            .map(|(_, v)| v["cells"].as_u64().unwrap())
            .sum()
    };
    for unit in ["tls_matvec", "tls_attn", "tls_norm", "tls_rope", "tls_elem"] {
        assert!(cells(unit) > 1000, "{unit}: {} cells", cells(unit));
    }
    // The weight ROMs stay macros (blackbox cells), not gates.
    let engine = &modules["taalasc_engine_1"];
    assert!(
        engine["by_type"]["tls_rom"].as_u64().unwrap() >= 7,
        "{engine:#}"
    );
    // The result is recorded in report.json, with the macro bit counts.
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(chip.join("report.json")).unwrap()).unwrap();
    assert_eq!(
        r["synth"]["taalasc_engine_1"]["total_cells"],
        j["total_cells"]
    );
    assert!(r["macro_bits"]["weight_rom_packed"].as_u64().unwrap() > 100_000);
}

#[test]
fn sim_rejects_a_chip_without_rtl() {
    let dir = tempfile::tempdir().unwrap();
    let chip = dir.path().join("chip");
    build(
        &repo_root().join("examples/tiny-llama"),
        &chip,
        &["--no-rtl"],
    );
    let o = run(&["sim", chip.to_str().unwrap(), "--tokens", "1"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no RTL in this chip folder"), "{err}");
    let tiny = repo_root().join("examples/tiny-llama");
    // Bad flags, each to a new path (an existing chip needs --force).
    let other = dir.path().join("other");
    let o = run(&[
        "build",
        tiny.to_str().unwrap(),
        "-o",
        other.to_str().unwrap(),
        "--layers",
        "3",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && err
                .contains("field `layers`: asked for the first 3 decoder layers, the model has 2"),
        "{err}"
    );
    let o = run(&[
        "build",
        repo_root().join("examples/tiny-llama").to_str().unwrap(),
        "-o",
        other.to_str().unwrap(),
        "--lanes",
        "3",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("--lanes 3: expected a power of two"),
        "{err}"
    );
    assert!(!other.exists(), "a failed build left {}", other.display());
}

/// The CLI with a relative chip path, run from the chip's parent folder
/// (as `scripts/example.sh` does): Verilator's make and the simulation run
/// in other folders, so every path `sim` hands on must be absolute.
#[test]
fn sim_takes_a_relative_chip_path() {
    let dir = tempfile::tempdir().unwrap();
    build(
        &repo_root().join("examples/tiny-llama"),
        &dir.path().join("rel.chip"),
        &["--lanes", "16", "--context", "8"],
    );
    let o = std::process::Command::new(taalasc_tests::taalasc_bin())
        .args(["sim", "rel.chip", "--tokens", "1,5,9"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.contains("bit-exact: 1 user(s), 3 positions"),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn vcd_waves_are_dumped() {
    let dir = tempfile::tempdir().unwrap();
    let chip = dir.path().join("chip");
    build(
        &fixture("rtl/llama_tied_mqa"),
        &chip,
        &["--lanes", "8", "--context", "8"],
    );
    let vcd = dir.path().join("waves.vcd");
    let j: Value = serde_json::from_str(&ok(&[
        "sim",
        chip.to_str().unwrap(),
        "--tokens",
        "1,2",
        "--json",
        "--vcd",
        vcd.to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(j["bit_exact"], true);
    let text = std::fs::read_to_string(&vcd).unwrap();
    assert!(text.contains("$enddefinitions"));
    assert!(text.contains(" out_logit ") && text.contains(" in_token "));
    // One timestamp per half cycle of the whole run.
    let cycles: u64 = j["per_token"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["total"].as_u64().unwrap())
        .sum();
    let stamps = text.lines().filter(|l| l.starts_with('#')).count() as u64;
    assert!(
        stamps >= 2 * cycles,
        "{stamps} timestamps for {cycles} cycles"
    );
}

/// Three users in three slots, their tokens interleaved round-robin; each
/// user's values must equal the reference run of that user ALONE. Then the
/// same chip with the slot offset of the KV cache removed (every user
/// writes the same region) must fail: the check sees a leak.
#[test]
fn three_interleaved_users_do_not_leak() {
    let dir = tempfile::tempdir().unwrap();
    let chip = dir.path().join("chip");
    build(
        &repo_root().join("examples/tiny-llama"),
        &chip,
        &["--lanes", "16", "--context", "16", "--users", "3"],
    );
    let args = [
        "sim",
        chip.to_str().unwrap(),
        "--prompt",
        "The capital of France is",
        "--prompt",
        "Police said",
        "--tokens",
        "1,300,301,302,303,304,305,306",
        "--json",
    ];
    let j: Value = serde_json::from_str(&ok(&args)).unwrap();
    assert_eq!(j["bit_exact"], true, "{j:#}");
    let users = j["users"].as_array().unwrap();
    assert_eq!(users.len(), 3);
    for u in users {
        assert_eq!(u["bit_exact"], true, "{u:#}");
        assert!(u["positions"].as_u64().unwrap() >= 2);
    }
    assert_eq!(users[2]["positions"], 8);
    // A user's next token waits for its previous logits, but the other
    // users' tokens fill the pipeline meanwhile: the chip finishes a token
    // every `throughput` cycles while each takes `latency` cycles.
    let latency = j["cycles_per_token"].as_f64().unwrap();
    let throughput = j["throughput_cycles_per_token"].as_f64().unwrap();
    assert!(
        latency > 1.5 * throughput,
        "latency {latency} vs throughput {throughput}"
    );
    // Break the slot isolation in the emitted attention unit.
    let attn = chip.join("rtl/tls_attn.v");
    let text = std::fs::read_to_string(&attn).unwrap();
    let line = "wire [    31:0] slot_base32 = {24'd0, cfg_slot} * SLOT_WORDS;";
    assert!(text.contains(line));
    std::fs::write(
        &attn,
        text.replace(line, "wire [    31:0] slot_base32 = 32'd0;"),
    )
    .unwrap();
    let o = run(&[&args[..args.len() - 1], &["--rtl-from-folder"]].concat());
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("MISMATCH at user 0 position 1: node `layers.0.attn` (engine 1, unit attn)"),
        "{out}"
    );
}

/// SmolLM2's first two layers with two users: the head (1.77 M cycles) is
/// the slowest stage, so a token finished by the last layer waits for it
/// while the other user's next token waits to enter; both then claim the
/// I/O engine in the same cycle. The controller gives the handoff
/// priority; every user stays bit-exact and the harness's per-cycle check
/// of the scheduling invariant (`dbg_conflict`) never fires. With that
/// priority removed from the emitted RTL the check must fire.
#[test]
fn accept_and_handoff_never_claim_one_engine() {
    let dir = tempfile::tempdir().unwrap();
    let chip = dir.path().join("chip");
    build(
        &smollm2_gguf(),
        &chip,
        &[
            "--layers",
            "2",
            "--context",
            "16",
            "--lanes",
            "16",
            "--users",
            "2",
        ],
    );
    let args = [
        "sim",
        chip.to_str().unwrap(),
        "--tokens",
        "1,504,3",
        "--tokens",
        "1,282,4649",
        "--json",
    ];
    let j: Value = serde_json::from_str(&ok(&args)).unwrap();
    assert_eq!(j["bit_exact"], true, "{j:#}");
    assert!(j["tokens_in_flight"].as_f64().unwrap() > 1.3, "{j:#}");
    let top = chip.join("rtl/taalasc_chip.v");
    let text = std::fs::read_to_string(&top).unwrap();
    assert!(text.contains(" && !hand_e0 && !err;"));
    std::fs::write(&top, text.replace(" && !hand_e0 && !err;", " && !err;")).unwrap();
    let o = run(&[&args[..], &["--rtl-from-folder"]].concat());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "the race went unnoticed");
    assert!(err.contains("two stages claim one engine"), "{err}");
}

/// Attention with heads and KV positions in parallel (`--attn-heads 2
/// --attn-positions 4`: both query heads of a KV head per pass, four
/// positions per cycle from a cache banked by position), two users, to
/// the end of a 16-position context: bit-exact, lint-clean, the
/// parallelism recorded in the manifest and passed to `tls_attn`, and the
/// replicated exp2 tables charged.
#[test]
fn tiny_llama_parallel_attention_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let chip = dir.path().join("chip");
    let flags = ["--lanes", "16", "--context", "16", "--users", "2"];
    let par = ["--attn-heads", "2", "--attn-positions", "4"];
    build(
        &repo_root().join("examples/tiny-llama"),
        &chip,
        &[&flags[..], &par[..]].concat(),
    );
    lint(&chip);
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(chip.join("manifest.json")).unwrap())
            .unwrap();
    let plan = &m["hardware"]["plan"];
    assert_eq!(
        plan["attn_par"],
        serde_json::json!({"heads": 2, "positions": 4, "blocks": 1})
    );
    let engine1 = std::fs::read_to_string(chip.join("rtl/taalasc_engine_1.v")).unwrap();
    assert!(engine1.contains(".HP(2), .KP(4), .BPC(1)"), "{engine1}");
    // KV bits as the RTL instantiates them: 2 caches x KP*BPC banks x
    // SLOTS*NKV*(CTX/KP)*(BPH/BPC) words x 264 bits, per layer (tiny-llama:
    // 2 layers, 2 KV heads of 32), the same as one bank would hold; and
    // 2*4 - 1 extra exp2 tables of 4096 x 16 bits per layer.
    let mb = &m["hardware"]["macro_bits"];
    assert_eq!(mb["kv_sram"], 2 * 2 * 4 * (2 * 2 * (16 / 4)) * 264);
    let serial = dir.path().join("serial");
    build(&repo_root().join("examples/tiny-llama"), &serial, &flags);
    let ms: Value =
        serde_json::from_str(&std::fs::read_to_string(serial.join("manifest.json")).unwrap())
            .unwrap();
    let msb = &ms["hardware"]["macro_bits"];
    assert_eq!(msb["kv_sram"], mb["kv_sram"]);
    assert_eq!(
        mb["table_rom"].as_u64().unwrap() - msb["table_rom"].as_u64().unwrap(),
        2 * 7 * 4096 * 16
    );
    // The widest line (`--rows 256`, lines of 12,288 bits, RoPE in head
    // mode, attention converting a whole head per step) elaborates and
    // lints clean; its bits are checked by the unit tests (a whole chip at
    // R = 256 costs Verilator gigabytes even at 2 lanes).
    let widest = dir.path().join("widest");
    build(
        &repo_root().join("examples/tiny-llama"),
        &widest,
        &["--lanes", "2", "--rows", "256", "--context", "16"],
    );
    lint(&widest);
    let j = taalasc_tests::sim_lib(
        &chip,
        &["1,5,9,100,7,3,3,12,40,41,2,300,8,9,10,11", "4,2,77"],
    );
    assert_eq!(j["bit_exact"], true, "{j:#}");
    assert_eq!(j["first_mismatch"], Value::Null);
    // Two users interleaved: every token's latency and the run's total
    // are the token-flow model's, with the parallel attention formula.
    assert_eq!(j["flow_model"]["exact"], true, "{j:#}");
}

/// Two decoder layers on one engine (`--layers-per-engine 2`): one
/// matrix-vector unit, attention unit and set of element units serve both
/// layers in turn, the layers' matrices stacked in weight banks by shape
/// and their KV caches in regions of one attention unit. Two users
/// interleaved stay bit-exact at every unit output and logit, the flow
/// model is exact, and the chip stores the same bits as one engine per
/// layer. Mutations: dropping the layer from the attention unit's KV
/// region (`slot * 8'd2`) fails at `layers.0.attn`, position 1; dropping a
/// stacked bank's base word (`+ d_cbase`) fails at `layers.0.attn.v`.
#[test]
fn tiny_llama_layers_share_an_engine_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let flags = [
        "--lanes",
        "16",
        "--rows",
        "4",
        "--context",
        "16",
        "--users",
        "2",
    ];
    let model = repo_root().join("examples/tiny-llama");
    let shared = dir.path().join("shared");
    build(
        &model,
        &shared,
        &[&flags[..], &["--layers-per-engine", "2"][..]].concat(),
    );
    let own = dir.path().join("own");
    build(&model, &own, &flags);
    let manifest = |chip: &Path| -> Value {
        serde_json::from_str(&std::fs::read_to_string(chip.join("manifest.json")).unwrap()).unwrap()
    };
    let (ms, mo) = (manifest(&shared), manifest(&own));
    let plan = &ms["hardware"]["plan"];
    assert_eq!(plan["layers_per_engine"], 2);
    let engines = plan["engines"].as_array().unwrap();
    assert_eq!(engines.len(), 2, "the I/O engine and one for both layers");
    assert_eq!(engines[1]["role"], "layers 0-1");
    // One attention unit with a KV region per layer and user; the seven
    // matrices of each layer in five banks (q; k and v; o; gate and up;
    // down), each bank two or four matrices deep.
    let attns = engines[1]["attns"].as_array().unwrap();
    assert_eq!(attns.len(), 1);
    assert_eq!(attns[0]["layers"], 2);
    let banks: Vec<usize> = engines[1]["banks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["mats"].as_array().unwrap().len())
        .collect();
    assert_eq!(banks, [2, 4, 2, 4, 2]);
    // The same weight ROM and KV bits as one engine per layer; one RoPE
    // table (16 positions x 4 words of 4 pairs) and one set of unit
    // tables instead of one per layer.
    let (bs, bo) = (&ms["hardware"]["macro_bits"], &mo["hardware"]["macro_bits"]);
    for k in ["weight_rom_stored", "weight_rom_packed", "kv_sram"] {
        assert_eq!(bs[k], bo[k], "{k}");
    }
    let bits = |m: &Value, k: &str| m[k].as_u64().unwrap();
    assert_eq!(
        bits(bo, "vector_rom") - bits(bs, "vector_rom"),
        16 * 4 * 128
    );
    assert!(bits(bs, "table_rom") < bits(bo, "table_rom"));
    let rtl = std::fs::read_to_string(shared.join("rtl/taalasc_engine_1.v")).unwrap();
    assert!(rtl.contains(".SLOTS(4)"), "2 users x 2 layers");
    assert_eq!(rtl.matches("tls_wfetch #(").count(), 5);
    lint(&shared);
    let j = taalasc_tests::sim_lib(&shared, &["1,5,9,100,7,3,3,12,40,41,2,300", "4,2,77,9"]);
    assert_eq!(j["bit_exact"], true, "{j:#}");
    assert_eq!(j["first_mismatch"], Value::Null);
    assert_eq!(j["flow_model"]["exact"], true, "{j:#}");
}

/// The ROM-bit parity check itself can fail: a chip whose RTL holds one
/// 36-bit decoded scale field more per word in one weight ROM (the old
/// layout) than the cost model charges is rejected, and so is one whose
/// charge is off by a bit.
#[test]
fn rom_parity_check_rejects_a_rom_wider_than_charged() {
    let dir = tempfile::tempdir().unwrap();
    let chip = dir.path().join("chip");
    build(
        &repo_root().join("examples/tiny-llama"),
        &chip,
        &["--lanes", "16", "--context", "8"],
    );
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(chip.join("manifest.json")).unwrap())
            .unwrap();
    let mb = &m["hardware"]["macro_bits"];
    let charged = ["weight_rom_stored", "vector_rom", "table_rom"]
        .iter()
        .map(|k| mb[k].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(taalasc_tests::rom_parity(&chip), Some(charged));
    assert_eq!(mb["weight_rom_stored"], mb["weight_rom_packed"]);
    // Layer 0's q projection code ROM: 512 words of 16 4-bit codes; the
    // old layout added a 36-bit field to each word.
    let f = chip.join("rtl/taalasc_engine_1.v");
    let text = std::fs::read_to_string(&f).unwrap();
    let rom =
        "tls_rom #(.W(64), .D(512), .AW(9), .FILE({ROM_DIR, \"e1_layers_0_attn_q_weight.hex\"}))";
    assert!(text.contains(rom), "{rom}");
    std::fs::write(&f, text.replace(rom, &rom.replace(".W(64)", ".W(100)"))).unwrap();
    assert_eq!(
        taalasc_tests::rtl_rom_bits(&chip.join("rtl")),
        charged + 512 * 36
    );
    let r = std::panic::catch_unwind(|| taalasc_tests::rom_parity(&chip));
    assert!(
        r.is_err(),
        "a ROM wider than charged passes the parity check"
    );
}
