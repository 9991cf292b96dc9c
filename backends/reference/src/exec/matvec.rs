//! The matrix-vector unit of the reference: the bits of
//! [`nx::linear_row`], computed fast.
//!
//! Three paths, chosen at run time, all producing exactly the bits of
//! `linear_row` for every element (tests below compare them on random
//! matrices, including saturating and extreme-exponent cases):
//!
//! - portable: [`nx::linear::linear_row_decoded`] per (row, position), each
//!   row's scales decoded once;
//! - x86-64 with AVX-512 VNNI: weights repacked once per chip image (module
//!   `avx512`), 16 rows per vector, several positions per weight load;
//! - x86-64 with AVX2 only: the same scheme with 8 rows per vector and
//!   products by `vpmaddwd` on codes widened to i16 (module `avx2`).
//!
//! Work is split over positions in chunks, and over blocks of output rows
//! when there are too few positions for the workers (a decoded token);
//! every output element is computed by the same operations whatever the
//! split or the thread count.

use super::par_for_each;
use taalasc_ir::SimdLevel;
use taalasc_numerics::{self as nx, WeightRow};
use taalasc_quant::QTensor;

pub(crate) fn code_bias(q: &QTensor) -> i32 {
    if q.format.symmetric {
        0
    } else {
        1 << (q.format.bits - 1)
    }
}

pub(crate) fn row_of<'q>(q: &'q QTensor, r: usize) -> WeightRow<'q> {
    let group = q.format.group_len(q.cols);
    let gpr = q.cols.div_ceil(group);
    WeightRow {
        codes: &q.codes[r * q.cols..(r + 1) * q.cols],
        code_bias: code_bias(q),
        group,
        scales: &q.scales[r * gpr..(r + 1) * gpr],
        offsets: (!q.format.symmetric).then(|| &q.offsets[r * gpr..(r + 1) * gpr]),
    }
}

/// `A8` inputs of one linear layer: `[positions × cols]` mantissas,
/// `[positions × blocks]` exponents and block sums.
#[derive(Default)]
pub(crate) struct Acts {
    pub cols: usize,
    pub n: usize,
    pub mant: Vec<i8>,
    pub exp: Vec<i8>,
    pub sums: Vec<i32>,
}

impl Acts {
    /// Quantizes rows `from..t_n` of `x [t_n × cols]` (W48) to `A8`.
    #[cfg(test)]
    pub fn new(x: &[i64], cols: usize, from: usize, t_n: usize, threads: usize) -> Acts {
        let mut a = Acts::default();
        a.fill(x, cols, from, t_n, threads);
        a
    }

    /// [`Acts::new`] reusing this value's buffers (every element is
    /// rewritten).
    pub fn fill(&mut self, x: &[i64], cols: usize, from: usize, t_n: usize, threads: usize) {
        let n = t_n - from;
        let nb = cols / nx::A8_BLOCK;
        let a = self;
        a.cols = cols;
        a.n = n;
        a.mant.resize(n * cols, 0);
        a.exp.resize(n * nb, 0);
        a.sums.resize(n * nb, 0);
        if n == 0 || cols == 0 {
            return;
        }
        let x = &x[from * cols..t_n * cols];
        let per = n.div_ceil(threads.max(1) * 4).max(16);
        let parts = x
            .chunks(per * cols)
            .zip(a.mant.chunks_mut(per * cols))
            .zip(a.exp.chunks_mut(per * nb))
            .zip(a.sums.chunks_mut(per * nb));
        par_for_each(threads, parts, |(((x, m), e), s)| {
            for (((x, m), e), s) in x
                .chunks_exact(cols)
                .zip(m.chunks_exact_mut(cols))
                .zip(e.chunks_exact_mut(nb))
                .zip(s.chunks_exact_mut(nb))
            {
                nx::to_a8_into(x, nx::W_FRAC, m, e).expect("width checked in new()");
                for (s, mb) in s.iter_mut().zip(m.chunks_exact(nx::A8_BLOCK)) {
                    *s = nx::sum_i8(mb);
                }
            }
        });
    }

    fn mant(&self, t: usize) -> &[i8] {
        &self.mant[t * self.cols..(t + 1) * self.cols]
    }

    fn exp(&self, t: usize) -> &[i8] {
        let nb = self.cols / nx::A8_BLOCK;
        &self.exp[t * nb..(t + 1) * nb]
    }

    fn sums(&self, t: usize) -> &[i32] {
        let nb = self.cols / nx::A8_BLOCK;
        &self.sums[t * nb..(t + 1) * nb]
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2;

/// A weight matrix prepared for the fastest available path.
pub(crate) enum Prepared {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx512(Box<avx512::Packed>),
    #[cfg(target_arch = "x86_64")]
    Avx2(Box<avx2::Packed>),
}

/// The paths [`Prepared::with`] can choose from, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Path {
    Avx512,
    /// Named only by tests (the AVX2 kernel on an AVX-512 machine).
    #[cfg_attr(not(test), allow(dead_code))]
    Avx2,
    Portable,
}

/// A matrix's scales and offsets for a packed kernel of `L` rows per
/// vector: per (row group, group) the decoded mantissas and `exp + 24` of
/// each row's scale and offset (zeros for padding rows), and per row group
/// the largest shifts, which decide each position's path.
pub(crate) struct LaneScales<const L: usize> {
    pub cols: usize,
    /// 32-value blocks per row.
    pub nb: usize,
    pub blocks_per_group: usize,
    pub groups: usize,
    pub asym: bool,
    pub code_bias: i32,
    /// Per (row group, group), one lane per row: the scale's mantissa
    /// (`|m| <= 2047`) and `exp + W_FRAC` (`exp ∈ [-24, 5]`), and the
    /// offset's, held narrow (the kernels widen them as they load them):
    /// scales are a large part of what a decode step streams.
    pub dm: Vec<[i16; L]>,
    pub dk: Vec<[i8; L]>,
    pub mm: Vec<[i16; L]>,
    pub mk: Vec<[i8; L]>,
    dk_max: Vec<i32>,
    mk_max: Vec<i32>,
}

/// Largest shift `k` of the packed kernels' fast path (module `avx512`).
const K_MAX: i32 = 16;

impl<const L: usize> LaneScales<L> {
    /// `None` when `q` is outside the packed kernels' bounds (or malformed:
    /// the portable path then names the fault).
    pub fn new(q: &QTensor) -> Option<Self> {
        let cols = q.cols;
        let group = q.format.group_len(cols);
        let code_bias = code_bias(q);
        if cols == 0
            || !cols.is_multiple_of(nx::A8_BLOCK)
            || cols > 1 << 19
            || group == 0
            || !group.is_multiple_of(nx::A8_BLOCK)
            || !(0..=128).contains(&code_bias)
        {
            return None;
        }
        let groups = cols.div_ceil(group);
        let asym = !q.format.symmetric;
        let offsets = if asym { q.rows * groups } else { 0 };
        if q.codes.len() != q.rows * cols
            || q.scales.len() != q.rows * groups
            || q.offsets.len() != offsets
        {
            return None;
        }
        let rgs = q.rows.div_ceil(L);
        let mut p = LaneScales {
            cols,
            nb: cols / nx::A8_BLOCK,
            blocks_per_group: group / nx::A8_BLOCK,
            groups,
            asym,
            code_bias,
            dm: vec![[0; L]; rgs * groups],
            dk: vec![[0; L]; rgs * groups],
            mm: vec![[0; L]; rgs * groups],
            mk: vec![[0; L]; rgs * groups],
            dk_max: vec![i32::MIN; rgs],
            mk_max: vec![i32::MIN; rgs],
        };
        for r in 0..q.rows {
            let (rg, lane) = (r / L, r % L);
            let row = row_of(q, r);
            for g in 0..groups {
                let at = rg * groups + g;
                // SF16: |mant| <= 2047, exp ∈ [-24, 5] (so these fit).
                let (m, e) = row.scales[g].mant_exp();
                p.dm[at][lane] = i16::try_from(m).ok()?;
                p.dk[at][lane] = i8::try_from(e + nx::W_FRAC).ok()?;
                p.dk_max[rg] = p.dk_max[rg].max(e + nx::W_FRAC);
                if let Some(off) = row.offsets {
                    let (m, e) = off[g].mant_exp();
                    p.mm[at][lane] = i16::try_from(m).ok()?;
                    p.mk[at][lane] = i8::try_from(e + nx::W_FRAC).ok()?;
                    p.mk_max[rg] = p.mk_max[rg].max(e + nx::W_FRAC);
                }
            }
        }
        Some(p)
    }

    /// Splits positions `t0..t0 + e_max.len()` (`e_max`: each one's largest
    /// block exponent) for row group `rg`: a position whose shifts could
    /// exceed [`K_MAX`] is computed here by [`nx::linear_row`] itself (into
    /// `out[i * ow + r - row0]`, `i` its index); the others' indices are left
    /// in `fast`.
    pub fn split(
        &self,
        rg: usize,
        (q, bias, acts): (&QTensor, Option<&[i64]>, &Acts),
        (t0, e_max): (usize, &[i32]),
        (row0, ow): (usize, usize),
        out: &mut [i64],
        fast: &mut Vec<usize>,
    ) {
        let (r0, r1) = (rg * L, ((rg + 1) * L).min(q.rows));
        fast.clear();
        for (i, &em) in e_max.iter().enumerate() {
            let ok = self.dk_max[rg].saturating_add(em) <= K_MAX
                && (!self.asym || self.mk_max[rg].saturating_add(em) <= K_MAX);
            if ok {
                fast.push(i);
                continue;
            }
            let t = t0 + i;
            for r in r0..r1 {
                out[i * ow + r - row0] = nx::linear_row(
                    acts.mant(t),
                    acts.exp(t),
                    acts.sums(t),
                    &row_of(q, r),
                    bias.map_or(0, |b| b[r]),
                );
            }
        }
    }

    /// The largest block exponent of each of positions `t0..t0 + n`.
    pub fn e_max(acts: &Acts, t0: usize, n: usize) -> Vec<i32> {
        (t0..t0 + n)
            .map(|t| acts.exp(t).iter().map(|&e| e as i32).max().unwrap_or(0))
            .collect()
    }
}

impl Prepared {
    /// Repacks `q` for the best packed kernel this CPU has (AVX-512 VNNI,
    /// else AVX2) when `q` fits its bounds; `force_portable` for tests.
    pub fn new(q: &QTensor, force_portable: bool) -> Prepared {
        let best = if force_portable {
            Path::Portable
        } else {
            Path::Avx512
        };
        Prepared::with(q, best)
    }

    /// [`Prepared::new`] choosing among `best` and the paths after it (tests
    /// run every path this CPU has), within `taalasc --simd`'s cap.
    pub fn with(q: &QTensor, best: Path) -> Prepared {
        let best = match taalasc_ir::simd_cap() {
            SimdLevel::Portable => Path::Portable,
            SimdLevel::Avx2 if best == Path::Avx512 => Path::Avx2,
            _ => best,
        };
        #[cfg(target_arch = "x86_64")]
        {
            if best == Path::Avx512 && avx512::available() {
                if let Some(p) = avx512::Packed::new(q) {
                    return Prepared::Avx512(Box::new(p));
                }
            }
            if best != Path::Portable && avx2::available() {
                if let Some(p) = avx2::Packed::new(q) {
                    return Prepared::Avx2(Box::new(p));
                }
            }
        }
        let _ = (q, best);
        Prepared::Portable
    }
}

/// `[acts.n × q.rows]` outputs: `linear_row` of every (position, row).
pub(crate) fn linear(
    q: &QTensor,
    prep: &Prepared,
    bias: Option<&[i64]>,
    acts: &Acts,
    threads: usize,
    mut out: Vec<i64>,
) -> Vec<i64> {
    let (rows, n) = (q.rows, acts.n);
    // Every element is overwritten (the buffer may be recycled).
    assert_eq!(out.len(), n * rows, "linear: output buffer");
    if n == 0 || rows == 0 {
        return out;
    }
    let workers = threads.max(1);
    let work = |t0: usize, r0: usize, r1: usize, o: &mut [i64]| {
        run_rows((q, prep, bias), acts, t0, (r0, r1), o)
    };
    // Chunks of positions: each reuses every weight row for all of its
    // positions; a few chunks per worker balance the load.
    let per = n.div_ceil(workers * 4).clamp(8, 128);
    if workers == 1 || n.div_ceil(per) >= workers {
        par_for_each(
            workers,
            out.chunks_mut(per * rows).enumerate(),
            |(ci, o)| work(ci * per, 0, rows, o),
        );
        return out;
    }
    // Fewer chunks than workers (decode): blocks of rows, a multiple of the
    // packed kernels' row groups (16 and 8 rows), a few per worker; each
    // block's `[n × block]` outputs are computed apart and copied into place.
    let block = row_block(rows, workers);
    if n == 1 {
        par_for_each(workers, out.chunks_mut(block).enumerate(), |(bi, o)| {
            let r0 = bi * block;
            work(0, r0, r0 + o.len(), o)
        });
        return out;
    }
    let mut tiles: Vec<Vec<i64>> = (0..rows.div_ceil(block))
        .map(|bi| vec![0; n * (block.min(rows - bi * block))])
        .collect();
    par_for_each(workers, tiles.iter_mut().enumerate(), |(bi, o)| {
        let r0 = bi * block;
        work(0, r0, r0 + o.len() / n, o)
    });
    for (bi, tile) in tiles.iter().enumerate() {
        let (r0, w) = (bi * block, tile.len() / n);
        for (t, src) in tile.chunks_exact(w).enumerate() {
            out[t * rows + r0..t * rows + r0 + w].copy_from_slice(src);
        }
    }
    out
}

/// Rows of a block of a row split: a multiple of both packed kernels' row
/// groups.
const ROW_ALIGN: usize = 16;

/// The rows of each task when a matrix's `rows` are split over `workers`
/// (a few blocks per worker).
fn row_block(rows: usize, workers: usize) -> usize {
    rows.div_ceil(workers * 4)
        .next_multiple_of(ROW_ALIGN)
        .max(ROW_ALIGN)
}

/// Rows `r0..r1` of positions `t0..` of one matrix into `o`, on its path.
fn run_rows(
    (q, prep, bias): (&QTensor, &Prepared, Option<&[i64]>),
    acts: &Acts,
    t0: usize,
    (r0, r1): (usize, usize),
    o: &mut [i64],
) {
    match prep {
        Prepared::Portable => portable(q, bias, acts, t0, (r0, r1), o),
        #[cfg(target_arch = "x86_64")]
        Prepared::Avx512(p) => p.run(q, bias, acts, t0, (r0, r1), o),
        #[cfg(target_arch = "x86_64")]
        Prepared::Avx2(p) => p.run(q, bias, acts, t0, (r0, r1), o),
    }
}

/// [`linear`] of one input with several matrices (siblings such as a
/// layer's query, key and value projections), each output into its own
/// buffer. A decoded position (`acts.n == 1`) runs every matrix's row
/// blocks as one parallel step, one hand-off to the pool instead of one
/// per matrix; each output element is computed as [`linear`] computes it.
pub(crate) fn linear_many(
    mats: &[(&QTensor, &Prepared, Option<&[i64]>)],
    acts: &Acts,
    threads: usize,
    mut outs: Vec<Vec<i64>>,
) -> Vec<Vec<i64>> {
    assert_eq!(mats.len(), outs.len(), "linear_many: one buffer per matrix");
    let workers = threads.max(1);
    if acts.n != 1 || workers == 1 {
        return mats
            .iter()
            .zip(outs)
            .map(|(&(q, prep, bias), out)| linear(q, prep, bias, acts, threads, out))
            .collect();
    }
    let mut tasks: Vec<(usize, usize, &mut [i64])> = Vec::new();
    for (j, (&(q, ..), out)) in mats.iter().zip(outs.iter_mut()).enumerate() {
        assert_eq!(out.len(), q.rows, "linear: output buffer");
        let block = row_block(q.rows, workers);
        for (bi, o) in out.chunks_mut(block).enumerate() {
            tasks.push((j, bi * block, o));
        }
    }
    par_for_each(workers, tasks.into_iter(), |(j, r0, o)| {
        run_rows(mats[j], acts, 0, (r0, r0 + o.len()), o)
    });
    outs
}

/// Rows `r0..r1` of positions `t0..t0 + out.len() / (r1 - r0)`, written
/// `[position × (r1 - r0)]`: the bits of [`nx::linear::linear_row_decoded`]
/// (and so of [`nx::linear_row`]), by its own loop ([`row_value`]) compiled
/// once more for AVX2 when the CPU has it (with an AVX2 block dot product). A matrix outside that loop's
/// bounds goes through `linear_row_decoded` itself (which names the fault).
fn portable(
    q: &QTensor,
    bias: Option<&[i64]>,
    acts: &Acts,
    t0: usize,
    rows: (usize, usize),
    out: &mut [i64],
) {
    let cols = q.cols;
    let group = q.format.group_len(cols);
    let fits = cols <= 1 << 19
        && cols.is_multiple_of(nx::A8_BLOCK)
        && group > 0
        && group.is_multiple_of(nx::A8_BLOCK)
        && acts.cols == cols
        && q.codes.len() == q.rows * cols
        && q.scales.len() == q.rows * cols.div_ceil(group)
        && (q.format.symmetric || q.offsets.len() == q.scales.len());
    if !fits {
        return portable_checked(q, bias, acts, t0, rows, out);
    }
    #[cfg(target_arch = "x86_64")]
    if taalasc_ir::simd_cap() >= SimdLevel::Avx2 && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        return unsafe { portable_avx2(q, bias, acts, t0, rows, out) };
    }
    portable_rows(q, bias, acts, t0, rows, out, nx::dot_i8)
}

/// [`portable_rows`] compiled for AVX2 (the same source, so the same bits).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn portable_avx2(
    q: &QTensor,
    bias: Option<&[i64]>,
    acts: &Acts,
    t0: usize,
    rows: (usize, usize),
    out: &mut [i64],
) {
    // SAFETY (of the calls): this function runs only on CPUs with AVX2.
    portable_rows(q, bias, acts, t0, rows, out, |a, w| unsafe {
        dot32_avx2(a, w)
    })
}

/// [`nx::dot_i8`] of one 32-value block, exactly: the products of the
/// sign-extended values summed in i32 (`|Σ| <= 32 · 2^14`), in AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn dot32_avx2(a: &[i8], w: &[i8]) -> i32 {
    use std::arch::x86_64::*;
    let a: &[i8; 32] = a.try_into().expect("32-value block");
    let w: &[i8; 32] = w.try_into().expect("32-value block");
    // SAFETY: both arrays hold 32 bytes; AVX2 is enabled.
    unsafe {
        let ld = |p: *const i8| _mm256_cvtepi8_epi16(_mm_loadu_si128(p as *const __m128i));
        let lo = _mm256_madd_epi16(ld(a.as_ptr()), ld(w.as_ptr()));
        let hi = _mm256_madd_epi16(ld(a.as_ptr().add(16)), ld(w.as_ptr().add(16)));
        let s = _mm256_add_epi32(lo, hi);
        let s = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
        let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01>(s));
        _mm_cvtsi128_si32(s)
    }
}

/// The body of [`portable`] for a matrix within [`row_value`]'s bounds:
/// each row's scales decoded once into reused buffers.
#[inline(always)]
fn portable_rows(
    q: &QTensor,
    bias: Option<&[i64]>,
    acts: &Acts,
    t0: usize,
    (r0, r1): (usize, usize),
    out: &mut [i64],
    dot: impl Fn(&[i8], &[i8]) -> i32 + Copy,
) {
    let w = r1 - r0;
    let nt = out.len() / w;
    let mut ds: Vec<(i32, i32)> = Vec::new();
    let mut dm: Vec<(i32, i32)> = Vec::new();
    for r in r0..r1 {
        let row = row_of(q, r);
        ds.clear();
        ds.extend(row.scales.iter().map(|s| s.mant_exp()));
        dm.clear();
        if let Some(o) = row.offsets {
            dm.extend(o.iter().map(|s| s.mant_exp()));
        }
        let offsets = row.offsets.map(|_| &dm[..]);
        let b = bias.map_or(0, |b| b[r]);
        let bpg = row.group / nx::A8_BLOCK;
        for i in 0..nt {
            let t = t0 + i;
            out[i * w + r - r0] = row_value(
                (acts.mant(t), acts.exp(t), acts.sums(t)),
                row.codes,
                row.code_bias,
                bpg,
                (&ds, offsets),
                b,
                dot,
            );
        }
    }
}

/// A row's decoded `(mant, exp)` scales and, for asymmetric formats, offsets.
type RowScales<'a> = (&'a [(i32, i32)], Option<&'a [(i32, i32)]>);

/// The loop of [`nx::linear::linear_row_decoded`] over one row: per 32-value
/// block the exact dot product, the code-bias and offset terms by
/// [`nx::linear::block_term_i64`], summed in i64, then `sat_w48(acc + bias)`.
/// The caller checked the shapes `linear_row_decoded` asserts.
#[inline(always)]
fn row_value(
    (x_mant, x_exp, x_sums): (&[i8], &[i8], &[i32]),
    codes: &[i8],
    code_bias: i32,
    blocks_per_group: usize,
    (scales, offsets): RowScales<'_>,
    bias: i64,
    dot: impl Fn(&[i8], &[i8]) -> i32,
) -> i64 {
    let mut acc: i64 = 0;
    for (b, (xa, qa)) in x_mant
        .chunks_exact(nx::A8_BLOCK)
        .zip(codes.chunks_exact(nx::A8_BLOCK))
        .enumerate()
    {
        let g = b / blocks_per_group;
        let e_b = x_exp[b] as i32;
        let mut p = dot(xa, qa) as i64;
        if code_bias != 0 {
            p += code_bias as i64 * x_sums[b] as i64;
        }
        let (dm, de) = scales[g];
        acc += nx::linear::block_term_i64(dm, de, p, e_b);
        if let Some(off) = offsets {
            let (mm, me) = off[g];
            acc += nx::linear::block_term_i64(mm, me, x_sums[b] as i64, e_b);
        }
    }
    nx::sat_w48(acc as i128 + bias as i128)
}

/// [`portable`] through [`nx::linear::linear_row_decoded`] and its checks.
fn portable_checked(
    q: &QTensor,
    bias: Option<&[i64]>,
    acts: &Acts,
    t0: usize,
    (r0, r1): (usize, usize),
    out: &mut [i64],
) {
    let w = r1 - r0;
    let nt = out.len() / w;
    for r in r0..r1 {
        let row = row_of(q, r).decode();
        let b = bias.map_or(0, |b| b[r]);
        for i in 0..nt {
            let t = t0 + i;
            out[i * w + r - r0] =
                nx::linear::linear_row_decoded(acts.mant(t), acts.exp(t), acts.sums(t), &row, b);
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    //! 16 rows per vector (`zmm` lanes), the weight codes of a row group
    //! interleaved so that one `vpdpbusd` forms 4 products per row.
    //!
    //! Per 32-element block and position, with `a_i` the `A8` mantissas,
    //! `c_i` the stored codes, `A` the block sum, `E` the block exponent:
    //!
    //! ```text
    //! u_i  = c_i + off ∈ [0, 255]                 (u8, stored; off = 128,
    //!                                               or 8 for 4-bit codes)
    //! P    = Σ u_i a_i + (code_bias - off)·A      = Σ (c_i + code_bias) a_i   exact
    //! x    = mant(d_g) · P                        |x| <= 2047·32·127·255 < 2^31
    //! k    = exp(d_g) + E + 24
    //! term = k >= 0 ? x·2^k : ((x >> (-k-1)) + 1) >> 1
    //! ```
    //!
    //! which is `block_term(mant, exp, P, E)` whenever `k <= 16`: then
    //! `|x·2^k| < 2^47` (no saturation), and the right shift is `rshr(x, -k)`
    //! (the same floor; `vpsravd` fills with the sign for counts over 31,
    //! where both sides are 0). The offset term uses `x = mant(m_g) · A`
    //! (`|x| < 2^23`). A (row group, position) whose largest `k` could exceed
    //! 16 is computed by [`nx::linear_row`] instead. Terms are summed in i64
    //! (exact: at most 2^15 terms below 2^47) and the row is `sat_w48(acc +
    //! bias)`, exactly as in `linear_row`.

    use super::{row_of, Acts, LaneScales, QTensor};
    pub use crate::exec::simd::available;
    use crate::exec::simd::{term, unzip, Line, LANES};
    use std::arch::x86_64::*;
    use taalasc_numerics as nx;

    /// Positions per weight load.
    const NT: usize = 4;

    /// A matrix repacked for the kernel.
    pub struct Packed {
        s: LaneScales<LANES>,
        /// `[row group][block][8 lines]`: line `k` holds elements `4k..4k+4`
        /// of the block for each of the 16 rows, as `u = c + 128`. When
        /// every code fits in four bits (`nibbles`), `[row group][block][4
        /// lines]` instead: line `k` holds lines `k` (low nibbles) and `k +
        /// 4` (high nibbles) of `u = c + 8`, half the bytes to stream.
        codes: Vec<Line>,
        nibbles: bool,
    }

    impl Packed {
        /// `None` when the matrix is outside the kernel's bounds (then the
        /// portable path runs).
        pub fn new(q: &QTensor) -> Option<Packed> {
            let s = LaneScales::<LANES>::new(q)?;
            let nb = s.nb;
            let nibbles = q.codes.iter().all(|&c| (-8..8).contains(&c));
            let (lines, off) = if nibbles { (4, 8) } else { (8, 128) };
            let fill = if nibbles { 0x88 } else { 128 };
            let mut codes = vec![Line([fill; 64]); q.rows.div_ceil(LANES) * nb * lines];
            for r in 0..q.rows {
                let (rg, lane) = (r / LANES, r % LANES);
                let block_lines = &mut codes[rg * nb * lines..(rg + 1) * nb * lines];
                for (b, block) in row_of(q, r).codes.chunks_exact(32).enumerate() {
                    // Elements 4k..4k+4 into line k (its high nibbles for
                    // k >= 4 when packed), lane `lane`.
                    for (k, quad) in block.chunks_exact(4).enumerate() {
                        let (line, shift) = (b * lines + k % lines, 4 * (k / lines) as u32);
                        let bytes = &mut block_lines[line].0[lane * 4..lane * 4 + 4];
                        for (o, &c) in bytes.iter_mut().zip(quad) {
                            let u = (c as i32 + off) as u8;
                            *o = if nibbles {
                                (*o & !(0x0F << shift)) | (u << shift)
                            } else {
                                u
                            };
                        }
                    }
                }
            }
            Some(Packed { s, codes, nibbles })
        }

        /// Rows `r0..r1` (`r0` a multiple of 16, `r1` too or the last row)
        /// of positions `t0..t0 + out.len() / (r1 - r0)`, written
        /// `[position × (r1 - r0)]`.
        pub fn run(
            &self,
            q: &QTensor,
            bias: Option<&[i64]>,
            acts: &Acts,
            t0: usize,
            (r0, r1): (usize, usize),
            out: &mut [i64],
        ) {
            assert!(available() && acts.cols == self.s.cols);
            assert!(r0 < r1 && r1 <= q.rows && r0.is_multiple_of(LANES));
            assert!(r1.is_multiple_of(LANES) || r1 == q.rows);
            // SAFETY: the CPU features were checked; all indices are in
            // bounds by construction (asserted shapes).
            unsafe { self.run_avx512(q, bias, acts, t0, (r0, r1), out) }
        }

        #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
        unsafe fn run_avx512(
            &self,
            q: &QTensor,
            bias: Option<&[i64]>,
            acts: &Acts,
            t0: usize,
            (row0, row1): (usize, usize),
            out: &mut [i64],
        ) {
            let rows = q.rows;
            // Output row stride: the rows of this call.
            let ow = row1 - row0;
            let nt = out.len() / ow;
            assert!(t0 + nt <= acts.n && acts.mant.len() == acts.n * self.s.cols);
            assert!(acts.exp.len() == acts.n * self.s.nb && acts.sums.len() == acts.exp.len());
            let e_max = LaneScales::<LANES>::e_max(acts, t0, nt);
            let mut fast = Vec::with_capacity(nt);
            // The vector epilogue adds the bias in i64: exact when |bias| <=
            // 2^62 (the sums of at most 2^15 terms below 2^47 stay below
            // 2^62), as the rows' sat_w48(acc + bias) in i128.
            let rgs = rows.div_ceil(LANES);
            let mut bias_pad = vec![0i64; rgs * LANES];
            if let Some(b) = bias {
                bias_pad[..rows].copy_from_slice(b);
            }
            let vector_bias = bias_pad.iter().all(|b| b.unsigned_abs() <= 1 << 62);
            let mut res = [0i64; LANES];
            let mut emit =
                |out: &mut [i64], acc: &[(__m512i, __m512i)], ts: &[usize], rg: usize| {
                    let (r0, r1) = (rg * LANES, ((rg + 1) * LANES).min(rows));
                    for (&(e, o), &i) in acc.iter().zip(ts) {
                        let base = i * ow;
                        let dst = &mut out[base + r0 - row0..base + r1 - row0];
                        if vector_bias {
                            store_rows(e, o, &bias_pad[r0..r0 + LANES], dst);
                        } else {
                            unzip(e, o, &mut res);
                            for ((d, &a), r) in dst.iter_mut().zip(&res).zip(r0..r1) {
                                *d = nx::sat_w48(a as i128 + bias.map_or(0, |b| b[r]) as i128);
                            }
                        }
                    }
                };
            for rg in row0 / LANES..row1.div_ceil(LANES) {
                self.s.split(
                    rg,
                    (q, bias, acts),
                    (t0, &e_max),
                    (row0, ow),
                    out,
                    &mut fast,
                );
                let mut tiles = fast.chunks_exact(NT);
                for ts in &mut tiles {
                    let ts: &[usize; NT] = ts.try_into().unwrap();
                    let acc = match (self.s.asym, self.nibbles) {
                        (true, true) => self.tile::<NT, true, true>(rg, acts, t0, ts),
                        (true, false) => self.tile::<NT, true, false>(rg, acts, t0, ts),
                        (false, true) => self.tile::<NT, false, true>(rg, acts, t0, ts),
                        (false, false) => self.tile::<NT, false, false>(rg, acts, t0, ts),
                    };
                    emit(out, &acc, ts, rg);
                }
                for &i in tiles.remainder() {
                    let ts = &[i];
                    let acc = match (self.s.asym, self.nibbles) {
                        (true, true) => self.tile::<1, true, true>(rg, acts, t0, ts),
                        (true, false) => self.tile::<1, true, false>(rg, acts, t0, ts),
                        (false, true) => self.tile::<1, false, true>(rg, acts, t0, ts),
                        (false, false) => self.tile::<1, false, false>(rg, acts, t0, ts),
                    };
                    emit(out, &acc, ts, rg);
                }
            }
        }

        /// The sums of terms of 16 rows for the positions `t0 + ts[i]`, as
        /// i64 (even lanes, odd lanes).
        #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
        #[inline]
        unsafe fn tile<const N: usize, const ASYM: bool, const NIB: bool>(
            &self,
            rg: usize,
            acts: &Acts,
            t0: usize,
            ts: &[usize; N],
        ) -> [(__m512i, __m512i); N] {
            let s = &self.s;
            let (nb, cols) = (s.nb, s.cols);
            let lines = if NIB { 4 } else { 8 };
            // P = Σ u_i a_i + (code_bias - off)·A, `u = c + off`.
            let corr = s.code_bias - if NIB { 8 } else { 128 };
            let wide_mant = |v: &Vec<[i16; LANES]>, g: usize| {
                _mm512_cvtepi16_epi32(_mm256_loadu_si256(v.as_ptr().add(g) as *const __m256i))
            };
            let wide_exp = |v: &Vec<[i8; LANES]>, g: usize| {
                _mm512_cvtepi8_epi32(_mm_loadu_si128(v.as_ptr().add(g) as *const __m128i))
            };
            let low = _mm512_set1_epi8(0x0F);
            let mut acc_e = [_mm512_setzero_si512(); N];
            let mut acc_o = [_mm512_setzero_si512(); N];
            let codes = self.codes.as_ptr().add(rg * nb * lines) as *const __m512i;
            let mant = acts.mant.as_ptr().add(t0 * cols);
            for b in 0..nb {
                let g = rg * s.groups + b / s.blocks_per_group;
                let w = codes.add(b * lines);
                let mut p = [_mm512_setzero_si512(); N];
                for k in 0..8 {
                    let wk = if NIB {
                        let v = _mm512_load_si512(w.add(k % 4));
                        if k < 4 {
                            _mm512_and_si512(v, low)
                        } else {
                            _mm512_and_si512(_mm512_srli_epi16::<4>(v), low)
                        }
                    } else {
                        _mm512_load_si512(w.add(k))
                    };
                    for i in 0..N {
                        let a = mant.add(ts[i] * cols + b * 32 + 4 * k) as *const i32;
                        p[i] = _mm512_dpbusd_epi32(p[i], wk, _mm512_set1_epi32(a.read_unaligned()));
                    }
                }
                let (dm, dk) = (wide_mant(&s.dm, g), wide_exp(&s.dk, g));
                for i in 0..N {
                    let ib = (t0 + ts[i]) * nb + b;
                    let e = _mm512_set1_epi32(*acts.exp.get_unchecked(ib) as i32);
                    let sum = *acts.sums.get_unchecked(ib);
                    let p = _mm512_add_epi32(p[i], _mm512_set1_epi32(corr * sum));
                    term(
                        _mm512_mullo_epi32(p, dm),
                        _mm512_add_epi32(dk, e),
                        &mut acc_e[i],
                        &mut acc_o[i],
                    );
                    if ASYM {
                        let (mm, mk) = (wide_mant(&s.mm, g), wide_exp(&s.mk, g));
                        term(
                            _mm512_mullo_epi32(mm, _mm512_set1_epi32(sum)),
                            _mm512_add_epi32(mk, e),
                            &mut acc_e[i],
                            &mut acc_o[i],
                        );
                    }
                }
            }
            std::array::from_fn(|i| (acc_e[i], acc_o[i]))
        }
    }

    /// `sat_w48(acc + bias)` of up to 16 rows into `dst`, from even/odd-lane
    /// accumulators; `|acc|, |bias| <= 2^62`, so the i64 sum is exact.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn store_rows(e: __m512i, o: __m512i, bias: &[i64], dst: &mut [i64]) {
        const LO: [i64; 8] = [0, 8, 1, 9, 2, 10, 3, 11];
        const HI: [i64; 8] = [4, 12, 5, 13, 6, 14, 7, 15];
        assert!(bias.len() == LANES && dst.len() <= LANES);
        let n = dst.len();
        let (wmax, wmin) = (_mm512_set1_epi64(nx::W_MAX), _mm512_set1_epi64(nx::W_MIN));
        // SAFETY: the loads read 16 bias values; the masked stores write
        // only the first `n` lanes of `dst`.
        unsafe {
            let lo = _mm512_permutex2var_epi64(e, _mm512_loadu_epi64(LO.as_ptr()), o);
            let hi = _mm512_permutex2var_epi64(e, _mm512_loadu_epi64(HI.as_ptr()), o);
            let lo = _mm512_add_epi64(lo, _mm512_loadu_epi64(bias.as_ptr()));
            let hi = _mm512_add_epi64(hi, _mm512_loadu_epi64(bias.as_ptr().add(8)));
            let lo = _mm512_max_epi64(_mm512_min_epi64(lo, wmax), wmin);
            let hi = _mm512_max_epi64(_mm512_min_epi64(hi, wmax), wmin);
            let m_lo = ((1u32 << n.min(8)) - 1) as __mmask8;
            let m_hi = ((1u32 << n.saturating_sub(8)) - 1) as __mmask8;
            _mm512_mask_storeu_epi64(dst.as_mut_ptr(), m_lo, lo);
            _mm512_mask_storeu_epi64(dst.as_mut_ptr().add(8), m_hi, hi);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use taalasc_quant::{QTensor, WeightFormat};

    use taalasc_testrng::xorshift;

    /// A random matrix: codes in the format's stored range, scales any
    /// finite half (biased towards realistic magnitudes).
    fn random_matrix(s: &mut u64, rows: usize, cols: usize, fmt: &str) -> QTensor {
        let format: WeightFormat = fmt.parse().unwrap();
        let group = format.group_len(cols);
        let gpr = cols.div_ceil(group);
        let lo = -(1i32 << (format.bits - 1));
        let codes = (0..rows * cols)
            .map(|_| (lo + (xorshift(s) % (1 << format.bits)) as i32) as i8)
            .collect();
        let sf = |s: &mut u64| loop {
            let bits = match xorshift(s) % 8 {
                0 => xorshift(s) as u16,
                1 => (xorshift(s) % 0x7c00) as u16 | 0x8000,
                _ => (0x1c00 + xorshift(s) % 0x1800) as u16 | ((xorshift(s) as u16) & 0x8000),
            };
            if (bits >> 10) & 0x1f != 31 {
                return nx::Sf16(bits);
            }
        };
        let scales = (0..rows * gpr).map(|_| sf(s)).collect();
        let offsets = if format.symmetric {
            Vec::new()
        } else {
            (0..rows * gpr).map(|_| sf(s)).collect()
        };
        QTensor {
            format,
            rows,
            cols,
            codes,
            scales,
            offsets,
            widths: Default::default(),
        }
    }

    fn random_acts(s: &mut u64, t_n: usize, cols: usize) -> Vec<i64> {
        let mut x = Vec::with_capacity(t_n * cols);
        for _ in 0..t_n {
            // Per position a magnitude from tiny to saturated W48, so both
            // shift directions and the slow path all occur.
            let scale = (xorshift(s) % 48) as u32;
            for _ in 0..cols {
                let r = xorshift(s) as i64;
                x.push((r >> (16 + scale)).clamp(nx::W_MIN, nx::W_MAX));
            }
        }
        x
    }

    fn want(q: &QTensor, bias: Option<&[i64]>, acts: &Acts) -> Vec<i64> {
        let mut out = vec![0i64; acts.n * q.rows];
        for t in 0..acts.n {
            for r in 0..q.rows {
                out[t * q.rows + r] = nx::linear_row(
                    acts.mant(t),
                    acts.exp(t),
                    acts.sums(t),
                    &row_of(q, r),
                    bias.map_or(0, |b| b[r]),
                );
            }
        }
        out
    }

    #[test]
    fn every_path_matches_linear_row() {
        let mut s = 77u64;
        let shapes = [
            (1usize, 32usize),
            (16, 64),
            (17, 96),
            (40, 576),
            (33, 160),
            (5, 1024),
        ];
        let fmts = [
            "a4g32", "s8g32", "a8g64", "s4g128", "a2g32", "s3row", "a5row", "s6g32",
        ];
        let mut cases = 0;
        for (si, &(rows, cols)) in shapes.iter().enumerate() {
            for (fi, fmt) in fmts.iter().enumerate() {
                let format: WeightFormat = fmt.parse().unwrap();
                if !cols.is_multiple_of(format.group_len(cols)) {
                    continue;
                }
                let q = random_matrix(&mut s, rows, cols, fmt);
                let mut bias: Vec<i64> = (0..rows)
                    .map(|_| (xorshift(&mut s) as i64) >> (17 + xorshift(&mut s) % 30))
                    .collect();
                if fi == 3 {
                    // Outside W48: the scalar epilogue.
                    bias[0] = i64::MAX;
                    bias[rows - 1] = i64::MIN + 1;
                }
                let bias = ((si + fi) % 2 == 0).then_some(&bias[..]);
                let t_n = 1 + (si * 7 + fi * 3) % 23;
                let x = random_acts(&mut s, t_n, cols);
                for from in [0, t_n / 2] {
                    for threads in [1, 2, 3, 8] {
                        let acts = Acts::new(&x, cols, from, t_n, threads);
                        let w = want(&q, bias, &acts);
                        for path in [Path::Portable, Path::Avx2, Path::Avx512] {
                            let prep = Prepared::with(&q, path);
                            let junk = vec![-5; acts.n * q.rows];
                            let got = linear(&q, &prep, bias, &acts, threads, junk);
                            assert_eq!(
                                got, w,
                                "{fmt} {rows}x{cols} t_n {t_n} from {from} {path:?}"
                            );
                            cases += 1;
                        }
                    }
                }
            }
        }
        assert!(cases > 100);
    }

    #[test]
    fn siblings_in_one_step_match_each_alone() {
        // Three matrices of one input width (Q, K, V-like: different row
        // counts and formats), a decoded position and prefill positions,
        // on every path and thread count.
        let mut s = 11u64;
        let cols = 192;
        let qs = [
            random_matrix(&mut s, 72, cols, "a4g32"),
            random_matrix(&mut s, 24, cols, "s8g32"),
            random_matrix(&mut s, 40, cols, "a3g64"),
        ];
        let bias: Vec<i64> = (0..72).map(|i| i * 1000 - 5000).collect();
        for t_n in [1, 5] {
            let x = random_acts(&mut s, t_n, cols);
            for threads in [1, 2, 3] {
                let acts = Acts::new(&x, cols, 0, t_n, threads);
                for path in [Path::Portable, Path::Avx2, Path::Avx512] {
                    let preps: Vec<Prepared> = qs.iter().map(|q| Prepared::with(q, path)).collect();
                    let mats: Vec<(&QTensor, &Prepared, Option<&[i64]>)> = qs
                        .iter()
                        .zip(&preps)
                        .enumerate()
                        .map(|(j, (q, p))| (q, p, (j == 0).then_some(&bias[..])))
                        .collect();
                    let outs = qs.iter().map(|q| vec![-7; t_n * q.rows]).collect();
                    let got = linear_many(&mats, &acts, threads, outs);
                    for (j, &(q, p, b)) in mats.iter().enumerate() {
                        let alone = linear(q, p, b, &acts, threads, vec![0; t_n * q.rows]);
                        assert_eq!(
                            got[j], alone,
                            "matrix {j} t_n {t_n} {threads} threads {path:?}"
                        );
                        assert_eq!(alone, want(q, b, &acts));
                    }
                }
            }
        }
    }

    #[test]
    fn realistic_magnitudes_take_the_fast_path() {
        // Norm-like activations and GGUF-like scales: every (row group,
        // position) is inside the packed kernel's bounds, and the bits agree.
        let mut s = 3u64;
        let (rows, cols) = (48, 576);
        let mut q = random_matrix(&mut s, rows, cols, "a4g32");
        for sc in q.scales.iter_mut().chain(q.offsets.iter_mut()) {
            let v = (xorshift(&mut s) % 1000) as f32 * 1e-5 + 1e-3;
            let neg = xorshift(&mut s).is_multiple_of(2);
            *sc = nx::Sf16::from_f32(if neg { -v } else { v }).unwrap();
        }
        let x: Vec<i64> = (0..64 * cols)
            .map(|_| (xorshift(&mut s) as i64) >> (64 - 24 - 3))
            .collect();
        let acts = Acts::new(&x, cols, 0, 64, 2);
        for path in [Path::Avx2, Path::Avx512] {
            let prep = Prepared::with(&q, path);
            let out = vec![0; acts.n * rows];
            assert_eq!(
                linear(&q, &prep, None, &acts, 2, out),
                want(&q, None, &acts),
                "{path:?}"
            );
        }
    }
}
