//! `POST /services/oauth2/token`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::Response;
use tessera_core::model::{Event, EventKind};
use tessera_proto::{AuthorizationCode, CodeVerifier, OAuthError, RefreshToken, TokenResponse};

use crate::extract::{client_credentials, form_post};
use crate::reply::{json, no_store, oauth_error};
use crate::{source_address, AppState};

pub async fn token(State(state): State<AppState>, request: Request<Body>) -> Response {
    let address = source_address(&request);
    if let Some(retry_after_secs) = state
        .guard
        .addresses
        .blocked(&address, state.authority.now())
    {
        return oauth_error(&OAuthError::RateLimited { retry_after_secs });
    }
    let mut client_id = None;
    let result = grant(&state, request, &mut client_id).await;
    match result {
        Ok(body) => no_store(json(StatusCode::OK, &body)),
        Err(error) => {
            record_failure(&state, &error, &address, client_id.as_deref());
            oauth_error(&error)
        }
    }
}

/// Counts the failures that guessing produces: client credentials per client and address,
/// tokens and codes per address.
pub(crate) fn record_failure(
    state: &AppState,
    error: &OAuthError,
    address: &str,
    client_id: Option<&str>,
) {
    let now = state.authority.now();
    let guard = &state.guard;
    match error {
        OAuthError::InvalidClientCredentials { .. } | OAuthError::InvalidClientId => {
            let authority = state.authority.clone();
            let event = Event {
                at: now,
                kind: EventKind::ClientAuthFailed,
                client_id: client_id.map(str::to_owned),
                user_id: None,
                grant_id: None,
                detail: format!("from {address}"),
            };
            // Recorded off the request path: a failure answer must not wait on the audit write.
            tokio::spawn(async move { authority.record_event(event).await });
            if let Some(id) = client_id {
                guard.clients.record_failure(id, now);
            }
            guard.addresses.record_failure(address, now);
        }
        OAuthError::ExpiredRefreshToken
        | OAuthError::InvalidAuthorizationCode
        | OAuthError::ExpiredAuthorizationCode
        | OAuthError::InvalidCodeVerifier => {
            guard.addresses.record_failure(address, now);
        }
        _ => {}
    }
}

async fn grant(
    state: &AppState,
    request: Request<Body>,
    client_id: &mut Option<String>,
) -> Result<TokenResponse, OAuthError> {
    let (headers, params) = form_post(request).await?;
    if params.repeated().is_some() {
        // RFC 6749 §3.2: parameters MUST NOT be included more than once.
        return Err(OAuthError::InvalidRequest(
            "a parameter was sent more than once",
        ));
    }
    let param = |name| params.get(name);
    let grant_type = param("grant_type");
    if !matches!(grant_type, Some("authorization_code" | "refresh_token")) {
        return Err(OAuthError::UnsupportedGrantType);
    }
    let creds = client_credentials(&headers, &params)?.ok_or(OAuthError::InvalidClientId)?;
    *client_id = Some(creds.client_id.clone());
    let authority = &state.authority;
    if let Some(retry_after_secs) = state
        .guard
        .clients
        .blocked(&creds.client_id, authority.now())
    {
        return Err(OAuthError::RateLimited { retry_after_secs });
    }
    match grant_type {
        Some("refresh_token") => {
            let token = param("refresh_token")
                .ok_or(OAuthError::InvalidRequest("refresh_token is required"))?;
            authority
                .refresh(&creds, &RefreshToken::new(token), param("scope"))
                .await
        }
        _ => {
            let code = param("code").ok_or(OAuthError::InvalidRequest("code is required"))?;
            authority
                .exchange_code(
                    &creds,
                    &AuthorizationCode::new(code),
                    param("redirect_uri"),
                    param("code_verifier").map(CodeVerifier::new).as_ref(),
                )
                .await
        }
    }
}
