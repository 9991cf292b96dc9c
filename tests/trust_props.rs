//! Property tests of issue 14: a chip image folder that was damaged or
//! forged — graph.json with random field edits, nodes removed or duplicated,
//! the JSON truncated; weights.safetensors with header shape, dtype and
//! offset edits, truncation, byte flips — is fed to the image loader, then
//! (when it loads) to the integer reference for one token and to the
//! hardware planner. Nothing may panic or abort, every error names the
//! file it is about, and a header whose tensors' dtypes or shapes changed
//! never loads.
//!
//! The tiny-llama image is built once in memory; each case writes its
//! mutated copy over the same two files in one temporary folder.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use taalasc_image::{ChipImage, LazyImage, GRAPH_FILE, WEIGHTS_FILE};
use taalasc_tests::*;

/// The tiny-llama chip image's two files, built once.
fn base() -> &'static (String, Vec<u8>) {
    static BASE: OnceLock<(String, Vec<u8>)> = OnceLock::new();
    BASE.get_or_init(|| {
        let loaded = taalasc::load(&repo_root().join("examples/tiny-llama")).unwrap();
        let opts = taalasc::build::BuildOptions::defaults(&loaded.model);
        let (image, _) = taalasc::build::build_image(&loaded, &opts, None).unwrap();
        image.to_files()
    })
}

/// Values a mutated field takes: zero, negative, huge, 2^40, wrong types.
fn odd(i: u64) -> Value {
    let all = [
        json!(0),
        json!(-1),
        json!(-1e9),
        json!(1u64 << 40),
        json!(u64::MAX),
        json!(1e300),
        json!(1.5),
        json!(1),
        json!(3),
        json!("x"),
        json!(null),
        json!(true),
        json!([]),
        json!({}),
        json!([1u64 << 40, 1u64 << 40]),
    ];
    all[(i % all.len() as u64) as usize].clone()
}

/// Every JSON pointer of `v` (objects' keys and arrays' elements).
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                pointers(x, p, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(x, p, out);
            }
        }
        _ => {}
    }
}

/// Splits a pointer into (parent, last key).
fn parent(p: &str) -> (&str, &str) {
    p.rsplit_once('/').unwrap_or(("", p))
}

fn remove_at(v: &mut Value, p: &str) {
    let (up, key) = parent(p);
    match v.pointer_mut(up) {
        Some(Value::Object(m)) => {
            m.remove(key);
        }
        Some(Value::Array(a)) => {
            if let Ok(i) = key.parse::<usize>() {
                if i < a.len() {
                    a.remove(i);
                }
            }
        }
        _ => {}
    }
}

fn duplicate_at(v: &mut Value, p: &str) {
    let (up, key) = parent(p);
    if let Some(Value::Array(a)) = v.pointer_mut(up) {
        if let Some(x) = key.parse::<usize>().ok().and_then(|i| a.get(i)).cloned() {
            a.push(x);
        }
    }
}

/// One edit: (kind, a, b).
type Edit = (u8, u64, u64);

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec((0u8..8, any::<u64>(), any::<u64>()), 1..4)
}

/// graph.json with `edits` applied.
fn mutate_graph(text: &str, edits: &[Edit]) -> String {
    let mut v: Value = serde_json::from_str(text).unwrap();
    let mut truncate = None;
    for &(kind, a, b) in edits {
        let mut ps = Vec::new();
        pointers(&v, String::new(), &mut ps);
        let pick = |list: &[String], i: u64| list[(i % list.len() as u64) as usize].clone();
        let nodes = ps
            .iter()
            .filter(|p| p.starts_with("/nodes/") || p.starts_with("/hparams/"))
            .cloned()
            .collect::<Vec<_>>();
        match kind {
            // A field anywhere, or one of the nodes' or hyperparameters'.
            0 | 1 => {
                let list = if kind == 0 || nodes.is_empty() {
                    &ps
                } else {
                    &nodes
                };
                if !list.is_empty() {
                    if let Some(x) = v.pointer_mut(&pick(list, a)) {
                        *x = odd(b);
                    }
                }
            }
            2 => remove_at(&mut v, &format!("/nodes/{}", a % 40)),
            3 => duplicate_at(&mut v, &format!("/nodes/{}", a % 40)),
            4 => {
                if !ps.is_empty() {
                    remove_at(&mut v, &pick(&ps, a));
                }
            }
            5 => {
                if !ps.is_empty() {
                    duplicate_at(&mut v, &pick(&ps, a));
                }
            }
            6 => remove_at(&mut v, &format!("/edges/{}", a % 60)),
            _ => truncate = Some(b),
        }
    }
    let mut s = serde_json::to_string_pretty(&v).unwrap();
    if let Some(b) = truncate {
        let mut cut = (b % s.len().max(1) as u64) as usize;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// Each tensor's (dtype, shape) in a safetensors header.
fn forms(h: &Value) -> Vec<(String, Value, Value)> {
    let mut v: Vec<_> = h
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, t)| (k.clone(), t["dtype"].clone(), t["shape"].clone()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// weights.safetensors with `edits` applied, and whether a tensor's dtype
/// or shape changed or a tensor was removed (`None`: unknown, the raw
/// bytes were edited too).
fn mutate_weights(bytes: &[u8], edits: &[Edit]) -> (Vec<u8>, Option<bool>) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let mut data = bytes[8 + n..].to_vec();
    let names: Vec<String> = header
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| *k != "__metadata__")
        .cloned()
        .collect();
    let mut raw = Vec::new();
    for &(kind, a, b) in edits {
        let t = &names[(a % names.len() as u64) as usize];
        let i = (a >> 32) as usize % 2;
        if kind <= 2 && header.get(t).is_none_or(|x| !x.is_object()) {
            continue;
        }
        match kind {
            0 => {
                if let Some(Value::Array(s)) = header.pointer_mut(&format!("/{t}/shape")) {
                    if s.is_empty() {
                        s.push(odd(b));
                    } else {
                        let k = i % s.len();
                        s[k] = if b % 3 == 0 {
                            odd(b / 3)
                        } else {
                            json!(b % 300)
                        };
                    }
                }
            }
            1 => {
                let d = ["I8", "U16", "I32", "I64", "U8", "F32", "x"][(b % 7) as usize];
                header[t]["dtype"] = json!(d);
            }
            2 => {
                let Some(off) = header.pointer_mut(&format!("/{t}/data_offsets/{i}")) else {
                    continue;
                };
                let old = off.as_u64().unwrap_or(0);
                *off = if b % 3 == 0 {
                    odd(b / 3)
                } else {
                    json!(old.wrapping_add(b % 64).wrapping_sub(32))
                };
            }
            3 => {
                header.as_object_mut().unwrap().remove(t);
            }
            4 => {
                let c = if b % 2 == 0 {
                    json!((b / 2 % 4096).to_string())
                } else {
                    odd(b / 2)
                };
                if let Some(m) = header
                    .get_mut("__metadata__")
                    .and_then(Value::as_object_mut)
                {
                    m.insert("context".into(), c);
                }
            }
            5 => {
                // Flip a data byte (a code, scale, width or vector value).
                if !data.is_empty() {
                    let at = (b % data.len() as u64) as usize;
                    data[at] ^= 1 << (a % 8);
                }
            }
            _ => raw.push((kind, a, b)),
        }
    }
    let mut h = serde_json::to_vec(&header).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(&data);
    let changed = raw.is_empty().then(|| {
        let base: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        forms(&base) != forms(&header)
    });
    for (kind, a, b) in raw {
        if out.is_empty() {
            break;
        }
        let at = (b % out.len() as u64) as usize;
        match kind {
            6 => out.truncate(at),
            _ if a % 4 == 0 => out[..8].copy_from_slice(&b.to_le_bytes()),
            _ => out[at] ^= 1 << (a % 8),
        }
    }
    (out, changed)
}

/// Loads the folder, and when it loads, plans it and runs one token:
/// `Err` when a check fails (a panic fails the case by itself).
fn load_and_use(dir: &Path) -> Result<(), String> {
    let names_file = |e: &dyn std::fmt::Display| {
        let m = e.to_string();
        if m.contains(GRAPH_FILE) || m.contains(WEIGHTS_FILE) {
            Ok(())
        } else {
            Err(format!("error does not name the file: {m}"))
        }
    };
    let lazy = match LazyImage::open(dir) {
        Ok(l) => l,
        Err(e) => return names_file(&e),
    };
    // The planner reads metadata only. It may refuse a graph the loader
    // accepts (a structure the units do not lower, e.g. a RoPE input read
    // by another node too), but then names the file.
    if let Err(e) = taalasc_verilog::plan::plan_shared(&lazy, 16, 1, 1, false, 1) {
        return names_file(&e);
    }
    let image = match ChipImage::read(dir) {
        Ok(i) => i,
        Err(e) => return names_file(&e),
    };
    let r = taalasc_reference::Reference::new(&image, 1)
        .map_err(|e| format!("the reference refused a loaded image: {e}"))?;
    let mut s = r.session();
    r.forward(&mut s, &[1], 0)
        .map_err(|e| format!("the reference failed on a loaded image: {e}"))?;
    RAN.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Cases whose image loaded, planned and ran a token.
static RAN: AtomicUsize = AtomicUsize::new(0);

/// A scratch folder, in memory when the machine has a tmpfs (each case
/// rewrites a file of ~150 KB: on a disk that dominates the run time).
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(t) = tempfile::tempdir_in(shm) {
            return t;
        }
    }
    tempfile::tempdir().unwrap()
}

fn config() -> Config {
    Config {
        failure_persistence: None,
        ..Config::with_cases(10_000)
    }
}

#[test]
fn mutated_graph_json_never_panics_and_errors_name_the_file() {
    let (graph, weights) = base();
    let tmp = scratch();
    std::fs::write(tmp.path().join(WEIGHTS_FILE), weights).unwrap();
    let t0 = std::time::Instant::now();
    TestRunner::new(config())
        .run(&edits(), |e| {
            std::fs::write(tmp.path().join(GRAPH_FILE), mutate_graph(graph, &e)).unwrap();
            load_and_use(tmp.path()).map_err(TestCaseError::fail)
        })
        .unwrap();
    eprintln!(
        "graph.json: 10000 cases in {:?} ({} runs so far loaded, planned and ran)",
        t0.elapsed(),
        RAN.load(Ordering::Relaxed)
    );
}

#[test]
fn mutated_weights_never_panic_and_errors_name_the_file() {
    let (graph, weights) = base();
    let tmp = scratch();
    std::fs::write(tmp.path().join(GRAPH_FILE), graph).unwrap();
    let t0 = std::time::Instant::now();
    TestRunner::new(config())
        .run(&edits(), |e| {
            let (bytes, changed) = mutate_weights(weights, &e);
            std::fs::write(tmp.path().join(WEIGHTS_FILE), bytes).unwrap();
            // A header whose tensors disagree with graph.json never loads.
            if changed == Some(true) && LazyImage::open(tmp.path()).is_ok() {
                return Err(TestCaseError::fail(
                    "a tensor's dtype or shape was changed (or a tensor removed), yet the image loaded",
                ));
            }
            load_and_use(tmp.path()).map_err(TestCaseError::fail)
        })
        .unwrap();
    eprintln!(
        "weights.safetensors: 10000 cases in {:?} ({} runs so far loaded, planned and ran)",
        t0.elapsed(),
        RAN.load(Ordering::Relaxed)
    );
}

/// The unmutated image passes every step (so the properties test something).
#[test]
fn the_base_image_loads_plans_and_runs() {
    let (graph, weights) = base();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join(GRAPH_FILE), graph).unwrap();
    std::fs::write(tmp.path().join(WEIGHTS_FILE), weights).unwrap();
    load_and_use(tmp.path()).unwrap();
}
