//! A client's token policies: access-token lifetimes and the retry window's bounds, and
//! Salesforce's refresh-token policies (docs/salesforce-compatibility.md, "Refresh-token
//! policies").

use std::fmt;
use std::str::FromStr;

use crate::time::Timestamp;

/// Default access-token lifetime: Salesforce's default session timeout, 2 hours.
pub const DEFAULT_ACCESS_TOKEN_TTL_SECS: u64 = 2 * 3600;
/// Longest access-token lifetime: Salesforce's longest session timeout, 24 hours. Revocations
/// are kept in force for this long.
pub const MAX_ACCESS_TOKEN_TTL_SECS: u64 = 24 * 3600;
/// Default retry window for rotated-out refresh tokens: 60 s; 0 is strict (docs/decisions.md,
/// "Retry window of 60 seconds"). Public clients get [`DEFAULT_PUBLIC_REFRESH_RETRY_WINDOW_SECS`].
pub const DEFAULT_REFRESH_RETRY_WINDOW_SECS: u64 = 60;
/// Default retry window of a public client: 10 s. Inside the window whoever presents the
/// rotated-out token first gets the live pair, and a public client's token has no secret
/// beside it, so its window is kept to what a lost response needs (docs/security.md,
/// "Retry window").
pub const DEFAULT_PUBLIC_REFRESH_RETRY_WINDOW_SECS: u64 = 10;
/// Longest retry window: while it lasts, anyone holding the rotated-out token gets the live
/// successor pair, so it is kept brief (Okta and Cognito cap theirs at 60 s; Hydra at 5 min).
pub const MAX_REFRESH_RETRY_WINDOW_SECS: u64 = 300;
/// Scopes a client gets when none are given.
pub const DEFAULT_CLIENT_SCOPES: &str = "api id refresh_token web";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyUnit {
    Seconds,
    Minutes,
    Hours,
    Days,
    /// Taken as 30 days.
    Months,
}

impl PolicyUnit {
    fn seconds(self) -> u64 {
        match self {
            Self::Seconds => 1,
            Self::Minutes => 60,
            Self::Hours => 3600,
            Self::Days => 86_400,
            Self::Months => 30 * 86_400,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Seconds => "SECONDS",
            Self::Minutes => "MINUTES",
            Self::Hours => "HOURS",
            Self::Days => "DAYS",
            Self::Months => "MONTHS",
        }
    }
}

/// When a refresh token stops working on its own. Evaluated only when the token is presented;
/// it never shortens an access token already issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RefreshTokenPolicy {
    /// Valid until revoked (Salesforce's default).
    #[default]
    Infinite,
    /// Every refresh fails; the access token issued with it keeps working until it expires.
    Zero,
    /// Expires when not used for the period: each successful use restarts the clock.
    SpecificInactivity { amount: u64, unit: PolicyUnit },
    /// Expires the period after the original grant; rotation never restarts it.
    SpecificLifetime { amount: u64, unit: PolicyUnit },
}

impl RefreshTokenPolicy {
    /// Whether a refresh token of a grant created at `granted_at` and last used at `last_used_at`
    /// is still usable at `now`. The window is half-open: at exactly `start + period` it has
    /// expired.
    pub fn allows_refresh(
        self,
        granted_at: Timestamp,
        last_used_at: Timestamp,
        now: Timestamp,
    ) -> bool {
        match self {
            Self::Infinite => true,
            Self::Zero => false,
            Self::SpecificInactivity { amount, unit } => {
                now < last_used_at.plus_secs(amount.saturating_mul(unit.seconds()))
            }
            Self::SpecificLifetime { amount, unit } => {
                now < granted_at.plus_secs(amount.saturating_mul(unit.seconds()))
            }
        }
    }

    /// The idle limit of this policy, if it has one.
    pub fn idle_secs(self) -> Option<u64> {
        match self {
            Self::SpecificInactivity { amount, unit } => {
                Some(amount.saturating_mul(unit.seconds()))
            }
            _ => None,
        }
    }

    /// The absolute end of a grant under this policy, if it has one (for introspection and
    /// housekeeping).
    pub fn lifetime_secs(self) -> Option<u64> {
        match self {
            Self::SpecificLifetime { amount, unit } => Some(amount.saturating_mul(unit.seconds())),
            _ => None,
        }
    }
}

/// The idle-limit cap's length when it is switched on without one: 30 days, the limit
/// Salesforce's "limit idle refresh-token lifetime" imposes.
pub const DEFAULT_IDLE_CAP_SECS: u64 = 30 * 86_400;

impl PolicyUnit {
    /// The largest unit `secs` is a whole number of, with that number: so that a cap of
    /// 2,592,000 seconds reads as 30 days.
    fn whole(secs: u64) -> (u64, Self) {
        [Self::Days, Self::Hours, Self::Minutes]
            .into_iter()
            .find(|unit| secs.is_multiple_of(unit.seconds()))
            .map_or((secs, Self::Seconds), |unit| (secs / unit.seconds(), unit))
    }
}

/// A length of time as people read it ("30 days", "90 minutes").
pub fn describe_secs(secs: u64) -> String {
    let (amount, unit) = PolicyUnit::whole(secs);
    let name = unit.name().to_ascii_lowercase();
    if amount == 1 {
        format!("1 {}", name.trim_end_matches('s'))
    } else {
        format!("{amount} {name}")
    }
}

/// The policy a client's refresh tokens follow once its idle-limit cap (`idle_cap_secs`) is
/// applied: every decision about a refresh token (refresh, idle expiry, introspection,
/// housekeeping, what the console shows) goes through this, never the configured policy alone.
/// The cap turns `infinite`, and an inactivity limit longer than the cap, into an inactivity
/// limit of the cap's length; `zero`, shorter inactivity limits and lifetime limits (which
/// already end every token) are unaffected.
pub fn effective_refresh_policy(
    configured: RefreshTokenPolicy,
    idle_cap_secs: Option<u64>,
) -> RefreshTokenPolicy {
    let Some(cap) = idle_cap_secs else {
        return configured;
    };
    let capped = || {
        let (amount, unit) = PolicyUnit::whole(cap);
        RefreshTokenPolicy::SpecificInactivity { amount, unit }
    };
    match configured {
        RefreshTokenPolicy::Infinite => capped(),
        RefreshTokenPolicy::SpecificInactivity { .. }
            if configured.idle_secs().is_some_and(|idle| idle > cap) =>
        {
            capped()
        }
        _ => configured,
    }
}

/// The effective policy with the reason it differs from the configured one, if it does:
/// "infinite, capped at 30 days idle by the idle-limit cap".
pub fn explain_effective_policy(
    configured: RefreshTokenPolicy,
    idle_cap_secs: Option<u64>,
) -> String {
    let effective = effective_refresh_policy(configured, idle_cap_secs);
    match (effective.idle_secs(), idle_cap_secs) {
        (Some(idle), Some(_)) if effective != configured => format!(
            "{configured}, capped at {} idle by the idle-limit cap",
            describe_secs(idle)
        ),
        _ => configured.to_string(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refresh-token policy must be infinite, zero, specific_inactivity:N:UNIT or specific_lifetime:N:UNIT (UNIT: SECONDS, MINUTES, HOURS, DAYS, MONTHS)")]
pub struct PolicyParseError;

impl FromStr for RefreshTokenPolicy {
    type Err = PolicyParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = text.split(':').collect();
        match parts.as_slice() {
            ["infinite"] => Ok(Self::Infinite),
            ["zero"] => Ok(Self::Zero),
            [kind, amount, unit] => {
                let amount: u64 = amount.parse().map_err(|_| PolicyParseError)?;
                if amount == 0 {
                    return Err(PolicyParseError);
                }
                let unit = match unit.to_ascii_uppercase().as_str() {
                    "SECONDS" => PolicyUnit::Seconds,
                    "MINUTES" => PolicyUnit::Minutes,
                    "HOURS" => PolicyUnit::Hours,
                    "DAYS" => PolicyUnit::Days,
                    "MONTHS" => PolicyUnit::Months,
                    _ => return Err(PolicyParseError),
                };
                match *kind {
                    "specific_inactivity" => Ok(Self::SpecificInactivity { amount, unit }),
                    "specific_lifetime" => Ok(Self::SpecificLifetime { amount, unit }),
                    _ => Err(PolicyParseError),
                }
            }
            _ => Err(PolicyParseError),
        }
    }
}

impl fmt::Display for RefreshTokenPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Infinite => f.write_str("infinite"),
            Self::Zero => f.write_str("zero"),
            Self::SpecificInactivity { amount, unit } => {
                write!(f, "specific_inactivity:{amount}:{}", unit.name())
            }
            Self::SpecificLifetime { amount, unit } => {
                write!(f, "specific_lifetime:{amount}:{}", unit.name())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp(1_700_000_000_000);

    #[test]
    fn policies_round_trip_through_text() {
        for text in [
            "infinite",
            "zero",
            "specific_inactivity:3:HOURS",
            "specific_lifetime:1:DAYS",
            "specific_lifetime:2:MONTHS",
            "specific_inactivity:30:SECONDS",
            "specific_inactivity:5:MINUTES",
        ] {
            let policy: RefreshTokenPolicy = text.parse().unwrap();
            assert_eq!(policy.to_string(), text);
        }
    }

    #[test]
    fn malformed_policies_are_rejected() {
        for text in [
            "",
            "forever",
            "specific_lifetime:0:DAYS",
            "specific_lifetime:x:DAYS",
            "specific_lifetime:1:WEEKS",
            "specific_lifetime:1",
            "zero:1:DAYS",
        ] {
            assert!(text.parse::<RefreshTokenPolicy>().is_err(), "{text}");
        }
    }

    #[test]
    fn infinite_never_expires() {
        let later = T0.plus_secs(100 * 365 * 86_400);
        assert!(RefreshTokenPolicy::Infinite.allows_refresh(T0, T0, later));
    }

    #[test]
    fn zero_refuses_from_the_start() {
        assert!(!RefreshTokenPolicy::Zero.allows_refresh(T0, T0, T0));
    }

    #[test]
    fn inactivity_slides_with_each_use() {
        let p: RefreshTokenPolicy = "specific_inactivity:1:HOURS".parse().unwrap();
        assert!(p.allows_refresh(T0, T0, T0.plus_secs(3599)));
        assert!(!p.allows_refresh(T0, T0, T0.plus_secs(3600)));
        // Used at 50 min: good until 1h50.
        let used = T0.plus_secs(3000);
        assert!(p.allows_refresh(T0, used, T0.plus_secs(6599)));
        assert!(!p.allows_refresh(T0, used, T0.plus_secs(6600)));
    }

    #[test]
    fn lifetime_counts_from_the_grant_not_the_last_use() {
        let p: RefreshTokenPolicy = "specific_lifetime:1:DAYS".parse().unwrap();
        let used = T0.plus_secs(86_000);
        assert!(p.allows_refresh(T0, used, T0.plus_secs(86_399)));
        assert!(!p.allows_refresh(T0, used, T0.plus_secs(86_400)));
    }

    #[test]
    fn the_idle_cap_turns_infinite_into_an_inactivity_limit() {
        let capped =
            effective_refresh_policy(RefreshTokenPolicy::Infinite, Some(DEFAULT_IDLE_CAP_SECS));
        assert_eq!(capped.to_string(), "specific_inactivity:30:DAYS");
        assert!(capped.allows_refresh(T0, T0, T0.plus_secs(DEFAULT_IDLE_CAP_SECS - 1)));
        assert!(!capped.allows_refresh(T0, T0, T0.plus_secs(DEFAULT_IDLE_CAP_SECS)));
        assert_eq!(
            explain_effective_policy(RefreshTokenPolicy::Infinite, Some(DEFAULT_IDLE_CAP_SECS)),
            "infinite, capped at 30 days idle by the idle-limit cap"
        );
    }

    #[test]
    fn the_idle_cap_leaves_zero_shorter_limits_and_lifetimes_alone() {
        for text in [
            "zero",
            "specific_inactivity:2:HOURS",
            "specific_lifetime:1:MONTHS",
        ] {
            let policy: RefreshTokenPolicy = text.parse().unwrap();
            assert_eq!(
                effective_refresh_policy(policy, Some(86_400)),
                policy,
                "{text}"
            );
            assert_eq!(explain_effective_policy(policy, Some(86_400)), text);
        }
        let longer: RefreshTokenPolicy = "specific_inactivity:90:DAYS".parse().unwrap();
        assert_eq!(
            effective_refresh_policy(longer, Some(86_400)).idle_secs(),
            Some(86_400)
        );
        assert_eq!(
            effective_refresh_policy(RefreshTokenPolicy::Infinite, None),
            RefreshTokenPolicy::Infinite
        );
    }

    #[test]
    fn lengths_read_in_their_largest_whole_unit() {
        assert_eq!(describe_secs(86_400), "1 day");
        assert_eq!(describe_secs(5400), "90 minutes");
        assert_eq!(describe_secs(61), "61 seconds");
    }

    #[test]
    fn months_are_thirty_days() {
        let p: RefreshTokenPolicy = "specific_lifetime:1:MONTHS".parse().unwrap();
        assert_eq!(p.lifetime_secs(), Some(30 * 86_400));
    }
}
