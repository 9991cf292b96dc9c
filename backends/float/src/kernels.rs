//! f32 kernels, each written to follow the Hugging Face implementation's order
//! of operations so that float results agree to ~1e-6 relative.

use ndarray::{s, Array2, ArrayView1, ArrayView2};
use taalasc_ir::RopeSpec;

pub fn rms_norm(x: ArrayView2<f32>, gain: ArrayView1<f32>, eps: f32) -> Array2<f32> {
    let mut out = x.to_owned();
    for mut row in out.rows_mut() {
        let ms = row.iter().map(|v| v * v).sum::<f32>() / row.len() as f32;
        // An overflowed sum would give a scale of exactly 0 and hide the
        // overflow; NaN lets the non-finite check name this node.
        let r = if ms.is_finite() {
            1.0 / (ms + eps).sqrt()
        } else {
            f32::NAN
        };
        row.iter_mut()
            .zip(gain.iter())
            .for_each(|(v, g)| *v = g * (*v * r));
    }
    out
}

pub fn layer_norm(
    x: ArrayView2<f32>,
    gain: ArrayView1<f32>,
    bias: ArrayView1<f32>,
    eps: f32,
) -> Array2<f32> {
    let mut out = x.to_owned();
    for mut row in out.rows_mut() {
        let n = row.len() as f32;
        let mean = row.sum() / n;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
        // As in rms_norm: an overflowed variance is reported, not zeroed.
        let r = if var.is_finite() {
            1.0 / (var + eps).sqrt()
        } else {
            f32::NAN
        };
        row.iter_mut()
            .zip(gain.iter().zip(bias.iter()))
            .for_each(|(v, (g, b))| *v = (*v - mean) * r * g + b);
    }
    out
}

/// Rotates each head's first `rotary_dim` features in split-halves layout,
/// for rows at positions `pos0, pos0 + 1, ...`.
pub fn rope(x: &mut Array2<f32>, n_heads: usize, head_dim: usize, spec: &RopeSpec, pos0: usize) {
    let inv = spec.inv_freqs();
    let half = spec.rotary_dim / 2;
    for (t, mut row) in x.rows_mut().into_iter().enumerate() {
        let p = (pos0 + t) as f64;
        let cs: Vec<(f32, f32)> = inv
            .iter()
            .map(|f| ((p * f).cos() as f32, (p * f).sin() as f32))
            .collect();
        for h in 0..n_heads {
            let base = h * head_dim;
            for (i, &(c, sn)) in cs.iter().enumerate() {
                let a = row[base + i];
                let b = row[base + i + half];
                row[base + i] = a * c - b * sn;
                row[base + i + half] = b * c + a * sn;
            }
        }
    }
}

/// Causal attention of the new rows `q` (at positions `pos0..`) over the
/// whole cache `k`, `v` (`[positions, n_kv_heads * head_dim]`).
#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: ArrayView2<f32>,
    k: ArrayView2<f32>,
    v: ArrayView2<f32>,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    pos0: usize,
    window: Option<usize>,
) -> Array2<f32> {
    let t = q.nrows();
    let group = n_heads / n_kv_heads;
    let scale = 1.0 / (head_dim as f32).sqrt();
    let mut out = Array2::zeros((t, n_heads * head_dim));
    for h in 0..n_heads {
        let kvh = h / group;
        let cols = s![.., h * head_dim..(h + 1) * head_dim];
        let kv_cols = s![.., kvh * head_dim..(kvh + 1) * head_dim];
        let mut scores = q.slice(cols).dot(&k.slice(kv_cols).t());
        for (i, mut row) in scores.rows_mut().into_iter().enumerate() {
            let p = pos0 + i;
            let lo = window.map_or(0, |w| (p + 1).saturating_sub(w));
            let mut max = f32::NEG_INFINITY;
            for (j, s) in row.iter_mut().enumerate() {
                if j > p || j < lo {
                    *s = f32::NEG_INFINITY;
                } else {
                    *s *= scale;
                    max = max.max(*s);
                }
            }
            let mut sum = 0.0;
            row.mapv_inplace(|s| {
                let e = (s - max).exp();
                sum += e;
                e
            });
            row /= sum;
        }
        out.slice_mut(cols).assign(&scores.dot(&v.slice(kv_cols)));
    }
    out
}

pub fn gelu_tanh(x: f32) -> f32 {
    const C: f32 = 0.797_884_6; // sqrt(2/pi)
    0.5 * x * (1.0 + (C * (x + 0.044715 * x * x * x)).tanh())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr1, arr2};

    /// Finite inputs whose squares overflow f32: the norms give NaN (which
    /// the reference's non-finite check reports) rather than a silent 0.
    #[test]
    fn norms_report_an_overflowed_sum_as_nan() {
        let x = arr2(&[[3e38f32, 3e38, 1.0, -1.0], [1.0, 2.0, 3.0, 4.0]]);
        let g = arr1(&[1.0f32; 4]);
        let b = arr1(&[0.0f32; 4]);
        for out in [
            rms_norm(x.view(), g.view(), 1e-5),
            layer_norm(x.view(), g.view(), b.view(), 1e-5),
        ] {
            assert!(out.row(0).iter().all(|v| v.is_nan()), "{out}");
            assert!(out.row(1).iter().all(|v| v.is_finite()), "{out}");
        }
    }
}
