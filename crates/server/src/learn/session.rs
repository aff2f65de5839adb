//! The playground's client state, one per learner: in this process's memory, keyed by an
//! unguessable cookie, bounded in number and forgotten after an hour unused. A learner's state
//! holds live tokens of the playground's client; no request without that learner's cookie can
//! reach it, and no record of it is ever logged (`Debug` shows none of it).

use std::collections::HashMap;
use std::sync::Mutex;

use tessera_client::DpopKey;

use super::record::Exchange;

/// Most learners kept at once; past it, the one unused the longest is forgotten.
pub(crate) const MAX_LEARNERS: usize = 256;
/// A learner unused this long is forgotten.
pub(crate) const LEARNER_IDLE_MILLIS: i64 = 60 * 60 * 1000;
/// Most steps the page lists, newest first.
const STEPS_KEPT: usize = 12;

/// Which of the playground's clients a flow uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Which {
    #[default]
    Main,
    /// Refresh tokens that expire seconds after the login.
    Expiring,
}

/// The mistakes the page makes on purpose, one click each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mistake {
    NoRefreshScope,
    ExpiredRefreshToken,
    InsecureStorage,
    RotatedTokenNotKept,
}

/// An authorization request the learner's browser is on its way through.
#[derive(Clone)]
pub(crate) struct PendingAuthorization {
    pub state: String,
    pub code_verifier: Option<String>,
    pub scope: String,
    pub client: Which,
    pub mistake: Option<Mistake>,
    /// The key the learner asked the tokens to be bound to (DPoP), made for this authorization.
    pub dpop_key: Option<DpopKey>,
    /// The authorization URL, secrets shortened, as the step shows it.
    pub shown_url: String,
}

/// One step the learner took: what was sent and answered, and what it teaches.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    /// A short name the page and its tests find the step by (`refresh`, `replay`, …).
    pub kind: &'static str,
    pub title: String,
    pub exchanges: Vec<Exchange>,
    /// What happened, in a sentence.
    pub outcome: Option<String>,
    /// The explanation of a mistake.
    pub lesson: Option<&'static str>,
    /// The insecure-storage mistake's two files.
    pub storage: Option<StorageExample>,
}

/// What a plain file and a proper store hold for the same refresh token (both shortened).
#[derive(Debug, Clone)]
pub(crate) struct StorageExample {
    pub plain_file: String,
    pub sealed_file: String,
}

/// The playground's client, as one learner drives it.
#[derive(Clone, Default)]
pub(crate) struct Learner {
    pub csrf: String,
    pub last_used_millis: i64,
    pub pending: Option<PendingAuthorization>,
    /// The client the tokens below belong to.
    pub client: Which,
    pub code: Option<String>,
    /// The PKCE verifier of the code, if it was asked with one.
    pub code_verifier: Option<String>,
    /// The client's DPoP key, if the learner asked for DPoP: every token request and API call
    /// carries a proof of it. Its `Debug` shows only the thumbprint.
    pub dpop_key: Option<DpopKey>,
    /// The `token_type` of the last token response (`Bearer` or `DPoP`).
    pub token_type: Option<String>,
    pub access_token: Option<String>,
    pub access_expires_at_millis: Option<i64>,
    /// Every refresh token the client was given, oldest first.
    pub refresh_tokens: Vec<String>,
    /// The pair the last refresh returned, to compare a replay's answer with.
    pub last_pair: Option<(String, String)>,
    /// Newest first.
    pub steps: Vec<Step>,
}

impl std::fmt::Debug for Learner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Learner")
            .field("client", &self.client)
            .field("refresh_tokens", &self.refresh_tokens.len())
            .field("steps", &self.steps.len())
            .finish_non_exhaustive()
    }
}

impl Learner {
    pub(crate) fn new(csrf: String, now_millis: i64) -> Self {
        Self {
            csrf,
            last_used_millis: now_millis,
            ..Self::default()
        }
    }

    /// Keeps a step, newest first, forgetting the oldest beyond [`STEPS_KEPT`].
    pub(crate) fn record(&mut self, step: Step) {
        self.steps.insert(0, step);
        self.steps.truncate(STEPS_KEPT);
    }

    /// Forgets the client's tokens (a new authorization starts a new family), keeping the steps.
    pub(crate) fn forget_tokens(&mut self) {
        self.code = None;
        self.code_verifier = None;
        self.dpop_key = None;
        self.token_type = None;
        self.access_token = None;
        self.access_expires_at_millis = None;
        self.refresh_tokens.clear();
        self.last_pair = None;
    }

    /// Keeps a refresh token the client was given, once.
    pub(crate) fn keep_refresh_token(&mut self, token: &str) {
        if !self.refresh_tokens.iter().any(|t| t == token) {
            self.refresh_tokens.push(token.to_owned());
        }
    }
}

/// Every learner's state, by session id.
#[derive(Default)]
pub(crate) struct Learners {
    by_id: Mutex<HashMap<String, Learner>>,
}

impl std::fmt::Debug for Learners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Learners([REDACTED])")
    }
}

impl Learners {
    /// A copy of the learner's state, if the id is known and not idle too long.
    pub(crate) fn get(&self, id: &str, now_millis: i64) -> Option<Learner> {
        let mut by_id = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        by_id.retain(|_, l| now_millis - l.last_used_millis < LEARNER_IDLE_MILLIS);
        by_id.get(id).cloned()
    }

    /// Stores a learner's state, forgetting the one unused the longest when full.
    pub(crate) fn put(&self, id: &str, mut learner: Learner, now_millis: i64) {
        learner.last_used_millis = now_millis;
        let mut by_id = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        if !by_id.contains_key(id) && by_id.len() >= MAX_LEARNERS {
            let oldest = by_id
                .iter()
                .min_by_key(|(_, l)| l.last_used_millis)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                by_id.remove(&oldest);
            }
        }
        by_id.insert(id.to_owned(), learner);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_id.lock().map(|m| m.len()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learners_are_bounded_and_the_least_recently_used_goes_first() {
        let learners = Learners::default();
        for n in 0..MAX_LEARNERS {
            learners.put(&format!("id{n}"), Learner::default(), n as i64);
        }
        learners.put("id0", Learner::default(), 10_000);
        learners.put("new", Learner::default(), 10_001);
        assert_eq!(learners.len(), MAX_LEARNERS);
        assert!(learners.get("id0", 10_002).is_some());
        assert!(learners.get("id1", 10_002).is_none());
        assert!(learners.get("new", 10_002).is_some());
    }

    #[test]
    fn an_idle_learner_is_forgotten() {
        let learners = Learners::default();
        learners.put("a", Learner::default(), 0);
        assert!(learners.get("a", LEARNER_IDLE_MILLIS - 1).is_some());
        assert!(learners.get("a", LEARNER_IDLE_MILLIS).is_none());
    }

    #[test]
    fn a_refresh_token_is_kept_once() {
        let mut learner = Learner::default();
        learner.keep_refresh_token("one");
        learner.keep_refresh_token("two");
        learner.keep_refresh_token("two");
        learner.keep_refresh_token("one");
        assert_eq!(learner.refresh_tokens, ["one", "two"]);
    }
}
