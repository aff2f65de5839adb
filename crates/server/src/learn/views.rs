//! The playground's page, as a maud template (every value escaped): the controls, the steps
//! with their requests and answers, and the server's view of the family beside them.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use tessera_core::model::Client;
use tessera_core::operations::playground::{FamilyView, GenerationState};
use tessera_core::policy::explain_effective_policy;
use tessera_core::time::{format_duration_secs, format_utc};

use super::record::{shorten, Exchange};
use super::session::{Learner, Mistake, Step};
use crate::pages::{html_response, STYLE};

/// The page's policy: its one script from this server, no inline script, styles inline.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const LEARN_STYLE: &str = "main.learn{max-width:1200px;margin:24px auto}\
.columns{display:grid;grid-template-columns:minmax(0,3fr) minmax(0,2fr);grid-template-areas:'controls server' 'timeline timeline' 'steps steps';gap:0 24px;align-items:start}\
.columns>*{min-width:0}section.controls{grid-area:controls}section.steps{grid-area:steps}aside.server{grid-area:server}section.timeline{grid-area:timeline}\
@media (max-width:800px){.columns{grid-template-columns:minmax(0,1fr);grid-template-areas:'controls' 'server' 'timeline' 'steps'}aside.server{margin-top:16px}main.learn{margin:12px auto;padding:16px}}\
h2{font-size:1.05rem;margin:20px 0 8px}h3{font-size:.95rem;margin:0 0 6px}\
.controls form{display:inline-block;margin:0 6px 6px 0}.controls button{margin:0;padding:8px 12px;font-size:.9rem}\
.controls fieldset{border:1px solid #e5e7eb;border-radius:8px;padding:8px 12px;margin:0 0 8px}\
.controls label{display:inline-block;margin:4px 12px 4px 0}.mistakes li{margin:6px 0}.mistakes form{display:inline}.mistakes button{margin:0 8px 0 0;padding:6px 10px;font-size:.85rem;background:#b45309;border-color:#92400e}\
article.step{border:1px solid #e5e7eb;border-radius:8px;padding:12px;margin:0 0 12px;background:#fff}\
article.step.latest{border-color:#2563eb}.exchange{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:8px;margin:8px 0}\
@media (max-width:800px){.exchange{grid-template-columns:minmax(0,1fr)}}\
pre{margin:0;background:#0f172a;color:#e2e8f0;padding:8px;border-radius:6px;font-size:.75rem;white-space:pre-wrap;overflow-wrap:anywhere;max-width:100%;box-sizing:border-box}\
.label{font-size:.7rem;text-transform:uppercase;letter-spacing:.06em;color:#6b7280;margin:4px 0}\
.outcome{color:#111827}.lesson{background:#fffbeb;border-left:4px solid #d97706;padding:8px 12px;color:#374151}\
.server{background:#f8fafc;border:1px solid #e5e7eb;border-radius:8px;padding:12px}\
table{border-collapse:collapse;width:100%;font-size:.85rem}th,td{text-align:left;padding:4px 6px;border-bottom:1px solid #e5e7eb}table.generations th{overflow-wrap:normal}@media (min-width:801px){th{white-space:nowrap}}\
.state-current{color:#15803d;font-weight:600}.state-retry-window{color:#0e7490;font-weight:600}.state-rotated-out{color:#6b7280}.state-revoked{color:#b91c1c;font-weight:600}\
.scroll{overflow-x:auto;max-width:100%}svg.timeline{background:#fff;border-radius:8px;display:block;min-width:720px;max-width:900px}\
.badge{display:inline-block;padding:2px 8px;border-radius:999px;font-size:.8rem}.badge.open{background:#cffafe;color:#155e75}.badge.closed{background:#e5e7eb;color:#374151}.badge.revoked{background:#fee2e2;color:#991b1b}.badge.live{background:#dcfce7;color:#166534}";

/// What the page shows.
pub(super) struct PageData<'a> {
    pub learner: &'a Learner,
    pub view: Option<&'a FamilyView>,
    /// The playground client the learner's tokens belong to, as it is now.
    pub client: Option<&'a Client>,
    pub now_millis: i64,
}

/// The page with the playground's headers: those of every page here, and a policy that lets
/// the page load its script.
pub(super) fn response(markup: Markup) -> Response {
    let mut response = html_response(StatusCode::OK, markup.into_string(), None);
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}

/// The explanation of a mistake, one paragraph.
pub(super) fn lesson(mistake: Mistake) -> &'static str {
    match mistake {
        Mistake::NoRefreshScope => {
            "The authorization asked for no refresh_token (or offline_access) scope, so the token \
             response has an access token and nothing to renew it with. Nothing fails yet; but \
             when the access token expires, the only way to a new one is to send the user \
             through the login again. An app that should keep working must ask for the scope."
        }
        Mistake::ExpiredRefreshToken => {
            "This client's refresh-token policy is a fixed lifetime of a few seconds from the \
             login (specific_lifetime), and the refresh came after it: 400 invalid_grant. No \
             retry helps; a token that expired by policy is gone. The app must notice \
             invalid_grant and send the user to log in again, instead of retrying or showing \
             an error page."
        }
        Mistake::InsecureStorage => {
            "A refresh token is a long-lived password for the user's account at this app. In a \
             plain file or in localStorage it is there to read for anything that reads the disk \
             or runs script on the page: a copied file, a backup, a malicious extension. The \
             thief refreshes from anywhere until the family is revoked. A proper store keeps \
             only ciphertext, with the key apart (the OS keyring): the copied file alone is \
             worth nothing."
        }
        Mistake::RotatedTokenNotKept => {
            "With rotation, every refresh answers a new refresh token and the old one is \
             rotated out. A client that keeps presenting the first one works only inside the \
             retry window; after it, the server cannot tell the client from a thief holding an \
             old copy, so it treats the replay as reuse and revokes the whole family: the user \
             is logged out everywhere this grant was used. Always store the refresh token of \
             the latest answer."
        }
    }
}

fn csrf_field(learner: &Learner) -> Markup {
    html! { input type="hidden" name="csrf_token" value=(learner.csrf); }
}

/// A button that POSTs one step.
fn step_button(learner: &Learner, step: &str, label: &str) -> Markup {
    html! {
        form method="post" action="/learn/step" {
            (csrf_field(learner))
            input type="hidden" name="step" value=(step);
            button type="submit" data-button=(step) { (label) }
        }
    }
}

fn countdown(until_millis: i64, now_millis: i64) -> Markup {
    let left = (until_millis - now_millis).max(0).div_euclid(1000);
    html! {
        span.countdown data-until=(until_millis) {
            @if left > 0 { (left) " s left" } @else { "passed" }
        }
    }
}

pub(super) fn page(data: &PageData<'_>) -> Markup {
    let learner = data.learner;
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                title { "Refresh tokens, step by step · Tessera" }
                style { (PreEscaped(STYLE)) (PreEscaped(LEARN_STYLE)) }
                script src="/learn/learn.js" defer {}
            }
            body data-now=(data.now_millis) {
                main.learn {
                    div.brand { "Tessera playground" }
                    h1 { "Refresh tokens, step by step — with the server's side in view" }
                    p {
                        "Each button sends one real request of a client app to this server and shows it, \
                         with its answer, secrets cut to their last characters. Beside it is what the \
                         server holds about the token family. Log in as the demo user when asked."
                    }
                    // On a phone the server's view comes between the buttons and the steps, so
                    // that a step's effect on it is seen without scrolling past every step.
                    div.columns {
                        (controls(learner, data.now_millis))
                        aside.server id="server-view" {
                            (server_view(data))
                        }
                        // Across the page: the drawing is legible only 720 px wide or more (it
                        // scrolls sideways in its box on a phone, as in the console).
                        @if let Some(view) = data.view {
                            section.timeline {
                                h2 { "The grant's timeline, as the admin console draws it" }
                                div.scroll { (crate::console::timeline::svg(&view.timeline)) }
                            }
                        }
                        section.steps {
                            h2 { "What was sent" }
                            @if learner.steps.is_empty() {
                                p { "Nothing yet: start with Authorize." }
                            }
                            @for (n, step) in learner.steps.iter().enumerate() {
                                (step_view(step, n == 0))
                            }
                        }
                    }
                }
            }
        }
    }
}

fn controls(learner: &Learner, now_millis: i64) -> Markup {
    html! {
        section.controls {
            h2 { "The flow" }
            form method="post" action="/learn/step" {
                (csrf_field(learner))
                input type="hidden" name="step" value="authorize";
                fieldset {
                    label { input type="checkbox" name="refresh_scope" value="true" checked; " refresh_token scope" }
                    label { input type="checkbox" name="pkce" value="true" checked; " PKCE (S256)" }
                    label { input type="checkbox" name="openid" value="true"; " openid (ID token)" }
                    label { input type="checkbox" name="dpop" value="true"; " DPoP (bind the tokens to a key)" }
                    br;
                    button type="submit" data-button="authorize" { "1. Authorize" }
                }
            }
            (step_button(learner, "exchange", "2. Exchange the code"))
            (step_button(learner, "api", "3. Call the API"))
            (step_button(learner, "expire", "4. Let the access token expire"))
            (step_button(learner, "refresh", "5. Refresh"))
            (step_button(learner, "replay", "6. Replay the previous refresh token"))
            (step_button(learner, "revoke", "7. Revoke"))
            h2 { "Common mistakes, one click each" }
            ul.mistakes {
                li { (step_button(learner, "mistake-scope", "No refresh scope")) "authorize without refresh_token: no refresh token comes back." }
                li { (step_button(learner, "mistake-expired", "Expired refresh token")) "a client whose refresh tokens live seconds; refresh after that." }
                li { (step_button(learner, "mistake-storage", "Insecure storage")) "what a plain file holds, and what a proper store holds." }
                li { (step_button(learner, "mistake-keep", "Rotated token not kept")) "replay the first refresh token after the retry window." }
            }
            h2 { "Your client holds" }
            table.client-state {
                tr { th { "Code" } td { @if let Some(code) = &learner.code { code { (shorten(code)) } } @else { "—" } } }
                tr {
                    th { "DPoP key" }
                    td data-client-key=[learner.dpop_key.as_ref().map(|k| k.thumbprint())] {
                        @if let Some(key) = &learner.dpop_key {
                            "P-256, thumbprint " code { (key.thumbprint()) }
                            " (the private key never leaves the client)"
                        } @else { "— (Bearer tokens)" }
                    }
                }
                tr {
                    th { "Access token" }
                    td {
                        @if let Some(token) = &learner.access_token {
                            code { (shorten(token)) }
                            @if let Some(kind) = &learner.token_type { " (" (kind) ")" }
                            @if let Some(at) = learner.access_expires_at_millis {
                                " expires " (format_utc(at)) " (" (countdown(at, now_millis)) ")"
                            }
                        } @else { "—" }
                    }
                }
                tr {
                    th { "Refresh tokens" }
                    td {
                        @if learner.refresh_tokens.is_empty() { "—" }
                        @for (n, token) in learner.refresh_tokens.iter().enumerate() {
                            div { "#" (n + 1) " " code { (shorten(token)) } }
                        }
                    }
                }
            }
            (step_button(learner, "reset", "Start over"))
        }
    }
}

fn exchange_view(exchange: &Exchange) -> Markup {
    let mut request = exchange.request_line.clone();
    for (name, value) in &exchange.request_headers {
        request.push_str(&format!("\n{name}: {value}"));
    }
    if let Some(body) = &exchange.request_body {
        request.push_str(&format!("\n\n{body}"));
    }
    let mut response = format!(
        "HTTP/1.1 {} {}",
        exchange.status.as_u16(),
        exchange.status.canonical_reason().unwrap_or("")
    );
    for (name, value) in &exchange.response_headers {
        response.push_str(&format!("\n{name}: {value}"));
    }
    if let Some(body) = &exchange.response_body {
        response.push_str(&format!("\n\n{body}"));
    }
    html! {
        div.exchange data-status=(exchange.status.as_u16()) {
            div { div.label { "Request" } pre.request { (request) } }
            div { div.label { "Response" } pre.response { (response) } }
        }
        @if let Some(claims) = &exchange.id_token_claims {
            div.label { "The ID token's claims" }
            pre.claims { (claims) }
        }
    }
}

fn step_view(step: &Step, latest: bool) -> Markup {
    html! {
        article.step.latest[latest] data-step=(step.kind) {
            h3 { (step.title) }
            @if let Some(outcome) = &step.outcome { p.outcome { (outcome) } }
            @for exchange in &step.exchanges { (exchange_view(exchange)) }
            @if let Some(storage) = &step.storage {
                div.exchange {
                    div { div.label { "tokens.json, a plain file" } pre.plain { (storage.plain_file) } }
                    div { div.label { "tokens.sealed, a proper store" } pre.sealed { (storage.sealed_file) } }
                }
            }
            @if let Some(lesson) = step.lesson { p.lesson { (lesson) } }
        }
    }
}

fn server_view(data: &PageData<'_>) -> Markup {
    html! {
        h2 { "The server's view" }
        @if let Some(client) = data.client {
            p.detail {
                "Client " strong { (client.name) } ": access tokens live "
                (format_duration_secs(client.access_token_ttl_secs)) ", retry window "
                (format_duration_secs(client.refresh_retry_window_secs)) ", rotation "
                @if client.rotate_refresh_tokens { "on" } @else { "off" } ", refresh-token policy "
                (explain_effective_policy(client.refresh_token_policy, client.controls.idle_cap_secs)) "."
            }
        }
        @match data.view {
            None => p { "No token family yet: the server holds one once a code is exchanged with the refresh_token scope." }
            Some(view) => (family(view, data.learner, data.now_millis)),
        }
    }
}

/// One DPoP binding the server holds: the key's thumbprint, or why there is none.
fn binding(what: &str, kind: &str, jkt: Option<&str>, unbound_why: &str) -> Markup {
    html! {
        p data-binding=(kind) data-jkt=(jkt.unwrap_or_default()) {
            "DPoP, " (what) ": "
            @if let Some(jkt) = jkt {
                span.badge.open { "bound" } " to key " code { (jkt) }
            } @else {
                span.badge.closed { "not bound" } " (" (unbound_why) ")"
            }
        }
    }
}

/// Which key the family's tokens are bound to, as the server holds it, and why.
fn dpop_binding(view: &FamilyView, learner: &Learner) -> Markup {
    html! {
        div.dpop-binding {
            (binding(
                "refresh tokens",
                "grant",
                view.grant_jkt.as_deref(),
                "a confidential client: its client authentication binds them",
            ))
            (binding(
                "the last refresh's access token",
                "rotation",
                view.rotated_jkt.as_deref(),
                "no refresh yet, or a refresh without a proof",
            ))
            @if learner.dpop_key.is_some() {
                p.detail {
                    "This playground's client is confidential. Its refresh token is not bound to \
                     the key: its client authentication (the client secret) already binds it to \
                     the client. Each access token is bound to the key of the proof that came \
                     with the request that issued it (token_type DPoP): the API takes it only as \
                     Authorization: DPoP with a fresh proof of that key, never as Bearer. A \
                     public client, with no secret, would have its whole family of refresh tokens \
                     bound to the key its code exchange proved, and every refresh would have to \
                     prove it."
                }
            }
        }
    }
}

fn family(view: &FamilyView, learner: &Learner, now_millis: i64) -> Markup {
    let grant = &view.timeline.grant;
    html! {
        p {
            "Grant " code { (grant.id) } " — "
            @if let Some(at) = view.revoked_at {
                span.badge.revoked data-family="revoked" { "family revoked" } " at " (format_utc(at.millis()))
            } @else {
                span.badge.live data-family="live" { "family live" }
            }
        }
        p {
            "Retry window: "
            @if let Some(until) = view.window_open_until {
                span.badge.open data-window="open" { "open" } " until " (format_utc(until.millis()))
                " (" (countdown(until.millis(), now_millis)) ")"
            } @else {
                span.badge.closed data-window="closed" { "closed" }
            }
            " — a rotated-out token replayed inside it gets the same pair back; after it, replay is reuse."
        }
        (dpop_binding(view, learner))
        div.scroll { table.generations {
            tr { th { "Generation" } th { "Refresh token" } th { "On the server" } }
            @for (n, (token, state)) in learner.refresh_tokens.iter().zip(&view.generations).enumerate() {
                tr data-generation=(n + 1) data-state=(state.name()) {
                    td { "#" (n + 1) }
                    td { code { (shorten(token)) } }
                    td class={"state-" (state.name())} { (describe(*state)) }
                }
            }
        } }
        p.detail {
            "The server stores only SHA-256 hashes: the current token's and the one it replaced. \
             Older generations are not kept at all, which is why presenting one is reuse."
        }
    }
}

fn describe(state: GenerationState) -> Markup {
    match state {
        GenerationState::Current => html! { "current" },
        GenerationState::InRetryWindow { until } => html! {
            "rotated out, replayable until " (format_utc(until.millis()))
        },
        GenerationState::RotatedOut => html! { "rotated out" },
        GenerationState::Revoked => html! { "revoked" },
    }
}
