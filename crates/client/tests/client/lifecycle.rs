//! Refresh, rotation, recovery, revocation and logout against a real Tessera.

use std::sync::Arc;
use std::time::Duration;

use tessera_client::{
    ClientError, InFlight, LogoutStep, ManualClock, ReauthReason, RefreshOutcome, RefreshTrigger,
    TokenStore,
};

use crate::support::*;

#[tokio::test]
async fn a_fresh_token_is_handed_out_without_a_refresh() {
    let server = Server::start().await;
    let s = server.logged_in(&server.plain(3600).await).await;
    let first = clear(&s.credential.access_token);
    for _ in 0..3 {
        assert_eq!(clear(&s.manager.access_token().await.unwrap()), first);
    }
    assert!(s.events.events().is_empty());
    assert_eq!(server.refreshes().await, 0);
}

/// At local time `at_ms`, `access_token` refreshes once, proactively, without rotation, and
/// hands out a new token (not `first`) that the API accepts.
async fn refreshed_proactively_at(server: &Server, s: &Session, at_ms: i64, first: &str) {
    let wait = (at_ms - now_ms()).max(0) as u64;
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let second = clear(&s.manager.access_token().await.unwrap());
    assert_ne!(second, first);
    let seen = s.events.events();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].outcome, RefreshOutcome::Refreshed);
    assert_eq!(seen[0].trigger, RefreshTrigger::Proactive);
    assert_eq!(seen[0].attempts, 1);
    assert!(!seen[0].rotated);
    assert_eq!(server.events("refreshed").await, 1);
    assert!(server.api_works(&second).await);
}

#[tokio::test]
async fn proactive_refresh_renews_a_short_token_just_before_it_expires() {
    let server = Server::start().await;
    let s = server.logged_in(&server.plain(3).await).await;
    let issued_at = s.credential.issued_at_ms;
    let first = clear(&s.credential.access_token);

    // 2.75 s into a 3 s lifetime: inside the 300 ms margin, not yet expired.
    refreshed_proactively_at(&server, &s, issued_at + 2_750, &first).await;

    // The refreshed credential learnt the server's clock from the Date header.
    let status = s.manager.status().await.unwrap();
    assert!(
        status.clock_offset_ms.abs() < 2_000,
        "{}",
        status.clock_offset_ms
    );
    assert!(status.remaining_ms.unwrap() > 1_000);
}

#[tokio::test]
async fn a_refused_session_is_refreshed_once_and_the_request_replayed() {
    let server = Server::start().await;
    let s = server.logged_in(&server.plain(7200).await).await;
    let first = clear(&s.credential.access_token);
    // The access token dies at the server (revoking an access token revokes only it).
    assert_eq!(server.revoke(&first).await.as_u16(), 200);

    let api = s.manager.http_client();
    let response = api.get("/services/data/v65.0/").await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let seen = s.events.events();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].trigger, RefreshTrigger::Rejected);
    assert_eq!(seen[0].outcome, RefreshOutcome::Refreshed);
    assert_eq!(server.refreshes().await, 1);
    assert_ne!(clear(&s.manager.access_token().await.unwrap()), first);

    // An absolute URL on the instance works too; another origin never gets the token.
    let url = format!("{}/services/data/v65.0/sobjects", server.base);
    assert_eq!(api.get(&url).await.unwrap().status().as_u16(), 200);
    assert!(matches!(
        api.get("http://203.0.113.9/services/data").await,
        Err(ClientError::Protocol(_))
    ));
}

#[tokio::test]
async fn login_records_who_logged_in_by_introspection_or_the_identity_url() {
    let server = Server::start().await;
    // Confidential: the introspection endpoint names the user.
    let confidential = server.logged_in(&server.plain(3600).await).await;
    let status = confidential.manager.status().await.unwrap();
    assert_eq!(status.username.as_deref(), Some(USERNAME));
    assert!(status
        .to_string()
        .starts_with(&format!("user      {USERNAME}\n")));
    // Public: no secret for introspection, so the identity URL, called with the token.
    let public = server.logged_in(&server.public(3600).await).await;
    let status = public.manager.status().await.unwrap();
    assert_eq!(status.username.as_deref(), Some(USERNAME));
    // A refresh keeps it.
    let at1 = public.credential.access_token.clone();
    public.manager.refresh_after_rejection(&at1).await.unwrap();
    let status = public.manager.status().await.unwrap();
    assert_eq!(status.username.as_deref(), Some(USERNAME));
}

#[tokio::test]
async fn a_verified_token_is_one_the_server_accepts_now() {
    let server = Server::start().await;
    for client in [server.plain(7200).await, server.public(7200).await] {
        let s = server.logged_in(&client).await;
        let first = clear(&s.credential.access_token);
        // A live session: the same token, no refresh.
        assert_eq!(
            clear(&s.manager.verified_access_token().await.unwrap()),
            first
        );
        assert!(s.events.events().is_empty());

        // The access token alone revoked early: the plain accessor still hands it out (nothing
        // says it is dead), the verified one refreshes.
        assert_eq!(server.revoke(&first).await.as_u16(), 200);
        assert_eq!(clear(&s.manager.access_token().await.unwrap()), first);
        let second = clear(&s.manager.verified_access_token().await.unwrap());
        assert_ne!(second, first);
        assert!(server.api_works(&second).await);
        assert_eq!(s.events.events()[0].trigger, RefreshTrigger::Rejected);

        // The whole grant revoked: no token the server accepts, and the reason to log in.
        let refresh = s.store.load().unwrap().unwrap().refresh_token.unwrap();
        assert_eq!(server.revoke(&clear(&refresh)).await.as_u16(), 200);
        assert!(matches!(
            s.manager.verified_access_token().await,
            Err(ClientError::ReauthRequired {
                reason: ReauthReason::RefreshTokenRejected { .. }
            })
        ));
    }
}

#[tokio::test]
async fn rotation_stores_the_new_refresh_token_before_the_access_token_is_used() {
    let server = Server::start().await;
    let s = server.logged_in(&server.rotating(60, 7200).await).await;
    let rt1 = s.credential.refresh_token.clone().unwrap();
    let at1 = s.credential.access_token.clone();

    let at2 = s.manager.refresh_after_rejection(&at1).await.unwrap();
    let stored = s.store.load().unwrap().unwrap();
    let rt2 = stored.refresh_token.clone().unwrap();
    assert_ne!(rt2, rt1);
    assert_eq!(stored.access_token, at2);
    assert!(stored.in_flight.is_none() && stored.dead.is_none());
    assert!(s.events.events()[0].rotated);
    assert_eq!(server.events("rotated").await, 1);

    // The next refresh presents RT2 (RT1 would now be reuse).
    let at3 = s.manager.refresh_after_rejection(&at2).await.unwrap();
    assert_ne!(at3, at2);
    assert_ne!(s.store.load().unwrap().unwrap().refresh_token.unwrap(), rt2);
    assert_eq!(server.events("rotated").await, 2);
    assert_eq!(server.events("reuse_detected").await, 0);
    assert!(server.api_works(&clear(&at3)).await);
}

#[tokio::test]
async fn a_lost_refresh_response_is_recovered_from_the_servers_retry_window() {
    let server = Server::start().await;
    let client = server.rotating(60, 7200).await;
    let dirs = Dirs::new();
    let store = dirs.store();
    let credential = server.credential(&client, now_ms()).await;
    let at1 = credential.access_token.clone();
    let rt1 = credential.refresh_token.clone().unwrap();
    let (first, _) = open_manager(&server, store.clone());
    first.login_with(credential).await.unwrap();
    let before = std::fs::read(dirs.data()).unwrap();

    // The refresh happens at the server, but its result never reaches the disk: the process
    // died after marking the attempt (the marker is what it left).
    let at2 = first.refresh_after_rejection(&at1).await.unwrap();
    let rt2 = store.load().unwrap().unwrap().refresh_token.unwrap();
    std::fs::write(dirs.data(), &before).unwrap();
    let mut crashed = store.load().unwrap().unwrap();
    crashed.in_flight = Some(InFlight::new(&rt1, now_ms() - 5_000));
    store.save(Some(&rt1), &crashed).unwrap();
    assert!(first.status().await.unwrap().refresh_in_flight);

    // Another process retries with RT1 and gets the same successor pair.
    let (second, events) = open_manager(&server, dirs.store());
    let again = second.refresh_after_rejection(&at1).await.unwrap();
    assert_eq!(again, at2);
    let stored = store.load().unwrap().unwrap();
    assert_eq!(stored.refresh_token.as_ref(), Some(&rt2));
    assert!(stored.in_flight.is_none());
    assert_eq!(events.events()[0].outcome, RefreshOutcome::Refreshed);
    assert_eq!(server.events("rotated").await, 1);
    assert_eq!(server.events("retry_replayed").await, 1);
    assert_eq!(server.events("reuse_detected").await, 0);
    // And the family lives on.
    assert!(second.refresh_after_rejection(&at2).await.is_ok());
}

#[tokio::test]
async fn an_interrupted_refresh_past_the_window_is_reported_as_lost_rotation() {
    let start = now_ms();
    let server_clock = Arc::new(tessera_core::time::ManualClock::new(
        tessera_core::time::Timestamp(start),
    ));
    let server = Server::start_with_clock(server_clock.clone()).await;
    let client = server.rotating(60, 7200).await;
    let dirs = Dirs::new();
    let store = dirs.store();
    let clock = Arc::new(ManualClock::new(start));
    let credential = server.credential(&client, start).await;
    let at1 = credential.access_token.clone();
    let rt1 = credential.refresh_token.clone().unwrap();
    let (first, _) = manager_with(&server, store.clone(), clock.clone());
    first.login_with(credential).await.unwrap();
    let before = std::fs::read(dirs.data()).unwrap();
    first.refresh_after_rejection(&at1).await.unwrap();
    // The rotated pair is lost; the marker of the attempt survives.
    std::fs::write(dirs.data(), &before).unwrap();
    let mut crashed = store.load().unwrap().unwrap();
    crashed.in_flight = Some(InFlight::new(&rt1, start));
    store.save(Some(&rt1), &crashed).unwrap();

    // Two minutes later, past the 60 s window: the server takes RT1 for reuse.
    server_clock.advance_secs(120);
    clock.advance_ms(120_000);
    let (second, events) = manager_with(&server, dirs.store(), clock.clone());
    let error = second.refresh_after_rejection(&at1).await.unwrap_err();
    assert!(
        matches!(
            &error,
            ClientError::ReauthRequired {
                reason: ReauthReason::LostRotation
            }
        ),
        "{error:?}"
    );
    assert_eq!(events.events()[0].outcome, RefreshOutcome::Failed);
    assert_eq!(server.events("reuse_detected").await, 1);

    // The verdict is persisted: a third process fails without asking the server.
    let (third, third_events) = manager_with(&server, dirs.store(), clock.clone());
    assert!(matches!(
        third.access_token().await,
        Err(ClientError::ReauthRequired {
            reason: ReauthReason::LostRotation
        })
    ));
    assert!(third_events.events().is_empty());
    assert_eq!(
        third.status().await.unwrap().reauth_required,
        Some(ReauthReason::LostRotation)
    );
}

#[tokio::test]
async fn revocation_gives_reauth_required_and_other_processes_fail_fast() {
    let server = Server::start().await;
    let client = server.plain(7200).await;
    let s = server.logged_in(&client).await;
    let rt = clear(s.credential.refresh_token.as_ref().unwrap());
    assert_eq!(server.revoke(&rt).await.as_u16(), 200);

    // The API refuses the session, the refresh is refused: a typed error, no loop.
    let error = s
        .manager
        .http_client()
        .get("/services/data/v65.0/")
        .await
        .unwrap_err();
    let ClientError::ReauthRequired {
        reason: ReauthReason::RefreshTokenRejected { description },
    } = error
    else {
        panic!("{error:?}");
    };
    assert_eq!(description, "expired access/refresh token");
    assert_eq!(s.events.events().len(), 1);
    assert_eq!(s.events.events()[0].attempts, 1);

    // Another process reads the persisted verdict and never calls the server.
    let (other, other_events) = open_manager(&server, s.dirs.store());
    let again = other.access_token().await.unwrap_err();
    assert!(matches!(again, ClientError::ReauthRequired { .. }));
    let again = other
        .refresh_after_rejection(&s.credential.access_token)
        .await
        .unwrap_err();
    assert!(matches!(again, ClientError::ReauthRequired { .. }));
    assert_eq!(other_events.events()[0].attempts, 0);

    // A new login clears it.
    let fresh = server.credential(&client, now_ms()).await;
    other.login_with(fresh).await.unwrap();
    let token = other.access_token().await.unwrap();
    assert!(server.api_works(&clear(&token)).await);
}

#[tokio::test]
async fn logout_revokes_the_refresh_token_then_the_access_token_and_wipes_the_file() {
    let server = Server::start().await;
    let client = server.rotating(60, 7200).await;
    let s = server.logged_in(&client).await;
    let at = clear(&s.credential.access_token);
    let rt = s.credential.refresh_token.clone().unwrap();

    let report = s.manager.logout().await;
    assert_eq!(report.refresh_token, LogoutStep::Done);
    // Revoking the refresh token revoked its grant, access token included.
    assert!(
        matches!(
            report.access_token,
            LogoutStep::Done | LogoutStep::AlreadyInvalid
        ),
        "{report}"
    );
    assert_eq!(report.local_copy, LogoutStep::Done);
    assert!(report.is_complete());
    assert!(!s.dirs.data().exists());
    assert!(!server.api_works(&at).await);
    // The refresh token is dead at the server too.
    let status = server
        .http
        .post(format!("{}/services/oauth2/token", server.base))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &clear(&rt)),
            ("client_id", &client.id),
            ("client_secret", &clear(client.secret.as_ref().unwrap())),
        ])
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 400);
    assert!(matches!(
        s.manager.access_token().await,
        Err(ClientError::NotLoggedIn)
    ));
    assert!(matches!(
        s.manager.status().await,
        Err(ClientError::NotLoggedIn)
    ));
    let again = s.manager.logout().await;
    assert!(
        matches!(again.local_copy, LogoutStep::Skipped(_)),
        "{again}"
    );
}

#[tokio::test]
async fn the_servers_clock_is_learnt_from_the_date_header() {
    let server = Server::start().await;
    let client = server.plain(3600).await;
    let dirs = Dirs::new();
    // This machine's clock is 5 minutes slow.
    let skew = 5 * 60_000;
    let clock = Arc::new(ManualClock::new(now_ms() - skew));
    let (manager, _) = manager_with(&server, dirs.store(), clock.clone());
    use tessera_client::Clock;
    let credential = server.credential(&client, clock.now_ms()).await;
    let at1 = credential.access_token.clone();
    manager.login_with(credential).await.unwrap();
    manager.refresh_after_rejection(&at1).await.unwrap();
    let status = manager.status().await.unwrap();
    // The Date header has 1-second resolution.
    assert!(
        (status.clock_offset_ms - skew).abs() < 2_000,
        "offset {}",
        status.clock_offset_ms
    );
    let remaining = status.remaining_ms.unwrap();
    assert!((3_597_000..=3_600_000).contains(&remaining), "{remaining}");
    // 58 minutes on the slow clock are 58 at the server: still fresh; 59.5 are not.
    clock.advance_ms(58 * 60_000);
    let fresh = manager.access_token().await.unwrap();
    clock.advance_ms(90_000);
    assert_ne!(manager.access_token().await.unwrap(), fresh);
}

#[tokio::test]
async fn without_expires_in_a_public_client_refreshes_reactively_unless_a_session_timeout_is_set() {
    let server = Server::start_without_expires_in().await;
    // Public: no secret, so no introspection either.
    let client = server.public(3600).await;
    let dirs = Dirs::new();
    let clock = Arc::new(ManualClock::new(now_ms()));
    use tessera_client::Clock;
    let credential = server.credential(&client, clock.now_ms()).await;
    assert_eq!(credential.expires_at_ms, None);
    let at1 = credential.access_token.clone();
    let (reactive, reactive_events) =
        manager_with_session_timeout(&server, dirs.store(), clock.clone(), None);
    reactive.login_with(credential).await.unwrap();
    assert_eq!(reactive.status().await.unwrap().expires_at_ms, None);
    // A day later the token is still handed out as is: nothing says it expired.
    clock.advance_ms(24 * 3_600_000);
    assert_eq!(reactive.access_token().await.unwrap(), at1);
    assert!(reactive_events.events().is_empty());
    // Refused by the server, it is refreshed.
    let at2 = reactive.refresh_after_rejection(&at1).await.unwrap();
    assert_ne!(at2, at1);
    assert_eq!(reactive.status().await.unwrap().expires_at_ms, None);

    // With Salesforce's session timeout configured, the expiry is issued_at + timeout.
    clock.set_ms(now_ms());
    let (timed, timed_events) = manager_with_session_timeout(
        &server,
        dirs.store(),
        clock.clone(),
        Some(Duration::from_secs(3600)),
    );
    let fresh = tessera_client::Credential::from_token_response(
        server.endpoints().await,
        client.id.clone(),
        client.secret.clone(),
        &server.mint(&client).await,
        None,
        clock.now_ms(),
        Some(Duration::from_secs(3600)),
    );
    let at3 = fresh.access_token.clone();
    timed.login_with(fresh).await.unwrap();
    assert_eq!(timed.access_token().await.unwrap(), at3);
    clock.advance_ms(59 * 60_000 + 30_000);
    let at4 = timed.access_token().await.unwrap();
    assert_ne!(at4, at3);
    assert_eq!(timed_events.events()[0].trigger, RefreshTrigger::Proactive);
    let status = timed.status().await.unwrap();
    assert!(status.expires_at_ms.is_some());
}

/// The stored access token's introspected expiry, checked against its lifetime: `exp` is in
/// whole seconds, so a 3-second token is between 2 and 3 s long.
async fn introspected_expiry_ms(manager: &tessera_client::TokenManager) -> i64 {
    let status = manager.status().await.unwrap();
    let expires_at = status
        .expires_at_ms
        .expect("introspection gives the expiry");
    let lifetime = expires_at - status.issued_at_ms;
    assert!((2_000..=3_000).contains(&lifetime), "{lifetime}");
    expires_at
}

#[tokio::test]
async fn without_expires_in_a_confidential_client_gets_the_expiry_by_introspection() {
    let server = Server::start_without_expires_in().await;
    let s = server.logged_in(&server.plain(3).await).await;
    assert_eq!(s.credential.expires_at_ms, None);
    let expires_at = introspected_expiry_ms(&s.manager).await;
    let first = clear(&s.credential.access_token);
    assert_eq!(clear(&s.manager.access_token().await.unwrap()), first);

    // 150 ms before expiry: inside the margin (a tenth of 2-3 s), so refreshed proactively.
    refreshed_proactively_at(&server, &s, expires_at - 150, &first).await;
    // The refreshed token's expiry was introspected too, and stored.
    let renewed = introspected_expiry_ms(&s.manager).await;
    assert!(renewed > expires_at);
    assert_eq!(
        s.store.load().unwrap().unwrap().expires_at_ms,
        Some(renewed)
    );
}

#[tokio::test]
async fn a_failed_introspection_leaves_the_expiry_unknown() {
    let server = Server::start_without_expires_in().await;
    let client = server.plain(3).await;
    let mut credential = server.credential(&client, now_ms()).await;
    credential.endpoints.introspection = Some(format!("{}/services/oauth2/nowhere", server.base));
    let dirs = Dirs::new();
    let (manager, _) = open_manager(&server, dirs.store());
    manager.login_with(credential.clone()).await.unwrap();
    assert_eq!(manager.status().await.unwrap().expires_at_ms, None);
    assert_eq!(
        manager.access_token().await.unwrap(),
        credential.access_token
    );
}

#[tokio::test]
async fn a_refused_token_another_process_already_replaced_is_not_refreshed_again() {
    let server = Server::start().await;
    let s = server.logged_in(&server.rotating(0, 7200).await).await;
    let at1 = s.credential.access_token.clone();
    let (second, second_events) = open_manager(&server, s.dirs.store());
    assert_eq!(second.access_token().await.unwrap(), at1);
    let at2 = s.manager.refresh_after_rejection(&at1).await.unwrap();
    // The second process still holds AT1; the API refuses it; the store has AT2.
    assert_eq!(second.refresh_after_rejection(&at1).await.unwrap(), at2);
    assert_eq!(second_events.events()[0].outcome, RefreshOutcome::Adopted);
    assert_eq!(second_events.events()[0].attempts, 0);
    assert_eq!(server.refreshes().await, 1);
}

#[tokio::test]
async fn the_reqwest_middleware_adds_the_token_only_for_the_instance_and_refreshes_once() {
    let server = Server::start().await;
    let s = server.logged_in(&server.plain(7200).await).await;
    assert_eq!(
        server
            .revoke(&clear(&s.credential.access_token))
            .await
            .as_u16(),
        200
    );
    let client = reqwest_middleware::ClientBuilder::new(server.http.clone())
        .with(tessera_client::TokenMiddleware::new(s.manager.clone()))
        .build();
    let response = client
        .get(format!("{}/services/data/v65.0/", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(s.events.events().len(), 1);
    assert_eq!(server.refreshes().await, 1);

    // Another origin: the request goes, the token does not.
    let elsewhere = serve(axum::Router::new().route(
        "/echo",
        axum::routing::get(|headers: axum::http::HeaderMap| async move {
            headers.contains_key("authorization").to_string()
        }),
    ))
    .await;
    let text = client
        .get(format!("{elsewhere}/echo"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, "false");
}
