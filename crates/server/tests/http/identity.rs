//! Identity URL, userinfo and discovery (docs/salesforce-compatibility.md, "Identity URL and
//! userinfo", "Discovery").

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};

use crate::support::*;

#[tokio::test]
async fn identity_url_answers_with_header_or_query_token() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let body = h.login(&c, "api id refresh_token").await;
    let id_url = body["id"].as_str().unwrap();
    let path = id_url.strip_prefix(ISSUER).unwrap();
    let access = body["access_token"].as_str().unwrap();
    let with_header = h.api(Method::GET, path, access, None).await;
    assert_eq!(with_header.status, StatusCode::OK, "{}", with_header.text());
    let identity = with_header.json();
    assert_eq!(identity["username"], USERNAME);
    assert_eq!(identity["id"], id_url);
    assert!(identity["user_id"].as_str().unwrap().starts_with("005"));
    assert!(identity["organization_id"]
        .as_str()
        .unwrap()
        .starts_with("00D"));
    assert!(identity["urls"]["rest"].is_string());
    let query = format!(
        "{path}?format=json&oauth_token={}",
        url::form_urlencoded::byte_serialize(access.as_bytes()).collect::<String>()
    );
    assert_eq!(h.get(&query, None).await.status, StatusCode::OK);
    let post = h
        .send(
            Request::post(path)
                .header(header::AUTHORIZATION, format!("Bearer {access}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(post.status, StatusCode::OK);
}

#[tokio::test]
async fn identity_errors_are_plain_text() {
    let h = Harness::new().await;
    let bad = h
        .get(
            "/id/00D000000000000AAA/005000000000000AAA?oauth_token=nope",
            None,
        )
        .await;
    assert_eq!(bad.status, StatusCode::FORBIDDEN);
    assert_eq!(bad.text(), "Bad_OAuth_Token");
    let missing = h
        .get("/id/00D000000000000AAA/005000000000000AAA", None)
        .await;
    assert_eq!(missing.text(), "Missing_OAuth_Token");
    let c = h.confidential().await;
    let access = h.login(&c, "api").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let wrong_org = h
        .api(
            Method::GET,
            "/id/00D000000000000AAA/005000000000000AAA",
            &access,
            None,
        )
        .await;
    assert_eq!(wrong_org.text(), "Wrong_Org");
}

#[tokio::test]
async fn userinfo_returns_salesforce_fields() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let access = h.login(&c, "api id").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let info = h
        .api(Method::GET, "/services/oauth2/userinfo", &access, None)
        .await;
    assert_eq!(info.status, StatusCode::OK);
    let info = info.json();
    assert_eq!(info["preferred_username"], USERNAME);
    assert!(info["user_id"].as_str().unwrap().starts_with("005"));
    assert!(info["organization_id"].as_str().unwrap().starts_with("00D"));
    assert_eq!(
        h.api(Method::GET, "/services/oauth2/userinfo", "00D!x", None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn discovery_documents_point_at_this_server() {
    let h = Harness::new().await;
    {
        let reply = h.get("/.well-known/oauth-authorization-server", None).await;
        assert_eq!(reply.status, StatusCode::OK);
        let doc = reply.json();
        assert_eq!(doc["issuer"], ISSUER);
        assert_eq!(
            doc["token_endpoint"],
            format!("{ISSUER}/services/oauth2/token")
        );
        assert_eq!(
            doc["revocation_endpoint"],
            format!("{ISSUER}/services/oauth2/revoke")
        );
        assert_eq!(
            doc["introspection_endpoint"],
            format!("{ISSUER}/services/oauth2/introspect")
        );
        assert_eq!(
            doc["userinfo_endpoint"],
            format!("{ISSUER}/services/oauth2/userinfo")
        );
        assert_eq!(doc["code_challenge_methods_supported"][0], "S256");
        assert!(doc["grant_types_supported"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g != "implicit"));
    }
}

/// No ID token is ever issued, so nothing of OpenID Connect's is advertised: no OIDC discovery
/// document, no `openid` scope, no signing keys or algorithms.
#[tokio::test]
async fn discovery_advertises_only_what_is_implemented() {
    let h = Harness::new().await;
    let doc = h
        .get("/.well-known/oauth-authorization-server", None)
        .await
        .json();
    for absent in [
        "jwks_uri",
        "id_token_signing_alg_values_supported",
        "subject_types_supported",
    ] {
        assert!(doc.get(absent).is_none(), "{absent}: {doc}");
    }
    let scopes = doc["scopes_supported"].as_array().unwrap();
    assert!(!scopes.iter().any(|s| s == "openid"), "{scopes:?}");
    assert_eq!(
        h.get("/.well-known/openid-configuration", None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_token_signed_by_the_server_verifies_against_its_published_jwks() {
    let h = Harness::new().await;
    let empty = h.get("/id/keys", None).await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_eq!(empty.json(), serde_json::json!({ "keys": [] }));

    let made = h.authority.rotate_signing_keys_when_due().await.unwrap();
    let reply = h.get("/id/keys", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("cache-control"), Some("public, max-age=86400"));
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&reply.text()).unwrap();
    assert_eq!(
        jwks.keys.len(),
        2,
        "one key per algorithm: {}",
        reply.text()
    );
    let keys = reply.json()["keys"].as_array().unwrap().clone();
    let by_alg = |alg: &str| keys.iter().find(|k| k["alg"] == alg).unwrap().clone();
    let (rsa, ec) = (by_alg("RS256"), by_alg("ES256"));
    assert_eq!(rsa["kid"], made[0].as_str());
    assert_eq!(ec["kid"], made[1].as_str());
    assert_eq!(rsa["kty"], "RSA");
    assert_eq!(rsa["use"], "sig");
    assert_eq!(ec["kty"], "EC");
    assert_eq!(ec["crv"], "P-256");
    assert_eq!(ec["use"], "sig");

    let claims = serde_json::json!({ "sub": "005", "aud": "client", "exp": 4_000_000_000u64 });
    let token = h.authority.sign_jws(&claims).await.unwrap();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    let key = jwks.find(header.kid.as_deref().unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["client"]);
    let verified = jsonwebtoken::decode::<serde_json::Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_jwk(key).unwrap(),
        &validation,
    )
    .unwrap();
    assert_eq!(verified.claims, claims);
}
