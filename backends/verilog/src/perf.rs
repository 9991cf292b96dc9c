//! The cycle model of RFC 0003 and the summary of measured cycles.
//!
//! `predicted(plan, pos)` is the RFC's per-token formula: the sum over the
//! schedule of each instruction's unit formula plus the controller's
//! overheads. `taalasc sim` reports it next to the measured counts.

use crate::plan::{AttnParallel, ElemOp, Instr, Plan, Step};
use crate::sim::Cycles;
use serde::Serialize;
use taalasc_numerics as nx;

/// Pipeline depth of `tls_matvec`'s product phase: cycles from its last
/// ROM read to its `done` (S1..S8 and the registered write).
pub const MATVEC_LATENCY: u64 = 9;
/// Load-phase cycles of `tls_matvec` beyond its lines and the lag of its
/// second read port: the last line's read, the mantissa stage and the
/// buffer write (see [`matvec_load_cycles`]).
pub const MATVEC_LOAD_EXTRA: u64 = 3;

/// Load-phase cycles of `tls_matvec` for a `cols`-value input at a
/// scratchpad line of `v` words (`tls_matvec.v`'s header): one line per
/// cycle through each read port, port b (mantissas) trailing port a (block
/// maxima) by `max(1, 32 / v) + 1` cycles, so
/// `ceil(cols / v) + max(1, 32 / v) + 3` (`cols + 35` at `v` = 1).
pub fn matvec_load_cycles(cols: u64, v: u64) -> u64 {
    let v = v.max(1);
    cols.div_ceil(v) + (nx::A8_BLOCK as u64 / v).max(1) + MATVEC_LOAD_EXTRA
}

/// Sequencer cycles per instruction on top of its unit's formula (the
/// issue cycle and the start pulse).
pub const SEQ_OVERHEAD: u64 = 2;
/// Cycles of one run of an engine's program on top of its instructions:
/// the start and done of the sequencer, the cycle in which the stage is
/// seen finished and the handoff to the next stage.
pub const STEP_OVERHEAD: u64 = 4;
/// Cycles of one copy step on top of the lines it copies (the last write
/// and the step's end).
pub const COPY_OVERHEAD: u64 = 2;

/// Cycles of one copy step of `n` words between two engines: one
/// scratchpad line (`plan.rows` words) per cycle, then the overhead.
pub fn copy_cycles(plan: &Plan, n: usize) -> u64 {
    (n as u64).div_ceil(plan.rows as u64) + COPY_OVERHEAD
}
/// A token's latency counts from the cycle it is taken to the cycle of its
/// last logit: one cycle less at each end than the steps' sum, and the
/// last logit leaves three cycles before the head's run ends.
pub const LATENCY_ADJUST: u64 = 3;

/// Cycles of one instruction at position `pos`, from `start` to `done`
/// (the unit formulas, see RFC 0003 §Cycle count; each unit's file states
/// its own and its unit test checks it).
pub fn instr_cycles(plan: &Plan, engine: usize, i: &Instr, pos: usize) -> u64 {
    let lanes = plan.lanes as u64;
    let e = &plan.engines[engine];
    match i {
        Instr::Linear {
            rows, cols, load, ..
        } => {
            // [load](ceil(cols/V) + max(1, 32/V) + 3)
            //   + ceil(rows/R)·ceil(cols/LANES) + 9,  V = R (the line)
            let ch = (*cols as u64).div_ceil(lanes);
            let groups = (*rows as u64).div_ceil(plan.rows as u64);
            let load_c = if *load {
                matvec_load_cycles(*cols as u64, plan.rows as u64)
            } else {
                0
            };
            load_c + groups * ch + MATVEC_LATENCY
        }
        // Steps of min(V, LANES) elements, one line write each (V = R).
        Instr::Embed { cols, .. } => {
            (*cols as u64).div_ceil(lanes.min(plan.rows as u64).max(1)) + 6
        }
        // One scratchpad line (`rows` values) per cycle and pass (RFC 0005).
        Instr::Norm { n: 0, .. } => 1,
        Instr::Norm { n, bias, .. } => {
            let l = (*n as u64).div_ceil(plan.rows as u64);
            if bias.is_some() {
                3 * l + 99
            } else {
                2 * l + 54
            }
        }
        // One scratchpad line (`rows` words) per step (RFC 0005).
        Instr::Elem { n: 0, .. } => 1,
        Instr::Elem { op, n, .. } => {
            let l = (*n as u64).div_ceil(plan.rows as u64);
            match op {
                ElemOp::Silu | ElemOp::Gelu => 2 * l + 5,
                _ => l + 4,
            }
        }
        Instr::Rope {
            heads,
            head_dim,
            rot,
            ..
        } => {
            // Two cycles per step (`rope_steps`).
            let steps = rope_steps(plan.rows, *heads, *head_dim, *rot);
            if steps == 0 {
                1
            } else {
                2 * steps as u64 + 6
            }
        }
        Instr::Attn { unit, .. } => {
            let a = &e.attns[*unit];
            attn_cycles(
                a.heads as u64,
                a.kv_heads as u64,
                a.head_dim as u64,
                a.window as u64,
                pos as u64,
                &a.par,
                plan.rows as u64,
            )
        }
        // One scratchpad line per beat (`tls_out`).
        Instr::Out { n, .. } => (*n as u64).div_ceil(plan.rows as u64) + 2,
    }
}

/// How `tls_rope` walks a vector at `v` scratchpad lanes (its header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeMode {
    /// Every head and half starts on a line (`head_dim` and `rot/2`
    /// multiples of `v`): a step rotates a line of a's and the line of
    /// their b's, `v` pairs.
    Line,
    /// Whole heads per line (`rot = head_dim`, a power of two up to `v`):
    /// a step rotates one line, `v / head_dim` heads.
    Head,
    /// Otherwise: one pair per step.
    Pair,
}

/// The mode of `tls_rope` for heads of `head_dim` rotating `rot` features.
pub fn rope_mode(v: usize, head_dim: usize, rot: usize) -> RopeMode {
    if head_dim.is_multiple_of(v) && (rot / 2).is_multiple_of(v) {
        RopeMode::Line
    } else if rot == head_dim && head_dim.is_power_of_two() && head_dim <= v {
        RopeMode::Head
    } else {
        RopeMode::Pair
    }
}

/// Steps (two cycles each) of `tls_rope` over `heads` heads:
/// `heads·(rot/2)/v` in line mode, `ceil(heads·head_dim/v)` in head mode,
/// `heads·(rot/2)` in pair mode; 0 when nothing rotates.
pub fn rope_steps(v: usize, heads: usize, head_dim: usize, rot: usize) -> usize {
    if heads == 0 || rot < 2 {
        return 0;
    }
    match rope_mode(v, head_dim, rot) {
        RopeMode::Line => heads * (rot / 2) / v,
        RopeMode::Head => (heads * head_dim).div_ceil(v),
        RopeMode::Pair => heads * (rot / 2),
    }
}

/// Attention at position `pos` (KV append, then every head; `tls_attn`,
/// the formula of its header) with parallelism `par` (`HP`, `KP`, `BPC`)
/// and scratchpad lines of `v` words (the plan's rows):
///
/// `(2·KV + HP)·C + P·(2·R·W + 12) + H·(N + 3) + (P − 1)·max(0, HP·(C − N − 3) − R·W − 7)`
///
/// with `B = hd/32`, `C = (2·Q + 1)·B/CE + 3` the A8 conversion of one
/// vector in groups of `CE` 32-blocks ([`attn_conv_blocks`]; `Q = 16/min(v, 16)`
/// cycles per read pass over a group: `min(v, 32)` words per read port and
/// cycle, both ports while `v < 32`, `32·CE` words of one line at
/// `v ≥ 64`; at `v ≤ 32`, `CE = 1`), `N = hd/O`
/// output line writes per head (`O = min(v, 2^tz(hd))` words each, the
/// largest power of two dividing `hd` up to `v`), `P = H/HP` passes,
/// `W = B/BPC` cache words per position, `R = ⌊pos/KP⌋ − ⌊lo/KP⌋ + 1` cache
/// rows of the window `lo ..= pos`. The last term is the wait for the next
/// pass's q when its conversion outlasts the V pass and the outputs. With
/// `v = HP = KP = BPC = 1` this is `(2·KV + 1)·(33·B + 3) + H·(2·n·B + hd + 15)`.
pub fn attn_cycles(
    heads: u64,
    kv_heads: u64,
    hd: u64,
    window: u64,
    pos: u64,
    par: &AttnParallel,
    v: u64,
) -> u64 {
    let (hp, kp, bpc) = (par.heads as u64, par.positions as u64, par.blocks as u64);
    let b = hd / nx::A8_BLOCK as u64;
    let lo = if window > 0 {
        (pos + 1).saturating_sub(window)
    } else {
        0
    };
    let rows = pos / kp - lo / kp + 1;
    let words = b / bpc;
    let passes = heads / hp;
    let per_pass = 16 / v.clamp(1, 16);
    let conv = (2 * per_pass + 1) * (b / attn_conv_blocks(v, bpc)) + 3;
    let chunk = v.max(1).min(1 << hd.trailing_zeros());
    let out = hd / chunk + 3;
    let wait = (hp * (conv - out)).saturating_sub(rows * words + 7);
    (2 * kv_heads + hp) * conv
        + passes * (2 * rows * words + 12)
        + heads * out
        + (passes - 1) * wait
}

/// 32-blocks `tls_attn`'s A8 converter handles per step (`CE`): as many as
/// a line of `v` words holds (`v/32`, 1 while `v < 64`), at most the largest
/// power of two dividing `bpc` (so a step's blocks share a cache word and
/// go to different banks, bank `b mod bpc`, and never straddle a line).
pub fn attn_conv_blocks(v: u64, bpc: u64) -> u64 {
    (v / 32).clamp(1, 1 << bpc.max(1).trailing_zeros())
}

/// Predicted latency of one token at `pos` alone in the chip: from the
/// cycle it is taken to its last logit (RFC 0005 §The cycle formula; the
/// token-flow model, `crate::flow`, gives the same for one token and
/// generalizes it to tokens in flight).
pub fn predicted(plan: &Plan, pos: usize) -> u64 {
    let mut c = 0;
    for st in &plan.schedule {
        match st {
            Step::Copy { n, .. } => c += copy_cycles(plan, *n),
            Step::Run { engine, pc0, pc1 } => {
                c += STEP_OVERHEAD;
                for i in &plan.engines[*engine].program[*pc0..*pc1] {
                    c += SEQ_OVERHEAD + instr_cycles(plan, *engine, i, pos);
                }
            }
        }
    }
    c.saturating_sub(LATENCY_ADJUST)
}

/// Weights streamed per token divided by the MAC lanes (`lanes · rows`):
/// the ideal matvec cycles.
pub fn ideal_matvec_cycles(plan: &Plan) -> f64 {
    let mut w = 0u64;
    for e in &plan.engines {
        for i in &e.program {
            if let Instr::Linear { rows, cols, .. } = i {
                w += (*rows * *cols) as u64;
            }
        }
    }
    w as f64 / (plan.lanes * plan.rows) as f64
}

/// Mean cycles per token of each phase, as in [`crate::sim::Cycles`]
/// (matvec first, then attention, then nonlinear, the rest control).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Phases {
    /// Mean cycles in which some matvec unit was busy.
    pub matvec: f64,
    /// Mean cycles with attention but no matvec busy.
    pub attention: f64,
    /// Mean cycles with only nonlinear units busy.
    pub nonlinear: f64,
    /// Mean cycles in which only the controller worked.
    pub control: f64,
}

/// Measured cycles of a simulated run next to the RFC 0003 formula.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PerfSummary {
    /// Mean latency over the tokens simulated (entry to last logit).
    pub cycles_per_token: f64,
    /// Cycles of the whole run divided by its tokens: with several users
    /// in flight, below the latency.
    pub throughput_cycles_per_token: f64,
    /// Mean latency split by phase.
    pub phases: Phases,
    /// Mean of the formula over the same positions.
    pub predicted: f64,
    /// Measured / predicted.
    pub measured_over_predicted: f64,
    /// Ideal matvec cycles (weights / lanes) over measured matvec cycles.
    pub mac_utilization: f64,
}

/// Summary of a run of tokens; `positions[t]` is token t's position in its
/// own sequence, `total` the cycles of the whole run.
pub fn summarize(plan: &Plan, cycles: &[Cycles], positions: &[usize], total: u64) -> PerfSummary {
    let n = cycles.len().max(1) as f64;
    let sum = |f: &dyn Fn(&Cycles) -> u64| cycles.iter().map(f).sum::<u64>() as f64 / n;
    let predicted = positions.iter().map(|&p| predicted(plan, p)).sum::<u64>() as f64 / n;
    let whole = total;
    let total = sum(&|c| c.total);
    let matvec = sum(&|c| c.matvec);
    PerfSummary {
        cycles_per_token: total,
        throughput_cycles_per_token: whole as f64 / n,
        phases: Phases {
            matvec,
            attention: sum(&|c| c.attention),
            nonlinear: sum(&|c| c.nonlinear),
            control: sum(&|c| c.control),
        },
        predicted,
        measured_over_predicted: if predicted > 0.0 {
            total / predicted
        } else {
            0.0
        },
        mac_utilization: if matvec > 0.0 {
            ideal_matvec_cycles(plan) / matvec
        } else {
            0.0
        },
    }
}

#[cfg(test)]
mod tests {
    use super::attn_cycles;
    use crate::plan::AttnParallel;

    /// A Llama-3.1-8B attention layer (32 query heads, 8 KV heads,
    /// head_dim 128) at position 2047 with 4 heads per pass, 64 positions
    /// and whole heads per cycle: one word per cycle of scratchpad traffic
    /// (`v` = 1) against lines of 64 words.
    #[test]
    fn llama_8b_attention_at_line_width() {
        let par = AttnParallel {
            heads: 4,
            positions: 64,
            blocks: 4,
        };
        let at = |v| attn_cycles(32, 8, 128, 0, 2047, &par, v);
        // (16 + 4)·(33·4 + 3) + 8·(2·32 + 12) + 32·(128 + 3)
        assert_eq!(at(1), 20 * 135 + 8 * 76 + 32 * 131);
        assert_eq!(at(1), 7500);
        // V = 32: one block per conversion step, C = 3·4 + 3 = 15, N = 4
        // (no wait).
        assert_eq!(at(32), 20 * 15 + 8 * 76 + 32 * 7);
        // V = 64: two blocks per step, C = 3·2 + 3 = 9, N = 2 (no wait).
        assert_eq!(at(64), 20 * 9 + 8 * 76 + 32 * 5);
        assert_eq!(at(64), 948);
        // V = 8: C = 5·4 + 3 = 23, N = 16 (no wait).
        assert_eq!(at(8), 20 * 23 + 8 * 76 + 32 * 19);
    }

    /// The same layer at lines of 256 words and 256 positions per cycle:
    /// a whole head (4 blocks) per conversion step, `C = 3 + 3 = 6`, one
    /// output write per head, and no wait for the next pass's q.
    #[test]
    fn llama_8b_attention_whole_head_conversion() {
        let par = AttnParallel {
            heads: 4,
            positions: 256,
            blocks: 4,
        };
        let at = |v| attn_cycles(32, 8, 128, 0, 2047, &par, v);
        // R = 8 rows, W = 1 word: (16 + 4)·6 + 8·(2·8 + 12) + 32·(1 + 3).
        assert_eq!(at(256), 20 * 6 + 8 * 28 + 32 * 4);
        assert_eq!(at(256), 472);
        // The previous converter (one block per step at any V) took C = 15
        // and waited 4·(15 − 4) − 8 − 7 = 29 cycles before each of the 7
        // later passes: 20·15 + 224 + 128 + 7·29 = 855 (RFC 0005).
        let one = AttnParallel { blocks: 1, ..par };
        // BPC = 1: W = 4 words per position, C = 15, wait 4·11 − 32 − 7 = 5.
        assert_eq!(
            attn_cycles(32, 8, 128, 0, 2047, &one, 256),
            20 * 15 + 8 * (2 * 8 * 4 + 12) + 32 * 4 + 7 * 5
        );
        // BPC = 2: two blocks per step, C = 9.
        let two = AttnParallel { blocks: 2, ..par };
        assert_eq!(
            attn_cycles(32, 8, 128, 0, 2047, &two, 256),
            20 * 9 + 8 * (2 * 8 * 2 + 12) + 32 * 4
        );
    }

    #[test]
    fn attn_conversion_blocks_per_step() {
        use super::attn_conv_blocks;
        // (v, bpc) -> CE
        for (v, bpc, ce) in [
            (1, 4, 1),
            (32, 4, 1),
            (64, 4, 2),
            (128, 4, 4),
            (256, 4, 4),
            (256, 8, 8),
            (256, 1, 1),
            (256, 2, 2),
            (256, 3, 1),
            (256, 6, 2),
            (64, 3, 1),
        ] {
            assert_eq!(attn_conv_blocks(v, bpc), ce, "v {v} bpc {bpc}");
        }
    }
}
