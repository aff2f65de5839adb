//! `/services/data`: authentication, versions, and the Note object
//! (docs/salesforce-compatibility.md, "REST API").

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::json;
use tessera_core::operations::admin::ClientSettings;

use crate::support::*;

async fn token(h: &Harness, scope: &str) -> String {
    let c = h.confidential().await;
    h.login(&c, scope).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub(crate) fn assert_invalid_session(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!([{ "message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID" }])
    );
    assert_eq!(
        reply.header("content-type"),
        Some("application/json;charset=UTF-8")
    );
    let challenges: Vec<&str> = reply
        .headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(challenges.contains(&"Token"), "{challenges:?}");
}

#[tokio::test]
async fn missing_unknown_and_expired_tokens_get_invalid_session() {
    let h = Harness::new().await;
    let no_header = h
        .send(
            Request::get("/services/data/v65.0/")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_invalid_session(&no_header);
    assert_invalid_session(
        &h.api(
            Method::GET,
            "/services/data/v65.0/",
            "00D000000000000!bogus",
            None,
        )
        .await,
    );
    assert_invalid_session(
        &h.api(
            Method::GET,
            "/services/data/v65.0/sobjects/Note",
            "garbage",
            None,
        )
        .await,
    );

    let c = h
        .client(
            false,
            ClientSettings {
                access_token_ttl_secs: Some(60),
                ..Default::default()
            },
        )
        .await;
    let access = h.login(&c, "api refresh_token").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        h.api(Method::GET, "/services/data/v65.0/", &access, None)
            .await
            .status,
        StatusCode::OK
    );
    h.clock.advance_secs(60);
    assert_invalid_session(
        &h.api(Method::GET, "/services/data/v65.0/", &access, None)
            .await,
    );
}

#[tokio::test]
async fn bearer_and_oauth_schemes_both_work() {
    let h = Harness::new().await;
    let access = token(&h, "api").await;
    for scheme in ["Bearer", "OAuth"] {
        let reply = h
            .send(
                Request::get("/services/data/v65.0/")
                    .header(header::AUTHORIZATION, format!("{scheme} {access}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{scheme}");
        assert!(reply.json()["identity"]
            .as_str()
            .unwrap()
            .contains("/id/00D"));
    }
}

#[tokio::test]
async fn tokens_without_the_api_scope_are_forbidden() {
    let h = Harness::new().await;
    let access = token(&h, "id").await;
    let reply = h
        .api(
            Method::GET,
            "/services/data/v65.0/sobjects/Note",
            &access,
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(reply.json()[0]["errorCode"].is_string());
}

#[tokio::test]
async fn versions_are_listed_and_every_one_since_20_is_served() {
    let h = Harness::new().await;
    let list = h.get("/services/data", None).await;
    assert_eq!(list.status, StatusCode::OK);
    let versions = list.json();
    let versions = versions.as_array().unwrap();
    assert_eq!(versions[0]["version"], "20.0");
    assert_eq!(versions.last().unwrap()["url"], "/services/data/v65.0");
    let access = token(&h, "api").await;
    for v in ["v20.0", "v51.0", "v59.0", "v65.0"] {
        assert_eq!(
            h.api(Method::GET, &format!("/services/data/{v}"), &access, None)
                .await
                .status,
            StatusCode::OK,
            "{v}"
        );
    }
    for v in ["v19.0", "v99.0", "latest"] {
        assert_eq!(
            h.api(Method::GET, &format!("/services/data/{v}/"), &access, None)
                .await
                .status,
            StatusCode::NOT_FOUND,
            "{v}"
        );
    }
}

#[tokio::test]
async fn notes_can_be_created_read_listed_updated_and_deleted() {
    let h = Harness::new().await;
    let access = token(&h, "api").await;
    let base = "/services/data/v59.0/sobjects/Note";
    let created = h
        .api(
            Method::POST,
            base,
            &access,
            Some(json!({ "Title": "Hello", "Body": "World" })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let id = created.json()["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("002") && id.len() == 18);
    assert_eq!(created.json()["success"], true);

    let read = h
        .api(Method::GET, &format!("{base}/{id}"), &access, None)
        .await
        .json();
    assert_eq!(read["Title"], "Hello");
    assert_eq!(read["Body"], "World");
    assert_eq!(read["attributes"]["type"], "Note");
    assert_eq!(read["attributes"]["url"], format!("{base}/{id}"));
    assert!(read["CreatedDate"].as_str().unwrap().ends_with("+0000"));

    let list = h.api(Method::GET, base, &access, None).await.json();
    assert_eq!(list["recentItems"][0]["Id"], id);
    assert_eq!(
        list["recentItems"][0]["attributes"]["url"],
        format!("{base}/{id}")
    );

    let patched = h
        .api(
            Method::PATCH,
            &format!("{base}/{id}"),
            &access,
            Some(json!({ "body": "Changed" })),
        )
        .await;
    assert_eq!(patched.status, StatusCode::NO_CONTENT);
    assert_eq!(
        h.api(Method::GET, &format!("{base}/{id}"), &access, None)
            .await
            .json()["Body"],
        "Changed"
    );

    let query = h
        .api(
            Method::GET,
            "/services/data/v59.0/query?q=SELECT+Id,+Title+FROM+Note",
            &access,
            None,
        )
        .await;
    assert_eq!(query.status, StatusCode::OK);
    assert_eq!(query.json()["records"][0]["Title"], "Hello");
    assert_eq!(query.json()["totalSize"], 1);

    assert_eq!(
        h.api(Method::DELETE, &format!("{base}/{id}"), &access, None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let gone = h
        .api(Method::GET, &format!("{base}/{id}"), &access, None)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.json()[0]["errorCode"], "NOT_FOUND");
}

/// `…/sobjects/Note/` was a 404 while `…/sobjects/Note` answered: every resource must answer
/// the same with a trailing slash, for every method it has.
#[tokio::test]
async fn a_trailing_slash_on_any_rest_resource_is_not_a_404() {
    let h = Harness::new().await;
    let access = token(&h, "api").await;
    let notes = "/services/data/v65.0/sobjects/Note";
    let created = h
        .api(
            Method::POST,
            &format!("{notes}/"),
            &access,
            Some(json!({ "Title": "Slashed", "Body": "at the end" })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let note = format!("{notes}/{id}");
    for path in [
        "/services/data".to_owned(),
        "/services/data/v65.0".to_owned(),
        "/services/data/v65.0/sobjects".to_owned(),
        notes.to_owned(),
        note.clone(),
        "/services/data/v65.0/query".to_owned(),
    ] {
        let plain = h.api(Method::GET, &path, &access, None).await;
        let slashed = h.api(Method::GET, &format!("{path}/"), &access, None).await;
        assert_ne!(slashed.status, StatusCode::NOT_FOUND, "{path}/");
        assert_eq!(
            (slashed.status, slashed.text()),
            (plain.status, plain.text()),
            "{path} and {path}/ differ"
        );
    }
    let queried = h
        .api(
            Method::GET,
            "/services/data/v65.0/query/?q=SELECT+Id,+Title+FROM+Note",
            &access,
            None,
        )
        .await;
    assert_eq!(queried.status, StatusCode::OK, "{}", queried.text());
    assert_eq!(queried.json()["records"][0]["Title"], "Slashed");
    let patched = h
        .api(
            Method::PATCH,
            &format!("{note}/"),
            &access,
            Some(json!({ "Body": "changed" })),
        )
        .await;
    assert_eq!(patched.status, StatusCode::NO_CONTENT, "{}", patched.text());
    let deleted = h
        .api(Method::DELETE, &format!("{note}/"), &access, None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text());
}

#[tokio::test]
async fn bad_note_input_gets_salesforce_errors() {
    let h = Harness::new().await;
    let access = token(&h, "api").await;
    let base = "/services/data/v59.0/sobjects/Note";
    let missing = h
        .api(Method::POST, base, &access, Some(json!({ "Body": "x" })))
        .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.json()[0]["errorCode"], "REQUIRED_FIELD_MISSING");
    let unknown = h
        .api(
            Method::POST,
            base,
            &access,
            Some(json!({ "Title": "x", "Color": "red" })),
        )
        .await;
    assert_eq!(unknown.json()[0]["errorCode"], "INVALID_FIELD");
    let long = h
        .api(
            Method::POST,
            base,
            &access,
            Some(json!({ "Title": "x".repeat(81) })),
        )
        .await;
    assert_eq!(long.json()[0]["errorCode"], "STRING_TOO_LONG");
    let not_json = h
        .send(
            Request::post(base)
                .header(header::AUTHORIZATION, format!("Bearer {access}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{nope"))
                .unwrap(),
        )
        .await;
    assert_eq!(not_json.json()[0]["errorCode"], "JSON_PARSER_ERROR");
    let wrong_type = h
        .send(
            Request::post(base)
                .header(header::AUTHORIZATION, format!("Bearer {access}"))
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from("x"))
                .unwrap(),
        )
        .await;
    assert_eq!(wrong_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let scratch = h
        .api(
            Method::GET,
            "/services/data/v51.0/query?q=SELECT+Id+FROM+ScratchOrgInfo+limit+1",
            &access,
            None,
        )
        .await;
    assert_eq!(scratch.status, StatusCode::BAD_REQUEST);
    assert_eq!(scratch.json()[0]["errorCode"], "INVALID_TYPE");
    let other_object = h
        .api(
            Method::GET,
            "/services/data/v59.0/sobjects/Account/001000000000000AAA",
            &access,
            None,
        )
        .await;
    assert_eq!(other_object.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn users_see_only_their_own_notes() {
    let h = Harness::new().await;
    let mine = token(&h, "api").await;
    let id = h
        .api(
            Method::POST,
            "/services/data/v59.0/sobjects/Note",
            &mine,
            Some(json!({ "Title": "private" })),
        )
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    h.authority
        .operator()
        .create_user(
            "bob@example.com",
            tessera_proto::Password::new("bob password 1"),
            None,
        )
        .await
        .unwrap();
    let c = h.confidential().await;
    let bob = h
        .authority
        .operator()
        .mint_for(&c.id, "bob@example.com", "api")
        .await
        .unwrap();
    use tessera_proto::ExposeSecret;
    let theirs = bob.access_token.expose_secret();
    assert_eq!(
        h.api(
            Method::GET,
            &format!("/services/data/v59.0/sobjects/Note/{id}"),
            theirs,
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.api(
            Method::DELETE,
            &format!("/services/data/v59.0/sobjects/Note/{id}"),
            theirs,
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_user_object_is_readable() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let body = h.login(&c, "api").await;
    let user_id = body["id"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let user = h
        .api(
            Method::GET,
            &format!("/services/data/v51.0/sobjects/User/{user_id}"),
            body["access_token"].as_str().unwrap(),
            None,
        )
        .await;
    assert_eq!(user.status, StatusCode::OK);
    assert_eq!(user.json()["Username"], USERNAME);
}
