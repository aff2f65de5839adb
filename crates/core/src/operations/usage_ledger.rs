//! The usage ledger: the uses of grants whose refresh writes no row, kept in memory and written
//! in batches, so that counting them adds no write to the refresh's hot path (docs/usage.md,
//! "How fresh the counts are").
//!
//! A rotation, and a refresh under an idle limit, write the grant's row anyway: they count their
//! use in that write (the store's `commit_refresh`). Every other refresh that answered tokens —
//! a refresh without rotation of a grant whose policy has no idle limit — is recorded here, one
//! entry per grant (uses added up, the latest use kept), and written by
//! [`Authority::flush_usage`]: by the server's flusher every few seconds, at shutdown, and early
//! when the ledger holds [`AuthorityConfig::usage_ledger_capacity`] grants.
//!
//! Why a late `last_used_at` is harmless: only an idle limit reads a grant's last use (idle
//! expiry, housekeeping), and a grant under an idle limit never reaches this ledger — its
//! refresh writes its last use synchronously. The grants here have no idle limit, so moving
//! their last use later by a flush (never earlier: the store keeps the later of the two) cannot
//! expire or extend anything. Keep it that way: a refresh that records its use must not come
//! here.
//!
//! [`AuthorityConfig::usage_ledger_capacity`]: crate::authority::AuthorityConfig::usage_ledger_capacity

use std::collections::HashMap;
use std::sync::Mutex;

use crate::authority::Authority;
use crate::store::{StoreError, UsageDelta};
use crate::time::Timestamp;

/// How often the server writes the ledger unless configured otherwise: the most a use count
/// and a "last used" of a non-rotating grant without idle limit lag behind.
pub const DEFAULT_USAGE_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Distinct grants the ledger holds before it is written early: some 100 bytes each, so about
/// 10 MB at most. At 5 s between flushes, 20,000 distinct grants refreshed a second fill it.
pub const DEFAULT_USAGE_LEDGER_CAPACITY: usize = 100_000;

/// One grant's uses not yet written.
#[derive(Debug, Clone, Copy)]
struct Pending {
    uses: u64,
    last_used_at: Timestamp,
}

/// Uses not yet written, per grant, at most `capacity` grants.
#[derive(Debug)]
pub(crate) struct UsageLedger {
    capacity: usize,
    pending: Mutex<HashMap<String, Pending>>,
}

impl UsageLedger {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            pending: Mutex::new(HashMap::new()),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records one use of `grant_id` at `at`. When this fills the ledger, returns everything it
    /// held (it is then empty) for the caller to write: the early flush that bounds its memory.
    pub(crate) fn record(&self, grant_id: &str, at: Timestamp) -> Option<Vec<UsageDelta>> {
        let mut pending = self.pending();
        if let Some(entry) = pending.get_mut(grant_id) {
            entry.uses += 1;
            entry.last_used_at = entry.last_used_at.max(at);
            return None;
        }
        pending.insert(
            grant_id.to_owned(),
            Pending {
                uses: 1,
                last_used_at: at,
            },
        );
        (pending.len() >= self.capacity).then(|| drain(&mut pending))
    }

    /// Everything held, by grant id (every node then updates rows in one order, which keeps
    /// their batches from deadlocking on PostgreSQL); the ledger is then empty.
    pub(crate) fn take(&self) -> Vec<UsageDelta> {
        drain(&mut self.pending())
    }

    /// Puts back a batch that could not be written, merged with what was recorded meanwhile,
    /// as far as the capacity allows; returns how many grants' deltas were dropped (their uses
    /// are lost, a count may then be short — never a token decision: see the module's note).
    pub(crate) fn restore(&self, batch: Vec<UsageDelta>) -> usize {
        let mut pending = self.pending();
        let mut dropped = 0;
        for delta in batch {
            let held = pending.len();
            match pending.get_mut(&delta.grant_id) {
                Some(entry) => {
                    entry.uses += delta.uses;
                    entry.last_used_at = entry.last_used_at.max(delta.last_used_at);
                }
                None if held < self.capacity => {
                    pending.insert(
                        delta.grant_id,
                        Pending {
                            uses: delta.uses,
                            last_used_at: delta.last_used_at,
                        },
                    );
                }
                None => dropped += 1,
            }
        }
        dropped
    }

    /// Grants with uses not yet written.
    pub(crate) fn len(&self) -> usize {
        self.pending().len()
    }
}

fn drain(pending: &mut HashMap<String, Pending>) -> Vec<UsageDelta> {
    let mut batch: Vec<UsageDelta> = pending
        .drain()
        .map(|(grant_id, entry)| UsageDelta {
            grant_id,
            uses: entry.uses,
            last_used_at: entry.last_used_at,
        })
        .collect();
    batch.sort_by(|a, b| a.grant_id.cmp(&b.grant_id));
    batch
}

impl Authority {
    /// A refresh that answered tokens and wrote no row: its use goes to the ledger. When that
    /// fills it, the batch is written on a task of its own, so that this refresh does not wait.
    pub(crate) fn record_unwritten_use(&self, grant_id: &str, at: Timestamp) {
        if let Some(batch) = self.usage_ledger().record(grant_id, at) {
            let authority = self.clone();
            tokio::spawn(async move {
                if let Err(error) = authority.write_usage(batch).await {
                    tracing::warn!(%error, "could not write the usage ledger early; kept for the next flush");
                }
            });
        }
    }

    /// Writes every use the ledger holds, as one batched store call (one transaction); returns
    /// how many grants it updated. On failure the uses are kept for the next flush (as far as
    /// the ledger's capacity allows). The server calls it every few seconds and at shutdown.
    pub async fn flush_usage(&self) -> Result<usize, StoreError> {
        let batch = self.usage_ledger().take();
        self.write_usage(batch).await
    }

    /// Grants whose uses the ledger holds, not yet written.
    pub fn unwritten_usage(&self) -> usize {
        self.usage_ledger().len()
    }

    async fn write_usage(&self, batch: Vec<UsageDelta>) -> Result<usize, StoreError> {
        if batch.is_empty() {
            return Ok(0);
        }
        match self.store().record_usage(&batch).await {
            Ok(()) => Ok(batch.len()),
            Err(error) => {
                let dropped = self.usage_ledger().restore(batch);
                if dropped > 0 {
                    tracing::warn!(
                        dropped,
                        "the usage ledger is full and could not be written: some use counts will be short"
                    );
                }
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> Timestamp {
        Timestamp(1_700_000_000_000).plus_secs(secs)
    }

    fn summary(batch: &[UsageDelta]) -> Vec<(&str, u64, Timestamp)> {
        batch
            .iter()
            .map(|d| (d.grant_id.as_str(), d.uses, d.last_used_at))
            .collect()
    }

    #[test]
    fn uses_of_one_grant_coalesce_into_one_delta_with_the_latest_use() {
        let ledger = UsageLedger::new(10);
        assert!(ledger.record("g2", at(5)).is_none());
        assert!(ledger.record("g1", at(1)).is_none());
        assert!(ledger.record("g2", at(9)).is_none());
        // A use recorded late (a slow request) never moves the last use back.
        assert!(ledger.record("g2", at(7)).is_none());
        assert_eq!(ledger.len(), 2);

        let batch = ledger.take();
        assert_eq!(summary(&batch), [("g1", 1, at(1)), ("g2", 3, at(9))]);
        assert_eq!(ledger.len(), 0);
        assert!(ledger.take().is_empty());
    }

    #[test]
    fn the_use_that_fills_the_ledger_hands_back_everything_and_empties_it() {
        let ledger = UsageLedger::new(3);
        assert!(ledger.record("a", at(1)).is_none());
        assert!(ledger.record("b", at(2)).is_none());
        // More uses of grants held do not grow it.
        assert!(ledger.record("a", at(3)).is_none());
        let early = ledger.record("c", at(4)).expect("the third grant fills it");
        assert_eq!(
            summary(&early),
            [("a", 2, at(3)), ("b", 1, at(2)), ("c", 1, at(4))]
        );
        assert_eq!(ledger.len(), 0);
        assert!(ledger.record("d", at(5)).is_none());
    }

    #[test]
    fn a_batch_not_written_is_put_back_merged_up_to_the_capacity() {
        let ledger = UsageLedger::new(3);
        ledger.record("a", at(1));
        ledger.record("b", at(2));
        let failed = ledger.take();
        // Meanwhile: another use of a, and a new grant.
        ledger.record("a", at(6));
        ledger.record("z", at(7));
        let extra = UsageDelta {
            grant_id: "y".to_owned(),
            uses: 4,
            last_used_at: at(3),
        };
        let mut batch = failed;
        batch.push(extra);
        // a merges, b fits (third grant), y does not: dropped.
        assert_eq!(ledger.restore(batch), 1);
        assert_eq!(
            summary(&ledger.take()),
            [("a", 2, at(6)), ("b", 1, at(2)), ("z", 1, at(7))]
        );
    }
}
