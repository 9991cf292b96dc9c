//! Loss measures of a quantized matrix: how much its rounding costs (the
//! sensitivity proxies the e-graph format choice weighs). Not error types.

use crate::{Hessian, QTensor};

fn check(w: &[f32], q: &QTensor, n: usize) {
    assert_eq!(
        w.len(),
        q.rows * q.cols,
        "error: weight length vs QTensor shape"
    );
    assert_eq!(n, q.cols, "error: Hessian size vs columns");
}

/// Cheap sensitivity proxy: `Σ_r Σ_i (w_ri - ŵ_ri)² · hessian_diag[i]`, the
/// diagonal approximation of `tr(ΔW H ΔWᵀ)`.
///
/// Pass the PER-SAMPLE diagonal [`Hessian::mean_diag`] (`H_ii / samples`,
/// the mean of `x_i²` over the calibration set) to get
/// `Σ_r Σ_i (Δw_ri)² · H_ii / samples`, the expected squared output error
/// per token under that approximation. Panics on mismatched lengths.
pub fn weighted_error(w: &[f32], q: &QTensor, hessian_diag: &[f64]) -> f64 {
    check(w, q, hessian_diag.len());
    let deq = q.dequant_f64();
    let mut total = 0.0;
    for (wr, dr) in w.chunks_exact(q.cols).zip(deq.chunks_exact(q.cols)) {
        total += wr
            .iter()
            .zip(dr)
            .zip(hessian_diag)
            .map(|((&a, &b), &h)| (a as f64 - b).powi(2) * h)
            .sum::<f64>();
    }
    total
}

/// [`weighted_error`] with each row's error scaled by `row_weights` (1 when
/// `None`), split two ways: by column group (entry `g` sums the inputs of
/// group `g` over all rows) and by row. Panics on mismatched lengths.
pub fn weighted_error_parts(
    w: &[f32],
    q: &QTensor,
    hessian_diag: &[f64],
    row_weights: Option<&[f64]>,
) -> (Vec<f64>, Vec<f64>) {
    check(w, q, hessian_diag.len());
    if let Some(rw) = row_weights {
        assert_eq!(rw.len(), q.rows, "error: row weights");
    }
    let deq = q.dequant_f64();
    let g = q.group_len().max(1);
    let mut groups = vec![0.0; q.groups_per_row()];
    let mut rows = vec![0.0; q.rows];
    for (r, ((wr, dr), row)) in w
        .chunks_exact(q.cols)
        .zip(deq.chunks_exact(q.cols))
        .zip(&mut rows)
        .enumerate()
    {
        let scale = row_weights.map_or(1.0, |rw| rw[r]);
        for (i, ((&a, &b), &h)) in wr.iter().zip(dr).zip(hessian_diag).enumerate() {
            let e = (a as f64 - b).powi(2) * h * scale;
            groups[i / g] += e;
            *row += e;
        }
    }
    (groups, rows)
}

/// The full quadratic form `tr(ΔW H ΔWᵀ) / samples` = mean over the
/// calibration rows `x` of `‖ΔW x‖²` (the quantity GPTQ minimises).
/// Costs `rows · cols²`. Panics on mismatched lengths.
pub fn hessian_error(w: &[f32], q: &QTensor, hessian: &Hessian) -> f64 {
    let n = hessian.n;
    check(w, q, n);
    assert_eq!(hessian.h.len(), n * n, "error: Hessian storage");
    let deq = q.dequant_f64();
    let mut total = 0.0;
    let mut delta = vec![0.0f64; n];
    for (wr, dr) in w.chunks_exact(n).zip(deq.chunks_exact(n)) {
        for ((e, &a), &b) in delta.iter_mut().zip(wr).zip(dr) {
            *e = a as f64 - b;
        }
        for (i, hrow) in hessian.h.chunks_exact(n).enumerate() {
            if delta[i] != 0.0 {
                let s: f64 = hrow.iter().zip(&delta).map(|(&h, &e)| h * e).sum();
                total += delta[i] * s;
            }
        }
    }
    total / hessian.samples.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;
    use crate::{quantize_rtn_mixed, CodeWidths, ScaleRule, WeightFormat};

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
    }

    #[test]
    fn parts_sum_to_the_weighted_error_and_rows_scale() {
        let (rows, cols) = (6, 128);
        let mut rng = Rng::seeded(31);
        let w: Vec<f32> = (0..rows * cols)
            .map(|_| (rng.gauss() * 0.05) as f32)
            .collect();
        let diag: Vec<f64> = (0..cols).map(|_| 0.1 + rng.uniform() * 2.0).collect();
        let f: WeightFormat = "a4g32".parse().unwrap();
        for widths in [
            CodeWidths::default(),
            CodeWidths {
                groups: vec![2, 4, 3, 4],
                rows: vec![],
            },
            CodeWidths {
                groups: vec![],
                rows: vec![4, 2, 3, 4, 4, 2],
            },
        ] {
            let q = quantize_rtn_mixed(&w, rows, cols, &f, &widths, ScaleRule::Search).unwrap();
            let total = weighted_error(&w, &q, &diag);
            assert!(total > 0.0);
            let (groups, rows_e) = weighted_error_parts(&w, &q, &diag, None);
            assert_eq!((groups.len(), rows_e.len()), (4, rows));
            assert!(close(groups.iter().sum(), total), "{widths:?}");
            assert!(close(rows_e.iter().sum(), total), "{widths:?}");
            // Each entry by hand.
            let deq = q.dequant_f64();
            let e = |i: usize| (w[i] as f64 - deq[i]).powi(2) * diag[i % cols];
            for (g, &got) in groups.iter().enumerate() {
                let want: f64 = (0..rows)
                    .flat_map(|r| (g * 32..(g + 1) * 32).map(move |c| r * cols + c))
                    .map(e)
                    .sum();
                assert!(close(got, want), "group {g}: {got} vs {want}");
            }
            for (r, &got) in rows_e.iter().enumerate() {
                let want: f64 = (r * cols..(r + 1) * cols).map(e).sum();
                assert!(close(got, want), "row {r}: {got} vs {want}");
            }
            // Unit row weights change nothing.
            let ones = vec![1.0; rows];
            assert_eq!(
                weighted_error_parts(&w, &q, &diag, Some(&ones)),
                (groups.clone(), rows_e.clone())
            );
            // Row weights scale each row's error, and the group sums follow.
            let rw: Vec<f64> = (0..rows)
                .map(|r| [0.0, 0.5, 2.0, 3.0, 1.0, 10.0][r])
                .collect();
            let (gw, rwe) = weighted_error_parts(&w, &q, &diag, Some(&rw));
            for r in 0..rows {
                assert!(close(rwe[r], rows_e[r] * rw[r]), "row {r}");
            }
            assert_eq!(rwe[0], 0.0);
            let weighted: f64 = rows_e.iter().zip(&rw).map(|(a, b)| a * b).sum();
            assert!(close(gw.iter().sum(), weighted));
            assert!(close(rwe.iter().sum(), weighted));
            if !widths.groups.is_empty() {
                // The 2-bit group costs far more than the 4-bit ones.
                assert!(groups[0] > 4.0 * groups[1] && groups[0] > 4.0 * groups[3]);
                assert!(groups[2] > groups[1] && groups[2] > groups[3]);
            }
            if !widths.rows.is_empty() {
                assert!(rows_e[1] > 4.0 * rows_e[0] && rows_e[5] > 4.0 * rows_e[4]);
            }
        }
    }

    #[test]
    #[should_panic(expected = "row weights")]
    fn parts_reject_wrong_row_weights() {
        let w = vec![0.25f32; 64];
        let f: WeightFormat = "s4g32".parse().unwrap();
        let q = crate::quantize_rtn(&w, 2, 32, &f).unwrap();
        weighted_error_parts(&w, &q, &[1.0; 32], Some(&[1.0]));
    }
}
