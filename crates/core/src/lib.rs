//! Tessera's domain: clients, users, grants and their refresh-token families, Salesforce's
//! refresh-token policies, rotation and revocation. It owns the [`store::Store`] trait and the
//! [`time::Clock`]; it knows nothing of HTTP or SQL.

pub mod admin;
pub mod authority;
pub mod authorize;
pub mod crypto;
pub mod ids;
pub mod lifecycle;
pub mod model;
pub mod policy;
pub mod ratelimit;
pub mod sealing;
pub mod store;
pub mod time;

pub use authority::{Authority, AuthorityConfig, ClientCredentials, LoginError};
