//! The resource server: a small `/services/data` in Salesforce's shapes, so that API calls made
//! with a token do real work (salesforce-compat.md §9.2, checklist 16, 18, 26).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};
use tessera_core::ids::salesforce_id;
use tessera_core::model::{AccessTokenRecord, Note, User};
use tessera_proto::SessionError;

use crate::dates::salesforce_datetime;
use crate::extract::bearer_token;
use crate::reply::{api_error, json, session_error};
use crate::AppState;

/// The newest API version served; every version from v20.0 up to it is accepted.
pub const CURRENT_API_VERSION: &str = "65.0";
const OLDEST_API_MAJOR: u32 = 20;
const NOTE_TITLE_MAX: usize = 80;
const NOTE_BODY_MAX: usize = 32_000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/services/data", get(versions))
        .route("/services/data/", get(versions))
        .route("/services/data/{version}", get(resources))
        .route("/services/data/{version}/", get(resources))
        .route("/services/data/{version}/sobjects", get(describe_global))
        .route("/services/data/{version}/sobjects/", get(describe_global))
        .route(
            "/services/data/{version}/sobjects/{object}",
            get(object_root).post(create),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/{id}",
            get(retrieve).patch(update).delete(delete),
        )
        .route("/services/data/{version}/query", get(query))
        .route("/services/data/{version}/query/", get(query))
}

fn current_major() -> u32 {
    CURRENT_API_VERSION
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(OLDEST_API_MAJOR)
}

/// `vNN.N` within the served range.
fn parse_version(text: &str) -> Option<&str> {
    let number = text.strip_prefix('v')?;
    let (major, minor) = number.split_once('.')?;
    let major: u32 = major.parse().ok()?;
    (minor == "0" && (OLDEST_API_MAJOR..=current_major()).contains(&major)).then_some(number)
}

fn not_found() -> Response {
    api_error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource does not exist",
    )
}

/// The caller of an API request: a valid access token with the `api` (or `full`) scope.
async fn caller(state: &AppState, headers: &HeaderMap) -> Result<AccessTokenRecord, Response> {
    let token = bearer_token(headers).ok_or_else(|| session_error(SessionError::InvalidSession))?;
    let record = state
        .authority
        .authenticate_access_token(token)
        .await
        .map_err(session_error)?;
    if !record.scope.allows_api() {
        return Err(session_error(SessionError::InsufficientScope));
    }
    Ok(record)
}

/// Authenticates and checks the version, in the order Salesforce reports them.
async fn api_call(
    state: &AppState,
    headers: &HeaderMap,
    version: &str,
) -> Result<(AccessTokenRecord, String), Response> {
    let record = caller(state, headers).await?;
    let version = parse_version(version).ok_or_else(not_found)?.to_owned();
    Ok((record, version))
}

/// A writing call on the `Note` object: authenticated, a served version, and `Note` (the only
/// object that can be written).
async fn note_call(
    state: &AppState,
    headers: &HeaderMap,
    version: &str,
    object: &str,
) -> Result<AccessTokenRecord, Response> {
    let (record, _) = api_call(state, headers, version).await?;
    if object != "Note" {
        return Err(not_found());
    }
    Ok(record)
}

fn storage_error(error: tessera_core::store::StoreError) -> Response {
    tracing::error!(error = %error, "storage failure in the REST API");
    let mut response = api_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "SERVER_UNAVAILABLE",
        "The service is temporarily unavailable",
    );
    response.headers_mut().insert(header::RETRY_AFTER, 1.into());
    response
}

async fn versions() -> Response {
    let list: Vec<Value> = (OLDEST_API_MAJOR..=current_major())
        .map(|major| json!({ "label": format!("API v{major}.0"), "url": format!("/services/data/v{major}.0"), "version": format!("{major}.0") }))
        .collect();
    json(StatusCode::OK, &list)
}

async fn resources(
    State(state): State<AppState>,
    Path(version): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (record, v) = match api_call(&state, &headers, &version).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let base = format!("/services/data/v{v}");
    json(
        StatusCode::OK,
        &json!({
            "sobjects": format!("{base}/sobjects"),
            "query": format!("{base}/query"),
            "identity": state.authority.identity_url(&record.org_id, &record.user_id),
        }),
    )
}

fn describe(object: &str, v: &str) -> Value {
    let (prefix, label) = match object {
        "Note" => ("002", "Note"),
        _ => ("005", "User"),
    };
    json!({
        "name": object, "label": label, "labelPlural": format!("{label}s"), "keyPrefix": prefix,
        "createable": object == "Note", "deletable": object == "Note", "updateable": object == "Note",
        "queryable": true, "retrieveable": true, "custom": false,
        "urls": {
            "sobject": format!("/services/data/v{v}/sobjects/{object}"),
            "rowTemplate": format!("/services/data/v{v}/sobjects/{object}/{{ID}}"),
        }
    })
}

async fn describe_global(
    State(state): State<AppState>,
    Path(version): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (_, v) = match api_call(&state, &headers, &version).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    json(
        StatusCode::OK,
        &json!({ "encoding": "UTF-8", "maxBatchSize": 200, "sobjects": [describe("Note", &v), describe("User", &v)] }),
    )
}

fn note_json(note: &Note, v: &str) -> Value {
    json!({
        "attributes": { "type": "Note", "url": format!("/services/data/v{v}/sobjects/Note/{}", note.id) },
        "Id": note.id,
        "Title": note.title,
        "Body": note.body,
        "OwnerId": note.owner_id,
        "ParentId": Value::Null,
        "IsPrivate": false,
        "IsDeleted": false,
        "CreatedById": note.owner_id,
        "CreatedDate": salesforce_datetime(note.created_at.millis()),
        "LastModifiedById": note.owner_id,
        "LastModifiedDate": salesforce_datetime(note.modified_at.millis()),
        "SystemModstamp": salesforce_datetime(note.modified_at.millis()),
    })
}

fn user_json(user: &User, v: &str) -> Value {
    let name = user.username.split('@').next().unwrap_or(&user.username);
    json!({
        "attributes": { "type": "User", "url": format!("/services/data/v{v}/sobjects/User/{}", user.id) },
        "Id": user.id,
        "Username": user.username,
        "Name": name,
        "LastName": name,
        "Email": user.email,
        "IsActive": !user.disabled,
        "CreatedDate": salesforce_datetime(user.created_at.millis()),
    })
}

async fn object_root(
    State(state): State<AppState>,
    Path((version, object)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let (record, v) = match api_call(&state, &headers, &version).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match object.as_str() {
        "Note" => match state
            .authority
            .store()
            .list_notes(&record.user_id, 200)
            .await
        {
            Ok(notes) => {
                let recent: Vec<Value> = notes
                    .iter()
                    .map(|n| json!({ "attributes": { "type": "Note", "url": format!("/services/data/v{v}/sobjects/Note/{}", n.id) }, "Id": n.id, "Title": n.title }))
                    .collect();
                json(
                    StatusCode::OK,
                    &json!({ "objectDescribe": describe("Note", &v), "recentItems": recent }),
                )
            }
            Err(e) => storage_error(e),
        },
        "User" => json(
            StatusCode::OK,
            &json!({ "objectDescribe": describe("User", &v), "recentItems": [] }),
        ),
        _ => not_found(),
    }
}

/// Title and Body of a Note from a JSON body; field names are case-insensitive, as Salesforce's.
fn note_fields(
    body: &Bytes,
    headers: &HeaderMap,
) -> Result<(Option<String>, Option<Option<String>>), Response> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"));
    if !is_json {
        return Err(api_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "Content-Type must be application/json",
        ));
    }
    let object: Map<String, Value> = match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => map,
        _ => {
            return Err(api_error(
                StatusCode::BAD_REQUEST,
                "JSON_PARSER_ERROR",
                "The request body is not a JSON object",
            ))
        }
    };
    let (mut title, mut text) = (None, None);
    for (name, value) in object {
        match (name.to_ascii_lowercase().as_str(), value) {
            ("title", Value::String(s)) => title = Some(s),
            ("body", Value::String(s)) => text = Some(Some(s)),
            ("body", Value::Null) => text = Some(None),
            ("title" | "body", _) => {
                return Err(api_error(
                    StatusCode::BAD_REQUEST,
                    "JSON_PARSER_ERROR",
                    "Title and Body must be strings",
                ))
            }
            ("attributes", _) => {}
            _ => {
                // The name is echoed as Salesforce does, but only when it is a plain identifier.
                let shown = if name.len() <= 40
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    name.as_str()
                } else {
                    "?"
                };
                return Err(api_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_FIELD",
                    &format!("No such column '{shown}' on sobject of type Note"),
                ));
            }
        }
    }
    if title
        .as_ref()
        .is_some_and(|t| t.chars().count() > NOTE_TITLE_MAX)
    {
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            "STRING_TOO_LONG",
            "Title: data value too large (max length=80)",
        ));
    }
    if text
        .as_ref()
        .and_then(|b| b.as_ref())
        .is_some_and(|b| b.chars().count() > NOTE_BODY_MAX)
    {
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            "STRING_TOO_LONG",
            "Body: data value too large (max length=32000)",
        ));
    }
    Ok((title, text))
}

async fn create(
    State(state): State<AppState>,
    Path((version, object)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let record = match note_call(&state, &headers, &version, &object).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let (title, text) = match note_fields(&body, &headers) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let Some(title) = title.filter(|t| !t.trim().is_empty()) else {
        return json(
            StatusCode::BAD_REQUEST,
            &json!([{ "message": "Required fields are missing: [Title]", "errorCode": "REQUIRED_FIELD_MISSING", "fields": ["Title"] }]),
        );
    };
    let now = state.authority.now();
    let note = Note {
        id: salesforce_id("002", state.authority.rng()),
        owner_id: record.user_id.clone(),
        title,
        body: text.flatten(),
        created_at: now,
        modified_at: now,
    };
    match state.authority.store().insert_note(&note).await {
        Ok(()) => json(
            StatusCode::CREATED,
            &json!({ "id": note.id, "success": true, "errors": [] }),
        ),
        Err(e) => storage_error(e),
    }
}

/// The caller's note with this id (another user's notes do not exist for them).
async fn own_note(state: &AppState, owner: &str, id: &str) -> Result<Note, Response> {
    match state.authority.store().note(id).await {
        Ok(Some(note)) if note.owner_id == owner => Ok(note),
        Ok(_) => Err(not_found()),
        Err(e) => Err(storage_error(e)),
    }
}

async fn retrieve(
    State(state): State<AppState>,
    Path((version, object, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let (record, v) = match api_call(&state, &headers, &version).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match object.as_str() {
        "Note" => match own_note(&state, &record.user_id, &id).await {
            Ok(note) => json(StatusCode::OK, &note_json(&note, &v)),
            Err(r) => r,
        },
        "User" => match state.authority.store().user_by_id(&id).await {
            Ok(Some(user)) if user.org_id == record.org_id => {
                json(StatusCode::OK, &user_json(&user, &v))
            }
            Ok(_) => not_found(),
            Err(e) => storage_error(e),
        },
        _ => not_found(),
    }
}

async fn update(
    State(state): State<AppState>,
    Path((version, object, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let record = match note_call(&state, &headers, &version, &object).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let mut note = match own_note(&state, &record.user_id, &id).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let (title, text) = match note_fields(&body, &headers) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if let Some(title) = title {
        if title.trim().is_empty() {
            return api_error(
                StatusCode::BAD_REQUEST,
                "REQUIRED_FIELD_MISSING",
                "Required fields are missing: [Title]",
            );
        }
        note.title = title;
    }
    if let Some(text) = text {
        note.body = text;
    }
    note.modified_at = state.authority.now();
    match state.authority.store().update_note(&note).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => not_found(),
        Err(e) => storage_error(e),
    }
}

async fn delete(
    State(state): State<AppState>,
    Path((version, object, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let record = match note_call(&state, &headers, &version, &object).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    if let Err(r) = own_note(&state, &record.user_id, &id).await {
        return r;
    }
    match state.authority.store().delete_note(&id).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => not_found(),
        Err(e) => storage_error(e),
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct QueryParams {
    q: Option<String>,
}

/// A parsed `SELECT f1, f2 FROM Object [LIMIT n]`: the only SOQL this server understands.
#[derive(Debug, PartialEq, Eq)]
struct Soql {
    fields: Vec<String>,
    object: String,
    limit: Option<u32>,
}

fn parse_soql(text: &str) -> Option<Soql> {
    let words: Vec<&str> = text.split_whitespace().collect();
    if !words.first()?.eq_ignore_ascii_case("select") {
        return None;
    }
    let from = words.iter().position(|w| w.eq_ignore_ascii_case("from"))?;
    let fields: Vec<String> = words[1..from]
        .join(" ")
        .split(',')
        .map(|f| f.trim().to_owned())
        .collect();
    if fields.iter().any(|f| f.is_empty()) {
        return None;
    }
    let object = (*words.get(from + 1)?).to_owned();
    let limit = match &words[from + 2..] {
        [] => None,
        [kw, n] if kw.eq_ignore_ascii_case("limit") => Some(n.parse().ok()?),
        _ => return None,
    };
    Some(Soql {
        fields,
        object,
        limit,
    })
}

fn project(full: &Value, fields: &[String]) -> Result<Value, String> {
    let mut out = Map::new();
    out.insert("attributes".into(), full["attributes"].clone());
    let object = full.as_object().cloned().unwrap_or_default();
    for field in fields {
        let (name, value) = object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(field) && k.as_str() != "attributes")
            .ok_or_else(|| field.clone())?;
        out.insert(name.clone(), value.clone());
    }
    Ok(Value::Object(out))
}

async fn query(
    State(state): State<AppState>,
    Path(version): Path<String>,
    Query(params): Query<QueryParams>,
    headers: HeaderMap,
) -> Response {
    let (record, v) = match api_call(&state, &headers, &version).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(soql) = params.q.as_deref().and_then(parse_soql) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "Only SELECT field, ... FROM Note|User [LIMIT n] is supported",
        );
    };
    let limit = soql.limit.unwrap_or(2000).min(2000);
    let rows: Vec<Value> = match soql.object.to_ascii_lowercase().as_str() {
        "note" => match state
            .authority
            .store()
            .list_notes(&record.user_id, limit)
            .await
        {
            Ok(notes) => notes.iter().map(|n| note_json(n, &v)).collect(),
            Err(e) => return storage_error(e),
        },
        "user" => match state.authority.store().user_by_id(&record.user_id).await {
            Ok(user) => user
                .iter()
                .take(limit as usize)
                .map(|u| user_json(u, &v))
                .collect(),
            Err(e) => return storage_error(e),
        },
        _ => {
            let shown: String = soql
                .object
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(40)
                .collect();
            return api_error(
                StatusCode::BAD_REQUEST,
                "INVALID_TYPE",
                &format!("sObject type '{shown}' is not supported."),
            );
        }
    };
    let mut records = Vec::with_capacity(rows.len());
    for row in &rows {
        match project(row, &soql.fields) {
            Ok(r) => records.push(r),
            Err(field) => {
                let shown: String = field
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .take(40)
                    .collect();
                return api_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_FIELD",
                    &format!("No such column '{shown}' on entity '{}'", soql.object),
                );
            }
        }
    }
    json(
        StatusCode::OK,
        &json!({ "totalSize": records.len(), "done": true, "records": records }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_20_to_current_are_served() {
        assert_eq!(parse_version("v20.0"), Some("20.0"));
        assert_eq!(
            parse_version(&format!("v{CURRENT_API_VERSION}")),
            Some(CURRENT_API_VERSION)
        );
        assert_eq!(parse_version("v19.0"), None);
        assert_eq!(parse_version("v99.0"), None);
        assert_eq!(parse_version("59.0"), None);
        assert_eq!(parse_version("v59.1"), None);
    }

    #[test]
    fn soql_subset_parses() {
        assert_eq!(
            parse_soql("SELECT Id, Title FROM Note LIMIT 5"),
            Some(Soql {
                fields: vec!["Id".into(), "Title".into()],
                object: "Note".into(),
                limit: Some(5)
            })
        );
        assert_eq!(
            parse_soql("select Id from ScratchOrgInfo limit 1")
                .unwrap()
                .object,
            "ScratchOrgInfo"
        );
        assert_eq!(parse_soql("SELECT FROM Note"), None);
        assert_eq!(parse_soql("DELETE Note"), None);
        assert_eq!(parse_soql("SELECT Id FROM Note WHERE x = 1"), None);
    }
}
