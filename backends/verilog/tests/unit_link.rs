//! `tls_link` under Verilator (`tests/tb/tb_link.v`): six links of widths
//! 8 to 256 bits and latencies 1 to 20 cycles carry 2,000 words each, free
//! running and then with random stalls on both sides. Every word must come
//! out once, in order; free running, a link of 32 bits or more moves one
//! word per cycle (plus the fill of one beat and its latency) and a
//! narrower one takes 32/W beats and one cycle to present each word.

use std::path::Path;
use std::process::Command;
use taalasc_verilog::tools;

#[test]
fn link_delivers_every_word_in_order_at_full_rate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let srcs = vec![
        tools::rtl_lib("tls_link.v"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tb/tb_link.v"),
    ];
    let bin = tools::verilator_binary(dir, "tb_link", &srcs).unwrap();
    let out = Command::new(&bin).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lanes = 0;
    for line in text.lines().filter(|l| l.starts_with("phase")) {
        let f: Vec<u64> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        // phase, lane, W, D, words, cycles, errors, done
        let [phase, _lane, w, d, words, cycles, errors, done] = f[..] else {
            panic!("unexpected line {line}");
        };
        assert_eq!((errors, done), (0, 1), "{line}");
        if phase == 0 {
            let per_word = if w >= 32 { 1 } else { 32 / w + 1 };
            // Plus the pipeline's fill: a beat of up to W/32 words, the
            // wire's D cycles, and the buffer and the testbench's registers.
            let bound = words * per_word + d + (w / 32).max(1) + 4;
            assert!(
                cycles <= bound && cycles >= words * per_word,
                "{line}: expected {} to {bound} cycles",
                words * per_word
            );
        }
        lanes += 1;
    }
    assert_eq!(lanes, 12, "{text}");
}
