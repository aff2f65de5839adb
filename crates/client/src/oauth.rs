//! The token and revocation endpoints on the wire, and how their answers are classified.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, DATE, RETRY_AFTER};
use reqwest::StatusCode;
use serde::Deserialize;
use tessera_proto::dpop::DPOP_HEADER;
use tessera_proto::{
    AccessToken, ClientSecret, ExposeSecret, IdToken, RefreshToken, TokenResponse, TokenType,
};

use crate::credential::{Credential, Endpoints};
use crate::dpop::Prover;
use crate::error::{ClientError, ReauthReason};

/// How long one token-endpoint request may take. The refresh lock is held meanwhile, so this
/// bounds how long other processes wait.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTP client suited to OAuth endpoints: no redirects (a token request must not be
/// forwarded anywhere, and `Authorization` must not follow a redirect), bounded timeouts,
/// rustls with the platform's and Mozilla's roots.
pub fn default_http_client() -> Result<reqwest::Client, ClientError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("tessera-client/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ClientError::Protocol(format!("cannot build the HTTP client: {e}")))
}

/// A GET of a JSON document (metadata, a JWKS), bounded by [`REQUEST_TIMEOUT`].
pub(crate) fn get_json(http: &reqwest::Client, url: &str) -> reqwest::RequestBuilder {
    http.get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .timeout(REQUEST_TIMEOUT)
}

/// A successful token response with the server's `Date`.
#[derive(Debug)]
pub(crate) struct TokenReply {
    pub response: TokenResponse,
    pub server_date: Option<SystemTime>,
}

/// Why one refresh request did not produce tokens.
#[derive(Debug, Clone)]
pub(crate) enum RefreshFailure {
    /// A definitive OAuth refusal of the grant or the client (4xx with an `error`).
    Rejected { error: String, description: String },
    /// Another refresh of the same token is being processed at the server.
    InProgress { description: String },
    /// Network trouble, 5xx, 429: worth retrying. `maybe_processed` is true when no answer
    /// came back, so the server may have rotated the token.
    Transient {
        message: String,
        retry_after: Option<Duration>,
        maybe_processed: bool,
    },
    /// An answer that makes no sense; `maybe_processed` as above (a 2xx with a body we cannot
    /// read may still have rotated the token).
    Protocol {
        message: String,
        maybe_processed: bool,
    },
}

impl RefreshFailure {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }

    pub fn maybe_processed(&self) -> bool {
        match self {
            Self::Transient {
                maybe_processed, ..
            }
            | Self::Protocol {
                maybe_processed, ..
            } => *maybe_processed,
            Self::Rejected { .. } | Self::InProgress { .. } => false,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Transient { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The reason to log in again, for refusals that no retry can fix.
    pub fn reauth_reason(&self) -> Option<ReauthReason> {
        let Self::Rejected { error, description } = self else {
            return None;
        };
        match error.as_str() {
            "invalid_grant" => Some(ReauthReason::RefreshTokenRejected {
                description: description.clone(),
            }),
            "invalid_client" | "invalid_client_id" | "unauthorized_client" => {
                Some(ReauthReason::ClientMisconfigured {
                    error: error.clone(),
                })
            }
            "inactive_user" | "inactive_org" => Some(ReauthReason::UserInactive),
            _ => None,
        }
    }

    pub fn into_client_error(self) -> ClientError {
        if let Some(reason) = self.reauth_reason() {
            return ClientError::ReauthRequired { reason };
        }
        match self {
            Self::Rejected { error, description } => {
                ClientError::Protocol(format!("token endpoint refused: {error}: {description}"))
            }
            Self::InProgress { description } => ClientError::Transient {
                message: format!("the server is processing another refresh ({description})"),
                retry_after: Some(Duration::from_secs(1)),
            },
            Self::Transient {
                message,
                retry_after,
                ..
            } => ClientError::Transient {
                message,
                retry_after,
            },
            Self::Protocol { message, .. } => ClientError::Protocol(message),
        }
    }
}

/// The token endpoint's body, leniently: RFC 6749 servers send neither Salesforce's
/// `signature`, `instance_url`, `id` nor `issued_at`, and some send `expires_in` as a string.
#[derive(Deserialize)]
struct WireTokenResponse {
    access_token: AccessToken,
    #[serde(default)]
    refresh_token: Option<RefreshToken>,
    #[serde(default)]
    signature: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    instance_url: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    issued_at: Option<serde_json::Value>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    /// OpenID Connect: with the `openid` scope, on the code exchange and (Salesforce, Tessera)
    /// on every refresh; verified by the token manager before it is kept.
    #[serde(default)]
    id_token: Option<IdToken>,
}

fn number_text(value: Option<serde_json::Value>) -> Option<String> {
    match value? {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Parses a token endpoint's success body, from Salesforce, Tessera or any RFC 6749 server.
/// Salesforce's fields that an RFC server does not send (`signature`, `instance_url`, `id`,
/// `issued_at`) come back empty; a refresh fills them from the credential it renews.
pub fn parse_token_response(body: &[u8]) -> Result<TokenResponse, ClientError> {
    parse_wire(body).map_err(ClientError::Protocol)
}

fn parse_wire(body: &[u8]) -> Result<TokenResponse, String> {
    let wire: WireTokenResponse = serde_json::from_slice(body)
        .map_err(|e| format!("the token response is not valid JSON of tokens: {e}"))?;
    // RFC 6749 §7.1: a client must not use a token whose type it does not understand. Both
    // are compared whatever their case (servers send `bearer` and `dpop`).
    let token_type = match wire.token_type.as_deref() {
        None => TokenType::Bearer,
        Some(kind) if kind.eq_ignore_ascii_case("bearer") => TokenType::Bearer,
        Some(kind) if kind.eq_ignore_ascii_case("dpop") => TokenType::DPoP,
        Some(kind) => return Err(format!("unsupported token type {kind:?}")),
    };
    let expires_in = match number_text(wire.expires_in) {
        None => None,
        Some(text) => Some(
            text.trim()
                .parse::<u64>()
                .map_err(|_| "expires_in is not a number of seconds".to_owned())?,
        ),
    };
    Ok(TokenResponse {
        access_token: wire.access_token,
        refresh_token: wire.refresh_token,
        signature: wire.signature.unwrap_or_default(),
        scope: wire.scope.unwrap_or_default(),
        instance_url: wire.instance_url.unwrap_or_default(),
        id: wire.id.unwrap_or_default(),
        token_type,
        issued_at: number_text(wire.issued_at).unwrap_or_default(),
        expires_in,
        id_token: wire.id_token,
    })
}

pub(crate) fn server_date(headers: &HeaderMap) -> Option<SystemTime> {
    let text = headers.get(DATE)?.to_str().ok()?;
    httpdate::parse_http_date(text).ok()
}

/// `Retry-After` as delta-seconds or as an HTTP date (counted from the response's `Date`).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    let now = server_date(headers)?;
    Some(at.duration_since(now).unwrap_or_default())
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// The OAuth error of a body, JSON (token endpoint) or form-encoded (Salesforce's revoke).
fn oauth_error(body: &[u8]) -> Option<(String, String)> {
    if let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) {
        return Some((parsed.error, parsed.error_description.unwrap_or_default()));
    }
    let text = std::str::from_utf8(body).ok()?;
    let mut error = None;
    let mut description = String::new();
    for (k, v) in url::form_urlencoded::parse(text.as_bytes()) {
        match k.as_ref() {
            "error" => error = Some(v.into_owned()),
            "error_description" => description = v.into_owned(),
            _ => {}
        }
    }
    error.map(|e| (e, description))
}

/// A request that got no answer, for `endpoint` ("token", "revocation"…).
fn describe_transport(endpoint: &str, error: &reqwest::Error) -> String {
    if error.is_timeout() {
        format!("the {endpoint} endpoint did not answer in time")
    } else if error.is_connect() {
        format!("cannot connect to the {endpoint} endpoint")
    } else {
        // reqwest's Display names the URL, never the form body.
        format!("{endpoint} endpoint request failed: {error}")
    }
}

/// A form POST carrying `pairs` and the client's credentials in the body
/// (`client_secret_post`, which Salesforce and Tessera accept).
fn client_form_post(
    http: &reqwest::Client,
    url: &str,
    credential: &Credential,
    pairs: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    let client = ClientAuth {
        id: &credential.client_id,
        secret: credential.client_secret.as_ref(),
    };
    form_post(http, url, client, pairs)
}

/// Who the client is, as the token endpoint is told.
#[derive(Clone, Copy)]
struct ClientAuth<'a> {
    id: &'a str,
    secret: Option<&'a ClientSecret>,
}

fn form_post(
    http: &reqwest::Client,
    url: &str,
    client: ClientAuth<'_>,
    pairs: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.extend_pairs(pairs).append_pair("client_id", client.id);
    if let Some(secret) = client.secret {
        form.append_pair("client_secret", secret.expose_secret());
    }
    http.post(url)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .timeout(REQUEST_TIMEOUT)
        .body(form.finish())
}

/// One `grant_type=refresh_token` request, with a proof when `prover` is given.
pub(crate) async fn refresh_once(
    http: &reqwest::Client,
    credential: &Credential,
    refresh_token: &RefreshToken,
    prover: Option<&Prover>,
) -> Result<TokenReply, RefreshFailure> {
    let client = ClientAuth {
        id: &credential.client_id,
        secret: credential.client_secret.as_ref(),
    };
    let pairs = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.expose_secret()),
    ];
    token_request(http, &credential.endpoints.token, client, &pairs, prover).await
}

/// What a code exchange (`grant_type=authorization_code`, RFC 6749 §4.1.3, with PKCE) needs:
/// see [`crate::TokenManager::exchange_code`].
#[derive(Debug, Clone)]
pub struct CodeGrant {
    pub endpoints: Endpoints,
    pub client_id: String,
    pub client_secret: Option<ClientSecret>,
    pub code: String,
    pub redirect_uri: String,
    pub code_verifier: String,
    /// The DPoP key whose thumbprint the authorization request sent as `dpop_jkt` (RFC 9449
    /// §10), if any; else [`crate::ManagerConfig::dpop`] makes a new one.
    pub dpop_key: Option<crate::DpopKey>,
}

/// The code exchange, with a proof when `prover` is given.
pub(crate) async fn exchange_code(
    http: &reqwest::Client,
    grant: &CodeGrant,
    prover: Option<&Prover>,
) -> Result<TokenReply, RefreshFailure> {
    let client = ClientAuth {
        id: &grant.client_id,
        secret: grant.client_secret.as_ref(),
    };
    let pairs = [
        ("grant_type", "authorization_code"),
        ("code", grant.code.as_str()),
        ("redirect_uri", grant.redirect_uri.as_str()),
        ("code_verifier", grant.code_verifier.as_str()),
    ];
    token_request(http, &grant.endpoints.token, client, &pairs, prover).await
}

/// One token-endpoint request; with `prover`, carrying a fresh DPoP proof, and made once more
/// with the server's nonce when it answers `use_dpop_nonce` (RFC 9449 §8).
async fn token_request(
    http: &reqwest::Client,
    url: &str,
    client: ClientAuth<'_>,
    pairs: &[(&str, &str)],
    prover: Option<&Prover>,
) -> Result<TokenReply, RefreshFailure> {
    let mut nonce_retried = false;
    loop {
        let mut request =
            form_post(http, url, client, pairs).header(reqwest::header::ACCEPT, "application/json");
        if let Some(prover) = prover {
            let proof = prover
                .header("POST", url, None)
                .map_err(|e| RefreshFailure::Protocol {
                    message: e.to_string(),
                    maybe_processed: false,
                })?;
            request = request.header(DPOP_HEADER, proof);
        }
        let response = request
            .send()
            .await
            .map_err(|e| RefreshFailure::Transient {
                message: describe_transport("token", &e),
                retry_after: None,
                maybe_processed: true,
            })?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| RefreshFailure::Transient {
                message: describe_transport("token", &e),
                retry_after: None,
                maybe_processed: true,
            })?;
        let fresh_nonce = prover.is_some_and(|p| p.nonces.remember(url, &headers));
        if fresh_nonce && !nonce_retried && asks_for_nonce(status, &bytes) {
            nonce_retried = true;
            continue;
        }
        return classify(status, &headers, &bytes);
    }
}

/// A token endpoint's 400 `use_dpop_nonce`: the proof must carry the nonce it just sent.
pub(crate) fn asks_for_nonce(status: StatusCode, body: &[u8]) -> bool {
    status == StatusCode::BAD_REQUEST
        && oauth_error(body).is_some_and(|(error, _)| error == "use_dpop_nonce")
}

fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<TokenReply, RefreshFailure> {
    if status.is_success() {
        return parse_wire(body)
            .map(|response| TokenReply {
                response,
                server_date: server_date(headers),
            })
            .map_err(|message| RefreshFailure::Protocol {
                message,
                maybe_processed: true,
            });
    }
    let error = oauth_error(body);
    let transient = |message: String| RefreshFailure::Transient {
        message,
        retry_after: retry_after(headers),
        maybe_processed: false,
    };
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        let what = error.map(|(e, d)| format!("{e}: {d}")).unwrap_or_default();
        return Err(transient(format!(
            "token endpoint answered {status} {what}"
        )));
    }
    let Some((error, description)) = error else {
        return Err(RefreshFailure::Protocol {
            message: format!("token endpoint answered {status} without an OAuth error"),
            maybe_processed: false,
        });
    };
    match (error.as_str(), description.as_str()) {
        ("temporarily_unavailable" | "server_error", _) => {
            Err(transient(format!("{error}: {description}")))
        }
        // Salesforce (Winter '25) and Tessera without a retry window refuse a duplicate of a
        // refresh in progress this way; Salesforce has also been seen to answer "expired
        // authorization code" to concurrent refreshes (segmentio/action-destinations#2300).
        ("invalid_grant", "token request is already being processed")
        | ("invalid_grant", "expired authorization code") => {
            Err(RefreshFailure::InProgress { description })
        }
        _ => Err(RefreshFailure::Rejected { error, description }),
    }
}

/// The result of one revocation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Revocation {
    Revoked,
    /// The server no longer knows the token (already revoked, expired, or revoked with its
    /// grant): nothing is left to revoke.
    AlreadyInvalid,
    Failed(String),
}

/// RFC 7009 (and Salesforce's `/services/oauth2/revoke`): `token=` in a form, with the
/// client's id and secret (which RFC servers require of confidential clients; Salesforce and
/// Tessera ignore them).
pub(crate) async fn revoke(
    http: &reqwest::Client,
    endpoint: &str,
    credential: &Credential,
    token: &str,
) -> Revocation {
    let response = client_form_post(http, endpoint, credential, &[("token", token)])
        .send()
        .await;
    let response = match response {
        Ok(r) => r,
        Err(e) => return Revocation::Failed(describe_transport("revocation", &e)),
    };
    let status = response.status();
    if status.is_success() {
        return Revocation::Revoked;
    }
    let body = response.bytes().await.unwrap_or_default();
    match oauth_error(&body) {
        Some((error, _)) if error == "invalid_token" => Revocation::AlreadyInvalid,
        Some((error, description)) => {
            Revocation::Failed(format!("{status} {error}: {description}"))
        }
        None => Revocation::Failed(format!("revocation endpoint answered {status}")),
    }
}

/// RFC 7662's answer, as far as this client reads it.
#[derive(Debug, Deserialize)]
struct IntrospectionAnswer {
    active: bool,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    username: Option<String>,
}

/// Whether the introspection endpoint can be asked: RFC 7662 §2.1 has it require the client's
/// authentication, so only a confidential client of an issuer that has one.
fn can_introspect(credential: &Credential) -> bool {
    credential.endpoints.introspection.is_some() && credential.client_secret.is_some()
}

/// The introspection endpoint's answer about `token`: `token=` with the client's id and
/// secret. The caller checks [`can_introspect`] first.
async fn introspect(
    http: &reqwest::Client,
    credential: &Credential,
    token: &AccessToken,
) -> Result<IntrospectionAnswer, ClientError> {
    let endpoint = credential
        .endpoints
        .introspection
        .as_deref()
        .ok_or_else(|| ClientError::Protocol("the issuer has no introspection endpoint".into()))?;
    let response = client_form_post(
        http,
        endpoint,
        credential,
        &[("token", token.expose_secret())],
    )
    .header(reqwest::header::ACCEPT, "application/json")
    .send()
    .await
    .map_err(|e| ClientError::transient(describe_transport("introspection", &e)))?;
    let status = response.status();
    if !status.is_success() {
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap_or_default();
        let what = oauth_error(&body)
            .map(|(e, d)| format!(" {e}: {d}"))
            .unwrap_or_default();
        let message = format!("the introspection endpoint answered {status}{what}");
        return Err(unexpected_answer(status, &headers, message));
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| ClientError::transient(describe_transport("introspection", &e)))?;
    serde_json::from_slice(&body)
        .map_err(|e| ClientError::Protocol(format!("the introspection answer is unreadable: {e}")))
}

/// The access token's expiry (server time, ms since the epoch) from the introspection
/// endpoint: `exp` of an active answer. Only for a confidential client of an issuer that has
/// the endpoint; any failure is `None` (the expiry stays unknown), logged at debug level
/// without the token.
pub(crate) async fn introspected_expiry(
    http: &reqwest::Client,
    credential: &Credential,
) -> Option<i64> {
    if !can_introspect(credential) {
        return None;
    }
    match introspect(http, credential, &credential.access_token).await {
        Ok(IntrospectionAnswer {
            active: true,
            exp: Some(exp),
            ..
        }) => Some(exp.saturating_mul(1000)),
        Ok(answer) => {
            tracing::debug!(active = answer.active, "introspection gave no expiry");
            None
        }
        Err(error) => {
            tracing::debug!(%error, "introspection failed; expiry unknown");
            None
        }
    }
}

/// What the server said when asked about an access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenCheck {
    /// It accepts the token, issued to this user (when it said which).
    Accepted { username: Option<String> },
    /// It no longer accepts the token (revoked, expired, or its user disabled).
    Refused,
}

/// Asks the server whether it accepts `token` now: the introspection endpoint for a
/// confidential client (authoritative whatever the token's scope), else the identity URL called
/// with the token (Salesforce's, open to every client with an `id`-scoped token). If the first
/// cannot tell, the other is asked; `Err` when neither could.
pub(crate) async fn check_access_token(
    http: &reqwest::Client,
    credential: &Credential,
    token: &AccessToken,
    prover: Option<&Prover>,
) -> Result<TokenCheck, ClientError> {
    let mut cannot_tell = None;
    if can_introspect(credential) {
        match introspect(http, credential, token).await {
            Ok(answer) if answer.active => {
                return Ok(TokenCheck::Accepted {
                    username: answer.username,
                })
            }
            Ok(_) => return Ok(TokenCheck::Refused),
            Err(error) => {
                tracing::debug!(%error, "introspection could not tell; trying the identity URL");
                cannot_tell = Some(error);
            }
        }
    }
    match (&credential.identity_url, cannot_tell) {
        (Some(url), _) => identity_check(http, url, token, prover).await,
        (None, Some(error)) => Err(error),
        (None, None) => Err(ClientError::Protocol(
            "the server cannot be asked about the token: it gave no identity URL, and its \
             introspection endpoint needs a confidential client's secret"
                .into(),
        )),
    }
}

/// `GET` the identity URL with the token: 200 names the user, 401 and 403 (Salesforce's
/// `Bad_OAuth_Token`) refuse the token.
async fn identity_check(
    http: &reqwest::Client,
    url: &str,
    token: &AccessToken,
    prover: Option<&Prover>,
) -> Result<TokenCheck, ClientError> {
    let target = url::Url::parse(url)
        .map_err(|e| ClientError::Protocol(format!("identity URL {url:?}: {e}")))?;
    let response = crate::resource::send_authorized(
        token,
        prover,
        &reqwest::Method::GET,
        &target,
        |authorization| {
            http.get(target.clone())
                .header(reqwest::header::ACCEPT, "application/json")
                .headers(authorization)
                .timeout(REQUEST_TIMEOUT)
        },
    )
    .await?;
    let status = response.status();
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Ok(TokenCheck::Refused),
        s if s.is_success() => {
            #[derive(Deserialize)]
            struct Identity {
                #[serde(default)]
                username: Option<String>,
            }
            let body = response.bytes().await.unwrap_or_default();
            let username = serde_json::from_slice::<Identity>(&body)
                .ok()
                .and_then(|identity| identity.username);
            Ok(TokenCheck::Accepted { username })
        }
        _ => Err(unexpected_answer(
            status,
            response.headers(),
            format!("the identity URL answered {status}"),
        )),
    }
}

/// An answer that says nothing about the token: overload and server errors are worth asking
/// again later, anything else is not.
fn unexpected_answer(status: StatusCode, headers: &HeaderMap, message: String) -> ClientError {
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        ClientError::Transient {
            message,
            retry_after: retry_after(headers),
        }
    } else {
        ClientError::Protocol(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn json(error: &str, description: &str) -> Vec<u8> {
        serde_json::json!({"error": error, "error_description": description})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn invalid_grant_is_a_reauth_but_in_progress_is_not() {
        let h = HeaderMap::new();
        let dead = classify(
            StatusCode::BAD_REQUEST,
            &h,
            &json("invalid_grant", "expired access/refresh token"),
        )
        .unwrap_err();
        assert_eq!(
            dead.reauth_reason(),
            Some(ReauthReason::RefreshTokenRejected {
                description: "expired access/refresh token".into()
            })
        );
        let busy = classify(
            StatusCode::BAD_REQUEST,
            &h,
            &json("invalid_grant", "token request is already being processed"),
        )
        .unwrap_err();
        assert!(matches!(busy, RefreshFailure::InProgress { .. }));
        assert!(busy.reauth_reason().is_none());
    }

    #[test]
    fn client_errors_say_the_client_is_misconfigured() {
        for code in ["invalid_client", "invalid_client_id", "unauthorized_client"] {
            let e =
                classify(StatusCode::BAD_REQUEST, &HeaderMap::new(), &json(code, "x")).unwrap_err();
            assert_eq!(
                e.reauth_reason(),
                Some(ReauthReason::ClientMisconfigured { error: code.into() })
            );
        }
        let e = classify(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            &json("inactive_user", "user is inactive"),
        )
        .unwrap_err();
        assert_eq!(e.reauth_reason(), Some(ReauthReason::UserInactive));
    }

    #[test]
    fn overload_is_transient_with_retry_after() {
        let h = headers(&[("retry-after", "7")]);
        let e = classify(
            StatusCode::SERVICE_UNAVAILABLE,
            &h,
            &json("temporarily_unavailable", "later"),
        )
        .unwrap_err();
        assert!(e.is_transient() && !e.maybe_processed());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        let e = classify(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), b"").unwrap_err();
        assert!(e.is_transient());
        let e = classify(StatusCode::BAD_GATEWAY, &HeaderMap::new(), b"<html>").unwrap_err();
        assert!(e.is_transient());
    }

    #[test]
    fn retry_after_as_a_date_counts_from_the_date_header() {
        let h = headers(&[
            ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("retry-after", "Sun, 06 Nov 1994 08:49:40 GMT"),
        ]);
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
    }

    #[test]
    fn an_unreadable_success_may_have_rotated() {
        let e = classify(StatusCode::OK, &HeaderMap::new(), b"{}").unwrap_err();
        assert!(e.maybe_processed());
        assert!(matches!(e, RefreshFailure::Protocol { .. }));
    }

    #[test]
    fn rfc_6749_responses_parse_without_salesforce_fields() {
        let r = parse_token_response(
            br#"{"access_token":"a","token_type":"bearer","expires_in":"3600","refresh_token":"r"}"#,
        )
        .unwrap();
        assert_eq!(r.expires_in, Some(3600));
        assert!(r.instance_url.is_empty() && r.issued_at.is_empty());
        assert!(parse_token_response(br#"{"access_token":"a","token_type":"mac"}"#).is_err());
    }

    #[test]
    fn the_token_type_is_read_whatever_its_case() {
        for (sent, read) in [
            ("DPoP", TokenType::DPoP),
            ("dpop", TokenType::DPoP),
            ("BEARER", TokenType::Bearer),
        ] {
            let body = format!(r#"{{"access_token":"a","token_type":"{sent}"}}"#);
            let r = parse_token_response(body.as_bytes()).unwrap();
            assert_eq!(r.token_type, read, "{sent}");
        }
    }

    #[test]
    fn a_use_dpop_nonce_refusal_asks_for_a_nonce_and_others_do_not() {
        let body = br#"{"error":"use_dpop_nonce","error_description":"nonce"}"#;
        assert!(asks_for_nonce(StatusCode::BAD_REQUEST, body));
        assert!(!asks_for_nonce(StatusCode::UNAUTHORIZED, body));
        assert!(!asks_for_nonce(
            StatusCode::BAD_REQUEST,
            br#"{"error":"invalid_dpop_proof"}"#
        ));
    }

    #[test]
    fn an_id_token_is_read_when_sent_and_absent_otherwise() {
        let with = parse_token_response(
            br#"{"access_token":"a","token_type":"Bearer","id_token":"h.p.s"}"#,
        )
        .unwrap();
        assert_eq!(with.id_token, Some(IdToken::new("h.p.s")));
        let without = parse_token_response(br#"{"access_token":"a"}"#).unwrap();
        assert_eq!(without.id_token, None);
    }

    #[test]
    fn revoke_errors_are_read_form_encoded() {
        assert_eq!(
            oauth_error(b"error=invalid_token&error_description=token+was+invalid"),
            Some(("invalid_token".into(), "token was invalid".into()))
        );
    }
}
