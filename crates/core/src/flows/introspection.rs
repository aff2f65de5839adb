//! Introspection (RFC 7662; docs/salesforce-compatibility.md, "Introspection").

use subtle::ConstantTimeEq;
use tessera_proto::{AccessToken, ExposeSecret, OAuthError, PresentedToken};

use crate::authority::{Authority, ClientCredentials, Source, MAX_TOKEN_LEN};
use crate::flows::resource::{ResourceError, VerifiedAccess};
use crate::model::{Client, Grant};
use crate::policy::RefreshTokenPolicy;
use crate::time::Timestamp;
use crate::tokens::hash::secret_hash;
use crate::tokens::jwt_access_token::{looks_like_jws, Confirmation};

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
    /// A JWT access token's `jti` (RFC 7662 §2.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The DPoP key the token is bound to (RFC 9449 §6.2): an access token bound at issue, or a
    /// public client's refresh token whose grant is bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
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
            jti: None,
            cnf: None,
        }
    }
}

/// What an active token is, before its user is looked up.
struct Found {
    user_id: String,
    client_id: String,
    scope: String,
    token_type: &'static str,
    exp: Option<Timestamp>,
    iat: Timestamp,
    jti: Option<String>,
    dpop_jkt: Option<String>,
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
    /// RFC 7662 introspection by an authenticated confidential client, for its own tokens only.
    /// Inactive answers are not failures: a resource server honestly introspects expired tokens
    /// all day; scanning needs client credentials, whose failures the throttle counts.
    pub async fn introspect(
        &self,
        credentials: Option<ClientCredentials>,
        token: Option<&PresentedToken>,
        source: &Source,
    ) -> Result<Introspection, OAuthError> {
        let client_id = credentials.as_ref().map(|c| c.client_id.clone());
        let result = match credentials {
            None => Err(OAuthError::InvalidClientId),
            Some(creds) => self.introspect_as(&creds, token).await,
        };
        self.shed(result, client_id.as_deref(), source)
    }

    async fn introspect_as(
        &self,
        creds: &ClientCredentials,
        token: Option<&PresentedToken>,
    ) -> Result<Introspection, OAuthError> {
        let client = self.authenticate_client(creds).await?;
        if client.is_public() {
            // RFC 7662 §2.1: the endpoint MUST require authorization; a bare client id is none.
            return Err(OAuthError::InvalidClientCredentials {
                via_basic: creds.via_basic,
            });
        }
        let token = token
            .map(ExposeSecret::expose_secret)
            .ok_or(OAuthError::InvalidRequest("token is required"))?;
        if token.len() > MAX_TOKEN_LEN && !looks_like_jws(token) {
            return Ok(Introspection::inactive());
        }
        let Some(found) = self.find_active(&client, token).await? else {
            return Ok(Introspection::inactive());
        };
        let user = self.store().user_by_id(&found.user_id).await?;
        let Some(user) = user.filter(|u| !u.disabled) else {
            return Ok(Introspection::inactive());
        };
        Ok(Introspection {
            active: true,
            scope: Some(found.scope),
            client_id: Some(found.client_id),
            username: Some(user.username.clone()),
            sub: Some(self.identity_url(&user.org_id, &user.id)),
            token_type: Some(found.token_type),
            exp: found.exp.map(Timestamp::seconds),
            iat: Some(found.iat.seconds()),
            nbf: Some(found.iat.seconds()),
            jti: found.jti,
            cnf: found.dpop_jkt.map(|jkt| Confirmation { jkt }),
        })
    }

    /// The token, if it is a live token of this client.
    async fn find_active(&self, client: &Client, token: &str) -> Result<Option<Found>, OAuthError> {
        let as_access = AccessToken::new(token);
        match self.verified_access(Some(&as_access)).await {
            Ok(VerifiedAccess {
                record,
                jti,
                dpop_jkt,
            }) => {
                return Ok((record.client_id == client.client_id).then(|| Found {
                    user_id: record.user_id.clone(),
                    client_id: record.client_id.clone(),
                    scope: record.scope.to_string(),
                    token_type: "access_token",
                    exp: Some(record.expires_at),
                    iat: record.issued_at,
                    jti,
                    dpop_jkt,
                }))
            }
            Err(ResourceError::Unavailable) => {
                return Err(OAuthError::TemporarilyUnavailable {
                    retry_after_secs: crate::authority::UNAVAILABLE_RETRY_AFTER_SECS,
                })
            }
            Err(_) => {}
        }
        let Some(grant_id) = self.refresh_token_grant(token).await? else {
            return Ok(None);
        };
        let Some(family) = self.store().family(&grant_id).await? else {
            return Ok(None);
        };
        let now = self.now();
        let grant = family.grant;
        let current = family
            .current
            .is_some_and(|h| bool::from(h.ct_eq(&secret_hash(token))));
        let live = current
            && grant.revoked_at.is_none()
            && grant.client_id == client.client_id
            && !client.controls.blocked
            && client.scopes.allows_refresh_token()
            && client.effective_refresh_policy().allows_refresh(
                grant.created_at,
                grant.last_used_at,
                now,
            );
        let exp = policy_expiry(client.effective_refresh_policy(), &grant);
        // A rotated family's current token was issued when the previous one was rotated out.
        let iat = family.rotated_at.unwrap_or(grant.created_at);
        Ok(live.then(|| Found {
            user_id: grant.user_id,
            client_id: grant.client_id,
            scope: grant.scope.to_string(),
            token_type: "refresh_token",
            exp,
            iat,
            jti: None,
            dpop_jkt: grant.dpop_jkt,
        }))
    }
}
