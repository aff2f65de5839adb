//! The refresh-token IP allowlist (docs/controls.md) through HTTP: code exchanges and refreshes
//! from inside and outside a client's ranges (IPv4, IPv6, an IPv4 client on a dual-stack
//! socket), through a trusted proxy, with a forged header from an untrusted peer, and without a
//! known address; the audit event, and nothing revoked.

use axum::http::StatusCode;
use serde_json::Value;
use tessera_core::operations::admin::ClientSettings;
use tessera_server::{ProxyHeader, TrustedProxies};

use crate::support::*;

const SCOPE: &str = "api id refresh_token";
const OFFICE_V4: &str = "203.0.113.0/24";
const OFFICE_V6: &str = "2001:db8::/32";
const PROXY: &str = "10.0.0.2";
const OUTSIDE: &str = "198.51.100.1";

async fn restricted_to(h: &Harness, ranges: &str) -> Client {
    let settings = ClientSettings {
        ip_allowlist: Some(ranges.to_owned()),
        ..Default::default()
    };
    h.client(false, settings).await
}

/// A token request of `client` (its credentials in the body) from the TCP peer `peer`, with
/// extra `headers`.
async fn token_as(
    h: &Harness,
    peer: &str,
    headers: &[(&str, &str)],
    client: &Client,
    grant: &[(&str, &str)],
) -> Reply {
    let mut pairs = grant.to_vec();
    pairs.push(("client_id", client.id.as_str()));
    pairs.push(("client_secret", client.secret.as_deref().unwrap()));
    h.token_from(peer, headers, &pairs).await
}

/// A code exchange from the TCP peer `peer` with extra `headers`.
async fn exchange_from(
    h: &Harness,
    peer: &str,
    headers: &[(&str, &str)],
    client: &Client,
    code: &str,
) -> Reply {
    let grant = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
    ];
    token_as(h, peer, headers, client, &grant).await
}

/// A refresh from the TCP peer `peer` with extra `headers`.
async fn refresh_from(
    h: &Harness,
    peer: &str,
    headers: &[(&str, &str)],
    client: &Client,
    refresh_token: &str,
) -> Reply {
    let grant = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    token_as(h, peer, headers, client, &grant).await
}

/// Tokens from a code exchanged from `peer`, which the allowlist admits.
async fn tokens_from(h: &Harness, peer: &str, client: &Client) -> Value {
    let code = h.code(client, &[("scope", SCOPE)]).await;
    let reply = exchange_from(h, peer, &[], client, &code).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.json()
}

/// The refusal of an address outside the allowlist: Salesforce's `invalid_grant` "ip restricted".
fn assert_ip_restricted(reply: &Reply) {
    reply.assert_oauth_error(400, "invalid_grant");
    assert_eq!(reply.json()["error_description"], "ip restricted");
}

/// The `ip_refused` events once `count` are written, each naming the client and an address.
async fn ip_refusals(h: &Harness, client: &Client, count: usize) -> Vec<(String, String)> {
    h.events_written("ip_refused", count)
        .await
        .into_iter()
        .map(|stored| {
            let event = stored.event;
            assert_eq!(event.client_id.as_deref(), Some(client.id.as_str()));
            assert_eq!(event.grant_id, None, "a refusal touches no grant");
            (event.source.unwrap_or_default(), event.detail)
        })
        .collect()
}

async fn a_refresh_from_outside_an_ipv4_allowlist_is_refused_audited_and_revokes_nothing(
    store: TestStore,
) {
    let h = Harness::on(store).await;
    let c = restricted_to(&h, OFFICE_V4).await;
    let tokens = tokens_from(&h, "203.0.113.7", &c).await;
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    let access_token = tokens["access_token"].as_str().unwrap();

    assert_ip_restricted(&refresh_from(&h, OUTSIDE, &[], &c, refresh_token).await);
    let refusals = ip_refusals(&h, &c, 1).await;
    assert_eq!(refusals[0].0, OUTSIDE);
    assert_eq!(
        refusals[0].1,
        format!("{OUTSIDE} is outside the IP allowlist")
    );

    // Nothing was revoked: the access token still opens the API (which the allowlist does not
    // restrict), and the same refresh token works from inside, also from an IPv4 client seen
    // through a dual-stack socket.
    assert!(h.api_works(access_token).await);
    for inside in ["203.0.113.200", "::ffff:203.0.113.9"] {
        let reply = refresh_from(&h, inside, &[], &c, refresh_token).await;
        assert_eq!(reply.status, StatusCode::OK, "{inside}: {}", reply.text());
    }
}

async fn a_code_exchange_from_outside_an_ipv6_allowlist_is_refused_and_the_code_stays_unspent(
    store: TestStore,
) {
    let h = Harness::on(store).await;
    let c = restricted_to(&h, &format!("{OFFICE_V4},{OFFICE_V6}")).await;
    let code = h.code(&c, &[("scope", SCOPE)]).await;

    assert_ip_restricted(&exchange_from(&h, "2001:db9::1", &[], &c, &code).await);
    let refusals = ip_refusals(&h, &c, 1).await;
    assert_eq!(refusals[0].0, "2001:db9::1");

    let reply = exchange_from(&h, "2001:db8:aa::5", &[], &c, &code).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let refresh_token = reply.json()["refresh_token"].as_str().unwrap().to_owned();
    assert_ip_restricted(&refresh_from(&h, "2001:db9::1", &[], &c, &refresh_token).await);
    let reply = refresh_from(&h, "2001:db8::1", &[], &c, &refresh_token).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
}

async fn through_a_trusted_proxy_the_client_it_names_is_judged_and_a_forged_header_is_not(
    store: TestStore,
) {
    let proxies = TrustedProxies::parse_list(&["10.0.0.0/8"]).unwrap();
    let h = Harness::on_store_with_config(store, |_| {}, proxies).await;
    let c = restricted_to(&h, OFFICE_V4).await;
    let via_proxy = [("x-forwarded-for", "203.0.113.7")];
    let code = h.code(&c, &[("scope", SCOPE)]).await;
    let reply = exchange_from(&h, PROXY, &via_proxy, &c, &code).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let refresh_token = reply.json()["refresh_token"].as_str().unwrap().to_owned();

    // The proxy itself is not in the list: only the client it names counts.
    let outside_via_proxy = [("x-forwarded-for", OUTSIDE)];
    assert_ip_restricted(&refresh_from(&h, PROXY, &outside_via_proxy, &c, &refresh_token).await);
    // An untrusted peer claiming an address inside is judged by its own address.
    let forged = [("x-forwarded-for", "203.0.113.7")];
    assert_ip_restricted(&refresh_from(&h, "192.0.2.66", &forged, &c, &refresh_token).await);
    // Sorted: refusals are recorded off the request path, and two such writes may commit in
    // either order (on PostgreSQL they race on two connections).
    let mut sources: Vec<String> = ip_refusals(&h, &c, 2)
        .await
        .into_iter()
        .map(|(source, _)| source)
        .collect();
    sources.sort();
    let mut expected = [OUTSIDE, "192.0.2.66"];
    expected.sort_unstable();
    assert_eq!(sources, expected);

    let reply = refresh_from(&h, PROXY, &via_proxy, &c, &refresh_token).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
}

async fn a_forwarded_header_from_a_trusted_proxy_is_honoured_when_it_is_the_named_one(
    store: TestStore,
) {
    let proxies = TrustedProxies::parse_list(&["10.0.0.0/8"])
        .unwrap()
        .with_header(ProxyHeader::Forwarded);
    let h = Harness::on_store_with_config(store, |_| {}, proxies).await;
    let c = restricted_to(&h, OFFICE_V6).await;
    let code = h.code(&c, &[("scope", SCOPE)]).await;
    // X-Forwarded-For is not the named header: the proxy's own address is judged.
    let other_header = [("x-forwarded-for", "2001:db8::7")];
    assert_ip_restricted(&exchange_from(&h, PROXY, &other_header, &c, &code).await);
    let named = [("forwarded", "for=\"[2001:db8::7]:4711\";proto=https")];
    let reply = exchange_from(&h, PROXY, &named, &c, &code).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
}

async fn a_request_with_no_known_address_is_refused_while_a_list_is_set_and_not_once_cleared(
    store: TestStore,
) {
    let h = Harness::on(store).await;
    let c = restricted_to(&h, OFFICE_V4).await;
    let tokens = tokens_from(&h, "203.0.113.7", &c).await;
    let refresh_token = tokens["refresh_token"].as_str().unwrap();

    // No socket: the list cannot vouch for the request.
    assert_ip_restricted(&h.refresh(&c, refresh_token).await);
    let refusals = ip_refusals(&h, &c, 1).await;
    assert_eq!(refusals[0].0, "");
    assert!(refusals[0].1.contains("no source address"), "{refusals:?}");

    let cleared = ClientSettings {
        ip_allowlist: Some("none".into()),
        ..Default::default()
    };
    h.authority
        .operator()
        .update_client(&c.id, &cleared)
        .await
        .unwrap();
    let reply = h.refresh(&c, refresh_token).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let reply = refresh_from(&h, OUTSIDE, &[], &c, refresh_token).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
}

on_sqlite_and_postgres!(
    a_refresh_from_outside_an_ipv4_allowlist_is_refused_audited_and_revokes_nothing,
    a_code_exchange_from_outside_an_ipv6_allowlist_is_refused_and_the_code_stays_unspent,
    through_a_trusted_proxy_the_client_it_names_is_judged_and_a_forged_header_is_not,
    a_forwarded_header_from_a_trusted_proxy_is_honoured_when_it_is_the_named_one,
    a_request_with_no_known_address_is_refused_while_a_list_is_set_and_not_once_cleared,
);
