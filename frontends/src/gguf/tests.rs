//! Tests on hand-built GGUF files (see [`super::writer`]).

use super::metadata::{Value, ValueType};
use super::reader::Header;
use super::writer::{f32_bytes, Writer};
use crate::error::LoadError;
use crate::LoadedModel;
use half::f16;
use std::path::{Path, PathBuf};
use taalasc_ir::{DType, WeightId, WeightSource};

const D: u64 = 32;
const HEADS: u64 = 4;
const KV_HEADS: u64 = 2;
const HEAD_DIM: u64 = 8;
const FF: u64 = 64;
const VOCAB: u64 = 8;
const TOKENS: [&str; 8] = [
    "<|endoftext|>",
    "a",
    "b",
    "c",
    "\u{120}",
    "ab",
    "\u{120}a",
    "abc",
];

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn strs(v: &[&str]) -> Value {
    Value::Array(ValueType::String, v.iter().map(|x| s(x)).collect())
}

/// Row-major `[rows, cols]` with element `(r, c)` = `r * 64 + c` (exact in f32).
fn matrix(rows: u64, cols: u64) -> Vec<u8> {
    f32_bytes((0..rows * cols).map(|i| ((i / cols) * 64 + i % cols) as f32))
}

/// A 1-layer GQA Llama (d 32, 4 heads, 2 KV heads, head_dim 8, ff 64, vocab 8)
/// with a tiny byte-level BPE tokenizer. All tensors F32, untied.
fn tiny() -> Writer {
    let mut w = Writer::default()
        .kv("general.architecture", s("llama"))
        .kv("general.name", s("tiny"))
        .kv("llama.context_length", Value::U32(64))
        .kv("llama.embedding_length", Value::U32(D as u32))
        .kv("llama.block_count", Value::U32(1))
        .kv("llama.feed_forward_length", Value::U32(FF as u32))
        .kv("llama.attention.head_count", Value::U32(HEADS as u32))
        .kv("llama.attention.head_count_kv", Value::U32(KV_HEADS as u32))
        .kv("llama.rope.freq_base", Value::F32(100000.0))
        .kv("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5))
        .kv("llama.rope.dimension_count", Value::U32(HEAD_DIM as u32))
        .kv("tokenizer.ggml.model", s("gpt2"))
        .kv("tokenizer.ggml.pre", s("gpt2"))
        .kv("tokenizer.ggml.tokens", strs(&TOKENS))
        .kv(
            "tokenizer.ggml.token_type",
            Value::Array(
                ValueType::I32,
                [3, 1, 1, 1, 1, 1, 1, 1].map(Value::I32).to_vec(),
            ),
        )
        .kv("tokenizer.ggml.merges", strs(&["a b", "\u{120} a", "ab c"]))
        .kv("tokenizer.ggml.bos_token_id", Value::U32(0))
        .kv("tokenizer.ggml.eos_token_id", Value::U32(0))
        .kv("tokenizer.ggml.add_bos_token", Value::Bool(false));
    let q = HEADS * HEAD_DIM;
    let kv = KV_HEADS * HEAD_DIM;
    // ne = [in, out]: row-major [out, in].
    let specs: [(&str, Vec<u64>); 12] = [
        ("token_embd.weight", vec![D, VOCAB]),
        ("blk.0.attn_norm.weight", vec![D]),
        ("blk.0.attn_q.weight", vec![D, q]),
        ("blk.0.attn_k.weight", vec![D, kv]),
        ("blk.0.attn_v.weight", vec![D, kv]),
        ("blk.0.attn_output.weight", vec![q, D]),
        ("blk.0.ffn_norm.weight", vec![D]),
        ("blk.0.ffn_gate.weight", vec![D, FF]),
        ("blk.0.ffn_up.weight", vec![D, FF]),
        ("blk.0.ffn_down.weight", vec![FF, D]),
        ("output_norm.weight", vec![D]),
        ("output.weight", vec![D, VOCAB]),
    ];
    for (name, ne) in specs {
        let rows = ne.get(1).copied().unwrap_or(1);
        w = w.tensor(name, &ne, 0, matrix(rows, ne[0]));
    }
    w
}

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn load_bytes(bytes: &[u8]) -> Result<LoadedModel, LoadError> {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "m.gguf", bytes);
    super::load(&p, None)
}

fn parse(bytes: &[u8]) -> Result<Header, LoadError> {
    Header::parse(Path::new("t.gguf"), bytes)
}

fn weight(m: &LoadedModel, name: &str) -> Vec<f32> {
    let id = m
        .model
        .weights
        .iter()
        .position(|w| w.name == name)
        .unwrap_or_else(|| panic!("no weight {name}"));
    m.weights.load_f32(WeightId(id as u32)).unwrap()
}

/// Asserts `r` failed with a message containing every one of `needles`.
#[track_caller]
fn assert_err<T>(r: Result<T, LoadError>, needles: &[&str]) -> LoadError {
    let e = match r {
        Ok(_) => panic!("expected an error mentioning {needles:?}"),
        Err(e) => e,
    };
    let msg = e.to_string();
    for n in needles {
        assert!(msg.contains(n), "error `{msg}` does not mention `{n}`");
    }
    e
}

#[test]
fn loads_a_tiny_llama() {
    let m = load_bytes(&tiny().bytes()).unwrap();
    let h = &m.model.hparams;
    assert_eq!(h.architecture, "llama");
    assert_eq!(
        (h.d_model, h.n_layers, h.n_heads, h.n_kv_heads, h.head_dim),
        (32, 1, 4, 2, 8)
    );
    assert_eq!((h.d_ff, h.vocab_size, h.max_positions), (64, 8, 64));
    assert!(!h.tied_embeddings);
    assert_eq!((h.bos_token_id, h.eos_token_id), (Some(0), Some(0)));
    assert_eq!(m.format, crate::SourceFormat::Gguf);
    // 12 tensors, all bound.
    assert_eq!(m.model.weights.len(), 12);
    for (i, w) in m.model.weights.iter().enumerate() {
        assert_eq!(w.dtype, DType::F32);
        let v = m.weights.load_f32(WeightId(i as u32)).unwrap();
        assert_eq!(v.len() as u64, w.numel(), "{}", w.name);
    }
    assert_eq!(m.model.weights[0].shape, vec![8, 32]);
    // V is not permuted: row r holds r*64 + c.
    let v = weight(&m, "layers.0.attn.v.weight");
    assert_eq!(v[33], 64.0 + 1.0);
}

#[test]
fn q_and_k_rows_are_unpermuted_per_head() {
    let m = load_bytes(&tiny().bytes()).unwrap();
    // Within each head of 8 rows, GGUF row 2i + j holds HF row j * 4 + i, so
    // HF row k comes from GGUF row (k % 4) * 2 + k / 4.
    let expect_rows = |n_heads: u64| -> Vec<u64> {
        (0..n_heads * HEAD_DIM)
            .map(|r| {
                let (h, k) = (r / HEAD_DIM, r % HEAD_DIM);
                h * HEAD_DIM + (k % 4) * 2 + k / 4
            })
            .collect()
    };
    for (name, n_heads) in [
        ("layers.0.attn.q.weight", HEADS),
        ("layers.0.attn.k.weight", KV_HEADS),
    ] {
        let w = weight(&m, name);
        let rows: Vec<u64> = w.chunks(D as usize).map(|row| row[0] as u64 / 64).collect();
        assert_eq!(rows, expect_rows(n_heads), "{name}");
        // Columns stay in place.
        assert_eq!(w[5] as u64 % 64, 5);
    }
    // Head 0 explicitly: [0, 2, 4, 6, 1, 3, 5, 7].
    assert_eq!(&expect_rows(1)[..], &[0, 2, 4, 6, 1, 3, 5, 7]);
}

#[test]
fn missing_output_means_tied_embeddings() {
    let m = load_bytes(&tiny().without_tensor("output.weight").bytes()).unwrap();
    assert!(m.model.hparams.tied_embeddings);
    assert_eq!(m.model.weights.len(), 11);
}

#[test]
fn quantized_weights_dequantize_through_the_weight_source() {
    // ffn_up as Q4_1 (64 rows of 32 = 64 blocks) with d = 0.5, m = -1 and
    // nibbles 0..15 / 15..0; token_embd as Q8_0 with d = 0.25, q = i - 16.
    let mut q41 = Vec::new();
    for _ in 0..FF {
        q41.extend(f16::from_f32(0.5).to_le_bytes());
        q41.extend(f16::from_f32(-1.0).to_le_bytes());
        q41.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
    }
    let mut q80 = Vec::new();
    for _ in 0..VOCAB {
        q80.extend(f16::from_f32(0.25).to_le_bytes());
        q80.extend((0..32).map(|i| (i as i8 - 16) as u8));
    }
    let w = tiny()
        .tensor("blk.0.ffn_up.weight", &[D, FF], 3, q41)
        .tensor("token_embd.weight", &[D, VOCAB], 8, q80);
    let m = load_bytes(&w.bytes()).unwrap();
    let up = weight(&m, "layers.0.mlp.up.weight");
    let info = m
        .model
        .weights
        .iter()
        .find(|w| w.name == "layers.0.mlp.up.weight")
        .unwrap();
    assert_eq!(info.dtype, DType::Q4_1);
    for row in up.chunks(32) {
        for j in 0..16 {
            assert_eq!(row[j], j as f32 * 0.5 - 1.0);
            assert_eq!(row[j + 16], (15 - j) as f32 * 0.5 - 1.0);
        }
    }
    let emb = weight(&m, "tok_embeddings");
    assert_eq!(m.model.weights[0].dtype, DType::Q8_0);
    for row in emb.chunks(32) {
        for (i, &x) in row.iter().enumerate() {
            assert_eq!(x, (i as f32 - 16.0) * 0.25);
        }
    }
}

#[test]
fn tokenizer_from_metadata_round_trips() {
    let m = load_bytes(&tiny().bytes()).unwrap();
    let t = m.tokenizer.as_ref().unwrap();
    assert_eq!(t.encode("ab abc", false).unwrap(), vec![5, 4, 7]);
    assert_eq!(t.decode(&[5, 4, 7]).unwrap(), "ab abc");
    // The control token is not split.
    assert_eq!(t.encode("a<|endoftext|>b", false).unwrap(), vec![1, 0, 2]);
    assert!(!t.add_bos);
    assert_eq!(t.encode("a", true).unwrap(), vec![1]);
}

#[test]
fn add_bos_token_is_honoured() {
    let w = tiny().kv("tokenizer.ggml.add_bos_token", Value::Bool(true));
    let m = load_bytes(&w.bytes()).unwrap();
    let t = m.tokenizer.unwrap();
    assert_eq!(t.encode("ab", true).unwrap(), vec![0, 5]);
    assert_eq!(t.encode("ab", false).unwrap(), vec![5]);
}

#[test]
fn smollm_pre_tokenizer_splits_digits() {
    let tokens = ["<|endoftext|>", "1", "2", "12"];
    let w = tiny()
        .kv("llama.vocab_size", Value::U32(VOCAB as u32))
        .kv("tokenizer.ggml.pre", s("smollm"))
        .kv("tokenizer.ggml.tokens", strs(&tokens))
        .kv("tokenizer.ggml.merges", strs(&["1 2"]))
        .kv(
            "tokenizer.ggml.token_type",
            Value::Array(ValueType::I32, [3, 1, 1, 1].map(Value::I32).to_vec()),
        );
    let t = load_bytes(&w.bytes()).unwrap().tokenizer.unwrap();
    assert_eq!(t.encode("12", false).unwrap(), vec![1, 2]);
    let w = w.kv("tokenizer.ggml.pre", s("gpt2"));
    let t = load_bytes(&w.bytes()).unwrap().tokenizer.unwrap();
    assert_eq!(t.encode("12", false).unwrap(), vec![3]);
}

#[test]
fn llama3_and_qwen2_pre_tokenizers_build() {
    for pre in ["llama-bpe", "llama3", "qwen2", "default"] {
        let w = tiny().kv("tokenizer.ggml.pre", s(pre));
        let t = load_bytes(&w.bytes()).unwrap().tokenizer.unwrap();
        assert_eq!(t.encode("ab abc", false).unwrap(), vec![5, 4, 7], "{pre}");
    }
    let w = tiny().kv("tokenizer.ggml.pre", s("deepseek-coder"));
    let e = assert_err(
        load_bytes(&w.bytes()),
        &["deepseek-coder", "tokenizer.ggml.pre"],
    );
    assert!(matches!(e, LoadError::Tokenizer { .. }));
}

/// [`tiny`] with a SentencePiece (`llama`) vocabulary of 10 pieces.
fn tiny_spm() -> Writer {
    // "▁ab" is best built as ▁ + ab (score of "ab" beats "▁a").
    let tokens = [
        "<unk>",
        "<s>",
        "</s>",
        "<0x7A>",
        "\u{2581}",
        "a",
        "b",
        "ab",
        "\u{2581}a",
        "\u{2581}ab",
    ];
    let types = [2, 3, 3, 6, 1, 1, 1, 1, 1, 1];
    let scores = [0.0, 0.0, 0.0, 0.0, -1.0, -2.0, -3.0, -0.5, -0.7, -0.1];
    tiny()
        .kv("tokenizer.ggml.model", s("llama"))
        .without("tokenizer.ggml.pre")
        .without("tokenizer.ggml.merges")
        .without("tokenizer.ggml.add_bos_token")
        .kv("tokenizer.ggml.tokens", strs(&tokens))
        .kv(
            "tokenizer.ggml.token_type",
            Value::Array(ValueType::I32, types.map(Value::I32).to_vec()),
        )
        .kv(
            "tokenizer.ggml.scores",
            Value::Array(ValueType::F32, scores.map(Value::F32).to_vec()),
        )
        .kv("tokenizer.ggml.bos_token_id", Value::U32(1))
        .kv("tokenizer.ggml.eos_token_id", Value::U32(2))
        .kv("llama.vocab_size", Value::U32(10))
        .tensor("token_embd.weight", &[D, 10], 0, matrix(10, D))
        .tensor("output.weight", &[D, 10], 0, matrix(10, D))
}

#[test]
fn sentencepiece_vocab_from_scores() {
    let w = tiny_spm();
    let m = load_bytes(&w.bytes()).unwrap();
    let t = m.tokenizer.unwrap();
    assert!(t.add_bos, "SentencePiece vocabularies add BOS by default");
    assert_eq!(t.encode("ab", false).unwrap(), vec![9]);
    assert_eq!(t.encode("ab", true).unwrap(), vec![1, 9]);
    assert_eq!(t.encode("ab ba", false).unwrap(), vec![9, 4, 6, 5]);
    // Unknown characters fall back to bytes.
    assert_eq!(t.encode("z", false).unwrap(), vec![4, 3]);
    assert_eq!(t.decode(&[9, 4, 6, 5]).unwrap(), "ab ba");
}

#[test]
fn no_tokenizer_metadata_means_no_tokenizer() {
    let mut w = tiny();
    w.kvs.retain(|(k, _)| !k.starts_with("tokenizer."));
    let m = load_bytes(&w.kv("llama.vocab_size", Value::U32(VOCAB as u32)).bytes()).unwrap();
    assert!(m.tokenizer.is_none());
    assert_eq!(m.model.hparams.bos_token_id, None);
    // Without vocab_size or tokens, the embedding rows give the vocabulary.
    let mut w = tiny();
    w.kvs.retain(|(k, _)| !k.starts_with("tokenizer."));
    assert_eq!(load_bytes(&w.bytes()).unwrap().model.hparams.vocab_size, 8);
}

#[test]
fn metadata_values_of_every_type_round_trip() {
    let arr = |t, v: Vec<Value>| Value::Array(t, v);
    let values = vec![
        ("u8", Value::U8(200)),
        ("i8", Value::I8(-100)),
        ("u16", Value::U16(60000)),
        ("i16", Value::I16(-30000)),
        ("u32", Value::U32(4_000_000_000)),
        ("i32", Value::I32(-2_000_000_000)),
        ("f32", Value::F32(0.15625)),
        ("bool", Value::Bool(true)),
        ("str", s("héllo ✓")),
        ("empty", s("")),
        ("u64", Value::U64((1 << 40) + 7)),
        ("i64", Value::I64(-(1 << 40) - 7)),
        ("f64", Value::F64(std::f64::consts::PI)),
        (
            "arr_i32",
            arr(ValueType::I32, vec![Value::I32(1), Value::I32(-2)]),
        ),
        ("arr_str", arr(ValueType::String, vec![s("a"), s("")])),
        ("arr_empty", arr(ValueType::U8, vec![])),
        (
            "nested",
            arr(
                ValueType::Array,
                vec![arr(ValueType::U16, vec![Value::U16(3)])],
            ),
        ),
    ];
    let mut w = Writer::default();
    for (k, v) in &values {
        w = w.kv(k, v.clone());
    }
    let h = parse(&w.bytes()).unwrap();
    assert_eq!(h.version, 3);
    assert_eq!(h.alignment, 32);
    assert!(h.tensors.is_empty());
    let got: Vec<(&str, &Value)> = h.metadata.iter().collect();
    assert_eq!(got.len(), values.len());
    for ((k, v), (gk, gv)) in values.iter().zip(got) {
        assert_eq!((*k, v), (gk, gv));
    }
    // Version 2 has the same layout.
    let mut w2 = w;
    w2.version = 2;
    assert_eq!(parse(&w2.bytes()).unwrap().version, 2);
}

#[test]
fn tensor_infos_give_shapes_and_absolute_ranges() {
    let mut w = tiny();
    w.alignment = 64;
    let w = w.kv("general.alignment", Value::U32(64));
    let bytes = w.bytes();
    let h = parse(&bytes).unwrap();
    assert_eq!(h.alignment, 64);
    assert_eq!(h.data_start % 64, 0);
    let q = h
        .tensors
        .iter()
        .find(|t| t.name == "blk.0.attn_k.weight")
        .unwrap();
    assert_eq!(q.ne, vec![32, 16]);
    assert_eq!(q.shape(), vec![16, 32]);
    assert_eq!(q.start as u64, h.data_start + q.offset);
    assert_eq!(q.end - q.start, 16 * 32 * 4);
    assert_eq!(&bytes[q.start..q.start + 8], &f32_bytes([0.0, 1.0])[..]);
}

// ------------------------------------------------------------------ errors

#[test]
fn bad_magic() {
    let mut w = tiny();
    w.magic = *b"GGML";
    let e = assert_err(parse(&w.bytes()), &["t.gguf", "not a GGUF file", "GGML"]);
    assert!(matches!(e, LoadError::Format { .. }));
    assert_err(parse(b"GG"), &["truncated", "magic"]);
}

#[test]
fn unsupported_versions() {
    for (v, needle) in [
        (1, "version 1"),
        (4, "version 4"),
        (0x0300_0000, "big-endian"),
    ] {
        let mut w = tiny();
        w.version = v;
        assert_err(parse(&w.bytes()), &["t.gguf", needle]);
    }
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = tiny().bytes();
    for len in 0..bytes.len() {
        assert!(
            parse(&bytes[..len]).is_err(),
            "prefix of {len} bytes parsed"
        );
    }
    assert!(parse(&bytes).is_ok());
    // Spot-check the messages at a few points.
    assert_err(parse(&bytes[..6]), &["truncated", "version"]);
    // Counts are checked against the bytes left before anything else.
    assert_err(parse(&bytes[..30]), &["tensor count 12", "cannot fit"]);
    let mut w = Writer::default().kv("general.architecture", s("llama"));
    // Header 24 bytes, key 8 + 20, type 4, string length 8, "llama" at 64.
    assert_err(
        parse(&w.bytes()[..60]),
        &[
            "truncated",
            "value of metadata entry `general.architecture`",
        ],
    );
    assert_err(
        parse(&w.bytes()[..66]),
        &["truncated", "`general.architecture`"],
    );
    w = w.tensor("x", &[4], 0, f32_bytes([1.0; 4]));
    let b = w.bytes();
    let name_at = b.windows(1).rposition(|x| x == b"x").unwrap();
    assert_err(
        parse(&b[..name_at + 3]),
        &["tensor `x`", "truncated", "n_dims"],
    );
    assert_err(parse(&b[..b.len() - 1]), &["tensor `x`", "past the end"]);
}

#[test]
fn file_shorter_than_the_magic() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "empty.gguf", b"");
    assert_err(super::load(&p, None), &["empty.gguf", "only 0 bytes"]);
}

#[test]
fn allocation_bombs_are_rejected() {
    // Tensor count far beyond what the file could hold.
    let mut b = Writer::default().bytes();
    b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_err(parse(&b), &["tensor count", "cannot fit"]);
    let mut b = Writer::default().bytes();
    b[16..24].copy_from_slice(&(1u64 << 60).to_le_bytes());
    assert_err(parse(&b), &["metadata", "cannot fit"]);
    // Value offsets below: header 24 bytes, key length 8, key, type 4.
    // A string length beyond the end of the file.
    let mut b = Writer::default().kv("k", s("abc")).bytes();
    let at = 24 + 8 + 1 + 4;
    assert_eq!(&b[at..at + 8], &3u64.to_le_bytes());
    b[at..at + 8].copy_from_slice(&(u64::MAX - 1).to_le_bytes());
    assert_err(parse(&b), &["`k`", "truncated"]);
    // An array count beyond the end of the file.
    let mut b = Writer::default()
        .kv("arr", Value::Array(ValueType::U64, vec![Value::U64(1)]))
        .bytes();
    let at = 24 + 8 + 3 + 4 + 4;
    assert_eq!(&b[at..at + 8], &1u64.to_le_bytes());
    b[at..at + 8].copy_from_slice(&(1u64 << 62).to_le_bytes());
    assert_err(parse(&b), &["`arr`", "cannot fit"]);
    // A string array whose string claims to be huge.
    let mut b = Writer::default().kv("arr", strs(&["x"])).bytes();
    let at = 24 + 8 + 3 + 4 + 4 + 8;
    assert_eq!(&b[at..at + 8], &1u64.to_le_bytes());
    b[at..at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert_err(parse(&b), &["`arr`", "truncated"]);
}

#[test]
fn malformed_metadata() {
    // Unknown value type.
    let mut b = Writer::default().kv("k", Value::U8(1)).bytes();
    let at = 24 + 8 + 1;
    b[at..at + 4].copy_from_slice(&77u32.to_le_bytes());
    assert_err(parse(&b), &["`k`", "unknown value type 77"]);
    // Bool that is neither 0 nor 1.
    let mut b = Writer::default().kv("flag", Value::Bool(true)).bytes();
    assert_eq!(b[24 + 8 + 4 + 4], 1);
    b[24 + 8 + 4 + 4] = 7;
    assert_err(parse(&b), &["`flag`", "bool"]);
    // Duplicate key.
    let mut w = Writer::default().kv("k", Value::U8(1));
    w.kvs.push(("k".into(), Value::U8(2)));
    assert_err(parse(&w.bytes()), &["`k`", "twice"]);
    // Invalid UTF-8 in a key.
    let mut b = Writer::default().kv("kk", Value::U8(1)).bytes();
    b[24 + 8] = 0xFF;
    assert_err(parse(&b), &["UTF-8"]);
    // Arrays nested too deep.
    let mut v = Value::U8(0);
    for _ in 0..20 {
        v = Value::Array(v.value_type(), vec![v]);
    }
    assert_err(
        parse(&Writer::default().kv("deep", v).bytes()),
        &["`deep`", "nested"],
    );
    // Alignment that is not a power of two.
    let w = tiny().kv("general.alignment", Value::U32(24));
    assert_err(parse(&w.bytes()), &["general.alignment", "power of two"]);
}

#[test]
fn tensor_past_the_end() {
    let mut w = tiny();
    w.tensor_mut("output.weight").offset = Some(1 << 20);
    assert_err(
        parse(&w.bytes()),
        &["t.gguf", "tensor `output.weight`", "past the end"],
    );
    let mut w = tiny();
    w.tensor_mut("output.weight").offset = Some(u64::MAX - 31);
    assert_err(
        parse(&w.bytes()),
        &["tensor `output.weight`", "past the end"],
    );
}

#[test]
fn overlapping_tensors() {
    let mut w = tiny();
    w.tensor_mut("blk.0.attn_k.weight").offset = Some(0);
    assert_err(
        parse(&w.bytes()),
        &["overlap", "token_embd.weight", "blk.0.attn_k.weight"],
    );
}

#[test]
fn unaligned_offset() {
    let mut w = tiny();
    w.tensor_mut("blk.0.attn_k.weight").offset = Some(4);
    assert_err(
        parse(&w.bytes()),
        &["tensor `blk.0.attn_k.weight`", "alignment"],
    );
}

#[test]
fn unknown_ggml_type() {
    for (id, name) in [(16, "IQ2_XXS"), (9, "Q8_1"), (99, "unknown")] {
        let mut w = tiny();
        w.tensor_mut("blk.0.ffn_up.weight").ggml_type = id;
        assert_err(
            parse(&w.bytes()),
            &[
                "tensor `blk.0.ffn_up.weight`",
                &format!("ggml type {id} ({name})"),
            ],
        );
    }
}

#[test]
fn dims_not_a_whole_number_of_blocks() {
    // Q8_0 rows of 16 elements (blocks are 32).
    let w = Writer::default().tensor("w", &[16, 2], 8, vec![0; 34]);
    assert_err(
        parse(&w.bytes()),
        &["tensor `w`", "ne[0] = 16", "q8_0 blocks"],
    );
}

#[test]
fn bad_tensor_infos() {
    let mut w = tiny();
    w.tensor_mut("output_norm.weight").ne = vec![1, 1, 1, 1, 32];
    assert_err(
        parse(&w.bytes()),
        &["tensor `output_norm.weight`", "5 dimensions"],
    );
    let mut w = tiny();
    w.tensor_mut("output_norm.weight").ne = vec![u64::MAX, 4];
    assert_err(
        parse(&w.bytes()),
        &["tensor `output_norm.weight`", "overflow"],
    );
    // A byte size beyond 64 bits.
    let mut w = tiny();
    w.tensor_mut("output_norm.weight").ne = vec![1 << 62];
    assert_err(
        parse(&w.bytes()),
        &["tensor `output_norm.weight`", "overflow the byte size"],
    );
    // An empty dimension does not excuse absurd others.
    let mut w = tiny();
    w.tensor_mut("output_norm.weight").ne = vec![0, u64::MAX, u64::MAX];
    w.tensor_mut("output_norm.weight").data.clear();
    assert_err(
        parse(&w.bytes()),
        &["tensor `output_norm.weight`", "overflow"],
    );
    let mut w = tiny();
    let dup = w.tensor_mut("output_norm.weight").data.clone();
    w.tensors.push(super::writer::TensorSpec {
        name: "output_norm.weight".into(),
        ne: vec![32],
        ggml_type: 0,
        data: dup,
        offset: None,
    });
    assert_err(parse(&w.bytes()), &["tensor `output_norm.weight`", "twice"]);
}

#[test]
fn unknown_architecture() {
    let w = tiny().kv("general.architecture", s("gpt2"));
    let e = assert_err(load_bytes(&w.bytes()), &["m.gguf", "gpt2", "llama"]);
    assert!(matches!(e, LoadError::UnknownArchitecture { .. }));
    let w = tiny().without("general.architecture");
    assert_err(load_bytes(&w.bytes()), &["general.architecture", "missing"]);
}

#[test]
fn missing_tensor() {
    let w = tiny().without_tensor("blk.0.ffn_gate.weight");
    let e = assert_err(
        load_bytes(&w.bytes()),
        &["m.gguf", "blk.0.ffn_gate.weight", "missing"],
    );
    assert!(matches!(e, LoadError::MissingTensor { .. }));
}

#[test]
fn wrong_tensor_shape() {
    let w = tiny().tensor("blk.0.attn_v.weight", &[D, 8], 0, matrix(8, D));
    let e = assert_err(
        load_bytes(&w.bytes()),
        &["blk.0.attn_v.weight", "GGUF metadata"],
    );
    assert!(matches!(e, LoadError::Shape { .. }));
}

#[test]
fn missing_or_mistyped_hparams() {
    let w = tiny().without("llama.embedding_length");
    assert_err(
        load_bytes(&w.bytes()),
        &["llama.embedding_length", "missing"],
    );
    let w = tiny().kv("llama.block_count", s("one"));
    assert_err(load_bytes(&w.bytes()), &["llama.block_count", "string"]);
    let w = tiny().kv("llama.attention.head_count_kv", Value::U32(3));
    assert_err(
        load_bytes(&w.bytes()),
        &["llama.attention.head_count_kv", "multiple"],
    );
    let w = tiny()
        .kv("llama.attention.head_count", Value::U64(1 << 40))
        .kv("llama.attention.key_length", Value::U32(8));
    assert_err(
        load_bytes(&w.bytes()),
        &["llama.attention.head_count", "implausibly large"],
    );
    let w = tiny().kv("llama.rope.dimension_count", Value::U32(4));
    assert_err(
        load_bytes(&w.bytes()),
        &["llama.rope.dimension_count", "partial"],
    );
    let w = tiny()
        .kv("llama.rope.scaling.type", s("yarn"))
        .kv("llama.rope.scaling.factor", Value::F32(4.0));
    assert_err(load_bytes(&w.bytes()), &["llama.rope.scaling.type", "yarn"]);
    let w = tiny().kv("tokenizer.ggml.model", s("bert"));
    assert_err(load_bytes(&w.bytes()), &["tokenizer", "bert"]);
    let w = tiny().kv("tokenizer.ggml.bos_token_id", Value::U32(99));
    assert_err(
        load_bytes(&w.bytes()),
        &["tokenizer.ggml.bos_token_id", "outside"],
    );
}

#[test]
fn rope_settings_are_read() {
    use taalasc_ir::{Op, RopeScaling};
    let rope_of = |m: &LoadedModel| {
        m.model
            .graph
            .node_weights()
            .find_map(|n| match &n.op {
                Op::Rope { spec, .. } => Some(spec.clone()),
                _ => None,
            })
            .unwrap()
    };
    let m = load_bytes(&tiny().bytes()).unwrap();
    let r = rope_of(&m);
    assert_eq!(
        (r.theta, r.rotary_dim, r.scaling.clone()),
        (100000.0, 8, RopeScaling::None)
    );
    let w = tiny()
        .without("llama.rope.freq_base")
        .kv("llama.rope.scaling.factor", Value::F32(2.0));
    let r = rope_of(&load_bytes(&w.bytes()).unwrap());
    assert_eq!(
        (r.theta, r.scaling),
        (10000.0, RopeScaling::Linear { factor: 2.0 })
    );
}

/// The fixed-seed generator, so the corruption test is reproducible.
use taalasc_testrng::XorShift64 as Rng;

#[test]
fn corrupted_files_never_panic() {
    let mut no_tokenizer = tiny();
    no_tokenizer
        .kvs
        .retain(|(k, _)| !k.starts_with("tokenizer."));
    let goods = [tiny().bytes(), tiny_spm().bytes(), no_tokenizer.bytes()];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let dir = tempfile::tempdir().unwrap();
    for i in 0..600 {
        let good = &goods[i % goods.len()];
        let header_len = parse(good).unwrap().data_start as usize;
        let mut b = good.clone();
        for _ in 0..1 + rng.next_u64() % 4 {
            let at = (rng.next_u64() % header_len as u64) as usize;
            b[at] = match rng.next_u64() % 3 {
                0 => rng.next_u64() as u8,
                1 => 0xFF,
                _ => b[at] ^ (1 << (rng.next_u64() % 8)),
            };
        }
        if rng.next_u64().is_multiple_of(8) {
            b.truncate((rng.next_u64() % b.len() as u64) as usize);
        }
        let _ = parse(&b);
        if i % 6 == 0 {
            // The full path (mapping, lowering, tokenizer, weight reads) too.
            let p = write(&dir, "fuzz.gguf", &b);
            if let Ok(m) = super::load(&p, None) {
                for id in 0..m.model.weights.len() {
                    let _ = m.weights.load_f32(WeightId(id as u32));
                }
                if let Some(t) = m.tokenizer {
                    let _ = t.encode("ab abc<|endoftext|> z 12", true);
                    let _ = t.decode(&[0, 1, 2, 3, 4, 5, 6, 7]);
                }
            }
        }
    }
}
