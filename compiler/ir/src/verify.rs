//! The IR verifier: run after every frontend and every pass.
//!
//! Checks that the graph is acyclic, that every op has exactly its operands on
//! ports `0..arity`, and that widths agree with operands and weight shapes.

use crate::model::Model;
use crate::op::Op;
use crate::weights::WeightId;
use petgraph::graph::NodeIndex;
use petgraph::Direction;

/// A structural defect in a [`Model`] graph, found by [`verify`].
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The graph is not acyclic.
    #[error("the graph has a cycle")]
    Cycle,
    /// One node is malformed.
    #[error("node `{node}`: {message}")]
    Node {
        /// The node's name (e.g. `layers.0.attn.q`).
        node: String,
        /// What is wrong: operand count or ports, widths, weight shapes.
        message: String,
    },
}

/// Checks `model`: acyclic, each op with exactly its operands on ports
/// `0..arity`, widths consistent with operands and weight shapes. Returns the
/// first defect found.
pub fn verify(model: &Model) -> Result<(), VerifyError> {
    if model.topo_order().len() != model.graph.node_count() {
        return Err(VerifyError::Cycle);
    }
    for n in model.graph.node_indices() {
        verify_node(model, n)?;
    }
    if !matches!(model.graph[model.input].op, Op::Tokens) {
        return Err(fail(
            model,
            model.input,
            "the model input must be a `tokens` op",
        ));
    }
    let out = &model.graph[model.output];
    if !matches!(out.op, Op::Logits) || out.width != model.hparams.vocab_size {
        return Err(fail(
            model,
            model.output,
            format!(
                "the model output must be `logits` of width vocab_size = {}",
                model.hparams.vocab_size
            ),
        ));
    }
    Ok(())
}

fn fail(model: &Model, n: NodeIndex, message: impl Into<String>) -> VerifyError {
    VerifyError::Node {
        node: model.graph[n].name.clone(),
        message: message.into(),
    }
}

fn verify_node(model: &Model, n: NodeIndex) -> Result<(), VerifyError> {
    let node = &model.graph[n];
    let mut ports: Vec<usize> = model
        .graph
        .edges_directed(n, Direction::Incoming)
        .map(|e| e.weight().port)
        .collect();
    ports.sort_unstable();
    if ports != (0..node.op.arity()).collect::<Vec<_>>() {
        return Err(fail(
            model,
            n,
            format!(
                "`{}` takes {} operands, found ports {ports:?}",
                node.op.mnemonic(),
                node.op.arity()
            ),
        ));
    }
    let ins: Vec<usize> = model
        .inputs(n)
        .iter()
        .map(|&i| model.graph[i].width)
        .collect();
    let w = node.width;
    let shape_is = |id: WeightId, want: &[usize]| -> Result<(), VerifyError> {
        let info = model.weight(id);
        if info.shape != want {
            return Err(fail(
                model,
                n,
                format!(
                    "weight `{}` has shape {:?}, the op needs {want:?}",
                    info.name, info.shape
                ),
            ));
        }
        Ok(())
    };
    let width_is = |got: usize, want: usize, what: &str| -> Result<(), VerifyError> {
        if got != want {
            return Err(fail(model, n, format!("{what} is {got}, expected {want}")));
        }
        Ok(())
    };
    // The integer norm's constants need a positive, finite epsilon
    // (`taalasc_numerics::NormConsts::new` asserts it).
    let eps_ok = |eps: f32| -> Result<(), VerifyError> {
        if !(eps.is_finite() && eps > 0.0) {
            return Err(fail(
                model,
                n,
                format!("norm eps {eps} must be positive and finite"),
            ));
        }
        Ok(())
    };
    match &node.op {
        Op::Tokens => width_is(w, 1, "width")?,
        Op::Embed { table } => {
            width_is(ins[0], 1, "input width")?;
            let vocab = model.weight(*table).shape.first().copied().unwrap_or(0);
            shape_is(*table, &[vocab, w])?;
        }
        Op::AddPositions { table } => {
            width_is(ins[0], w, "input width")?;
            let rows = model.weight(*table).shape.first().copied().unwrap_or(0);
            shape_is(*table, &[rows, w])?;
        }
        Op::RmsNorm { gain, eps } => {
            eps_ok(*eps)?;
            width_is(ins[0], w, "input width")?;
            shape_is(*gain, &[w])?;
        }
        Op::LayerNorm { gain, bias, eps } => {
            eps_ok(*eps)?;
            width_is(ins[0], w, "input width")?;
            shape_is(*gain, &[w])?;
            shape_is(*bias, &[w])?;
        }
        Op::Linear { weight, bias } => {
            shape_is(*weight, &[w, ins[0]])?;
            if let Some(b) = bias {
                shape_is(*b, &[w])?;
            }
        }
        Op::Rope {
            n_heads,
            head_dim,
            spec,
        } => {
            width_is(ins[0], w, "input width")?;
            width_is(w, n_heads * head_dim, "width")?;
            if !(spec.theta.is_finite() && spec.theta > 0.0) {
                return Err(fail(
                    model,
                    n,
                    format!("RoPE theta {} must be positive and finite", spec.theta),
                ));
            }
            if spec.rotary_dim > *head_dim || spec.rotary_dim % 2 != 0 || spec.rotary_dim == 0 {
                return Err(fail(
                    model,
                    n,
                    format!(
                        "rotary_dim {} must be even and in 2..={head_dim}",
                        spec.rotary_dim
                    ),
                ));
            }
        }
        Op::Attention {
            n_heads,
            n_kv_heads,
            head_dim,
            ..
        } => {
            if *n_kv_heads == 0 || n_heads % n_kv_heads != 0 {
                return Err(fail(
                    model,
                    n,
                    format!("{n_heads} query heads do not divide into {n_kv_heads} kv heads"),
                ));
            }
            width_is(ins[0], n_heads * head_dim, "q width")?;
            width_is(ins[1], n_kv_heads * head_dim, "k width")?;
            width_is(ins[2], n_kv_heads * head_dim, "v width")?;
            width_is(w, n_heads * head_dim, "width")?;
        }
        Op::Add | Op::Mul => {
            width_is(ins[0], w, "left width")?;
            width_is(ins[1], w, "right width")?;
        }
        Op::Silu | Op::GeluTanh | Op::Logits => width_is(ins[0], w, "input width")?,
    }
    Ok(())
}
