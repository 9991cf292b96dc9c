//! The widest SIMD instruction set the references may use.
//!
//! Both references (float and integer) choose their kernels at run time from
//! what the CPU has; `taalasc --simd LEVEL` caps that choice, so that the
//! kernels of a smaller machine can be run and timed on a bigger one. Every
//! level computes the same bits; only the speed differs. It lives here, in
//! the crate both references build on, so that one flag reaches both.

use std::sync::OnceLock;

/// An instruction-set level, narrowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SimdLevel {
    /// Plain Rust (what the compiler makes of it for the build target).
    Portable,
    /// x86-64 AVX2 (with FMA and F16C).
    Avx2,
    /// x86-64 AVX-512 (the integer reference's kernels also need VNNI).
    Avx512,
}

impl std::str::FromStr for SimdLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "portable" => Ok(SimdLevel::Portable),
            "avx2" => Ok(SimdLevel::Avx2),
            "avx512" => Ok(SimdLevel::Avx512),
            _ => Err(format!(
                "`{s}` is not a SIMD level: expected portable, avx2 or avx512"
            )),
        }
    }
}

static CAP: OnceLock<SimdLevel> = OnceLock::new();

/// Caps the level for the rest of the process. Only the first call counts
/// (the driver makes it once, before any reference runs); returns whether
/// this call set the cap.
pub fn set_simd_cap(level: SimdLevel) -> bool {
    CAP.set(level).is_ok()
}

/// The widest level the kernels may use: the cap, or [`SimdLevel::Avx512`]
/// (no cap) when none was set.
pub fn simd_cap() -> SimdLevel {
    *CAP.get().unwrap_or(&SimdLevel::Avx512)
}
