//! What the binary's tests share: running `tessera` with arguments and standard input, and a
//! `tessera serve` process of their own.

#![allow(dead_code)]

pub mod browser;

use tessera_testkit::wait_until_accepting;
pub use tessera_testkit::{authorize_in_browser, code_in, free_port, libfaketime, LIBFAKETIME};
pub use tessera_testkit::{lane, Lane};

/// The lanes of this binary (see `tessera_testkit::lane`): each test enters one first. The
/// load, crash, clock and several-node tests keep lanes of their own, as they had binaries of
/// their own; everything else shares one.
pub mod lanes {
    use super::Lane;

    /// Tests that can run beside each other.
    pub const SHARED: Lane = Lane("shared");
    /// `tessera bench`: it loads both cores.
    pub const BENCH: Lane = Lane("bench");
    /// SIGKILL under rotating load.
    pub const DURABILITY: Lane = Lane("durability");
    /// Floods, memory bounds and a faked clock.
    pub const HARDENING: Lane = Lane("hardening");
    /// Several nodes on PostgreSQL, an outage, a skewed clock.
    pub const NODES: Lane = Lane("nodes");
}

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

/// Runs a prepared `tessera` command with `args`, feeding `stdin` (or nothing).
pub fn run(mut command: Command, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

/// Runs it, requires success, and parses standard output as one JSON document.
pub fn json(command: Command, args: &[&str], stdin: Option<&str>) -> Value {
    let out = run(command, args, stdin);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&out.stdout)))
}

/// `admin user create` through `command` (a `tessera` on the server's database): `username`
/// with `password`; returns the user as JSON.
pub fn create_user(command: Command, username: &str, password: &str) -> Value {
    json(
        command,
        &[
            "admin",
            "--json",
            "user",
            "create",
            "--username",
            username,
            "--password-stdin",
        ],
        Some(password),
    )
}

/// `tessera` with its configuration taken from `dir` alone (nothing from the environment).
pub fn tessera(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tessera"));
    c.env_remove("TESSERA_CONFIG")
        .env_remove("TESSERA_DATABASE_URL")
        .env("TESSERA_DATA_DIR", dir)
        .env("TESSERA_LOG", "warn")
        .env("NO_COLOR", "1");
    c
}

/// A server process on a free port, with its own data directory, killed on drop.
pub struct Server {
    pub dir: tempfile::TempDir,
    pub base: String,
    pub child: Child,
    pub log: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `serve` with `args`, under `env` (for libfaketime).
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let env: Vec<_> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let (child, base, log) = spawn(dir.path(), &args, &env);
        Self {
            dir,
            base,
            child,
            log,
            args,
            env,
        }
    }

    /// Kills the process with SIGKILL: no chance to flush or close anything.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Starts a new process on the same data directory, on a new port.
    pub fn restart(&mut self) {
        let (child, base, log) = spawn(self.dir.path(), &self.args, &self.env);
        (self.child, self.base, self.log) = (child, base, log);
    }

    pub fn admin(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Value {
        let mut command = tessera(self.dir.path());
        command.envs(env.iter().copied());
        let mut full = vec!["admin", "--json"];
        full.extend_from_slice(args);
        json(command, &full, stdin)
    }

    /// A user and a confidential client whose access tokens live `ttl`, with `more` client
    /// options.
    pub fn user_and_client(&self, ttl: &str, more: &[&str]) -> (String, String) {
        create_user(
            tessera(self.dir.path()),
            "ada@example.com",
            "ada's password",
        );
        let mut create = vec![
            "client",
            "create",
            "--name",
            "App",
            "--redirect-uri",
            "http://127.0.0.1:9/cb",
            "--access-token-ttl",
            ttl,
        ];
        create.extend_from_slice(more);
        let client = self.admin(&create, None, &[]);
        (
            client["client_id"].as_str().unwrap().to_owned(),
            client["client_secret"].as_str().unwrap().to_owned(),
        )
    }

    /// `admin token mint` for `client_id` and the user [`Server::user_and_client`] creates, with
    /// `api refresh_token`: the token endpoint's body.
    pub fn mint(&self, client_id: &str, env: &[(&str, &str)]) -> Value {
        self.admin(
            &[
                "token",
                "mint",
                "--client-id",
                client_id,
                "--username",
                "ada@example.com",
                "--scope",
                "api refresh_token",
            ],
            None,
            env,
        )
    }

    /// What the server printed on standard output (the walkthrough of `--dev`).
    pub fn printed(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(STDOUT_FILE)).unwrap()
    }

    /// The server's resident and peak resident memory, in KiB.
    pub fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
                .unwrap()
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

/// Where a server's standard output goes, in its data directory.
const STDOUT_FILE: &str = "server.out";

/// Starts `serve` on a free port and waits until it accepts connections; the log and the
/// standard output are appended to, so that a restarted server's follow the killed one's.
fn spawn(dir: &Path, args: &[String], env: &[(String, String)]) -> (Child, String, PathBuf) {
    let port = free_port();
    let log = dir.join("server.log");
    let appending = |path: &Path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
    };
    let mut command = tessera(dir);
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(appending(&dir.join(STDOUT_FILE)))
        .stderr(appending(&log));
    let mut child = command.spawn().unwrap();
    wait_until_accepting(port, &mut child, || {
        std::fs::read_to_string(&log).unwrap_or_default()
    });
    (child, format!("http://127.0.0.1:{port}"), log)
}

/// The status `GET /services/data/v65.0/` on `base` answers with `access_token`: 200 while it
/// works, 401 once it does not.
pub async fn api_status(base: &str, access_token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{base}/services/data/v65.0/"))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}
