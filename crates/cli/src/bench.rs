//! `tessera bench`: the benchmark. It prepares its own data (a user, clients, and `--tokens`
//! grants minted through the bulk path), starts `tessera serve --bench-floor` on it as a child
//! process, pinned to one core, pins itself to another, and runs each scenario closed-loop for a
//! fixed time at each concurrency: the HTTP floor (a trivial POST on the same server stack),
//! rotating refresh (each worker chains the token it got back), non-rotating refresh (each
//! worker reuses its token) and API calls. Every figure is reported with its ratio to a floor
//! measured right before it, since on a shared machine only ratios between adjacent runs mean
//! anything; `--json` writes the same. With several `--tokens` sizes the whole suite runs on
//! each, and the largest is compared with the smallest. A last, open-loop run at half the peak rotating throughput measures p99
//! where it matters: below saturation.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Args;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tessera_core::operations::admin::ClientSettings;
use tessera_core::time::{parse_duration_secs, SystemClock, SystemRandom};
use tessera_core::tokens::server_key::ServerKey;
use tessera_core::{Authority, AuthorityConfig};
use tessera_proto::{ExposeSecret, Password, TokenResponse};
use tokio::net::TcpStream;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// How long each scenario is measured, like 10s.
    #[arg(long, default_value = "10s", value_parser = seconds)]
    duration: u64,
    /// How long each scenario runs before it is measured.
    #[arg(long, default_value = "2s", value_parser = seconds_or_zero)]
    warmup: u64,
    /// Concurrencies (connections, one request in flight each), comma-separated.
    #[arg(long, default_value = "16,64", value_delimiter = ',')]
    concurrency: Vec<usize>,
    /// Stored grants (each with a refresh and an access token), comma-separated: the suite
    /// runs on a fresh database of each size.
    #[arg(long, default_value = "10000", value_delimiter = ',')]
    tokens: Vec<u64>,
    /// Core for the server (none: no pinning).
    #[arg(long, default_value = "0")]
    server_cpu: Option<usize>,
    /// Core for the load generator.
    #[arg(long, default_value = "1")]
    loader_cpu: Option<usize>,
    /// Do not pin anything.
    #[arg(long)]
    no_pin: bool,
    /// Scenarios to run, comma-separated (floor is always run: it is the reference).
    #[arg(
        long,
        default_value = "rotating,non-rotating,api,half-load",
        value_delimiter = ','
    )]
    scenarios: Vec<String>,
    /// Write the results as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Keep the data here instead of a temporary directory (it is not deleted).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Run on PostgreSQL instead of SQLite: the URL of a database on the server to use (like
    /// postgres://postgres@127.0.0.1:5432/postgres), where the benchmark creates a database of
    /// its own per store size and drops it afterwards.
    #[arg(long)]
    postgres: Option<String>,
    /// Server nodes, each a `tessera serve` on the same database, all pinned to the server's
    /// core; the load generator spreads its connections over them (several need --postgres).
    #[arg(long, default_value = "1")]
    nodes: usize,
}

fn seconds(text: &str) -> Result<u64, String> {
    parse_duration_secs(text)
        .filter(|s| *s > 0)
        .ok_or_else(|| format!("{text:?} is not a positive duration like 10s"))
}

fn seconds_or_zero(text: &str) -> Result<u64, String> {
    parse_duration_secs(text).ok_or_else(|| format!("{text:?} is not a duration like 2s"))
}

const USERNAME: &str = "bench@example.com";
const PASSWORD: &str = "bench password";
const SCOPE: &str = "api refresh_token";

/// One measured run.
#[derive(Debug, Clone, Serialize)]
struct Run {
    tokens: u64,
    scenario: String,
    concurrency: usize,
    requests: u64,
    seconds: f64,
    throughput: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    /// Status code → count, for everything but 200.
    errors: BTreeMap<u16, u64>,
    /// Throughput over that of the floor measured right before, at the same concurrency.
    ratio_to_floor: Option<f64>,
    /// The server's CPU time (user and system, all threads) per answered request, in the
    /// measured window.
    server_cpu_us_per_request: f64,
    /// The floor's CPU time per request over this run's: what the throughput ratio would be on a
    /// quiet machine with the server's core saturated. Neighbours' load changes the wall clock
    /// much more than it changes the CPU a request costs.
    cpu_ratio_to_floor: Option<f64>,
    server_rss_kib: u64,
    /// Offered rate, for open-loop runs.
    target_rate: Option<f64>,
}

/// Facts about a store size.
#[derive(Debug, Clone, Serialize)]
struct StoreSize {
    tokens: u64,
    /// The database's files once the grants are minted, before any run.
    database_bytes: u64,
    bytes_per_token: f64,
    /// The same after every run: the audit events of the refreshes, and the log.
    database_bytes_after_runs: u64,
    mint_seconds: f64,
    server_rss_kib_after: u64,
}

#[derive(Debug, Serialize)]
struct Report {
    machine: String,
    pinned: bool,
    /// What one durable write costs on the disk the database is on, measured before the runs.
    disk: Option<DiskFloor>,
    runs: Vec<Run>,
    stores: Vec<StoreSize>,
}

/// The floor of a durable commit: appending 4 KiB to a file and `fdatasync`ing it, one at a
/// time, as a commit of the write-ahead log does. No refresh acknowledged after its commit can
/// answer faster than this, whatever the server does.
#[derive(Debug, Clone, Serialize)]
struct DiskFloor {
    syncs: u64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// Measures [`DiskFloor`] in `dir` for about `seconds`.
fn disk_floor(dir: &Path, seconds: f64) -> anyhow::Result<DiskFloor> {
    use std::io::Write;
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path)?;
    let block = [0x5Au8; 4096];
    let mut histogram = new_histogram();
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let mut syncs = 0;
    while Instant::now() < until {
        let started = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        histogram.record((started.elapsed().as_micros() as u64).max(1))?;
        syncs += 1;
        // Start over now and then, as the log does after a checkpoint.
        if syncs % 1024 == 0 {
            file.set_len(0)?;
            file = std::fs::OpenOptions::new().write(true).open(&path)?;
        }
    }
    drop(file);
    std::fs::remove_file(&path)?;
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    Ok(DiskFloor {
        syncs,
        p50_ms: ms(0.5),
        p90_ms: ms(0.9),
        p99_ms: ms(0.99),
        max_ms: histogram.max() as f64 / 1000.0,
    })
}

/// What each worker of a scenario needs.
#[derive(Debug, Clone)]
struct Credentials {
    client_id: String,
    client_secret: String,
    refresh_token: String,
    access_token: String,
    user_id: String,
}

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
    let max_concurrency = args.concurrency.iter().copied().max().unwrap_or(1);
    let mut report = Report {
        machine: machine(),
        pinned: pin,
        disk: None,
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
        let mut data = prepare(&dir, database.url(), tokens, max_concurrency).await?;
        let mint_seconds = started.elapsed().as_secs_f64();
        let minted_bytes = database.bytes(&dir).await;
        if report.disk.is_none() {
            let disk = disk_floor(&dir, (args.duration as f64 / 4.0).clamp(1.0, 5.0))?;
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
        for &concurrency in &args.concurrency {
            for scenario in &args.scenarios {
                if scenario == "half-load" {
                    continue;
                }
                // The floor right before each scenario: on a shared machine the neighbours' load
                // drifts within a minute, and a ratio means something only between adjacent runs.
                let floor = measure(
                    &args,
                    &server,
                    tokens,
                    "floor",
                    concurrency,
                    &mut data,
                    None,
                )
                .await?;
                let (floor_rate, floor_cpu) = (floor.throughput, floor.server_cpu_us_per_request);
                report.runs.push(floor);
                let mut run = measure(
                    &args,
                    &server,
                    tokens,
                    scenario,
                    concurrency,
                    &mut data,
                    None,
                )
                .await?;
                run.ratio_to_floor = Some(run.throughput / floor_rate);
                run.cpu_ratio_to_floor = Some(floor_cpu / run.server_cpu_us_per_request);
                report.runs.push(run);
            }
        }
        if args.scenarios.iter().any(|s| s == "half-load") {
            half_load(&args, &server, tokens, &mut data, &mut report).await?;
        }
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

/// The open-loop run: rotating refresh offered at half the peak closed-loop throughput measured
/// at the largest concurrency, so that p99 is read below saturation.
async fn half_load(
    args: &BenchArgs,
    server: &Servers,
    tokens: u64,
    data: &mut Data,
    report: &mut Report,
) -> anyhow::Result<()> {
    let Some(peak) = report
        .runs
        .iter()
        .filter(|r| r.tokens == tokens && r.scenario == "rotating")
        .map(|r| r.throughput)
        .reduce(f64::max)
    else {
        return Ok(());
    };
    let concurrency = args.concurrency.iter().copied().max().unwrap_or(1);
    let floor = measure(args, server, tokens, "floor", concurrency, data, None).await?;
    let (floor_rate, floor_cpu) = (floor.throughput, floor.server_cpu_us_per_request);
    report.runs.push(floor);
    let mut run = measure(
        args,
        server,
        tokens,
        "rotating",
        concurrency,
        data,
        Some(peak / 2.0),
    )
    .await?;
    run.scenario = "rotating at half of peak".into();
    run.ratio_to_floor = Some(run.throughput / floor_rate);
    run.cpu_ratio_to_floor = Some(floor_cpu / run.server_cpu_us_per_request);
    report.runs.push(run);
    Ok(())
}

/// The data of one store size: per-worker credentials for each scenario.
struct Data {
    rotating: Vec<Credentials>,
    non_rotating: Vec<Credentials>,
}

/// Creates the user and the clients and mints the grants, straight into the database (the
/// server is not running yet). Workers' grants come first; the rest of `tokens` is ballast.
async fn prepare(dir: &Path, url: &str, tokens: u64, workers: usize) -> anyhow::Result<Data> {
    let store = crate::open_store(url, 8).await?;
    let key = ServerKey::generate(&SystemRandom);
    std::fs::write(dir.join("server.key"), key.to_hex().as_bytes())?;
    let config = AuthorityConfig {
        max_live_grants: None,
        ..AuthorityConfig::new("http://127.0.0.1", key)
    };
    let authority = Authority::new(
        store,
        std::sync::Arc::new(SystemClock),
        std::sync::Arc::new(SystemRandom),
        config,
    );
    authority.org().await?;
    let user = authority
        .operator()
        .create_user(USERNAME, Password::new(PASSWORD), None)
        .await?;
    let client = |name: &str, rotate: bool| ClientSettings {
        name: Some(name.into()),
        redirect_uris: Some(vec!["https://bench.example/cb".into()]),
        scopes: Some(SCOPE.into()),
        rotate_refresh_tokens: Some(rotate),
        ..Default::default()
    };
    let mut data = Data {
        rotating: Vec::new(),
        non_rotating: Vec::new(),
    };
    // Workers of every concurrency run the same scenario in turn, so each kind needs as many
    // grants as the largest concurrency; the ballast is shared, and the workers' grants are
    // spread through it.
    let per_kind = workers as u64;
    let ballast = tokens.saturating_sub(2 * per_kind);
    for (rotate, ballast) in [(true, ballast - ballast / 2), (false, ballast / 2)] {
        let (client, secret) = authority
            .operator()
            .create_client(
                false,
                &client(if rotate { "rotating" } else { "static" }, rotate),
            )
            .await?;
        let secret = secret.context("a confidential client has a secret")?;
        let minted = authority
            .operator()
            .mint_many(
                &client.client_id,
                USERNAME,
                SCOPE,
                per_kind + ballast,
                workers,
            )
            .await
            .map_err(|e| anyhow::anyhow!("minting: {e}"))?;
        let credentials = minted.into_iter().map(|t: TokenResponse| Credentials {
            client_id: client.client_id.clone(),
            client_secret: secret.expose_secret().to_owned(),
            refresh_token: t
                .refresh_token
                .map(|r| r.expose_secret().to_owned())
                .unwrap_or_default(),
            access_token: t.access_token.expose_secret().to_owned(),
            user_id: user.id.clone(),
        });
        if rotate {
            data.rotating = credentials.collect();
        } else {
            data.non_rotating = credentials.collect();
        }
    }
    Ok(data)
}

/// Where the benchmark's store is.
enum Database {
    Sqlite(String),
    Postgres(postgres::Scratch),
}

impl Database {
    fn url(&self) -> &str {
        match self {
            Self::Sqlite(url) => url,
            Self::Postgres(scratch) => &scratch.url,
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Sqlite(url) => url.clone(),
            Self::Postgres(scratch) => format!("PostgreSQL database {}", scratch.name),
        }
    }

    async fn bytes(&self, dir: &Path) -> u64 {
        match self {
            Self::Sqlite(_) => database_bytes(dir),
            Self::Postgres(scratch) => scratch.bytes().await.unwrap_or(0),
        }
    }
}

/// A PostgreSQL database of the benchmark's own, dropped afterwards.
mod postgres {
    use anyhow::Context;

    pub struct Scratch {
        admin_url: String,
        pub name: String,
        pub url: String,
    }

    async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .context("connecting to PostgreSQL")?;
        tokio::task::spawn_local(connection);
        Ok(client)
    }

    impl Scratch {
        pub async fn create(admin_url: &str) -> anyhow::Result<Self> {
            let name = format!("tessera_bench_{}", std::process::id());
            let admin = connect(admin_url).await?;
            // Two statements, two round trips: neither may run inside a transaction block.
            for sql in [
                format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                format!("CREATE DATABASE {name}"),
            ] {
                admin
                    .batch_execute(&sql)
                    .await
                    .context("creating the benchmark's database")?;
            }
            let mut url = url::Url::parse(admin_url).context("the --postgres URL")?;
            url.set_path(&format!("/{name}"));
            Ok(Self {
                admin_url: admin_url.to_owned(),
                name,
                url: url.to_string(),
            })
        }

        pub async fn bytes(&self) -> anyhow::Result<u64> {
            let client = connect(&self.url).await?;
            let row = client
                .query_one("SELECT pg_database_size(current_database())", &[])
                .await?;
            Ok(row.get::<_, i64>(0).max(0) as u64)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let (url, sql) = (
                self.admin_url.clone(),
                format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            );
            // Inside the benchmark's runtime: a runtime of its own, on a thread of its own.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async {
                    let (client, connection) =
                        tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
                    tokio::spawn(connection);
                    client.batch_execute(&sql).await
                })?;
                anyhow::Ok(())
            })
            .join();
        }
    }
}

/// The nodes under test, each a child process on the same database; killed on drop.
struct Servers {
    nodes: Vec<Server>,
}

impl Servers {
    fn start(dir: &Path, url: &str, nodes: usize, cpu: Option<usize>) -> anyhow::Result<Self> {
        let nodes = (0..nodes)
            .map(|_| Server::start(dir, url, cpu))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { nodes })
    }

    /// The node worker `n` talks to.
    fn address(&self, n: usize) -> SocketAddr {
        self.nodes[n % self.nodes.len()].address
    }

    fn rss_kib(&self) -> u64 {
        self.nodes.iter().map(Server::rss_kib).sum()
    }

    fn pids(&self) -> Vec<u32> {
        self.nodes.iter().map(Server::server_pid).collect()
    }
}

/// One server process.
struct Server {
    child: Child,
    address: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(dir: &Path, url: &str, cpu: Option<usize>) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let address: SocketAddr = ([127, 0, 0, 1], port).into();
        let exe = std::env::current_exe()?;
        let mut command = match cpu {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpu.to_string()).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        command
            // No access log: the figures measure serving, not writing a line per request.
            .args(["serve", "--bench-floor", "--access-log", "false"])
            .args(["--listen", &address.to_string()])
            .args(["--max-grants-per-user-client", "0"])
            .args(["--housekeeping-interval", "1h"])
            // The loader is one source making many honest requests; none should fail anyway.
            .args(["--credential-failures-per-address", "1000000/1s"])
            .env("TESSERA_DATA_DIR", dir)
            .env("TESSERA_DATABASE_URL", url)
            .env_remove("TESSERA_CONFIG")
            .env("TESSERA_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = command.spawn().context("starting the server")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(address).is_err() {
            if Instant::now() > deadline {
                bail!("the server did not start");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Self { child, address })
    }

    fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.server_pid()))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|n| n.parse().ok())
            })
            .unwrap_or(0)
    }

    /// `taskset` execs the server in its own process, so the child's pid is the server's.
    fn server_pid(&self) -> u32 {
        self.child.id()
    }
}

/// Runs one scenario at one concurrency for the warm-up, then measures it. With `rate`, the
/// load is open-loop at that many requests a second in all, and latency counts from when each
/// request was due (so a slow answer delays the ones behind it, as it would a real client).
async fn measure(
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
        let credentials = match scenario {
            "rotating" => data.rotating.get(n),
            "floor" | "non-rotating" | "api" => data.non_rotating.get(n),
            other => bail!("unknown scenario {other:?}"),
        }
        .cloned()
        .context("more workers than prepared grants")?;
        let interval = rate.map(|r| Duration::from_secs_f64(concurrency as f64 / r));
        let worker = Worker {
            address: server.address(n),
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
    let cpu_window = tokio::task::spawn_local(async move {
        let ticks = |pids: &[u32]| pids.iter().map(|&pid| cpu_ticks(pid)).sum::<u64>();
        tokio::time::sleep_until(measured_from.into()).await;
        let before = ticks(&pids);
        tokio::time::sleep_until(end.into()).await;
        ticks(&pids).saturating_sub(before)
    });
    let mut histogram = new_histogram();
    let mut errors = BTreeMap::new();
    let mut requests = 0;
    for (n, worker) in workers.into_iter().enumerate() {
        let result = worker.await??;
        if scenario == "rotating" {
            // The worker's chain goes on from its latest token in the next run.
            data.rotating[n] = result.credentials;
        }
        histogram.add(&result.histogram)?;
        requests += result.ok;
        for (status, n) in result.errors {
            *errors.entry(status).or_insert(0) += n;
        }
    }
    let cpu_seconds = cpu_window.await? as f64 / CLOCK_TICKS_PER_SECOND;
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
        server_cpu_us_per_request: cpu_seconds * 1e6 / requests.max(1) as f64,
        cpu_ratio_to_floor: None,
        server_rss_kib: server.rss_kib(),
        target_rate: rate,
    };
    eprintln!(
        "  {:>8} tokens  {:<24} c={:<3} {:>9.0}/s  p99 {:>7.2} ms  {:>6.1} µs CPU  errors {:?}",
        tokens,
        run.scenario,
        concurrency,
        run.throughput,
        run.p99_ms,
        run.server_cpu_us_per_request,
        run.errors
    );
    Ok(run)
}

/// Linux reports process times in USER_HZ, which is 100 on every architecture it runs on.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// User plus system time of every thread of `pid` so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // The command name may hold spaces; the fields after its closing parenthesis do not.
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            // utime and stime are fields 14 and 15, the 12th and 13th after the name.
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some(utime + stime)
        })
        .unwrap_or(0)
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

struct Worker {
    address: SocketAddr,
    scenario: String,
    credentials: Credentials,
    interval: Option<Duration>,
    first_due: Instant,
    measured_from: Instant,
    end: Instant,
}

struct WorkerResult {
    histogram: Histogram<u64>,
    ok: u64,
    errors: BTreeMap<u16, u64>,
    credentials: Credentials,
}

#[derive(serde::Deserialize)]
struct Rotated {
    refresh_token: Option<String>,
}

impl Worker {
    async fn run(mut self) -> anyhow::Result<WorkerResult> {
        let stream = TcpStream::connect(self.address).await?;
        stream.set_nodelay(true)?;
        let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::task::spawn_local(connection);
        let host = self.address.to_string();
        let mut histogram = new_histogram();
        let mut ok = 0;
        let mut errors = BTreeMap::new();
        let mut due = self.first_due;
        loop {
            let sent = match self.interval {
                Some(interval) => {
                    tokio::time::sleep_until(due.into()).await;
                    due += interval;
                    due - interval
                }
                None => Instant::now(),
            };
            if sent >= self.end {
                return Ok(WorkerResult {
                    histogram,
                    ok,
                    errors,
                    credentials: self.credentials,
                });
            }
            let request = self.request(&host)?;
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await?.to_bytes();
            let done = Instant::now();
            if status == 200 && self.scenario == "rotating" {
                let rotated: Rotated = serde_json::from_slice(&body)?;
                if let Some(next) = rotated.refresh_token {
                    self.credentials.refresh_token = next;
                }
            }
            if sent >= self.measured_from {
                if status == 200 {
                    ok += 1;
                    let micros = done.duration_since(sent).as_micros() as u64;
                    histogram.record(micros.max(1))?;
                } else {
                    *errors.entry(status).or_insert(0) += 1;
                }
            }
        }
    }

    fn request(&self, host: &str) -> anyhow::Result<Request<Full<Bytes>>> {
        let c = &self.credentials;
        let form = |pairs: &[(&str, &str)]| {
            let mut ser = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in pairs {
                ser.append_pair(k, v);
            }
            Bytes::from(ser.finish())
        };
        let post = |path: &str, body: Bytes| {
            Request::post(path)
                .header(hyper::header::HOST, host)
                .header(
                    hyper::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(Full::new(body))
        };
        Ok(match self.scenario.as_str() {
            "floor" => post("/bench/floor", form(&[("grant_type", "refresh_token")]))?,
            "rotating" | "non-rotating" => post(
                "/services/oauth2/token",
                form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &c.refresh_token),
                    ("client_id", &c.client_id),
                    ("client_secret", &c.client_secret),
                ]),
            )?,
            _ => Request::get(format!("/services/data/v65.0/sobjects/User/{}", c.user_id))
                .header(hyper::header::HOST, host)
                .header(
                    hyper::header::AUTHORIZATION,
                    format!("Bearer {}", c.access_token),
                )
                .body(Full::new(Bytes::new()))?,
        })
    }
}

fn which(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Pins a process, every thread of it, to one core.
fn pin_process(pid: u32, cpu: usize) -> anyhow::Result<()> {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()])
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("taskset could not pin the load generator to core {cpu}");
    }
    Ok(())
}

fn database_bytes(dir: &Path) -> u64 {
    ["tessera.db", "tessera.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

fn machine() -> String {
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
fn print_report(report: &Report) {
    println!(
        "\nTessera benchmark — {} (pinned: {})",
        report.machine, report.pinned
    );
    if let Some(d) = &report.disk {
        println!(
            "durable-commit floor (4 KiB append + fdatasync, {} times): p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            d.syncs, d.p50_ms, d.p90_ms, d.p99_ms, d.max_ms
        );
    }
    println!(
        "{:>9}  {:<25} {:>4}  {:>10}  {:>7}  {:>7}  {:>7}  {:>8}  {:>6}  {:>7}  {:>9}  {:>8}  errors",
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
        "RSS MiB"
    );
    for r in &report.runs {
        println!(
            "{:>9}  {:<25} {:>4}  {:>10.0}  {:>7.2}  {:>7.2}  {:>7.2}  {:>8.2}  {:>6}  {:>7.1}  {:>9}  {:>8.1}  {:?}",
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
}
