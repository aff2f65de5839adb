//! Finding an issuer's endpoints: RFC 8414, then OpenID Connect discovery, then Salesforce's
//! fixed paths.

use serde::Deserialize;

use crate::credential::Endpoints;
use crate::error::ClientError;
use crate::oauth::REQUEST_TIMEOUT;

#[derive(Deserialize)]
struct Metadata {
    issuer: Option<String>,
    token_endpoint: Option<String>,
    revocation_endpoint: Option<String>,
    introspection_endpoint: Option<String>,
    authorization_endpoint: Option<String>,
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

fn same_issuer(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// The endpoints of `issuer`: from its RFC 8414 metadata, else its OpenID Connect discovery
/// document, else Salesforce's paths under it (`/services/oauth2/token`, `…/revoke`,
/// `…/introspect`, `…/authorize`).
///
/// A document that names another issuer is refused (RFC 8414 §3.3: it could send the tokens
/// elsewhere). An issuer that cannot be reached at all is a transient error, not a reason to
/// guess.
#[tracing::instrument(skip_all, fields(issuer = issuer))]
pub async fn discover(http: &reqwest::Client, issuer: &str) -> Result<Endpoints, ClientError> {
    let parsed = url::Url::parse(issuer)
        .map_err(|e| ClientError::Protocol(format!("issuer {issuer:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(ClientError::Protocol(format!(
            "issuer {issuer:?} is not an http(s) URL"
        )));
    }
    let issuer = issuer.trim_end_matches('/');
    for url in candidates(&parsed) {
        let response = http
            .get(&url)
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| {
                ClientError::transient(format!("cannot reach the issuer {issuer}: {e}"))
            })?;
        if !response.status().is_success() {
            tracing::debug!(%url, status = %response.status(), "no metadata here");
            continue;
        }
        let body = response.bytes().await.unwrap_or_default();
        let Ok(metadata) = serde_json::from_slice::<Metadata>(&body) else {
            tracing::debug!(%url, "not a metadata document");
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
        return Ok(Endpoints {
            issuer: issuer.to_owned(),
            token,
            revocation: metadata.revocation_endpoint,
            introspection: metadata.introspection_endpoint,
            authorization: metadata.authorization_endpoint,
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
    }
}
