//! OAuth Usage (docs/usage.md): what an administrator sees of every app's tokens — the apps,
//! an app's users with first use, last use and use count, a user's tokens of an app — and the
//! revocations from there: one token, a user of an app, a whole app. Each revocation is one
//! audit event naming the administrator, and each revoked grant's own `revoked` event (its
//! family timeline) says it came from OAuth Usage.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::model::{Event, EventKind, User};
use crate::operations::operator::Operator;
use crate::operations::revocations::AdminRevokeError;
use crate::store::{AppUsage, StoreError, TokenUsage, UserUsage};

/// Users per page unless asked otherwise (Salesforce's default).
pub const DEFAULT_USAGE_PAGE_SIZE: u32 = 100;
/// The most users a page holds.
pub const MAX_USAGE_PAGE_SIZE: u32 = 1000;
/// Longest user id a cursor may carry (ids are 18 characters; room for imported ones).
const MAX_CURSOR_ID_LEN: usize = 255;

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// The caller is not an administrator (or not an active one).
    #[error("OAuth Usage is for administrators only")]
    Forbidden,
    #[error("no app with id {0}")]
    UnknownApp(String),
    #[error("no user with id {0}")]
    UnknownUser(String),
    #[error("no token with id {0}")]
    UnknownToken(String),
    #[error("pageSize must be a whole number from 1 to {MAX_USAGE_PAGE_SIZE}")]
    BadPageSize,
    #[error("the cursor is not one this server handed out (follow nextPageUrl)")]
    BadCursor,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A page of an app's users, and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsersPage {
    pub users: Vec<UserUsage>,
    /// The cursor of the next page; `None` on the last one.
    pub next_cursor: Option<String>,
}

/// How many users a page holds: `None` for the default; anything but 1 to
/// [`MAX_USAGE_PAGE_SIZE`] is refused.
pub fn page_size(text: Option<&str>) -> Result<u32, UsageError> {
    match text {
        None => Ok(DEFAULT_USAGE_PAGE_SIZE),
        Some(text) => match text.parse::<u32>() {
            Ok(n) if (1..=MAX_USAGE_PAGE_SIZE).contains(&n) => Ok(n),
            _ => Err(UsageError::BadPageSize),
        },
    }
}

/// The cursor after `user_id`: opaque to clients (base64url of the id), so that the keyset it
/// carries can change without breaking them.
fn cursor_after(user_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(user_id.as_bytes())
}

/// The user id a cursor starts after.
fn user_after(cursor: &str) -> Result<String, UsageError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| UsageError::BadCursor)?;
    let id = String::from_utf8(bytes).map_err(|_| UsageError::BadCursor)?;
    if id.is_empty() || id.len() > MAX_CURSOR_ID_LEN || !id.chars().all(|c| c.is_ascii_graphic()) {
        return Err(UsageError::BadCursor);
    }
    Ok(id)
}

impl Operator {
    /// The administrator a caller is: the active admin user `user_id`, or `Forbidden`.
    pub async fn usage_admin(&self, user_id: &str) -> Result<User, UsageError> {
        match self.authority.store().user_by_id(user_id).await? {
            Some(user) if user.admin && !user.disabled => Ok(user),
            _ => Err(UsageError::Forbidden),
        }
    }

    /// Every app with its user count, token count and use count.
    pub async fn usage_apps(&self) -> Result<Vec<AppUsage>, UsageError> {
        let now = self.authority.now();
        Ok(self.authority.store().app_usage(now).await?)
    }

    /// A page of an app's users, by user id, starting after `cursor` (from the previous page).
    pub async fn usage_app_users(
        &self,
        client_id: &str,
        cursor: Option<&str>,
        page_size: u32,
    ) -> Result<UsersPage, UsageError> {
        let after = cursor.map(user_after).transpose()?;
        self.known_app(client_id).await?;
        let now = self.authority.now();
        let page_size = page_size.clamp(1, MAX_USAGE_PAGE_SIZE);
        // One more than the page: whether a next page exists, without counting.
        let mut users = self
            .authority
            .store()
            .app_users_usage(client_id, after.as_deref(), page_size + 1, now)
            .await?;
        let next_cursor = if users.len() > page_size as usize {
            users.truncate(page_size as usize);
            users.last().map(|last| cursor_after(&last.user_id))
        } else {
            None
        };
        Ok(UsersPage { users, next_cursor })
    }

    /// A user's live tokens (grants) of an app.
    pub async fn usage_user_tokens(
        &self,
        client_id: &str,
        user_id: &str,
    ) -> Result<Vec<TokenUsage>, UsageError> {
        self.known_app(client_id).await?;
        self.known_user(user_id).await?;
        let now = self.authority.now();
        Ok(self
            .authority
            .store()
            .user_tokens_usage(client_id, user_id, now)
            .await?)
    }

    /// Revokes one token (grant) for `admin`. A token already revoked is not found: OAuth Usage
    /// lists live tokens only.
    pub async fn usage_revoke_token(&self, admin: &User, grant_id: &str) -> Result<(), UsageError> {
        let unknown = || UsageError::UnknownToken(grant_id.to_owned());
        let grant = self
            .authority
            .store()
            .grant(grant_id)
            .await?
            .ok_or_else(unknown)?;
        let why = revoked_because(admin);
        // Not found or revoked already (by another request since it was read): not live.
        let revoked = match self.revoke_grant_by_id(grant_id, &why).await {
            Ok(revoked) => revoked,
            Err(AdminRevokeError::NotFound) => false,
            Err(AdminRevokeError::Store(error)) => return Err(error.into()),
        };
        if !revoked {
            return Err(unknown());
        }
        let detail = format!("OAuth Usage: token of user {}", grant.user_id);
        self.record_usage_revocation(admin, Some(&grant.client_id), Some(grant_id), detail)
            .await;
        Ok(())
    }

    /// Revokes every live token of a user for an app, for `admin`; returns how many.
    pub async fn usage_revoke_user(
        &self,
        admin: &User,
        client_id: &str,
        user_id: &str,
    ) -> Result<usize, UsageError> {
        self.known_app(client_id).await?;
        let user = self.known_user(user_id).await?;
        let now = self.authority.now();
        let ids = self
            .authority
            .store()
            .revoke_grants_of_user_and_client(user_id, client_id, now)
            .await?;
        self.record_revocations(&ids, &revoked_because(admin))
            .await?;
        let detail = format!(
            "OAuth Usage: {} tokens of user {} ({})",
            ids.len(),
            user.username,
            user.id
        );
        self.record_usage_revocation(admin, Some(client_id), None, detail)
            .await;
        Ok(ids.len())
    }

    /// Revokes every live token of an app, for `admin`; returns how many.
    pub async fn usage_revoke_app(
        &self,
        admin: &User,
        client_id: &str,
    ) -> Result<usize, UsageError> {
        self.known_app(client_id).await?;
        let revoked = self
            .revoke_client_grants(client_id, &revoked_because(admin))
            .await?;
        let detail = format!("OAuth Usage: {revoked} tokens of the app");
        self.record_usage_revocation(admin, Some(client_id), None, detail)
            .await;
        Ok(revoked)
    }

    async fn known_app(&self, client_id: &str) -> Result<(), UsageError> {
        match self.authority.store().client_by_id(client_id).await? {
            Some(_) => Ok(()),
            None => Err(UsageError::UnknownApp(client_id.to_owned())),
        }
    }

    async fn known_user(&self, user_id: &str) -> Result<User, UsageError> {
        self.authority
            .store()
            .user_by_id(user_id)
            .await?
            .ok_or_else(|| UsageError::UnknownUser(user_id.to_owned()))
    }

    /// The administrator's audit event for a revocation from OAuth Usage (the revoked grants
    /// have their own `revoked` events).
    async fn record_usage_revocation(
        &self,
        admin: &User,
        client_id: Option<&str>,
        grant_id: Option<&str>,
        detail: String,
    ) {
        let event = Event {
            at: self.authority.now(),
            kind: EventKind::GrantRevokedByAdmin,
            client_id: client_id.map(str::to_owned),
            user_id: Some(admin.id.clone()),
            grant_id: grant_id.map(str::to_owned),
            detail,
            source: None,
            user_agent: None,
        };
        self.authority.record(event).await;
    }
}

/// The detail of each revoked grant's `revoked` event: where it came from and who did it.
fn revoked_because(admin: &User) -> String {
    format!("OAuth Usage, by {}", admin.username)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_carries_the_last_user_id_and_nothing_else_is_one() {
        let cursor = cursor_after("005000000000001AAA");
        assert_eq!(user_after(&cursor).unwrap(), "005000000000001AAA");
        for bad in [
            "",
            "!!!",
            "not base64 at all",
            &URL_SAFE_NO_PAD.encode([0xff, 0xfe]),
        ] {
            assert!(
                matches!(user_after(bad), Err(UsageError::BadCursor)),
                "{bad}"
            );
        }
        let spaced = URL_SAFE_NO_PAD.encode("a b");
        assert!(matches!(user_after(&spaced), Err(UsageError::BadCursor)));
    }

    #[test]
    fn a_page_size_is_a_whole_number_within_bounds() {
        assert_eq!(page_size(None).unwrap(), DEFAULT_USAGE_PAGE_SIZE);
        assert_eq!(page_size(Some("1")).unwrap(), 1);
        assert_eq!(page_size(Some("1000")).unwrap(), 1000);
        for bad in ["0", "1001", "-1", "ten", "", "2.5"] {
            assert!(
                matches!(page_size(Some(bad)), Err(UsageError::BadPageSize)),
                "{bad}"
            );
        }
    }
}
