//! The verdict on one scenario, from what probe saw: the command's token and API requests in
//! order, what probe itself did to the server, and how the command ended. Pure: a recorded
//! sequence in, a verdict out, so that every rule is tested without a server.
//!
//! Tokens are never kept here: each refresh and access token is known by its number in the
//! order the server issued it (`RT1` came with the login, `RT2` replaced it, …).

use serde::Serialize;

use super::scenario::Scenario;

/// A refresh or access token by its place in the order of issue: 1 is the login's.
pub type Generation = u32;

/// The refresh token a token request presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "generation")]
pub enum Presented {
    /// None at all (another grant type).
    Nothing,
    /// One the server issued in this run.
    Known(Generation),
    /// One the server never issued (mangled, or from another run).
    Unknown,
}

/// How the server answered a token request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum TokenAnswer {
    /// Tokens: the refresh token's generation when one came (a replay inside the retry window
    /// answers the generation it answered before).
    Tokens {
        refresh: Option<Generation>,
        access: Option<Generation>,
    },
    /// An error: `invalid_grant` and the like.
    Refused { status: u16, error: String },
}

/// One thing probe saw or did, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Seen {
    /// A request of the command's to the token endpoint.
    Token {
        grant_type: String,
        presented: Presented,
        answer: TokenAnswer,
        /// False when probe dropped the connection instead of answering (`lost-response`).
        delivered: bool,
    },
    /// A request of the command's to the API (`/services/data/…`).
    Api {
        method: String,
        path: String,
        /// The access token it carried, if one the server issued in this run.
        access: Option<Generation>,
        status: u16,
    },
    /// Probe's own refresh with the same token, sent alongside the command's
    /// (`concurrent-refresh`).
    Duplicate { answer: TokenAnswer },
    /// Probe revoked the access token just used (`access-revoked`).
    AccessRevoked,
    /// Probe revoked the whole grant (`refresh-expired`).
    GrantRevoked,
    /// The server stopped and started again on the same database and port (`restart`).
    Restarted,
}

/// How the command's run ended, and what the server recorded meanwhile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    pub seen: Vec<Seen>,
    /// The API calls the command was asked to make.
    pub calls: u32,
    /// The server took a refresh for reuse of a rotated-out token and revoked the family.
    pub reuse_detected: bool,
    /// Stopped by probe at the scenario's timeout.
    pub timed_out: bool,
    /// Its exit status; `None` when it was killed (or timed out).
    pub exit_code: Option<i32>,
}

/// The judgement of one scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub scenario: Scenario,
    pub passed: bool,
    /// One line each: when it failed, the failures first, most telling first; when it passed,
    /// what the command did right.
    pub findings: Vec<String>,
    pub token_requests: usize,
    pub refreshes: usize,
    pub api_requests: usize,
    pub api_successes: usize,
}

/// What the consequence of presenting a rotated-out refresh token is, said once for all.
pub const REUSE_CONSEQUENCE: &str = "outside the retry window the server takes a rotated-out \
refresh token for a stolen one and revokes the whole family: the user is logged out";

/// A client request to the token endpoint, with its place among everything seen.
#[derive(Debug, Clone, Copy)]
struct TokenRequest<'a> {
    grant_type: &'a str,
    presented: Presented,
    answer: &'a TokenAnswer,
    delivered: bool,
}

fn token_requests(seen: &[Seen]) -> Vec<TokenRequest<'_>> {
    seen.iter()
        .filter_map(|seen| match seen {
            Seen::Token {
                grant_type,
                presented,
                answer,
                delivered,
            } => Some(TokenRequest {
                grant_type,
                presented: *presented,
                answer,
                delivered: *delivered,
            }),
            _ => None,
        })
        .collect()
}

fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

fn refreshed_generation(answer: &TokenAnswer) -> Option<Generation> {
    match answer {
        TokenAnswer::Tokens { refresh, .. } => *refresh,
        TokenAnswer::Refused { .. } => None,
    }
}

fn plural(count: usize, one: &str, many: &str) -> String {
    if count == 1 {
        format!("{count} {one}")
    } else {
        format!("{count} {many}")
    }
}

/// Findings as they are collected: failures and what went right, apart.
#[derive(Debug, Default)]
struct Findings {
    failures: Vec<String>,
    right: Vec<String>,
}

impl Findings {
    fn fail(&mut self, text: impl Into<String>) {
        self.failures.push(text.into());
    }
    fn right(&mut self, text: impl Into<String>) {
        self.right.push(text.into());
    }
}

/// Judges one scenario's run.
pub fn judge(scenario: Scenario, run: &Run) -> Verdict {
    let requests = token_requests(&run.seen);
    let refreshes = requests
        .iter()
        .filter(|r| r.grant_type == "refresh_token")
        .count();
    let api: Vec<(usize, &Seen)> = run
        .seen
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s, Seen::Api { .. }))
        .collect();
    let api_successes = api
        .iter()
        .filter(|(_, s)| matches!(s, Seen::Api { status, .. } if is_success(*status)))
        .count();
    let mut findings = Findings::default();
    if run.timed_out {
        findings.fail(
            "did not finish before the scenario's timeout: probe stopped it (a refresh or retry \
             loop?)",
        );
    }
    check_rotation(&requests, &mut findings);
    if run.reuse_detected {
        findings.fail(
            "the server detected reuse of a rotated-out refresh token and revoked the family",
        );
    }
    for request in &requests {
        if request.grant_type != "refresh_token" {
            findings.fail(format!(
                "asked for a new login (grant_type={}) instead of refreshing",
                request.grant_type
            ));
        }
    }
    match scenario {
        Scenario::Rotation => {
            let delivered = requests
                .iter()
                .filter(|r| r.delivered && refreshed_generation(r.answer).is_some())
                .count();
            // Said only when nothing else went wrong: a command that failed earlier could
            // not get as far.
            if delivered < 2 && findings.failures.is_empty() {
                findings.fail(format!(
                    "refreshed {} with a new refresh token; the rotation check needs 2 (make \
                     TESSERA_PROBE_CALLS calls, TESSERA_PROBE_PAUSE_MS apart)",
                    plural(delivered, "time", "times")
                ));
            }
        }
        Scenario::LostResponse => check_lost_response(&requests, &mut findings),
        Scenario::ConcurrentRefresh => check_concurrent_refresh(&run.seen, &mut findings),
        Scenario::AccessRevoked => check_access_revoked(&run.seen, &mut findings),
        Scenario::RefreshExpired => check_refresh_expired(&run.seen, &mut findings),
        Scenario::Restart => check_restart(&run.seen, &mut findings),
    }
    if scenario != Scenario::RefreshExpired {
        let calls = run.calls as usize;
        if api_successes < calls {
            findings.fail(format!("{api_successes} of {calls} API calls succeeded"));
        }
    }
    let passed = findings.failures.is_empty();
    let findings = if passed {
        findings.right
    } else {
        findings.failures
    };
    Verdict {
        scenario,
        passed,
        findings,
        token_requests: requests.len(),
        refreshes,
        api_requests: api.len(),
        api_successes,
    }
}

/// Every refresh must present the newest refresh token the command has received: a response
/// probe dropped was never received, so its retry presents the token before it, rightly.
fn check_rotation(requests: &[TokenRequest<'_>], findings: &mut Findings) {
    let mut newest: Generation = 1;
    let mut stale = 0;
    let mut rotations = 0;
    for request in requests {
        match request.presented {
            Presented::Known(generation) if generation != newest && stale == 0 => {
                stale += 1;
                findings.fail(format!(
                    "presented RT{generation}, which RT{newest} had replaced: it did not keep \
                     the rotated refresh token ({REUSE_CONSEQUENCE})"
                ));
            }
            Presented::Known(generation) if generation != newest => stale += 1,
            Presented::Unknown => {
                findings.fail("presented a refresh token the server never issued");
            }
            Presented::Known(_) | Presented::Nothing => {}
        }
        if let (true, Some(generation)) = (request.delivered, refreshed_generation(request.answer))
        {
            if generation > newest {
                rotations += 1;
                newest = generation;
            }
        }
    }
    if stale > 1 {
        findings.fail(format!(
            "{} presented a rotated-out refresh token",
            plural(stale, "refresh", "refreshes")
        ));
    }
    if stale == 0 && rotations > 0 {
        findings.right(format!(
            "presented the newest refresh token each time ({})",
            plural(rotations, "rotation", "rotations")
        ));
    }
}

fn check_lost_response(requests: &[TokenRequest<'_>], findings: &mut Findings) {
    let Some(lost) = requests.iter().position(|r| !r.delivered) else {
        findings.fail("never refreshed, so no response could be lost: the scenario did not happen");
        return;
    };
    let (Some(lost_request), retry) = (requests.get(lost), requests.get(lost + 1)) else {
        return;
    };
    let Some(retry) = retry else {
        findings.fail(
            "gave up after the lost response: no retry with the same refresh token (inside the \
             retry window the server answers the same pair again)",
        );
        return;
    };
    if retry.presented != lost_request.presented {
        // check_rotation has said what it presented.
        return;
    }
    match (retry.answer, lost_request.answer) {
        (
            TokenAnswer::Tokens { refresh: got, .. },
            TokenAnswer::Tokens {
                refresh: committed, ..
            },
        ) if got == committed => findings.right(
            "retried the lost refresh with the same token inside the retry window and got the \
             same pair",
        ),
        (TokenAnswer::Refused { error, .. }, _) => findings.fail(format!(
            "its retry of the lost refresh was refused ({error}): too late for the retry window?"
        )),
        _ => findings.fail("its retry of the lost refresh got another pair than the lost one"),
    }
}

fn check_concurrent_refresh(seen: &[Seen], findings: &mut Findings) {
    let Some(duplicate) = seen.iter().find_map(|s| match s {
        Seen::Duplicate { answer } => Some(answer),
        _ => None,
    }) else {
        findings
            .fail("never refreshed, so no refresh could be doubled: the scenario did not happen");
        return;
    };
    match duplicate {
        TokenAnswer::Tokens { .. } => findings.right(
            "went on with the pair it got while a second refresh of the same token ran alongside",
        ),
        TokenAnswer::Refused { error, .. } => findings.right(format!(
            "went on with the pair it got; the second refresh alongside was refused ({error})"
        )),
    }
}

/// The index of the first `Seen` matching `wanted`.
fn first(seen: &[Seen], wanted: impl Fn(&Seen) -> bool) -> Option<usize> {
    seen.iter().position(wanted)
}

fn check_access_revoked(seen: &[Seen], findings: &mut Findings) {
    let Some(revoked) = first(seen, |s| matches!(s, Seen::AccessRevoked)) else {
        findings.fail("made no successful API call, so no access token could be revoked");
        return;
    };
    let after = seen.get(revoked + 1..).unwrap_or_default();
    let Some(rejected) = first(after, |s| matches!(s, Seen::Api { status: 401, .. })) else {
        findings.fail("never called the API with the revoked access token");
        return;
    };
    let Some(Seen::Api {
        method: rejected_method,
        path: rejected_path,
        ..
    }) = after.get(rejected)
    else {
        return;
    };
    let rest = after.get(rejected + 1..).unwrap_or_default();
    let Some(replayed) = first(
        rest,
        |s| matches!(s, Seen::Api { method, path, .. } if method == rejected_method && path == rejected_path),
    ) else {
        let refreshed = rest.iter().any(|s| matches!(s, Seen::Token { .. }));
        findings.fail(if refreshed {
            "refreshed on the 401 but did not replay the call"
        } else {
            "did not refresh on the 401"
        });
        return;
    };
    let between = rest.get(..replayed).unwrap_or_default();
    let refreshes = between
        .iter()
        .filter(|s| matches!(s, Seen::Token { .. }))
        .count();
    let replay_status = match rest.get(replayed) {
        Some(Seen::Api { status, .. }) => *status,
        _ => 0,
    };
    match refreshes {
        0 => findings.fail("replayed the call on the 401 without refreshing first"),
        1 if is_success(replay_status) => {
            findings.right("on the 401 it refreshed once and replayed the call")
        }
        1 => findings.fail(format!(
            "refreshed on the 401, but the replayed call was answered {replay_status}"
        )),
        many => findings.fail(format!("refreshed {many} times for one 401")),
    }
}

fn check_refresh_expired(seen: &[Seen], findings: &mut Findings) {
    let Some(revoked) = first(seen, |s| matches!(s, Seen::GrantRevoked)) else {
        findings.fail("made no successful API call, so the login was never ended");
        return;
    };
    let after = seen.get(revoked + 1..).unwrap_or_default();
    let Some(refused) = first(after, |s| {
        matches!(
            s,
            Seen::Token {
                answer: TokenAnswer::Refused { .. },
                ..
            }
        )
    }) else {
        findings.fail(
            "never tried to refresh after its login ended, so it could not learn that it had to \
             ask for a new one",
        );
        return;
    };
    let rest = after.get(refused + 1..).unwrap_or_default();
    let more_refreshes = rest
        .iter()
        .filter(|s| matches!(s, Seen::Token { .. }))
        .count();
    let more_calls = rest
        .iter()
        .filter(|s| matches!(s, Seen::Api { .. }))
        .count();
    if more_refreshes > 1 {
        findings.fail(format!(
            "kept refreshing after invalid_grant: {more_refreshes} more token requests (a loop)"
        ));
    }
    if more_calls > 1 {
        findings.fail(format!(
            "kept calling the API after invalid_grant: {more_calls} more calls"
        ));
    }
    if more_refreshes <= 1 && more_calls <= 1 {
        findings.right("stopped after invalid_grant (a new login is needed), no loop");
    }
}

fn check_restart(seen: &[Seen], findings: &mut Findings) {
    let Some(restarted) = first(seen, |s| matches!(s, Seen::Restarted)) else {
        findings.fail("made no successful API call, so the server was never restarted");
        return;
    };
    let after = seen.get(restarted + 1..).unwrap_or_default();
    if after
        .iter()
        .any(|s| matches!(s, Seen::Api { status, .. } if is_success(*status)))
    {
        findings.right("kept working with its tokens across the restart");
    } else {
        findings.fail("made no successful API call after the restart");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refresh(presented: Generation, got: Generation) -> Seen {
        Seen::Token {
            grant_type: "refresh_token".into(),
            presented: Presented::Known(presented),
            answer: TokenAnswer::Tokens {
                refresh: Some(got),
                access: Some(got),
            },
            delivered: true,
        }
    }

    fn refused(presented: Generation) -> Seen {
        Seen::Token {
            grant_type: "refresh_token".into(),
            presented: Presented::Known(presented),
            answer: TokenAnswer::Refused {
                status: 400,
                error: "invalid_grant".into(),
            },
            delivered: true,
        }
    }

    fn api(access: Generation, status: u16) -> Seen {
        Seen::Api {
            method: "GET".into(),
            path: "/services/data/v65.0/sobjects".into(),
            access: Some(access),
            status,
        }
    }

    fn run(seen: Vec<Seen>, calls: u32) -> Run {
        Run {
            seen,
            calls,
            reuse_detected: false,
            timed_out: false,
            exit_code: Some(0),
        }
    }

    #[test]
    fn a_client_presenting_each_rotated_token_passes_the_rotation_check() {
        let seen = vec![
            api(1, 200),
            refresh(1, 2),
            api(2, 200),
            refresh(2, 3),
            api(3, 200),
        ];
        let verdict = judge(Scenario::Rotation, &run(seen, 3));
        assert!(verdict.passed, "{verdict:?}");
        assert_eq!(
            verdict.findings,
            ["presented the newest refresh token each time (2 rotations)"]
        );
        assert_eq!((verdict.token_requests, verdict.api_requests), (2, 3));
    }

    #[test]
    fn a_client_keeping_its_first_refresh_token_fails_with_the_consequence() {
        let seen = vec![api(1, 200), refresh(1, 2), api(2, 200), refused(1)];
        let mut run = run(seen, 3);
        run.reuse_detected = true;
        run.exit_code = Some(1);
        let verdict = judge(Scenario::Rotation, &run);
        assert!(!verdict.passed);
        assert!(
            verdict.findings[0].starts_with("presented RT1, which RT2 had replaced"),
            "{verdict:?}"
        );
        assert!(verdict.findings[0].contains("revokes the whole family"));
        assert!(verdict
            .findings
            .iter()
            .any(|f| f.contains("detected reuse")));
        assert!(verdict
            .findings
            .iter()
            .any(|f| f == "2 of 3 API calls succeeded"));
    }

    #[test]
    fn one_rotation_is_not_enough_for_the_rotation_check() {
        let seen = vec![api(1, 200), refresh(1, 2), api(2, 200)];
        let verdict = judge(Scenario::Rotation, &run(seen, 2));
        assert!(!verdict.passed);
        assert!(verdict.findings[0].starts_with("refreshed 1 time with a new refresh token"));
    }

    #[test]
    fn a_retry_after_a_lost_response_presents_the_same_token_and_passes() {
        let lost = Seen::Token {
            grant_type: "refresh_token".into(),
            presented: Presented::Known(1),
            answer: TokenAnswer::Tokens {
                refresh: Some(2),
                access: Some(2),
            },
            delivered: false,
        };
        let seen = vec![
            api(1, 200),
            lost,
            refresh(1, 2),
            api(2, 200),
            refresh(2, 3),
            api(3, 200),
        ];
        let verdict = judge(Scenario::LostResponse, &run(seen, 3));
        assert!(verdict.passed, "{verdict:?}");
        assert!(verdict
            .findings
            .iter()
            .any(|f| f.contains("got the same pair")));
    }

    #[test]
    fn giving_up_after_a_lost_response_fails() {
        let lost = Seen::Token {
            grant_type: "refresh_token".into(),
            presented: Presented::Known(1),
            answer: TokenAnswer::Tokens {
                refresh: Some(2),
                access: Some(2),
            },
            delivered: false,
        };
        let verdict = judge(Scenario::LostResponse, &run(vec![api(1, 200), lost], 3));
        assert!(!verdict.passed);
        assert!(verdict.findings[0].starts_with("gave up after the lost response"));
    }

    #[test]
    fn a_refresh_token_the_server_never_issued_fails() {
        let seen = vec![Seen::Token {
            grant_type: "refresh_token".into(),
            presented: Presented::Unknown,
            answer: TokenAnswer::Refused {
                status: 400,
                error: "invalid_grant".into(),
            },
            delivered: true,
        }];
        let verdict = judge(Scenario::Rotation, &run(seen, 0));
        assert!(verdict
            .findings
            .contains(&"presented a refresh token the server never issued".to_owned()));
    }

    #[test]
    fn a_401_answered_by_one_refresh_and_a_replay_passes_and_two_refreshes_fail() {
        let right = vec![
            api(1, 200),
            Seen::AccessRevoked,
            api(1, 401),
            refresh(1, 2),
            api(2, 200),
        ];
        let verdict = judge(Scenario::AccessRevoked, &run(right, 2));
        assert!(verdict.passed, "{verdict:?}");
        let twice = vec![
            api(1, 200),
            Seen::AccessRevoked,
            api(1, 401),
            refresh(1, 2),
            refresh(2, 3),
            api(3, 200),
        ];
        let verdict = judge(Scenario::AccessRevoked, &run(twice, 2));
        assert!(!verdict.passed);
        assert_eq!(verdict.findings, ["refreshed 2 times for one 401"]);
        let gave_up = vec![api(1, 200), Seen::AccessRevoked, api(1, 401)];
        let verdict = judge(Scenario::AccessRevoked, &run(gave_up, 2));
        assert_eq!(verdict.findings[0], "did not refresh on the 401");
    }

    #[test]
    fn stopping_after_invalid_grant_passes_and_a_refresh_loop_fails() {
        let stops = vec![api(1, 200), Seen::GrantRevoked, api(1, 401), refused(1)];
        let mut stopped = run(stops, 3);
        stopped.exit_code = Some(1);
        let verdict = judge(Scenario::RefreshExpired, &stopped);
        assert!(verdict.passed, "{verdict:?}");
        let mut seen = vec![api(1, 200), Seen::GrantRevoked];
        for _ in 0..5 {
            seen.push(api(1, 401));
            seen.push(refused(1));
        }
        let mut looping = run(seen, 3);
        looping.timed_out = true;
        let verdict = judge(Scenario::RefreshExpired, &looping);
        assert!(!verdict.passed);
        assert!(verdict.findings[0].starts_with("did not finish before"));
        assert!(verdict.findings.contains(
            &"kept refreshing after invalid_grant: 4 more token requests (a loop)".to_owned()
        ));
    }

    #[test]
    fn a_new_login_and_a_dead_client_after_restart_fail() {
        let seen = vec![
            api(1, 200),
            Seen::Restarted,
            Seen::Token {
                grant_type: "password".into(),
                presented: Presented::Nothing,
                answer: TokenAnswer::Refused {
                    status: 400,
                    error: "unsupported_grant_type".into(),
                },
                delivered: true,
            },
        ];
        let verdict = judge(Scenario::Restart, &run(seen, 2));
        assert!(!verdict.passed);
        assert_eq!(
            verdict.findings,
            [
                "asked for a new login (grant_type=password) instead of refreshing",
                "made no successful API call after the restart",
                "1 of 2 API calls succeeded",
            ]
        );
    }

    #[test]
    fn a_refresh_alongside_a_duplicate_passes_when_the_client_goes_on() {
        let seen = vec![
            api(1, 200),
            Seen::Duplicate {
                answer: TokenAnswer::Tokens {
                    refresh: Some(2),
                    access: Some(2),
                },
            },
            refresh(1, 2),
            api(2, 200),
        ];
        let verdict = judge(Scenario::ConcurrentRefresh, &run(seen, 2));
        assert!(verdict.passed, "{verdict:?}");
    }
}
