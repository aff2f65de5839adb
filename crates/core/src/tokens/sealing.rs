//! Refresh tokens that carry their grant id, signed; and the successors a rotation derives.
//!
//! A refresh token is `<grant id: 24><random: 43><tag: 22>`, all in the token alphabet. The tag
//! is an HMAC under the server key over the rest, so that a rotated-out token whose row has been
//! purged is still recognised as a genuine token of its family (reuse detection that lasts as
//! long as the family, without keeping a row per rotation), while a forged or tampered token
//! never points at a family it could revoke (RFC 9700 §4.14.2: "if the grant id is encoded in
//! the refresh token, its integrity MUST be protected").
//!
//! A rotation's successor pair is derived, not drawn: its random parts are HMACs under the
//! server key of the presented token itself. A replay of that token inside the retry window
//! therefore rebuilds the very same pair, and nothing of it is stored: the database keeps only
//! the hashes of the family's current and previous tokens, so neither a dump of it nor a dump
//! with the server key yields a usable token (the derivation needs the presented token in
//! clear, which is never stored).

use subtle::ConstantTimeEq;
use tessera_proto::RefreshToken;

use crate::time::Random;
use crate::tokens::ids::encode_token;
use crate::tokens::server_key::ServerKey;

/// Length of a grant id (18 random bytes in the token alphabet).
pub const GRANT_ID_LEN: usize = 24;
const RANDOM_BYTES: usize = 32;
const RANDOM_LEN: usize = 43;
const TAG_BYTES: usize = 16;
const TAG_LEN: usize = 22;
const REFRESH_TOKEN_LEN: usize = GRANT_ID_LEN + RANDOM_LEN + TAG_LEN;

fn tag(key: &ServerKey, body: &str) -> String {
    let mac = key.mac("refresh-token", body.as_bytes());
    encode_token(&mac[..TAG_BYTES])
}

/// Mints a refresh token for a grant: 256 random bits, plus the signed grant id.
pub(crate) fn mint_refresh_token(
    key: &ServerKey,
    rng: &dyn Random,
    grant_id: &str,
) -> RefreshToken {
    let mut random = [0u8; RANDOM_BYTES];
    rng.fill(&mut random);
    refresh_token_from(key, &random, grant_id)
}

fn refresh_token_from(
    key: &ServerKey,
    random: &[u8; RANDOM_BYTES],
    grant_id: &str,
) -> RefreshToken {
    debug_assert_eq!(grant_id.len(), GRANT_ID_LEN);
    let body = format!("{grant_id}{}", encode_token(random));
    let tag = tag(key, &body);
    RefreshToken::new(format!("{body}{tag}"))
}

/// Whether `token` has the signed format's length and alphabet, whatever its signature.
pub(crate) fn has_signed_shape(token: &str) -> bool {
    token.len() == REFRESH_TOKEN_LEN && token.is_ascii()
}

/// The grant id a refresh token names, if its signature is valid.
pub fn signed_grant_id<'a>(key: &ServerKey, token: &'a str) -> Option<&'a str> {
    if !has_signed_shape(token) {
        return None;
    }
    let (body, presented_tag) = token.split_at_checked(GRANT_ID_LEN + RANDOM_LEN)?;
    let (grant_id, _random) = body.split_at_checked(GRANT_ID_LEN)?;
    let expected = tag(key, body);
    bool::from(expected.as_bytes().ct_eq(presented_tag.as_bytes())).then_some(grant_id)
}

/// The random parts of the pair that rotating `presented` yields: the same for every
/// presentation of the same token, unpredictable without the server key and that token.
pub struct Successor {
    refresh: [u8; RANDOM_BYTES],
    access: [u8; RANDOM_BYTES],
}

impl std::fmt::Debug for Successor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Successor([REDACTED])")
    }
}

impl Drop for Successor {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.refresh);
        zeroize::Zeroize::zeroize(&mut self.access);
    }
}

impl Successor {
    pub fn of(key: &ServerKey, presented: &str) -> Self {
        Self {
            refresh: key.mac("successor-refresh-token", presented.as_bytes()),
            access: key.mac("successor-access-token", presented.as_bytes()),
        }
    }

    /// The successor refresh token, for the presented token's grant.
    pub fn refresh_token(&self, key: &ServerKey, grant_id: &str) -> RefreshToken {
        refresh_token_from(key, &self.refresh, grant_id)
    }

    /// The random bytes of the successor access token.
    pub fn access_random(&self) -> &[u8; RANDOM_BYTES] {
        &self.access
    }
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
    use tessera_proto::ExposeSecret;

    fn grant_id() -> String {
        random_token(&SystemRandom, 18)
    }

    #[test]
    fn refresh_tokens_name_their_grant_and_use_the_safe_alphabet() {
        let key = ServerKey::generate(&SystemRandom);
        let id = grant_id();
        let token = mint_refresh_token(&key, &SystemRandom, &id);
        let value = token.expose_secret();
        assert_eq!(value.len(), REFRESH_TOKEN_LEN);
        assert!(value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_'));
        assert_eq!(signed_grant_id(&key, value), Some(id.as_str()));
    }

    #[test]
    fn forged_or_tampered_tokens_name_no_grant() {
        let key = ServerKey::generate(&SystemRandom);
        let id = grant_id();
        let value = mint_refresh_token(&key, &SystemRandom, &id)
            .expose_secret()
            .to_owned();
        let other = grant_id();
        let forged = format!("{other}{}", &value[GRANT_ID_LEN..]);
        assert_eq!(signed_grant_id(&key, &forged), None);
        let mut flipped = value.clone().into_bytes();
        flipped[40] = if flipped[40] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            signed_grant_id(&key, &String::from_utf8(flipped).unwrap()),
            None
        );
        assert_eq!(
            signed_grant_id(&ServerKey::generate(&SystemRandom), &value),
            None
        );
        assert_eq!(signed_grant_id(&key, &value[1..]), None);
        assert_eq!(signed_grant_id(&key, "short"), None);
    }

    #[test]
    fn a_successor_is_the_same_for_the_same_token_and_unrelated_otherwise() {
        let key = ServerKey::generate(&SystemRandom);
        let id = grant_id();
        let presented = mint_refresh_token(&key, &SystemRandom, &id);
        let presented = presented.expose_secret();
        let once = Successor::of(&key, presented).refresh_token(&key, &id);
        let again = Successor::of(&key, presented).refresh_token(&key, &id);
        assert_eq!(once.expose_secret(), again.expose_secret());
        assert_eq!(
            signed_grant_id(&key, once.expose_secret()),
            Some(id.as_str())
        );
        assert_ne!(once.expose_secret(), presented);
        let other = mint_refresh_token(&key, &SystemRandom, &id);
        let from_other = Successor::of(&key, other.expose_secret()).refresh_token(&key, &id);
        assert_ne!(from_other.expose_secret(), once.expose_secret());
        let other_key = ServerKey::generate(&SystemRandom);
        let under_other_key = Successor::of(&other_key, presented).refresh_token(&key, &id);
        assert_ne!(under_other_key.expose_secret(), once.expose_secret());
        assert_ne!(
            Successor::of(&key, presented).access_random(),
            &Successor::of(&key, presented).refresh
        );
        assert!(!format!("{:?}", Successor::of(&key, presented)).contains(presented));
    }
}
