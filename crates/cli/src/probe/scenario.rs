//! The scenarios: what the server does wrong on purpose, and the client it does it to.

use std::time::Duration;

use serde::Serialize;

/// One way the server misbehaves, with the client settings that make it bite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Nothing goes wrong: access tokens die within a second, and the command refreshes at
    /// least twice, so a command that keeps its first refresh token presents it after it was
    /// rotated out, outside the retry window.
    Rotation,
    /// The first refresh is committed by the server, but its response is lost: the
    /// connection is closed before the answer.
    LostResponse,
    /// A second, identical refresh arrives alongside the command's first one, as from a
    /// second instance of the app.
    ConcurrentRefresh,
    /// The access token is revoked early, after the first successful API call.
    AccessRevoked,
    /// The login ends (the grant is revoked) after the first successful API call.
    RefreshExpired,
    /// The server restarts after the first successful API call: same database, same port.
    Restart,
}

/// How a scenario's client is registered and how the command is asked to pace itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    pub access_token_ttl_secs: u64,
    pub retry_window_secs: u64,
    /// API calls the command is asked to make.
    pub calls: u32,
    /// The pause asked for between two calls.
    pub pause: Duration,
}

/// A pause longer than the access token's life (so that each call after the first refreshes)
/// and longer than the server's grace for a duplicate of a refresh that has just committed
/// (2 s): a rotated-out token presented one pause after its rotation is judged reuse.
const PAUSE_PAST_EXPIRY: Duration = Duration::from_millis(2_500);
/// An access token that dies before the next call.
const SHORT_TTL_SECS: u64 = 1;
/// An access token that outlives the run: only probe's revocation ends it.
const LONG_TTL_SECS: u64 = 3_600;
/// A retry window the command's retries fall into.
const ROOMY_WINDOW_SECS: u64 = 10;

impl Scenario {
    pub const ALL: [Scenario; 6] = [
        Scenario::Rotation,
        Scenario::LostResponse,
        Scenario::ConcurrentRefresh,
        Scenario::AccessRevoked,
        Scenario::RefreshExpired,
        Scenario::Restart,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Rotation => "rotation",
            Scenario::LostResponse => "lost-response",
            Scenario::ConcurrentRefresh => "concurrent-refresh",
            Scenario::AccessRevoked => "access-revoked",
            Scenario::RefreshExpired => "refresh-expired",
            Scenario::Restart => "restart",
        }
    }

    pub fn setup(self) -> Setup {
        match self {
            // A window shorter than the pause: the kept first token comes back outside it.
            Scenario::Rotation => Setup {
                access_token_ttl_secs: SHORT_TTL_SECS,
                retry_window_secs: 1,
                calls: 3,
                pause: PAUSE_PAST_EXPIRY,
            },
            Scenario::LostResponse | Scenario::ConcurrentRefresh | Scenario::Restart => Setup {
                access_token_ttl_secs: SHORT_TTL_SECS,
                retry_window_secs: ROOMY_WINDOW_SECS,
                calls: 3,
                pause: PAUSE_PAST_EXPIRY,
            },
            Scenario::AccessRevoked | Scenario::RefreshExpired => Setup {
                access_token_ttl_secs: LONG_TTL_SECS,
                retry_window_secs: ROOMY_WINDOW_SECS,
                calls: 3,
                pause: Duration::from_millis(200),
            },
        }
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
