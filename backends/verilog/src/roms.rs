//! `$readmemh` images of every memory macro of a plan.
//!
//! Weight ROM word (RFC 0003, `rtl/UNITS.md`): `R` row slices (`R` the
//! plan's rows per cycle), word `g·CH + c` holding chunk `c` of rows
//! `g·R .. g·R + R`, slice `j` (row `g·R + j`, all zero past the last row)
//! at bit `j·(lanes·b + nb·36)`. A slice, least significant first: `lanes`
//! codes of `b` bits (two's complement, 0 past the last column), then one
//! 36-bit scale field per block (`{d_mant:12, d_exp:6, m_mant:12,
//! m_exp:6}`, MSB first) of the block(s) the chunk covers.

use crate::plan::{blocks_per_word, MatRom, Plan, VecRom, VecSource, SCALE_FIELD_BITS};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use taalasc_image::ImageSource;
use taalasc_numerics::{self as nx, RopeTable};
use taalasc_quant::QTensor;

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

/// The weight ROM image of one matrix (or of a slice of its rows that
/// starts at a row group: `q.rows` a multiple of `rows`, or the matrix's
/// last rows), `rows` row slices per word.
pub fn mat_hex(q: &QTensor, m: &MatRom, lanes: usize, rows: usize) -> String {
    let b = m.bits as usize;
    let nb = blocks_per_word(lanes);
    let slice_bits = lanes * b + nb * SCALE_FIELD_BITS;
    let bpg = q.format.group_len(q.cols) / nx::A8_BLOCK;
    let blocks = q.cols / nx::A8_BLOCK;
    let groups = q.rows.div_ceil(rows);
    let mut w = Word::new(m.word_bits);
    let mut out = String::with_capacity(groups * m.chunks * (m.word_bits / 4 + 2));
    for g in 0..groups {
        for c in 0..m.chunks {
            w.clear();
            for j in 0..rows {
                let r = g * rows + j;
                if r >= q.rows {
                    break;
                }
                let at = j * slice_bits;
                let row = &q.codes[r * q.cols..(r + 1) * q.cols];
                for i in 0..lanes {
                    let col = c * lanes + i;
                    if col < q.cols {
                        w.put(at + i * b, b, row[col] as i64);
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
                            at + lanes * b + k * SCALE_FIELD_BITS,
                            SCALE_FIELD_BITS,
                            scale_field(q, r, blk / bpg),
                        );
                    }
                }
            }
            w.hex(&mut out);
        }
    }
    out
}

/// Codes read at once (a slice of whole rows) when a matrix's ROM image
/// is written: the codes and text in memory stay a few MB, whatever the
/// size of the matrix or the model.
pub const ROM_SLICE_CODES: usize = 1 << 22;

fn io_other(e: taalasc_image::ImageError) -> std::io::Error {
    std::io::Error::other(e)
}

/// Writes the weight ROM image of matrix `m` (the text [`mat_hex`] gives
/// for the whole matrix) to `out`, reading the matrix from `image` a slice
/// of whole row groups at a time.
pub fn write_mat_hex(
    image: &dyn ImageSource,
    m: &MatRom,
    (lanes, rows): (usize, usize),
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let step = (ROM_SLICE_CODES / m.cols.max(1))
        .max(1)
        .next_multiple_of(rows);
    let mut r0 = 0;
    while r0 < m.rows {
        let r1 = (r0 + step).min(m.rows);
        let q = image.matrix_rows(m.id, r0..r1).map_err(io_other)?;
        out.write_all(mat_hex(&q, m, lanes, rows).as_bytes())?;
        r0 = r1;
    }
    Ok(())
}

/// The image of a gain, bias or RoPE ROM.
pub fn vec_hex(image: &dyn ImageSource, v: &VecRom, context: usize) -> std::io::Result<String> {
    let mut out = String::new();
    let mut line = |x: u64, digits: usize| {
        let _ = writeln!(out, "{x:0digits$x}");
    };
    match &v.source {
        VecSource::Fixed(id) => {
            for &x in image.fixed16_values(*id).map_err(io_other)?.iter() {
                line(x as u32 as u64, 8);
            }
        }
        VecSource::Wide(id) => {
            // `width / 48` values per word, value j in bits 48·j.. (the
            // last word zero past the end).
            let per = (v.width / 48).max(1) as usize;
            for g in image.wide_values(*id).map_err(io_other)?.chunks(per) {
                for j in (0..per).rev() {
                    let x = g.get(j).copied().unwrap_or(0);
                    let _ = write!(out, "{:012x}", (x as u64) & ((1 << 48) - 1));
                }
                out.push('\n');
            }
        }
        VecSource::Rope { inv_freqs } => {
            let t = RopeTable::new(inv_freqs, context);
            for (c, s) in t.cos.iter().zip(&t.sin) {
                line(((*c as u16 as u64) << 16) | (*s as u16 as u64), 8);
            }
        }
    }
    Ok(out)
}

/// Every ROM image of the plan: `(file name, contents)`, in a fixed order.
/// Images are produced one at a time by the caller's `sink`, so a large
/// model never holds more than one matrix's text (see [`write_roms`] for
/// less: a slice of one matrix).
pub fn for_each_rom(
    image: &dyn ImageSource,
    plan: &Plan,
    mut sink: impl FnMut(&str, String) -> std::io::Result<()>,
) -> std::io::Result<()> {
    for e in &plan.engines {
        for m in &e.mats {
            let mut text = Vec::new();
            write_mat_hex(image, m, (plan.lanes, plan.rows), &mut text)?;
            sink(&m.file, String::from_utf8(text).expect("hex is ASCII"))?;
        }
        for v in e.gains.iter().chain(&e.biases).chain(&e.ropes) {
            sink(&v.file, vec_hex(image, v, plan.context)?)?;
        }
    }
    Ok(())
}

/// Writes every ROM image of the plan into `dir` (the `rom/` folder), the
/// same files and bytes as [`for_each_rom`] gives, streamed: a weight ROM
/// is read and written a slice of rows at a time ([`ROM_SLICE_CODES`]), so
/// memory does not grow with the matrix or the model.
pub fn write_roms(dir: &Path, image: &dyn ImageSource, plan: &Plan) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let named = |p: &Path, e: std::io::Error| {
        std::io::Error::new(e.kind(), format!("{}: {e}", p.display()))
    };
    for e in &plan.engines {
        for m in &e.mats {
            let p = dir.join(&m.file);
            let f = std::fs::File::create(&p).map_err(|e| named(&p, e))?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
            write_mat_hex(image, m, (plan.lanes, plan.rows), &mut w)
                .and_then(|()| w.flush())
                .map_err(|e| named(&p, e))?;
        }
        for v in e.gains.iter().chain(&e.biases).chain(&e.ropes) {
            let p = dir.join(&v.file);
            std::fs::write(&p, vec_hex(image, v, plan.context)?).map_err(|e| named(&p, e))?;
        }
    }
    Ok(())
}
