//! Access tokens: any presented text is verified without panicking, and a token minted from
//! arbitrary claims verifies back to exactly those claims (which reaches the parser behind the
//! MAC, that random text never gets past), bound to a DPoP key's thumbprint or not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_core::tokens::access_token::{mint, verify, RANDOM_BYTES};
use tessera_core::tokens::server_key::ServerKey;
use tessera_core::tokens::ids::encode_token;
use tessera_core::time::Timestamp;
use tessera_proto::dpop::access_token_hash;
use tessera_proto::{AccessToken, Scope};

/// Bytes of a grant id (24 characters of 6 bits).
const GRANT_ID_BYTES: usize = 18;

fuzz_target!(|data: &[u8]| {
    let key = ServerKey::from_bytes([7; 32]);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = verify(&key, &AccessToken::new(text));
    }
    let fixed = GRANT_ID_BYTES + 8 + 8 + RANDOM_BYTES;
    if data.len() < fixed {
        return;
    }
    let (head, scope_text) = data.split_at(fixed);
    let (grant, rest) = head.split_at(GRANT_ID_BYTES);
    let (issued, rest) = rest.split_at(8);
    let (expires, random) = rest.split_at(8);
    let Some(scope) = std::str::from_utf8(scope_text).ok().and_then(Scope::parse) else {
        return;
    };
    let issued_at = Timestamp(i64::from_be_bytes(issued.try_into().unwrap()));
    let expires_at = Timestamp(i64::from_be_bytes(expires.try_into().unwrap()));
    let grant_id = encode_token(grant);
    let random: [u8; RANDOM_BYTES] = random.try_into().unwrap();
    // Half the tokens bound to a DPoP key: any base64url SHA-256 stands for its thumbprint.
    let dpop_jkt = (random[0] & 1 == 1).then(|| access_token_hash(&grant_id));
    let Some(token) = mint(
        &key,
        &random,
        "00D000000000001AAA",
        &grant_id,
        &scope,
        issued_at,
        expires_at,
        dpop_jkt.as_deref(),
    ) else {
        return;
    };
    let claims = verify(&key, &token).expect("a minted token verifies");
    assert_eq!(claims.grant_id, grant_id);
    assert_eq!(
        (claims.issued_at, claims.expires_at),
        (issued_at, expires_at)
    );
    assert_eq!(claims.scope, scope);
    assert_eq!(claims.dpop_jkt, dpop_jkt);
    // Another key does not accept it.
    assert!(verify(&ServerKey::from_bytes([8; 32]), &token).is_none());
});
