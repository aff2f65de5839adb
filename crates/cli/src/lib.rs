//! The `tessera` command: `serve` runs the authorization and resource server, `admin` manages
//! clients, users and tokens directly in the database (safe while a server runs).

mod admin;
mod client;
mod config;
#[cfg(test)]
#[allow(
    clippy::string_slice,
    reason = "a test reading our own ASCII documentation"
)]
mod config_reference;
mod demo;
mod lifecycle;
mod output;
mod probe;
mod serve;
mod terminal;

use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tessera_core::store::Store;
use tessera_core::time::{Clock, DatabaseClock, SystemClock, SystemRandom};
use tessera_core::tokens::server_key::ServerKey;
use tessera_core::{Authority, AuthorityConfig};

pub use config::{
    AdminConfigArgs, ConfigArgs, ConfigFile, Options, ServerOptions, Settings, SharedOptions,
};

#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    about = "OAuth 2.0 refresh tokens in Salesforce's image: the server, its administration, and a client that keeps tokens fresh"
)]
pub struct Cli {
    // No option here: an option of the top level shows in every command's help, the server's
    // and the client's alike; each command declares its own (see client::ProfileArgs).
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the authorization server and the REST API.
    // Serve and Admin are boxed: their options make each several times the size of the
    // other commands.
    Serve(Box<serve::ServeArgs>),
    /// Manage clients, users and tokens in the database.
    Admin(Box<admin::AdminArgs>),
    /// Log in with the Web Server flow (PKCE, loopback redirect) and keep the tokens, encrypted.
    Login(client::LoginArgs),
    /// Print the stored access token, refreshed first when it is known to be expired.
    ///
    /// A token the server revoked early still prints as it is: --verify asks the server first.
    Token(client::TokenArgs),
    /// Call the API with automatic refresh, relative to the instance URL.
    Curl(client::CurlArgs),
    /// Who is logged in, where, until when, and how the tokens are protected — never a token.
    Status(client::ProfileArgs),
    /// Revoke the tokens at the server (best effort) and wipe them here.
    Logout(client::ProfileArgs),
    /// Keep tokens obtained elsewhere in a profile: a JSON file with the server's URL, the
    /// client and a token response (such as the file `tessera probe` gives a command).
    Import(client::ImportArgs),
    /// A narrated run of the whole flow against an in-process server.
    Demo(demo::DemoArgs),
    /// Check that a client survives rotation: run a command against a temporary server that
    /// misbehaves on purpose, watch its token requests, and judge them (docs/probe.md).
    Probe(probe::ProbeArgs),
    /// The benchmark: throughput and latency of refresh and API calls, as ratios to the HTTP
    /// floor of the same run (build with --release).
    Bench(tessera_bench::BenchArgs),
}

/// Runs one command to completion.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Serve(args) => {
            let settings = args.config.settings()?;
            init_tracing(settings.log_format, false);
            runtime.block_on(serve::serve(settings, *args))
        }
        Command::Admin(args) => {
            let settings = args.config.settings()?;
            init_tracing(settings.log_format, true);
            runtime.block_on(admin::run(settings, *args))
        }
        Command::Bench(args) => {
            init_tracing(config::LogFormat::Text, true);
            // One thread: the load generator is pinned to one core.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, tessera_bench::run(args))
        }
        command => {
            init_tracing(config::LogFormat::Text, true);
            let paths = client::ClientPaths::from_env();
            runtime.block_on(async move {
                match command {
                    Command::Login(args) => client::login(&paths, args).await,
                    Command::Token(args) => client::token(&paths, args).await,
                    Command::Curl(args) => client::curl(&paths, args).await,
                    Command::Status(args) => client::status(&paths, &args.profile).await,
                    Command::Logout(args) => client::logout(&paths, &args.profile).await,
                    Command::Import(args) => client::import(&paths, args).await,
                    Command::Demo(args) => demo::run(args).await,
                    Command::Probe(args) => probe::run(args).await,
                    Command::Serve(_) | Command::Admin(_) | Command::Bench(_) => Ok(()),
                }
            })
        }
    }
}

fn init_tracing(format: config::LogFormat, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if quiet { "warn" } else { "info" };
    let filter = EnvFilter::try_from_env("TESSERA_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none());
    let _ = match format {
        config::LogFormat::Json => builder.json().try_init(),
        config::LogFormat::Text => builder.try_init(),
    };
}

/// Opens the store named by a database URL.
pub async fn open_store(url: &str, pool_size: usize) -> anyhow::Result<Arc<dyn Store>> {
    match config::database_backend(url)? {
        config::Backend::Sqlite(url) => {
            let store = tessera_store_sqlite::SqliteStore::open(url)
                .with_context(|| format!("opening database {url}"))?;
            Ok(Arc::new(store))
        }
        config::Backend::Postgres(url) => {
            let store = tessera_store_postgres::PostgresStore::connect(url, pool_size)
                .await
                // The URL may hold a password: name the database by its host only.
                .with_context(|| format!("connecting to PostgreSQL at {}", redacted(url)))?;
            Ok(Arc::new(store))
        }
    }
}

/// A database URL for logs and errors: its password, in the user information or in a
/// `password=` parameter, replaced by `***`. A SQLite path is shown as it is.
pub(crate) fn redacted(url: &str) -> String {
    if matches!(
        config::database_backend(url),
        Ok(config::Backend::Sqlite(_))
    ) {
        return url.to_owned();
    }
    const HIDDEN: &str = "***";
    let Ok(mut parsed) = url::Url::parse(url) else {
        return "(an unparsable URL)".into();
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some(HIDDEN));
    }
    if parsed.query_pairs().any(|(key, _)| key == "password") {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(key, value)| {
                let value = if key == "password" {
                    HIDDEN.to_owned()
                } else {
                    value.into_owned()
                };
                (key.into_owned(), value)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

/// The server key: `TESSERA_SERVER_KEY` (hex), else `<data_dir>/server.key`, created with mode
/// 0600 on first use.
pub fn load_server_key(settings: &Settings) -> anyhow::Result<ServerKey> {
    if let Ok(hex) = std::env::var("TESSERA_SERVER_KEY") {
        return ServerKey::from_hex(&hex).context("TESSERA_SERVER_KEY must be 64 hex characters");
    }
    let path = settings.data_dir.join("server.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            warn_if_open_to_others(&path);
            ServerKey::from_hex(&text)
                .with_context(|| format!("{} does not hold a 64-hex-character key", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(&settings.data_dir)
                .with_context(|| format!("creating {}", settings.data_dir.display()))?;
            let key = ServerKey::generate(&SystemRandom);
            write_private_file(&path, key.to_hex().as_bytes())?;
            // Two processes may race to create it; whichever file won is the key.
            let text = std::fs::read_to_string(&path)?;
            ServerKey::from_hex(&text).context("server key file is corrupt")
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Warns when the server key file can be read (or written) by its group or by others: whoever
/// reads it can forge browser sessions and CSRF tokens. It is created 0600; a copy or a restore
/// may have widened it.
fn warn_if_open_to_others(path: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(metadata) = std::fs::metadata(path) {
            let mode = metadata.permissions().mode();
            if open_to_others(mode) {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{:o}", mode & 0o777),
                    "the server key is readable by other users than its owner: chmod 600 it"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Whether a file's mode gives its group or others any access.
#[cfg(unix)]
fn open_to_others(mode: u32) -> bool {
    mode & 0o077 != 0
}

/// Writes `bytes` to `path` whole, readable by this user only: into a new file beside it, then
/// renamed over it, so that a reader sees the old content or the new, never a part.
fn replace_private_file(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    let partial = path.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    write_private_file(&partial, bytes)?;
    std::fs::rename(&partial, path).with_context(|| format!("replacing {}", path.display()))
}

/// Creates `path` with `bytes`, readable by this user only; a file already there is kept.
fn write_private_file(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    // Written whole under a name of its own, then linked into place: a process that finds the
    // file finds it complete (created in place, a second process starting at the same moment
    // could read it empty, and take the key for corrupt). The link fails if the file exists:
    // the first writer's content stays.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let write = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let temporary = path.with_extension(format!("tmp-{}-{write}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options
        .open(&temporary)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .with_context(|| format!("creating {}", temporary.display()));
    let linked = written.and_then(|()| match std::fs::hard_link(&temporary, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    });
    let _ = std::fs::remove_file(&temporary);
    linked
}

/// The domain service over the configured store, clock and key.
/// How often a server following the database's clock reads it again.
const DATABASE_CLOCK_SYNC: std::time::Duration = std::time::Duration::from_secs(10);

pub async fn authority(settings: &Settings) -> anyhow::Result<Authority> {
    let store = open_store(&settings.database, settings.database_pool_size).await?;
    let clock = clock_of(&store).await?;
    let config = AuthorityConfig {
        issuer: settings.issuer.clone(),
        emit_expires_in: settings.expires_in,
        server_key: load_server_key(settings)?,
        max_live_grants: settings.max_grants_per_user_client,
        audit_retention_secs: settings.audit_retention_secs,
        throttle: settings.throttle,
        max_concurrent_password_checks: settings.max_concurrent_password_checks,
        password_check_wait: std::time::Duration::from_secs(settings.password_check_wait_secs),
        change_feed_max_staleness: std::time::Duration::from_secs(
            settings.change_feed_max_staleness_secs,
        ),
        key_schedule: settings.key_schedule,
        dpop: settings.dpop,
        usage_ledger_capacity:
            tessera_core::operations::usage_ledger::DEFAULT_USAGE_LEDGER_CAPACITY,
        client_defaults: settings.client_defaults.clone(),
    };
    Ok(Authority::new(store, clock, Arc::new(SystemRandom), config))
}

/// The clock decisions are made by: the database's, where it has one that several servers
/// share, followed here and read again every [`DATABASE_CLOCK_SYNC`]; else the process's.
async fn clock_of(store: &Arc<dyn Store>) -> anyhow::Result<Arc<dyn Clock>> {
    let asked = std::time::Instant::now();
    let Some(now) = store
        .database_time()
        .await
        .context("reading the database's clock")?
    else {
        return Ok(Arc::new(SystemClock));
    };
    let clock = Arc::new(DatabaseClock::new(now, asked));
    let (following, store) = (Arc::downgrade(&clock), Arc::clone(store));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(DATABASE_CLOCK_SYNC).await;
            let Some(clock) = following.upgrade() else {
                return;
            };
            let asked = std::time::Instant::now();
            match store.database_time().await {
                Ok(Some(now)) => clock.sync(now, asked),
                Ok(None) => return,
                // Until it answers again, the monotonic clock carries on from the last reading.
                Err(error) => tracing::warn!(error = %error, "reading the database's clock failed"),
            }
        }
    });
    Ok(clock)
}

#[cfg(test)]
mod tests {
    /// Processes starting together (several nodes, a server and an admin command) race to
    /// create the server key: every one must read a whole key, and the same one.
    #[test]
    fn writers_racing_to_create_a_private_file_all_read_one_whole_content() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("server.key");
            let read: Vec<String> = std::thread::scope(|scope| {
                let racers: Vec<_> = (0..8)
                    .map(|n| {
                        let path = &path;
                        scope.spawn(move || {
                            let content = format!("{n:0>64}");
                            super::write_private_file(path, content.as_bytes()).unwrap();
                            std::fs::read_to_string(path).unwrap()
                        })
                    })
                    .collect();
                racers.into_iter().map(|r| r.join().unwrap()).collect()
            });
            assert!(
                read.iter().all(|r| r.len() == 64 && *r == read[0]),
                "{read:?}"
            );
            // Nothing is left behind but the file.
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        }
    }

    #[test]
    fn a_database_url_is_shown_with_its_user_and_never_its_password() {
        for (url, shown) in [
            (
                "postgres://tessera:s3cret@db.internal:5432/tessera",
                "postgres://tessera:***@db.internal:5432/tessera",
            ),
            (
                "postgres://tessera@db.internal:5432/tessera",
                "postgres://tessera@db.internal:5432/tessera",
            ),
            (
                "postgresql://db.internal/tessera?user=tessera&password=s3cret&sslmode=disable",
                "postgresql://db.internal/tessera?user=tessera&password=***&sslmode=disable",
            ),
            (
                "sqlite:///var/lib/tessera/tessera.db",
                "sqlite:///var/lib/tessera/tessera.db",
            ),
        ] {
            assert_eq!(super::redacted(url), shown);
        }
        assert_eq!(
            super::redacted("postgres://a:b@[::1"),
            "(an unparsable URL)"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_server_key_open_to_group_or_others_is_warned_about() {
        assert!(!super::open_to_others(0o100600));
        assert!(!super::open_to_others(0o400));
        assert!(super::open_to_others(0o100644));
        assert!(super::open_to_others(0o640));
        assert!(super::open_to_others(0o604));
        assert!(super::open_to_others(0o620));
    }

    use clap::CommandFactory;

    /// Every argument of every command, with the path of commands that leads to it.
    fn arguments(command: &clap::Command, path: &str, out: &mut Vec<(String, clap::Arg)>) {
        let path = format!("{path} {}", command.get_name());
        for arg in command.get_arguments() {
            out.push((path.clone(), arg.clone()));
        }
        for sub in command.get_subcommands() {
            arguments(sub, &path, out);
        }
    }

    #[test]
    fn every_option_and_argument_says_what_it_is() {
        let mut all = Vec::new();
        arguments(&super::Cli::command(), "", &mut all);
        let silent: Vec<String> = all
            .iter()
            .filter(|(_, arg)| !matches!(arg.get_id().as_str(), "help" | "version"))
            .filter(|(_, arg)| arg.get_help().is_none() && arg.get_long_help().is_none())
            .map(|(path, arg)| format!("{path}: {}", arg.get_id()))
            .collect();
        assert!(silent.is_empty(), "without help text: {silent:#?}");
    }

    /// The long flags of a group of options, like `--listen`.
    fn flags_of<A: clap::Args>() -> Vec<String> {
        A::augment_args(clap::Command::new("options"))
            .get_arguments()
            .filter_map(|arg| arg.get_long())
            .map(|long| format!("--{long}"))
            .collect()
    }

    /// Every command's long help, by its path (`tessera admin client create`), with the global
    /// options of its parents in it as the user sees them.
    fn helps(command: &mut clap::Command, path: &str, out: &mut Vec<(String, String)>) {
        let path = format!("{path} {}", command.get_name()).trim().to_owned();
        out.push((path.clone(), command.render_long_help().to_string()));
        for sub in command.get_subcommands_mut() {
            helps(sub, &path, out);
        }
    }

    #[test]
    fn admin_helps_show_no_server_option_and_serve_shows_them_all() {
        let mut cli = super::Cli::command();
        cli.build();
        let mut all = Vec::new();
        helps(&mut cli, "", &mut all);
        let server_only = flags_of::<crate::ServerOptions>();
        let shared = flags_of::<crate::SharedOptions>();
        assert!(
            server_only.contains(&"--listen".to_owned()),
            "{server_only:?}"
        );
        assert!(server_only.contains(&"--trusted-proxies".to_owned()));
        let admin: Vec<&(String, String)> = all
            .iter()
            .filter(|(path, _)| path.starts_with("tessera admin"))
            .collect();
        assert!(
            admin.len() > 20,
            "{:?}",
            admin.iter().map(|(p, _)| p).collect::<Vec<_>>()
        );
        for (path, help) in admin {
            for flag in &server_only {
                assert!(
                    !help.contains(flag.as_str()),
                    "{path} shows {flag}:\n{help}"
                );
            }
            // What admin reads is still there, on every admin command (clap's own `help`
            // subcommands take no option).
            if path.split(' ').any(|name| name == "help") {
                continue;
            }
            for flag in shared.iter().chain([&"--config".to_owned()]) {
                assert!(help.contains(flag.as_str()), "{path} lacks {flag}:\n{help}");
            }
        }
        let (_, serve) = all
            .iter()
            .find(|(path, _)| path == "tessera serve")
            .expect("a serve command");
        for flag in server_only.iter().chain(&shared) {
            assert!(
                serve.contains(flag.as_str()),
                "serve lacks {flag}:\n{serve}"
            );
        }
    }
}
