//! The proofs already seen (RFC 9449 §11.1), in this process's memory: a proof is refused the
//! second time it is presented for the same client and URI while its `iat` is still inside the
//! window. After that the validator refuses it on its `iat` alone, so the entry can go.
//!
//! The store has a fixed capacity. When it is full of live entries a new proof is refused (503)
//! rather than an entry forgotten: forgetting one would let its proof be replayed.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::dpop::ProofError;
use crate::time::Timestamp;
use crate::tokens::hash::Hash;

/// What a seen proof is remembered by: SHA-256 over the client, the normalised `htu` and the
/// SHA-256 of the `jti`, each prefixed by its length so that no two different triples hash the
/// same bytes.
pub fn replay_key(client_id: &str, htu: &str, jti_hash: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    for part in [client_id.as_bytes(), htu.as_bytes(), jti_hash.as_slice()] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// The seen proofs: a map from key to expiry for the lookup, and the same entries ordered by
/// expiry so that the expired ones are dropped from the front without a scan.
#[derive(Debug)]
pub struct SeenProofs {
    capacity: usize,
    entries: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    expiry_by_key: HashMap<Hash, Timestamp>,
    by_expiry: BTreeSet<(Timestamp, Hash)>,
}

impl Entries {
    /// Drops every entry whose expiry has come.
    fn forget_expired(&mut self, now: Timestamp) {
        while let Some(&(expires_at, key)) = self.by_expiry.first() {
            if expires_at > now {
                break;
            }
            self.by_expiry.pop_first();
            self.expiry_by_key.remove(&key);
        }
    }
}

impl SeenProofs {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::default(),
        }
    }

    /// Records the proof `key` until `expires_at` (exclusive). `Err(Replayed)` when it is already
    /// recorded and not expired; `Err(ReplayStoreFull)` when `capacity` live proofs are recorded,
    /// none of which is dropped to make room.
    pub fn remember(
        &self,
        key: Hash,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), ProofError> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        // Expired entries go first, on every call: each is dropped once, so this costs no more
        // than its insertion did, and a replay of an expired entry is then a new proof.
        entries.forget_expired(now);
        if entries.expiry_by_key.contains_key(&key) {
            return Err(ProofError::Replayed);
        }
        if expires_at <= now {
            // Already out of the window: the validator refuses it again on its `iat`.
            return Ok(());
        }
        if entries.expiry_by_key.len() >= self.capacity {
            return Err(ProofError::ReplayStoreFull);
        }
        entries.expiry_by_key.insert(key, expires_at);
        entries.by_expiry.insert((expires_at, key));
        Ok(())
    }

    /// How many proofs are remembered, expired ones not yet dropped included.
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .expiry_by_key
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::hash::secret_hash;

    const NOW: Timestamp = Timestamp(1_780_000_000_000);

    fn key(jti: &str) -> Hash {
        replay_key(
            "client",
            "https://server.example.com/token",
            &secret_hash(jti),
        )
    }

    #[test]
    fn a_proof_is_refused_the_second_time_until_its_entry_expires() {
        let seen = SeenProofs::new(10);
        let expires_at = NOW.plus_secs(60);
        assert_eq!(seen.remember(key("a"), expires_at, NOW), Ok(()));
        assert_eq!(
            seen.remember(key("a"), expires_at, NOW.plus_secs(59)),
            Err(ProofError::Replayed)
        );
        assert_eq!(seen.remember(key("a"), expires_at, expires_at), Ok(()));
    }

    #[test]
    fn the_replay_key_separates_clients_uris_and_jtis() {
        let jti = secret_hash("a");
        let keys = [
            replay_key("client", "https://server.example.com/token", &jti),
            replay_key("other", "https://server.example.com/token", &jti),
            replay_key("client", "https://server.example.com/other", &jti),
            replay_key(
                "client",
                "https://server.example.com/token",
                &secret_hash("b"),
            ),
            // The same bytes split differently between client and URI.
            replay_key("clienth", "ttps://server.example.com/token", &jti),
        ];
        let distinct: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len());
    }

    #[test]
    fn a_full_store_refuses_new_proofs_and_keeps_its_live_entries() {
        let seen = SeenProofs::new(2);
        let expires_at = NOW.plus_secs(60);
        seen.remember(key("a"), expires_at, NOW).unwrap();
        seen.remember(key("b"), expires_at, NOW).unwrap();
        assert_eq!(
            seen.remember(key("c"), expires_at, NOW),
            Err(ProofError::ReplayStoreFull)
        );
        assert_eq!(seen.len(), 2);
        assert_eq!(
            seen.remember(key("a"), expires_at, NOW.plus_secs(1)),
            Err(ProofError::Replayed)
        );
        assert_eq!(
            seen.remember(key("b"), expires_at, NOW.plus_secs(1)),
            Err(ProofError::Replayed)
        );
    }

    #[test]
    fn a_full_store_forgets_expired_entries_to_make_room() {
        let seen = SeenProofs::new(2);
        seen.remember(key("a"), NOW.plus_secs(10), NOW).unwrap();
        seen.remember(key("b"), NOW.plus_secs(60), NOW).unwrap();
        let later = NOW.plus_secs(10);
        assert_eq!(seen.remember(key("c"), NOW.plus_secs(70), later), Ok(()));
        assert_eq!(seen.len(), 2);
        assert_eq!(
            seen.remember(key("b"), NOW.plus_secs(60), later),
            Err(ProofError::Replayed)
        );
        assert_eq!(
            seen.remember(key("c"), NOW.plus_secs(70), later),
            Err(ProofError::Replayed)
        );
    }
}
