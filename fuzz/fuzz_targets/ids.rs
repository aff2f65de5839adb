//! Token and id text: decoding never panics and inverts encoding; the case-safe suffix of any
//! text is three characters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_core::tokens::ids::{case_safe_suffix, decode_token, encode_token};

fuzz_target!(|data: &[u8]| {
    assert_eq!(decode_token(&encode_token(data)).as_deref(), Some(data));
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(bytes) = decode_token(text) {
            assert_eq!(encode_token(&bytes), text, "one encoding per byte string");
        }
        if text.len() == 15 && text.is_ascii() {
            assert_eq!(case_safe_suffix(text).len(), 3);
        }
    }
});
