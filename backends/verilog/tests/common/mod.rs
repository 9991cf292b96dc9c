//! Shared by the unit tests: the fixed-seed random source.
#![allow(dead_code)] // each test binary uses a different subset

/// The tests' one source of randomness: xorshift64 with fixed seeds (every
/// run is the same test).
pub use taalasc_testrng::XorShift64 as Rng;
