//! `/admin`: the admin console. Handlers are adapters: the [`Admin`] extractor finds the
//! administrator of the console session (or sends the browser to the console's login),
//! [`AdminForm`] checks every POST's CSRF token against that session, and one call goes into
//! `tessera_core`, where a `ConsoleActor` makes each change and audits it with the
//! administrator's user id.
//!
//! No console state lives in this process: the session is a signed cookie and every page reads
//! the store, so any node serves any request.

pub(crate) mod timeline;
mod views;

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use maud::Markup;
use serde::Deserialize;
use tessera_core::identity::login::BrowserSession;
use tessera_core::model::{DpopMode, EventKind, RotationMode, SigningAlg, User};
use tessera_core::operations::admin::{AdminError, ClientSettings};
use tessera_core::operations::console::{ConsoleLoginError, ADMIN_SESSION_TTL_SECS};
use tessera_core::operations::revocations::AdminRevokeError;
use tessera_core::store::EventFilter;
use tessera_core::time::parse_duration_secs;
use tessera_proto::{CsrfToken, ExposeSecret, Password};

use crate::authorize::csrf_cookie;
use crate::error::{PageError, WebError};
use crate::extract::{Cookies, LoginForm, RawPageForm};
use crate::pages::LoginNotice;
use crate::reply::{cookie_header, see_other, with_cookie};
use crate::AppState;
use crate::Routes;

use views::{document, EventFilters};

/// How often the events page reloads itself.
const EVENTS_REFRESH_SECS: u32 = 5;
/// Most events the events page lists.
const EVENTS_SHOWN: u32 = 200;
const LOGIN: &str = "/admin/login";

pub(crate) fn routes(routes: Routes) -> Routes {
    routes
        .route("/admin", get(home))
        .route("/admin/", get(home))
        .route(LOGIN, get(login_page).post(login))
        .route("/admin/logout", post(logout))
        .route("/admin/clients", get(clients).post(create_client))
        .route(
            "/admin/clients/{client_id}",
            get(client).post(update_client),
        )
        .route(
            "/admin/clients/{client_id}/rotate-secret",
            post(rotate_secret),
        )
        .route("/admin/clients/{client_id}/delete", post(delete_client))
        .route("/admin/users", get(users))
        .route(
            "/admin/users/{user_id}/{action}",
            post(disable_or_enable_user),
        )
        .route("/admin/users/{user_id}/grants", get(grants))
        .route(
            "/admin/users/{user_id}/logout-everywhere",
            get(confirm_logout_everywhere).post(logout_everywhere),
        )
        .route("/admin/grants/{grant_id}", get(grant_timeline))
        .route("/admin/grants/{grant_id}/revoke", post(revoke_grant))
        .route("/admin/events", get(events))
}

/// The administrator of a request's console session. Without one, the browser is sent to the
/// console's login; the session is checked against the store on every request, so a logout,
/// a revoked role or a disabled account ends it at once.
#[derive(Debug)]
pub struct Admin {
    session: BrowserSession,
}

impl Admin {
    async fn of(state: &AppState, parts: &Parts) -> Result<Self, Response> {
        let cookies = Cookies::from_headers(&parts.headers, state.secure_cookies())
            .map_err(|error| WebError::from(error).into_response())?;
        match state
            .authority
            .operator()
            .admin_session(cookies.admin_session.as_ref())
            .await
        {
            Ok(Some(session)) => Ok(Self { session }),
            Ok(None) => Err(see_other(LOGIN)),
            Err(_) => Err(WebError::from(PageError::Unavailable).into_response()),
        }
    }

    fn user(&self) -> &User {
        &self.session.user
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Self::of(state, parts).await
    }
}

/// A form POSTed by a console page: the administrator of the session it came with, and a CSRF
/// token that must be the one bound to that session (a token minted for another browser, or
/// for a session-less page, is refused).
#[derive(Debug)]
pub struct AdminForm {
    admin: Admin,
    params: tessera_proto::Params,
    source: tessera_core::Source,
}

impl FromRequest<AppState> for AdminForm {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let form = RawPageForm::read(request)
            .await
            .map_err(IntoResponse::into_response)?;
        let admin = Admin::of(state, &form.parts).await?;
        if !state
            .authority
            .session_csrf_valid(&admin.session, form.token.as_ref())
        {
            return Err(WebError::from(PageError::Forbidden).into_response());
        }
        let source = form.source(state);
        Ok(Self {
            admin,
            params: form.params,
            source,
        })
    }
}

impl Admin {
    /// A page of the console, with the CSRF token its forms carry.
    fn page(
        &self,
        state: &AppState,
        title: &str,
        body: impl FnOnce(&CsrfToken) -> Markup,
    ) -> Response {
        self.page_with(state, StatusCode::OK, title, None, body)
    }

    fn page_with(
        &self,
        state: &AppState,
        status: StatusCode,
        title: &str,
        refresh_secs: Option<u32>,
        body: impl FnOnce(&CsrfToken) -> Markup,
    ) -> Response {
        let csrf_token = state.authority.session_csrf(&self.session);
        let markup = body(&csrf_token);
        document(status, title, Some(&csrf_token), refresh_secs, markup, None)
    }
}

fn admin_session_cookie(state: &AppState, value: &str, max_age: u64) -> Option<HeaderValue> {
    // No other site may make the browser send it (`Strict`). Only the console needs it, so
    // over plain http it is kept to `/admin`; a `__Host-` cookie (https) must have `Path=/`.
    let secure = state.secure_cookies();
    cookie_header(
        Cookies::admin_session_name(secure),
        value,
        Some(max_age),
        if secure { "/" } else { "/admin" },
        "Strict",
        secure,
    )
}

fn login_response(
    state: &AppState,
    cookies: &Cookies,
    username: &str,
    notice: LoginNotice,
) -> Response {
    let csrf = state.authority.csrf(cookies.csrf.as_ref());
    let mut response = document(
        notice.status(),
        "Log in",
        None,
        None,
        views::login(&csrf.token, username, notice),
        csrf_cookie(state, csrf.new_cookie),
    );
    if let Some(secs) = notice.retry_after() {
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

async fn home(_admin: Admin) -> Response {
    see_other("/admin/clients")
}

async fn login_page(State(state): State<AppState>, cookies: Cookies) -> Response {
    login_response(&state, &cookies, "", LoginNotice::None)
}

async fn login(State(state): State<AppState>, form: LoginForm) -> Result<Response, WebError> {
    let username = form.params.get("username").unwrap_or_default();
    let password = Password::new(form.params.get("password").unwrap_or_default());
    let refused = |notice| Ok(login_response(&state, &form.cookies, username, notice));
    match state
        .authority
        .operator()
        .console_login(username, password, &form.source)
        .await
    {
        Ok(admin) => {
            let session = state.authority.operator().new_admin_session(&admin);
            let cookie =
                admin_session_cookie(&state, session.expose_secret(), ADMIN_SESSION_TTL_SECS);
            Ok(with_cookie(see_other("/admin/clients"), cookie))
        }
        Err(ConsoleLoginError::NotAdmin) => Ok(document(
            StatusCode::FORBIDDEN,
            "Not an administrator",
            None,
            None,
            views::not_admin(),
            None,
        )),
        Err(ConsoleLoginError::Login(error)) => refused(LoginNotice::of_refusal(error)?),
    }
}

/// Ends the administrator's browser sessions on the server (a captured copy of the cookie
/// stops working too), then clears the cookie here.
async fn logout(State(state): State<AppState>, form: AdminForm) -> Result<Response, WebError> {
    state
        .authority
        .operator()
        .console_logout(&form.admin.session, &form.source)
        .await
        .map_err(store_failure)?;
    Ok(with_cookie(
        see_other(LOGIN),
        admin_session_cookie(&state, "", 0),
    ))
}

/// A failure of an admin operation: the store's is a 503 page, anything else is shown.
fn admin_failure(error: AdminError) -> Result<String, WebError> {
    match error {
        AdminError::Store(_) => Err(PageError::Unavailable.into()),
        other => Ok(other.to_string()),
    }
}

fn store_failure<E>(_: E) -> WebError {
    PageError::Unavailable.into()
}

async fn clients_page(
    state: &AppState,
    admin: &Admin,
    error: Option<&str>,
) -> Result<Response, WebError> {
    let clients = state
        .authority
        .operator()
        .list_clients()
        .await
        .map_err(store_failure)?;
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(admin.page_with(state, status, "Clients", None, |csrf| {
        views::clients(
            csrf,
            &clients,
            &state.authority.config().client_defaults.controls(),
            error,
        )
    }))
}

async fn clients(State(state): State<AppState>, admin: Admin) -> Result<Response, WebError> {
    clients_page(&state, &admin, None).await
}

/// The client form's settings, as `tessera admin client create/update` takes them.
fn client_settings(form: &AdminForm) -> Result<ClientSettings, String> {
    let text = |name: &str| {
        form.params
            .get(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let checked = |name: &str| form.params.get(name) == Some("true");
    let duration = |name: &str, label: &str| -> Result<Option<u64>, String> {
        text(name)
            .map(|v| {
                parse_duration_secs(&v).ok_or_else(|| {
                    format!("{label} {v:?} is not a duration like 90s, 15m, 2h or 30d")
                })
            })
            .transpose()
    };
    let lines = |name: &str| -> Vec<String> {
        form.params
            .get(name)
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    };
    // The form's select names the three modes; a form without it (older pages, scripts) may
    // still send the rotation checkbox, which leaves audit mode as it is unless rotation goes off.
    let (rotate_refresh_tokens, rotation_audit) = match text("rotation") {
        Some(name) => {
            let mode = RotationMode::from_name(&name)
                .ok_or_else(|| format!("rotation {name:?} is not off, on or audit"))?;
            (
                Some(mode != RotationMode::Off),
                Some(mode == RotationMode::Audit),
            )
        }
        None => (Some(checked("rotate_refresh_tokens")), None),
    };
    Ok(ClientSettings {
        name: text("name"),
        redirect_uris: Some(lines("redirect_uris")),
        scopes: text("scopes"),
        refresh_token_policy: text("refresh_token_policy")
            .map(|p| {
                p.parse()
                    .map_err(|e: tessera_core::policy::PolicyParseError| e.to_string())
            })
            .transpose()?,
        access_token_ttl_secs: duration("access_token_ttl", "access-token lifetime")?,
        rotate_refresh_tokens,
        rotation_audit,
        allow_user_agent_flow: Some(checked("allow_user_agent_flow")),
        refresh_retry_window_secs: duration("refresh_retry_window", "retry window")?,
        id_token_validity_secs: duration("id_token_validity", "ID-token validity")?,
        id_token_audiences: Some(lines("id_token_audiences")),
        id_token_standard_claims: Some(checked("id_token_standard_claims")),
        echo_nonce_on_refresh: Some(checked("echo_nonce_on_refresh")),
        id_token_alg: text("id_token_alg")
            .map(|alg| {
                SigningAlg::from_name(&alg)
                    .ok_or_else(|| format!("ID-token algorithm {alg:?} is not RS256 or ES256"))
            })
            .transpose()?,
        jwt_access_tokens: Some(checked("jwt_access_tokens")),
        dpop: text("dpop")
            .map(|mode| mode.parse::<DpopMode>())
            .transpose()?,
        dpop_require_nonce: Some(checked("dpop_require_nonce")),
        // Never `Some(false)`: PKCE required cannot be turned off, and the form shows it as a
        // disabled box once set, which a browser does not send.
        pkce_required: checked("pkce_required").then_some(true),
        rotation_required: Some(checked("rotation_required")),
        // Empty: no cap.
        idle_cap_secs: Some(duration("idle_cap", "idle-limit cap")?),
        blocked: Some(checked("blocked")),
        // One range per line; an empty box (which arrives as no field): no restriction. Checked
        // by the operator, which says why.
        ip_allowlist: Some(
            form.params
                .get("ip_allowlist")
                .unwrap_or_default()
                .to_owned(),
        ),
    })
}

async fn create_client(
    State(state): State<AppState>,
    form: AdminForm,
) -> Result<Response, WebError> {
    let admin = &form.admin;
    let mut settings = match client_settings(&form) {
        Ok(settings) => settings,
        Err(error) => return clients_page(&state, admin, Some(&error)).await,
    };
    // The new-client form's PKCE box is never disabled: not sent, it was unticked, which must
    // override a configured default rather than fall back to it.
    settings.pkce_required.get_or_insert(false);
    let public = form.params.get("public") == Some("true");
    let actor = state
        .authority
        .operator()
        .acting_as(admin.user(), &form.source);
    let (client, secret) = match actor.create_client(public, &settings).await {
        Ok(created) => created,
        Err(error) => return clients_page(&state, admin, Some(&admin_failure(error)?)).await,
    };
    Ok(match secret {
        Some(secret) => admin.page(&state, "Client created", |_| {
            views::secret_shown(&client, secret.expose_secret(), "Client created")
        }),
        None => see_other(&format!("/admin/clients/{}", client.client_id)),
    })
}

async fn client_page(
    state: &AppState,
    admin: &Admin,
    client_id: &str,
    error: Option<&str>,
) -> Result<Response, WebError> {
    let client = match state.authority.operator().client(client_id).await {
        Ok(client) => client,
        Err(AdminError::NotFound(_)) => return Ok(not_found(state, admin, "No such client.")),
        Err(_) => return Err(PageError::Unavailable.into()),
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let audit = state
        .authority
        .operator()
        .rotation_audit_summary(client_id)
        .await
        .map_err(|_| PageError::Unavailable)?;
    Ok(admin.page_with(state, status, &client.name, None, |csrf| {
        views::client(csrf, &client, &audit, error)
    }))
}

fn not_found(state: &AppState, admin: &Admin, text: &str) -> Response {
    admin.page_with(state, StatusCode::NOT_FOUND, "Not found", None, |_| {
        views::message("Not found", text)
    })
}

async fn client(
    State(state): State<AppState>,
    admin: Admin,
    Path(client_id): Path<String>,
) -> Result<Response, WebError> {
    client_page(&state, &admin, &client_id, None).await
}

async fn update_client(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    form: AdminForm,
) -> Result<Response, WebError> {
    let admin = &form.admin;
    let settings = match client_settings(&form) {
        Ok(settings) => settings,
        Err(error) => return client_page(&state, admin, &client_id, Some(&error)).await,
    };
    let actor = state
        .authority
        .operator()
        .acting_as(admin.user(), &form.source);
    if let Err(error) = actor.update_client(&client_id, &settings).await {
        let error = admin_failure(error)?;
        return client_page(&state, admin, &client_id, Some(&error)).await;
    }
    Ok(see_other(&format!("/admin/clients/{client_id}")))
}

async fn rotate_secret(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    form: AdminForm,
) -> Result<Response, WebError> {
    let admin = &form.admin;
    let revoke_tokens = form.params.get("revoke_tokens") == Some("true");
    let actor = state
        .authority
        .operator()
        .acting_as(admin.user(), &form.source);
    let (client, secret) = match actor.rotate_client_secret(&client_id, revoke_tokens).await {
        Ok(rotated) => rotated,
        Err(error) => {
            let error = admin_failure(error)?;
            return client_page(&state, admin, &client_id, Some(&error)).await;
        }
    };
    Ok(admin.page(&state, "Secret rotated", |_| {
        views::secret_shown(&client, secret.expose_secret(), "Secret rotated")
    }))
}

async fn delete_client(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    form: AdminForm,
) -> Result<Response, WebError> {
    let admin = &form.admin;
    let actor = state
        .authority
        .operator()
        .acting_as(admin.user(), &form.source);
    if let Err(error) = actor.delete_client(&client_id).await {
        let error = admin_failure(error)?;
        return clients_page(&state, admin, Some(&error)).await;
    }
    Ok(see_other("/admin/clients"))
}

#[derive(Debug, Deserialize)]
struct UserSearch {
    #[serde(default)]
    q: String,
}

async fn users(
    State(state): State<AppState>,
    admin: Admin,
    Query(search): Query<UserSearch>,
) -> Result<Response, WebError> {
    let needle = search.q.trim().to_lowercase();
    let users: Vec<User> = state
        .authority
        .operator()
        .list_users()
        .await
        .map_err(store_failure)?
        .into_iter()
        .filter(|u| u.username.to_lowercase().contains(&needle))
        .collect();
    Ok(admin.page(&state, "Users", |csrf| {
        views::users(csrf, &users, &search.q)
    }))
}

/// `POST /admin/users/{user_id}/disable` and `…/enable`.
async fn disable_or_enable_user(
    State(state): State<AppState>,
    Path((user_id, action)): Path<(String, String)>,
    form: AdminForm,
) -> Result<Response, WebError> {
    let admin = &form.admin;
    let disabled = match action.as_str() {
        "disable" => true,
        "enable" => false,
        _ => return Ok(not_found(&state, admin, "No such action.")),
    };
    let actor = state
        .authority
        .operator()
        .acting_as(admin.user(), &form.source);
    match actor.set_user_disabled(&user_id, disabled).await {
        Ok(_) => Ok(see_other("/admin/users")),
        Err(AdminError::NotFound(_)) => Ok(not_found(&state, admin, "No such user.")),
        Err(_) => Err(PageError::Unavailable.into()),
    }
}

async fn grants(
    State(state): State<AppState>,
    admin: Admin,
    Path(user_id): Path<String>,
) -> Result<Response, WebError> {
    let Some(user) = state
        .authority
        .operator()
        .user_by_id(&user_id)
        .await
        .map_err(store_failure)?
    else {
        return Ok(not_found(&state, &admin, "No such user."));
    };
    let grants = state
        .authority
        .operator()
        .grants_of_user(&user.id)
        .await
        .map_err(store_failure)?;
    Ok(admin.page(&state, "Grants", |csrf| views::grants(csrf, &user, &grants)))
}

/// `GET /admin/users/{user_id}/logout-everywhere`: the page that asks to confirm.
async fn confirm_logout_everywhere(
    State(state): State<AppState>,
    admin: Admin,
    Path(user_id): Path<String>,
) -> Result<Response, WebError> {
    let operator = state.authority.operator();
    let Some(user) = operator.user_by_id(&user_id).await.map_err(store_failure)? else {
        return Ok(not_found(&state, &admin, "No such user."));
    };
    let live = operator
        .grants_of_user(&user.id)
        .await
        .map_err(store_failure)?
        .iter()
        .filter(|g| g.revoked_at.is_none())
        .count();
    Ok(admin.page(&state, "Log out everywhere", |csrf| {
        views::confirm_logout_everywhere(csrf, &user, live)
    }))
}

/// `POST /admin/users/{user_id}/logout-everywhere`: every live grant of the user revoked, the
/// administrator recorded as who did it.
async fn logout_everywhere(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    form: AdminForm,
) -> Result<Response, WebError> {
    let admin = &form.admin;
    let actor = state
        .authority
        .operator()
        .acting_as(admin.user(), &form.source);
    match actor.log_out_everywhere(&user_id).await {
        Ok((user, revoked)) => Ok(admin.page(&state, "Logged out everywhere", |_| {
            views::logged_out_everywhere(&user, revoked)
        })),
        Err(AdminError::NotFound(_)) => Ok(not_found(&state, admin, "No such user.")),
        Err(_) => Err(PageError::Unavailable.into()),
    }
}

async fn grant_timeline(
    State(state): State<AppState>,
    admin: Admin,
    Path(grant_id): Path<String>,
) -> Result<Response, WebError> {
    let Some(timeline) = state
        .authority
        .operator()
        .grant_timeline(&grant_id)
        .await
        .map_err(store_failure)?
    else {
        return Ok(not_found(&state, &admin, "No such grant."));
    };
    let svg = timeline::svg(&timeline);
    Ok(admin.page(&state, "Grant timeline", |csrf| {
        views::timeline(csrf, &timeline, svg)
    }))
}

async fn revoke_grant(
    State(state): State<AppState>,
    Path(grant_id): Path<String>,
    form: AdminForm,
) -> Result<Response, WebError> {
    let admin = &form.admin;
    let actor = state
        .authority
        .operator()
        .acting_as(admin.user(), &form.source);
    match actor.revoke_grant(&grant_id).await {
        Ok(_) => {}
        Err(AdminRevokeError::NotFound) => return Ok(not_found(&state, admin, "No such grant.")),
        Err(AdminRevokeError::Store(_)) => return Err(PageError::Unavailable.into()),
    }
    Ok(see_other(&format!("/admin/grants/{grant_id}")))
}

#[derive(Debug, Deserialize)]
struct EventQuery {
    #[serde(default)]
    user: String,
    #[serde(default)]
    client: String,
    #[serde(default)]
    grant: String,
    #[serde(default)]
    kind: String,
}

async fn events(
    State(state): State<AppState>,
    admin: Admin,
    Query(query): Query<EventQuery>,
) -> Result<Response, WebError> {
    let given = |v: &str| Some(v.trim().to_owned()).filter(|v| !v.is_empty());
    let filter = EventFilter {
        limit: EVENTS_SHOWN,
        user_id: given(&query.user),
        client_id: given(&query.client),
        grant_id: given(&query.grant),
        kind: EventKind::from_name(query.kind.trim()),
        newest_first: true,
        ..EventFilter::default()
    };
    let operator = state.authority.operator();
    let events = operator.events(&filter).await.map_err(store_failure)?;
    let names = operator.event_names(&events).await.map_err(store_failure)?;
    let filters = EventFilters {
        user: query.user,
        client: query.client,
        grant: query.grant,
        kind: query.kind,
    };
    Ok(admin.page_with(
        &state,
        StatusCode::OK,
        "Events",
        Some(EVENTS_REFRESH_SECS),
        |_| views::events(&filters, &events, &names, EVENTS_REFRESH_SECS),
    ))
}
