//! Users' passwords at rest: Argon2id PHC strings, and their verification in reused working
//! memory.

use std::sync::Mutex;

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;
use tessera_proto::{ExposeSecret, Password};
use zeroize::Zeroizing;

use crate::time::Random;

/// An Argon2id hash of a random value nobody knows, verified against when a username does not
/// exist so that both paths cost the same.
pub(crate) const DUMMY_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3kzV0f3cYvxHAWW2gQOZ2Dc9zxcqqRKFcW4SoaSKWbo";

/// An Argon2id PHC string for a password. Slow on purpose: call it off the async runtime.
#[allow(
    clippy::expect_used,
    reason = "16 bytes are within a salt's 4 to 64, and Argon2id's constant default parameters \
              accept any salt of that size and any password shorter than 4 GiB"
)]
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
        // The buffer may be longer than these parameters need: Argon2 works in its first
        // `blocks` blocks, and refuses (rather than panics on) a buffer that is too short.
        let computed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
            password.expose_secret().as_bytes(),
            salt,
            &mut out,
            buffer.as_mut_slice(),
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
}
