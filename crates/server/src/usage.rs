//! OAuth Usage over REST, in the shape of Salesforce's Connect API resources under
//! `/services/data/vXX.X/apps/oauth/usage` (docs/usage.md): adapters over
//! `tessera_core::operations::usage`, for administrators only.

use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use serde_json::{json, Value};
use tessera_core::model::User;
use tessera_core::operations::usage::{page_size, UsageError, UsersPage};
use tessera_core::store::{AppUsage, TokenUsage, UserUsage};

use crate::data::{echoed, version};
use crate::dates::salesforce_datetime;
use crate::error::{ApiError, WebError};
use crate::extract::{Api, Cookies};
use crate::reply::json;
use crate::{AppState, Routes};

/// A path under `/services/data/{version}/apps/oauth/usage`.
macro_rules! usage_path {
    ($tail:literal) => {
        concat!("/services/data/{version}/apps/oauth/usage", $tail)
    };
}

pub(crate) fn routes(routes: Routes) -> Routes {
    routes
        .route(usage_path!(""), get(apps))
        .route(usage_path!("/{client_id}/users"), get(users))
        .route(
            usage_path!("/{client_id}/{user_id}/tokens"),
            get(tokens).delete(revoke_user),
        )
        .route(usage_path!("/{client_id}/tokens"), delete(revoke_app))
        .route(usage_path!("/tokens/{grant_id}"), delete(revoke_token))
}

/// The administrator calling: a REST token (scope `api`) of an admin user, or, without an
/// `Authorization` header, the admin console's session. Anyone else: the REST API's 401 for
/// a missing or bad token, 403 for a user who is not an administrator.
///
/// The console's cookie is enough for a `DELETE`: a cross-site page cannot send one, as a
/// `DELETE` needs a CORS preflight, which is never answered with credentials.
#[derive(Debug)]
pub struct UsageAdmin(User);

impl FromRequestParts<AppState> for UsageAdmin {
    type Rejection = WebError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let operator = state.authority.operator();
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            let cookies = Cookies::from_headers(&parts.headers, state.secure_cookies())?;
            if let Some(cookie) = cookies.admin_session.as_ref() {
                match operator.admin_session(Some(cookie)).await {
                    Ok(Some(session)) => return Ok(Self(session.user)),
                    Ok(None) => {}
                    Err(_) => return Err(ApiError::Unavailable.into()),
                }
            }
        }
        // The REST API's own answer to a missing, expired or revoked token.
        let Api(caller) = Api::from_request_parts(parts, state).await?;
        let admin = operator
            .usage_admin(&caller.token.user_id)
            .await
            .map_err(api_error)?;
        Ok(Self(admin))
    }
}

fn api_error(error: UsageError) -> ApiError {
    match error {
        UsageError::Forbidden => {
            ApiError::InsufficientAccess("OAuth Usage is for administrators: this user is not one")
        }
        UsageError::UnknownApp(id) => {
            ApiError::NotFoundNamed(format!("No app with id {}", echoed(&id)))
        }
        UsageError::UnknownUser(id) => {
            ApiError::NotFoundNamed(format!("No user with id {}", echoed(&id)))
        }
        UsageError::UnknownToken(id) => {
            ApiError::NotFoundNamed(format!("No live token with id {}", echoed(&id)))
        }
        error @ (UsageError::BadPageSize | UsageError::BadCursor) => {
            ApiError::InvalidParameter(error.to_string())
        }
        UsageError::Store(_) => ApiError::Unavailable,
    }
}

fn failed(error: UsageError) -> WebError {
    if let UsageError::Store(cause) = &error {
        tracing::error!(error = %cause, "storage failure; answering 503");
    }
    api_error(error).into()
}

/// `/services/data/vNN.0/apps/oauth/usage`.
fn base(v: &str) -> String {
    format!("/services/data/v{v}/apps/oauth/usage")
}

fn date(at: tessera_core::time::Timestamp) -> String {
    salesforce_datetime(at.millis())
}

fn app_json(app: &AppUsage, base: &str) -> Value {
    json!({
        "appId": app.client_id,
        "name": app.name,
        "userCount": app.user_count,
        "tokenCount": app.token_count,
        "useCount": app.use_count,
        "lastUsedDate": app.last_used_at.map(date),
        "usersUrl": format!("{base}/{}/users", app.client_id),
    })
}

fn user_json(user: &UserUsage, app_id: &str, base: &str) -> Value {
    json!({
        "userId": user.user_id,
        "username": user.username,
        "firstUsedDate": date(user.first_used_at),
        "lastUsedDate": date(user.last_used_at),
        "useCount": user.use_count,
        "tokenCount": user.token_count,
        "tokensUrl": format!("{base}/{app_id}/{}/tokens", user.user_id),
    })
}

fn token_json(token: &TokenUsage, base: &str) -> Value {
    json!({
        "tokenId": token.grant_id,
        "scope": token.scope,
        "firstUsedDate": date(token.first_used_at),
        "lastUsedDate": date(token.last_used_at),
        "useCount": token.use_count,
        "hasRefreshToken": token.has_refresh_token,
        "url": format!("{base}/tokens/{}", token.grant_id),
    })
}

async fn apps(
    State(state): State<AppState>,
    Path(v): Path<String>,
    UsageAdmin(_): UsageAdmin,
) -> Result<Response, WebError> {
    let base = base(version(&v)?);
    let apps = state
        .authority
        .operator()
        .usage_apps()
        .await
        .map_err(failed)?;
    let apps: Vec<Value> = apps.iter().map(|app| app_json(app, &base)).collect();
    Ok(json(
        StatusCode::OK,
        &json!({ "apps": apps, "currentPageUrl": base, "nextPageUrl": null }),
    ))
}

/// The users listing's query: `pageSize` (1 to 1000, 100 by default) and the `cursor` of
/// the previous page's `nextPageUrl`.
#[derive(Debug, Default)]
pub struct UsersQuery {
    page_size: Option<String>,
    cursor: Option<String>,
}

impl UsersQuery {
    /// Read by hand rather than by axum's `Query`, whose refusals (a repeated parameter) are
    /// plain text before the caller is even checked: here a bad query is Salesforce's JSON
    /// error, answered to an administrator only. Other parameters are ignored.
    fn parse(raw: Option<&str>) -> Result<Self, WebError> {
        let mut query = Self::default();
        for (name, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            let slot = match name.as_ref() {
                "pageSize" => &mut query.page_size,
                "cursor" => &mut query.cursor,
                _ => continue,
            };
            if slot.replace(value.into_owned()).is_some() {
                let message = format!("the parameter {name} is given more than once");
                return Err(ApiError::InvalidParameter(message).into());
            }
        }
        Ok(query)
    }
}

async fn users(
    State(state): State<AppState>,
    Path((v, app_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    UsageAdmin(_): UsageAdmin,
) -> Result<Response, WebError> {
    let base = base(version(&v)?);
    let query = UsersQuery::parse(raw.as_deref())?;
    let size = page_size(query.page_size.as_deref()).map_err(failed)?;
    let UsersPage { users, next_cursor } = state
        .authority
        .operator()
        .usage_app_users(&app_id, query.cursor.as_deref(), size)
        .await
        .map_err(failed)?;
    let listed: Vec<Value> = users.iter().map(|u| user_json(u, &app_id, &base)).collect();
    let page_url = |cursor: Option<&str>| {
        let mut url = format!("{base}/{app_id}/users?pageSize={size}");
        if let Some(cursor) = cursor {
            url.push_str("&cursor=");
            url.push_str(cursor);
        }
        url
    };
    Ok(json(
        StatusCode::OK,
        &json!({
            "users": listed,
            "pageSize": size,
            "currentPageUrl": page_url(query.cursor.as_deref()),
            "nextPageUrl": next_cursor.as_deref().map(|c| page_url(Some(c))),
        }),
    ))
}

async fn tokens(
    State(state): State<AppState>,
    Path((v, app_id, user_id)): Path<(String, String, String)>,
    UsageAdmin(_): UsageAdmin,
) -> Result<Response, WebError> {
    let base = base(version(&v)?);
    let tokens = state
        .authority
        .operator()
        .usage_user_tokens(&app_id, &user_id)
        .await
        .map_err(failed)?;
    let tokens: Vec<Value> = tokens.iter().map(|t| token_json(t, &base)).collect();
    Ok(json(StatusCode::OK, &json!({ "tokens": tokens })))
}

async fn revoke_user(
    State(state): State<AppState>,
    Path((v, app_id, user_id)): Path<(String, String, String)>,
    UsageAdmin(admin): UsageAdmin,
) -> Result<Response, WebError> {
    version(&v)?;
    revoked(
        state
            .authority
            .operator()
            .usage_revoke_user(&admin, &app_id, &user_id)
            .await,
    )
}

async fn revoke_app(
    State(state): State<AppState>,
    Path((v, app_id)): Path<(String, String)>,
    UsageAdmin(admin): UsageAdmin,
) -> Result<Response, WebError> {
    version(&v)?;
    revoked(
        state
            .authority
            .operator()
            .usage_revoke_app(&admin, &app_id)
            .await,
    )
}

async fn revoke_token(
    State(state): State<AppState>,
    Path((v, token_id)): Path<(String, String)>,
    UsageAdmin(admin): UsageAdmin,
) -> Result<Response, WebError> {
    version(&v)?;
    revoked(
        state
            .authority
            .operator()
            .usage_revoke_token(&admin, &token_id)
            .await,
    )
}

/// A revocation's answer: 204 once done (Salesforce's answer to a DELETE).
fn revoked<T>(done: Result<T, UsageError>) -> Result<Response, WebError> {
    done.map_err(failed)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
