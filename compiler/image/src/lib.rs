//! # taalasc-image: the chip image
//!
//! The chip image is the compiler's quantized IR: the IR graph plus every
//! weight in its on-chip form, what the ROMs and constant registers of a
//! chip hold. Backends read it; nothing downstream sees float weights.
//!
//! - [`image`]: the image in memory and its metadata. [`ChipImage`] holds
//!   every value (the reference executor runs it); [`ImageInfo`] holds the
//!   graph and each weight's form ([`ParamInfo`], [`MatrixInfo`]) without
//!   values, which is all the hardware plan and the file layout need. Both
//!   kinds of image, and [`LazyImage`], are an [`ImageSource`].
//! - [`disk`]: the on-disk form, a folder of [`GRAPH_FILE`] and
//!   [`WEIGHTS_FILE`]. [`ChipImage::to_files`] / [`ChipImage::read`] move a
//!   whole image; [`ImageWriter`] writes one weight (or slice of rows) at a
//!   time and [`LazyImage`] reads matrices back a slice of rows at a time,
//!   so a build never holds a whole model. The bytes are the same either way.
//! - [`legality`]: [`verify()`], the one verifier of an image's legality
//!   for the integer datapath (RFC 0002). It also returns the datapath type
//!   ([`Dtype`]: `R32`, `W48`, ...) of every node's value ([`Types`]), which
//!   the reference and the hardware plan take instead of inferring them
//!   again.
//! - [`ImageError`]: every error of the above, naming the file, node or
//!   weight.

#![warn(missing_docs)]

mod check;
pub mod disk;
mod error;
pub mod image;
pub mod legality;

pub use check::{MAX_CONTEXT, MAX_DIM};
pub use disk::{ImageWriter, LazyImage, GRAPH_FILE, WEIGHTS_FILE};
pub use error::ImageError;
pub use image::{rows_of, ChipImage, ImageInfo, ImageSource, MatrixInfo, Param, ParamInfo};
pub use legality::{verify, Dtype, Types};
