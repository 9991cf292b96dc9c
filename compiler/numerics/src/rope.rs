//! Rotary position embedding (RFC 0002 §Nonlinear units).
//!
//! Split-halves pairing (the HF `rotate_half` convention): within each head,
//! feature `i < rotary_dim/2` pairs with `i + rotary_dim/2`; features at or
//! beyond `rotary_dim` pass through (partial rotary). Interleaved-pair models
//! are mapped onto this by permuting the Q/K projection rows at build time.
//!
//! ```text
//! c, s = cos/sin(pos · inv_freq[i]) in Q1.14 (i16, computed in f64 at build time)
//! a' = sat_w48(rshr(a·c - b·s, 14))
//! b' = sat_w48(rshr(b·c + a·s, 14))
//! ```
//!
//! Error (real units, measured): `|a' - ref| <= (|a| + |b|)·2^-15 + 2^-25`
//! (table rounding of `c`, `s` ≤ 2^-15 each, plus the output rounding).

use crate::formats::sat_w48;
use crate::rshr128;

/// Fraction bits of the cos/sin table entries (Q1.14 in i16, `1.0 = 16384`).
pub const ROPE_FRAC: i32 = 14;

/// cos/sin per (position, pair), position-major: entry `pos · pairs + i`.
/// Size: `positions × pairs × 2 × 16` bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RopeTable {
    /// Rotating pairs per head (`rotary_dim / 2`).
    pub pairs: usize,
    /// Positions covered (the context length the table was built for).
    pub positions: usize,
    /// `round(cos(pos · inv_freq[i]) · 2^14)` (Q1.14), `positions × pairs`
    /// entries, position-major.
    pub cos: Vec<i16>,
    /// `round(sin(pos · inv_freq[i]) · 2^14)` (Q1.14), laid out as `cos`.
    pub sin: Vec<i16>,
}

impl RopeTable {
    /// Build time: `inv_freqs[i]` are the final per-pair angular frequencies
    /// (any llama3 / linear / NTK scaling already applied by the caller);
    /// angles `pos · inv_freqs[i]` in f64, entries `round(cos · 2^14)`.
    pub fn new(inv_freqs: &[f64], positions: usize) -> Self {
        let pairs = inv_freqs.len();
        let mut cos = Vec::with_capacity(positions * pairs);
        let mut sin = Vec::with_capacity(positions * pairs);
        let q = |v: f64| (v * (ROPE_FRAC as f64).exp2()).round() as i16;
        for p in 0..positions {
            for &f in inv_freqs {
                let a = p as f64 * f;
                cos.push(q(a.cos()));
                sin.push(q(a.sin()));
            }
        }
        RopeTable {
            pairs,
            positions,
            cos,
            sin,
        }
    }

    /// `(cos, sin)` of pair `i` at `pos`, Q1.14.
    #[inline]
    pub fn cos_sin(&self, pos: usize, i: usize) -> (i16, i16) {
        let k = pos * self.pairs + i;
        (self.cos[k], self.sin[k])
    }
}

/// Rotates every head of `x` (`x.len()` a multiple of `head_dim`, all `W48`)
/// in place for position `pos`. `rotary_dim` is even, `<= head_dim`, and
/// `rotary_dim / 2 == table.pairs`. Panics if `pos >= table.positions`.
pub fn rotate(x: &mut [i64], head_dim: usize, rotary_dim: usize, pos: usize, table: &RopeTable) {
    assert!(
        head_dim > 0 && x.len().is_multiple_of(head_dim),
        "rotate: x length"
    );
    assert!(
        rotary_dim.is_multiple_of(2) && rotary_dim <= head_dim,
        "rotate: rotary_dim"
    );
    let half = rotary_dim / 2;
    assert_eq!(half, table.pairs, "rotate: table pairs");
    assert!(
        pos < table.positions,
        "rotate: position {pos} beyond the table"
    );
    for head in x.chunks_exact_mut(head_dim) {
        let (lo, hi) = head[..rotary_dim].split_at_mut(half);
        for (i, (a, b)) in lo.iter_mut().zip(hi.iter_mut()).enumerate() {
            let (c, s) = table.cos_sin(pos, i);
            let (av, bv) = (*a as i128, *b as i128);
            let (c, s) = (c as i128, s as i128);
            *a = sat_w48(rshr128(av * c - bv * s, ROPE_FRAC));
            *b = sat_w48(rshr128(bv * c + av * s, ROPE_FRAC));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::tests::xorshift;
    use crate::formats::{W_MAX, W_MIN};

    #[test]
    fn rotation_against_f64() {
        let head_dim = 64;
        let rotary_dim = 32; // partial rotary: 32..64 untouched
        let inv: Vec<f64> = (0..16)
            .map(|i| 10000f64.powf(-(2.0 * i as f64) / 32.0))
            .collect();
        let t = RopeTable::new(&inv, 300);
        assert_eq!((t.cos.len(), t.cos_sin(0, 5)), (300 * 16, (16384, 0)));
        let mut seed = 9u64;
        let one = 2f64.powi(24);
        for _ in 0..3000 {
            let pos = (xorshift(&mut seed) % 300) as usize;
            let shift = 17 + (xorshift(&mut seed) % 30) as u32; // W48 inputs
            let x: Vec<i64> = (0..2 * head_dim)
                .map(|_| (xorshift(&mut seed) as i64) >> shift)
                .collect();
            let mut y = x.clone();
            rotate(&mut y, head_dim, rotary_dim, pos, &t);
            for h in 0..2 {
                let o = h * head_dim;
                for i in 0..16 {
                    let (a, b) = (x[o + i] as f64 / one, x[o + i + 16] as f64 / one);
                    let ang = pos as f64 * inv[i];
                    let (wa, wb) = (a * ang.cos() - b * ang.sin(), b * ang.cos() + a * ang.sin());
                    let bound = (a.abs() + b.abs()) * 2f64.powi(-15) + 0.5 / one;
                    assert!((y[o + i] as f64 / one - wa).abs() <= bound * (1.0 + 1e-9));
                    assert!((y[o + i + 16] as f64 / one - wb).abs() <= bound * (1.0 + 1e-9));
                }
                assert_eq!(&y[o + 32..o + 64], &x[o + 32..o + 64]);
            }
        }
    }

    #[test]
    fn rotation_edges() {
        // Position 0 is the identity; saturated inputs stay in range.
        let inv = [1.0, 0.5];
        let t = RopeTable::new(&inv, 4);
        let mut x = vec![W_MAX, W_MIN, -3, 12345];
        let x0 = x.clone();
        rotate(&mut x, 4, 4, 0, &t);
        assert_eq!(x, x0);
        let mut x = vec![W_MAX, W_MAX, W_MIN, W_MAX];
        rotate(&mut x, 4, 4, 1, &t);
        assert!(x.iter().all(|&v| (W_MIN..=W_MAX).contains(&v)));
        // Quarter turn with exact table entries: inv = π/2, pos 1 -> c = 0, s = 1.
        let t = RopeTable::new(&[std::f64::consts::FRAC_PI_2], 2);
        assert_eq!(t.cos_sin(1, 0), (0, 16384));
        let mut x = vec![5i64, -7];
        rotate(&mut x, 2, 2, 1, &t);
        assert_eq!(x, vec![7, 5]); // (a, b) -> (-b, a)
    }
}
