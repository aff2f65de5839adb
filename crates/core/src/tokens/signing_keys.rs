//! The signing-key set that ID tokens and JWT access tokens are signed with (RS256), and the
//! JWKS that publishes its public halves.
//!
//! A key is stored in the database with its private half sealed under the server key
//! (XChaCha20-Poly1305, its kid as associated data, so that a sealed key moved to another row
//! does not open), so every node that shares the server key signs with the same keys. The
//! private half is opened only inside this module: nothing outside core sees it in clear.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::time::{Random, Timestamp};
use crate::tokens::server_key::ServerKey;

/// The only algorithm keys are made for today (what Salesforce signs ID tokens with).
pub const RS256: &str = "RS256";

const NONCE_LEN: usize = 24;
const KID_BYTES: usize = 12;

/// A private key sealed under the server key: `nonce || ciphertext`. Its `Debug` shows only its
/// length.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedPrivateKey(Vec<u8>);

impl SealedPrivateKey {
    /// What a store read back (the bytes it was given by [`SealedPrivateKey::as_bytes`]).
    pub fn from_stored(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// What a store writes: sealed, useless without the server key.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SealedPrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedPrivateKey({} bytes)", self.0.len())
    }
}

/// One key of the set, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKey {
    /// The JWS `kid`: 96 random bits in hex, unique.
    pub kid: String,
    /// The JWS `alg` (`RS256`).
    pub alg: String,
    pub created_at: Timestamp,
    /// From when the JWKS lists it.
    pub publish_at: Timestamp,
    /// From when it may sign: one JWKS cache lifetime after it is published, so that every
    /// client's cached JWKS has it before the first token it signs arrives (the first key of a
    /// fresh install signs at once: no client can have cached an older JWKS).
    pub sign_from: Timestamp,
    /// From when it is neither published nor used, once retired.
    pub retire_at: Option<Timestamp>,
    pub private_key: SealedPrivateKey,
}

#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    /// The RSA key could not be generated or encoded (aws-lc reported a failure).
    #[error("the signing key could not be generated")]
    Generation,
    /// The sealed key does not open under this server key, or what it holds is not an RSA key:
    /// another server key, or a tampered row.
    #[error("the signing key {kid} does not open under this server key")]
    Unseal { kid: String },
}

fn sealing_cipher(server_key: &ServerKey) -> XChaCha20Poly1305 {
    // A key of its own, derived for this one use: the server key's other MACs never equal it.
    let derived = Zeroizing::new(server_key.mac("signing-key-seal", b""));
    XChaCha20Poly1305::new(Key::from_slice(derived.as_slice()))
}

fn seal(
    server_key: &ServerKey,
    rng: &dyn Random,
    kid: &str,
    private_pkcs8: &[u8],
) -> Result<SealedPrivateKey, SigningKeyError> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce);
    let ciphertext = sealing_cipher(server_key)
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: private_pkcs8,
                aad: kid.as_bytes(),
            },
        )
        .map_err(|_| SigningKeyError::Generation)?;
    let mut sealed = nonce.to_vec();
    sealed.extend_from_slice(&ciphertext);
    Ok(SealedPrivateKey(sealed))
}

/// The private key in PKCS#8 DER, in clear; zeroed when dropped.
fn unseal(
    server_key: &ServerKey,
    kid: &str,
    sealed: &SealedPrivateKey,
) -> Result<Zeroizing<Vec<u8>>, SigningKeyError> {
    let refused = || SigningKeyError::Unseal {
        kid: kid.to_owned(),
    };
    let (nonce, ciphertext) = sealed.0.split_at_checked(NONCE_LEN).ok_or_else(refused)?;
    sealing_cipher(server_key)
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: kid.as_bytes(),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| refused())
}

/// The public half of a key, as a JWK (RFC 7517): what the JWKS lists.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PublicJwk {
    pub kty: String,
    pub kid: String,
    #[serde(rename = "use")]
    pub use_: String,
    pub alg: String,
    /// The modulus, base64url without padding (big-endian, no leading zero).
    pub n: String,
    /// The public exponent, likewise.
    pub e: String,
}

impl SigningKey {
    /// A new RSA-2048 key, published at `publish_at` and signing from `sign_from`. The key
    /// material comes from aws-lc's own generator (the injected [`Random`] draws the kid and
    /// the seal's nonce: RSA generation cannot be given a byte source).
    pub fn generate(
        server_key: &ServerKey,
        rng: &dyn Random,
        now: Timestamp,
        sign_from: Timestamp,
    ) -> Result<Self, SigningKeyError> {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::rsa::{KeyPair, KeySize};

        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| SigningKeyError::Generation)?;
        let pkcs8 = pair.as_der().map_err(|_| SigningKeyError::Generation)?;
        let mut kid_bytes = [0u8; KID_BYTES];
        rng.fill(&mut kid_bytes);
        // Hex, not base64url: a kid that began with `-` would read as an option on a command
        // line (`tessera admin keys retire KID`).
        let kid = hex::encode(kid_bytes);
        let private_key = seal(server_key, rng, &kid, pkcs8.as_ref())?;
        Ok(Self {
            kid,
            alg: RS256.to_owned(),
            created_at: now,
            publish_at: now,
            sign_from,
            retire_at: None,
            private_key,
        })
    }

    /// The public half, as the JWKS lists it.
    pub fn public_jwk(&self, server_key: &ServerKey) -> Result<PublicJwk, SigningKeyError> {
        use aws_lc_rs::signature::KeyPair as _;

        let pair = self.open(server_key)?;
        let public = pair.public_key();
        Ok(PublicJwk {
            kty: "RSA".to_owned(),
            kid: self.kid.clone(),
            use_: "sig".to_owned(),
            alg: self.alg.clone(),
            n: URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            e: URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        })
    }

    /// A compact JWS (RS256) of `claims`, its header naming this key's kid.
    pub fn sign_jws<C: serde::Serialize>(
        &self,
        server_key: &ServerKey,
        claims: &C,
    ) -> Result<String, SigningKeyError> {
        self.sign_jws_typed(server_key, "JWT", claims)
    }

    /// The same with the header's `typ` set to `typ` (an access token's is `at+jwt`, RFC 9068
    /// §2.1, so that no ID token can pass for one).
    pub fn sign_jws_typed<C: serde::Serialize>(
        &self,
        server_key: &ServerKey,
        typ: &str,
        claims: &C,
    ) -> Result<String, SigningKeyError> {
        let refused = || SigningKeyError::Unseal {
            kid: self.kid.clone(),
        };
        let pkcs8 = unseal(server_key, &self.kid, &self.private_key)?;
        // jsonwebtoken's aws-lc backend takes the RSAPrivateKey (PKCS#1) that PKCS#8 wraps.
        let pkcs1 = pkcs1_in_pkcs8(&pkcs8).ok_or_else(refused)?;
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        header.typ = Some(typ.to_owned());
        jsonwebtoken::encode(
            &header,
            claims,
            &jsonwebtoken::EncodingKey::from_rsa_der(pkcs1),
        )
        .map_err(|_| refused())
    }

    fn open(&self, server_key: &ServerKey) -> Result<aws_lc_rs::rsa::KeyPair, SigningKeyError> {
        let pkcs8 = unseal(server_key, &self.kid, &self.private_key)?;
        aws_lc_rs::rsa::KeyPair::from_pkcs8(&pkcs8).map_err(|_| SigningKeyError::Unseal {
            kid: self.kid.clone(),
        })
    }
}

/// One DER element at the start of `input`: its tag, its contents, and what follows it.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let (len_bytes, rest) = rest.split_at_checked(count)?;
        let len = len_bytes
            .iter()
            .fold(0usize, |len, &b| (len << 8) | usize::from(b));
        (len, rest)
    };
    let (contents, after) = rest.split_at_checked(len)?;
    Some((tag, contents, after))
}

/// The `privateKey` OCTET STRING of a PKCS#8 `PrivateKeyInfo` (RFC 5208): SEQUENCE { version
/// INTEGER, algorithm SEQUENCE, privateKey OCTET STRING, … }.
fn pkcs1_in_pkcs8(pkcs8: &[u8]) -> Option<&[u8]> {
    const SEQUENCE: u8 = 0x30;
    const INTEGER: u8 = 0x02;
    const OCTET_STRING: u8 = 0x04;
    let (SEQUENCE, info, _) = der_element(pkcs8)? else {
        return None;
    };
    let (INTEGER, _version, rest) = der_element(info)? else {
        return None;
    };
    let (SEQUENCE, _algorithm, rest) = der_element(rest)? else {
        return None;
    };
    let (OCTET_STRING, private_key, _) = der_element(rest)? else {
        return None;
    };
    Some(private_key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::SystemRandom;

    fn fresh_key(server_key: &ServerKey) -> SigningKey {
        SigningKey::generate(
            server_key,
            &SystemRandom,
            Timestamp(1_000),
            Timestamp(1_000),
        )
        .unwrap()
    }

    #[test]
    fn a_token_signed_with_a_key_verifies_with_its_published_jwk_only() {
        let server_key = ServerKey::generate(&SystemRandom);
        let key = fresh_key(&server_key);
        let other = fresh_key(&server_key);
        let claims = serde_json::json!({"sub": "005", "aud": "client", "exp": 4_000_000_000u64});
        let token = key.sign_jws(&server_key, &claims).unwrap();

        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(key.kid.as_str()));
        let jwk_of = |k: &SigningKey| -> jsonwebtoken::jwk::Jwk {
            serde_json::from_value(
                serde_json::to_value(k.public_jwk(&server_key).unwrap()).unwrap(),
            )
            .unwrap()
        };
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_audience(&["client"]);
        let verified = jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &jsonwebtoken::DecodingKey::from_jwk(&jwk_of(&key)).unwrap(),
            &validation,
        )
        .unwrap();
        assert_eq!(verified.claims, claims);
        assert!(jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &jsonwebtoken::DecodingKey::from_jwk(&jwk_of(&other)).unwrap(),
            &validation,
        )
        .is_err());
    }

    #[test]
    fn a_sealed_key_opens_only_under_its_server_key_and_its_own_kid() {
        let server_key = ServerKey::generate(&SystemRandom);
        let key = fresh_key(&server_key);
        assert!(key.public_jwk(&server_key).is_ok());

        let another_server_key = ServerKey::generate(&SystemRandom);
        assert!(matches!(
            key.public_jwk(&another_server_key),
            Err(SigningKeyError::Unseal { .. })
        ));

        let mut moved = key.clone();
        moved.kid = fresh_key(&server_key).kid;
        assert!(matches!(
            moved.sign_jws(&server_key, &serde_json::json!({})),
            Err(SigningKeyError::Unseal { .. })
        ));
    }

    #[test]
    fn a_signing_keys_debug_shows_no_key_material() {
        let server_key = ServerKey::generate(&SystemRandom);
        let key = fresh_key(&server_key);
        let shown = format!("{key:?}");
        assert!(shown.contains("SealedPrivateKey("), "{shown}");
        // A derived Debug would list the bytes: "[12, 34, …]".
        let first_bytes = format!("{:?}", key.private_key.as_bytes().get(..4).unwrap());
        let first_bytes = first_bytes.trim_matches(|c| c == '[' || c == ']');
        assert!(!shown.contains(first_bytes), "{shown}");
    }

    #[test]
    fn a_kid_never_reads_as_a_command_line_option() {
        let server_key = ServerKey::generate(&SystemRandom);
        let kid = fresh_key(&server_key).kid;
        // Hex only: neither a leading `-` nor base64url's `-` and `_` anywhere.
        assert!(kid.bytes().all(|b| b.is_ascii_hexdigit()), "{kid}");
        assert_eq!(kid.len(), 2 * KID_BYTES);
    }

    #[test]
    fn a_malformed_pkcs8_is_refused_not_read_past_its_end() {
        assert_eq!(pkcs1_in_pkcs8(&[]), None);
        assert_eq!(pkcs1_in_pkcs8(&[0x30, 0x82, 0xff]), None);
        assert_eq!(pkcs1_in_pkcs8(&[0x30, 0x03, 0x02, 0x01, 0x00]), None);
        assert_eq!(
            pkcs1_in_pkcs8(&[0x30, 0x08, 0x02, 0x01, 0x00, 0x30, 0x00, 0x04, 0x01, 0xaa]),
            Some(&[0xaa][..])
        );
    }
}
