//! Identity URL, userinfo, discovery (docs/salesforce-compatibility.md, "Identity URL and
//! userinfo", "Discovery").

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};
use tessera_core::model::User;

use crate::data::CURRENT_API_VERSION;
use crate::dates::salesforce_datetime;
use crate::error::{IdentityError, WebError};
use crate::extract::Identity;
use crate::reply::json;
use crate::AppState;

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
    format: Option<String>,
}

/// `GET|POST /id/<orgId>/<userId>`, with the token in the header or `?oauth_token=`.
pub async fn identity(
    State(state): State<AppState>,
    Path((org_id, user_id)): Path<(String, String)>,
    Query(query): Query<IdentityQuery>,
    Identity(caller): Identity,
) -> Result<Response, WebError> {
    if query.format.as_deref().is_some_and(|f| f != "json") {
        return Err(IdentityError::BadFormat.into());
    }
    let caller_id = caller.user.id.clone();
    let user = state
        .authority
        .identity_of(caller, &org_id, &user_id)
        .await
        .map_err(IdentityError::from)?;
    let issuer = &state.authority.config().issuer;
    let body = json!({
        "id": state.authority.identity_url(&user.org_id, &user.id),
        "asserted_user": user.id == caller_id,
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
    Ok(json(StatusCode::OK, &body))
}

/// `GET /services/oauth2/userinfo` (OpenID Connect UserInfo, Salesforce's fields).
pub async fn userinfo(
    State(state): State<AppState>,
    Identity(caller): Identity,
) -> Result<Response, WebError> {
    let user = caller.user;
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
    Ok(json(StatusCode::OK, &body))
}

/// The JWKS: the public halves of the published signing keys (docs/openid-connect.md). Caches
/// may keep it for the JWKS cache lifetime: a new key is published that long before it signs.
pub async fn jwks(State(state): State<AppState>) -> Result<Response, WebError> {
    let keys = state
        .authority
        .published_jwks()
        .await
        .map_err(|e| WebError::OAuth(e.into()))?;
    let mut response = json(StatusCode::OK, &json!({ "keys": keys }));
    let cache_control = format!(
        "public, max-age={}",
        state.authority.jwks_cache_lifetime_secs()
    );
    if let Ok(value) = HeaderValue::from_str(&cache_control) {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    Ok(response)
}

/// RFC 8414 authorization-server metadata. Only what is implemented is advertised: no ID token
/// is ever issued, so there is no OpenID Connect discovery document, no `openid` scope, no
/// `jwks_uri` and no signing algorithm.
pub async fn discovery(State(state): State<AppState>) -> Response {
    let issuer = &state.authority.config().issuer;
    let body = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/services/oauth2/authorize"),
        "token_endpoint": format!("{issuer}/services/oauth2/token"),
        "revocation_endpoint": format!("{issuer}/services/oauth2/revoke"),
        "introspection_endpoint": format!("{issuer}/services/oauth2/introspect"),
        "userinfo_endpoint": format!("{issuer}/services/oauth2/userinfo"),
        "response_types_supported": ["code", "token"],
        "response_modes_supported": ["query", "fragment"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": ["api", "id", "web", "refresh_token", "offline_access", "full", "profile", "email"],
        "authorization_response_iss_parameter_supported": true,
    });
    json(StatusCode::OK, &body)
}
