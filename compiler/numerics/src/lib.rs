//! # taalasc-numerics: the datapath spec in code
//!
//! Every width, rounding rule, saturation and lookup table of the chip is
//! defined here and nowhere else (RFC 0002). The bit-exact reference executes
//! these functions; the Verilog emitter reads the same constants and tables.
//!
//! Floats appear only in table and constant generation (build time).

pub mod sf16;

pub use sf16::Sf16;

/// Round-half-up arithmetic right shift by `s`; `s <= 0` shifts left exactly.
#[inline]
pub fn rshr(x: i64, s: i32) -> i64 {
    if s > 0 {
        (x + (1i64 << (s - 1))) >> s
    } else {
        x << (-s)
    }
}

/// [`rshr`] on i128.
#[inline]
pub fn rshr128(x: i128, s: i32) -> i128 {
    if s > 0 {
        (x + (1i128 << (s - 1))) >> s
    } else {
        x << (-s)
    }
}

/// Saturates to a `bits`-wide signed range.
#[inline]
pub fn sat(x: i128, bits: u32) -> i64 {
    let hi = (1i128 << (bits - 1)) - 1;
    let lo = -(1i128 << (bits - 1));
    x.clamp(lo, hi) as i64
}
