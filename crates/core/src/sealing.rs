//! Refresh tokens that carry their grant id, signed; and sealed successor responses.
//!
//! A refresh token is `<grant id: 24><random: 43><tag: 22>`, all in the token alphabet. The tag
//! is an HMAC under the server key over the rest, so that a rotated-out token whose row has been
//! purged is still recognised as a genuine token of its family (reuse detection that lasts as
//! long as the family, without keeping a row per rotation), while a forged or tampered token
//! never points at a family it could revoke (RFC 9700 §4.14.2: "if the grant id is encoded in
//! the refresh token, its integrity MUST be protected").

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use subtle::ConstantTimeEq;
use tessera_proto::{RefreshToken, TokenResponse};
use zeroize::Zeroizing;

use crate::crypto::ServerKey;
use crate::ids::{encode_token, random_token};
use crate::model::Hash;
use crate::time::Random;

/// Length of a grant id (18 random bytes in the token alphabet).
pub const GRANT_ID_LEN: usize = 24;
const RANDOM_LEN: usize = 43;
const TAG_BYTES: usize = 16;
const TAG_LEN: usize = 22;
const REFRESH_TOKEN_LEN: usize = GRANT_ID_LEN + RANDOM_LEN + TAG_LEN;

fn tag(key: &ServerKey, body: &str) -> String {
    let mac = key.mac("refresh-token", body.as_bytes());
    encode_token(&mac[..TAG_BYTES])
}

/// Mints a refresh token for a grant: 256 random bits, plus the signed grant id.
pub fn mint_refresh_token(key: &ServerKey, rng: &dyn Random, grant_id: &str) -> RefreshToken {
    debug_assert_eq!(grant_id.len(), GRANT_ID_LEN);
    let body = format!("{grant_id}{}", random_token(rng, 32));
    let tag = tag(key, &body);
    RefreshToken::new(format!("{body}{tag}"))
}

/// The grant id a refresh token names, if its signature is valid.
pub fn signed_grant_id<'a>(key: &ServerKey, token: &'a str) -> Option<&'a str> {
    if token.len() != REFRESH_TOKEN_LEN || !token.is_ascii() {
        return None;
    }
    let (body, presented_tag) = token.split_at(GRANT_ID_LEN + RANDOM_LEN);
    let expected = tag(key, body);
    bool::from(expected.as_bytes().ct_eq(presented_tag.as_bytes())).then(|| &token[..GRANT_ID_LEN])
}

fn seal_cipher(key: &ServerKey) -> XChaCha20Poly1305 {
    let derived = Zeroizing::new(key.mac("seal-successor", b""));
    XChaCha20Poly1305::new(derived.as_slice().into())
}

/// Encrypts a token response for the retry window, bound to the token it answers (`aad`).
pub fn seal_response(
    key: &ServerKey,
    rng: &dyn Random,
    response: &TokenResponse,
    aad: &Hash,
) -> Option<Vec<u8>> {
    let plaintext = Zeroizing::new(serde_json::to_vec(response).ok()?);
    let mut nonce = [0u8; 24];
    rng.fill(&mut nonce);
    let ciphertext = seal_cipher(key)
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &plaintext,
                aad,
            },
        )
        .ok()?;
    let mut sealed = nonce.to_vec();
    sealed.extend(ciphertext);
    Some(sealed)
}

/// Decrypts a sealed response; `None` if it was not sealed for this token under this key.
pub fn unseal_response(key: &ServerKey, sealed: &[u8], aad: &Hash) -> Option<TokenResponse> {
    if sealed.len() < 24 {
        return None;
    }
    let (nonce, ciphertext) = sealed.split_at(24);
    let plaintext = Zeroizing::new(
        seal_cipher(key)
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .ok()?,
    );
    serde_json::from_slice(&plaintext).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::secret_hash;
    use crate::time::SystemRandom;
    use tessera_proto::{AccessToken, ExposeSecret, TokenType};

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
    fn sealed_responses_open_only_for_their_token_and_key() {
        let key = ServerKey::generate(&SystemRandom);
        let response = TokenResponse {
            access_token: AccessToken::new("00D!a"),
            refresh_token: Some(RefreshToken::new("r")),
            signature: "s".into(),
            scope: "api".into(),
            instance_url: "http://x".into(),
            id: "http://x/id/o/u".into(),
            token_type: TokenType::Bearer,
            issued_at: "1".into(),
            expires_in: Some(7200),
        };
        let aad = secret_hash("presented");
        let sealed = seal_response(&key, &SystemRandom, &response, &aad).unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("00D!a"));
        let opened = unseal_response(&key, &sealed, &aad).unwrap();
        assert_eq!(opened.access_token, response.access_token);
        assert_eq!(opened.refresh_token, response.refresh_token);
        assert!(unseal_response(&key, &sealed, &secret_hash("other")).is_none());
        assert!(unseal_response(&ServerKey::generate(&SystemRandom), &sealed, &aad).is_none());
        assert!(unseal_response(&key, &sealed[..10], &aad).is_none());
    }
}
