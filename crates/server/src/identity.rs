//! Identity URL, userinfo, discovery (salesforce-compat.md §1.2, §9.1, checklist 21–22).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tessera_core::model::{AccessTokenRecord, User};

use crate::data::CURRENT_API_VERSION;
use crate::dates::salesforce_datetime;
use crate::extract::bearer_token;
use crate::reply::json;
use crate::AppState;

/// Identity errors are plain text, as Salesforce's (§6.3).
fn plain(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "text/plain;charset=UTF-8")],
        text,
    )
        .into_response()
}

async fn identity_caller(
    state: &AppState,
    token: Option<&str>,
) -> Result<(AccessTokenRecord, User), Response> {
    let token = token.ok_or_else(|| plain(StatusCode::FORBIDDEN, "Missing_OAuth_Token"))?;
    let record = state
        .authority
        .authenticate_access_token(token)
        .await
        .map_err(|_| plain(StatusCode::FORBIDDEN, "Bad_OAuth_Token"))?;
    if !record.scope.allows_identity() {
        return Err(plain(StatusCode::FORBIDDEN, "Bad_OAuth_Token"));
    }
    let user = state
        .authority
        .store()
        .user_by_id(&record.user_id)
        .await
        .ok()
        .flatten()
        .filter(|u| !u.disabled)
        .ok_or_else(|| plain(StatusCode::FORBIDDEN, "Bad_OAuth_Token"))?;
    Ok((record, user))
}

fn display_name(user: &User) -> String {
    user.username
        .split('@')
        .next()
        .unwrap_or(&user.username)
        .to_owned()
}

fn rest_urls(issuer: &str, org_id: &str, user_id: &str) -> Value {
    let v = CURRENT_API_VERSION;
    json!({
        "enterprise": format!("{issuer}/services/Soap/c/{{version}}/{org_id}"),
        "metadata": format!("{issuer}/services/Soap/m/{{version}}/{org_id}"),
        "partner": format!("{issuer}/services/Soap/u/{{version}}/{org_id}"),
        "rest": format!("{issuer}/services/data/v{{version}}/"),
        "sobjects": format!("{issuer}/services/data/v{{version}}/sobjects/"),
        "search": format!("{issuer}/services/data/v{{version}}/search/"),
        "query": format!("{issuer}/services/data/v{{version}}/query/"),
        "profile": format!("{issuer}/{user_id}"),
        "users": format!("{issuer}/services/data/v{v}/sobjects/User/{user_id}"),
    })
}

#[derive(Debug, serde::Deserialize)]
pub struct IdentityQuery {
    oauth_token: Option<String>,
    format: Option<String>,
}

/// `GET|POST /id/<orgId>/<userId>`, with the token in the header or `?oauth_token=`.
pub async fn identity(
    State(state): State<AppState>,
    Path((org_id, user_id)): Path<(String, String)>,
    Query(query): Query<IdentityQuery>,
    headers: HeaderMap,
) -> Response {
    let token = bearer_token(&headers).or(query.oauth_token.as_deref());
    let (record, caller) = match identity_caller(&state, token).await {
        Ok(c) => c,
        Err(response) => return response,
    };
    if query.format.as_deref().is_some_and(|f| f != "json") {
        return plain(StatusCode::BAD_REQUEST, "Bad_Format");
    }
    if org_id != record.org_id {
        return plain(StatusCode::FORBIDDEN, "Wrong_Org");
    }
    let user = if user_id == caller.id {
        caller
    } else {
        match state
            .authority
            .store()
            .user_by_id(&user_id)
            .await
            .ok()
            .flatten()
        {
            Some(u) if u.org_id == org_id => u,
            _ => return plain(StatusCode::NOT_FOUND, "Bad_Id"),
        }
    };
    let issuer = &state.authority.config().issuer;
    let body = json!({
        "id": state.authority.identity_url(&user.org_id, &user.id),
        "asserted_user": user.id == record.user_id,
        "user_id": user.id,
        "organization_id": user.org_id,
        "username": user.username,
        "nick_name": display_name(&user),
        "display_name": display_name(&user),
        "email": user.email,
        "email_verified": false,
        "first_name": Value::Null,
        "last_name": display_name(&user),
        "timezone": "GMT",
        "photos": {"picture": Value::Null, "thumbnail": Value::Null},
        "status": {"created_date": Value::Null, "body": Value::Null},
        "urls": rest_urls(issuer, &user.org_id, &user.id),
        "active": !user.disabled,
        "user_type": "STANDARD",
        "language": "en_US",
        "locale": "en_US",
        "utcOffset": 0,
        "last_modified_date": salesforce_datetime(user.created_at.millis()),
        "is_app_installed": true,
    });
    json(StatusCode::OK, &body)
}

/// `GET /services/oauth2/userinfo` (OpenID Connect UserInfo, Salesforce's fields).
pub async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (_, user) = match identity_caller(&state, bearer_token(&headers)).await {
        Ok(c) => c,
        Err(response) => return response,
    };
    let issuer = &state.authority.config().issuer;
    let body = json!({
        "sub": state.authority.identity_url(&user.org_id, &user.id),
        "user_id": user.id,
        "organization_id": user.org_id,
        "preferred_username": user.username,
        "nickname": display_name(&user),
        "name": display_name(&user),
        "email": user.email,
        "email_verified": false,
        "zoneinfo": "GMT",
        "locale": "en_US",
        "language": "en_US",
        "active": !user.disabled,
        "user_type": "STANDARD",
        "urls": rest_urls(issuer, &user.org_id, &user.id),
        "updated_at": salesforce_datetime(user.created_at.millis()),
    });
    json(StatusCode::OK, &body)
}

/// No ID tokens are issued, so there are no signing keys to publish.
pub async fn jwks() -> Response {
    json(StatusCode::OK, &json!({ "keys": [] }))
}

/// RFC 8414 / OpenID Connect discovery: the same document at both well-known paths.
pub async fn discovery(State(state): State<AppState>) -> Response {
    let issuer = &state.authority.config().issuer;
    let body = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/services/oauth2/authorize"),
        "token_endpoint": format!("{issuer}/services/oauth2/token"),
        "revocation_endpoint": format!("{issuer}/services/oauth2/revoke"),
        "introspection_endpoint": format!("{issuer}/services/oauth2/introspect"),
        "userinfo_endpoint": format!("{issuer}/services/oauth2/userinfo"),
        "jwks_uri": format!("{issuer}/id/keys"),
        "response_types_supported": ["code", "token"],
        "response_modes_supported": ["query", "fragment"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": ["api", "id", "web", "refresh_token", "offline_access", "full", "openid", "profile", "email"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": ["sub", "user_id", "organization_id", "preferred_username", "nickname", "name", "email", "email_verified", "zoneinfo", "locale"],
        "display_values_supported": ["page"],
        "frontchannel_logout_supported": false,
        "authorization_response_iss_parameter_supported": false,
    });
    json(StatusCode::OK, &body)
}
