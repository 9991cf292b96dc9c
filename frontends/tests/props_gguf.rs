//! Property tests of the GGUF reader: random bytes and damaged copies of a
//! valid file never panic, and every error names the file.

use props_common::*;
use proptest::prelude::*;

mod props_common;

proptest! {
    #![proptest_config(cases())]

    /// Random bytes as a `.gguf` file.
    #[test]
    fn gguf_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256), magic in any::<bool>()) {
        let s = scratch();
        let path = s.dir.join("model.gguf");
        let mut bytes = bytes;
        if magic {
            // Get past the magic check so the rest of the parser is reached.
            let mut b = b"GGUF\x03\0\0\0".to_vec();
            b.extend(bytes);
            bytes = b;
        }
        std::fs::write(&path, &bytes).unwrap();
        check_load(&path, &s.dir)?;
    }

    /// A valid GGUF damaged one to four times.
    #[test]
    fn gguf_mutated(muts in proptest::collection::vec(mutation(), 1..5)) {
        let s = scratch();
        let path = s.dir.join("model.gguf");
        let mut bytes = tiny_gguf();
        for m in &muts {
            apply(&mut bytes, m);
        }
        std::fs::write(&path, &bytes).unwrap();
        check_load(&path, &s.dir)?;
    }
}

/// The fixtures above are valid: the properties start from accepting inputs.
#[test]
fn tiny_fixtures_load() {
    let s = scratch();
    std::fs::write(s.dir.join("config.json"), tiny_config().to_string()).unwrap();
    std::fs::write(
        s.dir.join("model.safetensors"),
        safetensors_bytes(&tiny_hf_tensors()),
    )
    .unwrap();
    let m = taalasc_frontends::load(&s.dir).unwrap();
    assert_eq!(m.model.hparams.n_layers, 1);
    let g = s.dir.join("tiny.gguf");
    std::fs::write(&g, tiny_gguf()).unwrap();
    let m = taalasc_frontends::load(&g).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.model.hparams.n_layers, 1);
    assert!(m.tokenizer.is_some());
}
