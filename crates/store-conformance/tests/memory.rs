//! The conformance suite on the in-memory store that the domain's unit tests use, so that
//! what those tests show holds for the real backends too.
// Test code: a failed expectation is a panic, and a short answer indexed is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::indexing_slicing,
    clippy::string_slice
)]

use std::sync::Arc;

use tessera_core::store::memory::MemoryStore;
use tessera_core::store::prelude::*;

async fn fresh() -> (Arc<dyn Store>, ()) {
    (Arc::new(MemoryStore::new()), ())
}

tessera_store_conformance::store_conformance_tests!(fresh);
