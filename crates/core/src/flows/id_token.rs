//! When an ID token is issued and what it says (docs/openid-connect.md, "ID tokens"): with
//! `openid` in the scope of the tokens issued, on the code exchange, in the User-Agent flow's
//! fragment (`response_type=token id_token`) and on every refresh of the grant, as Salesforce
//! issues them. A refresh's ID token keeps `iss`, `sub`, `aud`, `azp` and `auth_time` and has a
//! new `iat` (OpenID Connect Core §12.2); its `nonce` only for clients that ask for it.
//!
//! The token is signed before the store's write that issues or rotates (`issue`,
//! `commit_refresh`) is attempted: a failure to sign answers 503 and commits nothing, and the
//! write is never held open for a signature.

use tessera_proto::{ExposeSecret, IdToken, OAuthError, Scope, TokenResponse};

use crate::authority::Authority;
use crate::model::{Client, Grant, User};
use crate::time::Timestamp;
use crate::tokens::id_token::{at_hash, Audience, IdTokenClaims};

/// The claims an ID token sets itself, which the standard claims must not repeat (a repeated
/// key is invalid JSON to a strict parser: `serde_json` refuses it as a duplicate field).
const REGISTERED_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "azp",
    "iat",
    "exp",
    "auth_time",
    "nonce",
    "at_hash",
];

/// The scope that asks for an ID token.
pub const OPENID_SCOPE: &str = "openid";

/// Whether the ID token of a response repeats the authorization's `nonce`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NonceEcho {
    /// On the code exchange and in the fragment: the authorization's response.
    Authorization,
    /// On a refresh: only for a client with `echo_nonce_on_refresh`.
    Refresh,
}

/// What an ID token is about: the tokens of `grant` issued to `client` for `user`, for
/// `scope`, at `at`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdTokenFor<'a> {
    pub client: &'a Client,
    /// The grant the tokens belong to: its user, its `auth_time`, its `nonce`.
    pub grant: &'a Grant,
    pub user: &'a User,
    /// What the tokens were issued for: an ID token only with `openid`.
    pub scope: &'a Scope,
    pub nonce: NonceEcho,
    pub at: Timestamp,
}

impl Authority {
    /// `response` with its ID token, when the tokens were issued for `openid`; unchanged
    /// otherwise. A failure to sign (no key can sign, a key that does not open) is 503
    /// `temporarily_unavailable`: never a response that leaves the ID token out.
    pub(crate) async fn with_id_token(
        &self,
        mut response: TokenResponse,
        of: IdTokenFor<'_>,
    ) -> Result<TokenResponse, OAuthError> {
        if !of.scope.contains(OPENID_SCOPE) {
            return Ok(response);
        }
        let claims = self.id_token_claims(&of, response.access_token.expose_secret());
        let alg = of.client.openid.id_token_alg;
        let signed = self.sign_jws_as(alg, "JWT", of.at, &claims).await?;
        response.id_token = Some(IdToken::new(signed));
        Ok(response)
    }

    fn id_token_claims(&self, of: &IdTokenFor<'_>, access_token: &str) -> IdTokenClaims {
        let IdTokenFor {
            client,
            grant,
            user,
            nonce,
            at,
            ..
        } = *of;
        let settings = &client.openid;
        let echo_nonce = match nonce {
            NonceEcho::Authorization => true,
            NonceEcho::Refresh => settings.echo_nonce_on_refresh,
        };
        let standard = if settings.id_token_standard_claims {
            let mut claims = crate::identity::claims::standard_claims(&self.config().issuer, user);
            // The token's own `sub` (and any registered claim) is written once, from the grant.
            claims.retain(|name, _| !REGISTERED_CLAIMS.contains(&name.as_str()));
            claims
        } else {
            serde_json::Map::new()
        };
        IdTokenClaims {
            iss: self.config().issuer.clone(),
            sub: self.identity_url(&grant.org_id, &grant.user_id),
            aud: Audience::of(&client.client_id, &settings.id_token_audiences),
            azp: client.client_id.clone(),
            iat: at.seconds(),
            exp: at.plus_secs(settings.id_token_validity_secs).seconds(),
            auth_time: grant.auth_time.unwrap_or(grant.created_at).seconds(),
            nonce: grant.nonce.clone().filter(|_| echo_nonce),
            at_hash: Some(at_hash(access_token)),
            standard,
        }
    }
}

#[cfg(test)]
mod tests {
    //! ID tokens on a fixed clock and an in-memory store: the grant is minted (no login, so its
    //! `auth_time` is its creation), then refreshed.

    use std::sync::Arc;

    use serde_json::Value;
    use tessera_proto::{OAuthError, RefreshToken, TokenResponse};

    use crate::authority::{Authority, ClientCredentials, Source};
    use crate::flows::token_request::TokenRequest;
    use crate::operations::admin::ClientSettings;
    use crate::time::{ManualClock, Timestamp};
    use crate::tokens::id_token::at_hash;

    const START: Timestamp = Timestamp(1_800_000_000_000);
    const OPENID: &str = "api id refresh_token openid";

    struct World {
        authority: Authority,
        clock: Arc<ManualClock>,
        creds: ClientCredentials,
    }

    async fn world(settings: ClientSettings) -> World {
        let (authority, clock) =
            crate::authority::test_authority("ada@example.com", "password one").await;
        let settings = ClientSettings {
            name: Some("App".into()),
            redirect_uris: Some(vec!["https://app.example/cb".into()]),
            scopes: Some(OPENID.into()),
            ..settings
        };
        let (client, secret) = authority
            .operator()
            .create_client(false, &settings)
            .await
            .unwrap();
        World {
            authority,
            clock,
            creds: ClientCredentials {
                client_id: client.client_id,
                secret,
                via_basic: false,
            },
        }
    }

    impl World {
        async fn keys(&self) {
            self.authority.rotate_signing_keys_when_due().await.unwrap();
        }

        async fn mint(&self, scope: &str) -> TokenResponse {
            self.authority
                .operator()
                .mint_for(&self.creds.client_id, "ada@example.com", scope)
                .await
                .unwrap()
        }

        async fn refresh(&self, token: &RefreshToken) -> Result<TokenResponse, OAuthError> {
            let request = TokenRequest::RefreshToken {
                refresh_token: token.clone(),
                scope: None,
            };
            self.authority
                .token(Some(self.creds.clone()), request, &Source::default())
                .await
        }

        /// The ID token's claims, its signature verified against the published keys.
        async fn verified(&self, response: &TokenResponse) -> Value {
            let token = response.id_token.as_ref().expect("an ID token");
            let token = tessera_proto::ExposeSecret::expose_secret(token);
            let header = jsonwebtoken::decode_header(token).unwrap();
            let jwks = self.authority.published_jwks().await.unwrap();
            let jwk = jwks
                .iter()
                .find(|k| Some(&k.kid) == header.kid.as_ref())
                .unwrap();
            let jwk: jsonwebtoken::jwk::Jwk =
                serde_json::from_value(serde_json::to_value(jwk).unwrap()).unwrap();
            let mut validation = jsonwebtoken::Validation::new(header.alg);
            validation.set_audience(&[&self.creds.client_id]);
            validation.validate_exp = false;
            jsonwebtoken::decode::<Value>(
                token,
                &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(),
                &validation,
            )
            .unwrap()
            .claims
        }
    }

    fn rotating() -> ClientSettings {
        ClientSettings {
            rotate_refresh_tokens: Some(true),
            refresh_retry_window_secs: Some(60),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn every_refresh_of_an_openid_grant_returns_a_new_id_token_with_the_same_identity() {
        for settings in [ClientSettings::default(), rotating()] {
            let w = world(settings).await;
            w.keys().await;
            let first = w.mint(OPENID).await;
            let claims = w.verified(&first).await;
            assert_eq!(claims["iss"], "http://as.test");
            assert_eq!(claims["sub"], first.id.as_str());
            assert_eq!(claims["aud"], w.creds.client_id.as_str());
            assert_eq!(claims["azp"], w.creds.client_id.as_str());
            assert_eq!(claims["iat"], START.seconds());
            assert_eq!(claims["exp"], START.seconds() + 120);
            assert_eq!(claims["auth_time"], START.seconds());
            assert_eq!(
                claims["at_hash"],
                at_hash(tessera_proto::ExposeSecret::expose_secret(
                    &first.access_token
                ))
            );

            w.clock.advance_secs(600);
            let token = first.refresh_token.clone().unwrap();
            let refreshed = w.refresh(&token).await.unwrap();
            let again = w.verified(&refreshed).await;
            // OpenID Connect Core §12.2.
            for same in ["iss", "sub", "aud", "azp", "auth_time"] {
                assert_eq!(again[same], claims[same], "{same}");
            }
            assert_eq!(again["iat"], START.seconds() + 600);
            assert_eq!(
                again["at_hash"],
                at_hash(tessera_proto::ExposeSecret::expose_secret(
                    &refreshed.access_token
                ))
            );
            assert!(again.get("nonce").is_none());
        }
    }

    #[tokio::test]
    async fn a_replay_inside_the_window_answers_the_identical_id_token() {
        let w = world(rotating()).await;
        w.keys().await;
        let first = w.mint(OPENID).await.refresh_token.unwrap();
        let rotated = w.refresh(&first).await.unwrap();
        w.clock.advance_secs(5);
        let replayed = w.refresh(&first).await.unwrap();
        assert_eq!(replayed.refresh_token, rotated.refresh_token);
        assert_eq!(replayed.id_token, rotated.id_token);
        assert!(replayed.id_token.is_some());
    }

    #[tokio::test]
    async fn without_openid_there_is_no_id_token_and_no_key_is_needed() {
        let w = world(rotating()).await;
        let first = w.mint("api refresh_token").await;
        assert!(first.id_token.is_none());
        let refreshed = w.refresh(&first.refresh_token.unwrap()).await.unwrap();
        assert!(refreshed.id_token.is_none());
    }

    #[tokio::test]
    async fn a_refresh_that_cannot_sign_answers_503_and_rotates_nothing() {
        // Without a retry window: had the failed refresh rotated, presenting its token again a
        // minute later would be reuse.
        let w = world(ClientSettings {
            refresh_retry_window_secs: Some(0),
            ..rotating()
        })
        .await;
        w.keys().await;
        let first = w.mint(OPENID).await.refresh_token.unwrap();
        // Every key retired at once: nothing can sign (once this node's copy of the keys is
        // read again).
        for key in w.authority.signing_key_statuses().await.unwrap() {
            w.authority
                .store()
                .retire_signing_key(&key.kid, START)
                .await
                .unwrap();
        }
        w.clock
            .advance_secs(crate::operations::signing_keys::KEY_CACHE_TTL_SECS);
        assert!(matches!(
            w.refresh(&first).await,
            Err(OAuthError::TemporarilyUnavailable { .. })
        ));
        // The family did not rotate: once a key signs again, the same token refreshes.
        w.keys().await;
        w.clock.advance_secs(60);
        let refreshed = w.refresh(&first).await.unwrap();
        assert!(refreshed.id_token.is_some());
    }

    #[tokio::test]
    async fn the_client_settings_shape_the_id_token() {
        let w = world(ClientSettings {
            id_token_validity_secs: Some(300),
            id_token_audiences: Some(vec!["https://api.example".into()]),
            id_token_standard_claims: Some(true),
            id_token_alg: Some(crate::model::SigningAlg::Es256),
            ..Default::default()
        })
        .await;
        w.keys().await;
        let first = w.mint(OPENID).await;
        let token = tessera_proto::ExposeSecret::expose_secret(first.id_token.as_ref().unwrap());
        assert_eq!(
            jsonwebtoken::decode_header(token).unwrap().alg,
            jsonwebtoken::Algorithm::ES256
        );
        let claims = w.verified(&first).await;
        assert_eq!(
            claims["aud"],
            serde_json::json!([w.creds.client_id, "https://api.example"])
        );
        assert_eq!(claims["azp"], w.creds.client_id.as_str());
        assert_eq!(claims["exp"], START.seconds() + 300);
        assert_eq!(claims["preferred_username"], "ada@example.com");

        let plain = world(ClientSettings::default()).await;
        plain.keys().await;
        let claims = plain.verified(&plain.mint(OPENID).await).await;
        assert!(claims.get("preferred_username").is_none(), "{claims}");
    }
}
