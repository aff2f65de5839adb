use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Gives access to the clear value of a secret. Every call site is a place a secret leaves its
/// type, so it is kept explicit and greppable.
pub trait ExposeSecret {
    fn expose_secret(&self) -> &str;
}

macro_rules! secret_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone)]
        pub struct $name(Zeroizing<String>);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(Zeroizing::new(value.into()))
            }
        }

        impl ExposeSecret for $name {
            fn expose_secret(&self) -> &str {
                self.0.as_str()
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($name), "([REDACTED])"))
            }
        }

        impl PartialEq for $name {
            /// Constant-time in the length of the shorter value.
            fn eq(&self, other: &Self) -> bool {
                self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
            }
        }

        impl Eq for $name {}

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.0.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d).map(Self::new)
            }
        }
    };
}

secret_type!(
    /// A bearer access token (`<org id>!<random>`).
    AccessToken
);
secret_type!(
    /// A refresh token: long-lived, the key to a grant.
    RefreshToken
);
secret_type!(
    /// A client (consumer) secret.
    ClientSecret
);
secret_type!(
    /// A single-use authorization code.
    AuthorizationCode
);
secret_type!(
    /// A user's password, as typed.
    Password
);
secret_type!(
    /// A PKCE code verifier.
    CodeVerifier
);
secret_type!(
    /// A token whose type the caller did not say: the `token` of revocation and introspection,
    /// an access or a refresh token.
    PresentedToken
);

secret_type!(
    /// An OpenID Connect ID token (a compact JWS): it names the user and what they consented
    /// to, so it is kept out of logs as a credential is.
    IdToken
);

secret_type!(
    /// The value of a signed browser session cookie: the end user's (`tessera_sid`) or the
    /// admin console's (`tessera_admin`; both `__Host-` prefixed under https). Whoever holds it
    /// is logged in, until the user's session epoch moves on.
    SessionCookie
);
secret_type!(
    /// The value of the browser's CSRF cookie (`tessera_csrf`), the secret half of the double
    /// submit of the login forms: their token is a MAC of it.
    CsrfCookie
);
secret_type!(
    /// The CSRF token of one of our forms (its hidden `csrf_token` field): a MAC of the
    /// browser's [`CsrfCookie`] on a login form, of the session's id on a session's form.
    CsrfToken
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let token = RefreshToken::new("super-secret-value");
        assert_eq!(format!("{token:?}"), "RefreshToken([REDACTED])");
    }

    #[test]
    fn cookie_values_and_csrf_tokens_are_redacted_in_debug() {
        let session = SessionCookie::new("user.123.abcdef");
        let csrf_cookie = CsrfCookie::new("random-csrf-cookie-value");
        let csrf_token = CsrfToken::new("0a1b2c3d");
        assert_eq!(format!("{session:?}"), "SessionCookie([REDACTED])");
        assert_eq!(format!("{csrf_cookie:?}"), "CsrfCookie([REDACTED])");
        assert_eq!(format!("{csrf_token:?}"), "CsrfToken([REDACTED])");
        let nested = format!("{:?}", Some(&session));
        assert!(!nested.contains("abcdef"), "{nested}");
    }

    #[test]
    fn equality_compares_values() {
        assert_eq!(ClientSecret::new("a"), ClientSecret::new("a"));
        assert_ne!(ClientSecret::new("a"), ClientSecret::new("b"));
        assert_ne!(ClientSecret::new("a"), ClientSecret::new("ab"));
    }

    #[test]
    fn serializes_to_the_clear_value_for_the_wire() {
        let json = serde_json::to_string(&AccessToken::new("00D!x")).unwrap();
        assert_eq!(json, "\"00D!x\"");
    }
}
