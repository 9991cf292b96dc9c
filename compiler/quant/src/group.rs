//! One group's parameters: the scale rule shared by RTN and GPTQ.

use taalasc_numerics::Sf16;

use crate::format::{ScaleStore, ROW8_EXP_MAX, ROW8_EXP_MIN};
use crate::WeightFormat;
use serde::{Deserialize, Serialize};

/// How a group's scale (and offset) is chosen; see [`crate::quantize_rtn_with`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ScaleRule {
    /// The textbook rule only: symmetric `d = v / -2^(b-1)` (`v` the element
    /// of largest magnitude), asymmetric `m = min`, `d = (max-min)/(2^b-1)`.
    Plain,
    /// The plain rule plus a small search: scale factors 0.80..1.12 and a
    /// least-squares refit of each candidate, keeping the one with the least
    /// squared error in the group (the plain one on ties). Never worse than
    /// `Plain` on any group.
    #[default]
    Search,
}

/// Factors applied to the plain scale by [`ScaleRule::Search`] (the plain
/// scale itself, factor 1, is always tried first and wins ties).
const SEARCH_FACTORS: [f64; 8] = [0.80, 0.84, 0.88, 0.92, 0.96, 1.04, 1.08, 1.12];

/// Nearest `SF16` of `x` (one rounding, f64 → binary16, ties to even);
/// `None` on overflow. `-0` is normalised to `+0`.
pub(crate) fn sf16_of(x: f64) -> Option<Sf16> {
    let h = half::f16::from_f64(x);
    if !h.is_finite() {
        return None;
    }
    let b = h.to_bits();
    Some(Sf16(if b == 0x8000 { 0 } else { b }))
}

/// The values a group's scale and offset may take in one row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Grid {
    /// Any `SF16` ([`ScaleStore::Sf16`]).
    Sf16,
    /// `n · 2^d_exp` (scale) and `n · 2^m_exp` (offset) with `n` an 8-bit
    /// integer ([`ScaleStore::Row8`]).
    Row8 {
        d_exp: i32,
        m_exp: i32,
        /// Scale integers are signed (symmetric formats, whose scale carries
        /// the sign) or unsigned (asymmetric).
        d_signed: bool,
    },
}

/// Largest 8-bit scale/offset integer magnitude.
fn row8_max(signed: bool) -> f64 {
    if signed {
        127.0
    } else {
        255.0
    }
}

/// Smallest `E` in `[ROW8_EXP_MIN, ROW8_EXP_MAX]` with `amax <= max · 2^E`
/// (the largest when even that is too small: the caller's integers then clamp).
fn row8_exp(amax: f64, max: f64) -> i32 {
    let mut e = ROW8_EXP_MIN;
    while e < ROW8_EXP_MAX && amax > max * (e as f64).exp2() {
        e += 1;
    }
    e
}

/// `n · 2^e` rounded to the 8-bit grid (half away from zero, clamped);
/// exact in `SF16` for `ROW8_EXP_MIN <= e <= ROW8_EXP_MAX`. `None` when
/// even the largest exponent cannot hold `x` (an overflow, as for `SF16`;
/// below it, a value past the grid clamps to its end).
fn on_row8(x: f64, e: i32, signed: bool) -> Option<Sf16> {
    let max = row8_max(signed);
    let lo = if signed { -max - 1.0 } else { 0.0 };
    if e == ROW8_EXP_MAX && !(lo - 0.5..max + 0.5).contains(&(x / (e as f64).exp2())) {
        return None;
    }
    let n = round_clamped(x / (e as f64).exp2(), lo, max);
    let v = n as f64 * (e as f64).exp2();
    let s = sf16_of(v)?;
    debug_assert_eq!(s.to_f64(), v, "n·2^E is exact in SF16");
    Some(s)
}

impl Grid {
    /// The grid of one row of `fmt` whose weights are `row`, in groups of
    /// `g`: the row exponents make the largest plain scale (and offset) of
    /// any group fit 8 bits (see [`choose`] for the plain rule).
    /// `bits_of(k)` is group `k`'s code width.
    pub fn for_row(
        fmt: &WeightFormat,
        row: &[f64],
        g: usize,
        bits_of: impl Fn(usize) -> u8,
    ) -> Grid {
        if fmt.scales == ScaleStore::Sf16 {
            return Grid::Sf16;
        }
        let (mut dmax, mut mmax) = (0.0f64, 0.0f64);
        for (k, grp) in row.chunks(g).enumerate() {
            let bits = bits_of(k);
            let (lo, hi) = grp
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &x| {
                    (l.min(x), h.max(x))
                });
            if grp.is_empty() {
                continue;
            }
            if fmt.symmetric {
                let half = (1u32 << (bits - 1)) as f64;
                dmax = dmax.max(lo.abs().max(hi.abs()) / half);
            } else {
                let qmax = ((1u32 << bits) - 1) as f64;
                dmax = dmax.max((hi - lo) / qmax);
                mmax = mmax.max(lo.abs());
            }
        }
        let signed = fmt.symmetric;
        Grid::Row8 {
            d_exp: row8_exp(dmax, row8_max(signed)),
            m_exp: row8_exp(mmax, row8_max(true)),
            d_signed: signed,
        }
    }

    /// Nearest allowed scale of `x`; `None` on overflow. On the 8-bit grid
    /// a nonzero `x` never becomes a zero scale (it rounds to `±1 · 2^E`).
    pub fn scale(&self, x: f64) -> Option<Sf16> {
        match *self {
            Grid::Sf16 => sf16_of(x),
            Grid::Row8 {
                d_exp, d_signed, ..
            } => {
                let unit = (d_exp as f64).exp2();
                let x = if x != 0.0 && x.abs() < unit {
                    unit.copysign(x)
                } else {
                    x
                };
                if !d_signed && x < 0.0 {
                    return None;
                }
                on_row8(x, d_exp, d_signed)
            }
        }
    }

    /// Nearest allowed offset of `x`; `None` on overflow.
    pub fn offset(&self, x: f64) -> Option<Sf16> {
        match *self {
            Grid::Sf16 => sf16_of(x),
            Grid::Row8 { m_exp, .. } => on_row8(x, m_exp, true),
        }
    }
}

/// Whether every scale of one row (and every offset) is an 8-bit integer
/// times one power of two in `[ROW8_EXP_MIN, ROW8_EXP_MAX]`: the check that
/// a [`ScaleStore::Row8`] tensor can be packed into its ROM.
pub(crate) fn row8_fits(values: &[Sf16], signed: bool) -> bool {
    // The largest usable exponent is the lowest set bit over the row.
    let mut e = ROW8_EXP_MAX;
    for v in values {
        let (mant, exp) = v.mant_exp();
        if mant != 0 {
            e = e.min(exp + mant.trailing_zeros() as i32);
        }
    }
    let max = row8_max(signed);
    let lo = if signed { -max - 1.0 } else { 0.0 };
    e >= ROW8_EXP_MIN
        && values.iter().all(|v| {
            let n = v.to_f64() / (e as f64).exp2();
            n == n.trunc() && (lo..=max).contains(&n)
        })
}

/// `clamp(round(x), lo, hi)` with rounding half away from zero, for integer
/// `lo <= hi` (equal to `round(clamp(x, lo, hi))`). Exact, and without the
/// libm `round` call that baseline x86-64 needs.
#[inline]
fn round_clamped(x: f64, lo: f64, hi: f64) -> i32 {
    let t = x.clamp(lo, hi); // NaN never reaches here (finite weights)
    let i = t as i32; // truncation
    let frac = t - i as f64; // exact
    if frac >= 0.5 {
        i + 1
    } else if frac <= -0.5 {
        i - 1
    } else {
        i
    }
}

/// A group's rounded parameters and the quantizer they define.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GroupQ {
    pub d: Sf16,
    /// Offset; [`Sf16::ZERO`] for symmetric formats.
    pub m: Sf16,
    df: f64,
    mf: f64,
    symmetric: bool,
    /// Symmetric: the stored code range. Asymmetric: `lo` unused and
    /// `q = c + bias ∈ [0, hi]`.
    lo: f64,
    hi: f64,
    /// The matrix's `2^(b-1)` for asymmetric formats, 0 for symmetric.
    bias: f64,
}

impl GroupQ {
    pub fn new(fmt: &WeightFormat, d: Sf16, m: Sf16) -> Self {
        let (lo, hi) = fmt.code_range();
        let bias = fmt.code_bias() as f64;
        GroupQ {
            d,
            m: if fmt.symmetric { Sf16::ZERO } else { m },
            df: d.to_f64(),
            mf: if fmt.symmetric { 0.0 } else { m.to_f64() },
            symmetric: fmt.symmetric,
            lo: lo as f64,
            hi: if fmt.symmetric {
                hi as f64
            } else {
                hi as f64 + bias
            },
            bias,
        }
    }

    /// The same group with its codes in the convention of a matrix of
    /// `tensor`, whose widest groups may be wider than this one (see
    /// `QTensor::bits_at`): asymmetric codes are re-centred on the
    /// matrix's bias; the values are unchanged.
    pub fn in_tensor(mut self, tensor: &WeightFormat) -> Self {
        self.bias = tensor.code_bias() as f64;
        self
    }

    /// Stored code of `w` (round half away from zero, clamped). A zero scale
    /// gives code 0 (the group's value is then `0` or `m`).
    #[inline]
    pub fn code(&self, w: f64) -> i8 {
        if self.df == 0.0 {
            return 0;
        }
        if self.symmetric {
            round_clamped(w / self.df, self.lo, self.hi) as i8
        } else {
            // q ∈ [0, 2^b - 1], stored as q - 2^(b-1).
            (round_clamped((w - self.mf) / self.df, 0.0, self.hi) - self.bias as i32) as i8
        }
    }

    /// Value of a stored code (exact in f64: an 11-bit mantissa times a code
    /// of at most 8 bits plus an `SF16` offset spans fewer than 53 bits).
    #[inline]
    pub fn value(&self, c: i8) -> f64 {
        if self.symmetric {
            self.df * c as f64
        } else {
            self.df * (c as f64 + self.bias) + self.mf
        }
    }

    /// Stored code and its value.
    #[inline]
    pub fn quant(&self, w: f64) -> (i8, f64) {
        let c = self.code(w);
        (c, self.value(c))
    }

    /// One pass over the group: squared error and the sums of the least
    /// squares refit, with `x` the datapath code (stored code + bias).
    fn stats(&self, vals: &[f64]) -> Stats {
        let mut st = Stats::default();
        for &w in vals {
            let c = self.code(w);
            let e = w - self.value(c);
            let x = c as f64 + self.bias;
            st.sse += e * e;
            st.sx += x;
            st.sxx += x * x;
            st.sw += w;
            st.swx += w * x;
        }
        st
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    sse: f64,
    sx: f64,
    sxx: f64,
    sw: f64,
    swx: f64,
}

/// Which parameter overflowed SF16, and its value.
pub(crate) type Overflow = (&'static str, f64);

/// Chooses a group's parameters from its (current) weights.
///
/// Symmetric, plain: `v` = the element of largest magnitude (first one on
/// ties), `d = v / -2^(b-1)` rounded to SF16, so `v` maps to the most
/// negative code (llama.cpp `Q4_0`-style use of the full signed range; `d`
/// is negative when `v` is positive).
///
/// Asymmetric, plain: `m = min`, `d = (max - min) / (2^b - 1)`, both rounded
/// to SF16; codes are computed with the ROUNDED `d` and `m`.
///
/// Search: the plain candidate, then for each factor `s` in
/// [`SEARCH_FACTORS`] a candidate with the scale multiplied by `s`
/// (asymmetric: the range shrunk/grown about its midpoint); every candidate
/// is also refitted by least squares on its own codes (symmetric:
/// `d = Σwc/Σc²`; asymmetric: `(d, m)` by linear regression of `w` on `q`),
/// rounded to SF16 and re-coded. The candidate with the least squared error
/// wins; the plain one wins ties. Only an overflow of the PLAIN parameters is
/// an error (overflowing candidates are skipped).
///
/// Every scale and offset is rounded onto `grid` (any `SF16`, or the row's
/// 8-bit grid).
pub(crate) fn choose(
    vals: &[f64],
    fmt: &WeightFormat,
    rule: ScaleRule,
    grid: &Grid,
) -> Result<GroupQ, Overflow> {
    if fmt.symmetric {
        choose_sym(vals, fmt, rule, grid)
    } else {
        choose_asym(vals, fmt, rule, grid)
    }
}

/// The search shared by both kinds (see [`choose`]); `candidate(s)` is the
/// candidate for factor `s` (`None` when it overflows or has a zero scale).
fn search(
    vals: &[f64],
    fmt: &WeightFormat,
    grid: &Grid,
    plain: GroupQ,
    candidate: impl Fn(f64) -> Option<GroupQ>,
) -> GroupQ {
    let n = vals.len() as f64;
    let mut best = plain;
    let mut best_e = f64::INFINITY;
    for s in std::iter::once(1.0).chain(SEARCH_FACTORS) {
        let cand = if s == 1.0 {
            plain
        } else {
            match candidate(s) {
                Some(c) => c,
                None => continue,
            }
        };
        let st = cand.stats(vals);
        if st.sse < best_e {
            best = cand;
            best_e = st.sse;
        }
        // Least-squares refit on the candidate's codes.
        let refit = if fmt.symmetric {
            (st.sxx > 0.0)
                .then(|| grid.scale(st.swx / st.sxx))
                .flatten()
                .map(|d| GroupQ::new(fmt, d, Sf16::ZERO))
        } else {
            let det = n * st.sxx - st.sx * st.sx;
            (det > 0.0)
                .then(|| grid.scale((n * st.swx - st.sx * st.sw) / det))
                .flatten()
                .and_then(|d| {
                    grid.offset((st.sw - d.to_f64() * st.sx) / n)
                        .map(|m| GroupQ::new(fmt, d, m))
                })
        };
        if let Some(g) = refit {
            if g.df != 0.0 && (g.d, g.m) != (cand.d, cand.m) {
                let e = g.stats(vals).sse;
                if e < best_e {
                    best = g;
                    best_e = e;
                }
            }
        }
    }
    best
}

fn choose_sym(
    vals: &[f64],
    fmt: &WeightFormat,
    rule: ScaleRule,
    grid: &Grid,
) -> Result<GroupQ, Overflow> {
    let mut amax = 0.0f64;
    let mut v = 0.0f64;
    for &x in vals {
        if x.abs() > amax {
            amax = x.abs();
            v = x;
        }
    }
    let half = (1u32 << (fmt.bits - 1)) as f64;
    let d0 = v / -half;
    let plain = GroupQ::new(fmt, grid.scale(d0).ok_or(("scale", d0))?, Sf16::ZERO);
    if rule == ScaleRule::Plain || plain.df == 0.0 {
        return Ok(plain);
    }
    Ok(search(vals, fmt, grid, plain, |s| {
        grid.scale(d0 * s)
            .filter(|d| d.to_f64() != 0.0)
            .map(|d| GroupQ::new(fmt, d, Sf16::ZERO))
    }))
}

fn choose_asym(
    vals: &[f64],
    fmt: &WeightFormat,
    rule: ScaleRule,
    grid: &Grid,
) -> Result<GroupQ, Overflow> {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for &x in vals {
        lo = lo.min(x);
        hi = hi.max(x);
    }
    if vals.is_empty() {
        (lo, hi) = (0.0, 0.0);
    }
    let qmax = ((1u32 << fmt.bits) - 1) as f64;
    let m0 = grid.offset(lo).ok_or(("offset", lo))?;
    let d0 = (hi - lo) / qmax;
    let plain = GroupQ::new(fmt, grid.scale(d0).ok_or(("scale", d0))?, m0);
    if rule == ScaleRule::Plain || hi == lo {
        return Ok(plain);
    }
    let mid = 0.5 * (lo + hi);
    Ok(search(vals, fmt, grid, plain, |s| {
        let d = d0 * s;
        match (grid.scale(d), grid.offset(mid - 0.5 * qmax * d)) {
            (Some(ds), Some(ms)) if ds.to_f64() != 0.0 => Some(GroupQ::new(fmt, ds, ms)),
            _ => None,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_clamped_matches_round_then_clamp() {
        let xs = [
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            -2.5,
            0.49999999999999994,
            -0.49999999999999994,
            7.4999,
            7.5,
            -8.5,
            -8.49,
            1e300,
            -1e300,
            f64::INFINITY,
            f64::NEG_INFINITY,
            3.0,
            -7.0,
        ];
        for &x in &xs {
            for (lo, hi) in [(-8.0, 7.0), (0.0, 15.0), (-128.0, 127.0)] {
                let want = x.round().clamp(lo, hi) as i32;
                assert_eq!(round_clamped(x, lo, hi), want, "{x} in [{lo}, {hi}]");
            }
        }
    }

    #[test]
    fn row8_grid_rounds_clamps_and_reports_overflow() {
        let f: WeightFormat = "a4g32h".parse().unwrap();
        // Largest plain scale (15 - 0)/15 = 1 -> E = -7 (255 · 2^-7 >= 1).
        let row: Vec<f64> = (0..64)
            .map(|i| (i % 16) as f64 * if i < 32 { 1.0 } else { 0.01 })
            .collect();
        let g = Grid::for_row(&f, &row, 32, |_| f.bits);
        assert_eq!(
            g,
            Grid::Row8 {
                d_exp: -7,
                m_exp: -24,
                d_signed: false
            }
        );
        // Exact grid points stay; others round to the nearest n/128.
        assert_eq!(g.scale(1.0).unwrap().to_f64(), 1.0);
        assert_eq!(g.scale(0.01).unwrap().to_f64(), 1.0 / 128.0);
        // A tiny nonzero scale is never rounded to 0, and a negative
        // asymmetric scale does not exist.
        assert_eq!(g.scale(1e-9).unwrap().to_f64(), 1.0 / 128.0);
        assert!(g.scale(-0.5).is_none());
        // Past the grid: clamps to 255 · 2^-7.
        assert_eq!(g.scale(5.0).unwrap().to_f64(), 255.0 / 128.0);
        // Beyond what any exponent holds: an overflow.
        let huge = [0.0, 1e6];
        let gh = Grid::for_row(&f, &huge, 2, |_| f.bits);
        assert!(gh.scale(1e6 / 15.0).is_none());
    }
}
