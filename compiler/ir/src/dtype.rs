//! Storage dtypes of source tensors, as they sit in a checkpoint.
//!
//! The IR never computes in these types; they only say how many bytes a weight
//! occupies in its file and how a frontend must decode it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// How a tensor is stored in its source file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DType {
    /// IEEE single, 4 bytes per element.
    F32,
    /// IEEE half, 2 bytes per element.
    F16,
    /// bfloat16 (the top half of an f32), 2 bytes per element.
    BF16,
    /// 32-element blocks of 34 bytes: f16 scale `d`, `i8` codes; `x = d * q`.
    /// This and the variants after it are llama.cpp's GGUF block formats.
    Q8_0,
    /// 32-element blocks of 18 bytes: f16 scale `d`, 4-bit codes; `x = d * (q - 8)`.
    Q4_0,
    /// 32-element blocks of 20 bytes: f16 scale `d` and min `m`, 4-bit codes; `x = d * q + m`.
    Q4_1,
    /// 32-element blocks of 22 bytes: f16 scale, 5-bit codes; `x = d * (q - 16)`.
    Q5_0,
    /// 32-element blocks of 24 bytes: f16 scale and min, 5-bit codes; `x = d * q + m`.
    Q5_1,
    /// 256-element super-blocks of 84 bytes, 2-bit codes, 4-bit sub-block scales and mins.
    Q2K,
    /// 256-element super-blocks of 110 bytes, 3-bit codes, 6-bit sub-block scales.
    Q3K,
    /// 256-element super-blocks of 144 bytes, 4-bit codes, 6-bit sub-block scales and mins.
    Q4K,
    /// 256-element super-blocks of 176 bytes, 5-bit codes, 6-bit sub-block scales and mins.
    Q5K,
    /// 256-element super-blocks of 210 bytes, 6-bit codes, 8-bit sub-block scales.
    Q6K,
}

/// Scale and min `j` (0..8) of a Q4_K / Q5_K block: 6 bits each, packed in
/// the block's 12 scale bytes `s` (GGUF's layout). The one definition both
/// the dequantizer and the float reference's kernels read.
pub fn k4_scale_min(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

impl DType {
    /// Elements per block and bytes per block.
    pub const fn block(self) -> (usize, usize) {
        match self {
            DType::F32 => (1, 4),
            DType::F16 | DType::BF16 => (1, 2),
            DType::Q8_0 => (32, 34),
            DType::Q4_0 => (32, 18),
            DType::Q4_1 => (32, 20),
            DType::Q5_0 => (32, 22),
            DType::Q5_1 => (32, 24),
            DType::Q2K => (256, 84),
            DType::Q3K => (256, 110),
            DType::Q4K => (256, 144),
            DType::Q5K => (256, 176),
            DType::Q6K => (256, 210),
        }
    }

    /// Bytes needed for `n` elements, or `None` when `n` is not a whole number of
    /// blocks or the size overflows.
    pub fn bytes_for(self, n: u64) -> Option<u64> {
        let (elems, bytes) = self.block();
        let elems = elems as u64;
        if !n.is_multiple_of(elems) {
            return None;
        }
        (n / elems).checked_mul(bytes as u64)
    }

    /// Storage bits per weight, block scales included.
    pub fn bits_per_weight(self) -> f64 {
        let (elems, bytes) = self.block();
        bytes as f64 * 8.0 / elems as f64
    }

    /// The lowercase llama.cpp-style name (`f16`, `q4_1`, `q6_k`), as serialized
    /// and printed.
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::Q8_0 => "q8_0",
            DType::Q4_0 => "q4_0",
            DType::Q4_1 => "q4_1",
            DType::Q5_0 => "q5_0",
            DType::Q5_1 => "q5_1",
            DType::Q2K => "q2_k",
            DType::Q3K => "q3_k",
            DType::Q4K => "q4_k",
            DType::Q5K => "q5_k",
            DType::Q6K => "q6_k",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sizes_match_llama_cpp_layouts() {
        // q4_1: f16 scale + f16 min + 16 bytes of nibbles = 20 bytes per 32 weights.
        assert_eq!(DType::Q4_1.bytes_for(64), Some(40));
        assert_eq!(DType::Q4_1.bytes_for(33), None);
        assert_eq!(DType::Q8_0.bits_per_weight(), 8.5);
        assert_eq!(DType::Q6K.bits_per_weight(), 6.5625);
        assert_eq!(DType::BF16.bytes_for(3), Some(6));
    }
}
