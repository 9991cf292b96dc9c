//! Formats (RFC 0002 §Formats): widths, saturation, `A8` block quantization
//! and the build-time float conversions.
//!
//! | name | storage | value |
//! |---|---|---|
//! | `R32` | i32, [`R32_FRAC`] = 16 fraction bits | `r / 2^16` |
//! | `W48` | i64 holding a [`W_BITS`] = 48-bit signed value, [`W_FRAC`] = 24 fraction bits | `w / 2^24` |
//! | `A8`  | [`A8_BLOCK`] = 32 × i8 mantissas in ±[`A8_MAX`] + one i8 exponent | `m · 2^e` |
//! | `P15` | u32 in `[0, 2^15]`, [`P15_FRAC`] = 15 fraction bits | `p / 2^15` |

use crate::{rshr, sat, NumericsError};

/// Fraction bits of the residual stream `R32` (also of Q15.16 norm gains and biases).
pub const R32_FRAC: i32 = 16;
/// Fraction bits of the wide format `W48`.
pub const W_FRAC: i32 = 24;
/// Width of a `W48` value (signed); held in an i64.
pub const W_BITS: u32 = 48;
/// Largest `W48` value, `2^47 - 1` (≈ 8.4 M in real units).
pub const W_MAX: i64 = (1 << (W_BITS - 1)) - 1;
/// Smallest `W48` value, `-2^47`.
pub const W_MIN: i64 = -(1 << (W_BITS - 1));
/// Elements per `A8` block (one shared exponent).
pub const A8_BLOCK: usize = 32;
/// Largest `A8` mantissa magnitude; `-128` is never produced.
pub const A8_MAX: i32 = 127;
/// Fraction bits of `P15` probabilities / table outputs.
pub const P15_FRAC: i32 = 15;
/// 1.0 in `P15`.
pub const P15_ONE: u32 = 1 << P15_FRAC;

/// Saturates to `W48`.
#[inline]
pub fn sat_w48(x: i128) -> i64 {
    sat(x, W_BITS)
}

/// Saturates to i32 (`R32`).
#[inline]
pub fn sat32(x: i64) -> i32 {
    x.clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

/// Round-half-up right shift of a magnitude (u64; `s >= 64` gives 0).
#[inline]
fn rshr_u64(x: u64, s: u32) -> u64 {
    if s == 0 {
        x
    } else if s >= 64 {
        0
    } else {
        (x >> s) + ((x >> (s - 1)) & 1)
    }
}

/// The `A8` shift of a block whose largest magnitude is `max_abs`: the
/// smallest `s >= 0` with `rshr(max_abs, s) <= 127`.
///
/// Hardware: `s0 = max(0, bitlen(max_abs) - 7)` from a leading-zero count,
/// plus one when rounding carries to 128 (`s = s0` or `s0 + 1`; below `s0`
/// the value is >= 128). Result in `[0, 58]`.
#[inline]
pub fn a8_shift(max_abs: u64) -> u32 {
    let bits = 64 - max_abs.leading_zeros();
    let s = bits.saturating_sub(7);
    if rshr_u64(max_abs, s) > A8_MAX as u64 {
        s + 1
    } else {
        s
    }
}

/// `A8` quantization of one block (any length `1..=32`; the datapath always
/// uses 32). `x` is fixed point with `frac` fraction bits.
///
/// Shift `s = a8_shift(max_i |x_i|)`, mantissas `m_i = rshr(x_i, s)`,
/// returned exponent `e = s - frac` so that `x_i ≈ m_i · 2^e`.
/// Every `|m_i| <= 127` (round half up never pushes a negative value past
/// `-rshr(M, s)`), so `-128` never occurs; the clamp to ±127 is a no-op kept
/// for safety. Error: `|x_i·2^-frac - m_i·2^e| <= 2^(e-1)` (exact when
/// `s = 0`). An all-zero block gives mantissas 0 and `e = -frac`.
///
/// Panics if `e` does not fit an i8 (only for `frac` outside
/// `[-69, 127]`; the datapath uses `frac` = 24 or 16).
pub fn to_a8(x: &[i64], frac: i32, out_m: &mut [i8]) -> i8 {
    assert_eq!(x.len(), out_m.len(), "to_a8: block and output lengths");
    let max = x.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
    let s = a8_shift(max) as i32;
    for (o, &v) in out_m.iter_mut().zip(x) {
        *o = rshr(v, s).clamp(-(A8_MAX as i64), A8_MAX as i64) as i8;
    }
    i8::try_from(s - frac).expect("to_a8: exponent outside i8")
}

/// `A8` quantization of a whole vector, blocks of 32. The length must be a
/// multiple of [`A8_BLOCK`] (every width of the targeted models is);
/// otherwise [`NumericsError::NotBlockMultiple`]. `mant.len() == x.len()`,
/// `exp.len() == x.len() / 32`.
pub fn to_a8_into(
    x: &[i64],
    frac: i32,
    mant: &mut [i8],
    exp: &mut [i8],
) -> Result<(), NumericsError> {
    if !x.len().is_multiple_of(A8_BLOCK) {
        return Err(NumericsError::NotBlockMultiple { len: x.len() });
    }
    assert_eq!(mant.len(), x.len(), "to_a8_into: mantissa length");
    assert_eq!(exp.len(), x.len() / A8_BLOCK, "to_a8_into: exponent length");
    for ((xb, mb), e) in x
        .chunks_exact(A8_BLOCK)
        .zip(mant.chunks_exact_mut(A8_BLOCK))
        .zip(exp.iter_mut())
    {
        *e = to_a8(xb, frac, mb);
    }
    Ok(())
}

/// Allocating form of [`to_a8_into`].
pub fn to_a8_vec(x: &[i64], frac: i32) -> Result<A8Vec, NumericsError> {
    let mut v = A8Vec {
        mant: vec![0; x.len()],
        exp: vec![0; x.len() / A8_BLOCK],
    };
    to_a8_into(x, frac, &mut v.mant, &mut v.exp)?;
    Ok(v)
}

/// An `A8` vector: `mant[i] · 2^exp[i / 32]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct A8Vec {
    /// Mantissas in `[-127, 127]`, one per element; the length is a multiple
    /// of [`A8_BLOCK`].
    pub mant: Vec<i8>,
    /// One exponent per block of [`A8_BLOCK`] mantissas (`mant.len() / 32` entries).
    pub exp: Vec<i8>,
}

/// Exact `Σ a_i` (the `A_b` of a block).
#[inline]
pub fn sum_i8(a: &[i8]) -> i32 {
    a.iter().map(|&x| x as i32).sum()
}

impl A8Vec {
    /// Element count (mantissas, not blocks).
    pub fn len(&self) -> usize {
        self.mant.len()
    }

    /// Whether the vector has no elements.
    pub fn is_empty(&self) -> bool {
        self.mant.is_empty()
    }

    /// `A_b = Σ m_i` per block (exact, |A_b| <= 32·127 = 4064, 13 bits
    /// signed): the offset term of asymmetric weights, shared by all rows.
    pub fn block_sums(&self) -> Vec<i32> {
        self.mant.chunks_exact(A8_BLOCK).map(sum_i8).collect()
    }

    /// Real values (tests and diagnostics only).
    pub fn to_f64(&self) -> Vec<f64> {
        self.mant
            .iter()
            .enumerate()
            .map(|(i, &m)| m as f64 * (self.exp[i / A8_BLOCK] as f64).exp2())
            .collect()
    }
}

/// Build time: a real value to `W48` (round to nearest, ties away from
/// zero, then saturate). Non-finite inputs saturate (NaN gives 0).
pub fn w48_from_f64(x: f64) -> i64 {
    fixed_from_f64(x, W_FRAC, W_BITS)
}

/// Build time: a real value to `R32` / Q15.16 (gains, biases, embeddings).
pub fn r32_from_f64(x: f64) -> i32 {
    fixed_from_f64(x, R32_FRAC, 32) as i32
}

/// Build time: `round(x · 2^frac)` saturated to `bits` signed bits.
pub fn fixed_from_f64(x: f64, frac: i32, bits: u32) -> i64 {
    let v = (x * (frac as f64).exp2()).round();
    let hi = ((1i128 << (bits - 1)) - 1) as f64;
    let lo = -((1i128 << (bits - 1)) as f64);
    if v.is_nan() {
        0
    } else if v >= hi {
        sat(i128::MAX, bits)
    } else if v <= lo {
        sat(i128::MIN, bits)
    } else {
        v as i64
    }
}

/// `W48` to a real value (tests and diagnostics only).
pub fn w48_to_f64(x: i64) -> f64 {
    x as f64 / (W_FRAC as f64).exp2()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn brute_shift(m: u64) -> u32 {
        (0..64).find(|&s| rshr_u64(m, s) <= 127).unwrap()
    }

    #[test]
    fn a8_shift_is_the_smallest_fitting_shift() {
        for m in 0u64..70_000 {
            assert_eq!(a8_shift(m), brute_shift(m), "m {m}");
        }
        for b in 0..64 {
            for d in [-2i64, -1, 0, 1, 2] {
                let m = ((1u64 << b) as i64).wrapping_add(d) as u64;
                assert_eq!(a8_shift(m), brute_shift(m), "m {m}");
            }
        }
        assert_eq!(a8_shift(127), 0);
        assert_eq!(a8_shift(128), 1);
        assert_eq!(a8_shift(254), 1); // rshr(254,1)=127
        assert_eq!(a8_shift(255), 2); // rshr(255,1)=128 -> carry, s+1
        assert_eq!(a8_shift(u64::MAX), 58);
        assert_eq!(a8_shift(1 << 63), 57);
    }

    #[test]
    fn a8_of_zero_block() {
        let mut m = [1i8; 32];
        assert_eq!(to_a8(&[0; 32], 24, &mut m), -24);
        assert_eq!(m, [0; 32]);
    }

    #[test]
    fn a8_of_huge_blocks_never_gives_minus_128() {
        let mut m = [0i8; 32];
        let mut x = [0i64; 32];
        x[0] = i64::MIN;
        x[1] = i64::MAX;
        x[2] = -1;
        let e = to_a8(&x, 24, &mut m);
        assert_eq!(e, 57 - 24);
        assert_eq!((m[0], m[1], m[2]), (-64, 64, 0));
        // The shift follows the magnitude: |-255| = 255 needs s = 2 (255/2
        // rounds to 128) even though rshr(-255, 1) = -127 would fit.
        let x = [-255i64, 254, -253, 1];
        let mut m = [0i8; 4];
        assert_eq!(to_a8(&x, 0, &mut m), 2);
        assert_eq!(m, [-64, 64, -63, 0]); // -63.75, 63.5, -63.25, 0.25
                                          // Negative ties: -126.5 rounds up to -126, 0.5 to 1.
        let x = [-254i64, 254, -253, 1];
        assert_eq!(to_a8(&x, 0, &mut m), 1);
        assert_eq!(m, [-127, 127, -126, 1]);
        // All negative, -128 magnitude: needs s = 1 (rshr(128,0) = 128 > 127).
        let x = [-128i64; 32];
        let mut m = [0i8; 32];
        assert_eq!(to_a8(&x, 0, &mut m), 1);
        assert!(m.iter().all(|&v| v == -64));
        // Saturated W48 values.
        let x = [W_MAX, W_MIN, 0, 12345];
        let mut m = [0i8; 4];
        let e = to_a8(&x, W_FRAC, &mut m);
        assert_eq!(e, 41 - 24);
        assert_eq!(&m[..3], &[64, -64, 0]);
        // Randomised: never -128, error <= half a step.
        let mut seed = 1u64;
        for _ in 0..20_000 {
            let scale = (xorshift(&mut seed) % 60) as u32;
            let x: Vec<i64> = (0..32)
                .map(|_| (xorshift(&mut seed) as i64) >> (3 + scale))
                .collect();
            let mut mm = [0i8; 32];
            let e = to_a8(&x, 0, &mut mm) as i32;
            for (&xi, &mi) in x.iter().zip(&mm) {
                assert!(mi != -128);
                let err = (xi as f64 - mi as f64 * (e as f64).exp2()).abs();
                assert!(
                    err <= (e as f64 - 1.0).exp2() * (1.0 + 1e-12),
                    "{xi} {mi} {e}"
                );
            }
        }
    }

    pub(crate) use taalasc_testrng::xorshift;

    #[test]
    fn vector_helper_requires_block_multiple() {
        assert_eq!(
            to_a8_vec(&[1; 40], 0),
            Err(NumericsError::NotBlockMultiple { len: 40 })
        );
        let mut x = vec![0i64; 64];
        x[0] = 100; // block 0: s = 0
        x[40] = 1000; // block 1: s = 3 (1000/8 = 125)
        x[41] = -4; // -0.5 -> 0
        x[42] = -5; // -0.625 -> -1
        let v = to_a8_vec(&x, 4).unwrap();
        assert_eq!(v.exp, vec![-4, -1]);
        assert_eq!(
            (v.mant[0], v.mant[40], v.mant[41], v.mant[42]),
            (100, 125, 0, -1)
        );
        assert_eq!(v.block_sums(), vec![100, 124]);
    }

    #[test]
    fn build_time_conversions() {
        assert_eq!(w48_from_f64(1.0), 1 << 24);
        assert_eq!(w48_from_f64(-0.5 / (1 << 24) as f64), -1); // ties away from 0
        assert_eq!(w48_from_f64(1e30), W_MAX);
        assert_eq!(w48_from_f64(-1e30), W_MIN);
        assert_eq!(w48_from_f64(f64::NAN), 0);
        assert_eq!(r32_from_f64(1.5), 3 << 15);
        assert_eq!(r32_from_f64(1e9), i32::MAX);
        assert_eq!(r32_from_f64(-32768.0), i32::MIN);
        assert_eq!(sat32(i64::MIN), i32::MIN);
    }
}
