//! Every lookup table of the datapath (RFC 0002 §Nonlinear units).
//!
//! Generated once from f64 (build time, the only floating point besides the
//! constant constructors), rounded to nearest, cached, and read by the
//! integer functions in [`crate::scalar`]. The Verilog emitter writes these
//! same slices into ROMs. Entries are stored as u32; the entry widths below
//! are what the RTL needs. `fingerprint` pins the exact contents in tests.
//!
//! | table | entries | entry | width |
//! |---|---|---|---|
//! | [`exp2_neg_table`] | 4096 | `round(2^15 · 2^(-f/4096))`, f ∈ [0, 4096) | 16 bits, (16384, 32768] |
//! | [`recip_table`] | 4096 | `round(2^28 / m)`, m ∈ [4096, 8192) | 17 bits, (32768, 65536] |
//! | [`rsqrt_table`] | 3072 | `round(2^23 / sqrt(m))`, m ∈ [1024, 4096) | 19 bits, (131072, 262144] |
//! | [`sigmoid_table`] | 4097 | `round(2^15 · σ(-16 + i/128))`, i ∈ [0, 4096] | 16 bits, [0, 32768] |
//! | [`gelu_gate_table`] | 4097 | `round(2^15 · G(-8 + i/256))`, i ∈ [0, 4096] | 16 bits, [0, 32768] |
//!
//! `G(x) = σ(2·sqrt(2/π)·(x + 0.044715 x^3))`, i.e. `0.5 (1 + tanh(·))`.

use std::sync::OnceLock;

/// Fraction bits of the index into [`exp2_neg_table`] (4096 entries).
pub const EXP2_IDX_BITS: i32 = 12;
/// Entries of [`exp2_neg_table`] (4096).
pub const EXP2_TABLE_LEN: usize = 1 << EXP2_IDX_BITS;

/// Normalized reciprocal argument `m ∈ [2^12, 2^13)`.
pub const RECIP_IDX_BITS: u32 = 13;
/// Entries of [`recip_table`] (4096): one per `m ∈ [2^12, 2^13)`.
pub const RECIP_TABLE_LEN: usize = 1 << (RECIP_IDX_BITS - 1);
/// `recip_table()[m - 4096] = round(2^RECIP_TABLE_FRAC / m)`.
pub const RECIP_TABLE_FRAC: i32 = 28;

/// Normalized rsqrt argument `m ∈ [2^10, 2^12)` (an even shift keeps the
/// square root exact in the exponent).
pub const RSQRT_LO: u64 = 1 << 10;
/// Exclusive upper end of the normalized rsqrt argument (`2^12`).
pub const RSQRT_HI: u64 = 1 << 12;
/// Entries of [`rsqrt_table`] (3072): one per `m ∈ [2^10, 2^12)`.
pub const RSQRT_TABLE_LEN: usize = (RSQRT_HI - RSQRT_LO) as usize;
/// `rsqrt_table()[m - 1024] = round(2^RSQRT_TABLE_FRAC / sqrt(m))`.
pub const RSQRT_TABLE_FRAC: i32 = 23;

/// σ table: range `[SIGMOID_LO, -SIGMOID_LO)` real, step `2^-7`: the
/// interpolation fraction is the low 17 bits of `x_w - SIGMOID_LO·2^24`.
pub const SIGMOID_LO: i64 = -16;
/// Interpolation fraction bits: `W_FRAC − 7` (24 − 7), the σ table's step
/// being `2^-7`.
pub const SIGMOID_STEP_BITS: u32 = 17;
/// Entries of [`sigmoid_table`]: `[-16, 16]` at step `2^-7`, both ends included.
pub const SIGMOID_TABLE_LEN: usize = 4097;

/// GELU gate table: range `[-8, 8)`, step `2^-8` (16 fraction bits).
pub const GELU_LO: i64 = -8;
/// Interpolation fraction bits: `W_FRAC − 8` (24 − 8), the GELU table's
/// step being `2^-8`.
pub const GELU_STEP_BITS: u32 = 16;
/// Entries of [`gelu_gate_table`]: `[-8, 8]` at step `2^-8`, both ends included.
pub const GELU_TABLE_LEN: usize = 4097;

/// `2 · sqrt(2/π)` = 1.5957691216057308.
pub fn gelu_k() -> f64 {
    2.0 * (2.0 / std::f64::consts::PI).sqrt()
}

/// The GELU(tanh) gate `G(x) = σ(2·sqrt(2/π)·(x + 0.044715 x^3))` in f64.
pub fn gelu_gate_f64(x: f64) -> f64 {
    sigmoid_f64(gelu_k() * (x + 0.044715 * x * x * x))
}

/// `σ(x) = 1 / (1 + e^-x)` in f64.
pub fn sigmoid_f64(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn p15(x: f64) -> u32 {
    (x * 32768.0).round() as u32
}

/// `2^-f` over the 12-bit fraction `f / 4096`, in `P15`.
pub fn exp2_neg_table() -> &'static [u32] {
    static T: OnceLock<Vec<u32>> = OnceLock::new();
    T.get_or_init(|| {
        (0..EXP2_TABLE_LEN)
            .map(|f| p15((-(f as f64) / EXP2_TABLE_LEN as f64).exp2()))
            .collect()
    })
}

/// `1/m` for normalized `m ∈ [4096, 8192)`, `2^28` scale.
pub fn recip_table() -> &'static [u32] {
    static T: OnceLock<Vec<u32>> = OnceLock::new();
    T.get_or_init(|| {
        (0..RECIP_TABLE_LEN)
            .map(|i| {
                let m = (RECIP_TABLE_LEN + i) as f64;
                ((RECIP_TABLE_FRAC as f64).exp2() / m).round() as u32
            })
            .collect()
    })
}

/// `1/sqrt(m)` for normalized `m ∈ [1024, 4096)`, `2^23` scale.
pub fn rsqrt_table() -> &'static [u32] {
    static T: OnceLock<Vec<u32>> = OnceLock::new();
    T.get_or_init(|| {
        (RSQRT_LO..RSQRT_HI)
            .map(|m| ((RSQRT_TABLE_FRAC as f64).exp2() / (m as f64).sqrt()).round() as u32)
            .collect()
    })
}

/// `σ(x)` at `x = -16 + i/128`, `i ∈ [0, 4096]`, in `P15`.
pub fn sigmoid_table() -> &'static [u32] {
    static T: OnceLock<Vec<u32>> = OnceLock::new();
    T.get_or_init(|| {
        let step = (-((crate::formats::W_FRAC as u32 - SIGMOID_STEP_BITS) as f64)).exp2();
        (0..SIGMOID_TABLE_LEN)
            .map(|i| p15(sigmoid_f64(SIGMOID_LO as f64 + i as f64 * step)))
            .collect()
    })
}

/// `G(x)` at `x = -8 + i/256`, `i ∈ [0, 4096]`, in `P15`.
pub fn gelu_gate_table() -> &'static [u32] {
    static T: OnceLock<Vec<u32>> = OnceLock::new();
    T.get_or_init(|| {
        let step = (-((crate::formats::W_FRAC as u32 - GELU_STEP_BITS) as f64)).exp2();
        (0..GELU_TABLE_LEN)
            .map(|i| p15(gelu_gate_f64(GELU_LO as f64 + i as f64 * step)))
            .collect()
    })
}

/// FNV-1a over the little-endian entries: pins a table's exact contents
/// (a libm difference in table generation would change it).
pub fn fingerprint(t: &[u32]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &v in t {
        for b in v.to_le_bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shapes_and_ranges() {
        let e = exp2_neg_table();
        assert_eq!(e.len(), 4096);
        assert_eq!(e[0], 32768);
        assert!(e.iter().all(|&v| v > 16384 && v <= 32768));
        assert!(e.windows(2).all(|w| w[0] >= w[1]));
        let r = recip_table();
        assert_eq!(r.len(), 4096);
        assert_eq!(r[0], 65536);
        assert!(r.iter().all(|&v| v > 32768 && v <= 65536));
        let q = rsqrt_table();
        assert_eq!(q.len(), 3072);
        assert_eq!(q[0], 262144);
        assert!(q.iter().all(|&v| v > 131072 && v <= 262144));
        let s = sigmoid_table();
        assert_eq!(s.len(), 4097);
        assert_eq!((s[0], s[2048], s[4096]), (0, 16384, 32768));
        assert!(s.windows(2).all(|w| w[0] <= w[1]));
        let g = gelu_gate_table();
        assert_eq!(g.len(), 4097);
        assert_eq!((g[0], g[2048], g[4096]), (0, 16384, 32768));
        assert!(g.windows(2).all(|w| w[0] <= w[1]));
    }

    /// The exact table contents. If this fails on a new platform, its libm
    /// rounds a table entry differently: the chip image would change.
    #[test]
    fn table_fingerprints() {
        let got = [
            fingerprint(exp2_neg_table()),
            fingerprint(recip_table()),
            fingerprint(rsqrt_table()),
            fingerprint(sigmoid_table()),
            fingerprint(gelu_gate_table()),
        ];
        println!("{got:#018x?}");
        assert_eq!(got, FINGERPRINTS);
    }

    const FINGERPRINTS: [u64; 5] = [
        0x6a91a9929e2b44f6,
        0x8b3b3baf94be9b44,
        0x08502be87607139b,
        0x5159ba0173f113b3,
        0xc8cecc1749cd623a,
    ];
}
