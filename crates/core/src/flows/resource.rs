//! The resource server's side of the domain: validating an access token for the REST API and the
//! identity URL, and the one object type the REST API stores, Salesforce's `Note`.

use std::sync::Arc;

use tessera_proto::{AccessToken, ExposeSecret};

use crate::authority::{ahead_of_clock, Authority, MAX_TOKEN_LEN};
use crate::flows::dpop_binding::DpopPresentation;
use crate::identity::guard::GrantOwner;
use crate::model::{AccessTokenRecord, Note, User};
use crate::policy::MAX_ACCESS_TOKEN_TTL_SECS;
use crate::store::StoreError;
use crate::time::Timestamp;
use crate::tokens::access_token::{looks_signed, verify};
use crate::tokens::hash::secret_hash;
use crate::tokens::ids::salesforce_id;
use crate::tokens::jwt_access_token::looks_like_jws;

/// Longest Note title and body (Salesforce's).
pub(crate) const NOTE_TITLE_MAX: usize = 80;
pub(crate) const NOTE_BODY_MAX: usize = 32_000;
/// Most notes one query returns.
pub const NOTE_QUERY_MAX: u32 = 2000;

/// Why a resource request fails, as the REST API and the identity URL report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceError {
    /// Missing, unknown, expired or revoked access token (or one issued by a clock ahead).
    InvalidSession,
    /// A valid token whose scope does not allow this use.
    InsufficientScope,
    /// No such record (or not the caller's).
    NotFound,
    /// The identity URL names another organisation.
    WrongOrg,
    /// A Note that breaks a rule.
    InvalidNote(NoteRule),
    /// The store failed, or the change feed has not been read for too long: 503.
    Unavailable,
    /// A DPoP-bound token without a valid proof of its key, or an unbound one sent with the
    /// `DPoP` scheme (RFC 9449 §7.1): 401 `WWW-Authenticate: DPoP error="invalid_dpop_proof"`.
    /// The text says which check failed, never the proof.
    DpopProof(&'static str),
    /// The proof lacks the nonce the server demands (RFC 9449 §9): 401 `use_dpop_nonce` with a
    /// fresh `DPoP-Nonce`.
    UseDpopNonce,
}

/// The rules a Note must keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteRule {
    TitleRequired,
    TitleTooLong,
    BodyTooLong,
}

impl From<StoreError> for ResourceError {
    fn from(error: StoreError) -> Self {
        crate::authority::log_store_failure(&error);
        Self::Unavailable
    }
}

/// A valid access token, and for a JWT its `jti`. The record is shared: a remembered JWT's is
/// handed to every request that presents it, without copying its strings and scope each time.
#[derive(Debug, Clone)]
pub(crate) struct VerifiedAccess {
    pub record: Arc<AccessTokenRecord>,
    pub jti: Option<String>,
    /// The thumbprint of the DPoP key the token is bound to, if it is.
    pub dpop_jkt: Option<String>,
}

/// The caller of an API request: a valid access token with the `api` (or `full`) scope.
#[derive(Debug, Clone)]
pub struct ApiCaller {
    pub token: Arc<AccessTokenRecord>,
}

/// The caller of the identity URL or userinfo: a valid token with an identity scope, and its
/// active user.
#[derive(Debug, Clone)]
pub struct IdentityCaller {
    pub token: Arc<AccessTokenRecord>,
    pub user: Arc<User>,
}

/// A Note's fields as a request sets them; `None` leaves a field as it is (on update).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoteFields {
    pub title: Option<String>,
    /// `Some(None)` clears the body.
    pub body: Option<Option<String>>,
}

impl NoteFields {
    fn check(&self) -> Result<(), ResourceError> {
        if self
            .title
            .as_ref()
            .is_some_and(|t| t.chars().count() > NOTE_TITLE_MAX)
        {
            return Err(ResourceError::InvalidNote(NoteRule::TitleTooLong));
        }
        if self.title.as_ref().is_some_and(|t| t.trim().is_empty()) {
            return Err(ResourceError::InvalidNote(NoteRule::TitleRequired));
        }
        if self
            .body
            .as_ref()
            .and_then(|b| b.as_ref())
            .is_some_and(|b| b.chars().count() > NOTE_BODY_MAX)
        {
            return Err(ResourceError::InvalidNote(NoteRule::BodyTooLong));
        }
        Ok(())
    }
}

impl Authority {
    /// Validates a bearer access token: its signature, expiry and issue time (a token stamped
    /// ahead of the clock means the clock was stepped back, and would otherwise make an expired
    /// token work again), and the in-memory revocation state, provided it is current (see
    /// [`Authority::revocations_known`]). No row is read, but for the
    /// grant's owner the first time a grant is seen. Tokens of the earlier, stored format are
    /// looked up as before.
    ///
    /// A token bound to a DPoP key is accepted only with the `DPoP` scheme and a proof of that
    /// key for this request (`dpop`); sent as Bearer it is refused (RFC 9449 §7.2), and an
    /// unbound token sent with the `DPoP` scheme is refused too (§7.1).
    pub(crate) async fn access_token_record(
        &self,
        token: Option<&AccessToken>,
        dpop: Option<&DpopPresentation>,
    ) -> Result<Arc<AccessTokenRecord>, ResourceError> {
        let verified = self.verified_access(token).await?;
        match (verified.dpop_jkt.as_deref(), dpop, token) {
            (None, None, _) => {}
            (Some(_), None, _) => return Err(ResourceError::InvalidSession),
            (None, Some(_), _) => return Err(ResourceError::DpopProof("token is not DPoP-bound")),
            (Some(jkt), Some(presented), Some(token)) => {
                self.resource_proof(&verified.record.client_id, jkt, token, presented)
                    .await?;
            }
            (Some(_), Some(_), None) => return Err(ResourceError::InvalidSession),
        }
        Ok(verified.record)
    }

    /// The same, with what only a JWT access token carries. A token shaped as a JWS is checked
    /// as one (see `jwt_access.rs`); any other is an opaque token.
    pub(crate) async fn verified_access(
        &self,
        token: Option<&AccessToken>,
    ) -> Result<VerifiedAccess, ResourceError> {
        let verified = self.valid_access_token(token).await?;
        // The client cache is kept current by the change feed, so a block made on any node
        // reaches this one's next request; the token itself is left alone, and works again
        // once the client is unblocked.
        let blocked = self
            .read_cached_client(&verified.record.client_id, |client| client.controls.blocked)
            .await?;
        match blocked {
            Some(false) => Ok(verified),
            // Blocked, or deleted since.
            Some(true) | None => Err(ResourceError::InvalidSession),
        }
    }

    /// The token's own checks, whoever its client is.
    async fn valid_access_token(
        &self,
        token: Option<&AccessToken>,
    ) -> Result<VerifiedAccess, ResourceError> {
        let Some(token) = token else {
            return Err(ResourceError::InvalidSession);
        };
        let value = token.expose_secret();
        let jws = looks_like_jws(value);
        let opaque = !value.is_empty() && value.len() <= MAX_TOKEN_LEN && value.contains('!');
        if !jws && !opaque {
            return Err(ResourceError::InvalidSession);
        }
        let now = self.now();
        // Revocations made elsewhere are known here only through the change feed: when it
        // has not been read for too long, no token is vouched for (503), rather than one
        // revoked elsewhere accepted until it expires.
        self.revocations_known(now).map_err(|stale| {
            tracing::debug!(%stale, "access-token check refused");
            ResourceError::Unavailable
        })?;
        if jws {
            return self.jwt_access_token(value, now).await;
        }
        if !looks_signed(token) {
            return Ok(VerifiedAccess {
                record: Arc::new(self.stored_access_token(value, now).await?),
                jti: None,
                dpop_jkt: None,
            });
        }
        let claims =
            verify(&self.config().server_key, token).ok_or(ResourceError::InvalidSession)?;
        if now >= claims.expires_at
            || ahead_of_clock(claims.issued_at, now)
            || self.guard().grant_revoked(&claims.grant_id)
            || self.guard().token_revoked(&claims.token_hash)
        {
            return Err(ResourceError::InvalidSession);
        }
        let owner = self
            .grant_owner(&claims.grant_id)
            .await?
            .ok_or(ResourceError::InvalidSession)?;
        let record = AccessTokenRecord {
            token_hash: claims.token_hash,
            grant_id: claims.grant_id,
            client_id: owner.client_id,
            user_id: owner.user_id,
            org_id: owner.org_id,
            scope: claims.scope,
            issued_at: claims.issued_at,
            expires_at: claims.expires_at,
            revoked_at: None,
        };
        Ok(VerifiedAccess {
            record: Arc::new(record),
            jti: None,
            dpop_jkt: claims.dpop_jkt,
        })
    }

    /// Who a grant belongs to, cached: it never changes. `None` when the grant is gone (its
    /// client deleted, or purged).
    pub(crate) async fn grant_owner(
        &self,
        grant_id: &str,
    ) -> Result<Option<GrantOwner>, StoreError> {
        if let Some(owner) = self.guard().owner(grant_id) {
            return Ok(Some(owner));
        }
        let Some(grant) = self.store().grant(grant_id).await? else {
            return Ok(None);
        };
        if grant.revoked_at.is_some() {
            // Revoked since before this process knew of it.
            self.guard().changed(
                crate::model::ChangeKind::GrantRevoked,
                grant_id,
                grant
                    .revoked_at
                    .unwrap_or(Timestamp(0))
                    .plus_secs(MAX_ACCESS_TOKEN_TTL_SECS),
            );
            return Ok(None);
        }
        let owner = GrantOwner {
            client_id: grant.client_id,
            user_id: grant.user_id,
            org_id: grant.org_id,
        };
        self.guard().keep_owner(grant_id, owner.clone());
        Ok(Some(owner))
    }

    /// A token of the earlier format, which had a row.
    async fn stored_access_token(
        &self,
        value: &str,
        now: Timestamp,
    ) -> Result<AccessTokenRecord, ResourceError> {
        let record = self
            .store()
            .access_token(&secret_hash(value))
            .await?
            .ok_or(ResourceError::InvalidSession)?;
        if record.revoked_at.is_some()
            || now >= record.expires_at
            || ahead_of_clock(record.issued_at, now)
            || self.guard().grant_revoked(&record.grant_id)
        {
            return Err(ResourceError::InvalidSession);
        }
        Ok(record)
    }

    /// The caller of a REST API request.
    pub async fn api_caller(
        &self,
        token: Option<&AccessToken>,
        dpop: Option<&DpopPresentation>,
    ) -> Result<ApiCaller, ResourceError> {
        let token = self.access_token_record(token, dpop).await?;
        if !token.scope.allows_api() {
            return Err(ResourceError::InsufficientScope);
        }
        Ok(ApiCaller { token })
    }

    /// The caller of the identity URL or userinfo.
    pub async fn identity_caller(
        &self,
        token: Option<&AccessToken>,
        dpop: Option<&DpopPresentation>,
    ) -> Result<IdentityCaller, ResourceError> {
        let token = self.access_token_record(token, dpop).await?;
        if !token.scope.allows_identity() {
            return Err(ResourceError::InsufficientScope);
        }
        let user = self
            .cached_user(&token.user_id)
            .await?
            .filter(|u| !u.disabled)
            .ok_or(ResourceError::InvalidSession)?;
        Ok(IdentityCaller { token, user })
    }

    /// The caller of userinfo: as of the identity URL, but `api` alone is not enough
    /// (docs/openid-connect.md, "Userinfo"); such a token is `InsufficientScope`.
    pub async fn userinfo_caller(
        &self,
        token: Option<&AccessToken>,
        dpop: Option<&DpopPresentation>,
    ) -> Result<IdentityCaller, ResourceError> {
        let caller = self.identity_caller(token, dpop).await?;
        if !caller.token.scope.allows_userinfo() {
            return Err(ResourceError::InsufficientScope);
        }
        Ok(caller)
    }

    /// The user an identity URL `/id/<org_id>/<user_id>` names, as its caller may see it.
    pub async fn identity_of(
        &self,
        caller: IdentityCaller,
        org_id: &str,
        user_id: &str,
    ) -> Result<Arc<User>, ResourceError> {
        if org_id != caller.token.org_id {
            return Err(ResourceError::WrongOrg);
        }
        if user_id == caller.user.id {
            return Ok(caller.user);
        }
        self.user_of_org(&caller.token.org_id, user_id).await
    }

    /// A user of the caller's organisation (the REST API's `User` object).
    pub async fn api_user(
        &self,
        caller: &ApiCaller,
        user_id: &str,
    ) -> Result<Arc<User>, ResourceError> {
        self.user_of_org(&caller.token.org_id, user_id).await
    }

    async fn user_of_org(&self, org_id: &str, user_id: &str) -> Result<Arc<User>, ResourceError> {
        self.cached_user(user_id)
            .await?
            .filter(|u| u.org_id == org_id)
            .ok_or(ResourceError::NotFound)
    }

    pub async fn create_note(
        &self,
        caller: &ApiCaller,
        fields: NoteFields,
    ) -> Result<Note, ResourceError> {
        fields.check()?;
        let title = fields
            .title
            .ok_or(ResourceError::InvalidNote(NoteRule::TitleRequired))?;
        let now = self.now();
        let note = Note {
            id: salesforce_id("002", self.rng()),
            owner_id: caller.token.user_id.clone(),
            title,
            body: fields.body.flatten(),
            created_at: now,
            modified_at: now,
        };
        self.store().insert_note(&note).await?;
        Ok(note)
    }

    /// The caller's note with this id (another user's notes do not exist for them).
    pub async fn note(&self, caller: &ApiCaller, id: &str) -> Result<Note, ResourceError> {
        self.store()
            .note(id)
            .await?
            .filter(|n| n.owner_id == caller.token.user_id)
            .ok_or(ResourceError::NotFound)
    }

    /// The caller's notes, newest first.
    pub async fn notes(&self, caller: &ApiCaller, limit: u32) -> Result<Vec<Note>, ResourceError> {
        Ok(self
            .store()
            .list_notes(&caller.token.user_id, limit.min(NOTE_QUERY_MAX))
            .await?)
    }

    pub async fn update_note(
        &self,
        caller: &ApiCaller,
        id: &str,
        fields: NoteFields,
    ) -> Result<(), ResourceError> {
        let mut note = self.note(caller, id).await?;
        fields.check()?;
        if let Some(title) = fields.title {
            note.title = title;
        }
        if let Some(body) = fields.body {
            note.body = body;
        }
        note.modified_at = self.now();
        if self.store().update_note(&note).await? {
            Ok(())
        } else {
            Err(ResourceError::NotFound)
        }
    }

    pub async fn delete_note(&self, caller: &ApiCaller, id: &str) -> Result<(), ResourceError> {
        self.note(caller, id).await?;
        if self.store().delete_note(id).await? {
            Ok(())
        } else {
            Err(ResourceError::NotFound)
        }
    }
}
