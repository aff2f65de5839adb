//! What Tessera's test suites share, written once: a free port, the form, Basic, PKCE and page
//! helpers, a login through the authorization pages over HTTP, the headless-Chromium launcher,
//! libfaketime detection, throwaway PostgreSQL databases, a TCP proxy that cuts one process off
//! from a server, and lanes that keep heavy tests apart from the rest inside one test binary.
//!
//! A dev-dependency only (`publish = false`): it panics where a test should fail.

// Test code: a failed expectation is a panic, and a short answer indexed is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::indexing_slicing,
    clippy::string_slice
)]

pub mod browser;
pub mod faketime;
pub mod lane;
pub mod login;
pub mod pages;
pub mod ports;
pub mod postgres;
mod random;
pub mod tcp_proxy;

pub use faketime::{libfaketime, LIBFAKETIME};
pub use lane::{lane, Lane};
pub use login::authorize_in_browser;
pub use pages::{basic, code_in, form, hidden_value, pkce, url_param};
pub use ports::{free_port, wait_until_accepting};
pub use random::random_u64;
