//! The token endpoint (RFC 6749 §3.2): which grant a request asks for, and the one entry point
//! that authenticates the client, runs the grant and sheds load from guessing sources.
//!
//! The source's failure budget is looked at before the grant runs, not only after it failed: a
//! request whose failure would be answered 429 must not first do the work only a failure needs
//! (read a family to refuse it, write its audit event). A code exchange from such a source is
//! answered 429 at once; a refresh goes on only as far as it can be valid (see
//! [`crate::flows::refresh`]). A valid request is never refused this way, except a code
//! exchange, which leaves its code unspent for the retry (docs/security.md, "Throttling").

use tessera_proto::{
    AuthorizationCode, CodeVerifier, OAuthError, Params, RefreshToken, TokenResponse,
};

use crate::authority::{Authority, ClientCredentials, Requester, Source};
use crate::flows::dpop_binding::DpopPresentation;
use crate::model::{Client, EventKind};

/// A token request, read from its parameters.
#[derive(Debug, Clone)]
pub enum TokenRequest {
    /// `grant_type=authorization_code` (RFC 6749 §4.1.3, RFC 7636 §4.5).
    AuthorizationCode {
        code: AuthorizationCode,
        redirect_uri: Option<String>,
        verifier: Option<CodeVerifier>,
    },
    /// `grant_type=refresh_token` (RFC 6749 §6).
    RefreshToken {
        refresh_token: RefreshToken,
        /// A narrower scope, if asked for.
        scope: Option<String>,
    },
}

impl TokenRequest {
    /// The grant the parameters ask for; repeats were refused before (RFC 6749 §3.2).
    pub fn from_params(params: &Params) -> Result<Self, OAuthError> {
        match params.get("grant_type") {
            Some("refresh_token") => Ok(Self::RefreshToken {
                refresh_token: RefreshToken::new(
                    params
                        .get("refresh_token")
                        .ok_or(OAuthError::InvalidRequest("refresh_token is required"))?,
                ),
                scope: params.get("scope").map(str::to_owned),
            }),
            Some("authorization_code") => Ok(Self::AuthorizationCode {
                code: AuthorizationCode::new(
                    params
                        .get("code")
                        .ok_or(OAuthError::InvalidRequest("code is required"))?,
                ),
                redirect_uri: params.get("redirect_uri").map(str::to_owned),
                verifier: params.get("code_verifier").map(CodeVerifier::new),
            }),
            _ => Err(OAuthError::UnsupportedGrantType),
        }
    }
}

impl Authority {
    /// `POST /services/oauth2/token`: authenticates the client and runs the grant. A failing
    /// request from a source over its failure budget is answered 429 instead; a valid one never.
    pub async fn token(
        &self,
        credentials: Option<ClientCredentials>,
        request: TokenRequest,
        source: &Source,
    ) -> Result<TokenResponse, OAuthError> {
        self.token_with_proof(credentials, request, source, None)
            .await
    }

    /// The same, for a request that may carry a DPoP proof (RFC 9449 §5): checked for the
    /// client once it is authenticated, and what it proves binds what is issued.
    pub async fn token_with_proof(
        &self,
        credentials: Option<ClientCredentials>,
        request: TokenRequest,
        source: &Source,
        dpop: Option<&DpopPresentation>,
    ) -> Result<TokenResponse, OAuthError> {
        let client_id = credentials.as_ref().map(|c| c.client_id.clone());
        if matches!(request, TokenRequest::AuthorizationCode { .. }) {
            if let Some(refused) = self.refuse_spent_source(client_id.as_deref(), source) {
                return Err(refused);
            }
        }
        let result = match credentials {
            None => Err(OAuthError::InvalidClientId),
            Some(creds) => self.run_grant(&creds, request, source, dpop).await,
        };
        self.shed(result, client_id.as_deref(), source)
    }

    async fn run_grant(
        &self,
        creds: &ClientCredentials,
        request: TokenRequest,
        source: &Source,
        dpop: Option<&DpopPresentation>,
    ) -> Result<TokenResponse, OAuthError> {
        // The client (its secret, scopes, policy), the user and a refreshed family are answered
        // from caches that the change feed keeps current: past its bound, nothing is issued.
        self.revocations_known(self.now())?;
        let client = self.authenticate_client(creds).await?;
        refuse_blocked(&client)?;
        self.refuse_outside_allowlist(&client, source)?;
        let proof = self.token_request_proof(&client, dpop, source).await?;
        let requester = Requester {
            secret: creds.secret.as_ref(),
            source,
            dpop_jkt: proof.as_ref().map(|p| p.jkt.as_str()),
        };
        match request {
            TokenRequest::RefreshToken {
                refresh_token,
                scope,
            } => {
                let shedding = self.budget_spent(source);
                self.refresh(
                    &client,
                    &refresh_token,
                    scope.as_deref(),
                    requester,
                    shedding,
                )
                .await
            }
            TokenRequest::AuthorizationCode {
                code,
                redirect_uri,
                verifier,
            } => {
                self.exchange_code(
                    &client,
                    &code,
                    redirect_uri.as_deref(),
                    verifier.as_ref(),
                    requester,
                )
                .await
            }
        }
    }
}

impl Authority {
    /// The refresh-token IP allowlist (docs/controls.md): a code exchange or a refresh of a
    /// client with an allowlist must come from inside it. The address is the one the throttle
    /// uses (the peer, or the client a trusted proxy names). A request with no known address
    /// (no socket) is refused too: the list cannot vouch for it. Nothing is revoked, so the
    /// same code or refresh token works from inside; the refusal is audited, repeats counted.
    fn refuse_outside_allowlist(&self, client: &Client, source: &Source) -> Result<(), OAuthError> {
        let allowlist = &client.controls.ip_allowlist;
        if allowlist.is_empty() {
            return Ok(());
        }
        let reason = match source.address {
            Some(address) if allowlist.admits(address) => return Ok(()),
            Some(address) => format!("{address} is outside the IP allowlist"),
            None => "no source address to check against the IP allowlist".to_owned(),
        };
        self.record_refusal_of(EventKind::IpRefused, &client.client_id, &reason, source);
        Err(OAuthError::IpRestricted)
    }
}

/// The description Salesforce gives a blocked connected app (its `OAUTH_APP_BLOCKED`).
pub(crate) const APP_BLOCKED: &str = "this app is blocked by admin";

/// A blocked client gets nothing (Salesforce's "Block"; docs/controls.md): its tokens stay
/// stored and work again once it is unblocked, so nothing is revoked here.
pub(crate) fn refuse_blocked(client: &Client) -> Result<(), OAuthError> {
    if client.controls.blocked {
        return Err(OAuthError::UnauthorizedClient(APP_BLOCKED));
    }
    Ok(())
}
