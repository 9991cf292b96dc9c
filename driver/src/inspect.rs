//! `taalasc inspect`: what a checkpoint holds, per layer, without reading weights.

use serde::Serialize;
use taalasc_frontends::LoadedModel;
use taalasc_ir::{HParams, LayerSummary};

/// What `taalasc inspect` prints of a checkpoint.
#[derive(Serialize)]
pub struct InspectReport {
    /// The checkpoint path.
    pub path: String,
    /// Its container (`hf` or `gguf`).
    pub format: String,
    /// The hyperparameters.
    pub hparams: HParams,
    /// Parameters over all weights.
    pub params: u64,
    /// Bytes of all weights at their source dtypes.
    pub bytes: u64,
    /// Tensors and parameters per source dtype.
    pub dtypes: Vec<DtypeCount>,
    /// Ops, parameters and bytes per layer group (embedding, each layer, head).
    pub layers: Vec<LayerSummary>,
    /// The tokenizer, when the checkpoint ships one.
    pub tokenizer: Option<TokenizerInfo>,
}

/// Tensors and parameters stored in one dtype.
#[derive(Serialize)]
pub struct DtypeCount {
    /// The storage dtype.
    pub dtype: String,
    /// Tensors stored in it.
    pub tensors: usize,
    /// Their parameters.
    pub params: u64,
}

/// The tokenizer a checkpoint ships.
#[derive(Serialize)]
pub struct TokenizerInfo {
    /// Tokens in its vocabulary.
    pub vocab_size: usize,
    /// Beginning-of-sequence id, if any.
    pub bos: Option<u32>,
    /// End-of-sequence id, if any.
    pub eos: Option<u32>,
}

/// The inspection of `m`, from metadata only.
pub fn report(m: &LoadedModel) -> InspectReport {
    let mut dtypes: Vec<DtypeCount> = Vec::new();
    for w in &m.model.weights {
        match dtypes.iter_mut().find(|d| d.dtype == w.dtype.name()) {
            Some(d) => {
                d.tensors += 1;
                d.params += w.numel();
            }
            None => dtypes.push(DtypeCount {
                dtype: w.dtype.name().to_string(),
                tensors: 1,
                params: w.numel(),
            }),
        }
    }
    InspectReport {
        path: m.path.display().to_string(),
        format: format!("{:?}", m.format).to_lowercase(),
        hparams: m.model.hparams.clone(),
        params: m.model.param_count(),
        bytes: m.model.source_bytes(),
        dtypes,
        layers: m.model.layer_summaries(),
        tokenizer: m.tokenizer.as_ref().map(|t| TokenizerInfo {
            vocab_size: t.vocab_size(),
            bos: t.bos,
            eos: t.eos,
        }),
    }
}

/// Human-readable table.
pub fn render(r: &InspectReport) -> String {
    use std::fmt::Write;
    let h = &r.hparams;
    let mut s = String::new();
    let _ = writeln!(s, "{} ({}, {})", r.path, h.architecture, r.format);
    let _ = writeln!(
        s,
        "  d_model {}  layers {}  heads {}/{} (head_dim {})  d_ff {}  vocab {}  max_positions {}  tied {}",
        h.d_model, h.n_layers, h.n_heads, h.n_kv_heads, h.head_dim, h.d_ff, h.vocab_size, h.max_positions, h.tied_embeddings
    );
    let _ = writeln!(
        s,
        "  parameters {} ({:.1} M), {} bytes at source dtypes",
        r.params,
        r.params as f64 / 1e6,
        r.bytes
    );
    for d in &r.dtypes {
        let _ = writeln!(
            s,
            "    {:<6} {:>4} tensors {:>12} params",
            d.dtype, d.tensors, d.params
        );
    }
    let _ = writeln!(
        s,
        "\n  {:<10} {:>12} {:>12}  ops",
        "group", "params", "bytes"
    );
    for l in &r.layers {
        let _ = writeln!(
            s,
            "  {:<10} {:>12} {:>12}  {}",
            l.name,
            l.params,
            l.bytes,
            l.ops.join(" ")
        );
    }
    if let Some(t) = &r.tokenizer {
        let _ = writeln!(
            s,
            "\n  tokenizer: vocab {} bos {:?} eos {:?}",
            t.vocab_size, t.bos, t.eos
        );
    }
    s
}
