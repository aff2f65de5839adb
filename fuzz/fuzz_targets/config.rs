//! The config file: any text is read as TOML into the options and validated into settings, or
//! refused with an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::{Options, Settings};

fuzz_target!(|text: &str| {
    if let Ok(options) = toml::from_str::<Options>(text) {
        let _ = Settings::from_options(options);
    }
});
