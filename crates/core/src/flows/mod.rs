//! The OAuth flows an end user's client goes through, one file per endpoint or grant, each adding
//! its own `impl Authority` block: the authorization request, the token endpoint and its grants
//! (authorization code, refresh token), revocation, introspection, and the resource server's
//! access-token validation.

pub mod authorize;
pub(crate) mod code_grant;
pub mod dpop_binding;
pub(crate) mod id_token;
pub mod introspection;
pub(crate) mod jwt_access;
pub(crate) mod refresh;
pub mod resource;
pub mod revocation;
pub mod rotation;
pub mod token_request;
