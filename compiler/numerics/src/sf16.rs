//! `SF16`: 16-bit scales in IEEE half layout, used by the datapath as an
//! integer mantissa and a power-of-two exponent.

use serde::{Deserialize, Serialize};

/// A scale: IEEE binary16 bit pattern (finite values only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sf16(pub u16);

impl Sf16 {
    /// The scale 0 (`+0.0`): a group whose weights are all zero.
    pub const ZERO: Sf16 = Sf16(0);

    /// Nearest representable scale (round to nearest even, as IEEE), or
    /// `None` when `x` is not finite or overflows the half range.
    pub fn from_f32(x: f32) -> Option<Sf16> {
        let h = half::f16::from_f32(x);
        h.is_finite().then_some(Sf16(h.to_bits()))
    }

    /// `(mant, exp)` with value `mant · 2^exp`, `|mant| <= 2047`, `exp ∈ [-24, 5]`.
    pub fn mant_exp(self) -> (i32, i32) {
        let sign = if self.0 & 0x8000 != 0 { -1 } else { 1 };
        let e = ((self.0 >> 10) & 0x1f) as i32;
        let f = (self.0 & 0x3ff) as i32;
        debug_assert!(e != 31, "SF16 never holds Inf/NaN");
        if e == 0 {
            (sign * f, -24)
        } else {
            (sign * (1024 + f), e - 25)
        }
    }

    /// The exact value (`mant · 2^exp`), for build-time code and tests.
    pub fn to_f64(self) -> f64 {
        let (m, e) = self.mant_exp();
        m as f64 * (e as f64).exp2()
    }

    /// The value rounded to f32 (exact: every half is an f32).
    pub fn to_f32(self) -> f32 {
        self.to_f64() as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mantissa_exponent_is_exact_for_every_finite_half() {
        for bits in 0u16..=u16::MAX {
            let h = half::f16::from_bits(bits);
            if !h.is_finite() {
                continue;
            }
            let s = Sf16(bits);
            let (m, e) = s.mant_exp();
            assert!(m.abs() <= 2047 && (-24..=5).contains(&e));
            assert_eq!(s.to_f64(), h.to_f64(), "bits {bits:#06x}");
        }
    }
}
