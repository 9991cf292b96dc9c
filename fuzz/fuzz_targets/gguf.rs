//! Any bytes as a GGUF file: parse, lower and rebuild the tokenizer. An error
//! is fine (it must name the file); a panic is a finding.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.gguf");
    if let Err(e) = taalasc_frontends::gguf::load_bytes(path, data, None) {
        assert!(e.to_string().starts_with("fuzz.gguf"), "{e}");
    }
});
