//! `tessera serve`.

use anyhow::Context;
use clap::Args;
use tessera_core::operations::admin::ClientSettings;
use tessera_core::Authority;
use tessera_proto::{ClientSecret, ExposeSecret, Password, Scope};
use tessera_server::metrics::Metrics;
use tessera_server::{app, AppState};

use crate::Settings;

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: crate::ConfigArgs,
    /// Seed a demo user and client, and print a walkthrough.
    #[arg(long)]
    pub dev: bool,
    /// With --dev, allow a listen address other than loopback, though the demo password is public.
    #[arg(long, requires = "dev")]
    pub dev_public: bool,
    /// Serve POST /bench/floor, the benchmark's reference handler (see `tessera bench`).
    #[arg(long, hide = true)]
    pub bench_floor: bool,
}

pub async fn serve(settings: Settings, args: ServeArgs) -> anyhow::Result<()> {
    // The demo user's password is printed and the same for everyone who reads these docs: off
    // loopback it would be a known password to a reachable server.
    if args.dev && !args.dev_public && !listens_on_loopback_only(&settings.listen) {
        anyhow::bail!(
            "refusing --dev on {}: it is not a loopback address, and --dev seeds a demo user \
             whose password is printed and publicly known, so anyone who reaches this address \
             could log in. Listen on 127.0.0.1, [::1] or localhost, or add --dev-public to \
             serve the demo data to the network anyway",
            settings.listen
        );
    }
    // Bound first: a start that cannot listen (the port is taken, often by a running server)
    // fails before it touches the database, so it never changes what a running server serves.
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    let metrics_listener = match &settings.metrics_listen {
        Some(address) => Some(
            tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("binding the metrics listener {address}"))?,
        ),
        None => None,
    };
    let metrics = Metrics::install().map_err(|e| anyhow::anyhow!("installing metrics: {e}"))?;
    let authority = crate::authority(&settings).await?;
    authority.org().await.context("creating the organisation")?;
    if args.dev {
        dev_seed(&authority, &settings).await?;
    }
    let playground = match (settings.learn, args.dev) {
        (Some(true), _) => Some(learn_seed(&authority, &settings).await?),
        // On by default with --dev only: an issuer its redirect URI cannot be on (plain http
        // off loopback, with --dev-public) leaves it off with a warning rather than no server.
        (None, true) => match learn_seed(&authority, &settings).await {
            Ok(playground) => Some(playground),
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "the /learn playground is off");
                None
            }
        },
        (_, _) => None,
    };
    if args.dev && playground.is_some() {
        // After the walkthrough, which it continues.
        #[allow(clippy::print_stdout)]
        {
            println!(
                "  Or take the same steps one click at a time, with the server's side in view:\n       {}/learn\n",
                settings.issuer
            );
        }
    }
    tracing::info!(listen = %settings.listen, issuer = %settings.issuer, database = %crate::redacted(&settings.database), "tessera listening");
    // Revocations still in force, and then every change other processes make (the admin
    // commands), reach this server's in-memory state through the change feed.
    authority
        .follow_changes(std::time::Duration::from_millis(CHANGE_FEED_POLL_MS))
        .await
        .context("reading the change feed")?;
    // The signing keys exist before the first request is answered: a relying party that
    // fetches the JWKS at once must find the key its first ID token is signed with (housekeeping
    // would make them too, but on its own task, racing the first requests).
    match authority.rotate_signing_keys_when_due().await {
        Ok(made) if !made.is_empty() => tracing::info!(?made, "signing keys made"),
        Ok(_) => {}
        Err(error) => {
            tracing::warn!(%error, "could not make the signing keys; housekeeping retries")
        }
    }
    tessera_server::spawn_usage_flusher(
        authority.clone(),
        std::time::Duration::from_secs(settings.usage_flush_interval_secs),
    );
    tessera_server::spawn_housekeeping(
        authority.clone(),
        std::time::Duration::from_secs(settings.housekeeping_interval_secs),
    );
    // With a listener of its own, /metrics is served only there: the main listener may face
    // the internet, the metrics one a private network. Without it, on the main listener only
    // when the operator said so; otherwise not at all (404 there).
    let metrics_on_main = match metrics_listener {
        Some(metrics_listener) => {
            let router = tessera_server::metrics::router(metrics, authority.clone());
            // The bound address, so that a port 0 given in the settings is found in the log.
            if let Ok(address) = metrics_listener.local_addr() {
                tracing::info!(listen = %address, "metrics listening");
            }
            // Not drained at shutdown: a scrape cut short is only retried.
            tokio::spawn(async move {
                if let Err(error) = axum::serve(metrics_listener, router).await {
                    tracing::error!(error = %error, "the metrics listener failed");
                }
            });
            None
        }
        None => settings.metrics_on_main_listener.then_some(metrics),
    };
    let flusher = authority.clone();
    let mut state = AppState::new(authority)
        .with_trusted_proxies(settings.trusted_proxies.clone())
        .with_cors(settings.cors.clone());
    if let Some(playground) = playground {
        state = state.with_learn(playground);
    }
    let state = state
        .with_bench_floor(args.bench_floor)
        .with_access_log(settings.access_log)
        .with_metrics(metrics_on_main);
    let service = app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP")?;
    // The uses counted since the last flush, so that a restart loses none.
    match flusher.flush_usage().await {
        Ok(grants) => tracing::info!(grants, "usage counts written"),
        Err(error) => tracing::warn!(%error, "could not write the last usage counts"),
    }
    tracing::info!("shut down cleanly");
    Ok(())
}

/// SIGINT or SIGTERM: stop accepting, let in-flight requests finish, then exit 0.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown signal received; draining in-flight requests");
}

/// How often the server reads the change feed for changes made by other processes: how late an
/// admin command's revocation can reach it.
pub(crate) const CHANGE_FEED_POLL_MS: u64 = 100;

const DEV_USERNAME: &str = "demo@example.com";
const DEV_PASSWORD: &str = "tessera-demo";
const DEV_CLIENT_NAME: &str = "Tessera Demo";
const DEV_REDIRECT: &str = "http://127.0.0.1:8976/callback";

/// Whether `listen` (host:port, as the config checked it) resolves only to loopback addresses:
/// 127.0.0.0/8 and ::1, which is what `localhost` resolves to. An address that does not resolve
/// counts as not loopback.
fn listens_on_loopback_only(listen: &str) -> bool {
    use std::net::ToSocketAddrs;
    listen.to_socket_addrs().is_ok_and(|addresses| {
        let addresses: Vec<std::net::SocketAddr> = addresses.collect();
        !addresses.is_empty() && addresses.iter().all(|address| address.ip().is_loopback())
    })
}

/// Where `--dev` keeps the demo client's credentials (mode 0600), so that every start prints
/// the same ones: the database holds only the secret's hash.
const DEV_CREDENTIALS_FILE: &str = "dev-credentials.json";

/// The demo client's credentials as `--dev` keeps them in the data directory.
#[derive(serde::Serialize, serde::Deserialize)]
struct DevCredentials {
    client_id: String,
    client_secret: String,
}

/// What the demo client may have, and what the walkthrough's login asks for: `refresh_token`
/// among them, or step 2 answers no refresh token for step 4.
const DEV_SCOPES: &str = "api id refresh_token web";

/// Step 4's condition, said where it applies: a token response leaves `refresh_token` out
/// without a word (as Salesforce's does) when the login's scope lacked it.
const REFRESH_SCOPE_NOTE: &str = "\
A refresh token comes only with a login whose scope has refresh_token (or its synonym
     offline_access): step 1's URL asks for refresh_token. Without it, step 2's answer has no
     refresh_token, and its `issued` event (tessera admin events) says why.";

/// Seeds a demo user and confidential client on an empty database, then prints the credentials
/// and a copy-paste walkthrough. Later `--dev` starts keep both: the demo password is set again
/// (sessions kept), and the client's secret is the one kept in [`DEV_CREDENTIALS_FILE`]; it is
/// replaced only when that file is missing or no longer matches the client, so that logins made
/// with the printed secret keep working across restarts.
async fn dev_seed(authority: &Authority, settings: &Settings) -> anyhow::Result<()> {
    let user = match authority.operator().user(DEV_USERNAME).await.ok() {
        Some(_) => {
            authority
                .operator()
                .set_user_password(DEV_USERNAME, Password::new(DEV_PASSWORD), true)
                .await?
                .0
        }
        None => {
            authority
                .operator()
                .create_user(
                    DEV_USERNAME,
                    Password::new(DEV_PASSWORD),
                    Some(DEV_USERNAME.into()),
                )
                .await?
        }
    };
    let existing = authority
        .operator()
        .list_clients()
        .await?
        .into_iter()
        .find(|c| c.name == DEV_CLIENT_NAME);
    let credentials_path = settings.data_dir.join(DEV_CREDENTIALS_FILE);
    let kept = existing.as_ref().and_then(|client| {
        let kept = read_dev_credentials(&credentials_path)?;
        let secret = ClientSecret::new(kept.client_secret);
        (kept.client_id == client.client_id && client.secret_matches(&secret))
            .then(|| (client.clone(), secret))
    });
    // Written only when the secret is new: a start that keeps it leaves the file as it is.
    let secret_is_new = kept.is_none();
    let (client, secret) = match (kept, existing) {
        (Some(kept), _) => kept,
        (None, Some(client)) => {
            authority
                .operator()
                .rotate_client_secret(&client.client_id, false)
                .await?
        }
        (None, None) => {
            let settings = ClientSettings {
                name: Some(DEV_CLIENT_NAME.into()),
                redirect_uris: Some(vec![DEV_REDIRECT.into()]),
                scopes: Some(DEV_SCOPES.into()),
                ..Default::default()
            };
            let (client, secret) = authority.operator().create_client(false, &settings).await?;
            (
                client,
                secret.context("a confidential client has a secret")?,
            )
        }
    };
    if secret_is_new {
        write_dev_credentials(&credentials_path, &client.client_id, &secret)?;
    }
    let issuer = &settings.issuer;
    let scope = Scope::parse(DEV_SCOPES).unwrap_or_default().to_string();
    let authorize = format!(
        "{issuer}/services/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}&scope={}&state=demo",
        client.client_id,
        url::form_urlencoded::byte_serialize(DEV_REDIRECT.as_bytes()).collect::<String>(),
        url::form_urlencoded::byte_serialize(scope.as_bytes()).collect::<String>(),
    );
    let id = &client.client_id;
    let secret = secret.expose_secret();
    let text = format!(
        r#"
Tessera dev mode — demo data (do not use in production)
  user            {username} / {password}   (id {user_id})
  client_id       {id}
  client_secret   {secret}
  redirect_uri    {redirect}

Walkthrough
  1. Open this URL in a browser, log in as {username} / {password} and click Allow:
       {authorize}
     The browser then goes to {redirect}?code=…&iss=…&state=demo (nothing listens there:
     copy the code from the address bar).

  2. Exchange the code for tokens:
       curl -s {issuer}/services/oauth2/token -d grant_type=authorization_code \
         -d client_id={id} -d client_secret={secret} \
         -d redirect_uri={redirect} --data-urlencode code='PASTE_CODE'
     A code works once, within 15 minutes: exchanging it again is refused and revokes the
     tokens the first exchange gave (RFC 6749 §4.1.2). For new tokens, repeat step 1.

  3. Call the API with the access token:
       curl -s {issuer}/services/data/v65.0/sobjects/Note -H "Authorization: Bearer ACCESS_TOKEN" \
         -H 'Content-Type: application/json' -d '{{"Title":"Hello","Body":"from Tessera"}}'

  4. Get a new access token with the refresh token:
       curl -s {issuer}/services/oauth2/token -d grant_type=refresh_token \
         -d client_id={id} -d client_secret={secret} --data-urlencode refresh_token='REFRESH_TOKEN'
     {refresh_scope_note}
"#,
        username = DEV_USERNAME,
        password = DEV_PASSWORD,
        user_id = user.id,
        redirect = DEV_REDIRECT,
        refresh_scope_note = REFRESH_SCOPE_NOTE,
    );
    // The walkthrough is the point of --dev: it goes to the terminal, not to the log.
    #[allow(clippy::print_stdout)]
    {
        println!("{text}");
    }
    Ok(())
}

/// The `/learn` playground's clients, made or brought up to date, with secrets only this
/// process holds.
async fn learn_seed(
    authority: &Authority,
    settings: &Settings,
) -> anyhow::Result<tessera_server::Playground> {
    let redirect_uri = format!("{}/learn/callback", settings.issuer);
    let clients = authority
        .operator()
        .ensure_playground_clients(&redirect_uri)
        .await
        .context("making the /learn playground's clients")?;
    tracing::info!(url = %format!("{}/learn", settings.issuer), "the /learn playground is on");
    Ok(tessera_server::Playground::new(clients))
}

/// The kept demo credentials, if the file is there and readable.
fn read_dev_credentials(path: &std::path::Path) -> Option<DevCredentials> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Keeps the demo credentials, readable by this user only.
fn write_dev_credentials(
    path: &std::path::Path,
    client_id: &str,
    secret: &ClientSecret,
) -> anyhow::Result<()> {
    let credentials = DevCredentials {
        client_id: client_id.to_owned(),
        client_secret: secret.expose_secret().to_owned(),
    };
    let text = serde_json::to_string_pretty(&credentials)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    crate::replace_private_file(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::{listens_on_loopback_only, DEV_SCOPES, REFRESH_SCOPE_NOTE};
    use tessera_proto::Scope;

    #[test]
    fn the_walkthrough_never_promises_a_refresh_token_its_login_does_not_ask_for() {
        let scope = Scope::parse(DEV_SCOPES).unwrap();
        assert!(scope.allows_refresh_token(), "{DEV_SCOPES}");
        assert!(REFRESH_SCOPE_NOTE.contains("scope has refresh_token"));
        assert!(REFRESH_SCOPE_NOTE.contains("offline_access"));
    }

    #[test]
    fn dev_mode_counts_only_loopback_addresses_as_private() {
        for private in [
            "127.0.0.1:8080",
            "127.1.2.3:1",
            "[::1]:8080",
            "localhost:8080",
        ] {
            assert!(listens_on_loopback_only(private), "{private}");
        }
        for public in ["0.0.0.0:8080", "[::]:8080", "192.0.2.1:8080", "10.0.0.1:1"] {
            assert!(!listens_on_loopback_only(public), "{public}");
        }
    }
}
