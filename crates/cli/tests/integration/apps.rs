//! The end user's connected-apps page in a real browser: `tessera serve`, a user with grants to
//! two apps (made through the login and consent forms and the code exchange), and another user
//! with a grant of their own. In headless Chromium the user opens `/services/oauth2/apps`
//! signed out, is sent to its login and back, sees their two apps and none of the other user's,
//! and revokes one grant with its button; the page then shows it revoked, the REST API refuses
//! its access token, and the other grant's still works.
//!
//! The screenshots (`apps-login.png`, `apps-before.png`, `apps-after.png`) go where
//! `pages.rs`'s do; like it, the test is skipped loudly without Chromium unless
//! `TESSERA_TEST_BROWSER` is set.

use crate::common;

use serde_json::Value;

const USERNAME: &str = "ada@example.com";
const PASSWORD: &str = "ada's password";
const OTHER: &str = "bo@example.com";
const REDIRECT: &str = "http://127.0.0.1:9/cb";

/// A grant: its id (the refresh token's first 24 characters, docs/security.md, "Token
/// formats") and its access token.
struct Granted {
    grant_id: String,
    access_token: String,
}

/// A confidential client named `name`; its id and secret.
fn client(server: &common::Server, name: &str) -> (String, String) {
    let created = server.admin(
        &[
            "client",
            "create",
            "--name",
            name,
            "--redirect-uri",
            REDIRECT,
        ],
        None,
        &[],
    );
    let field = |k: &str| created[k].as_str().unwrap().to_owned();
    (field("client_id"), field("client_secret"))
}

/// `username` approves the client in the login and consent forms; the code is exchanged.
async fn approve(
    base: &str,
    (id, secret): &(String, String),
    username: &str,
    password: &str,
) -> Granted {
    let url = format!(
        "{base}/services/oauth2/authorize?response_type=code&client_id={id}&redirect_uri={}\
         &scope=api%20refresh_token",
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    );
    let location = common::authorize_in_browser(base, &url, username, password).await;
    let code = common::code_in(&location);
    let response = reqwest::Client::new()
        .post(format!("{base}/services/oauth2/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let tokens: Value = response.json().await.unwrap();
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    Granted {
        grant_id: refresh_token[..24].to_owned(),
        access_token: tokens["access_token"].as_str().unwrap().to_owned(),
    }
}

/// The grants of the app named `name` in what `apps.mjs` read from the page.
fn grants_of<'a>(listed: &'a Value, name: &str) -> &'a Vec<Value> {
    listed
        .as_array()
        .unwrap()
        .iter()
        .find(|app| app["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed in {listed}"))["grants"]
        .as_array()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_sees_their_connected_apps_and_revokes_one_in_chromium() {
    let _lane = common::lane(common::lanes::SHARED);
    let Some(chromium) = common::browser::chromium_or_skip("the connected-apps page") else {
        return;
    };
    let server = common::Server::start(&[], &[]);
    let base = server.base.clone();
    for (username, password) in [(USERNAME, PASSWORD), (OTHER, "bo's password")] {
        server.admin(
            &["user", "create", "--username", username, "--password-stdin"],
            Some(password),
            &[],
        );
    }
    let mail = client(&server, "Mail");
    let calendar = client(&server, "Calendar");
    let others = client(&server, "Only Bo uses this");
    let at_mail = approve(&base, &mail, USERNAME, PASSWORD).await;
    let at_calendar = approve(&base, &calendar, USERNAME, PASSWORD).await;
    let bos = approve(&base, &others, OTHER, "bo's password").await;

    let seen = {
        let (base, grant) = (base.clone(), at_mail.grant_id.clone());
        tokio::task::spawn_blocking(move || {
            common::browser::run_script(
                &chromium,
                "apps.mjs",
                &[
                    ("BASE_URL", &base),
                    ("USERNAME", USERNAME),
                    ("PASSWORD", PASSWORD),
                    ("GRANT_TO_REVOKE", &grant),
                ],
            )
        })
        .await
        .unwrap()
    };

    // Signed out: the login, then back to the page.
    assert_eq!(
        seen["redirected_to"], "/services/oauth2/apps/login",
        "{seen}"
    );
    assert_eq!(seen["login_heading"], "Log in");
    assert_eq!(seen["after_login"], "/services/oauth2/apps", "{seen}");
    assert_eq!(seen["heading"], "Your connected apps");

    // Before: the user's two apps, one live grant each with a Revoke button; nothing of Bo's.
    let before = &seen["before"];
    assert_eq!(before.as_array().unwrap().len(), 2, "{before}");
    for (name, granted) in [("Mail", &at_mail), ("Calendar", &at_calendar)] {
        let grants = grants_of(before, name);
        assert_eq!(grants.len(), 1, "{before}");
        assert_eq!(grants[0]["id"], granted.grant_id.as_str());
        assert_eq!(grants[0]["state"], "live");
        assert_eq!(grants[0]["scope"], "api refresh_token");
        assert_eq!(grants[0]["revoke_button"], true);
    }
    assert!(!before.to_string().contains(&bos.grant_id));
    assert!(!before.to_string().contains("Only Bo"));

    // After: Mail's grant revoked (no button any more), Calendar's live.
    assert_eq!(seen["revoke_status"], 303, "{seen}");
    assert_eq!(seen["after_revoke"], "/services/oauth2/apps");
    let after = &seen["after"];
    let mail_grant = &grants_of(after, "Mail")[0];
    assert_eq!(mail_grant["state"], "revoked", "{after}");
    assert_eq!(mail_grant["revoke_button"], false);
    assert!(mail_grant["detail"].as_str().unwrap().contains("revoked"));
    assert_eq!(grants_of(after, "Calendar")[0]["state"], "live");
    assert_eq!(common::api_status(&base, &at_mail.access_token).await, 401);
    assert_eq!(
        common::api_status(&base, &at_calendar.access_token).await,
        200
    );
    assert_eq!(common::api_status(&base, &bos.access_token).await, 200);

    // The screenshots are pictures.
    for shot in ["login_screenshot", "before_screenshot", "after_screenshot"] {
        let png = std::fs::read(seen[shot].as_str().unwrap()).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{shot}: not a PNG");
    }
}
