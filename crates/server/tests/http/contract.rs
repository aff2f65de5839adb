//! The OpenAPI document (crates/server/openapi.json, docs/contract.md) against the router: the
//! same paths, and on each path the documented methods routed and every other one refused 405.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::Value;
use tessera_server::{routed_paths, OPENAPI_JSON};

use crate::support::Harness;

/// The methods a path item may name that the router could answer.
const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

fn document() -> Value {
    serde_json::from_str(OPENAPI_JSON).expect("openapi.json is JSON")
}

/// Each documented path with the methods its path item names.
fn documented_operations() -> BTreeMap<String, BTreeSet<String>> {
    let doc = document();
    let paths = doc["paths"].as_object().expect("a paths object");
    paths
        .iter()
        .map(|(path, item)| {
            let item = item.as_object().expect("a path item");
            let methods = METHODS
                .iter()
                .map(|m| m.as_str().to_ascii_lowercase())
                .filter(|m| item.contains_key(m))
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

/// A concrete URL for a templated path: a real version, a real object; the rest need not exist,
/// since only routing is under test.
fn concrete(path: &str) -> String {
    path.replace("{version}", "v65.0")
        .replace("{object}", "Note")
        .replace("{id}", "0020000000000001")
        .replace("{org_id}", "00D000000000001")
        .replace("{user_id}", "005000000000001")
        .replace("{client_id}", "3MVG9000000000001")
        .replace("{grant_id}", "0Gr000000000001")
        .replace("{action}", "disable")
}

#[test]
fn the_document_lists_exactly_the_routers_paths() {
    let documented: BTreeSet<String> = documented_operations().into_keys().collect();
    let routed: BTreeSet<String> = routed_paths().into_iter().map(str::to_owned).collect();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routed but not in openapi.json: {undocumented:?}; in openapi.json but not routed: {unrouted:?}"
    );
}

#[test]
fn the_document_is_openapi_3_1_with_an_operation_id_for_each_operation() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut ids = BTreeSet::new();
    for (path, methods) in documented_operations() {
        assert!(!methods.is_empty(), "{path} has no operation");
        for method in methods {
            let id = doc["paths"][&path][&method]["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(ids.insert(id.to_owned()), "operationId {id} is used twice");
        }
    }
}

#[tokio::test]
async fn documented_methods_are_routed_and_the_others_refused_405() {
    // With the playground on, so that its paths are routed too.
    let h = Harness::learning().await;
    for (path, documented) in documented_operations() {
        let url = concrete(&path);
        for method in METHODS {
            let request = Request::builder()
                .method(method.clone())
                .uri(&url)
                .body(Body::empty())
                .unwrap();
            let status = h.send(request).await.status;
            if documented.contains(&method.as_str().to_ascii_lowercase()) {
                assert_ne!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is documented but not routed"
                );
                assert_ne!(
                    (status, path.as_str()),
                    (StatusCode::NOT_FOUND, "/healthz"),
                    "the fallback answered"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is answered but not documented"
                );
            }
        }
    }
}

#[tokio::test]
async fn the_document_is_served_at_openapi_json() {
    let h = Harness::new().await;
    let reply = h.get("/openapi.json", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.json(), document());
}
