//! Finding an issuer's endpoints: RFC 8414, then OpenID Connect discovery, then Salesforce's
//! fixed paths.

use serde::Deserialize;

use crate::credential::Endpoints;
use crate::error::ClientError;
use crate::oauth::get_json;

#[derive(Deserialize)]
struct Metadata {
    issuer: Option<String>,
    token_endpoint: Option<String>,
    revocation_endpoint: Option<String>,
    introspection_endpoint: Option<String>,
    authorization_endpoint: Option<String>,
    jwks_uri: Option<String>,
}

/// The well-known URLs to try, in order. RFC 8414 §3.1 inserts the well-known segment between
/// the host and the issuer's path; OpenID Connect Discovery appends it.
fn candidates(issuer: &url::Url) -> Vec<String> {
    let origin = issuer.origin().ascii_serialization();
    let path = issuer.path().trim_end_matches('/');
    let base = format!("{origin}{path}");
    vec![
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!("{base}/.well-known/openid-configuration"),
    ]
}

/// The metadata document at `url`; `None` when there is none there (an error status, or not a
/// document of ours). No answer at all is a transient error.
async fn metadata_at(
    http: &reqwest::Client,
    issuer: &str,
    url: &str,
) -> Result<Option<Metadata>, ClientError> {
    let response = get_json(http, url)
        .send()
        .await
        .map_err(|e| ClientError::transient(format!("cannot reach the issuer {issuer}: {e}")))?;
    if !response.status().is_success() {
        tracing::debug!(%url, status = %response.status(), "no metadata here");
        return Ok(None);
    }
    let body = response.bytes().await.unwrap_or_default();
    let metadata = serde_json::from_slice::<Metadata>(&body).ok();
    if metadata.is_none() {
        tracing::debug!(%url, "not a metadata document");
    }
    Ok(metadata)
}

/// How discovery treats the issuer's URL scheme.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiscoveryOptions {
    /// Allow plain `http` for hosts other than loopback. Off by default: the secret, the code
    /// and the tokens would travel in clear (RFC 6749 §3.1, §3.2 require TLS at the
    /// authorization and token endpoints). Loopback (127.0.0.0/8, ::1, `localhost`) is
    /// always allowed, for servers on the same machine.
    pub insecure_http: bool,
}

/// Whether `url` names a host on this machine: 127.0.0.0/8, ::1 or `localhost`.
fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// `text` as an http(s) URL that may carry credentials under `options`: https, or http to a
/// loopback host, or http anywhere when `insecure_http` is set. Decided from the URL alone,
/// before any name is resolved or request sent.
pub fn check_url(text: &str, options: DiscoveryOptions) -> Result<url::Url, ClientError> {
    let url = url::Url::parse(text)
        .map_err(|e| ClientError::Protocol(format!("{text:?} is not a URL: {e}")))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if options.insecure_http || is_loopback(&url) => Ok(url),
        "http" => Err(ClientError::InsecureHttp {
            url: text.to_owned(),
        }),
        _ => Err(ClientError::Protocol(format!(
            "{text:?} is not an http(s) URL"
        ))),
    }
}

fn same_issuer(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// The endpoints of `issuer`: from its RFC 8414 metadata, else its OpenID Connect discovery
/// document, else Salesforce's paths under it (`/services/oauth2/token`, `…/revoke`,
/// `…/introspect`, `…/authorize`, and the JWKS at `/id/keys`). The JWKS is the document's
/// `jwks_uri`, else the OpenID Connect document's when the RFC 8414 one names none, else
/// unknown (then looked for at `/id/keys`, [`Endpoints::jwks`]).
///
/// A document that names another issuer is refused (RFC 8414 §3.3: it could send the tokens
/// elsewhere). An issuer that cannot be reached at all is a transient error, not a reason to
/// guess.
///
/// A plain-http issuer on a host other than loopback is refused before any request
/// ([`ClientError::InsecureHttp`]), and so is a document naming a plain-http endpoint there;
/// [`discover_with`] and [`DiscoveryOptions::insecure_http`] allow them.
pub async fn discover(http: &reqwest::Client, issuer: &str) -> Result<Endpoints, ClientError> {
    discover_with(http, issuer, DiscoveryOptions::default()).await
}

/// [`discover`] with options.
#[tracing::instrument(skip_all, fields(issuer = issuer))]
pub async fn discover_with(
    http: &reqwest::Client,
    issuer: &str,
    options: DiscoveryOptions,
) -> Result<Endpoints, ClientError> {
    let parsed = check_url(issuer, options)?;
    let issuer = issuer.trim_end_matches('/');
    let candidates = candidates(&parsed);
    for (at, url) in candidates.iter().enumerate() {
        let Some(metadata) = metadata_at(http, issuer, url).await? else {
            continue;
        };
        let Some(token) = metadata.token_endpoint else {
            continue;
        };
        let named = metadata.issuer.unwrap_or_default();
        if !same_issuer(&named, issuer) {
            return Err(ClientError::Protocol(format!(
                "{url} describes the issuer {named:?}, not {issuer:?}"
            )));
        }
        // RFC 8414 metadata need not name the JWKS, which is an OpenID Connect matter: the
        // OpenID Connect document of the same issuer may.
        let mut jwks_uri = metadata.jwks_uri;
        for later in candidates.iter().skip(at + 1) {
            if jwks_uri.is_some() {
                break;
            }
            if let Ok(Some(more)) = metadata_at(http, issuer, later).await {
                if more
                    .issuer
                    .as_deref()
                    .is_some_and(|i| same_issuer(i, issuer))
                {
                    jwks_uri = more.jwks_uri;
                }
            }
        }
        for endpoint in [Some(&token), metadata.authorization_endpoint.as_ref()]
            .into_iter()
            .chain([
                metadata.revocation_endpoint.as_ref(),
                metadata.introspection_endpoint.as_ref(),
                jwks_uri.as_ref(),
            ])
            .flatten()
        {
            check_url(endpoint, options)?;
        }
        return Ok(Endpoints {
            issuer: issuer.to_owned(),
            token,
            revocation: metadata.revocation_endpoint,
            introspection: metadata.introspection_endpoint,
            authorization: metadata.authorization_endpoint,
            jwks_uri,
        });
    }
    tracing::debug!("no discovery document; using Salesforce's paths");
    Ok(Endpoints::salesforce(issuer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_urls_follow_rfc_8414_then_oidc() {
        let plain = url::Url::parse("https://login.example.com/").unwrap();
        assert_eq!(
            candidates(&plain),
            [
                "https://login.example.com/.well-known/oauth-authorization-server",
                "https://login.example.com/.well-known/openid-configuration"
            ]
        );
        let tenant = url::Url::parse("https://idp.example.com/tenant/a").unwrap();
        assert_eq!(
            candidates(&tenant),
            [
                "https://idp.example.com/.well-known/oauth-authorization-server/tenant/a",
                "https://idp.example.com/tenant/a/.well-known/openid-configuration"
            ]
        );
    }

    #[test]
    fn a_plain_http_issuer_off_loopback_is_refused_unless_allowed() {
        let strict = DiscoveryOptions::default();
        let lenient = DiscoveryOptions {
            insecure_http: true,
        };
        for refused in [
            "http://login.example.com",
            "http://login.example.com:8080/tenant",
            "http://10.0.0.1/",
            "http://[2001:db8::1]/",
            "http://localhost.example.com/",
            "http://128.0.0.1/",
        ] {
            let error = check_url(refused, strict).unwrap_err();
            assert!(
                matches!(error, ClientError::InsecureHttp { .. }),
                "{refused}: {error}"
            );
            let text = error.to_string();
            assert!(
                text.contains("in clear") && text.contains("--insecure-http"),
                "{text}"
            );
            assert!(check_url(refused, lenient).is_ok(), "{refused}");
        }
        for allowed in [
            "https://login.example.com",
            "http://127.0.0.1:8080",
            "http://127.9.8.7/",
            "http://[::1]:8080/",
            "http://localhost:8080",
            "http://LOCALHOST/",
        ] {
            assert!(check_url(allowed, strict).is_ok(), "{allowed}");
        }
        assert!(matches!(
            check_url("ftp://login.example.com", lenient),
            Err(ClientError::Protocol(_))
        ));
    }

    #[tokio::test]
    async fn discovery_of_a_plain_http_issuer_sends_no_request() {
        // A client whose every request would fail loudly if it were sent: the proxy does not
        // exist. Refusing comes first, so the error is InsecureHttp, not a transport error.
        let http = reqwest::Client::builder()
            .proxy(reqwest::Proxy::all("http://127.0.0.1:1").unwrap())
            .build()
            .unwrap();
        let error = discover(&http, "http://login.example.com")
            .await
            .unwrap_err();
        assert!(matches!(error, ClientError::InsecureHttp { .. }), "{error}");
    }

    #[test]
    fn salesforce_fallback_paths() {
        let e = Endpoints::salesforce("https://login.salesforce.com/");
        assert_eq!(
            e.token,
            "https://login.salesforce.com/services/oauth2/token"
        );
        assert_eq!(
            e.revocation.as_deref(),
            Some("https://login.salesforce.com/services/oauth2/revoke")
        );
        assert_eq!(
            e.jwks_uri.as_deref(),
            Some("https://login.salesforce.com/id/keys")
        );
    }
}
