//! GGUF `llama` architecture: metadata → [`ArchSpec`], and llama.cpp tensor
//! names → [`Role`]s.
//!
//! llama.cpp stores a PyTorch `[out, in]` weight with `ne = [in, out]`, which
//! reversed is the IR's `[out, in]` again, so no transposes are needed. Its
//! converter does permute the rows of the Q and K projections (within each
//! head, rotary pairs are interleaved instead of split into halves); the name
//! scheme undoes that with [`Transform::UnpermuteRope`].

use super::metadata::Metadata;
use crate::arch::{ArchSpec, MlpKind, NameScheme, NormKind, Positions, Resolved, Role};
use crate::error::LoadError;
use crate::tensors::{TensorIndex, Transform};
use std::path::{Path, PathBuf};
use taalasc_ir::{HParams, RopeScaling, RopeSpec};

/// `general.architecture` values this frontend lowers.
pub const SUPPORTED: &[&str] = &["llama"];

/// Upper bound on any single model size read from metadata (2^31).
const MAX_SIZE: usize = 1 << 31;

/// The [`ArchSpec`] a GGUF file's metadata describes. `index` is consulted
/// for what the metadata leaves to the tensors (tied embeddings, biases,
/// vocabulary size as a last resort).
pub fn arch_spec(meta: &Metadata, index: &TensorIndex) -> Result<ArchSpec, LoadError> {
    let path = meta.path();
    let arch = meta.str("general.architecture")?.ok_or_else(|| {
        meta.err(
            "general.architecture",
            "missing (every GGUF model names its architecture)",
        )
    })?;
    if !SUPPORTED.contains(&arch) {
        return Err(LoadError::UnknownArchitecture {
            path: path.to_path_buf(),
            arch: arch.to_string(),
            supported: SUPPORTED.join(", "),
        });
    }
    let k = |s: &str| format!("{arch}.{s}");

    if let Some(n) = meta.usize(&k("expert_count"))?.filter(|&n| n > 0) {
        return Err(meta.err(
            &k("expert_count"),
            format!("mixture-of-experts models ({n} experts) are not supported"),
        ));
    }
    let d = meta.positive(&k("embedding_length"))?;
    let n_layers = meta.positive(&k("block_count"))?;
    let d_ff = meta.positive(&k("feed_forward_length"))?;
    let n_heads = meta.positive(&k("attention.head_count"))?;
    let n_kv_heads = match meta.usize(&k("attention.head_count_kv"))? {
        None => n_heads,
        Some(0) => return Err(meta.err(&k("attention.head_count_kv"), "must be positive, found 0")),
        Some(n) => n,
    };
    if n_heads % n_kv_heads != 0 {
        return Err(meta.err(
            &k("attention.head_count_kv"),
            format!("head_count = {n_heads} is not a multiple of head_count_kv = {n_kv_heads}"),
        ));
    }
    let head_dim = match meta.usize(&k("attention.key_length"))? {
        Some(0) => return Err(meta.err(&k("attention.key_length"), "must be positive, found 0")),
        Some(h) => h,
        None if d % n_heads == 0 => d / n_heads,
        None => {
            return Err(meta.err(
                &k("attention.head_count"),
                format!("embedding_length = {d} is not a multiple of head_count = {n_heads}, and there is no attention.key_length"),
            ))
        }
    };
    if let Some(v) = meta.usize(&k("attention.value_length"))? {
        if v != head_dim {
            return Err(meta.err(
                &k("attention.value_length"),
                format!("{v} differs from the key length {head_dim} (unsupported)"),
            ));
        }
    }
    let rotary_dim = meta.usize(&k("rope.dimension_count"))?.unwrap_or(head_dim);
    if rotary_dim != head_dim {
        // The Q/K row un-permutation spans whole heads, so it only restores the
        // split-halves layout when every feature rotates.
        return Err(meta.err(
            &k("rope.dimension_count"),
            format!("partial rotary embeddings ({rotary_dim} of {head_dim} head features) are not supported for `llama`"),
        ));
    }
    let theta = meta.f64(&k("rope.freq_base"))?.unwrap_or(10000.0);
    if theta <= 0.0 {
        return Err(meta.err(
            &k("rope.freq_base"),
            format!("must be positive, found {theta}"),
        ));
    }
    let eps_key = k("attention.layer_norm_rms_epsilon");
    let eps = meta
        .f64(&eps_key)?
        .ok_or_else(|| meta.err(&eps_key, "missing (the RMSNorm epsilon is required)"))?;
    if eps <= 0.0 || !(eps as f32 > 0.0 && (eps as f32).is_finite()) {
        return Err(meta.err(
            &eps_key,
            format!("must be positive and a finite f32, found {eps}"),
        ));
    }
    let max_positions = meta.positive(&k("context_length"))?;
    let scaling = rope_scaling(meta, arch)?;
    if index.get("rope_freqs.weight").is_some() {
        return Err(LoadError::tensor(
            path,
            "rope_freqs.weight",
            "per-frequency RoPE factors (Llama 3.1-style long-context scaling) are not supported yet",
        ));
    }

    let vocab_size = match meta.usize(&k("vocab_size"))? {
        Some(0) => return Err(meta.err(&k("vocab_size"), "must be positive, found 0")),
        Some(v) => v,
        None => match meta.get("tokenizer.ggml.tokens").and_then(|v| v.as_array()) {
            Some(tokens) if !tokens.is_empty() => tokens.len(),
            _ => match index.get("token_embd.weight").and_then(|e| e.shape.first().copied()) {
                Some(rows) if rows > 0 => rows,
                _ => {
                    return Err(meta.err(
                        &k("vocab_size"),
                        "missing, and neither tokenizer.ggml.tokens nor token_embd.weight gives the vocabulary size",
                    ))
                }
            },
        },
    };
    // Bound every size so later products (`n_heads * head_dim`, `vocab * d`)
    // cannot overflow, whatever the file claims.
    for (key, v) in [
        ("embedding_length", d),
        ("block_count", n_layers),
        ("feed_forward_length", d_ff),
        ("attention.head_count", n_heads),
        ("attention.key_length", head_dim),
        ("vocab_size", vocab_size),
        ("context_length", max_positions),
    ] {
        if v > MAX_SIZE {
            return Err(meta.err(
                &k(key),
                format!("{v} is implausibly large (limit {MAX_SIZE})"),
            ));
        }
    }
    if n_heads * head_dim > MAX_SIZE {
        return Err(meta.err(
            &k("attention.head_count"),
            format!("{n_heads} heads of {head_dim} features is implausibly large"),
        ));
    }
    let token_id = |key: &str| -> Result<Option<u32>, LoadError> {
        match meta.token_id(key)? {
            Some(id) if id as usize >= vocab_size => Err(meta.err(
                key,
                format!("token id {id} is outside the vocabulary (vocab_size = {vocab_size})"),
            )),
            id => Ok(id),
        }
    };
    let bos_token_id = token_id("tokenizer.ggml.bos_token_id")?;
    let eos_token_id = token_id("tokenizer.ggml.eos_token_id")?;
    token_id("tokenizer.ggml.padding_token_id")?;
    let has = |name: &str| index.get(name).is_some();
    let qkv_bias = ["attn_q", "attn_k", "attn_v"]
        .iter()
        .any(|t| has(&format!("blk.0.{t}.bias")));
    let o_bias = has("blk.0.attn_output.bias");
    let mlp_bias = ["ffn_gate", "ffn_up", "ffn_down"]
        .iter()
        .any(|t| has(&format!("blk.0.{t}.bias")));

    Ok(ArchSpec {
        hparams: HParams {
            architecture: arch.to_string(),
            vocab_size,
            d_model: d,
            n_layers,
            n_heads,
            n_kv_heads,
            head_dim,
            d_ff,
            max_positions,
            tied_embeddings: !has("output.weight"),
            bos_token_id,
            eos_token_id,
        },
        norm: NormKind::Rms,
        norm_eps: eps as f32,
        positions: Positions::Rope(RopeSpec {
            theta,
            rotary_dim,
            scaling,
        }),
        mlp: MlpKind::GatedSilu,
        qkv_bias,
        o_bias,
        mlp_bias,
        sliding_window: None,
    })
}

/// `{arch}.rope.scaling.type` / `.factor` (or the older `rope.scale_linear`).
/// Like llama.cpp, a missing type means linear and a missing or zero factor 1.
fn rope_scaling(meta: &Metadata, arch: &str) -> Result<RopeScaling, LoadError> {
    let type_key = format!("{arch}.rope.scaling.type");
    let factor_key = format!("{arch}.rope.scaling.factor");
    let legacy_key = format!("{arch}.rope.scale_linear");
    let (factor, key) = match meta.f64(&factor_key)? {
        Some(f) if f != 0.0 => (f, factor_key),
        _ => (
            meta.f64(&legacy_key)?.filter(|&f| f != 0.0).unwrap_or(1.0),
            legacy_key,
        ),
    };
    if factor < 0.0 {
        return Err(meta.err(&key, format!("must be positive, found {factor}")));
    }
    match meta.str(&type_key)?.unwrap_or("linear") {
        "none" | "linear" if factor == 1.0 => Ok(RopeScaling::None),
        "none" | "linear" => Ok(RopeScaling::Linear { factor }),
        other => Err(meta.err(
            &type_key,
            format!("unsupported RoPE scaling `{other}` (supported: none, linear)"),
        )),
    }
}

/// llama.cpp tensor names for the `llama` architecture.
pub struct LlamaCppNames {
    /// The GGUF file, for error messages.
    pub path: PathBuf,
    /// Query heads, for un-permuting the Q projection's rows.
    pub n_heads: usize,
    /// Key/value heads, for un-permuting the K projection's rows.
    pub n_kv_heads: usize,
}

impl NameScheme for LlamaCppNames {
    fn resolve(&self, role: Role, layer: Option<usize>, _: &TensorIndex) -> Option<Resolved> {
        let plain = |tensor: String| Resolved {
            tensor,
            transforms: Vec::new(),
        };
        let blk = |s: &str| format!("blk.{}.{s}", layer.unwrap_or(0));
        let unpermute = |tensor: String, n_heads: usize| Resolved {
            tensor,
            transforms: vec![Transform::UnpermuteRope { n_heads }],
        };
        Some(match role {
            Role::TokEmbed => plain("token_embd.weight".into()),
            Role::FinalNormGain => plain("output_norm.weight".into()),
            Role::LmHead => plain("output.weight".into()),
            Role::AttnNormGain => plain(blk("attn_norm.weight")),
            Role::MlpNormGain => plain(blk("ffn_norm.weight")),
            Role::QWeight => unpermute(blk("attn_q.weight"), self.n_heads),
            Role::QBias => unpermute(blk("attn_q.bias"), self.n_heads),
            Role::KWeight => unpermute(blk("attn_k.weight"), self.n_kv_heads),
            Role::KBias => unpermute(blk("attn_k.bias"), self.n_kv_heads),
            Role::VWeight => plain(blk("attn_v.weight")),
            Role::VBias => plain(blk("attn_v.bias")),
            Role::OWeight => plain(blk("attn_output.weight")),
            Role::OBias => plain(blk("attn_output.bias")),
            Role::GateWeight => plain(blk("ffn_gate.weight")),
            Role::GateBias => plain(blk("ffn_gate.bias")),
            Role::UpWeight => plain(blk("ffn_up.weight")),
            Role::UpBias => plain(blk("ffn_up.bias")),
            Role::DownWeight => plain(blk("ffn_down.weight")),
            Role::DownBias => plain(blk("ffn_down.bias")),
            Role::PosEmbed | Role::AttnNormBias | Role::MlpNormBias | Role::FinalNormBias => {
                return None
            }
        })
    }

    fn checkpoint_path(&self) -> &Path {
        &self.path
    }

    fn config_source(&self) -> String {
        format!("the GGUF metadata of {}", self.path.display())
    }
}
