//! Typed, strict configuration: flag > environment variable > config file > default
//! (DESIGN.md house rule 10). `tessera.example.toml` documents every key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

/// The config file: every key optional, unknown keys rejected.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub issuer: Option<String>,
    pub database: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub expires_in: Option<bool>,
    pub log_format: Option<String>,
    pub max_grants_per_user_client: Option<u32>,
    pub housekeeping_interval: Option<String>,
    pub audit_retention: Option<String>,
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("in config file {}", path.display()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Everything resolved and validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub issuer: String,
    pub database: String,
    pub data_dir: PathBuf,
    pub expires_in: bool,
    pub log_format: LogFormat,
    /// Live refresh-token grants per user per client; `None`: unlimited (0 in the config).
    pub max_grants_per_user_client: Option<u32>,
    pub housekeeping_interval_secs: u64,
    pub audit_retention_secs: u64,
}

#[derive(Debug)]
pub struct Overrides<'a> {
    pub listen: Option<&'a str>,
    pub issuer: Option<&'a str>,
    pub database: Option<&'a str>,
    pub data_dir: Option<&'a Path>,
    pub expires_in: Option<bool>,
    pub log_format: Option<&'a str>,
    pub max_grants_per_user_client: Option<u32>,
    pub housekeeping_interval: Option<&'a str>,
    pub audit_retention: Option<&'a str>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// `$XDG_DATA_HOME/tessera`, else `~/.local/share/tessera`, else `./.tessera`.
pub fn default_data_dir() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("tessera");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".local/share/tessera");
    }
    PathBuf::from(".tessera")
}

impl Settings {
    pub fn resolve(file: FileConfig, flags: Overrides<'_>) -> anyhow::Result<Self> {
        let listen_text = flags
            .listen
            .map(str::to_owned)
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen: SocketAddr = listen_text
            .parse()
            .with_context(|| format!("listen address {listen_text:?} is not host:port"))?;
        let issuer = match flags.issuer.map(str::to_owned).or(file.issuer) {
            Some(issuer) => validate_issuer(&issuer)?,
            None => format!("http://{listen}"),
        };
        let data_dir = flags
            .data_dir
            .map(Path::to_path_buf)
            .or(file.data_dir)
            .unwrap_or_else(default_data_dir);
        let database = flags
            .database
            .map(str::to_owned)
            .or(file.database)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("tessera.db").display()));
        let log_format = match flags
            .log_format
            .map(str::to_owned)
            .or(file.log_format)
            .as_deref()
        {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => bail!("log format must be text or json, not {other:?}"),
        };
        let max_grants = flags
            .max_grants_per_user_client
            .or(file.max_grants_per_user_client)
            .unwrap_or(tessera_core::authority::DEFAULT_MAX_LIVE_GRANTS);
        let interval_text = flags
            .housekeeping_interval
            .map(str::to_owned)
            .or(file.housekeeping_interval)
            .unwrap_or_else(|| "60s".into());
        let housekeeping_interval_secs = tessera_core::time::parse_duration_secs(&interval_text)
            .filter(|s| *s > 0)
            .with_context(|| format!("housekeeping interval {interval_text:?} is not a positive duration like 60s or 5m"))?;
        let retention_text = flags
            .audit_retention
            .map(str::to_owned)
            .or(file.audit_retention)
            .unwrap_or_else(|| "30d".into());
        let audit_retention_secs = tessera_core::time::parse_duration_secs(&retention_text)
            .filter(|s| *s > 0)
            .with_context(|| {
                format!("audit retention {retention_text:?} is not a positive duration like 30d")
            })?;
        Ok(Self {
            audit_retention_secs,
            max_grants_per_user_client: (max_grants > 0).then_some(max_grants),
            housekeeping_interval_secs,
            listen,
            issuer,
            database,
            data_dir,
            expires_in: flags.expires_in.or(file.expires_in).unwrap_or(true),
            log_format,
        })
    }
}

/// The issuer is an absolute http(s) URL without query, fragment or trailing slash (RFC 8414 §2).
fn validate_issuer(text: &str) -> anyhow::Result<String> {
    let trimmed = text.trim_end_matches('/');
    let url = url::Url::parse(trimmed)
        .with_context(|| format!("issuer {text:?} is not an absolute URL"))?;
    if !matches!(url.scheme(), "http" | "https")
        || url.query().is_some()
        || url.fragment().is_some()
    {
        bail!("issuer must be an http(s) URL without query or fragment: {text:?}");
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> Overrides<'static> {
        Overrides {
            listen: None,
            issuer: None,
            database: None,
            data_dir: None,
            expires_in: None,
            log_format: None,
            max_grants_per_user_client: None,
            housekeeping_interval: None,
            audit_retention: None,
        }
    }

    #[test]
    fn approval_limit_zero_means_unlimited_and_intervals_must_be_positive() {
        let s = Settings::resolve(
            FileConfig {
                max_grants_per_user_client: Some(0),
                ..Default::default()
            },
            none(),
        )
        .unwrap();
        assert_eq!(s.max_grants_per_user_client, None);
        let d = Settings::resolve(FileConfig::default(), none()).unwrap();
        assert_eq!(d.max_grants_per_user_client, Some(5));
        assert_eq!(d.housekeeping_interval_secs, 60);
        assert!(Settings::resolve(
            FileConfig::default(),
            Overrides {
                housekeeping_interval: Some("0s"),
                ..none()
            }
        )
        .is_err());
    }

    #[test]
    fn defaults_derive_issuer_and_database() {
        let s = Settings::resolve(
            FileConfig {
                data_dir: Some("/d".into()),
                ..Default::default()
            },
            none(),
        )
        .unwrap();
        assert_eq!(s.issuer, "http://127.0.0.1:8080");
        assert_eq!(s.database, "sqlite:///d/tessera.db");
        assert!(s.expires_in);
    }

    #[test]
    fn flags_beat_the_file() {
        let file: FileConfig =
            toml::from_str("listen = \"127.0.0.1:1\"\nexpires_in = false").unwrap();
        let s = Settings::resolve(
            file,
            Overrides {
                listen: Some("127.0.0.1:2"),
                issuer: Some("https://login.example.com/"),
                ..none()
            },
        )
        .unwrap();
        assert_eq!(s.listen.port(), 2);
        assert_eq!(s.issuer, "https://login.example.com");
        assert!(!s.expires_in);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected() {
        assert!(toml::from_str::<FileConfig>("lisen = \"x\"").is_err());
        assert!(Settings::resolve(
            FileConfig::default(),
            Overrides {
                listen: Some("nope"),
                ..none()
            }
        )
        .is_err());
        assert!(Settings::resolve(
            FileConfig::default(),
            Overrides {
                issuer: Some("ftp://x"),
                ..none()
            }
        )
        .is_err());
        assert!(Settings::resolve(
            FileConfig::default(),
            Overrides {
                log_format: Some("xml"),
                ..none()
            }
        )
        .is_err());
    }

    #[test]
    fn the_example_file_parses() {
        let text = include_str!("../../../tessera.example.toml");
        let file: FileConfig = toml::from_str(text).unwrap();
        assert!(file.listen.is_some());
    }
}
