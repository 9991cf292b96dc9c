//! The in-memory image and its metadata: [`ChipImage`] (every value),
//! [`ImageInfo`] (the graph and every weight's form, no values) and the
//! [`ImageSource`] trait both kinds of image implement.

use crate::error::{bad_rows, not_a, ImageError};
use std::borrow::Cow;
use std::ops::Range;
use taalasc_ir::{Model, WeightId};
use taalasc_numerics::Sf16;
use taalasc_quant::{CodeWidths, QTensor, WeightFormat};

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
    /// The IR graph, weight table and hyperparameters.
    pub model: Model,
    /// Indexed by [`WeightId`].
    pub params: Vec<Param>,
    /// Positions the chip holds in its KV cache (and RoPE table).
    pub context: usize,
}

impl ChipImage {
    /// Weight `id` (panics if the image has no such weight).
    pub fn param(&self, id: WeightId) -> &Param {
        &self.params[id.0 as usize]
    }

    fn param_err(&self, id: WeightId, message: &str) -> ImageError {
        ImageError::Param {
            weight: self.model.weight(id).name.clone(),
            message: message.into(),
        }
    }

    /// The quantized matrix `id`, or an error naming the weight.
    pub fn matrix(&self, id: WeightId) -> Result<&QTensor, ImageError> {
        match self.param(id) {
            Param::Matrix(q) => Ok(q),
            _ => Err(self.param_err(id, "expected a quantized matrix")),
        }
    }

    /// The Q15.16 values of `id`, or an error naming the weight.
    pub fn fixed(&self, id: WeightId) -> Result<&[i32], ImageError> {
        match self.param(id) {
            Param::Fixed16(v) => Ok(v),
            _ => Err(self.param_err(id, "expected Q15.16 values")),
        }
    }

    /// The `W48` values of `id`, or an error naming the weight.
    pub fn wide(&self, id: WeightId) -> Result<&[i64], ImageError> {
        match self.param(id) {
            Param::Wide(v) => Ok(v),
            _ => Err(self.param_err(id, "expected W48 values")),
        }
    }
}

/// A quantized matrix's form without its values: what the hardware plan,
/// the ROM layout and the header of `weights.safetensors` need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatrixInfo {
    /// The weight format (the widest, when code widths differ).
    pub format: WeightFormat,
    /// Rows (output features, or table entries).
    pub rows: usize,
    /// Columns (input features, or table width).
    pub cols: usize,
    /// Code widths per column group or row, when they differ.
    pub widths: CodeWidths,
    /// Scales (and offsets) per row, as stored.
    pub groups: usize,
    /// Whether per-group offsets are stored (asymmetric formats).
    pub offsets: bool,
}

impl MatrixInfo {
    /// The form a `rows × cols` matrix quantized to `format` (with `widths`)
    /// takes, known before it is quantized.
    pub fn new(format: WeightFormat, rows: usize, cols: usize, widths: CodeWidths) -> MatrixInfo {
        let groups = if rows == 0 {
            0
        } else {
            format.groups_per_row(cols)
        };
        MatrixInfo {
            format,
            rows,
            cols,
            widths,
            groups,
            offsets: !format.symmetric && groups > 0,
        }
    }

    /// The form of `q`.
    pub fn of(q: &QTensor) -> MatrixInfo {
        MatrixInfo {
            format: q.format,
            rows: q.rows,
            cols: q.cols,
            widths: q.widths.clone(),
            groups: q.scales.len() / q.rows.max(1),
            offsets: !q.offsets.is_empty(),
        }
    }

    /// [`QTensor::format_name`].
    pub fn format_name(&self) -> String {
        taalasc_quant::mixed_name(&self.format, &self.widths)
    }

    /// [`QTensor::storage_bits`].
    pub fn storage_bits(&self) -> u64 {
        taalasc_quant::mixed_storage_bits(&self.format, &self.widths, self.rows, self.cols)
    }

    /// The widths of rows `rows` (column-group widths apply to every row).
    pub(crate) fn widths_of(&self, rows: &Range<usize>) -> CodeWidths {
        CodeWidths {
            groups: self.widths.groups.clone(),
            rows: if self.widths.rows.is_empty() {
                Vec::new()
            } else {
                self.widths.rows[rows.clone()].to_vec()
            },
        }
    }
}

/// A weight's on-chip form without its values (see [`Param`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParamInfo {
    /// A quantized matrix's form.
    Matrix(MatrixInfo),
    /// Number of Q15.16 values.
    Fixed16(usize),
    /// Number of `W48` values.
    Wide(usize),
}

impl Param {
    /// This weight's form, without its values.
    pub fn info(&self) -> ParamInfo {
        match self {
            Param::Matrix(q) => ParamInfo::Matrix(MatrixInfo::of(q)),
            Param::Fixed16(v) => ParamInfo::Fixed16(v.len()),
            Param::Wide(v) => ParamInfo::Wide(v.len()),
        }
    }
}

/// A chip image without its weight values: the graph, the context and the
/// form of every weight. Enough to plan the hardware and to lay out
/// `weights.safetensors`.
#[derive(Clone, Debug)]
pub struct ImageInfo {
    /// The IR graph, weight table and hyperparameters.
    pub model: Model,
    /// Indexed by [`WeightId`].
    pub params: Vec<ParamInfo>,
    /// Positions the chip holds in its KV cache (and RoPE table).
    pub context: usize,
}

impl ImageInfo {
    /// The form of weight `id` (panics if the image has no such weight).
    pub fn param(&self, id: WeightId) -> &ParamInfo {
        &self.params[id.0 as usize]
    }
}

/// Rows `rows` of `q`, as a matrix of their own (per-row widths sliced).
pub fn rows_of(q: &QTensor, rows: Range<usize>) -> QTensor {
    let g = q.scales.len() / q.rows.max(1);
    let part = |v: &[Sf16]| {
        if v.is_empty() {
            Vec::new()
        } else {
            v[rows.start * g..rows.end * g].to_vec()
        }
    };
    QTensor {
        format: q.format,
        rows: rows.len(),
        cols: q.cols,
        codes: q.codes[rows.start * q.cols..rows.end * q.cols].to_vec(),
        scales: part(&q.scales),
        offsets: part(&q.offsets),
        widths: MatrixInfo::of(q).widths_of(&rows),
    }
}

/// A chip image to read weights from: in memory ([`ChipImage`]) or on disk,
/// read a slice at a time ([`LazyImage`](crate::LazyImage)). The RTL backend reads images
/// through this, so it never needs a whole model in memory.
pub trait ImageSource {
    /// The graph, context and form of every weight.
    fn info(&self) -> Cow<'_, ImageInfo>;
    /// Rows `rows` of matrix `id`, as a matrix of their own.
    fn matrix_rows(&self, id: WeightId, rows: Range<usize>)
        -> Result<Cow<'_, QTensor>, ImageError>;
    /// The Q15.16 values of weight `id`.
    fn fixed16_values(&self, id: WeightId) -> Result<Cow<'_, [i32]>, ImageError>;
    /// The `W48` values of weight `id`.
    fn wide_values(&self, id: WeightId) -> Result<Cow<'_, [i64]>, ImageError>;
    /// The `graph.json` the image was read from, if it was read from a
    /// folder: consumers (the hardware planner) name it in their errors
    /// about the image.
    fn graph_path(&self) -> Option<&std::path::Path> {
        None
    }
}

impl ImageSource for ChipImage {
    fn info(&self) -> Cow<'_, ImageInfo> {
        Cow::Owned(ImageInfo {
            model: self.model.clone(),
            params: self.params.iter().map(Param::info).collect(),
            context: self.context,
        })
    }

    fn matrix_rows(
        &self,
        id: WeightId,
        rows: Range<usize>,
    ) -> Result<Cow<'_, QTensor>, ImageError> {
        match self.params.get(id.0 as usize) {
            Some(Param::Matrix(q)) if rows == (0..q.rows) => Ok(Cow::Borrowed(q)),
            Some(Param::Matrix(q)) if rows.start <= rows.end && rows.end <= q.rows => {
                Ok(Cow::Owned(rows_of(q, rows)))
            }
            Some(Param::Matrix(q)) => Err(bad_rows(&self.model, id, &rows, q.rows)),
            _ => Err(not_a(&self.model, id, "a quantized matrix")),
        }
    }

    fn fixed16_values(&self, id: WeightId) -> Result<Cow<'_, [i32]>, ImageError> {
        match self.params.get(id.0 as usize) {
            Some(Param::Fixed16(v)) => Ok(Cow::Borrowed(v)),
            _ => Err(not_a(&self.model, id, "Q15.16 values")),
        }
    }

    fn wide_values(&self, id: WeightId) -> Result<Cow<'_, [i64]>, ImageError> {
        match self.params.get(id.0 as usize) {
            Some(Param::Wide(v)) => Ok(Cow::Borrowed(v)),
            _ => Err(not_a(&self.model, id, "W48 values")),
        }
    }
}
