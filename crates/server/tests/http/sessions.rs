//! Browser sessions that end (docs/security.md, "Browser sessions"): a password change, a
//! disable, a role change, `admin user logout` and the end user's logout end every session
//! cookie of the user, a captured copy included; the CSRF token of a session's form is bound
//! to that session; a security cookie sent twice is refused; `__Host-` names under https.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use tessera_core::model::User;

use crate::support::*;

/// A browser that logged in and approved the client once: its session cookie alone now gets a
/// code, without a prompt (consent is remembered).
async fn remembered_browser(h: &Harness, client: &Client) -> Browser {
    let mut browser = Browser::default();
    h.authorize_in(&mut browser, client, &[]).await;
    assert!(gets_a_code(h, &mut browser.clone(), client).await);
    browser
}

/// Whether the browser's session gets a code at once (`true`), or the login page (`false`).
async fn gets_a_code(h: &Harness, browser: &mut Browser, client: &Client) -> bool {
    let reply = h.get(&h.authorize_url(client, &[]), Some(browser)).await;
    match reply.status {
        StatusCode::FOUND => {
            assert!(url_param(&reply.location(), "code").is_some());
            true
        }
        StatusCode::OK => {
            assert!(
                reply.text().contains("name=\"password\""),
                "{}",
                reply.text()
            );
            false
        }
        other => panic!("unexpected {other}: {}", reply.text()),
    }
}

async fn alice(h: &Harness) -> User {
    h.authority.operator().user(USERNAME).await.unwrap()
}

#[tokio::test]
async fn a_session_cookie_from_before_a_password_change_gets_the_login_page_not_a_code() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let browser = remembered_browser(&h, &c).await;
    h.authority
        .operator()
        .set_user_password(
            USERNAME,
            tessera_proto::Password::new("a new password"),
            false,
        )
        .await
        .unwrap();
    assert!(!gets_a_code(&h, &mut browser.clone(), &c).await);
}

#[tokio::test]
async fn a_password_change_that_keeps_the_tokens_still_ends_the_browser_sessions() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let browser = remembered_browser(&h, &c).await;
    h.authority
        .operator()
        .set_user_password(
            USERNAME,
            tessera_proto::Password::new("a new password"),
            true,
        )
        .await
        .unwrap();
    assert!(!gets_a_code(&h, &mut browser.clone(), &c).await);
}

#[tokio::test]
async fn a_session_cookie_from_before_a_disable_stays_dead_after_the_user_is_enabled_again() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let browser = remembered_browser(&h, &c).await;
    let operator = h.authority.operator();
    operator.set_user_disabled(USERNAME, true).await.unwrap();
    assert!(!gets_a_code(&h, &mut browser.clone(), &c).await);
    operator.set_user_disabled(USERNAME, false).await.unwrap();
    assert!(!gets_a_code(&h, &mut browser.clone(), &c).await);
}

#[tokio::test]
async fn a_session_cookie_from_before_a_role_change_gets_the_login_page() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let browser = remembered_browser(&h, &c).await;
    h.authority
        .operator()
        .set_user_admin(USERNAME, true)
        .await
        .unwrap();
    assert!(!gets_a_code(&h, &mut browser.clone(), &c).await);
}

#[tokio::test]
async fn admin_user_logout_ends_every_session_of_the_user_and_only_theirs() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let browser = remembered_browser(&h, &c).await;
    let before = alice(&h).await.session_epoch;
    let user = h
        .authority
        .operator()
        .end_user_sessions(USERNAME)
        .await
        .unwrap();
    assert_eq!(user.session_epoch, before + 1);
    assert!(!gets_a_code(&h, &mut browser.clone(), &c).await);
    // Logging in again makes a session of the new epoch, which works.
    let fresh = remembered_browser(&h, &c).await;
    assert!(gets_a_code(&h, &mut fresh.clone(), &c).await);
}

#[tokio::test]
async fn the_end_user_logout_ends_a_captured_copy_of_the_cookie_too() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let mut browser = remembered_browser(&h, &c).await;
    let captured = browser.clone();
    let page = h.get("/secur/logout.jsp", Some(&mut browser)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("action=\"/secur/logout.jsp\""));
    // The GET changed nothing: the session still works.
    assert!(gets_a_code(&h, &mut browser.clone(), &c).await);
    let token = hidden_value(&page.text(), "csrf_token").unwrap();
    let reply = h
        .post_form(
            "/secur/logout.jsp",
            &form(&[("csrf_token", &token)]),
            Some(&mut browser),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(reply.text().contains("You are logged out"));
    let cleared = reply.header("set-cookie").unwrap();
    assert!(cleared.starts_with("tessera_sid=;"), "{cleared}");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert!(!gets_a_code(&h, &mut captured.clone(), &c).await);
    assert!(!gets_a_code(&h, &mut browser, &c).await);
}

#[tokio::test]
async fn a_logout_post_without_the_sessions_csrf_token_changes_nothing() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let mut browser = remembered_browser(&h, &c).await;
    // A token of the login form (over the CSRF cookie) is no token of the session.
    let login = h
        .get(
            &h.authorize_url(&c, &[("prompt", "login")]),
            Some(&mut browser),
        )
        .await;
    let login_token = hidden_value(&login.text(), "csrf_token").unwrap();
    for token in [None, Some("00"), Some(login_token.as_str())] {
        let pairs: Vec<(&str, &str)> = token.map(|t| ("csrf_token", t)).into_iter().collect();
        let reply = h
            .post_form(
                "/secur/logout.jsp",
                &form(&pairs),
                Some(&mut browser.clone()),
            )
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{token:?}");
    }
    assert!(gets_a_code(&h, &mut browser, &c).await);
}

#[tokio::test]
async fn a_consent_post_with_a_csrf_pair_minted_for_another_browser_is_refused() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    // The victim is logged in, at the consent page of a new scope.
    let mut victim = Browser::default();
    h.authorize_in(&mut victim, &c, &[("scope", "id")]).await;
    let consent_url = format!(
        "/services/oauth2/authorize/consent?{}",
        h.authorize_url(&c, &[("scope", "api")])
            .split_once('?')
            .unwrap()
            .1
    );
    let real = h.get(&consent_url, Some(&mut victim)).await;
    let request = hidden_value(&real.text(), "request").unwrap();
    // The attacker's own browser has a CSRF cookie and the token made for it; they plant the
    // cookie in the victim's browser and post the token.
    let mut attacker = Browser::default();
    let page = h.get(&h.authorize_url(&c, &[]), Some(&mut attacker)).await;
    let planted_token = hidden_value(&page.text(), "csrf_token").unwrap();
    victim.set_cookie("tessera_csrf", attacker.cookie("tessera_csrf").unwrap());
    let reply = h
        .post_form(
            "/services/oauth2/authorize/consent",
            &form(&[
                ("request", &request),
                ("csrf_token", &planted_token),
                ("decision", "allow"),
            ]),
            Some(&mut victim),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text());
    // The page's own token, bound to the session, is accepted.
    let accepted = h.submit_consent(&mut victim, &real, "allow").await;
    assert_eq!(accepted.status, StatusCode::FOUND, "{}", accepted.text());
}

/// A GET of `uri` with `cookie` as the whole `Cookie` header.
async fn get_with_cookies(h: &Harness, uri: &str, cookie: &str) -> Reply {
    h.send(
        Request::builder()
            .method(Method::GET)
            .uri(uri)
            .header(header::COOKIE, cookie)
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn a_security_cookie_sent_twice_is_refused() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let browser = remembered_browser(&h, &c).await;
    let session = browser.cookie("tessera_sid").unwrap().to_owned();
    // Once, it works (in either of two headers).
    let once = get_with_cookies(
        &h,
        &h.authorize_url(&c, &[]),
        &format!("tessera_sid={session}"),
    )
    .await;
    assert_eq!(once.status, StatusCode::FOUND);
    for (uri, cookie) in [
        (
            h.authorize_url(&c, &[]),
            format!("tessera_sid=planted; tessera_sid={session}"),
        ),
        (
            h.authorize_url(&c, &[]),
            format!("tessera_sid={session}; tessera_sid=planted"),
        ),
        (
            h.authorize_url(&c, &[]),
            "tessera_csrf=aaaa; tessera_csrf=bbbb".to_owned(),
        ),
        (
            "/admin/clients".to_owned(),
            "tessera_admin=a; tessera_admin=b".to_owned(),
        ),
        (
            "/secur/logout.jsp".to_owned(),
            format!("tessera_sid={session}; tessera_sid=x"),
        ),
    ] {
        let reply = get_with_cookies(&h, &uri, &cookie).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{uri} {cookie}");
        assert!(reply.text().contains("more than once"), "{}", reply.text());
    }
    // Split over two `Cookie` headers is the same.
    let request = Request::builder()
        .method(Method::GET)
        .uri(h.authorize_url(&c, &[]))
        .header(header::COOKIE, format!("tessera_sid={session}"))
        .header(header::COOKIE, "tessera_sid=planted")
        .body(Body::empty())
        .unwrap();
    assert_eq!(h.send(request).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn cookies_get_host_prefixed_names_under_an_https_issuer() {
    let h = Harness::with_config(
        |config| config.issuer = "https://login.test".into(),
        tessera_server::TrustedProxies::default(),
    )
    .await;
    let c = h.confidential().await;
    let mut browser = Browser::default();
    let page = h.get(&h.authorize_url(&c, &[]), Some(&mut browser)).await;
    let csrf = page.header("set-cookie").unwrap();
    assert!(csrf.starts_with("__Host-tessera_csrf="), "{csrf}");
    let login = h.submit_login(&mut browser, &page, PASSWORD).await;
    let session = login.header("set-cookie").unwrap();
    assert!(session.starts_with("__Host-tessera_sid="), "{session}");
    for cookie in [csrf, session] {
        for attribute in ["Secure", "Path=/;", "HttpOnly"] {
            assert!(cookie.contains(attribute), "{cookie}");
        }
        assert!(!cookie.contains("Domain"), "{cookie}");
    }
    // The unprefixed names mean nothing here: a sibling subdomain could have set them.
    let value = browser.cookie("__Host-tessera_sid").unwrap().to_owned();
    let plain = get_with_cookies(
        &h,
        &h.authorize_url(&c, &[]),
        &format!("tessera_sid={value}"),
    )
    .await;
    assert_eq!(plain.status, StatusCode::OK);
    assert!(plain.text().contains("name=\"password\""));
}
