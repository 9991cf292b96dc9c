//! Quantized tensors and the lossless import of llama.cpp blocks.

use serde::{Deserialize, Serialize};
use taalasc_numerics::Sf16;

use crate::group::GroupQ;
use crate::{QuantError, WeightFormat};

/// A quantized `[rows, cols]` weight matrix (see the crate docs for the code
/// convention).
///
/// Value of element `(r, i)` in group `g = i / G` (index `r·groups_per_row + g`
/// into `scales`/`offsets`), with stored code `c`:
/// symmetric `w = d_g · c`; asymmetric `w = d_g · (c + 2^(b-1)) + m_g`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QTensor {
    /// The format (the widest, with mixed widths).
    pub format: WeightFormat,
    /// Output rows.
    pub rows: usize,
    /// Input columns.
    pub cols: usize,
    /// `rows · cols` stored codes, row-major.
    pub codes: Vec<i8>,
    /// `rows · groups_per_row` scales, row-major.
    pub scales: Vec<Sf16>,
    /// Same layout as `scales`; empty when symmetric.
    pub offsets: Vec<Sf16>,
    /// Code widths of the column groups or the rows, when they differ
    /// (see [`QTensor::bits_at`]); uniform: every code has `format.bits`.
    #[serde(default, skip_serializing_if = "CodeWidths::is_uniform")]
    pub widths: CodeWidths,
}

/// Code widths of the parts of a matrix, when they differ: per column group
/// (a slice of every row's inputs) or per row. At most one list is given;
/// the widest entry is the format's width.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CodeWidths {
    /// One width per column group, or empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<u8>,
    /// One width per row, or empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rows: Vec<u8>,
}

impl CodeWidths {
    /// Every code has the format's width.
    pub fn is_uniform(&self) -> bool {
        self.groups.is_empty() && self.rows.is_empty()
    }

    /// Width of the codes of row `r` in column group `g`; `bits` when uniform.
    pub fn at(&self, r: usize, g: usize, bits: u8) -> u8 {
        match (self.rows.get(r), self.groups.get(g)) {
            (Some(&b), _) | (None, Some(&b)) => b,
            (None, None) => bits,
        }
    }

    /// Bits of the width list itself (8 per entry).
    pub fn list_bits(&self) -> u64 {
        8 * (self.groups.len() + self.rows.len()) as u64
    }
}

impl QTensor {
    /// All codes, scales and offsets zero.
    pub(crate) fn zeros(format: WeightFormat, rows: usize, cols: usize) -> Self {
        let groups = rows * format.groups_per_row(cols);
        QTensor {
            format,
            rows,
            cols,
            codes: vec![0; rows * cols],
            scales: vec![Sf16::ZERO; groups],
            offsets: if format.symmetric {
                Vec::new()
            } else {
                vec![Sf16::ZERO; groups]
            },
            widths: CodeWidths::default(),
        }
    }

    /// Code width `b' <= b` of row `r`, column group `g` (`b = format.bits`,
    /// the widest).
    ///
    /// A matrix may give its column groups, or its rows, different widths.
    /// Codes keep one convention for the whole matrix, so the datapath is
    /// unchanged: symmetric codes lie in `[-2^(b'-1), 2^(b'-1)-1]`;
    /// asymmetric ones are `q - 2^(b-1)` with `q ∈ [0, 2^b' - 1]`, the ROM
    /// holding `q` in `b'` bits and the decoder adding the constant. A column
    /// group is one slice of the weight ROM with its own word width; rows of
    /// different widths sit in ROMs of different widths, found by the row's
    /// width tag.
    pub fn bits_at(&self, r: usize, g: usize) -> u8 {
        self.widths.at(r, g, self.format.bits)
    }

    /// The format's name, or for mixed widths the widths and how many column
    /// groups or rows have each: `a4g32h[groups 3:10,4:8]`.
    pub fn format_name(&self) -> String {
        mixed_name(&self.format, &self.widths)
    }

    pub(crate) fn set_group(&mut self, row: usize, group: usize, q: &GroupQ) {
        let i = row * self.groups_per_row() + group;
        self.scales[i] = q.d;
        if !self.format.symmetric {
            self.offsets[i] = q.m;
        }
    }

    /// Group length `G`.
    pub fn group_len(&self) -> usize {
        self.format.group_len(self.cols)
    }

    /// Groups per row.
    pub fn groups_per_row(&self) -> usize {
        self.format.groups_per_row(self.cols)
    }

    /// [`WeightFormat::code_bias`]: datapath code = stored code + bias.
    pub fn code_bias(&self) -> i32 {
        self.format.code_bias()
    }

    /// Stored codes of row `r`.
    pub fn row_codes(&self, r: usize) -> &[i8] {
        &self.codes[r * self.cols..(r + 1) * self.cols]
    }

    /// Scales of row `r` (one per group).
    pub fn row_scales(&self, r: usize) -> &[Sf16] {
        let g = self.groups_per_row();
        &self.scales[r * g..(r + 1) * g]
    }

    /// Offsets of row `r`; `None` when symmetric.
    pub fn row_offsets(&self, r: usize) -> Option<&[Sf16]> {
        let g = self.groups_per_row();
        (!self.format.symmetric).then(|| &self.offsets[r * g..(r + 1) * g])
    }

    /// Exact storage in bits ([`WeightFormat::storage_bits`], with each
    /// column group or row at its own width, and the width list).
    pub fn storage_bits(&self) -> u64 {
        mixed_storage_bits(&self.format, &self.widths, self.rows, self.cols)
    }

    /// Checks the internal consistency (lengths, code range, format, finite
    /// SF16 values).
    pub fn validate(&self) -> Result<(), QuantError> {
        self.format.check_cols(self.cols)?;
        let groups = self.rows * self.groups_per_row();
        let want = |what, expected, got| {
            if expected == got {
                Ok(())
            } else {
                Err(QuantError::ShapeMismatch {
                    what,
                    expected,
                    got,
                })
            }
        };
        want("codes", self.rows * self.cols, self.codes.len())?;
        want("scales", groups, self.scales.len())?;
        want(
            "offsets",
            if self.format.symmetric { 0 } else { groups },
            self.offsets.len(),
        )?;
        check_widths(&self.format, &self.widths, self.rows, self.groups_per_row())?;
        // Group by group: one range per group, and the group's codes checked
        // by their minimum and maximum (a loop the compiler vectorizes); the
        // first code out of range is searched for only when there is one.
        let g = self.group_len().max(1);
        for r in 0..self.rows {
            for (gi, group) in self.row_codes(r).chunks(g).enumerate() {
                let (lo, hi) = group_code_range(&self.format, self.bits_at(r, gi));
                let (min, max) = group
                    .iter()
                    .fold((i8::MAX, i8::MIN), |(a, b), &c| (a.min(c), b.max(c)));
                if group.is_empty() || (lo <= min as i32 && max as i32 <= hi) {
                    continue;
                }
                let j = group
                    .iter()
                    .position(|&c| !(lo..=hi).contains(&(c as i32)))
                    .expect("a code outside the range exists");
                let index = r * self.cols + gi * g + j;
                return Err(QuantError::CodeOutOfRange {
                    code: self.codes[index],
                    index,
                    lo,
                    hi,
                });
            }
        }
        if let Some(s) = self
            .scales
            .iter()
            .chain(&self.offsets)
            .find(|s| s.0 & 0x7c00 == 0x7c00)
        {
            return Err(QuantError::NonFiniteSf16 { bits: s.0 });
        }
        if self.format.scales == crate::ScaleStore::Row8 {
            for r in 0..self.rows {
                let kinds = [
                    ("scales", self.row_scales(r), self.format.symmetric),
                    ("offsets", self.row_offsets(r).unwrap_or(&[]), true),
                ];
                for (what, values, signed) in kinds {
                    if !crate::group::row8_fits(values, signed) {
                        return Err(QuantError::NotRow8 {
                            what,
                            row: r,
                            format: self.format.name(),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Dequantized values, row-major. Each value is computed exactly in f64
    /// from the SF16 parameters (`d·c` or `d·(c + 2^(b-1)) + m` span fewer
    /// than 53 bits) and rounded once to f32.
    pub fn dequant_f32(&self) -> Vec<f32> {
        self.dequant_f64().into_iter().map(|x| x as f32).collect()
    }

    /// Dequantized values in f64 (exact).
    pub fn dequant_f64(&self) -> Vec<f64> {
        let g = self.group_len();
        let gpr = self.groups_per_row();
        let mut out = Vec::with_capacity(self.codes.len());
        for r in 0..self.rows {
            for gi in 0..gpr {
                let k = r * gpr + gi;
                let m = self.offsets.get(k).copied().unwrap_or(Sf16::ZERO);
                let q = GroupQ::new(&self.format, self.scales[k], m);
                let start = r * self.cols + gi * g;
                let end = (start + g).min((r + 1) * self.cols);
                out.extend(self.codes[start..end].iter().map(|&c| q.value(c)));
            }
        }
        out
    }
}

/// Stored-code range of `bits`-bit codes in a matrix of `fmt` (see
/// [`QTensor::bits_at`]).
pub(crate) fn group_code_range(fmt: &WeightFormat, bits: u8) -> (i32, i32) {
    if fmt.symmetric {
        fmt.with_bits(bits).code_range()
    } else {
        let bias = fmt.code_bias();
        (-bias, (1 << bits) - 1 - bias)
    }
}

/// Checks mixed widths against their format and shape: at most one list,
/// of one entry per column group or per row, each a supported width up to
/// `fmt.bits`, the widest equal to it, and not all equal (that is the plain
/// format, stored with no list).
pub(crate) fn check_widths(
    fmt: &WeightFormat,
    widths: &CodeWidths,
    rows: usize,
    groups_per_row: usize,
) -> Result<(), QuantError> {
    let bad = |why: String| Err(QuantError::BadWidths(why));
    let (list, what, want) = match (widths.groups.is_empty(), widths.rows.is_empty()) {
        (true, true) => return Ok(()),
        (false, true) => (&widths.groups, "column groups", groups_per_row),
        (true, false) => (&widths.rows, "rows", rows),
        (false, false) => return bad("both per column group and per row".into()),
    };
    if list.len() != want {
        return bad(format!("{} widths for {want} {what}", list.len()));
    }
    if let Some(b) = list
        .iter()
        .find(|b| !crate::format::SUPPORTED_BITS.contains(b) || **b > fmt.bits)
    {
        return bad(format!(
            "width {b} is not one of {:?} up to the format's {} bits",
            crate::format::SUPPORTED_BITS,
            fmt.bits
        ));
    }
    if list.iter().max() != Some(&fmt.bits) {
        return bad(format!(
            "the widest must have the format's {} bits",
            fmt.bits
        ));
    }
    if list.iter().all(|&b| b == fmt.bits) {
        return bad("all equal: store the plain format with no widths".into());
    }
    Ok(())
}

/// [`QTensor::storage_bits`] of a `[rows, cols]` matrix of `fmt` with
/// `widths`: each code at its width, the scales, and the width list.
pub fn mixed_storage_bits(
    fmt: &WeightFormat,
    widths: &CodeWidths,
    rows: usize,
    cols: usize,
) -> u64 {
    if widths.is_uniform() {
        return fmt.storage_bits(rows, cols);
    }
    let g = fmt.group_len(cols);
    let codes: u64 = if !widths.rows.is_empty() {
        widths.rows.iter().map(|&b| cols as u64 * b as u64).sum()
    } else {
        let per_row: u64 = widths
            .groups
            .iter()
            .enumerate()
            .map(|(k, &b)| g.min(cols - k * g) as u64 * b as u64)
            .sum();
        rows as u64 * per_row
    };
    codes + fmt.scale_bits(rows, cols) + widths.list_bits()
}

/// [`QTensor::format_name`] of `fmt` with `widths`.
pub fn mixed_name(fmt: &WeightFormat, widths: &CodeWidths) -> String {
    let (list, what) = if !widths.rows.is_empty() {
        (&widths.rows, "rows")
    } else if !widths.groups.is_empty() {
        (&widths.groups, "groups")
    } else {
        return fmt.name();
    };
    let mut counts = std::collections::BTreeMap::new();
    for &b in list {
        *counts.entry(b).or_insert(0usize) += 1;
    }
    let list: Vec<String> = counts.iter().map(|(b, n)| format!("{b}:{n}")).collect();
    format!("{}[{what} {}]", fmt.name(), list.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;

    fn widths(groups: &[u8], rows: &[u8]) -> CodeWidths {
        CodeWidths {
            groups: groups.to_vec(),
            rows: rows.to_vec(),
        }
    }

    /// `a4g32`, 2 x 64, group widths `[2, 4]`.
    fn mixed_a4() -> QTensor {
        let mut rng = Rng::seeded(17);
        let w: Vec<f32> = (0..128).map(|_| (rng.gauss() * 0.1) as f32).collect();
        let f: WeightFormat = "a4g32".parse().unwrap();
        let wd = widths(&[2, 4], &[]);
        crate::quantize_rtn_mixed(&w, 2, 64, &f, &wd, crate::ScaleRule::Search).unwrap()
    }

    fn rejects(q: &QTensor, why: &str) {
        let e = q.validate().unwrap_err();
        assert!(e.to_string().contains(why), "{why:?} not in {e}");
    }

    #[test]
    fn validate_checks_each_part_against_its_width() {
        let q = mixed_a4();
        q.validate().unwrap();
        assert_eq!(q.bits_at(1, 0), 2);
        assert_eq!(q.bits_at(1, 1), 4);
        // Asymmetric 2-bit group of a 4-bit matrix: stored q - 8, q <= 3.
        let mut t = q.clone();
        t.codes[32 + 5] = 7; // 4-bit group: q = 15, fine
        t.codes[64 + 3] = -5; // 2-bit group, row 1: q = 3, fine
        t.validate().unwrap();
        t.codes[64 + 3] = -4; // q = 4 > 3
        rejects(&t, "code -4 at 67 outside [-8, -5]");
        // The same code is fine once the group is 3 bits wide.
        t.widths = widths(&[3, 4], &[]);
        t.validate().unwrap();
        // Symmetric: a 2-bit group holds [-2, 1].
        let mut rng = Rng::seeded(19);
        let w: Vec<f32> = (0..64).map(|_| (rng.gauss() * 0.1) as f32).collect();
        let f: WeightFormat = "s4g32".parse().unwrap();
        let mut s = crate::quantize_rtn_mixed(
            &w,
            2,
            32,
            &f,
            &widths(&[], &[4, 2]),
            crate::ScaleRule::Plain,
        )
        .unwrap();
        s.validate().unwrap();
        assert!(s.row_codes(1).iter().all(|&c| (-2..=1).contains(&c)));
        s.codes[32] = 1;
        s.validate().unwrap();
        s.codes[32] = 2;
        rejects(&s, "code 2 at 32 outside [-2, 1]");
        s.codes[32] = -3;
        rejects(&s, "outside [-2, 1]");
        s.codes[32] = 0;
        s.codes[0] = 7; // row 0 is 4 bits wide
        s.validate().unwrap();
    }

    #[test]
    fn validate_rejects_bad_width_lists() {
        let q = mixed_a4();
        let with = |wd: CodeWidths| QTensor {
            widths: wd,
            ..q.clone()
        };
        rejects(&with(widths(&[2, 4], &[4, 2])), "both");
        rejects(
            &with(widths(&[2, 4, 4], &[])),
            "3 widths for 2 column groups",
        );
        rejects(&with(widths(&[], &[2, 4, 4])), "3 widths for 2 rows");
        rejects(&with(widths(&[4], &[])), "1 widths for 2 column groups");
        rejects(&with(widths(&[4, 4], &[])), "all equal");
        rejects(&with(widths(&[], &[4, 4])), "all equal");
        rejects(&with(widths(&[2, 3], &[])), "widest");
        rejects(&with(widths(&[5, 4], &[])), "width 5 is not one of");
        rejects(&with(widths(&[0, 4], &[])), "width 0 is not one of");
        // 7 bits is not a datapath width, even below the format's 8.
        let mut rng = Rng::seeded(23);
        let w: Vec<f32> = (0..64).map(|_| (rng.gauss() * 0.1) as f32).collect();
        let f: WeightFormat = "s8g32".parse().unwrap();
        let mut s = crate::quantize_rtn_mixed(
            &w,
            1,
            64,
            &f,
            &widths(&[6, 8], &[]),
            crate::ScaleRule::Search,
        )
        .unwrap();
        s.validate().unwrap();
        s.widths = widths(&[7, 8], &[]);
        rejects(&s, "width 7 is not one of");
        assert!(crate::quantize_rtn_mixed(
            &w,
            1,
            64,
            &f,
            &widths(&[7, 8], &[]),
            crate::ScaleRule::Search
        )
        .is_err());
        // Uniform: no list at all.
        let u = QTensor {
            widths: CodeWidths::default(),
            ..q.clone()
        };
        u.validate().unwrap();
        assert!(u.widths.is_uniform() && !q.widths.is_uniform());
    }

    #[test]
    fn mixed_names_and_storage() {
        let a4: WeightFormat = "a4g32".parse().unwrap();
        let s3h: WeightFormat = "s3g64h".parse().unwrap();
        assert_eq!(
            mixed_name(&a4, &widths(&[2, 4, 3, 4], &[])),
            "a4g32[groups 2:1,3:1,4:2]"
        );
        assert_eq!(
            mixed_name(&a4, &widths(&[], &[3, 4, 2, 4, 4])),
            "a4g32[rows 2:1,3:1,4:3]"
        );
        assert_eq!(
            mixed_name(&s3h, &widths(&[3, 2, 3, 3], &[])),
            "s3g64h[groups 2:1,3:3]"
        );
        assert_eq!(mixed_name(&a4, &CodeWidths::default()), "a4g32");
        assert_eq!(mixed_a4().format_name(), "a4g32[groups 2:1,4:1]");
        for name in ["a4g32", "s8g32", "s3row", "a3g64h", "s2g128", "a6rowh"] {
            let f: WeightFormat = name.parse().unwrap();
            for (rows, cols) in [(1, 128), (7, 256), (3, 384)] {
                assert_eq!(
                    mixed_storage_bits(&f, &CodeWidths::default(), rows, cols),
                    f.storage_bits(rows, cols),
                    "{name} {rows}x{cols}"
                );
            }
        }
        // 3 x 256 of s3g64h: groups [3, 2, 3, 3] -> per row 64·11 code bits;
        // scales 8 bits per group plus an 8-bit exponent per row; 4 list
        // entries.
        assert_eq!(
            mixed_storage_bits(&s3h, &widths(&[3, 2, 3, 3], &[]), 3, 256),
            3 * 64 * 11 + (3 * 4 + 3) * 8 + 32
        );
        // Rows [2, 4, 3] of a4g32, 64 columns: codes 64·9, scales and
        // offsets 32 bits per group, 3 list entries.
        assert_eq!(
            mixed_storage_bits(&a4, &widths(&[], &[2, 4, 3]), 3, 64),
            64 * 9 + 6 * 32 + 24
        );
    }
}
