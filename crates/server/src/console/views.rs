//! The admin console's pages, as maud templates: every value is escaped unless marked
//! otherwise, and nothing is marked otherwise. The look is the login page's (`pages::STYLE`),
//! widened for tables.

use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use maud::{html, Markup, DOCTYPE};
use tessera_core::model::{
    Client, ClientControls, DpopMode, EventKind, Grant, RotationMode, SigningAlg, StoredEvent, User,
};
use tessera_core::operations::admin::PKCE_REQUIRED_IS_FOREVER;
use tessera_core::operations::console::EventNames;
use tessera_core::operations::rotation_audit::{RotationAuditSummary, AUDIT_SUMMARY_DAYS};
use tessera_core::policy::explain_effective_policy;
use tessera_core::time::{format_duration_secs, format_utc};
use tessera_proto::{CsrfToken, ExposeSecret};

use crate::pages::{html_response, LoginNotice, STYLE};

const CONSOLE_STYLE: &str = "main.console{max-width:1100px;margin:24px auto}\
nav{display:flex;gap:16px;flex-wrap:wrap;margin:8px 0 16px;font-size:.9rem}nav a{color:#1d4ed8;text-decoration:none}\
nav form{margin-left:auto}nav button{margin:0;padding:4px 10px;font-size:.85rem}\
table{border-collapse:collapse;width:100%;font-size:.85rem}th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e5e7eb;vertical-align:top}\
th{color:#374151;font-weight:600}main.console th,main.console td{overflow-wrap:normal}main.console td code{overflow-wrap:anywhere}td form{display:inline}td button,form.inline button{margin:0;padding:4px 10px;font-size:.8rem}\
button.danger{background:#b91c1c;border-color:#991b1b}.notice{background:#ecfdf5;color:#065f46;padding:8px 12px;border-radius:8px}\
.secret{font-family:ui-monospace,monospace;font-size:1rem;background:#fef9c3;padding:8px;border-radius:6px;display:inline-block}\
fieldset{border:1px solid #e5e7eb;border-radius:8px;margin:16px 0;padding:8px 16px 16px}textarea{box-sizing:border-box;width:100%;padding:8px;border:1px solid #d1d5db;border-radius:8px;font-family:ui-monospace,monospace}\
select{padding:8px;border-radius:8px;border:1px solid #d1d5db}label.check{display:inline-block;margin-right:16px}\
.filters{display:flex;gap:8px;flex-wrap:wrap;align-items:end}.filters label{margin:0 0 2px}.filters button{margin:0}\
.filters input[type=text]{width:200px}svg.timeline{background:#f9fafb;border-radius:8px;margin:12px 0;display:block;min-width:720px}\
.scroll{overflow-x:auto;max-width:100%}.scroll table{min-width:600px}td .name{text-decoration:underline dotted #9ca3af}td.when,.scroll td code{white-space:nowrap}\
@media (max-width:600px){main.console{margin:12px auto;padding:16px}}\
.legend span{display:inline-block;margin-right:12px;font-size:.8rem}.legend i{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:4px}";

/// The console's links, on every page but the login.
fn nav(csrf: &CsrfToken) -> Markup {
    html! {
        nav {
            a href="/admin/clients" { "Clients" }
            a href="/admin/users" { "Users" }
            a href="/admin/events" { "Events" }
            form method="post" action="/admin/logout" {
                input type="hidden" name="csrf_token" value=(csrf.expose_secret());
                button.secondary type="submit" { "Log out" }
            }
        }
    }
}

/// A whole console page. `refresh_secs` reloads it (the events list's live updates, without a
/// script: the pages' policy allows none).
pub fn document(
    status: StatusCode,
    title: &str,
    csrf: Option<&CsrfToken>,
    refresh_secs: Option<u32>,
    body: Markup,
    cookie: Option<HeaderValue>,
) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                @if let Some(secs) = refresh_secs {
                    meta http-equiv="refresh" content=(secs);
                }
                title { (title) " · Tessera admin" }
                style { (maud::PreEscaped(STYLE)) (maud::PreEscaped(CONSOLE_STYLE)) }
            }
            body {
                main.console {
                    div.brand { "Tessera admin console" }
                    @if let Some(csrf) = csrf { (nav(csrf)) }
                    (body)
                }
            }
        }
    };
    html_response(status, markup.into_string(), cookie)
}

fn csrf_field(csrf: &CsrfToken) -> Markup {
    html! { input type="hidden" name="csrf_token" value=(csrf.expose_secret()); }
}

/// A button that POSTs to `action` with the CSRF token.
fn post_button(action: &str, csrf: &CsrfToken, label: &str, danger: bool) -> Markup {
    html! {
        form method="post" action=(action) {
            (csrf_field(csrf))
            @if danger { button.danger type="submit" { (label) } } @else { button type="submit" { (label) } }
        }
    }
}

/// A box that scrolls sideways when what it holds is wider than the page: a table on a phone
/// scrolls inside the card instead of running past its edge.
fn scroll_box(wide: Markup) -> Markup {
    html! { div.scroll { (wide) } }
}

fn when(at: tessera_core::time::Timestamp) -> String {
    format_utc(at.millis())
}

pub fn login(csrf: &CsrfToken, username: &str, notice: LoginNotice) -> Markup {
    html! {
        h1 { "Log in" }
        p { "to the admin console" }
        @if let Some(message) = notice.message() {
            p.error role="alert" { (message) }
        }
        form method="post" action="/admin/login" style="max-width:380px" {
            (csrf_field(csrf))
            label for="username" { "Username" }
            input type="text" id="username" name="username" value=(username) autocomplete="username" required autofocus;
            label for="password" { "Password" }
            input type="password" id="password" name="password" autocomplete="current-password" required;
            button type="submit" { "Log in" }
        }
    }
}

pub fn not_admin() -> Markup {
    html! {
        h1 { "Not an administrator" }
        p.error role="alert" { "This account may not use the admin console." }
        p { a href="/admin/login" { "Log in as someone else" } }
    }
}

pub fn message(heading: &str, text: &str) -> Markup {
    html! {
        h1 { (heading) }
        p.error role="alert" { (text) }
        p { a href="/admin/clients" { "Back to the console" } }
    }
}

/// The client form's fields, filled from `client` when editing; a new client's controls start
/// as `new_controls` (the configured defaults), which the administrator may change.
fn client_fields(client: Option<&Client>, new_controls: &ClientControls) -> Markup {
    let uris = client
        .map(|c| c.redirect_uris.join("\n"))
        .unwrap_or_default();
    let scopes = client.map_or_else(
        || tessera_core::policy::DEFAULT_CLIENT_SCOPES.to_owned(),
        |c| c.scopes.to_string(),
    );
    let policy = client.map_or_else(
        || "infinite".to_owned(),
        |c| c.refresh_token_policy.to_string(),
    );
    let ttl = format_duration_secs(
        client.map_or(tessera_core::policy::DEFAULT_ACCESS_TOKEN_TTL_SECS, |c| {
            c.access_token_ttl_secs
        }),
    );
    // A new client's window is left empty: it then gets its type's default (public 10 s,
    // confidential 60 s).
    let window = client.map_or_else(String::new, |c| {
        format_duration_secs(c.refresh_retry_window_secs)
    });
    let openid = client.map(|c| c.openid.clone()).unwrap_or_default();
    let dpop = client.map(|c| c.dpop).unwrap_or_default();
    let controls = client.map_or_else(|| new_controls.clone(), |c| c.controls.clone());
    // What is stored: a public client's rotation is forced on, but its setting shows as saved.
    let rotation = match client {
        Some(c) if c.audits_rotation() => RotationMode::Audit,
        Some(c) if c.rotate_refresh_tokens => RotationMode::On,
        _ => RotationMode::Off,
    };
    let idle_cap = controls
        .idle_cap_secs
        .map(format_duration_secs)
        .unwrap_or_default();
    html! {
        label for="name" { "Name" }
        input type="text" id="name" name="name" value=(client.map(|c| c.name.as_str()).unwrap_or_default()) required;
        label for="redirect_uris" { "Redirect URIs (one per line)" }
        textarea id="redirect_uris" name="redirect_uris" rows="3" required { (uris) }
        label for="scopes" { "Scopes" }
        input type="text" id="scopes" name="scopes" value=(scopes);
        label for="refresh_token_policy" { "Refresh-token policy (infinite, zero, specific_inactivity:N:UNIT, specific_lifetime:N:UNIT)" }
        input type="text" id="refresh_token_policy" name="refresh_token_policy" value=(policy);
        label for="access_token_ttl" { "Access-token lifetime (90s, 15m, 2h, 1d)" }
        input type="text" id="access_token_ttl" name="access_token_ttl" value=(ttl);
        label for="refresh_retry_window" { "Refresh retry window (0s: strict; empty at creation: 60s, public clients 10s)" }
        input type="text" id="refresh_retry_window" name="refresh_retry_window" value=(window);
        label for="rotation" { "Refresh-token rotation (off; on: reuse of a rotated-out token revokes its family; audit: rotation on, reuse recorded as rotation_audit and nothing revoked)" }
        select id="rotation" name="rotation" {
            @for mode in RotationMode::ALL {
                option value=(mode.name()) selected[mode == rotation] { (mode.name()) }
            }
        }
        p {
            label.check {
                input type="checkbox" name="allow_user_agent_flow" value="true" checked[client.is_some_and(|c| c.allow_user_agent_flow)];
                " Allow the User-Agent flow"
            }
        }
        fieldset {
            legend { "OpenID Connect (with the openid scope)" }
            label for="id_token_validity" { "ID-token validity (whole minutes, 1m to 12h)" }
            input type="text" id="id_token_validity" name="id_token_validity" value=(format_duration_secs(openid.id_token_validity_secs));
            label for="id_token_audiences" { "Extra ID-token audiences (one per line)" }
            textarea id="id_token_audiences" name="id_token_audiences" rows="2" { (openid.id_token_audiences.join("\n")) }
            label for="id_token_alg" { "ID-token algorithm" }
            select id="id_token_alg" name="id_token_alg" {
                @for alg in SigningAlg::ALL {
                    option value=(alg.name()) selected[alg == openid.id_token_alg] { (alg.name()) }
                }
            }
            p {
                label.check {
                    input type="checkbox" name="id_token_standard_claims" value="true" checked[openid.id_token_standard_claims];
                    " Standard claims (name, email, …) in ID tokens"
                }
                label.check {
                    input type="checkbox" name="echo_nonce_on_refresh" value="true" checked[openid.echo_nonce_on_refresh];
                    " Repeat the nonce in refreshed ID tokens"
                }
                label.check {
                    input type="checkbox" name="jwt_access_tokens" value="true" checked[openid.jwt_access_tokens];
                    " JWT access tokens (RFC 9068)"
                }
            }
        }
        fieldset {
            legend { "DPoP (RFC 9449): tokens bound to the client's key" }
            label for="dpop" { "DPoP (off: Bearer tokens; allowed: a proof binds; required: no token without a proof)" }
            select id="dpop" name="dpop" {
                @for mode in DpopMode::ALL {
                    option value=(mode.as_str()) selected[mode == dpop.mode] { (mode.as_str()) }
                }
            }
            p {
                label.check {
                    input type="checkbox" name="dpop_require_nonce" value="true" checked[dpop.require_nonce];
                    " Require a server nonce in its proofs"
                }
            }
        }
        fieldset {
            legend { "Refresh-token controls (Salesforce's; docs/controls.md)" }
            @if let Some(c) = client {
                p { "Effective refresh-token policy: " strong { (effective_policy(c)) } }
            }
            label for="idle_cap" { "Idle-limit cap: an infinite policy expires after this long unused, like 30d (empty: no cap)" }
            input type="text" id="idle_cap" name="idle_cap" value=(idle_cap);
            p {
                label.check {
                    @if client.is_some_and(|c| c.controls.pkce_required) {
                        input type="checkbox" name="pkce_required" value="true" checked disabled;
                        " PKCE required (" (PKCE_REQUIRED_IS_FOREVER) ")"
                    } @else {
                        input type="checkbox" name="pkce_required" value="true" checked[controls.pkce_required];
                        " PKCE required (cannot be turned off once saved)"
                    }
                }
                label.check {
                    input type="checkbox" name="rotation_required" value="true" checked[controls.rotation_required];
                    " Rotation required (rotation cannot be turned off while set)"
                }
                label.check {
                    input type="checkbox" name="blocked" value="true" checked[controls.blocked];
                    " Blocked: every token request and every use of its tokens is refused; its tokens are kept"
                }
            }
            @if let Some(c) = client {
                p { "Refresh-token IP allowlist: " strong { (allowlist_summary(c)) } }
            }
            label for="ip_allowlist" { "Refresh-token IP allowlist: code exchanges and refreshes only from these ranges, one per line, like 203.0.113.0/24 or 2001:db8::/32 (at most 128; empty: from anywhere; a /0 range needs a trailing !)" }
            textarea id="ip_allowlist" name="ip_allowlist" rows="3" { (controls.ip_allowlist.to_input("\n")) }
        }
    }
}

/// A client's effective refresh-token policy, with why it differs from the configured one.
fn effective_policy(client: &Client) -> String {
    explain_effective_policy(client.refresh_token_policy, client.controls.idle_cap_secs)
}

/// A client's refresh-token IP allowlist in a line: its ranges, or that there is none.
fn allowlist_summary(client: &Client) -> String {
    let allowlist = &client.controls.ip_allowlist;
    if allowlist.is_empty() {
        "none (code exchanges and refreshes from any address)".to_owned()
    } else {
        allowlist.to_input(", ")
    }
}

/// Whether a grant's refresh tokens are bound to a key, and to which (its RFC 7638 thumbprint:
/// public, as a key's fingerprint is).
fn dpop_binding(grant: &Grant) -> Markup {
    html! {
        @if let Some(jkt) = &grant.dpop_jkt { "DPoP-bound to " code.jkt { (jkt) } } @else { "not bound" }
    }
}

pub fn clients(
    csrf: &CsrfToken,
    clients: &[Client],
    new_controls: &ClientControls,
    error: Option<&str>,
) -> Markup {
    html! {
        h1 { "Clients" }
        @if let Some(error) = error { p.error role="alert" { (error) } }
        (scroll_box(html! { table {
            thead { tr { th { "Name" } th { "Client id" } th { "Type" } th { "Policy" } th { "Rotation" } th { "Created" } th {} } }
            tbody {
                @for c in clients {
                    tr {
                        td { a href={"/admin/clients/" (c.client_id)} { (c.name) } }
                        td { code { (c.client_id) } }
                        td { @if c.is_public() { "public" } @else { "confidential" } }
                        td { (effective_policy(c)) @if c.controls.blocked { " · " strong { "blocked" } } }
                        td { @if c.rotates() { (c.rotation_mode().name()) ", window " (format_duration_secs(c.refresh_retry_window_secs)) } @else { "off" } }
                        td.when { (when(c.created_at)) }
                        td { a href={"/admin/events?client=" (c.client_id)} { "Events" } }
                    }
                }
            }
        } }))
        fieldset {
            legend { "New client" }
            form method="post" action="/admin/clients" id="create-client" {
                (csrf_field(csrf))
                (client_fields(None, new_controls))
                p { label.check { input type="checkbox" name="public" value="true"; " Public (no secret; PKCE and rotation enforced)" } }
                button type="submit" { "Create client" }
            }
        }
    }
}

pub fn client(
    csrf: &CsrfToken,
    client: &Client,
    audit: &RotationAuditSummary,
    error: Option<&str>,
) -> Markup {
    let base = format!("/admin/clients/{}", client.client_id);
    html! {
        h1 { (client.name) }
        p { code { (client.client_id) } " · " @if client.is_public() { "public" } @else { "confidential" } " · created " (when(client.created_at)) }
        @if let Some(error) = error { p.error role="alert" { (error) } }
        @if client.audits_rotation() || audit.event_count > 0 {
            (rotation_audit(client, audit))
        }
        form method="post" action=(base) id="update-client" {
            (csrf_field(csrf))
            (client_fields(Some(client), &ClientControls::default()))
            button type="submit" { "Save" }
        }
        @if !client.is_public() {
            fieldset {
                legend { "Rotate the secret" }
                p { "The old secret stops working at once. The new one is shown once." }
                form.inline method="post" action={(base) "/rotate-secret"} {
                    (csrf_field(csrf))
                    label.check { input type="checkbox" name="revoke_tokens" value="true"; " Also revoke every grant of the client" }
                    button type="submit" { "Rotate secret" }
                }
            }
        }
        fieldset {
            legend { "Delete" }
            p { "Deletes the client and revokes everything issued to it." }
            (post_button(&format!("{base}/delete"), csrf, "Delete client", true))
        }
    }
}

/// The evidence of rotation audit mode: the families rotation on would have revoked in the
/// period, with the users and addresses that presented their rotated-out tokens.
fn rotation_audit(client: &Client, audit: &RotationAuditSummary) -> Markup {
    let at_least = if audit.truncated { "at least " } else { "" };
    let families = if audit.family_count == 1 {
        "family"
    } else {
        "families"
    };
    html! {
        section #rotation-audit {
            h2 { "Rotation audit (last " (AUDIT_SUMMARY_DAYS) " days)" }
            p {
                strong #rotation-audit-count { (at_least) (audit.family_count) " " (families) }
                " would have been revoked with rotation on"
                " (" (audit.event_count) " rotation_audit events since " (when(audit.since)) ")."
                @if !client.audits_rotation() { " The client is no longer in audit mode." }
            }
            @if !audit.families.is_empty() {
                (scroll_box(html! { table {
                    thead { tr { th { "Grant" } th { "User" } th { "Addresses" } th { "Count" } th { "Last seen" } } }
                    tbody {
                        @for f in &audit.families {
                            tr {
                                td { a href={"/admin/grants/" (f.grant_id)} { code { (f.grant_id) } } }
                                td {
                                    @match (&f.username, &f.user_id) {
                                        (Some(name), Some(id)) => { a href={"/admin/users/" (id) "/grants"} { (name) } }
                                        (None, Some(id)) => { code { (id) } }
                                        _ => { "?" }
                                    }
                                }
                                td { (f.addresses.join(", ")) }
                                td { (f.count) }
                                td.when { (when(f.last_seen)) }
                            }
                        }
                    }
                } }))
                @if audit.families.len() < audit.family_count {
                    p { "The " (audit.families.len()) " most recent shown; "
                        a href={"/admin/events?client=" (client.client_id) "&kind=rotation_audit"} { "all the events" } "." }
                }
            }
        }
    }
}

pub fn secret_shown(client: &Client, secret: &str, heading: &str) -> Markup {
    html! {
        h1 { (heading) }
        p { "Client " strong { (client.name) } " · " code #client-id { (client.client_id) } }
        p { "Client secret (shown only now; copy it):" }
        p.secret id="client-secret" { (secret) }
        p { a href={"/admin/clients/" (client.client_id)} { "Continue" } }
    }
}

pub fn users(csrf: &CsrfToken, users: &[User], query: &str) -> Markup {
    html! {
        h1 { "Users" }
        form.filters method="get" action="/admin/users" {
            div { label for="q" { "Username contains" } input type="text" id="q" name="q" value=(query); }
            button type="submit" { "Search" }
        }
        (scroll_box(html! { table {
            thead { tr { th { "Username" } th { "Id" } th { "Role" } th { "Status" } th { "Created" } th {} } }
            tbody {
                @for u in users {
                    tr {
                        td { a href={"/admin/users/" (u.id) "/grants"} { (u.username) } }
                        td { code { (u.id) } }
                        td { @if u.admin { "admin" } @else { "user" } }
                        td { @if u.disabled { "disabled" } @else { "active" } }
                        td.when { (when(u.created_at)) }
                        td {
                            @if u.disabled {
                                (post_button(&format!("/admin/users/{}/enable", u.id), csrf, "Enable", false))
                            } @else {
                                (post_button(&format!("/admin/users/{}/disable", u.id), csrf, "Disable", true))
                            }
                        }
                    }
                }
            }
        } }))
    }
}

pub fn grants(csrf: &CsrfToken, user: &User, grants: &[Grant]) -> Markup {
    html! {
        h1 { "Grants of " (user.username) }
        p { a href={"/admin/events?user=" (user.id)} { "Events of this user" } }
        @if grants.iter().any(|g| g.revoked_at.is_none()) {
            // A GET to a page that asks to confirm: the revocation itself is its POST.
            form method="get" action=(logout_everywhere_path(user)) {
                button.danger type="submit" { "Log out everywhere" }
            }
        }
        (scroll_box(html! { table {
            thead { tr { th { "Grant" } th { "Client" } th { "Scope" } th { "Created" } th { "Last used" } th { "Status" } th { "Key" } th {} } }
            tbody {
                @for g in grants {
                    tr {
                        td { a href={"/admin/grants/" (g.id)} { code { (g.id) } } }
                        td { code { (g.client_id) } }
                        td { (g.scope.to_string()) }
                        td.when { (when(g.created_at)) }
                        td.when { (when(g.last_used_at)) }
                        td { @if let Some(r) = g.revoked_at { "revoked " (when(r)) } @else { "live" } }
                        td { (dpop_binding(g)) }
                        td {
                            @if g.revoked_at.is_none() {
                                (post_button(&format!("/admin/grants/{}/revoke", g.id), csrf, "Revoke", true))
                            }
                        }
                    }
                }
            }
        } }))
    }
}

fn logout_everywhere_path(user: &User) -> String {
    format!("/admin/users/{}/logout-everywhere", user.id)
}

/// "Log out everywhere", to confirm: what it does and to how many grants, and the button whose
/// POST does it.
pub fn confirm_logout_everywhere(csrf: &CsrfToken, user: &User, live_grants: usize) -> Markup {
    html! {
        h1 { "Log out " (user.username) " everywhere?" }
        p {
            "This revokes every live grant of the user (" strong { (live_grants) } " now): in every app, "
            "on every server node, their refresh tokens and access tokens stop working on the next "
            "request, and each app must ask them to log in again. Their browser sessions stay."
        }
        (post_button(&logout_everywhere_path(user), csrf, "Log out everywhere", true))
        p { a href={"/admin/users/" (user.id) "/grants"} { "Cancel" } }
    }
}

/// After "log out everywhere": how many grants it revoked.
pub fn logged_out_everywhere(user: &User, revoked: usize) -> Markup {
    html! {
        h1 { (user.username) " is logged out everywhere" }
        p { "Revoked " strong { (revoked) } " grant(s). Each one's timeline records it." }
        p { a href={"/admin/users/" (user.id) "/grants"} { "Back to the grants of " (user.username) } }
    }
}

pub fn timeline(
    csrf: &CsrfToken,
    timeline: &tessera_core::operations::console::GrantTimeline,
    svg: Markup,
) -> Markup {
    let g = &timeline.grant;
    let legend = [
        ("issued", "#16a34a"),
        ("rotated / refreshed", "#2563eb"),
        ("retry_replayed", "#0891b2"),
        (
            "retry_replayed from another address",
            super::timeline::ANOTHER_ADDRESS_COLOUR,
        ),
        ("concurrent_refresh_refused", "#d97706"),
        ("reuse_detected", "#dc2626"),
        ("rotation_audit", "#ea580c"),
        ("revoked", "#7f1d1d"),
    ];
    html! {
        h1 { "Grant " code { (g.id) } }
        p {
            "User " @if let Some(u) = &timeline.user { a href={"/admin/users/" (u.id) "/grants"} { (u.username) } } @else { code { (g.user_id) } }
            " · client " @if let Some(c) = &timeline.client { a href={"/admin/clients/" (c.client_id)} { (c.name) } } @else { code { (g.client_id) } }
            " · scope " (g.scope.to_string())
            " · " (dpop_binding(g))
        }
        p {
            "Created " (when(g.created_at)) " · last used " (when(g.last_used_at)) " · "
            @match (&timeline.client, timeline.expires_at) {
                (_, Some(t)) => { "expires " (when(t)) }
                (Some(c), None) => { "no expiry under policy " (effective_policy(c)) }
                (None, None) => { "client deleted" }
            }
            " · "
            @if let Some(r) = g.revoked_at { strong { "revoked " (when(r)) } } @else { "live" }
        }
        (scroll_box(svg))
        p.legend { @for (name, colour) in legend { span { i style={"background:" (colour)} {} (name) } } }
        @if g.revoked_at.is_none() {
            (post_button(&format!("/admin/grants/{}/revoke", g.id), csrf, "Revoke grant", true))
        }
        h2 { "Events" }
        (event_table(
            &timeline.events.iter().collect::<Vec<_>>(),
            &EventNames::of(timeline.client.as_ref(), timeline.user.as_ref()),
        ))
    }
}

/// A name where the store had one, the id on hover; the id as it is otherwise (a deleted
/// client, a name not looked up).
fn named(id: &str, name: Option<&str>) -> Markup {
    html! {
        @if let Some(name) = name { span.name title=(id) { (name) } } @else { code { (id) } }
    }
}

fn event_table(events: &[&StoredEvent], names: &EventNames) -> Markup {
    scroll_box(html! {
        table.events {
            thead { tr { th { "#" } th { "When" } th { "Kind" } th { "Client" } th { "User" } th { "Grant" } th { "Detail" } th { "Source" } } }
            tbody {
                @for e in events {
                    @let ev = &e.event;
                    tr data-kind=(ev.kind.name()) {
                        td { (e.id) }
                        td.when { (when(ev.at)) }
                        td { (ev.kind.name()) }
                        td.client { @if let Some(c) = &ev.client_id { (named(c, names.client(c))) } }
                        td.user { @if let Some(u) = &ev.user_id { (named(u, names.user(u))) } }
                        td { @if let Some(g) = &ev.grant_id { a href={"/admin/grants/" (g)} { code { (g) } } } }
                        td { (ev.detail) }
                        td { (ev.source.as_deref().unwrap_or_default()) }
                    }
                }
            }
        }
    })
}

/// The events page's filters, as the query string gave them.
#[derive(Debug, Default)]
pub struct EventFilters {
    pub user: String,
    pub client: String,
    pub grant: String,
    pub kind: String,
}

pub fn events(
    filters: &EventFilters,
    events: &[StoredEvent],
    names: &EventNames,
    refresh_secs: u32,
) -> Markup {
    html! {
        h1 { "Events" }
        p.detail { "Newest first; this page reloads every " (refresh_secs) " seconds." }
        form.filters method="get" action="/admin/events" {
            div { label for="user" { "User id" } input type="text" id="user" name="user" value=(filters.user); }
            div { label for="client" { "Client id" } input type="text" id="client" name="client" value=(filters.client); }
            div { label for="grant" { "Grant id" } input type="text" id="grant" name="grant" value=(filters.grant); }
            div {
                label for="kind" { "Kind" }
                select id="kind" name="kind" {
                    option value="" { "any" }
                    @for k in EventKind::ALL {
                        option value=(k.name()) selected[filters.kind == k.name()] { (k.name()) }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
        (event_table(&events.iter().collect::<Vec<_>>(), names))
    }
}
