//! The strict `application/x-www-form-urlencoded` parser every OAuth endpoint reads its
//! parameters with: no panic, and what it accepts survives re-encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_proto::{decode_component, Params};

fuzz_target!(|text: &str| {
    let _ = decode_component(text);
    let Ok(params) = Params::parse(text) else {
        return;
    };
    let _ = params.repeated();
    // Re-encoded the standard way, the same pairs come back.
    let encoded: String = params
        .pairs()
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let again = Params::parse(&encoded).expect("re-encoded pairs parse");
    assert_eq!(again.pairs(), params.pairs());
});

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
