//! Matrix-vector product (RFC 0002 §Matrix-vector product).
//!
//! Input `x` in `A8` (block `b`: mantissas `a_i`, exponent `E_b`); weight
//! codes `q_i` of `b ∈ {2..8}` bits in groups of `G` (a multiple of 32, so a
//! group is a whole number of blocks) with `SF16` scale `d_g` and, for
//! asymmetric formats, offset `m_g`. Per output row:
//!
//! ```text
//! P_b = Σ_{i∈b} a_i q_i                      exact, |P_b| <= 32·127·255 < 2^20
//! A_b = Σ_{i∈b} a_i                          exact, |A_b| <= 4064 (shared by rows)
//! acc = Σ_b block_term(mant(d_g), exp(d_g), P_b, E_b)
//!     + Σ_b block_term(mant(m_g), exp(m_g), A_b, E_b)     (asymmetric only)
//! y   = sat_w48(acc + bias)                  bias in W48, converted at build time
//! ```
//!
//! Every term is rounded (and saturated) into `W48` on its own, then summed
//! exactly in i64, so the result does not depend on lane count or order.
//! The i64 accumulator cannot overflow for up to 2^15 terms (rows of up to
//! 2^19 inputs with offsets).

use crate::formats::{sat_w48, A8_BLOCK, W_BITS, W_FRAC, W_MAX, W_MIN};
use crate::{rshr, rshr128, Sf16};

/// `sat_w48(rshr(p, -up))`: scale a product into `W48`. `up >= 0` is an
/// exact left shift (saturating: any nonzero `p` with `up >= 48` saturates),
/// `up < 0` a round-half-up right shift.
#[inline]
pub(crate) fn shift_sat_w48(p: i128, up: i32) -> i64 {
    if up >= 0 {
        if p == 0 {
            0
        } else if up >= W_BITS as i32 {
            sat_w48(if p > 0 { i128::MAX } else { i128::MIN })
        } else if p.unsigned_abs() >= 1u128 << 80 {
            // |p| << up would be >= 2^80 > W48: saturate without shifting.
            sat_w48(p)
        } else {
            sat_w48(p << up)
        }
    } else {
        sat_w48(rshr128(p, -up))
    }
}

/// One scaled term of the matrix-vector product, in `W48`:
/// `sat_w48(rshr(mant · partial, -(exp + block_exp + 24)))`.
///
/// `mant · 2^exp` is the `SF16` scale (|mant| <= 2047, 12 bits signed),
/// `partial · 2^block_exp` the block partial sum (`P_b`: 21 bits signed,
/// `A_b`: 13 bits). The product is at most 32 bits; the shift is a
/// round-half-up right shift when `exp + block_exp + 24 < 0` and an exact,
/// saturating left shift otherwise. Error vs the exact real product:
/// `<= 2^-25` (half a `W48` LSB) unless saturated.
///
/// The same function scales `Q·K` block products (`mant = 1`, `exp = E_q`)
/// and the `e_j · v` terms of attention (`mant = e_j`, `exp = -15`).
#[inline]
pub fn block_term(mant: i32, exp: i32, partial: i64, block_exp: i32) -> i64 {
    shift_sat_w48(mant as i128 * partial as i128, exp + block_exp + W_FRAC)
}

/// [`shift_sat_w48`] of an i64 product, in i64 arithmetic only: the same
/// bits for every `p` and `up`.
///
/// Left shift (`up >= 0`): for `up < 48`, `p · 2^up > W_MAX` exactly when
/// `p > W_MAX >> up` (the floor), and `p · 2^up < W_MIN` exactly when `p <
/// W_MIN >> up = -2^(47-up)`, where clamping `p` gives `W_MIN` itself; in
/// between the shift is exact and cannot overflow. Right shift: [`rshr`] on
/// i64 equals [`rshr128`] on the same value for every shift (both give 0 or
/// the rounded quotient; for `s >= 64` the i128 form yields `-1 + 1` or
/// `0 + 0`).
#[inline(always)]
pub(crate) fn shift_sat_w48_i64(p: i64, up: i32) -> i64 {
    if up >= 0 {
        if p == 0 {
            0
        } else if up >= W_BITS as i32 {
            if p > 0 {
                W_MAX
            } else {
                W_MIN
            }
        } else if p > W_MAX >> up {
            W_MAX
        } else {
            p.max(W_MIN >> up) << up
        }
    } else {
        rshr(p, -up).clamp(W_MIN, W_MAX)
    }
}

/// [`block_term`] in i64 arithmetic: the same bits for every input.
///
/// `mant · partial` is formed in i64 when it fits (always, for the
/// datapath's 12-bit scale mantissas and <= 21-bit partials), avoiding the
/// i128 multiply and shifts; otherwise it defers to [`block_term`]. Checked
/// against [`block_term`] on random and extreme inputs
/// (`block_term_i64_matches_block_term`).
#[inline(always)]
pub fn block_term_i64(mant: i32, exp: i32, partial: i64, block_exp: i32) -> i64 {
    let up = exp + block_exp + W_FRAC;
    match (mant as i64).checked_mul(partial) {
        Some(p) => shift_sat_w48_i64(p, up),
        None => shift_sat_w48(mant as i128 * partial as i128, up),
    }
}

/// Exact `Σ a_i q_i` of two i8 vectors of equal length.
///
/// The hot loop of the reference executor: products are formed in i16
/// (exact: `|a_i q_i| <= 2^14`) and summed in i32 per 32-element chunk,
/// which LLVM vectorizes (`pmaddwd`-style). Exact for lengths up to 2^17
/// (`2^17 · 2^14 = 2^31`); the datapath calls it per 32-element block or
/// per head.
#[inline]
pub fn dot_i8(a: &[i8], q: &[i8]) -> i32 {
    assert_eq!(a.len(), q.len(), "dot_i8: lengths");
    let ca = a.chunks_exact(A8_BLOCK);
    let cq = q.chunks_exact(A8_BLOCK);
    let tail: i32 = ca
        .remainder()
        .iter()
        .zip(cq.remainder())
        .map(|(&x, &y)| (x as i16 * y as i16) as i32)
        .sum();
    let mut acc = [0i32; A8_BLOCK];
    for (x, y) in ca.zip(cq) {
        let x: &[i8; A8_BLOCK] = x.try_into().unwrap();
        let y: &[i8; A8_BLOCK] = y.try_into().unwrap();
        for k in 0..A8_BLOCK {
            acc[k] += (x[k] as i16 * y[k] as i16) as i32;
        }
    }
    acc.iter().sum::<i32>() + tail
}

/// One row of a quantized weight matrix.
#[derive(Clone, Copy, Debug)]
pub struct WeightRow<'a> {
    /// Codes stored as i8: symmetric codes `q ∈ [-2^(b-1), 2^(b-1)-1]` as
    /// they are (`code_bias = 0`); asymmetric codes `q ∈ [0, 2^b-1]` either
    /// as they are (`b <= 7`) or centred as `q - code_bias` (8-bit:
    /// `code_bias = 128`). The datapath value is always `codes[i] +
    /// code_bias`, reconstructed exactly as `P_b = dot + code_bias · A_b`.
    pub codes: &'a [i8],
    /// Added to every code to give its datapath value (0, or 128 for 8-bit
    /// asymmetric codes stored centred).
    pub code_bias: i32,
    /// Group size `G` (32, 64, 128, ... or the row length); multiple of 32.
    pub group: usize,
    /// One `SF16` scale `d_g` per group.
    pub scales: &'a [Sf16],
    /// One `SF16` offset `m_g` per group (asymmetric formats).
    pub offsets: Option<&'a [Sf16]>,
}

/// One output of a linear layer in `W48` (see the module docs):
/// `sat_w48(Σ_b terms + bias)`.
///
/// `x_mant`/`x_exp` the `A8` input, `x_sums` its [`crate::A8Vec::block_sums`]
/// (read only when `offsets` is present or `code_bias != 0`).
pub fn linear_row(
    x_mant: &[i8],
    x_exp: &[i8],
    x_sums: &[i32],
    row: &WeightRow<'_>,
    bias: i64,
) -> i64 {
    // One definition of the row sum: decode the scales, then the decoded
    // form (whose i64 block terms equal `block_term`, tested below).
    linear_row_decoded(x_mant, x_exp, x_sums, &row.decode(), bias)
}

/// A [`WeightRow`] with its `SF16` scales (and offsets) decoded once by
/// [`Sf16::mant_exp`], for executors that apply one row to many inputs.
#[derive(Clone, Debug)]
pub struct DecodedRow<'a> {
    /// Codes as in [`WeightRow::codes`].
    pub codes: &'a [i8],
    /// As [`WeightRow::code_bias`].
    pub code_bias: i32,
    /// As [`WeightRow::group`].
    pub group: usize,
    /// `(mant, exp)` of each group's scale `d_g`.
    pub scales: Vec<(i32, i32)>,
    /// `(mant, exp)` of each group's offset `m_g` (asymmetric formats).
    pub offsets: Option<Vec<(i32, i32)>>,
}

impl<'a> WeightRow<'a> {
    /// Decodes the scales and offsets (the codes are borrowed).
    pub fn decode(&self) -> DecodedRow<'a> {
        DecodedRow {
            codes: self.codes,
            code_bias: self.code_bias,
            group: self.group,
            scales: self.scales.iter().map(|s| s.mant_exp()).collect(),
            offsets: self
                .offsets
                .map(|o| o.iter().map(|s| s.mant_exp()).collect()),
        }
    }
}

/// [`linear_row`] of a [`DecodedRow`]: the same bits and the same checks,
/// with the scales decoded once and every term formed by
/// [`block_term_i64`] (test `linear_row_decoded_matches_linear_row`).
pub fn linear_row_decoded(
    x_mant: &[i8],
    x_exp: &[i8],
    x_sums: &[i32],
    row: &DecodedRow<'_>,
    bias: i64,
) -> i64 {
    let n = x_mant.len();
    assert!(
        n <= 1 << 19,
        "linear_row: rows beyond 2^19 inputs could overflow the i64 sum"
    );
    assert_eq!(row.codes.len(), n, "linear_row: row length");
    assert_eq!(x_exp.len() * A8_BLOCK, n, "linear_row: exponents");
    assert!(
        row.group.is_multiple_of(A8_BLOCK) && row.group > 0,
        "linear_row: group not a multiple of 32"
    );
    let groups = n.div_ceil(row.group);
    assert_eq!(row.scales.len(), groups, "linear_row: scales");
    let need_sums = row.offsets.is_some() || row.code_bias != 0;
    if need_sums {
        assert_eq!(x_sums.len(), x_exp.len(), "linear_row: block sums");
    }
    if let Some(o) = &row.offsets {
        assert_eq!(o.len(), groups, "linear_row: offsets");
    }
    let blocks_per_group = row.group / A8_BLOCK;
    let mut acc: i64 = 0;
    for (b, (xa, qa)) in x_mant
        .chunks_exact(A8_BLOCK)
        .zip(row.codes.chunks_exact(A8_BLOCK))
        .enumerate()
    {
        let g = b / blocks_per_group;
        let e_b = x_exp[b] as i32;
        let mut p = dot_i8(xa, qa) as i64;
        if row.code_bias != 0 {
            p += row.code_bias as i64 * x_sums[b] as i64;
        }
        let (dm, de) = row.scales[g];
        acc += block_term_i64(dm, de, p, e_b);
        if let Some(off) = &row.offsets {
            let (mm, me) = off[g];
            acc += block_term_i64(mm, me, x_sums[b] as i64, e_b);
        }
    }
    sat_w48(acc as i128 + bias as i128)
}

/// The body of [`dot_a8`]: every term formed by [`block_term_i64`], which
/// gives the same bits as [`block_term`] (test `block_term_i64_matches_block_term`).
#[inline(always)]
pub fn dot_a8_i64(q_mant: &[i8], q_exp: &[i8], k_mant: &[i8], k_exp: &[i8]) -> i64 {
    assert_eq!(q_mant.len(), k_mant.len(), "dot_a8: lengths");
    assert_eq!(q_exp.len() * A8_BLOCK, q_mant.len(), "dot_a8: q exponents");
    assert_eq!(k_exp.len(), q_exp.len(), "dot_a8: k exponents");
    let mut acc: i64 = 0;
    for (b, (qa, ka)) in q_mant
        .chunks_exact(A8_BLOCK)
        .zip(k_mant.chunks_exact(A8_BLOCK))
        .enumerate()
    {
        acc += block_term_i64(1, q_exp[b] as i32, dot_i8(qa, ka) as i64, k_exp[b] as i32);
    }
    sat_w48(acc as i128)
}

/// `Σ_b block_term(1, Eq_b, P_b, Ek_b)` saturated to `W48`: the dot product
/// of two `A8` vectors (attention score `q·k` before scaling).
pub fn dot_a8(q_mant: &[i8], q_exp: &[i8], k_mant: &[i8], k_exp: &[i8]) -> i64 {
    // One definition: the i64 block terms equal `block_term` (tested below).
    dot_a8_i64(q_mant, q_exp, k_mant, k_exp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::{sum_i8, W_MAX, W_MIN};

    #[test]
    fn dot_i8_matches_naive_including_minus_128() {
        let mut s = 7u64;
        for len in [0usize, 1, 5, 31, 32, 33, 64, 100, 4096] {
            let a: Vec<i8> = (0..len)
                .map(|_| crate::formats::tests::xorshift(&mut s) as i8)
                .collect();
            let q: Vec<i8> = (0..len)
                .map(|_| crate::formats::tests::xorshift(&mut s) as i8)
                .collect();
            let want: i64 = a.iter().zip(&q).map(|(&x, &y)| x as i64 * y as i64).sum();
            assert_eq!(dot_i8(&a, &q) as i64, want);
        }
        // Extremes: -128 · -128 = 2^14 fits the i16 product.
        let a = vec![-128i8; 4096];
        assert_eq!(dot_i8(&a, &a), 4096 << 14);
        // Most negative weight code with the largest mantissas.
        let a = [127i8; 32];
        let q = [-128i8; 32];
        assert_eq!(dot_i8(&a, &q), -127 * 128 * 32);
        let q4 = [-8i8; 32];
        assert_eq!(dot_i8(&a, &q4), -127 * 8 * 32);
    }

    #[test]
    fn block_term_rounding_and_saturation() {
        // 3 · 5 · 2^(-26 - 0 + 24) = 15/4 = 3.75 -> rshr(15, 2) = 4
        assert_eq!(block_term(3, -26, 5, 0), 4);
        assert_eq!(block_term(-3, -26, 5, 0), -4); // -3.75 -> -4
        assert_eq!(block_term(-1, -25, 1, 0), 0); // -0.5 -> 0 (half up)
        assert_eq!(block_term(1, -25, 1, 0), 1); // 0.5 -> 1
        assert_eq!(block_term(1, 0, 1, 0), 1 << 24); // exact left shift
        assert_eq!(block_term(2047, 5, 1 << 20, 17), W_MAX);
        assert_eq!(block_term(-2047, 5, 1 << 20, 17), W_MIN);
        assert_eq!(block_term(-1, 5, 1, 100), W_MIN);
        assert_eq!(block_term(0, 5, 1, 100), 0);
        assert_eq!(block_term(i32::MIN, 10, i64::MIN, 0), W_MAX);
        assert_eq!(block_term(i32::MIN, 10, i64::MAX, 0), W_MIN);
        assert_eq!(block_term(1, -200, i64::MAX, -200), 0);
        // Most negative code -8 (4-bit) with the largest scale mantissa and
        // a block of 127s: P = -8·127·32 = -32512; 2047·-32512·2^(-24-0+24).
        assert_eq!(block_term(2047, -24, -32512, 0), -2047 * 32512);
    }

    #[test]
    fn block_term_i64_matches_block_term() {
        let mut s = 99u64;
        let mut rnd = || crate::formats::tests::xorshift(&mut s);
        let edge_p = [
            0i64,
            1,
            -1,
            2,
            -2,
            (1 << 20) - 1,
            -(1 << 20),
            W_MAX,
            W_MIN,
            W_MAX + 1,
            W_MIN - 1,
            i64::MAX,
            i64::MIN,
            i64::MAX / 2047,
            i64::MIN / 2047,
        ];
        let edge_m = [0i32, 1, -1, 2047, -2047, 1024, i32::MAX, i32::MIN];
        for &p in &edge_p {
            for &m in &edge_m {
                for up in -140..140 {
                    let (e, be) = (up / 2, up - up / 2 - W_FRAC);
                    assert_eq!(
                        block_term_i64(m, e, p, be),
                        block_term(m, e, p, be),
                        "m {m} p {p} up {up}"
                    );
                }
            }
        }
        for i in 0..400_000 {
            let r = rnd();
            // Mix datapath-sized operands with arbitrary ones.
            let m = match i % 3 {
                0 => (r % 4095) as i32 - 2047,
                1 => (r >> 8) as i32,
                _ => ((r >> 8) as i32) >> (r % 31),
            };
            let r2 = rnd();
            let p = match i % 4 {
                0 => (r2 % (1 << 21)) as i64 - (1 << 20),
                1 => r2 as i64,
                _ => (r2 as i64) >> (r2 % 63),
            };
            let e = (rnd() % 100) as i32 - 50;
            let be = (rnd() % 140) as i32 - 70;
            assert_eq!(
                block_term_i64(m, e, p, be),
                block_term(m, e, p, be),
                "m {m} p {p} e {e} be {be}"
            );
        }
    }

    struct RowCase {
        mant: Vec<i8>,
        exp: Vec<i8>,
        codes: Vec<i8>,
        group: usize,
        code_bias: i32,
        scales: Vec<Sf16>,
        offsets: Option<Vec<Sf16>>,
        bias: i64,
    }

    fn random_row_case(s: &mut u64, n: usize) -> RowCase {
        let x = crate::formats::tests::xorshift;
        let scale = (x(s) % 50) as u32;
        let xs: Vec<i64> = (0..n).map(|_| (x(s) as i64) >> (14 + scale)).collect();
        let a = crate::formats::to_a8_vec(&xs, W_FRAC).unwrap();
        let bits = [2u32, 3, 4, 5, 6, 8][(x(s) % 6) as usize];
        let sym = x(s).is_multiple_of(2);
        let code_bias = if sym { 0 } else { 1 << (bits - 1) };
        let lo = -(1i32 << (bits - 1));
        let codes: Vec<i8> = (0..n)
            .map(|_| (lo + (x(s) % (1 << bits)) as i32) as i8)
            .collect();
        let group = [32usize, 64, 128, n][(x(s) % 4) as usize];
        let groups = n.div_ceil(group);
        // Any finite half, biased towards realistic magnitudes.
        let mut sf = || loop {
            let bits = if x(s).is_multiple_of(4) {
                x(s) as u16
            } else {
                (x(s) % 0x2c00) as u16 | ((x(s) as u16) & 0x8000)
            };
            if (bits >> 10) & 0x1f != 31 {
                return Sf16(bits);
            }
        };
        let scales: Vec<Sf16> = (0..groups).map(|_| sf()).collect();
        let offsets = (!sym).then(|| (0..groups).map(|_| sf()).collect::<Vec<_>>());
        let bias = (x(s) as i64) >> (16 + x(s) % 40);
        RowCase {
            mant: a.mant,
            exp: a.exp,
            codes,
            group,
            code_bias,
            scales,
            offsets,
            bias,
        }
    }

    #[test]
    fn linear_row_decoded_matches_linear_row() {
        let mut s = 5u64;
        for trial in 0..3000 {
            let n = 32 * (1 + trial % 20);
            let RowCase {
                mant,
                exp,
                codes,
                group,
                code_bias,
                scales,
                offsets,
                bias,
            } = random_row_case(&mut s, n);
            let sums: Vec<i32> = mant.chunks_exact(A8_BLOCK).map(sum_i8).collect();
            let row = WeightRow {
                codes: &codes,
                code_bias,
                group,
                scales: &scales,
                offsets: offsets.as_deref(),
            };
            assert_eq!(
                linear_row_decoded(&mant, &exp, &sums, &row.decode(), bias),
                linear_row(&mant, &exp, &sums, &row, bias),
                "trial {trial}"
            );
        }
    }

    #[test]
    fn dot_a8_i64_matches_dot_a8() {
        let mut s = 11u64;
        let x = crate::formats::tests::xorshift;
        for trial in 0..20_000 {
            let n = 32 * (1 + trial % 4);
            let sq = (x(&mut s) % 60) as u32;
            let sk = (x(&mut s) % 60) as u32;
            let q: Vec<i64> = (0..n).map(|_| (x(&mut s) as i64) >> (3 + sq)).collect();
            let k: Vec<i64> = (0..n).map(|_| (x(&mut s) as i64) >> (3 + sk)).collect();
            let qa = crate::formats::to_a8_vec(&q, W_FRAC).unwrap();
            let ka = crate::formats::to_a8_vec(&k, W_FRAC).unwrap();
            assert_eq!(
                dot_a8_i64(&qa.mant, &qa.exp, &ka.mant, &ka.exp),
                dot_a8(&qa.mant, &qa.exp, &ka.mant, &ka.exp)
            );
        }
    }

    #[test]
    fn dot_a8_scales_each_block() {
        let mut qm = vec![0i8; 64];
        let mut km = vec![0i8; 64];
        qm[0] = 3;
        km[0] = 5; // block 0: 15 · 2^(-4 + -2) = 15/64
        qm[32] = -7;
        km[32] = 9; // block 1: -63 · 2^(1 + 0) = -126
        let s = dot_a8(&qm, &[-4, 1], &km, &[-2, 0]);
        // 15/64 · 2^24 = 3932160 exactly; -126 · 2^24
        assert_eq!(s, 3_932_160 - 126 * (1 << 24));
    }
}
