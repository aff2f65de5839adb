//! The one edge where failures become HTTP responses. Every handler and extractor fails with a
//! [`WebError`]; its variant is the surface the request came in on, and that decides the format:
//! OAuth JSON, the revocation endpoint's form encoding, Salesforce's REST error array, the
//! identity URL's plain text, or an HTML page. A storage failure is 503 with `Retry-After` on
//! every one of them, never an authentication error and never a 500.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tessera_core::authority::{ChangeFeedStale, UNAVAILABLE_RETRY_AFTER_SECS};
use tessera_core::flows::authorize::AuthorizePageError;
use tessera_core::flows::resource::{NoteRule, ResourceError};
use tessera_core::flows::revocation::RevocationError;
use tessera_core::identity::login::AuthorizeError;
use tessera_proto::{OAuthError, RevokeError, SessionError};

use crate::pages::{self, ErrorPage};
use crate::reply::{json, no_store, redirect};

/// Everything a request can fail with, by surface.
#[derive(Debug)]
pub enum WebError {
    /// The token and introspection endpoints: RFC 6749 §5.2 JSON.
    OAuth(OAuthError),
    /// The revocation endpoint: form-encoded, as Salesforce's.
    Revocation(RevocationFailure),
    /// `/services/data`: Salesforce's error array.
    Api(ApiError),
    /// The identity URL and userinfo: Salesforce's plain-text codes.
    Identity(IdentityError),
    /// The authorization pages: HTML.
    Page(PageError),
    /// `/readyz`: plain text, for load balancers and orchestrators, saying why.
    NotReady(Unready),
}

/// Why `/readyz` is 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unready {
    /// The database does not answer, or its schema is not this build's.
    Database,
    /// The change feed has not been read for longer than its bound: revocations made elsewhere
    /// may be unknown here.
    ChangeFeed(ChangeFeedStale),
}

#[derive(Debug)]
pub enum RevocationFailure {
    /// About the token (`invalid_token`) or its absence (`invalid_request`).
    Token(RevokeError),
    /// About the request: malformed, throttled, or the store down.
    Request(OAuthError),
}

/// The REST API's failures, each one of Salesforce's error codes.
#[derive(Debug)]
pub enum ApiError {
    Session(SessionError),
    NotFound,
    /// `REQUIRED_FIELD_MISSING` for this field.
    RequiredField(&'static str),
    /// `STRING_TOO_LONG`, with Salesforce's message.
    StringTooLong(&'static str),
    /// `JSON_PARSER_ERROR`.
    JsonParser(&'static str),
    /// `INVALID_FIELD`, with a message naming the field (already made safe to echo).
    InvalidField(String),
    /// `INVALID_TYPE` (an SObject this API does not have).
    InvalidType(String),
    MalformedQuery,
    /// 403 `INSUFFICIENT_ACCESS`: a valid session that may not use this resource (OAuth Usage
    /// for a user who is not an administrator).
    InsufficientAccess(&'static str),
    /// 404 `NOT_FOUND` naming what was not found (an id from the path, echoed safely).
    NotFoundNamed(String),
    /// 400 `INVALID_PARAMETER_VALUE` (a query parameter), with a message naming it.
    InvalidParameter(String),
    UnsupportedMediaType,
    BodyTooLarge,
    Unavailable,
    /// A DPoP-bound token without a valid proof, or the `DPoP` scheme with an unbound token:
    /// 401 `WWW-Authenticate: DPoP error="invalid_dpop_proof"` (RFC 9449 §7.1), with the check
    /// that failed as its description.
    DpopProof(&'static str),
    /// 401 `WWW-Authenticate: DPoP error="use_dpop_nonce"` (RFC 9449 §9); the `DPoP-Nonce`
    /// header is added to every answer to a request with a proof.
    UseDpopNonce,
}

/// The identity URL's failures (docs/salesforce-compatibility.md, "Identity URL and userinfo").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityError {
    MissingToken,
    BadToken,
    /// Userinfo with a valid token whose scope has no identity scope (`openid`, `id`, …): 401
    /// with `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750 §3.1), so that a
    /// relying party knows to ask for another token rather than retry this one.
    NoUserinfoScope,
    WrongOrg,
    BadId,
    BadFormat,
    Unavailable,
    /// As the REST API's [`ApiError::DpopProof`]: 401 with the DPoP challenge.
    DpopProof(&'static str),
    /// As the REST API's [`ApiError::UseDpopNonce`].
    UseDpopNonce,
}

/// What an authorization page cannot go on with.
#[derive(Debug)]
pub enum PageError {
    /// The client or the redirect URI cannot be trusted (never redirected); the redirect URI
    /// the request asked for, when that is what was refused.
    Authorize {
        error: AuthorizePageError,
        refused_redirect_uri: Option<String>,
    },
    /// The form itself is wrong (method, content type, size, encoding).
    Form(OAuthError),
    /// The CSRF token does not match: the form expired or came from elsewhere.
    Forbidden,
    /// The consent form's decision is neither allow nor deny.
    BadDecision,
    /// One of our security cookies came twice (one of them planted by another site).
    RepeatedCookie,
    /// An error the client's (trusted) redirect URI is told about: a 302 to this `Location`.
    ToClient(String),
    Unavailable,
}

impl From<OAuthError> for WebError {
    fn from(error: OAuthError) -> Self {
        Self::OAuth(error)
    }
}

impl From<ApiError> for WebError {
    fn from(error: ApiError) -> Self {
        Self::Api(error)
    }
}

impl From<IdentityError> for WebError {
    fn from(error: IdentityError) -> Self {
        Self::Identity(error)
    }
}

impl From<PageError> for WebError {
    fn from(error: PageError) -> Self {
        Self::Page(error)
    }
}

impl From<RevocationError> for WebError {
    fn from(error: RevocationError) -> Self {
        Self::Revocation(match error {
            RevocationError::InvalidToken => RevocationFailure::Token(RevokeError::InvalidToken),
            RevocationError::Throttled { retry_after_secs } => {
                RevocationFailure::Request(OAuthError::RateLimited { retry_after_secs })
            }
            RevocationError::Unavailable => RevocationFailure::Request(unavailable()),
        })
    }
}

impl From<ResourceError> for ApiError {
    fn from(error: ResourceError) -> Self {
        match error {
            ResourceError::InvalidSession => Self::Session(SessionError::InvalidSession),
            ResourceError::InsufficientScope => Self::Session(SessionError::InsufficientScope),
            ResourceError::NotFound | ResourceError::WrongOrg => Self::NotFound,
            ResourceError::InvalidNote(NoteRule::TitleRequired) => Self::RequiredField("Title"),
            ResourceError::InvalidNote(NoteRule::TitleTooLong) => {
                Self::StringTooLong("Title: data value too large (max length=80)")
            }
            ResourceError::InvalidNote(NoteRule::BodyTooLong) => {
                Self::StringTooLong("Body: data value too large (max length=32000)")
            }
            ResourceError::Unavailable => Self::Unavailable,
            ResourceError::DpopProof(reason) => Self::DpopProof(reason),
            ResourceError::UseDpopNonce => Self::UseDpopNonce,
        }
    }
}

impl From<ResourceError> for WebError {
    fn from(error: ResourceError) -> Self {
        Self::Api(error.into())
    }
}

impl From<ResourceError> for IdentityError {
    fn from(error: ResourceError) -> Self {
        match error {
            ResourceError::WrongOrg => Self::WrongOrg,
            ResourceError::NotFound => Self::BadId,
            ResourceError::Unavailable => Self::Unavailable,
            ResourceError::DpopProof(reason) => Self::DpopProof(reason),
            ResourceError::UseDpopNonce => Self::UseDpopNonce,
            ResourceError::InvalidSession
            | ResourceError::InsufficientScope
            | ResourceError::InvalidNote(_) => Self::BadToken,
        }
    }
}

impl From<AuthorizeError> for PageError {
    fn from(error: AuthorizeError) -> Self {
        match error {
            AuthorizeError::Page {
                error,
                refused_redirect_uri,
            } => Self::Authorize {
                error,
                refused_redirect_uri,
            },
            AuthorizeError::Unavailable => Self::Unavailable,
            AuthorizeError::Redirect(location) => Self::ToClient(location),
        }
    }
}

/// An OAuth failure on a page (approving, issuing): unavailable is unavailable, anything else
/// an error the user can only report.
impl From<OAuthError> for PageError {
    fn from(error: OAuthError) -> Self {
        match error {
            OAuthError::TemporarilyUnavailable { .. } => Self::Unavailable,
            other => Self::Form(other),
        }
    }
}

fn unavailable() -> OAuthError {
    OAuthError::TemporarilyUnavailable {
        retry_after_secs: UNAVAILABLE_RETRY_AFTER_SECS,
    }
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST)
}

fn with_retry_after(mut response: Response, secs: Option<u64>) -> Response {
    if let Some(secs) = secs {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

fn oauth_response(error: &OAuthError) -> Response {
    let mut response = no_store(json(status(error.status()), &error.body()));
    let headers = response.headers_mut();
    if let OAuthError::InvalidClientCredentials { via_basic: true } = error {
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"tessera\""),
        );
    }
    if let OAuthError::MethodNotAllowed = error {
        headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
    }
    with_retry_after(response, error.retry_after_secs())
}

/// Revocation errors are form-encoded, as Salesforce sends them (jsforce parses them with
/// `querystring.parse`).
fn revocation_response(failure: &RevocationFailure) -> Response {
    let (code, description, status, retry_after) = match failure {
        RevocationFailure::Token(e) => (e.code(), e.description(), StatusCode::BAD_REQUEST, None),
        RevocationFailure::Request(e) => (
            e.code(),
            e.description(),
            status(e.status()),
            e.retry_after_secs(),
        ),
    };
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("error", code)
        .append_pair("error_description", description)
        .finish();
    let response = (
        status,
        [(header::CONTENT_TYPE, "application/x-www-form-urlencoded")],
        body,
    )
        .into_response();
    with_retry_after(no_store(response), retry_after)
}

fn api_array(status: StatusCode, code: &str, message: &str) -> Response {
    json(
        status,
        &serde_json::json!([{ "message": message, "errorCode": code }]),
    )
}

/// A 401 of the REST API for a DPoP failure: Salesforce's `INVALID_SESSION_ID` body, so that
/// its clients see a session problem, and the RFC 9449 §7.1 challenge a DPoP client acts on.
/// `description` is one of our fixed texts, never input.
fn dpop_challenge(error: &str, description: &str) -> Response {
    let response = api_array(StatusCode::UNAUTHORIZED, "INVALID_SESSION_ID", description);
    with_dpop_challenge(response, error, description)
}

/// `WWW-Authenticate: DPoP error="…", error_description="…"` (RFC 9449 §7.1) on `response`.
fn with_dpop_challenge(mut response: Response, error: &str, description: &str) -> Response {
    let challenge = format!("DPoP error=\"{error}\", error_description=\"{description}\"");
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .append(header::WWW_AUTHENTICATE, value);
    }
    response
}

const RESOURCE_NEEDS_NONCE: &str = "Resource server requires nonce in DPoP proof";

fn api_response(error: &ApiError) -> Response {
    match error {
        ApiError::Session(session) => {
            let mut response = json(status(session.status()), &session.body());
            if *session == SessionError::InvalidSession {
                let headers = response.headers_mut();
                headers.append(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
                headers.append(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            response
        }
        ApiError::DpopProof(reason) => dpop_challenge("invalid_dpop_proof", reason),
        ApiError::UseDpopNonce => dpop_challenge("use_dpop_nonce", RESOURCE_NEEDS_NONCE),
        ApiError::NotFound => api_array(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        ),
        ApiError::RequiredField(field) => json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!([{
                "message": format!("Required fields are missing: [{field}]"),
                "errorCode": "REQUIRED_FIELD_MISSING",
                "fields": [field],
            }]),
        ),
        ApiError::StringTooLong(message) => {
            api_array(StatusCode::BAD_REQUEST, "STRING_TOO_LONG", message)
        }
        ApiError::JsonParser(message) => {
            api_array(StatusCode::BAD_REQUEST, "JSON_PARSER_ERROR", message)
        }
        ApiError::InvalidField(message) => {
            api_array(StatusCode::BAD_REQUEST, "INVALID_FIELD", message)
        }
        ApiError::InvalidType(message) => {
            api_array(StatusCode::BAD_REQUEST, "INVALID_TYPE", message)
        }
        ApiError::MalformedQuery => api_array(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "Only SELECT field, ... FROM Note|User [LIMIT n] is supported",
        ),
        ApiError::InsufficientAccess(message) => {
            api_array(StatusCode::FORBIDDEN, "INSUFFICIENT_ACCESS", message)
        }
        ApiError::NotFoundNamed(message) => api_array(StatusCode::NOT_FOUND, "NOT_FOUND", message),
        ApiError::InvalidParameter(message) => {
            api_array(StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", message)
        }
        ApiError::UnsupportedMediaType => api_array(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "Content-Type must be application/json",
        ),
        ApiError::BodyTooLarge => api_array(
            StatusCode::PAYLOAD_TOO_LARGE,
            "REQUEST_LIMIT_EXCEEDED",
            "The request body is too large",
        ),
        ApiError::Unavailable => with_retry_after(
            api_array(
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVER_UNAVAILABLE",
                "The service is temporarily unavailable, retry later",
            ),
            Some(UNAVAILABLE_RETRY_AFTER_SECS),
        ),
    }
}

fn identity_response(error: IdentityError) -> Response {
    let (status, text) = match error {
        IdentityError::MissingToken => (StatusCode::FORBIDDEN, "Missing_OAuth_Token"),
        IdentityError::BadToken => (StatusCode::FORBIDDEN, "Bad_OAuth_Token"),
        IdentityError::NoUserinfoScope
        | IdentityError::DpopProof(_)
        | IdentityError::UseDpopNonce => (StatusCode::UNAUTHORIZED, "Bad_OAuth_Token"),
        IdentityError::WrongOrg => (StatusCode::FORBIDDEN, "Wrong_Org"),
        IdentityError::BadId => (StatusCode::NOT_FOUND, "Bad_Id"),
        IdentityError::BadFormat => (StatusCode::BAD_REQUEST, "Bad_Format"),
        IdentityError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "Service_Unavailable"),
    };
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "text/plain;charset=UTF-8")],
        text,
    )
        .into_response();
    if error == IdentityError::NoUserinfoScope {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(
                "Bearer error=\"invalid_token\", error_description=\"the token's scope has none of \
openid, id, profile, email, address, phone or full\"",
            ),
        );
    }
    let response = match error {
        IdentityError::DpopProof(reason) => {
            with_dpop_challenge(response, "invalid_dpop_proof", reason)
        }
        IdentityError::UseDpopNonce => {
            with_dpop_challenge(response, "use_dpop_nonce", RESOURCE_NEEDS_NONCE)
        }
        _ => response,
    };
    let retry = (error == IdentityError::Unavailable).then_some(UNAVAILABLE_RETRY_AFTER_SECS);
    with_retry_after(response, retry)
}

fn page_response(error: &PageError) -> Response {
    match error {
        PageError::Authorize {
            error,
            refused_redirect_uri,
        } => pages::authorize_error(ErrorPage {
            refused_redirect_uri: refused_redirect_uri.as_deref(),
            ..ErrorPage::new(StatusCode::BAD_REQUEST, error.code(), error.description())
        }),
        PageError::Form(e) => {
            let page = ErrorPage::new(status(e.status()), e.code(), e.description());
            with_retry_after(pages::authorize_error(page), e.retry_after_secs())
        }
        PageError::Forbidden => pages::authorize_error(ErrorPage::new(
            StatusCode::FORBIDDEN,
            "invalid_request",
            "the form expired or did not come from this site, go back and try again",
        )),
        PageError::BadDecision => pages::authorize_error(ErrorPage::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "decision must be allow or deny",
        )),
        PageError::RepeatedCookie => pages::authorize_error(ErrorPage::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "a cookie of this site came more than once, which only happens when another site set \
one: clear this site's cookies and try again",
        )),
        PageError::ToClient(location) => redirect(location),
        PageError::Unavailable => {
            with_retry_after(pages::unavailable(), Some(UNAVAILABLE_RETRY_AFTER_SECS))
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match &self {
            Self::OAuth(e) => oauth_response(e),
            Self::Revocation(f) => revocation_response(f),
            Self::Api(e) => api_response(e),
            Self::Identity(e) => identity_response(*e),
            Self::Page(e) => page_response(e),
            Self::NotReady(why) => with_retry_after(
                (StatusCode::SERVICE_UNAVAILABLE, not_ready_text(*why)).into_response(),
                Some(UNAVAILABLE_RETRY_AFTER_SECS),
            ),
        }
    }
}

fn not_ready_text(why: Unready) -> String {
    match why {
        Unready::Database => {
            "not ready: the database is unreachable or its schema is not current\n".to_owned()
        }
        Unready::ChangeFeed(stale) => {
            format!("not ready: {stale}; revocations made elsewhere may not be known here\n")
        }
    }
}

/// Any path we do not serve: Salesforce's REST 404.
pub async fn not_found() -> WebError {
    WebError::Api(ApiError::NotFound)
}
