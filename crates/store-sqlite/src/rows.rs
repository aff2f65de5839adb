//! Rows to records and back, and the few statement helpers every method uses.

use rusqlite::types::{Type, Value};
use rusqlite::{Connection, OptionalExtension, Params, Row};
use tessera_core::identity::ip_allowlist::IpAllowlist;
use tessera_core::model::{
    AccessTokenRecord, AuthCode, Change, ChangeKind, Client, ClientControls, DpopMode,
    DpopSettings, Event, EventKind, Family, Grant, Note, OpenIdSettings, Org, SigningAlg,
    StoredEvent, User,
};
use tessera_core::store::{AppUsage, StoreError, TokenUsage, UserUsage};
use tessera_core::time::Timestamp;
use tessera_core::tokens::signing_keys::{SealedPrivateKey, SigningKey};
use tessera_proto::Scope;

use crate::error::DbError;

fn malformed(index: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        index,
        Type::Text,
        format!("stored {what} is malformed").into(),
    )
}

fn timestamp(row: &Row<'_>, index: usize) -> rusqlite::Result<Timestamp> {
    row.get(index).map(Timestamp)
}

fn optional_timestamp(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<Timestamp>> {
    Ok(row.get::<_, Option<i64>>(index)?.map(Timestamp))
}

fn scope(row: &Row<'_>, index: usize) -> rusqlite::Result<Scope> {
    let text = row.get_ref(index)?.as_str()?;
    Scope::parse(text).ok_or_else(|| malformed(index, "scope"))
}

pub(crate) fn org(row: &Row<'_>) -> rusqlite::Result<Org> {
    Ok(Org {
        id: row.get(0)?,
        name: row.get(1)?,
    })
}

pub(crate) fn user(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        org_id: row.get(1)?,
        username: row.get(2)?,
        email: row.get(3)?,
        password_hash: row.get(4)?,
        disabled: row.get(5)?,
        created_at: timestamp(row, 6)?,
        admin: row.get(7)?,
        session_epoch: row.get(8)?,
    })
}

pub(crate) fn client(row: &Row<'_>) -> rusqlite::Result<Client> {
    let redirect_uris = serde_json::from_str(row.get_ref(3)?.as_str()?)
        .map_err(|_| malformed(3, "redirect URI list"))?;
    let refresh_token_policy = row
        .get_ref(5)?
        .as_str()?
        .parse()
        .map_err(|_| malformed(5, "refresh-token policy"))?;
    Ok(Client {
        client_id: row.get(0)?,
        name: row.get(1)?,
        secret_hash: row.get(2)?,
        redirect_uris,
        scopes: scope(row, 4)?,
        refresh_token_policy,
        access_token_ttl_secs: seconds(row, 6, "access-token lifetime")?,
        rotate_refresh_tokens: row.get(7)?,
        allow_user_agent_flow: row.get(8)?,
        refresh_retry_window_secs: seconds(row, 9, "retry window")?,
        openid: OpenIdSettings {
            id_token_validity_secs: seconds(row, 10, "ID-token validity")?,
            id_token_audiences: serde_json::from_str(row.get_ref(11)?.as_str()?)
                .map_err(|_| malformed(11, "ID-token audience list"))?,
            id_token_standard_claims: row.get(12)?,
            echo_nonce_on_refresh: row.get(13)?,
            id_token_alg: SigningAlg::from_name(row.get_ref(14)?.as_str()?)
                .ok_or_else(|| malformed(14, "ID-token algorithm"))?,
            jwt_access_tokens: row.get(15)?,
        },
        dpop: DpopSettings {
            mode: DpopMode::from_name(row.get_ref(16)?.as_str()?)
                .ok_or_else(|| malformed(16, "DPoP mode"))?,
            require_nonce: row.get(17)?,
        },
        controls: ClientControls {
            pkce_required: row.get(18)?,
            rotation_required: row.get(19)?,
            idle_cap_secs: row
                .get::<_, Option<i64>>(20)?
                .map(|secs| u64::try_from(secs).map_err(|_| malformed(20, "idle-limit cap")))
                .transpose()?,
            blocked: row.get(21)?,
            rotation_audit: row.get(22)?,
            ip_allowlist: IpAllowlist::from_stored(row.get_ref(23)?.as_str()?)
                .map_err(|_| malformed(23, "IP allowlist"))?,
        },
        created_at: timestamp(row, 24)?,
    })
}

/// A duration in seconds, stored as a non-negative INTEGER.
fn seconds(row: &Row<'_>, index: usize, what: &str) -> rusqlite::Result<u64> {
    let secs: i64 = row.get(index)?;
    u64::try_from(secs).map_err(|_| malformed(index, what))
}

/// A client's values in `client_columns!` order, as stored.
pub(crate) fn client_values(client: &Client) -> Result<Vec<Value>, StoreError> {
    let internal = |why: &str| StoreError::Internal(why.to_owned());
    let redirect_uris = serde_json::to_string(&client.redirect_uris)
        .map_err(|_| internal("cannot encode the redirect URI list"))?;
    let seconds = |secs: u64, what: &str| {
        i64::try_from(secs).map_err(|_| internal(&format!("the {what} is out of range")))
    };
    let ttl = seconds(client.access_token_ttl_secs, "access-token lifetime")?;
    let retry_window = seconds(client.refresh_retry_window_secs, "retry window")?;
    let openid = &client.openid;
    let id_token_validity = seconds(openid.id_token_validity_secs, "ID-token validity")?;
    let audiences = serde_json::to_string(&openid.id_token_audiences)
        .map_err(|_| internal("cannot encode the ID-token audience list"))?;
    let controls = &client.controls;
    let idle_cap = controls
        .idle_cap_secs
        .map(|cap| seconds(cap, "idle-limit cap"))
        .transpose()?;
    Ok(vec![
        client.client_id.clone().into(),
        client.name.clone().into(),
        client.secret_hash.map(|hash| hash.to_vec()).into(),
        redirect_uris.into(),
        client.scopes.to_string().into(),
        client.refresh_token_policy.to_string().into(),
        ttl.into(),
        client.rotate_refresh_tokens.into(),
        client.allow_user_agent_flow.into(),
        retry_window.into(),
        id_token_validity.into(),
        audiences.into(),
        openid.id_token_standard_claims.into(),
        openid.echo_nonce_on_refresh.into(),
        openid.id_token_alg.name().to_owned().into(),
        openid.jwt_access_tokens.into(),
        client.dpop.mode.as_str().to_owned().into(),
        client.dpop.require_nonce.into(),
        controls.pkce_required.into(),
        controls.rotation_required.into(),
        idle_cap.into(),
        controls.blocked.into(),
        controls.rotation_audit.into(),
        controls.ip_allowlist.to_stored().into(),
        client.created_at.0.into(),
    ])
}

pub(crate) fn code(row: &Row<'_>) -> rusqlite::Result<AuthCode> {
    Ok(AuthCode {
        code_hash: row.get(0)?,
        client_id: row.get(1)?,
        user_id: row.get(2)?,
        redirect_uri: row.get(3)?,
        scope: scope(row, 4)?,
        code_challenge: row.get(5)?,
        created_at: timestamp(row, 6)?,
        expires_at: timestamp(row, 7)?,
        nonce: row.get(8)?,
        auth_time: optional_timestamp(row, 9)?,
        dpop_jkt: row.get(10)?,
    })
}

/// A grant read from `grant_columns!` starting at column `at`.
fn grant_at(row: &Row<'_>, at: usize) -> rusqlite::Result<Grant> {
    Ok(Grant {
        id: row.get(at)?,
        client_id: row.get(at + 1)?,
        user_id: row.get(at + 2)?,
        org_id: row.get(at + 3)?,
        scope: scope(row, at + 4)?,
        created_at: timestamp(row, at + 5)?,
        last_used_at: timestamp(row, at + 6)?,
        revoked_at: optional_timestamp(row, at + 7)?,
        has_refresh_token: row.get(at + 8)?,
        auth_time: optional_timestamp(row, at + 9)?,
        nonce: row.get(at + 10)?,
        dpop_jkt: row.get(at + 11)?,
    })
}

pub(crate) fn grant(row: &Row<'_>) -> rusqlite::Result<Grant> {
    grant_at(row, 0)
}

/// A grant (`grant_columns!`) and its family's state: current and previous token, rotation
/// time.
pub(crate) fn family(row: &Row<'_>) -> rusqlite::Result<Family> {
    Ok(Family {
        grant: grant_at(row, 0)?,
        current: row.get(12)?,
        previous: row.get(13)?,
        rotated_at: optional_timestamp(row, 14)?,
        rotated_jkt: row.get(15)?,
    })
}

/// `seq, kind, key, until`.
pub(crate) fn change(row: &Row<'_>) -> rusqlite::Result<Change> {
    let kind = row.get_ref(1)?.as_str()?;
    Ok(Change {
        seq: row.get(0)?,
        kind: ChangeKind::from_name(kind).ok_or_else(|| malformed(1, "change kind"))?,
        key: row.get(2)?,
        until: timestamp(row, 3)?,
    })
}

pub(crate) fn access_token(row: &Row<'_>) -> rusqlite::Result<AccessTokenRecord> {
    Ok(AccessTokenRecord {
        token_hash: row.get(0)?,
        grant_id: row.get(1)?,
        client_id: row.get(2)?,
        user_id: row.get(3)?,
        org_id: row.get(4)?,
        scope: scope(row, 5)?,
        issued_at: timestamp(row, 6)?,
        expires_at: timestamp(row, 7)?,
        revoked_at: optional_timestamp(row, 8)?,
    })
}

pub(crate) fn note(row: &Row<'_>) -> rusqlite::Result<Note> {
    Ok(Note {
        id: row.get(0)?,
        owner_id: row.get(1)?,
        title: row.get(2)?,
        body: row.get(3)?,
        created_at: timestamp(row, 4)?,
        modified_at: timestamp(row, 5)?,
    })
}

/// `kid, alg, created_at, publish_at, sign_from, retire_at, private_key`.
pub(crate) fn signing_key(row: &Row<'_>) -> rusqlite::Result<SigningKey> {
    Ok(SigningKey {
        kid: row.get(0)?,
        alg: row.get(1)?,
        created_at: timestamp(row, 2)?,
        publish_at: timestamp(row, 3)?,
        sign_from: timestamp(row, 4)?,
        retire_at: optional_timestamp(row, 5)?,
        private_key: SealedPrivateKey::from_stored(row.get(6)?),
    })
}

/// `id, at, kind, client_id, user_id, grant_id, detail, source, user_agent`.
pub(crate) fn event(row: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    let kind = row.get_ref(2)?.as_str()?;
    Ok(StoredEvent {
        id: row.get(0)?,
        event: Event {
            at: timestamp(row, 1)?,
            kind: EventKind::from_name(kind).ok_or_else(|| malformed(2, "event kind"))?,
            client_id: row.get(3)?,
            user_id: row.get(4)?,
            grant_id: row.get(5)?,
            detail: row.get(6)?,
            source: row.get(7)?,
            user_agent: row.get(8)?,
        },
    })
}

/// `table, count`.
/// A count SQLite keeps as a signed integer, never negative.
fn count(row: &Row<'_>, index: usize) -> rusqlite::Result<u64> {
    let value: i64 = row.get(index)?;
    u64::try_from(value).map_err(|_| malformed(index, "count"))
}

/// `client_id, name, users, tokens, uses, last use` (`sql::USAGE_APPS`).
pub(crate) fn app_usage(row: &Row<'_>) -> rusqlite::Result<AppUsage> {
    Ok(AppUsage {
        client_id: row.get(0)?,
        name: row.get(1)?,
        user_count: count(row, 2)?,
        token_count: count(row, 3)?,
        use_count: count(row, 4)?,
        last_used_at: optional_timestamp(row, 5)?,
    })
}

/// `user_id, username, first use, last use, uses, tokens` (`sql::USAGE_APP_USERS`).
pub(crate) fn user_usage(row: &Row<'_>) -> rusqlite::Result<UserUsage> {
    Ok(UserUsage {
        user_id: row.get(0)?,
        username: row.get(1)?,
        first_used_at: timestamp(row, 2)?,
        last_used_at: timestamp(row, 3)?,
        use_count: count(row, 4)?,
        token_count: count(row, 5)?,
    })
}

/// `id, scope, created_at, last_used_at, use_count, has_refresh_token`
/// (`sql::USAGE_USER_TOKENS`).
pub(crate) fn token_usage(row: &Row<'_>) -> rusqlite::Result<TokenUsage> {
    Ok(TokenUsage {
        grant_id: row.get(0)?,
        scope: row.get(1)?,
        first_used_at: timestamp(row, 2)?,
        last_used_at: timestamp(row, 3)?,
        use_count: count(row, 4)?,
        has_refresh_token: row.get(5)?,
    })
}

pub(crate) fn row_count(row: &Row<'_>) -> rusqlite::Result<(String, u64)> {
    let count: i64 = row.get(1)?;
    Ok((
        row.get(0)?,
        u64::try_from(count).map_err(|_| malformed(1, "row count"))?,
    ))
}

/// Runs a statement; returns how many rows it changed.
pub(crate) fn execute(conn: &Connection, sql: &str, params: impl Params) -> Result<usize, DbError> {
    Ok(conn.prepare_cached(sql)?.execute(params)?)
}

/// The first row a query returns, if any.
pub(crate) fn optional<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    map: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Option<T>, DbError> {
    Ok(conn
        .prepare_cached(sql)?
        .query_row(params, map)
        .optional()?)
}

/// Every row a query returns.
pub(crate) fn all<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, DbError> {
    let mut statement = conn.prepare_cached(sql)?;
    let rows = statement
        .query_map(params, map)?
        .collect::<rusqlite::Result<Vec<T>>>()?;
    Ok(rows)
}
