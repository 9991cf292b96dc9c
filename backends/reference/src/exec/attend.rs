//! Attention heads of the reference: the bits of [`nx::dot_a8`],
//! [`nx::scale_score`] and [`nx::attend`], computed fast.
//!
//! - portable: [`nx::linear::dot_a8_i64`], [`nx::attention::scale_score_i64`]
//!   and [`nx::attention::attend_i64`] (the same bits, in i64);
//! - x86-64 with AVX-512 VNNI: scores of 16 cache positions per vector from
//!   a K cache packed like the weight matrices ([`PackedK`]), and the `V`
//!   sums with explicit vector code; then [`nx::softmax_weights`] and
//!   [`nx::attention::attend_output`], as in `attend`.
//!
//! Tests below compare both paths with the definitions on random heads.

use super::simd::{Lanes, Line, LANES};
use taalasc_numerics::{self as nx, ScoreScale};

/// The K rows of one KV head, 16 positions per vector: `[16-position
/// block][32-element block][8 lines]` of `mant + 128` (u8), and the block
/// exponents `[16-position block][32-element block]` per lane. Padding
/// lanes hold zeros (their scores are never read).
#[derive(Clone, Debug, Default)]
pub(crate) struct PackedK {
    lines: Vec<Line>,
    exps: Vec<Lanes>,
    /// Largest exponent of the stored rows.
    e_max: i32,
    len: usize,
    bph: usize,
}

impl PackedK {
    /// Appends one position's `A8` row.
    pub fn push(&mut self, mant: &[i8], exp: &[i8]) {
        let bph = exp.len();
        assert_eq!(mant.len(), bph * nx::A8_BLOCK, "PackedK: row shape");
        if self.len == 0 {
            self.bph = bph;
            self.e_max = i32::MIN;
        }
        assert_eq!(bph, self.bph, "PackedK: head_dim changed");
        let (jb, l) = (self.len / LANES, self.len % LANES);
        if l == 0 {
            self.lines.resize((jb + 1) * bph * 8, Line([128; 64]));
            self.exps.resize((jb + 1) * bph, Lanes([0; LANES]));
        }
        for (i, &m) in mant.iter().enumerate() {
            let (b, k, byte) = (i / 32, (i % 32) / 4, i % 4);
            self.lines[(jb * bph + b) * 8 + k].0[l * 4 + byte] = (m as u8) ^ 0x80;
        }
        for (b, &e) in exp.iter().enumerate() {
            self.exps[jb * bph + b].0[l] = e as i32;
            self.e_max = self.e_max.max(e as i32);
        }
        self.len += 1;
    }
}

/// One query head attending over cache rows `lo..=p` of its KV head.
pub(crate) struct Head<'a> {
    pub q_mant: &'a [i8],
    pub q_exp: &'a [i8],
    /// The whole cache of the KV head (`[positions × head_dim]`, `A8`).
    pub k_mant: &'a [i8],
    pub k_exp: &'a [i8],
    pub v_mant: &'a [i8],
    pub v_exp: &'a [i8],
    /// The same K rows packed (when the AVX-512 path runs).
    pub k_pack: Option<&'a PackedK>,
    pub hd: usize,
    pub lo: usize,
    pub p: usize,
    pub scale: ScoreScale,
}

/// Reused buffers of one worker.
#[derive(Default)]
pub(crate) struct Scratch {
    scores: Vec<i64>,
    e: Vec<u32>,
    acc: Vec<i64>,
}

impl Head<'_> {
    /// The head's output (`hd` values, `W48`): the bits of `attend` over
    /// the scaled `dot_a8` scores.
    pub fn run(&self, sc: &mut Scratch, out: &mut [i64]) {
        #[cfg(target_arch = "x86_64")]
        if let Some(kp) = self.k_pack {
            if super::simd::available() {
                // SAFETY: the CPU features were just checked.
                unsafe { self.run_avx512(kp, sc, out) };
                return;
            }
        }
        self.scores_portable(&mut sc.scores);
        let bph = self.hd / nx::A8_BLOCK;
        nx::attention::attend_i64(
            &sc.scores,
            &self.v_mant[self.lo * self.hd..(self.p + 1) * self.hd],
            &self.v_exp[self.lo * bph..(self.p + 1) * bph],
            self.hd,
            out,
        );
    }

    fn scores_portable(&self, scores: &mut Vec<i64>) {
        let (hd, bph) = (self.hd, self.hd / nx::A8_BLOCK);
        scores.clear();
        for j in self.lo..=self.p {
            let s = nx::linear::dot_a8_i64(
                self.q_mant,
                self.q_exp,
                &self.k_mant[j * hd..(j + 1) * hd],
                &self.k_exp[j * bph..(j + 1) * bph],
            );
            scores.push(nx::attention::scale_score_i64(s, self.scale));
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
    unsafe fn run_avx512(&self, kp: &PackedK, sc: &mut Scratch, out: &mut [i64]) {
        let (hd, bph) = (self.hd, self.hd / nx::A8_BLOCK);
        assert!(kp.len > self.p && kp.bph == bph && self.q_mant.len() == hd);
        if !x86::scores(self, kp, &mut sc.scores) {
            self.scores_portable(&mut sc.scores);
        }
        let n = sc.scores.len();
        if n == 0 {
            // An empty window: `attend` gives zeros.
            out.fill(0);
            return;
        }
        sc.e.resize(n, 0);
        let sum = nx::softmax_weights(&sc.scores, &mut sc.e);
        sc.acc.resize(hd, 0);
        x86::v_sums(
            &sc.e,
            &self.v_mant[self.lo * hd..(self.p + 1) * hd],
            &self.v_exp[self.lo * bph..(self.p + 1) * bph],
            hd,
            &mut sc.acc,
        );
        nx::attention::attend_output(&sc.acc, sum, out);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! Scores (16 positions per vector):
    //!
    //! ```text
    //! P    = Σ (k_i + 128) q_i - 128·Σ q_i           = Σ k_i q_i, |P| <= 32·127² < 2^19
    //! term = block_term(1, Eq, P, Ek)                 via simd::term, exact for k <= 28
    //! s    = sat_w48(Σ_b term)
    //! out  = sat_w48(rshr(s · mant, shift))           = scale_score (|s · mant| < 2^63)
    //! ```
    //!
    //! `V` sums, per 32-element block of position `j` (`up = Ev + 9`):
    //! `0 <= up <= 15`: `v · (e_j << up)` exact in i64 (`vpmuldq`);
    //! `up < 0`: `((e_j·v >> (-up - 1)) + 1) >> 1` in i32 (as
    //! [`nx::attention::attend_i64`]); otherwise `block_term_i64`.

    use super::{Head, PackedK};
    use crate::exec::simd::{term, unzip, LANES};
    use std::arch::x86_64::*;
    use taalasc_numerics as nx;

    /// Largest `k` of a score term: `|P| · 2^28 < 2^47`.
    const SCORE_K_MAX: i32 = 28;

    /// Scores of positions `lo..=p`; `false` (nothing written) when a term
    /// or the scale is outside the fast path's bounds.
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
    pub unsafe fn scores(h: &Head<'_>, kp: &PackedK, out: &mut Vec<i64>) -> bool {
        let bph = kp.bph;
        let q_e_max = h.q_exp.iter().map(|&e| e as i32).max().unwrap_or(0);
        let c = h.scale;
        if q_e_max + nx::W_FRAC + kp.e_max > SCORE_K_MAX
            || !(1..=62).contains(&c.shift)
            || c.mant >= 1 << 16
        {
            return false;
        }
        out.clear();
        let q = h.q_mant.as_ptr();
        let qsum: Vec<i32> = h
            .q_mant
            .chunks_exact(nx::A8_BLOCK)
            .map(|b| 128 * nx::sum_i8(b))
            .collect();
        let mant = _mm512_set1_epi64(c.mant as i64);
        let sh = _mm512_set1_epi64(c.shift as i64 - 1);
        let one64 = _mm512_set1_epi64(1);
        let (wmax, wmin) = (_mm512_set1_epi64(nx::W_MAX), _mm512_set1_epi64(nx::W_MIN));
        let mut tmp = [0i64; LANES];
        for jb in h.lo / LANES..=h.p / LANES {
            let mut acc_e = _mm512_setzero_si512();
            let mut acc_o = _mm512_setzero_si512();
            for (b, &qs) in qsum.iter().enumerate() {
                let w = kp.lines.as_ptr().add((jb * bph + b) * 8) as *const __m512i;
                let mut p0 = _mm512_setzero_si512();
                let mut p1 = _mm512_setzero_si512();
                for k in 0..4 {
                    let a = q.add(b * 32 + 8 * k) as *const i32;
                    p0 = _mm512_dpbusd_epi32(
                        p0,
                        _mm512_load_si512(w.add(2 * k)),
                        _mm512_set1_epi32(a.read_unaligned()),
                    );
                    p1 = _mm512_dpbusd_epi32(
                        p1,
                        _mm512_load_si512(w.add(2 * k + 1)),
                        _mm512_set1_epi32(a.add(1).read_unaligned()),
                    );
                }
                let p = _mm512_sub_epi32(_mm512_add_epi32(p0, p1), _mm512_set1_epi32(qs));
                let ek = _mm512_load_si512(kp.exps.as_ptr().add(jb * bph + b) as *const __m512i);
                let k = _mm512_add_epi32(ek, _mm512_set1_epi32(h.q_exp[b] as i32 + nx::W_FRAC));
                term(p, k, &mut acc_e, &mut acc_o);
            }
            let scale = |acc: __m512i| {
                let s = _mm512_max_epi64(_mm512_min_epi64(acc, wmax), wmin);
                let x = _mm512_mullo_epi64(s, mant);
                let r = _mm512_srai_epi64::<1>(_mm512_add_epi64(_mm512_srav_epi64(x, sh), one64));
                _mm512_max_epi64(_mm512_min_epi64(r, wmax), wmin)
            };
            unzip(scale(acc_e), scale(acc_o), &mut tmp);
            let j0 = jb * LANES;
            let (a, z) = (h.lo.max(j0) - j0, (h.p + 1).min(j0 + LANES) - j0);
            out.extend_from_slice(&tmp[a..z]);
        }
        true
    }

    /// Folds the i32 sums into i64 after this many positions (`512 · 2^21
    /// < 2^31`).
    const I32_RUN: usize = 512;

    /// `acc[i] = Σ_j block_term(e_j, -15, v_ji, Ev_jb)`, exactly.
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
    pub unsafe fn v_sums(e: &[u32], v_mant: &[i8], v_exp: &[i8], hd: usize, acc: &mut [i64]) {
        let bph = hd / nx::A8_BLOCK;
        assert!(v_mant.len() == e.len() * hd && v_exp.len() == e.len() * bph && acc.len() == hd);
        for (b, accb) in acc.chunks_exact_mut(nx::A8_BLOCK).enumerate() {
            let z = _mm512_setzero_si512();
            let (mut ae0, mut ao0, mut ae1, mut ao1) = (z, z, z, z);
            let (mut s0, mut s1) = (z, z);
            let mut wide = [0i64; 32];
            let fold = |s0: &mut __m512i, s1: &mut __m512i, wide: &mut [i64; 32]| {
                let mut t = [0i32; 32];
                _mm512_storeu_si512(t.as_mut_ptr() as *mut __m512i, *s0);
                _mm512_storeu_si512(t.as_mut_ptr().add(16) as *mut __m512i, *s1);
                for (w, &t) in wide.iter_mut().zip(&t) {
                    *w += t as i64;
                }
                *s0 = _mm512_setzero_si512();
                *s1 = _mm512_setzero_si512();
            };
            for (j, &ej) in e.iter().enumerate() {
                if ej != 0 {
                    let ev = v_exp[j * bph + b] as i32;
                    let up = ev - nx::P15_FRAC + nx::W_FRAC;
                    let vp = v_mant.as_ptr().add(j * hd + b * 32);
                    let v0 = _mm512_cvtepi8_epi32(_mm_loadu_si128(vp as *const __m128i));
                    let v1 = _mm512_cvtepi8_epi32(_mm_loadu_si128(vp.add(16) as *const __m128i));
                    if (0..=15).contains(&up) {
                        let c = _mm512_set1_epi32((ej as i32) << up);
                        ae0 = _mm512_add_epi64(ae0, _mm512_mul_epi32(v0, c));
                        ao0 =
                            _mm512_add_epi64(ao0, _mm512_mul_epi32(_mm512_srli_epi64::<32>(v0), c));
                        ae1 = _mm512_add_epi64(ae1, _mm512_mul_epi32(v1, c));
                        ao1 =
                            _mm512_add_epi64(ao1, _mm512_mul_epi32(_mm512_srli_epi64::<32>(v1), c));
                    } else if up < 0 {
                        let sh = _mm_cvtsi32_si128((-1 - up).min(31));
                        let ee = _mm512_set1_epi32(ej as i32);
                        let one = _mm512_set1_epi32(1);
                        let r0 = _mm512_srai_epi32::<1>(_mm512_add_epi32(
                            _mm512_sra_epi32(_mm512_mullo_epi32(v0, ee), sh),
                            one,
                        ));
                        let r1 = _mm512_srai_epi32::<1>(_mm512_add_epi32(
                            _mm512_sra_epi32(_mm512_mullo_epi32(v1, ee), sh),
                            one,
                        ));
                        s0 = _mm512_add_epi32(s0, r0);
                        s1 = _mm512_add_epi32(s1, r1);
                    } else {
                        let vb = std::slice::from_raw_parts(vp, 32);
                        for (w, &v) in wide.iter_mut().zip(vb) {
                            *w +=
                                nx::linear::block_term_i64(ej as i32, -nx::P15_FRAC, v as i64, ev);
                        }
                    }
                }
                if (j + 1) % I32_RUN == 0 {
                    fold(&mut s0, &mut s1, &mut wide);
                }
            }
            fold(&mut s0, &mut s1, &mut wide);
            let mut lo = [0i64; LANES];
            let mut hi = [0i64; LANES];
            unzip(ae0, ao0, &mut lo);
            unzip(ae1, ao1, &mut hi);
            for (i, a) in accb.iter_mut().enumerate() {
                *a = wide[i] + if i < LANES { lo[i] } else { hi[i - LANES] };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use taalasc_testrng::xorshift;

    fn a8_rows(s: &mut u64, n: usize, hd: usize, scale: u32) -> nx::A8Vec {
        let x: Vec<i64> = (0..n * hd)
            .map(|_| {
                let r = xorshift(s);
                ((r as i64) >> (3 + scale + (r % 3) as u32)).clamp(nx::W_MIN, nx::W_MAX)
            })
            .collect();
        nx::to_a8_vec(&x, nx::W_FRAC).unwrap()
    }

    #[test]
    fn every_path_matches_the_definitions() {
        let mut s = 41u64;
        for trial in 0..400 {
            let hd = [32usize, 64, 128][trial % 3];
            let bph = hd / nx::A8_BLOCK;
            let n = 1 + (xorshift(&mut s) % 90) as usize;
            // Magnitudes from saturated to tiny, separately for q, k, v.
            let (sq, sk, sv) = (
                (xorshift(&mut s) % 50) as u32,
                (xorshift(&mut s) % 50) as u32,
                (xorshift(&mut s) % 50) as u32,
            );
            let q = a8_rows(&mut s, 1, hd, sq);
            let k = a8_rows(&mut s, n, hd, sk);
            let v = a8_rows(&mut s, n, hd, sv);
            let mut kp = PackedK::default();
            for j in 0..n {
                kp.push(
                    &k.mant[j * hd..(j + 1) * hd],
                    &k.exp[j * bph..(j + 1) * bph],
                );
            }
            let scale = match trial % 4 {
                0 => ScoreScale::new(1.0 + (xorshift(&mut s) % 1000) as f64 / 7.0),
                _ => ScoreScale::inv_sqrt(hd),
            };
            let p = n - 1 - (xorshift(&mut s) % 3) as usize % n;
            // Windows of every size, including the empty one (`lo = p + 1`).
            let lo = if trial % 97 == 5 {
                p + 1
            } else {
                (xorshift(&mut s) % 20) as usize % (p + 1)
            };
            let scores: Vec<i64> = (lo..=p)
                .map(|j| {
                    let d = nx::dot_a8(
                        &q.mant,
                        &q.exp,
                        &k.mant[j * hd..(j + 1) * hd],
                        &k.exp[j * bph..(j + 1) * bph],
                    );
                    nx::scale_score(d, scale)
                })
                .collect();
            let mut want = vec![0i64; hd];
            nx::attend(
                &scores,
                &v.mant[lo * hd..(p + 1) * hd],
                &v.exp[lo * bph..(p + 1) * bph],
                hd,
                &mut want,
            );
            for packed in [None, Some(&kp)] {
                let head = Head {
                    q_mant: &q.mant,
                    q_exp: &q.exp,
                    k_mant: &k.mant,
                    k_exp: &k.exp,
                    v_mant: &v.mant,
                    v_exp: &v.exp,
                    k_pack: packed,
                    hd,
                    lo,
                    p,
                    scale,
                };
                let mut got = vec![7i64; hd];
                head.run(&mut Scratch::default(), &mut got);
                assert_eq!(got, want, "trial {trial} packed {}", packed.is_some());
            }
        }
    }
}
