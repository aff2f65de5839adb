//! `POST /services/oauth2/token`: transport, client authentication, both grants, policies
//! (docs/security.md, "Client authentication", "Bounded requests", "Authorization codes",
//! "PKCE", "Scope on refresh"; docs/salesforce-compatibility.md, "Token requests", "Token
//! response", "Refresh-token policies", "Token endpoint errors").

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use base64::Engine;
use hmac::{Hmac, Mac};
use tessera_core::operations::admin::ClientSettings;
use tessera_core::policy::RefreshTokenPolicy;
use tessera_core::time::Clock;

use crate::support::*;

const SCOPE: &str = "api id refresh_token";

async fn raw(
    h: &Harness,
    method: Method,
    uri: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Reply {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(ct) = content_type {
        b = b.header(header::CONTENT_TYPE, ct);
    }
    h.send(b.body(Body::from(body)).unwrap()).await
}

#[tokio::test]
async fn code_exchange_returns_salesforce_shaped_tokens() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let body = h.login(&c, SCOPE).await;
    let access = body["access_token"].as_str().unwrap();
    let (org15, random) = access.split_once('!').unwrap();
    assert_eq!(org15.len(), 15);
    assert!(org15.starts_with("00D"));
    assert!(random
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || ch == '.' || ch == '_'));
    let refresh = body["refresh_token"].as_str().unwrap();
    assert!(
        refresh.len() >= 43
            && refresh
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch))
    );
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["instance_url"], ISSUER);
    assert_eq!(body["scope"], "api id refresh_token");
    assert_eq!(body["expires_in"], 7200);
    let id = body["id"].as_str().unwrap();
    let parts: Vec<&str> = id.rsplitn(3, '/').collect();
    assert!(id.starts_with(&format!("{ISSUER}/id/00D")));
    assert_eq!((parts[0].len(), parts[1].len()), (18, 18));
    let issued_at = body["issued_at"].as_str().unwrap();
    assert_eq!(issued_at.len(), 13);
    // signature = base64(HMAC-SHA256(client_secret, id + issued_at)), padded standard alphabet.
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(c.secret.as_ref().unwrap().as_bytes()).unwrap();
    mac.update(id.as_bytes());
    mac.update(issued_at.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(body["signature"], expected);
}

#[tokio::test]
async fn token_responses_are_never_cached() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let code = h.code(&c, &[("scope", SCOPE)]).await;
    let reply = h.exchange(&c, &code, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("pragma"), Some("no-cache"));
    assert_eq!(
        reply.header("content-type"),
        Some("application/json;charset=UTF-8")
    );
}

#[tokio::test]
async fn expires_in_can_be_switched_off_for_salesforce_mimicry() {
    let h = Harness::with_expires_in(false).await;
    let c = h.confidential().await;
    let body = h.login(&c, SCOPE).await;
    assert!(body.get("expires_in").is_none());
}

#[tokio::test]
async fn refresh_without_rotation_returns_no_refresh_token() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let first = h.login(&c, SCOPE).await;
    let reply = h
        .refresh(&c, first["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body = reply.json();
    assert!(body.get("refresh_token").is_none());
    assert_ne!(body["access_token"], first["access_token"]);
    // The same refresh token keeps working, and the new access token works at once.
    assert_eq!(
        h.refresh(&c, first["refresh_token"].as_str().unwrap())
            .await
            .status,
        StatusCode::OK
    );
    assert!(h.api_works(body["access_token"].as_str().unwrap()).await);
}

#[tokio::test]
async fn refresh_with_basic_credentials_succeeds() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let first = h.login(&c, SCOPE).await;
    let reply = h
        .send(
            Request::post("/services/oauth2/token")
                .header(
                    header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded; charset=UTF-8",
                )
                .header(
                    header::AUTHORIZATION,
                    basic(&c.id, c.secret.as_ref().unwrap()).replace("Basic", "basic"),
                )
                .body(Body::from(form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", first["refresh_token"].as_str().unwrap()),
                ])))
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
}

#[tokio::test]
async fn extra_parameters_and_query_parameters_are_accepted() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let first = h.login(&c, SCOPE).await;
    let rt = first["refresh_token"].as_str().unwrap();
    // jsforce's code_verifier, the Mobile SDK's format and redirect_uri, restforce's empty secret…
    let reply = h
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", &c.id),
            ("client_secret", c.secret.as_ref().unwrap()),
            ("format", "json"),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &"v".repeat(171)),
        ])
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    // …and parameters in the query string of the POST, but for credentials.
    let uri = format!(
        "/services/oauth2/token?{}",
        form(&[("grant_type", "refresh_token"), ("client_id", &c.id)])
    );
    let body = form(&[
        ("refresh_token", rt),
        ("client_secret", c.secret.as_ref().unwrap()),
    ]);
    assert_eq!(h.post_form(&uri, &body, None).await.status, StatusCode::OK);
}

/// A token POST with `in_url` in its query string and `in_body` in its body.
async fn token_split(h: &Harness, in_url: &[(&str, &str)], in_body: &[(&str, &str)]) -> Reply {
    let uri = format!("/services/oauth2/token?{}", form(in_url));
    h.post_form(&uri, &form(in_body), None).await
}

#[tokio::test]
async fn a_refresh_token_in_the_url_is_refused_and_never_used() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let first = h.login(&c, SCOPE).await;
    let rt = first["refresh_token"].as_str().unwrap();
    let secret = c.secret.clone().unwrap();
    let reply = token_split(
        &h,
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
        &[("client_id", &c.id), ("client_secret", &secret)],
    )
    .await;
    reply.assert_oauth_error(400, "invalid_request");
    assert_eq!(
        reply.json()["error_description"],
        "refresh_token must not be sent in the URL"
    );
    // The token itself is untouched: it still refreshes from the body.
    let ok = h.refresh(&c, rt).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
}

#[tokio::test]
async fn a_code_or_its_verifier_in_the_url_is_refused_and_never_used() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let secret = c.secret.clone().unwrap();
    let (verifier, challenge) = pkce(&"v".repeat(64));
    let code = h
        .code(&c, &[("scope", SCOPE), ("code_challenge", &challenge)])
        .await;
    let body = [
        ("grant_type", "authorization_code"),
        ("client_id", c.id.as_str()),
        ("client_secret", secret.as_str()),
        ("redirect_uri", REDIRECT),
    ];
    let code_pair = ("code", code.as_str());
    let verifier_pair = ("code_verifier", verifier.as_str());
    // One of the pair in the URL, the other in the body.
    for (in_url, in_body) in [(code_pair, verifier_pair), (verifier_pair, code_pair)] {
        let reply = token_split(&h, &[in_url], &[body.as_slice(), &[in_body]].concat()).await;
        reply.assert_oauth_error(400, "invalid_request");
        assert_eq!(
            reply.json()["error_description"],
            format!("{} must not be sent in the URL", in_url.0)
        );
    }
    // Neither request spent the code: it is still good, sent in the body.
    let ok = h.exchange(&c, &code, Some(&verifier)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
}

#[tokio::test]
async fn transport_errors() {
    let h = Harness::new().await;
    let get = raw(&h, Method::GET, "/services/oauth2/token", None, vec![]).await;
    get.assert_oauth_error(405, "invalid_request");
    assert_eq!(get.header("allow"), Some("POST"));
    raw(&h, Method::PUT, "/services/oauth2/token", None, vec![])
        .await
        .assert_oauth_error(405, "invalid_request");
    raw(
        &h,
        Method::POST,
        "/services/oauth2/token",
        Some("application/json"),
        br#"{"grant_type":"refresh_token"}"#.to_vec(),
    )
    .await
    .assert_oauth_error(400, "invalid_request");
    raw(
        &h,
        Method::POST,
        "/services/oauth2/token",
        None,
        b"grant_type=refresh_token".to_vec(),
    )
    .await
    .assert_oauth_error(400, "invalid_request");
    raw(
        &h,
        Method::POST,
        "/services/oauth2/token",
        Some("text/plain"),
        b"grant_type=refresh_token".to_vec(),
    )
    .await
    .assert_oauth_error(400, "invalid_request");
    raw(
        &h,
        Method::POST,
        "/services/oauth2/token",
        Some("multipart/form-data; boundary=x"),
        b"--x--".to_vec(),
    )
    .await
    .assert_oauth_error(400, "invalid_request");
    // Salesforce answers a missing grant type as unsupported.
    raw(
        &h,
        Method::POST,
        "/services/oauth2/token",
        Some("application/x-www-form-urlencoded"),
        vec![],
    )
    .await
    .assert_oauth_error(400, "unsupported_grant_type");
    let huge = format!(
        "grant_type=refresh_token&refresh_token={}",
        "a".repeat(100 * 1024)
    );
    raw(
        &h,
        Method::POST,
        "/services/oauth2/token",
        Some("application/x-www-form-urlencoded"),
        huge.into_bytes(),
    )
    .await
    .assert_oauth_error(413, "invalid_request");
    for bad in [
        "grant_type=refresh_token&refresh_token=%ZZ",
        "grant_type=refresh_token&x=%",
        "grant_type=%C0%AF",
        "grant_type=%FF",
    ] {
        raw(
            &h,
            Method::POST,
            "/services/oauth2/token",
            Some("application/x-www-form-urlencoded"),
            bad.as_bytes().to_vec(),
        )
        .await
        .assert_oauth_error(400, "invalid_request");
    }
}

#[tokio::test]
async fn grant_type_must_be_known_and_exact() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    for gt in [
        "",
        "Refresh_Token",
        "password",
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
    ] {
        h.token(&[
            ("grant_type", gt),
            ("client_id", &c.id),
            ("client_secret", c.secret.as_ref().unwrap()),
        ])
        .await
        .assert_oauth_error(400, "unsupported_grant_type");
    }
}

#[tokio::test]
async fn repeated_parameters_are_invalid_requests() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let first = h.login(&c, SCOPE).await;
    let rt = first["refresh_token"].as_str().unwrap();
    let secret = c.secret.as_ref().unwrap();
    for name in [
        "grant_type",
        "refresh_token",
        "client_id",
        "client_secret",
        "scope",
    ] {
        let mut pairs = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", c.id.as_str()),
            ("client_secret", secret.as_str()),
            ("scope", "api"),
        ];
        let value = pairs.iter().find(|(k, _)| *k == name).unwrap().1;
        pairs.push((name, value));
        h.token(&pairs)
            .await
            .assert_oauth_error(400, "invalid_request");
    }
    // The refresh token still works: nothing changed.
    assert_eq!(h.refresh(&c, rt).await.status, StatusCode::OK);
}

#[tokio::test]
async fn client_authentication_errors() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let first = h.login(&c, SCOPE).await;
    let rt = first["refresh_token"].as_str().unwrap();
    let secret = c.secret.clone().unwrap();

    let unknown = h
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", "3MVG9nope"),
            ("client_secret", "x"),
        ])
        .await;
    unknown.assert_oauth_error(400, "invalid_client_id");
    assert_eq!(
        unknown.json()["error_description"],
        "client identifier invalid"
    );

    let wrong = h
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", &c.id),
            ("client_secret", "wrong"),
        ])
        .await;
    wrong.assert_oauth_error(400, "invalid_client");
    assert_eq!(
        wrong.json()["error_description"],
        "invalid client credentials"
    );

    h.token(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", rt),
        ("client_id", &c.id),
    ])
    .await
    .assert_oauth_error(400, "invalid_client");
    h.token(&[("grant_type", "refresh_token"), ("refresh_token", rt)])
        .await
        .assert_oauth_error(400, "invalid_client_id");

    let post_basic = |auth: String, body: String| {
        Request::post("/services/oauth2/token")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::AUTHORIZATION, auth)
            .body(Body::from(body))
            .unwrap()
    };
    let refresh_body = form(&[("grant_type", "refresh_token"), ("refresh_token", rt)]);
    let basic_wrong = h
        .send(post_basic(basic(&c.id, "wrong"), refresh_body.clone()))
        .await;
    basic_wrong.assert_oauth_error(401, "invalid_client");
    assert!(basic_wrong
        .header("www-authenticate")
        .unwrap()
        .starts_with("Basic"));
    for malformed in [
        "Basic",
        "Basic !!!notbase64",
        "Basic Og==",
        &format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("%%%%:x")
        ),
    ] {
        h.send(post_basic(malformed.to_owned(), refresh_body.clone()))
            .await
            .assert_oauth_error(401, "invalid_client");
    }
    // Basic and a body secret: two methods. Basic id ≠ body client_id: ambiguous.
    let both = form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", rt),
        ("client_secret", &secret),
    ]);
    h.send(post_basic(basic(&c.id, &secret), both))
        .await
        .assert_oauth_error(400, "invalid_request");
    let other_id = form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", rt),
        ("client_id", "3MVG9other"),
    ]);
    h.send(post_basic(basic(&c.id, &secret), other_id))
        .await
        .assert_oauth_error(400, "invalid_request");
    // A secret in the URL is refused, never used.
    let uri = format!("/services/oauth2/token?client_secret={secret}");
    h.post_form(
        &uri,
        &form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", &c.id),
        ]),
        None,
    )
    .await
    .assert_oauth_error(400, "invalid_request");
}

#[tokio::test]
async fn public_clients_refresh_without_a_secret_but_a_sent_secret_is_checked() {
    let h = Harness::new().await;
    let c = h.client(true, ClientSettings::default()).await;
    let (verifier, challenge) = pkce(&"v".repeat(64));
    let code = h
        .code(&c, &[("scope", SCOPE), ("code_challenge", &challenge)])
        .await;
    let reply = h.exchange(&c, &code, Some(&verifier)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let rt = reply.json()["refresh_token"].as_str().unwrap().to_owned();
    h.token(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &rt),
        ("client_id", &c.id),
        ("client_secret", "guess"),
    ])
    .await
    .assert_oauth_error(400, "invalid_client");
    let ok = h.refresh(&c, &rt).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    // Public clients always rotate.
    assert!(ok.json()["refresh_token"].is_string());
}

#[tokio::test]
async fn bad_refresh_tokens_are_expired_access_refresh_token() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let first = h.login(&c, SCOPE).await;
    let rt = first["refresh_token"].as_str().unwrap();
    let access = first["access_token"].as_str().unwrap();
    let nul = format!("{}\0x", &rt[..10]);
    let long = "a".repeat(20_000);
    for bad in [
        "garbage-token",
        access,
        &rt[..rt.len() - 1],
        &nul,
        "' OR '1'='1",
        "{\"$ne\":null}",
        long.as_str(),
    ] {
        let reply = h.refresh(&c, bad).await;
        reply.assert_oauth_error(400, "invalid_grant");
        assert_eq!(
            reply.json()["error_description"],
            "expired access/refresh token"
        );
    }
    h.token(&[
        ("grant_type", "refresh_token"),
        ("client_id", &c.id),
        ("client_secret", c.secret.as_ref().unwrap()),
    ])
    .await
    .assert_oauth_error(400, "invalid_request");
    // None of this harmed the real token.
    assert_eq!(h.refresh(&c, rt).await.status, StatusCode::OK);
}

#[tokio::test]
async fn another_clients_refresh_token_is_refused_and_left_alone() {
    let h = Harness::new().await;
    let a = h.confidential().await;
    let b = h.confidential().await;
    let first = h.login(&a, SCOPE).await;
    let rt = first["refresh_token"].as_str().unwrap();
    h.refresh(&b, rt)
        .await
        .assert_oauth_error(400, "invalid_grant");
    assert_eq!(h.refresh(&a, rt).await.status, StatusCode::OK);
}

#[tokio::test]
async fn scope_can_narrow_on_refresh_but_never_widen() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let first = h.login(&c, SCOPE).await;
    let rt = first["refresh_token"].as_str().unwrap();
    let secret = c.secret.as_ref().unwrap();
    let narrowed = h
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", &c.id),
            ("client_secret", secret),
            ("scope", "id"),
        ])
        .await;
    assert_eq!(narrowed.status, StatusCode::OK, "{}", narrowed.text());
    assert_eq!(narrowed.json()["scope"], "id");
    // The narrowed access token cannot call the API.
    let api = h
        .api(
            Method::GET,
            "/services/data/v65.0/",
            narrowed.json()["access_token"].as_str().unwrap(),
            None,
        )
        .await;
    assert_eq!(api.status, StatusCode::FORBIDDEN);
    for wide in ["api web", "full", "api \"x\"", " "] {
        let reply = h
            .token(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt),
                ("client_id", &c.id),
                ("client_secret", secret),
                ("scope", wide),
            ])
            .await;
        // A space-only scope is malformed, not "no scope" (docs/security.md, "Scope on refresh").
        reply.assert_oauth_error(400, "invalid_scope");
    }
    // The refresh token keeps the original scope.
    assert_eq!(
        h.refresh(&c, rt).await.json()["scope"],
        "api id refresh_token"
    );
}

#[tokio::test]
async fn no_refresh_token_without_the_refresh_scope() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let body = h.login(&c, "api id").await;
    assert!(body.get("refresh_token").is_none());
    assert!(body["access_token"].is_string());
}

#[tokio::test]
async fn disabling_a_user_revokes_their_tokens() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let first = h.login(&c, SCOPE).await;
    let access = first["access_token"].as_str().unwrap();
    assert!(h.api_works(access).await);
    let userinfo = |token: &str| {
        let token = token.to_owned();
        let h = &h;
        async move {
            h.api(Method::GET, "/services/oauth2/userinfo", &token, None)
                .await
                .status
        }
    };
    assert_eq!(userinfo(access).await, StatusCode::OK);
    h.authority
        .operator()
        .set_user_disabled(USERNAME, true)
        .await
        .unwrap();
    h.refresh(&c, first["refresh_token"].as_str().unwrap())
        .await
        .assert_oauth_error(400, "invalid_grant");
    // At the next request, in this process, with no store read on the API's path: the
    // revocation reached the in-process guard with the disable.
    assert!(!h.api_works(access).await);
    // (userinfo answers an invalid token 403, as Salesforce's does.)
    assert_eq!(userinfo(access).await, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_disabled_user_is_inactive_even_where_a_grant_survived() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let first = h.login(&c, SCOPE).await;
    // Disable directly in the store, as another node or an older version might have.
    let mut user = h.authority.operator().user(USERNAME).await.unwrap();
    user.disabled = true;
    h.store
        .update_user(
            &user,
            tessera_core::store::BrowserSessions::Keep,
            h.clock.now(),
        )
        .await
        .unwrap();
    // The change reaches this server through the change feed, as another node's would.
    h.authority.catch_up().await.unwrap();
    let reply = h
        .refresh(&c, first["refresh_token"].as_str().unwrap())
        .await;
    reply.assert_oauth_error(400, "inactive_user");
    assert_eq!(reply.json()["error_description"], "user is inactive");
}

async fn client_with_policy(h: &Harness, policy: &str) -> Client {
    let policy: RefreshTokenPolicy = policy.parse().unwrap();
    h.client(
        false,
        ClientSettings {
            refresh_token_policy: Some(policy),
            ..Default::default()
        },
    )
    .await
}

#[tokio::test]
async fn zero_policy_refuses_refresh_while_the_access_token_keeps_working() {
    let h = Harness::new().await;
    let c = client_with_policy(&h, "zero").await;
    let first = h.login(&c, SCOPE).await;
    h.refresh(&c, first["refresh_token"].as_str().unwrap())
        .await
        .assert_oauth_error(400, "invalid_grant");
    assert!(h.api_works(first["access_token"].as_str().unwrap()).await);
}

#[tokio::test]
async fn lifetime_policy_counts_from_the_grant() {
    let h = Harness::new().await;
    let c = client_with_policy(&h, "specific_lifetime:1:HOURS").await;
    let first = h.login(&c, SCOPE).await;
    let rt = first["refresh_token"].as_str().unwrap();
    h.clock.advance_secs(3000);
    assert_eq!(h.refresh(&c, rt).await.status, StatusCode::OK);
    h.clock.advance_secs(599);
    assert_eq!(h.refresh(&c, rt).await.status, StatusCode::OK);
    h.clock.advance_secs(1);
    let reply = h.refresh(&c, rt).await;
    reply.assert_oauth_error(400, "invalid_grant");
    assert_eq!(
        reply.json()["error_description"],
        "expired access/refresh token"
    );
}

#[tokio::test]
async fn inactivity_policy_slides_with_each_use() {
    let h = Harness::new().await;
    let c = client_with_policy(&h, "specific_inactivity:1:HOURS").await;
    let first = h.login(&c, SCOPE).await;
    let rt = first["refresh_token"].as_str().unwrap();
    for _ in 0..3 {
        h.clock.advance_secs(3599);
        assert_eq!(h.refresh(&c, rt).await.status, StatusCode::OK);
    }
    h.clock.advance_secs(3600);
    h.refresh(&c, rt)
        .await
        .assert_oauth_error(400, "invalid_grant");
}

#[tokio::test]
async fn rotation_issues_a_new_refresh_token_and_reuse_revokes_the_family() {
    let h = Harness::new().await;
    let c = h
        .client(
            false,
            ClientSettings {
                rotate_refresh_tokens: Some(true),
                ..Default::default()
            },
        )
        .await;
    let first = h.login(&c, SCOPE).await;
    let rt1 = first["refresh_token"].as_str().unwrap();
    let second = h.refresh(&c, rt1).await.json();
    let rt2 = second["refresh_token"].as_str().unwrap();
    assert_ne!(rt1, rt2);
    let third = h.refresh(&c, rt2).await.json();
    let rt3 = third["refresh_token"].as_str().unwrap();
    // Replaying rt1 is reuse: refused, and the whole family dies.
    h.refresh(&c, rt1)
        .await
        .assert_oauth_error(400, "invalid_grant");
    h.refresh(&c, rt3)
        .await
        .assert_oauth_error(400, "invalid_grant");
    assert!(!h.api_works(third["access_token"].as_str().unwrap()).await);
}

#[tokio::test]
async fn code_is_single_use_and_reuse_revokes_what_it_issued() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let code = h.code(&c, &[("scope", SCOPE)]).await;
    let first = h.exchange(&c, &code, None).await;
    assert_eq!(first.status, StatusCode::OK);
    let second = h.exchange(&c, &code, None).await;
    second.assert_oauth_error(400, "invalid_grant");
    assert_eq!(
        second.json()["error_description"],
        "expired authorization code"
    );
    let body = first.json();
    assert!(!h.api_works(body["access_token"].as_str().unwrap()).await);
    h.refresh(&c, body["refresh_token"].as_str().unwrap())
        .await
        .assert_oauth_error(400, "invalid_grant");
}

#[tokio::test]
async fn code_exchange_errors() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let other = h.confidential().await;
    let secret = c.secret.clone().unwrap();

    // Expired after 15 minutes.
    let code = h.code(&c, &[("scope", SCOPE)]).await;
    h.clock.advance_secs(15 * 60);
    h.exchange(&c, &code, None)
        .await
        .assert_oauth_error(400, "invalid_grant");

    // Another client's code.
    let code = h.code(&c, &[("scope", SCOPE)]).await;
    h.exchange(&other, &code, None)
        .await
        .assert_oauth_error(400, "invalid_grant");

    // redirect_uri missing or different.
    for redirect in [None, Some("http://127.0.0.1:8976/other")] {
        let code = h.code(&c, &[("scope", SCOPE)]).await;
        let mut pairs = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", c.id.as_str()),
            ("client_secret", secret.as_str()),
        ];
        if let Some(r) = redirect {
            pairs.push(("redirect_uri", r));
        }
        h.token(&pairs)
            .await
            .assert_oauth_error(400, "invalid_grant");
    }

    // Unknown code, missing code.
    h.exchange(&c, "nope", None)
        .await
        .assert_oauth_error(400, "invalid_grant");
    h.token(&[
        ("grant_type", "authorization_code"),
        ("client_id", &c.id),
        ("client_secret", &secret),
        ("redirect_uri", REDIRECT),
    ])
    .await
    .assert_oauth_error(400, "invalid_request");
}

#[tokio::test]
async fn pkce_is_enforced_and_long_verifiers_are_accepted() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    // jsforce sends a 171-character verifier and no code_challenge_method.
    let (verifier, challenge) = pkce(&"A".repeat(171));
    let with_challenge = [("scope", SCOPE), ("code_challenge", challenge.as_str())];

    let code = h.code(&c, &with_challenge).await;
    assert_eq!(
        h.exchange(&c, &code, Some(&verifier)).await.status,
        StatusCode::OK
    );

    for wrong in [
        None,
        Some("B".repeat(171)),
        Some("short".to_owned()),
        Some(format!("{verifier}!")),
    ] {
        let code = h.code(&c, &with_challenge).await;
        h.exchange(&c, &code, wrong.as_deref())
            .await
            .assert_oauth_error(400, "invalid_grant");
    }

    // Downgrade: a verifier for a code that had no challenge.
    let code = h.code(&c, &[("scope", SCOPE)]).await;
    h.exchange(&c, &code, Some(&verifier))
        .await
        .assert_oauth_error(400, "invalid_grant");
}

#[tokio::test]
async fn the_database_holds_no_token_in_clear() {
    let h = Harness::new().await;
    let c = h
        .client(
            false,
            ClientSettings {
                rotate_refresh_tokens: Some(true),
                ..Default::default()
            },
        )
        .await;
    let code = h.code(&c, &[("scope", SCOPE)]).await;
    let first = h.exchange(&c, &code, None).await.json();
    let second = h
        .refresh(&c, first["refresh_token"].as_str().unwrap())
        .await
        .json();
    let db_path = h.db_path.clone().expect("a harness on SQLite");
    let mut bytes = std::fs::read(&db_path).unwrap();
    for suffix in ["-wal", "-shm"] {
        let mut p = db_path.clone().into_os_string();
        p.push(suffix);
        bytes.extend(std::fs::read(p).unwrap_or_default());
    }
    let haystack = String::from_utf8_lossy(&bytes);
    for secret in [
        code.as_str(),
        first["access_token"].as_str().unwrap(),
        first["refresh_token"].as_str().unwrap(),
        second["access_token"].as_str().unwrap(),
        second["refresh_token"].as_str().unwrap(),
        c.secret.as_ref().unwrap(),
        PASSWORD,
    ] {
        let random_part = secret.rsplit('!').next().unwrap();
        assert!(
            !haystack.contains(random_part),
            "found a secret in the database file"
        );
    }
}
