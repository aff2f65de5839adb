//! DPoP at the token endpoint and the resource server (RFC 9449; docs/dpop.md): which requests
//! must carry a proof, the proof's check through the one validator ([`crate::dpop`]), the
//! replay check — in this process's memory on one node, in the database when the store is
//! shared by several — and what a refused proof records.
//!
//! The binding rules themselves are the grants': a public client's grant is bound to the key of
//! the proof it was issued with, and every refresh of it must prove that key (refused without
//! revoking anything otherwise); each access token is bound to the key of the proof of the
//! request that issued it.

use subtle::ConstantTimeEq;
use tessera_proto::{AccessToken, ExposeSecret, OAuthError};

use crate::authority::{Authority, Source};
use crate::dpop::{
    replay_key, DpopConfig, ProofAlg, ProofError, ProofRequest, ProofValidator, SeenProofs,
    VerifiedProof,
};
use crate::flows::resource::ResourceError;
use crate::model::{Client, DpopMode, EventKind};
use crate::time::Timestamp;
use crate::tokens::server_key::ServerKey;

/// Whether a request proved the key a binding names (`presented`: the thumbprint its proof
/// proved, if any). The one comparison of thumbprints: the code, the grant, the rotation and
/// the access token all bind through it. Constant time: thumbprints are not secrets, but
/// nothing is lost by it.
pub(crate) fn proves_key(presented: Option<&str>, bound: &str) -> bool {
    presented.is_some_and(|jkt| bool::from(jkt.as_bytes().ct_eq(bound.as_bytes())))
}

/// A request's DPoP proof as the server received it (RFC 9449 §4.1).
#[derive(Debug, Clone)]
pub struct DpopPresentation {
    /// The `DPoP` header's value; `None` when the request used the `DPoP` scheme without one.
    pub proof: Option<String>,
    /// The request's method.
    pub method: String,
    /// The request's absolute URL as this server is reached (its issuer and the path).
    pub uri: String,
}

/// The per-process state of DPoP: the validator (with its cache of clients' keys) and, on one
/// node, the proofs seen.
#[derive(Debug)]
pub(crate) struct DpopRuntime {
    validator: ProofValidator,
    seen: SeenProofs,
}

impl DpopRuntime {
    pub(crate) fn new(config: DpopConfig, server_key: &ServerKey) -> Self {
        let seen = SeenProofs::new(config.replay_capacity);
        Self {
            validator: ProofValidator::new(config, server_key),
            seen,
        }
    }

    fn nonce(&self, now: Timestamp) -> String {
        self.validator.nonces().current(now)
    }

    fn algorithms(&self) -> Vec<&'static str> {
        ProofAlg::advertised(&self.validator.config().algorithms)
    }
}

impl Authority {
    /// The proof of a token request of `client`, judged by its DPoP setting: `Ok(None)` when
    /// the request is answered unbound (DPoP off for the client, or allowed and no proof).
    /// A refused proof is recorded with its reason, never the proof.
    pub(crate) async fn token_request_proof(
        &self,
        client: &Client,
        presented: Option<&DpopPresentation>,
        source: &Source,
    ) -> Result<Option<VerifiedProof>, OAuthError> {
        let proof = presented.and_then(|p| p.proof.as_deref().map(|proof| (p, proof)));
        match (client.dpop.mode, proof) {
            // A server that does not do DPoP for this client ignores the header (RFC 9449 §5).
            (DpopMode::Off, _) | (DpopMode::Allowed, None) => Ok(None),
            (DpopMode::Required, None) => {
                self.record_dpop_refusal(&client.client_id, "proof missing", source);
                Err(OAuthError::InvalidDpopProof("DPoP proof required"))
            }
            (DpopMode::Allowed | DpopMode::Required, Some((presented, proof))) => {
                let request = ProofRequest {
                    method: &presented.method,
                    uri: &presented.uri,
                    access_token: None,
                    nonce_required: client.dpop.require_nonce || self.config().dpop.require_nonce,
                };
                match self.checked_proof(&client.client_id, proof, &request).await {
                    Ok(verified) => Ok(Some(verified)),
                    Err(error) => {
                        if error != ProofError::UseNonce {
                            self.record_dpop_refusal(&client.client_id, error.reason(), source);
                        }
                        Err(error.to_oauth_error())
                    }
                }
            }
        }
    }

    /// The check of a resource request whose access token is bound to `jkt`: the `DPoP` scheme
    /// with a proof of that key for this request and token. A bound token sent as Bearer was
    /// refused before (RFC 9449 §7.2).
    pub(crate) async fn resource_proof(
        &self,
        client_id: &str,
        jkt: &str,
        token: &AccessToken,
        presented: &DpopPresentation,
    ) -> Result<(), ResourceError> {
        let proof = presented
            .proof
            .as_deref()
            .ok_or(ResourceError::DpopProof("DPoP proof missing"))?;
        // Only the client's nonce setting is read, from the cache: no copy of the client on
        // the API's path.
        let client_requires_nonce = self
            .read_cached_client(client_id, |client| client.dpop.require_nonce)
            .await?
            .ok_or(ResourceError::InvalidSession)?;
        let request = ProofRequest {
            method: &presented.method,
            uri: &presented.uri,
            access_token: Some(token.expose_secret()),
            nonce_required: client_requires_nonce || self.config().dpop.require_nonce,
        };
        let verified = self
            .checked_proof(client_id, proof, &request)
            .await
            .map_err(|error| match error {
                ProofError::UseNonce => ResourceError::UseDpopNonce,
                ProofError::ReplayStoreFull => ResourceError::Unavailable,
                other => ResourceError::DpopProof(other.reason()),
            })?;
        if !proves_key(Some(&verified.jkt), jkt) {
            return Err(ResourceError::DpopProof("DPoP proof of another key"));
        }
        Ok(())
    }

    /// The nonce a proof may name now: sent on every answer to a request with a proof, so that
    /// a client that must name one has it before it is asked (RFC 9449 §8).
    pub fn dpop_nonce(&self) -> String {
        self.dpop().nonce(self.now())
    }

    /// The DPoP signing algorithms proofs may use, as discovery advertises them.
    pub fn dpop_algorithms(&self) -> Vec<&'static str> {
        self.dpop().algorithms()
    }

    /// A proof checked and, once valid, remembered against replay: in this process on one node,
    /// in the shared store when nodes share one (a proof replayed to another node is caught
    /// there too).
    async fn checked_proof(
        &self,
        client_id: &str,
        proof: &str,
        request: &ProofRequest<'_>,
    ) -> Result<VerifiedProof, ProofError> {
        let now = self.now();
        let verified = self.dpop().validator.check(proof, request, now)?;
        let key = replay_key(client_id, &verified.htu, &verified.jti_hash);
        if self.store().shares_dpop_proofs() {
            match self
                .store()
                .remember_dpop_proof(&key, verified.expires_at, now)
                .await
            {
                Ok(true) => Ok(verified),
                Ok(false) => Err(ProofError::Replayed),
                Err(error) => {
                    crate::authority::log_store_failure(&error);
                    Err(ProofError::ReplayStoreFull)
                }
            }
        } else {
            self.dpop()
                .seen
                .remember(key, verified.expires_at, now)
                .map(|()| verified)
        }
    }

    /// A refused proof's `dpop_proof_refused` event: the client, the source and the reason,
    /// never the proof; repeats counted as a refused refresh's are.
    fn record_dpop_refusal(&self, client_id: &str, reason: &str, source: &Source) {
        self.record_refusal_of(EventKind::DpopProofRefused, client_id, reason, source);
    }
}
