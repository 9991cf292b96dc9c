//! Weight formats (RFC 0002 §Weights): width, group, symmetric/asymmetric,
//! their names (`a4g32`, `s8g32`, `s3row`) and exact storage cost.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::QuantError;

/// The code widths the datapath supports.
pub const SUPPORTED_BITS: [u8; 6] = [2, 3, 4, 5, 6, 8];

/// How many consecutive inputs of a row share one scale (and offset).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Group {
    /// `G` consecutive inputs; a positive multiple of 32 (the `A8` block),
    /// normally 32, 64 or 128.
    Size(usize),
    /// One group per row (`G = cols`).
    Row,
}

/// How the group scales (and offsets) are stored in ROM.
///
/// The datapath always sees one `SF16` value per group (RFC 0002 §Weights);
/// this only decides which `SF16` values are allowed and what they cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ScaleStore {
    /// Every scale (and offset) a free `SF16`: 16 bits per group each.
    #[default]
    Sf16,
    /// Two levels, K-quant style (name suffix `h`): per group an 8-bit
    /// integer `n_g` (scale: unsigned `0..=255` for asymmetric formats,
    /// signed `-128..=127` for symmetric ones; offset: signed), per row and
    /// kind one power-of-two exponent `E` stored in 8 bits. The group's
    /// value `n_g · 2^E` is an exact `SF16` (8 significant bits,
    /// `-24 <= E <= 7`), so the datapath is unchanged; the hardware forms it
    /// by feeding `n_g` to the multiplier and `E` to the shifter.
    Row8,
}

/// A weight format `(b, G, symmetric|asymmetric, scale storage)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WeightFormat {
    /// Code width `b ∈ {2, 3, 4, 5, 6, 8}`.
    pub bits: u8,
    /// Inputs per scale: a fixed group size or the whole row.
    pub group: Group,
    /// Symmetric: `w = d·q`. Asymmetric: `w = d·q + m` (one more `SF16` per group).
    pub symmetric: bool,
    /// How the scales (and offsets) are stored.
    #[serde(default)]
    pub scales: ScaleStore,
}

/// Smallest and largest row exponent of [`ScaleStore::Row8`]: `n · 2^E`
/// with `|n| <= 255` is then an exact, finite `SF16` (subnormals included).
pub const ROW8_EXP_MIN: i32 = -24;
/// See [`ROW8_EXP_MIN`].
pub const ROW8_EXP_MAX: i32 = 7;

impl WeightFormat {
    /// A validated format.
    pub fn new(bits: u8, group: Group, symmetric: bool) -> Result<Self, QuantError> {
        let f = WeightFormat {
            bits,
            group,
            symmetric,
            scales: ScaleStore::Sf16,
        };
        f.validate()?;
        Ok(f)
    }

    /// Checks the width and the group size (independent of the shape).
    pub fn validate(&self) -> Result<(), QuantError> {
        if !SUPPORTED_BITS.contains(&self.bits) {
            return Err(QuantError::UnsupportedBits(self.bits));
        }
        if let Group::Size(g) = self.group {
            if g == 0 || !g.is_multiple_of(32) {
                return Err(QuantError::BadGroupSize(g));
            }
        }
        Ok(())
    }

    /// [`Self::validate`] plus the shape: `cols > 0` and a whole number of
    /// groups per row.
    pub fn check_cols(&self, cols: usize) -> Result<(), QuantError> {
        self.validate()?;
        if cols == 0 {
            return Err(QuantError::NoColumns);
        }
        let g = self.group_len(cols);
        if !cols.is_multiple_of(g) {
            return Err(QuantError::ColsNotGroupMultiple { cols, group: g });
        }
        Ok(())
    }

    /// The group length `G` for rows of `cols` inputs.
    pub fn group_len(&self, cols: usize) -> usize {
        match self.group {
            Group::Size(g) => g,
            Group::Row => cols,
        }
    }

    /// Groups per row (`cols / G`, rounded up; 0 when `cols == 0`).
    pub fn groups_per_row(&self, cols: usize) -> usize {
        let g = self.group_len(cols);
        if g == 0 {
            0
        } else {
            cols.div_ceil(g)
        }
    }

    /// `SF16` values per group: 1 (scale) or 2 (scale and offset).
    pub fn sf16_per_group(&self) -> u64 {
        if self.symmetric {
            1
        } else {
            2
        }
    }

    /// The same format with two-level 8-bit scales ([`ScaleStore::Row8`]).
    pub fn with_row8(mut self) -> Self {
        self.scales = ScaleStore::Row8;
        self
    }

    /// Exact storage of a `[rows, cols]` matrix in bits: every code (`b`
    /// bits) plus every scale (and offset when asymmetric): 16 bits per group
    /// each for `SF16`, or 8 bits per group plus an 8-bit exponent per row
    /// each for [`ScaleStore::Row8`].
    pub fn storage_bits(&self, rows: usize, cols: usize) -> u64 {
        let codes = rows as u64 * cols as u64 * self.bits as u64;
        let groups = rows as u64 * self.groups_per_row(cols) as u64;
        let kinds = self.sf16_per_group();
        match self.scales {
            ScaleStore::Sf16 => codes + groups * 16 * kinds,
            ScaleStore::Row8 => codes + (groups + rows as u64) * 8 * kinds,
        }
    }

    /// Bits of the scales (and offsets, and `Row8` row exponents) of a
    /// `[rows, cols]` matrix: [`WeightFormat::storage_bits`] without the codes.
    pub fn scale_bits(&self, rows: usize, cols: usize) -> u64 {
        self.storage_bits(rows, cols) - rows as u64 * cols as u64 * self.bits as u64
    }

    /// The same format with `bits`-bit codes.
    pub fn with_bits(&self, bits: u8) -> WeightFormat {
        WeightFormat { bits, ..*self }
    }

    /// Storage per weight for rows of `cols` inputs: `b + 16/G` (symmetric)
    /// or `b + 32/G` (asymmetric) when `G` divides `cols`, with `SF16`
    /// scales; `b + 8/G + 8/cols` or `b + 16/G + 16/cols` with `Row8`.
    pub fn bits_per_weight(&self, cols: usize) -> f64 {
        if cols == 0 {
            return 0.0;
        }
        self.storage_bits(1, cols) as f64 / cols as f64
    }

    /// Offset between the stored code and the datapath code: 0 when
    /// symmetric, `2^(b-1)` when asymmetric (codes are stored centred).
    pub fn code_bias(&self) -> i32 {
        if self.symmetric {
            0
        } else {
            1 << (self.bits - 1)
        }
    }

    /// Range of the STORED code, `[-2^(b-1), 2^(b-1)-1]` for both kinds.
    pub fn code_range(&self) -> (i32, i32) {
        let h = 1i32 << (self.bits - 1);
        (-h, h - 1)
    }

    /// `s|a` + bits + `g<G>|row` + `h` for [`ScaleStore::Row8`]: `a4g32`,
    /// `s8g32`, `s3row`, `a3g32h`.
    pub fn name(&self) -> String {
        let kind = if self.symmetric { 's' } else { 'a' };
        let h = match self.scales {
            ScaleStore::Sf16 => "",
            ScaleStore::Row8 => "h",
        };
        match self.group {
            Group::Size(g) => format!("{kind}{}g{g}{h}", self.bits),
            Group::Row => format!("{kind}{}row{h}", self.bits),
        }
    }
}

impl fmt::Display for WeightFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for WeightFormat {
    type Err = QuantError;

    /// Parses [`WeightFormat::name`] (case-sensitive) and validates it.
    fn from_str(s: &str) -> Result<Self, QuantError> {
        let bad = || QuantError::BadFormatName(s.to_string());
        let symmetric = match s.as_bytes().first() {
            Some(b's') => true,
            Some(b'a') => false,
            _ => return Err(bad()),
        };
        let (rest, scales) = match s[1..].strip_suffix('h') {
            Some(r) => (r, ScaleStore::Row8),
            None => (&s[1..], ScaleStore::Sf16),
        };
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 3 {
            return Err(bad());
        }
        let bits: u8 = rest[..digits].parse().map_err(|_| bad())?;
        let tail = &rest[digits..];
        let group = if tail == "row" {
            Group::Row
        } else if let Some(g) = tail.strip_prefix('g') {
            if g.is_empty() || !g.bytes().all(|c| c.is_ascii_digit()) || g.starts_with('0') {
                return Err(bad());
            }
            Group::Size(g.parse().map_err(|_| bad())?)
        } else {
            return Err(bad());
        };
        let f = WeightFormat::new(bits, group, symmetric)?;
        Ok(WeightFormat { scales, ..f })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_round_trips_through_its_name() {
        for &bits in &SUPPORTED_BITS {
            for group in [
                Group::Size(32),
                Group::Size(64),
                Group::Size(128),
                Group::Row,
            ] {
                for symmetric in [true, false] {
                    let f = WeightFormat::new(bits, group, symmetric).unwrap();
                    for f in [f, f.with_row8()] {
                        let name = f.name();
                        assert_eq!(name, f.to_string());
                        assert_eq!(name.parse::<WeightFormat>().unwrap(), f, "{name}");
                    }
                }
            }
        }
        let f: WeightFormat = "a4g32".parse().unwrap();
        assert_eq!(
            f,
            WeightFormat {
                bits: 4,
                group: Group::Size(32),
                symmetric: false,
                scales: ScaleStore::Sf16,
            }
        );
        let f: WeightFormat = "s3g64h".parse().unwrap();
        assert_eq!(
            (f.bits, f.group, f.symmetric, f.scales),
            (3, Group::Size(64), true, ScaleStore::Row8)
        );
        let f: WeightFormat = "s3row".parse().unwrap();
        assert_eq!((f.bits, f.group, f.symmetric), (3, Group::Row, true));
    }

    #[test]
    fn bad_names_and_formats_are_rejected() {
        for s in [
            "", "x4g32", "a", "ag32", "a4", "a4g", "a4g032", "a4g-32", "a4rows", "A4g32", "a4g32x",
            "a1000g32", "a4g32hh", "a4gh", "h", "ah", "a4g32H",
        ] {
            assert!(
                matches!(s.parse::<WeightFormat>(), Err(QuantError::BadFormatName(_))),
                "{s:?}"
            );
        }
        assert_eq!(
            "a7g32".parse::<WeightFormat>(),
            Err(QuantError::UnsupportedBits(7))
        );
        assert_eq!(
            "s1row".parse::<WeightFormat>(),
            Err(QuantError::UnsupportedBits(1))
        );
        assert_eq!(
            "s4g48".parse::<WeightFormat>(),
            Err(QuantError::BadGroupSize(48))
        );
        let f: WeightFormat = "s4g64".parse().unwrap();
        assert_eq!(
            f.check_cols(96),
            Err(QuantError::ColsNotGroupMultiple {
                cols: 96,
                group: 64
            })
        );
        assert_eq!(f.check_cols(0), Err(QuantError::NoColumns));
        assert!(f.check_cols(128).is_ok());
        assert!("s4row"
            .parse::<WeightFormat>()
            .unwrap()
            .check_cols(7)
            .is_ok());
    }

    #[test]
    fn storage_counts_codes_scales_and_offsets_exactly() {
        let a4g32: WeightFormat = "a4g32".parse().unwrap();
        assert_eq!(
            a4g32.storage_bits(576, 1536),
            576 * 1536 * 4 + 576 * 48 * 32
        );
        assert_eq!(a4g32.bits_per_weight(1536), 5.0);
        let s8g32: WeightFormat = "s8g32".parse().unwrap();
        assert_eq!(
            s8g32.storage_bits(576, 1536),
            576 * 1536 * 8 + 576 * 48 * 16
        );
        assert_eq!(s8g32.bits_per_weight(1536), 8.5);
        let s3row: WeightFormat = "s3row".parse().unwrap();
        assert_eq!(s3row.storage_bits(1536, 576), 1536 * 576 * 3 + 1536 * 16);
        assert_eq!(s3row.bits_per_weight(576), 3.0 + 16.0 / 576.0);
        let a3row: WeightFormat = "a3row".parse().unwrap();
        assert_eq!(a3row.storage_bits(10, 64), 10 * 64 * 3 + 10 * 32);
        let a2g128: WeightFormat = "a2g128".parse().unwrap();
        assert_eq!(a2g128.storage_bits(3, 256), 3 * 256 * 2 + 3 * 2 * 32);
        assert_eq!(a2g128.bits_per_weight(256), 2.25);
        let s6g64: WeightFormat = "s6g64".parse().unwrap();
        assert_eq!(s6g64.bits_per_weight(640), 6.25);
        assert_eq!(s6g64.storage_bits(0, 640), 0);
        // Two-level 8-bit scales: 8 bits per group and kind, plus 8 bits
        // of row exponent per row and kind.
        let a4g32h: WeightFormat = "a4g32h".parse().unwrap();
        assert_eq!(
            a4g32h.storage_bits(576, 1536),
            576 * 1536 * 4 + 576 * 48 * 16 + 576 * 16
        );
        assert_eq!(a4g32h.bits_per_weight(1536), 4.5 + 16.0 / 1536.0);
        let s3g32h: WeightFormat = "s3g32h".parse().unwrap();
        assert_eq!(
            s3g32h.storage_bits(10, 64),
            10 * 64 * 3 + 10 * 2 * 8 + 10 * 8
        );
    }

    #[test]
    fn code_ranges() {
        let s4: WeightFormat = "s4g32".parse().unwrap();
        assert_eq!((s4.code_range(), s4.code_bias()), ((-8, 7), 0));
        let a8: WeightFormat = "a8g32".parse().unwrap();
        assert_eq!((a8.code_range(), a8.code_bias()), ((-128, 127), 128));
        let a2: WeightFormat = "a2row".parse().unwrap();
        assert_eq!((a2.code_range(), a2.code_bias()), ((-2, 1), 2));
    }
}
