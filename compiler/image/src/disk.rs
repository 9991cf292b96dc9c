//! The on-disk form of a chip image: a folder holding [`GRAPH_FILE`] (the
//! IR graph, [`taalasc_ir::Model::to_json`]) and [`WEIGHTS_FILE`], a
//! safetensors file.
//!
//! `weights.safetensors` holds, per weight in [`WeightId`] order: for a
//! matrix `<name>.codes` (`I8`, `[rows, cols]`), `<name>.scales` (`U16`
//! `SF16` bits, `[rows, groups]`), `<name>.offsets` (asymmetric formats),
//! and `<name>.group_bits` / `<name>.row_bits` (`U8`, when code widths
//! differ); `<name>.fixed16` (`I32`) for Q15.16 vectors; `<name>.w48`
//! (`I64`) for `W48` vectors. The header's `__metadata__` names the format
//! (`taalasc-chip-image-1`), the context and every matrix's weight format.
//! The layout is a function of [`ImageInfo`] alone, so [`ChipImage::to_files`]
//! and a streamed [`ImageWriter`] give the same bytes.
//!
//! A folder may come from elsewhere, so [`LazyImage::open`] (and with it
//! [`ChipImage::read`]) trusts nothing in it: `graph.json` must carry the
//! format tag [`taalasc_ir::GRAPH_FORMAT`], every size in it is bounded
//! ([`crate::MAX_DIM`], [`crate::MAX_CONTEXT`]) before anything is built
//! from it, every hyperparameter must agree with the nodes, and config-like
//! values (`eps`, RoPE `theta` and scaling) must be in range; every tensor
//! of `weights.safetensors` must have exactly the dtype and shape the graph
//! gives its weight, and no other tensor may be present. Each error names
//! the file and the field or tensor.

use crate::check;
use crate::error::{bad_rows, io_err, not_a, ImageError};
use crate::image::{ChipImage, ImageInfo, ImageSource, MatrixInfo, Param, ParamInfo};
use std::borrow::Cow;
use std::ops::Range;
use std::path::{Path, PathBuf};
use taalasc_ir::{Model, WeightId};
use taalasc_numerics::Sf16;
use taalasc_quant::{CodeWidths, QTensor, WeightFormat};

const IMAGE_FORMAT: &str = "taalasc-chip-image-1";

/// The IR graph of a chip image folder ([`Model::to_json`]).
pub const GRAPH_FILE: &str = "graph.json";
/// The weights of a chip image folder (see the module documentation).
pub const WEIGHTS_FILE: &str = "weights.safetensors";

/// A stored tensor's shape and byte range (relative to the data start).
type Stored = (Vec<usize>, Range<u64>);

/// Byte ranges, relative to the start of the data, of one weight's stored
/// tensors in `weights.safetensors`.
#[derive(Clone, Debug, Default)]
struct Spans {
    /// Codes (`I8`), or the Q15.16 (`I32`) or `W48` (`I64`) values.
    values: Range<u64>,
    scales: Range<u64>,
    offsets: Option<Range<u64>>,
    group_bits: Option<Range<u64>>,
    row_bits: Option<Range<u64>>,
}

/// Where everything lies in `weights.safetensors`: a function of the
/// image's metadata alone, so a streamed write can place each weight as it
/// is made and still give the bytes [`ChipImage::to_files`] gives.
struct Layout {
    /// Everything before the data: header length, JSON header, padding.
    head: Vec<u8>,
    spans: Vec<Spans>,
    data_len: u64,
}

impl ImageInfo {
    fn layout(&self) -> Layout {
        use serde_json::json;
        let mut header = serde_json::Map::new();
        let mut len = 0u64;
        let mut put = |name: String, dtype: &str, shape: Vec<usize>, elem: u64| {
            let start = len;
            len += shape.iter().product::<usize>() as u64 * elem;
            header.insert(
                name,
                json!({"dtype": dtype, "shape": shape, "data_offsets": [start, len]}),
            );
            start..len
        };
        let mut formats = serde_json::Map::new();
        let mut spans = Vec::with_capacity(self.params.len());
        for (info, p) in self.model.weights.iter().zip(&self.params) {
            let n = &info.name;
            spans.push(match p {
                ParamInfo::Matrix(m) => {
                    formats.insert(n.clone(), json!(m.format.name()));
                    let values = put(format!("{n}.codes"), "I8", vec![m.rows, m.cols], 1);
                    let scales = put(format!("{n}.scales"), "U16", vec![m.rows, m.groups], 2);
                    let offsets = m
                        .offsets
                        .then(|| put(format!("{n}.offsets"), "U16", vec![m.rows, m.groups], 2));
                    // Code widths per column group or per row, when they
                    // differ (`format` names the widest).
                    let mut list = |what: &str, l: &Vec<u8>| {
                        (!l.is_empty()).then(|| put(format!("{n}.{what}"), "U8", vec![l.len()], 1))
                    };
                    let group_bits = list("group_bits", &m.widths.groups);
                    let row_bits = list("row_bits", &m.widths.rows);
                    Spans {
                        values,
                        scales,
                        offsets,
                        group_bits,
                        row_bits,
                    }
                }
                ParamInfo::Fixed16(k) => Spans {
                    values: put(format!("{n}.fixed16"), "I32", vec![*k], 4),
                    ..Spans::default()
                },
                ParamInfo::Wide(k) => Spans {
                    values: put(format!("{n}.w48"), "I64", vec![*k], 8),
                    ..Spans::default()
                },
            });
        }
        header.insert(
            "__metadata__".into(),
            json!({"format": IMAGE_FORMAT, "context": self.context.to_string(), "weight_formats": serde_json::to_string(&formats).expect("json")}),
        );
        let h = serde_json::to_vec(&header).expect("json");
        let pad = (8 - h.len() % 8) % 8;
        let mut head = ((h.len() + pad) as u64).to_le_bytes().to_vec();
        head.extend_from_slice(&h);
        head.extend(std::iter::repeat_n(b' ', pad));
        Layout {
            head,
            spans,
            data_len: len,
        }
    }
}

fn code_bytes(c: &[i8]) -> Vec<u8> {
    c.iter().map(|&c| c as u8).collect()
}

fn sf16_bytes(v: &[Sf16]) -> Vec<u8> {
    v.iter().flat_map(|s| s.0.to_le_bytes()).collect()
}

fn i32_bytes(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn i64_bytes(v: &[i64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn sf16s(b: &[u8]) -> Vec<Sf16> {
    b.chunks_exact(2)
        .map(|c| Sf16(u16::from_le_bytes([c[0], c[1]])))
        .collect()
}

impl ChipImage {
    /// Serializes the image into `(graph.json, weights.safetensors)` bytes.
    /// Deterministic: the same image always gives the same bytes, and the
    /// same bytes as [`ImageWriter`] writes for it.
    pub fn to_files(&self) -> (String, Vec<u8>) {
        let layout = self.info().layout();
        let mut out = layout.head;
        out.reserve(layout.data_len as usize);
        for p in &self.params {
            match p {
                Param::Matrix(q) => {
                    out.extend(code_bytes(&q.codes));
                    out.extend(sf16_bytes(&q.scales));
                    out.extend(sf16_bytes(&q.offsets));
                    out.extend_from_slice(&q.widths.groups);
                    out.extend_from_slice(&q.widths.rows);
                }
                Param::Fixed16(v) => out.extend(i32_bytes(v)),
                Param::Wide(v) => out.extend(i64_bytes(v)),
            }
        }
        (self.model.to_json(), out)
    }

    /// Reads an image folder written by `taalasc build`, every value into
    /// memory (checked: codes in range, scales finite and on their grid).
    pub fn read(dir: &Path) -> Result<ChipImage, ImageError> {
        let lazy = LazyImage::open(dir)?;
        let mut params = Vec::with_capacity(lazy.info.params.len());
        for (i, p) in lazy.info.params.iter().enumerate() {
            let id = WeightId(i as u32);
            params.push(match p {
                ParamInfo::Matrix(m) => {
                    Param::Matrix(lazy.matrix_rows(id, 0..m.rows)?.into_owned())
                }
                ParamInfo::Fixed16(_) => Param::Fixed16(lazy.fixed16_values(id)?.into_owned()),
                ParamInfo::Wide(_) => Param::Wide(lazy.wide_values(id)?.into_owned()),
            });
        }
        Ok(ChipImage {
            model: lazy.info.model,
            params,
            context: lazy.info.context,
        })
    }
}

/// A chip image on disk: metadata in memory, weight values read from
/// `weights.safetensors` when asked for, a slice of rows at a time.
pub struct LazyImage {
    info: ImageInfo,
    path: PathBuf,
    /// The folder's `graph.json`.
    graph: PathBuf,
    file: std::fs::File,
    /// File offset of the data.
    data_start: u64,
    spans: Vec<Spans>,
    /// Check every matrix slice read (a file this process did not write).
    validate: bool,
}

impl LazyImage {
    /// Opens an image folder written by `taalasc build`: reads `graph.json`
    /// and the header of `weights.safetensors` (and the small width lists),
    /// no weight values.
    pub fn open(dir: &Path) -> Result<LazyImage, ImageError> {
        use std::os::unix::fs::FileExt;
        let gpath = dir.join(GRAPH_FILE);
        let text = std::fs::read_to_string(&gpath).map_err(io_err(&gpath))?;
        let gbad = |message: String| ImageError::Format {
            path: gpath.display().to_string(),
            message,
        };
        let doc: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| gbad(e.to_string()))?;
        check::check_graph_doc(&doc).map_err(gbad)?;
        drop(doc);
        let model = Model::from_json(&text).map_err(|e| gbad(e.to_string()))?;
        check::check_hparams(&model).map_err(gbad)?;
        let wpath = dir.join(WEIGHTS_FILE);
        let file = std::fs::File::open(&wpath).map_err(io_err(&wpath))?;
        let size = file.metadata().map_err(io_err(&wpath))?.len();
        let bad = |message: String| ImageError::Format {
            path: wpath.display().to_string(),
            message,
        };
        if size < 8 {
            return Err(bad("truncated: no header length".into()));
        }
        let mut len8 = [0u8; 8];
        file.read_exact_at(&mut len8, 0).map_err(io_err(&wpath))?;
        let hlen = u64::from_le_bytes(len8);
        let data_start = 8u64
            .checked_add(hlen)
            .filter(|&e| e <= size)
            .ok_or_else(|| bad("truncated header".into()))?;
        let mut hbytes = vec![0u8; hlen as usize];
        file.read_exact_at(&mut hbytes, 8).map_err(io_err(&wpath))?;
        let header: serde_json::Value =
            serde_json::from_slice(&hbytes).map_err(|e| bad(format!("header: {e}")))?;
        let data_len = size - data_start;
        let meta = &header["__metadata__"];
        if meta["format"] != IMAGE_FORMAT {
            return Err(bad(format!(
                "not a {IMAGE_FORMAT} file (format {})",
                meta["format"]
            )));
        }
        let context: usize = meta["context"]
            .as_str()
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| bad("metadata has no context".into()))?;
        check::check_context(&model, context).map_err(&bad)?;
        let formats: serde_json::Value =
            serde_json::from_str(meta["weight_formats"].as_str().unwrap_or("{}"))
                .map_err(|e| bad(format!("weight_formats: {e}")))?;
        // A stored tensor's shape and data range, checked against each other
        // and the file.
        let tensor = |name: &str, dtype: &str, elem: u64| -> Result<Option<Stored>, ImageError> {
            let Some(t) = header.get(name) else {
                return Ok(None);
            };
            if t["dtype"] != dtype {
                return Err(bad(format!(
                    "tensor `{name}` has dtype {}, expected {dtype}",
                    t["dtype"]
                )));
            }
            let shape: Vec<usize> = t["shape"]
                .as_array()
                .and_then(|a| {
                    a.iter()
                        .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
                        .collect::<Option<Vec<usize>>>()
                })
                .ok_or_else(|| {
                    bad(format!(
                        "tensor `{name}`: shape {} is not a list of sizes",
                        t["shape"]
                    ))
                })?;
            let o = &t["data_offsets"];
            let (s, e) = (
                o[0].as_u64().unwrap_or(u64::MAX),
                o[1].as_u64().unwrap_or(0),
            );
            let want = shape.iter().try_fold(elem, |a, &d| a.checked_mul(d as u64));
            if s > e || e > data_len || Some(e - s) != want {
                return Err(bad(format!("tensor `{name}`: data_offsets [{s}, {e}] do not fit its shape {shape:?} or the file")));
            }
            Ok(Some((shape, s..e)))
        };
        let read_list = |r: &Range<u64>| -> Result<Vec<u8>, ImageError> {
            let mut b = vec![0u8; (r.end - r.start) as usize];
            file.read_exact_at(&mut b, data_start + r.start)
                .map_err(io_err(&wpath))?;
            Ok(b)
        };
        let mut params = Vec::with_capacity(model.weights.len());
        let mut spans = Vec::with_capacity(model.weights.len());
        for info in &model.weights {
            let n = &info.name;
            if let Some((shape, values)) = tensor(&format!("{n}.codes"), "I8", 1)? {
                let fmt_name = formats[n]
                    .as_str()
                    .ok_or_else(|| bad(format!("no format recorded for `{n}`")))?;
                let format: WeightFormat =
                    fmt_name.parse().map_err(|e| bad(format!("`{n}`: {e}")))?;
                let (sshape, scales) = tensor(&format!("{n}.scales"), "U16", 2)?
                    .ok_or_else(|| bad(format!("`{n}` has no scales")))?;
                let offsets = tensor(&format!("{n}.offsets"), "U16", 2)?;
                let list = |what: &str| -> Result<Option<Range<u64>>, ImageError> {
                    let t = tensor(&format!("{n}.{what}"), "U8", 1)?;
                    match t {
                        Some((s, _)) if s.len() != 1 => Err(bad(format!(
                            "tensor `{n}.{what}` has shape {s:?}, expected a list"
                        ))),
                        t => Ok(t.map(|t| t.1)),
                    }
                };
                let group_bits = list("group_bits")?;
                let row_bits = list("row_bits")?;
                if shape.len() != 2 {
                    return Err(bad(format!("`{n}.codes` must be 2-D")));
                }
                let (rows, cols) = (shape[0], shape[1]);
                let groups = sshape
                    .iter()
                    .product::<usize>()
                    .checked_div(rows)
                    .unwrap_or(0);
                let want = [rows, format.groups_per_row(cols)];
                if rows > 0 && sshape != want {
                    return Err(bad(format!(
                        "tensor `{n}.scales` has shape {sshape:?}, but format {fmt_name} of `{n}.codes` {shape:?} needs {want:?}"
                    )));
                }
                if let Some((oshape, _)) = offsets.as_ref().filter(|o| o.0 != sshape) {
                    return Err(bad(format!(
                        "tensor `{n}.offsets` has shape {oshape:?}, but `{n}.scales` has {sshape:?}"
                    )));
                }
                let widths = CodeWidths {
                    groups: group_bits
                        .as_ref()
                        .map(&read_list)
                        .transpose()?
                        .unwrap_or_default(),
                    rows: row_bits
                        .as_ref()
                        .map(&read_list)
                        .transpose()?
                        .unwrap_or_default(),
                };
                params.push(ParamInfo::Matrix(MatrixInfo {
                    format,
                    rows,
                    cols,
                    widths,
                    groups,
                    offsets: offsets.is_some(),
                }));
                spans.push(Spans {
                    values,
                    scales,
                    offsets: offsets.map(|o| o.1),
                    group_bits,
                    row_bits,
                });
            } else if let Some((shape, values)) = tensor(&format!("{n}.fixed16"), "I32", 4)? {
                if shape.len() != 1 {
                    return Err(bad(format!(
                        "tensor `{n}.fixed16` has shape {shape:?}, but graph.json gives `{n}` the shape {:?}",
                        info.shape
                    )));
                }
                params.push(ParamInfo::Fixed16(shape.iter().product()));
                spans.push(Spans {
                    values,
                    ..Spans::default()
                });
            } else if let Some((shape, values)) = tensor(&format!("{n}.w48"), "I64", 8)? {
                if shape.len() != 1 {
                    return Err(bad(format!(
                        "tensor `{n}.w48` has shape {shape:?}, but graph.json gives `{n}` the shape {:?}",
                        info.shape
                    )));
                }
                params.push(ParamInfo::Wide(shape.iter().product()));
                spans.push(Spans {
                    values,
                    ..Spans::default()
                });
            } else {
                return Err(bad(format!("no tensor for weight `{n}`")));
            }
        }
        // Every stored tensor belongs to a weight of the graph.
        let mut known = std::collections::HashSet::new();
        for info in &model.weights {
            for t in [
                "codes",
                "scales",
                "offsets",
                "group_bits",
                "row_bits",
                "fixed16",
                "w48",
            ] {
                known.insert(format!("{}.{t}", info.name));
            }
        }
        if let Some(name) = header
            .as_object()
            .into_iter()
            .flat_map(|h| h.keys())
            .find(|k| *k != "__metadata__" && !known.contains(*k))
        {
            return Err(bad(format!(
                "tensor `{name}` is not a weight of {GRAPH_FILE}"
            )));
        }
        let info = ImageInfo {
            model,
            params,
            context,
        };
        // Every stored shape against the graph, then the datapath's rules.
        check::check_params(&info).map_err(&bad)?;
        crate::legality::verify(&info).map_err(|e| gbad(e.to_string()))?;
        Ok(LazyImage {
            info,
            path: wpath,
            graph: gpath,
            file,
            data_start,
            spans,
            validate: true,
        })
    }

    /// The `weights.safetensors` file read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes `r` of the data.
    fn read(&self, r: Range<u64>) -> Result<Vec<u8>, ImageError> {
        use std::os::unix::fs::FileExt;
        let mut b = vec![0u8; (r.end - r.start) as usize];
        self.file
            .read_exact_at(&mut b, self.data_start + r.start)
            .map_err(io_err(&self.path))?;
        Ok(b)
    }

    fn format_err(&self, message: String) -> ImageError {
        ImageError::Format {
            path: self.path.display().to_string(),
            message,
        }
    }
}

impl ImageSource for LazyImage {
    fn info(&self) -> Cow<'_, ImageInfo> {
        Cow::Borrowed(&self.info)
    }

    fn graph_path(&self) -> Option<&Path> {
        Some(&self.graph)
    }

    fn matrix_rows(
        &self,
        id: WeightId,
        rows: Range<usize>,
    ) -> Result<Cow<'_, QTensor>, ImageError> {
        let Some(ParamInfo::Matrix(m)) = self.info.params.get(id.0 as usize) else {
            return Err(not_a(&self.info.model, id, "a quantized matrix"));
        };
        if rows.start > rows.end || rows.end > m.rows {
            return Err(bad_rows(&self.info.model, id, &rows, m.rows));
        }
        let sp = &self.spans[id.0 as usize];
        let at = |base: &Range<u64>, per_row: usize| {
            base.start + (rows.start * per_row) as u64..base.start + (rows.end * per_row) as u64
        };
        let codes = self.read(at(&sp.values, m.cols))?;
        let scales = sf16s(&self.read(at(&sp.scales, 2 * m.groups))?);
        let offsets = match &sp.offsets {
            Some(o) => sf16s(&self.read(at(o, 2 * m.groups))?),
            None => Vec::new(),
        };
        let q = QTensor {
            format: m.format,
            rows: rows.len(),
            cols: m.cols,
            codes: codes.into_iter().map(|c| c as i8).collect(),
            scales,
            offsets,
            widths: m.widths_of(&rows),
        };
        if self.validate {
            // Codes in range, lengths, scales finite and on their grid.
            q.validate().map_err(|e| {
                self.format_err(format!("`{}`: {e}", self.info.model.weight(id).name))
            })?;
        }
        Ok(Cow::Owned(q))
    }

    fn fixed16_values(&self, id: WeightId) -> Result<Cow<'_, [i32]>, ImageError> {
        let Some(ParamInfo::Fixed16(_)) = self.info.params.get(id.0 as usize) else {
            return Err(not_a(&self.info.model, id, "Q15.16 values"));
        };
        let b = self.read(self.spans[id.0 as usize].values.clone())?;
        Ok(Cow::Owned(
            b.chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ))
    }

    fn wide_values(&self, id: WeightId) -> Result<Cow<'_, [i64]>, ImageError> {
        let Some(ParamInfo::Wide(_)) = self.info.params.get(id.0 as usize) else {
            return Err(not_a(&self.info.model, id, "W48 values"));
        };
        let b = self.read(self.spans[id.0 as usize].values.clone())?;
        Ok(Cow::Owned(
            b.chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect(),
        ))
    }
}

/// Writes `weights.safetensors` one weight (or a slice of a matrix's rows)
/// at a time, so that a build never holds more than one weight's codes.
///
/// The layout is fixed up front from the image's metadata ([`ImageInfo`]):
/// the header goes first, then every piece is written at its own offset.
/// Each piece is checked against the metadata, and [`ImageWriter::finish`]
/// checks that every weight was written whole, so the file holds exactly
/// the bytes [`ChipImage::to_files`] gives for the same image.
pub struct ImageWriter {
    info: ImageInfo,
    path: PathBuf,
    file: std::fs::File,
    data_start: u64,
    spans: Vec<Spans>,
    /// Rows (matrices) or 1 (vectors) written, per weight.
    done: Vec<usize>,
}

impl ImageWriter {
    /// Creates (or truncates) `path` and writes the header and the width
    /// lists of `info`.
    pub fn create(path: &Path, info: ImageInfo) -> Result<ImageWriter, ImageError> {
        let layout = info.layout();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(io_err(path))?;
        let data_start = layout.head.len() as u64;
        let w = ImageWriter {
            done: vec![0; info.params.len()],
            info,
            path: path.to_path_buf(),
            file,
            data_start,
            spans: layout.spans,
        };
        w.write_at(0, &layout.head)?;
        w.file
            .set_len(data_start + layout.data_len)
            .map_err(io_err(path))?;
        for (p, sp) in w.info.params.iter().zip(&w.spans) {
            if let ParamInfo::Matrix(m) = p {
                if let Some(r) = &sp.group_bits {
                    w.write_at(w.data_start + r.start, &m.widths.groups)?;
                }
                if let Some(r) = &sp.row_bits {
                    w.write_at(w.data_start + r.start, &m.widths.rows)?;
                }
            }
        }
        Ok(w)
    }

    fn write_at(&self, offset: u64, bytes: &[u8]) -> Result<(), ImageError> {
        use std::os::unix::fs::FileExt;
        self.file
            .write_all_at(bytes, offset)
            .map_err(io_err(&self.path))
    }

    fn err(&self, id: WeightId, message: String) -> ImageError {
        ImageError::Format {
            path: self.path.display().to_string(),
            message: format!("`{}`: {message}", self.info.model.weight(id).name),
        }
    }

    /// Writes the next rows of matrix `id`: `q` holds rows `k..k + q.rows`,
    /// where `k` rows were written before.
    pub fn put_rows(&mut self, id: WeightId, q: &QTensor) -> Result<(), ImageError> {
        let i = id.0 as usize;
        let Some(ParamInfo::Matrix(m)) = self.info.params.get(i) else {
            return Err(not_a(&self.info.model, id, "a quantized matrix"));
        };
        let r0 = self.done[i];
        let rows = r0..r0 + q.rows;
        let want = MatrixInfo {
            rows: q.rows,
            widths: if rows.end <= m.rows {
                m.widths_of(&rows)
            } else {
                m.widths.clone()
            },
            groups: if q.rows == 0 { 0 } else { m.groups },
            offsets: m.offsets && q.rows > 0,
            ..m.clone()
        };
        let got = MatrixInfo::of(q);
        if rows.end > m.rows || got != want {
            return Err(self.err(
                id,
                format!(
                    "rows {}..{} given as {got:?}, but the image's layout has {m:?}",
                    rows.start, rows.end
                ),
            ));
        }
        let sp = &self.spans[i];
        let base = self.data_start;
        self.write_at(
            base + sp.values.start + (r0 * m.cols) as u64,
            &code_bytes(&q.codes),
        )?;
        let g2 = (2 * m.groups * r0) as u64;
        self.write_at(base + sp.scales.start + g2, &sf16_bytes(&q.scales))?;
        if let Some(o) = &sp.offsets {
            self.write_at(base + o.start + g2, &sf16_bytes(&q.offsets))?;
        }
        self.done[i] = rows.end;
        Ok(())
    }

    /// Writes weight `id` whole.
    pub fn put(&mut self, id: WeightId, p: &Param) -> Result<(), ImageError> {
        let i = id.0 as usize;
        let (bytes, ok) = match (p, self.info.params.get(i)) {
            (Param::Matrix(q), _) => return self.put_rows(id, q),
            (Param::Fixed16(v), Some(ParamInfo::Fixed16(k))) => (i32_bytes(v), v.len() == *k),
            (Param::Wide(v), Some(ParamInfo::Wide(k))) => (i64_bytes(v), v.len() == *k),
            _ => (Vec::new(), false),
        };
        if !ok || self.done[i] != 0 {
            return Err(self.err(
                id,
                format!(
                    "given as {:?}, but the image's layout has {:?} (written before: {})",
                    p.info(),
                    self.info.params.get(i),
                    self.done[i] != 0
                ),
            ));
        }
        self.write_at(self.data_start + self.spans[i].values.start, &bytes)?;
        self.done[i] = 1;
        Ok(())
    }

    /// Checks that every weight was written whole; the image, to read back.
    pub fn finish(self) -> Result<LazyImage, ImageError> {
        for (i, p) in self.info.params.iter().enumerate() {
            let need = match p {
                ParamInfo::Matrix(m) => m.rows,
                _ => 1,
            };
            if self.done[i] != need && !matches!(p, ParamInfo::Matrix(m) if m.rows == 0) {
                return Err(self.err(
                    WeightId(i as u32),
                    format!("{} of {need} rows written", self.done[i]),
                ));
            }
        }
        Ok(LazyImage {
            info: self.info,
            graph: self.path.with_file_name(GRAPH_FILE),
            path: self.path,
            file: self.file,
            data_start: self.data_start,
            spans: self.spans,
            validate: false,
        })
    }
}
