//! AVX2 row kernels: each decodes a stored row eight elements at a time
//! (bit for bit as the source's own decoder, i.e. `taalasc-frontends`'
//! `dequant`, does) and multiplies them into `N` activation rows at once.
//!
//! Every output keeps the portable dot product's order
//! ([`crate::rows::dot_scalar`]): lane `k` of one 8-wide accumulator sums
//! the products of the elements `j ≡ k (mod 8)` in order, with a separate
//! multiply and add (never a fused multiply-add), and the eight lanes are
//! summed left to right at the end. So the AVX2 and the portable paths, and a
//! row computed alone or with three others, give the same bits.
//!
//! Only compiled for x86-64; only called after
//! [`crate::rows::Isa::detect`] saw AVX2, FMA and F16C at run time (and
//! AVX-512F/VL for the table kernels).

#![allow(clippy::missing_safety_doc)]

use std::arch::x86_64::*;
use taalasc_ir::dtype::k4_scale_min;

/// The eight lanes summed left to right, as `[f32; 8]::iter().sum()`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn hsum(v: __m256) -> f32 {
    let mut a = [0f32; 8];
    _mm256_storeu_ps(a.as_mut_ptr(), v);
    a.iter().sum()
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

        /// Dot products of `R` stored rows (whole blocks, equally long) with
        /// `N` activation rows: `R * N` independent accumulator chains, so
        /// that the adds of one chain overlap with the others'.
        #[target_feature(enable = "avx2,fma,f16c")]
        pub(crate) unsafe fn $name<const R: usize, const N: usize>(
            rows: &[&[u8]; R],
            xs: &[&[f32]; N],
        ) -> [[f32; N]; R] {
            let mut acc = [[_mm256_setzero_ps(); N]; R];
            let blocks = rows[0].len() / $bytes;
            let ahead = R * rows[0].len();
            for k in 0..blocks {
                let e = k * 8 * $groups;
                for r in 0..R {
                    let $b = rows[r].as_ptr().add(k * $bytes);
                    // The rows that follow these (a matrix's rows lie one
                    // after another): a hint only, which never faults.
                    _mm_prefetch::<_MM_HINT_T0>($b.wrapping_add(ahead) as *const i8);
                    let mut $v = [_mm256_setzero_ps(); $groups];
                    $body
                    for (g, w) in $v.iter().enumerate() {
                        for i in 0..N {
                            let x = _mm256_loadu_ps(xs[i].as_ptr().add(e + 8 * g));
                            acc[r][i] = _mm256_add_ps(acc[r][i], _mm256_mul_ps(*w, x));
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

/// [`q4_1_rows`] with AVX-512VL: each block's sixteen possible values
/// `d·q + m` (`q` = 0..15, the same operations as the decoder's) are
/// computed once, and each element is looked up by its nibble
/// (`vpermt2ps`, which reads the low four bits of each index), instead of
/// being converted, multiplied and offset one by one. The products and sums
/// are [`q4_1_rows`]'s, so the results are the same bits.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl")]
pub(crate) unsafe fn q4_1_rows_table<const R: usize, const N: usize>(
    rows: &[&[u8]; R],
    xs: &[&[f32]; N],
) -> [[f32; N]; R] {
    let codes_lo = _mm256_setr_ps(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0);
    let codes_hi = _mm256_setr_ps(8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0);
    let mut acc = [[_mm256_setzero_ps(); N]; R];
    let blocks = rows[0].len() / 20;
    let ahead = R * rows[0].len();
    for k in 0..blocks {
        let e = k * 32;
        for r in 0..R {
            let b = rows[r].as_ptr().add(k * 20);
            // The rows that follow these (a matrix's rows lie one after
            // another): a hint only, which never faults.
            _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(ahead) as *const i8);
            let (d, m) = half_pair(b);
            let t_lo = _mm256_add_ps(_mm256_mul_ps(codes_lo, d), m);
            let t_hi = _mm256_add_ps(_mm256_mul_ps(codes_hi, d), m);
            // Element j of the block is the low nibble of byte j (j < 16),
            // else the high nibble of byte j - 16.
            let q = _mm_loadu_si128(b.add(4) as *const __m128i);
            let i0 = _mm256_cvtepu8_epi32(q);
            let i1 = _mm256_cvtepu8_epi32(_mm_srli_si128::<8>(q));
            let idx = [
                i0,
                i1,
                _mm256_srli_epi32::<4>(i0),
                _mm256_srli_epi32::<4>(i1),
            ];
            for (g, i) in idx.iter().enumerate() {
                let w = _mm256_permutex2var_ps(t_lo, *i, t_hi);
                for n in 0..N {
                    let x = _mm256_loadu_ps(xs[n].as_ptr().add(e + 8 * g));
                    acc[r][n] = _mm256_add_ps(acc[r][n], _mm256_mul_ps(w, x));
                }
            }
        }
    }
    let mut out = [[0f32; N]; R];
    for r in 0..R {
        for n in 0..N {
            out[r][n] = hsum(acc[r][n]);
        }
    }
    out
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
