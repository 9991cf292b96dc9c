//! The chip budget: what one die may hold, and the energy and cost
//! assumptions the report uses. A budget is a JSON file or a named preset
//! (`--chip-budget hc1`). Every figure carries its source in `sources`;
//! figures that are our own assumptions say so there.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Per-operation energies at the budget's node (7 nm class for the
/// presets). Each figure's source is in the budget's `sources`: SRAM from
/// Jouppi et al. (ISCA 2021, 7 nm), the MAC and the ROM read are labelled
/// assumptions (no public 7 nm figure was found for them).
///
/// Budgets written before these fields existed gave 45 nm figures and a
/// scale (`mult8_pj_45nm`, `add8_pj_45nm`, `sram_pj_per_bit_45nm`,
/// `rom_pj_per_bit_45nm`, `node_scale`); they still load and are converted
/// as before (`mac = (mult8 + 4·add8)·scale`, reads `x_45nm·scale`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "EnergyFile")]
pub struct Energy {
    /// One multiply-accumulate (8-bit multiply, 32-bit accumulate), pJ.
    pub mac_pj: f64,
    /// Mask-ROM read, pJ per bit.
    pub rom_pj_per_bit: f64,
    /// SRAM read (writes are charged the same), pJ per bit.
    pub sram_pj_per_bit: f64,
    /// Chip-to-chip link, pJ per bit.
    pub link_pj_per_bit: f64,
    /// Leakage and clock tree, watts per mm² of die in use.
    pub static_w_per_mm2: f64,
}

/// The 45 nm figures of the legacy format when a file gives some of them:
/// the missing ones are Horowitz's (ISSCC 2014) and the old 0.25 scale.
const LEGACY_45NM: [(&str, f64); 5] = [
    ("mult8_pj_45nm", 0.2),
    ("add8_pj_45nm", 0.03),
    ("sram_pj_per_bit_45nm", 0.16),
    ("rom_pj_per_bit_45nm", 0.16),
    ("node_scale", 0.25),
];

/// Energy as a file may give it: the current fields, or the legacy 45 nm
/// ones (not both).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnergyFile {
    mac_pj: Option<f64>,
    rom_pj_per_bit: Option<f64>,
    sram_pj_per_bit: Option<f64>,
    link_pj_per_bit: Option<f64>,
    static_w_per_mm2: Option<f64>,
    mult8_pj_45nm: Option<f64>,
    add8_pj_45nm: Option<f64>,
    sram_pj_per_bit_45nm: Option<f64>,
    rom_pj_per_bit_45nm: Option<f64>,
    node_scale: Option<f64>,
}

impl TryFrom<EnergyFile> for Energy {
    type Error = String;
    fn try_from(f: EnergyFile) -> Result<Energy, String> {
        let legacy = [
            f.mult8_pj_45nm,
            f.add8_pj_45nm,
            f.sram_pj_per_bit_45nm,
            f.rom_pj_per_bit_45nm,
            f.node_scale,
        ];
        let need =
            |x: Option<f64>, name: &str| x.ok_or_else(|| format!("missing field `energy.{name}`"));
        let link_pj_per_bit = need(f.link_pj_per_bit, "link_pj_per_bit")?;
        let static_w_per_mm2 = need(f.static_w_per_mm2, "static_w_per_mm2")?;
        if let Some(k) = legacy.iter().position(|x| x.is_some()) {
            let current = [
                ("mac_pj", f.mac_pj),
                ("rom_pj_per_bit", f.rom_pj_per_bit),
                ("sram_pj_per_bit", f.sram_pj_per_bit),
            ];
            if let Some((name, _)) = current.iter().find(|(_, x)| x.is_some()) {
                return Err(format!(
                    "field `energy.{}` (legacy 45 nm format) cannot be combined with `energy.{name}`: give one or the other",
                    LEGACY_45NM[k].0
                ));
            }
            let v = |i: usize| legacy[i].unwrap_or(LEGACY_45NM[i].1);
            let scale = v(4);
            return Ok(Energy {
                mac_pj: (v(0) + 4.0 * v(1)) * scale,
                rom_pj_per_bit: v(3) * scale,
                sram_pj_per_bit: v(2) * scale,
                link_pj_per_bit,
                static_w_per_mm2,
            });
        }
        Ok(Energy {
            mac_pj: need(f.mac_pj, "mac_pj")?,
            rom_pj_per_bit: need(f.rom_pj_per_bit, "rom_pj_per_bit")?,
            sram_pj_per_bit: need(f.sram_pj_per_bit, "sram_pj_per_bit")?,
            link_pj_per_bit,
            static_w_per_mm2,
        })
    }
}

impl Energy {
    /// Whether a budget file's `energy` object uses the legacy 45 nm fields.
    pub fn is_legacy(energy: &serde_json::Value) -> bool {
        LEGACY_45NM.iter().any(|(k, _)| energy.get(*k).is_some())
    }
}

/// What a chip costs to make and run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Economics {
    /// Price of one processed 300 mm wafer, USD.
    pub wafer_usd: f64,
    /// Defect density, defects per cm² (Poisson yield `exp(-A·D0)`).
    pub defects_per_cm2: f64,
    /// Packaging, board share, test: a multiple of the good-die cost.
    pub system_cost_factor: f64,
    /// Years over which the hardware is written off.
    pub amortization_years: f64,
    /// Electricity, USD per kWh, data-centre overhead (PUE) included.
    pub electricity_usd_per_kwh: f64,
}

impl Economics {
    /// Gross dies per 300 mm wafer for a die of `a` mm² (the usual
    /// `π r²/A − π d/√(2A)` estimate).
    pub fn dies_per_wafer(&self, a: f64) -> f64 {
        let d = 300.0f64;
        let r = d / 2.0;
        (std::f64::consts::PI * r * r / a - std::f64::consts::PI * d / (2.0 * a).sqrt()).max(0.0)
    }
    /// Fraction of dies without a defect, for `a` mm².
    pub fn yield_of(&self, a: f64) -> f64 {
        (-(a / 100.0) * self.defects_per_cm2).exp()
    }
    /// System cost of one chip of `a` mm², USD.
    pub fn chip_usd(&self, a: f64) -> f64 {
        let good = self.dies_per_wafer(a) * self.yield_of(a);
        if good <= 0.0 {
            return f64::INFINITY;
        }
        self.wafer_usd / good * self.system_cost_factor
    }
}

/// One chip's limits and the assumptions around it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// The preset name or the JSON file's name, as shown in reports and errors.
    pub name: String,
    /// Process node, for the record (`N6`).
    pub process: String,
    /// Die area available for ROM, SRAM and logic, mm².
    pub die_mm2: f64,
    /// SRAM macro density, Mbit per mm² (periphery included).
    pub sram_mbit_per_mm2: f64,
    /// Mask-ROM density, Mbit per mm². An assumption (see `sources`).
    pub rom_mbit_per_mm2: f64,
    /// Logic area per million NAND2-equivalents (the unit of a stage's
    /// `logic_cells`, measured on a standard-cell library), mm².
    pub logic_mm2_per_mcell: f64,
    /// Signal pins a chip can give to its links (both directions).
    pub io_pins: u32,
    /// Chip-to-chip link: bits per cycle in each direction.
    pub link_bits_per_cycle: u32,
    /// Chip-to-chip link latency, cycles.
    pub link_latency_cycles: u32,
    /// Clock, MHz.
    pub clock_mhz: f64,
    /// FO4 inverter delay at the node, ps: turns a synthesized critical
    /// path in FO4 into the clock it allows here. `None`: no figure, the
    /// report then gives no timing bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fo4_ps: Option<f64>,
    /// Per-operation energies, for the report's energy per token.
    pub energy: Energy,
    /// Wafer, yield and running costs, for the report's cost per token.
    pub economics: Economics,
    /// Where each figure comes from, by field path (`die_mm2`,
    /// `energy.node_scale`); assumptions say "assumption".
    pub sources: BTreeMap<String, String>,
}

/// A budget that cannot be read or makes no sense; names the file or
/// preset and the field.
#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    /// The budget file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file as the user named it.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid budget JSON.
    #[error("{path}: {message}")]
    Parse {
        /// The file as the user named it.
        path: String,
        /// The JSON parser's error (unknown fields included).
        message: String,
    },
    /// A field's value is out of range (not finite, not positive, ...), or
    /// `base` names no preset.
    #[error("{path}: field `{field}` {message}")]
    Field {
        /// The file (or preset) as the user named it.
        path: String,
        /// The field at fault, as its dotted path (`die_mm2`,
        /// `energy.node_scale`, `base`).
        field: &'static str,
        /// What is wrong with it (completes "field `x` ...").
        message: String,
    },
    /// The name is neither a preset nor a readable file: the name given and the
    /// presets, comma-separated.
    #[error("unknown chip budget `{0}`: no preset has that name and no file does; give a JSON file or one of the presets {1}")]
    Unknown(String, String),
}

/// Names of the built-in presets.
pub const PRESETS: &[&str] = &["hc1", "n3e-reticle"];

/// FO4 delay at N6, ps. An assumption: no citable N6 FO4 figure was
/// found; FinFET-era FO4 figures quoted in the literature are about
/// 10-15 ps, and the lower end is taken (so a clock derived from it is an
/// upper bound).
pub const N6_FO4_PS_ASSUMED: f64 = 10.0;

/// The clock a critical path of `fo4` FO4 delays allows at a node whose
/// FO4 is `fo4_ps`, MHz: `1 / (fo4 · fo4_ps)` (logic only: no flop
/// overhead, wires or margin, so an upper bound).
pub fn clock_mhz(fo4: f64, fo4_ps: f64) -> f64 {
    1e6 / (fo4 * fo4_ps).max(f64::MIN_POSITIVE)
}

/// Energies at a 7 nm-class node (sources in [`common_sources`]).
fn energy_7nm() -> Energy {
    Energy {
        // Horowitz 45 nm: 8-bit multiply 0.2 pJ + 32-bit add 0.1 pJ, × 0.25.
        mac_pj: (0.2 + 0.1) * 0.25,
        // Jouppi et al. 2021, 7 nm: 7.5 pJ per 64-bit read from 8 KB.
        rom_pj_per_bit: 7.5 / 64.0,
        // Jouppi et al. 2021, 7 nm: 8.5 pJ per 64-bit read from 32 KB.
        sram_pj_per_bit: 8.5 / 64.0,
        link_pj_per_bit: 1.0,
        static_w_per_mm2: 0.02,
    }
}

fn economics() -> Economics {
    Economics {
        wafer_usd: 10_000.0,
        defects_per_cm2: 0.1,
        system_cost_factor: 2.0,
        amortization_years: 3.0,
        electricity_usd_per_kwh: 0.15,
    }
}

fn common_sources() -> BTreeMap<String, String> {
    [
        ("energy.mac_pj", "assumption: no public 7 nm MAC energy found; Horowitz (ISSCC 2014) at 45 nm gives an 8-bit multiply 0.2 pJ and a 32-bit add 0.1 pJ, scaled by 0.25 to the 7 nm class (between the 0.75x and 0.14x by which Jouppi et al., ISCA 2021, Table 2, scale 8 KB and 1 MB SRAM reads from 45 nm to 7 nm)"),
        ("energy.sram_pj_per_bit", "Jouppi et al., \"Ten Lessons From Three Generations Shaped Google's TPUv4i\", ISCA 2021, Table 2 (7 nm): 8.5 pJ per 64-bit read from a 32 KB SRAM = 0.133 pJ/bit (8 KB: 7.5 pJ, 1 MB: 14 pJ); HNLPU (arXiv 2508.16151) reports 0.13 pJ/bit for its banked KV SRAM at 5 nm"),
        ("energy.rom_pj_per_bit", "assumption: no public mask-ROM read energy at 7 nm; taken as an 8 KB SRAM read at 7 nm, 7.5 pJ per 64 bits (Jouppi et al., ISCA 2021, Table 2) = 0.117 pJ/bit"),
        ("energy.link_pj_per_bit", "assumption: short-reach die-to-die link, about 1 pJ/bit"),
        ("energy.static_w_per_mm2", "assumption: 0.02 W/mm2 leakage and clock"),
        ("economics.wafer_usd", "assumption: about USD 10k per N6/N7-class wafer (CSET 2020 estimate for 7 nm: USD 9,346)"),
        ("economics.defects_per_cm2", "assumption: 0.1 defects/cm2, mature node"),
        ("economics.system_cost_factor", "assumption: package, board, test and margin double the good-die cost"),
        ("economics.amortization_years", "assumption"),
        ("economics.electricity_usd_per_kwh", "assumption: USD 0.10/kWh times PUE 1.5"),
        ("io_pins", "assumption: about 1,000 signal pins for links on a large flip-chip die"),
        ("link_bits_per_cycle", "assumption: 256 bits per cycle each way per link"),
        ("link_latency_cycles", "assumption: 20 cycles chip to chip"),
        ("clock_mhz", "RFC 0003 design target, not timing-closed: the report sets it against the clock the synthesized units' critical paths allow (fo4_ps)"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

impl Budget {
    /// A built-in budget by name.
    pub fn preset(name: &str) -> Option<Budget> {
        let mut sources = common_sources();
        let b = match name {
            "hc1" => {
                sources.insert(
                    "die_mm2".into(),
                    "Taalas HC1, vendor claim: 815 mm2 on TSMC N6".into(),
                );
                sources.insert(
                    "sram_mbit_per_mm2".into(),
                    "N6 SRAM macro density about 25 Mb/mm2 (HD bitcell 0.027 um2)".into(),
                );
                sources.insert(
                    "rom_mbit_per_mm2".into(),
                    "assumption: a via-programmed mask-ROM bitcell is one transistor against SRAM's six; taken as 4x the SRAM macro density".into(),
                );
                sources.insert(
                    "fo4_ps".into(),
                    "assumption: no citable N6 FO4 figure found; FinFET-era FO4 figures quoted in the literature are about 10-15 ps, the lower end taken (the clock derived from it is an upper bound)".into(),
                );
                sources.insert(
                    "logic_mm2_per_mcell".into(),
                    "assumption derived from a cited density: N6 about 108 MTr/mm2 (TSMC, via FACTS.md); a NAND2 is 4 transistors, so 0.037 um2 at that density, over 70% placement utilization (assumption) = 0.053 um2 per NAND2-equivalent".into(),
                );
                Budget {
                    name: "hc1".into(),
                    process: "N6".into(),
                    die_mm2: 815.0,
                    sram_mbit_per_mm2: 25.0,
                    rom_mbit_per_mm2: 100.0,
                    logic_mm2_per_mcell: 0.053,
                    io_pins: 1024,
                    link_bits_per_cycle: 256,
                    link_latency_cycles: 20,
                    clock_mhz: 1000.0,
                    fo4_ps: Some(N6_FO4_PS_ASSUMED),
                    energy: energy_7nm(),
                    economics: economics(),
                    sources,
                }
            }
            "n3e-reticle" => {
                sources.insert(
                    "die_mm2".into(),
                    "assumption: a near-reticle die of 800 mm2".into(),
                );
                sources.insert(
                    "sram_mbit_per_mm2".into(),
                    "N3E SRAM macro density 31.8 Mib/mm2 (HD bitcell 0.021 um2)".into(),
                );
                sources.insert(
                    "rom_mbit_per_mm2".into(),
                    "assumption: 4x the SRAM macro density, as for hc1".into(),
                );
                sources.insert(
                    "fo4_ps".into(),
                    "assumption: N6's assumed 10 ps (no cited N3E figure; N3E is faster, so the clock derived from it is low for N3E)".into(),
                );
                sources.insert(
                    "logic_mm2_per_mcell".into(),
                    "assumption: N3E taken at N5's shipped 134-138 MTr/mm2 (no N3E figure cited here; N3E is denser, so this overstates logic area); 4 transistors per NAND2 at 136 MTr/mm2 over 70% utilization = 0.042 um2 per NAND2-equivalent".into(),
                );
                Budget {
                    name: "n3e-reticle".into(),
                    process: "N3E".into(),
                    die_mm2: 800.0,
                    sram_mbit_per_mm2: 31.8,
                    rom_mbit_per_mm2: 127.2,
                    logic_mm2_per_mcell: 0.042,
                    io_pins: 1024,
                    link_bits_per_cycle: 256,
                    link_latency_cycles: 20,
                    clock_mhz: 1000.0,
                    fo4_ps: Some(N6_FO4_PS_ASSUMED),
                    energy: energy_7nm(),
                    economics: Economics {
                        wafer_usd: 18_000.0,
                        ..economics()
                    },
                    sources,
                }
            }
            _ => return None,
        };
        Some(b)
    }

    /// A preset name or a JSON file. A file may give only some fields on top
    /// of a preset with `"base": "hc1"`.
    pub fn load(spec: &str) -> Result<Budget, BudgetError> {
        if let Some(b) = Budget::preset(spec) {
            return Ok(b);
        }
        let path = std::path::Path::new(spec);
        // A name that looks like a file is reported as the missing file it is.
        let file_like = spec.contains(std::path::MAIN_SEPARATOR)
            || spec.contains('/')
            || path.extension().is_some();
        if !path.exists() && !file_like {
            return Err(BudgetError::Unknown(spec.into(), PRESETS.join(", ")));
        }
        let text = std::fs::read_to_string(path).map_err(|source| BudgetError::Io {
            path: spec.into(),
            source,
        })?;
        Budget::from_json(&text, spec)
    }

    /// Parses a budget; `path` names it in errors.
    pub fn from_json(text: &str, path: &str) -> Result<Budget, BudgetError> {
        let parse = |message: String| BudgetError::Parse {
            path: path.into(),
            message,
        };
        let mut v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| parse(e.to_string()))?;
        let named = v.get("name").is_some();
        if let Some(base) = v.get("base").cloned() {
            let base_name = base
                .as_str()
                .ok_or_else(|| parse("`base` must name a preset".into()))?;
            let b = Budget::preset(base_name).ok_or_else(|| BudgetError::Field {
                path: path.into(),
                field: "base",
                message: format!("names no preset (have {})", PRESETS.join(", ")),
            })?;
            let mut merged = serde_json::to_value(b).expect("budget serializes");
            let obj = v.as_object_mut().expect("has a key, so an object");
            obj.remove("base");
            // A legacy 45 nm energy block replaces the preset's per-node
            // figures rather than mixing with them.
            if obj.get("energy").is_some_and(Energy::is_legacy) {
                if let Some(e) = merged.get_mut("energy").and_then(|e| e.as_object_mut()) {
                    for k in ["mac_pj", "rom_pj_per_bit", "sram_pj_per_bit"] {
                        e.remove(k);
                    }
                }
            }
            merge(&mut merged, &v);
            v = merged;
        }
        // A file names its budget by its path unless it says otherwise.
        if !named {
            if let Some(o) = v.as_object_mut() {
                o.insert("name".into(), serde_json::Value::String(path.into()));
            }
        }
        // Name the first field of the wrong kind (serde would not).
        let reference = serde_json::to_value(Budget::preset("hc1").expect("preset"))
            .expect("budget serializes");
        if let Some(field) = wrong_kind(&v, &reference, "") {
            return Err(parse(format!("field `{field}` has the wrong type")));
        }
        let legacy = v.get("energy").is_some_and(Energy::is_legacy);
        let mut b: Budget = serde_json::from_value(v).map_err(|e| parse(e.to_string()))?;
        if legacy {
            for k in ["mac_pj", "rom_pj_per_bit", "sram_pj_per_bit"] {
                b.sources.insert(
                    format!("energy.{k}"),
                    "assumption: converted from the file's legacy 45 nm figures times its node_scale".into(),
                );
            }
        }
        b.check(path)?;
        Ok(b)
    }

    /// Every figure must be finite and in range.
    pub fn check(&self, path: &str) -> Result<(), BudgetError> {
        let bad = |field: &'static str, message: &str| BudgetError::Field {
            path: path.into(),
            field,
            message: message.into(),
        };
        let positive: [(&'static str, f64); 11] = [
            ("die_mm2", self.die_mm2),
            ("sram_mbit_per_mm2", self.sram_mbit_per_mm2),
            ("rom_mbit_per_mm2", self.rom_mbit_per_mm2),
            ("logic_mm2_per_mcell", self.logic_mm2_per_mcell),
            ("clock_mhz", self.clock_mhz),
            ("energy.mac_pj", self.energy.mac_pj),
            ("economics.wafer_usd", self.economics.wafer_usd),
            (
                "economics.system_cost_factor",
                self.economics.system_cost_factor,
            ),
            (
                "economics.amortization_years",
                self.economics.amortization_years,
            ),
            ("energy.sram_pj_per_bit", self.energy.sram_pj_per_bit),
            ("energy.rom_pj_per_bit", self.energy.rom_pj_per_bit),
        ];
        for (f, x) in positive
            .into_iter()
            .chain(self.fo4_ps.map(|x| ("fo4_ps", x)))
        {
            if !(x.is_finite() && x > 0.0) {
                return Err(bad(f, &format!("must be a positive number, got {x}")));
            }
        }
        let nonneg: [(&'static str, f64); 4] = [
            ("energy.link_pj_per_bit", self.energy.link_pj_per_bit),
            ("energy.static_w_per_mm2", self.energy.static_w_per_mm2),
            ("economics.defects_per_cm2", self.economics.defects_per_cm2),
            (
                "economics.electricity_usd_per_kwh",
                self.economics.electricity_usd_per_kwh,
            ),
        ];
        for (f, x) in nonneg {
            if !(x.is_finite() && x >= 0.0) {
                return Err(bad(f, &format!("must be a number >= 0, got {x}")));
            }
        }
        if self.link_bits_per_cycle == 0
            || !(self.link_bits_per_cycle.is_power_of_two()
                && (8..=1024).contains(&self.link_bits_per_cycle))
        {
            return Err(bad(
                "link_bits_per_cycle",
                &format!(
                    "must be a power of two from 8 to 1024, got {}",
                    self.link_bits_per_cycle
                ),
            ));
        }
        if self.link_latency_cycles == 0 || self.link_latency_cycles > 1000 {
            return Err(bad(
                "link_latency_cycles",
                &format!("must be 1 to 1000, got {}", self.link_latency_cycles),
            ));
        }
        if self.io_pins < 2 * (self.link_bits_per_cycle + 2) {
            return Err(bad(
                "io_pins",
                &format!(
                    "{} pins cannot carry a link in and a link out of {} bits plus valid/ready",
                    self.io_pins, self.link_bits_per_cycle
                ),
            ));
        }
        Ok(())
    }

    /// Area of `bits` of mask ROM, mm².
    pub fn rom_mm2(&self, bits: u64) -> f64 {
        bits as f64 / 1e6 / self.rom_mbit_per_mm2
    }
    /// Area of `bits` of SRAM, mm².
    pub fn sram_mm2(&self, bits: u64) -> f64 {
        bits as f64 / 1e6 / self.sram_mbit_per_mm2
    }
    /// Area of `cells` NAND2-equivalents, mm².
    pub fn logic_mm2(&self, cells: u64) -> f64 {
        cells as f64 / 1e6 * self.logic_mm2_per_mcell
    }
}

/// The path of the first field of `v` whose JSON kind differs from the
/// same field in `reference` (numbers, strings, objects, ...).
fn wrong_kind(v: &serde_json::Value, reference: &serde_json::Value, at: &str) -> Option<String> {
    use serde_json::Value as V;
    let (V::Object(a), V::Object(r)) = (v, reference) else {
        return None;
    };
    for (k, x) in a {
        let path = if at.is_empty() {
            k.clone()
        } else {
            format!("{at}.{k}")
        };
        let Some(y) = r.get(k) else { continue };
        let kind = |z: &V| std::mem::discriminant(z);
        if kind(x) != kind(y) {
            return Some(path);
        }
        if let Some(p) = wrong_kind(x, y, &path) {
            return Some(p);
        }
    }
    None
}

/// Overwrites `base` with the fields of `top`, recursively.
fn merge(base: &mut serde_json::Value, top: &serde_json::Value) {
    match (base, top) {
        (serde_json::Value::Object(b), serde_json::Value::Object(t)) => {
            for (k, v) in t {
                match b.get_mut(k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, t) => *b = t.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_pass_their_own_checks() {
        for p in PRESETS {
            let b = Budget::preset(p).unwrap();
            b.check(p).unwrap();
            assert!(b.sources.contains_key("rom_mbit_per_mm2"));
        }
    }

    #[test]
    fn a_file_overrides_a_preset_and_names_a_bad_field() {
        let b = Budget::from_json(r#"{"base": "hc1", "die_mm2": 10.0}"#, "b.json").unwrap();
        assert_eq!(b.die_mm2, 10.0);
        assert_eq!(b.sram_mbit_per_mm2, 25.0);
        let e = Budget::from_json(r#"{"base": "hc1", "die_mm2": -1}"#, "b.json").unwrap_err();
        assert_eq!(
            e.to_string(),
            "b.json: field `die_mm2` must be a positive number, got -1"
        );
        let e = Budget::from_json(r#"{"base": "hc1", "fo4_ps": 0}"#, "b.json").unwrap_err();
        assert_eq!(
            e.to_string(),
            "b.json: field `fo4_ps` must be a positive number, got 0"
        );
        let e = Budget::from_json(r#"{"base": "hc1", "fo4_ps": "fast"}"#, "b.json").unwrap_err();
        assert!(e.to_string().contains("fo4_ps"), "{e}");
        // The FO4 figure is optional: a budget without it gets no clock check.
        let mut v = serde_json::to_value(Budget::preset("hc1").unwrap()).unwrap();
        v.as_object_mut().unwrap().remove("fo4_ps");
        let b = Budget::from_json(&v.to_string(), "b.json").unwrap();
        assert_eq!(b.fo4_ps, None);
        let e = Budget::from_json(r#"{"base": "hc1", "die_mm3": 1}"#, "b.json").unwrap_err();
        assert!(e.to_string().contains("die_mm3"), "{e}");
        let e = Budget::load("no-such-preset").unwrap_err();
        assert!(e.to_string().contains("hc1"), "{e}");
    }

    #[test]
    fn energies_are_the_cited_7nm_figures() {
        let e = Budget::preset("hc1").unwrap().energy;
        // Jouppi et al. 2021, Table 2: 8.5 pJ / 64 bits (32 KB), 7.5 pJ / 64 bits (8 KB).
        assert!((e.sram_pj_per_bit - 0.1328125).abs() < 1e-12);
        assert!((e.rom_pj_per_bit - 0.1171875).abs() < 1e-12);
        assert!((e.mac_pj - 0.075).abs() < 1e-12);
        let b = Budget::preset("hc1").unwrap();
        for k in ["energy.mac_pj", "energy.rom_pj_per_bit"] {
            assert!(b.sources[k].starts_with("assumption"), "{k}");
        }
        assert!(b.sources["energy.sram_pj_per_bit"].contains("ISCA 2021"));
    }

    #[test]
    fn legacy_45nm_energy_still_loads() {
        // A budget file of the old format, on top of a preset and alone.
        let b = Budget::from_json(
            r#"{"base": "hc1", "energy": {"node_scale": 0.5, "mult8_pj_45nm": 0.2, "add8_pj_45nm": 0.05,
                "sram_pj_per_bit_45nm": 0.2, "rom_pj_per_bit_45nm": 0.1, "link_pj_per_bit": 1.0,
                "static_w_per_mm2": 0.01}}"#,
            "old.json",
        )
        .unwrap();
        assert!((b.energy.mac_pj - 0.2).abs() < 1e-12);
        assert!((b.energy.sram_pj_per_bit - 0.1).abs() < 1e-12);
        assert!((b.energy.rom_pj_per_bit - 0.05).abs() < 1e-12);
        assert!(b.sources["energy.mac_pj"].contains("legacy"));
        // Only the scale given: the other 45 nm figures are Horowitz's.
        let b = Budget::from_json(
            r#"{"base": "hc1", "energy": {"node_scale": 0.25}}"#,
            "s.json",
        )
        .unwrap();
        assert!((b.energy.mac_pj - 0.08).abs() < 1e-12);
        assert!((b.energy.sram_pj_per_bit - 0.04).abs() < 1e-12);
        // A manifest written before the change (serde, no preset merge).
        let mut old = serde_json::to_value(Budget::preset("hc1").unwrap()).unwrap();
        old["energy"] = serde_json::json!({"mult8_pj_45nm": 0.2, "add8_pj_45nm": 0.03,
            "sram_pj_per_bit_45nm": 0.16, "rom_pj_per_bit_45nm": 0.16, "node_scale": 0.25,
            "link_pj_per_bit": 1.0, "static_w_per_mm2": 0.02});
        let b: Budget = serde_json::from_value(old).unwrap();
        assert!((b.energy.rom_pj_per_bit - 0.04).abs() < 1e-12);
        // Both formats at once: an error naming both fields.
        let e = Budget::from_json(
            r#"{"base": "hc1", "energy": {"node_scale": 0.25, "mac_pj": 0.1}}"#,
            "mix.json",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("energy.node_scale") && e.contains("energy.mac_pj"),
            "{e}"
        );
        // A new-format file without a base must give every figure.
        let mut full = serde_json::to_value(Budget::preset("hc1").unwrap()).unwrap();
        full["energy"].as_object_mut().unwrap().remove("mac_pj");
        let e = Budget::from_json(&full.to_string(), "full.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("energy.mac_pj"), "{e}");
    }

    #[test]
    fn yield_and_dies_per_wafer() {
        let e = economics();
        // 815 mm²: about 63 gross dies, 44% yield at 0.1/cm².
        let n = e.dies_per_wafer(815.0);
        assert!((60.0..66.0).contains(&n), "{n}");
        assert!((e.yield_of(815.0) - (-0.815f64).exp()).abs() < 1e-12);
    }
}
