//! Crash durability: a `tessera serve` process is killed with SIGKILL in the middle of a
//! rotating-refresh load, several times over. Every refresh answered before a kill must still
//! work after the restart — its new refresh token is the family's current one, or, if a later
//! refresh of it was committed but its answer never arrived, presenting it again inside the retry
//! window replays that same successor — and the database must pass `PRAGMA integrity_check`.

use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::Server;
use serde_json::Value;

/// Concurrent refresh chains, one grant each.
const CHAINS: usize = 16;
/// Kills, each after a different stretch of load.
const KILLS: usize = 4;

struct Client {
    http: reqwest::Client,
    id: String,
    secret: String,
}

/// How one refresh went.
enum Refreshed {
    Pair(Value),
    Refused(u16, String),
    /// No answer: the connection failed (the server is gone).
    Lost,
}

impl Client {
    async fn refresh(&self, base: &str, refresh_token: &str) -> Refreshed {
        let sent = self
            .http
            .post(format!("{base}/services/oauth2/token"))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", &self.id),
                ("client_secret", &self.secret),
            ])
            .send()
            .await;
        let Ok(response) = sent else {
            return Refreshed::Lost;
        };
        let status = response.status().as_u16();
        match response.text().await {
            Ok(body) if status == 200 => Refreshed::Pair(serde_json::from_str(&body).unwrap()),
            Ok(body) => Refreshed::Refused(status, body),
            Err(_) => Refreshed::Lost,
        }
    }
}

/// Refreshes `chain` over and over, each time with the token the last answer gave, until the
/// server stops answering; returns the last refresh token it was given and how many refreshes
/// were answered.
async fn chain_until_lost(
    client: Arc<Client>,
    base: String,
    mut refresh_token: String,
    running: Arc<AtomicBool>,
) -> (String, usize) {
    let mut answered = 0;
    while running.load(Ordering::Relaxed) {
        match client.refresh(&base, &refresh_token).await {
            Refreshed::Pair(pair) => {
                refresh_token = pair["refresh_token"].as_str().unwrap().to_owned();
                answered += 1;
            }
            Refreshed::Refused(status, body) => {
                panic!(
                    "a refresh under load was refused after {answered} answered: {status} {body}"
                )
            }
            Refreshed::Lost => break,
        }
    }
    (refresh_token, answered)
}

fn integrity_check(server: &Server) {
    let path = server.dir.path().join("tessera.db");
    let conn =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let verdict: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(verdict, ["ok"], "integrity_check after a kill");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshes_answered_before_a_sigkill_survive_it() {
    let _lane = common::lane(common::lanes::DURABILITY);
    let mut server = Server::start(&[], &[]);
    let (id, secret) = server.user_and_client(
        "2h",
        &["--rotate-refresh-tokens", "--refresh-retry-window", "5m"],
    );
    let mut chains: Vec<String> = (0..CHAINS)
        .map(|_| {
            let minted = server.admin(
                &[
                    "token",
                    "mint",
                    "--client-id",
                    &id,
                    "--username",
                    "ada@example.com",
                    "--scope",
                    "api refresh_token",
                ],
                None,
                // Salesforce's five grants per user and app would revoke the oldest.
                &[("TESSERA_MAX_GRANTS_PER_USER_CLIENT", "100")],
            );
            minted["refresh_token"].as_str().unwrap().to_owned()
        })
        .collect();
    let client = Arc::new(Client {
        http: reqwest::Client::new(),
        id,
        secret,
    });
    let mut total = 0;
    for kill in 0..KILLS {
        let running = Arc::new(AtomicBool::new(true));
        let load: Vec<_> = chains
            .drain(..)
            .map(|token| {
                tokio::spawn(chain_until_lost(
                    client.clone(),
                    server.base.clone(),
                    token,
                    running.clone(),
                ))
            })
            .collect();
        // A different moment of the load each time.
        tokio::time::sleep(Duration::from_millis(300 + 250 * kill as u64)).await;
        server.kill();
        running.store(false, Ordering::Relaxed);
        let mut answered = 0;
        for worker in load {
            let (token, n) = worker.await.unwrap();
            chains.push(token);
            answered += n;
        }
        assert!(
            answered > 0,
            "kill {kill}: no refresh was answered before it"
        );
        total += answered;
        server.restart();
        integrity_check(&server);

        // Each chain's last answered token still works: a first presentation either rotates it
        // (it was current) or replays the successor a lost answer carried; a second one, inside
        // the retry window, must give that same successor back.
        for token in &mut chains {
            let first = match client.refresh(&server.base, token).await {
                Refreshed::Pair(pair) => pair,
                Refreshed::Refused(status, body) => {
                    panic!(
                        "kill {kill}: an answered refresh token stopped working: {status} {body}"
                    )
                }
                Refreshed::Lost => panic!("kill {kill}: the restarted server did not answer"),
            };
            let Refreshed::Pair(second) = client.refresh(&server.base, token).await else {
                panic!("kill {kill}: a replay inside the retry window failed");
            };
            assert_eq!(
                first["refresh_token"], second["refresh_token"],
                "kill {kill}: a replay must give the same successor"
            );
            let api = client
                .http
                .get(format!("{}/services/data/v65.0/", server.base))
                .bearer_auth(first["access_token"].as_str().unwrap())
                .send()
                .await
                .unwrap();
            assert_eq!(
                api.status(),
                200,
                "kill {kill}: the successor's access token"
            );
            *token = first["refresh_token"].as_str().unwrap().to_owned();
        }
        eprintln!(
            "kill {kill}: {answered} refreshes answered before it; all {CHAINS} chains intact"
        );
    }
    eprintln!("{KILLS} kills, {total} refreshes answered in all");
    server.kill();
    integrity_check(&server);
}
