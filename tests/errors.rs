//! Bad input gets a clear error naming the file and the tensor or field,
//! never a panic. Each test damages a copy of a valid fixture in one way.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use taalasc_tests::*;

/// Copies the `llama_gqa` fixture into a temporary folder.
fn scratch() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    std::fs::create_dir(&dir).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture("hf/llama_gqa").join(f), dir.join(f)).unwrap();
    }
    (tmp, dir)
}

/// Splits a safetensors file into (header JSON, data bytes).
fn split(path: &Path) -> (serde_json::Map<String, Value>, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    (header.as_object().unwrap().clone(), bytes[8 + n..].to_vec())
}

fn join(path: &Path, header: &serde_json::Map<String, Value>, data: &[u8]) {
    let h = serde_json::to_vec(header).unwrap();
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    std::fs::write(path, out).unwrap();
}

fn load_err(dir: &Path) -> String {
    match taalasc_frontends::load(dir) {
        Ok(_) => panic!("{} loaded, but it is damaged", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn assert_mentions(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(
            msg.contains(p),
            "error message `{msg}` does not mention `{p}`"
        );
    }
}

#[test]
fn truncated_safetensors_data() {
    let (_t, dir) = scratch();
    let f = dir.join("model.safetensors");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() - 100]).unwrap();
    let msg = load_err(&dir);
    assert_mentions(&msg, &["model.safetensors", "run past the end"]);
}

#[test]
fn truncated_safetensors_header() {
    let (_t, dir) = scratch();
    let f = dir.join("model.safetensors");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..50]).unwrap();
    assert_mentions(&load_err(&dir), &["model.safetensors", "truncated"]);
    std::fs::write(&f, &bytes[..5]).unwrap();
    assert_mentions(&load_err(&dir), &["model.safetensors", "truncated"]);
}

#[test]
fn offsets_past_the_end() {
    let (_t, dir) = scratch();
    let f = dir.join("model.safetensors");
    let (mut h, data) = split(&f);
    let n = data.len() as u64;
    h["model.norm.weight"]["data_offsets"] = json!([n - 64, n + 64]);
    join(&f, &h, &data);
    assert_mentions(
        &load_err(&dir),
        &["model.safetensors", "model.norm.weight", "run past the end"],
    );
}

#[test]
fn overlapping_tensors() {
    let (_t, dir) = scratch();
    let f = dir.join("model.safetensors");
    let (mut h, data) = split(&f);
    // Point the final norm at bytes inside another tensor, keeping its size.
    let size = {
        let o = &h["model.norm.weight"]["data_offsets"];
        o[1].as_u64().unwrap() - o[0].as_u64().unwrap()
    };
    let other = h["model.layers.0.input_layernorm.weight"]["data_offsets"][0]
        .as_u64()
        .unwrap();
    h["model.norm.weight"]["data_offsets"] = json!([other + 4, other + 4 + size]);
    join(&f, &h, &data);
    assert_mentions(&load_err(&dir), &["model.safetensors", "overlapping"]);
}

#[test]
fn size_that_disagrees_with_dtype_and_shape() {
    let (_t, dir) = scratch();
    let f = dir.join("model.safetensors");
    let (mut h, data) = split(&f);
    h["model.norm.weight"]["shape"] = json!([65]);
    join(&f, &h, &data);
    assert_mentions(
        &load_err(&dir),
        &["model.safetensors", "model.norm.weight", "needs"],
    );
}

#[test]
fn shape_contradicting_config() {
    let (_t, dir) = scratch();
    let cfg = dir.join("config.json");
    let mut c = read_json(&cfg);
    c["intermediate_size"] = json!(96);
    std::fs::write(&cfg, serde_json::to_vec(&c).unwrap()).unwrap();
    assert_mentions(
        &load_err(&dir),
        &[
            "model.safetensors",
            "model.layers.0.mlp.gate_proj.weight",
            "config.json",
            "[96, 32]",
        ],
    );
}

#[test]
fn missing_tensor() {
    let (_t, dir) = scratch();
    let f = dir.join("model.safetensors");
    let (mut h, data) = split(&f);
    // Remove lm_head: the config says untied, so it is required.
    h.remove("lm_head.weight");
    join(&f, &h, &data);
    assert_mentions(&load_err(&dir), &["lm_head.weight", "missing"]);
}

#[test]
fn unsupported_dtype() {
    let (_t, dir) = scratch();
    let f = dir.join("model.safetensors");
    let (mut h, data) = split(&f);
    h["model.norm.weight"]["dtype"] = json!("F8_E4M3");
    join(&f, &h, &data);
    assert_mentions(
        &load_err(&dir),
        &["model.safetensors", "model.norm.weight", "F8_E4M3"],
    );
}

#[test]
fn unknown_architecture() {
    let (_t, dir) = scratch();
    let cfg = dir.join("config.json");
    let mut c = read_json(&cfg);
    c["architectures"] = json!(["MambaForCausalLM"]);
    std::fs::write(&cfg, serde_json::to_vec(&c).unwrap()).unwrap();
    assert_mentions(
        &load_err(&dir),
        &["config.json", "MambaForCausalLM", "LlamaForCausalLM"],
    );
}

#[test]
fn config_not_json() {
    let (_t, dir) = scratch();
    std::fs::write(dir.join("config.json"), "{\"hidden_size\": 32,,}").unwrap();
    assert_mentions(&load_err(&dir), &["config.json", "not valid JSON"]);
}

#[test]
fn config_field_of_wrong_type() {
    let (_t, dir) = scratch();
    let cfg = dir.join("config.json");
    let mut c = read_json(&cfg);
    c["num_attention_heads"] = json!("four");
    std::fs::write(&cfg, serde_json::to_vec(&c).unwrap()).unwrap();
    assert_mentions(&load_err(&dir), &["config.json", "num_attention_heads"]);
}

#[test]
fn missing_config() {
    let (_t, dir) = scratch();
    std::fs::remove_file(dir.join("config.json")).unwrap();
    assert_mentions(&load_err(&dir.join("model.safetensors")), &["config.json"]);
}

#[test]
fn nan_and_inf_weights_are_rejected_when_read() {
    // Documented choice: NaN/Inf is an error, raised by the first stage that
    // reads the values (run, eval, build); `inspect` reads no values.
    for (bits, what) in [
        (f32::NAN.to_bits(), "NaN"),
        (f32::INFINITY.to_bits(), "inf"),
    ] {
        let (_t, dir) = scratch();
        let f = dir.join("model.safetensors");
        let (h, mut data) = split(&f);
        let start = h["model.layers.1.mlp.up_proj.weight"]["data_offsets"][0]
            .as_u64()
            .unwrap() as usize;
        data[start + 12..start + 16].copy_from_slice(&bits.to_le_bytes());
        join(&f, &h, &data);
        let loaded = taalasc_frontends::load(&dir).expect("headers are fine");
        let err = taalasc_float::FloatModel::new(&loaded.model, &loaded.weights)
            .err()
            .unwrap_or_else(|| panic!("{what} weight accepted"))
            .to_string();
        assert_mentions(
            &err,
            &[
                "model.safetensors",
                "model.layers.1.mlp.up_proj.weight",
                "element 3",
                what,
            ],
        );
    }
}

fn write_gguf_header(path: &Path, magic: &[u8], version: u32) {
    let mut b = magic.to_vec();
    b.extend_from_slice(&version.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    std::fs::write(path, b).unwrap();
}

#[test]
fn gguf_bad_magic_and_version() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("bad.gguf");
    write_gguf_header(&p, b"GGML", 3);
    assert_mentions(&load_err(&p), &["bad.gguf", "magic"]);
    write_gguf_header(&p, b"GGUF", 99);
    assert_mentions(&load_err(&p), &["bad.gguf", "99"]);
}

#[test]
fn gguf_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    let src = std::fs::read(fixture("gguf/tiny_llama.gguf")).unwrap();
    let p = tmp.path().join("cut.gguf");
    for cut in [3, 20, 200, src.len() / 2, src.len() - 1] {
        std::fs::write(&p, &src[..cut]).unwrap();
        let msg = load_err(&p);
        assert_mentions(&msg, &["cut.gguf"]);
    }
}

#[test]
fn cli_reports_errors_without_panicking() {
    let (_t, dir) = scratch();
    std::fs::write(dir.join("config.json"), "not json").unwrap();
    let out = std::process::Command::new(taalasc_bin())
        .args(["inspect"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.contains("config.json"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// `--layers-per-engine` out of range is an error naming the flag and the
/// limit, and writes no chip folder.
#[test]
fn layers_per_engine_out_of_range() {
    let (_t, dir) = scratch();
    let model = taalasc_tests::repo_root().join("examples/tiny-llama");
    for (extra, expect) in [
        (
            &["--layers-per-engine", "0"][..],
            "at least 1 decoder layer",
        ),
        (
            &["--layers-per-engine", "2", "--users", "200"][..],
            "400 KV cache regions",
        ),
    ] {
        let out_dir = dir.join("chip");
        let out = std::process::Command::new(taalasc_bin())
            .arg("build")
            .arg(&model)
            .arg("-o")
            .arg(&out_dir)
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("--layers-per-engine") && stderr.contains(expect),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!out_dir.exists());
    }
}
