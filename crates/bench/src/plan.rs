//! What a run will do before it does it — how many measured runs and how long they take — and
//! which floors came out disturbed once it has: a floor far from the others of its concurrency
//! makes its pair's ratio say more about the neighbours than about the server.

use crate::report::Run;
use crate::BenchArgs;

/// How far a floor may be from the median floor of its store size and concurrency before its
/// pair is measured again: ±15 %. Floors of one run usually sit within a few per cent of each
/// other; a neighbour's burst moves one by a quarter or more.
pub(crate) const FLOOR_MARGIN: f64 = 0.15;

/// The name of the open-loop run in the report: it measures latency below saturation, and its
/// throughput is what was offered, not a capacity.
pub(crate) const HALF_LOAD_LABEL: &str = "rotating: latency at half load";

/// How many runs a benchmark measures, and how long they take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Measured runs, floors included, over every store size.
    pub(crate) runs: u64,
    /// Seconds of warm-up and measurement of one run.
    pub(crate) seconds_per_run: u64,
    /// Seconds of the disk's durable-commit floor, measured once.
    pub(crate) disk_seconds: u64,
}

impl Plan {
    pub(crate) fn of(args: &BenchArgs) -> Self {
        let closed_loop = args.scenarios.iter().filter(|s| *s != "half-load").count() as u64;
        let half_load = args.scenarios.iter().any(|s| s == "half-load");
        // Each scenario at each concurrency runs right after a floor; the half-load run once,
        // after a floor of its own.
        let pairs_per_store = closed_loop * args.concurrency.len() as u64 * u64::from(args.rounds)
            + u64::from(half_load);
        Self {
            runs: 2 * pairs_per_store * args.tokens.len() as u64,
            seconds_per_run: args.warmup + args.duration,
            disk_seconds: disk_seconds(args.duration).ceil() as u64,
        }
    }

    /// The time the runs and the disk floor take, without preparing the grants.
    pub(crate) fn measuring_seconds(&self) -> u64 {
        self.runs * self.seconds_per_run + self.disk_seconds
    }

    /// What to tell the person who started the run, before anything else.
    pub(crate) fn describe(&self, args: &BenchArgs) -> String {
        let grants: Vec<String> = args.tokens.iter().map(u64::to_string).collect();
        format!(
            "expected duration: about {} of measuring ({} runs of {} s warm-up + {} s, and {} s \
             of disk floor), plus preparing {} grants; each pair whose floor is more than {:.0} % \
             off the median floor is measured again, {} s more each",
            human(self.measuring_seconds()),
            self.runs,
            args.warmup,
            args.duration,
            self.disk_seconds,
            grants.join(" and "),
            FLOOR_MARGIN * 100.0,
            2 * self.seconds_per_run
        )
    }
}

/// How long the disk floor is measured for, given `--duration` in seconds.
pub(crate) fn disk_seconds(duration: u64) -> f64 {
    (duration as f64 / 4.0).clamp(1.0, 5.0)
}

/// `171` as `2 min 51 s`.
fn human(seconds: u64) -> String {
    match (seconds / 60, seconds % 60) {
        (0, s) => format!("{s} s"),
        (m, 0) => format!("{m} min"),
        (m, s) => format!("{m} min {s} s"),
    }
}

/// The middle value (the mean of the middle two for an even count); `None` for none.
pub(crate) fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    match values.len() {
        0 => None,
        n if n % 2 == 1 => values.get(middle).copied(),
        _ => Some((values.get(middle - 1)? + values.get(middle)?) / 2.0),
    }
}

/// How far `floor` is from `median`, as a fraction of the median.
pub(crate) fn departure(floor: f64, median: f64) -> f64 {
    if median > 0.0 {
        (floor - median).abs() / median
    } else {
        0.0
    }
}

/// The median throughput of the floors in `runs` of `tokens` grants at `concurrency`.
pub(crate) fn median_floor(runs: &[Run], tokens: u64, concurrency: usize) -> Option<f64> {
    median(
        runs.iter()
            .filter(|r| r.scenario == "floor" && r.tokens == tokens && r.concurrency == concurrency)
            .map(|r| r.throughput)
            .collect(),
    )
}

/// Of the floors at `floor_indices` in `runs`, those more than [`FLOOR_MARGIN`] from the
/// median floor of their store size and concurrency, with that median.
pub(crate) fn disturbed_floors(runs: &[Run], floor_indices: &[usize]) -> Vec<(usize, f64)> {
    floor_indices
        .iter()
        .filter_map(|&index| {
            let floor = runs.get(index)?;
            let median = median_floor(runs, floor.tokens, floor.concurrency)?;
            (departure(floor.throughput, median) > FLOOR_MARGIN).then_some((index, median))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn args(line: &[&str]) -> BenchArgs {
        Cli::parse_from(std::iter::once("bench").chain(line.iter().copied())).bench
    }

    fn floor(concurrency: usize, throughput: f64) -> Run {
        Run {
            tokens: 10_000,
            scenario: "floor".into(),
            concurrency,
            requests: 0,
            seconds: 10.0,
            throughput,
            p50_ms: 0.0,
            p90_ms: 0.0,
            p99_ms: 0.0,
            p999_ms: 0.0,
            errors: Default::default(),
            ratio_to_floor: None,
            server_cpu_us_per_request: 10.0,
            cpu_ratio_to_floor: None,
            server_rss_kib: 0,
            target_rate: None,
            floor_off_median: None,
            loader_cpu_us_per_request: 0.0,
            round: 1,
        }
    }

    #[test]
    fn the_default_run_announces_its_seven_minutes() {
        let plan = Plan::of(&args(&[]));
        // 8 scenarios × 2 concurrencies after a floor each, and the half-load pair: 34 runs of
        // 2 s + 10 s, and 2.5 s of disk floor rounded up.
        assert_eq!(
            plan,
            Plan {
                runs: 34,
                seconds_per_run: 12,
                disk_seconds: 3
            }
        );
        assert_eq!(plan.measuring_seconds(), 411);
        let said = plan.describe(&args(&[]));
        assert!(
            said.starts_with("expected duration: about 6 min 51 s"),
            "{said}"
        );
        assert!(said.contains("preparing 10000 grants"), "{said}");
    }

    #[test]
    fn rounds_repeat_the_closed_loop_pairs_and_not_the_half_load_one() {
        let plan = Plan::of(&args(&[
            "--rounds",
            "3",
            "--concurrency",
            "64",
            "--scenarios",
            "rotating,api,half-load",
        ]));
        // 2 scenarios × 3 rounds, and the half-load pair once: 7 pairs, 14 runs.
        assert_eq!(plan.runs, 14);
        assert!(Cli::try_parse_from(["bench", "--rounds", "0"]).is_err());
    }

    #[test]
    fn the_estimate_follows_the_sizes_concurrencies_and_scenarios_asked_for() {
        let plan = Plan::of(&args(&[
            "--tokens",
            "1000,100000",
            "--concurrency",
            "4",
            "--scenarios",
            "rotating,api",
            "--duration",
            "1s",
            "--warmup",
            "0s",
        ]));
        assert_eq!(plan.runs, 8);
        assert_eq!(plan.measuring_seconds(), 8 + 1);
        assert_eq!(human(60), "1 min");
        assert_eq!(human(59), "59 s");
    }

    #[test]
    fn a_floor_far_from_its_median_is_caught_and_a_close_one_is_not() {
        // At c=64, one floor a third below the others (the run that printed ratio 1.393);
        // c=16 floors are slower and must be compared among themselves only.
        let runs = vec![
            floor(64, 100_000.0),
            floor(64, 66_000.0),
            floor(64, 97_000.0),
            floor(16, 60_000.0),
            floor(16, 56_000.0),
        ];
        let all: Vec<usize> = (0..runs.len()).collect();
        assert_eq!(disturbed_floors(&runs, &all), vec![(1, 97_000.0)]);
        // 10 % off is within the margin.
        let quiet = vec![
            floor(64, 100_000.0),
            floor(64, 90_000.0),
            floor(64, 99_000.0),
        ];
        assert!(disturbed_floors(&quiet, &[0, 1, 2]).is_empty());
        assert!((departure(66_000.0, 97_000.0) - 0.3196).abs() < 1e-3);
        assert_eq!(departure(1.0, 0.0), 0.0);
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(vec![5.0]), Some(5.0));
        assert_eq!(median(Vec::new()), None);
    }
}
