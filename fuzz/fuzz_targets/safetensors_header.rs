//! Any bytes as a safetensors file: the header parser alone. An error is
//! fine (it must name the file); a panic is a finding.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.safetensors");
    if let Err(e) = taalasc_frontends::hf::safetensors::parse_header(path, data) {
        assert!(e.to_string().starts_with("fuzz.safetensors"), "{e}");
    }
});
