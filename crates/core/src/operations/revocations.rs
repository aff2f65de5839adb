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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tessera_proto::Password;

    use super::*;
    use crate::authority::{Authority, AuthorityConfig};
    use crate::operations::admin::ClientSettings;
    use crate::store::memory::MemoryStore;
    use crate::store::EventFilter;
    use crate::time::{ManualClock, SystemRandom, Timestamp};
    use crate::tokens::server_key::ServerKey;

    /// An authority on a memory store, a client, and `users` with a grant each of it (two for
    /// the first); returns the authority and the users.
    async fn world(users: &[&str]) -> (Authority, Vec<User>) {
        let authority = Authority::new(
            Arc::new(MemoryStore::new()),
            Arc::new(ManualClock::new(Timestamp(1_800_000_000_000))),
            Arc::new(SystemRandom),
            AuthorityConfig::new("http://as.test", ServerKey::generate(&SystemRandom)),
        );
        let operator = authority.operator();
        let settings = ClientSettings {
            name: Some("App".into()),
            redirect_uris: Some(vec!["https://app.example/cb".into()]),
            ..ClientSettings::default()
        };
        let (client, _) = operator.create_client(false, &settings).await.unwrap();
        let mut made = Vec::new();
        for (n, username) in users.iter().enumerate() {
            let user = operator
                .create_user(username, Password::new("a password"), None)
                .await
                .unwrap();
            for _ in 0..if n == 0 { 2 } else { 1 } {
                operator
                    .mint_for(&client.client_id, username, "api refresh_token")
                    .await
                    .unwrap();
            }
            made.push(user);
        }
        (authority, made)
    }

    async fn live(authority: &Authority, user: &User) -> usize {
        let grants = authority.store().grants_of_user(&user.id).await.unwrap();
        grants.iter().filter(|g| g.revoked_at.is_none()).count()
    }

    async fn events_of(authority: &Authority, kind: EventKind) -> Vec<Event> {
        let filter = EventFilter {
            limit: 1000,
            kind: Some(kind),
            ..EventFilter::default()
        };
        let events = authority.store().events(&filter).await.unwrap();
        events.into_iter().map(|e| e.event).collect()
    }

    #[tokio::test]
    async fn log_out_everywhere_revokes_the_users_grants_only_and_records_the_action_once() {
        let (authority, users) = world(&["ada@example.com", "bo@example.com"]).await;
        let (ada, bo) = (&users[0], &users[1]);
        let operator = authority.operator();
        let count = operator
            .log_out_everywhere(ada, RevokedBy::CommandLine, None)
            .await
            .unwrap();
        assert_eq!(count, 2);
        assert_eq!(live(&authority, ada).await, 0);
        assert_eq!(live(&authority, bo).await, 1);
        let action = events_of(&authority, EventKind::UserGrantsRevoked).await;
        assert_eq!(action.len(), 1);
        assert_eq!(action[0].user_id.as_deref(), Some(ada.id.as_str()));
        assert_eq!(action[0].detail, "2 grants, by admin command line");
        let revoked = events_of(&authority, EventKind::Revoked).await;
        assert_eq!(revoked.len(), 2);
        assert!(revoked
            .iter()
            .all(|e| e.detail == "log out everywhere, by admin command line"));

        // Again: nothing to revoke, and the action still recorded, with 0.
        let again = operator
            .log_out_everywhere(ada, RevokedBy::TheUser, None)
            .await
            .unwrap();
        assert_eq!(again, 0);
        let action = events_of(&authority, EventKind::UserGrantsRevoked).await;
        assert_eq!(
            action[1].detail,
            "0 grants, by the user, connected apps page"
        );
    }

    #[tokio::test]
    async fn a_grant_of_another_owner_is_not_found_and_stays_live() {
        let (authority, users) = world(&["ada@example.com", "bo@example.com"]).await;
        let (ada, bo) = (&users[0], &users[1]);
        let bos = authority.store().grants_of_user(&bo.id).await.unwrap()[0]
            .id
            .clone();
        let operator = authority.operator();
        let refused = operator
            .revoke_grant_of(&bos, Some(&ada.id), "test", None)
            .await;
        assert!(matches!(refused, Err(AdminRevokeError::NotFound)));
        assert_eq!(live(&authority, bo).await, 1);
        assert!(operator
            .revoke_grant_of(&bos, Some(&bo.id), "test", None)
            .await
            .unwrap());
        assert_eq!(live(&authority, bo).await, 0);
    }
}
