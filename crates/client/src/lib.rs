//! Tessera's token manager: hands out a valid OAuth 2.0 access token and keeps it valid, for one
//! credential (issuer + client + user).
//!
//! What it does that the usual client libraries do not (see docs/client.md, "What the token
//! manager does"):
//!
//! - **Proactive refresh** when the remaining lifetime drops below min(60 s, 10 % of the
//!   lifetime), measured in the *server's* time (inferred from the HTTP `Date` header); for
//!   providers without `expires_in` (Salesforce), from `issued_at` plus a configured session
//!   timeout, else from introspection (confidential clients, once per access token), or else
//!   reactive refresh only.
//! - **Reactive refresh** through [`AuthorizedClient`]: a 401 (`INVALID_SESSION_ID`,
//!   `WWW-Authenticate: Token`, or `Bearer error="invalid_token"`) refreshes once and replays
//!   once, never in a loop.
//! - **One refresh at a time** in process (an async mutex) and across processes (an OS lock on
//!   a sidecar `.lock` file), held across the HTTP refresh; after taking the lock the store is
//!   re-read and a token another process already refreshed is adopted.
//! - **Rotation-safe persistence**: the new refresh token is saved durably (temp file, fsync,
//!   rename, directory fsync) as a compare-and-swap on the old one *before* the access token is
//!   handed out; an in-flight marker lets a process that crashed mid-refresh retry inside the
//!   server's retry window.
//! - **Typed outcomes**: [`ClientError::ReauthRequired`] with a [`ReauthReason`], persisted so
//!   other processes fail fast, distinct from [`ClientError::Transient`] (bounded, jittered
//!   retries honouring `Retry-After`).
//! - **Encrypted at rest**: XChaCha20-Poly1305 over the whole credential; the key in the OS
//!   keyring, a 0600 key file kept apart from the data, or a passphrase (Argon2id), and
//!   [`TokenStore::protection`] says which, never silently degraded.
//! - **Verification on demand**: [`TokenManager::verified_access_token`] asks the server
//!   (introspection, else the identity URL) whether it still accepts the token, and refreshes
//!   when it does not: for a token revoked early, which nothing on the client can see.
//! - **The OpenID Connect ID token** is verified before it is kept (signature against the
//!   issuer's JWKS, found by `kid` with one refetch for an unknown one; RS256 or ES256 only;
//!   `iss`, `aud`, `azp`, `exp`, `iat`, `nonce`; on refresh, the same login as OpenID Connect
//!   Core §12.2 has it), and [`TokenManager::identity`] gives its claims.
//! - **DPoP** (RFC 9449), with [`ManagerConfig::dpop`] or a credential that has a key: one
//!   P-256 [`DpopKey`] per credential, stored with the tokens and kept across rotations; a
//!   fresh proof on every token request, and on API calls once the server bound the tokens
//!   (`token_type: DPoP`, any case); one retry with the server's `DPoP-Nonce`; a lost key is
//!   [`ReauthReason::DpopKeyLost`], never a downgrade to Bearer.
//! - **Logout** revokes the refresh token then the access token, best effort, wipes the local
//!   copy and reports each step.
//! - **Events** for every refresh ([`RefreshEvent`]: outcome, rotation seen, lock wait,
//!   attempts) and `tracing` spans that never carry a token.
//!
//! It depends on `tessera-proto` (wire types, no IO) and none of the server's crates.
//!
//! ```no_run
//! use std::sync::Arc;
//! use tessera_client::{ClientError, FileTokenStore, KeySource, ManagerConfig, TokenManager};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // The key apart from the data: a copy of the profiles directory alone decrypts nothing.
//! let store = FileTokenStore::open(
//!     "/home/me/.config/tessera/profiles/default.cred".into(),
//!     KeySource::Auto {
//!         key_file: "/home/me/.local/share/tessera/keys/client.key".into(),
//!         keyring_service: "tessera".into(),
//!         keyring_user: "default".into(),
//!     },
//! )?;
//! let http = tessera_client::default_http_client()?;
//! let manager = Arc::new(TokenManager::new(Arc::new(store), ManagerConfig::new(http)));
//! // After `tessera login` (or any code exchange turned into a `Credential` and passed to
//! // `login_with`), requests carry a valid token and survive its expiry:
//! let api = manager.http_client();
//! match api.get("/services/data/v65.0/sobjects").await {
//!     Ok(response) => println!("{}", response.status()),
//!     Err(ClientError::ReauthRequired { reason }) => eprintln!("please log in again: {reason}"),
//!     Err(other) => return Err(other.into()),
//! }
//! # Ok(())
//! # }
//! ```

mod authorized;
mod clock;
mod credential;
mod discovery;
mod dpop;
mod error;
mod id_token;
mod manager;
#[cfg(feature = "reqwest-middleware")]
mod middleware;
mod oauth;
mod resource;
mod store;

pub use authorized::AuthorizedClient;
pub use clock::{Clock, ManualClock, SystemClock};
pub use credential::{
    refresh_margin_ms, Credential, Decision, Endpoints, InFlight, LOST_ROTATION_AFTER,
    MAX_REFRESH_MARGIN,
};
pub use discovery::{check_url, discover, discover_with, DiscoveryOptions};
pub use dpop::DpopKey;
pub use error::{ClientError, ReauthReason, StoreError};
pub use id_token::{IdTokenClaims, IdTokenError, ID_TOKEN_LEEWAY};
pub use manager::{
    EventSink, LogoutReport, LogoutStep, ManagerConfig, RefreshEvent, RefreshOutcome,
    RefreshTrigger, Status, TokenManager,
};
#[cfg(feature = "reqwest-middleware")]
pub use middleware::TokenMiddleware;
pub use oauth::{default_http_client, parse_token_response, CodeGrant};
pub use store::{FileTokenStore, KeySource, Protection, StoreLock, TokenStore};
pub use tessera_proto::{AccessToken, ClientSecret, ExposeSecret, IdToken, Password, RefreshToken};

/// The library example of docs/client.md, compiled as a doctest so that it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/client.md")]
pub struct ReadmeDoctests;
