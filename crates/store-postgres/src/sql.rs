//! Every statement the store runs, in one place: the catalogue of `store-sqlite/src/sql.rs`, in
//! PostgreSQL's words. Built with `concat!` at compile time, so that `prepare_cached` finds each
//! by the same string (the events query alone is assembled from fixed pieces, one statement per
//! set of filters). The mappers in `rows.rs` read columns in the order listed here.
//!
//! Where SQLite orders by a text id, the order is spelled `COLLATE "C"`: bytewise, as SQLite's
//! BINARY collation, whatever the database's locale.

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
    () => {
        "id, client_id, user_id, org_id, scope, created_at, last_used_at, revoked_at, \
         has_refresh_token, auth_time, nonce, dpop_jkt"
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
macro_rules! event_columns {
    () => {
        "at, kind, client_id, user_id, grant_id, detail, source, user_agent"
    };
}
/// One event's values as parameters `$n` … `$n+7`, in `event_columns!` order, typed so that
/// they need no context (they stand in a SELECT list).
macro_rules! event_values {
    ($a:literal, $b:literal, $c:literal, $d:literal, $e:literal, $f:literal, $g:literal, $h:literal) => {
        concat!(
            "$",
            $a,
            "::BIGINT, $",
            $b,
            "::TEXT, $",
            $c,
            "::TEXT, $",
            $d,
            "::TEXT, $",
            $e,
            "::TEXT, $",
            $f,
            "::TEXT, $",
            $g,
            "::TEXT, $",
            $h,
            "::TEXT"
        )
    };
}

/// The applied schema version (`/readyz`).
pub(crate) const SCHEMA_VERSION_READ: &str = "SELECT version FROM schema_version";
/// The database's clock, in milliseconds since the epoch: `clock_timestamp()` moves during a
/// transaction, `now()` does not.
pub(crate) const DATABASE_TIME: &str =
    "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT";

/// Serializes the transactions that append to the change feed, until each commits; $1 is
/// [`crate::FEED_LOCK`]. Taken before the transaction locks any row, so that it is never part
/// of a deadlock.
pub(crate) const FEED_LOCK: &str = "SELECT pg_advisory_xact_lock($1)";
/// Waits until no append to the feed is in flight; $1 is [`crate::FEED_LOCK`].
pub(crate) const FEED_READ_LOCK: &str = "SELECT pg_advisory_xact_lock_shared($1)";

pub(crate) const ORG_INSERT: &str =
    concat!("INSERT INTO orgs (", org_columns!(), ") VALUES ($1, $2)");
/// The first-created organisation: `ord` is the insertion order (SQLite's rowid).
pub(crate) const ORG_FIRST: &str =
    concat!("SELECT ", org_columns!(), " FROM orgs ORDER BY ord LIMIT 1");

pub(crate) const USER_INSERT: &str = concat!(
    "INSERT INTO users (",
    user_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
);
pub(crate) const USER_BY_ID: &str =
    concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");
/// Case-insensitive, through `users_by_username_nocase` (an index on `lower(username)`).
pub(crate) const USER_BY_USERNAME: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users WHERE lower(username) = lower($1)"
);
pub(crate) const USER_LIST: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users ORDER BY created_at, id COLLATE \"C\""
);
/// `$6` is what the session epoch goes up by: 1 to end the user's browser sessions, else 0.
pub(crate) const USER_UPDATE: &str = "UPDATE users SET email = $1, password_hash = $2, \
     disabled = $3, admin = $5, session_epoch = session_epoch + $6 WHERE id = $4";
pub(crate) const USER_END_SESSIONS: &str =
    "UPDATE users SET session_epoch = session_epoch + 1 WHERE id = $1";
pub(crate) const USER_DISABLE: &str =
    "UPDATE users SET disabled = TRUE, session_epoch = session_epoch + 1 WHERE id = $1";

pub(crate) const CLIENT_INSERT: &str = concat!(
    "INSERT INTO clients (",
    client_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
     $18, $19, $20, $21, $22, $23, $24, $25)"
);
pub(crate) const CLIENT_BY_ID: &str = concat!(
    "SELECT ",
    client_columns!(),
    " FROM clients WHERE client_id = $1"
);
pub(crate) const CLIENT_LIST: &str = concat!(
    "SELECT ",
    client_columns!(),
    " FROM clients ORDER BY created_at, client_id COLLATE \"C\""
);
/// Same parameter order as [`CLIENT_INSERT`], less `created_at`.
pub(crate) const CLIENT_UPDATE: &str = "UPDATE clients SET name = $2, secret_hash = $3, \
     redirect_uris = $4, scopes = $5, refresh_token_policy = $6, access_token_ttl_secs = $7, \
     rotate_refresh_tokens = $8, allow_user_agent_flow = $9, refresh_retry_window_secs = $10, \
     id_token_validity_secs = $11, id_token_audiences = $12, id_token_standard_claims = $13, \
     echo_nonce_on_refresh = $14, id_token_alg = $15, jwt_access_tokens = $16, dpop_mode = $17, \
     dpop_require_nonce = $18, pkce_required = $19, rotation_required = $20, \
     idle_cap_secs = $21, blocked = $22, rotation_audit = $23, ip_allowlist = $24 WHERE client_id = $1";
/// What a client's idle expiry depends on, before an update changes it; the row stays locked
/// until the update, so that the change is judged against what it replaces.
pub(crate) const CLIENT_IDLE_TERMS: &str =
    "SELECT refresh_token_policy, access_token_ttl_secs, idle_cap_secs \
     FROM clients WHERE client_id = $1 FOR UPDATE";
/// The idle expiry of client $1's grants, after its policy changed: $2 is the new limit in
/// milliseconds (NULL: none, and NULL plus anything is NULL).
pub(crate) const CLIENT_GRANTS_IDLE: &str =
    "UPDATE grants SET idle_expires_at = last_used_at + $2::BIGINT WHERE client_id = $1";
/// Codes, grants (with their refresh and access tokens) and approvals go with the client through
/// the schema's `ON DELETE CASCADE`.
pub(crate) const CLIENT_DELETE: &str = "DELETE FROM clients WHERE client_id = $1";

pub(crate) const APPROVAL_SCOPE: &str =
    "SELECT scope FROM approvals WHERE user_id = $1 AND client_id = $2";
pub(crate) const APPROVAL_UPSERT: &str = "INSERT INTO approvals (user_id, client_id, scope, \
     updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, client_id) \
     DO UPDATE SET scope = excluded.scope, updated_at = excluded.updated_at";

pub(crate) const CODE_INSERT: &str = concat!(
    "INSERT INTO auth_codes (",
    code_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
);
/// The redemption itself, returning the code: of concurrent attempts only one changes the row
/// (the others wait for its lock, then find `used_at` set).
pub(crate) const CODE_SPEND: &str = concat!(
    "UPDATE auth_codes SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL RETURNING ",
    code_columns!()
);
/// Whether code $1 exists, before a later presentation takes the feed's lock to record it.
pub(crate) const CODE_EXISTS: &str = "SELECT 1 FROM auth_codes WHERE code_hash = $1";
/// A later presentation of a spent code, recorded for the issuance that may still be on its
/// way; returns what the code issued, if its issuance has committed (an issuance in flight
/// holds the row, and this waits for it).
pub(crate) const CODE_PRESENTED_AGAIN: &str =
    "UPDATE auth_codes SET presented_again = TRUE WHERE code_hash = $1 RETURNING grant_id";
/// Whether an issuance may link code $1: it exists and was not presented again. The row stays
/// locked until the issuance commits, so that a later presentation either comes first (and this
/// finds nothing) or waits and then finds the link — SQLite's single writer, for one row.
pub(crate) const CODE_MAY_ISSUE: &str =
    "SELECT 1 FROM auth_codes WHERE code_hash = $1 AND NOT presented_again FOR UPDATE";
pub(crate) const CODE_LINK: &str = "UPDATE auth_codes SET grant_id = $1 WHERE code_hash = $2";

pub(crate) const GRANT_INSERT: &str = concat!(
    "INSERT INTO grants (",
    grant_columns!(),
    ", refresh_hash, idle_expires_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
);
/// A grant with its family's state: `grant_columns!`, then the current and previous token,
/// when the previous was rotated out, and the key that rotation's access token was bound to.
pub(crate) const FAMILY_BY_ID: &str = concat!(
    "SELECT ",
    grant_columns!(),
    ", refresh_hash, previous_hash, rotated_at, rotated_jkt FROM grants WHERE id = $1"
);
pub(crate) const LEGACY_REFRESH_GRANT: &str =
    "SELECT grant_id FROM legacy_refresh_tokens WHERE token_hash = $1";
pub(crate) const GRANT_USER: &str = "SELECT user_id FROM grants WHERE id = $1";
pub(crate) const GRANT_BY_ID: &str =
    concat!("SELECT ", grant_columns!(), " FROM grants WHERE id = $1");
pub(crate) const GRANTS_OF_USER: &str = concat!(
    "SELECT ",
    grant_columns!(),
    " FROM grants WHERE user_id = $1 ORDER BY created_at DESC, id COLLATE \"C\" DESC"
);
pub(crate) const GRANTS_LIVE_OF_USER: &str = "SELECT id FROM grants \
     WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at, id COLLATE \"C\"";
pub(crate) const GRANTS_LIVE_OF_USER_AND_CLIENT: &str = "SELECT id FROM grants \
     WHERE user_id = $1 AND client_id = $2 AND revoked_at IS NULL \
     ORDER BY created_at, id COLLATE \"C\"";
pub(crate) const GRANTS_LIVE_OF_CLIENT: &str = "SELECT id FROM grants \
     WHERE client_id = $1 AND revoked_at IS NULL ORDER BY created_at, id COLLATE \"C\"";
/// The approval limit: the live refresh-token grants of user $1 for client $2 beyond the newest
/// $4, newest first, leaving out the grant being issued ($3), which is the newest whatever its
/// timestamp (two issuances may share a millisecond).
pub(crate) const GRANTS_OVER_LIMIT: &str = "SELECT id FROM grants \
     WHERE user_id = $1 AND client_id = $2 AND revoked_at IS NULL AND has_refresh_token \
     AND id <> $3 ORDER BY created_at DESC, id COLLATE \"C\" DESC OFFSET $4";

// A refresh is one statement: the conditional update of the family's row and, only if it
// changed the row, the refresh's event (an INSERT … SELECT from the update's RETURNING). One
// round trip, and the row's lock is held for that statement alone. Under READ COMMITTED a
// concurrent refresh of the same row waits for the lock, then re-checks the WHERE against the
// committed row: exactly one of them changes it. ?n+ are the event's values.
/// A rotation of grant $1: successor $3 becomes current and the presented token $2 the previous,
/// at $4, its access token bound to key $6 (or none) — only if $2 is still current and the
/// grant live; then event $7-$14.
pub(crate) const FAMILY_ROTATE: &str = concat!(
    "WITH rotated AS (UPDATE grants SET previous_hash = refresh_hash, refresh_hash = $3, \
     rotated_at = $4, last_used_at = $4, idle_expires_at = $5, rotated_jkt = $6, \
     use_count = use_count + 1 WHERE id = $1 AND refresh_hash = $2 AND revoked_at IS NULL RETURNING id) \
     INSERT INTO events (",
    event_columns!(),
    ") SELECT ",
    event_values!(7, 8, 9, 10, 11, 12, 13, 14),
    " FROM rotated"
);
/// A refresh without rotation: records (and counts) the use at $3 (and idle expiry $4), only if $2 is still
/// grant $1's current token and the grant live; then event $5-$12.
pub(crate) const FAMILY_TOUCH: &str = concat!(
    "WITH touched AS (UPDATE grants SET last_used_at = $3, idle_expires_at = $4, \
     use_count = use_count + 1 WHERE id = $1 AND refresh_hash = $2 AND revoked_at IS NULL RETURNING id) \
     INSERT INTO events (",
    event_columns!(),
    ") SELECT ",
    event_values!(5, 6, 7, 8, 9, 10, 11, 12),
    " FROM touched"
);
/// A refresh that writes no row: event $3-$10, only if $2 is grant $1's current token and the
/// grant live (a read of the row, as SQLite's, taking no lock on it).
pub(crate) const FAMILY_IS_CURRENT: &str = concat!(
    "INSERT INTO events (",
    event_columns!(),
    ") SELECT ",
    event_values!(3, 4, 5, 6, 7, 8, 9, 10),
    " FROM grants WHERE id = $1 AND refresh_hash = $2 AND revoked_at IS NULL"
);
/// Each revocation statement touches only what is still live, so that revoking again keeps the
/// first revocation's times.
pub(crate) const GRANT_REVOKE: &str =
    "UPDATE grants SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL";

pub(crate) const ACCESS_BY_HASH: &str = concat!(
    "SELECT ",
    access_columns!(),
    " FROM access_tokens WHERE token_hash = $1"
);
pub(crate) const ACCESS_REVOKE_FAMILY: &str =
    "UPDATE access_tokens SET revoked_at = $1 WHERE grant_id = $2 AND revoked_at IS NULL";
/// Matches a known token even when already revoked (it is known), keeping the first time.
pub(crate) const ACCESS_REVOKE_ONE: &str =
    "UPDATE access_tokens SET revoked_at = coalesce(revoked_at, $1) WHERE token_hash = $2";

/// Appends to the feed and tells the listeners of every process, at commit (a notification is
/// delivered only if its transaction commits), with the entry itself — `seq kind until key` —
/// so that they can apply it without reading the feed.
pub(crate) const CHANGE_INSERT: &str = "WITH appended AS (INSERT INTO changes (kind, key, until) \
     VALUES ($1, $2, $3) RETURNING seq) \
     SELECT pg_notify('tessera_changes', format('%s %s %s %s', seq, $1::text, $3::bigint, $2::text)) \
     FROM appended";
pub(crate) const CHANGES_SINCE: &str =
    "SELECT seq, kind, key, until FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2";
/// In no particular order: what is in force is applied whole.
pub(crate) const CHANGES_LIVE: &str = "SELECT seq, kind, key, until FROM changes WHERE until > $1";
/// The newest sequence number ever given, even if its entry was purged: the sequence's own
/// `last_value` (0 before its first use), as SQLite's `sqlite_sequence`. Read under
/// [`FEED_READ_LOCK`]: the sequence is not transactional, and a number handed to an append
/// still in flight must not be taken as read.
pub(crate) const CHANGES_NEWEST: &str =
    "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM changes_seq";

/// Appends events, in order, from one array per column ($1 … $8, in `event_columns!` order):
/// one statement for a whole batch. Ids follow the arrays' order, as the function scan yields
/// its rows.
pub(crate) const EVENTS_INSERT: &str = concat!(
    "INSERT INTO events (",
    event_columns!(),
    ") SELECT * FROM unnest($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], \
     $6::TEXT[], $7::TEXT[], $8::TEXT[])"
);

/// The events after `after_id` matching the filters present, in id order: the statement and
/// the names of the filtering columns in parameter order ($1 is `after_id`, then one per
/// column, then the limit). Only the filters present become terms, so that each combination is
/// a plain statement whose plan uses that filter's index (a `$n IS NULL OR column = $n` term
/// would defeat it); there are one statement per
/// combination of filters (`since` adds an `at` term), each prepared once per connection.
pub(crate) fn events_query(
    user: bool,
    client: bool,
    grant: bool,
    kind: bool,
    since: bool,
    newest_first: bool,
) -> String {
    let mut sql = String::from(
        "SELECT id, at, kind, client_id, user_id, grant_id, detail, source, user_agent \
         FROM events WHERE id > $1",
    );
    let mut next = 2;
    for (column, present) in [
        ("user_id", user),
        ("client_id", client),
        ("grant_id", grant),
        ("kind", kind),
    ] {
        if present {
            sql.push_str(&format!(" AND {column} = ${next}"));
            next += 1;
        }
    }
    if since {
        sql.push_str(&format!(" AND at >= ${next}"));
        next += 1;
    }
    let order = if newest_first { "DESC" } else { "ASC" };
    sql.push_str(&format!(" ORDER BY id {order} LIMIT ${next}"));
    sql
}

// Housekeeping, in rounds: each statement removes at most $2 (or $3) rows, chosen through an
// index on its cut-off. (PostgreSQL has no `DELETE … LIMIT`, hence the keyed subquery.)
/// Access tokens of the earlier, stored format.
pub(crate) const PURGE_ACCESS_TOKENS: &str = "DELETE FROM access_tokens WHERE token_hash IN \
     (SELECT token_hash FROM access_tokens WHERE expires_at < $1 LIMIT $2)";
pub(crate) const PURGE_CODES: &str = "DELETE FROM auth_codes WHERE code_hash IN \
     (SELECT code_hash FROM auth_codes WHERE expires_at < $1 LIMIT $2)";
/// The oldest $2 events (ids follow time), of those the ones older than $1: SQLite's rule.
/// SQLite counts on ids being dense from the oldest; here a rolled-back insert leaves a gap in
/// the sequence, so the oldest are read from the primary key instead of computed from the
/// smallest id.
pub(crate) const PURGE_EVENTS: &str = "DELETE FROM events WHERE id IN \
     (SELECT id FROM events ORDER BY id LIMIT $2) AND at < $1";
pub(crate) const PURGE_CHANGES: &str =
    "DELETE FROM changes WHERE seq IN (SELECT seq FROM changes WHERE until < $1 LIMIT $2)";
/// Seen DPoP proofs that expired before $1.
pub(crate) const PURGE_DPOP_PROOFS: &str = "DELETE FROM dpop_proofs WHERE key IN \
     (SELECT key FROM dpop_proofs WHERE expires_at < $1 LIMIT $2)";
/// The grants one purge rule removes, at most a batch per round; they are then deleted with
/// what hangs off them by [`PURGE_GRANTS`], children first so that every count is exact. Codes
/// linked to them are kept, unlinked, by `ON DELETE SET NULL`.
/// Grants revoked before $1.
pub(crate) const PURGE_REVOKED_GRANTS: &str =
    "SELECT id FROM grants WHERE revoked_at IS NOT NULL AND revoked_at < $1 LIMIT $2";
/// Grants whose idle expiry is before $1.
pub(crate) const PURGE_IDLE_GRANTS: &str = "SELECT id FROM grants \
     WHERE idle_expires_at IS NOT NULL AND idle_expires_at < $1 LIMIT $2";
/// Grants of client $1 created before $2 (past the policy's lifetime).
pub(crate) const PURGE_EXPIRED_GRANTS: &str =
    "SELECT id FROM grants WHERE client_id = $1 AND created_at < $2 LIMIT $3";
/// Grants of client $1 without a refresh token, created before $2.
pub(crate) const PURGE_ACCESS_ONLY_GRANTS: &str = "SELECT id FROM grants \
     WHERE client_id = $1 AND NOT has_refresh_token AND created_at < $2 LIMIT $3";
/// Deletes the grants listed in $1 with their stored access tokens (their legacy refresh-token
/// rows go by `ON DELETE CASCADE`), then the grants: each returns how many rows it deleted.
pub(crate) const PURGE_GRANTS: [&str; 2] = [
    "DELETE FROM access_tokens WHERE grant_id = ANY($1)",
    "DELETE FROM grants WHERE id = ANY($1)",
];

/// Every table and its row count, in schema order (SQLite's names and order).
/// `Inventory`'s counts, by its names.
pub(crate) const INVENTORY: &str = "\
     SELECT 'clients', count(*) FROM clients UNION ALL \
     SELECT 'users', count(*) FROM users UNION ALL \
     SELECT 'live_grants', count(*) FROM grants WHERE revoked_at IS NULL UNION ALL \
     SELECT 'live_refresh_tokens', count(*) FROM grants \
         WHERE revoked_at IS NULL AND has_refresh_token UNION ALL \
     SELECT 'revoked_refresh_tokens', count(*) FROM grants \
         WHERE revoked_at IS NOT NULL AND has_refresh_token UNION ALL \
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
    ") VALUES ($1, $2, $3, $4, $5, $6)"
);
pub(crate) const NOTE_BY_ID: &str =
    concat!("SELECT ", note_columns!(), " FROM notes WHERE id = $1");
pub(crate) const NOTE_LIST: &str = concat!(
    "SELECT ",
    note_columns!(),
    " FROM notes WHERE owner_id = $1 ORDER BY created_at DESC, id COLLATE \"C\" DESC LIMIT $2"
);
pub(crate) const NOTE_UPDATE: &str =
    "UPDATE notes SET title = $1, body = $2, modified_at = $3 WHERE id = $4";
pub(crate) const NOTE_DELETE: &str = "DELETE FROM notes WHERE id = $1";

macro_rules! signing_key_columns {
    () => {
        "kid, alg, created_at, publish_at, sign_from, retire_at, private_key"
    };
}
pub(crate) const SIGNING_KEY_INSERT: &str = concat!(
    "INSERT INTO signing_keys (",
    signing_key_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
);
pub(crate) const SIGNING_KEY_LIST: &str = concat!(
    "SELECT ",
    signing_key_columns!(),
    " FROM signing_keys ORDER BY created_at, kid COLLATE \"C\""
);
/// Remembers proof key $1 until $2: inserted, or taking over an entry expired at $3, it is one
/// row changed; a live entry (a replay) is left alone and nothing changes. Under concurrent
/// inserts of one key the primary key's lock makes one wait for the other, then see its row.
pub(crate) const DPOP_PROOF_REMEMBER: &str = "INSERT INTO dpop_proofs (key, expires_at) \
     VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at \
     WHERE dpop_proofs.expires_at <= $3";
pub(crate) const SIGNING_KEY_RETIRE: &str = "UPDATE signing_keys SET retire_at = $1 WHERE kid = $2";

// OAuth Usage (docs/usage.md). A grant is listed while live: not revoked (which the partial
// index grants_by_client_user implies) and not past its idle expiry. User ids compare in the
// "C" collation, the index's, so that the keyset's order is the bytes' order on every backend.

/// The usage ledger's deltas in one statement: grant ids $1, uses $2, last uses $3, added to
/// each grant (its last use the later of its own and the delta's). Deltas of one grant are
/// summed first, so that each row is updated once; additive, so nodes flushing their own
/// deltas of one grant add up.
pub(crate) const USAGE_ADD: &str = "UPDATE grants g SET use_count = g.use_count + d.uses, \
     last_used_at = GREATEST(g.last_used_at, d.last_used) \
     FROM (SELECT id, sum(uses)::BIGINT AS uses, max(last_used) AS last_used \
     FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[]) AS u(id, uses, last_used) \
     GROUP BY id) d WHERE g.id = d.id";
/// Every client with the counts of its live grants at $1 (zeros when it has none).
pub(crate) const USAGE_APPS: &str = "SELECT c.client_id, c.name, \
     coalesce(u.users, 0), coalesce(u.tokens, 0), coalesce(u.uses, 0)::BIGINT, u.last_used \
     FROM clients c LEFT JOIN (SELECT client_id, count(DISTINCT user_id) AS users, \
     count(*) AS tokens, sum(use_count) AS uses, max(last_used_at) AS last_used FROM grants \
     WHERE revoked_at IS NULL AND (idle_expires_at IS NULL OR idle_expires_at > $1) \
     GROUP BY client_id) u ON u.client_id = c.client_id ORDER BY c.client_id COLLATE \"C\"";
/// A page of client $1's users after user id $2 ('' for the first page) with a live grant at
/// $3, at most $4, in the order of grants_by_client_user.
pub(crate) const USAGE_APP_USERS: &str = "SELECT g.user_id COLLATE \"C\", max(u.username), \
     min(g.created_at), max(g.last_used_at), sum(g.use_count)::BIGINT, count(*) \
     FROM grants g JOIN users u ON u.id = g.user_id \
     WHERE g.client_id = $1 AND g.user_id COLLATE \"C\" > $2 AND g.revoked_at IS NULL \
     AND (g.idle_expires_at IS NULL OR g.idle_expires_at > $3) \
     GROUP BY 1 ORDER BY 1 LIMIT $4";
/// User $2's live grants of client $1 at $3, oldest first.
pub(crate) const USAGE_USER_TOKENS: &str = "SELECT id, scope, created_at, last_used_at, \
     use_count, has_refresh_token FROM grants \
     WHERE client_id = $1 AND user_id = $2 AND revoked_at IS NULL \
     AND (idle_expires_at IS NULL OR idle_expires_at > $3) ORDER BY created_at, id COLLATE \"C\"";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_events_query_numbers_its_parameters_in_order() {
        assert_eq!(
            events_query(false, false, false, false, false, false),
            "SELECT id, at, kind, client_id, user_id, grant_id, detail, source, user_agent \
             FROM events WHERE id > $1 ORDER BY id ASC LIMIT $2"
        );
        assert!(
            events_query(true, false, true, false, false, false).ends_with(
                "WHERE id > $1 AND user_id = $2 AND grant_id = $3 ORDER BY id ASC LIMIT $4"
            )
        );
        assert!(events_query(false, true, false, true, false, true)
            .ends_with("WHERE id > $1 AND client_id = $2 AND kind = $3 ORDER BY id DESC LIMIT $4"));
        assert!(events_query(false, true, false, true, true, true).ends_with(
            "WHERE id > $1 AND client_id = $2 AND kind = $3 AND at >= $4 ORDER BY id DESC LIMIT $5"
        ));
    }

    #[test]
    fn event_values_are_typed_parameters() {
        assert!(FAMILY_ROTATE.contains("SELECT $7::BIGINT, $8::TEXT,"));
        assert!(FAMILY_ROTATE.ends_with("$14::TEXT FROM rotated"));
    }
}
