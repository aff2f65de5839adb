//! How PostgreSQL failures become [`StoreError`]s: at one place, by SQLSTATE, never with a value
//! in them. A server's error carries the offending key or row in its DETAIL (`Key
//! (code_hash)=(\x…) already exists`): only its code, message and constraint name are kept.

use deadpool_postgres::PoolError;
use tessera_core::store::StoreError;
use tokio_postgres::error::{DbError as ServerError, SqlState};

/// What a statement or a transaction fails with: a driver or server error, a pool error (no
/// connection to be had), both classified at the edge by `From<DbError> for StoreError`, or a
/// store error passed through as is. All convert with `?`.
#[derive(Debug)]
pub(crate) enum DbError {
    Pg(tokio_postgres::Error),
    Pool(PoolError),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for DbError {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Pg(error)
    }
}

impl From<PoolError> for DbError {
    fn from(error: PoolError) -> Self {
        Self::Pool(error)
    }
}

impl From<StoreError> for DbError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

impl From<DbError> for StoreError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Pg(error) => classify(&error),
            DbError::Pool(error) => classify_pool(&error),
            DbError::Store(error) => error,
        }
    }
}

impl DbError {
    /// Whether the transaction was rolled back only because of concurrent ones (a
    /// serialization failure, a deadlock): it wrote nothing, and running it again may succeed.
    pub(crate) fn is_transient(&self) -> bool {
        let DbError::Pg(error) = self else {
            return false;
        };
        matches!(
            error.code(),
            Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
        )
    }
}

/// Unique violations are `Conflict`, naming the key; lost or refused connections, a server
/// shutting down or out of resources, and transactions rolled back by concurrency (once the
/// store's retries are spent) are `Unavailable`; anything else is `Internal`.
pub(crate) fn classify(error: &tokio_postgres::Error) -> StoreError {
    if let Some(server) = error.as_db_error() {
        return classify_server(server);
    }
    match connection_failure(error) {
        Some(text) => StoreError::Unavailable(format!("PostgreSQL connection failed: {text}")),
        // A parameter or column of the wrong type, an unexpected row count: the driver's own
        // message, which names positions, never values.
        None => StoreError::Internal(format!("PostgreSQL driver error: {error}")),
    }
}

fn classify_server(server: &ServerError) -> StoreError {
    let code = server.code();
    if *code == SqlState::UNIQUE_VIOLATION {
        return StoreError::Conflict(conflict_label(server.constraint().unwrap_or_default()));
    }
    let text = describe(server);
    if is_unavailable(code.code()) {
        StoreError::Unavailable(text)
    } else {
        StoreError::Internal(text)
    }
}

/// SQLSTATEs meaning that the database cannot serve now, though nothing is wrong with the
/// request: class 08 (connection exception), 40 (transaction rollback: serialization failure
/// and deadlock, after the store's retries), 53 (insufficient resources: disk full, out of
/// memory, too many connections), 57 (operator intervention: admin or crash shutdown, cannot
/// connect now, statement timeout), and 25006 (a read-only transaction: a standby, or a
/// primary demoted under us).
fn is_unavailable(code: &str) -> bool {
    matches!(code.get(..2), Some("08" | "40" | "53" | "57")) || code == "25006"
}

/// The server's code and message, without DETAIL, HINT or WHERE, which may quote values.
fn describe(server: &ServerError) -> String {
    let mut text = format!(
        "PostgreSQL error {}: {}",
        server.code().code(),
        server.message()
    );
    if let Some(constraint) = server.constraint() {
        text.push_str(&format!(" (constraint {constraint})"));
    }
    text
}

/// For an error of the driver that comes from the connection rather than the statement (I/O, a
/// closed connection, a connect that failed or timed out), what to say of it: the driver's
/// words and the operating system's reason.
fn connection_failure(error: &tokio_postgres::Error) -> Option<String> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return Some(format!("{error}: {io}"));
        }
        source = cause.source();
    }
    // The driver's kinds are private; these are its words for the connection-level ones.
    let text = error.to_string();
    let connection_level = error.is_closed()
        || matches!(
            text.as_str(),
            "error connecting to server"
                | "timeout waiting for server"
                | "error communicating with the server"
        );
    connection_level.then_some(text)
}

/// No connection within the pool's timeouts, or none could be made: the database is down,
/// unreachable or saturated.
fn classify_pool(error: &PoolError) -> StoreError {
    match error {
        PoolError::Timeout(_) | PoolError::Closed => {
            StoreError::Unavailable(format!("no PostgreSQL connection: {error}"))
        }
        PoolError::Backend(error) => match classify(error) {
            // Whatever refused the connection (a wrong password, a missing database, a server
            // starting up), this store cannot serve until it is fixed.
            StoreError::Internal(text) | StoreError::Unavailable(text) => {
                StoreError::Unavailable(format!("cannot connect to PostgreSQL: {text}"))
            }
            conflict @ StoreError::Conflict(_) => conflict,
        },
        PoolError::NoRuntimeSpecified | PoolError::PostCreateHook(_) => {
            StoreError::Internal(format!("PostgreSQL pool: {error}"))
        }
    }
}

/// Names the key that is taken, from the violated constraint's name (PostgreSQL's defaults for
/// the keys of `migrations/postgres/`, and the username index), with SQLite's labels.
fn conflict_label(constraint: &str) -> &'static str {
    const KEYS: &[(&str, &str)] = &[
        ("users_username_key", "username"),
        ("users_by_username_nocase", "username"),
        ("users_pkey", "user id"),
        ("orgs_pkey", "org id"),
        ("clients_pkey", "client id"),
        ("grants_pkey", "grant id"),
        ("auth_codes_pkey", "authorization code"),
        ("legacy_refresh_tokens_pkey", "refresh token"),
        ("access_tokens_pkey", "access token"),
        ("notes_pkey", "note id"),
        ("signing_keys_pkey", "signing key id"),
    ];
    KEYS.iter()
        .find(|(name, _)| *name == constraint)
        .map_or("record", |(_, label)| label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_keys_are_named_as_on_sqlite() {
        assert_eq!(conflict_label("users_by_username_nocase"), "username");
        assert_eq!(conflict_label("users_username_key"), "username");
        assert_eq!(conflict_label("clients_pkey"), "client id");
        assert_eq!(conflict_label("orgs_pkey"), "org id");
        assert_eq!(conflict_label("something_else"), "record");
    }

    #[test]
    fn connection_shutdown_and_resource_states_are_unavailable() {
        for code in [
            "08006", "08001", "57P01", "57P03", "53300", "40001", "40P01", "25006",
        ] {
            assert!(is_unavailable(code), "{code}");
        }
        for code in ["23503", "23514", "42P01", "22P02", "XX000"] {
            assert!(!is_unavailable(code), "{code}");
        }
    }
}
