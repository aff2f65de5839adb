//! The token endpoint's HTTP Basic client credentials: any header value is refused or yields a
//! non-empty client id, without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_server::fuzzing::parse_basic;

fuzz_target!(|value: &str| {
    if let Some((id, _secret)) = parse_basic(value) {
        assert!(!id.is_empty());
    }
});
