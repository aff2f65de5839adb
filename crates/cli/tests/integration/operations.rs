//! What an operator sees of a running `tessera serve`: `/metrics` counting what happened (a
//! login, a rotation, a replay inside the window, a reuse, throttled requests), on the main
//! listener only when switched on, or on `metrics_listen`; and the access log, one line per
//! request with its route template and status and never a secret.

use crate::common;

use std::collections::HashMap;

use crate::common::Server;
use serde_json::Value;

const USERNAME: &str = "ada@example.com";
const PASSWORD: &str = "ada's password";

/// One sample of the exposition: its name, labels and value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

/// Parses the Prometheus text format strictly: every line is a `# HELP` / `# TYPE` comment, empty,
/// or `name{label="value",…} number`; anything else fails the test.
fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            number => number
                .parse()
                .unwrap_or_else(|_| panic!("not a number in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
                let labels = inner
                    .split("\",")
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (key, value) = pair
                            .split_once("=\"")
                            .unwrap_or_else(|| panic!("bad label in {line:?}"));
                        (key.to_owned(), value.trim_end_matches('"').to_owned())
                    })
                    .collect();
                (name, labels)
            }
            None => (series, HashMap::new()),
        };
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                && !name.starts_with(|c: char| c.is_ascii_digit()),
            "bad metric name in {line:?}"
        );
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    samples
}

/// The sum of the samples of `name` that carry every label of `labels` (0 when none does: a
/// counter never incremented is not rendered).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

/// A series' metric: its name without the suffixes of a histogram's series.
fn base_name(series: &str) -> &str {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| series.strip_suffix(suffix))
        .unwrap_or(series)
}

fn repository_file(path: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read_to_string(root.join(path)).unwrap()
}

/// The metrics the table of docs/operations.md documents (its rows start with the name).
fn documented_metrics() -> std::collections::HashSet<String> {
    repository_file("docs/operations.md")
        .lines()
        .filter_map(|line| line.strip_prefix("| `tessera_"))
        .filter_map(|rest| rest.split_once('`'))
        .map(|(name, _)| format!("tessera_{name}"))
        .collect()
}

/// The dashboard queries only documented metrics, and every documented one is on it.
#[test]
fn the_dashboard_shows_every_documented_metric_and_nothing_else() {
    let _lane = common::lane(common::lanes::SHARED);
    let documented = documented_metrics();
    assert!(documented.len() >= 12, "{documented:?}");
    let dashboard: Value =
        serde_json::from_str(&repository_file("docs/operations/grafana-dashboard.json")).unwrap();
    let mut queried = std::collections::HashSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(at) = rest.find("tessera_") {
                let name: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[at + name.len()..];
                queried.insert(base_name(&name).to_owned());
            }
        }
    }
    assert_eq!(queried, documented);
}

async fn scrape(url: &str) -> Vec<Sample> {
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    parse_exposition(&response.text().await.unwrap())
}

/// Logs in through the Web Server flow (login and consent pages: four requests) and exchanges
/// the code (one more). Returns the code and the token response.
async fn log_in(server: &Server, client_id: &str, secret: &str) -> (String, Value) {
    let redirect = "http://127.0.0.1:9/cb";
    let url = format!(
        "{}/services/oauth2/authorize?response_type=code&client_id={client_id}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb",
        server.base
    );
    let callback = common::authorize_in_browser(&server.base, &url, USERNAME, PASSWORD).await;
    let code = url::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let (status, tokens) = token(
        server,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", client_id),
            ("client_secret", secret),
            ("redirect_uri", redirect),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    (code, tokens)
}

async fn token(server: &Server, form: &[(&str, &str)]) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/services/oauth2/token", server.base))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn refresh(server: &Server, client_id: &str, secret: &str, token_: &str) -> (u16, Value) {
    token(
        server,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", client_id),
            ("client_secret", secret),
            ("refresh_token", token_),
        ],
    )
    .await
}

fn refresh_token(tokens: &Value) -> String {
    tokens["refresh_token"].as_str().unwrap().to_owned()
}

/// A login, a rotation, a replay inside the retry window, a reuse (which revokes the family),
/// a refresh of the revoked family and a flood of made-up refresh tokens until the source is
/// throttled: `/metrics` counts each exactly, and the access log has one line per request, with
/// its route template and status, and none of the secrets the requests carried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_happened_and_the_access_log_keeps_no_secret() {
    let _lane = common::lane(common::lanes::SHARED);
    let server = Server::start(
        &[
            "--credential-failures-per-address",
            "5/1m",
            "--trusted-proxies",
            "127.0.0.1",
            "--metrics-on-main-listener",
            "true",
        ],
        &[("TESSERA_LOG", "info")],
    );
    let (client_id, secret) = server.user_and_client(
        "1h",
        &["--rotate-refresh-tokens", "--refresh-retry-window", "60s"],
    );
    let (code, first) = log_in(&server, &client_id, &secret).await;
    let mut requests = 5;
    let rt1 = refresh_token(&first);

    let (status, second) = refresh(&server, &client_id, &secret, &rt1).await;
    assert_eq!(status, 200, "rotation: {second}");
    let rt2 = refresh_token(&second);
    let (status, replayed) = refresh(&server, &client_id, &secret, &rt1).await;
    assert_eq!(status, 200, "replay inside the window: {replayed}");
    assert_eq!(refresh_token(&replayed), rt2, "the same pair again");
    let (status, third) = refresh(&server, &client_id, &secret, &rt2).await;
    assert_eq!(status, 200, "second rotation: {third}");
    let rt3 = refresh_token(&third);
    // rt1 is two generations old now: reuse, and the family is revoked.
    let (status, _) = refresh(&server, &client_id, &secret, &rt1).await;
    assert_eq!(status, 400, "reuse");
    let (status, _) = refresh(&server, &client_id, &secret, &rt3).await;
    assert_eq!(status, 400, "the revoked family");
    requests += 5;

    // The reuse and the revoked family were failures of this source too: with a budget of 5,
    // made-up tokens are refused with 400 until the budget is spent, then with 429.
    let mut statuses = HashMap::<u16, u32>::new();
    for n in 0..8 {
        let (status, _) = refresh(&server, &client_id, &secret, &format!("made-up-{n}")).await;
        *statuses.entry(status).or_default() += 1;
    }
    requests += 8;
    let throttled = statuses.get(&429).copied().unwrap_or(0);
    assert!(throttled > 0, "{statuses:?}");
    assert_eq!(statuses[&400] + throttled, 8, "{statuses:?}");

    // Through a trusted proxy, the source is the client the proxy names.
    let proxied = reqwest::Client::new()
        .get(format!("{}/healthz", server.base))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), 200);
    let metrics = scrape(&format!("{}/metrics", server.base)).await;
    requests += 2;
    let refreshes =
        |outcome: &str| value(&metrics, "tessera_refreshes_total", &[("outcome", outcome)]);
    assert_eq!(refreshes("rotated"), 2.0);
    assert_eq!(refreshes("replayed"), 1.0);
    assert_eq!(refreshes("reuse_detected"), 1.0);
    assert_eq!(refreshes("revoked"), 1.0);
    assert_eq!(
        refreshes("invalid"),
        8.0,
        "every made-up token, throttled or not"
    );
    assert_eq!(refreshes("refreshed"), 0.0);
    assert_eq!(refreshes("concurrent_refused"), 0.0);
    assert_eq!(
        value(
            &metrics,
            "tessera_throttled_total",
            &[("reason", "credential_failures_per_address")]
        ),
        f64::from(throttled)
    );
    assert_eq!(
        value(&metrics, "tessera_throttled_total", &[]),
        f64::from(throttled)
    );
    let http = |route: &str, status: &str| {
        value(
            &metrics,
            "tessera_http_requests_total",
            &[("route", route), ("status", status)],
        )
    };
    assert_eq!(
        http("/services/oauth2/authorize", "200"),
        1.0,
        "the login page"
    );
    assert_eq!(
        http("/services/oauth2/authorize/login", "303"),
        1.0,
        "the login"
    );
    assert_eq!(
        http("/services/oauth2/authorize/consent", "302"),
        1.0,
        "consent"
    );
    assert_eq!(
        http("/services/oauth2/token", "200"),
        4.0,
        "code, 2 rotations, replay"
    );
    assert_eq!(
        http("/services/oauth2/token", "400"),
        2.0 + f64::from(statuses[&400])
    );
    assert_eq!(http("/services/oauth2/token", "429"), f64::from(throttled));
    assert_eq!(
        value(
            &metrics,
            "tessera_http_request_duration_seconds_count",
            &[("route", "/services/oauth2/token")]
        ),
        6.0 + 8.0
    );
    assert!(
        !metrics
            .iter()
            .any(|s| s.labels.get("route").is_some_and(|r| r.contains('?'))),
        "routes are templates, never raw paths"
    );
    // Every commit of the SQLite writer is measured, each with at least one job.
    let commits = value(&metrics, "tessera_store_commit_duration_seconds_count", &[]);
    assert!(commits >= 1.0, "{commits}");
    assert!(value(&metrics, "tessera_store_commit_group_size_sum", &[]) >= commits);
    assert!(
        value(
            &metrics,
            "tessera_cache_misses_total",
            &[("cache", "client")]
        ) >= 1.0
    );
    assert!(value(&metrics, "tessera_cache_hits_total", &[("cache", "client")]) >= 1.0);

    let documented = documented_metrics();
    for sample in &metrics {
        assert!(
            documented.contains(base_name(&sample.name)),
            "{} is not in docs/operations.md",
            sample.name
        );
    }

    let log = std::fs::read_to_string(&server.log).unwrap();
    let access: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("tessera::access"))
        .collect();
    assert_eq!(access.len(), requests, "one line per request:\n{log}");
    for line in &access {
        assert!(line.contains(" route=\"/"), "{line}");
        assert!(line.contains(" status="), "{line}");
        let source = if line.contains("route=\"/healthz\"") {
            " source=203.0.113.9"
        } else {
            " source=127.0.0.1"
        };
        assert!(line.contains(source), "{line}");
        assert!(!line.contains('?'), "no query string: {line}");
    }
    let token_lines = access
        .iter()
        .filter(|l| l.contains("route=\"/services/oauth2/token\""));
    assert!(
        token_lines
            .clone()
            .all(|l| l.contains(&format!("client_id=\"{client_id}\""))),
        "the token endpoint names its client"
    );
    assert_eq!(
        token_lines.filter(|l| l.contains("status=429")).count() as u32,
        throttled
    );
    let access_token = first["access_token"].as_str().unwrap();
    for (what, secret_value) in [
        ("client secret", secret.as_str()),
        ("password", PASSWORD),
        ("code", code.as_str()),
        ("refresh token", rt1.as_str()),
        ("rotated refresh token", rt2.as_str()),
        ("access token", access_token),
    ] {
        assert!(
            !log.contains(secret_value),
            "the log holds the {what}:\n{log}"
        );
    }
}

/// The metrics listener's address, from the server's log (it is logged once bound).
fn logged_metrics_address(server: &Server) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let log = std::fs::read_to_string(&server.log).unwrap();
        if let Some(line) = log.lines().find(|l| l.contains("metrics listening")) {
            let (_, address) = line.split_once("listen=").unwrap();
            return address.trim().to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no metrics listener:\n{log}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// By default `/metrics` is not public: the main listener answers it 404 and no other listener
/// is opened. Switched on (here from the environment), the main listener serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_not_served_on_the_main_listener_unless_switched_on() {
    let _lane = common::lane(common::lanes::SHARED);
    let default = Server::start(&[], &[("TESSERA_LOG", "info")]);
    let main = reqwest::get(format!("{}/metrics", default.base))
        .await
        .unwrap();
    assert_eq!(main.status(), 404, "not served by default");
    let body = main.text().await.unwrap();
    assert!(!body.contains("tessera_"), "no metric in the 404: {body}");
    let log = std::fs::read_to_string(&default.log).unwrap();
    assert!(!log.contains("metrics listening"), "{log}");

    let switched_on = Server::start(
        &[],
        &[
            ("TESSERA_LOG", "info"),
            ("TESSERA_METRICS_ON_MAIN_LISTENER", "true"),
        ],
    );
    let metrics = scrape(&format!("{}/metrics", switched_on.base)).await;
    assert!(
        metrics
            .iter()
            .any(|sample| sample.name.starts_with("tessera_")),
        "{metrics:?}"
    );
}

/// With `--metrics-listen`, `/metrics` is served there and is 404 on the main listener; the
/// metrics listener serves nothing else. `--access-log false` silences the access log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_listener_serves_metrics_alone_and_the_access_log_can_be_off() {
    let _lane = common::lane(common::lanes::SHARED);
    // Port 0: the server picks a free one and logs it, so no other process can take it between
    // a test choosing it and the server binding it.
    let server = Server::start(
        &["--metrics-listen", "127.0.0.1:0", "--access-log", "false"],
        &[("TESSERA_LOG", "info")],
    );
    let metrics_address = logged_metrics_address(&server);
    let main = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap();
    assert_eq!(main.status(), 404, "not on the main listener");
    let metrics = scrape(&format!("http://{metrics_address}/metrics")).await;
    assert_eq!(
        value(
            &metrics,
            "tessera_http_requests_total",
            &[("route", "/metrics"), ("status", "404")]
        ),
        1.0,
        "the main listener's 404 is counted"
    );
    let other = reqwest::get(format!("http://{metrics_address}/healthz"))
        .await
        .unwrap();
    assert_eq!(
        other.status(),
        404,
        "the metrics listener serves only /metrics"
    );
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(!log.contains("tessera::access"), "{log}");
}
