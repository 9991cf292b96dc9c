//! Memory-mapped tensor storage shared by every checkpoint format.
//!
//! A [`TensorIndex`] maps source tensor names to byte ranges inside mapped
//! files. [`MappedWeights`] binds IR weight ids to those ranges plus the
//! layout transforms that turn a source tensor into its canonical IR layout.
//! Nothing is copied until [`WeightSource::load_f32`] is called for one weight.

use crate::dequant;
use crate::error::LoadError;
use memmap2::Mmap;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use taalasc_ir::{DType, RawRows, WeightError, WeightId, WeightSource};

/// One memory-mapped checkpoint file.
pub struct MappedFile {
    /// The file's path, for error messages.
    pub path: PathBuf,
    /// A read-only map of the whole file (shared with the [`RawRows`] that
    /// borrow its tensors).
    pub map: Arc<Mmap>,
}

impl MappedFile {
    /// Opens and maps `path` read-only. Reads no data: pages fault in on access.
    pub fn open(path: &Path) -> Result<Self, LoadError> {
        let file = File::open(path).map_err(|e| LoadError::io(path, e))?;
        // SAFETY: the mapping is read-only. If another process truncates the file
        // while we hold it, reads fault; that is the documented memmap2 hazard and
        // the same contract every mmap-based model loader accepts.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| LoadError::io(path, e))?;
        Ok(MappedFile {
            path: path.to_path_buf(),
            map: Arc::new(map),
        })
    }
}

impl MappedFile {
    /// An anonymous read-only map holding a copy of `bytes`, named `path` in
    /// messages: the in-memory twin of [`MappedFile::open`], for checking
    /// bytes that are not in a file (fuzzing, property tests).
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Self, LoadError> {
        if bytes.is_empty() {
            // A zero-length anonymous map is an error; so is an empty checkpoint.
            return Err(LoadError::format(path, "the file is empty"));
        }
        let mut map = memmap2::MmapOptions::new()
            .len(bytes.len())
            .map_anon()
            .map_err(|e| LoadError::io(path, e))?;
        map.copy_from_slice(bytes);
        let map = map.make_read_only().map_err(|e| LoadError::io(path, e))?;
        Ok(MappedFile {
            path: path.to_path_buf(),
            map: Arc::new(map),
        })
    }
}

/// Where one source tensor lives.
#[derive(Clone, Debug)]
pub struct TensorEntry {
    /// Index into [`TensorIndex::files`].
    pub file: usize,
    /// Absolute byte range inside the mapped file.
    pub start: usize,
    /// Exclusive end of the byte range (`end - start` is the stored byte size,
    /// validated against `dtype` and `shape` by the reader).
    pub end: usize,
    /// Storage dtype as found in the file (plain float or a llama.cpp block format).
    pub dtype: DType,
    /// Source shape, outermost dimension first (row-major).
    pub shape: Vec<usize>,
}

impl TensorEntry {
    /// Element count: the product of `shape` (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// All tensors of a checkpoint, by source name.
#[derive(Default)]
pub struct TensorIndex {
    /// The mapped files, in the order they were added (one per shard).
    pub files: Vec<MappedFile>,
    /// Every tensor, by its source (checkpoint) name; names are unique across shards.
    pub tensors: BTreeMap<String, TensorEntry>,
}

impl TensorIndex {
    /// The entry of the tensor with source name `name`, if any.
    pub fn get(&self, name: &str) -> Option<&TensorEntry> {
        self.tensors.get(name)
    }

    /// The path of the file holding `entry`.
    pub fn path_of(&self, entry: &TensorEntry) -> &Path {
        &self.files[entry.file].path
    }

    /// The stored bytes of `entry` (still in the source dtype), borrowed from the map.
    pub fn bytes(&self, entry: &TensorEntry) -> &[u8] {
        &self.files[entry.file].map[entry.start..entry.end]
    }

    /// Drops the mapped pages of bytes `start..end` of `entry`'s file from
    /// this process (they stay in the page cache). A weight once decoded is
    /// not read through the map again, so the process's resident set does
    /// not grow with the checkpoint: without this, every page read stays
    /// mapped (and counted in RSS) until the map closes.
    fn release(&self, entry: &TensorEntry, start: usize, end: usize) {
        let map = &self.files[entry.file].map;
        if end > start && end <= map.len() {
            // SAFETY: the map is a read-only shared mapping of a file. Dropping
            // its pages only makes the next access fault them in again, from
            // the page cache or the file, with the same bytes; no Rust
            // reference can observe a difference.
            let _ = unsafe {
                map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
            };
        }
    }
}

/// A layout change applied, in order, to a source tensor to give its IR layout.
#[derive(Clone, Debug, PartialEq)]
pub enum Transform {
    /// Swap the two dimensions of a matrix (GPT-2 `Conv1D` stores `[in, out]`).
    Transpose,
    /// Keep `len` entries starting at `start` along `axis` (GPT-2's fused `c_attn`).
    Slice {
        /// The axis to slice, 0 being the outermost.
        axis: usize,
        /// The first index kept along `axis`.
        start: usize,
        /// How many indices are kept along `axis`.
        len: usize,
    },
    /// Undo llama.cpp's rotary row permutation of Q/K projections (weights or
    /// biases): within each head, GGUF stores rows interleaved as pairs
    /// `(0, half), (1, half+1), ...`; the IR uses the split-halves layout.
    UnpermuteRope {
        /// Heads the rows split into (query heads for Q, KV heads for K);
        /// the row count is a multiple of `2 * n_heads`.
        n_heads: usize,
    },
}

impl Transform {
    /// Shape after the transform, or a reason it does not apply.
    pub fn apply_shape(&self, shape: &[usize]) -> Result<Vec<usize>, String> {
        match *self {
            Transform::Transpose => match shape {
                [a, b] => Ok(vec![*b, *a]),
                _ => Err(format!("cannot transpose a tensor of rank {}", shape.len())),
            },
            Transform::Slice { axis, start, len } => {
                let mut s = shape.to_vec();
                match s.get_mut(axis) {
                    Some(d) if start + len <= *d => {
                        *d = len;
                        Ok(s)
                    }
                    _ => Err(format!(
                        "cannot take [{start}..{}] of axis {axis} of shape {shape:?}",
                        start + len
                    )),
                }
            }
            Transform::UnpermuteRope { n_heads } => {
                let rows = shape.first().copied().unwrap_or(0);
                if n_heads == 0 || rows % (2 * n_heads) != 0 {
                    return Err(format!(
                        "{rows} rows do not split into {n_heads} heads of even size"
                    ));
                }
                Ok(shape.to_vec())
            }
        }
    }

    fn apply(&self, data: Vec<f32>, shape: &[usize]) -> Vec<f32> {
        match *self {
            Transform::Transpose => {
                let (r, c) = (shape[0], shape[1]);
                let mut out = vec![0.0; data.len()];
                for i in 0..r {
                    for j in 0..c {
                        out[j * r + i] = data[i * c + j];
                    }
                }
                out
            }
            Transform::Slice { axis, start, len } => {
                let outer: usize = shape[..axis].iter().product();
                let inner: usize = shape[axis + 1..].iter().product();
                let dim = shape[axis];
                let mut out = Vec::with_capacity(outer * len * inner);
                for o in 0..outer {
                    let base = o * dim * inner;
                    out.extend_from_slice(
                        &data[base + start * inner..base + (start + len) * inner],
                    );
                }
                out
            }
            Transform::UnpermuteRope { n_heads } => {
                let rows = shape[0];
                let cols: usize = shape[1..].iter().product();
                let head_rows = rows / n_heads;
                let half = head_rows / 2;
                let mut out = vec![0.0; data.len()];
                for h in 0..n_heads {
                    for i in 0..half {
                        for (k, dst) in [(2 * i, i), (2 * i + 1, i + half)] {
                            let s = (h * head_rows + k) * cols;
                            let d = (h * head_rows + dst) * cols;
                            out[d..d + cols].copy_from_slice(&data[s..s + cols]);
                        }
                    }
                }
                out
            }
        }
    }
}

/// How to produce one IR weight from a source tensor.
#[derive(Clone, Debug)]
pub struct WeightBinding {
    /// The source tensor's name in the [`TensorIndex`].
    pub tensor: String,
    /// Layout changes applied in order to the source tensor to give the
    /// canonical IR layout (empty when the stored layout already is canonical).
    pub transforms: Vec<Transform>,
}

/// [`WeightSource`] over a [`TensorIndex`].
pub struct MappedWeights {
    /// Every tensor of the checkpoint.
    pub index: TensorIndex,
    /// One binding per IR weight, indexed by [`WeightId`]'s number (the order the
    /// lowering registered the weights).
    pub bindings: Vec<WeightBinding>,
}

impl WeightSource for MappedWeights {
    fn load_f32(&self, id: WeightId) -> Result<Vec<f32>, WeightError> {
        let (binding, entry) = self.bound(id)?;
        let file = self.index.path_of(entry).display().to_string();
        let invalid = |message: String| WeightError::Invalid {
            file: file.clone(),
            tensor: binding.tensor.clone(),
            message,
        };
        let data = dequant::to_f32(entry.dtype, self.index.bytes(entry), entry.numel());
        self.index.release(entry, entry.start, entry.end);
        let mut data = data.map_err(invalid)?;
        if let Some((index, &value)) = data.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(WeightError::NonFinite {
                file,
                tensor: binding.tensor.clone(),
                index,
                value,
            });
        }
        let mut shape = entry.shape.clone();
        for t in &binding.transforms {
            let next = t.apply_shape(&shape).map_err(invalid)?;
            data = t.apply(data, &shape);
            shape = next;
        }
        Ok(data)
    }

    /// Zero-copy rows for a matrix stored in any dtype whose transforms only
    /// move whole rows (GGUF's rotary un-permutation, a row slice) and whose
    /// rows are whole blocks; the map's pages stay mapped (they are read again
    /// on every use). Checks every element is finite, as `load_f32` does.
    fn raw_rows(&self, id: WeightId) -> Result<Option<RawRows>, WeightError> {
        let (binding, entry) = self.bound(id)?;
        let [rows, cols] = entry.shape[..] else {
            return Ok(None);
        };
        let row_only = binding.transforms.iter().all(|t| match t {
            Transform::UnpermuteRope { .. } => true,
            Transform::Slice { axis, .. } => *axis == 0,
            Transform::Transpose => false,
        });
        let (block_elems, block_bytes) = entry.dtype.block();
        if !row_only || cols % block_elems != 0 || rows == 0 || cols == 0 {
            return Ok(None);
        }
        let file = self.index.path_of(entry).display().to_string();
        let invalid = |message: String| WeightError::Invalid {
            file: file.clone(),
            tensor: binding.tensor.clone(),
            message,
        };
        let row_bytes = cols / block_elems * block_bytes;
        let bytes = self.index.bytes(entry);
        if rows.checked_mul(row_bytes) != Some(bytes.len()) {
            return Err(invalid(format!(
                "{rows} x {cols} {} elements need {} bytes, the file holds {}",
                entry.dtype,
                rows.saturating_mul(row_bytes),
                bytes.len()
            )));
        }
        if let Some((index, value)) = dequant::first_non_finite(entry.dtype, bytes) {
            return Err(WeightError::NonFinite {
                file,
                tensor: binding.tensor.clone(),
                index,
                value,
            });
        }
        // Which stored row lands in each canonical row: the transforms run
        // over a column of row numbers (exact in f32 below 2^24 rows).
        let mut order = None;
        if !binding.transforms.is_empty() {
            if rows >= 1 << 24 {
                return Ok(None);
            }
            let mut map: Vec<f32> = (0..rows).map(|r| r as f32).collect();
            let mut shape = vec![rows, 1];
            for t in &binding.transforms {
                let next = t.apply_shape(&shape).map_err(invalid)?;
                map = t.apply(map, &shape);
                shape = next;
            }
            order = Some(map.iter().map(|&r| r as u32).collect::<Arc<[u32]>>());
        }
        let out_rows = order.as_ref().map_or(rows, |o| o.len());
        let mapped = &self.index.files[entry.file].map;
        Ok(Some(RawRows {
            dtype: entry.dtype,
            rows: out_rows,
            cols,
            row_bytes,
            bytes: Arc::clone(mapped) as Arc<dyn AsRef<[u8]> + Send + Sync>,
            offset: entry.start,
            order,
            decode: dequant::row_decoder(entry.dtype),
        }))
    }
}

/// A weight still in its llama.cpp block form, for lossless import into a
/// matching chip weight format. Arrays are in canonical row-major order
/// (rows already un-permuted): one `d`/`m` per 32-element block, one code per
/// element.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceBlocks {
    /// `w = d * q + m`, `q ∈ [0, 15]`, `d` and `m` as f16 bits.
    Q4_1 {
        /// Rows of the canonical `[rows, cols]` matrix (1 for a vector).
        rows: usize,
        /// Columns (elements per row), a multiple of 32.
        cols: usize,
        /// Per-block scale `d`, `rows * cols / 32` entries, row-major.
        d: Vec<u16>,
        /// Per-block offset `m`, `rows * cols / 32` entries, row-major.
        m: Vec<u16>,
        /// 4-bit codes, one per element (`rows * cols`), row-major.
        q: Vec<u8>,
    },
    /// `w = d * q`, `q ∈ [-127, 127]`, `d` as f16 bits.
    Q8_0 {
        /// Rows of the canonical `[rows, cols]` matrix (1 for a vector).
        rows: usize,
        /// Columns (elements per row), a multiple of 32.
        cols: usize,
        /// Per-block scale `d`, `rows * cols / 32` entries, row-major.
        d: Vec<u16>,
        /// 8-bit signed codes, one per element (`rows * cols`), row-major.
        q: Vec<i8>,
    },
}

impl MappedWeights {
    /// Rows `rows` of weight `id` as f32, when it is a plain-float (f32, f16,
    /// bf16) matrix bound without layout transforms, so that its rows lie one
    /// after another in the file: a quantizer that treats rows independently
    /// can then read a large table a slice at a time. `Ok(None)` for any other
    /// weight (load it whole with [`WeightSource::load_f32`]). Rejects NaN
    /// and Inf like `load_f32`, with the element index in the whole tensor.
    pub fn load_f32_rows(
        &self,
        id: WeightId,
        rows: std::ops::Range<usize>,
    ) -> Result<Option<Vec<f32>>, WeightError> {
        let (binding, entry) = self.bound(id)?;
        let [n_rows, cols] = entry.shape[..] else {
            return Ok(None);
        };
        let elem = match entry.dtype {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
            _ => return Ok(None),
        };
        if !binding.transforms.is_empty() {
            return Ok(None);
        }
        let file = self.index.path_of(entry).display().to_string();
        let invalid = |message: String| WeightError::Invalid {
            file: file.clone(),
            tensor: binding.tensor.clone(),
            message,
        };
        if rows.start > rows.end || rows.end > n_rows {
            return Err(invalid(format!(
                "rows {}..{} of a tensor of {n_rows} rows",
                rows.start, rows.end
            )));
        }
        let bytes = self.index.bytes(entry);
        let (s, e) = (rows.start * cols * elem, rows.end * cols * elem);
        if e > bytes.len() {
            return Err(invalid(format!(
                "{n_rows} x {cols} {} elements need more than the {} bytes the file holds",
                entry.dtype,
                bytes.len()
            )));
        }
        let data = dequant::to_f32(entry.dtype, &bytes[s..e], rows.len() * cols);
        self.index.release(entry, entry.start + s, entry.start + e);
        let data = data.map_err(invalid)?;
        if let Some((index, &value)) = data.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(WeightError::NonFinite {
                file,
                tensor: binding.tensor.clone(),
                index: rows.start * cols + index,
                value,
            });
        }
        Ok(Some(data))
    }

    /// The binding of weight `id` and the source tensor it reads.
    fn bound(&self, id: WeightId) -> Result<(&WeightBinding, &TensorEntry), WeightError> {
        let binding = self
            .bindings
            .get(id.0 as usize)
            .ok_or(WeightError::UnknownId(id))?;
        let entry = self
            .index
            .get(&binding.tensor)
            .ok_or(WeightError::UnknownId(id))?;
        Ok((binding, entry))
    }

    /// The weight's source blocks, when it is stored as Q4_1 or Q8_0 and every
    /// layout transform only moves whole rows (so blocks stay intact).
    /// `Ok(None)` otherwise.
    pub fn load_blocks(&self, id: WeightId) -> Result<Option<SourceBlocks>, WeightError> {
        let (binding, entry) = self.bound(id)?;
        let row_only = binding.transforms.iter().all(|t| match t {
            Transform::UnpermuteRope { .. } => true,
            Transform::Slice { axis, .. } => *axis == 0,
            Transform::Transpose => false,
        });
        let (rows, cols) = match entry.shape.as_slice() {
            [r, c] => (*r, *c),
            [c] => (1, *c),
            _ => return Ok(None),
        };
        if !row_only || !matches!(entry.dtype, DType::Q4_1 | DType::Q8_0) || cols % 32 != 0 {
            return Ok(None);
        }
        // Which source row lands in each destination row: run the transforms
        // over a column of row numbers (exact in f32 below 2^24 rows).
        let mut map: Vec<f32> = (0..rows).map(|r| r as f32).collect();
        let mut shape = vec![rows, 1];
        for t in &binding.transforms {
            let next = t
                .apply_shape(&shape)
                .map_err(|message| WeightError::Invalid {
                    file: self.index.path_of(entry).display().to_string(),
                    tensor: binding.tensor.clone(),
                    message,
                })?;
            map = t.apply(map, &shape);
            shape = next;
        }
        let out_rows = shape[0];
        let bytes = self.index.bytes(entry);
        let f16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
        let blocks_per_row = cols / 32;
        let blocks = match entry.dtype {
            DType::Q4_1 => {
                let (mut d, mut m, mut q) = (Vec::new(), Vec::new(), Vec::new());
                for &src in &map {
                    for blk in 0..blocks_per_row {
                        let b = &bytes[(src as usize * blocks_per_row + blk) * 20..][..20];
                        d.push(f16_at(b, 0));
                        m.push(f16_at(b, 2));
                        q.extend((0..32).map(|j| {
                            if j < 16 {
                                b[4 + j] & 0xf
                            } else {
                                b[4 + j - 16] >> 4
                            }
                        }));
                    }
                }
                SourceBlocks::Q4_1 {
                    rows: out_rows,
                    cols,
                    d,
                    m,
                    q,
                }
            }
            _ => {
                let (mut d, mut q) = (Vec::new(), Vec::new());
                for &src in &map {
                    for blk in 0..blocks_per_row {
                        let b = &bytes[(src as usize * blocks_per_row + blk) * 34..][..34];
                        d.push(f16_at(b, 0));
                        q.extend(b[2..34].iter().map(|&x| x as i8));
                    }
                }
                SourceBlocks::Q8_0 {
                    rows: out_rows,
                    cols,
                    d,
                    q,
                }
            }
        };
        self.index.release(entry, entry.start, entry.end);
        Ok(Some(blocks))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpermute_restores_split_halves() {
        // One head of 4 rows, 1 column: HF order [a0, a1, b0, b1] (halves a and b);
        // llama.cpp stores pairs interleaved: [a0, b0, a1, b1].
        let t = Transform::UnpermuteRope { n_heads: 1 };
        assert_eq!(t.apply(vec![0., 2., 1., 3.], &[4, 1]), vec![0., 1., 2., 3.]);
    }

    #[test]
    fn slice_then_transpose_extracts_a_conv1d_block() {
        // [in=2, out=3*2] fused QKV; take K = columns 2..4 then transpose to [out, in].
        let data: Vec<f32> = (0..12).map(|x| x as f32).collect();
        let s = Transform::Slice {
            axis: 1,
            start: 2,
            len: 2,
        };
        let sliced = s.apply(data, &[2, 6]);
        assert_eq!(sliced, vec![2., 3., 8., 9.]);
        assert_eq!(
            Transform::Transpose.apply(sliced, &[2, 2]),
            vec![2., 8., 3., 9.]
        );
    }
}
