//! `verify-image`: the chip-image verifier (`taalasc_image::verify`) and
//! its datapath-type analysis. An image the integer datapath cannot run
//! (e.g. a head_dim that is not a whole activation block) is refused here,
//! before any RTL: no output that only looks complete.

use super::State;
use anyhow::Context;
use std::fmt::Write as _;
use taalasc_image::ImageSource;

/// Checks the streamed image against the datapath, from its metadata, and
/// keeps every node's datapath type.
pub fn run(s: &mut State) -> anyhow::Result<()> {
    let types = taalasc_image::verify(&s.image().info()).with_context(|| {
        format!(
            "{} cannot be built for this datapath",
            s.cfg.model.display()
        )
    })?;
    s.types = Some(types);
    Ok(())
}

/// The verified image: every node's output datapath type, in node order.
pub fn text(s: &State) -> String {
    let types = s.types.as_ref().expect("the verify-image step ran");
    let info = s.image().info();
    let model = &info.model;
    let mut t = format!(
        "image verified: {} nodes, {} weights, context {} positions\n",
        model.graph.node_count(),
        info.params.len(),
        info.context
    );
    for n in model.graph.node_indices() {
        let node = &model.graph[n];
        let _ = writeln!(
            t,
            "{:<40} {:<12} {}",
            node.name,
            node.op.mnemonic(),
            types.of(n)
        );
    }
    t
}
