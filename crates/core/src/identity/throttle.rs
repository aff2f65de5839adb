//! Throttling that slows the guesser, never the victim.
//!
//! Two kinds of secret are presented here, and they need opposite rules:
//!
//! - **High-entropy credentials** (client secrets the server generated, refresh tokens, codes,
//!   access tokens; 256 bits each) cannot be guessed, so throttling them is load shedding only:
//!   failures are counted per source address, and once a source is over its budget its
//!   *failing* requests are answered 429 instead of 400/401. A request whose credentials are
//!   valid is never refused, whatever failed elsewhere — not by client id (which is public), not
//!   by address (which behind a NAT or a proxy is everybody's) — with one exception: a code
//!   exchange from a source that has spent its budget is answered 429 before the code is
//!   redeemed, and works when sent again. The budget is looked at before a grant runs
//!   ([`Throttle::credential_budget_spent`]), so that a request answered 429 does no store work
//!   that only a failure needs.
//! - **Passwords** are guessable, so an attempt over budget is refused *before* the password is
//!   checked. The budgets are per (username, address), tight; per username across addresses,
//!   loose (NIST SP 800-63B §5.2.2: at most 100 consecutive failures); and per address. An
//!   attempt is counted when it starts, so that a hundred guesses sent at once cannot all slip
//!   under the budget before the first has failed; a success gives its count back and resets
//!   its (username, address) count, so the owner logging in from their own address is not
//!   refused while someone hammers the account from elsewhere, until the loose per-username cap
//!   is reached.
//!
//! Counters live in bounded LRU maps (`lru`): at most `max_tracked_keys` keys per counter, the
//! least recently failing dropped first, so a flood from many addresses or usernames cannot
//! grow memory past a fixed cap (measured: about 85 bytes an address key, 165 a username and
//! address key). Windows are judged on the injected clock, so tests can move time; an expired
//! window is simply restarted when its key fails again.

use std::fmt;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroUsize;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use lru::LruCache;

use crate::identity::username::normalise_username;
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

    /// The budget's configuration key: the `reason` label of `tessera_throttled_total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::CredentialFailuresFromAddress => "credential_failures_per_address",
            Self::LoginFailuresForUserFromAddress => "login_failures_per_user_and_address",
            Self::LoginFailuresForUser => "login_failures_per_user",
            Self::LoginFailuresFromAddress => "login_failures_per_address",
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
    count: u32,
    /// Whether a request was refused in this window yet: the first refusal is the decision
    /// the audit trail records.
    refused: bool,
}

/// A refusal, and whether it is the first of its window.
type Refusal = (Throttled, bool);

/// Failure counters for one kind of key, under one lock: every change is a read-modify-write
/// of one small entry.
struct Counter<K: Hash + Eq> {
    budget: Budget,
    reason: ThrottleReason,
    windows: Mutex<LruCache<K, Window>>,
    /// Until when (milliseconds) some key may have no failure left in its window: the latest
    /// window end of a key that reached its last failure. Before that, [`Counter::spent`] looks
    /// the key up; after it, no key can be spent and the answer is one atomic load, so the
    /// requests of a server nobody floods never touch the lock.
    spent_until: AtomicI64,
}

impl<K: Hash + Eq> fmt::Debug for Counter<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counter")
            .field("budget", &self.budget)
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq> Counter<K> {
    fn new(budget: Budget, reason: ThrottleReason, max_keys: u64) -> Self {
        let cap = NonZeroUsize::new(usize::try_from(max_keys).unwrap_or(usize::MAX).max(1))
            .unwrap_or(NonZeroUsize::MIN);
        Self {
            budget,
            reason,
            windows: Mutex::new(LruCache::new(cap)),
            spent_until: AtomicI64::new(i64::MIN),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<K, Window>> {
        self.windows.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn window_end(&self, w: &Window) -> Timestamp {
        w.start.plus_secs(self.budget.window_secs)
    }

    fn retry_after(&self, w: &Window, now: Timestamp) -> u64 {
        let millis = (self.window_end(w).millis() - now.millis()).max(0);
        (millis as u64).div_ceil(1000).max(1)
    }

    /// The key's live window (a fresh one if it had none or its window ended).
    fn current<'a>(
        &self,
        windows: &'a mut LruCache<K, Window>,
        key: K,
        now: Timestamp,
    ) -> &'a mut Window {
        let w = windows.get_or_insert_mut(key, || Window {
            start: now,
            count: 0,
            refused: false,
        });
        if now >= self.window_end(w) {
            *w = Window {
                start: now,
                count: 0,
                refused: false,
            };
        }
        w
    }

    fn refusal(&self, w: &mut Window, now: Timestamp) -> Refusal {
        crate::operations::metrics::throttled(self.reason.label());
        let first = !w.refused;
        w.refused = true;
        (
            Throttled {
                reason: self.reason,
                retry_after_secs: self.retry_after(w, now),
            },
            first,
        )
    }

    /// Counts a failure that has happened; `Err` when the key is (now) over its budget.
    fn fail(&self, key: K, now: Timestamp) -> Result<(), Refusal> {
        let mut windows = self.lock();
        let w = self.current(&mut windows, key, now);
        w.count = w.count.saturating_add(1);
        if w.count.saturating_add(1) >= self.budget.max_failures {
            // Its next failure is refused: from here on, `spent` must look this key up.
            self.spent_until
                .fetch_max(self.window_end(w).millis(), Ordering::Relaxed);
        }
        if w.count >= self.budget.max_failures {
            Err(self.refusal(w, now))
        } else {
            Ok(())
        }
    }

    /// Whether the window has no failure left: the key's next failure would be refused.
    fn is_spent(&self, w: &Window, now: Timestamp) -> bool {
        now < self.window_end(w) && w.count.saturating_add(1) >= self.budget.max_failures
    }

    /// Whether any key may be spent at `now`: one atomic load, so that the requests of a
    /// server nobody floods never take the lock to ask.
    fn any_may_be_spent(&self, now: Timestamp) -> bool {
        now.millis() < self.spent_until.load(Ordering::Relaxed)
    }

    /// Whether the key's budget is spent for this window: a look, counting nothing and leaving
    /// the LRU order alone.
    fn spent(&self, key: &K, now: Timestamp) -> Option<Throttled> {
        if !self.any_may_be_spent(now) {
            return None;
        }
        let windows = self.lock();
        let w = windows.peek(key).filter(|w| self.is_spent(w, now))?;
        Some(Throttled {
            reason: self.reason,
            retry_after_secs: self.retry_after(w, now),
        })
    }

    /// Refuses the key, counting nothing, if its budget is spent: for a request refused before
    /// it is tried.
    fn refuse_if_spent(&self, key: &K, now: Timestamp) -> Option<Refusal> {
        if !self.any_may_be_spent(now) {
            return None;
        }
        let mut windows = self.lock();
        let w = windows.peek_mut(key).filter(|w| self.is_spent(w, now))?;
        Some(self.refusal(w, now))
    }

    /// Takes one attempt from the budget before it is made; `Err`, taking nothing, when the
    /// budget is used up.
    fn take(&self, key: K, now: Timestamp) -> Result<(), Refusal> {
        let mut windows = self.lock();
        let w = self.current(&mut windows, key, now);
        if w.count >= self.budget.max_failures {
            return Err(self.refusal(w, now));
        }
        w.count += 1;
        Ok(())
    }

    /// Gives back an attempt that succeeded.
    fn give_back(&self, key: &K) {
        if let Some(w) = self.lock().peek_mut(key) {
            w.count = w.count.saturating_sub(1);
        }
    }

    fn reset(&self, key: &K) {
        self.lock().pop(key);
    }

    fn keys(&self) -> u64 {
        self.lock().len() as u64
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

/// A username's budget is its normal form's (Unicode lowercase, NFC: every spelling of one
/// name shares it); a key is at most 255 bytes, so that long inputs cannot make keys expensive.
fn username_key(username: &str) -> String {
    let mut key = normalise_username(username);
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
pub(crate) struct Throttle {
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

/// A login attempt that was counted before its password check; give it back on success.
#[derive(Debug)]
#[must_use = "a successful login must give its attempt back"]
pub(crate) struct LoginAttempt {
    user: String,
    address: IpAddr,
}

impl Throttle {
    pub fn new(config: ThrottleConfig) -> Self {
        let max = config.max_tracked_keys;
        Self {
            credentials_by_address: Counter::new(
                config.credential_failures_per_address,
                ThrottleReason::CredentialFailuresFromAddress,
                max,
            ),
            logins_by_user_and_address: Counter::new(
                config.login_failures_per_user_and_address,
                ThrottleReason::LoginFailuresForUserFromAddress,
                max,
            ),
            logins_by_user: Counter::new(
                config.login_failures_per_user,
                ThrottleReason::LoginFailuresForUser,
                max,
            ),
            logins_by_address: Counter::new(
                config.login_failures_per_address,
                ThrottleReason::LoginFailuresFromAddress,
                max,
            ),
        }
    }

    /// Counts a failed high-entropy credential from `address`. `Err` when the source is now
    /// over its budget: the failing request is answered 429 instead of its own error. The bool
    /// says whether this is the window's first refusal (the decision the audit trail records).
    pub(crate) fn credential_failure(
        &self,
        address: Option<IpAddr>,
        now: Timestamp,
    ) -> Result<(), (Throttled, bool)> {
        self.credentials_by_address.fail(address_key(address), now)
    }

    /// Whether `address` has spent its credential budget: its next failure would be answered
    /// 429. Checked before a grant runs, so that a request from such a source does no store
    /// work that only a failure would need (see [`crate::flows::token_request`]).
    pub(crate) fn credential_budget_spent(
        &self,
        address: Option<IpAddr>,
        now: Timestamp,
    ) -> Option<Throttled> {
        self.credentials_by_address
            .spent(&address_key(address), now)
    }

    /// Refuses a request from `address` before it is tried, if the source has spent its
    /// credential budget; the bool says whether this is the window's first refusal.
    pub(crate) fn refuse_spent_credentials(
        &self,
        address: Option<IpAddr>,
        now: Timestamp,
    ) -> Option<(Throttled, bool)> {
        self.credentials_by_address
            .refuse_if_spent(&address_key(address), now)
    }

    /// Starts a login attempt: counted against the (username, address), username and address
    /// budgets before the password is checked, or refused, counting nothing, when one of them
    /// is used up. The bool says whether this is that budget's first refusal of its window.
    pub(crate) fn login_attempt(
        &self,
        username: &str,
        address: Option<IpAddr>,
        now: Timestamp,
    ) -> Result<LoginAttempt, (Throttled, bool)> {
        let user = username_key(username);
        let address = address_key(address);
        self.logins_by_user_and_address
            .take((user.clone(), address), now)?;
        if let Err(refusal) = self.logins_by_user.take(user.clone(), now) {
            self.logins_by_user_and_address.give_back(&(user, address));
            return Err(refusal);
        }
        if let Err(refusal) = self.logins_by_address.take(address, now) {
            self.logins_by_user_and_address
                .give_back(&(user.clone(), address));
            self.logins_by_user.give_back(&user);
            return Err(refusal);
        }
        Ok(LoginAttempt { user, address })
    }

    /// The attempt succeeded: its (username, address) count starts over, and the username and
    /// address budgets get the attempt back (it was not a failure).
    pub(crate) fn login_succeeded(&self, attempt: LoginAttempt) {
        self.logins_by_user_and_address
            .reset(&(attempt.user.clone(), attempt.address));
        self.logins_by_user.give_back(&attempt.user);
        self.logins_by_address.give_back(&attempt.address);
    }

    /// The attempt was never judged (the store failed, no check slot was free): it gives its
    /// count back to every budget, as it was no failed guess.
    pub(crate) fn login_abandoned(&self, attempt: LoginAttempt) {
        self.logins_by_user_and_address
            .give_back(&(attempt.user.clone(), attempt.address));
        self.logins_by_user.give_back(&attempt.user);
        self.logins_by_address.give_back(&attempt.address);
    }

    /// Keys held by each counter (credentials, user and address, user, address): for
    /// measurements and tests.
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
        assert!(first, "the first refusal is the decision");
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
    fn a_source_one_failure_from_its_budget_is_known_spent_before_it_fails_again() {
        let t = small();
        let attacker = ip("10.0.0.1");
        assert!(t.credential_budget_spent(attacker, T0).is_none());
        assert!(t.credential_failure(attacker, T0).is_ok());
        assert!(
            t.credential_budget_spent(attacker, T0).is_none(),
            "two failures left"
        );
        assert!(t.credential_failure(attacker, T0).is_ok());
        // The next failure would be refused: the check before the grant says so, and counts
        // nothing (asking again changes nothing).
        let spent = t
            .credential_budget_spent(attacker, T0.plus_secs(1))
            .unwrap();
        assert_eq!(spent.retry_after_secs, 59);
        assert!(t
            .credential_budget_spent(attacker, T0.plus_secs(1))
            .is_some());
        assert!(t
            .credential_budget_spent(ip("10.0.0.2"), T0.plus_secs(1))
            .is_none());
        // The window's end frees it.
        assert!(t
            .credential_budget_spent(attacker, T0.plus_secs(60))
            .is_none());
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

    /// A failed login: an attempt that is not given back.
    fn fail(t: &Throttle, user: &str, address: &str) {
        drop(t.login_attempt(user, ip(address), T0).unwrap());
    }

    #[test]
    fn the_owner_logs_in_from_home_while_the_account_is_hammered_from_elsewhere() {
        let t = small();
        for _ in 0..3 {
            fail(&t, "Ada@example.com", "203.0.113.9");
        }
        // The attacker's address is refused before its next guess is checked…
        let (refused, first) = t
            .login_attempt("ada@example.com", ip("203.0.113.9"), T0)
            .unwrap_err();
        assert_eq!(
            refused.reason,
            ThrottleReason::LoginFailuresForUserFromAddress
        );
        assert!(first);
        // …the owner's is not.
        let owner = t
            .login_attempt("ada@example.com", ip("198.51.100.7"), T0)
            .unwrap();
        t.login_succeeded(owner);
        // Until the loose per-user cap is reached from other addresses.
        for i in 0..3 {
            fail(&t, "ada@example.com", &format!("192.0.2.{i}"));
        }
        let (capped, _) = t
            .login_attempt("ada@example.com", ip("198.51.100.7"), T0)
            .unwrap_err();
        assert_eq!(capped.reason, ThrottleReason::LoginFailuresForUser);
        assert!(t
            .login_attempt("ada@example.com", ip("198.51.100.7"), T0.plus_secs(3600))
            .is_ok());
    }

    #[test]
    fn attempts_are_counted_before_they_are_checked() {
        let t = small();
        // Three attempts in flight at once use up the pair's budget of three…
        let flying: Vec<LoginAttempt> = (0..3)
            .map(|_| t.login_attempt("eve", ip("10.3.3.3"), T0).unwrap())
            .collect();
        // …so a fourth is refused before any of them has failed.
        assert!(t.login_attempt("eve", ip("10.3.3.3"), T0).is_err());
        drop(flying);
    }

    #[test]
    fn a_success_gives_its_attempt_back_and_resets_its_pair() {
        let t = small();
        fail(&t, "bob", "10.1.1.1");
        fail(&t, "bob", "10.1.1.1");
        let ok = t.login_attempt("BOB", ip("10.1.1.1"), T0).unwrap();
        t.login_succeeded(ok);
        fail(&t, "bob", "10.1.1.1");
        fail(&t, "bob", "10.1.1.1");
        assert!(t.login_attempt("bob", ip("10.1.1.1"), T0).is_ok());
    }

    #[test]
    fn an_attempt_never_judged_costs_nothing() {
        let t = small();
        for _ in 0..10 {
            let attempt = t.login_attempt("carol", ip("10.4.4.4"), T0).unwrap();
            t.login_abandoned(attempt);
        }
        assert!(t.login_attempt("carol", ip("10.4.4.4"), T0).is_ok());
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
            drop(t.login_attempt(&format!("user{i}"), address, T0));
        }
        for keys in t.tracked_keys() {
            assert!(keys <= 500, "{keys} keys");
        }
    }
}
