//! [`FileTokenStore`]: one encrypted file per credential, written atomically, with a sidecar
//! lock file shared by every process.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use tessera_proto::RefreshToken;
use zeroize::Zeroizing;

use super::keys::{self, os_keyring, KeyMode, KeySource};
use super::sealed::{self, FormatError, Header, KdfParams, KeyKind, SecretKey};
use super::{Protection, StoreLock, TokenStore};
use crate::credential::Credential;
use crate::error::StoreError;

/// A credential in one file, encrypted with XChaCha20-Poly1305 (see [`KeySource`] for the key),
/// replaced atomically (temp file, fsync, rename, directory fsync), mode 0600, with a
/// `<file>.lock` beside it for the cross-process lock.
///
/// The file's name without its extension is the profile the credential belongs to, and is
/// authenticated with it: one profile's file copied or renamed over another's does not open
/// (files written before this binding, format version 1, are read and bound at their next save).
pub struct FileTokenStore {
    data_path: PathBuf,
    /// The data file's name without its extension, in the associated data of the cipher.
    profile: String,
    lock_path: PathBuf,
    mode: KeyMode,
    note: Option<String>,
    /// The key once read or derived: the keyring is slow and Argon2 deliberately so.
    key: Mutex<Option<CachedKey>>,
}

struct CachedKey {
    kdf: Option<KdfParams>,
    key: SecretKey,
}

impl std::fmt::Debug for FileTokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileTokenStore")
            .field("data_path", &self.data_path)
            .field("protection", &self.protection())
            .field("note", &self.note)
            .finish_non_exhaustive()
    }
}

fn absolute(path: &Path) -> Result<PathBuf, StoreError> {
    std::path::absolute(path).map_err(|e| StoreError::io(path, e))
}

/// A key file beside the data would be copied, backed up and leaked with it.
fn check_apart(data_path: &Path, key_file: &Path) -> Result<(), StoreError> {
    let data_dir = absolute(data_path)?.parent().map(Path::to_path_buf);
    let key_dir = absolute(key_file)?.parent().map(Path::to_path_buf);
    if data_dir == key_dir {
        return Err(StoreError::Config(format!(
            "the key file {} must not be in the directory of the data file {}",
            key_file.display(),
            data_path.display()
        )));
    }
    Ok(())
}

/// The kind of key an existing data file was written with, if it is readable as ours.
fn existing_kind(data_path: &Path) -> Option<KeyKind> {
    let bytes = std::fs::read(data_path).ok()?;
    sealed::parse(&bytes).ok().map(|s| s.header.kind)
}

impl FileTokenStore {
    /// Opens (without creating anything yet, except an OS-keyring key for `Auto` when the
    /// keyring answers) the store whose data file is `data_path`.
    pub fn open(data_path: PathBuf, key: KeySource) -> Result<Self, StoreError> {
        let Some(name) = data_path.file_name() else {
            return Err(StoreError::Config(format!(
                "{} is not a file path",
                data_path.display()
            )));
        };
        let mut lock_name = name.to_owned();
        lock_name.push(".lock");
        let lock_path = data_path.with_file_name(lock_name);
        let profile = Path::new(name)
            .file_stem()
            .unwrap_or(name)
            .to_string_lossy()
            .into_owned();
        let mut cached = None;
        let mut note = None;
        let mode = match key {
            KeySource::KeyFile(path) => {
                check_apart(&data_path, &path)?;
                KeyMode::KeyFile(path)
            }
            KeySource::Passphrase(passphrase) => KeyMode::Passphrase(passphrase),
            KeySource::Keyring { service, user } => KeyMode::Keyring { service, user },
            KeySource::Auto {
                key_file,
                keyring_service,
                keyring_user,
            } => {
                check_apart(&data_path, &key_file)?;
                match existing_kind(&data_path) {
                    // A file already written keeps its kind of key: switching would orphan it.
                    Some(KeyKind::Keyring) => KeyMode::Keyring {
                        service: keyring_service,
                        user: keyring_user,
                    },
                    Some(KeyKind::KeyFile) => KeyMode::KeyFile(key_file),
                    Some(KeyKind::Passphrase) => {
                        return Err(StoreError::KeyUnavailable(format!(
                            "{} is protected by a passphrase: open it with one",
                            data_path.display()
                        )))
                    }
                    None if key_file.exists() => KeyMode::KeyFile(key_file),
                    None => match os_keyring::get_or_create(&keyring_service, &keyring_user) {
                        Ok(key) => {
                            cached = Some(CachedKey { kdf: None, key });
                            KeyMode::Keyring {
                                service: keyring_service,
                                user: keyring_user,
                            }
                        }
                        Err(reason) => {
                            // The keyring's own words ("Platform failure: zbus error: …") help
                            // whoever debugs it, not whoever reads `status`.
                            tracing::debug!(%reason, "no OS keyring");
                            note = Some(format!(
                                "the OS keyring is not available, so the key is kept in the file {} instead",
                                key_file.display()
                            ));
                            KeyMode::KeyFile(key_file)
                        }
                    },
                }
            }
        };
        Ok(Self {
            data_path,
            profile,
            lock_path,
            mode,
            note,
            key: Mutex::new(cached),
        })
    }

    pub fn data_path(&self) -> &Path {
        &self.data_path
    }

    pub fn lock_path(&self) -> &Path {
        &self.lock_path
    }

    fn cache(&self) -> MutexGuard<'_, Option<CachedKey>> {
        self.key.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The key to open a file with this header.
    fn read_key(&self, header: &Header) -> Result<SecretKey, StoreError> {
        let mut cache = self.cache();
        if let Some(c) = cache.as_ref().filter(|c| c.kdf == header.kdf) {
            return Ok(c.key.clone());
        }
        let key = match &self.mode {
            KeyMode::KeyFile(path) => keys::read_key_file(path)?.ok_or_else(|| {
                StoreError::KeyUnavailable(format!(
                    "the key file {} is missing, so {} cannot be decrypted: log in again",
                    path.display(),
                    self.data_path.display()
                ))
            })?,
            KeyMode::Keyring { service, user } => os_keyring::get(service, user)
                .map_err(|reason| {
                    StoreError::KeyUnavailable(format!(
                        "{} was encrypted with a key in the OS keyring, which cannot be reached \
                         ({reason}): use it where the keyring is available, or log in again",
                        self.data_path.display()
                    ))
                })?
                .ok_or_else(|| {
                    StoreError::KeyUnavailable(format!(
                        "the OS keyring has no key for {}: log in again",
                        self.data_path.display()
                    ))
                })?,
            KeyMode::Passphrase(passphrase) => {
                let kdf = header.kdf.as_ref().ok_or_else(|| StoreError::Corrupt {
                    path: self.data_path.clone(),
                    reason: "no key-derivation parameters".into(),
                })?;
                keys::derive_key(passphrase, kdf)?
            }
        };
        *cache = Some(CachedKey {
            kdf: header.kdf,
            key: key.clone(),
        });
        Ok(key)
    }

    /// The key (and header) to write with: the one in use, else a new one.
    fn write_key(&self) -> Result<(Header, SecretKey), StoreError> {
        let kind = self.mode.kind();
        let mut cache = self.cache();
        if let Some(c) = cache.as_ref() {
            return Ok((Header { kind, kdf: c.kdf }, c.key.clone()));
        }
        let (kdf, key) = match &self.mode {
            KeyMode::KeyFile(path) => (None, keys::key_file_get_or_create(path)?),
            KeyMode::Keyring { service, user } => (
                None,
                os_keyring::get_or_create(service, user).map_err(StoreError::KeyUnavailable)?,
            ),
            KeyMode::Passphrase(passphrase) => {
                let kdf = KdfParams::fresh();
                (Some(kdf), keys::derive_key(passphrase, &kdf)?)
            }
        };
        *cache = Some(CachedKey {
            kdf,
            key: key.clone(),
        });
        Ok((Header { kind, kdf }, key))
    }

    fn corrupt(&self, reason: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            path: self.data_path.clone(),
            reason: reason.into(),
        }
    }

    /// Replaces the data file with `bytes` so that a crash leaves the old or the new file,
    /// never a mix, and the new one is on disk when this returns.
    fn write_atomically(&self, bytes: &[u8]) -> Result<(), StoreError> {
        let dir = self.data_path.parent().unwrap_or(Path::new(""));
        keys::create_private_dir(dir)?;
        let temp = keys::temp_path(&self.data_path);
        let result = (|| {
            let mut file = keys::create_private_file(&temp)?;
            file.write_all(bytes)
                .and_then(|()| file.sync_all())
                .map_err(|e| StoreError::io(&temp, e))?;
            std::fs::rename(&temp, &self.data_path).map_err(|e| StoreError::io(&self.data_path, e))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result?;
        keys::sync_dir(dir)
    }
}

impl TokenStore for FileTokenStore {
    fn load(&self) -> Result<Option<Credential>, StoreError> {
        let bytes = match std::fs::read(&self.data_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io(&self.data_path, e)),
        };
        let sealed = sealed::parse(&bytes).map_err(|e| match e {
            FormatError::Version(version) => StoreError::UnsupportedVersion {
                path: self.data_path.clone(),
                version,
            },
            other => self.corrupt(other.to_string()),
        })?;
        if sealed.header.kind != self.mode.kind() {
            return Err(StoreError::KeyUnavailable(format!(
                "{} was encrypted with {}, but this store uses {}",
                self.data_path.display(),
                sealed.header.kind.describe(),
                self.mode.kind().describe()
            )));
        }
        let key = self.read_key(&sealed.header)?;
        let plain = sealed
            .open(&key, &self.profile)
            .ok_or_else(|| StoreError::Decrypt {
                path: self.data_path.clone(),
            })?;
        serde_json::from_slice(&plain)
            .map(Some)
            .map_err(|e| self.corrupt(format!("bad content: {e}")))
    }

    fn save(
        &self,
        expected_refresh_token: Option<&RefreshToken>,
        credential: &Credential,
    ) -> Result<(), StoreError> {
        let current = self.load()?;
        let stored = current.as_ref().and_then(|c| c.refresh_token.as_ref());
        if stored != expected_refresh_token {
            return Err(StoreError::Conflict);
        }
        let (header, key) = self.write_key()?;
        let plain = Zeroizing::new(
            serde_json::to_vec(credential).map_err(|e| self.corrupt(e.to_string()))?,
        );
        self.write_atomically(&sealed::seal(&header, &key, &plain, &self.profile))
    }

    fn delete(&self) -> Result<(), StoreError> {
        match std::fs::remove_file(&self.data_path) {
            Ok(()) => keys::sync_dir(self.data_path.parent().unwrap_or(Path::new(""))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(&self.data_path, e)),
        }
    }

    fn lock(&self) -> Result<StoreLock, StoreError> {
        keys::create_private_dir(self.lock_path.parent().unwrap_or(Path::new("")))?;
        let file = keys::open_lock_file(&self.lock_path)?;
        // An advisory lock on a file that is never replaced (the data file is, by rename).
        file.lock()
            .map_err(|e| StoreError::io(&self.lock_path, e))?;
        Ok(StoreLock::new(file))
    }

    fn protection(&self) -> Protection {
        match &self.mode {
            KeyMode::Keyring { .. } => Protection::Keyring,
            KeyMode::KeyFile(path) => Protection::KeyFile(path.clone()),
            KeyMode::Passphrase(_) => Protection::Passphrase,
        }
    }

    fn protection_note(&self) -> Option<String> {
        self.note.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_file_is_read_and_written_again_as_version_2_bound_to_its_profile() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("profiles/work.cred");
        let key_file = root.path().join("keys/client.key");
        let key = keys::key_file_get_or_create(&key_file).unwrap();
        let credential = Credential {
            endpoints: crate::credential::Endpoints::salesforce("https://login.example.test"),
            client_id: "c".into(),
            client_secret: None,
            access_token: tessera_proto::AccessToken::new("00D!old-access"),
            refresh_token: Some(RefreshToken::new("old-refresh")),
            instance_url: "https://na1.example.test".into(),
            identity_url: None,
            username: None,
            scope: "api refresh_token".into(),
            issued_at_ms: 1_800_000_000_000,
            expires_at_ms: None,
            clock_offset_ms: 0,
            in_flight: None,
            id_token: None,
            id_token_claims: None,
            dead: None,
            dpop_key: None,
            dpop_bound: false,
        };
        let plain = serde_json::to_vec(&credential).unwrap();
        let header = Header {
            kind: KeyKind::KeyFile,
            kdf: None,
        };
        keys::create_private_dir(data.parent().unwrap()).unwrap();
        let old = sealed::seal_version(sealed::VERSION_UNBOUND, &header, &key, &plain, "");
        std::fs::write(&data, old).unwrap();

        let store = FileTokenStore::open(data.clone(), KeySource::KeyFile(key_file)).unwrap();
        let loaded = store.load().unwrap().unwrap();
        assert_eq!(loaded.refresh_token, credential.refresh_token);
        store
            .save(credential.refresh_token.as_ref(), &loaded)
            .unwrap();
        let bytes = std::fs::read(&data).unwrap();
        assert_eq!(bytes.get(4), Some(&2), "rewritten in version 2");
        assert!(store.load().unwrap().is_some());
        let parsed = sealed::parse(&bytes).unwrap();
        assert!(parsed.open(&key, "work").is_some());
        assert!(parsed.open(&key, "personal").is_none());
    }
}
