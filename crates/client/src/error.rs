//! What can go wrong, as enums whose variants say what to do next (docs/decisions.md, "Errors
//! are enums mapped at one edge").

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why the user has to log in again. Persisted in the credential (as its `dead` marker) so that
/// other processes fail fast without asking the server again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReauthReason {
    /// `invalid_grant`: the refresh token expired, was revoked, or its reuse was detected and
    /// the server revoked its family.
    #[error("the server rejected the refresh token ({description})")]
    RefreshTokenRejected { description: String },
    /// The grant came without a refresh token (the scope lacked `refresh_token` or
    /// `offline_access`), and the access token is no longer accepted.
    #[error("the session has no refresh token (ask for the refresh_token scope)")]
    NoRefreshToken,
    /// `invalid_client`, `invalid_client_id` or `unauthorized_client`: the client id or secret
    /// is wrong or no longer allowed.
    #[error("the server rejected the client ({error}): check the client id and secret")]
    ClientMisconfigured { error: String },
    /// `inactive_user`: the user was deactivated at the server.
    #[error("the user is inactive at the server")]
    UserInactive,
    /// A refresh was interrupted (the process died or the response was lost) longer ago than
    /// any retry window, and the server no longer accepts the old refresh token: the rotated
    /// token it issued then is lost.
    #[error("an interrupted refresh lost the rotated refresh token")]
    LostRotation,
    /// The tokens are DPoP-bound and the key they are bound to is missing or unreadable:
    /// without it they are worthless, and sending them as Bearer would be refused (and would
    /// downgrade the binding).
    #[error("the DPoP key the tokens are bound to is lost")]
    DpopKeyLost,
}

/// Errors of the token store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The compare-and-swap failed: the stored refresh token is not the one expected (another
    /// process refreshed or logged in meanwhile).
    #[error("the stored credential changed meanwhile (another process refreshed or logged in)")]
    Conflict,
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not a credential file of ours, or truncated.
    #[error("{}: not a readable Tessera credential file ({reason})", path.display())]
    Corrupt { path: PathBuf, reason: String },
    /// Authentication of the ciphertext failed: another key or passphrase, or altered bytes.
    #[error("{}: cannot be decrypted: wrong key or passphrase, another profile's file, or the file was altered", path.display())]
    Decrypt { path: PathBuf },
    #[error("{}: written in format {version}, which this version cannot read", path.display())]
    UnsupportedVersion { path: PathBuf, version: u8 },
    /// The key is not available: missing key file, unreachable keyring, or a key mode other
    /// than the one the file was written with.
    #[error("{0}")]
    KeyUnavailable(String),
    /// A key file that other users can read protects nothing.
    #[error("key file {} is accessible to other users (mode {mode:o}); it must be 0600", path.display())]
    InsecureKeyFile { path: PathBuf, mode: u32 },
    /// The store was configured in a way that would weaken it.
    #[error("{0}")]
    Config(String),
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// Whether the stored file exists but cannot be read with the key at hand (so a fresh
    /// login may replace it).
    pub fn is_unreadable(&self) -> bool {
        matches!(
            self,
            Self::Corrupt { .. }
                | Self::Decrypt { .. }
                | Self::UnsupportedVersion { .. }
                | Self::KeyUnavailable(_)
        )
    }
}

/// Errors of the token manager.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The refresh token cannot be used any more: the user must log in again.
    #[error("re-authentication required: {reason}")]
    ReauthRequired { reason: ReauthReason },
    /// Network failure, 5xx, 429, or a concurrent refresh at the server: try again later
    /// (after `retry_after` when the server said so). Retries have already been made.
    #[error("temporary failure: {message}")]
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// No credential is stored.
    #[error("not logged in")]
    NotLoggedIn,
    #[error("token storage: {0}")]
    Storage(#[from] StoreError),
    /// The server answered something this client does not understand, or a request was
    /// refused for a reason no retry or login fixes.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A plain-http URL for a host other than loopback: the client secret, the code and the
    /// tokens would cross the network in clear. Refused before any request is sent, unless
    /// allowed with [`crate::DiscoveryOptions::insecure_http`] (`--insecure-http` in the CLI).
    #[error(
        "refusing {url}: plain http would send the client secret, the code and the tokens in \
         clear. Use https, or a loopback host (127.0.0.1, ::1, localhost); to allow plain http \
         anyway, pass --insecure-http (library: DiscoveryOptions::insecure_http)"
    )]
    InsecureHttp { url: String },
    /// The token endpoint refused an authorization code exchange with this OAuth `error`
    /// (`invalid_grant`: the code expired, was used, or the PKCE verifier or redirect URI does
    /// not match; `invalid_client`: the client's id or secret).
    #[error("the code exchange was refused: {error}: {description}")]
    CodeExchangeRefused { error: String, description: String },
    /// The ID token did not verify. At login the login is refused: the token may come from a
    /// mix-up with another issuer, or be forged or replayed.
    #[error("the ID token was refused: {0}")]
    IdToken(#[from] crate::id_token::IdTokenError),
}

impl ClientError {
    pub(crate) fn transient(message: impl Into<String>) -> Self {
        Self::Transient {
            message: message.into(),
            retry_after: None,
        }
    }
}
