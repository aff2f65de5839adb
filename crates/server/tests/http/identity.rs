//! Identity URL, userinfo and discovery (docs/salesforce-compatibility.md, "Identity URL and
//! userinfo", "Discovery").

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::json;
use tessera_core::operations::admin::ClientSettings;

use crate::support::*;

/// The access token of a Web Server flow for `scope`.
pub(crate) async fn access_token(h: &Harness, client: &Client, scope: &str) -> String {
    h.login(client, scope).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `/.well-known/<name>`, which must answer 200 with JSON.
async fn discovery_document(h: &Harness, name: &str) -> serde_json::Value {
    let reply = h.get(&format!("/.well-known/{name}"), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{name}: {}", reply.text());
    reply.json()
}

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
    let access = access_token(&h, &c, "api").await;
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
    let access = access_token(&h, &c, "api id").await;
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

/// The RFC 8414 metadata says nothing the OpenID Connect document contradicts: each of its keys
/// has the same value there, and both point relying parties at the JWKS.
#[tokio::test]
async fn the_rfc_8414_metadata_agrees_with_the_openid_configuration() {
    let h = Harness::new().await;
    let metadata = discovery_document(&h, "oauth-authorization-server").await;
    let openid = discovery_document(&h, "openid-configuration").await;
    for (key, value) in metadata.as_object().unwrap() {
        assert_eq!(&openid[key], value, "{key}");
    }
    assert_eq!(metadata["jwks_uri"], format!("{ISSUER}/id/keys"));
    let scopes = metadata["scopes_supported"].as_array().unwrap();
    assert!(scopes.iter().any(|s| s == "openid"), "{scopes:?}");
    assert_eq!(openid["subject_types_supported"], json!(["public"]));
    assert_eq!(
        openid["response_types_supported"],
        json!(["code", "token", "token id_token"])
    );
    // Discovery's default for `request_uri_parameter_supported` is true: it must be said.
    for unsupported in [
        "request_parameter_supported",
        "request_uri_parameter_supported",
        "claims_parameter_supported",
    ] {
        assert_eq!(openid[unsupported], false, "{unsupported}");
    }
}

/// Advertise only what works: every endpoint either document names answers at this server
/// (none is 404), the JWKS and userinfo with 200, and every scope advertised can be granted.
#[tokio::test]
async fn every_endpoint_and_scope_the_discovery_documents_advertise_works() {
    let h = Harness::new().await;
    let openid = discovery_document(&h, "openid-configuration").await;
    let scopes: Vec<&str> = openid["scopes_supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let everything = scopes.join(" ");
    let client = h
        .client(
            false,
            ClientSettings {
                scopes: Some(everything.clone()),
                ..Default::default()
            },
        )
        .await;
    let tokens = h.login(&client, &everything).await;
    let granted: Vec<&str> = tokens["scope"].as_str().unwrap().split(' ').collect();
    for scope in &scopes {
        assert!(granted.contains(scope), "{scope} not granted: {granted:?}");
    }
    let access = tokens["access_token"].as_str().unwrap();

    let mut endpoints = 0;
    for document in ["oauth-authorization-server", "openid-configuration"] {
        let doc = discovery_document(&h, document).await;
        for (key, url) in doc.as_object().unwrap() {
            if !(key.ends_with("_endpoint") || key == "jwks_uri") {
                continue;
            }
            let path = url.as_str().unwrap().strip_prefix(ISSUER).unwrap();
            let reply = h.api(Method::GET, path, access, None).await;
            assert_ne!(
                reply.status,
                StatusCode::NOT_FOUND,
                "{document}: {key} {path}"
            );
            assert!(
                !reply.status.is_server_error(),
                "{document}: {key} {path}: {}",
                reply.status
            );
            endpoints += 1;
        }
    }
    assert_eq!(
        endpoints,
        2 * 6,
        "authorize, token, revoke, introspect, userinfo, JWKS"
    );
    for path in ["/id/keys", "/services/oauth2/userinfo"] {
        assert_eq!(
            h.api(Method::GET, path, access, None).await.status,
            StatusCode::OK,
            "{path}"
        );
    }
}

/// `display_values_supported` promises that each value renders: the login page answers each.
#[tokio::test]
async fn every_advertised_display_value_renders_the_login_page() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let openid = discovery_document(&h, "openid-configuration").await;
    let displays = openid["display_values_supported"].as_array().unwrap();
    assert!(!displays.is_empty());
    for display in displays {
        let display = display.as_str().unwrap();
        let url = h.authorize_url(&c, &[("display", display), ("scope", "api")]);
        let page = h.get(&url, None).await;
        assert_eq!(page.status, StatusCode::OK, "{display}: {}", page.text());
        assert!(page.text().contains("name=\"password\""), "{display}");
    }
}

/// Salesforce answers userinfo only to a token with an identity scope; `api` alone, which
/// opens the identity URL, is refused 401 `invalid_token` (never a 5xx, never a 200).
#[tokio::test]
async fn userinfo_without_an_identity_scope_is_401_invalid_token() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let body = h.login(&c, "api refresh_token").await;
    let access = body["access_token"].as_str().unwrap();
    for method in [Method::GET, Method::POST] {
        let reply = h
            .api(method.clone(), "/services/oauth2/userinfo", access, None)
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{method}: {}",
            reply.text()
        );
        let challenge = reply.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer error=\"invalid_token\""),
            "{challenge}"
        );
        assert_eq!(reply.text(), "Bad_OAuth_Token");
    }
    let identity_path = body["id"].as_str().unwrap().strip_prefix(ISSUER).unwrap();
    assert_eq!(
        h.api(Method::GET, identity_path, access, None).await.status,
        StatusCode::OK,
        "the identity URL still answers an api token"
    );
    // Neither does a token with no identity scope at all.
    let web = h.login(&c, "web").await;
    let reply = h
        .api(
            Method::GET,
            "/services/oauth2/userinfo",
            web["access_token"].as_str().unwrap(),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

/// Salesforce takes userinfo's token as `?oauth_token=` too, as on the identity URL.
#[tokio::test]
async fn userinfo_takes_its_token_from_the_oauth_token_parameter() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let access = access_token(&h, &c, "id").await;
    let query = format!(
        "/services/oauth2/userinfo?oauth_token={}",
        url::form_urlencoded::byte_serialize(access.as_bytes()).collect::<String>()
    );
    let reply = h.get(&query, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["preferred_username"], USERNAME);
}

/// Salesforce's quirks, kept: `{version}` left in the URLs, `utcOffset` in milliseconds,
/// `updated_at` an RFC 3339 string; and every key present, `null` where nothing is known.
#[tokio::test]
async fn userinfo_keeps_salesforces_quirks_and_sends_null_for_what_is_unknown() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let access = access_token(&h, &c, "id").await;
    let info = h
        .api(Method::POST, "/services/oauth2/userinfo", &access, None)
        .await
        .json();
    assert_eq!(
        info["urls"]["rest"],
        format!("{ISSUER}/services/data/v{{version}}/")
    );
    assert_eq!(info["utcOffset"], 0);
    assert_eq!(info["zoneinfo"], "GMT");
    // The harness's clock starts at 1 800 000 000 000 ms, when the user is created.
    assert_eq!(info["updated_at"], "2027-01-15T08:00:00Z");
    assert_eq!(
        info["sub"],
        format!(
            "{ISSUER}/id/{}/{}",
            info["organization_id"].as_str().unwrap(),
            info["user_id"].as_str().unwrap()
        )
    );
    for unknown in [
        "given_name",
        "picture",
        "profile",
        "phone_number",
        "address",
    ] {
        assert!(info[unknown].is_null(), "{unknown}: {info}");
        assert!(info.get(unknown).is_some(), "{unknown} is sent");
    }
    assert_eq!(info["phone_number_verified"], false);
    assert_eq!(info["email"], USERNAME);
    assert_eq!(info["email_verified"], false);
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
