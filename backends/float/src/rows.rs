//! Weight matrices as the executor holds them, and `x W^T` over them.
//!
//! A matrix is either f32 in memory ([`Matrix::Dense`]: a source that cannot
//! give stored rows, or values swapped in by [`crate::FloatModel::swap_weight`])
//! or the source's stored rows ([`Matrix::Stored`]: GGUF blocks, f16/bf16/f32
//! rows, shared with the memory map; never copied to f32 as a whole).
//!
//! Every output element is one dot product computed the same way whatever the
//! format, instruction set, batch size or thread count: the weight row's
//! values decoded exactly as the source's own decoder does, multiplied into the
//! activation row with sixteen accumulators of fused multiply-adds in a fixed
//! order ([`dot_scalar`]). So decoding token by token and prefilling give the
//! same bits, and so do the AVX-512, AVX2 and portable paths.

use ndarray::{Array2, ArrayView2};
use std::sync::{Mutex, OnceLock};
use taalasc_ir::{DType, RawRows};

/// The instruction set the row kernels use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Plain Rust (what the compiler makes of it for the build target).
    Portable,
    /// AVX2 with F16C (x86-64, chosen at run time).
    Avx2,
    /// AVX2 with F16C and AVX-512F/VL: the AVX2 kernels, and kernels that
    /// look a block's values up in a table ([`crate::simd`]).
    Avx512,
}

impl Isa {
    /// The best instruction set this CPU has, within `taalasc --simd`'s cap
    /// ([`taalasc_ir::simd_cap`]; detected once).
    pub fn detect() -> Isa {
        static ISA: OnceLock<Isa> = OnceLock::new();
        *ISA.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            if taalasc_ir::simd_cap() >= taalasc_ir::SimdLevel::Avx2
                && is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
            {
                if taalasc_ir::simd_cap() >= taalasc_ir::SimdLevel::Avx512
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512vl")
                {
                    return Isa::Avx512;
                }
                return Isa::Avx2;
            }
            Isa::Portable
        })
    }

    /// Every instruction set this CPU can run, in order (the portable one
    /// first).
    pub fn available() -> Vec<Isa> {
        [Isa::Portable, Isa::Avx2, Isa::Avx512]
            .into_iter()
            .filter(|&i| i <= Isa::detect())
            .collect()
    }

    /// Whether the AVX2 kernels run (AVX2, FMA and F16C were detected).
    fn avx2(self) -> bool {
        self >= Isa::Avx2
    }
}

/// A weight matrix `[rows, cols]`.
pub enum Matrix {
    /// f32 values in memory, row-major.
    Dense(Array2<f32>),
    /// The source's stored rows, decoded on the fly.
    Stored(RawRows),
}

impl Matrix {
    /// Rows of the matrix.
    pub fn rows(&self) -> usize {
        match self {
            Matrix::Dense(a) => a.nrows(),
            Matrix::Stored(r) => r.rows,
        }
    }

    /// Columns of the matrix.
    pub fn cols(&self) -> usize {
        match self {
            Matrix::Dense(a) => a.ncols(),
            Matrix::Stored(r) => r.cols,
        }
    }

    /// Bytes of f32 values this matrix holds in memory (0 for stored rows).
    pub fn resident_f32_bytes(&self) -> usize {
        match self {
            Matrix::Dense(a) => a.len() * 4,
            Matrix::Stored(_) => 0,
        }
    }

    /// Appends row `r`'s values, as f32, to `out`.
    pub fn row_into(&self, r: usize, out: &mut Vec<f32>) {
        match self {
            Matrix::Dense(a) => out.extend(a.row(r).iter()),
            Matrix::Stored(raw) => (raw.decode)(raw.row(r), out),
        }
    }

    /// Every value, row-major.
    pub fn to_f32(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.rows() * self.cols());
        for r in 0..self.rows() {
            self.row_into(r, &mut out);
        }
        out
    }
}

/// Accumulators of the reference dot product ([`dot_scalar`]).
pub const LANES: usize = 16;

/// The reference dot product: [`LANES`] accumulators, lane `k` summing the
/// products of elements `16i + k` in order with fused multiply-adds (one
/// rounding each, `f32::mul_add`), then the lanes left to right, then the
/// tail (the elements past the last whole sixteen), again fused, in order.
/// Every kernel reproduces it bit for bit.
pub fn dot_scalar(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..LANES {
            acc[k] = x[k].mul_add(y[k], acc[k]);
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s = x.mul_add(*y, s);
    }
    s
}

/// Dot products of the f32 row `w` with `N` activation rows (each at least
/// `w.len()` long).
fn dot_f32<const N: usize>(isa: Isa, w: &[f32], xs: &[&[f32]; N]) -> [f32; N] {
    dot_f32_rows::<1, N>(isa, &[w], xs)[0]
}

/// Dot products of `R` equally long f32 rows with `N` activation rows (each
/// at least as long): `R * N` independent accumulator chains on AVX2.
fn dot_f32_rows<const R: usize, const N: usize>(
    isa: Isa,
    ws: &[&[f32]; R],
    xs: &[&[f32]; N],
) -> [[f32; N]; R] {
    let len = ws[0].len();
    assert!(ws.iter().all(|w| w.len() == len) && xs.iter().all(|x| x.len() >= len));
    #[cfg(target_arch = "x86_64")]
    if isa.avx2() {
        let whole = len / LANES * LANES;
        // SAFETY: AVX2/F16C (and AVX-512F/VL for `Isa::Avx512`) were
        // detected (`isa`); each byte view covers the first `whole` floats
        // of its row, and every `xs[i]` holds at least `whole`.
        let bytes: [&[u8]; R] = std::array::from_fn(|r| unsafe {
            std::slice::from_raw_parts(ws[r].as_ptr() as *const u8, whole * 4)
        });
        let mut out = unsafe {
            if isa == Isa::Avx512 {
                crate::simd::f32_rows_avx512::<R, N>(&bytes, xs)
            } else {
                crate::simd::f32_rows::<R, N>(&bytes, xs)
            }
        };
        for (o, w) in out.iter_mut().zip(ws) {
            for (oi, x) in o.iter_mut().zip(xs) {
                for (a, b) in w[whole..].iter().zip(&x[whole..len]) {
                    *oi = a.mul_add(*b, *oi);
                }
            }
        }
        return out;
    }
    let _ = isa;
    std::array::from_fn(|r| std::array::from_fn(|i| dot_scalar(ws[r], &xs[i][..len])))
}

/// The fused AVX2 kernel for `R` stored rows of `dtype` and `N` activation
/// rows, when there is one.
#[cfg(target_arch = "x86_64")]
type Fused<const R: usize, const N: usize> = unsafe fn(&[&[u8]; R], &[&[f32]; N]) -> [[f32; N]; R];

#[cfg(target_arch = "x86_64")]
fn fused<const R: usize, const N: usize>(
    isa: Isa,
    dtype: DType,
    cols: usize,
) -> Option<Fused<R, N>> {
    use crate::simd::*;
    if !isa.avx2() {
        return None;
    }
    let plain = cols.is_multiple_of(LANES);
    Some(match dtype {
        DType::Q4_1 if isa == Isa::Avx512 => q4_1_rows_avx512::<R, N>,
        DType::Q8_0 if isa == Isa::Avx512 => q8_0_rows_avx512::<R, N>,
        DType::F32 if plain && isa == Isa::Avx512 => f32_rows_avx512::<R, N>,
        DType::F32 if plain => f32_rows::<R, N>,
        DType::F16 if plain => f16_rows::<R, N>,
        DType::BF16 if plain => bf16_rows::<R, N>,
        DType::Q8_0 => q8_0_rows::<R, N>,
        DType::Q4_0 => q4_0_rows::<R, N>,
        DType::Q4_1 => q4_1_rows::<R, N>,
        DType::Q5_0 => q5_0_rows::<R, N>,
        DType::Q5_1 => q5_1_rows::<R, N>,
        DType::Q4K => q4_k_rows::<R, N>,
        DType::Q5K => q5_k_rows::<R, N>,
        DType::Q6K => q6_k_rows::<R, N>,
        // Q2_K, Q3_K and f32/f16/bf16 rows of a length not a multiple of 8:
        // decoded to f32 a tile at a time, then the f32 kernel.
        _ => return None,
    })
}

/// An AVX2 decoder of whole stored rows into a slice of their length.
#[cfg(target_arch = "x86_64")]
type SimdDecoder = unsafe fn(&[u8], &mut [f32]);

/// The AVX2 decoder of whole stored rows of `dtype`, when there is one.
#[cfg(target_arch = "x86_64")]
fn simd_decoder(isa: Isa, dtype: DType, cols: usize) -> Option<SimdDecoder> {
    use crate::simd::*;
    if !isa.avx2() {
        return None;
    }
    let plain = cols.is_multiple_of(8);
    Some(match dtype {
        DType::F32 if plain => f32_decode,
        DType::F16 if plain => f16_decode,
        DType::BF16 if plain => bf16_decode,
        DType::Q8_0 => q8_0_decode,
        DType::Q4_0 => q4_0_decode,
        DType::Q4_1 => q4_1_decode,
        DType::Q5_0 => q5_0_decode,
        DType::Q5_1 => q5_1_decode,
        DType::Q4K => q4_k_decode,
        DType::Q5K => q5_k_decode,
        DType::Q6K => q6_k_decode,
        _ => return None,
    })
}

/// Appends stored row `r` of `raw`, decoded, to `buf`: with the AVX2
/// decoder when there is one (the same values as `raw.decode`).
fn decode_row(isa: Isa, raw: &RawRows, r: usize, buf: &mut Vec<f32>) {
    let row = raw.row(r);
    #[cfg(target_arch = "x86_64")]
    if let Some(f) = simd_decoder(isa, raw.dtype, raw.cols) {
        assert_eq!(row.len(), raw.row_bytes);
        let at = buf.len();
        buf.resize(at + raw.cols, 0.0);
        // SAFETY: AVX2/F16C were detected; the row is whole blocks holding
        // `raw.cols` elements, the size of the destination.
        unsafe { f(row, &mut buf[at..]) };
        return;
    }
    let _ = isa;
    (raw.decode)(row, buf);
}

/// Whether rows of `dtype` (`cols` long) go through a fused decode-and-dot
/// kernel on `isa` (otherwise they are decoded to an f32 tile first).
pub fn is_fused(isa: Isa, dtype: DType, cols: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    return fused::<1, 1>(isa, dtype, cols).is_some();
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, dtype, cols);
        false
    }
}

/// Dot products of stored row `r` of `raw` with `N` activation rows (each at
/// least `raw.cols` long), decoding through `buf` when no fused kernel applies.
pub fn dot_stored<const N: usize>(
    isa: Isa,
    raw: &RawRows,
    r: usize,
    xs: &[&[f32]; N],
    buf: &mut Vec<f32>,
) -> [f32; N] {
    assert!(
        xs.iter().all(|x| x.len() >= raw.cols),
        "activation too short"
    );
    let row = raw.row(r);
    #[cfg(target_arch = "x86_64")]
    if let Some(f) = fused::<1, N>(isa, raw.dtype, raw.cols) {
        assert_eq!(row.len(), raw.row_bytes);
        // SAFETY: the kernel exists only when AVX2/F16C were detected; the
        // row is whole blocks of `dtype` (RawRows' contract) holding
        // `raw.cols` elements, and every activation row is that long.
        return unsafe { f(&[row], xs)[0] };
    }
    buf.clear();
    (raw.decode)(row, buf);
    assert_eq!(buf.len(), raw.cols, "stored row decodes to its length");
    dot_f32(isa, buf, xs)
}

/// Dot products of stored rows `r..r + 4` of `raw` with one activation row
/// (each exactly as [`dot_stored`] computes it).
pub fn dot_stored4(isa: Isa, raw: &RawRows, r: usize, x: &[f32], buf: &mut Vec<f32>) -> [f32; 4] {
    assert!(x.len() >= raw.cols, "activation too short");
    #[cfg(target_arch = "x86_64")]
    if let Some(f) = fused::<4, 1>(isa, raw.dtype, raw.cols) {
        let rows = [raw.row(r), raw.row(r + 1), raw.row(r + 2), raw.row(r + 3)];
        assert!(rows.iter().all(|w| w.len() == raw.row_bytes));
        // SAFETY: as in `dot_stored`, for four rows of the same length.
        let out = unsafe { f(&rows, &[x]) };
        return [out[0][0], out[1][0], out[2][0], out[3][0]];
    }
    std::array::from_fn(|k| dot_stored(isa, raw, r + k, &[x], buf)[0])
}

/// Up to four activation rows at once through `f`, writing `out[i * stride]`.
fn group<F>(xs: &[&[f32]], out: &mut [f32], mut f: F)
where
    F: FnMut(&[&[f32]], &mut [f32]),
{
    for (g, o) in xs.chunks(4).zip(out.chunks_mut(4)) {
        f(g, o);
    }
}

macro_rules! by_n {
    ($xs:expr, $out:expr, |$arr:ident| $call:expr) => {
        match $xs.len() {
            1 => {
                let $arr = [$xs[0]];
                $out.copy_from_slice(&$call);
            }
            2 => {
                let $arr = [$xs[0], $xs[1]];
                $out.copy_from_slice(&$call);
            }
            3 => {
                let $arr = [$xs[0], $xs[1], $xs[2]];
                $out.copy_from_slice(&$call);
            }
            _ => {
                let $arr = [$xs[0], $xs[1], $xs[2], $xs[3]];
                $out.copy_from_slice(&$call);
            }
        }
    };
}

thread_local! {
    /// Each thread's buffer of decoded rows (a tile of stored rows).
    static TILE_BUF: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Rows of a task handled together while their activations stay in cache.
const TILE: usize = 24;

/// Activation rows met by a tile at a time (a multiple of 4).
const XBLOCK: usize = 32;

/// `out[r * n + i] = W[r0 + r] · xs[i]` for the task's rows.
fn task(isa: Isa, w: &Matrix, r0: usize, xs: &[&[f32]], out: &mut [f32], buf: &mut Vec<f32>) {
    let n = xs.len();
    let nr = out.len() / n;
    let cols = w.cols();
    let mut tmp = [0f32; 4];
    for t0 in (0..nr).step_by(TILE) {
        let t1 = (t0 + TILE).min(nr);
        match w {
            Matrix::Stored(raw) if n == 1 => {
                let mut r = t0;
                #[cfg(target_arch = "x86_64")]
                if let Some(f) = fused::<4, 1>(isa, raw.dtype, cols) {
                    // The kernel and the rows' bytes looked up once per task,
                    // not per four rows (a decode step's rows are short).
                    assert!(xs[0].len() >= cols, "activation too short");
                    let all: &[u8] = (*raw.bytes).as_ref();
                    let rb = raw.row_bytes;
                    let row = |r: usize| {
                        let s = raw.order.as_ref().map_or(r, |o| o[r] as usize);
                        &all[raw.offset + s * rb..][..rb]
                    };
                    while r + 4 <= t1 {
                        let a = r0 + r;
                        let rows = [row(a), row(a + 1), row(a + 2), row(a + 3)];
                        // SAFETY: as in `dot_stored4`: the kernel exists only
                        // when its instruction set was detected; each row is
                        // whole blocks holding `cols` elements, and the
                        // activation row is at least that long.
                        let v = unsafe { f(&rows, &[xs[0]]) };
                        for k in 0..4 {
                            out[r + k] = v[k][0];
                        }
                        r += 4;
                    }
                }
                while r + 4 <= t1 {
                    let v = dot_stored4(isa, raw, r0 + r, xs[0], buf);
                    out[r..r + 4].copy_from_slice(&v);
                    r += 4;
                }
                for (k, o) in out[r..t1].iter_mut().enumerate() {
                    *o = dot_stored(isa, raw, r0 + r + k, &[xs[0]], buf)[0];
                }
            }
            // A few activation rows: decode each stored block once for all
            // of them (many rows: decode a tile once, below).
            Matrix::Stored(raw) if n < 8 && is_fused(isa, raw.dtype, cols) => {
                for (g0, g) in xs.chunks(4).enumerate() {
                    for r in t0..t1 {
                        let o = &mut tmp[..g.len()];
                        by_n!(g, o, |a| dot_stored(isa, raw, r0 + r, &a, buf));
                        for (i, v) in o.iter().enumerate() {
                            out[r * n + 4 * g0 + i] = *v;
                        }
                    }
                }
            }
            _ => {
                // A tile of f32 rows: the dense rows themselves, or stored
                // rows decoded once for every activation row.
                let tile: &[f32] = match w {
                    Matrix::Dense(a) => {
                        let all = a.as_slice().expect("dense weights are standard layout");
                        &all[(r0 + t0) * cols..(r0 + t1) * cols]
                    }
                    Matrix::Stored(raw) => {
                        buf.clear();
                        for r in t0..t1 {
                            decode_row(isa, raw, r0 + r, buf);
                        }
                        assert_eq!(buf.len(), (t1 - t0) * cols, "stored rows decode");
                        buf
                    }
                };
                let wr = |r: usize| &tile[(r - t0) * cols..(r - t0 + 1) * cols];
                // Activations a block at a time, so that the block and the
                // tile stay in L2 while every row of the tile meets them (a
                // whole prefill's activations do not fit; streaming them from
                // L3 once per three rows made prefill memory-bound).
                for (b0, xb) in xs.chunks(XBLOCK).enumerate() {
                    for (g0, g) in xb.chunks(4).enumerate() {
                        let g0 = b0 * XBLOCK / 4 + g0;
                        let mut r = t0;
                        while r + 3 <= t1 {
                            let ws = [wr(r), wr(r + 1), wr(r + 2)];
                            let mut o = [[0f32; 4]; 3];
                            match g.len() {
                                1 => dot_f32_rows(isa, &ws, &[g[0]])
                                    .iter()
                                    .zip(&mut o)
                                    .for_each(|(v, o)| o[..1].copy_from_slice(v)),
                                2 => dot_f32_rows(isa, &ws, &[g[0], g[1]])
                                    .iter()
                                    .zip(&mut o)
                                    .for_each(|(v, o)| o[..2].copy_from_slice(v)),
                                3 => dot_f32_rows(isa, &ws, &[g[0], g[1], g[2]])
                                    .iter()
                                    .zip(&mut o)
                                    .for_each(|(v, o)| o[..3].copy_from_slice(v)),
                                _ => o = dot_f32_rows(isa, &ws, &[g[0], g[1], g[2], g[3]]),
                            }
                            for (k, ok) in o.iter().enumerate() {
                                let base = (r + k) * n + 4 * g0;
                                out[base..base + g.len()].copy_from_slice(&ok[..g.len()]);
                            }
                            r += 3;
                        }
                        for r in r..t1 {
                            let dst = &mut out[r * n + 4 * g0..r * n + 4 * g0 + g.len()];
                            let w = wr(r);
                            group(g, dst, |g, o| by_n!(g, o, |a| dot_f32(isa, w, &a)));
                        }
                    }
                }
            }
        }
    }
}

/// `x W^T`: `[n, cols] x [rows, cols]^T -> [n, rows]`, split over rows on
/// rayon's global pool.
pub fn matmul(isa: Isa, x: ArrayView2<f32>, w: &Matrix) -> Array2<f32> {
    matmul_many(isa, x, &[w]).pop().expect("one product")
}

/// [`matmul`] of one activation with each of `ws` (all as wide as `x`), in
/// one parallel region: siblings such as the query, key and value
/// projections of a layer share one hand-off to the pool instead of three.
/// Each output element is computed as [`matmul`] computes it alone.
pub fn matmul_many(isa: Isa, x: ArrayView2<f32>, ws: &[&Matrix]) -> Vec<Array2<f32>> {
    let (n, cols) = (x.nrows(), x.ncols());
    for w in ws {
        assert_eq!(w.cols(), cols, "linear: activation width");
    }
    let x = x.as_standard_layout();
    let flat = x.as_slice().expect("standard layout");
    let xs: Vec<&[f32]> = flat.chunks_exact(cols.max(1)).collect();
    let mut outs: Vec<Vec<f32>> = ws.iter().map(|w| vec![0f32; w.rows() * n]).collect();
    let threads = rayon::current_num_threads();
    // Each matrix's rows split into about four tasks per thread (one task
    // when it is small or there is one thread).
    let mut tasks: Vec<(usize, usize, &mut [f32])> = Vec::new();
    for (j, (w, ot)) in ws.iter().zip(outs.iter_mut()).enumerate() {
        let rows = w.rows();
        if n == 0 || rows == 0 {
            continue;
        }
        let work = rows * cols.max(1) * n;
        let task_rows = if threads <= 1 || work < 1 << 15 {
            rows
        } else {
            rows.div_ceil(threads * 4).max(8)
        };
        for (t, out) in ot.chunks_mut(task_rows * n).enumerate() {
            tasks.push((j, t * task_rows, out));
        }
    }
    if tasks.len() == 1 {
        let (j, r0, out) = tasks.pop().expect("one task");
        task(isa, ws[j], r0, &xs, out, &mut Vec::new());
    } else if !tasks.is_empty() {
        // Each task's output behind its own (uncontended) lock, so that any
        // thread of the step may run it.
        let cells: Vec<Mutex<(usize, usize, &mut [f32])>> =
            tasks.into_iter().map(Mutex::new).collect();
        crate::team::run(cells.len(), &|i| {
            let mut cell = cells[i].lock().expect("a task runs once");
            let (j, r0, ref mut out) = *cell;
            TILE_BUF.with(|b| task(isa, ws[j], r0, &xs, out, &mut b.borrow_mut()));
        });
    }
    ws.iter()
        .zip(outs)
        .map(|(w, ot)| {
            if n == 1 {
                return Array2::from_shape_vec((1, w.rows()), ot).expect("shape");
            }
            Array2::from_shape_vec((w.rows(), n), ot)
                .expect("shape")
                .reversed_axes()
                .as_standard_layout()
                .into_owned()
        })
        .collect()
}
