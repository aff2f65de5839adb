//! The token manager against a real Tessera server started in the test (and, for failure
//! injection, small fake token endpoints).

// Test code: a failed expectation is a panic, and a short answer indexed is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::indexing_slicing,
    clippy::string_slice
)]

mod concurrency;
mod dpop;
mod endpoints;
mod id_token;
mod lifecycle;
mod openid;
mod storage;
mod support;
