//! Hashing, signing and verification primitives, each in one place.

use std::sync::Mutex;

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tessera_proto::{ExposeSecret, Password};
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

/// Salesforce's `signature`: base64 (standard, padded) of HMAC-SHA256 keyed by the client secret
/// over `id + issued_at` (docs/salesforce-compatibility.md, "The signature field").
pub(crate) fn token_signature(key: &[u8], id: &str, issued_at: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(issued_at.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// RFC 7636 S256: base64url-without-padding of SHA-256 of the verifier, compared in constant time.
pub(crate) fn pkce_s256_matches(verifier: &str, challenge: &str) -> bool {
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    computed.as_bytes().ct_eq(challenge.as_bytes()).into()
}

/// An Argon2id PHC string for a password. Slow on purpose: call it off the async runtime.
pub(crate) fn hash_password(password: &Password, rng: &dyn Random) -> String {
    let mut salt = [0u8; 16];
    rng.fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt");
    Argon2::default()
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .expect("Argon2id with default parameters cannot fail on a valid salt")
        .to_string()
}

/// Verifies passwords against Argon2 PHC strings in working memory that is kept and reused.
///
/// Argon2id's defaults need 19 MiB per check. Allocated afresh each time, those blocks are not
/// returned to the system reliably: glibc serves them from its heap once its mmap threshold has
/// risen, small allocations land in the freed holes, and a hundred logins grew a server to
/// 750 MiB with only two checks ever running at once. Kept here instead, one buffer per check
/// that may run at once, the memory is fixed: `max_concurrent_password_checks` × 19 MiB.
#[derive(Default)]
pub(crate) struct ReusableVerifier {
    buffers: Mutex<Vec<Vec<Block>>>,
}

impl std::fmt::Debug for ReusableVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReusableVerifier").finish_non_exhaustive()
    }
}

impl ReusableVerifier {
    /// Verifies `password` against `phc`; false for a malformed hash. Slow on purpose: call it
    /// off the async runtime.
    pub fn verify(&self, password: &Password, phc: &str) -> bool {
        let Ok(hash) = PasswordHash::new(phc) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
            return false;
        };
        let Ok(params) = Params::try_from(&hash) else {
            return false;
        };
        let Ok(algorithm) = Algorithm::try_from(hash.algorithm) else {
            return false;
        };
        let version = match hash.version.map(Version::try_from) {
            None => Version::default(),
            Some(Ok(v)) => v,
            Some(Err(_)) => return false,
        };
        let mut salt_bytes = [0u8; 64];
        let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
            return false;
        };
        let blocks = params.block_count();
        let mut buffer = self.take(blocks);
        let mut out = Zeroizing::new(vec![0u8; expected.len()]);
        let computed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
            password.expose_secret().as_bytes(),
            salt,
            &mut out,
            &mut buffer[..blocks],
        );
        self.give_back(buffer);
        computed.is_ok() && bool::from(out.as_slice().ct_eq(expected.as_bytes()))
    }

    fn take(&self, blocks: usize) -> Vec<Block> {
        let kept = self.buffers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut buffer = kept.unwrap_or_default();
        if buffer.len() < blocks {
            buffer.resize(blocks, Block::default());
        }
        buffer
    }

    fn give_back(&self, buffer: Vec<Block>) {
        self.buffers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(buffer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::SystemRandom;

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
    fn the_reusing_verifier_agrees_with_argon2() {
        let verifier = ReusableVerifier::default();
        let phc = hash_password(&Password::new("correct horse"), &SystemRandom);
        assert!(phc.starts_with("$argon2id$"));
        for _ in 0..2 {
            assert!(verifier.verify(&Password::new("correct horse"), &phc));
            assert!(!verifier.verify(&Password::new("correct horsE"), &phc));
        }
        assert!(!verifier.verify(&Password::new("x"), "not a hash"));
        assert!(!verifier.verify(
            &Password::new("x"),
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA"
        ));
        // Smaller parameters reuse the larger buffer.
        let small = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(64, 1, 1, None).unwrap(),
        )
        .hash_password(b"pw", &SaltString::encode_b64(b"saltsaltsalt").unwrap())
        .unwrap()
        .to_string();
        assert!(verifier.verify(&Password::new("pw"), &small));
        assert_eq!(verifier.buffers.lock().unwrap().len(), 1);
    }

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
