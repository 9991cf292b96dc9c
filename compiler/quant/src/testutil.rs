//! Deterministic test data (no `rand` dependency).

/// SplitMix64 with Box–Muller Gaussians.
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x2545_f491_4f6c_dd1d)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal.
    pub fn gauss(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// The textbook route GPTQ describes, for checking the fast one: `H^-1` by
/// Gauss-Jordan, then its upper Cholesky factor `U` (`H^-1 = Uᵀ U`).
pub(crate) fn inverse_upper_cholesky(h: &[f64], n: usize) -> Vec<f64> {
    let mut a = h.to_vec();
    let mut inv = vec![0.0; n * n];
    for i in 0..n {
        inv[i * n + i] = 1.0;
    }
    for c in 0..n {
        let p = a[c * n + c];
        for k in 0..n {
            a[c * n + k] /= p;
            inv[c * n + k] /= p;
        }
        for r in 0..n {
            if r != c {
                let t = a[r * n + c];
                for k in 0..n {
                    a[r * n + k] -= t * a[c * n + k];
                    inv[r * n + k] -= t * inv[c * n + k];
                }
            }
        }
    }
    let mut u = vec![0.0; n * n];
    for i in 0..n {
        for j in i..n {
            let s: f64 = (0..i).map(|k| u[k * n + i] * u[k * n + j]).sum();
            let x = inv[i * n + j] - s;
            u[i * n + j] = if i == j { x.sqrt() } else { x / u[i * n + i] };
        }
    }
    u
}
