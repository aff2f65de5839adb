//! The data a run needs, prepared straight in the database before the server starts: a user,
//! a rotating and a non-rotating client, and `--tokens` grants, each worker's first; then the
//! OpenID Connect clients (rotating `openid` grants with RS256 and with ES256 ID tokens, and a
//! client of JWT access tokens), one grant a worker each, and the signing keys; and the DPoP
//! clients (a rotating and a non-rotating confidential client with DPoP allowed), one grant a
//! worker each, whose workers sign their proofs with keys of their own.

use std::path::Path;

use anyhow::Context;
use tessera_core::model::{DpopMode, SigningAlg};
use tessera_core::operations::admin::ClientSettings;
use tessera_core::time::{SystemClock, SystemRandom};
use tessera_core::tokens::server_key::ServerKey;
use tessera_core::{Authority, AuthorityConfig};
use tessera_proto::{ClientSecret, ExposeSecret, Password, TokenResponse};

use crate::database::Database;

pub(crate) const USERNAME: &str = "bench@example.com";
pub(crate) const PASSWORD: &str = "bench password";
pub(crate) const SCOPE: &str = "api refresh_token";
/// The issuer the data is made for and every node serves as: a JWT access token names its
/// issuer, and a node refuses one made for another (a cluster shares one issuer).
pub(crate) const ISSUER: &str = "http://127.0.0.1";
/// The scope of the `openid` scenarios' grants.
const OPENID_SCOPE: &str = "api openid refresh_token";

/// What each worker of a scenario needs.
#[derive(Debug, Clone)]
pub(crate) struct Credentials {
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    pub(crate) refresh_token: String,
    pub(crate) access_token: String,
    pub(crate) user_id: String,
}

impl Credentials {
    fn of(client_id: &str, secret: &ClientSecret, user_id: &str, minted: TokenResponse) -> Self {
        Self {
            client_id: client_id.to_owned(),
            client_secret: secret.expose_secret().to_owned(),
            refresh_token: minted
                .refresh_token
                .map(|r| r.expose_secret().to_owned())
                .unwrap_or_default(),
            access_token: minted.access_token.expose_secret().to_owned(),
            user_id: user_id.to_owned(),
        }
    }
}

/// The data of one store size: per-worker credentials for each scenario.
pub(crate) struct Data {
    pub(crate) rotating: Vec<Credentials>,
    pub(crate) non_rotating: Vec<Credentials>,
    /// Rotating grants of `openid`: every refresh signs an ID token, RS256.
    pub(crate) openid_rs256: Vec<Credentials>,
    /// The same with ES256 ID tokens.
    pub(crate) openid_es256: Vec<Credentials>,
    /// Grants of a client of JWT access tokens (RFC 9068), for the API scenario.
    pub(crate) jwt_access: Vec<Credentials>,
    /// Rotating grants of a confidential client with DPoP allowed: each refresh carries a proof
    /// and binds the access token it gets (the refresh token itself is not bound: the client's
    /// secret already binds it).
    pub(crate) dpop_rotating: Vec<Credentials>,
    /// Grants of a non-rotating confidential client with DPoP allowed, for the DPoP API
    /// scenario: each worker binds an access token to its key with one refresh before it runs.
    pub(crate) dpop_static: Vec<Credentials>,
}

impl Data {
    /// The credentials a scenario's workers start from, and whether the scenario chains the
    /// refresh token each answer brings.
    pub(crate) fn of_scenario(&mut self, scenario: &str) -> Option<(&mut Vec<Credentials>, bool)> {
        Some(match scenario {
            "rotating" => (&mut self.rotating, true),
            "floor" | "non-rotating" | "api" => (&mut self.non_rotating, false),
            "openid-rs256" => (&mut self.openid_rs256, true),
            "openid-es256" => (&mut self.openid_es256, true),
            "api-jwt" => (&mut self.jwt_access, false),
            "dpop-rotating" => (&mut self.dpop_rotating, true),
            "dpop-api" => (&mut self.dpop_static, false),
            _ => return None,
        })
    }
}

/// Creates the user and the clients and mints the grants, straight into the database (the
/// server is not running yet). Workers' grants come first; the rest of `tokens` is ballast.
pub(crate) async fn prepare(
    dir: &Path,
    database: &Database,
    tokens: u64,
    workers: usize,
) -> anyhow::Result<Data> {
    let store = database.open_store().await?;
    let key = ServerKey::generate(&SystemRandom);
    std::fs::write(dir.join("server.key"), key.to_hex().as_bytes())?;
    let config = AuthorityConfig {
        max_live_grants: None,
        ..AuthorityConfig::new(ISSUER, key)
    };
    let authority = Authority::new(
        store,
        std::sync::Arc::new(SystemClock),
        std::sync::Arc::new(SystemRandom),
        config,
    );
    authority.org().await?;
    // The signing keys the server would make at its start: the JWT access tokens minted below
    // are signed with them.
    authority
        .rotate_signing_keys_when_due()
        .await
        .map_err(|e| anyhow::anyhow!("making the signing keys: {e}"))?;
    let operator = authority.operator();
    let user = operator
        .create_user(USERNAME, Password::new(PASSWORD), None)
        .await?;
    let client = |name: &str, rotate: bool| ClientSettings {
        name: Some(name.into()),
        redirect_uris: Some(vec!["https://bench.example/cb".into()]),
        scopes: Some(SCOPE.into()),
        rotate_refresh_tokens: Some(rotate),
        ..Default::default()
    };
    let mut data = Data {
        rotating: Vec::new(),
        non_rotating: Vec::new(),
        openid_rs256: Vec::new(),
        openid_es256: Vec::new(),
        jwt_access: Vec::new(),
        dpop_rotating: Vec::new(),
        dpop_static: Vec::new(),
    };
    // Workers of every concurrency run the same scenario in turn, so each kind needs as many
    // grants as the largest concurrency; the ballast is shared, and the workers' grants are
    // spread through it.
    let per_kind = workers as u64;
    let ballast = tokens.saturating_sub(2 * per_kind);
    for (rotate, ballast) in [(true, ballast - ballast / 2), (false, ballast / 2)] {
        let (client, secret) = operator
            .create_client(
                false,
                &client(if rotate { "rotating" } else { "static" }, rotate),
            )
            .await?;
        let secret = secret.context("a confidential client has a secret")?;
        let minted = operator
            .mint_many(
                &client.client_id,
                USERNAME,
                SCOPE,
                per_kind + ballast,
                workers,
            )
            .await
            .map_err(|e| anyhow::anyhow!("minting: {e}"))?;
        let credentials = minted
            .into_iter()
            .map(|t| Credentials::of(&client.client_id, &secret, &user.id, t));
        if rotate {
            data.rotating = credentials.collect();
        } else {
            data.non_rotating = credentials.collect();
        }
    }
    let openid = |name: &str, alg: SigningAlg, rotate: bool, jwt: bool| ClientSettings {
        scopes: Some(OPENID_SCOPE.into()),
        id_token_alg: Some(alg),
        jwt_access_tokens: Some(jwt),
        ..client(name, rotate)
    };
    let dpop = |name: &str, rotate: bool| ClientSettings {
        dpop: Some(DpopMode::Allowed),
        ..client(name, rotate)
    };
    for (settings, scope, slot) in [
        (
            openid("openid RS256", SigningAlg::Rs256, true, false),
            OPENID_SCOPE,
            &mut data.openid_rs256,
        ),
        (
            openid("openid ES256", SigningAlg::Es256, true, false),
            OPENID_SCOPE,
            &mut data.openid_es256,
        ),
        (
            openid("JWT access tokens", SigningAlg::Rs256, false, true),
            SCOPE,
            &mut data.jwt_access,
        ),
        (dpop("DPoP rotating", true), SCOPE, &mut data.dpop_rotating),
        (dpop("DPoP static", false), SCOPE, &mut data.dpop_static),
    ] {
        let (client, secret) = operator.create_client(false, &settings).await?;
        let secret = secret.context("a confidential client has a secret")?;
        let minted = operator
            .mint_many(&client.client_id, USERNAME, scope, per_kind, workers)
            .await
            .map_err(|e| anyhow::anyhow!("minting: {e}"))?;
        *slot = minted
            .into_iter()
            .map(|t| Credentials::of(&client.client_id, &secret, &user.id, t))
            .collect();
    }
    Ok(data)
}
