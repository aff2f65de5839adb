//! The client commands as a user runs them, against a real `tessera serve`: `login --no-browser`
//! driven through the printed URL, then `token` from 20 processes at once after expiry (exactly
//! one refresh at the server), `curl`, `status`, and `logout`; and the traps of a first hour:
//! a wrong secret, an unregistered redirect URI, a session revoked at the server, a secret typed
//! at a terminal, a session without a refresh token, `status` after the server refused the
//! stored refresh token; and the page a failed login leaves in the browser, in headless
//! Chromium (skipped loudly without it unless `TESSERA_TEST_BROWSER` is set, as in `pages.rs`).

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
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
        let port = common::free_port();
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
        tessera_testkit::wait_until_accepting(port, &mut world.server, String::new);
        world
    }
}

/// Does what a person does with the URL `tessera login --no-browser` prints: opens it, logs in,
/// allows, and lets the browser follow the redirect to the CLI's loopback listener. Returns the
/// page the listener answered with, which it sends once the login has completed or failed.
async fn browse(base: &str, url: &str, username: &str, password: &str) -> String {
    let callback = common::authorize_in_browser(base, url, username, password).await;
    assert!(callback.starts_with("http://127.0.0.1:"), "{callback}");
    let landed = reqwest::get(&callback).await.unwrap();
    assert_eq!(landed.status(), 200);
    landed.text().await.unwrap()
}

/// A `tessera login --no-browser` waiting for the browser.
struct Login {
    child: Child,
    /// The authorization URL it printed.
    url: String,
    /// Standard error up to the URL, then the rest of it, read as it comes.
    before: String,
    rest: std::thread::JoinHandle<String>,
}

impl Login {
    /// Waits for it to end: its exit status and all it printed on standard error.
    async fn finish(mut self) -> (ExitStatus, String) {
        let status = tokio::task::spawn_blocking(move || self.child.wait())
            .await
            .unwrap()
            .unwrap();
        (status, self.before + &self.rest.join().unwrap())
    }
}

impl World {
    /// A user, and a confidential client registered for any loopback port with `more`
    /// options; returns the client's id and secret.
    fn user_and_client(&self, more: &[&str]) -> (String, String) {
        common::create_user(self.command(), "cli@example.com", "cli password 1");
        self.client(more)
    }

    /// A confidential client registered for any loopback port with `more` options; its id
    /// and secret.
    fn client(&self, more: &[&str]) -> (String, String) {
        let mut create = vec![
            "admin",
            "--json",
            "client",
            "create",
            "--name",
            "CLI",
            "--redirect-uri",
            "http://127.0.0.1/callback",
        ];
        create.extend_from_slice(more);
        let client = self.json(&create, None);
        (
            client["client_id"].as_str().unwrap().to_owned(),
            client["client_secret"].as_str().unwrap().to_owned(),
        )
    }

    /// `tessera login --no-browser` at this server for `client_id`, listening on `port`.
    fn login_command(&self, client_id: &str, port: &str) -> Command {
        let mut command = self.command();
        command.args([
            "login",
            "--no-browser",
            "--issuer",
            &self.base,
            "--client-id",
            client_id,
            "--redirect-port",
            port,
        ]);
        command
    }

    /// Starts `tessera login --no-browser --redirect-port 0` for `client_id` with `more`
    /// arguments, `secret` on standard input after `--client-secret-stdin` when given, and
    /// reads standard error up to the URL to open.
    async fn start_login(&self, client_id: &str, secret: Option<&str>, more: &[&str]) -> Login {
        let mut command = self.login_command(client_id, "0");
        if secret.is_some() {
            command.arg("--client-secret-stdin");
        }
        let mut child = command
            .args(more)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Written whole and closed: standard input is a pipe here, read to its end.
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(secret.unwrap_or_default().as_bytes())
            .unwrap();
        drop(stdin);
        let stderr = child.stderr.take().unwrap();
        let (url, before, rest) = tokio::task::spawn_blocking(move || {
            let mut reader = BufReader::new(stderr);
            let mut before = String::new();
            let url = loop {
                let mut line = String::new();
                assert!(
                    reader.read_line(&mut line).unwrap() > 0,
                    "login printed no URL:\n{before}"
                );
                before.push_str(&line);
                if line.trim().starts_with("http") {
                    break line.trim().to_owned();
                }
            };
            let rest = std::thread::spawn(move || {
                let mut rest = String::new();
                reader.read_to_string(&mut rest).unwrap();
                rest
            });
            (url, before, rest)
        })
        .await
        .unwrap();
        Login {
            child,
            url,
            before,
            rest,
        }
    }

    /// `start_login`, the browser's part as cli@example.com, and a successful end.
    async fn log_in(&self, client_id: &str, secret: Option<&str>, more: &[&str]) -> String {
        let login = self.start_login(client_id, secret, more).await;
        self.complete_login(login).await
    }

    /// The browser's part of `login` as cli@example.com, and a successful end.
    async fn complete_login(&self, login: Login) -> String {
        let page = browse(&self.base, &login.url, "cli@example.com", "cli password 1").await;
        let (status, stderr) = login.finish().await;
        assert!(status.success(), "login failed: {stderr}");
        assert!(
            page.contains("You are logged in as cli@example.com"),
            "{page}"
        );
        stderr
    }

    /// Revokes every grant of cli@example.com with the admin command, and waits until the
    /// server refuses `access_token`: the command writes to the database and the server applies
    /// it from its change feed a moment later.
    async fn revoke_the_session(&self, access_token: &str) {
        self.json(
            &["admin", "--json", "revoke", "--user", "cli@example.com"],
            None,
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let api = reqwest::Client::new()
                .get(format!("{}/services/data/v65.0/", self.base))
                .bearer_auth(access_token.trim())
                .send()
                .await
                .unwrap();
            if api.status() == 401 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the server never saw the revocation"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn stdout_of(&self, args: &[&str]) -> String {
        let out = self.run(args, None);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_then_twenty_processes_refresh_once_then_curl_status_and_logout() {
    let _lane = common::lane(common::lanes::SHARED);
    let w = World::start();
    let (client_id, secret) = w.user_and_client(&[
        "--rotate-refresh-tokens",
        "--refresh-retry-window",
        "0s",
        "--access-token-ttl",
        "3s",
    ]);

    // login --no-browser: read the printed URL, act as the browser, let the listener finish.
    let login = w.start_login(&client_id, Some(&secret), &[]).await;
    assert!(
        login.url.contains("code_challenge=")
            && login.url.contains("redirect_uri=http%3A%2F%2F127.0.0.1%3A"),
        "{}",
        login.url
    );
    let page = browse(&w.base, &login.url, "cli@example.com", "cli password 1").await;
    let (status, stderr) = login.finish().await;
    assert!(status.success(), "login failed: {stderr}");
    assert!(
        page.contains("You are logged in as cli@example.com"),
        "{page}"
    );

    // status names the user, never shows a token, and says how the tokens are protected.
    let status_text = w.stdout_of(&["status"]);
    assert!(status_text.contains(&w.base), "{status_text}");
    assert!(
        status_text.starts_with("profile   default\nuser      cli@example.com\n"),
        "{status_text}"
    );
    assert!(
        status_text.contains("refreshed automatically"),
        "{status_text}"
    );
    assert!(status_text.to_lowercase().contains("key"), "{status_text}");
    // Without an OS keyring (a headless machine), the login says in one sentence where the key
    // went instead (later commands find the key file, and ask the keyring nothing).
    if !stderr.contains("key in the OS keyring") {
        assert!(
            stderr.contains("the OS keyring is not available, so the key is kept in the file"),
            "{stderr}"
        );
        assert!(!stderr.contains("zbus"), "{stderr}");
    }

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

    // curl -i: the status line and headers on standard error, ended by a blank line as in curl.
    let out = w.run(&["curl", "-i", "/services/data/v65.0/"], None);
    assert!(out.status.success());
    let head = String::from_utf8(out.stderr).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\n"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(
        head.ends_with("\n\n"),
        "no blank line after the headers: {head:?}"
    );
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("\"sobjects\""));

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_fails_in_the_terminal_and_in_the_browser_with_a_hint() {
    let _lane = common::lane(common::lanes::SHARED);
    let w = World::start();
    let (client_id, _) = w.user_and_client(&[]);
    let login = w.start_login(&client_id, Some("not the secret"), &[]).await;
    let page = browse(&w.base, &login.url, "cli@example.com", "cli password 1").await;
    let (status, stderr) = login.finish().await;
    assert!(!status.success(), "{stderr}");
    for said in [&stderr, &page] {
        assert!(
            said.contains("the code exchange failed: invalid_client"),
            "{said}"
        );
    }
    // The command-line hint is for the terminal; the browser's page sends its reader there.
    assert!(stderr.contains("--client-secret-stdin"), "{stderr}");
    assert!(!page.contains("--client-secret-stdin"), "{page}");
    assert!(page.contains("<h1>The login failed</h1>"), "{page}");
    assert!(
        page.contains("Return to your terminal: it says what went wrong and what to do next."),
        "{page}"
    );
    assert!(!page.contains("You are logged in"), "{page}");
    assert!(!stderr.contains("Logged in."), "{stderr}");
    // Nothing was stored.
    assert!(!w.run(&["status"], None).status.success());

    // Without any secret, the hint is that the client may need one.
    let login = w.start_login(&client_id, None, &[]).await;
    let page = browse(&w.base, &login.url, "cli@example.com", "cli password 1").await;
    let (status, stderr) = login.finish().await;
    assert!(!status.success());
    assert!(
        stderr.contains("this client may need its secret: log in again with --client-secret-stdin"),
        "{stderr}"
    );
    assert!(!page.contains("--client-secret-stdin"), "{page}");
    assert!(page.contains("Return to your terminal"), "{page}");
}

/// The page a failed `tessera login` leaves in the browser was unstyled text that began in
/// lower case and spoke of `--client-secret-stdin` to a person who has no command line there.
/// In Chromium, on a desktop and a phone: the server's look (its card and background), a
/// heading, a sentence that sends the reader back to the terminal, no command-line hint, and
/// nothing wider than the window. Screenshots: `login-failed-1000.png`, `login-failed-375.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_login_leaves_a_styled_page_that_sends_the_browser_user_to_the_terminal() {
    let _lane = common::lane(common::lanes::SHARED);
    let Some(chromium) = common::browser::chromium_or_skip("the login's callback page") else {
        return;
    };
    let w = World::start();
    let (client_id, _) = w.user_and_client(&[]);
    let login = w.start_login(&client_id, Some("not the secret"), &[]).await;
    let callback =
        common::authorize_in_browser(&w.base, &login.url, "cli@example.com", "cli password 1")
            .await;
    assert!(callback.starts_with("http://127.0.0.1:"), "{callback}");
    let measured: Value = tokio::task::spawn_blocking(move || {
        let mut browse = Command::new("node");
        browse
            .arg("callback.mjs")
            .current_dir(common::browser::scripts())
            .env("CHROMIUM", chromium)
            .env("VIEWPORTS", common::browser::viewports_json())
            .env("CALLBACK_URL", callback)
            .env("NAME", "login-failed")
            .env("SCREENSHOTS_DIR", common::browser::screenshots_dir());
        serde_json::from_slice(&common::browser::succeed(browse, "callback.mjs")).unwrap()
    })
    .await
    .unwrap();
    let (status, stderr) = login.finish().await;
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("--client-secret-stdin"), "{stderr}");

    let measured = measured.as_array().unwrap();
    assert_eq!(measured.len(), 2, "{measured:?}");
    for seen in measured {
        let width = seen["width"].as_u64().unwrap();
        let at = format!("at {width} px: {seen}");
        assert_eq!(seen["status"], 200, "{at}");
        assert_eq!(seen["heading"], "The login failed", "{at}");
        let text = seen["text"].as_str().unwrap();
        assert!(text.contains("Return to your terminal"), "{at}");
        assert!(!text.contains("--client-secret-stdin"), "{at}");
        // The server's look: a white, rounded card on a grey page, in the system font.
        assert_eq!(seen["cardBackground"], "rgb(255, 255, 255)", "{at}");
        assert_eq!(seen["cardBorderRadius"], "12px", "{at}");
        assert_eq!(seen["pageBackground"], "rgb(243, 244, 246)", "{at}");
        assert!(
            seen["fontFamily"].as_str().unwrap().contains("system-ui"),
            "{at}"
        );
        assert_eq!(seen["innerWidth"], width, "{at}");
        assert!(
            seen["documentScrollWidth"].as_u64().unwrap() <= width,
            "scrolls sideways {at}"
        );
        let png = std::fs::read(seen["screenshot"].as_str().unwrap()).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{at}: not a PNG");
    }
}

#[test]
fn an_unregistered_redirect_uri_is_named_with_the_command_that_registers_it_at_once() {
    let _lane = common::lane(common::lanes::SHARED);
    let w = World::start();
    // The client allows one redirect URI, on another port and path than the login's.
    let client = w.json(
        &[
            "admin",
            "--json",
            "client",
            "create",
            "--name",
            "Elsewhere",
            "--redirect-uri",
            "http://127.0.0.1:9/cb",
        ],
        None,
    );
    let other_id = client["client_id"].as_str().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let started = Instant::now();
    let out = common::run(
        w.login_command(other_id, &port),
        &["--timeout", "30s"],
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let uri = format!("http://127.0.0.1:{port}/callback");
    assert!(stderr.contains("redirect_uri_mismatch"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "tessera admin client update {other_id} --redirect-uri {uri}"
        )),
        "{stderr}"
    );
    // Said before any browser is involved, not after minutes of waiting for one.
    assert!(!stderr.contains("Waiting for the browser"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20));

    // With a port chosen anew each time, the URI to register is the one for any port.
    let out = common::run(w.login_command(other_id, "0"), &["--timeout", "30s"], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!(
            "tessera admin client update {other_id} --redirect-uri http://127.0.0.1/callback\n"
        )),
        "{stderr}"
    );

    // An unknown client id is said at once too.
    let out = common::run(
        w.login_command("3MVG9nobody", "0"),
        &["--timeout", "30s"],
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("invalid_client_id"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_verify_asks_the_server_and_fails_once_the_session_is_revoked() {
    let _lane = common::lane(common::lanes::SHARED);
    let w = World::start();
    let (client_id, secret) = w.user_and_client(&[]);
    w.log_in(&client_id, Some(&secret), &[]).await;

    // A live session: the same token as without --verify.
    let stored = w.stdout_of(&["token"]);
    assert_eq!(w.stdout_of(&["token", "--verify"]), stored);

    // The access token alone revoked at the server: `token` prints it still (nothing here says
    // it is dead, and its help says so); --verify refreshes.
    let revoked = reqwest::Client::new()
        .post(format!("{}/services/oauth2/revoke", w.base))
        .form(&[("token", stored.trim())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(w.stdout_of(&["token"]), stored);
    let fresh = w.stdout_of(&["token", "--verify"]);
    assert_ne!(fresh, stored);
    assert!(fresh.trim().contains('!'));

    // The whole session revoked: --verify exits non-zero and says to log in again.
    w.revoke_the_session(&fresh).await;
    let out = w.run(&["token", "--verify"], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains("please log in again (tessera login)"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_after_a_refused_refresh_does_not_call_the_refused_token_stored() {
    let _lane = common::lane(common::lanes::SHARED);
    let w = World::start();
    let (client_id, secret) = w.user_and_client(&[]);
    w.log_in(&client_id, Some(&secret), &[]).await;
    let before = w.stdout_of(&["status"]);
    assert!(
        before.contains("refresh   refresh token stored\n"),
        "{before}"
    );

    // Revoked at the server; the next refresh is refused.
    let token = w.stdout_of(&["token"]);
    w.revoke_the_session(&token).await;
    let out = w.run(&["token", "--verify"], None);
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let after = w.stdout_of(&["status"]);
    assert!(!after.contains("refresh token stored"), "{after}");
    assert!(
        after.contains("refresh   the stored refresh token was refused: a login is needed\n"),
        "{after}"
    );
    assert!(
        after.contains(
            "state     login needed (tessera login): the server rejected the refresh token"
        ),
        "{after}"
    );
    assert!(!after.contains("refreshed automatically"), "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_without_a_refresh_token_promises_no_refresh() {
    let _lane = common::lane(common::lanes::SHARED);
    let w = World::start();
    let (client_id, secret) = w.user_and_client(&[]);
    w.log_in(&client_id, Some(&secret), &["--scope", "api id"])
        .await;
    let status = w.stdout_of(&["status"]);
    assert!(status.contains("user      cli@example.com\n"), "{status}");
    assert!(status.contains("no refresh token"), "{status}");
    assert!(!status.contains("refreshed"), "{status}");
}

/// Runs `command` under `script`, on a terminal of its own; what the terminal shows is read
/// as it comes.
fn on_a_terminal(command: &Command) -> (Child, std::sync::mpsc::Receiver<String>) {
    let line: Vec<String> = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| format!("'{}'", part.to_str().unwrap()))
        .collect();
    let mut script = Command::new("script");
    script.args([
        "--quiet",
        "--flush",
        "--command",
        &line.join(" "),
        "/dev/null",
    ]);
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => script.env(key, value),
            None => script.env_remove(key),
        };
    }
    let mut child = script
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut screen = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n @ 1..) = screen.read(&mut buffer) {
            if tx
                .send(String::from_utf8_lossy(&buffer[..n]).into_owned())
                .is_err()
            {
                return;
            }
        }
    });
    (child, rx)
}

/// Reads the terminal into `seen` until it shows `wanted`.
fn wait_for(screen: &std::sync::mpsc::Receiver<String>, seen: &mut String, wanted: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.contains(wanted) {
        let left = deadline.saturating_duration_since(Instant::now());
        match screen.recv_timeout(left) {
            Ok(more) => seen.push_str(&more),
            Err(_) => panic!("the terminal never showed {wanted:?}:\n{seen}"),
        }
    }
}

#[test]
fn on_a_terminal_the_secret_is_asked_for_without_echo_and_one_line_is_enough() {
    let _lane = common::lane(common::lanes::SHARED);
    let w = World::start();
    let (client_id, _) = w.user_and_client(&[]);
    let mut login = w.login_command(&client_id, "0");
    login.args(["--client-secret-stdin", "--timeout", "20s"]);
    let (mut child, screen) = on_a_terminal(&login);
    let mut seen = String::new();
    wait_for(
        &screen,
        &mut seen,
        &format!("Client secret of {client_id}: "),
    );
    // The prompt is written just before echo is turned off.
    std::thread::sleep(Duration::from_millis(500));
    let mut keyboard = child.stdin.take().unwrap();
    keyboard.write_all(b"typed-secret-4242\n").unwrap();
    keyboard.flush().unwrap();
    // One line, no end of input: the login goes on to the URL.
    wait_for(&screen, &mut seen, "Open this URL in a browser");
    assert!(
        !seen.contains("typed-secret-4242"),
        "the secret was echoed:\n{seen}"
    );
    drop(keyboard);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_plain_http_issuer_off_loopback_is_refused_before_any_request() {
    let _lane = common::lane(common::lanes::SHARED);
    let dir = tempfile::tempdir().unwrap();
    let login = |more: &[&str]| {
        let mut command = common::tessera(&dir.path().join("server"));
        // Any request would go to a proxy that is not there, so nothing can leave this
        // machine, and a request made would show as a connection error.
        command
            .env_remove("TESSERA_PASSPHRASE")
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .env("TESSERA_CLIENT_DIR", dir.path().join("client"))
            .env("ALL_PROXY", "http://127.0.0.1:1")
            .env("HTTP_PROXY", "http://127.0.0.1:1")
            .env("http_proxy", "http://127.0.0.1:1");
        let mut args = vec![
            "login",
            "--no-browser",
            "--issuer",
            "http://login.example.invalid",
            "--client-id",
            "cli",
            "--redirect-port",
            "0",
        ];
        args.extend_from_slice(more);
        let out = common::run(command, &args, None);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, stderr) = login(&[]);
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("plain http would send"), "{stderr}");
    assert!(stderr.contains("--insecure-http"), "{stderr}");
    assert!(
        !stderr.contains("cannot reach"),
        "a request was sent: {stderr}"
    );
    // With --insecure-http it goes on, and only then tries to reach the issuer.
    let (ok, stderr) = login(&["--insecure-http"]);
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("cannot reach the issuer"), "{stderr}");
    assert!(!stderr.contains("plain http would send"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_with_another_state_does_not_abort_the_login() {
    let _lane = common::lane(common::lanes::SHARED);
    let w = World::start();
    let (client_id, secret) = w.user_and_client(&[]);
    let login = w.start_login(&client_id, Some(&secret), &[]).await;
    let url = url::Url::parse(&login.url).unwrap();
    let redirect_uri = url
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .unwrap()
        .1
        .into_owned();
    // What a local process or a cross-site image could send before the browser comes back.
    for query in [
        "",
        "?error=access_denied",
        "?state=forged&error=access_denied&error_description=no",
        "?state=forged&code=attackers-code",
    ] {
        let answer = reqwest::get(format!("{redirect_uri}{query}"))
            .await
            .unwrap();
        assert_eq!(answer.status(), 400, "{query}");
        assert!(answer.text().await.unwrap().contains("ignored"), "{query}");
    }
    w.complete_login(login).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_asking_for_openid_sends_a_fresh_nonce_and_one_without_it_sends_none() {
    let _lane = common::lane(common::lanes::SHARED);
    let w = World::start();
    let (client_id, _) = w.user_and_client(&[]);
    let mut nonces = Vec::new();
    for scope in [
        "openid api refresh_token",
        "api openid",
        "api id refresh_token",
    ] {
        let mut login = w.start_login(&client_id, None, &["--scope", scope]).await;
        let url = url::Url::parse(&login.url).unwrap();
        let nonce = url
            .query_pairs()
            .find(|(k, _)| k == "nonce")
            .map(|(_, v)| v.into_owned());
        // Only the URL is under test here: the browser never comes.
        login.child.kill().unwrap();
        login.child.wait().unwrap();
        match nonce {
            Some(nonce) => {
                assert!(scope.contains("openid"), "{scope}: {url}");
                assert!(nonce.len() >= 32, "{nonce}");
                nonces.push(nonce);
            }
            None => assert!(!scope.contains("openid"), "{scope}: {url}"),
        }
    }
    assert_eq!(nonces.len(), 2);
    assert_ne!(nonces[0], nonces[1], "a nonce is never reused");
}

impl World {
    /// Waits for the RS256 key the server's first housekeeping makes at start (it signs at
    /// once), as `tessera admin keys list` shows it.
    async fn wait_for_a_signing_key(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let keys = self.json(&["admin", "--json", "keys", "list"], None);
            let signing = keys
                .as_array()
                .unwrap()
                .iter()
                .any(|key| key["alg"] == "RS256" && key["state"] == "signing");
            if signing {
                return;
            }
            assert!(Instant::now() < deadline, "no signing key was made: {keys}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openid_login_names_the_user_from_the_verified_id_token_and_keeps_it_across_refreshes() {
    let _lane = common::lane(common::lanes::SHARED);
    let w = World::start();
    let user = w.json(
        &[
            "admin",
            "--json",
            "user",
            "create",
            "--username",
            "cli@example.com",
            "--email",
            "cli@example.com",
            "--password-stdin",
        ],
        Some("cli password 1"),
    );
    let user_id = user["id"].as_str().unwrap();
    let (client_id, secret) = w.client(&[
        "--scopes",
        "openid api id refresh_token",
        "--id-token-standard-claims",
        "--rotate-refresh-tokens",
    ]);
    w.wait_for_a_signing_key().await;

    let login = w
        .start_login(
            &client_id,
            Some(&secret),
            &["--scope", "openid api refresh_token"],
        )
        .await;
    assert!(login.url.contains("nonce="), "{}", login.url);
    let page = browse(&w.base, &login.url, "cli@example.com", "cli password 1").await;
    let (status, stderr) = login.finish().await;
    assert!(status.success(), "login failed: {stderr}");
    // The ID token's name and email (`name` is the username's local part at Tessera).
    assert!(
        page.contains("You are logged in as cli &lt;cli@example.com&gt;."),
        "{page}"
    );

    // status says who, from the ID token the login verified (its nonce included).
    let who = format!("profile   default\nuser      cli <cli@example.com> ({user_id})\n");
    let status_text = w.stdout_of(&["status"]);
    assert!(status_text.starts_with(&who), "{status_text}");
    assert!(
        status_text.contains(&format!(
            "/id/{}/{user_id}\n",
            user["org_id"].as_str().unwrap()
        )),
        "{status_text}"
    );
    let verified_line = |text: &str| {
        text.lines()
            .find(|line| line.starts_with("id token  verified, issued "))
            .unwrap_or_else(|| panic!("no verified ID token: {text}"))
            .to_owned()
    };
    let at_login = verified_line(&status_text);

    // A refresh (the access token revoked, then `token --verify`) a second later: a new ID
    // token, issued later, verified and kept; and `token` hands out the refreshed token.
    let first = w.stdout_of(&["token"]);
    let revoked = reqwest::Client::new()
        .post(format!("{}/services/oauth2/revoke", w.base))
        .form(&[("token", first.trim())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fresh = w.stdout_of(&["token", "--verify"]);
    assert_ne!(fresh, first);
    assert!(fresh.trim().contains('!'), "{fresh}");
    assert_eq!(w.stdout_of(&["token"]), fresh);
    let after = w.stdout_of(&["status"]);
    assert!(after.starts_with(&who), "{after}");
    assert_ne!(
        verified_line(&after),
        at_login,
        "the refresh's ID token was not kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpop_login_names_its_key_to_the_server_and_status_shows_the_keys_thumbprint() {
    let _lane = common::lane(common::lanes::SHARED);
    let w = World::start();
    let (client_id, secret) = w.user_and_client(&["--dpop", "required"]);
    let login = w.start_login(&client_id, Some(&secret), &["--dpop"]).await;
    let url = url::Url::parse(&login.url).unwrap();
    let jkt = url
        .query_pairs()
        .find(|(k, _)| k == "dpop_jkt")
        .map(|(_, v)| v.into_owned())
        .expect("the authorization request names the key");
    w.complete_login(login).await;
    let status = w.stdout_of(&["status"]);
    assert!(status.contains(&format!("bound to key {jkt}")), "{status}");
    // The API call goes as DPoP, with a proof of that key, and works; the token alone, as
    // Bearer, does not.
    let out = w.run(&["curl", "/services/data/v65.0/"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
