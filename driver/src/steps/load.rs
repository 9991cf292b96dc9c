//! `load`: the checkpoint into the model IR, and the options resolved
//! against it (defaults that depend on the model are reported as picked).

use super::State;
use crate::build::BuildOptions;
use crate::config::LinearFormat;

/// Loads the checkpoint (its first `--layers` decoder layers) and resolves
/// the build options.
pub fn run(s: &mut State) -> anyhow::Result<()> {
    let cfg = &s.cfg;
    let loaded = crate::load_layers(&cfg.model, cfg.layers)?;
    let mut opts = BuildOptions::defaults(&loaded.model);
    let mut picked = Vec::new();
    match &cfg.linear {
        LinearFormat::Fixed(f) => opts.linear = *f,
        LinearFormat::Auto(_) => {}
        LinearFormat::Default => picked.push(format!(
            "linear layers {} (4-bit asymmetric, groups of 32; holds GGUF Q4_1 exactly)",
            opts.linear
        )),
    }
    opts.table = cfg.table;
    s.pinned = crate::build::apply_layer_rules(&loaded.model, &cfg.layer_rules)?;
    match cfg.context {
        Some(c) => opts.context = c,
        None => picked.push(format!("context {} positions", opts.context)),
    }
    opts.quantizer = cfg.quantizer();
    if cfg.quantizer.is_none() {
        picked.push(format!("quantizer {:?}", opts.quantizer).to_lowercase());
    }
    opts.gptq.act_order = cfg.gptq_order == crate::build::GptqOrder::Act;
    for p in &picked {
        eprintln!("build: picked {p}");
    }
    s.opts = Some(opts);
    s.loaded = Some(loaded);
    Ok(())
}
