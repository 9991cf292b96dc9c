//! `taalasc sim`: builds the Verilator model of an emitted chip, runs tokens
//! through it and compares every unit's output and every logit with the
//! bit-exact reference, position by position.

use crate::plan::Plan;
use crate::tools::{run, ToolError};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Why building or running the simulation, or reading its outputs, failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Verilator or the simulation executable failed to start or exited
    /// with an error.
    #[error(transparent)]
    Tool(#[from] ToolError),
    /// A file or folder the simulation needs could not be created, read
    /// or written, or an output file is malformed.
    #[error("{path}: {message}")]
    Output {
        /// The file (or folder).
        path: String,
        /// What is wrong with it.
        message: String,
    },
}

/// Generated C++ up to this size (bytes, all `.cpp` files of the model)
/// is compiled as one translation unit (`VM_PARALLEL_BUILDS=0`): every
/// file Verilator writes includes the same runtime and model headers, and
/// parsing them took over half of g++'s time per split file on the tiny
/// chips (measured with Verilator 5.006 and g++ 12, same `-Os`: tiny-llama
/// at 16 lanes, 4 MB of C++ in 33 files, 33 s of g++ CPU split, 17 s as
/// one file; gpt2 at 256 lanes, 15.4 MB in 50 files, 103 s split, 68 s as
/// one file with 0.6 GB peak memory). Larger models (SmolLM2's 30 layers
/// write ~48 MB) keep Verilator's split build: one huge file would need
/// several GB of compiler memory and could not use both make jobs.
pub const SINGLE_UNIT_MAX_CPP_BYTES: u64 = 16 << 20;

/// Builds the Verilator simulation of the chip (or board) in `dir` with
/// top module `top`; `vcd` builds the tracing variant. Returns the
/// executable. It always builds: `dir` must hold sources the caller
/// generated (the driver's `simtree` regenerates them and keeps built
/// models in its own cache), never a folder's prebuilt binary.
///
/// Verilator writes the C++ model, then `make` compiles it with
/// Verilator's own optimisation levels (`OPT_FAST = -Os` for the
/// per-cycle code); only how the files are grouped into translation
/// units depends on the model's size ([`SINGLE_UNIT_MAX_CPP_BYTES`]), not
/// what the simulation computes.
pub fn build(dir: &Path, top: &str, vcd: bool) -> Result<PathBuf, SimError> {
    let mdir = if vcd { "sim/obj_vcd" } else { "sim/obj" };
    let exe = dir.join(mdir).join(format!("V{top}"));
    let mut args: Vec<String> = [
        "--cc",
        "--exe",
        "-O2",
        "-Wno-DECLFILENAME",
        "--top-module",
        top,
        "-Mdir",
        mdir,
        "-f",
        "taalasc.f",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // make runs inside the object folder: the C++ file needs a full path.
    let abs = std::path::absolute(dir.join("harness/main.cpp")).map_err(|e| SimError::Output {
        path: dir.display().to_string(),
        message: e.to_string(),
    })?;
    args.push(abs.display().to_string());
    // ... and so does the include folder of its generated header.
    let inc = abs.parent().expect("harness folder").display().to_string();
    args.extend(["-CFLAGS".to_string(), format!("-I{inc}")]);
    if vcd {
        args.push("--trace".into());
    }
    std::fs::create_dir_all(dir.join("sim")).map_err(|e| SimError::Output {
        path: dir.join("sim").display().to_string(),
        message: e.to_string(),
    })?;
    run(dir, "verilator", &args)?;
    let cpp = cpp_bytes(&dir.join(mdir))?;
    let parallel = u8::from(cpp > SINGLE_UNIT_MAX_CPP_BYTES);
    let make: Vec<String> = [
        "-j",
        "2",
        "-C",
        mdir,
        "-f",
        &format!("V{top}.mk"),
        &format!("VM_PARALLEL_BUILDS={parallel}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    run(dir, "make", &make)?;
    Ok(exe)
}

/// Total size of the `.cpp` files Verilator wrote into `mdir`.
fn cpp_bytes(mdir: &Path) -> Result<u64, SimError> {
    let err = |e: std::io::Error| SimError::Output {
        path: mdir.display().to_string(),
        message: e.to_string(),
    };
    let mut total = 0;
    for e in std::fs::read_dir(mdir).map_err(err)? {
        let p = e.map_err(err)?.path();
        if p.extension().is_some_and(|x| x == "cpp") {
            total += p.metadata().map_err(err)?.len();
        }
    }
    Ok(total)
}

/// One token for the chip: id, whether it starts a new sequence, user
/// slot, and idle cycles before it is offered once it may enter.
#[derive(Clone, Copy, Debug)]
pub struct TokenIn {
    /// Token id (below the vocabulary size).
    pub token: u32,
    /// Starts a new sequence: the slot's position resets to 0.
    pub restart: bool,
    /// User slot (below `Plan::users`).
    pub slot: u8,
    /// Idle cycles before the token is offered.
    pub delay: u32,
    /// A prompt token: it may enter while its slot's earlier tokens are
    /// still in the chip (prefill), instead of waiting for their logits.
    pub prefill: bool,
}

/// First line of the token file; the harness refuses any other.
pub const TOKENS_HEADER: &str = "taalasc-tokens 2";

/// Cycle counters of one token: `total` is its latency (from entering the
/// chip to its last logit); the phase counters cover the same cycles (with
/// several tokens in flight they overlap between tokens).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Cycles {
    /// Latency: cycles from entering the chip to the last logit.
    pub total: u64,
    /// Cycles in which some engine's matvec unit was busy.
    pub matvec: u64,
    /// Cycles with no matvec but some attention unit busy.
    pub attention: u64,
    /// Cycles with neither but some nonlinear unit (norm, rope, elem...)
    /// busy.
    pub nonlinear: u64,
    /// Cycles in which only the controller worked (copies, dispatch).
    pub control: u64,
}

/// A scratchpad write seen on the debug port.
#[derive(Clone, Copy, Debug)]
pub struct TraceRec {
    /// Index of the token in the run's input order (not its id).
    pub token: u32,
    /// Engine whose scratchpad was written.
    pub engine: u16,
    /// Program counter of the writing instruction.
    pub pc: u16,
    /// Scratchpad word written.
    pub addr: u32,
    /// The 48-bit word, sign-extended.
    pub data: i64,
}

/// What the RTL produced.
pub struct RtlRun {
    /// The logit beats of every token, concatenated (`beats[t]` of token t:
    /// the vocabulary, or one for an error beat).
    pub logits: Vec<i64>,
    /// Logit beats each token produced, in input order.
    pub beats: Vec<u64>,
    /// Cycle counters of each token, in input order.
    pub cycles: Vec<Cycles>,
    /// Whether each token ended in an error beat, in input order.
    pub errors: Vec<bool>,
    /// Every scratchpad write seen on the debug port, in time order.
    pub trace: Vec<TraceRec>,
    /// Cycles from the first token in to the last logit out.
    pub total_cycles: u64,
    /// Wall-clock seconds the simulation ran.
    pub seconds: f64,
}

fn read(path: &Path) -> Result<Vec<u8>, SimError> {
    std::fs::read(path).map_err(|e| SimError::Output {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Runs `tokens` through the simulation `exe` with outputs in `work`.
pub fn run_rtl(
    exe: &Path,
    work: &Path,
    tokens: &[TokenIn],
    vcd: Option<&Path>,
) -> Result<RtlRun, SimError> {
    std::fs::create_dir_all(work).map_err(|e| SimError::Output {
        path: work.display().to_string(),
        message: e.to_string(),
    })?;
    let tok_file = work.join("tokens.txt");
    let harness = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map(|d| d.join("harness/main.cpp"));
    if let Some(h) = harness.filter(|h| h.is_file()) {
        let src = read(&h)?;
        if !String::from_utf8_lossy(&src).contains(TOKENS_HEADER) {
            return Err(SimError::Output {
                path: h.display().to_string(),
                message: format!(
                    "this harness predates the `{TOKENS_HEADER}` token file: rebuild the chip"
                ),
            });
        }
    }
    let mut text = format!("{TOKENS_HEADER}\n");
    for t in tokens {
        text += &format!(
            "{} {} {} {} {}\n",
            t.token, t.restart as u8, t.slot, t.delay, t.prefill as u8
        );
    }
    std::fs::write(&tok_file, text).map_err(|e| SimError::Output {
        path: tok_file.display().to_string(),
        message: e.to_string(),
    })?;
    let mut args = vec![tok_file.display().to_string(), work.display().to_string()];
    if let Some(v) = vcd {
        args.push(v.display().to_string());
    }
    // The ROM paths in the RTL are relative to the chip folder.
    let chip_dir = exe
        .parent()
        .and_then(|p| p.parent())
        .and_then(|p| p.parent())
        .unwrap_or(Path::new("."));
    let t0 = std::time::Instant::now();
    run(chip_dir, &exe.display().to_string(), &args)?;
    let seconds = t0.elapsed().as_secs_f64();
    let logits: Vec<i64> = read(&work.join("logits.bin"))?
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    let trace: Vec<TraceRec> = read(&work.join("trace.bin"))?
        .chunks_exact(24)
        .map(|c| TraceRec {
            token: u32::from_le_bytes(c[0..4].try_into().expect("4")),
            engine: u16::from_le_bytes(c[4..6].try_into().expect("2")),
            pc: u16::from_le_bytes(c[6..8].try_into().expect("2")),
            addr: u32::from_le_bytes(c[8..12].try_into().expect("4")),
            data: i64::from_le_bytes(c[16..24].try_into().expect("8")),
        })
        .collect();
    let perf_path = work.join("perf.txt");
    let perf = String::from_utf8_lossy(&read(&perf_path)?).into_owned();
    let mut cycles = Vec::new();
    let mut errors = Vec::new();
    let mut beats = Vec::new();
    for line in perf.lines() {
        let v: Vec<u64> = line
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if v.len() != 8 {
            return Err(SimError::Output {
                path: perf_path.display().to_string(),
                message: format!("malformed line `{line}`"),
            });
        }
        cycles.push(Cycles {
            total: v[1],
            matvec: v[2],
            attention: v[3],
            nonlinear: v[4],
            control: v[5],
        });
        beats.push(v[6]);
        errors.push(v[7] != 0);
    }
    if cycles.len() != tokens.len() {
        return Err(SimError::Output {
            path: perf_path.display().to_string(),
            message: format!("{} of {} tokens finished", cycles.len(), tokens.len()),
        });
    }
    let total_path = work.join("total.txt");
    let total_cycles = String::from_utf8_lossy(&read(&total_path)?)
        .trim()
        .parse()
        .map_err(|_| SimError::Output {
            path: total_path.display().to_string(),
            message: "not a cycle count".into(),
        })?;
    Ok(RtlRun {
        logits,
        beats,
        total_cycles,
        cycles,
        errors,
        trace,
        seconds,
    })
}

/// The first difference between RTL and reference.
#[derive(Clone, Debug, Serialize)]
pub struct Mismatch {
    /// User slot.
    pub user: usize,
    /// Position in that user's sequence.
    pub position: usize,
    /// IR node whose value differs (`chip` for a controller error).
    pub node: String,
    /// Engine that computed it.
    pub engine: usize,
    /// Unit that computed it (see [`crate::plan::Instr::unit`]).
    pub unit: String,
    /// Element of the node's value that differs.
    pub index: usize,
    /// What the RTL wrote; `None` if it never wrote the word.
    pub rtl: Option<i64>,
    /// What the bit-exact reference computed.
    pub reference: i64,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rtl = self
            .rtl
            .map_or("never written".to_string(), |v| v.to_string());
        write!(
            f,
            "user {} position {}: node `{}` (engine {}, unit {}), element {}: RTL {} vs reference {}",
            self.user, self.position, self.node, self.engine, self.unit, self.index, rtl, self.reference
        )
    }
}

/// Result of the cross-check of one user's sequence.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// User slot.
    pub user: usize,
    /// Every compared value was equal and no token ended in an error.
    pub bit_exact: bool,
    /// Positions compared (up to the first mismatch).
    pub positions: usize,
    /// Values compared (unit outputs and logits).
    pub values_compared: u64,
    /// Where the comparison stopped, if it found a difference.
    pub first_mismatch: Option<Mismatch>,
}

/// Round-robin interleaving of the users' sequences: user 0's first token,
/// user 1's first token, ..., then everyone's second token. Each user's
/// first token restarts its slot at position 0. With `jitter > 0` each
/// token arrives after a pseudo-random idle time in `0..jitter` cycles
/// (fixed seed: the same run every time), which moves arrivals across
/// every phase of the pipeline. The first `prefill` tokens of each user
/// are its prompt: they enter back to back (prefill) instead of each
/// waiting for the previous one's logits.
pub fn interleave(seqs: &[Vec<u32>], jitter: u32, prefill: usize) -> Vec<TokenIn> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut delay = || {
        if jitter == 0 {
            return 0;
        }
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % jitter as u64) as u32
    };
    let longest = seqs.iter().map(Vec::len).max().unwrap_or(0);
    let mut v = Vec::new();
    for i in 0..longest {
        for (u, s) in seqs.iter().enumerate() {
            if let Some(&token) = s.get(i) {
                v.push(TokenIn {
                    token,
                    restart: i == 0,
                    slot: u as u8,
                    delay: delay(),
                    prefill: i < prefill,
                });
            }
        }
    }
    v
}

/// What the reference computed for one user's sequence run alone: every
/// traced node's values by node name (`[positions × width]`) and the logits
/// (`[positions × vocab]`).
#[derive(Clone, Debug, Default)]
pub struct Expected {
    /// Positions of the user's sequence.
    pub positions: usize,
    /// Values of every traced node, by node name.
    pub nodes: HashMap<String, Vec<i64>>,
    /// The logits, `[positions × vocab]`, `W48`.
    pub logits: Vec<i64>,
}

/// Compares the RTL run of `order` (the users' tokens as fed to the chip,
/// see [`interleave`]) with the reference run of each user's sequence
/// ALONE: every unit output in program order, then the logits, at every
/// position. A user's comparison stops at its first difference. Equality
/// for every user proves that users do not leak into each other's KV
/// caches.
pub fn compare(
    plan: &Plan,
    expected: &[Expected],
    order: &[TokenIn],
    rtl: &RtlRun,
) -> Result<Vec<Check>, SimError> {
    let vocab = plan.vocab;
    let seqs: Vec<usize> = expected.iter().map(|e| e.positions).collect();
    let want: Vec<&HashMap<String, Vec<i64>>> = expected.iter().map(|e| &e.nodes).collect();
    let logits: Vec<&Vec<i64>> = expected.iter().map(|e| &e.logits).collect();
    // RTL values: last write per (token, engine, pc, addr).
    let mut got: HashMap<(u32, u16, u16, u32), i64> = HashMap::new();
    for r in &rtl.trace {
        got.insert((r.token, r.engine, r.pc, r.addr), r.data);
    }
    let mut checks: Vec<Check> = (0..seqs.len())
        .map(|u| Check {
            user: u,
            bit_exact: true,
            positions: 0,
            values_compared: 0,
            first_mismatch: None,
        })
        .collect();
    let mut next_pos = vec![0usize; seqs.len()];
    for (t, tin) in order.iter().enumerate() {
        let u = tin.slot as usize;
        let p = next_pos[u];
        next_pos[u] += 1;
        let c = &mut checks[u];
        if c.first_mismatch.is_some() {
            continue;
        }
        let offset: u64 = rtl.beats[..t.min(rtl.beats.len())].iter().sum();
        if rtl.errors.get(t).copied().unwrap_or(true) {
            c.bit_exact = false;
            c.first_mismatch = Some(Mismatch {
                user: u,
                position: p,
                node: "chip".into(),
                engine: 0,
                unit: "controller (error beat or no output)".into(),
                index: 0,
                rtl: None,
                reference: 0,
            });
            continue;
        }
        let mut bad = false;
        // Unit outputs, in the order the chip computes them.
        'steps: for step in &plan.schedule {
            let crate::plan::Step::Run { engine, pc0, pc1 } = step else {
                continue;
            };
            let e = &plan.engines[*engine];
            for pc in *pc0..*pc1 {
                let Some(slot) = plan
                    .slots
                    .iter()
                    .find(|s| s.engine == *engine && s.pc == pc)
                else {
                    continue; // the logits stream: compared below
                };
                let w = &want[u][&e.nodes[pc]];
                for i in 0..slot.width {
                    let r = w[p * slot.width + i];
                    let g = got
                        .get(&(t as u32, *engine as u16, pc as u16, slot.addr + i as u32))
                        .copied();
                    checks[u].values_compared += 1;
                    if g != Some(r) {
                        let c = &mut checks[u];
                        c.bit_exact = false;
                        c.first_mismatch = Some(Mismatch {
                            user: u,
                            position: p,
                            node: e.nodes[pc].clone(),
                            engine: *engine,
                            unit: e.program[pc].unit().into(),
                            index: i,
                            rtl: g,
                            reference: r,
                        });
                        bad = true;
                        break 'steps;
                    }
                }
            }
        }
        if bad {
            continue;
        }
        for i in 0..vocab {
            let r = logits[u][p * vocab + i];
            let g = rtl.logits.get(offset as usize + i).copied();
            checks[u].values_compared += 1;
            if g != Some(r) {
                let c = &mut checks[u];
                c.bit_exact = false;
                c.first_mismatch = Some(Mismatch {
                    user: u,
                    position: p,
                    node: "logits".into(),
                    engine: 0,
                    unit: "out".into(),
                    index: i,
                    rtl: g,
                    reference: r,
                });
                bad = true;
                break;
            }
        }
        if !bad {
            checks[u].positions += 1;
        }
    }
    for (c, n) in checks.iter_mut().zip(seqs) {
        c.bit_exact &= c.positions == n;
    }
    Ok(checks)
}
