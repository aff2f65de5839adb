//! Checkpoints off the hot path. By default SQLite checkpoints inside the commit that makes the
//! write-ahead log reach 1,000 pages: that group of refreshes waits while pages are copied into
//! the database file and it is fsynced. Here the writer never checkpoints by itself
//! (`wal_autocheckpoint = 0`); a thread of its own does, passively — copying what is committed
//! while the writer goes on — every [`INTERVAL`].
//!
//! A passive checkpoint never waits for the writer, so under a load that never pauses the log
//! could be rewound only by luck (SQLite starts it over at the first write after a checkpoint
//! has copied everything). When the log passes [`MAX_WAL_FRAMES`], the writer is asked to
//! checkpoint once itself, between two groups, when it is the only one writing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tessera_core::store::StoreError;

use crate::error::classify;

/// How often the log is copied into the database file.
pub(crate) const INTERVAL: Duration = Duration::from_millis(200);
/// The log's length, in pages, beyond which the writer checkpoints itself (16 MiB of 4 KiB
/// pages): about a second of rotating refreshes at full speed. The writer's checkpoint then
/// copies only what was committed since the last background one (a few milliseconds, with the
/// database file's fsync), and the log starts over at the next write. A longer log costs every
/// read a longer search of the log's index, and measured no faster.
pub(crate) const MAX_WAL_FRAMES: i64 = 4_096;
/// What the log file is cut back to when SQLite rewinds it (`journal_size_limit`).
pub(crate) const WAL_SIZE_LIMIT_BYTES: i64 = 16 * 1024 * 1024;

/// Set by the checkpointer when the log is too long; the writer checkpoints and clears it.
pub(crate) type CheckpointRequest = Arc<AtomicBool>;

#[derive(Debug)]
pub(crate) struct Checkpointer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub(crate) fn start(
        path: &std::path::Path,
        writer_request: CheckpointRequest,
    ) -> Result<Self, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(classify)?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("tessera-sqlite-checkpoint".into())
            .spawn(move || run(&conn, &thread_stop, &writer_request))
            .map_err(|e| {
                StoreError::Internal(format!("cannot start the checkpoint thread: {e}"))
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the SQLite checkpoint thread panicked");
            }
        }
    }
}

fn run(conn: &Connection, stop: &(Mutex<bool>, Condvar), writer_request: &AtomicBool) {
    let (stopped, wake) = stop;
    let mut guard = stopped.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        guard = wake
            .wait_timeout(guard, INTERVAL)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
        if *guard {
            return;
        }
        match checkpoint(conn) {
            Ok(frames) if frames > MAX_WAL_FRAMES => writer_request.store(true, Ordering::Relaxed),
            Ok(_) => {}
            Err(error) => tracing::warn!(error = %error, "checkpoint failed"),
        }
    }
}

/// A passive checkpoint; returns the log's length in pages.
pub(crate) fn checkpoint(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1))
}
