//! `eval` sharding and the float baseline cache, through the CLI on the
//! tiny example: shards merge into the single run's JSON byte for byte, a
//! gap or an overlap is an error naming the chunks, and the cache (cold,
//! warm, damaged, bypassed) never changes a bit of the result.

use std::path::Path;
use taalasc_tests::*;

/// `eval CHIP` on the example's sample text with `extra` flags, JSON
/// written by `--json-out` to `out`; the cache under `cache`. Returns
/// (the JSON file's text, stderr).
fn eval_json(chip: &Path, cache: &Path, out: &Path, extra: &[&str]) -> (String, String) {
    let text = repo_root().join("examples/tiny-llama/sample.txt");
    let mut args = vec![
        "eval",
        chip.to_str().unwrap(),
        "--text",
        text.to_str().unwrap(),
        "--ctx",
        "64",
        "--json-out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = std::process::Command::new(taalasc_bin())
        .args(&args)
        .env("TAALASC_CACHE_DIR", cache)
        .output()
        .expect("run taalasc");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "eval {extra:?} failed: {err}");
    (std::fs::read_to_string(out).unwrap(), err)
}

fn cache_files(cache: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(cache.join("eval"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn merged(parts: &[&str]) -> anyhow::Result<String> {
    let shards: Vec<(String, serde_json::Value)> = parts
        .iter()
        .map(|p| (p.to_string(), serde_json::from_str(p).unwrap()))
        .collect();
    let v = taalasc::eval::merge_eval_json(&shards)?;
    Ok(format!("{}\n", serde_json::to_string_pretty(&v)?))
}

#[test]
fn shards_merge_byte_identically_and_the_float_cache_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let chip = tmp.path().join("tiny.chip");
    build_lib(
        &repo_root().join("examples/tiny-llama"),
        &chip,
        &["--no-rtl"],
    );
    let cache = tmp.path().join("cache");
    let out = tmp.path().join("out.json");

    // The single run over chunks 0..5, without the cache: the reference.
    let (whole, _) = eval_json(&chip, &cache, &out, &["--chunks", "5", "--no-float-cache"]);
    assert!(
        cache_files(&cache).is_empty(),
        "--no-float-cache wrote the cache"
    );
    let v: serde_json::Value = serde_json::from_str(&whole).unwrap();
    assert_eq!(
        (v["chunks_from"].as_u64(), v["chunks_to"].as_u64()),
        (Some(0), Some(5))
    );
    assert_eq!(v["per_chunk"].as_array().unwrap().len(), 5);
    assert!(v["kl_mean"].as_f64().unwrap() > 0.0);
    assert!(v["text_chunks"].as_u64().unwrap() >= 5);

    // Cold cache: same bits, one file per chunk.
    let (cold, _) = eval_json(&chip, &cache, &out, &["--chunks-to", "5"]);
    assert_eq!(cold, whole, "a cold cache changed the result");
    let files = cache_files(&cache);
    assert_eq!(files.len(), 5, "{files:?}");
    // Warm cache: same bits.
    let (warm, err) = eval_json(&chip, &cache, &out, &["--chunks", "5"]);
    assert_eq!(warm, whole, "a warm cache changed the result");
    assert!(!err.contains("damaged"), "{err}");

    // Damaged entries (truncated; one flipped logit bit) are recomputed.
    let b = std::fs::read(&files[0]).unwrap();
    std::fs::write(&files[0], &b[..b.len() - 4]).unwrap();
    let mut b = std::fs::read(&files[3]).unwrap();
    let last = b.len() - 1;
    b[last] ^= 1;
    std::fs::write(&files[3], &b).unwrap();
    let (again, err) = eval_json(&chip, &cache, &out, &["--chunks", "5"]);
    assert_eq!(again, whole, "a damaged cache entry was trusted");
    assert_eq!(err.matches("damaged").count(), 2, "{err}");
    assert!(
        err.contains("SHA-256") && err.contains("bytes of logits"),
        "{err}"
    );
    // ... and rewritten.
    let (_, err) = eval_json(&chip, &cache, &out, &["--chunks", "5"]);
    assert!(!err.contains("damaged"), "{err}");

    // Shards 0..2 and 2..5 (given in either order) merge into the single run.
    let (a, _) = eval_json(
        &chip,
        &cache,
        &out,
        &["--chunks-from", "0", "--chunks-to", "2"],
    );
    let (b, _) = eval_json(
        &chip,
        &cache,
        &out,
        &["--chunks-from", "2", "--chunks-to", "5"],
    );
    assert_eq!(merged(&[&a, &b]).unwrap(), whole);
    assert_eq!(merged(&[&b, &a]).unwrap(), whole);
    let (c, _) = eval_json(
        &chip,
        &cache,
        &out,
        &["--chunks-from", "3", "--chunks-to", "5"],
    );
    let (d, _) = eval_json(
        &chip,
        &cache,
        &out,
        &["--chunks-from", "1", "--chunks-to", "3"],
    );
    let gap = format!("{:#}", merged(&[&a, &c]).unwrap_err());
    assert!(gap.contains("chunks 2..3 are missing"), "{gap}");
    let overlap = format!("{:#}", merged(&[&a, &d]).unwrap_err());
    assert!(overlap.contains("overlap: chunks 1..2"), "{overlap}");
    // A per-chunk sum edited by hand: its bits and value disagree.
    let edited = a.replacen("\"nll_sum\": ", "\"nll_sum\": 1", 2);
    let e = format!("{:#}", merged(&[&edited, &b]).unwrap_err());
    assert!(e.contains("disagree"), "{e}");
}

#[test]
fn bad_chunk_ranges_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let chip = tmp.path().join("tiny.chip");
    build_lib(
        &repo_root().join("examples/tiny-llama"),
        &chip,
        &["--no-rtl"],
    );
    let text = repo_root().join("examples/tiny-llama/sample.txt");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "eval",
            chip.to_str().unwrap(),
            "--text",
            text.to_str().unwrap(),
            "--ctx",
            "64",
            "--no-float-cache",
        ];
        args.extend_from_slice(extra);
        let o = taalasc_run(&args);
        assert!(!o.status.success(), "{extra:?} was accepted");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let e = run(&["--chunks-from", "3", "--chunks-to", "2"]);
    assert!(e.contains("--chunks-from 3 --chunks-to 2"), "{e}");
    let e = run(&["--chunks-from", "1", "--chunks-to", "999"]);
    assert!(e.contains("chunks 1..999 are past the"), "{e}");
    let e = run(&["--chunks", "2", "--chunks-to", "3"]);
    assert!(e.contains("cannot be used with"), "{e}");
}
