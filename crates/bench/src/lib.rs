//! `tessera bench`: the benchmark. It prepares its own data (a user, clients, and `--tokens`
//! grants minted through the bulk path), starts `tessera serve --bench-floor` on it as a child
//! process, pinned to one core, pins itself to another, and runs each scenario closed-loop for a
//! fixed time at each concurrency: the HTTP floor (a trivial POST on the same server stack),
//! rotating refresh (each worker chains the token it got back), non-rotating refresh (each
//! worker reuses its token) and API calls. Every figure is reported with its ratio to a floor
//! measured right before it, since on a shared machine only ratios between adjacent runs mean
//! anything; `--json` writes the same. With several `--tokens` sizes the whole suite runs on
//! each, and the largest is compared with the smallest. A last, open-loop run at half the peak
//! rotating throughput measures p99 where it matters: below saturation. A pair whose floor came
//! out far from the others of its concurrency is measured again, and flagged if it still is; the
//! expected duration is said before anything runs.
//!
//! `tessera bench` is the driver: the benchmark starts the `tessera` binary it runs in
//! (`std::env::current_exe`) as its server, so it is a library of that binary rather than a
//! binary of its own. Its errors are `anyhow`'s: they are told to the person running it, never
//! matched on.

mod args;
mod data;
mod database;
mod disk;
mod histogram;
mod load;
mod plan;
mod postgres;
mod process;
mod report;
mod scenario;
mod servers;
mod signatures;

use std::time::Instant;

use anyhow::{bail, Context};

pub use args::BenchArgs;
use data::prepare;
use database::Database;
use disk::disk_floor;
use plan::{disk_seconds, Plan};
use process::{pin_process, which};
use report::{machine, print_report, Report, StoreSize};
use scenario::{half_load, measure_disturbed_pairs_again, measure_pair, Pair};
use servers::Servers;

/// Runs the whole benchmark and reports it. It spawns tasks with `spawn_local`: run it inside
/// a [`tokio::task::LocalSet`] on a current-thread runtime (the load generator is pinned to one
/// core).
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let pin = !args.no_pin && which("taskset");
    if pin {
        if let Some(cpu) = args.loader_cpu {
            pin_process(std::process::id(), cpu)?;
        }
    }
    if args.nodes == 0 || (args.nodes > 1 && args.postgres.is_none()) {
        bail!("--nodes must be 1, or more with --postgres (nodes share a PostgreSQL database)");
    }
    eprintln!("{}", Plan::of(&args).describe(&args));
    let max_concurrency = args.concurrency.iter().copied().max().unwrap_or(1);
    let mut report = Report {
        machine: machine(),
        pinned: pin,
        disk: None,
        signatures: signatures::measure()?,
        runs: Vec::new(),
        stores: Vec::new(),
    };
    for &tokens in &args.tokens {
        let temp;
        let dir = match &args.data_dir {
            Some(dir) => dir.join(format!("tokens-{tokens}")),
            None => {
                temp = tempfile::tempdir()?;
                temp.path().to_path_buf()
            }
        };
        std::fs::create_dir_all(&dir)?;
        let database = match &args.postgres {
            Some(url) => Database::Postgres(postgres::Scratch::create(url).await?),
            None => Database::Sqlite(format!("sqlite://{}/tessera.db", dir.display())),
        };
        eprintln!(
            "preparing {tokens} stored grants in {}",
            database.describe()
        );
        let started = Instant::now();
        let mut data = prepare(&dir, &database, tokens, max_concurrency).await?;
        let mint_seconds = started.elapsed().as_secs_f64();
        let minted_bytes = database.bytes(&dir).await;
        if report.disk.is_none() {
            let disk = disk_floor(&dir, disk_seconds(args.duration))?;
            eprintln!(
                "disk: 4 KiB append + fdatasync, {} times: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                disk.syncs, disk.p50_ms, disk.p99_ms, disk.max_ms
            );
            report.disk = Some(disk);
        }
        let server = Servers::start(
            &dir,
            database.url(),
            args.nodes,
            if pin { args.server_cpu } else { None },
        )?;
        let mut measured = Vec::new();
        for round in 1..=args.rounds {
            for &concurrency in &args.concurrency {
                for scenario in args.scenarios.iter().filter(|s| *s != "half-load") {
                    let pair = Pair::closed_loop(scenario, concurrency, round);
                    measured.push(
                        record_pair(&args, &server, tokens, pair, &mut data, &mut report).await?,
                    );
                }
            }
        }
        // Last: its rate is half the peak the rotating runs above measured.
        if args.scenarios.iter().any(|s| s == "half-load") {
            if let Some(pair) = half_load(&args, &report, tokens) {
                measured
                    .push(record_pair(&args, &server, tokens, pair, &mut data, &mut report).await?);
            }
        }
        measure_disturbed_pairs_again(&args, &server, tokens, &mut data, &mut report, &measured)
            .await?;
        report.stores.push(StoreSize {
            tokens,
            database_bytes: minted_bytes,
            bytes_per_token: minted_bytes as f64 / tokens.max(1) as f64,
            database_bytes_after_runs: database.bytes(&dir).await,
            mint_seconds,
            server_rss_kib_after: server.rss_kib(),
        });
        drop(server);
    }
    print_report(&report);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Measures a pair — the floor right before the scenario: on a shared machine the neighbours'
/// load drifts within a minute, and a ratio means something only between adjacent runs — and
/// adds both rows to the report; returns the pair with the index of its floor's row.
async fn record_pair(
    args: &BenchArgs,
    server: &Servers,
    tokens: u64,
    pair: Pair,
    data: &mut data::Data,
    report: &mut Report,
) -> anyhow::Result<(Pair, usize)> {
    let (floor, run) = measure_pair(args, server, tokens, &pair, data).await?;
    let index = report.runs.len();
    report.runs.push(floor);
    report.runs.push(run);
    Ok((pair, index))
}
