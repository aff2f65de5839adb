//! [`AuthorizedClient`]: ordinary requests with the access token added, refreshed once on a
//! refused session.

use std::sync::Arc;

use reqwest::header::HeaderMap;
use reqwest::{Method, Response};
use tessera_proto::AccessToken;

use crate::error::ClientError;
use crate::manager::TokenManager;
use crate::resource::{refused_session, resolve_target, resource_base, send_authorized};

/// Sends requests with `Authorization: Bearer <access token>` (or, for a DPoP-bound
/// credential, `Authorization: DPoP <access token>` with a fresh proof, sent once more with
/// the server's nonce when it asks for one), relative to the credential's `instance_url`.
/// When the resource server refuses the session (401 with Salesforce's `INVALID_SESSION_ID`,
/// `WWW-Authenticate: Token`, or `WWW-Authenticate: Bearer` or `DPoP` with
/// `error="invalid_token"`), it refreshes once and replays the request once; a second refusal
/// is returned as it is, never retried in a loop (jsforce#1168).
#[derive(Clone)]
pub struct AuthorizedClient {
    manager: Arc<TokenManager>,
}

impl std::fmt::Debug for AuthorizedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizedClient").finish_non_exhaustive()
    }
}

impl TokenManager {
    /// An HTTP client that adds the access token and refreshes once on a 401.
    pub fn http_client(self: &Arc<Self>) -> AuthorizedClient {
        AuthorizedClient::new(self.clone())
    }
}

impl AuthorizedClient {
    pub(crate) fn new(manager: Arc<TokenManager>) -> Self {
        Self { manager }
    }

    pub fn manager(&self) -> &Arc<TokenManager> {
        &self.manager
    }

    /// Sends one request (replayed once after a refresh if the session is refused). The body
    /// is bytes so that it can be replayed.
    #[tracing::instrument(skip_all, fields(method = %method))]
    pub async fn send(
        &self,
        method: Method,
        target: &str,
        headers: HeaderMap,
        body: Option<Vec<u8>>,
    ) -> Result<Response, ClientError> {
        let credential = self.manager.current().await?;
        let url = resolve_target(resource_base(&credential), target)?;
        let token = self.manager.access_token().await?;
        let response = self
            .send_once(&method, &url, &headers, body.as_deref(), &token)
            .await?;
        let response = match refused_session(response).await? {
            Ok(response) => return Ok(response),
            Err(()) => {
                tracing::info!("session refused; refreshing and replaying once");
                let fresh = self.manager.refresh_after_rejection(&token).await?;
                self.send_once(&method, &url, &headers, body.as_deref(), &fresh)
                    .await?
            }
        };
        Ok(response)
    }

    /// `GET target`.
    pub async fn get(&self, target: &str) -> Result<Response, ClientError> {
        self.send(Method::GET, target, HeaderMap::new(), None).await
    }

    async fn send_once(
        &self,
        method: &Method,
        url: &url::Url,
        headers: &HeaderMap,
        body: Option<&[u8]>,
        token: &AccessToken,
    ) -> Result<Response, ClientError> {
        let credential = self.manager.current().await?;
        let prover = self.manager.resource_prover(&credential)?;
        let http = &self.manager.config().http;
        send_authorized(token, prover.as_ref(), method, url, |authorization| {
            let request = http
                .request(method.clone(), url.clone())
                .headers(headers.clone())
                .headers(authorization);
            match body {
                Some(body) => request.body(body.to_vec()),
                None => request,
            }
        })
        .await
    }
}
