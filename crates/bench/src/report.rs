//! What a benchmark reports: each measured run, each store size, the machine; printed as a
//! table and written as JSON (`--json`) in the same shape.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::disk::DiskFloor;
use crate::plan::{FLOOR_MARGIN, HALF_LOAD_LABEL};
use crate::signatures::SignatureCost;

/// One measured run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Run {
    pub(crate) tokens: u64,
    pub(crate) scenario: String,
    pub(crate) concurrency: usize,
    pub(crate) requests: u64,
    pub(crate) seconds: f64,
    pub(crate) throughput: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p90_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) p999_ms: f64,
    /// Status code → count, for everything but 200.
    pub(crate) errors: BTreeMap<u16, u64>,
    /// Throughput over that of the floor measured right before, at the same concurrency; `None`
    /// for floors and for the open-loop run, whose throughput is the rate it was offered.
    pub(crate) ratio_to_floor: Option<f64>,
    /// The server's CPU time (user and system, all threads) per answered request, in the
    /// measured window.
    pub(crate) server_cpu_us_per_request: f64,
    /// The floor's CPU time per request over this run's: what the throughput ratio would be on a
    /// quiet machine with the server's core saturated. Neighbours' load changes the wall clock
    /// much more than it changes the CPU a request costs.
    pub(crate) cpu_ratio_to_floor: Option<f64>,
    pub(crate) server_rss_kib: u64,
    /// Offered rate, for open-loop runs.
    pub(crate) target_rate: Option<f64>,
    /// How far the floor of this row's pair was from the median floor of its concurrency, as a
    /// fraction, when it was still more than the margin off after the pair was measured again:
    /// the row's ratios are then unreliable. `None` when the floor was close enough.
    pub(crate) floor_off_median: Option<f64>,
    /// The load generator's CPU time per answered request (its one core, pinned): near
    /// 1,000,000 ÷ req/s, it was busy all the time and may have been the bound rather than the
    /// server (the DPoP scenarios sign a proof per request there).
    pub(crate) loader_cpu_us_per_request: f64,
    /// Which round of `--rounds` measured it (1 for the first, and for the half-load run).
    pub(crate) round: u32,
}

/// Facts about a store size.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StoreSize {
    pub(crate) tokens: u64,
    /// The database's files once the grants are minted, before any run.
    pub(crate) database_bytes: u64,
    pub(crate) bytes_per_token: f64,
    /// The same after every run: the audit events of the refreshes, and the log.
    pub(crate) database_bytes_after_runs: u64,
    pub(crate) mint_seconds: f64,
    pub(crate) server_rss_kib_after: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) machine: String,
    pub(crate) pinned: bool,
    /// What one durable write costs on the disk the database is on, measured before the runs.
    pub(crate) disk: Option<DiskFloor>,
    /// What one signature and one verification cost here, measured before the runs.
    pub(crate) signatures: Vec<SignatureCost>,
    pub(crate) runs: Vec<Run>,
    pub(crate) stores: Vec<StoreSize>,
}

pub(crate) fn machine() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpus = info.lines().filter(|l| l.starts_with("processor")).count();
    let model = info
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU", str::trim);
    format!("{cpus} × {model}")
}

#[allow(clippy::print_stdout)]
pub(crate) fn print_report(report: &Report) {
    println!(
        "\nTessera benchmark — {} (pinned: {})",
        report.machine, report.pinned
    );
    if !report.signatures.is_empty() {
        println!("{}", crate::signatures::summary(&report.signatures));
    }
    if let Some(d) = &report.disk {
        println!(
            "durable-commit floor (4 KiB append + fdatasync, {} times): p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            d.syncs, d.p50_ms, d.p90_ms, d.p99_ms, d.max_ms
        );
    }
    println!(
        "{:>9}  {:<30} {:>4}  {:>10}  {:>7}  {:>7}  {:>7}  {:>8}  {:>6}  {:>7}  {:>9}  {:>9}  {:>8}  errors",
        "tokens",
        "scenario",
        "c",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "ratio",
        "CPU µs",
        "CPU ratio",
        "loader µs",
        "RSS MiB"
    );
    for r in &report.runs {
        let flag = r.floor_off_median.map_or_else(String::new, |off| {
            format!(
                "  floor {:.0} % off the median: ratios unreliable",
                off * 100.0
            )
        });
        println!(
            "{:>9}  {:<30} {:>4}  {:>10.0}  {:>7.2}  {:>7.2}  {:>7.2}  {:>8.2}  {:>6}  {:>7.1}  {:>9}  {:>9.1}  {:>8.1}  {:?}{flag}",
            r.tokens,
            r.scenario,
            r.concurrency,
            r.throughput,
            r.p50_ms,
            r.p90_ms,
            r.p99_ms,
            r.p999_ms,
            r.ratio_to_floor.map_or("-".into(), |x| format!("{x:.3}")),
            r.server_cpu_us_per_request,
            r.cpu_ratio_to_floor.map_or("-".into(), |x| format!("{x:.3}")),
            r.loader_cpu_us_per_request,
            r.server_rss_kib as f64 / 1024.0,
            r.errors,
        );
    }
    for s in &report.stores {
        println!(
            "store of {} grants: {:.1} MiB on disk ({:.0} bytes a grant), minted in {:.1} s; {:.1} MiB after the runs; server RSS {:.1} MiB",
            s.tokens,
            s.database_bytes as f64 / 1_048_576.0,
            s.bytes_per_token,
            s.mint_seconds,
            s.database_bytes_after_runs as f64 / 1_048_576.0,
            s.server_rss_kib_after as f64 / 1024.0
        );
    }
    if let (Some(small), Some(large)) = (report.stores.first(), report.stores.last()) {
        if small.tokens != large.tokens {
            for scenario in ["rotating", "non-rotating", "api"] {
                let best = |tokens| {
                    report
                        .runs
                        .iter()
                        .filter(|r| r.tokens == tokens && r.scenario == scenario)
                        .map(|r| r.ratio_to_floor.unwrap_or(0.0))
                        .reduce(f64::max)
                };
                if let (Some(a), Some(b)) = (best(small.tokens), best(large.tokens)) {
                    println!(
                        "{scenario}: {} grants at {:.2} × the {}-grant ratio to the floor",
                        large.tokens,
                        b / a,
                        small.tokens
                    );
                }
            }
        }
    }
    for line in against_reference(report) {
        println!("{line}");
    }
    for line in over_rounds(report) {
        println!("{line}");
    }
    for line in legend(report) {
        println!("{line}");
    }
}

/// The scenarios that add one thing to another scenario, with that reference and its name in
/// the report: an ID token signed on every refresh (`openid`), a DPoP proof checked on every
/// request (`dpop`).
const AGAINST_REFERENCE: [(&str, &str, &str); 4] = [
    ("openid-rs256", "rotating", "the rotating refresh"),
    ("openid-es256", "rotating", "the rotating refresh"),
    ("dpop-rotating", "rotating", "the rotating refresh"),
    ("dpop-api", "api", "the Bearer API call"),
];

/// Each run of a scenario of [`AGAINST_REFERENCE`] with its reference's run of the same store
/// size, concurrency and round, and the reference's name in the report.
fn against_reference_runs(report: &Report) -> Vec<(&'static str, &Run, &Run)> {
    let mut pairs = Vec::new();
    for (scenario, reference, name) in AGAINST_REFERENCE {
        for run in report.runs.iter().filter(|r| r.scenario == scenario) {
            let Some(base) = report.runs.iter().find(|r| {
                r.scenario == reference
                    && r.tokens == run.tokens
                    && r.concurrency == run.concurrency
                    && r.round == run.round
                    && r.target_rate.is_none()
            }) else {
                continue;
            };
            if base.throughput > 0.0 && run.server_cpu_us_per_request > 0.0 {
                pairs.push((name, run, base));
            }
        }
    }
    pairs
}

/// Each scenario of [`AGAINST_REFERENCE`] against its reference of the same store size,
/// concurrency and round: what the added work costs, in throughput and in server CPU per
/// request (for DPoP, the difference is the server's checking of the proof; the loader signs
/// it).
fn against_reference(report: &Report) -> Vec<String> {
    against_reference_runs(report)
        .into_iter()
        .map(|(name, run, base)| {
            format!(
                "{} at c={}: {:.2} × {name}'s req/s, {:.2} × its CPU per request ({:.0} µs more)",
                run.scenario,
                run.concurrency,
                run.throughput / base.throughput,
                run.server_cpu_us_per_request
                    / base.server_cpu_us_per_request.max(f64::MIN_POSITIVE),
                run.server_cpu_us_per_request - base.server_cpu_us_per_request,
            )
        })
        .collect()
}

/// `median (min–max)` of `values`, each with `decimals` decimals.
fn median_and_range(values: Vec<f64>, decimals: usize) -> String {
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    match crate::plan::median(values) {
        Some(median) => format!("{median:.decimals$} ({low:.decimals$}–{high:.decimals$})"),
        None => "-".to_owned(),
    }
}

/// With `--rounds` above 1: each closed-loop scenario's ratio to the floor and CPU per request
/// as the median over the rounds, with their range, and the same for the comparisons of
/// [`AGAINST_REFERENCE`] (each made within its round). Nothing for a single round.
fn over_rounds(report: &Report) -> Vec<String> {
    let rounds = report.runs.iter().map(|r| r.round).max().unwrap_or(1);
    if rounds < 2 {
        return Vec::new();
    }
    let mut lines = vec![format!(
        "over {rounds} rounds, the median and (in brackets) the range:"
    )];
    let mut keys: Vec<(u64, usize, &str)> = Vec::new();
    for run in report.runs.iter().filter(|r| r.ratio_to_floor.is_some()) {
        let key = (run.tokens, run.concurrency, run.scenario.as_str());
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    for (tokens, concurrency, scenario) in keys {
        let runs: Vec<&Run> = report
            .runs
            .iter()
            .filter(|r| {
                r.tokens == tokens
                    && r.concurrency == concurrency
                    && r.scenario == scenario
                    && r.ratio_to_floor.is_some()
            })
            .collect();
        lines.push(format!(
            "{tokens:>9}  {scenario:<30} c={concurrency}: ratio {}, CPU µs {}",
            median_and_range(runs.iter().filter_map(|r| r.ratio_to_floor).collect(), 3),
            median_and_range(
                runs.iter().map(|r| r.server_cpu_us_per_request).collect(),
                1
            ),
        ));
    }
    let pairs = against_reference_runs(report);
    let mut compared: Vec<(&str, usize, &str)> = Vec::new();
    for (name, run, _) in &pairs {
        let key = (run.scenario.as_str(), run.concurrency, *name);
        if !compared.contains(&key) {
            compared.push(key);
        }
    }
    for (scenario, concurrency, name) in compared {
        let ratios: Vec<f64> = pairs
            .iter()
            .filter(|(_, run, _)| run.scenario == scenario && run.concurrency == concurrency)
            .map(|(_, run, base)| run.throughput / base.throughput)
            .collect();
        let compared_rounds = ratios.len();
        lines.push(format!(
            "{scenario} at c={concurrency}: {} × {name}'s req/s, over {compared_rounds} rounds",
            median_and_range(ratios, 2),
        ));
    }
    lines
}

/// What the table's less obvious columns and rows mean, printed at the end of the report.
fn legend(report: &Report) -> Vec<String> {
    let mut lines = vec![
        String::new(),
        "ratio      req/s ÷ the req/s of the floor (a trivial POST on the same server stack) \
         measured right before, at the same concurrency: the share of the bare stack's \
         throughput the scenario keeps. Above 1, the floor was disturbed."
            .to_owned(),
        "CPU ratio  the floor's server CPU µs per request ÷ this row's: the same comparison in \
         CPU time, which the neighbours' load disturbs much less."
            .to_owned(),
        "loader µs  the load generator's CPU µs per request, on its own core: when this × req/s \
         comes near 1,000,000 µs (a whole second each second), the load generator was busy all \
         the time and may have been the bound, not the server."
            .to_owned(),
    ];
    if report.runs.iter().any(|r| r.target_rate.is_some()) {
        lines.push(format!(
            "{HALF_LOAD_LABEL}: rotating refresh offered open loop at half the peak rotating \
             req/s, to read p50 and p99 below saturation; its req/s is the rate offered, not a \
             capacity, so it has no ratio."
        ));
    }
    if report.runs.iter().any(|r| r.floor_off_median.is_some()) {
        lines.push(format!(
            "floor off the median: the pair's floor was more than {:.0} % from the median floor \
             of its concurrency twice (measured again once); read that row's ratios with care.",
            FLOOR_MARGIN * 100.0
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(runs: Vec<Run>) -> Report {
        Report {
            machine: "test".into(),
            pinned: false,
            disk: None,
            signatures: Vec::new(),
            runs,
            stores: Vec::new(),
        }
    }

    #[test]
    fn the_legend_says_what_ratio_and_cpu_ratio_mean_and_why_half_load_has_none() {
        let closed = run_of("api", None, None);
        let said = legend(&report(vec![closed.clone()])).join("\n");
        assert!(
            said.contains("\nratio      req/s ÷ the req/s of the floor"),
            "{said}"
        );
        assert!(said.contains("Above 1, the floor was disturbed"), "{said}");
        assert!(
            said.contains("\nCPU ratio  the floor's server CPU µs per request"),
            "{said}"
        );
        assert!(
            said.contains("\nloader µs  the load generator's CPU µs per request"),
            "{said}"
        );
        assert!(!said.contains(HALF_LOAD_LABEL), "{said}");
        assert!(!said.contains("floor off the median"), "{said}");

        let open = run_of(HALF_LOAD_LABEL, Some(5_000.0), None);
        let flagged = run_of("api", None, Some(0.3));
        let said = legend(&report(vec![closed, open, flagged])).join("\n");
        assert!(
            said.contains("rotating: latency at half load: rotating refresh offered open loop"),
            "{said}"
        );
        assert!(said.contains("so it has no ratio"), "{said}");
        assert!(
            said.contains("more than 15 % from the median floor"),
            "{said}"
        );
    }

    fn run_of(scenario: &str, target_rate: Option<f64>, floor_off_median: Option<f64>) -> Run {
        Run {
            tokens: 1000,
            scenario: scenario.into(),
            concurrency: 4,
            requests: 10,
            seconds: 1.0,
            throughput: 10.0,
            p50_ms: 1.0,
            p90_ms: 2.0,
            p99_ms: 3.0,
            p999_ms: 4.0,
            errors: BTreeMap::new(),
            ratio_to_floor: None,
            server_cpu_us_per_request: 100.0,
            cpu_ratio_to_floor: None,
            server_rss_kib: 2048,
            target_rate,
            floor_off_median,
            loader_cpu_us_per_request: 50.0,
            round: 1,
        }
    }

    #[test]
    fn each_dpop_scenario_is_set_against_its_plain_reference_of_the_same_concurrency() {
        let at = |scenario: &str, concurrency: usize, throughput: f64, cpu: f64| Run {
            concurrency,
            throughput,
            server_cpu_us_per_request: cpu,
            ..run_of(scenario, None, None)
        };
        let said = against_reference(&report(vec![
            at("rotating", 16, 1_000.0, 40.0),
            at("rotating", 64, 2_000.0, 50.0),
            at("dpop-rotating", 64, 1_500.0, 80.0),
            at("api", 64, 10_000.0, 20.0),
            at("dpop-api", 64, 7_000.0, 45.0),
        ]));
        assert_eq!(
            said,
            [
                "dpop-rotating at c=64: 0.75 × the rotating refresh's req/s, 1.60 × its CPU per \
                 request (30 µs more)",
                "dpop-api at c=64: 0.70 × the Bearer API call's req/s, 2.25 × its CPU per \
                 request (25 µs more)",
            ]
        );
    }

    #[test]
    fn several_rounds_report_each_medians_and_compare_within_a_round() {
        let at = |scenario: &str, round: u32, throughput: f64, ratio: f64, cpu: f64| Run {
            concurrency: 64,
            throughput,
            ratio_to_floor: Some(ratio),
            server_cpu_us_per_request: cpu,
            round,
            ..run_of(scenario, None, None)
        };
        let runs = vec![
            at("rotating", 1, 2_000.0, 0.20, 50.0),
            at("openid-es256", 1, 1_400.0, 0.14, 70.0),
            at("rotating", 2, 1_000.0, 0.10, 90.0),
            at("openid-es256", 2, 900.0, 0.09, 100.0),
            at("rotating", 3, 2_200.0, 0.22, 45.0),
            at("openid-es256", 3, 1_320.0, 0.13, 75.0),
        ];
        let said = over_rounds(&report(runs.clone()));
        assert_eq!(
            said,
            [
                "over 3 rounds, the median and (in brackets) the range:",
                "     1000  rotating                       c=64: ratio 0.200 (0.100–0.220), CPU \
                 µs 50.0 (45.0–90.0)",
                "     1000  openid-es256                   c=64: ratio 0.130 (0.090–0.140), CPU \
                 µs 75.0 (70.0–100.0)",
                // 0.70, 0.90 and 0.60: each against the rotating run of its own round.
                "openid-es256 at c=64: 0.70 (0.60–0.90) × the rotating refresh's req/s, over 3 \
                 rounds",
            ]
        );
        assert!(over_rounds(&report(runs.into_iter().take(2).collect())).is_empty());
    }

    #[test]
    fn a_scenario_without_its_reference_in_the_run_is_not_compared() {
        let said = against_reference(&report(vec![
            run_of("dpop-api", None, None),
            run_of("rotating", None, None),
            // The open-loop run is rotating refresh too, but its throughput is what was offered.
            run_of("rotating", Some(5_000.0), None),
        ]));
        assert!(said.is_empty(), "{said:?}");
    }

    /// The JSON report is read by scripts (BENCHMARKS.md's figures come from it): its keys and
    /// their order stay as they are.
    #[test]
    fn a_run_is_written_with_its_keys_in_order() {
        let run = Run {
            errors: BTreeMap::from([(503, 1)]),
            ratio_to_floor: Some(0.5),
            ..run_of("rotating", None, None)
        };
        let text = serde_json::to_string(&run).unwrap_or_default();
        assert_eq!(
            text,
            "{\"tokens\":1000,\"scenario\":\"rotating\",\"concurrency\":4,\"requests\":10,\
             \"seconds\":1.0,\"throughput\":10.0,\"p50_ms\":1.0,\"p90_ms\":2.0,\"p99_ms\":3.0,\
             \"p999_ms\":4.0,\"errors\":{\"503\":1},\"ratio_to_floor\":0.5,\
             \"server_cpu_us_per_request\":100.0,\"cpu_ratio_to_floor\":null,\
             \"server_rss_kib\":2048,\"target_rate\":null,\"floor_off_median\":null,\
             \"loader_cpu_us_per_request\":50.0,\"round\":1}"
        );
    }
}
