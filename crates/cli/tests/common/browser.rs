//! What the headless-Chromium tests share: finding the browser (or skipping loudly without it),
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

/// `target/screenshots/`, or `TESSERA_SCREENSHOTS_DIR`; created.
pub fn screenshots_dir() -> PathBuf {
    let dir = std::env::var_os("TESSERA_SCREENSHOTS_DIR").map_or_else(
        // CARGO_TARGET_TMPDIR is `<target>/tmp`, wherever the target directory is.
        || Path::new(env!("CARGO_TARGET_TMPDIR")).with_file_name("screenshots"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `crates/cli/tests/browser`, with playwright-core installed from the npm registry.
pub fn scripts() -> PathBuf {
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let mut install = Command::new("npm");
    install
        .args(["ci", "--no-audit", "--no-fund", "--prefer-offline"])
        .args(["--loglevel=error"])
        .current_dir(&scripts);
    succeed(install, "npm ci (playwright-core)");
    scripts
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
