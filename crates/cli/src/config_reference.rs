//! docs/configuration.md is the configuration reference; these tests keep it true to the code.
//!
//! The options are read from `tessera serve`'s clap command, not from the structs behind it,
//! so that the check follows whatever shape the argument structs take: an option added without
//! its documentation fails, and so does a documented option that no longer exists.

use clap::CommandFactory;

const REFERENCE: &str = include_str!("../../../docs/configuration.md");
const EXAMPLE_CONFIG: &str = include_str!("../../../tessera.example.toml");

/// The options of `tessera serve` a user can give: no help or version, no positional
/// argument, and no hidden option (hidden ones are internal, e.g. the benchmark's floor).
fn serve_options() -> Vec<clap::Arg> {
    let cli = crate::Cli::command();
    let serve = cli
        .find_subcommand("serve")
        .expect("tessera has a serve command");
    serve
        .get_arguments()
        .filter(|arg| !arg.is_positional() && !arg.is_hide_set())
        .filter(|arg| !matches!(arg.get_id().as_str(), "help" | "version"))
        .cloned()
        .collect()
}

/// The `--flags` named in the first column of the reference's tables.
fn flags_in_reference_tables() -> Vec<String> {
    REFERENCE
        .lines()
        .filter(|line| line.starts_with('|'))
        .filter_map(|row| row.split('|').nth(1))
        .flat_map(|first_cell| {
            first_cell
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .filter(|word| {
                    word.strip_prefix("--")
                        .is_some_and(|name| name.starts_with(|c: char| c.is_ascii_lowercase()))
                })
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Whether `text` names `word` as a whole word (so `--login-failures-per-user` is not found
/// inside `--login-failures-per-user-and-address`).
fn mentions(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(start, _)| {
        let continues_name = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        let before = text[..start].chars().next_back();
        let after = text[start + word.len()..].chars().next();
        !before.is_some_and(continues_name) && !after.is_some_and(continues_name)
    })
}

#[test]
fn every_serve_option_is_in_the_configuration_reference_with_its_environment_variable() {
    let options = serve_options();
    assert!(!options.is_empty(), "serve has options");
    for arg in options {
        let long = arg.get_long().expect("every serve option has a long flag");
        let flag = format!("--{long}");
        assert!(
            mentions(REFERENCE, &flag),
            "docs/configuration.md does not mention {flag}"
        );
        if let Some(env) = arg.get_env() {
            let env = env.to_string_lossy();
            assert!(
                mentions(REFERENCE, &env),
                "docs/configuration.md does not mention {env}, the variable of {flag}"
            );
        }
    }
}

/// The keys of tessera.example.toml: those set, and those left commented out (`# key = …`).
fn example_keys() -> Vec<String> {
    let example: toml::Table = EXAMPLE_CONFIG
        .parse()
        .expect("tessera.example.toml is valid TOML");
    let commented_keys = EXAMPLE_CONFIG
        .lines()
        .filter_map(|line| line.strip_prefix('#'))
        .filter_map(|line| line.trim_start().split_once('='))
        .map(|(key, _)| key.trim())
        .filter(|key| !key.is_empty())
        .filter(|key| {
            key.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
        })
        .map(str::to_owned);
    let keys: Vec<String> = example.keys().cloned().chain(commented_keys).collect();
    assert!(!keys.is_empty(), "tessera.example.toml has keys");
    keys
}

#[test]
fn every_key_of_the_example_config_file_is_in_the_configuration_reference() {
    for key in example_keys() {
        assert!(
            mentions(REFERENCE, &format!("`{key}`")),
            "docs/configuration.md does not mention the config file key `{key}`"
        );
    }
}

/// The example is what people copy: a key there that the server does not know (left commented
/// out, nothing else would notice) is an error at the start of the server it was copied to.
#[test]
fn every_key_of_the_example_config_file_is_one_the_server_knows() {
    let known = crate::config::known_keys();
    let keys = example_keys();
    assert!(
        keys.iter().any(|key| key == "issuer"),
        "commented keys are read: {keys:?}"
    );
    for key in keys {
        assert!(
            known.contains(&key),
            "tessera.example.toml has `{key}`, which is not a configuration key"
        );
    }
}

#[test]
fn every_flag_in_the_configuration_reference_is_a_serve_option() {
    let options: Vec<String> = serve_options()
        .iter()
        .filter_map(|arg| arg.get_long().map(|long| format!("--{long}")))
        .collect();
    let documented = flags_in_reference_tables();
    assert!(!documented.is_empty(), "the reference has a table of flags");
    for flag in documented {
        assert!(
            options.contains(&flag),
            "docs/configuration.md names {flag}, which tessera serve does not take"
        );
    }
}
