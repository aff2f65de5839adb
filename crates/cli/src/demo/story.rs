//! The story's first six acts: login, an API call, expiry and a proactive refresh with
//! rotation, an access token revoked early and the reactive path (401, refresh, replay), a stolen
//! token replayed, reuse detection revoking the family, and the "log in again" error a real app
//! turns into a login prompt.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use tessera_client::{
    AuthorizedClient, ClientError, EventSink, RefreshEvent, RefreshOutcome, RefreshTrigger,
    TokenManager,
};
use tessera_core::operations::admin::ClientSettings;
use tessera_proto::{ExposeSecret, RefreshToken};

use super::narration::{arrow, heading, note, short, ADMIN, AS, CLIENT, RS, THIEF};
use super::stage::{note_protection, oauth_error, DemoApp, Stage, Telling};

/// The scope the story's app asks for.
pub(super) const SCOPE: &str = "api id refresh_token";

/// The story's app: strict rotation (a retry window of 0) and short-lived access tokens.
pub(super) async fn register_demo_app(
    stage: &Stage,
    access_token_ttl: u64,
) -> anyhow::Result<DemoApp> {
    let app = stage
        .register(ClientSettings {
            name: Some("Demo app".into()),
            rotate_refresh_tokens: Some(true),
            refresh_retry_window_secs: Some(0),
            access_token_ttl_secs: Some(access_token_ttl),
            ..Default::default()
        })
        .await?;
    note(&format!(
        "client \"Demo app\": rotation on, retry window 0 (strict), access tokens live {access_token_ttl} s"
    ));
    Ok(app)
}

/// Acts 2 to 6: the app's token manager holding the login's tokens.
pub(super) struct Demo<'a> {
    stage: &'a Stage,
    app: &'a DemoApp,
    /// RT1, which the attacker of act 5 steals.
    first_refresh: RefreshToken,
    manager: Arc<TokenManager>,
    api: AuthorizedClient,
}

/// Act 1: the Web Server flow with PKCE, every request of it told, then the login's tokens
/// handed to the app's token manager, saved encrypted in a profile of the temporary directory.
pub(super) async fn log_in<'a>(stage: &'a Stage, app: &'a DemoApp) -> anyhow::Result<Demo<'a>> {
    heading("1. Log in (Web Server flow with PKCE)");
    let login = stage.log_in(app, SCOPE, Telling::EveryStep).await?;
    let first_refresh = login.refresh_token()?;
    arrow(
        AS,
        CLIENT,
        &format!(
            "access token {} ({} s), refresh token RT1 {}",
            short(login.tokens.access_token.expose_secret()),
            app.access_token_ttl,
            short(first_refresh.expose_secret())
        ),
    );
    let manager = stage
        .token_manager(app, &login, "demo", Some(narrate_refreshes()))
        .await?;
    note_protection(&manager);
    let api = manager.http_client();
    Ok(Demo {
        stage,
        app,
        first_refresh,
        manager,
        api,
    })
}

/// Narrates each successful refresh as it happens, with the 401 that started a reactive one; a
/// refused one is told by the last act. The refresh tokens are numbered as they rotate: RT1
/// came with the login.
fn narrate_refreshes() -> EventSink {
    let refresh_tokens_seen = AtomicU32::new(1);
    Arc::new(move |event: &RefreshEvent| {
        if event.outcome != RefreshOutcome::Refreshed {
            return;
        }
        let why = match event.trigger {
            RefreshTrigger::Proactive => "before expiry",
            RefreshTrigger::Rejected => {
                arrow(RS, CLIENT, "401 INVALID_SESSION_ID");
                "on the 401"
            }
        };
        arrow(
            CLIENT,
            AS,
            &format!(
                "POST /services/oauth2/token  grant_type=refresh_token (the token manager, {why})"
            ),
        );
        if event.rotated {
            let number = refresh_tokens_seen.fetch_add(1, Ordering::Relaxed) + 1;
            arrow(
                AS,
                CLIENT,
                &format!("a new access token and a new refresh token RT{number}: rotated"),
            );
        } else {
            arrow(AS, CLIENT, "a new access token");
        }
    })
}

impl Demo<'_> {
    /// Act 2: an API call creates a note; its path is what the later acts read.
    pub(super) async fn call_the_api(&self) -> anyhow::Result<String> {
        heading("2. Call the API");
        let created = self
            .api
            .send(
                reqwest::Method::POST,
                "/services/data/v65.0/sobjects/Note",
                json_headers(),
                Some(br#"{"Title":"Hello from the demo"}"#.to_vec()),
            )
            .await
            .map_err(crate::client::explain)?;
        arrow(
            CLIENT,
            RS,
            "POST /services/data/v65.0/sobjects/Note  Authorization: Bearer …",
        );
        let status = created.status();
        let note_id = created
            .json::<serde_json::Value>()
            .await?
            .get("id")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        arrow(RS, CLIENT, &format!("{status}  id {note_id}"));
        Ok(format!("/services/data/v65.0/sobjects/Note/{note_id}"))
    }

    /// Act 3: the access token expires, and the token manager refreshes it (with rotation)
    /// before the next call.
    pub(super) async fn refresh_before_expiry(&self, path: &str) -> anyhow::Result<()> {
        let ttl = self.app.access_token_ttl;
        heading(&format!("3. Wait {} s: the access token expires", ttl + 1));
        tokio::time::sleep(Duration::from_secs(ttl + 1)).await;
        let read = get(&self.api, path).await?;
        arrow(CLIENT, RS, &format!("GET {path}"));
        arrow(
            RS,
            CLIENT,
            &format!("{} — the app never saw a token or an error", read.status()),
        );
        Ok(())
    }

    /// Act 4: the access token is revoked early, which the token manager cannot know: the call
    /// gets a 401, the manager refreshes and replays it.
    pub(super) async fn refresh_on_a_401_after_an_early_revocation(
        &self,
        path: &str,
    ) -> anyhow::Result<()> {
        heading("4. The access token is revoked early (a logout elsewhere, an administrator)");
        let current = self
            .manager
            .access_token()
            .await
            .map_err(crate::client::explain)?;
        let revoked = self
            .stage
            .http
            .post(format!("{}/services/oauth2/revoke", self.stage.base))
            .form(&[("token", current.expose_secret())])
            .send()
            .await?;
        arrow(
            ADMIN,
            AS,
            &format!(
                "POST /services/oauth2/revoke  token={}  → {}",
                short(current.expose_secret()),
                revoked.status()
            ),
        );
        note("the token manager cannot know: by its clock the token is still good");
        arrow(
            CLIENT,
            RS,
            &format!("GET {path}  Bearer {}", short(current.expose_secret())),
        );
        let read = get(&self.api, path).await?;
        arrow(
            CLIENT,
            RS,
            &format!("GET {path}  replayed once, with the new token"),
        );
        arrow(
            RS,
            CLIENT,
            &format!(
                "{} — the app saw neither the 401 nor the refresh",
                read.status()
            ),
        );
        Ok(())
    }

    /// Act 5: a thief replays RT1, rotated out long ago: reuse, and the family is revoked.
    pub(super) async fn replay_the_stolen_first_refresh_token(&self) -> anyhow::Result<()> {
        heading("5. An attacker replays the stolen first refresh token RT1");
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let (status, body) = self
            .stage
            .post_refresh(self.app, self.first_refresh.expose_secret())
            .await?;
        arrow(
            THIEF,
            AS,
            "POST /services/oauth2/token  grant_type=refresh_token RT1",
        );
        arrow(AS, THIEF, &format!("{status} {}", oauth_error(&body)));
        note("RT1 was rotated out: reuse detected, the whole family is revoked — every refresh and access token of it");
        Ok(())
    }

    /// Act 6: the app's next call; the manager tries, and reports that the user must log in
    /// again.
    pub(super) async fn end_with_log_in_again(&self, path: &str) -> anyhow::Result<()> {
        heading("6. The app calls the API again");
        arrow(CLIENT, RS, &format!("GET {path}"));
        match self.api.get(path).await {
            Err(ClientError::ReauthRequired { reason }) => {
                arrow(
                    RS,
                    CLIENT,
                    "401 INVALID_SESSION_ID (the access token died with its family)",
                );
                arrow(CLIENT, AS, "refresh with the current refresh token");
                arrow(
                    AS,
                    CLIENT,
                    "400 invalid_grant \"expired access/refresh token\"",
                );
                note(&format!(
                    "the token manager returns ReauthRequired {{ reason: {reason} }}"
                ));
                note("a real app now says: \"Your session has ended. Please log in again.\"");
                Ok(())
            }
            Ok(response) => bail!("the revoked family still answered {}", response.status()),
            Err(other) => bail!("expected ReauthRequired, got {other}"),
        }
    }
}

/// `GET path` through the token manager, its failure as a person should read it.
pub(super) async fn get(api: &AuthorizedClient, path: &str) -> anyhow::Result<reqwest::Response> {
    api.get(path).await.map_err(crate::client::explain)
}

fn json_headers() -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::CONTENT_TYPE,
        reqwest::header::HeaderValue::from_static("application/json"),
    );
    headers
}
