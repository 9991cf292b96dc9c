//! Hand-computed golden example of the matrix-vector product (RFC 0002
//! §Matrix-vector product): a 2×64 layer, 4-bit asymmetric codes, group 32.

use crate::formats::{to_a8_vec, W_FRAC};
use crate::linear::{linear_row, WeightRow};
use crate::Sf16;

fn sf(x: f32, want: (i32, i32)) -> Sf16 {
    let s = Sf16::from_f32(x).unwrap();
    assert_eq!(s.mant_exp(), want, "SF16 of {x}");
    s
}

/// Input (real values): block 0 holds tiny values, block 1 large ones, so
/// the two `A8` blocks get different exponents.
///
/// ```text
/// block 0: x_0 = 127·2^-20, x_1 = -127·2^-20, x_2 = 16·2^-20, x_3 = -3·2^-20, rest 0
///          W48 codes x·2^24 = 2032, -2032, 256, -48; max 2032 (11 bits) -> s = 4
///          mantissas 127, -127, 16, -3; E_0 = 4 - 24 = -20;  A_0 = 13
/// block 1: x_i = 64·2^-2 = 16 (i < 16), -32·2^-2 = -8 (i >= 16)
///          W48 codes 2^28, -2^27; max 2^28 (29 bits) -> s = 22 (rshr = 64)
///          mantissas 64, -32; E_1 = 22 - 24 = -2;  A_1 = 16·64 - 16·32 = 512
/// ```
///
/// Row 0, codes: block 0 `[15, 0, 8, 15, 3 × 28]`, block 1 `q_i = i mod 16`.
///
/// ```text
/// g0: d = 0.01171875 = 1536·2^-17, m = -0.125 = -1024·2^-13
///   P_0 = 127·15 - 127·0 + 16·8 - 3·15 = 1988
///   d-term: shift -17 - 20 + 24 = -13: 1536·1988 = 3053568; /8192 = 372.75 -> 373
///   m-term: shift -13 - 20 + 24 = -9:  -1024·13 = -13312; /512 = -26 (exact)
/// g1: d = f16(0.2) = 1638·2^-13, m = 1.5 = 1536·2^-10
///   P_1 = 64·(0+…+15) - 32·(0+…+15) = 64·120 - 32·120 = 3840
///   d-term: shift -13 - 2 + 24 = +9:  1638·3840·512 = 3220439040
///   m-term: shift -10 - 2 + 24 = +12: 1536·512·4096 = 3221225472
/// acc = 373 - 26 + 3220439040 + 3221225472 = 6441664859
/// bias 0.5 = 8388608 -> y_0 = 6450053467   (≈ 384.4531; exact real 384.4531 - 0.25 LSB)
/// ```
///
/// Row 1, codes: block 0 `[9, 9, 12, 0, 5 × 28]`, block 1 `[15 × 24, 0 × 8]`.
///
/// ```text
/// g0: d = -1.5·2^-10 = -1536·2^-20, m = 2^-5 = 1024·2^-15
///   P_0 = 127·9 - 127·9 + 16·12 - 3·0 = 192
///   d-term: shift -20 - 20 + 24 = -16: -1536·192 = -294912; /65536 = -4.5 -> -4 (tie, half up)
///   m-term: shift -15 - 20 + 24 = -11: 1024·13 = 13312; /2048 = 6.5 -> 7 (tie, half up)
/// g1: d = -3.0 = -1536·2^-9, m = 4.0 = 1024·2^-8
///   P_1 = 64·15·16 - 32·(15·8 + 0·8) = 15360 - 3840 = 11520
///   d-term: shift -9 - 2 + 24 = +13:  -1536·11520·8192 = -144955146240
///   m-term: shift -8 - 2 + 24 = +14:  1024·512·16384 = 8589934592
/// acc = -4 + 7 - 144955146240 + 8589934592 = -136365211645
/// bias -1.25 = -20971520 -> y_1 = -136386183165   (≈ -8129.25)
/// ```
#[test]
fn golden_2x64_layer() {
    let mut x = vec![0i64; 64];
    x[0] = 127 << 4;
    x[1] = -127 << 4;
    x[2] = 16 << 4;
    x[3] = -3 << 4;
    for (i, xi) in x.iter_mut().enumerate().skip(32) {
        *xi = if i < 48 { 64 << 22 } else { -32 << 22 };
    }
    let xa = to_a8_vec(&x, W_FRAC).unwrap();
    assert_eq!(xa.exp, vec![-20, -2]);
    assert_eq!(&xa.mant[..5], &[127, -127, 16, -3, 0]);
    assert_eq!((xa.mant[32], xa.mant[63]), (64, -32));
    let sums = xa.block_sums();
    assert_eq!(sums, vec![13, 512]);

    let mut codes0: Vec<i8> = vec![15, 0, 8, 15];
    codes0.extend([3i8; 28]);
    codes0.extend((0..32).map(|i| (i % 16) as i8));
    let mut codes1: Vec<i8> = vec![9, 9, 12, 0];
    codes1.extend([5i8; 28]);
    codes1.extend((0..32).map(|i| if i < 24 { 15 } else { 0 }));

    let scales0 = [sf(0.01171875, (1536, -17)), sf(0.2, (1638, -13))];
    let offsets0 = [sf(-0.125, (-1024, -13)), sf(1.5, (1536, -10))];
    let scales1 = [sf(-1.5 / 1024.0, (-1536, -20)), sf(-3.0, (-1536, -9))];
    let offsets1 = [sf(0.03125, (1024, -15)), sf(4.0, (1024, -8))];

    let row = |codes: &[i8], scales, offsets, bias: i64| {
        let r = WeightRow {
            codes,
            code_bias: 0,
            group: 32,
            scales,
            offsets: Some(offsets),
        };
        let y = linear_row(&xa.mant, &xa.exp, &sums, &r, bias);
        // The same codes stored centred (q - 8, code_bias 8) give the same bits.
        let centred: Vec<i8> = codes.iter().map(|&q| q - 8).collect();
        let rc = WeightRow {
            codes: &centred,
            code_bias: 8,
            ..r
        };
        assert_eq!(linear_row(&xa.mant, &xa.exp, &sums, &rc, bias), y);
        y
    };
    assert_eq!(
        row(&codes0, &scales0[..], &offsets0[..], 8_388_608),
        6_450_053_467
    );
    assert_eq!(
        row(&codes1, &scales1[..], &offsets1[..], -20_971_520),
        -136_386_183_165
    );
}

/// Symmetric 4-bit codes with the most negative code −8 and a row-wide group.
#[test]
fn symmetric_most_negative_code() {
    let xm = vec![127i8; 64];
    let xe = vec![-7i8, -7];
    let codes = vec![-8i8; 64];
    let d = [Sf16::from_f32(1.0).unwrap()]; // 1024·2^-10
    let r = WeightRow {
        codes: &codes,
        code_bias: 0,
        group: 64,
        scales: &d,
        offsets: None,
    };
    // Per block: P = -8·127·32 = -32512; 1024·-32512·2^(-10-7+24) = -32512·2^17.
    assert_eq!(linear_row(&xm, &xe, &[], &r, 0), 2 * -32512 * (1 << 17));
}
