//! `$readmemh` images of every memory macro of a plan.
//!
//! Weight ROM word (RFC 0003, `rtl/UNITS.md`): for row `r`, chunk `c`
//! (`lanes` columns), least significant first: `lanes` codes of `b` bits
//! (two's complement, 0 past the last column), then one 36-bit scale field
//! per block (`{d_mant:12, d_exp:6, m_mant:12, m_exp:6}`, MSB first) of the
//! block(s) the chunk covers.

use crate::plan::{blocks_per_word, MatRom, Plan, VecRom, VecSource, SCALE_FIELD_BITS};
use std::fmt::Write as _;
use taalasc_numerics::{self as nx, RopeTable};
use taalasc_quant::QTensor;
use taalasc_reference::image::{ChipImage, Param};

/// A little-endian bit vector that prints as one hex word.
struct Word {
    bits: usize,
    limbs: Vec<u64>,
}

impl Word {
    fn new(bits: usize) -> Self {
        Word {
            bits,
            limbs: vec![0; bits.div_ceil(64)],
        }
    }

    fn clear(&mut self) {
        self.limbs.fill(0);
    }

    /// Puts the low `width` bits of `v` at bit `at`.
    fn put(&mut self, at: usize, width: usize, v: i64) {
        let v = (v as u64)
            & if width == 64 {
                u64::MAX
            } else {
                (1 << width) - 1
            };
        let (l, o) = (at / 64, at % 64);
        self.limbs[l] |= v << o;
        if o + width > 64 {
            self.limbs[l + 1] |= v >> (64 - o);
        }
    }

    fn hex(&self, out: &mut String) {
        let digits = self.bits.div_ceil(4);
        for d in (0..digits).rev() {
            let nib = (self.limbs[d * 4 / 64] >> ((d * 4) % 64)) & 0xf;
            out.push(char::from_digit(nib as u32, 16).expect("nibble"));
        }
        out.push('\n');
    }
}

/// The 36-bit scale field of group `g` of row `r`.
fn scale_field(q: &QTensor, r: usize, g: usize) -> i64 {
    let gpr = q.format.groups_per_row(q.cols);
    let (dm, de) = q.scales[r * gpr + g].mant_exp();
    let (mm, me) = if q.format.symmetric {
        (0, 0)
    } else {
        q.offsets[r * gpr + g].mant_exp()
    };
    let f = |v: i32, w: u32| (v as i64) & ((1 << w) - 1);
    (f(dm, 12) << 24) | (f(de, 6) << 18) | (f(mm, 12) << 6) | f(me, 6)
}

/// The weight ROM image of one matrix.
pub fn mat_hex(q: &QTensor, m: &MatRom, lanes: usize) -> String {
    let b = m.bits as usize;
    let nb = blocks_per_word(lanes);
    let bpg = q.format.group_len(q.cols) / nx::A8_BLOCK;
    let blocks = q.cols / nx::A8_BLOCK;
    let mut w = Word::new(m.word_bits);
    let mut out = String::with_capacity(q.rows * m.chunks * (m.word_bits / 4 + 2));
    for r in 0..q.rows {
        let row = &q.codes[r * q.cols..(r + 1) * q.cols];
        for c in 0..m.chunks {
            w.clear();
            for i in 0..lanes {
                let col = c * lanes + i;
                if col < q.cols {
                    w.put(i * b, b, row[col] as i64);
                }
            }
            for k in 0..nb {
                let blk = if lanes >= nx::A8_BLOCK {
                    c * lanes / nx::A8_BLOCK + k
                } else {
                    c * lanes / nx::A8_BLOCK
                };
                if blk < blocks {
                    w.put(
                        lanes * b + k * SCALE_FIELD_BITS,
                        SCALE_FIELD_BITS,
                        scale_field(q, r, blk / bpg),
                    );
                }
            }
            w.hex(&mut out);
        }
    }
    out
}

/// The image of a gain, bias or RoPE ROM.
pub fn vec_hex(image: &ChipImage, v: &VecRom, context: usize) -> String {
    let mut out = String::new();
    let mut line = |x: u64, digits: usize| {
        let _ = writeln!(out, "{x:0digits$x}");
    };
    match &v.source {
        VecSource::Fixed(id) => {
            if let Param::Fixed16(vals) = image.param(*id) {
                for &x in vals {
                    line(x as u32 as u64, 8);
                }
            }
        }
        VecSource::Wide(id) => {
            if let Param::Wide(vals) = image.param(*id) {
                for &x in vals {
                    line((x as u64) & ((1 << 48) - 1), 12);
                }
            }
        }
        VecSource::Rope { inv_freqs } => {
            let t = RopeTable::new(inv_freqs, context);
            for (c, s) in t.cos.iter().zip(&t.sin) {
                line(((*c as u16 as u64) << 16) | (*s as u16 as u64), 8);
            }
        }
    }
    out
}

/// Every ROM image of the plan: `(file name, contents)`, in a fixed order.
/// Weight images are produced one at a time by the caller's `sink`, so a
/// large model never holds more than one matrix's text.
pub fn for_each_rom(
    image: &ChipImage,
    plan: &Plan,
    mut sink: impl FnMut(&str, String) -> std::io::Result<()>,
) -> std::io::Result<()> {
    for e in &plan.engines {
        for m in &e.mats {
            let Param::Matrix(q) = image.param(m.id) else {
                unreachable!("planned matrices are matrices")
            };
            sink(&m.file, mat_hex(q, m, plan.lanes))?;
        }
        for v in e.gains.iter().chain(&e.biases).chain(&e.ropes) {
            sink(&v.file, vec_hex(image, v, plan.context))?;
        }
    }
    Ok(())
}
