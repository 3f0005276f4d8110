//! Small helpers every layer may use: the allocator's setting, a seeded random stream, digests
//! and file fingerprints. Imports nothing of the crate.

pub mod alloc;
pub mod digest;
pub mod paths;
pub mod rng;
