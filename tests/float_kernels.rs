//! The float reference's row kernels against a naive oracle: the stored rows
//! decoded by `taalasc-frontends`' `dequant::to_f32` (itself checked against
//! gguf-py), then the reference dot product (`rows::dot_scalar`). Every
//! format, every instruction set this CPU has, 1 to 4 activation rows at once
//! and whole matrix products (decode- and prefill-sized), odd row counts and
//! lengths, reordered rows: all must give the oracle's bits exactly.
//!
//! And the executor on real checkpoints: no f32 copy of a quantized matrix
//! (resident f32 bytes are the vectors only), the AVX2 and portable paths
//! agree bit for bit, and prefill and token-by-token decode agree bit for bit.

use half::{bf16, f16};
use ndarray::Array2;
use std::sync::Arc;
use taalasc_float::rows::{self, dot_scalar, Isa, Matrix};
use taalasc_float::FloatModel;
use taalasc_frontends::dequant;
use taalasc_ir::{DType, RawRows, WeightSource};
use taalasc_testrng::SplitMix64;

const ALL: [DType; 13] = [
    DType::F32,
    DType::F16,
    DType::BF16,
    DType::Q8_0,
    DType::Q4_0,
    DType::Q4_1,
    DType::Q5_0,
    DType::Q5_1,
    DType::Q2K,
    DType::Q3K,
    DType::Q4K,
    DType::Q5K,
    DType::Q6K,
];

/// Offsets of the f16 scale fields of one block.
fn scale_fields(dtype: DType) -> &'static [usize] {
    match dtype {
        DType::Q8_0 | DType::Q4_0 | DType::Q5_0 => &[0],
        DType::Q4_1 | DType::Q5_1 | DType::Q4K | DType::Q5K => &[0, 2],
        DType::Q2K => &[80, 82],
        DType::Q3K => &[108],
        DType::Q6K => &[208],
        _ => &[],
    }
}

/// `rows` random stored rows of `cols` elements: random codes, finite
/// random scales (of both signs, some tiny), random plain floats.
fn random_rows(rng: &mut SplitMix64, dtype: DType, rows: usize, cols: usize) -> Vec<u8> {
    let bytes = dtype.bytes_for((rows * cols) as u64).unwrap() as usize;
    let mut b: Vec<u8> = (0..bytes).map(|_| rng.next_u64() as u8).collect();
    let val = |rng: &mut SplitMix64| (rng.gauss() * 2.0f64.powi(rng.below(12) as i32 - 6)) as f32;
    match dtype {
        DType::F32 => {
            for c in b.chunks_exact_mut(4) {
                c.copy_from_slice(&val(rng).to_le_bytes());
            }
        }
        DType::F16 => {
            for c in b.chunks_exact_mut(2) {
                c.copy_from_slice(&f16::from_f32(val(rng)).to_le_bytes());
            }
        }
        DType::BF16 => {
            for c in b.chunks_exact_mut(2) {
                c.copy_from_slice(&bf16::from_f32(val(rng)).to_le_bytes());
            }
        }
        _ => {
            let size = dtype.block().1;
            for blk in b.chunks_exact_mut(size) {
                for &o in scale_fields(dtype) {
                    let s = f16::from_f32(val(rng) * 0.01);
                    blk[o..o + 2].copy_from_slice(&s.to_le_bytes());
                }
            }
        }
    }
    b
}

fn raw(dtype: DType, rows: usize, cols: usize, bytes: Vec<u8>, order: Option<Vec<u32>>) -> RawRows {
    let row_bytes = dtype.bytes_for(cols as u64).unwrap() as usize;
    let out_rows = order.as_ref().map_or(rows, |o| o.len());
    RawRows {
        dtype,
        rows: out_rows,
        cols,
        row_bytes,
        bytes: Arc::new(bytes),
        offset: 0,
        order: order.map(Arc::from),
        decode: dequant::row_decoder(dtype),
    }
}

/// The oracle: rows decoded by `dequant::to_f32`, in `order`.
fn oracle_rows(
    dtype: DType,
    rows: usize,
    cols: usize,
    bytes: &[u8],
    order: &[u32],
) -> Vec<Vec<f32>> {
    let all = dequant::to_f32(dtype, bytes, rows * cols).unwrap();
    order
        .iter()
        .map(|&r| all[r as usize * cols..(r as usize + 1) * cols].to_vec())
        .collect()
}

fn shapes(dtype: DType) -> Vec<usize> {
    let e = dtype.block().0;
    if e == 1 {
        vec![8, 37, 64, 200, 1]
    } else {
        vec![e, 3 * e, 5 * e]
    }
}

#[test]
fn every_format_and_path_matches_decode_then_dot() {
    let mut rng = SplitMix64::seeded(15);
    let isas = Isa::available();
    eprintln!("instruction sets: {isas:?}");
    for dtype in ALL {
        for cols in shapes(dtype) {
            let rows = 7;
            let bytes = random_rows(&mut rng, dtype, rows, cols);
            // A reordering like GGUF's rotary un-permutation, and a selection.
            let order: Vec<u32> = vec![3, 0, 6, 1, 5, 2, 4, 6, 0];
            let w = raw(dtype, rows, cols, bytes.clone(), Some(order.clone()));
            let want_rows = oracle_rows(dtype, rows, cols, &bytes, &order);
            let xs: Vec<Vec<f32>> = (0..9)
                .map(|_| (0..cols).map(|_| rng.gauss() as f32).collect())
                .collect();
            let want: Vec<Vec<f32>> = want_rows
                .iter()
                .map(|wr| xs.iter().map(|x| dot_scalar(wr, x)).collect())
                .collect();
            for &isa in &isas {
                let what = format!(
                    "{dtype} cols {cols} {isa:?} (fused: {})",
                    rows::is_fused(isa, dtype, cols)
                );
                let mut buf = Vec::new();
                for (r, want_r) in want.iter().enumerate() {
                    let x: Vec<&[f32]> = xs.iter().map(|v| v.as_slice()).collect();
                    let one = rows::dot_stored(isa, &w, r, &[x[0]], &mut buf);
                    let four = rows::dot_stored(isa, &w, r, &[x[1], x[2], x[3], x[4]], &mut buf);
                    let three = rows::dot_stored(isa, &w, r, &[x[5], x[6], x[7]], &mut buf);
                    let two = rows::dot_stored(isa, &w, r, &[x[8], x[0]], &mut buf);
                    let got: Vec<f32> = one
                        .iter()
                        .chain(&four)
                        .chain(&three)
                        .chain(&two[..1])
                        .copied()
                        .collect();
                    assert_eq!(bits(&got), bits(want_r), "{what}: row {r}");
                    assert_eq!(two[1].to_bits(), want_r[0].to_bits(), "{what}: row {r}");
                }
                // Whole products: one activation row (decode), three and nine
                // (prefill), stored and dense.
                let m = Matrix::Stored(w.clone());
                let dense = Matrix::Dense(
                    Array2::from_shape_vec((order.len(), cols), want_rows.concat()).unwrap(),
                );
                for n in [1, 3, 9] {
                    let x = Array2::from_shape_vec((n, cols), xs[..n].concat()).unwrap();
                    for (name, mat) in [("stored", &m), ("dense", &dense)] {
                        let got = rows::matmul(isa, x.view(), mat);
                        for i in 0..n {
                            for (r, want_r) in want.iter().enumerate() {
                                assert_eq!(
                                    got[[i, r]].to_bits(),
                                    want_r[i].to_bits(),
                                    "{what}: {name} matmul n={n}, [{i}, {r}]"
                                );
                            }
                        }
                    }
                }
                // And the decoded values themselves (what the embedding reads).
                for (r, want_r) in want_rows.iter().enumerate() {
                    let mut v = Vec::new();
                    m.row_into(r, &mut v);
                    assert_eq!(bits(&v), bits(want_r), "{what}: decoded row {r}");
                }
            }
        }
    }
}

/// The dot product is a real one: against f64 on values whose sum is exact.
#[test]
fn the_reference_dot_product_is_a_dot_product() {
    let a: Vec<f32> = (0..37).map(|i| i as f32 - 18.0).collect();
    let b: Vec<f32> = (0..37).map(|i| (i % 5) as f32 * 0.5).collect();
    let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
    assert_eq!(dot_scalar(&a, &b) as f64, want);
    let w = Matrix::Dense(Array2::from_shape_vec((1, 37), a).unwrap());
    for isa in Isa::available() {
        let x = Array2::from_shape_vec((1, 37), b.clone()).unwrap();
        assert_eq!(
            rows::matmul(isa, x.view(), &w)[[0, 0]] as f64,
            want,
            "{isa:?}"
        );
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Panics naming the first element where `got` and `want` differ in bits.
fn same_bits(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!("{what}: element {i}: {} != {}", got[i], want[i]);
    }
}

/// A quantized GGUF binds every matrix to its stored blocks: the executor's
/// f32 values are the norm vectors only.
#[test]
fn a_quantized_gguf_keeps_no_f32_copy_of_its_matrices() {
    let path = taalasc_tests::fixture("gguf/tiny_llama.gguf");
    let loaded = taalasc_frontends::load(&path).unwrap();
    let float = FloatModel::new(&loaded.model, &loaded.weights).unwrap();
    let vectors: usize = loaded
        .model
        .weights
        .iter()
        .filter(|w| w.shape.len() == 1)
        .map(|w| w.numel() as usize * 4)
        .sum();
    let storage = float.weight_storage();
    assert!(!storage.is_empty());
    for (name, dtype) in &storage {
        assert!(dtype.is_some(), "{name} is held as f32");
    }
    assert!(
        storage
            .iter()
            .any(|(_, d)| *d != Some(DType::F32) && *d != Some(DType::F16)),
        "the fixture has quantized matrices: {storage:?}"
    );
    assert_eq!(float.resident_f32_bytes(), vectors);
    // A transposed (GPT-2 Conv1D) matrix cannot be given as stored rows: it
    // is read as f32, and counted.
    let gpt2 = taalasc_tests::fixture("hf/gpt2");
    let loaded = taalasc_frontends::load(&gpt2).unwrap();
    let float = FloatModel::new(&loaded.model, &loaded.weights).unwrap();
    let dense: Vec<_> = float
        .weight_storage()
        .into_iter()
        .filter(|(_, d)| d.is_none())
        .collect();
    assert!(!dense.is_empty());
    assert!(float.resident_f32_bytes() > vectors);
}

/// Swapping a weight out and back returns it to its stored rows.
#[test]
fn swapping_a_weight_back_restores_its_stored_rows() {
    let path = taalasc_tests::fixture("gguf/tiny_llama.gguf");
    let loaded = taalasc_frontends::load(&path).unwrap();
    let mut float = FloatModel::new(&loaded.model, &loaded.weights).unwrap();
    let base = float.resident_f32_bytes();
    let (i, info) = loaded
        .model
        .weights
        .iter()
        .enumerate()
        .find(|(_, w)| w.shape.len() == 2 && w.name.contains("q"))
        .unwrap();
    let id = taalasc_ir::WeightId(i as u32);
    let tokens = [1u32, 5, 9, 2];
    let want = float.forward(&mut float.session(), &tokens, 0).unwrap();
    let zeros = vec![0.0; info.numel() as usize];
    let old = float.swap_weight(id, zeros);
    assert_eq!(old, loaded.weights.load_f32(id).unwrap(), "{}", info.name);
    assert!(float.resident_f32_bytes() > base);
    let changed = float.forward(&mut float.session(), &tokens, 0).unwrap();
    assert_ne!(changed, want);
    float.swap_weight(id, old);
    assert_eq!(float.resident_f32_bytes(), base);
    let back = float.forward(&mut float.session(), &tokens, 0).unwrap();
    assert_eq!(back, want);
}

fn check_paths_and_decode(path: &std::path::Path, tokens: &[u32]) {
    let loaded = taalasc_frontends::load(path).unwrap();
    let mut float = FloatModel::new(&loaded.model, &loaded.weights).unwrap();
    let mut results = Vec::new();
    for isa in Isa::available() {
        assert!(float.set_isa(isa));
        let prefill = float.forward(&mut float.session(), tokens, 0).unwrap();
        // Token by token: each step's logits equal the prefill's row.
        let mut s = float.session();
        for (t, &tok) in tokens.iter().enumerate() {
            let row = float.forward(&mut s, &[tok], 0).unwrap();
            same_bits(
                row.as_slice().unwrap(),
                prefill.row(t).to_vec().as_slice(),
                &format!("{}: {isa:?}: decode step {t} vs prefill", path.display()),
            );
        }
        results.push(prefill);
    }
    for r in &results[1..] {
        same_bits(
            r.as_slice().unwrap(),
            results[0].as_slice().unwrap(),
            &format!("{}: AVX2 vs portable", path.display()),
        );
    }
}

#[test]
fn paths_agree_and_decode_equals_prefill_on_fixtures() {
    let tokens: Vec<u32> = vec![1, 17, 4, 99, 23, 8, 61, 2, 45];
    check_paths_and_decode(&taalasc_tests::fixture("gguf/tiny_llama.gguf"), &tokens);
    check_paths_and_decode(&taalasc_tests::fixture("hf/llama_bf16"), &tokens);
    check_paths_and_decode(&taalasc_tests::fixture("hf/gpt2"), &tokens);
}

/// On the real SmolLM2 GGUF (Q4_1 linears, tied Q8_0 embedding).
#[test]
fn smollm2_keeps_its_blocks_and_paths_agree() {
    let path = taalasc_tests::smollm2_gguf();
    let loaded = taalasc_frontends::load(&path).unwrap();
    let float = FloatModel::new(&loaded.model, &loaded.weights).unwrap();
    let storage = float.weight_storage();
    assert!(
        storage
            .iter()
            .all(|(_, d)| matches!(d, Some(DType::Q4_1 | DType::Q8_0))),
        "{storage:?}"
    );
    // Norm gains only: 61 vectors of 576.
    assert_eq!(float.resident_f32_bytes(), 61 * 576 * 4);
    // Every stored matrix decodes as load_f32 does (rows un-permuted).
    for (i, info) in loaded.model.weights.iter().enumerate() {
        let id = taalasc_ir::WeightId(i as u32);
        if let Some(raw) = loaded.weights.raw_rows(id).unwrap() {
            if info.name.contains(".0.") || info.name.contains("embed") {
                let m = Matrix::Stored(raw);
                assert!(
                    m.to_f32() == loaded.weights.load_f32(id).unwrap(),
                    "{}",
                    info.name
                );
            }
        }
    }
    drop(float);
    check_paths_and_decode(&path, &[1, 504, 3458, 314, 2370, 30]);
}

/// Stored rows are checked for NaN/Inf without decoding them: the scan must
/// find the same first bad element as decoding everything would.
#[test]
fn the_finite_scan_finds_what_decoding_finds() {
    let mut rng = SplitMix64::seeded(7);
    for dtype in ALL {
        let cols = dtype.block().0 * 4;
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut bytes = random_rows(&mut rng, dtype, 3, cols);
            assert_eq!(dequant::first_non_finite(dtype, &bytes), None, "{dtype}");
            // Poison one scale (or one element of a plain-float row).
            let size = dtype.block().1;
            let at = size * (1 + rng.below(8) as usize);
            match dtype {
                DType::F32 => bytes[at..at + 4].copy_from_slice(&bad.to_le_bytes()),
                DType::F16 => bytes[at..at + 2].copy_from_slice(&f16::from_f32(bad).to_le_bytes()),
                DType::BF16 => {
                    bytes[at..at + 2].copy_from_slice(&bf16::from_f32(bad).to_le_bytes())
                }
                _ => {
                    let o = at
                        + scale_fields(dtype)[rng.below(scale_fields(dtype).len() as u64) as usize];
                    bytes[o..o + 2].copy_from_slice(&f16::from_f32(bad).to_le_bytes());
                }
            }
            let all = dequant::to_f32(dtype, &bytes, 3 * cols).unwrap();
            let want = all.iter().position(|v| !v.is_finite()).expect("poisoned");
            let (i, v) = dequant::first_non_finite(dtype, &bytes).expect("found");
            assert_eq!(i, want, "{dtype} {bad}");
            assert_eq!(v.to_bits(), all[want].to_bits(), "{dtype} {bad}");
        }
    }
}
