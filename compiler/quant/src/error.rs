//! Quantization error measures (sensitivity proxies for the e-graph).

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
