//! RMSNorm and LayerNorm (RFC 0002 §Nonlinear units).
//!
//! Inputs: the residual stream in `R32` (16 fraction bits); gains and biases
//! in Q15.16 (same format, converted at build time with
//! [`crate::formats::r32_from_f64`]). Output: `W48` (then `to_a8`).
//!
//! ```text
//! S    = Σ r_i^2                                 exact, i128 (≤ 2^62·n; 80 bits for n ≤ 2^16)
//! mean = div_n(S) = rshr(S · M_n, 40)           M_n = ceil(2^40 / n); 32 fraction bits
//! v    = max(mean + eps_fixed, 1)               eps_fixed = round(eps · 2^32)
//! (t, te) = rsqrt(v, 32)                         1/sqrt(mean + eps) = t · 2^te
//! u_i  = sat_w48(rshr(r_i · t, -(te + 8)))      r_i / rms in W48 (|u_i| ≤ sqrt(n))
//! y_i  = sat_w48(rshr(u_i · g_i, 16))           W48
//! ```
//!
//! LayerNorm: `mu = div_n(Σ r_i)` (R32), `c_i = sat32(r_i - mu)`, then the
//! same on `c_i`, plus `b_i << 8` (Q15.16 to W48) before the last saturation.
//!
//! Error (asserted in the tests against f64 on the same integer inputs;
//! real units, `g_i` the real gain, `v` = mean + eps in units of 2^-32):
//!
//! ```text
//! |y_i - y_ref| <= (NORM_MAX_REL_ERR + 0.5/v + 2^-24)·|y_ref - b_i| + (|g_i| + 1)·2^-24
//!                  [LayerNorm: + |g_i|·(0.5 + n·|mean_r|/2^40)·2^-16 / sqrt(var + eps)]
//! ```
//!
//! `NORM_MAX_REL_ERR` is the rsqrt bound; `0.5/v` is the rounding of the mean
//! square to 32 fraction bits (≤ 1.2e-4 for eps ≥ 1e-6 ... ≤ 1.2e-5 for
//! eps ≥ 1e-5); the LayerNorm term is the rounding of the mean to an `R32`
//! LSB before centring.

use crate::formats::{sat32, sat_w48, R32_FRAC, W_FRAC};
use crate::linear::shift_sat_w48;
use crate::rshr128;
use crate::scalar::rsqrt;

/// `K` of the constant division: `div_n(x) = rshr(x · ceil(2^K / n), K)`.
pub const DIV_N_SHIFT: i32 = 40;
/// Fraction bits of the mean square / variance (`2 · R32_FRAC`).
pub const NORM_VAR_FRAC: i32 = 2 * R32_FRAC;
/// Measured relative error bound of the norms (plus the absolute term in
/// the module docs).
pub const NORM_MAX_REL_ERR: f64 = 2.5e-4;

/// Build time: `M_n = ceil(2^40 / n)` (41 bits; `n >= 1`).
pub const fn div_n_const(n: usize) -> i64 {
    assert!(n > 0);
    let p = 1i64 << DIV_N_SHIFT;
    (p + n as i64 - 1) / n as i64
}

/// `x / n` as a constant multiply: `rshr(x · M_n, 40)`.
///
/// Exactness: with `M_n = (2^40 + e)/n`, `0 <= e < n`, the product
/// moves `x/n` away from zero by `δ = x·e/(n·2^40)`, `|δ| < |x|/2^40`.
/// Hence, whenever `|x| < 2^39 / n`, the result is the correctly rounded
/// quotient: ties round up when `n` is a power of two (`e = 0`, exact
/// `rshr`), and away from zero otherwise (the overshoot decides the tie).
/// In general `|div_n(x) - x/n| <= 1/2 + |x|/2^40` (≤ 2^-24 relative for
/// a mean of `n <= 2^16` terms, beyond the half-LSB rounding).
/// `|x|` must be below `2^86` (the product stays in i128).
#[inline]
pub fn div_n(x: i128, m_n: i64) -> i128 {
    rshr128(x * m_n as i128, DIV_N_SHIFT)
}

/// Exact `Σ r_i^2` (i128; the RTL accumulator needs `62 + log2 n` bits).
pub fn sum_sq(r: &[i32]) -> i128 {
    r.iter().map(|&x| (x as i64 * x as i64) as i128).sum()
}

/// Exact `Σ r_i` (i64; `31 + log2 n` bits).
pub fn sum_i32(r: &[i32]) -> i64 {
    r.iter().map(|&x| x as i64).sum()
}

/// Per-layer constants of RMSNorm / LayerNorm, made at build time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NormConsts {
    /// Normalized width.
    pub n: usize,
    /// `ceil(2^40 / n)`.
    pub m_n: i64,
    /// `round(eps · 2^32)` (eps below 2^-33 becomes 0; `v` is then kept
    /// `>= 1` by the `max`).
    pub eps_fixed: i64,
}

/// The brief's name for the RMSNorm constants (LayerNorm uses the same).
pub type RmsNormConsts = NormConsts;

impl NormConsts {
    /// Build time: constants for width `n` and the model's epsilon.
    ///
    /// # Panics
    ///
    /// If `n` is 0 or `eps` is negative or not finite. Callers pass a
    /// verified IR graph, whose norms have `eps > 0` and finite (the
    /// frontends reject anything else naming the config field, and
    /// `taalasc_ir::verify` rejects it for graphs from any other source), so
    /// this is a check of that contract, not of user input.
    pub fn new(n: usize, eps: f32) -> Self {
        assert!(
            n > 0 && eps >= 0.0 && eps.is_finite(),
            "NormConsts: n {n} eps {eps}"
        );
        NormConsts {
            n,
            m_n: div_n_const(n),
            eps_fixed: (eps as f64 * (NORM_VAR_FRAC as f64).exp2()).round() as i64,
        }
    }
}

/// `(t, te)` = `1/sqrt(var + eps)` for an exact square sum `s`.
#[inline]
fn inv_rms(s: i128, c: &NormConsts) -> (u32, i32) {
    let mean = div_n(s, c.m_n);
    let v = (mean + c.eps_fixed as i128).clamp(1, u64::MAX as i128) as u64;
    rsqrt(v, NORM_VAR_FRAC)
}

/// `u = r · t · 2^te` in W48 (`R32` input).
#[inline]
fn normalize(r: i64, t: u32, te: i32) -> i64 {
    shift_sat_w48(r as i128 * t as i128, te + W_FRAC - R32_FRAC)
}

/// `rshr(u · g, 16)`: a Q15.16 gain applied to a W48 value (unsaturated).
#[inline]
fn apply_gain(u: i64, g: i32) -> i128 {
    rshr128(u as i128 * g as i128, R32_FRAC)
}

/// RMSNorm of one `R32` vector into `W48`: `y_i = r_i / sqrt(mean(r^2) + eps) · g_i`.
pub fn rms_norm(r: &[i32], gain: &[i32], c: &NormConsts, out: &mut [i64]) {
    assert_eq!(r.len(), c.n, "rms_norm: width");
    assert_eq!(gain.len(), c.n, "rms_norm: gain");
    assert_eq!(out.len(), c.n, "rms_norm: out");
    let (t, te) = inv_rms(sum_sq(r), c);
    for ((o, &x), &g) in out.iter_mut().zip(r).zip(gain) {
        *o = sat_w48(apply_gain(normalize(x as i64, t, te), g));
    }
}

/// LayerNorm of one `R32` vector into `W48`:
/// `y_i = (r_i - mean) / sqrt(var + eps) · g_i + b_i`.
pub fn layer_norm(r: &[i32], gain: &[i32], bias: Option<&[i32]>, c: &NormConsts, out: &mut [i64]) {
    assert_eq!(r.len(), c.n, "layer_norm: width");
    assert_eq!(gain.len(), c.n, "layer_norm: gain");
    assert_eq!(out.len(), c.n, "layer_norm: out");
    if let Some(b) = bias {
        assert_eq!(b.len(), c.n, "layer_norm: bias");
    }
    let mu = div_n(sum_i32(r) as i128, c.m_n) as i64;
    let centred = |x: i32| sat32(x as i64 - mu);
    let s: i128 = r
        .iter()
        .map(|&x| {
            let d = centred(x) as i64;
            (d * d) as i128
        })
        .sum();
    let (t, te) = inv_rms(s, c);
    for (i, (o, &x)) in out.iter_mut().zip(r).enumerate() {
        let y = apply_gain(normalize(centred(x) as i64, t, te), gain[i]);
        let b = bias.map_or(0, |b| (b[i] as i128) << (W_FRAC - R32_FRAC));
        *o = sat_w48(y + b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::tests::xorshift;

    #[test]
    fn div_n_exactness_range() {
        for n in 1usize..=300 {
            let m = div_n_const(n);
            let lim = (1i128 << 39) / n as i128;
            // Correctly rounded below the documented limit...
            let mut s = n as u64 * 977;
            let nn = n as i128;
            let half_up = |x: i128| (2 * x + nn).div_euclid(2 * nn); // floor(x/n + 1/2)
            for k in 0..4000 {
                let x = match k {
                    0..1000 => (xorshift(&mut s) as i128 % lim) * if s & 1 == 0 { 1 } else { -1 },
                    // ties: x = n·q + n/2 (n even) near the limit and near 0
                    _ => {
                        let q = (xorshift(&mut s) as i128 % (lim / nn - 1))
                            * if k % 2 == 0 { 1 } else { -1 };
                        nn * q + nn / 2 * if k % 3 == 0 { 1 } else { -1 }
                    }
                };
                let want = if n.is_power_of_two() || x >= 0 {
                    half_up(x)
                } else {
                    -half_up(-x)
                };
                assert_eq!(div_n(x, m), want, "n {n} x {x}");
            }
            // ...and within 1/2 + |x|/2^40 beyond it (checked as
            // |n·div_n(x) - x| · 2^41 <= n·2^40 + 2n|x|, exactly).
            for k in 0..2000 {
                let x = ((xorshift(&mut s) as i128) << 16) * if k % 2 == 0 { 1 } else { -1 };
                let d = (div_n(x, m) * n as i128 - x).abs();
                assert!(
                    d << 41 <= ((n as i128) << 40) + 2 * n as i128 * x.abs(),
                    "n {n} x {x}"
                );
            }
        }
        for k in 0..16 {
            let n = 1usize << k;
            let x = (1i128 << 85) - 12345;
            assert_eq!(div_n(x, div_n_const(n)), (x + (n as i128 / 2)) >> k);
        }
        assert_eq!(div_n_const(1), 1 << 40);
        assert_eq!(div_n_const(3), 366_503_875_926);
    }

    fn real(x: i64, frac: i32) -> f64 {
        x as f64 / (frac as f64).exp2()
    }

    /// The documented relative bound for `v` = mean + eps in 2^-32 units.
    fn rel_bound(v_units: f64) -> f64 {
        NORM_MAX_REL_ERR + 0.5 / v_units.max(1.0) + 2f64.powi(-24)
    }

    /// Checks one norm output against f64 on the same integer inputs.
    fn check(y: &[i64], want: &[f64], gain: &[i32], v_units: f64) -> f64 {
        let mut worst: f64 = 0.0;
        for ((&yi, &w), &g) in y.iter().zip(want).zip(gain) {
            let abs = (real(g as i64, 16).abs() + 1.0) * 2f64.powi(-24);
            let err = (real(yi, 24) - w).abs();
            let bound = rel_bound(v_units) * w.abs() + abs;
            assert!(err <= bound, "{} vs {w}: bound {bound}", real(yi, 24));
            if w.abs() > 1e-3 && v_units >= 2f64.powi(24) {
                worst = worst.max(err / w.abs());
            }
        }
        worst
    }

    #[test]
    fn rms_norm_against_f64() {
        let mut s = 3u64;
        let mut worst: f64 = 0.0;
        for trial in 0..400 {
            let n = [32usize, 64, 96, 576, 2048][trial % 5];
            let scale = (xorshift(&mut s) % 28) as u32;
            let r: Vec<i32> = (0..n)
                .map(|_| (xorshift(&mut s) as i32) >> (scale + 1))
                .collect();
            let gain: Vec<i32> = (0..n)
                .map(|_| ((xorshift(&mut s) % 200_000) as i32) - 50_000)
                .collect();
            let eps = [1e-5f32, 1e-6, 0.0][trial % 3];
            let c = NormConsts::new(n, eps);
            let mut y = vec![0i64; n];
            rms_norm(&r, &gain, &c, &mut y);
            let ms: f64 = r.iter().map(|&x| real(x as i64, 16).powi(2)).sum::<f64>() / n as f64;
            let v = (ms + real(c.eps_fixed, 32)).max(2f64.powi(-32));
            let inv = 1.0 / v.sqrt();
            let want: Vec<f64> = r
                .iter()
                .zip(&gain)
                .map(|(&x, &g)| real(x as i64, 16) * inv * real(g as i64, 16))
                .collect();
            worst = worst.max(check(&y, &want, &gain, v * 2f64.powi(32)));
        }
        println!("rms_norm max rel err (var >= 2^-8) {worst:e}");
    }

    #[test]
    fn rms_norm_edges() {
        let c = NormConsts::new(32, 1e-5);
        let mut y = vec![0i64; 32];
        rms_norm(&[0; 32], &[1 << 16; 32], &c, &mut y);
        assert!(y.iter().all(|&v| v == 0));
        // Saturated residual stream, huge gains: stays in W48 range.
        let r: Vec<i32> = (0..32)
            .map(|i| if i % 2 == 0 { i32::MAX } else { i32::MIN })
            .collect();
        rms_norm(&r, &[i32::MAX; 32], &c, &mut y);
        assert!(y
            .iter()
            .all(|&v| (crate::W_MIN..=crate::W_MAX).contains(&v)));
        // One-hot: |u| = sqrt(n) = sqrt(32); with unit gain y_0 ≈ 5.657.
        let mut r = vec![0i32; 32];
        r[0] = 1 << 20;
        rms_norm(&r, &[1 << 16; 32], &NormConsts::new(32, 0.0), &mut y);
        assert!((real(y[0], 24) - 32f64.sqrt()).abs() < 32f64.sqrt() * NORM_MAX_REL_ERR);
    }

    #[test]
    fn layer_norm_against_f64() {
        let mut s = 11u64;
        let mut worst: f64 = 0.0;
        for trial in 0..300 {
            let n = [32usize, 64, 768, 96][trial % 4];
            let scale = (xorshift(&mut s) % 24) as u32;
            let offset = (xorshift(&mut s) as i32) >> 4;
            let r: Vec<i32> = (0..n)
                .map(|_| ((xorshift(&mut s) as i32) >> (scale + 5)).saturating_add(offset))
                .collect();
            let gain: Vec<i32> = (0..n)
                .map(|_| ((xorshift(&mut s) % 140_000) as i32) - 20_000)
                .collect();
            let bias: Vec<i32> = (0..n)
                .map(|_| ((xorshift(&mut s) % 70_000) as i32) - 35_000)
                .collect();
            let c = NormConsts::new(n, 1e-5);
            let mut y = vec![0i64; n];
            layer_norm(&r, &gain, Some(&bias), &c, &mut y);
            let xs: Vec<f64> = r.iter().map(|&x| real(x as i64, 16)).collect();
            let mean = xs.iter().sum::<f64>() / n as f64;
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
            let v = var + real(c.eps_fixed, 32);
            let inv = 1.0 / v.sqrt();
            let want: Vec<f64> = xs
                .iter()
                .zip(gain.iter().zip(&bias))
                .map(|(x, (&g, &b))| (x - mean) * inv * real(g as i64, 16) + real(b as i64, 16))
                .collect();
            // The mean is rounded to an R32 LSB before centring (module
            // docs). The bias is added exactly: relative part on `core`.
            let mean_r = mean * 65536.0;
            let slack = (0.5 + n as f64 * mean_r.abs() / 2f64.powi(40)) * 2f64.powi(-16) * inv;
            for (i, &yi) in y.iter().enumerate() {
                let gr = real(gain[i] as i64, 16);
                let core = want[i] - real(bias[i] as i64, 16);
                let err = (real(yi, 24) - want[i]).abs();
                let bound = rel_bound(v * 2f64.powi(32)) * core.abs()
                    + (gr.abs() + 1.0) * 2f64.powi(-24)
                    + gr.abs() * slack;
                assert!(err <= bound, "n {n} err {err} bound {bound}");
                if core.abs() > 1e-3 && v >= 2f64.powi(-8) && gr.abs() * slack < 1e-9 {
                    worst = worst.max(err / core.abs());
                }
            }
        }
        println!("layer_norm max rel err (var >= 2^-8) {worst:e}");
    }
}
