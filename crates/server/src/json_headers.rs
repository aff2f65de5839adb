//! Every JSON response, whatever its route, is neither stored by a cache (`Cache-Control:
//! no-store`) nor sniffed as another type (`X-Content-Type-Options: nosniff`): userinfo, the
//! identity URL and `/services/data` carry personal data, and one layer cannot forget a route
//! (docs/security.md, "Response headers"). A header a handler set itself is kept: the token
//! endpoint's `no-store` with `Pragma: no-cache` (RFC 6749 §5.1) stays as it is.

use axum::http::{header, HeaderValue, Response};
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;

/// Adds both headers to every JSON response `router` gives that lacks them.
pub(crate) fn on_json_responses<S>(router: Router<S>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            |response: &Response<axum::body::Body>| {
                is_json(response).then_some(HeaderValue::from_static("no-store"))
            },
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            |response: &Response<axum::body::Body>| {
                is_json(response).then_some(HeaderValue::from_static("nosniff"))
            },
        ))
}

fn is_json<B>(response: &Response<B>) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(is_json_type)
}

/// `application/json` or a structured `application/…+json` type (RFC 6839 §3.1), with or
/// without parameters, in any case.
fn is_json_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::is_json_type;

    #[test]
    fn json_and_structured_json_types_are_json_and_others_are_not() {
        for json in [
            "application/json",
            "application/json;charset=UTF-8",
            "Application/JSON; charset=utf-8",
            "application/jwk-set+json",
            "application/problem+json",
        ] {
            assert!(is_json_type(json), "{json}");
        }
        for other in [
            "text/plain",
            "text/html; charset=utf-8",
            "application/jsonx",
            "text/json+html",
            "application/x-www-form-urlencoded",
            "",
        ] {
            assert!(!is_json_type(other), "{other}");
        }
    }
}
