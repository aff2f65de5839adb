//! The `/learn` playground in a real browser: `tessera serve --dev` (the playground is on by
//! default with it), its clients' timings shortened with the CLI so the test waits seconds, not
//! minutes; then headless Chromium takes every step once, logging in as the demo user through
//! the real login and consent pages, and every mistake. The server's view must follow: after a
//! rotation the new generation is current and the old one in the open retry window; a replay
//! inside it gets the same pair; one after it revokes the family. On a phone (375 px) nothing is
//! wider than the window. Screenshots: `learn.png` (desktop) and `learn-375.png`, in
//! `target/screenshots/` or `TESSERA_SCREENSHOTS_DIR`. Skipped loudly without Chromium unless
//! `TESSERA_TEST_BROWSER` is set.

use crate::common;

use serde_json::Value;

const DEMO_USERNAME: &str = "demo@example.com";
const DEMO_PASSWORD: &str = "tessera-demo";
/// The playground client's access-token lifetime, shortened for the test: long enough to watch
/// its countdown tick and still call the API with it.
const ACCESS_TTL: &str = "5s";
/// The playground client's retry window, shortened for the test.
const RETRY_WINDOW: &str = "3s";
/// A little more than [`RETRY_WINDOW`]: the browser's wait for it to close.
const PAST_RETRY_WINDOW_MS: &str = "3500";

fn client_id(server: &common::Server, name: &str) -> String {
    let clients = server.admin(&["client", "list"], None, &[]);
    clients
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no client {name:?}: {clients}"))["client_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn states(view: &Value) -> Vec<String> {
    view["generations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["state"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_and_mistake_of_the_playground_in_chromium() {
    let _lane = common::lane(common::lanes::SHARED);
    let Some(chromium) = common::browser::chromium_or_skip("the /learn playground") else {
        return;
    };
    let server = common::Server::start(&["--dev"], &[]);
    // The port accepts as soon as it is bound; the seeding of the demo data and the
    // playground's clients comes before the first answer.
    let mut answered = false;
    for _ in 0..100 {
        let page = reqwest::get(format!("{}/learn", server.base)).await;
        if page.is_ok_and(|p| p.status() == 200) {
            answered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(answered, "/learn never answered 200");
    let main = client_id(&server, "Tessera Playground");
    server.admin(
        &[
            "client",
            "update",
            &main,
            "--access-token-ttl",
            ACCESS_TTL,
            "--refresh-retry-window",
            RETRY_WINDOW,
        ],
        None,
        &[],
    );
    let expiring = client_id(&server, "Tessera Playground (expiring refresh tokens)");
    server.admin(
        &[
            "client",
            "update",
            &expiring,
            "--refresh-token-policy",
            "specific_lifetime:2:seconds",
        ],
        None,
        &[],
    );
    // The server learns of the changes through its change feed.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    let base = server.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        common::browser::run_script(
            &chromium,
            "learn.mjs",
            &[
                ("BASE_URL", &base),
                ("USERNAME", DEMO_USERNAME),
                ("PASSWORD", DEMO_PASSWORD),
                ("WAIT_MS", PAST_RETRY_WINDOW_MS),
            ],
        )
    })
    .await
    .unwrap();
    let seen = &out["seen"];
    assert_eq!(out["problems"], Value::Array(vec![]), "{out}");

    assert_eq!(seen["start"]["family"], Value::Null);
    assert_eq!(seen["authorize"]["step"], "authorize");
    let exchange = &seen["exchange"];
    assert_eq!(exchange["statuses"][0], 200, "{exchange}");
    assert_eq!(states(exchange), ["current"]);
    assert!(
        exchange["claims"].as_str().unwrap().contains("\"sub\""),
        "openid's ID token is shown: {exchange}"
    );
    let countdown = seen["countdown"].as_array().unwrap();
    assert!(
        countdown[0].as_str().unwrap().ends_with("s left") && countdown[0] != countdown[1],
        "the countdown script does not run: {countdown:?}"
    );
    assert_eq!(seen["api"]["statuses"][0], 200, "{}", seen["api"]);
    assert_eq!(seen["expire"]["statuses"][0], 401, "{}", seen["expire"]);

    let refresh = &seen["refresh"];
    assert_eq!(refresh["statuses"][0], 200, "{refresh}");
    assert_eq!(states(refresh), ["retry-window", "current"], "{refresh}");
    assert_eq!(refresh["window"], "open");
    assert!(refresh["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k == "rotated"));

    let inside = &seen["replayInside"];
    assert_eq!(inside["statuses"][0], 200, "{inside}");
    assert!(
        inside["outcome"]
            .as_str()
            .unwrap()
            .contains("the same pair"),
        "{inside}"
    );
    assert_eq!(inside["family"], "live");

    let after = &seen["replayAfter"];
    assert_eq!(after["statuses"][0], 400, "{after}");
    assert_eq!(after["family"], "revoked");
    assert_eq!(states(after), ["revoked", "revoked"]);
    assert!(after["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k == "reuse_detected"));

    assert_eq!(seen["revoke"]["statuses"][0], 200, "{}", seen["revoke"]);

    let no_scope = &seen["mistakeScope"];
    assert_eq!(no_scope["statuses"][0], 200, "{no_scope}");
    assert!(!no_scope["response"]
        .as_str()
        .unwrap()
        .contains("refresh_token"));
    assert!(
        no_scope["lesson"]
            .as_str()
            .unwrap()
            .contains("log in again")
            || no_scope["lesson"].as_str().unwrap().contains("login again")
    );

    let expired = &seen["mistakeExpired"];
    assert_eq!(expired["step"], "refresh", "{expired}");
    assert_eq!(expired["statuses"][0], 400, "{expired}");
    assert!(expired["response"]
        .as_str()
        .unwrap()
        .contains("invalid_grant"));
    assert!(expired["lesson"].is_string());

    let storage = &seen["mistakeStorage"];
    assert!(
        storage["plain"].as_str().unwrap().contains("refresh_token"),
        "{storage}"
    );
    assert!(storage["sealed"]
        .as_str()
        .unwrap()
        .contains("xchacha20poly1305"));

    let keep = &seen["mistakeKeep"];
    assert_eq!(keep["statuses"][0], 400, "{keep}");
    assert_eq!(keep["family"], "revoked", "{keep}");
    assert!(keep["lesson"].is_string());

    let dpop = &seen["dpop"];
    assert_eq!(dpop["statuses"][0], 200, "{dpop}");
    assert!(
        dpop["response"]
            .as_str()
            .unwrap()
            .contains("\"token_type\": \"DPoP\""),
        "{dpop}"
    );
    assert!(
        dpop["clientKey"].is_string(),
        "the client holds a key: {dpop}"
    );
    assert!(
        dpop["binding"]
            .as_str()
            .unwrap()
            .contains("DPoP, refresh tokens"),
        "{dpop}"
    );

    let fit = &out["phoneFit"];
    assert_eq!(fit["innerWidth"], 375, "{fit}");
    assert!(
        fit["scrollWidth"].as_f64().unwrap() <= 375.0,
        "the page scrolls sideways on a phone: {fit}"
    );
    assert!(
        fit["widest"].as_f64().unwrap() <= 375.5,
        "something runs past a phone's window: {fit}"
    );
    for (_, file) in out["screenshots"].as_object().unwrap() {
        let bytes = std::fs::read(file.as_str().unwrap()).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{file}");
    }
}
