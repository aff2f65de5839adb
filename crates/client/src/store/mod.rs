//! Where the credential lives: the [`TokenStore`] trait and its encrypted-file implementation.

mod file;
mod keys;
mod sealed;

use std::path::PathBuf;

pub use file::FileTokenStore;
pub use keys::KeySource;
pub(crate) use sealed::fill_random;

use crate::credential::Credential;
use crate::error::StoreError;
use tessera_proto::RefreshToken;

/// Persistence of one credential.
///
/// The token manager calls [`TokenStore::lock`] before any read-modify-write and holds the lock
/// across the HTTP refresh; `save` is then a compare-and-swap on the stored refresh token. The
/// methods block (file IO, the keyring): async callers run them on `spawn_blocking`.
pub trait TokenStore: Send + Sync {
    /// The stored credential, if any.
    fn load(&self) -> Result<Option<Credential>, StoreError>;

    /// Stores `credential` durably if the stored refresh token is still `expected_refresh_token`
    /// (`None`: nothing stored, or a credential without one); otherwise [`StoreError::Conflict`].
    fn save(
        &self,
        expected_refresh_token: Option<&RefreshToken>,
        credential: &Credential,
    ) -> Result<(), StoreError>;

    /// Removes the stored credential (nothing stored is not an error).
    fn delete(&self) -> Result<(), StoreError>;

    /// An exclusive lock shared by every process using this store, released when the returned
    /// guard drops. Blocks until it is free.
    fn lock(&self) -> Result<StoreLock, StoreError>;

    /// How the credential is protected at rest.
    fn protection(&self) -> Protection;

    /// Why the protection is not the strongest one asked for (e.g. "no OS keyring: …"), if so.
    fn protection_note(&self) -> Option<String> {
        None
    }
}

/// A held store lock; dropping it releases the lock.
pub struct StoreLock {
    _guard: Box<dyn Send + Sync>,
}

impl StoreLock {
    /// Wraps whatever keeps a lock held until it is dropped (a locked file, a mutex guard
    /// owner…), for implementations of [`TokenStore`].
    pub fn new(guard: impl Send + Sync + 'static) -> Self {
        Self {
            _guard: Box::new(guard),
        }
    }
}

impl std::fmt::Debug for StoreLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreLock")
    }
}

/// How a stored credential is protected. Always reported, never silently degraded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protection {
    /// Encrypted with a random key kept in the OS keyring (Keychain, Credential Manager,
    /// Secret Service).
    Keyring,
    /// Encrypted with a random key kept in this file (mode 0600), in another directory than
    /// the data: whoever can read both as this user can decrypt.
    KeyFile(PathBuf),
    /// Encrypted with a key derived from a passphrase (Argon2id); nothing on disk suffices.
    Passphrase,
}

impl std::fmt::Display for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cipher = "encrypted (XChaCha20-Poly1305)";
        match self {
            Self::Keyring => write!(f, "{cipher}, key in the OS keyring"),
            Self::KeyFile(path) => write!(
                f,
                "{cipher}, key in the file {} (mode 0600, kept apart from the data)",
                path.display()
            ),
            Self::Passphrase => write!(f, "{cipher}, key derived from a passphrase (Argon2id)"),
        }
    }
}
