//! Architecture lowering: one decoder-only transformer template, parameterised
//! by an [`ArchSpec`], turned into an IR graph.
//!
//! Every supported family (Llama, Mistral, Qwen2, GPT-2, and GGUF `llama`) is a
//! point in this template's option space; frontends only translate their config
//! into an `ArchSpec` and their tensor names into [`Role`]s.

use crate::error::LoadError;
use crate::tensors::{MappedWeights, TensorIndex, Transform, WeightBinding};
use std::path::Path;
use taalasc_ir::{Builder, DType, HParams, Model, NodeIndex, Op, RopeSpec, WeightInfo};

/// The normalization used before attention, before the MLP and at the end.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NormKind {
    /// RMSNorm: `x / sqrt(mean(x²) + eps) * gain` (Llama family).
    Rms,
    /// LayerNorm: `(x - mean) / sqrt(var + eps) * gain + bias` (GPT-2).
    Layer,
}

/// How positions enter the model.
#[derive(Clone, Debug, PartialEq)]
pub enum Positions {
    /// Rotary embedding of Q and K in every attention layer.
    Rope(RopeSpec),
    /// A learned `[max_positions, d_model]` table added to the token embedding (GPT-2).
    Learned,
}

/// The MLP block's shape.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MlpKind {
    /// `down(silu(gate(x)) * up(x))` (Llama family).
    GatedSilu,
    /// `down(gelu_tanh(up(x)))` (GPT-2).
    GeluTanh,
}

/// Everything that distinguishes one supported family from another.
#[derive(Clone, Debug, PartialEq)]
pub struct ArchSpec {
    /// Sizes of the model (widths, heads, layers, vocabulary).
    pub hparams: HParams,
    /// The normalization kind, the same at every norm site.
    pub norm: NormKind,
    /// The `eps` added inside every norm's square root (HF `rms_norm_eps` or
    /// `layer_norm_epsilon`, GGUF `*.attention.layer_norm_rms_epsilon`).
    pub norm_eps: f32,
    /// How positions are encoded.
    pub positions: Positions,
    /// The MLP block's shape.
    pub mlp: MlpKind,
    /// Whether the Q, K and V projections have biases (Qwen2, GPT-2, Llama
    /// with `attention_bias`; for GGUF, whether layer 0 stores any of them).
    /// When set, all three are required in every layer.
    pub qkv_bias: bool,
    /// Whether the attention output projection has a bias (GPT-2, Llama with
    /// `attention_bias`; for GGUF, whether layer 0 stores it).
    pub o_bias: bool,
    /// Whether the MLP projections have biases (GPT-2, Llama with
    /// `mlp_bias`; for GGUF, whether layer 0 stores any of them). When set,
    /// every projection of the MLP kind needs one in every layer.
    pub mlp_bias: bool,
    /// Sliding attention window in positions (Mistral's `sliding_window`);
    /// `None` attends to every earlier position.
    pub sliding_window: Option<usize>,
}

/// A weight's role in the template; frontends map roles to tensor names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Token embedding table, `[vocab_size, d_model]`.
    TokEmbed,
    /// Learned position table, `[max_positions, d_model]` (GPT-2 only).
    PosEmbed,
    /// Gain of the pre-attention norm, `[d_model]`.
    AttnNormGain,
    /// Bias of the pre-attention norm, `[d_model]` (LayerNorm only).
    AttnNormBias,
    /// Query projection, `[n_heads * head_dim, d_model]`.
    QWeight,
    /// Query projection bias, `[n_heads * head_dim]`.
    QBias,
    /// Key projection, `[n_kv_heads * head_dim, d_model]`.
    KWeight,
    /// Key projection bias, `[n_kv_heads * head_dim]`.
    KBias,
    /// Value projection, `[n_kv_heads * head_dim, d_model]`.
    VWeight,
    /// Value projection bias, `[n_kv_heads * head_dim]`.
    VBias,
    /// Attention output projection, `[d_model, n_heads * head_dim]`.
    OWeight,
    /// Attention output projection bias, `[d_model]`.
    OBias,
    /// Gain of the pre-MLP norm, `[d_model]`.
    MlpNormGain,
    /// Bias of the pre-MLP norm, `[d_model]` (LayerNorm only).
    MlpNormBias,
    /// MLP gate projection, `[d_ff, d_model]` (gated MLPs only).
    GateWeight,
    /// MLP gate projection bias, `[d_ff]`.
    GateBias,
    /// MLP up projection, `[d_ff, d_model]`.
    UpWeight,
    /// MLP up projection bias, `[d_ff]`.
    UpBias,
    /// MLP down projection, `[d_model, d_ff]`.
    DownWeight,
    /// MLP down projection bias, `[d_model]`.
    DownBias,
    /// Gain of the final norm, `[d_model]`.
    FinalNormGain,
    /// Bias of the final norm, `[d_model]` (LayerNorm only).
    FinalNormBias,
    /// Output head, `[vocab_size, d_model]`; absent when tied to [`Role::TokEmbed`].
    LmHead,
}

impl Role {
    /// The canonical IR weight name.
    pub fn ir_name(self, layer: Option<usize>) -> String {
        let local = match self {
            Role::TokEmbed => return "tok_embeddings".into(),
            Role::PosEmbed => return "pos_embeddings".into(),
            Role::FinalNormGain => return "final_norm.gain".into(),
            Role::FinalNormBias => return "final_norm.bias".into(),
            Role::LmHead => return "lm_head.weight".into(),
            Role::AttnNormGain => "attn_norm.gain",
            Role::AttnNormBias => "attn_norm.bias",
            Role::QWeight => "attn.q.weight",
            Role::QBias => "attn.q.bias",
            Role::KWeight => "attn.k.weight",
            Role::KBias => "attn.k.bias",
            Role::VWeight => "attn.v.weight",
            Role::VBias => "attn.v.bias",
            Role::OWeight => "attn.o.weight",
            Role::OBias => "attn.o.bias",
            Role::MlpNormGain => "mlp_norm.gain",
            Role::MlpNormBias => "mlp_norm.bias",
            Role::GateWeight => "mlp.gate.weight",
            Role::GateBias => "mlp.gate.bias",
            Role::UpWeight => "mlp.up.weight",
            Role::UpBias => "mlp.up.bias",
            Role::DownWeight => "mlp.down.weight",
            Role::DownBias => "mlp.down.bias",
        };
        format!("layers.{}.{local}", layer.unwrap_or(0))
    }
}

/// Where the tensor for a role lives, and how to reshape it.
pub struct Resolved {
    /// The source tensor's name in the [`TensorIndex`].
    pub tensor: String,
    /// Layout changes, in order, from the stored layout to the canonical IR one.
    pub transforms: Vec<Transform>,
}

/// Maps a role (and layer) to a source tensor. `None` means the checkpoint
/// legitimately has no such tensor (only allowed for `LmHead` when tied).
pub trait NameScheme {
    /// The source tensor for `role` (in `layer`, for per-layer roles), or
    /// `None` when the checkpoint has no such tensor.
    fn resolve(&self, role: Role, layer: Option<usize>, index: &TensorIndex) -> Option<Resolved>;
    /// What to call the checkpoint in error messages (the folder or main file).
    fn checkpoint_path(&self) -> &Path;
    /// What the expected shapes come from, for error messages.
    fn config_source(&self) -> String;
}

struct Lowering<'a> {
    spec: &'a ArchSpec,
    index: &'a TensorIndex,
    names: &'a dyn NameScheme,
    b: Builder,
    bindings: Vec<WeightBinding>,
}

impl Lowering<'_> {
    /// Registers the weight for `role`, checking that it exists and that its
    /// canonical shape equals `expected`.
    fn weight(
        &mut self,
        role: Role,
        layer: Option<usize>,
        expected: &[usize],
        why: &str,
    ) -> Result<taalasc_ir::WeightId, LoadError> {
        let resolved = self.names.resolve(role, layer, self.index).ok_or_else(|| {
            LoadError::MissingTensor {
                path: self.names.checkpoint_path().to_path_buf(),
                tensor: role.ir_name(layer),
                role: format!("{role:?}"),
            }
        })?;
        let entry = self
            .index
            .get(&resolved.tensor)
            .ok_or_else(|| LoadError::MissingTensor {
                path: self.names.checkpoint_path().to_path_buf(),
                tensor: resolved.tensor.clone(),
                role: format!(
                    "{role:?}{}",
                    layer.map(|l| format!(" of layer {l}")).unwrap_or_default()
                ),
            })?;
        let path = self.index.path_of(entry).to_path_buf();
        let mut shape = entry.shape.clone();
        for t in &resolved.transforms {
            shape = t
                .apply_shape(&shape)
                .map_err(|m| LoadError::tensor(&path, &resolved.tensor, m))?;
        }
        if shape != expected {
            // Report the shape as stored when no transform is involved.
            return Err(LoadError::Shape {
                path,
                tensor: resolved.tensor,
                found: shape,
                expected: expected.to_vec(),
                reason: format!("{} ({why})", self.names.config_source()),
            });
        }
        let id = self.b.weight(WeightInfo {
            name: role.ir_name(layer),
            source_tensor: resolved.tensor.clone(),
            shape,
            dtype: entry.dtype,
        });
        self.bindings.push(WeightBinding {
            tensor: resolved.tensor,
            transforms: resolved.transforms,
        });
        Ok(id)
    }

    fn optional_bias(
        &mut self,
        present: bool,
        role: Role,
        layer: usize,
        width: usize,
    ) -> Result<Option<taalasc_ir::WeightId>, LoadError> {
        if !present {
            return Ok(None);
        }
        self.weight(role, Some(layer), &[width], "bias width")
            .map(Some)
    }

    fn norm(
        &mut self,
        name: &str,
        gain: Role,
        bias: Role,
        layer: Option<usize>,
        x: NodeIndex,
    ) -> Result<NodeIndex, LoadError> {
        let d = self.spec.hparams.d_model;
        let eps = self.spec.norm_eps;
        let g = self.weight(gain, layer, &[d], "hidden_size")?;
        let op = match self.spec.norm {
            NormKind::Rms => Op::RmsNorm { gain: g, eps },
            NormKind::Layer => {
                let bias = self.weight(bias, layer, &[d], "hidden_size")?;
                Op::LayerNorm { gain: g, bias, eps }
            }
        };
        Ok(self.b.add(name, op, d, &[x]))
    }

    fn linear(
        &mut self,
        name: String,
        x: NodeIndex,
        (w_role, b_role): (Role, Role),
        has_bias: bool,
        layer: usize,
        out: usize,
    ) -> Result<NodeIndex, LoadError> {
        let input = self.b.width(x);
        let weight = self.weight(w_role, Some(layer), &[out, input], "layer widths")?;
        let bias = self.optional_bias(has_bias, b_role, layer, out)?;
        Ok(self.b.add(name, Op::Linear { weight, bias }, out, &[x]))
    }

    fn layer(&mut self, l: usize, x: NodeIndex) -> Result<NodeIndex, LoadError> {
        let h = self.spec.hparams.clone();
        let p = |s: &str| format!("layers.{l}.{s}");
        self.b.set_layer(Some(l));
        let n1 = self.norm(
            &p("attn_norm"),
            Role::AttnNormGain,
            Role::AttnNormBias,
            Some(l),
            x,
        )?;
        let (qd, kvd) = (h.n_heads * h.head_dim, h.n_kv_heads * h.head_dim);
        let qkv = self.spec.qkv_bias;
        let mut q = self.linear(p("attn.q"), n1, (Role::QWeight, Role::QBias), qkv, l, qd)?;
        let mut k = self.linear(p("attn.k"), n1, (Role::KWeight, Role::KBias), qkv, l, kvd)?;
        let v = self.linear(p("attn.v"), n1, (Role::VWeight, Role::VBias), qkv, l, kvd)?;
        if let Positions::Rope(spec) = &self.spec.positions {
            let rope = |n_heads| Op::Rope {
                n_heads,
                head_dim: h.head_dim,
                spec: spec.clone(),
            };
            q = self.b.add(p("attn.q_rope"), rope(h.n_heads), qd, &[q]);
            k = self.b.add(p("attn.k_rope"), rope(h.n_kv_heads), kvd, &[k]);
        }
        let att = Op::Attention {
            n_heads: h.n_heads,
            n_kv_heads: h.n_kv_heads,
            head_dim: h.head_dim,
            window: self.spec.sliding_window,
        };
        let a = self.b.add(p("attn"), att, qd, &[q, k, v]);
        let o = self.linear(
            p("attn.o"),
            a,
            (Role::OWeight, Role::OBias),
            self.spec.o_bias,
            l,
            h.d_model,
        )?;
        let r1 = self.b.add(p("attn_residual"), Op::Add, h.d_model, &[x, o]);
        let n2 = self.norm(
            &p("mlp_norm"),
            Role::MlpNormGain,
            Role::MlpNormBias,
            Some(l),
            r1,
        )?;
        let mb = self.spec.mlp_bias;
        let act = match self.spec.mlp {
            MlpKind::GatedSilu => {
                let g = self.linear(
                    p("mlp.gate"),
                    n2,
                    (Role::GateWeight, Role::GateBias),
                    mb,
                    l,
                    h.d_ff,
                )?;
                let u = self.linear(
                    p("mlp.up"),
                    n2,
                    (Role::UpWeight, Role::UpBias),
                    mb,
                    l,
                    h.d_ff,
                )?;
                let s = self.b.add(p("mlp.silu"), Op::Silu, h.d_ff, &[g]);
                self.b.add(p("mlp.gated"), Op::Mul, h.d_ff, &[s, u])
            }
            MlpKind::GeluTanh => {
                let u = self.linear(
                    p("mlp.up"),
                    n2,
                    (Role::UpWeight, Role::UpBias),
                    mb,
                    l,
                    h.d_ff,
                )?;
                self.b.add(p("mlp.gelu"), Op::GeluTanh, h.d_ff, &[u])
            }
        };
        let d = self.linear(
            p("mlp.down"),
            act,
            (Role::DownWeight, Role::DownBias),
            mb,
            l,
            h.d_model,
        )?;
        Ok(self.b.add(p("mlp_residual"), Op::Add, h.d_model, &[r1, d]))
    }
}

/// Keeps the first `layers` decoder layers of `spec` (see
/// [`crate::load_layers`]).
pub(crate) fn keep_layers(
    spec: &mut ArchSpec,
    layers: Option<usize>,
    path: &Path,
) -> Result<(), LoadError> {
    if let Some(n) = layers {
        let have = spec.hparams.n_layers;
        if n == 0 || n > have {
            return Err(LoadError::Config {
                path: path.to_path_buf(),
                field: "layers".into(),
                message: format!("asked for the first {n} decoder layers, the model has {have}"),
            });
        }
        spec.hparams.n_layers = n;
    }
    Ok(())
}

/// The checkpoint must hold exactly the decoder layers the config declares:
/// a layer tensor (named `{prefix}{layer}.…`) at or past `n_layers` means the
/// config undercounts and those weights would be silently dropped; a
/// highest stored layer below `n_layers - 1` means it overcounts. Either is
/// an error naming the config file and its `field`. Call it before any
/// deliberate `--layers` slicing ([`keep_layers`]).
pub(crate) fn check_layer_count(
    index: &TensorIndex,
    prefix: &str,
    n_layers: usize,
    config: &Path,
    field: &str,
) -> Result<(), LoadError> {
    // (layer, name) of the first tensor past the declared layers, and the
    // highest layer stored.
    let mut first_extra: Option<(usize, &str)> = None;
    let mut highest: Option<usize> = None;
    for name in index.tensors.keys() {
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        let digits = rest.split('.').next().unwrap_or("");
        let Ok(layer) = digits.parse::<usize>() else {
            continue;
        };
        highest = highest.max(Some(layer));
        if layer >= n_layers && first_extra.is_none_or(|(l, _)| layer < l) {
            first_extra = Some((layer, name));
        }
    }
    let err = |message: String| LoadError::Config {
        path: config.to_path_buf(),
        field: field.to_string(),
        message,
    };
    if let Some((layer, tensor)) = first_extra {
        return Err(err(format!(
            "declares {n_layers} decoder layers, but the checkpoint holds {} (tensor `{tensor}` of layer {layer} would be unused)",
            highest.unwrap_or(layer) + 1
        )));
    }
    match highest {
        Some(h) if h + 1 < n_layers => Err(err(format!(
            "declares {n_layers} decoder layers, but the checkpoint holds only {} (no `{prefix}{}.*` tensor)",
            h + 1,
            h + 1
        ))),
        None => Err(err(format!(
            "declares {n_layers} decoder layers, but the checkpoint holds no `{prefix}N.*` tensor"
        ))),
        _ => Ok(()),
    }
}

/// Builds the IR graph for `spec`, binding every weight through `names`.
pub fn lower(
    spec: &ArchSpec,
    index: TensorIndex,
    names: &dyn NameScheme,
) -> Result<(Model, MappedWeights), LoadError> {
    let hparams = spec.hparams.clone();
    let (vocab, d) = (hparams.vocab_size, hparams.d_model);
    let mut lw = Lowering {
        spec,
        index: &index,
        names,
        b: Builder::new(),
        bindings: Vec::new(),
    };
    let tokens = lw.b.add("tokens", Op::Tokens, 1, &[]);
    let table = lw.weight(
        Role::TokEmbed,
        None,
        &[vocab, d],
        "vocab_size x hidden_size",
    )?;
    let mut x = lw.b.add("embed", Op::Embed { table }, d, &[tokens]);
    if spec.positions == Positions::Learned {
        let max = hparams.max_positions;
        let pos = lw.weight(
            Role::PosEmbed,
            None,
            &[max, d],
            "max_position_embeddings x hidden_size",
        )?;
        x =
            lw.b.add("positions", Op::AddPositions { table: pos }, d, &[x]);
    }
    for l in 0..hparams.n_layers {
        x = lw.layer(l, x)?;
    }
    lw.b.set_layer(None);
    x = lw.norm(
        "final_norm",
        Role::FinalNormGain,
        Role::FinalNormBias,
        None,
        x,
    )?;
    // Tied models read the embedding table in the head and store no lm_head tensor.
    let head = if hparams.tied_embeddings {
        table
    } else {
        lw.weight(Role::LmHead, None, &[vocab, d], "vocab_size x hidden_size")?
    };
    let logits = lw.b.add(
        "lm_head",
        Op::Linear {
            weight: head,
            bias: None,
        },
        vocab,
        &[x],
    );
    let out = lw.b.add("logits", Op::Logits, vocab, &[logits]);
    let bindings = lw.bindings;
    let model =
        lw.b.finish(hparams, tokens, out)
            .map_err(|source| LoadError::Verify {
                path: names.checkpoint_path().to_path_buf(),
                source,
            })?;
    Ok((model, MappedWeights { index, bindings }))
}

/// Bytes a dtype needs for `numel` elements, as an error when the count is
/// not a whole number of blocks.
pub(crate) fn expected_bytes(
    path: &Path,
    tensor: &str,
    dtype: DType,
    numel: u64,
) -> Result<u64, LoadError> {
    dtype.bytes_for(numel).ok_or_else(|| {
        LoadError::tensor(
            path,
            tensor,
            format!("{numel} elements are not a whole number of {dtype} blocks"),
        )
    })
}
