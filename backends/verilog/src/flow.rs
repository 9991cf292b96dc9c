//! The token-flow model: when every token enters and leaves a single chip,
//! with several users in flight and prompts prefilled (RFC 0005 §Prefill).
//!
//! RFC 0003's per-token formula ([`crate::perf::predicted`]) prices one
//! token alone. With tokens in flight the chip's controller decides when a
//! stage hands its token on (`chip.rs`: a stage takes its predecessor's
//! token when it is empty and both engines are idle, the latest stage
//! first; one copy unit moves the values; a handoff into the input engine
//! wins over a new token), and the harness decides when a token is offered
//! (a decode token waits for its user's previous logits; a prefill token
//! does not). This module replays exactly those rules cycle by cycle, with
//! each engine run taking its unit formulas, so `taalasc sim` can compare
//! every token's measured latency and the run's total cycles with it.
//!
//! Timing rules (iteration `c` = the cycle in which registers hold their
//! values; a register set at the clock edge ending `c` is seen at `c + 1`):
//!
//! - a token accepted at `c` has `go` of the first stage at `c + 1`;
//! - an engine run started by `go` at `g` pulses `done` at `g + R`, where
//!   `R` is the sum over its instructions of [`SEQ_CYCLES`] plus the unit
//!   formula, plus [`RUN_CYCLES`]; the stage is finished from `g + R + 1`;
//! - a handoff chosen at `c` without copies gives `go` at `c + 1`; with
//!   copies the copy unit is busy from `c + 1` for `Σ (⌈n/V⌉ + 2)` cycles (V
//!   = the line width, `perf::copy_cycles`) and `go` follows at `c + 1 +
//!   Σ (⌈n/V⌉ + 2)`;
//! - the last logit of the last stage's run is seen [`OUT_LEAD`] cycles
//!   before its `done`; the harness offers the user's next decode token from
//!   the cycle after it has seen that beat.

use crate::perf::{copy_cycles, instr_cycles, SEQ_OVERHEAD};
use crate::plan::Plan;
use crate::sim::TokenIn;

/// Sequencer cycles per instruction on top of the unit's own formula.
pub const SEQ_CYCLES: u64 = SEQ_OVERHEAD;
/// Cycles of an engine run, `go` to `done`, on top of its instructions
/// (the sequencer's start and done).
pub const RUN_CYCLES: u64 = 2;
/// The last logit beat is seen this many cycles before the head's `done`.
pub const OUT_LEAD: u64 = 3;

/// Cycles of one token through the chip, as the model gives them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowRun {
    /// Per token (input order): cycles from entering to its last logit,
    /// counted like the harness (the last beat's cycle included).
    pub latency: Vec<u64>,
    /// Cycles from the first token in to the last logit out.
    pub total: u64,
}

/// Run length of every stage at position `pos`: `go` to `done`.
pub fn stage_run_cycles(plan: &Plan, stage: usize, pos: usize) -> u64 {
    let s = &plan.stages()[stage];
    let e = &plan.engines[s.engine];
    e.program[s.pc0..s.pc1]
        .iter()
        .map(|i| SEQ_CYCLES + instr_cycles(plan, s.engine, i, pos))
        .sum::<u64>()
        + RUN_CYCLES
}

#[derive(Clone, Copy, Default)]
struct StageState {
    /// Holds a token (index into the inputs).
    token: Option<usize>,
    /// Iteration in which its `go` is seen.
    go_at: u64,
    /// Run length of the token held.
    run: u64,
}

impl StageState {
    fn active(&self, c: u64) -> bool {
        self.token.is_some() && c >= self.go_at && c <= self.go_at + self.run
    }
    fn finished(&self, c: u64) -> bool {
        self.token.is_some() && c > self.go_at + self.run
    }
}

/// Replays `tokens` (in the order the harness offers them; a `prefill`
/// token does not wait for its slot's earlier logits) through a
/// single-chip `plan`. Every token must be good (below the vocabulary, its
/// position inside the context): error beats are not modelled, and neither
/// are a board's links (the caller does not ask for a board). `None` for an
/// empty run or one that does not finish within the harness's limit.
pub fn replay(plan: &Plan, tokens: &[TokenIn]) -> Option<FlowRun> {
    let st = plan.stages();
    let ns = st.len();
    if ns == 0 || tokens.is_empty() {
        return None;
    }
    let in_e = st[0].engine;
    let last = ns - 1;
    // Positions of each token within its slot's sequence.
    let mut next_pos = vec![0usize; 256];
    let pos: Vec<usize> = tokens
        .iter()
        .map(|t| {
            let s = t.slot as usize;
            if t.restart {
                next_pos[s] = 0;
            }
            let p = next_pos[s];
            next_pos[s] += 1;
            p
        })
        .collect();
    let run = |k: usize, t: usize| stage_run_cycles(plan, k, pos[t]);
    let copy_len = |k: usize| {
        st[k]
            .copies
            .iter()
            .map(|c| copy_cycles(plan, c.2))
            .sum::<u64>()
    };

    let n = tokens.len();
    let mut stages = vec![StageState::default(); ns];
    // The copy unit: `(end, stage, token)`, busy through `end` (inclusive),
    // moving `token` into `stage`.
    let mut cp: Option<(u64, usize, usize)> = None;
    let mut in_flight = vec![0u32; 256];
    let mut entered = vec![0u64; n];
    let mut latency = vec![0u64; n];
    let (mut next_in, mut next_out, mut waited) = (0usize, 0usize, 0u64);
    let mut first_in = None;
    let mut c: u64 = 0;
    // Bounded like the harness.
    let limit = 4_000_000_000u64;
    while next_out < n {
        if c > limit {
            return None;
        }
        let act = |e: usize, stages: &[StageState]| {
            (0..ns).any(|k| st[k].engine == e && stages[k].active(c))
        };
        let cp_busy = cp.is_some_and(|(end, _, _)| c <= end);
        // Handoff conditions, seen in this iteration.
        let can = |k: usize, stages: &[StageState]| {
            k > 0
                && stages[k - 1].finished(c)
                && stages[k].token.is_none()
                && !act(st[k - 1].engine, stages)
                && !act(st[k].engine, stages)
        };
        // The harness offers the next token.
        let mut offer = false;
        let mut waiting = false;
        if next_in < n {
            let t = &tokens[next_in];
            let may = t.prefill || in_flight[t.slot as usize] == 0;
            if may {
                if waited < t.delay as u64 {
                    waited += 1;
                    waiting = true;
                } else {
                    offer = true;
                }
            }
        }
        let hand_e0 = !cp_busy && (1..ns).any(|k| st[k].engine == in_e && can(k, &stages));
        let copy_into_in = cp.is_some_and(|(end, k, _)| c <= end && st[k].engine == in_e);
        let take_ok = stages[0].token.is_none() && !act(in_e, &stages) && !copy_into_in && !hand_e0;
        let accept = offer && take_ok;
        // The last logit beat of the token in the last stage.
        let mut beat = false;
        if let Some(t) = stages[last].token {
            let s = stages[last];
            if c + OUT_LEAD == s.go_at + s.run {
                latency[t] = c + 1 - entered[t];
                in_flight[tokens[t].slot as usize] -= 1;
                next_out += 1;
                beat = true;
                if next_out == n {
                    // The harness counts from the first acceptance to the
                    // cycle after the last beat.
                    let total = c + 1 - first_in.unwrap_or(0);
                    return Some(FlowRun { latency, total });
                }
            }
        }
        // Clock edge: compute the next state from this iteration's values.
        let mut nxt = stages.clone();
        // A run ends: the last stage's token leaves.
        let s = stages[last];
        if s.token.is_some() && c == s.go_at + s.run {
            nxt[last].token = None;
        }
        if accept {
            waited = 0;
            let t = next_in;
            entered[t] = c;
            first_in.get_or_insert(c);
            in_flight[tokens[t].slot as usize] += 1;
            nxt[0] = StageState {
                token: Some(t),
                go_at: c + 1,
                run: run(0, t),
            };
            next_in += 1;
        }
        // The copy unit finishes: the token moves.
        if let Some((end, k, t)) = cp {
            if c == end {
                nxt[k - 1].token = None;
                nxt[k] = StageState {
                    token: Some(t),
                    go_at: c + 1,
                    run: run(k, t),
                };
            }
        }
        // A beat frees its user's slot: the harness may offer from the next
        // cycle on.
        let mut moved = accept || beat || cp.is_some_and(|(end, _, _)| c == end);
        if !cp_busy {
            if let Some(k) = (1..ns).rev().find(|&k| can(k, &stages)) {
                moved = true;
                let t = stages[k - 1].token.expect("a finished stage holds a token");
                let len = copy_len(k);
                if len == 0 {
                    nxt[k - 1].token = None;
                    nxt[k] = StageState {
                        token: Some(t),
                        go_at: c + 1,
                        run: run(k, t),
                    };
                } else {
                    cp = Some((c + len, k, t));
                }
            }
        }
        // Nothing changes until the next event: skip the quiet cycles (an
        // engine run is thousands of them).
        let mut step = 1;
        if !moved {
            let mut next = u64::MAX;
            let mut at = |x: u64| {
                if x > c {
                    next = next.min(x);
                }
            };
            // Events of the state before and after this edge (a token that
            // leaves at this edge still frees its engine one cycle later).
            for (k, s) in nxt.iter().chain(&stages).enumerate() {
                let k = k % ns;
                if s.token.is_some() {
                    let end = s.go_at + s.run;
                    at(s.go_at);
                    at(end);
                    at(end + 1);
                    if k == last {
                        at(end.saturating_sub(OUT_LEAD));
                    }
                }
            }
            if let Some((end, _, _)) = cp {
                at(end);
                at(end + 1);
            }
            if waiting {
                let d = tokens[next_in].delay as u64;
                at(c + 1 + (d - waited));
            }
            if next != u64::MAX {
                step = next - c;
                if waiting {
                    let d = tokens[next_in].delay as u64;
                    waited = (waited + step - 1).min(d);
                }
            }
        }
        stages = nxt;
        c += step;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_are_the_documented_ones() {
        assert_eq!((SEQ_CYCLES, RUN_CYCLES, OUT_LEAD), (2, 2, 3));
    }
}
