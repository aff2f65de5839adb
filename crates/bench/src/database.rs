//! Where the benchmark's store is: a SQLite file in the data directory, or a PostgreSQL
//! database of its own.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tessera_core::store::Store;

use crate::postgres;

/// Connections the preparation uses: it mints with as many workers as the largest concurrency,
/// and a few connections keep PostgreSQL's writes busy enough.
const POOL_SIZE: usize = 8;

/// Where the benchmark's store is.
pub(crate) enum Database {
    Sqlite(String),
    Postgres(postgres::Scratch),
}

impl Database {
    pub(crate) fn url(&self) -> &str {
        match self {
            Self::Sqlite(url) => url,
            Self::Postgres(scratch) => &scratch.url,
        }
    }

    /// The store, opened as the server opens it.
    pub(crate) async fn open_store(&self) -> anyhow::Result<Arc<dyn Store>> {
        Ok(match self {
            Self::Sqlite(url) => Arc::new(
                tessera_store_sqlite::SqliteStore::open(url)
                    .with_context(|| format!("opening database {url}"))?,
            ),
            Self::Postgres(scratch) => Arc::new(
                tessera_store_postgres::PostgresStore::connect(&scratch.url, POOL_SIZE)
                    .await
                    .with_context(|| format!("connecting to {}", self.describe()))?,
            ),
        })
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Sqlite(url) => url.clone(),
            Self::Postgres(scratch) => format!("PostgreSQL database {}", scratch.name),
        }
    }

    pub(crate) async fn bytes(&self, dir: &Path) -> u64 {
        match self {
            Self::Sqlite(_) => database_bytes(dir),
            Self::Postgres(scratch) => scratch.bytes().await.unwrap_or(0),
        }
    }
}

pub(crate) fn database_bytes(dir: &Path) -> u64 {
    ["tessera.db", "tessera.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}
