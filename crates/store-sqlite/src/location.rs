//! Where the database lives: `sqlite://` URLs, bare paths, and `sqlite::memory:`.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use tessera_core::store::StoreError;

/// What `open` was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    File(PathBuf),
    /// A database for tests that vanishes with the store.
    Memory,
}

/// Reads `sqlite::memory:`, `:memory:`, `sqlite:///abs/path.db`, `sqlite://rel/path.db`,
/// `sqlite:rel/path.db` or a bare path.
pub(crate) fn parse(text: &str) -> Result<Target, StoreError> {
    let invalid = |why: &str| StoreError::Internal(format!("database location {text:?}: {why}"));
    if text == "sqlite::memory:" || text == ":memory:" {
        return Ok(Target::Memory);
    }
    let path = match text.strip_prefix("sqlite:") {
        // `sqlite:///abs` keeps its third slash; `sqlite://rel` loses the two of the scheme.
        Some(rest) => {
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            if rest.contains('?') || rest.contains('#') {
                return Err(invalid("query strings and fragments are not supported"));
            }
            rest
        }
        None => text,
    };
    if path.is_empty() {
        return Err(invalid("no path"));
    }
    Ok(Target::File(PathBuf::from(path)))
}

/// Makes sure the database file exists, creating its parent directories and, on Unix, the file
/// itself readable by its owner only: it holds password hashes. SQLite gives the `-wal` and
/// `-shm` files the database file's permissions.
pub(crate) fn prepare_file(path: &Path) -> io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match owner_only().write(true).create_new(true).open(path) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        other => other.map(drop),
    }
}

fn owner_only() -> OpenOptions {
    #[allow(unused_mut)]
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// A database file in the temporary directory, deleted (with its `-wal` and `-shm`) on drop.
/// `sqlite::memory:` uses one instead of SQLite's in-memory databases so that the writer and the
/// readers share one database with the same locking and WAL semantics as a real file.
#[derive(Debug)]
pub(crate) struct TempDatabase {
    path: PathBuf,
}

impl TempDatabase {
    pub(crate) fn create() -> io::Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir();
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!("tessera-memory-{}-{n}.db", std::process::id()));
            match owner_only().write(true).create_new(true).open(&path) {
                Ok(_) => return Ok(Self { path }),
                // Left over by an earlier process with the same id: take the next name.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut name = self.path.clone().into_os_string();
            name.push(suffix);
            let _ = std::fs::remove_file(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> Target {
        Target::File(PathBuf::from(path))
    }

    #[test]
    fn urls_and_bare_paths_name_files() {
        assert_eq!(
            parse("sqlite:///var/lib/tessera/t.db").unwrap(),
            file("/var/lib/tessera/t.db")
        );
        assert_eq!(parse("sqlite://data/t.db").unwrap(), file("data/t.db"));
        assert_eq!(parse("sqlite:t.db").unwrap(), file("t.db"));
        assert_eq!(parse("/abs/t.db").unwrap(), file("/abs/t.db"));
        assert_eq!(parse("rel/t.db").unwrap(), file("rel/t.db"));
    }

    #[test]
    fn memory_is_recognised_in_both_spellings() {
        assert_eq!(parse("sqlite::memory:").unwrap(), Target::Memory);
        assert_eq!(parse(":memory:").unwrap(), Target::Memory);
    }

    #[test]
    fn empty_paths_and_query_strings_are_refused() {
        for text in ["", "sqlite://", "sqlite:", "sqlite://t.db?mode=rwc"] {
            assert!(parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn temporary_databases_are_removed_on_drop() {
        let temp = TempDatabase::create().unwrap();
        let path = temp.path().to_owned();
        assert!(path.exists());
        drop(temp);
        assert!(!path.exists());
    }
}
