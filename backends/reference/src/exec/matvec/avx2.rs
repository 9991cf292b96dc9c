//! The packed kernel for CPUs with AVX2 but not AVX-512 VNNI: 8 rows per
//! vector (`ymm` i32 lanes), several positions per weight load.
//!
//! Per 32-element block and position, with `a_i` the `A8` mantissas, `c_i`
//! the stored codes, `A` the block sum, `E` the block exponent:
//!
//! ```text
//! P    = Σ c_i a_i + code_bias·A   = Σ (c_i + code_bias) a_i      exact
//!        (vpmaddwd on codes and mantissas widened to i16: no saturation)
//! x    = mant(d_g) · P                 |x| <= 2047·32·128·255 < 2^31
//! k    = exp(d_g) + E + 24
//! term = k >= 0 ? x·2^k : ((x >> (-k-1)) + 1) >> 1
//! ```
//!
//! which is `block_term(mant, exp, P, E)` whenever `k <= 16` (the bounds of
//! the AVX-512 kernel, [`super::avx512`], whose derivation this follows).
//! The offset term uses `x = mant(m_g) · A`. A (row group, position) whose
//! largest `k` could exceed 16 is computed by [`nx::linear_row`] itself.
//! Terms are summed in i64 and each row is `sat_w48(acc + bias)`, exactly
//! as in `linear_row`.

use super::{row_of, Acts, LaneScales, QTensor};
use std::arch::x86_64::*;
use taalasc_numerics as nx;

/// Rows per vector.
const LANES: usize = 8;
/// Positions per weight load.
const NT: usize = 4;
/// Lines of one 32-element block: two elements of each of the 8 rows.
const LINES: usize = 16;

/// Whether this kernel can run here.
pub fn available() -> bool {
    is_x86_feature_detected!("avx2")
}

/// A matrix repacked for the kernel.
pub struct Packed {
    s: LaneScales<LANES>,
    /// `[row group][block][line]`, 16 bytes per line: byte `2·lane + j` is
    /// element `2·line + j` of the block of row `8·group + lane` (padding
    /// rows are zeros).
    codes: Vec<[i8; 16]>,
}

impl Packed {
    /// `None` when the matrix is outside the kernel's bounds (then the
    /// portable path runs).
    pub fn new(q: &QTensor) -> Option<Packed> {
        let s = LaneScales::<LANES>::new(q)?;
        let nb = s.nb;
        let mut codes = vec![[0; 16]; q.rows.div_ceil(LANES) * nb * LINES];
        for r in 0..q.rows {
            let (rg, lane) = (r / LANES, r % LANES);
            // Elements 2k, 2k + 1 of each block into line k, lane `lane`.
            let lines = &mut codes[rg * nb * LINES..(rg + 1) * nb * LINES];
            for (line, two) in lines.iter_mut().zip(row_of(q, r).codes.chunks_exact(2)) {
                line[2 * lane..2 * lane + 2].copy_from_slice(two);
            }
        }
        Some(Packed { s, codes })
    }

    /// Rows `r0..r1` (`r0` a multiple of 8, `r1` too or the last row) of
    /// positions `t0..t0 + out.len() / (r1 - r0)`, written
    /// `[position × (r1 - r0)]`.
    pub fn run(
        &self,
        q: &QTensor,
        bias: Option<&[i64]>,
        acts: &Acts,
        t0: usize,
        (r0, r1): (usize, usize),
        out: &mut [i64],
    ) {
        let s = &self.s;
        assert!(available() && acts.cols == s.cols);
        assert!(r0 < r1 && r1 <= q.rows && r0.is_multiple_of(LANES));
        assert!(r1.is_multiple_of(LANES) || r1 == q.rows);
        let nt = out.len() / (r1 - r0);
        assert!(t0 + nt <= acts.n && acts.mant.len() == acts.n * s.cols);
        assert!(acts.exp.len() == acts.n * s.nb && acts.sums.len() == acts.exp.len());
        // SAFETY: AVX2 was checked; every index is in bounds by the asserted
        // shapes.
        unsafe { self.run_avx2(q, bias, acts, t0, (r0, r1), out) }
    }

    #[target_feature(enable = "avx2")]
    unsafe fn run_avx2(
        &self,
        q: &QTensor,
        bias: Option<&[i64]>,
        acts: &Acts,
        t0: usize,
        (row0, row1): (usize, usize),
        out: &mut [i64],
    ) {
        let rows = q.rows;
        let ow = row1 - row0;
        let nt = out.len() / ow;
        let cols = self.s.cols;
        // The positions' mantissas widened to i16, for vpmaddwd.
        let mant16: Vec<i16> = acts.mant[t0 * cols..(t0 + nt) * cols]
            .iter()
            .map(|&a| a as i16)
            .collect();
        let e_max = LaneScales::<LANES>::e_max(acts, t0, nt);
        let mut fast = Vec::with_capacity(nt);
        let mut sums = [0i64; LANES];
        for rg in row0 / LANES..row1.div_ceil(LANES) {
            let (r0, r1) = (rg * LANES, ((rg + 1) * LANES).min(rows));
            self.s.split(
                rg,
                (q, bias, acts),
                (t0, &e_max),
                (row0, ow),
                out,
                &mut fast,
            );
            let mut emit = |acc: &[(__m256i, __m256i)], ts: &[usize]| {
                for (&(e, o), &i) in acc.iter().zip(ts) {
                    unzip(e, o, &mut sums);
                    let dst = &mut out[i * ow + r0 - row0..i * ow + r1 - row0];
                    for ((d, &a), r) in dst.iter_mut().zip(&sums).zip(r0..r1) {
                        *d = nx::sat_w48(a as i128 + bias.map_or(0, |b| b[r]) as i128);
                    }
                }
            };
            let mut tiles = fast.chunks_exact(NT);
            for ts in &mut tiles {
                let ts: &[usize; NT] = ts.try_into().expect("NT positions");
                let acc = if self.s.asym {
                    self.tile::<NT, true>(rg, acts, &mant16, t0, ts)
                } else {
                    self.tile::<NT, false>(rg, acts, &mant16, t0, ts)
                };
                emit(&acc, ts);
            }
            for &i in tiles.remainder() {
                let acc = if self.s.asym {
                    self.tile::<1, true>(rg, acts, &mant16, t0, &[i])
                } else {
                    self.tile::<1, false>(rg, acts, &mant16, t0, &[i])
                };
                emit(&acc, &[i]);
            }
        }
    }

    /// The sums of terms of the 8 rows of group `rg` for the positions
    /// `t0 + ts[i]`, as i64 (even lanes, odd lanes).
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn tile<const N: usize, const ASYM: bool>(
        &self,
        rg: usize,
        acts: &Acts,
        mant16: &[i16],
        t0: usize,
        ts: &[usize; N],
    ) -> [(__m256i, __m256i); N] {
        let s = &self.s;
        let (nb, cols) = (s.nb, s.cols);
        let wide_mant = |v: &Vec<[i16; LANES]>, g: usize| {
            _mm256_cvtepi16_epi32(_mm_loadu_si128(v.as_ptr().add(g) as *const __m128i))
        };
        let wide_exp = |v: &Vec<[i8; LANES]>, g: usize| {
            _mm256_cvtepi8_epi32(_mm_loadl_epi64(v.as_ptr().add(g) as *const __m128i))
        };
        let mut acc_e = [_mm256_setzero_si256(); N];
        let mut acc_o = [_mm256_setzero_si256(); N];
        let codes = self.codes.as_ptr().add(rg * nb * LINES) as *const __m128i;
        for b in 0..nb {
            let g = rg * s.groups + b / s.blocks_per_group;
            let w = codes.add(b * LINES);
            let mut p = [_mm256_setzero_si256(); N];
            for k in 0..LINES {
                let wk = _mm256_cvtepi8_epi16(_mm_loadu_si128(w.add(k)));
                for i in 0..N {
                    let a = mant16.as_ptr().add(ts[i] * cols + b * 32 + 2 * k) as *const i32;
                    let a = _mm256_set1_epi32(a.read_unaligned());
                    p[i] = _mm256_add_epi32(p[i], _mm256_madd_epi16(wk, a));
                }
            }
            let (dm, dk) = (wide_mant(&s.dm, g), wide_exp(&s.dk, g));
            for i in 0..N {
                let ib = (t0 + ts[i]) * nb + b;
                let e = _mm256_set1_epi32(*acts.exp.get_unchecked(ib) as i32);
                let sum = *acts.sums.get_unchecked(ib);
                let p = _mm256_add_epi32(p[i], _mm256_set1_epi32(s.code_bias * sum));
                term(
                    _mm256_mullo_epi32(p, dm),
                    _mm256_add_epi32(dk, e),
                    &mut acc_e[i],
                    &mut acc_o[i],
                );
                if ASYM {
                    let (mm, mk) = (wide_mant(&s.mm, g), wide_exp(&s.mk, g));
                    term(
                        _mm256_mullo_epi32(mm, _mm256_set1_epi32(sum)),
                        _mm256_add_epi32(mk, e),
                        &mut acc_e[i],
                        &mut acc_o[i],
                    );
                }
            }
        }
        std::array::from_fn(|i| (acc_e[i], acc_o[i]))
    }
}

/// Adds `block_term` of 8 lanes to i64 accumulators of the even and odd
/// lanes: `x·2^k` for `k >= 0`, `rshr(x, -k)` for `k < 0`. Exact when
/// `k <= 30` and `|x|·2^max(k, 0) < 2^47`, which the callers guarantee
/// (the AVX-512 kernel's `term`, in AVX2):
/// - `k < 0`: `rshr(x, n) = ((x >> (n - 1)) + 1) >> 1` with `n - 1 = !k`;
///   `vpsravd` fills with the sign for counts over 31, where both sides are 0;
/// - `k >= 0`: `x·2^k` by `vpmuldq` with `2^k` from `vpsllvd`.
#[target_feature(enable = "avx2")]
#[inline]
fn term(x: __m256i, k: __m256i, acc_e: &mut __m256i, acc_o: &mut __m256i) {
    let one = _mm256_set1_epi32(1);
    let nk = _mm256_xor_si256(k, _mm256_set1_epi32(-1));
    let r = _mm256_srai_epi32::<1>(_mm256_add_epi32(_mm256_srav_epi32(x, nk), one));
    let neg = _mm256_cmpgt_epi32(_mm256_setzero_si256(), k);
    // y·m: x·2^k for k >= 0, r·1 for k < 0.
    let y = _mm256_blendv_epi8(x, r, neg);
    let m = _mm256_blendv_epi8(_mm256_sllv_epi32(one, k), one, neg);
    *acc_e = _mm256_add_epi64(*acc_e, _mm256_mul_epi32(y, m));
    *acc_o = _mm256_add_epi64(
        *acc_o,
        _mm256_mul_epi32(_mm256_srli_epi64::<32>(y), _mm256_srli_epi64::<32>(m)),
    );
}

/// Even/odd-lane i64 accumulators in lane order.
#[target_feature(enable = "avx2")]
#[inline]
fn unzip(acc_e: __m256i, acc_o: __m256i, out: &mut [i64; LANES]) {
    let mut ev = [0i64; 4];
    let mut od = [0i64; 4];
    // SAFETY: 4 i64 each, unaligned stores.
    unsafe {
        _mm256_storeu_si256(ev.as_mut_ptr() as *mut __m256i, acc_e);
        _mm256_storeu_si256(od.as_mut_ptr() as *mut __m256i, acc_o);
    }
    for j in 0..4 {
        out[2 * j] = ev[j];
        out[2 * j + 1] = od[j];
    }
}
