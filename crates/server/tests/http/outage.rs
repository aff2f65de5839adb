//! A storage failure is 503 with `Retry-After` at every endpoint, in that endpoint's own format:
//! never an authentication error for a valid credential, never a 500. And an oversized body is
//! 413 in the endpoint's format too.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::json;

use crate::support::*;

const SCOPE: &str = "api id refresh_token";

fn assert_unavailable(reply: &Reply, what: &str) {
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what}: {}",
        reply.text()
    );
    assert!(
        reply.header("retry-after").is_some(),
        "{what}: no Retry-After"
    );
}

fn assert_oauth_unavailable(reply: &Reply, what: &str) {
    assert_unavailable(reply, what);
    reply.assert_oauth_error(503, "temporarily_unavailable");
}

/// A harness with a client, a user logged in through the browser (its session cookie kept), and
/// their tokens, before the store goes down.
struct Down {
    h: Harness,
    client: Client,
    /// A client never used before the store went down: nothing of it is cached.
    unseen: Client,
    browser: Browser,
    tokens: serde_json::Value,
    login_page: Reply,
}

async fn down() -> Down {
    let h = Harness::new().await;
    let client = h.confidential().await;
    let mut browser = Browser::default();
    let location = h
        .authorize_in(&mut browser, &client, &[("scope", SCOPE), ("state", "s")])
        .await;
    let code = url_param(&location, "code").unwrap();
    let tokens = h.exchange(&client, &code, None).await.json();
    // A fresh login page (another browser), whose form is posted once the store is down.
    let mut other = Browser::default();
    let login_page = h
        .get(
            &h.authorize_url(&client, &[("state", "t")]),
            Some(&mut other),
        )
        .await;
    let unseen = h.confidential().await;
    h.store.fail(true);
    Down {
        h,
        client,
        unseen,
        browser,
        tokens,
        login_page,
    }
}

impl Down {
    fn token(&self, name: &str) -> String {
        self.tokens[name].as_str().unwrap().to_owned()
    }
}

#[tokio::test]
async fn oauth_endpoints_answer_temporarily_unavailable() {
    let d = down().await;
    let h = &d.h;
    let refresh = h.refresh(&d.client, &d.token("refresh_token")).await;
    assert_oauth_unavailable(&refresh, "refresh with a valid token");
    let wrong = h
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "x"),
            ("client_id", &d.unseen.id),
            ("client_secret", "wrong"),
        ])
        .await;
    assert_oauth_unavailable(&wrong, "client lookup");
    let exchange = h.exchange(&d.client, "some-code", None).await;
    assert_oauth_unavailable(&exchange, "code exchange");
    let introspect = h.introspect(&d.client, &d.token("access_token")).await;
    assert_oauth_unavailable(&introspect, "introspection");
}

#[tokio::test]
async fn revocation_answers_form_encoded_unavailable() {
    let d = down().await;
    let reply = d.h.revoke(&d.token("refresh_token")).await;
    assert_unavailable(&reply, "revocation");
    assert_eq!(
        reply.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert!(reply.text().starts_with("error=temporarily_unavailable&"));
    d.h.store.fail(false);
    assert!(
        d.h.api_works(&d.token("access_token")).await,
        "nothing was revoked"
    );
}

#[tokio::test]
async fn pages_answer_with_a_plain_503_page() {
    let d = down().await;
    let h = &d.h;
    let mut browser = d.browser;
    let html_503 = |reply: &Reply, what: &str| {
        assert_unavailable(reply, what);
        assert!(
            reply
                .header("content-type")
                .unwrap()
                .starts_with("text/html"),
            "{what}"
        );
        assert!(reply.text().contains("Temporarily unavailable"), "{what}");
    };
    let authorize = h
        .get(
            &h.authorize_url(&d.client, &[("state", "s")]),
            Some(&mut browser),
        )
        .await;
    html_503(&authorize, "authorize");
    let consent = h
        .get(
            &format!(
                "/services/oauth2/authorize/consent?{}",
                h.authorize_url(&d.client, &[]).split_once('?').unwrap().1
            ),
            Some(&mut browser),
        )
        .await;
    html_503(&consent, "consent page");
    let html = d.login_page.text();
    let body = form(&[
        ("request", &hidden_value(&html, "request").unwrap()),
        ("csrf_token", &hidden_value(&html, "csrf_token").unwrap()),
        ("username", USERNAME),
        ("password", PASSWORD),
    ]);
    let mut login_browser = Browser::default();
    login_browser.absorb_from(&d.login_page);
    let login = h
        .post_form(
            "/services/oauth2/authorize/login",
            &body,
            Some(&mut login_browser),
        )
        .await;
    html_503(&login, "login");
}

#[tokio::test]
async fn identity_and_userinfo_answer_plain_text_unavailable() {
    let d = down().await;
    let h = &d.h;
    let access = d.token("access_token");
    let id_path = d.tokens["id"]
        .as_str()
        .unwrap()
        .strip_prefix(ISSUER)
        .unwrap()
        .to_owned();
    for path in [id_path.as_str(), "/services/oauth2/userinfo"] {
        let reply = h.api(Method::GET, path, &access, None).await;
        assert_unavailable(&reply, path);
        assert_eq!(reply.text(), "Service_Unavailable", "{path}");
    }
}

#[tokio::test]
async fn the_rest_api_answers_salesforces_error_array() {
    let d = down().await;
    let h = &d.h;
    let access = d.token("access_token");
    for (method, path, body) in [
        (Method::GET, "/services/data/v65.0/", None),
        (Method::GET, "/services/data/v65.0/sobjects/Note", None),
        (
            Method::POST,
            "/services/data/v65.0/sobjects/Note",
            Some(json!({"Title": "x"})),
        ),
        (
            Method::GET,
            "/services/data/v65.0/query?q=SELECT+Id+FROM+Note",
            None,
        ),
    ] {
        let reply = h.api(method.clone(), path, &access, body).await;
        assert_unavailable(&reply, path);
        assert_eq!(
            reply.json(),
            json!([{ "message": "The service is temporarily unavailable, retry later", "errorCode": "SERVER_UNAVAILABLE" }]),
            "{method} {path}"
        );
        assert!(reply.header("www-authenticate").is_none());
    }
    // What needs no store still works.
    let versions = h.get("/services/data", None).await;
    assert_eq!(versions.status, StatusCode::OK);
}

#[tokio::test]
async fn the_service_recovers_when_the_store_does() {
    let d = down().await;
    d.h.store.fail(false);
    let refreshed = d.h.refresh(&d.client, &d.token("refresh_token")).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.text());
}

fn oversized() -> String {
    format!("token={}", "a".repeat(tessera_server::MAX_BODY_BYTES + 1))
}

#[tokio::test]
async fn an_oversized_body_is_413_in_each_endpoints_format() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let access = h.login(&c, SCOPE).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    h.post_form("/services/oauth2/token", &oversized(), None)
        .await
        .assert_oauth_error(413, "invalid_request");
    h.post_form("/services/oauth2/introspect", &oversized(), None)
        .await
        .assert_oauth_error(413, "invalid_request");
    let revoke = h
        .post_form("/services/oauth2/revoke", &oversized(), None)
        .await;
    assert_eq!(revoke.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(revoke.text().starts_with("error=invalid_request&"));
    let login = h
        .post_form("/services/oauth2/authorize/login", &oversized(), None)
        .await;
    assert_eq!(login.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(login.text().contains("<html"));
    let note = h
        .send(
            Request::post("/services/data/v65.0/sobjects/Note")
                .header(header::AUTHORIZATION, format!("Bearer {access}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(format!(
                    "{{\"Title\":\"{}\"}}",
                    "a".repeat(tessera_server::MAX_BODY_BYTES)
                )))
                .unwrap(),
        )
        .await;
    assert_eq!(note.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(note.json()[0]["errorCode"], "REQUEST_LIMIT_EXCEEDED");
}

#[tokio::test]
async fn readiness_follows_the_database_and_liveness_does_not() {
    let h = Harness::new().await;
    let ready = h.get("/readyz", None).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text());
    h.store.fail(true);
    assert_unavailable(&h.get("/readyz", None).await, "readyz with the store down");
    let live = h.get("/healthz", None).await;
    assert_eq!(live.status, StatusCode::OK, "the process is up");
    h.store.fail(false);
    assert_eq!(h.get("/readyz", None).await.status, StatusCode::OK);
}

/// A server that cannot read the change feed does not know of revocations made elsewhere (the
/// admin commands, other nodes): past the bound it answers every check that relies on that
/// knowledge 503 and is not ready, and it recovers by itself once the feed is read again. The
/// rest of the store works throughout: the feed alone decides.
#[tokio::test]
async fn tokens_are_not_vouched_for_once_the_change_feed_goes_unread_past_its_bound() {
    let h = Harness::new().await;
    let client = h.confidential().await;
    let tokens = h.login(&client, SCOPE).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    h.authority.catch_up().await.unwrap();
    assert!(h.api_works(&access).await);

    h.store.fail_change_feed(true);
    assert!(h.authority.catch_up().await.is_err());
    h.clock.advance_secs(10);
    assert!(h.api_works(&access).await, "within the bound: served");
    assert_eq!(h.get("/readyz", None).await.status, StatusCode::OK);

    h.clock.advance_secs(1);
    let api = h
        .api(Method::GET, "/services/data/v65.0/", &access, None)
        .await;
    assert_unavailable(&api, "the REST API");
    let userinfo = h
        .api(Method::GET, "/services/oauth2/userinfo", &access, None)
        .await;
    assert_unavailable(&userinfo, "userinfo");
    assert_oauth_unavailable(&h.introspect(&client, &access).await, "introspection");
    assert_oauth_unavailable(&h.refresh(&client, &refresh_token).await, "refresh");
    let ready = h.get("/readyz", None).await;
    assert_unavailable(&ready, "readyz");
    assert!(ready.text().contains("change feed"), "{}", ready.text());
    assert_eq!(h.get("/healthz", None).await.status, StatusCode::OK);

    h.store.fail_change_feed(false);
    h.authority.catch_up().await.unwrap();
    assert!(h.api_works(&access).await, "served again");
    assert_eq!(
        h.refresh(&client, &refresh_token).await.status,
        StatusCode::OK
    );
    assert_eq!(h.get("/readyz", None).await.status, StatusCode::OK);
}
