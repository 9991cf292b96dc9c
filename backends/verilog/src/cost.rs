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
/// Every unit is a least-squares fit over three or more widths of its
/// parallelism parameter(s) (a line, or a plane when a second parameter
/// was varied: `tls_matvec` in MAC lanes and line width, `tls_embed` in
/// lanes and element lanes). What the table lacks falls back to generic
/// Yosys cells times a measured ratio and is named in
/// [`Model::converted`].
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
    /// `9_309 + 847 * LANES`. An engine's glue (sequencer, decode, port
    /// muxes, the copy path) is part of the generated engine module, never
    /// a unit, so it is never synthesized standalone: always this figure
    /// converted (an assumption). `tls_embed`, `tls_out` and `tls_wfetch`
    /// are round figures (assumptions).
    pub const GENERIC: [(&str, f64); 8] = [
        ("tls_attn", 107_575.0),
        ("tls_norm", 29_029.0),
        ("tls_elem", 25_796.0),
        ("tls_rope", 22_631.0),
        ("tls_embed", 5_000.0),
        ("tls_out", 2_000.0),
        ("tls_wfetch", 500.0),
        ("glue", 3_111.0),
    ];
    /// Generic Yosys cells per value lane of `tls_matvec`'s A8 load beyond
    /// the first, used only when the table has no `ROWS > 1` row of
    /// `tls_matvec`. Measured with Yosys 0.23 `synth -flatten`, memories as
    /// blackboxes (`tls_macros_bb.v`), `LANES=4 XB=8 AW=12 WAW=10`: 14,054
    /// cells at `V=1`, 19,921 at `V=8`, (19,921 - 14,054) / 7 = 838 a
    /// lane. Linear in `V` beyond 8 is an assumption.
    pub const MATVEC_LOAD_LANE_GENERIC: f64 = 838.0;
    /// Generic Yosys cells per element lane of `tls_embed` beyond the
    /// first, used only when the table has no `V > 1` row of `tls_embed`.
    /// Measured as above, `LANES=64 AW=12 WAW=10`: 7,649 cells at `V=1`,
    /// 23,759 at `V=8`, (23,759 - 7,649) / 7 = 2,301 a lane; linear in `V`
    /// is an assumption.
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

    impl Row {
        /// The value of parameter `k`, or `default` when not overridden.
        pub fn param(&self, k: &str, default: i64) -> i64 {
            self.params
                .iter()
                .find(|(n, _)| n == k)
                .map_or(default, |p| p.1)
        }
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

    /// A least-squares fit `nand2_eq = base + Σ per[k] · x[k]` over the
    /// widths of one unit on one library.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Fit {
        /// The intercept, NAND2-eq.
        pub base: f64,
        /// NAND2-eq per unit of each regressor, in the order given to
        /// [`fit_plane`] (a line has one).
        pub per: Vec<f64>,
        /// `(x, measured NAND2-eq, residual = measured - fitted)`.
        pub points: Vec<(Vec<f64>, f64, f64)>,
    }

    impl Fit {
        /// The fitted NAND2-eq at `x` (one value per regressor).
        pub fn at(&self, x: &[f64]) -> f64 {
            self.base + self.per.iter().zip(x).map(|(p, x)| p * x).sum::<f64>()
        }
        /// The largest |residual| relative to its measurement.
        pub fn max_rel_residual(&self) -> f64 {
            self.points
                .iter()
                .map(|(_, y, r)| (r / y).abs())
                .fold(0.0, f64::max)
        }
    }

    /// Least squares over `pts` (`(x, y)`, every `x` of the same length
    /// k): the normal equations of `[1, x]`, solved by Gaussian
    /// elimination with partial pivoting. Needs k + 2 or more points
    /// (three for a line) and regressors that vary independently.
    pub fn least_squares(what: &str, pts: &[(Vec<f64>, f64)]) -> Result<Fit, String> {
        let k = pts.first().map_or(0, |p| p.0.len());
        if pts.len() < k + 2 {
            return Err(format!(
                "units.tsv: {what} has {} widths; a fit in {k} parameter(s) needs {} or more",
                pts.len(),
                k + 2
            ));
        }
        let n = k + 1;
        // Augmented normal equations A^T A c = A^T y, A = [1, x].
        let mut m = vec![vec![0.0; n + 1]; n];
        for (x, y) in pts {
            let row: Vec<f64> = std::iter::once(1.0).chain(x.iter().copied()).collect();
            for (mi, ri) in m.iter_mut().zip(&row) {
                for (mij, rj) in mi.iter_mut().zip(&row) {
                    *mij += ri * rj;
                }
                mi[n] += ri * y;
            }
        }
        let diag: Vec<f64> = (0..n).map(|i| m[i][i]).collect();
        for col in 0..n {
            let piv = (col..n)
                .max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))
                .expect("n > 0");
            // Relative to the column's own sum of squares: a regressor
            // that is constant (or a combination of the others) leaves
            // only rounding here.
            if m[piv][col].abs() <= 1e-9 * diag[col] {
                return Err(format!(
                    "units.tsv: {what}: the widths do not vary parameter {col} independently"
                ));
            }
            m.swap(col, piv);
            let p = m[col].clone();
            for (r, row) in m.iter_mut().enumerate() {
                if r != col {
                    let f = row[col] / p[col];
                    for (x, pc) in row.iter_mut().zip(&p).skip(col) {
                        *x -= f * pc;
                    }
                }
            }
        }
        let c: Vec<f64> = (0..n).map(|i| m[i][n] / m[i][i]).collect();
        let mut fit = Fit {
            base: c[0],
            per: c[1..].to_vec(),
            points: Vec::new(),
        };
        fit.points = pts
            .iter()
            .map(|(x, y)| (x.clone(), *y, y - fit.at(x)))
            .collect();
        Ok(fit)
    }

    /// Fits `unit` on `library` over the regressors `x(row)` (rows for
    /// which it gives `None` are left out).
    pub fn fit_plane(
        rows: &[Row],
        unit: &str,
        library: &str,
        x: impl Fn(&Row) -> Option<Vec<f64>>,
    ) -> Result<Fit, String> {
        let pts: Vec<(Vec<f64>, f64)> = rows
            .iter()
            .filter(|r| r.unit == unit && r.library == library)
            .filter_map(|r| Some((x(r)?, r.nand2_eq)))
            .collect();
        least_squares(&format!("{unit} on {library}"), &pts)
    }

    /// Fits `unit` over parameter `param` on `library` (a line; three or
    /// more widths required; rows without `param` are left out).
    pub fn fit(rows: &[Row], unit: &str, param: &str, library: &str) -> Result<Fit, String> {
        fit_plane(rows, unit, library, |r| {
            Some(vec![r.params.iter().find(|(k, _)| k == param)?.1 as f64])
        })
        .map_err(|e| format!("{e} (of {param})"))
    }

    /// The regressors of `tls_matvec`: MAC lanes `LANES·ROWS` and extra
    /// line words `V - 1` (`V` = `ROWS` unless set, as in every engine).
    pub fn matvec_x(r: &Row) -> Option<Vec<f64>> {
        let lanes = r.param("LANES", 0);
        let rows = r.param("ROWS", 1);
        (lanes > 0).then(|| vec![(lanes * rows) as f64, (r.param("V", rows) - 1) as f64])
    }

    /// The regressors of `tls_embed`: `LANES` and extra element lanes
    /// `min(V, LANES) - 1`.
    pub fn embed_x(r: &Row) -> Option<Vec<f64>> {
        let lanes = r.param("LANES", 0);
        (lanes > 0).then(|| vec![lanes as f64, (r.param("V", 1).min(lanes) - 1) as f64])
    }

    /// The regressors of `tls_attn`, at `V` = 1: its lanes `HP·KP·BPC`
    /// and extra query heads `HP - 1` (a head in parallel costs more than a
    /// key position: its own softmax state and output accumulators).
    pub fn attn_x(r: &Row) -> Option<Vec<f64>> {
        let hp = r.param("HP", 1);
        (r.param("V", 1) == 1).then(|| {
            vec![
                (hp * r.param("KP", 1) * r.param("BPC", 1)) as f64,
                (hp - 1) as f64,
            ]
        })
    }

    /// The regressor of the per-token units (`tls_norm`, `tls_elem`,
    /// `tls_rope`, `tls_out`): the line width `V`.
    pub fn line_x(r: &Row) -> Option<Vec<f64>> {
        Some(vec![r.param("V", 1) as f64])
    }

    /// The regressor of `tls_wfetch`: `LANES·ROWS` expanded codes.
    pub fn wfetch_x(r: &Row) -> Option<Vec<f64>> {
        let lanes = r.param("LANES", 0);
        (lanes > 0).then(|| vec![(lanes * r.param("ROWS", 1)) as f64])
    }

    /// The logic model: NAND2-equivalents per unit, each a fit over its
    /// widths (see the `*_x` functions for the regressors).
    #[derive(Clone, Debug, PartialEq)]
    pub struct Model {
        /// The library it is fitted on (one of [`FIT_LIBRARIES`]).
        pub library: String,
        /// `tls_matvec` over [`matvec_x`]; `per[1]` is 0 when the table
        /// has no `ROWS > 1` row (then [`MATVEC_LOAD_LANE_GENERIC`]).
        pub matvec: Fit,
        /// `tls_embed` over [`embed_x`] (`per[1]` as above, then
        /// [`EMBED_LANE_GENERIC`]).
        pub embed: Fit,
        /// `tls_attn` over [`attn_x`] (`per[1]` is 0 when the table has
        /// no `HP > 1` row).
        pub attn: Fit,
        /// `tls_norm` over `V`.
        pub norm: Fit,
        /// `tls_elem` over `V`.
        pub elem: Fit,
        /// `tls_rope` over `V`.
        pub rope: Fit,
        /// `tls_out` over `V`.
        pub out: Fit,
        /// `tls_wfetch` over `LANES·ROWS` (one per weight matrix).
        pub wfetch: Fit,
        /// Engine glue, converted from generic cells (never a unit).
        pub glue: f64,
        /// NAND2-eq per generic Yosys cell: `tls_matvec` at 16 lanes,
        /// measured both ways. Converts what the table lacks.
        pub nand2_per_generic: f64,
        /// What is taken from generic cells times `nand2_per_generic`
        /// (not in the table), named in the report of the model.
        pub converted: Vec<String>,
    }

    /// Builds the model from a unit table.
    pub fn model_of(text: &str) -> Result<Model, String> {
        let rows = parse(text)?;
        let l = FIT_LIBRARIES
            .iter()
            .find(|l| fit(&rows, "tls_matvec", "LANES", l).is_ok())
            .ok_or_else(|| {
                "units.tsv: no library has 3 or more widths of tls_matvec".to_string()
            })?;
        let mut converted = Vec::new();
        // A plane when a second parameter was varied, else a line in the
        // first with the second's slope 0 (its generic fallback named).
        let mut plane = |unit: &str, x: fn(&Row) -> Option<Vec<f64>>| -> Option<Fit> {
            fit_plane(&rows, unit, l, x).ok().or_else(|| {
                let f = fit_plane(&rows, unit, l, |r| {
                    x(r).filter(|v| v[1] == 0.0).map(|v| vec![v[0]])
                })
                .ok()?;
                converted.push(format!("{unit} (second regressor)"));
                Some(Fit {
                    base: f.base,
                    per: vec![f.per[0], 0.0],
                    points: f.points,
                })
            })
        };
        let matvec = plane("tls_matvec", matvec_x)
            .ok_or_else(|| "units.tsv: no fit of tls_matvec".to_string())?;
        let embed = plane("tls_embed", embed_x);
        let attn = plane("tls_attn", attn_x);
        let ratio = matvec.at(&[16.0, 0.0]) / generic_matvec(16.0);
        let generic = |unit: &str| {
            GENERIC
                .iter()
                .find(|(u, _)| *u == unit)
                .map_or(0.0, |g| g.1)
                * ratio
        };
        let embed = embed.unwrap_or_else(|| {
            converted.push("tls_embed".into());
            Fit {
                base: generic("tls_embed"),
                per: vec![0.0, 0.0],
                points: Vec::new(),
            }
        });
        // Per lane of HP·KP·BPC, at the generic figure of a serial unit.
        let attn = attn.unwrap_or_else(|| {
            converted.push("tls_attn".into());
            Fit {
                base: 0.0,
                per: vec![generic("tls_attn"), 0.0],
                points: Vec::new(),
            }
        });
        // A line, or the generic figure (per-lane copies for the units
        // replicated per line word: an assumption).
        let mut line = |unit: &str, x: fn(&Row) -> Option<Vec<f64>>, per_lane: bool| {
            fit_plane(&rows, unit, l, x).unwrap_or_else(|_| {
                converted.push(unit.to_string());
                let g = generic(unit);
                Fit {
                    base: if per_lane { 0.0 } else { g },
                    per: vec![if per_lane { g } else { 0.0 }],
                    points: Vec::new(),
                }
            })
        };
        let norm = line("tls_norm", line_x, true);
        let elem = line("tls_elem", line_x, true);
        let rope = line("tls_rope", line_x, true);
        let out = line("tls_out", line_x, false);
        let wfetch = line("tls_wfetch", wfetch_x, false);
        converted.push("glue".into());
        Ok(Model {
            library: l.to_string(),
            matvec,
            embed,
            attn,
            norm,
            elem,
            rope,
            out,
            wfetch,
            glue: generic("glue"),
            nand2_per_generic: ratio,
            converted,
        })
    }

    /// The rows of the committed table (parsed once).
    pub fn rows() -> &'static [Row] {
        static R: OnceLock<Vec<Row>> = OnceLock::new();
        R.get_or_init(|| parse(UNITS_TSV).expect("units.tsv is checked by the tests"))
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
/// Every unit is its fit over the widths measured in `units.tsv`
/// (`backends/verilog/synth/README.md`); what is extrapolated or assumed
/// is said per term.
pub fn engine_cells(plan: &Plan, e: usize) -> u64 {
    let eng = &plan.engines[e];
    let m = cells::model();
    let lanes = plan.lanes as f64;
    let rows = plan.rows as f64;
    // The widest attention unit's lanes and query heads in parallel.
    let (attn_lanes, attn_heads) = eng
        .attns
        .iter()
        .map(|a| {
            (
                (a.par.heads * a.par.positions * a.par.blocks) as f64,
                a.par.heads as f64,
            )
        })
        .fold((1.0, 1.0), |m, x| if x.0 > m.0 { x } else { m });
    let attn_io = eng
        .attns
        .iter()
        .map(|a| attn_io_extra_cells(a.head_dim, a.par.blocks, plan.rows))
        .fold(0.0, f64::max);
    // Where the table has no second parameter, its slope is 0 and the
    // generic per-lane figure stands in (named in `Model::converted`).
    let matvec_lane = if m.matvec.per[1] != 0.0 {
        m.matvec.per[1]
    } else {
        cells::MATVEC_LOAD_LANE_GENERIC * m.nand2_per_generic
    };
    let embed_lane = if m.embed.per[1] != 0.0 {
        m.embed.per[1]
    } else {
        cells::EMBED_LANE_GENERIC * m.nand2_per_generic
    };
    let mut c = m.glue;
    for (unit, n) in [
        // `rows` rows of `lanes` MACs and a scratchpad line of `rows`
        // words (`V = ROWS`): the plane over LANES·ROWS and V - 1.
        (
            "matvec",
            m.matvec.at(&[lanes * rows, 0.0]) + (rows - 1.0) * matvec_lane,
        ),
        // The plane over HP·KP·BPC lanes and HP - 1 (measured at one
        // model shape, at V = 1; other head sizes and contexts are an
        // assumption), plus the converter and output lanes of lines of
        // `rows` words (`attn_io_extra_cells`, an assumption).
        ("attn", m.attn.at(&[attn_lanes, attn_heads - 1.0]) + attn_io),
        // The per-token units at the line width V = rows.
        ("norm", m.norm.at(&[rows])),
        ("elem", m.elem.at(&[rows])),
        ("rope", m.rope.at(&[rows])),
        // min(rows, lanes) element lanes (one line write a step).
        (
            "embed",
            m.embed.at(&[lanes, 0.0]) + (rows.min(lanes) - 1.0) * embed_lane,
        ),
        ("out", m.out.at(&[rows])),
    ] {
        if eng.uses(unit) {
            c += n;
        }
    }
    // One weight fetch adapter per weight bank, over its LANES·ROWS codes
    // (measured at ROWS = 1: a row slice costing as many lanes is an
    // assumption).
    c += eng.banks.len() as f64 * m.wfetch.at(&[lanes * rows]);
    c += rom_mux_cells(plan, e);
    c.round() as u64
}

/// The timing evidence behind the clock of `plan`: the longest critical
/// path among the units its engines instantiate (chip-to-chip links, at
/// 13-28 FO4 in the table, are left out), from the synthesized rows
/// of `units.tsv` on the fit library ([`cells::Model::library`]), each
/// unit at the design's own width when that row exists, else at the
/// nearest synthesized width (wider designs have longer paths, so the
/// figure is then a lower bound). `node_fo4_ps`: the budget's FO4 figure
/// and its source; `None` when the plan uses no synthesized unit.
pub fn clock_evidence(
    plan: &Plan,
    (node_fo4_ps, node_fo4_source): (f64, &str),
) -> Option<taalasc_partition::ClockEvidence> {
    let lib = &cells::model().library;
    let rows = cells::rows();
    let lanes = plan.lanes as f64;
    let r = plan.rows as f64;
    // (table unit, regressors of a row, the design's regressors, whether
    // a row can be at the design's width, a parameter it must also have)
    type Want<'a> = (
        &'a str,
        fn(&cells::Row) -> Option<Vec<f64>>,
        Vec<f64>,
        bool,
        Option<(&'a str, i64)>,
    );
    let mut wanted: Vec<Want> = Vec::new();
    let uses = |u: &str| plan.engines.iter().any(|e| e.uses(u));
    if uses("matvec") {
        wanted.push((
            "tls_matvec",
            cells::matvec_x,
            vec![lanes * r, r - 1.0],
            true,
            None,
        ));
        wanted.push(("tls_wfetch", cells::wfetch_x, vec![lanes * r], true, None));
    }
    if uses("embed") {
        wanted.push((
            "tls_embed",
            cells::embed_x,
            vec![lanes, r.min(lanes) - 1.0],
            true,
            None,
        ));
    }
    for e in &plan.engines {
        for a in &e.attns {
            let x = vec![
                (a.par.heads * a.par.positions * a.par.blocks) as f64,
                (a.par.heads - 1) as f64,
            ];
            // The table's attention rows are at V = 1 (at a wider line
            // none is at the design's width) and one head size.
            wanted.push((
                "tls_attn",
                cells::attn_x,
                x,
                plan.rows == 1,
                Some(("HD", a.head_dim as i64)),
            ));
        }
    }
    for (u, t) in [
        ("norm", "tls_norm"),
        ("elem", "tls_elem"),
        ("rope", "tls_rope"),
        ("out", "tls_out"),
    ] {
        if uses(u) {
            wanted.push((t, cells::line_x, vec![r], true, None));
        }
    }
    let mut exact = true;
    let mut unmeasured = Vec::new();
    let mut worst: Option<&cells::Row> = None;
    for (unit, x, want, comparable, also) in wanted {
        let cands: Vec<(&cells::Row, Vec<f64>)> = rows
            .iter()
            .filter(|row| row.unit == unit && &row.library == lib)
            .filter_map(|row| Some((row, x(row)?)))
            .collect();
        let same = |row: &cells::Row, v: &[f64]| {
            comparable
                && v == want.as_slice()
                && also.is_none_or(|(k, val)| row.param(k, -1) == val)
        };
        let dist = |v: &[f64]| (v[0] - want[0]).abs();
        let pick = cands.iter().find(|(row, v)| same(row, v)).or_else(|| {
            // The nearest width; of two as near, the wider.
            cands.iter().min_by(|a, b| {
                dist(&a.1)
                    .total_cmp(&dist(&b.1))
                    .then(b.1[0].total_cmp(&a.1[0]))
            })
        });
        match pick {
            None => {
                if !unmeasured.iter().any(|u| u == unit) {
                    unmeasured.push(unit.to_string());
                }
            }
            Some((row, v)) => {
                exact &= same(row, v);
                if worst.is_none_or(|w| row.crit_fo4 > w.crit_fo4) {
                    worst = Some(row);
                }
            }
        }
    }
    let w = worst?;
    Some(taalasc_partition::ClockEvidence {
        unit: w.unit.clone(),
        params: if w.params.is_empty() {
            "-".into()
        } else {
            w.params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        },
        library: w.library.clone(),
        crit_ns: w.crit_ns,
        crit_fo4: w.crit_fo4,
        at_design_widths: exact,
        unmeasured,
        node_fo4_ps,
        node_fo4_source: node_fo4_source.to_string(),
    })
}

/// NAND2-equivalents of one bit of a 2:1 multiplexer:
/// `sky130_fd_sc_hd__mux2_1` (11.2608 µm²) over `nand2_1` (3.7536 µm²) in
/// the vendored Liberty file.
pub const MUX2_NAND2: f64 = 3.0;

/// The multiplexers that pick one ROM's word by the instruction (an
/// `n`-way choice of `w` bits is `(n - 1) · w` 2:1 multiplexer bits): the
/// expanded weight word over the engine's weight banks, and the gain, bias
/// and RoPE lines over their ROMs. An engine shared by layers has more
/// ROMs behind each port; matrices of one shape share a bank (stacked), so
/// the weight word's choice grows with the shapes, not the layers.
pub fn rom_mux_cells(plan: &Plan, e: usize) -> f64 {
    let eng = &plan.engines[e];
    let rows = plan.rows as f64;
    let word = rows * crate::plan::expanded_slice_bits(plan.lanes) as f64;
    let ways = |n: usize| n.saturating_sub(1) as f64;
    MUX2_NAND2
        * (ways(eng.banks.len()) * word
            + ways(eng.gains.len()) * 32.0 * rows
            + ways(eng.biases.len()) * 48.0 * rows
            + ways(eng.ropes.len()) * 32.0 * rows)
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
                .map(|a| a.layers as u64 * kv_bits_per_position(a.kv_heads, a.head_dim))
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

    /// [`cells::Model::converted`] of the committed table.
    const CONVERTED: &[&str] = &["glue"];

    #[test]
    fn the_committed_unit_table_gives_a_model() {
        let rows = cells::parse(cells::UNITS_TSV).unwrap();
        let libs: std::collections::BTreeSet<&str> =
            rows.iter().map(|r| r.library.as_str()).collect();
        assert_eq!(libs.len(), 2, "both libraries: {libs:?}");
        let m = cells::model_of(cells::UNITS_TSV).unwrap();
        // What is still converted from generic cells: the engine glue
        // (never a unit) and the runs that did not finish (README.md,
        // "What was measured"). Pinned, so a table change is reviewed.
        assert_eq!(m.converted, CONVERTED, "{:?}", m.converted);
        for (u, f) in [
            ("tls_matvec", &m.matvec),
            ("tls_embed", &m.embed),
            ("tls_attn", &m.attn),
            ("tls_norm", &m.norm),
            ("tls_elem", &m.elem),
            ("tls_rope", &m.rope),
            ("tls_out", &m.out),
            ("tls_wfetch", &m.wfetch),
        ] {
            if m.converted.iter().any(|c| c == u) {
                assert!(f.points.is_empty(), "{u}: {f:?}");
                continue;
            }
            assert!(f.points.len() >= 3, "{u}: {f:?}");
            // Wider is never cheaper (`tls_wfetch` is flat in its lanes:
            // sign extension is wiring; a slope within rounding of 0).
            assert!(f.per.iter().all(|p| *p > -1.0), "{u}: {f:?}");
            // A fit through the widths: within 15 % at every point.
            assert!(f.max_rel_residual() < 0.15, "{u}: {f:?}");
            assert!(f.at(&vec![1.0; f.per.len()]) > 100.0, "{u}: {f:?}");
        }
        assert!(m.glue > 100.0 && m.glue < 1e6, "{}", m.glue);
        // A MAC lane (8-bit activation, 4-bit code, 24-bit accumulator) is
        // several hundred NAND2-eq (FACTS.md: 793-822 measured alone).
        assert!(
            m.matvec.per[0] > 300.0 && m.matvec.per[0] < 3000.0,
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
        // Three points of a plane whose second parameter never varies
        // independently are not a plane fit.
        let t = format!("{head}u\tLANES=4\tL\t1\t10\t1\t1\t1\tok\t1\nu\tLANES=16\tL\t1\t20\t1\t1\t1\tok\t1\nu\tLANES=64\tL\t1\t60\t1\t1\t1\tok\t1\nu\tLANES=256\tL\t1\t200\t1\t1\t1\tok\t1\n");
        let rows = cells::parse(&t).unwrap();
        assert!(cells::fit_plane(&rows, "u", "L", cells::matvec_x)
            .unwrap_err()
            .contains("independently"));
        // Nor when it is a nonzero constant (V - 1 = 3 everywhere: the
        // intercept's column again).
        let t4 = t.replace("\tL\t", ",ROWS=4\tL\t");
        let rows = cells::parse(&t4).unwrap();
        assert!(cells::fit_plane(&rows, "u", "L", cells::matvec_x)
            .unwrap_err()
            .contains("independently"));
    }

    #[test]
    fn the_fit_is_least_squares() {
        let head =
            "unit\tparams\tlibrary\tarea_um2\tnand2_eq\tcrit_ns\tcrit_fo4\tcells\tcheck\tseconds\n";
        let t = format!("{head}u\tW=1\tL\t1\t12\t1\t1\t1\tok\t1\nu\tW=2\tL\t1\t14\t1\t1\t1\tok\t1\nu\tW=3\tL\t1\t19\t1\t1\t1\tok\t1\n");
        let f = cells::fit(&cells::parse(&t).unwrap(), "u", "W", "L").unwrap();
        // x = 1, 2, 3; y = 12, 14, 19: slope 3.5, intercept 8 (by hand).
        assert!(
            (f.per[0] - 3.5).abs() < 1e-12 && (f.base - 8.0).abs() < 1e-12,
            "{f:?}"
        );
        assert!((f.points[1].2 - (14.0 - 15.0)).abs() < 1e-12);
        // A plane: y = 100 + 10 * LANES*ROWS + 7 * (ROWS - 1) exactly, at
        // (LANES, ROWS) = (4,1), (16,1), (64,1), (16,4), (4,16).
        let pts = [(4, 1), (16, 1), (64, 1), (16, 4), (4, 16)];
        let mut t = head.to_string();
        for (l, r) in pts {
            let y = 100 + 10 * l * r + 7 * (r - 1);
            t.push_str(&format!(
                "m\tLANES={l},ROWS={r}\tL\t1\t{y}\t1\t1\t1\tok\t1\n"
            ));
        }
        let f = cells::fit_plane(&cells::parse(&t).unwrap(), "m", "L", cells::matvec_x).unwrap();
        assert!((f.base - 100.0).abs() < 1e-6, "{f:?}");
        assert!(
            (f.per[0] - 10.0).abs() < 1e-9 && (f.per[1] - 7.0).abs() < 1e-9,
            "{f:?}"
        );
        assert!(f.max_rel_residual() < 1e-9);
        // V overrides ROWS as the line width.
        let r = &cells::parse(&format!(
            "{head}m\tLANES=8,ROWS=2,V=4\tL\t1\t1\t1\t1\t1\tok\t1\n"
        ))
        .unwrap()[0];
        assert_eq!(cells::matvec_x(r), Some(vec![16.0, 3.0]));
    }
}
