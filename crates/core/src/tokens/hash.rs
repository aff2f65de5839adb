//! SHA-256 of secret values: the only form in which tokens, codes and client secrets are stored,
//! and the constant-time check of a presented value against it.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// SHA-256 of a token, code or client secret, as stored.
pub type Hash = [u8; 32];

/// SHA-256 of a secret value: the only form in which tokens, codes and client secrets are stored.
pub fn secret_hash(value: &str) -> Hash {
    Sha256::digest(value.as_bytes()).into()
}

/// Constant-time comparison of a presented secret's hash with a stored hash.
pub(crate) fn hash_matches(presented: &str, stored: &Hash) -> bool {
    secret_hash(presented).ct_eq(stored).into()
}
