//! How an admin command prints its result: JSON for scripts (`--json`), else text for people.

use serde_json::Value;

/// `--json` or not, for the whole command.
#[derive(Debug)]
pub(crate) struct Output {
    json: bool,
}

impl Output {
    pub(crate) fn new(json: bool) -> Self {
        Self { json }
    }

    #[allow(clippy::print_stdout)]
    pub(crate) fn print(&self, value: &Value, text: Option<String>) {
        match (self.json, text) {
            (false, Some(text)) => println!("{text}"),
            _ => println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            ),
        }
    }
}
