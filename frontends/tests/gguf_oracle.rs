//! The GGUF reader against independent oracles made with gguf-py
//! (`tests/oracle/make_gguf_fixtures.py`):
//!
//! * `quants.gguf`: one `[4, 256]` tensor per ggml type, whose expected f32
//!   values (`gguf.quants.dequantize`) sit in `quants_expected/<name>.npy`;
//!   decoding must be bit-exact. The metadata of every value type is checked
//!   against `quants.json`.
//! * `tiny_llama.gguf`: a tiny converted Llama; hyperparameters and the
//!   embedded byte-level BPE tokenizer are checked against
//!   `tiny_llama_oracle.json`.

use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use taalasc_frontends::dequant;
use taalasc_frontends::gguf::{GgufFile, Value};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/gguf")
}

fn read_json(path: &Path) -> Json {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A little-endian f32 `.npy` file (format 1.x-3.x, C order): shape and values.
fn read_npy_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&b[..6], b"\x93NUMPY", "{}: not a .npy file", path.display());
    let (header_len, start) = match b[6] {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10),
        2 | 3 => (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12),
        v => panic!("{}: .npy format version {v}", path.display()),
    };
    let header = std::str::from_utf8(&b[start..start + header_len]).unwrap();
    assert!(
        header.contains("'descr': '<f4'"),
        "{}: {header}",
        path.display()
    );
    assert!(
        header.contains("'fortran_order': False"),
        "{}: {header}",
        path.display()
    );
    let shape_text = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap();
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let data = &b[start + header_len..];
    let values: Vec<f32> = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(
        values.len(),
        shape.iter().product::<usize>(),
        "{}",
        path.display()
    );
    (shape, values)
}

#[test]
fn quants_gguf_dequantizes_bit_exactly() {
    let dir = fixtures();
    let meta = read_json(&dir.join("quants.json"));
    let file = GgufFile::open(&dir.join("quants.gguf")).unwrap();
    let h = &file.header;
    assert_eq!(h.version as u64, meta["gguf_version"].as_u64().unwrap());
    assert_eq!(h.alignment, meta["alignment"].as_u64().unwrap());
    if let Some(off) = meta.get("data_section_offset").and_then(Json::as_u64) {
        assert_eq!(h.data_start, off);
    }
    let tensors = meta["tensors"].as_object().unwrap();
    assert_eq!(h.tensors.len(), tensors.len());
    assert_eq!(
        h.tensors.len() as u64,
        meta["tensor_count"].as_u64().unwrap()
    );
    for (name, t) in tensors {
        let info = file
            .tensor(name)
            .unwrap_or_else(|| panic!("tensor {name} not found"));
        assert_eq!(
            info.ggml_type as u64,
            t["ggml_type_id"].as_u64().unwrap(),
            "{name}"
        );
        let ne: Vec<u64> = t["ne"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(info.ne, ne, "{name}");
        let shape: Vec<usize> = t["numpy_shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(info.shape(), shape, "{name}");
        assert_eq!(
            (info.end - info.start) as u64,
            t["n_bytes"].as_u64().unwrap(),
            "{name}"
        );
        if let Some(off) = t.get("data_offset_in_file").and_then(Json::as_u64) {
            assert_eq!(info.start as u64, off, "{name}");
        }
        let (block, size) = info.dtype.block();
        assert_eq!(block as u64, t["block_size"].as_u64().unwrap(), "{name}");
        assert_eq!(size as u64, t["type_size"].as_u64().unwrap(), "{name}");

        let got =
            dequant::to_f32(info.dtype, file.tensor_bytes(info), info.numel() as usize).unwrap();
        let (exp_shape, expected) = read_npy_f32(&dir.join(t["expected_file"].as_str().unwrap()));
        assert_eq!(exp_shape, shape, "{name}");
        let mismatches: Vec<(usize, f32, f32)> = got
            .iter()
            .zip(&expected)
            .enumerate()
            .filter(|(_, (g, e))| g.to_bits() != e.to_bits())
            .map(|(i, (g, e))| (i, *g, *e))
            .collect();
        assert!(
            mismatches.is_empty(),
            "{name} ({}): {} of {} values differ from gguf-py, first (index, ours, gguf-py): {:?}",
            info.dtype,
            mismatches.len(),
            got.len(),
            &mismatches[..mismatches.len().min(5)]
        );
    }
}

#[test]
fn quants_gguf_metadata_of_every_type() {
    let dir = fixtures();
    let meta = read_json(&dir.join("quants.json"));
    let file = GgufFile::open(&dir.join("quants.gguf")).unwrap();
    let md = file.metadata();
    assert_eq!(
        md.str("general.architecture").unwrap(),
        meta["architecture"].as_str()
    );
    let expected = meta["metadata"].as_object().unwrap();
    assert!(!expected.is_empty());
    for (key, e) in expected {
        let v = md
            .get(key)
            .unwrap_or_else(|| panic!("metadata key {key} not found"));
        let ty = e["type"].as_str().unwrap();
        let want = &e["value"];
        // "UINT8", "FLOAT32", "STRING", "ARRAY[INT32]", "ARRAY (empty)", ...
        let got_type = match v {
            Value::Array(t, _) if ty.starts_with("ARRAY[") => {
                format!("ARRAY[{}]", t.name().to_uppercase())
            }
            other => other.value_type().name().to_uppercase(),
        };
        assert_eq!(got_type, ty.split(' ').next().unwrap(), "{key}");
        let got_json: Json = to_json(v);
        match (v, want) {
            (Value::F32(x), Json::Number(n)) => assert_eq!(*x, n.as_f64().unwrap() as f32, "{key}"),
            (Value::Array(_, items), Json::Array(w))
                if items.iter().any(|i| matches!(i, Value::F32(_))) =>
            {
                let xs: Vec<f32> = items.iter().map(|i| i.as_f64().unwrap() as f32).collect();
                let ws: Vec<f32> = w.iter().map(|n| n.as_f64().unwrap() as f32).collect();
                assert_eq!(xs, ws, "{key}");
            }
            _ => assert_eq!(&got_json, want, "{key}"),
        }
    }
}

fn to_json(v: &Value) -> Json {
    match v {
        Value::String(s) => Json::String(s.clone()),
        Value::Bool(b) => Json::Bool(*b),
        Value::F32(x) => serde_json::json!(*x as f64),
        Value::F64(x) => serde_json::json!(*x),
        Value::Array(_, items) => Json::Array(items.iter().map(to_json).collect()),
        other => {
            let i = other.as_int().unwrap();
            if i >= 0 {
                serde_json::json!(i as u64)
            } else {
                serde_json::json!(i as i64)
            }
        }
    }
}

#[test]
fn tiny_llama_gguf_hparams_and_tokenizer() {
    let dir = fixtures();
    let oracle = read_json(&dir.join("tiny_llama_oracle.json"));
    let m = taalasc_frontends::load(&dir.join(oracle["gguf_file"].as_str().unwrap())).unwrap();
    let hp = &oracle["hparams"];
    let u = |k: &str| hp[k].as_u64().unwrap() as usize;
    let h = &m.model.hparams;
    assert_eq!(h.architecture, "llama");
    assert_eq!(h.vocab_size, u("vocab_size"));
    assert_eq!(h.max_positions, u("context_length"));
    assert_eq!(h.d_model, u("embedding_length"));
    assert_eq!(h.n_layers, u("block_count"));
    assert_eq!(h.d_ff, u("feed_forward_length"));
    assert_eq!(h.n_heads, u("head_count"));
    assert_eq!(h.n_kv_heads, u("head_count_kv"));
    assert_eq!(h.head_dim, u("head_dim"));
    assert_eq!(
        h.tied_embeddings,
        hp["tie_word_embeddings"].as_bool().unwrap()
    );
    assert_eq!(
        h.bos_token_id.map(u64::from),
        oracle["bos_token_id"].as_u64()
    );
    assert_eq!(
        h.eos_token_id.map(u64::from),
        oracle["eos_token_id"].as_u64()
    );
    // Every weight loads and is finite.
    for id in 0..m.model.weights.len() {
        use taalasc_ir::WeightSource;
        let w = m.weights.load_f32(taalasc_ir::WeightId(id as u32)).unwrap();
        assert_eq!(w.len() as u64, m.model.weights[id].numel());
    }
    let tok = m
        .tokenizer
        .as_ref()
        .expect("tiny_llama.gguf embeds a tokenizer");
    assert!(!tok.add_bos);
    let ids = |key: &str| -> Vec<u32> {
        oracle[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect()
    };
    for (text_key, ids_key) in [("prompt_text", "prompt_tokens"), ("tokens_text", "tokens")] {
        let text = oracle[text_key].as_str().unwrap();
        let want = ids(ids_key);
        assert_eq!(tok.encode(text, true).unwrap(), want, "{text_key}");
        assert_eq!(tok.decode(&want).unwrap(), text, "{text_key}");
    }
}
