//! Property test (issue 14): a chip folder's `manifest.json`, mutated at
//! random, fed to what every command does first (`chip::open_chip`: the
//! format, the digests, the recorded hardware re-planned and compared) and
//! to `chip::read_image`. Never a panic or an abort, and every error names
//! the file at fault.

use proptest::prelude::*;
use serde_json::Value;
use std::path::Path;
use taalasc_tests::*;

/// Every path (object keys and array indices) into `v`, the root first.
fn paths(v: &Value, here: Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(here.clone());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                let mut p = here.clone();
                p.push(k.clone());
                paths(c, p, out);
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                let mut p = here.clone();
                p.push(i.to_string());
                paths(c, p, out);
            }
        }
        _ => {}
    }
}

/// Values a hostile or careless edit puts in a field.
fn any_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        Just(serde_json::json!(0)),
        Just(serde_json::json!(-1)),
        Just(serde_json::json!(1u64 << 40)),
        Just(serde_json::json!(u64::MAX)),
        Just(serde_json::json!(i64::MIN)),
        Just(serde_json::json!(1e308)),
        Just(serde_json::json!(-0.5)),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        (0u64..70_000).prop_map(|n| serde_json::json!(n)),
        "[a-z0-9_./-]{0,12}".prop_map(Value::String),
        Just(serde_json::json!("../../etc/passwd")),
        Just(serde_json::json!([])),
        Just(serde_json::json!({})),
        Just(serde_json::json!([1, 2, 3])),
    ]
}

/// One edit: replace the value at a path, remove a key, or cut the text.
#[derive(Debug, Clone)]
enum Edit {
    Set(usize, Value),
    Remove(usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        6 => (any::<usize>(), any_value()).prop_map(|(i, v)| Edit::Set(i, v)),
        2 => any::<usize>().prop_map(Edit::Remove),
        1 => any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn mutate(good: &Value, all: &[Vec<String>], edits: &[Edit]) -> String {
    let mut v = good.clone();
    let mut cut = None;
    for e in edits {
        match e {
            Edit::Set(i, x) => {
                let p = &all[i % all.len()];
                // The path may be gone after an earlier edit.
                if let Some(slot) = try_at(&mut v, p) {
                    *slot = x.clone();
                }
            }
            Edit::Remove(i) => {
                let p = &all[i % all.len()];
                if let Some((last, parent)) = p.split_last() {
                    if let Some(Value::Object(m)) = try_at(&mut v, parent) {
                        m.remove(last);
                    }
                }
            }
            Edit::Truncate(n) => cut = Some(*n),
        }
    }
    let text = serde_json::to_string_pretty(&v).unwrap();
    match cut {
        Some(n) => text[..n % text.len()].to_string(),
        None => text,
    }
}

fn try_at<'a>(v: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let mut cur = v;
    for k in path {
        cur = match cur {
            Value::Object(m) => m.get_mut(k)?,
            Value::Array(a) => a.get_mut(k.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn names_a_file(e: &anyhow::Error) -> bool {
    let t = format!("{e:#}");
    ["manifest.json", "graph.json", "weights.safetensors"]
        .iter()
        .any(|f| t.contains(f))
}

#[test]
fn mutated_manifests_never_panic_and_errors_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let chip = tmp.path().join("c.chip");
    build_lib(
        &repo_root().join("examples/tiny-llama"),
        &chip,
        &["--context", "8", "--users", "2"],
    );
    let mpath = chip.join("manifest.json");
    let good: Value = serde_json::from_str(&std::fs::read_to_string(&mpath).unwrap()).unwrap();
    // The edits aim at the fields the commands read, not at the plan's
    // program listing (thousands of paths that are only compared whole).
    let mut all = Vec::new();
    paths(&good, Vec::new(), &mut all);
    all.retain(|p| p.len() < 2 || p[1] != "plan" || p.len() <= 3);
    let open = |dir: &Path| -> Result<(), anyhow::Error> {
        taalasc::chip::open_chip(dir)?;
        taalasc::chip::read_image(dir)?;
        Ok(())
    };
    open(&chip).expect("the unmutated chip opens");
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 10_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let opened = std::cell::Cell::new(0u32);
    runner
        .run(&proptest::collection::vec(edit(), 1..4), |edits| {
            let text = mutate(&good, &all, &edits);
            std::fs::write(&mpath, &text).unwrap();
            match open(&chip) {
                Ok(()) => opened.set(opened.get() + 1),
                Err(e) => prop_assert!(names_a_file(&e), "error names no file: {e:#}"),
            }
            Ok(())
        })
        .unwrap();
    eprintln!(
        "10000 mutated manifests: {} opened, the rest refused with the file named",
        opened.get()
    );
}
