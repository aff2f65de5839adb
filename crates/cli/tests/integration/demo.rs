//! `tessera demo` as a learner runs it: the whole story and the common mistakes against the real
//! server it starts, one act alone with `--act`, and the pauses of `--step`.

use crate::common;

/// Runs `tessera demo` with `args` (short-lived access tokens), feeding `stdin`; requires
/// success and returns what it printed.
fn demo(args: &[&str], stdin: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut command = common::tessera(dir.path());
    command.env("TESSERA_CLIENT_DIR", dir.path().join("client"));
    let mut all = vec!["demo", "--access-token-ttl", "2s"];
    all.extend_from_slice(args);
    let out = common::run(command, &all, stdin);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn assert_in_order(text: &str, expected: &[&str]) {
    let mut from = 0;
    for line in expected {
        match text[from..].find(line) {
            Some(at) => from += at + line.len(),
            None => panic!("missing {line:?} (in this order) in:\n{text}"),
        }
    }
}

#[test]
fn demo_runs_the_whole_story_and_the_common_mistakes_on_a_fresh_machine() {
    let _lane = common::lane(common::lanes::SHARED);
    let text = demo(&[], None);
    assert_in_order(
        &text,
        &[
            "1. Log in",
            "2. Call the API",
            "(the token manager, before expiry)",
            "RT2: rotated",
            "4. The access token is revoked early",
            // The reactive path: the call, its 401, the refresh, the replay, its 200.
            "401 INVALID_SESSION_ID\n",
            "(the token manager, on the 401)",
            "RT3: rotated",
            "replayed once, with the new token",
            "200 OK — the app saw neither the 401 nor the refresh",
            "5. An attacker replays",
            "invalid_grant",
            "ReauthRequired",
            // The mistakes: the two token responses side by side, one without a refresh token…
            "7. Mistake: not asking for the refresh_token scope",
            "asked for scope=api id    asked for scope=api id refresh_token",
            "refresh_token  (none)     refresh_token  …",
            "ReauthRequired { reason: the session has no refresh token",
            // …a refresh token past its lifetime: one refused refresh, then no more…
            "8. Mistake: counting on a refresh token that has expired",
            "400 invalid_grant \"expired access/refresh token\"",
            "refresh requests sent for both calls: 1 —",
            // …a plain file a thief can use, a sealed one he cannot…
            "9. Mistake: storing refresh tokens in plain text",
            "the refresh token is there in clear",
            "the refresh token does not appear in it (checked byte by byte)",
            "200 OK  a fresh access token: the thief is the user now",
            "the copy decrypts to nothing",
            // …and a rotated token not kept: hidden by the window, then the family revoked.
            "10. Mistake: not keeping the rotated refresh token",
            "200 OK  the same pair again",
            "RT1 was rotated out",
            "grant_type=refresh_token RT2 (had the app kept it)",
            "400 Bad Request invalid_grant",
            "11. Quiz",
            "Q1. What is the refresh-token flow for?",
            "A1. ",
            "Q2. Where do refresh tokens belong?",
            "(act 9)",
            "Q3. What happens when a refresh token expires?",
            "(acts 6 and 8)",
            "Done.",
        ],
    );
    // The narration tells the story, not the token manager's internals, and never prints a
    // whole token.
    assert!(!text.contains("lock wait"), "{text}");
    assert!(!text.contains("Press Enter"), "{text}");
}

#[test]
fn demo_act_runs_one_act_and_tells_only_that_one() {
    let _lane = common::lane(common::lanes::SHARED);
    // A story act needs the acts before it; they run, unseen.
    let stolen = demo(&["--act", "stolen-token"], None);
    assert!(stolen.contains("5. An attacker replays"), "{stolen}");
    assert!(stolen.contains("invalid_grant"), "{stolen}");
    for other in [
        "1. Log in",
        "4. The access token",
        "6. The app calls",
        "7. Mistake",
        "11. Quiz",
    ] {
        assert!(!stolen.contains(other), "{other:?} in:\n{stolen}");
    }
    let kept = demo(&["--act", "kept-old-token"], None);
    assert!(
        kept.contains("10. Mistake: not keeping the rotated refresh token"),
        "{kept}"
    );
    assert!(
        !kept.contains("1. Log in") && !kept.contains("9. Mistake"),
        "{kept}"
    );

    let dir = tempfile::tempdir().unwrap();
    let unknown = common::run(common::tessera(dir.path()), &["demo", "--act", "nap"], None);
    assert!(!unknown.status.success());
    let help = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        help.contains("kept-old-token") && help.contains("no-refresh-scope"),
        "{help}"
    );
}

#[test]
fn demo_step_waits_for_enter_before_each_answer_and_goes_on_when_input_ends() {
    let _lane = common::lane(common::lanes::SHARED);
    let quiz = demo(&["--step", "--act", "quiz"], Some("\n\n\n\n"));
    assert_in_order(
        &quiz,
        &[
            "Q1.",
            "Press Enter for the answer",
            "A1.",
            "Q2.",
            "Press Enter for the answer",
            "A2.",
            "Q3.",
            "Press Enter for the answer",
            "A3.",
            "Done.",
        ],
    );
    let act = demo(&["--step", "--act", "plain-text-storage"], Some("\n"));
    assert_in_order(
        &act,
        &[
            "9. Mistake",
            "the copy decrypts to nothing",
            "Press Enter for the next act",
            "Done.",
        ],
    );
    // With no input at all, the first pause sees the end of it and the demo runs on.
    let unattended = demo(&["--step", "--act", "quiz"], None);
    assert_eq!(unattended.matches("Press Enter").count(), 1, "{unattended}");
    assert!(
        unattended.contains("A3.") && unattended.contains("Done."),
        "{unattended}"
    );
}
