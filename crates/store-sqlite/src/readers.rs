//! A small pool of read-only connections. In WAL mode readers never wait for the writer, and
//! each read sees the last committed state.
//!
//! Reads run on the calling task's thread. Every read is a point query on an indexed key, which
//! takes microseconds with its pages in the operating system's cache; handing each to a
//! blocking thread cost more than the read — two context switches per read, on a server pinned
//! to one core — so the pool is used inline, like a mutex. (No memory-mapped I/O: the mapped
//! pages of a large database would count as the server's resident memory, and a page another
//! connection changed is read from the write-ahead log anyway.)

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tessera_core::store::StoreError;
use tokio::sync::Semaphore;

use crate::error::{classify, DbError};

/// How many reads run at once. The machine has 2 cores; lookups are point queries, so a few
/// connections keep both busy without piling up threads.
pub(crate) const READERS: usize = 4;
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Prepared statements kept per connection: more than the store has distinct statements (about
/// 75, counting the eight forms of the events query and the writer's transaction control), so
/// that none is ever prepared twice.
pub(crate) const STATEMENT_CACHE: usize = 128;

#[derive(Debug)]
pub(crate) struct Readers {
    path: Arc<Path>,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

impl Readers {
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let idle = (0..READERS)
            .map(|_| open_reader(path))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            path: path.into(),
            idle: Mutex::new(idle),
            permits: Semaphore::new(READERS),
        })
    }

    pub(crate) async fn run<R, F>(&self, work: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Connection) -> Result<R, DbError> + Send + 'static,
        R: Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Unavailable("the reader pool is closed".into()))?;
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        // A connection lost with a panicking read is replaced here.
        let conn = match idle {
            Some(conn) => conn,
            None => open_reader(&self.path)?,
        };
        let result = work(&conn).map_err(StoreError::from);
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(conn);
        result
    }
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(classify)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(classify)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}
