//! The tokenizer stored in GGUF metadata (`tokenizer.ggml.*`), rebuilt as a
//! `tokenizers` pipeline.
//!
//! * `gpt2`: byte-level BPE. `tokens` are already in the byte-to-unicode
//!   alphabet, `merges` are `"left right"` strings in rank order. The split
//!   regex is chosen by `tokenizer.ggml.pre`, as llama.cpp does.
//! * `llama`: SentencePiece. Rebuilt as a BPE whose merges are every pair of
//!   vocabulary pieces that concatenate to another piece, ranked by that
//!   piece's score (what llama.cpp's SPM tokenizer merges greedily), with
//!   byte fallback and `▁` for spaces.
//!
//! Control tokens (type 3) become special added tokens, user-defined ones
//! (type 4) plain added tokens, so neither is split by the model.

use super::metadata::Metadata;
use crate::error::LoadError;
use crate::tokenizer::TextTokenizer;
use std::collections::HashMap;
use std::path::Path;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{
    AddedToken, DecoderWrapper, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer,
};

/// llama.cpp token types (`tokenizer.ggml.token_type`).
pub mod token_type {
    /// An ordinary vocabulary piece.
    pub const NORMAL: i128 = 1;
    /// The unknown-token placeholder.
    pub const UNKNOWN: i128 = 2;
    /// A control token (BOS, EOS, chat markers): added as a special token.
    pub const CONTROL: i128 = 3;
    /// A user-defined token: added as a plain (unsplit) added token.
    pub const USER_DEFINED: i128 = 4;
    /// A reserved, unused slot.
    pub const UNUSED: i128 = 5;
    /// A byte-fallback piece (`<0xAB>`).
    pub const BYTE: i128 = 6;
}

/// Llama 3's split pattern (`llama-bpe`): up to three digits per piece.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's split pattern: like Llama 3's but one digit per piece.
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// `tokenizer.ggml.pre` values handled for `gpt2`-type vocabularies.
pub const SUPPORTED_PRE: &[&str] = &["default", "gpt2", "smollm", "llama-bpe", "llama3", "qwen2"];

/// `tokenizer.ggml.model` values handled.
pub const SUPPORTED_MODELS: &[&str] = &["gpt2", "llama"];

/// The tokenizer described by `meta`, or `None` when the file has none.
/// `n_vocab` is the model's vocabulary size (embedding rows).
pub fn from_metadata(meta: &Metadata, n_vocab: usize) -> Result<Option<TextTokenizer>, LoadError> {
    let path = meta.path();
    let model = match meta.str("tokenizer.ggml.model")? {
        None | Some("none") => return Ok(None),
        Some(m) => m,
    };
    let err = |m: String| LoadError::Tokenizer {
        path: path.to_path_buf(),
        message: m,
    };
    let tokens = meta.str_array("tokenizer.ggml.tokens")?.ok_or_else(|| {
        err(format!(
            "tokenizer.ggml.model is `{model}` but tokenizer.ggml.tokens is missing"
        ))
    })?;
    if tokens.is_empty() {
        return Err(err("tokenizer.ggml.tokens is empty".into()));
    }
    if tokens.len() > n_vocab {
        return Err(err(format!(
            "{} tokens, but the model's vocabulary (embedding rows) is only {n_vocab}",
            tokens.len()
        )));
    }
    let types = match meta.int_array("tokenizer.ggml.token_type")? {
        Some(t) if t.len() != tokens.len() => {
            return Err(meta.err(
                "tokenizer.ggml.token_type",
                format!("has {} entries for {} tokens", t.len(), tokens.len()),
            ))
        }
        Some(t) => t,
        None => vec![token_type::NORMAL; tokens.len()],
    };
    let id = |key: &str| -> Result<Option<u32>, LoadError> {
        match meta.token_id(key)? {
            Some(i) if i as usize >= tokens.len() => Err(meta.err(
                key,
                format!(
                    "token id {i} is outside the {}-token vocabulary",
                    tokens.len()
                ),
            )),
            other => Ok(other),
        }
    };
    let (bos, eos) = (
        id("tokenizer.ggml.bos_token_id")?,
        id("tokenizer.ggml.eos_token_id")?,
    );
    let (inner, add_bos_default) = match model {
        "gpt2" => (byte_level_bpe(meta, &tokens, &types)?, false),
        "llama" => (
            sentencepiece(
                meta,
                &tokens,
                &types,
                id("tokenizer.ggml.unknown_token_id")?,
            )?,
            true,
        ),
        other => {
            return Err(err(format!(
                "unsupported tokenizer model `{other}` (tokenizer.ggml.model; supported: {})",
                SUPPORTED_MODELS.join(", ")
            )))
        }
    };
    let add_bos = meta
        .bool("tokenizer.ggml.add_bos_token")?
        .unwrap_or(add_bos_default);
    if add_bos && bos.is_none() {
        return Err(meta.err(
            "tokenizer.ggml.add_bos_token",
            "is true but there is no tokenizer.ggml.bos_token_id",
        ));
    }
    Ok(Some(TextTokenizer::new(
        inner,
        path.to_path_buf(),
        bos,
        eos,
        add_bos,
    )))
}

fn tok_err(path: &Path, message: impl Into<String>) -> LoadError {
    LoadError::Tokenizer {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Token string → id. Like llama.cpp, a string listed twice maps to its last id.
fn vocab_of(tokens: &[&str]) -> Vocab {
    tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.to_string(), i as u32))
        .collect()
}

/// Control tokens as special added tokens, user-defined ones as plain added tokens.
fn add_special_tokens(tok: &mut Tokenizer, tokens: &[&str], types: &[i128]) {
    let pick = |ty: i128, special: bool| -> Vec<AddedToken> {
        tokens
            .iter()
            .zip(types)
            .filter(|(t, &k)| k == ty && !t.is_empty())
            .map(|(t, _)| AddedToken::from(t.to_string(), special).normalized(false))
            .collect()
    };
    tok.add_special_tokens(&pick(token_type::CONTROL, true));
    tok.add_tokens(&pick(token_type::USER_DEFINED, false));
}

fn byte_level_bpe(
    meta: &Metadata,
    tokens: &[&str],
    types: &[i128],
) -> Result<Tokenizer, LoadError> {
    let path = meta.path();
    let merges_raw = meta.str_array("tokenizer.ggml.merges")?.ok_or_else(|| {
        tok_err(
            path,
            "tokenizer.ggml.model is `gpt2` but tokenizer.ggml.merges is missing",
        )
    })?;
    let mut merges = Vec::with_capacity(merges_raw.len());
    for (i, m) in merges_raw.iter().enumerate() {
        let (a, b) = m.split_once(' ').ok_or_else(|| {
            meta.err(
                "tokenizer.ggml.merges",
                format!("merge {i} ({m:?}) is not two tokens separated by a space"),
            )
        })?;
        merges.push((a.to_string(), b.to_string()));
    }
    let pre = meta.str("tokenizer.ggml.pre")?.unwrap_or("default");
    let byte_level = |use_regex: bool| ByteLevel::new(false, true, use_regex);
    let split = |pattern: &str| -> Result<PreTokenizerWrapper, LoadError> {
        Split::new(
            SplitPattern::Regex(pattern.to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map(PreTokenizerWrapper::Split)
        .map_err(|e| tok_err(path, format!("split regex for pre-tokenizer `{pre}`: {e}")))
    };
    // llama.cpp's Llama 3 tokenizer takes a pre-token that is itself a
    // vocabulary entry as is, without applying merges.
    let mut ignore_merges = false;
    let pre_tokenizer: PreTokenizerWrapper = match pre {
        "default" | "gpt2" => byte_level(true).into(),
        "smollm" => {
            PreSequence::new(vec![Digits::new(true).into(), byte_level(true).into()]).into()
        }
        "llama-bpe" | "llama3" => {
            ignore_merges = true;
            PreSequence::new(vec![split(LLAMA3_SPLIT)?, byte_level(false).into()]).into()
        }
        "qwen2" => PreSequence::new(vec![split(QWEN2_SPLIT)?, byte_level(false).into()]).into(),
        other => {
            return Err(tok_err(
                path,
                format!(
                    "unsupported pre-tokenizer `{other}` (tokenizer.ggml.pre; supported: {})",
                    SUPPORTED_PRE.join(", ")
                ),
            ))
        }
    };
    let bpe = BPE::builder()
        .vocab_and_merges(vocab_of(tokens), merges)
        .ignore_merges(ignore_merges)
        .build()
        .map_err(|e| tok_err(path, format!("building the BPE model: {e}")))?;
    let mut tok = Tokenizer::new(bpe);
    tok.with_pre_tokenizer(Some(pre_tokenizer));
    tok.with_decoder(Some(DecoderWrapper::ByteLevel(byte_level(true))));
    add_special_tokens(&mut tok, tokens, types);
    Ok(tok)
}

fn sentencepiece(
    meta: &Metadata,
    tokens: &[&str],
    types: &[i128],
    unk: Option<u32>,
) -> Result<Tokenizer, LoadError> {
    let path = meta.path();
    let scores: Vec<f64> = match meta.get("tokenizer.ggml.scores") {
        None => {
            return Err(tok_err(
                path,
                "tokenizer.ggml.model is `llama` but tokenizer.ggml.scores is missing",
            ))
        }
        Some(v) => v
            .as_array()
            .and_then(|a| a.iter().map(|x| x.as_f64()).collect::<Option<Vec<_>>>())
            .ok_or_else(|| {
                meta.err(
                    "tokenizer.ggml.scores",
                    format!("expected an array of numbers, found {}", v.describe()),
                )
            })?,
    };
    if scores.len() != tokens.len() {
        return Err(meta.err(
            "tokenizer.ggml.scores",
            format!("has {} entries for {} tokens", scores.len(), tokens.len()),
        ));
    }
    let add_space_prefix = meta
        .bool("tokenizer.ggml.add_space_prefix")?
        .unwrap_or(true);
    let vocab = vocab_of(tokens);
    // Every split of a mergeable piece into two vocabulary pieces is a merge,
    // ranked by the merged piece's score (higher first, then by id).
    let mergeable = |i: usize| {
        matches!(
            types[i],
            token_type::NORMAL | token_type::USER_DEFINED | token_type::UNUSED
        )
    };
    let mut ranked: Vec<(f64, u32, u32, u32)> = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if !mergeable(i) || vocab.get(*t) != Some(&(i as u32)) {
            continue;
        }
        for (at, _) in t.char_indices().skip(1) {
            let (a, b) = t.split_at(at);
            if let (Some(&ia), Some(&ib)) = (vocab.get(a), vocab.get(b)) {
                ranked.push((scores[i], i as u32, ia, ib));
            }
        }
    }
    ranked.sort_by(|x, y| {
        y.0.partial_cmp(&x.0)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then((x.1, x.2, x.3).cmp(&(y.1, y.2, y.3)))
    });
    let merges: Vec<(String, String)> = ranked
        .iter()
        .map(|&(_, _, a, b)| {
            (
                tokens[a as usize].to_string(),
                tokens[b as usize].to_string(),
            )
        })
        .collect();
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .byte_fallback(true)
        .fuse_unk(true);
    if let Some(u) = unk.or_else(|| {
        types
            .iter()
            .position(|&k| k == token_type::UNKNOWN)
            .map(|i| i as u32)
    }) {
        builder = builder.unk_token(tokens[u as usize].to_string());
    }
    let bpe = builder.build().map_err(|e| {
        tok_err(
            path,
            format!("building the SentencePiece-style BPE model: {e}"),
        )
    })?;
    let mut tok = Tokenizer::new(bpe);
    let replace = |from: &str, to: &str| {
        Replace::new(from, to).map_err(|e| tok_err(path, format!("normalizer: {e}")))
    };
    let mut normalizers = Vec::new();
    if add_space_prefix {
        normalizers.push(Prepend::new("\u{2581}".into()).into());
    }
    normalizers.push(replace(" ", "\u{2581}")?.into());
    tok.with_normalizer(Some(NormalizerSequence::new(normalizers)));
    let mut decoders: Vec<DecoderWrapper> = vec![
        replace("\u{2581}", " ")?.into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if add_space_prefix {
        decoders.push(Strip::new(' ', 1, 0).into());
    }
    tok.with_decoder(Some(DecoderSequence::new(decoders)));
    add_special_tokens(&mut tok, tokens, types);
    Ok(tok)
}

/// Counts per token type, for diagnostics and tests.
pub fn type_counts(meta: &Metadata) -> Result<HashMap<i128, usize>, LoadError> {
    let mut counts = HashMap::new();
    for t in meta
        .int_array("tokenizer.ggml.token_type")?
        .unwrap_or_default()
    {
        *counts.entry(t).or_default() += 1;
    }
    Ok(counts)
}
