//! The safetensors container: an 8-byte little-endian header length, a JSON
//! header mapping tensor names to `{dtype, shape, data_offsets}`, then the data.
//!
//! We parse the header ourselves (rather than through the `safetensors` crate)
//! so that every error names the file and the offending tensor, and we validate
//! every entry before any data is touched: offsets inside the file, sizes that
//! match dtype x shape, and no two tensors overlapping.

use crate::arch::expected_bytes;
use crate::error::LoadError;
use crate::tensors::{MappedFile, TensorEntry, TensorIndex};
use serde_json::Value;
use taalasc_ir::DType;

/// Maps `file` and adds its tensors to `index`. Names already present (from
/// another shard) are an error.
pub fn add_file(index: &mut TensorIndex, file: MappedFile) -> Result<(), LoadError> {
    let path = file.path.clone();
    let bytes = &file.map[..];
    if bytes.len() < 8 {
        return Err(LoadError::format(
            &path,
            format!(
                "truncated safetensors file: {} bytes, the header length alone needs 8",
                bytes.len()
            ),
        ));
    }
    let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    let data_start = 8u64.checked_add(header_len).filter(|&e| e <= bytes.len() as u64).ok_or_else(|| {
        LoadError::format(
            &path,
            format!(
                "truncated or corrupt safetensors file: header claims {header_len} bytes, the file has {} after the length",
                bytes.len() - 8
            ),
        )
    })? as usize;
    let header: serde_json::Map<String, Value> = serde_json::from_slice(&bytes[8..data_start])
        .map_err(|e| {
            LoadError::format(
                &path,
                format!("safetensors header is not a JSON object: {e}"),
            )
        })?;
    let data_len = (bytes.len() - data_start) as u64;
    let file_idx = index.files.len();
    let mut spans: Vec<(u64, u64, String)> = Vec::new();
    for (name, meta) in &header {
        if name == "__metadata__" {
            continue;
        }
        let bad = |m: String| LoadError::tensor(&path, name, m);
        let dtype_str = meta
            .get("dtype")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("header entry has no string `dtype`".into()))?;
        let dtype = match dtype_str {
            "F32" => DType::F32,
            "F16" => DType::F16,
            "BF16" => DType::BF16,
            other => {
                return Err(bad(format!(
                    "unsupported dtype `{other}` (taalasc reads F32, F16 and BF16 safetensors)"
                )))
            }
        };
        let shape: Vec<usize> = meta
            .get("shape")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(|d| d.as_u64().map(|d| d as usize)).collect())
            .ok_or_else(|| {
                bad("header entry has no `shape` array of non-negative integers".into())
            })?;
        let offsets: Vec<u64> = meta
            .get("data_offsets")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(Value::as_u64).collect())
            .filter(|v: &Vec<u64>| v.len() == 2)
            .ok_or_else(|| bad("header entry has no `data_offsets` pair".into()))?;
        let (start, end) = (offsets[0], offsets[1]);
        if start > end || end > data_len {
            return Err(bad(format!(
                "data_offsets [{start}, {end}] run past the end of the data section ({data_len} bytes): the file is truncated or its header lies"
            )));
        }
        let numel = shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
        let numel = numel.ok_or_else(|| bad(format!("shape {shape:?} overflows")))?;
        let need = expected_bytes(&path, name, dtype, numel)?;
        if end - start != need {
            return Err(bad(format!(
                "data_offsets [{start}, {end}] hold {} bytes, but {dtype} {shape:?} needs {need}",
                end - start
            )));
        }
        spans.push((start, end, name.clone()));
        if index.tensors.contains_key(name) {
            return Err(bad("tensor appears in more than one file".into()));
        }
        index.tensors.insert(
            name.clone(),
            TensorEntry {
                file: file_idx,
                start: data_start + start as usize,
                end: data_start + end as usize,
                dtype,
                shape,
            },
        );
    }
    spans.sort();
    for w in spans.windows(2) {
        if w[1].0 < w[0].1 && w[1].0 != w[1].1 {
            return Err(LoadError::tensor(
                &path,
                &w[1].2,
                format!(
                    "data_offsets start at {} inside tensor `{}` ([{}, {}]): overlapping tensors",
                    w[1].0, w[0].2, w[0].0, w[0].1
                ),
            ));
        }
    }
    index.files.push(file);
    Ok(())
}
