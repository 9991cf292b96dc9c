//! Multi-chip boards (RFC 0004): a model split across 2, 3 and 4 chips by
//! `taalasc build --chips N` or by a chip budget, linked on a board, and
//! simulated under Verilator by `taalasc sim` with several users
//! interleaved. Every user's every unit output and logit must equal the
//! reference run of that user alone (so no user leaks into another's KV
//! cache, on any chip). Also: the partitioner keeps every chip within its
//! budget, a stage too big for any die is a clear error, error beats
//! cross the links in order, a one-chip budget build (separate embedding
//! and head engines) simulates bit-exact, and every chip and board lints
//! clean.
//!
//! Needs verilator (scripts/test.sh installs it).

use serde_json::Value;
use std::path::Path;
use taalasc_tests::{
    build_lib, fixture, output_files, repo_root, sim_lib, smollm2_gguf, taalasc_ok as ok,
    taalasc_run as run, verilator_lint,
};

fn manifest(chip: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(chip.join("manifest.json")).unwrap()).unwrap()
}

/// Builds `model` split over `chips` chips with one slot per user, lints
/// every chip and the board, simulates the users interleaved and asserts
/// every user bit-exact. Returns the sim JSON.
fn board_cross_check(model: &Path, chips: usize, users: &[&str], dir: &Path) -> Value {
    board_cross_check_rows(model, chips, 1, users, dir)
}

/// As [`board_cross_check`] with `rows` matrix rows per cycle: scratchpad
/// lines of `rows` words, so the copies between engines, the links' word
/// writes and reads, and the logits port all move lines.
fn board_cross_check_rows(
    model: &Path,
    chips: usize,
    rows: usize,
    users: &[&str],
    dir: &Path,
) -> Value {
    let chip = dir.join("board.chip");
    let (n, u, r) = (chips.to_string(), users.len().to_string(), rows.to_string());
    build_lib(
        model,
        &chip,
        &[
            "--lanes",
            "16",
            "--rows",
            &r,
            "--context",
            "32",
            "--users",
            &u,
            "--chips",
            &n,
        ],
    );
    let m = manifest(&chip);
    let sys = &m["hardware"]["system"];
    assert_eq!(sys["partition"]["chips"].as_array().unwrap().len(), chips);
    let cuts: Vec<u64> = sys["board"]["cuts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .collect();
    assert_eq!(cuts.len(), chips + 1, "{cuts:?}");
    // The manifest names the board's top and files, and they exist.
    assert_eq!(m["hardware"]["top"], "taalasc_board");
    for f in m["hardware"]["rtl_files"].as_array().unwrap() {
        assert!(chip.join(f.as_str().unwrap()).is_file(), "{f}");
    }
    for k in 0..chips {
        verilator_lint(&chip.join(format!("chip{k}")), &format!("taalasc_chip{k}"));
    }
    verilator_lint(&chip.join("board"), "taalasc_board");
    let j = sim_lib(&chip, users);
    assert_eq!(j["bit_exact"], true, "{}: {j:#}", model.display());
    let per_user = j["users"].as_array().unwrap();
    assert_eq!(per_user.len(), users.len());
    for (k, (u, t)) in per_user.iter().zip(users).enumerate() {
        assert_eq!(u["bit_exact"], true, "user {k}: {u:#}");
        assert_eq!(u["positions"], t.split(',').count(), "user {k}");
    }
    j
}

#[test]
fn two_chip_tiny_llama_three_users_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let j = board_cross_check(
        &repo_root().join("examples/tiny-llama"),
        2,
        &["1,5,9,100,7", "3,3,12,40", "41,2,300,77,8,9"],
        dir.path(),
    );
    // Several tokens are in the chips at once.
    assert!(j["tokens_in_flight"].as_f64().unwrap() > 1.5, "{j:#}");
}

/// At 4 rows per cycle: lines of 4 words through the copy unit, the links
/// (one word per beat into and out of a line) and the logits port.
#[test]
fn three_chip_gpt2_three_users_four_rows_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    board_cross_check_rows(
        &fixture("rtl/gpt2"),
        3,
        4,
        &["1,5,9,70,7", "3,3,12,40", "41,2,30,77"],
        dir.path(),
    );
}

#[test]
fn four_chip_mistral_window_four_users_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    // Window 4: the first user's 7 positions make its KV window slide.
    board_cross_check(
        &fixture("rtl/mistral_window"),
        4,
        &["1,5,9,70,7,3,3", "3,3,12,40", "41,2,30", "8,8,8,8,8"],
        dir.path(),
    );
}

#[test]
fn smollm2_slice_two_chips_three_users_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let chip = dir.path().join("s.chip");
    ok(&[
        "build",
        smollm2_gguf().to_str().unwrap(),
        "-o",
        chip.to_str().unwrap(),
        "--layers",
        "2",
        "--context",
        "16",
        "--lanes",
        "16",
        "--users",
        "3",
        "--chips",
        "2",
    ]);
    let out = ok(&[
        "sim",
        chip.to_str().unwrap(),
        "--json",
        "--tokens",
        "1,504",
        "--tokens",
        "1,3458",
        "--tokens",
        "1,2000",
    ]);
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["bit_exact"], true, "{j:#}");
    for u in j["users"].as_array().unwrap() {
        assert_eq!(u["bit_exact"], true, "{u:#}");
        assert_eq!(u["positions"], 2);
    }
}

/// Area of each stage under `budget`, computed here from the stage costs
/// the build recorded and the budget's densities.
fn stage_areas(sys: &Value) -> Vec<f64> {
    let b = &sys["budget"];
    let f = |v: &Value| v.as_f64().unwrap();
    sys["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            f(&s["rom_bits"]) / 1e6 / f(&b["rom_mbit_per_mm2"])
                + f(&s["sram_bits"]) / 1e6 / f(&b["sram_mbit_per_mm2"])
                + f(&s["logic_cells"]) / 1e6 * f(&b["logic_mm2_per_mcell"])
        })
        .collect()
}

/// Fewest contiguous chips of at most `die` each (first fit along a chain
/// is optimal for this count), or None when a stage alone is too big.
fn fewest_chips(areas: &[f64], die: f64) -> Option<usize> {
    let (mut chips, mut fill) = (1, 0.0);
    for &a in areas {
        if a > die {
            return None;
        }
        if fill + a > die {
            chips += 1;
            fill = 0.0;
        }
        fill += a;
    }
    Some(chips)
}

#[test]
fn chip_budgets_force_two_three_and_four_chips_and_are_respected() {
    let dir = tempfile::tempdir().unwrap();
    let model = repo_root().join("examples/tiny-llama");
    let build = |out: &Path, budget: &str| {
        run(&[
            "build",
            model.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--lanes",
            "16",
            "--context",
            "32",
            "--users",
            "2",
            "--chip-budget",
            budget,
        ])
    };
    // One hc1 die holds the tiny model.
    let one = dir.path().join("one.chip");
    let o = build(&one, "hc1");
    assert!(o.status.success(), "{o:?}");
    let sys = manifest(&one)["hardware"]["system"].clone();
    assert_eq!(sys["partition"]["chips"].as_array().unwrap().len(), 1);
    assert!(!one.join("board").exists());
    // One chip with a separate embedding and head engine simulates like
    // any chip: two users, each bit-exact.
    let j: Value = serde_json::from_str(&ok(&[
        "sim",
        one.to_str().unwrap(),
        "--tokens",
        "1,5,9,100",
        "--tokens",
        "3,3,12",
        "--json",
    ]))
    .unwrap();
    assert_eq!(j["bit_exact"], true, "{j:#}");
    assert_eq!(j["users"].as_array().unwrap().len(), 2);
    let areas = stage_areas(&sys);
    assert_eq!(areas.len(), 4, "embed, two layers, head");
    // Candidate dies: every contiguous range's area, just above it.
    let mut dies: Vec<f64> = Vec::new();
    for i in 0..areas.len() {
        for j in i + 1..=areas.len() {
            dies.push(areas[i..j].iter().sum::<f64>() * (1.0 + 1e-6));
        }
    }
    dies.sort_by(f64::total_cmp);
    for want in [2, 3, 4] {
        let die = *dies
            .iter()
            .find(|&&d| fewest_chips(&areas, d) == Some(want))
            .unwrap_or_else(|| panic!("no die gives {want} chips for {areas:?}"));
        let file = dir.path().join(format!("budget{want}.json"));
        std::fs::write(&file, format!(r#"{{"base": "hc1", "die_mm2": {die}}}"#)).unwrap();
        let out = dir.path().join(format!("b{want}.chip"));
        let o = build(&out, file.to_str().unwrap());
        assert!(o.status.success(), "{o:?}");
        let sys = manifest(&out)["hardware"]["system"].clone();
        let chips = sys["partition"]["chips"].as_array().unwrap();
        assert_eq!(chips.len(), want, "die {die} mm2 for {areas:?}");
        for (k, c) in chips.iter().enumerate() {
            let (first, end) = (
                c["first"].as_u64().unwrap() as usize,
                c["end"].as_u64().unwrap() as usize,
            );
            let area: f64 = areas[first..end].iter().sum();
            assert!(area <= die, "chip {k}: {area} > {die}");
            assert!((c["area_mm2"].as_f64().unwrap() - area).abs() < 1e-9 * die);
            assert!(out.join(format!("chip{k}/rtl/taalasc_chip{k}.v")).is_file());
        }
        assert!(!out.join(format!("chip{want}")).exists());
        if want == 3 {
            // The same input gives the same bytes, every file of every chip.
            let again = dir.path().join("again.chip");
            let o = build(&again, file.to_str().unwrap());
            assert!(o.status.success(), "{o:?}");
            assert_eq!(output_files(&out), output_files(&again));
        }
    }
    // A die smaller than the largest stage: a clear error naming the
    // stage, and no output folder.
    // The first stage of the largest area is the one named.
    let big = areas
        .iter()
        .enumerate()
        .fold((0, &0.0), |m, x| if x.1 > m.1 { x } else { m });
    let names = ["embed", "layer 0", "layer 1", "head"];
    let file = dir.path().join("small.json");
    std::fs::write(
        &file,
        format!(r#"{{"base": "hc1", "die_mm2": {}}}"#, big.1 * 0.9),
    )
    .unwrap();
    let out = dir.path().join("small.chip");
    let o = build(&out, file.to_str().unwrap());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains(&format!("stage `{}` alone needs", names[big.0])),
        "{err}"
    );
    assert!(!out.exists(), "a failed build left {}", out.display());
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".small.chip"))
        .collect();
    assert!(left.is_empty(), "staging folders left behind: {left:?}");
    // A lying budget file is named with its field.
    std::fs::write(&file, r#"{"base": "hc1", "die_mm2": "large"}"#).unwrap();
    let o = build(&out, file.to_str().unwrap());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("small.json") && err.contains("die_mm2"),
        "{err}"
    );
}

#[test]
fn error_beats_cross_the_links_in_order() {
    use taalasc_verilog::sim::{run_rtl, TokenIn};
    let dir = tempfile::tempdir().unwrap();
    let chip = dir.path().join("e.chip");
    ok(&[
        "build",
        repo_root().join("examples/tiny-llama").to_str().unwrap(),
        "-o",
        chip.to_str().unwrap(),
        "--lanes",
        "16",
        "--context",
        "8",
        "--users",
        "2",
        "--chips",
        "3",
    ]);
    // Builds the Verilator model and checks the good run is bit-exact.
    let j: Value = serde_json::from_str(&ok(&[
        "sim",
        chip.to_str().unwrap(),
        "--tokens",
        "1,5,9,3,3,3,3,3",
        "--json",
    ]))
    .unwrap();
    assert_eq!(j["bit_exact"], true);
    // The model sim built, in its cache (never in the chip folder).
    let exe = std::path::PathBuf::from(j["model"].as_str().unwrap());
    let t = |token, restart, slot| TokenIn {
        token,
        restart,
        slot,
        delay: 0,
        prefill: false,
    };
    let seq = [1u32, 5, 9, 3, 3, 3, 3, 3];
    let good_in: Vec<TokenIn> = seq
        .iter()
        .enumerate()
        .map(|(i, &x)| t(x, i == 0, 0))
        .collect();
    let good = run_rtl(&exe, &dir.path().join("good"), &good_in, None).unwrap();
    // A slot beyond the users (2) and a position beyond the context (8)
    // each give one error beat, in order, and the user's sequence goes on.
    let mut mixed_in = good_in.clone();
    mixed_in.insert(2, t(3, true, 5));
    mixed_in.push(t(7, false, 0));
    let mixed = run_rtl(&exe, &dir.path().join("mixed"), &mixed_in, None).unwrap();
    let mut want = vec![false; 10];
    want[2] = true;
    want[9] = true;
    assert_eq!(mixed.errors, want);
    assert_eq!(
        mixed.beats,
        want.iter()
            .map(|&e| if e { 1 } else { 512 })
            .collect::<Vec<u64>>()
    );
    let pick = |r: &taalasc_verilog::sim::RtlRun, toks: &[usize]| -> Vec<i64> {
        let mut start = 0;
        let mut out = Vec::new();
        for (i, &b) in r.beats.iter().enumerate() {
            if toks.contains(&i) {
                out.extend_from_slice(&r.logits[start..start + b as usize]);
            }
            start += b as usize;
        }
        out
    };
    assert_eq!(
        pick(&mixed, &[0, 1, 3, 4, 5, 6, 7, 8]),
        pick(&good, &[0, 1, 2, 3, 4, 5, 6, 7])
    );
}

#[test]
fn a_board_chip_synthesizes_with_check_assert() {
    let dir = tempfile::tempdir().unwrap();
    let chip = dir.path().join("s.chip");
    ok(&[
        "build",
        repo_root().join("examples/tiny-llama").to_str().unwrap(),
        "-o",
        chip.to_str().unwrap(),
        "--lanes",
        "4",
        "--context",
        "8",
        "--chips",
        "4",
    ]);
    // Chip 0 holds only the embedding; its top has the link-out port.
    let out = ok(&[
        "synth",
        chip.to_str().unwrap(),
        "--chip-index",
        "0",
        "--json",
    ]);
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["top"], "taalasc_chip0");
    let cells = j["total_cells"].as_u64().unwrap();
    assert!(cells > 100, "{j:#}");
    let o = run(&["synth", chip.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--chip-index K"));
}
