//! The headless-Chromium tests' places: playwright-core's folder and the screenshots'.

use std::path::{Path, PathBuf};

pub use tessera_testkit::browser::{chromium_or_skip, succeed};

/// `target/screenshots/`, or `TESSERA_SCREENSHOTS_DIR`; created.
pub fn screenshots_dir() -> PathBuf {
    tessera_testkit::browser::screenshots_dir(Path::new(env!("CARGO_TARGET_TMPDIR")))
}

/// `crates/cli/tests/browser`, with playwright-core installed from the npm registry.
pub fn scripts() -> PathBuf {
    tessera_testkit::browser::install_scripts(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser"),
    )
}
