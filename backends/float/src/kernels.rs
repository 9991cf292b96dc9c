//! f32 kernels, each written to follow the Hugging Face implementation's order
//! of operations so that float results agree to ~1e-6 relative.

use ndarray::{s, Array2, ArrayView1, ArrayView2, ArrayViewMut1};
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
///
/// The two products of each head are `ndarray`'s `dot`, i.e.
/// `matrixmultiply`'s sgemm, except for one new row (a decode step), where
/// [`attention_row`] computes the same bits without sgemm's packing, from
/// `keys_t`, the same keys by feature (brought up to date here).
#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: ArrayView2<f32>,
    k: ArrayView2<f32>,
    v: ArrayView2<f32>,
    keys_t: &mut KeysByFeature,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    pos0: usize,
    window: Option<usize>,
) -> Array2<f32> {
    let shape = AttnShape {
        n_heads,
        n_kv_heads,
        head_dim,
    };
    if q.nrows() == 1 {
        keys_t.sync(k);
        let simd =
            cfg!(target_arch = "x86_64") && crate::rows::Isa::detect() >= crate::rows::Isa::Avx2;
        let out = attention_row(q.row(0), keys_t, v, shape, pos0, window, simd);
        return Array2::from_shape_vec((1, n_heads * head_dim), out).expect("one row");
    }
    attention_gemm(q, k, v, shape, pos0, window)
}

/// An attention's key cache by feature, for decode steps: for each column
/// `c` of the cache (key head `c / head_dim`, feature `c % head_dim`), the
/// keys of every position side by side, so that a new row's scores against
/// all of them are summed lane by lane. Filled lazily: a prefill does not
/// pay for it until a decode step follows.
#[derive(Clone, Debug, Default)]
pub struct KeysByFeature {
    /// `data[c * cap + j]`: column `c` of position `j`.
    data: Vec<f32>,
    /// Positions each column has room for.
    cap: usize,
    /// Positions filled.
    len: usize,
}

impl KeysByFeature {
    /// Brings the copy up to date with the cache `k` (`[positions, width]`),
    /// which only ever grows.
    fn sync(&mut self, k: ArrayView2<f32>) {
        let (total, width) = k.dim();
        if total > self.cap {
            let cap = total.next_power_of_two().max(64);
            let mut data = vec![0f32; width * cap];
            for c in 0..width {
                data[c * cap..c * cap + self.len]
                    .copy_from_slice(&self.data[c * self.cap..c * self.cap + self.len]);
            }
            (self.data, self.cap) = (data, cap);
        }
        for j in self.len..total {
            for (c, &x) in k.row(j).iter().enumerate() {
                self.data[c * self.cap + j] = x;
            }
        }
        self.len = total;
    }

    /// Column `c` of every position.
    fn column(&self, c: usize) -> &[f32] {
        &self.data[c * self.cap..c * self.cap + self.len]
    }
}

/// [`attention`] through sgemm, whatever the number of rows.
fn attention_gemm(
    q: ArrayView2<f32>,
    k: ArrayView2<f32>,
    v: ArrayView2<f32>,
    shape: AttnShape,
    pos0: usize,
    window: Option<usize>,
) -> Array2<f32> {
    let AttnShape {
        n_heads,
        n_kv_heads,
        head_dim,
    } = shape;
    let t = q.nrows();
    let group = n_heads / n_kv_heads;
    let scale = 1.0 / (head_dim as f32).sqrt();
    let mut out = Array2::zeros((t, n_heads * head_dim));
    for h in 0..n_heads {
        let kvh = h / group;
        let cols = s![.., h * head_dim..(h + 1) * head_dim];
        let kv_cols = s![.., kvh * head_dim..(kvh + 1) * head_dim];
        let mut scores = q.slice(cols).dot(&k.slice(kv_cols).t());
        for (i, row) in scores.rows_mut().into_iter().enumerate() {
            softmax_causal(row, pos0 + i, window, scale);
        }
        out.slice_mut(cols).assign(&scores.dot(&v.slice(kv_cols)));
    }
    out
}

/// Heads of an attention.
#[derive(Clone, Copy)]
struct AttnShape {
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
}

/// One row of scores (position `p`) into probabilities, in place: the
/// positions it may not see are `-inf`, the rest scaled; then the softmax.
fn softmax_causal(mut row: ArrayViewMut1<f32>, p: usize, window: Option<usize>, scale: f32) {
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

/// How far `matrixmultiply`'s f32 sgemm sums along the shared dimension
/// before it adds the partial sum to the output (its `S_KC`).
const SGEMM_KC: usize = 256;

/// The attention of one new row `q` (position `pos0`) over the keys by
/// feature `kt` and the values `v`, bit for bit as [`attention`]'s sgemm
/// products compute it on a CPU with FMA (the kernel `matrixmultiply` picks
/// there): each output element is a chain of fused multiply-adds from zero
/// over the shared dimension in order, a chunk of [`SGEMM_KC`] at a time,
/// the chunks' sums added in order. Here every instruction set uses the
/// same fused operations (`f32::mul_add`). Heads are independent tasks of
/// one parallel step ([`crate::team`]). `simd`: AVX2 and FMA were detected.
fn attention_row(
    q: ArrayView1<f32>,
    kt: &KeysByFeature,
    v: ArrayView2<f32>,
    shape: AttnShape,
    pos0: usize,
    window: Option<usize>,
    simd: bool,
) -> Vec<f32> {
    let hd = shape.head_dim;
    let q = q.to_vec();
    let v = v.as_standard_layout();
    let vs = v.as_slice().expect("standard layout");
    let mut out = vec![0f32; shape.n_heads * hd];
    let cells: Vec<std::sync::Mutex<&mut [f32]>> =
        out.chunks_mut(hd).map(std::sync::Mutex::new).collect();
    crate::team::run(shape.n_heads, &|h| {
        let mut dst = cells[h].lock().expect("a head runs once");
        let args = HeadArgs {
            q: &q[h * hd..(h + 1) * hd],
            kt,
            vs,
            shape,
            kvh: h / (shape.n_heads / shape.n_kv_heads),
            pos0,
            window,
        };
        #[cfg(target_arch = "x86_64")]
        if simd {
            // SAFETY: AVX2 and FMA were detected (the caller's `simd`).
            return unsafe { head_fma(&args, &mut dst) };
        }
        let _ = simd;
        head_any::<false>(&args, &mut dst)
    });
    drop(cells);
    out
}

/// What one head of [`attention_row`] reads.
struct HeadArgs<'a> {
    /// The head's query.
    q: &'a [f32],
    kt: &'a KeysByFeature,
    /// The value cache, row-major.
    vs: &'a [f32],
    shape: AttnShape,
    /// The head's key and value head.
    kvh: usize,
    pos0: usize,
    window: Option<usize>,
}

/// [`head_any`] compiled with FMA.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn head_fma(a: &HeadArgs<'_>, out: &mut [f32]) {
    head_any::<true>(a, out)
}

/// Lanes of [`fma_block`]: sums kept in registers while their chains run.
const BLOCK: usize = 16;

/// `acc[l] = fma(a(i), b(i)[l], acc[l])` for `i` in `range`, in order, for
/// the `len <= BLOCK` lanes: each lane one chain of fused multiply-adds
/// from `acc`'s values, held in registers throughout (two AVX registers
/// when `SIMD`: the caller was compiled with AVX2 and FMA).
#[inline(always)]
fn fma_block<'b, const SIMD: bool>(
    acc: &mut [f32],
    range: std::ops::Range<usize>,
    a: impl Fn(usize) -> f32,
    b: impl Fn(usize) -> &'b [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if SIMD && acc.len() == BLOCK {
        use std::arch::x86_64::*;
        // SAFETY: `SIMD` callers run with AVX2 and FMA (see `head_fma`);
        // every `b(i)` holds at least BLOCK values (checked).
        unsafe {
            let mut lo = _mm256_loadu_ps(acc.as_ptr());
            let mut hi = _mm256_loadu_ps(acc.as_ptr().add(8));
            for i in range {
                let (x, y) = (_mm256_set1_ps(a(i)), &b(i)[..BLOCK]);
                lo = _mm256_fmadd_ps(x, _mm256_loadu_ps(y.as_ptr()), lo);
                hi = _mm256_fmadd_ps(x, _mm256_loadu_ps(y.as_ptr().add(8)), hi);
            }
            _mm256_storeu_ps(acc.as_mut_ptr(), lo);
            _mm256_storeu_ps(acc.as_mut_ptr().add(8), hi);
        }
        return;
    }
    let len = acc.len();
    for i in range {
        let (x, y) = (a(i), &b(i)[..len]);
        for (s, &w) in acc.iter_mut().zip(y) {
            *s = x.mul_add(w, *s);
        }
    }
}

/// `out[l] = Σ_i a(i)·b(i)[l]` over `i < n`, for `out.len() <= BLOCK`
/// lanes, as sgemm sums it: chains of fused multiply-adds from zero, a
/// chunk of [`SGEMM_KC`] at a time, the chunks' sums added in order.
#[inline(always)]
fn sgemm_sums<'b, const SIMD: bool>(
    out: &mut [f32],
    n: usize,
    a: impl Fn(usize) -> f32 + Copy,
    b: impl Fn(usize) -> &'b [f32] + Copy,
) {
    let len = out.len();
    for (c, i0) in (0..n).step_by(SGEMM_KC).enumerate() {
        let mut part = [0f32; BLOCK];
        fma_block::<SIMD>(&mut part[..len], i0..(i0 + SGEMM_KC).min(n), a, b);
        for (s, p) in out.iter_mut().zip(part) {
            *s = if c == 0 { p } else { *s + p };
        }
    }
}

/// One head of [`attention_row`] into `out` (`head_dim` long).
#[inline(always)]
fn head_any<const SIMD: bool>(a: &HeadArgs<'_>, out: &mut [f32]) {
    let hd = a.shape.head_dim;
    let kv_w = a.shape.n_kv_heads * hd;
    let total = a.kt.len;
    let scale = 1.0 / (hd as f32).sqrt();
    let mut scores = vec![0f32; total];
    // scores = q · Kᵀ: sixteen positions at a time, each a chain over the
    // features (in chunks of SGEMM_KC, whose sums are added in order).
    for j0 in (0..total).step_by(BLOCK) {
        let j1 = (j0 + BLOCK).min(total);
        sgemm_sums::<SIMD>(
            &mut scores[j0..j1],
            hd,
            |d| a.q[d],
            |d| &a.kt.column(a.kvh * hd + d)[j0..],
        );
    }
    softmax_causal(
        ArrayViewMut1::from(&mut scores[..]),
        a.pos0,
        a.window,
        scale,
    );
    // out = probabilities · V: sixteen features at a time, each a chain over
    // the positions (in chunks of SGEMM_KC).
    for e0 in (0..hd).step_by(BLOCK) {
        let e1 = (e0 + BLOCK).min(hd);
        sgemm_sums::<SIMD>(
            &mut out[e0..e1],
            total,
            |j| scores[j],
            |j| &a.vs[j * kv_w + a.kvh * hd + e0..],
        );
    }
}

pub fn gelu_tanh(x: f32) -> f32 {
    const C: f32 = 0.797_884_6; // sqrt(2/pi)
    0.5 * x * (1.0 + (C * (x + 0.044715 * x * x * x)).tanh())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr1, arr2};

    /// A decode step's attention (one row, no sgemm) gives sgemm's bits, on
    /// caches shorter and longer than sgemm's chunk, with grouped heads and a
    /// window; and a mutation of the chunking is seen.
    #[test]
    fn one_row_attention_matches_sgemm_bit_for_bit() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0
        };
        for &(total, hd, nh, nkv, window) in &[
            (1, 64, 9, 3, None),
            (69, 64, 9, 3, None),
            (300, 64, 4, 2, None),
            (600, 16, 2, 1, Some(100)),
            (40, 320, 2, 2, None),
        ] {
            let q = Array2::from_shape_fn((1, nh * hd), |_| next());
            let k = Array2::from_shape_fn((total, nkv * hd), |_| next());
            let v = Array2::from_shape_fn((total, nkv * hd), |_| next());
            let pos0 = total - 1;
            let shape = AttnShape {
                n_heads: nh,
                n_kv_heads: nkv,
                head_dim: hd,
            };
            let want = attention_gemm(q.view(), k.view(), v.view(), shape, pos0, window);
            let mut kt = KeysByFeature::default();
            let got = attention(
                q.view(),
                k.view(),
                v.view(),
                &mut kt,
                nh,
                nkv,
                hd,
                pos0,
                window,
            );
            let bits = |a: &Array2<f32>| a.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "total {total}, head_dim {hd}");
            // The keys by feature filled one decode step at a time, growing
            // past their first capacity (64) and re-laid out, give the same.
            let mut grown = KeysByFeature::default();
            for t in 1..=total {
                grown.sync(k.slice(s![..t, ..]));
            }
            assert_eq!(grown.len, kt.len);
            for c in 0..nkv * hd {
                assert_eq!(grown.column(c), kt.column(c), "column {c}");
            }
            // The portable path too.
            let portable = attention_row(q.row(0), &kt, v.view(), shape, pos0, window, false);
            let want: Vec<u32> = want.iter().map(|x| x.to_bits()).collect();
            let portable: Vec<u32> = portable.iter().map(|x| x.to_bits()).collect();
            assert_eq!(portable, want, "portable: total {total}, head_dim {hd}");
        }
    }

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
