//! Client authentication (RFC 6749 §2.3, §3.2.1).

use tessera_proto::{ExposeSecret, OAuthError};

use crate::authority::{Authority, ClientCredentials};
use crate::model::Client;

impl Authority {
    /// Authenticates a client. A secret that is sent is always checked, even where it is not
    /// required (docs/salesforce-compatibility.md, "Token requests"); a confidential client
    /// must send one. Failures are counted and recorded by the caller (see `Authority::shed`).
    pub(crate) async fn authenticate_client(
        &self,
        creds: &ClientCredentials,
    ) -> Result<Client, OAuthError> {
        let Some(client) = self.cached_client(&creds.client_id).await? else {
            // Spend the time a secret check would, so that unknown ids do not answer faster.
            if let Some(secret) = &creds.secret {
                let _ = crate::tokens::hash::hash_matches(secret.expose_secret(), &[0u8; 32]);
            }
            return Err(OAuthError::InvalidClientId);
        };
        match (&client.secret_hash, &creds.secret) {
            (Some(_), Some(secret)) if client.secret_matches(secret) => Ok(client),
            (None, None) => Ok(client),
            _ => Err(OAuthError::InvalidClientCredentials {
                via_basic: creds.via_basic,
            }),
        }
    }
}
