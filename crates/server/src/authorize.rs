//! `/services/oauth2/authorize`: the Web Server and User-Agent flows, with the login and consent
//! pages they need. Validation lives in `tessera_core::authorize`; this module only moves the
//! browser between pages.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use tessera_core::authorize::{check_client_and_redirect, check_request, AuthorizationRequest};
use tessera_core::ids::random_token;
use tessera_core::model::{Event, EventKind, User};
use tessera_core::LoginError;
use tessera_proto::{OAuthError, Params, Password};

use crate::extract::form_post;
use crate::pages::{self, ConsentPage, LoginPage};
use crate::session::{csrf_for_form, csrf_valid, session_cookie, session_user};
use crate::{source_address, AppState};

/// A validated request, or the response that ends it (an error page or an error redirect).
async fn validate(state: &AppState, request: &str) -> Result<AuthorizationRequest, Response> {
    let params = Params::parse(request).map_err(|_| {
        pages::authorize_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "malformed request",
        )
    })?;
    let client = match params.get("client_id") {
        Some(id) if id.len() <= 255 && !params.is_repeated("client_id") => state
            .authority
            .store()
            .client_by_id(id)
            .await
            .map_err(|e| failure_page(tessera_core::authority::store_failure(e)))?,
        _ => None,
    };
    let (client, redirect_uri) = check_client_and_redirect(&params, client)
        .map_err(|e| pages::authorize_error(StatusCode::BAD_REQUEST, e.code(), e.description()))?;
    check_request(&params, client, redirect_uri)
        .map_err(|(target, error)| redirect(&target.error_location(&error)))
}

fn failure_page(error: OAuthError) -> Response {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    pages::authorize_error(status, error.code(), error.description())
}

/// A 302 to the client (Salesforce's status; RFC 9700 §4.12 forbids only 307).
fn redirect(location: &str) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A 303 between our own pages after a form POST.
fn see_other(location: &str, cookie: Option<HeaderValue>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

async fn logged_in_user(state: &AppState, headers: &HeaderMap) -> Option<User> {
    let authority = &state.authority;
    let user_id = session_user(headers, &authority.config().server_key, authority.now())?;
    let user = authority.store().user_by_id(&user_id).await.ok()??;
    (!user.disabled).then_some(user)
}

/// The CSRF token for one of our forms (and the cookie it pairs with, when the browser has none).
fn form_csrf(state: &AppState, headers: &HeaderMap) -> crate::session::Csrf {
    let authority = &state.authority;
    csrf_for_form(
        headers,
        &authority.config().server_key,
        || random_token(authority.rng(), 32),
        state.secure_cookies(),
    )
}

fn login_page(
    state: &AppState,
    headers: &HeaderMap,
    request: &AuthorizationRequest,
    raw: &str,
    error: Option<&str>,
    username: Option<&str>,
) -> Response {
    let csrf = form_csrf(state, headers);
    let page = LoginPage {
        client_name: &request.client.name,
        request: raw,
        csrf_token: &csrf.token,
        username: username
            .or(request.login_hint.as_deref())
            .unwrap_or_default(),
        error,
    };
    pages::login(page, StatusCode::OK, csrf.new_cookie)
}

fn consent_form(
    state: &AppState,
    headers: &HeaderMap,
    request: &AuthorizationRequest,
    raw: &str,
    user: &User,
) -> Response {
    let csrf = form_csrf(state, headers);
    let page = ConsentPage {
        client_name: &request.client.name,
        username: &user.username,
        scopes: request.scope.iter().collect(),
        request: raw,
        csrf_token: &csrf.token,
    };
    pages::consent(page, csrf.new_cookie)
}

/// Where a logged-in user goes next: the consent page, or straight back to the client when
/// this scope was approved before.
async fn continue_as(
    state: &AppState,
    request: &AuthorizationRequest,
    raw: &str,
    user: &User,
    cookie: Option<HeaderValue>,
) -> Response {
    let authority = &state.authority;
    match authority.needs_consent(request, user).await {
        Ok(true) => see_other(&format!("/services/oauth2/authorize/consent?{raw}"), cookie),
        Ok(false) => match authority.approve(request, user).await {
            Ok(done) => {
                let mut response = redirect(&done.location);
                if let Some(cookie) = cookie {
                    response.headers_mut().append(header::SET_COOKIE, cookie);
                }
                response
            }
            Err(e) => failure_page(e),
        },
        Err(e) => failure_page(e),
    }
}

async fn start(state: AppState, headers: HeaderMap, raw: String) -> Response {
    let request = match validate(&state, &raw).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    match logged_in_user(&state, &headers).await {
        Some(user) if !request.prompt_login => {
            continue_as(&state, &request, &raw, &user, None).await
        }
        _ => login_page(&state, &headers, &request, &raw, None, None),
    }
}

pub async fn authorize_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    start(state, headers, query.unwrap_or_default()).await
}

/// Salesforce also accepts the authorization request as a form POST.
pub async fn authorize_post(State(state): State<AppState>, request: Request<Body>) -> Response {
    match form_post(request).await {
        Ok((headers, params)) => {
            let raw = serialize(&params);
            start(state, headers, raw).await
        }
        Err(e) => pages::authorize_error(StatusCode::BAD_REQUEST, e.code(), e.description()),
    }
}

fn serialize(params: &Params) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params.pairs() {
        ser.append_pair(k, v);
    }
    ser.finish()
}

/// The form fields of our own pages, read strictly.
async fn page_form(request: Request<Body>) -> Result<(HeaderMap, Params), Response> {
    form_post(request)
        .await
        .map_err(|e| pages::authorize_error(StatusCode::BAD_REQUEST, e.code(), e.description()))
}

fn forbidden() -> Response {
    pages::authorize_error(
        StatusCode::FORBIDDEN,
        "invalid_request",
        "the form expired or did not come from this site, go back and try again",
    )
}

pub async fn login(State(state): State<AppState>, request: Request<Body>) -> Response {
    let address = source_address(&request);
    let (headers, form) = match page_form(request).await {
        Ok(f) => f,
        Err(response) => return response,
    };
    let field = |name| form.get(name);
    let authority = &state.authority;
    if !csrf_valid(
        &headers,
        &authority.config().server_key,
        field("csrf_token"),
    ) {
        return forbidden();
    }
    let raw = field("request").unwrap_or_default().to_owned();
    let request = match validate(&state, &raw).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    let username = field("username").unwrap_or_default();
    let guard = &state.guard;
    let now = authority.now();
    let locked = guard
        .addresses
        .blocked(&address, now)
        .or_else(|| guard.usernames.blocked(username, now));
    if let Some(retry_after) = locked {
        let message = format!("Too many failed attempts. Try again in {retry_after} seconds.");
        let mut page = login_page(
            &state,
            &headers,
            &request,
            &raw,
            Some(&message),
            Some(username),
        );
        *page.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        page.headers_mut()
            .insert(header::RETRY_AFTER, retry_after.into());
        return page;
    }
    let password = Password::new(field("password").unwrap_or_default());
    match authority.authenticate_user(username, password).await {
        Ok(user) => {
            guard.usernames.clear(username);
            tracing::info!(user_id = %user.id, client_id = %request.client.client_id, "user logged in");
            let cookie = session_cookie(
                &user.id,
                &authority.config().server_key,
                authority.now(),
                state.secure_cookies(),
            );
            continue_as(&state, &request, &raw, &user, Some(cookie)).await
        }
        Err(reason) => {
            tracing::warn!(client_id = %request.client.client_id, address, disabled = reason == LoginError::Disabled, "failed login");
            guard.usernames.record_failure(username, now);
            guard.addresses.record_failure(&address, now);
            authority
                .record_event(Event {
                    at: now,
                    kind: EventKind::LoginFailed,
                    client_id: Some(request.client.client_id.clone()),
                    user_id: None,
                    grant_id: None,
                    detail: format!("from {address}"),
                })
                .await;
            let message = "Please check your username and password. If you still can't log in, contact your administrator.";
            login_page(
                &state,
                &headers,
                &request,
                &raw,
                Some(message),
                Some(username),
            )
        }
    }
}

pub async fn consent_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let raw = query.unwrap_or_default();
    let request = match validate(&state, &raw).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    match logged_in_user(&state, &headers).await {
        Some(user) => consent_form(&state, &headers, &request, &raw, &user),
        None => login_page(&state, &headers, &request, &raw, None, None),
    }
}

pub async fn consent(State(state): State<AppState>, request: Request<Body>) -> Response {
    let (headers, form) = match page_form(request).await {
        Ok(f) => f,
        Err(response) => return response,
    };
    let field = |name| form.get(name);
    if !csrf_valid(
        &headers,
        &state.authority.config().server_key,
        field("csrf_token"),
    ) {
        return forbidden();
    }
    let raw = field("request").unwrap_or_default().to_owned();
    let request = match validate(&state, &raw).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    let Some(user) = logged_in_user(&state, &headers).await else {
        return login_page(&state, &headers, &request, &raw, None, None);
    };
    match field("decision") {
        Some("allow") => match state.authority.approve(&request, &user).await {
            Ok(done) => redirect(&done.location),
            Err(e) => failure_page(e),
        },
        Some("deny") => {
            let error = tessera_core::authorize::AuthorizeRedirectError {
                code: "access_denied",
                description: "end-user denied authorization",
            };
            redirect(&request.target().error_location(&error))
        }
        _ => pages::authorize_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "decision must be allow or deny",
        ),
    }
}

pub async fn success_page() -> Response {
    pages::success()
}
