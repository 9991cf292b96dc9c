//! Activations and elementwise arithmetic in `W48` (RFC 0002).
//!
//! ```text
//! silu(x)        = sat_w48(rshr(x · sigmoid(x), 15))
//! gelu(x)        = sat_w48(rshr(x · gelu_gate(x), 15))
//! mul_w48(a, b)  = sat_w48(rshr(a · b, 24))          SwiGLU / GeGLU gate × up (i128 product)
//! add_w48(a, b)  = sat_w48(a + b)
//! residual_add   = sat32(r + rshr(w, 24 - 16))       W48 joins the R32 stream
//! ```
//!
//! Errors (real units, measured): `|silu(x) - x·σ(x)| <= |x|·2^-15·SIGMOID_MAX_ABS_ERR_LSB + 2^-25`,
//! likewise for GELU with [`crate::scalar::GELU_GATE_MAX_ABS_ERR_LSB`];
//! `mul_w48`, `residual_add`: half an output LSB (exact rounding) unless saturated.

use crate::formats::{sat32, sat_w48, P15_FRAC, R32_FRAC, W_FRAC};
use crate::scalar::{gelu_gate, sigmoid};
use crate::{rshr, rshr128};

/// SiLU `x · σ(x)` in `W48`.
#[inline]
pub fn silu(x_w: i64) -> i64 {
    sat_w48(rshr128(x_w as i128 * sigmoid(x_w) as i128, P15_FRAC))
}

/// GELU (tanh approximation) `x · G(x)` in `W48`.
#[inline]
pub fn gelu(x_w: i64) -> i64 {
    sat_w48(rshr128(x_w as i128 * gelu_gate(x_w) as i128, P15_FRAC))
}

/// Product of two `W48` values in `W48`.
#[inline]
pub fn mul_w48(a: i64, b: i64) -> i64 {
    sat_w48(rshr128(a as i128 * b as i128, W_FRAC))
}

/// Sum of two `W48` values (e.g. a bias), saturated.
#[inline]
pub fn add_w48(a: i64, b: i64) -> i64 {
    sat_w48(a as i128 + b as i128)
}

/// A `W48` value added into the `R32` residual stream:
/// `sat32(r + rshr(w, 8))`.
#[inline]
pub fn residual_add(r: i32, w: i64) -> i32 {
    sat32(r as i64 + rshr(w, W_FRAC - R32_FRAC))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::{W_MAX, W_MIN};
    use crate::scalar::{GELU_GATE_MAX_ABS_ERR_LSB, SIGMOID_MAX_ABS_ERR_LSB};
    use crate::tables::{gelu_gate_f64, sigmoid_f64};

    const ONE: f64 = (1u64 << 24) as f64;

    fn sweep(f: fn(i64) -> i64, gate: fn(f64) -> f64, lsb: f64) {
        let mut x = -(24i64 << 24);
        while x <= 24 << 24 {
            let xr = x as f64 / ONE;
            let want = xr * gate(xr);
            let err = (f(x) as f64 / ONE - want).abs();
            let bound = xr.abs() * lsb / 32768.0 + 0.5 / ONE;
            assert!(
                err <= bound * (1.0 + 1e-9),
                "x {xr} err {err} bound {bound}"
            );
            x += 41;
        }
    }

    #[test]
    fn silu_sweep() {
        sweep(silu, sigmoid_f64, SIGMOID_MAX_ABS_ERR_LSB);
        assert_eq!(silu(0), 0);
        assert_eq!(silu(W_MAX), W_MAX);
        assert_eq!(silu(W_MIN), 0);
        assert_eq!(silu(1 << 30), 1 << 30); // x ≥ 16: σ = 1 exactly
    }

    #[test]
    fn gelu_sweep() {
        sweep(gelu, gelu_gate_f64, GELU_GATE_MAX_ABS_ERR_LSB);
        assert_eq!(gelu(0), 0);
        assert_eq!(gelu(W_MAX), W_MAX);
        assert_eq!(gelu(W_MIN), 0);
    }

    #[test]
    fn elementwise_rounding_and_saturation() {
        assert_eq!(mul_w48(3 << 24, -(1 << 23)), -(3 << 23)); // 3 · -0.5
        assert_eq!(mul_w48(1, 1 << 23), 1); // 2^-24 · 0.5 = half an LSB -> up
        assert_eq!(mul_w48(-1, 1 << 23), 0); // -half an LSB -> up (0)
        assert_eq!(mul_w48(W_MAX, W_MAX), W_MAX);
        assert_eq!(mul_w48(W_MIN, W_MAX), W_MIN);
        assert_eq!(mul_w48(W_MIN, W_MIN), W_MAX);
        assert_eq!(mul_w48(i64::MIN, i64::MIN), W_MAX);
        assert_eq!(add_w48(W_MAX, 1), W_MAX);
        assert_eq!(add_w48(W_MIN, -1), W_MIN);
        assert_eq!(residual_add(5, 3 << 8), 8);
        assert_eq!(residual_add(0, 128), 1); // half an R32 LSB rounds up
        assert_eq!(residual_add(0, -128), 0);
        assert_eq!(residual_add(0, -129), -1);
        assert_eq!(residual_add(i32::MAX, W_MAX), i32::MAX);
        assert_eq!(residual_add(i32::MIN, W_MIN), i32::MIN);
        assert_eq!(residual_add(i32::MIN, i64::MIN), i32::MIN);
    }
}
