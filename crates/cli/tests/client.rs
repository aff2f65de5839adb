//! The client commands as a user runs them, against a real `tessera serve`: `login --no-browser`
//! driven through the printed URL, then `token` from 20 processes at once after expiry (exactly
//! one refresh at the server), `curl`, `status`, and `logout`.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

struct World {
    dir: tempfile::TempDir,
    base: String,
    server: Child,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

impl World {
    fn command(&self) -> Command {
        let mut c = common::tessera(&self.dir.path().join("server"));
        c.env_remove("TESSERA_PASSPHRASE")
            .env("TESSERA_CLIENT_DIR", self.dir.path().join("client"));
        c
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        common::run(self.command(), args, stdin)
    }

    fn json(&self, args: &[&str], stdin: Option<&str>) -> Value {
        common::json(self.command(), args, stdin)
    }

    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let base = format!("http://127.0.0.1:{port}");
        let mut world = World {
            dir,
            base,
            server: Command::new("true").spawn().unwrap(),
        };
        world.server = world
            .command()
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        world
    }
}

/// Does what a person does with the URL `tessera login --no-browser` prints: opens it, logs in,
/// allows, and lets the browser follow the redirect to the CLI's loopback listener.
async fn browse(base: &str, url: &str, username: &str, password: &str) {
    let callback = common::authorize_in_browser(base, url, username, password).await;
    assert!(callback.starts_with("http://127.0.0.1:"), "{callback}");
    let landed = reqwest::get(&callback).await.unwrap();
    assert_eq!(landed.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_then_twenty_processes_refresh_once_then_curl_status_and_logout() {
    let w = World::start();
    w.json(
        &[
            "admin",
            "--json",
            "user",
            "create",
            "--username",
            "cli@example.com",
            "--password-stdin",
        ],
        Some("cli password 1"),
    );
    let client = w.json(
        &[
            "admin",
            "--json",
            "client",
            "create",
            "--name",
            "CLI",
            "--redirect-uri",
            "http://127.0.0.1/callback",
            "--rotate-refresh-tokens",
            "--refresh-retry-window",
            "0s",
            "--access-token-ttl",
            "3s",
        ],
        None,
    );
    let client_id = client["client_id"].as_str().unwrap().to_owned();
    let secret = client["client_secret"].as_str().unwrap().to_owned();

    // login --no-browser: read the printed URL, act as the browser, let the listener finish.
    let mut login = w
        .command()
        .args([
            "login",
            "--no-browser",
            "--issuer",
            &w.base,
            "--client-id",
            &client_id,
            "--client-secret-stdin",
            "--redirect-port",
            "0",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    login
        .stdin
        .take()
        .unwrap()
        .write_all(secret.as_bytes())
        .unwrap();
    let stderr = login.stderr.take().unwrap();
    let url = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stderr).lines();
        let url = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| l.trim().starts_with("http").then(|| l.trim().to_owned()))
            .expect("a URL on stderr");
        std::thread::spawn(move || for _ in lines {});
        url
    })
    .await
    .unwrap();
    assert!(
        url.contains("code_challenge=") && url.contains("redirect_uri=http%3A%2F%2F127.0.0.1%3A"),
        "{url}"
    );
    browse(&w.base, &url, "cli@example.com", "cli password 1").await;
    let status = tokio::task::spawn_blocking(move || login.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "login failed");

    // status never shows a token and says how the tokens are protected.
    let out = w.run(&["status"], None);
    assert!(out.status.success());
    let status_text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(status_text.contains(&w.base), "{status_text}");
    assert!(status_text.to_lowercase().contains("key"), "{status_text}");

    let first = String::from_utf8(w.run(&["token"], None).stdout)
        .unwrap()
        .trim()
        .to_owned();
    assert!(first.contains('!'));
    assert!(!status_text.contains(&first));

    // After expiry, 20 processes ask at once: one refresh at the server, one token for all.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let children: Vec<Child> = (0..20)
        .map(|_| {
            w.command()
                .arg("token")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<std::process::Output> = tokio::task::spawn_blocking(move || {
        children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect()
    })
    .await
    .unwrap();
    for o in &outputs {
        assert!(
            o.status.success(),
            "tessera token failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let tokens: std::collections::HashSet<String> = outputs
        .iter()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .collect();
    assert_eq!(tokens.len(), 1, "{} different tokens", tokens.len());
    let token = tokens.into_iter().next().unwrap();
    assert_ne!(token, first);
    let text = String::from_utf8(
        w.run(&["admin", "--json", "events", "--limit", "1000"], None)
            .stdout,
    )
    .unwrap();
    let rotated = text.matches("\"rotated\"").count();
    assert_eq!(rotated, 1, "refreshes at the server: {rotated}\n{text}");
    assert_eq!(text.matches("concurrent_refresh_refused").count(), 0);

    // The credential file holds no token in clear.
    let cred = std::fs::read(w.dir.path().join("client/profiles/default.cred")).unwrap();
    let haystack = String::from_utf8_lossy(&cred);
    assert!(!haystack.contains(token.split('!').nth(1).unwrap()));
    assert!(!haystack.contains(first.split('!').nth(1).unwrap()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(w.dir.path().join("client/profiles/default.cred"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the credential file is readable by others");
    }

    // curl with automatic refresh.
    let out = w.run(
        &[
            "curl",
            "/services/data/v65.0/sobjects/Note",
            "-X",
            "POST",
            "-d",
            "{\"Title\":\"from the CLI\"}",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"success\":true"));

    // logout revokes at the server and wipes the local copy.
    let out = w.run(&["logout"], None);
    assert!(out.status.success());
    let after = w.run(&["token"], None);
    assert!(!after.status.success());
    assert!(
        String::from_utf8_lossy(&after.stderr).contains("log"),
        "{}",
        String::from_utf8_lossy(&after.stderr)
    );
    let revoked = String::from_utf8(
        w.run(&["admin", "--json", "events", "--limit", "1000"], None)
            .stdout,
    )
    .unwrap();
    assert!(revoked.contains("\"revoked\""));
}
