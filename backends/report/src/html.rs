//! `report.html`: one self-contained page, inline CSS and SVG, no scripts
//! and no URLs. Everything the page prints comes from the [`SystemReport`].

use crate::fmt::{esc, fixed, int, joules, pct, short, sig, signed_pct, usd};
use crate::html_table::{num, p, Table};
use crate::svg::{self, Bar, Point, Segment, PALETTE};
use crate::{SourceKind, SystemReport};
use std::fmt::Write;

const CSS: &str = "\
body{font-family:sans-serif;font-size:14px;color:#222;margin:0;background:#f6f6f6}\
main{max-width:1100px;margin:0 auto;padding:16px 24px;background:#fff}\
h1{font-size:24px;margin:8px 0 4px}\
h2{font-size:18px;margin:28px 0 8px;border-bottom:2px solid #4e79a7;padding-bottom:3px}\
h3{font-size:15px;margin:18px 0 6px}\
p.sub{color:#555;margin:0 0 12px}\
table{border-collapse:collapse;margin:8px 0 12px}\
th,td{border:1px solid #ccc;padding:3px 8px;vertical-align:top}\
th{background:#eef2f7;text-align:left}\
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\
tr.total td{font-weight:bold}\
table.summary td:first-child{font-weight:bold}\
svg.chart{display:block;max-width:100%;height:auto;margin:8px 0 14px;border:1px solid #e4e4e4}\
.note{color:#555;font-size:13px}\
code{background:#f1f1f1;padding:0 3px}\
";

fn chip_color(k: usize) -> String {
    PALETTE[k % PALETTE.len()].to_string()
}

fn stage_span(names: &[String]) -> String {
    match names {
        [] => "(none)".into(),
        [one] => one.clone(),
        [first, .., last] => format!("{first} … {last} ({} stages)", names.len()),
    }
}

fn opt_count(x: Option<u64>) -> String {
    x.map_or("unlimited (no KV cache)".into(), int)
}

/// The page for `r`. Same report, same bytes.
pub fn render_html(r: &SystemReport) -> String {
    let inp = &r.input;
    let b = &inp.budget;
    let t = &r.timing;
    let e = &r.energy;
    let c = &r.cost;
    let m = &r.memory;
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<title>taalasc report: {}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        esc(&inp.model)
    );
    let _ = writeln!(out, "<h1>taalasc system report: {}</h1>", esc(&inp.model));
    p(
        &mut out,
        "sub",
        &format!(
            "{} · {} parameters · {} bits per weight ({} Mbit of weights) · {} lanes · {} user slots × {} positions per chip · budget {} ({}, {} mm² die, {} MHz)",
            inp.architecture,
            int(inp.params),
            fixed(inp.bits_per_weight, 3),
            fixed(inp.weight_bits as f64 / 1e6, 1),
            inp.lanes,
            inp.users,
            int(inp.context as u64),
            b.name,
            b.process,
            short(b.die_mm2),
            short(b.clock_mhz),
        ),
    );

    // Summary.
    out.push_str("<h2>Summary</h2>\n");
    let mut s = Table::new("summary", &["figure", "value", "how"]);
    s.row(&[
        "chips per model".into(),
        num(format!("{} × {} mm²", c.chips, short(c.die_mm2))),
        format!("partition of {} stages into budget “{}”", t.stages, b.name),
    ]);
    s.row(&[
        "tokens/s per user".into(),
        num(sig(t.tokens_per_s_per_user)),
        "predicted: clock / latency, one user alone".into(),
    ]);
    if let Some(me) = &t.measured {
        s.row(&[
            "tokens/s per user (measured)".into(),
            num(sig(me.tokens_per_s_per_user)),
            format!(
                "measured in RTL simulation: clock / {} cycles",
                sig(me.latency_cycles_per_token)
            ),
        ]);
    }
    s.row(&[
        format!("aggregate tokens/s at {} users", t.users),
        num(sig(t.aggregate_tokens_per_s)),
        format!(
            "predicted: clock / max(slowest, latency / min(S, stages)) = clock / {} cycles",
            sig(t.cycles_per_token)
        ),
    ]);
    if let Some(me) = &t.measured {
        s.row(&[
            format!("aggregate tokens/s at {} users (measured)", me.users),
            num(sig(me.aggregate_tokens_per_s)),
            format!(
                "measured in RTL simulation: clock / {} cycles",
                sig(me.throughput_cycles_per_token)
            ),
        ]);
    }
    s.row(&[
        "latency per token".into(),
        num(format!(
            "{} cycles = {} µs",
            int(t.latency_cycles),
            sig(t.latency_cycles as f64 / t.clock_mhz)
        )),
        "predicted: Σ stage cycles + Σ link (busy + latency)".into(),
    ]);
    s.row(&[
        "energy per token".into(),
        num(format!("{} mJ", sig(e.total_mj))),
        format!(
            "{} J; dynamic {} + static {}",
            sig(e.total_j),
            joules(e.dynamic_j),
            joules(e.static_j)
        ),
    ]);
    s.row(&[
        "system power".into(),
        num(format!("{} W", sig(e.system_power_w))),
        format!("at {} tokens/s", sig(t.aggregate_tokens_per_s)),
    ]);
    s.row(&[
        "cost per million tokens".into(),
        num(usd(c.usd_per_mtoken)),
        format!(
            "hardware {} written off over {} years at 100% utilization + electricity",
            usd(c.hardware_usd),
            fixed(c.amortization_years, 1)
        ),
    ]);
    s.row(&[
        format!("context per user that fits ({} users)", m.users),
        num(opt_count(m.max_context_at_users)),
        format!("built: {} positions", int(m.context as u64)),
    ]);
    s.row(&[
        format!("users that fit ({} positions)", int(m.context as u64)),
        num(opt_count(m.max_users_at_context)),
        format!(
            "built: {} users; the built cache {}",
            m.users,
            if m.built_fits { "fits" } else { "does NOT fit" }
        ),
    ]);
    match &inp.quality {
        Some(q) => s.row(&[
            "perplexity".into(),
            num(fixed(q.ppl, 4)),
            format!(
                "float {} ({}), KL {} nats, top-1 {}",
                fixed(q.float_ppl, 4),
                signed_pct(q.ppl / q.float_ppl - 1.0),
                fixed(q.kl, 4),
                pct(q.top1)
            ),
        ]),
        None => s.row(&[
            "perplexity".into(),
            "no eval text given".into(),
            String::new(),
        ]),
    }
    out.push_str(&s.end());

    // Chips.
    out.push_str("<h2>Chips</h2>\n");
    let mut tc = Table::new(
        "",
        &[
            "chip",
            "stages",
            "ROM mm²",
            "SRAM mm²",
            "logic mm²",
            "total mm²",
            "of die",
            "free mm²",
            "chip cost",
            "power W",
        ],
    );
    for ch in &r.chips {
        tc.row(&[
            num(ch.index.to_string()),
            stage_span(&ch.stage_names),
            num(fixed(ch.rom_mm2, 2)),
            num(fixed(ch.sram_mm2, 2)),
            num(fixed(ch.logic_mm2, 2)),
            num(fixed(ch.area_mm2, 2)),
            num(pct(ch.utilization)),
            num(fixed(ch.free_mm2, 2)),
            num(usd(ch.chip_usd)),
            num(fixed(ch.power_w, 3)),
        ]);
    }
    out.push_str(&tc.end());
    p(
        &mut out,
        "note",
        &format!(
            "A chip costs a whole die of {} mm²: {} gross dies per 300 mm wafer, yield {} at {} defects/cm², wafer {}, × {} for package, board and test. Power at the predicted aggregate throughput, static {} W/mm² of area in use.",
            short(b.die_mm2),
            fixed(c.dies_per_wafer, 1),
            pct(c.die_yield),
            fixed(b.economics.defects_per_cm2, 2),
            usd(b.economics.wafer_usd),
            fixed(b.economics.system_cost_factor, 2),
            fixed(b.energy.static_w_per_mm2, 3)
        ),
    );
    for ch in &r.chips {
        let segs = [
            Segment {
                name: "ROM".into(),
                value: ch.rom_mm2,
                color: "#4e79a7".into(),
            },
            Segment {
                name: "KV cache".into(),
                value: ch.kv_built_mm2.min(ch.sram_mm2),
                color: "#f28e2b".into(),
            },
            Segment {
                name: "other SRAM".into(),
                value: (ch.sram_mm2 - ch.kv_built_mm2).max(0.0),
                color: "#ffbe7d".into(),
            },
            Segment {
                name: "logic".into(),
                value: ch.logic_mm2,
                color: "#59a14f".into(),
            },
            Segment {
                name: "free".into(),
                value: ch.free_mm2.max(0.0),
                color: "#e6e6e6".into(),
            },
        ];
        out.push_str(&svg::stacked(
            &format!(
                "Chip {}: {} — {} of {} mm² ({})",
                ch.index,
                stage_span(&ch.stage_names),
                fixed(ch.area_mm2, 1),
                short(ch.die_mm2),
                pct(ch.utilization)
            ),
            &segs,
            ch.die_mm2,
            "mm²",
        ));
        out.push('\n');
    }

    crate::html_compare::area(&mut out, r);

    // Timing.
    out.push_str("<h2>Timing</h2>\n");
    p(
        &mut out,
        "",
        &format!(
            "At {} MHz. Latency L = Σ stage cycles ({}) + Σ link busy + latency ({}) = {} cycles. Throughput bound B = max(slowest stage, slowest link busy) = {} cycles ({}). With S users at most min(S, stages) = {} tokens are in flight, so one token leaves every P = max(B, L / min(S, stages)) = {} cycles: aggregate tokens/s = clock / P, tokens/s per user alone = clock / L, users in flight = L / P.",
            short(t.clock_mhz),
            int(t.stage_cycles),
            int(t.link_cycles),
            int(t.latency_cycles),
            int(t.throughput_bound_cycles),
            t.bound_by,
            t.max_tokens_in_flight,
            sig(t.cycles_per_token)
        ),
    );
    let mut tt = Table::new("", &["figure", "predicted", "measured"]);
    let me = t.measured.as_ref();
    let mcol = |f: &dyn Fn(&crate::MeasuredTiming) -> String| {
        me.map_or("not simulated".into(), |x| num(f(x)))
    };
    tt.row(&[
        "users".into(),
        num(t.users.to_string()),
        mcol(&|x| x.users.to_string()),
    ]);
    tt.row(&[
        "latency, cycles per token".into(),
        num(int(t.latency_cycles)),
        mcol(&|x| {
            format!(
                "{} ({})",
                sig(x.latency_cycles_per_token),
                signed_pct(x.latency_vs_predicted)
            )
        }),
    ]);
    tt.row(&[
        "cycles per token at these users".into(),
        num(sig(t.cycles_per_token)),
        mcol(&|x| {
            format!(
                "{} ({} vs predicted {})",
                sig(x.throughput_cycles_per_token),
                signed_pct(x.throughput_vs_predicted),
                sig(x.predicted_cycles_per_token)
            )
        }),
    ]);
    tt.row(&[
        "tokens/s per user alone".into(),
        num(sig(t.tokens_per_s_per_user)),
        mcol(&|x| sig(x.tokens_per_s_per_user)),
    ]);
    tt.row(&[
        "tokens/s per user, all users busy".into(),
        num(sig(t.tokens_per_s_per_user_at_users)),
        mcol(&|x| sig(x.aggregate_tokens_per_s / x.users.max(1) as f64)),
    ]);
    tt.row(&[
        "aggregate tokens/s".into(),
        num(sig(t.aggregate_tokens_per_s)),
        mcol(&|x| sig(x.aggregate_tokens_per_s)),
    ]);
    tt.row(&[
        "users in flight".into(),
        num(fixed(t.users_in_flight, 2)),
        mcol(&|x| fixed(x.users_in_flight, 2)),
    ]);
    tt.row(&[
        "peak aggregate tokens/s (clock / B)".into(),
        num(sig(t.peak_aggregate_tokens_per_s)),
        String::new(),
    ]);
    tt.row(&[
        "users to reach the bound (L / B)".into(),
        num(fixed(t.users_to_saturate, 2)),
        String::new(),
    ]);
    out.push_str(&tt.end());
    clock_check(&mut out, t);
    if let Some(x) = me {
        p(
            &mut out,
            "note",
            &format!(
                "Measured with “{}” over {} positions, {}. Energy and cost below use the predicted figures.",
                x.command,
                x.positions,
                if x.bit_exact {
                    "bit-exact against the reference"
                } else {
                    "NOT bit-exact against the reference"
                }
            ),
        );
    }
    let mut bars = Vec::new();
    for st in &r.stages {
        bars.push(Bar {
            label: st.name.clone(),
            value: st.cycles as f64,
            color: st.chip.map_or("#999999".into(), chip_color),
            note: int(st.cycles),
        });
        for l in r.links.iter().filter(|l| l.after_stage == st.index) {
            bars.push(Bar {
                label: "link".into(),
                value: l.busy_cycles as f64,
                color: "#444444".into(),
                note: format!(
                    "{} busy + {} latency",
                    int(l.busy_cycles),
                    int(l.latency_cycles)
                ),
            });
        }
    }
    let mut legend: Vec<(String, String)> = r
        .chips
        .iter()
        .map(|ch| (format!("chip {}", ch.index), chip_color(ch.index)))
        .collect();
    if !r.links.is_empty() {
        legend.push(("link (busy cycles)".into(), "#444444".into()));
    }
    out.push_str(&svg::hbars(
        &format!(
            "Cycles per token by stage (bound: {}, {} cycles)",
            t.bound_by,
            int(t.throughput_bound_cycles)
        ),
        &bars,
        "cycles per token",
        &legend,
    ));
    out.push('\n');
    let _ = writeln!(
        out,
        "<details><summary>Per-stage figures ({} stages)</summary>",
        r.stages.len()
    );
    let mut ts = Table::new(
        "",
        &[
            "stage",
            "name",
            "chip",
            "cycles",
            "MACs",
            "ROM bits read",
            "SRAM bits",
            "energy",
        ],
    );
    for st in &r.stages {
        ts.row(&[
            num(st.index.to_string()),
            st.name.clone(),
            st.chip.map_or("none".into(), |k| num(k.to_string())),
            num(int(st.cycles)),
            num(int(st.macs)),
            num(int(st.rom_read_bits)),
            num(int(st.sram_access_bits)),
            num(joules(st.energy_j)),
        ]);
    }
    out.push_str(&ts.end());
    out.push_str("</details>\n");

    // Links.
    out.push_str("<h2>Links</h2>\n");
    if r.links.is_empty() {
        p(&mut out, "", "One chip: no chip-to-chip links.");
    } else {
        p(
            &mut out,
            "",
            &format!(
                "{} bits per cycle each way, {} cycles latency, {} pJ per bit. Busy cycles: the chips move one 32-bit word per cycle into a link, so a link of 32 bits or more is busy one cycle per word (a narrower one 32/width + 1 cycles per word).",
                b.link_bits_per_cycle,
                b.link_latency_cycles,
                fixed(b.energy.link_pj_per_bit, 3)
            ),
        );
        let mut tl = Table::new(
            "",
            &[
                "after stage",
                "chips",
                "bits/token",
                "bytes/token",
                "busy cycles",
                "latency cycles",
                "energy/token",
            ],
        );
        let chip = |k: Option<usize>| k.map_or("?".into(), |k| k.to_string());
        for l in &r.links {
            tl.row(&[
                l.after_stage_name.clone(),
                format!("{} → {}", chip(l.from_chip), chip(l.to_chip)),
                num(int(l.bits_per_token)),
                num(fixed(l.bytes_per_token, 1)),
                num(int(l.busy_cycles)),
                num(int(l.latency_cycles)),
                num(joules(l.energy_j)),
            ]);
        }
        tl.row_class(
            "total",
            &[
                "total".into(),
                String::new(),
                num(int(r.link_bits_per_token)),
                num(fixed(r.link_bytes_per_token, 1)),
                num(int(r.links.iter().map(|l| l.busy_cycles).sum())),
                num(int(r.links.iter().map(|l| l.latency_cycles).sum())),
                num(joules(e.link_j)),
            ],
        );
        out.push_str(&tl.end());
    }

    // Memory.
    out.push_str("<h2>Context and users that fit</h2>\n");
    p(
        &mut out,
        "",
        &format!(
            "Per chip, the area left for the KV cache is die − ROM − logic − fixed SRAM; at {} Mbit/mm² it holds K bits. With k KV bits per position and user on that chip, the context per user at S = {} users is ⌊K / (S·k)⌋ and the users at T = {} positions ⌊K / (T·k)⌋; the system takes the minimum over chips. Chips without a KV cache do not limit either.",
            fixed(b.sram_mbit_per_mm2, 2),
            m.users,
            int(m.context as u64)
        ),
    );
    let mut tm = Table::new(
        "",
        &[
            "chip",
            "KV bits per position",
            "fixed SRAM Mbit",
            "free for KV mm²",
            "free KV Mbit",
            "built S×T KV mm²",
            "max context at S",
            "max users at T",
        ],
    );
    for ch in &r.chips {
        tm.row(&[
            num(ch.index.to_string()),
            num(int(ch.kv_bits_per_position)),
            num(fixed(ch.fixed_sram_bits as f64 / 1e6, 3)),
            num(fixed(ch.kv_free_mm2, 2)),
            num(fixed(ch.kv_free_bits as f64 / 1e6, 3)),
            num(fixed(ch.kv_built_mm2, 3)),
            num(ch.max_context_at_users.map_or("—".into(), int)),
            num(ch.max_users_at_context.map_or("—".into(), int)),
        ]);
    }
    tm.row_class(
        "total",
        &[
            "system".into(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            num(opt_count(m.max_context_at_users)),
            num(opt_count(m.max_users_at_context)),
        ],
    );
    out.push_str(&tm.end());

    crate::html_compare::curves(&mut out, r);

    // Energy.
    out.push_str("<h2>Energy per token</h2>\n");
    p(
        &mut out,
        "",
        &format!(
            "Σ stages (MACs × {} pJ + ROM bits read × {} pJ + SRAM bits × {} pJ) + link bits × {} pJ, plus static power ({} W/mm² × {} mm² in use = {} W) divided by the aggregate {} tokens/s. Per-operation energies at the {} node: SRAM from Jouppi et al. (ISCA 2021, 7 nm); the MAC and ROM read are assumptions (sources in the table at the end).",
            short(e.mac_pj),
            short(e.rom_pj_per_bit),
            short(e.sram_pj_per_bit),
            short(e.link_pj_per_bit),
            fixed(e.static_w_per_mm2, 3),
            fixed(r.chips.iter().map(|c| c.area_mm2).sum::<f64>(), 1),
            sig(e.static_w),
            sig(t.aggregate_tokens_per_s),
            b.process,
        ),
    );
    let parts = [
        ("MAC", e.mac_j, format!("{} MACs", int(e.macs))),
        (
            "ROM",
            e.rom_j,
            format!("{} bits read", int(e.rom_read_bits)),
        ),
        (
            "SRAM",
            e.sram_j,
            format!("{} bits", int(e.sram_access_bits)),
        ),
        ("link", e.link_j, format!("{} bits", int(e.link_bits))),
        ("static", e.static_j, format!("{} W", sig(e.static_w))),
    ];
    let (scale, unit) = crate::fmt::energy_unit(e.total_j);
    let share = |v: f64| {
        if e.total_j > 0.0 {
            pct(v / e.total_j)
        } else {
            "0.0%".into()
        }
    };
    let colors = ["#4e79a7", "#76b7b2", "#f28e2b", "#444444", "#bab0ac"];
    let bars: Vec<Bar> = parts
        .iter()
        .zip(colors)
        .map(|((name, j, _), color)| Bar {
            label: name.to_string(),
            value: j * scale,
            color: color.into(),
            note: format!("{} ({})", joules(*j), share(*j)),
        })
        .collect();
    out.push_str(&svg::hbars(
        &format!("Energy per token: {} in total", joules(e.total_j)),
        &bars,
        &format!("energy per token ({unit})"),
        &[],
    ));
    out.push('\n');
    let mut te = Table::new(
        "",
        &["part", "count per token", "energy per token", "share"],
    );
    for (name, j, count) in &parts {
        te.row(&[
            name.to_string(),
            num(count.clone()),
            num(joules(*j)),
            num(share(*j)),
        ]);
    }
    te.row_class(
        "total",
        &[
            "total".into(),
            String::new(),
            num(format!("{} ({} J)", joules(e.total_j), sig(e.total_j))),
            num(pct(if e.total_j > 0.0 { 1.0 } else { 0.0 })),
        ],
    );
    out.push_str(&te.end());
    p(
        &mut out,
        "",
        &format!(
            "System power at {} tokens/s: {} W ({} W per chip on average).",
            sig(t.aggregate_tokens_per_s),
            sig(e.system_power_w),
            sig(e.system_power_w / r.chips.len().max(1) as f64)
        ),
    );

    // Cost.
    out.push_str("<h2>Cost per million tokens</h2>\n");
    let mut tk = Table::new("", &["figure", "value"]);
    for (k, v) in [
        ("chips per model", c.chips.to_string()),
        ("cost per chip", usd(c.chip_usd)),
        ("hardware", usd(c.hardware_usd)),
        (
            "written off over",
            format!("{} years of 365 days", fixed(c.amortization_years, 1)),
        ),
        ("utilization", format!("{} (assumed)", pct(c.utilization))),
        ("hardware per second", usd(c.capex_usd_per_s)),
        ("system power", format!("{} W", sig(c.system_power_w))),
        (
            "electricity",
            format!("{} per kWh", usd(c.electricity_usd_per_kwh)),
        ),
        ("electricity per second", usd(c.energy_usd_per_s)),
        ("aggregate tokens/s", sig(t.aggregate_tokens_per_s)),
        ("hardware per million tokens", usd(c.capex_usd_per_mtoken)),
        (
            "electricity per million tokens",
            usd(c.energy_usd_per_mtoken),
        ),
    ] {
        tk.row(&[k.into(), num(v)]);
    }
    tk.row_class(
        "total",
        &["cost per million tokens".into(), num(usd(c.usd_per_mtoken))],
    );
    out.push_str(&tk.end());
    p(
        &mut out,
        "note",
        "Cost per million tokens = (hardware / write-off seconds + power × price of energy) / aggregate tokens/s × 10⁶.",
    );

    // Quality.
    out.push_str("<h2>Quality</h2>\n");
    match &inp.quality {
        Some(q) => {
            let mut tq = Table::new(
                "",
                &[
                    "text",
                    "tokens scored",
                    "perplexity",
                    "float perplexity",
                    "vs float",
                    "KL (nats)",
                    "top-1",
                ],
            );
            tq.row(&[
                q.text.clone(),
                num(int(q.tokens_scored as u64)),
                num(fixed(q.ppl, 4)),
                num(fixed(q.float_ppl, 4)),
                num(signed_pct(q.ppl / q.float_ppl - 1.0)),
                num(fixed(q.kl, 4)),
                num(pct(q.top1)),
            ]);
            out.push_str(&tq.end());
        }
        None => p(&mut out, "", "No eval text given: no quality figures."),
    }
    out.push_str("<h3>Quality versus area</h3>\n");
    let sweep = &inp.quality_vs_area;
    if sweep.is_empty() {
        p(
            &mut out,
            "",
            "No sweep: no quality-versus-area points were given.",
        );
    } else {
        let by_area = sweep.iter().all(|q| q.area_mm2 > 0.0);
        let points: Vec<Point> = sweep
            .iter()
            .map(|q| Point {
                x: if by_area { q.area_mm2 } else { q.rom_mbit },
                y: q.ppl,
                label: format!("{} ({} b/w)", q.label, fixed(q.bits_per_weight, 2)),
            })
            .collect();
        let x_label = if by_area {
            "silicon area, mm²"
        } else {
            "weight ROM, Mbit"
        };
        out.push_str(&svg::scatter(
            &format!(
                "Perplexity versus {} across bit settings",
                if by_area { "area" } else { "ROM" }
            ),
            &points,
            x_label,
            "perplexity",
            inp.quality
                .as_ref()
                .map(|q| (q.float_ppl, format!("float {}", fixed(q.float_ppl, 2)))),
        ));
        out.push('\n');
        let mut tq = Table::new(
            "",
            &[
                "setting",
                "bits/weight",
                "ROM Mbit",
                "area mm²",
                "chips",
                "perplexity",
                "KL (nats)",
                "top-1",
            ],
        );
        for q in sweep {
            tq.row(&[
                q.label.clone(),
                num(fixed(q.bits_per_weight, 3)),
                num(fixed(q.rom_mbit, 1)),
                num(fixed(q.area_mm2, 1)),
                num(q.chips.to_string()),
                num(fixed(q.ppl, 4)),
                num(fixed(q.kl, 4)),
                num(pct(q.top1)),
            ]);
        }
        out.push_str(&tq.end());
    }

    // Sensitivity to the mask-ROM density.
    if !inp.rom_density_sensitivity.is_empty() {
        out.push_str("<h2>Sensitivity to the mask-ROM density</h2>\n");
        p(
            &mut out,
            "note",
            "The mask-ROM density is an assumption of the budget. The same stages, partitioned again at other densities (everything else as built):",
        );
        let mut ts = Table::new(
            "",
            &[
                "ROM Mbit/mm²",
                "chips",
                "context per user",
                "tokens/s per user",
                "aggregate tokens/s",
                "energy per token",
                "USD per Mtoken",
            ],
        );
        for x in &inp.rom_density_sensitivity {
            ts.row(&[
                num(fixed(x.rom_mbit_per_mm2, 1)),
                num(x.chips.to_string()),
                num(opt_count(x.max_context_at_users)),
                num(sig(x.tokens_per_s_per_user)),
                num(sig(x.aggregate_tokens_per_s)),
                num(joules(x.energy_per_token_j)),
                num(usd(x.usd_per_mtoken)),
            ]);
        }
        out.push_str(&ts.end());
    }

    crate::html_compare::comparison(&mut out, r);

    // Assumptions.
    out.push_str("<h2>Assumptions and sources</h2>\n");
    let mut ta = Table::new("", &["figure", "value", "kind", "source"]);
    for a in &r.assumptions {
        ta.row(&[
            a.field.clone(),
            if a.value.is_empty() {
                String::new()
            } else {
                num(a.value.clone())
            },
            match a.kind {
                SourceKind::Assumption => "assumption".into(),
                SourceKind::Citation => "cited".into(),
            },
            a.source.clone(),
        ]);
    }
    out.push_str(&ta.end());
    let _ = write!(
        out,
        "<p class=\"note\">{} · written by taalasc-report from the build's stage costs, partition and chip budget.</p>\n</main>\n</body>\n</html>\n",
        esc(&r.schema)
    );
    out
}

/// The budget's clock against the synthesized critical path.
fn clock_check(out: &mut String, t: &crate::Timing) {
    let Some(c) = &t.clock_check else {
        p(
            out,
            "note",
            &format!(
                "The clock of {} MHz is the budget's design target: no synthesized critical path is set against it (the budget gives no FO4 figure, or no unit of this design was synthesized).",
                short(t.clock_mhz)
            ),
        );
        return;
    };
    let ev = &c.evidence;
    let mut caveats = Vec::new();
    if !ev.at_design_widths {
        caveats.push("some units were synthesized only at other widths and the nearest is taken: paths grow with width, so for a wider design this is a lower bound".to_string());
    }
    if !ev.unmeasured.is_empty() {
        caveats.push(format!(
            "not synthesized at all (their paths are unknown): {}",
            ev.unmeasured.join(", ")
        ));
    }
    let widths = if caveats.is_empty() {
        "every unit was synthesized at this design's width".to_string()
    } else {
        caveats.join("; ")
    };
    p(
        out,
        if c.budget_clock_met { "" } else { "note" },
        &format!(
            "Clock check. The longest critical path among this design's synthesized units is {} ({}) on {}: {} ns = {} FO4; {}. At {} ps per FO4 ({}) that allows at most {} MHz, logic only (no flop overhead, wires or margin). {} At min({} MHz, {} MHz) one user alone gets {} tokens/s.",
            ev.unit,
            ev.params,
            ev.library,
            fixed(ev.crit_ns, 3),
            fixed(ev.crit_fo4, 1),
            widths,
            short(ev.node_fo4_ps),
            ev.node_fo4_source,
            sig(c.max_clock_mhz),
            if c.budget_clock_met {
                format!("The budget's {} MHz is within it.", short(t.clock_mhz))
            } else {
                format!(
                    "The budget's {} MHz is NOT: every figure on this page assumes a clock the synthesized logic does not reach without more pipeline registers.",
                    short(t.clock_mhz)
                )
            },
            short(t.clock_mhz),
            sig(c.max_clock_mhz),
            sig(c.tokens_per_s_per_user_at_max_clock)
        ),
    );
}
