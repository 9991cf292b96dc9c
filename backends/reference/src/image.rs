//! The chip image: what the ROMs and constant registers of a chip hold.

use taalasc_ir::{Model, WeightId};
use taalasc_quant::QTensor;

/// One weight of the IR, in its on-chip form.
#[derive(Clone, Debug)]
pub enum Param {
    /// A quantized matrix: linear weights, embedding and position tables.
    Matrix(QTensor),
    /// Norm gains and LayerNorm biases, Q15.16 (`R32` fraction bits).
    Fixed16(Vec<i32>),
    /// Linear biases in `W48`.
    Wide(Vec<i64>),
}

/// A quantized model ready for the integer datapath.
#[derive(Clone, Debug)]
pub struct ChipImage {
    pub model: Model,
    /// Indexed by [`WeightId`].
    pub params: Vec<Param>,
    /// Positions the chip holds in its KV cache (and RoPE table).
    pub context: usize,
}

impl ChipImage {
    pub fn param(&self, id: WeightId) -> &Param {
        &self.params[id.0 as usize]
    }
}

/// Errors reading or writing a chip image; each names the file and, where
/// there is one, the tensor.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: String, message: String },
}

/// A stored tensor: shape and bytes.
type Stored<'a> = (Vec<usize>, &'a [u8]);

const IMAGE_FORMAT: &str = "taalasc-chip-image-1";

/// Files of a chip image folder.
pub const GRAPH_FILE: &str = "graph.json";
pub const WEIGHTS_FILE: &str = "weights.safetensors";

fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> ImageError + '_ {
    move |source| ImageError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl ChipImage {
    /// Serializes the image into `(graph.json, weights.safetensors)` bytes.
    /// Deterministic: the same image always gives the same bytes.
    pub fn to_files(&self) -> (String, Vec<u8>) {
        use serde_json::json;
        let mut header = serde_json::Map::new();
        let mut data: Vec<u8> = Vec::new();
        let mut put = |name: String, dtype: &str, shape: Vec<usize>, bytes: Vec<u8>| {
            let start = data.len();
            data.extend_from_slice(&bytes);
            header.insert(
                name,
                json!({"dtype": dtype, "shape": shape, "data_offsets": [start, data.len()]}),
            );
        };
        let mut formats = serde_json::Map::new();
        for (info, p) in self.model.weights.iter().zip(&self.params) {
            let n = &info.name;
            match p {
                Param::Matrix(q) => {
                    let groups = q.scales.len() / q.rows.max(1);
                    formats.insert(n.clone(), json!(q.format.name()));
                    put(
                        format!("{n}.codes"),
                        "I8",
                        vec![q.rows, q.cols],
                        q.codes.iter().map(|&c| c as u8).collect(),
                    );
                    put(
                        format!("{n}.scales"),
                        "U16",
                        vec![q.rows, groups],
                        q.scales.iter().flat_map(|s| s.0.to_le_bytes()).collect(),
                    );
                    if !q.offsets.is_empty() {
                        put(
                            format!("{n}.offsets"),
                            "U16",
                            vec![q.rows, groups],
                            q.offsets.iter().flat_map(|s| s.0.to_le_bytes()).collect(),
                        );
                    }
                    // Code widths per column group or per row, when they
                    // differ (`format` names the widest).
                    for (what, list) in [
                        ("group_bits", &q.widths.groups),
                        ("row_bits", &q.widths.rows),
                    ] {
                        if !list.is_empty() {
                            put(format!("{n}.{what}"), "U8", vec![list.len()], list.clone());
                        }
                    }
                }
                Param::Fixed16(v) => put(
                    format!("{n}.fixed16"),
                    "I32",
                    vec![v.len()],
                    v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                ),
                Param::Wide(v) => put(
                    format!("{n}.w48"),
                    "I64",
                    vec![v.len()],
                    v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                ),
            }
        }
        header.insert(
            "__metadata__".into(),
            json!({"format": IMAGE_FORMAT, "context": self.context.to_string(), "weight_formats": serde_json::to_string(&formats).expect("json")}),
        );
        let h = serde_json::to_vec(&header).expect("json");
        let pad = (8 - h.len() % 8) % 8;
        let mut out = ((h.len() + pad) as u64).to_le_bytes().to_vec();
        out.extend_from_slice(&h);
        out.extend(std::iter::repeat_n(b' ', pad));
        out.extend_from_slice(&data);
        (self.model.to_json(), out)
    }

    /// Reads an image folder written by `taalasc build`.
    pub fn read(dir: &std::path::Path) -> Result<ChipImage, ImageError> {
        let gpath = dir.join(GRAPH_FILE);
        let text = std::fs::read_to_string(&gpath).map_err(io_err(&gpath))?;
        let model = taalasc_ir::Model::from_json(&text).map_err(|message| ImageError::Format {
            path: gpath.display().to_string(),
            message,
        })?;
        let wpath = dir.join(WEIGHTS_FILE);
        let bytes = std::fs::read(&wpath).map_err(io_err(&wpath))?;
        let bad = |message: String| ImageError::Format {
            path: wpath.display().to_string(),
            message,
        };
        if bytes.len() < 8 {
            return Err(bad("truncated: no header length".into()));
        }
        let hlen = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
        let data_start = 8usize
            .checked_add(hlen)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| bad("truncated header".into()))?;
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..data_start])
            .map_err(|e| bad(format!("header: {e}")))?;
        let data = &bytes[data_start..];
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
        let formats: serde_json::Value =
            serde_json::from_str(meta["weight_formats"].as_str().unwrap_or("{}"))
                .map_err(|e| bad(format!("weight_formats: {e}")))?;
        let tensor = |name: &str,
                      dtype: &str,
                      elem: usize|
         -> Result<Option<Stored<'_>>, ImageError> {
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
                .map(|a| {
                    a.iter()
                        .filter_map(|d| d.as_u64().map(|d| d as usize))
                        .collect()
                })
                .unwrap_or_default();
            let o = &t["data_offsets"];
            let (s, e) = (
                o[0].as_u64().unwrap_or(u64::MAX) as usize,
                o[1].as_u64().unwrap_or(0) as usize,
            );
            if s > e || e > data.len() || e - s != shape.iter().product::<usize>() * elem {
                return Err(bad(format!("tensor `{name}`: data_offsets [{s}, {e}] do not fit its shape {shape:?} or the file")));
            }
            Ok(Some((shape, &data[s..e])))
        };
        let mut params = Vec::with_capacity(model.weights.len());
        for info in &model.weights {
            let n = &info.name;
            let p = if let Some((shape, b)) = tensor(&format!("{n}.codes"), "I8", 1)? {
                let fmt_name = formats[n]
                    .as_str()
                    .ok_or_else(|| bad(format!("no format recorded for `{n}`")))?;
                let format: taalasc_quant::WeightFormat =
                    fmt_name.parse().map_err(|e| bad(format!("`{n}`: {e}")))?;
                let u16s = |b: &[u8]| {
                    b.chunks_exact(2)
                        .map(|c| taalasc_numerics::Sf16(u16::from_le_bytes([c[0], c[1]])))
                        .collect::<Vec<_>>()
                };
                let scales = tensor(&format!("{n}.scales"), "U16", 2)?
                    .ok_or_else(|| bad(format!("`{n}` has no scales")))?
                    .1;
                let offsets = tensor(&format!("{n}.offsets"), "U16", 2)?
                    .map(|t| u16s(t.1))
                    .unwrap_or_default();
                let list = |what: &str| {
                    tensor(&format!("{n}.{what}"), "U8", 1).map(|t| t.map(|t| t.1.to_vec()))
                };
                let widths = taalasc_quant::Widths {
                    groups: list("group_bits")?.unwrap_or_default(),
                    rows: list("row_bits")?.unwrap_or_default(),
                };
                if shape.len() != 2 {
                    return Err(bad(format!("`{n}.codes` must be 2-D")));
                }
                let q = QTensor {
                    format,
                    rows: shape[0],
                    cols: shape[1],
                    codes: b.iter().map(|&c| c as i8).collect(),
                    scales: u16s(scales),
                    offsets,
                    widths,
                };
                // Codes in range, lengths, scales finite and on their grid.
                q.validate().map_err(|e| bad(format!("`{n}`: {e}")))?;
                Param::Matrix(q)
            } else if let Some((_, b)) = tensor(&format!("{n}.fixed16"), "I32", 4)? {
                Param::Fixed16(
                    b.chunks_exact(4)
                        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                )
            } else if let Some((_, b)) = tensor(&format!("{n}.w48"), "I64", 8)? {
                Param::Wide(
                    b.chunks_exact(8)
                        .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                        .collect(),
                )
            } else {
                return Err(bad(format!("no tensor for weight `{n}`")));
            };
            params.push(p);
        }
        Ok(ChipImage {
            model,
            params,
            context,
        })
    }
}
