//! Table-driven scalar functions (run time: integer only).
//!
//! Splitting a fixed-point value into a table index and a fraction is a bit
//! selection (`>>` / mask of a non-negative value), not a rounding; every
//! other right shift is [`rshr`]. Error bounds are measured by the dense
//! sweeps in the tests below against f64 and asserted there.

use crate::formats::{P15_ONE, W_FRAC};
use crate::rshr;
use crate::tables::{
    exp2_neg_table, gelu_gate_table, recip_table, rsqrt_table, sigmoid_table, EXP2_IDX_BITS,
    GELU_LO, GELU_STEP_BITS, RECIP_IDX_BITS, RECIP_TABLE_FRAC, RECIP_TABLE_LEN, RSQRT_HI, RSQRT_LO,
    RSQRT_TABLE_FRAC, SIGMOID_LO, SIGMOID_STEP_BITS,
};

/// Fraction bits of [`LOG2E_Q`].
pub const LOG2E_FRAC: i32 = 24;
/// `round(log2(e) · 2^24)` (25 bits).
pub const LOG2E_Q: i64 = 24_204_406;
/// `exp_neg` clamps `d` to `[0, 32)` real (`2^29` in `W48`): beyond
/// `16·ln 2 ≈ 11.09` the result is already 0.
pub const EXP_D_MAX: i64 = 32 << W_FRAC;

/// Measured bound of [`exp_neg`]: `|exp_neg(d) - 2^15·e^-d| <= 3.3` P15 LSB
/// (≈ 1.0e-4 absolute), any `d >= 0`. Sources: the 12-bit fraction of
/// `u = d·log2 e` (≤ ln2·2^-13 relative ≈ 2.8 LSB at e ≈ 1), the table
/// rounding and the final shift (½ LSB each).
pub const EXP_NEG_MAX_ABS_ERR_LSB: f64 = 3.3;
/// Measured bound of [`recip`]: relative error `<= 1.4e-4`
/// (normalization rounding ≤ 2^-13, table rounding ≤ 2^-16).
pub const RECIP_MAX_REL_ERR: f64 = 1.4e-4;
/// Measured bound of [`rsqrt`]: relative error `<= 2.5e-4`
/// (normalization rounding ≤ 2^-12, table rounding ≤ 2^-18).
pub const RSQRT_MAX_REL_ERR: f64 = 2.5e-4;
/// Measured bound of [`sigmoid`]: `|σ - 2^15·σ(x)| <= 1.0` P15 LSB
/// (table ½, interpolation rounding ½, interpolation error ≤ 0.03).
pub const SIGMOID_MAX_ABS_ERR_LSB: f64 = 1.0;
/// Measured bound of [`gelu_gate`]: `|G - 2^15·G(x)| <= 1.1` P15 LSB.
pub const GELU_GATE_MAX_ABS_ERR_LSB: f64 = 1.1;

/// `e^-d` in `P15` for `d = d_w / 2^24 >= 0` (`W48`; negative `d` is
/// treated as 0).
///
/// ```text
/// dc = min(d_w, 2^29)                          d < 32
/// u  = rshr(dc · LOG2E_Q, 24 + 24 - 12)        d·log2 e with 12 fraction bits (< 2^18)
/// i  = u >> 12, f = u & 4095                   integer part, table index
/// e  = i > 16 ? 0 : rshr(exp2_neg_table[f], i)
/// ```
/// Result in `[0, 32768]`; `exp_neg(0) = 32768` exactly.
#[inline]
pub fn exp_neg(d_w: i64) -> u32 {
    let dc = d_w.clamp(0, EXP_D_MAX);
    let u = rshr(dc * LOG2E_Q, LOG2E_FRAC + W_FRAC - EXP2_IDX_BITS);
    let i = (u >> EXP2_IDX_BITS) as i32;
    if i > 16 {
        return 0;
    }
    let f = (u & ((1 << EXP2_IDX_BITS) - 1)) as usize;
    rshr(exp2_neg_table()[f] as i64, i) as u32
}

/// Reciprocal of a positive integer: `(mant, exp)` with
/// `1/x ≈ mant · 2^exp`, `mant ∈ [32768, 65536]` (17 bits).
///
/// ```text
/// k = bitlen(x) - 13
/// m = k > 0 ? rshr(x, k) : x << -k             m ∈ [4096, 8192]
/// m == 8192 -> m = 4096, k += 1                renormalize the rounding carry
/// mant = recip_table[m - 4096], exp = -28 - k
/// ```
/// Relative error `<=` [`RECIP_MAX_REL_ERR`]; exact for powers of two.
/// Panics on `x == 0`.
#[inline]
pub fn recip(x: u64) -> (u32, i32) {
    assert!(x > 0, "recip(0)");
    let len = 64 - x.leading_zeros() as i32;
    let mut k = len - RECIP_IDX_BITS as i32;
    let mut m = if k > 0 {
        ((x >> k) + ((x >> (k - 1)) & 1)) as usize
    } else {
        (x << -k) as usize
    };
    if m == 2 * RECIP_TABLE_LEN {
        m = RECIP_TABLE_LEN;
        k += 1;
    }
    (recip_table()[m - RECIP_TABLE_LEN], -RECIP_TABLE_FRAC - k)
}

/// `1/sqrt(v · 2^-frac)` for a positive integer `v`: `(mant, exp)` with
/// value `mant · 2^exp`, `mant ∈ [131072, 262144]` (19 bits).
///
/// ```text
/// odd frac: v <- 2v, frac <- frac + 1          (exact)
/// k = ceil((bitlen(v) - 12) / 2)               even shift 2k
/// m = k > 0 ? rshr(v, 2k) : v << -2k           m ∈ [1024, 4096]
/// m == 4096 -> m = 1024, k += 1                renormalize the rounding carry
/// mant = rsqrt_table[m - 1024], exp = frac/2 - k - 23
/// ```
/// Relative error `<=` [`RSQRT_MAX_REL_ERR`]; exact (up to table rounding)
/// for powers of four. Panics on `v == 0`.
#[inline]
pub fn rsqrt(v: u64, frac: i32) -> (u32, i32) {
    assert!(v > 0, "rsqrt(0)");
    let (v, frac) = if frac & 1 != 0 {
        ((v as u128) << 1, frac + 1)
    } else {
        (v as u128, frac)
    };
    let len = 128 - v.leading_zeros() as i32;
    let mut k = (len - 11).div_euclid(2);
    let mut m = if k > 0 {
        let s = 2 * k;
        ((v >> s) + ((v >> (s - 1)) & 1)) as u64
    } else {
        (v << (-2 * k)) as u64
    };
    if m == RSQRT_HI {
        m = RSQRT_LO;
        k += 1;
    }
    debug_assert!((RSQRT_LO..RSQRT_HI).contains(&m));
    (
        rsqrt_table()[(m - RSQRT_LO) as usize],
        frac / 2 - k - RSQRT_TABLE_FRAC,
    )
}

/// Linear interpolation in a table sampled every `2^step_bits` `W48` LSBs
/// from `lo` (real): `t[i] + rshr((t[i+1] - t[i]) · f, step_bits)`, with
/// `i`, `f` the high and low bits of `x_w - lo·2^24`. Below the range: 0;
/// at or above its end: `P15_ONE` (the tables' end values, so continuous).
#[inline]
fn interp_p15(t: &[u32], x_w: i64, lo: i64, step_bits: u32) -> u32 {
    let off = x_w.saturating_sub(lo << W_FRAC);
    if off < 0 {
        return 0;
    }
    let i = (off >> step_bits) as u64;
    if i >= (t.len() - 1) as u64 {
        return P15_ONE;
    }
    let i = i as usize;
    let f = off & ((1 << step_bits) - 1);
    let (a, b) = (t[i] as i64, t[i + 1] as i64);
    (a + rshr((b - a) * f, step_bits as i32)) as u32
}

/// `σ(x)` in `P15` for `x` in `W48`: [`crate::tables::sigmoid_table`]
/// over `[-16, 16)`, step `2^-7`, linear interpolation; exactly 0 below
/// and 1 at/above. Error `<=` [`SIGMOID_MAX_ABS_ERR_LSB`] P15 LSB.
#[inline]
pub fn sigmoid(x_w: i64) -> u32 {
    interp_p15(sigmoid_table(), x_w, SIGMOID_LO, SIGMOID_STEP_BITS)
}

/// GELU(tanh) gate `G(x) = σ(1.5957691·(x + 0.044715x³))` in `P15`:
/// [`crate::tables::gelu_gate_table`] over `[-8, 8)`, step `2^-8`, linear
/// interpolation; 0 below, 1 at/above. Error `<=`
/// [`GELU_GATE_MAX_ABS_ERR_LSB`] P15 LSB.
#[inline]
pub fn gelu_gate(x_w: i64) -> u32 {
    interp_p15(gelu_gate_table(), x_w, GELU_LO, GELU_STEP_BITS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::{gelu_gate_f64, sigmoid_f64};

    const ONE: f64 = (1u64 << 24) as f64;

    #[test]
    fn log2e_constant() {
        assert_eq!(
            LOG2E_Q,
            (std::f64::consts::LOG2_E * (LOG2E_FRAC as f64).exp2()).round() as i64
        );
    }

    #[test]
    fn exp_neg_sweep() {
        assert_eq!(exp_neg(0), 32768);
        assert_eq!(exp_neg(-5), 32768);
        assert_eq!(exp_neg(i64::MAX), 0);
        let mut worst: f64 = 0.0;
        // Dense sweep over [0, 12]: every 37th W48 code (~5.4 M points).
        let mut d = 0i64;
        while d <= 12 << 24 {
            let want = (-(d as f64) / ONE).exp() * 32768.0;
            worst = worst.max((exp_neg(d) as f64 - want).abs());
            d += 37;
        }
        println!("exp_neg max abs err {worst} LSB");
        assert!(worst <= EXP_NEG_MAX_ABS_ERR_LSB, "{worst}");
        // Far tail is exactly zero.
        for d in [12i64 << 24, 20 << 24, 32 << 24, 1 << 40, 1 << 47] {
            assert_eq!(exp_neg(d), 0);
        }
    }

    #[test]
    fn recip_sweep() {
        let mut worst: f64 = 0.0;
        let mut check = |x: u64| {
            let (m, e) = recip(x);
            let got = m as f64 * (e as f64).exp2();
            worst = worst.max((got * x as f64 - 1.0).abs());
        };
        for x in 1..(1u64 << 21) {
            check(x);
        }
        let mut s = 99u64;
        for _ in 0..200_000 {
            let x = crate::formats::tests::xorshift(&mut s) >> (s % 60);
            if x > 0 {
                check(x);
            }
        }
        check(u64::MAX);
        println!("recip max rel err {worst:e}");
        assert!(worst <= RECIP_MAX_REL_ERR, "{worst}");
        for k in 0..64 {
            let (m, e) = recip(1u64 << k);
            assert_eq!(m as f64 * (e as f64).exp2(), (-(k as f64)).exp2());
        }
        // Rounding carry renormalizes: 8191.5·2 rounds to 8192.
        assert_eq!(recip(16383), (65536, -28 - 2));
    }

    #[test]
    fn rsqrt_sweep() {
        let mut worst: f64 = 0.0;
        let mut check = |v: u64, frac: i32| {
            let (m, e) = rsqrt(v, frac);
            let got = m as f64 * (e as f64).exp2();
            let want = 1.0 / (v as f64 * (-(frac as f64)).exp2()).sqrt();
            worst = worst.max((got / want - 1.0).abs());
        };
        for v in 1..(1u64 << 20) {
            check(v, 32);
            check(v, 7);
        }
        let mut s = 5u64;
        for _ in 0..200_000 {
            let v = crate::formats::tests::xorshift(&mut s) >> (s % 63);
            if v > 0 {
                check(v, 32);
                check(v, -3);
            }
        }
        check(u64::MAX, 32);
        check(u64::MAX, 33);
        println!("rsqrt max rel err {worst:e}");
        assert!(worst <= RSQRT_MAX_REL_ERR, "{worst}");
        // Powers of four with frac 32: 1/sqrt(4^k · 2^-32) = 2^(16-k).
        for k in 0..31 {
            let (m, e) = rsqrt(1u64 << (2 * k), 32);
            assert_eq!((m, e), (262144, 16 - k - 18));
        }
    }

    fn sweep_interp(f: fn(i64) -> u32, g: fn(f64) -> f64, lo: f64, hi: f64) -> f64 {
        let mut worst: f64 = 0.0;
        let mut x = (lo * ONE) as i64;
        while x <= (hi * ONE) as i64 {
            let want = g(x as f64 / ONE) * 32768.0;
            worst = worst.max((f(x) as f64 - want).abs());
            x += 29;
        }
        worst
    }

    #[test]
    fn sigmoid_sweep() {
        let worst = sweep_interp(sigmoid, sigmoid_f64, -20.0, 20.0);
        println!("sigmoid max abs err {worst} LSB");
        assert!(worst <= SIGMOID_MAX_ABS_ERR_LSB, "{worst}");
        assert_eq!(sigmoid(0), 16384);
        assert_eq!(sigmoid(i64::MIN), 0);
        assert_eq!(sigmoid(i64::MAX), 32768);
        assert_eq!(sigmoid(16 << 24), 32768);
        assert_eq!(sigmoid((-16 << 24) - 1), 0);
    }

    #[test]
    fn gelu_gate_sweep() {
        let worst = sweep_interp(gelu_gate, gelu_gate_f64, -10.0, 10.0);
        println!("gelu gate max abs err {worst} LSB");
        assert!(worst <= GELU_GATE_MAX_ABS_ERR_LSB, "{worst}");
        assert_eq!(gelu_gate(0), 16384);
        assert_eq!(gelu_gate(i64::MIN), 0);
        assert_eq!(gelu_gate(i64::MAX), 32768);
    }
}
