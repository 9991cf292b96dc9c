//! One group's parameters: the scale rule shared by RTN and GPTQ.

use taalasc_numerics::Sf16;

#[cfg(test)]
use crate::format::SUPPORTED_BITS;
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
pub(crate) const SEARCH_FACTORS: [f64; 8] = [0.80, 0.84, 0.88, 0.92, 0.96, 1.04, 1.08, 1.12];

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

/// `2^e` for an integer `e` of the normal f64 range: the value
/// `(e as f64).exp2()` gives (exact), without the libm call.
#[inline]
pub(crate) fn pow2(e: i32) -> f64 {
    debug_assert!((-1022..=1023).contains(&e));
    f64::from_bits(((e + 1023) as u64) << 52)
}

/// The exact value of an `SF16` (what [`Sf16::to_f64`] gives), by a bit
/// conversion (`+ 0.0` makes `-0` the `+0` that `to_f64` gives).
#[inline]
pub(crate) fn sf16_value(s: Sf16) -> f64 {
    half::f16::from_bits(s.0).to_f64() + 0.0
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
pub(crate) fn row8_max(signed: bool) -> f64 {
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
    while e < ROW8_EXP_MAX && amax > max * pow2(e) {
        e += 1;
    }
    e
}

/// The integer `n` of `n · 2^e`, `x` rounded to the 8-bit grid (half away
/// from zero, clamped); `None` when even the largest exponent cannot hold
/// `x` (an overflow, as for `SF16`; below it, a value past the grid clamps
/// to its end).
#[inline]
pub(crate) fn row8_int(x: f64, e: i32, signed: bool) -> Option<i32> {
    let max = row8_max(signed);
    let lo = if signed { -max - 1.0 } else { 0.0 };
    // x / 2^e, as a product: both are the one rounding of x·2^-e.
    let y = x * pow2(-e);
    if e == ROW8_EXP_MAX && !(lo - 0.5..max + 0.5).contains(&y) {
        return None;
    }
    Some(round_clamped(y, lo, max))
}

/// The integer of [`Grid::scale`] on the 8-bit grid of exponent `d_exp`:
/// a nonzero `x` never becomes 0 (it rounds to `±1`), and an unsigned
/// scale is never negative (`None`).
#[inline]
pub(crate) fn row8_scale_int(x: f64, d_exp: i32, d_signed: bool) -> Option<i32> {
    let unit = pow2(d_exp);
    let x = if x != 0.0 && x.abs() < unit {
        unit.copysign(x)
    } else {
        x
    };
    if !d_signed && x < 0.0 {
        return None;
    }
    row8_int(x, d_exp, d_signed)
}

/// `x` rounded to the 8-bit grid of exponent `e` ([`row8_int`]), as the
/// exact `SF16` of `n · 2^e` for `ROW8_EXP_MIN <= e <= ROW8_EXP_MAX`.
fn on_row8(x: f64, e: i32, signed: bool) -> Option<Sf16> {
    let n = row8_int(x, e, signed)?;
    let s = row8_sf16(n, e);
    debug_assert_eq!(
        Some(s),
        sf16_of(n as f64 * pow2(e)),
        "n·2^E is exact in SF16"
    );
    Some(s)
}

/// The `SF16` of `n · 2^e` (`|n| <= 255`, `ROW8_EXP_MIN <= e <=
/// ROW8_EXP_MAX`, exact in binary16), by its fields: what `sf16_of` gives.
#[inline]
pub(crate) fn row8_sf16(n: i32, e: i32) -> Sf16 {
    if n == 0 {
        return Sf16(0);
    }
    let sign = if n < 0 { 0x8000u16 } else { 0 };
    let a = n.unsigned_abs();
    let k = 31 - a.leading_zeros() as i32; // a in [2^k, 2^(k+1))
    let biased = k + e + 15;
    let bits = if biased >= 1 {
        // Normal: 1.f · 2^(k+e), ten fraction bits.
        ((biased as u32) << 10) | ((a << (10 - k)) & 0x3ff)
    } else {
        // Subnormal: f · 2^-24.
        a << (e + 24)
    };
    Sf16(sign | bits as u16)
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
            } => row8_scale_int(x, d_exp, d_signed).map(|n| row8_sf16(n, d_exp)),
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
            let n = sf16_value(*v) / pow2(e);
            n == n.trunc() && (lo..=max).contains(&n)
        })
}

/// `clamp(round(x), lo, hi)` with rounding half away from zero, for integer
/// `lo <= hi` (equal to `round(clamp(x, lo, hi))`). Exact, and without the
/// libm `round` call that baseline x86-64 needs.
#[inline]
pub(crate) fn round_clamped(x: f64, lo: f64, hi: f64) -> i32 {
    let t = x.clamp(lo, hi); // NaN never reaches here (finite weights)
    let i = t as i32; // truncation
    let frac = t - i as f64; // exact
                             // Without branches (the data decides them at random).
    i + (frac >= 0.5) as i32 - (frac <= -0.5) as i32
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
            df: sf16_value(d),
            mf: if fmt.symmetric { 0.0 } else { sf16_value(m) },
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

    /// [`GroupQ::code`] of each of `vals` into `out` (as long).
    pub fn codes_into(&self, vals: &[f64], out: &mut [i8]) {
        #[cfg(target_arch = "x86_64")]
        {
            if self.df != 0.0 && std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2 (checked just above).
                unsafe { lanes_avx2::codes(self, vals, out) };
                return;
            }
        }
        for (c, &v) in out.iter_mut().zip(vals) {
            *c = self.code(v);
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
        choose_sym(vals, fmt, rule, grid, search)
    } else {
        choose_asym(vals, fmt, rule, grid, search)
    }
}

/// [`choose`] with the reference search ([`search_reference`]): the oracle
/// the fast search is tested against.
#[cfg(test)]
pub(crate) fn choose_reference(
    vals: &[f64],
    fmt: &WeightFormat,
    rule: ScaleRule,
    grid: &Grid,
) -> Result<GroupQ, Overflow> {
    if fmt.symmetric {
        choose_sym(vals, fmt, rule, grid, search_reference)
    } else {
        choose_asym(vals, fmt, rule, grid, search_reference)
    }
}

/// A search over a group's candidates (see [`choose`]): `search(vals, fmt,
/// grid, plain, candidate)`.
type SearchFn = fn(&[f64], &WeightFormat, &Grid, GroupQ, &dyn Fn(f64) -> Option<GroupQ>) -> GroupQ;

/// The refit of a candidate from its stats (see [`choose`]): symmetric
/// `d = Σwx/Σx²`, asymmetric the least-squares line of `w` on `x`, rounded
/// onto `grid`; `None` when it does not exist or overflows.
#[inline]
fn refit(st: &Stats, n: f64, fmt: &WeightFormat, grid: &Grid) -> Option<GroupQ> {
    if fmt.symmetric {
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
                grid.offset((st.sw - sf16_value(d) * st.sx) / n)
                    .map(|m| GroupQ::new(fmt, d, m))
            })
    }
}

/// Most candidates a search tries: the plain one, one per factor.
pub(crate) const MAX_BASE: usize = 1 + SEARCH_FACTORS.len();

/// The search shared by both kinds (see [`choose`]); `candidate(s)` is the
/// candidate for factor `s` (`None` when it overflows or has a zero scale).
///
/// It chooses what trying the candidates one at a time does (the plain
/// one, its refit, the first factor's, its refit, ...; the first of least
/// squared error wins), bit for bit, with less work:
/// - a candidate with the `(d, m)` of an earlier one is dropped: its
///   statistics, refit and errors are those of the earlier one, which it
///   cannot strictly beat;
/// - a refit's error is looked up when its `(d, m)` was already measured;
/// - the candidates are measured four at a time ([`stats_lanes`]), each in
///   its own lane with the same f64 operations in the same order as
///   [`GroupQ::stats`], so every sum is the same to the last bit.
fn search(
    vals: &[f64],
    fmt: &WeightFormat,
    grid: &Grid,
    plain: GroupQ,
    candidate: &dyn Fn(f64) -> Option<GroupQ>,
) -> GroupQ {
    let n = vals.len() as f64;
    let key = |g: &GroupQ| (g.d.0, g.m.0);
    // The distinct candidates, in order.
    let mut base = [plain; MAX_BASE];
    let mut nb = 1;
    for s in SEARCH_FACTORS {
        if let Some(c) = candidate(s) {
            if !base[..nb].iter().any(|b| key(b) == key(&c)) {
                base[nb] = c;
                nb += 1;
            }
        }
    }
    let base = &base[..nb];
    // Their statistics: a zero scale (the plain one only) alone, the rest
    // four at a time.
    let mut stats = [Stats::default(); MAX_BASE];
    let mut lanes: [usize; MAX_BASE] = [0; MAX_BASE];
    let mut nl = 0;
    for (k, c) in base.iter().enumerate() {
        if c.df == 0.0 {
            stats[k] = c.stats(vals);
        } else {
            lanes[nl] = k;
            nl += 1;
        }
    }
    for chunk in lanes[..nl].chunks(LANES) {
        let mut cands = [base[chunk[0]]; LANES];
        for (j, &k) in chunk.iter().enumerate() {
            cands[j] = base[k];
        }
        let st = stats_lanes::<true>(vals, &cands[..chunk.len()]);
        for (j, &k) in chunk.iter().enumerate() {
            stats[k] = st[j];
        }
    }
    // The refits that are tried, and their errors: looked up among the
    // measured parameters, else measured (four at a time).
    let mut refits: [Option<GroupQ>; MAX_BASE] = [None; MAX_BASE];
    let mut refit_e = [0.0f64; MAX_BASE];
    let mut todo = [plain; MAX_BASE];
    let mut todo_of = [0usize; MAX_BASE];
    let mut nt = 0;
    for k in 0..nb {
        let Some(g) = refit(&stats[k], n, fmt, grid) else {
            continue;
        };
        if g.df == 0.0 || key(&g) == key(&base[k]) {
            continue;
        }
        refits[k] = Some(g);
        if let Some(j) = base.iter().position(|b| key(b) == key(&g)) {
            refit_e[k] = stats[j].sse;
        } else if let Some(j) = todo[..nt].iter().position(|t| key(t) == key(&g)) {
            todo_of[k] = j; // measured once, below
            refit_e[k] = f64::NAN;
        } else {
            todo[nt] = g;
            todo_of[k] = nt;
            refit_e[k] = f64::NAN;
            nt += 1;
        }
    }
    let mut todo_e = [0.0f64; MAX_BASE];
    for (ci, chunk) in todo[..nt].chunks(LANES).enumerate() {
        let st = stats_lanes::<false>(vals, chunk);
        for (j, s) in st.iter().take(chunk.len()).enumerate() {
            todo_e[ci * LANES + j] = s.sse;
        }
    }
    // The reference's order and its strict comparisons.
    let mut best = plain;
    let mut best_e = f64::INFINITY;
    for k in 0..nb {
        if stats[k].sse < best_e {
            best = base[k];
            best_e = stats[k].sse;
        }
        if let Some(g) = refits[k] {
            let e = if refit_e[k].is_nan() {
                todo_e[todo_of[k]]
            } else {
                refit_e[k]
            };
            if e < best_e {
                best = g;
                best_e = e;
            }
        }
    }
    best
}

/// Candidates measured at once by [`stats_lanes`].
const LANES: usize = 4;

/// [`GroupQ::stats`] of each of `cands` (1 to [`LANES`] of them, of one
/// kind, none with a zero scale) over `vals`, bit for bit; the entries past
/// `cands.len()` are unspecified.
#[inline]
fn stats_lanes<const FULL: bool>(vals: &[f64], cands: &[GroupQ]) -> [Stats; LANES] {
    debug_assert!(!cands.is_empty() && cands.len() <= LANES);
    debug_assert!(cands.iter().all(|c| c.df != 0.0));
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { lanes_avx2::stats4::<FULL>(vals, cands) };
        }
    }
    let mut out = [Stats::default(); LANES];
    for (o, c) in out.iter_mut().zip(cands) {
        *o = c.stats(vals);
    }
    out
}

/// [`stats_lanes`] on AVX2: one candidate per f64 lane.
#[cfg(target_arch = "x86_64")]
mod lanes_avx2 {
    use super::{GroupQ, Stats, LANES};
    use std::arch::x86_64::*;

    /// `t = a / d` may be taken as `a · (1/d)` when that lies farther than
    /// this from every half-integer: the two differ by at most
    /// `|a/d| · 3 · 2^-53 <= 2^-42` for `|a/d| <= 2^9`, so they round to the
    /// same code (beyond `2^9`, both clamp to the same end of every code
    /// range). Else the lanes are divided exactly.
    const NEAR_HALF: f64 = 1.0 / (1u64 << 32) as f64;

    /// The codes of `a = w` (symmetric) or `a = w - m` (asymmetric) in
    /// each lane, as `round_clamped(a / d, lo, hi)` gives them (exactly:
    /// see [`NEAR_HALF`]), as f64; `+ 0.0` makes a -0 code +0.
    #[inline(always)]
    unsafe fn round_codes(
        a: __m256d,
        d: __m256d,
        inv: __m256d,
        lo: __m256d,
        hi: __m256d,
        sym: bool,
    ) -> __m256d {
        let half = _mm256_set1_pd(0.5);
        let sign = _mm256_set1_pd(-0.0);
        let mut t = _mm256_min_pd(_mm256_max_pd(_mm256_mul_pd(a, inv), lo), hi);
        let mut i = _mm256_round_pd(t, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        let mut frac = _mm256_sub_pd(t, i);
        // | |frac| - 0.5 | < NEAR_HALF: divide.
        let dist = _mm256_andnot_pd(sign, _mm256_sub_pd(_mm256_andnot_pd(sign, frac), half));
        if _mm256_movemask_pd(_mm256_cmp_pd(dist, _mm256_set1_pd(NEAR_HALF), _CMP_LT_OQ)) != 0 {
            t = _mm256_min_pd(_mm256_max_pd(_mm256_div_pd(a, d), lo), hi);
            i = _mm256_round_pd(t, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            frac = _mm256_sub_pd(t, i);
        }
        let one = _mm256_set1_pd(1.0);
        let up = _mm256_and_pd(_mm256_cmp_pd(frac, half, _CMP_GE_OQ), one);
        let c = _mm256_add_pd(i, up);
        if sym {
            let down = _mm256_and_pd(_mm256_cmp_pd(frac, _mm256_set1_pd(-0.5), _CMP_LE_OQ), one);
            _mm256_sub_pd(c, down)
        } else {
            c
        }
    }

    /// See [`super::stats_lanes`]; without `FULL`, only `sse` is summed.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn stats4<const FULL: bool>(
        vals: &[f64],
        cands: &[GroupQ],
    ) -> [Stats; LANES] {
        let lane = |f: &dyn Fn(&GroupQ) -> f64| -> __m256d {
            let mut a = [0.0f64; LANES];
            for (k, x) in a.iter_mut().enumerate() {
                *x = f(cands.get(k).unwrap_or(&cands[0]));
            }
            _mm256_loadu_pd(a.as_ptr())
        };
        let sym = cands[0].symmetric;
        let d = lane(&|c| c.df);
        let m = lane(&|c| c.mf);
        let inv = _mm256_div_pd(_mm256_set1_pd(1.0), d);
        let lo = _mm256_set1_pd(if sym { cands[0].lo } else { 0.0 });
        let hi = _mm256_set1_pd(cands[0].hi);
        let zero = _mm256_setzero_pd();
        let (mut sse, mut sx, mut sxx, mut sw, mut swx) = (zero, zero, zero, zero, zero);
        for &x in vals {
            let w = _mm256_set1_pd(x);
            // Symmetric: w / d; asymmetric: (w - m) / d.
            let a = if sym { w } else { _mm256_sub_pd(w, m) };
            let c = round_codes(a, d, inv, lo, hi, sym);
            // The value (symmetric d·c; asymmetric d·q + m, q = c + bias
            // being the code computed here), its error and the sums.
            let v = if sym {
                _mm256_mul_pd(d, c)
            } else {
                _mm256_add_pd(_mm256_mul_pd(d, c), m)
            };
            let e = _mm256_sub_pd(w, v);
            sse = _mm256_add_pd(sse, _mm256_mul_pd(e, e));
            if FULL {
                sx = _mm256_add_pd(sx, c);
                sxx = _mm256_add_pd(sxx, _mm256_mul_pd(c, c));
                sw = _mm256_add_pd(sw, w);
                swx = _mm256_add_pd(swx, _mm256_mul_pd(w, c));
            }
        }
        let get = |v: __m256d| {
            let mut a = [0.0f64; LANES];
            _mm256_storeu_pd(a.as_mut_ptr(), v);
            a
        };
        let (sse, sx, sxx, sw, swx) = (get(sse), get(sx), get(sxx), get(sw), get(swx));
        let mut out = [Stats::default(); LANES];
        for (k, o) in out.iter_mut().enumerate() {
            *o = Stats {
                sse: sse[k],
                sx: sx[k],
                sxx: sxx[k],
                sw: sw[k],
                swx: swx[k],
            };
        }
        out
    }

    /// [`GroupQ::code`] of every value (`q.df != 0`), four at a time.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn codes(q: &GroupQ, vals: &[f64], out: &mut [i8]) {
        let d = _mm256_set1_pd(q.df);
        let m = _mm256_set1_pd(q.mf);
        let inv = _mm256_div_pd(_mm256_set1_pd(1.0), d);
        let lo = _mm256_set1_pd(if q.symmetric { q.lo } else { 0.0 });
        let hi = _mm256_set1_pd(q.hi);
        let bias = if q.symmetric { 0 } else { q.bias as i32 };
        let mut chunks = vals.chunks_exact(LANES);
        let mut outs = out.chunks_exact_mut(LANES);
        for (v, o) in (&mut chunks).zip(&mut outs) {
            let w = _mm256_loadu_pd(v.as_ptr());
            let a = if q.symmetric { w } else { _mm256_sub_pd(w, m) };
            let c = round_codes(a, d, inv, lo, hi, q.symmetric);
            let mut k = [0i32; LANES];
            _mm_storeu_si128(k.as_mut_ptr().cast(), _mm256_cvttpd_epi32(c));
            for (o, k) in o.iter_mut().zip(k) {
                *o = (k - bias) as i8;
            }
        }
        for (o, &v) in outs.into_remainder().iter_mut().zip(chunks.remainder()) {
            *o = q.code(v);
        }
    }
}

/// The search shared by both kinds (see [`choose`]), as first written: one
/// candidate at a time, in order. `candidate(s)` is the candidate for factor
/// `s` (`None` when it overflows or has a zero scale). The oracle of the
/// fast [`search`], which must choose the same parameters bit for bit.
#[cfg(test)]
fn search_reference(
    vals: &[f64],
    fmt: &WeightFormat,
    grid: &Grid,
    plain: GroupQ,
    candidate: &dyn Fn(f64) -> Option<GroupQ>,
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
                    grid.offset((st.sw - sf16_value(d) * st.sx) / n)
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
    search: SearchFn,
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
    Ok(search(vals, fmt, grid, plain, &|s| {
        grid.scale(d0 * s)
            .filter(|d| sf16_value(*d) != 0.0)
            .map(|d| GroupQ::new(fmt, d, Sf16::ZERO))
    }))
}

fn choose_asym(
    vals: &[f64],
    fmt: &WeightFormat,
    rule: ScaleRule,
    grid: &Grid,
    search: SearchFn,
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
    Ok(search(vals, fmt, grid, plain, &|s| {
        let d = d0 * s;
        match (grid.scale(d), grid.offset(mid - 0.5 * qmax * d)) {
            (Some(ds), Some(ms)) if sf16_value(ds) != 0.0 => Some(GroupQ::new(fmt, ds, ms)),
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

    use crate::testutil::{random_group, Rng};

    #[test]
    fn row8_fields_give_the_rounded_sf16() {
        for e in ROW8_EXP_MIN..=ROW8_EXP_MAX {
            for n in -128..=255 {
                let want = sf16_of(n as f64 * (e as f64).exp2()).unwrap();
                assert_eq!(row8_sf16(n, e), want, "{n} * 2^{e}");
            }
        }
    }

    #[test]
    fn fast_helpers_give_the_libm_values() {
        for e in -1022..=1023 {
            assert_eq!(pow2(e), (e as f64).exp2(), "2^{e}");
        }
        for b in 0..=u16::MAX {
            let s = Sf16(b);
            if half::f16::from_bits(b).is_finite() {
                assert_eq!(sf16_value(s).to_bits(), s.to_f64().to_bits(), "{b:#06x}");
            }
        }
    }

    /// The lanes against [`GroupQ::stats`] on values exactly half way
    /// between codes (where `a · (1/d)` and `a / d` may round apart) and
    /// random ones, bit for bit in every sum.
    #[test]
    fn lanes_measure_exactly_what_stats_does_at_ties() {
        let mut rng = Rng::seeded(99);
        let mut differed = 0;
        for round in 0..3000 {
            let bits = SUPPORTED_BITS[round % SUPPORTED_BITS.len()];
            let sym = round % 2 == 0;
            let fmt: WeightFormat = format!("{}{bits}g32", if sym { 's' } else { 'a' })
                .parse()
                .unwrap();
            let mag = 10f64.powi(rng.below(10) as i32 - 6);
            let cands: Vec<GroupQ> = (0..1 + rng.below(LANES as u64) as usize)
                .map(|_| {
                    let d = sf16_of(
                        mag * (0.01 + rng.unit())
                            * if sym && rng.below(2) == 0 { -1.0 } else { 1.0 },
                    )
                    .unwrap();
                    let m = sf16_of(-mag * rng.unit()).unwrap();
                    GroupQ::new(&fmt, d, m)
                })
                .filter(|c| c.df != 0.0)
                .collect();
            if cands.is_empty() {
                continue;
            }
            let (lo, hi) = fmt.code_range();
            let vals: Vec<f64> = (0..32)
                .map(|_| {
                    let c = &cands[rng.below(cands.len() as u64) as usize];
                    let k = rng.below((hi - lo + 3) as u64) as f64 - 1.0;
                    let t = k + if rng.below(4) == 0 { rng.unit() } else { 0.5 };
                    if sym {
                        c.df * (lo as f64 + t)
                    } else {
                        c.mf + c.df * t
                    }
                })
                .collect();
            let fast = stats_lanes::<true>(&vals, &cands);
            let sse_only = stats_lanes::<false>(&vals, &cands);
            for (k, c) in cands.iter().enumerate() {
                let want = c.stats(&vals);
                let got = fast[k];
                assert_eq!(
                    sse_only[k].sse.to_bits(),
                    want.sse.to_bits(),
                    "{fmt} lane {k}"
                );
                for (a, b) in [
                    (got.sse, want.sse),
                    (got.sx, want.sx),
                    (got.sxx, want.sxx),
                    (got.sw, want.sw),
                    (got.swx, want.swx),
                ] {
                    assert_eq!(
                        a.to_bits(),
                        b.to_bits(),
                        "{fmt} lane {k}: {got:?} vs {want:?}"
                    );
                }
                let mut codes = vec![0i8; vals.len()];
                c.codes_into(&vals, &mut codes);
                let want: Vec<i8> = vals.iter().map(|&x| c.code(x)).collect();
                assert_eq!(codes, want, "{fmt} lane {k}");
                // Whether multiplying by the reciprocal alone would have
                // coded some value differently: the case the division covers.
                let inv = 1.0 / c.df;
                differed += vals
                    .iter()
                    .filter(|&&w| {
                        let a = if sym { w } else { w - c.mf };
                        let (l, h) = if sym { (c.lo, c.hi) } else { (0.0, c.hi) };
                        round_clamped(a * inv, l, h) != round_clamped(a / c.df, l, h)
                    })
                    .count();
            }
        }
        assert!(
            differed > 100,
            "ties where the reciprocal rounds apart: {differed}"
        );
    }

    /// The fast search against the reference, group by group: the same
    /// parameters bit for bit (or the same error) and the same code for
    /// every value, for every width, kind and scale store.
    #[test]
    fn fast_search_chooses_exactly_what_the_reference_does() {
        let mut rng = Rng::seeded(2024);
        let mut searched = 0;
        for round in 0..6000 {
            let bits = SUPPORTED_BITS[round % SUPPORTED_BITS.len()];
            let sym = rng.below(2) == 0;
            let row8 = rng.below(2) == 0;
            let g = [32, 64, 128][rng.below(3) as usize];
            let name = format!(
                "{}{bits}g{g}{}",
                if sym { 's' } else { 'a' },
                if row8 { "h" } else { "" }
            );
            let fmt: WeightFormat = name.parse().unwrap();
            let vals = random_group(&mut rng, g, bits);
            // The row's grid from this group and a neighbour of another size.
            let mut row = vals.clone();
            row.extend(vals.iter().map(|x| x * 10f64.powi(rng.below(6) as i32 - 3)));
            let grid = Grid::for_row(&fmt, &row, g, |_| bits);
            for rule in [ScaleRule::Search, ScaleRule::Plain] {
                let fast = choose(&vals, &fmt, rule, &grid);
                let slow = choose_reference(&vals, &fmt, rule, &grid);
                match (fast, slow) {
                    (Ok(f), Ok(s)) => {
                        assert_eq!((f.d, f.m), (s.d, s.m), "{name} {rule:?} {vals:?}");
                        for &x in &vals {
                            assert_eq!(f.code(x), s.code(x), "{name} {x}");
                        }
                        // The vectorized codes, in a wider matrix's convention too.
                        for q in [f, f.in_tensor(&fmt.with_bits(8))] {
                            let mut codes = vec![0i8; vals.len()];
                            q.codes_into(&vals, &mut codes);
                            let want: Vec<i8> = vals.iter().map(|&x| q.code(x)).collect();
                            assert_eq!(codes, want, "{name} {vals:?}");
                        }
                        searched += 1;
                    }
                    (Err(f), Err(s)) => assert_eq!(f.0, s.0, "{name}"),
                    (f, s) => panic!("{name}: fast {f:?}, reference {s:?}"),
                }
            }
        }
        assert!(searched > 10_000, "{searched}");
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
