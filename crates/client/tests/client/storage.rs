//! Encryption at rest, file modes, compare-and-swap, and key modes.

use std::path::Path;
use std::sync::Arc;

use tessera_client::{FileTokenStore, KeySource, Password, Protection, StoreError, TokenStore};

use crate::support::*;

fn contains(haystack: &[u8], needle: &str) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn the_token_file_holds_no_token_in_clear_and_only_its_owner_can_read_it() {
    let server = Server::start().await;
    let client = server.rotating(60, 3600).await;
    let dirs = Dirs::new();
    let store = dirs.store();
    let (manager, _) = open_manager(&server, store.clone());
    let credential = server.credential(&client, now_ms()).await;
    let at1 = credential.access_token.clone();
    manager.login_with(credential.clone()).await.unwrap();
    let at2 = manager.refresh_after_rejection(&at1).await.unwrap();
    let stored = store.load().unwrap().unwrap();

    let bytes = std::fs::read(dirs.data()).unwrap();
    let secrets = [
        clear(&at1),
        clear(credential.refresh_token.as_ref().unwrap()),
        clear(&at2),
        clear(stored.refresh_token.as_ref().unwrap()),
        clear(client.secret.as_ref().unwrap()),
    ];
    for secret in &secrets {
        assert!(
            !contains(&bytes, secret),
            "a secret is in the file in clear"
        );
        // Nor any recognisable part of it.
        assert!(!contains(&bytes, &secret[secret.len() - 16..]));
    }
    assert!(!contains(&bytes, "access_token") && !contains(&bytes, &client.id));
    let key = std::fs::read(dirs.key()).unwrap();
    for secret in &secrets {
        assert!(!contains(&key, secret));
    }
    assert_eq!(store.protection(), Protection::KeyFile(dirs.key()));
    #[cfg(unix)]
    {
        assert_eq!(mode(&dirs.data()), 0o600);
        assert_eq!(mode(&dirs.key()), 0o600);
        assert_eq!(mode(store.lock_path()), 0o600);
        assert_eq!(mode(dirs.data().parent().unwrap()), 0o700);
        assert_eq!(mode(dirs.key().parent().unwrap()), 0o700);
    }
    // No temp file was left behind.
    let names: Vec<_> = std::fs::read_dir(dirs.data().parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn a_passphrase_protects_the_file_and_a_wrong_one_cannot_open_it() {
    let dirs = Dirs::new();
    let open = |p: &str| {
        FileTokenStore::open(dirs.data(), KeySource::Passphrase(Password::new(p))).unwrap()
    };
    let store = open("correct horse battery staple");
    assert_eq!(store.protection(), Protection::Passphrase);
    let credential = sample_credential("00D!access-token-value", "refresh-token-value-123");
    store.save(None, &credential).unwrap();
    let bytes = std::fs::read(dirs.data()).unwrap();
    assert!(!contains(&bytes, "access-token-value"));
    assert!(!contains(&bytes, "refresh-token-value-123"));
    assert!(!dirs.key().exists(), "no key file in passphrase mode");

    let reopened = open("correct horse battery staple")
        .load()
        .unwrap()
        .unwrap();
    assert_eq!(reopened.access_token, credential.access_token);
    assert!(matches!(
        open("wrong passphrase").load(),
        Err(StoreError::Decrypt { .. })
    ));
    // Opened with a key file instead, it says what it was written with.
    let as_key_file = FileTokenStore::open(dirs.data(), KeySource::KeyFile(dirs.key())).unwrap();
    let error = as_key_file.load().unwrap_err();
    assert!(error.to_string().contains("passphrase"), "{error}");
}

#[test]
fn auto_uses_the_os_keyring_or_says_why_not() {
    let dirs = Dirs::new();
    let auto = || KeySource::Auto {
        key_file: dirs.key(),
        keyring_service: "tessera-client-test".into(),
        keyring_user: format!("auto-{}", std::process::id()),
    };
    let store = FileTokenStore::open(dirs.data(), auto()).unwrap();
    match store.protection() {
        // A desktop session with a Secret Service (or macOS, Windows).
        Protection::Keyring => assert!(store.protection_note().is_none()),
        // Headless Linux (this CI): the key file, and the reason it is not the keyring.
        Protection::KeyFile(path) => {
            assert_eq!(path, dirs.key());
            let note = store.protection_note().expect("a fallback is explained");
            // One sentence: what happened and where the key went, not the keyring's error.
            assert!(note.contains("OS keyring is not available"), "{note}");
            assert!(note.contains(&path.display().to_string()), "{note}");
            assert!(
                !note.contains("zbus") && !note.contains("failure"),
                "{note}"
            );
        }
        Protection::Passphrase => panic!("never chosen by Auto"),
    }
    store.save(None, &sample_credential("00D!a", "r")).unwrap();
    assert!(store.load().unwrap().is_some());
    // Reopened, the file keeps the kind of key it was written with.
    let again = FileTokenStore::open(dirs.data(), auto()).unwrap();
    assert_eq!(again.protection(), store.protection());
    assert!(again.load().unwrap().is_some());
}

#[test]
fn a_key_file_beside_the_data_is_refused() {
    let dirs = Dirs::new();
    let beside = dirs.data().with_file_name("client.key");
    assert!(matches!(
        FileTokenStore::open(dirs.data(), KeySource::KeyFile(beside)),
        Err(StoreError::Config(_))
    ));
}

#[cfg(unix)]
#[test]
fn a_key_file_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dirs = Dirs::new();
    let store = dirs.store();
    store.save(None, &sample_credential("00D!a", "r")).unwrap();
    std::fs::set_permissions(dirs.key(), std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(
        dirs.store().load(),
        Err(StoreError::InsecureKeyFile { mode: 0o644, .. })
    ));
}

#[test]
fn save_is_a_compare_and_swap_on_the_refresh_token() {
    let dirs = Dirs::new();
    let store = dirs.store();
    let first = sample_credential("00D!a1", "r1");
    store.save(None, &first).unwrap();
    // Nothing was expected, but something is stored.
    assert!(matches!(
        store.save(None, &first),
        Err(StoreError::Conflict)
    ));
    let second = sample_credential("00D!a2", "r2");
    store.save(first.refresh_token.as_ref(), &second).unwrap();
    // A writer still holding r1 is refused: r2 is not lost.
    let stale = sample_credential("00D!a3", "r3");
    assert!(matches!(
        store.save(first.refresh_token.as_ref(), &stale),
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        store.load().unwrap().unwrap().refresh_token,
        second.refresh_token
    );
}

#[tokio::test]
async fn a_damaged_file_is_reported_and_a_new_login_replaces_it() {
    let dirs = Dirs::new();
    let store = dirs.store();
    store.save(None, &sample_credential("00D!a", "r")).unwrap();
    let mut bytes = std::fs::read(dirs.data()).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(dirs.data(), &bytes).unwrap();
    assert!(matches!(store.load(), Err(StoreError::Decrypt { .. })));
    std::fs::write(dirs.data(), b"{\"access_token\":\"x\"}").unwrap();
    assert!(matches!(store.load(), Err(StoreError::Corrupt { .. })));

    let manager = tessera_client::TokenManager::new(
        store.clone() as Arc<dyn TokenStore>,
        tessera_client::ManagerConfig::new(reqwest::Client::new()),
    );
    manager
        .login_with(sample_credential("00D!fresh", "r-fresh"))
        .await
        .unwrap();
    assert_eq!(
        clear(&store.load().unwrap().unwrap().access_token),
        "00D!fresh"
    );
}

#[tokio::test]
async fn status_names_the_user_and_the_protection_but_no_token() {
    let dirs = Dirs::new();
    let store = dirs.store();
    let manager = tessera_client::TokenManager::new(
        store as Arc<dyn TokenStore>,
        tessera_client::ManagerConfig::new(reqwest::Client::new()),
    );
    let credential = sample_credential("00D!status-access-token", "status-refresh-token");
    manager.login_with(credential).await.unwrap();
    let status = manager.status().await.unwrap();
    let text = format!("{status}\n{status:?}");
    assert!(
        text.contains("https://login.example.test/id/00D/005"),
        "{text}"
    );
    assert!(text.contains("3MVG9client"));
    assert!(text.contains("key in the file"));
    assert!(!text.contains("status-access-token"));
    assert!(!text.contains("status-refresh-token"));
    assert!(!text.contains("CLIENT-SECRET-VALUE"));
}

#[test]
fn one_profiles_file_copied_over_anothers_does_not_open() {
    let dirs = Dirs::new();
    let profile = |name: &str| {
        let data = dirs.data().with_file_name(format!("{name}.cred"));
        FileTokenStore::open(data, KeySource::KeyFile(dirs.key())).unwrap()
    };
    let (work, personal) = (profile("work"), profile("personal"));
    work.save(None, &sample_credential("00D!work-access", "work-refresh"))
        .unwrap();
    personal
        .save(None, &sample_credential("00D!own-access", "own-refresh"))
        .unwrap();
    // Same key file, so only the profile in the associated data tells them apart.
    std::fs::copy(work.data_path(), personal.data_path()).unwrap();
    let error = personal.load().unwrap_err();
    assert!(matches!(error, StoreError::Decrypt { .. }), "{error}");
    assert!(error.to_string().contains("another profile"), "{error}");
    assert!(work.load().unwrap().is_some());
}

#[test]
fn a_file_asking_for_unbounded_argon2_memory_is_refused_at_once() {
    let dirs = Dirs::new();
    let open =
        || FileTokenStore::open(dirs.data(), KeySource::Passphrase(Password::new("p"))).unwrap();
    open().save(None, &sample_credential("00D!a", "r")).unwrap();
    let mut bytes = std::fs::read(dirs.data()).unwrap();
    // "TSCR" | version | kind | m_cost (u32 LE): ask for 4 TiB.
    bytes[6..10].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(dirs.data(), &bytes).unwrap();
    let started = std::time::Instant::now();
    let error = open().load().unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error}");
    assert!(error.to_string().contains("Argon2id costs"), "{error}");
}
