//! Rows to records and back, and the few statement helpers every method uses: each prepares its
//! statement once per connection (`prepare_cached`) and runs it on a pooled connection or in a
//! transaction alike.

use deadpool_postgres::GenericClient;
use tessera_core::identity::ip_allowlist::IpAllowlist;
use tessera_core::model::{
    AccessTokenRecord, AuthCode, Change, ChangeKind, Client, ClientControls, DpopMode,
    DpopSettings, Event, EventKind, Family, Grant, Note, OpenIdSettings, Org, SigningAlg,
    StoredEvent, User,
};
use tessera_core::store::{AppUsage, StoreError, TokenUsage, UserUsage};
use tessera_core::time::Timestamp;
use tessera_core::tokens::hash::Hash;
use tessera_core::tokens::signing_keys::{SealedPrivateKey, SigningKey};
use tessera_proto::Scope;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::error::DbError;

/// Statement parameters, as the driver takes them.
pub(crate) type Params<'a> = [&'a (dyn ToSql + Sync)];

/// Reads one row into a record.
pub(crate) type RowMap<T> = fn(&Row) -> Result<T, DbError>;

fn malformed(what: &str) -> DbError {
    DbError::Store(StoreError::Internal(format!("stored {what} is malformed")))
}

fn timestamp(row: &Row, index: usize) -> Result<Timestamp, DbError> {
    Ok(Timestamp(row.try_get(index)?))
}

fn optional_timestamp(row: &Row, index: usize) -> Result<Option<Timestamp>, DbError> {
    Ok(row.try_get::<_, Option<i64>>(index)?.map(Timestamp))
}

fn hash(row: &Row, index: usize, what: &str) -> Result<Hash, DbError> {
    optional_hash(row, index, what)?.ok_or_else(|| malformed(what))
}

/// A 32-byte BYTEA (the schema checks the length; a row that breaks it is malformed, never
/// truncated or padded).
fn optional_hash(row: &Row, index: usize, what: &str) -> Result<Option<Hash>, DbError> {
    match row.try_get::<_, Option<&[u8]>>(index)? {
        None => Ok(None),
        Some(bytes) => Hash::try_from(bytes).map(Some).map_err(|_| malformed(what)),
    }
}

fn scope(row: &Row, index: usize) -> Result<Scope, DbError> {
    Scope::parse(row.try_get(index)?).ok_or_else(|| malformed("scope"))
}

/// A duration in seconds, stored as a non-negative BIGINT.
fn seconds(row: &Row, index: usize, what: &str) -> Result<u64, DbError> {
    u64::try_from(row.try_get::<_, i64>(index)?).map_err(|_| malformed(what))
}

pub(crate) fn org(row: &Row) -> Result<Org, DbError> {
    Ok(Org {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
    })
}

pub(crate) fn user(row: &Row) -> Result<User, DbError> {
    Ok(User {
        id: row.try_get(0)?,
        org_id: row.try_get(1)?,
        username: row.try_get(2)?,
        email: row.try_get(3)?,
        password_hash: row.try_get(4)?,
        disabled: row.try_get(5)?,
        created_at: timestamp(row, 6)?,
        admin: row.try_get(7)?,
        session_epoch: row.try_get(8)?,
    })
}

pub(crate) fn client(row: &Row) -> Result<Client, DbError> {
    let redirect_uris =
        serde_json::from_str(row.try_get(3)?).map_err(|_| malformed("redirect URI list"))?;
    let refresh_token_policy = row
        .try_get::<_, &str>(5)?
        .parse()
        .map_err(|_| malformed("refresh-token policy"))?;
    Ok(Client {
        client_id: row.try_get(0)?,
        name: row.try_get(1)?,
        secret_hash: optional_hash(row, 2, "client secret hash")?,
        redirect_uris,
        scopes: scope(row, 4)?,
        refresh_token_policy,
        access_token_ttl_secs: seconds(row, 6, "access-token lifetime")?,
        rotate_refresh_tokens: row.try_get(7)?,
        allow_user_agent_flow: row.try_get(8)?,
        refresh_retry_window_secs: seconds(row, 9, "retry window")?,
        openid: OpenIdSettings {
            id_token_validity_secs: seconds(row, 10, "ID-token validity")?,
            id_token_audiences: serde_json::from_str(row.try_get(11)?)
                .map_err(|_| malformed("ID-token audience list"))?,
            id_token_standard_claims: row.try_get(12)?,
            echo_nonce_on_refresh: row.try_get(13)?,
            id_token_alg: SigningAlg::from_name(row.try_get(14)?)
                .ok_or_else(|| malformed("ID-token algorithm"))?,
            jwt_access_tokens: row.try_get(15)?,
        },
        dpop: DpopSettings {
            mode: DpopMode::from_name(row.try_get(16)?).ok_or_else(|| malformed("DPoP mode"))?,
            require_nonce: row.try_get(17)?,
        },
        controls: ClientControls {
            pkce_required: row.try_get(18)?,
            rotation_required: row.try_get(19)?,
            idle_cap_secs: row
                .try_get::<_, Option<i64>>(20)?
                .map(|secs| u64::try_from(secs).map_err(|_| malformed("idle-limit cap")))
                .transpose()?,
            blocked: row.try_get(21)?,
            rotation_audit: row.try_get(22)?,
            ip_allowlist: IpAllowlist::from_stored(row.try_get(23)?)
                .map_err(|_| malformed("IP allowlist"))?,
        },
        created_at: timestamp(row, 24)?,
    })
}

/// A client's columns that are stored in another form than the record's: in
/// `client_columns!` order, they stand between the record's own fields.
#[derive(Debug)]
pub(crate) struct ClientValues<'c> {
    client: &'c Client,
    secret_hash: Option<&'c [u8]>,
    redirect_uris: String,
    scopes: String,
    refresh_token_policy: String,
    access_token_ttl_secs: i64,
    refresh_retry_window_secs: i64,
    id_token_validity_secs: i64,
    id_token_audiences: String,
    id_token_alg: &'static str,
    dpop_mode: &'static str,
    idle_cap_secs: Option<i64>,
    ip_allowlist: String,
}

impl<'c> ClientValues<'c> {
    pub(crate) fn new(client: &'c Client) -> Result<Self, StoreError> {
        let internal = |why: &str| StoreError::Internal(why.to_owned());
        let seconds = |secs: u64, what: &str| {
            i64::try_from(secs).map_err(|_| internal(&format!("the {what} is out of range")))
        };
        Ok(Self {
            client,
            secret_hash: client.secret_hash.as_ref().map(|hash| hash.as_slice()),
            redirect_uris: serde_json::to_string(&client.redirect_uris)
                .map_err(|_| internal("cannot encode the redirect URI list"))?,
            scopes: client.scopes.to_string(),
            refresh_token_policy: client.refresh_token_policy.to_string(),
            access_token_ttl_secs: seconds(client.access_token_ttl_secs, "access-token lifetime")?,
            refresh_retry_window_secs: seconds(client.refresh_retry_window_secs, "retry window")?,
            id_token_validity_secs: seconds(
                client.openid.id_token_validity_secs,
                "ID-token validity",
            )?,
            id_token_audiences: serde_json::to_string(&client.openid.id_token_audiences)
                .map_err(|_| internal("cannot encode the ID-token audience list"))?,
            id_token_alg: client.openid.id_token_alg.name(),
            dpop_mode: client.dpop.mode.as_str(),
            idle_cap_secs: client
                .controls
                .idle_cap_secs
                .map(|cap| seconds(cap, "idle-limit cap"))
                .transpose()?,
            ip_allowlist: client.controls.ip_allowlist.to_stored(),
        })
    }

    /// The values of `client_columns!`, in order: [`crate::sql::CLIENT_INSERT`]'s parameters,
    /// and [`crate::sql::CLIENT_UPDATE`]'s without the last.
    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); 25] {
        let client = self.client;
        [
            &client.client_id,
            &client.name,
            &self.secret_hash,
            &self.redirect_uris,
            &self.scopes,
            &self.refresh_token_policy,
            &self.access_token_ttl_secs,
            &client.rotate_refresh_tokens,
            &client.allow_user_agent_flow,
            &self.refresh_retry_window_secs,
            &self.id_token_validity_secs,
            &self.id_token_audiences,
            &client.openid.id_token_standard_claims,
            &client.openid.echo_nonce_on_refresh,
            &self.id_token_alg,
            &client.openid.jwt_access_tokens,
            &self.dpop_mode,
            &client.dpop.require_nonce,
            &client.controls.pkce_required,
            &client.controls.rotation_required,
            &self.idle_cap_secs,
            &client.controls.blocked,
            &client.controls.rotation_audit,
            &self.ip_allowlist,
            &client.created_at.0,
        ]
    }
}

pub(crate) fn code(row: &Row) -> Result<AuthCode, DbError> {
    Ok(AuthCode {
        code_hash: hash(row, 0, "code hash")?,
        client_id: row.try_get(1)?,
        user_id: row.try_get(2)?,
        redirect_uri: row.try_get(3)?,
        scope: scope(row, 4)?,
        code_challenge: row.try_get(5)?,
        created_at: timestamp(row, 6)?,
        expires_at: timestamp(row, 7)?,
        nonce: row.try_get(8)?,
        auth_time: optional_timestamp(row, 9)?,
        dpop_jkt: row.try_get(10)?,
    })
}

pub(crate) fn grant(row: &Row) -> Result<Grant, DbError> {
    Ok(Grant {
        id: row.try_get(0)?,
        client_id: row.try_get(1)?,
        user_id: row.try_get(2)?,
        org_id: row.try_get(3)?,
        scope: scope(row, 4)?,
        created_at: timestamp(row, 5)?,
        last_used_at: timestamp(row, 6)?,
        revoked_at: optional_timestamp(row, 7)?,
        has_refresh_token: row.try_get(8)?,
        auth_time: optional_timestamp(row, 9)?,
        nonce: row.try_get(10)?,
        dpop_jkt: row.try_get(11)?,
    })
}

/// A grant (`grant_columns!`) and its family's state: current and previous token, rotation
/// time.
pub(crate) fn family(row: &Row) -> Result<Family, DbError> {
    Ok(Family {
        grant: grant(row)?,
        current: optional_hash(row, 12, "refresh-token hash")?,
        previous: optional_hash(row, 13, "refresh-token hash")?,
        rotated_at: optional_timestamp(row, 14)?,
        rotated_jkt: row.try_get(15)?,
    })
}

/// `seq, kind, key, until`.
pub(crate) fn change(row: &Row) -> Result<Change, DbError> {
    Ok(Change {
        seq: row.try_get(0)?,
        kind: ChangeKind::from_name(row.try_get(1)?).ok_or_else(|| malformed("change kind"))?,
        key: row.try_get(2)?,
        until: timestamp(row, 3)?,
    })
}

pub(crate) fn access_token(row: &Row) -> Result<AccessTokenRecord, DbError> {
    Ok(AccessTokenRecord {
        token_hash: hash(row, 0, "access-token hash")?,
        grant_id: row.try_get(1)?,
        client_id: row.try_get(2)?,
        user_id: row.try_get(3)?,
        org_id: row.try_get(4)?,
        scope: scope(row, 5)?,
        issued_at: timestamp(row, 6)?,
        expires_at: timestamp(row, 7)?,
        revoked_at: optional_timestamp(row, 8)?,
    })
}

pub(crate) fn note(row: &Row) -> Result<Note, DbError> {
    Ok(Note {
        id: row.try_get(0)?,
        owner_id: row.try_get(1)?,
        title: row.try_get(2)?,
        body: row.try_get(3)?,
        created_at: timestamp(row, 4)?,
        modified_at: timestamp(row, 5)?,
    })
}

/// `kid, alg, created_at, publish_at, sign_from, retire_at, private_key`.
pub(crate) fn signing_key(row: &Row) -> Result<SigningKey, DbError> {
    Ok(SigningKey {
        kid: row.try_get(0)?,
        alg: row.try_get(1)?,
        created_at: timestamp(row, 2)?,
        publish_at: timestamp(row, 3)?,
        sign_from: timestamp(row, 4)?,
        retire_at: row.try_get::<_, Option<i64>>(5)?.map(Timestamp),
        private_key: SealedPrivateKey::from_stored(row.try_get(6)?),
    })
}

/// `id, at, kind, client_id, user_id, grant_id, detail, source, user_agent`.
pub(crate) fn event(row: &Row) -> Result<StoredEvent, DbError> {
    Ok(StoredEvent {
        id: row.try_get(0)?,
        event: Event {
            at: timestamp(row, 1)?,
            kind: EventKind::from_name(row.try_get(2)?).ok_or_else(|| malformed("event kind"))?,
            client_id: row.try_get(3)?,
            user_id: row.try_get(4)?,
            grant_id: row.try_get(5)?,
            detail: row.try_get(6)?,
            source: row.try_get(7)?,
            user_agent: row.try_get(8)?,
        },
    })
}

/// One event's values in `event_columns!` order, for a statement that writes a single event.
#[derive(Debug)]
pub(crate) struct EventValues<'e> {
    event: &'e Event,
    kind: &'static str,
}

impl<'e> EventValues<'e> {
    pub(crate) fn new(event: &'e Event) -> Self {
        Self {
            event,
            kind: event.kind.name(),
        }
    }

    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); 8] {
        let event = self.event;
        [
            &event.at.0,
            &self.kind,
            &event.client_id,
            &event.user_id,
            &event.grant_id,
            &event.detail,
            &event.source,
            &event.user_agent,
        ]
    }
}

/// A batch of events as one array per column, for [`crate::sql::EVENTS_INSERT`].
#[derive(Debug, Default)]
pub(crate) struct EventColumns<'e> {
    at: Vec<i64>,
    kind: Vec<&'static str>,
    client_id: Vec<Option<&'e str>>,
    user_id: Vec<Option<&'e str>>,
    grant_id: Vec<Option<&'e str>>,
    detail: Vec<&'e str>,
    source: Vec<Option<&'e str>>,
    user_agent: Vec<Option<&'e str>>,
}

impl<'e> EventColumns<'e> {
    pub(crate) fn new(events: &'e [Event]) -> Self {
        let mut columns = Self::default();
        for event in events {
            columns.at.push(event.at.0);
            columns.kind.push(event.kind.name());
            columns.client_id.push(event.client_id.as_deref());
            columns.user_id.push(event.user_id.as_deref());
            columns.grant_id.push(event.grant_id.as_deref());
            columns.detail.push(&event.detail);
            columns.source.push(event.source.as_deref());
            columns.user_agent.push(event.user_agent.as_deref());
        }
        columns
    }

    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); 8] {
        [
            &self.at,
            &self.kind,
            &self.client_id,
            &self.user_id,
            &self.grant_id,
            &self.detail,
            &self.source,
            &self.user_agent,
        ]
    }
}

/// A count, as a non-negative BIGINT.
fn count(row: &Row, index: usize) -> Result<u64, DbError> {
    u64::try_from(row.try_get::<_, i64>(index)?).map_err(|_| malformed("count"))
}

/// `client_id, name, users, tokens, uses, last use` (`sql::USAGE_APPS`).
pub(crate) fn app_usage(row: &Row) -> Result<AppUsage, DbError> {
    Ok(AppUsage {
        client_id: row.try_get(0)?,
        name: row.try_get(1)?,
        user_count: count(row, 2)?,
        token_count: count(row, 3)?,
        use_count: count(row, 4)?,
        last_used_at: optional_timestamp(row, 5)?,
    })
}

/// `user_id, username, first use, last use, uses, tokens` (`sql::USAGE_APP_USERS`).
pub(crate) fn user_usage(row: &Row) -> Result<UserUsage, DbError> {
    Ok(UserUsage {
        user_id: row.try_get(0)?,
        username: row.try_get(1)?,
        first_used_at: timestamp(row, 2)?,
        last_used_at: timestamp(row, 3)?,
        use_count: count(row, 4)?,
        token_count: count(row, 5)?,
    })
}

/// `id, scope, created_at, last_used_at, use_count, has_refresh_token`
/// (`sql::USAGE_USER_TOKENS`).
pub(crate) fn token_usage(row: &Row) -> Result<TokenUsage, DbError> {
    Ok(TokenUsage {
        grant_id: row.try_get(0)?,
        scope: row.try_get(1)?,
        first_used_at: timestamp(row, 2)?,
        last_used_at: timestamp(row, 3)?,
        use_count: count(row, 4)?,
        has_refresh_token: row.try_get(5)?,
    })
}

/// `table, count`.
pub(crate) fn row_count(row: &Row) -> Result<(String, u64), DbError> {
    let count: i64 = row.try_get(1)?;
    Ok((
        row.try_get(0)?,
        u64::try_from(count).map_err(|_| malformed("row count"))?,
    ))
}

/// The first column of a row.
pub(crate) fn first<T>(row: &Row) -> Result<T, DbError>
where
    T: for<'r> tokio_postgres::types::FromSql<'r>,
{
    Ok(row.try_get(0)?)
}

/// Runs a statement; returns how many rows it changed (or returned).
pub(crate) async fn execute(
    client: &impl GenericClient,
    sql: &str,
    params: &Params<'_>,
) -> Result<u64, DbError> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.execute(&statement, params).await?)
}

/// The one row a query returns, if any (more than one is an error).
pub(crate) async fn optional<T>(
    client: &impl GenericClient,
    sql: &str,
    params: &Params<'_>,
    map: RowMap<T>,
) -> Result<Option<T>, DbError> {
    let statement = client.prepare_cached(sql).await?;
    client
        .query_opt(&statement, params)
        .await?
        .as_ref()
        .map(map)
        .transpose()
}

/// Every row a query returns.
pub(crate) async fn all<T>(
    client: &impl GenericClient,
    sql: &str,
    params: &Params<'_>,
    map: RowMap<T>,
) -> Result<Vec<T>, DbError> {
    let statement = client.prepare_cached(sql).await?;
    client
        .query(&statement, params)
        .await?
        .iter()
        .map(map)
        .collect()
}
