//! Revocation (RFC 7009, Salesforce §7), introspection (RFC 7662, Salesforce §8), the
//! administrator's revocations, and housekeeping.

use tessera_proto::{OAuthError, RevokeError};

use crate::authority::{store_failure, Authority, ClientCredentials, MAX_TOKEN_LEN};
use crate::ids::secret_hash;
use crate::model::{EventKind, Grant, StoredEvent};
use crate::policy::RefreshTokenPolicy;
use crate::sealing::signed_grant_id;
use crate::store::{ClientPurge, EventFilter, PurgeCounts, PurgePlan, StoreError};
use crate::time::Timestamp;

/// Revoked grants are kept this long (introspection answers, audit joins), then removed. Reuse of
/// their tokens is still recognised afterwards, from the signed grant id.
pub const REVOKED_RETENTION_SECS: u64 = 86_400;
/// Expired codes are kept this long, so that a late second use still finds (and revokes) what
/// the first use issued.
pub const CODE_RETENTION_SECS: u64 = 3600;

/// What the caller of the revocation endpoint presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// A refresh token: its whole grant is revoked.
    Grant,
    /// An access token: only it.
    AccessToken,
}

/// An RFC 7662 introspection answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
}

impl Introspection {
    /// `{"active": false}` and nothing else (RFC 7662 §2.2: no reason given).
    pub fn inactive() -> Self {
        Self {
            active: false,
            scope: None,
            client_id: None,
            username: None,
            sub: None,
            token_type: None,
            exp: None,
            iat: None,
            nbf: None,
        }
    }
}

/// A grant with its audit history (issue, rotations, replays, revocation).
#[derive(Debug, Clone)]
pub struct GrantHistory {
    pub grant: Grant,
    pub events: Vec<StoredEvent>,
}

fn policy_expiry(policy: RefreshTokenPolicy, grant: &Grant) -> Option<Timestamp> {
    match policy {
        RefreshTokenPolicy::Infinite => None,
        RefreshTokenPolicy::Zero => Some(grant.created_at),
        p @ RefreshTokenPolicy::SpecificLifetime { .. } => {
            p.lifetime_secs().map(|s| grant.created_at.plus_secs(s))
        }
        p @ RefreshTokenPolicy::SpecificInactivity { .. } => {
            p.idle_secs().map(|s| grant.last_used_at.plus_secs(s))
        }
    }
}

impl Authority {
    /// Revokes whatever `token` is (RFC 7009; possession is enough, as at Salesforce). A refresh
    /// token revokes its whole grant with every access token issued from it; an access token
    /// only itself. Idempotent for tokens already revoked; `InvalidToken` for tokens never issued.
    pub async fn revoke(&self, token: &str) -> Result<Revoked, RevokeOutcomeError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(RevokeOutcomeError::Revoke(RevokeError::InvalidToken));
        }
        let now = self.now();
        let hash = secret_hash(token);
        let store = self.store();
        // RFC 7009 §2.1: whatever the hint, search every token type.
        if let Some(record) = store.access_token(&hash).await? {
            store.revoke_access_token(&hash, now).await?;
            if record.revoked_at.is_none() {
                if let Some(grant) = store.grant(&record.grant_id).await? {
                    self.record(
                        EventKind::Revoked,
                        &grant,
                        "access token, revocation endpoint",
                    )
                    .await;
                }
            }
            return Ok(Revoked::AccessToken);
        }
        let grant = match store.refresh_token(&hash).await? {
            Some(view) => Some(view.grant),
            // A genuine rotated-out token whose row is gone still names its family.
            None => match signed_grant_id(&self.config().server_key, token) {
                Some(id) => store.grant(id).await?,
                None => None,
            },
        };
        let grant = grant.ok_or(RevokeOutcomeError::Revoke(RevokeError::InvalidToken))?;
        if grant.revoked_at.is_none() {
            store.revoke_grant(&grant.id, now).await?;
            self.record(
                EventKind::Revoked,
                &grant,
                "refresh token, revocation endpoint",
            )
            .await;
        }
        Ok(Revoked::Grant)
    }

    /// RFC 7662 introspection by an authenticated confidential client, for its own tokens only.
    pub async fn introspect(
        &self,
        creds: &ClientCredentials,
        token: &str,
    ) -> Result<Introspection, OAuthError> {
        let client = self.authenticate_client(creds).await?;
        if client.is_public() {
            // RFC 7662 §2.1: the endpoint MUST require authorization; a bare client id is none.
            return Err(OAuthError::InvalidClientCredentials {
                via_basic: creds.via_basic,
            });
        }
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Ok(Introspection::inactive());
        }
        let now = self.now();
        let hash = secret_hash(token);
        let store = self.store();
        let found = if let Some(record) = store.access_token(&hash).await.map_err(store_failure)? {
            let live = record.revoked_at.is_none()
                && now < record.expires_at
                && record.client_id == client.client_id;
            live.then(|| {
                (
                    record.user_id,
                    record.client_id,
                    record.scope.to_string(),
                    "access_token",
                    Some(record.expires_at),
                    record.issued_at,
                )
            })
        } else if let Some(view) = store.refresh_token(&hash).await.map_err(store_failure)? {
            let grant = view.grant;
            let live = view.token.used_at.is_none()
                && grant.revoked_at.is_none()
                && grant.client_id == client.client_id
                && client.refresh_token_policy.allows_refresh(
                    grant.created_at,
                    grant.last_used_at,
                    now,
                );
            let exp = policy_expiry(client.refresh_token_policy, &grant);
            live.then(|| {
                (
                    grant.user_id,
                    grant.client_id,
                    grant.scope.to_string(),
                    "refresh_token",
                    exp,
                    view.token.created_at,
                )
            })
        } else {
            None
        };
        let Some((user_id, client_id, scope, token_type, exp, iat)) = found else {
            return Ok(Introspection::inactive());
        };
        let user = store.user_by_id(&user_id).await.map_err(store_failure)?;
        let Some(user) = user.filter(|u| !u.disabled) else {
            return Ok(Introspection::inactive());
        };
        Ok(Introspection {
            active: true,
            scope: Some(scope),
            client_id: Some(client_id),
            username: Some(user.username.clone()),
            sub: Some(self.identity_url(&user.org_id, &user.id)),
            token_type: Some(token_type),
            exp: exp.map(Timestamp::seconds),
            iat: Some(iat.seconds()),
            nbf: Some(iat.seconds()),
        })
    }

    /// Revokes one grant (administrator). Returns false if it was already revoked.
    pub async fn revoke_grant_by_id(
        &self,
        grant_id: &str,
        why: &str,
    ) -> Result<bool, AdminRevokeError> {
        let grant = self
            .store()
            .grant(grant_id)
            .await?
            .ok_or(AdminRevokeError::NotFound)?;
        if grant.revoked_at.is_some() {
            return Ok(false);
        }
        self.store().revoke_grant(grant_id, self.now()).await?;
        self.record(EventKind::Revoked, &grant, why).await;
        Ok(true)
    }

    /// Revokes every live grant of a user; returns how many.
    pub async fn revoke_user_grants(&self, user_id: &str, why: &str) -> Result<usize, StoreError> {
        let ids = self
            .store()
            .revoke_grants_of_user(user_id, self.now())
            .await?;
        self.record_revocations(&ids, why).await?;
        Ok(ids.len())
    }

    /// Revokes every live grant of a client; returns how many.
    pub async fn revoke_client_grants(
        &self,
        client_id: &str,
        why: &str,
    ) -> Result<usize, StoreError> {
        let ids = self
            .store()
            .revoke_grants_of_client(client_id, self.now())
            .await?;
        self.record_revocations(&ids, why).await?;
        Ok(ids.len())
    }

    async fn record_revocations(&self, ids: &[String], why: &str) -> Result<(), StoreError> {
        for id in ids {
            if let Some(grant) = self.store().grant(id).await? {
                self.record(EventKind::Revoked, &grant, why).await;
            }
        }
        Ok(())
    }

    /// A user's grants, newest first, each with its audit history.
    pub async fn grant_histories(&self, user_id: &str) -> Result<Vec<GrantHistory>, StoreError> {
        let mut out = Vec::new();
        for grant in self.store().grants_of_user(user_id).await? {
            let filter = EventFilter {
                grant_id: Some(grant.id.clone()),
                limit: 10_000,
                ..Default::default()
            };
            let events = self.store().events(&filter).await?;
            out.push(GrantHistory { grant, events });
        }
        Ok(out)
    }

    /// Removes what can no longer be used: expired access tokens and codes, rotated-out refresh
    /// tokens past their retry window, grants past their policy or revoked long enough, old
    /// events. Reuse detection survives it: a purged rotated-out token still names its family.
    pub async fn housekeeping(&self) -> Result<PurgeCounts, StoreError> {
        let now = self.now();
        let ago = |secs: u64| {
            Timestamp(
                now.millis()
                    .saturating_sub((secs as i64).saturating_mul(1000)),
            )
        };
        let clients = self.store().list_clients().await?;
        let plan = PurgePlan {
            access_expired_before: now,
            codes_expired_before: ago(CODE_RETENTION_SECS),
            revoked_before: ago(REVOKED_RETENTION_SECS),
            events_before: ago(self.config().audit_retention_secs),
            clients: clients
                .iter()
                .map(|c| {
                    let (created_before, idle_before) = match c.refresh_token_policy {
                        RefreshTokenPolicy::Infinite => (None, None),
                        // No refresh ever works: the grant lives as long as its access tokens.
                        RefreshTokenPolicy::Zero => (None, Some(ago(c.access_token_ttl_secs))),
                        p @ RefreshTokenPolicy::SpecificLifetime { .. } => (
                            p.lifetime_secs()
                                .map(|l| ago(l.max(c.access_token_ttl_secs))),
                            None,
                        ),
                        p @ RefreshTokenPolicy::SpecificInactivity { .. } => (
                            None,
                            p.idle_secs().map(|i| ago(i.max(c.access_token_ttl_secs))),
                        ),
                    };
                    ClientPurge {
                        client_id: c.client_id.clone(),
                        rotated_before: ago(c.refresh_retry_window_secs),
                        created_before,
                        idle_before,
                        access_only_idle_before: ago(c.access_token_ttl_secs),
                    }
                })
                .collect(),
        };
        self.store().purge(&plan).await
    }
}

/// Why a revocation failed: the caller's fault (a wire error) or ours (storage).
#[derive(Debug, thiserror::Error)]
pub enum RevokeOutcomeError {
    #[error("{}", .0.description())]
    Revoke(RevokeError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum AdminRevokeError {
    #[error("no such grant")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ClientCredentials {
    /// For tests and tools: body credentials.
    pub fn body(client_id: &str, secret: Option<&str>) -> Self {
        Self {
            client_id: client_id.to_owned(),
            secret: secret.map(tessera_proto::ClientSecret::new),
            via_basic: false,
        }
    }
}
