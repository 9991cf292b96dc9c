//! Round-to-nearest quantization, group by group.

pub use crate::group::ScaleRule;
use crate::group::{choose, Grid, GroupQ};
use crate::{screen, CodeWidths, QTensor, QuantError, WeightFormat};

/// Round-to-nearest with [`ScaleRule::Search`] (the default rule; see
/// [`quantize_rtn_with`]). Use [`quantize_rtn_plain`] for textbook RTN.
pub fn quantize_rtn(
    w: &[f32],
    rows: usize,
    cols: usize,
    fmt: &WeightFormat,
) -> Result<QTensor, QuantError> {
    quantize_rtn_with(w, rows, cols, fmt, ScaleRule::Search)
}

/// Textbook round-to-nearest ([`ScaleRule::Plain`]), the honest baseline.
pub fn quantize_rtn_plain(
    w: &[f32],
    rows: usize,
    cols: usize,
    fmt: &WeightFormat,
) -> Result<QTensor, QuantError> {
    quantize_rtn_with(w, rows, cols, fmt, ScaleRule::Plain)
}

/// Round-to-nearest of a row-major `[rows, cols]` matrix, each group
/// independently: choose the group's SF16 scale (and offset) by `rule`, then
/// code each element with the ROUNDED parameters:
///
/// - symmetric: `c = clamp(round(w/d), -2^(b-1), 2^(b-1)-1)`;
/// - asymmetric: `q = clamp(round((w-m)/d), 0, 2^b-1)`, stored `c = q - 2^(b-1)`;
///
/// rounding half away from zero. A group whose scale is 0 (all zeros, a
/// constant asymmetric group, or a scale below the SF16 range) gets codes 0,
/// and dequantizes to exactly 0 (symmetric) or `m` (asymmetric).
///
/// Errors: bad format or shape, a non-finite weight, a scale or offset
/// beyond the SF16 range.
pub fn quantize_rtn_with(
    w: &[f32],
    rows: usize,
    cols: usize,
    fmt: &WeightFormat,
    rule: ScaleRule,
) -> Result<QTensor, QuantError> {
    quantize_rtn_mixed(w, rows, cols, fmt, &CodeWidths::default(), rule)
}

/// [`quantize_rtn_with`] with code widths per column group or per row (see
/// [`QTensor::bits_at`]).
pub fn quantize_rtn_mixed(
    w: &[f32],
    rows: usize,
    cols: usize,
    fmt: &WeightFormat,
    widths: &CodeWidths,
    rule: ScaleRule,
) -> Result<QTensor, QuantError> {
    check_weights(w, rows, cols, fmt)?;
    let g = fmt.group_len(cols);
    let gpr = fmt.groups_per_row(cols);
    crate::tensor::check_widths(fmt, widths, rows, gpr)?;
    let mut out = QTensor::zeros(*fmt, rows, cols);
    out.widths = widths.clone();
    let mut vals = vec![0.0f64; g];
    let mut row = vec![0.0f64; cols];
    // Groups of the 8-bit row grid are searched in batches by the screen
    // (`crate::screen`), which leaves the groups it cannot settle to the
    // exact search; a batch holds groups of one width, and is finished
    // before any other group is quantized, so that an error names the
    // first failing group.
    let mut batch: Vec<(usize, usize, Grid)> = Vec::with_capacity(screen::LANES);
    let mut scratch = screen::Scratch::default();
    let mut finish = |batch: &mut Vec<(usize, usize, Grid)>,
                      out: &mut QTensor,
                      vals: &mut [f64]|
     -> Result<(), QuantError> {
        let Some(&(r0, g0, _)) = batch.first() else {
            return Ok(());
        };
        let bits = widths.at(r0, g0, fmt.bits);
        let lanes: Vec<screen::Lane<'_>> = batch
            .iter()
            .map(|&(r, gi, grid)| {
                let Grid::Row8 { d_exp, m_exp, .. } = grid else {
                    unreachable!("only row-grid groups are batched")
                };
                let base = r * cols + gi * g;
                screen::Lane {
                    vals: &w[base..base + g],
                    d_exp,
                    m_exp,
                }
            })
            .collect();
        let settled = screen::screen(&fmt.with_bits(bits), &lanes, &mut scratch);
        for (&(r, gi, grid), q) in batch.iter().zip(settled) {
            let base = r * cols + gi * g;
            for (v, &x) in vals.iter_mut().zip(&w[base..base + g]) {
                *v = x as f64;
            }
            let q = match q {
                Some(q) => q.in_tensor(fmt),
                None => choose_at(vals, fmt, bits, rule, &grid, r, gi)?,
            };
            out.set_group(r, gi, &q);
            q.codes_into(vals, &mut out.codes[base..base + g]);
        }
        batch.clear();
        Ok(())
    };
    for r in 0..rows {
        for (v, &x) in row.iter_mut().zip(&w[r * cols..(r + 1) * cols]) {
            *v = x as f64;
        }
        let grid = Grid::for_row(fmt, &row, g, |k| widths.at(r, k, fmt.bits));
        for gi in 0..gpr {
            let bits = widths.at(r, gi, fmt.bits);
            if rule == ScaleRule::Search
                && matches!(grid, Grid::Row8 { .. })
                && screen::screenable(&fmt.with_bits(bits), g)
            {
                if batch
                    .first()
                    .is_some_and(|&(r0, g0, _)| widths.at(r0, g0, fmt.bits) != bits)
                {
                    finish(&mut batch, &mut out, &mut vals)?;
                }
                batch.push((r, gi, grid));
                if batch.len() == screen::LANES {
                    finish(&mut batch, &mut out, &mut vals)?;
                }
                continue;
            }
            finish(&mut batch, &mut out, &mut vals)?;
            let base = r * cols + gi * g;
            for (v, &x) in vals.iter_mut().zip(&w[base..base + g]) {
                *v = x as f64;
            }
            let q = choose_at(&vals, fmt, bits, rule, &grid, r, gi)?;
            out.set_group(r, gi, &q);
            q.codes_into(&vals, &mut out.codes[base..base + g]);
        }
    }
    finish(&mut batch, &mut out, &mut vals)?;
    Ok(out)
}

/// [`choose`] for a `bits`-wide group of a matrix of `fmt`, its codes in the
/// matrix's convention, with the error located at `(row, group)`.
pub(crate) fn choose_at(
    vals: &[f64],
    fmt: &WeightFormat,
    bits: u8,
    rule: ScaleRule,
    grid: &Grid,
    row: usize,
    group: usize,
) -> Result<GroupQ, QuantError> {
    choose(vals, &fmt.with_bits(bits), rule, grid)
        .map(|q| q.in_tensor(fmt))
        .map_err(|(what, value)| QuantError::ScaleOverflow {
            what,
            row,
            group,
            value,
        })
}

/// Shape, format and finiteness checks shared by the quantizers.
pub(crate) fn check_weights(
    w: &[f32],
    rows: usize,
    cols: usize,
    fmt: &WeightFormat,
) -> Result<(), QuantError> {
    fmt.check_cols(cols)?;
    let expected = rows.checked_mul(cols).ok_or(QuantError::ShapeMismatch {
        what: "weight",
        expected: usize::MAX,
        got: w.len(),
    })?;
    if w.len() != expected {
        return Err(QuantError::ShapeMismatch {
            what: "weight",
            expected,
            got: w.len(),
        });
    }
    if let Some(index) = w.iter().position(|x| !x.is_finite()) {
        return Err(QuantError::NonFiniteWeight {
            index,
            row: index / cols,
            col: index % cols,
            value: w[index],
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;
    use crate::Sf16;

    fn fmt(s: &str) -> WeightFormat {
        s.parse().unwrap()
    }

    #[test]
    fn symmetric_uses_the_most_negative_code() {
        for bits in [2u8, 3, 4, 5, 6, 8] {
            let f = fmt(&format!("s{bits}g32"));
            let half = 1i32 << (bits - 1);
            let mut rng = Rng::seeded(7 + bits as u64);
            // Row 0: largest magnitude negative; row 1: positive.
            let mut w: Vec<f32> = (0..64).map(|_| rng.gauss() as f32 * 0.1).collect();
            w[5] = -1.0;
            w[32 + 9] = 1.0;
            let q = quantize_rtn_plain(&w, 2, 32, &f).unwrap();
            assert_eq!(q.codes[5] as i32, -half, "{bits} bits, negative max");
            assert_eq!(q.codes[32 + 9] as i32, -half, "{bits} bits, positive max");
            assert!(q.scales[0].to_f64() > 0.0 && q.scales[1].to_f64() < 0.0);
            assert_eq!(q.scales[0], Sf16::from_f32(1.0 / half as f32).unwrap());
            let deq = q.dequant_f32();
            assert_eq!(deq[5], -1.0);
            assert_eq!(deq[32 + 9], 1.0);
        }
        // 4 bits: -8 appears.
        let w: Vec<f32> = (0..32)
            .map(|i| if i == 3 { -2.0 } else { 0.01 * i as f32 })
            .collect();
        let q = quantize_rtn_plain(&w, 1, 32, &fmt("s4g32")).unwrap();
        assert_eq!(q.codes[3], -8);
        assert!(q.codes.iter().all(|&c| (-8..=7).contains(&c)));
    }

    #[test]
    fn plain_error_is_at_most_half_a_step_except_clamped() {
        let mut rng = Rng::seeded(11);
        for name in [
            "s2g32", "s3g64", "s4g32", "s5g128", "s6row", "s8g32", "a2g32", "a3row", "a4g32",
            "a5g64", "a6g128", "a8g32", "a3g32h", "s4g64h", "a8g32h", "s8rowh",
        ] {
            let f = fmt(name);
            let (rows, cols) = (8, 256);
            let w: Vec<f32> = (0..rows * cols)
                .map(|_| (rng.gauss() * 0.05) as f32)
                .collect();
            for rule in [ScaleRule::Plain, ScaleRule::Search] {
                let q = quantize_rtn_with(&w, rows, cols, &f, rule).unwrap();
                let deq = q.dequant_f32();
                let g = f.group_len(cols);
                let (lo, hi) = f.code_range();
                for (i, (&x, &y)) in w.iter().zip(&deq).enumerate() {
                    let gi = (i / cols) * q.groups_per_row() + (i % cols) / g;
                    let d = q.scales[gi].to_f64().abs();
                    let c = q.codes[i] as i32;
                    let err = (x as f64 - y as f64).abs();
                    let clamped = c == lo || c == hi;
                    if !clamped {
                        assert!(
                            err <= d / 2.0 * (1.0 + 1e-6) + 1e-7,
                            "{name} {rule:?} {i}: err {err} d {d}"
                        );
                    }
                    let free = f.scales == crate::ScaleStore::Sf16;
                    if rule == ScaleRule::Plain && c != hi && ((f.symmetric && free) || c != lo) {
                        // Plain symmetric never clamps at the bottom: the
                        // largest magnitude maps to it; only the top clamps.
                        // (On the coarser 8-bit scale grid the rounded scale
                        // may push the extreme past either end.)
                        assert!(err <= d / 2.0 * (1.0 + 1e-6) + 1e-7, "{name} {i}");
                    }
                }
                // Plain symmetric: only the top code may be clamped by much
                // (the rounded scale may push -2^(b-1) a hair past).
                assert!(q.codes.iter().all(|&c| (lo..=hi).contains(&(c as i32))));
            }
        }
    }

    #[test]
    fn asymmetric_is_exact_on_a_grid() {
        for bits in [2u8, 3, 4, 5, 6, 8] {
            let f = fmt(&format!("a{bits}g32"));
            let qmax = (1u32 << bits) - 1;
            // d and m exactly representable in f16; values exact in f32.
            let d = half::f16::from_f32(0.0137).to_f32();
            let m = half::f16::from_f32(-0.1).to_f32();
            let mut w = Vec::new();
            for k in 0..64u32 {
                // every group contains 0 and qmax
                let q = match k % 32 {
                    0 => 0,
                    1 => qmax,
                    j => (j * 7 + k / 32) % (qmax + 1),
                };
                let x = m + d * q as f32;
                assert_eq!(
                    x as f64,
                    m as f64 + d as f64 * q as f64,
                    "grid value not exact"
                );
                w.push(x);
            }
            for rule in [ScaleRule::Plain, ScaleRule::Search] {
                let qt = quantize_rtn_with(&w, 2, 32, &f, rule).unwrap();
                assert_eq!(qt.dequant_f32(), w, "{bits} bits {rule:?}");
                assert_eq!(qt.scales[0].to_f32(), d);
                assert_eq!(qt.offsets[0].to_f32(), m);
            }
        }
        // A symmetric grid that uses -2^(b-1) is exact too.
        let d = 0.25f32;
        let w: Vec<f32> = (0..32).map(|i| d * ((i % 16) as f32 - 8.0)).collect();
        let q = quantize_rtn(&w, 1, 32, &fmt("s4g32")).unwrap();
        assert_eq!(q.dequant_f32(), w);
    }

    #[test]
    fn zero_and_constant_groups() {
        for name in ["s4g32", "a4g32", "s8g32", "a8g32", "s2row", "a3row"] {
            let f = fmt(name);
            let mut w = vec![0.0f32; 64];
            for x in &mut w[32..] {
                *x = 0.75; // constant, representable in f16
            }
            for rule in [ScaleRule::Plain, ScaleRule::Search] {
                let q = quantize_rtn_with(&w[..32], 1, 32, &f, rule).unwrap();
                assert!(q.codes.iter().all(|&c| c == 0), "{name}");
                assert!(q.dequant_f32().iter().all(|&x| x == 0.0), "{name}");
                if f.group == crate::Group::Size(32) {
                    let q = quantize_rtn_with(&w, 1, 64, &f, rule).unwrap();
                    assert_eq!(q.dequant_f32(), w, "{name} {rule:?}");
                }
            }
        }
        // Values below the SF16 range: scale rounds to 0, codes 0, no NaN.
        let w = vec![1e-12f32; 32];
        for name in ["s4g32", "a4g32"] {
            let q = quantize_rtn(&w, 1, 32, &fmt(name)).unwrap();
            assert!(q
                .dequant_f32()
                .iter()
                .all(|x| x.is_finite() && x.abs() < 1e-7));
        }
    }

    #[test]
    fn search_is_never_worse_than_plain() {
        let mut rng = Rng::seeded(3);
        for name in ["s3g32", "s4g32", "a3g32", "a4g64", "s4row", "a2g32"] {
            let f = fmt(name);
            let (rows, cols) = (16, 128);
            let w: Vec<f32> = (0..rows * cols)
                .map(|_| (rng.gauss() * 0.02) as f32)
                .collect();
            let p = quantize_rtn_plain(&w, rows, cols, &f).unwrap();
            let s = quantize_rtn(&w, rows, cols, &f).unwrap();
            let sse = |q: &QTensor| -> f64 {
                q.dequant_f32()
                    .iter()
                    .zip(&w)
                    .map(|(&a, &b)| ((a - b) as f64).powi(2))
                    .sum()
            };
            let (ep, es) = (sse(&p), sse(&s));
            assert!(es <= ep * (1.0 + 1e-9), "{name}: search {es} plain {ep}");
            eprintln!("{name}: search/plain squared error = {:.3}", es / ep);
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let f = fmt("s4g32");
        let mut w = vec![0.5f32; 64];
        w[37] = f32::NAN;
        assert!(matches!(
            quantize_rtn(&w, 2, 32, &f),
            Err(QuantError::NonFiniteWeight {
                index: 37,
                row: 1,
                col: 5,
                ..
            })
        ));
        assert!(matches!(
            quantize_rtn(&w[..60], 2, 30, &f),
            Err(QuantError::ColsNotGroupMultiple {
                cols: 30,
                group: 32
            })
        ));
        assert!(matches!(
            quantize_rtn(&w[..63], 2, 32, &f),
            Err(QuantError::ShapeMismatch {
                expected: 64,
                got: 63,
                ..
            })
        ));
        let big = vec![1e6f32; 32];
        let e = quantize_rtn(&big, 1, 32, &f).unwrap_err();
        assert!(
            matches!(
                e,
                QuantError::ScaleOverflow {
                    what: "scale",
                    row: 0,
                    group: 0,
                    ..
                }
            ),
            "{e}"
        );
        let e = quantize_rtn(&big, 1, 32, &fmt("a4g32")).unwrap_err();
        assert!(
            matches!(e, QuantError::ScaleOverflow { what: "offset", .. }),
            "{e}"
        );
        assert!(e.to_string().contains("SF16"));
        let bad = WeightFormat {
            bits: 7,
            group: crate::Group::Row,
            symmetric: true,
            scales: crate::ScaleStore::Sf16,
        };
        assert_eq!(
            quantize_rtn(&big, 1, 32, &bad).unwrap_err(),
            QuantError::UnsupportedBits(7)
        );
    }

    #[test]
    fn row8_scales_sit_on_one_exponent_per_row_and_cost_little() {
        let mut rng = Rng::seeded(23);
        let (rows, cols) = (16, 256);
        // Rows of very different magnitudes, some groups tiny.
        let w: Vec<f32> = (0..rows * cols)
            .map(|i| {
                let row_scale = 10f64.powi((i / cols) as i32 % 5 - 3);
                let grp_scale = if (i / 32) % 7 == 0 { 0.02 } else { 1.0 };
                (rng.gauss() * row_scale * grp_scale) as f32
            })
            .collect();
        for (free, h) in [
            ("a4g32", "a4g32h"),
            ("s3g32", "s3g32h"),
            ("a3g64", "a3g64h"),
        ] {
            let (free, h) = (fmt(free), fmt(h));
            let qf = quantize_rtn(&w, rows, cols, &free).unwrap();
            let qh = quantize_rtn(&w, rows, cols, &h).unwrap();
            qh.validate().unwrap();
            for r in 0..rows {
                assert!(crate::group::row8_fits(qh.row_scales(r), h.symmetric));
                if let Some(o) = qh.row_offsets(r) {
                    assert!(crate::group::row8_fits(o, true));
                }
            }
            let sse = |q: &QTensor| -> f64 {
                let d = q.dequant_f64();
                w.iter()
                    .zip(&d)
                    .map(|(&a, &b)| (a as f64 - b).powi(2))
                    .sum()
            };
            let (ef, eh) = (sse(&qf), sse(&qh));
            eprintln!("{free}: sse {ef:.4e}, {h}: {eh:.4e}");
            assert!(eh >= ef * 0.98 && eh <= ef * 1.15, "{h}: {eh} vs {ef}");
            assert!(qh.storage_bits() < qf.storage_bits());
        }
    }

    #[test]
    fn row8_validation_rejects_free_scales() {
        let w: Vec<f32> = (0..64).map(|i| (i as f32 - 30.0) * 0.013).collect();
        let mut q = quantize_rtn(&w, 1, 64, &fmt("a4g32h")).unwrap();
        q.validate().unwrap();
        // 0x3c01 = 1 + 2^-10 needs 11 significant bits: no 8-bit integer
        // times a power of two shared with the other scale.
        q.scales[0] = Sf16(0x3c01);
        let e = q.validate().unwrap_err();
        assert!(e.to_string().contains("scales of row 0"), "{e}");
    }

    /// Random `[rows, cols]` weights.
    fn gauss_matrix(rows: usize, cols: usize, seed: u64, sd: f64) -> Vec<f32> {
        let mut rng = Rng::seeded(seed);
        (0..rows * cols)
            .map(|_| (rng.gauss() * sd) as f32)
            .collect()
    }

    /// Stored code of a `bits`-wide part of a `fmt` matrix, from the code
    /// `c` of the same value in a uniform `bits`-bit matrix.
    fn code_in_matrix(fmt: &WeightFormat, bits: u8, c: i8) -> i8 {
        if fmt.symmetric {
            c
        } else {
            (c as i32 + (1 << (bits - 1)) - fmt.code_bias()) as i8
        }
    }

    /// Matrices on the 8-bit row grid go through the screen in batches of
    /// groups that span rows and end where the width changes; every group
    /// must still be the exact search's, parameters and codes. Rows mix
    /// Gaussian groups, llama.cpp-style gridded ones (whose codes and
    /// refits sit on rounding boundaries) and constant ones (which the
    /// screen leaves to the exact search).
    #[test]
    fn row8_matrices_are_the_exact_search_group_by_group() {
        use crate::group::{choose_reference, Grid};
        let mut rng = Rng::seeded(5);
        let (rows, cols) = (23, 96);
        let w: Vec<f32> = (0..rows * cols)
            .map(|i| {
                let (r, g) = (i / cols, (i % cols) / 32);
                match (r + g) % 5 {
                    0 => 0.25,
                    1 | 2 => {
                        let d = half::f16::from_f64(0.004 * (1 + r % 3) as f64).to_f32();
                        d * rng.below(16) as f32 - 8.0 * d
                    }
                    _ => (rng.gauss() * 0.03) as f32,
                }
            })
            .collect();
        for name in ["a4g32h", "s4g32h", "a3g32h", "s6g32h"] {
            let f = fmt(name);
            let b = f.bits;
            let widths = [
                CodeWidths::default(),
                CodeWidths {
                    groups: vec![b, 2, b],
                    rows: vec![],
                },
                CodeWidths {
                    groups: vec![],
                    rows: (0..rows).map(|r| [b, b, 2, b - 1][r % 4]).collect(),
                },
            ];
            for wd in &widths {
                let q = quantize_rtn_mixed(&w, rows, cols, &f, wd, ScaleRule::Search).unwrap();
                let row64 = |r: usize| -> Vec<f64> {
                    w[r * cols..(r + 1) * cols]
                        .iter()
                        .map(|&x| x as f64)
                        .collect()
                };
                for r in 0..rows {
                    let row = row64(r);
                    let grid = Grid::for_row(&f, &row, 32, |k| wd.at(r, k, f.bits));
                    for (gi, vals) in row.chunks(32).enumerate() {
                        let b = wd.at(r, gi, f.bits);
                        let want =
                            choose_reference(vals, &f.with_bits(b), ScaleRule::Search, &grid)
                                .unwrap()
                                .in_tensor(&f);
                        let k = r * 3 + gi;
                        let at = format!("{name} {wd:?} row {r} group {gi}");
                        assert_eq!(q.scales[k], want.d, "{at}");
                        if !f.symmetric {
                            assert_eq!(q.offsets[k], want.m, "{at}");
                        }
                        for (i, &x) in vals.iter().enumerate() {
                            assert_eq!(q.codes[r * cols + gi * 32 + i], want.code(x), "{at} {i}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn mixed_group_widths_match_uniform_rtn_group_by_group() {
        let (rows, cols) = (5, 128);
        let w = gauss_matrix(rows, cols, 41, 0.04);
        let widths = CodeWidths {
            groups: vec![2, 4, 3, 4],
            rows: vec![],
        };
        for name in ["a4g32", "s4g32"] {
            let f = fmt(name);
            for rule in [ScaleRule::Plain, ScaleRule::Search] {
                let q = quantize_rtn_mixed(&w, rows, cols, &f, &widths, rule).unwrap();
                q.validate().unwrap();
                assert_eq!(q.widths, widths);
                assert_eq!(q.format, f);
                let deq = q.dequant_f64();
                for (gi, &b) in widths.groups.iter().enumerate() {
                    let u = quantize_rtn_with(&w, rows, cols, &f.with_bits(b), rule).unwrap();
                    let udeq = u.dequant_f64();
                    let (lo, hi) = if f.symmetric {
                        (-(1i32 << (b - 1)), (1 << (b - 1)) - 1)
                    } else {
                        (-8, (1 << b) - 1 - 8)
                    };
                    for r in 0..rows {
                        assert_eq!(q.bits_at(r, gi), b);
                        let k = r * 4 + gi;
                        assert_eq!(q.scales[k], u.scales[k], "{name} {rule:?} r{r} g{gi}");
                        if !f.symmetric {
                            assert_eq!(q.offsets[k], u.offsets[k], "{name} {rule:?} r{r} g{gi}");
                        }
                        for i in r * cols + gi * 32..r * cols + (gi + 1) * 32 {
                            assert_eq!(deq[i], udeq[i], "{name} {rule:?} {b} bits, element {i}");
                            let c = q.codes[i] as i32;
                            assert!((lo..=hi).contains(&c), "{name} {rule:?} code {c} at {i}");
                            assert_eq!(q.codes[i], code_in_matrix(&f, b, u.codes[i]), "{i}");
                        }
                    }
                }
                // Codes at their widths, the format's scales, 8 bits per entry.
                let scale_bits = if f.symmetric { 16 } else { 32 } * rows as u64 * 4;
                let want = rows as u64 * (32 * 2 + 32 * 4 + 32 * 3 + 32 * 4) + scale_bits + 8 * 4;
                assert_eq!(q.storage_bits(), want, "{name}");
                assert_eq!(want, if f.symmetric { 2432 } else { 2752 });
                assert!(q.storage_bits() < f.storage_bits(rows, cols));
            }
        }
    }

    #[test]
    fn mixed_row_widths_match_uniform_rtn_row_by_row() {
        let (rows, cols) = (5, 128);
        let w = gauss_matrix(rows, cols, 43, 0.04);
        let widths = CodeWidths {
            groups: vec![],
            rows: vec![3, 4, 2, 4, 4],
        };
        for name in ["a4g32", "s4g32", "a4row", "s4g64"] {
            let f = fmt(name);
            let gpr = f.groups_per_row(cols);
            for rule in [ScaleRule::Plain, ScaleRule::Search] {
                let q = quantize_rtn_mixed(&w, rows, cols, &f, &widths, rule).unwrap();
                q.validate().unwrap();
                let deq = q.dequant_f64();
                for (r, &b) in widths.rows.iter().enumerate() {
                    let u = quantize_rtn_with(&w, rows, cols, &f.with_bits(b), rule).unwrap();
                    let span = r * cols..(r + 1) * cols;
                    assert_eq!(
                        deq[span.clone()],
                        u.dequant_f64()[span.clone()],
                        "{name} row {r}"
                    );
                    assert_eq!(q.row_scales(r), u.row_scales(r), "{name} row {r}");
                    assert_eq!(q.row_offsets(r), u.row_offsets(r), "{name} row {r}");
                    for gi in 0..gpr {
                        assert_eq!(q.bits_at(r, gi), b);
                    }
                    let (lo, hi) = if f.symmetric {
                        (-(1i32 << (b - 1)), (1 << (b - 1)) - 1)
                    } else {
                        (-8, (1 << b) - 1 - 8)
                    };
                    for i in span {
                        let c = q.codes[i] as i32;
                        assert!((lo..=hi).contains(&c), "{name} {rule:?} code {c} at {i}");
                        assert_eq!(q.codes[i], code_in_matrix(&f, b, u.codes[i]), "{i}");
                    }
                }
                let scale_bits = if f.symmetric { 16 } else { 32 } * (rows * gpr) as u64;
                let want = cols as u64 * (3 + 4 + 2 + 4 + 4) + scale_bits + 8 * 5;
                assert_eq!(q.storage_bits(), want, "{name}");
                assert_eq!(
                    q.storage_bits(),
                    f.with_bits(3).storage_bits(1, cols)
                        + f.storage_bits(1, cols) * 3
                        + f.with_bits(2).storage_bits(1, cols)
                        + 40
                );
            }
        }
        let f = fmt("a4g32");
        let q = quantize_rtn_mixed(&w, rows, cols, &f, &widths, ScaleRule::Plain).unwrap();
        assert_eq!(q.storage_bits(), 128 * 17 + 5 * 4 * 32 + 40);
    }

    #[test]
    fn mixed_asymmetric_codes_keep_the_matrix_bias() {
        // Row of a4g32 with widths [2, 4]: group 0 on an exact 2-bit grid,
        // group 1 on an exact 4-bit grid.
        let d = half::f16::from_f32(0.0137).to_f32();
        let m = half::f16::from_f32(-0.1).to_f32();
        let mut w = Vec::new();
        let mut want_q = Vec::new();
        for k in 0..64u32 {
            let qmax = if k < 32 { 3 } else { 15 };
            let q = match k % 32 {
                0 => 0,
                1 => qmax,
                j => (j * 5 + 1) % (qmax + 1),
            };
            w.push(m + d * q as f32);
            want_q.push(q as i32);
        }
        let f = fmt("a4g32");
        let widths = CodeWidths {
            groups: vec![2, 4],
            rows: vec![],
        };
        for rule in [ScaleRule::Plain, ScaleRule::Search] {
            let q = quantize_rtn_mixed(&w, 1, 64, &f, &widths, rule).unwrap();
            q.validate().unwrap();
            assert_eq!(q.scales[0].to_f32(), d, "{rule:?}");
            assert_eq!(q.offsets[0].to_f32(), m, "{rule:?}");
            // Stored q - 8 for every width: the 2-bit group's min is -8, its
            // max -5; the 4-bit group spans -8..=7.
            assert_eq!(q.codes[0], -8);
            assert_eq!(q.codes[1], -5);
            assert_eq!(q.codes[32], -8);
            assert_eq!(q.codes[33], 7);
            for (i, (&c, &want)) in q.codes.iter().zip(&want_q).enumerate() {
                assert_eq!(c as i32, want - 8, "{rule:?} element {i}");
            }
            assert!(q.codes[..32].iter().all(|&c| (-8..=-5).contains(&c)));
            assert_eq!(q.dequant_f32(), w, "{rule:?}");
            // The uniform 2-bit tensor stores the same group as q - 2.
            let u = quantize_rtn_with(&w[..32], 1, 32, &fmt("a2g32"), rule).unwrap();
            let shifted: Vec<i8> = q.codes[..32].iter().map(|&c| c + 6).collect();
            assert_eq!(u.codes, shifted);
        }
    }

    #[test]
    fn mixed_widths_with_row8_scales_stay_on_their_grids() {
        let (rows, cols) = (6, 128);
        let mut rng = Rng::seeded(47);
        // Rows and groups of different magnitudes, so the row exponents
        // are shared by groups of very different scales.
        let w: Vec<f32> = (0..rows * cols)
            .map(|i| {
                let s = [0.01, 0.1, 0.03, 1.0][(i % cols) / 32] * (1 + i / cols) as f64;
                (rng.gauss() * s) as f32
            })
            .collect();
        let widths = CodeWidths {
            groups: vec![2, 4, 2, 3],
            rows: vec![],
        };
        for name in ["a4g32h", "s4g32h"] {
            let f = fmt(name);
            for rule in [ScaleRule::Plain, ScaleRule::Search] {
                let q = quantize_rtn_mixed(&w, rows, cols, &f, &widths, rule).unwrap();
                q.validate().unwrap();
                let deq = q.dequant_f64();
                for r in 0..rows {
                    for (gi, &b) in widths.groups.iter().enumerate() {
                        let k = r * 4 + gi;
                        let d = q.scales[k].to_f64();
                        let mut seen = Vec::new();
                        for i in r * cols + gi * 32..r * cols + (gi + 1) * 32 {
                            let c = q.codes[i] as i32;
                            let (lo, hi) = if f.symmetric {
                                (-(1i32 << (b - 1)), (1 << (b - 1)) - 1)
                            } else {
                                (-8, (1 << b) - 1 - 8)
                            };
                            assert!((lo..=hi).contains(&c), "{name} {rule:?} code {c} at {i}");
                            // On the b-bit grid of the group's parameters.
                            let x = if f.symmetric {
                                d * c as f64
                            } else {
                                d * (c + 8) as f64 + q.offsets[k].to_f64()
                            };
                            assert_eq!(deq[i], x);
                            if !seen.contains(&c) {
                                seen.push(c);
                            }
                            // Within half a step unless clamped at an end.
                            let err = (w[i] as f64 - deq[i]).abs();
                            if c != lo && c != hi {
                                assert!(
                                    err <= d.abs() * 0.5 * (1.0 + 1e-9) + 1e-12,
                                    "{name} {rule:?} {b} bits, {i}: err {err} d {d}"
                                );
                            }
                        }
                        assert!(seen.len() <= 1 << b, "{name} {seen:?}");
                        if b == 2 {
                            // Gaussian data uses the whole 2-bit grid.
                            assert!(seen.len() >= 3, "{name} {rule:?} {seen:?}");
                        }
                    }
                }
                let want = rows as u64 * 32 * (2 + 4 + 2 + 3) + f.scale_bits(rows, cols) + 32;
                assert_eq!(q.storage_bits(), want);
            }
        }
    }

    #[test]
    fn mixed_rejects_bad_widths() {
        let w = gauss_matrix(2, 64, 5, 0.1);
        let f = fmt("a4g32");
        for (groups, rows) in [
            (vec![2, 4, 4], vec![]),
            (vec![4, 4], vec![]),
            (vec![2, 3], vec![]),
            (vec![2, 4], vec![2, 4]),
            (vec![], vec![4]),
            (vec![5, 4], vec![]),
        ] {
            let widths = CodeWidths { groups, rows };
            assert!(
                quantize_rtn_mixed(&w, 2, 64, &f, &widths, ScaleRule::Search).is_err(),
                "{widths:?}"
            );
        }
        // Uniform widths are the plain quantizer.
        assert_eq!(
            quantize_rtn_mixed(&w, 2, 64, &f, &CodeWidths::default(), ScaleRule::Search).unwrap(),
            quantize_rtn(&w, 2, 64, &f).unwrap()
        );
    }
}
