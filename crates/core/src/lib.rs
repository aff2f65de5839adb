//! Tessera's domain: clients, users, grants and their refresh-token families, Salesforce's
//! refresh-token policies, rotation and revocation, throttling. It owns the [`store::Store`]
//! trait and the [`time::Clock`]; it knows nothing of HTTP or SQL.
//!
//! A map, one concern a module:

/// [`Authority`], the domain service the HTTP adapter calls, with what every flow shares:
/// its configuration, issuing tokens, recording audit events.
pub mod authority;
/// DPoP (RFC 9449): the proof validator, its server nonces and the store of proofs seen.
pub mod dpop;
/// The OAuth flows: authorization request, token endpoint and grants, revocation,
/// introspection, resource-token validation.
pub mod flows;
/// Who is asking: login and consent, client authentication, throttling, the in-memory guard.
pub mod identity;
/// The records the domain keeps (clients, users, grants, families, events).
pub mod model;
/// What operators use and watch: administration, the console, housekeeping, metrics.
pub mod operations;
/// A client's token policies: lifetimes, retry-window bounds, Salesforce's refresh-token
/// policies.
pub mod policy;
/// The storage contract every backend implements, and the in-memory stores for tests.
pub mod store;
/// The clock and randomness the domain is given, and time formatting.
pub mod time;
/// Token formats and key material: minting, sealing, signing, hashing, ids.
pub mod tokens;

pub use authority::{Authority, AuthorityConfig, ClientCredentials, Source};
pub use flows::token_request::TokenRequest;
pub use identity::login::LoginError;
pub use operations::operator::Operator;
