//! The persisted credential and every refresh decision made on it. Pure functions of the
//! credential and the local time, so a fake clock tests each one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tessera_proto::{
    AccessToken, ClientSecret, ExposeSecret, IdToken, RefreshToken, TokenResponse, TokenType,
};

use crate::dpop::DpopKey;
use crate::error::ReauthReason;
use crate::id_token::IdTokenClaims;

/// The most a token is refreshed ahead of its expiry: one minute.
pub const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// An in-flight marker older than this that meets `invalid_grant` means the rotated token was
/// lost: retry windows are at most this long at Okta and Cognito, 60 s by default at Tessera.
pub const LOST_ROTATION_AFTER: Duration = Duration::from_secs(60);

/// The authorization server's endpoints, from discovery or configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    pub issuer: String,
    pub token: String,
    pub revocation: Option<String>,
    pub introspection: Option<String>,
    pub authorization: Option<String>,
    /// The issuer's JWKS, which verifies its ID tokens: the metadata's `jwks_uri`, else
    /// Salesforce's `<issuer>/id/keys` (see [`Endpoints::jwks`]). `None` in files written
    /// before it was kept.
    #[serde(default)]
    pub jwks_uri: Option<String>,
}

impl Endpoints {
    /// Salesforce's paths under `issuer`, for servers without a discovery document.
    pub fn salesforce(issuer: &str) -> Self {
        let issuer = issuer.trim_end_matches('/');
        Self {
            issuer: issuer.to_owned(),
            token: format!("{issuer}/services/oauth2/token"),
            revocation: Some(format!("{issuer}/services/oauth2/revoke")),
            introspection: Some(format!("{issuer}/services/oauth2/introspect")),
            authorization: Some(format!("{issuer}/services/oauth2/authorize")),
            jwks_uri: Some(salesforce_jwks(issuer)),
        }
    }

    /// Where the issuer's signing keys are: `jwks_uri`, else Salesforce's path under the
    /// issuer (which Tessera serves too).
    pub fn jwks(&self) -> String {
        self.jwks_uri
            .clone()
            .unwrap_or_else(|| salesforce_jwks(&self.issuer))
    }
}

fn salesforce_jwks(issuer: &str) -> String {
    format!("{}/id/keys", issuer.trim_end_matches('/'))
}

/// "A refresh with this refresh token was started at this time and has not been recorded as
/// finished." Written durably before the HTTP refresh, cleared with its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    /// SHA-256 (hex) of the refresh token being refreshed: enough to tell whether the marker is
    /// about the token now stored, without a second copy of the secret.
    pub refresh_token_sha256: String,
    /// Local clock, milliseconds since the epoch, of the first attempt. Ages are measured by
    /// the same host's clock that wrote it.
    pub started_at_ms: i64,
}

impl InFlight {
    pub fn new(refresh_token: &RefreshToken, started_at_ms: i64) -> Self {
        Self {
            refresh_token_sha256: fingerprint(refresh_token),
            started_at_ms,
        }
    }

    pub fn is_for(&self, refresh_token: &RefreshToken) -> bool {
        self.refresh_token_sha256 == fingerprint(refresh_token)
    }

    pub fn age_ms(&self, local_now_ms: i64) -> i64 {
        local_now_ms.saturating_sub(self.started_at_ms)
    }
}

fn fingerprint(token: &RefreshToken) -> String {
    hex::encode(Sha256::digest(token.expose_secret().as_bytes()))
}

/// What is persisted, encrypted, for one credential (issuer + client + user).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credential {
    pub endpoints: Endpoints,
    pub client_id: String,
    pub client_secret: Option<ClientSecret>,
    pub access_token: AccessToken,
    pub refresh_token: Option<RefreshToken>,
    pub instance_url: String,
    pub identity_url: Option<String>,
    /// Who logged in, as the server named them when asked at login (introspection or the
    /// identity URL); `None` when it did not say, and in files written before it was kept.
    #[serde(default)]
    pub username: Option<String>,
    pub scope: String,
    /// Server time (ms since the epoch) the access token was issued.
    pub issued_at_ms: i64,
    /// Server time the access token expires; `None` when neither `expires_in`, a session
    /// timeout nor introspection says (refresh is then only reactive).
    pub expires_at_ms: Option<i64>,
    /// Server time minus local time, learnt from the `Date` header of the last token response.
    pub clock_offset_ms: i64,
    pub in_flight: Option<InFlight>,
    /// The OpenID Connect ID token (with the `openid` scope). From
    /// [`Credential::from_token_response`] it is the one received, not yet verified;
    /// [`crate::TokenManager::login_with`] verifies it and stores it only with its claims. A
    /// refresh keeps the last verified one until a new one verifies.
    #[serde(default)]
    pub id_token: Option<IdToken>,
    /// The verified claims of `id_token`; `None` until it is verified, and in files written
    /// before ID tokens were kept.
    #[serde(default)]
    pub id_token_claims: Option<IdTokenClaims>,
    /// Persisted negative cache: set when the server refused the refresh token for good, so
    /// that no process asks again; cleared by a new login.
    pub dead: Option<ReauthReason>,
    /// The DPoP key (RFC 9449) every token request of this credential proves possession of;
    /// kept across rotations. `None` without DPoP, in files written before it, and when the
    /// stored key does not read (then a bound credential asks for a login).
    #[serde(default, deserialize_with = "crate::dpop::lenient_key")]
    pub dpop_key: Option<DpopKey>,
    /// The server answered `token_type: DPoP`: the access token is sent as `Authorization:
    /// DPoP` with a proof, and without the key nothing of this credential is usable.
    #[serde(default)]
    pub dpop_bound: bool,
}

/// What to do with a stored credential now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Hand out the access token.
    Use,
    /// Refresh first (the access token is expired or inside the refresh margin).
    Refresh,
    /// Do not call the server: log in again.
    Dead(ReauthReason),
}

/// How long before expiry a token of this lifetime is refreshed: min(60 s, 10 % of the
/// lifetime), so a 2-hour token goes a minute early and a 3-second one 300 ms early.
pub fn refresh_margin_ms(lifetime_ms: i64) -> i64 {
    (lifetime_ms / 10).clamp(0, MAX_REFRESH_MARGIN.as_millis() as i64)
}

fn system_time_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// The server's time now, estimated from a response's `Date` header (1-second resolution) and
/// its `issued_at` (milliseconds). `issued_at` is only trusted when it agrees with `Date`: a
/// response replayed from a retry window carries the original, older one.
fn server_now_estimate(date_ms: Option<i64>, issued_at_ms: Option<i64>) -> Option<i64> {
    let date = date_ms?;
    Some(match issued_at_ms {
        Some(issued) if issued >= date - 1000 && issued < date + 1000 => issued,
        // The latest instant the header allows: erring late makes refreshes early, not late.
        _ => date + 999,
    })
}

impl Credential {
    /// A credential from a token response (after a code exchange, or a refresh).
    ///
    /// Expiry comes from `expires_in`, else from `issued_at` plus `session_timeout` (Salesforce
    /// sends no `expires_in`; its session timeout is an org setting), else it is unknown and
    /// refresh is only reactive. `server_date` is the response's `Date` header; without it the
    /// local clock is taken for the server's.
    #[allow(clippy::too_many_arguments)]
    pub fn from_token_response(
        endpoints: Endpoints,
        client_id: String,
        client_secret: Option<ClientSecret>,
        response: &TokenResponse,
        server_date: Option<SystemTime>,
        local_now_ms: i64,
        session_timeout: Option<Duration>,
    ) -> Self {
        let issued_at = response.issued_at.trim().parse::<i64>().ok();
        let server_now = server_now_estimate(server_date.map(system_time_ms), issued_at);
        let clock_offset_ms = server_now.map_or(0, |now| now - local_now_ms);
        let issued_at_ms = issued_at.unwrap_or(local_now_ms + clock_offset_ms);
        Self {
            endpoints,
            client_id,
            client_secret,
            access_token: response.access_token.clone(),
            refresh_token: response.refresh_token.clone(),
            instance_url: response.instance_url.clone(),
            identity_url: (!response.id.is_empty()).then(|| response.id.clone()),
            username: None,
            scope: response.scope.clone(),
            issued_at_ms,
            expires_at_ms: expiry(issued_at_ms, response.expires_in, session_timeout),
            clock_offset_ms,
            in_flight: None,
            id_token: response.id_token.clone(),
            id_token_claims: None,
            dead: None,
            dpop_key: None,
            dpop_bound: response.token_type == TokenType::DPoP,
        }
    }

    /// This credential after a successful refresh: the new access token, the rotated refresh
    /// token if one came (the old one is kept otherwise, RFC 6749 §6), the same user, no
    /// markers.
    pub fn refreshed(
        &self,
        response: &TokenResponse,
        server_date: Option<SystemTime>,
        local_now_ms: i64,
        session_timeout: Option<Duration>,
    ) -> Self {
        let mut next = Self::from_token_response(
            self.endpoints.clone(),
            self.client_id.clone(),
            self.client_secret.clone(),
            response,
            server_date,
            local_now_ms,
            session_timeout,
        );
        if server_date.is_none() {
            next.clock_offset_ms = self.clock_offset_ms;
        }
        if next.refresh_token.is_none() {
            next.refresh_token = self.refresh_token.clone();
        }
        if next.instance_url.is_empty() {
            next.instance_url = self.instance_url.clone();
        }
        if next.identity_url.is_none() {
            next.identity_url = self.identity_url.clone();
        }
        next.username = self.username.clone();
        // The response's ID token, if any, is verified by the manager before it replaces this
        // one (OpenID Connect Core §12.2 compares it with the login's).
        next.id_token = self.id_token.clone();
        next.id_token_claims = self.id_token_claims.clone();
        if next.scope.is_empty() {
            next.scope = self.scope.clone();
        }
        // The key outlives every rotation: the refresh token stays bound to it.
        next.dpop_key = self.dpop_key.clone();
        next
    }

    /// The server's clock now, by the offset learnt from its `Date` header.
    pub fn server_now_ms(&self, local_now_ms: i64) -> i64 {
        local_now_ms.saturating_add(self.clock_offset_ms)
    }

    /// Milliseconds of validity left, in server time; `None` when the expiry is unknown.
    pub fn remaining_ms(&self, local_now_ms: i64) -> Option<i64> {
        self.expires_at_ms
            // Saturating: `issued_at`, and so the expiry, is whatever number the server sent.
            .map(|exp| exp.saturating_sub(self.server_now_ms(local_now_ms)))
    }

    /// Whether the access token is past its expiry (an unknown expiry never is).
    pub fn is_expired(&self, local_now_ms: i64) -> bool {
        self.remaining_ms(local_now_ms).is_some_and(|r| r <= 0)
    }

    /// The proactive-refresh rule: refresh when the remaining lifetime, in server time, is below
    /// [`refresh_margin_ms`] of the whole lifetime.
    pub fn decision(&self, local_now_ms: i64) -> Decision {
        if let Some(reason) = self.dead.clone().or_else(|| self.lost_dpop_key()) {
            return Decision::Dead(reason);
        }
        let Some(expires_at) = self.expires_at_ms else {
            return Decision::Use;
        };
        let lifetime = expires_at.saturating_sub(self.issued_at_ms);
        let remaining = expires_at.saturating_sub(self.server_now_ms(local_now_ms));
        if remaining < refresh_margin_ms(lifetime) || remaining <= 0 {
            Decision::Refresh
        } else {
            Decision::Use
        }
    }

    /// [`ReauthReason::DpopKeyLost`] when the tokens are DPoP-bound and the key is not here:
    /// never a silent downgrade to Bearer.
    pub fn lost_dpop_key(&self) -> Option<ReauthReason> {
        (self.dpop_bound && self.dpop_key.is_none()).then_some(ReauthReason::DpopKeyLost)
    }

    /// The marker a crashed or interrupted refresh left for the refresh token now stored.
    pub fn pending_refresh(&self) -> Option<&InFlight> {
        let token = self.refresh_token.as_ref()?;
        self.in_flight.as_ref().filter(|m| m.is_for(token))
    }
}

fn expiry(
    issued_at_ms: i64,
    expires_in: Option<u64>,
    session_timeout: Option<Duration>,
) -> Option<i64> {
    let ttl_ms = expires_in
        .map(|secs| secs.saturating_mul(1000))
        .or_else(|| session_timeout.map(|t| t.as_millis() as u64))?;
    Some(issued_at_ms.saturating_add(i64::try_from(ttl_ms).unwrap_or(i64::MAX)))
}

/// Why a refresh token the server refused with `invalid_grant` is dead: a marker left by an
/// earlier, interrupted refresh of the same token and older than any retry window means the
/// rotated successor was issued and lost; anything else is the server's own reason.
pub(crate) fn rejected_reason(
    prior: Option<&InFlight>,
    local_now_ms: i64,
    description: &str,
) -> ReauthReason {
    match prior {
        Some(marker) if marker.age_ms(local_now_ms) >= LOST_ROTATION_AFTER.as_millis() as i64 => {
            ReauthReason::LostRotation
        }
        _ => ReauthReason::RefreshTokenRejected {
            description: description.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000;
    const HOUR_MS: i64 = 3_600_000;

    fn response(issued_at: i64, expires_in: Option<u64>) -> TokenResponse {
        TokenResponse {
            access_token: AccessToken::new("00D!at"),
            refresh_token: Some(RefreshToken::new("rt")),
            signature: String::new(),
            scope: "api refresh_token".into(),
            instance_url: "https://example.test".into(),
            id: "https://example.test/id/00D/005".into(),
            token_type: TokenType::Bearer,
            issued_at: issued_at.to_string(),
            expires_in,
            id_token: None,
        }
    }

    fn credential(
        issued_at: i64,
        expires_in: Option<u64>,
        date_ms: Option<i64>,
        local_now: i64,
        session_timeout: Option<Duration>,
    ) -> Credential {
        Credential::from_token_response(
            Endpoints::salesforce("https://example.test"),
            "client".into(),
            None,
            &response(issued_at, expires_in),
            date_ms.map(|ms| UNIX_EPOCH + Duration::from_millis(ms as u64)),
            local_now,
            session_timeout,
        )
    }

    #[test]
    fn margin_is_a_minute_for_long_tokens_and_a_tenth_for_short_ones() {
        assert_eq!(refresh_margin_ms(2 * HOUR_MS), 60_000);
        assert_eq!(refresh_margin_ms(3_000), 300);
        assert_eq!(refresh_margin_ms(10 * 60_000), 60_000);
        assert_eq!(refresh_margin_ms(0), 0);
        assert_eq!(refresh_margin_ms(-5), 0);
    }

    #[test]
    fn two_hour_token_is_used_until_a_minute_before_expiry() {
        let c = credential(T0, Some(7200), Some(T0 - T0 % 1000), T0, None);
        assert_eq!(c.expires_at_ms, Some(T0 + 2 * HOUR_MS));
        assert_eq!(c.decision(T0), Decision::Use);
        assert_eq!(c.decision(T0 + 2 * HOUR_MS - 60_001), Decision::Use);
        assert_eq!(c.decision(T0 + 2 * HOUR_MS - 59_999), Decision::Refresh);
        assert_eq!(c.decision(T0 + 3 * HOUR_MS), Decision::Refresh);
    }

    #[test]
    fn three_second_token_is_refreshed_300_ms_early() {
        let c = credential(T0, Some(3), Some(T0), T0, None);
        assert_eq!(c.decision(T0 + 2_600), Decision::Use);
        assert_eq!(c.decision(T0 + 2_701), Decision::Refresh);
    }

    #[test]
    fn skew_from_the_date_header_moves_the_decision_to_server_time() {
        // The local clock is 5 minutes behind the server.
        let skew = 5 * 60_000;
        let local = T0 - skew;
        let c = credential(T0, Some(3600), Some(T0), local, None);
        assert_eq!(c.clock_offset_ms, skew);
        // 58 minutes later by the local clock is 58 minutes later at the server too: the
        // decision does not depend on the skew.
        assert_eq!(c.decision(local + 58 * 60_000), Decision::Use);
        assert_eq!(c.decision(local + 59 * 60_000 + 1), Decision::Refresh);
        // Trusting the local clock instead would have kept the token 5 minutes past expiry.
        let naive = credential(T0, Some(3600), None, local, None);
        assert_eq!(naive.clock_offset_ms, 0);
        assert_eq!(naive.decision(local + 62 * 60_000), Decision::Use);
    }

    #[test]
    fn an_absurd_issued_at_from_the_server_cannot_overflow_the_decision() {
        // Without a Date header `issued_at` is taken as sent; an expiry near i64::MIN minus
        // the current time overflowed (a panic in debug builds, a wrapped "use it" in release).
        let c = credential(i64::MIN, Some(3600), None, T0, None);
        assert_eq!(c.remaining_ms(T0), Some(i64::MIN));
        assert!(c.is_expired(T0));
        assert_eq!(c.decision(T0), Decision::Refresh);
    }

    #[test]
    fn date_header_alone_is_read_at_its_latest_instant() {
        // A replayed response: issued_at is 10 s older than the Date header, so only Date
        // says what time it is at the server.
        let date = T0 + 10_000;
        let c = credential(T0, Some(60), Some(date), date, None);
        assert_eq!(c.clock_offset_ms, 999);
        assert_eq!(c.expires_at_ms, Some(T0 + 60_000));
        // Issued 10 s before it reached us: 50 s left, margin 6 s.
        assert_eq!(c.decision(date + 43_000), Decision::Use);
        assert_eq!(c.decision(date + 44_100), Decision::Refresh);
    }

    #[test]
    fn without_expires_in_or_session_timeout_refresh_is_only_reactive() {
        let c = credential(T0, None, Some(T0), T0, None);
        assert_eq!(c.expires_at_ms, None);
        assert_eq!(c.decision(T0 + 365 * 24 * HOUR_MS), Decision::Use);
        assert!(!c.is_expired(T0 + 365 * 24 * HOUR_MS));
    }

    #[test]
    fn without_expires_in_a_session_timeout_gives_the_expiry() {
        let c = credential(T0, None, Some(T0), T0, Some(Duration::from_secs(2 * 3600)));
        assert_eq!(c.expires_at_ms, Some(T0 + 2 * HOUR_MS));
        assert_eq!(c.decision(T0 + HOUR_MS), Decision::Use);
        assert_eq!(c.decision(T0 + 2 * HOUR_MS - 30_000), Decision::Refresh);
        // expires_in wins over the configured timeout.
        let c = credential(T0, Some(60), Some(T0), T0, Some(Duration::from_secs(7200)));
        assert_eq!(c.expires_at_ms, Some(T0 + 60_000));
    }

    #[test]
    fn a_dead_marker_means_no_call_to_the_server() {
        let mut c = credential(T0, Some(7200), Some(T0), T0, None);
        c.dead = Some(ReauthReason::UserInactive);
        assert_eq!(c.decision(T0), Decision::Dead(ReauthReason::UserInactive));
    }

    #[test]
    fn an_old_in_flight_marker_turns_invalid_grant_into_lost_rotation() {
        let token = RefreshToken::new("rt");
        let marker = InFlight::new(&token, T0);
        assert!(marker.is_for(&token));
        assert!(!marker.is_for(&RefreshToken::new("other")));
        assert_eq!(
            rejected_reason(Some(&marker), T0 + 61_000, "expired access/refresh token"),
            ReauthReason::LostRotation
        );
        // Younger than any retry window: the server's own reason stands.
        assert_eq!(
            rejected_reason(Some(&marker), T0 + 5_000, "expired access/refresh token"),
            ReauthReason::RefreshTokenRejected {
                description: "expired access/refresh token".into()
            }
        );
        assert!(matches!(
            rejected_reason(None, T0 + 600_000, "x"),
            ReauthReason::RefreshTokenRejected { .. }
        ));
    }

    #[test]
    fn a_marker_counts_only_for_the_refresh_token_it_names() {
        let mut c = credential(T0, Some(7200), Some(T0), T0, None);
        c.in_flight = Some(InFlight::new(&RefreshToken::new("older"), T0));
        assert!(c.pending_refresh().is_none());
        c.in_flight = Some(InFlight::new(&RefreshToken::new("rt"), T0));
        assert!(c.pending_refresh().is_some());
    }

    #[test]
    fn a_refresh_without_a_new_refresh_token_keeps_the_old_one() {
        let c = credential(T0, Some(60), Some(T0), T0, None);
        let mut r = response(T0 + 60_000, Some(60));
        r.refresh_token = None;
        r.access_token = AccessToken::new("00D!next");
        let next = c.refreshed(&r, None, T0 + 60_000, None);
        assert_eq!(next.refresh_token, Some(RefreshToken::new("rt")));
        assert_eq!(next.access_token, AccessToken::new("00D!next"));
        assert_eq!(next.clock_offset_ms, c.clock_offset_ms);
        assert!(next.in_flight.is_none() && next.dead.is_none());
    }

    #[test]
    fn a_refresh_keeps_the_username() {
        let mut c = credential(T0, Some(60), Some(T0), T0, None);
        c.username = Some("ada@example.com".into());
        let next = c.refreshed(&response(T0 + 60_000, Some(60)), None, T0 + 60_000, None);
        assert_eq!(next.username.as_deref(), Some("ada@example.com"));
    }

    #[test]
    fn a_credential_stored_before_usernames_were_kept_still_reads() {
        let c = credential(T0, Some(60), Some(T0), T0, None);
        let mut stored = serde_json::to_value(&c).unwrap();
        stored.as_object_mut().unwrap().remove("username").unwrap();
        let read: Credential = serde_json::from_value(stored).unwrap();
        assert_eq!(read.username, None);
        assert_eq!(read.access_token, c.access_token);
    }

    #[test]
    fn a_credential_stored_before_id_tokens_were_kept_still_reads() {
        let c = credential(T0, Some(60), Some(T0), T0, None);
        let mut stored = serde_json::to_value(&c).unwrap();
        let fields = stored.as_object_mut().unwrap();
        fields.remove("id_token").unwrap();
        fields.remove("id_token_claims").unwrap();
        fields["endpoints"]
            .as_object_mut()
            .unwrap()
            .remove("jwks_uri")
            .unwrap();
        let read: Credential = serde_json::from_value(stored).unwrap();
        assert_eq!((read.id_token, read.id_token_claims), (None, None));
        // Its issuer's keys are looked for where Salesforce (and Tessera) publish them.
        assert_eq!(read.endpoints.jwks_uri, None);
        assert_eq!(read.endpoints.jwks(), "https://example.test/id/keys");
    }

    #[test]
    fn a_refresh_keeps_the_verified_id_token_until_the_manager_replaces_it() {
        let mut c = credential(T0, Some(60), Some(T0), T0, None);
        c.id_token = Some(IdToken::new("login.id.token"));
        let mut r = response(T0 + 60_000, Some(60));
        r.id_token = Some(IdToken::new("unverified.refresh.token"));
        let next = c.refreshed(&r, None, T0 + 60_000, None);
        assert_eq!(next.id_token, Some(IdToken::new("login.id.token")));
        // A code exchange's credential carries the token received, to be verified at login.
        let fresh = credential(T0, Some(60), Some(T0), T0, None);
        assert_eq!(fresh.id_token, None);
        let exchanged = Credential::from_token_response(
            Endpoints::salesforce("https://example.test"),
            "client".into(),
            None,
            &r,
            None,
            T0,
            None,
        );
        assert_eq!(
            exchanged.id_token,
            Some(IdToken::new("unverified.refresh.token"))
        );
        assert_eq!(exchanged.id_token_claims, None);
    }

    #[test]
    fn a_refresh_keeps_the_dpop_key_and_takes_the_new_token_type() {
        let mut c = credential(T0, Some(60), Some(T0), T0, None);
        let key = DpopKey::generate().unwrap();
        c.dpop_key = Some(key.clone());
        let mut r = response(T0 + 60_000, Some(60));
        r.token_type = TokenType::DPoP;
        let next = c.refreshed(&r, None, T0 + 60_000, None);
        assert_eq!(next.dpop_key, Some(key));
        assert!(next.dpop_bound);
    }

    #[test]
    fn a_bound_credential_without_its_key_is_dead() {
        let mut c = credential(T0, Some(7200), Some(T0), T0, None);
        c.dpop_bound = true;
        assert_eq!(c.decision(T0), Decision::Dead(ReauthReason::DpopKeyLost));
        c.dpop_key = Some(DpopKey::generate().unwrap());
        assert_eq!(c.decision(T0), Decision::Use);
    }

    #[test]
    fn a_credential_stored_before_dpop_still_reads_unbound() {
        let c = credential(T0, Some(60), Some(T0), T0, None);
        let mut stored = serde_json::to_value(&c).unwrap();
        let fields = stored.as_object_mut().unwrap();
        fields.remove("dpop_key").unwrap();
        fields.remove("dpop_bound").unwrap();
        let read: Credential = serde_json::from_value(stored).unwrap();
        assert_eq!((&read.dpop_key, read.dpop_bound), (&None, false));
        assert_eq!(read.decision(T0), Decision::Use);
    }
}
