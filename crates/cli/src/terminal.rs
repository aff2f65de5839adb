//! Secrets typed by a person or piped in by a script: `--password-stdin`, `--client-secret-stdin`.

use std::io::IsTerminal;

use anyhow::{bail, Context};

/// A secret from standard input. At a terminal: a prompt, no echo, one line ended by Enter (a
/// person expects Enter to finish, not Ctrl-D). From a pipe or a file: everything up to its end,
/// so that a script's input is read as it always was. Without the trailing line end either way;
/// empty is refused, naming the `flag` that asked for it.
pub(crate) fn read_secret(prompt: &str, flag: &str) -> anyhow::Result<String> {
    let text = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(prompt).context("reading from the terminal")?
    } else {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .context("reading standard input")?;
        text
    };
    let secret = text.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        bail!("{flag} was given, but what was read is empty");
    }
    Ok(secret.to_owned())
}
