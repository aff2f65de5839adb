//! Unpredictable names for what tests create side by side.

/// 64 unpredictable bits: RandomState is seeded from the operating system.
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish()
}
