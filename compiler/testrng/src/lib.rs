//! # taalasc-testrng: the tests' one source of randomness
//!
//! Fixed-seed generators with no dependency, so every run of a test is the
//! same test and a failure reproduces. Two classic generators, because the
//! tests' data were drawn from both:
//! - [`XorShift64`] (Marsaglia's 13/7/17 xorshift): integers for codes,
//!   scales, shapes and corruptions; [`xorshift`] is its step on a bare
//!   `u64` state;
//! - [`SplitMix64`] (Steele, Lea and Flood): well-mixed 64-bit outputs, with
//!   uniform floats and Box–Muller Gaussians for weight matrices.
//!
//! Used as a dev-dependency only: nothing the compiler ships is random.

#![warn(missing_docs)]

/// One xorshift64 step on the state `s` (which must not be 0); returns the
/// new state, which is also the output.
pub fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// Marsaglia's xorshift64 generator; the tuple field is the state (not 0).
#[derive(Clone, Debug)]
pub struct XorShift64(pub u64);

impl XorShift64 {
    /// The next 64-bit output.
    pub fn next_u64(&mut self) -> u64 {
        xorshift(&mut self.0)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant for tests).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// One element of `v` (not empty), uniformly.
    pub fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.next_u64() as usize % v.len()]
    }
}

/// The splitmix64 generator; the tuple field is the state (any value).
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// A generator whose state is `seed` scrambled first, so that small
    /// consecutive seeds start far apart.
    pub fn seeded(seed: u64) -> SplitMix64 {
        SplitMix64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x2545_f491_4f6c_dd1d)
    }

    /// The next 64-bit output.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `[0, 1)`, 53 bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `(0, 1)`: never 0, so its logarithm is finite.
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// A standard normal sample (Box–Muller).
    pub fn gauss(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xorshift64_matches_marsaglias_sequence() {
        // x = 1: 1 ^ 1<<13 = 8193; ^ >>7 = 8193 ^ 64 = 8257; ^ <<17.
        let mut s = 1u64;
        assert_eq!(xorshift(&mut s), 8257 ^ (8257 << 17));
        let mut r = XorShift64(1);
        assert_eq!(r.next_u64(), 8257 ^ (8257 << 17));
    }

    #[test]
    fn splitmix64_matches_the_reference_outputs() {
        // Vigna's splitmix64.c with state 0: first two outputs.
        let mut r = SplitMix64(0);
        assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next_u64(), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn floats_stay_in_range_and_gaussians_are_standard() {
        let mut r = SplitMix64::seeded(7);
        let xs: Vec<f64> = (0..20_000).map(|_| r.gauss()).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
        assert!((0..1000).all(|_| (0.0..1.0).contains(&r.unit())));
        assert!((0..1000).all(|_| {
            let u = r.uniform();
            u > 0.0 && u < 1.0
        }));
    }
}
