//! The GGUF container: header, metadata, tensor infos and the data section.
//!
//! Layout (little-endian throughout):
//!
//! ```text
//! magic "GGUF" | version: u32 | n_tensors: u64 | n_kv: u64
//! n_kv x      { key: string | type: u32 | value }
//! n_tensors x { name: string | n_dims: u32 | ne: [u64; n_dims] | ggml_type: u32 | offset: u64 }
//! padding to `general.alignment` (default 32)
//! tensor data; each tensor at data_start + offset (offset a multiple of the alignment)
//! ```
//!
//! A string is a `u64` byte length followed by UTF-8 bytes; an array is an
//! element type (`u32`), a count (`u64`) and the elements. `ne[0]` is the
//! fastest-varying dimension, so the row-major shape is `ne` reversed.
//!
//! Parsing only reads the header: tensor data stays in the memory map until a
//! weight is asked for. Everything is validated before use; no input panics.

use super::metadata::{Metadata, Value, ValueType};
use crate::error::LoadError;
use crate::tensors::{MappedFile, TensorEntry, TensorIndex};
use std::collections::HashSet;
use std::path::Path;
use taalasc_ir::DType;

/// The four bytes every GGUF file starts with.
pub const MAGIC: &[u8; 4] = b"GGUF";
/// Data-section alignment in bytes when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's limit on tensor rank.
pub const MAX_DIMS: u32 = 4;
/// Nesting limit for arrays of arrays (the format allows them; no real file
/// nests deeper than one level). Bounds recursion on hostile input.
const MAX_ARRAY_DEPTH: u32 = 8;

/// The ggml type ids this reader decodes, and their storage dtypes.
pub fn dtype_of_ggml_type(id: u32) -> Option<DType> {
    Some(match id {
        0 => DType::F32,
        1 => DType::F16,
        2 => DType::Q4_0,
        3 => DType::Q4_1,
        6 => DType::Q5_0,
        7 => DType::Q5_1,
        8 => DType::Q8_0,
        10 => DType::Q2K,
        11 => DType::Q3K,
        12 => DType::Q4K,
        13 => DType::Q5K,
        14 => DType::Q6K,
        30 => DType::BF16,
        _ => return None,
    })
}

/// The ggml name of a type id, for error messages (including the types this
/// reader does not decode).
pub fn ggml_type_name(id: u32) -> &'static str {
    #[rustfmt::skip]
    const NAMES: [&str; 40] = [
        "F32", "F16", "Q4_0", "Q4_1", "Q4_2 (removed)", "Q4_3 (removed)", "Q5_0", "Q5_1",
        "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS",
        "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64",
        "F64", "IQ1_M", "BF16", "Q4_0_4_4 (removed)", "Q4_0_4_8 (removed)",
        "Q4_0_8_8 (removed)", "TQ1_0", "TQ2_0", "IQ4_NL_4_4 (removed)",
        "IQ4_NL_4_8 (removed)", "IQ4_NL_8_8 (removed)", "MXFP4",
    ];
    NAMES.get(id as usize).copied().unwrap_or("unknown")
}

/// One tensor's header entry, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// The tensor's name (unique in the file).
    pub name: String,
    /// Dimensions as stored: `ne[0]` varies fastest.
    pub ne: Vec<u64>,
    /// The ggml type id as stored (see [`ggml_type_name`]).
    pub ggml_type: u32,
    /// The storage dtype of `ggml_type` (only decodable types are accepted).
    pub dtype: DType,
    /// Offset from the start of the data section, as stored.
    pub offset: u64,
    /// Absolute byte range in the file.
    pub start: usize,
    /// Exclusive end of the byte range; `end - start` is the size `dtype`
    /// needs for `numel` elements.
    pub end: usize,
}

impl TensorInfo {
    /// Row-major shape (outermost first): `ne` reversed.
    pub fn shape(&self) -> Vec<usize> {
        self.ne.iter().rev().map(|&d| d as usize).collect()
    }

    /// Element count: the product of `ne`.
    pub fn numel(&self) -> u64 {
        self.ne.iter().product()
    }
}

/// Everything before the tensor data, parsed and validated.
#[derive(Clone, Debug)]
pub struct Header {
    /// The format version: 2 or 3 (1 and big-endian files are rejected).
    pub version: u32,
    /// Data-section alignment in bytes (`general.alignment`, a power of two,
    /// default 32); every tensor offset is a multiple of it.
    pub alignment: u64,
    /// Absolute offset of the data section.
    pub data_start: u64,
    /// The key/value pairs, in file order.
    pub metadata: Metadata,
    /// In file order.
    pub tensors: Vec<TensorInfo>,
}

/// A parsed GGUF file with its memory map.
pub struct GgufFile {
    /// The parsed header.
    pub header: Header,
    /// The memory-mapped file the header was read from.
    pub file: MappedFile,
}

impl GgufFile {
    /// Maps and parses `path`. Reads no tensor data.
    pub fn open(path: &Path) -> Result<Self, LoadError> {
        let len = std::fs::metadata(path)
            .map_err(|e| LoadError::io(path, e))?
            .len();
        if len < 4 {
            return Err(LoadError::format(
                path,
                format!("not a GGUF file: only {len} bytes long (a GGUF file starts with the 4-byte magic `GGUF`)"),
            ));
        }
        Self::from_mapped(MappedFile::open(path)?)
    }

    /// Parses an already mapped file (see [`MappedFile::from_bytes`]).
    pub fn from_mapped(file: MappedFile) -> Result<Self, LoadError> {
        let header = Header::parse(&file.path, &file.map)?;
        Ok(GgufFile { header, file })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.file.path
    }

    /// The file's key/value metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.header.metadata
    }

    /// The header entry of the tensor named `name`, if any.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.header.tensors.iter().find(|t| t.name == name)
    }

    /// The raw bytes of one tensor.
    pub fn tensor_bytes(&self, t: &TensorInfo) -> &[u8] {
        &self.file.map[t.start..t.end]
    }

    /// A [`TensorIndex`] over this file (one file, absolute byte ranges).
    pub fn into_index(self) -> TensorIndex {
        self.into_parts().1
    }

    /// The metadata, and a [`TensorIndex`] over this file.
    pub fn into_parts(self) -> (Metadata, TensorIndex) {
        let tensors = self
            .header
            .tensors
            .iter()
            .map(|t| {
                let entry = TensorEntry {
                    file: 0,
                    start: t.start,
                    end: t.end,
                    dtype: t.dtype,
                    shape: t.shape(),
                };
                (t.name.clone(), entry)
            })
            .collect();
        let index = TensorIndex {
            files: vec![self.file],
            tensors,
        };
        (self.header.metadata, index)
    }
}

/// Why a low-level read failed; turned into a [`LoadError`] with context.
enum ReadError {
    /// Needed `need` bytes at `at`, past the end.
    Eof {
        at: usize,
        need: u64,
    },
    Invalid(String),
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], ReadError> {
        if n > self.remaining() {
            return Err(ReadError::Eof {
                at: self.pos,
                need: n,
            });
        }
        let n = n as usize;
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ReadError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N as u64)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, ReadError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, ReadError> {
        self.array().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Result<u32, ReadError> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, ReadError> {
        self.array().map(u64::from_le_bytes)
    }

    /// A length-prefixed UTF-8 string. The length is checked against the
    /// remaining bytes before anything is allocated.
    fn string(&mut self) -> Result<String, ReadError> {
        let len = self.u64()?;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|e| {
            ReadError::Invalid(format!("string of {len} bytes is not valid UTF-8 ({e})"))
        })
    }

    /// A count of items of at least `min_size` bytes each, checked against the
    /// remaining bytes (so a hostile count cannot trigger a huge allocation).
    fn count(&mut self, min_size: u64, what: &str) -> Result<usize, ReadError> {
        let at = self.pos;
        let n = self.u64()?;
        match n.checked_mul(min_size) {
            Some(bytes) if bytes <= self.remaining() => Ok(n as usize),
            _ => Err(ReadError::Invalid(format!(
                "{what} count {n} (at byte {at}) cannot fit in the {} bytes left in the file",
                self.remaining()
            ))),
        }
    }

    fn value(&mut self, ty: ValueType, depth: u32) -> Result<Value, ReadError> {
        Ok(match ty {
            ValueType::U8 => Value::U8(self.u8()?),
            ValueType::I8 => Value::I8(self.u8()? as i8),
            ValueType::U16 => Value::U16(self.u16()?),
            ValueType::I16 => Value::I16(self.u16()? as i16),
            ValueType::U32 => Value::U32(self.u32()?),
            ValueType::I32 => Value::I32(self.u32()? as i32),
            ValueType::F32 => Value::F32(f32::from_bits(self.u32()?)),
            ValueType::U64 => Value::U64(self.u64()?),
            ValueType::I64 => Value::I64(self.u64()? as i64),
            ValueType::F64 => Value::F64(f64::from_bits(self.u64()?)),
            ValueType::Bool => match self.u8()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => {
                    return Err(ReadError::Invalid(format!(
                        "bool byte is {b} (must be 0 or 1)"
                    )))
                }
            },
            ValueType::String => Value::String(self.string()?),
            ValueType::Array => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(ReadError::Invalid(format!(
                        "arrays nested more than {MAX_ARRAY_DEPTH} deep"
                    )));
                }
                let id = self.u32()?;
                let elem = ValueType::from_id(id).ok_or_else(|| {
                    ReadError::Invalid(format!("unknown array element type {id} (known: 0..=12)"))
                })?;
                let n = self.count(elem.min_size(), &format!("array[{elem}] element"))?;
                let mut items = Vec::with_capacity(n);
                for i in 0..n {
                    let v = self.value(elem, depth + 1).map_err(|e| match e {
                        ReadError::Invalid(m) => ReadError::Invalid(format!("element {i}: {m}")),
                        eof => eof,
                    })?;
                    items.push(v);
                }
                Value::Array(elem, items)
            }
        })
    }
}

/// Turns a low-level read error into a message naming `what` was being read.
fn describe(e: ReadError, what: &str, file_len: usize) -> String {
    match e {
        ReadError::Eof { at, need } => format!(
            "truncated file: reading {what} needs {need} bytes at byte {at}, but the file ends at byte {file_len}"
        ),
        ReadError::Invalid(m) => format!("{what}: {m}"),
    }
}

impl Header {
    /// Parses and validates the header of a GGUF file held in `bytes`
    /// (`path` only names the file in errors).
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Header, LoadError> {
        let len = bytes.len();
        let fmt_err = |what: &str, e: ReadError| LoadError::format(path, describe(e, what, len));
        let mut c = Cursor { buf: bytes, pos: 0 };

        let magic = c.take(4).map_err(|e| fmt_err("the magic", e))?;
        if magic != MAGIC {
            return Err(LoadError::format(
                path,
                format!(
                    "not a GGUF file: the magic is {:?} ({}), expected `GGUF`",
                    String::from_utf8_lossy(magic),
                    hex(magic)
                ),
            ));
        }
        let version = c.u32().map_err(|e| fmt_err("the version", e))?;
        match version {
            2 | 3 => {}
            1 => {
                return Err(LoadError::format(
                    path,
                    "unsupported GGUF version 1 (32-bit counts; re-convert the model with a current llama.cpp) — supported versions: 2, 3",
                ))
            }
            v if v & 0xFFFF == 0 && v.swap_bytes() <= 3 => {
                return Err(LoadError::format(
                    path,
                    format!(
                        "GGUF version field reads {v:#010x}: this is a big-endian GGUF (version {}), which is not supported",
                        v.swap_bytes()
                    ),
                ))
            }
            v => {
                return Err(LoadError::format(
                    path,
                    format!("unsupported GGUF version {v} (supported: 2, 3)"),
                ))
            }
        }
        // Each tensor info is at least 24 bytes (name length, n_dims, type,
        // offset); each KV pair at least 13 (key length, type, one byte).
        let n_tensors = c
            .count(24, "tensor")
            .map_err(|e| fmt_err("the tensor count", e))?;
        let n_kv = c
            .count(13, "metadata entry")
            .map_err(|e| fmt_err("the metadata count", e))?;

        let mut metadata = Metadata::new(path);
        for i in 0..n_kv {
            let key = c
                .string()
                .map_err(|e| fmt_err(&format!("the key of metadata entry {i}"), e))?;
            let ty_at = c.pos;
            let ty_id = c
                .u32()
                .map_err(|e| fmt_err(&format!("the type of metadata entry `{key}`"), e))?;
            let ty = ValueType::from_id(ty_id).ok_or_else(|| {
                LoadError::config(
                    path,
                    &key,
                    format!("unknown value type {ty_id} at byte {ty_at} (known: 0..=12)"),
                )
            })?;
            let value = c.value(ty, 0).map_err(|e| match e {
                ReadError::Invalid(m) => LoadError::config(path, &key, m),
                eof => fmt_err(&format!("the value of metadata entry `{key}` ({ty})"), eof),
            })?;
            if !metadata.insert(key.clone(), value) {
                return Err(LoadError::config(
                    path,
                    &key,
                    "appears twice in the metadata",
                ));
            }
        }
        let alignment = alignment(&metadata)?;

        let mut raw = Vec::with_capacity(n_tensors);
        let mut names = HashSet::with_capacity(n_tensors);
        for i in 0..n_tensors {
            let name = c
                .string()
                .map_err(|e| fmt_err(&format!("the name of tensor info {i}"), e))?;
            let terr =
                |what: &str, e: ReadError| LoadError::tensor(path, &name, describe(e, what, len));
            let n_dims = c.u32().map_err(|e| terr("n_dims", e))?;
            if n_dims > MAX_DIMS {
                return Err(LoadError::tensor(
                    path,
                    &name,
                    format!("has {n_dims} dimensions (at most {MAX_DIMS} are allowed)"),
                ));
            }
            let mut ne = Vec::with_capacity(n_dims as usize);
            for d in 0..n_dims {
                ne.push(c.u64().map_err(|e| terr(&format!("ne[{d}]"), e))?);
            }
            let ggml_type = c.u32().map_err(|e| terr("the ggml type", e))?;
            let offset = c.u64().map_err(|e| terr("the data offset", e))?;
            if !names.insert(name.clone()) {
                return Err(LoadError::tensor(
                    path,
                    &name,
                    "appears twice in the tensor infos",
                ));
            }
            raw.push((name, ne, ggml_type, offset));
        }
        let header_end = c.pos as u64;
        // header_end <= len, and alignment <= 2^31: no overflow.
        let data_start = header_end.div_ceil(alignment) * alignment;

        let mut tensors = Vec::with_capacity(raw.len());
        for (name, ne, ggml_type, offset) in raw {
            tensors.push(tensor_info(
                path, len, data_start, alignment, name, ne, ggml_type, offset,
            )?);
        }
        check_overlaps(path, &tensors)?;
        Ok(Header {
            version,
            alignment,
            data_start,
            metadata,
            tensors,
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `general.alignment`: a power of two, default 32.
fn alignment(metadata: &Metadata) -> Result<u64, LoadError> {
    const KEY: &str = "general.alignment";
    match metadata.get(KEY) {
        None => Ok(DEFAULT_ALIGNMENT),
        Some(v) => match v.as_int() {
            Some(a) if a > 0 && a <= 1 << 31 && (a as u64).is_power_of_two() => Ok(a as u64),
            _ => Err(metadata.err(
                KEY,
                format!("must be a power of two, found {}", v.describe()),
            )),
        },
    }
}

/// Validates one tensor info and computes its absolute byte range.
#[allow(clippy::too_many_arguments)]
fn tensor_info(
    path: &Path,
    file_len: usize,
    data_start: u64,
    alignment: u64,
    name: String,
    ne: Vec<u64>,
    ggml_type: u32,
    offset: u64,
) -> Result<TensorInfo, LoadError> {
    let err = |m: String| LoadError::tensor(path, &name, m);
    let dtype = dtype_of_ggml_type(ggml_type).ok_or_else(|| {
        err(format!(
            "unsupported ggml type {ggml_type} ({}); supported: F32 (0), F16 (1), Q4_0 (2), Q4_1 (3), Q5_0 (6), Q5_1 (7), Q8_0 (8), Q2_K (10), Q3_K (11), Q4_K (12), Q5_K (13), Q6_K (14), BF16 (30)",
            ggml_type_name(ggml_type)
        ))
    })?;
    // Bound the product of the dimensions with zeros counted as ones, so no
    // partial product (in any order, anywhere downstream) can overflow even
    // when an empty dimension makes the element count 0.
    ne.iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d.max(1)))
        .filter(|&n| n <= isize::MAX as u64)
        .ok_or_else(|| err(format!("dimensions {ne:?} overflow the element count")))?;
    let numel: u64 = ne.iter().product();
    let (block_elems, block_bytes) = dtype.block();
    let row = ne.first().copied().unwrap_or(1);
    if row % block_elems as u64 != 0 {
        return Err(err(format!(
            "ne[0] = {row} (dims {ne:?}) is not a whole number of {dtype} blocks of {block_elems} elements"
        )));
    }
    // numel is a whole number of blocks since ne[0] is. Checked: the byte
    // size of a huge claimed tensor may not fit in 64 bits.
    let size = (numel / block_elems as u64)
        .checked_mul(block_bytes as u64)
        .ok_or_else(|| err(format!("{numel} {dtype} elements overflow the byte size")))?;
    if !offset.is_multiple_of(alignment) {
        return Err(err(format!(
            "data offset {offset} is not a multiple of the alignment {alignment}"
        )));
    }
    let range = data_start
        .checked_add(offset)
        .and_then(|s| s.checked_add(size).map(|e| (s, e)));
    match range {
        Some((start, end)) if end <= file_len as u64 => Ok(TensorInfo {
            name,
            ne,
            ggml_type,
            dtype,
            offset,
            start: start as usize,
            end: end as usize,
        }),
        _ => Err(err(format!(
            "data (offset {offset} + {size} bytes of {dtype}, from byte {}) runs past the end of the file ({file_len} bytes)",
            data_start.saturating_add(offset)
        ))),
    }
}

/// No two tensors with data may share bytes.
fn check_overlaps(path: &Path, tensors: &[TensorInfo]) -> Result<(), LoadError> {
    let mut spans: Vec<&TensorInfo> = tensors.iter().filter(|t| t.end > t.start).collect();
    spans.sort_by_key(|t| (t.start, t.end));
    for pair in spans.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if b.start < a.end {
            return Err(LoadError::tensor(
                path,
                &b.name,
                format!(
                    "data bytes [{}, {}) overlap those of tensor `{}` [{}, {})",
                    b.start, b.end, a.name, a.start, a.end
                ),
            ));
        }
    }
    Ok(())
}
