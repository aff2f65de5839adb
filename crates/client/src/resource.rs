//! A request to the resource server, the part the token manager's two front ends
//! ([`crate::AuthorizedClient`] and [`crate::TokenMiddleware`]) and the revocation call share:
//! where it goes, how the access token is presented, and how a refused session reads.

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};
use tessera_proto::dpop::{DPOP_HEADER, DPOP_SCHEME};
use tessera_proto::{AccessToken, ExposeSecret};

use crate::dpop::Prover;
use crate::error::ClientError;

/// Whether a 401's `WWW-Authenticate` says the session is invalid.
fn challenge_says_invalid(headers: &HeaderMap) -> bool {
    for value in headers.get_all(WWW_AUTHENTICATE) {
        let text = value
            .to_str()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let scheme = text.split([' ', ',']).next().unwrap_or_default();
        if scheme == "token" {
            return true;
        }
        // RFC 6750 §3.1 (and RFC 9449 §7.1 for DPoP): only invalid_token means "get a new
        // token"; invalid_request and insufficient_scope would fail the same way again.
        if (scheme == "bearer" || scheme == "dpop") && text.contains("error=\"invalid_token\"") {
            return true;
        }
    }
    false
}

/// Where API requests go: the instance, or for RFC servers without one, the issuer.
pub(crate) fn resource_base(credential: &crate::Credential) -> &str {
    if credential.instance_url.is_empty() {
        &credential.endpoints.issuer
    } else {
        &credential.instance_url
    }
}

/// How `token` is presented for `method` on `url`: `Authorization: Bearer <token>`, or for a
/// DPoP-bound token (`prover` given) `Authorization: DPoP <token>` with a fresh proof naming
/// the token's hash (RFC 9449 §7.1). Marked sensitive so that no debug output shows them.
pub(crate) fn authorization(
    token: &AccessToken,
    prover: Option<&Prover>,
    method: &Method,
    url: &url::Url,
) -> Result<HeaderMap, ClientError> {
    let scheme = if prover.is_some() {
        DPOP_SCHEME
    } else {
        "Bearer"
    };
    let mut value =
        HeaderValue::from_str(&format!("{scheme} {}", token.expose_secret())).map_err(|_| {
            ClientError::Protocol("the access token is not a valid header value".into())
        })?;
    value.set_sensitive(true);
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, value);
    if let Some(prover) = prover {
        let proof = prover.header(method.as_str(), url.as_str(), Some(token.expose_secret()))?;
        headers.insert(DPOP_HEADER, proof);
    }
    Ok(headers)
}

/// A resource server's 401 `WWW-Authenticate: DPoP error="use_dpop_nonce"` (RFC 9449 §9).
fn challenge_asks_for_nonce(headers: &HeaderMap) -> bool {
    headers.get_all(WWW_AUTHENTICATE).iter().any(|value| {
        let text = value
            .to_str()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        text.starts_with("dpop") && text.contains("error=\"use_dpop_nonce\"")
    })
}

/// Whether to send a request again with a new nonce: the response is a 401 asking for one, and
/// it came with one (now cached by `prover`).
pub(crate) fn retry_with_nonce(
    prover: Option<&Prover>,
    url: &url::Url,
    response: &Response,
) -> bool {
    let Some(prover) = prover else {
        return false;
    };
    let fresh = prover.nonces.remember(url.as_str(), response.headers());
    fresh
        && response.status() == StatusCode::UNAUTHORIZED
        && challenge_asks_for_nonce(response.headers())
}

/// Sends the request `build` makes with `token`'s authorization headers, and once more with a
/// new proof when the server asks for a nonce.
pub(crate) async fn send_authorized(
    token: &AccessToken,
    prover: Option<&Prover>,
    method: &Method,
    url: &url::Url,
    build: impl Fn(HeaderMap) -> reqwest::RequestBuilder,
) -> Result<Response, ClientError> {
    let send = |headers| async {
        build(headers).send().await.map_err(|e| {
            ClientError::transient(format!(
                "request to {} failed: {e}",
                url.origin().ascii_serialization()
            ))
        })
    };
    let response = send(authorization(token, prover, method, url)?).await?;
    if !retry_with_nonce(prover, url, &response) {
        return Ok(response);
    }
    tracing::debug!("the resource server asked for a DPoP nonce; sending again with it");
    let response = send(authorization(token, prover, method, url)?).await?;
    remember_nonce(prover, url, &response);
    Ok(response)
}

/// Keeps the nonce a response carries, if any, for the next proof to its origin.
pub(crate) fn remember_nonce(prover: Option<&Prover>, url: &url::Url, response: &Response) {
    if let Some(prover) = prover {
        prover.nonces.remember(url.as_str(), response.headers());
    }
}

/// `Err(())` when the response says the session is invalid; otherwise the response, rebuilt
/// if its body had to be read to tell.
pub(crate) async fn refused_session(
    response: Response,
) -> Result<Result<Response, ()>, ClientError> {
    if response.status() != StatusCode::UNAUTHORIZED {
        return Ok(Ok(response));
    }
    if challenge_says_invalid(response.headers()) {
        return Ok(Err(()));
    }
    let status = response.status();
    let version = response.version();
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .await
        .map_err(|e| ClientError::transient(format!("reading a 401 response: {e}")))?;
    if String::from_utf8_lossy(&body).contains("INVALID_SESSION_ID") {
        return Ok(Err(()));
    }
    let mut rebuilt = http::Response::new(body);
    *rebuilt.status_mut() = status;
    *rebuilt.version_mut() = version;
    *rebuilt.headers_mut() = headers;
    Ok(Ok(Response::from(rebuilt)))
}

/// `target` is a path relative to the instance URL (`/services/data/v65.0/sobjects`) or a
/// full URL on the instance's (or, for RFC servers without one, the issuer's) origin: the
/// token is never sent to another origin.
pub(crate) fn resolve_target(base: &str, target: &str) -> Result<url::Url, ClientError> {
    let base_url = url::Url::parse(base)
        .map_err(|e| ClientError::Protocol(format!("instance URL {base:?}: {e}")))?;
    if let Ok(absolute) = url::Url::parse(target) {
        if absolute.origin() != base_url.origin() {
            return Err(ClientError::Protocol(format!(
                "refusing to send the access token to {}, which is not {}",
                absolute.origin().ascii_serialization(),
                base_url.origin().ascii_serialization()
            )));
        }
        return Ok(absolute);
    }
    let joined = format!(
        "{}/{}",
        base.trim_end_matches('/'),
        target.trim_start_matches('/')
    );
    url::Url::parse(&joined)
        .map_err(|e| ClientError::Protocol(format!("{target:?} is not a usable path: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(WWW_AUTHENTICATE, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn salesforce_and_rfc_6750_challenges_mean_refresh() {
        assert!(challenge_says_invalid(&challenge(&["Token"])));
        assert!(challenge_says_invalid(&challenge(&[
            "Bearer error=\"invalid_token\""
        ])));
        assert!(challenge_says_invalid(&challenge(&[
            "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"expired\""
        ])));
    }

    #[test]
    fn a_dpop_nonce_challenge_is_told_from_an_invalid_token() {
        let nonce = challenge(&["DPoP error=\"use_dpop_nonce\", error_description=\"nonce\""]);
        assert!(challenge_asks_for_nonce(&nonce));
        assert!(!challenge_says_invalid(&nonce));
        let invalid = challenge(&["DPoP algs=\"ES256\", error=\"invalid_token\""]);
        assert!(challenge_says_invalid(&invalid));
        assert!(!challenge_asks_for_nonce(&invalid));
        assert!(!challenge_asks_for_nonce(&challenge(&[
            "Bearer error=\"use_dpop_nonce\""
        ])));
    }

    #[test]
    fn other_challenges_leave_it_to_the_body() {
        assert!(!challenge_says_invalid(&HeaderMap::new()));
        assert!(!challenge_says_invalid(&challenge(&[
            "Bearer error=\"insufficient_scope\""
        ])));
        assert!(!challenge_says_invalid(&challenge(&["Basic realm=\"x\""])));
    }

    #[test]
    fn targets_resolve_on_the_instance_and_never_leave_it() {
        let base = "https://na1.example.com";
        assert_eq!(
            resolve_target(base, "/services/data/v65.0/")
                .unwrap()
                .as_str(),
            "https://na1.example.com/services/data/v65.0/"
        );
        assert_eq!(
            resolve_target(base, "services/data").unwrap().as_str(),
            "https://na1.example.com/services/data"
        );
        assert!(resolve_target(base, "https://na1.example.com/x").is_ok());
        assert!(matches!(
            resolve_target(base, "https://evil.example.net/x"),
            Err(ClientError::Protocol(_))
        ));
    }
}
