//! Every JSON response is `Cache-Control: no-store` and `X-Content-Type-Options: nosniff`,
//! whatever its route (docs/security.md, "Response headers").

use axum::http::{Method, StatusCode};

use crate::support::*;

fn assert_not_cacheable_nor_sniffable(what: &str, reply: &Reply, status: StatusCode) {
    assert_eq!(reply.status, status, "{what}: {}", reply.text());
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "{what}: {content_type}"
    );
    assert_eq!(
        reply.header("cache-control"),
        Some("no-store"),
        "{what}: {:?}",
        reply.headers
    );
    assert_eq!(
        reply.header("x-content-type-options"),
        Some("nosniff"),
        "{what}: {:?}",
        reply.headers
    );
}

#[tokio::test]
async fn json_resources_are_neither_cached_nor_sniffed() {
    let h = Harness::new().await;
    let c = h.confidential().await;
    let body = h.login(&c, "api id refresh_token").await;
    let access = body["access_token"].as_str().unwrap().to_owned();
    let identity_path = body["id"]
        .as_str()
        .unwrap()
        .strip_prefix(ISSUER)
        .unwrap()
        .to_owned();

    let token = h.refresh(&c, body["refresh_token"].as_str().unwrap()).await;
    assert_not_cacheable_nor_sniffable("token", &token, StatusCode::OK);
    assert_eq!(
        token.header("pragma"),
        Some("no-cache"),
        "the token endpoint keeps its own Pragma"
    );
    let refused = h.refresh(&c, "not-a-refresh-token").await;
    assert_not_cacheable_nor_sniffable("token error", &refused, StatusCode::BAD_REQUEST);

    let userinfo = h
        .api(Method::GET, "/services/oauth2/userinfo", &access, None)
        .await;
    assert_not_cacheable_nor_sniffable("userinfo", &userinfo, StatusCode::OK);
    let identity = h.api(Method::GET, &identity_path, &access, None).await;
    assert_not_cacheable_nor_sniffable("identity URL", &identity, StatusCode::OK);

    let data = h
        .api(Method::GET, "/services/data/v65.0/", &access, None)
        .await;
    assert_not_cacheable_nor_sniffable("data API", &data, StatusCode::OK);
    let data_refused = h
        .api(Method::GET, "/services/data/v65.0/", "00D!x", None)
        .await;
    assert_not_cacheable_nor_sniffable("data API error", &data_refused, StatusCode::UNAUTHORIZED);
    let unknown = h.get("/services/data/v65.0/nothing-here", None).await;
    assert_not_cacheable_nor_sniffable("unknown path", &unknown, StatusCode::NOT_FOUND);

    // Public, static documents too: one rule for every JSON body, and a client reads them once.
    let metadata = h.get("/.well-known/oauth-authorization-server", None).await;
    assert_not_cacheable_nor_sniffable("discovery metadata", &metadata, StatusCode::OK);
    let openid = h.get("/.well-known/openid-configuration", None).await;
    assert_not_cacheable_nor_sniffable("OpenID Connect discovery", &openid, StatusCode::OK);
    let openapi = h.get("/openapi.json", None).await;
    assert_not_cacheable_nor_sniffable("OpenAPI document", &openapi, StatusCode::OK);
}
