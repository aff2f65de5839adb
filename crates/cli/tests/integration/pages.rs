//! The login, consent and error pages in a real browser, as the first hour with Tessera meets
//! them: `tessera serve --dev`, its walkthrough's URL opened in headless Chromium, the demo user
//! logged in, then the same URL with a redirect URI the client has not registered. On a desktop
//! window (1000×800) and on a phone (375×800) every page must fit the window's width, with no
//! horizontal scrollbar; and each is saved as a PNG for a person to look at, in
//! `target/screenshots/` (`login-1000.png`, `consent-375.png`, `error-375.png`, …), or in
//! `TESSERA_SCREENSHOTS_DIR` when that is set.
//!
//! The browser is Debian's `chromium` (`/usr/bin/chromium`, or `TESSERA_CHROMIUM`), driven by
//! playwright-core, which this test installs from the npm registry with `npm ci` into
//! `crates/cli/tests/browser/node_modules`, and runs with the machine's Node.js. Without Chromium
//! the test is skipped with a loud message, unless `TESSERA_TEST_BROWSER` is set: `.ci/run` sets
//! it (and installs Chromium), so in CI a missing browser fails the test.

use crate::common;

use std::process::Command;

use common::browser::VIEWPORTS;
use serde_json::Value;

/// A redirect URI the demo client has not registered, longer than a phone is wide and with
/// nowhere to break a line: the error page shows it, and it must wrap.
const UNREGISTERED_REDIRECT_URI: &str =
    "https://app.example.com/oauth2/callback/from-a-path-much-longer-than-a-phone-screen-is-wide?next=/dashboard";

/// The walkthrough's authorization URL, as `--dev` printed it.
fn walkthrough_url(printed: &str) -> String {
    printed
        .lines()
        .map(str::trim)
        .find(|line| line.contains("/services/oauth2/authorize?"))
        .unwrap_or_else(|| panic!("no authorization URL in the walkthrough:\n{printed}"))
        .to_owned()
}

/// `url` asking for `redirect_uri` instead of its own.
fn with_redirect_uri(url: &str, redirect_uri: &str) -> String {
    let mut url = url::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "redirect_uri" {
                redirect_uri.into()
            } else {
                v
            };
            (k.into_owned(), v.into_owned())
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    url.into()
}

#[test]
fn login_consent_and_error_pages_fit_a_desktop_and_a_phone_in_chromium() {
    let _lane = common::lane(common::lanes::SHARED);
    let Some(chromium) = common::browser::chromium_or_skip("the pages") else {
        return;
    };
    let screenshots = common::browser::screenshots_dir();

    let server = common::Server::start(&["--dev"], &[]);
    // The server binds its port before it opens the database and seeds the demo data, so the
    // walkthrough may come a moment after the port answers.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !server.printed().contains("/services/oauth2/authorize?")
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let authorize = walkthrough_url(&server.printed());
    assert!(authorize.starts_with(&server.base), "{authorize}");

    let scripts = common::browser::scripts();

    let mut browse = Command::new("node");
    browse
        .arg("pages.mjs")
        .current_dir(&scripts)
        .env("CHROMIUM", &chromium)
        .env("VIEWPORTS", common::browser::viewports_json())
        .env("AUTHORIZE_URL", &authorize)
        .env(
            "REFUSED_URL",
            with_redirect_uri(&authorize, UNREGISTERED_REDIRECT_URI),
        )
        .env("USERNAME", "demo@example.com")
        .env("PASSWORD", "tessera-demo")
        .env("SCREENSHOTS_DIR", &screenshots);
    let measured: Vec<Value> =
        serde_json::from_slice(&common::browser::succeed(browse, "pages.mjs")).unwrap();

    let headings = [
        ("login", "Log in"),
        ("consent", "Allow access?"),
        ("error", "This request cannot be completed"),
    ];
    assert_eq!(
        measured.len(),
        VIEWPORTS.len() * headings.len(),
        "{measured:?}"
    );
    for (width, _, _) in VIEWPORTS {
        for (page, heading) in headings {
            let seen = measured
                .iter()
                .find(|m| m["page"] == page && m["width"] == width)
                .unwrap_or_else(|| panic!("{page} at {width} px was not measured"));
            let at = format!("{page} at {width} px: {seen}");
            assert_eq!(seen["heading"], heading, "{at}");
            // A phone would zoom out to fit a page wider than itself, and then nothing would
            // overflow: the window must be as wide as asked.
            assert_eq!(seen["innerWidth"], width, "{at}");
            let fits = |key: &str| seen[key].as_u64().unwrap() <= width;
            assert!(fits("documentScrollWidth"), "scrolls sideways: {at}");
            assert!(fits("bodyScrollWidth"), "scrolls sideways: {at}");
            let png = std::fs::read(seen["screenshot"].as_str().unwrap()).unwrap();
            assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{at}: not a PNG");
        }
    }
    eprintln!("screenshots: {}", screenshots.display());
}
