//! Usernames are case-insensitive, and one name has one form: Unicode lowercase in NFC. The
//! throttle keys its budgets on that form and the store looks users up by it, so `JÜRGEN`,
//! `jürgen` and the decomposed `ju\u{308}rgen` are one user with one guess budget (folding
//! ASCII in one place and Unicode in another gave a name with k non-ASCII letters up to 2^k
//! budgets).

use unicode_normalization::UnicodeNormalization;

use crate::authority::Authority;
use crate::model::User;
use crate::store::StoreError;

/// The one form of a username: trimmed, NFC, Unicode lowercase, NFC again (lowercasing can
/// leave a sequence that composes further).
pub fn normalise_username(username: &str) -> String {
    let composed: String = username.trim().nfc().collect();
    composed.to_lowercase().nfc().collect()
}

impl Authority {
    /// The user a typed name designates: by its normal form, which every user created since
    /// usernames are normalised is stored under (the stores compare it exactly but for ASCII
    /// case); failing that, by the name as typed, so that a user created earlier with
    /// non-ASCII capitals or a decomposed spelling still logs in under that spelling. The
    /// throttle keys on the normal form either way.
    pub(crate) async fn user_named(&self, username: &str) -> Result<Option<User>, StoreError> {
        let normal = normalise_username(username);
        if let Some(user) = self.store().user_by_username(&normal).await? {
            return Ok(Some(user));
        }
        let typed = username.trim();
        if typed == normal {
            return Ok(None);
        }
        self.store().user_by_username(typed).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tessera_proto::Password;

    use super::normalise_username;
    use crate::authority::{Authority, AuthorityConfig, Source};
    use crate::model::User;
    use crate::store::memory::MemoryStore;
    use crate::store::Directory;
    use crate::time::{ManualClock, SystemRandom, Timestamp};
    use crate::tokens::server_key::ServerKey;

    /// A row written before usernames were normalised keeps its spelling in the database; it
    /// must still log in under that spelling.
    #[tokio::test]
    async fn a_user_stored_before_normalisation_still_logs_in_under_its_spelling() {
        let store = Arc::new(MemoryStore::new());
        let authority = Authority::new(
            store.clone(),
            Arc::new(ManualClock::new(Timestamp(1_800_000_000_000))),
            Arc::new(SystemRandom),
            AuthorityConfig::new("http://as.test", ServerKey::generate(&SystemRandom)),
        );
        let created = authority
            .operator()
            .create_user("JÜRGEN@example.com", Password::new("password one"), None)
            .await
            .unwrap();
        assert_eq!(created.username, "jürgen@example.com");
        let legacy = User {
            id: "005000000000LEGACY".into(),
            username: "ÅSA@example.com".into(),
            ..created.clone()
        };
        store.insert_user(&legacy).await.unwrap();
        for (typed, id) in [
            ("ju\u{308}rgen@EXAMPLE.com", &created.id),
            ("ÅSA@example.com", &legacy.id),
            ("ÅSA@EXAMPLE.COM", &legacy.id),
        ] {
            let found = authority.user_named(typed).await.unwrap().unwrap();
            assert_eq!(&found.id, id, "{typed:?}");
            let user = authority
                .login(
                    typed,
                    Password::new("password one"),
                    "app",
                    &Source::default(),
                )
                .await
                .unwrap();
            assert_eq!(&user.id, id, "{typed:?}");
        }
    }

    #[test]
    fn case_and_composition_variants_of_a_username_have_one_normal_form() {
        let composed = "jürgen@example.com";
        assert_eq!(normalise_username(composed), composed);
        assert_eq!(normalise_username("JÜRGEN@Example.COM"), composed);
        assert_eq!(normalise_username("ju\u{308}rgen@example.com"), composed);
        assert_eq!(normalise_username("JU\u{308}RGEN@EXAMPLE.COM"), composed);
        assert_eq!(
            normalise_username("  Alice@Example.com "),
            "alice@example.com"
        );
        // Non-Latin scripts fold too.
        assert_eq!(normalise_username("ИВАН@example.com"), "иван@example.com");
    }
}
