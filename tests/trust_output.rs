//! Issue 14: nothing lost, nothing trusted. `build -o` touches only a new
//! path or (with `--force`) a chip folder it built; staging debris is
//! cleaned by the next build; `sim` never runs or compiles code from a
//! chip folder; run, eval and report check the manifest's digests; CLI
//! mistakes are named for what they are (RFC 0006).

use std::path::{Path, PathBuf};
use taalasc_tests::*;

fn tiny() -> PathBuf {
    repo_root().join("examples/tiny-llama")
}

fn run(args: &[&str]) -> (bool, String, String) {
    let o = taalasc_run(args);
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn build(out: &Path, extra: &[&str]) -> (bool, String) {
    let model = tiny();
    let mut args = vec![
        "build",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--context",
        "8",
    ];
    args.extend_from_slice(extra);
    let (ok, _, err) = run(&args);
    (ok, err)
}

/// Every file below `dir`, relative, with its bytes.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    output_files(dir)
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Defect 1a: `build m -o m` deleted the input model.
#[test]
fn build_into_its_own_model_folder_is_refused_and_the_model_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let m = tmp.path().join("m");
    std::fs::create_dir(&m).unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(tiny().join(f), m.join(f)).unwrap();
    }
    let before = snapshot(&m);
    let (ok, _, err) = run(&["build", m.to_str().unwrap(), "-o", m.to_str().unwrap()]);
    assert!(!ok, "{err}");
    assert!(
        err.contains("already exists and is a folder that is not a chip folder taalasc wrote")
            && err.contains("Nothing was changed"),
        "{err}"
    );
    assert_eq!(snapshot(&m), before, "the model folder changed");
    // --force does not change that: it replaces chip folders only.
    let (ok, _, err) = run(&[
        "build",
        m.to_str().unwrap(),
        "-o",
        m.to_str().unwrap(),
        "--force",
    ]);
    assert!(!ok && err.contains("not a chip folder"), "{err}");
    assert_eq!(snapshot(&m), before, "the model folder changed");
    assert_eq!(names(tmp.path()), ["m"], "debris beside the model");
}

/// Defect 1b: a folder with the user's files was replaced.
#[test]
fn build_into_a_folder_of_other_files_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("d");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("important.txt"), "precious").unwrap();
    for extra in [&[][..], &["--force"][..]] {
        let (ok, err) = build(&d, extra);
        assert!(!ok && err.contains("d: already exists"), "{err}");
        assert_eq!(
            std::fs::read_to_string(d.join("important.txt")).unwrap(),
            "precious"
        );
        assert_eq!(names(&d), ["important.txt"]);
    }
    assert_eq!(names(tmp.path()), ["d"]);
}

/// Defect 1c: `-o FILE` exited 1 but left a chip folder there and hid the
/// file as `.NAME.old-PID`.
#[test]
fn build_onto_a_file_is_refused_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("f");
    std::fs::write(&f, "hi").unwrap();
    for extra in [&[][..], &["--force"][..]] {
        let (ok, err) = build(&f, extra);
        assert!(!ok && err.contains("already exists and is a file"), "{err}");
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "hi");
        assert_eq!(names(tmp.path()), ["f"]);
    }
}

/// `--force` replaces an earlier chip folder, and only one: a file the
/// user put into it stops the replacement.
#[test]
fn force_replaces_only_a_chip_folder_taalasc_wrote() {
    let tmp = tempfile::tempdir().unwrap();
    let c = tmp.path().join("c.chip");
    assert!(build(&c, &[]).0);
    let (ok, err) = build(&c, &[]);
    assert!(
        !ok && err.contains("is a chip folder taalasc built earlier; pass --force"),
        "{err}"
    );
    // Later commands' files are the tool's own.
    std::fs::create_dir_all(c.join("sim")).unwrap();
    std::fs::write(c.join("sim/result.json"), "{}").unwrap();
    let (ok, err) = build(&c, &["--force", "--users", "2"]);
    assert!(ok, "{err}");
    assert_eq!(
        read_json(&c.join("manifest.json"))["hardware"]["users"],
        2,
        "not replaced"
    );
    std::fs::write(c.join("rtl/notes.txt"), "mine").unwrap();
    let before = snapshot(&c);
    let (ok, err) = build(&c, &["--force"]);
    assert!(
        !ok && err.contains("notes.txt is not one of its files"),
        "{err}"
    );
    assert_eq!(snapshot(&c), before);
    assert_eq!(names(tmp.path()), ["c.chip"]);
    // A chip of the older format lists no files: not replaced either.
    std::fs::remove_file(c.join("rtl/notes.txt")).unwrap();
    let mut m = read_json(&c.join("manifest.json"));
    m["format"] = "taalasc-chip-image-1".into();
    m.as_object_mut().unwrap().remove("digests");
    std::fs::write(c.join("manifest.json"), m.to_string()).unwrap();
    let before = snapshot(&c);
    let (ok, err) = build(&c, &["--force"]);
    assert!(!ok && err.contains("an older taalasc"), "{err}");
    assert_eq!(snapshot(&c), before);
}

/// `report --out DIR` writes only a new folder or over a report it wrote:
/// a folder with other files is refused untouched.
#[test]
fn report_out_never_overwrites_other_files() {
    let tmp = tempfile::tempdir().unwrap();
    let c = tmp.path().join("c.chip");
    assert!(build(&c, &[]).0);
    let cs = c.to_str().unwrap();
    // Twice into the chip's own report folder: the second replaces the first.
    for _ in 0..2 {
        let (ok, _, err) = run(&["report", cs]);
        assert!(ok, "{err}");
    }
    assert_eq!(names(&c.join("report")), ["report.html", "report.json"]);
    let d = tmp.path().join("d");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("report.json"), "my notes").unwrap();
    let (ok, _, err) = run(&["report", cs, "--out", d.to_str().unwrap()]);
    assert!(
        !ok && err.contains("holds more than a report taalasc wrote"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("report.json")).unwrap(),
        "my notes"
    );
    assert_eq!(names(&d), ["report.json"]);
}

/// Defect 8: a killed build left `.NAME.tmp-PID/` forever. Staging now has
/// one name per output, and the next build to that path removes it; a
/// staging folder whose build still runs (its lock held) stops the build;
/// a folder of that name taalasc did not make is left alone.
#[test]
fn stale_staging_is_removed_and_live_staging_is_respected() {
    let tmp = tempfile::tempdir().unwrap();
    let c = tmp.path().join("c.chip");
    let staging = tmp.path().join(".c.chip.taalasc-staging");
    // What a killed build leaves: its lock file, no lock held.
    std::fs::create_dir(&staging).unwrap();
    std::fs::write(staging.join(".taalasc-lock"), "").unwrap();
    std::fs::write(staging.join("weights.safetensors"), vec![0u8; 4096]).unwrap();
    let (ok, err) = build(&c, &[]);
    assert!(ok, "{err}");
    assert!(err.contains("left by a build of"), "{err}");
    assert_eq!(names(tmp.path()), ["c.chip"]);
    // A build in progress: the lock is held.
    std::fs::create_dir(&staging).unwrap();
    let lock = std::fs::File::create(staging.join(".taalasc-lock")).unwrap();
    lock.lock().unwrap();
    let (ok, err) = build(&c, &["--force"]);
    assert!(
        !ok && err.contains("another taalasc build is writing"),
        "{err}"
    );
    assert!(staging.join(".taalasc-lock").is_file());
    drop(lock);
    std::fs::remove_dir_all(&staging).unwrap();
    // Not taalasc's: no lock file.
    std::fs::create_dir(&staging).unwrap();
    std::fs::write(staging.join("x"), "mine").unwrap();
    let (ok, err) = build(&c, &["--force"]);
    assert!(
        !ok && err.contains("is not a staging folder of taalasc"),
        "{err}"
    );
    assert!(staging.join("x").is_file());
}

/// A failed build (here: a model that cannot be read) leaves no staging.
#[test]
fn a_failed_build_leaves_no_debris() {
    let tmp = tempfile::tempdir().unwrap();
    let m = tmp.path().join("m");
    std::fs::create_dir(&m).unwrap();
    std::fs::copy(tiny().join("config.json"), m.join("config.json")).unwrap();
    std::fs::write(
        m.join("model.safetensors"),
        b"\x08\x00\x00\x00\x00\x00\x00\x00{}",
    )
    .unwrap();
    let out = tmp.path().join("o.chip");
    let (ok, _, err) = run(&["build", m.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(!ok, "{err}");
    assert_eq!(names(tmp.path()), ["m"]);
}

/// A chip for the sim tests, with a fresh model cache per test so a
/// model cached by another test cannot hide a build.
fn sim_chip() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let c = tmp.path().join("c.chip");
    let (ok, err) = build(&c, &[]);
    assert!(ok, "{err}");
    (tmp, c)
}

fn sim(chip: &Path, cache: &Path, extra: &[&str]) -> (bool, String, String) {
    let o = std::process::Command::new(taalasc_bin())
        .args(["sim", chip.to_str().unwrap(), "--tokens", "1,5,9"])
        .args(extra)
        .env("TAALASC_CACHE_DIR", cache)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Defect 2: `sim` ran `CHIP/sim/obj/Vtaalasc_chip` when it existed. A
/// planted executable there is never run; the model is built from
/// regenerated sources in the cache, and reused from there.
#[test]
fn a_planted_simulator_binary_is_never_run() {
    let (tmp, c) = sim_chip();
    let marker = tmp.path().join("PLANTED-RAN");
    for exe in ["sim/obj/Vtaalasc_chip", "sim/obj_vcd/Vtaalasc_chip"] {
        let p = c.join(exe);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(
            &p,
            format!("#!/bin/sh\ntouch {}\nexit 0\n", marker.display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let cache = tmp.path().join("cache");
    let (ok, out, err) = sim(&c, &cache, &[]);
    assert!(
        ok && out.contains("bit-exact: 1 user(s), 3 positions"),
        "{out}{err}"
    );
    assert!(!marker.exists(), "the planted binary ran");
    // The model lives in the cache, keyed by its sources; a second run
    // reuses it without a build.
    let entries = names(&cache.join("sim"));
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].len(), 64);
    let (ok, out, err) = sim(&c, &cache, &[]);
    assert!(ok && out.contains("bit-exact"), "{out}{err}");
    assert!(!err.contains("building the Verilator model"), "{err}");
    assert!(!marker.exists(), "the planted binary ran");
}

/// Defect 2: `sim` compiled the folder's `harness/main.cpp` and
/// `taalasc.f` as they were. A changed harness or filelist is an error
/// naming it, before anything is compiled, and even `--rtl-from-folder`
/// compiles the compiler's own harness and filelist.
#[test]
fn a_modified_harness_or_filelist_is_never_compiled() {
    let (tmp, c) = sim_chip();
    let cache = tmp.path().join("cache");
    let marker = tmp.path().join("HARNESS-RAN");
    let harness = c.join("harness/main.cpp");
    let good = std::fs::read_to_string(&harness).unwrap();
    // A harness that would leave a marker when run, and breaks the build
    // when compiled (so compiling it would show as well).
    std::fs::write(
        &harness,
        format!(
            "{good}\nstatic int planted = std::system(\"touch {}\");\n#error planted harness compiled\n",
            marker.display()
        ),
    )
    .unwrap();
    let (ok, _, err) = sim(&c, &cache, &[]);
    assert!(!ok, "{err}");
    assert!(
        err.contains("harness/main.cpp differs") && !err.contains("planted harness compiled"),
        "{err}"
    );
    assert!(!cache.join("sim").exists() || names(&cache.join("sim")).is_empty());
    let (ok, out, err) = sim(&c, &cache, &["--rtl-from-folder"]);
    assert!(ok && out.contains("bit-exact"), "{out}{err}");
    assert!(err.contains("the compiler's is used"), "{err}");
    assert!(!marker.exists());
    std::fs::write(&harness, good).unwrap();
    // A filelist naming a file of the folder's.
    std::fs::write(
        c.join("rtl/planted.v"),
        "module planted; initial $system(\"touch /tmp/x\"); endmodule\n#error\n",
    )
    .unwrap();
    let list = c.join("taalasc.f");
    let mut text = std::fs::read_to_string(&list).unwrap();
    text += "rtl/planted.v\n";
    std::fs::write(&list, text).unwrap();
    let (ok, _, err) = sim(&c, &cache, &[]);
    assert!(!ok && err.contains("taalasc.f differs"), "{err}");
    let (ok, out, err) = sim(&c, &cache, &["--rtl-from-folder"]);
    assert!(ok && out.contains("bit-exact"), "{out}{err}");
}

/// Defect 2, last part: the cached model went stale when the RTL changed.
/// A changed Verilog file taken with `--rtl-from-folder` is a new key, so a
/// new model, and the mutation shows.
#[test]
fn a_changed_rtl_never_reuses_a_stale_model() {
    let (tmp, c) = sim_chip();
    let cache = tmp.path().join("cache");
    assert!(sim(&c, &cache, &[]).0);
    let f = c.join("rtl/taalasc_chip.v");
    let text = std::fs::read_to_string(&f).unwrap();
    std::fs::write(&f, format!("{text}\n// edited\n")).unwrap();
    let (ok, _, err) = sim(&c, &cache, &[]);
    assert!(!ok && err.contains("rtl/taalasc_chip.v differs"), "{err}");
    let (ok, out, err) = sim(&c, &cache, &["--rtl-from-folder", "--json"]);
    assert!(ok, "{out}{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["bit_exact"], true);
    assert_eq!(
        j["rtl_from_folder"],
        serde_json::json!(["rtl/taalasc_chip.v"])
    );
    assert!(err.contains("building the Verilator model"), "{err}");
    assert_eq!(names(&cache.join("sim")).len(), 2);
}

/// A `sim` or `synth` folder that is a link (a folder from elsewhere could
/// point it at the user's files) is refused before anything is written.
#[test]
fn records_are_never_written_through_a_planted_link() {
    let tmp = tempfile::tempdir().unwrap();
    let c = tmp.path().join("c.chip");
    assert!(build(&c, &[]).0);
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("result.json"), "mine").unwrap();
    std::fs::remove_dir_all(c.join("synth")).unwrap();
    for sub in ["sim", "synth"] {
        std::os::unix::fs::symlink(&elsewhere, c.join(sub)).unwrap();
    }
    let cs = c.to_str().unwrap();
    for args in [vec!["sim", cs, "--tokens", "1"], vec!["synth", cs]] {
        let (ok, _, err) = run(&args);
        assert!(
            !ok && err.contains("is a link or a file"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(names(&elsewhere), ["result.json"]);
    assert_eq!(
        std::fs::read_to_string(elsewhere.join("result.json")).unwrap(),
        "mine"
    );
}

/// Defect 7: flipped bytes in `weights.safetensors` gave garbage with exit
/// 0 from `run` and `eval`. The manifest's digests catch them, naming the
/// file, in `run`, `eval`, `report` and `sim`.
#[test]
fn a_changed_image_file_is_named_by_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    let c = tmp.path().join("c.chip");
    assert!(build(&c, &[]).0);
    let w = c.join("weights.safetensors");
    let mut bytes = std::fs::read(&w).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x40;
    std::fs::write(&w, bytes).unwrap();
    let cs = c.to_str().unwrap();
    let sample = tiny().join("sample.txt");
    for args in [
        vec!["run", cs, "--tokens", "1,2,3", "--max-tokens", "2"],
        vec!["eval", cs, "--text", sample.to_str().unwrap(), "--ctx", "8"],
        vec!["report", cs],
        vec!["sim", cs, "--tokens", "1"],
    ] {
        let (ok, _, err) = run(&args);
        assert!(
            !ok && err.contains("weights.safetensors: changed since the build"),
            "{args:?}: {err}"
        );
    }
}

/// `report.json` has a digest too: `synth`, which adds to it, records the
/// new one, and `report` names the file when it changed otherwise. One
/// engine is enough to add to it: the I/O engine synthesizes in under a
/// minute, the whole tiny chip in over five (its layer engine).
#[test]
fn report_json_is_checked_and_synth_keeps_its_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let c = tmp.path().join("c.chip");
    assert!(build(&c, &[]).0);
    let cs = c.to_str().unwrap();
    let (ok, _, err) = run(&["synth", cs, "--engine", "0"]);
    assert!(ok, "{err}");
    assert!(read_json(&c.join("report.json"))["synth"]["taalasc_engine_0"].is_object());
    let (ok, _, err) = run(&["report", cs]);
    assert!(ok, "{err}");
    let r = c.join("report.json");
    let text = std::fs::read_to_string(&r).unwrap();
    std::fs::write(
        &r,
        text.replacen("\"bits_per_weight\": 5", "\"bits_per_weight\": 4", 1),
    )
    .unwrap();
    let (ok, _, err) = run(&["report", cs]);
    assert!(
        !ok && err.contains("report.json: changed since the build"),
        "{err}"
    );
}

/// Defect 7: an unknown chip-image format version was accepted.
#[test]
fn an_unknown_manifest_format_version_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let c = tmp.path().join("c.chip");
    assert!(build(&c, &[]).0);
    let m = c.join("manifest.json");
    let text = std::fs::read_to_string(&m).unwrap();
    std::fs::write(
        &m,
        text.replace("\"taalasc-chip-image-2\"", "\"taalasc-chip-image-9\""),
    )
    .unwrap();
    let (ok, _, err) = run(&[
        "run",
        c.to_str().unwrap(),
        "--tokens",
        "1",
        "--max-tokens",
        "1",
    ]);
    assert!(
        !ok && err.contains("format `taalasc-chip-image-9` is not `taalasc-chip-image-2`"),
        "{err}"
    );
}

/// Defect 9: a chip folder missing `weights.safetensors` was reported as
/// "neither model.safetensors nor ...".
#[test]
fn a_chip_folder_missing_its_weights_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let c = tmp.path().join("c.chip");
    assert!(build(&c, &[]).0);
    std::fs::remove_file(c.join("weights.safetensors")).unwrap();
    let (ok, _, err) = run(&[
        "run",
        c.to_str().unwrap(),
        "--tokens",
        "1",
        "--max-tokens",
        "1",
    ]);
    assert!(
        !ok && err.contains("weights.safetensors: missing") && !err.contains("neither"),
        "{err}"
    );
}

/// Defect 9: a bad `lanes` in manifest.json was blamed on a `--lanes`
/// flag that was never given.
#[test]
fn a_bad_lanes_in_the_manifest_names_the_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let c = tmp.path().join("c.chip");
    assert!(build(&c, &[]).0);
    let m = c.join("manifest.json");
    let text = std::fs::read_to_string(&m).unwrap();
    assert!(text.contains("\"lanes\": 16,"));
    std::fs::write(&m, text.replacen("\"lanes\": 16,", "\"lanes\": 3,", 1)).unwrap();
    let (ok, _, err) = run(&["sim", c.to_str().unwrap(), "--tokens", "1"]);
    assert!(
        !ok && err.contains("manifest.json: hardware.lanes = 3") && !err.contains("--lanes"),
        "{err}"
    );
}

/// Defect 9: a bad `--layer-format` format lost the parser's reason, and
/// a missing budget file was "unknown chip budget".
#[test]
fn flag_errors_give_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let (ok, err) = build(&tmp.path().join("a"), &["--layer-format", "layers.0.*=zz9"]);
    assert!(!ok, "{err}");
    let reason = "zz9"
        .parse::<taalasc_quant::WeightFormat>()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--layer-format `layers.0.*=zz9`: ") && err.contains(&reason),
        "{err} (want {reason})"
    );
    let missing = tmp.path().join("budgets/mine.json");
    let (ok, err) = build(
        &tmp.path().join("b"),
        &["--chip-budget", missing.to_str().unwrap()],
    );
    assert!(
        !ok && err.contains("mine.json: No such file") && !err.contains("unknown chip budget"),
        "{err}"
    );
    let (ok, err) = build(&tmp.path().join("c"), &["--chip-budget", "hc2"]);
    assert!(!ok && err.contains("unknown chip budget `hc2`"), "{err}");
}

/// Defect 7: overlapping `--layer-format` rules let the later one win
/// silently.
#[test]
fn overlapping_layer_rules_are_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (ok, err) = build(
        &tmp.path().join("a"),
        &[
            "--layer-format",
            "layers.0.*=a4g32",
            "--layer-format",
            "layers.*=a3g32",
        ],
    );
    assert!(
        !ok && err.contains("`layers.0.*=a4g32` and `layers.*=a3g32` both match `layers.0."),
        "{err}"
    );
    // The same format twice is no conflict.
    let (ok, err) = build(
        &tmp.path().join("b"),
        &[
            "--layer-format",
            "layers.0.*=a4g32",
            "--layer-format",
            "layers.*=a4g32",
        ],
    );
    assert!(ok, "{err}");
}

/// Defect 7: `--chips 2` without `--chip-budget` was ignored; it splits
/// the model over two chips of the default budget.
#[test]
fn chips_without_a_budget_splits_on_the_default_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let c = tmp.path().join("c.chip");
    let (ok, err) = build(&c, &["--chips", "2"]);
    assert!(ok, "{err}");
    assert!(err.contains("2 chip(s) on budget `hc1`"), "{err}");
    let m = read_json(&c.join("manifest.json"));
    assert_eq!(
        m["hardware"]["system"]["partition"]["chips"]
            .as_array()
            .map(Vec::len),
        Some(2),
        "{m:#}"
    );
}
