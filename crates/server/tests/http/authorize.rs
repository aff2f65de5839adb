//! `/services/oauth2/authorize` with its login and consent pages (docs/security.md, "Redirect
//! URIs", "PKCE", "Sessions and CSRF"; docs/salesforce-compatibility.md, "Authorization
//! endpoint", "User-Agent flow").

use axum::http::StatusCode;
use tessera_core::operations::admin::ClientSettings;

use crate::support::*;

#[tokio::test]
async fn web_server_flow_redirects_with_code_and_state() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let state = "x".repeat(4096);
    let location = h
        .authorize(&c, &[("scope", "api refresh_token"), ("state", &state)])
        .await;
    assert!(
        location.starts_with(&format!("{REDIRECT}?code=")),
        "{location}"
    );
    assert_eq!(
        url_param(&location, "state").as_deref(),
        Some(state.as_str())
    );
}

#[tokio::test]
async fn login_and_consent_pages_are_safe_to_show() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let mut browser = Browser::default();
    let page = h.get(&h.authorize_url(&c, &[]), Some(&mut browser)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert!(page
        .header("content-security-policy")
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert!(page.header("access-control-allow-origin").is_none());
    let after_login = h.submit_login(&mut browser, &page, PASSWORD).await;
    assert_eq!(after_login.status, StatusCode::SEE_OTHER);
    let consent = h.get(&after_login.location(), Some(&mut browser)).await;
    assert_eq!(consent.status, StatusCode::OK);
    assert_eq!(consent.header("x-frame-options"), Some("DENY"));
    assert!(consent.text().contains("Test app"));
}

#[tokio::test]
async fn wrong_password_shows_the_login_page_again() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let mut browser = Browser::default();
    let page = h.get(&h.authorize_url(&c, &[]), Some(&mut browser)).await;
    let reply = h.submit_login(&mut browser, &page, "wrong password").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.text().contains("check your username and password"));
    assert!(reply
        .header("set-cookie")
        .is_none_or(|c| !c.contains("tessera_sid")));
}

#[tokio::test]
async fn forms_without_a_valid_csrf_token_are_forbidden() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let mut browser = Browser::default();
    let page = h.get(&h.authorize_url(&c, &[]), Some(&mut browser)).await;
    let request = hidden_value(&page.text(), "request").unwrap();
    let no_token = form(&[
        ("request", &request),
        ("username", USERNAME),
        ("password", PASSWORD),
    ]);
    assert_eq!(
        h.post_form(
            "/services/oauth2/authorize/login",
            &no_token,
            Some(&mut browser)
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    // The right token without the browser's cookie (a cross-site POST) is refused too.
    let token = hidden_value(&page.text(), "csrf_token").unwrap();
    let stolen = form(&[
        ("request", &request),
        ("csrf_token", &token),
        ("username", USERNAME),
        ("password", PASSWORD),
    ]);
    assert_eq!(
        h.post_form("/services/oauth2/authorize/login", &stolen, None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // Consent likewise.
    let after_login = h.submit_login(&mut browser, &page, PASSWORD).await;
    let consent = h.get(&after_login.location(), Some(&mut browser)).await;
    let body = form(&[
        (
            "request",
            &hidden_value(&consent.text(), "request").unwrap(),
        ),
        ("csrf_token", "00"),
        ("decision", "allow"),
    ]);
    let reply = h
        .post_form(
            "/services/oauth2/authorize/consent",
            &body,
            Some(&mut browser),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(reply.header("location").is_none());
}

#[tokio::test]
async fn denying_consent_redirects_access_denied() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let mut browser = Browser::default();
    let page = h
        .get(&h.authorize_url(&c, &[("state", "st")]), Some(&mut browser))
        .await;
    let after_login = h.submit_login(&mut browser, &page, PASSWORD).await;
    let consent = h.get(&after_login.location(), Some(&mut browser)).await;
    let reply = h.submit_consent(&mut browser, &consent, "deny").await;
    assert_eq!(reply.status, StatusCode::FOUND);
    let location = reply.location();
    assert_eq!(
        url_param(&location, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(url_param(&location, "state").as_deref(), Some("st"));
}

#[tokio::test]
async fn consent_is_remembered_and_prompt_forces_pages_again() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let mut browser = Browser::default();
    h.authorize_in(&mut browser, &c, &[]).await;
    // Logged in, consent given: straight back to the client.
    let again = h.get(&h.authorize_url(&c, &[]), Some(&mut browser)).await;
    assert_eq!(again.status, StatusCode::FOUND);
    assert!(url_param(&again.location(), "code").is_some());
    // prompt=login shows the login page despite the session; prompt=consent the consent page.
    let login = h
        .get(
            &h.authorize_url(&c, &[("prompt", "login")]),
            Some(&mut browser),
        )
        .await;
    assert!(login.text().contains("name=\"password\""));
    let consent = h
        .get(
            &h.authorize_url(&c, &[("prompt", "consent")]),
            Some(&mut browser),
        )
        .await;
    assert!(
        consent.status == StatusCode::SEE_OTHER || consent.text().contains("name=\"decision\"")
    );
}

#[tokio::test]
async fn bad_client_or_redirect_uri_shows_an_error_and_never_redirects() {
    let h = Harness::new().await;
    let c = h
        .client(
            false,
            ClientSettings {
                redirect_uris: Some(vec!["https://c.example/cb".into()]),
                ..Default::default()
            },
        )
        .await;
    let cases = [
        form(&[
            ("response_type", "code"),
            ("redirect_uri", "https://c.example/cb"),
        ]),
        form(&[
            ("response_type", "code"),
            ("client_id", "3MVG9unknown"),
            ("redirect_uri", "https://c.example/cb"),
        ]),
        form(&[("response_type", "code"), ("client_id", &c.id)]),
        form(&[
            ("response_type", "code"),
            ("client_id", &c.id),
            ("client_id", &c.id),
            ("redirect_uri", "https://c.example/cb"),
        ]),
        form(&[
            ("response_type", "code"),
            ("client_id", &c.id),
            ("redirect_uri", "https://c.example/cb"),
            ("redirect_uri", "https://c.example/cb"),
        ]),
    ];
    let variants = [
        "https://c.example/cb/",
        "https://c.example/CB",
        "https://c.example/cb?x=1",
        "https://c.example/cb#f",
        "http://c.example/cb",
        "https://c.example:8443/cb",
        "https://evil.c.example/cb",
        "https://c.example.evil.com/cb",
        "https://c.example@evil.com/cb",
        "https://c.example/cb/../x",
        "https://c.example/%2Fcb",
    ];
    let mismatches: Vec<String> = variants
        .iter()
        .map(|v| {
            form(&[
                ("response_type", "code"),
                ("client_id", &c.id),
                ("redirect_uri", v),
            ])
        })
        .collect();
    for query in cases.iter().chain(mismatches.iter()) {
        let reply = h
            .get(&format!("/services/oauth2/authorize?{query}"), None)
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(reply.header("location").is_none(), "{query}");
        let page = reply.text();
        assert!(page.contains("Error code: <code>"), "{query}: {page}");
        // A sentence that wraps, not the raw URL-encoded pair.
        assert!(!page.contains("error_description="), "{query}: {page}");
        assert!(!page.contains("%20"), "{query}: {page}");
        assert!(page.contains("overflow-wrap:anywhere"));
    }
}

#[tokio::test]
async fn an_unregistered_redirect_uri_is_explained_in_words_and_shown_decoded() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let refused = "https://app.example/oauth/callback?next=/home&tab=<b>";
    let reply = h
        .get(
            &format!(
                "/services/oauth2/authorize?{}",
                form(&[
                    ("response_type", "code"),
                    ("client_id", &c.id),
                    ("redirect_uri", refused),
                ])
            ),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let page = reply.text();
    assert!(page.contains("This request cannot be completed"), "{page}");
    assert!(
        page.contains("asked to send you back to an address it is not allowed to use"),
        "{page}"
    );
    assert!(
        page.contains("redirect_uri must match configuration."),
        "{page}"
    );
    assert!(
        page.contains("https://app.example/oauth/callback?next=/home&amp;tab=&lt;b&gt;"),
        "the refused URI, decoded and escaped: {page}"
    );
    assert!(page.contains("Error code: <code>redirect_uri_mismatch</code>"));
    for encoded in ["error=", "error_description=", "%2F", "+must+"] {
        assert!(!page.contains(encoded), "{encoded}: {page}");
    }
}

#[tokio::test]
async fn the_consent_page_names_each_scope_once() {
    let h = Harness::new().await;
    let scopes = ["api", "id", "refresh_token", "offline_access", "web"];
    let c = h
        .client(
            false,
            ClientSettings {
                scopes: Some(scopes.join(" ")),
                ..Default::default()
            },
        )
        .await;
    let mut browser = Browser::default();
    let page = h
        .get(
            &h.authorize_url(&c, &[("scope", &scopes.join(" "))]),
            Some(&mut browser),
        )
        .await;
    let after_login = h.submit_login(&mut browser, &page, PASSWORD).await;
    let consent = h.get(&after_login.location(), Some(&mut browser)).await;
    let html = consent.text();
    // Each line is a description and, in small print, the scopes it stands for: nothing else.
    let descriptions = [
        "Access and manage your data",
        "Access your basic information",
        "Perform requests at any time, even when you are not logged in",
        "Access the service through the web",
    ];
    let list = html
        .split_once("<ul>")
        .unwrap()
        .1
        .split_once("</ul>")
        .unwrap()
        .0;
    let mut named = Vec::new();
    let mut described = Vec::new();
    for item in list.split("<li>").skip(1) {
        let (description, names) = item
            .strip_suffix("</span></li>")
            .and_then(|i| i.split_once(" <span class=\"scope\">"))
            .unwrap_or_else(|| panic!("not a description and its scopes: {item}"));
        described.push(description);
        named.extend(names.split(", "));
    }
    assert_eq!(described, descriptions, "{list}");
    named.sort_unstable();
    let mut requested = scopes.to_vec();
    requested.sort_unstable();
    assert_eq!(named, requested, "{list}");
}

#[tokio::test]
async fn request_errors_are_redirected_with_state() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let public = h.client(true, ClientSettings::default()).await;
    let redirect_error = |client: &Client, pairs: Vec<(&'static str, &'static str)>| {
        let mut all = vec![
            ("client_id", client.id.clone()),
            ("redirect_uri", REDIRECT.to_owned()),
            ("state", "keep".to_owned()),
        ];
        all.extend(pairs.into_iter().map(|(k, v)| (k, v.to_owned())));
        let refs: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
        format!("/services/oauth2/authorize?{}", form(&refs))
    };
    let cases: Vec<(String, &str)> = vec![
        (redirect_error(&c, vec![]), "invalid_request"),
        (
            redirect_error(&c, vec![("response_type", "id_token")]),
            "unsupported_response_type",
        ),
        (
            redirect_error(
                &c,
                vec![("response_type", "code"), ("scope", "api nonsense")],
            ),
            "invalid_scope",
        ),
        (
            redirect_error(
                &c,
                vec![("response_type", "code"), ("scope", "api"), ("scope", "id")],
            ),
            "invalid_request",
        ),
        (
            redirect_error(
                &c,
                vec![
                    ("response_type", "code"),
                    (
                        "code_challenge",
                        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                    ),
                    ("code_challenge_method", "plain"),
                ],
            ),
            "invalid_request",
        ),
        (
            redirect_error(&public, vec![("response_type", "code")]),
            "invalid_request",
        ),
        (
            redirect_error(&c, vec![("response_type", "token")]),
            "unauthorized_client",
        ),
    ];
    for (url, error) in cases {
        let reply = h.get(&url, None).await;
        assert_eq!(reply.status, StatusCode::FOUND, "{url}: {}", reply.text());
        let location = reply.location();
        assert!(location.starts_with(REDIRECT), "{location}");
        assert_eq!(
            url_param(&location, "error").as_deref(),
            Some(error),
            "{url}"
        );
        assert_eq!(url_param(&location, "state").as_deref(), Some("keep"));
    }
}

#[tokio::test]
async fn unknown_and_empty_parameters_are_ignored() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let location = h
        .authorize(
            &c,
            &[
                ("display", "popup"),
                ("nonce", &"n".repeat(384)),
                ("foo", "bar"),
                ("login_hint", ""),
            ],
        )
        .await;
    assert!(url_param(&location, "code").is_some());
}

/// Where a new client allowed the User-Agent flow is sent back to, after login and consent.
async fn user_agent_flow_location(h: &Harness, state: &str) -> String {
    let c = h
        .client(
            false,
            ClientSettings {
                allow_user_agent_flow: Some(true),
                ..Default::default()
            },
        )
        .await;
    let mut browser = Browser::default();
    let page = h
        .get(
            &h.authorize_url(&c, &[("state", state)])
                .replace("response_type=code", "response_type=token"),
            Some(&mut browser),
        )
        .await;
    let after_login = h.submit_login(&mut browser, &page, PASSWORD).await;
    let consent = h.get(&after_login.location(), Some(&mut browser)).await;
    h.submit_consent(&mut browser, &consent, "allow")
        .await
        .location()
}

#[tokio::test]
async fn user_agent_flow_puts_tokens_in_the_fragment() {
    let h = Harness::new().await;
    let location = user_agent_flow_location(&h, "ua").await;
    assert!(
        location.starts_with(&format!("{REDIRECT}#access_token=")),
        "{location}"
    );
    assert_eq!(
        url_param(&location, "token_type").as_deref(),
        Some("Bearer")
    );
    assert_eq!(url_param(&location, "state").as_deref(), Some("ua"));
    assert_eq!(
        url_param(&location, "instance_url").as_deref(),
        Some(ISSUER)
    );
    // An http redirect URI never receives a refresh token in a fragment.
    assert!(url_param(&location, "refresh_token").is_none());
    let token = url_param(&location, "access_token").unwrap();
    let api = h
        .api(
            axum::http::Method::GET,
            "/services/data/v65.0/",
            &token,
            None,
        )
        .await;
    assert_eq!(api.status, StatusCode::OK);
}

#[tokio::test]
async fn authorization_request_may_be_posted() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let body = form(&[
        ("response_type", "code"),
        ("client_id", &c.id),
        ("redirect_uri", REDIRECT),
    ]);
    let reply = h.post_form("/services/oauth2/authorize", &body, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.text().contains("name=\"password\""));
}

#[tokio::test]
async fn repeated_failed_logins_are_rate_limited() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let mut browser = Browser::default();
    let page = h.get(&h.authorize_url(&c, &[]), Some(&mut browser)).await;
    for _ in 0..10 {
        let reply = h.submit_login(&mut browser, &page, "wrong password").await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let locked = h.submit_login(&mut browser, &page, PASSWORD).await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(locked.header("retry-after").is_some());
    assert!(locked.text().contains("Too many failed attempts"));
    h.clock.advance_secs(301);
    let ok = h.submit_login(&mut browser, &page, PASSWORD).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
}

/// The `iss` of one authorization response: from the query, or the fragment if `in_fragment`, and
/// absent from the other part.
fn iss_in(location: &str, in_fragment: bool) -> Option<String> {
    let url = url::Url::parse(location).unwrap();
    let (carrying, other) = if in_fragment {
        (url.fragment().unwrap_or(""), url.query().unwrap_or(""))
    } else {
        (url.query().unwrap_or(""), url.fragment().unwrap_or(""))
    };
    assert!(
        !url::form_urlencoded::parse(other.as_bytes()).any(|(k, _)| k == "iss"),
        "iss in the wrong part of {location}"
    );
    url::form_urlencoded::parse(carrying.as_bytes())
        .find(|(k, _)| k == "iss")
        .map(|(_, v)| v.into_owned())
}

/// RFC 9207: code, fragment and error responses all name the issuer of the metadata, so a
/// client talking to several authorization servers cannot be mixed up.
#[tokio::test]
async fn authorization_responses_carry_the_issuer_against_mix_up_attacks() {
    let h = Harness::new().await;
    let metadata = h
        .get("/.well-known/oauth-authorization-server", None)
        .await
        .json();
    assert_eq!(
        metadata["authorization_response_iss_parameter_supported"],
        true
    );
    let issuer = metadata["issuer"].as_str().unwrap().to_owned();
    assert_eq!(issuer, ISSUER);

    // Success, code flow: in the query.
    let c = h.confidential().await;
    let location = h.authorize(&c, &[("state", "s")]).await;
    assert!(url_param(&location, "code").is_some(), "{location}");
    assert_eq!(iss_in(&location, false).as_deref(), Some(issuer.as_str()));

    // Error redirect (consent denied; another client, as consent to `c` is remembered): in the
    // query.
    let other = h.confidential().await;
    let mut browser = Browser::default();
    let page = h
        .get(&h.authorize_url(&other, &[]), Some(&mut browser))
        .await;
    let after_login = h.submit_login(&mut browser, &page, PASSWORD).await;
    let consent = h.get(&after_login.location(), Some(&mut browser)).await;
    let denied = h
        .submit_consent(&mut browser, &consent, "deny")
        .await
        .location();
    assert_eq!(
        url_param(&denied, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(iss_in(&denied, false).as_deref(), Some(issuer.as_str()));

    // Error redirect from a request check (no login needed): in the query.
    let unsupported = h
        .get(
            &h.authorize_url(&c, &[])
                .replace("response_type=code", "response_type=id_token"),
            None,
        )
        .await
        .location();
    assert_eq!(
        url_param(&unsupported, "error").as_deref(),
        Some("unsupported_response_type")
    );
    assert_eq!(
        iss_in(&unsupported, false).as_deref(),
        Some(issuer.as_str())
    );

    // Success, User-Agent flow: in the fragment, beside the access token.
    let fragment = user_agent_flow_location(&h, "s").await;
    assert!(fragment.contains("#access_token="), "{fragment}");
    assert_eq!(iss_in(&fragment, true).as_deref(), Some(issuer.as_str()));
}
