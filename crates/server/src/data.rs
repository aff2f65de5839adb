//! The resource server: a small `/services/data` in Salesforce's shapes, so that API calls made
//! with a token do real work (docs/salesforce-compatibility.md, "REST API").

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{json, Map, Value};
use tessera_core::flows::resource::{ApiCaller, NoteFields, NOTE_QUERY_MAX};
use tessera_core::model::{Note, User};

use crate::dates::{salesforce_datetime, SalesforceDateTime};
use crate::error::{ApiError, WebError};
use crate::extract::{Api, JsonObject};
use crate::reply::json;
use crate::{AppState, Routes};

/// The newest API version served; every version from v20.0 up to it is accepted.
pub const CURRENT_API_VERSION: &str = "65.0";
const OLDEST_API_MAJOR: u32 = 20;

/// Routes a resource at its path and at the same path with a trailing slash: Salesforce answers
/// both, and clients that join URL segments often leave one (`…/sobjects/Note/`). One macro for
/// every resource, so that none can be routed in one form only.
macro_rules! resource {
    ($routes:expr, $path:literal, $methods:expr) => {{
        let methods = $methods;
        $routes
            .route($path, methods.clone())
            .route(concat!($path, "/"), methods)
    }};
}

pub(crate) fn routes(routes: Routes) -> Routes {
    let routes = resource!(routes, "/services/data", get(versions));
    let routes = resource!(routes, "/services/data/{version}", get(resources));
    let routes = resource!(
        routes,
        "/services/data/{version}/sobjects",
        get(describe_global)
    );
    let routes = resource!(
        routes,
        "/services/data/{version}/sobjects/{object}",
        get(object_root).post(create)
    );
    let routes = resource!(
        routes,
        "/services/data/{version}/sobjects/{object}/{id}",
        get(retrieve).patch(update).delete(delete)
    );
    resource!(routes, "/services/data/{version}/query", get(query))
}

fn current_major() -> u32 {
    CURRENT_API_VERSION
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(OLDEST_API_MAJOR)
}

/// `vNN.N` within the served range; the caller was authenticated first, as Salesforce reports
/// an invalid session before an unknown version.
pub(crate) fn version(text: &str) -> Result<&str, ApiError> {
    let number = text.strip_prefix('v').ok_or(ApiError::NotFound)?;
    let (major, minor) = number.split_once('.').ok_or(ApiError::NotFound)?;
    let major: u32 = major.parse().map_err(|_| ApiError::NotFound)?;
    (minor == "0" && (OLDEST_API_MAJOR..=current_major()).contains(&major))
        .then_some(number)
        .ok_or(ApiError::NotFound)
}

/// Only `Note` can be written.
fn writable(object: &str) -> Result<(), ApiError> {
    if object == "Note" {
        Ok(())
    } else {
        Err(ApiError::NotFound)
    }
}

async fn versions() -> Response {
    let list: Vec<Value> = (OLDEST_API_MAJOR..=current_major())
        .map(|major| json!({ "label": format!("API v{major}.0"), "url": format!("/services/data/v{major}.0"), "version": format!("{major}.0") }))
        .collect();
    json(StatusCode::OK, &list)
}

async fn resources(
    State(state): State<AppState>,
    Path(v): Path<String>,
    Api(caller): Api,
) -> Result<Response, WebError> {
    let base = format!("/services/data/v{}", version(&v)?);
    let token = &caller.token;
    Ok(json(
        StatusCode::OK,
        &json!({
            "sobjects": format!("{base}/sobjects"),
            "query": format!("{base}/query"),
            "identity": state.authority.identity_url(&token.org_id, &token.user_id),
        }),
    ))
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

async fn describe_global(Path(v): Path<String>, _: Api) -> Result<Response, WebError> {
    let v = version(&v)?;
    Ok(json(
        StatusCode::OK,
        &json!({ "encoding": "UTF-8", "maxBatchSize": 200, "sobjects": [describe("Note", v), describe("User", v)] }),
    ))
}

fn note_json(note: &Note, v: &str) -> Value {
    json!({
        "attributes": { "type": "Note", "url": note_url(v, &note.id) },
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

/// A User record as Salesforce lays it out: `attributes` first, then the fields. Typed rather
/// than built as a `Value`: it is the body of the most frequent API call.
#[derive(serde::Serialize)]
struct UserRecord<'a> {
    attributes: Attributes<'a>,
    #[serde(rename = "Id")]
    id: &'a str,
    #[serde(rename = "Username")]
    username: &'a str,
    #[serde(rename = "Name")]
    name: &'a str,
    #[serde(rename = "LastName")]
    last_name: &'a str,
    #[serde(rename = "Email")]
    email: Option<&'a str>,
    #[serde(rename = "IsActive")]
    is_active: bool,
    #[serde(rename = "CreatedDate")]
    created_date: SalesforceDateTime,
}

#[derive(serde::Serialize)]
struct Attributes<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    url: RecordUrl<'a>,
}

/// A record's URL, written straight into the body rather than built as a `String` first.
struct RecordUrl<'a> {
    version: &'a str,
    object: &'static str,
    id: &'a str,
}

impl std::fmt::Display for RecordUrl<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            version,
            object,
            id,
        } = self;
        write!(f, "/services/data/v{version}/sobjects/{object}/{id}")
    }
}

/// A Note's URL, for the bodies built as a `Value`.
fn note_url(version: &str, id: &str) -> String {
    RecordUrl {
        version,
        object: "Note",
        id,
    }
    .to_string()
}

impl serde::Serialize for RecordUrl<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The same, as a `Value`, for queries that project fields.
fn user_json(user: &User, v: &str) -> Value {
    serde_json::to_value(user_record(user, v)).unwrap_or_default()
}

fn user_record<'a>(user: &'a User, v: &'a str) -> UserRecord<'a> {
    let name = user.username.split('@').next().unwrap_or(&user.username);
    UserRecord {
        attributes: Attributes {
            kind: "User",
            url: RecordUrl {
                version: v,
                object: "User",
                id: &user.id,
            },
        },
        id: &user.id,
        username: &user.username,
        name,
        last_name: name,
        email: user.email.as_deref(),
        is_active: !user.disabled,
        created_date: SalesforceDateTime(user.created_at.millis()),
    }
}

async fn object_root(
    State(state): State<AppState>,
    Path((v, object)): Path<(String, String)>,
    Api(caller): Api,
) -> Result<Response, WebError> {
    let v = version(&v)?;
    let body = match object.as_str() {
        "Note" => {
            let notes = state.authority.notes(&caller, 200).await?;
            let recent: Vec<Value> = notes
                .iter()
                .map(|n| json!({ "attributes": { "type": "Note", "url": note_url(v, &n.id) }, "Id": n.id, "Title": n.title }))
                .collect();
            json!({ "objectDescribe": describe("Note", v), "recentItems": recent })
        }
        "User" => json!({ "objectDescribe": describe("User", v), "recentItems": [] }),
        _ => return Err(ApiError::NotFound.into()),
    };
    Ok(json(StatusCode::OK, &body))
}

/// The name of an unknown field, echoed as Salesforce does, but only when it is a plain
/// identifier.
fn shown_field(name: &str) -> &str {
    if name.len() <= 40 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        name
    } else {
        "?"
    }
}

/// Title and Body of a Note from a JSON object; field names are case-insensitive, as
/// Salesforce's. The domain checks their rules.
fn note_fields(object: Map<String, Value>) -> Result<NoteFields, ApiError> {
    let mut fields = NoteFields::default();
    for (name, value) in object {
        match (name.to_ascii_lowercase().as_str(), value) {
            ("title", Value::String(s)) => fields.title = Some(s),
            ("body", Value::String(s)) => fields.body = Some(Some(s)),
            ("body", Value::Null) => fields.body = Some(None),
            ("title" | "body", _) => {
                return Err(ApiError::JsonParser("Title and Body must be strings"))
            }
            ("attributes", _) => {}
            _ => {
                return Err(ApiError::InvalidField(format!(
                    "No such column '{}' on sobject of type Note",
                    shown_field(&name)
                )))
            }
        }
    }
    Ok(fields)
}

async fn create(
    State(state): State<AppState>,
    Path((v, object)): Path<(String, String)>,
    Api(caller): Api,
    JsonObject(body): JsonObject,
) -> Result<Response, WebError> {
    version(&v)?;
    writable(&object)?;
    let note = state
        .authority
        .create_note(&caller, note_fields(body)?)
        .await?;
    Ok(json(
        StatusCode::CREATED,
        &json!({ "id": note.id, "success": true, "errors": [] }),
    ))
}

async fn retrieve(
    State(state): State<AppState>,
    Path((v, object, id)): Path<(String, String, String)>,
    Api(caller): Api,
) -> Result<Response, WebError> {
    let v = version(&v)?;
    Ok(match object.as_str() {
        "Note" => json(
            StatusCode::OK,
            &note_json(&state.authority.note(&caller, &id).await?, v),
        ),
        "User" => {
            let user = state.authority.api_user(&caller, &id).await?;
            json(StatusCode::OK, &user_record(&user, v))
        }
        _ => return Err(ApiError::NotFound.into()),
    })
}

async fn update(
    State(state): State<AppState>,
    Path((v, object, id)): Path<(String, String, String)>,
    Api(caller): Api,
    JsonObject(body): JsonObject,
) -> Result<Response, WebError> {
    version(&v)?;
    writable(&object)?;
    state
        .authority
        .update_note(&caller, &id, note_fields(body)?)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn delete(
    State(state): State<AppState>,
    Path((v, object, id)): Path<(String, String, String)>,
    Api(caller): Api,
) -> Result<Response, WebError> {
    version(&v)?;
    writable(&object)?;
    state.authority.delete_note(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
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
    let fields: Vec<String> = words
        .get(1..from)?
        .join(" ")
        .split(',')
        .map(|f| f.trim().to_owned())
        .collect();
    if fields.iter().any(|f| f.is_empty()) {
        return None;
    }
    let object = (*words.get(from + 1)?).to_owned();
    let limit = match words.get(from + 2..)? {
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

/// An identifier from the request, made safe to echo in an error message.
pub(crate) fn echoed(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(40)
        .collect()
}

async fn query(
    State(state): State<AppState>,
    Path(v): Path<String>,
    Query(params): Query<QueryParams>,
    Api(caller): Api,
) -> Result<Response, WebError> {
    let v = version(&v)?;
    let soql = params
        .q
        .as_deref()
        .and_then(parse_soql)
        .ok_or(ApiError::MalformedQuery)?;
    let limit = soql.limit.unwrap_or(NOTE_QUERY_MAX).min(NOTE_QUERY_MAX);
    let rows = match soql.object.to_ascii_lowercase().as_str() {
        "note" => notes_json(&state, &caller, limit, v).await?,
        "user" => {
            let me = state
                .authority
                .api_user(&caller, &caller.token.user_id)
                .await?;
            std::iter::once(me)
                .take(limit as usize)
                .map(|u| user_json(&u, v))
                .collect()
        }
        _ => {
            return Err(ApiError::InvalidType(format!(
                "sObject type '{}' is not supported.",
                echoed(&soql.object)
            ))
            .into())
        }
    };
    let records = rows
        .iter()
        .map(|row| project(row, &soql.fields))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|field| {
            ApiError::InvalidField(format!(
                "No such column '{}' on entity '{}'",
                echoed(&field),
                echoed(&soql.object)
            ))
        })?;
    Ok(json(
        StatusCode::OK,
        &json!({ "totalSize": records.len(), "done": true, "records": records }),
    ))
}

async fn notes_json(
    state: &AppState,
    caller: &ApiCaller,
    limit: u32,
    v: &str,
) -> Result<Vec<Value>, WebError> {
    let notes = state.authority.notes(caller, limit).await?;
    Ok(notes.iter().map(|n| note_json(n, v)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_20_to_current_are_served() {
        assert_eq!(version("v20.0").ok(), Some("20.0"));
        assert_eq!(
            version(&format!("v{CURRENT_API_VERSION}")).ok(),
            Some(CURRENT_API_VERSION)
        );
        for bad in ["v19.0", "v99.0", "59.0", "v59.1"] {
            assert!(version(bad).is_err(), "{bad}");
        }
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
