//! `/services/oauth2/revoke` and `/services/oauth2/introspect`.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tessera_proto::PresentedToken;

use crate::error::WebError;
use crate::extract::{OAuthForm, RequestSource, RevocationForm};
use crate::reply::{json, no_store};
use crate::AppState;

/// `POST /services/oauth2/revoke` (form `token=`) and `GET /services/oauth2/revoke?token=`.
/// Possession of the token is enough (docs/salesforce-compatibility.md, "Revocation"): 200 with
/// an empty body.
pub async fn revoke(
    State(state): State<AppState>,
    RequestSource(source): RequestSource,
    form: RevocationForm,
) -> Result<Response, WebError> {
    let token = PresentedToken::new(form.params.get("token").unwrap_or_default());
    state.authority.revoke(&token, &source).await?;
    let mut response = StatusCode::OK.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `POST /services/oauth2/introspect` (RFC 7662), for the calling client's own tokens.
pub async fn introspect(
    State(state): State<AppState>,
    RequestSource(source): RequestSource,
    form: OAuthForm,
) -> Result<Response, WebError> {
    let token = form.params.get("token").map(PresentedToken::new);
    let answer = state
        .authority
        .introspect(form.credentials, token.as_ref(), &source)
        .await?;
    Ok(no_store(json(StatusCode::OK, &answer)))
}
