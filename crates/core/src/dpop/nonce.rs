//! Server nonces for DPoP proofs (RFC 9449 §8), kept in no table: a nonce is the number of the
//! time step it was issued in and an HMAC of that number under the server key, so any node with
//! the key can check any node's nonce, and nothing is written per nonce.
//!
//! A nonce is accepted in its own step and in the steps before and after it: a client that
//! fetched one just before a step ended still gets a step's use of it, and a node whose clock is
//! a little ahead of another's still accepts the other's nonces.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use subtle::ConstantTimeEq;

use crate::time::Timestamp;
use crate::tokens::server_key::ServerKey;

/// Separates nonce MACs from every other MAC under the server key.
const PURPOSE: &str = "dpop-nonce";
/// The step number, big-endian.
const STEP_BYTES: usize = 8;
/// The MAC is truncated to this: 128 bits is beyond guessing within a step's life.
const TAG_BYTES: usize = 16;
const NONCE_BYTES: usize = STEP_BYTES + TAG_BYTES;
/// The length of a nonce in base64url without padding: 24 bytes make 32 characters.
const ENCODED_LEN: usize = NONCE_BYTES / 3 * 4;

/// Issues and checks the stateless nonces.
#[derive(Debug, Clone)]
pub struct NonceIssuer {
    key: ServerKey,
    step_secs: u64,
}

impl NonceIssuer {
    /// Nonces under `key`, a new one every `step_secs` (at least one second).
    pub fn new(key: &ServerKey, step_secs: u64) -> Self {
        Self {
            key: key.clone(),
            step_secs: step_secs.max(1),
        }
    }

    /// The nonce of the step `now` is in: what a `DPoP-Nonce` header carries.
    pub fn current(&self, now: Timestamp) -> String {
        let step = self.step_at(now);
        let mut nonce = [0u8; NONCE_BYTES];
        let (step_part, tag_part) = nonce.split_at_mut(STEP_BYTES);
        step_part.copy_from_slice(&step.to_be_bytes());
        for (byte, tag_byte) in tag_part.iter_mut().zip(self.tag(step)) {
            *byte = tag_byte;
        }
        URL_SAFE_NO_PAD.encode(nonce)
    }

    /// Whether `nonce` was issued by a key-holder in the step of `now` or one beside it.
    pub fn accepts(&self, nonce: &str, now: Timestamp) -> bool {
        let mut decoded = [0u8; NONCE_BYTES];
        // The exact length first: anything else is not ours, and cannot overflow the buffer.
        if nonce.len() != ENCODED_LEN
            || !matches!(
                URL_SAFE_NO_PAD.decode_slice(nonce, &mut decoded),
                Ok(NONCE_BYTES)
            )
        {
            return false;
        }
        let (step_part, tag_part) = decoded.split_at(STEP_BYTES);
        let Ok(step_bytes) = <[u8; STEP_BYTES]>::try_from(step_part) else {
            return false;
        };
        let step = u64::from_be_bytes(step_bytes);
        if step.abs_diff(self.step_at(now)) > 1 {
            return false;
        }
        let expected = self.tag(step);
        expected
            .get(..TAG_BYTES)
            .is_some_and(|expected| bool::from(expected.ct_eq(tag_part)))
    }

    fn step_at(&self, now: Timestamp) -> u64 {
        // Before the epoch is no time a server runs at: step 0.
        u64::try_from(now.seconds()).unwrap_or(0) / self.step_secs
    }

    fn tag(&self, step: u64) -> [u8; 32] {
        self.key.mac(PURPOSE, &step.to_be_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::SystemRandom;

    const STEP: u64 = 60;
    const START: Timestamp = Timestamp(1_780_000_020_000);

    fn issuer() -> NonceIssuer {
        NonceIssuer::new(&ServerKey::generate(&SystemRandom), STEP)
    }

    #[test]
    fn a_nonce_is_accepted_in_its_step_and_the_steps_beside_it() {
        let issuer = issuer();
        let nonce = issuer.current(START);
        assert_eq!(nonce.len(), ENCODED_LEN);
        for offset in [0, STEP, 2 * STEP - 1] {
            assert!(
                issuer.accepts(&nonce, START.plus_secs(offset)),
                "+{offset}s"
            );
        }
        // The previous step's nonce: a node whose clock runs ahead issued it.
        assert!(issuer.accepts(&issuer.current(START.plus_secs(STEP)), START));
    }

    #[test]
    fn a_nonce_three_steps_old_is_stale() {
        let issuer = issuer();
        let nonce = issuer.current(START);
        assert!(!issuer.accepts(&nonce, START.plus_secs(3 * STEP)));
        assert!(!issuer.accepts(&issuer.current(START.plus_secs(3 * STEP)), START));
    }

    #[test]
    fn a_nonce_of_another_key_or_tampered_or_of_another_length_is_refused() {
        let issuer = issuer();
        let nonce = issuer.current(START);
        assert!(!NonceIssuer::new(&ServerKey::generate(&SystemRandom), STEP).accepts(&nonce, START));
        let mut tampered = nonce.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(!issuer.accepts(std::str::from_utf8(&tampered).unwrap(), START));
        assert!(!issuer.accepts(nonce.split_at(nonce.len() - 1).0, START));
        assert!(!issuer.accepts(&format!("{nonce}A"), START));
        assert!(!issuer.accepts("", START));
    }
}
