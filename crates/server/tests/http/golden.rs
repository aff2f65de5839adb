//! Golden files of the documents relying parties parse: the OpenID Connect discovery document
//! and a userinfo response, compared whole, keys in the order they are sent, so that a field
//! added, removed, renamed or moved fails here first (docs/openid-connect.md). The random org
//! and user ids are replaced by `<org_id>` and `<user_id>` before comparing.
//!
//! After a deliberate change, `TESSERA_BLESS=1 cargo test -p tessera-server --test http golden`
//! writes the files anew; review their diff like code.

use std::path::PathBuf;

use axum::http::{Method, StatusCode};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use tessera_core::operations::admin::ClientSettings;

use crate::identity::access_token;
use crate::support::*;

/// A JSON object's entries in the order they came, which `serde_json::Value` does not keep
/// without the `preserve_order` feature.
struct Entries(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

/// The body as the golden file holds it: one top-level key a line, in the order sent, nested
/// values pretty-printed.
fn render(body: &[u8]) -> String {
    let Entries(entries) = serde_json::from_slice(body).expect("a JSON object");
    let lines: Vec<String> = entries
        .iter()
        .map(|(key, value)| {
            let value = serde_json::to_string_pretty(value).unwrap();
            format!(
                "  {}: {}",
                Value::from(key.as_str()),
                value.replace('\n', "\n  ")
            )
        })
        .collect();
    format!("{{\n{}\n}}\n", lines.join(",\n"))
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/http/golden")
        .join(name)
}

/// Compares `actual` with the golden file `name`, or writes it under `TESSERA_BLESS=1`.
fn assert_golden(name: &str, actual: &str) {
    let path = golden_path(name);
    if std::env::var_os("TESSERA_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; TESSERA_BLESS=1 writes it from this run",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs from this run (TESSERA_BLESS=1 rewrites it after a deliberate change)\n\
         --- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

#[tokio::test]
async fn the_discovery_documents_match_their_golden_files() {
    let h = Harness::new().await;
    for document in ["openid-configuration", "oauth-authorization-server"] {
        let reply = h.get(&format!("/.well-known/{document}"), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{document}: {}", reply.text());
        assert_golden(&format!("{document}.json"), &render(&reply.body));
    }
}

#[tokio::test]
async fn a_userinfo_response_matches_its_golden_file_keys_in_salesforces_order() {
    let h = Harness::new().await;
    let client = h
        .client(
            false,
            ClientSettings {
                scopes: Some("openid api refresh_token".into()),
                ..Default::default()
            },
        )
        .await;
    let access = access_token(&h, &client, "openid api").await;
    let reply = h
        .api(Method::GET, "/services/oauth2/userinfo", &access, None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let info = reply.json();
    let org_id = info["organization_id"].as_str().unwrap();
    let user_id = info["user_id"].as_str().unwrap();
    let rendered = render(&reply.body)
        .replace(org_id, "<org_id>")
        .replace(user_id, "<user_id>");
    assert_golden("userinfo.json", &rendered);
}
