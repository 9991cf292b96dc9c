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
        let value: Value = serde_json::from_slice(&text)
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

    /// A token id field that may be an integer or a list (first entry used).
    fn token_id(&self, field: &str) -> Result<Option<u32>, LoadError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Array(a)) if a.is_empty() => Ok(None),
            Some(Value::Array(a)) => a[0]
                .as_u64()
                .map(|x| Some(x as u32))
                .ok_or_else(|| self.err(field, "expected integer token ids")),
            Some(v) => v
                .as_u64()
                .map(|x| Some(x as u32))
                .ok_or_else(|| self.err(field, format!("expected an integer token id, found {v}"))),
        }
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
        let partial = self.f64("partial_rotary_factor")?.unwrap_or(1.0);
        let rotary_dim = ((head_dim as f64 * partial).round() as usize) & !1;
        let scaling = match params {
            None => RopeScaling::None,
            Some(p) => {
                let kind = p
                    .get("rope_type")
                    .or_else(|| p.get("type"))
                    .and_then(Value::as_str)
                    .unwrap_or("default");
                let need = |f: &str| -> Result<f64, LoadError> {
                    self.f64_in(p, f, ctx)?.ok_or_else(|| {
                        self.err(
                            &format!("{ctx}{f}"),
                            format!("required for rope type `{kind}`"),
                        )
                    })
                };
                match kind {
                    "default" => RopeScaling::None,
                    "linear" => RopeScaling::Linear { factor: need("factor")? },
                    "llama3" => RopeScaling::Llama3 {
                        factor: need("factor")?,
                        low_freq_factor: need("low_freq_factor")?,
                        high_freq_factor: need("high_freq_factor")?,
                        original_max_positions: need("original_max_position_embeddings")?,
                    },
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
            return Ok(ArchSpec {
                hparams: HParams {
                    architecture: arch_name,
                    vocab_size: self.usize("vocab_size")?,
                    d_model: d,
                    n_layers: self.usize("n_layer")?,
                    n_heads,
                    n_kv_heads: n_heads,
                    head_dim: d / n_heads,
                    d_ff: self.opt_usize("n_inner")?.unwrap_or(4 * d),
                    max_positions: self.usize("n_positions")?,
                    tied_embeddings: self.bool("tie_word_embeddings", true)?,
                    bos_token_id: self.token_id("bos_token_id")?,
                    eos_token_id: self.token_id("eos_token_id")?,
                },
                norm: NormKind::Layer,
                norm_eps: self.f64("layer_norm_epsilon")?.unwrap_or(1e-5) as f32,
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
                vocab_size: self.usize("vocab_size")?,
                d_model: d,
                n_layers: self.usize("num_hidden_layers")?,
                n_heads,
                n_kv_heads,
                head_dim,
                d_ff: self.usize("intermediate_size")?,
                max_positions: self.opt_usize("max_position_embeddings")?.unwrap_or(2048),
                tied_embeddings: self.bool("tie_word_embeddings", false)?,
                bos_token_id: self.token_id("bos_token_id")?,
                eos_token_id: self.token_id("eos_token_id")?,
            },
            norm: NormKind::Rms,
            norm_eps: self.f64("rms_norm_eps")?.unwrap_or(1e-6) as f32,
            positions: Positions::Rope(self.rope(head_dim)?),
            mlp: MlpKind::GatedSilu,
            qkv_bias: family == Family::Qwen2 || attention_bias,
            o_bias: family != Family::Qwen2 && attention_bias,
            mlp_bias: family == Family::Llama && self.bool("mlp_bias", false)?,
            sliding_window,
        })
    }
}
