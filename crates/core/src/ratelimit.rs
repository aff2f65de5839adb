//! Brute-force protection: counts failures (never successes) per key in fixed windows, and
//! refuses a key that has failed too often until its window ends. Honest traffic, which does not
//! fail, is never slowed.
//!
//! Written here rather than taken from `governor`: that crate limits the rate of *all* requests
//! and has no way to ask "is this key locked?" without spending a cell, while the rule here is
//! about failures only (RFC 6749 §2.3.1, RFC 6819 §4.3.5).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureLimit {
    pub max_failures: u32,
    pub window_secs: u64,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Timestamp,
    failures: u32,
}

/// Failure counters for one kind of key (client ids, addresses, usernames).
#[derive(Debug)]
pub struct FailureLimiter {
    limit: FailureLimit,
    windows: Mutex<HashMap<String, Window>>,
    /// Memory bound: past this many keys, finished windows are dropped before a new key is added.
    max_keys: usize,
}

impl FailureLimiter {
    pub fn new(limit: FailureLimit) -> Self {
        Self {
            limit,
            windows: Mutex::new(HashMap::new()),
            max_keys: 100_000,
        }
    }

    fn window_end(&self, w: &Window) -> Timestamp {
        w.start.plus_secs(self.limit.window_secs)
    }

    fn retry_after(&self, w: &Window, now: Timestamp) -> u64 {
        let millis = (self.window_end(w).millis() - now.millis()).max(0);
        (millis as u64).div_ceil(1000).max(1)
    }

    /// `Some(seconds to wait)` when the key has used up its failures in the current window.
    pub fn blocked(&self, key: &str, now: Timestamp) -> Option<u64> {
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let w = windows.get(key)?;
        (now < self.window_end(w) && w.failures >= self.limit.max_failures)
            .then(|| self.retry_after(w, now))
    }

    /// Counts a failure; `Some(seconds to wait)` when the key is now locked.
    pub fn record_failure(&self, key: &str, now: Timestamp) -> Option<u64> {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= self.max_keys && !windows.contains_key(key) {
            let window_secs = self.limit.window_secs;
            windows.retain(|_, w| now < w.start.plus_secs(window_secs));
            if windows.len() >= self.max_keys {
                // Still full of live windows: under attack from many keys. Refuse to grow.
                return None;
            }
        }
        let w = windows.entry(key.to_owned()).or_insert(Window {
            start: now,
            failures: 0,
        });
        if now >= self.window_end(w) {
            *w = Window {
                start: now,
                failures: 0,
            };
        }
        w.failures = w.failures.saturating_add(1);
        let w = *w;
        (w.failures >= self.limit.max_failures).then(|| self.retry_after(&w, now))
    }

    /// Forgets a key's failures (a successful login clears its username's count).
    pub fn clear(&self, key: &str) {
        self.windows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

/// The limiters the server applies.
#[derive(Debug)]
pub struct BruteForceGuard {
    /// Failed client authentications per client id.
    pub clients: FailureLimiter,
    /// Failures of any kind (client authentication, login, token guessing) per source address.
    pub addresses: FailureLimiter,
    /// Failed logins per username.
    pub usernames: FailureLimiter,
}

impl Default for BruteForceGuard {
    fn default() -> Self {
        Self {
            clients: FailureLimiter::new(FailureLimit {
                max_failures: 20,
                window_secs: 60,
            }),
            addresses: FailureLimiter::new(FailureLimit {
                max_failures: 60,
                window_secs: 60,
            }),
            usernames: FailureLimiter::new(FailureLimit {
                max_failures: 10,
                window_secs: 300,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp(1_000_000);

    fn limiter() -> FailureLimiter {
        FailureLimiter::new(FailureLimit {
            max_failures: 3,
            window_secs: 60,
        })
    }

    #[test]
    fn a_key_locks_after_its_failures_and_unlocks_when_the_window_ends() {
        let l = limiter();
        assert_eq!(l.record_failure("k", T0), None);
        assert_eq!(l.record_failure("k", T0), None);
        assert_eq!(l.blocked("k", T0), None);
        assert_eq!(l.record_failure("k", T0.plus_secs(10)), Some(50));
        assert_eq!(l.blocked("k", T0.plus_secs(10)), Some(50));
        assert_eq!(l.blocked("k", Timestamp(T0.millis() + 59_001)), Some(1));
        assert_eq!(l.blocked("k", T0.plus_secs(60)), None);
        assert_eq!(l.record_failure("k", T0.plus_secs(60)), None);
    }

    #[test]
    fn keys_are_independent_and_can_be_cleared() {
        let l = limiter();
        for _ in 0..3 {
            l.record_failure("a", T0);
        }
        assert!(l.blocked("a", T0).is_some());
        assert!(l.blocked("b", T0).is_none());
        l.clear("a");
        assert!(l.blocked("a", T0).is_none());
    }

    #[test]
    fn memory_is_bounded() {
        let mut l = limiter();
        l.max_keys = 10;
        for i in 0..100 {
            l.record_failure(&format!("k{i}"), T0);
        }
        assert!(l.windows.lock().unwrap().len() <= 10);
        // Once windows end, room is made for new keys.
        l.record_failure("late", T0.plus_secs(61));
        assert!(l.windows.lock().unwrap().contains_key("late"));
    }
}
