//! The rotation protocol, model-checked: each configuration explored exhaustively (breadth
//! first) against every property, its unique state count pinned; and each seeded fault of the
//! rule caught, its shortest counterexample printed as HTTP requests.

// Test code: a broken property or a missing counterexample fails the test with its trace.
#![allow(clippy::panic)]

use std::time::Instant;

use stateright::{Checker, Model};
use tessera_core::flows::rotation::Fault;
use tessera_rotation_model::trace::{http_trace, RECORDED_TRACE};
use tessera_rotation_model::{
    RotationModel, FAMILY_REVOKED, IDENTICAL_PAIR, NO_HONEST_LOGOUT, ONE_SUCCESSOR,
    REVOCATION_HAS_A_CAUSE, SAFETY, TWO_ROTATIONS, WRONG_KEY_NEVER_REVOKES,
};

/// Explores `model` to the end and checks every property: no `always` is broken, each
/// `sometimes` is met (so the model is not vacuous). Returns the unique state count.
fn check_completely(name: &str, model: RotationModel) -> usize {
    let started = Instant::now();
    let checker = model.checker().spawn_bfs().join();
    eprintln!(
        "{name}: {} unique states, depth {}, {:.1?}",
        checker.unique_state_count(),
        checker.max_depth(),
        started.elapsed()
    );
    for property in SAFETY {
        if let Some(path) = checker.discovery(property) {
            let trace = http_trace(checker.model(), &path.into_vec());
            panic!("{name}: \"{property}\" is broken:\n{}", trace.join("\n"));
        }
    }
    for example in [FAMILY_REVOKED, TWO_ROTATIONS] {
        assert!(
            checker.discovery(example).is_some(),
            "{name}: \"{example}\" never happens: the model is vacuous"
        );
    }
    checker.unique_state_count()
}

#[test]
fn one_client_with_crash_and_restart_keeps_every_rule() {
    let states = check_completely("one client", RotationModel::one_client_crash_restart());
    assert_eq!(states, 2_542);
}

#[test]
fn two_clients_sharing_one_family_keep_every_rule() {
    let states = check_completely(
        "two clients",
        RotationModel::two_clients_sharing_one_family(),
    );
    assert_eq!(states, 53_253);
}

#[test]
fn two_clients_an_attacker_and_the_window_expiring_keep_every_rule() {
    let states = check_completely(
        "two clients and an attacker",
        RotationModel::two_clients_attacker_window_expiry(),
    );
    assert_eq!(states, 182_733);
}

/// The clients' canonical numbering merges states (so the pinned counts are of the reduced
/// space), and loses no violation: with or without it, the same properties hold.
#[test]
fn symmetry_merges_states_that_differ_only_by_which_client_is_which() {
    let without = RotationModel {
        symmetry: false,
        ..RotationModel::two_clients_sharing_one_family()
    };
    let states = check_completely("two clients, numbered", without);
    assert_eq!(states, 105_715, "twice-ish the 53,253 with it");
}

/// Three clients, three rotations, the attacker: a minute and a half, on demand (docs/rotation-model.md,
/// "The deep check"), not in CI.
#[test]
#[ignore = "the deep check: a minute and a half, run on demand"]
fn deep_three_clients_three_rotations_keep_every_rule() {
    let states = check_completely("deep", RotationModel::deep());
    assert_eq!(states, 4_635_732);
}

/// The shortest counterexample `model` (with a seeded fault) has for `property`, printed as
/// HTTP requests; fails the test if there is none: the checker did not bite.
fn counterexample(model: RotationModel, property: &'static str) -> Vec<String> {
    let fault = model.fault;
    let checker = model.only(property).checker().spawn_bfs().join();
    let Some(path) = checker.discovery(property) else {
        panic!("{fault:?}: no counterexample to \"{property}\": the checker does not bite");
    };
    let trace = http_trace(checker.model(), &path.into_vec());
    eprintln!("{fault:?} breaks \"{property}\":\n  {}", trace.join("\n  "));
    trace
}

#[test]
fn a_second_rotation_on_an_in_window_replay_is_caught() {
    let model = RotationModel::one_client_crash_restart().with_fault(Fault::RotateOnReplay);
    let trace = counterexample(model.clone(), ONE_SUCCESSOR);
    assert!(
        trace.last().unwrap().ends_with("refresh_token=RT3"),
        "{trace:?}"
    );
    counterexample(model, IDENTICAL_PAIR);
}

#[test]
fn an_in_window_replay_answered_without_the_pair_is_caught() {
    let model = RotationModel::one_client_crash_restart().with_fault(Fault::ReplayWithoutPair);
    let trace = counterexample(model, IDENTICAL_PAIR);
    assert!(trace.last().unwrap().ends_with("no refresh_token"));
}

#[test]
fn a_revocation_on_an_in_window_replay_is_caught() {
    let model = RotationModel::one_client_crash_restart().with_fault(Fault::RevokeOnReplay);
    counterexample(model.clone(), REVOCATION_HAS_A_CAUSE);
    let trace = counterexample(model, NO_HONEST_LOGOUT);
    assert!(trace
        .last()
        .unwrap()
        .ends_with("its user must log in again"));
}

#[test]
fn a_revocation_on_a_wrong_key_is_caught() {
    let model =
        RotationModel::two_clients_attacker_window_expiry().with_fault(Fault::RevokeOnWrongKey);
    let trace = counterexample(model, WRONG_KEY_NEVER_REVOKES);
    assert!(trace
        .iter()
        .any(|l| l.contains("DPoP=<proof of another key> from attacker")));
}

/// The trace the server test replays (crates/cli/tests/integration/rotation_model.rs) is the
/// counterexample the model gives today for a second rotation on an in-window replay, on a
/// network that loses but does not duplicate (so the retry is the client's, after a lost
/// response): recorded, and kept the same. `TESSERA_RECORD_TRACES=1` records it again after a
/// change to the model.
#[test]
fn the_recorded_trace_is_the_counterexample_of_a_second_rotation() {
    let model = RotationModel {
        duplicates: 0,
        ..RotationModel::one_client_crash_restart()
    }
    .with_fault(Fault::RotateOnReplay);
    let trace = counterexample(model, ONE_SUCCESSOR).join("\n") + "\n";
    let recorded = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(RECORDED_TRACE);
    if std::env::var_os("TESSERA_RECORD_TRACES").is_some() {
        std::fs::write(&recorded, &trace).unwrap();
    }
    assert_eq!(std::fs::read_to_string(&recorded).unwrap(), trace);
}
