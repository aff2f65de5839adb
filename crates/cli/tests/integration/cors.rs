//! A browser app on another origin, in a real browser: `tessera serve --cors-origin
//! http://localhost:PORT`, and a single-page app (`crates/cli/tests/browser/spa/index.html`,
//! plain HTML and JavaScript) served by this test on PORT. In headless Chromium the app runs the
//! Web Server flow with PKCE as a public client — this test's script logs in and allows access
//! on Tessera's pages — then exchanges the code, calls the REST API and refreshes twice with
//! `fetch`, and shows what happened in the page, which the test reads.
//!
//! The same app from `http://127.0.0.1:PORT` (another origin, not on the list, from the same
//! little server) must fail at its first `fetch`. And on a server without
//! `--cors-oauth-endpoints`, the app's token call must fail while its API call, with a token
//! minted by `tessera admin`, works.
//!
//! Like pages.rs, the test is skipped loudly without Chromium unless `TESSERA_TEST_BROWSER` is
//! set.

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

const USERNAME: &str = "ada@example.com";
const PASSWORD: &str = "ada's password";

/// Serves the app's one page on every path of `listener`, for as long as the test runs.
fn serve_the_app(listener: TcpListener) {
    let page =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/spa/index.html"))
            .unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let page = page.clone();
            std::thread::spawn(move || answer(stream, &page));
        }
    });
}

/// Reads one request's head and answers it with `page`, closing the connection.
fn answer(mut stream: TcpStream, page: &[u8]) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|read| read > 0) {
        if line == "\r\n" || line == "\n" {
            break;
        }
        line.clear();
    }
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        page.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(page);
}

/// A user, and a public client whose redirect URIs are the app's callback on both origins.
fn user_and_spa_client(server: &common::Server, port: u16) -> String {
    common::create_user(common::tessera(server.dir.path()), USERNAME, PASSWORD);
    let localhost = format!("http://localhost:{port}/callback");
    let loopback_ip = format!("http://127.0.0.1:{port}/callback");
    let client = server.admin(
        &[
            "client",
            "create",
            "--public",
            "--name",
            "Browser app",
            "--redirect-uri",
            &localhost,
            "--redirect-uri",
            &loopback_ip,
        ],
        None,
        &[],
    );
    client["client_id"].as_str().unwrap().to_owned()
}

/// The app's start URL on `origin`, for the server at `issuer`.
fn app_url(origin: &str, issuer: &str, client_id: &str, fallback_token: Option<&str>) -> String {
    let mut url = url::Url::parse(origin).unwrap();
    url.query_pairs_mut()
        .append_pair("issuer", issuer)
        .append_pair("client_id", client_id);
    if let Some(token) = fallback_token {
        url.query_pairs_mut().append_pair("fallback_token", token);
    }
    url.into()
}

/// Runs the app once per `(name, url)` in Chromium; each run's page, by name.
fn run_in_chromium(chromium: &Path, runs: &[(&str, String)]) -> Vec<(String, Value)> {
    let scripts = common::browser::scripts();
    let runs: Vec<Value> = runs
        .iter()
        .map(|(name, url)| serde_json::json!({ "name": name, "url": url }))
        .collect();
    let mut browse = Command::new("node");
    browse
        .arg("cors.mjs")
        .current_dir(&scripts)
        .env("CHROMIUM", chromium)
        .env("RUNS", Value::from(runs).to_string())
        .env("USERNAME", USERNAME)
        .env("PASSWORD", PASSWORD);
    let outcomes: Vec<Value> =
        serde_json::from_slice(&common::browser::succeed(browse, "cors.mjs")).unwrap();
    outcomes
        .into_iter()
        .map(|outcome| {
            (
                outcome["name"].as_str().unwrap().to_owned(),
                outcome["page"].clone(),
            )
        })
        .collect()
}

/// The steps a page shows, as (step, ok) pairs.
fn steps(page: &Value) -> Vec<(String, bool)> {
    page["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps: {page}"))
        .iter()
        .map(|step| {
            (
                step["step"].as_str().unwrap().to_owned(),
                step["ok"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn owned(steps: &[(&str, bool)]) -> Vec<(String, bool)> {
    steps.iter().map(|(s, ok)| ((*s).to_owned(), *ok)).collect()
}

#[test]
fn a_browser_app_on_an_allowed_origin_logs_in_calls_the_api_and_rotates_and_no_other_origin_can() {
    let _lane = common::lane(common::lanes::SHARED);
    let Some(chromium) = common::browser::chromium_or_skip("the CORS browser app") else {
        return;
    };
    // The app's port first: the server's allowlist names it.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Chromium may try `localhost` on ::1 first; serve there too where it can be had.
    if let Ok(ipv6) = TcpListener::bind(("::1", port)) {
        serve_the_app(ipv6);
    }
    serve_the_app(listener);
    let allowed = format!("http://localhost:{port}");
    let other = format!("http://127.0.0.1:{port}");

    let open = common::Server::start(&["--cors-origin", &allowed, "--cors-oauth-endpoints"], &[]);
    let client_id = user_and_spa_client(&open, port);
    let runs = run_in_chromium(
        &chromium,
        &[
            ("allowed", app_url(&allowed, &open.base, &client_id, None)),
            ("other", app_url(&other, &open.base, &client_id, None)),
        ],
    );
    let page = |name: &str| {
        &runs
            .iter()
            .find(|(run, _)| run == name)
            .unwrap_or_else(|| panic!("no run {name}: {runs:?}"))
            .1
    };
    let allowed_page = page("allowed");
    assert_eq!(allowed_page["origin"], allowed.as_str(), "{allowed_page}");
    assert_eq!(
        steps(allowed_page),
        owned(&[
            ("authorization_code", true),
            ("api", true),
            ("refresh_token", true),
            ("api_after_refresh_1", true),
            ("refresh_token", true),
            ("api_after_refresh_2", true),
            ("rotation", true),
        ]),
        "{allowed_page}"
    );
    assert_eq!(allowed_page["steps"][6]["refresh_tokens"], 3);
    // Not on the list: the very first fetch, the code exchange, is refused.
    let other_page = page("other");
    assert_eq!(other_page["origin"], other.as_str(), "{other_page}");
    assert_eq!(
        steps(other_page),
        owned(&[("authorization_code", false)]),
        "{other_page}"
    );
    assert!(
        other_page["steps"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("Failed to fetch")),
        "refused by the browser, not answered: {other_page}"
    );

    // Without --cors-oauth-endpoints the token endpoint is closed to the browser, the API not.
    let api_only = common::Server::start(&["--cors-origin", &allowed], &[]);
    let client_id = user_and_spa_client(&api_only, port);
    let minted = api_only.admin(
        &[
            "token",
            "mint",
            "--client-id",
            &client_id,
            "--username",
            USERNAME,
            "--scope",
            "api",
        ],
        None,
        &[],
    );
    let fallback = minted["access_token"].as_str().unwrap();
    let runs = run_in_chromium(
        &chromium,
        &[(
            "api_only",
            app_url(&allowed, &api_only.base, &client_id, Some(fallback)),
        )],
    );
    let api_only_page = &runs[0].1;
    assert_eq!(
        steps(api_only_page),
        owned(&[
            ("authorization_code", false),
            ("api_with_fallback_token", true)
        ]),
        "{api_only_page}"
    );
}
