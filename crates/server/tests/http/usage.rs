//! OAuth Usage over REST (docs/usage.md): who may read it, the listings and their counts, keyset
//! paging, each revocation and what it stops, the refusals; and the use counts of non-rotating
//! refreshes, written by the usage ledger's flush.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::Value;
use tessera_core::operations::admin::ClientSettings;
use tessera_proto::{ExposeSecret, Password};

use crate::console::{with_admin_on, ADMIN, ADMIN_PASSWORD};
use crate::support::*;

const BASE: &str = "/services/data/v65.0/apps/oauth/usage";

/// A harness with an administrator, a plain (non-rotating, infinite) client, and the admin's
/// REST token.
struct World {
    h: Harness,
    app: Client,
    admin_token: String,
}

async fn world(store: TestStore) -> World {
    let h = with_admin_on(store).await;
    let app = h.client(false, ClientSettings::default()).await;
    let admin_token = mint(&h, &app, ADMIN, "api").await.0;
    World {
        h,
        app,
        admin_token,
    }
}

/// A new grant of `app` for `username`: its access token and refresh token.
async fn mint(h: &Harness, app: &Client, username: &str, scope: &str) -> (String, Option<String>) {
    let minted = h
        .authority
        .operator()
        .mint_for(&app.id, username, scope)
        .await
        .unwrap();
    (
        minted.access_token.expose_secret().to_owned(),
        minted.refresh_token.map(|t| t.expose_secret().to_owned()),
    )
}

async fn user_id(h: &Harness, username: &str) -> String {
    h.authority.operator().user(username).await.unwrap().id
}

impl World {
    async fn get(&self, path: &str) -> Reply {
        self.h.api(Method::GET, path, &self.admin_token, None).await
    }

    async fn delete(&self, path: &str) -> Reply {
        self.h
            .api(Method::DELETE, path, &self.admin_token, None)
            .await
    }

    /// The app's entry in the apps listing.
    async fn app_entry(&self) -> Value {
        let reply = self.get(BASE).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let apps = reply.json()["apps"].as_array().unwrap().clone();
        apps.into_iter()
            .find(|a| a["appId"] == self.app.id.as_str())
            .expect("the app is listed")
    }
}

fn assert_api_error(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body[0]["errorCode"], code, "{body}");
    assert!(body[0]["message"].as_str().is_some_and(|m| !m.is_empty()));
}

async fn a_token_of_a_user_who_is_not_an_administrator_is_refused_403(store: TestStore) {
    let w = world(store).await;
    let (plain, _) = mint(&w.h, &w.app, USERNAME, "api refresh_token").await;
    let paths = [
        BASE.to_owned(),
        format!("{BASE}/{}/users", w.app.id),
        format!("{BASE}/{}/005000000000000AAA/tokens", w.app.id),
    ];
    for path in &paths {
        let reply = w.h.api(Method::GET, path, &plain, None).await;
        assert_api_error(&reply, StatusCode::FORBIDDEN, "INSUFFICIENT_ACCESS");
    }
    let reply =
        w.h.api(
            Method::DELETE,
            &format!("{BASE}/{}/tokens", w.app.id),
            &plain,
            None,
        )
        .await;
    assert_api_error(&reply, StatusCode::FORBIDDEN, "INSUFFICIENT_ACCESS");
    assert!(w.h.api_works(&plain).await, "nothing was revoked");

    // Without a token or a console session: the REST API's 401.
    let anonymous =
        w.h.send(Request::get(BASE).body(Body::empty()).unwrap())
            .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    // A token without the api scope: as the REST API answers it.
    let (narrow, _) = mint(&w.h, &w.app, ADMIN, "id").await;
    let reply = w.h.api(Method::GET, BASE, &narrow, None).await;
    assert_ne!(reply.status, StatusCode::OK);
}

async fn the_listings_count_users_tokens_and_uses_for_an_admin(store: TestStore) {
    let w = world(store).await;
    let (_, alice_rt) = mint(&w.h, &w.app, USERNAME, "api refresh_token").await;
    w.h.clock.advance_secs(1);
    mint(&w.h, &w.app, USERNAME, "api refresh_token").await;
    let alice_rt = alice_rt.unwrap();
    for _ in 0..3 {
        w.h.clock.advance_secs(60);
        assert_eq!(w.h.refresh(&w.app, &alice_rt).await.status, StatusCode::OK);
    }
    w.h.authority.flush_usage().await.unwrap();

    // Alice: two grants (1 + 3 uses, 1 use); the admin: the grant of its own token.
    let app = w.app_entry().await;
    assert_eq!(app["userCount"], 2, "{app}");
    assert_eq!(app["tokenCount"], 3, "{app}");
    assert_eq!(app["useCount"], 6, "{app}");
    assert!(app["lastUsedDate"].is_string());

    let alice = user_id(&w.h, USERNAME).await;
    let users = w.get(&format!("{BASE}/{}/users", w.app.id)).await;
    assert_eq!(users.status, StatusCode::OK, "{}", users.text());
    let body = users.json();
    let listed = body["users"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    let entry = listed
        .iter()
        .find(|u| u["userId"] == alice.as_str())
        .unwrap();
    assert_eq!(entry["username"], USERNAME);
    assert_eq!(entry["useCount"], 5);
    assert_eq!(entry["tokenCount"], 2);
    assert_ne!(entry["firstUsedDate"], entry["lastUsedDate"]);
    assert!(body["nextPageUrl"].is_null());

    let tokens = w.get(entry["tokensUrl"].as_str().unwrap()).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.text());
    let tokens = tokens.json()["tokens"].as_array().unwrap().clone();
    let counts: Vec<u64> = tokens
        .iter()
        .map(|t| t["useCount"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [4, 1], "oldest first");
    assert_eq!(tokens[0]["scope"], "api refresh_token");
    assert!(
        !tokens[0].to_string().contains(&alice_rt),
        "never a token value"
    );
}

/// Four refreshes of an `infinite`, non-rotating grant over an hour move "last used" and the
/// count once the ledger is flushed (before, they wait in memory).
async fn non_rotating_refreshes_move_last_used_and_the_count_after_a_flush(store: TestStore) {
    let w = world(store).await;
    let (_, rt) = mint(&w.h, &w.app, USERNAME, "api refresh_token").await;
    let rt = rt.unwrap();
    let alice = user_id(&w.h, USERNAME).await;
    let tokens_url = format!("{BASE}/{}/{alice}/tokens", w.app.id);
    let before = w.get(&tokens_url).await.json()["tokens"][0].clone();
    for _ in 0..4 {
        w.h.clock.advance_secs(15 * 60);
        assert_eq!(w.h.refresh(&w.app, &rt).await.status, StatusCode::OK);
    }
    let unflushed = w.get(&tokens_url).await.json()["tokens"][0].clone();
    assert_eq!(unflushed, before, "the uses wait in the ledger");

    assert_eq!(w.h.authority.flush_usage().await.unwrap(), 1);
    let after = w.get(&tokens_url).await.json()["tokens"][0].clone();
    assert_eq!(after["useCount"], 5);
    assert_ne!(after["lastUsedDate"], before["lastUsedDate"]);
    assert_eq!(after["firstUsedDate"], before["firstUsedDate"]);
}

async fn an_apps_users_are_paged_with_next_page_urls_until_the_last(store: TestStore) {
    let w = world(store).await;
    for n in 0..4 {
        let username = format!("user{n}@example.com");
        w.h.authority
            .operator()
            .create_user(&username, Password::new("a long enough password"), None)
            .await
            .unwrap();
        mint(&w.h, &w.app, &username, "api").await;
    }
    // Five users (four and the admin), two a page: three pages.
    let mut url = format!("{BASE}/{}/users?pageSize=2", w.app.id);
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let reply = w.get(&url).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let body = reply.json();
        pages += 1;
        for user in body["users"].as_array().unwrap() {
            seen.push(user["userId"].as_str().unwrap().to_owned());
        }
        match body["nextPageUrl"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 5);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen, "by user id, each once");
}

async fn bad_page_sizes_and_cursors_are_400_and_unknown_ids_404(store: TestStore) {
    let w = world(store).await;
    let users = format!("{BASE}/{}/users", w.app.id);
    for query in [
        "pageSize=0",
        "pageSize=1001",
        "pageSize=ten",
        "cursor=%21%21",
        "cursor=",
        // A repeated parameter: Salesforce's JSON error, not the framework's plain text.
        "pageSize=2&pageSize=3",
        "cursor=a&cursor=b",
    ] {
        let reply = w.get(&format!("{users}?{query}")).await;
        assert_api_error(&reply, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    }
    let alice = user_id(&w.h, USERNAME).await;
    for path in [
        format!("{BASE}/3MVGnoSuchApp/users"),
        format!("{BASE}/3MVGnoSuchApp/{alice}/tokens"),
        format!("{BASE}/{}/005noSuchUser/tokens", w.app.id),
    ] {
        let reply = w.get(&path).await;
        assert_api_error(&reply, StatusCode::NOT_FOUND, "NOT_FOUND");
        assert!(reply.text().contains("No "), "{}", reply.text());
    }
    for path in [
        format!("{BASE}/tokens/noSuchToken"),
        format!("{BASE}/3MVGnoSuchApp/tokens"),
        format!("{BASE}/{}/005noSuchUser/tokens", w.app.id),
    ] {
        let reply = w.delete(&path).await;
        assert_api_error(&reply, StatusCode::NOT_FOUND, "NOT_FOUND");
    }
}

async fn revoking_a_token_stops_it_and_is_audited_in_its_timeline(store: TestStore) {
    let w = world(store).await;
    let (access, refresh) = mint(&w.h, &w.app, USERNAME, "api refresh_token").await;
    // Listed oldest first: the first grant is the older by a second.
    w.h.clock.advance_secs(1);
    let (other_access, _) = mint(&w.h, &w.app, USERNAME, "api refresh_token").await;
    let alice = user_id(&w.h, USERNAME).await;
    let tokens = w.get(&format!("{BASE}/{}/{alice}/tokens", w.app.id)).await;
    let token_url = tokens.json()["tokens"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let grant_id = token_url.rsplit('/').next().unwrap().to_owned();

    let reply = w.delete(&token_url).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
    assert!(!w.h.api_works(&access).await);
    let refreshed = w.h.refresh(&w.app, &refresh.unwrap()).await;
    assert_eq!(refreshed.status, StatusCode::BAD_REQUEST);
    assert!(
        w.h.api_works(&other_access).await,
        "the user's other token lives"
    );
    // Revoked already: no live token by that id.
    assert_api_error(
        &w.delete(&token_url).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    );

    let admin = user_id(&w.h, ADMIN).await;
    let by_admin = w.h.events_named("grant_revoked_by_admin").await;
    assert_eq!(by_admin.len(), 1);
    assert_eq!(by_admin[0].event.user_id.as_deref(), Some(admin.as_str()));
    assert_eq!(
        by_admin[0].event.grant_id.as_deref(),
        Some(grant_id.as_str())
    );
    let timeline =
        w.h.authority
            .operator()
            .grant_timeline(&grant_id)
            .await
            .unwrap()
            .unwrap();
    assert!(timeline
        .events
        .iter()
        .any(|e| e.event.kind.name() == "revoked"
            && e.event.detail == format!("OAuth Usage, by {ADMIN}")));
}

async fn revoking_a_user_of_an_app_stops_their_tokens_of_that_app_only(store: TestStore) {
    let w = world(store).await;
    let elsewhere = w.h.client(false, ClientSettings::default()).await;
    let (first, _) = mint(&w.h, &w.app, USERNAME, "api").await;
    let (second, _) = mint(&w.h, &w.app, USERNAME, "api").await;
    let (other_app, _) = mint(&w.h, &elsewhere, USERNAME, "api").await;
    let alice = user_id(&w.h, USERNAME).await;

    let reply = w
        .delete(&format!("{BASE}/{}/{alice}/tokens", w.app.id))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
    assert!(!w.h.api_works(&first).await);
    assert!(!w.h.api_works(&second).await);
    assert!(w.h.api_works(&other_app).await, "another app's token lives");
    assert!(
        w.h.api_works(&w.admin_token).await,
        "another user's token lives"
    );
    let left = w.get(&format!("{BASE}/{}/{alice}/tokens", w.app.id)).await;
    assert_eq!(left.json()["tokens"].as_array().unwrap().len(), 0);
    let events = w.h.events_named("grant_revoked_by_admin").await;
    assert_eq!(events.len(), 1);
    assert!(
        events[0].event.detail.contains("2 tokens"),
        "{}",
        events[0].event.detail
    );
    assert_eq!(w.h.events_named("revoked").await.len(), 2);
}

async fn revoking_an_app_stops_every_token_of_it_including_the_callers(store: TestStore) {
    let w = world(store).await;
    let (alice, _) = mint(&w.h, &w.app, USERNAME, "api").await;
    let reply = w.delete(&format!("{BASE}/{}/tokens", w.app.id)).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
    assert!(!w.h.api_works(&alice).await);
    assert!(
        !w.h.api_works(&w.admin_token).await,
        "the caller's token was of the app"
    );
    assert_eq!(w.h.events_named("revoked").await.len(), 2);
    assert_eq!(w.h.events_named("grant_revoked_by_admin").await.len(), 1);
}

async fn the_consoles_session_reads_the_listings_without_a_token(store: TestStore) {
    let w = world(store).await;
    let mut browser = Browser::default();
    let page = w.h.get("/admin/login", Some(&mut browser)).await;
    let csrf = hidden_value(&page.text(), "csrf_token").unwrap();
    let login =
        w.h.post_form(
            "/admin/login",
            &form(&[
                ("csrf_token", &csrf),
                ("username", ADMIN),
                ("password", ADMIN_PASSWORD),
            ]),
            Some(&mut browser),
        )
        .await;
    assert_eq!(login.status, StatusCode::SEE_OTHER, "{}", login.text());
    let reply = w.h.get(BASE, Some(&mut browser)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(reply.json()["apps"].is_array());

    // A made-up console cookie is no session: the REST API's 401.
    let reply =
        w.h.send(
            Request::get(BASE)
                .header(header::COOKIE, "tessera_admin=made-up")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text());
}

on_sqlite_and_postgres!(
    a_token_of_a_user_who_is_not_an_administrator_is_refused_403,
    the_listings_count_users_tokens_and_uses_for_an_admin,
    non_rotating_refreshes_move_last_used_and_the_count_after_a_flush,
    an_apps_users_are_paged_with_next_page_urls_until_the_last,
    bad_page_sizes_and_cursors_are_400_and_unknown_ids_404,
    revoking_a_token_stops_it_and_is_audited_in_its_timeline,
    revoking_a_user_of_an_app_stops_their_tokens_of_that_app_only,
    revoking_an_app_stops_every_token_of_it_including_the_callers,
    the_consoles_session_reads_the_listings_without_a_token,
);
