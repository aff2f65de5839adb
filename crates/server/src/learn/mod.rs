//! `/learn`: the refresh-token flow, one request at a time, with the server's side in view.
//!
//! The page is a client of this server like any other: a confidential playground client
//! (made at start, its secret known only to this process) whose requests go through the
//! server's own router in process, recorded both ways with secrets shortened. Beside them the
//! page shows what the server holds about the family — read through `tessera_core`, as the
//! console reads it. Each learner's client state is in this process's memory under a cookie of
//! its own (see [`session`]); every form that changes it carries that learner's CSRF token.
//!
//! Served only when the playground is on (`tessera serve --dev`, or `learn = true`): the routes
//! are not registered otherwise, so `/learn` is then any unknown path.

mod record;
mod session;
mod views;

use std::net::IpAddr;
use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tessera_core::operations::playground::{FamilyView, PlaygroundClient, PlaygroundClients};
use tessera_proto::dpop::DPOP_SCHEME;
use tessera_proto::ExposeSecret;

use crate::error::{ApiError, PageError, WebError};
use crate::extract::{source_address, Cookies, RawPageForm};
use crate::reply::{cookie_header, see_other, with_cookie};
use crate::{AppState, Routes};

use record::{send, shorten, shown_query, Exchange, Outgoing, Sent};
use session::{
    Learner, Learners, Mistake, PendingAuthorization, Step, StorageExample, Which,
    LEARNER_IDLE_MILLIS,
};

pub(crate) const PAGE: &str = "/learn";
const CALLBACK: &str = "/learn/callback";
/// A step that waits for something to expire waits this long at most: a request must be
/// answered well within the server's request timeout.
const MAX_WAIT_MILLIS: i64 = 25_000;
/// Past an expiry by this much before the step goes on, so that the server's check (at or
/// after the instant) sees it passed.
const PAST_EXPIRY_MILLIS: i64 = 250;

/// The playground: its clients and its learners' state.
#[derive(Debug)]
pub struct Playground {
    clients: PlaygroundClients,
    learners: Learners,
}

impl Playground {
    /// A playground over its clients, as `Operator::ensure_playground_clients` made them.
    pub fn new(clients: PlaygroundClients) -> Self {
        Self {
            clients,
            learners: Learners::default(),
        }
    }

    fn client(&self, which: Which) -> &PlaygroundClient {
        match which {
            Which::Main => &self.clients.main,
            Which::Expiring => &self.clients.expiring,
        }
    }
}

pub(crate) fn routes(routes: Routes) -> Routes {
    routes
        .route(PAGE, get(page))
        .route(CALLBACK, get(callback))
        .route("/learn/step", post(step))
        .route("/learn/learn.js", get(script))
}

/// The playground's one script: the countdowns. Everything else works without it.
const SCRIPT: &str = include_str!("learn.js");

async fn script() -> Response {
    let mut response = (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response();
    response.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn playground(state: &AppState) -> Result<&Playground, WebError> {
    state
        .learn
        .as_deref()
        .ok_or(WebError::Api(ApiError::NotFound))
}

fn now_millis(state: &AppState) -> i64 {
    state.authority.operator().playground_now().millis()
}

/// The learner's session cookie: only the playground reads it; `Lax` so that the browser
/// sends it when the authorization server sends it back to the callback.
fn learner_cookie(state: &AppState, id: &str) -> Option<HeaderValue> {
    let secure = state.secure_cookies();
    cookie_header(
        Cookies::learn_name(secure),
        id,
        Some((LEARNER_IDLE_MILLIS / 1000) as u64),
        if secure { "/" } else { PAGE },
        "Lax",
        secure,
    )
}

/// The learner of a request's cookie, if it is known.
fn learner_of(state: &AppState, cookies: &Cookies) -> Option<(String, Learner)> {
    let id = cookies.learn.as_ref()?.expose_secret().to_owned();
    let learner = playground(state)
        .ok()?
        .learners
        .get(&id, now_millis(state))?;
    Some((id, learner))
}

async fn page(State(state): State<AppState>, cookies: Cookies) -> Result<Response, WebError> {
    let playground = playground(&state)?;
    let (learner, new_cookie) = match learner_of(&state, &cookies) {
        Some((_, learner)) => (learner, None),
        None => {
            let operator = state.authority.operator();
            let id = operator.playground_secret();
            let learner = Learner::new(operator.playground_secret(), now_millis(&state));
            playground
                .learners
                .put(&id, learner.clone(), now_millis(&state));
            (learner, learner_cookie(&state, &id))
        }
    };
    let view = family_view(&state, &learner).await?;
    let client = state
        .authority
        .operator()
        .client(&playground.client(learner.client).client_id)
        .await
        .ok();
    let markup = views::page(&views::PageData {
        learner: &learner,
        view: view.as_ref(),
        client: client.as_ref(),
        now_millis: now_millis(&state),
    });
    Ok(with_cookie(views::response(markup), new_cookie))
}

async fn family_view(state: &AppState, learner: &Learner) -> Result<Option<FamilyView>, WebError> {
    let seen: Vec<&str> = learner.refresh_tokens.iter().map(String::as_str).collect();
    state
        .authority
        .operator()
        .playground_family(&seen)
        .await
        .map_err(|_| PageError::Unavailable.into())
}

#[derive(Debug, Deserialize)]
struct CallbackQuery {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

/// Where the authorization server sends the learner's browser back: the code is kept for the
/// next step if the `state` is the one this learner's authorization sent.
async fn callback(
    State(state): State<AppState>,
    cookies: Cookies,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
    Query(query): Query<CallbackQuery>,
    request: Request,
) -> Result<Response, WebError> {
    let playground = playground(&state)?;
    let Some((id, mut learner)) = learner_of(&state, &cookies) else {
        return Ok(see_other(PAGE));
    };
    let peer = source_address(request.extensions(), request.headers(), &state);
    let raw = raw.unwrap_or_default();
    // Only the learner's own authorization's `state` is taken: a link from elsewhere leaves
    // the authorization under way as it is.
    let matches = match (&learner.pending, &query.state) {
        (Some(p), Some(s)) => bool::from(p.state.as_bytes().ct_eq(s.as_bytes())),
        _ => false,
    };
    let back_here = format!("{CALLBACK}?{}", shown_query(&raw));
    let Some(pending) = learner.pending.take_if(|_| matches) else {
        learner.record(Step {
            kind: "callback-refused",
            title: "Back at the callback, but not from our request".into(),
            exchanges: vec![Exchange {
                request_line: format!("GET {back_here}"),
                request_headers: Vec::new(),
                request_body: None,
                status: StatusCode::SEE_OTHER,
                response_headers: vec![("location".to_owned(), PAGE.to_owned())],
                response_body: None,
                id_token_claims: None,
            }],
            outcome: Some(
                "The state parameter is not the one this browser's authorization sent: a client \
                 must refuse such a code (it could be an attacker's, planted by a forged link)."
                    .into(),
            ),
            lesson: None,
            storage: None,
        });
        playground.learners.put(&id, learner, now_millis(&state));
        return Ok(see_other(PAGE));
    };
    let arrived = Exchange {
        request_line: pending.shown_url.clone(),
        request_headers: Vec::new(),
        request_body: None,
        status: StatusCode::FOUND,
        response_headers: vec![("location".to_owned(), back_here)],
        response_body: None,
        id_token_claims: None,
    };
    if let Some(error) = &query.error {
        learner.record(Step {
            kind: "authorize",
            title: "Authorize".into(),
            exchanges: vec![arrived],
            outcome: Some(format!(
                "The server answered {error}: {}",
                query.error_description.as_deref().unwrap_or("")
            )),
            lesson: None,
            storage: None,
        });
        playground.learners.put(&id, learner, now_millis(&state));
        return Ok(see_other(PAGE));
    }
    learner.forget_tokens();
    learner.client = pending.client;
    learner.code = query.code.clone();
    learner.code_verifier = pending.code_verifier.clone();
    learner.dpop_key = pending.dpop_key.clone();
    learner.record(Step {
        kind: "authorize",
        title: "Authorize".into(),
        exchanges: vec![arrived],
        outcome: Some(format!(
            "After the login and the consent, the server sent the browser back here with a code \
             (usable once, for a few minutes) and the state this page sent. Scope asked: {}{}{}.",
            pending.scope,
            if pending.code_verifier.is_some() {
                "; with a PKCE challenge, so the exchange must show the verifier"
            } else {
                ""
            },
            if pending.dpop_key.is_some() {
                "; with dpop_jkt, so only the holder of the client's DPoP key can exchange it"
            } else {
                ""
            }
        )),
        lesson: None,
        storage: None,
    });
    let steps = Steps {
        state: &state,
        playground,
        peer,
    };
    match pending.mistake {
        Some(Mistake::NoRefreshScope) => {
            steps.exchange(&mut learner).await;
            annotate(&mut learner, Mistake::NoRefreshScope);
        }
        Some(Mistake::ExpiredRefreshToken) => {
            steps.exchange(&mut learner).await;
            let lifetime = state
                .authority
                .operator()
                .client(&playground.client(Which::Expiring).client_id)
                .await
                .ok()
                .map(|c| c.refresh_token_policy.lifetime_secs().unwrap_or(0))
                .unwrap_or(0);
            let until = now_millis(&state) + (lifetime as i64) * 1000;
            if steps
                .wait_until(until, &mut learner, "the refresh token's lifetime")
                .await
            {
                steps.refresh(&mut learner).await;
            }
            annotate(&mut learner, Mistake::ExpiredRefreshToken);
        }
        _ => {}
    }
    playground.learners.put(&id, learner, now_millis(&state));
    Ok(see_other(PAGE))
}

/// Adds a mistake's explanation to the step that shows it (the newest).
fn annotate(learner: &mut Learner, mistake: Mistake) {
    if let Some(step) = learner.steps.first_mut() {
        step.lesson = Some(views::lesson(mistake));
    }
}

/// `POST /learn/step`: one step of the flow, or one mistake, then back to the page.
async fn step(State(state): State<AppState>, request: Request) -> Result<Response, WebError> {
    let playground = playground(&state)?;
    let form = RawPageForm::read(request).await?;
    let cookies = Cookies::from_headers(&form.parts.headers, state.secure_cookies())?;
    let Some((id, mut learner)) = learner_of(&state, &cookies) else {
        return Err(PageError::Forbidden.into());
    };
    let csrf_ok = form
        .token
        .as_ref()
        .is_some_and(|t| bool::from(t.expose_secret().as_bytes().ct_eq(learner.csrf.as_bytes())));
    if !csrf_ok {
        return Err(PageError::Forbidden.into());
    }
    let peer = source_address(&form.parts.extensions, &form.parts.headers, &state);
    let steps = Steps {
        state: &state,
        playground,
        peer,
    };
    let checked = |name: &str| form.params.get(name) == Some("true");
    let response = match form.params.get("step").unwrap_or_default() {
        "authorize" => steps.authorize(
            &mut learner,
            Authorization {
                refresh: checked("refresh_scope"),
                pkce: checked("pkce"),
                openid: checked("openid"),
                dpop: checked("dpop"),
                client: Which::Main,
                mistake: None,
            },
        ),
        "exchange" => {
            steps.exchange(&mut learner).await;
            see_other(PAGE)
        }
        "api" => {
            steps.call_api(&mut learner, "api", "Call the API").await;
            see_other(PAGE)
        }
        "expire" => {
            steps.expire(&mut learner).await;
            see_other(PAGE)
        }
        "refresh" => {
            steps.refresh(&mut learner).await;
            see_other(PAGE)
        }
        "replay" => {
            steps.replay(&mut learner).await;
            see_other(PAGE)
        }
        "revoke" => {
            steps.revoke(&mut learner).await;
            see_other(PAGE)
        }
        "mistake-scope" => steps.authorize(
            &mut learner,
            Authorization {
                refresh: false,
                pkce: true,
                openid: false,
                dpop: false,
                client: Which::Main,
                mistake: Some(Mistake::NoRefreshScope),
            },
        ),
        "mistake-expired" => steps.authorize(
            &mut learner,
            Authorization {
                refresh: true,
                pkce: true,
                openid: false,
                dpop: false,
                client: Which::Expiring,
                mistake: Some(Mistake::ExpiredRefreshToken),
            },
        ),
        "mistake-storage" => {
            steps.storage(&mut learner);
            see_other(PAGE)
        }
        "mistake-keep" => {
            steps.not_keeping_the_rotated_token(&mut learner).await;
            see_other(PAGE)
        }
        "reset" => {
            learner = Learner::new(learner.csrf.clone(), now_millis(&state));
            see_other(PAGE)
        }
        _ => return Err(ApiError::NotFound.into()),
    };
    playground.learners.put(&id, learner, now_millis(&state));
    Ok(response)
}

/// What the learner asks the authorization for.
struct Authorization {
    refresh: bool,
    pkce: bool,
    openid: bool,
    /// A fresh P-256 key for the client, its thumbprint sent as `dpop_jkt`.
    dpop: bool,
    client: Which,
    mistake: Option<Mistake>,
}

/// The steps, as one learner's client takes them.
struct Steps<'a> {
    state: &'a AppState,
    playground: &'a Playground,
    peer: Option<IpAddr>,
}

impl Steps<'_> {
    fn redirect_uri(&self) -> String {
        format!("{}{CALLBACK}", self.state.authority.config().issuer)
    }

    /// Sends the learner's browser to the real authorization endpoint.
    fn authorize(&self, learner: &mut Learner, asked: Authorization) -> Response {
        let operator = self.state.authority.operator();
        let client = self.playground.client(asked.client);
        let mut scope = vec!["api", "id"];
        if asked.refresh {
            scope.push("refresh_token");
        }
        if asked.openid {
            scope.push("openid");
        }
        let scope = scope.join(" ");
        let state_value = operator.playground_secret();
        let pkce = asked.pkce.then(|| operator.playground_pkce());
        // A key that cannot be made leaves the flow unbound (Bearer), as the page then shows.
        let dpop_key = asked
            .dpop
            .then(tessera_client::DpopKey::generate)
            .and_then(Result::ok);
        let redirect_uri = self.redirect_uri();
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &client.client_id)
            .append_pair("redirect_uri", &redirect_uri)
            .append_pair("scope", &scope)
            .append_pair("state", &state_value);
        if let Some(pkce) = &pkce {
            query
                .append_pair("code_challenge", &pkce.challenge)
                .append_pair("code_challenge_method", "S256");
        }
        // RFC 9449 §10: the code is then bound to the key, and only its holder exchanges it.
        if let Some(key) = &dpop_key {
            query.append_pair("dpop_jkt", &key.thumbprint());
        }
        let query = query.finish();
        learner.pending = Some(PendingAuthorization {
            state: state_value,
            code_verifier: pkce.map(|p| p.verifier),
            scope,
            client: asked.client,
            mistake: asked.mistake,
            dpop_key,
            shown_url: format!("GET /services/oauth2/authorize?{}", shown_query(&query)),
        });
        see_other(&format!("/services/oauth2/authorize?{query}"))
    }

    /// A token-endpoint request of the learner's client, with its credentials, and a proof of
    /// its DPoP key if it has one.
    async fn token_request(
        &self,
        which: Which,
        dpop: Option<&tessera_client::DpopKey>,
        pairs: &[(&str, &str)],
    ) -> Sent {
        let client = self.playground.client(which);
        let mut form: Vec<(&str, &str)> = pairs.to_vec();
        form.push(("client_id", &client.client_id));
        form.push(("client_secret", client.secret.expose_secret()));
        send(
            self.state,
            self.peer,
            Outgoing {
                method: Method::POST,
                path: "/services/oauth2/token".into(),
                bearer: None,
                form: Some(form),
                dpop,
            },
        )
        .await
    }

    async fn access_ttl_secs(&self, which: Which) -> u64 {
        self.state
            .authority
            .operator()
            .client(&self.playground.client(which).client_id)
            .await
            .map_or(0, |c| c.access_token_ttl_secs)
    }

    /// Keeps the tokens of a successful token response.
    async fn keep_tokens(&self, learner: &mut Learner, json: &serde_json::Value) {
        learner.token_type = json["token_type"].as_str().map(str::to_owned);
        if let Some(access) = json["access_token"].as_str() {
            learner.access_token = Some(access.to_owned());
            let ttl = self.access_ttl_secs(learner.client).await;
            learner.access_expires_at_millis = Some(now_millis(self.state) + (ttl as i64) * 1000);
        }
        if let Some(refresh) = json["refresh_token"].as_str() {
            learner.keep_refresh_token(refresh);
        }
    }

    async fn exchange(&self, learner: &mut Learner) {
        let Some(code) = learner.code.take() else {
            learner.record(nothing_to_do(
                "exchange",
                "Exchange the code",
                "There is no code to exchange: authorize first (a code works once).",
            ));
            return;
        };
        let verifier = learner.code_verifier.take();
        let redirect_uri = self.redirect_uri();
        let mut pairs = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
        ];
        if let Some(verifier) = &verifier {
            pairs.push(("code_verifier", verifier));
        }
        let sent = self
            .token_request(learner.client, learner.dpop_key.as_ref(), &pairs)
            .await;
        let outcome = match (&sent.json, sent.exchange.status) {
            (Some(json), StatusCode::OK) => {
                self.keep_tokens(learner, json).await;
                if json["refresh_token"].is_string() {
                    "An access token and a refresh token: the first generation of a new token \
                     family, current on the server."
                        .to_owned()
                } else {
                    "An access token, and no refresh token: the scope did not ask for one. When \
                     the access token expires, the user must log in again."
                        .to_owned()
                }
            }
            _ => "The exchange was refused.".to_owned(),
        };
        let outcome = if learner.token_type.as_deref() == Some(DPOP_SCHEME) {
            format!(
                "{outcome} The access token is bound to the client's DPoP key (token_type DPoP): \
                 it works only with a fresh proof of that key."
            )
        } else {
            outcome
        };
        learner.record(Step {
            kind: "exchange",
            title: "Exchange the code".into(),
            exchanges: vec![sent.exchange],
            outcome: Some(outcome),
            lesson: None,
            storage: None,
        });
    }

    async fn call_api(&self, learner: &mut Learner, kind: &'static str, title: &str) {
        let Some(access) = learner.access_token.clone() else {
            learner.record(nothing_to_do(
                kind,
                title,
                "The client has no access token: authorize and exchange the code first.",
            ));
            return;
        };
        let sent = send(
            self.state,
            self.peer,
            Outgoing {
                method: Method::GET,
                path: format!(
                    "/services/data/v{}/sobjects/Note",
                    crate::data::CURRENT_API_VERSION
                ),
                bearer: Some(&access),
                form: None,
                dpop: learner.dpop_key.as_ref(),
            },
        )
        .await;
        let outcome = match sent.exchange.status {
            StatusCode::OK => "The API answered: the access token is good.".to_owned(),
            StatusCode::UNAUTHORIZED => "401: the access token no longer works (expired or \
                 revoked). A client with a refresh token refreshes now; one without sends the \
                 user to log in again."
                .to_owned(),
            other => format!("The API answered {other}."),
        };
        learner.record(Step {
            kind,
            title: title.to_owned(),
            exchanges: vec![sent.exchange],
            outcome: Some(outcome),
            lesson: None,
            storage: None,
        });
    }

    /// Waits, on this request, until `until` (the server's clock) is past: true when it is.
    /// Longer than [`MAX_WAIT_MILLIS`]: no wait, and a step that says how long is left.
    async fn wait_until(&self, until: i64, learner: &mut Learner, what: &str) -> bool {
        let left = until + PAST_EXPIRY_MILLIS - now_millis(self.state);
        if left > MAX_WAIT_MILLIS {
            learner.record(nothing_to_do(
                "wait",
                "Not yet",
                &format!(
                    "{what} ends in {} s, longer than this page waits in one request; try again \
                     closer to it (the countdown shows when).",
                    left / 1000
                ),
            ));
            return false;
        }
        if left > 0 {
            tokio::time::sleep(Duration::from_millis(left as u64)).await;
        }
        true
    }

    async fn expire(&self, learner: &mut Learner) {
        let Some(expires) = learner.access_expires_at_millis else {
            learner.record(nothing_to_do(
                "expire",
                "Let the access token expire",
                "The client has no access token yet.",
            ));
            return;
        };
        if self
            .wait_until(expires, learner, "The access token's lifetime")
            .await
        {
            self.call_api(learner, "expire", "The API after the access token expired")
                .await;
        }
    }

    async fn refresh(&self, learner: &mut Learner) {
        let Some(token) = learner.refresh_tokens.last().cloned() else {
            learner.record(nothing_to_do(
                "refresh",
                "Refresh",
                "The client has no refresh token: the authorization must ask for the \
                 refresh_token scope.",
            ));
            return;
        };
        let sent = self
            .token_request(
                learner.client,
                learner.dpop_key.as_ref(),
                &[("grant_type", "refresh_token"), ("refresh_token", &token)],
            )
            .await;
        let outcome = match (&sent.json, sent.exchange.status) {
            (Some(json), StatusCode::OK) => {
                self.keep_tokens(learner, json).await;
                learner.last_pair = pair_of(json);
                format!(
                    "A new access token and a new refresh token: generation {} is current, \
                     generation {} is rotated out (replayable only inside the retry window).",
                    learner.refresh_tokens.len(),
                    learner.refresh_tokens.len().saturating_sub(1)
                )
            }
            (_, StatusCode::BAD_REQUEST) => {
                "400 invalid_grant: this refresh token no longer works. The app cannot fix that \
                 itself: it must send the user to log in again."
                    .to_owned()
            }
            (_, status) => format!("The refresh was answered {status}."),
        };
        learner.record(Step {
            kind: "refresh",
            title: "Refresh".into(),
            exchanges: vec![sent.exchange],
            outcome: Some(outcome),
            lesson: None,
            storage: None,
        });
    }

    /// Presents the refresh token before the newest one.
    async fn replay(&self, learner: &mut Learner) {
        let count = learner.refresh_tokens.len();
        let Some(old) = count
            .checked_sub(2)
            .and_then(|i| learner.refresh_tokens.get(i))
            .cloned()
        else {
            learner.record(nothing_to_do(
                "replay",
                "Replay the previous refresh token",
                "There is no previous refresh token yet: refresh once first.",
            ));
            return;
        };
        let sent = self
            .token_request(
                learner.client,
                learner.dpop_key.as_ref(),
                &[("grant_type", "refresh_token"), ("refresh_token", &old)],
            )
            .await;
        let outcome = match (&sent.json, sent.exchange.status) {
            (Some(json), StatusCode::OK) => {
                let same = learner.last_pair.is_some() && pair_of(json) == learner.last_pair;
                if same {
                    "Inside the retry window: the server answered the same pair as the refresh \
                     it replays (same access token, same refresh token), and changed nothing. A \
                     client whose answer was lost on the way can ask again."
                        .to_owned()
                } else {
                    "Answered with a pair that is not the last refresh's.".to_owned()
                }
            }
            (_, StatusCode::BAD_REQUEST) => "400 invalid_grant: a rotated-out refresh token \
                 presented after the retry window is reuse. The server revoked the whole \
                 family: every refresh token and access token of this grant stops working."
                .to_owned(),
            (_, status) => format!("The replay was answered {status}."),
        };
        learner.record(Step {
            kind: "replay",
            title: format!("Replay refresh token generation {}", count - 1),
            exchanges: vec![sent.exchange],
            outcome: Some(outcome),
            lesson: None,
            storage: None,
        });
    }

    async fn revoke(&self, learner: &mut Learner) {
        let Some(token) = learner
            .refresh_tokens
            .last()
            .or(learner.access_token.as_ref())
            .cloned()
        else {
            learner.record(nothing_to_do(
                "revoke",
                "Revoke",
                "The client has no token to revoke.",
            ));
            return;
        };
        let sent = send(
            self.state,
            self.peer,
            Outgoing {
                method: Method::POST,
                path: "/services/oauth2/revoke".into(),
                bearer: None,
                form: Some(vec![("token", &token)]),
                dpop: None,
            },
        )
        .await;
        let outcome = if sent.exchange.status == StatusCode::OK {
            "Revoked: logging out ends the whole family on the server, not only the copy this \
             client holds."
        } else {
            "The revocation was refused."
        };
        learner.record(Step {
            kind: "revoke",
            title: "Revoke".into(),
            exchanges: vec![sent.exchange],
            outcome: Some(outcome.to_owned()),
            lesson: None,
            storage: None,
        });
    }

    fn storage(&self, learner: &mut Learner) {
        let Some(token) = learner.refresh_tokens.last().cloned() else {
            learner.record(nothing_to_do(
                "mistake-storage",
                "Storing refresh tokens insecurely",
                "The client has no refresh token to store yet: authorize and exchange first.",
            ));
            return;
        };
        let sealed = self
            .state
            .authority
            .operator()
            .playground_sealed_example(&token);
        let plain_file = format!(
            "{{\n  \"instance_url\": \"{}\",\n  \"refresh_token\": \"{}\"\n}}",
            self.state.authority.config().issuer,
            shorten(&token)
        );
        let sealed_file = format!(
            "{{\n  \"format\": \"xchacha20poly1305\",\n  \"key\": \"in the OS keyring, not here\",\n  \"sealed\": \"{}…\"\n}}",
            sealed.ciphertext.chars().take(40).collect::<String>()
        );
        learner.record(Step {
            kind: "mistake-storage",
            title: "Mistake: storing refresh tokens insecurely".into(),
            exchanges: Vec::new(),
            outcome: None,
            lesson: Some(views::lesson(Mistake::InsecureStorage)),
            storage: Some(StorageExample {
                plain_file,
                sealed_file,
            }),
        });
    }

    /// Refreshes (if the client has not yet), then waits out the retry window and presents the
    /// first refresh token again, as a client that did not keep the rotated one would.
    async fn not_keeping_the_rotated_token(&self, learner: &mut Learner) {
        if learner.refresh_tokens.is_empty() {
            learner.record(nothing_to_do(
                "mistake-keep",
                "Not keeping the rotated refresh token",
                "The client has no refresh token yet: authorize (with the refresh_token scope) \
                 and exchange first.",
            ));
            return;
        }
        if learner.refresh_tokens.len() < 2 {
            self.refresh(learner).await;
        }
        let view = family_view(self.state, learner).await.ok().flatten();
        if let Some(until) = view.and_then(|v| v.window_open_until) {
            if !self
                .wait_until(until.millis(), learner, "The retry window")
                .await
            {
                return;
            }
        }
        let first = learner.refresh_tokens.first().cloned().unwrap_or_default();
        let sent = self
            .token_request(
                learner.client,
                learner.dpop_key.as_ref(),
                &[("grant_type", "refresh_token"), ("refresh_token", &first)],
            )
            .await;
        let outcome = if sent.exchange.status == StatusCode::BAD_REQUEST {
            "400 invalid_grant: the first refresh token, presented after the retry window. \
             The server took it for a stolen copy and revoked the family."
        } else {
            "The server did not refuse it (is rotation on for the playground client?)."
        };
        learner.record(Step {
            kind: "mistake-keep",
            title: "Mistake: not keeping the rotated refresh token".into(),
            exchanges: vec![sent.exchange],
            outcome: Some(outcome.to_owned()),
            lesson: Some(views::lesson(Mistake::RotatedTokenNotKept)),
            storage: None,
        });
    }
}

/// The access and refresh token of a token response.
fn pair_of(json: &serde_json::Value) -> Option<(String, String)> {
    Some((
        json["access_token"].as_str()?.to_owned(),
        json["refresh_token"].as_str()?.to_owned(),
    ))
}

/// A step that sent nothing, and says why.
fn nothing_to_do(kind: &'static str, title: &str, why: &str) -> Step {
    Step {
        kind,
        title: title.to_owned(),
        exchanges: Vec::new(),
        outcome: Some(why.to_owned()),
        lesson: None,
        storage: None,
    }
}
