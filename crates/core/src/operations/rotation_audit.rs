//! The evidence rotation audit mode gathers (docs/controls.md, "Rotation audit mode"): for one
//! client, the families that would have been revoked in the last 30 days had rotation been on,
//! with the users and addresses that presented their rotated-out tokens. The console's client
//! page and `tessera admin client show` print it, so that switching the client to
//! `rotation = on` is a decision made on evidence.
//!
//! It is read from the audit trail (the client's `rotation_audit` events since the start of the
//! period, newest first), bounded: at most [`MAX_AUDIT_EVENTS_READ`] events are read, and when
//! there were more the summary says its counts are lower bounds.

use std::collections::{BTreeSet, HashMap};

use crate::model::{EventKind, StoredEvent};
use crate::operations::operator::Operator;
use crate::store::{EventFilter, StoreError};
use crate::time::Timestamp;

/// The period the summary covers: Salesforce's advice is to audit for some weeks; a month
/// holds a monthly batch job's run.
pub const AUDIT_SUMMARY_DAYS: u64 = 30;
/// The most events one summary reads: a client that did not keep its tokens for a month can
/// have many more, and the page must stay cheap. Past it, counts are lower bounds.
pub const MAX_AUDIT_EVENTS_READ: u32 = 2_000;
/// The most families the summary lists (the most recently audited first); the count covers all
/// the events read.
pub const MAX_FAMILIES_LISTED: usize = 50;
/// The most distinct addresses listed for one family.
pub const MAX_ADDRESSES_LISTED: usize = 10;

/// What the last [`AUDIT_SUMMARY_DAYS`] days of a client's rotation audit events say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationAuditSummary {
    /// The start of the period.
    pub since: Timestamp,
    /// Distinct families (grants) with at least one `rotation_audit` event read: the families
    /// that rotation on would have revoked.
    pub family_count: usize,
    /// The events read.
    pub event_count: usize,
    /// More events than [`MAX_AUDIT_EVENTS_READ`] in the period: the counts are lower bounds.
    pub truncated: bool,
    /// The families, the most recently audited first, at most [`MAX_FAMILIES_LISTED`].
    pub families: Vec<AuditedFamily>,
}

/// One family's rotation audit events in the period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditedFamily {
    pub grant_id: String,
    pub user_id: Option<String>,
    /// The user's name, when the user still exists.
    pub username: Option<String>,
    /// The distinct addresses that presented its rotated-out tokens, in order, at most
    /// [`MAX_ADDRESSES_LISTED`].
    pub addresses: Vec<String>,
    pub count: u64,
    pub last_seen: Timestamp,
}

impl Operator {
    /// The rotation audit summary of `client_id` over the last [`AUDIT_SUMMARY_DAYS`] days.
    pub async fn rotation_audit_summary(
        &self,
        client_id: &str,
    ) -> Result<RotationAuditSummary, StoreError> {
        let since = Timestamp(
            self.authority
                .now()
                .millis()
                .saturating_sub((AUDIT_SUMMARY_DAYS * 86_400 * 1000) as i64),
        );
        let filter = EventFilter {
            client_id: Some(client_id.to_owned()),
            kind: Some(EventKind::RotationAudit),
            since: Some(since),
            newest_first: true,
            // One more than the bound, to know whether there were more.
            limit: MAX_AUDIT_EVENTS_READ + 1,
            ..EventFilter::default()
        };
        let events = self.authority.store().events(&filter).await?;
        let mut summary = summarise(since, &events);
        let mut usernames: HashMap<String, Option<String>> = HashMap::new();
        for family in &mut summary.families {
            let Some(user_id) = &family.user_id else {
                continue;
            };
            if !usernames.contains_key(user_id) {
                let user = self.authority.store().user_by_id(user_id).await?;
                usernames.insert(user_id.clone(), user.map(|u| u.username));
            }
            family.username = usernames.get(user_id).cloned().flatten();
        }
        Ok(summary)
    }
}

/// The summary of `events` (newest first, at most one more than [`MAX_AUDIT_EVENTS_READ`]),
/// without usernames.
fn summarise(since: Timestamp, events: &[StoredEvent]) -> RotationAuditSummary {
    let truncated = events.len() > MAX_AUDIT_EVENTS_READ as usize;
    let events = events
        .get(..MAX_AUDIT_EVENTS_READ as usize)
        .unwrap_or(events);
    let mut order: Vec<&str> = Vec::new();
    let mut families: HashMap<&str, (AuditedFamily, BTreeSet<String>)> = HashMap::new();
    for stored in events {
        let event = &stored.event;
        let Some(grant_id) = event.grant_id.as_deref() else {
            continue;
        };
        let (family, seen) = families.entry(grant_id).or_insert_with(|| {
            order.push(grant_id);
            let family = AuditedFamily {
                grant_id: grant_id.to_owned(),
                user_id: event.user_id.clone(),
                username: None,
                addresses: Vec::new(),
                count: 0,
                // Newest first: the first event seen is the last one.
                last_seen: event.at,
            };
            (family, BTreeSet::new())
        });
        family.count += 1;
        if let Some(address) = &event.source {
            if family.addresses.len() < MAX_ADDRESSES_LISTED && seen.insert(address.clone()) {
                family.addresses.push(address.clone());
            }
        }
    }
    let family_count = order.len();
    let listed = order
        .into_iter()
        .take(MAX_FAMILIES_LISTED)
        .filter_map(|grant_id| families.remove(grant_id).map(|(family, _)| family))
        .collect();
    RotationAuditSummary {
        since,
        family_count,
        event_count: events.len(),
        truncated,
        families: listed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Event;

    fn audited(id: i64, at: i64, grant: &str, user: &str, source: Option<&str>) -> StoredEvent {
        StoredEvent {
            id,
            event: Event {
                at: Timestamp(at),
                kind: EventKind::RotationAudit,
                client_id: Some("app".to_owned()),
                user_id: Some(user.to_owned()),
                grant_id: Some(grant.to_owned()),
                detail: "rotated out 1 generation ago".to_owned(),
                source: source.map(str::to_owned),
                user_agent: None,
            },
        }
    }

    #[test]
    fn families_are_counted_once_with_their_addresses_count_and_last_use() {
        // Newest first, as the store reads them.
        let events = [
            audited(5, 500, "g1", "005A", Some("192.0.2.1")),
            audited(4, 400, "g2", "005B", None),
            audited(3, 300, "g1", "005A", Some("2001:db8::1")),
            audited(2, 200, "g1", "005A", Some("192.0.2.1")),
        ];
        let summary = summarise(Timestamp(100), &events);
        assert_eq!(summary.family_count, 2);
        assert_eq!(summary.event_count, 4);
        assert!(!summary.truncated);
        let g1 = &summary.families[0];
        assert_eq!(
            (g1.grant_id.as_str(), g1.count, g1.last_seen),
            ("g1", 3, Timestamp(500))
        );
        assert_eq!(g1.addresses, ["192.0.2.1", "2001:db8::1"]);
        let g2 = &summary.families[1];
        assert_eq!((g2.grant_id.as_str(), g2.count), ("g2", 1));
        assert!(g2.addresses.is_empty());
        assert_eq!(g2.user_id.as_deref(), Some("005B"));
    }

    #[test]
    fn past_the_bound_the_summary_says_its_counts_are_lower_bounds() {
        let events: Vec<StoredEvent> = (0..=i64::from(MAX_AUDIT_EVENTS_READ))
            .map(|n| audited(n, n, &format!("g{n}"), "005A", None))
            .collect();
        let summary = summarise(Timestamp(0), &events);
        assert!(summary.truncated);
        assert_eq!(summary.event_count, MAX_AUDIT_EVENTS_READ as usize);
        assert_eq!(summary.family_count, MAX_AUDIT_EVENTS_READ as usize);
        assert_eq!(summary.families.len(), MAX_FAMILIES_LISTED);
        assert!(summarise(Timestamp(0), &[]).families.is_empty());
    }
}
