//! Refresh tokens as presented: the signed grant id is read only from a token this key signed,
//! and any presented text yields a successor without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_core::tokens::server_key::ServerKey;
use tessera_core::tokens::sealing::{signed_grant_id, Successor, GRANT_ID_LEN};

fuzz_target!(|token: &str| {
    let key = ServerKey::from_bytes([7; 32]);
    if let Some(grant_id) = signed_grant_id(&key, token) {
        // Only possible for a token this key minted: then rotating it is well defined too.
        assert_eq!(grant_id.len(), GRANT_ID_LEN);
    }
    let successor = Successor::of(&key, token);
    let _ = successor.access_random();
});
