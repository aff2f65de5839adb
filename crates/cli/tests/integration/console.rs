//! The admin console in a real browser: `tessera serve`, an administrator created with the CLI,
//! who logs in to `/admin` in headless Chromium and creates a rotating client there; this test
//! then runs two token families of a user over HTTP (the login and consent forms, the code
//! exchange, refreshes): one through a rotation, a replay inside the retry window, another
//! rotation and the reuse of its first token; the other left live. Back in the browser, the
//! first family's timeline must show those events in time order, and revoking the second from
//! its timeline must make the REST API refuse its access token and the token endpoint its
//! refresh token. A user without the admin role is refused with 403.
//!
//! Screenshots of each console page go to `target/screenshots/` (`admin-clients.png`,
//! `admin-timeline.png`, …) or `TESSERA_SCREENSHOTS_DIR`, as in `pages.rs`; like it, the test
//! is skipped loudly without Chromium unless `TESSERA_TEST_BROWSER` is set. Another test looks
//! at every page with a table or the timeline on a phone (375 px) and a desktop (1000 px).

use crate::common;

use std::time::Duration;

use serde_json::Value;

const ADMIN: &str = "root@example.com";
const ADMIN_PASSWORD: &str = "console admin password";
const USERNAME: &str = "ada@example.com";
const PASSWORD: &str = "ada's password";
const REDIRECT: &str = "http://127.0.0.1:9/cb";
/// Apart enough that the timeline's time axis, not only its order, tells the steps apart.
const PAUSE: Duration = Duration::from_millis(300);

struct Family {
    grant_id: String,
    access_token: String,
    refresh_token: String,
}

struct TokenClient {
    http: reqwest::Client,
    base: String,
    id: String,
    secret: String,
}

impl TokenClient {
    async fn token(&self, pairs: &[(&str, &str)]) -> (u16, Value) {
        let mut form = vec![
            ("client_id", self.id.as_str()),
            ("client_secret", &self.secret),
        ];
        form.extend_from_slice(pairs);
        let response = self
            .http
            .post(format!("{}/services/oauth2/token", self.base))
            .form(&form)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    async fn refresh(&self, refresh_token: &str) -> (u16, Value) {
        self.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .await
    }

    /// A new family: the login and consent forms, then the code exchange.
    async fn new_family(&self) -> Family {
        let url = format!(
            "{}/services/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}\
             &scope=api%20refresh_token",
            self.base,
            self.id,
            url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
        );
        let location = common::authorize_in_browser(&self.base, &url, USERNAME, PASSWORD).await;
        let code = common::code_in(&location);
        let (status, tokens) = self
            .token(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
            ])
            .await;
        assert_eq!(status, 200, "code exchange: {tokens}");
        // The grant id leads the refresh token (docs/security.md, "Token formats").
        let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
        Family {
            grant_id: refresh_token[..24].to_owned(),
            access_token: tokens["access_token"].as_str().unwrap().to_owned(),
            refresh_token,
        }
    }

    async fn api_status(&self, access_token: &str) -> u16 {
        common::api_status(&self.base, access_token).await
    }
}

/// Runs one step of `console.mjs` and returns what it printed.
fn console_step(
    step: &str,
    base: &str,
    state_file: &std::path::Path,
    env: &[(&str, &str)],
) -> Value {
    let chromium = common::browser::chromium_or_skip("the admin console").unwrap();
    let state_file = state_file.to_str().unwrap();
    let mut all = vec![
        ("BASE_URL", base),
        ("STATE_FILE", state_file),
        ("STEP", step),
    ];
    all.extend_from_slice(env);
    common::browser::run_script(&chromium, "console.mjs", &all)
}

fn assert_png(path: &Value) {
    let png = std::fs::read(path.as_str().unwrap()).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{path}: not a PNG");
}

/// The administrator ADMIN and the user USERNAME, made with the CLI; returns the user's id.
fn admin_and_user(server: &common::Server) -> String {
    let admin_args = [
        "user",
        "create",
        "--username",
        ADMIN,
        "--password-stdin",
        "--admin",
    ];
    assert_eq!(
        server.admin(&admin_args, Some(ADMIN_PASSWORD), &[])["admin"],
        true
    );
    let user = server.admin(
        &["user", "create", "--username", USERNAME, "--password-stdin"],
        Some(PASSWORD),
        &[],
    );
    assert_eq!(user["admin"], false);
    user["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_follows_a_token_family_and_revokes_it_from_the_console_in_chromium() {
    let _lane = common::lane(common::lanes::SHARED);
    if common::browser::chromium_or_skip("the admin console").is_none() {
        return;
    }
    let server = common::Server::start(&[], &[]);
    let base = server.base.clone();
    let user_id = admin_and_user(&server);
    let state_file = server.dir.path().join("console-session.json");

    // The console: log in, create a rotating client.
    let created = {
        let (base, state_file) = (base.clone(), state_file.clone());
        tokio::task::spawn_blocking(move || {
            console_step(
                "create",
                &base,
                &state_file,
                &[
                    ("ADMIN_USERNAME", ADMIN),
                    ("ADMIN_PASSWORD", ADMIN_PASSWORD),
                    ("REDIRECT_URI", REDIRECT),
                ],
            )
        })
        .await
        .unwrap()
    };
    assert_eq!(created["redirected_to"], "/admin/login", "{created}");
    assert_eq!(created["login_status"], 303, "{created}");
    let client = TokenClient {
        http: reqwest::Client::new(),
        base: base.clone(),
        id: created["client_id"].as_str().unwrap().to_owned(),
        secret: created["client_secret"].as_str().unwrap().to_owned(),
    };
    let shown = server.admin(&["client", "show", &client.id], None, &[]);
    assert_eq!(shown["name"], "Console App");
    assert_eq!(shown["rotate_refresh_tokens"], true);

    // A family through a rotation, a replay inside the retry window, and a reuse.
    let reused = client.new_family().await;
    tokio::time::sleep(PAUSE).await;
    let (status, rotated) = client.refresh(&reused.refresh_token).await;
    assert_eq!(status, 200, "{rotated}");
    let second = rotated["refresh_token"].as_str().unwrap().to_owned();
    tokio::time::sleep(PAUSE).await;
    let (status, replayed) = client.refresh(&reused.refresh_token).await;
    assert_eq!(status, 200, "a replay inside the window: {replayed}");
    assert_eq!(replayed["refresh_token"], second.as_str());
    tokio::time::sleep(PAUSE).await;
    let (status, third) = client.refresh(&second).await;
    assert_eq!(status, 200, "{third}");
    tokio::time::sleep(PAUSE).await;
    let (status, refused) = client.refresh(&reused.refresh_token).await;
    assert_eq!(status, 400, "a reuse: {refused}");

    // Another family, left live, to revoke from the console.
    let live = client.new_family().await;
    assert_eq!(client.api_status(&live.access_token).await, 200);

    let seen = {
        let (base, state_file) = (base.clone(), state_file.clone());
        let (inspect, revoke) = (reused.grant_id.clone(), live.grant_id.clone());
        tokio::task::spawn_blocking(move || {
            console_step(
                "inspect",
                &base,
                &state_file,
                &[
                    ("USER_ID", &user_id),
                    ("GRANT_TO_INSPECT", &inspect),
                    ("GRANT_TO_REVOKE", &revoke),
                    ("NON_ADMIN_USERNAME", USERNAME),
                    ("NON_ADMIN_PASSWORD", PASSWORD),
                ],
            )
        })
        .await
        .unwrap()
    };

    // The timeline: every event of the family, in time order, left to right, each with its
    // hover text.
    let markers = seen["inspected"].as_array().unwrap();
    let kinds: Vec<&str> = markers
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    let expected = [
        "issued",
        "rotated",
        "retry_replayed",
        "rotated",
        "reuse_detected",
    ];
    let mut rest = kinds.iter();
    for kind in expected {
        assert!(
            rest.any(|k| *k == kind),
            "{kind} missing or out of order in {kinds:?}"
        );
    }
    for pair in markers.windows(2) {
        assert!(pair[0]["at"].as_i64() <= pair[1]["at"].as_i64(), "{pair:?}");
        assert!(pair[0]["x"].as_f64() < pair[1]["x"].as_f64(), "{pair:?}");
    }
    for marker in markers {
        let title = marker["title"].as_str().unwrap();
        assert!(
            title.starts_with(marker["kind"].as_str().unwrap()),
            "{title}"
        );
        assert!(title.contains(USERNAME), "who: {title}");
        assert!(title.contains("Console App"), "which client: {title}");
    }

    // Revoked from the console: the API and the token endpoint refuse the family's tokens.
    let revoked: Vec<&str> = seen["revoked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert_eq!(revoked.first(), Some(&"issued"), "{revoked:?}");
    assert_eq!(revoked.last(), Some(&"revoked"), "{revoked:?}");
    assert_eq!(client.api_status(&live.access_token).await, 401);
    let (status, body) = client.refresh(&live.refresh_token).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let events = seen["event_kinds"].as_array().unwrap();
    assert_eq!(
        events.first().and_then(Value::as_str),
        Some("grant_revoked_by_admin"),
        "newest first"
    );
    assert!(events.iter().any(|k| k == "client_created"), "{events:?}");

    // Someone without the admin role.
    assert_eq!(seen["non_admin_status"], 403, "{seen}");

    for (_, path) in created["screenshots"].as_object().unwrap() {
        assert_png(path);
    }
    for (_, path) in seen["screenshots"].as_object().unwrap() {
        assert_png(path);
    }
    eprintln!(
        "screenshots: {}",
        common::browser::screenshots_dir().display()
    );
}

/// On a phone (375 px) the clients and events tables ran past the card's edge, the timeline's
/// labels shrank to about 4 px, and the events table showed ids where a person looks for names.
/// At 375 and 1000 px in Chromium, every console page with a table or the timeline: nothing
/// wider than the window, each table in a box that scrolls sideways inside the card, every
/// timeline label drawn at 10 px or more, and the events table naming the client and the user
/// (their ids on hover). Screenshots: `admin-clients-375.png`, `admin-timeline-1000.png`, …
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_phone_no_console_table_runs_past_the_card_and_the_timeline_stays_legible() {
    let _lane = common::lane(common::lanes::SHARED);
    if common::browser::chromium_or_skip("the admin console").is_none() {
        return;
    }
    let server = common::Server::start(&[], &[]);
    let user_id = admin_and_user(&server);
    let created = server.admin(
        &[
            "client",
            "create",
            "--name",
            "Phone App",
            "--redirect-uri",
            REDIRECT,
            "--rotate-refresh-tokens",
        ],
        None,
        &[],
    );
    let client = TokenClient {
        http: reqwest::Client::new(),
        base: server.base.clone(),
        id: created["client_id"].as_str().unwrap().to_owned(),
        secret: created["client_secret"].as_str().unwrap().to_owned(),
    };
    let family = client.new_family().await;
    let (status, rotated) = client.refresh(&family.refresh_token).await;
    assert_eq!(status, 200, "{rotated}");

    let seen = {
        let (base, state_file) = (server.base.clone(), server.dir.path().join("unused.json"));
        let grant_id = family.grant_id.clone();
        let user_id = user_id.clone();
        tokio::task::spawn_blocking(move || {
            console_step(
                "fit",
                &base,
                &state_file,
                &[
                    ("VIEWPORTS", &common::browser::viewports_json()),
                    ("ADMIN_USERNAME", ADMIN),
                    ("ADMIN_PASSWORD", ADMIN_PASSWORD),
                    ("USER_ID", &user_id),
                    ("GRANT_ID", &grant_id),
                ],
            )
        })
        .await
        .unwrap()
    };
    let pages = seen["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 2 * 5, "{seen}");
    for page in pages {
        let width = page["width"].as_f64().unwrap();
        let at = format!("{} at {width} px", page["page"]);
        assert_eq!(page["innerWidth"].as_f64(), Some(width), "{at}");
        assert!(
            page["documentScrollWidth"].as_f64().unwrap() <= width,
            "{at} scrolls sideways: {page}"
        );
        let card_right = page["cardRight"].as_f64().unwrap();
        for table in page["tables"].as_array().unwrap() {
            assert_eq!(table["boxOverflowX"], "auto", "{at}: {table}");
            assert!(
                table["boxRight"].as_f64().unwrap() <= card_right + 0.5,
                "{at}: a table's box runs past the card: {table}"
            );
        }
        if page["page"] == "timeline" {
            let label = page["labelPx"].as_f64().unwrap();
            assert!(label >= 10.0, "{at}: a label drawn at {label:.1} px");
        }
        assert_png(&page["screenshot"]);
    }
    // On the phone, the clients table is wider than its box: it is the box that scrolls.
    let phone_clients = pages
        .iter()
        .find(|p| p["page"] == "clients" && p["width"] == 375)
        .unwrap();
    let table = &phone_clients["tables"][0];
    assert!(
        table["tableWidth"].as_f64() > table["boxClientWidth"].as_f64(),
        "{table}"
    );
    // The events table names the client and the user, with their ids on hover.
    for width in [375, 1000] {
        let events = pages
            .iter()
            .find(|p| p["page"] == "events" && p["width"] == width)
            .unwrap()["events"]
            .as_array()
            .unwrap();
        let issued = events
            .iter()
            .find(|e| e["kind"] == "issued")
            .unwrap_or_else(|| panic!("no issued event at {width} px: {events:?}"));
        assert_eq!(issued["client"]["text"], "Phone App", "{issued}");
        assert_eq!(issued["client"]["title"], client.id.as_str(), "{issued}");
        assert_eq!(issued["user"]["text"], USERNAME, "{issued}");
        assert_eq!(issued["user"]["title"], user_id.as_str(), "{issued}");
    }
}
