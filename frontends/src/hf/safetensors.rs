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
use std::path::Path;
use taalasc_ir::DType;

/// One tensor's validated header entry.
#[derive(Clone, Debug, PartialEq)]
pub struct HeaderEntry {
    /// The tensor's name as stored.
    pub name: String,
    /// Storage dtype.
    pub dtype: DType,
    /// Shape, outermost dimension first.
    pub shape: Vec<usize>,
    /// Byte range relative to the start of the data section.
    pub offsets: (u64, u64),
}

/// A parsed and validated safetensors header.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    /// Absolute offset of the data section (8 + the header length).
    pub data_start: usize,
    /// Every tensor, in header order; names are unique.
    pub tensors: Vec<HeaderEntry>,
}

/// Parses and validates the header of a safetensors file whose whole
/// contents are `bytes`, without touching tensor data: a JSON object with no
/// repeated key, every entry's dtype, shape and offsets consistent and inside
/// the file, no two tensors overlapping. `path` is only used in messages.
pub fn parse_header(path: &Path, bytes: &[u8]) -> Result<Header, LoadError> {
    if bytes.len() < 8 {
        return Err(LoadError::format(
            path,
            format!(
                "truncated safetensors file: {} bytes, the header length alone needs 8",
                bytes.len()
            ),
        ));
    }
    let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    let data_start = 8u64.checked_add(header_len).filter(|&e| e <= bytes.len() as u64).ok_or_else(|| {
        LoadError::format(
            path,
            format!(
                "truncated or corrupt safetensors file: header claims {header_len} bytes, the file has {} after the length",
                bytes.len() - 8
            ),
        )
    })? as usize;
    let header = match crate::json::parse_strict(&bytes[8..data_start]) {
        Ok(Value::Object(m)) => m,
        Ok(_) => {
            return Err(LoadError::format(
                path,
                "safetensors header is not a JSON object",
            ))
        }
        Err(e) => {
            return Err(LoadError::format(
                path,
                format!("safetensors header is not a valid JSON object: {e}"),
            ))
        }
    };
    let data_len = (bytes.len() - data_start) as u64;
    let mut tensors = Vec::new();
    let mut spans: Vec<(u64, u64, String)> = Vec::new();
    for (name, meta) in &header {
        if name == "__metadata__" {
            continue;
        }
        let bad = |m: String| LoadError::tensor(path, name, m);
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
            .and_then(|a| {
                a.iter()
                    .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
                    .collect()
            })
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
        let need = expected_bytes(path, name, dtype, numel)?;
        if end - start != need {
            return Err(bad(format!(
                "data_offsets [{start}, {end}] hold {} bytes, but {dtype} {shape:?} needs {need}",
                end - start
            )));
        }
        spans.push((start, end, name.clone()));
        tensors.push(HeaderEntry {
            name: name.clone(),
            dtype,
            shape,
            offsets: (start, end),
        });
    }
    spans.sort();
    for w in spans.windows(2) {
        if w[1].0 < w[0].1 && w[1].0 != w[1].1 {
            return Err(LoadError::tensor(
                path,
                &w[1].2,
                format!(
                    "data_offsets start at {} inside tensor `{}` ([{}, {}]): overlapping tensors",
                    w[1].0, w[0].2, w[0].0, w[0].1
                ),
            ));
        }
    }
    Ok(Header {
        data_start,
        tensors,
    })
}

/// Maps `file` and adds its tensors to `index`. Names already present (from
/// another shard) are an error.
pub fn add_file(index: &mut TensorIndex, file: MappedFile) -> Result<(), LoadError> {
    let header = parse_header(&file.path, &file.map[..])?;
    let file_idx = index.files.len();
    for t in header.tensors {
        if let Some(prev) = index.tensors.get(&t.name) {
            return Err(LoadError::tensor(
                &file.path,
                &t.name,
                format!(
                    "tensor appears in more than one file (also in {})",
                    index.files[prev.file].path.display()
                ),
            ));
        }
        index.tensors.insert(
            t.name,
            TensorEntry {
                file: file_idx,
                start: header.data_start + t.offsets.0 as usize,
                end: header.data_start + t.offsets.1 as usize,
                dtype: t.dtype,
                shape: t.shape,
            },
        );
    }
    index.files.push(file);
    Ok(())
}
