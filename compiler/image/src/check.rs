//! Checks of a chip image folder that come from elsewhere: `graph.json`'s
//! format version and every hyperparameter against its nodes, bounds on
//! every size (so that no later allocation is driven by a forged number),
//! config-like values (`eps`, `rope_theta`, ...), and every stored tensor
//! of `weights.safetensors` against the graph.
//!
//! Each error names the file and the field, node or tensor.

use crate::image::{ImageInfo, ParamInfo};
use serde_json::Value;
use std::collections::BTreeSet;
use taalasc_ir::{Model, Op, RopeScaling, GRAPH_FORMAT};

/// The largest dimension (width, head count, vocabulary, table rows) any
/// field of `graph.json` may hold.
pub const MAX_DIM: u64 = 1 << 24;

/// The longest context a chip image may declare, in positions.
pub const MAX_CONTEXT: usize = 1 << 20;

/// Checks the raw JSON of `graph.json` before it is turned into a model:
/// its format version, and that every number that sizes something
/// (hyperparameters, node widths and op fields, weight shapes) is an
/// integer no larger than [`MAX_DIM`]. Returns `field: message`.
pub(crate) fn check_graph_doc(doc: &Value) -> Result<(), String> {
    match doc.get("format") {
        None => {
            return Err(format!(
                "no `format` field: this taalasc reads `{GRAPH_FORMAT}`; rebuild the chip"
            ))
        }
        Some(Value::String(f)) if f == GRAPH_FORMAT => {}
        Some(f) => {
            return Err(format!(
            "format: {f} is not `{GRAPH_FORMAT}`, the version this taalasc reads; rebuild the chip"
        ))
        }
    }
    let size = |field: String, v: &Value| -> Result<(), String> {
        match v.as_u64() {
            Some(n) if n <= MAX_DIM => Ok(()),
            Some(n) => Err(format!("{field}: {n} is larger than {MAX_DIM}")),
            None => Err(format!("{field}: {v} is not a count")),
        }
    };
    let h = doc
        .get("hparams")
        .and_then(Value::as_object)
        .ok_or("hparams: missing or not an object")?;
    for k in [
        "vocab_size",
        "d_model",
        "n_layers",
        "n_heads",
        "n_kv_heads",
        "head_dim",
        "d_ff",
        "max_positions",
    ] {
        size(
            format!("hparams.{k}"),
            h.get(k).ok_or(format!("hparams.{k}: missing"))?,
        )?;
    }
    if let Some(w) = doc.get("weights").and_then(Value::as_array) {
        for (i, w) in w.iter().enumerate() {
            let name = w["name"].as_str().unwrap_or("?");
            let shape = w["shape"]
                .as_array()
                .ok_or(format!("weights[{i}] (`{name}`).shape: not a list"))?;
            if shape.is_empty() || shape.len() > 2 {
                return Err(format!(
                    "weights[{i}] (`{name}`).shape: {} dimensions, expected 1 or 2",
                    shape.len()
                ));
            }
            for d in shape {
                size(format!("weights[{i}] (`{name}`).shape"), d)?;
            }
        }
    }
    if let Some(nodes) = doc.get("nodes").and_then(Value::as_array) {
        for (i, n) in nodes.iter().enumerate() {
            let name = n["name"].as_str().unwrap_or("?");
            size(format!("nodes[{i}] (`{name}`).width"), &n["width"])?;
            if let Some(op) = n["op"].as_object() {
                for k in ["n_heads", "n_kv_heads", "head_dim", "window"] {
                    if let Some(v) = op.get(k).filter(|v| !v.is_null()) {
                        size(format!("nodes[{i}] (`{name}`).op.{k}"), v)?;
                    }
                }
                if let Some(r) = op.get("spec").and_then(|s| s.get("rotary_dim")) {
                    size(format!("nodes[{i}] (`{name}`).op.spec.rotary_dim"), r)?;
                }
            }
            if let Some(l) = n.get("layer").filter(|v| !v.is_null()) {
                size(format!("nodes[{i}] (`{name}`).layer"), l)?;
            }
        }
    }
    Ok(())
}

/// Checks every hyperparameter of a verified model against its nodes, and
/// every config-like value (norm `eps`, RoPE `theta` and scaling) for range.
/// Returns `field: message`.
pub(crate) fn check_hparams(model: &Model) -> Result<(), String> {
    let h = &model.hparams;
    let mismatch = |field: &str, got: usize, what: &str, want: usize| {
        Err(format!("hparams.{field} is {got}, but {what} is {want}"))
    };
    // Layers: the layers the nodes belong to are exactly 0..n_layers.
    let layers: BTreeSet<usize> = model.graph.node_weights().filter_map(|n| n.layer).collect();
    if layers.len() != h.n_layers || layers.last().is_some_and(|&l| l + 1 != layers.len()) {
        return Err(format!(
            "hparams.n_layers is {}, but the nodes hold {} decoder layers (numbered {:?})",
            h.n_layers,
            layers.len(),
            layers.iter().take(8).collect::<Vec<_>>()
        ));
    }
    // Every value flows forward through the layers: embedding (and
    // positions), layer 0, 1, ..., then the head (the phases the hardware
    // runs them in).
    let phase = |nd: taalasc_ir::NodeIndex| model.phase_of(&model.graph[nd]);
    for nd in model.graph.node_indices() {
        for i in model.inputs(nd) {
            if phase(i) > phase(nd) {
                let at = |n: &taalasc_ir::Node| {
                    n.layer.map_or("no layer".into(), |l| format!("layer {l}"))
                };
                return Err(format!(
                    "node `{}` ({}) reads `{}` ({}), which comes after it",
                    model.graph[nd].name,
                    at(&model.graph[nd]),
                    model.graph[i].name,
                    at(&model.graph[i])
                ));
            }
        }
    }
    let mut attn = 0;
    for nd in model.graph.node_indices() {
        let node = &model.graph[nd];
        let here = |field: &str, got: f64| -> Result<(), String> {
            Err(format!(
                "node `{}`: {field} is {got}, expected a finite number > 0",
                node.name
            ))
        };
        match &node.op {
            Op::Embed { table } => {
                if node.width != h.d_model {
                    return mismatch("d_model", h.d_model, "the embedding width", node.width);
                }
                let rows = model.weight(*table).shape.first().copied().unwrap_or(0);
                if rows != h.vocab_size {
                    return mismatch("vocab_size", h.vocab_size, "rows of the embedding", rows);
                }
            }
            Op::RmsNorm { eps, .. } | Op::LayerNorm { eps, .. }
                if !(eps.is_finite() && *eps > 0.0) =>
            {
                return here("eps", *eps as f64);
            }
            Op::Rope { spec, .. } => {
                if !(spec.theta.is_finite() && spec.theta > 0.0) {
                    return Err(format!(
                        "node `{}`: rope theta is {}, expected a finite number > 0",
                        node.name, spec.theta
                    ));
                }
                let factors: Vec<(&str, f64)> = match spec.scaling {
                    RopeScaling::None => Vec::new(),
                    RopeScaling::Linear { factor } => vec![("scaling.factor", factor)],
                    RopeScaling::Llama3 {
                        factor,
                        low_freq_factor,
                        high_freq_factor,
                        original_max_positions,
                    } => vec![
                        ("scaling.factor", factor),
                        ("scaling.low_freq_factor", low_freq_factor),
                        ("scaling.high_freq_factor", high_freq_factor),
                        ("scaling.original_max_positions", original_max_positions),
                    ],
                };
                for (f, v) in factors {
                    if !(v.is_finite() && v > 0.0) {
                        return here(f, v);
                    }
                }
                if let RopeScaling::Llama3 {
                    low_freq_factor,
                    high_freq_factor,
                    ..
                } = spec.scaling
                {
                    if high_freq_factor <= low_freq_factor {
                        return Err(format!(
                            "node `{}`: rope scaling.high_freq_factor {high_freq_factor} must exceed low_freq_factor {low_freq_factor}",
                            node.name
                        ));
                    }
                }
            }
            Op::Attention {
                n_heads,
                n_kv_heads,
                head_dim,
                window,
            } => {
                attn += 1;
                if *n_heads != h.n_heads {
                    return mismatch("n_heads", h.n_heads, &format!("`{}`", node.name), *n_heads);
                }
                if *n_kv_heads != h.n_kv_heads {
                    let what = format!("`{}`", node.name);
                    return mismatch("n_kv_heads", h.n_kv_heads, &what, *n_kv_heads);
                }
                if *head_dim != h.head_dim {
                    let what = format!("`{}`", node.name);
                    return mismatch("head_dim", h.head_dim, &what, *head_dim);
                }
                if *window == Some(0) {
                    return Err(format!("node `{}`: window is 0", node.name));
                }
            }
            Op::Silu | Op::GeluTanh if node.width != h.d_ff => {
                let what = format!("the width of `{}`", node.name);
                return mismatch("d_ff", h.d_ff, &what, node.width);
            }
            _ => {}
        }
    }
    if attn > 0 && (h.n_kv_heads == 0 || !h.n_heads.is_multiple_of(h.n_kv_heads)) {
        return Err(format!(
            "hparams.n_heads {} is not a multiple of hparams.n_kv_heads {}",
            h.n_heads, h.n_kv_heads
        ));
    }
    if h.max_positions == 0 {
        return Err("hparams.max_positions is 0".into());
    }
    for (field, id) in [
        ("bos_token_id", h.bos_token_id),
        ("eos_token_id", h.eos_token_id),
    ] {
        if let Some(t) = id.filter(|&t| t as usize >= h.vocab_size) {
            return Err(format!(
                "hparams.{field} {t} is outside the vocabulary of {}",
                h.vocab_size
            ));
        }
    }
    Ok(())
}

/// Checks the context the weights file declares: at least 1, at most
/// [`MAX_CONTEXT`], and within every learned position table.
pub(crate) fn check_context(model: &Model, context: usize) -> Result<(), String> {
    if context == 0 || context > MAX_CONTEXT {
        return Err(format!(
            "metadata context {context} is not in 1..={MAX_CONTEXT}"
        ));
    }
    for n in model.graph.node_weights() {
        if let Op::AddPositions { table } = n.op {
            let rows = model.weight(table).shape.first().copied().unwrap_or(0);
            if rows < context {
                return Err(format!(
                    "metadata context {context} is longer than the {rows} rows of `{}`",
                    model.weight(table).name
                ));
            }
        }
    }
    Ok(())
}

/// Checks each stored weight's form against the shape `graph.json` gives
/// it. Returns `tensor: message`.
pub(crate) fn check_params(info: &ImageInfo) -> Result<(), String> {
    for (w, p) in info.model.weights.iter().zip(&info.params) {
        let n = &w.name;
        match (p, w.shape.as_slice()) {
            (ParamInfo::Matrix(m), &[r, c]) => {
                if (m.rows, m.cols) != (r, c) {
                    return Err(format!(
                        "tensor `{n}.codes` has shape [{}, {}], but graph.json gives `{n}` the shape [{r}, {c}]",
                        m.rows, m.cols
                    ));
                }
                let groups = if r == 0 {
                    0
                } else {
                    m.format.groups_per_row(c)
                };
                if let Err(e) = m.format.check_cols(c) {
                    return Err(format!("`{n}`: format {}: {e}", m.format.name()));
                }
                if m.groups != groups {
                    return Err(format!(
                        "tensor `{n}.scales` holds {} groups per row, but format {} of {c} columns has {groups}",
                        m.groups,
                        m.format.name()
                    ));
                }
                if m.offsets == m.format.symmetric && groups > 0 {
                    return Err(format!(
                        "tensor `{n}.offsets`: {} for format {}",
                        if m.offsets { "present" } else { "missing" },
                        m.format.name()
                    ));
                }
                let wl = &m.widths;
                if !(wl.groups.is_empty() || wl.groups.len() == groups)
                    || !(wl.rows.is_empty() || wl.rows.len() == r)
                    || (!wl.groups.is_empty() && !wl.rows.is_empty())
                {
                    return Err(format!(
                        "tensors `{n}.group_bits` / `{n}.row_bits` hold {} / {} widths for {groups} groups of {r} rows",
                        wl.groups.len(),
                        wl.rows.len()
                    ));
                }
            }
            (ParamInfo::Fixed16(k), &[len]) | (ParamInfo::Wide(k), &[len]) => {
                if *k != len {
                    let t = if matches!(p, ParamInfo::Fixed16(_)) {
                        "fixed16"
                    } else {
                        "w48"
                    };
                    return Err(format!(
                        "tensor `{n}.{t}` holds {k} values, but graph.json gives `{n}` the shape [{len}]"
                    ));
                }
            }
            (ParamInfo::Matrix(_), s) => {
                return Err(format!(
                    "tensor `{n}.codes` is a matrix, but graph.json gives `{n}` the shape {s:?}"
                ))
            }
            (_, s) => {
                return Err(format!(
                    "`{n}` is stored as a vector, but graph.json gives it the shape {s:?}"
                ))
            }
        }
    }
    Ok(())
}
