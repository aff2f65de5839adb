//! Runs the jsforce interop suite (interop/jsforce) against this build of `tessera`: a real
//! Salesforce client library, installed from the npm registry by the suite's own script, logs in
//! through the Web Server flow and refreshes.
//!
//! It needs the npm registry. Set TESSERA_SKIP_INTEROP=1 to skip it where there is none; the
//! skip is printed, and CI never sets it.

use crate::common;

use std::path::Path;
use std::process::Command;

#[test]
fn jsforce_logs_in_refreshes_and_sees_salesforce_errors() {
    let _lane = common::lane(common::lanes::SHARED);
    if std::env::var_os("TESSERA_SKIP_INTEROP").is_some() {
        eprintln!("SKIPPED: jsforce interop (TESSERA_SKIP_INTEROP is set)");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let status = Command::new("bash")
        .arg(root.join("interop/jsforce/run.sh"))
        .arg(env!("CARGO_BIN_EXE_tessera"))
        .current_dir(&root)
        .status()
        .expect("running interop/jsforce/run.sh");
    assert!(
        status.success(),
        "the jsforce interop suite failed: {status}"
    );
}
