// Shared by the property tests (props_*.rs): whatever bytes a checkpoint holds, loading it returns
// `Ok` or an error that names the file; it never panics. Each property
// writes its input into a temporary folder and calls the public loader, as
// a user's `taalasc build` would. A panic anywhere fails the test (nothing
// is caught).
//
// The inputs are random bytes and mutations of small valid checkpoints
// (built here): truncations, byte flips, and counts, offsets, lengths and
// types overwritten with boundary values.

#![allow(dead_code)]

use proptest::prelude::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------- fixtures

/// A 1-layer Llama: vocab 16, d 8, 2 query heads of 4, 1 KV head, FF 16.
pub fn tiny_config() -> Value {
    json!({
        "architectures": ["LlamaForCausalLM"],
        "vocab_size": 16,
        "hidden_size": 8,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "intermediate_size": 16,
        "max_position_embeddings": 32,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "tie_word_embeddings": false,
        "hidden_act": "silu"
    })
}

/// HF tensors of [`tiny_config`], `[out, in]`.
pub fn tiny_hf_tensors() -> Vec<(String, Vec<usize>)> {
    let mut t = vec![
        ("model.embed_tokens.weight".to_string(), vec![16, 8]),
        ("model.norm.weight".to_string(), vec![8]),
        ("lm_head.weight".to_string(), vec![16, 8]),
    ];
    for (local, shape) in [
        ("input_layernorm.weight", vec![8]),
        ("post_attention_layernorm.weight", vec![8]),
        ("self_attn.q_proj.weight", vec![8, 8]),
        ("self_attn.k_proj.weight", vec![4, 8]),
        ("self_attn.v_proj.weight", vec![4, 8]),
        ("self_attn.o_proj.weight", vec![8, 8]),
        ("mlp.gate_proj.weight", vec![16, 8]),
        ("mlp.up_proj.weight", vec![16, 8]),
        ("mlp.down_proj.weight", vec![8, 16]),
    ] {
        t.push((format!("model.layers.0.{local}"), shape));
    }
    t
}

/// A safetensors container of F32 tensors filled with small values.
pub fn safetensors_bytes(tensors: &[(String, Vec<usize>)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), json!({"format": "pt"}));
    let mut data = Vec::new();
    for (name, shape) in tensors {
        let n: usize = shape.iter().product();
        let start = data.len();
        for i in 0..n {
            data.extend_from_slice(&(((i * 7) % 11) as f32 / 16.0 - 0.3).to_le_bytes());
        }
        header.insert(
            name.clone(),
            json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let h = serde_json::to_vec(&Value::Object(header)).unwrap();
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(&data);
    out
}

fn gguf_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

/// The same tiny Llama as a GGUF v3 file (F32 tensors, an SPM vocabulary).
pub fn tiny_gguf() -> Vec<u8> {
    const U32: u32 = 4;
    const F32: u32 = 6;
    const STR: u32 = 8;
    const ARR: u32 = 9;
    let mut kvs: Vec<(String, u32, Vec<u8>)> = Vec::new();
    let mut s = Vec::new();
    gguf_str(&mut s, "llama");
    kvs.push(("general.architecture".into(), STR, s));
    for (k, v) in [
        ("embedding_length", 8u32),
        ("block_count", 1),
        ("feed_forward_length", 16),
        ("attention.head_count", 2),
        ("attention.head_count_kv", 1),
        ("context_length", 32),
    ] {
        kvs.push((format!("llama.{k}"), U32, v.to_le_bytes().to_vec()));
    }
    kvs.push((
        "llama.attention.layer_norm_rms_epsilon".into(),
        F32,
        1e-5f32.to_le_bytes().to_vec(),
    ));
    let mut s = Vec::new();
    gguf_str(&mut s, "llama");
    kvs.push(("tokenizer.ggml.model".into(), STR, s));
    let mut toks = Vec::new();
    toks.extend(STR.to_le_bytes());
    toks.extend(16u64.to_le_bytes());
    for i in 0..16 {
        gguf_str(&mut toks, &format!("\u{2581}t{i}"));
    }
    kvs.push(("tokenizer.ggml.tokens".into(), ARR, toks));
    let mut scores = Vec::new();
    scores.extend(F32.to_le_bytes());
    scores.extend(16u64.to_le_bytes());
    for i in 0..16 {
        scores.extend((-(i as f32)).to_le_bytes());
    }
    kvs.push(("tokenizer.ggml.scores".into(), ARR, scores));
    kvs.push((
        "tokenizer.ggml.bos_token_id".into(),
        U32,
        1u32.to_le_bytes().to_vec(),
    ));
    let tensors: Vec<(&str, Vec<u64>)> = vec![
        ("token_embd.weight", vec![8, 16]),
        ("output_norm.weight", vec![8]),
        ("output.weight", vec![8, 16]),
        ("blk.0.attn_norm.weight", vec![8]),
        ("blk.0.attn_q.weight", vec![8, 8]),
        ("blk.0.attn_k.weight", vec![8, 4]),
        ("blk.0.attn_v.weight", vec![8, 4]),
        ("blk.0.attn_output.weight", vec![8, 8]),
        ("blk.0.ffn_norm.weight", vec![8]),
        ("blk.0.ffn_gate.weight", vec![8, 16]),
        ("blk.0.ffn_up.weight", vec![8, 16]),
        ("blk.0.ffn_down.weight", vec![16, 8]),
    ];
    let mut out = b"GGUF".to_vec();
    out.extend(3u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend((kvs.len() as u64).to_le_bytes());
    for (k, ty, v) in &kvs {
        gguf_str(&mut out, k);
        out.extend(ty.to_le_bytes());
        out.extend(v);
    }
    let mut data = Vec::new();
    for (name, ne) in &tensors {
        gguf_str(&mut out, name);
        out.extend((ne.len() as u32).to_le_bytes());
        for d in ne {
            out.extend(d.to_le_bytes());
        }
        out.extend(0u32.to_le_bytes()); // F32
        out.extend((data.len() as u64).to_le_bytes());
        let n: u64 = ne.iter().product();
        for i in 0..n {
            data.extend((((i * 5) % 9) as f32 / 8.0 - 0.5).to_le_bytes());
        }
        data.resize(data.len().div_ceil(32) * 32, 0);
    }
    out.resize(out.len().div_ceil(32) * 32, 0);
    out.extend(data);
    out
}

// ------------------------------------------------------------- mutations

/// One damage to a byte string.
#[derive(Clone, Debug)]
pub enum Mutation {
    /// Keep only the first `len % (n + 1)` bytes.
    Truncate(usize),
    /// XOR one byte.
    Flip(usize, u8),
    /// Overwrite 8 (or 4) bytes little-endian with a boundary value: lying
    /// counts, lengths, offsets, dimensions and type ids.
    Lie(usize, u64, bool),
    /// Insert bytes.
    Insert(usize, Vec<u8>),
}

pub fn boundary() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(2),
        Just(7),
        Just(31),
        Just(32),
        Just(255),
        Just(u32::MAX as u64),
        Just(1 << 31),
        Just(1 << 32),
        Just(1 << 40),
        Just(u64::MAX),
        Just(u64::MAX - 7),
        Just(i64::MAX as u64),
        any::<u64>(),
        0u64..64,
    ]
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => any::<usize>().prop_map(Mutation::Truncate),
        4 => (any::<usize>(), 1u8..=255).prop_map(|(p, x)| Mutation::Flip(p, x)),
        4 => (any::<usize>(), boundary(), any::<bool>()).prop_map(|(p, v, w)| Mutation::Lie(p, v, w)),
        1 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(p, b)| Mutation::Insert(p, b)),
    ]
}

pub fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let n = bytes.len();
    match m {
        Mutation::Truncate(len) => bytes.truncate(len % (n + 1)),
        Mutation::Flip(p, x) if n > 0 => bytes[p % n] ^= x,
        Mutation::Lie(p, v, wide) => {
            let w = if *wide { 8 } else { 4 };
            if n >= w {
                let at = p % (n - w + 1);
                bytes[at..at + w].copy_from_slice(&v.to_le_bytes()[..w]);
            }
        }
        Mutation::Insert(p, b) => {
            let at = p % (n + 1);
            bytes.splice(at..at, b.iter().copied());
        }
        _ => {}
    }
}

// ----------------------------------------------------------------- checks

/// Loads `path`; an error must name a file inside `dir` (the checkpoint, its
/// config or a shard). Never panics by itself: a panic comes from the loader.
pub fn check_load(path: &Path, dir: &Path) -> Result<(), TestCaseError> {
    if let Err(e) = taalasc_frontends::load(path) {
        let msg = e.to_string();
        prop_assert!(
            msg.starts_with(&*dir.to_string_lossy()),
            "error does not start with the file's path: {msg}"
        );
    }
    Ok(())
}

pub struct Scratch {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
}

thread_local! {
    // One folder per test thread, reused by every case (each case rewrites
    // the files it needs): creating a folder per case costs more than the load.
    static SCRATCH: std::rc::Rc<Scratch> = {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        std::rc::Rc::new(Scratch { _tmp: tmp, dir })
    };
}

pub fn scratch() -> std::rc::Rc<Scratch> {
    SCRATCH.with(|s| s.clone())
}

pub fn cases() -> ProptestConfig {
    ProptestConfig {
        // No regression files in the source tree; failures print the input.
        failure_persistence: None,
        ..ProptestConfig::with_cases(10_000)
    }
}

/// Any JSON value, including the awkward ones (negative, zero, huge,
/// fractional, strings, lists, objects).
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|x| json!(x)),
        any::<u64>().prop_map(|x| json!(x)),
        (-3i64..40).prop_map(|x| json!(x)),
        prop_oneof![
            Just(0u64),
            Just(1 << 32),
            Just(1 << 40),
            Just(u32::MAX as u64)
        ]
        .prop_map(|x| json!(x)),
        any::<f64>().prop_filter_map("finite", |x| x.is_finite().then(|| json!(x))),
        prop_oneof![
            Just(0.0f64),
            Just(-0.0),
            Just(-1.0),
            Just(1e-300),
            Just(1e300),
            Just(0.5),
            Just(1.5),
            Just(f64::MIN_POSITIVE)
        ]
        .prop_map(|x| json!(x)),
        prop_oneof![
            Just("silu"),
            Just(""),
            Just("llama3"),
            Just("linear"),
            Just("x")
        ]
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec(
                (
                    prop_oneof![
                        Just("rope_type"),
                        Just("type"),
                        Just("factor"),
                        Just("low_freq_factor"),
                        Just("high_freq_factor"),
                        Just("original_max_position_embeddings"),
                        Just("rope_theta"),
                    ],
                    inner
                ),
                0..5
            )
            .prop_map(|kv| Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

/// Every field a config may hold, the Llama family's and GPT-2's.
pub const FIELDS: &[&str] = &[
    "architectures",
    "model_type",
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "intermediate_size",
    "max_position_embeddings",
    "rms_norm_eps",
    "rope_theta",
    "rope_scaling",
    "rope_parameters",
    "partial_rotary_factor",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "tie_word_embeddings",
    "hidden_act",
    "attention_bias",
    "mlp_bias",
    "sliding_window",
    "use_sliding_window",
    "n_embd",
    "n_head",
    "n_layer",
    "n_inner",
    "n_positions",
    "layer_norm_epsilon",
    "activation_function",
];
