//! Where the file key comes from: the OS keyring, a key file, or a passphrase.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use tessera_proto::{ExposeSecret, Password};
use zeroize::Zeroizing;

use super::sealed::{self, KdfParams, KeyKind, SecretKey, KEY_LEN};
use crate::error::StoreError;

/// How the key that encrypts the credential file is obtained.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// The OS keyring when one answers, else the key file. Decided once, when the store is
    /// opened (a file already written keeps the kind of key it was written with), and reported
    /// by [`super::TokenStore::protection`] and its note.
    Auto {
        key_file: PathBuf,
        keyring_service: String,
        keyring_user: String,
    },
    /// The OS keyring only: an error where there is none.
    Keyring { service: String, user: String },
    /// A random 32-byte key in this file (created 0600 on first use), which must not be in
    /// the data file's directory.
    KeyFile(PathBuf),
    /// A key derived from this passphrase with Argon2id; the salt is in the file's header.
    Passphrase(Password),
}

/// A key source resolved to one mode.
#[derive(Debug, Clone)]
pub(super) enum KeyMode {
    Keyring { service: String, user: String },
    KeyFile(PathBuf),
    Passphrase(Password),
}

impl KeyMode {
    pub fn kind(&self) -> KeyKind {
        match self {
            Self::Keyring { .. } => KeyKind::Keyring,
            Self::KeyFile(_) => KeyKind::KeyFile,
            Self::Passphrase(_) => KeyKind::Passphrase,
        }
    }
}

/// Argon2id over the passphrase with the header's parameters.
pub(super) fn derive_key(passphrase: &Password, kdf: &KdfParams) -> Result<SecretKey, StoreError> {
    let params = argon2::Params::new(kdf.m_cost_kib, kdf.t_cost, kdf.p_cost, Some(KEY_LEN))
        .map_err(|e| StoreError::Config(format!("bad Argon2 parameters in the header: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    argon
        .hash_password_into(
            passphrase.expose_secret().as_bytes(),
            &kdf.salt,
            key.as_mut(),
        )
        .map_err(|e| StoreError::Config(format!("cannot derive the key: {e}")))?;
    Ok(key)
}

#[cfg(unix)]
fn private_file_options() -> std::fs::OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.mode(0o600);
    options
}

#[cfg(not(unix))]
fn private_file_options() -> std::fs::OpenOptions {
    std::fs::OpenOptions::new()
}

pub(super) fn create_private_file(path: &Path) -> Result<std::fs::File, StoreError> {
    private_file_options()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| StoreError::io(path, e))
}

pub(super) fn open_lock_file(path: &Path) -> Result<std::fs::File, StoreError> {
    private_file_options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| StoreError::io(path, e))
}

/// Creates `dir` (and parents) readable by this user only, where it does not exist yet.
pub(super) fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| StoreError::io(dir, e))
}

/// Makes a rename or creation in `dir` durable (POSIX: the directory entry is data too).
pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| StoreError::io(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// The key in `path`; `None` when the file does not exist. A key file others can read is
/// refused, like ssh refuses such private keys.
pub(super) fn read_key_file(path: &Path) -> Result<Option<SecretKey>, StoreError> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io(path, e)),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file
            .metadata()
            .map_err(|e| StoreError::io(path, e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(StoreError::InsecureKeyFile {
                path: path.to_owned(),
                mode: mode & 0o777,
            });
        }
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(KEY_LEN));
    file.read_to_end(&mut bytes)
        .map_err(|e| StoreError::io(path, e))?;
    if bytes.len() != KEY_LEN {
        return Err(StoreError::KeyUnavailable(format!(
            "key file {} does not hold a {KEY_LEN}-byte key",
            path.display()
        )));
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    key.copy_from_slice(&bytes);
    Ok(Some(key))
}

/// The key in `path`, created (0600, durably) when there is none. Two processes creating it at
/// once agree on one: each writes a private temp file and links it into place, which fails for
/// the second, who then reads the first's.
pub(super) fn key_file_get_or_create(path: &Path) -> Result<SecretKey, StoreError> {
    if let Some(key) = read_key_file(path)? {
        return Ok(key);
    }
    let dir = path.parent().unwrap_or(Path::new(""));
    create_private_dir(dir)?;
    let key = sealed::random_key();
    let temp = temp_path(path);
    let written = (|| {
        let mut file = create_private_file(&temp)?;
        file.write_all(key.as_ref())
            .and_then(|()| file.sync_all())
            .map_err(|e| StoreError::io(&temp, e))?;
        match std::fs::hard_link(&temp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(StoreError::io(path, e)),
        }
    })();
    let _ = std::fs::remove_file(&temp);
    if written? {
        sync_dir(dir)?;
        Ok(key)
    } else {
        read_key_file(path)?.ok_or_else(|| {
            StoreError::KeyUnavailable(format!("key file {} vanished", path.display()))
        })
    }
}

/// A unique sibling of `path` for writing before a rename or link.
pub(super) fn temp_path(path: &Path) -> PathBuf {
    let mut suffix = [0u8; 8];
    sealed::fill_random(&mut suffix);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        hex::encode(suffix)
    ))
}

#[cfg(feature = "os-keyring")]
pub(super) mod os_keyring {
    //! The file key in the OS keyring, through the `keyring` crate (Keychain on macOS,
    //! Credential Manager on Windows, the Secret Service over D-Bus elsewhere).

    use super::*;

    fn entry(service: &str, user: &str) -> Result<keyring::Entry, String> {
        if let Err(e) = keyring::Entry::store_status() {
            return Err(format!("no OS keyring: {e}"));
        }
        keyring::Entry::new(service, user).map_err(|e| format!("OS keyring: {e}"))
    }

    fn to_key(bytes: Vec<u8>) -> Result<SecretKey, String> {
        let bytes = Zeroizing::new(bytes);
        let decoded = Zeroizing::new(
            hex::decode(bytes.as_slice())
                .map_err(|_| "the keyring entry is not a Tessera key".to_owned())?,
        );
        if decoded.len() != KEY_LEN {
            return Err("the keyring entry is not a Tessera key".to_owned());
        }
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(&decoded);
        Ok(key)
    }

    /// The key stored under (service, user), `None` when there is no entry.
    pub fn get(service: &str, user: &str) -> Result<Option<SecretKey>, String> {
        match entry(service, user)?.get_secret() {
            Ok(bytes) => to_key(bytes).map(Some),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(format!("OS keyring: {e}")),
        }
    }

    /// The key under (service, user), created when there is none; read back after writing, so
    /// a keyring that accepts writes but loses them is caught now, not after the data is
    /// encrypted with a key nobody can find again.
    pub fn get_or_create(service: &str, user: &str) -> Result<SecretKey, String> {
        if let Some(key) = get(service, user)? {
            return Ok(key);
        }
        let key = sealed::random_key();
        let text = Zeroizing::new(hex::encode(key.as_ref()));
        entry(service, user)?
            .set_secret(text.as_bytes())
            .map_err(|e| format!("OS keyring: {e}"))?;
        match get(service, user)? {
            Some(stored) if stored.as_ref() == key.as_ref() => Ok(key),
            _ => Err("the OS keyring did not keep the key".to_owned()),
        }
    }
}

#[cfg(not(feature = "os-keyring"))]
pub(super) mod os_keyring {
    use super::*;

    const ABSENT: &str = "built without OS keyring support (feature os-keyring)";

    pub fn get(_service: &str, _user: &str) -> Result<Option<SecretKey>, String> {
        Err(ABSENT.to_owned())
    }

    pub fn get_or_create(_service: &str, _user: &str) -> Result<SecretKey, String> {
        Err(ABSENT.to_owned())
    }
}
