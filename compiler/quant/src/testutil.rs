//! Deterministic test data (no `rand` dependency).

/// SplitMix64 with Box–Muller Gaussians: the tests' shared generator.
pub(crate) use taalasc_testrng::SplitMix64 as Rng;

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
