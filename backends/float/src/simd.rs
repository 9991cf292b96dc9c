//! AVX2 row kernels: each decodes a stored row eight elements at a time
//! (bit for bit as the source's own decoder, i.e. `taalasc-frontends`'
//! `dequant`, does) and multiplies them into `N` activation rows at once;
//! and AVX-512 kernels for the formats a decode step spends its time in,
//! sixteen elements at a time.
//!
//! Every output keeps the portable dot product's order
//! ([`crate::rows::dot_scalar`]): lane `k` of sixteen accumulator lanes (two
//! 8-wide AVX2 registers, or one AVX-512 register) sums the products of the
//! elements `j ≡ k (mod 16)` in order, each with one fused multiply-add, and
//! the sixteen lanes are summed left to right at the end. So the AVX-512,
//! AVX2 and portable paths, and a row computed alone or with three others,
//! give the same bits.
//!
//! Only compiled for x86-64; only called after
//! [`crate::rows::Isa::detect`] saw AVX2, FMA and F16C at run time (and
//! AVX-512F/VL for the AVX-512 kernels).

#![allow(clippy::missing_safety_doc)]

use std::arch::x86_64::*;
use taalasc_ir::dtype::k4_scale_min;

/// The sixteen lanes of two 8-wide accumulators (lanes `0..8`, then
/// `8..16`) summed left to right, as `[f32; 16]::iter().sum()`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn hsum(v: [__m256; 2]) -> f32 {
    let mut a = [0f32; 16];
    _mm256_storeu_ps(a.as_mut_ptr(), v[0]);
    _mm256_storeu_ps(a.as_mut_ptr().add(8), v[1]);
    a.iter().sum()
}

/// The sixteen lanes of an AVX-512 accumulator summed left to right, as
/// [`hsum`].
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl")]
#[inline]
unsafe fn hsum16(v: __m512) -> f32 {
    let mut a = [0f32; 16];
    _mm512_storeu_ps(a.as_mut_ptr(), v);
    a.iter().sum()
}

/// [`hsum16`] of every accumulator.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl")]
#[inline]
unsafe fn hsums16<const R: usize, const N: usize>(acc: &[[__m512; N]; R]) -> [[f32; N]; R] {
    let mut out = [[0f32; N]; R];
    for r in 0..R {
        for n in 0..N {
            out[r][n] = hsum16(acc[r][n]);
        }
    }
    out
}

/// How many calls' worth of rows ahead the kernels prefetch into L2 (and
/// one call ahead into L1); a decode step calls them on four consecutive
/// rows at a time. Measured on SmolLM2's Q8_0 head streamed from memory by
/// one thread (RFC 0008): 8.6 GMAC/s with a single L1 prefetch four calls
/// ahead, 12.1 with both, about its speed from cache (12.4).
const PREFETCH_FAR: usize = 16;

/// Hints that the rows `near` and `far` bytes past `b` will be read soon:
/// the first into L1, the second into L2. Hints only, which never fault.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn prefetch_ahead(b: *const u8, near: usize, far: usize) {
    _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(near) as *const i8);
    _mm_prefetch::<_MM_HINT_T1>(b.wrapping_add(far) as *const i8);
}

/// The f16 at `p`, widened (exact).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn half(p: *const u8) -> f32 {
    let bits = u16::from_le_bytes([*p, *p.add(1)]);
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// The two f16 at `p` (`d`, `m`), widened and broadcast.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn half_pair(p: *const u8) -> (__m256, __m256) {
    let bits = u32::from_le_bytes([*p, *p.add(1), *p.add(2), *p.add(3)]);
    let v = _mm256_castps128_ps256(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)));
    (
        _mm256_permutevar8x32_ps(v, _mm256_setzero_si256()),
        _mm256_permutevar8x32_ps(v, _mm256_set1_epi32(1)),
    )
}

/// Bytes `8g..8g + 8` of `v` widened to eight i32 lanes (unsigned bytes).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn u8x8(v: __m128i, g: i32) -> __m256i {
    match g {
        0 => _mm256_cvtepu8_epi32(v),
        _ => _mm256_cvtepu8_epi32(_mm_srli_si128::<8>(v)),
    }
}

/// Byte group `g` (0..4) of a 32-byte vector as eight f32 lanes, less `off`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn group32(v: __m256i, g: usize, off: i32) -> __m256 {
    let half = if g < 2 {
        _mm256_castsi256_si128(v)
    } else {
        _mm256_extracti128_si256::<1>(v)
    };
    let w = u8x8(half, (g & 1) as i32);
    _mm256_cvtepi32_ps(_mm256_sub_epi32(w, _mm256_set1_epi32(off)))
}

/// Low and high nibbles of 16 bytes at `p`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn nibbles16(p: *const u8) -> (__m128i, __m128i) {
    let q = _mm_loadu_si128(p as *const __m128i);
    let m = _mm_set1_epi8(0x0F);
    (
        _mm_and_si128(q, m),
        _mm_and_si128(_mm_srli_epi16::<4>(q), m),
    )
}

/// The fifth bits of a Q5_0/Q5_1 group: bit `8g + k` of `qh` as 16 in lane `k`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn fifth(qh: u32, g: usize) -> __m256i {
    let bits = _mm256_set1_epi32((qh >> (8 * g)) as i32);
    let sh = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let one = _mm256_and_si256(_mm256_srlv_epi32(bits, sh), _mm256_set1_epi32(1));
    _mm256_slli_epi32::<4>(one)
}

/// The 8-bit values of element groups 0..4 of a 32-element nibble block:
/// low nibbles of bytes 0..8, 8..16, then high nibbles.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn nibble_group(lo: __m128i, hi: __m128i, g: usize) -> __m256i {
    match g {
        0 => u8x8(lo, 0),
        1 => u8x8(lo, 1),
        2 => u8x8(hi, 0),
        _ => u8x8(hi, 1),
    }
}

/// Defines `$name::<N>(row, xs) -> [f32; N]`: the dot products of one
/// stored row (whole blocks of `$bytes` bytes, `8 * $groups` elements each)
/// with `N` activation rows. `$body` fills `$v: [__m256; $groups]` with the
/// block `$b`'s values in element order.
macro_rules! fused {
    ($name:ident, $dec:ident, $bytes:expr, $groups:expr, |$b:ident, $v:ident| $body:block) => {
        /// Decodes a stored row (whole blocks) into `out` (as long as the row).
        #[target_feature(enable = "avx2,fma,f16c")]
        pub(crate) unsafe fn $dec(row: &[u8], out: &mut [f32]) {
            let blocks = row.len() / $bytes;
            assert_eq!(out.len(), blocks * 8 * $groups);
            for k in 0..blocks {
                let $b = row.as_ptr().add(k * $bytes);
                let mut $v = [_mm256_setzero_ps(); $groups];
                $body
                for (g, w) in $v.iter().enumerate() {
                    _mm256_storeu_ps(out.as_mut_ptr().add((k * $groups + g) * 8), *w);
                }
            }
        }

        /// Dot products of `R` stored rows (whole blocks, equally long, a
        /// multiple of 16 elements) with `N` activation rows: `2 * R * N`
        /// independent accumulator chains, so that the adds of one chain
        /// overlap with the others'.
        #[target_feature(enable = "avx2,fma,f16c")]
        pub(crate) unsafe fn $name<const R: usize, const N: usize>(
            rows: &[&[u8]; R],
            xs: &[&[f32]; N],
        ) -> [[f32; N]; R] {
            // `acc[r][i][h]`: lanes `8h..8h + 8` of the sixteen.
            let mut acc = [[[_mm256_setzero_ps(); 2]; N]; R];
            let blocks = rows[0].len() / $bytes;
            // The rows of the next call and of a later one (a matrix's
            // rows lie one after another).
            let (near, far) = (R * rows[0].len(), PREFETCH_FAR * R * rows[0].len());
            for k in 0..blocks {
                let e = k * 8 * $groups;
                for r in 0..R {
                    let $b = rows[r].as_ptr().add(k * $bytes);
                    prefetch_ahead($b, near, far);
                    let mut $v = [_mm256_setzero_ps(); $groups];
                    $body
                    for (g, w) in $v.iter().enumerate() {
                        // Elements `e + 8g..`: which half of the sixteen lanes.
                        let h = (k * $groups + g) % 2;
                        for i in 0..N {
                            let x = _mm256_loadu_ps(xs[i].as_ptr().add(e + 8 * g));
                            acc[r][i][h] = _mm256_fmadd_ps(*w, x, acc[r][i][h]);
                        }
                    }
                }
            }
            let mut out = [[0f32; N]; R];
            for r in 0..R {
                for i in 0..N {
                    out[r][i] = hsum(acc[r][i]);
                }
            }
            out
        }
    };
}

fused!(f32_rows, f32_decode, 32, 1, |b, v| {
    v[0] = _mm256_loadu_ps(b as *const f32);
});

fused!(f16_rows, f16_decode, 16, 1, |b, v| {
    v[0] = _mm256_cvtph_ps(_mm_loadu_si128(b as *const __m128i));
});

fused!(bf16_rows, bf16_decode, 16, 1, |b, v| {
    let h = _mm256_cvtepu16_epi32(_mm_loadu_si128(b as *const __m128i));
    v[0] = _mm256_castsi256_ps(_mm256_slli_epi32::<16>(h));
});

fused!(q8_0_rows, q8_0_decode, 34, 4, |b, v| {
    let d = _mm256_set1_ps(half(b));
    for (g, o) in v.iter_mut().enumerate() {
        let q = _mm_loadl_epi64(b.add(2 + 8 * g) as *const __m128i);
        let q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
        *o = _mm256_mul_ps(q, d);
    }
});

fused!(q4_0_rows, q4_0_decode, 18, 4, |b, v| {
    let d = _mm256_set1_ps(half(b));
    let (lo, hi) = nibbles16(b.add(2));
    for (g, o) in v.iter_mut().enumerate() {
        let q = _mm256_sub_epi32(nibble_group(lo, hi, g), _mm256_set1_epi32(8));
        *o = _mm256_mul_ps(_mm256_cvtepi32_ps(q), d);
    }
});

fused!(q4_1_rows, q4_1_decode, 20, 4, |b, v| {
    let (d, m) = half_pair(b);
    let (lo, hi) = nibbles16(b.add(4));
    for (g, o) in v.iter_mut().enumerate() {
        let q = _mm256_cvtepi32_ps(nibble_group(lo, hi, g));
        *o = _mm256_add_ps(_mm256_mul_ps(q, d), m);
    }
});

/// [`q4_1_rows`] with AVX-512: each block's
/// sixteen possible values `d·q + m` (`q` = 0..15, the decoder's values)
/// are computed once in one register, and each element is looked up by its
/// nibble (`vpermps`, which reads the low four bits of each index), sixteen
/// at a time: elements `0..16` are the low nibbles of the block's bytes and
/// `16..32` the high ones, so each lands in its own accumulator lane.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl")]
pub(crate) unsafe fn q4_1_rows_avx512<const R: usize, const N: usize>(
    rows: &[&[u8]; R],
    xs: &[&[f32]; N],
) -> [[f32; N]; R] {
    let codes = _mm512_setr_ps(
        0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0,
    );
    let mut acc = [[_mm512_setzero_ps(); N]; R];
    let blocks = rows[0].len() / 20;
    // The rows of the next call and of a later one (a matrix's rows lie
    // one after another).
    let (near, far) = (R * rows[0].len(), PREFETCH_FAR * R * rows[0].len());
    for k in 0..blocks {
        let e = k * 32;
        for r in 0..R {
            let b = rows[r].as_ptr().add(k * 20);
            prefetch_ahead(b, near, far);
            let dm = _mm_cvtph_ps(_mm_cvtsi32_si128((b as *const u32).read_unaligned() as i32));
            let d = _mm512_broadcastss_ps(dm);
            let m = _mm512_broadcastss_ps(_mm_movehdup_ps(dm));
            // `q·d` is exact (a 4-bit integer times an f16), so the fused
            // `q·d + m` rounds once, as the decoder's multiply-then-add does.
            let table = _mm512_fmadd_ps(codes, d, m);
            let q = _mm512_cvtepu8_epi32(_mm_loadu_si128(b.add(4) as *const __m128i));
            let w = [
                _mm512_permutexvar_ps(q, table),
                _mm512_permutexvar_ps(_mm512_srli_epi32::<4>(q), table),
            ];
            for (g, w) in w.iter().enumerate() {
                for n in 0..N {
                    let x = _mm512_loadu_ps(xs[n].as_ptr().add(e + 16 * g));
                    acc[r][n] = _mm512_fmadd_ps(*w, x, acc[r][n]);
                }
            }
        }
    }
    hsums16(&acc)
}

/// [`q8_0_rows`] with AVX-512: sixteen elements at a time, each `q·d` as
/// the decoder computes it (exact: an 8-bit integer times an f16).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl")]
pub(crate) unsafe fn q8_0_rows_avx512<const R: usize, const N: usize>(
    rows: &[&[u8]; R],
    xs: &[&[f32]; N],
) -> [[f32; N]; R] {
    let mut acc = [[_mm512_setzero_ps(); N]; R];
    let blocks = rows[0].len() / 34;
    let (near, far) = (R * rows[0].len(), PREFETCH_FAR * R * rows[0].len());
    for k in 0..blocks {
        let e = k * 32;
        for r in 0..R {
            let b = rows[r].as_ptr().add(k * 34);
            prefetch_ahead(b, near, far);
            let d = _mm512_set1_ps(half(b));
            for g in 0..2 {
                let q = _mm512_cvtepi8_epi32(_mm_loadu_si128(b.add(2 + 16 * g) as *const __m128i));
                let w = _mm512_mul_ps(_mm512_cvtepi32_ps(q), d);
                for n in 0..N {
                    let x = _mm512_loadu_ps(xs[n].as_ptr().add(e + 16 * g));
                    acc[r][n] = _mm512_fmadd_ps(w, x, acc[r][n]);
                }
            }
        }
    }
    hsums16(&acc)
}

/// [`f32_rows`] with AVX-512: sixteen elements at a time, one register per
/// accumulator (a prefill's tile of three rows by four activation rows
/// needs twelve, which fit where AVX2's twenty-four halves did not).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl")]
pub(crate) unsafe fn f32_rows_avx512<const R: usize, const N: usize>(
    rows: &[&[u8]; R],
    xs: &[&[f32]; N],
) -> [[f32; N]; R] {
    let mut acc = [[_mm512_setzero_ps(); N]; R];
    let chunks = rows[0].len() / 64;
    let (near, far) = (R * rows[0].len(), PREFETCH_FAR * R * rows[0].len());
    for k in 0..chunks {
        for r in 0..R {
            let b = rows[r].as_ptr().add(k * 64);
            prefetch_ahead(b, near, far);
            let w = _mm512_loadu_ps(b as *const f32);
            for n in 0..N {
                let x = _mm512_loadu_ps(xs[n].as_ptr().add(16 * k));
                acc[r][n] = _mm512_fmadd_ps(w, x, acc[r][n]);
            }
        }
    }
    hsums16(&acc)
}

fused!(q5_0_rows, q5_0_decode, 22, 4, |b, v| {
    let d = _mm256_set1_ps(half(b));
    let qh = u32::from_le_bytes([*b.add(2), *b.add(3), *b.add(4), *b.add(5)]);
    let (lo, hi) = nibbles16(b.add(6));
    for (g, o) in v.iter_mut().enumerate() {
        let q = _mm256_or_si256(nibble_group(lo, hi, g), fifth(qh, g));
        let q = _mm256_sub_epi32(q, _mm256_set1_epi32(16));
        *o = _mm256_mul_ps(_mm256_cvtepi32_ps(q), d);
    }
});

fused!(q5_1_rows, q5_1_decode, 24, 4, |b, v| {
    let (d, m) = half_pair(b);
    let qh = u32::from_le_bytes([*b.add(4), *b.add(5), *b.add(6), *b.add(7)]);
    let (lo, hi) = nibbles16(b.add(8));
    for (g, o) in v.iter_mut().enumerate() {
        let q = _mm256_or_si256(nibble_group(lo, hi, g), fifth(qh, g));
        *o = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(q), d), m);
    }
});

/// One 64-element chunk of a Q4_K/Q5_K block: `q` (32 bytes of 5-bit or
/// 4-bit values, low or high half) into groups `4 * slot..4 * slot + 4`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn k_half(q: __m256i, scale: f32, min: f32, out: &mut [__m256]) {
    let (s, m) = (_mm256_set1_ps(scale), _mm256_set1_ps(min));
    for (g, o) in out.iter_mut().enumerate() {
        let x = group32(q, g, 0);
        *o = _mm256_sub_ps(_mm256_mul_ps(s, x), m);
    }
}

fused!(q4_k_rows, q4_k_decode, 144, 32, |b, v| {
    let (d, dmin) = (half(b), half(b.add(2)));
    let scales = std::slice::from_raw_parts(b.add(4), 12);
    let mask = _mm256_set1_epi8(0x0F);
    for chunk in 0..4 {
        let q = _mm256_loadu_si256(b.add(16 + 32 * chunk) as *const __m256i);
        let lo = _mm256_and_si256(q, mask);
        let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q), mask);
        let (sc1, m1) = k4_scale_min(2 * chunk, scales);
        let (sc2, m2) = k4_scale_min(2 * chunk + 1, scales);
        let g = 8 * chunk;
        k_half(lo, d * sc1 as f32, dmin * m1 as f32, &mut v[g..g + 4]);
        k_half(hi, d * sc2 as f32, dmin * m2 as f32, &mut v[g + 4..g + 8]);
    }
});

fused!(q5_k_rows, q5_k_decode, 176, 32, |b, v| {
    let (d, dmin) = (half(b), half(b.add(2)));
    let scales = std::slice::from_raw_parts(b.add(4), 12);
    let qh = _mm256_loadu_si256(b.add(16) as *const __m256i);
    let mask = _mm256_set1_epi8(0x0F);
    let one = _mm256_set1_epi8(1);
    for chunk in 0..4 {
        let q = _mm256_loadu_si256(b.add(48 + 32 * chunk) as *const __m256i);
        let sh = _mm_cvtsi32_si128(2 * chunk as i32);
        let sh2 = _mm_cvtsi32_si128(2 * chunk as i32 + 1);
        let h1 = _mm256_and_si256(_mm256_srl_epi16(qh, sh), one);
        let h2 = _mm256_and_si256(_mm256_srl_epi16(qh, sh2), one);
        let lo = _mm256_or_si256(_mm256_and_si256(q, mask), _mm256_slli_epi16::<4>(h1));
        let hi = _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi16::<4>(q), mask),
            _mm256_slli_epi16::<4>(h2),
        );
        let (sc1, m1) = k4_scale_min(2 * chunk, scales);
        let (sc2, m2) = k4_scale_min(2 * chunk + 1, scales);
        let g = 8 * chunk;
        k_half(lo, d * sc1 as f32, dmin * m1 as f32, &mut v[g..g + 4]);
        k_half(hi, d * sc2 as f32, dmin * m2 as f32, &mut v[g + 4..g + 8]);
    }
});

/// Bits `s, s + 1` of every byte of `qh`, as bits 4 and 5.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn two_bits(qh: __m256i, s: i32) -> __m256i {
    let x = _mm256_srl_epi16(qh, _mm_cvtsi32_si128(s));
    _mm256_slli_epi16::<4>(_mm256_and_si256(x, _mm256_set1_epi8(3)))
}

fused!(q6_k_rows, q6_k_decode, 210, 32, |b, v| {
    let d = half(b.add(208));
    let mask = _mm256_set1_epi8(0x0F);
    for h in 0..2 {
        let qa = _mm256_loadu_si256(b.add(64 * h) as *const __m256i);
        let qb = _mm256_loadu_si256(b.add(64 * h + 32) as *const __m256i);
        let qh = _mm256_loadu_si256(b.add(128 + 32 * h) as *const __m256i);
        let sc = b.add(192 + 8 * h);
        let parts = [
            _mm256_or_si256(_mm256_and_si256(qa, mask), two_bits(qh, 0)),
            _mm256_or_si256(_mm256_and_si256(qb, mask), two_bits(qh, 2)),
            _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16::<4>(qa), mask),
                two_bits(qh, 4),
            ),
            _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16::<4>(qb), mask),
                two_bits(qh, 6),
            ),
        ];
        for (k, q) in parts.iter().enumerate() {
            for g in 0..4 {
                // Elements 32k + 8g.. of this half; l = 8g.., scale l / 16 + 2k.
                let s = *sc.add(g / 2 + 2 * k) as i8 as f32;
                let ds = _mm256_set1_ps(d * s);
                v[16 * h + 4 * k + g] = _mm256_mul_ps(ds, group32(*q, g, 32));
            }
        }
    }
});
