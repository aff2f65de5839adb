//! libfaketime, for tests that move a server process's clock.

use std::path::Path;

/// libfaketime from Debian's `faketime` package.
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// Whether libfaketime is here; if not, says the test is skipped — or fails it, where
/// `TESSERA_REQUIRE_FAKETIME` is set (CI).
pub fn libfaketime(test: &str) -> bool {
    if Path::new(LIBFAKETIME).exists() {
        return true;
    }
    assert!(
        std::env::var_os("TESSERA_REQUIRE_FAKETIME").is_none(),
        "{LIBFAKETIME} is missing (Debian's faketime package) and TESSERA_REQUIRE_FAKETIME is set"
    );
    eprintln!("SKIPPED: the {test} needs {LIBFAKETIME} (apt-get install faketime)");
    false
}
