//! Identity URL, userinfo, discovery (docs/salesforce-compatibility.md, "Identity URL and
//! userinfo", "Discovery").

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{json, Map, Value};
use tessera_core::flows::resource::ResourceError;
use tessera_core::identity::claims::{display_name, standard_claims, LOCALE, ZONEINFO};
use tessera_core::Authority;

use crate::data::CURRENT_API_VERSION;
use crate::dates::salesforce_datetime;
use crate::error::{IdentityError, WebError};
use crate::extract::IdentityToken;
use crate::reply::json;
use crate::AppState;

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
    IdentityToken(token, dpop): IdentityToken,
) -> Result<Response, WebError> {
    let caller = state
        .authority
        .identity_caller(Some(&token), dpop.as_ref())
        .await
        .map_err(IdentityError::from)?;
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
        "timezone": ZONEINFO,
        "photos": {"picture": Value::Null, "thumbnail": Value::Null},
        "status": {"created_date": Value::Null, "body": Value::Null},
        "urls": rest_urls(issuer, &user.org_id, &user.id),
        "active": !user.disabled,
        "user_type": "STANDARD",
        "language": LOCALE,
        "locale": LOCALE,
        "utcOffset": 0,
        "last_modified_date": salesforce_datetime(user.created_at.millis()),
        "is_app_installed": true,
    });
    Ok(json(StatusCode::OK, &body))
}

/// Whether Tessera ever has a value for one of userinfo's keys.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Known {
    /// Sent with what Tessera knows (an email may still be missing: `null`).
    Stated,
    /// Tessera stores no given name, photo, profile page, phone or address: always `null` (or
    /// `false`, for a phone never verified), and left out of `claims_supported`.
    Never,
}

use Known::{Never, Stated};

/// Userinfo's keys, in Salesforce's order (docs/openid-connect.md, "Userinfo"). Every one is
/// always sent: one Tessera knows nothing of is `null`, as Salesforce sends it.
const USERINFO_FIELDS: [(&str, Known); 25] = [
    ("sub", Stated),
    ("user_id", Stated),
    ("organization_id", Stated),
    ("preferred_username", Stated),
    ("nickname", Stated),
    ("name", Stated),
    ("email", Stated),
    ("email_verified", Stated),
    ("given_name", Never),
    ("family_name", Stated),
    ("zoneinfo", Stated),
    ("photos", Never),
    ("profile", Never),
    ("picture", Never),
    ("phone_number", Never),
    ("phone_number_verified", Never),
    ("address", Never),
    ("urls", Stated),
    ("active", Stated),
    ("user_type", Stated),
    ("language", Stated),
    ("locale", Stated),
    ("utcOffset", Stated),
    ("updated_at", Stated),
    ("is_app_installed", Stated),
];

/// A JSON object written with its keys in a given order, without serde_json's
/// `preserve_order` (a workspace-wide feature, for one response): a key missing from `values`
/// is written `null`.
struct InOrder<'a> {
    keys: &'a [(&'a str, Known)],
    values: Map<String, Value>,
}

impl Serialize for InOrder<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.keys.len()))?;
        for (key, _) in self.keys {
            map.serialize_entry(key, self.values.get(*key).unwrap_or(&Value::Null))?;
        }
        map.end()
    }
}

/// `GET|POST /services/oauth2/userinfo`: OpenID Connect UserInfo in Salesforce's shape, the
/// standard claims (shared with ID tokens) and Salesforce's extras. Every identity scope gets
/// every field, as at Salesforce, rather than OpenID Connect Core §5.4's split by scope.
pub async fn userinfo(
    State(state): State<AppState>,
    IdentityToken(token, dpop): IdentityToken,
) -> Result<Response, WebError> {
    let caller = state
        .authority
        .userinfo_caller(Some(&token), dpop.as_ref())
        .await
        .map_err(|error| match error {
            ResourceError::InsufficientScope => IdentityError::NoUserinfoScope,
            other => IdentityError::from(other),
        })?;
    let user = caller.user;
    let issuer = &state.authority.config().issuer;
    let mut values = standard_claims(issuer, &user);
    let extras = [
        ("user_id", json!(user.id)),
        ("organization_id", json!(user.org_id)),
        (
            "photos",
            json!({"picture": Value::Null, "thumbnail": Value::Null}),
        ),
        ("phone_number_verified", json!(false)),
        ("urls", rest_urls(issuer, &user.org_id, &user.id)),
        ("active", json!(!user.disabled)),
        ("user_type", json!("STANDARD")),
        ("language", json!(LOCALE)),
        // Salesforce's offset from UTC in milliseconds; every user is in `zoneinfo`'s GMT.
        ("utcOffset", json!(0)),
        // The token was issued to an app the user authorized, so it is installed for them.
        ("is_app_installed", json!(true)),
    ];
    for (key, value) in extras {
        values.insert(key.to_owned(), value);
    }
    if !values.contains_key("email_verified") {
        values.insert("email_verified".to_owned(), json!(false));
    }
    let body = InOrder {
        keys: &USERINFO_FIELDS,
        values,
    };
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

/// RFC 8414 authorization-server metadata. Only what works is advertised: the endpoints, the
/// response types and grants the authorization and token endpoints take, and the keys ID tokens
/// are signed with.
pub async fn discovery(State(state): State<AppState>) -> Response {
    json(
        StatusCode::OK,
        &authorization_server_metadata(&state.authority),
    )
}

/// The metadata both discovery documents carry.
fn authorization_server_metadata(authority: &Authority) -> Map<String, Value> {
    let issuer = &authority.config().issuer;
    let body = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/services/oauth2/authorize"),
        "token_endpoint": format!("{issuer}/services/oauth2/token"),
        "revocation_endpoint": format!("{issuer}/services/oauth2/revoke"),
        "introspection_endpoint": format!("{issuer}/services/oauth2/introspect"),
        "userinfo_endpoint": format!("{issuer}/services/oauth2/userinfo"),
        "jwks_uri": format!("{issuer}/id/keys"),
        "response_types_supported": ["code", "token", "token id_token"],
        "response_modes_supported": ["query", "fragment"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": ["openid", "api", "id", "web", "refresh_token", "offline_access", "full", "profile", "email"],
        "authorization_response_iss_parameter_supported": true,
        // RFC 9449 §5.1: the algorithms DPoP proofs may be signed with.
        "dpop_signing_alg_values_supported": authority.dpop_algorithms(),
    });
    match body {
        Value::Object(metadata) => metadata,
        _ => Map::new(),
    }
}

/// `GET /.well-known/openid-configuration`: OpenID Connect Discovery 1.0 with Salesforce's keys,
/// pointing at this issuer; the RFC 8414 metadata and what a relying party needs besides.
pub async fn openid_configuration(State(state): State<AppState>) -> Response {
    let mut document = authorization_server_metadata(&state.authority);
    let claims_supported: Vec<&str> = USERINFO_FIELDS
        .into_iter()
        .filter(|(_, known)| *known == Stated)
        .map(|(claim, _)| claim)
        .collect();
    let openid = json!({
        "subject_types_supported": ["public"],
        // RS256 is Salesforce's and every client's default; ES256 a client's opt-in.
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        // Salesforce's values; the pages are responsive, so each renders the same page.
        "display_values_supported": ["page", "popup", "touch", "mobile"],
        "claims_supported": claims_supported,
        // No request objects and no `claims` parameter; `request_uri` must be said, since
        // OpenID Connect Discovery's default for it is `true`.
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": false,
    });
    if let Value::Object(openid) = openid {
        document.extend(openid);
    }
    json(StatusCode::OK, &document)
}
