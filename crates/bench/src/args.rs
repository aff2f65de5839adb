//! The benchmark's command line: how long, how hard, on what, pinned where.

use std::path::PathBuf;

use clap::Args;
use tessera_core::time::parse_duration_secs;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// How long each scenario is measured, like 10s.
    #[arg(long, default_value = "10s", value_parser = seconds)]
    pub(crate) duration: u64,
    /// How long each scenario runs before it is measured.
    #[arg(long, default_value = "2s", value_parser = seconds_or_zero)]
    pub(crate) warmup: u64,
    /// Concurrencies (connections, one request in flight each), comma-separated.
    #[arg(long, default_value = "16,64", value_delimiter = ',')]
    pub(crate) concurrency: Vec<usize>,
    /// Stored grants (each with a refresh and an access token), comma-separated: the suite
    /// runs on a fresh database of each size.
    #[arg(long, default_value = "10000", value_delimiter = ',')]
    pub(crate) tokens: Vec<u64>,
    /// Core for the server (none: no pinning).
    #[arg(long, default_value = "0")]
    pub(crate) server_cpu: Option<usize>,
    /// Core for the load generator.
    #[arg(long, default_value = "1")]
    pub(crate) loader_cpu: Option<usize>,
    /// Do not pin anything.
    #[arg(long)]
    pub(crate) no_pin: bool,
    /// Scenarios to run, comma-separated (floor is always run: it is the reference): rotating,
    /// non-rotating (refresh), api (a REST call with an opaque access token), openid-rs256 and
    /// openid-es256 (rotating refresh of an `openid` grant: an ID token signed on every
    /// refresh), api-jwt (a REST call with a JWT access token), dpop-rotating (rotating refresh
    /// with a DPoP proof, signed by the load generator, on every request), dpop-api (a REST call
    /// with a DPoP-bound access token and a proof), half-load.
    #[arg(
        long,
        default_value = "rotating,non-rotating,api,openid-rs256,openid-es256,api-jwt,dpop-rotating,dpop-api,half-load",
        value_delimiter = ','
    )]
    pub(crate) scenarios: Vec<String>,
    /// Write the results as JSON here too.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
    /// Keep the data here instead of a temporary directory (it is not deleted).
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
    /// Run on PostgreSQL instead of SQLite: the URL of a database on the server to use (like
    /// postgres://postgres@127.0.0.1:5432/postgres), where the benchmark creates a database of
    /// its own per store size and drops it afterwards.
    #[arg(long)]
    pub(crate) postgres: Option<String>,
    /// Server nodes, each a `tessera serve` on the same database, all pinned to the server's
    /// core; the load generator spreads its connections over them (several need --postgres).
    #[arg(long, default_value = "1")]
    pub(crate) nodes: usize,
    /// Measure every closed-loop scenario this many times, one round after another, and report
    /// each one's median over the rounds with its range: on a shared machine one pair's ratio
    /// can be a fifth off, and a target is judged on the median.
    #[arg(long, default_value = "1", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub(crate) rounds: u32,
}

fn seconds(text: &str) -> Result<u64, String> {
    parse_duration_secs(text)
        .filter(|s| *s > 0)
        .ok_or_else(|| format!("{text:?} is not a positive duration like 10s"))
}

fn seconds_or_zero(text: &str) -> Result<u64, String> {
    parse_duration_secs(text).ok_or_else(|| format!("{text:?} is not a duration like 2s"))
}
