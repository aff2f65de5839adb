//! Browser apps on another origin (docs/security.md, "Browser apps on another origin (CORS)"):
//! the allowlist on the API, userinfo and (when enabled) the OAuth endpoints, 403 for the other
//! origins, the public discovery document, and no CORS at all on the pages and the console.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use tessera_core::identity::cors_origin::CorsAllowlist;
use tessera_core::operations::admin::ClientSettings;
use tessera_server::cors::CorsPolicy;
use tessera_server::{app, AppState};

use crate::support::*;

const ALLOWED: &str = "https://app.example.com";
const ALLOWED_BY_WILDCARD: &str = "https://b.a.partner.example";
const OTHER: &str = "https://evil.example.net";

/// A harness whose allowlist is [`ALLOWED`] and `*.partner.example`.
async fn harness(oauth_endpoints: bool) -> Harness {
    let mut h = Harness::new().await;
    let allowlist = CorsAllowlist::parse_all(&[ALLOWED, "https://*.partner.example"]).unwrap();
    h.app = app(AppState::new(h.authority.clone()).with_cors(CorsPolicy {
        allowlist,
        oauth_endpoints,
    }));
    h
}

/// A request from a page on `origin` (none: not from a browser page).
async fn from_origin(
    h: &Harness,
    method: Method,
    uri: &str,
    origin: Option<&str>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(origin) = origin {
        builder = builder.header(header::ORIGIN, origin);
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let reply = h.send(builder.body(Body::empty()).unwrap()).await;
    assert_eq!(
        reply.header("access-control-allow-credentials"),
        None,
        "no cookie crosses origins: {uri}"
    );
    reply
}

/// The preflight a browser sends before a `fetch` with `Authorization`.
async fn preflight(h: &Harness, uri: &str, origin: &str, method: &str) -> Reply {
    from_origin(
        h,
        Method::OPTIONS,
        uri,
        Some(origin),
        &[
            ("access-control-request-method", method),
            ("access-control-request-headers", "authorization"),
        ],
    )
    .await
}

/// A token for the API and userinfo (which needs an identity scope such as `id`).
async fn access_token(h: &Harness) -> String {
    let c = h.confidential().await;
    h.login(&c, "api id refresh_token").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A `GET` with a bearer token from a page on `origin`.
async fn get_with_token(h: &Harness, uri: &str, origin: Option<&str>, token: &str) -> Reply {
    let bearer = format!("Bearer {token}");
    from_origin(h, Method::GET, uri, origin, &[("authorization", &bearer)]).await
}

fn vary_names_origin(reply: &Reply) -> bool {
    reply
        .headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|name| name.trim().eq_ignore_ascii_case("origin"))
        })
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_answered_with_that_origin_and_the_routes_methods() {
    let h = harness(false).await;
    for origin in [ALLOWED, ALLOWED_BY_WILDCARD] {
        let reply = preflight(
            &h,
            "/services/data/v65.0/sobjects/Note/a0X000000000001AAA",
            origin,
            "PATCH",
        )
        .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
        assert_eq!(reply.header("access-control-allow-origin"), Some(origin));
        assert!(vary_names_origin(&reply));
        assert_eq!(
            reply.header("access-control-allow-methods"),
            Some("GET, PATCH, DELETE")
        );
        let allowed_headers = reply.header("access-control-allow-headers").unwrap();
        for name in ["Authorization", "Content-Type", "DPoP"] {
            assert!(allowed_headers.contains(name), "{allowed_headers}");
        }
        assert!(reply.header("access-control-max-age").is_some());
    }
}

#[tokio::test]
async fn a_preflight_from_an_origin_not_on_the_allowlist_is_refused() {
    let h = harness(true).await;
    for uri in [
        "/services/data/v65.0/query",
        "/services/oauth2/userinfo",
        "/services/oauth2/token",
    ] {
        let reply = preflight(&h, uri, OTHER, "POST").await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{uri}");
        assert_eq!(reply.header("access-control-allow-origin"), None, "{uri}");
    }
    // A sandboxed page's opaque origin is on no list either.
    let null = preflight(&h, "/services/data/v65.0/", "null", "GET").await;
    assert_eq!(null.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_api_call_from_an_allowed_origin_names_that_origin_and_varies_on_it() {
    let h = harness(false).await;
    let token = access_token(&h).await;
    let reply = get_with_token(&h, "/services/data/v65.0/", Some(ALLOWED), &token).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.header("access-control-allow-origin"), Some(ALLOWED));
    assert!(vary_names_origin(&reply));
    let exposed = reply.header("access-control-expose-headers").unwrap();
    for name in ["WWW-Authenticate", "DPoP-Nonce", "X-Request-Id"] {
        assert!(exposed.contains(name), "{exposed}");
    }
    // An error is readable too: the app must see the 401 to refresh its token.
    let expired = get_with_token(&h, "/services/data/v65.0/", Some(ALLOWED), "not-a-token").await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert_eq!(expired.header("access-control-allow-origin"), Some(ALLOWED));
}

#[tokio::test]
async fn an_api_call_from_an_origin_not_on_the_allowlist_is_refused_before_it_runs() {
    let h = harness(false).await;
    let token = access_token(&h).await;
    let bearer = format!("Bearer {token}");
    let reply = get_with_token(&h, "/services/data/v65.0/", Some(OTHER), &token).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text());
    assert_eq!(reply.header("access-control-allow-origin"), None);
    // Refused before the handler: a write from that origin leaves nothing behind, where the
    // same write from an allowed origin is stored.
    let create_from = |origin: &'static str, title: &'static str| {
        let request = Request::post("/services/data/v65.0/sobjects/Note")
            .header(header::ORIGIN, origin)
            .header(header::AUTHORIZATION, &bearer)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(format!(r#"{{"Title":"{title}","Body":"b"}}"#)))
            .unwrap();
        h.send(request)
    };
    assert_eq!(
        create_from(OTHER, "planted").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        create_from(ALLOWED, "welcome").await.status,
        StatusCode::CREATED
    );
    let notes = h
        .api(
            Method::GET,
            "/services/data/v65.0/query?q=SELECT+Id,Title+FROM+Note",
            &token,
            None,
        )
        .await;
    assert_eq!(notes.status, StatusCode::OK, "{}", notes.text());
    assert!(notes.text().contains("welcome"), "{}", notes.text());
    assert!(!notes.text().contains("planted"), "{}", notes.text());
}

#[tokio::test]
async fn a_request_without_origin_or_from_the_issuer_itself_is_answered_as_without_cors() {
    let h = harness(true).await;
    let token = access_token(&h).await;
    for origin in [None, Some(ISSUER)] {
        for uri in ["/services/data/v65.0/", "/services/oauth2/userinfo"] {
            let reply = get_with_token(&h, uri, origin, &token).await;
            assert_eq!(reply.status, StatusCode::OK, "{uri} {origin:?}");
            assert_eq!(reply.header("access-control-allow-origin"), None);
            assert_eq!(reply.header("access-control-expose-headers"), None);
            assert!(!vary_names_origin(&reply), "{uri} {origin:?}");
        }
    }
}

#[tokio::test]
async fn userinfo_follows_the_allowlist() {
    let h = harness(false).await;
    let token = access_token(&h).await;
    let allowed = get_with_token(
        &h,
        "/services/oauth2/userinfo",
        Some(ALLOWED_BY_WILDCARD),
        &token,
    )
    .await;
    assert_eq!(allowed.status, StatusCode::OK, "{}", allowed.text());
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some(ALLOWED_BY_WILDCARD)
    );
    // The wildcard covers subdomains, not the domain itself.
    let bare = get_with_token(
        &h,
        "/services/oauth2/userinfo",
        Some("https://partner.example"),
        &token,
    )
    .await;
    assert_eq!(bare.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_oauth_endpoints_answer_no_origin_until_cors_for_them_is_enabled() {
    let off = harness(false).await;
    for (uri, method) in [
        ("/services/oauth2/token", "POST"),
        ("/services/oauth2/revoke", "POST"),
        ("/services/oauth2/introspect", "POST"),
    ] {
        let reply = preflight(&off, uri, ALLOWED, method).await;
        assert_eq!(reply.header("access-control-allow-origin"), None, "{uri}");
        assert_ne!(reply.status, StatusCode::NO_CONTENT, "{uri}");
    }
    // Answered as before: the browser, seeing no CORS header, keeps the answer from the page.
    let token = from_origin(
        &off,
        Method::POST,
        "/services/oauth2/token",
        Some(ALLOWED),
        &[],
    )
    .await;
    assert_ne!(token.status, StatusCode::FORBIDDEN);
    assert_eq!(token.header("access-control-allow-origin"), None);

    let on = harness(true).await;
    for (uri, method, methods) in [
        ("/services/oauth2/token", "POST", "POST"),
        ("/services/oauth2/revoke", "POST", "GET, POST"),
        ("/services/oauth2/introspect", "POST", "POST"),
    ] {
        let reply = preflight(&on, uri, ALLOWED, method).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{uri}");
        assert_eq!(reply.header("access-control-allow-origin"), Some(ALLOWED));
        assert_eq!(reply.header("access-control-allow-methods"), Some(methods));
    }
    let refused = from_origin(
        &on,
        Method::POST,
        "/services/oauth2/token",
        Some(OTHER),
        &[],
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_public_client_on_an_allowed_origin_rotates_and_a_replay_still_revokes_the_family() {
    let h = harness(true).await;
    let client = h
        .client(
            true,
            ClientSettings {
                rotate_refresh_tokens: Some(true),
                ..Default::default()
            },
        )
        .await;
    let (verifier, challenge) = pkce("a-verifier-long-enough-for-pkce-0123456789-abcdefgh");
    let code = h
        .code(
            &client,
            &[
                ("scope", "api refresh_token"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        )
        .await;
    let token_call = |pairs: Vec<(&str, &str)>| {
        let body = form(&pairs);
        let h = &h;
        async move {
            let reply = h
                .send(
                    Request::post("/services/oauth2/token")
                        .header(header::ORIGIN, ALLOWED)
                        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                        .body(Body::from(body))
                        .unwrap(),
                )
                .await;
            assert_eq!(reply.header("access-control-allow-origin"), Some(ALLOWED));
            assert_eq!(reply.header("access-control-allow-credentials"), None);
            reply
        }
    };
    let first = token_call(vec![
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("client_id", &client.id),
        ("redirect_uri", REDIRECT),
        ("code_verifier", &verifier),
    ])
    .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let rt1 = first.json()["refresh_token"].as_str().unwrap().to_owned();
    let refresh = |token: String| {
        let client_id = client.id.clone();
        let token_call = &token_call;
        async move {
            token_call(vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", &token),
                ("client_id", &client_id),
            ])
            .await
        }
    };
    let second = refresh(rt1.clone()).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text());
    let rt2 = second.json()["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt1, rt2);
    let third = refresh(rt2).await;
    assert_eq!(third.status, StatusCode::OK, "{}", third.text());
    let rt3 = third.json()["refresh_token"].as_str().unwrap().to_owned();
    // Outside the retry window (none here), a replay is reuse: the whole family dies.
    refresh(rt1).await.assert_oauth_error(400, "invalid_grant");
    refresh(rt3).await.assert_oauth_error(400, "invalid_grant");
}

#[tokio::test]
async fn the_discovery_documents_and_the_jwks_are_open_to_any_origin() {
    let h = harness(false).await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/id/keys",
    ] {
        let reply = from_origin(&h, Method::GET, path, Some(OTHER), &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert_eq!(
            reply.header("access-control-allow-origin"),
            Some("*"),
            "{path}"
        );
        let preflight = preflight(&h, path, OTHER, "GET").await;
        assert_eq!(preflight.status, StatusCode::NO_CONTENT, "{path}");
        assert_eq!(
            preflight.header("access-control-allow-origin"),
            Some("*"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_authorization_pages_and_the_console_never_answer_cross_origin() {
    let h = harness(true).await;
    let client = h.confidential().await;
    let authorize = h.authorize_url(&client, &[("state", "s")]);
    for uri in [authorize.as_str(), "/admin", "/admin/login"] {
        for origin in [ALLOWED, OTHER] {
            let page = from_origin(&h, Method::GET, uri, Some(origin), &[]).await;
            assert_ne!(page.status, StatusCode::FORBIDDEN, "{uri}");
            assert_eq!(page.header("access-control-allow-origin"), None, "{uri}");
            let preflight = preflight(&h, uri, origin, "POST").await;
            assert_eq!(
                preflight.header("access-control-allow-origin"),
                None,
                "{uri}"
            );
        }
    }
}
