//! `verify-ir`: the IR verifier on the loaded model.

use super::State;
use anyhow::Context;

/// Checks the model IR (acyclic, shapes and dtypes on every edge).
pub fn run(s: &mut State) -> anyhow::Result<()> {
    taalasc_ir::verify(&s.loaded().model)
        .with_context(|| format!("{}: the model IR is not valid", s.cfg.model.display()))
}
