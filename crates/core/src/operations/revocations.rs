//! The administrator's revocations: one grant, or every grant of a user or of a client, each
//! recorded in the audit trail. (Revocation by token possession, RFC 7009, is a flow:
//! `flows/revocation.rs`.)

use crate::authority::Source;
use crate::model::{Event, EventKind, User};
use crate::operations::operator::Operator;
use crate::store::StoreError;

/// Who logged a user out everywhere, as the audit trail names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokedBy<'a> {
    /// An operator at the command line (`tessera admin user revoke-all`, `admin revoke --user`).
    CommandLine,
    /// An administrator in the admin console.
    Console(&'a User),
    /// The user themselves, on their connected-apps page.
    TheUser,
}

impl RevokedBy<'_> {
    /// Who, in words for the audit trail (a username and id, never a secret).
    fn describe(self) -> String {
        match self {
            Self::CommandLine => "admin command line".to_owned(),
            Self::Console(admin) => format!("admin console, {} ({})", admin.username, admin.id),
            Self::TheUser => "the user, connected apps page".to_owned(),
        }
    }
}

/// The start of the detail of each grant's `revoked` event when a user is logged out
/// everywhere, so that every family's timeline names the action.
pub const LOG_OUT_EVERYWHERE: &str = "log out everywhere";

#[derive(Debug, thiserror::Error)]
pub enum AdminRevokeError {
    #[error("no such grant")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Operator {
    /// Revokes one grant (administrator). Returns false if it was already revoked.
    pub async fn revoke_grant_by_id(
        &self,
        grant_id: &str,
        why: &str,
    ) -> Result<bool, AdminRevokeError> {
        self.revoke_grant_of(grant_id, None, why, None).await
    }

    /// Revokes one grant, if it belongs to `owner` when one is given: a grant of anyone else is
    /// [`AdminRevokeError::NotFound`], exactly as an unknown one, so that the answer does not
    /// tell a user which ids exist. Returns false if it was already revoked.
    pub(crate) async fn revoke_grant_of(
        &self,
        grant_id: &str,
        owner: Option<&str>,
        why: &str,
        source: Option<&Source>,
    ) -> Result<bool, AdminRevokeError> {
        let grant = self
            .authority
            .store()
            .grant(grant_id)
            .await?
            .filter(|g| owner.is_none_or(|owner| g.user_id == owner))
            .ok_or(AdminRevokeError::NotFound)?;
        if grant.revoked_at.is_some() {
            return Ok(false);
        }
        let now = self.authority.now();
        if self.authority.store().revoke_grant(grant_id, now).await? {
            self.authority.grant_revoked(grant_id, now);
        }
        self.authority
            .record_grant(EventKind::Revoked, &grant, why, source)
            .await;
        Ok(true)
    }

    /// "Log out everywhere": revokes every live grant of `user` (every client; the store's
    /// change feed carries each revocation to every node, so the user's refresh and access
    /// tokens fail on the next request wherever it goes) as one audited action. Each grant's
    /// `revoked` event names the action, for its family's timeline; one `user_grants_revoked`
    /// event, the user's, says how many and `by` whom. Returns how many grants were revoked
    /// (0 for a user with none live: the action is still recorded).
    pub async fn log_out_everywhere(
        &self,
        user: &User,
        by: RevokedBy<'_>,
        source: Option<&Source>,
    ) -> Result<usize, StoreError> {
        let by = by.describe();
        let count = self
            .revoke_user_grants(&user.id, &format!("{LOG_OUT_EVERYWHERE}, by {by}"))
            .await?;
        let grants = if count == 1 { "grant" } else { "grants" };
        self.authority
            .record(Event {
                at: self.authority.now(),
                kind: EventKind::UserGrantsRevoked,
                client_id: None,
                user_id: Some(user.id.clone()),
                grant_id: None,
                detail: format!("{count} {grants}, by {by}"),
                source: source.and_then(Source::address_text),
                user_agent: source.and_then(|s| s.user_agent.clone()),
            })
            .await;
        tracing::info!(user_id = %user.id, revoked = count, "user logged out everywhere");
        Ok(count)
    }

    /// Revokes every live grant of a user; returns how many.
    pub async fn revoke_user_grants(&self, user_id: &str, why: &str) -> Result<usize, StoreError> {
        let ids = self
            .authority
            .store()
            .revoke_grants_of_user(user_id, self.authority.now())
            .await?;
        self.record_revocations(&ids, why).await?;
        Ok(ids.len())
    }

    /// Revokes every live grant of a client; returns how many.
    pub async fn revoke_client_grants(
        &self,
        client_id: &str,
        why: &str,
    ) -> Result<usize, StoreError> {
        let ids = self
            .authority
            .store()
            .revoke_grants_of_client(client_id, self.authority.now())
            .await?;
        self.record_revocations(&ids, why).await?;
        Ok(ids.len())
    }

    pub(crate) async fn record_revocations(
        &self,
        ids: &[String],
        why: &str,
    ) -> Result<(), StoreError> {
        let now = self.authority.now();
        for id in ids {
            self.authority.grant_revoked(id, now);
        }
        for id in ids {
            if let Some(grant) = self.authority.store().grant(id).await? {
                self.authority
                    .record_grant(EventKind::Revoked, &grant, why, None)
                    .await;
            }
        }
        Ok(())
    }
}
