//! The signing-key set that ID tokens and JWT access tokens are signed with (RS256, and ES256
//! for the clients that opt in), and the JWKS that publishes its public halves.
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

use crate::model::SigningAlg;
use crate::time::{Random, Timestamp};
use crate::tokens::server_key::ServerKey;

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
    /// The JWS `alg` (`RS256` or `ES256`).
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
    /// The key could not be generated or encoded (aws-lc reported a failure).
    #[error("the signing key could not be generated")]
    Generation,
    /// The sealed key does not open under this server key, or what it holds is not a key of
    /// its algorithm: another server key, or a tampered row.
    #[error("the signing key {kid} does not open under this server key")]
    Unseal { kid: String },
    /// aws-lc reported a failure while signing.
    #[error("the signing key {kid} could not sign")]
    Signing { kid: String },
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
    /// The key's numbers, by its type (RFC 7518 §6.2, §6.3).
    #[serde(flatten)]
    pub params: JwkParams,
}

/// The public numbers of a JWK, each base64url without padding.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum JwkParams {
    /// `kty: RSA`: the modulus and the public exponent (big-endian, no leading zero).
    Rsa { n: String, e: String },
    /// `kty: EC`: the curve (`P-256`) and the point's coordinates (32 bytes each).
    Ec { crv: String, x: String, y: String },
}

impl PublicJwk {
    /// An RSA key's modulus and public exponent (base64url); `None` for another type.
    pub fn rsa_components(&self) -> Option<(&str, &str)> {
        match &self.params {
            JwkParams::Rsa { n, e } => Some((n, e)),
            JwkParams::Ec { .. } => None,
        }
    }
}

/// A key opened for signing: parsed once, kept by the node's key cache for as long as it keeps
/// the key (aws-lc frees and cleanses the key material when it is dropped).
pub struct OpenedKey {
    kid: String,
    pair: OpenedPair,
}

enum OpenedPair {
    Rsa(aws_lc_rs::rsa::KeyPair),
    Ec(aws_lc_rs::signature::EcdsaKeyPair),
}

impl std::fmt::Debug for OpenedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl OpenedKey {
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWS `alg` it signs with.
    pub fn alg(&self) -> SigningAlg {
        match self.pair {
            OpenedPair::Rsa(_) => SigningAlg::Rs256,
            OpenedPair::Ec(_) => SigningAlg::Es256,
        }
    }

    /// A compact JWS (RFC 7515 §7.1) of `payload` (the claims, serialized), its header
    /// `{alg, kid, typ}`. RS256 is RSASSA-PKCS1-v1_5 with SHA-256: the same bytes for the same
    /// input. ES256 is ECDSA P-256 with SHA-256, `r || s` (RFC 7518 §3.4): randomised.
    pub fn sign_jws(&self, typ: &str, payload: &[u8]) -> Result<String, SigningKeyError> {
        #[derive(serde::Serialize)]
        struct Header<'a> {
            alg: &'a str,
            kid: &'a str,
            typ: &'a str,
        }
        let refused = || SigningKeyError::Signing {
            kid: self.kid.clone(),
        };
        let header = serde_json::to_vec(&Header {
            alg: self.alg().name(),
            kid: &self.kid,
            typ,
        })
        .map_err(|_| refused())?;
        // Header, claims and signature in one string, sized once (base64 is 4/3 of its input).
        let mut jws = String::with_capacity((header.len() + payload.len() + 512) * 4 / 3 + 2);
        URL_SAFE_NO_PAD.encode_string(header, &mut jws);
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut jws);
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let signature = match &self.pair {
            OpenedPair::Rsa(pair) => {
                let mut signature = vec![0u8; pair.public_modulus_len()];
                pair.sign(
                    &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                    &rng,
                    jws.as_bytes(),
                    &mut signature,
                )
                .map_err(|_| refused())?;
                signature
            }
            OpenedPair::Ec(pair) => pair
                .sign(&rng, jws.as_bytes())
                .map_err(|_| refused())?
                .as_ref()
                .to_vec(),
        };
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut jws);
        Ok(jws)
    }
}

impl SigningKey {
    /// A new key for `alg` (RSA-2048 for RS256, P-256 for ES256), published at `now` and signing
    /// from `sign_from`. The key material comes from aws-lc's own generator (the injected
    /// [`Random`] draws the kid and the seal's nonce: key generation cannot be given a byte
    /// source).
    pub fn generate(
        server_key: &ServerKey,
        rng: &dyn Random,
        alg: SigningAlg,
        now: Timestamp,
        sign_from: Timestamp,
    ) -> Result<Self, SigningKeyError> {
        use aws_lc_rs::encoding::AsDer;

        let pkcs8 = match alg {
            SigningAlg::Rs256 => {
                let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .map_err(|_| SigningKeyError::Generation)?;
                let der = pair.as_der().map_err(|_| SigningKeyError::Generation)?;
                Zeroizing::new(der.as_ref().to_vec())
            }
            SigningAlg::Es256 => {
                let pair = aws_lc_rs::signature::EcdsaKeyPair::generate(
                    &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                )
                .map_err(|_| SigningKeyError::Generation)?;
                let der = pair.to_pkcs8v1().map_err(|_| SigningKeyError::Generation)?;
                Zeroizing::new(der.as_ref().to_vec())
            }
        };
        let mut kid_bytes = [0u8; KID_BYTES];
        rng.fill(&mut kid_bytes);
        // Hex, not base64url: a kid that began with `-` would read as an option on a command
        // line (`tessera admin keys retire KID`).
        let kid = hex::encode(kid_bytes);
        let private_key = seal(server_key, rng, &kid, &pkcs8)?;
        Ok(Self {
            kid,
            alg: alg.name().to_owned(),
            created_at: now,
            publish_at: now,
            sign_from,
            retire_at: None,
            private_key,
        })
    }

    /// The algorithm it signs with; `None` for a row naming one this build does not know.
    pub fn signing_alg(&self) -> Option<SigningAlg> {
        SigningAlg::from_name(&self.alg)
    }

    /// The public half, as the JWKS lists it.
    pub fn public_jwk(&self, server_key: &ServerKey) -> Result<PublicJwk, SigningKeyError> {
        use aws_lc_rs::signature::KeyPair as _;

        let (kty, params) = match self.open(server_key)?.pair {
            OpenedPair::Rsa(pair) => {
                let public = pair.public_key();
                let params = JwkParams::Rsa {
                    n: URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
                    e: URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
                };
                ("RSA", params)
            }
            OpenedPair::Ec(pair) => {
                // The uncompressed point: 0x04 || x || y.
                let point = pair.public_key().as_ref();
                let coordinates = point.get(1..).filter(|c| c.len() == 64).ok_or_else(|| {
                    SigningKeyError::Unseal {
                        kid: self.kid.clone(),
                    }
                })?;
                let (x, y) = coordinates.split_at(32);
                let params = JwkParams::Ec {
                    crv: "P-256".to_owned(),
                    x: URL_SAFE_NO_PAD.encode(x),
                    y: URL_SAFE_NO_PAD.encode(y),
                };
                ("EC", params)
            }
        };
        Ok(PublicJwk {
            kty: kty.to_owned(),
            kid: self.kid.clone(),
            use_: "sig".to_owned(),
            alg: self.alg.clone(),
            params,
        })
    }

    /// A compact JWS of `claims` with `typ: JWT`, its header naming this key's kid. Opens the
    /// key each time: what signs on a request path keeps an [`OpenedKey`] instead.
    pub fn sign_jws<C: serde::Serialize>(
        &self,
        server_key: &ServerKey,
        claims: &C,
    ) -> Result<String, SigningKeyError> {
        let payload = serde_json::to_vec(claims).map_err(|_| SigningKeyError::Signing {
            kid: self.kid.clone(),
        })?;
        self.open(server_key)?.sign_jws("JWT", &payload)
    }

    /// The private key, unsealed and parsed for its algorithm.
    pub fn open(&self, server_key: &ServerKey) -> Result<OpenedKey, SigningKeyError> {
        let refused = || SigningKeyError::Unseal {
            kid: self.kid.clone(),
        };
        let pkcs8 = unseal(server_key, &self.kid, &self.private_key)?;
        let pair = match self.signing_alg().ok_or_else(refused)? {
            SigningAlg::Rs256 => {
                OpenedPair::Rsa(aws_lc_rs::rsa::KeyPair::from_pkcs8(&pkcs8).map_err(|_| refused())?)
            }
            SigningAlg::Es256 => OpenedPair::Ec(
                aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
                    &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    &pkcs8,
                )
                .map_err(|_| refused())?,
            ),
        };
        Ok(OpenedKey {
            kid: self.kid.clone(),
            pair,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::SystemRandom;

    fn fresh_key(server_key: &ServerKey) -> SigningKey {
        fresh_key_for(server_key, SigningAlg::Rs256)
    }

    fn fresh_key_for(server_key: &ServerKey, alg: SigningAlg) -> SigningKey {
        SigningKey::generate(
            server_key,
            &SystemRandom,
            alg,
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
    fn an_es256_key_signs_tokens_its_ec_jwk_verifies() {
        let server_key = ServerKey::generate(&SystemRandom);
        let key = fresh_key_for(&server_key, SigningAlg::Es256);
        let jwk = key.public_jwk(&server_key).unwrap();
        assert_eq!((jwk.kty.as_str(), jwk.alg.as_str()), ("EC", "ES256"));
        let JwkParams::Ec { crv, x, y } = &jwk.params else {
            panic!("not an EC JWK: {jwk:?}");
        };
        assert_eq!(crv, "P-256");
        assert_eq!((x.len(), y.len()), (43, 43));

        let claims = serde_json::json!({"sub": "005", "aud": "client", "exp": 4_000_000_000u64});
        let token = key.sign_jws(&server_key, &claims).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(serde_json::to_value(&jwk).unwrap()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.set_audience(&["client"]);
        let verified = jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(),
            &validation,
        )
        .unwrap();
        assert_eq!(verified.claims, claims);
    }

    #[test]
    fn an_rs256_signature_is_the_same_bytes_for_the_same_claims() {
        // What lets a replay inside the retry window answer the very ID token it answered.
        let server_key = ServerKey::generate(&SystemRandom);
        let key = fresh_key(&server_key);
        let opened = key.open(&server_key).unwrap();
        let payload = br#"{"sub":"005"}"#;
        assert_eq!(
            opened.sign_jws("JWT", payload).unwrap(),
            opened.sign_jws("JWT", payload).unwrap()
        );
        let header = jsonwebtoken::decode_header(opened.sign_jws("JWT", payload).unwrap()).unwrap();
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        assert_eq!(header.kid.as_deref(), Some(key.kid.as_str()));
    }
}
