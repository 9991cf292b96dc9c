//! Lossless import of llama.cpp `Q4_1` / `Q8_0` blocks: a source tensor
//! already stored in a block format that a chip format holds exactly is
//! taken over as it is, codes and scales, with no re-rounding.

use taalasc_numerics::Sf16;

use crate::{CodeWidths, Group, QTensor, QuantError, WeightFormat};

/// Elements per llama.cpp `Q4_1` / `Q8_0` block.
pub const GGUF_BLOCK: usize = 32;

fn check_import(
    rows: usize,
    cols: usize,
    blocks: &[(&'static str, usize)],
    codes: usize,
) -> Result<(), QuantError> {
    if cols == 0 || !cols.is_multiple_of(GGUF_BLOCK) {
        return Err(QuantError::ImportCols { cols });
    }
    let n = rows * cols;
    for &(what, got) in blocks {
        if got != n / GGUF_BLOCK {
            return Err(QuantError::ShapeMismatch {
                what,
                expected: n / GGUF_BLOCK,
                got,
            });
        }
    }
    if codes != n {
        return Err(QuantError::ShapeMismatch {
            what: "codes",
            expected: n,
            got: codes,
        });
    }
    Ok(())
}

fn sf16_bits(what: &'static str, block: usize, bits: u16) -> Result<Sf16, QuantError> {
    if bits & 0x7c00 == 0x7c00 {
        return Err(QuantError::NonFiniteBlock { what, block, bits });
    }
    Ok(Sf16(bits))
}

/// Lossless import of llama.cpp `Q4_1` blocks (`f16 d, f16 m`, 32 unsigned
/// 4-bit codes, `w = d·q + m`) as format `a4g32` (codes stored centred,
/// `q - 8`). `d`, `m`: one f16 bit pattern per block; `q`: the codes already
/// unpacked into element order (GGUF packs element `j` in the low nibble and
/// `j + 16` in the high nibble of byte `j`), `rows·cols` of them, row-major.
/// `dequant_f32` then reproduces llama.cpp's f32 values bit for bit.
pub fn import_q4_1(
    rows: usize,
    cols: usize,
    d: &[u16],
    m: &[u16],
    q: &[u8],
) -> Result<QTensor, QuantError> {
    check_import(
        rows,
        cols,
        &[("Q4_1 scales", d.len()), ("Q4_1 mins", m.len())],
        q.len(),
    )?;
    if let Some(i) = q.iter().position(|&c| c > 15) {
        return Err(QuantError::Q4Code {
            code: q[i],
            index: i,
        });
    }
    let format = WeightFormat {
        bits: 4,
        group: Group::Size(GGUF_BLOCK),
        symmetric: false,
        scales: crate::ScaleStore::Sf16,
    };
    Ok(QTensor {
        format,
        rows,
        cols,
        codes: q.iter().map(|&c| c as i8 - 8).collect(),
        scales: d
            .iter()
            .enumerate()
            .map(|(i, &b)| sf16_bits("Q4_1 scale", i, b))
            .collect::<Result<_, _>>()?,
        offsets: m
            .iter()
            .enumerate()
            .map(|(i, &b)| sf16_bits("Q4_1 min", i, b))
            .collect::<Result<_, _>>()?,
        widths: CodeWidths::default(),
    })
}

/// Lossless import of llama.cpp `Q8_0` blocks (`f16 d`, 32 signed int8
/// codes, `w = d·q`) as format `s8g32`. `d`: one f16 bit pattern per block;
/// `q`: `rows·cols` codes, row-major.
pub fn import_q8_0(rows: usize, cols: usize, d: &[u16], q: &[i8]) -> Result<QTensor, QuantError> {
    check_import(rows, cols, &[("Q8_0 scales", d.len())], q.len())?;
    let format = WeightFormat {
        bits: 8,
        group: Group::Size(GGUF_BLOCK),
        symmetric: true,
        scales: crate::ScaleStore::Sf16,
    };
    Ok(QTensor {
        format,
        rows,
        cols,
        codes: q.to_vec(),
        scales: d
            .iter()
            .enumerate()
            .map(|(i, &b)| sf16_bits("Q8_0 scale", i, b))
            .collect::<Result<_, _>>()?,
        offsets: Vec::new(),
        widths: CodeWidths::default(),
    })
}

/// A source tensor's llama.cpp blocks, borrowed (the loader owns them).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GgufBlocks<'a> {
    /// `Q4_1`: `w = d·q + m`, `q ∈ [0, 15]` unpacked into element order,
    /// `d` and `m` as f16 bits, one per block.
    Q4_1 {
        /// Rows of the matrix.
        rows: usize,
        /// Columns of the matrix (a multiple of [`GGUF_BLOCK`]).
        cols: usize,
        /// Scale of each block (f16 bits).
        d: &'a [u16],
        /// Minimum of each block (f16 bits).
        m: &'a [u16],
        /// `rows·cols` codes, row-major.
        q: &'a [u8],
    },
    /// `Q8_0`: `w = d·q`, `d` as f16 bits, one per block.
    Q8_0 {
        /// Rows of the matrix.
        rows: usize,
        /// Columns of the matrix (a multiple of [`GGUF_BLOCK`]).
        cols: usize,
        /// Scale of each block (f16 bits).
        d: &'a [u16],
        /// `rows·cols` codes, row-major.
        q: &'a [i8],
    },
}

impl GgufBlocks<'_> {
    /// The chip format that holds these blocks exactly: `a4g32` for `Q4_1`,
    /// `s8g32` for `Q8_0`.
    pub fn exact_format(&self) -> WeightFormat {
        let (bits, symmetric) = match self {
            GgufBlocks::Q4_1 { .. } => (4, false),
            GgufBlocks::Q8_0 { .. } => (8, true),
        };
        WeightFormat {
            bits,
            group: Group::Size(GGUF_BLOCK),
            symmetric,
            scales: crate::ScaleStore::Sf16,
        }
    }
}

/// Lossless import of `blocks` when `fmt` is the format that holds them
/// exactly ([`GgufBlocks::exact_format`]); `Ok(None)` for any other format
/// (the weight is then quantized from its values).
pub fn import_exact(
    blocks: &GgufBlocks<'_>,
    fmt: &WeightFormat,
) -> Result<Option<QTensor>, QuantError> {
    if *fmt != blocks.exact_format() {
        return Ok(None);
    }
    Ok(Some(match *blocks {
        GgufBlocks::Q4_1 {
            rows,
            cols,
            d,
            m,
            q,
        } => import_q4_1(rows, cols, d, m, q)?,
        GgufBlocks::Q8_0 { rows, cols, d, q } => import_q8_0(rows, cols, d, q)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;
    use half::f16;

    #[test]
    fn q4_1_import_is_bit_exact() {
        let (rows, cols) = (3, 64);
        let nb = rows * cols / 32;
        let mut rng = Rng::seeded(5);
        // Hand-built blocks including subnormal, negative and large values.
        let mut d: Vec<u16> = (0..nb)
            .map(|_| f16::from_f64(rng.gauss() * 0.01).to_bits())
            .collect();
        let mut m: Vec<u16> = (0..nb)
            .map(|_| f16::from_f64(rng.gauss() * 0.1).to_bits())
            .collect();
        d[0] = f16::from_f32(0.0123).to_bits();
        m[0] = f16::from_f32(-0.0987).to_bits();
        d[1] = 0x0001; // smallest subnormal
        m[1] = f16::from_f32(1000.0).to_bits();
        d[2] = f16::from_f32(-3.5).to_bits();
        m[2] = f16::from_f32(65504.0).to_bits();
        d[3] = 0;
        let q: Vec<u8> = (0..rows * cols)
            .map(|i| ((i * 7 + i / 5) % 16) as u8)
            .collect();
        let t = import_q4_1(rows, cols, &d, &m, &q).unwrap();
        t.validate().unwrap();
        assert_eq!(t.format.name(), "a4g32");
        let deq = t.dequant_f32();
        for i in 0..rows * cols {
            let b = i / 32;
            // llama.cpp: y = d * q + m in f32.
            let dd = f16::from_bits(d[b]).to_f32();
            let mm = f16::from_bits(m[b]).to_f32();
            let want = dd * q[i] as f32 + mm;
            assert_eq!(deq[i].to_bits(), want.to_bits(), "element {i}");
        }
        assert_eq!(t.storage_bits(), (rows * cols * 5) as u64);
    }

    #[test]
    fn q8_0_import_is_bit_exact() {
        let (rows, cols) = (2, 96);
        let nb = rows * cols / 32;
        let d: Vec<u16> = [0.00731f32, -0.5, 2.0e-6, 1234.0, 0.0, 0.03]
            .iter()
            .map(|&x| f16::from_f32(x).to_bits())
            .collect();
        assert_eq!(d.len(), nb);
        let q: Vec<i8> = (0..rows * cols)
            .map(|i| ((i * 37) % 256) as u8 as i8)
            .collect();
        assert!(q.contains(&-128) || q.contains(&127) || q.iter().any(|&c| c < -100));
        let t = import_q8_0(rows, cols, &d, &q).unwrap();
        t.validate().unwrap();
        assert_eq!(t.format.name(), "s8g32");
        let deq = t.dequant_f32();
        for i in 0..rows * cols {
            let want = f16::from_bits(d[i / 32]).to_f32() * q[i] as f32;
            assert_eq!(deq[i].to_bits(), want.to_bits(), "element {i}");
        }
        assert_eq!(t.storage_bits(), (rows * cols) as u64 * 8 + nb as u64 * 16);
    }

    #[test]
    fn import_rejects_bad_input() {
        let d = vec![0u16; 2];
        let q8 = vec![0i8; 64];
        assert!(import_q8_0(1, 64, &d[..1], &q8).is_err());
        assert!(import_q8_0(2, 32, &d, &q8[..63]).is_err());
        assert!(import_q8_0(1, 48, &d, &q8).is_err());
        assert!(import_q8_0(1, 64, &[0x7c00, 0], &q8).is_err());
        assert!(import_q8_0(1, 64, &d, &q8).is_ok());
        let q4 = vec![16u8; 64];
        assert!(import_q4_1(1, 64, &d, &d, &q4).is_err());
        assert!(import_q4_1(1, 64, &d, &[0, 0x7e00], &[0; 64]).is_err());
        assert!(import_q4_1(1, 64, &d, &d, &[15; 64]).is_ok());
    }

    #[test]
    fn rtn_of_q8_0_values_reproduces_the_blocks() {
        // A Q8_0 block whose largest magnitude is -128·d re-quantizes to the
        // same codes and scale with the plain symmetric rule.
        let d = f16::from_f32(0.0117).to_bits();
        let mut q: Vec<i8> = (0..32).map(|i| (i * 9 % 200 - 100) as i8).collect();
        q[4] = -128;
        let t = import_q8_0(1, 32, &[d], &q).unwrap();
        let w = t.dequant_f32();
        let r = crate::quantize_rtn_plain(&w, 1, 32, &t.format).unwrap();
        assert_eq!(r, t);
    }

    #[test]
    fn import_exact_takes_only_the_format_that_holds_the_blocks() {
        let d = [f16::from_f32(0.5).to_bits(), f16::from_f32(-0.25).to_bits()];
        let m = [f16::from_f32(1.0).to_bits(), 0];
        let q4: Vec<u8> = (0..64).map(|i| (i % 16) as u8).collect();
        let b = GgufBlocks::Q4_1 {
            rows: 1,
            cols: 64,
            d: &d,
            m: &m,
            q: &q4,
        };
        assert_eq!(b.exact_format().name(), "a4g32");
        let f = |s: &str| s.parse::<WeightFormat>().unwrap();
        // Same name, other scale storage or width: not exact.
        for other in ["a4g32h", "a4g64", "s4g32", "a5g32", "s8g32"] {
            assert_eq!(import_exact(&b, &f(other)).unwrap(), None, "{other}");
        }
        let t = import_exact(&b, &f("a4g32")).unwrap().unwrap();
        assert_eq!(t, import_q4_1(1, 64, &d, &m, &q4).unwrap());
        assert_eq!(t.dequant_f32()[3], 0.5 * 3.0 + 1.0);
        assert_eq!(t.dequant_f32()[32 + 5], -0.25 * 5.0);
        let q8: Vec<i8> = (0..64).map(|i| i as i8 - 32).collect();
        let b = GgufBlocks::Q8_0 {
            rows: 2,
            cols: 32,
            d: &d,
            q: &q8,
        };
        assert_eq!(b.exact_format().name(), "s8g32");
        assert_eq!(import_exact(&b, &f("a4g32")).unwrap(), None);
        let t = import_exact(&b, &f("s8g32")).unwrap().unwrap();
        assert_eq!(t.dequant_f32()[0], 0.5 * -32.0);
        assert_eq!(t.dequant_f32()[33], -0.25 * 1.0);
        // Bad blocks are an error, not a fallback.
        let bad = GgufBlocks::Q8_0 {
            rows: 1,
            cols: 64,
            d: &[0x7c00, 0],
            q: &q8,
        };
        assert!(matches!(
            import_exact(&bad, &f("s8g32")),
            Err(QuantError::NonFiniteBlock { block: 0, .. })
        ));
    }
}
