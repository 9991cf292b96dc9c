//! # taalasc-numerics: the datapath spec in code
//!
//! Every width, rounding rule, saturation and lookup table of the chip is
//! defined here and nowhere else (RFC 0002). The bit-exact reference executes
//! these functions; the Verilog emitter reads the same constants and tables.
//!
//! Floats appear only in table and constant generation (build time): the
//! module [`tables`], the constructors [`NormConsts::new`], [`ScoreScale::new`],
//! [`RopeTable::new`] and the `*_from_f64` conversions in [`formats`]. Every
//! other function is integer adds, multiplies, shifts (rounded by [`rshr`]),
//! comparisons, table reads and saturation.
//!
//! Module map (RFC 0002 sections):
//! - [`formats`]: `R32`, `W48`, `A8`, `P15` constants, saturation, `A8` block
//!   quantization, build-time conversions.
//! - [`linear`]: block dot products and the per-block scaled terms of the
//!   matrix-vector product.
//! - [`tables`]: every lookup table (generated from f64 once, cached).
//! - [`scalar`]: table-driven scalar functions: `exp(-d)`, `1/x`, `1/sqrt(x)`,
//!   `σ(x)`, the GELU gate.
//! - [`norm`]: RMSNorm and LayerNorm.
//! - [`attention`]: score scaling, softmax weights, the attention output.
//! - [`act`]: SiLU, GELU, the SwiGLU product, residual add.
//! - [`rope`]: rotary position embedding.

#![warn(missing_docs)]

pub mod act;
pub mod attention;
pub mod formats;
pub mod linear;
pub mod norm;
pub mod rope;
pub mod scalar;
pub mod sf16;
pub mod tables;

#[cfg(test)]
mod golden;

pub use act::{add_w48, gelu, mul_w48, residual_add, silu};
pub use attention::{attend, scale_score, scale_scores, softmax_weights, ScoreScale};
pub use formats::sum_i8;
pub use formats::{
    a8_shift, sat32, sat_w48, to_a8, to_a8_into, to_a8_vec, A8Vec, A8_BLOCK, A8_MAX, P15_FRAC,
    P15_ONE, R32_FRAC, W_BITS, W_FRAC, W_MAX, W_MIN,
};
pub use linear::{block_term, dot_a8, dot_i8, linear_row, WeightRow};
pub use norm::{
    div_n, div_n_const, layer_norm, rms_norm, sum_i32, sum_sq, NormConsts, RmsNormConsts,
    DIV_N_SHIFT,
};
pub use rope::{rotate, RopeTable, ROPE_FRAC};
pub use scalar::{exp_neg, gelu_gate, recip, rsqrt, sigmoid};
pub use sf16::Sf16;

/// The only error the datapath reports: shapes that violate the formats.
/// (Length mismatches between arguments of one call are programming errors
/// and panic.)
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NumericsError {
    /// A vector to be quantized to `A8` whose length is not a multiple of
    /// [`A8_BLOCK`] (32).
    #[error("vector length {len} is not a multiple of the A8 block size {A8_BLOCK}")]
    NotBlockMultiple {
        /// The offending vector length (elements).
        len: usize,
    },
}

/// Round-half-up arithmetic right shift by `s`; `s <= 0` shifts left exactly.
///
/// `rshr(x, s) = floor((x + 2^(s-1)) / 2^s)` for `s > 0`, computed without
/// overflow as `(x >> s) + bit_{s-1}(x)` (identical bits, no wide adder), so
/// it is defined for every `i64` including `i64::MIN`/`i64::MAX`; `s >= 64`
/// gives 0. Ties go towards +inf: `rshr(-3, 1) = -1`, `rshr(3, 1) = 2`.
/// A left shift must be exact (callers bound their operands; checked in
/// debug builds).
#[inline]
pub fn rshr(x: i64, s: i32) -> i64 {
    if s > 0 {
        if s >= 64 {
            return 0;
        }
        (x >> s) + ((x >> (s - 1)) & 1)
    } else {
        let k = (-s) as u32;
        if x == 0 {
            return 0;
        }
        debug_assert!(
            k < 63 && (x << k) >> k == x,
            "rshr: inexact left shift {x} << {k}"
        );
        x << k
    }
}

/// [`rshr`] on i128 (`s >= 128` gives 0).
#[inline]
pub fn rshr128(x: i128, s: i32) -> i128 {
    if s > 0 {
        if s >= 128 {
            return 0;
        }
        (x >> s) + ((x >> (s - 1)) & 1)
    } else {
        let k = (-s) as u32;
        if x == 0 {
            return 0;
        }
        debug_assert!(
            k < 127 && (x << k) >> k == x,
            "rshr128: inexact left shift {x} << {k}"
        );
        x << k
    }
}

/// Saturates to a `bits`-wide signed range (`1 <= bits <= 64`).
#[inline]
pub fn sat(x: i128, bits: u32) -> i64 {
    let hi = (1i128 << (bits - 1)) - 1;
    let lo = -(1i128 << (bits - 1));
    x.clamp(lo, hi) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rshr_rounds_half_up_including_negative_ties() {
        assert_eq!(rshr(3, 1), 2); // 1.5 -> 2
        assert_eq!(rshr(-3, 1), -1); // -1.5 -> -1
        assert_eq!(rshr(-1, 1), 0); // -0.5 -> 0
        assert_eq!(rshr(1, 1), 1); // 0.5 -> 1
        assert_eq!(rshr(-5, 2), -1); // -1.25 -> -1
        assert_eq!(rshr(-6, 2), -1); // -1.5 -> -1
        assert_eq!(rshr(-7, 2), -2); // -1.75 -> -2
        assert_eq!(rshr(5, 0), 5);
        assert_eq!(rshr(5, -3), 40);
        assert_eq!(rshr(-5, -3), -40);
        assert_eq!(rshr(0, -200), 0);
        // Against the definition on a range, every shift.
        for x in -300i64..300 {
            for s in 1..12 {
                let want = ((x as f64) / (s as f64).exp2() + 0.5).floor() as i64;
                assert_eq!(rshr(x, s), want, "x {x} s {s}");
                assert_eq!(rshr128(x as i128, s), want as i128);
            }
        }
    }

    #[test]
    fn rshr_extremes_do_not_overflow() {
        assert_eq!(rshr(i64::MAX, 1), 1i64 << 62); // (2^63-1)/2 = 2^62 - 0.5 -> 2^62
        assert_eq!(rshr(i64::MIN, 1), -(1i64 << 62));
        assert_eq!(rshr(i64::MIN + 1, 1), -(1i64 << 62) + 1); // -2^62 + 0.5 -> up
        assert_eq!(rshr(i64::MAX, 63), 1);
        assert_eq!(rshr(i64::MIN, 63), -1);
        assert_eq!(rshr(i64::MIN, 64), 0);
        assert_eq!(rshr(i64::MAX, 64), 0);
        assert_eq!(rshr(i64::MAX, 1000), 0);
        assert_eq!(rshr128(i128::MAX, 1), 1i128 << 126);
        assert_eq!(rshr128(i128::MIN, 127), -1);
        assert_eq!(rshr128(i128::MIN, 128), 0);
        // The wide definition agrees near the edges.
        for &x in &[i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX] {
            for s in 1..64 {
                let want = ((x as i128 + (1i128 << (s - 1))) >> s) as i64;
                assert_eq!(rshr(x, s), want, "x {x} s {s}");
            }
        }
    }

    #[test]
    fn sat_clamps() {
        assert_eq!(sat(1 << 60, 48), (1 << 47) - 1);
        assert_eq!(sat(-(1 << 60), 48), -(1 << 47));
        assert_eq!(sat(i128::MIN, 32), i32::MIN as i64);
        assert_eq!(sat(i128::MAX, 64), i64::MAX);
        assert_eq!(sat(-5, 8), -5);
    }
}
