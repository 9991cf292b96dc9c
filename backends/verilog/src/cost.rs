//! What each pipeline stage of a plan costs, for the partitioner and the
//! system report (RFC 0004): ROM and SRAM bits from the plan's macros (the
//! weight ROMs as the RTL's packed macros hold them, `MatRom::stored_bits`;
//! a pass over a matrix reads each of its macro words once, `tls_wfetch`),
//! logic from a cell model calibrated on Yosys runs, cycles from the RFC
//! 0003 formulas, and the per-token traffic the energy model needs.

use crate::perf::{instr_cycles, COPY_OVERHEAD, SEQ_OVERHEAD, STEP_OVERHEAD};
use crate::plan::{kv_bits_per_position, Instr, Plan};
use taalasc_partition::StageCost;

/// Generic Yosys cells of each unit, measured by `taalasc synth --engine 1`
/// on SmolLM2-135M at 16 and 64 lanes (RFC 0003 figures); the
/// matrix-vector unit grows with its lanes. `embed` and `out` were not
/// measured on their own; they are small counters and muxes and are
/// given a round figure (an assumption).
pub mod cells {
    /// `tls_matvec` cells independent of the lane count (the fit's
    /// intercept).
    pub const MATVEC_BASE: u64 = 9_309;
    /// `tls_matvec` cells added by each MAC lane (the fit's slope).
    pub const MATVEC_PER_LANE: u64 = 847;
    /// `tls_attn`: the sum of two measured modules of its hierarchy (the
    /// serial unit, `HP = KP = BPC = 1`).
    pub const ATTN: u64 = 100_619 + 6_956;
    /// `tls_attn`: cells added by each 32-block lane beyond the first
    /// (`HP·KP·BPC` lanes). An assumption, not measured: each lane repeats
    /// the whole serial unit's cells, an upper bound (the A8 converter,
    /// control and output path are not repeated).
    pub const ATTN_PER_LANE: u64 = ATTN;
    /// `tls_norm` (RMSNorm and LayerNorm).
    pub const NORM: u64 = 29_029;
    /// `tls_elem` (residual add, W48 add and multiply, SiLU, GELU, copy).
    pub const ELEM: u64 = 25_796;
    /// `tls_rope`.
    pub const ROPE: u64 = 22_631;
    /// `tls_embed` (an assumption, not measured).
    pub const EMBED: u64 = 5_000;
    /// `tls_out` (an assumption, not measured).
    pub const OUT: u64 = 2_000;
    /// An engine's own logic outside its units, added once per engine.
    pub const GLUE: u64 = 3_111;
}

/// Modelled generic cells of engine `e`.
pub fn engine_cells(plan: &Plan, e: usize) -> u64 {
    let eng = &plan.engines[e];
    let mut c = cells::GLUE;
    for (unit, n) in [
        (
            "matvec",
            // MAC lanes: `lanes` per row, `rows` rows per cycle.
            cells::MATVEC_BASE + cells::MATVEC_PER_LANE * (plan.lanes * plan.rows) as u64,
        ),
        (
            "attn",
            eng.attns
                .iter()
                .map(|a| {
                    let lanes = (a.par.heads * a.par.positions * a.par.blocks) as u64;
                    cells::ATTN + cells::ATTN_PER_LANE * (lanes - 1)
                })
                .max()
                .unwrap_or(cells::ATTN),
        ),
        ("norm", cells::NORM),
        ("elem", cells::ELEM),
        ("rope", cells::ROPE),
        ("embed", cells::EMBED),
        ("out", cells::OUT),
    ] {
        if eng.uses(unit) {
            c += n;
        }
    }
    c
}

/// The cost of every pipeline stage of `plan`, at the middle of the
/// context. An engine's memories and logic are charged to the first stage
/// that runs on it (a plan with a shared I/O engine charges the head's
/// ROM to the embedding stage).
pub fn stage_costs(plan: &Plan) -> Vec<StageCost> {
    stage_costs_at(plan, plan.context / 2)
}

/// [`stage_costs`] for the token at position `pos` (0-based: attention
/// covers `pos + 1` positions, or the window). Memories and logic do not
/// depend on `pos`; cycles, MACs and SRAM traffic do. `pos` may lie beyond
/// the built context (the report's curves model a build for that context).
pub fn stage_costs_at(plan: &Plan, pos: usize) -> Vec<StageCost> {
    let st = plan.stages();
    let mut charged = vec![false; plan.engines.len()];
    let mut out = Vec::with_capacity(st.len());
    for (k, s) in st.iter().enumerate() {
        let e = &plan.engines[s.engine];
        let first_use = !charged[s.engine];
        charged[s.engine] = true;
        let mut c = StageCost {
            name: e.role.clone(),
            rom_bits: 0,
            sram_bits: 0,
            kv_bits_per_position: 0,
            fixed_sram_bits: 0,
            logic_cells: 0,
            cycles: STEP_OVERHEAD,
            macs: 0,
            rom_read_bits: 0,
            sram_access_bits: 0,
            out_bits: 0,
        };
        if first_use {
            c.rom_bits = e.mats.iter().map(|m| m.stored_bits).sum::<u64>()
                + e.gains
                    .iter()
                    .chain(&e.biases)
                    .chain(&e.ropes)
                    .map(|v| v.width as u64 * v.depth as u64)
                    .sum::<u64>()
                + ["norm", "elem", "attn"]
                    .iter()
                    .filter(|u| e.uses(u))
                    .map(|u| {
                        // The element-wise unit has one table copy per lane.
                        let copies = if *u == "elem" { plan.rows as u64 } else { 1 };
                        copies * crate::tables::unit_table_bits(u)
                    })
                    .sum::<u64>()
                + e.attns
                    .iter()
                    .map(|a| a.par.extra_table_bits())
                    .sum::<u64>();
            c.fixed_sram_bits = e.spad_words as u64 * 48;
            c.kv_bits_per_position = e
                .attns
                .iter()
                .map(|a| kv_bits_per_position(a.kv_heads, a.head_dim))
                .sum();
            c.sram_bits = c.fixed_sram_bits + e.attns.iter().map(|a| a.kv_bits).sum::<u64>();
            c.logic_cells = engine_cells(plan, s.engine);
        }
        // Copies into this stage.
        for &(_, _, n) in &s.copies {
            c.cycles += n as u64 + COPY_OVERHEAD;
            c.sram_access_bits += 2 * 48 * n as u64;
        }
        for i in &e.program[s.pc0..s.pc1] {
            c.cycles += SEQ_OVERHEAD + instr_cycles(plan, s.engine, i, pos);
            match i {
                Instr::Linear {
                    mat, rows, cols, ..
                } => {
                    c.macs += (*rows * *cols) as u64;
                    c.rom_read_bits += e.mats[*mat].stored_bits;
                    c.sram_access_bits += 48 * (*rows + *cols) as u64;
                }
                Instr::Embed { mat, cols, .. } => {
                    // One row group's words of every macro (a word holds
                    // the group's `slices` rows).
                    let m = &e.mats[*mat];
                    c.rom_read_bits += m.stored_bits / m.groups.max(1) as u64;
                    c.sram_access_bits += 48 * *cols as u64;
                }
                Instr::Attn { unit, .. } => {
                    let a = &e.attns[*unit];
                    let n = if a.window > 0 {
                        (pos + 1).min(a.window)
                    } else {
                        pos + 1
                    } as u64;
                    // q·k and p·v over n positions for every head.
                    c.macs += 2 * (a.heads * a.head_dim) as u64 * n;
                    let per_pos = kv_bits_per_position(a.kv_heads, a.head_dim);
                    // Append this position, then read the window (every
                    // head group reads its KV head once per query head).
                    c.sram_access_bits += per_pos
                        + per_pos * n * (a.heads / a.kv_heads.max(1)) as u64
                        + 48 * 2 * (a.heads * a.head_dim) as u64;
                }
                Instr::Norm { n, .. } | Instr::Elem { n, .. } | Instr::Out { n, .. } => {
                    c.sram_access_bits += 2 * 48 * *n as u64;
                }
                Instr::Rope {
                    heads, head_dim, ..
                } => {
                    c.sram_access_bits += 2 * 48 * (*heads * *head_dim) as u64;
                }
            }
        }
        if let Some(next) = st.get(k + 1) {
            c.out_bits = 32 * next.copies.iter().map(|&(_, _, n)| n as u64).sum::<u64>();
        }
        out.push(c);
    }
    out
}
