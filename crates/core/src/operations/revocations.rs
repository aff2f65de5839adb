//! The administrator's revocations: one grant, or every grant of a user or of a client, each
//! recorded in the audit trail. (Revocation by token possession, RFC 7009, is a flow:
//! `flows/revocation.rs`.)

use crate::model::EventKind;
use crate::operations::operator::Operator;
use crate::store::StoreError;

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
        let grant = self
            .authority
            .store()
            .grant(grant_id)
            .await?
            .ok_or(AdminRevokeError::NotFound)?;
        if grant.revoked_at.is_some() {
            return Ok(false);
        }
        let now = self.authority.now();
        if self.authority.store().revoke_grant(grant_id, now).await? {
            self.authority.grant_revoked(grant_id, now);
        }
        self.authority
            .record_grant(EventKind::Revoked, &grant, why, None)
            .await;
        Ok(true)
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
