//! Tessera's [`Store`] on embedded SQLite: one file in WAL mode, nothing else to run.
//!
//! Writes go to one thread that owns the only write connection and commits them in groups
//! (see `writer.rs`): every method that changes state resolves only after its transaction has
//! committed with `synchronous=FULL`, and concurrent requests share the fsync. Reads use a small
//! pool of read-only connections from `spawn_blocking`. Each [`Store`] method is one job, hence
//! one savepoint inside one transaction: it happens whole or not at all.
//!
//! Only hashes of tokens, codes and secrets reach this crate, and nothing here logs them.

mod checkpointer;
mod error;
mod location;
mod readers;
mod rows;
mod schema;
mod sql;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{params, params_from_iter, Connection, OpenFlags, Params, Row};
use tessera_core::model::{
    AccessTokenRecord, AuthCode, Change, ChangeKind, Client, Event, Family, Grant, Note, Org,
    StoredEvent, User,
};
use tessera_core::policy::MAX_ACCESS_TOKEN_TTL_SECS;
use tessera_core::policy::{effective_refresh_policy, RefreshTokenPolicy};
use tessera_core::store::{AppUsage, TokenUsage, Usage, UsageDelta, UserUsage};
use tessera_core::store::{
    Audit, BrowserSessions, CodeRedemption, Directory, DpopProofs, EventFilter, Grants, Inventory,
    Issuance, IssueOutcome, Operations, PurgeCounts, PurgePlan, PurgeRound, Records, RefreshCommit,
    RefreshOutcome, SigningKeys, StoreError,
};
use tessera_core::time::Timestamp;
use tessera_core::tokens::hash::Hash;
use tessera_core::tokens::signing_keys::SigningKey;

use crate::checkpointer::{CheckpointRequest, Checkpointer, WAL_SIZE_LIMIT_BYTES};
use crate::error::{classify, DbError};
use crate::location::{Target, TempDatabase};
use crate::readers::{Readers, BUSY_TIMEOUT, STATEMENT_CACHE};
use crate::rows::{all, execute, optional};
use crate::writer::Writer;

/// Reads one row into a record.
type RowMap<T> = fn(&Row<'_>) -> rusqlite::Result<T>;

pub use crate::schema::SCHEMA_VERSION;

/// The file a database location names (`sqlite:///abs.db`, `sqlite://rel.db`, a bare path);
/// `None` for `sqlite::memory:`. For callers that check a location before opening it: opening
/// creates the file and its missing directories.
pub fn database_file(path_or_url: &str) -> Result<Option<std::path::PathBuf>, StoreError> {
    Ok(match location::parse(path_or_url)? {
        Target::File(path) => Some(path),
        Target::Memory => None,
    })
}

/// The SQLite store. Cheap to clone: clones share the writer and the readers. Dropping the last
/// clone finishes the queued writes and closes the database.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

/// Fields drop in order: the writer finishes and closes its connection, then the readers close,
/// then a temporary database is deleted.
#[derive(Debug)]
struct Inner {
    path: PathBuf,
    writer: Writer,
    readers: Readers,
    _checkpointer: Checkpointer,
    _temporary: Option<TempDatabase>,
}

/// What the writer has done since the store was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteStats {
    /// Transactions committed.
    pub commits: u64,
    /// Write jobs (store calls) run, committed or not.
    pub jobs: u64,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path_or_url` and brings its schema up to
    /// date: `sqlite:///abs/path.db`, `sqlite://relative/path.db`, `sqlite:path.db`, a bare path,
    /// or `sqlite::memory:` for a private database that disappears with the store. Parent
    /// directories are created. Blocks while it opens and migrates: call it at start-up.
    pub fn open(path_or_url: &str) -> Result<Self, StoreError> {
        let (path, temporary) = match location::parse(path_or_url)? {
            Target::File(path) => {
                location::prepare_file(&path).map_err(|e| {
                    StoreError::Unavailable(format!(
                        "cannot create the database file {}: {e}",
                        path.display()
                    ))
                })?;
                (path, None)
            }
            Target::Memory => {
                let temporary = TempDatabase::create().map_err(|e| {
                    StoreError::Unavailable(format!("cannot create a temporary database: {e}"))
                })?;
                (temporary.path().to_owned(), Some(temporary))
            }
        };
        let mut conn = open_writer(&path)?;
        schema::migrate(&mut conn)?;
        let readers = Readers::open(&path)?;
        let checkpoint_request = CheckpointRequest::default();
        let writer = Writer::start(conn, Arc::clone(&checkpoint_request))?;
        let checkpointer = Checkpointer::start(&path, checkpoint_request)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                writer,
                readers,
                _checkpointer: checkpointer,
                _temporary: temporary,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// How many transactions the writer committed for how many jobs: their ratio is the group
    /// commit's batching.
    pub fn write_stats(&self) -> WriteStats {
        let counters = self.inner.writer.counters();
        WriteStats {
            commits: counters.commits.load(Ordering::Relaxed),
            jobs: counters.jobs.load(Ordering::Relaxed),
        }
    }

    /// Runs `work` on the write connection, inside the writer's next group transaction and its
    /// own savepoint; resolves once that transaction has committed. An `Err` from `work` rolls
    /// back only what `work` did.
    async fn write<R, F>(&self, work: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Connection) -> Result<R, DbError> + Send + 'static,
        R: Send + 'static,
    {
        self.inner.writer.submit(work).await
    }

    /// Runs `work` on a read-only connection, off the async runtime.
    async fn read<R, F>(&self, work: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Connection) -> Result<R, DbError> + Send + 'static,
        R: Send + 'static,
    {
        self.inner.readers.run(work).await
    }

    /// The first row of a query, on a reader.
    async fn find<T, P>(
        &self,
        sql: &'static str,
        params: P,
        map: RowMap<T>,
    ) -> Result<Option<T>, StoreError>
    where
        T: Send + 'static,
        P: Params + Send + 'static,
    {
        self.read(move |c| optional(c, sql, params, map)).await
    }

    /// Every row of a query, on a reader.
    async fn list<T, P>(
        &self,
        sql: &'static str,
        params: P,
        map: RowMap<T>,
    ) -> Result<Vec<T>, StoreError>
    where
        T: Send + 'static,
        P: Params + Send + 'static,
    {
        self.read(move |c| all(c, sql, params, map)).await
    }

    /// Revokes, in one write job, every grant `select` lists by its one parameter `key`; returns
    /// their ids in the order listed.
    async fn revoke_listed(
        &self,
        select: &'static str,
        keys: &[&str],
        now: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        self.write(move |c| {
            let ids: Vec<String> = all(c, select, rusqlite::params_from_iter(keys), |row| {
                row.get(0)
            })?;
            for id in &ids {
                revoke_grant(c, id, now)?;
            }
            Ok(ids)
        })
        .await
    }

    /// One statement as one write job; returns how many rows it changed.
    async fn change<P>(&self, sql: &'static str, params: P) -> Result<usize, StoreError>
    where
        P: Params + Send + 'static,
    {
        self.write(move |c| execute(c, sql, params)).await
    }
}

fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(classify)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(classify)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(classify)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Internal(format!(
            "SQLite refused WAL mode (journal_mode is {mode})"
        )));
    }
    // A write is acknowledged only once it is on disk, so that no token is handed out that was
    // not stored durably (docs/security.md, "Durability"); group commit pays for the fsync.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(classify)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(classify)?;
    // Checkpoints are the checkpointer thread's, not the committing writer's.
    conn.pragma_update(None, "wal_autocheckpoint", 0)
        .map_err(classify)?;
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT_BYTES)
        .map_err(classify)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Until when a change stays in the feed (a revocation: as long as an access token it affects
/// could be unexpired; a client or user change: as long, after which a process that has not
/// read the feed finds a gap and resets its caches).
fn change_until(now: Timestamp) -> i64 {
    now.plus_secs(MAX_ACCESS_TOKEN_TTL_SECS).0
}

fn append_change(
    conn: &Connection,
    kind: ChangeKind,
    key: &str,
    until: i64,
) -> Result<(), DbError> {
    execute(conn, sql::CHANGE_INSERT, params![kind.name(), key, until])?;
    Ok(())
}

fn insert_events(conn: &Connection, events: &[Event]) -> Result<(), DbError> {
    let mut insert = conn.prepare_cached(sql::EVENT_INSERT)?;
    for event in events {
        insert.execute(params![
            event.at.0,
            event.kind.name(),
            event.client_id,
            event.user_id,
            event.grant_id,
            event.detail,
            event.source,
            event.user_agent,
        ])?;
    }
    Ok(())
}

/// Revokes a live grant: its refresh tokens stop working with it, its stored access tokens (of
/// the earlier format) are marked, and the change feed says so, for every process's access
/// tokens. Revoking again changes nothing; returns whether this call revoked it.
fn revoke_grant(conn: &Connection, grant_id: &str, now: Timestamp) -> Result<bool, DbError> {
    if execute(conn, sql::GRANT_REVOKE, params![now.0, grant_id])? == 0 {
        return Ok(false);
    }
    execute(conn, sql::ACCESS_REVOKE_FAMILY, params![now.0, grant_id])?;
    append_change(conn, ChangeKind::GrantRevoked, grant_id, change_until(now))?;
    Ok(true)
}

/// The approval limit: revokes the live refresh-token grants of `grant`'s user and client
/// beyond the newest `max`, `grant` itself (just issued) always counting as the newest; returns
/// the revoked ids, oldest first. `max` 0 is taken as 1: an issuance never revokes itself.
fn enforce_approval_limit(
    conn: &Connection,
    grant: &Grant,
    max: u32,
) -> Result<Vec<String>, DbError> {
    let others_kept = max.saturating_sub(1);
    let over_limit = params![grant.user_id, grant.client_id, grant.id, others_kept];
    let mut evicted: Vec<String> = all(conn, sql::GRANTS_OVER_LIMIT, over_limit, |row| row.get(0))?;
    evicted.reverse();
    for id in &evicted {
        revoke_grant(conn, id, grant.created_at)?;
    }
    Ok(evicted)
}

/// Deletes the grants `select` lists (at most a batch), each with what hangs off it; adds what
/// it deleted to `counts`. Returns whether fewer than the batch were listed.
fn purge_grants(
    conn: &Connection,
    select: &str,
    values: &[&dyn rusqlite::ToSql],
    batch: u32,
    counts: &mut PurgeCounts,
) -> Result<bool, DbError> {
    let ids: Vec<String> = all(conn, select, values, |row| row.get(0))?;
    for id in &ids {
        let [access_tokens, grant] = sql::PURGE_GRANT;
        counts.access_tokens += execute(conn, access_tokens, [id])? as u64;
        counts.grants += execute(conn, grant, [id])? as u64;
    }
    Ok(ids.len() < batch as usize)
}

/// What `events` returns when the filter's limit is 0.
const DEFAULT_EVENT_LIMIT: u32 = 1000;

#[async_trait]
impl Operations for SqliteStore {
    async fn ready(&self) -> Result<(), StoreError> {
        let version: u32 = self
            .read(|c| Ok(c.query_row("PRAGMA user_version", [], |row| row.get(0))?))
            .await?;
        if version == SCHEMA_VERSION {
            Ok(())
        } else {
            Err(StoreError::Unavailable(format!(
                "the database's schema is version {version}, this build's {SCHEMA_VERSION}"
            )))
        }
    }

    /// One round: each rule removes at most `plan.batch` rows (grants with their tokens), in one
    /// short transaction. The counts are exact for every kind of row: the tokens of a deleted
    /// grant are deleted, and counted, before the grant itself (not left to `ON DELETE
    /// CASCADE`, which SQLite does not count). A token that several rules match is counted
    /// once, by the first.
    async fn purge(&self, plan: &PurgePlan) -> Result<PurgeRound, StoreError> {
        let plan = plan.clone();
        self.write(move |c| {
            let batch = plan.batch.max(1);
            let mut complete = true;
            let mut rule = |statement: &str, values: &[&dyn rusqlite::ToSql]| {
                let removed = execute(c, statement, values)? as u64;
                complete &= removed < u64::from(batch);
                Ok::<u64, DbError>(removed)
            };
            let mut counts = PurgeCounts {
                access_tokens: rule(
                    sql::PURGE_ACCESS_TOKENS,
                    params![plan.access_expired_before.0, batch],
                )?,
                codes: rule(
                    sql::PURGE_CODES,
                    params![plan.codes_expired_before.0, batch],
                )?,
                events: rule(sql::PURGE_EVENTS, params![plan.events_before.0, batch])?,
                changes: rule(sql::PURGE_CHANGES, params![plan.changes_before.0, batch])?,
                ..PurgeCounts::default()
            };
            for (select, cut_off) in [
                (sql::PURGE_REVOKED_GRANTS, plan.revoked_before),
                (sql::PURGE_IDLE_GRANTS, plan.idle_expired_before),
            ] {
                complete &= purge_grants(c, select, params![cut_off.0, batch], batch, &mut counts)?;
            }
            for client in &plan.clients {
                let id = &client.client_id;
                let cut_offs = [
                    (sql::PURGE_EXPIRED_GRANTS, client.created_before),
                    (
                        sql::PURGE_ACCESS_ONLY_GRANTS,
                        Some(client.access_only_created_before),
                    ),
                ];
                for (select, cut_off) in cut_offs {
                    if let Some(cut_off) = cut_off {
                        complete &= purge_grants(
                            c,
                            select,
                            params![id, cut_off.0, batch],
                            batch,
                            &mut counts,
                        )?;
                    }
                }
            }
            Ok(PurgeRound { counts, complete })
        })
        .await
    }

    /// Counts by walking each table (SQLite keeps no row count), in time proportional to the
    /// rows, on a reader, so never in the writer's way: for operators and measurements, not per
    /// request.
    async fn row_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.list(sql::ROW_COUNTS, (), rows::row_count).await
    }

    /// Counted as [`Self::row_counts`] is, on a reader.
    async fn inventory(&self) -> Result<Inventory, StoreError> {
        Inventory::from_named(&self.list(sql::INVENTORY, (), rows::row_count).await?)
    }
}

#[async_trait]
impl Directory for SqliteStore {
    async fn insert_org(&self, org: &Org) -> Result<(), StoreError> {
        self.change(sql::ORG_INSERT, (org.id.clone(), org.name.clone()))
            .await
            .map(drop)
    }

    async fn default_org(&self) -> Result<Option<Org>, StoreError> {
        self.find(sql::ORG_FIRST, (), rows::org).await
    }

    async fn insert_user(&self, user: &User) -> Result<(), StoreError> {
        let values = (
            user.id.clone(),
            user.org_id.clone(),
            user.username.clone(),
            user.email.clone(),
            user.password_hash.clone(),
            user.disabled,
            user.created_at.0,
            user.admin,
            user.session_epoch,
        );
        self.change(sql::USER_INSERT, values).await.map(drop)
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        self.find(sql::USER_BY_ID, (id.to_owned(),), rows::user)
            .await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        self.find(sql::USER_BY_USERNAME, (username.to_owned(),), rows::user)
            .await
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        self.list(sql::USER_LIST, (), rows::user).await
    }

    async fn update_user(
        &self,
        user: &User,
        sessions: BrowserSessions,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let user = user.clone();
        let epoch_step = i64::from(sessions == BrowserSessions::End);
        self.write(move |c| {
            let values = params![
                user.email,
                user.password_hash,
                user.disabled,
                user.id,
                user.admin,
                epoch_step
            ];
            if execute(c, sql::USER_UPDATE, values)? == 0 {
                return Ok(false);
            }
            append_change(c, ChangeKind::UserChanged, &user.id, change_until(now))?;
            Ok(true)
        })
        .await
    }

    async fn end_sessions(&self, user_id: &str) -> Result<bool, StoreError> {
        let changed = self
            .change(sql::USER_END_SESSIONS, (user_id.to_owned(),))
            .await?;
        Ok(changed > 0)
    }

    async fn disable_user(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let user_id = user_id.to_owned();
        self.write(move |c| {
            if execute(c, sql::USER_DISABLE, [&user_id])? == 0 {
                return Ok(None);
            }
            append_change(c, ChangeKind::UserChanged, &user_id, change_until(now))?;
            let ids: Vec<String> = all(c, sql::GRANTS_LIVE_OF_USER, [&user_id], |row| row.get(0))?;
            for id in &ids {
                revoke_grant(c, id, now)?;
            }
            Ok(Some(ids))
        })
        .await
    }

    async fn insert_client(&self, client: &Client) -> Result<(), StoreError> {
        let values = rows::client_values(client)?;
        self.change(sql::CLIENT_INSERT, params_from_iter(values))
            .await
            .map(drop)
    }

    async fn client_by_id(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        self.find(sql::CLIENT_BY_ID, (client_id.to_owned(),), rows::client)
            .await
    }

    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        self.list(sql::CLIENT_LIST, (), rows::client).await
    }

    async fn update_client(&self, client: &Client, now: Timestamp) -> Result<bool, StoreError> {
        let mut values = rows::client_values(client)?;
        values.pop(); // created_at never changes
        let client = client.clone();
        self.write(move |c| {
            let before = optional(c, sql::CLIENT_IDLE_TERMS, [&client.client_id], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, Option<i64>>(2)?,
                ))
            })?;
            let Some((policy, ttl, cap)) = before else {
                return Ok(false);
            };
            execute(c, sql::CLIENT_UPDATE, params_from_iter(values))?;
            let idle_limit = |policy: &RefreshTokenPolicy, ttl: u64| {
                policy
                    .idle_secs()
                    .map(|idle| (idle.max(ttl) as i64).saturating_mul(1000))
            };
            let cap = cap.and_then(|secs| u64::try_from(secs).ok());
            let old = policy
                .parse::<RefreshTokenPolicy>()
                .ok()
                .and_then(|p| idle_limit(&effective_refresh_policy(p, cap), ttl.max(0) as u64));
            let new = idle_limit(
                &client.effective_refresh_policy(),
                client.access_token_ttl_secs,
            );
            if old != new {
                execute(c, sql::CLIENT_GRANTS_IDLE, params![client.client_id, new])?;
            }
            append_change(
                c,
                ChangeKind::ClientChanged,
                &client.client_id,
                change_until(now),
            )?;
            Ok(true)
        })
        .await
    }

    async fn delete_client(&self, client_id: &str, now: Timestamp) -> Result<bool, StoreError> {
        let client_id = client_id.to_owned();
        self.write(move |c| {
            if execute(c, sql::CLIENT_DELETE, [&client_id])? == 0 {
                return Ok(false);
            }
            append_change(c, ChangeKind::ClientChanged, &client_id, change_until(now))?;
            Ok(true)
        })
        .await
    }

    async fn approved_scope(
        &self,
        user_id: &str,
        client_id: &str,
    ) -> Result<Option<String>, StoreError> {
        self.find(
            sql::APPROVAL_SCOPE,
            (user_id.to_owned(), client_id.to_owned()),
            |row| row.get(0),
        )
        .await
    }

    async fn record_approval(
        &self,
        user_id: &str,
        client_id: &str,
        scope: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let values = (
            user_id.to_owned(),
            client_id.to_owned(),
            scope.to_owned(),
            now.0,
        );
        self.change(sql::APPROVAL_UPSERT, values).await.map(drop)
    }
}

#[async_trait]
impl Grants for SqliteStore {
    async fn insert_code(&self, code: &AuthCode) -> Result<(), StoreError> {
        let values = (
            code.code_hash,
            code.client_id.clone(),
            code.user_id.clone(),
            code.redirect_uri.clone(),
            code.scope.to_string(),
            code.code_challenge.clone(),
            code.created_at.0,
            code.expires_at.0,
            code.nonce.clone(),
            code.auth_time.map(|t| t.0),
            code.dpop_jkt.clone(),
        );
        self.change(sql::CODE_INSERT, values).await.map(drop)
    }

    async fn redeem_code(
        &self,
        code_hash: &Hash,
        now: Timestamp,
    ) -> Result<CodeRedemption, StoreError> {
        let code_hash = *code_hash;
        self.write(move |c| {
            if execute(c, sql::CODE_SPEND, params![now.0, code_hash])? > 0 {
                let code = optional(c, sql::CODE_BY_HASH, [code_hash], rows::code)?;
                return Ok(code.map_or(CodeRedemption::NotFound, |code| {
                    CodeRedemption::Redeemed(Box::new(code))
                }));
            }
            if execute(c, sql::CODE_PRESENTED_AGAIN, [code_hash])? == 0 {
                return Ok(CodeRedemption::NotFound);
            }
            let revoked_grant = optional(c, sql::CODE_GRANT, [code_hash], |row| {
                row.get::<_, Option<String>>(0)
            })?
            .flatten();
            if let Some(id) = &revoked_grant {
                revoke_grant(c, id, now)?;
            }
            Ok(CodeRedemption::AlreadyUsed { revoked_grant })
        })
        .await
    }

    async fn issue(&self, issuance: &Issuance) -> Result<IssueOutcome, StoreError> {
        let issuance = issuance.clone();
        self.write(move |c| {
            let Issuance {
                grant,
                refresh_token_hash,
                idle_expires_at,
                events,
                code_hash,
                max_live_grants,
            } = issuance;
            // A code presented again since its redemption issues nothing. The single writer
            // makes this check and the writes below one step.
            if let Some(code_hash) = code_hash {
                if optional(c, sql::CODE_MAY_ISSUE, [code_hash], |_| Ok(()))?.is_none() {
                    return Ok(IssueOutcome::CodePresentedAgain);
                }
            }
            execute(
                c,
                sql::GRANT_INSERT,
                params![
                    grant.id,
                    grant.client_id,
                    grant.user_id,
                    grant.org_id,
                    grant.scope.to_string(),
                    grant.created_at.0,
                    grant.last_used_at.0,
                    grant.revoked_at.map(|t| t.0),
                    grant.has_refresh_token,
                    grant.auth_time.map(|t| t.0),
                    grant.nonce,
                    grant.dpop_jkt,
                    refresh_token_hash,
                    idle_expires_at.map(|t| t.0),
                ],
            )?;
            if let Some(code_hash) = code_hash {
                execute(c, sql::CODE_LINK, params![grant.id, code_hash])?;
            }
            insert_events(c, &events)?;
            // Only an issuance with a refresh token adds a grant that counts toward the limit.
            let evicted = match (max_live_grants, refresh_token_hash) {
                (Some(max), Some(_)) => enforce_approval_limit(c, &grant, max)?,
                _ => Vec::new(),
            };
            Ok(IssueOutcome::Issued { evicted })
        })
        .await
    }

    async fn family(&self, grant_id: &str) -> Result<Option<Family>, StoreError> {
        self.find(sql::FAMILY_BY_ID, (grant_id.to_owned(),), rows::family)
            .await
    }

    async fn legacy_refresh_grant(&self, token_hash: &Hash) -> Result<Option<String>, StoreError> {
        self.find(sql::LEGACY_REFRESH_GRANT, (*token_hash,), |row| row.get(0))
            .await
    }

    async fn commit_refresh(&self, commit: &RefreshCommit) -> Result<RefreshOutcome, StoreError> {
        let commit = commit.clone();
        // Unguarded: the hot path. It refuses by returning Stale, before writing anything.
        self.inner
            .writer
            .submit_unguarded(move |c| {
                let RefreshCommit {
                    presented_hash,
                    grant_id,
                    successor_hash,
                    successor_jkt,
                    idle_expires_at,
                    record_use,
                    now,
                    event,
                } = commit;
                let idle = idle_expires_at.map(|t| t.0);
                // One conditional update decides, never a read then a write: of concurrent commits
                // of one token exactly one changes the row; the others are Stale and write nothing.
                let changed = match successor_hash {
                    Some(successor) => execute(
                        c,
                        sql::FAMILY_ROTATE,
                        params![
                            grant_id,
                            presented_hash,
                            successor,
                            now.0,
                            idle,
                            successor_jkt
                        ],
                    )?,
                    None if record_use => execute(
                        c,
                        sql::FAMILY_TOUCH,
                        params![grant_id, presented_hash, now.0, idle],
                    )?,
                    // Nothing on the grant changes: its event is written only if the grant
                    // would have been (a read of its row, no write).
                    None => {
                        let live: Option<i64> = optional(
                            c,
                            sql::FAMILY_IS_CURRENT,
                            params![grant_id, presented_hash],
                            |row| row.get(0),
                        )?;
                        usize::from(live.is_some())
                    }
                };
                if changed == 0 {
                    return Ok(RefreshOutcome::Stale);
                }
                insert_events(c, std::slice::from_ref(&event))?;
                Ok(RefreshOutcome::Committed)
            })
            .await
    }

    async fn revoke_grant(&self, grant_id: &str, now: Timestamp) -> Result<bool, StoreError> {
        let grant_id = grant_id.to_owned();
        self.write(move |c| revoke_grant(c, &grant_id, now)).await
    }

    async fn access_token(
        &self,
        token_hash: &Hash,
    ) -> Result<Option<AccessTokenRecord>, StoreError> {
        self.find(sql::ACCESS_BY_HASH, (*token_hash,), rows::access_token)
            .await
    }

    async fn revoke_access_token(
        &self,
        token_hash: &Hash,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        let token_hash = *token_hash;
        self.write(move |c| {
            execute(c, sql::ACCESS_REVOKE_ONE, params![now.0, token_hash])?;
            append_change(
                c,
                ChangeKind::AccessTokenRevoked,
                &hex_string(&token_hash),
                expires_at.0,
            )
        })
        .await
    }

    async fn grant(&self, grant_id: &str) -> Result<Option<Grant>, StoreError> {
        self.find(sql::GRANT_BY_ID, (grant_id.to_owned(),), rows::grant)
            .await
    }

    async fn grants_of_user(&self, user_id: &str) -> Result<Vec<Grant>, StoreError> {
        self.list(sql::GRANTS_OF_USER, (user_id.to_owned(),), rows::grant)
            .await
    }

    /// Returns the ids oldest first.
    async fn revoke_grants_of_user(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        self.revoke_listed(sql::GRANTS_LIVE_OF_USER, &[user_id], now)
            .await
    }

    /// Returns the ids oldest first.
    async fn revoke_grants_of_user_and_client(
        &self,
        user_id: &str,
        client_id: &str,
        now: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        self.revoke_listed(
            sql::GRANTS_LIVE_OF_USER_AND_CLIENT,
            &[user_id, client_id],
            now,
        )
        .await
    }

    /// Returns the ids oldest first.
    async fn revoke_grants_of_client(
        &self,
        client_id: &str,
        now: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        self.revoke_listed(sql::GRANTS_LIVE_OF_CLIENT, &[client_id], now)
            .await
    }

    async fn changes_since(&self, after_seq: i64, limit: u32) -> Result<Vec<Change>, StoreError> {
        self.list(sql::CHANGES_SINCE, (after_seq, limit), rows::change)
            .await
    }

    async fn live_changes(&self, now: Timestamp) -> Result<(Vec<Change>, i64), StoreError> {
        self.read(move |c| {
            let newest: i64 = c.query_row(sql::CHANGES_NEWEST, [], |row| row.get(0))?;
            let live = all(c, sql::CHANGES_LIVE, [now.0], rows::change)?;
            Ok((live, newest))
        })
        .await
    }
}

#[async_trait]
impl Usage for SqliteStore {
    /// One write job, one transaction: a prepared statement run once per delta.
    async fn record_usage(&self, deltas: &[UsageDelta]) -> Result<(), StoreError> {
        if deltas.is_empty() {
            return Ok(());
        }
        let deltas = deltas.to_vec();
        self.write(move |c| {
            let mut add = c.prepare_cached(sql::USAGE_ADD)?;
            for delta in &deltas {
                let uses = i64::try_from(delta.uses).unwrap_or(i64::MAX);
                add.execute(params![delta.grant_id, uses, delta.last_used_at.0])?;
            }
            Ok(())
        })
        .await
    }

    async fn app_usage(&self, now: Timestamp) -> Result<Vec<AppUsage>, StoreError> {
        self.list(sql::USAGE_APPS, (now.0,), rows::app_usage).await
    }

    async fn app_users_usage(
        &self,
        client_id: &str,
        after_user_id: Option<&str>,
        limit: u32,
        now: Timestamp,
    ) -> Result<Vec<UserUsage>, StoreError> {
        // Every user id sorts after the empty string.
        let after = after_user_id.unwrap_or_default().to_owned();
        self.list(
            sql::USAGE_APP_USERS,
            (client_id.to_owned(), after, now.0, limit),
            rows::user_usage,
        )
        .await
    }

    async fn user_tokens_usage(
        &self,
        client_id: &str,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Vec<TokenUsage>, StoreError> {
        self.list(
            sql::USAGE_USER_TOKENS,
            (client_id.to_owned(), user_id.to_owned(), now.0),
            rows::token_usage,
        )
        .await
    }
}

#[async_trait]
impl Audit for SqliteStore {
    async fn append_events(&self, events: &[Event]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let events = events.to_vec();
        self.write(move |c| insert_events(c, &events)).await
    }

    /// A limit of 0 reads at most 1000 events.
    async fn events(&self, filter: &EventFilter) -> Result<Vec<StoredEvent>, StoreError> {
        let limit = match filter.limit {
            0 => DEFAULT_EVENT_LIMIT,
            limit => limit,
        };
        let mut filter = filter.clone();
        // Events are not indexed by grant: a grant's are found among its user's. Those of a
        // grant already purged are looked for in the whole trail.
        if let (Some(grant_id), None) = (&filter.grant_id, &filter.user_id) {
            let grant_id = grant_id.clone();
            filter.user_id = self
                .find(sql::GRANT_USER, (grant_id,), |row| row.get(0))
                .await?;
        }
        let (query, values) = sql::events_query(&filter, limit);
        self.read(move |c| all(c, &query, params_from_iter(values), rows::event))
            .await
    }
}

#[async_trait]
impl Records for SqliteStore {
    async fn insert_note(&self, note: &Note) -> Result<(), StoreError> {
        let values = (
            note.id.clone(),
            note.owner_id.clone(),
            note.title.clone(),
            note.body.clone(),
            note.created_at.0,
            note.modified_at.0,
        );
        self.change(sql::NOTE_INSERT, values).await.map(drop)
    }

    async fn note(&self, id: &str) -> Result<Option<Note>, StoreError> {
        self.find(sql::NOTE_BY_ID, (id.to_owned(),), rows::note)
            .await
    }

    async fn list_notes(&self, owner_id: &str, limit: u32) -> Result<Vec<Note>, StoreError> {
        self.list(sql::NOTE_LIST, (owner_id.to_owned(), limit), rows::note)
            .await
    }

    async fn update_note(&self, note: &Note) -> Result<bool, StoreError> {
        let values = (
            note.title.clone(),
            note.body.clone(),
            note.modified_at.0,
            note.id.clone(),
        );
        Ok(self.change(sql::NOTE_UPDATE, values).await? > 0)
    }

    async fn delete_note(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.change(sql::NOTE_DELETE, (id.to_owned(),)).await? > 0)
    }
}

/// One SQLite file is one server process's: its proofs are the server's in-memory cache's to
/// remember (a shared file on a network filesystem is not a supported way to run several).
impl DpopProofs for SqliteStore {}

#[async_trait]
impl SigningKeys for SqliteStore {
    async fn insert_signing_key(&self, key: &SigningKey) -> Result<(), StoreError> {
        let values = (
            key.kid.clone(),
            key.alg.clone(),
            key.created_at.0,
            key.publish_at.0,
            key.sign_from.0,
            key.retire_at.map(|at| at.0),
            key.private_key.as_bytes().to_vec(),
        );
        self.change(sql::SIGNING_KEY_INSERT, values).await.map(drop)
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
        self.list(sql::SIGNING_KEY_LIST, (), rows::signing_key)
            .await
    }

    async fn retire_signing_key(
        &self,
        kid: &str,
        retire_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let values = (retire_at.0, kid.to_owned());
        Ok(self.change(sql::SIGNING_KEY_RETIRE, values).await? > 0)
    }
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
