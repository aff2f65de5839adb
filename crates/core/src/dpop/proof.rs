//! The DPoP proof validator (RFC 9449 §4.3), one for the token endpoint, the resource server and
//! userinfo. The checks, in order (docs/dpop.md, "Proof validation"): one compact JWS; the header
//! (`typ`, `alg`, a public `jwk` fit for the `alg`); the signature under that `jwk`; then the
//! claims `htm`, `htu`, `iat`, `jti`, `ath` and `nonce`. Replays are the caller's to catch, with
//! [`super::SeenProofs`]: only it knows the client the replay key names.
//!
//! A client signs every proof with the same key, so its proofs' headers are the same bytes. A
//! header that passed its checks and verified a signature is remembered, by the SHA-256 of its
//! encoded form, with its parsed key and thumbprint: the next proof from that client skips the
//! JSON, the key parsing and the thumbprint, and pays only the signature. Only headers that
//! verified a signature are remembered, so junk cannot push real clients' keys out.
//!
//! An elliptic-curve key is remembered parsed (aws-lc-rs's `ParsedPublicKey`, the library
//! jsonwebtoken itself verifies with), which spares each proof jsonwebtoken's copy of the key
//! and aws-lc's parse of the point: about 1 µs together, against about 40 µs for the P-256
//! verification itself, which nothing can spare (`tessera bench` prints both).

use std::borrow::Cow;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use aws_lc_rs::signature::{
    ParsedPublicKey, UnparsedPublicKey, VerificationAlgorithm, ECDSA_P256_SHA256_FIXED,
    ECDSA_P384_SHA384_FIXED, ED25519,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::DecodingKey;
use lru::LruCache;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tessera_proto::dpop::{
    access_token_hash, jwk_thumbprint, normalize_htu, MAX_JTI_BYTES, PROOF_TYP,
};

use crate::dpop::{DpopConfig, NonceIssuer, ProofAlg, ProofError};
use crate::time::Timestamp;
use crate::tokens::hash::{secret_hash, Hash};
use crate::tokens::server_key::ServerKey;

/// The longest proof read at all: a proof with a 4096-bit RSA key is under 2 KB, and anything
/// much longer is only there to cost us base64 and JSON work.
const MAX_PROOF_BYTES: usize = 8 * 1024;
/// Verified headers remembered at most (a key and a thumbprint each, under 1 KB).
const TRUSTED_HEADERS: usize = 4096;
/// JWK members that only a private or symmetric key has (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC
/// 8037 §2): a `jwk` with any of them is refused, whatever its `kty`.
const PRIVATE_JWK_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The request a proof must match.
#[derive(Debug, Clone, Copy)]
pub struct ProofRequest<'a> {
    /// The HTTP method, compared exactly (`htm` is case-sensitive, RFC 9449 §4.3 item 8).
    pub method: &'a str,
    /// The absolute URL as the server sees it; its query and fragment are ignored.
    pub uri: &'a str,
    /// The access token of a resource request: the proof's `ath` must be its hash.
    pub access_token: Option<&'a str>,
    /// Whether the proof must carry a current server nonce.
    pub nonce_required: bool,
}

/// What a valid proof establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    /// The RFC 7638 thumbprint of the proof's key: what a token is bound to.
    pub jkt: String,
    /// The normalised `htu`.
    pub htu: String,
    /// SHA-256 of the `jti`, for the replay key.
    pub jti_hash: Hash,
    /// The proof's `iat`, to the second.
    pub iat: Timestamp,
    /// When the proof's `iat` leaves the window, so that its replay entry may be forgotten.
    pub expires_at: Timestamp,
}

/// A header that passed every check and verified a signature.
struct TrustedHeader {
    alg: ProofAlg,
    key: ProofKey,
    jkt: String,
}

/// The public key of a proof's `jwk`, ready to verify with.
enum ProofKey {
    /// P-256, P-384 or Ed25519: parsed and validated once.
    Parsed(ParsedPublicKey),
    /// RSA (PS256), through jsonwebtoken: its verification is cheap, and rarely used.
    Rsa(DecodingKey),
}

impl ProofKey {
    /// Whether `signature` (base64url, as in the proof) signs `message` under this key.
    fn verifies(&self, alg: ProofAlg, message: &[u8], signature: &str) -> bool {
        match self {
            Self::Parsed(key) => URL_SAFE_NO_PAD
                .decode(signature)
                .is_ok_and(|signature| key.verify_sig(message, &signature).is_ok()),
            Self::Rsa(key) => {
                jsonwebtoken::crypto::verify(signature, message, key, alg.jose()).unwrap_or(false)
            }
        }
    }
}

/// The header members the checks read; the others are ignored.
#[derive(Deserialize)]
struct Header {
    typ: Option<String>,
    alg: Option<String>,
    jwk: Option<Value>,
    /// Extensions we would have to understand (RFC 7515 §4.1.11): we understand none.
    crit: Option<Value>,
}

/// The claims the checks read. Strings borrow from the decoded payload where they can.
#[derive(Deserialize)]
struct Claims<'a> {
    #[serde(borrow)]
    htm: Option<Cow<'a, str>>,
    #[serde(borrow)]
    htu: Option<Cow<'a, str>>,
    /// A NumericDate, which may have a fraction.
    iat: Option<f64>,
    #[serde(borrow)]
    jti: Option<Cow<'a, str>>,
    #[serde(borrow)]
    ath: Option<Cow<'a, str>>,
    #[serde(borrow)]
    nonce: Option<Cow<'a, str>>,
}

/// Checks proofs against requests; see the module documentation for the order of the checks.
pub struct ProofValidator {
    config: DpopConfig,
    nonces: NonceIssuer,
    trusted_headers: Mutex<LruCache<Hash, Arc<TrustedHeader>>>,
}

impl std::fmt::Debug for ProofValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProofValidator")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ProofValidator {
    pub fn new(config: DpopConfig, key: &ServerKey) -> Self {
        let nonces = NonceIssuer::new(key, config.nonce_step_secs);
        Self {
            config,
            nonces,
            trusted_headers: Mutex::new(LruCache::new(
                NonZeroUsize::new(TRUSTED_HEADERS).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }

    pub fn config(&self) -> &DpopConfig {
        &self.config
    }

    /// The nonces this validator accepts: their `current` value is what a `DPoP-Nonce` header
    /// carries.
    pub fn nonces(&self) -> &NonceIssuer {
        &self.nonces
    }

    /// Checks `proof` (the `DPoP` header's value) against `request` at `now`.
    pub fn check(
        &self,
        proof: &str,
        request: &ProofRequest<'_>,
        now: Timestamp,
    ) -> Result<VerifiedProof, ProofError> {
        if proof.len() > MAX_PROOF_BYTES {
            return Err(ProofError::Malformed);
        }
        let (signed_part, signature) = proof.rsplit_once('.').ok_or(ProofError::Malformed)?;
        let (encoded_header, encoded_claims) =
            signed_part.split_once('.').ok_or(ProofError::Malformed)?;
        if encoded_header.is_empty()
            || encoded_claims.is_empty()
            || encoded_claims.contains('.')
            || signature.is_empty()
        {
            return Err(ProofError::Malformed);
        }

        let header = self.trusted_header(encoded_header, signed_part, signature)?;

        let claims_json = URL_SAFE_NO_PAD
            .decode(encoded_claims)
            .map_err(|_| ProofError::Malformed)?;
        let claims: Claims<'_> =
            serde_json::from_slice(&claims_json).map_err(|_| ProofError::Malformed)?;

        if claims.htm.as_deref() != Some(request.method) {
            return Err(ProofError::MethodMismatch);
        }
        let htu = match (
            claims.htu.as_deref().and_then(normalize_htu),
            normalize_htu(request.uri),
        ) {
            (Some(claimed), Some(requested)) if claimed == requested => requested,
            _ => return Err(ProofError::UriMismatch),
        };
        let iat_secs = self.issued_at_in_window(claims.iat, now)?;
        let jti = claims.jti.as_deref().unwrap_or_default();
        if jti.is_empty() {
            return Err(ProofError::MissingJti);
        }
        if jti.len() > MAX_JTI_BYTES {
            return Err(ProofError::JtiTooLong);
        }
        if let Some(access_token) = request.access_token {
            let ath = claims
                .ath
                .as_deref()
                .ok_or(ProofError::MissingAccessTokenHash)?;
            let expected = access_token_hash(access_token);
            if !bool::from(expected.as_bytes().ct_eq(ath.as_bytes())) {
                return Err(ProofError::WrongAccessTokenHash);
            }
        }
        if request.nonce_required
            && !claims
                .nonce
                .as_deref()
                .is_some_and(|nonce| self.nonces.accepts(nonce, now))
        {
            return Err(ProofError::UseNonce);
        }

        Ok(VerifiedProof {
            jkt: header.jkt.clone(),
            htu,
            jti_hash: secret_hash(jti),
            iat: Timestamp(iat_secs.saturating_mul(1000)),
            // The first second at which `iat` is out of the window (see `issued_at_in_window`).
            expires_at: Timestamp(
                iat_secs
                    .saturating_add(self.past_secs())
                    .saturating_add(1)
                    .saturating_mul(1000),
            ),
        })
    }

    /// The header, checked and with its signature verified: from the cache when these exact
    /// header bytes verified a signature before.
    fn trusted_header(
        &self,
        encoded_header: &str,
        signed_part: &str,
        signature: &str,
    ) -> Result<Arc<TrustedHeader>, ProofError> {
        let header_hash: Hash = Sha256::digest(encoded_header.as_bytes()).into();
        let cached = self
            .trusted_headers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&header_hash)
            .cloned();
        let was_cached = cached.is_some();
        let header = match cached {
            Some(header) => header,
            None => Arc::new(self.check_header(encoded_header)?),
        };
        if !header
            .key
            .verifies(header.alg, signed_part.as_bytes(), signature)
        {
            return Err(ProofError::BadSignature);
        }
        if !was_cached {
            self.trusted_headers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .put(header_hash, Arc::clone(&header));
        }
        Ok(header)
    }

    /// RFC 9449 §4.3 items 4 to 6: `typ`, `alg` and a public `jwk` of the `alg`'s kind.
    fn check_header(&self, encoded_header: &str) -> Result<TrustedHeader, ProofError> {
        let json = URL_SAFE_NO_PAD
            .decode(encoded_header)
            .map_err(|_| ProofError::Malformed)?;
        let header: Header = serde_json::from_slice(&json).map_err(|_| ProofError::Malformed)?;
        if header.crit.is_some() {
            return Err(ProofError::Malformed);
        }
        if header.typ.as_deref() != Some(PROOF_TYP) {
            return Err(ProofError::WrongType);
        }
        let alg = header
            .alg
            .as_deref()
            .and_then(ProofAlg::from_name)
            .filter(|alg| self.config.algorithms.contains(alg))
            .ok_or(ProofError::UnsupportedAlgorithm)?;
        let jwk = header.jwk.ok_or(ProofError::BadKey)?;
        let members = jwk.as_object().ok_or(ProofError::BadKey)?;
        if members.get("kty").and_then(Value::as_str) == Some("oct")
            || PRIVATE_JWK_MEMBERS
                .iter()
                .any(|name| members.contains_key(*name))
        {
            return Err(ProofError::PrivateKeyInJwk);
        }
        let key = public_key_for(alg, &jwk).ok_or(ProofError::BadKey)?;
        let jkt = jwk_thumbprint(&jwk).ok_or(ProofError::BadKey)?;
        Ok(TrustedHeader { alg, key, jkt })
    }

    /// The proof's `iat` in whole seconds, when it is within [now - past, now + future]
    /// (compared in seconds: `iat` has no finer unit).
    fn issued_at_in_window(&self, iat: Option<f64>, now: Timestamp) -> Result<i64, ProofError> {
        let iat = iat
            .filter(|iat| iat.is_finite())
            .map(f64::floor)
            // Far outside any window: saturating here only turns nonsense into a refusal.
            .map(|iat| iat as i64)
            .ok_or(ProofError::IssuedAtOutOfWindow)?;
        let now_secs = now.seconds();
        let earliest = now_secs.saturating_sub(self.past_secs());
        let latest =
            now_secs.saturating_add(i64::try_from(self.config.iat_future_secs).unwrap_or(i64::MAX));
        if iat < earliest || iat > latest {
            return Err(ProofError::IssuedAtOutOfWindow);
        }
        Ok(iat)
    }

    fn past_secs(&self) -> i64 {
        i64::try_from(self.config.iat_past_secs).unwrap_or(i64::MAX)
    }
}

/// The verifying key of a public `jwk`, when its `kty` and curve are those `alg` signs with and
/// its members have the lengths of that curve (an RSA modulus of 2048 to 8192 bits). A point
/// that is not on its curve is refused here, by the parse.
fn public_key_for(alg: ProofAlg, jwk: &Value) -> Option<ProofKey> {
    let member = |name: &str| jwk.get(name).and_then(Value::as_str);
    // Base64url lengths without padding: 32 bytes make 43 characters, 48 make 64.
    let coordinate = |name: &str, length: usize| {
        member(name)
            .filter(|v| v.len() == length)
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
    };
    let parsed = |algorithm: &'static dyn VerificationAlgorithm, bytes: &[u8]| {
        UnparsedPublicKey::new(algorithm, bytes)
            .parse()
            .ok()
            .map(ProofKey::Parsed)
    };
    match alg {
        ProofAlg::ES256 | ProofAlg::ES384 => {
            let (crv, length, algorithm): (_, _, &'static dyn VerificationAlgorithm) = match alg {
                ProofAlg::ES256 => ("P-256", 43, &ECDSA_P256_SHA256_FIXED),
                _ => ("P-384", 64, &ECDSA_P384_SHA384_FIXED),
            };
            if member("kty")? != "EC" || member("crv")? != crv {
                return None;
            }
            // The uncompressed point: 0x04, then x and y.
            let mut point = vec![0x04];
            point.extend(coordinate("x", length)?);
            point.extend(coordinate("y", length)?);
            parsed(algorithm, &point)
        }
        ProofAlg::EdDSA => {
            if member("kty")? != "OKP" || member("crv")? != "Ed25519" {
                return None;
            }
            parsed(&ED25519, &coordinate("x", 43)?)
        }
        ProofAlg::PS256 => {
            if member("kty")? != "RSA" {
                return None;
            }
            // 256 to 1024 bytes of modulus: 342 to 1366 characters.
            let n = member("n").filter(|n| (342..=1366).contains(&n.len()))?;
            DecodingKey::from_rsa_components(n, member("e")?)
                .ok()
                .map(ProofKey::Rsa)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::OnceLock;

    use aws_lc_rs::signature::KeyPair as _;
    use serde_json::json;

    use super::*;
    use crate::dpop::{replay_key, SeenProofs};
    use crate::time::SystemRandom;

    /// A whole second, so that `iat` offsets are exact.
    const NOW: Timestamp = Timestamp(1_780_000_020_000);
    const TOKEN_URI: &str = "https://server.example.com/token";
    const API_URI: &str = "https://server.example.com/services/data/v62.0/sobjects";
    const ACCESS_TOKEN: &str = "00Dxx0000001gEH!AQ4AQFakeAccessTokenValue";

    /// A client's key pair, made with aws-lc-rs, and what a proof maker needs of it.
    pub(crate) enum TestKey {
        Ecdsa(aws_lc_rs::signature::EcdsaKeyPair, ProofAlg),
        Ed25519(aws_lc_rs::signature::Ed25519KeyPair),
        Rsa(aws_lc_rs::rsa::KeyPair),
    }

    impl TestKey {
        pub(crate) fn generate(alg: ProofAlg) -> Self {
            use aws_lc_rs::signature::{
                ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING,
            };
            match alg {
                ProofAlg::ES256 => Self::Ecdsa(
                    aws_lc_rs::signature::EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                        .unwrap(),
                    alg,
                ),
                ProofAlg::ES384 => Self::Ecdsa(
                    aws_lc_rs::signature::EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING)
                        .unwrap(),
                    alg,
                ),
                ProofAlg::EdDSA => {
                    Self::Ed25519(aws_lc_rs::signature::Ed25519KeyPair::generate().unwrap())
                }
                ProofAlg::PS256 => Self::Rsa(
                    aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap(),
                ),
            }
        }

        pub(crate) fn alg(&self) -> ProofAlg {
            match self {
                Self::Ecdsa(_, alg) => *alg,
                Self::Ed25519(_) => ProofAlg::EdDSA,
                Self::Rsa(_) => ProofAlg::PS256,
            }
        }

        pub(crate) fn public_jwk(&self) -> Value {
            let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
            match self {
                Self::Ecdsa(pair, alg) => {
                    // The uncompressed point: 0x04 || x || y.
                    let point = &pair.public_key().as_ref()[1..];
                    let (x, y) = point.split_at(point.len() / 2);
                    let crv = if *alg == ProofAlg::ES256 {
                        "P-256"
                    } else {
                        "P-384"
                    };
                    json!({"kty": "EC", "crv": crv, "x": b64(x), "y": b64(y)})
                }
                Self::Ed25519(pair) => {
                    json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())})
                }
                Self::Rsa(pair) => {
                    let public = pair.public_key();
                    json!({
                        "kty": "RSA",
                        "n": b64(public.modulus().big_endian_without_leading_zero()),
                        "e": b64(public.exponent().big_endian_without_leading_zero()),
                    })
                }
            }
        }

        pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
            let rng = aws_lc_rs::rand::SystemRandom::new();
            match self {
                Self::Ecdsa(pair, _) => pair.sign(&rng, message).unwrap().as_ref().to_vec(),
                Self::Ed25519(pair) => pair.sign(message).as_ref().to_vec(),
                Self::Rsa(pair) => {
                    let mut signature = vec![0; pair.public_modulus_len()];
                    pair.sign(
                        &aws_lc_rs::signature::RSA_PSS_SHA256,
                        &rng,
                        message,
                        &mut signature,
                    )
                    .unwrap();
                    signature
                }
            }
        }
    }

    /// RSA keys take a while to make: one for every test that needs one.
    fn rsa_key() -> &'static TestKey {
        static KEY: OnceLock<TestKey> = OnceLock::new();
        KEY.get_or_init(|| TestKey::generate(ProofAlg::PS256))
    }

    /// The compact JWS of `header` and `claims`, signed by `key` whatever the header says.
    pub(crate) fn sign_proof(key: &TestKey, header: &Value, claims: &Value) -> String {
        let signed_part = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = URL_SAFE_NO_PAD.encode(key.sign(signed_part.as_bytes()));
        format!("{signed_part}.{signature}")
    }

    /// What an honest client puts in the header.
    pub(crate) fn header_for(key: &TestKey) -> Value {
        json!({"typ": PROOF_TYP, "alg": key.alg().as_str(), "jwk": key.public_jwk()})
    }

    /// What an honest client claims for a token request at `NOW`.
    fn token_claims() -> Value {
        json!({"htm": "POST", "htu": TOKEN_URI, "iat": NOW.seconds(), "jti": "e1j3V_bKic8-LAEB"})
    }

    fn token_request() -> ProofRequest<'static> {
        ProofRequest {
            method: "POST",
            uri: TOKEN_URI,
            access_token: None,
            nonce_required: false,
        }
    }

    fn api_request() -> ProofRequest<'static> {
        ProofRequest {
            method: "GET",
            uri: API_URI,
            access_token: Some(ACCESS_TOKEN),
            nonce_required: false,
        }
    }

    fn api_claims() -> Value {
        json!({
            "htm": "GET", "htu": API_URI, "iat": NOW.seconds(), "jti": "api-1",
            "ath": access_token_hash(ACCESS_TOKEN),
        })
    }

    fn validator() -> ProofValidator {
        ProofValidator::new(DpopConfig::default(), &ServerKey::generate(&SystemRandom))
    }

    /// A client with an ES256 key and a validator with the defaults.
    struct World {
        key: TestKey,
        validator: ProofValidator,
    }

    impl World {
        fn new() -> Self {
            Self {
                key: TestKey::generate(ProofAlg::ES256),
                validator: validator(),
            }
        }

        /// A token request's proof, with the header and claims edited first.
        fn proof(&self, edit: impl FnOnce(&mut Value, &mut Value)) -> String {
            let (mut header, mut claims) = (header_for(&self.key), token_claims());
            edit(&mut header, &mut claims);
            sign_proof(&self.key, &header, &claims)
        }

        fn check_token_request(&self, proof: &str) -> Result<VerifiedProof, ProofError> {
            self.validator.check(proof, &token_request(), NOW)
        }

        /// The check of a token request's proof edited by `edit`.
        fn check_edited(
            &self,
            edit: impl FnOnce(&mut Value, &mut Value),
        ) -> Result<VerifiedProof, ProofError> {
            self.check_token_request(&self.proof(edit))
        }

        /// Asserts that a token request's proof is refused with `expected` for each of
        /// `values` put in the header member (or claim) `name`.
        fn assert_each_refused(
            &self,
            part: Part,
            name: &str,
            values: impl IntoIterator<Item = Value>,
            expected: ProofError,
        ) {
            for value in values {
                let label = value.to_string();
                let outcome = self.check_edited(|header, claims| match part {
                    Part::Header => header[name] = value,
                    Part::Claims => claims[name] = value,
                });
                assert_eq!(outcome, Err(expected), "{name}: {label}");
            }
        }
    }

    #[derive(Clone, Copy)]
    enum Part {
        Header,
        Claims,
    }

    #[test]
    fn an_honest_proof_of_each_algorithm_verifies_and_names_its_key() {
        let validator = validator();
        let generated: Vec<TestKey> = [ProofAlg::ES256, ProofAlg::ES384, ProofAlg::EdDSA]
            .into_iter()
            .map(TestKey::generate)
            .collect();
        for key in generated.iter().chain([rsa_key()]) {
            let proof = sign_proof(key, &header_for(key), &token_claims());
            let verified = validator
                .check(&proof, &token_request(), NOW)
                .unwrap_or_else(|e| panic!("{}: {e:?}", key.alg().as_str()));
            assert_eq!(
                verified,
                VerifiedProof {
                    jkt: jwk_thumbprint(&key.public_jwk()).unwrap(),
                    htu: TOKEN_URI.to_owned(),
                    jti_hash: secret_hash("e1j3V_bKic8-LAEB"),
                    iat: NOW,
                    expires_at: NOW.plus_secs(61),
                },
                "{}",
                key.alg().as_str()
            );
        }
    }

    #[test]
    fn a_proof_with_another_typ_or_none_is_refused() {
        let world = World::new();
        world.assert_each_refused(
            Part::Header,
            "typ",
            [json!("JWT"), json!("DPoP+JWT"), json!(null)],
            ProofError::WrongType,
        );
    }

    #[test]
    fn a_proof_with_alg_none_is_refused() {
        let world = World::new();
        let mut header = header_for(&world.key);
        header["alg"] = json!("none");
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(token_claims().to_string())
        );
        assert_eq!(
            world.check_token_request(&unsigned),
            Err(ProofError::Malformed)
        );
        assert_eq!(
            world.check_token_request(&format!("{unsigned}c2lnbmF0dXJl")),
            Err(ProofError::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn a_proof_with_a_symmetric_alg_is_refused_even_keyed_with_the_public_key() {
        let world = World::new();
        let public_key_bytes = world.key.public_jwk().to_string();
        for jwk in [
            world.key.public_jwk(),
            json!({"kty": "oct", "k": URL_SAFE_NO_PAD.encode(&public_key_bytes)}),
        ] {
            let header = json!({"typ": PROOF_TYP, "alg": "HS256", "jwk": jwk});
            let signed_part = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(token_claims().to_string())
            );
            let signature = jsonwebtoken::crypto::sign(
                signed_part.as_bytes(),
                &jsonwebtoken::EncodingKey::from_secret(public_key_bytes.as_bytes()).unwrap(),
                jsonwebtoken::Algorithm::HS256,
            )
            .unwrap();
            assert_eq!(
                world.check_token_request(&format!("{signed_part}.{signature}")),
                Err(ProofError::UnsupportedAlgorithm)
            );
        }
    }

    #[test]
    fn a_proof_with_an_algorithm_not_configured_is_refused() {
        let validator = ProofValidator::new(
            DpopConfig {
                algorithms: vec![ProofAlg::ES256],
                ..DpopConfig::default()
            },
            &ServerKey::generate(&SystemRandom),
        );
        let key = TestKey::generate(ProofAlg::EdDSA);
        let proof = sign_proof(&key, &header_for(&key), &token_claims());
        assert_eq!(
            validator.check(&proof, &token_request(), NOW),
            Err(ProofError::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn a_proof_whose_jwk_holds_a_private_or_symmetric_key_is_refused() {
        let world = World::new();
        for (member, value) in [("d", "c2VjcmV0"), ("k", "c2VjcmV0")] {
            assert_eq!(
                world.check_edited(|header, _| header["jwk"][member] = json!(value)),
                Err(ProofError::PrivateKeyInJwk),
                "{member}"
            );
        }
        assert_eq!(
            world.check_edited(|header, _| header["jwk"] = json!({"kty": "oct"})),
            Err(ProofError::PrivateKeyInJwk)
        );
        let rsa = rsa_key();
        let mut header = header_for(rsa);
        header["jwk"]["qi"] = json!("c2VjcmV0");
        assert_eq!(
            world.check_token_request(&sign_proof(rsa, &header, &token_claims())),
            Err(ProofError::PrivateKeyInJwk)
        );
    }

    #[test]
    fn a_proof_whose_jwk_is_missing_or_unfit_for_its_alg_is_refused() {
        let world = World::new();
        let p384 = TestKey::generate(ProofAlg::ES384).public_jwk();
        let ed25519 = TestKey::generate(ProofAlg::EdDSA).public_jwk();
        // A P-256 JWK whose point is not on the curve (y changed): an invalid-curve key.
        let mut off_curve = world.key.public_jwk();
        let mut y = URL_SAFE_NO_PAD
            .decode(off_curve["y"].as_str().unwrap())
            .unwrap();
        y[31] ^= 1;
        off_curve["y"] = json!(URL_SAFE_NO_PAD.encode(y));
        // The right lengths, not base64url.
        let mut not_base64 = world.key.public_jwk();
        not_base64["x"] = json!("!".repeat(43));
        world.assert_each_refused(
            Part::Header,
            "jwk",
            [
                json!(null),
                json!("a key"),
                p384,
                ed25519,
                rsa_key().public_jwk(),
                off_curve,
                not_base64,
            ],
            ProofError::BadKey,
        );
    }

    #[test]
    fn a_proof_with_a_bad_signature_is_refused() {
        let world = World::new();
        let other = TestKey::generate(ProofAlg::ES256);
        // Signed by another key than its jwk names.
        let forged = sign_proof(&other, &header_for(&world.key), &token_claims());
        assert_eq!(
            world.check_token_request(&forged),
            Err(ProofError::BadSignature)
        );
        // Claims changed after signing.
        let honest = world.proof(|_, _| {});
        let (signed_part, signature) = honest.rsplit_once('.').unwrap();
        let (header, _) = signed_part.split_once('.').unwrap();
        let mut claims = token_claims();
        claims["jti"] = json!("another");
        let tampered = format!(
            "{header}.{}.{signature}",
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        assert_eq!(
            world.check_token_request(&tampered),
            Err(ProofError::BadSignature)
        );
    }

    #[test]
    fn a_header_that_verified_before_still_needs_a_good_signature() {
        let world = World::new();
        assert!(world.check_edited(|_, _| {}).is_ok());
        let forged = sign_proof(
            &TestKey::generate(ProofAlg::ES256),
            &header_for(&world.key),
            &token_claims(),
        );
        assert_eq!(
            world.check_token_request(&forged),
            Err(ProofError::BadSignature)
        );
        assert!(world.check_edited(|_, _| {}).is_ok());
    }

    #[test]
    fn a_proof_that_is_not_one_compact_jws_is_refused() {
        let world = World::new();
        let honest = world.proof(|_, _| {});
        for malformed in [
            String::new(),
            "a.b".to_owned(),
            format!("{honest}.extra"),
            format!(".{honest}"),
            honest.replacen('.', "..", 1),
            format!("!{honest}"),
            format!(
                "{}.{}.c2ln",
                URL_SAFE_NO_PAD.encode("{"),
                URL_SAFE_NO_PAD.encode("{}")
            ),
            "a".repeat(MAX_PROOF_BYTES + 1),
        ] {
            assert_eq!(
                world.check_token_request(&malformed),
                Err(ProofError::Malformed),
                "{malformed}"
            );
        }
        assert_eq!(
            world.check_edited(|header, _| header["crit"] = json!(["exp"])),
            Err(ProofError::Malformed)
        );
        assert_eq!(
            world.check_edited(|_, claims| claims["iat"] = json!("now")),
            Err(ProofError::Malformed)
        );
    }

    #[test]
    fn a_proof_for_another_method_is_refused_and_htm_is_case_sensitive() {
        let world = World::new();
        world.assert_each_refused(
            Part::Claims,
            "htm",
            [json!("GET"), json!("post"), json!(null)],
            ProofError::MethodMismatch,
        );
    }

    #[test]
    fn a_proof_for_another_uri_is_refused() {
        let world = World::new();
        world.assert_each_refused(
            Part::Claims,
            "htu",
            [
                json!("https://server.example.com/services/oauth2/token"),
                json!("https://other.example.com/token"),
                json!("http://server.example.com/token"),
                json!("https://server.example.com:8443/token"),
                json!("/token"),
                json!(null),
            ],
            ProofError::UriMismatch,
        );
    }

    #[test]
    fn htu_matches_whatever_the_case_of_scheme_and_host_and_the_request_query() {
        let world = World::new();
        let verified = world
            .check_edited(|_, claims| claims["htu"] = json!("HTTPS://Server.Example.COM:443/token"))
            .unwrap();
        assert_eq!(verified.htu, TOKEN_URI);
        let with_query = ProofRequest {
            uri: "https://server.example.com/token?grant_type=refresh_token#f",
            ..token_request()
        };
        assert!(world
            .validator
            .check(&world.proof(|_, _| {}), &with_query, NOW)
            .is_ok());
    }

    #[test]
    fn iat_is_accepted_within_a_minute_past_and_ten_seconds_ahead_and_refused_beyond() {
        let world = World::new();
        let now = NOW.seconds();
        for offset in [-60, -10, 0, 10] {
            assert!(
                world
                    .check_edited(|_, claims| claims["iat"] = json!(now + offset))
                    .is_ok(),
                "{offset}"
            );
        }
        assert!(world
            .check_edited(|_, claims| claims["iat"] = json!(now as f64 + 9.5))
            .is_ok());
        world.assert_each_refused(
            Part::Claims,
            "iat",
            [-3600, -61, 11, 3600]
                .map(|offset| json!(now + offset))
                .into_iter()
                .chain([json!(null), json!(1e300)]),
            ProofError::IssuedAtOutOfWindow,
        );
    }

    #[test]
    fn a_proof_without_a_jti_or_with_one_over_512_bytes_is_refused() {
        let world = World::new();
        assert_eq!(
            world.check_edited(|_, claims| {
                claims.as_object_mut().unwrap().remove("jti");
            }),
            Err(ProofError::MissingJti)
        );
        assert_eq!(
            world.check_edited(|_, claims| claims["jti"] = json!("")),
            Err(ProofError::MissingJti)
        );
        assert_eq!(
            world.check_edited(|_, claims| claims["jti"] = json!("j".repeat(MAX_JTI_BYTES + 1))),
            Err(ProofError::JtiTooLong)
        );
        assert!(world
            .check_edited(|_, claims| claims["jti"] = json!("j".repeat(MAX_JTI_BYTES)))
            .is_ok());
    }

    #[test]
    fn a_replayed_proof_is_refused_by_the_seen_proofs() {
        let world = World::new();
        let seen = SeenProofs::new(100);
        let proof = world.proof(|_, _| {});
        let remember = || {
            let verified = world.check_token_request(&proof)?;
            let key = replay_key("client", &verified.htu, &verified.jti_hash);
            seen.remember(key, verified.expires_at, NOW)
        };
        assert_eq!(remember(), Ok(()));
        assert_eq!(remember(), Err(ProofError::Replayed));
        // A fresh jti from the same key is a new proof.
        let fresh = world.proof(|_, claims| claims["jti"] = json!("another"));
        let verified = world.check_token_request(&fresh).unwrap();
        assert_eq!(
            seen.remember(
                replay_key("client", &verified.htu, &verified.jti_hash),
                verified.expires_at,
                NOW
            ),
            Ok(())
        );
    }

    #[test]
    fn a_resource_request_needs_the_hash_of_its_access_token() {
        let world = World::new();
        let check = |edit: &dyn Fn(&mut Value)| {
            let mut claims = api_claims();
            edit(&mut claims);
            let proof = sign_proof(&world.key, &header_for(&world.key), &claims);
            world.validator.check(&proof, &api_request(), NOW)
        };
        assert!(check(&|_| {}).is_ok());
        assert_eq!(
            check(&|claims| {
                claims.as_object_mut().unwrap().remove("ath");
            }),
            Err(ProofError::MissingAccessTokenHash)
        );
        assert_eq!(
            check(&|claims| claims["ath"] = json!(access_token_hash("another token"))),
            Err(ProofError::WrongAccessTokenHash)
        );
        assert_eq!(
            check(&|claims| claims["ath"] = json!("")),
            Err(ProofError::WrongAccessTokenHash)
        );
    }

    #[test]
    fn a_required_nonce_must_be_present_and_current() {
        let world = World::new();
        let nonces = world.validator.nonces();
        let step = world.validator.config().nonce_step_secs;
        let demanding = ProofRequest {
            nonce_required: true,
            ..token_request()
        };
        let check = |nonce: Value| {
            let proof = world.proof(|_, claims| claims["nonce"] = nonce);
            world.validator.check(&proof, &demanding, NOW)
        };
        assert!(check(json!(nonces.current(NOW))).is_ok());
        assert_eq!(check(json!(null)), Err(ProofError::UseNonce));
        let three_steps_old = nonces.current(Timestamp(NOW.0 - 3 * step as i64 * 1000));
        assert_eq!(check(json!(three_steps_old)), Err(ProofError::UseNonce));
        assert_eq!(check(json!("made-up")), Err(ProofError::UseNonce));
    }

    #[test]
    fn a_nonce_not_required_is_ignored() {
        let world = World::new();
        assert!(world
            .check_edited(|_, claims| claims["nonce"] = json!("made-up"))
            .is_ok());
    }
}
