//! Acts 7 to 10: the refresh-token flow's common mistakes, each made on purpose against the same
//! real server, with what it costs the user.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tessera_client::{
    ClientError, EventSink, FileTokenStore, KeySource, ReauthReason, RefreshEvent, TokenStore,
};
use tessera_core::operations::admin::ClientSettings;
use tessera_core::policy::{PolicyUnit, RefreshTokenPolicy};
use tessera_proto::ExposeSecret;

use super::narration::{arrow, explain, heading, note, short, side_by_side, AS, CLIENT, RS, THIEF};
use super::stage::{
    note_protection, oauth_error, response_rows, text_field, DemoApp, Stage, Telling,
};
use super::story::SCOPE;

/// A resource every act can read with a valid access token.
const API_PATH: &str = "/services/data/v65.0";

/// Act 7: a login without the refresh scope gets no refresh token; once its access token
/// expires, the only way on is another login.
pub(super) async fn no_refresh_scope(stage: &Stage, app: &DemoApp) -> anyhow::Result<()> {
    heading("7. Mistake: not asking for the refresh_token scope");
    explain("The app asks for \"api id\" only. The login works and so does the API — until the access token expires.");
    let without = stage.log_in(app, "api id", Telling::OneLine).await?;
    let with = stage.log_in(app, SCOPE, Telling::OneLine).await?;
    side_by_side(
        "asked for scope=api id",
        &response_rows(&without.tokens),
        &format!("asked for scope={SCOPE}"),
        &response_rows(&with.tokens),
    );
    if without.tokens.refresh_token.is_some() || with.tokens.refresh_token.is_none() {
        bail!("the refresh token should come with the refresh_token scope, and only with it");
    }
    note("no refresh_token (or offline_access) in the scope: no refresh token in the response");
    let manager = stage
        .token_manager(app, &without, "no-refresh-scope", None)
        .await?;
    let api = manager.http_client();
    let read = api.get(API_PATH).await.map_err(crate::client::explain)?;
    arrow(CLIENT, RS, &format!("GET {API_PATH}"));
    arrow(RS, CLIENT, &read.status().to_string());
    tokio::time::sleep(Duration::from_secs(app.access_token_ttl + 1)).await;
    note(&format!(
        "{} s later the access token has expired",
        app.access_token_ttl + 1
    ));
    arrow(CLIENT, RS, &format!("GET {API_PATH}"));
    match api.get(API_PATH).await {
        Err(ClientError::ReauthRequired {
            reason: reason @ ReauthReason::NoRefreshToken,
        }) => {
            note(&format!(
                "the token manager has nothing to renew it with: ReauthRequired {{ reason: {reason} }}"
            ));
            note(&format!(
                "the app must send the user to the login page again — every {} s, for as long as they use it",
                app.access_token_ttl
            ));
            Ok(())
        }
        Ok(response) => bail!(
            "an expired access token still answered {}",
            response.status()
        ),
        Err(other) => bail!("expected ReauthRequired (no refresh token), got {other}"),
    }
}

/// Act 8: a refresh token past its policy's lifetime is refused, and the token manager turns
/// that into one clean "log in again", sending no further refresh.
pub(super) async fn expired_refresh_token(stage: &Stage) -> anyhow::Result<()> {
    const LIFETIME_SECS: u64 = 4;
    const ACCESS_TOKEN_TTL_SECS: u64 = 2;
    heading("8. Mistake: counting on a refresh token that has expired");
    explain(&format!(
        "Refresh tokens do not live forever. This app's policy is specific_lifetime:{LIFETIME_SECS}:SECONDS: \
         its refresh tokens die {LIFETIME_SECS} s after the login, however often they are used."
    ));
    let app = stage
        .register(ClientSettings {
            name: Some("Short-lived app".into()),
            refresh_token_policy: Some(RefreshTokenPolicy::SpecificLifetime {
                amount: LIFETIME_SECS,
                unit: PolicyUnit::Seconds,
            }),
            access_token_ttl_secs: Some(ACCESS_TOKEN_TTL_SECS),
            ..Default::default()
        })
        .await?;
    let login = stage.log_in(&app, SCOPE, Telling::OneLine).await?;
    let refreshes = Arc::new(AtomicU32::new(0));
    let counted = refreshes.clone();
    let count_requests: EventSink = Arc::new(move |event: &RefreshEvent| {
        counted.fetch_add(event.attempts, Ordering::Relaxed);
    });
    let manager = stage
        .token_manager(&app, &login, "short-lived", Some(count_requests))
        .await?;
    let api = manager.http_client();
    let read = api.get(API_PATH).await.map_err(crate::client::explain)?;
    arrow(CLIENT, RS, &format!("GET {API_PATH}"));
    arrow(RS, CLIENT, &read.status().to_string());
    tokio::time::sleep(Duration::from_secs(LIFETIME_SECS + 1)).await;
    note(&format!(
        "{} s later both the access token and the refresh token have expired",
        LIFETIME_SECS + 1
    ));
    let before = refreshes.load(Ordering::Relaxed);
    note(&format!(
        "the app calls GET {API_PATH}; the token manager sees the access token expired and refreshes first"
    ));
    let description = match api.get(API_PATH).await {
        Err(ClientError::ReauthRequired {
            reason: ReauthReason::RefreshTokenRejected { description },
        }) => description,
        Ok(response) => bail!(
            "an expired refresh token still answered {}",
            response.status()
        ),
        Err(other) => bail!("expected ReauthRequired, got {other}"),
    };
    arrow(
        CLIENT,
        AS,
        "POST /services/oauth2/token  grant_type=refresh_token",
    );
    arrow(AS, CLIENT, &format!("400 invalid_grant \"{description}\""));
    note("the token manager returns ReauthRequired: no crash, no retry loop");
    arrow(
        CLIENT,
        RS,
        &format!("GET {API_PATH}  (the app tries once more)"),
    );
    match api.get(API_PATH).await {
        Err(ClientError::ReauthRequired { .. }) => {}
        Ok(response) => bail!("a dead session answered {}", response.status()),
        Err(other) => bail!("expected ReauthRequired again, got {other}"),
    }
    let sent = refreshes.load(Ordering::Relaxed) - before;
    note(&format!(
        "ReauthRequired again; refresh requests sent for both calls: {sent} — a refused refresh token is not tried again"
    ));
    note("a real app now says: \"Your session has ended. Please log in again.\"");
    Ok(())
}

/// Act 9: what a plain file of tokens holds, what the token manager's file holds, and what a
/// copy of each is worth to a thief.
pub(super) async fn plain_text_storage(stage: &Stage, app: &DemoApp) -> anyhow::Result<()> {
    heading("9. Mistake: storing refresh tokens in plain text");
    explain("Two copies of the same login: one app writes its tokens to a plain JSON file, the other keeps them in the token manager's store.");
    let login = stage.log_in(app, SCOPE, Telling::OneLine).await?;
    let refresh_token = login.refresh_token()?;

    let plain_dir = stage.dir.path().join("plain");
    std::fs::create_dir_all(&plain_dir)?;
    let plain_file = plain_dir.join("tokens.json");
    std::fs::write(
        &plain_file,
        serde_json::to_vec_pretty(&serde_json::json!({
            "instance_url": login.tokens.instance_url,
            "access_token": login.tokens.access_token.expose_secret(),
            "refresh_token": refresh_token.expose_secret(),
        }))?,
    )?;
    let clear = refresh_token.expose_secret();
    note("tokens.json, as the careless app wrote it:");
    explain(&format!(
        "    {{ \"instance_url\": \"{}\", \"access_token\": \"{}\", \"refresh_token\": \"{}…\" }}",
        login.tokens.instance_url,
        short(login.tokens.access_token.expose_secret()),
        clear.chars().take(8).collect::<String>()
    ));
    note(&format!(
        "the refresh token is there in clear, all {} characters of it (cut short here)",
        clear.len()
    ));

    let manager = stage.token_manager(app, &login, "careful", None).await?;
    let sealed_file = stage.client_paths().profiles.join("careful.cred");
    let sealed = std::fs::read(&sealed_file).context("reading the token manager's file")?;
    let contains_token = sealed
        .windows(clear.len())
        .any(|window| window == clear.as_bytes());
    if contains_token {
        bail!("the token manager's file holds the refresh token in clear");
    }
    note("careful.cred, as the token manager wrote it:");
    explain(&format!(
        "    {} bytes, ending …{}",
        sealed.len(),
        sealed
            .iter()
            .skip(sealed.len().saturating_sub(24))
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    ));
    note("the refresh token does not appear in it (checked byte by byte)");
    note_protection(&manager);

    heading("   A thief copies both files to another machine");
    let stolen = std::fs::read_to_string(&plain_file)?;
    let stolen: serde_json::Value = serde_json::from_str(&stolen)?;
    let stolen_token =
        text_field(&stolen, "refresh_token").context("the plain file's refresh token")?;
    let (status, body) = stage.post_refresh(app, stolen_token).await?;
    arrow(
        THIEF,
        AS,
        "POST /services/oauth2/token  grant_type=refresh_token (from the copied tokens.json)",
    );
    if !status.is_success() {
        bail!("the stolen refresh token was refused: {status} {body}");
    }
    arrow(
        AS,
        THIEF,
        &format!("{status}  a fresh access token: the thief is the user now"),
    );
    let thief_token = text_field(&body, "access_token")
        .context("no access token")?
        .to_owned();
    let read = stage
        .http
        .get(format!("{}{API_PATH}", stage.base))
        .bearer_auth(&thief_token)
        .send()
        .await?;
    arrow(THIEF, RS, &format!("GET {API_PATH}"));
    arrow(
        RS,
        THIEF,
        &format!(
            "{} — for as long as the refresh token lives (with this app: until revoked)",
            read.status()
        ),
    );

    let elsewhere = tempfile::tempdir()?;
    let copy = elsewhere.path().join("profiles/careful.cred");
    std::fs::create_dir_all(copy.parent().context("a parent")?)?;
    std::fs::copy(&sealed_file, &copy)?;
    let without_key = FileTokenStore::open(
        copy,
        KeySource::KeyFile(elsewhere.path().join("keys/client.key")),
    )?;
    note("the thief opens the copied careful.cred");
    match without_key.load() {
        Ok(Some(_)) => bail!("the copied file was read without its key"),
        Ok(None) | Err(_) => note(
            "without the key (kept apart from the file) the copy decrypts to nothing: not one token",
        ),
    }
    let revoked = stage
        .http
        .post(format!("{}/services/oauth2/revoke", stage.base))
        .form(&[("token", stolen_token)])
        .send()
        .await?;
    note(&format!(
        "once a plain file has leaked, all the user can do is revoke the session (revoked here: {})",
        revoked.status()
    ));
    Ok(())
}

/// Act 10: an app that keeps its first refresh token after a rotation: the retry window hides
/// the bug, then the server sees reuse and revokes the family.
pub(super) async fn kept_old_token(stage: &Stage) -> anyhow::Result<()> {
    const RETRY_WINDOW_SECS: u64 = 2;
    heading("10. Mistake: not keeping the rotated refresh token");
    explain(&format!(
        "With rotation on, every refresh returns a new refresh token and the old one is spent. \
         This app saves its tokens at login and never again. Its retry window is {RETRY_WINDOW_SECS} s."
    ));
    let app = stage
        .register(ClientSettings {
            name: Some("Forgetful app".into()),
            rotate_refresh_tokens: Some(true),
            refresh_retry_window_secs: Some(RETRY_WINDOW_SECS),
            access_token_ttl_secs: Some(60),
            ..Default::default()
        })
        .await?;
    let login = stage.log_in(&app, SCOPE, Telling::OneLine).await?;
    let first = login.refresh_token()?;
    arrow(
        AS,
        CLIENT,
        &format!(
            "refresh token RT1 {} — the app saves it",
            short(first.expose_secret())
        ),
    );

    let (status, body) = stage.post_refresh(&app, first.expose_secret()).await?;
    arrow(
        CLIENT,
        AS,
        "POST /services/oauth2/token  grant_type=refresh_token RT1",
    );
    let second = text_field(&body, "refresh_token")
        .with_context(|| format!("the rotation answered {status} {body}"))?
        .to_owned();
    arrow(
        AS,
        CLIENT,
        &format!(
            "{status}  a new access token and RT2 {} — the app does not save RT2",
            short(&second)
        ),
    );

    let (status, body) = stage.post_refresh(&app, first.expose_secret()).await?;
    arrow(
        CLIENT,
        AS,
        "POST /services/oauth2/token  grant_type=refresh_token RT1 (again, a second later)",
    );
    if text_field(&body, "refresh_token") != Some(second.as_str()) {
        bail!("inside the retry window the same pair should come back: {status} {body}");
    }
    arrow(
        AS,
        CLIENT,
        &format!("{status}  the same pair again, RT2 {}", short(&second)),
    );
    note("inside the retry window the server answers the same pair: the bug hides");

    tokio::time::sleep(Duration::from_secs(RETRY_WINDOW_SECS) + Duration::from_millis(500)).await;
    note("the window closes");
    let (status, body) = stage.post_refresh(&app, first.expose_secret()).await?;
    arrow(
        CLIENT,
        AS,
        "POST /services/oauth2/token  grant_type=refresh_token RT1",
    );
    arrow(AS, CLIENT, &format!("{status} {}", oauth_error(&body)));
    if status.is_success() {
        bail!("a rotated-out refresh token was accepted after its window");
    }
    note("RT1 was rotated out: the server cannot tell the app from a thief, and revokes the whole family");
    let (status, body) = stage.post_refresh(&app, &second).await?;
    arrow(
        CLIENT,
        AS,
        "POST /services/oauth2/token  grant_type=refresh_token RT2 (had the app kept it)",
    );
    arrow(AS, CLIENT, &format!("{status} {}", oauth_error(&body)));
    if status.is_success() {
        bail!("the revoked family's RT2 was accepted");
    }
    note("RT2 died with its family: the user must log in again");
    note("keep the newest refresh token, saved before the new access token is used (the token manager does)");
    Ok(())
}
