//! Speed and energy over context and over users in flight, and the area
//! of each chip split by kind with each density's source (issue 13,
//! deliverable 5).

use crate::{ChipReport, LinkReport, SourceKind, SECONDS_PER_YEAR};
use serde::{Deserialize, Serialize};
use taalasc_partition::{Budget, StageCost};

/// The contexts the report's curves try, positions per user.
pub const CONTEXTS: [usize; 5] = [1024, 2048, 4096, 6144, 8192];

/// The mask-ROM densities every area split shows beside the budget's own,
/// Mbit/mm²: no foundry publishes an N6 mask-ROM density, so 100 stays an
/// assumption and 50 is always reported too.
pub const ROM_DENSITIES: [f64; 2] = [100.0, 50.0];

/// Stage costs of the token at `position`, for a build of `context`
/// positions per user (the driver computes them with the same cost model
/// as the headline figures).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContextStages {
    /// Positions per user `T` the point models.
    pub context: usize,
    /// The position whose token is costed (`T − 1`: the cache holds `T`
    /// positions, the last token of a full context).
    pub position: usize,
    /// Per-token costs of every stage at that position, in pipeline order.
    pub stages: Vec<StageCost>,
}

/// One context of the curve over context, one user.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ContextPoint {
    /// Positions per user `T`.
    pub context: usize,
    /// The token costed (`T − 1`).
    pub position: usize,
    /// Whether one user's KV cache of `T` positions fits every chip's free
    /// area (die − ROM − logic − fixed SRAM).
    pub fits: bool,
    /// Why it does not fit (chip, needed and free mm²); `None` if it fits.
    pub reason: Option<String>,
    /// KV SRAM one user of `T` positions needs, summed over chips, mm².
    pub kv_sram_mm2: f64,
    /// The largest chip's KV SRAM for one user of `T` positions, mm².
    pub kv_sram_mm2_max_chip: f64,
    /// Latency per token at this position, cycles.
    pub latency_cycles: u64,
    /// `f / L`: one user alone. `None` when the context does not fit.
    pub tokens_per_s_per_user: Option<f64>,
    /// Energy per token for one user alone (dynamic at this position plus
    /// the static power of the area in use over `f / P(1)`), J.
    pub energy_per_token_j: Option<f64>,
    /// Dynamic part of `energy_per_token_j`, J.
    pub dynamic_j: Option<f64>,
    /// Users whose KV cache of `T` positions fits (min over chips).
    pub max_users: Option<u64>,
    /// `f / P` at `max_users`.
    pub aggregate_tokens_per_s_at_max_users: Option<f64>,
    /// Energy per token at `max_users`, J.
    pub energy_per_token_j_at_max_users: Option<f64>,
}

/// One user count of the curve over users in flight, at the built context.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UsersPoint {
    /// `S`, users in flight (each with its own KV cache of `T` positions).
    pub users: u64,
    /// `P(S) = max(B, L / min(S, stages))`, cycles.
    pub cycles_per_token: f64,
    /// `f / P(S)`.
    pub aggregate_tokens_per_s: f64,
    /// `f / (P(S)·S)`.
    pub tokens_per_s_per_user: f64,
    /// Dynamic energy plus static power over `f / P(S)`, J.
    pub energy_per_token_j: f64,
    /// Hardware written off plus electricity, over `f / P(S)`, USD.
    pub usd_per_mtoken: f64,
    /// KV SRAM of `S` users at `T` positions, summed over chips, mm².
    pub kv_sram_mm2: f64,
}

/// The curves and the rules behind them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Curves {
    /// How each curve is computed.
    pub rules: Vec<String>,
    /// At [`CONTEXTS`], one user (and the users that fit).
    pub over_context: Vec<ContextPoint>,
    /// At the built context, 1 to the users that fit.
    pub over_users: Vec<UsersPoint>,
    /// The users that fit at the built context (the last point of
    /// `over_users`); `None` when no chip holds a KV cache.
    pub max_users_at_context: Option<u64>,
    /// Why `over_users` stops where it does.
    pub users_limit: String,
}

/// A density figure and its source.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Density {
    /// `ROM`, `KV SRAM`, `other SRAM`, `logic`.
    pub part: String,
    /// The figure.
    pub value: f64,
    /// Its unit (`Mbit/mm²`, `mm² per million generic cells`).
    pub unit: String,
    /// Citation or assumption.
    pub kind: SourceKind,
    /// Where it comes from.
    pub source: String,
}

/// One chip's ROM area at one mask-ROM density.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RomAt {
    /// Mbit/mm².
    pub rom_mbit_per_mm2: f64,
    /// ROM area, mm².
    pub rom_mm2: f64,
    /// The chip's total area with that ROM, mm².
    pub total_mm2: f64,
    /// Whether that total fits the die.
    pub fits_die: bool,
}

/// One chip's area by kind.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChipArea {
    /// Chip index.
    pub chip: usize,
    /// Mask-ROM bits (weights, vectors, tables).
    pub rom_bits: u64,
    /// Mask ROM at the budget's density, mm².
    pub rom_mm2: f64,
    /// KV cache at the built users and context, mm².
    pub kv_sram_mm2: f64,
    /// Scratchpads and buffers, mm².
    pub other_sram_mm2: f64,
    /// Logic, mm².
    pub logic_mm2: f64,
    /// The sum, mm².
    pub total_mm2: f64,
    /// The ROM at 100 and at 50 Mbit/mm² (and the budget's own density if
    /// it is neither).
    pub rom_at: Vec<RomAt>,
}

/// Area by kind, per chip, with every density's source.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AreaSplit {
    /// One entry per kind of area.
    pub densities: Vec<Density>,
    /// Figures beside the model's (not used in its arithmetic).
    pub references: Vec<Density>,
    /// One entry per chip.
    pub chips: Vec<ChipArea>,
}

fn kind_of(source: &str) -> SourceKind {
    if source.to_ascii_lowercase().contains("assumption") {
        SourceKind::Assumption
    } else {
        SourceKind::Citation
    }
}

fn source_of(b: &Budget, field: &str) -> String {
    b.sources
        .get(field)
        .cloned()
        .unwrap_or_else(|| "assumption: the budget gives no source for this figure".into())
}

/// What the curves need from the report already computed.
pub(crate) struct Ctx<'a> {
    pub input: &'a crate::ReportInput,
    pub chips: &'a [ChipReport],
    pub links: &'a [LinkReport],
    pub chip_usd: f64,
}

/// Latency and throughput bound of `stages` with the report's links.
fn pipeline(stages: &[StageCost], links: &[LinkReport]) -> (u64, u64) {
    let sc: u64 = stages.iter().map(|s| s.cycles).sum();
    let lc: u64 = links.iter().map(|l| l.busy_cycles + l.latency_cycles).sum();
    let sb = stages.iter().map(|s| s.cycles).max().unwrap_or(0);
    let lb = links.iter().map(|l| l.busy_cycles).max().unwrap_or(0);
    (sc + lc, sb.max(lb))
}

fn cycles_at(latency: u64, bound: u64, n_stages: usize, users: u64) -> f64 {
    let in_flight = (users.max(1) as usize).min(n_stages).max(1);
    (bound as f64).max(latency as f64 / in_flight as f64)
}

impl Ctx<'_> {
    fn f_hz(&self) -> f64 {
        self.input.budget.clock_mhz * 1e6
    }
    fn dynamic_j(&self, stages: &[StageCost]) -> f64 {
        let e = &self.input.budget.energy;
        let s: f64 = stages
            .iter()
            .map(|s| {
                s.macs as f64 * e.mac_pj
                    + s.rom_read_bits as f64 * e.rom_pj_per_bit
                    + s.sram_access_bits as f64 * e.sram_pj_per_bit
            })
            .sum();
        s * 1e-12 + self.links.iter().map(|l| l.energy_j).sum::<f64>()
    }
    /// Area in use of every chip with `users × context` KV, mm².
    fn area_with_kv(&self, users: u64, context: u64) -> f64 {
        let b = &self.input.budget;
        self.chips
            .iter()
            .map(|c| {
                c.rom_mm2
                    + c.logic_mm2
                    + b.sram_mm2(c.fixed_sram_bits)
                    + b.sram_mm2(c.kv_bits_per_position * users * context)
            })
            .sum()
    }
    fn kv_mm2(&self, users: u64, context: u64) -> (f64, f64) {
        let b = &self.input.budget;
        let per: Vec<f64> = self
            .chips
            .iter()
            .map(|c| b.sram_mm2(c.kv_bits_per_position * users * context))
            .collect();
        (per.iter().sum(), per.iter().cloned().fold(0.0, f64::max))
    }
    /// Users whose KV cache of `context` positions fits every chip.
    fn max_users(&self, context: u64) -> Option<u64> {
        self.chips
            .iter()
            .filter(|c| c.kv_bits_per_position > 0)
            .map(|c| c.kv_free_bits / (context.max(1) * c.kv_bits_per_position))
            .min()
    }
    /// (energy per token, USD per million tokens) at `aggregate` tokens/s.
    fn energy_cost(&self, dyn_j: f64, area: f64, aggregate: f64) -> (f64, f64) {
        let b = &self.input.budget;
        let static_w = b.energy.static_w_per_mm2 * area;
        if aggregate <= 0.0 {
            return (0.0, 0.0);
        }
        let total = dyn_j + static_w / aggregate;
        let power = dyn_j * aggregate + static_w;
        let ec = &b.economics;
        let capex =
            self.chips.len() as f64 * self.chip_usd / (ec.amortization_years * SECONDS_PER_YEAR);
        let energy_usd = power / 3.6e6 * ec.electricity_usd_per_kwh;
        (total, (capex + energy_usd) / aggregate * 1e6)
    }

    pub(crate) fn curves(&self) -> Curves {
        let f = self.f_hz();
        let b = &self.input.budget;
        let rate = |c: f64| if c > 0.0 { f / c } else { 0.0 };
        let mut over_context = Vec::new();
        for t in CONTEXTS {
            let Some(cs) = self.input.context_points.iter().find(|p| p.context == t) else {
                continue;
            };
            let t64 = t as u64;
            let (kv_sum, kv_max) = self.kv_mm2(1, t64);
            let short = self.chips.iter().find(|c| {
                c.kv_bits_per_position > 0 && c.kv_bits_per_position * t64 > c.kv_free_bits
            });
            let reason = short.map(|c| {
                format!(
                    "chip {}: one user's KV cache of {t} positions needs {:.2} mm2 of SRAM, {:.2} mm2 are free after ROM, logic and fixed SRAM",
                    c.index,
                    b.sram_mm2(c.kv_bits_per_position * t64),
                    c.kv_free_mm2.max(0.0)
                )
            });
            let fits = reason.is_none();
            let (latency, bound) = pipeline(&cs.stages, self.links);
            let n = cs.stages.len();
            let dyn_j = self.dynamic_j(&cs.stages);
            let p1 = cycles_at(latency, bound, n, 1);
            let (e1, _) = self.energy_cost(dyn_j, self.area_with_kv(1, t64), rate(p1));
            let max_users = self.max_users(t64);
            let at_max = max_users.filter(|&u| u > 0).map(|u| {
                let agg = rate(cycles_at(latency, bound, n, u));
                let (e, _) = self.energy_cost(dyn_j, self.area_with_kv(u, t64), agg);
                (agg, e)
            });
            over_context.push(ContextPoint {
                context: t,
                position: cs.position,
                fits,
                reason,
                kv_sram_mm2: kv_sum,
                kv_sram_mm2_max_chip: kv_max,
                latency_cycles: latency,
                tokens_per_s_per_user: fits.then(|| rate(latency as f64)),
                energy_per_token_j: fits.then_some(e1),
                dynamic_j: fits.then_some(dyn_j),
                max_users: if fits { max_users } else { Some(0) },
                aggregate_tokens_per_s_at_max_users: at_max.filter(|_| fits).map(|a| a.0),
                energy_per_token_j_at_max_users: at_max.filter(|_| fits).map(|a| a.1),
            });
        }

        // Over users, at the built context and the headline (mid-context)
        // stage costs.
        let t = self.input.context as u64;
        let stages = &self.input.stages;
        let (latency, bound) = pipeline(stages, self.links);
        let dyn_j = self.dynamic_j(stages);
        let max_users = self.max_users(t);
        const CAP: u64 = 4096;
        let (last, users_limit) = match max_users {
            Some(0) => (
                0,
                format!("no user's KV cache of {t} positions fits: no points"),
            ),
            Some(u) if u > CAP => (
                CAP,
                format!("{u} users fit at {t} positions; the curve stops at {CAP}"),
            ),
            Some(u) => (
                u,
                format!("{u} users fit at {t} positions (KV SRAM of the limiting chip)"),
            ),
            None => {
                let to = (latency as f64 / bound.max(1) as f64).ceil() as u64;
                (
                    to.clamp(1, CAP),
                    "no chip holds a KV cache: the curve runs to the users that saturate the pipeline".into(),
                )
            }
        };
        let mut counts: Vec<u64> = (1..=last.min(16)).collect();
        let mut k = 32;
        while k < last {
            counts.push(k);
            k *= 2;
        }
        let saturate = (latency as f64 / bound.max(1) as f64).ceil() as u64;
        for extra in [last, saturate, self.input.users as u64] {
            if (1..=last).contains(&extra) {
                counts.push(extra);
            }
        }
        counts.sort_unstable();
        counts.dedup();
        let over_users = counts
            .into_iter()
            .map(|s| {
                let p = cycles_at(latency, bound, stages.len(), s);
                let agg = rate(p);
                let (e, usd) = self.energy_cost(dyn_j, self.area_with_kv(s, t), agg);
                UsersPoint {
                    users: s,
                    cycles_per_token: p,
                    aggregate_tokens_per_s: agg,
                    tokens_per_s_per_user: agg / s as f64,
                    energy_per_token_j: e,
                    usd_per_mtoken: usd,
                    kv_sram_mm2: self.kv_mm2(s, t).0,
                }
            })
            .collect();
        Curves {
            rules: vec![
                "over_context: a design built for T positions and one user; the token costed is the last of a full context (position T − 1), with the same stage-cost model as the headline figures; a context fits when one user's KV cache of T positions fits every chip's area left after ROM, logic and fixed SRAM".into(),
                "over_context energy: dynamic energy at that position plus the static power of the area in use (ROM, logic, fixed SRAM and the KV SRAM for T positions) divided by the tokens per second".into(),
                "over_users: at the built context T, the headline stage costs (token at T/2, the mean over a full context since attention grows linearly with position), S users each with a KV cache of T positions; P(S) = max(B, L / min(S, stages)); static power of the area with S·T KV".into(),
            ],
            over_context,
            over_users,
            max_users_at_context: max_users,
            users_limit,
        }
    }

    pub(crate) fn area_split(&self) -> AreaSplit {
        let b = &self.input.budget;
        let stages = &self.input.stages;
        let sram_src = source_of(b, "sram_mbit_per_mm2");
        let densities = vec![
            Density {
                part: "ROM".into(),
                value: b.rom_mbit_per_mm2,
                unit: "Mbit/mm2".into(),
                kind: kind_of(&source_of(b, "rom_mbit_per_mm2")),
                source: source_of(b, "rom_mbit_per_mm2"),
            },
            Density {
                part: "KV SRAM".into(),
                value: b.sram_mbit_per_mm2,
                unit: "Mbit/mm2".into(),
                kind: kind_of(&sram_src),
                source: sram_src.clone(),
            },
            Density {
                part: "other SRAM".into(),
                value: b.sram_mbit_per_mm2,
                unit: "Mbit/mm2".into(),
                kind: kind_of(&sram_src),
                source: sram_src,
            },
            Density {
                part: "logic".into(),
                value: b.logic_mm2_per_mcell,
                unit: "mm2 per million NAND2-equivalents".into(),
                kind: kind_of(&source_of(b, "logic_mm2_per_mcell")),
                source: source_of(b, "logic_mm2_per_mcell"),
            },
        ];
        let r = |part: &str, value: f64, unit: &str, source: &str| Density {
            part: part.into(),
            value,
            unit: unit.into(),
            kind: kind_of(source),
            source: source.into(),
        };
        let references = vec![
            r("SRAM macro, N6", 25.0, "Mbit/mm2", "FACTS.md: N6 SRAM macro about 25 Mb/mm2 (HD bitcell 0.027 um2)"),
            r("SRAM macro, N5/N3E", 31.8, "Mbit/mm2", "FACTS.md: N3E 31.8 Mib/mm2 (HD bitcell 0.021 um2)"),
            r("KV SRAM as built, HNLPU 5 nm", 19.7, "Mbit/mm2", "HNLPU, Liu et al., ASPLOS '26, arXiv 2508.16151: 320 MB per chip in 20,000 banks, simulated after layout"),
            r("mask ROM, N6", 100.0, "Mbit/mm2", "assumption: no public N6 mask-ROM figure; 65 nm compute-in-ROM macros reach 3,984-4,967 kb/mm2, 4-5x that node's SRAM; 50 is always reported too"),
            r("weights with arithmetic, HNLPU 5 nm", 0.079, "um2 per weight", "HNLPU, arXiv 2508.16151: about 0.079 um2 per weight, arithmetic included, simulated after layout"),
            r("logic, N6", 108.0, "MTr/mm2", "FACTS.md: N7 about 91 MTr/mm2, N6 about 108 (+18%)"),
        ];
        let mut dens: Vec<f64> = ROM_DENSITIES.to_vec();
        if !dens.contains(&b.rom_mbit_per_mm2) {
            dens.insert(0, b.rom_mbit_per_mm2);
        }
        let chips = self
            .chips
            .iter()
            .map(|c| {
                let own = stages.get(c.first..c.end.min(stages.len())).unwrap_or(&[]);
                let rom_bits: u64 = own.iter().map(|s| s.rom_bits).sum();
                let kv = b.sram_mm2(
                    c.kv_bits_per_position * self.input.users as u64 * self.input.context as u64,
                );
                let other = b.sram_mm2(c.fixed_sram_bits);
                let rest = kv + other + c.logic_mm2;
                ChipArea {
                    chip: c.index,
                    rom_bits,
                    rom_mm2: c.rom_mm2,
                    kv_sram_mm2: kv,
                    other_sram_mm2: other,
                    logic_mm2: c.logic_mm2,
                    total_mm2: c.rom_mm2 + rest,
                    rom_at: dens
                        .iter()
                        .map(|&d| {
                            let rom = rom_bits as f64 / 1e6 / d;
                            RomAt {
                                rom_mbit_per_mm2: d,
                                rom_mm2: rom,
                                total_mm2: rom + rest,
                                fits_die: rom + rest <= b.die_mm2,
                            }
                        })
                        .collect(),
                }
            })
            .collect();
        AreaSplit {
            densities,
            references,
            chips,
        }
    }
}
