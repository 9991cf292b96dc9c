//! AVX-512 pieces shared by the matrix-vector and attention kernels (the
//! data layouts compile everywhere; the kernels only on x86-64).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Rows (or positions) per vector: 16 i32 lanes.
pub const LANES: usize = 16;

/// AVX-512 F/BW/DQ/VL and VNNI, as every kernel here uses.
#[cfg(target_arch = "x86_64")]
pub fn available() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512dq")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512vnni")
}

/// 64 bytes of interleaved codes: byte `4·lane + i` is element `4k + i` of
/// the block of row (position) `lane`, for one `k` in `0..8`.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub struct Line(pub [u8; 64]);

/// One i32 per lane.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub struct Lanes(pub [i32; LANES]);

/// Adds `block_term` of 16 lanes to i64 accumulators of the even and odd
/// lanes: `x·2^k` for `k >= 0`, `rshr(x, -k)` for `k < 0`.
///
/// Exact (the bits of `nx::block_term` with `mant · partial = x`) when
/// `k <= 30` and `|x| · 2^max(k, 0) < 2^47` (no saturation), which the
/// callers guarantee per tile:
/// - `k < 0`: `rshr(x, n) = ((x >> (n - 1)) + 1) >> 1` (the same floor;
///   `n - 1 = !k`, and `vpsravd` fills with the sign for counts over 31,
///   where both sides are 0);
/// - `k >= 0`: `!k` is negative, read as a count over 31, so the rounded
///   shift gives `(sign + 1) >> 1 = 0` and `x · 2^k` is formed by
///   `vpmuldq` with `2^k` from `vpsllvd`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub fn term(x: __m512i, k: __m512i, acc_e: &mut __m512i, acc_o: &mut __m512i) {
    let one = _mm512_set1_epi32(1);
    let nk = _mm512_xor_si512(k, _mm512_set1_epi32(-1));
    let r = _mm512_srai_epi32::<1>(_mm512_add_epi32(_mm512_srav_epi32(x, nk), one));
    let neg = _mm512_cmplt_epi32_mask(k, _mm512_setzero_si512());
    // y·m: x·2^k for k >= 0, r·1 for k < 0.
    let y = _mm512_mask_mov_epi32(x, neg, r);
    let m = _mm512_mask_mov_epi32(_mm512_sllv_epi32(one, k), neg, one);
    *acc_e = _mm512_add_epi64(*acc_e, _mm512_mul_epi32(y, m));
    *acc_o = _mm512_add_epi64(
        *acc_o,
        _mm512_mul_epi32(_mm512_srli_epi64::<32>(y), _mm512_srli_epi64::<32>(m)),
    );
}

/// Stores even/odd-lane i64 accumulators in lane order.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub fn unzip(acc_e: __m512i, acc_o: __m512i, out: &mut [i64; LANES]) {
    let mut ev = [0i64; 8];
    let mut od = [0i64; 8];
    // SAFETY: 8 i64 each, unaligned stores.
    unsafe {
        _mm512_storeu_si512(ev.as_mut_ptr() as *mut __m512i, acc_e);
        _mm512_storeu_si512(od.as_mut_ptr() as *mut __m512i, acc_o);
    }
    for j in 0..8 {
        out[2 * j] = ev[j];
        out[2 * j + 1] = od[j];
    }
}

/// Whether the AVX-512 kernels can run on this CPU and may
/// (`taalasc --simd`, [`taalasc_ir::simd_cap`]).
pub fn have_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        taalasc_ir::simd_cap() >= taalasc_ir::SimdLevel::Avx512 && available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
