//! An end user's own connected apps: the grants they approved, grouped by app, which they may
//! revoke one by one or all at once ("log out everywhere"), from the page their browser session
//! opens. Only the session's user's grants are ever listed or revoked: a grant id of anyone
//! else is answered as an unknown one.

use crate::authority::{Authority, Source};
use crate::identity::login::BrowserSession;
use crate::model::Grant;
use crate::operations::revocations::{AdminRevokeError, RevokedBy};
use crate::store::StoreError;

/// What the connected-apps page's logins are recorded as in place of a client (login failures
/// and throttling are audited by client).
pub const CONNECTED_APPS_CLIENT: &str = "connected-apps";

/// The detail of a grant's `revoked` event when its user revoked it on the page.
const REVOKED_BY_THE_USER: &str = "by the user, connected apps page";

/// One app the user has approved, with every grant of theirs to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectedApp {
    pub client_id: String,
    /// The client's name; its id when the client has been deleted since.
    pub name: String,
    /// Newest first, live and revoked.
    pub grants: Vec<Grant>,
}

impl ConnectedApp {
    /// Whether any grant of the app still works.
    pub fn is_live(&self) -> bool {
        self.grants.iter().any(|g| g.revoked_at.is_none())
    }
}

/// `grants` (newest first) grouped by client, in the order each client first appears, so the
/// app used most recently comes first and each app's grants stay newest first.
fn grouped(grants: Vec<Grant>) -> Vec<(String, Vec<Grant>)> {
    let mut apps: Vec<(String, Vec<Grant>)> = Vec::new();
    for grant in grants {
        match apps.iter_mut().find(|(id, _)| *id == grant.client_id) {
            Some((_, of_app)) => of_app.push(grant),
            None => apps.push((grant.client_id.clone(), vec![grant])),
        }
    }
    apps
}

impl Authority {
    /// The session's user's grants, grouped by app (see [`grouped`]).
    pub async fn connected_apps(
        &self,
        session: &BrowserSession,
    ) -> Result<Vec<ConnectedApp>, StoreError> {
        let grants = self.store().grants_of_user(&session.user.id).await?;
        let mut apps = Vec::new();
        for (client_id, grants) in grouped(grants) {
            let name = self
                .read_cached_client(&client_id, |c| c.name.clone())
                .await?
                .unwrap_or_else(|| client_id.clone());
            apps.push(ConnectedApp {
                client_id,
                name,
                grants,
            });
        }
        Ok(apps)
    }

    /// Revokes one grant of the session's user, audited with the user as who did it. A grant of
    /// another user is [`AdminRevokeError::NotFound`] and stays as it is. Returns false if it
    /// was already revoked.
    pub async fn revoke_connected_app(
        &self,
        session: &BrowserSession,
        grant_id: &str,
        source: &Source,
    ) -> Result<bool, AdminRevokeError> {
        self.operator()
            .revoke_grant_of(
                grant_id,
                Some(&session.user.id),
                REVOKED_BY_THE_USER,
                Some(source),
            )
            .await
    }

    /// "Log out everywhere" by the user themselves: every live grant of theirs revoked, as
    /// [`crate::Operator::log_out_everywhere`] does. Their browser sessions stay (the page
    /// they are on keeps working). Returns how many grants were revoked.
    pub async fn log_out_of_every_app(
        &self,
        session: &BrowserSession,
        source: &Source,
    ) -> Result<usize, StoreError> {
        self.operator()
            .log_out_everywhere(&session.user, RevokedBy::TheUser, Some(source))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;

    fn grant(id: &str, client_id: &str) -> Grant {
        Grant {
            id: id.to_owned(),
            client_id: client_id.to_owned(),
            user_id: "u".to_owned(),
            org_id: "00D000000000001".to_owned(),
            scope: tessera_proto::Scope::default(),
            created_at: Timestamp(0),
            last_used_at: Timestamp(0),
            revoked_at: None,
            has_refresh_token: true,
            auth_time: None,
            nonce: None,
            dpop_jkt: None,
        }
    }

    #[test]
    fn grants_are_grouped_by_app_in_the_order_the_apps_first_appear() {
        let grants = vec![
            grant("g4", "b"),
            grant("g3", "a"),
            grant("g2", "b"),
            grant("g1", "c"),
        ];
        let apps = grouped(grants);
        let shape: Vec<(&str, Vec<&str>)> = apps
            .iter()
            .map(|(app, gs)| (app.as_str(), gs.iter().map(|g| g.id.as_str()).collect()))
            .collect();
        assert_eq!(
            shape,
            [
                ("b", vec!["g4", "g2"]),
                ("a", vec!["g3"]),
                ("c", vec!["g1"])
            ]
        );
    }
}
