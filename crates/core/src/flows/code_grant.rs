//! `grant_type=authorization_code` (RFC 6749 §4.1.3, RFC 7636 §4.6).

use tessera_proto::{AuthorizationCode, CodeVerifier, ExposeSecret, OAuthError, TokenResponse};

use crate::authority::{
    still_allowed, Authentication, Authority, NewGrant, Requester, MAX_TOKEN_LEN,
};
use crate::flows::dpop_binding::proves_key;
use crate::model::{Client, EventKind};
use crate::store::CodeRedemption;
use crate::tokens::crypto;
use crate::tokens::hash::secret_hash;

/// PKCE verifier bounds: RFC 7636's minimum, and a generous maximum since jsforce sends 171.
const VERIFIER_LEN: std::ops::RangeInclusive<usize> = 43..=1024;

impl Authority {
    /// Exchanges a code for tokens. Of two presentations of one code at most one issues: the
    /// second revokes what the first issued, or, if the first is still issuing, makes it issue
    /// nothing.
    pub(crate) async fn exchange_code(
        &self,
        client: &Client,
        code: &AuthorizationCode,
        redirect_uri: Option<&str>,
        verifier: Option<&CodeVerifier>,
        requester: Requester<'_>,
    ) -> Result<TokenResponse, OAuthError> {
        let Requester {
            secret: presented_secret,
            source,
            dpop_jkt,
        } = requester;
        let value = code.expose_secret();
        if value.len() > MAX_TOKEN_LEN {
            return Err(OAuthError::InvalidAuthorizationCode);
        }
        let code_hash = secret_hash(value);
        // The first presentation spends the code, whatever comes of it: a code is never worth
        // a second try.
        let record = match self.store().redeem_code(&code_hash, self.now()).await? {
            CodeRedemption::Redeemed(record) => *record,
            CodeRedemption::NotFound => return Err(OAuthError::InvalidAuthorizationCode),
            CodeRedemption::AlreadyUsed {
                revoked_grant: Some(id),
            } => {
                // RFC 6749 §4.1.2: a code used twice revokes what it issued (the store did, in
                // the same transaction). The presentation that revoked it is always recorded;
                // later ones are repeats, written once per window with their count, and a
                // repeat costs no read.
                let revoking = !self.guard().grant_revoked(&id);
                self.grant_revoked(&id, self.now());
                if revoking || !self.is_repeat(EventKind::CodeReused, &id) {
                    if let Some(grant) = self.store().grant(&id).await? {
                        let event = self.grant_event(
                            EventKind::CodeReused,
                            &grant,
                            "grant revoked",
                            Some(source),
                        );
                        self.record_opening(event).await;
                    }
                }
                return Err(OAuthError::ExpiredAuthorizationCode);
            }
            CodeRedemption::AlreadyUsed {
                revoked_grant: None,
            } => {
                return Err(OAuthError::ExpiredAuthorizationCode);
            }
        };
        if record.client_id != client.client_id {
            return Err(OAuthError::InvalidAuthorizationCode);
        }
        if self.now() >= record.expires_at {
            return Err(OAuthError::ExpiredAuthorizationCode);
        }
        if redirect_uri != Some(record.redirect_uri.as_str()) {
            return Err(OAuthError::RedirectUriMismatch);
        }
        match (&record.code_challenge, verifier) {
            (Some(challenge), Some(verifier)) => {
                let v = verifier.expose_secret();
                let well_formed = VERIFIER_LEN.contains(&v.len())
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
                if !well_formed || !crypto::pkce_s256_matches(v, challenge) {
                    return Err(OAuthError::InvalidCodeVerifier);
                }
            }
            (Some(_), None) => return Err(OAuthError::InvalidCodeVerifier),
            // RFC 9700 §4.8.2: a verifier without a challenge is a downgrade attempt.
            (None, Some(_)) => return Err(OAuthError::UnexpectedCodeVerifier),
            (None, None) => {}
        }
        // RFC 9449 §10: a code whose authorization request named a key (`dpop_jkt`) is
        // exchanged only with a proof of that key.
        if let Some(bound) = record.dpop_jkt.as_deref() {
            if !proves_key(dpop_jkt, bound) {
                return Err(OAuthError::DpopKeyMismatch);
            }
        }
        let user = self.active_user(&record.user_id).await?;
        let scope = still_allowed(client, &record.scope);
        if scope.is_empty() {
            return Err(OAuthError::InvalidScope);
        }
        self.issue_new_grant(
            NewGrant {
                client,
                user: &user,
                scope: &scope,
                code_hash: Some(code_hash),
                may_issue_refresh: true,
                presented_secret,
                authentication: Authentication {
                    auth_time: record.auth_time,
                    nonce: record.nonce,
                    dpop_jkt: dpop_jkt.map(str::to_owned),
                },
                answers_id_token: true,
            },
            Some(source),
        )
        .await
    }
}
