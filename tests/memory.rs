//! Memory bounds, measured on the `taalasc` process itself (peak RSS from
//! the kernel's accounting of the child, `wait4`, not from timing):
//!
//! - `inspect` of a 1 GB checkpoint stays under 100 MB: weights are
//!   memory-mapped and never read. The checkpoint is a sparse file (valid
//!   header, 1 GB of holes), so the test costs no disk space.
//! - `build` streams weights: a 12-layer model's build (RTL included) peaks
//!   no higher than a 2-layer one's, give or take a few MB, although it has
//!   ten more layers of weights.
//!
//! `TAALASC_BIN` runs the tests against another `taalasc` binary (e.g. an
//! older build, to see the build test fail on a non-streaming build).

use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use taalasc_tests::*;

/// The binary under test: `TAALASC_BIN`, or this build's.
fn bin() -> PathBuf {
    std::env::var_os("TAALASC_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(taalasc_bin)
}

/// The tensors of a Llama-shaped F16 checkpoint (hidden `d`, `layers`
/// layers, FFN `ff`, vocabulary `vocab`, K/V projections of `kv` rows,
/// untied head), its safetensors header and its data size in bytes.
#[allow(clippy::type_complexity)]
fn llama_f16_layout(
    d: usize,
    layers: usize,
    ff: usize,
    vocab: usize,
    kv: usize,
) -> (
    Vec<(String, Vec<usize>)>,
    serde_json::Map<String, serde_json::Value>,
    u64,
) {
    let mut tensors: Vec<(String, Vec<usize>)> =
        vec![("model.embed_tokens.weight".into(), vec![vocab, d])];
    for l in 0..layers {
        let p = format!("model.layers.{l}");
        for (n, s) in [
            ("input_layernorm.weight", vec![d]),
            ("self_attn.q_proj.weight", vec![d, d]),
            ("self_attn.k_proj.weight", vec![kv, d]),
            ("self_attn.v_proj.weight", vec![kv, d]),
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
    (tensors, header, offset)
}

#[test]
fn inspect_of_a_1gb_checkpoint_stays_under_100mb() {
    let (d, layers, ff, vocab) = (2048usize, 8usize, 5504usize, 32000usize);
    let (_, header, offset) = llama_f16_layout(d, layers, ff, vocab, d);
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

    let child = std::process::Command::new(bin())
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

/// Writes a Llama-shaped F16 checkpoint (`config.json`, `model.safetensors`)
/// into `dir`: hidden `d`, `layers` decoder layers, 8 heads, FFN `ff`, vocab
/// `vocab`, untied head; weights pseudo-random in ±0.035, gains 1 ± 0.05.
/// Written a tensor at a time.
fn write_llama_f16(dir: &Path, d: usize, layers: usize, ff: usize, vocab: usize) {
    let (tensors, header, _) = llama_f16_layout(d, layers, ff, vocab, d / 2);
    let config = json!({
        "architectures": ["LlamaForCausalLM"], "hidden_size": d, "num_hidden_layers": layers,
        "num_attention_heads": 8, "num_key_value_heads": 4, "intermediate_size": ff,
        "vocab_size": vocab, "max_position_embeddings": 256, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "tie_word_embeddings": false, "torch_dtype": "float16"
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let h = serde_json::to_vec(&header).unwrap();
    let f = std::fs::File::create(dir.join("model.safetensors")).unwrap();
    let mut f = std::io::BufWriter::new(f);
    f.write_all(&(h.len() as u64).to_le_bytes()).unwrap();
    f.write_all(&h).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for (name, shape) in &tensors {
        let gain = shape.len() == 1;
        let mut buf = Vec::with_capacity(2 * shape.iter().product::<usize>());
        for _ in 0..shape.iter().product::<usize>() {
            // xorshift64*: uniform in [-1, 1).
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let u = (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 52) as f64
                - 1.0;
            let x = if gain { 1.0 + 0.05 * u } else { 0.035 * u };
            buf.extend_from_slice(&half::f16::from_f64(x).to_le_bytes());
        }
        f.write_all(&buf).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    f.flush().unwrap();
}

/// Runs `taalasc build` on `model` into `out`; its peak RSS in MB.
fn build_rss_mb(model: &Path, out: &Path, extra: &[&str]) -> f64 {
    let child = std::process::Command::new(bin())
        .arg("build")
        .arg(model)
        .arg("-o")
        .arg(out)
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let done = child.wait_with_output_rusage();
    assert!(
        done.success,
        "build of {} failed: {}",
        model.display(),
        String::from_utf8_lossy(&done.stdout)
    );
    done.max_rss_kb as f64 / 1024.0
}

/// Ten more decoder layers (39M more weights: 78 MB of F16 source, 39 MB of
/// codes at one byte each, 70 MB of ROM text) must not raise the build's
/// peak RSS by more than 12 MB: weights are quantized, written and dropped
/// one at a time, and the RTL reads them back a slice at a time. A build
/// that holds the image (as before streaming) grows by the codes at least,
/// twice over when it serializes them in memory.
#[test]
fn build_memory_does_not_grow_with_layers() {
    let (d, ff, vocab) = (512usize, 2048usize, 1024usize);
    let tmp = tempfile::tempdir().unwrap();
    let mut rss = Vec::new();
    for layers in [2usize, 12] {
        let model = tmp.path().join(format!("m{layers}"));
        std::fs::create_dir(&model).unwrap();
        write_llama_f16(&model, d, layers, ff, vocab);
        let out = tmp.path().join(format!("m{layers}.chip"));
        let mb = build_rss_mb(&model, &out, &["--lanes", "64", "--context", "64"]);
        let chip_mb: u64 = walk(&out)
            .iter()
            .map(|p| p.metadata().unwrap().len())
            .sum::<u64>()
            >> 20;
        eprintln!("build of {layers} layers: peak RSS {mb:.1} MB, chip folder {chip_mb} MB");
        rss.push(mb);
        std::fs::remove_dir_all(&out).unwrap();
        std::fs::remove_dir_all(&model).unwrap();
    }
    let extra_mweights = 10.0 * (4.0 * 0.75 * (d * d) as f64 + 3.0 * (d * ff) as f64) / 1048576.0;
    let margin = 12.0;
    assert!(margin < extra_mweights / 3.0, "{extra_mweights}");
    assert!(
        rss[1] < rss[0] + margin,
        "12 layers peak at {:.1} MB, 2 layers at {:.1} MB: more than {margin} MB apart \
         ({extra_mweights:.0}M more weights); the build holds weights instead of streaming them",
        rss[1],
        rss[0]
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
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

/// The streamed build (weights written as they are made, large matrices a
/// slice of rows at a time, the RTL read back from disk a slice at a time)
/// writes the same bytes, file for file, as the in-memory image; its report
/// and hardware plan are the same; and the lazily read image holds the
/// same values. Mixed code widths per row and per column group, asymmetric
/// and symmetric formats, slices of 3 rows and a threaded in-memory RTN.
#[test]
fn streamed_build_is_byte_identical_to_the_in_memory_image() {
    use taalasc::build::{build_image, build_streamed_sliced, write_image, BuildOptions};
    use taalasc_image::{ImageSource, LazyImage};
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m");
    std::fs::create_dir(&model).unwrap();
    let (d, ff, vocab) = (256usize, 512usize, 300usize);
    write_llama_f16(&model, d, 2, ff, vocab);
    let loaded = taalasc::load(&model).unwrap();
    let mut opts = BuildOptions {
        context: 16,
        linear: "s3g32h".parse().unwrap(),
        table: "a6g32h".parse().unwrap(),
        ..BuildOptions::defaults(&loaded.model)
    };
    let f = |s: &str| s.parse::<taalasc_quant::WeightFormat>().unwrap();
    opts.per_weight.insert("lm_head.weight".into(), f("s4g32h"));
    opts.widths.insert(
        "lm_head.weight".into(),
        taalasc_quant::CodeWidths {
            groups: Vec::new(),
            rows: (0..vocab)
                .map(|r| 3 + ((r * 37 + r / 7) % 5 < 2) as u8)
                .collect(),
        },
    );
    opts.per_weight
        .insert("layers.0.mlp.down.weight".into(), f("a4g32h"));
    opts.widths.insert(
        "layers.0.mlp.down.weight".into(),
        taalasc_quant::CodeWidths {
            groups: (0..ff / 32).map(|g| 3 + (g % 2) as u8).collect(),
            rows: Vec::new(),
        },
    );
    opts.per_weight
        .insert("layers.1.attn.o.weight".into(), f("a6g64"));
    let (eager, report_e) = build_image(&loaded, &opts, None).unwrap();
    let (a, b) = (
        tmp.path().join("eager.chip"),
        tmp.path().join("streamed.chip"),
    );
    let claim = |out: &std::path::Path| {
        taalasc::output::claim(
            out,
            taalasc::output::FolderKind::Chip,
            taalasc::output::Existing::Refuse,
        )
        .unwrap()
    };
    let (mut streamed, report_s) =
        build_streamed_sliced(&loaded, &opts, None, claim(&b), 3 * d).unwrap();
    assert_eq!(
        serde_json::to_value(&report_e).unwrap(),
        serde_json::to_value(&report_s).unwrap()
    );
    let plan_e = taalasc_verilog::plan(&eager, 8, 2).unwrap();
    let plan_s = taalasc_verilog::plan(&streamed, 8, 2).unwrap();
    assert_eq!(
        taalasc_verilog::manifest(&plan_e),
        taalasc_verilog::manifest(&plan_s)
    );
    let m = json!({"m": 1});
    write_image(claim(&a), &eager, &m, &m, Some((&plan_e, "x")), None).unwrap();
    let staging = streamed.take_staging().unwrap();
    write_image(staging, &streamed, &m, &m, Some((&plan_s, "x")), None).unwrap();
    drop(streamed);
    assert!(
        b.join("weights.safetensors").is_file(),
        "the folder is kept"
    );
    let (fa, fb) = (walk(&a), walk(&b));
    assert_eq!(fa.len(), fb.len());
    assert!(fa.len() > 40, "{} files", fa.len());
    for p in &fa {
        let q = b.join(p.strip_prefix(&a).unwrap());
        assert!(
            std::fs::read(p).unwrap() == std::fs::read(&q).unwrap(),
            "{} differs",
            q.display()
        );
    }
    // The in-memory image's own serialization and ROM texts, too.
    let (graph, weights) = eager.to_files();
    assert_eq!(
        std::fs::read(b.join("graph.json")).unwrap(),
        graph.as_bytes()
    );
    assert!(std::fs::read(b.join("weights.safetensors")).unwrap() == weights);
    let mut roms = 0;
    taalasc_verilog::roms::for_each_rom(&eager, &plan_e, |file, text| {
        roms += 1;
        assert!(
            std::fs::read(b.join("rom").join(file)).unwrap() == text.as_bytes(),
            "{file}"
        );
        Ok(())
    })
    .unwrap();
    assert!(roms > 20);
    // Read back lazily: the same values, in any slice of rows.
    let lazy = LazyImage::open(&b).unwrap();
    for (i, p) in eager.params.iter().enumerate() {
        let id = taalasc_ir::WeightId(i as u32);
        match p {
            taalasc_image::Param::Matrix(q) => {
                assert_eq!(*lazy.matrix_rows(id, 0..q.rows).unwrap(), *q);
                let r = q.rows / 3..q.rows / 2;
                assert_eq!(
                    *lazy.matrix_rows(id, r.clone()).unwrap(),
                    taalasc_image::rows_of(q, r)
                );
            }
            taalasc_image::Param::Fixed16(v) => {
                assert_eq!(&*lazy.fixed16_values(id).unwrap(), &v[..])
            }
            taalasc_image::Param::Wide(v) => {
                assert_eq!(&*lazy.wide_values(id).unwrap(), &v[..])
            }
        }
    }
    // A build that fails after streaming leaves no staging folder behind.
    let c = tmp.path().join("failed.chip");
    let (s, _) = build_streamed_sliced(&loaded, &opts, None, claim(&c), 3 * d).unwrap();
    drop(s);
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("failed"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
