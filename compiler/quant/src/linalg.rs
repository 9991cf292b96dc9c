//! Dense f64 Cholesky for GPTQ (no BLAS): deterministic, single-threaded,
//! register-blocked so that `n = 2048` factors in about a second.

/// `[a0·b, a1·b, a2·b, a3·b]` over the common length `b.len()`, with four
/// lanes per row so the loop vectorizes (fixed summation order).
#[inline]
fn dot4(a: [&[f64]; 4], b: &[f64]) -> [f64; 4] {
    let len = b.len();
    let (a0, a1, a2, a3) = (&a[0][..len], &a[1][..len], &a[2][..len], &a[3][..len]);
    let mut acc = [[0.0f64; 4]; 4];
    let full = len / 4 * 4;
    for ((((bc, c0), c1), c2), c3) in b[..full]
        .chunks_exact(4)
        .zip(a0[..full].chunks_exact(4))
        .zip(a1[..full].chunks_exact(4))
        .zip(a2[..full].chunks_exact(4))
        .zip(a3[..full].chunks_exact(4))
    {
        for l in 0..4 {
            acc[0][l] += c0[l] * bc[l];
            acc[1][l] += c1[l] * bc[l];
            acc[2][l] += c2[l] * bc[l];
            acc[3][l] += c3[l] * bc[l];
        }
    }
    let mut out = [0.0; 4];
    for r in 0..4 {
        let mut s = (acc[r][0] + acc[r][1]) + (acc[r][2] + acc[r][3]);
        for k in full..len {
            s += a[r][k] * b[k];
        }
        out[r] = s;
    }
    out
}

/// `a·b` over `b.len()` with four lanes.
#[inline]
fn dot1(a: &[f64], b: &[f64]) -> f64 {
    let len = b.len();
    let a = &a[..len];
    let mut acc = [0.0f64; 4];
    let full = len / 4 * 4;
    for (bc, ac) in b[..full].chunks_exact(4).zip(a[..full].chunks_exact(4)) {
        for l in 0..4 {
            acc[l] += ac[l] * bc[l];
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for k in full..len {
        s += a[k] * b[k];
    }
    s
}

/// In-place lower Cholesky `A = L Lᵀ` of a row-major `n × n` matrix (only
/// the lower triangle is read; the strict upper triangle is left as is).
/// Row-oriented Crout order, four rows at a time. `Err(i)` when pivot `i`
/// is not positive (or not finite).
pub(crate) fn cholesky_lower(a: &mut [f64], n: usize) -> Result<(), usize> {
    assert_eq!(a.len(), n * n, "cholesky: storage");
    let mut i0 = 0;
    while i0 < n {
        let ib = 4.min(n - i0);
        let (done, rest) = a.split_at_mut(i0 * n);
        // Columns j < i0 of rows i0..i0+ib: L[i][j] = (A[i][j] - L[i][..j]·L[j][..j]) / L[j][j].
        for j in 0..i0 {
            let lj = &done[j * n..j * n + j];
            let djj = done[j * n + j];
            if ib == 4 {
                let (r0, t) = rest.split_at(n);
                let (r1, t) = t.split_at(n);
                let (r2, r3) = t.split_at(n);
                let s = dot4([r0, r1, r2, r3], lj);
                for (r, sr) in s.iter().enumerate() {
                    let x = &mut rest[r * n + j];
                    *x = (*x - sr) / djj;
                }
            } else {
                for r in 0..ib {
                    let s = dot1(&rest[r * n..], lj);
                    let x = &mut rest[r * n + j];
                    *x = (*x - s) / djj;
                }
            }
        }
        // The diagonal block.
        for r in 0..ib {
            let i = i0 + r;
            for j in i0..=i {
                let (lo, hi) = a.split_at_mut(i * n);
                let row_i = &mut hi[..n];
                let s = if j == i {
                    dot1(row_i, &row_i[..j])
                } else {
                    dot1(row_i, &lo[j * n..j * n + j])
                };
                let x = row_i[j] - s;
                if j == i {
                    if !(x > 0.0 && x.is_finite()) {
                        return Err(i);
                    }
                    row_i[i] = x.sqrt();
                } else {
                    row_i[j] = x / lo[j * n + j];
                }
            }
        }
        i0 += ib;
    }
    Ok(())
}

/// The GPTQ error-feedback matrix of an SPD `h` (row-major `n × n`).
///
/// Let `H = R Rᵀ` with `R` upper triangular (the Cholesky factor of `H` in
/// reversed index order). Then `U = R⁻¹` is the upper Cholesky factor of
/// `H⁻¹` (`H⁻¹ = Uᵀ U`), the matrix GPTQ propagates errors with, and the
/// GPTQ recurrence `w̃_j = w_j - Σ_{i<j} (w̃_i - q_i) U_ij / U_ii` is
/// equivalent to `w̃_j = w_j + Σ_{i<j} (w_i - q_i) R_ij / R_jj` (with the
/// ORIGINAL `w_i`), which needs no inverse. Returns `F` (row-major, upper
/// triangle; `F_ij = R_ij / R_jj` for `i < j`, 0 elsewhere).
///
/// `Err(i)`: `h` is not positive definite (pivot at input `i`).
pub(crate) fn feedback_matrix(h: &[f64], n: usize) -> Result<Vec<f64>, usize> {
    assert_eq!(h.len(), n * n, "feedback_matrix: storage");
    // A = P H P (P reverses the index order), lower triangle only.
    let mut a = vec![0.0f64; n * n];
    for i in 0..n {
        let src = &h[(n - 1 - i) * n..(n - i) * n];
        for j in 0..=i {
            a[i * n + j] = src[n - 1 - j];
        }
    }
    cholesky_lower(&mut a, n).map_err(|p| n - 1 - p)?;
    // R[i][k] = L[n-1-i][n-1-k].
    let mut f = vec![0.0f64; n * n];
    for i in 0..n {
        let li = &a[(n - 1 - i) * n..(n - i) * n];
        let fi = &mut f[i * n..(i + 1) * n];
        for (k, x) in fi.iter_mut().enumerate().skip(i + 1) {
            let lk = n - 1 - k;
            *x = li[lk] / a[lk * n + lk];
        }
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{inverse_upper_cholesky, Rng};

    fn spd(n: usize, rng: &mut Rng) -> Vec<f64> {
        let m = n + 3;
        let x: Vec<f64> = (0..m * n).map(|_| rng.gauss()).collect();
        let mut h = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                h[i * n + j] = (0..m).map(|s| x[s * n + i] * x[s * n + j]).sum::<f64>();
            }
            h[i * n + i] += 0.1;
        }
        h
    }

    #[test]
    fn cholesky_reconstructs() {
        let mut rng = Rng::seeded(1);
        for n in [1usize, 2, 3, 4, 5, 7, 8, 13, 33] {
            let h = spd(n, &mut rng);
            let mut l = h.clone();
            cholesky_lower(&mut l, n).unwrap();
            for i in 0..n {
                for j in 0..=i {
                    let s: f64 = (0..=j).map(|k| l[i * n + k] * l[j * n + k]).sum();
                    assert!(
                        (s - h[i * n + j]).abs() < 1e-9 * (1.0 + h[i * n + j].abs()),
                        "n {n} ({i},{j})"
                    );
                }
            }
        }
        let mut bad = vec![1.0, 2.0, 2.0, 1.0];
        assert_eq!(cholesky_lower(&mut bad, 2), Err(1));
    }

    #[test]
    fn feedback_matches_the_inverse_factor() {
        // U = upper Cholesky of H^-1 computed the long way, against F.
        let mut rng = Rng::seeded(2);
        for n in [1usize, 2, 5, 9, 17] {
            let h = spd(n, &mut rng);
            let f = feedback_matrix(&h, n).unwrap();
            let u = inverse_upper_cholesky(&h, n);
            // Run both recurrences on a random row with a crude quantizer.
            let w: Vec<f64> = (0..n).map(|_| rng.gauss()).collect();
            let quant = |x: f64| (x * 2.0).round() / 2.0;
            let mut wt = w.clone();
            let mut q_ref = vec![0.0; n];
            for i in 0..n {
                q_ref[i] = quant(wt[i]);
                let e = (wt[i] - q_ref[i]) / u[i * n + i];
                for j in i + 1..n {
                    wt[j] -= e * u[i * n + j];
                }
            }
            let mut q_new = vec![0.0; n];
            let mut cur = w.clone();
            for j in 0..n {
                q_new[j] = quant(cur[j]);
                let delta = w[j] - q_new[j];
                for k in j + 1..n {
                    cur[k] += delta * f[j * n + k];
                }
            }
            for j in 0..n {
                assert!(
                    (wt[j] - cur[j]).abs() < 1e-9,
                    "n {n} col {j}: {} vs {}",
                    wt[j],
                    cur[j]
                );
            }
            assert_eq!(q_ref, q_new);
        }
    }
}
