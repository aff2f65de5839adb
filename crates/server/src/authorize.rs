//! `/services/oauth2/authorize`: the Web Server and User-Agent flows, with the login and consent
//! pages they need. Validation, login, sessions and consent live in `tessera_core::identity::login`; this
//! module only moves the browser between pages.

use axum::extract::{RawQuery, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use tessera_core::flows::authorize::AuthorizationRequest;
use tessera_core::identity::login::{BrowserSession, Next, SESSION_TTL_SECS};
use tessera_core::Source;
use tessera_proto::{CsrfCookie, ExposeSecret, Password};

use crate::error::{PageError, WebError};
use crate::extract::{AuthorizeForm, Cookies, LoginForm, RequestSource, SessionForm};
use crate::observe::for_client;
use crate::pages::{self, ConsentPage, LoginNotice, LoginPage};
use crate::reply::{cookie_header, redirect, see_other, with_cookie};
use crate::AppState;

/// A cookie of the authorization pages: the whole site, sent on the redirect back from a
/// client (`Lax`).
fn set_cookie(name: &str, value: &str, max_age: Option<u64>, secure: bool) -> Option<HeaderValue> {
    cookie_header(name, value, max_age, "/", "Lax", secure)
}

async fn validated(state: &AppState, raw: &str) -> Result<AuthorizationRequest, PageError> {
    Ok(state.authority.authorization_request(raw).await?)
}

/// Validates the authorization request in `raw`, answers it with `answer`, and tags the
/// response with the request's client for the access log (a request that does not validate
/// has no client worth naming: its `client_id` is whatever the URL said).
async fn answer_request<F, Fut>(state: &AppState, raw: &str, answer: F) -> Response
where
    F: FnOnce(AuthorizationRequest) -> Fut,
    Fut: std::future::Future<Output = Result<Response, WebError>>,
{
    let request = match validated(state, raw).await {
        Ok(request) => request,
        Err(error) => return WebError::from(error).into_response(),
    };
    let client_id = request.client.client_id.clone();
    for_client(answer(request).await, Some(&client_id))
}

pub(crate) async fn logged_in(
    state: &AppState,
    cookies: &Cookies,
) -> Result<Option<BrowserSession>, PageError> {
    state
        .authority
        .session(cookies.session.as_ref())
        .await
        .map_err(|_| PageError::Unavailable)
}

/// The `Set-Cookie` of the end user's session cookie (`Max-Age=0` with an empty value ends it
/// in the browser).
pub(crate) fn session_cookie(state: &AppState, value: &str, max_age: u64) -> Option<HeaderValue> {
    let secure = state.secure_cookies();
    set_cookie(Cookies::session_name(secure), value, Some(max_age), secure)
}

/// The `Set-Cookie` of a CSRF cookie the domain minted for a browser that had none.
pub(crate) fn csrf_cookie(state: &AppState, new_cookie: Option<CsrfCookie>) -> Option<HeaderValue> {
    let secure = state.secure_cookies();
    new_cookie.and_then(|v| set_cookie(Cookies::csrf_name(secure), v.expose_secret(), None, secure))
}

/// The login page for a browser that has not tried yet.
fn fresh_login_page(
    state: &AppState,
    cookies: &Cookies,
    request: &AuthorizationRequest,
    raw: &str,
) -> Response {
    login_page(state, cookies, request, raw, LoginNotice::None, None)
}

fn login_page(
    state: &AppState,
    cookies: &Cookies,
    request: &AuthorizationRequest,
    raw: &str,
    notice: LoginNotice,
    username: Option<&str>,
) -> Response {
    let csrf = state.authority.csrf(cookies.csrf.as_ref());
    let page = LoginPage {
        client_name: &request.client.name,
        action: "/services/oauth2/authorize/login",
        request: Some(raw),
        csrf_token: &csrf.token,
        username: username
            .or(request.login_hint.as_deref())
            .unwrap_or_default(),
        notice,
    };
    pages::login(page, csrf_cookie(state, csrf.new_cookie))
}

/// Where a logged-in user goes next: the consent page, or straight back to the client when
/// this scope was approved before.
async fn continue_as(
    state: &AppState,
    request: &AuthorizationRequest,
    raw: &str,
    session: &BrowserSession,
    source: &Source,
    cookie: Option<HeaderValue>,
) -> Result<Response, WebError> {
    let response = match state
        .authority
        .after_login(request, session, source)
        .await
        .map_err(PageError::from)?
    {
        Next::Consent => see_other(&format!("/services/oauth2/authorize/consent?{raw}")),
        Next::Redirect(location) => redirect(&location),
    };
    Ok(with_cookie(response, cookie))
}

async fn start(state: AppState, cookies: Cookies, source: Source, raw: String) -> Response {
    let (state, cookies, raw) = (&state, &cookies, raw.as_str());
    answer_request(state, raw, |request| async move {
        match logged_in(state, cookies).await? {
            Some(session) if !request.prompt_login => {
                continue_as(state, &request, raw, &session, &source, None).await
            }
            _ => Ok(fresh_login_page(state, cookies, &request, raw)),
        }
    })
    .await
}

pub async fn authorize_get(
    State(state): State<AppState>,
    cookies: Cookies,
    RequestSource(source): RequestSource,
    RawQuery(query): RawQuery,
) -> Response {
    start(state, cookies, source, query.unwrap_or_default()).await
}

/// Salesforce also accepts the authorization request as a form POST.
pub async fn authorize_post(
    State(state): State<AppState>,
    cookies: Cookies,
    RequestSource(source): RequestSource,
    AuthorizeForm(raw): AuthorizeForm,
) -> Response {
    start(state, cookies, source, raw).await
}

pub async fn login(State(state): State<AppState>, form: LoginForm) -> Response {
    let raw = form.params.get("request").unwrap_or_default().to_owned();
    answer_request(&state, &raw, |request| log_in(&state, &form, &raw, request)).await
}

async fn log_in(
    state: &AppState,
    form: &LoginForm,
    raw: &str,
    request: AuthorizationRequest,
) -> Result<Response, WebError> {
    let username = form.params.get("username").unwrap_or_default();
    let password = Password::new(form.params.get("password").unwrap_or_default());
    let refused = |notice| {
        Ok(login_page(
            state,
            &form.cookies,
            &request,
            raw,
            notice,
            Some(username),
        ))
    };
    match state
        .authority
        .login(username, password, &request.client.client_id, &form.source)
        .await
    {
        Ok(user) => {
            let (cookie, session) = state.authority.new_session(&user);
            let cookie = session_cookie(state, cookie.expose_secret(), SESSION_TTL_SECS);
            continue_as(state, &request, raw, &session, &form.source, cookie).await
        }
        Err(error) => refused(LoginNotice::of_refusal(error)?),
    }
}

pub async fn consent_page(
    State(state): State<AppState>,
    cookies: Cookies,
    RawQuery(query): RawQuery,
) -> Response {
    let raw = query.unwrap_or_default();
    let (state, cookies, raw) = (&state, &cookies, raw.as_str());
    answer_request(state, raw, |request| async move {
        let Some(session) = logged_in(state, cookies).await? else {
            return Ok(fresh_login_page(state, cookies, &request, raw));
        };
        let csrf_token = state.authority.session_csrf(&session);
        let page = ConsentPage {
            client_name: &request.client.name,
            username: &session.user.username,
            scopes: request.scope.iter().collect(),
            request: raw,
            csrf_token: &csrf_token,
        };
        Ok(pages::consent(page, None))
    })
    .await
}

pub async fn consent(State(state): State<AppState>, form: SessionForm) -> Response {
    let raw = form.params.get("request").unwrap_or_default().to_owned();
    let (state, form, raw) = (&state, &form, raw.as_str());
    answer_request(state, raw, |request| async move {
        let Some(session) = &form.session else {
            return Ok(fresh_login_page(state, &form.cookies, &request, raw));
        };
        match form.params.get("decision") {
            Some("allow") => {
                let location = state
                    .authority
                    .approve(&request, session, &form.source)
                    .await
                    .map_err(PageError::from)?;
                Ok(redirect(&location))
            }
            Some("deny") => Ok(redirect(&state.authority.deny(&request))),
            _ => Err(PageError::BadDecision.into()),
        }
    })
    .await
}

pub async fn success_page() -> Response {
    pages::success()
}

/// `GET /secur/logout.jsp` (Salesforce's logout path): with a live session, a page asking to
/// confirm, whose form POSTs back here; without one, the logged-out page. A GET changes
/// nothing, so that a link or an image on another site cannot log anyone out.
pub async fn logout_page(State(state): State<AppState>, cookies: Cookies) -> Response {
    match logged_in(&state, &cookies).await {
        Ok(Some(session)) => {
            let csrf_token = state.authority.session_csrf(&session);
            pages::logout(&session.user.username, &csrf_token)
        }
        Ok(None) => pages::logged_out(session_cookie(&state, "", 0)),
        Err(error) => WebError::from(error).into_response(),
    }
}

/// `POST /secur/logout.jsp`, from the confirmation page: ends every browser session of the user
/// (this one, a copied cookie, their other devices; docs/security.md, "Browser sessions") and
/// clears the cookie here.
pub async fn logout(
    State(state): State<AppState>,
    form: SessionForm,
) -> Result<Response, WebError> {
    if let Some(session) = &form.session {
        state
            .authority
            .end_sessions(session)
            .await
            .map_err(|_| PageError::Unavailable)?;
    }
    Ok(pages::logged_out(session_cookie(&state, "", 0)))
}
