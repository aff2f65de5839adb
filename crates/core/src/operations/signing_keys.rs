//! The signing-key set's life: which key signs, which keys the JWKS publishes, rotation (by an
//! operator or on schedule, from housekeeping) and retirement (docs/openid-connect.md).
//!
//! Every node reads the keys from the store and keeps its copy for `N` =
//! min([`KEY_CACHE_TTL_SECS`], `C`), the node cache (a short TTL, not the change feed: keys
//! change a few times a year, and every decision is taken against the dates stored with them,
//! so a node whose copy is older still switches to a new key at the same instant as the others).
//!
//! The timeline of one rotation, with `C` the JWKS cache lifetime, `N` the node cache and `T`
//! the longest a signed token lives:
//!
//! ```text
//! new key:  published at R ─── every node publishes it by R + N ─── signs from R + C + N ─────▶
//! old key:  signs ──────────── until R + C + N ─── published until R + C + N + T + C, then gone
//! ```
//!
//! A node whose copy predates `R` does not publish the new key until `R + N`, and a client that
//! fetched the JWKS from it just before then keeps that JWKS for `C` more: by `R + C + N`, when
//! the new key signs, every cached JWKS has it. (Were the wait only `C`, a JWKS fetched from a
//! stale node at `R + N - ε` would lack the key until `R + N + C`, while other nodes signed with
//! it from `R + C`.) `N` is at most `C` so that the wait stays within twice the cache lifetime.
//! A token the old key signed last expires by `R + C + N + T`, and a JWKS fetched then is kept
//! for `C` more.
//!
//! A retirement by hand stops the key signing at once on the node that wrote it, and on the
//! others once their copy is read again, within `N`: its tokens may be signed until `now + N`,
//! so it stays published until `now + N + T + C`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::authority::Authority;
use crate::model::SigningAlg;
use crate::policy::MAX_ACCESS_TOKEN_TTL_SECS;
use crate::store::StoreError;
use crate::time::Timestamp;
use crate::tokens::signing_keys::{OpenedKey, PublicJwk, SigningKey, SigningKeyError};

/// How long a node uses the keys it read from the store before reading them again, at most: a
/// JWKS cache lifetime shorter than this shortens it too ([`KeySchedule::node_cache_secs`]).
pub const KEY_CACHE_TTL_SECS: u64 = 60;
/// The default rotation period: Salesforce rotates its ID-token key every release.
pub const DEFAULT_SIGNING_KEY_ROTATION_SECS: u64 = 90 * 86_400;
/// The default JWKS cache lifetime (`Cache-Control: max-age`).
pub const DEFAULT_JWKS_CACHE_LIFETIME_SECS: u64 = 86_400;
/// The longest a token signed by these keys lives (what an ID token or a JWT access token may
/// be given): how long a key stays published after it stops signing, with the cache lifetime.
pub const MAX_SIGNED_TOKEN_LIFETIME_SECS: u64 = MAX_ACCESS_TOKEN_TTL_SECS;

#[derive(Debug, thiserror::Error)]
pub enum SigningKeysError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] SigningKeyError),
    #[error("no signing key is named {0}")]
    UnknownKey(String),
    #[error("the signing key {0} is already retired")]
    AlreadyRetired(String),
    /// Retiring it would leave nothing to sign with until a pending key's time comes.
    #[error("{0} is the only key that can sign now: rotate, and retire it once the new key signs")]
    LastSigningKey(String),
    /// No key can sign now (none made yet, or every one retired): housekeeping makes one.
    #[error("no signing key can sign now")]
    NoSigningKey,
}

/// A failure to publish or sign at an endpoint: 503 `temporarily_unavailable`, as a storage
/// failure is; the cause (a store down, a key that does not open under this server key) is
/// logged, never sent.
impl From<SigningKeysError> for tessera_proto::OAuthError {
    fn from(error: SigningKeysError) -> Self {
        match error {
            SigningKeysError::Store(error) => error.into(),
            other => {
                tracing::error!(error = %other, "signing keys unusable; answering 503");
                tessera_proto::OAuthError::TemporarilyUnavailable {
                    retry_after_secs: crate::authority::UNAVAILABLE_RETRY_AFTER_SECS,
                }
            }
        }
    }
}

/// Where a key is in its life at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published, not signing yet.
    Pending,
    /// The key that signs.
    Signing,
    /// Published, no longer signing (a newer key signs); retirement not yet dated.
    Superseded,
    /// Published until its `retire_at`, signing nothing.
    Retiring,
    /// Neither published nor used.
    Retired,
}

impl KeyState {
    /// How `tessera admin keys list` names it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Signing => "signing",
            Self::Superseded => "superseded",
            Self::Retiring => "retiring",
            Self::Retired => "retired",
        }
    }
}

/// The schedule's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySchedule {
    /// How long a key signs before housekeeping rotates it.
    pub rotation_secs: u64,
    /// How long a client may keep a fetched JWKS.
    pub jwks_cache_lifetime_secs: u64,
}

impl Default for KeySchedule {
    fn default() -> Self {
        Self {
            rotation_secs: DEFAULT_SIGNING_KEY_ROTATION_SECS,
            jwks_cache_lifetime_secs: DEFAULT_JWKS_CACHE_LIFETIME_SECS,
        }
    }
}

impl KeySchedule {
    /// How long a node keeps the keys it read: [`KEY_CACHE_TTL_SECS`], or the JWKS cache lifetime
    /// if that is shorter, so that a new key's wait for the stale nodes (this long) never
    /// exceeds its wait for the clients' caches.
    pub fn node_cache_secs(&self) -> u64 {
        KEY_CACHE_TTL_SECS.min(self.jwks_cache_lifetime_secs)
    }

    /// How long after it is published a new key waits before it signs: until every node
    /// publishes it (the node cache), then until every JWKS fetched before that has lapsed.
    fn publish_before_sign_secs(&self) -> u64 {
        self.jwks_cache_lifetime_secs
            .saturating_add(self.node_cache_secs())
    }

    /// How long after a key stops signing it stays published.
    fn published_after_last_signature_secs(&self) -> u64 {
        MAX_SIGNED_TOKEN_LIFETIME_SECS.saturating_add(self.jwks_cache_lifetime_secs)
    }
}

/// The key of `alg` that signs at `now`: of that algorithm's keys that have reached their
/// `sign_from` and are not retired, the one that began signing last (then the newest, then the
/// greatest kid: two keys made in one millisecond are still ordered the same on every node). Each algorithm has its own schedule: an RS256 key and an
/// ES256 key sign side by side, each for the clients that asked for it.
pub fn signing_key_at(keys: &[SigningKey], alg: SigningAlg, now: Timestamp) -> Option<&SigningKey> {
    of_alg(keys, alg)
        .filter(|k| k.sign_from <= now && k.retire_at.is_none())
        .max_by(|a, b| {
            (a.sign_from, a.created_at, &a.kid).cmp(&(b.sign_from, b.created_at, &b.kid))
        })
}

fn of_alg(keys: &[SigningKey], alg: SigningAlg) -> impl Iterator<Item = &SigningKey> {
    keys.iter().filter(move |k| k.alg == alg.name())
}

/// Whether the JWKS lists `key` at `now`.
pub fn is_published(key: &SigningKey, now: Timestamp) -> bool {
    key.publish_at <= now && key.retire_at.is_none_or(|retire_at| now < retire_at)
}

/// The state of `key` among `keys` at `now`.
pub fn key_state(keys: &[SigningKey], key: &SigningKey, now: Timestamp) -> KeyState {
    if !is_published(key, now) {
        return if key.publish_at > now {
            KeyState::Pending
        } else {
            KeyState::Retired
        };
    }
    if key.retire_at.is_some() {
        return KeyState::Retiring;
    }
    if key.sign_from > now {
        return KeyState::Pending;
    }
    let signing = key
        .signing_alg()
        .and_then(|alg| signing_key_at(keys, alg, now));
    match signing {
        Some(signing) if signing.kid == key.kid => KeyState::Signing,
        _ => KeyState::Superseded,
    }
}

/// When a key of `alg` made at `now` may sign: at once when no key of its algorithm can sign
/// now or later (a fresh install, every key retired, the first key of a newly offered
/// algorithm: no token of that algorithm exists that a cached JWKS would have to verify, and a
/// relying party refetches on a kid it does not know), else after one JWKS cache lifetime and
/// one node cache.
fn sign_from_for_new_key(
    keys: &[SigningKey],
    alg: SigningAlg,
    now: Timestamp,
    schedule: &KeySchedule,
) -> Timestamp {
    if of_alg(keys, alg).any(|k| k.retire_at.is_none()) {
        now.plus_secs(schedule.publish_before_sign_secs())
    } else {
        now
    }
}

/// Whether housekeeping should make a key of `alg` at `now`: none can sign, or the signing key
/// has signed for the rotation period and no newer key is waiting for its turn.
fn rotation_due(
    keys: &[SigningKey],
    alg: SigningAlg,
    now: Timestamp,
    schedule: &KeySchedule,
) -> bool {
    let pending = of_alg(keys, alg).any(|k| k.retire_at.is_none() && k.sign_from > now);
    match signing_key_at(keys, alg, now) {
        None => !pending,
        Some(signing) => !pending && signing.sign_from.plus_secs(schedule.rotation_secs) <= now,
    }
}

/// The retirement dates housekeeping writes for superseded keys: each stops signing when the
/// next key starts, and stays published for the tokens it signed until then. No node cache is
/// added: the switch is decided by the new key's `sign_from`, which every node knows by then.
fn superseded_retirements(
    keys: &[SigningKey],
    alg: SigningAlg,
    now: Timestamp,
    schedule: &KeySchedule,
) -> Vec<(String, Timestamp)> {
    let Some(signing) = signing_key_at(keys, alg, now) else {
        return Vec::new();
    };
    of_alg(keys, alg)
        .filter(|k| k.retire_at.is_none() && k.sign_from <= now && k.kid != signing.kid)
        .map(|k| {
            let retire_at = signing
                .sign_from
                .plus_secs(schedule.published_after_last_signature_secs());
            (k.kid.clone(), retire_at)
        })
        .collect()
}

/// The keys as read from the store, and when; and the ones opened for signing since (unsealed
/// and parsed once, not on every signature). The opened keys go with the copy they were opened
/// from: a fresh read starts with none.
#[derive(Debug, Default)]
pub(crate) struct KeyCache(Mutex<Option<CachedKeys>>);

#[derive(Debug)]
struct CachedKeys {
    read_at: Timestamp,
    /// Shared, not copied, with every signature that reads them.
    keys: Arc<Vec<SigningKey>>,
    opened: HashMap<String, Arc<OpenedKey>>,
}

impl KeyCache {
    fn fresh(&self, now: Timestamp, ttl_secs: u64) -> Option<Arc<Vec<SigningKey>>> {
        let cached = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cached
            .as_ref()
            .filter(|c| now >= c.read_at && now < c.read_at.plus_secs(ttl_secs))
            .map(|c| Arc::clone(&c.keys))
    }

    fn keep(&self, read_at: Timestamp, keys: Arc<Vec<SigningKey>>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(CachedKeys {
            read_at,
            keys,
            opened: HashMap::new(),
        });
    }

    fn forget(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn opened(&self, kid: &str) -> Option<Arc<OpenedKey>> {
        let cached = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cached.as_ref().and_then(|c| c.opened.get(kid).cloned())
    }

    /// Keeps `opened` with the copy of the keys it came from, if that copy is still the one
    /// held (else it is dropped after this use).
    fn keep_opened(&self, opened: &Arc<OpenedKey>) {
        let mut cached = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cached
            .as_mut()
            .filter(|c| c.keys.iter().any(|k| k.kid == opened.kid()))
        {
            c.opened.insert(opened.kid().to_owned(), Arc::clone(opened));
        }
    }
}

/// A key as `tessera admin keys list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    pub kid: String,
    pub alg: String,
    pub state: KeyState,
    pub created_at: Timestamp,
    pub publish_at: Timestamp,
    pub sign_from: Timestamp,
    pub retire_at: Option<Timestamp>,
}

impl Authority {
    fn key_schedule(&self) -> KeySchedule {
        self.config().key_schedule
    }

    /// The keys, from this node's copy while it is fresh (for the node cache).
    async fn keys(&self) -> Result<Arc<Vec<SigningKey>>, StoreError> {
        let now = self.now();
        let ttl_secs = self.key_schedule().node_cache_secs();
        if let Some(keys) = self.key_cache().fresh(now, ttl_secs) {
            return Ok(keys);
        }
        let keys = Arc::new(self.store().signing_keys().await?);
        self.key_cache().keep(now, Arc::clone(&keys));
        Ok(keys)
    }

    /// Every key with its state now, oldest first.
    pub async fn signing_key_statuses(&self) -> Result<Vec<KeyStatus>, StoreError> {
        let keys = self.store().signing_keys().await?;
        let now = self.now();
        Ok(keys
            .iter()
            .map(|k| KeyStatus {
                kid: k.kid.clone(),
                alg: k.alg.clone(),
                state: key_state(&keys, k, now),
                created_at: k.created_at,
                publish_at: k.publish_at,
                sign_from: k.sign_from,
                retire_at: k.retire_at,
            })
            .collect())
    }

    /// The JWKS's keys: every published one, oldest first.
    pub async fn published_jwks(&self) -> Result<Vec<PublicJwk>, SigningKeysError> {
        let now = self.now();
        let server_key = &self.config().server_key;
        let keys = self.keys().await?;
        let published = keys.iter().filter(|k| is_published(k, now));
        Ok(published
            .map(|k| k.public_jwk(server_key))
            .collect::<Result<_, _>>()?)
    }

    /// How long a client may keep the JWKS (its `Cache-Control: max-age`).
    pub fn jwks_cache_lifetime_secs(&self) -> u64 {
        self.key_schedule().jwks_cache_lifetime_secs
    }

    /// A compact JWS (`typ: JWT`) of `claims` under the RS256 key that signs now.
    pub async fn sign_jws<C: serde::Serialize>(
        &self,
        claims: &C,
    ) -> Result<String, SigningKeysError> {
        self.sign_jws_as(SigningAlg::Rs256, "JWT", self.now(), claims)
            .await
    }

    /// A compact JWS of `claims` with header `{alg, kid, typ}`, under the key of `alg` that
    /// signed at `at` (a replay rebuilds what a rotation answered then: with RS256, the same
    /// bytes), or the one that signs now if that key has been retired since. An RSA signature
    /// is computed on a blocking thread, never on the async runtime's workers (RSA-2048 is
    /// about half a millisecond of CPU); an ES256 one (about 20 µs) right here, where handing
    /// it to another thread and back would cost more than it saves. The key is opened once per
    /// cached copy.
    pub async fn sign_jws_as<C: serde::Serialize>(
        &self,
        alg: SigningAlg,
        typ: &'static str,
        at: Timestamp,
        claims: &C,
    ) -> Result<String, SigningKeysError> {
        let keys = self.keys().await?;
        let key = signing_key_at(&keys, alg, at)
            .or_else(|| signing_key_at(&keys, alg, self.now()))
            .ok_or(SigningKeysError::NoSigningKey)?;
        let opened = match self.key_cache().opened(&key.kid) {
            Some(opened) => opened,
            None => {
                let opened = Arc::new(key.open(&self.config().server_key)?);
                self.key_cache().keep_opened(&opened);
                opened
            }
        };
        let unsigned = || SigningKeyError::Signing {
            kid: key.kid.clone(),
        };
        let payload = serde_json::to_vec(claims).map_err(|_| unsigned())?;
        let signed = match opened.alg() {
            SigningAlg::Rs256 => {
                tokio::task::spawn_blocking(move || opened.sign_jws(typ, &payload))
                    .await
                    .map_err(|_| unsigned())??
            }
            SigningAlg::Es256 => opened.sign_jws(typ, &payload)?,
        };
        Ok(signed)
    }

    /// Adds a key of `alg`, published now, signing after one JWKS cache lifetime and one node
    /// cache (at once if no key of its algorithm can sign). The key that signs now goes on
    /// signing until then.
    pub async fn rotate_signing_key(&self, alg: SigningAlg) -> Result<KeyStatus, SigningKeysError> {
        let keys = self.store().signing_keys().await?;
        let generated_at = self.now();
        let mut key = SigningKey::generate(
            &self.config().server_key,
            self.rng(),
            alg,
            generated_at,
            generated_at,
        )?;
        // Dated once made (an RSA key takes a while): a node that reads the keys after `now`
        // and before the insert lands keeps a copy without it for a node cache from then, so
        // the dates the wait is counted from must not lag the insert by the key's making.
        let now = self.now();
        let sign_from = sign_from_for_new_key(&keys, alg, now, &self.key_schedule());
        (key.created_at, key.publish_at, key.sign_from) = (now, now, sign_from);
        self.store().insert_signing_key(&key).await?;
        self.key_cache().forget();
        // The first key of an install signs at once: its tokens must verify here at once too.
        self.jwt_verifier().forget_keys();
        tracing::info!(kid = %key.kid, alg = alg.name(), sign_from = sign_from.millis(), "signing key added");
        let mut keys = keys;
        keys.push(key.clone());
        Ok(KeyStatus {
            state: key_state(&keys, &key, now),
            kid: key.kid,
            alg: key.alg,
            created_at: key.created_at,
            publish_at: key.publish_at,
            sign_from: key.sign_from,
            retire_at: key.retire_at,
        })
    }

    /// Stops a key signing now here, and on the other nodes within the node cache; it stays
    /// published until every token it signed has expired and the JWKS caches that hold it have
    /// too. Refused for the only key that can sign now. Returns when it leaves the JWKS.
    pub async fn retire_signing_key(&self, kid: &str) -> Result<Timestamp, SigningKeysError> {
        let now = self.now();
        let mut keys = self.store().signing_keys().await?;
        let key = keys
            .iter_mut()
            .find(|k| k.kid == kid)
            .ok_or_else(|| SigningKeysError::UnknownKey(kid.to_owned()))?;
        if key.retire_at.is_some() {
            return Err(SigningKeysError::AlreadyRetired(kid.to_owned()));
        }
        let schedule = self.key_schedule();
        // A node whose copy predates this write may sign with the key for a node cache more.
        let last_signature = now.plus_secs(schedule.node_cache_secs());
        let retire_at = last_signature.plus_secs(schedule.published_after_last_signature_secs());
        key.retire_at = Some(retire_at);
        let alg = key.signing_alg();
        let nothing_would_sign = alg.is_some_and(|alg| signing_key_at(&keys, alg, now).is_none());
        if nothing_would_sign {
            return Err(SigningKeysError::LastSigningKey(kid.to_owned()));
        }
        if !self.store().retire_signing_key(kid, retire_at).await? {
            return Err(SigningKeysError::UnknownKey(kid.to_owned()));
        }
        self.key_cache().forget();
        tracing::info!(kid, retire_at = retire_at.millis(), "signing key retired");
        Ok(retire_at)
    }

    /// Housekeeping's step for the keys, for each algorithm (RS256, ES256): makes the first
    /// key, rotates the signing key once it has signed for the rotation period, and dates the
    /// retirement of keys a newer one has superseded. Returns the kids of the keys it made. Two
    /// nodes running it at once may each make one: both are published, and the newer signs.
    pub async fn rotate_signing_keys_when_due(&self) -> Result<Vec<String>, SigningKeysError> {
        let now = self.now();
        let schedule = self.key_schedule();
        let keys = self.store().signing_keys().await?;
        let mut made = Vec::new();
        for alg in SigningAlg::ALL {
            for (kid, retire_at) in superseded_retirements(&keys, alg, now, &schedule) {
                self.store().retire_signing_key(&kid, retire_at).await?;
                self.key_cache().forget();
            }
            if rotation_due(&keys, alg, now, &schedule) {
                made.push(self.rotate_signing_key(alg).await?.kid);
            }
        }
        Ok(made)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::authority::AuthorityConfig;
    use crate::store::memory::MemoryStore;
    use crate::time::{ManualClock, SystemRandom};
    use crate::tokens::server_key::ServerKey;

    const DAY: u64 = 86_400;
    /// The node cache with the default JWKS cache lifetime (a day): a minute.
    const NODE: u64 = KEY_CACHE_TTL_SECS;

    fn authority() -> (Authority, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000)));
        let authority = Authority::new(
            Arc::new(MemoryStore::new()),
            clock.clone(),
            Arc::new(SystemRandom),
            AuthorityConfig::new("http://as.test", ServerKey::generate(&SystemRandom)),
        );
        (authority, clock)
    }

    /// The kids of the RS256 keys the JWKS lists (each algorithm's schedule is the same).
    async fn published_kids(authority: &Authority) -> Vec<String> {
        authority
            .published_jwks()
            .await
            .unwrap()
            .into_iter()
            .filter(|jwk| jwk.alg == "RS256")
            .map(|jwk| jwk.kid)
            .collect()
    }

    /// A new RS256 key, made now.
    async fn rotate(authority: &Authority) -> KeyStatus {
        authority
            .rotate_signing_key(SigningAlg::Rs256)
            .await
            .unwrap()
    }

    async fn signing_kid(authority: &Authority) -> String {
        let token = authority
            .sign_jws(&serde_json::json!({"sub": "x"}))
            .await
            .unwrap();
        jsonwebtoken::decode_header(&token).unwrap().kid.unwrap()
    }

    #[tokio::test]
    async fn the_first_key_signs_at_once() {
        let (authority, _clock) = authority();
        assert!(matches!(
            authority.sign_jws(&serde_json::json!({})).await,
            Err(SigningKeysError::NoSigningKey)
        ));
        let made = authority.rotate_signing_keys_when_due().await.unwrap();
        let [rs256, es256] = made.as_slice() else {
            panic!("one key per algorithm: {made:?}");
        };
        assert_eq!(signing_kid(&authority).await, *rs256);
        let es256_token = authority
            .sign_jws_as(
                SigningAlg::Es256,
                "JWT",
                authority.now(),
                &serde_json::json!({}),
            )
            .await
            .unwrap();
        let header = jsonwebtoken::decode_header(&es256_token).unwrap();
        assert_eq!(header.kid.as_ref(), Some(es256));
        let jwks = authority.published_jwks().await.unwrap();
        let mut published: Vec<String> = jwks.into_iter().map(|jwk| jwk.kid).collect();
        let mut made = made.clone();
        published.sort();
        made.sort();
        assert_eq!(published, made);
    }

    #[tokio::test]
    async fn a_new_key_is_published_a_cache_lifetime_and_a_node_cache_before_it_signs() {
        let (authority, clock) = authority();
        let old = rotate(&authority).await.kid;
        // A second later: keys made in one millisecond are ordered by their random kids.
        clock.advance_secs(1);
        let new = rotate(&authority).await;
        assert_eq!(new.state, KeyState::Pending);
        assert_eq!(
            published_kids(&authority).await,
            [old.clone(), new.kid.clone()]
        );
        assert_eq!(signing_kid(&authority).await, old);

        clock.advance_secs(DAY + NODE - 1);
        authority.key_cache().forget();
        assert_eq!(signing_kid(&authority).await, old);
        clock.advance_secs(1);
        authority.key_cache().forget();
        assert_eq!(signing_kid(&authority).await, new.kid);
    }

    #[tokio::test]
    async fn an_old_key_stays_published_until_its_tokens_expire_and_caches_lapse() {
        let (authority, clock) = authority();
        let old = rotate(&authority).await.kid;
        // A second later: keys made in one millisecond are ordered by their random kids.
        clock.advance_secs(1);
        let new = rotate(&authority).await.kid;
        // The new key signs from a day and a minute on; the old key's last token lives a day
        // more, and a JWKS fetched then is kept a day more: published three days (and the
        // minute) after the rotation.
        clock.advance_secs(DAY + NODE);
        // Housekeeping dates the old key's retirement; the one key it makes is the first of
        // ES256, which had none.
        let made = authority.rotate_signing_keys_when_due().await.unwrap();
        assert_eq!(made.len(), 1, "{made:?}");
        assert!(!published_kids(&authority).await.contains(&made[0]));
        clock.advance_secs(2 * DAY - 1);
        authority.key_cache().forget();
        assert_eq!(published_kids(&authority).await, [old.clone(), new.clone()]);
        clock.advance_secs(1);
        authority.key_cache().forget();
        assert_eq!(published_kids(&authority).await, [new]);
    }

    #[tokio::test]
    async fn a_key_made_on_another_node_is_used_once_this_nodes_copy_is_stale() {
        let clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000)));
        let store = Arc::new(MemoryStore::new());
        let config = AuthorityConfig::new("http://as.test", ServerKey::generate(&SystemRandom));
        let node = |config: AuthorityConfig| {
            Authority::new(store.clone(), clock.clone(), Arc::new(SystemRandom), config)
        };
        let (this, other) = (node(config.clone()), node(config));
        assert_eq!(published_kids(&this).await, Vec::<String>::new());
        let made = other.rotate_signing_keys_when_due().await.unwrap();
        clock.advance_secs(KEY_CACHE_TTL_SECS - 1);
        assert_eq!(published_kids(&this).await, Vec::<String>::new());
        clock.advance_secs(1);
        assert_eq!(published_kids(&this).await, made[..1]);
        assert_eq!(signing_kid(&this).await, made[0]);
    }

    #[tokio::test]
    async fn with_a_short_jwks_cache_lifetime_a_stale_node_publishes_a_new_key_before_any_node_signs_with_it(
    ) {
        const C: u64 = 10;
        let clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000)));
        let store = Arc::new(MemoryStore::new());
        let mut config = AuthorityConfig::new("http://as.test", ServerKey::generate(&SystemRandom));
        config.key_schedule.jwks_cache_lifetime_secs = C;
        assert_eq!(config.key_schedule.node_cache_secs(), C, "not the minute");
        let node = |config: AuthorityConfig| {
            Authority::new(store.clone(), clock.clone(), Arc::new(SystemRandom), config)
        };
        let (stale, rotating) = (node(config.clone()), node(config));
        let old = rotate(&rotating).await.kid;
        // The stale node reads the keys a second before the rotation, and keeps its copy.
        clock.advance_secs(1);
        assert_eq!(published_kids(&stale).await, std::slice::from_ref(&old));
        clock.advance_secs(1);
        let new = rotate(&rotating).await;
        assert_eq!(new.sign_from, new.publish_at.plus_secs(C + C));
        // Until its copy lapses (a node cache after it was read), the stale node's JWKS lacks
        // the new key, and a client may keep that JWKS for C more: no node signs with the new
        // key until then.
        clock.advance_secs(C - 2);
        assert_eq!(published_kids(&stale).await, std::slice::from_ref(&old));
        clock.advance_secs(1);
        assert_eq!(published_kids(&stale).await, [old.clone(), new.kid.clone()]);
        // The last JWKS without it was fetched a second ago, at R + C - 2, and lapses at
        // R + 2C - 2; the new key signs from R + 2C, on every node.
        clock.advance_secs(C);
        for node in [&stale, &rotating] {
            node.key_cache().forget();
            assert_eq!(signing_kid(node).await, old);
        }
        clock.advance_secs(1);
        for node in [&stale, &rotating] {
            node.key_cache().forget();
            assert_eq!(signing_kid(node).await, new.kid, "both switch at R + C + N");
        }
    }

    #[tokio::test]
    async fn retiring_the_only_signing_key_is_refused() {
        let (authority, clock) = authority();
        let only = rotate(&authority).await.kid;
        assert!(matches!(
            authority.retire_signing_key(&only).await,
            Err(SigningKeysError::LastSigningKey(_))
        ));
        // A pending key does not sign yet: retiring the current one would leave a gap.
        let pending = rotate(&authority).await.kid;
        assert!(matches!(
            authority.retire_signing_key(&only).await,
            Err(SigningKeysError::LastSigningKey(_))
        ));
        clock.advance_secs(DAY + NODE);
        // Other nodes may sign with it for a node cache more; then its last token lives a day,
        // and a JWKS fetched then is kept a day.
        let gone_at = authority.retire_signing_key(&only).await.unwrap();
        assert_eq!(gone_at, authority.now().plus_secs(NODE + 2 * DAY));
        assert_eq!(signing_kid(&authority).await, pending);
        assert!(matches!(
            authority.retire_signing_key(&only).await,
            Err(SigningKeysError::AlreadyRetired(_))
        ));
        assert!(matches!(
            authority.retire_signing_key("no-such-key").await,
            Err(SigningKeysError::UnknownKey(_))
        ));
    }

    #[tokio::test]
    async fn scheduled_rotation_happens_once_per_period() {
        let (authority, clock) = authority();
        let first = authority.rotate_signing_keys_when_due().await.unwrap()[0].clone();
        clock.advance_secs(90 * DAY - 1);
        assert_eq!(
            authority.rotate_signing_keys_when_due().await.unwrap(),
            Vec::<String>::new()
        );
        clock.advance_secs(1);
        let second = authority.rotate_signing_keys_when_due().await.unwrap()[0].clone();
        // Pending: no second rotation while it waits for its turn, nor after it signs.
        assert_eq!(
            authority.rotate_signing_keys_when_due().await.unwrap(),
            Vec::<String>::new()
        );
        clock.advance_secs(DAY + NODE);
        assert_eq!(
            authority.rotate_signing_keys_when_due().await.unwrap(),
            Vec::<String>::new()
        );
        authority.key_cache().forget();
        assert_eq!(signing_kid(&authority).await, second);
        let statuses = authority.signing_key_statuses().await.unwrap();
        let states: Vec<(String, KeyState)> = statuses
            .into_iter()
            .filter(|s| s.alg == "RS256")
            .map(|s| (s.kid, s.state))
            .collect();
        assert_eq!(
            states,
            [
                (first, KeyState::Retiring),
                (second.clone(), KeyState::Signing)
            ]
        );
        clock.advance_secs(90 * DAY - 1);
        assert_eq!(
            authority.rotate_signing_keys_when_due().await.unwrap(),
            Vec::<String>::new()
        );
        clock.advance_secs(1);
        assert_eq!(
            authority
                .rotate_signing_keys_when_due()
                .await
                .unwrap()
                .len(),
            2,
            "each algorithm's key rotates on its own schedule"
        );
    }
}
