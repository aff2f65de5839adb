//! In-process HTTP tests of every endpoint (one test binary for the server crate).

// Test code: a failed expectation is a panic, and a short answer indexed is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::indexing_slicing,
    clippy::string_slice
)]

mod allowlist;
mod authorize;
mod caching;
mod console;
mod contract;
mod controls;
mod cors;
mod dpop;
mod golden;
mod hardening;
mod identity;
mod jwt_access;
mod learn;
mod lifecycle;
mod logout_everywhere;
mod openid;
mod outage;
mod properties;
mod refusals;
mod request_span;
mod resource;
mod rotation_audit;
mod sessions;
mod support;
mod throttle;
mod token;
mod usage;
