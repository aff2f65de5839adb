//! Revocation (RFC 7009; docs/salesforce-compatibility.md, "Revocation"), and the
//! administrator's revocations.

use tessera_proto::{AccessToken, ExposeSecret, PresentedToken};

use crate::authority::{Authority, Source, MAX_TOKEN_LEN};
use crate::model::{ChangeKind, EventKind};
use crate::store::StoreError;
use crate::time::Timestamp;
use crate::tokens::access_token::{looks_signed, verify};
use crate::tokens::hash::secret_hash;
use crate::tokens::jwt_access_token::looks_like_jws;
use crate::tokens::sealing::signed_grant_id;

/// What the caller of the revocation endpoint presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// A refresh token: its whole grant is revoked.
    Grant { client_id: String },
    /// An access token: only it. Its client, unless its grant is gone.
    AccessToken { client_id: Option<String> },
}

impl Revoked {
    /// The client the token was issued to, for the access log.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            Self::Grant { client_id } => Some(client_id),
            Self::AccessToken { client_id } => client_id.as_deref(),
        }
    }
}

/// Why a revocation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationError {
    /// The token was never issued (`invalid_token`, as Salesforce answers).
    InvalidToken,
    /// Too many unknown tokens from this source: 429.
    Throttled { retry_after_secs: u64 },
    /// The store failed: 503; the client must assume the token still works (RFC 7009 §2.2.1).
    Unavailable,
}

impl From<StoreError> for RevocationError {
    fn from(error: StoreError) -> Self {
        crate::authority::log_store_failure(&error);
        Self::Unavailable
    }
}

impl Authority {
    /// Revokes whatever `token` is (RFC 7009; possession is enough, as at Salesforce). A refresh
    /// token revokes its whole grant with every access token issued from it; an access token
    /// only itself. Idempotent for tokens already revoked; `InvalidToken` for tokens never
    /// issued, which, being what guessing produces, count against the source's budget.
    pub async fn revoke(
        &self,
        token: &PresentedToken,
        source: &Source,
    ) -> Result<Revoked, RevocationError> {
        match self.revoke_token(token.expose_secret(), source).await {
            Err(RevocationError::InvalidToken) => {
                match self
                    .throttle()
                    .credential_failure(source.address, self.now())
                {
                    Ok(()) => Err(RevocationError::InvalidToken),
                    Err((throttled, first)) => {
                        if first {
                            self.record_throttled(throttled, None, None, source);
                        }
                        Err(RevocationError::Throttled {
                            retry_after_secs: throttled.retry_after_secs,
                        })
                    }
                }
            }
            other => other,
        }
    }

    async fn revoke_token(&self, token: &str, source: &Source) -> Result<Revoked, RevocationError> {
        if token.is_empty() || (token.len() > MAX_TOKEN_LEN && !looks_like_jws(token)) {
            return Err(RevocationError::InvalidToken);
        }
        let now = self.now();
        let hash = secret_hash(token);
        // RFC 7009 §2.1: whatever the hint, search every token type.
        if let Some((expires_at, grant_id)) = self.access_token_issued(token, &hash).await? {
            self.store()
                .revoke_access_token(&hash, now, expires_at)
                .await?;
            self.guard().changed(
                ChangeKind::AccessTokenRevoked,
                &hex::encode(hash),
                expires_at,
            );
            let grant = self.store().grant(&grant_id).await?;
            if let Some(grant) = &grant {
                self.record_grant(
                    EventKind::Revoked,
                    grant,
                    "access token, revocation endpoint",
                    Some(source),
                )
                .await;
            }
            return Ok(Revoked::AccessToken {
                client_id: grant.map(|g| g.client_id),
            });
        }
        // A genuine refresh token of any generation names its family, and revokes it.
        let grant_id = self
            .refresh_token_grant(token)
            .await?
            .ok_or(RevocationError::InvalidToken)?;
        let grant = self
            .store()
            .grant(&grant_id)
            .await?
            .ok_or(RevocationError::InvalidToken)?;
        if self.store().revoke_grant(&grant.id, now).await? {
            self.grant_revoked(&grant.id, now);
            self.record_grant(
                EventKind::Revoked,
                &grant,
                "refresh token, revocation endpoint",
                Some(source),
            )
            .await;
        }
        Ok(Revoked::Grant {
            client_id: grant.client_id,
        })
    }

    /// When an access token this server issued expires, and its grant, if it is one (expired
    /// and revoked ones included: revoking them again is a success that changes nothing).
    async fn access_token_issued(
        &self,
        token: &str,
        hash: &crate::tokens::hash::Hash,
    ) -> Result<Option<(Timestamp, String)>, StoreError> {
        if looks_like_jws(token) {
            let issued = self.issued_jwt_access_token(token, *hash).await?;
            return Ok(issued.map(|v| (v.record.expires_at, v.record.grant_id.clone())));
        }
        let token = AccessToken::new(token);
        if looks_signed(&token) {
            return Ok(
                verify(&self.config().server_key, &token).map(|c| (c.expires_at, c.grant_id))
            );
        }
        Ok(self
            .store()
            .access_token(hash)
            .await?
            .map(|r| (r.expires_at, r.grant_id)))
    }

    /// The grant a refresh token names: from its signature, or for the earlier unsigned format,
    /// from its hash.
    pub(crate) async fn refresh_token_grant(
        &self,
        token: &str,
    ) -> Result<Option<String>, StoreError> {
        if let Some(id) = signed_grant_id(&self.config().server_key, token) {
            return Ok(Some(id.to_owned()));
        }
        self.store().legacy_refresh_grant(&secret_hash(token)).await
    }
}
