//! The invariants of docs/security.md, "Invariants", as properties over random sequences of
//! refresh, replay, revoke and time steps, checked against a model of one family on the HTTP
//! surface.
//!
//! I1 at most one live refresh token per family; I2 a revoked family is dead everywhere (token
//! endpoint, introspection, API); I3 a replay outside the policy revokes the family, a tampered
//! token never does; I5 scope never grows; I6 the client never changes; I7 no use after the
//! absolute lifetime; I8 no 5xx. (I4, durability, is the store's: see its crash test.)

use axum::http::StatusCode;
use proptest::prelude::*;
use serde_json::Value;
use tessera_core::operations::admin::ClientSettings;

use crate::support::*;

const SCOPE: &str = "api id refresh_token";
const LIFETIME_SECS: u64 = 3600;

#[derive(Debug, Clone)]
enum Step {
    /// Refresh with the newest refresh token.
    Refresh,
    /// Replay the refresh token this many generations back (1 = the previous one).
    Replay(usize),
    /// Present the newest token with one character changed.
    Tamper,
    /// Revoke the newest refresh token, or the newest access token.
    RevokeRefresh,
    RevokeAccess,
    /// Let time pass.
    Wait(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => Just(Step::Refresh),
        3 => (1usize..4).prop_map(Step::Replay),
        1 => Just(Step::Tamper),
        1 => Just(Step::RevokeRefresh),
        1 => Just(Step::RevokeAccess),
        3 => prop_oneof![Just(0u64), Just(1), Just(3), Just(20), Just(45), Just(400)].prop_map(Step::Wait),
    ]
}

/// What the model knows of the family.
struct Model {
    window: u64,
    refresh_tokens: Vec<String>,
    access_tokens: Vec<String>,
    /// Seconds since the grant at which each refresh token was rotated out.
    rotated_at: Vec<u64>,
    revoked_access: Vec<bool>,
    family_revoked: bool,
    now: u64,
}

fn assert_no_5xx(reply: &Reply) {
    assert!(
        !reply.status.is_server_error(),
        "I8: {} {}",
        reply.status,
        reply.text()
    );
}

async fn run(window: u64, steps: Vec<Step>) {
    let h = Harness::new().await;
    let c = h
        .client(
            false,
            ClientSettings {
                rotate_refresh_tokens: Some(true),
                refresh_retry_window_secs: Some(window),
                refresh_token_policy: Some(
                    format!("specific_lifetime:{LIFETIME_SECS}:SECONDS")
                        .parse()
                        .unwrap(),
                ),
                access_token_ttl_secs: Some(600),
                ..Default::default()
            },
        )
        .await;
    let first = h.login(&c, SCOPE).await;
    let mut m = Model {
        window,
        refresh_tokens: vec![first["refresh_token"].as_str().unwrap().to_owned()],
        access_tokens: vec![first["access_token"].as_str().unwrap().to_owned()],
        rotated_at: vec![],
        revoked_access: vec![false],
        family_revoked: false,
        now: 0,
    };
    for step in steps {
        let expired = m.now >= LIFETIME_SECS;
        match step {
            Step::Refresh => {
                let newest = m.refresh_tokens.last().unwrap().clone();
                let reply = h.refresh(&c, &newest).await;
                assert_no_5xx(&reply);
                if m.family_revoked || expired {
                    reply.assert_oauth_error(400, "invalid_grant");
                } else {
                    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
                    let body: Value = reply.json();
                    assert_eq!(body["scope"], "api id refresh_token", "I5");
                    m.refresh_tokens
                        .push(body["refresh_token"].as_str().unwrap().to_owned());
                    m.access_tokens
                        .push(body["access_token"].as_str().unwrap().to_owned());
                    m.revoked_access.push(false);
                    m.rotated_at.push(m.now);
                }
            }
            Step::Replay(back) => {
                if back >= m.refresh_tokens.len() {
                    continue;
                }
                let index = m.refresh_tokens.len() - 1 - back;
                let reply = h.refresh(&c, &m.refresh_tokens[index].clone()).await;
                assert_no_5xx(&reply);
                let rotated_at = m.rotated_at[index];
                let previous = back == 1;
                if m.family_revoked {
                    reply.assert_oauth_error(400, "invalid_grant");
                } else if previous && m.window > 0 && m.now < rotated_at + m.window {
                    // The identical successor, no state change.
                    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
                    assert_eq!(
                        reply.json()["refresh_token"].as_str().unwrap(),
                        m.refresh_tokens.last().unwrap()
                    );
                } else if previous && m.now < rotated_at + 2 {
                    reply.assert_oauth_error(400, "invalid_grant");
                    assert_eq!(
                        reply.json()["error_description"],
                        "token request is already being processed"
                    );
                } else {
                    // I3: reuse revokes the family.
                    reply.assert_oauth_error(400, "invalid_grant");
                    m.family_revoked = true;
                }
            }
            Step::Tamper => {
                let newest = m.refresh_tokens.last().unwrap();
                let mut bytes = newest.clone().into_bytes();
                let i = bytes.len() / 2;
                bytes[i] = if bytes[i] == b'Q' { b'R' } else { b'Q' };
                let reply = h.refresh(&c, &String::from_utf8(bytes).unwrap()).await;
                assert_no_5xx(&reply);
                reply.assert_oauth_error(400, "invalid_grant");
                // I3: a tampered token never revokes the family (checked by the next Refresh).
            }
            Step::RevokeRefresh => {
                let reply = h.revoke(&m.refresh_tokens.last().unwrap().clone()).await;
                assert_no_5xx(&reply);
                assert_eq!(reply.status, StatusCode::OK);
                m.family_revoked = true;
            }
            Step::RevokeAccess => {
                let reply = h.revoke(&m.access_tokens.last().unwrap().clone()).await;
                assert_no_5xx(&reply);
                assert_eq!(reply.status, StatusCode::OK);
                *m.revoked_access.last_mut().unwrap() = true;
            }
            Step::Wait(secs) => {
                h.clock.advance_secs(secs);
                m.now += secs;
            }
        }
        check_invariants(&h, &c, &m).await;
    }
}

async fn check_invariants(h: &Harness, c: &Client, m: &Model) {
    let expired = m.now >= LIFETIME_SECS;
    // I1, I2, I6, I7 through introspection of every refresh token of the family.
    let mut live = 0;
    for token in &m.refresh_tokens {
        let answer = h.introspect(c, token).await;
        assert_no_5xx(&answer);
        let answer = answer.json();
        if answer["active"] == true {
            live += 1;
            assert_eq!(answer["client_id"], c.id.as_str(), "I6");
            assert_eq!(answer["scope"], "api id refresh_token", "I5");
            assert!(
                !m.family_revoked,
                "I2: a revoked family has a live refresh token"
            );
            assert!(
                !expired,
                "I7: a refresh token outlived the absolute lifetime"
            );
        }
    }
    assert!(live <= 1, "I1: {live} live refresh tokens in one family");
    if !m.family_revoked && !expired {
        assert_eq!(live, 1, "the newest refresh token should be live");
    }
    // I2 on the API: no access token of a revoked family works; revoked access tokens never do.
    for (token, revoked) in m.access_tokens.iter().zip(&m.revoked_access) {
        if m.family_revoked || *revoked {
            assert!(
                !h.api_works(token).await,
                "I2: a revoked access token still works"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn refresh_token_families_keep_their_invariants(
        window in prop_oneof![Just(0u64), Just(30u64)],
        steps in proptest::collection::vec(step(), 1..25),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(run(window, steps));
    }
}
