//! Time and randomness as parameters (docs/decisions.md, "Time and randomness are injected").

use std::sync::atomic::{AtomicI64, Ordering};

/// Milliseconds since the Unix epoch. Salesforce's `issued_at` is in this unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn millis(self) -> i64 {
        self.0
    }

    pub fn seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }

    pub fn plus_secs(self, secs: u64) -> Timestamp {
        Timestamp(self.0.saturating_add((secs as i64).saturating_mul(1000)))
    }
}

pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Timestamp;
}

/// The wall clock. The one place outside tests that may read it.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> Timestamp {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(since_epoch.as_millis() as i64)
    }
}

/// The database's clock, followed in this process: anchored to a reading of the database's
/// time and advanced by the process's monotonic clock, so that every server process on one
/// database stamps and judges time alike, whatever its own wall clock says (docs/decisions.md,
/// "Following the database's clock"). [`DatabaseClock::sync`] re-anchors it, to follow the
/// database's clock as the two drift apart; the monotonic clock never steps, so neither does
/// this one between syncs.
#[derive(Debug)]
pub struct DatabaseClock {
    anchor: std::sync::Mutex<(Timestamp, std::time::Instant)>,
}

impl DatabaseClock {
    /// `database_now` was read between `asked` and now: it is taken for the middle of that.
    pub fn new(database_now: Timestamp, asked: std::time::Instant) -> Self {
        Self {
            anchor: std::sync::Mutex::new(Self::anchor(database_now, asked)),
        }
    }

    pub fn sync(&self, database_now: Timestamp, asked: std::time::Instant) {
        let anchor = Self::anchor(database_now, asked);
        *self.anchor.lock().unwrap_or_else(|e| e.into_inner()) = anchor;
    }

    fn anchor(
        database_now: Timestamp,
        asked: std::time::Instant,
    ) -> (Timestamp, std::time::Instant) {
        let round_trip = asked.elapsed();
        (database_now, asked + round_trip / 2)
    }
}

impl Clock for DatabaseClock {
    fn now(&self) -> Timestamp {
        let (at, instant) = *self.anchor.lock().unwrap_or_else(|e| e.into_inner());
        Timestamp(at.0.saturating_add(instant.elapsed().as_millis() as i64))
    }
}

/// A clock that only moves when told: for tests of expiry edges.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self(AtomicI64::new(start.0))
    }

    pub fn advance_secs(&self, secs: u64) {
        self.0.fetch_add(secs as i64 * 1000, Ordering::SeqCst);
    }

    pub fn advance_millis(&self, millis: i64) {
        self.0.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

/// A source of unpredictable bytes.
pub trait Random: Send + Sync + std::fmt::Debug {
    fn fill(&self, buf: &mut [u8]);
}

/// A CSPRNG seeded by the operating system: rand's per-thread ChaCha12, reseeded from the OS
/// every 64 KiB. Asking the kernel for every token cost three `getrandom` calls per refresh.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRandom;

impl Random for SystemRandom {
    fn fill(&self, buf: &mut [u8]) {
        use rand::RngCore;
        rand::thread_rng().fill_bytes(buf);
    }
}

/// Parses a duration written like `90s`, `15m`, `2h`, `30d` (or a bare number of seconds).
pub fn parse_duration_secs(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: u64 = digits.parse().ok()?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    value.checked_mul(factor)
}

/// Writes seconds back in the largest unit that divides them.
pub fn format_duration_secs(secs: u64) -> String {
    match secs {
        0 => "0s".to_owned(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// `2026-11-25 21:48:20Z`: a timestamp for people (logs, admin output).
pub fn format_utc(millis: i64) -> String {
    format_utc_with(millis, ' ')
}

/// `2026-11-25T21:48:20Z`: RFC 3339 in UTC, to the second, as Salesforce writes the
/// `updated_at` of userinfo and ID tokens.
pub fn format_rfc3339_utc(millis: i64) -> String {
    format_utc_with(millis, 'T')
}

fn format_utc_with(millis: i64, date_time_separator: char) -> String {
    let t = utc_fields(millis);
    format!(
        "{:04}-{:02}-{:02}{date_time_separator}{:02}:{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// An instant's calendar date and time of day in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcFields {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
    pub millisecond: i64,
}

/// The UTC fields of `millis` (milliseconds since the epoch, before it too).
pub fn utc_fields(millis: i64) -> UtcFields {
    let secs = millis.div_euclid(1000);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    UtcFields {
        year,
        month,
        day,
        hour: rem / 3600,
        minute: (rem % 3600) / 60,
        second: rem % 60,
        millisecond: millis.rem_euclid(1000),
    }
}

/// Days since 1970-01-01 to a civil (year, month, day) date (Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_clock_runs_from_its_anchor_on_the_monotonic_clock() {
        let asked = std::time::Instant::now();
        let clock = DatabaseClock::new(Timestamp(5_000_000), asked);
        let first = clock.now();
        assert!(
            first.0 >= 5_000_000 && first.0 < 5_000_000 + 1_000,
            "{first:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(clock.now().0 >= first.0 + 19);
        clock.sync(Timestamp(9_000_000), std::time::Instant::now());
        assert!(clock.now().0 >= 9_000_000 && clock.now().0 < 9_001_000);
    }

    #[test]
    fn durations_parse_in_every_unit() {
        assert_eq!(parse_duration_secs("90s"), Some(90));
        assert_eq!(parse_duration_secs("15m"), Some(900));
        assert_eq!(parse_duration_secs("2h"), Some(7200));
        assert_eq!(parse_duration_secs("30d"), Some(2_592_000));
        assert_eq!(parse_duration_secs("45"), Some(45));
        assert_eq!(parse_duration_secs("2w"), None);
        assert_eq!(parse_duration_secs("h"), None);
        assert_eq!(parse_duration_secs(""), None);
    }

    #[test]
    fn durations_print_in_the_largest_unit() {
        assert_eq!(format_duration_secs(7200), "2h");
        assert_eq!(format_duration_secs(90), "90s");
        assert_eq!(format_duration_secs(0), "0s");
    }

    #[test]
    fn utc_formatting_matches_known_instants() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(format_utc(951_782_400_000), "2000-02-29 00:00:00Z");
        assert_eq!(
            format_rfc3339_utc(1_278_448_101_416),
            "2010-07-06T20:28:21Z"
        );
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(Timestamp(1_000));
        assert_eq!(clock.now(), Timestamp(1_000));
        clock.advance_secs(2);
        assert_eq!(clock.now(), Timestamp(3_000));
    }
}
