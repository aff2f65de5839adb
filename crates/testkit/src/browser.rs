//! Headless Chromium for the page tests: finding the browser (or skipping loudly without it),
//! installing playwright-core, where screenshots go, and running a script to success.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian's `chromium`, or `TESSERA_CHROMIUM`; `None` (having said so loudly) when it is
/// missing and `TESSERA_TEST_BROWSER` is not set, which makes a missing browser a failure.
pub fn chromium_or_skip(test: &str) -> Option<PathBuf> {
    let chromium = std::env::var_os("TESSERA_CHROMIUM")
        .map_or_else(|| "/usr/bin/chromium".into(), PathBuf::from);
    if chromium.exists() {
        return Some(chromium);
    }
    assert!(
        std::env::var_os("TESSERA_TEST_BROWSER").is_none(),
        "{} is missing and TESSERA_TEST_BROWSER is set: install Debian's chromium package \
         (apt-get install chromium) or point TESSERA_CHROMIUM at a Chromium",
        chromium.display()
    );
    eprintln!(
        "\n*** SKIPPED: {test} in Chromium: {} is missing (apt-get install chromium, or \
         TESSERA_CHROMIUM=/path/to/chromium). Set TESSERA_TEST_BROWSER=1 to make this a \
         failure. ***\n",
        chromium.display()
    );
    None
}

/// `screenshots/` beside `target_tmpdir` (a test's `CARGO_TARGET_TMPDIR`, `<target>/tmp`, so
/// `<target>/screenshots`), or `TESSERA_SCREENSHOTS_DIR`; created.
pub fn screenshots_dir(target_tmpdir: &Path) -> PathBuf {
    let dir = std::env::var_os("TESSERA_SCREENSHOTS_DIR").map_or_else(
        || target_tmpdir.with_file_name("screenshots"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `scripts`, a folder with a `package-lock.json` naming playwright-core, with its packages
/// installed from the npm registry.
pub fn install_scripts(scripts: &Path) -> PathBuf {
    let mut install = Command::new("npm");
    install
        .args(["ci", "--no-audit", "--no-fund", "--prefer-offline"])
        .args(["--loglevel=error"])
        .current_dir(scripts);
    succeed(install, "npm ci (playwright-core)");
    scripts.to_owned()
}

/// Runs `command` to success, or fails the test with what it printed.
pub fn succeed(mut command: Command, what: &str) -> Vec<u8> {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start it: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}
