//! Reading requests, strictly, as extractors: each carries a handler's prologue, and fails with
//! the [`WebError`] of its surface, so that a handler's signature says what it needs and its
//! body is one call into the domain.

use std::net::SocketAddr;

use axum::body::{to_bytes, Body};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{Map, Value};
use tessera_core::flows::dpop_binding::DpopPresentation;
use tessera_core::flows::resource::ApiCaller;
use tessera_core::identity::login::BrowserSession;
use tessera_core::{ClientCredentials, Source};
use tessera_proto::dpop::{DPOP_HEADER, DPOP_SCHEME};
use tessera_proto::{
    decode_component, AccessToken, ClientSecret, CsrfCookie, CsrfToken, OAuthError, Params,
    RevokeError, SessionCookie,
};

use crate::error::{ApiError, IdentityError, PageError, RevocationFailure, WebError};
use crate::{AppState, MAX_BODY_BYTES};

/// Who sent the request: the peer, or the client a trusted proxy names; and its user agent.
#[derive(Debug, Clone)]
pub struct RequestSource(pub Source);

impl FromRequestParts<AppState> for RequestSource {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(source_of(parts, state)))
    }
}

fn source_of(parts: &Parts, state: &AppState) -> Source {
    let address = source_address(&parts.extensions, &parts.headers, state);
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    Source::new(address, user_agent)
}

/// The client's address: the TCP peer, or the client a trusted proxy names. `None` when the
/// connection's peer is unknown (a test driving the router without one).
pub(crate) fn source_address(
    extensions: &axum::http::Extensions,
    headers: &axum::http::HeaderMap,
    state: &AppState,
) -> Option<std::net::IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| state.trusted_proxies.client_address(peer.ip(), headers))
}

/// Parameters a form POST must carry in its body, never in its query string: the client secret
/// and the credentials of a grant.
const NEVER_IN_THE_URL: [&str; 4] = ["client_secret", "refresh_token", "code", "code_verifier"];

/// Reads a `POST` form request (RFC 6749 §3.2): method, content type and size are checked, the
/// body is decoded strictly, the query string's parameters are added (Salesforce accepts them
/// there; docs/salesforce-compatibility.md, "Token requests"), and a parameter sent twice is
/// refused (RFC 6749 §3.2: parameters MUST NOT be included more than once).
async fn read_form(request: Request) -> Result<(Parts, Params), OAuthError> {
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
    // RFC 6749 §2.3.1: a client secret MUST NOT be sent in the request URI; nor are the grant's
    // credentials (RFC 6749 §3.2: token requests are POSTed; RFC 9700: credentials in URLs
    // leak through proxy, server and APM logs). Salesforce's deliberate
    // exceptions are other endpoints: `oauth_token` on the identity URL and `GET /revoke?token=`.
    if let Some(name) = query
        .pairs()
        .iter()
        .map(|(k, _)| k.as_str())
        .find(|k| NEVER_IN_THE_URL.contains(k))
    {
        return Err(OAuthError::InvalidRequest(match name {
            "refresh_token" => "refresh_token must not be sent in the URL",
            "code" => "code must not be sent in the URL",
            "code_verifier" => "code_verifier must not be sent in the URL",
            _ => "client_secret must not be sent in the URL",
        }));
    }
    if !is_form_content_type(&parts.headers) {
        return Err(OAuthError::UnsupportedContentType);
    }
    let bytes = read_body(body)
        .await
        .map_err(|_| OAuthError::BodyTooLarge)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| OAuthError::InvalidRequest("malformed request body"))?;
    let mut params =
        Params::parse(text).map_err(|_| OAuthError::InvalidRequest("malformed request body"))?;
    params.extend(query);
    if params.repeated().is_some() {
        return Err(OAuthError::InvalidRequest(
            "a parameter was sent more than once",
        ));
    }
    Ok((parts, params))
}

/// The body, at most [`MAX_BODY_BYTES`] of it, bounded before buffering (docs/security.md,
/// "Bounded requests").
async fn read_body(body: Body) -> Result<axum::body::Bytes, ()> {
    to_bytes(body, MAX_BODY_BYTES).await.map_err(drop)
}

fn is_form_content_type(headers: &HeaderMap) -> bool {
    media_type(headers).is_some_and(|m| m.eq_ignore_ascii_case("application/x-www-form-urlencoded"))
}

fn media_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
}

/// A token-endpoint or introspection request: its form, and the client credentials it carries.
#[derive(Debug)]
pub struct OAuthForm {
    pub params: Params,
    pub credentials: Option<ClientCredentials>,
    /// The request's DPoP proof, if it carries one.
    pub dpop: Option<DpopPresentation>,
}

impl FromRequest<AppState> for OAuthForm {
    type Rejection = WebError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, params) = read_form(request).await?;
        let credentials = client_credentials(&parts.headers, &params)?;
        let dpop =
            dpop_proof(&parts.headers)?.map(|proof| presentation(Some(proof), &parts, state));
        Ok(Self {
            params,
            credentials,
            dpop,
        })
    }
}

/// The `DPoP` header of a request, if any; more than one is refused (RFC 9449 §4.3).
fn dpop_proof(headers: &HeaderMap) -> Result<Option<String>, OAuthError> {
    let mut values = headers.get_all(DPOP_HEADER).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(OAuthError::InvalidDpopProof("more than one DPoP header"));
    }
    let proof = first
        .to_str()
        .map_err(|_| OAuthError::InvalidDpopProof("DPoP header is not a JWT"))?;
    Ok(Some(proof.trim().to_owned()))
}

/// What a proof of this request must name: its method, and its URL as clients reach this
/// server (the issuer, which a proxy in front keeps, and the path).
fn presentation(proof: Option<String>, parts: &Parts, state: &AppState) -> DpopPresentation {
    DpopPresentation {
        proof,
        method: parts.method.as_str().to_owned(),
        uri: format!("{}{}", state.authority.config().issuer, parts.uri.path()),
    }
}

/// Client credentials from HTTP Basic or the body, never both (RFC 6749 §2.3: one method per
/// request). `None` when the request names no client at all.
fn client_credentials(
    headers: &HeaderMap,
    params: &Params,
) -> Result<Option<ClientCredentials>, OAuthError> {
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
pub fn parse_basic(value: &str) -> Option<(String, String)> {
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

/// A revocation request: `POST` form `token=`, or `GET ?token=` (docs/salesforce-compatibility.md,
/// "Revocation").
#[derive(Debug)]
pub struct RevocationForm {
    pub params: Params,
}

impl FromRequest<AppState> for RevocationForm {
    type Rejection = WebError;

    async fn from_request(request: Request, _: &AppState) -> Result<Self, Self::Rejection> {
        let reject = |e| WebError::Revocation(RevocationFailure::Request(e));
        let params = if request.method() == Method::GET {
            let params = Params::parse(request.uri().query().unwrap_or_default())
                .map_err(|_| reject(OAuthError::InvalidRequest("malformed query string")))?;
            if params.repeated().is_some() {
                return Err(reject(OAuthError::InvalidRequest(
                    "a parameter was sent more than once",
                )));
            }
            params
        } else {
            read_form(request).await.map_err(reject)?.1
        };
        if params.contains("callback") {
            return Err(reject(OAuthError::InvalidRequest("JSONP is not supported")));
        }
        if !params.contains("token") {
            return Err(WebError::Revocation(RevocationFailure::Token(
                RevokeError::InvalidRequest,
            )));
        }
        Ok(Self { params })
    }
}

/// The names of our security cookies, plain (an `http://` issuer: development, loopback) and
/// with the `__Host-` prefix (an `https://` issuer). A browser keeps a `__Host-` cookie only if
/// it was set Secure, with `Path=/` and without `Domain`, by this very host: a sibling subdomain
/// or a plain-http page cannot plant one.
const SESSION_COOKIE: [&str; 2] = ["tessera_sid", "__Host-tessera_sid"];
const CSRF_COOKIE: [&str; 2] = ["tessera_csrf", "__Host-tessera_csrf"];
const ADMIN_SESSION_COOKIE: [&str; 2] = ["tessera_admin", "__Host-tessera_admin"];
const LEARN_COOKIE: [&str; 2] = ["tessera_learn", "__Host-tessera_learn"];

fn named(names: [&'static str; 2], secure: bool) -> &'static str {
    let [plain, host_only] = names;
    if secure {
        host_only
    } else {
        plain
    }
}

/// The cookies of our pages: the signed session, the CSRF cookie, and the admin console's
/// signed session. Their values are secrets from here on: `Debug` shows none of them.
#[derive(Debug, Clone, Default)]
pub struct Cookies {
    pub session: Option<SessionCookie>,
    pub csrf: Option<CsrfCookie>,
    pub admin_session: Option<SessionCookie>,
    /// The `/learn` playground's learner id.
    pub learn: Option<SessionCookie>,
}

impl Cookies {
    /// The end user's session cookie's name, under an `https://` issuer (`secure`) or not.
    pub fn session_name(secure: bool) -> &'static str {
        named(SESSION_COOKIE, secure)
    }

    /// The CSRF cookie's name (of the forms without a session: the login forms).
    pub fn csrf_name(secure: bool) -> &'static str {
        named(CSRF_COOKIE, secure)
    }

    /// The admin console's session cookie's name.
    pub fn admin_session_name(secure: bool) -> &'static str {
        named(ADMIN_SESSION_COOKIE, secure)
    }

    /// The `/learn` playground's cookie's name.
    pub fn learn_name(secure: bool) -> &'static str {
        named(LEARN_COOKIE, secure)
    }

    /// Our cookies in a request's `Cookie` headers. A request that carries one of them twice is
    /// refused: a browser sends two cookies of one name when another site (a sibling subdomain,
    /// a plain-http page) planted the second, and which one comes first is not ours to decide.
    pub(crate) fn from_headers(headers: &HeaderMap, secure: bool) -> Result<Self, PageError> {
        let pairs: Vec<(&str, &str)> = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .collect();
        let find = |name: &str| {
            let mut values = pairs.iter().filter(|(k, _)| *k == name).map(|(_, v)| *v);
            let first = values.next();
            match values.next() {
                Some(_) => Err(PageError::RepeatedCookie),
                None => Ok(first),
            }
        };
        Ok(Self {
            session: find(Self::session_name(secure))?.map(SessionCookie::new),
            csrf: find(Self::csrf_name(secure))?.map(CsrfCookie::new),
            admin_session: find(Self::admin_session_name(secure))?.map(SessionCookie::new),
            learn: find(Self::learn_name(secure))?.map(SessionCookie::new),
        })
    }
}

impl FromRequestParts<AppState> for Cookies {
    type Rejection = WebError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self::from_headers(&parts.headers, state.secure_cookies())?)
    }
}

/// A form POSTed by a page without a session (the login forms), its CSRF token checked against
/// the browser's CSRF cookie (RFC 6749 §10.12, signed double submit).
#[derive(Debug)]
pub struct LoginForm {
    pub params: Params,
    pub cookies: Cookies,
    pub source: Source,
}

impl FromRequest<AppState> for LoginForm {
    type Rejection = WebError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, params) = read_form(request).await.map_err(PageError::Form)?;
        let cookies = Cookies::from_headers(&parts.headers, state.secure_cookies())?;
        if !state
            .authority
            .csrf_valid(cookies.csrf.as_ref(), csrf_token(&params).as_ref())
        {
            return Err(PageError::Forbidden.into());
        }
        let source = source_of(&parts, state);
        Ok(Self {
            params,
            cookies,
            source,
        })
    }
}

fn csrf_token(params: &Params) -> Option<CsrfToken> {
    params.get("csrf_token").map(CsrfToken::new)
}

/// A form POSTed by a page of the end user's session (consent, logout). With a live session,
/// its CSRF token must be the one bound to that session; without one, `session` is `None`
/// (the handler then changes nothing and shows the login page).
#[derive(Debug)]
pub struct SessionForm {
    pub params: Params,
    pub cookies: Cookies,
    pub session: Option<BrowserSession>,
    pub source: Source,
}

impl FromRequest<AppState> for SessionForm {
    type Rejection = WebError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, params) = read_form(request).await.map_err(PageError::Form)?;
        let cookies = Cookies::from_headers(&parts.headers, state.secure_cookies())?;
        let session = state
            .authority
            .session(cookies.session.as_ref())
            .await
            .map_err(|_| PageError::Unavailable)?;
        if let Some(session) = &session {
            if !state
                .authority
                .session_csrf_valid(session, csrf_token(&params).as_ref())
            {
                return Err(PageError::Forbidden.into());
            }
        }
        let source = source_of(&parts, state);
        Ok(Self {
            params,
            cookies,
            session,
            source,
        })
    }
}

/// A form POSTed by a console page: its body, its CSRF token, and where it came from. The
/// console's extractor checks the token against the administrator's session.
#[derive(Debug)]
pub(crate) struct RawPageForm {
    pub params: Params,
    pub token: Option<CsrfToken>,
    pub parts: Parts,
}

impl RawPageForm {
    pub(crate) async fn read(request: Request) -> Result<Self, WebError> {
        let (parts, params) = read_form(request).await.map_err(PageError::Form)?;
        let token = csrf_token(&params);
        Ok(Self {
            params,
            token,
            parts,
        })
    }

    pub(crate) fn source(&self, state: &AppState) -> Source {
        source_of(&self.parts, state)
    }
}

/// The authorization request of a form POST to the authorization endpoint (Salesforce accepts
/// it that way too), re-encoded as a query string.
#[derive(Debug)]
pub struct AuthorizeForm(pub String);

impl FromRequest<AppState> for AuthorizeForm {
    type Rejection = WebError;

    async fn from_request(request: Request, _: &AppState) -> Result<Self, Self::Rejection> {
        let (_, params) = read_form(request).await.map_err(PageError::Form)?;
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in params.pairs() {
            ser.append_pair(k, v);
        }
        Ok(Self(ser.finish()))
    }
}

/// How an access token is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    /// `Bearer …` or Salesforce's `OAuth …`.
    Bearer,
    /// `DPoP …` (RFC 9449 §7.1): with a proof in the `DPoP` header.
    Dpop,
}

/// The access token of a REST or identity request: `Authorization: Bearer …` or `OAuth …`
/// (docs/salesforce-compatibility.md, "REST API"), or `DPoP …`.
fn authorization_token(headers: &HeaderMap) -> Option<(Scheme, AccessToken)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let scheme = if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case(DPOP_SCHEME) {
        Scheme::Dpop
    } else {
        return None;
    };
    let token = token.trim();
    (!token.is_empty()).then(|| (scheme, AccessToken::new(token)))
}

/// The access token of a REST or identity request, and for the `DPoP` scheme what its proof
/// must name (a missing proof is refused by the token's check).
fn presented_token(
    parts: &Parts,
    state: &AppState,
) -> Result<Option<(AccessToken, Option<DpopPresentation>)>, ApiError> {
    let Some((scheme, token)) = authorization_token(&parts.headers) else {
        return Ok(None);
    };
    let dpop = match scheme {
        Scheme::Bearer => None,
        Scheme::Dpop => {
            let proof = dpop_proof(&parts.headers)
                .map_err(|_| ApiError::DpopProof("more than one DPoP header"))?;
            Some(presentation(proof, parts, state))
        }
    };
    Ok(Some((token, dpop)))
}

/// The caller of a REST API request: a valid access token with the `api` scope.
#[derive(Debug)]
pub struct Api(pub ApiCaller);

impl FromRequestParts<AppState> for Api {
    type Rejection = WebError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (token, dpop) = presented_token(parts, state)?.unzip();
        let caller = state
            .authority
            .api_caller(token.as_ref(), dpop.flatten().as_ref())
            .await?;
        Ok(Self(caller))
    }
}

/// The token of an identity URL or userinfo request: in the header or, as Salesforce allows on
/// both, `?oauth_token=`. Each handler asks core for its own caller: the two endpoints take
/// different scopes and answer a refusal differently.
#[derive(Debug)]
pub struct IdentityToken(pub AccessToken, pub Option<DpopPresentation>);

impl FromRequestParts<AppState> for IdentityToken {
    type Rejection = WebError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some((token, dpop)) =
            presented_token(parts, state).map_err(|_| IdentityError::BadToken)?
        {
            return Ok(Self(token, dpop));
        }
        let params = Params::parse(parts.uri.query().unwrap_or_default()).ok();
        let token = params
            .as_ref()
            .and_then(|p| p.get("oauth_token"))
            .map(AccessToken::new)
            .ok_or(IdentityError::MissingToken)?;
        Ok(Self(token, None))
    }
}

/// A REST request's JSON object body (the `Note` fields).
#[derive(Debug)]
pub struct JsonObject(pub Map<String, Value>);

impl FromRequest<AppState> for JsonObject {
    type Rejection = WebError;

    async fn from_request(request: Request, _: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let is_json =
            media_type(&parts.headers).is_some_and(|m| m.eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(ApiError::UnsupportedMediaType.into());
        }
        let bytes = read_body(body).await.map_err(|_| ApiError::BodyTooLarge)?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            _ => Err(ApiError::JsonParser("The request body is not a JSON object").into()),
        }
    }
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
    fn bearer_oauth_and_dpop_schemes_are_accepted_whatever_their_case() {
        let mut headers = HeaderMap::new();
        for (value, scheme) in [
            ("OAuth 00D!abc", Scheme::Bearer),
            ("bearer 00D!abc", Scheme::Bearer),
            ("DPoP 00D!abc", Scheme::Dpop),
            ("dpop 00D!abc", Scheme::Dpop),
        ] {
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            assert_eq!(
                authorization_token(&headers),
                Some((scheme, AccessToken::new("00D!abc"))),
                "{value}"
            );
        }
        for refused in ["Basic abc", "Bearer ", "DPoP"] {
            headers.insert(header::AUTHORIZATION, refused.parse().unwrap());
            assert_eq!(authorization_token(&headers), None, "{refused}");
        }
    }

    #[test]
    fn a_request_with_two_dpop_headers_is_refused() {
        let mut headers = HeaderMap::new();
        assert_eq!(dpop_proof(&headers), Ok(None));
        headers.append(DPOP_HEADER, "a.b.c".parse().unwrap());
        assert_eq!(dpop_proof(&headers), Ok(Some("a.b.c".to_owned())));
        headers.append(DPOP_HEADER, "d.e.f".parse().unwrap());
        assert!(matches!(
            dpop_proof(&headers),
            Err(OAuthError::InvalidDpopProof(_))
        ));
    }
}
