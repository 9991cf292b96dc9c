//! Legalization of a lowered plan: the pipeline stages of its schedule,
//! the chip interface widths, and the limits of the printers' fixed field
//! widths. Computed once, stored in the [`Plan`]; the printers only read
//! them (CIRCT's PrepareForEmission before ExportVerilog).

use super::{addr_bits, Instr, Plan, PlanError, Step};

/// Program counter bits of every engine.
pub const PC_BITS: u32 = 10;
/// Position bits of the chip interface.
pub const POS_BITS: u32 = 16;

/// Widths of the chip interface, derived from the plan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Widths {
    /// Scratchpad address bits (every engine).
    pub aw: u32,
    /// Token bits: addresses `vocab` entries.
    pub tw: u32,
    /// Logit index bits: counts up to `vocab` (`o_index`, `out_index`).
    pub vw: u32,
    /// Words per scratchpad write line (the plan's rows per cycle): the
    /// debug ports carry a mask and a line of this many words.
    pub line: u32,
}

impl Widths {
    /// The widths of `plan` (as [`Plan::widths`], which stores them).
    pub fn of(plan: &Plan) -> Widths {
        plan.widths
    }

    fn compute(plan: &Plan) -> Widths {
        Widths {
            aw: plan.spad_aw,
            tw: addr_bits(plan.vocab),
            vw: addr_bits(plan.vocab + 1),
            line: plan.rows as u32,
        }
    }
}

/// One pipeline stage of the chip: a run of one engine's program, and the
/// copies that bring its inputs from the previous stage's engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stage {
    /// The engine that runs the stage.
    pub engine: usize,
    /// First instruction of the run.
    pub pc0: usize,
    /// One past the run's last instruction.
    pub pc1: usize,
    /// `(src, dst, n)`: words copied from the previous stage's engine.
    pub copies: Vec<(u32, u32, usize)>,
    /// Some copied value is `W48` (not a residual): no link may feed it.
    pub wide_inputs: bool,
}

/// The schedule as pipeline stages. Every copy must come from the
/// previous stage's engine (true of every family the frontends lower: the
/// residual stream flows from layer to layer), so that a stage's inputs
/// are handed over before that engine takes its next token.
fn stages_of(schedule: &[Step]) -> Result<Vec<Stage>, String> {
    let mut out: Vec<Stage> = Vec::new();
    let mut pending = Vec::new();
    let mut any_wide = false;
    for st in schedule {
        match st {
            Step::Copy {
                from,
                src,
                to,
                dst,
                n,
                wide,
            } => {
                let prev = out.last().map(|s| s.engine);
                if prev != Some(*from) {
                    return Err(format!(
                        "a copy into engine {to} comes from engine {from}, not from the previous stage's engine: the token pipeline cannot hand it over"
                    ));
                }
                pending.push((*src, *dst, *n));
                any_wide |= *wide;
            }
            Step::Run { engine, pc0, pc1 } => out.push(Stage {
                engine: *engine,
                pc0: *pc0,
                pc1: *pc1,
                copies: std::mem::take(&mut pending),
                wide_inputs: std::mem::take(&mut any_wide),
            }),
        }
    }
    if !pending.is_empty() || out.is_empty() {
        return Err("the schedule must end with a run of the head".into());
    }
    Ok(out)
}

/// Checks the plan fits the printers' fixed field widths and forms a
/// token pipeline; `legalize` runs it, so every plan `plan()` returns
/// can be printed.
pub fn check_limits(plan: &Plan) -> Result<(), String> {
    check_fields(plan)?;
    stages_of(&plan.schedule)?;
    check_lines(plan)?;
    check_context(plan)
}

/// The copy path and the logits port move whole scratchpad lines
/// (`tls_out`, the chip's copy unit): every vector they move starts on a
/// line (the allocator aligns every vector to `plan.rows` words).
fn check_lines(plan: &Plan) -> Result<(), String> {
    let v = plan.rows.max(1);
    for st in &plan.schedule {
        if let Step::Copy { src, dst, .. } = st {
            if !(*src as usize).is_multiple_of(v) || !(*dst as usize).is_multiple_of(v) {
                return Err(format!(
                    "a copy from word {src} to word {dst} does not start on a scratchpad line of {v} words"
                ));
            }
        }
    }
    for e in &plan.engines {
        for i in &e.program {
            if let Instr::Out { src, .. } = i {
                if !(*src as usize).is_multiple_of(v) {
                    return Err(format!(
                        "engine {}: the logits at word {src} do not start on a scratchpad line of {v} words",
                        e.index
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Program counter, matrix and RoPE fields of every engine.
fn check_fields(plan: &Plan) -> Result<(), String> {
    for e in &plan.engines {
        if e.program.len() >= (1 << PC_BITS) {
            return Err(format!(
                "engine {} has {} instructions; at most {} fit its program counter",
                e.index,
                e.program.len(),
                (1 << PC_BITS) - 1
            ));
        }
        for m in &e.mats {
            if m.rows >= 1 << 24 || m.cols >= 1 << 20 {
                return Err(format!(
                    "matrix `{}` is {}x{}: beyond 2^24 rows or 2^20 columns",
                    m.weight, m.rows, m.cols
                ));
            }
        }
        for i in &e.program {
            if let Instr::Rope {
                heads, head_dim, ..
            } = i
            {
                if *heads >= 256 || *head_dim >= 1024 {
                    return Err(format!(
                        "RoPE over {heads} heads of {head_dim}: beyond 255 heads or 1023 features"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The position field of the chip interface.
fn check_context(plan: &Plan) -> Result<(), String> {
    if plan.context > 1 << POS_BITS {
        return Err(format!(
            "context {} is beyond 2^{POS_BITS} positions",
            plan.context
        ));
    }
    Ok(())
}

/// Checks the limits of a lowered plan and stores what the printers
/// derive from it: its pipeline stages and its interface widths.
pub(super) fn legalize(mut plan: Plan) -> Result<Plan, PlanError> {
    check_fields(&plan).map_err(PlanError::Limit)?;
    plan.stages = stages_of(&plan.schedule).map_err(PlanError::Limit)?;
    check_context(&plan).map_err(PlanError::Limit)?;
    plan.widths = Widths::compute(&plan);
    Ok(plan)
}
