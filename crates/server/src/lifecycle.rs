//! `/services/oauth2/revoke` and `/services/oauth2/introspect`.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tessera_proto::PresentedToken;

use crate::error::WebError;
use crate::extract::{OAuthForm, RequestSource, RevocationForm};
use crate::observe::for_client;
use crate::reply::{json, no_store};
use crate::AppState;

/// `POST /services/oauth2/revoke` (form `token=`) and `GET /services/oauth2/revoke?token=`.
/// Possession of the token is enough (docs/salesforce-compatibility.md, "Revocation"): 200 with
/// an empty body.
pub async fn revoke(
    State(state): State<AppState>,
    RequestSource(source): RequestSource,
    form: RevocationForm,
) -> Response {
    let token = PresentedToken::new(form.params.get("token").unwrap_or_default());
    let revoked = match state.authority.revoke(&token, &source).await {
        Ok(revoked) => revoked,
        Err(error) => return WebError::from(error).into_response(),
    };
    let mut response = StatusCode::OK.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for_client(Ok::<_, WebError>(response), revoked.client_id())
}

/// `POST /services/oauth2/introspect` (RFC 7662), for the calling client's own tokens.
pub async fn introspect(
    State(state): State<AppState>,
    RequestSource(source): RequestSource,
    form: OAuthForm,
) -> Response {
    let client_id = form.credentials.as_ref().map(|c| c.client_id.clone());
    let token = form.params.get("token").map(PresentedToken::new);
    let answer = state
        .authority
        .introspect(form.credentials, token.as_ref(), &source)
        .await
        .map(|answer| no_store(json(StatusCode::OK, &answer)))
        .map_err(WebError::from);
    for_client(answer, client_id.as_deref())
}
