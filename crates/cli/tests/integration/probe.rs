//! `tessera probe` against real clients: Tessera's own token manager (`tessera import`, then
//! `tessera curl` once per call, each a process of its own), which must pass every scenario,
//! and two jsforce apps, one keeping the refresh token it started with and one saving each
//! rotated one (interop/jsforce/probe). The jsforce tests need the npm registry, as the interop
//! suite does: TESSERA_SKIP_INTEROP=1 skips them.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A command under probe made of Tessera's client commands: import the login, then make the
/// calls asked for, pausing between them, and stop at the first failure.
const TESSERA_CLIENT: &str = r#"
"$TESSERA_BIN" import --profile probe || exit 1
i=0
while [ "$i" -lt "$TESSERA_PROBE_CALLS" ]; do
  if [ "$i" -gt 0 ]; then sleep "$TESSERA_PROBE_PAUSE"; fi
  "$TESSERA_BIN" curl --profile probe "$TESSERA_PROBE_API_PATH" >/dev/null || exit 1
  i=$((i + 1))
done
"#;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The report with its numbers replaced by `#`: how many requests a client makes may vary
/// with the machine's load (a first call made after its access token expired refreshes once
/// more); the verdicts and findings may not.
fn without_numbers(report: &str) -> String {
    let mut out = String::new();
    let mut in_number = false;
    for c in report.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('#');
            }
            in_number = true;
        } else {
            out.push(c);
            in_number = false;
        }
    }
    out
}

fn report_of(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn tessera_token_manager_passes_every_scenario() {
    let _lane = common::lane(common::lanes::SHARED);
    let profiles = tempfile::tempdir().unwrap();
    let tessera = env!("CARGO_BIN_EXE_tessera");
    let output = Command::new(tessera)
        .args(["probe", "--", "sh", "-c", TESSERA_CLIENT])
        .env("TESSERA_BIN", tessera)
        .env("TESSERA_CLIENT_DIR", profiles.path())
        // A passphrase-derived key: no OS keyring on a test machine.
        .env("TESSERA_PASSPHRASE", "probe-test-passphrase")
        .output()
        .unwrap();
    let (report, log) = report_of(&output);
    assert!(output.status.success(), "{report}\n{log}");
    let golden = include_str!("../golden/probe-tessera.txt");
    assert_eq!(without_numbers(&report), golden, "{report}");
}

/// `bash interop/jsforce/probe.sh tessera SCRIPT ARGS…`, or `None` when interop is skipped.
fn probe_jsforce(script: &str, args: &[&str]) -> Option<Output> {
    if std::env::var_os("TESSERA_SKIP_INTEROP").is_some() {
        eprintln!("SKIPPED: jsforce under tessera probe (TESSERA_SKIP_INTEROP is set)");
        return None;
    }
    Some(
        Command::new("bash")
            .arg(root().join("interop/jsforce/probe.sh"))
            .arg(env!("CARGO_BIN_EXE_tessera"))
            .arg(script)
            .args(args)
            .output()
            .expect("running interop/jsforce/probe.sh"),
    )
}

#[test]
fn jsforce_keeping_its_first_refresh_token_fails_the_rotation_scenario() {
    let _lane = common::lane(common::lanes::SHARED);
    let Some(output) = probe_jsforce("keeps-first-refresh-token.mjs", &["--scenario", "rotation"])
    else {
        return;
    };
    let (report, log) = report_of(&output);
    assert!(!output.status.success(), "{report}\n{log}");
    let lines: Vec<&str> = report.lines().collect();
    assert!(lines[0].starts_with("FAIL  rotation  "), "{report}");
    assert!(
        lines[1].contains("presented RT1, which RT2 had replaced")
            && lines[1].contains("revokes the whole family"),
        "{report}"
    );
    assert!(report.contains("the server detected reuse"), "{report}");
    assert!(report.ends_with("\n0 of 1 scenario passed.\n"), "{report}");
}

/// Saving the rotated token, jsforce passes every scenario but the lost response: it does not
/// retry a refresh whose connection failed (docs/probe.md).
#[test]
fn jsforce_saving_each_rotated_refresh_token_passes_all_but_the_lost_response() {
    let _lane = common::lane(common::lanes::SHARED);
    let Some(output) = probe_jsforce("saves-rotated-refresh-token.mjs", &["--json"]) else {
        return;
    };
    let (report, log) = report_of(&output);
    let report: serde_json::Value =
        serde_json::from_str(&report).unwrap_or_else(|e| panic!("{e}: {report}\n{log}"));
    let verdicts: Vec<(&str, bool)> = report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["scenario"].as_str().unwrap(),
                s["passed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            ("rotation", true),
            ("lost-response", false),
            ("concurrent-refresh", true),
            ("access-revoked", true),
            ("refresh-expired", true),
            ("restart", true),
        ],
        "{report:#}\n{log}"
    );
    assert!(
        !output.status.success(),
        "a failed scenario is a failed probe"
    );
}

#[test]
fn a_command_that_does_not_finish_is_stopped_at_the_timeout_and_fails() {
    let _lane = common::lane(common::lanes::SHARED);
    let output = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args([
            "probe",
            "--scenario",
            "refresh-expired",
            "--timeout",
            "1s",
            "--",
            "sleep",
            "30",
        ])
        .output()
        .unwrap();
    let (report, log) = report_of(&output);
    assert!(!output.status.success(), "{report}\n{log}");
    assert_eq!(
        report,
        "FAIL  refresh-expired  0 token requests, 0 API calls (0 succeeded), stopped at the timeout\n      \
         did not finish before the scenario's timeout: probe stopped it (a refresh or retry loop?)\n      \
         made no successful API call, so the login was never ended\n\
         \n0 of 1 scenario passed.\n"
    );
    assert!(log.contains("error: 1 of 1 scenario failed"), "{log}");
}
