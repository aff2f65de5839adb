//! The single edge where domain errors become HTTP responses.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tessera_proto::{OAuthError, SessionError};

pub const JSON_UTF8: &str = "application/json;charset=UTF-8";

/// A JSON body with Salesforce's content type.
pub fn json(status: StatusCode, body: &impl serde::Serialize) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    (status, [(header::CONTENT_TYPE, JSON_UTF8)], bytes).into_response()
}

/// A token-endpoint body (success or error): never cached (RFC 6749 §5.1).
pub fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

pub fn oauth_error(error: &OAuthError) -> Response {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = no_store(json(status, &error.body()));
    let headers = response.headers_mut();
    if let OAuthError::InvalidClientCredentials { via_basic: true } = error {
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"tessera\""),
        );
    }
    if let OAuthError::MethodNotAllowed = error {
        headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
    }
    if let Some(secs) = error.retry_after_secs() {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// The REST API's answer to a missing, invalid or under-scoped token (salesforce-compat.md §6.2).
pub fn session_error(error: SessionError) -> Response {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    let mut response = json(status, &error.body());
    if error == SessionError::InvalidSession {
        let headers = response.headers_mut();
        headers.append(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
        headers.append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
    }
    response
}

/// Salesforce REST error array: `[{"message": …, "errorCode": …}]`.
pub fn api_error(status: StatusCode, code: &str, message: &str) -> Response {
    json(
        status,
        &serde_json::json!([{ "message": message, "errorCode": code }]),
    )
}

pub async fn not_found() -> Response {
    api_error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource does not exist",
    )
}
