//! Round-to-nearest of a matrix's rows on several threads.
//!
//! RTN treats rows independently, so a matrix (or a slice of its rows, for a
//! table too large to hold as f32) is split into runs of rows of a fixed
//! size, quantized as tasks of rayon's current pool (the global one, sized
//! by `--threads`), and the parts joined in order: the result is that of one
//! thread, whatever the pool.

use crate::{quantize_rtn_mixed, CodeWidths, QTensor, QuantError, ScaleRule, WeightFormat};

/// Weights per task: below this a matrix is quantized on the calling
/// thread; above, in runs of rows of about this many weights.
pub const PARALLEL_MIN_ELEMS: usize = 1 << 15;

/// [`quantize_rtn_mixed`] with [`ScaleRule::Search`] of rows `r0..` of a
/// matrix of `cols` columns (`w` holds them, row-major), on rayon's current
/// thread pool. `widths` are the whole matrix's: its row list (if any) is
/// read from row `r0` on. Errors name rows in the whole matrix (the first
/// failing row's).
pub fn quantize_rtn_rows(
    w: &[f32],
    r0: usize,
    cols: usize,
    fmt: &WeightFormat,
    widths: &CodeWidths,
) -> Result<QTensor, QuantError> {
    use rayon::prelude::*;
    let rows = w.len() / cols.max(1);
    let part = |a: usize, b: usize| -> Result<QTensor, QuantError> {
        let sub = CodeWidths {
            groups: widths.groups.clone(),
            rows: if widths.rows.is_empty() {
                Vec::new()
            } else {
                widths.rows[r0 + a..r0 + b].to_vec()
            },
        };
        quantize_rtn_mixed(
            &w[a * cols..b * cols],
            b - a,
            cols,
            fmt,
            &sub,
            ScaleRule::Search,
        )
        .map_err(|e| match e {
            // Rows numbered in the whole matrix.
            QuantError::ScaleOverflow {
                what,
                row,
                group,
                value,
            } => QuantError::ScaleOverflow {
                what,
                row: row + r0 + a,
                group,
                value,
            },
            e => e,
        })
    };
    if rayon::current_num_threads() == 1 || rows * cols < 2 * PARALLEL_MIN_ELEMS {
        return part(0, rows);
    }
    let per = (PARALLEL_MIN_ELEMS / cols.max(1)).max(1);
    let parts: Vec<Result<QTensor, QuantError>> = (0..rows.div_ceil(per))
        .into_par_iter()
        .map(|k| part(k * per, ((k + 1) * per).min(rows)))
        .collect();
    let mut parts = parts.into_iter();
    let mut q = parts.next().expect("one part at least")?;
    for p in parts {
        append_rows(&mut q, p?);
    }
    Ok(q)
}

/// Appends the rows of `p` (same format and columns) to `q`.
fn append_rows(q: &mut QTensor, p: QTensor) {
    q.rows += p.rows;
    q.codes.extend_from_slice(&p.codes);
    q.scales.extend_from_slice(&p.scales);
    q.offsets.extend_from_slice(&p.offsets);
    q.widths.rows.extend_from_slice(&p.widths.rows);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;

    /// `f` in a pool of `threads` threads.
    fn on_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(f)
    }

    fn matrix(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng::seeded(seed);
        (0..rows * cols)
            .map(|_| (rng.gauss() * 0.05) as f32)
            .collect()
    }

    #[test]
    fn any_split_gives_the_one_thread_result() {
        // 300 x 256: above PARALLEL_MIN_ELEMS, rows not a multiple of the
        // thread counts.
        let (rows, cols) = (300, 256);
        let w = matrix(rows, cols, 3);
        for fmt in ["a4g32", "s3g64h", "a2g128"] {
            let f: WeightFormat = fmt.parse().unwrap();
            let one = quantize_rtn_mixed(
                &w,
                rows,
                cols,
                &f,
                &CodeWidths::default(),
                ScaleRule::Search,
            )
            .unwrap();
            for threads in [1, 2, 3, 7] {
                let q = on_threads(threads, || {
                    quantize_rtn_rows(&w, 0, cols, &f, &CodeWidths::default())
                })
                .unwrap();
                assert_eq!(q, one, "{fmt} on {threads} threads");
            }
        }
    }

    #[test]
    fn row_widths_are_read_from_the_first_row_on() {
        // Rows 100..300 of a 300-row matrix whose rows alternate 2 and 4 bits:
        // the slice quantized on 3 threads equals those rows of the whole.
        let (rows, cols) = (300, 256);
        let w = matrix(rows, cols, 9);
        let f: WeightFormat = "a4g32".parse().unwrap();
        let widths = CodeWidths {
            groups: Vec::new(),
            rows: (0..rows).map(|r| if r % 2 == 0 { 2 } else { 4 }).collect(),
        };
        let whole = on_threads(1, || quantize_rtn_rows(&w, 0, cols, &f, &widths)).unwrap();
        let part = on_threads(3, || {
            quantize_rtn_rows(&w[100 * cols..], 100, cols, &f, &widths)
        })
        .unwrap();
        assert_eq!(part.rows, 200);
        assert_eq!(part.widths.rows, widths.rows[100..]);
        assert_eq!(part.codes, whole.codes[100 * cols..]);
        assert_eq!(part.scales, whole.scales[100 * 8..]);
        assert_eq!(part.offsets, whole.offsets[100 * 8..]);
        assert_eq!(part.bits_at(0, 0), 2);
        assert_eq!(part.bits_at(1, 0), 4);
    }

    #[test]
    fn errors_name_the_row_of_the_whole_matrix() {
        // A value beyond the SF16 range in row 250 of the whole matrix, in a
        // slice starting at row 50, split over 4 threads.
        let (rows, cols) = (300, 256);
        let mut w = matrix(rows, cols, 5);
        w[250 * cols + 40] = 1.0e9;
        let f: WeightFormat = "s8g32".parse().unwrap();
        let e = on_threads(4, || {
            quantize_rtn_rows(&w[50 * cols..], 50, cols, &f, &CodeWidths::default())
        })
        .unwrap_err();
        match e {
            QuantError::ScaleOverflow { row, group, .. } => assert_eq!((row, group), (250, 1)),
            e => panic!("unexpected error {e}"),
        }
    }
}
