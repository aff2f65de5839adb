//! A seconds-long run of `tessera bench`, so that the benchmark cannot rot: every scenario runs,
//! answers only 200s, and reports its figures and its ratio to the floor, says how long it will
//! take before it starts, what its ratios mean under the table, and what a signature costs.

use crate::common;

use serde_json::Value;

#[test]
fn a_short_benchmark_runs_every_scenario_without_errors() {
    let _lane = common::lane(common::lanes::BENCH);
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let out = common::run(
        common::tessera(dir.path()),
        &[
            "bench",
            "--duration",
            "1s",
            "--warmup",
            "0s",
            "--concurrency",
            "4",
            "--tokens",
            "1000",
            "--no-pin",
            "--json",
            report.to_str().unwrap(),
        ],
        None,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let runs = report["runs"].as_array().unwrap();
    let scenarios: Vec<&str> = runs
        .iter()
        .map(|r| r["scenario"].as_str().unwrap())
        .collect();
    for expected in [
        "floor",
        "rotating",
        "non-rotating",
        "api",
        "openid-rs256",
        "openid-es256",
        "api-jwt",
        "dpop-rotating",
        "dpop-api",
        "rotating: latency at half load",
    ] {
        assert!(
            scenarios.contains(&expected),
            "{expected} missing: {scenarios:?}"
        );
    }
    for run in runs {
        assert!(run["requests"].as_u64().unwrap() > 0, "{run}");
        assert_eq!(run["errors"], serde_json::json!({}), "{run}");
        assert!(run["p99_ms"].as_f64().unwrap() > 0.0, "{run}");
        // Every closed-loop scenario has its ratio to the floor; the open-loop run, whose
        // throughput is the rate it was offered, has none.
        if run["scenario"] != "floor" && run["target_rate"].is_null() {
            let ratio = run["ratio_to_floor"].as_f64().unwrap();
            assert!(ratio > 0.0, "{run}");
        } else {
            assert!(run["ratio_to_floor"].is_null(), "{run}");
        }
    }
    let store = &report["stores"][0];
    assert_eq!(store["tokens"], 1000);
    assert!(store["bytes_per_token"].as_f64().unwrap() > 0.0);
    // The human-readable table is printed too, with what its ratios mean; and the expected
    // duration was said before anything ran.
    assert!(stdout.contains("ratio"), "{stdout}");
    assert!(
        stdout.contains("\nratio      req/s ÷ the req/s of the floor"),
        "{stdout}"
    );
    assert!(stdout.contains("\nCPU ratio  "), "{stdout}");
    // The `openid` and DPoP refreshes are set against the plain rotating refresh of the same
    // run, the DPoP API call against the Bearer one.
    assert!(
        stdout.contains("openid-es256 at c=4: ")
            && stdout.contains("dpop-rotating at c=4: ")
            && stdout.contains(" × the rotating refresh's req/s"),
        "{stdout}"
    );
    assert!(
        stdout.contains("dpop-api at c=4: ") && stdout.contains(" × the Bearer API call's req/s"),
        "{stdout}"
    );
    assert!(stdout.contains("\nloader µs  "), "{stdout}");
    // What each signature costs on this machine, measured before the runs: the bounds of the
    // `openid` and DPoP rows.
    assert!(
        stdout.contains("signatures, CPU each on one core of this machine: ES256 sign "),
        "{stdout}"
    );
    let signatures = report["signatures"].as_array().unwrap();
    assert_eq!(signatures.len(), 7, "{signatures:?}");
    assert!(
        signatures
            .iter()
            .all(|s| s["micros"].as_f64().is_some_and(|us| us > 0.0)),
        "{signatures:?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(
            "expected duration: about 19 s of measuring (18 runs of 0 s warm-up + 1 s"
        ),
        "{stderr}"
    );
}
