//! The `/learn` playground through HTTP: off it is not there; on, each step is the real request
//! recorded with its secrets shortened, the server's view follows the family, one learner never
//! sees another's tokens, and a step without the learner's CSRF token changes nothing.

use axum::http::StatusCode;
use tessera_core::operations::admin::ClientSettings;
use tessera_proto::ExposeSecret;

use crate::support::{form, hidden_value, Browser, Harness, Reply, LOOPBACK_ISSUER};

/// A learner's browser on the playground page, with the page's CSRF token.
struct Learner {
    browser: Browser,
    csrf: String,
}

async fn open_page(h: &Harness) -> Learner {
    let mut browser = Browser::default();
    let page = h.get("/learn", Some(&mut browser)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(
        browser.cookie("tessera_learn").is_some(),
        "the page sets the learner cookie"
    );
    let csrf = hidden_value(&page.text(), "csrf_token").unwrap();
    Learner { browser, csrf }
}

async fn step(h: &Harness, learner: &mut Learner, pairs: &[(&str, &str)]) -> Reply {
    let mut all = vec![("csrf_token", learner.csrf.as_str())];
    all.extend_from_slice(pairs);
    h.post_form("/learn/step", &form(&all), Some(&mut learner.browser))
        .await
}

async fn page(h: &Harness, learner: &mut Learner) -> String {
    let reply = h.get("/learn", Some(&mut learner.browser)).await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.text()
}

/// Follows a step that sends the browser to the authorization endpoint: the login (first time)
/// and the consent, then back to the callback and on to the page.
async fn through_login(h: &Harness, learner: &mut Learner, to_authorize: &Reply) {
    assert_eq!(to_authorize.status, StatusCode::SEE_OTHER);
    let location = to_authorize.location();
    assert!(
        location.starts_with("/services/oauth2/authorize?"),
        "{location}"
    );
    let browser = &mut learner.browser;
    let back = h.allow_in(browser, &location).await;
    let path = back
        .strip_prefix(LOOPBACK_ISSUER)
        .unwrap_or_else(|| panic!("back to the playground's callback: {back}"));
    assert!(path.starts_with("/learn/callback?"), "{path}");
    let callback = h.get(path, Some(browser)).await;
    assert_eq!(callback.status, StatusCode::SEE_OTHER);
    assert_eq!(callback.location(), "/learn");
}

/// Authorizes with the refresh scope, PKCE and the `options` checked, and exchanges the code.
async fn authorized_with(h: &Harness, learner: &mut Learner, options: &[&str]) {
    let mut pairs = vec![
        ("step", "authorize"),
        ("refresh_scope", "true"),
        ("pkce", "true"),
    ];
    pairs.extend(options.iter().map(|option| (*option, "true")));
    let to_authorize = step(h, learner, &pairs).await;
    through_login(h, learner, &to_authorize).await;
    let exchanged = step(h, learner, &[("step", "exchange")]).await;
    assert_eq!(exchanged.status, StatusCode::SEE_OTHER);
}

/// Authorizes with the refresh scope (and PKCE) and exchanges the code.
async fn authorized(h: &Harness, learner: &mut Learner) {
    authorized_with(h, learner, &[]).await;
}

/// The value of the first `name="…"` attribute in the page.
fn attribute(html: &str, name: &str) -> Option<String> {
    let marker = format!("{name}=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

/// The state the server's view gives generation `n`.
fn generation_state(html: &str, n: usize) -> Option<String> {
    attribute(html, &format!("data-generation=\"{n}\" data-state"))
}

#[tokio::test]
async fn the_playground_is_not_found_when_it_is_off() {
    let h = Harness::new().await;
    for path in [
        "/learn",
        "/learn/callback?code=x&state=y",
        "/learn/learn.js",
    ] {
        assert_eq!(
            h.get(path, None).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    let post = h.post_form("/learn/step", "step=refresh", None).await;
    assert_eq!(post.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_page_allows_its_own_script_and_no_inline_one() {
    let h = Harness::learning().await;
    let page = h.get("/learn", None).await;
    let policy = page.header("content-security-policy").unwrap().to_owned();
    let script_src: Vec<&str> = policy
        .split(';')
        .map(str::trim)
        .filter(|d| d.starts_with("script-src"))
        .collect();
    assert_eq!(script_src, ["script-src 'self'"], "{policy}");
    assert!(page.text().contains("<script src=\"/learn/learn.js\""));
    let cookie = page.header("set-cookie").unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let script = h.get("/learn/learn.js", None).await;
    assert_eq!(script.status, StatusCode::OK);
    assert!(script
        .header("content-type")
        .unwrap()
        .starts_with("text/javascript"));
}

#[tokio::test]
async fn a_step_shows_its_request_and_response_with_secrets_shortened() {
    let (h, clients) = Harness::learning_with_clients().await;
    let mut learner = open_page(&h).await;
    authorized(&h, &mut learner).await;
    let html = page(&h, &mut learner).await;
    assert!(html.contains("data-step=\"exchange\""), "{html}");
    assert!(html.contains("POST /services/oauth2/token"));
    assert!(html.contains("grant_type=authorization_code"));
    assert!(
        html.contains("code_verifier=…"),
        "PKCE's verifier, shortened"
    );
    assert!(html.contains("client_secret=…"));
    assert!(html.contains("HTTP/1.1 200 OK"));
    assert!(
        html.contains("&quot;refresh_token&quot;: &quot;…"),
        "{html}"
    );
    // The client's secret is cut to its last characters, as the tokens are.
    let secret = clients.main.secret.expose_secret();
    assert!(!html.contains(secret));
    assert!(html.contains(&format!("client_secret=…{}", &secret[secret.len() - 6..])));
    assert_eq!(generation_state(&html, 1).as_deref(), Some("current"));
    assert!(html.contains("data-family=\"live\""));
}

#[tokio::test]
async fn the_servers_view_follows_a_rotation_a_replay_inside_the_window_and_one_after_it() {
    let h = Harness::learning().await;
    let mut learner = open_page(&h).await;
    authorized(&h, &mut learner).await;

    step(&h, &mut learner, &[("step", "refresh")]).await;
    let html = page(&h, &mut learner).await;
    assert_eq!(generation_state(&html, 2).as_deref(), Some("current"));
    assert_eq!(generation_state(&html, 1).as_deref(), Some("retry-window"));
    assert!(html.contains("data-window=\"open\""), "{html}");

    step(&h, &mut learner, &[("step", "replay")]).await;
    let html = page(&h, &mut learner).await;
    assert!(html.contains("the same pair as the refresh"), "{html}");
    assert!(html.contains("data-family=\"live\""));

    h.clock.advance_secs(11);
    step(&h, &mut learner, &[("step", "replay")]).await;
    let html = page(&h, &mut learner).await;
    assert!(html.contains("HTTP/1.1 400 Bad Request"), "{html}");
    assert!(html.contains("data-family=\"revoked\""), "{html}");
    assert_eq!(generation_state(&html, 2).as_deref(), Some("revoked"));
    assert!(
        html.contains("data-kind=\"reuse_detected\""),
        "the timeline shows the reuse"
    );
}

#[tokio::test]
async fn with_dpop_every_request_proves_the_clients_key_and_the_server_binds_its_tokens_to_it() {
    let h = Harness::learning().await;
    let mut learner = open_page(&h).await;
    authorized_with(&h, &mut learner, &["dpop"]).await;
    let html = page(&h, &mut learner).await;
    let jkt = attribute(&html, "data-client-key").expect("the client holds a key");
    assert_eq!(jkt.len(), 43, "a SHA-256 thumbprint, base64url: {jkt}");
    assert!(html.contains(&format!("dpop_jkt={jkt}")), "{html}");
    assert!(html.contains("HTTP/1.1 200 OK"), "{html}");
    assert!(
        html.contains("&quot;token_type&quot;: &quot;DPoP&quot;"),
        "{html}"
    );
    let shown_key = &jkt[jkt.len() - 6..];
    assert!(
        html.contains("DPoP: eyJ") && html.contains(&format!("(proof for key …{shown_key})")),
        "the proof is shown, shortened: {html}"
    );
    // A confidential client's refresh tokens are bound by its authentication, not by the key.
    assert!(
        html.contains("Its refresh token is not bound"),
        "the page says why"
    );
    assert_eq!(
        attribute(&html, "data-binding=\"grant\" data-jkt").as_deref(),
        Some("")
    );

    step(&h, &mut learner, &[("step", "refresh")]).await;
    let html = page(&h, &mut learner).await;
    assert_eq!(
        generation_state(&html, 2).as_deref(),
        Some("current"),
        "{html}"
    );
    assert_eq!(
        attribute(&html, "data-binding=\"rotation\" data-jkt").as_deref(),
        Some(jkt.as_str()),
        "the refresh bound its access token to the client's key"
    );

    step(&h, &mut learner, &[("step", "api")]).await;
    let html = page(&h, &mut learner).await;
    assert!(html.contains("the access token is good"), "{html}");
    assert!(html.contains("Authorization: DPoP …"), "{html}");
}

#[tokio::test]
async fn the_access_token_expires_and_the_api_says_401() {
    let h = Harness::learning().await;
    let mut learner = open_page(&h).await;
    authorized(&h, &mut learner).await;
    step(&h, &mut learner, &[("step", "api")]).await;
    assert!(page(&h, &mut learner)
        .await
        .contains("the access token is good"));
    h.clock.advance_secs(21);
    step(&h, &mut learner, &[("step", "expire")]).await;
    let html = page(&h, &mut learner).await;
    assert!(html.contains("HTTP/1.1 401 Unauthorized"), "{html}");
    assert!(html.contains("Authorization: Bearer …"));
}

#[tokio::test]
async fn another_learner_sees_none_of_the_first_ones_tokens() {
    let h = Harness::learning().await;
    let mut first = open_page(&h).await;
    authorized(&h, &mut first).await;
    let mut second = open_page(&h).await;
    let html = page(&h, &mut second).await;
    assert!(html.contains("No token family yet"), "{html}");
    assert!(!html.contains("data-step=\"exchange\""));
    // The first learner's CSRF token does nothing with the second learner's cookie.
    let mut forged = Learner {
        browser: second.browser.clone(),
        csrf: first.csrf.clone(),
    };
    let refused = step(&h, &mut forged, &[("step", "refresh")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_step_without_the_learners_csrf_token_is_refused() {
    let h = Harness::learning().await;
    let mut learner = open_page(&h).await;
    authorized(&h, &mut learner).await;
    let missing = h
        .post_form("/learn/step", "step=revoke", Some(&mut learner.browser))
        .await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    let wrong = h
        .post_form(
            "/learn/step",
            "step=revoke&csrf_token=0000",
            Some(&mut learner.browser),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let no_cookie = h
        .post_form(
            "/learn/step",
            &form(&[("step", "revoke"), ("csrf_token", &learner.csrf)]),
            None,
        )
        .await;
    assert_eq!(no_cookie.status, StatusCode::FORBIDDEN);
    let html = page(&h, &mut learner).await;
    assert!(
        !html.contains("data-step=\"revoke\""),
        "nothing was revoked"
    );
    assert!(html.contains("data-family=\"live\""));
}

#[tokio::test]
async fn a_callback_with_another_state_is_refused_and_the_real_one_still_works() {
    let h = Harness::learning().await;
    let mut learner = open_page(&h).await;
    let to_authorize = step(
        &h,
        &mut learner,
        &[("step", "authorize"), ("refresh_scope", "true")],
    )
    .await;
    let reply = h
        .get(
            "/learn/callback?code=planted&state=forged",
            Some(&mut learner.browser),
        )
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    let html = page(&h, &mut learner).await;
    assert!(html.contains("data-step=\"callback-refused\""), "{html}");
    assert!(
        html.contains("Code</th><td>—"),
        "the planted code is not kept"
    );
    // The authorization under way is still this learner's.
    through_login(&h, &mut learner, &to_authorize).await;
    let exchanged = step(&h, &mut learner, &[("step", "exchange")]).await;
    assert_eq!(exchanged.status, StatusCode::SEE_OTHER);
    let html = page(&h, &mut learner).await;
    assert_eq!(generation_state(&html, 1).as_deref(), Some("current"));
}

#[tokio::test]
async fn the_mistakes_each_show_their_result_and_explanation() {
    let (h, clients) = Harness::learning_with_clients().await;
    // The expiring client's refresh tokens live a second: the step waits that long.
    h.authority
        .operator()
        .update_client(
            &clients.expiring.client_id,
            &ClientSettings {
                refresh_token_policy: Some("specific_lifetime:1:SECONDS".parse().unwrap()),
                ..ClientSettings::default()
            },
        )
        .await
        .unwrap();
    let mut learner = open_page(&h).await;

    // 1. No refresh scope: the exchange answers no refresh token.
    let to_authorize = step(&h, &mut learner, &[("step", "mistake-scope")]).await;
    through_login(&h, &mut learner, &to_authorize).await;
    let html = page(&h, &mut learner).await;
    assert!(html.contains("and no refresh token"), "{html}");
    assert!(html.contains("send the user through the login again"));
    assert!(!html.contains("&quot;refresh_token&quot;"));

    // 4. Not keeping the rotated token: after the window, the first token revokes the family.
    authorized(&h, &mut learner).await;
    step(&h, &mut learner, &[("step", "refresh")]).await;
    h.clock.advance_secs(11);
    step(&h, &mut learner, &[("step", "mistake-keep")]).await;
    let html = page(&h, &mut learner).await;
    assert!(html.contains("data-step=\"mistake-keep\""));
    assert!(html.contains("data-family=\"revoked\""), "{html}");
    assert!(html.contains("revokes the whole") || html.contains("revoked the family"));

    // 3. Insecure storage: the plain file holds the token, the sealed one ciphertext.
    step(&h, &mut learner, &[("step", "mistake-storage")]).await;
    let html = page(&h, &mut learner).await;
    assert!(html.contains("tokens.json, a plain file"));
    assert!(html.contains("xchacha20poly1305"));

    // 2. An expired refresh token: the expiring client's refresh after its lifetime.
    let to_authorize = step(&h, &mut learner, &[("step", "mistake-expired")]).await;
    // The playground waits on the server's clock; the manual clock is moved on meanwhile.
    let clock = h.clock.clone();
    let mover = tokio::spawn(async move {
        for _ in 0..40 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            clock.advance_secs(1);
        }
    });
    through_login(&h, &mut learner, &to_authorize).await;
    mover.abort();
    let html = page(&h, &mut learner).await;
    assert!(html.contains("invalid_grant"), "{html}");
    assert!(html.contains("specific_lifetime"));
}
