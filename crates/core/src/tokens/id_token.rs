//! The OpenID Connect ID token's claims (OpenID Connect Core §2, §3.1.3.6, §3.2.2.10; Salesforce's
//! "ID token"), as a value ready to be signed. Which claims a token carries, and when one is
//! issued, is decided in `flows/id_token.rs`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The claims of one ID token, in the order they are serialized.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IdTokenClaims {
    /// The issuer of the host the flow ran on.
    pub iss: String,
    /// The user's identity URL, `<issuer>/id/<org id>/<user id>` (as userinfo's `sub`).
    pub sub: String,
    pub aud: Audience,
    /// The client the token was issued to (OpenID Connect Core §2: the authorized party).
    /// Always present, so that a relying party comparing a refresh's ID token with the first
    /// one (§12.2) finds it in both, whatever `aud` looks like.
    pub azp: String,
    /// Seconds since the epoch.
    pub iat: i64,
    pub exp: i64,
    /// When the user logged in for the grant, seconds since the epoch: the same on every
    /// refresh.
    pub auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// [`at_hash`] of the access token issued with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    /// The user's standard claims (OpenID Connect Core §5.1), for clients that have them.
    #[serde(flatten)]
    pub standard: Map<String, Value>,
}

/// `aud`: the client id alone, or with the client's extra audiences as an array (OpenID Connect
/// Core §2 allows both; Salesforce answers a string unless extra audiences are configured).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    /// The client id, followed by `extra` (duplicates of the client id left out).
    pub fn of(client_id: &str, extra: &[String]) -> Self {
        let extra: Vec<&String> = extra.iter().filter(|a| *a != client_id).collect();
        if extra.is_empty() {
            return Self::One(client_id.to_owned());
        }
        let mut all = vec![client_id.to_owned()];
        all.extend(extra.into_iter().cloned());
        Self::Many(all)
    }
}

/// OpenID Connect Core §3.1.3.6: the base64url encoding of the left half of the hash of the
/// access token's ASCII, the hash being the one of the ID token's `alg` (SHA-256 for both
/// RS256 and ES256).
pub fn at_hash(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    let (left, _) = digest.as_slice().split_at(digest.len() / 2);
    URL_SAFE_NO_PAD.encode(left)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_is_the_left_half_of_the_sha256_of_the_access_token() {
        // An access token and the at_hash of the RS256 ID token issued with it, as a
        // relying-party library's test keeps them (computed by another implementation).
        assert_eq!(
            at_hash("ya29.OwHWAP05yaZvR92b67pAxfX5xHH5KNxA1mhh-zInoQ5vhK-Vuib1-Hqj"),
            "-EsTxDmUFRxSI0H_ZpbHiw"
        );
    }

    #[test]
    fn aud_is_the_client_id_alone_unless_extra_audiences_exist() {
        assert_eq!(
            serde_json::to_value(Audience::of("3MVG9", &[])).unwrap(),
            serde_json::json!("3MVG9")
        );
        assert_eq!(
            serde_json::to_value(Audience::of("3MVG9", &["3MVG9".into()])).unwrap(),
            serde_json::json!("3MVG9")
        );
        assert_eq!(
            serde_json::to_value(Audience::of("3MVG9", &["api://x".into()])).unwrap(),
            serde_json::json!(["3MVG9", "api://x"])
        );
    }
}
