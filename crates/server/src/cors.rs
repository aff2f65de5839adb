//! Cross-origin requests from browser apps (docs/security.md, "Browser apps on another origin
//! (CORS)"), as Salesforce answers them:
//!
//! - the REST API, userinfo and the identity URL answer an origin on the allowlist with
//!   `Access-Control-Allow-Origin: <that origin>` and `Vary: Origin`, and any other cross-origin
//!   request with 403;
//! - the token, revocation and introspection endpoints do the same only when the operator
//!   enabled CORS for the OAuth endpoints; otherwise they answer as before, with no CORS header,
//!   so a browser keeps the answer from the page;
//! - the discovery documents and the JWKS are public: any origin, `Access-Control-Allow-Origin: *`;
//! - the authorization pages and the console never: a browser navigates to them, it does not
//!   `fetch` them, and no cookie is ever sent cross-origin (never
//!   `Access-Control-Allow-Credentials`).
//!
//! A request without `Origin`, or whose `Origin` is the issuer's own (our pages posting their
//! forms), is not cross-origin and is answered exactly as without this layer.
//!
//! tower-http's `CorsLayer` does not fit: it never refuses (a disallowed origin only goes
//! without headers, where Salesforce answers 403), it has one policy for every route it wraps,
//! and it would treat the issuer's own forms as cross-origin.

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tessera_core::identity::cors_origin::{CorsAllowlist, WebOrigin};

use crate::AppState;

/// Who may call from a browser on another origin.
#[derive(Debug, Clone, Default)]
pub struct CorsPolicy {
    /// The origins allowed on the API, userinfo and the identity URL (and the OAuth endpoints
    /// when `oauth_endpoints`); empty: none.
    pub allowlist: CorsAllowlist,
    /// Salesforce's "Enable CORS for OAuth endpoints": the allowlist extends to the token,
    /// revocation and introspection endpoints.
    pub oauth_endpoints: bool,
}

/// Request headers a browser app may send: `DPoP` for proof-of-possession tokens to come,
/// `X-Request-Id` to tie its calls to our logs.
const ALLOW_HEADERS: &str = "Authorization, Content-Type, DPoP, X-Request-Id";
/// Response headers a browser app may read besides the safelisted ones.
const EXPOSE_HEADERS: &str = "WWW-Authenticate, DPoP-Nonce, X-Request-Id";
/// How long a browser may reuse a preflight's answer: a change to the allowlist reaches
/// browsers within this time.
const MAX_AGE_SECS: &str = "600";

/// Who a route answers cross-origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Any origin (a public document).
    Anyone,
    /// The origins on the allowlist; 403 for the others.
    Allowlist,
}

/// A route's CORS answer: who, and the methods it has.
#[derive(Debug, Clone, Copy)]
struct CorsRoute {
    access: Access,
    methods: &'static str,
}

/// The CORS answer of a route template (as registered), or `None` for a route with no CORS.
fn cors_route(template: &str, oauth_endpoints: bool) -> Option<CorsRoute> {
    let allowlist = |methods| {
        Some(CorsRoute {
            access: Access::Allowlist,
            methods,
        })
    };
    match template {
        "/.well-known/oauth-authorization-server"
        | "/.well-known/openid-configuration"
        | "/id/keys" => Some(CorsRoute {
            access: Access::Anyone,
            methods: "GET",
        }),
        "/services/oauth2/userinfo" | "/id/{org_id}/{user_id}" => allowlist("GET, POST"),
        "/services/oauth2/token" | "/services/oauth2/introspect" if oauth_endpoints => {
            allowlist("POST")
        }
        "/services/oauth2/revoke" if oauth_endpoints => allowlist("GET, POST"),
        data if data == "/services/data" || data.starts_with("/services/data/") => {
            if data.ends_with("/{object}/{id}") {
                allowlist("GET, PATCH, DELETE")
            } else if data.ends_with("/{object}") {
                allowlist("GET, POST")
            } else {
                allowlist("GET")
            }
        }
        _ => None,
    }
}

/// The middleware.
pub(crate) async fn cors(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // The common case first, and unchanged: no Origin (a server-side client, a navigation).
    let Some(origin_header) = request.headers().get(header::ORIGIN).cloned() else {
        return next.run(request).await;
    };
    let Some(route) = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|path| cors_route(path.as_str(), state.cors.oauth_endpoints))
    else {
        return next.run(request).await;
    };
    let origin = origin_header
        .to_str()
        .ok()
        .and_then(|text| text.parse::<WebOrigin>().ok());
    if origin.is_some() && origin == WebOrigin::of_url(&state.authority.config().issuer) {
        return next.run(request).await;
    }
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let allow_origin = match route.access {
        Access::Anyone => HeaderValue::from_static("*"),
        Access::Allowlist => match origin {
            Some(origin) if state.cors.allowlist.allows(&origin) => origin_header,
            // An opaque (`null`) or malformed origin is on no list.
            _ => return refused(),
        },
    };
    let mut response = if preflight {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(route.methods),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static(MAX_AGE_SECS),
        );
        response
    } else {
        let mut response = next.run(request).await;
        response.headers_mut().insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        );
        response
    };
    let headers = response.headers_mut();
    if route.access == Access::Allowlist {
        vary_on_origin(headers);
    }
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
    response
}

/// A cross-origin request from an origin not on the allowlist: 403, as Salesforce, before the
/// handler runs (a refused preflight, and a simple request that needs none, alike).
fn refused() -> Response {
    let mut response = (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from("This origin is not on the CORS allowlist.\n"),
    )
        .into_response();
    vary_on_origin(response.headers_mut());
    response
}

/// The answer depends on `Origin`: a shared cache must not give one origin's to another.
fn vary_on_origin(headers: &mut HeaderMap) {
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}
