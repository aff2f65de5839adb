//! In-process HTTP tests of every endpoint (one test binary for the server crate).

#![allow(clippy::unwrap_used)]

mod authorize;
mod console;
mod contract;
mod hardening;
mod identity;
mod lifecycle;
mod outage;
mod properties;
mod request_span;
mod resource;
mod support;
mod throttle;
mod token;
