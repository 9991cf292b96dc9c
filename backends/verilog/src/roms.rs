//! `$readmemh` images of every memory macro of a plan.
//!
//! Weight ROMs (`rtl/UNITS.md`, "Packed weight ROMs"): per matrix a code
//! ROM, a scale ROM (each group's scale and offset stored once, SF16 or
//! `Row8` 8-bit integers) and for `Row8` a row exponent ROM, each word
//! holding `R` row slices (`R` = `MatRom::slices`, the plan's rows per
//! cycle; slice `j` of word `g·…` is row `g·R + j`, zero past the last
//! row). Code ROM word `g·CH + c`, slice `j`: chunk `c` of row `g·R + j`,
//! `lanes` codes of `b` bits, two's complement, 0 past the last column.
//! `tls_wfetch` decodes the macros to the units' expanded word (`R`
//! expanded slices).

use crate::plan::{MatRom, Plan, VecRom, VecSource};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use taalasc_image::ImageSource;
use taalasc_numerics::RopeTable;
use taalasc_quant::format::{ROW8_EXP_MAX, ROW8_EXP_MIN};
use taalasc_quant::{QTensor, Sf16};

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

/// The stored bits of a row's scales (or offsets) of one kind: SF16 bits,
/// or for `Row8` the 8-bit integers `n_g` and the row exponent `E` with
/// `n_g · 2^E` equal to each value (the same rule as the quantizer's
/// packing check: `E` the lowest set bit over the row, at most 7).
fn row_kind(values: &[Sf16], row8: bool, signed: bool) -> Result<(Vec<u64>, u64), String> {
    if !row8 {
        return Ok((values.iter().map(|v| v.0 as u64).collect(), 0));
    }
    let mut e = ROW8_EXP_MAX;
    for v in values {
        let (mant, exp) = v.mant_exp();
        if mant != 0 {
            e = e.min(exp + mant.trailing_zeros() as i32);
        }
    }
    if e < ROW8_EXP_MIN {
        return Err(format!(
            "a Row8 scale needs row exponent {e} < {ROW8_EXP_MIN}"
        ));
    }
    let (lo, hi) = if signed { (-128, 127) } else { (0, 255) };
    let mut n = Vec::with_capacity(values.len());
    for v in values {
        let (mant, exp) = v.mant_exp();
        let k = if mant == 0 { 0 } else { mant >> (e - exp) };
        if (mant != 0 && (k << (e - exp)) != mant) || !(lo..=hi).contains(&k) {
            return Err(format!(
                "Row8 value {} is not an 8-bit integer times 2^{e}",
                v.to_f64()
            ));
        }
        n.push((k as u64) & 0xff);
    }
    Ok((n, (e as u64) & 0xff))
}

/// A row's stored scales and row exponent, then its offsets and theirs.
type RowScales = (Vec<u64>, u64, Vec<u64>, u64);

/// The `$readmemh` images of one matrix's ROM macros (`m.macros`, in order:
/// codes, scales, row exponents), for whole row groups of `q` (a slice of
/// `m.slices`-aligned rows; rows past the slice's end are zero).
pub fn mat_hex(q: &QTensor, m: &MatRom, lanes: usize) -> Result<Vec<String>, String> {
    let b = m.bits as usize;
    let s = &m.scales;
    let kinds = 1 + m.asym as usize;
    let gpr = q.format.groups_per_row(q.cols);
    let glen = q.format.group_len(q.cols);
    let row_groups = q.rows.div_ceil(m.slices);
    let mut out: Vec<String> = m
        .macros
        .iter()
        .map(|r| {
            String::with_capacity(row_groups * r.depth.div_ceil(m.rows.max(1)) * (r.width / 4 + 2))
        })
        .collect();
    let mut cw = Word::new(m.macros[0].width);
    let mut sw = Word::new(m.macros[1].width);
    let mut ew = Word::new(m.macros.get(2).map_or(8, |r| r.width));
    let sew = s.kind_bits * kinds;
    // Per row of the word: stored scale bits per group and the row
    // exponent, then the same for the offsets.
    let mut rows_st: Vec<RowScales> = Vec::with_capacity(m.slices);
    for g in 0..row_groups {
        rows_st.clear();
        for j in 0..m.slices {
            let r = g * m.slices + j;
            if r >= q.rows {
                rows_st.push((vec![0; gpr], 0, vec![0; gpr], 0));
                continue;
            }
            let at = |e: String| format!("row {r}: {e}");
            let (d, de) = row_kind(
                &q.scales[r * gpr..(r + 1) * gpr],
                s.row8,
                q.format.symmetric,
            )
            .map_err(at)?;
            let (o, oe) = if q.format.symmetric {
                (vec![0; gpr], 0)
            } else {
                row_kind(&q.offsets[r * gpr..(r + 1) * gpr], s.row8, true).map_err(at)?
            };
            rows_st.push((d, de, o, oe));
        }
        // Codes.
        for c in 0..m.chunks {
            cw.clear();
            for j in 0..m.slices {
                let r = g * m.slices + j;
                if r >= q.rows {
                    continue;
                }
                let row = &q.codes[r * q.cols..(r + 1) * q.cols];
                for i in 0..lanes {
                    let col = c * lanes + i;
                    if col < q.cols {
                        cw.put((j * lanes + i) * b, b, row[col] as i64);
                    }
                }
            }
            cw.hex(&mut out[0]);
        }
        // Scales: entry t of a row is the group of its first column
        // (`t · granule`); entries past the row are zero.
        for w in 0..s.words_per_row {
            sw.clear();
            for (j, (d, _, o, _)) in rows_st.iter().enumerate() {
                for k in 0..s.per_word {
                    let col = (w * s.per_word + k) * s.granule;
                    if col >= q.cols {
                        continue;
                    }
                    let grp = col / glen;
                    let at = (j * s.per_word + k) * sew;
                    sw.put(at, s.kind_bits, d[grp] as i64);
                    if m.asym {
                        sw.put(at + s.kind_bits, s.kind_bits, o[grp] as i64);
                    }
                }
            }
            sw.hex(&mut out[1]);
        }
        // Row exponents.
        if s.row8 {
            ew.clear();
            for (j, (_, de, _, oe)) in rows_st.iter().enumerate() {
                ew.put(j * 8 * kinds, 8, *de as i64);
                if m.asym {
                    ew.put(j * 8 * kinds + 8, 8, *oe as i64);
                }
            }
            ew.hex(&mut out[2]);
        }
    }
    Ok(out)
}

/// Codes read at once (a slice of whole rows) when a matrix's ROM images
/// are written: the codes and text in memory stay a few MB, whatever the
/// size of the matrix or the model.
pub const ROM_SLICE_CODES: usize = 1 << 22;

fn io_other(e: taalasc_image::ImageError) -> std::io::Error {
    std::io::Error::other(e)
}

/// Writes the ROM images of matrix `m` (the texts [`mat_hex`] gives for the
/// whole matrix, one writer per macro of `m.macros`), reading the matrix
/// from `image` a slice of rows at a time.
pub fn write_mat_hex(
    image: &dyn ImageSource,
    m: &MatRom,
    lanes: usize,
    outs: &mut [&mut dyn std::io::Write],
) -> std::io::Result<()> {
    let step = (ROM_SLICE_CODES / m.cols.max(1))
        .max(1)
        .next_multiple_of(m.slices);
    let mut r0 = 0;
    while r0 < m.rows {
        let r1 = (r0 + step).min(m.rows);
        let q = image.matrix_rows(m.id, r0..r1).map_err(io_other)?;
        let texts = mat_hex(&q, m, lanes).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", m.weight),
            )
        })?;
        for (o, t) in outs.iter_mut().zip(texts) {
            o.write_all(t.as_bytes())?;
        }
        r0 = r1;
    }
    Ok(())
}

/// The image of a gain, bias or RoPE ROM.
pub fn vec_hex(image: &dyn ImageSource, v: &VecRom, context: usize) -> std::io::Result<String> {
    let mut out = String::new();
    match &v.source {
        VecSource::Fixed(id) => {
            // `width / 32` values per word (a scratchpad line), value j in
            // bits 32·j.. (the last word zero past the end).
            let per = (v.width / 32).max(1) as usize;
            for g in image.fixed16_values(*id).map_err(io_other)?.chunks(per) {
                for j in (0..per).rev() {
                    let x = g.get(j).copied().unwrap_or(0);
                    let _ = write!(out, "{:08x}", x as u32);
                }
                out.push('\n');
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
            // Per position, ceil(pairs / per) words of `per = width / 32`
            // entries `{cos, sin}`, pair k·per + j in bits 32·j.. (zero
            // past the last pair).
            let t = RopeTable::new(inv_freqs, context);
            let per = (v.width / 32).max(1) as usize;
            for p in 0..t.positions {
                for k in 0..t.pairs.div_ceil(per) {
                    for j in (0..per).rev() {
                        let i = k * per + j;
                        let w = if i < t.pairs {
                            let (c, s) = t.cos_sin(p, i);
                            ((c as u16 as u32) << 16) | s as u16 as u32
                        } else {
                            0
                        };
                        let _ = write!(out, "{w:08x}");
                    }
                    out.push('\n');
                }
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
        for bank in &e.banks {
            let mut texts: Vec<Vec<u8>> = vec![Vec::new(); bank.macros.len()];
            {
                let mut outs: Vec<&mut dyn std::io::Write> = texts
                    .iter_mut()
                    .map(|t| t as &mut dyn std::io::Write)
                    .collect();
                // The bank's matrices one after the other, in slot order.
                for &k in &bank.mats {
                    write_mat_hex(image, &e.mats[k], plan.lanes, &mut outs)?;
                }
            }
            for (r, t) in bank.macros.iter().zip(texts) {
                sink(&r.file, String::from_utf8(t).expect("hex is ASCII"))?;
            }
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
        for bank in &e.banks {
            let mut ws = Vec::with_capacity(bank.macros.len());
            for r in &bank.macros {
                let p = dir.join(&r.file);
                let f = std::fs::File::create(&p).map_err(|e| named(&p, e))?;
                ws.push(std::io::BufWriter::with_capacity(1 << 20, f));
            }
            let p = dir.join(&bank.macros[0].file);
            {
                let mut outs: Vec<&mut dyn std::io::Write> = ws
                    .iter_mut()
                    .map(|w| w as &mut dyn std::io::Write)
                    .collect();
                // The bank's matrices one after the other, in slot order.
                for &k in &bank.mats {
                    write_mat_hex(image, &e.mats[k], plan.lanes, &mut outs)
                        .map_err(|e| named(&p, e))?;
                }
            }
            for (w, r) in ws.iter_mut().zip(&bank.macros) {
                let p = dir.join(&r.file);
                w.flush().map_err(|e| named(&p, e))?;
            }
        }
        for v in e.gains.iter().chain(&e.biases).chain(&e.ropes) {
            let p = dir.join(&v.file);
            std::fs::write(&p, vec_hex(image, v, plan.context)?).map_err(|e| named(&p, e))?;
        }
    }
    Ok(())
}
