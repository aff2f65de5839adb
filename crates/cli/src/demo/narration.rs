//! How the demo speaks: each request a line of a sequence diagram between the flow's actors,
//! notes under it, a heading per act. `--act` runs the acts an act builds on silently, so the
//! narration can be muted for the whole process (the demo is one story told once per run).

use std::sync::atomic::{AtomicBool, Ordering};

pub(super) const CLIENT: &str = "Client";
pub(super) const AS: &str = "Authorization Server";
pub(super) const RS: &str = "Resource Server";
pub(super) const USER: &str = "User";
pub(super) const THIEF: &str = "Attacker";
pub(super) const ADMIN: &str = "Administrator";

static MUTED: AtomicBool = AtomicBool::new(false);

/// Mutes (or unmutes) everything the demo prints: the acts an `--act` builds on run unseen.
pub(super) fn mute(muted: bool) {
    MUTED.store(muted, Ordering::Relaxed);
}

#[allow(clippy::print_stdout)]
fn say(line: &str) {
    if !MUTED.load(Ordering::Relaxed) {
        println!("{line}");
    }
}

pub(super) fn arrow(from: &str, to: &str, what: &str) {
    say(&format!("  {from:>20} ──▶ {to:<20}  {what}"));
}

pub(super) fn note(text: &str) {
    say(&format!("  {:>20}     · {text}", ""));
}

pub(super) fn heading(text: &str) {
    say(&format!("\n{text}"));
}

/// A paragraph of plain text, indented under the act's heading.
pub(super) fn explain(text: &str) {
    say(&format!("  {text}"));
}

/// Two token responses (or any two lists of `key value` rows) in two columns under their
/// titles, so that what one has and the other lacks stands out.
pub(super) fn side_by_side(
    left_title: &str,
    left: &[(String, String)],
    right_title: &str,
    right: &[(String, String)],
) {
    let rows = |items: &[(String, String)]| -> Vec<String> {
        items
            .iter()
            .map(|(key, value)| format!("{key:<14} {value}"))
            .collect()
    };
    let (left, right) = (rows(left), rows(right));
    let width = left
        .iter()
        .map(|row| row.chars().count())
        .chain([left_title.chars().count()])
        .max()
        .unwrap_or(0)
        + 4;
    say(&format!("    {left_title:<width$}{right_title}"));
    for index in 0..left.len().max(right.len()) {
        let l = left.get(index).map_or("", String::as_str);
        let r = right.get(index).map_or("", String::as_str);
        say(format!("    {l:<width$}{r}").trim_end());
    }
}

/// The last six characters of a token, so that a reader can tell tokens apart without the
/// narration printing a usable one.
pub(super) fn short(token: &str) -> String {
    let tail: String = token
        .chars()
        .rev()
        .take(6)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("…{tail}")
}

/// `--step`: waits for Enter before the next act. End of input (a pipe that closed, no
/// terminal) stops the pausing instead of failing, so the demo still ends.
pub(super) struct Pause {
    enabled: AtomicBool,
}

impl Pause {
    pub(super) fn new(enabled: bool) -> Self {
        Self {
            enabled: AtomicBool::new(enabled),
        }
    }

    pub(super) async fn wait(&self, prompt: &str) -> anyhow::Result<()> {
        if !self.enabled.load(Ordering::Relaxed) || MUTED.load(Ordering::Relaxed) {
            return Ok(());
        }
        say(&format!("\n  ⏎  {prompt}"));
        let read = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)
        })
        .await??;
        if read == 0 {
            self.enabled.store(false, Ordering::Relaxed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keeps_only_the_last_six_characters() {
        assert_eq!(short("00Dxx!abcdefghijkl"), "…ghijkl");
        assert_eq!(short("abc"), "…abc");
    }
}
