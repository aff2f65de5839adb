//! The browser side of the authorization endpoint: validating the request, logging in with a
//! password (throttled, and with a cap on concurrent Argon2 checks), the signed session that
//! remembers it, the CSRF token of our forms, consent, and the redirect back to the client.

use std::sync::Arc;

use tessera_proto::{
    AuthorizationCode, CsrfCookie, CsrfToken, ExposeSecret, OAuthError, Params, Password, Scope,
    SessionCookie,
};

use crate::authority::{
    Authentication, Authority, NewGrant, Source, CODE_TTL_SECS, TOKEN_BYTES,
    UNAVAILABLE_RETRY_AFTER_SECS,
};
use crate::flows::authorize::{
    check_client_and_redirect, check_request, AuthorizationRequest, AuthorizePageError,
    AuthorizeRedirectError, ResponseKind,
};
use crate::identity::password::DUMMY_PHC;
use crate::model::{AuthCode, EventKind, User};
use crate::store::StoreError;
use crate::time::Timestamp;
use crate::tokens::hash::secret_hash;
use crate::tokens::ids::random_token;

/// How long a login lasts in the browser.
pub const SESSION_TTL_SECS: u64 = 2 * 3600;
/// Longest `client_id` worth a lookup.
const MAX_CLIENT_ID_LEN: usize = 255;

/// Why a login did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginError {
    /// Wrong password, unknown username: the same answer for both.
    InvalidCredentials,
    /// The right password of a disabled user.
    Disabled,
    /// Too many failures: refused before the password was checked.
    Throttled { retry_after_secs: u64 },
    /// Every password check slot stayed busy for the configured wait: 503.
    Busy { retry_after_secs: u64 },
    /// The store failed: 503.
    Unavailable,
}

impl From<StoreError> for LoginError {
    fn from(error: StoreError) -> Self {
        crate::authority::log_store_failure(&error);
        Self::Unavailable
    }
}

/// Why an authorization request cannot go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    /// Shown on a page of ours: the client or the redirect URI cannot be trusted. When it is
    /// the redirect URI, the one the request asked for comes along (as decoded from the
    /// request), since it is what the client's developer has to compare with the registration.
    Page {
        error: AuthorizePageError,
        refused_redirect_uri: Option<String>,
    },
    /// Sent back to the client's redirect URI (this `Location`).
    Redirect(String),
    /// The store failed: 503.
    Unavailable,
}

impl From<StoreError> for AuthorizeError {
    fn from(error: StoreError) -> Self {
        crate::authority::log_store_failure(&error);
        Self::Unavailable
    }
}

/// Where the browser goes after login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// To the consent page.
    Consent,
    /// Back to the client, to this `Location` (the scope was approved before).
    Redirect(String),
}

/// The CSRF pair for a form: the token the form must echo (a MAC of the browser's CSRF
/// cookie) and, when the browser has no such cookie yet, the value to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Csrf {
    pub token: CsrfToken,
    pub new_cookie: Option<CsrfCookie>,
}

/// A cookie value long enough to be ours.
const CSRF_COOKIE_MIN_LEN: usize = 32;
/// The server key's purpose for end-user session cookies.
const SESSION_PURPOSE: &str = "session";
/// The server key's purpose for the CSRF tokens of session-less forms (over the CSRF cookie).
const CSRF_PURPOSE: &str = "csrf";
/// The server key's purpose for the CSRF tokens of a session's forms (over the session id).
const SESSION_CSRF_PURPOSE: &str = "session_csrf";
/// Random bytes of a session id: enough that no two sessions share one.
const SESSION_ID_BYTES: usize = 16;

/// A browser session that verified: its user, read from the store for this request (active,
/// and at the epoch the session was made in), when the user logged in, and the session's random
/// id, which the CSRF tokens of its forms are bound to.
#[derive(Clone)]
pub struct BrowserSession {
    pub user: User,
    /// When the user logged in (typed the password) for this session: the `auth_time` of the
    /// ID tokens of the grants it approves.
    pub authenticated_at: Timestamp,
    id: String,
}

impl std::fmt::Debug for BrowserSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserSession")
            .field("user", &self.user)
            .field("authenticated_at", &self.authenticated_at)
            .finish_non_exhaustive()
    }
}

/// What a verified session cookie says.
struct SessionClaims {
    user_id: String,
    epoch: i64,
    id: String,
    expires: Timestamp,
}

impl Authority {
    /// Validates an authorization request (its query string or form body, as sent).
    pub async fn authorization_request(
        &self,
        raw: &str,
    ) -> Result<AuthorizationRequest, AuthorizeError> {
        let params = Params::parse(raw).map_err(|_| AuthorizeError::Page {
            error: AuthorizePageError::MalformedRequest,
            refused_redirect_uri: None,
        })?;
        let client = match params.get("client_id") {
            Some(id) if id.len() <= MAX_CLIENT_ID_LEN && !params.is_repeated("client_id") => {
                self.store().client_by_id(id).await?
            }
            _ => None,
        };
        let (client, redirect_uri) =
            check_client_and_redirect(&params, client).map_err(|error| AuthorizeError::Page {
                error,
                refused_redirect_uri: params
                    .get("redirect_uri")
                    .filter(|_| error.is_about_the_redirect_uri())
                    .map(str::to_owned),
            })?;
        check_request(&params, client, redirect_uri).map_err(|(target, error)| {
            AuthorizeError::Redirect(target.error_location(&self.config().issuer, &error))
        })
    }

    /// Checks a username and password for the login form. Over a failure budget the attempt is
    /// refused before the password is checked; Argon2 runs off the async runtime, at most
    /// `max_concurrent_password_checks` at once, and against a dummy hash when the user does
    /// not exist so that timing does not tell which usernames exist.
    pub async fn login(
        &self,
        username: &str,
        password: Password,
        client_id: &str,
        source: &Source,
    ) -> Result<User, LoginError> {
        let attempt = match self
            .throttle()
            .login_attempt(username, source.address, self.now())
        {
            Ok(attempt) => attempt,
            Err((throttled, first)) => {
                if first {
                    self.record_throttled(
                        throttled,
                        Some(client_id),
                        Some(&shortened(username)),
                        source,
                    );
                }
                tracing::debug!(reason = throttled.reason.name(), "login throttled");
                return Err(LoginError::Throttled {
                    retry_after_secs: throttled.retry_after_secs,
                });
            }
        };
        let checked = async {
            let user = self.user_named(username).await?;
            let phc = user
                .as_ref()
                .map_or_else(|| DUMMY_PHC.to_owned(), |u| u.password_hash.clone());
            let verified = self.verify_password(password, phc).await?;
            Ok::<_, LoginError>((user, verified))
        };
        let (user, verified) = match checked.await {
            Ok(checked) => checked,
            Err(error) => {
                self.throttle().login_abandoned(attempt);
                return Err(error);
            }
        };
        match user {
            Some(user) if verified && !user.disabled => {
                self.throttle().login_succeeded(attempt);
                tracing::info!(user_id = %user.id, client_id, "user logged in");
                Ok(user)
            }
            user => {
                // The attempt stays counted: it failed.
                let disabled = user.is_some() && verified;
                tracing::warn!(client_id, address = ?source.address, "failed login");
                self.record_failure(
                    EventKind::LoginFailed,
                    Some(client_id),
                    format!("username {}", shortened(username)),
                    source,
                );
                Err(if disabled {
                    LoginError::Disabled
                } else {
                    LoginError::InvalidCredentials
                })
            }
        }
    }

    /// One Argon2id verification, holding a slot of the password-check semaphore for as long
    /// as it runs (the permit moves into the blocking task, so an abandoned request cannot free
    /// its slot early).
    async fn verify_password(&self, password: Password, phc: String) -> Result<bool, LoginError> {
        let slots = Arc::clone(self.password_checks());
        let wait = self.config().password_check_wait;
        let Ok(Ok(permit)) = tokio::time::timeout(wait, slots.acquire_owned()).await else {
            tracing::warn!("every password check slot stayed busy; answering 503");
            return Err(LoginError::Busy {
                retry_after_secs: UNAVAILABLE_RETRY_AFTER_SECS,
            });
        };
        let verifier = Arc::clone(self.password_verifier());
        let verified = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            verifier.verify(&password, &phc)
        })
        .await
        .unwrap_or(false);
        Ok(verified)
    }

    /// A signed session cookie value for a user who just logged in (see [`Self::signed_session`]),
    /// and the session it stands for.
    pub fn new_session(&self, user: &User) -> (SessionCookie, BrowserSession) {
        let (cookie, id) = self.signed_session_with_id(SESSION_PURPOSE, user, SESSION_TTL_SECS);
        let session = BrowserSession {
            user: user.clone(),
            authenticated_at: self.now(),
            id,
        };
        (cookie, session)
    }

    /// `user.epoch.id.expiry.mac`: the user, the user's session epoch now, a random session id
    /// (what the CSRF tokens of the session's forms are bound to), the expiry, and a MAC of all
    /// of it under the server key for `purpose` (the end user's session and the admin console's
    /// are not interchangeable).
    pub(crate) fn signed_session(
        &self,
        purpose: &str,
        user: &User,
        ttl_secs: u64,
    ) -> SessionCookie {
        self.signed_session_with_id(purpose, user, ttl_secs).0
    }

    /// A signed session cookie, and the session's random id.
    fn signed_session_with_id(
        &self,
        purpose: &str,
        user: &User,
        ttl_secs: u64,
    ) -> (SessionCookie, String) {
        let expires = self.now().plus_secs(ttl_secs).millis();
        let mut id = [0u8; SESSION_ID_BYTES];
        self.rng().fill(&mut id);
        let id = hex::encode(id);
        let message = format!("{}.{}.{id}.{expires}", user.id, user.session_epoch);
        let tag = hex::encode(self.config().server_key.mac(purpose, message.as_bytes()));
        (SessionCookie::new(format!("{message}.{tag}")), id)
    }

    /// The end user's session of a cookie: it verifies, has not expired, and its user is active
    /// and still at the epoch the cookie was made in (a password change, a disable, a role
    /// change or a logout raised it since: the session is over).
    pub async fn session(
        &self,
        cookie: Option<&SessionCookie>,
    ) -> Result<Option<BrowserSession>, StoreError> {
        self.verified_session(SESSION_PURPOSE, SESSION_TTL_SECS, cookie)
            .await
    }

    /// The session of a cookie signed for `purpose` with a lifetime of `ttl_secs`, its user
    /// read from the store now. The login time is the cookie's expiry less its lifetime (a
    /// session is never extended, so the cookie of a login always says when it was made).
    pub(crate) async fn verified_session(
        &self,
        purpose: &str,
        ttl_secs: u64,
        cookie: Option<&SessionCookie>,
    ) -> Result<Option<BrowserSession>, StoreError> {
        let Some(claims) = cookie.and_then(|value| self.session_claims(purpose, value)) else {
            return Ok(None);
        };
        let user = self.store().user_by_id(&claims.user_id).await?;
        Ok(user
            .filter(|u| !u.disabled && u.session_epoch == claims.epoch)
            .map(|user| BrowserSession {
                user,
                authenticated_at: Timestamp(
                    claims
                        .expires
                        .millis()
                        .saturating_sub((ttl_secs as i64).saturating_mul(1000)),
                ),
                id: claims.id,
            }))
    }

    /// What a session cookie signed for `purpose` says, if it verifies and has not expired.
    fn session_claims(&self, purpose: &str, cookie: &SessionCookie) -> Option<SessionClaims> {
        let (message, tag) = cookie.expose_secret().rsplit_once('.')?;
        let tag = hex::decode(tag).ok()?;
        if !self
            .config()
            .server_key
            .verify_mac(purpose, message.as_bytes(), &tag)
        {
            return None;
        }
        let mut parts = message.split('.');
        let (user_id, epoch, id, expires) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let expires = Timestamp(expires.parse::<i64>().ok()?);
        if parts.next().is_some() || self.now() >= expires {
            return None;
        }
        Some(SessionClaims {
            user_id: user_id.to_owned(),
            epoch: epoch.parse().ok()?,
            id: id.to_owned(),
            expires,
        })
    }

    /// Ends every browser session of the session's user (the end-user logout): the session
    /// epoch goes up, so this cookie and every other one of the user's, on any device, stop
    /// working. Grants and their tokens are not touched.
    pub async fn end_sessions(&self, session: &BrowserSession) -> Result<(), StoreError> {
        self.store().end_sessions(&session.user.id).await?;
        tracing::info!(user_id = %session.user.id, "browser sessions ended");
        Ok(())
    }

    /// The CSRF token for a form of a page without a session (the login forms; RFC 6749
    /// §10.12, signed double submit): a MAC of the browser's CSRF cookie, minting the cookie
    /// when there is none.
    pub fn csrf(&self, cookie: Option<&CsrfCookie>) -> Csrf {
        let (value, new_cookie) =
            match cookie.filter(|v| v.expose_secret().len() >= CSRF_COOKIE_MIN_LEN) {
                Some(v) => (v.clone(), None),
                None => {
                    let v = CsrfCookie::new(random_token(self.rng(), TOKEN_BYTES));
                    (v.clone(), Some(v))
                }
            };
        let tag = self
            .config()
            .server_key
            .mac(CSRF_PURPOSE, value.expose_secret().as_bytes());
        Csrf {
            token: CsrfToken::new(hex::encode(tag)),
            new_cookie,
        }
    }

    /// Whether a session-less form's CSRF token matches the browser's CSRF cookie.
    /// The MAC check is constant-time.
    pub fn csrf_valid(&self, cookie: Option<&CsrfCookie>, token: Option<&CsrfToken>) -> bool {
        let (Some(value), Some(token)) = (cookie, token) else {
            return false;
        };
        self.token_is_mac_of(CSRF_PURPOSE, value.expose_secret(), token)
    }

    /// The CSRF token for the forms of a session's pages: a MAC of the session's id, so that
    /// only a form served to this session is accepted with it (a token minted for another
    /// browser, or planted with a CSRF cookie, is not).
    pub fn session_csrf(&self, session: &BrowserSession) -> CsrfToken {
        let tag = self
            .config()
            .server_key
            .mac(SESSION_CSRF_PURPOSE, session.id.as_bytes());
        CsrfToken::new(hex::encode(tag))
    }

    /// Whether a form's CSRF token was made for `session`. The MAC check is constant-time.
    pub fn session_csrf_valid(&self, session: &BrowserSession, token: Option<&CsrfToken>) -> bool {
        token.is_some_and(|token| self.token_is_mac_of(SESSION_CSRF_PURPOSE, &session.id, token))
    }

    fn token_is_mac_of(&self, purpose: &str, value: &str, token: &CsrfToken) -> bool {
        hex::decode(token.expose_secret()).is_ok_and(|tag| {
            self.config()
                .server_key
                .verify_mac(purpose, value.as_bytes(), &tag)
        })
    }

    /// After login: the consent page, or straight back to the client when this scope was
    /// approved before (and the request does not ask to see consent again).
    pub async fn after_login(
        &self,
        request: &AuthorizationRequest,
        session: &BrowserSession,
        source: &Source,
    ) -> Result<Next, OAuthError> {
        let user = &session.user;
        if !request.prompt_consent {
            let approved = self
                .store()
                .approved_scope(&user.id, &request.client.client_id)
                .await?
                .and_then(|text| Scope::parse(&text));
            if approved.is_some_and(|approved| request.scope.is_subset(&approved)) {
                return Ok(Next::Redirect(
                    self.approve(request, session, source).await?,
                ));
            }
        }
        Ok(Next::Consent)
    }

    /// The user of `session` allowed the request: a code for the Web Server flow, tokens (and
    /// an ID token, for `token id_token`) in the fragment for the User-Agent flow. The code, or
    /// the grant, keeps the request's `nonce` and when the session's user logged in, for the
    /// ID tokens. Returns the `Location` back to the client.
    pub async fn approve(
        &self,
        request: &AuthorizationRequest,
        session: &BrowserSession,
        source: &Source,
    ) -> Result<String, OAuthError> {
        let user = &session.user;
        let authentication = Authentication {
            auth_time: Some(session.authenticated_at),
            nonce: request.nonce.clone(),
            // The user-agent flow's token comes in a fragment: no request proves a key.
            dpop_jkt: None,
        };
        let now = self.now();
        self.store()
            .record_approval(
                &user.id,
                &request.client.client_id,
                &request.scope.to_string(),
                now,
            )
            .await?;
        let target = request.target();
        match request.kind {
            ResponseKind::Code => {
                let code = AuthorizationCode::new(random_token(self.rng(), TOKEN_BYTES));
                let record = AuthCode {
                    code_hash: secret_hash(code.expose_secret()),
                    client_id: request.client.client_id.clone(),
                    user_id: user.id.clone(),
                    redirect_uri: request.redirect_uri.clone(),
                    scope: request.scope.clone(),
                    code_challenge: request.code_challenge.clone(),
                    created_at: now,
                    expires_at: now.plus_secs(CODE_TTL_SECS),
                    nonce: authentication.nonce,
                    auth_time: authentication.auth_time,
                    dpop_jkt: request.dpop_jkt.clone(),
                };
                self.store().insert_code(&record).await?;
                Ok(target.location(&self.config().issuer, &[("code", code.expose_secret())]))
            }
            ResponseKind::Token | ResponseKind::TokenAndIdToken => {
                // A refresh token in a URL fragment only for redirects that no other page can
                // read: custom schemes or our own success page
                // (docs/salesforce-compatibility.md, "User-Agent flow").
                let fragment_may_carry_refresh = !request.redirect_uri.starts_with("http://")
                    && !request.redirect_uri.starts_with("https://")
                    || request.redirect_uri
                        == format!("{}/services/oauth2/success", self.config().issuer);
                let response = self
                    .issue_new_grant(
                        NewGrant {
                            client: &request.client,
                            user,
                            scope: &request.scope,
                            code_hash: None,
                            may_issue_refresh: fragment_may_carry_refresh,
                            presented_secret: None,
                            authentication,
                            answers_id_token: request.kind == ResponseKind::TokenAndIdToken,
                        },
                        Some(source),
                    )
                    .await?;
                let mut pairs: Vec<(&str, &str)> =
                    vec![("access_token", response.access_token.expose_secret())];
                if let Some(rt) = &response.refresh_token {
                    pairs.push(("refresh_token", rt.expose_secret()));
                }
                pairs.extend([
                    ("instance_url", response.instance_url.as_str()),
                    ("id", response.id.as_str()),
                    ("issued_at", response.issued_at.as_str()),
                    ("signature", response.signature.as_str()),
                    ("scope", response.scope.as_str()),
                    ("token_type", "Bearer"),
                ]);
                // Only for `token id_token` (OpenID Connect Core §3.2.2.5): `token` alone
                // answers what an OAuth client expects, though the grant has `openid`.
                if let Some(id_token) = &response.id_token {
                    pairs.push(("id_token", id_token.expose_secret()));
                }
                Ok(target.location(&self.config().issuer, &pairs))
            }
        }
    }

    /// The user denied the request: `access_denied` back to the client.
    pub fn deny(&self, request: &AuthorizationRequest) -> String {
        request.target().error_location(
            &self.config().issuer,
            &AuthorizeRedirectError {
                code: "access_denied",
                description: "end-user denied authorization",
            },
        )
    }
}

/// A username as the audit trail shows it: what was typed, at most 100 characters.
fn shortened(username: &str) -> String {
    username
        .chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect()
}
