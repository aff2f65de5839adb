//! The admin console (`/admin`): who gets in, CSRF on every form, and the audit trail of what
//! an administrator does.

use axum::http::StatusCode;
use tessera_core::identity::ip_allowlist::IpAllowlist;
use tessera_core::model::ClientControls;
use tessera_core::operations::admin::ClientDefaults;
use tessera_proto::Password;

use crate::support::*;

pub(crate) const ADMIN: &str = "root@example.com";
pub(crate) const ADMIN_PASSWORD: &str = "admin password one";

/// Every page of the console, with a path parameter where it needs one.
const PAGES: [&str; 8] = [
    "/admin",
    "/admin/clients",
    "/admin/clients/3MVG9nothing",
    "/admin/users",
    "/admin/users/005nobody/grants",
    "/admin/users/005nobody/logout-everywhere",
    "/admin/grants/nothing",
    "/admin/events",
];

/// Every form of the console.
const FORMS: [&str; 9] = [
    "/admin/logout",
    "/admin/clients",
    "/admin/clients/3MVG9nothing",
    "/admin/clients/3MVG9nothing/rotate-secret",
    "/admin/clients/3MVG9nothing/delete",
    "/admin/users/005nobody/disable",
    "/admin/users/005nobody/enable",
    "/admin/users/005nobody/logout-everywhere",
    "/admin/grants/nothing/revoke",
];

pub(crate) async fn with_admin() -> Harness {
    admin_of(Harness::new().await).await
}

/// A harness over `store` with an administrator.
pub(crate) async fn with_admin_on(store: TestStore) -> Harness {
    admin_of(Harness::on(store).await).await
}

async fn admin_of(h: Harness) -> Harness {
    h.authority
        .operator()
        .create_admin(ADMIN, Password::new(ADMIN_PASSWORD), None)
        .await
        .unwrap();
    h
}

/// Logs in to the console as `username`; returns the login's reply.
async fn console_login(
    h: &Harness,
    browser: &mut Browser,
    username: &str,
    password: &str,
) -> Reply {
    let page = h.get("/admin/login", Some(browser)).await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = hidden_value(&page.text(), "csrf_token").unwrap();
    h.post_form(
        "/admin/login",
        &form(&[
            ("csrf_token", &csrf),
            ("username", username),
            ("password", password),
        ]),
        Some(browser),
    )
    .await
}

/// The id of a user's first grant.
/// The client form's body: the CSRF token, a name, [`REDIRECT`], and `fields`.
fn client_form(csrf: &str, name: &str, fields: &[(&str, &str)]) -> String {
    let mut all = vec![
        ("csrf_token", csrf),
        ("name", name),
        ("redirect_uris", REDIRECT),
    ];
    all.extend_from_slice(fields);
    form(&all)
}

async fn first_grant_of(h: &Harness, user_id: &str) -> String {
    let grants = h.authority.operator().grants_of_user(user_id).await;
    grants.unwrap()[0].id.clone()
}

pub(crate) async fn logged_in_admin(h: &Harness) -> Browser {
    let mut browser = Browser::default();
    let reply = console_login(h, &mut browser, ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
    assert_eq!(reply.location(), "/admin/clients");
    let cookie = reply.header("set-cookie").unwrap();
    assert!(cookie.starts_with("tessera_admin="), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    browser
}

#[tokio::test]
async fn no_admin_page_or_form_is_reachable_without_a_console_session() {
    let h = with_admin().await;
    // An end user's own session is no console session.
    let mut end_user = Browser::default();
    let client = h.confidential().await;
    h.authorize_in(&mut end_user, &client, &[]).await;
    for browser in [None, Some(&mut end_user)] {
        let mut browser = browser;
        for page in PAGES {
            let reply = h.get(page, browser.as_deref_mut()).await;
            assert_eq!(reply.status, StatusCode::SEE_OTHER, "{page}");
            assert_eq!(reply.location(), "/admin/login", "{page}");
        }
    }
    // A form: the session is checked before anything else, CSRF token or not.
    let mut browser = Browser::default();
    let login = h.get("/admin/login", Some(&mut browser)).await;
    let csrf = hidden_value(&login.text(), "csrf_token").unwrap();
    for action in FORMS {
        let reply = h
            .post_form(action, &form(&[("csrf_token", &csrf)]), Some(&mut browser))
            .await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{action}");
        assert_eq!(reply.location(), "/admin/login", "{action}");
    }
    // A forged session cookie is none either.
    let mut forged = Browser::default();
    let admin = h.authority.operator().user(ADMIN).await.unwrap();
    forged.absorb_from(&Reply {
        status: StatusCode::OK,
        headers: [(
            axum::http::header::SET_COOKIE,
            format!("tessera_admin={}.99999999999999.00", admin.id)
                .parse()
                .unwrap(),
        )]
        .into_iter()
        .collect(),
        body: Vec::new(),
    });
    assert_eq!(
        h.get("/admin/clients", Some(&mut forged)).await.location(),
        "/admin/login"
    );
}

#[tokio::test]
async fn a_user_without_the_admin_role_gets_403_and_no_session() {
    let h = with_admin().await;
    let mut browser = Browser::default();
    let reply = console_login(&h, &mut browser, USERNAME, PASSWORD).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text());
    assert!(reply
        .header("set-cookie")
        .is_none_or(|c| !c.contains("tessera_admin")));
    assert_eq!(
        h.get("/admin/clients", Some(&mut browser)).await.location(),
        "/admin/login"
    );
    let refused = h.events_named("console_refused").await;
    assert_eq!(refused.len(), 1);
    let alice = h.authority.operator().user(USERNAME).await.unwrap();
    assert_eq!(refused[0].event.user_id.as_deref(), Some(alice.id.as_str()));

    // A wrong password is the login form again, as for end users, and counts the same.
    let reply = console_login(&h, &mut browser, ADMIN, "not the password").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply
        .text()
        .contains("Please check your username and password"));
    // (Failures are recorded off the request path.)
    for _ in 0..100 {
        if !h.events_named("login_failed").await.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(h.events_named("login_failed").await.len(), 1);
}

#[tokio::test]
async fn losing_the_admin_role_ends_the_console_session_at_once() {
    let h = with_admin().await;
    let mut browser = logged_in_admin(&h).await;
    assert_eq!(
        h.get("/admin/users", Some(&mut browser)).await.status,
        StatusCode::OK
    );
    h.authority
        .operator()
        .set_user_admin(ADMIN, false)
        .await
        .unwrap();
    assert_eq!(
        h.get("/admin/users", Some(&mut browser)).await.location(),
        "/admin/login"
    );
}

#[tokio::test]
async fn a_form_posted_without_its_csrf_token_is_refused() {
    let h = with_admin().await;
    let mut browser = logged_in_admin(&h).await;
    let client = h.confidential().await;
    let before = h.authority.operator().list_clients().await.unwrap().len();
    for token in [None, Some("00"), Some("not hex")] {
        let mut pairs = vec![("name", "Forged"), ("redirect_uris", REDIRECT)];
        if let Some(token) = token {
            pairs.push(("csrf_token", token));
        }
        let reply = h
            .post_form("/admin/clients", &form(&pairs), Some(&mut browser))
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{token:?}");
        let reply = h
            .post_form(
                &format!("/admin/clients/{}/delete", client.id),
                &form(&pairs),
                Some(&mut browser),
            )
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{token:?}");
    }
    assert_eq!(
        h.authority.operator().list_clients().await.unwrap().len(),
        before
    );
    assert!(h.events_named("client_created").await.is_empty());
    assert!(h.events_named("client_deleted").await.is_empty());
}

#[tokio::test]
async fn admin_actions_are_audited_with_the_admins_user_id() {
    let h = with_admin().await;
    let admin = h.authority.operator().user(ADMIN).await.unwrap();
    let mut browser = logged_in_admin(&h).await;
    assert_eq!(h.events_named("console_login").await.len(), 1);

    // Create a client: its secret is shown once.
    let page = h.get("/admin/clients", Some(&mut browser)).await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = hidden_value(&page.text(), "csrf_token").unwrap();
    let created = h
        .post_form(
            "/admin/clients",
            &form(&[
                ("csrf_token", &csrf),
                ("name", "Console <app>"),
                ("redirect_uris", REDIRECT),
                ("rotate_refresh_tokens", "true"),
                ("refresh_retry_window", "30s"),
            ]),
            Some(&mut browser),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text());
    assert!(created.text().contains("Console &lt;app&gt;"), "escaped");
    let clients = h.authority.operator().list_clients().await.unwrap();
    let made = clients.iter().find(|c| c.name == "Console <app>").unwrap();
    assert!(made.rotate_refresh_tokens);
    assert_eq!(made.refresh_retry_window_secs, 30);
    let events = h.events_named("client_created").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event.user_id.as_deref(), Some(admin.id.as_str()));
    assert_eq!(
        events[0].event.client_id.as_deref(),
        Some(made.client_id.as_str())
    );

    // A bad setting is shown, and nothing is written.
    let reply = h
        .post_form(
            "/admin/clients",
            &form(&[
                ("csrf_token", &csrf),
                ("name", "Bad"),
                ("redirect_uris", "javascript:alert(1)"),
            ]),
            Some(&mut browser),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.text().contains("javascript:"));
    assert_eq!(h.events_named("client_created").await.len(), 1);

    // Revoke a grant from its timeline: the API refuses its token.
    let client = h.rotating(60).await;
    let tokens = h.login(&client, "api refresh_token").await;
    let access = tokens["access_token"].as_str().unwrap();
    assert!(h.api_works(access).await);
    let alice = h.authority.operator().user(USERNAME).await.unwrap();
    let grants = h
        .get(
            &format!("/admin/users/{}/grants", alice.id),
            Some(&mut browser),
        )
        .await;
    assert_eq!(grants.status, StatusCode::OK);
    let grant = first_grant_of(&h, &alice.id).await;
    assert!(grants.text().contains(&grant));
    let timeline = h
        .get(&format!("/admin/grants/{grant}"), Some(&mut browser))
        .await;
    assert_eq!(timeline.status, StatusCode::OK);
    assert!(timeline.text().contains("<svg"));
    assert!(timeline.text().contains("data-kind=\"issued\""));
    let revoked = h
        .post_form(
            &format!("/admin/grants/{grant}/revoke"),
            &form(&[("csrf_token", &csrf)]),
            Some(&mut browser),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER);
    assert!(!h.api_works(access).await);
    // Revoking it again changes nothing and audits nothing.
    let again = h
        .post_form(
            &format!("/admin/grants/{grant}/revoke"),
            &form(&[("csrf_token", &csrf)]),
            Some(&mut browser),
        )
        .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    let events = h.events_named("grant_revoked_by_admin").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event.user_id.as_deref(), Some(admin.id.as_str()));
    assert_eq!(events[0].event.grant_id.as_deref(), Some(grant.as_str()));

    // Disable a user.
    let reply = h
        .post_form(
            &format!("/admin/users/{}/disable", alice.id),
            &form(&[("csrf_token", &csrf)]),
            Some(&mut browser),
        )
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert!(
        h.authority
            .operator()
            .user(USERNAME)
            .await
            .unwrap()
            .disabled
    );
    let events = h.events_named("user_disabled").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event.user_id.as_deref(), Some(admin.id.as_str()));

    // The events page lists them, newest first, and filters by kind.
    let page = h
        .get("/admin/events?kind=user_disabled", Some(&mut browser))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("http-equiv=\"refresh\""));
    assert!(page.text().contains("data-kind=\"user_disabled\""));
    assert!(!page.text().contains("data-kind=\"client_created\""));
    let all = h.get("/admin/events", Some(&mut browser)).await.text();
    let disabled_at = all.find("data-kind=\"user_disabled\"").unwrap();
    let created_at = all.find("data-kind=\"client_created\"").unwrap();
    assert!(disabled_at < created_at, "newest first");
}

#[tokio::test]
async fn a_clients_openid_connect_settings_are_shown_and_changed_from_the_console() {
    let h = with_admin().await;
    let mut browser = logged_in_admin(&h).await;
    let client = h.confidential().await;
    let page = h
        .get(&format!("/admin/clients/{}", client.id), Some(&mut browser))
        .await;
    let html = page.text();
    assert!(
        html.contains("name=\"id_token_validity\" value=\"2m\""),
        "{html}"
    );
    assert!(html.contains("<option value=\"RS256\" selected>"), "{html}");
    let csrf = hidden_value(&html, "csrf_token").unwrap();
    let post = |fields: Vec<(&'static str, &'static str)>| client_form(&csrf, "OIDC app", &fields);
    let updated = h
        .post_form(
            &format!("/admin/clients/{}", client.id),
            &post(vec![
                ("id_token_validity", "15m"),
                (
                    "id_token_audiences",
                    "https://api.example.com\r\nurn:example:b\r\n",
                ),
                ("id_token_alg", "ES256"),
                ("id_token_standard_claims", "true"),
                ("jwt_access_tokens", "true"),
            ]),
            Some(&mut browser),
        )
        .await;
    assert_eq!(updated.status, StatusCode::SEE_OTHER, "{}", updated.text());
    let openid = h
        .authority
        .operator()
        .client(&client.id)
        .await
        .unwrap()
        .openid;
    assert_eq!(openid.id_token_validity_secs, 900);
    assert_eq!(
        openid.id_token_audiences,
        ["https://api.example.com", "urn:example:b"]
    );
    assert_eq!(openid.id_token_alg.name(), "ES256");
    assert!(openid.id_token_standard_claims && openid.jwt_access_tokens);
    assert!(!openid.echo_nonce_on_refresh);

    // A validity that is not whole minutes is refused with the reason, and nothing changes.
    let refused = h
        .post_form(
            &format!("/admin/clients/{}", client.id),
            &post(vec![("id_token_validity", "90s")]),
            Some(&mut browser),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.text().contains("whole minutes"),
        "{}",
        refused.text()
    );
    let unchanged = h.authority.operator().client(&client.id).await.unwrap();
    assert_eq!(unchanged.openid.id_token_validity_secs, 900);
}

async fn controls_of(h: &Harness, client: &Client) -> ClientControls {
    let stored = h.authority.operator().client(&client.id).await.unwrap();
    stored.controls
}

#[tokio::test]
async fn a_clients_controls_are_set_from_the_console_and_pkce_required_stays_set() {
    let h = with_admin().await;
    let mut browser = logged_in_admin(&h).await;
    let client = h.confidential().await;
    let path = format!("/admin/clients/{}", client.id);
    let html = h.get(&path, Some(&mut browser)).await.text();
    let csrf = hidden_value(&html, "csrf_token").unwrap();
    let post = |fields: &[(&str, &str)]| client_form(&csrf, "Partner app", fields);
    let fields = [
        ("idle_cap", "30d"),
        ("pkce_required", "true"),
        ("rotate_refresh_tokens", "true"),
        ("rotation_required", "true"),
        ("blocked", "true"),
    ];
    let updated = h.post_form(&path, &post(&fields), Some(&mut browser)).await;
    assert_eq!(updated.status, StatusCode::SEE_OTHER, "{}", updated.text());
    let set = ClientControls {
        pkce_required: true,
        rotation_required: true,
        idle_cap_secs: Some(30 * 86_400),
        blocked: true,
        rotation_audit: false,
        ..ClientControls::default()
    };
    assert_eq!(controls_of(&h, &client).await, set);
    let html = h.get(&path, Some(&mut browser)).await.text();
    assert!(
        html.contains("infinite, capped at 30 days idle by the idle-limit cap"),
        "{html}"
    );
    assert!(
        html.contains("PKCE required cannot be turned off, as in Salesforce"),
        "{html}"
    );

    // The disabled box is not sent: saving without it keeps PKCE required, and an empty cap
    // lifts the cap.
    let saved = h
        .post_form(
            &path,
            &post(&[("rotate_refresh_tokens", "true")]),
            Some(&mut browser),
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text());
    let kept = ClientControls {
        pkce_required: true,
        ..ClientControls::default()
    };
    assert_eq!(controls_of(&h, &client).await, kept);
}

#[tokio::test]
async fn a_clients_ip_allowlist_is_edited_one_range_a_line_and_a_bad_one_is_refused_with_why() {
    let h = with_admin().await;
    let mut browser = logged_in_admin(&h).await;
    let client = h.confidential().await;
    let path = format!("/admin/clients/{}", client.id);
    let html = h.get(&path, Some(&mut browser)).await.text();
    assert!(
        html.contains("Refresh-token IP allowlist: <strong>none"),
        "{html}"
    );
    let csrf = hidden_value(&html, "csrf_token").unwrap();
    let post = |list: &str| client_form(&csrf, "Partner app", &[("ip_allowlist", list)]);

    let saved = h
        .post_form(
            &path,
            &post("203.0.113.0/24\r\n2001:db8::/32\r\n"),
            Some(&mut browser),
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text());
    let set = controls_of(&h, &client).await.ip_allowlist;
    assert_eq!(set.to_input(","), "203.0.113.0/24,2001:db8::/32");
    let html = h.get(&path, Some(&mut browser)).await.text();
    assert!(
        html.contains("Refresh-token IP allowlist: <strong>203.0.113.0/24, 2001:db8::/32"),
        "{html}"
    );
    assert!(
        html.contains("203.0.113.0/24\n2001:db8::/32</textarea>"),
        "{html}"
    );

    for (bad, why) in [
        ("0.0.0.0/0", "which is no restriction"),
        ("203.0.113.9/24", "bits set past its /24 prefix"),
        ("203.0.113.0/24\nnot-a-range", "is not an IP address"),
    ] {
        let refused = h.post_form(&path, &post(bad), Some(&mut browser)).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(refused.text().contains(why), "{bad}: {}", refused.text());
        assert_eq!(controls_of(&h, &client).await.ip_allowlist, set, "{bad}");
    }

    // An empty box lifts the restriction.
    let cleared = h.post_form(&path, &post(""), Some(&mut browser)).await;
    assert_eq!(cleared.status, StatusCode::SEE_OTHER, "{}", cleared.text());
    assert!(controls_of(&h, &client).await.ip_allowlist.is_empty());
}

#[tokio::test]
async fn the_new_client_form_starts_with_the_configured_defaults_which_the_admin_may_change() {
    let defaults = ClientDefaults {
        pkce_required: true,
        rotation_required: false,
        idle_cap_secs: Some(30 * 86_400),
        ip_allowlist: IpAllowlist::parse("203.0.113.0/24 ::/0!").unwrap(),
    };
    let configured = defaults.clone();
    let h = Harness::with_config(
        move |c| c.client_defaults = configured,
        tessera_server::TrustedProxies::default(),
    )
    .await;
    let h = admin_of(h).await;
    let mut browser = logged_in_admin(&h).await;
    let html = h.get("/admin/clients", Some(&mut browser)).await.text();
    assert!(html.contains("203.0.113.0/24\n::/0!</textarea>"), "{html}");
    assert!(
        html.contains("name=\"pkce_required\" value=\"true\" checked>"),
        "{html}"
    );
    assert!(html.contains("name=\"idle_cap\" value=\"30d\""), "{html}");

    // What the form sends is what the client gets: here, the allowlist emptied and PKCE unticked.
    let csrf = hidden_value(&html, "csrf_token").unwrap();
    let fields = [("idle_cap", "30d"), ("ip_allowlist", "")];
    let created = h
        .post_form(
            "/admin/clients",
            &client_form(&csrf, "New app", &fields),
            Some(&mut browser),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text());
    let clients = h.authority.operator().list_clients().await.unwrap();
    let new = clients.iter().find(|c| c.name == "New app").unwrap();
    assert_eq!(
        new.controls,
        ClientControls {
            idle_cap_secs: Some(30 * 86_400),
            ..ClientControls::default()
        }
    );
}

#[tokio::test]
async fn a_clients_dpop_settings_are_shown_and_changed_from_the_console() {
    let h = with_admin().await;
    let mut browser = logged_in_admin(&h).await;
    let client = h.confidential().await;
    let path = format!("/admin/clients/{}", client.id);
    let html = h.get(&path, Some(&mut browser)).await.text();
    assert!(html.contains("<option value=\"off\" selected>"), "{html}");
    let csrf = hidden_value(&html, "csrf_token").unwrap();
    let post = |fields: &[(&str, &str)]| client_form(&csrf, "DPoP app", fields);
    let fields = [("dpop", "required"), ("dpop_require_nonce", "true")];
    let updated = h.post_form(&path, &post(&fields), Some(&mut browser)).await;
    assert_eq!(updated.status, StatusCode::SEE_OTHER, "{}", updated.text());
    let dpop = h
        .authority
        .operator()
        .client(&client.id)
        .await
        .unwrap()
        .dpop;
    assert_eq!((dpop.mode.as_str(), dpop.require_nonce), ("required", true));
    let html = h.get(&path, Some(&mut browser)).await.text();
    assert!(
        html.contains("<option value=\"required\" selected>"),
        "{html}"
    );

    let refused = h
        .post_form(&path, &post(&[("dpop", "sometimes")]), Some(&mut browser))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.text().contains("off, allowed or required"),
        "{}",
        refused.text()
    );
    let unchanged = h
        .authority
        .operator()
        .client(&client.id)
        .await
        .unwrap()
        .dpop;
    assert_eq!(unchanged, dpop, "nothing was written");
}

#[tokio::test]
async fn the_console_shows_whether_a_grant_is_dpop_bound_and_to_which_key() {
    use tessera_core::store::Issuance;
    const JKT: &str = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
    let h = with_admin().await;
    let mut browser = logged_in_admin(&h).await;
    let client = h.rotating(60).await;
    h.login(&client, "api refresh_token").await;
    let alice = h.authority.operator().user(USERNAME).await.unwrap();
    let unbound = first_grant_of(&h, &alice.id).await;
    // The flows bind grants once DPoP is wired; the console shows what the store holds.
    let store = &h.store;
    let mut bound = store.grant(&unbound).await.unwrap().unwrap();
    bound.id = format!("{unbound}b");
    bound.dpop_jkt = Some(JKT.to_owned());
    let issuance = Issuance {
        grant: bound.clone(),
        refresh_token_hash: None,
        idle_expires_at: None,
        events: Vec::new(),
        code_hash: None,
        max_live_grants: None,
    };
    store.issue(&issuance).await.unwrap();

    let grants = h
        .get(
            &format!("/admin/users/{}/grants", alice.id),
            Some(&mut browser),
        )
        .await
        .text();
    assert!(
        grants.contains(&format!("DPoP-bound to <code class=\"jkt\">{JKT}</code>")),
        "{grants}"
    );
    assert!(grants.contains("not bound"), "{grants}");
    for (grant, shown) in [
        (
            bound.id.clone(),
            format!("DPoP-bound to <code class=\"jkt\">{JKT}</code>"),
        ),
        (unbound, "not bound".to_owned()),
    ] {
        let page = h
            .get(&format!("/admin/grants/{grant}"), Some(&mut browser))
            .await
            .text();
        assert!(page.contains(&shown), "{page}");
    }
}

#[tokio::test]
async fn a_client_is_updated_given_a_new_secret_shown_once_and_deleted_from_the_console() {
    let h = with_admin().await;
    let mut browser = logged_in_admin(&h).await;
    let client = h.confidential().await;
    let page = h
        .get(&format!("/admin/clients/{}", client.id), Some(&mut browser))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = hidden_value(&page.text(), "csrf_token").unwrap();

    let updated = h
        .post_form(
            &format!("/admin/clients/{}", client.id),
            &form(&[
                ("csrf_token", &csrf),
                ("name", "Renamed"),
                ("redirect_uris", REDIRECT),
                ("access_token_ttl", "15m"),
                ("refresh_token_policy", "specific_lifetime:1:DAYS"),
            ]),
            Some(&mut browser),
        )
        .await;
    assert_eq!(updated.status, StatusCode::SEE_OTHER, "{}", updated.text());
    let stored = h.authority.operator().client(&client.id).await.unwrap();
    assert_eq!(stored.name, "Renamed");
    assert_eq!(stored.access_token_ttl_secs, 900);
    assert_eq!(
        stored.refresh_token_policy.to_string(),
        "specific_lifetime:1:DAYS"
    );
    assert_eq!(h.events_named("client_updated").await.len(), 1);

    let rotated = h
        .post_form(
            &format!("/admin/clients/{}/rotate-secret", client.id),
            &form(&[("csrf_token", &csrf)]),
            Some(&mut browser),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK);
    assert_eq!(rotated.header("cache-control"), Some("no-store"));
    let html = rotated.text();
    let start = html.find("id=\"client-secret\">").unwrap() + "id=\"client-secret\">".len();
    let secret = &html[start..start + 64];
    let old = client.secret.as_deref().unwrap();
    let h = &h;
    let introspect = |secret: &str| {
        let body = form(&[
            ("token", "x"),
            ("client_id", &client.id),
            ("client_secret", secret),
        ]);
        async move {
            h.post_form("/services/oauth2/introspect", &body, None)
                .await
                .status
        }
    };
    assert_eq!(introspect(secret).await, StatusCode::OK);
    assert_ne!(introspect(old).await, StatusCode::OK);
    // Shown once: the client's page does not show it again.
    let page = h
        .get(&format!("/admin/clients/{}", client.id), Some(&mut browser))
        .await;
    assert!(!page.text().contains(secret));
    assert_eq!(h.events_named("client_secret_rotated").await.len(), 1);

    let deleted = h
        .post_form(
            &format!("/admin/clients/{}/delete", client.id),
            &form(&[("csrf_token", &csrf)]),
            Some(&mut browser),
        )
        .await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    assert!(h.authority.operator().client(&client.id).await.is_err());
    assert_eq!(h.events_named("client_deleted").await.len(), 1);
    let page = h
        .get(&format!("/admin/clients/{}", client.id), Some(&mut browser))
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_replay_from_another_address_is_flagged_on_the_grants_timeline() {
    let h = with_admin().await;
    let mut browser = logged_in_admin(&h).await;
    let client = h.rotating(60).await;
    let tokens = h.login(&client, "api refresh_token").await;
    let rt1 = tokens["refresh_token"].as_str().unwrap().to_owned();
    let secret = client.secret.clone().unwrap();
    let refresh = [
        ("grant_type", "refresh_token"),
        ("refresh_token", rt1.as_str()),
        ("client_id", client.id.as_str()),
        ("client_secret", secret.as_str()),
    ];
    let rotated = h.token_from("192.0.2.7", &[], &refresh).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text());
    // The rotating address replays: not flagged.
    let same = h.token_from("192.0.2.7", &[], &refresh).await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.text());
    // Another address replays inside the window: answered (by design), and flagged.
    let other = h.token_from("203.0.113.9", &[], &refresh).await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.text());
    assert_eq!(
        other.json()["refresh_token"],
        rotated.json()["refresh_token"]
    );

    let alice = h.authority.operator().user(USERNAME).await.unwrap();
    let grant = first_grant_of(&h, &alice.id).await;
    let timeline = h
        .get(&format!("/admin/grants/{grant}"), Some(&mut browser))
        .await;
    assert_eq!(timeline.status, StatusCode::OK);
    let page = timeline.text();
    assert_eq!(
        page.matches("class=\"event\" data-kind=\"retry_replayed\"")
            .count(),
        2,
        "{page}"
    );
    assert_eq!(
        page.matches("data-from-another-address=\"true\"").count(),
        1,
        "{page}"
    );
    assert!(page.contains("from 203.0.113.9"), "{page}");
    assert!(page.contains("(another address)"), "{page}");
}

/// The CSRF token of a console page of `browser`'s session.
async fn console_csrf(h: &Harness, browser: &mut Browser) -> String {
    let page = h.get("/admin/clients", Some(browser)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    hidden_value(&page.text(), "csrf_token").unwrap()
}

#[tokio::test]
async fn a_console_cookie_replayed_after_logout_is_refused() {
    let h = with_admin().await;
    let mut browser = logged_in_admin(&h).await;
    let captured = browser.clone();
    let csrf = console_csrf(&h, &mut browser).await;
    let reply = h
        .post_form(
            "/admin/logout",
            &form(&[("csrf_token", &csrf)]),
            Some(&mut browser),
        )
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), "/admin/login");
    assert!(reply.header("set-cookie").unwrap().contains("Max-Age=0"));
    for mut replayed in [captured.clone(), browser] {
        assert_eq!(
            h.get("/admin/clients", Some(&mut replayed))
                .await
                .location(),
            "/admin/login"
        );
    }
    let logouts = h.events_named("console_logout").await;
    assert_eq!(logouts.len(), 1);
    let admin = h.authority.operator().user(ADMIN).await.unwrap();
    assert_eq!(logouts[0].event.user_id.as_deref(), Some(admin.id.as_str()));
    // Logging in again works.
    let mut again = logged_in_admin(&h).await;
    console_csrf(&h, &mut again).await;
}

#[tokio::test]
async fn a_console_post_with_the_admins_session_and_a_csrf_pair_minted_for_another_browser_is_refused(
) {
    let h = with_admin().await;
    let alice = h.authority.operator().user(USERNAME).await.unwrap();
    let mut admin = logged_in_admin(&h).await;
    // Another, session-less browser: the console's login page gives it a CSRF pair.
    let mut other = Browser::default();
    let page = h.get("/admin/login", Some(&mut other)).await;
    let minted = hidden_value(&page.text(), "csrf_token").unwrap();
    admin.set_cookie("tessera_csrf", other.cookie("tessera_csrf").unwrap());
    // And another administrator's session's token is no token of this session either.
    let mut second_session = logged_in_admin(&h).await;
    let foreign = console_csrf(&h, &mut second_session).await;
    for token in [minted, foreign] {
        let reply = h
            .post_form(
                &format!("/admin/users/{}/disable", alice.id),
                &form(&[("csrf_token", &token)]),
                Some(&mut admin),
            )
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text());
    }
    assert!(
        !h.authority
            .operator()
            .user(USERNAME)
            .await
            .unwrap()
            .disabled
    );
    assert!(h.events_named("user_disabled").await.is_empty());
}

#[tokio::test]
async fn a_console_session_ends_when_its_administrator_changes_password() {
    let h = with_admin().await;
    let mut browser = logged_in_admin(&h).await;
    console_csrf(&h, &mut browser).await;
    h.authority
        .operator()
        .set_user_password(ADMIN, Password::new("another admin password"), true)
        .await
        .unwrap();
    assert_eq!(
        h.get("/admin/clients", Some(&mut browser)).await.location(),
        "/admin/login"
    );
}

#[tokio::test]
async fn the_console_cookie_is_host_prefixed_under_an_https_issuer() {
    let h = Harness::with_config(
        |config| config.issuer = "https://login.test".into(),
        tessera_server::TrustedProxies::default(),
    )
    .await;
    h.authority
        .operator()
        .create_admin(ADMIN, Password::new(ADMIN_PASSWORD), None)
        .await
        .unwrap();
    let mut browser = Browser::default();
    let reply = console_login(&h, &mut browser, ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
    assert!(browser.cookie("__Host-tessera_csrf").is_some());
    let cookie = reply.header("set-cookie").unwrap();
    assert!(cookie.starts_with("__Host-tessera_admin="), "{cookie}");
    for attribute in ["Path=/;", "Secure", "SameSite=Strict", "HttpOnly"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
    assert_eq!(
        h.get("/admin/clients", Some(&mut browser)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn rotation_audit_is_set_from_the_console_and_its_client_page_shows_the_evidence() {
    use tessera_core::operations::admin::AUDIT_IS_BEFORE_REQUIRED;
    let h = with_admin().await;
    let mut browser = logged_in_admin(&h).await;
    let client = h.confidential().await;
    let path = format!("/admin/clients/{}", client.id);
    let html = h.get(&path, Some(&mut browser)).await.text();
    assert!(
        !html.contains("Rotation audit (last"),
        "nothing to show yet"
    );
    let csrf = hidden_value(&html, "csrf_token").unwrap();
    let post = |fields: &[(&str, &str)]| client_form(&csrf, "Partner app", fields);

    let unknown = h
        .post_form(
            &path,
            &post(&[("rotation", "sometimes")]),
            Some(&mut browser),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(unknown.text().contains("is not off, on or audit"));
    let with_required = [("rotation", "audit"), ("rotation_required", "true")];
    let refused = h
        .post_form(&path, &post(&with_required), Some(&mut browser))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.text().contains(AUDIT_IS_BEFORE_REQUIRED),
        "{}",
        refused.text()
    );
    let window = [("rotation", "audit"), ("refresh_retry_window", "60s")];
    let saved = h.post_form(&path, &post(&window), Some(&mut browser)).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text());
    let stored = h.authority.operator().client(&client.id).await.unwrap();
    assert!(stored.audits_rotation());

    // The client does not keep its new token: the audited refresh is the page's evidence.
    let peer = "203.0.113.9";
    let (_, reply) =
        crate::rotation_audit::present_a_token_rotated_out_past_the_window(&h, &client, peer).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let html = h.get(&path, Some(&mut browser)).await.text();
    assert!(html.contains("Rotation audit (last 30 days)"), "{html}");
    assert!(
        html.contains("<strong id=\"rotation-audit-count\">1 family</strong>"),
        "{html}"
    );
    let section = &html[html.find("id=\"rotation-audit\"").unwrap()..];
    let section = &section[..section.find("</section>").unwrap()];
    assert!(section.contains(USERNAME), "{section}");
    assert!(section.contains(peer), "{section}");
    assert!(html.contains("<option value=\"audit\" selected>"), "{html}");
}
