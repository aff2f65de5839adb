//! The `/learn` playground's reads of the server's side: what the server holds about the token
//! family a learner's client works with — which of the refresh tokens the client has seen is
//! current, which one is still answerable inside the retry window, which are rotated out, and
//! the grant's timeline as the console draws it. The playground is a client like any other; it
//! learns nothing here that an administrator could not read in the console.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use sha2::{Digest, Sha256};
use tessera_proto::ClientSecret;

use crate::model::{Client, DpopMode};
use crate::operations::admin::{AdminError, ClientSettings};
use crate::operations::console::GrantTimeline;
use crate::operations::operator::Operator;
use crate::policy::{PolicyUnit, RefreshTokenPolicy};
use crate::store::StoreError;
use crate::time::Timestamp;
use crate::tokens::hash::secret_hash;
use crate::tokens::ids::{encode_token, random_token};
use crate::tokens::sealing::signed_grant_id;

/// Random bytes of the playground's own secrets (its session ids, CSRF tokens, `state` and PKCE
/// verifiers): as many as a refresh token's.
const PLAYGROUND_SECRET_BYTES: usize = 32;

/// The playground's client: rotation on, short-lived access tokens, a short retry window.
pub const PLAYGROUND_CLIENT_NAME: &str = "Tessera Playground";
/// The playground's second client, whose refresh tokens expire seconds after the login
/// (`specific_lifetime`): the "expired refresh token" mistake.
pub const PLAYGROUND_EXPIRING_CLIENT_NAME: &str = "Tessera Playground (expiring refresh tokens)";
/// What the playground's clients may ask for: `refresh_token` and `openid` among them, so the
/// learner can ask for either or leave them out.
pub const PLAYGROUND_SCOPES: &str = "api id refresh_token openid web";
/// Short enough to watch an access token expire, long enough to read the page meanwhile.
pub const PLAYGROUND_ACCESS_TOKEN_TTL_SECS: u64 = 20;
/// Long enough to replay inside the window by hand, short enough to wait out.
pub const PLAYGROUND_RETRY_WINDOW_SECS: u64 = 10;
/// The expiring client's refresh-token lifetime.
pub const PLAYGROUND_EXPIRING_LIFETIME_SECS: u64 = 5;

/// One of the playground's confidential clients, with the secret it was given on this start.
#[derive(Debug, Clone)]
pub struct PlaygroundClient {
    pub client_id: String,
    pub secret: ClientSecret,
}

/// The playground's two clients.
#[derive(Debug, Clone)]
pub struct PlaygroundClients {
    pub main: PlaygroundClient,
    pub expiring: PlaygroundClient,
}

/// Where one refresh token the client was given stands on the server now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenerationState {
    /// The family's current token: the next refresh must present it.
    Current,
    /// The token the current one replaced, replayable until `until` for the same pair.
    InRetryWindow { until: Timestamp },
    /// Rotated out: presenting it is reuse, and revokes the family.
    RotatedOut,
    /// The family is revoked: no token of it works.
    Revoked,
}

impl GenerationState {
    /// The state's name, as the page and its tests read it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Current => "current",
            Self::InRetryWindow { .. } => "retry-window",
            Self::RotatedOut => "rotated-out",
            Self::Revoked => "revoked",
        }
    }
}

/// The family of the grant a learner's refresh tokens belong to, as the server holds it.
#[derive(Debug, Clone)]
pub struct FamilyView {
    /// The grant's timeline, for the console's drawing.
    pub timeline: GrantTimeline,
    /// One state per refresh token the client was given, in the order it was given them.
    pub generations: Vec<GenerationState>,
    /// The client's retry window.
    pub retry_window_secs: u64,
    /// While a rotated-out token may still be replayed for the same pair: until then.
    pub window_open_until: Option<Timestamp>,
    /// When the family was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
    /// The thumbprint of the key the grant (so every refresh token of the family) is bound
    /// to: a public client's DPoP key; `None` for a confidential client, whose authentication
    /// binds its refresh tokens.
    pub grant_jkt: Option<String>,
    /// The thumbprint of the key the last rotation's access token was bound to, if it was.
    pub rotated_jkt: Option<String>,
}

/// A PKCE verifier, kept by the client, and the challenge sent with the authorization.
#[derive(Clone)]
pub struct PkcePair {
    pub verifier: String,
    pub challenge: String,
}

impl std::fmt::Debug for PkcePair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PkcePair")
            .field("challenge", &self.challenge)
            .finish_non_exhaustive()
    }
}

/// What a token store on disk holds for one refresh token: the sealed bytes (base64url) of an
/// XChaCha20-Poly1305 encryption under a key that is not in the file.
#[derive(Debug, Clone)]
pub struct SealedExample {
    pub ciphertext: String,
}

impl Operator {
    /// Makes the playground's two clients, or brings them back to what the playground needs
    /// (its redirect URI, its scopes, rotation on, DPoP allowed), and gives each a new secret that only this
    /// process holds. Their timings (access-token lifetime, retry window, refresh-token policy)
    /// are set when they are made and kept afterwards, so an administrator may shorten them.
    pub async fn ensure_playground_clients(
        &self,
        redirect_uri: &str,
    ) -> Result<PlaygroundClients, AdminError> {
        let clients = self.list_clients().await?;
        let main = self
            .ensure_playground_client(
                &clients,
                PLAYGROUND_CLIENT_NAME,
                redirect_uri,
                RefreshTokenPolicy::Infinite,
            )
            .await?;
        let expiring = self
            .ensure_playground_client(
                &clients,
                PLAYGROUND_EXPIRING_CLIENT_NAME,
                redirect_uri,
                RefreshTokenPolicy::SpecificLifetime {
                    amount: PLAYGROUND_EXPIRING_LIFETIME_SECS,
                    unit: PolicyUnit::Seconds,
                },
            )
            .await?;
        Ok(PlaygroundClients { main, expiring })
    }

    async fn ensure_playground_client(
        &self,
        clients: &[Client],
        name: &str,
        redirect_uri: &str,
        policy: RefreshTokenPolicy,
    ) -> Result<PlaygroundClient, AdminError> {
        let needed = ClientSettings {
            redirect_uris: Some(vec![redirect_uri.to_owned()]),
            scopes: Some(PLAYGROUND_SCOPES.to_owned()),
            rotate_refresh_tokens: Some(true),
            rotation_audit: Some(false),
            blocked: Some(false),
            // DPoP is the learner's choice too: a proof binds the tokens, none gets Bearer ones.
            dpop: Some(DpopMode::Allowed),
            ..ClientSettings::default()
        };
        let existing = clients.iter().find(|c| c.name == name && !c.is_public());
        let (client, secret) = match existing {
            Some(client) => {
                self.update_client(&client.client_id, &needed).await?;
                self.rotate_client_secret(&client.client_id, false).await?
            }
            None => {
                let settings = ClientSettings {
                    name: Some(name.to_owned()),
                    refresh_token_policy: Some(policy),
                    access_token_ttl_secs: Some(PLAYGROUND_ACCESS_TOKEN_TTL_SECS),
                    refresh_retry_window_secs: Some(PLAYGROUND_RETRY_WINDOW_SECS),
                    // PKCE is the learner's choice: the page can leave it out.
                    pkce_required: Some(false),
                    ..needed
                };
                let (client, secret) = self.create_client(false, &settings).await?;
                let secret = secret.ok_or_else(|| {
                    AdminError::Invalid("a confidential client has a secret".into())
                })?;
                (client, secret)
            }
        };
        Ok(PlaygroundClient {
            client_id: client.client_id,
            secret,
        })
    }

    /// A fresh unguessable value for the playground (session ids, CSRF tokens, `state`, PKCE
    /// verifiers), from the authority's random source.
    pub fn playground_secret(&self) -> String {
        random_token(self.authority.rng(), PLAYGROUND_SECRET_BYTES)
    }

    /// A PKCE verifier and its S256 challenge (RFC 7636), for an authorization the learner
    /// asks with PKCE.
    pub fn playground_pkce(&self) -> PkcePair {
        let verifier = self.playground_secret();
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        PkcePair {
            verifier,
            challenge,
        }
    }

    /// The authority's clock, which the playground's expiries are counted on.
    pub fn playground_now(&self) -> Timestamp {
        self.authority.now()
    }

    /// The family the refresh tokens in `seen` (oldest first) belong to, and where each stands;
    /// `None` when none of them names a grant (no refresh token yet, or a forged one), or the
    /// grant is gone.
    pub async fn playground_family(&self, seen: &[&str]) -> Result<Option<FamilyView>, StoreError> {
        let key = &self.authority.config().server_key;
        let Some(grant_id) = seen.iter().rev().find_map(|t| signed_grant_id(key, t)) else {
            return Ok(None);
        };
        let Some(family) = self.authority.store().family(grant_id).await? else {
            return Ok(None);
        };
        let Some(timeline) = self.grant_timeline(grant_id).await? else {
            return Ok(None);
        };
        let now = self.authority.now();
        let retry_window_secs = timeline
            .client
            .as_ref()
            .map_or(0, |c| c.refresh_retry_window_secs);
        let window_open_until = family
            .rotated_at
            .map(|at| at.plus_secs(retry_window_secs))
            .filter(|until| retry_window_secs > 0 && until.millis() > now.millis());
        let revoked_at = family.grant.revoked_at;
        let generations = seen
            .iter()
            .map(|token| {
                let hash = secret_hash(token);
                if revoked_at.is_some() {
                    GenerationState::Revoked
                } else if family.current == Some(hash) {
                    GenerationState::Current
                } else if let (Some(until), true) =
                    (window_open_until, family.previous == Some(hash))
                {
                    GenerationState::InRetryWindow { until }
                } else {
                    GenerationState::RotatedOut
                }
            })
            .collect();
        Ok(Some(FamilyView {
            timeline,
            generations,
            retry_window_secs,
            window_open_until,
            revoked_at,
            grant_jkt: family.grant.dpop_jkt.clone(),
            rotated_jkt: family.rotated_jkt.clone(),
        }))
    }

    /// What a proper token store would write for `token`: the token sealed under a fresh key
    /// that stays elsewhere (the keyring), so the file alone is worth nothing. The key is
    /// dropped at once: this is a demonstration of the shape, not a store.
    pub fn playground_sealed_example(&self, token: &str) -> SealedExample {
        let mut key = [0u8; 32];
        let mut nonce = [0u8; 24];
        self.authority.rng().fill(&mut key);
        self.authority.rng().fill(&mut nonce);
        let cipher = XChaCha20Poly1305::new(&key.into());
        let sealed = cipher
            .encrypt(XNonce::from_slice(&nonce), token.as_bytes())
            .unwrap_or_default();
        zeroize::Zeroize::zeroize(&mut key);
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        SealedExample {
            ciphertext: encode_token(&bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_states_have_the_names_the_page_shows() {
        assert_eq!(GenerationState::Current.name(), "current");
        assert_eq!(
            GenerationState::InRetryWindow {
                until: Timestamp(1)
            }
            .name(),
            "retry-window"
        );
        assert_eq!(GenerationState::RotatedOut.name(), "rotated-out");
        assert_eq!(GenerationState::Revoked.name(), "revoked");
    }
}
