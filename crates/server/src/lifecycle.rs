//! `/services/oauth2/revoke` and `/services/oauth2/introspect`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use tessera_core::lifecycle::RevokeOutcomeError;
use tessera_proto::{OAuthError, Params, RevokeError};

use crate::extract::{client_credentials, form_post};
use crate::reply::{json, no_store, oauth_error};
use crate::token::record_failure;
use crate::{source_address, AppState};

/// Revocation errors are form-encoded, as Salesforce sends them (jsforce parses them with
/// `querystring.parse`).
fn revoke_error(status: StatusCode, code: &str, description: &str) -> Response {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("error", code)
        .append_pair("error_description", description)
        .finish();
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/x-www-form-urlencoded")],
        body,
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn revoke_oauth_error(error: &OAuthError) -> Response {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = revoke_error(status, error.code(), error.description());
    if let Some(secs) = error.retry_after_secs() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, secs.into());
    }
    response
}

/// `POST /services/oauth2/revoke` (form `token=`) and `GET /services/oauth2/revoke?token=`.
/// Possession of the token is enough (Salesforce §7).
pub async fn revoke(State(state): State<AppState>, request: Request<Body>) -> Response {
    let address = source_address(&request);
    let now = state.authority.now();
    if let Some(retry_after_secs) = state.guard.addresses.blocked(&address, now) {
        return revoke_oauth_error(&OAuthError::RateLimited { retry_after_secs });
    }
    let params = if request.method() == Method::GET {
        match Params::parse(request.uri().query().unwrap_or_default()) {
            Ok(p) => p,
            Err(_) => {
                return revoke_oauth_error(&OAuthError::InvalidRequest("malformed query string"))
            }
        }
    } else {
        match form_post(request).await {
            Ok((_, params)) => params,
            Err(e) => return revoke_oauth_error(&e),
        }
    };
    if params.contains("callback") {
        return revoke_oauth_error(&OAuthError::InvalidRequest("JSONP is not supported"));
    }
    if params.repeated().is_some() {
        return revoke_oauth_error(&OAuthError::InvalidRequest(
            "a parameter was sent more than once",
        ));
    }
    let token = match params.get("token") {
        Some(t) => t,
        None => {
            return revoke_error(
                StatusCode::BAD_REQUEST,
                RevokeError::InvalidRequest.code(),
                RevokeError::InvalidRequest.description(),
            )
        }
    };
    match state.authority.revoke(token).await {
        Ok(_) => {
            let mut response = StatusCode::OK.into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(RevokeOutcomeError::Revoke(e)) => {
            // Unknown tokens are what guessing produces.
            state.guard.addresses.record_failure(&address, now);
            revoke_error(StatusCode::BAD_REQUEST, e.code(), e.description())
        }
        Err(RevokeOutcomeError::Store(e)) => {
            // RFC 7009 §2.2.1: on 503 the client must assume the token still exists.
            revoke_oauth_error(&tessera_core::authority::store_failure(e))
        }
    }
}

/// `POST /services/oauth2/introspect` (RFC 7662), for the calling client's own tokens.
pub async fn introspect(State(state): State<AppState>, request: Request<Body>) -> Response {
    let address = source_address(&request);
    let now = state.authority.now();
    if let Some(retry_after_secs) = state.guard.addresses.blocked(&address, now) {
        return oauth_error(&OAuthError::RateLimited { retry_after_secs });
    }
    let (headers, params) = match form_post(request).await {
        Ok(p) => p,
        Err(e) => return oauth_error(&e),
    };
    if params.repeated().is_some() {
        return oauth_error(&OAuthError::InvalidRequest(
            "a parameter was sent more than once",
        ));
    }
    let creds = match client_credentials(&headers, &params) {
        Ok(Some(c)) => c,
        Ok(None) => return oauth_error(&OAuthError::InvalidClientId),
        Err(e) => return oauth_error(&e),
    };
    if let Some(retry_after_secs) = state.guard.clients.blocked(&creds.client_id, now) {
        return oauth_error(&OAuthError::RateLimited { retry_after_secs });
    }
    let Some(token) = params.get("token") else {
        return oauth_error(&OAuthError::InvalidRequest("token is required"));
    };
    match state.authority.introspect(&creds, token).await {
        // Inactive answers are not counted: a resource server honestly introspects expired
        // tokens all day. Scanning needs client credentials, whose failures are counted.
        Ok(answer) => no_store(json(StatusCode::OK, &answer)),
        Err(error) => {
            record_failure(&state, &error, &address, Some(&creds.client_id));
            oauth_error(&error)
        }
    }
}
