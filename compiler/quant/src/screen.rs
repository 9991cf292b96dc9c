//! The scale search of RTN ([`crate::ScaleRule::Search`]) on the 8-bit row
//! grid ([`crate::ScaleStore::Row8`]), sixteen groups at a time: a screen in
//! f32 with proven error bounds that settles almost every group, and the
//! exact search ([`crate::group::choose`]) for the rest.
//!
//! The exact search measures up to 18 candidates per group (the plain
//! parameters, 8 scaled ones, and the least-squares refit of each) by their
//! squared error, summed in f64 in the order of the group's values, and
//! keeps the first of least error. Almost always one candidate is better
//! than every other one by far more than rounding can move a sum, so the
//! screen measures them in f32, one group per lane, and bounds how far each
//! figure can be from the exact one:
//!
//! - **Codes.** A candidate's codes are `round(clamp(t))` with `t = (w-m)/d`
//!   (asymmetric) or `w/d`. The screen's `t'` is within `4u·|t|` of `t`
//!   (`u = 2^-24`), and the exact search's within `2^-52·|t|`; both give the
//!   same code unless a half-way point lies between them. For a lane with
//!   any `t'` that close to a half-way point (common for weights that were
//!   themselves on a grid, as llama.cpp's blocks are), the candidate's
//!   figures are the exact search's own, computed as it computes them
//!   ([`exact_stats`]).
//! - **Errors.** With `q` the code, the residual `r = t - q` gives the
//!   error `w - (d·q + m) = d·r`, so a candidate's squared error is
//!   `d²·Σr²`. [`Shape::sse`] bounds `Σr²` from the f32 sum `S'` of `r'²`,
//!   with the exact search's own f64 roundings.
//! - **Refits.** The least-squares scale is `d·(1 + (n·Σrq - Σq·Σr)/det)`
//!   (asymmetric; symmetric `d·(1 + Σrq/Σq²)`): the weights cancel out of
//!   it exactly, so its error comes from the small sums of residuals alone
//!   ([`Shape::refit`]). When the whole interval rounds to one point of the
//!   grid, that is the refit's scale, and its offset is computed in f64
//!   exactly as the exact search does. Otherwise (a least-squares scale on
//!   a rounding boundary, again common for gridded weights) the refit is
//!   the exact search's own, from [`exact_stats`].
//! - **Choice.** When the candidate of least squared error has an interval
//!   below every other candidate's (candidates with the same parameters
//!   aside), it is the one the exact search chooses.
//!
//! A lane that fails the choice, or whose group the plain rule does not
//! search (an overflow, a constant group), is left to the exact search: the
//! result is the exact search's, bit for bit, for every group. The bounds
//! are doubled for margin; the tests measure how many groups the screen
//! settles, and the images of every format are byte-identical to the exact
//! search's (RFC 0008, "RTN's scale search").

use crate::format::ROW8_EXP_MAX;
use crate::group::{self, row8_sf16, GroupQ, MAX_BASE, SEARCH_FACTORS};
use crate::WeightFormat;
use taalasc_numerics::Sf16;

/// Groups screened at once, one per lane.
pub(crate) const LANES: usize = 16;

/// Unit roundoff of f32.
const U: f64 = 1.0 / (1u64 << 24) as f64;

/// Candidates per group: the plain one and one per factor, each followed by
/// its refit.
const ENTRIES: usize = 2 * MAX_BASE;

/// One group of a batch: its values (as the matrix holds them) and its row's
/// grid exponents ([`crate::group::Grid::Row8`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lane<'a> {
    pub vals: &'a [f32],
    pub d_exp: i32,
    pub m_exp: i32,
}

/// Whether groups of `g` values of `fmt` (its own width) can be screened:
/// the f32 sums of codes and squared codes must be exact.
pub(crate) fn screenable(fmt: &WeightFormat, g: usize) -> bool {
    let qmax = ((1u64 << fmt.bits) - 1) as f64;
    fmt.scales == crate::ScaleStore::Row8
        && g >= 1
        && (g as f64) * qmax * qmax < (1u64 << 24) as f64
}

/// Reusable buffers of [`screen`].
#[derive(Default)]
pub(crate) struct Scratch {
    /// The batch's values, transposed: `w[i][lane]`.
    w: Vec<[f32; LANES]>,
}

/// The exact search's parameters for each of `lanes` (1 to [`LANES`] groups
/// of one length, for `fmt` of their width, [`screenable`]), or `None` for a
/// group the screen leaves to the exact search.
pub(crate) fn screen(
    fmt: &WeightFormat,
    lanes: &[Lane<'_>],
    scratch: &mut Scratch,
) -> [Option<GroupQ>; LANES] {
    debug_assert!(!lanes.is_empty() && lanes.len() <= LANES);
    debug_assert!(screenable(fmt, lanes[0].vals.len()));
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            // SAFETY: the CPU has AVX-512F/VL (checked just above).
            return unsafe { screen_avx512(fmt, lanes, scratch) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { screen_avx2(fmt, lanes, scratch) };
        }
    }
    screen_lanes(fmt, lanes, scratch)
}

/// [`screen_lanes`] compiled for AVX-512.
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512VL.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn screen_avx512(
    fmt: &WeightFormat,
    lanes: &[Lane<'_>],
    scratch: &mut Scratch,
) -> [Option<GroupQ>; LANES] {
    screen_lanes(fmt, lanes, scratch)
}

/// [`screen_lanes`] compiled for AVX2.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn screen_avx2(
    fmt: &WeightFormat,
    lanes: &[Lane<'_>],
    scratch: &mut Scratch,
) -> [Option<GroupQ>; LANES] {
    screen_lanes(fmt, lanes, scratch)
}

/// The f32 sums of one pass of a candidate per lane over the batch.
#[derive(Clone, Copy)]
struct Sums {
    /// `Σr'²`.
    s: [f32; LANES],
    /// Largest `|tc - round(tc)|` of the clamped `t'`: near 0.5, a code the
    /// screen cannot be sure of.
    near: [f32; LANES],
    /// `Σq`, `Σq²` (exact), `Σr'q`, `Σr'` (only in a full pass).
    sx: [f32; LANES],
    sxx: [f32; LANES],
    srx: [f32; LANES],
    sr: [f32; LANES],
}

/// One pass over the transposed values `w`: each lane's candidate `(d, m)`
/// (`m = 0` symmetric), codes clamped to `[qlo, qhi]` (the datapath code:
/// asymmetric `q = c + bias`). Inlined into [`screen_lanes`], so compiled
/// for the instruction set that one is compiled for.
#[inline(always)]
fn pass<const FULL: bool, const SYM: bool>(
    w: &[[f32; LANES]],
    d: &[f32; LANES],
    m: &[f32; LANES],
    qlo: f32,
    qhi: f32,
) -> Sums {
    let mut inv = [0.0f32; LANES];
    for l in 0..LANES {
        inv[l] = 1.0 / d[l];
    }
    let z = [0.0f32; LANES];
    let mut o = Sums {
        s: z,
        near: z,
        sx: z,
        sxx: z,
        srx: z,
        sr: z,
    };
    for wi in w {
        for l in 0..LANES {
            let a = if SYM { wi[l] } else { wi[l] - m[l] };
            let t = a * inv[l];
            let tc = if t < qlo { qlo } else { t };
            let tc = if tc > qhi { qhi } else { tc };
            let q = tc.round_ties_even();
            let rn = (tc - q).abs();
            o.near[l] = if rn > o.near[l] { rn } else { o.near[l] };
            let r = t - q;
            o.s[l] += r * r;
            if FULL {
                o.sx[l] += q;
                o.sxx[l] += q * q;
                o.srx[l] += r * q;
                o.sr[l] += r;
            }
        }
    }
    o
}

/// The exact search's own statistics of one group's candidate, computed
/// as it computes them ([`crate::group`]'s `GroupQ::stats`: codes from
/// `(w - m)/d` or `w/d` in f64 rounded half away from zero, sums in f64 in
/// the values' order), so equal to its figures bit for bit: for a lane
/// whose f32 codes are unsure, or whose refit the f32 sums cannot settle.
#[derive(Clone, Copy, Debug, Default)]
struct Exact {
    sse: f64,
    sx: f64,
    sxx: f64,
    swx: f64,
}

fn exact_stats(vals: &[f32], d: f64, m: f64, sym: bool, qlo: f64, qhi: f64) -> Exact {
    let mut o = Exact::default();
    for &w in vals {
        let w = w as f64;
        // The datapath code `x` (asymmetric: the stored code plus the bias).
        let (x, v) = if sym {
            let x = group::round_clamped(w / d, qlo, qhi) as f64;
            (x, d * x)
        } else {
            let x = group::round_clamped((w - m) / d, qlo, qhi) as f64;
            (x, d * x + m)
        };
        let e = w - v;
        o.sse += e * e;
        o.sx += x;
        o.sxx += x * x;
        o.swx += w * x;
    }
    o
}

impl Exact {
    /// The exact search's refit from these statistics (`sw`: `Σw`), as
    /// grid integers; a NaN scale when it has none.
    fn refit(&self, sym: bool, g: f64, sw: f64, lane: &Lane<'_>) -> (f64, f64) {
        let none = (f64::NAN, f64::NAN);
        if sym {
            if self.sxx <= 0.0 {
                return none;
            }
            match group::row8_scale_int(self.swx / self.sxx, lane.d_exp, true) {
                Some(nd) => (nd as f64, 0.0),
                None => none,
            }
        } else {
            let det = g * self.sxx - self.sx * self.sx;
            if det <= 0.0 {
                return none;
            }
            let fit = (g * self.swx - self.sx * sw) / det;
            let Some(nd) = group::row8_scale_int(fit, lane.d_exp, false) else {
                return none;
            };
            let d = nd as f64 * group::pow2(lane.d_exp);
            match group::row8_int((sw - d * self.sx) / g, lane.m_exp, true) {
                Some(nm) => (nd as f64, nm as f64),
                None => none,
            }
        }
    }
}

/// `2^-k`.
const fn tiny(k: u32) -> f64 {
    1.0 / (1u128 << k) as f64
}

/// Lanes of f64.
type F = [f64; LANES];

/// [`row8_int`] of `x` on the grid whose step is `1/inv` (`inv = 2^-e`),
/// as an f64 (NaN for its `None`; `at_max`: `e` is the largest exponent).
#[inline(always)]
fn grid_int(x: f64, inv: f64, signed: bool, at_max: bool) -> f64 {
    let (lo, hi) = if signed {
        (-128.0, 127.0)
    } else {
        (0.0, 255.0)
    };
    let y = x * inv;
    let t = if y < lo {
        lo
    } else if y > hi {
        hi
    } else {
        y
    };
    let i = t.trunc();
    let f = t - i;
    let n = i + if f >= 0.5 { 1.0 } else { 0.0 } - if f <= -0.5 { 1.0 } else { 0.0 };
    if at_max & !((y >= lo - 0.5) & (y < hi + 0.5)) {
        f64::NAN
    } else {
        n
    }
}

/// [`row8_scale_int`] as [`grid_int`] gives it (`unit = 2^e`).
#[inline(always)]
fn grid_scale(x: f64, unit: f64, inv: f64, signed: bool, at_max: bool) -> f64 {
    let x = if (x != 0.0) & (x.abs() < unit) {
        unit.copysign(x)
    } else {
        x
    };
    if !signed & (x < 0.0) {
        f64::NAN
    } else {
        grid_int(x, inv, signed, at_max)
    }
}

/// What the bounds need of each lane, a field at a time (so that loops
/// over lanes vectorize): its group's smallest and largest value, largest
/// magnitude and `Σw` in f64 in the values' order (as the exact search
/// sums it); its grid's `2^e` and `2^-e` for the scale and offset
/// exponents, and whether each is the largest exponent.
#[derive(Clone, Copy, Default)]
struct Ctxs {
    lo: F,
    hi: F,
    wmax: F,
    sw: F,
    du: F,
    di: F,
    mu: F,
    mi: F,
    d_top: [bool; LANES],
    m_top: [bool; LANES],
}

/// The f32 sums of a [`pass`] of every lane, as f64.
#[derive(Clone, Copy, Default)]
struct Measures {
    s: F,
    sx: F,
    sxx: F,
    srx: F,
    sr: F,
}

impl Measures {
    fn of(p: &Sums) -> Measures {
        let mut o = Measures::default();
        for l in 0..LANES {
            o.s[l] = p.s[l] as f64;
            o.sx[l] = p.sx[l] as f64;
            o.sxx[l] = p.sxx[l] as f64;
            o.srx[l] = p.srx[l] as f64;
            o.sr[l] = p.sr[l] as f64;
        }
        o
    }
}

/// The shape of a batch's format, shared by the bounds.
#[derive(Clone, Copy)]
struct Shape {
    /// Values per group.
    g: f64,
    sym: bool,
    /// The largest |datapath code|.
    x_max: f64,
}

impl Shape {
    /// `|t|`'s bound over a group of values in `[lo, hi]` (largest
    /// magnitude `wmax`) for a candidate `(d, m)`, widened, and the bound
    /// of `(|w| + |d·q + m|)/|d|`: the magnitudes the errors scale with.
    #[inline(always)]
    fn magnitudes(&self, lo: f64, hi: f64, wmax: f64, d: f64, m: f64) -> (f64, f64) {
        let ad = d.abs();
        let t = (lo - m).abs().max((hi - m).abs()) / ad;
        let m_code = 2.0 * (wmax + m.abs() + ad * self.x_max) / ad;
        (t * 1.01 + 1.0, m_code * 1.01)
    }

    /// Bounds `[lo, hi]` on the exact search's squared error of each
    /// lane's candidate `(d, m)` from its sums `ms` (see the module
    /// documentation).
    ///
    /// With `T` bounding `|t|`, `δ = 7u·T` bounds `|r' - r|` per value
    /// (`3u` from `t'`, `u` from `t' - q`, with slack), and `ρ = sqrt(g·S')`
    /// bounds `Σ|r'|`: `|S' - Σr²| <= (g+2)u·S' + 2δρ + g·δ²` (the sum's
    /// rounding, then the perturbation of each square), plus the exact
    /// search's f64 error of `w - (d·q + m)`, of its squares and its sum.
    /// Everything is then doubled.
    #[inline(always)]
    fn sse(&self, cx: &Ctxs, d: &F, m: &F, ms: &Measures) -> (F, F) {
        let g = self.g;
        let (mut lo, mut hi) = ([0.0; LANES], [0.0; LANES]);
        for l in 0..LANES {
            let (t_max, m_code) = self.magnitudes(cx.lo[l], cx.hi[l], cx.wmax[l], d[l], m[l]);
            let (s, u) = (ms.s[l], U);
            let delta = 7.0 * u * t_max;
            let rho = (g * s * 1.01).sqrt();
            let own = (g + 2.0) * 1.02 * u * s + 2.0 * delta * rho + g * delta * delta;
            let exact = tiny(51) * m_code * (rho + g * delta)
                + g * tiny(104) * m_code * m_code
                + tiny(49) * (g + 2.0) * s;
            // Squares that underflow f32.
            let err = 2.0 * (own + exact + g * tiny(120));
            let d2 = d[l] * d[l]; // exact: an 8-bit integer times a power of two
            lo[l] = (s - err) * d2 * (1.0 - tiny(50));
            hi[l] = (s + err) * d2 * (1.0 + tiny(50));
        }
        (lo, hi)
    }

    /// The refit of each lane's candidate `(d, m)` from its sums, as grid
    /// integers `(scale, offset, unsettled)`: a NaN scale when the exact
    /// search has no refit, `unsettled` when the sums cannot settle its
    /// scale.
    ///
    /// The least-squares scale is `d·(1 + c)`, `c = (n·Σrq - Σq·Σr)/det`
    /// (asymmetric; symmetric `Σrq/Σq²`). Each `r'` is within `δ` of `r`
    /// and the sums round by `(g+1)u` of their terms' magnitudes; the exact
    /// search's own f64 error is bounded at `2^-48` scale. When the whole
    /// interval rounds to one grid point, that is the scale, and the offset
    /// is computed in f64 exactly as the exact search does.
    #[inline(always)]
    fn refit(&self, cx: &Ctxs, d: &F, m: &F, ms: &Measures) -> (F, F, [bool; LANES]) {
        let (g, x_max, sym) = (self.g, self.x_max, self.sym);
        let (mut fit, mut err, mut det) = ([0.0; LANES], [0.0; LANES], [0.0; LANES]);
        for l in 0..LANES {
            let (t_max, _) = self.magnitudes(cx.lo[l], cx.hi[l], cx.wmax[l], d[l], m[l]);
            let u = U;
            let delta = 7.0 * u * t_max;
            let rho = (g * ms.s[l] * 1.01).sqrt();
            let sum_err = (g + 1.0) * 1.01 * u;
            let e_srx = delta * g * x_max + sum_err * x_max * rho;
            let e_sr = delta * g + sum_err * rho;
            let (sx, sxx, srx, sr) = (ms.sx[l], ms.sxx[l], ms.srx[l], ms.sr[l]);
            let asx = sx.abs();
            // Symmetric: Σq² > 0; asymmetric: det > 0 (exact, as the exact
            // search has it).
            det[l] = if sym { sxx } else { g * sxx - sx * sx };
            let (num, e_num, ref_num) = if sym {
                (srx, e_srx, tiny(48) * g * (g + 2.0) * cx.wmax[l] * x_max)
            } else {
                (
                    g * srx - sx * sr,
                    g * e_srx + asx * e_sr,
                    tiny(48) * g * (g + 2.0) * cx.wmax[l] * (g * x_max + asx),
                )
            };
            fit[l] = d[l] * (1.0 + num / det[l]);
            err[l] = 2.0 * ((d[l].abs() * e_num + ref_num) / det[l] + tiny(50) * fit[l].abs());
        }
        let (mut lo, mut hi) = ([0.0; LANES], [0.0; LANES]);
        for l in 0..LANES {
            lo[l] = grid_scale(fit[l] - err[l], cx.du[l], cx.di[l], sym, cx.d_top[l]);
        }
        for l in 0..LANES {
            hi[l] = grid_scale(fit[l] + err[l], cx.du[l], cx.di[l], sym, cx.d_top[l]);
        }
        // The offset as the exact search computes it (NaN: an overflow,
        // and no refit).
        let mut nm = [0.0; LANES];
        if !sym {
            for l in 0..LANES {
                let x = (cx.sw[l] - lo[l] * cx.du[l] * ms.sx[l]) / g;
                nm[l] = grid_int(x, cx.mi[l], true, cx.m_top[l]);
            }
        }
        let mut nd = [0.0; LANES];
        let mut unsettled = [false; LANES];
        for l in 0..LANES {
            let exists = det[l] > 0.0;
            let settled = lo[l] == hi[l];
            nd[l] = if exists & settled & !nm[l].is_nan() {
                lo[l]
            } else {
                f64::NAN
            };
            unsettled[l] = exists & !settled;
        }
        (nd, nm, unsettled)
    }
}

/// The screen itself (see the module documentation).
#[inline(always)]
fn screen_lanes(
    fmt: &WeightFormat,
    lanes: &[Lane<'_>],
    scratch: &mut Scratch,
) -> [Option<GroupQ>; LANES] {
    let nl = lanes.len();
    let g = lanes[0].vals.len();
    let sym = fmt.symmetric;
    let half = (1u32 << (fmt.bits - 1)) as f64;
    let qmax = ((1u32 << fmt.bits) - 1) as f64;
    let (qlo, qhi) = if sym {
        (-half, half - 1.0)
    } else {
        (0.0, qmax)
    };
    let shape = Shape {
        g: g as f64,
        sym,
        x_max: if sym { half } else { qmax },
    };
    // Codes are settled when `t'` is farther than this from a half-way
    // point: twice the `4.1u·|t|` that separates `t'` from the exact `t`.
    let near_limit = (0.5 - 8.0 * U * (shape.x_max + 1.0)) as f32;
    let lane_of = |l: usize| &lanes[l.min(nl - 1)];

    // The values, transposed (a short batch repeats its last group), and
    // each group's facts, summed in the values' order.
    scratch.w.resize(g, [0.0; LANES]);
    let w = &mut scratch.w[..g];
    for l in 0..LANES {
        for (wi, &x) in w.iter_mut().zip(lane_of(l).vals) {
            wi[l] = x;
        }
    }
    let w = &*w;
    let mut cx = Ctxs {
        lo: [f64::INFINITY; LANES],
        hi: [f64::NEG_INFINITY; LANES],
        ..Ctxs::default()
    };
    let (mut amax, mut v) = ([0.0; LANES], [0.0; LANES]);
    for wi in w {
        for l in 0..LANES {
            let x = wi[l] as f64;
            cx.lo[l] = if x < cx.lo[l] { x } else { cx.lo[l] };
            cx.hi[l] = if x > cx.hi[l] { x } else { cx.hi[l] };
            cx.sw[l] += x;
            // The first value of largest magnitude.
            let bigger = x.abs() > amax[l];
            v[l] = if bigger { x } else { v[l] };
            amax[l] = if bigger { x.abs() } else { amax[l] };
        }
    }
    for l in 0..LANES {
        let lane = lane_of(l);
        cx.wmax[l] = cx.lo[l].abs().max(cx.hi[l].abs());
        cx.du[l] = group::pow2(lane.d_exp);
        cx.di[l] = group::pow2(-lane.d_exp);
        cx.mu[l] = group::pow2(lane.m_exp);
        cx.mi[l] = group::pow2(-lane.m_exp);
        cx.d_top[l] = lane.d_exp == ROW8_EXP_MAX;
        cx.m_top[l] = lane.m_exp == ROW8_EXP_MAX;
    }

    // The candidates in the exact search's order: entry 2k is base k (the
    // plain one for k = 0), entry 2k + 1 its refit. NaN: none.
    let mut nd = [[f64::NAN; LANES]; ENTRIES];
    let mut nm = [[f64::NAN; LANES]; ENTRIES];
    // Lanes the screen still settles.
    let mut ok = [false; LANES];
    let mut d0 = [0.0; LANES];
    let mut mid = [0.0; LANES];
    for l in 0..LANES {
        d0[l] = if sym {
            v[l] / -half
        } else {
            (cx.hi[l] - cx.lo[l]) / qmax
        };
        mid[l] = 0.5 * (cx.lo[l] + cx.hi[l]);
    }
    for k in 0..MAX_BASE {
        // The plain candidate: the factor 1 (`d0 * 1.0 == d0`), and the
        // group's smallest value as the asymmetric offset.
        let s = if k == 0 { 1.0 } else { SEARCH_FACTORS[k - 1] };
        let (mut a, mut b) = ([0.0; LANES], [0.0; LANES]);
        for l in 0..LANES {
            a[l] = grid_scale(d0[l] * s, cx.du[l], cx.di[l], sym, cx.d_top[l]);
        }
        if !sym {
            for l in 0..LANES {
                let m = if k == 0 {
                    cx.lo[l]
                } else {
                    mid[l] - 0.5 * qmax * (d0[l] * s)
                };
                b[l] = grid_int(m, cx.mi[l], true, cx.m_top[l]);
            }
        }
        nd[2 * k] = a;
        nm[2 * k] = b;
    }
    for l in 0..LANES {
        let (a, b) = (nd[0][l], nm[0][l]);
        // An overflow (an error), a zero group, a constant asymmetric
        // group: the exact search.
        ok[l] = !a.is_nan() & !b.is_nan() & (a != 0.0) & (sym | (cx.hi[l] != cx.lo[l]));
    }
    for o in &mut ok[nl..] {
        *o = false;
    }
    // Whether an entry is tried: it exists, with a nonzero scale.
    let tried = |nd: f64, nm: f64| !nd.is_nan() & !nm.is_nan() & (nd != 0.0);
    // Each entry's key where it is tried, NaN where not (so that no two
    // compare equal).
    let key_if = |ok: bool, nd: f64, nm: f64| {
        if ok & tried(nd, nm) {
            nd * 512.0 + nm
        } else {
            f64::NAN
        }
    };
    let mut vk = [[f64::NAN; LANES]; ENTRIES];
    for e in (0..ENTRIES).step_by(2) {
        for l in 0..LANES {
            vk[e][l] = key_if(ok[l], nd[e][l], nm[e][l]);
        }
    }

    // Bounds on each entry's exact squared error (NaN until measured).
    let mut low = [[f64::NAN; LANES]; ENTRIES];
    let mut high = [[f64::NAN; LANES]; ENTRIES];
    for e in 0..ENTRIES {
        let base = e % 2 == 0;
        let valid = vk[e].map(|k| !k.is_nan());
        if !valid.iter().any(|&v| v) {
            continue;
        }
        // The candidate's exact values; a lane without this entry measures
        // its plain candidate (or 1, when that is missing too).
        let mut dv = [1.0; LANES];
        let mut mv = [0.0; LANES];
        let (mut d32, mut m32) = ([1.0f32; LANES], [0.0f32; LANES]);
        for l in 0..LANES {
            let (a, b) = if valid[l] {
                (nd[e][l], nm[e][l])
            } else {
                (nd[0][l], nm[0][l])
            };
            let has = tried(a, b);
            dv[l] = if has { a * cx.du[l] } else { 1.0 };
            mv[l] = if has { b * cx.mu[l] } else { 0.0 };
            // Exact in f32: 8-bit integers times powers of two in range.
            d32[l] = dv[l] as f32;
            m32[l] = mv[l] as f32;
        }
        let (fl, fh) = (qlo as f32, qhi as f32);
        let sums = match (base, sym) {
            (true, true) => pass::<true, true>(w, &d32, &m32, fl, fh),
            (true, false) => pass::<true, false>(w, &d32, &m32, fl, fh),
            (false, true) => pass::<false, true>(w, &d32, &m32, fl, fh),
            (false, false) => pass::<false, false>(w, &d32, &m32, fl, fh),
        };
        let ms = Measures::of(&sums);
        // The exact search's own figures where the f32 pass is unsure of a
        // code, and (below) where its sums cannot settle a refit.
        let mut exact: [Option<Exact>; LANES] = [None; LANES];
        let stats = |l: usize| exact_stats(lanes[l].vals, dv[l], mv[l], sym, qlo, qhi);
        // Usually no lane needs them: the lane loops below are skipped.
        let mut any_exact = false;
        for l in 0..nl {
            if valid[l] & (sums.near[l] > near_limit) {
                exact[l] = Some(stats(l));
                any_exact = true;
            }
        }
        if base {
            let (mut a, mut b, unsettled) = shape.refit(&cx, &dv, &mv, &ms);
            if any_exact | unsettled[..nl].iter().any(|&u| u) {
                for l in 0..nl {
                    if !valid[l] {
                        continue;
                    }
                    if unsettled[l] && exact[l].is_none() {
                        exact[l] = Some(stats(l));
                        any_exact = true;
                    }
                    if let Some(x) = exact[l] {
                        (a[l], b[l]) = x.refit(sym, shape.g, cx.sw[l], &lanes[l]);
                    }
                }
            }
            for l in 0..LANES {
                nd[e + 1][l] = a[l];
                nm[e + 1][l] = b[l];
                vk[e + 1][l] = key_if(valid[l], a[l], b[l]);
            }
        }
        let (mut a, mut b) = shape.sse(&cx, &dv, &mv, &ms);
        if any_exact {
            for l in 0..nl {
                if let Some(x) = exact[l] {
                    (a[l], b[l]) = (x.sse, x.sse);
                }
            }
        }
        for l in 0..LANES {
            // Overflowing sums: the exact search.
            ok[l] &= !valid[l] | (!a[l].is_nan() & (b[l] < f64::INFINITY));
        }
        low[e] = a;
        high[e] = b;
    }

    // The choice: the entry of least upper bound, when every entry with
    // other parameters lies strictly above it.
    let mut best = [0usize; LANES];
    let mut best_high = high[0];
    let mut best_key = vk[0];
    for e in 1..ENTRIES {
        for l in 0..LANES {
            let better = !vk[e][l].is_nan() & (high[e][l] < best_high[l]);
            best[l] = if better { e } else { best[l] };
            best_high[l] = if better { high[e][l] } else { best_high[l] };
            best_key[l] = if better { vk[e][l] } else { best_key[l] };
        }
    }
    let mut settled = ok;
    for e in 0..ENTRIES {
        for l in 0..LANES {
            let k = vk[e][l];
            settled[l] &= k.is_nan() | (k == best_key[l]) | (low[e][l] > best_high[l]);
        }
    }
    let mut out = [None; LANES];
    for l in 0..nl {
        let b = best[l];
        if settled[l] {
            let Lane { d_exp, m_exp, .. } = lanes[l];
            out[l] = Some(GroupQ::new(
                fmt,
                row8_sf16(nd[b][l] as i32, d_exp),
                if sym {
                    Sf16::ZERO
                } else {
                    row8_sf16(nm[b][l] as i32, m_exp)
                },
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::{choose_reference, Grid};
    use crate::testutil::{random_group, Rng};
    use crate::{ScaleRule, SUPPORTED_BITS};

    /// A batch of groups as a matrix holds them (f32), each with its row's
    /// grid: the row is the group and a neighbour of another magnitude.
    fn batch(
        rng: &mut Rng,
        fmt: &WeightFormat,
        n: usize,
        g: usize,
        group: &mut dyn FnMut(&mut Rng) -> Vec<f64>,
    ) -> Vec<(Vec<f32>, Grid)> {
        (0..n)
            .map(|_| {
                let vals: Vec<f32> = group(rng).iter().map(|&x| x as f32).collect();
                let mut row: Vec<f64> = vals.iter().map(|&x| x as f64).collect();
                let scale = 10f64.powi(rng.below(6) as i32 - 3);
                row.extend(vals.iter().map(|&x| (x as f64 * scale) as f32 as f64));
                (vals, Grid::for_row(fmt, &row, g, |_| fmt.bits))
            })
            .collect()
    }

    /// Screens `groups` on every instruction set this CPU has, checks that
    /// each agrees with the others and that every settled group has the
    /// exact search's parameters; the number settled.
    fn check(fmt: &WeightFormat, groups: &[(Vec<f32>, Grid)]) -> usize {
        let lanes: Vec<Lane<'_>> = groups
            .iter()
            .map(|(v, grid)| {
                let Grid::Row8 { d_exp, m_exp, .. } = *grid else {
                    panic!("a row grid")
                };
                Lane {
                    vals: v,
                    d_exp,
                    m_exp,
                }
            })
            .collect();
        let mut scratch = Scratch::default();
        let got = screen(fmt, &lanes, &mut scratch);
        let portable = screen_lanes(fmt, &lanes, &mut scratch);
        assert_eq!(format!("{got:?}"), format!("{portable:?}"), "{fmt}");
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            let avx2 = unsafe { screen_avx2(fmt, &lanes, &mut scratch) };
            assert_eq!(format!("{got:?}"), format!("{avx2:?}"), "{fmt}");
        }
        let mut settled = 0;
        for ((vals, grid), q) in groups.iter().zip(got) {
            let Some(q) = q else { continue };
            let vals: Vec<f64> = vals.iter().map(|&x| x as f64).collect();
            let want = choose_reference(&vals, fmt, ScaleRule::Search, grid)
                .unwrap_or_else(|e| panic!("{fmt}: screened, but the search fails: {e:?}"));
            assert_eq!((q.d, q.m), (want.d, want.m), "{fmt} {grid:?} {vals:?}");
            settled += 1;
        }
        for q in &got[groups.len()..] {
            assert!(q.is_none(), "a lane past the batch");
        }
        settled
    }

    fn row8(sym: bool, bits: u8, g: usize) -> WeightFormat {
        format!("{}{bits}g{g}h", if sym { 's' } else { 'a' })
            .parse()
            .unwrap()
    }

    /// The screen's grid rounding against the exact search's
    /// (`row8_int`, `row8_scale_int`), on ties, clamps, the unit clamp,
    /// signs and the overflow at the largest exponent.
    #[test]
    fn grid_rounding_is_the_exact_searchs() {
        let mut rng = Rng::seeded(3);
        let as_f64 = |n: Option<i32>| n.map_or(f64::NAN, |n| n as f64);
        let same = |a: f64, b: f64| a == b || (a.is_nan() && b.is_nan());
        for e in crate::format::ROW8_EXP_MIN..=ROW8_EXP_MAX {
            let (unit, inv) = (group::pow2(e), group::pow2(-e));
            for k in 0..2000 {
                let y = match k % 4 {
                    // Half-way points, grid points, and random values, over
                    // and past both ends of each range.
                    0 => (rng.below(800) as f64 - 400.0) * 0.5,
                    1 => rng.below(800) as f64 - 400.0,
                    2 => (rng.unit() - 0.5) * 800.0,
                    _ => (rng.unit() - 0.5) * 4.0,
                };
                let x = y * unit;
                for signed in [false, true] {
                    let top = e == ROW8_EXP_MAX;
                    let want = as_f64(group::row8_int(x, e, signed));
                    let got = grid_int(x, inv, signed, top);
                    assert!(
                        same(got, want),
                        "row8_int({x}, {e}, {signed}): {got} vs {want}"
                    );
                    let want = as_f64(group::row8_scale_int(x, e, signed));
                    let got = grid_scale(x, unit, inv, signed, top);
                    assert!(
                        same(got, want),
                        "scale({x}, {e}, {signed}): {got} vs {want}"
                    );
                }
            }
        }
    }

    /// Every kind of group [`random_group`] makes (ties, constants, spikes,
    /// subnormals, huge values), every width and both kinds, batches of
    /// every length: what the screen settles is what the exact search
    /// chooses, bit for bit.
    #[test]
    fn the_screen_settles_only_what_the_exact_search_chooses() {
        let mut rng = Rng::seeded(7);
        let (mut settled, mut total) = (0, 0);
        for round in 0..1500 {
            let bits = SUPPORTED_BITS[round % SUPPORTED_BITS.len()];
            let sym = rng.below(2) == 0;
            let g = [32, 64, 128][rng.below(3) as usize];
            let fmt = row8(sym, bits, g);
            if !screenable(&fmt, g) {
                continue;
            }
            let n = 1 + rng.below(LANES as u64) as usize;
            let groups = batch(&mut rng, &fmt, n, g, &mut |r| random_group(r, g, bits));
            settled += check(&fmt, &groups);
            total += n;
        }
        assert!(total > 8000, "{total}");
        // Ties, constants and overflows are the exact search's, but most
        // groups are settled.
        assert!(settled * 2 > total, "{settled} of {total}");
    }

    /// Groups like a trained model's, Gaussian or dequantized from llama.cpp
    /// `Q4_1` blocks (values on a grid, where half-way codes are common):
    /// nearly all are settled, and exactly.
    #[test]
    fn the_screen_settles_nearly_every_weight_like_group() {
        let mut rng = Rng::seeded(11);
        for fmt in [
            "a4g32h", "s4g32h", "a3g32h", "s3g32h", "a8g32h", "s6g32h", "a2g32h",
        ] {
            let fmt: WeightFormat = fmt.parse().unwrap();
            let (mut settled, mut total) = (0, 0);
            for round in 0..150 {
                let mut group = |r: &mut Rng| -> Vec<f64> {
                    let mag = 0.02 * (1.0 + r.unit());
                    if round % 2 == 0 {
                        (0..32).map(|_| r.gauss() * mag).collect()
                    } else {
                        // Q4_1: w = d·q + m in f32, f16 d and m.
                        let d = half::f16::from_f64(mag / 4.0).to_f32();
                        let m = half::f16::from_f64(-mag * 2.0).to_f32();
                        (0..32)
                            .map(|_| (d * (r.below(16) as f32) + m) as f64)
                            .collect()
                    }
                };
                let groups = batch(&mut rng, &fmt, LANES, 32, &mut group);
                settled += check(&fmt, &groups);
                total += LANES;
            }
            assert!(settled * 100 >= total * 97, "{fmt}: {settled} of {total}");
        }
    }
}
