//! Reading requests: form bodies, client credentials and bearer tokens, strictly.

use axum::body::{to_bytes, Body};
use axum::http::{header, HeaderMap, Method, Request};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use tessera_core::ClientCredentials;
use tessera_proto::{decode_component, ClientSecret, OAuthError, Params};

use crate::MAX_BODY_BYTES;

/// Reads a `POST` form request (RFC 6749 §3.2): method, content type and size are checked, the
/// body is decoded strictly, and the query string's parameters are added (Salesforce accepts
/// them there, salesforce-compat.md §4.1). Repeats across both are caught by [`Params::single`].
pub async fn form_post(request: Request<Body>) -> Result<(HeaderMap, Params), OAuthError> {
    let (parts, body) = request.into_parts();
    if parts.method != Method::POST {
        return Err(OAuthError::MethodNotAllowed);
    }
    let query = match parts.uri.query() {
        Some(q) => {
            Params::parse(q).map_err(|_| OAuthError::InvalidRequest("malformed query string"))?
        }
        None => Params::default(),
    };
    // RFC 6749 §2.3.1: a client secret MUST NOT be sent in the request URI.
    if query.pairs().iter().any(|(k, _)| k == "client_secret") {
        return Err(OAuthError::InvalidRequest(
            "client_secret must not be sent in the URL",
        ));
    }
    if !is_form_content_type(&parts.headers) {
        return Err(OAuthError::UnsupportedContentType);
    }
    let bytes = to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| OAuthError::BodyTooLarge)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| OAuthError::InvalidRequest("malformed request body"))?;
    let mut params =
        Params::parse(text).map_err(|_| OAuthError::InvalidRequest("malformed request body"))?;
    params.extend(query);
    Ok((parts.headers, params))
}

fn is_form_content_type(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| {
            media
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// Client credentials from HTTP Basic or the body, never both (RFC 6749 §2.3: one method per
/// request). `Ok(None)` when the request names no client at all.
pub fn client_credentials(
    headers: &HeaderMap,
    params: &Params,
) -> Result<Option<ClientCredentials>, OAuthError> {
    if params.is_repeated("client_id") || params.is_repeated("client_secret") {
        return Err(OAuthError::InvalidRequest(
            "a parameter was sent more than once",
        ));
    }
    let body_id = params.get("client_id");
    let body_secret = params.get("client_secret");
    let Some(authorization) = headers.get(header::AUTHORIZATION) else {
        return Ok(body_id.map(|id| ClientCredentials {
            client_id: id.to_owned(),
            secret: body_secret.map(ClientSecret::new),
            via_basic: false,
        }));
    };
    let (id, secret) = parse_basic(authorization.to_str().unwrap_or_default())
        .ok_or(OAuthError::InvalidClientCredentials { via_basic: true })?;
    if body_secret.is_some() {
        return Err(OAuthError::InvalidRequest(
            "client credentials were sent in more than one way",
        ));
    }
    if body_id.is_some_and(|body| body != id) {
        return Err(OAuthError::InvalidRequest(
            "client_id differs from the Authorization header",
        ));
    }
    Ok(Some(ClientCredentials {
        client_id: id,
        secret: (!secret.is_empty()).then(|| ClientSecret::new(secret)),
        via_basic: true,
    }))
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1, Appendix B): split on
/// the first `:`, then form-decode each half. The scheme is case-insensitive.
fn parse_basic(value: &str) -> Option<(String, String)> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let id = decode_component(id).ok()?;
    let secret = decode_component(secret).ok()?;
    (!id.is_empty()).then_some((id, secret))
}

/// The access token of a REST or identity request: `Authorization: Bearer …` or `OAuth …`
/// (salesforce-compat.md §6.2).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth"))
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(raw: &str) -> String {
        format!("Basic {}", STANDARD.encode(raw))
    }

    #[test]
    fn basic_credentials_are_form_decoded_after_the_first_colon() {
        assert_eq!(
            parse_basic(&basic("my%3Aclient:p%2Bss%20word:x")),
            Some(("my:client".into(), "p+ss word:x".into()))
        );
        assert_eq!(
            parse_basic(&basic("id:a+b")),
            Some(("id".into(), "a b".into()))
        );
        assert_eq!(
            parse_basic(&format!("basic {}", STANDARD.encode("id:s"))),
            Some(("id".into(), "s".into()))
        );
    }

    #[test]
    fn malformed_basic_is_refused() {
        for bad in [
            "Basic",
            "Basic !!!",
            &basic("nocolon"),
            &basic(":secret"),
            &basic("%%%%:x"),
            "Bearer abc",
        ] {
            assert_eq!(parse_basic(bad), None, "{bad}");
        }
    }

    #[test]
    fn bearer_and_oauth_schemes_are_accepted() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "OAuth 00D!abc".parse().unwrap());
        assert_eq!(bearer_token(&headers), Some("00D!abc"));
        headers.insert(header::AUTHORIZATION, "bearer 00D!abc".parse().unwrap());
        assert_eq!(bearer_token(&headers), Some("00D!abc"));
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer_token(&headers), None);
    }
}
