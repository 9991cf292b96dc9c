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

/// One random group of `g` values of a kind the search must get right:
/// Gaussians of any magnitude, values on an exact code grid and half
/// way between its points (ties), zeros, constants, a lone spike,
/// repeats, tiny (subnormal f32) and huge values.
pub(crate) fn random_group(rng: &mut Rng, g: usize, bits: u8) -> Vec<f64> {
    let kind = rng.below(12);
    let mag = 10f64.powi(rng.below(14) as i32 - 9);
    let d = half::f16::from_f64(mag * (0.05 + rng.unit())).to_f64();
    let m = half::f16::from_f64(-mag * rng.unit()).to_f64();
    let mut v: Vec<f64> = (0..g)
        .map(|_| match kind {
            0 | 1 => rng.gauss() * mag,
            // On a grid, and half way between points (f32-exact).
            2 => m + d * rng.below(16) as f64,
            3 => m + d * (rng.below(1 << bits) as f64 + 0.5 * rng.below(2) as f64),
            4 => {
                d * ((rng.below(1 << bits) as f64 - (1 << (bits - 1)) as f64)
                    + 0.5 * rng.below(2) as f64)
            }
            5 => 0.0,
            6 => mag,
            7 => {
                if rng.below(8) == 0 {
                    -mag
                } else {
                    0.0
                }
            }
            8 => [mag, -mag, 0.5 * mag, 0.0][rng.below(4) as usize],
            9 => rng.gauss() * 1e-41,
            10 => rng.gauss() * 1e4 * rng.below(3) as f64,
            _ => (rng.gauss() * mag).clamp(-0.3 * mag, mag),
        })
        .collect();
    // Anchors that make the grid's own step the plain scale, so the
    // half-way values are exact ties for it.
    let top = (1u32 << bits) as f64;
    match kind {
        3 => {
            v[0] = m;
            v[1] = m + d * (top - 1.0);
        }
        4 => v[0] = -d * top / 2.0,
        _ => {}
    }
    if rng.below(4) == 0 {
        // Values as the build has them: f32 widened.
        for x in &mut v {
            *x = *x as f32 as f64;
        }
    }
    v
}
