//! [`TokenMiddleware`]: what [`crate::AuthorizedClient`] does, as a link of a
//! `reqwest-middleware` chain.

use std::sync::Arc;

use reqwest::{Request, Response};
use reqwest_middleware::{Error, Middleware, Next};

use crate::manager::TokenManager;
use crate::resource::{
    authorization, refused_session, remember_nonce, resolve_target, resource_base, retry_with_nonce,
};

/// Adds the access token to requests for the credential's instance (and only those: a request
/// to another origin passes through without it), and on a refused session refreshes once and
/// replays once. A request whose body cannot be cloned (a stream) is not replayed.
///
/// Put it *inside* any retry middleware, so that every retry picks up the current token.
#[derive(Clone)]
pub struct TokenMiddleware {
    manager: Arc<TokenManager>,
}

impl std::fmt::Debug for TokenMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenMiddleware").finish_non_exhaustive()
    }
}

impl TokenMiddleware {
    pub fn new(manager: Arc<TokenManager>) -> Self {
        Self { manager }
    }
}

#[async_trait::async_trait]
impl Middleware for TokenMiddleware {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let credential = self.manager.current().await.map_err(Error::middleware)?;
        let base = resolve_target(resource_base(&credential), "/").map_err(Error::middleware)?;
        if request.url().origin() != base.origin() {
            return next.run(request, extensions).await;
        }
        let token = self
            .manager
            .access_token()
            .await
            .map_err(Error::middleware)?;
        let prover = self
            .manager
            .resource_prover(&credential)
            .map_err(Error::middleware)?;
        let authorized = |mut request: Request, token| -> reqwest_middleware::Result<Request> {
            let headers = authorization(token, prover.as_ref(), request.method(), request.url())
                .map_err(Error::middleware)?;
            request.headers_mut().extend(headers);
            Ok(request)
        };
        // Kept unsigned: every send gets a proof of its own (a fresh `jti`, the current nonce).
        let replay = request.try_clone();
        let mut response = next
            .clone()
            .run(authorized(request, &token)?, extensions)
            .await?;
        let Some(replay) = replay else {
            return Ok(response);
        };
        if retry_with_nonce(prover.as_ref(), replay.url(), &response) {
            let Some(again) = replay.try_clone() else {
                return Ok(response);
            };
            response = next
                .clone()
                .run(authorized(again, &token)?, extensions)
                .await?;
            remember_nonce(prover.as_ref(), replay.url(), &response);
        }
        match refused_session(response).await.map_err(Error::middleware)? {
            Ok(response) => Ok(response),
            Err(()) => {
                let fresh = self
                    .manager
                    .refresh_after_rejection(&token)
                    .await
                    .map_err(Error::middleware)?;
                next.run(authorized(replay, &fresh)?, extensions).await
            }
        }
    }
}
