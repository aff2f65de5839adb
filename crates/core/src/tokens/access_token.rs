//! Access tokens that carry what they grant, signed: `<15-char org id>!<body>`, the body in the
//! token alphabet. It holds a version, the grant id, the issue and expiry times, 256 random
//! bits, the scope, and an HMAC under the server key over all of it (and the org prefix).
//!
//! A token bound to a DPoP key (RFC 9449) is of version 3: it carries the key's RFC 7638
//! thumbprint too, so that the resource server knows the binding without a row.
//!
//! The resource server verifies one from its own bytes — no row is read to validate it, and none
//! is written to issue it — and asks only the in-memory revocation state (fed by the change
//! feed) whether its grant or the token itself was revoked. Salesforce's tokens are opaque to
//! clients, and so are these: nothing in a client reads them.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use subtle::ConstantTimeEq;
use tessera_proto::{AccessToken, ExposeSecret, Scope};

use crate::time::Timestamp;
use crate::tokens::hash::secret_hash;
use crate::tokens::hash::Hash;
use crate::tokens::ids::{decode_token, encode_token};
use crate::tokens::sealing::GRANT_ID_LEN;
use crate::tokens::server_key::ServerKey;

const VERSION: u8 = 2;
/// The version of a token bound to a DPoP key: version 2's fields, then the thumbprint.
const BOUND_VERSION: u8 = 3;
/// Raw bytes of an RFC 7638 thumbprint (SHA-256).
const THUMBPRINT_BYTES: usize = 32;
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
    /// The thumbprint (base64url) of the DPoP key the token is bound to, if it is.
    pub dpop_jkt: Option<String>,
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

/// Mints an access token for `grant_id` (a 24-character grant id), bound to the DPoP key whose
/// thumbprint is `dpop_jkt` if one is given, or `None` when the scope is too long to carry or the
/// thumbprint is not one.
#[allow(
    clippy::too_many_arguments,
    reason = "each is one field of the token; a struct would only rename them"
)]
pub fn mint(
    key: &ServerKey,
    random: &[u8; RANDOM_BYTES],
    org_id: &str,
    grant_id: &str,
    scope: &Scope,
    issued_at: Timestamp,
    expires_at: Timestamp,
    dpop_jkt: Option<&str>,
) -> Option<AccessToken> {
    // The org id's first 15 characters; one that is shorter, or not ASCII, is used whole.
    let org_prefix = org_id.get(..15).unwrap_or(org_id);
    let grant = decode_token(grant_id).filter(|g| g.len() == GRANT_ID_BYTES)?;
    let scope_text = scope.to_string();
    if scope_text.len() > MAX_SCOPE_BYTES {
        return None;
    }
    let thumbprint = match dpop_jkt {
        Some(jkt) => Some(decode_thumbprint(jkt)?),
        None => None,
    };
    let mut body =
        Vec::with_capacity(FIXED_BYTES + scope_text.len() + THUMBPRINT_BYTES + MAC_BYTES);
    body.push(if thumbprint.is_some() {
        BOUND_VERSION
    } else {
        VERSION
    });
    body.extend_from_slice(&grant);
    body.extend_from_slice(&issued_at.millis().to_be_bytes());
    body.extend_from_slice(&expires_at.millis().to_be_bytes());
    body.extend_from_slice(random);
    body.push(scope_text.len() as u8);
    body.extend_from_slice(scope_text.as_bytes());
    if let Some(thumbprint) = thumbprint {
        body.extend_from_slice(&thumbprint);
    }
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
    if signed.len() < FIXED_BYTES || (version != VERSION && version != BOUND_VERSION) {
        return None;
    }
    if !bool::from(mac(key, org_prefix, signed).ct_eq(tag)) {
        return None;
    }
    let (grant, fields) = fields.split_first_chunk::<GRANT_ID_BYTES>()?;
    let (issued_at, fields) = fields.split_first_chunk::<8>()?;
    let (expires_at, fields) = fields.split_first_chunk::<8>()?;
    let (_random, fields) = fields.split_first_chunk::<RANDOM_BYTES>()?;
    let (&scope_len, rest) = fields.split_first()?;
    let (scope, thumbprint) = rest.split_at_checked(usize::from(scope_len))?;
    let dpop_jkt = match (version, thumbprint.len()) {
        (VERSION, 0) => None,
        (BOUND_VERSION, THUMBPRINT_BYTES) => Some(URL_SAFE_NO_PAD.encode(thumbprint)),
        _ => return None,
    };
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
        dpop_jkt,
    })
}

/// The 32 bytes of a base64url thumbprint, or `None` when it is not one.
fn decode_thumbprint(jkt: &str) -> Option<[u8; THUMBPRINT_BYTES]> {
    URL_SAFE_NO_PAD.decode(jkt).ok()?.try_into().ok()
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
            None,
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
        assert_eq!(claims.dpop_jkt, None);
    }

    #[test]
    fn a_token_bound_to_a_dpop_key_carries_its_thumbprint_under_the_mac() {
        let (key, grant, scope) = setup();
        let jkt = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
        let mint_bound = |jkt| {
            mint(
                &key,
                &[7; RANDOM_BYTES],
                "00D1",
                &grant,
                &scope,
                Timestamp(1),
                Timestamp(2),
                jkt,
            )
        };
        let bound = mint_bound(Some(jkt)).unwrap();
        let claims = verify(&key, &bound).unwrap();
        assert_eq!(claims.dpop_jkt.as_deref(), Some(jkt));
        assert_eq!(claims.grant_id, grant);
        assert_eq!(claims.scope, scope);
        // The same grant, time and randomness unbound is another token, and says so.
        let unbound = mint_bound(None).unwrap();
        assert_ne!(unbound.expose_secret(), bound.expose_secret());
        assert_eq!(verify(&key, &unbound).unwrap().dpop_jkt, None);
        // Not a thumbprint: nothing is minted rather than a token bound to nothing.
        assert!(mint_bound(Some("short")).is_none());
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
            None,
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
            None,
        )
        .unwrap();
        assert!(token.expose_secret().starts_with(&format!("{org_id}!")));
        assert_eq!(verify(&key, &token).unwrap().grant_id, grant);
    }
}
