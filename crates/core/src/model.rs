//! Records the domain keeps. Secret values never appear here: only their SHA-256.

use tessera_proto::{ClientSecret, ExposeSecret, Scope};

use crate::identity::ip_allowlist::IpAllowlist;
use crate::policy::RefreshTokenPolicy;
use crate::time::Timestamp;
use crate::tokens::hash::{hash_matches, Hash};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    /// 18-character id, key prefix `00D`.
    pub id: String,
    pub name: String,
}

#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// 18-character id, key prefix `005`.
    pub id: String,
    pub org_id: String,
    pub username: String,
    pub email: Option<String>,
    /// Argon2id PHC string.
    pub password_hash: String,
    pub disabled: bool,
    pub created_at: Timestamp,
    /// May use the admin console (`/admin`); set with `tessera admin user grant-admin`.
    pub admin: bool,
    /// The generation of the user's browser sessions: every session cookie carries the one it
    /// was made in, and only the current one is honoured. The store raises it (never from this
    /// field: an update leaves it alone) on a password change, a disable, a role change and a
    /// logout, which so ends every browser session of the user at once.
    pub session_epoch: i64,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("disabled", &self.disabled)
            .field("admin", &self.admin)
            .field("session_epoch", &self.session_epoch)
            .finish_non_exhaustive()
    }
}

/// A registered application (Salesforce's connected app).
#[derive(Clone, PartialEq, Eq)]
pub struct Client {
    pub client_id: String,
    pub name: String,
    /// SHA-256 of the secret; `None` for public clients.
    pub secret_hash: Option<Hash>,
    pub redirect_uris: Vec<String>,
    /// What the client may ask for; an authorization request without `scope` gets all of it.
    pub scopes: Scope,
    pub refresh_token_policy: RefreshTokenPolicy,
    pub access_token_ttl_secs: u64,
    pub rotate_refresh_tokens: bool,
    pub allow_user_agent_flow: bool,
    /// How long a rotated-out refresh token may be replayed to get the same successor back, while
    /// that successor is unused (0: Salesforce's strict behaviour).
    pub refresh_retry_window_secs: u64,
    pub created_at: Timestamp,
    /// How its ID tokens and access tokens are made.
    pub openid: OpenIdSettings,
    /// Whether its tokens are bound to a key by DPoP proofs (RFC 9449).
    pub dpop: DpopSettings,
    /// Salesforce's refresh-token controls (docs/controls.md).
    pub controls: ClientControls,
}

/// A client's refresh-token controls, as Salesforce's connected apps have them (docs/controls.md).
/// The default is every control off: what a client did before the controls existed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientControls {
    /// Every authorization request needs an S256 `code_challenge`. Once set it can never be
    /// unset (Salesforce's rule): an administrator cannot quietly weaken a partner app.
    pub pkce_required: bool,
    /// Refresh-token rotation cannot be turned off while this is set.
    pub rotation_required: bool,
    /// Salesforce's "limit idle refresh-token lifetime", in seconds: an `infinite` policy (or a
    /// longer inactivity limit) behaves as an inactivity limit of this length.
    pub idle_cap_secs: Option<u64>,
    /// Salesforce's "Block": every token request and every use of the client's tokens is
    /// refused; the tokens stay stored, so unblocking restores them.
    pub blocked: bool,
    /// Salesforce's "Refresh Token IP allowlist": the ranges the client's code exchanges and
    /// refreshes may come from (empty: anywhere). Access tokens are not restricted by it.
    pub ip_allowlist: IpAllowlist,
    /// Rotation audit mode (docs/controls.md, "Rotation audit mode"): while rotation is on, a
    /// rotated-out token that reuse detection would punish is answered with a new pair and
    /// recorded as a `rotation_audit` event instead, nothing revoked. Meaningless while rotation
    /// is off (the settings clear it), refused with rotation required and for public clients.
    pub rotation_audit: bool,
}

/// A client's refresh-token rotation as the CLI and the console name it: off, on, or audit
/// (on, with reuse recorded instead of punished).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationMode {
    Off,
    On,
    Audit,
}

impl RotationMode {
    pub const ALL: [RotationMode; 3] = [Self::Off, Self::On, Self::Audit];

    pub fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::On => "on",
            Self::Audit => "audit",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|mode| mode.name() == name)
    }
}

/// Whether a client's token requests bind tokens with DPoP proofs (Salesforce's per-app
/// "Require DPoP"; docs/dpop.md). Off for every client until an administrator says otherwise,
/// so that adding DPoP changes nothing for existing clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DpopMode {
    /// Proofs are ignored; tokens are Bearer tokens.
    #[default]
    Off,
    /// A valid proof binds the tokens; a request without one gets unbound (Bearer) tokens.
    Allowed,
    /// A token request without a proof is refused.
    Required,
}

impl DpopMode {
    pub const ALL: [DpopMode; 3] = [Self::Off, Self::Allowed, Self::Required];

    /// The name the admin commands, the console and the database use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Allowed => "allowed",
            Self::Required => "required",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|mode| mode.as_str() == name)
    }
}

impl std::fmt::Display for DpopMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DpopMode {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::from_name(name)
            .ok_or_else(|| format!("unknown DPoP mode {name:?} (off, allowed or required)"))
    }
}

/// A client's DPoP settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DpopSettings {
    pub mode: DpopMode,
    /// Whether its proofs must carry a server-issued `nonce` (RFC 9449 §8), whatever the
    /// server-wide setting says.
    pub require_nonce: bool,
}

/// The algorithm a client's ID tokens (and JWT access tokens) are signed with: RS256, as
/// Salesforce signs them, unless the client opts into ES256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SigningAlg {
    #[default]
    Rs256,
    Es256,
}

impl SigningAlg {
    pub const ALL: [SigningAlg; 2] = [Self::Rs256, Self::Es256];

    /// The JWS `alg` (RFC 7518 §3.1).
    pub fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// Salesforce's default ID-token validity ("ID Token Valid Duration"): 2 minutes.
pub const DEFAULT_ID_TOKEN_VALIDITY_SECS: u64 = 120;
/// Salesforce's longest: 720 minutes.
pub const MAX_ID_TOKEN_VALIDITY_SECS: u64 = 720 * 60;
/// Extra ID-token audiences a client may have.
pub const MAX_ID_TOKEN_AUDIENCES: usize = 16;

/// A client's OpenID Connect settings (Salesforce's "Configure ID Token" and "Issue JSON Web
/// Token (JWT)-based access tokens"; docs/openid-connect.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenIdSettings {
    /// An ID token's `exp - iat` (Salesforce's `idTokenValidity`, in minutes there).
    pub id_token_validity_secs: u64,
    /// Audiences an ID token names besides the client id (its `aud` is then an array).
    pub id_token_audiences: Vec<String>,
    /// Whether ID tokens carry the user's standard claims (`idTokenIncludeStandardClaims`).
    pub id_token_standard_claims: bool,
    /// Whether an ID token issued on refresh repeats the authorization's `nonce` (OpenID
    /// Connect Core §12.2 leaves it out; some relying parties insist on it).
    pub echo_nonce_on_refresh: bool,
    /// The algorithm of its ID tokens.
    pub id_token_alg: SigningAlg,
    /// Whether its access tokens are JWTs (RFC 9068) rather than opaque.
    pub jwt_access_tokens: bool,
}

impl Default for OpenIdSettings {
    fn default() -> Self {
        Self {
            id_token_validity_secs: DEFAULT_ID_TOKEN_VALIDITY_SECS,
            id_token_audiences: Vec::new(),
            id_token_standard_claims: false,
            echo_nonce_on_refresh: false,
            id_token_alg: SigningAlg::Rs256,
            jwt_access_tokens: false,
        }
    }
}

impl Client {
    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none()
    }

    /// Whether `secret` is this confidential client's secret (compared in constant time).
    pub fn secret_matches(&self, secret: &ClientSecret) -> bool {
        self.secret_hash
            .as_ref()
            .is_some_and(|stored| hash_matches(secret.expose_secret(), stored))
    }

    /// The refresh-token policy its tokens follow: the configured one under the idle-limit cap.
    pub fn effective_refresh_policy(&self) -> RefreshTokenPolicy {
        crate::policy::effective_refresh_policy(
            self.refresh_token_policy,
            self.controls.idle_cap_secs,
        )
    }

    /// Public clients always rotate (RFC 9700 §2.2.2: rotation or sender-constraining is a MUST).
    pub fn rotates(&self) -> bool {
        self.rotate_refresh_tokens || self.is_public()
    }

    /// Whether reuse of a rotated-out token is recorded (`rotation_audit`) rather than punished:
    /// rotation on, in audit mode. Never for a public client, whose rotation is its protection.
    pub fn audits_rotation(&self) -> bool {
        self.rotates() && !self.is_public() && self.controls.rotation_audit
    }

    /// Its rotation as the CLI and the console name it.
    pub fn rotation_mode(&self) -> RotationMode {
        match (self.rotates(), self.audits_rotation()) {
            (false, _) => RotationMode::Off,
            (true, false) => RotationMode::On,
            (true, true) => RotationMode::Audit,
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("client_id", &self.client_id)
            .field("name", &self.name)
            .field("public", &self.is_public())
            .finish_non_exhaustive()
    }
}

/// An authorization code waiting to be redeemed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthCode {
    pub code_hash: Hash,
    pub client_id: String,
    pub user_id: String,
    pub redirect_uri: String,
    pub scope: Scope,
    /// PKCE S256 challenge, base64url without padding.
    pub code_challenge: Option<String>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// The authorization request's OpenID Connect `nonce`, for the ID token.
    pub nonce: Option<String>,
    /// When the user authenticated (logged in) for this authorization: the ID token's
    /// `auth_time`.
    pub auth_time: Option<Timestamp>,
    /// The authorization request's `dpop_jkt` (RFC 9449 §10): the exchange of this code must
    /// come with a proof of the key with this RFC 7638 thumbprint.
    pub dpop_jkt: Option<String>,
}

/// A grant: one user's approval of one client, and the family of refresh tokens and access
/// tokens issued from it. Its refresh-token state is a [`Family`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub id: String,
    pub client_id: String,
    pub user_id: String,
    pub org_id: String,
    pub scope: Scope,
    pub created_at: Timestamp,
    pub last_used_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    /// Whether a refresh token was issued for it (only those count toward the approval limit).
    pub has_refresh_token: bool,
    /// When the user authenticated for it (`auth_time` of its ID tokens, the same on every
    /// refresh); `None` for grants made before it was kept, or without a login (minted).
    pub auth_time: Option<Timestamp>,
    /// The authorization request's `nonce`, for clients that have it echoed on refresh.
    pub nonce: Option<String>,
    /// The RFC 7638 thumbprint of the key a public client's refresh tokens are bound to. It
    /// is on the grant, not on a token, so that every rotated successor inherits it.
    pub dpop_jkt: Option<String>,
}

/// A grant with its family's refresh-token state: the current token, and the one it replaced,
/// still answerable inside the retry window.
#[derive(Clone, PartialEq, Eq)]
pub struct Family {
    pub grant: Grant,
    /// The family's current refresh token; `None` when it has none.
    pub current: Option<Hash>,
    /// The token the current one replaced.
    pub previous: Option<Hash>,
    /// When `previous` was rotated out: a replay of `previous` inside the retry window rebuilds
    /// the pair this rotation issued (see `sealing::Successor`).
    pub rotated_at: Option<Timestamp>,
    /// The thumbprint of the key the last rotation's access token was bound to, if it was: a
    /// replay inside the retry window rebuilds that same pair, bound to the same key.
    pub rotated_jkt: Option<String>,
}

impl std::fmt::Debug for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Family")
            .field("grant", &self.grant)
            .field("rotated_at", &self.rotated_at)
            .field("rotated_jkt", &self.rotated_jkt)
            .finish_non_exhaustive()
    }
}

/// What changed, for the caches of every process: revocations, clients and users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// A grant was revoked (its key): its access tokens stop working.
    GrantRevoked,
    /// One access token was revoked (its key is the token's hash, hex).
    AccessTokenRevoked,
    ClientChanged,
    UserChanged,
}

impl ChangeKind {
    pub const ALL: [ChangeKind; 4] = [
        Self::GrantRevoked,
        Self::AccessTokenRevoked,
        Self::ClientChanged,
        Self::UserChanged,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::GrantRevoked => "grant_revoked",
            Self::AccessTokenRevoked => "access_token_revoked",
            Self::ClientChanged => "client_changed",
            Self::UserChanged => "user_changed",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// An entry of the change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub seq: i64,
    pub kind: ChangeKind,
    pub key: String,
    /// Until when it matters (a revocation: until the last token it affects has expired).
    pub until: Timestamp,
}

/// A validated access token: what it grants, to whom, until when. Access tokens are verified
/// from their own signed content (see `access_token.rs`); rows of this shape exist only for
/// tokens of the earlier, stored format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenRecord {
    pub token_hash: Hash,
    pub grant_id: String,
    pub client_id: String,
    pub user_id: String,
    pub org_id: String,
    pub scope: Scope,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// A record of the one object type the REST API stores, Salesforce's `Note`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// 18-character id, key prefix `002`.
    pub id: String,
    pub owner_id: String,
    pub title: String,
    pub body: Option<String>,
    pub created_at: Timestamp,
    pub modified_at: Timestamp,
}

/// What an audit event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A grant was created and tokens issued (code exchange, user-agent flow, mint).
    Issued,
    /// A refresh without rotation.
    Refreshed,
    /// A refresh that rotated the refresh token.
    Rotated,
    /// A rotated-out token replayed inside the retry window: the same successor was returned.
    RetryReplayed,
    /// A rotated-out token replayed outside the window: the family was revoked.
    ReuseDetected,
    /// A concurrent refresh of the same token refused (retry window 0).
    ConcurrentRefreshRefused,
    /// Rotation audit mode: a rotated-out token outside the retry window (reuse, were rotation
    /// on) was answered with a new pair, nothing revoked: the client did not keep the new token.
    /// The detail says how many generations old the token was.
    RotationAudit,
    /// A refresh token refused with `invalid_grant`, and why (the detail names a
    /// `RefreshRefusal`): the presenting client and the source, never the token. Repeats from
    /// the same client, source and reason are counted, not written (docs/security.md, "The
    /// audit trail").
    RefreshRefused,
    /// A DPoP proof refused at the token endpoint (RFC 9449), and why (the check that failed):
    /// the client and the source, never the proof. Repeats are counted as a refused refresh's.
    DpopProofRefused,
    /// A code exchange or a refresh refused because its source address is outside the client's
    /// IP allowlist (docs/controls.md): the client and the address, never the token. Nothing is
    /// revoked; repeats are counted as a refused refresh's.
    IpRefused,
    /// A grant or an access token was revoked (the detail says by what).
    Revoked,
    /// An authorization code presented a second time: what it issued was revoked.
    CodeReused,
    ClientAuthFailed,
    LoginFailed,
    /// A budget of failures was used up: the source (or username) is throttled until the window
    /// ends (the detail names the budget; never a secret).
    Throttled,
    // What administrators do in the admin console; the event's user is the administrator.
    /// An administrator logged in to the console.
    ConsoleLogin,
    /// A user who is not an administrator gave the right password to the console's login.
    ConsoleRefused,
    /// An administrator logged out of the console, ending every browser session of theirs.
    ConsoleLogout,
    ClientCreated,
    ClientUpdated,
    ClientSecretRotated,
    ClientDeleted,
    UserDisabled,
    UserEnabled,
    /// A grant revoked from the console (the grant's own `revoked` event follows it).
    GrantRevokedByAdmin,
    /// "Log out everywhere": every live grant of a user revoked as one action. The event's user
    /// is the user logged out; the detail says how many grants and who did it (the command
    /// line, an administrator in the console, or the user on their connected-apps page). Each
    /// grant's own `revoked` event precedes it.
    UserGrantsRevoked,
}

impl EventKind {
    pub const ALL: [EventKind; 26] = [
        Self::Issued,
        Self::Refreshed,
        Self::Rotated,
        Self::RetryReplayed,
        Self::ReuseDetected,
        Self::ConcurrentRefreshRefused,
        Self::RotationAudit,
        Self::RefreshRefused,
        Self::DpopProofRefused,
        Self::IpRefused,
        Self::Revoked,
        Self::CodeReused,
        Self::ClientAuthFailed,
        Self::LoginFailed,
        Self::Throttled,
        Self::ConsoleLogin,
        Self::ConsoleRefused,
        Self::ConsoleLogout,
        Self::ClientCreated,
        Self::ClientUpdated,
        Self::ClientSecretRotated,
        Self::ClientDeleted,
        Self::UserDisabled,
        Self::UserEnabled,
        Self::GrantRevokedByAdmin,
        Self::UserGrantsRevoked,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Issued => "issued",
            Self::Refreshed => "refreshed",
            Self::Rotated => "rotated",
            Self::RetryReplayed => "retry_replayed",
            Self::ReuseDetected => "reuse_detected",
            Self::ConcurrentRefreshRefused => "concurrent_refresh_refused",
            Self::RotationAudit => "rotation_audit",
            Self::RefreshRefused => "refresh_refused",
            Self::DpopProofRefused => "dpop_proof_refused",
            Self::IpRefused => "ip_refused",
            Self::Revoked => "revoked",
            Self::CodeReused => "code_reused",
            Self::ClientAuthFailed => "client_auth_failed",
            Self::LoginFailed => "login_failed",
            Self::Throttled => "throttled",
            Self::ConsoleLogin => "console_login",
            Self::ConsoleRefused => "console_refused",
            Self::ConsoleLogout => "console_logout",
            Self::ClientCreated => "client_created",
            Self::ClientUpdated => "client_updated",
            Self::ClientSecretRotated => "client_secret_rotated",
            Self::ClientDeleted => "client_deleted",
            Self::UserDisabled => "user_disabled",
            Self::UserEnabled => "user_enabled",
            Self::GrantRevokedByAdmin => "grant_revoked_by_admin",
            Self::UserGrantsRevoked => "user_grants_revoked",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// An audit event: who, what, when — never a token value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub at: Timestamp,
    pub kind: EventKind,
    pub client_id: Option<String>,
    pub user_id: Option<String>,
    pub grant_id: Option<String>,
    /// A short fixed-vocabulary note (e.g. "admin", "approval limit", a throttle budget).
    pub detail: String,
    /// The address the request came from (after trusted proxies), when a request caused it.
    pub source: Option<String>,
    /// The request's `User-Agent`, shortened, when a request caused it.
    pub user_agent: Option<String>,
}

/// In the detail of a `retry_replayed` event: the replay came from another address than the
/// rotation it replays (the admin console's timeline marks it; docs/security.md, "Retry window").
pub const FROM_ANOTHER_ADDRESS: &str = "from another address";

/// An event as stored, with its sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub id: i64,
    pub event: Event,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dpop_mode_is_read_back_from_its_name_and_nothing_else_is_one() {
        for mode in DpopMode::ALL {
            assert_eq!(mode.as_str().parse::<DpopMode>(), Ok(mode));
        }
        assert_eq!(DpopSettings::default().mode, DpopMode::Off);
        assert!(!DpopSettings::default().require_nonce);
        for refused in ["", "on", "Required", "none"] {
            let error = refused.parse::<DpopMode>().unwrap_err();
            assert!(error.contains("off, allowed or required"), "{error}");
        }
    }
}
