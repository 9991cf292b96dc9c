//! `taalasc inspect` on a 1 GB checkpoint must stay under 100 MB peak RSS:
//! weights are memory-mapped and never read by inspect.
//!
//! The checkpoint is a sparse file (valid header, 1 GB of holes), so the test
//! costs no disk space; peak RSS comes from the kernel's accounting of the
//! child process (`wait4`), not from timing.

use serde_json::json;
use std::io::Write;
use taalasc_tests::*;

#[test]
fn inspect_of_a_1gb_checkpoint_stays_under_100mb() {
    let (d, layers, ff, vocab) = (2048usize, 8usize, 5504usize, 32000usize);
    let mut tensors: Vec<(String, Vec<usize>)> =
        vec![("model.embed_tokens.weight".into(), vec![vocab, d])];
    for l in 0..layers {
        let p = format!("model.layers.{l}");
        for (n, s) in [
            ("input_layernorm.weight", vec![d]),
            ("self_attn.q_proj.weight", vec![d, d]),
            ("self_attn.k_proj.weight", vec![d, d]),
            ("self_attn.v_proj.weight", vec![d, d]),
            ("self_attn.o_proj.weight", vec![d, d]),
            ("post_attention_layernorm.weight", vec![d]),
            ("mlp.gate_proj.weight", vec![ff, d]),
            ("mlp.up_proj.weight", vec![ff, d]),
            ("mlp.down_proj.weight", vec![d, ff]),
        ] {
            tensors.push((format!("{p}.{n}"), s));
        }
    }
    tensors.push(("model.norm.weight".into(), vec![d]));
    tensors.push(("lm_head.weight".into(), vec![vocab, d]));
    let mut header = serde_json::Map::new();
    let mut offset = 0u64;
    for (name, shape) in &tensors {
        let bytes = 2 * shape.iter().product::<usize>() as u64;
        header.insert(
            name.clone(),
            json!({"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    assert!(offset > 1_000_000_000, "checkpoint is {offset} bytes");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = json!({
        "architectures": ["LlamaForCausalLM"], "hidden_size": d, "num_hidden_layers": layers,
        "num_attention_heads": 16, "num_key_value_heads": 16, "intermediate_size": ff,
        "vocab_size": vocab, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "tie_word_embeddings": false, "torch_dtype": "float16"
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let h = serde_json::to_vec(&header).unwrap();
    let mut f = std::fs::File::create(dir.join("model.safetensors")).unwrap();
    f.write_all(&(h.len() as u64).to_le_bytes()).unwrap();
    f.write_all(&h).unwrap();
    f.set_len(8 + h.len() as u64 + offset).unwrap();
    drop(f);

    let child = std::process::Command::new(taalasc_bin())
        .args(["inspect", "--json"])
        .arg(dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let out = child.wait_with_output_rusage();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["bytes"].as_u64(),
        Some(offset),
        "inspect counted every byte"
    );
    let max_rss_mb = out.max_rss_kb as f64 / 1024.0;
    eprintln!(
        "inspect of a {:.2} GB checkpoint: peak RSS {max_rss_mb:.1} MB (pid {pid})",
        offset as f64 / 1e9
    );
    assert!(out.success, "inspect failed");
    assert!(max_rss_mb < 100.0, "peak RSS {max_rss_mb:.1} MB");
}

struct Finished {
    stdout: Vec<u8>,
    success: bool,
    max_rss_kb: i64,
}

trait WaitRusage {
    fn wait_with_output_rusage(self) -> Finished;
}

impl WaitRusage for std::process::Child {
    fn wait_with_output_rusage(mut self) -> Finished {
        use std::io::Read;
        let mut stdout = Vec::new();
        self.stdout
            .take()
            .unwrap()
            .read_to_end(&mut stdout)
            .unwrap();
        let mut status = 0;
        // SAFETY: plain FFI call with valid pointers; the child is ours and not yet reaped.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(self.id() as libc::pid_t, &mut status, 0, &mut usage) };
        assert!(r > 0, "wait4 failed");
        Finished {
            stdout,
            success: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            max_rss_kb: usage.ru_maxrss,
        }
    }
}
