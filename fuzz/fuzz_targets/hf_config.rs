//! Any bytes as `config.json`, loaded against a small valid Llama
//! checkpoint: parse, check every field, lower. An error is fine (it must
//! name the file); a panic is a finding.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

static WEIGHTS: &[u8] = include_bytes!("../../tests/fixtures/hf/llama_gqa/model.safetensors");

fuzz_target!(|data: &[u8]| {
    let cfg = Path::new("config.json");
    let w = Path::new("model.safetensors");
    if let Err(e) = taalasc_frontends::hf::load_bytes(cfg, data, w, WEIGHTS, None) {
        let m = e.to_string();
        assert!(
            m.starts_with("config.json") || m.starts_with("model.safetensors"),
            "{m}"
        );
    }
});
