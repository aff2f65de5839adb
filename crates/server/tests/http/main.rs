//! In-process HTTP tests of every endpoint (one test binary for the server crate).

mod authorize;
mod identity;
mod resource;
mod support;
mod token;
