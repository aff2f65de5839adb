//! Housekeeping: what can no longer be used is removed, in short rounds.

use crate::authority::Authority;
use crate::policy::RefreshTokenPolicy;
use crate::store::{ClientPurge, PurgeCounts, PurgePlan, StoreError};
use crate::time::Timestamp;

/// Revoked grants are kept this long (introspection answers, audit joins), then removed: as long
/// as the longest-lived access token of theirs could still be unexpired. Reuse of their tokens
/// is still recognised afterwards, from the signed grant id.
pub(crate) const REVOKED_RETENTION_SECS: u64 = crate::policy::MAX_ACCESS_TOKEN_TTL_SECS;
/// Expired codes are kept this long, so that a late second use still finds (and revokes) what
/// the first use issued.
pub(crate) const CODE_RETENTION_SECS: u64 = 3600;
/// Rows one rule removes per round: one round is one short write, so that refreshes queued
/// behind it wait milliseconds, not the length of a backlog.
pub(crate) const PURGE_BATCH: u32 = 1000;

impl Authority {
    /// Writes the summaries of repeated audit events whose window has ended (see
    /// [`crate::operations::audit_repeats`]), then removes what can no longer be used: expired
    /// codes (and stored access tokens of the earlier format), grants past their policy or
    /// revoked long enough, old events, change-feed entries no longer in force. Before that, the
    /// signing keys' schedule (see [`crate::operations::signing_keys`]). Reuse detection
    /// survives it: a rotated-out token names its family from its own signature.
    /// Runs in rounds of at most [`PURGE_BATCH`] rows per rule until nothing is left.
    pub async fn housekeeping(&self) -> Result<PurgeCounts, StoreError> {
        // Windows of repeated events that ended with no later event to carry their count.
        self.summarise_repeats().await;
        // The signing keys' schedule; a failure here leaves the purge to go on (the keys are
        // tried again at the next round, and nothing signs with a key past its time meanwhile).
        if let Err(error) = self.rotate_signing_keys_when_due().await {
            tracing::error!(error = %error, "could not rotate the signing keys");
        }
        let plan = self.purge_plan(PURGE_BATCH).await?;
        let mut total = PurgeCounts::default();
        loop {
            let round = self.store().purge(&plan).await?;
            // Counted per round: a later round failing does not hide what earlier ones removed.
            crate::operations::metrics::purged(&round.counts);
            total.add(round.counts);
            if round.complete {
                return Ok(total);
            }
            // Let the requests queued behind this round in before the next one.
            tokio::task::yield_now().await;
        }
    }

    async fn purge_plan(&self, batch: u32) -> Result<PurgePlan, StoreError> {
        let now = self.now();
        let ago = |secs: u64| {
            Timestamp(
                now.millis()
                    .saturating_sub((secs as i64).saturating_mul(1000)),
            )
        };
        let clients = self.store().list_clients().await?;
        Ok(PurgePlan {
            batch,
            access_expired_before: now,
            codes_expired_before: ago(CODE_RETENTION_SECS),
            revoked_before: ago(REVOKED_RETENTION_SECS),
            events_before: ago(self.config().audit_retention_secs),
            idle_expired_before: now,
            changes_before: now,
            dpop_proofs_expired_before: now,
            clients: clients
                .iter()
                .map(|c| {
                    let created_before = match c.effective_refresh_policy() {
                        // No refresh ever works: the grant lives as long as its access tokens.
                        RefreshTokenPolicy::Zero => Some(ago(c.access_token_ttl_secs)),
                        p @ RefreshTokenPolicy::SpecificLifetime { .. } => p
                            .lifetime_secs()
                            .map(|l| ago(l.max(c.access_token_ttl_secs))),
                        RefreshTokenPolicy::Infinite
                        | RefreshTokenPolicy::SpecificInactivity { .. } => None,
                    };
                    ClientPurge {
                        client_id: c.client_id.clone(),
                        created_before,
                        access_only_created_before: ago(c.access_token_ttl_secs),
                    }
                })
                .collect(),
        })
    }
}
