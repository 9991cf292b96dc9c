//! The bit-exact integer reference: deterministic across runs, thread counts
//! and batching; close to the float model when the chip format holds the
//! weights exactly.

use taalasc::build::{build_image, BuildOptions};
use taalasc_image::ChipImage;
use taalasc_reference::Reference;
use taalasc_tests::*;

fn example_image() -> ChipImage {
    let loaded = taalasc::load(&repo_root().join("examples/tiny-llama")).unwrap();
    let opts = BuildOptions {
        context: 256,
        ..BuildOptions::defaults(&loaded.model)
    };
    build_image(&loaded, &opts, None).unwrap().0
}

#[test]
fn identical_across_threads_batching_and_runs() {
    let image = example_image();
    let tokens: Vec<u32> = (0..40).map(|i| (i * 37 + 11) % 512).collect();
    let r1 = Reference::new(&image, 1).unwrap();
    let r2 = Reference::new(&image, 2).unwrap();
    let batch1 = r1.forward(&mut r1.session(), &tokens, 0).unwrap();
    let batch2 = r2.forward(&mut r2.session(), &tokens, 0).unwrap();
    assert_eq!(batch1, batch2, "thread count changed the bits");
    let mut s = r2.session();
    let mut serial = Vec::new();
    for &t in &tokens {
        serial.extend(r2.forward(&mut s, &[t], 0).unwrap());
    }
    assert_eq!(batch1, serial, "token-serial and batched runs differ");
    let again = r1.forward(&mut r1.session(), &tokens, 0).unwrap();
    assert_eq!(batch1, again);
}

#[test]
fn image_files_round_trip_byte_identically() {
    let image = example_image();
    let (g, w) = image.to_files();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("graph.json"), &g).unwrap();
    std::fs::write(tmp.path().join("weights.safetensors"), &w).unwrap();
    let back = ChipImage::read(tmp.path()).unwrap();
    let (g2, w2) = back.to_files();
    assert!(g == g2 && w == w2, "read/write changed the image");
    let (_, w3) = example_image().to_files();
    assert_eq!(w, w3, "two builds of the same model differ");
}

#[test]
fn integer_reference_tracks_the_float_model_on_the_example() {
    // The example's f32 weights are not on any grid, so this measures 4-bit
    // RTN plus the integer datapath: a loose agreement check, not a figure.
    let image = example_image();
    let (loaded, float) = taalasc::load_float(&repo_root().join("examples/tiny-llama")).unwrap();
    let text = std::fs::read_to_string(repo_root().join("examples/tiny-llama/sample.txt")).unwrap();
    let ids = loaded
        .tokenizer
        .as_ref()
        .unwrap()
        .encode(&text, true)
        .unwrap();
    let chunks = taalasc::eval::chunks(&ids, 64, Some(0), Some(12));
    let r = Reference::new(&image, 0).unwrap();
    let q = taalasc::eval::quality(&r, Some(&float), &chunks, ids.len(), true, &|_| {}).unwrap();
    let f = taalasc::eval::perplexity(&float, &chunks, ids.len(), true, &|_| {}).unwrap();
    eprintln!(
        "example: float ppl {:.3}, chip ppl {:.3}, KL {:.4}, top-1 {:.3}",
        f.perplexity,
        q.perplexity,
        q.kl_mean.unwrap(),
        q.top1.unwrap()
    );
    assert!(
        q.perplexity < f.perplexity * 1.15,
        "{} vs {}",
        q.perplexity,
        f.perplexity
    );
    assert!(q.top1.unwrap() > 0.8);
}

#[test]
fn cli_build_is_deterministic_and_run_dumps_the_reference_logits() {
    let tmp = tempfile::tempdir().unwrap();
    let build = |out: &std::path::Path| {
        let st = std::process::Command::new(taalasc_bin())
            .args(["build", "--context", "256", "--force", "-o"])
            .arg(out)
            .arg(repo_root().join("examples/tiny-llama"))
            .stderr(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
    };
    let (a, b) = (tmp.path().join("a.chip"), tmp.path().join("b.chip"));
    build(&a);
    build(&b);
    build(&a); // --force: rebuilding over the chip it built replaces it whole
    for f in ["graph.json", "weights.safetensors", "report.json"] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f} differs between builds"
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        2,
        "temporary folders left behind: {leftovers:?}"
    );

    let npy = tmp.path().join("l.npy");
    let st = std::process::Command::new(taalasc_bin())
        .args(["run", "--max-tokens", "0", "--tokens", "0,5,9,200,77"])
        .arg(&a)
        .arg("--dump-logits")
        .arg(&npy)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let bytes = std::fs::read(&npy).unwrap();
    let image = ChipImage::read(&a).unwrap();
    let r = Reference::new(&image, 0).unwrap();
    let want = r.forward(&mut r.session(), &[0, 5, 9, 200, 77], 0).unwrap();
    let body: Vec<i64> = bytes[128..]
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(body, want);
}

#[test]
fn build_refuses_a_model_the_datapath_cannot_run_and_writes_nothing() {
    // head_dim 16 is not a whole 32-element activation block (RFC 0002).
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x.chip");
    let o = std::process::Command::new(taalasc_bin())
        .args(["build", "-o"])
        .arg(&out)
        .arg(fixture("hf/llama3_rope"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("head_dim 16") && err.contains("layers.0.attn"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "partial output left behind"
    );
}

/// `taalasc build` with options; panics with its stderr on failure.
fn cli_build(out: &std::path::Path, args: &[&str]) {
    let o = std::process::Command::new(taalasc_bin())
        .args(["build", "--context", "256", "-o"])
        .arg(out)
        .arg(repo_root().join("examples/tiny-llama"))
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn auto_with_gptq_runs_on_the_tiny_model_within_budget_and_deterministically() {
    // The same pass as on SmolLM2, on a model with another shape: nothing
    // in the quantizer or the e-graph is specific to one checkpoint.
    let tmp = tempfile::tempdir().unwrap();
    let calib = repo_root().join("examples/tiny-llama/sample.txt");
    let calib = calib.to_str().unwrap();
    let args = [
        "--bits",
        "auto",
        "--bpw",
        "4.0",
        "--calib",
        calib,
        "--calib-chunks",
        "2",
    ];
    let (a, b) = (tmp.path().join("a.chip"), tmp.path().join("b.chip"));
    cli_build(&a, &args);
    cli_build(&b, &args);
    for f in ["graph.json", "report.json"] {
        assert_eq!(
            std::fs::read_to_string(a.join(f)).unwrap(),
            std::fs::read_to_string(b.join(f)).unwrap(),
            "{f} differs between builds"
        );
    }
    assert!(
        std::fs::read(a.join("weights.safetensors")).unwrap()
            == std::fs::read(b.join("weights.safetensors")).unwrap(),
        "weights differ between builds"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("report.json")).unwrap()).unwrap();
    let bpw = report["bits_per_weight"].as_f64().unwrap();
    assert!(bpw <= 4.0 && bpw > 3.5, "bits per weight {bpw}");
    assert_eq!(report["options"]["quantizer"], "gptq");
    assert_eq!(report["options"]["gptq"]["act_order"], true);
    let chosen = report["auto"]["chosen"].as_array().unwrap();
    // Every matrix of the model: 2 layers × 7 linears, the embedding table
    // and the (untied) head.
    assert_eq!(chosen.len(), 16);
    let formats: std::collections::BTreeSet<&str> = chosen
        .iter()
        .map(|c| c["format"].as_str().unwrap())
        .collect();
    assert!(formats.len() >= 2, "one format for all layers: {formats:?}");
    // Losses are sorted, most costly first.
    let losses: Vec<f64> = chosen.iter().map(|c| c["loss"].as_f64().unwrap()).collect();
    assert!(losses.windows(2).all(|w| w[0] >= w[1]), "{losses:?}");
    // Every tensor's bits add up to the reported total.
    let total: u64 = report["weights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["bits"].as_u64().unwrap())
        .sum();
    assert_eq!(total, report["total_bits"].as_u64().unwrap());
    // The image loads, and its two-level scales and mixed widths validate.
    let image = ChipImage::read(&a).unwrap();
    Reference::new(&image, 0).unwrap();
    // Width mixes (per column group, or per row of the probability-weighted
    // head) are among the choices, and each is reported as stored.
    let mut mixed = 0;
    for (info, p) in image.model.weights.iter().zip(&image.params) {
        let taalasc_image::Param::Matrix(q) = p else {
            continue;
        };
        let rep = report["weights"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == info.name.as_str())
            .unwrap();
        assert_eq!(rep["format"], q.format_name().as_str(), "{}", info.name);
        assert_eq!(rep["bits"], q.storage_bits(), "{}", info.name);
        if !q.widths.is_uniform() {
            mixed += 1;
            let (list, parts) = if q.widths.rows.is_empty() {
                (&q.widths.groups, q.groups_per_row())
            } else {
                (&q.widths.rows, q.rows)
            };
            assert_eq!(list.len(), parts);
            assert_eq!(list.iter().max(), Some(&q.format.bits));
        }
    }
    assert!(mixed > 0, "no layer took mixed widths");
}

#[test]
fn layer_format_pins_layers_in_plain_and_auto_builds() {
    let tmp = tempfile::tempdir().unwrap();
    let formats = |chip: &std::path::Path| -> std::collections::BTreeMap<String, String> {
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(chip.join("report.json")).unwrap())
                .unwrap();
        r["weights"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| {
                let (n, f) = (w["name"].as_str().unwrap(), w["format"].as_str().unwrap());
                (n.to_string(), f.to_string())
            })
            .collect()
    };
    let plain = tmp.path().join("plain.chip");
    cli_build(
        &plain,
        &["--format", "a4g32h", "--layer-format", "layers.0.*=s8g32h"],
    );
    let f = formats(&plain);
    assert_eq!(f["layers.0.attn.q.weight"], "s8g32h");
    assert_eq!(f["layers.0.mlp.down.weight"], "s8g32h");
    assert_eq!(f["layers.1.attn.q.weight"], "a4g32h");
    // Gains are not matrices: the rule leaves them alone.
    assert_eq!(f["layers.0.attn_norm.gain"], "q15.16");

    let calib = repo_root().join("examples/tiny-llama/sample.txt");
    let auto = tmp.path().join("auto.chip");
    cli_build(
        &auto,
        &[
            "--bits",
            "auto",
            "--bpw",
            "4.5",
            "--calib",
            calib.to_str().unwrap(),
            "--calib-chunks",
            "2",
            "--layer-format",
            "layers.1.mlp.*=a6g32h",
        ],
    );
    let f = formats(&auto);
    for n in ["gate", "up", "down"] {
        assert_eq!(f[&format!("layers.1.mlp.{n}.weight")], "a6g32h");
    }
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(auto.join("report.json")).unwrap()).unwrap();
    // The pass chose the other 13 matrices, within the budget that is left.
    let chosen = r["auto"]["chosen"].as_array().unwrap();
    assert_eq!(chosen.len(), 13);
    assert!(chosen
        .iter()
        .all(|c| !c["name"].as_str().unwrap().starts_with("layers.1.mlp.")));
    assert!(r["bits_per_weight"].as_f64().unwrap() <= 4.5);

    // A pattern that matches nothing is an error naming it, and no image.
    let bad = tmp.path().join("bad.chip");
    let o = std::process::Command::new(taalasc_bin())
        .args(["build", "--context", "256", "-o"])
        .arg(&bad)
        .arg(repo_root().join("examples/tiny-llama"))
        .args(["--layer-format", "layers.9.*=a4g32h"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("layers.9.*"), "{err}");
    assert!(!bad.exists());
}

#[test]
fn eval_of_several_images_scores_each_as_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a.chip"), tmp.path().join("b.chip"));
    cli_build(&a, &[]);
    cli_build(&b, &["--format", "s3g32h"]);
    let text = repo_root().join("examples/tiny-llama/sample.txt");
    let eval = |models: &[&std::path::Path]| -> serde_json::Value {
        let o = std::process::Command::new(taalasc_bin())
            .arg("eval")
            .args(models)
            .arg("--text")
            .arg(&text)
            .args(["--ctx", "64", "--json"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let both = eval(&[&a, &b]);
    let both = both.as_array().unwrap();
    assert_eq!(both.len(), 2);
    for (i, m) in [&a, &b].iter().enumerate() {
        let alone = eval(&[m]);
        for key in ["perplexity", "kl_mean", "top1", "bits_per_weight", "chunks"] {
            assert_eq!(both[i][key], alone[key], "{key} of image {i}");
        }
    }
    // 3-bit weights cost quality against 4-bit ones on the same positions.
    assert!(both[1]["kl_mean"].as_f64().unwrap() > both[0]["kl_mean"].as_f64().unwrap());
    assert!(
        both[1]["bits_per_weight"].as_f64().unwrap() < both[0]["bits_per_weight"].as_f64().unwrap()
    );
}

/// A chip built from the first layer of the two (`build --layers 1`) is
/// scored against the float model of that one layer, not the whole model:
/// the integer datapath stays close to its own float baseline.
#[test]
fn eval_of_a_layer_slice_uses_the_same_slice_as_float_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let chip = dir.path().join("l1.chip");
    cli_build(&chip, &["--layers", "1", "--no-rtl"]);
    let text = repo_root().join("examples/tiny-llama/sample.txt");
    let o = std::process::Command::new(taalasc_bin())
        .args([
            "eval",
            chip.to_str().unwrap(),
            "--text",
            text.to_str().unwrap(),
        ])
        .args(["--ctx", "64", "--chunks", "4", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // Against the two-layer float model the one-layer chip would be far off
    // (its perplexity is 107 on these chunks, the two-layer chip's 20.8).
    let kl = j["kl_mean"].as_f64().unwrap();
    assert!(kl < 0.05, "KL {kl} against the one-layer float model");
    assert!(j["top1"].as_f64().unwrap() > 0.85, "{j:#}");
}
