//! Every statement the store runs, in one place: the catalogue a PostgreSQL backend mirrors.
//! Built with `concat!` at compile time, so that `prepare_cached` finds each by the same string
//! (the events query alone is assembled from fixed pieces, one statement per set of filters).
//! Parameters are numbered; the mappers in `rows.rs` read columns in the order listed here.

use rusqlite::types::Value;
use tessera_core::store::EventFilter;

// Column lists are macros because `concat!` takes only literals.
macro_rules! org_columns {
    () => {
        "id, name"
    };
}
macro_rules! user_columns {
    () => {
        "id, org_id, username, email, password_hash, disabled, created_at, admin, session_epoch"
    };
}
macro_rules! client_columns {
    () => {
        "client_id, name, secret_hash, redirect_uris, scopes, refresh_token_policy, \
         access_token_ttl_secs, rotate_refresh_tokens, allow_user_agent_flow, \
         refresh_retry_window_secs, id_token_validity_secs, id_token_audiences, \
         id_token_standard_claims, echo_nonce_on_refresh, id_token_alg, jwt_access_tokens, \
         dpop_mode, dpop_require_nonce, pkce_required, rotation_required, idle_cap_secs, \
         blocked, rotation_audit, ip_allowlist, created_at"
    };
}
macro_rules! code_columns {
    () => {
        "code_hash, client_id, user_id, redirect_uri, scope, code_challenge, created_at, expires_at, \
         nonce, auth_time, dpop_jkt"
    };
}
macro_rules! grant_columns {
    ($prefix:literal) => {
        concat!(
            $prefix,
            "id, ",
            $prefix,
            "client_id, ",
            $prefix,
            "user_id, ",
            $prefix,
            "org_id, ",
            $prefix,
            "scope, ",
            $prefix,
            "created_at, ",
            $prefix,
            "last_used_at, ",
            $prefix,
            "revoked_at, ",
            $prefix,
            "has_refresh_token, ",
            $prefix,
            "auth_time, ",
            $prefix,
            "nonce, ",
            $prefix,
            "dpop_jkt"
        )
    };
}
macro_rules! access_columns {
    () => {
        "token_hash, grant_id, client_id, user_id, org_id, scope, issued_at, expires_at, revoked_at"
    };
}
macro_rules! note_columns {
    () => {
        "id, owner_id, title, body, created_at, modified_at"
    };
}
pub(crate) const ORG_INSERT: &str =
    concat!("INSERT INTO orgs (", org_columns!(), ") VALUES (?1, ?2)");
/// The first-created organisation: insertion order is rowid order.
pub(crate) const ORG_FIRST: &str = concat!(
    "SELECT ",
    org_columns!(),
    " FROM orgs ORDER BY rowid LIMIT 1"
);

pub(crate) const USER_INSERT: &str = concat!(
    "INSERT INTO users (",
    user_columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
);
pub(crate) const USER_BY_ID: &str =
    concat!("SELECT ", user_columns!(), " FROM users WHERE id = ?1");
/// Case-insensitive, through `users_by_username_nocase`.
pub(crate) const USER_BY_USERNAME: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users WHERE username = ?1 COLLATE NOCASE"
);
pub(crate) const USER_LIST: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users ORDER BY created_at, id"
);
/// `?6` is what the session epoch goes up by: 1 to end the user's browser sessions, else 0.
pub(crate) const USER_UPDATE: &str = "UPDATE users SET email = ?1, password_hash = ?2, \
     disabled = ?3, admin = ?5, session_epoch = session_epoch + ?6 WHERE id = ?4";
pub(crate) const USER_END_SESSIONS: &str =
    "UPDATE users SET session_epoch = session_epoch + 1 WHERE id = ?1";
pub(crate) const USER_DISABLE: &str =
    "UPDATE users SET disabled = 1, session_epoch = session_epoch + 1 WHERE id = ?1";

pub(crate) const CLIENT_INSERT: &str = concat!(
    "INSERT INTO clients (",
    client_columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
     ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)"
);
pub(crate) const CLIENT_BY_ID: &str = concat!(
    "SELECT ",
    client_columns!(),
    " FROM clients WHERE client_id = ?1"
);
pub(crate) const CLIENT_LIST: &str = concat!(
    "SELECT ",
    client_columns!(),
    " FROM clients ORDER BY created_at, client_id"
);
/// Same parameter order as [`CLIENT_INSERT`], less `created_at`.
pub(crate) const CLIENT_UPDATE: &str = "UPDATE clients SET name = ?2, secret_hash = ?3, redirect_uris = ?4, \
     scopes = ?5, refresh_token_policy = ?6, access_token_ttl_secs = ?7, rotate_refresh_tokens = ?8, \
     allow_user_agent_flow = ?9, refresh_retry_window_secs = ?10, id_token_validity_secs = ?11, \
     id_token_audiences = ?12, id_token_standard_claims = ?13, echo_nonce_on_refresh = ?14, \
     id_token_alg = ?15, jwt_access_tokens = ?16, dpop_mode = ?17, dpop_require_nonce = ?18, \
     pkce_required = ?19, rotation_required = ?20, idle_cap_secs = ?21, blocked = ?22, \
     rotation_audit = ?23, ip_allowlist = ?24 WHERE client_id = ?1";
/// Codes, grants (with their refresh and access tokens) and approvals go with the client through
/// the schema's `ON DELETE CASCADE`.
pub(crate) const CLIENT_DELETE: &str = "DELETE FROM clients WHERE client_id = ?1";

pub(crate) const APPROVAL_SCOPE: &str =
    "SELECT scope FROM approvals WHERE user_id = ?1 AND client_id = ?2";
pub(crate) const APPROVAL_UPSERT: &str =
    "INSERT INTO approvals (user_id, client_id, scope, updated_at) \
     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (user_id, client_id) \
     DO UPDATE SET scope = excluded.scope, updated_at = excluded.updated_at";

pub(crate) const CODE_INSERT: &str = concat!(
    "INSERT INTO auth_codes (",
    code_columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
);
/// The redemption itself: of concurrent attempts only one changes the row.
pub(crate) const CODE_SPEND: &str =
    "UPDATE auth_codes SET used_at = ?1 WHERE code_hash = ?2 AND used_at IS NULL";
/// A later presentation of a spent code, recorded for the issuance that may still be on its way.
pub(crate) const CODE_PRESENTED_AGAIN: &str =
    "UPDATE auth_codes SET presented_again = 1 WHERE code_hash = ?1";
/// Whether an issuance may link code ?1: it exists and was not presented again.
pub(crate) const CODE_MAY_ISSUE: &str =
    "SELECT 1 FROM auth_codes WHERE code_hash = ?1 AND presented_again = 0";
pub(crate) const CODE_LINK: &str = "UPDATE auth_codes SET grant_id = ?1 WHERE code_hash = ?2";
pub(crate) const CODE_BY_HASH: &str = concat!(
    "SELECT ",
    code_columns!(),
    " FROM auth_codes WHERE code_hash = ?1"
);
pub(crate) const CODE_GRANT: &str = "SELECT grant_id FROM auth_codes WHERE code_hash = ?1";

pub(crate) const GRANT_INSERT: &str = concat!(
    "INSERT INTO grants (",
    grant_columns!(""),
    ", refresh_hash, idle_expires_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
);
/// A grant with its family's state: `grant_columns!`, then the current and previous token,
/// when the previous was rotated out, and the key that rotation's access token was bound to.
pub(crate) const FAMILY_BY_ID: &str = concat!(
    "SELECT ",
    grant_columns!(""),
    ", refresh_hash, previous_hash, rotated_at, rotated_jkt FROM grants WHERE id = ?1"
);
pub(crate) const LEGACY_REFRESH_GRANT: &str =
    "SELECT grant_id FROM legacy_refresh_tokens WHERE token_hash = ?1";
pub(crate) const GRANT_USER: &str = "SELECT user_id FROM grants WHERE id = ?1";
pub(crate) const GRANT_BY_ID: &str =
    concat!("SELECT ", grant_columns!(""), " FROM grants WHERE id = ?1");
pub(crate) const GRANTS_OF_USER: &str = concat!(
    "SELECT ",
    grant_columns!(""),
    " FROM grants WHERE user_id = ?1 ORDER BY created_at DESC, id DESC"
);
pub(crate) const GRANTS_LIVE_OF_USER: &str = "SELECT id FROM grants \
     WHERE user_id = ?1 AND revoked_at IS NULL ORDER BY created_at, id";
pub(crate) const GRANTS_LIVE_OF_USER_AND_CLIENT: &str = "SELECT id FROM grants \
     WHERE user_id = ?1 AND client_id = ?2 AND revoked_at IS NULL ORDER BY created_at, id";
pub(crate) const GRANTS_LIVE_OF_CLIENT: &str = "SELECT id FROM grants \
     WHERE client_id = ?1 AND revoked_at IS NULL ORDER BY created_at, id";
/// The approval limit: the live refresh-token grants of user ?1 for client ?2 beyond the newest
/// ?4, newest first, leaving out the grant being issued (?3), which is the newest whatever its
/// timestamp (two issuances may share a millisecond).
pub(crate) const GRANTS_OVER_LIMIT: &str = "SELECT id FROM grants \
     WHERE user_id = ?1 AND client_id = ?2 AND revoked_at IS NULL AND has_refresh_token = 1 \
     AND id <> ?3 ORDER BY created_at DESC, id DESC LIMIT -1 OFFSET ?4";
/// A rotation of grant ?1: successor ?3 becomes current and the presented token ?2 the previous,
/// at ?4, its access token bound to key ?6 (or none) — only if ?2 is still current and the
/// grant live. One row, found by its primary key; no index changes unless the grant has an idle
/// expiry (?5).
pub(crate) const FAMILY_ROTATE: &str = "UPDATE grants SET previous_hash = refresh_hash, \
     refresh_hash = ?3, rotated_at = ?4, last_used_at = ?4, idle_expires_at = ?5, \
     rotated_jkt = ?6, use_count = use_count + 1 WHERE id = ?1 AND refresh_hash = ?2 AND revoked_at IS NULL";
/// A refresh without rotation: records (and counts) the use at ?3 (and idle expiry ?4), only if ?2 is still
/// grant ?1's current token and the grant live.
pub(crate) const FAMILY_TOUCH: &str = "UPDATE grants SET last_used_at = ?3, idle_expires_at = ?4, \
     use_count = use_count + 1 WHERE id = ?1 AND refresh_hash = ?2 AND revoked_at IS NULL";
/// Whether ?2 is grant ?1's current token and the grant live (a refresh that writes no row).
pub(crate) const FAMILY_IS_CURRENT: &str = "SELECT 1 FROM grants \
     WHERE id = ?1 AND refresh_hash = ?2 AND revoked_at IS NULL";
/// Each revocation statement touches only what is still live, so that revoking again keeps the
/// first revocation's times.
pub(crate) const GRANT_REVOKE: &str = "UPDATE grants SET revoked_at = ?1 \
     WHERE id = ?2 AND revoked_at IS NULL";

pub(crate) const ACCESS_BY_HASH: &str = concat!(
    "SELECT ",
    access_columns!(),
    " FROM access_tokens WHERE token_hash = ?1"
);
pub(crate) const ACCESS_REVOKE_FAMILY: &str =
    "UPDATE access_tokens SET revoked_at = ?1 WHERE grant_id = ?2 AND revoked_at IS NULL";
/// Matches a known token even when already revoked (it is known), keeping the first time.
pub(crate) const ACCESS_REVOKE_ONE: &str =
    "UPDATE access_tokens SET revoked_at = coalesce(revoked_at, ?1) WHERE token_hash = ?2";

pub(crate) const CHANGE_INSERT: &str = "INSERT INTO changes (kind, key, until) VALUES (?1, ?2, ?3)";
pub(crate) const CHANGES_SINCE: &str =
    "SELECT seq, kind, key, until FROM changes WHERE seq > ?1 ORDER BY seq LIMIT ?2";
/// In no particular order: what is in force is applied whole.
pub(crate) const CHANGES_LIVE: &str = "SELECT seq, kind, key, until FROM changes WHERE until > ?1";
/// The newest sequence number ever given, even if its entry was purged.
pub(crate) const CHANGES_NEWEST: &str =
    "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'changes'), 0)";
/// What a client's idle expiry depends on, before an update changes it.
pub(crate) const CLIENT_IDLE_TERMS: &str =
    "SELECT refresh_token_policy, access_token_ttl_secs, idle_cap_secs FROM clients \
     WHERE client_id = ?1";
/// The idle expiry of client ?1's grants, after its policy changed: ?2 is the new limit in
/// milliseconds (NULL: none).
pub(crate) const CLIENT_GRANTS_IDLE: &str = "UPDATE grants SET idle_expires_at = \
     CASE WHEN ?2 IS NULL THEN NULL ELSE last_used_at + ?2 END WHERE client_id = ?1";

pub(crate) const EVENT_INSERT: &str = "INSERT INTO events \
     (at, kind, client_id, user_id, grant_id, detail, source, user_agent) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

/// The events after `filter.after_id` matching its filters, in id order (or newest first), and
/// their parameters.
/// Only the filters present become terms, so that each combination is a plain statement whose
/// plan uses that filter's index (an `?n IS NULL OR column = ?n` term would defeat it); there are
/// one statement per combination
/// of filters (`since` adds an `at` term), each prepared once.
pub(crate) fn events_query(filter: &EventFilter, limit: u32) -> (String, Vec<Value>) {
    let mut sql = String::from(
        "SELECT id, at, kind, client_id, user_id, grant_id, detail, source, user_agent \
         FROM events WHERE id > ?1",
    );
    let mut values = vec![Value::from(filter.after_id)];
    let terms = [
        ("user_id", &filter.user_id),
        ("client_id", &filter.client_id),
        ("grant_id", &filter.grant_id),
    ];
    let kind = filter.kind.map(|kind| kind.name().to_owned());
    for (column, value) in terms.into_iter().chain([("kind", &kind)]) {
        if let Some(value) = value {
            values.push(Value::from(value.clone()));
            sql.push_str(&format!(" AND {column} = ?{}", values.len()));
        }
    }
    if let Some(since) = filter.since {
        values.push(Value::from(since.0));
        sql.push_str(&format!(" AND at >= ?{}", values.len()));
    }
    values.push(Value::from(limit));
    let order = if filter.newest_first { "DESC" } else { "ASC" };
    sql.push_str(&format!(" ORDER BY id {order} LIMIT ?{}", values.len()));
    (sql, values)
}

// Housekeeping, in rounds: each statement removes at most ?2 (or ?3) rows, chosen through an
// index on its cut-off; see `tests::statements_use_their_indexes`. (SQLite has no `DELETE …
// LIMIT` by default, hence the keyed subquery.)
/// Access tokens of the earlier, stored format.
pub(crate) const PURGE_ACCESS_TOKENS: &str = "DELETE FROM access_tokens WHERE token_hash IN \
     (SELECT token_hash FROM access_tokens WHERE expires_at < ?1 LIMIT ?2)";
pub(crate) const PURGE_CODES: &str = "DELETE FROM auth_codes WHERE code_hash IN \
     (SELECT code_hash FROM auth_codes WHERE expires_at < ?1 LIMIT ?2)";
/// The oldest ?2 events (ids follow time), of those the ones older than ?1. After the clock was
/// stepped back, an event stamped later than the ones behind it holds them back only until it is
/// old enough itself. Ids are dense from the oldest: events are deleted only from the front.
pub(crate) const PURGE_EVENTS: &str = "DELETE FROM events \
     WHERE id < (SELECT min(id) FROM events) + ?2 AND at < ?1";
pub(crate) const PURGE_CHANGES: &str =
    "DELETE FROM changes WHERE seq IN (SELECT seq FROM changes WHERE until < ?1 LIMIT ?2)";
/// The grants one purge rule removes, at most a batch per round; each is then deleted with what
/// hangs off it by [`PURGE_GRANT`], children first so that every count is exact. Codes linked
/// to them are kept, unlinked, by `ON DELETE SET NULL`.
/// Grants revoked before ?1.
pub(crate) const PURGE_REVOKED_GRANTS: &str =
    "SELECT id FROM grants WHERE revoked_at IS NOT NULL AND revoked_at < ?1 LIMIT ?2";
/// Grants whose idle expiry is before ?1.
pub(crate) const PURGE_IDLE_GRANTS: &str = "SELECT id FROM grants \
     WHERE idle_expires_at IS NOT NULL AND idle_expires_at < ?1 LIMIT ?2";
/// Grants of client ?1 created before ?2 (past the policy's lifetime).
pub(crate) const PURGE_EXPIRED_GRANTS: &str =
    "SELECT id FROM grants WHERE client_id = ?1 AND created_at < ?2 LIMIT ?3";
/// Grants of client ?1 without a refresh token, created before ?2.
pub(crate) const PURGE_ACCESS_ONLY_GRANTS: &str = "SELECT id FROM grants \
     WHERE client_id = ?1 AND has_refresh_token = 0 AND created_at < ?2 LIMIT ?3";
/// Deletes grant ?1 with its stored access tokens (its legacy refresh-token rows go by
/// `ON DELETE CASCADE`), then the grant.
pub(crate) const PURGE_GRANT: [&str; 2] = [
    "DELETE FROM access_tokens WHERE grant_id = ?1",
    "DELETE FROM grants WHERE id = ?1",
];

/// Every table and its row count, in schema order.
/// `Inventory`'s counts, by its names.
pub(crate) const INVENTORY: &str = "\
     SELECT 'clients', count(*) FROM clients UNION ALL \
     SELECT 'users', count(*) FROM users UNION ALL \
     SELECT 'live_grants', count(*) FROM grants WHERE revoked_at IS NULL UNION ALL \
     SELECT 'live_refresh_tokens', count(*) FROM grants \
         WHERE revoked_at IS NULL AND has_refresh_token = 1 UNION ALL \
     SELECT 'revoked_refresh_tokens', count(*) FROM grants \
         WHERE revoked_at IS NOT NULL AND has_refresh_token = 1 UNION ALL \
     SELECT 'events', count(*) FROM events";

pub(crate) const ROW_COUNTS: &str = "\
     SELECT 'orgs', count(*) FROM orgs UNION ALL \
     SELECT 'users', count(*) FROM users UNION ALL \
     SELECT 'clients', count(*) FROM clients UNION ALL \
     SELECT 'approvals', count(*) FROM approvals UNION ALL \
     SELECT 'auth_codes', count(*) FROM auth_codes UNION ALL \
     SELECT 'grants', count(*) FROM grants UNION ALL \
     SELECT 'legacy_refresh_tokens', count(*) FROM legacy_refresh_tokens UNION ALL \
     SELECT 'access_tokens', count(*) FROM access_tokens UNION ALL \
     SELECT 'notes', count(*) FROM notes UNION ALL \
     SELECT 'signing_keys', count(*) FROM signing_keys UNION ALL \
     SELECT 'events', count(*) FROM events UNION ALL \
     SELECT 'changes', count(*) FROM changes";

pub(crate) const NOTE_INSERT: &str = concat!(
    "INSERT INTO notes (",
    note_columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
);
pub(crate) const NOTE_BY_ID: &str =
    concat!("SELECT ", note_columns!(), " FROM notes WHERE id = ?1");
pub(crate) const NOTE_LIST: &str = concat!(
    "SELECT ",
    note_columns!(),
    " FROM notes WHERE owner_id = ?1 ORDER BY created_at DESC, id DESC LIMIT ?2"
);
pub(crate) const NOTE_UPDATE: &str =
    "UPDATE notes SET title = ?1, body = ?2, modified_at = ?3 WHERE id = ?4";
pub(crate) const NOTE_DELETE: &str = "DELETE FROM notes WHERE id = ?1";

macro_rules! signing_key_columns {
    () => {
        "kid, alg, created_at, publish_at, sign_from, retire_at, private_key"
    };
}
pub(crate) const SIGNING_KEY_INSERT: &str = concat!(
    "INSERT INTO signing_keys (",
    signing_key_columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
);
pub(crate) const SIGNING_KEY_LIST: &str = concat!(
    "SELECT ",
    signing_key_columns!(),
    " FROM signing_keys ORDER BY created_at, kid"
);
pub(crate) const SIGNING_KEY_RETIRE: &str = "UPDATE signing_keys SET retire_at = ?1 WHERE kid = ?2";

// OAuth Usage (docs/usage.md). A grant is listed while live: not revoked (which the partial
// index grants_by_client_user implies) and not past its idle expiry.

/// Uses the usage ledger coalesced: ?2 more uses of grant ?1, its last use the later of its own
/// and ?3.
pub(crate) const USAGE_ADD: &str = "UPDATE grants SET use_count = use_count + ?2, \
     last_used_at = max(last_used_at, ?3) WHERE id = ?1";
/// Every client with the counts of its live grants at ?1: one pass over the grants grouped by
/// client, joined to the clients (those without a grant get zeros).
pub(crate) const USAGE_APPS: &str = "SELECT c.client_id, c.name, \
     coalesce(u.users, 0), coalesce(u.tokens, 0), coalesce(u.uses, 0), u.last_used \
     FROM clients c LEFT JOIN (SELECT client_id, count(DISTINCT user_id) AS users, \
     count(*) AS tokens, sum(use_count) AS uses, max(last_used_at) AS last_used FROM grants \
     WHERE revoked_at IS NULL AND (idle_expires_at IS NULL OR idle_expires_at > ?1) \
     GROUP BY client_id) u ON u.client_id = c.client_id ORDER BY c.client_id";
/// A page of client ?1's users after user id ?2 ('' for the first page) with a live grant at ?3,
/// at most ?4: read in the order of grants_by_client_user, grouped as read, so a page deep in
/// the keyset costs what the first does.
pub(crate) const USAGE_APP_USERS: &str = "SELECT g.user_id, u.username, min(g.created_at), \
     max(g.last_used_at), sum(g.use_count), count(*) \
     FROM grants g INDEXED BY grants_by_client_user JOIN users u ON u.id = g.user_id \
     WHERE g.client_id = ?1 AND g.user_id > ?2 AND g.revoked_at IS NULL \
     AND (g.idle_expires_at IS NULL OR g.idle_expires_at > ?3) \
     GROUP BY g.user_id ORDER BY g.user_id LIMIT ?4";
/// User ?2's live grants of client ?1 at ?3, oldest first.
pub(crate) const USAGE_USER_TOKENS: &str = "SELECT id, scope, created_at, last_used_at, \
     use_count, has_refresh_token FROM grants \
     WHERE client_id = ?1 AND user_id = ?2 AND revoked_at IS NULL \
     AND (idle_expires_at IS NULL OR idle_expires_at > ?3) ORDER BY created_at, id";

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;

    /// SQLite's plan for `statement`, one step a line.
    fn plan(conn: &Connection, statement: &str) -> Vec<String> {
        let mut explain = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {statement}"))
            .unwrap();
        // Unbound parameters are fine for planning; `raw_query` does not insist on them.
        let mut rows = explain.raw_query();
        let mut steps = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            steps.push(row.get::<_, String>(3).unwrap());
        }
        steps
    }

    /// Every statement that runs per request, and every housekeeping statement, finds its rows
    /// through an index: none scans a table, so its cost does not grow with the number of stored
    /// tokens. The plans are printed for the record (`--nocapture`).
    #[test]
    fn statements_use_their_indexes() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::migrate(&mut conn).unwrap();
        let mut statements = vec![
            ("family lookup", FAMILY_BY_ID.to_owned()),
            ("grant's user", GRANT_USER.to_owned()),
            ("legacy refresh lookup", LEGACY_REFRESH_GRANT.to_owned()),
            ("rotate", FAMILY_ROTATE.to_owned()),
            ("refresh without rotation", FAMILY_TOUCH.to_owned()),
            (
                "refresh without a recorded use",
                FAMILY_IS_CURRENT.to_owned(),
            ),
            ("changes since", CHANGES_SINCE.to_owned()),
            ("live changes", CHANGES_LIVE.to_owned()),
            (
                "client's grants' idle expiry",
                CLIENT_GRANTS_IDLE.to_owned(),
            ),
            ("purge changes", PURGE_CHANGES.to_owned()),
            ("access token lookup", ACCESS_BY_HASH.to_owned()),
            ("redeem code", CODE_SPEND.to_owned()),
            ("code presented again", CODE_PRESENTED_AGAIN.to_owned()),
            ("code may issue", CODE_MAY_ISSUE.to_owned()),
            ("link code", CODE_LINK.to_owned()),
            ("user by username", USER_BY_USERNAME.to_owned()),
            ("approval limit", GRANTS_OVER_LIMIT.to_owned()),
            ("revoke grant", GRANT_REVOKE.to_owned()),
            (
                "revoke family's access tokens",
                ACCESS_REVOKE_FAMILY.to_owned(),
            ),
            ("grants of user", GRANTS_OF_USER.to_owned()),
            ("live grants of user", GRANTS_LIVE_OF_USER.to_owned()),
            ("live grants of client", GRANTS_LIVE_OF_CLIENT.to_owned()),
            ("delete client, cascading", CLIENT_DELETE.to_owned()),
            ("purge access tokens", PURGE_ACCESS_TOKENS.to_owned()),
            ("purge codes", PURGE_CODES.to_owned()),
            ("purge events", PURGE_EVENTS.to_owned()),
        ];
        for (name, select) in [
            ("revoked", PURGE_REVOKED_GRANTS),
            ("idle", PURGE_IDLE_GRANTS),
            ("expired", PURGE_EXPIRED_GRANTS),
            ("access-only", PURGE_ACCESS_ONLY_GRANTS),
        ] {
            statements.push((name, select.to_owned()));
        }
        for delete in PURGE_GRANT {
            statements.push(("purge one grant", delete.to_owned()));
        }
        let some = || Some(String::new());
        for user_id in [None, some()] {
            for client_id in [None, some()] {
                for grant_id in [None, some()] {
                    let filter = EventFilter {
                        user_id: user_id.clone(),
                        client_id: client_id.clone(),
                        grant_id,
                        ..EventFilter::default()
                    };
                    statements.push(("events", events_query(&filter, 10).0));
                }
            }
        }
        // The rotation audit summary: a client's events of one kind over the last days.
        let summary = EventFilter {
            client_id: some(),
            kind: Some(tessera_core::model::EventKind::RotationAudit),
            since: Some(tessera_core::time::Timestamp(0)),
            newest_first: true,
            ..EventFilter::default()
        };
        statements.push(("rotation audit summary", events_query(&summary, 10).0));
        for (name, statement) in statements {
            let steps = plan(&conn, &statement);
            eprintln!("{name}: {statement}\n    {}", steps.join("\n    "));
            assert!(!steps.is_empty(), "{name}: no plan");
            for step in steps {
                assert!(!step.starts_with("SCAN"), "{name} scans: {step}");
            }
        }
    }
}
