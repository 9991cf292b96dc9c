//! Hand-written inline SVG charts: a horizontal bar chart, a stacked
//! horizontal bar and a scatter with a line. Every coordinate is printed
//! with one decimal, every tick label by a fixed rule, so the same data
//! gives the same bytes. No `xmlns` (inline SVG in HTML needs none), so the
//! page holds no URL at all.

use crate::fmt::{esc, fixed, int};
use std::fmt::Write;

/// Width of every chart, px (the viewBox; the page scales it down).
pub const WIDTH: f64 = 1000.0;
const FONT: &str = "font-family=\"sans-serif\" font-size=\"12\"";
/// Rough advance of one 12 px sans-serif character, for layout.
const CHAR_PX: f64 = 6.8;

/// Chip colours, by chip index modulo the length.
pub const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

fn n(x: f64) -> String {
    fixed(x, 1)
}

/// A linear axis from `lo` to `hi` with ticks every `step`.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    pub lo: f64,
    pub hi: f64,
    pub step: f64,
}

impl Axis {
    /// Round limits around `[lo, hi]` with about `target` intervals of 1, 2
    /// or 5 times a power of ten.
    pub fn nice(lo: f64, hi: f64, target: usize) -> Axis {
        let (lo, hi) = if lo.is_finite() && hi.is_finite() {
            (lo.min(hi), lo.max(hi))
        } else {
            (0.0, 1.0)
        };
        let (lo, hi) = if hi - lo <= 0.0 {
            if hi == 0.0 {
                (0.0, 1.0)
            } else {
                (lo - lo.abs() * 0.1, hi + hi.abs() * 0.1)
            }
        } else {
            (lo, hi)
        };
        let raw = (hi - lo) / target.max(1) as f64;
        let mag = 10f64.powf(raw.log10().floor());
        let norm = raw / mag;
        let step = mag
            * if norm <= 1.0 {
                1.0
            } else if norm <= 2.0 {
                2.0
            } else if norm <= 5.0 {
                5.0
            } else {
                10.0
            };
        // Snap to the step grid; the tiny slack keeps 3.0000000001 from
        // opening a whole new interval.
        let a = ((lo / step) + 1e-9).floor() * step;
        let b = ((hi / step) - 1e-9).ceil() * step;
        Axis {
            lo: a,
            hi: b.max(a + step),
            step,
        }
    }

    pub fn ticks(&self) -> Vec<f64> {
        let count = ((self.hi - self.lo) / self.step).round() as usize;
        (0..=count)
            .map(|i| self.lo + i as f64 * self.step)
            .collect()
    }

    /// Where `v` falls between `a` (at `lo`) and `b` (at `hi`).
    pub fn map(&self, v: f64, a: f64, b: f64) -> f64 {
        a + (v - self.lo) / (self.hi - self.lo) * (b - a)
    }

    /// A tick label: `k`/`M`/`G` for large steps, enough decimals for the
    /// step otherwise.
    pub fn label(&self, v: f64) -> String {
        if v.abs() < self.step * 1e-9 {
            return "0".into();
        }
        let (div, suffix) = if self.step >= 1e9 {
            (1e9, "G")
        } else if self.step >= 1e6 {
            (1e6, "M")
        } else if self.step >= 1e3 {
            (1e3, "k")
        } else {
            (1.0, "")
        };
        let s = self.step / div;
        let d = if s >= 1.0 {
            0
        } else {
            (-(s.log10() + 1e-9).floor()) as usize
        };
        let v = v / div;
        if d == 0 && suffix.is_empty() && v.abs() >= 1000.0 {
            let r = int(v.abs().round() as u64);
            return if v < 0.0 { format!("-{r}") } else { r };
        }
        format!("{}{suffix}", fixed(v, d))
    }
}

fn open(out: &mut String, height: f64, title: &str) {
    let _ = write!(
        out,
        "<svg class=\"chart\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{t}\" {FONT}>\
<rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"#ffffff\"/>\
<text x=\"{cx}\" y=\"18\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">{t}</text>",
        w = n(WIDTH),
        h = n(height),
        cx = n(WIDTH / 2.0),
        t = esc(title),
    );
}

/// Vertical grid lines and tick labels of an x axis at `y`.
fn x_axis(out: &mut String, axis: &Axis, x0: f64, x1: f64, y_top: f64, y: f64, label: &str) {
    for t in axis.ticks() {
        let x = axis.map(t, x0, x1);
        let _ = write!(
            out,
            "<line x1=\"{x}\" y1=\"{yt}\" x2=\"{x}\" y2=\"{y5}\" stroke=\"#dddddd\"/>\
<text x=\"{x}\" y=\"{yl}\" text-anchor=\"middle\">{l}</text>",
            x = n(x),
            yt = n(y_top),
            y5 = n(y + 5.0),
            yl = n(y + 18.0),
            l = esc(&axis.label(t)),
        );
    }
    let _ = write!(
        out,
        "<line x1=\"{a}\" y1=\"{y}\" x2=\"{b}\" y2=\"{y}\" stroke=\"#333333\"/>\
<text x=\"{c}\" y=\"{yl}\" text-anchor=\"middle\">{l}</text>",
        a = n(x0),
        b = n(x1),
        y = n(y),
        c = n((x0 + x1) / 2.0),
        yl = n(y + 34.0),
        l = esc(label),
    );
}

fn clip(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max_chars.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// One bar of [`hbars`].
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub color: String,
    /// Printed after the bar (the value with its unit).
    pub note: String,
}

/// A horizontal bar chart: one row per bar, labels on the left, values
/// after the bars, an x axis from 0 with ticks. `legend` is drawn under the
/// axis as coloured swatches.
pub fn hbars(title: &str, bars: &[Bar], x_label: &str, legend: &[(String, String)]) -> String {
    let row = 20.0;
    let label_chars = bars
        .iter()
        .map(|b| b.label.chars().count())
        .max()
        .unwrap_or(0)
        .min(32);
    let x0 = (label_chars as f64 * CHAR_PX + 16.0).max(70.0);
    let note_chars = bars
        .iter()
        .map(|b| b.note.chars().count())
        .max()
        .unwrap_or(0);
    let x1 = WIDTH - (note_chars as f64 * CHAR_PX + 20.0).max(40.0);
    let top = 34.0;
    let plot_h = row * bars.len().max(1) as f64;
    let axis_y = top + plot_h + 4.0;
    let legend_h = if legend.is_empty() {
        0.0
    } else {
        22.0 * legend_rows(legend) as f64
    };
    let height = axis_y + 46.0 + legend_h;
    let vmax = bars.iter().map(|b| b.value).fold(0.0f64, f64::max);
    let axis = Axis::nice(0.0, vmax, 5);
    let mut out = String::new();
    open(&mut out, height, title);
    x_axis(&mut out, &axis, x0, x1, top, axis_y, x_label);
    for (i, b) in bars.iter().enumerate() {
        let y = top + i as f64 * row;
        let w = (axis.map(b.value.max(0.0), x0, x1) - x0).max(0.0);
        let _ = write!(
            out,
            "<text x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\">{label}</text>\
<rect x=\"{x0}\" y=\"{by}\" width=\"{w}\" height=\"{bh}\" fill=\"{c}\"/>\
<text x=\"{nx}\" y=\"{ty}\">{note}</text>",
            lx = n(x0 - 6.0),
            ty = n(y + row / 2.0 + 4.0),
            label = esc(&clip(&b.label, 32)),
            x0 = n(x0),
            by = n(y + 3.0),
            w = n(w),
            bh = n(row - 6.0),
            c = esc(&b.color),
            nx = n(x0 + w + 5.0),
            note = esc(&b.note),
        );
    }
    draw_legend(&mut out, legend, x0, axis_y + 46.0);
    out.push_str("</svg>");
    out
}

const LEGEND_ITEM: f64 = 180.0;

fn legend_rows(legend: &[(String, String)]) -> usize {
    let per_row = ((WIDTH - 80.0) / LEGEND_ITEM).floor().max(1.0) as usize;
    legend.len().div_ceil(per_row)
}

fn draw_legend(out: &mut String, legend: &[(String, String)], x0: f64, y0: f64) {
    let per_row = ((WIDTH - 80.0) / LEGEND_ITEM).floor().max(1.0) as usize;
    let x0 = x0.min(WIDTH - per_row as f64 * LEGEND_ITEM).max(10.0);
    for (i, (name, color)) in legend.iter().enumerate() {
        let x = x0 + (i % per_row) as f64 * LEGEND_ITEM;
        let y = y0 + (i / per_row) as f64 * 22.0;
        let _ = write!(
            out,
            "<rect x=\"{x}\" y=\"{ry}\" width=\"12\" height=\"12\" fill=\"{c}\" stroke=\"#999999\"/>\
<text x=\"{tx}\" y=\"{ty}\">{name}</text>",
            x = n(x),
            ry = n(y),
            c = esc(color),
            tx = n(x + 17.0),
            ty = n(y + 10.5),
            name = esc(&clip(name, 26)),
        );
    }
}

/// One segment of [`stacked`].
pub struct Segment {
    pub name: String,
    pub value: f64,
    pub color: String,
}

/// One horizontal bar of `segments` laid end to end against an axis from
/// 0 to `max(total, Σ segments)`; the legend names each segment with its
/// value (`unit` appended).
pub fn stacked(title: &str, segments: &[Segment], total: f64, unit: &str) -> String {
    let x0 = 40.0;
    let x1 = WIDTH - 40.0;
    let top = 32.0;
    let bar_h = 28.0;
    let axis_y = top + bar_h + 4.0;
    let sum: f64 = segments.iter().map(|s| s.value.max(0.0)).sum();
    let axis = Axis::nice(0.0, total.max(sum), 8);
    let legend: Vec<(String, String)> = segments
        .iter()
        .map(|s| {
            (
                format!("{} {} {unit}", s.name, fixed(s.value, 2)),
                s.color.clone(),
            )
        })
        .collect();
    let height = axis_y + 46.0 + 22.0 * legend_rows(&legend) as f64;
    let mut out = String::new();
    open(&mut out, height, title);
    x_axis(&mut out, &axis, x0, x1, top, axis_y, unit);
    let mut at = 0.0;
    for s in segments {
        let v = s.value.max(0.0);
        let a = axis.map(at, x0, x1);
        let b = axis.map(at + v, x0, x1);
        let _ = write!(
            out,
            "<rect x=\"{a}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" fill=\"{c}\" stroke=\"#ffffff\" stroke-width=\"0.5\"/>",
            a = n(a),
            y = n(top),
            w = n(b - a),
            h = n(bar_h),
            c = esc(&s.color),
        );
        at += v;
    }
    // The die edge.
    let _ = write!(
        out,
        "<line x1=\"{x}\" y1=\"{a}\" x2=\"{x}\" y2=\"{b}\" stroke=\"#000000\" stroke-width=\"2\"/>",
        x = n(axis.map(total, x0, x1)),
        a = n(top - 4.0),
        b = n(top + bar_h + 4.0),
    );
    draw_legend(&mut out, &legend, x0, axis_y + 46.0);
    out.push_str("</svg>");
    out
}

/// One point of [`scatter`].
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub label: String,
}

/// Points joined in order of x, each labelled, with axes and an optional
/// dashed horizontal reference line (`(y, label)`).
pub fn scatter(
    title: &str,
    points: &[Point],
    x_label: &str,
    y_label: &str,
    reference: Option<(f64, String)>,
) -> String {
    let (x0, x1, top, bottom) = (80.0, WIDTH - 40.0, 34.0, 374.0);
    let height = bottom + 46.0;
    let mut order: Vec<&Point> = points.iter().collect();
    order.sort_by(|a, b| a.x.total_cmp(&b.x).then(a.y.total_cmp(&b.y)));
    let xs = points.iter().map(|p| p.x);
    let mut ys: Vec<f64> = points.iter().map(|p| p.y).collect();
    if let Some((r, _)) = &reference {
        ys.push(*r);
    }
    let (xmin, xmax) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let (ymin, ymax) = ys
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let pad = |a: f64, b: f64| {
        let p = if b > a {
            (b - a) * 0.05
        } else {
            a.abs() * 0.05
        };
        (a - p, b + p)
    };
    let (xa, xb) = pad(xmin, xmax);
    let (ya, yb) = pad(ymin, ymax);
    let ax = Axis::nice(xa, xb, 8);
    let ay = Axis::nice(ya, yb, 6);
    let mut out = String::new();
    open(&mut out, height, title);
    x_axis(&mut out, &ax, x0, x1, top, bottom, x_label);
    for t in ay.ticks() {
        let y = ay.map(t, bottom, top);
        let _ = write!(
            out,
            "<line x1=\"{a}\" y1=\"{y}\" x2=\"{b}\" y2=\"{y}\" stroke=\"#dddddd\"/>\
<text x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\">{l}</text>",
            a = n(x0 - 5.0),
            b = n(x1),
            y = n(y),
            lx = n(x0 - 8.0),
            ty = n(y + 4.0),
            l = esc(&ay.label(t)),
        );
    }
    let _ = write!(
        out,
        "<line x1=\"{x}\" y1=\"{a}\" x2=\"{x}\" y2=\"{b}\" stroke=\"#333333\"/>\
<text x=\"16\" y=\"{cy}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {cy})\">{l}</text>",
        x = n(x0),
        a = n(top),
        b = n(bottom),
        cy = n((top + bottom) / 2.0),
        l = esc(y_label),
    );
    // Label boxes drawn so far: [left, top, right, bottom].
    let mut placed: Vec<[f64; 4]> = Vec::new();
    if let Some((r, label)) = &reference {
        let y = ay.map(*r, bottom, top);
        let w = label.chars().count() as f64 * CHAR_PX;
        placed.push([x0 + 6.0, y - 15.0, x0 + 6.0 + w, y - 3.0]);
        let _ = write!(
            out,
            "<line x1=\"{a}\" y1=\"{y}\" x2=\"{b}\" y2=\"{y}\" stroke=\"#888888\" stroke-dasharray=\"6 4\"/>\
<text x=\"{tx}\" y=\"{ty}\" fill=\"#555555\">{l}</text>",
            a = n(x0),
            b = n(x1),
            y = n(y),
            tx = n(x0 + 6.0),
            ty = n(y - 5.0),
            l = esc(label),
        );
    }
    let coords: Vec<(f64, f64)> = order
        .iter()
        .map(|p| (ax.map(p.x, x0, x1), ay.map(p.y, bottom, top)))
        .collect();
    if coords.len() > 1 {
        let path: Vec<String> = coords
            .iter()
            .map(|(x, y)| format!("{},{}", n(*x), n(*y)))
            .collect();
        let _ = write!(
            out,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"#4e79a7\" stroke-width=\"1.5\"/>",
            path.join(" ")
        );
    }
    for (x, y) in &coords {
        let _ = write!(
            out,
            "<circle cx=\"{}\" cy=\"{}\" r=\"4\" fill=\"#e15759\"/>",
            n(*x),
            n(*y)
        );
    }
    // Labels: the first of a fixed list of places around each point whose
    // box stays in the plot and covers no other label or point.
    let overlaps =
        |a: &[f64; 4], b: &[f64; 4]| a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3];
    for (p, (x, y)) in order.iter().zip(&coords) {
        let text = clip(&p.label, 36);
        let w = text.chars().count() as f64 * 6.2;
        let candidates: [(f64, f64, &'static str); 10] = [
            (0.0, -9.0, "middle"),
            (0.0, 17.0, "middle"),
            (8.0, 4.0, "start"),
            (-8.0, 4.0, "end"),
            (8.0, -9.0, "start"),
            (-8.0, -9.0, "end"),
            (8.0, 17.0, "start"),
            (-8.0, 17.0, "end"),
            (0.0, -22.0, "middle"),
            (0.0, 30.0, "middle"),
        ];
        let boxed = |(dx, dy, anchor): (f64, f64, &'static str)| {
            let tx = x + dx;
            let left = match anchor {
                "start" => tx,
                "end" => tx - w,
                _ => tx - w / 2.0,
            };
            let ty = y + dy;
            (tx, ty, anchor, [left, ty - 10.0, left + w, ty + 2.0])
        };
        let fits = |b: &[f64; 4]| {
            b[0] >= x0 + 2.0
                && b[2] <= x1
                && b[1] >= top
                && b[3] <= bottom - 2.0
                && !placed.iter().any(|q| overlaps(b, q))
                && !coords
                    .iter()
                    .any(|(cx, cy)| overlaps(b, &[cx - 4.0, cy - 4.0, cx + 4.0, cy + 4.0]))
        };
        let (tx, ty, anchor, bx) = candidates
            .iter()
            .map(|&c| boxed(c))
            .find(|(_, _, _, b)| fits(b))
            .unwrap_or_else(|| {
                // Nowhere free: the first place that stays inside the plot.
                let (tx, ty, a, b) = boxed(if *x > x1 - w {
                    candidates[3]
                } else {
                    candidates[2]
                });
                (tx, ty.clamp(top + 10.0, bottom - 4.0), a, b)
            });
        placed.push(bx);
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"{anchor}\" font-size=\"11\">{}</text>",
            n(tx),
            n(ty),
            esc(&text),
        );
    }
    out.push_str("</svg>");
    out
}

/// One named line of [`lines`].
pub struct Series {
    pub name: String,
    pub color: String,
    /// Dashed (for modelled baselines beside this system).
    pub dashed: bool,
    pub points: Vec<(f64, f64)>,
}

/// A log10 axis: ticks at the powers of ten from `10^lo` to `10^hi`.
fn log_label(e: i32) -> String {
    let v = 10f64.powi(e);
    if e >= 9 {
        format!("{}G", fixed(v / 1e9, 0))
    } else if e >= 6 {
        format!("{}M", fixed(v / 1e6, 0))
    } else if e >= 3 {
        format!("{}k", fixed(v / 1e3, 0))
    } else if e >= 0 {
        fixed(v, 0)
    } else {
        fixed(v, (-e) as usize)
    }
}

/// Lines over a shared x axis (linear, or log10 with `log_x`), y on a
/// log10 axis when `log_y`; a legend below. Points that are not positive
/// on a log axis are left out.
pub fn lines(
    title: &str,
    series: &[Series],
    x_label: &str,
    y_label: &str,
    log_x: bool,
    log_y: bool,
) -> String {
    let (x0, x1, top, bottom) = (80.0, WIDTH - 40.0, 34.0, 334.0);
    let legend: Vec<(String, String)> = series
        .iter()
        .map(|s| (s.name.clone(), s.color.clone()))
        .collect();
    let height = bottom + 56.0 + legend_rows(&legend) as f64 * 22.0;
    let tx = |v: f64| if log_x { v.log10() } else { v };
    let ty = |v: f64| if log_y { v.log10() } else { v };
    let ok = |(x, y): &(f64, f64)| {
        x.is_finite() && y.is_finite() && (!log_x || *x > 0.0) && (!log_y || *y > 0.0)
    };
    let pts: Vec<Vec<(f64, f64)>> = series
        .iter()
        .map(|s| {
            s.points
                .iter()
                .filter(|p| ok(p))
                .map(|&(x, y)| (tx(x), ty(y)))
                .collect()
        })
        .collect();
    let all = pts.iter().flatten();
    let (xmin, xmax, ymin, ymax) = all.fold(
        (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ),
        |(a, b, c, d), &(x, y)| (a.min(x), b.max(x), c.min(y), d.max(y)),
    );
    let axis = |lo: f64, hi: f64, log: bool, target: usize| {
        if log {
            let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
            let a = lo.floor();
            let b = hi.ceil().max(a + 1.0);
            Axis {
                lo: a,
                hi: b,
                step: 1.0,
            }
        } else {
            let lo = if lo.is_finite() { lo.min(0.0) } else { 0.0 };
            Axis::nice(lo, if hi.is_finite() { hi } else { 1.0 }, target)
        }
    };
    let ax = axis(xmin, xmax, log_x, 8);
    let ay = axis(ymin, ymax, log_y, 6);
    let lab = |a: &Axis, v: f64, log: bool| {
        if log {
            log_label(v.round() as i32)
        } else {
            a.label(v)
        }
    };
    let mut out = String::new();
    open(&mut out, height, title);
    for t in ax.ticks() {
        let x = ax.map(t, x0, x1);
        let _ = write!(
            out,
            "<line x1=\"{x}\" y1=\"{yt}\" x2=\"{x}\" y2=\"{y5}\" stroke=\"#dddddd\"/>\
<text x=\"{x}\" y=\"{yl}\" text-anchor=\"middle\">{l}</text>",
            x = n(x),
            yt = n(top),
            y5 = n(bottom + 5.0),
            yl = n(bottom + 18.0),
            l = esc(&lab(&ax, t, log_x)),
        );
    }
    for t in ay.ticks() {
        let y = ay.map(t, bottom, top);
        let _ = write!(
            out,
            "<line x1=\"{a}\" y1=\"{y}\" x2=\"{b}\" y2=\"{y}\" stroke=\"#dddddd\"/>\
<text x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\">{l}</text>",
            a = n(x0 - 5.0),
            b = n(x1),
            y = n(y),
            lx = n(x0 - 8.0),
            ty = n(y + 4.0),
            l = esc(&lab(&ay, t, log_y)),
        );
    }
    let _ = write!(
        out,
        "<line x1=\"{a}\" y1=\"{y}\" x2=\"{b}\" y2=\"{y}\" stroke=\"#333333\"/>\
<line x1=\"{a}\" y1=\"{t}\" x2=\"{a}\" y2=\"{y}\" stroke=\"#333333\"/>\
<text x=\"{c}\" y=\"{yl}\" text-anchor=\"middle\">{xl}</text>\
<text x=\"16\" y=\"{cy}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {cy})\">{yl2}</text>",
        a = n(x0),
        b = n(x1),
        y = n(bottom),
        t = n(top),
        c = n((x0 + x1) / 2.0),
        yl = n(bottom + 34.0),
        xl = esc(&format!(
            "{x_label}{}",
            if log_x { " (log scale)" } else { "" }
        )),
        cy = n((top + bottom) / 2.0),
        yl2 = esc(&format!("{y_label}{}", if log_y { " (log)" } else { "" })),
    );
    for (s, p) in series.iter().zip(&pts) {
        let coords: Vec<(f64, f64)> = p
            .iter()
            .map(|&(x, y)| (ax.map(x, x0, x1), ay.map(y, bottom, top)))
            .collect();
        if coords.len() > 1 {
            let path: Vec<String> = coords
                .iter()
                .map(|(x, y)| format!("{},{}", n(*x), n(*y)))
                .collect();
            let _ = write!(
                out,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{}/>",
                path.join(" "),
                esc(&s.color),
                if s.dashed {
                    " stroke-dasharray=\"6 4\""
                } else {
                    ""
                }
            );
        }
        for (x, y) in &coords {
            let _ = write!(
                out,
                "<circle cx=\"{}\" cy=\"{}\" r=\"3\" fill=\"{}\"/>",
                n(*x),
                n(*y),
                esc(&s.color)
            );
        }
    }
    draw_legend(&mut out, &legend, x0, bottom + 50.0);
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_axes() {
        let a = Axis::nice(0.0, 5000.0, 5);
        assert_eq!((a.lo, a.hi, a.step), (0.0, 5000.0, 1000.0));
        assert_eq!(a.label(3000.0), "3k");
        let a = Axis::nice(0.0, 8_887_132.0, 5);
        assert_eq!((a.lo, a.hi, a.step), (0.0, 10_000_000.0, 2_000_000.0));
        assert_eq!(a.label(4e6), "4M");
        let a = Axis::nice(26.5, 31.2, 6);
        assert_eq!(a.step, 1.0);
        assert_eq!((a.lo, a.hi), (26.0, 32.0));
        assert_eq!(a.ticks().len(), 7);
        let a = Axis::nice(0.0, 0.0037, 5);
        assert_eq!(a.label(a.ticks()[1]), "0.001");
        let a = Axis::nice(0.0, 0.0, 5);
        assert_eq!((a.lo, a.hi), (0.0, 1.0));
        let a = Axis::nice(0.0, 100.0, 8);
        assert_eq!(a.label(20.0), "20");
        assert_eq!(a.map(50.0, 0.0, 200.0), 100.0);
    }
}
