//! taalasc against llama.cpp on the same machine, in the same run (issue 15's
//! table): both tools' whole processes, alternating, on the real SmolLM2-135M
//! Q4_1 GGUF and `lee_background.cor`.
//!
//! `cargo build --release --bin taalasc && cargo bench -p taalasc-tests --bench vs_llama_cpp`
//!
//! llama.cpp comes from `scripts/llama-cpp.sh`, which builds its CPU tools from
//! the copy vendored in PyPI's `llama-cpp-python` sdist (pinned, checked by
//! SHA-256) on first use. llama.cpp runs with `-t 2`; taalasc with every core
//! (its default `--threads`).
//!
//! Each figure is the median of `TAALASC_VS_REPS` (default 5) runs of each
//! tool, the two tools' runs alternating so that a change in machine load
//! hits both. Decode ms/token = (T(64 tokens) − T(1 token)) / 63, so start-up
//! cancels; both tools generate past EOS (`--ignore-eos`), and the benchmark
//! checks that taalasc generated exactly the tokens asked for. Peak memory
//! is the process's maximum resident set (`wait4`).
//! The chip `eval` is measured with a warm float-logits cache (one untimed
//! run fills it, in a cache folder private to this run).
//!
//! The table ends with the acceptance bounds; the benchmark exits
//! non-zero when a ratio is over its bound, after printing everything. The
//! load average is printed before and after: a loaded machine makes every
//! figure slower, and the ratios only meaningful if both tools saw the same.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Wall seconds and peak resident set (MiB) of one finished process.
#[derive(Clone, Copy, Debug)]
struct Run {
    secs: f64,
    rss_mib: f64,
}

/// Runs `cmd` to completion with its output captured in `log` (kept for
/// failures) and returns its wall time and peak RSS. Panics, printing the
/// log's tail, when it fails.
fn measure(mut cmd: Command, log: &Path) -> (Run, String) {
    let out = std::fs::File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    cmd.stdout(out).stderr(err).stdin(Stdio::null());
    let shown = format!("{cmd:?}");
    let t = Instant::now();
    // Reaped by `wait4` below, which also gives the peak RSS.
    #[allow(clippy::zombie_processes)]
    let child = cmd.spawn().unwrap_or_else(|e| panic!("{shown}: {e}"));
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    // SAFETY: waits for our own child; `usage` is a valid out-pointer.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let secs = t.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert_eq!(r, pid, "wait4 on {shown}");
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let tail: String = text
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        panic!("{shown} failed (status {status}):\n{tail}");
    }
    let rss_mib = usage.ru_maxrss as f64 / 1024.0;
    (Run { secs, rss_mib }, text)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The folder holding llama.cpp's binaries (built on first use).
fn llama_cpp_bin() -> PathBuf {
    let root = taalasc_tests::repo_root();
    let out = Command::new("bash")
        .arg(root.join("scripts/llama-cpp.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/llama-cpp.sh");
    assert!(
        out.status.success(),
        "scripts/llama-cpp.sh failed: llama.cpp is needed as this benchmark's baseline"
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Every number printed after `key` in `text` (e.g. `"perplexity": 20.1`).
fn numbers_after(text: &str, key: &str) -> Vec<f64> {
    text.match_indices(key)
        .filter_map(|(i, _)| {
            let rest = text[i + key.len()..].trim_start_matches([' ', ':', '=', '"']);
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == 'e'))
                .unwrap_or(rest.len());
            rest[..end].parse().ok()
        })
        .collect()
}

struct Row {
    figure: &'static str,
    llama: String,
    taalasc: String,
    ratio: f64,
    bound: Option<f64>,
}

fn main() {
    let reps: usize = std::env::var("TAALASC_VS_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    assert!(reps >= 1, "TAALASC_VS_REPS must be at least 1");
    let bin = taalasc_tests::taalasc_bin();
    let gguf = taalasc_tests::smollm2_gguf();
    let text = taalasc_tests::lee_text();
    let llama = llama_cpp_bin();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cache = d.join("cache");
    let chip = d.join("smollm2.chip");
    let load_before = loadavg();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let taalasc = |args: &[&str]| {
        let mut c = Command::new(&bin);
        c.args(args).env("TAALASC_CACHE_DIR", &cache);
        c
    };
    let tool = |name: &str, args: &[&str]| {
        let mut c = Command::new(llama.join(name));
        c.args(args);
        c
    };
    let log = d.join("log.txt");

    // Untimed set-up: the chip, and the chip eval's float cache.
    measure(
        taalasc(&["build", &s(&gguf), "-o", &s(&chip), "--no-rtl"]),
        &log,
    );
    // `--simd avx512` caps nothing (the best level this CPU has); `--simd
    // avx2` runs the integer reference as on a CPU without AVX-512.
    let eval_chip_at = |simd: &str| {
        taalasc(&[
            "--simd",
            simd,
            "eval",
            &s(&chip),
            "--text",
            &s(&text),
            "--ctx",
            "512",
            "--chunks",
            "5",
            "--json",
        ])
    };
    let eval_chip = || eval_chip_at("avx512");
    measure(eval_chip(), &log);

    let prompt = "The capital of France is";
    let run_at = |model: &Path, n: usize, simd: &str| {
        taalasc(&[
            "--simd",
            simd,
            "run",
            &s(model),
            "--prompt",
            prompt,
            "--max-tokens",
            &n.to_string(),
            "--ignore-eos",
            "--json",
        ])
    };
    let run = |model: &Path, n: usize| run_at(model, n, "avx512");
    let run_avx2 = |model: &Path, n: usize| run_at(model, n, "avx2");
    let completion = |n: usize| {
        tool(
            "llama-completion",
            &[
                "-m",
                &s(&gguf),
                "-p",
                prompt,
                "-n",
                &n.to_string(),
                "-t",
                "2",
                "-c",
                "512",
                "--temp",
                "0",
                "--ignore-eos",
                "-no-cnv",
                "--no-warmup",
            ],
        )
    };
    let eval_float = || {
        taalasc(&[
            "eval",
            &s(&gguf),
            "--text",
            &s(&text),
            "--ctx",
            "512",
            "--chunks",
            "5",
            "--json",
        ])
    };
    let perplexity = || {
        tool(
            "llama-perplexity",
            &[
                "-m",
                &s(&gguf),
                "-f",
                &s(&text),
                "-c",
                "512",
                "--chunks",
                "5",
                "-t",
                "2",
            ],
        )
    };
    let quant_out = d.join("q.chip");
    let quant_gguf = d.join("q4_0.gguf");
    let build_rtn = || {
        taalasc(&[
            "build",
            &s(&gguf),
            "-o",
            &s(&quant_out),
            "--no-rtl",
            "--format",
            "a4g32h",
            "--quantizer",
            "rtn",
        ])
    };
    let quantize = || {
        tool(
            "llama-quantize",
            &[
                "--allow-requantize",
                &s(&gguf),
                &s(&quant_gguf),
                "Q4_0",
                "2",
            ],
        )
    };

    #[derive(Default)]
    struct Series {
        runs: Vec<Run>,
    }
    impl Series {
        fn secs(&self) -> f64 {
            median(self.runs.iter().map(|r| r.secs).collect())
        }
        fn rss(&self) -> f64 {
            median(self.runs.iter().map(|r| r.rss_mib).collect())
        }
    }
    let names = [
        "float run 64",
        "float run 1",
        "chip run 64",
        "chip run 1",
        "llama 64",
        "llama 1",
        "float eval",
        "chip eval",
        "llama perplexity",
        "build rtn",
        "llama-quantize",
        "chip run 64 avx2",
        "chip run 1 avx2",
        "chip eval avx2",
    ];
    let mut series: Vec<Series> = names.iter().map(|_| Series::default()).collect();
    // A timed `run` that generated exactly `n` tokens, as llama.cpp's
    // `--ignore-eos` run does: the decode figure divides by them.
    let run_n = |cmd: Command, n: usize| {
        let (r, out) = measure(cmd, &log);
        // The log holds stderr too: the JSON object is what lies in braces.
        let json = match (out.find('{'), out.rfind('}')) {
            (Some(a), Some(b)) if a < b => &out[a..=b],
            _ => panic!("taalasc run --json printed no object:\n{out}"),
        };
        let v: serde_json::Value = serde_json::from_str(json)
            .unwrap_or_else(|e| panic!("taalasc run --json: {e}:\n{out}"));
        let got = v["generated_tokens"].as_array().map(Vec::len);
        assert_eq!(
            got,
            Some(n),
            "taalasc run should generate {n} tokens:\n{out}"
        );
        r
    };
    let (mut ppl_float, mut ppl_chip, mut ppl_llama) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 0..reps {
        eprintln!("rep {}/{reps} (load {})", rep + 1, loadavg());
        // taalasc and llama.cpp alternate, figure by figure.
        series[0].runs.push(run_n(run(&gguf, 64), 64));
        series[4].runs.push(measure(completion(64), &log).0);
        series[2].runs.push(run_n(run(&chip, 64), 64));
        series[1].runs.push(run_n(run(&gguf, 1), 1));
        series[5].runs.push(measure(completion(1), &log).0);
        series[3].runs.push(run_n(run(&chip, 1), 1));
        let (r, out) = measure(eval_float(), &log);
        series[6].runs.push(r);
        ppl_float = numbers_after(&out, "\"perplexity\"");
        let (r, out) = measure(perplexity(), &log);
        series[8].runs.push(r);
        ppl_llama = numbers_after(&out, "Final estimate: PPL");
        let (r, out) = measure(eval_chip(), &log);
        series[7].runs.push(r);
        ppl_chip = numbers_after(&out, "\"perplexity\"");
        let _ = std::fs::remove_dir_all(&quant_out);
        series[9].runs.push(measure(build_rtn(), &log).0);
        let _ = std::fs::remove_file(&quant_gguf);
        series[10].runs.push(measure(quantize(), &log).0);
        series[11].runs.push(run_n(run_avx2(&chip, 64), 64));
        series[12].runs.push(run_n(run_avx2(&chip, 1), 1));
        let (r, out) = measure(eval_chip_at("avx2"), &log);
        series[13].runs.push(r);
        let ppl_avx2 = numbers_after(&out, "\"perplexity\"");
        assert_eq!(
            ppl_avx2, ppl_chip,
            "chip eval at --simd avx2 and at the best level"
        );
    }
    let load_after = loadavg();

    let decode = |n64: &Series, n1: &Series| (n64.secs() - n1.secs()) / 63.0 * 1e3;
    let (f_dec, c_dec, l_dec) = (
        decode(&series[0], &series[1]),
        decode(&series[2], &series[3]),
        decode(&series[4], &series[5]),
    );
    let c_dec_avx2 = decode(&series[11], &series[12]);
    let ms = |v: f64| format!("{v:.1} ms");
    let sec = |v: f64| format!("{v:.2} s");
    let mib = |v: f64| format!("{v:.0} MiB");
    let rows = [
        Row {
            figure: "decode, float reference (run GGUF), ms/token",
            llama: ms(l_dec),
            taalasc: ms(f_dec),
            ratio: f_dec / l_dec,
            bound: Some(1.0),
        },
        Row {
            figure: "decode, integer reference (run CHIP), ms/token",
            llama: ms(l_dec),
            taalasc: ms(c_dec),
            ratio: c_dec / l_dec,
            bound: Some(1.0),
        },
        Row {
            figure: "decode, integer reference, --simd avx2 (as without AVX-512)",
            llama: ms(l_dec),
            taalasc: ms(c_dec_avx2),
            ratio: c_dec_avx2 / l_dec,
            bound: None,
        },
        Row {
            figure: "perplexity, 5 x 512-token chunks, float",
            llama: sec(series[8].secs()),
            taalasc: sec(series[6].secs()),
            ratio: series[6].secs() / series[8].secs(),
            bound: None,
        },
        Row {
            figure: "perplexity, 5 chunks, chip (warm float cache)",
            llama: sec(series[8].secs()),
            taalasc: sec(series[7].secs()),
            ratio: series[7].secs() / series[8].secs(),
            bound: Some(1.0),
        },
        Row {
            figure: "perplexity, 5 chunks, chip, --simd avx2 (as without AVX-512)",
            llama: sec(series[8].secs()),
            taalasc: sec(series[13].secs()),
            ratio: series[13].secs() / series[8].secs(),
            bound: None,
        },
        Row {
            figure: "start-up + 1 token, float",
            llama: sec(series[5].secs()),
            taalasc: sec(series[1].secs()),
            ratio: series[1].secs() / series[5].secs(),
            bound: None,
        },
        Row {
            figure: "start-up + 1 token, chip",
            llama: sec(series[5].secs()),
            taalasc: sec(series[3].secs()),
            ratio: series[3].secs() / series[5].secs(),
            bound: None,
        },
        Row {
            figure: "build --no-rtl --format a4g32h --quantizer rtn vs llama-quantize Q4_0",
            llama: sec(series[10].secs()),
            taalasc: sec(series[9].secs()),
            ratio: series[9].secs() / series[10].secs(),
            bound: Some(2.0),
        },
        Row {
            figure: "peak memory, float run (64 tokens)",
            llama: mib(series[4].rss()),
            taalasc: mib(series[0].rss()),
            ratio: series[0].rss() / series[4].rss(),
            bound: Some(1.5),
        },
        Row {
            figure: "peak memory, chip eval / llama-perplexity",
            llama: mib(series[8].rss()),
            taalasc: mib(series[7].rss()),
            ratio: series[7].rss() / series[8].rss(),
            bound: None,
        },
    ];
    println!("taalasc vs llama.cpp ({reps} alternating runs each, medians; llama.cpp -t 2)");
    println!("load average: {load_before} before, {load_after} after");
    println!("| figure | llama.cpp | taalasc | ratio | bound |");
    println!("|---|---|---|---|---|");
    let mut over = Vec::new();
    for r in &rows {
        let bound = r.bound.map_or("-".to_string(), |b| format!("≤ {b:.1}×"));
        let mark = match r.bound {
            Some(b) if r.ratio > b => {
                over.push(r.figure);
                " **over**"
            }
            _ => "",
        };
        println!(
            "| {} | {} | {} | {:.2}×{mark} | {bound} |",
            r.figure, r.llama, r.taalasc, r.ratio
        );
    }
    println!(
        "perplexity printed: taalasc float {ppl_float:?}, taalasc chip eval {ppl_chip:?}, llama.cpp {ppl_llama:?}"
    );
    println!("raw medians (s):");
    for (n, s) in names.iter().zip(&series) {
        println!("  {n:<18} {:.3} s, {:.0} MiB", s.secs(), s.rss());
    }
    if !over.is_empty() {
        eprintln!("over the issue's bound: {over:?}");
        std::process::exit(1);
    }
}
