//! Issue 14, frontend half ("nothing lost, nothing trusted"): a checkpoint
//! whose config or header lies is refused by `taalasc build` with an error
//! naming the file and the field or tensor, never a panic, never a silent
//! truncation or a dropped layer. Each test damages a copy of
//! `examples/tiny-llama` (or a small GGUF) in one way.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use taalasc_tests::*;

/// A copy of `examples/tiny-llama` (config, weights, tokenizer) in a
/// temporary folder.
fn tiny() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    std::fs::create_dir(&dir).unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(repo_root().join("examples/tiny-llama").join(f), dir.join(f)).unwrap();
    }
    (tmp, dir)
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut Value)) {
    let p = dir.join("config.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

/// `taalasc build DIR -o OUT` must fail with exit code 1 and an `error:` on
/// stderr that mentions every one of `parts`, and must not panic.
fn build_fails(dir: &Path, parts: &[&str]) -> String {
    let out_dir = dir.parent().unwrap().join("chip");
    let out = std::process::Command::new(taalasc_bin())
        .arg("build")
        .arg(dir)
        .arg("-o")
        .arg(&out_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "taalasc panicked:\n{stderr}");
    assert_eq!(out.status.code(), Some(1), "build should fail:\n{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    for p in parts {
        assert!(
            stderr.contains(p),
            "stderr does not mention `{p}`:\n{stderr}"
        );
    }
    stderr
}

/// Defect 1: `rms_norm_eps: -1` panicked in the integer norm at build time;
/// 0 and values that vanish in f32 are as wrong.
#[test]
fn bad_rms_norm_eps_is_a_config_error() {
    for eps in [json!(-1), json!(0), json!(0.0), json!(1e-300), json!(1e300)] {
        let (_t, dir) = tiny();
        edit_config(&dir, |c| c["rms_norm_eps"] = eps.clone());
        build_fails(&dir, &["config.json", "field `rms_norm_eps`", "positive"]);
    }
}

/// Defect 1: `rope_theta` 0 was accepted; negative too. Both layouts.
#[test]
fn bad_rope_theta_is_a_config_error() {
    for theta in [json!(0), json!(-10000.0)] {
        let (_t, dir) = tiny();
        edit_config(&dir, |c| c["rope_parameters"]["rope_theta"] = theta.clone());
        build_fails(
            &dir,
            &[
                "config.json",
                "field `rope_parameters.rope_theta`",
                "positive",
            ],
        );
        let (_t, dir) = tiny();
        edit_config(&dir, |c| {
            c.as_object_mut().unwrap().remove("rope_parameters");
            c["rope_theta"] = theta.clone();
        });
        build_fails(&dir, &["config.json", "field `rope_theta`", "positive"]);
    }
}

/// Defect 1: RoPE scaling parameters and the partial rotary factor are
/// range-checked.
#[test]
fn bad_rope_scaling_and_partial_rotary_are_config_errors() {
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"rope_type": "linear", "factor": 0}),
            "rope_parameters.factor",
        ),
        (
            json!({"rope_type": "linear", "factor": -2.0}),
            "rope_parameters.factor",
        ),
        (
            json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0,
                   "high_freq_factor": 1.0, "original_max_position_embeddings": 8192}),
            "rope_parameters.high_freq_factor",
        ),
        (
            json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                   "high_freq_factor": 4.0, "original_max_position_embeddings": 0}),
            "rope_parameters.original_max_position_embeddings",
        ),
    ];
    for (params, field) in cases {
        let (_t, dir) = tiny();
        edit_config(&dir, |c| {
            let mut p = params.clone();
            p["rope_theta"] = json!(10000.0);
            c["rope_parameters"] = p;
        });
        build_fails(&dir, &["config.json", &format!("field `{field}`")]);
    }
    for f in [json!(0), json!(1.5), json!(-0.5)] {
        let (_t, dir) = tiny();
        edit_config(&dir, |c| c["partial_rotary_factor"] = f.clone());
        build_fails(&dir, &["config.json", "field `partial_rotary_factor`"]);
    }
}

/// Defect 2: a token id of 2^40 was cast to u32 and became 0. Ids must
/// also lie inside the vocabulary.
#[test]
fn token_id_out_of_range_is_a_config_error() {
    for field in ["bos_token_id", "eos_token_id", "pad_token_id"] {
        for id in [
            json!(1u64 << 40),
            json!(512),
            json!(-1),
            json!([0, 1u64 << 33]),
        ] {
            let (_t, dir) = tiny();
            edit_config(&dir, |c| c[field] = id.clone());
            build_fails(&dir, &["config.json", &format!("field `{field}`")]);
        }
    }
    let (_t, dir) = tiny();
    edit_config(&dir, |c| c["bos_token_id"] = json!(1u64 << 40));
    build_fails(&dir, &["1099511627776", "vocab_size = 512"]);
}

/// Defect 3: a config with fewer layers than the checkpoint silently
/// dropped the rest; with more, the error did not point at the config.
#[test]
fn layer_count_must_match_the_checkpoint() {
    let (_t, dir) = tiny();
    edit_config(&dir, |c| c["num_hidden_layers"] = json!(1));
    build_fails(
        &dir,
        &[
            "config.json",
            "field `num_hidden_layers`",
            "declares 1 decoder layers, but the checkpoint holds 2",
            "model.layers.1.",
        ],
    );
    let (_t, dir) = tiny();
    edit_config(&dir, |c| c["num_hidden_layers"] = json!(3));
    build_fails(
        &dir,
        &["config.json", "field `num_hidden_layers`", "holds only 2"],
    );
}

/// Rewrites `model.safetensors` with its header text changed by `edit`.
fn edit_header(dir: &Path, edit: impl FnOnce(String) -> String) {
    let p = dir.join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = edit(String::from_utf8(bytes[8..8 + n].to_vec()).unwrap());
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(&p, out).unwrap();
}

/// Defect 4: a header naming a tensor twice kept the last copy silently
/// (an identical second copy built; one pointing at another tensor's bytes
/// was caught only as an overlap).
#[test]
fn duplicate_tensor_in_safetensors_header() {
    let name = "model.layers.0.input_layernorm.weight";
    for other in [name, "model.layers.1.input_layernorm.weight"] {
        let (_t, dir) = tiny();
        edit_header(&dir, |h| {
            let v: Value = serde_json::from_str(&h).unwrap();
            // A second entry of the same name.
            let second = v[other].to_string();
            let body = h.trim_end().strip_suffix('}').unwrap();
            format!("{body},\"{name}\":{second}}}")
        });
        build_fails(
            &dir,
            &["model.safetensors", &format!("duplicate key `{name}`")],
        );
    }
}

/// Defect 4, sharded: the same tensor in two shards, and an index that does
/// not describe its shards.
#[test]
fn sharded_duplicates_and_stale_index() {
    let (_t, dir) = tiny();
    std::fs::copy(
        dir.join("model.safetensors"),
        dir.join("model-00002-of-00002.safetensors"),
    )
    .unwrap();
    std::fs::rename(
        dir.join("model.safetensors"),
        dir.join("model-00001-of-00002.safetensors"),
    )
    .unwrap();
    let index = |map: serde_json::Map<String, Value>| {
        std::fs::write(
            dir.join("model.safetensors.index.json"),
            json!({"metadata": {}, "weight_map": map}).to_string(),
        )
        .unwrap();
    };
    let names: Vec<String> = {
        let bytes = std::fs::read(dir.join("model-00001-of-00002.safetensors")).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let h: serde_json::Map<String, Value> = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        h.keys().filter(|k| *k != "__metadata__").cloned().collect()
    };
    let mut map = serde_json::Map::new();
    for (i, n) in names.iter().enumerate() {
        let shard = if i % 2 == 0 { 1 } else { 2 };
        map.insert(
            n.clone(),
            json!(format!("model-0000{shard}-of-00002.safetensors")),
        );
    }
    index(map.clone());
    build_fails(&dir, &["more than one file", "model-0000"]);

    // One shard holds everything, but the index says half is elsewhere.
    std::fs::remove_file(dir.join("model-00002-of-00002.safetensors")).unwrap();
    std::fs::write(dir.join("model-00002-of-00002.safetensors"), {
        let h = b"{}";
        let mut b = (h.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(h);
        b
    })
    .unwrap();
    index(map);
    build_fails(
        &dir,
        &[
            "model.safetensors.index.json",
            "field `weight_map.",
            "names shard",
        ],
    );
}

/// Defect 5 and 1: a config that names a field twice is ambiguous; the
/// last copy does not silently win.
#[test]
fn duplicate_config_field() {
    let (_t, dir) = tiny();
    let p = dir.join("config.json");
    let text = std::fs::read_to_string(&p).unwrap();
    let text = text.replacen('{', "{\n  \"num_hidden_layers\": 7,", 1);
    std::fs::write(&p, text).unwrap();
    build_fails(&dir, &["config.json", "duplicate key `num_hidden_layers`"]);
}

/// Sizes and head counts: zero, negative, implausibly large, not dividing.
#[test]
fn bad_sizes_are_config_errors() {
    let cases: Vec<(&str, Value)> = vec![
        ("hidden_size", json!(0)),
        ("vocab_size", json!(-5)),
        ("intermediate_size", json!(1u64 << 40)),
        ("num_attention_heads", json!(0)),
        ("num_key_value_heads", json!(3)),
        ("head_dim", json!(1u64 << 35)),
        ("max_position_embeddings", json!(0.5)),
    ];
    for (field, v) in cases {
        let (_t, dir) = tiny();
        edit_config(&dir, |c| c[field] = v.clone());
        build_fails(&dir, &["config.json", &format!("field `{field}`")]);
    }
}

/// GGUF: a block count below the tensors the file holds is an error naming
/// the key and an unused tensor (the fixture holds 2 blocks).
#[test]
fn gguf_block_count_must_match_tensors() {
    let src = repo_root().join("tests/fixtures/gguf/tiny_llama.gguf");
    let mut bytes = std::fs::read(&src).unwrap();
    let key = b"llama.block_count";
    let at = bytes
        .windows(key.len())
        .position(|w| w == key)
        .expect("block_count key");
    // key, then the u32 type id, then the value.
    let v = at + key.len() + 4;
    let ty = u32::from_le_bytes(bytes[at + key.len()..v].try_into().unwrap());
    assert_eq!(ty, 4, "block_count stored as uint32");
    let have = u32::from_le_bytes(bytes[v..v + 4].try_into().unwrap());
    assert!(have >= 2);
    bytes[v..v + 4].copy_from_slice(&(have - 1).to_le_bytes());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("cut.gguf"), &bytes).unwrap();
    build_fails(
        &dir.join("cut.gguf"),
        &[
            "cut.gguf",
            "field `llama.block_count`",
            &format!("blk.{}.", have - 1),
        ],
    );
}
