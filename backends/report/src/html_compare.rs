//! The report page's sections on area by kind, curves over
//! context and users, the GPU baseline and the comparison rows.

use crate::fmt::{esc, fixed, int, joules, short, sig, usd};
use crate::html_table::{num, p, Table};
use crate::svg::{self, Series, PALETTE};
use crate::{SourceKind, SystemReport};

fn opt(x: Option<f64>, f: impl Fn(f64) -> String) -> String {
    x.map_or("—".into(), f)
}

/// A source as page text: web addresses without their scheme, so the page
/// holds no link (report.json keeps them whole).
fn cite(s: &str) -> String {
    s.replace("https://", "").replace("http://", "")
}

fn kind(k: SourceKind) -> String {
    match k {
        SourceKind::Assumption => "assumption".into(),
        SourceKind::Citation => "cited".into(),
    }
}

/// Area per chip by kind, with the densities and their sources.
pub fn area(out: &mut String, r: &SystemReport) {
    let a = &r.area_split;
    out.push_str("<h2>Area by kind</h2>\n");
    p(out, "", "Each chip's area split into mask ROM, the KV cache at the built users and context, other SRAM (scratchpads and buffers) and logic. No foundry publishes an N6 mask-ROM density: 100 Mbit/mm² is an assumption, so the ROM is always shown at 50 Mbit/mm² as well.");
    let mut td = Table::new("", &["area", "density", "unit", "kind", "source"]);
    for d in &a.densities {
        td.row(&[
            d.part.clone(),
            num(short(d.value)),
            d.unit.clone(),
            kind(d.kind),
            cite(&d.source),
        ]);
    }
    out.push_str(&td.end());
    let mut head: Vec<String> = [
        "chip",
        "ROM mm²",
        "KV SRAM mm²",
        "other SRAM mm²",
        "logic mm²",
        "total mm²",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(c) = a.chips.first() {
        for x in &c.rom_at {
            head.push(format!(
                "total with ROM at {} Mbit/mm²",
                short(x.rom_mbit_per_mm2)
            ));
        }
    }
    let head_refs: Vec<&str> = head.iter().map(|s| s.as_str()).collect();
    let mut tc = Table::new("", &head_refs);
    for c in &a.chips {
        let mut row = vec![
            num(c.chip.to_string()),
            num(fixed(c.rom_mm2, 2)),
            num(fixed(c.kv_sram_mm2, 2)),
            num(fixed(c.other_sram_mm2, 2)),
            num(fixed(c.logic_mm2, 2)),
            num(fixed(c.total_mm2, 2)),
        ];
        for x in &c.rom_at {
            row.push(num(format!(
                "{} (ROM {}){}",
                fixed(x.total_mm2, 2),
                fixed(x.rom_mm2, 2),
                if x.fits_die { "" } else { ", over the die" }
            )));
        }
        tc.row(&row);
    }
    out.push_str(&tc.end());
    out.push_str("<h3>Reference densities (not used in the arithmetic)</h3>\n");
    let mut tr = Table::new("", &["figure", "value", "unit", "kind", "source"]);
    for d in &a.references {
        tr.row(&[
            d.part.clone(),
            num(short(d.value)),
            d.unit.clone(),
            kind(d.kind),
            cite(&d.source),
        ]);
    }
    out.push_str(&tr.end());
}

/// Curves over context and over users in flight.
pub fn curves(out: &mut String, r: &SystemReport) {
    let c = &r.curves;
    out.push_str("<h2>Speed and energy over context</h2>\n");
    for rule in &c.rules[..2.min(c.rules.len())] {
        p(out, "note", rule);
    }
    let mut t = Table::new(
        "",
        &[
            "context",
            "fits",
            "KV SRAM mm² (1 user)",
            "latency cycles",
            "tokens/s per user",
            "energy per token (1 user)",
            "users that fit",
            "aggregate tokens/s at those users",
            "energy per token at those users",
        ],
    );
    for q in &c.over_context {
        t.row(&[
            num(int(q.context as u64)),
            match &q.reason {
                None => "yes".into(),
                Some(why) => format!("no: {why}"),
            },
            num(fixed(q.kv_sram_mm2, 2)),
            num(int(q.latency_cycles)),
            num(opt(q.tokens_per_s_per_user, sig)),
            num(opt(q.energy_per_token_j, joules)),
            num(q.max_users.map_or("—".into(), int)),
            num(opt(q.aggregate_tokens_per_s_at_max_users, sig)),
            num(opt(q.energy_per_token_j_at_max_users, joules)),
        ]);
    }
    out.push_str(&t.end());
    let fit: Vec<_> = c.over_context.iter().filter(|q| q.fits).collect();
    if !fit.is_empty() {
        let speed: Vec<(f64, f64)> = fit
            .iter()
            .filter_map(|q| Some((q.context as f64, q.tokens_per_s_per_user?)))
            .collect();
        out.push_str(&svg::lines(
            "Tokens/s per user over context (one user, contexts that fit)",
            &[Series {
                name: "this build".into(),
                color: PALETTE[0].into(),
                dashed: false,
                points: speed,
            }],
            "context (positions)",
            "tokens/s per user",
            false,
            false,
        ));
        out.push('\n');
        let energy: Vec<(f64, f64)> = fit
            .iter()
            .filter_map(|q| Some((q.context as f64, q.energy_per_token_j? * 1e3)))
            .collect();
        out.push_str(&svg::lines(
            "Energy per token over context (one user)",
            &[Series {
                name: "this build".into(),
                color: PALETTE[1].into(),
                dashed: false,
                points: energy,
            }],
            "context (positions)",
            "mJ per token",
            false,
            false,
        ));
        out.push('\n');
    }

    out.push_str("<h2>Users in flight</h2>\n");
    if let Some(rule) = c.rules.get(2) {
        p(out, "note", rule);
    }
    p(out, "", &c.users_limit);
    let mut tu = Table::new(
        "",
        &[
            "users",
            "cycles per token",
            "aggregate tokens/s",
            "tokens/s per user",
            "energy per token",
            "USD per Mtoken",
            "KV SRAM mm²",
        ],
    );
    for q in &c.over_users {
        tu.row(&[
            num(int(q.users)),
            num(sig(q.cycles_per_token)),
            num(sig(q.aggregate_tokens_per_s)),
            num(sig(q.tokens_per_s_per_user)),
            num(joules(q.energy_per_token_j)),
            num(usd(q.usd_per_mtoken)),
            num(fixed(q.kv_sram_mm2, 2)),
        ]);
    }
    out.push_str(&tu.end());
    if !c.over_users.is_empty() {
        let pts = |f: fn(&crate::curves::UsersPoint) -> f64| -> Vec<(f64, f64)> {
            c.over_users
                .iter()
                .map(|q| (q.users as f64, f(q)))
                .collect()
        };
        let mut series = vec![
            Series {
                name: "this build: aggregate".into(),
                color: PALETTE[0].into(),
                dashed: false,
                points: pts(|q| q.aggregate_tokens_per_s),
            },
            Series {
                name: "this build: per user".into(),
                color: PALETTE[1].into(),
                dashed: false,
                points: pts(|q| q.tokens_per_s_per_user),
            },
        ];
        for (i, s) in r
            .gpu_baseline
            .series
            .iter()
            .filter(|s| s.precision == "BF16")
            .enumerate()
        {
            let fitting = s.points.iter().filter(|q| q.fits);
            series.push(Series {
                name: format!("{} BF16: aggregate", s.gpu),
                color: PALETTE[(2 + 2 * i) % PALETTE.len()].into(),
                dashed: true,
                points: fitting
                    .clone()
                    .filter_map(|q| Some((q.batch as f64, q.aggregate_tokens_per_s?)))
                    .collect(),
            });
            series.push(Series {
                name: format!("{} BF16: per user", s.gpu),
                color: PALETTE[(3 + 2 * i) % PALETTE.len()].into(),
                dashed: true,
                points: fitting
                    .filter_map(|q| Some((q.batch as f64, q.tokens_per_s_per_user?)))
                    .collect(),
            });
        }
        out.push_str(&svg::lines(
            &format!(
                "Tokens/s over users in flight at {} positions, beside the GPU roofline",
                int(r.input.context as u64)
            ),
            &series,
            "users in flight (GPU: batch)",
            "tokens/s",
            true,
            true,
        ));
        out.push('\n');
        let mut es = vec![Series {
            name: "this build".into(),
            color: PALETTE[0].into(),
            dashed: false,
            points: pts(|q| q.energy_per_token_j * 1e3),
        }];
        for (i, s) in r
            .gpu_baseline
            .series
            .iter()
            .filter(|s| s.precision == "BF16")
            .enumerate()
        {
            es.push(Series {
                name: format!("{} BF16", s.gpu),
                color: PALETTE[(2 + 2 * i) % PALETTE.len()].into(),
                dashed: true,
                points: s
                    .points
                    .iter()
                    .filter_map(|q| Some((q.batch as f64, q.energy_per_token_j? * 1e3)))
                    .collect(),
            });
        }
        out.push_str(&svg::lines(
            "Energy per token over users in flight",
            &es,
            "users in flight (GPU: batch)",
            "mJ per token",
            true,
            true,
        ));
        out.push('\n');
    }
}

/// The comparison rows and the GPU baseline's tables.
pub fn comparison(out: &mut String, r: &SystemReport) {
    out.push_str("<h2>Against other systems</h2>\n");
    p(out, "", "Each row says what kind of figure it is: this report's model, a vendor's claim, a simulation after layout, or a roofline of a GPU's published figures. Figures of different models are not the same work per token.");
    let mut t = Table::new(
        "",
        &[
            "system",
            "kind",
            "model",
            "chips",
            "node",
            "area mm²",
            "tokens/s per user",
            "aggregate tokens/s",
            "energy per token",
            "USD per Mtoken",
            "power W",
            "source",
        ],
    );
    for row in &r.comparison {
        t.row(&[
            row.system.clone(),
            row.kind.clone(),
            row.model.clone(),
            num(opt(row.chips, sig)),
            row.node.clone(),
            num(opt(row.area_mm2, |x| fixed(x, 0))),
            num(opt(row.tokens_per_s_per_user, sig)),
            num(opt(row.aggregate_tokens_per_s, sig)),
            num(opt(row.energy_per_token_j, joules)),
            num(opt(row.usd_per_mtoken, usd)),
            num(opt(row.power_w, sig)),
            cite(&row.source),
        ]);
    }
    out.push_str(&t.end());

    let g = &r.gpu_baseline;
    out.push_str("<h2>GPU serving baseline</h2>\n");
    p(
        out,
        "",
        &format!(
            "The same model on one GPU, batch 1 to 256, every user at {} positions: {} weights read per token ({} stored), {} KV values per position, {} attention MACs per cached position.",
            int(g.context),
            int(g.model.weights_per_token),
            int(g.model.params),
            int(g.model.kv_values_per_position),
            int(g.model.attn_macs_per_position)
        ),
    );
    let mut ta = Table::new("", &["rule", "statement"]);
    for (k, v) in &g.assumptions {
        ta.row(&[k.clone(), cite(v)]);
    }
    out.push_str(&ta.end());
    let mut tg = Table::new("", &["GPU", "figure", "value", "source"]);
    for s in &g.gpus {
        for (k, v) in [
            ("hbm_bytes_per_s", s.hbm_bytes_per_s),
            ("hbm_bytes", s.hbm_bytes),
            ("peak_flops_16bit", s.peak_flops_16bit),
            ("peak_flops_8bit", s.peak_flops_8bit),
            ("board_w", s.board_w),
            ("usd_per_hour", s.usd_per_hour),
        ] {
            tg.row(&[
                s.name.clone(),
                k.into(),
                num(sig(v)),
                cite(&s.sources.get(k).cloned().unwrap_or_default()),
            ]);
        }
    }
    out.push_str(&tg.end());
    for s in &g.series {
        let _ = std::fmt::Write::write_fmt(
            out,
            format_args!(
                "<h3>{} {}: {}</h3>\n",
                esc(&s.gpu),
                esc(&s.precision),
                esc(&s.limit)
            ),
        );
        let mut tb = Table::new(
            "",
            &[
                "batch",
                "bound",
                "tokens/s per user",
                "aggregate tokens/s",
                "energy per token",
                "USD per Mtoken",
            ],
        );
        for q in &s.points {
            tb.row(&[
                num(int(q.batch)),
                q.bound.clone().unwrap_or_else(|| "does not fit HBM".into()),
                num(opt(q.tokens_per_s_per_user, sig)),
                num(opt(q.aggregate_tokens_per_s, sig)),
                num(opt(q.energy_per_token_j, joules)),
                num(opt(q.usd_per_mtoken, usd)),
            ]);
        }
        out.push_str(&tb.end());
    }
}
