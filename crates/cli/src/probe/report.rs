//! The report: per scenario PASS or FAIL, the request counts and one line per finding, for
//! people; the same and everything probe saw, as JSON, for machines. Nothing in it varies from
//! run to run for the same client behaviour: no port, token, time or path.

use serde::Serialize;

use super::judge::{Run, Seen, Verdict};

/// One scenario: the verdict, and what it was reached from.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    #[serde(flatten)]
    pub verdict: Verdict,
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub reuse_detected: bool,
    pub seen: Vec<Seen>,
}

impl ScenarioReport {
    pub fn new(verdict: Verdict, run: Run) -> Self {
        Self {
            verdict,
            exit_code: run.exit_code,
            timed_out: run.timed_out,
            reuse_detected: run.reuse_detected,
            seen: run.seen,
        }
    }
}

/// The whole run, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub passed: bool,
    pub scenarios: &'a [ScenarioReport],
}

pub(super) fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn ending(report: &ScenarioReport) -> String {
    match (report.timed_out, report.exit_code) {
        (true, _) => "stopped at the timeout".into(),
        (false, Some(code)) => format!("exit {code}"),
        (false, None) => "killed by a signal".into(),
    }
}

/// The report for people.
pub fn human(reports: &[ScenarioReport]) -> String {
    let width = reports
        .iter()
        .map(|r| r.verdict.scenario.name().len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for report in reports {
        let verdict = &report.verdict;
        out.push_str(&format!(
            "{}  {:<width$}  {}, {} ({} succeeded), {}\n",
            if verdict.passed { "PASS" } else { "FAIL" },
            verdict.scenario.name(),
            count(verdict.token_requests, "token request", "token requests"),
            count(verdict.api_requests, "API call", "API calls"),
            verdict.api_successes,
            ending(report),
        ));
        for finding in &verdict.findings {
            out.push_str(&format!("      {finding}\n"));
        }
    }
    let passed = reports.iter().filter(|r| r.verdict.passed).count();
    out.push_str(&format!(
        "\n{passed} of {} passed.\n",
        count(reports.len(), "scenario", "scenarios")
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::judge::{judge, Presented, TokenAnswer};
    use crate::probe::scenario::Scenario;

    fn refresh(presented: u32, got: u32, delivered: bool) -> Seen {
        Seen::Token {
            grant_type: "refresh_token".into(),
            presented: Presented::Known(presented),
            answer: TokenAnswer::Tokens {
                refresh: Some(got),
                access: Some(got),
            },
            delivered,
        }
    }

    fn api(access: u32, status: u16) -> Seen {
        Seen::Api {
            method: "GET".into(),
            path: "/services/data/v65.0/sobjects".into(),
            access: Some(access),
            status,
        }
    }

    fn report(scenario: Scenario, seen: Vec<Seen>, exit_code: i32, reuse: bool) -> ScenarioReport {
        let run = Run {
            seen,
            calls: 3,
            reuse_detected: reuse,
            timed_out: false,
            exit_code: Some(exit_code),
        };
        ScenarioReport::new(judge(scenario, &run), run)
    }

    /// The format, as people read it, on a fixed recording: one client that keeps its first
    /// refresh token, one that gives up after a lost response, one that does right.
    #[test]
    fn the_human_report_reads_as_the_golden_file() {
        let reports = [
            report(
                Scenario::Rotation,
                vec![api(1, 200), refresh(1, 2, true), api(2, 200), {
                    Seen::Token {
                        grant_type: "refresh_token".into(),
                        presented: Presented::Known(1),
                        answer: TokenAnswer::Refused {
                            status: 400,
                            error: "invalid_grant".into(),
                        },
                        delivered: true,
                    }
                }],
                1,
                true,
            ),
            report(
                Scenario::LostResponse,
                vec![api(1, 200), refresh(1, 2, false)],
                1,
                false,
            ),
            report(
                Scenario::AccessRevoked,
                vec![
                    api(1, 200),
                    Seen::AccessRevoked,
                    api(1, 401),
                    refresh(1, 2, true),
                    api(2, 200),
                    api(2, 200),
                ],
                0,
                false,
            ),
        ];
        let golden = include_str!("../../tests/golden/probe-report.txt");
        assert_eq!(human(&reports), golden);
    }
}
