//! How SQLite failures become [`StoreError`]s: at one place, by kind, never with a value in them.

use rusqlite::ErrorCode;
use tessera_core::store::StoreError;

/// What a job or a read fails with: an SQLite error, classified at the edge by [`classify`], or a
/// store error passed through as is. Both convert with `?`.
#[derive(Debug)]
pub(crate) enum DbError {
    Sql(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for DbError {
    fn from(error: rusqlite::Error) -> Self {
        Self::Sql(error)
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
            DbError::Sql(error) => classify(error),
            DbError::Store(error) => error,
        }
    }
}

/// Busy, locked and I/O failures are `Unavailable` (nothing was written, try again later);
/// unique-key violations are `Conflict`; anything else is `Internal`.
pub(crate) fn classify(error: rusqlite::Error) -> StoreError {
    let rusqlite::Error::SqliteFailure(failure, message) = &error else {
        return StoreError::Internal(error.to_string());
    };
    match failure.code {
        ErrorCode::DatabaseBusy
        | ErrorCode::DatabaseLocked
        | ErrorCode::SystemIoFailure
        | ErrorCode::DiskFull
        | ErrorCode::CannotOpen
        | ErrorCode::FileLockingProtocolFailed
        | ErrorCode::OutOfMemory
        | ErrorCode::ReadOnly => StoreError::Unavailable(error.to_string()),
        ErrorCode::ConstraintViolation
            if matches!(
                failure.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            ) =>
        {
            StoreError::Conflict(conflict_label(message.as_deref().unwrap_or_default()))
        }
        _ => StoreError::Internal(error.to_string()),
    }
}

/// Names the key that is taken, from SQLite's `UNIQUE constraint failed: table.column`.
fn conflict_label(message: &str) -> &'static str {
    const KEYS: &[(&str, &str)] = &[
        ("users.username", "username"),
        ("users.id", "user id"),
        ("orgs.id", "org id"),
        ("clients.client_id", "client id"),
        ("grants.id", "grant id"),
        ("auth_codes.code_hash", "authorization code"),
        ("refresh_tokens.token_hash", "refresh token"),
        ("access_tokens.token_hash", "access token"),
        ("notes.id", "note id"),
        ("signing_keys.kid", "signing key id"),
    ];
    KEYS.iter()
        .find(|(column, _)| message.contains(column))
        .map_or("record", |(_, label)| label)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: std::ffi::c_int, message: &str) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some(message.to_owned()))
    }

    #[test]
    fn unique_violations_name_the_key() {
        let error = failure(
            rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE,
            "UNIQUE constraint failed: users.username",
        );
        assert!(matches!(classify(error), StoreError::Conflict("username")));
    }

    #[test]
    fn busy_and_io_failures_are_unavailable() {
        for code in [
            rusqlite::ffi::SQLITE_BUSY,
            rusqlite::ffi::SQLITE_LOCKED,
            rusqlite::ffi::SQLITE_IOERR_FSYNC,
        ] {
            assert!(
                matches!(classify(failure(code, "x")), StoreError::Unavailable(_)),
                "{code}"
            );
        }
    }

    #[test]
    fn foreign_key_violations_are_internal() {
        let error = failure(
            rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY,
            "FOREIGN KEY constraint failed",
        );
        assert!(matches!(classify(error), StoreError::Internal(_)));
    }
}
