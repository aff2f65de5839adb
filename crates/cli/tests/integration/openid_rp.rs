//! A real OpenID Connect relying party, written with the `openidconnect` crate (which passes
//! the OpenID Foundation's relying-party certification for the code flow), against a running
//! `tessera serve`: discovery, the code flow with PKCE and a nonce, the ID token verified
//! against the JWKS, a refresh whose new ID token keeps what OpenID Connect Core §12.2 says it
//! keeps, userinfo, and the User-Agent flow's `token id_token` with its `at_hash`.

use std::time::Duration;

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    CoreUserInfoClaims,
};
use openidconnect::{
    AccessToken, AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};

use crate::common;

const REDIRECT: &str = "http://127.0.0.1:9/cb";
const USERNAME: &str = "ada@example.com";
const PASSWORD: &str = "ada's password";

/// The relying party's HTTP client: it never follows redirects (as openidconnect advises).
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Plays the user's browser: opens `authorize_url`, logs in, allows, and returns where the
/// server sent the browser back to.
async fn user_allows(base: &str, authorize_url: &str) -> url::Url {
    let back = tessera_testkit::authorize_in_browser(base, authorize_url, USERNAME, PASSWORD).await;
    url::Url::parse(&back).unwrap()
}

fn param(url: &url::Url, name: &str, in_fragment: bool) -> String {
    let pairs = if in_fragment {
        url::form_urlencoded::parse(url.fragment().unwrap_or_default().as_bytes())
            .into_owned()
            .collect::<Vec<_>>()
    } else {
        url.query_pairs().into_owned().collect()
    };
    pairs
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {name} in {url}"))
}

/// A server with the user, and a client created with `options`.
fn server_with_client(options: &[&str]) -> (common::Server, String, String) {
    let server = common::Server::start(&[], &[]);
    let mut more = vec!["--scopes", "api openid refresh_token profile email"];
    more.extend_from_slice(options);
    let (client_id, secret) = server.user_and_client("2h", &more);
    (server, client_id, secret)
}

async fn discovered(
    server: &common::Server,
    client_id: &str,
    secret: &str,
) -> CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
> {
    let metadata = CoreProviderMetadata::discover_async(
        IssuerUrl::new(server.base.clone()).unwrap(),
        &http_client(),
    )
    .await
    .unwrap_or_else(|e| panic!("discovery: {e:?}"));
    CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(client_id.to_owned()),
        Some(ClientSecret::new(secret.to_owned())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.to_owned()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openidconnect_relying_party_logs_in_refreshes_and_reads_userinfo() {
    let _lane = common::lane(common::lanes::SHARED);
    let (server, client_id, secret) = server_with_client(&[]);
    let client = discovered(&server, &client_id, &secret).await;
    let http = http_client();

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (authorize_url, state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("api".into()))
        .add_scope(Scope::new("refresh_token".into()))
        .set_pkce_challenge(challenge)
        .url();
    let back = user_allows(&server.base, authorize_url.as_str()).await;
    assert_eq!(param(&back, "state", false), *state.secret());
    let code = AuthorizationCode::new(param(&back, "code", false));

    let tokens = client
        .exchange_code(code)
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("code exchange: {e:?}"));
    let id_token = tokens.id_token().expect("an id_token with openid");
    let id_verifier = client.id_token_verifier();
    let claims = id_token
        .claims(&id_verifier, &nonce)
        .unwrap_or_else(|e| panic!("the ID token does not verify: {e:?}"))
        .clone();
    assert_eq!(claims.issuer().as_str(), server.base);
    // The subject is the identity URL, <issuer>/id/<org id>/<user id>, as Salesforce's.
    let subject = claims.subject().as_str();
    let ids = subject
        .strip_prefix(&format!("{}/id/", server.base))
        .unwrap_or_else(|| panic!("sub {subject}"));
    assert!(
        ids.starts_with("00D") && ids.contains("/005"),
        "sub {subject}"
    );
    assert!(claims.auth_time().is_some(), "auth_time");
    let at_hash = claims.access_token_hash().expect("at_hash");
    let expected = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&id_verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(*at_hash, expected);

    // A second later, a refresh: a new ID token, with OpenID Connect Core §12.2's claims kept.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let refresh_token = tokens.refresh_token().expect("a refresh token").clone();
    let refreshed = client
        .exchange_refresh_token(&refresh_token)
        .unwrap()
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("refresh: {e:?}"));
    let again = refreshed
        .id_token()
        .expect("an id_token on every refresh of an openid grant")
        .claims(&id_verifier, |nonce: Option<&Nonce>| match nonce {
            None => Ok(()),
            Some(_) => Err("a refreshed ID token carries no nonce".to_owned()),
        })
        .unwrap_or_else(|e| panic!("the refreshed ID token does not verify: {e:?}"))
        .clone();
    assert_eq!(again.issuer(), claims.issuer());
    assert_eq!(again.subject(), claims.subject());
    assert_eq!(again.audiences(), claims.audiences());
    assert_eq!(again.authorized_party(), claims.authorized_party());
    assert_eq!(again.auth_time(), claims.auth_time());
    assert!(again.issue_time() > claims.issue_time(), "iat is new");

    let userinfo: CoreUserInfoClaims = client
        .user_info(
            refreshed.access_token().clone(),
            Some(claims.subject().clone()),
        )
        .unwrap()
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("userinfo: {e:?}"));
    assert_eq!(userinfo.subject(), claims.subject());
    assert_eq!(
        userinfo.preferred_username().map(|u| u.as_str()),
        Some(USERNAME)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openidconnect_relying_party_verifies_an_es256_id_token_of_the_user_agent_flow() {
    let _lane = common::lane(common::lanes::SHARED);
    let (server, client_id, secret) =
        server_with_client(&["--allow-user-agent-flow", "--id-token-alg", "ES256"]);
    let client = discovered(&server, &client_id, &secret).await;
    let (authorize_url, state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::Implicit(true),
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("api".into()))
        .url();
    let back = user_allows(&server.base, authorize_url.as_str()).await;
    assert_eq!(param(&back, "state", true), *state.secret());
    let access_token = AccessToken::new(param(&back, "access_token", true));
    let id_token: CoreIdToken = param(&back, "id_token", true).parse().unwrap();
    let verifier = client
        .id_token_verifier()
        .set_allowed_algs(vec![CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
    let claims = id_token
        .claims(&verifier, &nonce)
        .unwrap_or_else(|e| panic!("the ES256 ID token does not verify: {e:?}"));
    let expected = AccessTokenHash::from_token(
        &access_token,
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&expected));
    // A relying party that allows RS256 only (Salesforce's one algorithm) refuses it: the
    // algorithm is the client's choice, not the token's.
    let rs256_only = client
        .id_token_verifier()
        .set_allowed_algs(vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256]);
    assert!(id_token.claims(&rs256_only, &nonce).is_err());
}
