//! What operators use and watch: administration of clients, users and grants, the admin
//! console's domain side, housekeeping of what can no longer be used, and the metrics.

pub mod admin;
pub(crate) mod audit_repeats;
pub mod console;
pub mod housekeeping;
pub mod metrics;
pub mod operator;
pub mod playground;
pub mod revocations;
pub mod rotation_audit;
pub mod signing_keys;
pub mod usage;
pub mod usage_ledger;
