//! `tessera admin`: clients, users and tokens, straight in the database. Every command has
//! `--json` for scripts; secrets are printed once, at creation or rotation.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use tessera_core::model::{Client, ClientControls, DpopMode, RotationMode, SigningAlg, User};
use tessera_core::operations::admin::ClientSettings;
use tessera_core::operations::rotation_audit::{RotationAuditSummary, AUDIT_SUMMARY_DAYS};
use tessera_core::operations::signing_keys::KeyStatus;
use tessera_core::policy::{explain_effective_policy, RefreshTokenPolicy};
use tessera_core::time::{format_duration_secs, format_utc, parse_duration_secs};
use tessera_core::{Authority, Operator};
use tessera_proto::{ClientSecret, ExposeSecret, Password};

use crate::lifecycle::{EventsArgs, RevokeArgs};
use crate::output::Output;
use crate::Settings;

#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(flatten)]
    pub config: crate::AdminConfigArgs,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Registered applications (connected apps).
    #[command(subcommand)]
    Client(ClientCommand),
    /// User accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Revoke grants (families: refresh tokens with every access token issued from them).
    Revoke(RevokeArgs),
    /// A user's grants with their rotation chains: issued, rotated, replayed, revoked, when.
    Grants {
        /// The user (username).
        #[arg(long)]
        user: String,
    },
    /// The audit trail, oldest first.
    Events(EventsArgs),
    /// What there is: clients, users, live grants, refresh tokens (live, revoked), events.
    Stats,
    /// Run housekeeping once now (the server runs it on its own, every minute by default).
    Housekeeping,
    /// The keys ID tokens and JWTs are signed with, and the JWKS (/id/keys) publishes.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Every key with its state (pending, signing, superseded, retiring, retired) and dates.
    List,
    /// Add a key now: published at once, signing after one JWKS cache lifetime and the time a
    /// server keeps its copy of the keys (a minute, or the JWKS cache lifetime if shorter); at
    /// once if no key of its algorithm can sign. The server rotates each algorithm's key on its
    /// own every signing_key_rotation.
    Rotate {
        /// The algorithm of the new key: RS256 or ES256 [default: RS256].
        #[arg(long, value_parser = parse_signing_alg, default_value = "RS256")]
        alg: SigningAlg,
    },
    /// Stop a key signing now; it stays published until its tokens and the JWKS caches have
    /// expired. Refused for the only key that can sign.
    Retire {
        /// The key's id (its `kid`).
        kid: String,
    },
}

#[derive(Debug, Args)]
struct ClientOptions {
    /// Display name.
    #[arg(long)]
    name: Option<String>,
    /// Allowed redirect URI (repeat for several; replaces the list on update).
    #[arg(long = "redirect-uri")]
    redirect_uris: Vec<String>,
    /// Space-separated scopes the client may ask for [default: "api id refresh_token web"].
    #[arg(long)]
    scopes: Option<String>,
    /// infinite | zero | specific_inactivity:N:UNIT | specific_lifetime:N:UNIT [default: infinite].
    #[arg(long, value_parser = parse_policy)]
    refresh_token_policy: Option<RefreshTokenPolicy>,
    /// Access-token lifetime, like 90s, 15m, 2h, 30d [default: 2h].
    #[arg(long, value_parser = parse_duration)]
    access_token_ttl: Option<u64>,
    /// Issue a new refresh token on every refresh (always on for public clients).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    rotate_refresh_tokens: Option<bool>,
    /// Refresh-token rotation: off, on, or audit (rotation on, but a rotated-out token still
    /// works and is recorded as a rotation_audit event instead of revoking its family; for
    /// confidential clients, before requiring rotation).
    #[arg(long, value_parser = parse_rotation_mode, conflicts_with = "rotate_refresh_tokens")]
    rotation: Option<RotationMode>,
    /// Allow the User-Agent flow (response_type=token).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    allow_user_agent_flow: Option<bool>,
    /// With rotation: how long a replay of the previous refresh token gets the same new pair
    /// back while that pair is unused, like 60s (0s: Salesforce's strict behaviour) [default: 60s].
    #[arg(long, value_parser = parse_duration)]
    refresh_retry_window: Option<u64>,
    /// How long its ID tokens are valid, in whole minutes, like 2m or 1h (Salesforce's "ID Token
    /// Valid Duration", 1 to 720 minutes) [default: 2m].
    #[arg(long, value_parser = parse_duration)]
    id_token_validity: Option<u64>,
    /// An extra audience of its ID tokens, besides its client id (repeat for several; replaces
    /// the list on update; `--id-token-audience ""` clears it).
    #[arg(long = "id-token-audience")]
    id_token_audiences: Vec<String>,
    /// Put the user's standard claims (name, email, …) in its ID tokens.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    id_token_standard_claims: Option<bool>,
    /// Repeat the authorization's nonce in the ID tokens of its refreshes.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    echo_nonce_on_refresh: Option<bool>,
    /// The algorithm of its ID tokens: RS256 (Salesforce's) or ES256 [default: RS256].
    #[arg(long, value_parser = parse_signing_alg)]
    id_token_alg: Option<SigningAlg>,
    /// Issue JWT access tokens (RFC 9068) instead of opaque ones.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    jwt_access_tokens: Option<bool>,
    /// DPoP (RFC 9449): off (Bearer tokens), allowed (a proof binds its tokens to the key) or
    /// required (a token request without a proof is refused) [default: off].
    #[arg(long, value_parser = parse_dpop_mode)]
    dpop: Option<DpopMode>,
    /// Require a server-issued nonce in its DPoP proofs.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    dpop_nonce: Option<bool>,
    /// Require PKCE (S256) on every authorization request. Once set it cannot be turned off,
    /// as in Salesforce.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pkce_required: Option<bool>,
    /// Require refresh-token rotation: turns rotation on, and rotation cannot be turned off
    /// while this is set.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    rotation_required: Option<bool>,
    /// Salesforce's "limit idle refresh-token lifetime": an infinite policy (or a longer
    /// inactivity limit) behaves as an inactivity limit of this length, like 30d; `off` lifts it
    /// [default when given without a length: 30d].
    #[arg(long, num_args = 0..=1, default_missing_value = "30d", value_parser = parse_idle_cap)]
    idle_cap: Option<IdleCap>,
    /// Block the client: every token request and every use of its tokens is refused; its
    /// tokens are kept.
    #[arg(long, conflicts_with = "unblock")]
    block: bool,
    /// Unblock the client: its tokens work again.
    #[arg(long)]
    unblock: bool,
    /// Salesforce's "Refresh Token IP allowlist": code exchanges and refreshes only from these
    /// IPv4/IPv6 ranges, like 203.0.113.0/24,2001:db8::/32 (at most 128; a bare address is one
    /// host; a /0 range must be written 0.0.0.0/0! or ::/0!); `none` clears the list. Replaces
    /// the list on update.
    #[arg(long, value_name = "CIDR[,CIDR...]|none")]
    ip_allowlist: Option<String>,
}

/// `--idle-cap`'s value: a length, or `off` (`None`).
#[derive(Debug, Clone, Copy)]
struct IdleCap(Option<u64>);

fn parse_idle_cap(text: &str) -> Result<IdleCap, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(IdleCap(None));
    }
    parse_duration_secs(text)
        .filter(|secs| *secs > 0)
        .map(|secs| IdleCap(Some(secs)))
        .ok_or_else(|| format!("{text:?} is not off or a duration like 12h or 30d"))
}

impl ClientOptions {
    fn settings(&self) -> ClientSettings {
        ClientSettings {
            name: self.name.clone(),
            redirect_uris: (!self.redirect_uris.is_empty()).then(|| self.redirect_uris.clone()),
            scopes: self.scopes.clone(),
            refresh_token_policy: self.refresh_token_policy,
            access_token_ttl_secs: self.access_token_ttl,
            rotate_refresh_tokens: self
                .rotation
                .map(|mode| mode != RotationMode::Off)
                .or(self.rotate_refresh_tokens),
            rotation_audit: self.rotation.map(|mode| mode == RotationMode::Audit),
            allow_user_agent_flow: self.allow_user_agent_flow,
            refresh_retry_window_secs: self.refresh_retry_window,
            id_token_validity_secs: self.id_token_validity,
            id_token_audiences: (!self.id_token_audiences.is_empty()).then(|| {
                self.id_token_audiences
                    .iter()
                    .filter(|a| !a.is_empty())
                    .cloned()
                    .collect()
            }),
            id_token_standard_claims: self.id_token_standard_claims,
            echo_nonce_on_refresh: self.echo_nonce_on_refresh,
            id_token_alg: self.id_token_alg,
            jwt_access_tokens: self.jwt_access_tokens,
            dpop: self.dpop,
            dpop_require_nonce: self.dpop_nonce,
            pkce_required: self.pkce_required,
            rotation_required: self.rotation_required,
            idle_cap_secs: self.idle_cap.map(|cap| cap.0),
            blocked: match (self.block, self.unblock) {
                (true, _) => Some(true),
                (false, true) => Some(false),
                (false, false) => None,
            },
            ip_allowlist: self.ip_allowlist.clone(),
        }
    }
}

fn parse_dpop_mode(text: &str) -> Result<DpopMode, String> {
    text.to_ascii_lowercase().parse()
}

fn parse_rotation_mode(text: &str) -> Result<RotationMode, String> {
    RotationMode::from_name(&text.to_ascii_lowercase())
        .ok_or_else(|| format!("{text:?} is not off, on or audit"))
}

fn parse_signing_alg(text: &str) -> Result<SigningAlg, String> {
    SigningAlg::from_name(&text.to_ascii_uppercase())
        .ok_or_else(|| format!("{text:?} is not RS256 or ES256"))
}

fn parse_policy(text: &str) -> Result<RefreshTokenPolicy, String> {
    text.parse()
        .map_err(|e: tessera_core::policy::PolicyParseError| e.to_string())
}

fn parse_duration(text: &str) -> Result<u64, String> {
    parse_duration_secs(text)
        .ok_or_else(|| format!("{text:?} is not a duration like 90s, 15m, 2h or 30d"))
}

#[derive(Debug, Subcommand)]
enum ClientCommand {
    /// Register a client; prints its client_id and (confidential clients) its secret, once.
    Create {
        /// A public client (no secret; PKCE and rotation enforced).
        #[arg(long)]
        public: bool,
        #[command(flatten)]
        options: ClientOptions,
    },
    List,
    Show {
        /// The client to show.
        client_id: String,
    },
    /// Change settings; options not given stay as they are.
    Update {
        /// The client to change.
        client_id: String,
        #[command(flatten)]
        options: ClientOptions,
    },
    /// Delete a client and everything issued to it.
    Delete {
        /// The client to delete.
        client_id: String,
    },
    /// Replace the secret; the old one stops working at once. Issued tokens stay valid unless
    /// --revoke-tokens.
    RotateSecret {
        /// The client whose secret is replaced.
        client_id: String,
        /// Also revoke every grant of the client.
        #[arg(long)]
        revoke_tokens: bool,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user; the password is typed at a prompt (without echo) or piped in.
    Create {
        /// The login name, usually an email address.
        #[arg(long)]
        username: String,
        /// Read the password from standard input: typed at a prompt without echo (Enter ends it),
        /// or piped in (required: passwords never go on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// The user's email address [default: none].
        #[arg(long)]
        email: Option<String>,
        /// Give the user the admin role: they may log in to the admin console (`/admin`).
        #[arg(long)]
        admin: bool,
    },
    List,
    /// Disable a user: every grant they hold is revoked and every browser session of theirs
    /// ends, in one write.
    Disable {
        /// The user to disable.
        username: String,
    },
    Enable {
        /// The user to enable.
        username: String,
    },
    /// Give a user the admin role (the admin console at `/admin`).
    GrantAdmin {
        /// The user to make an administrator.
        username: String,
    },
    /// Take the admin role away; the user's console session stops working at once.
    /// (Giving or taking the role ends every browser session of the user.)
    RevokeAdmin {
        /// The user who stops being an administrator.
        username: String,
    },
    /// Log a user out everywhere: revoke every live grant of theirs (every app, every node;
    /// their refresh and access tokens fail on the next request), as one audited action.
    /// Prints how many grants were revoked. Their browser sessions stay: see `user logout`.
    RevokeAll {
        /// The user whose grants are revoked.
        username: String,
    },
    /// End every browser session of a user (their login in the browser and their admin console
    /// session, on every device), as a logout does; their grants and tokens keep working.
    Logout {
        /// The user whose browser sessions end.
        username: String,
    },
    /// Set a new password, read from standard input. Every browser session of the user ends;
    /// every grant of the user is revoked with it (the usual reason for a change is a
    /// compromise) unless --keep-sessions.
    SetPassword {
        /// The user whose password is set.
        username: String,
        /// Read the password from standard input: typed at a prompt without echo (Enter ends it),
        /// or piped in (required: passwords never go on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Keep the user's refresh and access tokens working.
        #[arg(long)]
        keep_sessions: bool,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Issue tokens without a browser flow (bootstrap, load tests); prints the token endpoint's JSON.
    Mint {
        /// The client the tokens are issued to.
        #[arg(long)]
        client_id: String,
        /// The user the tokens are issued for.
        #[arg(long)]
        username: String,
        /// Space-separated scope [default: the client's scopes].
        #[arg(long, default_value = "")]
        scope: String,
    },
}

pub async fn run(settings: Settings, args: AdminArgs) -> anyhow::Result<()> {
    let authority = crate::authority(&settings).await?;
    let operator = authority.operator();
    let out = Output::new(args.json);
    match args.command {
        AdminCommand::Client(command) => client(&operator, &out, command).await,
        AdminCommand::Revoke(args) => crate::lifecycle::revoke(&operator, &out, args).await,
        AdminCommand::Grants { user } => crate::lifecycle::grants(&operator, &out, &user).await,
        AdminCommand::Events(args) => crate::lifecycle::events(&operator, &out, args).await,
        AdminCommand::Stats => crate::lifecycle::stats(&operator, &out).await,
        AdminCommand::Housekeeping => crate::lifecycle::housekeeping(&authority, &out).await,
        AdminCommand::User(command) => user(&operator, &out, command).await,
        AdminCommand::Keys(command) => keys(&authority, &out, command).await,
        AdminCommand::Token(TokenCommand::Mint {
            client_id,
            username,
            scope,
        }) => {
            let response = operator
                .mint_for(&client_id, &username, &scope)
                .await
                .map_err(|e| anyhow::anyhow!("{}: {}", e.code(), e.description()))?;
            // Tokens are this command's output, in the token endpoint's shape, JSON or not.
            out.print(&serde_json::to_value(&response)?, None);
            Ok(())
        }
    }
}

fn client_json(client: &Client, secret: Option<&ClientSecret>) -> Value {
    let mut value = json!({
        "client_id": client.client_id,
        "name": client.name,
        "public": client.is_public(),
        "redirect_uris": client.redirect_uris,
        "scopes": client.scopes.to_string(),
        "refresh_token_policy": client.refresh_token_policy.to_string(),
        "access_token_ttl": format_duration_secs(client.access_token_ttl_secs),
        "rotate_refresh_tokens": client.rotates(),
        "rotation": client.rotation_mode().name(),
        "allow_user_agent_flow": client.allow_user_agent_flow,
        "refresh_retry_window": format_duration_secs(client.refresh_retry_window_secs),
        "id_token_validity": format_duration_secs(client.openid.id_token_validity_secs),
        "id_token_audiences": client.openid.id_token_audiences,
        "id_token_standard_claims": client.openid.id_token_standard_claims,
        "echo_nonce_on_refresh": client.openid.echo_nonce_on_refresh,
        "id_token_alg": client.openid.id_token_alg.name(),
        "jwt_access_tokens": client.openid.jwt_access_tokens,
        "dpop": client.dpop.mode.as_str(),
        "dpop_nonce": client.dpop.require_nonce,
        "effective_refresh_policy": client.effective_refresh_policy().to_string(),
        "pkce_required": client.controls.pkce_required,
        "rotation_required": client.controls.rotation_required,
        "idle_cap": client.controls.idle_cap_secs.map(format_duration_secs),
        "blocked": client.controls.blocked,
        "ip_allowlist": client
            .controls
            .ip_allowlist
            .ranges()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        "created_at": client.created_at.millis(),
    });
    if let Some(secret) = secret {
        #[allow(
            clippy::indexing_slicing,
            reason = "`json!({…})` made an object, and setting a key of an object cannot panic"
        )]
        {
            value["client_secret"] = json!(secret.expose_secret());
        }
    }
    value
}

fn client_text(client: &Client, secret: Option<&ClientSecret>) -> String {
    let mut text = format!(
        "client_id      {}\nname           {}\ntype           {}\nredirect_uris  {}\nscopes         {}\npolicy         {}\naccess ttl     {}\nrotation       {}\nretry window   {}\nuser-agent     {}\nid token       {} {}{}{}{}\naccess tokens  {}\ndpop           {}{}\ncontrols       {}\nip allowlist   {}",
        client.client_id,
        client.name,
        if client.is_public() { "public" } else { "confidential" },
        client.redirect_uris.join(" "),
        client.scopes,
        explain_effective_policy(client.refresh_token_policy, client.controls.idle_cap_secs),
        format_duration_secs(client.access_token_ttl_secs),
        client.rotation_mode().name(),
        format_duration_secs(client.refresh_retry_window_secs),
        if client.allow_user_agent_flow { "allowed" } else { "off" },
        client.openid.id_token_alg.name(),
        format_duration_secs(client.openid.id_token_validity_secs),
        if client.openid.id_token_audiences.is_empty() {
            String::new()
        } else {
            format!(", also for {}", client.openid.id_token_audiences.join(" "))
        },
        if client.openid.id_token_standard_claims { ", standard claims" } else { "" },
        if client.openid.echo_nonce_on_refresh { ", nonce on refresh" } else { "" },
        if client.openid.jwt_access_tokens { "JWT (RFC 9068)" } else { "opaque" },
        client.dpop.mode,
        if client.dpop.require_nonce { ", nonce required" } else { "" },
        controls_text(&client.controls),
        if client.controls.ip_allowlist.is_empty() {
            "none (any address)".to_owned()
        } else {
            client.controls.ip_allowlist.to_input(" ")
        },
    );
    if let Some(secret) = secret {
        text.push_str(&format!(
            "\nclient_secret  {}\n(the secret is shown only now)",
            secret.expose_secret()
        ));
    }
    text
}

/// The rotation audit summary (`client show --json`'s `rotation_audit_30d`).
fn audit_json(audit: &RotationAuditSummary) -> Value {
    let families: Vec<Value> = audit
        .families
        .iter()
        .map(|f| {
            json!({
                "grant_id": f.grant_id,
                "user_id": f.user_id,
                "username": f.username,
                "addresses": f.addresses,
                "count": f.count,
                "last_seen": f.last_seen.millis(),
            })
        })
        .collect();
    json!({
        "since": audit.since.millis(),
        "families_would_have_been_revoked": audit.family_count,
        "events": audit.event_count,
        "lower_bound": audit.truncated,
        "families": families,
    })
}

/// The rotation audit summary as `client show` prints it: the count, then a line per family.
fn audit_text(audit: &RotationAuditSummary) -> String {
    let at_least = if audit.truncated { "at least " } else { "" };
    let mut text = format!(
        "rotation audit ({AUDIT_SUMMARY_DAYS} days): {at_least}{} {} would have been revoked",
        audit.family_count,
        if audit.family_count == 1 {
            "family"
        } else {
            "families"
        },
    );
    for f in &audit.families {
        text.push_str(&format!(
            "\n  grant {}  user {}  {} time(s), last {}  from {}",
            f.grant_id,
            f.username
                .as_deref()
                .or(f.user_id.as_deref())
                .unwrap_or("?"),
            f.count,
            format_utc(f.last_seen.millis()),
            if f.addresses.is_empty() {
                "?".to_owned()
            } else {
                f.addresses.join(" ")
            },
        ));
    }
    text
}

/// The controls that are on, in a line: "PKCE required, idle cap 30d, blocked", or "none".
fn controls_text(controls: &ClientControls) -> String {
    let on: Vec<String> = [
        controls.pkce_required.then(|| "PKCE required".to_owned()),
        controls
            .rotation_required
            .then(|| "rotation required".to_owned()),
        controls
            .idle_cap_secs
            .map(|cap| format!("idle cap {}", format_duration_secs(cap))),
        controls.blocked.then(|| "BLOCKED".to_owned()),
        (!controls.ip_allowlist.is_empty()).then(|| {
            format!(
                "IP allowlist ({} ranges)",
                controls.ip_allowlist.ranges().len()
            )
        }),
    ]
    .into_iter()
    .flatten()
    .collect();
    if on.is_empty() {
        "none".to_owned()
    } else {
        on.join(", ")
    }
}

async fn client(operator: &Operator, out: &Output, command: ClientCommand) -> anyhow::Result<()> {
    match command {
        ClientCommand::Create { public, options } => {
            if options.name.is_none() {
                bail!("--name is required");
            }
            if options.redirect_uris.is_empty() {
                bail!("at least one --redirect-uri is required");
            }
            let (client, secret) = operator.create_client(public, &options.settings()).await?;
            out.print(
                &client_json(&client, secret.as_ref()),
                Some(client_text(&client, secret.as_ref())),
            );
        }
        ClientCommand::List => {
            let clients = operator.list_clients().await?;
            let values: Vec<Value> = clients.iter().map(|c| client_json(c, None)).collect();
            let text = clients
                .iter()
                .map(|c| {
                    format!(
                        "{}  {}  {}",
                        c.client_id,
                        if c.is_public() {
                            "public      "
                        } else {
                            "confidential"
                        },
                        c.name
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            out.print(&Value::Array(values), Some(text));
        }
        ClientCommand::Show { client_id } => {
            let client = operator.client(&client_id).await?;
            let audit = operator.rotation_audit_summary(&client_id).await?;
            let mut value = client_json(&client, None);
            #[allow(
                clippy::indexing_slicing,
                reason = "`client_json` returns an object, and setting a key of one cannot panic"
            )]
            {
                value["rotation_audit_30d"] = audit_json(&audit);
            }
            let mut text = client_text(&client, None);
            if client.audits_rotation() || audit.event_count > 0 {
                text.push('\n');
                text.push_str(&audit_text(&audit));
            }
            out.print(&value, Some(text));
        }
        ClientCommand::Update { client_id, options } => {
            let client = operator
                .update_client(&client_id, &options.settings())
                .await?;
            out.print(
                &client_json(&client, None),
                Some(client_text(&client, None)),
            );
        }
        ClientCommand::Delete { client_id } => {
            operator.delete_client(&client_id).await?;
            out.print(
                &json!({ "deleted": client_id }),
                Some(format!("deleted client {client_id}")),
            );
        }
        ClientCommand::RotateSecret {
            client_id,
            revoke_tokens,
        } => {
            let (client, secret) = operator
                .rotate_client_secret(&client_id, revoke_tokens)
                .await?;
            out.print(
                &client_json(&client, Some(&secret)),
                Some(client_text(&client, Some(&secret))),
            );
        }
    }
    Ok(())
}

fn key_json(key: &KeyStatus) -> Value {
    json!({
        "kid": key.kid,
        "alg": key.alg,
        "state": key.state.name(),
        "created_at": key.created_at.millis(),
        "publish_at": key.publish_at.millis(),
        "sign_from": key.sign_from.millis(),
        "retire_at": key.retire_at.map(|at| at.millis()),
    })
}

fn key_text(key: &KeyStatus) -> String {
    let retire = key
        .retire_at
        .map(|at| format!("  published until {}", format_utc(at.millis())))
        .unwrap_or_default();
    format!(
        "{}  {}  {:<10}  signs from {}{retire}",
        key.kid,
        key.alg,
        key.state.name(),
        format_utc(key.sign_from.millis())
    )
}

async fn keys(authority: &Authority, out: &Output, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::List => {
            let keys = authority.signing_key_statuses().await?;
            let text = keys.iter().map(key_text).collect::<Vec<_>>().join("\n");
            out.print(
                &Value::Array(keys.iter().map(key_json).collect()),
                Some(text),
            );
        }
        KeysCommand::Rotate { alg } => {
            let key = authority.rotate_signing_key(alg).await?;
            out.print(&key_json(&key), Some(key_text(&key)));
        }
        KeysCommand::Retire { kid } => {
            let retire_at = authority.retire_signing_key(&kid).await?;
            out.print(
                &json!({ "kid": kid, "retire_at": retire_at.millis() }),
                Some(format!(
                    "{kid} signs no more; published until {}",
                    format_utc(retire_at.millis())
                )),
            );
        }
    }
    Ok(())
}

fn user_json(user: &User) -> Value {
    json!({
        "id": user.id,
        "org_id": user.org_id,
        "username": user.username,
        "email": user.email,
        "disabled": user.disabled,
        "admin": user.admin,
        "created_at": user.created_at.millis(),
    })
}

fn user_text(user: &User) -> String {
    format!(
        "{}  {}{}{}",
        user.id,
        user.username,
        if user.admin { "  (admin)" } else { "" },
        if user.disabled { "  (disabled)" } else { "" }
    )
}

/// The password of `--password-stdin`: typed at a prompt without echo, or piped in (see
/// [`crate::terminal::read_secret`]).
fn read_password(prompt: &str) -> anyhow::Result<Password> {
    let password =
        crate::terminal::read_secret(prompt, "--password-stdin").context("reading the password")?;
    Ok(Password::new(password))
}

async fn user(operator: &Operator, out: &Output, command: UserCommand) -> anyhow::Result<()> {
    let user = match command {
        UserCommand::Create {
            username,
            password_stdin: _,
            email,
            admin,
        } => {
            let password = read_password(&format!("Password for {username}: "))?;
            if admin {
                operator.create_admin(&username, password, email).await?
            } else {
                operator.create_user(&username, password, email).await?
            }
        }
        UserCommand::List => {
            let users = operator.list_users().await?;
            let text = users.iter().map(user_text).collect::<Vec<_>>().join("\n");
            out.print(
                &Value::Array(users.iter().map(user_json).collect()),
                Some(text),
            );
            return Ok(());
        }
        UserCommand::Disable { username } => operator.set_user_disabled(&username, true).await?,
        UserCommand::Enable { username } => operator.set_user_disabled(&username, false).await?,
        UserCommand::GrantAdmin { username } => operator.set_user_admin(&username, true).await?,
        UserCommand::RevokeAdmin { username } => operator.set_user_admin(&username, false).await?,
        UserCommand::Logout { username } => operator.end_user_sessions(&username).await?,
        UserCommand::RevokeAll { username } => {
            return crate::lifecycle::log_out_everywhere(operator, out, &username).await;
        }
        UserCommand::SetPassword {
            username,
            password_stdin: _,
            keep_sessions,
        } => {
            let (user, revoked) = operator
                .set_user_password(
                    &username,
                    read_password(&format!("New password for {username}: "))?,
                    keep_sessions,
                )
                .await?;
            let mut value = user_json(&user);
            #[allow(
                clippy::indexing_slicing,
                reason = "`user_json` returns an object, and setting a key of one cannot panic"
            )]
            {
                value["revoked_grants"] = json!(revoked);
            }
            out.print(
                &value,
                Some(format!(
                    "{}\nrevoked {revoked} grant(s) with the old password",
                    user_text(&user)
                )),
            );
            return Ok(());
        }
    };
    out.print(&user_json(&user), Some(user_text(&user)));
    Ok(())
}
