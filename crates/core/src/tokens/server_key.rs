//! The server's own key, kept in memory only: signs CSRF tokens, sessions and the tokens that
//! carry what they grant.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::time::Random;

type HmacSha256 = Hmac<Sha256>;

/// The server's own 256-bit key: signs CSRF tokens and browser sessions, and keys the token
/// response `signature` where no client secret is at hand. Never stored in the database.
#[derive(Clone)]
pub struct ServerKey(Zeroizing<[u8; 32]>);

impl ServerKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub fn generate(rng: &dyn Random) -> Self {
        let mut bytes = [0u8; 32];
        rng.fill(&mut bytes);
        Self::from_bytes(bytes)
    }

    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(*self.0))
    }

    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes = Zeroizing::new(hex::decode(text.trim()).ok()?);
        let array: [u8; 32] = bytes.as_slice().try_into().ok()?;
        Some(Self::from_bytes(array))
    }

    /// HMAC-SHA256 of `message` under this key, separated by `purpose` so that a value made for
    /// one use is never valid for another.
    #[allow(
        clippy::expect_used,
        reason = "HMAC takes a key of any length: `new_from_slice` has no error to return for it"
    )]
    pub fn mac(&self, purpose: &str, message: &[u8]) -> [u8; 32] {
        let mut mac =
            HmacSha256::new_from_slice(self.0.as_slice()).expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    pub(crate) fn verify_mac(&self, purpose: &str, message: &[u8], tag: &[u8]) -> bool {
        self.mac(purpose, message).ct_eq(tag).into()
    }
}

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKey([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::SystemRandom;

    #[test]
    fn server_key_macs_are_separated_by_purpose() {
        let key = ServerKey::generate(&SystemRandom);
        let tag = key.mac("csrf", b"abc");
        assert!(key.verify_mac("csrf", b"abc", &tag));
        assert!(!key.verify_mac("session", b"abc", &tag));
        assert_eq!(
            ServerKey::from_hex(&key.to_hex())
                .unwrap()
                .mac("csrf", b"abc"),
            tag
        );
    }
}
