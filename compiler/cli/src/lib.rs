//! # taalasc: the driver
//!
//! The command-line tool's verbs as library functions, so tests and benches
//! call exactly what users run. Stages:
//!
//! ```text
//! checkpoint ──frontends──▶ model IR ──float──▶ logits / perplexity
//! ```

pub mod eval;
pub mod inspect;
pub mod output;

use anyhow::Context;
use std::path::Path;
use taalasc_float::FloatModel;
use taalasc_frontends::LoadedModel;

/// Loads any supported checkpoint.
pub fn load(path: &Path) -> anyhow::Result<LoadedModel> {
    Ok(taalasc_frontends::load(path)?)
}

/// Loads a checkpoint and materializes its float reference.
pub fn load_float(path: &Path) -> anyhow::Result<(LoadedModel, FloatModel)> {
    let loaded = load(path)?;
    let float = FloatModel::new(&loaded.model, &loaded.weights)
        .with_context(|| format!("reading the weights of {}", path.display()))?;
    Ok((loaded, float))
}

/// Parses `1,2,3` (spaces allowed) into token ids.
pub fn parse_tokens(s: &str) -> anyhow::Result<Vec<u32>> {
    s.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<u32>()
                .with_context(|| format!("`{t}` is not a token id"))
        })
        .collect()
}
