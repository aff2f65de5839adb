//! Typed, strict configuration (docs/decisions.md, "Typed, strict configuration"), shared by
//! `serve` and `admin`.
//!
//! [`Options`] is the one list of settings: each field is a flag, its environment variable
//! (clap reads both, flag first) and a key of the TOML config file. [`Options::resolve`] layers
//! them with figment — the file below, flags and environment above — and [`Settings`] is the
//! validated result with the defaults filled in. `tessera.example.toml` documents every key.

use std::net::ToSocketAddrs;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use tessera_core::authority::{default_password_checks, DpopPolicyConfig};
use tessera_core::identity::cors_origin::CorsAllowlist;
use tessera_core::identity::ip_allowlist::IpAllowlist;
use tessera_core::identity::throttle::{Budget, ThrottleConfig, DEFAULT_MAX_TRACKED_KEYS};
use tessera_core::operations::admin::ClientDefaults;
use tessera_core::operations::signing_keys::KeySchedule;
use tessera_core::time::parse_duration_secs;
use tessera_server::cors::CorsPolicy;
use tessera_server::{ProxyHeader, TrustedProxies};

/// Every setting of the server, as the config file holds them: one key a field, unknown keys
/// refused. All optional: what is not given by a flag, an environment variable or the config
/// file takes its default. As flags, [`ServerOptions`] are `serve`'s alone; `admin` takes only
/// the [`SharedOptions`] it reads, so its help does not list the server's listeners and budgets.
#[derive(Debug, Default, Clone, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[command(flatten)]
    #[serde(flatten)]
    pub server: ServerOptions,
    #[command(flatten)]
    #[serde(flatten)]
    pub shared: SharedOptions,
}

/// The settings only the server reads: its listeners, its access log, its housekeeping timer,
/// whom it trusts for source addresses, how it throttles failures and password checks.
#[derive(Debug, Default, Clone, Args, Serialize, Deserialize)]
pub struct ServerOptions {
    /// Address and port to listen on, e.g. 127.0.0.1:8080 or localhost:8080 [default: 127.0.0.1:8080].
    #[arg(long, env = "TESSERA_LISTEN", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Serve /metrics only on this host:port, apart from the API (e.g. 127.0.0.1:9090)
    /// [default: none].
    #[arg(long, env = "TESSERA_METRICS_LISTEN", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<String>,
    /// Serve /metrics on the main listener too, next to the API, to whoever reaches it; not
    /// with metrics_listen [default: false: without metrics_listen, /metrics is not served].
    #[arg(long, env = "TESSERA_METRICS_ON_MAIN_LISTENER", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_on_main_listener: Option<bool>,
    /// One log line per request (target tessera::access): method, route, status, latency,
    /// client id, source address [default: true].
    #[arg(long, env = "TESSERA_ACCESS_LOG", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_log: Option<bool>,
    /// Serve the /learn playground (the refresh-token flow step by step, with the server's
    /// side in view, and two playground clients) [default: on with --dev, off otherwise].
    #[arg(long, env = "TESSERA_LEARN", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learn: Option<bool>,
    /// How often expired and revoked rows are removed, like 60s [default: 60s].
    #[arg(long, env = "TESSERA_HOUSEKEEPING_INTERVAL", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub housekeeping_interval: Option<String>,
    /// How often the uses of grants whose refresh writes no row (non-rotating, no idle limit)
    /// are written to the database, like 5s: how far a use count may lag [default: 5s].
    #[arg(long, env = "TESSERA_USAGE_FLUSH_INTERVAL", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_flush_interval: Option<String>,
    /// How long the change feed may go unread (its reads failing) before token checks answer 503
    /// and /readyz fails, like 10s; longer than the feed's 100 ms polling [default: 10s].
    #[arg(long, env = "TESSERA_CHANGE_FEED_MAX_STALENESS", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_feed_max_staleness: Option<String>,
    /// Reverse proxies (IP or CIDR, comma-separated) whose --trusted-proxy-header names the
    /// client; without it the TCP peer is the source address [default: none].
    #[arg(
        long,
        env = "TESSERA_TRUSTED_PROXIES",
        global = true,
        value_delimiter = ','
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_proxies: Option<Vec<String>>,
    /// The one header the trusted proxies name the client in: X-Forwarded-For or Forwarded (any
    /// case); the other is ignored [default: X-Forwarded-For].
    #[arg(long, env = "TESSERA_TRUSTED_PROXY_HEADER", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_proxy_header: Option<String>,
    /// Failed secrets, tokens and codes per source address before its failing requests get 429,
    /// like 100/1m [default: 100/1m].
    #[arg(long, env = "TESSERA_CREDENTIAL_FAILURES_PER_ADDRESS", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_failures_per_address: Option<String>,
    /// Failed logins per username and address before that address is refused for that user [default: 10/5m].
    #[arg(
        long,
        env = "TESSERA_LOGIN_FAILURES_PER_USER_AND_ADDRESS",
        global = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_failures_per_user_and_address: Option<String>,
    /// Failed logins per username from anywhere before the username is refused [default: 100/1h].
    #[arg(long, env = "TESSERA_LOGIN_FAILURES_PER_USER", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_failures_per_user: Option<String>,
    /// Failed logins per address, whatever the username, before the address is refused [default: 100/5m].
    #[arg(long, env = "TESSERA_LOGIN_FAILURES_PER_ADDRESS", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_failures_per_address: Option<String>,
    /// Most addresses or usernames each throttle counter remembers (the memory bound) [default: 100000].
    #[arg(long, env = "TESSERA_THROTTLE_MAX_TRACKED_KEYS", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throttle_max_tracked_keys: Option<u64>,
    /// A browser origin allowed to call the API, userinfo and the identity URL cross-origin, like
    /// https://app.example.com or https://*.example.com; repeat it, or comma-separate in the
    /// environment [default: none].
    #[arg(
        long = "cors-origin",
        value_name = "PATTERN",
        env = "TESSERA_CORS_ORIGINS",
        global = true,
        value_delimiter = ','
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors_origins: Option<Vec<String>>,
    /// Extend the CORS allowlist to the token, revocation and introspection endpoints
    /// [default: false].
    #[arg(
        long,
        env = "TESSERA_CORS_OAUTH_ENDPOINTS",
        global = true,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors_oauth_endpoints: Option<bool>,
    /// Password checks (Argon2id, 19 MiB each) that may run at once [default: the number of cores].
    #[arg(long, env = "TESSERA_MAX_CONCURRENT_PASSWORD_CHECKS", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_password_checks: Option<usize>,
    /// How long a login waits for a password check before it is answered 503, like 5s [default: 5s].
    #[arg(long, env = "TESSERA_PASSWORD_CHECK_WAIT", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_check_wait: Option<String>,
    /// Require a server nonce in every DPoP proof, whatever the client [default: false].
    #[arg(
        long,
        env = "TESSERA_DPOP_REQUIRE_NONCE",
        global = true,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dpop_require_nonce: Option<bool>,
    /// How old a DPoP proof's iat may be, like 60s [default: 60s].
    #[arg(long, env = "TESSERA_DPOP_IAT_PAST", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dpop_iat_past: Option<String>,
    /// How far ahead of the server's clock a DPoP proof's iat may be, like 10s [default: 10s].
    #[arg(long, env = "TESSERA_DPOP_IAT_FUTURE", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dpop_iat_future: Option<String>,
    /// DPoP proofs a node's replay cache holds at once; when full, proofs get 503 [default: 1000000].
    #[arg(long, env = "TESSERA_DPOP_REPLAY_CAPACITY", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dpop_replay_capacity: Option<usize>,
}

/// The settings `admin` reads as well as `serve`: where the data is, how to log, the issuer and
/// `expires_in` of the tokens `admin token mint` prints, the grants a user keeps per client, and
/// how long `admin housekeeping` keeps audit events.
#[derive(Debug, Default, Clone, Args, Serialize, Deserialize)]
pub struct SharedOptions {
    /// Public base URL: instance_url, identity URLs, the discovery issuer [default: http://<listen>].
    #[arg(long, env = "TESSERA_ISSUER", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Database URL: sqlite://PATH, or postgres://USER@HOST:PORT/DB for several nodes [default: sqlite://<data-dir>/tessera.db].
    #[arg(long, env = "TESSERA_DATABASE_URL", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Connections to PostgreSQL this process keeps at most [default: 16].
    #[arg(long, env = "TESSERA_DATABASE_POOL_SIZE", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_pool_size: Option<usize>,
    /// Directory of the default database and the server key [default: $XDG_DATA_HOME/tessera].
    #[arg(long, env = "TESSERA_DATA_DIR", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Whether token responses carry expires_in (Salesforce's do not) [default: true].
    #[arg(long, env = "TESSERA_EXPIRES_IN", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<bool>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "TESSERA_LOG_FORMAT", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
    /// Live refresh-token grants per user per client; the next revokes the oldest (0: no limit) [default: 5].
    #[arg(long, env = "TESSERA_MAX_GRANTS_PER_USER_CLIENT", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_grants_per_user_client: Option<u32>,
    /// How long audit events are kept, like 30d [default: 30d].
    #[arg(long, env = "TESSERA_AUDIT_RETENTION", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_retention: Option<String>,
    /// How long a signing key signs before housekeeping rotates it, like 90d [default: 90d].
    #[arg(long, env = "TESSERA_SIGNING_KEY_ROTATION", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_key_rotation: Option<String>,
    /// How long clients may cache the JWKS (/id/keys), like 24h [default: 24h].
    #[arg(long, env = "TESSERA_JWKS_CACHE_LIFETIME", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_cache_lifetime: Option<String>,
    /// Whether a new client requires PKCE unless created with --pkce-required false
    /// (docs/controls.md) [default: false].
    #[arg(long, env = "TESSERA_CLIENT_DEFAULT_PKCE_REQUIRED", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_default_pkce_required: Option<bool>,
    /// Whether a new client requires refresh-token rotation unless created with
    /// --rotation-required false [default: false].
    #[arg(long, env = "TESSERA_CLIENT_DEFAULT_ROTATION_REQUIRED", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_default_rotation_required: Option<bool>,
    /// The idle-limit cap of a new client unless created with --idle-cap, like 30d, or off
    /// [default: off].
    #[arg(long, env = "TESSERA_CLIENT_DEFAULT_IDLE_CAP", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_default_idle_cap: Option<String>,
    /// The refresh-token IP allowlist of a new client unless created with --ip-allowlist, like
    /// 203.0.113.0/24,2001:db8::/32 [default: none: any address].
    #[arg(long, env = "TESSERA_CLIENT_DEFAULT_IP_ALLOWLIST", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_default_ip_allowlist: Option<String>,
}

/// The config file of `serve` and `admin`.
#[derive(Debug, Clone, Args)]
pub struct ConfigFile {
    /// TOML config file (see tessera.example.toml); flags and environment variables override it.
    #[arg(long, env = "TESSERA_CONFIG", global = true)]
    pub config: Option<PathBuf>,
}

impl ConfigFile {
    /// The file's keys (every key of [`Options`] is allowed, whichever command reads it),
    /// overridden by the flags and environment variables that were `given`, validated.
    pub fn settings(&self, given: &impl Serialize) -> anyhow::Result<Settings> {
        let mut figment = Figment::new();
        let mut file = None;
        if let Some(path) = &self.config {
            if !path.is_file() {
                bail!("config file {} does not exist", path.display());
            }
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            refuse_unknown_keys(path, &text)?;
            figment = figment.merge(Toml::file_exact(path));
            file = Some((path.as_path(), text));
        }
        let options: Options = figment
            .merge(Serialized::defaults(given))
            .extract()
            .map_err(|e| one_line(&e, file.as_ref().map(|(p, t)| (*p, t.as_str()))))?;
        Settings::from_options(options)
    }
}

/// Every key of the config file: the names of [`Options`]' fields, which are also the ids of
/// their flags.
pub fn known_keys() -> Vec<String> {
    Options::augment_args(clap::Command::new("config"))
        .get_arguments()
        .map(|argument| argument.get_id().to_string())
        .collect()
}

/// The top-level keys of a TOML text with the line each is on, in the file's order; `None` if
/// it is not TOML (its parser's error says where).
pub fn keys_with_lines(text: &str) -> Option<Vec<(String, usize)>> {
    let table: std::collections::BTreeMap<toml::Spanned<String>, toml::Value> =
        toml::from_str(text).ok()?;
    let mut keys: Vec<(usize, String)> = table
        .into_keys()
        .map(|key| (key.span().start, key.into_inner()))
        .collect();
    keys.sort();
    Some(
        keys.into_iter()
            .map(|(offset, key)| (key, line_at(text, offset)))
            .collect(),
    )
}

/// The line number (from 1) of a byte offset.
fn line_at(text: &str, offset: usize) -> usize {
    text.bytes().take(offset).filter(|b| *b == b'\n').count() + 1
}

/// The first key of the file that no setting has, as one line: where, which, and the known key
/// it is likely a typo of. (figment's own error lists every key, with its profile as a prefix.)
fn refuse_unknown_keys(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    let known = known_keys();
    let Some(keys) = keys_with_lines(text) else {
        return Ok(());
    };
    if let Some((key, line)) = keys.into_iter().find(|(key, _)| !known.contains(key)) {
        let hint = match closest_key(&key, &known) {
            Some(close) => format!(", did you mean `{close}`?"),
            None => " (docs/configuration.md lists every key)".to_owned(),
        };
        bail!("{}:{line}: unknown key `{key}`{hint}", path.display());
    }
    Ok(())
}

/// The known key `key` is likely a misspelling of: the flag's spelling of it (`-` for `_`), or
/// the nearest by edit distance, if near enough to be a slip rather than another word.
fn closest_key<'a>(key: &str, known: &'a [String]) -> Option<&'a str> {
    let underscored = key.replace('-', "_");
    known
        .iter()
        .map(|candidate| {
            (
                strsim::damerau_levenshtein(&underscored, candidate),
                candidate,
            )
        })
        .filter(|(distance, _)| *distance <= (underscored.len() / 4).max(2))
        .min()
        .map(|(_, candidate)| candidate.as_str())
}

/// figment's error, as one line. Through the flattened [`Options`] serde names no key, so the
/// key is found by reading the file's keys one at a time: the first refused alone is the one.
/// None refused: the value came from a flag or the environment.
fn one_line(error: &figment::Error, file: Option<(&std::path::Path, &str)>) -> anyhow::Error {
    let culprit = file.and_then(|(path, text)| {
        let table: toml::Table = toml::from_str(text).ok()?;
        keys_with_lines(text)?.into_iter().find_map(|(key, line)| {
            let value = table.get(&key)?.clone();
            let alone = toml::Table::from_iter([(key.clone(), value)]);
            let refused = Options::deserialize(toml::Value::Table(alone)).err()?;
            Some(anyhow::anyhow!(
                "{}:{line}: `{key}`: {}",
                path.display(),
                refused.message()
            ))
        })
    });
    culprit.unwrap_or_else(|| anyhow::anyhow!("in the settings: {}", error.kind))
}

/// Where the settings of `serve` come from: the config file and a flag for every setting.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub file: ConfigFile,
    #[command(flatten)]
    pub options: Options,
}

impl ConfigArgs {
    pub fn settings(&self) -> anyhow::Result<Settings> {
        self.file.settings(&self.options)
    }
}

/// Where the settings of `admin` come from: the config file, flags for the settings admin reads,
/// and the server's own settings as hidden arguments. Those are not admin's options, so its help
/// does not list them, but they are still read from the environment and checked as `serve` checks
/// them: a shell set up for `serve` gives `admin` the same settings (the issuer's default follows
/// `TESSERA_LISTEN`) and the same errors.
#[derive(Debug, Clone, Args)]
pub struct AdminConfigArgs {
    #[command(flatten)]
    pub file: ConfigFile,
    #[command(flatten)]
    pub options: SharedOptions,
    #[command(flatten)]
    pub server: HiddenServerOptions,
}

impl AdminConfigArgs {
    pub fn settings(&self) -> anyhow::Result<Settings> {
        self.file.settings(&Options {
            server: self.server.0.clone(),
            shared: self.options.clone(),
        })
    }
}

/// [`ServerOptions`] with every argument hidden from the help.
#[derive(Debug, Default, Clone)]
pub struct HiddenServerOptions(pub ServerOptions);

impl HiddenServerOptions {
    fn hide(command: clap::Command) -> clap::Command {
        let ids: Vec<clap::Id> = ServerOptions::augment_args(clap::Command::new("server"))
            .get_arguments()
            .map(|argument| argument.get_id().clone())
            .collect();
        ids.into_iter().fold(command, |command, id| {
            command.mut_arg(id, |argument| argument.hide(true))
        })
    }
}

impl clap::FromArgMatches for HiddenServerOptions {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        ServerOptions::from_arg_matches(matches).map(Self)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches(matches)
    }
}

impl Args for HiddenServerOptions {
    fn augment_args(command: clap::Command) -> clap::Command {
        Self::hide(ServerOptions::augment_args(command))
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::hide(ServerOptions::augment_args_for_update(command))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Everything resolved and validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `host:port`, checked to resolve; bound as given.
    pub listen: String,
    pub issuer: String,
    pub database: String,
    pub database_pool_size: usize,
    pub data_dir: PathBuf,
    pub expires_in: bool,
    pub log_format: LogFormat,
    /// Where `/metrics` is served apart from the API.
    pub metrics_listen: Option<String>,
    /// `/metrics` on the main listener (never with `metrics_listen`); with neither, it is not
    /// served at all.
    pub metrics_on_main_listener: bool,
    pub access_log: bool,
    /// The `/learn` playground; `None`: on with `--dev`, off otherwise.
    pub learn: Option<bool>,
    /// Live refresh-token grants per user per client; `None`: unlimited (0 in the config).
    pub max_grants_per_user_client: Option<u32>,
    pub housekeeping_interval_secs: u64,
    /// How often the usage ledger is written (`operations::usage_ledger`).
    pub usage_flush_interval_secs: u64,
    /// How long the change feed may go unread before token checks answer 503.
    pub change_feed_max_staleness_secs: u64,
    pub audit_retention_secs: u64,
    /// When signing keys rotate, and how long clients may cache the JWKS.
    pub key_schedule: KeySchedule,
    pub trusted_proxies: TrustedProxies,
    /// The browser origins allowed cross-origin, and where.
    pub cors: CorsPolicy,
    pub throttle: ThrottleConfig,
    pub max_concurrent_password_checks: usize,
    pub password_check_wait_secs: u64,
    /// How DPoP proofs are judged (the validator's window, nonce and replay-cache size).
    pub dpop: DpopPolicyConfig,
    /// The controls a new client gets unless it is created with others.
    pub client_defaults: ClientDefaults,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// PostgreSQL connections per process: enough for a node's concurrent transactions on two cores
/// (each is a few round trips), few enough that several nodes fit PostgreSQL's default 100.
pub const DEFAULT_DATABASE_POOL_SIZE: usize = 16;

/// `$XDG_DATA_HOME/tessera`, else `~/.local/share/tessera`, else `./.tessera`.
pub fn default_data_dir() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("tessera");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".local/share/tessera");
    }
    PathBuf::from(".tessera")
}

/// A failure budget like `10/5m`, or `default`.
fn budget(text: Option<&str>, default: Budget, what: &str) -> anyhow::Result<Budget> {
    match text {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|e: String| anyhow::anyhow!("{what}: {e}")),
    }
}

/// A positive duration like `60s`, named `what` in the error.
fn positive_duration(text: &str, what: &str) -> anyhow::Result<u64> {
    parse_duration_secs(text)
        .filter(|s| *s > 0)
        .with_context(|| format!("{what} {text:?} is not a positive duration like 60s, 5m or 30d"))
}

/// The change feed's staleness bound: longer than its polling period, or a node would be
/// declared stale between two healthy reads.
fn change_feed_max_staleness(text: Option<&str>) -> anyhow::Result<u64> {
    let default = tessera_core::authority::DEFAULT_CHANGE_FEED_MAX_STALENESS.as_secs();
    let secs = match text {
        None => default,
        Some(text) => positive_duration(text, "change feed max staleness")?,
    };
    let poll_ms = u128::from(crate::serve::CHANGE_FEED_POLL_MS);
    if u128::from(secs) * 1000 <= poll_ms {
        bail!("change feed max staleness must be longer than the feed's polling period ({poll_ms} ms)");
    }
    Ok(secs)
}

/// The CORS allowlist, every bad pattern named on a line of its own.
fn cors_policy(o: &ServerOptions) -> anyhow::Result<CorsPolicy> {
    let allowlist = CorsAllowlist::parse_all(o.cors_origins.as_deref().unwrap_or_default())
        .map_err(|errors| {
            let lines: Vec<String> = errors
                .iter()
                .map(|error| format!("cors origin {error}"))
                .collect();
            anyhow::anyhow!("{}", lines.join("\n"))
        })?;
    Ok(CorsPolicy {
        allowlist,
        oauth_endpoints: o.cors_oauth_endpoints.unwrap_or(false),
    })
}

/// The failure budgets and the throttle's memory bound, defaults filled in.
fn throttle_config(o: &ServerOptions) -> anyhow::Result<ThrottleConfig> {
    let defaults = ThrottleConfig::default();
    Ok(ThrottleConfig {
        credential_failures_per_address: budget(
            o.credential_failures_per_address.as_deref(),
            defaults.credential_failures_per_address,
            "credential failures per address",
        )?,
        login_failures_per_user_and_address: budget(
            o.login_failures_per_user_and_address.as_deref(),
            defaults.login_failures_per_user_and_address,
            "login failures per user and address",
        )?,
        login_failures_per_user: budget(
            o.login_failures_per_user.as_deref(),
            defaults.login_failures_per_user,
            "login failures per user",
        )?,
        login_failures_per_address: budget(
            o.login_failures_per_address.as_deref(),
            defaults.login_failures_per_address,
            "login failures per address",
        )?,
        max_tracked_keys: match o.throttle_max_tracked_keys {
            Some(0) => bail!("throttle max tracked keys must be positive"),
            Some(n) => n,
            None => DEFAULT_MAX_TRACKED_KEYS,
        },
    })
}

/// The DPoP settings: the `iat` window (its past side at least a second, or no proof would
/// pass; its future side may be 0) and a replay cache that holds something.
fn dpop_policy(o: &ServerOptions) -> anyhow::Result<DpopPolicyConfig> {
    let defaults = DpopPolicyConfig::default();
    let iat_future_secs = match o.dpop_iat_future.as_deref() {
        None => defaults.iat_future_secs,
        Some(text) => parse_duration_secs(text).with_context(|| {
            format!("DPoP iat future {text:?} is not a duration like 10s, or 0s")
        })?,
    };
    Ok(DpopPolicyConfig {
        require_nonce: o.dpop_require_nonce.unwrap_or(defaults.require_nonce),
        iat_past_secs: match o.dpop_iat_past.as_deref() {
            None => defaults.iat_past_secs,
            Some(text) => positive_duration(text, "DPoP iat past")?,
        },
        iat_future_secs,
        replay_capacity: match o.dpop_replay_capacity {
            Some(0) => bail!("DPoP replay capacity must be positive"),
            Some(n) => n,
            None => defaults.replay_capacity,
        },
    })
}

/// The controls a new client gets (the `client_default_*` keys), checked as the admin commands
/// check a client's own.
fn client_defaults(o: &SharedOptions) -> anyhow::Result<ClientDefaults> {
    let idle_cap_secs = match o.client_default_idle_cap.as_deref() {
        None => None,
        Some(text) if text.trim().eq_ignore_ascii_case("off") => None,
        Some(text) => Some(positive_duration(text, "client default idle cap")?),
    };
    let ip_allowlist = IpAllowlist::parse(o.client_default_ip_allowlist.as_deref().unwrap_or(""))
        .map_err(|why| anyhow::anyhow!("client default IP allowlist: {why}"))?;
    Ok(ClientDefaults {
        pkce_required: o.client_default_pkce_required.unwrap_or(false),
        rotation_required: o.client_default_rotation_required.unwrap_or(false),
        idle_cap_secs,
        ip_allowlist,
    })
}

impl Settings {
    pub fn from_options(o: Options) -> anyhow::Result<Self> {
        let client_defaults = client_defaults(&o.shared)?;
        let listen = o
            .server
            .listen
            .clone()
            .unwrap_or_else(|| DEFAULT_LISTEN.into());
        validate_listen(&listen)?;
        if let Some(metrics_listen) = &o.server.metrics_listen {
            validate_listen(metrics_listen).context("metrics listen address")?;
        }
        let metrics_on_main_listener = o.server.metrics_on_main_listener.unwrap_or(false);
        if metrics_on_main_listener && o.server.metrics_listen.is_some() {
            bail!(
                "metrics_on_main_listener and metrics_listen exclude each other: \
                 /metrics is served on one listener, the main one or its own"
            );
        }
        let issuer = match o.shared.issuer {
            Some(issuer) => validate_issuer(&issuer)?,
            None => format!("http://{listen}"),
        };
        let data_dir = o.shared.data_dir.unwrap_or_else(default_data_dir);
        let database = match o.shared.database {
            Some(database) => {
                require_database_directory(&database)?;
                database
            }
            None => format!("sqlite://{}", data_dir.join("tessera.db").display()),
        };
        let log_format = match o.shared.log_format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => bail!("log format must be text or json, not {other:?}"),
        };
        let max_grants = o
            .shared
            .max_grants_per_user_client
            .unwrap_or(tessera_core::authority::DEFAULT_MAX_LIVE_GRANTS);
        let throttle = throttle_config(&o.server)?;
        let cors = cors_policy(&o.server)?;
        let dpop = dpop_policy(&o.server)?;
        let trusted_proxies =
            TrustedProxies::parse_list(&o.server.trusted_proxies.unwrap_or_default())
                .map_err(|e| anyhow::anyhow!("trusted proxies: {e}"))?
                .with_header(match o.server.trusted_proxy_header.as_deref() {
                    None => ProxyHeader::default(),
                    Some(text) => text
                        .parse()
                        .map_err(|e| anyhow::anyhow!("trusted proxy header: {e}"))?,
                });
        Ok(Self {
            dpop,
            client_defaults,
            trusted_proxies,
            cors,
            throttle,
            max_concurrent_password_checks: match o.server.max_concurrent_password_checks {
                Some(0) => bail!("max concurrent password checks must be positive"),
                Some(n) => n,
                None => default_password_checks(),
            },
            password_check_wait_secs: positive_duration(
                o.server.password_check_wait.as_deref().unwrap_or("5s"),
                "password check wait",
            )?,
            change_feed_max_staleness_secs: change_feed_max_staleness(
                o.server.change_feed_max_staleness.as_deref(),
            )?,
            housekeeping_interval_secs: positive_duration(
                o.server.housekeeping_interval.as_deref().unwrap_or("60s"),
                "housekeeping interval",
            )?,
            usage_flush_interval_secs: positive_duration(
                o.server.usage_flush_interval.as_deref().unwrap_or("5s"),
                "usage flush interval",
            )?,
            audit_retention_secs: positive_duration(
                o.shared.audit_retention.as_deref().unwrap_or("30d"),
                "audit retention",
            )?,
            key_schedule: KeySchedule {
                rotation_secs: positive_duration(
                    o.shared.signing_key_rotation.as_deref().unwrap_or("90d"),
                    "signing key rotation",
                )?,
                jwks_cache_lifetime_secs: positive_duration(
                    o.shared.jwks_cache_lifetime.as_deref().unwrap_or("24h"),
                    "JWKS cache lifetime",
                )?,
            },
            max_grants_per_user_client: (max_grants > 0).then_some(max_grants),
            listen,
            issuer,
            database,
            database_pool_size: match o.shared.database_pool_size {
                Some(0) => bail!("the database pool size must be positive"),
                Some(n) => n,
                None => DEFAULT_DATABASE_POOL_SIZE,
            },
            data_dir,
            expires_in: o.shared.expires_in.unwrap_or(true),
            log_format,
            metrics_listen: o.server.metrics_listen,
            metrics_on_main_listener,
            access_log: o.server.access_log.unwrap_or(true),
            learn: o.server.learn,
        })
    }
}

/// `host:port` with a port, whose host is an IP address or a name that resolves.
fn validate_listen(text: &str) -> anyhow::Result<()> {
    let port_given = text
        .rsplit_once(':')
        .is_some_and(|(_, port)| port.parse::<u16>().is_ok());
    if !port_given {
        bail!("listen address {text:?} is not host:port (like 127.0.0.1:8080 or localhost:8080)");
    }
    // `:8080` binds every interface in some servers and this machine only in others: which one
    // is meant is not guessed, least of all the one that exposes the server.
    if let Some(port) = text.strip_prefix(':') {
        bail!(
            "listen address {text:?} has no host: write 127.0.0.1:{port} for this machine only, \
             or 0.0.0.0:{port} for every interface"
        );
    }
    let mut addresses = text
        .to_socket_addrs()
        .with_context(|| format!("listen address {text:?} does not resolve"))?;
    if addresses.next().is_none() {
        bail!("listen address {text:?} does not resolve to any address");
    }
    Ok(())
}

/// A SQLite file given by name goes in a directory that exists: opening would create the
/// missing ones, and a typo would make directories wherever it points (at the filesystem's root
/// too). The default database's directory, the data directory, is created, as before.
fn require_database_directory(url: &str) -> anyhow::Result<()> {
    let Backend::Sqlite(location) = database_backend(url)? else {
        return Ok(());
    };
    let file = tessera_store_sqlite::database_file(location).map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(directory) = file
        .as_deref()
        .and_then(std::path::Path::parent)
        .filter(|directory| !directory.as_os_str().is_empty())
    else {
        return Ok(());
    };
    if !directory.exists() {
        bail!(
            "database {url:?}: its directory {} does not exist; create it or correct the path \
             (only the default database's directory, the data directory, is created)",
            directory.display()
        );
    }
    Ok(())
}

/// The issuer is an absolute http(s) URL without query, fragment or trailing slash (RFC 8414 §2).
fn validate_issuer(text: &str) -> anyhow::Result<String> {
    let trimmed = text.trim_end_matches('/');
    let url = url::Url::parse(trimmed)
        .with_context(|| format!("issuer {text:?} is not an absolute URL"))?;
    if !matches!(url.scheme(), "http" | "https")
        || url.query().is_some()
        || url.fragment().is_some()
    {
        bail!("issuer must be an http(s) URL without query or fragment: {text:?}");
    }
    Ok(trimmed.to_owned())
}

/// The database backends this build has, by URL scheme.
pub const DATABASE_SCHEMES: &str =
    "sqlite://PATH (or a bare file path), postgres://USER@HOST:PORT/DATABASE";

/// Which backend a database URL names. Anything that looks like a URL of another scheme is
/// refused, naming the supported ones, rather than taken for a file name; a bare path is a
/// SQLite file (a one-letter "scheme" is a Windows drive).
pub fn database_backend(url: &str) -> anyhow::Result<Backend<'_>> {
    let scheme = url.split_once(':').map(|(scheme, _)| scheme).filter(|s| {
        s.len() > 1
            && s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
    });
    match scheme {
        None | Some("sqlite") => Ok(Backend::Sqlite(url)),
        Some("postgres" | "postgresql") => Ok(Backend::Postgres(url)),
        Some(other) => bail!(
            "unsupported database URL scheme {other:?} in {url:?}: supported are {DATABASE_SCHEMES}"
        ),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend<'a> {
    Sqlite(&'a str),
    Postgres(&'a str),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(options: Options) -> ConfigArgs {
        ConfigArgs {
            file: ConfigFile { config: None },
            options,
        }
    }

    fn with_file(text: &str, options: Options) -> anyhow::Result<Settings> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, text).unwrap();
        ConfigArgs {
            file: ConfigFile { config: Some(path) },
            options,
        }
        .settings()
    }

    #[test]
    fn approval_limit_zero_means_unlimited_and_intervals_must_be_positive() {
        let s = args(Options {
            shared: SharedOptions {
                max_grants_per_user_client: Some(0),
                ..Default::default()
            },
            ..Default::default()
        })
        .settings()
        .unwrap();
        assert_eq!(s.max_grants_per_user_client, None);
        let d = args(Options::default()).settings().unwrap();
        assert_eq!(d.max_grants_per_user_client, Some(5));
        assert_eq!(d.housekeeping_interval_secs, 60);
        assert!(args(Options {
            server: ServerOptions {
                housekeeping_interval: Some("0s".into()),
                ..Default::default()
            },
            ..Default::default()
        })
        .settings()
        .is_err());
    }

    #[test]
    fn the_jwks_cache_lifetime_is_at_least_a_second_and_admin_dates_keys_as_serve_does() {
        let shared = |text: &str| SharedOptions {
            jwks_cache_lifetime: Some(text.into()),
            ..Default::default()
        };
        let serve = |text: &str| {
            args(Options {
                shared: shared(text),
                ..Default::default()
            })
            .settings()
        };
        for refused in ["0s", "0", "soon", "500ms"] {
            let error = serve(refused).unwrap_err().to_string();
            assert!(error.contains("JWKS cache lifetime"), "{error}");
        }
        let short = serve("1s").unwrap().key_schedule;
        assert_eq!(short.jwks_cache_lifetime_secs, 1);
        assert_eq!(
            short.node_cache_secs(),
            1,
            "never longer than the cache lifetime"
        );
        let default = args(Options::default()).settings().unwrap().key_schedule;
        assert_eq!(default.node_cache_secs(), 60);
        // `tessera admin keys rotate` reads the setting from the same place as `serve`.
        let admin = AdminConfigArgs {
            file: ConfigFile { config: None },
            options: shared("30s"),
            server: HiddenServerOptions::default(),
        };
        assert_eq!(
            admin.settings().unwrap().key_schedule,
            serve("30s").unwrap().key_schedule
        );
    }

    #[test]
    fn dpop_settings_default_to_rfc_9449s_window_and_are_read_from_the_file() {
        let default = args(Options::default()).settings().unwrap().dpop;
        assert_eq!(default, DpopPolicyConfig::default());
        assert_eq!(
            (
                default.require_nonce,
                default.iat_past_secs,
                default.iat_future_secs,
                default.replay_capacity
            ),
            (false, 60, 10, 1_000_000)
        );
        let file = "dpop_require_nonce = true\ndpop_iat_past = \"2m\"\n\
                    dpop_iat_future = \"0s\"\ndpop_replay_capacity = 5000\n";
        let read = with_file(file, Options::default()).unwrap().dpop;
        assert_eq!(
            read,
            DpopPolicyConfig {
                require_nonce: true,
                iat_past_secs: 120,
                iat_future_secs: 0,
                replay_capacity: 5000,
            }
        );
    }

    #[test]
    fn a_dpop_window_without_a_past_or_a_cache_without_room_is_refused_at_start() {
        for (file, named) in [
            ("dpop_iat_past = \"0s\"\n", "DPoP iat past"),
            ("dpop_iat_future = \"soon\"\n", "DPoP iat future"),
            ("dpop_replay_capacity = 0\n", "DPoP replay capacity"),
        ] {
            let error = with_file(file, Options::default()).unwrap_err();
            let error = format!("{error:#}");
            assert!(error.contains(named), "{file}: {error}");
        }
    }

    #[test]
    fn a_change_feed_bound_that_is_zero_or_not_a_duration_is_refused_at_start() {
        let with = |text: &str| {
            args(Options {
                server: ServerOptions {
                    change_feed_max_staleness: Some(text.into()),
                    ..Default::default()
                },
                ..Default::default()
            })
            .settings()
        };
        assert_eq!(
            args(Options::default())
                .settings()
                .unwrap()
                .change_feed_max_staleness_secs,
            10
        );
        assert_eq!(with("3s").unwrap().change_feed_max_staleness_secs, 3);
        for refused in ["0s", "0", "soon", "-5s"] {
            let error = with(refused).unwrap_err().to_string();
            assert!(error.contains("change feed max staleness"), "{error}");
        }
    }

    #[test]
    fn defaults_derive_issuer_and_database() {
        let s = args(Options {
            shared: SharedOptions {
                data_dir: Some("/d".into()),
                ..Default::default()
            },
            ..Default::default()
        })
        .settings()
        .unwrap();
        assert_eq!(s.issuer, "http://127.0.0.1:8080");
        assert_eq!(s.database, "sqlite:///d/tessera.db");
        assert!(s.expires_in);
    }

    #[test]
    fn flags_beat_the_file_and_the_file_fills_the_rest() {
        let s = with_file(
            "listen = \"127.0.0.1:1\"\nexpires_in = false\nmax_grants_per_user_client = 3",
            Options {
                server: ServerOptions {
                    listen: Some("127.0.0.1:2".into()),
                    ..Default::default()
                },
                shared: SharedOptions {
                    issuer: Some("https://login.example.com/".into()),
                    ..Default::default()
                },
            },
        )
        .unwrap();
        assert_eq!(s.listen, "127.0.0.1:2");
        assert_eq!(s.issuer, "https://login.example.com");
        assert!(!s.expires_in);
        assert_eq!(s.max_grants_per_user_client, Some(3));
    }

    #[test]
    fn a_listen_address_without_a_host_is_refused_with_both_hosts_to_choose_from() {
        let error = args(Options {
            server: ServerOptions {
                listen: Some(":8080".into()),
                ..Default::default()
            },
            ..Default::default()
        })
        .settings()
        .unwrap_err();
        assert_eq!(
            format!("{error:#}"),
            "listen address \":8080\" has no host: write 127.0.0.1:8080 for this machine only, \
             or 0.0.0.0:8080 for every interface"
        );
    }

    #[test]
    fn host_names_are_accepted_for_listen() {
        let s = args(Options {
            server: ServerOptions {
                listen: Some("localhost:18083".into()),
                ..Default::default()
            },
            ..Default::default()
        })
        .settings()
        .unwrap();
        assert_eq!(s.listen, "localhost:18083");
        assert_eq!(s.issuer, "http://localhost:18083");
        for bad in ["nope", "localhost", "127.0.0.1:http", "127.0.0.1:70000"] {
            assert!(
                args(Options {
                    server: ServerOptions {
                        listen: Some(bad.into()),
                        ..Default::default()
                    },
                    ..Default::default()
                })
                .settings()
                .is_err(),
                "{bad}"
            );
        }
    }

    /// Writes `text` to a config file and reads it: the error, and the file's path.
    fn error_of_file(text: &str) -> (String, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.toml");
        std::fs::write(&path, text).unwrap();
        let error = ConfigArgs {
            file: ConfigFile {
                config: Some(path.clone()),
            },
            options: Options::default(),
        }
        .settings()
        .unwrap_err();
        (format!("{error:#}"), path.display().to_string())
    }

    #[test]
    fn a_misspelt_key_is_one_line_with_the_file_the_line_and_the_key_it_is_close_to() {
        let (error, path) = error_of_file(
            "# a comment\nlisten = \"127.0.0.1:8080\"\n\nhousekeeping_intervall = \"60s\"\n",
        );
        assert_eq!(
            error,
            format!("{path}:4: unknown key `housekeeping_intervall`, did you mean `housekeeping_interval`?")
        );
        let (error, path) = error_of_file("max-grants-per-user-client = 3");
        assert_eq!(
            error,
            format!("{path}:1: unknown key `max-grants-per-user-client`, did you mean `max_grants_per_user_client`?")
        );
        let (error, path) = error_of_file("expires_in = true\ncolour = \"blue\"");
        assert_eq!(
            error,
            format!("{path}:2: unknown key `colour` (docs/configuration.md lists every key)")
        );
        let (error, path) =
            error_of_file("expires_in = true\nmax_grants_per_user_client = \"five\"");
        assert_eq!(
            error,
            format!("{path}:2: `max_grants_per_user_client`: invalid type: string \"five\", expected u32")
        );
    }

    #[test]
    fn every_known_key_is_a_key_the_file_is_read_with() {
        // Each field of `Options` is a flag (its id) and a key (serde's name) at once, neither
        // renamed; this holds them together should one ever be.
        let known = known_keys();
        assert!(known.contains(&"listen".to_owned()), "{known:?}");
        for key in known {
            let error = toml::from_str::<Options>(&format!("{key} = [[1]]"))
                .unwrap_err()
                .to_string();
            assert!(!error.contains("unknown field"), "{key}: {error}");
        }
        let error = toml::from_str::<Options>("not_a_key = 1")
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown field"), "{error}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected() {
        let err = with_file("lisen = \"x\"", Options::default()).unwrap_err();
        assert!(format!("{err:#}").contains("unknown key"), "{err:#}");
        assert!(args(Options {
            shared: SharedOptions {
                issuer: Some("ftp://x".into()),
                ..Default::default()
            },
            ..Default::default()
        })
        .settings()
        .is_err());
        assert!(args(Options {
            shared: SharedOptions {
                log_format: Some("xml".into()),
                ..Default::default()
            },
            ..Default::default()
        })
        .settings()
        .is_err());
    }

    #[test]
    fn an_explicit_sqlite_path_in_a_missing_directory_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let with_database = |database: String| {
            args(Options {
                shared: SharedOptions {
                    database: Some(database),
                    data_dir: Some(dir.path().join("data")),
                    ..Default::default()
                },
                ..Default::default()
            })
            .settings()
        };
        let missing = dir.path().join("typo");
        for database in [
            format!("sqlite://{}/tessera.db", missing.display()),
            format!("{}/tessera.db", missing.display()),
        ] {
            let error = format!("{:#}", with_database(database).unwrap_err());
            assert!(
                error.contains(&format!(
                    "its directory {} does not exist",
                    missing.display()
                )),
                "{error}"
            );
        }
        assert!(!missing.exists());
        for fine in [
            format!("sqlite://{}/tessera.db", dir.path().display()),
            "sqlite::memory:".to_owned(),
            "sqlite://relative.db".to_owned(),
            "postgres://tessera@db.internal:5432/tessera".to_owned(),
        ] {
            with_database(fine).unwrap();
        }
        // The default database's directory is not required to exist: it is created.
        let default = args(Options {
            shared: SharedOptions {
                data_dir: Some(dir.path().join("data")),
                ..Default::default()
            },
            ..Default::default()
        })
        .settings()
        .unwrap();
        assert!(default.database.ends_with("data/tessera.db"));
    }

    #[test]
    fn unknown_database_schemes_are_refused_with_the_supported_ones() {
        for ok in [
            "sqlite:///tmp/x.db",
            "sqlite://rel.db",
            "sqlite::memory:",
            "tessera.db",
            "/var/lib/tessera/t.db",
        ] {
            assert!(database_backend(ok).is_ok(), "{ok}");
        }
        assert!(matches!(
            database_backend("postgres://u@h:5432/db"),
            Ok(Backend::Postgres(_))
        ));
        for bad in ["mysql://u@h/db", "redis:x"] {
            let err = database_backend(bad).unwrap_err().to_string();
            assert!(err.contains("sqlite://PATH"), "{err}");
        }
    }

    #[test]
    fn throttle_limits_and_trusted_proxies_are_read_and_checked() {
        let s = with_file(
            "trusted_proxies = [\"10.0.0.0/8\", \"192.168.1.7\"]\nlogin_failures_per_user = \"50/30m\"",
            Options {
                server: ServerOptions {
                    credential_failures_per_address: Some("20/1m".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(s.throttle.login_failures_per_user, Budget::new(50, 1800));
        assert_eq!(
            s.throttle.credential_failures_per_address,
            Budget::new(20, 60)
        );
        assert_eq!(
            s.throttle.login_failures_per_user_and_address,
            ThrottleConfig::default().login_failures_per_user_and_address
        );
        assert!(!s.trusted_proxies.is_empty());
        for bad in [
            Options {
                server: ServerOptions {
                    trusted_proxies: Some(vec!["proxy.local".into()]),
                    ..Default::default()
                },
                ..Default::default()
            },
            Options {
                server: ServerOptions {
                    login_failures_per_address: Some("ten".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
            Options {
                server: ServerOptions {
                    max_concurrent_password_checks: Some(0),
                    ..Default::default()
                },
                ..Default::default()
            },
        ] {
            assert!(args(bad).settings().is_err());
        }
    }

    #[test]
    fn a_bad_cors_origin_stops_the_start_with_one_line_for_each() {
        let from_file = with_file(
            "cors_origins = [\"https://app.example.com\"]\ncors_oauth_endpoints = true",
            Options::default(),
        )
        .unwrap();
        assert!(!from_file.cors.allowlist.is_empty());
        assert!(from_file.cors.oauth_endpoints);
        let defaults = args(Options::default()).settings().unwrap();
        assert!(defaults.cors.allowlist.is_empty());
        assert!(!defaults.cors.oauth_endpoints);
        let error = args(Options {
            server: ServerOptions {
                cors_origins: Some(vec![
                    "http://app.example.com".into(),
                    "https://good.example.com".into(),
                    "https://*.com".into(),
                ]),
                ..Default::default()
            },
            ..Default::default()
        })
        .settings()
        .unwrap_err()
        .to_string();
        let lines: Vec<&str> = error.lines().collect();
        assert_eq!(lines.len(), 2, "{error}");
        assert!(lines[0].contains("http://app.example.com") && lines[0].contains("https://"));
        assert!(lines[1].contains("https://*.com") && lines[1].contains("second-level"));
    }

    #[test]
    fn cors_origins_are_read_from_repeated_flags_and_a_comma_separated_variable() {
        use clap::Parser;
        let cli = crate::Cli::try_parse_from([
            "tessera",
            "serve",
            "--cors-origin",
            "https://a.example.com",
            "--cors-origin",
            "https://b.example.com",
            "--cors-oauth-endpoints",
        ])
        .unwrap();
        let crate::Command::Serve(serve) = cli.command else {
            panic!("not serve");
        };
        assert_eq!(
            serve.config.options.server.cors_origins,
            Some(vec![
                "https://a.example.com".to_owned(),
                "https://b.example.com".to_owned()
            ])
        );
        assert_eq!(serve.config.options.server.cors_oauth_endpoints, Some(true));
    }

    #[test]
    fn the_trusted_proxy_header_defaults_to_x_forwarded_for_and_is_checked() {
        let d = args(Options::default()).settings().unwrap();
        assert_eq!(d.trusted_proxies.header(), ProxyHeader::XForwardedFor);
        let s = with_file(
            "trusted_proxies = [\"10.0.0.0/8\"]\ntrusted_proxy_header = \"forwarded\"",
            Options::default(),
        )
        .unwrap();
        assert_eq!(s.trusted_proxies.header(), ProxyHeader::Forwarded);
        let err = args(Options {
            server: ServerOptions {
                trusted_proxy_header: Some("X-Real-IP".into()),
                ..Default::default()
            },
            ..Default::default()
        })
        .settings()
        .unwrap_err()
        .to_string();
        assert!(err.contains("trusted proxy header"), "{err}");
    }

    #[test]
    fn the_playground_follows_dev_mode_unless_the_learn_key_says_otherwise() {
        let d = args(Options::default()).settings().unwrap();
        assert_eq!(d.learn, None, "unset: serve decides by --dev");
        assert_eq!(
            with_file("learn = true", Options::default()).unwrap().learn,
            Some(true)
        );
        let off = with_file(
            "learn = true",
            Options {
                server: ServerOptions {
                    learn: Some(false),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(off.learn, Some(false), "a flag overrides the file");
        assert!(with_file("learn = \"yes\"", Options::default()).is_err());
    }

    #[test]
    fn metrics_listen_is_checked_and_the_access_log_is_on_unless_turned_off() {
        let d = args(Options::default()).settings().unwrap();
        assert_eq!(d.metrics_listen, None);
        assert!(d.access_log);
        let s = with_file(
            "metrics_listen = \"127.0.0.1:9090\"\naccess_log = false",
            Options::default(),
        )
        .unwrap();
        assert_eq!(s.metrics_listen.as_deref(), Some("127.0.0.1:9090"));
        assert!(!s.access_log);
        assert!(args(Options {
            server: ServerOptions {
                metrics_listen: Some("9090".into()),
                ..Default::default()
            },
            ..Default::default()
        })
        .settings()
        .is_err());
    }

    #[test]
    fn metrics_are_not_on_the_main_listener_unless_switched_on_and_never_on_both() {
        assert!(
            !args(Options::default())
                .settings()
                .unwrap()
                .metrics_on_main_listener
        );
        let on = with_file("metrics_on_main_listener = true", Options::default()).unwrap();
        assert!(on.metrics_on_main_listener);
        assert!(with_file(
            "metrics_on_main_listener = true\nmetrics_listen = \"127.0.0.1:9090\"",
            Options::default(),
        )
        .is_err());
    }

    #[test]
    fn admin_reads_a_whole_server_file_with_its_own_flags_on_top() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tessera.example.toml");
        let s = AdminConfigArgs {
            file: ConfigFile {
                config: Some(example.into()),
            },
            options: SharedOptions {
                database: Some("sqlite:///admin.db".into()),
                ..Default::default()
            },
            server: HiddenServerOptions::default(),
        }
        .settings()
        .unwrap();
        assert_eq!(s.database, "sqlite:///admin.db");
    }

    #[test]
    fn admin_still_reads_the_servers_settings_it_does_not_list() {
        let s = AdminConfigArgs {
            file: ConfigFile { config: None },
            options: SharedOptions::default(),
            server: HiddenServerOptions(ServerOptions {
                listen: Some("127.0.0.1:9999".into()),
                ..Default::default()
            }),
        }
        .settings()
        .unwrap();
        assert_eq!(s.issuer, "http://127.0.0.1:9999");
    }

    #[test]
    fn the_example_file_parses() {
        let text = include_str!("../../../tessera.example.toml");
        let options: Options = toml::from_str(text).unwrap();
        assert!(options.server.listen.is_some());
        Settings::from_options(options).unwrap();
    }
}
