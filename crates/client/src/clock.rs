//! The local clock, injected (docs/decisions.md, "Time and randomness are injected") so that
//! every refresh decision can be tested with a fake one.

use std::sync::atomic::{AtomicI64, Ordering};

/// Milliseconds since the Unix epoch on *this* machine. Server time is derived from it with the
/// offset a [`crate::Credential`] learnt from the `Date` header.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

/// The wall clock: the one place in this crate that reads it.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)]
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default()
    }
}

/// A clock that moves only when told, for tests (and demos) of expiry edges.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(now_ms: i64) -> Self {
        Self(AtomicI64::new(now_ms))
    }

    pub fn set_ms(&self, now_ms: i64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }

    pub fn advance_ms(&self, millis: i64) {
        self.0.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}
