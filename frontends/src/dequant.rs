//! Decoding of source storage formats to f32.
//!
//! Plain floats (f32, f16, bf16) and the llama.cpp block formats (`Q8_0`,
//! `Q4_0`, `Q4_1`, `Q5_0`, `Q5_1` and the 256-element "K" super-blocks `Q2_K`
//! to `Q6_K`). Every function reads little-endian bytes and needs no alignment.
//!
//! The arithmetic follows ggml's reference dequantizers operation by operation
//! (same f32 products and sums in the same order), so results are bit-exact
//! against llama.cpp's scalar path and gguf-py's `dequantize`.
//!
//! Block layouts (all multi-byte fields little-endian, `f16` = IEEE half):
//!
//! | type | elems | bytes | layout |
//! |------|-------|-------|--------|
//! | Q8_0 | 32  | 34  | `d: f16, q: [i8; 32]`; `x = d * q` |
//! | Q4_0 | 32  | 18  | `d: f16, q: [u8; 16]` nibbles; `x = d * (q - 8)` |
//! | Q4_1 | 32  | 20  | `d: f16, m: f16, q: [u8; 16]`; `x = d * q + m` |
//! | Q5_0 | 32  | 22  | `d: f16, qh: u32, q: [u8; 16]`; `x = d * (q5 - 16)` |
//! | Q5_1 | 32  | 24  | `d: f16, m: f16, qh: u32, q: [u8; 16]`; `x = d * q5 + m` |
//! | Q2_K | 256 | 84  | `scales: [u8; 16], q: [u8; 64], d: f16, dmin: f16` |
//! | Q3_K | 256 | 110 | `hmask: [u8; 32], q: [u8; 64], scales: [u8; 12], d: f16` |
//! | Q4_K | 256 | 144 | `d: f16, dmin: f16, scales: [u8; 12], q: [u8; 128]` |
//! | Q5_K | 256 | 176 | `d: f16, dmin: f16, scales: [u8; 12], qh: [u8; 32], q: [u8; 128]` |
//! | Q6_K | 256 | 210 | `ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16` |
//!
//! In the 32-element formats, byte `j` of `q` holds element `j` in its low
//! nibble and element `j + 16` in its high nibble.

use half::{bf16, f16};
use taalasc_ir::dtype::k4_scale_min;
use taalasc_ir::{DType, RowDecoder};

/// The decoder of a run of whole `dtype` blocks (one stored row), appending
/// the values to a vector, operation for operation as [`to_f32`]: what a
/// [`taalasc_ir::RawRows`] carries so that its user decodes rows exactly as
/// `load_f32` would.
pub fn row_decoder(dtype: DType) -> RowDecoder {
    fn each(b: &[u8], out: &mut Vec<f32>, size: usize, f: fn(&[u8], &mut Vec<f32>)) {
        b.chunks_exact(size).for_each(|blk| f(blk, out));
    }
    match dtype {
        DType::F32 => |b, out| {
            out.extend(
                b.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            )
        },
        DType::F16 => |b, out| {
            out.extend(
                b.chunks_exact(2)
                    .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()),
            )
        },
        DType::BF16 => |b, out| {
            out.extend(
                b.chunks_exact(2)
                    .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()),
            )
        },
        DType::Q8_0 => |b, out| each(b, out, 34, q8_0),
        DType::Q4_0 => |b, out| each(b, out, 18, q4_0),
        DType::Q4_1 => |b, out| each(b, out, 20, q4_1),
        DType::Q5_0 => |b, out| each(b, out, 22, q5_0),
        DType::Q5_1 => |b, out| each(b, out, 24, q5_1),
        DType::Q2K => |b, out| each(b, out, 84, q2_k),
        DType::Q3K => |b, out| each(b, out, 110, q3_k),
        DType::Q4K => |b, out| each(b, out, 144, q4_k),
        DType::Q5K => |b, out| each(b, out, 176, q5_k),
        DType::Q6K => |b, out| each(b, out, 210, q6_k),
    }
}

/// Byte offsets of the f16 scale fields (`d`, `m`, `dmin`) in a `dtype`
/// block. A block decodes to finite values exactly when these are finite:
/// every code and sub-scale is a small integer, so a finite f16 scale
/// (at most 65504) keeps every product and sum far inside f32, while a
/// non-finite one makes at least one element NaN or infinite.
fn scale_offsets(dtype: DType) -> &'static [usize] {
    match dtype {
        DType::F32 | DType::F16 | DType::BF16 => &[],
        DType::Q8_0 | DType::Q4_0 | DType::Q5_0 => &[0],
        DType::Q4_1 | DType::Q5_1 | DType::Q4K | DType::Q5K => &[0, 2],
        DType::Q2K => &[80, 82],
        DType::Q3K => &[108],
        DType::Q6K => &[208],
    }
}

/// The first element of `bytes` (whole `dtype` blocks) that decodes to NaN
/// or infinity, with its index and value, without decoding the whole run:
/// plain floats are checked element by element, block formats by their
/// scale fields (only a block with a non-finite scale is decoded).
pub fn first_non_finite(dtype: DType, bytes: &[u8]) -> Option<(usize, f32)> {
    let half_bad = |bits: u16, mask: u16| bits & mask == mask;
    match dtype {
        DType::F32 => bytes.chunks_exact(4).enumerate().find_map(|(i, b)| {
            let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            (!v.is_finite()).then_some((i, v))
        }),
        DType::F16 | DType::BF16 => {
            let mask = if dtype == DType::F16 { 0x7C00 } else { 0x7F80 };
            bytes.chunks_exact(2).enumerate().find_map(|(i, b)| {
                let bits = u16::from_le_bytes([b[0], b[1]]);
                half_bad(bits, mask).then(|| {
                    let v = if dtype == DType::F16 {
                        f16::from_bits(bits).to_f32()
                    } else {
                        bf16::from_bits(bits).to_f32()
                    };
                    (i, v)
                })
            })
        }
        _ => {
            let (elems, size) = dtype.block();
            let offsets = scale_offsets(dtype);
            let decode = row_decoder(dtype);
            bytes.chunks_exact(size).enumerate().find_map(|(k, blk)| {
                let bad = offsets
                    .iter()
                    .any(|&o| half_bad(u16::from_le_bytes([blk[o], blk[o + 1]]), 0x7C00));
                if !bad {
                    return None;
                }
                let mut v = Vec::with_capacity(elems);
                decode(blk, &mut v);
                v.iter()
                    .position(|x| !x.is_finite())
                    .map(|i| (k * elems + i, v[i]))
            })
        }
    }
}

/// Decodes `n` elements of `dtype` from `bytes`.
pub fn to_f32(dtype: DType, bytes: &[u8], n: usize) -> Result<Vec<f32>, String> {
    let need = dtype
        .bytes_for(n as u64)
        .ok_or_else(|| format!("{n} elements are not a whole number of {dtype} blocks"))?;
    if bytes.len() as u64 != need {
        return Err(format!(
            "{n} {dtype} elements need {need} bytes, the file holds {}",
            bytes.len()
        ));
    }
    let (block_elems, block_bytes) = dtype.block();
    let mut out = Vec::with_capacity(n);
    let decode_block: fn(&[u8], &mut Vec<f32>) = match dtype {
        DType::F32 => {
            out.extend(
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            );
            return Ok(out);
        }
        DType::F16 => {
            out.extend(
                bytes
                    .chunks_exact(2)
                    .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()),
            );
            return Ok(out);
        }
        DType::BF16 => {
            out.extend(
                bytes
                    .chunks_exact(2)
                    .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()),
            );
            return Ok(out);
        }
        DType::Q8_0 => q8_0,
        DType::Q4_0 => q4_0,
        DType::Q4_1 => q4_1,
        DType::Q5_0 => q5_0,
        DType::Q5_1 => q5_1,
        DType::Q2K => q2_k,
        DType::Q3K => q3_k,
        DType::Q4K => q4_k,
        DType::Q5K => q5_k,
        DType::Q6K => q6_k,
    };
    for block in bytes.chunks_exact(block_bytes) {
        decode_block(block, &mut out);
    }
    debug_assert_eq!(out.len(), n / block_elems * block_elems);
    Ok(out)
}

/// The f16 at `b[at..at + 2]`, widened.
fn half_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

fn q8_0(b: &[u8], out: &mut Vec<f32>) {
    let d = half_at(b, 0);
    out.extend(b[2..34].iter().map(|&q| q as i8 as f32 * d));
}

fn q4_0(b: &[u8], out: &mut Vec<f32>) {
    let d = half_at(b, 0);
    let q = &b[2..18];
    out.extend(q.iter().map(|&v| ((v & 0x0F) as i32 - 8) as f32 * d));
    out.extend(q.iter().map(|&v| ((v >> 4) as i32 - 8) as f32 * d));
}

fn q4_1(b: &[u8], out: &mut Vec<f32>) {
    let (d, m) = (half_at(b, 0), half_at(b, 2));
    let q = &b[4..20];
    out.extend(q.iter().map(|&v| (v & 0x0F) as f32 * d + m));
    out.extend(q.iter().map(|&v| (v >> 4) as f32 * d + m));
}

/// The 5-bit values of a Q5_0/Q5_1 block: low nibbles from `q`, fifth bits
/// from `qh` (bit `j` for element `j`, bit `j + 16` for element `j + 16`).
fn five_bit(qh: u32, q: &[u8]) -> [u8; 32] {
    let mut v = [0u8; 32];
    for (j, &byte) in q.iter().enumerate() {
        let hi_lo = ((qh >> j) & 1) as u8;
        let hi_hi = ((qh >> (j + 16)) & 1) as u8;
        v[j] = (byte & 0x0F) | (hi_lo << 4);
        v[j + 16] = (byte >> 4) | (hi_hi << 4);
    }
    v
}

fn q5_0(b: &[u8], out: &mut Vec<f32>) {
    let d = half_at(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    out.extend(
        five_bit(qh, &b[6..22])
            .iter()
            .map(|&v| (v as i32 - 16) as f32 * d),
    );
}

fn q5_1(b: &[u8], out: &mut Vec<f32>) {
    let (d, m) = (half_at(b, 0), half_at(b, 2));
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    out.extend(five_bit(qh, &b[8..24]).iter().map(|&v| v as f32 * d + m));
}

fn q2_k(b: &[u8], out: &mut Vec<f32>) {
    let scales = &b[0..16];
    let qs = &b[16..80];
    let (d, dmin) = (half_at(b, 80), half_at(b, 82));
    // Two halves of 128; each reads 32 bytes of `qs` four times (2 bits per
    // pass), in groups of 16 elements that each have their own 4-bit scale
    // (low nibble) and 4-bit min (high nibble).
    let mut group = 0;
    for half in 0..2 {
        let q = &qs[32 * half..32 * half + 32];
        for shift in [0u32, 2, 4, 6] {
            for part in 0..2 {
                let sc = scales[group];
                group += 1;
                let dl = d * (sc & 0x0F) as f32;
                let ml = dmin * (sc >> 4) as f32;
                for &byte in &q[16 * part..16 * part + 16] {
                    out.push(dl * ((byte >> shift) & 3) as f32 - ml);
                }
            }
        }
    }
}

/// The sixteen 6-bit scales of a Q3_K block, unpacked from 12 bytes: the low
/// four bits of scale `i` come from byte `i` (low nibble, `i < 8`) or byte
/// `i - 8` (high nibble); the high two bits from byte `8 + i % 4` at bit
/// `2 * (i / 4)`. The stored value is offset by 32.
fn q3_k_scales(s: &[u8]) -> [i32; 16] {
    let mut out = [0i32; 16];
    for (i, o) in out.iter_mut().enumerate() {
        let low = if i < 8 { s[i] & 0x0F } else { s[i - 8] >> 4 };
        let high = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
        *o = (low | (high << 4)) as i32 - 32;
    }
    out
}

fn q3_k(b: &[u8], out: &mut Vec<f32>) {
    let hmask = &b[0..32];
    let qs = &b[32..96];
    let scales = q3_k_scales(&b[96..108]);
    let d = half_at(b, 108);
    let mut group = 0;
    let mut bit = 0u32;
    for half in 0..2 {
        let q = &qs[32 * half..32 * half + 32];
        for shift in [0u32, 2, 4, 6] {
            for part in 0..2 {
                let dl = d * scales[group] as f32;
                group += 1;
                for l in 16 * part..16 * part + 16 {
                    let low = ((q[l] >> shift) & 3) as i32;
                    let sub = if (hmask[l] >> bit) & 1 == 1 { 0 } else { 4 };
                    out.push(dl * (low - sub) as f32);
                }
            }
            bit += 1;
        }
    }
}

fn q4_k(b: &[u8], out: &mut Vec<f32>) {
    let (d, dmin) = (half_at(b, 0), half_at(b, 2));
    let scales = &b[4..16];
    let qs = &b[16..144];
    // Four chunks of 64 elements: 32 low nibbles, then 32 high nibbles of the
    // same 32 bytes, each half with its own scale and min.
    for chunk in 0..4 {
        let q = &qs[32 * chunk..32 * chunk + 32];
        let (sc1, m1) = k4_scale_min(2 * chunk, scales);
        let (sc2, m2) = k4_scale_min(2 * chunk + 1, scales);
        let (d1, min1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, min2) = (d * sc2 as f32, dmin * m2 as f32);
        out.extend(q.iter().map(|&v| d1 * (v & 0x0F) as f32 - min1));
        out.extend(q.iter().map(|&v| d2 * (v >> 4) as f32 - min2));
    }
}

fn q5_k(b: &[u8], out: &mut Vec<f32>) {
    let (d, dmin) = (half_at(b, 0), half_at(b, 2));
    let scales = &b[4..16];
    let qh = &b[16..48];
    let qs = &b[48..176];
    // As Q4_K, plus a fifth bit per element: chunk c takes bit 2c (low
    // nibbles) and bit 2c + 1 (high nibbles) of qh[l].
    for chunk in 0..4 {
        let q = &qs[32 * chunk..32 * chunk + 32];
        let (sc1, m1) = k4_scale_min(2 * chunk, scales);
        let (sc2, m2) = k4_scale_min(2 * chunk + 1, scales);
        let (d1, min1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, min2) = (d * sc2 as f32, dmin * m2 as f32);
        let (b1, b2) = (2 * chunk, 2 * chunk + 1);
        for l in 0..32 {
            let hi = ((qh[l] >> b1) & 1) << 4;
            out.push(d1 * ((q[l] & 0x0F) | hi) as f32 - min1);
        }
        for l in 0..32 {
            let hi = ((qh[l] >> b2) & 1) << 4;
            out.push(d2 * ((q[l] >> 4) | hi) as f32 - min2);
        }
    }
}

fn q6_k(b: &[u8], out: &mut Vec<f32>) {
    let ql_all = &b[0..128];
    let qh_all = &b[128..192];
    let sc_all = &b[192..208];
    let d = half_at(b, 208);
    // Two halves of 128 elements; within a half, element 32k + l (k = 0..4)
    // takes a nibble of ql (byte l or l + 32, low or high) and two bits of
    // qh[l] at bit 2k, with scale sc[l / 16 + 2k].
    for half in 0..2 {
        let ql = &ql_all[64 * half..64 * half + 64];
        let qh = &qh_all[32 * half..32 * half + 32];
        let sc = &sc_all[8 * half..8 * half + 8];
        let mut vals = [0f32; 128];
        for l in 0..32 {
            let is = l / 16;
            let h = qh[l];
            let q1 = ((ql[l] & 0x0F) | ((h & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0F) | (((h >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((h >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((h >> 6) & 3) << 4)) as i32 - 32;
            let s = |k: usize| sc[is + 2 * k] as i8 as f32;
            vals[l] = d * s(0) * q1 as f32;
            vals[l + 32] = d * s(1) * q2 as f32;
            vals[l + 64] = d * s(2) * q3 as f32;
            vals[l + 96] = d * s(3) * q4 as f32;
        }
        out.extend_from_slice(&vals);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(x: f32) -> [u8; 2] {
        f16::from_f32(x).to_le_bytes()
    }

    #[test]
    fn q8_0_is_scale_times_signed_byte() {
        let mut b = h(0.5).to_vec();
        let qs: Vec<i8> = (0..32).map(|i| (i as i8 - 16) * 4).collect(); // -64..60
        b.extend(qs.iter().map(|&q| q as u8));
        let got = to_f32(DType::Q8_0, &b, 32).unwrap();
        let want: Vec<f32> = qs.iter().map(|&q| q as f32 * 0.5).collect();
        assert_eq!(got, want);
        assert_eq!(got[0], -32.0);
        assert_eq!(got[31], 30.0);
    }

    #[test]
    fn q4_0_nibbles_are_offset_by_eight() {
        // d = 0.5; byte j holds element j (low nibble = j) and element j + 16
        // (high nibble = 15 - j).
        let mut b = h(0.5).to_vec();
        b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let got = to_f32(DType::Q4_0, &b, 32).unwrap();
        for j in 0..16 {
            assert_eq!(got[j], (j as f32 - 8.0) * 0.5, "element {j}");
            assert_eq!(
                got[j + 16],
                ((15 - j) as f32 - 8.0) * 0.5,
                "element {}",
                j + 16
            );
        }
        assert_eq!(got[0], -4.0);
        assert_eq!(got[16], 3.5);
    }

    #[test]
    fn q4_1_is_scale_times_nibble_plus_min() {
        // d = 0.5, m = -1: nibble v decodes to v / 2 - 1.
        let mut b = h(0.5).to_vec();
        b.extend(h(-1.0));
        b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let got = to_f32(DType::Q4_1, &b, 32).unwrap();
        for j in 0..16 {
            assert_eq!(got[j], j as f32 * 0.5 - 1.0);
            assert_eq!(got[j + 16], (15 - j) as f32 * 0.5 - 1.0);
        }
        assert_eq!(got[15], 6.5);
        assert_eq!(got[16], 6.5);
        assert_eq!(got[31], -1.0);
    }

    #[test]
    fn q5_formats_take_the_fifth_bit_from_qh() {
        // qh: bit j set for even j (low elements) and bit 16 + j for j = 3.
        let qh: u32 = 0x5555 | (1 << 19);
        let nib: Vec<u8> = (0..16u8).map(|j| j | (j << 4)).collect();
        let mut b0 = h(0.25).to_vec();
        b0.extend(qh.to_le_bytes());
        b0.extend(&nib);
        let got = to_f32(DType::Q5_0, &b0, 32).unwrap();
        for j in 0..16 {
            let lo = j as i32 + if j % 2 == 0 { 16 } else { 0 };
            let hi = j as i32 + if j == 3 { 16 } else { 0 };
            assert_eq!(got[j], (lo - 16) as f32 * 0.25);
            assert_eq!(got[j + 16], (hi - 16) as f32 * 0.25);
        }
        let mut b1 = h(0.25).to_vec();
        b1.extend(h(2.0));
        b1.extend(qh.to_le_bytes());
        b1.extend(&nib);
        let got = to_f32(DType::Q5_1, &b1, 32).unwrap();
        assert_eq!(got[0], 16.0 * 0.25 + 2.0);
        assert_eq!(got[1], 1.0 * 0.25 + 2.0);
        assert_eq!(got[19], 19.0 * 0.25 + 2.0);
        assert_eq!(got[20], 4.0 * 0.25 + 2.0);
    }

    #[test]
    fn q4_k_uses_packed_six_bit_scales() {
        // d = 1, dmin = 0.5; scales j < 4 in bytes 0..4 (scale) and 4..8 (min);
        // j >= 4 split between the low/high nibbles of bytes 8..12 and the
        // top two bits of bytes 0..8.
        let mut s = [0u8; 12];
        s[0] = 3 | (1 << 6); // scale 0 = 3; top bits feed scale 4
        s[4] = 2; // min 0 = 2
        s[8] = 0x05; // scale 4 low nibble = 5, min 4 low nibble = 0
        let mut b = h(1.0).to_vec();
        b.extend(h(0.5));
        b.extend(s);
        b.extend([0x21u8; 128]); // low nibble 1, high nibble 2
        let got = to_f32(DType::Q4K, &b, 256).unwrap();
        assert_eq!(got[0], 3.0 * 1.0 - 0.5 * 2.0); // chunk 0, low: scale 3, min 2
        assert_eq!(got[32], 0.0); // chunk 0, high: scale 0, min 0
        assert_eq!(got[128], (5 | (1 << 4)) as f32 * 1.0); // chunk 2, low: scale 4 = 21
        assert_eq!(k4_scale_min(4, &s), (21, 0));
    }

    #[test]
    fn q6_k_and_q3_k_decode_zero_points() {
        // Q6_K: all 6-bit values 32 decode to zero whatever the scale.
        let mut b = vec![0u8; 210];
        b[128..192].fill(0b1010_1010); // every 2-bit high part is 2, i.e. +32
        b[192..208].fill(7);
        b[208..210].copy_from_slice(&h(1.0));
        let got = to_f32(DType::Q6K, &b, 256).unwrap();
        assert!(got.iter().all(|&x| x == 0.0));
        // Q3_K: hmask bit set and 2-bit value 0 decode to 0 for any scale;
        // bit clear subtracts 4.
        let mut b = vec![0u8; 110];
        b[0..32].fill(0xFF);
        b[108..110].copy_from_slice(&h(1.0));
        let got = to_f32(DType::Q3K, &b, 256).unwrap();
        assert!(got.iter().all(|&x| x == 0.0));
        b[0..32].fill(0);
        let got = to_f32(DType::Q3K, &b, 256).unwrap();
        // Every scale field is 0, i.e. -32 after the offset: -32 * (0 - 4).
        assert!(got.iter().all(|&x| x == 128.0));
    }

    #[test]
    fn sizes_are_checked() {
        assert!(to_f32(DType::Q4_0, &[0u8; 17], 32).is_err());
        assert!(to_f32(DType::Q4_0, &[0u8; 18], 31).is_err());
        assert!(to_f32(DType::Q6K, &[0u8; 210], 256).is_ok());
        assert_eq!(
            to_f32(DType::F32, &1.5f32.to_le_bytes(), 1).unwrap(),
            vec![1.5]
        );
    }
}
