//! Tessera's domain: clients, users, grants and their refresh-token families, Salesforce's
//! refresh-token policies, rotation and revocation, throttling. It owns the [`store::Store`]
//! trait and the [`time::Clock`]; it knows nothing of HTTP or SQL.

pub mod access_token;
pub mod admin;
pub mod authority;
pub mod authorize;
mod client_auth;
mod code_grant;
pub mod console;
pub mod crypto;
mod guard;
pub mod housekeeping;
pub mod ids;
pub mod introspection;
pub mod login;
pub mod metrics;
pub mod model;
pub mod policy;
mod refresh;
pub mod resource;
pub mod revocation;
pub mod sealing;
pub mod store;
pub mod throttle;
pub mod time;
pub mod token;

pub use authority::{Authority, AuthorityConfig, ClientCredentials, Source};
pub use login::LoginError;
pub use token::TokenRequest;
