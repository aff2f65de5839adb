//! "Log out everywhere" (every grant of a user revoked as one audited action, from the console)
//! and the end user's connected-apps page (`/services/oauth2/apps`): what it lists, what it
//! revokes, and what it refuses.

use axum::http::StatusCode;
use tessera_core::operations::admin::ClientSettings;
use tessera_proto::{ExposeSecret, Password};

use crate::console::{logged_in_admin, with_admin_on};
use crate::support::*;

const BOB: &str = "bob@example.com";
const APPS: &str = "/services/oauth2/apps";

/// Alice's tokens from one login, and the grant they belong to.
struct Tokens {
    access: String,
    refresh: String,
}

/// A confidential client named `name`.
async fn app_named(h: &Harness, name: &str) -> Client {
    h.client(
        false,
        ClientSettings {
            name: Some(name.into()),
            ..Default::default()
        },
    )
    .await
}

/// Alice logs in to `client` in `browser` (a code flow through the pages); her tokens.
async fn alice_logs_in(h: &Harness, browser: &mut Browser, client: &Client) -> Tokens {
    let location = h
        .authorize_in(browser, client, &[("scope", "api refresh_token")])
        .await;
    let code = url_param(&location, "code").unwrap();
    let reply = h.exchange(client, &code, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body = reply.json();
    Tokens {
        access: body["access_token"].as_str().unwrap().to_owned(),
        refresh: body["refresh_token"].as_str().unwrap().to_owned(),
    }
}

/// Bob, another user, with tokens of `client`.
async fn bob_with_tokens(h: &Harness, client: &Client) -> Tokens {
    let operator = h.authority.operator();
    if operator.user(BOB).await.is_err() {
        operator
            .create_user(BOB, Password::new("bob's own password"), None)
            .await
            .unwrap();
    }
    let minted = operator
        .mint_for(&client.id, BOB, "api refresh_token")
        .await
        .unwrap();
    Tokens {
        access: minted.access_token.expose_secret().to_owned(),
        refresh: minted.refresh_token.unwrap().expose_secret().to_owned(),
    }
}

async fn user_id(h: &Harness, username: &str) -> String {
    h.authority.operator().user(username).await.unwrap().id
}

/// The ids of a user's grants, live ones only.
async fn live_grants(h: &Harness, username: &str) -> Vec<String> {
    let id = user_id(h, username).await;
    let grants = h.authority.operator().grants_of_user(&id).await.unwrap();
    grants
        .into_iter()
        .filter(|g| g.revoked_at.is_none())
        .map(|g| g.id)
        .collect()
}

/// Whether a refresh token still refreshes (200), or is refused as revoked (400
/// `invalid_grant`).
async fn refresh_works(h: &Harness, client: &Client, refresh_token: &str) -> bool {
    let reply = h.refresh(client, refresh_token).await;
    match reply.status {
        StatusCode::OK => true,
        _ => {
            reply.assert_oauth_error(400, "invalid_grant");
            false
        }
    }
}

/// Alice, logged in to two apps in her browser, and Bob with tokens of the first.
struct TwoAppsAndBob {
    mail: Client,
    calendar: Client,
    alice: Browser,
    at_mail: Tokens,
    at_calendar: Tokens,
    bob: Tokens,
}

async fn two_apps_and_bob(h: &Harness) -> TwoAppsAndBob {
    let mail = app_named(h, "Mail").await;
    let calendar = app_named(h, "Calendar").await;
    let mut alice = Browser::default();
    let at_mail = alice_logs_in(h, &mut alice, &mail).await;
    let at_calendar = alice_logs_in(h, &mut alice, &calendar).await;
    let bob = bob_with_tokens(h, &mail).await;
    TwoAppsAndBob {
        mail,
        calendar,
        alice,
        at_mail,
        at_calendar,
        bob,
    }
}

impl TwoAppsAndBob {
    /// Every token of Alice fails on the next request; Bob's work.
    async fn assert_only_alice_logged_out(&self, h: &Harness) {
        for (client, tokens) in [
            (&self.mail, &self.at_mail),
            (&self.calendar, &self.at_calendar),
        ] {
            assert!(!h.api_works(&tokens.access).await);
            assert!(!refresh_works(h, client, &tokens.refresh).await);
        }
        assert!(h.api_works(&self.bob.access).await);
        assert!(refresh_works(h, &self.mail, &self.bob.refresh).await);
        assert_eq!(live_grants(h, BOB).await.len(), 1);
    }
}

/// The CSRF token of a page's forms.
fn csrf_of(page: &Reply) -> String {
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    hidden_value(&page.text(), "csrf_token").expect("a form with a CSRF token")
}

async fn log_out_everywhere_from_the_console_fails_every_token_of_the_user_and_no_one_elses(
    store: TestStore,
) {
    let h = with_admin_on(store).await;
    let fixture = two_apps_and_bob(&h).await;
    let alice_id = user_id(&h, USERNAME).await;
    let path = format!("/admin/users/{alice_id}/logout-everywhere");

    let mut admin = logged_in_admin(&h).await;
    let grants_page = h
        .get(&format!("/admin/users/{alice_id}/grants"), Some(&mut admin))
        .await;
    assert!(grants_page.text().contains(&path), "{}", grants_page.text());
    let confirm = h.get(&path, Some(&mut admin)).await;
    assert!(
        confirm.text().contains("<strong>2</strong> now"),
        "{}",
        confirm.text()
    );
    let csrf = csrf_of(&confirm);

    // Without the form's CSRF token: refused, nothing revoked.
    let refused = h.post_form(&path, "", Some(&mut admin)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(live_grants(&h, USERNAME).await.len(), 2);

    let done = h
        .post_form(&path, &form(&[("csrf_token", &csrf)]), Some(&mut admin))
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    assert!(done.text().contains("Revoked <strong>2</strong>"));

    fixture.assert_only_alice_logged_out(&h).await;

    // One event of the action, the user's, naming the administrator; and each grant's own
    // `revoked` event naming the action, on its timeline.
    let admin_user = h
        .authority
        .operator()
        .user("root@example.com")
        .await
        .unwrap();
    let action = h.events_named("user_grants_revoked").await;
    assert_eq!(action.len(), 1);
    assert_eq!(action[0].event.user_id.as_deref(), Some(alice_id.as_str()));
    assert_eq!(
        action[0].event.detail,
        format!(
            "2 grants, by admin console, root@example.com ({})",
            admin_user.id
        )
    );
    let revoked = h.events_named("revoked").await;
    assert_eq!(revoked.len(), 2);
    for event in &revoked {
        assert_eq!(event.event.user_id.as_deref(), Some(alice_id.as_str()));
        assert!(
            event
                .event
                .detail
                .starts_with("log out everywhere, by admin console, root@example.com"),
            "{}",
            event.event.detail
        );
        let grant = event.event.grant_id.as_deref().unwrap();
        let timeline = h
            .get(&format!("/admin/grants/{grant}"), Some(&mut admin))
            .await;
        assert!(timeline.text().contains("log out everywhere"));
    }

    // Again: nothing left to revoke, and the page says so; an unknown user is a 404.
    let again = h
        .post_form(&path, &form(&[("csrf_token", &csrf)]), Some(&mut admin))
        .await;
    assert!(again.text().contains("Revoked <strong>0</strong>"));
    let unknown = h
        .post_form(
            "/admin/users/005nobody/logout-everywhere",
            &form(&[("csrf_token", &csrf)]),
            Some(&mut admin),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let unknown = h
        .get("/admin/users/005nobody/logout-everywhere", Some(&mut admin))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

async fn the_apps_page_sends_a_signed_out_browser_to_the_login_and_back(store: TestStore) {
    let h = Harness::on(store).await;
    let mail = app_named(&h, "Mail").await;
    alice_logs_in(&h, &mut Browser::default(), &mail).await;

    let mut browser = Browser::default();
    let page = h.get(APPS, Some(&mut browser)).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/services/oauth2/apps/login");
    let login = h.get(&page.location(), Some(&mut browser)).await;
    assert!(login.text().contains("your connected apps"));
    let csrf = csrf_of(&login);

    // A wrong password: the form again, no session.
    let wrong = h
        .post_form(
            "/services/oauth2/apps/login",
            &form(&[
                ("csrf_token", &csrf),
                ("username", USERNAME),
                ("password", "not it"),
            ]),
            Some(&mut browser),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::OK);
    assert!(wrong.text().contains("check your username and password"));
    // Without the login form's CSRF token: refused.
    let forged = h
        .post_form(
            "/services/oauth2/apps/login",
            &form(&[("username", USERNAME), ("password", PASSWORD)]),
            Some(&mut browser),
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(
        h.get(APPS, Some(&mut browser)).await.status,
        StatusCode::SEE_OTHER
    );

    let logged_in = h
        .post_form(
            "/services/oauth2/apps/login",
            &form(&[
                ("csrf_token", &csrf),
                ("username", USERNAME),
                ("password", PASSWORD),
            ]),
            Some(&mut browser),
        )
        .await;
    assert_eq!(
        logged_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        logged_in.text()
    );
    assert_eq!(logged_in.location(), APPS);
    let page = h.get(APPS, Some(&mut browser)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("Mail"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    // Signed in already: the login sends the browser straight to the page.
    let login = h
        .get("/services/oauth2/apps/login", Some(&mut browser))
        .await;
    assert_eq!(login.location(), APPS);
}

async fn the_apps_page_lists_the_users_grants_by_app_and_no_one_elses(store: TestStore) {
    let h = Harness::on(store).await;
    let mail = app_named(&h, "Mail").await;
    let calendar = app_named(&h, "Calendar").await;
    let bobs_app = app_named(&h, "Only Bob uses this").await;
    let mut alice = Browser::default();
    for app in [&mail, &mail, &calendar] {
        alice_logs_in(&h, &mut alice, app).await;
        h.clock.advance_secs(60);
    }
    bob_with_tokens(&h, &bobs_app).await;
    bob_with_tokens(&h, &mail).await;

    let page = h.get(APPS, Some(&mut alice)).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    // Two apps, the most recently approved first; three grants, each with its scopes.
    let calendar_at = html.find(">Calendar<").expect("Calendar listed");
    let mail_at = html.find(">Mail<").expect("Mail listed");
    assert!(calendar_at < mail_at);
    assert_eq!(html.matches("<section class=\"app\"").count(), 2);
    assert_eq!(html.matches("data-state=\"live\"").count(), 3);
    for grant in live_grants(&h, USERNAME).await {
        assert!(html.contains(&grant), "{grant} missing");
    }
    assert!(html.contains("api refresh_token"));
    assert!(html.contains("First issued") && html.contains("last used"));
    assert!(!html.contains("Only Bob uses this"));
    for grant in live_grants(&h, BOB).await {
        assert!(!html.contains(&grant), "Bob's {grant} shown to Alice");
    }
}

async fn a_grant_is_revoked_from_the_apps_page_only_with_the_csrf_token_and_only_the_users_own(
    store: TestStore,
) {
    let h = Harness::on(store).await;
    let TwoAppsAndBob {
        mail,
        mut alice,
        at_mail,
        at_calendar,
        bob,
        ..
    } = two_apps_and_bob(&h).await;
    let bobs_grant = live_grants(&h, BOB).await.remove(0);
    let alice_id = user_id(&h, USERNAME).await;
    let mail_grant = h
        .authority
        .operator()
        .grants_of_user(&alice_id)
        .await
        .unwrap()
        .into_iter()
        .find(|g| g.client_id == mail.id)
        .unwrap()
        .id;
    let revoke = |grant: &str| format!("/services/oauth2/apps/grants/{grant}/revoke");
    let csrf = csrf_of(&h.get(APPS, Some(&mut alice)).await);

    // Without the page's CSRF token, or with another: refused, nothing revoked.
    for body in [String::new(), form(&[("csrf_token", "00")])] {
        let reply = h
            .post_form(&revoke(&mail_grant), &body, Some(&mut alice))
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
    }
    // Signed out: sent to the login, nothing revoked.
    let reply = h
        .post_form(
            &revoke(&mail_grant),
            &form(&[("csrf_token", &csrf)]),
            Some(&mut Browser::default()),
        )
        .await;
    assert_eq!(reply.location(), "/services/oauth2/apps/login");
    assert_eq!(live_grants(&h, USERNAME).await.len(), 2);

    // Bob's grant, or no grant at all: 404, and Bob's stays live.
    for grant in [bobs_grant.as_str(), "nothing-of-the-kind"] {
        let reply = h
            .post_form(
                &revoke(grant),
                &form(&[("csrf_token", &csrf)]),
                Some(&mut alice),
            )
            .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{grant}");
        assert!(reply.text().contains("Nothing was revoked"));
    }
    assert!(h.api_works(&bob.access).await);
    assert_eq!(live_grants(&h, BOB).await, [bobs_grant]);

    let reply = h
        .post_form(
            &revoke(&mail_grant),
            &form(&[("csrf_token", &csrf)]),
            Some(&mut alice),
        )
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), APPS);
    assert!(!h.api_works(&at_mail.access).await);
    assert!(!refresh_works(&h, &mail, &at_mail.refresh).await);
    assert!(h.api_works(&at_calendar.access).await);
    let page = h.get(APPS, Some(&mut alice)).await.text();
    assert_eq!(page.matches("data-state=\"revoked\"").count(), 1);
    assert!(!page.contains(&revoke(&mail_grant)));

    // Audited: the grant's `revoked` event, the user as who did it.
    let revoked = h.events_named("revoked").await;
    assert_eq!(revoked.len(), 1);
    assert_eq!(
        revoked[0].event.grant_id.as_deref(),
        Some(mail_grant.as_str())
    );
    assert_eq!(revoked[0].event.user_id.as_deref(), Some(alice_id.as_str()));
    assert_eq!(revoked[0].event.detail, "by the user, connected apps page");
}

async fn log_out_everywhere_from_the_apps_page_revokes_every_grant_of_the_user_once(
    store: TestStore,
) {
    let h = Harness::on(store).await;
    let fixture = two_apps_and_bob(&h).await;
    let mut alice = fixture.alice.clone();
    let path = "/services/oauth2/apps/logout-everywhere";

    let page = h.get(APPS, Some(&mut alice)).await;
    assert!(page.text().contains(path));
    let confirm = h.get(path, Some(&mut alice)).await;
    assert!(confirm.text().contains("<strong>2</strong> now"));
    let csrf = csrf_of(&confirm);
    // A GET changes nothing; a POST without the token is refused; signed out, the login.
    assert_eq!(live_grants(&h, USERNAME).await.len(), 2);
    let refused = h.post_form(path, "", Some(&mut alice)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let signed_out = h
        .post_form(
            path,
            &form(&[("csrf_token", &csrf)]),
            Some(&mut Browser::default()),
        )
        .await;
    assert_eq!(signed_out.location(), "/services/oauth2/apps/login");
    assert!(h.get(path, None).await.location().ends_with("/login"));
    assert_eq!(live_grants(&h, USERNAME).await.len(), 2);

    let done = h
        .post_form(path, &form(&[("csrf_token", &csrf)]), Some(&mut alice))
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    assert!(done.text().contains("Revoked 2 grants"));
    fixture.assert_only_alice_logged_out(&h).await;

    let alice_id = user_id(&h, USERNAME).await;
    let action = h.events_named("user_grants_revoked").await;
    assert_eq!(action.len(), 1);
    assert_eq!(action[0].event.user_id.as_deref(), Some(alice_id.as_str()));
    assert_eq!(
        action[0].event.detail,
        "2 grants, by the user, connected apps page"
    );
    let revoked = h.events_named("revoked").await;
    assert_eq!(revoked.len(), 2);
    assert!(revoked
        .iter()
        .all(|e| e.event.detail == "log out everywhere, by the user, connected apps page"));
    // The browser session stays: the page lists the apps, each revoked.
    let page = h.get(APPS, Some(&mut alice)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.text().matches("data-state=\"revoked\"").count(), 2);
    assert!(!page.text().contains(path));
}

on_sqlite_and_postgres!(
    log_out_everywhere_from_the_console_fails_every_token_of_the_user_and_no_one_elses,
    the_apps_page_sends_a_signed_out_browser_to_the_login_and_back,
    the_apps_page_lists_the_users_grants_by_app_and_no_one_elses,
    a_grant_is_revoked_from_the_apps_page_only_with_the_csrf_token_and_only_the_users_own,
    log_out_everywhere_from_the_apps_page_revokes_every_grant_of_the_user_once,
);
