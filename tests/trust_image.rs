//! Issue 14, chip-image and generation half: a chip folder may come from
//! elsewhere, so every file of it is checked when it is loaded (errors name
//! the file and the tensor, field or layer); the float reference refuses to
//! print NaN; generation stops at the context and keeps what it generated.
//! Each test damages a copy of `examples/tiny-llama` or a chip built from it.
//! A damaged chip file is resealed (its digest in manifest.json updated), as
//! someone handing over a forged folder would: the digests alone would
//! otherwise catch every edit first (tests/trust_output.rs), and the image
//! checks below would go untested.

use serde_json::Value;
use std::path::{Path, PathBuf};
use taalasc_tests::*;

fn tiny() -> PathBuf {
    repo_root().join("examples/tiny-llama")
}

fn sample() -> String {
    tiny().join("sample.txt").display().to_string()
}

/// A chip built from tiny-llama (`extra` build flags) in a fresh temporary folder.
fn chip(extra: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("chip");
    let model = tiny().display().to_string();
    let o = out.display().to_string();
    let mut args = vec!["build", model.as_str(), "-o", o.as_str(), "--no-rtl"];
    args.extend_from_slice(extra);
    taalasc_ok(&args);
    (tmp, out)
}

/// Runs taalasc, expecting failure; returns stderr.
fn fails(args: &[&str]) -> String {
    let o = taalasc_run(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        !o.status.success(),
        "taalasc {args:?} succeeded:\n{}{err}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(
        !err.contains("panicked") && o.status.code() == Some(1),
        "taalasc {args:?} did not fail cleanly ({:?}):\n{err}",
        o.status
    );
    err
}

fn assert_mentions(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "`{msg}` does not mention `{p}`");
    }
}

/// Updates the digest of the chip file `path` in its folder's manifest.
fn reseal(path: &Path) {
    use sha2::Digest;
    let dir = path.parent().unwrap();
    let name = path.file_name().unwrap().to_str().unwrap();
    let mp = dir.join("manifest.json");
    let mut m: Value = serde_json::from_str(&std::fs::read_to_string(&mp).unwrap()).unwrap();
    let d: String = sha2::Sha256::digest(std::fs::read(path).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(m["digests"][name].is_string(), "{name} has no digest");
    m["digests"][name] = Value::String(d);
    std::fs::write(&mp, serde_json::to_string_pretty(&m).unwrap()).unwrap();
}

fn edit_graph(dir: &Path, f: impl FnOnce(&mut Value)) {
    let p = dir.join("graph.json");
    let mut g: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut g);
    std::fs::write(&p, serde_json::to_string(&g).unwrap()).unwrap();
    reseal(&p);
}

/// Rewrites the header of a safetensors file.
fn edit_header(path: &Path, f: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut h: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    f(h.as_object_mut().unwrap());
    let mut hb = serde_json::to_vec(&h).unwrap();
    while !hb.len().is_multiple_of(8) {
        hb.push(b' ');
    }
    let mut out = (hb.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&hb);
    out.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(path, out).unwrap();
    if path.parent().unwrap().join("manifest.json").is_file() {
        reseal(path);
    }
}

fn run_chip(dir: &Path) -> String {
    let d = dir.display().to_string();
    fails(&["run", &d, "--tokens", "1,2,3", "--max-tokens", "2"])
}

fn eval_chip(dir: &Path) -> String {
    let d = dir.display().to_string();
    fails(&[
        "eval",
        &d,
        "--text",
        &sample(),
        "--ctx",
        "16",
        "--chunks",
        "1",
    ])
}

/// Defect 1: a header shape that disagrees with graph.json (same element
/// count, so the data offsets still fit) is refused on load by run and eval.
#[test]
fn weights_header_shape_disagreeing_with_the_graph_is_refused() {
    let (_t, dir) = chip(&[]);
    let w = dir.join("weights.safetensors");
    edit_header(&w, |h| {
        h["layers.0.attn.q.weight.scales"]["shape"] = serde_json::json!([256, 1]);
    });
    for msg in [run_chip(&dir), eval_chip(&dir)] {
        assert_mentions(
            &msg,
            &[
                "weights.safetensors",
                "`layers.0.attn.q.weight.scales`",
                "[256, 1]",
                "[128, 2]",
            ],
        );
    }
    let (_t2, dir) = chip(&[]);
    edit_header(&dir.join("weights.safetensors"), |h| {
        h["layers.0.attn_norm.gain.fixed16"]["shape"] = serde_json::json!([8, 8]);
    });
    assert_mentions(
        &run_chip(&dir),
        &[
            "weights.safetensors",
            "`layers.0.attn_norm.gain.fixed16`",
            "[8, 8]",
            "graph.json",
        ],
    );
    // A tensor the graph does not have.
    let (_t3, dir) = chip(&[]);
    edit_header(&dir.join("weights.safetensors"), |h| {
        let t = h["layers.0.attn_norm.gain.fixed16"].clone();
        h.insert("stray.fixed16".into(), t);
    });
    assert_mentions(&run_chip(&dir), &["weights.safetensors", "`stray.fixed16`"]);
}

/// Defect 2: hyperparameters of graph.json are checked against the nodes
/// and bounded before anything is allocated from them.
#[test]
fn graph_hyperparameters_are_checked_against_the_nodes() {
    let (_t, dir) = chip(&[]);
    let d = dir.display().to_string();
    edit_graph(&dir, |g| g["hparams"]["n_layers"] = (1u64 << 40).into());
    for msg in [
        fails(&["sim", &d, "--tokens", "1,2"]),
        run_chip(&dir),
        eval_chip(&dir),
    ] {
        assert_mentions(&msg, &["graph.json", "hparams.n_layers", "1099511627776"]);
    }
    let cases: [(&str, Value, &str); 5] = [
        ("n_layers", 3.into(), "the nodes hold 2 decoder layers"),
        ("d_ff", 7.into(), "hparams.d_ff is 7"),
        ("n_heads", 8.into(), "hparams.n_heads is 8"),
        ("head_dim", 0.into(), "hparams.head_dim is 0"),
        ("max_positions", "many".into(), "hparams.max_positions"),
    ];
    for (field, value, want) in cases {
        let (_t, dir) = chip(&[]);
        edit_graph(&dir, |g| g["hparams"][field] = value);
        assert_mentions(&run_chip(&dir), &["graph.json", want]);
    }
}

/// Defect 3: graph.json carries a format version, required on read.
#[test]
fn graph_format_version_is_required_and_checked() {
    let (_t, dir) = chip(&[]);
    let g: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("graph.json")).unwrap()).unwrap();
    assert_eq!(g["format"], "taalasc-graph-1");
    edit_graph(&dir, |g| g["format"] = "taalasc-graph-9".into());
    assert_mentions(
        &run_chip(&dir),
        &["graph.json", "format", "taalasc-graph-9", "taalasc-graph-1"],
    );
    edit_graph(&dir, |g| {
        g.as_object_mut().unwrap().remove("format");
    });
    assert_mentions(&run_chip(&dir), &["graph.json", "no `format` field"]);
}

/// Defect 4: config-like values inside graph.json are range-checked.
#[test]
fn graph_config_values_are_range_checked() {
    type Edit = fn(&mut Value);
    // Each error names the file, the node or field, and the value.
    let cases: [(Edit, &[&str]); 4] = [
        (
            |g| g["nodes"][2]["op"]["eps"] = 0.into(),
            &["node `layers.0.attn_norm`", "eps", " 0 "],
        ),
        (
            |g| g["nodes"][2]["op"]["eps"] = (-1.0).into(),
            &["node `layers.0.attn_norm`", "eps", " -1 "],
        ),
        (
            |g| {
                for n in g["nodes"].as_array_mut().unwrap() {
                    if n["op"]["op"] == "rope" {
                        n["op"]["spec"]["theta"] = (-10000.0).into();
                    }
                }
            },
            &["theta", "-10000"],
        ),
        (
            |g| {
                for n in g["nodes"].as_array_mut().unwrap() {
                    if n["op"]["op"] == "rope" {
                        n["op"]["spec"]["scaling"] =
                            serde_json::json!({"type": "linear", "factor": 0.0});
                    }
                }
            },
            &["scaling", "factor", "0"],
        ),
    ];
    for (edit, want) in cases {
        let (_t, dir) = chip(&[]);
        edit_graph(&dir, edit);
        assert_mentions(&run_chip(&dir), &[&["graph.json"][..], want].concat());
    }
}

/// A copy of tiny-llama with `f` applied to the header and data of
/// model.safetensors and to config.json.
fn checkpoint(
    f: impl FnOnce(&serde_json::Map<String, Value>, &mut Vec<u8>),
    config: impl FnOnce(&mut Value),
) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    std::fs::create_dir(&dir).unwrap();
    for e in std::fs::read_dir(tiny()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    let p = dir.join("model.safetensors");
    let mut bytes = std::fs::read(&p).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let h: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let mut data = bytes.split_off(8 + n);
    f(h.as_object().unwrap(), &mut data);
    bytes.extend_from_slice(&data);
    std::fs::write(&p, bytes).unwrap();
    let c = dir.join("config.json");
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(&c).unwrap()).unwrap();
    config(&mut cfg);
    std::fs::write(&c, serde_json::to_string(&cfg).unwrap()).unwrap();
    (tmp, dir)
}

/// Defect 5: weights of 3e38 overflow f32 in the first layer; the float
/// reference names that layer and op instead of printing NaN logits.
#[test]
fn float_overflow_names_the_first_layer() {
    let (_t, dir) = checkpoint(
        |h, data| {
            // Every layer's query projection: layer 0 is the first to overflow.
            for (name, t) in h
                .iter()
                .filter(|(n, _)| n.ends_with("self_attn.q_proj.weight"))
            {
                assert_eq!(t["dtype"], "F32", "{name}");
                let s = t["data_offsets"][0].as_u64().unwrap() as usize;
                let e = t["data_offsets"][1].as_u64().unwrap() as usize;
                for c in data[s..e].chunks_exact_mut(4) {
                    c.copy_from_slice(&3e38f32.to_le_bytes());
                }
            }
        },
        |_| {},
    );
    let d = dir.display().to_string();
    let run = fails(&["run", &d, "--engine", "float", "--tokens", "1,2,3"]);
    let eval = fails(&[
        "eval",
        &d,
        "--text",
        &sample(),
        "--ctx",
        "16",
        "--chunks",
        "1",
    ]);
    for msg in [run, eval] {
        assert_mentions(
            &msg,
            &[
                "layer 0, node `layers.0.attn.q` (linear)",
                "non-finite value",
            ],
        );
    }
}

fn stdout_of(args: &[&str]) -> (String, String) {
    let o = taalasc_run(args);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(o.status.success(), "taalasc {args:?} failed:\n{out}{err}");
    (out, err)
}

fn generated(out: &str) -> Vec<u32> {
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("generated tokens: "))
        .unwrap_or_else(|| panic!("no generated tokens in {out}"));
    serde_json::from_str(line).unwrap()
}

/// Defect 6: every generation path stops at its context, keeps and prints
/// what it generated (exit 0), and says so on stderr.
#[test]
fn generation_stops_at_the_context_and_keeps_its_tokens() {
    // The chip: a context of 16 positions, a prompt of 12 tokens (token 5
    // never leads to EOS in the first few steps of tiny-llama).
    let (_t, dir) = chip(&["--context", "16"]);
    let d = dir.display().to_string();
    let prompt = "5,6,7,8,9,10,11,12,13,14,15,16";
    let (out, err) = stdout_of(&["run", &d, "--tokens", prompt, "--max-tokens", "1000000000"]);
    assert_eq!(generated(&out).len(), 16 - 12 + 1, "{out}");
    assert!(out.contains("generated text: "), "{out}");
    assert_mentions(&err, &["stopped at the context of 16 positions"]);
    // The float reference: a checkpoint whose max_position_embeddings is 16.
    let (_t2, m) = checkpoint(|_, _| {}, |c| c["max_position_embeddings"] = 16.into());
    let m = m.display().to_string();
    let (out, err) = stdout_of(&[
        "run",
        &m,
        "--engine",
        "float",
        "--tokens",
        prompt,
        "--max-tokens",
        "1000000000",
    ]);
    assert_eq!(generated(&out).len(), 5, "{out}");
    assert_mentions(&err, &["stopped at the context of 16 positions"]);
    // A prompt longer than the context is refused, naming both.
    let long = (0..20)
        .map(|i| (i + 5).to_string())
        .collect::<Vec<_>>()
        .join(",");
    let msg = fails(&["run", &d, "--tokens", &long]);
    assert_mentions(&msg, &["20 tokens", "context of 16"]);
    // eval refuses a --ctx longer than the chip's or the model's context.
    let msg = fails(&[
        "eval",
        &d,
        "--text",
        &sample(),
        "--ctx",
        "32",
        "--chunks",
        "1",
    ]);
    assert_mentions(&msg, &["--ctx 32", "16 positions"]);
    let msg = fails(&[
        "eval",
        &m,
        "--text",
        &sample(),
        "--ctx",
        "32",
        "--chunks",
        "1",
    ]);
    assert_mentions(&msg, &["--ctx 32", "16 positions", "max_positions"]);
}

/// Defect 7: `--chunks 0` says what is wrong with it.
#[test]
fn eval_chunks_zero_is_refused() {
    let m = tiny().display().to_string();
    let msg = fails(&[
        "eval",
        &m,
        "--text",
        &sample(),
        "--ctx",
        "16",
        "--chunks",
        "0",
    ]);
    assert_mentions(&msg, &["--chunks must be at least 1"]);
}
