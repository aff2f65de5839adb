//! DPoP (RFC 9449) on the server: the one proof validator the token endpoint, the resource
//! server and userinfo share ([`proof`]), the stateless nonces it may demand ([`nonce`]) and the
//! store of proofs already seen ([`replay`]). The wire-level pieces both ends compute alike (the
//! normalised `htu`, `ath`, the JWK thumbprint) live in `tessera_proto::dpop`.

pub mod nonce;
pub mod proof;
pub mod replay;

pub use nonce::NonceIssuer;
pub use proof::{ProofRequest, ProofValidator, VerifiedProof};
pub use replay::{replay_key, SeenProofs};

use tessera_proto::OAuthError;

/// How proofs are judged. The defaults are RFC 9449's suggestions and the issue's: a minute of
/// `iat` in the past, ten seconds of client clock ahead of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopConfig {
    /// How old a proof's `iat` may be. Also how long a seen proof is remembered: once its `iat`
    /// is out of the window the proof is refused anyway.
    pub iat_past_secs: u64,
    /// How far ahead of the server's clock a proof's `iat` may be.
    pub iat_future_secs: u64,
    /// The signing algorithms a proof may use, as advertised in discovery.
    pub algorithms: Vec<ProofAlg>,
    /// The most proofs remembered at once for replay detection; when that many are live, new
    /// proofs are refused (503) rather than forgetting one that could still be replayed.
    pub replay_capacity: usize,
    /// The life of one nonce step; a nonce is accepted in its step and the two beside it.
    pub nonce_step_secs: u64,
}

impl Default for DpopConfig {
    fn default() -> Self {
        Self {
            iat_past_secs: 60,
            iat_future_secs: 10,
            algorithms: ProofAlg::ALL.to_vec(),
            replay_capacity: crate::authority::DEFAULT_DPOP_REPLAY_CAPACITY,
            nonce_step_secs: 60,
        }
    }
}

/// An asymmetric JOSE algorithm a proof may be signed with. Symmetric ones (`HS*`) and `none`
/// have no place here: the verifier must not hold the key that signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProofAlg {
    ES256,
    ES384,
    EdDSA,
    PS256,
}

impl ProofAlg {
    /// Every algorithm this build verifies, the most common (and cheapest to verify) first.
    pub const ALL: [ProofAlg; 4] = [Self::ES256, Self::ES384, Self::EdDSA, Self::PS256];

    /// The JOSE name (`alg`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
            Self::PS256 => "PS256",
        }
    }

    /// The algorithm whose JOSE name is `name`, exactly (JOSE names are case-sensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.as_str() == name)
    }

    /// The names for discovery's `dpop_signing_alg_values_supported`.
    pub fn advertised(algorithms: &[ProofAlg]) -> Vec<&'static str> {
        algorithms.iter().map(|alg| alg.as_str()).collect()
    }

    pub(crate) fn jose(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::ES256 => jsonwebtoken::Algorithm::ES256,
            Self::ES384 => jsonwebtoken::Algorithm::ES384,
            Self::EdDSA => jsonwebtoken::Algorithm::EdDSA,
            Self::PS256 => jsonwebtoken::Algorithm::PS256,
        }
    }
}

/// Why a proof was refused: one variant per check of RFC 9449 §4.3, plus the replay store's two
/// answers. [`ProofError::reason`] is what the audit trail records; the proof itself never is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// Not one JWS in compact form, or its header or claims are not the JSON they must be.
    #[error("malformed")]
    Malformed,
    /// The header's `typ` is not `dpop+jwt`.
    #[error("wrong typ")]
    WrongType,
    /// The header's `alg` is not one of the configured asymmetric algorithms.
    #[error("unsupported alg")]
    UnsupportedAlgorithm,
    /// The `jwk` header carries private (or symmetric) key material.
    #[error("private key in jwk")]
    PrivateKeyInJwk,
    /// No `jwk` header, or not a public key of the type and curve the `alg` needs.
    #[error("bad jwk")]
    BadKey,
    /// The signature does not verify under the `jwk`.
    #[error("bad signature")]
    BadSignature,
    /// `htm` is missing or is not the request's method.
    #[error("htm mismatch")]
    MethodMismatch,
    /// `htu` is missing or is not the request's URI (normalised, without query and fragment).
    #[error("htu mismatch")]
    UriMismatch,
    /// `iat` is missing or outside the accepted window.
    #[error("iat out of window")]
    IssuedAtOutOfWindow,
    /// `jti` is missing or empty.
    #[error("missing jti")]
    MissingJti,
    /// `jti` is longer than `tessera_proto::dpop::MAX_JTI_BYTES`.
    #[error("jti too long")]
    JtiTooLong,
    /// A request with an access token whose proof has no `ath`.
    #[error("missing ath")]
    MissingAccessTokenHash,
    /// `ath` is not the hash of the presented access token.
    #[error("wrong ath")]
    WrongAccessTokenHash,
    /// The server demands a nonce and the proof has none, or one no longer (or never) issued.
    #[error("use nonce")]
    UseNonce,
    /// A proof already seen for this client and URI.
    #[error("replayed")]
    Replayed,
    /// The replay store is full of live entries: refused rather than forgetting one.
    #[error("replay store full")]
    ReplayStoreFull,
}

impl ProofError {
    /// A short reason for the audit trail and the error description; never the proof.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed => "DPoP proof is malformed",
            Self::WrongType => "DPoP proof typ is not dpop+jwt",
            Self::UnsupportedAlgorithm => "DPoP proof alg is not supported",
            Self::PrivateKeyInJwk => "DPoP proof jwk contains a private key",
            Self::BadKey => "DPoP proof jwk is not a usable public key for its alg",
            Self::BadSignature => "DPoP proof signature does not verify",
            Self::MethodMismatch => "DPoP proof htm does not match the request method",
            Self::UriMismatch => "DPoP proof htu does not match the request URI",
            Self::IssuedAtOutOfWindow => "DPoP proof iat is outside the accepted window",
            Self::MissingJti => "DPoP proof has no jti",
            Self::JtiTooLong => "DPoP proof jti is too long",
            Self::MissingAccessTokenHash => "DPoP proof has no ath",
            Self::WrongAccessTokenHash => "DPoP proof ath does not match the access token",
            Self::UseNonce => "DPoP proof needs a current server nonce",
            Self::Replayed => "DPoP proof was already used",
            Self::ReplayStoreFull => "DPoP replay store is full",
        }
    }

    /// The answer on the wire: `invalid_dpop_proof` with the reason, `use_dpop_nonce`, or 503
    /// with a one-second `Retry-After` when the replay store is full.
    pub fn to_oauth_error(&self) -> OAuthError {
        match self {
            Self::UseNonce => OAuthError::UseDpopNonce,
            Self::ReplayStoreFull => OAuthError::TemporarilyUnavailable {
                retry_after_secs: 1,
            },
            other => OAuthError::InvalidDpopProof(other.reason()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_reads_back_from_its_jose_name_and_no_other_case() {
        for alg in ProofAlg::ALL {
            assert_eq!(ProofAlg::from_name(alg.as_str()), Some(alg));
        }
        assert_eq!(ProofAlg::from_name("es256"), None);
        assert_eq!(ProofAlg::from_name("HS256"), None);
        assert_eq!(ProofAlg::from_name("none"), None);
        assert_eq!(
            ProofAlg::advertised(&DpopConfig::default().algorithms),
            ["ES256", "ES384", "EdDSA", "PS256"]
        );
    }

    #[test]
    fn proof_errors_map_to_the_oauth_errors_of_rfc_9449() {
        assert_eq!(
            ProofError::UseNonce.to_oauth_error(),
            OAuthError::UseDpopNonce
        );
        assert_eq!(
            ProofError::ReplayStoreFull.to_oauth_error(),
            OAuthError::TemporarilyUnavailable {
                retry_after_secs: 1
            }
        );
        assert_eq!(
            ProofError::BadSignature.to_oauth_error(),
            OAuthError::InvalidDpopProof("DPoP proof signature does not verify")
        );
    }
}
