//! `verify-image`: the chip-image verifier. An image the integer datapath
//! cannot run (e.g. a head_dim that is not a whole activation block) is
//! refused here, before any RTL: no output that only looks complete.

use super::State;
use anyhow::Context;
use taalasc_image::ImageSource;

/// Checks the streamed image against the datapath, from its metadata.
pub fn run(s: &mut State) -> anyhow::Result<()> {
    taalasc_reference::check_image(&s.image().info()).with_context(|| {
        format!(
            "{} cannot be built for this datapath",
            s.cfg.model.display()
        )
    })?;
    Ok(())
}

/// The verified image: its graph's nodes, context and weights.
pub fn text(s: &State) -> String {
    let info = s.image().info();
    format!(
        "image verified: {} nodes, {} weights, context {} positions\n",
        info.model.graph.node_count(),
        info.params.len(),
        info.context
    )
}
