//! Text form of the IR, used by `taalasc inspect --ir` and snapshot tests.
//!
//! ```text
//! %3 = linear %2 @layers.0.attn.q.weight[64x64 f32]  -> 64  ; layer 0
//! ```

use crate::model::Model;
use crate::op::Op;
use std::fmt::{self, Write};

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = &self.hparams;
        writeln!(
            f,
            "; {} vocab={} d_model={} layers={} heads={}/{} head_dim={} d_ff={}",
            h.architecture,
            h.vocab_size,
            h.d_model,
            h.n_layers,
            h.n_heads,
            h.n_kv_heads,
            h.head_dim,
            h.d_ff
        )?;
        for n in self.topo_order() {
            let node = &self.graph[n];
            let mut line = format!("%{} = {}", n.index(), node.op.mnemonic());
            for i in self.inputs(n) {
                write!(line, " %{}", i.index())?;
            }
            for w in node.op.weights() {
                let info = self.weight(w);
                let dims: Vec<String> = info.shape.iter().map(|d| d.to_string()).collect();
                write!(line, " @{}[{} {}]", info.name, dims.join("x"), info.dtype)?;
            }
            match &node.op {
                Op::RmsNorm { eps, .. } | Op::LayerNorm { eps, .. } => {
                    write!(line, " eps={eps:e}")?
                }
                Op::Rope {
                    n_heads,
                    head_dim,
                    spec,
                } => write!(
                    line,
                    " heads={n_heads} head_dim={head_dim} rotary_dim={} theta={} scaling={:?}",
                    spec.rotary_dim, spec.theta, spec.scaling
                )?,
                Op::Attention {
                    n_heads,
                    n_kv_heads,
                    head_dim,
                    window,
                } => {
                    write!(line, " heads={n_heads}/{n_kv_heads} head_dim={head_dim}")?;
                    if let Some(w) = window {
                        write!(line, " window={w}")?;
                    }
                }
                _ => {}
            }
            write!(line, " -> {}", node.width)?;
            if let Some(l) = node.layer {
                write!(line, "  ; layer {l}")?;
            }
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}
