//! Every statement the store runs, in one place: the catalogue a PostgreSQL backend mirrors.
//! Built with `concat!` at compile time, so that `prepare_cached` finds each by the same string.
//! Parameters are numbered; the mappers in `rows.rs` read columns in the order listed here.

// Column lists are macros because `concat!` takes only literals.
macro_rules! org_columns {
    () => {
        "id, name"
    };
}
macro_rules! user_columns {
    () => {
        "id, org_id, username, email, password_hash, disabled, created_at"
    };
}
macro_rules! client_columns {
    () => {
        "client_id, name, secret_hash, redirect_uris, scopes, refresh_token_policy, \
         access_token_ttl_secs, rotate_refresh_tokens, allow_user_agent_flow, created_at"
    };
}
macro_rules! code_columns {
    () => {
        "code_hash, client_id, user_id, redirect_uri, scope, code_challenge, created_at, expires_at"
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
            "has_refresh_token"
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
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
);
pub(crate) const USER_BY_ID: &str =
    concat!("SELECT ", user_columns!(), " FROM users WHERE id = ?1");
pub(crate) const USER_BY_USERNAME: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users WHERE username = ?1"
);
pub(crate) const USER_LIST: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users ORDER BY created_at, id"
);
pub(crate) const USER_UPDATE: &str =
    "UPDATE users SET email = ?1, password_hash = ?2, disabled = ?3 WHERE id = ?4";

pub(crate) const CLIENT_INSERT: &str = concat!(
    "INSERT INTO clients (",
    client_columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
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
     allow_user_agent_flow = ?9 WHERE client_id = ?1";
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
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
);
/// The redemption itself: of concurrent attempts only one changes the row.
pub(crate) const CODE_SPEND: &str =
    "UPDATE auth_codes SET used_at = ?1 WHERE code_hash = ?2 AND used_at IS NULL";
pub(crate) const CODE_BY_HASH: &str = concat!(
    "SELECT ",
    code_columns!(),
    " FROM auth_codes WHERE code_hash = ?1"
);
pub(crate) const CODE_GRANT: &str = "SELECT grant_id FROM auth_codes WHERE code_hash = ?1";
pub(crate) const CODE_LINK: &str = "UPDATE auth_codes SET grant_id = ?1 WHERE code_hash = ?2";

pub(crate) const GRANT_INSERT: &str = concat!(
    "INSERT INTO grants (",
    grant_columns!(""),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
);
pub(crate) const GRANT_BY_ID: &str =
    concat!("SELECT ", grant_columns!(""), " FROM grants WHERE id = ?1");
pub(crate) const GRANT_TOUCH: &str = "UPDATE grants SET last_used_at = ?1 WHERE id = ?2";
/// A refresh without rotation: records the use only if the grant is live and the presented token
/// (?3) is one of its current tokens.
pub(crate) const GRANT_TOUCH_IF_CURRENT: &str = "UPDATE grants SET last_used_at = ?1 \
     WHERE id = ?2 AND revoked_at IS NULL AND EXISTS (SELECT 1 FROM refresh_tokens \
     WHERE token_hash = ?3 AND grant_id = ?2 AND used_at IS NULL)";
/// Each revocation statement touches only what is still live, so that revoking again keeps the
/// first revocation's times.
pub(crate) const GRANT_REVOKE: &str =
    "UPDATE grants SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL";

pub(crate) const REFRESH_INSERT: &str =
    "INSERT INTO refresh_tokens (token_hash, grant_id, created_at) VALUES (?1, ?2, ?3)";
pub(crate) const REFRESH_VIEW: &str = concat!(
    "SELECT r.token_hash, r.grant_id, r.created_at, r.used_at, ",
    grant_columns!("g."),
    " FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id WHERE r.token_hash = ?1"
);
/// A rotation: marks the presented token (?3) used and links its successor (?2), only if it is
/// still current and its grant (?4) live.
pub(crate) const REFRESH_ROTATE: &str = "UPDATE refresh_tokens SET used_at = ?1, replaced_by = ?2 \
     WHERE token_hash = ?3 AND used_at IS NULL \
     AND grant_id IN (SELECT id FROM grants WHERE id = ?4 AND revoked_at IS NULL)";
pub(crate) const REFRESH_SPEND_FAMILY: &str =
    "UPDATE refresh_tokens SET used_at = ?1 WHERE grant_id = ?2 AND used_at IS NULL";

pub(crate) const ACCESS_INSERT: &str = concat!(
    "INSERT INTO access_tokens (",
    access_columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
);
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
