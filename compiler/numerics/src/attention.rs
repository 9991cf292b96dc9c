//! Attention arithmetic (RFC 0002 §Softmax): score scaling, softmax
//! weights and the head output.
//!
//! ```text
//! s_j  = scale_score(dot_a8(q, k_j), scale)      W48
//! m    = max_j s_j
//! e_j  = exp_neg(m - s_j)                        P15, e_j ∈ [0, 32768]; the max gets 32768
//! S    = Σ e_j                                   exact (≤ 2^15·n; u64)
//! A_i  = Σ_j block_term(e_j, -15, v_ji, Ev_jb)   each term rounded into W48, summed exactly
//! (R, re) = recip(S)                             one reciprocal per head
//! o_i  = sat_w48(rshr(A_i · R, -(re + 15)))      W48
//! ```
//!
//! `A_i` needs `48 + log2(n)` bits (i128 here; 66 bits covers 2^18
//! positions). Because every term is rounded before the sum, any order or
//! lane split of `j` gives the same bits.
//!
//! Error (measured vs f64 softmax on the same scores and dequantized `V`):
//! `|o_i - ref_i| <= ATTEND_MAX_ERR · max_j |v_ji| + 2^-24`.

use crate::formats::{sat_w48, A8_BLOCK, P15_FRAC, W_FRAC};
use crate::linear::{block_term, block_term_i64, shift_sat_w48, shift_sat_w48_i64};
use crate::scalar::{exp_neg, recip};

/// Measured bound of [`attend`] relative to `max_j |v_ji|` (see module docs).
pub const ATTEND_MAX_ERR: f64 = 3.0e-4;

/// Mantissa bits of a [`ScoreScale`] (an unsigned 16-bit multiplier).
pub const SCORE_SCALE_BITS: u32 = 16;

/// A positive constant multiplier `mant · 2^-shift` with a normalized
/// 16-bit mantissa `mant ∈ [2^15, 2^16)`: relative error `<= 2^-16` for any
/// scale, exact for powers of two (`1/sqrt(head_dim)` with `head_dim` a
/// power of 4, e.g. 64 → `32768 · 2^-18`, so the multiply is a plain
/// `rshr(s, 3)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScoreScale {
    /// The 16-bit mantissa, in `[2^15, 2^16)`.
    pub mant: u32,
    /// Rounded right shift applied after the multiply (`15 − floor(log2 scale)`;
    /// negative only for scales ≥ 2^16).
    pub shift: i32,
}

impl ScoreScale {
    /// Build time: nearest normalized constant to `scale > 0`.
    pub fn new(scale: f64) -> Self {
        assert!(scale.is_finite() && scale > 0.0, "ScoreScale: {scale}");
        let mut shift = 15 - scale.log2().floor() as i32;
        let lo = (1u64 << (SCORE_SCALE_BITS - 1)) as f64;
        // Guard against log2 rounding at exact powers of two.
        while scale * (shift as f64).exp2() < lo {
            shift += 1;
        }
        while scale * (shift as f64).exp2() >= 2.0 * lo {
            shift -= 1;
        }
        let mut mant = (scale * (shift as f64).exp2()).round() as u32;
        if mant == 1 << SCORE_SCALE_BITS {
            mant = 1 << (SCORE_SCALE_BITS - 1);
            shift -= 1;
        }
        ScoreScale { mant, shift }
    }

    /// Build time: the usual `1/sqrt(head_dim)`.
    pub fn inv_sqrt(head_dim: usize) -> Self {
        Self::new(1.0 / (head_dim as f64).sqrt())
    }
}

/// `sat_w48(rshr(s · mant, shift))`.
#[inline]
pub fn scale_score(s: i64, c: ScoreScale) -> i64 {
    shift_sat_w48(s as i128 * c.mant as i128, -c.shift)
}

/// [`scale_score`] in i64 arithmetic: the same bits for every `s` (the
/// product of a `W48` score and the 16-bit mantissa always fits an i64).
#[inline(always)]
pub fn scale_score_i64(s: i64, c: ScoreScale) -> i64 {
    match s.checked_mul(c.mant as i64) {
        Some(p) => shift_sat_w48_i64(p, -c.shift),
        None => scale_score(s, c),
    }
}

/// [`scale_score`] over a slice, in place.
pub fn scale_scores(s: &mut [i64], c: ScoreScale) {
    for x in s {
        *x = scale_score(*x, c);
    }
}

/// Unnormalized softmax weights `e_j = exp_neg(max - s_j)` (P15) of `W48`
/// scores; returns `S = Σ e_j` (`>= 32768` when `scores` is non-empty).
pub fn softmax_weights(scores: &[i64], e: &mut [u32]) -> u64 {
    assert_eq!(scores.len(), e.len(), "softmax_weights: lengths");
    let Some(&m) = scores.iter().max() else {
        return 0;
    };
    let mut sum = 0u64;
    for (ej, &s) in e.iter_mut().zip(scores) {
        *ej = exp_neg(m.saturating_sub(s));
        sum += *ej as u64;
    }
    sum
}

/// The attention output of one head (module docs): `scores` for positions
/// `0..n` in `W48`, `V` rows in `A8` (`v_mant`: `n × head_dim`, row `j` is
/// position `j`; `v_exp`: `n × head_dim/32`), output `head_dim` values in
/// `W48`. `n = 0` gives zeros. `head_dim` must be a multiple of 32.
pub fn attend(scores: &[i64], v_mant: &[i8], v_exp: &[i8], head_dim: usize, out: &mut [i64]) {
    let n = scores.len();
    assert!(
        head_dim.is_multiple_of(A8_BLOCK),
        "attend: head_dim {head_dim}"
    );
    assert_eq!(v_mant.len(), n * head_dim, "attend: V mantissas");
    assert_eq!(v_exp.len(), n * head_dim / A8_BLOCK, "attend: V exponents");
    assert_eq!(out.len(), head_dim, "attend: out");
    out.fill(0);
    let Some(&m) = scores.iter().max() else {
        return;
    };
    let bpr = head_dim / A8_BLOCK;
    let mut acc = vec![0i128; head_dim];
    let mut sum = 0u64;
    for (j, &s) in scores.iter().enumerate() {
        let e = exp_neg(m.saturating_sub(s));
        sum += e as u64;
        if e == 0 {
            continue; // every term would be block_term(0, ..) = 0
        }
        let row = &v_mant[j * head_dim..(j + 1) * head_dim];
        for (b, (vb, ab)) in row
            .chunks_exact(A8_BLOCK)
            .zip(acc.chunks_exact_mut(A8_BLOCK))
            .enumerate()
        {
            let ev = v_exp[j * bpr + b] as i32;
            for (a, &v) in ab.iter_mut().zip(vb) {
                *a += block_term(e as i32, -P15_FRAC, v as i64, ev) as i128;
            }
        }
    }
    let (r, re) = recip(sum);
    for (o, &a) in out.iter_mut().zip(&acc) {
        *o = shift_sat_w48(a.saturating_mul(r as i128), re + P15_FRAC);
    }
    debug_assert!(out.iter().all(|&o| sat_w48(o as i128) == o));
}

/// The output stage of [`attend`], for exact sums `acc[i] = A_i` and `sum =
/// S > 0`: `o_i = sat_w48(rshr(A_i · R, -(re + 15)))` with `recip(S) = R ·
/// 2^re`.
pub fn attend_output(acc: &[i64], sum: u64, out: &mut [i64]) {
    assert_eq!(acc.len(), out.len(), "attend_output: lengths");
    let (r, re) = recip(sum);
    for (o, &a) in out.iter_mut().zip(acc) {
        *o = shift_sat_w48((a as i128).saturating_mul(r as i128), re + P15_FRAC);
    }
}

/// Positions after which [`attend_i64`] folds its i32 accumulators into the
/// i64 ones: `512 · 2^21 < 2^31`.
const ATTEND_I32_RUN: usize = 512;

/// [`attend`] with i64 (and i32) accumulators: the same bits (test
/// `attend_i64_matches_attend`), written so that the inner loops vectorize.
///
/// Each term `block_term(e_j, -15, v, E)` is `x · 2^up` with `x = e_j · v`
/// (`|x| <= 2^15 · 127 < 2^22`) and `up = E + 9`:
/// - `0 <= up <= 15`: exact, no saturation (`< 2^37`): `v · (e_j << up)`
///   accumulated in i64;
/// - `up < 0`: `rshr(x, n)` with `n = -up`, computed in i32 as
///   `((x >> (n - 1)) + 1) >> 1` (the same floor; the shift is capped at 31,
///   where both sides are 0), `|term| <= 2^21`, accumulated in i32 for at
///   most `ATTEND_I32_RUN` (512) positions at a time;
/// - otherwise [`block_term_i64`].
///
/// The i64 sums are exact for `n < 2^16` positions (`2^16 · 2^47 = 2^63`);
/// longer rows call [`attend`]. Always inlined, so that callers compiled
/// for wider vector units (`#[target_feature]`) vectorize it accordingly.
#[inline(always)]
pub fn attend_i64(scores: &[i64], v_mant: &[i8], v_exp: &[i8], head_dim: usize, out: &mut [i64]) {
    let n = scores.len();
    if n >= 1 << 16 {
        return attend(scores, v_mant, v_exp, head_dim, out);
    }
    assert!(
        head_dim.is_multiple_of(A8_BLOCK),
        "attend: head_dim {head_dim}"
    );
    assert_eq!(v_mant.len(), n * head_dim, "attend: V mantissas");
    assert_eq!(v_exp.len(), n * head_dim / A8_BLOCK, "attend: V exponents");
    assert_eq!(out.len(), head_dim, "attend: out");
    out.fill(0);
    let Some(&m) = scores.iter().max() else {
        return;
    };
    let bpr = head_dim / A8_BLOCK;
    let mut acc = vec![0i64; head_dim];
    let mut acc32 = vec![0i32; head_dim];
    let mut sum = 0u64;
    for (j, &s) in scores.iter().enumerate() {
        let e = exp_neg(m.saturating_sub(s));
        sum += e as u64;
        if e != 0 {
            let row = &v_mant[j * head_dim..(j + 1) * head_dim];
            for (b, ((vb, ab), ab32)) in row
                .chunks_exact(A8_BLOCK)
                .zip(acc.chunks_exact_mut(A8_BLOCK))
                .zip(acc32.chunks_exact_mut(A8_BLOCK))
                .enumerate()
            {
                let ev = v_exp[j * bpr + b] as i32;
                let up = ev - P15_FRAC + W_FRAC;
                let vb: &[i8; A8_BLOCK] = vb.try_into().unwrap();
                if (0..=15).contains(&up) {
                    let c = (e as i32) << up;
                    let ab: &mut [i64; A8_BLOCK] = ab.try_into().unwrap();
                    for (a, &v) in ab.iter_mut().zip(vb) {
                        *a += v as i32 as i64 * c as i64;
                    }
                } else if up < 0 {
                    let sh = (-1 - up).min(31) as u32;
                    let ab32: &mut [i32; A8_BLOCK] = ab32.try_into().unwrap();
                    for (a, &v) in ab32.iter_mut().zip(vb) {
                        *a += (((e as i32 * v as i32) >> sh) + 1) >> 1;
                    }
                } else {
                    for (a, &v) in ab.iter_mut().zip(vb) {
                        *a += block_term_i64(e as i32, -P15_FRAC, v as i64, ev);
                    }
                }
            }
        }
        if (j + 1) % ATTEND_I32_RUN == 0 {
            for (a, a32) in acc.iter_mut().zip(acc32.iter_mut()) {
                *a += *a32 as i64;
                *a32 = 0;
            }
        }
    }
    for (a, &a32) in acc.iter_mut().zip(&acc32) {
        *a += a32 as i64;
    }
    attend_output(&acc, sum, out);
    debug_assert!(out.iter().all(|&o| sat_w48(o as i128) == o));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::tests::xorshift;
    use crate::formats::{to_a8_vec, W_FRAC};

    #[test]
    fn score_scale_constants() {
        assert_eq!(
            ScoreScale::inv_sqrt(64),
            ScoreScale {
                mant: 32768,
                shift: 18
            }
        );
        assert_eq!(
            ScoreScale::inv_sqrt(256),
            ScoreScale {
                mant: 32768,
                shift: 19
            }
        );
        assert_eq!(
            ScoreScale::inv_sqrt(128),
            ScoreScale {
                mant: 46341,
                shift: 19
            }
        );
        assert_eq!(
            ScoreScale::new(1.0),
            ScoreScale {
                mant: 32768,
                shift: 15
            }
        );
        assert_eq!(
            ScoreScale::new(1.0 - 1e-9),
            ScoreScale {
                mant: 32768,
                shift: 15
            }
        );
        // Power-of-4 head_dim: identical bits to a rounding shift.
        let c = ScoreScale::inv_sqrt(64);
        for s in [
            -1_000_001i64,
            -12,
            -4,
            -3,
            0,
            3,
            4,
            5,
            1 << 40,
            crate::W_MIN,
        ] {
            assert_eq!(scale_score(s, c), crate::rshr(s, 3));
        }
        for d in [48usize, 80, 96, 112, 128, 192, 160, 256] {
            let c = ScoreScale::inv_sqrt(d);
            let v = c.mant as f64 * (-(c.shift as f64)).exp2();
            assert!((v * (d as f64).sqrt() - 1.0).abs() <= 2f64.powi(-16), "{d}");
            assert!((32768..65536).contains(&c.mant));
        }
    }

    #[test]
    fn softmax_weights_basics() {
        let mut e = [0u32; 3];
        let s = softmax_weights(&[0, 1 << 24, -(1 << 30)], &mut e);
        // e^-1 · 32768 = 12054.6
        assert_eq!(e[1], 32768);
        assert!((e[0] as i64 - 12055).abs() <= 3);
        assert_eq!(e[2], 0);
        assert_eq!(s, e.iter().map(|&x| x as u64).sum::<u64>());
        assert_eq!(softmax_weights(&[], &mut []), 0);
    }

    #[test]
    fn attend_against_f64() {
        let mut seed = 17u64;
        let mut worst: f64 = 0.0;
        for trial in 0..300 {
            let head_dim = [32usize, 64, 128][trial % 3];
            let n = 1 + (xorshift(&mut seed) % 300) as usize;
            let spread = (xorshift(&mut seed) % 20) as i64 + 1;
            let scores: Vec<i64> = (0..n)
                .map(|_| {
                    (xorshift(&mut seed) % ((spread as u64 * 2) << W_FRAC)) as i64
                        - (spread << W_FRAC)
                })
                .collect();
            let vscale = (xorshift(&mut seed) % 30) as u32;
            let v: Vec<i64> = (0..n * head_dim)
                .map(|_| (xorshift(&mut seed) as i64) >> (17 + vscale)) // W48 values
                .collect();
            let va = to_a8_vec(&v, W_FRAC).unwrap();
            let vf = va.to_f64();
            let mut out = vec![0i64; head_dim];
            attend(&scores, &va.mant, &va.exp, head_dim, &mut out);
            let m = *scores.iter().max().unwrap() as f64;
            let w: Vec<f64> = scores
                .iter()
                .map(|&s| ((s as f64 - m) / 2f64.powi(24)).exp())
                .collect();
            let ws: f64 = w.iter().sum();
            for i in 0..head_dim {
                let want: f64 = (0..n).map(|j| w[j] * vf[j * head_dim + i]).sum::<f64>() / ws;
                let vmax = (0..n)
                    .map(|j| vf[j * head_dim + i].abs())
                    .fold(0.0, f64::max);
                let err = (out[i] as f64 / 2f64.powi(24) - want).abs();
                assert!(
                    err <= ATTEND_MAX_ERR * vmax + 2f64.powi(-24),
                    "err {err} vmax {vmax}"
                );
                if vmax > 0.0 {
                    worst = worst.max((err - 2f64.powi(-24)).max(0.0) / vmax);
                }
            }
        }
        println!("attend max err / max|v| {worst:e}");
    }

    #[test]
    fn scale_score_i64_matches_scale_score() {
        let mut seed = 3u64;
        let consts: Vec<ScoreScale> = [32usize, 48, 64, 80, 96, 128, 256]
            .iter()
            .map(|&d| ScoreScale::inv_sqrt(d))
            .chain([
                ScoreScale::new(1e-9),
                ScoreScale::new(3e5),
                ScoreScale::new(1.0),
            ])
            .collect();
        for i in 0..200_000 {
            let r = xorshift(&mut seed);
            let s = match i % 3 {
                0 => r as i64,
                1 => (r as i64) >> (r % 64),
                _ => ((r as i64) >> 16).clamp(crate::W_MIN, crate::W_MAX),
            };
            for &c in &consts {
                assert_eq!(scale_score_i64(s, c), scale_score(s, c), "{s} {c:?}");
            }
        }
        for s in [i64::MIN, i64::MAX, crate::W_MIN, crate::W_MAX, 0, -1, 1] {
            for &c in &consts {
                assert_eq!(scale_score_i64(s, c), scale_score(s, c));
            }
        }
    }

    #[test]
    fn attend_i64_matches_attend() {
        let mut seed = 23u64;
        for trial in 0..1500 {
            let head_dim = [32usize, 64, 128][trial % 3];
            let n = if trial % 50 == 0 {
                1500 + (xorshift(&mut seed) % 600) as usize
            } else {
                1 + (xorshift(&mut seed) % 300) as usize
            };
            let spread = (xorshift(&mut seed) % 20) as i64 + 1;
            let scores: Vec<i64> = (0..n)
                .map(|_| {
                    (xorshift(&mut seed) % ((spread as u64 * 2) << W_FRAC)) as i64
                        - (spread << W_FRAC)
                })
                .collect();
            // V magnitudes from tiny (right shifts) to huge (saturation).
            let vscale = (xorshift(&mut seed) % 50) as u32;
            let v: Vec<i64> = (0..n * head_dim)
                .map(|_| {
                    let r = xorshift(&mut seed);
                    ((r as i64) >> (3 + vscale)) >> (r % 4)
                })
                .collect();
            let va = crate::formats::to_a8_vec(&v, W_FRAC).unwrap();
            let mut want = vec![0i64; head_dim];
            let mut got = vec![1i64; head_dim];
            attend(&scores, &va.mant, &va.exp, head_dim, &mut want);
            attend_i64(&scores, &va.mant, &va.exp, head_dim, &mut got);
            assert_eq!(got, want, "trial {trial}");
        }
        let mut out = [7i64; 32];
        attend_i64(&[], &[], &[], 32, &mut out);
        assert_eq!(out, [0; 32]);
    }

    #[test]
    fn attend_edges() {
        let mut out = [7i64; 32];
        attend(&[], &[], &[], 32, &mut out);
        assert_eq!(out, [0; 32]);
        // One position: output = v exactly (e = 32768, S = 32768, recip exact).
        let v: Vec<i8> = (0..32).map(|i| i as i8 * 4 - 64).collect();
        attend(&[123], &v, &[-3], 32, &mut out);
        for i in 0..32 {
            assert_eq!(out[i], (v[i] as i64) << (24 - 3));
        }
        // Two equal scores: the mean of the rows, exactly.
        let mut v2 = v.clone();
        v2.extend(std::iter::repeat_n(100i8, 32));
        attend(&[5, 5], &v2, &[0, 0], 32, &mut out);
        for i in 0..32 {
            assert_eq!(out[i], ((v[i] as i64 + 100) << 24) / 2);
        }
    }
}
