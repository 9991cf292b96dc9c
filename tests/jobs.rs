//! `taalasc jobs` and `taalasc gather` (RFC 0007) on a tiny 2-chip board:
//! every engine's synthesis, a 3-user simulation in 3 shards and a 3-point
//! quality sweep (under Slurm each point split in two chunk ranges) run as jobs through a real one-node Slurm cluster (munge,
//! slurmctld and slurmd on loopback, configured in a temporary folder) and
//! through `ninja -j 2`; `gather`'s files must equal, byte for byte, those
//! of the single-process commands. A failed job and a deleted result are
//! named by `gather` with the command that reruns them, and rerunning only
//! that job completes the report. Also: the FuseSoC core `build` writes
//! passes `fusesoc run --target lint`.
//!
//! Needs yosys, verilator, slurm-wlm, munge, ninja-build and fusesoc
//! (scripts/test.sh installs them); runs the cluster as root.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use taalasc_tests::{repo_root, taalasc_bin, taalasc_ok as ok, taalasc_run as run};

const USERS: [&str; 3] = ["1,5,9,100", "3,3,12", "7,200"];
const SWEEP: &str = "s3g32,a4g32,s6g32";
const ENGINES: &str = "0,3";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The files a single-process run and `gather` write, by name.
fn outputs(chip: &Path) -> Vec<(String, Vec<u8>)> {
    [
        "report.json",
        "manifest.json",
        "board/sim/result.json",
        "report/report.json",
        "report/report.html",
    ]
    .iter()
    .map(|f| {
        let p = chip.join(f);
        let b = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        (f.to_string(), b)
    })
    .collect()
}

fn assert_same(got: &[(String, Vec<u8>)], want: &[(String, Vec<u8>)], how: &str) {
    for ((f, g), (_, w)) in got.iter().zip(want) {
        assert!(
            g == w,
            "{how}: {f} differs from the single-process run's:\n--- {how}\n{}\n--- single\n{}",
            String::from_utf8_lossy(&g[..g.len().min(3000)]),
            String::from_utf8_lossy(&w[..w.len().min(3000)])
        );
    }
}

/// Puts the chip folder back as `build` left it.
fn restore(chip: &Path, pristine: &[(String, Vec<u8>)]) {
    for (f, b) in pristine {
        std::fs::write(chip.join(f), b).unwrap();
    }
    let _ = std::fs::remove_file(chip.join("board/sim/result.json"));
    let _ = std::fs::remove_dir_all(chip.join("report"));
}

/// A free TCP port on loopback (bound and released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A one-node Slurm cluster on loopback, all state in one temporary
/// folder; its daemons are killed when this is dropped (test failures
/// included).
struct Cluster {
    dir: PathBuf,
    daemons: Vec<Child>,
}

impl Cluster {
    fn start(dir: &Path) -> Cluster {
        for tool in ["munged", "slurmctld", "slurmd", "sbatch", "squeue"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .unwrap()
                .status
                .success();
            assert!(
                found,
                "{tool} is missing: run scripts/test.sh (it installs slurm-wlm and munge)"
            );
        }
        let mut c = Cluster {
            dir: dir.to_path_buf(),
            daemons: Vec::new(),
        };
        for d in ["munge", "state", "spool", "log"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        use std::os::unix::fs::PermissionsExt;
        // munged wants its socket's folder (and those above) searchable by
        // all, and its key readable by it alone.
        for d in [dir.parent().unwrap(), dir, &dir.join("munge")] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o711)).unwrap();
        }
        let key: Vec<u8> = (0..1024u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 ^ std::process::id() as u8)
            .collect();
        let keyf = dir.join("munge/munge.key");
        std::fs::write(&keyf, key).unwrap();
        std::fs::set_permissions(&keyf, std::fs::Permissions::from_mode(0o400)).unwrap();
        let sock = dir.join("munge/sock");
        c.spawn(
            Command::new("munged")
                .arg("-F")
                .arg(format!("--key-file={}", keyf.display()))
                .arg(format!("--socket={}", sock.display()))
                .arg(format!("--pid-file={}", dir.join("munge/pid").display()))
                .arg(format!("--log-file={}", dir.join("munge/log").display()))
                .arg(format!("--seed-file={}", dir.join("munge/seed").display())),
        );
        wait_for(|| sock.exists(), "munged's socket");
        let d = dir.display();
        let conf = format!(
            "ClusterName=taalasctest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={}
SlurmdPort={}
AuthType=auth/munge
AuthInfo=socket={}
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
SwitchType=switch/none
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory=16000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
",
            free_port(),
            free_port(),
            sock.display()
        );
        std::fs::write(dir.join("slurm.conf"), conf).unwrap();
        c.spawn(Command::new("slurmctld").args(["-D", "-i"]));
        std::thread::sleep(Duration::from_secs(1));
        c.spawn(Command::new("slurmd").args(["-D"]));
        wait_for(
            || {
                let o = c.cmd("sinfo").args(["-h", "-o", "%t"]).output().unwrap();
                String::from_utf8_lossy(&o.stdout).trim() == "idle"
            },
            "the Slurm node to come up idle",
        );
        c
    }

    fn spawn(&mut self, cmd: &mut Command) {
        let n = self.daemons.len();
        let err = std::fs::File::create(self.dir.join(format!("log/daemon{n}.err"))).unwrap();
        let child = cmd
            .env("SLURM_CONF", self.dir.join("slurm.conf"))
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("start a daemon");
        self.daemons.push(child);
    }

    /// A Slurm client command against this cluster.
    fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new(prog);
        c.env("SLURM_CONF", self.dir.join("slurm.conf"));
        c
    }

    /// Submits the jobs folder's arrays and gather job; waits for them all.
    fn submit_and_wait(&self, jobs: &Path) {
        let o = self.cmd("sh").arg(jobs.join("submit.sh")).output().unwrap();
        assert!(o.status.success(), "submit.sh: {o:?}");
        let start = Instant::now();
        loop {
            let q = self
                .cmd("squeue")
                .args(["-h", "-o", "%i %T"])
                .output()
                .unwrap();
            let q = String::from_utf8_lossy(&q.stdout).into_owned();
            if q.trim().is_empty() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(1200),
                "the Slurm jobs did not finish in 20 minutes: {q}"
            );
            std::thread::sleep(Duration::from_secs(2));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Our own daemons, by their ids, slurmd first.
        for c in self.daemons.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_for(mut f: impl FnMut() -> bool, what: &str) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `taalasc gather DIR`: (success, stdout + stderr).
fn gather(dir: &Path) -> (bool, String) {
    let o = run(&["gather", s(dir)]);
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// The rerun command `gather` gives for `job`.
fn rerun_line(msg: &str, job: &str) -> String {
    let mut lines = msg.lines();
    while let Some(l) = lines.next() {
        if l.trim_start().starts_with(&format!("{job}:")) {
            let r = lines.next().expect("a rerun line");
            return r
                .trim()
                .strip_prefix("rerun: ")
                .expect("rerun: ...")
                .to_string();
        }
    }
    panic!("gather does not name {job}:\n{msg}")
}

fn sh(line: &str) {
    let o = Command::new("sh").args(["-c", line]).output().unwrap();
    assert!(o.status.success(), "{line}: {o:?}");
}

#[test]
fn slurm_and_ninja_jobs_equal_the_single_process_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let model = repo_root().join("examples/tiny-llama");
    let text = model.join("sample.txt");
    let chip = dir.join("board.chip");
    ok(&[
        "build",
        s(&model),
        "-o",
        s(&chip),
        "--lanes",
        "16",
        "--context",
        "32",
        "--users",
        "3",
        "--chips",
        "2",
    ]);
    let pristine: Vec<(String, Vec<u8>)> = ["report.json", "manifest.json"]
        .iter()
        .map(|f| (f.to_string(), std::fs::read(chip.join(f)).unwrap()))
        .collect();
    let users: Vec<&str> = USERS.iter().flat_map(|u| ["--tokens", u]).collect();
    let quality = ["--text", s(&text), "--ctx", "16", "--chunks", "2"];

    // The single-process commands: every engine's synthesis, the sim in 3
    // shards, the report with its sweep.
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(chip.join("manifest.json")).unwrap()).unwrap();
    let cuts = m["hardware"]["system"]["board"]["cuts"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(cuts, 3, "a 2-chip board");
    let plan = dir.join("jobs-plan");
    // The first and last engines (embedding, head): a layer engine's
    // attention unit takes Yosys minutes, too long for the suite.
    ok(&[
        "jobs",
        s(&chip),
        "-o",
        s(&plan),
        "--what",
        "synth",
        "--engine",
        ENGINES,
    ]);
    let planned: serde_json::Value =
        serde_json::from_slice(&std::fs::read(plan.join("jobs.json")).unwrap()).unwrap();
    let engines: Vec<(u64, u64)> = planned["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["spec"]["chip_index"].as_u64().unwrap(),
                j["spec"]["engine"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(engines, [(0, 0), (1, 3)], "one engine on each chip");
    for (k, e) in &engines {
        ok(&[
            "synth",
            s(&chip),
            "--chip-index",
            &k.to_string(),
            "--engine",
            &e.to_string(),
        ]);
    }
    ok(&[&["sim", s(&chip)][..], &users, &["--shards", "3"]].concat());
    ok(&[&["report", s(&chip)][..], &quality, &["--sweep", SWEEP]].concat());
    let single = outputs(&chip);
    let report: serde_json::Value = serde_json::from_slice(&single[3].1).unwrap();
    assert_eq!(
        report["input"]["quality_vs_area"].as_array().unwrap().len(),
        3,
        "three sweep points"
    );
    assert_eq!(report["input"]["measured"]["users"], 3);
    assert_eq!(report["input"]["measured"]["bit_exact"], true);
    let rep: serde_json::Value = serde_json::from_slice(&single[0].1).unwrap();
    assert_eq!(rep["synth"].as_object().unwrap().len(), engines.len());
    restore(&chip, &pristine);

    // Slurm splits every quality point in two chunk ranges (--chunk-shards
    // 2); ninja runs each point as one job.
    let jobs_args = |out: &Path, emit: &str, split: &[&str]| -> Vec<String> {
        [
            &[
                "jobs",
                s(&chip),
                "-o",
                s(out),
                "--emit",
                emit,
                "--what",
                "all",
            ][..],
            &["--engine", ENGINES],
            &users,
            &["--shards", "3", "--sweep", SWEEP],
            &quality,
            split,
        ]
        .concat()
        .iter()
        .map(|a| a.to_string())
        .collect()
    };

    // Slurm, with one job made to fail: its result path holds a file that
    // is not a job result, which the job refuses to replace.
    let cluster = Cluster::start(&dir.join("slurm"));
    let j1 = dir.join("jobs-slurm");
    let a = jobs_args(&j1, "slurm", &["--chunk-shards", "2"]);
    ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let planned: serde_json::Value =
        serde_json::from_slice(&std::fs::read(j1.join("jobs.json")).unwrap()).unwrap();
    let sweeps: Vec<&str> = planned["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["spec"]["kind"] == "sweep")
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        sweeps,
        [
            "sweep-chip-chunks0-1",
            "sweep-chip-chunks1-2",
            "sweep-0-s3g32-chunks0-1",
            "sweep-0-s3g32-chunks1-2",
            "sweep-1-a4g32-chunks0-1",
            "sweep-1-a4g32-chunks1-2",
            "sweep-2-s6g32-chunks0-1",
            "sweep-2-s6g32-chunks1-2",
        ],
        "each point in two chunk ranges"
    );
    let blocked = j1.join("results/sim-shard1of3.json");
    std::fs::write(&blocked, "not a result").unwrap();
    cluster.submit_and_wait(&j1);
    let glog = std::fs::read_to_string(j1.join("logs/gather.log")).unwrap();
    assert!(
        glog.contains("sim-shard1of3:"),
        "gather names the failed job:\n{glog}"
    );
    assert!(glog.contains("rerun:"), "{glog}");
    let jlog = std::fs::read_to_string(j1.join("logs/sim-shard1of3.log")).unwrap();
    assert!(jlog.contains("not a job result taalasc wrote"), "{jlog}");
    assert!(
        !chip.join("report").exists(),
        "nothing merged while a job failed"
    );
    // Rerunning only that job (the command gather gives) completes it.
    std::fs::remove_file(&blocked).unwrap();
    let (good, msg) = gather(&j1);
    assert!(!good);
    sh(&rerun_line(&msg, "sim-shard1of3"));
    let (good, msg) = gather(&j1);
    assert!(good, "{msg}");
    assert_same(&outputs(&chip), &single, "slurm");
    // A range's result carries eval's per-chunk sums (the chip's: the
    // image's and the float model's), only for its own chunks.
    let r: serde_json::Value = serde_json::from_slice(
        &std::fs::read(j1.join("results/sweep-chip-chunks1-2.json")).unwrap(),
    )
    .unwrap();
    let range = &r["result"]["range"];
    for m in ["image", "float"] {
        let per = range[m]["per_chunk"].as_array().unwrap();
        assert_eq!(per.len(), 1, "{m}: {range}");
        assert_eq!(per[0]["chunk"], 1, "{m}: {range}");
        assert!(per[0]["nll_sum_bits"].as_str().unwrap().starts_with("0x"));
    }

    // A deleted range result (a killed job) is named; rerunning it completes.
    restore(&chip, &pristine);
    let victim = j1.join("results/sweep-1-a4g32-chunks1-2.json");
    let id = victim.file_stem().unwrap().to_str().unwrap().to_string();
    std::fs::remove_file(&victim).unwrap();
    let (good, msg) = gather(&j1);
    assert!(!good, "{msg}");
    assert!(!chip.join("report").exists(), "nothing merged: {msg}");
    sh(&rerun_line(&msg, &id));
    let (good, msg) = gather(&j1);
    assert!(good, "{msg}");
    assert_same(&outputs(&chip), &single, "slurm, one job rerun");
    drop(cluster);

    // ninja -j 2 over a fresh jobs folder.
    restore(&chip, &pristine);
    let j2 = dir.join("jobs-ninja");
    let a = jobs_args(&j2, "ninja", &[]);
    ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let ninja = |args: &[&str]| {
        let o = Command::new("ninja")
            .arg("-C")
            .arg(&j2)
            .args(args)
            .output()
            .expect("ninja (scripts/test.sh installs ninja-build)");
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.status.success(), "ninja {args:?}: {out}");
        out
    };
    ninja(&["-j", "2"]);
    assert_same(&outputs(&chip), &single, "ninja");
    // Nothing changed: nothing reruns. A changed text reruns the sweep
    // points and gather only.
    assert!(ninja(&["-n"]).contains("no work to do"));
    std::thread::sleep(Duration::from_millis(1100));
    let t2 = dir.join("text-copy.txt");
    std::fs::copy(&text, &t2).unwrap();
    filetime_touch(&text);
    let dry = ninja(&["-n"]);
    assert!(
        dry.contains("sweep-chip") && dry.contains("gather"),
        "{dry}"
    );
    assert!(
        !dry.contains("synth-") && !dry.contains("sim-shard"),
        "{dry}"
    );

    // The jobs folder is claimed: a folder taalasc did not write is refused.
    let foreign = dir.join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
    let a = jobs_args(&foreign, "ninja", &[]);
    let o = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a jobs folder taalasc wrote"));
    assert_eq!(
        std::fs::read_to_string(foreign.join("notes.txt")).unwrap(),
        "mine"
    );
}

/// Sets `p`'s modification time to now (its bytes unchanged).
fn filetime_touch(p: &Path) {
    sh(&format!("touch {}", taalasc::jobs::shell_quote(s(p))));
}

#[test]
fn fusesoc_lints_the_core_build_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let chip = tmp.path().join("tiny.chip");
    let model = repo_root().join("examples/tiny-llama");
    ok(&[
        "build",
        s(&model),
        "-o",
        s(&chip),
        "--lanes",
        "16",
        "--context",
        "32",
    ]);
    let core = std::fs::read_to_string(chip.join("taalasc.core")).unwrap();
    let name = core
        .lines()
        .find_map(|l| l.strip_prefix("name: "))
        .expect("a core name")
        .to_string();
    let work = tmp.path().join("fusesoc");
    std::fs::create_dir(&work).unwrap();
    let o = Command::new("fusesoc")
        .current_dir(&work)
        .args(["--cores-root", s(&chip), "run", "--target", "lint", &name])
        .output()
        .expect("fusesoc (scripts/test.sh installs it with pip)");
    assert!(
        o.status.success(),
        "fusesoc run --target lint {name}:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let _ = taalasc_bin();
}

#[test]
fn job_threads_reach_every_job_and_its_slurm_request() {
    let tmp = tempfile::tempdir().unwrap();
    let model = repo_root().join("examples/tiny-llama");
    let text = model.join("sample.txt");
    let chip = tmp.path().join("tiny.chip");
    ok(&[
        "build",
        s(&model),
        "-o",
        s(&chip),
        "--lanes",
        "16",
        "--context",
        "32",
    ]);
    let plan = tmp.path().join("jobs");
    let tokens: Vec<&str> = USERS.iter().flat_map(|u| ["--tokens", u]).collect();
    let mut args = vec!["jobs", s(&chip), "-o", s(&plan), "--what", "all"];
    args.extend(["--engine", "0", "--shards", "2", "--job-threads", "1"]);
    args.extend(["--text", s(&text), "--ctx", "16", "--chunks", "2"]);
    args.extend(["--sweep", "s4g32"]);
    args.extend(tokens);
    ok(&args);
    let planned: serde_json::Value =
        serde_json::from_slice(&std::fs::read(plan.join("jobs.json")).unwrap()).unwrap();
    let jobs = planned["jobs"].as_array().unwrap();
    // One synthesis, two sim shards, the chip and one sweep format.
    assert_eq!(jobs.len(), 5, "{jobs:?}");
    let ninja = std::fs::read_to_string(plan.join("build.ninja")).unwrap();
    for j in jobs {
        let argv: Vec<&str> = j["argv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(&argv[1..3], ["--threads", "1"], "{argv:?}");
        assert_eq!(j["resources"]["cpus"], 1, "{j}");
        let id = j["id"].as_str().unwrap();
        let line = ninja
            .lines()
            .skip_while(|l| *l != format!("  id = {id}"))
            .nth(1)
            .unwrap_or_else(|| panic!("{id} in build.ninja"));
        assert!(line.contains(" --threads 1 "), "{line}");
    }
    for f in std::fs::read_dir(plan.join("slurm")).unwrap() {
        let f = f.unwrap().path();
        let sb = std::fs::read_to_string(&f).unwrap();
        if !sb.contains("taalasc-gather") {
            assert!(
                sb.contains("#SBATCH --cpus-per-task=1\n"),
                "{}",
                f.display()
            );
        }
    }
    let o = run(&["jobs", s(&chip), "-o", s(&plan), "--job-threads", "0"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("--job-threads"),
        "{err}"
    );
}
