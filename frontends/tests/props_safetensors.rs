//! Property tests of the safetensors reader: random bytes, random JSON
//! headers and damaged copies of a valid checkpoint never panic, and every
//! error names the file.

use props_common::*;
use proptest::prelude::*;
use serde_json::Value;

mod props_common;

proptest! {
    #![proptest_config(cases())]

    /// Random bytes as `model.safetensors` (beside a valid config).
    #[test]
    fn safetensors_random_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
        json_header in proptest::option::of(json_value()),
    ) {
        let s = scratch();
        std::fs::write(s.dir.join("config.json"), tiny_config().to_string()).unwrap();
        let bytes = match json_header {
            // A length-correct container around a random JSON header.
            Some(h) => {
                let h = h.to_string().into_bytes();
                let mut out = (h.len() as u64).to_le_bytes().to_vec();
                out.extend(h);
                out.extend(bytes);
                out
            }
            None => bytes,
        };
        std::fs::write(s.dir.join("model.safetensors"), &bytes).unwrap();
        check_load(&s.dir, &s.dir)?;
    }

    /// A valid safetensors checkpoint damaged one to four times, or with one
    /// header field of one tensor replaced by a random JSON value.
    #[test]
    fn safetensors_mutated(
        muts in proptest::collection::vec(mutation(), 1..5),
        field in proptest::option::of((0usize..12, prop_oneof![Just("dtype"), Just("shape"), Just("data_offsets")], json_value())),
        header_only in any::<bool>(),
    ) {
        let s = scratch();
        std::fs::write(s.dir.join("config.json"), tiny_config().to_string()).unwrap();
        let tensors = tiny_hf_tensors();
        let mut bytes = safetensors_bytes(&tensors);
        if let Some((t, key, v)) = field {
            let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
            let mut h: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
            h[&tensors[t].0][key] = v;
            let hb = serde_json::to_vec(&h).unwrap();
            let mut out = (hb.len() as u64).to_le_bytes().to_vec();
            out.extend(hb);
            out.extend_from_slice(&bytes[8 + n..]);
            bytes = out;
        }
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        for m in &muts {
            if header_only {
                // Damage only the header (length prefix included), which is
                // where the parser's decisions are made.
                let mut head = bytes[..8 + n].to_vec();
                apply(&mut head, m);
                head.extend_from_slice(&bytes[8 + n..]);
                bytes = head;
            } else {
                apply(&mut bytes, m);
            }
        }
        std::fs::write(s.dir.join("model.safetensors"), &bytes).unwrap();
        check_load(&s.dir, &s.dir)?;
    }
}
