//! `POST /services/oauth2/token`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use tessera_core::TokenRequest;

use crate::error::WebError;
use crate::extract::{OAuthForm, RequestSource};
use crate::reply::{json, no_store};
use crate::AppState;

pub async fn token(
    State(state): State<AppState>,
    RequestSource(source): RequestSource,
    form: OAuthForm,
) -> Result<Response, WebError> {
    let request = TokenRequest::from_params(&form.params)?;
    let response = state
        .authority
        .token(form.credentials, request, &source)
        .await?;
    Ok(no_store(json(StatusCode::OK, &response)))
}
