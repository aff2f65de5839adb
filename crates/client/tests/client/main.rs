//! The token manager against a real Tessera server started in the test (and, for failure
//! injection, small fake token endpoints).

#![allow(clippy::unwrap_used)]

mod concurrency;
mod endpoints;
mod lifecycle;
mod storage;
mod support;
