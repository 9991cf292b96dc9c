//! `config.json` → [`ArchSpec`], for both the transformers 4.x layout
//! (`rope_theta`, `rope_scaling`, `torch_dtype`) and the 5.x layout
//! (`rope_parameters`, `dtype`).

use crate::arch::{ArchSpec, MlpKind, NormKind, Positions};
use crate::error::LoadError;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use taalasc_ir::{HParams, RopeScaling, RopeSpec};

/// Architectures this frontend lowers, by their `architectures[0]` name.
pub const SUPPORTED: &[&str] = &[
    "LlamaForCausalLM",
    "MistralForCausalLM",
    "Qwen2ForCausalLM",
    "GPT2LMHeadModel",
];

/// Upper bound on any single size read from the config (2^31), so that
/// products of sizes cannot overflow and every token id fits in `u32`.
pub const MAX_SIZE: usize = 1 << 31;

/// The family a config selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `LlamaForCausalLM`.
    Llama,
    /// `MistralForCausalLM` (Llama layout, optional sliding window).
    Mistral,
    /// `Qwen2ForCausalLM` (Llama layout with Q/K/V biases).
    Qwen2,
    /// `GPT2LMHeadModel` (LayerNorm, learned positions, GELU MLP, `Conv1D` weights).
    Gpt2,
}

/// A parsed `config.json`, with typed accessors whose errors name the file
/// and field.
pub struct Config {
    path: PathBuf,
    map: Map<String, Value>,
}

impl Config {
    /// Reads and parses `path`, which must hold a JSON object.
    pub fn read(path: &Path) -> Result<Self, LoadError> {
        let text = std::fs::read(path).map_err(|e| LoadError::io(path, e))?;
        Self::parse(path, &text)
    }

    /// Parses `text` as the contents of the config file `path` (used only in
    /// messages). A key given twice is an error, not "last one wins".
    pub fn parse(path: &Path, text: &[u8]) -> Result<Self, LoadError> {
        let value: Value = crate::json::parse_strict(text)
            .map_err(|e| LoadError::format(path, format!("config is not valid JSON: {e}")))?;
        match value {
            Value::Object(map) => Ok(Config {
                path: path.to_path_buf(),
                map,
            }),
            _ => Err(LoadError::format(path, "config must be a JSON object")),
        }
    }

    fn err(&self, field: &str, message: impl Into<String>) -> LoadError {
        LoadError::config(&self.path, field, message)
    }

    fn get(&self, field: &str) -> Option<&Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    fn usize(&self, field: &str) -> Result<usize, LoadError> {
        self.opt_usize(field)?
            .ok_or_else(|| self.err(field, "missing (a positive integer is required)"))
    }

    fn opt_usize(&self, field: &str) -> Result<Option<usize>, LoadError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n > MAX_SIZE as u64 => Err(self.err(
                    field,
                    format!("{n} is implausibly large (limit {MAX_SIZE})"),
                )),
                Some(n) if n > 0 => Ok(Some(n as usize)),
                _ => Err(self.err(field, format!("expected a positive integer, found {v}"))),
            },
        }
    }

    fn f64_in(
        &self,
        obj: &Map<String, Value>,
        field: &str,
        ctx: &str,
    ) -> Result<Option<f64>, LoadError> {
        match obj.get(field).filter(|v| !v.is_null()) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite())
                .map(Some)
                .ok_or_else(|| {
                    self.err(
                        &format!("{ctx}{field}"),
                        format!("expected a number, found {v}"),
                    )
                }),
        }
    }

    fn f64(&self, field: &str) -> Result<Option<f64>, LoadError> {
        self.f64_in(&self.map, field, "")
    }

    fn bool(&self, field: &str, default: bool) -> Result<bool, LoadError> {
        match self.get(field) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(self.err(field, format!("expected true or false, found {v}"))),
        }
    }

    /// A token id field that may be an integer or a list of integers (the
    /// first entry is used; every entry must be a valid id). Every id must be
    /// below `vocab_size`: an id is never truncated or wrapped.
    fn token_id(&self, field: &str, vocab_size: usize) -> Result<Option<u32>, LoadError> {
        let check = |v: &Value| -> Result<u32, LoadError> {
            let id = v.as_u64().ok_or_else(|| {
                self.err(
                    field,
                    format!("expected a non-negative integer token id, found {v}"),
                )
            })?;
            if id >= vocab_size as u64 {
                return Err(self.err(
                    field,
                    format!("token id {id} is outside the vocabulary (vocab_size = {vocab_size})"),
                ));
            }
            // vocab_size <= MAX_SIZE = 2^31, so the id fits in u32.
            Ok(id as u32)
        };
        match self.get(field) {
            None => Ok(None),
            Some(Value::Array(a)) => {
                let ids = a.iter().map(check).collect::<Result<Vec<u32>, _>>()?;
                Ok(ids.first().copied())
            }
            Some(v) => check(v).map(Some),
        }
    }

    /// A required-positive float that must also be a usable `f32` norm epsilon.
    fn eps(&self, field: &str, default: f64) -> Result<f32, LoadError> {
        let eps = self.f64(field)?.unwrap_or(default);
        let e32 = eps as f32;
        if !(eps > 0.0 && e32 > 0.0 && e32.is_finite()) {
            return Err(self.err(
                field,
                format!("the norm epsilon must be a positive, finite f32, found {eps}"),
            ));
        }
        Ok(e32)
    }

    /// The family named by `architectures[0]`; an unsupported name is
    /// [`LoadError::UnknownArchitecture`].
    pub fn family(&self) -> Result<Family, LoadError> {
        let arch = match self.get("architectures") {
            Some(Value::Array(a)) if !a.is_empty() => a[0]
                .as_str()
                .ok_or_else(|| self.err("architectures", "expected a list of strings"))?
                .to_string(),
            Some(_) => {
                return Err(self.err("architectures", "expected a non-empty list of strings"))
            }
            None => match self.get("model_type").and_then(Value::as_str) {
                Some("llama") => "LlamaForCausalLM".into(),
                Some("mistral") => "MistralForCausalLM".into(),
                Some("qwen2") => "Qwen2ForCausalLM".into(),
                Some("gpt2") => "GPT2LMHeadModel".into(),
                Some(other) => other.to_string(),
                None => {
                    return Err(self.err("architectures", "missing, and no `model_type` either"))
                }
            },
        };
        Ok(match arch.as_str() {
            "LlamaForCausalLM" => Family::Llama,
            "MistralForCausalLM" => Family::Mistral,
            "Qwen2ForCausalLM" => Family::Qwen2,
            "GPT2LMHeadModel" => Family::Gpt2,
            _ => {
                return Err(LoadError::UnknownArchitecture {
                    path: self.path.clone(),
                    arch,
                    supported: SUPPORTED.join(", "),
                })
            }
        })
    }

    /// RoPE parameters from either layout. 5.x nests everything under
    /// `rope_parameters`; 4.x has `rope_theta` plus an optional `rope_scaling`.
    fn rope(&self, head_dim: usize) -> Result<RopeSpec, LoadError> {
        let (params, ctx): (Option<&Map<String, Value>>, &str) = match self.get("rope_parameters") {
            Some(Value::Object(m)) => (Some(m), "rope_parameters."),
            Some(_) => return Err(self.err("rope_parameters", "expected an object")),
            None => match self.get("rope_scaling") {
                Some(Value::Object(m)) => (Some(m), "rope_scaling."),
                Some(_) => return Err(self.err("rope_scaling", "expected an object or null")),
                None => (None, ""),
            },
        };
        let theta = match params
            .map(|p| self.f64_in(p, "rope_theta", ctx))
            .transpose()?
            .flatten()
        {
            Some(t) => t,
            None => self.f64("rope_theta")?.unwrap_or(10000.0),
        };
        if theta <= 0.0 {
            let field = match params.and_then(|p| p.get("rope_theta")) {
                Some(_) => format!("{ctx}rope_theta"),
                None => "rope_theta".to_string(),
            };
            return Err(self.err(
                &field,
                format!("the RoPE base must be positive, found {theta}"),
            ));
        }
        let partial = self.f64("partial_rotary_factor")?.unwrap_or(1.0);
        if !(partial > 0.0 && partial <= 1.0) {
            return Err(self.err(
                "partial_rotary_factor",
                format!("must be in (0, 1], found {partial}"),
            ));
        }
        let rotary_dim = ((head_dim as f64 * partial).round() as usize) & !1;
        if rotary_dim == 0 {
            return Err(self.err(
                "partial_rotary_factor",
                format!("{partial} of head_dim {head_dim} rotates no feature pair"),
            ));
        }
        let scaling = match params {
            None => RopeScaling::None,
            Some(p) => {
                let kind = p
                    .get("rope_type")
                    .or_else(|| p.get("type"))
                    .and_then(Value::as_str)
                    .unwrap_or("default");
                // Every scaling parameter is a positive, finite number.
                let need = |f: &str| -> Result<f64, LoadError> {
                    let x = self.f64_in(p, f, ctx)?.ok_or_else(|| {
                        self.err(
                            &format!("{ctx}{f}"),
                            format!("required for rope type `{kind}`"),
                        )
                    })?;
                    if x <= 0.0 {
                        return Err(
                            self.err(&format!("{ctx}{f}"), format!("must be positive, found {x}"))
                        );
                    }
                    Ok(x)
                };
                match kind {
                    "default" => RopeScaling::None,
                    "linear" => RopeScaling::Linear { factor: need("factor")? },
                    "llama3" => {
                        let factor = need("factor")?;
                        let low_freq_factor = need("low_freq_factor")?;
                        let high_freq_factor = need("high_freq_factor")?;
                        let original_max_positions = need("original_max_position_embeddings")?;
                        if high_freq_factor <= low_freq_factor {
                            return Err(self.err(
                                &format!("{ctx}high_freq_factor"),
                                format!(
                                    "must exceed low_freq_factor ({low_freq_factor}), found {high_freq_factor}"
                                ),
                            ));
                        }
                        RopeScaling::Llama3 {
                            factor,
                            low_freq_factor,
                            high_freq_factor,
                            original_max_positions,
                        }
                    }
                    other => {
                        return Err(self.err(
                            &format!("{ctx}rope_type"),
                            format!("unsupported rope scaling `{other}` (supported: default, linear, llama3)"),
                        ))
                    }
                }
            }
        };
        Ok(RopeSpec {
            theta,
            rotary_dim,
            scaling,
        })
    }

    /// The architecture spec for this config.
    pub fn arch_spec(&self, family: Family) -> Result<ArchSpec, LoadError> {
        let arch_name = self
            .get("architectures")
            .and_then(|a| a.get(0))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("{family:?}"));
        if family == Family::Gpt2 {
            let d = self.usize("n_embd")?;
            let n_heads = self.usize("n_head")?;
            if d % n_heads != 0 {
                return Err(self.err(
                    "n_head",
                    format!("n_embd = {d} is not a multiple of n_head = {n_heads}"),
                ));
            }
            match self
                .get("activation_function")
                .and_then(Value::as_str)
                .unwrap_or("gelu_new")
            {
                "gelu_new" | "gelu_pytorch_tanh" => {}
                other => {
                    return Err(self.err(
                        "activation_function",
                        format!(
                        "unsupported activation `{other}` (supported: gelu_new, gelu_pytorch_tanh)"
                    ),
                    ))
                }
            }
            let vocab_size = self.usize("vocab_size")?;
            self.token_id("pad_token_id", vocab_size)?;
            let d_ff = self.opt_usize("n_inner")?.unwrap_or(4 * d);
            if d_ff > MAX_SIZE {
                return Err(self.err("n_embd", format!("4 x {d} is implausibly large")));
            }
            return Ok(ArchSpec {
                hparams: HParams {
                    architecture: arch_name,
                    vocab_size,
                    d_model: d,
                    n_layers: self.usize("n_layer")?,
                    n_heads,
                    n_kv_heads: n_heads,
                    head_dim: d / n_heads,
                    d_ff,
                    max_positions: self.usize("n_positions")?,
                    tied_embeddings: self.bool("tie_word_embeddings", true)?,
                    bos_token_id: self.token_id("bos_token_id", vocab_size)?,
                    eos_token_id: self.token_id("eos_token_id", vocab_size)?,
                },
                norm: NormKind::Layer,
                norm_eps: self.eps("layer_norm_epsilon", 1e-5)?,
                positions: Positions::Learned,
                mlp: MlpKind::GeluTanh,
                qkv_bias: true,
                o_bias: true,
                mlp_bias: true,
                sliding_window: None,
            });
        }
        let d = self.usize("hidden_size")?;
        let n_heads = self.usize("num_attention_heads")?;
        let n_kv_heads = self.opt_usize("num_key_value_heads")?.unwrap_or(n_heads);
        if n_heads % n_kv_heads != 0 {
            return Err(self.err(
                "num_key_value_heads",
                format!("num_attention_heads = {n_heads} is not a multiple of num_key_value_heads = {n_kv_heads}"),
            ));
        }
        let head_dim = match self.opt_usize("head_dim")? {
            Some(h) => h,
            None if d % n_heads == 0 => d / n_heads,
            None => {
                return Err(self.err(
                    "head_dim",
                    "missing, and hidden_size is not a multiple of num_attention_heads",
                ))
            }
        };
        if n_heads.checked_mul(head_dim).is_none_or(|w| w > MAX_SIZE) {
            return Err(self.err(
                "head_dim",
                format!("{n_heads} heads of {head_dim} features is implausibly large"),
            ));
        }
        let vocab_size = self.usize("vocab_size")?;
        self.token_id("pad_token_id", vocab_size)?;
        if let Some(act) = self.get("hidden_act") {
            if act.as_str() != Some("silu") {
                return Err(self.err(
                    "hidden_act",
                    format!("unsupported activation {act} (supported: \"silu\")"),
                ));
            }
        }
        let attention_bias = self.bool("attention_bias", false)?;
        let sliding_window = match family {
            Family::Mistral => self.opt_usize("sliding_window")?,
            Family::Qwen2 if self.bool("use_sliding_window", false)? => {
                return Err(self.err(
                    "use_sliding_window",
                    "Qwen2 per-layer sliding windows are not supported; set it to false",
                ))
            }
            _ => None,
        };
        Ok(ArchSpec {
            hparams: HParams {
                architecture: arch_name,
                vocab_size,
                d_model: d,
                n_layers: self.usize("num_hidden_layers")?,
                n_heads,
                n_kv_heads,
                head_dim,
                d_ff: self.usize("intermediate_size")?,
                max_positions: self.opt_usize("max_position_embeddings")?.unwrap_or(2048),
                tied_embeddings: self.bool("tie_word_embeddings", false)?,
                bos_token_id: self.token_id("bos_token_id", vocab_size)?,
                eos_token_id: self.token_id("eos_token_id", vocab_size)?,
            },
            norm: NormKind::Rms,
            norm_eps: self.eps("rms_norm_eps", 1e-6)?,
            positions: Positions::Rope(self.rope(head_dim)?),
            mlp: MlpKind::GatedSilu,
            qkv_bias: family == Family::Qwen2 || attention_bias,
            o_bias: family != Family::Qwen2 && attention_bias,
            mlp_bias: family == Family::Llama && self.bool("mlp_bias", false)?,
            sliding_window,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_err(extra: &str) -> String {
        let text = format!(
            r#"{{"architectures": ["LlamaForCausalLM"], "vocab_size": 512, "hidden_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128{extra}}}"#
        );
        let p = Path::new("dir/config.json");
        let c = Config::parse(p, text.as_bytes()).map_err(|e| e.to_string());
        match c.and_then(|c| c.arch_spec(Family::Llama).map_err(|e| e.to_string())) {
            Ok(_) => panic!("{extra} was accepted"),
            Err(e) => {
                assert!(e.starts_with("dir/config.json: "), "{e}");
                e
            }
        }
    }

    #[test]
    fn hyperparameters_are_range_checked() {
        for (extra, field) in [
            (r#", "rms_norm_eps": -1"#, "rms_norm_eps"),
            (r#", "rms_norm_eps": 0"#, "rms_norm_eps"),
            (r#", "rms_norm_eps": 1e-60"#, "rms_norm_eps"),
            (r#", "rope_theta": 0"#, "rope_theta"),
            (r#", "rope_theta": -1.5"#, "rope_theta"),
            (r#", "partial_rotary_factor": 0"#, "partial_rotary_factor"),
            (r#", "partial_rotary_factor": 2"#, "partial_rotary_factor"),
            (
                r#", "rope_scaling": {"type": "linear", "factor": 0}"#,
                "rope_scaling.factor",
            ),
            (r#", "bos_token_id": 1099511627776"#, "bos_token_id"),
            (r#", "eos_token_id": [2, 512]"#, "eos_token_id"),
            (r#", "pad_token_id": -1"#, "pad_token_id"),
            (r#", "num_key_value_heads": 3"#, "num_key_value_heads"),
            (r#", "head_dim": 4294967296"#, "head_dim"),
        ] {
            let e = spec_err(extra);
            assert!(e.contains(&format!("field `{field}`")), "{extra}: {e}");
        }
    }

    #[test]
    fn duplicate_fields_are_rejected() {
        let e = spec_err(r#", "vocab_size": 7"#);
        assert!(e.contains("duplicate key `vocab_size`"), "{e}");
    }
}
