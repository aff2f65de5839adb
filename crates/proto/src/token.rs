use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

use crate::{AccessToken, IdToken, RefreshToken};

/// The token endpoint's success body, field for field as Salesforce sends it
/// (docs/salesforce-compatibility.md, "Token response"), plus the RFC 6749 `expires_in`, which
/// can be switched off for byte-exact Salesforce mimicry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: AccessToken,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub refresh_token: Option<RefreshToken>,
    pub signature: String,
    pub scope: String,
    pub instance_url: String,
    pub id: String,
    pub token_type: TokenType,
    /// Milliseconds since the epoch, as a decimal string (Salesforce's format).
    pub issued_at: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expires_in: Option<u64>,
    /// The OpenID Connect ID token, when the grant has the `openid` scope (on the code
    /// exchange and on every refresh, as Salesforce answers).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id_token: Option<IdToken>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TokenType {
    Bearer,
    /// Bound to the key of the request's DPoP proof (RFC 9449 §5): sent as `Authorization:
    /// DPoP <token>` with a proof of that key.
    DPoP,
}

/// `token_type` is case-insensitive (RFC 6749 §5.1, §7.1): servers send `bearer` and `dpop` too.
impl<'de> Deserialize<'de> for TokenType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        if text.eq_ignore_ascii_case("bearer") {
            Ok(Self::Bearer)
        } else if text.eq_ignore_ascii_case("dpop") {
            Ok(Self::DPoP)
        } else {
            Err(serde::de::Error::unknown_variant(
                &text,
                &["Bearer", "DPoP"],
            ))
        }
    }
}

/// A set of scope tokens (RFC 6749 §3.3): case-sensitive, space-separated, each made of
/// `%x21 / %x23-5B / %x5D-7E`. Kept sorted so that equal sets print equally.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope(BTreeSet<String>);

impl Scope {
    /// Parses a space-separated scope string. `None` when a token has a character outside the
    /// RFC set; an empty string is an empty scope.
    pub fn parse(text: &str) -> Option<Self> {
        let mut set = BTreeSet::new();
        for token in text.split(' ').filter(|t| !t.is_empty()) {
            if !token
                .chars()
                .all(|c| matches!(c, '\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e'))
            {
                return None;
            }
            set.insert(token.to_owned());
        }
        Some(Self(set))
    }

    pub fn from_tokens<I: IntoIterator<Item = S>, S: Into<String>>(tokens: I) -> Self {
        Self(tokens.into_iter().map(Into::into).collect())
    }

    pub fn contains(&self, token: &str) -> bool {
        self.0.contains(token)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn is_subset(&self, other: &Scope) -> bool {
        self.0.is_subset(&other.0)
    }

    /// The tokens in both.
    pub fn intersection(&self, other: &Scope) -> Scope {
        Self(self.0.intersection(&other.0).cloned().collect())
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// Whether a refresh token may be issued for this scope (docs/salesforce-compatibility.md,
    /// "Scopes"): `refresh_token` or its synonym `offline_access`; `full` alone does not.
    pub fn allows_refresh_token(&self) -> bool {
        self.contains("refresh_token") || self.contains("offline_access")
    }

    /// Whether the REST API may be called with this scope.
    pub fn allows_api(&self) -> bool {
        self.contains("api") || self.contains("full")
    }

    /// Whether the identity URL may be read with this scope.
    pub fn allows_identity(&self) -> bool {
        self.allows_userinfo() || self.contains("api")
    }

    /// Whether userinfo may be read with this scope: Salesforce's identity scopes, and `full`,
    /// which includes them; `api` alone opens the identity URL but not userinfo.
    pub fn allows_userinfo(&self) -> bool {
        [
            "id", "openid", "profile", "email", "address", "phone", "full",
        ]
        .iter()
        .any(|s| self.contains(s))
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let joined: Vec<&str> = self.iter().collect();
        f.write_str(&joined.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_alone_opens_the_identity_url_but_not_userinfo() {
        let api = Scope::parse("api refresh_token").unwrap();
        assert!(api.allows_identity());
        assert!(!api.allows_userinfo());
        for identity in [
            "openid", "id", "profile", "email", "address", "phone", "full",
        ] {
            let scope = Scope::parse(identity).unwrap();
            assert!(scope.allows_userinfo(), "{identity}");
            assert!(scope.allows_identity(), "{identity}");
        }
        assert!(!Scope::parse("web refresh_token").unwrap().allows_identity());
    }

    #[test]
    fn scope_parses_sorted_and_deduplicated() {
        let s = Scope::parse("web api  refresh_token api").unwrap();
        assert_eq!(s.to_string(), "api refresh_token web");
    }

    #[test]
    fn scope_rejects_quotes_and_backslashes_and_non_ascii() {
        assert!(Scope::parse("api \"x\"").is_none());
        assert!(Scope::parse("a\\b").is_none());
        assert!(Scope::parse("apï").is_none());
    }

    #[test]
    fn full_alone_gives_no_refresh_token() {
        assert!(!Scope::parse("full").unwrap().allows_refresh_token());
        assert!(Scope::parse("offline_access")
            .unwrap()
            .allows_refresh_token());
    }

    #[test]
    fn token_response_omits_absent_fields() {
        let body = TokenResponse {
            access_token: AccessToken::new("a"),
            refresh_token: None,
            signature: "s".into(),
            scope: "api".into(),
            instance_url: "http://x".into(),
            id: "http://x/id/o/u".into(),
            token_type: TokenType::Bearer,
            issued_at: "1".into(),
            expires_in: None,
            id_token: None,
        };
        let json = serde_json::to_value(&body).unwrap();
        assert!(json.get("refresh_token").is_none());
        assert!(json.get("expires_in").is_none());
        assert_eq!(json["token_type"], "Bearer");
    }

    #[test]
    fn token_type_is_read_whatever_its_case() {
        for (text, expected) in [
            ("Bearer", TokenType::Bearer),
            ("bearer", TokenType::Bearer),
            ("DPoP", TokenType::DPoP),
            ("dpop", TokenType::DPoP),
        ] {
            let parsed: TokenType = serde_json::from_value(serde_json::json!(text)).unwrap();
            assert_eq!(parsed, expected, "{text}");
        }
        assert!(serde_json::from_value::<TokenType>(serde_json::json!("mac")).is_err());
    }
}
