//! The token manager against ID tokens as a real Tessera issues them (not the test issuer of
//! `id_token.rs`): a grant minted with `openid` verifies against the server's JWKS and names its
//! user; a refresh brings a new ID token that names the same login (OpenID Connect Core §12.2);
//! a key the server starts signing with after the client cached its JWKS costs one refetch; an
//! ES256 client's tokens verify against the published EC key; and a grant without `openid`
//! has no ID token.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::routing::get;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use tessera_client::{
    AccessToken, Clock, Credential, IdToken, IdTokenClaims, ManualClock, TokenManager, TokenStore,
};
use tessera_core::model::SigningAlg;
use tessera_core::operations::admin::ClientSettings;
use tessera_core::time::Timestamp;

use crate::support::*;

/// What the grants of these tests are for: `openid` and the rest of a `tessera login`'s.
const OPENID_SCOPE: &str = "openid api id refresh_token";

/// The server's own clock, moved by the test.
fn server_clock() -> Arc<tessera_core::time::ManualClock> {
    Arc::new(tessera_core::time::ManualClock::new(Timestamp(now_ms())))
}

/// A client allowed `openid`, whose ID tokens carry the user's standard claims, with
/// `settings`; the signing keys are made first, as a running server's housekeeping makes them.
async fn openid_client(server: &Server, settings: ClientSettings) -> TestClient {
    server
        .authority
        .rotate_signing_keys_when_due()
        .await
        .unwrap();
    server
        .client(ClientSettings {
            scopes: Some(OPENID_SCOPE.into()),
            id_token_standard_claims: Some(true),
            ..settings
        })
        .await
}

/// A server on a clock of its own, an `openid` client of `settings`, and a manager on the wall
/// clock logged in with a new grant of `scope`.
struct OpenIdLogin {
    /// The server's.
    clock: Arc<tessera_core::time::ManualClock>,
    /// Serving until dropped: a test that destructures this binds it.
    server: Server,
    client: TestClient,
    manager: Arc<TokenManager>,
    dirs: Dirs,
    /// As stored at login.
    credential: Credential,
}

impl OpenIdLogin {
    /// `secs` later at the server, a refresh after the server refused `rejected`; the new
    /// access token (which opens the API) and the new ID token, checked to name the same login
    /// as `before` (OpenID Connect Core §12.2), to be issued `secs` later, and to be what the
    /// manager now exposes.
    async fn refresh_later(
        &self,
        secs: u64,
        rejected: &AccessToken,
        before: &IdTokenClaims,
    ) -> (AccessToken, IdToken, IdTokenClaims) {
        self.clock.advance_secs(secs);
        let at = self
            .manager
            .refresh_after_rejection(rejected)
            .await
            .unwrap();
        assert_ne!(&at, rejected);
        assert!(self.server.api_works(&clear(&at)).await);
        let (token, claims) = stored_id_token(&self.dirs);
        assert_eq!(claims.iat, before.iat + secs as i64);
        assert_same_login(&claims, before);
        let exposed = self.manager.identity().await.unwrap();
        assert_eq!(exposed.as_ref(), Some(&claims));
        (at, token, claims)
    }
}

async fn openid_login(settings: ClientSettings, scope: &str) -> OpenIdLogin {
    let clock = server_clock();
    let server = Server::start_with_clock(clock.clone()).await;
    let client = openid_client(&server, settings).await;
    let dirs = Dirs::new();
    let (manager, _) = open_manager(&server, dirs.store());
    let credential = server.credential_scoped(&client, scope, now_ms()).await;
    manager.login_with(credential.clone()).await.unwrap();
    OpenIdLogin {
        clock,
        server,
        client,
        manager,
        dirs,
        credential,
    }
}

/// The JOSE header of a compact JWS.
fn header(token: &IdToken) -> serde_json::Value {
    let compact = clear(token);
    let encoded = compact.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(encoded).unwrap()).unwrap()
}

/// The ID token stored now, and its verified claims.
fn stored_id_token(dirs: &Dirs) -> (IdToken, IdTokenClaims) {
    let stored = dirs.store().load().unwrap().unwrap();
    (stored.id_token.unwrap(), stored.id_token_claims.unwrap())
}

/// Asserts what OpenID Connect Core §12.2 keeps from the login's ID token to a refresh's.
fn assert_same_login(refreshed: &IdTokenClaims, login: &IdTokenClaims) {
    assert_eq!(refreshed.iss, login.iss);
    assert_eq!(refreshed.sub, login.sub);
    assert_eq!(refreshed.aud, login.aud);
    assert_eq!(refreshed.azp, login.azp);
    assert_eq!(refreshed.auth_time, login.auth_time);
    assert_eq!(
        refreshed.nonce, None,
        "a refresh echoes no nonce by default"
    );
}

/// The server's `/id/keys` behind a forwarder that counts the requests: the server itself
/// keeps no count of them.
struct CountedJwks {
    uri: String,
    requests: Arc<AtomicUsize>,
}

impl CountedJwks {
    async fn in_front_of(server: &Server) -> Self {
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let upstream = format!("{}/id/keys", server.base);
        let http = server.http.clone();
        let forward = move || {
            let (counter, upstream, http) = (counter.clone(), upstream.clone(), http.clone());
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                let answer = http.get(&upstream).send().await.unwrap();
                assert!(answer.status().is_success(), "{}", answer.status());
                let cache_control = answer
                    .headers()
                    .get(reqwest::header::CACHE_CONTROL)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                (
                    [
                        (axum::http::header::CACHE_CONTROL, cache_control),
                        (
                            axum::http::header::CONTENT_TYPE,
                            "application/json".to_owned(),
                        ),
                    ],
                    answer.text().await.unwrap(),
                )
            }
        };
        let base = serve(axum::Router::new().route("/keys", get(forward))).await;
        Self {
            uri: format!("{base}/keys"),
            requests,
        }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn an_id_token_from_a_real_login_verifies_and_names_the_user() {
    let OpenIdLogin {
        server,
        client,
        manager,
        dirs,
        credential,
        ..
    } = openid_login(ClientSettings::default(), OPENID_SCOPE).await;
    assert_eq!(
        header(credential.id_token.as_ref().unwrap())["alg"],
        "RS256"
    );

    let identity = manager.identity().await.unwrap().expect("verified claims");
    assert_eq!(identity.iss, server.base);
    // The identity URL, as in the token response's `id` and userinfo's `sub`.
    assert_eq!(Some(&identity.sub), credential.identity_url.as_ref());
    assert_eq!(identity.aud, std::slice::from_ref(&client.id));
    assert_eq!(identity.azp.as_deref(), Some(client.id.as_str()));
    assert_eq!(identity.preferred_username.as_deref(), Some(USERNAME));
    assert!(identity.name.is_some());
    assert_eq!(identity.nonce, None, "a minted grant had no authorization");
    assert!(identity.auth_time.is_some_and(|t| t <= identity.iat));
    assert!(identity.exp > identity.iat);
    let user_id = identity.sub.rsplit('/').next().unwrap();
    assert_eq!(identity.user_id(), user_id);

    // Another process reads the same identity from the file, and status names the user.
    let (other, _) = open_manager(&server, dirs.store());
    let status = other.status().await.unwrap();
    assert_eq!(status.identity.as_ref(), Some(&identity));
    let text = status.to_string();
    // The user has no email: the username names them (`name` is its local part).
    assert!(
        text.starts_with(&format!("user      {USERNAME} ({user_id})\n")),
        "{text}"
    );
    assert!(text.contains("\nid token  verified, issued "), "{text}");

    // The access token of the same response opens the API.
    assert!(server.api_works(&clear(&credential.access_token)).await);
}

#[tokio::test]
async fn a_grant_without_openid_has_no_id_token_and_no_identity() {
    let session = openid_login(ClientSettings::default(), "api id refresh_token").await;
    let manager = &session.manager;
    assert!(session.credential.id_token.is_none());
    assert_eq!(manager.identity().await.unwrap(), None);

    // Nor does its refresh bring one.
    let at = manager.access_token().await.unwrap();
    manager.refresh_after_rejection(&at).await.unwrap();
    assert_eq!(manager.identity().await.unwrap(), None);
    let stored = session.dirs.store().load().unwrap().unwrap();
    assert_eq!((stored.id_token, stored.id_token_claims), (None, None));
    let text = manager.status().await.unwrap().to_string();
    assert!(!text.contains("id token"), "{text}");
}

#[tokio::test]
async fn a_rotating_refresh_brings_a_new_id_token_that_names_the_same_login() {
    let settings = ClientSettings {
        rotate_refresh_tokens: Some(true),
        refresh_retry_window_secs: Some(0),
        ..Default::default()
    };
    let session = openid_login(settings, OPENID_SCOPE).await;
    let (login_token, login) = stored_id_token(&session.dirs);

    // Two seconds later at the server: the refreshed token's `iat` is greater.
    let rejected = &session.credential.access_token;
    let (at, refreshed_token, refreshed) = session.refresh_later(2, rejected, &login).await;
    assert_ne!(
        refreshed_token, login_token,
        "the refresh's ID token is kept"
    );
    let stored = session.dirs.store().load().unwrap().unwrap();
    assert_ne!(
        stored.refresh_token, session.credential.refresh_token,
        "rotated"
    );

    // And again, from the rotated refresh token: still the login's `sub`, `auth_time`, ….
    session.refresh_later(2, &at, &refreshed).await;
    assert_eq!(session.server.events("rotated").await, 2);
}

#[tokio::test]
async fn a_key_that_starts_signing_after_the_jwks_was_cached_costs_exactly_one_refetch() {
    // A new key signs ten seconds after it is published: within the minute the client allows
    // between the issuer's clock and its estimate of it (the `Date` header, wall time here).
    let clock = server_clock();
    // A JWKS cache lifetime of 5 s: a new key signs 10 s after it is made (the lifetime, and a
    // node's copy of the keys, which lives no longer than it).
    let server = Server::start_with_key_schedule(clock.clone(), 5).await;
    let client = openid_client(&server, ClientSettings::default()).await;
    let jwks = CountedJwks::in_front_of(&server).await;
    // The clients' clock stands still: a cached JWKS never goes stale on its own, so a fetch
    // after a manager's first is for a key it does not have.
    let local = Arc::new(ManualClock::new(now_ms()));
    // A manager (one process) logged in with a new grant; its JWKS is fetched at login.
    let log_in = || async {
        let dirs = Dirs::new();
        let (manager, _) = manager_with(&server, dirs.store(), local.clone());
        let mut credential = server
            .credential_scoped(&client, OPENID_SCOPE, local.now_ms())
            .await;
        credential.endpoints.jwks_uri = Some(jwks.uri.clone());
        manager.login_with(credential.clone()).await.unwrap();
        (manager, dirs, credential.access_token)
    };
    let (manager, dirs, first_at) = log_in().await;
    assert_eq!(jwks.requests(), 1);
    let (login_token, login) = stored_id_token(&dirs);
    let first_kid = header(&login_token)["kid"].as_str().unwrap().to_owned();

    // A second later (keys made in one millisecond are ordered by their random kids), the
    // operator rotates; the new key is published now and signs once its time comes.
    clock.advance_secs(1);
    let rotated = server
        .authority
        .rotate_signing_key(SigningAlg::Rs256)
        .await
        .unwrap();
    assert_eq!(rotated.state.name(), "pending");
    assert_ne!(rotated.kid, first_kid);
    // Another process logs in meanwhile: the JWKS it caches lists the new key already.
    let (late_manager, late_dirs, late_at) = log_in().await;
    assert_eq!(jwks.requests(), 2);
    clock.advance_secs(10);

    let at = manager.refresh_after_rejection(&first_at).await.unwrap();
    let (refreshed_token, refreshed) = stored_id_token(&dirs);
    assert_ne!(
        refreshed_token, login_token,
        "the refresh's ID token is kept"
    );
    assert_eq!(header(&refreshed_token)["kid"], rotated.kid.as_str());
    assert_eq!(jwks.requests(), 3, "one refetch for the new kid");
    assert_eq!(refreshed.iat, login.iat + 11);
    assert_same_login(&refreshed, &login);

    // Published before it signed: the process that cached the JWKS after the rotation
    // verifies the new key's token without asking again.
    late_manager
        .refresh_after_rejection(&late_at)
        .await
        .unwrap();
    let (late_token, _) = stored_id_token(&late_dirs);
    assert_eq!(header(&late_token)["kid"], rotated.kid.as_str());
    assert_eq!(jwks.requests(), 3);

    // The refetched set is cached: the next token the new key signs costs nothing.
    clock.advance_secs(1);
    manager.refresh_after_rejection(&at).await.unwrap();
    let (again_token, again) = stored_id_token(&dirs);
    assert_eq!(header(&again_token)["kid"], rotated.kid.as_str());
    assert_eq!(again.iat, login.iat + 12);
    assert_eq!(jwks.requests(), 3);
}

#[tokio::test]
async fn an_es256_clients_id_tokens_verify_against_the_published_ec_key() {
    let settings = ClientSettings {
        id_token_alg: Some(SigningAlg::Es256),
        ..Default::default()
    };
    let session = openid_login(settings, OPENID_SCOPE).await;
    let (login_token, login) = stored_id_token(&session.dirs);
    assert_eq!(header(&login_token)["alg"], "ES256");

    let rejected = &session.credential.access_token;
    let (_, refreshed_token, _) = session.refresh_later(1, rejected, &login).await;
    assert_eq!(header(&refreshed_token)["alg"], "ES256");
}

#[tokio::test]
async fn an_id_token_with_an_extra_audience_verifies_since_azp_names_the_client() {
    let settings = ClientSettings {
        id_token_audiences: Some(vec!["https://api.example.test".into()]),
        ..Default::default()
    };
    let session = openid_login(settings, OPENID_SCOPE).await;
    let (_, login) = stored_id_token(&session.dirs);
    let client_id = &session.client.id;
    assert_eq!(login.aud.len(), 2, "{:?}", login.aud);
    assert!(login.aud.contains(client_id));
    assert_eq!(login.azp.as_ref(), Some(client_id));

    let rejected = &session.credential.access_token;
    session.refresh_later(1, rejected, &login).await;
}

#[tokio::test]
async fn a_client_with_jwt_access_tokens_keeps_its_id_token_too() {
    let settings = ClientSettings {
        jwt_access_tokens: Some(true),
        ..Default::default()
    };
    let session = openid_login(settings, OPENID_SCOPE).await;
    let rejected = &session.credential.access_token;
    // A JWT access token (three parts), beside the ID token.
    assert_eq!(clear(rejected).split('.').count(), 3);
    let (_, login) = stored_id_token(&session.dirs);
    session.refresh_later(1, rejected, &login).await;
}

#[tokio::test]
async fn a_client_clock_an_hour_off_the_issuers_still_verifies_its_id_tokens() {
    let server = Server::start().await;
    let client = openid_client(&server, ClientSettings::default()).await;
    for skew_ms in [-3_600_000, 3_600_000] {
        let local = Arc::new(ManualClock::new(now_ms() + skew_ms));
        let dirs = Dirs::new();
        let (manager, _) = manager_with(&server, dirs.store(), local.clone());
        // As `tessera login` builds it: with the `Date` header of the code exchange's answer.
        let response = server.mint_scoped(&client, OPENID_SCOPE).await;
        let date = std::time::UNIX_EPOCH + std::time::Duration::from_millis(now_ms() as u64);
        let credential = Credential::from_token_response(
            server.endpoints().await,
            client.id.clone(),
            client.secret.clone(),
            &response,
            Some(date),
            local.now_ms(),
            None,
        );
        manager.login_with(credential.clone()).await.unwrap();
        let (_, login) = stored_id_token(&dirs);

        // The refresh learns the offset again from the token endpoint's own `Date` header.
        manager
            .refresh_after_rejection(&credential.access_token)
            .await
            .unwrap();
        let (refreshed_token, refreshed) = stored_id_token(&dirs);
        assert_ne!(
            Some(refreshed_token),
            credential.id_token,
            "skew {skew_ms}: the refresh's ID token was refused"
        );
        assert_same_login(&refreshed, &login);
    }
}

#[tokio::test]
async fn a_lost_refresh_replayed_after_a_key_change_brings_back_the_same_id_token() {
    let clock = server_clock();
    // A JWKS cache lifetime of 5 s: a new key signs 10 s after it is made (the lifetime, and a
    // node's copy of the keys, which lives no longer than it).
    let server = Server::start_with_key_schedule(clock.clone(), 5).await;
    let client = openid_client(
        &server,
        ClientSettings {
            rotate_refresh_tokens: Some(true),
            refresh_retry_window_secs: Some(60),
            ..Default::default()
        },
    )
    .await;
    let dirs = Dirs::new();
    let store = dirs.store();
    let credential = server
        .credential_scoped(&client, OPENID_SCOPE, now_ms())
        .await;
    let rt1 = credential.refresh_token.clone().unwrap();
    let (first, _) = open_manager(&server, store.clone());
    first.login_with(credential.clone()).await.unwrap();
    let before = std::fs::read(dirs.data()).unwrap();

    // The refresh happens at the server, but its result never reaches the disk: the process
    // died after marking the attempt.
    clock.advance_secs(1);
    let at2 = first
        .refresh_after_rejection(&credential.access_token)
        .await
        .unwrap();
    let (lost_token, lost) = stored_id_token(&dirs);
    std::fs::write(dirs.data(), &before).unwrap();
    let mut crashed = store.load().unwrap().unwrap();
    crashed.in_flight = Some(tessera_client::InFlight::new(&rt1, now_ms() - 5_000));
    store.save(Some(&rt1), &crashed).unwrap();

    // Meanwhile a new key starts signing, still inside the retry window.
    let rotated = server
        .authority
        .rotate_signing_key(SigningAlg::Rs256)
        .await
        .unwrap();
    clock.advance_secs(10);

    // Another process retries with the old refresh token: the same pair, and the same ID
    // token, signed by the key that signed it then (still published), verified.
    let (second, _) = open_manager(&server, dirs.store());
    let again = second
        .refresh_after_rejection(&credential.access_token)
        .await
        .unwrap();
    assert_eq!(again, at2);
    assert_eq!(server.events("retry_replayed").await, 1);
    let (replayed_token, replayed) = stored_id_token(&dirs);
    assert_eq!(replayed_token, lost_token);
    assert_ne!(header(&replayed_token)["kid"], rotated.kid.as_str());
    assert_eq!(replayed, lost);

    // The next refresh is signed by the new key.
    second.refresh_after_rejection(&at2).await.unwrap();
    let (next_token, _) = stored_id_token(&dirs);
    assert_eq!(header(&next_token)["kid"], rotated.kid.as_str());
}
