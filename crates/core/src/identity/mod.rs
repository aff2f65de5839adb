//! Who is asking: users logging in (password, session, consent) and their connected apps,
//! clients authenticating, the throttle that slows guessers, the address ranges a client's
//! refreshes may come from, the browser origins allowed to call (CORS), and the guard that keeps
//! revocations and rarely changing records in memory.

pub mod claims;
pub(crate) mod client_auth;
pub mod connected_apps;
pub mod cors_origin;
pub(crate) mod guard;
pub mod ip_allowlist;
pub mod login;
pub(crate) mod password;
pub mod throttle;
pub mod username;
