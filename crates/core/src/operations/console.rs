//! The admin console's domain side: who may use it, its session, the audit events of what an
//! administrator does, and the data of a grant's timeline. The pages are in the HTTP crate.
//!
//! Nothing here is kept in process memory: a console session is a cookie signed with the server
//! key, and the administrator (with the session epoch the cookie must match) is read from the
//! store on every request, so any node serves any request and a logout, a revoked role or a
//! disabled account takes effect at the next click.

use tessera_proto::{ClientSecret, Password, SessionCookie};

use crate::authority::{idle_expiry, Source};
use crate::identity::login::{BrowserSession, LoginError};
use crate::model::{Client, Event, EventKind, Grant, StoredEvent, User};
use crate::operations::admin::{AdminError, ClientSettings};
use crate::operations::operator::Operator;
use crate::operations::revocations::{AdminRevokeError, RevokedBy};
use crate::store::{EventFilter, StoreError};
use crate::time::Timestamp;

/// How long a console login lasts: shorter than an end user's, as it can do more.
pub const ADMIN_SESSION_TTL_SECS: u64 = 3600;
/// What the console's logins are recorded as in place of a client (login failures and
/// throttling are audited by client).
pub(crate) const CONSOLE_CLIENT: &str = "admin-console";
/// The server key's purpose for console sessions: an end user's session cookie is no console
/// session, even for the same user.
const ADMIN_SESSION_PURPOSE: &str = "admin_session";
/// Most events one timeline draws.
const TIMELINE_EVENTS: u32 = 1000;

/// Most distinct clients, and most distinct users, whose names are looked up for one list of
/// events: a page of events rarely names more than a few, and past the bound the console shows
/// the ids as they are rather than make a page load cost hundreds of reads.
pub const EVENT_NAMES_LOOKED_UP: usize = 50;

/// The names of the clients and users a list of events mentions, by id, so that the console
/// shows "Console App" and "ada@example.com" where the events hold ids. An id missing here (a
/// deleted client, past [`EVENT_NAMES_LOOKED_UP`]) is shown as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventNames {
    clients: std::collections::BTreeMap<String, String>,
    users: std::collections::BTreeMap<String, String>,
}

impl EventNames {
    /// The names of `client` and `user` alone: a grant's timeline knows both already.
    pub fn of(client: Option<&Client>, user: Option<&User>) -> Self {
        Self {
            clients: client
                .map(|c| (c.client_id.clone(), c.name.clone()))
                .into_iter()
                .collect(),
            users: user
                .map(|u| (u.id.clone(), u.username.clone()))
                .into_iter()
                .collect(),
        }
    }

    pub fn client(&self, client_id: &str) -> Option<&str> {
        self.clients.get(client_id).map(String::as_str)
    }

    pub fn user(&self, user_id: &str) -> Option<&str> {
        self.users.get(user_id).map(String::as_str)
    }
}

/// The first `limit` distinct ids in `ids`, in the order they come.
fn first_distinct<'a>(ids: impl Iterator<Item = &'a str>, limit: usize) -> Vec<&'a str> {
    let mut distinct: Vec<&str> = Vec::new();
    for id in ids {
        if distinct.len() == limit {
            break;
        }
        if !distinct.contains(&id) {
            distinct.push(id);
        }
    }
    distinct
}

/// Why a console login did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleLoginError {
    /// As the end users' login form: wrong password, throttled, busy, store down.
    Login(LoginError),
    /// The right password of a user without the admin role: 403.
    NotAdmin,
}

/// An administrator's action, as the audit trail records it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AdminAction<'a> {
    kind: EventKind,
    client_id: Option<&'a str>,
    grant_id: Option<&'a str>,
    /// What was acted on, for people (a username, a client name); never a secret.
    detail: String,
}

impl<'a> AdminAction<'a> {
    /// An action on a client.
    fn on_client(kind: EventKind, client_id: &'a str, detail: impl Into<String>) -> Self {
        Self {
            kind,
            client_id: Some(client_id),
            grant_id: None,
            detail: detail.into(),
        }
    }

    /// An action on a grant.
    fn on_grant(kind: EventKind, grant_id: &'a str) -> Self {
        Self {
            kind,
            client_id: None,
            grant_id: Some(grant_id),
            detail: String::new(),
        }
    }

    /// An action on a user (or by one, such as logging in), named in the detail.
    fn on_user(kind: EventKind, user: &User) -> Self {
        Self {
            kind,
            client_id: None,
            grant_id: None,
            detail: format!("{} ({})", user.username, user.id),
        }
    }
}

/// A grant's family as the console draws it: the grant row, its client's policy, and the
/// events of the audit trail about it, oldest first.
#[derive(Debug, Clone)]
pub struct GrantTimeline {
    pub grant: Grant,
    /// `None` once the client is deleted (its grants are then revoked).
    pub client: Option<Client>,
    pub user: Option<User>,
    pub events: Vec<StoredEvent>,
    /// When the grant stops being refreshable under its client's policy, if it does.
    pub expires_at: Option<Timestamp>,
    /// When it was read: the right end of the drawing while the grant lives.
    pub now: Timestamp,
}

impl Operator {
    /// The console's login: the end users' password check and throttle, then the role.
    pub async fn console_login(
        &self,
        username: &str,
        password: Password,
        source: &Source,
    ) -> Result<User, ConsoleLoginError> {
        let user = self
            .authority
            .login(username, password, CONSOLE_CLIENT, source)
            .await
            .map_err(ConsoleLoginError::Login)?;
        let kind = if user.admin {
            EventKind::ConsoleLogin
        } else {
            EventKind::ConsoleRefused
        };
        self.record_admin_action(&user, AdminAction::on_user(kind, &user), source)
            .await;
        if user.admin {
            Ok(user)
        } else {
            tracing::warn!(user_id = %user.id, "console login refused: not an administrator");
            Err(ConsoleLoginError::NotAdmin)
        }
    }

    /// A signed console session cookie value for an administrator who just logged in.
    pub fn new_admin_session(&self, admin: &User) -> SessionCookie {
        self.authority
            .signed_session(ADMIN_SESSION_PURPOSE, admin, ADMIN_SESSION_TTL_SECS)
    }

    /// The console session of a cookie: it verifies, has not expired, and its user is active,
    /// still an administrator, and at the epoch the session was made in (a logout, a password
    /// change, a disable or a role change since has ended it).
    pub async fn admin_session(
        &self,
        cookie: Option<&SessionCookie>,
    ) -> Result<Option<BrowserSession>, StoreError> {
        Ok(self
            .authority
            .verified_session(ADMIN_SESSION_PURPOSE, ADMIN_SESSION_TTL_SECS, cookie)
            .await?
            .filter(|session| session.user.admin))
    }

    /// The console's logout: ends every browser session of the administrator (this console
    /// session, a captured copy of its cookie, and their other sessions), audited.
    pub async fn console_logout(
        &self,
        session: &BrowserSession,
        source: &Source,
    ) -> Result<(), StoreError> {
        self.authority.end_sessions(session).await?;
        let action = AdminAction::on_user(EventKind::ConsoleLogout, &session.user);
        self.record_admin_action(&session.user, action, source)
            .await;
        Ok(())
    }

    /// An administrator acting from the console, from `source`.
    pub fn acting_as<'a>(&self, admin: &'a User, source: &'a Source) -> ConsoleActor<'a> {
        ConsoleActor {
            operator: self.clone(),
            admin,
            source,
        }
    }

    /// Writes the audit event of an administrator's action, with the administrator as its user.
    async fn record_admin_action(&self, admin: &User, action: AdminAction<'_>, source: &Source) {
        let event = Event {
            at: self.authority.now(),
            kind: action.kind,
            client_id: action.client_id.map(str::to_owned),
            user_id: Some(admin.id.clone()),
            grant_id: action.grant_id.map(str::to_owned),
            detail: action.detail,
            source: source.address.map(|a| a.to_string()),
            user_agent: source.user_agent.clone(),
        };
        self.authority.record(event).await;
    }

    /// A grant's timeline, or `None` for an unknown grant.
    pub async fn grant_timeline(
        &self,
        grant_id: &str,
    ) -> Result<Option<GrantTimeline>, StoreError> {
        let Some(grant) = self.authority.store().grant(grant_id).await? else {
            return Ok(None);
        };
        let events = self
            .authority
            .store()
            .events(&EventFilter {
                grant_id: Some(grant.id.clone()),
                user_id: Some(grant.user_id.clone()),
                limit: TIMELINE_EVENTS,
                ..EventFilter::default()
            })
            .await?;
        let client = self
            .authority
            .store()
            .client_by_id(&grant.client_id)
            .await?;
        let user = self.authority.store().user_by_id(&grant.user_id).await?;
        let expires_at = client.as_ref().and_then(|c| grant_expiry(&grant, c));
        Ok(Some(GrantTimeline {
            grant,
            client,
            user,
            events,
            expires_at,
            now: self.authority.now(),
        }))
    }

    /// Every grant of a user (live and revoked), newest first.
    pub async fn grants_of_user(&self, user_id: &str) -> Result<Vec<Grant>, StoreError> {
        self.authority.store().grants_of_user(user_id).await
    }

    /// The names of the clients and users `events` mention, newest events' first, at most
    /// [`EVENT_NAMES_LOOKED_UP`] of each.
    pub async fn event_names(&self, events: &[StoredEvent]) -> Result<EventNames, StoreError> {
        let store = self.authority.store();
        let mut names = EventNames::default();
        let client_ids = events.iter().filter_map(|e| e.event.client_id.as_deref());
        for id in first_distinct(client_ids, EVENT_NAMES_LOOKED_UP) {
            if let Some(client) = store.client_by_id(id).await? {
                names.clients.insert(client.client_id, client.name);
            }
        }
        let user_ids = events.iter().filter_map(|e| e.event.user_id.as_deref());
        for id in first_distinct(user_ids, EVENT_NAMES_LOOKED_UP) {
            if let Some(user) = store.user_by_id(id).await? {
                names.users.insert(user.id, user.username);
            }
        }
        Ok(names)
    }

    /// A user by id, for the console's pages about them.
    pub async fn user_by_id(&self, user_id: &str) -> Result<Option<User>, StoreError> {
        self.authority.store().user_by_id(user_id).await
    }
}

/// An administrator acting from the console: each change is made as `tessera admin` makes it,
/// then audited with the administrator's user id (after the change, as the CLI's revocations
/// are: a failure to audit is logged, the change stands).
#[derive(Debug)]
pub struct ConsoleActor<'a> {
    operator: Operator,
    admin: &'a User,
    source: &'a Source,
}

impl ConsoleActor<'_> {
    async fn audit(&self, action: AdminAction<'_>) {
        self.operator
            .record_admin_action(self.admin, action, self.source)
            .await;
    }

    pub async fn create_client(
        &self,
        public: bool,
        settings: &ClientSettings,
    ) -> Result<(Client, Option<ClientSecret>), AdminError> {
        let (client, secret) = self.operator.create_client(public, settings).await?;
        let name = client.name.clone();
        self.audit(AdminAction::on_client(
            EventKind::ClientCreated,
            &client.client_id,
            name,
        ))
        .await;
        Ok((client, secret))
    }

    pub async fn update_client(
        &self,
        client_id: &str,
        settings: &ClientSettings,
    ) -> Result<Client, AdminError> {
        let client = self.operator.update_client(client_id, settings).await?;
        let name = client.name.clone();
        self.audit(AdminAction::on_client(
            EventKind::ClientUpdated,
            client_id,
            name,
        ))
        .await;
        Ok(client)
    }

    pub async fn rotate_client_secret(
        &self,
        client_id: &str,
        revoke_tokens: bool,
    ) -> Result<(Client, ClientSecret), AdminError> {
        let rotated = self
            .operator
            .rotate_client_secret(client_id, revoke_tokens)
            .await?;
        let detail = if revoke_tokens { "grants revoked" } else { "" };
        self.audit(AdminAction::on_client(
            EventKind::ClientSecretRotated,
            client_id,
            detail,
        ))
        .await;
        Ok(rotated)
    }

    pub async fn delete_client(&self, client_id: &str) -> Result<(), AdminError> {
        self.operator.delete_client(client_id).await?;
        self.audit(AdminAction::on_client(
            EventKind::ClientDeleted,
            client_id,
            "",
        ))
        .await;
        Ok(())
    }

    /// Disables (revoking every grant of the user) or enables a user, by id.
    pub async fn set_user_disabled(
        &self,
        user_id: &str,
        disabled: bool,
    ) -> Result<User, AdminError> {
        let user = self
            .operator
            .user_by_id(user_id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("user {user_id}")))?;
        let user = self
            .operator
            .set_user_disabled(&user.username, disabled)
            .await?;
        let kind = if disabled {
            EventKind::UserDisabled
        } else {
            EventKind::UserEnabled
        };
        self.audit(AdminAction::on_user(kind, &user)).await;
        Ok(user)
    }

    /// "Log out everywhere" for the user of `user_id`: every live grant revoked, the
    /// administrator named as who did it (see [`Operator::log_out_everywhere`]). Returns the
    /// user and how many grants were revoked.
    pub async fn log_out_everywhere(&self, user_id: &str) -> Result<(User, usize), AdminError> {
        let user = self
            .operator
            .user_by_id(user_id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("user {user_id}")))?;
        let count = self
            .operator
            .log_out_everywhere(&user, RevokedBy::Console(self.admin), Some(self.source))
            .await?;
        Ok((user, count))
    }

    /// Revokes a grant; its own `revoked` event names the console and the administrator. A grant
    /// revoked already is left as it is, and nothing is audited.
    pub async fn revoke_grant(&self, grant_id: &str) -> Result<bool, AdminRevokeError> {
        let why = format!("admin console, by {}", self.admin.username);
        let revoked = self.operator.revoke_grant_by_id(grant_id, &why).await?;
        if revoked {
            let action = AdminAction::on_grant(EventKind::GrantRevokedByAdmin, grant_id);
            self.audit(action).await;
        }
        Ok(revoked)
    }
}

/// When a grant stops being refreshable under its client's policy: its absolute lifetime from
/// creation, or its idle limit from its last use, as the refresh path counts them; `None` for a
/// policy without an end.
fn grant_expiry(grant: &Grant, client: &Client) -> Option<Timestamp> {
    match client.effective_refresh_policy().lifetime_secs() {
        Some(lifetime) => Some(grant.created_at.plus_secs(lifetime)),
        None => idle_expiry(client, grant.last_used_at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_of_events_looks_up_each_name_once_and_no_more_than_the_bound() {
        let ids = ["b", "a", "b", "c", "a", "d"];
        assert_eq!(first_distinct(ids.into_iter(), 10), ["b", "a", "c", "d"]);
        assert_eq!(first_distinct(ids.into_iter(), 2), ["b", "a"]);
        let many: Vec<String> = (0..500).map(|n| format!("id{n}")).collect();
        assert_eq!(
            first_distinct(many.iter().map(String::as_str), EVENT_NAMES_LOOKED_UP).len(),
            EVENT_NAMES_LOOKED_UP
        );
    }
}
