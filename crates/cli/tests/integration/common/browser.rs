//! The headless-Chromium tests' places: playwright-core's folder and the screenshots'.

use std::path::{Path, PathBuf};

pub use tessera_testkit::browser::{chromium_or_skip, succeed};

/// `target/screenshots/`, or `TESSERA_SCREENSHOTS_DIR`; created.
pub fn screenshots_dir() -> PathBuf {
    tessera_testkit::browser::screenshots_dir(Path::new(env!("CARGO_TARGET_TMPDIR")))
}

/// `crates/cli/tests/browser`, with playwright-core installed from the npm registry once per
/// test process: `npm ci` empties `node_modules` before it fills it, so a second install while
/// another browser test runs its script would pull the package from under it.
pub fn scripts() -> PathBuf {
    static INSTALLED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            tessera_testkit::browser::install_scripts(
                &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser"),
            )
        })
        .clone()
}

/// The windows the pages are looked at in: (width, height, whether it is a phone): a desktop's,
/// and a phone's as narrow as they come.
pub const VIEWPORTS: [(u64, u64, bool); 2] = [(1000, 800, false), (375, 800, true)];

/// [`VIEWPORTS`] as the scripts take them (`VIEWPORTS`: `[{width, height, phone}]`).
pub fn viewports_json() -> String {
    let viewports: Vec<serde_json::Value> = VIEWPORTS
        .iter()
        .map(|(width, height, phone)| {
            serde_json::json!({ "width": width, "height": height, "phone": phone })
        })
        .collect();
    serde_json::Value::from(viewports).to_string()
}

/// Runs `script` (a file of `crates/cli/tests/browser`) in Node with the browser's executable
/// (`CHROMIUM`), the screenshots' folder (`SCREENSHOTS_DIR`) and `env`; returns the JSON it
/// prints.
pub fn run_script(chromium: &Path, script: &str, env: &[(&str, &str)]) -> serde_json::Value {
    let mut browse = std::process::Command::new("node");
    browse
        .arg(script)
        .current_dir(scripts())
        .env("CHROMIUM", chromium)
        .env("SCREENSHOTS_DIR", screenshots_dir())
        .envs(env.iter().copied());
    serde_json::from_slice(&succeed(browse, script)).unwrap()
}
