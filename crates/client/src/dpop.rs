//! DPoP (RFC 9449) on the client: the P-256 key a credential's tokens are bound to, the proofs
//! it signs, and the nonces servers hand out.
//!
//! The key is made once per credential (at login) and kept with the tokens in the encrypted
//! store, across every rotation: a refresh token bound to it is worthless without it. Losing it
//! means logging in again ([`crate::ReauthReason::DpopKeyLost`]), never falling back to Bearer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk,
};
use jsonwebtoken::{Algorithm, Header};
use reqwest::header::{HeaderMap, HeaderValue};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tessera_proto::dpop::DPOP_NONCE_HEADER;
use tessera_proto::dpop::{access_token_hash, jwk_thumbprint, normalize_htu, PROOF_TYP};
use zeroize::Zeroizing;

use crate::clock::Clock;
use crate::error::ClientError;

/// Random bytes in a proof's `jti`: 128 bits, so two proofs never share one.
const JTI_BYTES: usize = 16;

/// One P-256 key that signs DPoP proofs (ES256). Cheap to clone (shared); its `Debug` shows
/// only the thumbprint, and the PKCS#8 bytes are wiped when the last clone drops.
///
/// In the credential it is stored as base64url PKCS#8, inside the encrypted file.
#[derive(Clone)]
pub struct DpopKey {
    inner: Arc<KeyMaterial>,
}

struct KeyMaterial {
    /// PKCS#8 v1, kept to be stored again with the credential.
    pkcs8: Zeroizing<Vec<u8>>,
    /// The same key parsed once (aws-lc-rs, jsonwebtoken's own backend): parsing a P-256
    /// PKCS#8 costs about 10 µs, two thirds of a signature again, and jsonwebtoken's `encode`
    /// parses it again for every token it signs. aws-lc frees the key's memory cleansed.
    signing: EcdsaKeyPair,
    /// Every proof's header is the same bytes: `{typ, alg, jwk}`, base64url, with its dot.
    encoded_header: String,
    jwk: Jwk,
    thumbprint: String,
}

impl std::fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopKey")
            .field("thumbprint", &self.inner.thumbprint)
            .finish_non_exhaustive()
    }
}

impl PartialEq for DpopKey {
    /// Two keys are the same key when their public halves are (the thumbprint says so).
    fn eq(&self, other: &Self) -> bool {
        self.inner.thumbprint == other.inner.thumbprint
    }
}

impl Eq for DpopKey {}

/// The claims of a proof (RFC 9449 §4.2).
#[derive(Serialize)]
struct ProofClaims<'a> {
    jti: String,
    htm: &'a str,
    htu: String,
    iat: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ath: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
}

fn key_error(what: impl std::fmt::Display) -> ClientError {
    ClientError::Protocol(format!("DPoP key: {what}"))
}

impl DpopKey {
    /// A new P-256 key from the OS CSPRNG (aws-lc-rs).
    pub fn generate() -> Result<Self, ClientError> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| key_error("cannot generate a P-256 key"))?;
        let document = pair
            .to_pkcs8v1()
            .map_err(|_| key_error("cannot encode the key as PKCS#8"))?;
        Self::from_pkcs8(document.as_ref())
    }

    /// The key from its PKCS#8 (v1 or v2) DER bytes; it must be a P-256 key.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, ClientError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
            .map_err(|_| key_error("not a P-256 PKCS#8 private key"))?;
        // The uncompressed point: 0x04, then x and y, 32 bytes each.
        let point = pair.public_key().as_ref();
        let (x, y) = match point {
            [0x04, coordinates @ ..] if coordinates.len() == 64 => coordinates.split_at(32),
            _ => return Err(key_error("unexpected public key encoding")),
        };
        let jwk = Jwk {
            common: CommonParameters::default(),
            algorithm: AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                key_type: EllipticCurveKeyType::EC,
                curve: EllipticCurve::P256,
                x: URL_SAFE_NO_PAD.encode(x),
                y: URL_SAFE_NO_PAD.encode(y),
            }),
        };
        let public = serde_json::to_value(&jwk).map_err(key_error)?;
        let thumbprint =
            jwk_thumbprint(&public).ok_or_else(|| key_error("no thumbprint for the JWK"))?;
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some(PROOF_TYP.to_owned());
        header.jwk = Some(jwk.clone());
        let header_json = serde_json::to_vec(&header).map_err(key_error)?;
        let encoded_header = format!("{}.", URL_SAFE_NO_PAD.encode(header_json));
        Ok(Self {
            inner: Arc::new(KeyMaterial {
                pkcs8: Zeroizing::new(pkcs8.to_vec()),
                signing: pair,
                encoded_header,
                jwk,
                thumbprint,
            }),
        })
    }

    /// The public key as a JWK (`kty`, `crv`, `x`, `y`): what a proof's header carries.
    pub fn public_jwk(&self) -> serde_json::Value {
        serde_json::to_value(&self.inner.jwk).unwrap_or_default()
    }

    /// The RFC 7638 thumbprint of [`Self::public_jwk`]: what a server binds tokens to (`jkt`).
    pub fn thumbprint(&self) -> String {
        self.inner.thumbprint.clone()
    }

    /// A fresh proof for `method` on `url`: header `{typ: dpop+jwt, alg: ES256, jwk}`, claims
    /// `jti` (16 random bytes), `htm`, `htu` (`url` normalised, without query and fragment),
    /// `iat` = `now_secs`, `ath` when `access_token` is given (API calls), `nonce` when given.
    pub fn proof(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
        now_secs: i64,
    ) -> Result<String, ClientError> {
        let htu = normalize_htu(url)
            .ok_or_else(|| key_error(format!("{url:?} is not an absolute http(s) URL")))?;
        let mut jti = [0u8; JTI_BYTES];
        crate::store::fill_random(&mut jti);
        let claims = ProofClaims {
            jti: URL_SAFE_NO_PAD.encode(jti),
            htm: method,
            htu,
            iat: now_secs,
            ath: access_token.map(access_token_hash),
            nonce,
        };
        let claims_json = serde_json::to_vec(&claims).map_err(key_error)?;
        let mut proof = self.inner.encoded_header.clone();
        URL_SAFE_NO_PAD.encode_string(claims_json, &mut proof);
        let signature = self
            .inner
            .signing
            .sign(&aws_lc_rs::rand::SystemRandom::new(), proof.as_bytes())
            .map_err(|_| key_error("cannot sign a proof"))?;
        proof.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut proof);
        Ok(proof)
    }
}

impl Serialize for DpopKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let encoded = Zeroizing::new(URL_SAFE_NO_PAD.encode(self.inner.pkcs8.as_slice()));
        serializer.serialize_str(&encoded)
    }
}

impl<'de> Deserialize<'de> for DpopKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let encoded = Zeroizing::new(String::deserialize(deserializer)?);
        let der = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(encoded.as_bytes())
                .map_err(serde::de::Error::custom)?,
        );
        Self::from_pkcs8(&der).map_err(serde::de::Error::custom)
    }
}

/// A stored key that does not read is `None`, not a credential that does not load: the token
/// manager then asks for a login ([`crate::ReauthReason::DpopKeyLost`]) instead of failing on
/// every call with a storage error.
pub(crate) fn lenient_key<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DpopKey>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(deserializer)?;
    Ok(match value {
        None | Some(serde_json::Value::Null) => None,
        Some(value) => match DpopKey::deserialize(value) {
            Ok(key) => Some(key),
            Err(error) => {
                tracing::warn!(%error, "the stored DPoP key cannot be read");
                None
            }
        },
    })
}

/// The last `DPoP-Nonce` each origin sent, for one credential (RFC 9449 §8, §9): the next proof
/// to that origin carries it.
#[derive(Debug, Default)]
pub(crate) struct NonceCache {
    by_origin: Mutex<HashMap<String, String>>,
}

fn origin_of(url: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()
        .map(|u| u.origin().ascii_serialization())
}

impl NonceCache {
    fn nonces(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.by_origin.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, url: &str) -> Option<String> {
        self.nonces().get(&origin_of(url)?).cloned()
    }

    /// Keeps the response's `DPoP-Nonce`, if any, for `url`'s origin; whether there was one.
    pub fn remember(&self, url: &str, headers: &HeaderMap) -> bool {
        let Some(nonce) = headers
            .get(DPOP_NONCE_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
        else {
            return false;
        };
        if let Some(origin) = origin_of(url) {
            self.nonces().insert(origin, nonce.to_owned());
        }
        true
    }
}

/// What signs the proofs of one credential's requests: its key, its nonces, and the server's
/// time (by the offset learnt from its `Date` header, so that a skewed local clock does not
/// put `iat` outside the server's window).
#[derive(Clone)]
pub(crate) struct Prover {
    pub key: DpopKey,
    pub nonces: Arc<NonceCache>,
    pub clock: Arc<dyn Clock>,
    pub clock_offset_ms: i64,
}

impl Prover {
    /// The `DPoP` header value for `method` on `url`, with the cached nonce of its origin;
    /// marked sensitive so that no debug output shows it.
    pub fn header(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
    ) -> Result<HeaderValue, ClientError> {
        let nonce = self.nonces.get(url);
        let now_secs = self
            .clock
            .now_ms()
            .saturating_add(self.clock_offset_ms)
            .div_euclid(1000);
        let proof = self
            .key
            .proof(method, url, access_token, nonce.as_deref(), now_secs)?;
        let mut value = HeaderValue::from_str(&proof).map_err(key_error)?;
        value.set_sensitive(true);
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    const NOW: i64 = 1_800_000_000;

    /// The proof's header and claims, after checking its signature with the JWK it carries.
    fn verified(proof: &str) -> (serde_json::Value, serde_json::Value) {
        let header = jsonwebtoken::decode_header(proof).unwrap();
        let jwk = header.jwk.clone().unwrap();
        let key = DecodingKey::from_jwk(&jwk).unwrap();
        let mut validation = Validation::new(Algorithm::ES256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        let claims = jsonwebtoken::decode::<serde_json::Value>(proof, &key, &validation)
            .unwrap()
            .claims;
        let header_json = URL_SAFE_NO_PAD
            .decode(proof.split('.').next().unwrap())
            .unwrap();
        (serde_json::from_slice(&header_json).unwrap(), claims)
    }

    #[test]
    fn a_proof_carries_the_public_key_and_the_request_it_is_for() {
        let key = DpopKey::generate().unwrap();
        let proof = key
            .proof(
                "POST",
                "HTTPS://Login.Example.com:443/services/oauth2/token?x=1#f",
                None,
                None,
                NOW,
            )
            .unwrap();
        let (header, claims) = verified(&proof);
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["jwk"], key.public_jwk());
        assert!(header["jwk"].get("d").is_none(), "{header}");
        assert_eq!(claims["htm"], "POST");
        assert_eq!(
            claims["htu"],
            "https://login.example.com/services/oauth2/token"
        );
        assert_eq!(claims["iat"], NOW);
        assert!(claims.get("ath").is_none() && claims.get("nonce").is_none());
        let jti = URL_SAFE_NO_PAD
            .decode(claims["jti"].as_str().unwrap())
            .unwrap();
        assert!(jti.len() >= 16);
    }

    #[test]
    fn an_api_proof_names_the_access_token_hash_and_the_nonce() {
        let key = DpopKey::generate().unwrap();
        let proof = key
            .proof(
                "GET",
                "https://api.example.com/data?q=1",
                Some("the-token"),
                Some("n-1"),
                NOW,
            )
            .unwrap();
        let (_, claims) = verified(&proof);
        assert_eq!(claims["ath"], access_token_hash("the-token"));
        assert_eq!(claims["nonce"], "n-1");
        assert_eq!(claims["htu"], "https://api.example.com/data");
    }

    #[test]
    fn every_proof_has_a_fresh_jti() {
        let key = DpopKey::generate().unwrap();
        let jti = |_| {
            let proof = key
                .proof("GET", "https://a.example/", None, None, NOW)
                .unwrap();
            verified(&proof).1["jti"].as_str().unwrap().to_owned()
        };
        let seen: std::collections::HashSet<String> = (0..20).map(jti).collect();
        assert_eq!(seen.len(), 20);
    }

    #[test]
    fn a_relative_url_makes_no_proof() {
        let key = DpopKey::generate().unwrap();
        assert!(key.proof("GET", "/token", None, None, NOW).is_err());
    }

    #[test]
    fn the_key_survives_serialisation_and_keeps_its_thumbprint() {
        let key = DpopKey::generate().unwrap();
        let stored = serde_json::to_string(&key).unwrap();
        let read: DpopKey = serde_json::from_str(&stored).unwrap();
        assert_eq!(read.thumbprint(), key.thumbprint());
        assert_eq!(
            Some(key.thumbprint()),
            jwk_thumbprint(&key.public_jwk()),
            "the thumbprint is RFC 7638's"
        );
        // A proof signed by the read key verifies with the original's public key.
        let proof = read
            .proof("GET", "https://a.example/", None, None, NOW)
            .unwrap();
        assert_eq!(verified(&proof).0["jwk"], key.public_jwk());
        assert_ne!(DpopKey::generate().unwrap(), key);
    }

    #[test]
    fn debug_shows_the_thumbprint_and_never_the_private_key() {
        let key = DpopKey::generate().unwrap();
        let shown = format!("{key:?}");
        let stored = serde_json::to_string(&key).unwrap();
        assert!(shown.contains(&key.thumbprint()), "{shown}");
        assert!(!shown.contains(stored.trim_matches('"')), "{shown}");
    }

    #[test]
    fn an_unreadable_stored_key_reads_as_none() {
        #[derive(Deserialize)]
        struct Holder {
            #[serde(default, deserialize_with = "lenient_key")]
            key: Option<DpopKey>,
        }
        let read: Holder = serde_json::from_str(r#"{"key": "bm90IGEga2V5"}"#).unwrap();
        assert!(read.key.is_none());
        let read: Holder = serde_json::from_str("{}").unwrap();
        assert!(read.key.is_none());
        let key = DpopKey::generate().unwrap();
        let text = format!(r#"{{"key": {}}}"#, serde_json::to_string(&key).unwrap());
        let read: Holder = serde_json::from_str(&text).unwrap();
        assert_eq!(read.key, Some(key));
    }

    #[test]
    fn nonces_are_kept_per_origin() {
        let cache = NonceCache::default();
        let mut headers = HeaderMap::new();
        headers.insert(DPOP_NONCE_HEADER, HeaderValue::from_static("n-a"));
        assert!(cache.remember("https://a.example/token", &headers));
        assert_eq!(
            cache.get("https://a.example/other?x").as_deref(),
            Some("n-a")
        );
        assert_eq!(cache.get("https://b.example/token"), None);
        assert!(!cache.remember("https://a.example/token", &HeaderMap::new()));
        assert_eq!(cache.get("https://a.example/").as_deref(), Some("n-a"));
    }
}
