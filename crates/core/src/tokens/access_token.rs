//! Access tokens that carry what they grant, signed: `<15-char org id>!<body>`, the body in the
//! token alphabet. It holds a version, the grant id, the issue and expiry times, 256 random
//! bits, the scope, and an HMAC under the server key over all of it (and the org prefix).
//!
//! The resource server verifies one from its own bytes — no row is read to validate it, and none
//! is written to issue it — and asks only the in-memory revocation state (fed by the change
//! feed) whether its grant or the token itself was revoked. Salesforce's tokens are opaque to
//! clients, and so are these: nothing in a client reads them.

use subtle::ConstantTimeEq;
use tessera_proto::{AccessToken, ExposeSecret, Scope};

use crate::time::Timestamp;
use crate::tokens::hash::secret_hash;
use crate::tokens::hash::Hash;
use crate::tokens::ids::{decode_token, encode_token};
use crate::tokens::sealing::GRANT_ID_LEN;
use crate::tokens::server_key::ServerKey;

const VERSION: u8 = 2;
/// Raw bytes of a grant id (its 24 characters, 6 bits each).
const GRANT_ID_BYTES: usize = GRANT_ID_LEN * 6 / 8;
/// The random part: drawn for a new token, derived for a rotation's successor.
pub const RANDOM_BYTES: usize = 32;
const MAC_BYTES: usize = 16;
/// Version, grant id, issued at, expires at, random, scope length.
const FIXED_BYTES: usize = 1 + GRANT_ID_BYTES + 8 + 8 + RANDOM_BYTES + 1;
/// The longest scope a token carries.
pub(crate) const MAX_SCOPE_BYTES: usize = 255;

/// What a verified access token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    pub grant_id: String,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    pub scope: Scope,
    /// SHA-256 of the whole token: how a revocation of this one token is recorded.
    pub token_hash: Hash,
}

fn mac(key: &ServerKey, org_prefix: &str, body: &[u8]) -> [u8; MAC_BYTES] {
    let mut message = Vec::with_capacity(org_prefix.len() + 1 + body.len());
    message.extend_from_slice(org_prefix.as_bytes());
    message.push(b'!');
    message.extend_from_slice(body);
    let full = key.mac("access-token", &message);
    let mut tag = [0u8; MAC_BYTES];
    tag.copy_from_slice(&full[..MAC_BYTES]);
    tag
}

/// Mints an access token for `grant_id` (a 24-character grant id), or `None` when the scope is
/// too long to carry.
pub fn mint(
    key: &ServerKey,
    random: &[u8; RANDOM_BYTES],
    org_id: &str,
    grant_id: &str,
    scope: &Scope,
    issued_at: Timestamp,
    expires_at: Timestamp,
) -> Option<AccessToken> {
    // The org id's first 15 characters; one that is shorter, or not ASCII, is used whole.
    let org_prefix = org_id.get(..15).unwrap_or(org_id);
    let grant = decode_token(grant_id).filter(|g| g.len() == GRANT_ID_BYTES)?;
    let scope_text = scope.to_string();
    if scope_text.len() > MAX_SCOPE_BYTES {
        return None;
    }
    let mut body = Vec::with_capacity(FIXED_BYTES + scope_text.len() + MAC_BYTES);
    body.push(VERSION);
    body.extend_from_slice(&grant);
    body.extend_from_slice(&issued_at.millis().to_be_bytes());
    body.extend_from_slice(&expires_at.millis().to_be_bytes());
    body.extend_from_slice(random);
    body.push(scope_text.len() as u8);
    body.extend_from_slice(scope_text.as_bytes());
    let tag = mac(key, org_prefix, &body);
    body.extend_from_slice(&tag);
    Some(AccessToken::new(format!(
        "{org_prefix}!{}",
        encode_token(&body)
    )))
}

/// The claims of a token this server minted, if its signature holds. Says nothing of expiry or
/// revocation: the caller judges those.
pub fn verify(key: &ServerKey, token: &AccessToken) -> Option<AccessClaims> {
    let value = token.expose_secret();
    let (org_prefix, encoded) = value.split_once('!')?;
    let body = decode_token(encoded)?;
    let (signed, tag) = body.split_last_chunk::<MAC_BYTES>()?;
    let (&version, fields) = signed.split_first()?;
    if signed.len() < FIXED_BYTES || version != VERSION {
        return None;
    }
    if !bool::from(mac(key, org_prefix, signed).ct_eq(tag)) {
        return None;
    }
    let (grant, fields) = fields.split_first_chunk::<GRANT_ID_BYTES>()?;
    let (issued_at, fields) = fields.split_first_chunk::<8>()?;
    let (expires_at, fields) = fields.split_first_chunk::<8>()?;
    let (_random, fields) = fields.split_first_chunk::<RANDOM_BYTES>()?;
    let (&scope_len, scope) = fields.split_first()?;
    if scope.len() != usize::from(scope_len) {
        return None;
    }
    let grant_id = encode_token(grant);
    let issued_at = Timestamp(i64::from_be_bytes(*issued_at));
    let expires_at = Timestamp(i64::from_be_bytes(*expires_at));
    let scope = Scope::parse(std::str::from_utf8(scope).ok()?)?;
    Some(AccessClaims {
        grant_id,
        issued_at,
        expires_at,
        scope,
        token_hash: secret_hash(value),
    })
}

/// Whether a token is of this format at all (as opposed to the earlier, stored one), judged by
/// its shape only.
pub(crate) fn looks_signed(token: &AccessToken) -> bool {
    token
        .expose_secret()
        .split_once('!')
        .is_some_and(|(_, body)| body.len() > 100)
}

#[cfg(test)]
#[allow(
    clippy::string_slice,
    reason = "tests cut ASCII tokens at known places"
)]
mod tests {
    use super::*;
    use crate::time::SystemRandom;
    use crate::tokens::ids::random_token;

    fn setup() -> (ServerKey, String, Scope) {
        (
            ServerKey::generate(&SystemRandom),
            random_token(&SystemRandom, 18),
            Scope::parse("api id refresh_token").unwrap(),
        )
    }

    #[test]
    fn a_minted_token_verifies_to_its_claims() {
        let (key, grant, scope) = setup();
        let token = mint(
            &key,
            &[7; RANDOM_BYTES],
            "00D000000000001AAA",
            &grant,
            &scope,
            Timestamp(1_000),
            Timestamp(8_201_000),
        )
        .unwrap();
        let value = token.expose_secret();
        assert!(value.starts_with("00D000000000001!"));
        assert!(value[16..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_'));
        assert!(looks_signed(&token));
        let claims = verify(&key, &token).unwrap();
        assert_eq!(claims.grant_id, grant);
        assert_eq!(claims.issued_at, Timestamp(1_000));
        assert_eq!(claims.expires_at, Timestamp(8_201_000));
        assert_eq!(claims.scope, scope);
        assert_eq!(claims.token_hash, secret_hash(value));
    }

    #[test]
    fn tampered_forged_or_foreign_tokens_do_not_verify() {
        let (key, grant, scope) = setup();
        let token = mint(
            &key,
            &[7; RANDOM_BYTES],
            "00D1",
            &grant,
            &scope,
            Timestamp(1),
            Timestamp(2),
        )
        .unwrap();
        let value = token.expose_secret().to_owned();
        assert!(verify(&ServerKey::generate(&SystemRandom), &token).is_none());
        for i in [6, 30, value.len() - 3] {
            let mut bytes = value.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let tampered = AccessToken::new(String::from_utf8(bytes).unwrap());
            assert!(verify(&key, &tampered).is_none(), "byte {i}");
        }
        let other_org = AccessToken::new(value.replacen("00D1", "00D2", 1));
        assert!(verify(&key, &other_org).is_none());
        for garbage in [
            "",
            "00D!",
            "00D!abc",
            "no-bang",
            &format!("00D1!{}", "A".repeat(200)),
        ] {
            assert!(
                verify(&key, &AccessToken::new(garbage)).is_none(),
                "{garbage}"
            );
        }
    }

    #[test]
    fn genuinely_signed_bodies_of_the_wrong_shape_do_not_verify() {
        let (key, _, _) = setup();
        // Every length up to a whole token, and a scope length that overruns the body or falls
        // short of it: each signed with the right key, so only the parsing can refuse them.
        for len in 0..FIXED_BYTES + 8 {
            for scope_len in [0u8, 3, 255] {
                let mut signed = vec![0u8; len];
                if let Some(version) = signed.first_mut() {
                    *version = VERSION;
                }
                if let Some(length) = signed.get_mut(FIXED_BYTES - 1) {
                    *length = scope_len;
                }
                let mut body = signed.clone();
                body.extend_from_slice(&mac(&key, "00D1", &signed));
                let token = AccessToken::new(format!("00D1!{}", encode_token(&body)));
                let fits = len >= FIXED_BYTES && len - FIXED_BYTES == usize::from(scope_len);
                if !fits {
                    assert!(verify(&key, &token).is_none(), "{len} {scope_len}");
                }
            }
        }
    }

    #[test]
    fn an_org_id_cut_inside_a_character_is_used_whole() {
        let (key, grant, scope) = setup();
        let org_id = "00D00000000000é1";
        let token = mint(
            &key,
            &[7; RANDOM_BYTES],
            org_id,
            &grant,
            &scope,
            Timestamp(1),
            Timestamp(2),
        )
        .unwrap();
        assert!(token.expose_secret().starts_with(&format!("{org_id}!")));
        assert_eq!(verify(&key, &token).unwrap().grant_id, grant);
    }
}
