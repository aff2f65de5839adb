//! Throwaway PostgreSQL databases: one per test, created on the server of
//! `TESSERA_TEST_POSTGRES_URL` (or, unset, `postgres://postgres@127.0.0.1:5432/postgres`) and
//! dropped when the test ends. Set, an unreachable server fails the test; unset, the test is
//! skipped loudly.

use std::io::Write;
use std::sync::Once;
use std::time::Duration;

use tokio_postgres::NoTls;
use url::Url;

/// The variable that names the server and makes it required.
pub const URL_VARIABLE: &str = "TESSERA_TEST_POSTGRES_URL";
/// The server used when the variable is unset (and then only if it answers).
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// `url` without its password, for messages.
pub fn redacted(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "(a URL that does not parse)".to_owned(),
    }
}

/// A client on `url`, its connection driven by a task of the current runtime.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut config: tokio_postgres::Config = url.parse()?;
    config.connect_timeout(Duration::from_secs(3));
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// Runs `sql` on `url`, or fails the test.
pub async fn execute(url: &str, sql: &str) {
    connect(url)
        .await
        .unwrap_or_else(|e| panic!("connecting to {}: {e}", redacted(url)))
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The server's URL (its database is where test databases are created from), or `None` after
/// saying loudly that the test is skipped, followed by `skip_note`, when it cannot be reached
/// and was not required.
pub async fn server_or_skip(skip_note: &str) -> Option<String> {
    let (admin_url, required) = match std::env::var(URL_VARIABLE) {
        Ok(url) => (url, true),
        Err(_) => (DEFAULT_URL.to_owned(), false),
    };
    match connect(&admin_url).await {
        Ok(_) => Some(admin_url),
        Err(error) if required => panic!(
            "PostgreSQL not reachable at {} ({URL_VARIABLE} is set): {error}",
            redacted(&admin_url)
        ),
        Err(error) => {
            skipped(&format!(
                "SKIPPED: PostgreSQL not reachable at {} ({error}); set {URL_VARIABLE} to \
                 require it. {skip_note}",
                redacted(&admin_url)
            ));
            None
        }
    }
}

/// Says that a test runs without PostgreSQL: once, in a banner, on the process's standard
/// error itself, which the test harness does not capture (it captures `eprintln!`, and shows
/// it only for failed tests); and in each test's own output.
fn skipped(message: &str) {
    static BANNER: Once = Once::new();
    BANNER.call_once(|| {
        let line = "*".repeat(100);
        let _ = writeln!(std::io::stderr(), "\n{line}\n{message}\n{line}\n");
    });
    eprintln!("{message}");
}

/// A database of its own for one test, dropped (with whatever is still connected to it) when
/// this is.
#[derive(Debug)]
pub struct TestDatabase {
    /// Where it was created from.
    pub admin_url: String,
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    /// A new, empty database named `<prefix>_<random hex>` on the server of `admin_url`.
    pub async fn create(admin_url: &str, prefix: &str) -> Self {
        let name = format!("{prefix}_{:016x}", crate::random_u64());
        execute(admin_url, &format!("CREATE DATABASE {name}")).await;
        let mut url = Url::parse(admin_url)
            .unwrap_or_else(|_| panic!("{URL_VARIABLE} must be a postgres:// URL"));
        url.set_path(&format!("/{name}"));
        Self {
            admin_url: admin_url.to_owned(),
            name,
            url: url.to_string(),
        }
    }

    /// A new database on the server of `TESSERA_TEST_POSTGRES_URL`, or `None` as
    /// [`server_or_skip`] says.
    pub async fn create_or_skip(prefix: &str, skip_note: &str) -> Option<Self> {
        let admin_url = server_or_skip(skip_note).await?;
        Some(Self::create(&admin_url, prefix).await)
    }

    /// Runs `sql` as the administrator, on the database the test database was created from.
    pub async fn execute_as_admin(&self, sql: &str) {
        execute(&self.admin_url, sql).await;
    }
}

impl Drop for TestDatabase {
    /// Drops the database from a thread of its own with a runtime of its own: this may run
    /// inside an async test, where blocking on the test's runtime would panic.
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let admin = connect(&admin_url).await.map_err(|e| e.to_string())?;
                admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .map_err(|e| e.to_string())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("could not drop test database {}: {error}", self.name),
            Err(_) => eprintln!(
                "could not drop test database {}: the thread panicked",
                self.name
            ),
        }
    }
}
