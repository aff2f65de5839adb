//! What every request leaves behind: its HTTP metrics and, when `access_log` is on, one line
//! of the access log (target `tessera::access`). Both name the route by its template
//! (`/id/{org_id}/{user_id}`), never the raw path, and nothing of the request's content: no
//! query string, no body, no header but the ones the source address is read from, so that no
//! token, code, secret or password can reach them.
//!
//! Every request also runs inside a `request` span with its method, route template and
//! request id ([`RequestId`]), so every log line written while it is handled, the access log's
//! included, says which request it belongs to. The id is echoed in `X-Request-Id`.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{counter, histogram};
use tracing::Instrument;

use crate::metrics::{HTTP_REQUESTS, HTTP_REQUEST_SECONDS};
use crate::request_id::{RequestId, REQUEST_ID_HEADER};
use crate::AppState;

/// The route label of a request no route matched (404s, scans): one series for all of them.
const UNMATCHED: &str = "unmatched";

/// The client a request was made for, as the handler that learnt it puts it into the
/// response's extensions (token, revocation, introspection, authorization); the access log
/// reads it from there. A client id is public (it is in every authorization URL).
#[derive(Debug, Clone)]
pub(crate) struct KnownClient(pub String);

/// Longest client id the access log repeats. Ours are 53 characters; a longer one was made up
/// by the request, and is cut so that a request cannot make a 64 KiB log line.
const MAX_LOGGED_CLIENT_ID: usize = 128;

/// `result` as a response, tagged with the client it was for.
pub(crate) fn for_client(
    result: Result<Response, impl IntoResponse>,
    client_id: Option<&str>,
) -> Response {
    let mut response = match result {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    if let Some(client_id) = client_id {
        let mut end = client_id.len().min(MAX_LOGGED_CLIENT_ID);
        while !client_id.is_char_boundary(end) {
            end -= 1;
        }
        let cut = client_id.get(..end).unwrap_or_default();
        response
            .extensions_mut()
            .insert(KnownClient(cut.to_owned()));
    }
    response
}

/// The middleware: times the request, counts it, and logs it, all inside its span.
pub(crate) async fn observe(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    // A shared string: cloning it is a reference count, not a copy.
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
    let method = method_label(request.method());
    let source = state
        .access_log
        .then(|| crate::extract::source_address(request.extensions(), request.headers(), &state));
    let request_id = RequestId::of_request(request.headers());
    // The route template and the method label, never the URI: a query string can hold a code.
    let span = tracing::info_span!("request", method, route, request_id = request_id.as_str(),);
    let mut response = next.run(request).instrument(span.clone()).await;
    if let Some(value) = request_id.header_value() {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let seconds = started.elapsed().as_secs_f64();
    let status = response.status().as_u16();
    counter!(HTTP_REQUESTS, "method" => method, "route" => route.to_owned(), "status" => status.to_string())
        .increment(1);
    histogram!(HTTP_REQUEST_SECONDS, "route" => route.to_owned()).record(seconds);
    if let Some(source) = source {
        let client_id = response
            .extensions()
            .get::<KnownClient>()
            .map(|KnownClient(id)| id.as_str());
        span.in_scope(|| {
            tracing::info!(
                target: "tessera::access",
                method,
                route,
                status,
                latency_ms = (seconds * 1e6).round() / 1e3,
                client_id,
                source = source.map(tracing::field::display),
                "request"
            )
        });
    }
    response
}

/// The method as a label: the standard ones by name, anything else as `other`, so that a
/// client cannot grow the number of series with made-up methods.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logged(client_id: &str) -> String {
        let response = for_client(Ok::<_, Response>(Response::default()), Some(client_id));
        response
            .extensions()
            .get::<KnownClient>()
            .unwrap()
            .0
            .clone()
    }

    #[test]
    fn a_made_up_client_id_is_cut_on_a_character_boundary() {
        let ours = format!("3MVG9{}", "a".repeat(48));
        assert_eq!(logged(&ours), ours);
        let long = "é".repeat(100);
        let cut = logged(&long);
        assert!(cut.len() <= MAX_LOGGED_CLIENT_ID && cut.len() >= MAX_LOGGED_CLIENT_ID - 1);
        assert!(long.starts_with(&cut));
    }

    #[test]
    fn made_up_methods_share_one_label() {
        assert_eq!(method_label(&Method::POST), "POST");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
    }
}
