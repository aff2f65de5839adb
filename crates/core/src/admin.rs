//! Administration: clients and users, as the `tessera admin` commands use them.

use tessera_proto::{ClientSecret, ExposeSecret, Password, Scope};

use crate::authority::Authority;
use crate::crypto;
use crate::ids::{random_token, salesforce_id, secret_hash};
use crate::model::{Client, User};
use crate::policy::RefreshTokenPolicy;
use crate::store::StoreError;

/// Default access-token lifetime: Salesforce's default session timeout, 2 hours.
pub const DEFAULT_ACCESS_TOKEN_TTL_SECS: u64 = 2 * 3600;
/// Default retry window for rotated-out refresh tokens (DESIGN.md: 60 s; 0 is strict).
pub const DEFAULT_REFRESH_RETRY_WINDOW_SECS: u64 = 60;
/// Longest retry window: the sealed successor is a live credential held by the server, so it is
/// kept briefly (Okta and Cognito cap theirs at 60 s; Hydra at 5 min).
pub const MAX_REFRESH_RETRY_WINDOW_SECS: u64 = 300;
/// Scopes a client gets when none are given.
pub const DEFAULT_CLIENT_SCOPES: &str = "api id refresh_token web";

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Settings of a new client; `None` keeps the default.
#[derive(Debug, Clone, Default)]
pub struct ClientSettings {
    pub name: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub scopes: Option<String>,
    pub refresh_token_policy: Option<RefreshTokenPolicy>,
    pub access_token_ttl_secs: Option<u64>,
    pub rotate_refresh_tokens: Option<bool>,
    pub allow_user_agent_flow: Option<bool>,
    pub refresh_retry_window_secs: Option<u64>,
}

impl ClientSettings {
    fn apply(&self, client: &mut Client) -> Result<(), AdminError> {
        if let Some(name) = &self.name {
            client.name = name.clone();
        }
        if let Some(uris) = &self.redirect_uris {
            for uri in uris {
                validate_redirect_uri(uri)?;
            }
            client.redirect_uris = uris.clone();
        }
        if let Some(text) = &self.scopes {
            client.scopes = Scope::parse(text)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| AdminError::Invalid(format!("invalid scope list: {text:?}")))?;
        }
        if let Some(policy) = self.refresh_token_policy {
            client.refresh_token_policy = policy;
        }
        if let Some(ttl) = self.access_token_ttl_secs {
            if ttl == 0 {
                return Err(AdminError::Invalid(
                    "access-token lifetime must be positive".into(),
                ));
            }
            client.access_token_ttl_secs = ttl;
        }
        if let Some(rotate) = self.rotate_refresh_tokens {
            client.rotate_refresh_tokens = rotate;
        }
        if let Some(allow) = self.allow_user_agent_flow {
            client.allow_user_agent_flow = allow;
        }
        if let Some(window) = self.refresh_retry_window_secs {
            if window > MAX_REFRESH_RETRY_WINDOW_SECS {
                return Err(AdminError::Invalid(format!(
                    "refresh retry window must be at most {MAX_REFRESH_RETRY_WINDOW_SECS} seconds"
                )));
            }
            client.refresh_retry_window_secs = window;
        }
        if client.redirect_uris.is_empty() {
            return Err(AdminError::Invalid(
                "a client needs at least one redirect URI".into(),
            ));
        }
        Ok(())
    }
}

/// A redirect URI must be absolute and carry no fragment (RFC 6749 §3.1.2).
fn validate_redirect_uri(uri: &str) -> Result<(), AdminError> {
    let parsed = url::Url::parse(uri)
        .map_err(|_| AdminError::Invalid(format!("redirect URI is not an absolute URI: {uri}")))?;
    if parsed.fragment().is_some() {
        return Err(AdminError::Invalid(format!(
            "redirect URI must not have a fragment: {uri}"
        )));
    }
    Ok(())
}

impl Authority {
    /// Registers a client. The secret (confidential clients only) is returned once and only its
    /// hash is kept.
    pub async fn create_client(
        &self,
        public: bool,
        settings: &ClientSettings,
    ) -> Result<(Client, Option<ClientSecret>), AdminError> {
        let secret = (!public).then(|| ClientSecret::new(new_client_secret(self)));
        let mut client = Client {
            // Salesforce consumer keys start with 3MVG9; ours use the token alphabet after it.
            client_id: format!("3MVG9{}", random_token(self.rng(), 48)),
            name: String::new(),
            secret_hash: secret.as_ref().map(|s| secret_hash(s.expose_secret())),
            redirect_uris: Vec::new(),
            scopes: Scope::parse(DEFAULT_CLIENT_SCOPES).unwrap_or_default(),
            refresh_token_policy: RefreshTokenPolicy::Infinite,
            access_token_ttl_secs: DEFAULT_ACCESS_TOKEN_TTL_SECS,
            rotate_refresh_tokens: false,
            allow_user_agent_flow: false,
            refresh_retry_window_secs: DEFAULT_REFRESH_RETRY_WINDOW_SECS,
            created_at: self.now(),
        };
        settings.apply(&mut client)?;
        if client.name.trim().is_empty() {
            return Err(AdminError::Invalid("a client needs a name".into()));
        }
        self.store().insert_client(&client).await?;
        Ok((client, secret))
    }

    pub async fn client(&self, client_id: &str) -> Result<Client, AdminError> {
        self.store()
            .client_by_id(client_id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("client {client_id}")))
    }

    pub async fn update_client(
        &self,
        client_id: &str,
        settings: &ClientSettings,
    ) -> Result<Client, AdminError> {
        let mut client = self.client(client_id).await?;
        settings.apply(&mut client)?;
        self.store().update_client(&client).await?;
        Ok(client)
    }

    /// Replaces a confidential client's secret; the old one stops working at once. Tokens
    /// already issued stay valid (as at Salesforce): refreshing them now needs the new secret,
    /// so a leaked old secret is useless. `revoke_tokens` also revokes every grant of the
    /// client, for when the tokens themselves may have leaked with it.
    pub async fn rotate_client_secret(
        &self,
        client_id: &str,
        revoke_tokens: bool,
    ) -> Result<(Client, ClientSecret), AdminError> {
        let mut client = self.client(client_id).await?;
        if client.is_public() {
            return Err(AdminError::Invalid("a public client has no secret".into()));
        }
        let secret = ClientSecret::new(new_client_secret(self));
        client.secret_hash = Some(secret_hash(secret.expose_secret()));
        self.store().update_client(&client).await?;
        if revoke_tokens {
            self.revoke_client_grants(client_id, "client secret rotated")
                .await?;
        }
        Ok((client, secret))
    }

    pub async fn delete_client(&self, client_id: &str) -> Result<(), AdminError> {
        if self.store().delete_client(client_id).await? {
            Ok(())
        } else {
            Err(AdminError::NotFound(format!("client {client_id}")))
        }
    }

    pub async fn create_user(
        &self,
        username: &str,
        password: Password,
        email: Option<String>,
    ) -> Result<User, AdminError> {
        let username = username.trim();
        if username.is_empty() || username.len() > 255 || username.chars().any(char::is_control) {
            return Err(AdminError::Invalid(
                "username must be 1 to 255 printable characters".into(),
            ));
        }
        check_password(&password)?;
        let org = self.org().await?;
        let user = User {
            id: salesforce_id("005", self.rng()),
            org_id: org.id,
            username: username.to_owned(),
            email,
            password_hash: self.hash_password(password).await,
            disabled: false,
            created_at: self.now(),
        };
        self.store().insert_user(&user).await?;
        Ok(user)
    }

    pub async fn user(&self, username: &str) -> Result<User, AdminError> {
        self.store()
            .user_by_username(username)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("user {username}")))
    }

    /// Disables or enables a user. Disabling also revokes every grant the user holds: their
    /// refresh tokens and access tokens stop working at once.
    pub async fn set_user_disabled(
        &self,
        username: &str,
        disabled: bool,
    ) -> Result<User, AdminError> {
        let mut user = self.user(username).await?;
        user.disabled = disabled;
        self.store().update_user(&user).await?;
        if disabled {
            self.revoke_user_grants(&user.id, "user disabled").await?;
        }
        Ok(user)
    }

    pub async fn set_user_password(
        &self,
        username: &str,
        password: Password,
    ) -> Result<User, AdminError> {
        check_password(&password)?;
        let mut user = self.user(username).await?;
        user.password_hash = self.hash_password(password).await;
        self.store().update_user(&user).await?;
        Ok(user)
    }

    async fn hash_password(&self, password: Password) -> String {
        let mut salt_source = [0u8; 32];
        self.rng().fill(&mut salt_source);
        let seeded = SeededSalt(salt_source);
        tokio::task::spawn_blocking(move || crypto::hash_password(&password, &seeded))
            .await
            .unwrap_or_default()
    }
}

fn check_password(password: &Password) -> Result<(), AdminError> {
    let len = password.expose_secret().chars().count();
    if !(8..=1024).contains(&len) {
        return Err(AdminError::Invalid(
            "password must be 8 to 1024 characters".into(),
        ));
    }
    Ok(())
}

fn new_client_secret(authority: &Authority) -> String {
    let mut bytes = [0u8; 32];
    authority.rng().fill(&mut bytes);
    hex::encode_upper(bytes)
}

/// Salt bytes drawn from the injected RNG on the runtime, handed to the blocking hasher.
#[derive(Debug)]
struct SeededSalt([u8; 32]);

impl crate::time::Random for SeededSalt {
    fn fill(&self, buf: &mut [u8]) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = self.0[i % 32];
        }
    }
}
