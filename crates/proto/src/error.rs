//! OAuth errors as Salesforce writes them on the wire (docs/salesforce-compatibility.md, "Token
//! endpoint errors"; RFC 6749 §5.2).
//!
//! Each variant is one failure the spec names; [`OAuthError::status`], [`OAuthError::code`] and
//! [`OAuthError::description`] are the single edge where it becomes wire values. Descriptions are
//! fixed strings: no input is ever echoed back.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuthError {
    /// Malformed request: missing, repeated or unsupported parameter, several credentials.
    InvalidRequest(&'static str),
    /// The token endpoint was called with another method than POST.
    MethodNotAllowed,
    /// The body is not `application/x-www-form-urlencoded`.
    UnsupportedContentType,
    /// The body is larger than the endpoint accepts.
    BodyTooLarge,
    /// No client has this `client_id`.
    InvalidClientId,
    /// The client secret is missing (where required) or wrong. `via_basic` selects RFC 6749's
    /// 401 + `WWW-Authenticate`, which is a MUST when the client used the Authorization header.
    InvalidClientCredentials {
        via_basic: bool,
    },
    /// The client may not use this grant or flow.
    UnauthorizedClient(&'static str),
    UnsupportedGrantType,
    UnsupportedResponseType,
    /// Refresh token unknown, garbage, revoked, expired by policy, rotated out or evicted.
    ExpiredRefreshToken,
    /// Another refresh with the same token is in flight (Salesforce, Winter '25).
    TokenRequestInProgress,
    /// Authorization code reused or expired.
    ExpiredAuthorizationCode,
    /// Authorization code unknown or malformed.
    InvalidAuthorizationCode,
    /// PKCE: the verifier does not match the challenge, or is missing.
    InvalidCodeVerifier,
    /// PKCE downgrade: a verifier was sent but the authorization request had no challenge.
    UnexpectedCodeVerifier,
    /// `redirect_uri` at the token endpoint differs from the one used at authorize.
    RedirectUriMismatch,
    InvalidScope,
    InactiveUser,
    AccessDenied,
    /// Too many failures from this client or address.
    RateLimited {
        retry_after_secs: u64,
    },
    /// A dependency (the database) is down; nothing was issued.
    TemporarilyUnavailable {
        retry_after_secs: u64,
    },
    /// An internal failure; the cause is logged, never sent.
    ServerError,
    /// DPoP (RFC 9449 §5): the `DPoP` proof is missing where required, malformed, or does not
    /// hold; the text says which check failed and never echoes the proof.
    InvalidDpopProof(&'static str),
    /// DPoP (RFC 9449 §8): the server demands a nonce the proof lacks or has stale; the answer
    /// carries a fresh one in its `DPoP-Nonce` header.
    UseDpopNonce,
    /// DPoP (RFC 9449 §5): the grant is bound to a key and the request's proof is of no key or
    /// of another one. Refused without revoking anything.
    DpopKeyMismatch,
    /// The request's source address is outside the client's refresh-token IP allowlist (or
    /// unknown while the client has one). Refused without revoking anything.
    IpRestricted,
}

impl OAuthError {
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidClientCredentials { via_basic: true } => 401,
            Self::MethodNotAllowed => 405,
            Self::BodyTooLarge => 413,
            Self::RateLimited { .. } => 429,
            Self::ServerError => 500,
            Self::TemporarilyUnavailable { .. } => 503,
            _ => 400,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_)
            | Self::MethodNotAllowed
            | Self::UnsupportedContentType
            | Self::BodyTooLarge => "invalid_request",
            Self::InvalidClientId => "invalid_client_id",
            Self::InvalidClientCredentials { .. } => "invalid_client",
            Self::UnauthorizedClient(_) => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::ExpiredRefreshToken
            | Self::TokenRequestInProgress
            | Self::ExpiredAuthorizationCode
            | Self::InvalidAuthorizationCode
            | Self::InvalidCodeVerifier
            | Self::UnexpectedCodeVerifier
            | Self::RedirectUriMismatch
            | Self::DpopKeyMismatch
            | Self::IpRestricted => "invalid_grant",
            Self::InvalidScope => "invalid_scope",
            Self::InactiveUser => "inactive_user",
            Self::AccessDenied => "access_denied",
            Self::RateLimited { .. } => "rate_limit_exceeded",
            Self::TemporarilyUnavailable { .. } => "temporarily_unavailable",
            Self::ServerError => "server_error",
            Self::InvalidDpopProof(_) => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
        }
    }

    pub fn description(&self) -> &'static str {
        match self {
            Self::InvalidRequest(text)
            | Self::UnauthorizedClient(text)
            | Self::InvalidDpopProof(text) => text,
            Self::MethodNotAllowed => "Must use HTTP POST",
            Self::UnsupportedContentType => {
                "request body must be application/x-www-form-urlencoded"
            }
            Self::BodyTooLarge => "request body too large",
            Self::InvalidClientId => "client identifier invalid",
            Self::InvalidClientCredentials { .. } => "invalid client credentials",
            Self::UnsupportedGrantType => "grant type not supported",
            Self::UnsupportedResponseType => "response type not supported",
            Self::ExpiredRefreshToken => "expired access/refresh token",
            Self::TokenRequestInProgress => "token request is already being processed",
            Self::ExpiredAuthorizationCode => "expired authorization code",
            Self::InvalidAuthorizationCode => "invalid authorization code",
            Self::InvalidCodeVerifier => "invalid code verifier",
            Self::UnexpectedCodeVerifier => "unexpected code verifier",
            Self::RedirectUriMismatch => "redirect_uri must match configuration",
            Self::InvalidScope => "requested scope is invalid, unknown, or malformed",
            Self::InactiveUser => "user is inactive",
            Self::AccessDenied => "end-user denied authorization",
            Self::RateLimited { .. } => "too many requests, retry later",
            Self::TemporarilyUnavailable { .. } => "service temporarily unavailable, retry later",
            Self::ServerError => "internal server error",
            Self::UseDpopNonce => "Authorization server requires nonce in DPoP proof",
            Self::DpopKeyMismatch => "DPoP proof does not match the key the token is bound to",
            // Salesforce's words for a refresh from an address its IP restrictions refuse.
            Self::IpRestricted => "ip restricted",
        }
    }

    /// Seconds for a `Retry-After` header, where the error asks the client to come back.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after_secs }
            | Self::TemporarilyUnavailable { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        }
    }

    pub fn body(&self) -> OAuthErrorBody {
        OAuthErrorBody {
            error: self.code().to_owned(),
            error_description: self.description().to_owned(),
        }
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code(), self.description())
    }
}

impl std::error::Error for OAuthError {}

/// `{"error": …, "error_description": …}`: both keys always, since jsforce builds its error
/// from them (docs/salesforce-compatibility.md, "Token endpoint errors").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthErrorBody {
    pub error: String,
    pub error_description: String,
}

/// Errors of the revocation endpoint, sent form-encoded as Salesforce does
/// (docs/salesforce-compatibility.md, "Revocation").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeError {
    InvalidToken,
    UnsupportedTokenType,
    InvalidRequest,
}

impl RevokeError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidToken => "invalid_token",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::InvalidRequest => "invalid_request",
        }
    }

    pub fn description(&self) -> &'static str {
        match self {
            Self::InvalidToken => "token was invalid",
            Self::UnsupportedTokenType => "this token type is not supported",
            Self::InvalidRequest => "token parameter is required",
        }
    }
}

/// Errors of the REST API, as the JSON array Salesforce sends (docs/salesforce-compatibility.md,
/// "REST API").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    /// Missing, unknown, expired or revoked access token: 401.
    InvalidSession,
    /// A valid token whose scope does not allow the API: 403.
    InsufficientScope,
}

impl SessionError {
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidSession => 401,
            Self::InsufficientScope => 403,
        }
    }

    pub fn body(&self) -> serde_json::Value {
        let (message, code) = match self {
            Self::InvalidSession => ("Session expired or invalid", "INVALID_SESSION_ID"),
            Self::InsufficientScope => (
                "This session is not valid for use with the REST API",
                "API_DISABLED_FOR_ORG",
            ),
        };
        serde_json::json!([{ "message": message, "errorCode": code }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_failures_carry_salesforce_text() {
        let e = OAuthError::ExpiredRefreshToken;
        assert_eq!((e.status(), e.code()), (400, "invalid_grant"));
        assert_eq!(e.description(), "expired access/refresh token");
    }

    #[test]
    fn bad_secret_over_basic_is_401_and_in_body_is_400() {
        assert_eq!(
            OAuthError::InvalidClientCredentials { via_basic: true }.status(),
            401
        );
        assert_eq!(
            OAuthError::InvalidClientCredentials { via_basic: false }.status(),
            400
        );
    }

    #[test]
    fn descriptions_stay_in_the_rfc_character_set() {
        let all = [
            OAuthError::InvalidRequest("x"),
            OAuthError::MethodNotAllowed,
            OAuthError::UnsupportedContentType,
            OAuthError::BodyTooLarge,
            OAuthError::InvalidClientId,
            OAuthError::InvalidClientCredentials { via_basic: false },
            OAuthError::UnsupportedGrantType,
            OAuthError::ExpiredRefreshToken,
            OAuthError::TokenRequestInProgress,
            OAuthError::ExpiredAuthorizationCode,
            OAuthError::InvalidAuthorizationCode,
            OAuthError::InvalidCodeVerifier,
            OAuthError::UnexpectedCodeVerifier,
            OAuthError::RedirectUriMismatch,
            OAuthError::InvalidScope,
            OAuthError::InactiveUser,
            OAuthError::AccessDenied,
            OAuthError::RateLimited {
                retry_after_secs: 1,
            },
            OAuthError::TemporarilyUnavailable {
                retry_after_secs: 1,
            },
            OAuthError::ServerError,
        ];
        // RFC 6749 §5.2: %x20-21 / %x23-5B / %x5D-7E.
        for e in all {
            for c in e.description().chars().chain(e.code().chars()) {
                assert!(
                    matches!(c, '\x20'..='\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e'),
                    "{e:?} has {c:?}"
                );
            }
        }
    }
}
