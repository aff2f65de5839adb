//! The single writer: one thread owns the write connection and commits jobs in groups.
//!
//! A job is a closure over the connection. The thread takes the first queued job, drains up to
//! [`MAX_GROUP`] − 1 more that are already waiting (under load, after letting the request
//! threads queue more: [`gather_followers`]), and runs them all in one `BEGIN IMMEDIATE`
//! transaction, each inside its own savepoint so that a failing job is rolled back alone. It then
//! commits once (one fsync under `synchronous=FULL`) and only then answers every job: a caller
//! never hears "done" for something that is not durable. Under load many refreshes share one
//! fsync; when idle a job waits for nobody.
//!
//! A savepoint makes SQLite copy every page the job touches into a statement journal first; on
//! the refresh path that copy was 7 % of the server's CPU. The hot jobs are therefore submitted
//! *unguarded* ([`Writer::submit_unguarded`]): they run without a savepoint, and should one fail,
//! its whole group is rolled back and answered `Unavailable` — a price only a broken database or
//! a bug pays, since those jobs refuse by returning `Ok`, never by failing after a write.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use rusqlite::Connection;
use tessera_core::store::StoreError;
use tokio::sync::oneshot;

use crate::checkpointer::{checkpoint, CheckpointRequest};
use crate::error::DbError;

/// Most jobs committed in one transaction: bounds the latency one group adds to its last job.
pub(crate) const MAX_GROUP: usize = 256;

/// Most times the writer gives its core away to let a group grow before it commits: bounds
/// what gathering adds to a group's latency while requests keep coming.
const MAX_GATHER_YIELDS: usize = 8;

/// Answers a job once its transaction's fate is known: `Some(reason)` when the commit failed.
type Answer = Box<dyn FnOnce(Option<&str>) + Send>;

trait Job: Send {
    /// Whether the job runs inside its own savepoint (see the module's documentation).
    fn guarded(&self) -> bool;
    /// Runs the job inside the open transaction. Returns whether it failed (its savepoint is
    /// then rolled back) and how to answer it after the commit.
    fn run(self: Box<Self>, conn: &Connection) -> (bool, Answer);
    /// Answers the job `Unavailable` without running it.
    fn refuse(self: Box<Self>, reason: &str);
}

struct Typed<F, R> {
    work: F,
    guarded: bool,
    reply: oneshot::Sender<Result<R, StoreError>>,
}

impl<F, R> Job for Typed<F, R>
where
    F: FnOnce(&Connection) -> Result<R, DbError> + Send,
    R: Send + 'static,
{
    fn guarded(&self) -> bool {
        self.guarded
    }

    fn run(self: Box<Self>, conn: &Connection) -> (bool, Answer) {
        let Typed { work, reply, .. } = *self;
        // A panicking job must not take the writer, and every later write, down with it.
        let result = match catch_unwind(AssertUnwindSafe(|| work(conn))) {
            Ok(result) => result.map_err(StoreError::from),
            Err(_) => Err(StoreError::Internal("a write job panicked".into())),
        };
        let failed = result.is_err();
        let answer: Answer = Box::new(move |commit_failure| {
            let result = match (result, commit_failure) {
                (Ok(_), Some(reason)) => {
                    Err(StoreError::Unavailable(format!("commit failed: {reason}")))
                }
                // A failed job wrote nothing either way; its own error says more.
                (result, _) => result,
            };
            // The caller may have stopped waiting; the write stands regardless.
            let _ = reply.send(result);
        });
        (failed, answer)
    }

    fn refuse(self: Box<Self>, reason: &str) {
        let _ = self
            .reply
            .send(Err(StoreError::Unavailable(reason.to_owned())));
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) commits: AtomicU64,
    pub(crate) jobs: AtomicU64,
}

/// The handle: a queue into the writer thread. Dropping it lets the thread finish every queued
/// job, close the connection and exit, and waits for that.
#[derive(Debug)]
pub(crate) struct Writer {
    queue: Option<mpsc::Sender<Box<dyn Job>>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl Writer {
    /// Starts the writer thread on `conn`; it checkpoints itself when `checkpoint_request` is
    /// set (see [`crate::checkpointer`]).
    pub(crate) fn start(
        conn: Connection,
        checkpoint_request: CheckpointRequest,
    ) -> Result<Self, StoreError> {
        let (queue, jobs) = mpsc::channel::<Box<dyn Job>>();
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("tessera-sqlite-writer".into())
            .spawn(move || serve(conn, &jobs, &thread_counters, &checkpoint_request))
            .map_err(|e| {
                StoreError::Internal(format!("cannot start the SQLite writer thread: {e}"))
            })?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
            counters,
        })
    }

    /// Runs `work` in the next group transaction, in its own savepoint; resolves once that
    /// transaction has committed.
    pub(crate) async fn submit<R, F>(&self, work: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Connection) -> Result<R, DbError> + Send + 'static,
        R: Send + 'static,
    {
        self.enqueue(work, true).await
    }

    /// Like [`Writer::submit`] but without a savepoint, for a job that never fails after it has
    /// written: should it fail anyway, its whole group is rolled back.
    pub(crate) async fn submit_unguarded<R, F>(&self, work: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Connection) -> Result<R, DbError> + Send + 'static,
        R: Send + 'static,
    {
        self.enqueue(work, false).await
    }

    async fn enqueue<R, F>(&self, work: F, guarded: bool) -> Result<R, StoreError>
    where
        F: FnOnce(&Connection) -> Result<R, DbError> + Send + 'static,
        R: Send + 'static,
    {
        let stopped = || StoreError::Unavailable("the SQLite writer has stopped".into());
        let (reply, answer) = oneshot::channel();
        let queue = self.queue.as_ref().ok_or_else(stopped)?;
        queue
            .send(Box::new(Typed {
                work,
                guarded,
                reply,
            }))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the SQLite writer thread panicked");
            }
        }
    }
}

fn serve(
    conn: Connection,
    jobs: &mpsc::Receiver<Box<dyn Job>>,
    counters: &Counters,
    checkpoint_request: &CheckpointRequest,
) {
    let mut group: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_GROUP);
    let mut last_group = 0;
    while let Ok(first) = jobs.recv() {
        group.push(first);
        take_waiting(jobs, &mut group);
        if last_group > 1 {
            gather_followers(jobs, &mut group);
        }
        last_group = group.len();
        commit_group(&conn, &mut group, counters);
        if checkpoint_request.swap(false, Ordering::Relaxed) {
            // Between two groups nobody else writes, so this one copies the whole log and the
            // next write starts it over.
            if let Err(error) = checkpoint(&conn) {
                tracing::warn!(error = %error, "the writer's checkpoint failed");
            }
        }
    }
    if let Err((_, error)) = conn.close() {
        tracing::warn!(error = %error, "closing the SQLite write connection failed");
    }
}

/// Moves the jobs already queued into `group`, up to [`MAX_GROUP`]. Returns how many it took.
fn take_waiting(jobs: &mpsc::Receiver<Box<dyn Job>>, group: &mut Vec<Box<dyn Job>>) -> usize {
    let before = group.len();
    while group.len() < MAX_GROUP {
        match jobs.try_recv() {
            Ok(job) => group.push(job),
            Err(_) => break,
        }
    }
    group.len() - before
}

/// Under load (the last group had company), gives the core away before committing, and takes
/// what the request threads queued meanwhile, for as long as each turn brings more jobs (at most
/// [`MAX_GATHER_YIELDS`] turns).
///
/// Why: the writer shares its cores with the request threads. Committing the moment a job is
/// queued makes a group only as large as the number of requests that reach the store during
/// one fsync, and every commit costs the core a fixed amount (the WAL write, the fsync's device
/// kick and interrupt, two context switches) that a small group barely spreads. When requests
/// cost more CPU before their write (an ID token's signature), groups shrank to about three
/// jobs and that fixed cost grew to a fifth of the request. A yield costs one system call and
/// returns at once when nothing else wants the core: an idle server, or a writer with a core
/// to itself, commits as before. Measured on two cores (BENCHMARKS.md, "Group commits that wait
/// for their followers"): groups about five times larger, and the plain rotating refresh no
/// slower.
fn gather_followers(jobs: &mpsc::Receiver<Box<dyn Job>>, group: &mut Vec<Box<dyn Job>>) {
    for _ in 0..MAX_GATHER_YIELDS {
        if group.len() >= MAX_GROUP {
            return;
        }
        std::thread::yield_now();
        if take_waiting(jobs, group) == 0 {
            return;
        }
    }
}

/// Runs and commits `group`, answering every job. Should SQLite abort the transaction midway,
/// the jobs run so far are answered `Unavailable` and the rest go on in a new transaction.
fn commit_group(conn: &Connection, group: &mut Vec<Box<dyn Job>>, counters: &Counters) {
    let mut jobs = group.drain(..);
    while let Some(first) = jobs.next() {
        let began = std::time::Instant::now();
        if let Err(error) = control(conn, "BEGIN IMMEDIATE") {
            let reason = error.to_string();
            tracing::error!(reason = %reason, "cannot begin a write transaction");
            first.refuse(&reason);
            jobs.for_each(|job| job.refuse(&reason));
            return;
        }
        let mut answers = Vec::new();
        let mut aborted = None;
        for job in std::iter::once(first).chain(jobs.by_ref()) {
            if let Err(reason) = run_in_savepoint(conn, job, &mut answers) {
                aborted = Some(reason);
                break;
            }
        }
        let outcome = match aborted {
            Some(reason) => Err(reason),
            None => control(conn, "COMMIT").map_err(|e| e.to_string()),
        };
        match &outcome {
            Ok(()) => {
                counters.commits.fetch_add(1, Ordering::Relaxed);
                // What every job of the group waited for its answer, fsync included.
                metrics::histogram!(tessera_core::operations::metrics::STORE_COMMIT_SECONDS)
                    .record(began.elapsed().as_secs_f64());
                metrics::histogram!(tessera_core::operations::metrics::STORE_COMMIT_GROUP_SIZE)
                    .record(answers.len() as f64);
            }
            Err(reason) => {
                tracing::error!(reason = %reason, jobs = answers.len(), "group commit failed; its jobs wrote nothing");
                if !conn.is_autocommit() {
                    if let Err(error) = control(conn, "ROLLBACK") {
                        tracing::error!(error = %error, "rollback failed");
                    }
                }
            }
        }
        counters
            .jobs
            .fetch_add(answers.len() as u64, Ordering::Relaxed);
        let failure = outcome.as_ref().err().map(String::as_str);
        for answer in answers {
            answer(failure);
        }
    }
}

/// Runs one job between `SAVEPOINT` and `RELEASE`, rolling it back alone if it failed; an
/// unguarded job runs bare, and its failure loses the transaction. `Err` means the whole
/// transaction is lost.
fn run_in_savepoint(
    conn: &Connection,
    job: Box<dyn Job>,
    answers: &mut Vec<Answer>,
) -> Result<(), String> {
    if !job.guarded() {
        let (failed, answer) = job.run(conn);
        answers.push(answer);
        if failed {
            return Err("an unguarded write job failed; its group is rolled back".into());
        }
        return Ok(());
    }
    if let Err(error) = control(conn, "SAVEPOINT job") {
        let reason = error.to_string();
        job.refuse(&reason);
        return Err(reason);
    }
    let (failed, answer) = job.run(conn);
    answers.push(answer);
    if failed {
        control(conn, "ROLLBACK TO job").map_err(|e| e.to_string())?;
    }
    control(conn, "RELEASE job").map_err(|e| e.to_string())?;
    if conn.is_autocommit() {
        return Err("SQLite rolled the transaction back".into());
    }
    Ok(())
}

/// Runs a transaction-control statement, prepared once: they run for every job.
fn control(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn writer() -> (tempfile::TempDir, Writer) {
        let (dir, writer, _) = writer_in_wal_mode();
        (dir, writer)
    }

    /// A writer on a WAL database that never checkpoints by itself, and its checkpoint request.
    fn writer_in_wal_mode() -> (tempfile::TempDir, Writer, CheckpointRequest) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE t (v INTEGER NOT NULL UNIQUE)",
        )
        .unwrap();
        let request = CheckpointRequest::default();
        let writer = Writer::start(conn, Arc::clone(&request)).unwrap();
        (dir, writer, request)
    }

    fn main_file_bytes(dir: &tempfile::TempDir) -> u64 {
        std::fs::metadata(dir.path().join("w.db")).unwrap().len()
    }

    async fn fill(writer: &Writer) {
        writer
            .submit(|c| {
                for v in 0..5_000 {
                    insert(c, v)?;
                }
                Ok(())
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_checkpointer_copies_the_log_into_the_database_while_the_writer_runs() {
        let (dir, writer, request) = writer_in_wal_mode();
        fill(&writer).await;
        let before = main_file_bytes(&dir);
        let _checkpointer =
            crate::checkpointer::Checkpointer::start(&dir.path().join("w.db"), request).unwrap();
        tokio::time::sleep(crate::checkpointer::INTERVAL * 3).await;
        assert!(
            main_file_bytes(&dir) > before + 20_000,
            "{before} -> {}",
            main_file_bytes(&dir)
        );
    }

    #[tokio::test]
    async fn the_writer_checkpoints_itself_when_asked() {
        let (dir, writer, request) = writer_in_wal_mode();
        fill(&writer).await;
        let before = main_file_bytes(&dir);
        request.store(true, Ordering::Relaxed);
        // The request is seen after the next group.
        writer.submit(|c| insert(c, -1)).await.unwrap();
        writer.submit(|c| insert(c, -2)).await.unwrap();
        assert!(!request.load(Ordering::Relaxed));
        assert!(main_file_bytes(&dir) > before + 20_000);
    }

    /// A job that does nothing, whose answer nobody waits for.
    fn idle_job() -> Box<dyn Job> {
        let (reply, _) = oneshot::channel::<Result<(), StoreError>>();
        Box::new(Typed {
            work: |_: &Connection| Ok(()),
            guarded: false,
            reply,
        })
    }

    fn queue_of(n: usize) -> mpsc::Receiver<Box<dyn Job>> {
        let (queue, jobs) = mpsc::channel();
        for _ in 0..n {
            queue.send(idle_job()).unwrap();
        }
        // The sender is dropped: the queue holds what was sent, and nothing comes later.
        jobs
    }

    #[test]
    fn taking_the_waiting_jobs_stops_at_a_full_group() {
        let jobs = queue_of(MAX_GROUP + 5);
        let mut group = vec![idle_job()];
        assert_eq!(take_waiting(&jobs, &mut group), MAX_GROUP - 1);
        assert_eq!(group.len(), MAX_GROUP);
        // What did not fit waits for the next group.
        group.clear();
        assert_eq!(take_waiting(&jobs, &mut group), 6);
    }

    #[test]
    fn gathering_stops_when_a_turn_brings_nothing_or_the_group_is_full() {
        let jobs = queue_of(0);
        let mut group = vec![idle_job()];
        gather_followers(&jobs, &mut group);
        assert_eq!(group.len(), 1);

        let jobs = queue_of(3);
        let mut group: Vec<_> = (0..MAX_GROUP).map(|_| idle_job()).collect();
        gather_followers(&jobs, &mut group);
        assert_eq!(group.len(), MAX_GROUP);
        assert_eq!(
            take_waiting(&jobs, &mut Vec::new()),
            3,
            "a full group takes nothing more"
        );
    }

    #[test]
    fn gathering_takes_the_jobs_queued_while_the_writer_gave_its_core_away() {
        let jobs = queue_of(4);
        let mut group = vec![idle_job()];
        gather_followers(&jobs, &mut group);
        assert_eq!(group.len(), 5);
    }

    fn insert(conn: &Connection, v: i64) -> Result<(), DbError> {
        conn.execute("INSERT INTO t (v) VALUES (?1)", [v])?;
        Ok(())
    }

    async fn values(writer: &Writer) -> Vec<i64> {
        writer
            .submit(|c| {
                let mut s = c.prepare("SELECT v FROM t ORDER BY v")?;
                let rows = s.query_map([], |r| r.get(0))?;
                Ok(rows.collect::<Result<Vec<i64>, _>>()?)
            })
            .await
            .unwrap()
    }

    /// Runs `a` and `b` in one group: both are queued while the writer is busy with a job that
    /// has already started.
    async fn in_one_group<A, B>(
        writer: &Writer,
        a: A,
        b: B,
    ) -> (Result<(), StoreError>, Result<(), StoreError>)
    where
        A: std::future::Future<Output = Result<(), StoreError>>,
        B: std::future::Future<Output = Result<(), StoreError>>,
    {
        let (started, running) = std::sync::mpsc::channel();
        let hold = writer.submit(move |_| {
            started.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(100));
            Ok(())
        });
        let queue_behind = async {
            // Blocks this task briefly; the writer thread is what it waits for.
            running.recv().unwrap();
            tokio::join!(a, b)
        };
        let (held, (a, b)) = tokio::join!(hold, queue_behind);
        held.unwrap();
        (a, b)
    }

    #[tokio::test]
    async fn a_failing_guarded_job_is_rolled_back_alone() {
        let (_dir, writer) = writer();
        let failing = writer.submit(|c| {
            insert(c, 1)?;
            insert(c, 1) // the unique key refuses the second
        });
        let (failed, ok) = in_one_group(&writer, failing, writer.submit(|c| insert(c, 2))).await;
        assert!(matches!(failed, Err(StoreError::Conflict(_))), "{failed:?}");
        ok.unwrap();
        assert_eq!(values(&writer).await, [2]);
        assert!(writer.counters().jobs.load(Ordering::Relaxed) >= 3);
    }

    #[tokio::test]
    async fn a_failing_unguarded_job_takes_its_group_down_and_nothing_is_half_written() {
        let (_dir, writer) = writer();
        let failing = writer.submit_unguarded(|c| {
            insert(c, 1)?;
            insert(c, 1)
        });
        let (failed, other) = in_one_group(&writer, writer.submit(|c| insert(c, 2)), failing).await;
        assert!(matches!(other, Err(StoreError::Conflict(_))), "{other:?}");
        assert!(
            matches!(failed, Err(StoreError::Unavailable(_))),
            "the job sharing its group: {failed:?}"
        );
        assert_eq!(values(&writer).await, Vec::<i64>::new());
        // The writer goes on.
        writer.submit_unguarded(|c| insert(c, 3)).await.unwrap();
        assert_eq!(values(&writer).await, [3]);
    }
}
