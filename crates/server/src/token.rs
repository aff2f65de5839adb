//! `POST /services/oauth2/token`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::Response;
use tessera_proto::{AuthorizationCode, CodeVerifier, OAuthError, RefreshToken};

use crate::extract::{client_credentials, form_post};
use crate::reply::{json, no_store, oauth_error};
use crate::AppState;

pub async fn token(State(state): State<AppState>, request: Request<Body>) -> Response {
    match grant(&state, request).await {
        Ok(body) => no_store(json(StatusCode::OK, &body)),
        Err(error) => oauth_error(&error),
    }
}

async fn grant(
    state: &AppState,
    request: Request<Body>,
) -> Result<tessera_proto::TokenResponse, OAuthError> {
    let (headers, params) = form_post(request).await?;
    if params.first_repeated().is_some() {
        // RFC 6749 §3.2: parameters MUST NOT be included more than once.
        return Err(OAuthError::InvalidRequest(
            "a parameter was sent more than once",
        ));
    }
    let param = |name| params.single(name).ok().flatten();
    let grant_type = param("grant_type");
    if !matches!(grant_type, Some("authorization_code" | "refresh_token")) {
        return Err(OAuthError::UnsupportedGrantType);
    }
    let creds = client_credentials(&headers, &params)?.ok_or(OAuthError::InvalidClientId)?;
    let authority = &state.authority;
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
