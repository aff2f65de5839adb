//! Repeated security events, written once per window (docs/security.md, "The audit trail").
//!
//! A flood of replays of one stolen refresh token, or of one spent authorization code, is one
//! incident, not hundreds: the first event of a kind about a grant is written, with its
//! revocation, as always; its repeats inside [`REPEAT_WINDOW_SECS`] are only counted. The count
//! is carried by the next event written for that grant and kind (`… (+41 repeats since …)`),
//! or, when none follows, by a summarising event that housekeeping writes once the window has
//! ended. A revocation is never held back: its event is always written, and opens a window.
//!
//! Refused refreshes (`refresh_refused`) are counted the same way, per client, source and
//! reason rather than per grant (most name no grant: the token is unknown or forged). Their
//! subjects are the attacker's to choose — a new address or a new bogus token costs nothing —
//! so at most [`MAX_REFUSALS_ITEMISED_PER_WINDOW`] new windows open per window; the refusals
//! past that are counted by reason only, and housekeeping writes one summary per reason.
//!
//! The state is bounded: at most [`MAX_TRACKED_GRANTS`] windows, the least recently written
//! dropped first, its count written as a summary then, so a flood of distinct grants costs a
//! fixed amount of memory and loses no count.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;

use crate::model::{Event, EventKind};
use crate::time::{format_utc, Timestamp};

/// How long the repeats of a written event are only counted. A minute: the default
/// per-source failure budget's window, so a flood that goes on writes about one event per grant
/// per minute (its 429s write nothing at all), and an operator still sees within a minute or
/// two — at the next housekeeping round — how many repeats there were.
pub(crate) const REPEAT_WINDOW_SECS: u64 = 60;

/// Grants whose windows are remembered at most. An entry holds one event (about 300 bytes), so
/// this bounds the state at a few megabytes; a grant pushed out early only gets its next
/// event written a little sooner.
pub(crate) const MAX_TRACKED_GRANTS: usize = 10_000;

/// New windows of refused refreshes opened per window at most: past it, a flood of bogus
/// tokens from ever new addresses writes one summary per reason, not one event per address.
pub(crate) const MAX_REFUSALS_ITEMISED_PER_WINDOW: u32 = 100;

/// The kinds whose repeats are counted instead of written: replays of what is already known
/// to be compromised or in flight, and refused refreshes. Every other kind is written every
/// time.
pub(crate) fn counts_repeats(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::ReuseDetected
            | EventKind::ConcurrentRefreshRefused
            | EventKind::CodeReused
            | EventKind::RefreshRefused
    )
}

/// What a window counts the repeats of: a kind of event about a subject (a grant id, or for a
/// refused refresh its client, source and reason).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    kind: EventKind,
    subject: String,
}

#[derive(Debug)]
struct Window {
    /// The event that opened it: the pattern of its summary.
    opened_by: Event,
    /// Repeats counted and not written since it opened.
    repeats: u32,
}

impl Window {
    fn ended(&self, now: Timestamp) -> bool {
        now >= self.opened_by.at.plus_secs(REPEAT_WINDOW_SECS)
    }

    /// `(+N repeats since …)`, or nothing when there were none.
    fn count_suffix(&self) -> Option<String> {
        (self.repeats > 0).then(|| {
            format!(
                "(+{} repeats since {})",
                self.repeats,
                format_utc(self.opened_by.at.millis())
            )
        })
    }

    /// The event that reports the window's repeats when no later event carries them: the
    /// grant's, with the count, without the source (the repeats may have come from anywhere).
    /// A refused refresh's window is one source's, so its summary keeps the source.
    fn summary(self, now: Timestamp) -> Option<Event> {
        let suffix = self.count_suffix()?;
        let detail = match self.opened_by.detail.as_str() {
            "" => format!("repeats {suffix}"),
            detail => format!("{detail}: repeats {suffix}"),
        };
        let per_source = self.opened_by.kind == EventKind::RefreshRefused;
        let (source, user_agent) = if per_source {
            (
                self.opened_by.source.clone(),
                self.opened_by.user_agent.clone(),
            )
        } else {
            (None, None)
        };
        Some(Event {
            at: now,
            detail,
            source,
            user_agent,
            ..self.opened_by
        })
    }
}

/// The refused refreshes past the cap on new windows: counted by their detail (a fixed
/// vocabulary of reasons, so a handful of entries), reported by housekeeping.
#[derive(Debug, Default)]
struct Unitemised {
    /// When the current window of openings began, and how many it has opened.
    openings_since: Option<Timestamp>,
    openings: u32,
    /// Per detail: when the first was counted, and how many.
    counted: Vec<(String, Timestamp, u32)>,
}

impl Unitemised {
    /// Whether one more window may open at `now`; if not, the refusal is counted under
    /// `detail`.
    fn may_open(&mut self, detail: &str, now: Timestamp) -> bool {
        let ended = self
            .openings_since
            .is_none_or(|since| now >= since.plus_secs(REPEAT_WINDOW_SECS));
        if ended {
            self.openings_since = Some(now);
            self.openings = 0;
        }
        if self.openings < MAX_REFUSALS_ITEMISED_PER_WINDOW {
            self.openings += 1;
            return true;
        }
        match self.counted.iter_mut().find(|(d, _, _)| d == detail) {
            Some((_, _, count)) => *count = count.saturating_add(1),
            None => self.counted.push((detail.to_owned(), now, 1)),
        }
        false
    }

    /// One summary per reason counted, with no client and no source (they were many).
    fn summaries(&mut self, now: Timestamp) -> Vec<Event> {
        std::mem::take(&mut self.counted)
            .into_iter()
            .map(|(detail, since, count)| Event {
                at: now,
                kind: EventKind::RefreshRefused,
                client_id: None,
                user_id: None,
                grant_id: None,
                detail: format!(
                    "{detail}: {count} more from other clients or sources since {}, not \
                     itemised (at most {MAX_REFUSALS_ITEMISED_PER_WINDOW} a minute are)",
                    format_utc(since.millis())
                ),
                source: None,
                user_agent: None,
            })
            .collect()
    }
}

/// The windows of the grants whose repeats are being counted.
#[derive(Debug)]
pub(crate) struct AuditRepeats {
    windows: Mutex<LruCache<Key, Window>>,
    unitemised: Mutex<Unitemised>,
}

impl Default for AuditRepeats {
    fn default() -> Self {
        Self::with_capacity(MAX_TRACKED_GRANTS)
    }
}

impl AuditRepeats {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            windows: Mutex::new(LruCache::new(
                NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN),
            )),
            unitemised: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<Key, Window>> {
        self.windows.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether an event of `kind` about `subject` (a grant id) at `now` is a repeat inside an
    /// open window: if so it is counted, and must not be written. Asked before the event is
    /// built, so that a repeat costs no read either.
    pub(crate) fn is_repeat(&self, kind: EventKind, subject: &str, now: Timestamp) -> bool {
        if !counts_repeats(kind) {
            return false;
        }
        let key = Key {
            kind,
            subject: subject.to_owned(),
        };
        match self.lock().peek_mut(&key) {
            Some(window) if !window.ended(now) => {
                window.repeats = window.repeats.saturating_add(1);
                true
            }
            _ => false,
        }
    }

    /// `event` is to be written (it is no repeat, or it revokes): it opens a new window, and
    /// carries the count of the one it closes. Returns what to write: the event, and the
    /// summary of a window dropped to make room, if that one had repeats.
    pub(crate) fn written(&self, event: Event) -> Vec<Event> {
        let Some(grant_id) = event
            .grant_id
            .clone()
            .filter(|_| counts_repeats(event.kind))
        else {
            return vec![event];
        };
        self.open(grant_id, event)
    }

    /// A refused refresh, `event`, whose repeats are counted per `subject` (its client, source
    /// and reason): what to write now. Nothing for a repeat inside its window, nor for one past
    /// the cap on new windows (counted for housekeeping's summary); otherwise the event, which
    /// opens a window.
    pub(crate) fn refused(&self, subject: String, event: Event) -> Vec<Event> {
        if self.is_repeat(event.kind, &subject, event.at) {
            return Vec::new();
        }
        let may_open = self
            .unitemised
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .may_open(&event.detail, event.at);
        if !may_open {
            return Vec::new();
        }
        self.open(subject, event)
    }

    /// Opens a window for `event`'s repeats about `subject`, carrying the count of the one it
    /// closes.
    fn open(&self, subject: String, mut event: Event) -> Vec<Event> {
        let key = Key {
            kind: event.kind,
            subject,
        };
        let mut windows = self.lock();
        if let Some(suffix) = windows.pop(&key).and_then(|closed| closed.count_suffix()) {
            event.detail = match event.detail.as_str() {
                "" => suffix,
                detail => format!("{detail} {suffix}"),
            };
        }
        let now = event.at;
        let window = Window {
            opened_by: event.clone(),
            repeats: 0,
        };
        let dropped = windows
            .push(key, window)
            .and_then(|(_, dropped)| dropped.summary(now));
        drop(windows);
        dropped.into_iter().chain([event]).collect()
    }

    /// Closes every window that has ended: the summaries of those that counted repeats, to be
    /// written (by housekeeping).
    pub(crate) fn close_ended(&self, now: Timestamp) -> Vec<Event> {
        let mut windows = self.lock();
        let ended: Vec<Key> = windows
            .iter()
            .filter(|(_, window)| window.ended(now))
            .map(|(key, _)| key.clone())
            .collect();
        let mut summaries: Vec<Event> = ended
            .into_iter()
            .filter_map(|key| windows.pop(&key))
            .filter_map(|window| window.summary(now))
            .collect();
        drop(windows);
        summaries.extend(
            self.unitemised
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .summaries(now),
        );
        summaries
    }

    /// Windows held: for tests.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp(1_800_000_000_000);

    fn event(kind: EventKind, grant: &str, at: Timestamp) -> Event {
        Event {
            at,
            kind,
            client_id: Some("c".into()),
            user_id: Some("u".into()),
            grant_id: Some(grant.into()),
            detail: "family already revoked".into(),
            source: Some("203.0.113.9".into()),
            user_agent: None,
        }
    }

    #[test]
    fn repeats_inside_the_window_are_counted_and_carried_by_the_next_written_event() {
        let repeats = AuditRepeats::default();
        let kind = EventKind::ReuseDetected;
        assert!(!repeats.is_repeat(kind, "g", T0), "the first is written");
        assert_eq!(repeats.written(event(kind, "g", T0)).len(), 1);
        for s in 1..=41 {
            assert!(repeats.is_repeat(kind, "g", T0.plus_secs(s)));
        }
        // Another grant, another kind: not repeats of this one.
        assert!(!repeats.is_repeat(kind, "h", T0));
        assert!(!repeats.is_repeat(EventKind::CodeReused, "g", T0));
        let later = T0.plus_secs(REPEAT_WINDOW_SECS);
        assert!(!repeats.is_repeat(kind, "g", later), "the window has ended");
        let written = repeats.written(event(kind, "g", later));
        assert_eq!(written.len(), 1);
        let detail = &written[0].detail;
        assert!(
            detail.starts_with("family already revoked (+41 repeats since "),
            "{detail}"
        );
    }

    #[test]
    fn a_revocation_is_written_even_inside_an_open_window() {
        let repeats = AuditRepeats::default();
        let kind = EventKind::ReuseDetected;
        repeats.written(event(kind, "g", T0));
        assert!(repeats.is_repeat(kind, "g", T0.plus_secs(1)));
        // The caller writes a revocation without asking `is_repeat`: it carries the count.
        let written = repeats.written(event(kind, "g", T0.plus_secs(2)));
        assert_eq!(written.len(), 1);
        assert!(
            written[0].detail.contains("(+1 repeats since"),
            "{written:?}"
        );
    }

    #[test]
    fn housekeeping_summarises_ended_windows_that_had_repeats() {
        let repeats = AuditRepeats::default();
        let kind = EventKind::ConcurrentRefreshRefused;
        repeats.written(event(kind, "quiet", T0));
        repeats.written(event(kind, "noisy", T0));
        for _ in 0..3 {
            assert!(repeats.is_repeat(kind, "noisy", T0.plus_secs(1)));
        }
        assert!(
            repeats.close_ended(T0.plus_secs(30)).is_empty(),
            "still open"
        );
        let summaries = repeats.close_ended(T0.plus_secs(REPEAT_WINDOW_SECS));
        assert_eq!(summaries.len(), 1, "{summaries:?}");
        assert_eq!(summaries[0].grant_id.as_deref(), Some("noisy"));
        assert_eq!(summaries[0].kind, kind);
        assert!(summaries[0].detail.contains("(+3 repeats since"));
        assert_eq!(summaries[0].source, None);
        assert_eq!(repeats.len(), 0, "ended windows are let go");
    }

    #[test]
    fn a_flood_of_distinct_grants_stays_under_the_cap_and_loses_no_count() {
        let repeats = AuditRepeats::with_capacity(100);
        let kind = EventKind::CodeReused;
        let mut summaries = 0;
        for i in 0..10_000 {
            let grant = format!("g{i}");
            // Each write beyond the cap drops the oldest window; one that counted a repeat
            // comes back as a summary beside the written event.
            summaries += repeats.written(event(kind, &grant, T0)).len() - 1;
            assert!(repeats.is_repeat(kind, &grant, T0));
            summaries += repeats.written(event(kind, &format!("other{i}"), T0)).len() - 1;
            assert!(repeats.len() <= 100);
        }
        summaries += repeats.close_ended(T0.plus_secs(REPEAT_WINDOW_SECS)).len();
        assert_eq!(summaries, 10_000, "every counted repeat is reported once");
    }

    #[test]
    fn other_kinds_are_never_held_back() {
        let repeats = AuditRepeats::default();
        for _ in 0..3 {
            assert!(!repeats.is_repeat(EventKind::Rotated, "g", T0));
            assert_eq!(repeats.written(event(EventKind::Rotated, "g", T0)).len(), 1);
        }
        assert_eq!(repeats.len(), 0);
    }
}
