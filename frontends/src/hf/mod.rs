//! Hugging Face checkpoints: `config.json` plus `model.safetensors`, or shards
//! listed in `model.safetensors.index.json`, with an optional `tokenizer.json`.

pub mod config;
pub mod safetensors;

use crate::arch::{lower, NameScheme, Resolved, Role};
use crate::error::LoadError;
use crate::tensors::{MappedFile, TensorIndex, Transform};
use crate::tokenizer::TextTokenizer;
use crate::{LoadedModel, SourceFormat};
use config::{Config, Family};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The files that make up one HF checkpoint.
pub struct HfFiles {
    /// The `config.json` beside the weights.
    pub config: PathBuf,
    /// The `.safetensors` files holding the weights: one, or every shard the
    /// index lists.
    pub shards: Vec<PathBuf>,
    /// The `tokenizer.json` beside the config, if present.
    pub tokenizer: Option<PathBuf>,
    /// What the user named (for messages).
    pub root: PathBuf,
    /// For a sharded checkpoint, the index file and its `weight_map`
    /// (tensor name to shard file name).
    pub weight_map: Option<(PathBuf, BTreeMap<String, String>)>,
}

impl HfFiles {
    /// `dir` holds the config; `weights` is a `.safetensors` file or an index.
    fn locate(dir: &Path, weights: &Path, root: &Path) -> Result<Self, LoadError> {
        let config = dir.join("config.json");
        if !config.is_file() {
            return Err(LoadError::format(
                root,
                format!(
                    "no config.json beside the weights (looked for {})",
                    config.display()
                ),
            ));
        }
        let (shards, weight_map) = if weights.to_string_lossy().ends_with(".index.json") {
            let (shards, map) = read_index(weights)?;
            (shards, Some((weights.to_path_buf(), map)))
        } else {
            (vec![weights.to_path_buf()], None)
        };
        let tok = dir.join("tokenizer.json");
        Ok(HfFiles {
            config,
            shards,
            tokenizer: tok.is_file().then_some(tok),
            root: root.to_path_buf(),
            weight_map,
        })
    }

    /// Resolves a folder, a `.safetensors` file or a `.index.json` file.
    pub fn resolve(path: &Path) -> Result<Self, LoadError> {
        if path.is_dir() {
            for name in ["model.safetensors.index.json", "model.safetensors"] {
                let p = path.join(name);
                if p.is_file() {
                    return Self::locate(path, &p, path);
                }
            }
            return Err(LoadError::format(
                path,
                "folder has neither model.safetensors nor model.safetensors.index.json",
            ));
        }
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Self::locate(dir, path, path)
    }
}

/// Shard file names from `model.safetensors.index.json`'s `weight_map`, and
/// the map itself (tensor name to shard file name).
#[allow(clippy::type_complexity)]
fn read_index(path: &Path) -> Result<(Vec<PathBuf>, BTreeMap<String, String>), LoadError> {
    let text = std::fs::read(path).map_err(|e| LoadError::io(path, e))?;
    let v: serde_json::Value = crate::json::parse_strict(&text)
        .map_err(|e| LoadError::format(path, format!("index is not valid JSON: {e}")))?;
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| LoadError::config(path, "weight_map", "missing or not an object"))?;
    let mut files = BTreeSet::new();
    let mut tensors = BTreeMap::new();
    for (tensor, file) in map {
        let f = file.as_str().ok_or_else(|| {
            LoadError::config(path, format!("weight_map.{tensor}"), "expected a file name")
        })?;
        if f.is_empty() || f.contains('/') || f.contains('\\') || f == ".." || f == "." {
            return Err(LoadError::config(
                path,
                format!("weight_map.{tensor}"),
                format!("shard name `{f}` must be a plain file name"),
            ));
        }
        files.insert(f.to_string());
        tensors.insert(tensor.clone(), f.to_string());
    }
    if files.is_empty() {
        return Err(LoadError::config(path, "weight_map", "lists no shards"));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    Ok((files.into_iter().map(|f| dir.join(f)).collect(), tensors))
}

/// The index's `weight_map` must describe the shards exactly: every tensor
/// it lists is in the shard it names, and every tensor the shards hold is
/// listed. Anything else means the index or a shard is stale.
fn check_weight_map(
    (index_path, map): &(PathBuf, BTreeMap<String, String>),
    index: &TensorIndex,
) -> Result<(), LoadError> {
    for (tensor, shard) in map {
        match index.get(tensor) {
            None => {
                return Err(LoadError::config(
                    index_path,
                    format!("weight_map.{tensor}"),
                    format!("names shard `{shard}`, but no shard holds tensor `{tensor}`"),
                ))
            }
            Some(e) => {
                let actual = index.path_of(e);
                if actual.file_name().and_then(|n| n.to_str()) != Some(shard.as_str()) {
                    return Err(LoadError::config(
                        index_path,
                        format!("weight_map.{tensor}"),
                        format!(
                            "names shard `{shard}`, but tensor `{tensor}` is in {}",
                            actual.display()
                        ),
                    ));
                }
            }
        }
    }
    if let Some((name, e)) = index.tensors.iter().find(|(n, _)| !map.contains_key(*n)) {
        return Err(LoadError::tensor(
            index.path_of(e),
            name,
            format!(
                "is not listed in the weight_map of {} (the index is stale)",
                index_path.display()
            ),
        ));
    }
    Ok(())
}

struct LlamaNames {
    root: PathBuf,
    config: String,
}

impl NameScheme for LlamaNames {
    fn resolve(&self, role: Role, layer: Option<usize>, _: &TensorIndex) -> Option<Resolved> {
        let l = layer.unwrap_or(0);
        let name = match role {
            Role::TokEmbed => "model.embed_tokens.weight".to_string(),
            Role::FinalNormGain => "model.norm.weight".to_string(),
            Role::LmHead => "lm_head.weight".to_string(),
            Role::PosEmbed | Role::AttnNormBias | Role::MlpNormBias | Role::FinalNormBias => {
                return None
            }
            _ => {
                let local = match role {
                    Role::AttnNormGain => "input_layernorm.weight",
                    Role::MlpNormGain => "post_attention_layernorm.weight",
                    Role::QWeight => "self_attn.q_proj.weight",
                    Role::QBias => "self_attn.q_proj.bias",
                    Role::KWeight => "self_attn.k_proj.weight",
                    Role::KBias => "self_attn.k_proj.bias",
                    Role::VWeight => "self_attn.v_proj.weight",
                    Role::VBias => "self_attn.v_proj.bias",
                    Role::OWeight => "self_attn.o_proj.weight",
                    Role::OBias => "self_attn.o_proj.bias",
                    Role::GateWeight => "mlp.gate_proj.weight",
                    Role::GateBias => "mlp.gate_proj.bias",
                    Role::UpWeight => "mlp.up_proj.weight",
                    Role::UpBias => "mlp.up_proj.bias",
                    Role::DownWeight => "mlp.down_proj.weight",
                    Role::DownBias => "mlp.down_proj.bias",
                    _ => unreachable!("handled above"),
                };
                format!("model.layers.{l}.{local}")
            }
        };
        Some(Resolved {
            tensor: name,
            transforms: Vec::new(),
        })
    }

    fn checkpoint_path(&self) -> &Path {
        &self.root
    }

    fn config_source(&self) -> String {
        self.config.clone()
    }
}

/// GPT-2: `Conv1D` weights stored `[in, out]`, a fused `c_attn`, and names with
/// or without the `transformer.` prefix.
struct Gpt2Names {
    root: PathBuf,
    config: String,
    prefix: &'static str,
    d: usize,
}

impl NameScheme for Gpt2Names {
    fn resolve(&self, role: Role, layer: Option<usize>, _: &TensorIndex) -> Option<Resolved> {
        let p = self.prefix;
        let h = |s: &str| format!("{p}h.{}.{s}", layer.unwrap_or(0));
        let d = self.d;
        let conv = vec![Transform::Transpose];
        // c_attn is [in, 3d] (weight) / [3d] (bias): Q, K, V side by side.
        let qkv = |part: usize, weight: bool| -> Resolved {
            if weight {
                Resolved {
                    tensor: h("attn.c_attn.weight"),
                    transforms: vec![
                        Transform::Slice {
                            axis: 1,
                            start: part * d,
                            len: d,
                        },
                        Transform::Transpose,
                    ],
                }
            } else {
                Resolved {
                    tensor: h("attn.c_attn.bias"),
                    transforms: vec![Transform::Slice {
                        axis: 0,
                        start: part * d,
                        len: d,
                    }],
                }
            }
        };
        let plain = |tensor: String| Resolved {
            tensor,
            transforms: Vec::new(),
        };
        Some(match role {
            Role::TokEmbed => plain(format!("{p}wte.weight")),
            Role::PosEmbed => plain(format!("{p}wpe.weight")),
            Role::AttnNormGain => plain(h("ln_1.weight")),
            Role::AttnNormBias => plain(h("ln_1.bias")),
            Role::QWeight => qkv(0, true),
            Role::KWeight => qkv(1, true),
            Role::VWeight => qkv(2, true),
            Role::QBias => qkv(0, false),
            Role::KBias => qkv(1, false),
            Role::VBias => qkv(2, false),
            Role::OWeight => Resolved {
                tensor: h("attn.c_proj.weight"),
                transforms: conv,
            },
            Role::OBias => plain(h("attn.c_proj.bias")),
            Role::MlpNormGain => plain(h("ln_2.weight")),
            Role::MlpNormBias => plain(h("ln_2.bias")),
            Role::UpWeight => Resolved {
                tensor: h("mlp.c_fc.weight"),
                transforms: conv,
            },
            Role::UpBias => plain(h("mlp.c_fc.bias")),
            Role::DownWeight => Resolved {
                tensor: h("mlp.c_proj.weight"),
                transforms: conv,
            },
            Role::DownBias => plain(h("mlp.c_proj.bias")),
            Role::FinalNormGain => plain(format!("{p}ln_f.weight")),
            Role::FinalNormBias => plain(format!("{p}ln_f.bias")),
            Role::LmHead => plain("lm_head.weight".into()),
            Role::GateWeight | Role::GateBias => return None,
        })
    }

    fn checkpoint_path(&self) -> &Path {
        &self.root
    }

    fn config_source(&self) -> String {
        self.config.clone()
    }
}

/// Loads a Hugging Face checkpoint (folder, `.safetensors` or index).
pub fn load(path: &Path, layers: Option<usize>) -> Result<LoadedModel, LoadError> {
    let files = HfFiles::resolve(path)?;
    let config = Config::read(&files.config)?;
    let family = config.family()?;
    let spec = config.arch_spec(family)?;
    let mut index = TensorIndex::default();
    for shard in &files.shards {
        safetensors::add_file(&mut index, MappedFile::open(shard)?)?;
    }
    if let Some(map) = &files.weight_map {
        check_weight_map(map, &index)?;
    }
    let tokenizer = files.tokenizer.clone();
    finish(
        files.root,
        &files.config,
        family,
        spec,
        index,
        tokenizer,
        layers,
    )
}

/// [`load`] from bytes held in memory: the text of `config.json` (named
/// `config_path` in messages) and one `.safetensors` file (named
/// `weights_path`). No tokenizer. The same checks, for fuzzing and property
/// tests.
pub fn load_bytes(
    config_path: &Path,
    config: &[u8],
    weights_path: &Path,
    weights: &[u8],
    layers: Option<usize>,
) -> Result<LoadedModel, LoadError> {
    let cfg = Config::parse(config_path, config)?;
    let family = cfg.family()?;
    let spec = cfg.arch_spec(family)?;
    let mut index = TensorIndex::default();
    safetensors::add_file(&mut index, MappedFile::from_bytes(weights_path, weights)?)?;
    finish(
        weights_path.to_path_buf(),
        config_path,
        family,
        spec,
        index,
        None,
        layers,
    )
}

/// Everything after the config and the shards are read.
fn finish(
    root: PathBuf,
    config_path: &Path,
    family: Family,
    mut spec: crate::arch::ArchSpec,
    index: TensorIndex,
    tokenizer: Option<PathBuf>,
    layers: Option<usize>,
) -> Result<LoadedModel, LoadError> {
    let gpt2_prefix = if index.get("transformer.wte.weight").is_some() {
        "transformer."
    } else {
        ""
    };
    let (layer_prefix, layer_field) = match family {
        Family::Gpt2 => (format!("{gpt2_prefix}h."), "n_layer"),
        _ => ("model.layers.".to_string(), "num_hidden_layers"),
    };
    crate::arch::check_layer_count(
        &index,
        &layer_prefix,
        spec.hparams.n_layers,
        config_path,
        layer_field,
    )?;
    crate::arch::keep_layers(&mut spec, layers, config_path)?;
    let config_source = config_path.display().to_string();
    let (model, weights) = if family == Family::Gpt2 {
        let prefix = gpt2_prefix;
        let names = Gpt2Names {
            root: root.clone(),
            config: config_source,
            prefix,
            d: spec.hparams.d_model,
        };
        lower(&spec, index, &names)?
    } else {
        let names = LlamaNames {
            root: root.clone(),
            config: config_source,
        };
        lower(&spec, index, &names)?
    };
    let tokenizer = tokenizer
        .as_deref()
        .map(|t| {
            TextTokenizer::from_file(t, model.hparams.bos_token_id, model.hparams.eos_token_id)
        })
        .transpose()?;
    Ok(LoadedModel {
        model,
        weights,
        tokenizer,
        format: SourceFormat::Safetensors,
        path: root,
    })
}
