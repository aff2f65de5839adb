//! Wire types shared by the Tessera server, its domain crate and its clients.
//!
//! Nothing here does IO. Secrets are types with a redacted `Debug`, no `Display`, an explicit
//! [`ExposeSecret::expose_secret`], constant-time equality and zeroize-on-drop.

pub mod dpop;
mod error;
mod params;
mod secret;
mod token;

pub use error::{OAuthError, OAuthErrorBody, RevokeError, SessionError};
pub use params::{decode_component, MalformedForm, Params};
pub use secret::{
    AccessToken, AuthorizationCode, ClientSecret, CodeVerifier, CsrfCookie, CsrfToken,
    ExposeSecret, IdToken, Password, PresentedToken, RefreshToken, SessionCookie,
};
pub use token::{Scope, TokenResponse, TokenType};
