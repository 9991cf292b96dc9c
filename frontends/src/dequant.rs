//! Decoding of source storage formats to f32.
//!
//! Plain floats (f32, f16, bf16) and llama.cpp block formats. Every function
//! reads little-endian bytes and needs no alignment.

use half::{bf16, f16};
use taalasc_ir::DType;

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
    Ok(match dtype {
        DType::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        DType::F16 => bytes
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        DType::BF16 => bytes
            .chunks_exact(2)
            .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        other => return Err(format!("decoding {other} is not implemented yet")),
    })
}
