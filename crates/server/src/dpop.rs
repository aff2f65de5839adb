//! DPoP's one cross-cutting piece of HTTP (RFC 9449 §8, §9): every answer to a request that
//! carries a proof also carries the nonce a proof may name now, whether the request succeeded
//! or was asked for a nonce — so that a client that must name one learns it without a second
//! failure, and the next nonce rides on successful responses.

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tessera_proto::dpop::{DPOP_HEADER, DPOP_NONCE_HEADER};

use crate::AppState;

pub(crate) async fn nonce_on_answers(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let carries_proof = request.headers().contains_key(DPOP_HEADER);
    let mut response = next.run(request).await;
    if carries_proof {
        if let Ok(nonce) = HeaderValue::from_str(&state.authority.dpop_nonce()) {
            response.headers_mut().insert(DPOP_NONCE_HEADER, nonce);
        }
    }
    response
}
