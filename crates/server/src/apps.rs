//! `/services/oauth2/apps`: an end user's own connected apps, behind the browser session the
//! authorization pages' login makes. Each app with the user's grants to it (scopes, first
//! issued, last used, live or revoked), a "Revoke" per grant and "Log out everywhere" for all
//! of them. Every change is a POST carrying the session's CSRF token; the domain side (only the
//! user's own grants, the audit events) is `tessera_core::identity::connected_apps`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::{html, Markup, PreEscaped};
use tessera_core::identity::connected_apps::{ConnectedApp, CONNECTED_APPS_CLIENT};
use tessera_core::identity::login::{BrowserSession, SESSION_TTL_SECS};
use tessera_core::model::Grant;
use tessera_core::operations::revocations::AdminRevokeError;
use tessera_proto::{CsrfToken, ExposeSecret, Password};

use crate::authorize::{csrf_cookie, logged_in, session_cookie};
use crate::error::{PageError, WebError};
use crate::extract::{Cookies, LoginForm, SessionForm};
use crate::pages::{self, LoginNotice, LoginPage};
use crate::reply::{see_other, with_cookie};
use crate::{AppState, Routes};

/// The page.
pub(crate) const APPS: &str = "/services/oauth2/apps";
/// Its login, where a browser without a session is sent, and which sends it back.
const APPS_LOGIN: &str = "/services/oauth2/apps/login";
const LOGOUT_EVERYWHERE: &str = "/services/oauth2/apps/logout-everywhere";

pub(crate) fn routes(routes: Routes) -> Routes {
    routes
        .route(APPS, get(apps_page))
        .route(APPS_LOGIN, get(login_page).post(login))
        .route(
            "/services/oauth2/apps/grants/{grant_id}/revoke",
            post(revoke_grant),
        )
        .route(
            LOGOUT_EVERYWHERE,
            get(confirm_logout_everywhere).post(logout_everywhere),
        )
}

/// The session of the request's browser, or the redirect to the login (which comes back here).
async fn signed_in(state: &AppState, cookies: &Cookies) -> Result<BrowserSession, Response> {
    match logged_in(state, cookies).await {
        Ok(Some(session)) => Ok(session),
        Ok(None) => Err(see_other(APPS_LOGIN)),
        Err(error) => Err(WebError::from(error).into_response()),
    }
}

fn store_failure<E>(_: E) -> WebError {
    PageError::Unavailable.into()
}

/// `GET /services/oauth2/apps`.
async fn apps_page(State(state): State<AppState>, cookies: Cookies) -> Response {
    let session = match signed_in(&state, &cookies).await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    match state.authority.connected_apps(&session).await {
        Ok(apps) => {
            let csrf = state.authority.session_csrf(&session);
            page(
                StatusCode::OK,
                "Your connected apps",
                apps_view(&session, &apps, &csrf),
            )
        }
        Err(error) => store_failure(error).into_response(),
    }
}

/// `GET /services/oauth2/apps/login`: the login form, or straight to the page when the browser
/// is signed in already.
async fn login_page(State(state): State<AppState>, cookies: Cookies) -> Response {
    match logged_in(&state, &cookies).await {
        Ok(Some(_)) => see_other(APPS),
        Ok(None) => login_form(&state, &cookies, LoginNotice::None, ""),
        Err(error) => WebError::from(error).into_response(),
    }
}

fn login_form(
    state: &AppState,
    cookies: &Cookies,
    notice: LoginNotice,
    username: &str,
) -> Response {
    let csrf = state.authority.csrf(cookies.csrf.as_ref());
    let page = LoginPage {
        client_name: "your connected apps",
        action: APPS_LOGIN,
        request: None,
        csrf_token: &csrf.token,
        username,
        notice,
    };
    pages::login(page, csrf_cookie(state, csrf.new_cookie))
}

/// `POST /services/oauth2/apps/login`: the authorization pages' login (the same password check,
/// throttle and session), then back to the page.
async fn login(State(state): State<AppState>, form: LoginForm) -> Result<Response, WebError> {
    let username = form.params.get("username").unwrap_or_default();
    let password = Password::new(form.params.get("password").unwrap_or_default());
    match state
        .authority
        .login(username, password, CONNECTED_APPS_CLIENT, &form.source)
        .await
    {
        Ok(user) => {
            let (cookie, _) = state.authority.new_session(&user);
            let cookie = session_cookie(&state, cookie.expose_secret(), SESSION_TTL_SECS);
            Ok(with_cookie(see_other(APPS), cookie))
        }
        Err(error) => Ok(login_form(
            &state,
            &form.cookies,
            LoginNotice::of_refusal(error)?,
            username,
        )),
    }
}

/// `POST /services/oauth2/apps/grants/{grant_id}/revoke`: one grant of the user's. A grant of
/// anyone else is answered 404 and left as it is.
async fn revoke_grant(
    State(state): State<AppState>,
    Path(grant_id): Path<String>,
    form: SessionForm,
) -> Result<Response, WebError> {
    let Some(session) = &form.session else {
        return Ok(see_other(APPS_LOGIN));
    };
    match state
        .authority
        .revoke_connected_app(session, &grant_id, &form.source)
        .await
    {
        Ok(_) => Ok(see_other(APPS)),
        Err(AdminRevokeError::NotFound) => Ok(page(
            StatusCode::NOT_FOUND,
            "Not found",
            message(
                "Not found",
                "You have no connected app by that grant. Nothing was revoked.",
            ),
        )),
        Err(AdminRevokeError::Store(error)) => Err(store_failure(error)),
    }
}

/// `GET /services/oauth2/apps/logout-everywhere`: the page that asks to confirm.
async fn confirm_logout_everywhere(State(state): State<AppState>, cookies: Cookies) -> Response {
    let session = match signed_in(&state, &cookies).await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let apps = match state.authority.connected_apps(&session).await {
        Ok(apps) => apps,
        Err(error) => return store_failure(error).into_response(),
    };
    let live = apps.iter().filter(|app| app.is_live()).count();
    let csrf = state.authority.session_csrf(&session);
    let body = html! {
        h1 { "Log out everywhere?" }
        p {
            "Every app you have connected (" strong { (live) } " now) loses its access to your "
            "account, on every device, and will ask you to log in again. You stay logged in here."
        }
        form method="post" action=(LOGOUT_EVERYWHERE) {
            (csrf_field(&csrf))
            button type="submit" { "Log out everywhere" }
        }
        p { a href=(APPS) { "Cancel" } }
    };
    page(StatusCode::OK, "Log out everywhere?", body)
}

/// `POST /services/oauth2/apps/logout-everywhere`: every live grant of the user revoked.
async fn logout_everywhere(
    State(state): State<AppState>,
    form: SessionForm,
) -> Result<Response, WebError> {
    let Some(session) = &form.session else {
        return Ok(see_other(APPS_LOGIN));
    };
    let revoked = state
        .authority
        .log_out_of_every_app(session, &form.source)
        .await
        .map_err(store_failure)?;
    let grants = if revoked == 1 { "grant" } else { "grants" };
    Ok(page(
        StatusCode::OK,
        "Logged out everywhere",
        html! {
            h1 { "You are logged out everywhere" }
            p { "Revoked " (revoked) " " (grants) ". Each app will ask you to log in again." }
            p { a href=(APPS) { "Back to your connected apps" } }
        },
    ))
}

/// A page in the look of the login and consent pages, a little wider for the list.
fn page(status: StatusCode, title: &str, body: Markup) -> Response {
    let body = html! {
        style { (PreEscaped("main{max-width:560px}")) }
        (body)
    };
    pages::page(status, title, &body.into_string(), None)
}

fn message(heading: &str, text: &str) -> Markup {
    html! {
        h1 { (heading) }
        p.error role="alert" { (text) }
        p { a href=(APPS) { "Back to your connected apps" } }
    }
}

fn csrf_field(csrf: &CsrfToken) -> Markup {
    html! { input type="hidden" name="csrf_token" value=(csrf.expose_secret()); }
}

fn when(at: tessera_core::time::Timestamp) -> String {
    tessera_core::time::format_utc(at.millis())
}

fn apps_view(session: &BrowserSession, apps: &[ConnectedApp], csrf: &CsrfToken) -> Markup {
    html! {
        h1 { "Your connected apps" }
        p {
            "Logged in as " strong { (session.user.username) } ". These apps can reach your "
            "account with the access you allowed. Revoking an app's access signs it out: it "
            "will ask you to log in again."
        }
        @if apps.iter().any(ConnectedApp::is_live) {
            // A GET to a page that asks to confirm: the revocation itself is its POST.
            form method="get" action=(LOGOUT_EVERYWHERE) {
                button type="submit" { "Log out everywhere" }
            }
        }
        @if apps.is_empty() {
            p { "You have not connected any app." }
        }
        @for app in apps {
            section.app data-client-id=(app.client_id) {
                h2 style="font-size:1.05rem;margin:24px 0 4px" { (app.name) }
                ul {
                    @for grant in &app.grants {
                        (grant_item(grant, csrf))
                    }
                }
            }
        }
        p.detail { a href="/secur/logout.jsp" { "Log out of this site" } }
    }
}

fn grant_item(grant: &Grant, csrf: &CsrfToken) -> Markup {
    html! {
        li.grant data-grant-id=(grant.id) data-state=(if grant.revoked_at.is_some() { "revoked" } else { "live" }) {
            span.scope { (grant.scope.to_string()) }
            br;
            span.detail {
                "First issued " (when(grant.created_at)) " · last used " (when(grant.last_used_at)) " · "
                @if let Some(revoked) = grant.revoked_at { "revoked " (when(revoked)) } @else { strong { "live" } }
            }
            @if grant.revoked_at.is_none() {
                form method="post" action={"/services/oauth2/apps/grants/" (grant.id) "/revoke"} {
                    (csrf_field(csrf))
                    button.secondary type="submit" style="margin:6px 0 0" { "Revoke" }
                }
            }
        }
    }
}
