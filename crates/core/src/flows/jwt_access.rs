//! JWT access tokens at both ends: minting one for a client that asks for them, and the
//! resource server's check of one — its signature under a published key, its issuer, audience
//! and times, and the in-memory revocation state — without reading a row
//! (docs/openid-connect.md, "JWT access tokens").
//!
//! Two per-process caches keep the check cheap. The public keys, by kid, are read from the store
//! once a node cache (a minute, or the JWKS cache lifetime if shorter), or on a kid this process
//! does not know — at most once per [`KEY_REFETCH_INTERVAL_SECS`], so that tokens with made-up
//! kids cannot turn every request into a read. And a token whose signature was verified is
//! remembered, by its own text, until it expires, so that an API client calling with the same
//! token pays the RSA verification once: what is remembered is only that the signature holds;
//! expiry and revocation are judged on every request.
//!
//! Remembered by its text rather than by its SHA-256: a hit then costs a fast hash of the text and
//! one comparison of it, where the SHA-256 of a 900-byte token was a sixth of an API call's own
//! work. The comparison is exact, so a token that differs from a remembered one anywhere (a
//! tampered payload under a genuine signature) is not found, and is verified as any other. The
//! text is wiped when it leaves the cache; holding it adds nothing to what this process's memory
//! already gives away, as the keys that sign such tokens are in it too.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use lru::LruCache;
use tessera_proto::{AccessToken, OAuthError, Scope};

use crate::authority::{ahead_of_clock, Authority};
use crate::flows::resource::{ResourceError, VerifiedAccess};
use crate::model::{AccessTokenRecord, Client, Grant, SigningAlg};
use crate::operations::metrics::Cache;
use crate::operations::signing_keys::is_published;
use crate::policy::MAX_ACCESS_TOKEN_TTL_SECS;
use crate::store::StoreError;
use crate::time::Timestamp;
use crate::tokens::access_token::{MAX_SCOPE_BYTES, RANDOM_BYTES};
use crate::tokens::hash::{secret_hash, Hash};
use crate::tokens::jwt_access_token::{
    access_token_kid, subject_ids, verify, JwtAccessClaims, JwtAccessToken, TYP,
};

/// The shortest time between two reads of the keys: a kid this process does not know is looked
/// up at most this often.
pub const KEY_REFETCH_INTERVAL_SECS: u64 = 5;
/// Verified tokens remembered at most (about 1.3 KB each: the token's text and its claims).
const VERIFIED_ENTRIES: usize = 20_000;

/// A remembered token's text, the key of its entry, wiped when the entry is dropped.
#[derive(PartialEq, Eq, Hash)]
struct RememberedText(Box<str>);

impl std::borrow::Borrow<str> for RememberedText {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl Drop for RememberedText {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// A published key's public half, ready to verify with.
struct VerifyingKey {
    decoding: Arc<jsonwebtoken::DecodingKey>,
    retire_at: Option<Timestamp>,
}

/// The published keys as last read.
#[derive(Default)]
struct KeySet {
    read_at: Option<Timestamp>,
    keys: HashMap<String, VerifyingKey>,
}

/// The per-process state of JWT verification.
pub(crate) struct JwtVerifier {
    keys: RwLock<Arc<KeySet>>,
    /// Held while the keys are read: one read at a time, and a token whose kid is unknown waits
    /// for the read in flight (which may bring its key) rather than being refused beside it.
    reading: tokio::sync::Mutex<()>,
    /// Reads of the keys so far, for tests and measurements.
    reads: AtomicU64,
    verified: Mutex<LruCache<RememberedText, VerifiedAccess>>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("reads", &self.reads.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Default for JwtVerifier {
    fn default() -> Self {
        Self {
            keys: RwLock::default(),
            reading: tokio::sync::Mutex::new(()),
            reads: AtomicU64::new(0),
            verified: Mutex::new(LruCache::new(
                NonZeroUsize::new(VERIFIED_ENTRIES).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }
}

impl JwtVerifier {
    fn key_set(&self) -> Arc<KeySet> {
        Arc::clone(&self.keys.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The key named `kid` if it is published at `now`, and whether the set, kept for
    /// `ttl_secs`, is due a read.
    fn lookup(
        &self,
        kid: &str,
        now: Timestamp,
        ttl_secs: u64,
    ) -> (Option<Arc<jsonwebtoken::DecodingKey>>, bool) {
        let set = self.key_set();
        let stale = set
            .read_at
            .is_none_or(|read_at| now < read_at || now >= read_at.plus_secs(ttl_secs));
        let key = set
            .keys
            .get(kid)
            .filter(|k| k.retire_at.is_none_or(|retire_at| now < retire_at))
            .map(|k| Arc::clone(&k.decoding));
        (key, stale)
    }

    /// Whether the keys were read so lately that an unknown kid is not worth another read: a
    /// flood of bogus kids costs one read an interval.
    fn read_lately(&self, now: Timestamp) -> bool {
        self.key_set().read_at.is_some_and(|read_at| {
            now >= read_at && now < read_at.plus_secs(KEY_REFETCH_INTERVAL_SECS)
        })
    }

    fn replace(&self, set: KeySet) {
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
    }

    /// Drops the keys, so that the next token is checked against a fresh read (a key was just
    /// made here).
    pub(crate) fn forget_keys(&self) {
        self.replace(KeySet::default());
    }

    /// How many times the keys were read.
    #[cfg(test)]
    pub(crate) fn key_reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    fn remembered(&self, token: &str) -> Option<VerifiedAccess> {
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        let found = verified.get(token).cloned();
        drop(verified);
        crate::operations::metrics::cache_lookup(Cache::JwtSignature, found.is_some());
        found
    }

    fn remember(&self, token: &str, verified: &VerifiedAccess) {
        let mut cache = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        cache.put(RememberedText(token.into()), verified.clone());
    }
}

impl Authority {
    /// A JWT access token for `grant`, issued at `now` for the client's lifetime (at most
    /// [`MAX_ACCESS_TOKEN_TTL_SECS`]), with `random` as its random part (derived for a
    /// rotation's successor, so that a replay rebuilds the same token), bound to the DPoP key
    /// `dpop_jkt` names if given. Signed before the store's write, never inside it.
    pub(crate) async fn mint_jwt_access_token(
        &self,
        client: &Client,
        grant: &Grant,
        scope: &Scope,
        now: Timestamp,
        random: &[u8; RANDOM_BYTES],
        dpop_jkt: Option<&str>,
    ) -> Result<AccessToken, OAuthError> {
        let scope_text = scope.to_string();
        if scope_text.len() > MAX_SCOPE_BYTES {
            return Err(OAuthError::InvalidScope);
        }
        let claims = JwtAccessToken {
            issuer: &self.config().issuer,
            org_id: &grant.org_id,
            user_id: &grant.user_id,
            client_id: &client.client_id,
            grant_id: &grant.id,
            scope,
            issued_at: now,
            ttl_secs: client.access_token_ttl_secs.min(MAX_ACCESS_TOKEN_TTL_SECS),
            dpop_jkt,
        }
        .claims(&self.config().server_key, random);
        // Under the key that signed at `now`: a replay inside the retry window rebuilds the very
        // token its rotation answered, even across a key change.
        Ok(AccessToken::new(
            self.sign_jws_as(SigningAlg::Rs256, TYP, now, &claims)
                .await?,
        ))
    }

    /// A JWT access token, checked: signature under a published key (RS256 only), `typ`,
    /// issuer, audience, subject, and — on every request, remembered signature or not — expiry,
    /// issue time (with the skew opaque tokens get) and revocation of the token or its grant.
    pub(crate) async fn jwt_access_token(
        &self,
        value: &str,
        now: Timestamp,
    ) -> Result<VerifiedAccess, ResourceError> {
        let verified = match self.jwt_verifier().remembered(value) {
            Some(verified) => verified,
            None => {
                let verified = self
                    .issued_jwt_access_token(value, secret_hash(value))
                    .await?
                    .ok_or(ResourceError::InvalidSession)?;
                // Only a token that could still be used is worth remembering.
                if now < verified.record.expires_at {
                    self.jwt_verifier().remember(value, &verified);
                }
                verified
            }
        };
        let record = &verified.record;
        if now >= record.expires_at
            || ahead_of_clock(record.issued_at, now)
            || self.guard().grant_revoked(&record.grant_id)
            || self.guard().token_revoked(&record.token_hash)
        {
            return Err(ResourceError::InvalidSession);
        }
        Ok(verified)
    }

    /// What a JWT access token grants, if this server issued it: its signature holds under a
    /// published key and its claims are this server's. Expired and revoked ones included (the
    /// revocation endpoint revokes them again, as a success that changes nothing).
    pub(crate) async fn issued_jwt_access_token(
        &self,
        value: &str,
        token_hash: Hash,
    ) -> Result<Option<VerifiedAccess>, StoreError> {
        let Some(kid) = access_token_kid(value) else {
            return Ok(None);
        };
        let Some(key) = self.verifying_key(&kid).await? else {
            return Ok(None);
        };
        Ok(verify(value, &key).and_then(|claims| self.accepted_claims(claims, token_hash)))
    }

    /// What a genuinely signed token grants, if it was issued here for this server's API.
    fn accepted_claims(&self, claims: JwtAccessClaims, token_hash: Hash) -> Option<VerifiedAccess> {
        let issuer = &self.config().issuer;
        if claims.iss != *issuer || claims.aud != *issuer || claims.iat > claims.exp {
            return None;
        }
        // Every token of this server lives at most this long; a longer one was not made here.
        let longest = i64::try_from(MAX_ACCESS_TOKEN_TTL_SECS).ok()?;
        if claims.exp - claims.iat > longest {
            return None;
        }
        let (org_id, user_id) = subject_ids(issuer, &claims.sub)?;
        let record = AccessTokenRecord {
            token_hash,
            grant_id: claims.tessera_grant,
            client_id: claims.client_id,
            user_id: user_id.to_owned(),
            org_id: org_id.to_owned(),
            scope: Scope::parse(&claims.scope)?,
            issued_at: Timestamp(claims.iat.checked_mul(1000)?),
            expires_at: Timestamp(claims.exp.checked_mul(1000)?),
            revoked_at: None,
        };
        Some(VerifiedAccess {
            record: Arc::new(record),
            jti: Some(claims.jti),
            dpop_jkt: claims.cnf.map(|cnf| cnf.jkt),
        })
    }

    /// The public key a kid names, if it is published: from this process's copy, read again
    /// once it is a node cache old (as the signing side's) or when the kid is unknown, at most
    /// once an interval.
    async fn verifying_key(
        &self,
        kid: &str,
    ) -> Result<Option<Arc<jsonwebtoken::DecodingKey>>, StoreError> {
        let now = self.now();
        let ttl_secs = self.config().key_schedule.node_cache_secs();
        let verifier = self.jwt_verifier();
        let (known, stale) = verifier.lookup(kid, now, ttl_secs);
        if let Some(key) = known {
            if !stale {
                return Ok(Some(key));
            }
            // Due a read: one request reads, the others go on with the copy they have.
            let Ok(_reading) = verifier.reading.try_lock() else {
                return Ok(Some(key));
            };
            return match self.read_verifying_keys(now).await {
                Ok(set) => {
                    verifier.replace(set);
                    Ok(verifier.lookup(kid, now, ttl_secs).0)
                }
                // The copy this process has still verifies what it verified a minute ago.
                Err(error) => {
                    tracing::warn!(%error, "the signing keys could not be read; using the last read");
                    Ok(Some(key))
                }
            };
        }
        // An unknown kid: after the read in flight, if any, which may have brought it.
        let _reading = verifier.reading.lock().await;
        let now = self.now();
        if let (Some(key), _) = verifier.lookup(kid, now, ttl_secs) {
            return Ok(Some(key));
        }
        if verifier.read_lately(now) {
            return Ok(None);
        }
        let set = self.read_verifying_keys(now).await?;
        verifier.replace(set);
        Ok(verifier.lookup(kid, now, ttl_secs).0)
    }

    async fn read_verifying_keys(&self, now: Timestamp) -> Result<KeySet, StoreError> {
        self.jwt_verifier().reads.fetch_add(1, Ordering::Relaxed);
        let server_key = &self.config().server_key;
        let mut keys = HashMap::new();
        for key in self.store().signing_keys().await? {
            if key.signing_alg() != Some(SigningAlg::Rs256) || !is_published(&key, now) {
                continue;
            }
            let jwk = match key.public_jwk(server_key) {
                Ok(jwk) => jwk,
                Err(error) => {
                    tracing::error!(%error, "a signing key is unusable; its tokens are refused");
                    continue;
                }
            };
            let Some(Ok(decoding)) = jwk
                .rsa_components()
                .map(|(n, e)| jsonwebtoken::DecodingKey::from_rsa_components(n, e))
            else {
                continue;
            };
            keys.insert(
                key.kid,
                VerifyingKey {
                    decoding: Arc::new(decoding),
                    retire_at: key.retire_at,
                },
            );
        }
        Ok(KeySet {
            read_at: Some(now),
            keys,
        })
    }
}

#[cfg(test)]
mod tests {
    //! JWT access tokens on a fixed clock and an in-memory store.

    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use tessera_proto::{AccessToken, ExposeSecret, PresentedToken};

    use super::*;
    use crate::authority::Source;
    use crate::operations::admin::ClientSettings;
    use crate::time::ManualClock;

    const USER: &str = "ada@example.com";

    struct World {
        authority: Authority,
        clock: Arc<ManualClock>,
        access_token: String,
        refresh_token: String,
    }

    async fn world() -> World {
        let (authority, clock) = crate::authority::test_authority(USER, "password one").await;
        authority.rotate_signing_keys_when_due().await.unwrap();
        let operator = authority.operator();
        let settings = ClientSettings {
            name: Some("App".into()),
            redirect_uris: Some(vec!["https://app.example/cb".into()]),
            jwt_access_tokens: Some(true),
            access_token_ttl_secs: Some(600),
            ..ClientSettings::default()
        };
        let (client, _) = operator.create_client(false, &settings).await.unwrap();
        let issued = operator
            .mint_for(&client.client_id, USER, "api refresh_token")
            .await
            .unwrap();
        World {
            authority,
            clock,
            access_token: issued.access_token.expose_secret().to_owned(),
            refresh_token: issued.refresh_token.unwrap().expose_secret().to_owned(),
        }
    }

    impl World {
        /// Whether the API refuses the token as an invalid session (and not otherwise).
        async fn refused(&self, token: &str) -> bool {
            self.accepted(token).await.err() == Some(ResourceError::InvalidSession)
        }

        async fn accepted(&self, token: &str) -> Result<Arc<AccessTokenRecord>, ResourceError> {
            self.authority
                .api_caller(Some(&AccessToken::new(token)), None)
                .await
                .map(|caller| caller.token)
        }

        /// The token's header and claims as JSON, and its signature, for forging variants.
        fn parts(&self) -> (serde_json::Value, serde_json::Value, String) {
            let mut parts = self.access_token.split('.');
            let json = |part: Option<&str>| -> serde_json::Value {
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part.unwrap()).unwrap()).unwrap()
            };
            let header = json(parts.next());
            let claims = json(parts.next());
            (header, claims, parts.next().unwrap().to_owned())
        }
    }

    fn encode_json(value: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
    }

    #[tokio::test]
    async fn a_jwt_access_token_works_until_it_expires_and_names_its_grant_and_user() {
        let world = world().await;
        let (header, claims, _) = world.parts();
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(header["alg"], "RS256");
        let record = world.accepted(&world.access_token).await.unwrap();
        assert_eq!(record.client_id, claims["client_id"]);
        assert_eq!(record.grant_id, claims["tessera_grant"]);
        assert_eq!(
            claims["sub"],
            format!("http://as.test/id/{}/{}", record.org_id, record.user_id)
        );
        world.clock.advance_secs(599);
        assert!(world.accepted(&world.access_token).await.is_ok());
        world.clock.advance_secs(1);
        assert!(world.refused(&world.access_token).await);
    }

    #[tokio::test]
    async fn bulk_minted_tokens_of_a_jwt_client_are_jwts_that_work() {
        let world = world().await;
        let (_, claims, _) = world.parts();
        let client_id = claims["client_id"].as_str().unwrap();
        let minted = world.authority.operator();
        let minted = minted
            .mint_many(client_id, USER, "api", 4, 4)
            .await
            .unwrap();
        assert_eq!(minted.len(), 4);
        for response in minted {
            let token = response.access_token.expose_secret().to_owned();
            assert!(token.split('.').count() == 3 && world.accepted(&token).await.is_ok());
        }
    }

    #[tokio::test]
    async fn a_token_issued_ahead_of_the_clock_is_refused_as_an_opaque_one_is() {
        let world = world().await;
        // The clock steps back further than the allowed skew.
        world.clock.advance_millis(-31_000);
        assert!(world.refused(&world.access_token).await);
    }

    #[tokio::test]
    async fn revoking_the_token_or_its_grant_refuses_it_on_the_next_request() {
        let world = world().await;
        let (_, claims, _) = world.parts();
        let client_id = claims["client_id"].as_str().unwrap();
        let second = world
            .authority
            .operator()
            .mint_for(client_id, USER, "api refresh_token")
            .await
            .unwrap();
        let second_access = second.access_token.expose_secret().to_owned();
        let revoke = |token: String| async {
            let presented = PresentedToken::new(token);
            let source = Source::default();
            let revoked = world.authority.revoke(&presented, &source).await;
            revoked.unwrap()
        };

        revoke(world.access_token.clone()).await;
        assert!(world.refused(&world.access_token).await);
        // Only that token: another grant's goes on working.
        assert!(world.accepted(&second_access).await.is_ok());

        let second_refresh = second.refresh_token.unwrap().expose_secret().to_owned();
        revoke(second_refresh).await;
        assert!(world.refused(&second_access).await);
    }

    #[tokio::test]
    async fn forged_and_tampered_tokens_are_refused() {
        let world = world().await;
        let (header, claims, signature) = world.parts();
        let mut longer = claims.clone();
        longer["exp"] = serde_json::json!(claims["exp"].as_i64().unwrap() + 3600);
        let tampered = format!(
            "{}.{}.{signature}",
            encode_json(&header),
            encode_json(&longer)
        );
        let none_header = serde_json::json!({"alg": "none", "typ": "at+jwt", "kid": header["kid"]});
        let alg_none = format!("{}.{}.", encode_json(&none_header), encode_json(&claims));
        // The classic confusion: HS256 keyed with the RSA public key, which anyone can fetch.
        let jwk = world
            .authority
            .published_jwks()
            .await
            .unwrap()
            .into_iter()
            .find(|jwk| jwk.rsa_components().is_some())
            .unwrap();
        let mut hs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        hs_header.typ = Some("at+jwt".into());
        hs_header.kid = Some(jwk.kid.clone());
        let public_bytes = URL_SAFE_NO_PAD
            .decode(jwk.rsa_components().unwrap().0)
            .unwrap();
        let hs256 = jsonwebtoken::encode(
            &hs_header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(&public_bytes).unwrap(),
        )
        .unwrap();
        let as_id_token = {
            let mut typ_jwt = header.clone();
            typ_jwt["typ"] = "JWT".into();
            format!(
                "{}.{}.{signature}",
                encode_json(&typ_jwt),
                encode_json(&claims)
            )
        };
        let huge = format!(
            "{}.{}.{signature}",
            encode_json(&header),
            "A".repeat(10_000)
        );
        // Remembered first, so that the tokens that share its signature are looked up beside it.
        assert!(world.accepted(&world.access_token).await.is_ok());
        for (what, token) in [
            ("tampered payload", tampered),
            ("alg none", alg_none),
            ("HS256 keyed with the public key", hs256),
            ("typ JWT", as_id_token),
            ("10 KB", huge),
            ("garbage", "a.b.c".to_owned()),
        ] {
            assert!(world.refused(&token).await, "{what}");
        }
        assert!(world.accepted(&world.access_token).await.is_ok());
    }

    #[tokio::test]
    async fn genuinely_signed_tokens_not_made_for_this_api_are_refused() {
        let world = world().await;
        let (_, claims, _) = world.parts();
        let variant = |field: &str, value: serde_json::Value| {
            let mut claims = claims.clone();
            claims[field] = value;
            claims
        };
        let lifetime = i64::try_from(MAX_ACCESS_TOKEN_TTL_SECS).unwrap();
        let too_long = claims["iat"].as_i64().unwrap() + lifetime + 1;
        for (what, claims, typ) in [
            ("as signed", claims.clone(), TYP),
            (
                "another issuer",
                variant("iss", "http://other.test".into()),
                TYP,
            ),
            (
                "another audience",
                variant("aud", "http://other.test".into()),
                TYP,
            ),
            (
                "another issuer's user",
                variant("sub", "http://other.test/id/00D1/0051".into()),
                TYP,
            ),
            (
                "longer than any token lives",
                variant("exp", too_long.into()),
                TYP,
            ),
            ("an ID token", claims.clone(), "JWT"),
        ] {
            let token = world
                .authority
                .sign_jws_as(SigningAlg::Rs256, typ, world.authority.now(), &claims)
                .await
                .unwrap();
            let refused = world.refused(&token).await;
            assert_eq!(refused, what != "as signed", "{what}");
        }
    }

    #[tokio::test]
    async fn an_unknown_kid_reads_the_keys_at_most_once_an_interval() {
        let world = world().await;
        assert!(world.accepted(&world.access_token).await.is_ok());
        let reads = world.authority.jwt_verifier().key_reads();
        let (mut header, claims, signature) = world.parts();
        header["kid"] = "0123456789abcdef01234567".into();
        let bogus = format!(
            "{}.{}.{signature}",
            encode_json(&header),
            encode_json(&claims)
        );
        let refused_ten_times = || async {
            for _ in 0..10 {
                assert!(world.refused(&bogus).await);
            }
        };
        // The keys were read for the genuine token a moment ago: not again.
        refused_ten_times().await;
        assert_eq!(world.authority.jwt_verifier().key_reads(), reads);
        world.clock.advance_secs(KEY_REFETCH_INTERVAL_SECS);
        refused_ten_times().await;
        assert_eq!(world.authority.jwt_verifier().key_reads(), reads + 1);
        assert!(world.accepted(&world.access_token).await.is_ok());
    }

    /// At a start (or once a kid is new here) the first requests arrive together: the ones
    /// beside the request reading the keys wait for that read instead of being refused (a
    /// seconds-long benchmark once saw three 401s for genuine tokens that way).
    #[tokio::test]
    async fn a_token_arriving_while_the_keys_are_read_waits_for_the_read_instead_of_a_401() {
        let world = world().await;
        let verifier = world.authority.jwt_verifier();
        verifier.forget_keys();
        // A read in flight, as the first request of a burst makes it.
        let reading = verifier.reading.lock().await;
        let waiting = {
            let authority = world.authority.clone();
            let token = world.access_token.clone();
            tokio::spawn(async move {
                authority
                    .api_caller(Some(&AccessToken::new(token)), None)
                    .await
                    .map(|caller| caller.token.user_id.clone())
            })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "it waits for the read in flight");
        let reads = verifier.key_reads();
        let set = world
            .authority
            .read_verifying_keys(world.authority.now())
            .await
            .unwrap();
        verifier.replace(set);
        drop(reading);
        assert!(waiting.await.unwrap().is_ok());
        // The read it waited for was enough: it read nothing itself.
        assert_eq!(verifier.key_reads(), reads + 1);
    }

    #[tokio::test]
    async fn a_remembered_signature_does_not_outlive_a_revocation() {
        let world = world().await;
        // Verified once: remembered.
        assert!(world.accepted(&world.access_token).await.is_ok());
        let reads = world.authority.jwt_verifier().key_reads();
        assert!(world.accepted(&world.access_token).await.is_ok());
        assert_eq!(world.authority.jwt_verifier().key_reads(), reads);
        world
            .authority
            .revoke(
                &PresentedToken::new(world.refresh_token.clone()),
                &Source::default(),
            )
            .await
            .unwrap();
        assert!(world.accepted(&world.access_token).await.is_err());
    }
}
