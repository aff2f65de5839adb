//! The `tessera` binary's integration tests, linked as one test binary (one link instead of
//! ten): one module per concern, each driving real `tessera` processes.
//!
//! The tests of one binary run in parallel. The load, crash, clock and several-node tests used
//! to get the machine to themselves by living in binaries of their own, which cargo runs one
//! after another; here each test enters a lane first (`common::lane`), which keeps that: the
//! tests of a heavy module run only among themselves, the light ones together.

// Test code: a failed expectation is a panic, and a short answer indexed is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::indexing_slicing,
    clippy::string_slice
)]

mod common;

mod apps;
mod bench;
mod cli;
mod client;
mod console;
mod cors;
mod demo;
mod durability;
mod hardening;
mod interop;
mod learn;
mod nodes;
mod openid_rp;
mod operations;
mod pages;
mod probe;
mod rotation_model;
