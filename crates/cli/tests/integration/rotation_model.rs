//! A counterexample of the rotation model, replayed against a real `tessera serve`: the model
//! found it with a fault seeded in the rule (a second rotation on an in-window replay); the
//! server, which runs the same rule unseeded, answers the same requests as the properties say
//! (docs/rotation-model.md).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tessera_rotation_model::trace::{server_steps, ServerStep, RECORDED_TRACE};

use crate::common::{self, Server};

/// The retry window of the replayed client, short so that a trace's "window closes" is a short
/// wait: past the window and the two seconds a duplicate is taken for a concurrent refresh.
const WINDOW: &str = "2s";
const WINDOW_CLOSED_AFTER: Duration = Duration::from_millis(4_500);

/// The tokens of a replay, named as the trace names them: RT1 the first, then each new one in
/// the order the server answered it.
#[derive(Default)]
struct Tokens {
    by_name: BTreeMap<u8, String>,
}

impl Tokens {
    fn value(&self, name: u8) -> &str {
        self.by_name
            .get(&name)
            .unwrap_or_else(|| panic!("the trace sends RT{name}, which the server never issued"))
    }

    /// The name of `value`: the one it had, or the next.
    fn name(&mut self, value: &str) -> u8 {
        if let Some((name, _)) = self.by_name.iter().find(|(_, v)| *v == value) {
            return *name;
        }
        let next = self.by_name.keys().max().map_or(1, |n| n + 1);
        self.by_name.insert(next, value.to_owned());
        next
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_counterexample_replayed_against_the_real_server_keeps_every_rule() {
    let _lane = common::lane(common::lanes::SHARED);
    let trace_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../rotation-model")
        .join(RECORDED_TRACE);
    let trace = std::fs::read_to_string(&trace_path).unwrap();
    let steps = server_steps(&trace);
    assert!(
        steps
            .iter()
            .filter(|s| matches!(s, ServerStep::Request(_)))
            .count()
            >= 2,
        "{trace}"
    );

    let server = Server::start(&[], &[]);
    let (client_id, secret) = server.user_and_client(
        "2h",
        &["--rotate-refresh-tokens", "--refresh-retry-window", WINDOW],
    );
    let minted = server.mint(&client_id, &[]);
    let mut tokens = Tokens::default();
    assert_eq!(tokens.name(minted["refresh_token"].as_str().unwrap()), 1);

    let http = reqwest::Client::new();
    // What the server answered each token it was sent: the name of the refresh token, or the
    // refusal.
    let mut answered: BTreeMap<u8, Vec<Result<u8, String>>> = BTreeMap::new();
    for step in steps {
        let request = match step {
            ServerStep::WindowCloses => {
                tokio::time::sleep(WINDOW_CLOSED_AFTER).await;
                continue;
            }
            ServerStep::Request(request) => request,
        };
        assert!(
            !request.attacker && request.proves_key.is_none(),
            "this replay sends a client's requests without DPoP: {request:?}"
        );
        let response = http
            .post(format!("{}/services/oauth2/token", server.base))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens.value(request.token)),
                ("client_id", &client_id),
                ("client_secret", &secret),
            ])
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        let answer = match body["refresh_token"].as_str() {
            Some(refresh_token) if status == 200 => Ok(tokens.name(refresh_token)),
            _ => Err(format!("{status} {body}")),
        };
        answered.entry(request.token).or_default().push(answer);
    }

    // The properties, on the real answers: every request of the honest client (no attacker in
    // the trace, the window never closed on a token it held) got tokens; each parent's answers
    // carry the identical pair, so it has one successor.
    for (parent, answers) in &answered {
        assert!(answers.iter().all(Result::is_ok), "RT{parent}: {answers:?}");
        assert!(
            answers.windows(2).all(|w| w[0] == w[1]),
            "RT{parent} was answered different pairs: {answers:?}"
        );
    }
    assert_eq!(
        answered.get(&1).and_then(|a| a.first()),
        Some(&Ok(2)),
        "{answered:?}"
    );
}
