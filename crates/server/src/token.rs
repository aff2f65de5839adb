//! `POST /services/oauth2/token`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use tessera_core::TokenRequest;

use crate::error::WebError;
use crate::extract::{OAuthForm, RequestSource};
use crate::observe::for_client;
use crate::reply::{json, no_store};
use crate::AppState;

pub async fn token(
    State(state): State<AppState>,
    RequestSource(source): RequestSource,
    form: OAuthForm,
) -> Response {
    let client_id = form.credentials.as_ref().map(|c| c.client_id.clone());
    let answer = async {
        let request = TokenRequest::from_params(&form.params)?;
        let response = state
            .authority
            .token_with_proof(form.credentials, request, &source, form.dpop.as_ref())
            .await?;
        Ok::<_, WebError>(no_store(json(StatusCode::OK, &response)))
    };
    for_client(answer.await, client_id.as_deref())
}
