//! One scenario measured at one concurrency, each after a floor, the open-loop run at half of
//! the peak, and the pairs measured again when their floor was disturbed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::data::Data;
use crate::histogram::new_histogram;
use crate::load::Worker;
use crate::plan::{departure, disturbed_floors, FLOOR_MARGIN, HALF_LOAD_LABEL};
use crate::process::{cpu_ticks, CLOCK_TICKS_PER_SECOND};
use crate::report::{Report, Run};
use crate::servers::Servers;
use crate::BenchArgs;

/// Runs one scenario at one concurrency for the warm-up, then measures it. With `rate`, the
/// load is open-loop at that many requests a second in all, and latency counts from when each
/// request was due (so a slow answer delays the ones behind it, as it would a real client).
pub(crate) async fn measure(
    args: &BenchArgs,
    server: &Servers,
    tokens: u64,
    scenario: &str,
    concurrency: usize,
    data: &mut Data,
    rate: Option<f64>,
) -> anyhow::Result<Run> {
    let warmup = Duration::from_secs(args.warmup);
    let duration = Duration::from_secs(args.duration);
    let start = Instant::now();
    let measured_from = start + warmup;
    let end = measured_from + duration;
    let mut workers = Vec::with_capacity(concurrency);
    for n in 0..concurrency {
        let Some((prepared, _)) = data.of_scenario(scenario) else {
            bail!("unknown scenario {scenario:?}");
        };
        let credentials = prepared
            .get(n)
            .cloned()
            .context("more workers than prepared grants")?;
        let interval = rate.map(|r| Duration::from_secs_f64(concurrency as f64 / r));
        let worker = Worker {
            address: server
                .address(n)
                .context("no server node to send requests to")?,
            scenario: scenario.to_owned(),
            credentials,
            interval,
            // Open-loop workers start spread over one interval, so that their requests
            // interleave.
            first_due: Instant::now()
                + interval.map_or(Duration::ZERO, |i| i.mul_f64(n as f64 / concurrency as f64)),
            measured_from,
            end,
        };
        workers.push(tokio::task::spawn_local(worker.run()));
    }
    let pids = server.pids();
    // The load generator's own CPU too: a scenario whose requests cost it much (the DPoP
    // proofs it signs) can make it, not the server, the bound.
    let loader = std::process::id();
    let cpu_window = tokio::task::spawn_local(async move {
        let ticks = |pids: &[u32]| pids.iter().map(|&pid| cpu_ticks(pid)).sum::<u64>();
        tokio::time::sleep_until(measured_from.into()).await;
        let before = (ticks(&pids), cpu_ticks(loader));
        tokio::time::sleep_until(end.into()).await;
        (
            ticks(&pids).saturating_sub(before.0),
            cpu_ticks(loader).saturating_sub(before.1),
        )
    });
    let mut histogram = new_histogram()?;
    let mut errors = BTreeMap::new();
    let mut requests = 0;
    for (n, worker) in workers.into_iter().enumerate() {
        let result = worker.await??;
        if let Some((prepared, true)) = data.of_scenario(scenario) {
            // The worker's chain goes on from its latest token in the next run (worker `n` took
            // its first from slot `n`, so the slot is there).
            if let Some(chain) = prepared.get_mut(n) {
                *chain = result.credentials;
            }
        }
        histogram.add(&result.histogram)?;
        requests += result.ok;
        for (status, n) in result.errors {
            *errors.entry(status).or_insert(0) += n;
        }
    }
    let (server_ticks, loader_ticks) = cpu_window.await?;
    let per_request =
        |ticks: u64| ticks as f64 / CLOCK_TICKS_PER_SECOND * 1e6 / requests.max(1) as f64;
    let seconds = duration.as_secs_f64();
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    let run = Run {
        tokens,
        scenario: scenario.to_owned(),
        concurrency,
        requests,
        seconds,
        throughput: requests as f64 / seconds,
        p50_ms: ms(0.5),
        p90_ms: ms(0.9),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        errors,
        ratio_to_floor: None,
        server_cpu_us_per_request: per_request(server_ticks),
        cpu_ratio_to_floor: None,
        server_rss_kib: server.rss_kib(),
        target_rate: rate,
        floor_off_median: None,
        loader_cpu_us_per_request: per_request(loader_ticks),
        round: 1,
    };
    Ok(run)
}

/// A scenario measured right after a floor at the same concurrency: the floor is what its
/// ratios are to.
#[derive(Debug, Clone)]
pub(crate) struct Pair {
    /// The scenario the workers run.
    pub(crate) scenario: String,
    /// Its name in the report.
    pub(crate) label: String,
    pub(crate) concurrency: usize,
    /// Offered requests a second in all, for an open-loop run.
    pub(crate) rate: Option<f64>,
    /// The round of `--rounds` it belongs to.
    pub(crate) round: u32,
}

impl Pair {
    pub(crate) fn closed_loop(scenario: &str, concurrency: usize, round: u32) -> Self {
        Self {
            scenario: scenario.to_owned(),
            label: scenario.to_owned(),
            concurrency,
            rate: None,
            round,
        }
    }
}

/// Measures the floor, then the pair's scenario, and sets the scenario's ratios to that floor.
pub(crate) async fn measure_pair(
    args: &BenchArgs,
    server: &Servers,
    tokens: u64,
    pair: &Pair,
    data: &mut Data,
) -> anyhow::Result<(Run, Run)> {
    let mut floor = measure(args, server, tokens, "floor", pair.concurrency, data, None).await?;
    let mut run = measure(
        args,
        server,
        tokens,
        &pair.scenario,
        pair.concurrency,
        data,
        pair.rate,
    )
    .await?;
    run.scenario = pair.label.clone();
    floor.round = pair.round;
    run.round = pair.round;
    // An open-loop run's throughput is the rate it was offered, not a capacity: a ratio of it
    // to the floor would read as a regression.
    if pair.rate.is_none() {
        run.ratio_to_floor = Some(run.throughput / floor.throughput);
    }
    run.cpu_ratio_to_floor = Some(floor.server_cpu_us_per_request / run.server_cpu_us_per_request);
    progress(&floor);
    progress(&run);
    Ok((floor, run))
}

/// One line on standard error as each run ends, so that a long benchmark shows it is moving.
fn progress(run: &Run) {
    eprintln!(
        "  {:>8} tokens  {:<30} c={:<3} {:>9.0}/s  p99 {:>7.2} ms  {:>6.1} µs CPU  loader {:>6.1} µs  errors {:?}",
        run.tokens,
        run.scenario,
        run.concurrency,
        run.throughput,
        run.p99_ms,
        run.server_cpu_us_per_request,
        run.loader_cpu_us_per_request,
        run.errors
    );
}

/// The open-loop run: rotating refresh offered at half the peak closed-loop throughput measured
/// at the largest concurrency, so that p99 is read below saturation; `None` without a rotating
/// run to take the peak from.
pub(crate) fn half_load(args: &BenchArgs, report: &Report, tokens: u64) -> Option<Pair> {
    let peak = report
        .runs
        .iter()
        .filter(|r| r.tokens == tokens && r.scenario == "rotating")
        .map(|r| r.throughput)
        .reduce(f64::max)?;
    Some(Pair {
        scenario: "rotating".into(),
        label: HALF_LOAD_LABEL.into(),
        concurrency: args.concurrency.iter().copied().max().unwrap_or(1),
        rate: Some(peak / 2.0),
        round: 1,
    })
}

/// Measures again, once, each pair whose floor is more than [`FLOOR_MARGIN`] off the median
/// floor of its concurrency (`measured`: each pair with the index of its floor in the report,
/// its scenario's row right after). A pair whose floor is still off is kept, flagged.
pub(crate) async fn measure_disturbed_pairs_again(
    args: &BenchArgs,
    server: &Servers,
    tokens: u64,
    data: &mut Data,
    report: &mut Report,
    measured: &[(Pair, usize)],
) -> anyhow::Result<()> {
    let floors: Vec<usize> = measured.iter().map(|(_, index)| *index).collect();
    for (index, median) in disturbed_floors(&report.runs, &floors) {
        let Some((pair, _)) = measured.iter().find(|(_, i)| *i == index) else {
            continue;
        };
        let was = report.runs.get(index).map_or(0.0, |r| r.throughput);
        eprintln!(
            "  the floor before {} at c={} ran at {:.0}/s, {:.0} % off the median floor ({:.0}/s): \
             measuring the pair again",
            pair.label,
            pair.concurrency,
            was,
            departure(was, median) * 100.0,
            median
        );
        let (mut floor, mut run) = measure_pair(args, server, tokens, pair, data).await?;
        let off = departure(floor.throughput, median);
        if off > FLOOR_MARGIN {
            eprintln!(
                "  still {:.0} % off: the row is flagged, its ratio unreliable",
                off * 100.0
            );
            floor.floor_off_median = Some(off);
            run.floor_off_median = Some(off);
        }
        if let Some(slot) = report.runs.get_mut(index) {
            *slot = floor;
        }
        if let Some(slot) = report.runs.get_mut(index + 1) {
            *slot = run;
        }
    }
    Ok(())
}
