//! [`TokenMiddleware`]: what [`crate::AuthorizedClient`] does, as a link of a
//! `reqwest-middleware` chain.

use std::sync::Arc;

use reqwest::header::AUTHORIZATION;
use reqwest::{Request, Response};
use reqwest_middleware::{Error, Middleware, Next};

use crate::manager::TokenManager;
use crate::resource::{bearer, refused_session, resolve_target, resource_base};

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
        mut request: Request,
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
        let replay = request.try_clone();
        request
            .headers_mut()
            .insert(AUTHORIZATION, bearer(&token).map_err(Error::middleware)?);
        let response = next.clone().run(request, extensions).await?;
        let Some(mut replay) = replay else {
            return Ok(response);
        };
        match refused_session(response).await.map_err(Error::middleware)? {
            Ok(response) => Ok(response),
            Err(()) => {
                let fresh = self
                    .manager
                    .refresh_after_rejection(&token)
                    .await
                    .map_err(Error::middleware)?;
                replay
                    .headers_mut()
                    .insert(AUTHORIZATION, bearer(&fresh).map_err(Error::middleware)?);
                next.run(replay, extensions).await
            }
        }
    }
}
