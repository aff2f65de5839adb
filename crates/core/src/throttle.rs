//! Throttling that slows the guesser, never the victim.
//!
//! Two kinds of secret are presented here, and they need opposite rules:
//!
//! - **High-entropy credentials** (client secrets the server generated, refresh tokens, codes,
//!   access tokens; 256 bits each) cannot be guessed, so throttling them is load shedding only:
//!   failures are counted per source address, and once a source is over its budget its
//!   *failing* requests are answered 429 instead of 400/401. A request whose credentials are
//!   valid is never refused, whatever failed elsewhere — not by client id (which is public), not
//!   by address (which behind a NAT or a proxy is everybody's).
//! - **Passwords** are guessable, so an attempt over budget is refused *before* the password is
//!   checked. The budgets are per (username, address), tight; per username across addresses,
//!   loose (NIST SP 800-63B §5.2.2: at most 100 consecutive failures); and per address. A
//!   success resets its (username, address) count, so the owner logging in from their own
//!   address is not refused while someone hammers the account from elsewhere, until the loose
//!   per-username cap is reached.
//!
//! Counters live in bounded caches (`moka`): at most `max_tracked_keys` keys per counter, each
//! dropped when its window ends, so a flood from many addresses or usernames cannot grow memory
//! past a fixed cap. Windows are judged on the injected clock, so tests can move time; the
//! cache's own expiry only frees memory.

use std::fmt;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;
use std::time::{Duration, Instant};

use moka::sync::Cache;
use moka::Expiry;

use crate::time::{format_duration_secs, parse_duration_secs, Timestamp};

/// A failure budget: at most `max_failures` in a fixed window of `window_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub max_failures: u32,
    pub window_secs: u64,
}

impl Budget {
    pub const fn new(max_failures: u32, window_secs: u64) -> Self {
        Self {
            max_failures,
            window_secs,
        }
    }
}

/// `10/5m`: ten failures per five minutes.
impl FromStr for Budget {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || format!("{text:?} is not a budget like 10/5m (failures per window)");
        let (count, window) = text.trim().split_once('/').ok_or_else(invalid)?;
        let max_failures: u32 = count.trim().parse().map_err(|_| invalid())?;
        let window_secs = parse_duration_secs(window).ok_or_else(invalid)?;
        if max_failures == 0 || window_secs == 0 {
            return Err(format!(
                "{text:?}: a budget needs at least one failure and a window"
            ));
        }
        Ok(Self::new(max_failures, window_secs))
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            self.max_failures,
            format_duration_secs(self.window_secs)
        )
    }
}

/// Every limit, with its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failed high-entropy credentials (secrets, tokens, codes) per source address.
    pub credential_failures_per_address: Budget,
    /// Failed logins per (username, address).
    pub login_failures_per_user_and_address: Budget,
    /// Failed logins per username, from anywhere.
    pub login_failures_per_user: Budget,
    /// Failed logins per address, whatever the username.
    pub login_failures_per_address: Budget,
    /// Most keys each counter remembers: the memory bound.
    pub max_tracked_keys: u64,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            credential_failures_per_address: Budget::new(100, 60),
            login_failures_per_user_and_address: Budget::new(10, 300),
            login_failures_per_user: Budget::new(100, 3600),
            login_failures_per_address: Budget::new(100, 300),
            max_tracked_keys: DEFAULT_MAX_TRACKED_KEYS,
        }
    }
}

/// Keys remembered per counter unless configured otherwise.
pub const DEFAULT_MAX_TRACKED_KEYS: u64 = 100_000;

/// Which budget a decision is about; its name goes into audit events and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleReason {
    CredentialFailuresFromAddress,
    LoginFailuresForUserFromAddress,
    LoginFailuresForUser,
    LoginFailuresFromAddress,
}

impl ThrottleReason {
    pub fn name(self) -> &'static str {
        match self {
            Self::CredentialFailuresFromAddress => "credential failures per address",
            Self::LoginFailuresForUserFromAddress => "login failures per user and address",
            Self::LoginFailuresForUser => "login failures per user",
            Self::LoginFailuresFromAddress => "login failures per address",
        }
    }
}

/// A refusal: which budget, and how long until its window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub reason: ThrottleReason,
    pub retry_after_secs: u64,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Timestamp,
    failures: u32,
}

/// Frees a counter once its window has passed in real time; a window restarted on the injected
/// clock (its first failure again) gets a full window from now.
struct WindowExpiry(Duration);

impl<K> Expiry<K, Window> for WindowExpiry {
    fn expire_after_create(&self, _: &K, _: &Window, _: Instant) -> Option<Duration> {
        Some(self.0)
    }

    fn expire_after_update(
        &self,
        _: &K,
        value: &Window,
        _: Instant,
        left: Option<Duration>,
    ) -> Option<Duration> {
        if value.failures == 1 {
            Some(self.0)
        } else {
            left
        }
    }
}

/// What counting a failure found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Count {
    /// Seconds until the window ends, when the key is over its budget now.
    over_budget: Option<u64>,
    /// Whether this failure used up the budget (the moment the key became throttled).
    just_exhausted: bool,
}

/// Failure counters for one kind of key.
struct Counter<K> {
    budget: Budget,
    windows: Cache<K, Window>,
}

impl<K> fmt::Debug for Counter<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counter")
            .field("budget", &self.budget)
            .field("keys", &self.windows.entry_count())
            .finish()
    }
}

impl<K> Counter<K>
where
    K: Hash + Eq + Send + Sync + Clone + 'static,
{
    fn new(budget: Budget, max_keys: u64) -> Self {
        Self {
            budget,
            windows: Cache::builder()
                .max_capacity(max_keys)
                .expire_after(WindowExpiry(Duration::from_secs(budget.window_secs)))
                .build(),
        }
    }

    fn window_end(&self, w: &Window) -> Timestamp {
        w.start.plus_secs(self.budget.window_secs)
    }

    fn retry_after(&self, w: &Window, now: Timestamp) -> u64 {
        let millis = (self.window_end(w).millis() - now.millis()).max(0);
        (millis as u64).div_ceil(1000).max(1)
    }

    /// Seconds to wait, when the key has used up its budget in the current window.
    fn exhausted(&self, key: &K, now: Timestamp) -> Option<u64> {
        let w = self.windows.get(key)?;
        (now < self.window_end(&w) && w.failures >= self.budget.max_failures)
            .then(|| self.retry_after(&w, now))
    }

    fn fail(&self, key: K, now: Timestamp) -> Count {
        let entry = self.windows.entry(key).and_upsert_with(|current| {
            match current.map(|e| e.into_value()) {
                Some(w) if now < self.window_end(&w) => Window {
                    failures: w.failures.saturating_add(1),
                    ..w
                },
                _ => Window {
                    start: now,
                    failures: 1,
                },
            }
        });
        let w = entry.into_value();
        let over = w.failures >= self.budget.max_failures;
        Count {
            over_budget: over.then(|| self.retry_after(&w, now)),
            just_exhausted: w.failures == self.budget.max_failures,
        }
    }

    fn reset(&self, key: &K) {
        self.windows.invalidate(key);
    }

    fn keys(&self) -> u64 {
        self.windows.run_pending_tasks();
        self.windows.entry_count()
    }
}

/// The key of an address: IPv4 as is, IPv6 by its /64, the smallest block one subscriber is
/// given (RFC 6177), so that one host cannot be a million sources. Unknown (no socket, as in
/// in-process tests) is one key of its own.
fn address_key(address: Option<IpAddr>) -> IpAddr {
    match address {
        Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        Some(IpAddr::V6(v6)) => IpAddr::V4(
            v6.to_ipv4_mapped()
                .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
        ),
        Some(v4) => v4,
        None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// Usernames are case-insensitive; a key is at most 255 bytes, so that long inputs cannot make
/// keys expensive.
fn username_key(username: &str) -> String {
    let mut key = username.trim().to_ascii_lowercase();
    if key.len() > 255 {
        let mut end = 255;
        while !key.is_char_boundary(end) {
            end -= 1;
        }
        key.truncate(end);
    }
    key
}

/// The server's throttle: one counter per budget.
#[derive(Debug)]
pub struct Throttle {
    credentials_by_address: Counter<IpAddr>,
    logins_by_user_and_address: Counter<(String, IpAddr)>,
    logins_by_user: Counter<String>,
    logins_by_address: Counter<IpAddr>,
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new(ThrottleConfig::default())
    }
}

/// What counting a failed login found: the budgets this failure used up (for the audit trail).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginFailure {
    pub exhausted: Vec<ThrottleReason>,
}

impl Throttle {
    pub fn new(config: ThrottleConfig) -> Self {
        let max = config.max_tracked_keys;
        Self {
            credentials_by_address: Counter::new(config.credential_failures_per_address, max),
            logins_by_user_and_address: Counter::new(
                config.login_failures_per_user_and_address,
                max,
            ),
            logins_by_user: Counter::new(config.login_failures_per_user, max),
            logins_by_address: Counter::new(config.login_failures_per_address, max),
        }
    }

    /// Counts a failed high-entropy credential from `address`. `Err` when the source is now
    /// over its budget: the failing request is answered 429 instead of its own error. The bool
    /// says whether this failure used the budget up (the decision the audit trail records).
    pub fn credential_failure(
        &self,
        address: Option<IpAddr>,
        now: Timestamp,
    ) -> Result<(), (Throttled, bool)> {
        let count = self.credentials_by_address.fail(address_key(address), now);
        match count.over_budget {
            None => Ok(()),
            Some(retry_after_secs) => Err((
                Throttled {
                    reason: ThrottleReason::CredentialFailuresFromAddress,
                    retry_after_secs,
                },
                count.just_exhausted,
            )),
        }
    }

    /// Whether a login attempt may have its password checked at all.
    pub fn login_allowed(
        &self,
        username: &str,
        address: Option<IpAddr>,
        now: Timestamp,
    ) -> Result<(), Throttled> {
        let user = username_key(username);
        let address = address_key(address);
        let checks = [
            (
                self.logins_by_user_and_address
                    .exhausted(&(user.clone(), address), now),
                ThrottleReason::LoginFailuresForUserFromAddress,
            ),
            (
                self.logins_by_user.exhausted(&user, now),
                ThrottleReason::LoginFailuresForUser,
            ),
            (
                self.logins_by_address.exhausted(&address, now),
                ThrottleReason::LoginFailuresFromAddress,
            ),
        ];
        match checks
            .into_iter()
            .filter_map(|(wait, reason)| wait.map(|secs| (secs, reason)))
            .max_by_key(|(secs, _)| *secs)
        {
            None => Ok(()),
            Some((retry_after_secs, reason)) => Err(Throttled {
                reason,
                retry_after_secs,
            }),
        }
    }

    /// Counts a failed login (wrong password, unknown or disabled user alike).
    pub fn login_failure(
        &self,
        username: &str,
        address: Option<IpAddr>,
        now: Timestamp,
    ) -> LoginFailure {
        let user = username_key(username);
        let address = address_key(address);
        let counts = [
            (
                self.logins_by_user_and_address
                    .fail((user.clone(), address), now),
                ThrottleReason::LoginFailuresForUserFromAddress,
            ),
            (
                self.logins_by_user.fail(user, now),
                ThrottleReason::LoginFailuresForUser,
            ),
            (
                self.logins_by_address.fail(address, now),
                ThrottleReason::LoginFailuresFromAddress,
            ),
        ];
        LoginFailure {
            exhausted: counts
                .into_iter()
                .filter(|(count, _)| count.just_exhausted)
                .map(|(_, reason)| reason)
                .collect(),
        }
    }

    /// A successful login clears its (username, address) count.
    pub fn login_success(&self, username: &str, address: Option<IpAddr>) {
        self.logins_by_user_and_address
            .reset(&(username_key(username), address_key(address)));
    }

    /// Keys held by each counter (credentials, user and address, user, address), after pending
    /// evictions: for measurements and tests.
    pub fn tracked_keys(&self) -> [u64; 4] {
        [
            self.credentials_by_address.keys(),
            self.logins_by_user_and_address.keys(),
            self.logins_by_user.keys(),
            self.logins_by_address.keys(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp(1_000_000);

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    fn small() -> Throttle {
        Throttle::new(ThrottleConfig {
            credential_failures_per_address: Budget::new(3, 60),
            login_failures_per_user_and_address: Budget::new(3, 300),
            login_failures_per_user: Budget::new(6, 3600),
            login_failures_per_address: Budget::new(100, 300),
            max_tracked_keys: 1000,
        })
    }

    #[test]
    fn budgets_parse_and_print() {
        assert_eq!("10/5m".parse::<Budget>(), Ok(Budget::new(10, 300)));
        assert_eq!(Budget::new(100, 3600).to_string(), "100/1h");
        for bad in ["10", "x/5m", "10/5w", "0/5m", "10/0s", ""] {
            assert!(bad.parse::<Budget>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_source_over_its_credential_budget_is_throttled_until_the_window_ends() {
        let t = small();
        assert!(t.credential_failure(ip("10.0.0.1"), T0).is_ok());
        assert!(t.credential_failure(ip("10.0.0.1"), T0).is_ok());
        let (throttled, first) = t
            .credential_failure(ip("10.0.0.1"), T0.plus_secs(10))
            .unwrap_err();
        assert_eq!(throttled.retry_after_secs, 50);
        assert!(first);
        let (_, again) = t
            .credential_failure(ip("10.0.0.1"), T0.plus_secs(11))
            .unwrap_err();
        assert!(!again, "the decision is recorded once per window");
        // Another source is not affected; the window's end frees the first.
        assert!(t.credential_failure(ip("10.0.0.2"), T0).is_ok());
        assert!(t
            .credential_failure(ip("10.0.0.1"), T0.plus_secs(60))
            .is_ok());
    }

    #[test]
    fn ipv6_sources_count_by_their_64_prefix() {
        let t = small();
        for host in ["2001:db8::1", "2001:db8::2", "2001:db8::ffff:3"] {
            let _ = t.credential_failure(ip(host), T0);
        }
        assert!(t.credential_failure(ip("2001:db8::9"), T0).is_err());
        assert!(t.credential_failure(ip("2001:db8:0:1::1"), T0).is_ok());
    }

    #[test]
    fn the_owner_logs_in_from_home_while_the_account_is_hammered_from_elsewhere() {
        let t = small();
        for _ in 0..3 {
            t.login_failure("Ada@example.com", ip("203.0.113.9"), T0);
        }
        // The attacker's address is refused before its next guess is checked…
        let refused = t
            .login_allowed("ada@example.com", ip("203.0.113.9"), T0)
            .unwrap_err();
        assert_eq!(
            refused.reason,
            ThrottleReason::LoginFailuresForUserFromAddress
        );
        // …the owner's is not.
        assert!(t
            .login_allowed("ada@example.com", ip("198.51.100.7"), T0)
            .is_ok());
        // Until the loose per-user cap is reached from other addresses.
        for i in 0..3 {
            t.login_failure("ada@example.com", ip(&format!("192.0.2.{i}")), T0);
        }
        let capped = t
            .login_allowed("ada@example.com", ip("198.51.100.7"), T0)
            .unwrap_err();
        assert_eq!(capped.reason, ThrottleReason::LoginFailuresForUser);
        assert!(t
            .login_allowed("ada@example.com", ip("198.51.100.7"), T0.plus_secs(3600))
            .is_ok());
    }

    #[test]
    fn a_success_resets_its_user_and_address_count() {
        let t = small();
        t.login_failure("bob", ip("10.1.1.1"), T0);
        t.login_failure("bob", ip("10.1.1.1"), T0);
        t.login_success("BOB", ip("10.1.1.1"));
        t.login_failure("bob", ip("10.1.1.1"), T0);
        assert!(t.login_allowed("bob", ip("10.1.1.1"), T0).is_ok());
    }

    #[test]
    fn failed_logins_report_the_budgets_they_use_up() {
        let t = small();
        assert!(t
            .login_failure("c", ip("10.2.2.2"), T0)
            .exhausted
            .is_empty());
        t.login_failure("c", ip("10.2.2.2"), T0);
        assert_eq!(
            t.login_failure("c", ip("10.2.2.2"), T0).exhausted,
            vec![ThrottleReason::LoginFailuresForUserFromAddress]
        );
    }

    #[test]
    fn a_flood_of_distinct_keys_stays_under_the_cap() {
        let t = Throttle::new(ThrottleConfig {
            max_tracked_keys: 500,
            ..ThrottleConfig::default()
        });
        for i in 0..20_000u32 {
            let address = Some(IpAddr::from(i.to_be_bytes()));
            let _ = t.credential_failure(address, T0);
            t.login_failure(&format!("user{i}"), address, T0);
        }
        for keys in t.tracked_keys() {
            assert!(keys <= 500, "{keys} keys");
        }
    }
}
