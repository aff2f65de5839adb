//! `tessera probe`: does a client survive rotation? It starts a temporary server with a
//! rotating client, mints a login, runs the given command once per scenario with the tokens in
//! its environment, misbehaves on purpose (a lost response, a duplicate refresh, an early
//! revocation, an ended login, a restart), watches every token and API request the command
//! makes, and says per scenario whether the command did right (docs/probe.md).

mod judge;
mod report;
mod scenario;
mod server;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use serde::Serialize;
use tessera_proto::{ExposeSecret, TokenResponse};

use judge::{judge, Run};
use report::{Report, ScenarioReport};
pub use scenario::Scenario;
use scenario::Setup;
use server::{Login, Stage};

/// The API resource the command is asked to read: any call under /services/data counts.
const API_PATH: &str = "/services/data/v65.0/sobjects";

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// A scenario to run (repeatable); all of them by default.
    #[arg(long = "scenario", value_enum, value_name = "NAME")]
    scenarios: Vec<Scenario>,
    /// Print the report as JSON, with every request probe saw.
    #[arg(long)]
    json: bool,
    /// How long the command may run in one scenario before probe stops it (and the scenario
    /// fails).
    #[arg(long, default_value = "60s", value_parser = |s: &str| tessera_core::time::parse_duration_secs(s).filter(|v| *v > 0).ok_or("a positive duration like 60s"))]
    timeout: u64,
    /// The command to run once per scenario, after `--`, with its arguments.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// Runs the scenarios and prints the report; an error when a scenario failed.
#[allow(clippy::print_stdout)]
pub async fn run(args: ProbeArgs) -> anyhow::Result<()> {
    let mut scenarios = Vec::new();
    for scenario in if args.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        args.scenarios.clone()
    } {
        if !scenarios.contains(&scenario) {
            scenarios.push(scenario);
        }
    }
    let timeout = Duration::from_secs(args.timeout);
    let mut reports = Vec::new();
    for scenario in scenarios {
        reports.push(run_scenario(scenario, &args.command, timeout).await?);
    }
    let failed = reports.iter().filter(|r| !r.verdict.passed).count();
    if args.json {
        let report = Report {
            passed: failed == 0,
            scenarios: &reports,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report::human(&reports));
    }
    if failed > 0 {
        bail!(
            "{failed} of {} failed",
            report::count(reports.len(), "scenario", "scenarios")
        );
    }
    Ok(())
}

/// What the command is given, in its environment and in the file `TESSERA_PROBE_FILE` names.
#[derive(Debug, Serialize)]
struct Contract<'a> {
    scenario: Scenario,
    /// The server's base URL, which is also the instance URL.
    url: &'a str,
    token_url: String,
    client_id: &'a str,
    client_secret: &'a str,
    access_token: &'a str,
    refresh_token: &'a str,
    api_path: &'static str,
    calls: u32,
    pause_ms: u128,
    /// The login's token response, as the server answered it.
    token_response: &'a TokenResponse,
}

impl<'a> Contract<'a> {
    fn new(scenario: Scenario, base: &'a str, setup: &Setup, login: &'a Login) -> Self {
        Self {
            scenario,
            url: base,
            token_url: format!("{base}/services/oauth2/token"),
            client_id: &login.client_id,
            client_secret: login.client_secret.expose_secret(),
            access_token: login.tokens.access_token.expose_secret(),
            refresh_token: login
                .tokens
                .refresh_token
                .as_ref()
                .map_or("", |t| t.expose_secret()),
            api_path: API_PATH,
            calls: setup.calls,
            pause_ms: setup.pause.as_millis(),
            token_response: &login.tokens,
        }
    }

    fn environment(&self, file: &Path) -> Vec<(&'static str, String)> {
        vec![
            ("TESSERA_PROBE_SCENARIO", self.scenario.name().to_owned()),
            ("TESSERA_PROBE_URL", self.url.to_owned()),
            ("TESSERA_PROBE_TOKEN_URL", self.token_url.clone()),
            ("TESSERA_PROBE_CLIENT_ID", self.client_id.to_owned()),
            ("TESSERA_PROBE_CLIENT_SECRET", self.client_secret.to_owned()),
            ("TESSERA_PROBE_ACCESS_TOKEN", self.access_token.to_owned()),
            ("TESSERA_PROBE_REFRESH_TOKEN", self.refresh_token.to_owned()),
            ("TESSERA_PROBE_API_PATH", self.api_path.to_owned()),
            ("TESSERA_PROBE_CALLS", self.calls.to_string()),
            ("TESSERA_PROBE_PAUSE_MS", self.pause_ms.to_string()),
            ("TESSERA_PROBE_PAUSE", seconds(self.pause_ms)),
            ("TESSERA_PROBE_FILE", file.display().to_string()),
        ]
    }
}

/// Milliseconds as decimal seconds, for `sleep` in a shell script: `2.500`.
fn seconds(ms: u128) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

#[allow(clippy::print_stderr)]
async fn run_scenario(
    scenario: Scenario,
    command: &[String],
    timeout: Duration,
) -> anyhow::Result<ScenarioReport> {
    let setup = scenario.setup();
    let stage = Stage::start(scenario).await?;
    let login = stage.mint_login(&setup).await?;
    let contract = Contract::new(scenario, &stage.base, &setup, &login);
    let file = stage.dir.path().join("probe.json");
    crate::write_private_file(&file, serde_json::to_string_pretty(&contract)?.as_bytes())?;
    let (program, arguments) = command.split_first().context("no command to run")?;
    eprintln!("probe: {scenario}: running {program}");
    // The command's output goes to standard error: standard output is the report's.
    let mut child = tokio::process::Command::new(program)
        .args(arguments)
        .envs(contract.environment(&file))
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr()))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {program}"))?;
    let (exit_code, timed_out) = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => (status?.code(), false),
        Err(_) => {
            let _ = child.kill().await;
            (None, true)
        }
    };
    let run = Run {
        seen: stage.seen(),
        calls: setup.calls,
        reuse_detected: stage.reuse_detected().await?,
        timed_out,
        exit_code,
    };
    let verdict = judge(scenario, &run);
    Ok(ScenarioReport::new(verdict, run))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_pause_is_also_given_in_seconds_that_sleep_reads() {
        assert_eq!(super::seconds(2_500), "2.500");
        assert_eq!(super::seconds(200), "0.200");
        assert_eq!(super::seconds(61_005), "61.005");
    }

    #[test]
    fn scenario_names_are_the_ones_the_documentation_gives() {
        use clap::ValueEnum;
        for scenario in super::Scenario::ALL {
            let named = scenario
                .to_possible_value()
                .map(|v| v.get_name().to_owned());
            assert_eq!(named.as_deref(), Some(scenario.name()));
            let docs = include_str!("../../../../docs/probe.md");
            assert!(
                docs.contains(&format!("| `{}` |", scenario.name())),
                "{scenario}"
            );
        }
    }
}
