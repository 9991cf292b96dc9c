//! What each pipeline stage of a plan costs, for the partitioner and the
//! system report (RFC 0004): ROM and SRAM bits from the plan's macros (the
//! weight ROMs as the RTL's packed macros hold them, `MatRom::stored_bits`;
//! a pass over a matrix reads each of its macro words once, `tls_wfetch`),
//! logic in NAND2-equivalents from unit syntheses on a cell library, cycles
//! from the RFC
//! 0003 formulas, and the per-token traffic the energy model needs.

use crate::perf::{copy_cycles, instr_cycles, SEQ_OVERHEAD, STEP_OVERHEAD};
use crate::plan::{kv_bits_per_position, Instr, Plan};
use taalasc_partition::StageCost;

/// Logic of each unit in NAND2-equivalents, from the committed table of
/// standalone unit syntheses onto standard-cell libraries
/// (`backends/verilog/synth/units.tsv`, written by
/// `scripts/synth-units.sh`; method in `backends/verilog/synth/README.md`).
/// Units with a width parameter are a least-squares line over three or
/// more widths; the others are their one measured configuration.
pub mod cells {
    use std::sync::OnceLock;

    /// The committed unit table.
    pub const UNITS_TSV: &str = include_str!("../synth/units.tsv");
    /// The libraries the model may be fitted on, in order of preference:
    /// SkyWater sky130_fd_sc_hd (452 cells), then OSU 0.18 µm (32 cells).
    /// The first with three or more `tls_matvec` widths in the table is
    /// used ([`Model::library`]).
    pub const FIT_LIBRARIES: [&str; 2] = ["sky130_fd_sc_hd__tt_025C_1v80", "osu018_stdcells"];
    /// Generic Yosys cells measured for RFC 0003 (`taalasc synth --engine
    /// 1` on SmolLM2-135M at 16 and 64 lanes), used only for what the unit
    /// table lacks: `(unit, generic cells)`. `tls_matvec` is
    /// `9_309 + 847 * LANES`. An engine's glue (sequencer, decode, port muxes) is never
    /// synthesized standalone; `tls_embed` and `tls_out` were round
    /// figures (assumptions).
    pub const GENERIC: [(&str, f64); 7] = [
        ("tls_attn", 107_575.0),
        ("tls_norm", 29_029.0),
        ("tls_elem", 25_796.0),
        ("tls_rope", 22_631.0),
        ("tls_embed", 5_000.0),
        ("tls_out", 2_000.0),
        ("glue", 3_111.0),
    ];
    /// Generic Yosys cells per value lane of `tls_matvec`'s A8 load beyond
    /// the first (the unit table's rows are at `V` = 1). Measured with
    /// Yosys 0.23 `synth -flatten`, memories as blackboxes
    /// (`tls_macros_bb.v`), `LANES=4 XB=8 AW=12 WAW=10`: 14,054 cells at
    /// `V=1`, 19,921 at `V=8`, (19,921 - 14,054) / 7 = 838 a lane. Linear
    /// in `V` beyond 8 is an assumption.
    pub const MATVEC_LOAD_LANE_GENERIC: f64 = 838.0;
    /// Generic Yosys cells per element lane of `tls_embed` beyond the first
    /// (the table's rows are at `V` = 1). Measured as above, `LANES=64
    /// AW=12 WAW=10`: 7,649 cells at `V=1`, 23,759 at `V=8`, (23,759 -
    /// 7,649) / 7 = 2,301 a lane; linear in `V` is an assumption.
    pub const EMBED_LANE_GENERIC: f64 = 2_301.0;

    /// Generic cells of `tls_matvec` at `lanes` (RFC 0003 fit).
    pub fn generic_matvec(lanes: f64) -> f64 {
        9_309.0 + 847.0 * lanes
    }

    /// One row of the unit table.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Row {
        /// Top module (`tls_matvec`).
        pub unit: String,
        /// Parameter overrides (`LANES=16`); empty for the defaults.
        pub params: Vec<(String, i64)>,
        /// Liberty library name.
        pub library: String,
        /// Cell area, µm².
        pub area_um2: f64,
        /// Area in NAND2-equivalents of that library.
        pub nand2_eq: f64,
        /// Critical path, ns.
        pub crit_ns: f64,
        /// Critical path, FO4 of that library.
        pub crit_fo4: f64,
        /// Cells after mapping.
        pub cells: u64,
    }

    /// Parses the unit table; names the line and column of a bad field.
    pub fn parse(text: &str) -> Result<Vec<Row>, String> {
        let mut lines = text.lines().enumerate();
        let header = lines.next().map(|(_, l)| l).unwrap_or("");
        if !header.starts_with(
            "unit\tparams\tlibrary\tarea_um2\tnand2_eq\tcrit_ns\tcrit_fo4\tcells\tcheck",
        ) {
            return Err(format!("units.tsv: unexpected header {header:?}"));
        }
        let mut rows = Vec::new();
        for (i, l) in lines {
            if l.trim().is_empty() {
                continue;
            }
            let f: Vec<&str> = l.split('\t').collect();
            let at = |k: usize, what: &str| {
                format!("units.tsv line {}: column {what}: {:?}", i + 1, f.get(k))
            };
            if f.len() < 9 {
                return Err(format!(
                    "units.tsv line {}: {} columns, expected 9 or more",
                    i + 1,
                    f.len()
                ));
            }
            let num = |k: usize, what: &str| -> Result<f64, String> {
                f[k].parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x > 0.0)
                    .ok_or_else(|| at(k, what))
            };
            if f[8] != "ok" {
                return Err(at(8, "check (must be ok)"));
            }
            let params = if f[1] == "-" {
                Vec::new()
            } else {
                f[1].split(',')
                    .map(|p| {
                        let (k, v) = p.split_once('=').ok_or_else(|| at(1, "params"))?;
                        Ok((
                            k.to_string(),
                            v.parse::<i64>().map_err(|_| at(1, "params"))?,
                        ))
                    })
                    .collect::<Result<_, String>>()?
            };
            rows.push(Row {
                unit: f[0].to_string(),
                params,
                library: f[2].to_string(),
                area_um2: num(3, "area_um2")?,
                nand2_eq: num(4, "nand2_eq")?,
                crit_ns: num(5, "crit_ns")?,
                crit_fo4: num(6, "crit_fo4")?,
                cells: f[7].parse().map_err(|_| at(7, "cells"))?,
            });
        }
        Ok(rows)
    }

    /// A least-squares line `nand2_eq = base + per * x` over the widths
    /// `x` of one unit on one library.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Fit {
        /// The intercept, NAND2-eq.
        pub base: f64,
        /// NAND2-eq per unit of the width parameter.
        pub per: f64,
        /// `(x, measured NAND2-eq, residual = measured - fitted)`.
        pub points: Vec<(f64, f64, f64)>,
    }

    impl Fit {
        /// The fitted NAND2-eq at width `x`.
        pub fn at(&self, x: f64) -> f64 {
            self.base + self.per * x
        }
        /// The largest |residual| relative to its measurement.
        pub fn max_rel_residual(&self) -> f64 {
            self.points
                .iter()
                .map(|(_, y, r)| (r / y).abs())
                .fold(0.0, f64::max)
        }
    }

    /// Fits `unit` over parameter `param` on `library` (three or more
    /// widths required).
    pub fn fit(rows: &[Row], unit: &str, param: &str, library: &str) -> Result<Fit, String> {
        let pts: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.unit == unit && r.library == library)
            .filter_map(|r| {
                let x = r.params.iter().find(|(k, _)| k == param)?.1 as f64;
                Some((x, r.nand2_eq))
            })
            .collect();
        if pts.len() < 3 {
            return Err(format!(
                "units.tsv: {unit} has {} widths of {param} on {library}; a fit needs 3 or more",
                pts.len()
            ));
        }
        let n = pts.len() as f64;
        let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
        let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
        let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
        let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
        let per = sxy / sxx;
        let base = my - per * mx;
        Ok(Fit {
            base,
            per,
            points: pts
                .iter()
                .map(|&(x, y)| (x, y, y - (base + per * x)))
                .collect(),
        })
    }

    /// The one measured configuration of `unit` on `library` (no
    /// parameters overridden).
    pub fn single(rows: &[Row], unit: &str, library: &str) -> Result<f64, String> {
        rows.iter()
            .find(|r| r.unit == unit && r.library == library && r.params.is_empty())
            .map(|r| r.nand2_eq)
            .ok_or_else(|| format!("units.tsv: no row for {unit} on {library}"))
    }

    /// The logic model: NAND2-equivalents per unit.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Model {
        /// The library it is fitted on (one of [`FIT_LIBRARIES`]).
        pub library: String,
        /// `tls_matvec` against its MAC lanes (`LANES`).
        pub matvec: Fit,
        /// `tls_embed` against `LANES`, or a constant (`per` 0) converted
        /// from generic cells when the table lacks it.
        pub embed: Fit,
        /// `tls_attn`, its default configuration.
        pub attn: f64,
        /// `tls_norm`.
        pub norm: f64,
        /// `tls_elem`.
        pub elem: f64,
        /// `tls_rope`.
        pub rope: f64,
        /// `tls_out`.
        pub out: f64,
        /// Engine glue, converted from generic cells.
        pub glue: f64,
        /// NAND2-eq per generic Yosys cell: `tls_matvec` at 16 lanes,
        /// measured both ways. Converts what the table lacks.
        pub nand2_per_generic: f64,
        /// Units taken from generic cells times `nand2_per_generic`
        /// (not in the table): named in the report of the model.
        pub converted: Vec<String>,
    }

    /// Builds the model from a unit table.
    pub fn model_of(text: &str) -> Result<Model, String> {
        let rows = parse(text)?;
        let (l, matvec) = FIT_LIBRARIES
            .iter()
            .find_map(|l| fit(&rows, "tls_matvec", "LANES", l).ok().map(|f| (*l, f)))
            .ok_or_else(|| {
                "units.tsv: no library has 3 or more widths of tls_matvec".to_string()
            })?;
        let ratio = matvec.at(16.0) / generic_matvec(16.0);
        let mut converted = Vec::new();
        let mut get = |unit: &str| -> f64 {
            single(&rows, unit, l).unwrap_or_else(|_| {
                converted.push(unit.to_string());
                GENERIC
                    .iter()
                    .find(|(u, _)| *u == unit)
                    .map_or(0.0, |g| g.1)
                    * ratio
            })
        };
        let (attn, norm, elem, rope, out, glue) = (
            get("tls_attn"),
            get("tls_norm"),
            get("tls_elem"),
            get("tls_rope"),
            get("tls_out"),
            get("glue"),
        );
        let embed = fit(&rows, "tls_embed", "LANES", l).unwrap_or_else(|_| {
            converted.push("tls_embed".into());
            Fit {
                base: GENERIC[4].1 * ratio,
                per: 0.0,
                points: Vec::new(),
            }
        });
        Ok(Model {
            library: l.to_string(),
            matvec,
            embed,
            attn,
            norm,
            elem,
            rope,
            out,
            glue,
            nand2_per_generic: ratio,
            converted,
        })
    }

    /// The model of the committed table (parsed once; the crate's tests
    /// parse it, so a malformed table fails the tests, not a user's run).
    pub fn model() -> &'static Model {
        static M: OnceLock<Model> = OnceLock::new();
        M.get_or_init(|| model_of(UNITS_TSV).expect("units.tsv is checked by the tests"))
    }
}

/// NAND2-equivalents of one extra word pair of `tls_attn`'s A8 converter
/// (two 48-bit absolute values and compares, two 49-bit rounding shifters):
/// an estimate by counting gates, an assumption (no synthesis of the unit
/// at `V > 1` yet).
pub const ATTN_CONV_PAIR_NAND2: f64 = 2_000.0;
/// NAND2-equivalents of one extra output lane of `tls_attn` (an
/// `(ACW + 18) x 17`-bit multiplier, about 85 x 17, and its 85-bit rounding
/// shifter): an estimate by counting gates, an assumption.
pub const ATTN_OUT_LANE_NAND2: f64 = 10_000.0;
/// NAND2-equivalents of one extra block lane of `tls_attn`'s A8 converter
/// beyond its word pairs: the 48-bit max register, the `a8_shift` (48-bit
/// bit length, a 49-bit rounding shift and compare), the 256-bit mantissa
/// register and its share of the line-part multiplexer (32 words of 48
/// bits, `v/(32·CE)` ways): an estimate by counting gates (about 5 per
/// flip-flop, 3 per 2:1 multiplexer bit), an assumption.
pub const ATTN_CONV_LANE_NAND2: f64 = 8_000.0;

/// Extra NAND2-equivalents of an attention unit's scratchpad I/O at lines
/// of `v` words beyond the serial unit's (one word pair per conversion
/// cycle, one output lane): `min(v, 16)·CE` pairs in `CE` block lanes
/// (`CE = perf::attn_conv_blocks(v, bpc)`, blocks converted per step) and
/// `O = min(v, 2^tz(hd))` output lanes (`tls_attn.v`). Assumptions, see the
/// constants.
pub fn attn_io_extra_cells(head_dim: usize, bpc: usize, v: usize) -> f64 {
    let ce = crate::perf::attn_conv_blocks(v as u64, bpc as u64) as usize;
    let pairs = v.clamp(1, 16) * ce;
    let out = v.max(1).min(1 << head_dim.trailing_zeros());
    (pairs - 1) as f64 * ATTN_CONV_PAIR_NAND2
        + (ce - 1) as f64 * ATTN_CONV_LANE_NAND2
        + (out - 1) as f64 * ATTN_OUT_LANE_NAND2
}

/// Modelled logic of engine `e`, NAND2-equivalents (of the fit library,
/// [`cells::Model::library`]); `Budget::logic_mm2` scales it to the node.
pub fn engine_cells(plan: &Plan, e: usize) -> u64 {
    let eng = &plan.engines[e];
    let m = cells::model();
    let lanes = plan.lanes as f64;
    let mac_lanes = (plan.lanes * plan.rows) as f64;
    let attn_lanes = eng
        .attns
        .iter()
        .map(|a| (a.par.heads * a.par.positions * a.par.blocks) as f64)
        .fold(1.0, f64::max);
    let attn_io = eng
        .attns
        .iter()
        .map(|a| attn_io_extra_cells(a.head_dim, a.par.blocks, plan.rows))
        .fold(0.0, f64::max);
    let mut c = m.glue;
    for (unit, n) in [
        // MAC lanes: `lanes` per row, `rows` rows per cycle (the fit is
        // over LANES at one row: an assumption that a row of lanes costs
        // the same wherever it sits).
        // The A8 load reads a scratchpad line (`rows` words) per cycle:
        // `rows - 1` more converter lanes than the fitted unit.
        (
            "matvec",
            m.matvec.at(mac_lanes)
                + (plan.rows as f64 - 1.0) * cells::MATVEC_LOAD_LANE_GENERIC * m.nand2_per_generic,
        ),
        // HP·KP·BPC lanes each repeat the serial unit: an upper bound, an
        // assumption (the A8 converter, control and output path are shared);
        // plus the converter and output lanes of lines of `rows` words
        // (`attn_io_extra_cells`, an assumption).
        ("attn", m.attn * attn_lanes + attn_io),
        // One element-wise, norm and RoPE datapath per scratchpad lane
        // (`rows`): an assumption, the control (and the norm's divider
        // and rsqrt) is shared.
        ("norm", m.norm * plan.rows as f64),
        ("elem", m.elem * plan.rows as f64),
        ("rope", m.rope * plan.rows as f64),
        // min(rows, lanes) element lanes (one line write a step): the
        // fitted unit has one.
        (
            "embed",
            m.embed.at(lanes)
                + ((plan.rows.min(plan.lanes)) as f64 - 1.0)
                    * cells::EMBED_LANE_GENERIC
                    * m.nand2_per_generic,
        ),
        ("out", m.out),
    ] {
        if eng.uses(unit) {
            c += n;
        }
    }
    c.round() as u64
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
            c.cycles += copy_cycles(plan, n);
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

#[cfg(test)]
mod tests {
    use super::cells;

    #[test]
    fn the_committed_unit_table_gives_a_model() {
        let rows = cells::parse(cells::UNITS_TSV).unwrap();
        let libs: std::collections::BTreeSet<&str> =
            rows.iter().map(|r| r.library.as_str()).collect();
        assert_eq!(libs.len(), 2, "both libraries: {libs:?}");
        let m = cells::model_of(cells::UNITS_TSV).unwrap();
        for f in std::iter::once(&m.matvec)
            .chain((!m.converted.contains(&"tls_embed".to_string())).then_some(&m.embed))
        {
            assert!(f.points.len() >= 3);
            assert!(f.per > 0.0, "{f:?}");
            // A line through the widths: within 15 % at every point.
            assert!(f.max_rel_residual() < 0.15, "{f:?}");
        }
        for (u, x) in [
            ("attn", m.attn),
            ("norm", m.norm),
            ("elem", m.elem),
            ("rope", m.rope),
            ("out", m.out),
            ("glue", m.glue),
        ] {
            assert!(x > 100.0 && x < 1e6, "{u}: {x}");
        }
        // A MAC lane (8-bit activation, 4-bit code, 24-bit accumulator) is
        // several hundred NAND2-eq (FACTS.md: 793-822 measured alone).
        assert!(
            m.matvec.per > 300.0 && m.matvec.per < 3000.0,
            "{:?}",
            m.matvec
        );
    }

    #[test]
    fn a_malformed_table_is_an_error_naming_the_line() {
        let head =
            "unit\tparams\tlibrary\tarea_um2\tnand2_eq\tcrit_ns\tcrit_fo4\tcells\tcheck\tseconds\n";
        let e =
            cells::parse(&format!("{head}tls_norm\t-\tlib\t10\tx\t1\t1\t5\tok\t1\n")).unwrap_err();
        assert!(e.contains("line 2") && e.contains("nand2_eq"), "{e}");
        let e = cells::parse(&format!(
            "{head}tls_norm\t-\tlib\t10\t3\t1\t1\t5\tFAILED\t1\n"
        ))
        .unwrap_err();
        assert!(e.contains("check"), "{e}");
        assert!(cells::parse("unit\tfoo\n").is_err());
        // Two widths are not a fit.
        let two = format!("{head}tls_matvec\tLANES=4\tL\t10\t3\t1\t1\t5\tok\t1\ntls_matvec\tLANES=16\tL\t20\t6\t1\t1\t5\tok\t1\n");
        let rows = cells::parse(&two).unwrap();
        assert!(cells::fit(&rows, "tls_matvec", "LANES", "L")
            .unwrap_err()
            .contains("3 or more"));
    }

    #[test]
    fn the_fit_is_least_squares() {
        let head =
            "unit\tparams\tlibrary\tarea_um2\tnand2_eq\tcrit_ns\tcrit_fo4\tcells\tcheck\tseconds\n";
        let t = format!("{head}u\tW=1\tL\t1\t12\t1\t1\t1\tok\t1\nu\tW=2\tL\t1\t14\t1\t1\t1\tok\t1\nu\tW=3\tL\t1\t19\t1\t1\t1\tok\t1\n");
        let f = cells::fit(&cells::parse(&t).unwrap(), "u", "W", "L").unwrap();
        // x = 1, 2, 3; y = 12, 14, 19: slope 3.5, intercept 8 (by hand).
        assert!(
            (f.per - 3.5).abs() < 1e-12 && (f.base - 8.0).abs() < 1e-12,
            "{f:?}"
        );
        assert!((f.points[1].2 - (14.0 - 15.0)).abs() < 1e-12);
    }
}
