//! `grant_type=refresh_token` (RFC 6749 §6): rotation, the retry window, reuse detection
//! (docs/security.md, "Rotation" through "Reuse detection"; docs/salesforce-compatibility.md,
//! "Rotation", "Concurrent refreshes"; docs/decisions.md, "Derived successor pairs, not
//! sealed copies").
//!
//! The checks run in this order, each before anything is answered from the store's memory of
//! the family: the token must be this client's, its family live and within its policy, the
//! client still allowed refresh tokens, and the scope asked for no wider than granted. Only
//! then is a rotated-out token judged: a replay inside the retry window, a duplicate of a
//! refresh that has just committed, or reuse. A client in rotation audit mode has its reuse
//! answered instead of punished: a new pair, a `rotation_audit` event, nothing revoked (see
//! [`Authority::audit_rotation`], the one step where the modes part). Which of these a token
//! gets is decided by one pure function, [`crate::flows::rotation`], which this flow carries out
//! and the model checker of `crates/rotation-model` explores.
//!
//! From a source that has spent its failure budget (its next failure is answered 429), a
//! refresh does only what a valid one needs: a token of the earlier, unsigned format is not
//! looked up, a family this process knows revoked is refused without a read, and a token of a
//! revoked family writes no event. A family still live is read and judged as always, so a
//! valid refresh or replay is answered, and a rotated-out token still revokes its family:
//! reuse detection is never switched off by someone exhausting a shared address's budget
//! first (docs/security.md, "Throttling").
//!
//! A refusal says why on the server, never on the wire: every token that does not refresh is
//! answered `invalid_grant` / `expired access/refresh token`, as Salesforce answers it, and a
//! `refresh_refused` event names its [`RefreshRefusal`] (recorded off the request path and
//! bounded, see [`Authority::record_refusal`]). Reuse is recorded by its own `reuse_detected`
//! event and a duplicate by `concurrent_refresh_refused`: one event per request, never two.
//! A refresh answered with tokens records nothing more than before.
//!
//! Repeats are not written one by one: `reuse_detected` for a family already revoked and
//! `concurrent_refresh_refused` are written once per grant per window, with the count of the
//! rest (see [`crate::operations::audit_repeats`]). The revocation's own event always is.

use tessera_proto::{ClientSecret, ExposeSecret, OAuthError, RefreshToken, Scope, TokenResponse};

use crate::authority::{
    idle_expiry, still_allowed, Authority, IssuedTokens, Requester, Source, MAX_TOKEN_LEN,
};
use crate::flows::id_token::{IdTokenFor, NonceEcho};
use crate::flows::rotation::{
    admit, decide_after_lost_race, judge, Decision, FamilyView, Generation, Rules, TokenId,
};
use crate::model::{Client, EventKind, Family, Grant, User, FROM_ANOTHER_ADDRESS};
use crate::operations::metrics::RefreshOutcome as Counted;
use crate::store::{EventFilter, RefreshCommit, RefreshOutcome, StoreError};
use crate::time::Timestamp;
use crate::tokens::hash::secret_hash;
use crate::tokens::hash::Hash;
use crate::tokens::sealing::{has_signed_shape, signed_grant_id, Successor};

fn same(a: &Hash, b: Option<&Hash>) -> bool {
    b.is_some_and(|b| a.same(b))
}

/// The family as the rotation rules read it.
fn view(family: &Family) -> FamilyView<'_, Hash> {
    FamilyView {
        current: family.current.as_ref(),
        previous: family.previous.as_ref(),
        rotated_at: family.rotated_at,
        rotated_jkt: family.rotated_jkt.as_deref(),
        bound_jkt: family.grant.dpop_jkt.as_deref(),
        revoked: family.grant.revoked_at.is_some(),
    }
}

/// The client's settings the rotation rules read.
fn rules(client: &Client) -> Rules {
    Rules::new(
        client.rotates(),
        client.audits_rotation(),
        client.refresh_retry_window_secs,
    )
}

/// A refresh request, as the paths that answer it need it.
struct Presented<'a> {
    client: &'a Client,
    /// The refresh token in clear: a rotation derives its successor from it.
    value: &'a str,
    hash: Hash,
    secret: Option<&'a ClientSecret>,
    source: &'a Source,
    /// The source has spent its failure budget: do only what a valid refresh needs.
    shedding: bool,
    /// The thumbprint of the key the request's DPoP proof proved, if it carried one.
    dpop_jkt: Option<&'a str>,
}

/// A refresh's answer and the outcome it is counted under (the `outcome` label of
/// [`crate::operations::metrics::REFRESHES`]).
#[derive(Debug)]
pub(crate) struct RefreshAnswer {
    pub outcome: Counted,
    pub result: Result<TokenResponse, OAuthError>,
    /// Why it was refused, when the audit trail records it as `refresh_refused`.
    pub refused_because: Option<RefreshRefusal>,
}

/// A refresh answered with tokens, and how: rotated, refreshed or replayed.
struct Refreshed {
    outcome: Counted,
    response: TokenResponse,
}

/// Why a refresh token was refused, as a `refresh_refused` event's detail says it. On the wire
/// all but the last two are the same `invalid_grant` / `expired access/refresh token`, so
/// that a guesser learns nothing; the operator reads the difference here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefreshRefusal {
    /// Not a token this server could have issued: empty, too long, or of the signed format
    /// with a signature that does not verify (forged or garbled).
    Malformed,
    /// Well formed, but no family: a signed token whose grant is gone, or a token of the
    /// earlier format that matches none.
    UnknownToken,
    /// Its family is past the client's refresh token policy (lifetime or idle limit).
    Expired,
    /// Its family was revoked (by the user, an administrator, the approval limit, a reused
    /// code…). A rotated-out token of a revoked family is reuse instead: `reuse_detected`.
    Revoked,
    /// Issued to another client than the one presenting it (RFC 6749 §6).
    OtherClient,
    /// The client may no longer have refresh tokens (its scopes lost `refresh_token`).
    RefreshWithdrawn,
    /// A token rotated out of its family while the client did not rotate (rotation was
    /// switched off since): refused, nothing revoked.
    RotatedOut,
    /// The user the family belongs to is disabled (answered `inactive_user`).
    UserDisabled,
    /// A scope wider than the grant's was asked for (answered `invalid_scope`).
    ScopeWidened,
    /// The grant (or the rotation replayed) is bound to a DPoP key the request did not prove:
    /// refused, nothing revoked.
    DpopKeyMismatch,
}

impl RefreshRefusal {
    /// The event's detail: a fixed phrase, the same for every request refused for it.
    pub(crate) fn detail(self) -> &'static str {
        match self {
            Self::Malformed => "malformed token",
            Self::UnknownToken => "unknown token",
            Self::Expired => "expired under the refresh token policy",
            Self::Revoked => "revoked family",
            Self::OtherClient => "issued to another client",
            Self::RefreshWithdrawn => "client no longer allowed refresh tokens",
            Self::RotatedOut => "rotated out, client does not rotate",
            Self::UserDisabled => "user disabled",
            Self::ScopeWidened => "scope wider than granted",
            Self::DpopKeyMismatch => "DPoP proof missing or of another key",
        }
    }
}

/// A refused refresh, the outcome it is counted under and, when it is one the audit trail
/// records as `refresh_refused`, why. Refused by `?` (a store failure…), the outcome is read off
/// the error (see [`outcome_of_error`]) and nothing is recorded; the paths whose error does not
/// tell (a revoked family, reuse) say their outcome.
struct Refusal {
    outcome: Counted,
    error: OAuthError,
    reason: Option<RefreshRefusal>,
}

impl Refusal {
    fn counted(outcome: Counted, error: OAuthError) -> Self {
        Self {
            outcome,
            error,
            reason: None,
        }
    }

    /// `expired access/refresh token`, recorded with `reason`.
    fn because(reason: RefreshRefusal) -> Self {
        OAuthError::ExpiredRefreshToken.into_refusal(reason)
    }
}

/// An error a refresh is refused with, and why.
trait IntoRefusal {
    fn into_refusal(self, reason: RefreshRefusal) -> Refusal;
}

impl IntoRefusal for OAuthError {
    fn into_refusal(self, reason: RefreshRefusal) -> Refusal {
        Refusal {
            reason: Some(reason),
            ..self.into()
        }
    }
}

impl From<OAuthError> for Refusal {
    fn from(error: OAuthError) -> Self {
        Self {
            outcome: outcome_of_error(&error),
            error,
            reason: None,
        }
    }
}

impl From<StoreError> for Refusal {
    fn from(error: StoreError) -> Self {
        OAuthError::from(error).into()
    }
}

type Judged = Result<Refreshed, Refusal>;

impl From<Judged> for RefreshAnswer {
    fn from(judged: Judged) -> Self {
        match judged {
            Ok(Refreshed { outcome, response }) => Self {
                outcome,
                result: Ok(response),
                refused_because: None,
            },
            Err(Refusal {
                outcome,
                error,
                reason,
            }) => Self {
                outcome,
                result: Err(error),
                refused_because: reason,
            },
        }
    }
}

impl Authority {
    /// Answers a refresh and counts its outcome.
    pub(crate) async fn refresh(
        &self,
        client: &Client,
        presented: &RefreshToken,
        requested_scope: Option<&str>,
        requester: Requester<'_>,
        shedding: bool,
    ) -> Result<TokenResponse, OAuthError> {
        let RefreshAnswer {
            outcome,
            result,
            refused_because,
        } = self
            .decide_refresh(client, presented, requested_scope, requester, shedding)
            .await;
        crate::operations::metrics::refresh(outcome);
        // From a source that has spent its budget, the throttle's event stands for its
        // refusals, as for failed client authentications.
        if let Some(reason) = refused_because.filter(|_| !shedding) {
            self.record_refusal(&client.client_id, reason.detail(), requester.source);
        }
        result
    }

    /// A refresh's answer, with the outcome it is to be counted under.
    pub(crate) async fn decide_refresh(
        &self,
        client: &Client,
        presented: &RefreshToken,
        requested_scope: Option<&str>,
        requester: Requester<'_>,
        shedding: bool,
    ) -> RefreshAnswer {
        let value = presented.expose_secret();
        if value.is_empty() || value.len() > MAX_TOKEN_LEN {
            return Judged::Err(Refusal::because(RefreshRefusal::Malformed)).into();
        }
        let presented = Presented {
            client,
            value,
            hash: secret_hash(value),
            secret: requester.secret,
            source: requester.source,
            shedding,
            dpop_jkt: requester.dpop_jkt,
        };
        self.judge_refresh(&presented, requested_scope).await.into()
    }

    /// The refresh rules in the module's order, each a named step: the family the token names,
    /// this client's, not revoked, within its policy, the scope no wider; then the token's
    /// generation decides between a refresh, a rotated-out token and reuse.
    async fn judge_refresh(
        &self,
        presented: &Presented<'_>,
        requested_scope: Option<&str>,
    ) -> Judged {
        let client = presented.client;
        let grant_id = self.grant_id_of(presented).await?;
        if presented.shedding && self.guard().grant_revoked(&grant_id) {
            // Whatever the token, the answer is a refusal, and this source's is a 429: no read.
            return Err(revoked());
        }
        let now = self.now();
        let family = self.family_of(presented, &grant_id, now).await?;
        let grant = &family.grant;
        // RFC 6749 §6: the token must have been issued to this client. Another client's token
        // is refused and left alone.
        if grant.client_id != client.client_id {
            return Err(Refusal::because(RefreshRefusal::OtherClient));
        }
        // The grant's DPoP key, then whether the family is live (rotation::admit): someone who
        // holds the token but not the key is refused and revokes nothing.
        let rules = rules(client);
        let view = view(&family);
        let which = match admit(&view, &presented.hash, presented.dpop_jkt, &rules) {
            Ok(which) => which,
            Err(refused) => {
                return self
                    .not_current(refused, presented, &family, None, now, "replay")
                    .await
            }
        };
        refuse_family_past_its_policy(client, grant, now).map_err(Refusal::because)?;
        let scope = refreshed_scope(client, grant, requested_scope)
            .map_err(|error| error.into_refusal(RefreshRefusal::ScopeWidened))?;
        match judge(&view, which, presented.dpop_jkt, now, &rules) {
            Decision::Rotate | Decision::Refresh => {
                self.refresh_current(presented, &family, &scope, now).await
            }
            decision => {
                self.not_current(decision, presented, &family, Some(&scope), now, "replay")
                    .await
            }
        }
    }

    /// What the rotation rules decided for a token that is not (or no longer) the current one
    /// of a live family, or of a family that refuses it, done: the one place such a
    /// [`Decision`] becomes a replay, a revocation, an audit rotation or a refusal, with its
    /// event. Also what a refresh that lost the store's conditional write gets, on a fresh read
    /// (it never refreshes again from there). `scope` is `None` only for the decisions taken
    /// before the scope is known (a key mismatch, a revoked family), which answer no tokens.
    /// `replay_detail` names the path in a replay's event.
    async fn not_current(
        &self,
        decision: Decision,
        presented: &Presented<'_>,
        family: &Family,
        scope: Option<&Scope>,
        now: Timestamp,
        replay_detail: &str,
    ) -> Judged {
        let grant = &family.grant;
        let source = Some(presented.source);
        match (decision, scope) {
            (Decision::KeyMismatch, _) => Err(key_mismatch()),
            (Decision::Revoked { which }, _) => {
                Err(self.refuse_revoked_family(presented, grant, which).await)
            }
            (Decision::InProgress, _) => {
                // A duplicate of a refresh that has only just committed: simultaneous requests
                // that lost the race by a few milliseconds are not thieves.
                self.record_grant_once(EventKind::ConcurrentRefreshRefused, grant, "", source)
                    .await;
                Err(OAuthError::TokenRequestInProgress.into())
            }
            (Decision::Reuse { which }, _) => {
                let detail = match which {
                    Generation::Older => "family revoked (old generation)",
                    Generation::Previous | Generation::Current => "family revoked",
                };
                Err(self.reuse(grant, detail, now, presented).await)
            }
            (Decision::Audit { .. }, Some(scope)) => {
                self.audit_rotation(presented, family, scope, now).await
            }
            (Decision::Replay, Some(scope)) => {
                self.replay(presented, family, scope, replay_detail).await
            }
            // Reuse detection belongs to rotation: a token rotated out before the client stopped
            // rotating is refused, nothing else. (And without a scope, nothing is answered.)
            (
                Decision::RotatedOut
                | Decision::Rotate
                | Decision::Refresh
                | Decision::Audit { .. }
                | Decision::Replay,
                _,
            ) => Err(Refusal::because(RefreshRefusal::RotatedOut)),
        }
    }

    /// The previous token inside the retry window: the pair its rotation issued, rebuilt; or,
    /// when the rotation was made by an earlier version whose pair cannot be rebuilt, "already
    /// being processed": never punished as reuse inside its window.
    async fn replay(
        &self,
        presented: &Presented<'_>,
        family: &Family,
        scope: &Scope,
        replay_detail: &str,
    ) -> Judged {
        let grant = &family.grant;
        let source = Some(presented.source);
        match self.replay_within_window(presented, family, scope).await? {
            Some(response) => {
                let detail = self.replay_detail(grant, presented, replay_detail).await;
                self.record_grant(EventKind::RetryReplayed, grant, &detail, source)
                    .await;
                Ok(Refreshed {
                    outcome: Counted::Replayed,
                    response,
                })
            }
            None => {
                self.record_grant_once(EventKind::ConcurrentRefreshRefused, grant, "", source)
                    .await;
                Err(OAuthError::TokenRequestInProgress.into())
            }
        }
    }

    /// The grant whose family the presented token belongs to. The token names its family,
    /// under the server key's signature: a forged or garbled token is refused without a read. A
    /// token of the earlier, unsigned format is found by its hash.
    async fn grant_id_of(&self, presented: &Presented<'_>) -> Result<String, Refusal> {
        match signed_grant_id(&self.config().server_key, presented.value) {
            Some(id) => Ok(id.to_owned()),
            // Mostly guesses: from a source that has spent its budget, not worth a read.
            None if presented.shedding => Err(Refusal::because(RefreshRefusal::Malformed)),
            None => match self.store().legacy_refresh_grant(&presented.hash).await? {
                Some(id) => Ok(id),
                // Of the signed format, it would have verified: forged or garbled.
                None if has_signed_shape(presented.value) => {
                    Err(Refusal::because(RefreshRefusal::Malformed))
                }
                None => Err(Refusal::because(RefreshRefusal::UnknownToken)),
            },
        }
    }

    /// The family of `grant_id`, from the cache where it shows the presented token as current,
    /// otherwise from the store.
    async fn family_of(
        &self,
        presented: &Presented<'_>,
        grant_id: &str,
        now: Timestamp,
    ) -> Result<Family, Refusal> {
        // The cached family decides only what the store's conditional update will check again:
        // that the token is the current one of a live family. Anything else is judged on a
        // fresh read, so a stale entry never refuses or punishes.
        let cached = self
            .guard()
            .family(grant_id)
            .filter(|f| self.may_refresh(presented.client, f, &presented.hash, now));
        crate::operations::metrics::cache_lookup(
            crate::operations::metrics::Cache::Family,
            cached.is_some(),
        );
        if let Some(family) = cached {
            return Ok(family);
        }
        let Some(family) = self.store().family(grant_id).await? else {
            return Err(Refusal::because(RefreshRefusal::UnknownToken));
        };
        if family.grant.revoked_at.is_none() {
            self.guard().keep_family(family.clone());
        }
        Ok(family)
    }

    /// A token of a revoked family is refused; presenting one that was not the family's
    /// current token to a rotating client is recorded as reuse, once per window (the family
    /// is revoked already: these are repeats), and not at all from a source answered 429.
    async fn refuse_revoked_family(
        &self,
        presented: &Presented<'_>,
        grant: &Grant,
        which: Generation,
    ) -> Refusal {
        if which != Generation::Current && presented.client.rotates() && !presented.shedding {
            self.record_grant_once(
                EventKind::ReuseDetected,
                grant,
                "family already revoked",
                Some(presented.source),
            )
            .await;
        }
        if which == Generation::Current || !presented.client.rotates() {
            return revoked();
        }
        // A rotated-out token of a revoked family: the `reuse_detected` event is its record.
        Refusal::counted(Counted::Revoked, OAuthError::ExpiredRefreshToken)
    }

    /// The family's current token: a new access token (and, rotating, a successor pair),
    /// answered once the store's conditional update has committed it.
    async fn refresh_current(
        &self,
        presented: &Presented<'_>,
        family: &Family,
        scope: &Scope,
        now: Timestamp,
    ) -> Judged {
        let client = presented.client;
        let grant = &family.grant;
        let user = self
            .active_user(&grant.user_id)
            .await
            .map_err(refused_if_disabled)?;
        let response = if client.rotates() {
            self.successor_response(
                presented,
                presented.value,
                grant,
                &user,
                scope,
                now,
                presented.dpop_jkt,
            )
            .await?
        } else {
            let access_token = self
                .mint_access_token(
                    client,
                    grant,
                    scope,
                    now,
                    &self.random_part(),
                    presented.dpop_jkt,
                )
                .await?;
            self.token_response(IssuedTokens {
                client,
                user: &user,
                scope,
                access_token,
                refresh_token: None,
                issued_at: now,
                presented_secret: presented.secret,
                dpop_jkt: presented.dpop_jkt,
            })
        };
        let (kind, outcome) = if client.rotates() {
            (EventKind::Rotated, Counted::Rotated)
        } else {
            (EventKind::Refreshed, Counted::Refreshed)
        };
        let applied = Applied {
            family,
            expected: presented.hash,
            kind,
            detail: "",
        };
        let (written, response) = self
            .sign_and_commit(presented, applied, scope, &user, response, now)
            .await?;
        match written {
            RefreshOutcome::Committed => Ok(Refreshed { outcome, response }),
            RefreshOutcome::Stale => {
                self.lost_refresh_race(presented, &grant.id, scope, now)
                    .await
            }
        }
    }

    /// The end of every refresh answered with tokens: the ID token signed (before the
    /// conditional update, so that a failure to sign rotates nothing), then the store's
    /// conditional write on the family's current token as read, with its event; on commit the
    /// cache follows the family, and if the family moved since the read it forgets it.
    async fn sign_and_commit(
        &self,
        presented: &Presented<'_>,
        applied: Applied<'_>,
        scope: &Scope,
        user: &User,
        response: TokenResponse,
        now: Timestamp,
    ) -> Result<(RefreshOutcome, TokenResponse), Refusal> {
        let client = presented.client;
        let Applied {
            family,
            expected,
            kind,
            detail,
        } = applied;
        let grant = &family.grant;
        let response = self
            .with_id_token(
                response,
                IdTokenFor {
                    client,
                    grant,
                    user,
                    scope,
                    nonce: NonceEcho::Refresh,
                    at: now,
                },
            )
            .await?;
        let event = self.grant_event(kind, grant, detail, Some(presented.source));
        let commit = RefreshCommit {
            presented_hash: expected,
            grant_id: grant.id.clone(),
            successor_hash: response
                .refresh_token
                .as_ref()
                .map(|t| secret_hash(t.expose_secret())),
            idle_expires_at: idle_expiry(client, now),
            record_use: client.effective_refresh_policy().idle_secs().is_some(),
            now,
            event,
            successor_jkt: presented.dpop_jkt.map(str::to_owned),
        };
        let written = self.store().commit_refresh(&commit).await?;
        match written {
            RefreshOutcome::Committed => {
                crate::authority::log_event(&commit.event);
                // A rotation and a recorded use counted this use in their write; any other
                // refresh wrote no row, and its use goes to the usage ledger (no idle limit
                // reads it: see operations::usage_ledger).
                if !writes_the_row(&commit) {
                    self.record_unwritten_use(&grant.id, now);
                }
                self.guard().keep_family(committed(family, &commit));
            }
            RefreshOutcome::Stale => self.guard().forget_family(&grant.id),
        }
        Ok((written, response))
    }

    /// Whether `family` shows `presented` as the current token of a live family of this client
    /// that may still refresh: the only case a cached family is trusted with.
    fn may_refresh(
        &self,
        client: &Client,
        family: &Family,
        presented: &Hash,
        now: Timestamp,
    ) -> bool {
        let grant = &family.grant;
        grant.client_id == client.client_id
            && grant.revoked_at.is_none()
            && !self.guard().grant_revoked(&grant.id)
            && view(family).generation(presented) == Generation::Current
            && client.effective_refresh_policy().allows_refresh(
                grant.created_at,
                grant.last_used_at,
                now,
            )
            && client.scopes.allows_refresh_token()
    }

    /// The pair a rotation of the token `from` (the presented one, or in audit mode the
    /// family's current one) issues at `at`: derived from that token, so that a replay of it
    /// inside the retry window rebuilds the same one (see [`Successor`]).
    #[allow(clippy::too_many_arguments)]
    async fn successor_response(
        &self,
        presented: &Presented<'_>,
        from: &str,
        grant: &Grant,
        user: &User,
        scope: &Scope,
        at: Timestamp,
        dpop_jkt: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        let key = &self.config().server_key;
        let successor = Successor::of(key, from);
        let access_token = self
            .mint_access_token(
                presented.client,
                grant,
                scope,
                at,
                successor.access_random(),
                dpop_jkt,
            )
            .await?;
        Ok(self.token_response(IssuedTokens {
            client: presented.client,
            user,
            scope,
            access_token,
            refresh_token: Some(successor.refresh_token(key, &grant.id)),
            issued_at: at,
            presented_secret: presented.secret,
            dpop_jkt,
        }))
    }

    /// Rotation audit mode (docs/controls.md, "Rotation audit mode"): a rotated-out token that
    /// reuse detection would punish still works, and a `rotation_audit` event records that the
    /// client did not keep its new token. Nothing is revoked.
    ///
    /// It is answered as the family's current token would be: the current token's successor
    /// becomes current, by the same conditional update as any rotation but on the current token
    /// this request read (the presented one is not current). So the family keeps one live
    /// refresh token, and whoever holds the token just rotated out (the client instance that
    /// did keep it) gets this same pair by replaying it inside the retry window. Had the family
    /// moved since the read, nothing is written and the request is answered "already being
    /// processed", as a duplicate is: a retry is judged afresh.
    async fn audit_rotation(
        &self,
        presented: &Presented<'_>,
        family: &Family,
        scope: &Scope,
        now: Timestamp,
    ) -> Judged {
        let grant = &family.grant;
        let Some(current_hash) = family.current else {
            // A family without a current token has nothing to rotate from.
            return Err(Refusal::because(RefreshRefusal::RotatedOut));
        };
        let user = self
            .active_user(&grant.user_id)
            .await
            .map_err(refused_if_disabled)?;
        let key = &self.config().server_key;
        let found = current_token_from(key, presented.value, &grant.id, &current_hash);
        let detail = audit_detail(found.as_ref().map(|(_, behind)| *behind));
        // A chain broken by a rotation of an earlier version (whose successor was drawn at
        // random) or too long to follow: a successor of its own, which no replay rebuilds.
        let drawn;
        let rotate_from = match &found {
            Some((current, _)) => current.expose_secret(),
            None => {
                drawn = crate::tokens::ids::random_token(self.rng(), 43);
                drawn.as_str()
            }
        };
        let response = self
            .successor_response(
                presented,
                rotate_from,
                grant,
                &user,
                scope,
                now,
                presented.dpop_jkt,
            )
            .await?;
        let applied = Applied {
            family,
            expected: current_hash,
            kind: EventKind::RotationAudit,
            detail: &detail,
        };
        let (written, response) = self
            .sign_and_commit(presented, applied, scope, &user, response, now)
            .await?;
        match written {
            RefreshOutcome::Committed => Ok(Refreshed {
                outcome: Counted::RotationAudit,
                response,
            }),
            RefreshOutcome::Stale => {
                self.record_grant_once(
                    EventKind::ConcurrentRefreshRefused,
                    grant,
                    "",
                    Some(presented.source),
                )
                .await;
                Err(OAuthError::TokenRequestInProgress.into())
            }
        }
    }

    /// A rotated-out token outside the window: reuse. The whole family is revoked (RFC 9700
    /// §4.14.2); the revocation commits although the request fails, and its event is always
    /// written. Had another request revoked the family meanwhile, this is a repeat.
    async fn reuse(
        &self,
        grant: &Grant,
        detail: &str,
        now: Timestamp,
        presented: &Presented<'_>,
    ) -> Refusal {
        let source = Some(presented.source);
        match self.store().revoke_grant(&grant.id, now).await {
            Ok(true) => {
                self.grant_revoked(&grant.id, now);
                let event = self.grant_event(EventKind::ReuseDetected, grant, detail, source);
                self.record_opening(event).await;
            }
            Ok(false) if presented.shedding => {}
            Ok(false) => {
                self.record_grant_once(EventKind::ReuseDetected, grant, detail, source)
                    .await;
            }
            Err(error) => return error.into(),
        }
        Refusal::counted(Counted::ReuseDetected, OAuthError::ExpiredRefreshToken)
    }

    /// The presented token stopped being current between our read (or the cache's) and our
    /// conditional update: a concurrent refresh of the same token won, another node rotated the
    /// family since this one cached it, or the grant was revoked. The fresh read decides, by the
    /// rule a fresh read always follows ([`decide_after_lost_race`]): a race lost by moments is
    /// answered with the winner's pair inside the retry window and "already being processed"
    /// within the grace, never punished; but a token rotated out past both, or older, is reuse,
    /// however current this node's cache believed it.
    async fn lost_refresh_race(
        &self,
        presented: &Presented<'_>,
        grant_id: &str,
        scope: &Scope,
        now: Timestamp,
    ) -> Judged {
        let Some(family) = self.store().family(grant_id).await? else {
            return Err(Refusal::because(RefreshRefusal::UnknownToken));
        };
        let decision = decide_after_lost_race(
            &view(&family),
            &presented.hash,
            presented.dpop_jkt,
            now,
            &rules(presented.client),
        );
        self.not_current(decision, presented, &family, Some(scope), now, "concurrent")
            .await
    }

    /// The detail of a `retry_replayed` event: `base`, flagged with [`FROM_ANOTHER_ADDRESS`]
    /// when the replay comes from another address than the rotation it replays. Inside the
    /// window, whoever presents the rotated-out token first gets the live pair; a replay from
    /// elsewhere is how a stolen token shows. Only a replay pays for reading the rotation's
    /// event (its address is not kept with the family); the rotating path reads nothing more.
    async fn replay_detail(&self, grant: &Grant, presented: &Presented<'_>, base: &str) -> String {
        let Some(replayed_from) = presented.source.address else {
            return base.to_owned();
        };
        let filter = EventFilter {
            limit: 1,
            grant_id: Some(grant.id.clone()),
            kind: Some(EventKind::Rotated),
            newest_first: true,
            ..EventFilter::default()
        };
        let rotated_from = match self.store().events(&filter).await {
            Ok(events) => events.into_iter().next().and_then(|e| e.event.source),
            // The replay is answered all the same; only the flag is lost.
            Err(error) => {
                tracing::warn!(%error, "the rotation's address could not be read");
                None
            }
        };
        match rotated_from {
            Some(rotated_from) if rotated_from != replayed_from.to_string() => {
                format!("{base} {FROM_ANOTHER_ADDRESS} (rotated from {rotated_from})")
            }
            _ => base.to_owned(),
        }
    }

    /// The current pair again, for a replay of the previous token while the client's retry
    /// window lasts (the current token is unused: using it would have made it the previous).
    /// The pair is rebuilt from the presented token and the rotation's time, and answered only
    /// if it is the family's current one.
    async fn replay_within_window(
        &self,
        presented: &Presented<'_>,
        family: &Family,
        scope: &Scope,
    ) -> Result<Option<TokenResponse>, OAuthError> {
        let client = presented.client;
        let Some(rotated_at) = family.rotated_at else {
            return Ok(None);
        };
        // The pair is rebuilt bound to the key the rotation bound it to (which the replay
        // proved: see rotation::decide).
        let rotated_jkt = family.rotated_jkt.as_deref();
        let user = self.active_user(&family.grant.user_id).await?;
        let response = self
            .successor_response(
                presented,
                presented.value,
                &family.grant,
                &user,
                scope,
                rotated_at,
                rotated_jkt,
            )
            .await?;
        let rebuilt = response
            .refresh_token
            .as_ref()
            .map(|t| secret_hash(t.expose_secret()));
        if !same_option(rebuilt.as_ref(), family.current.as_ref()) {
            return Ok(None);
        }
        // The rotation's ID token, rebuilt for the rotation's time: with RS256 the very bytes
        // it answered (the signature is deterministic), with ES256 an equal token.
        let response = self
            .with_id_token(
                response,
                IdTokenFor {
                    client,
                    grant: &family.grant,
                    user: &user,
                    scope,
                    nonce: NonceEcho::Refresh,
                    at: rotated_at,
                },
            )
            .await?;
        Ok(Some(response))
    }
}

/// The outcome of a refusal no path counted explicitly, read off its error: the errors a
/// refresh refuses with say which outcome they are. (A path that answers tokens always says
/// its outcome: [`Refreshed`] carries it.)
fn outcome_of_error(error: &OAuthError) -> Counted {
    match error {
        OAuthError::ExpiredRefreshToken => Counted::Invalid,
        OAuthError::TokenRequestInProgress => Counted::ConcurrentRefused,
        _ => Counted::Failed,
    }
}

/// The family's lifetime and the client's permission bound replays too: a pair answered inside
/// the retry window is never handed out once the family could not refresh any more.
fn refuse_family_past_its_policy(
    client: &Client,
    grant: &Grant,
    now: Timestamp,
) -> Result<(), RefreshRefusal> {
    if !client
        .effective_refresh_policy()
        .allows_refresh(grant.created_at, grant.last_used_at, now)
    {
        return Err(RefreshRefusal::Expired);
    }
    if !client.scopes.allows_refresh_token() {
        return Err(RefreshRefusal::RefreshWithdrawn);
    }
    Ok(())
}

/// A token of a revoked family: counted `revoked`, recorded as such.
/// A refresh without a proof of the key its grant (or its rotation) is bound to: `invalid_grant`,
/// nothing revoked.
fn key_mismatch() -> Refusal {
    OAuthError::DpopKeyMismatch.into_refusal(RefreshRefusal::DpopKeyMismatch)
}

fn revoked() -> Refusal {
    Refusal {
        outcome: Counted::Revoked,
        ..Refusal::because(RefreshRefusal::Revoked)
    }
}

/// A disabled user's refusal is recorded; any other error (the store's) is not a refusal.
fn refused_if_disabled(error: OAuthError) -> Refusal {
    match error {
        OAuthError::InactiveUser => error.into_refusal(RefreshRefusal::UserDisabled),
        error => error.into(),
    }
}

fn same_option(a: Option<&Hash>, b: Option<&Hash>) -> bool {
    a.is_some_and(|a| same(a, b))
}

/// What a refresh answered with tokens writes: to `family`, only if `expected` is still its
/// current token (the presented one; in audit mode, the current one read), recorded as `kind`.
/// Rotating, the answer's refresh token becomes current and `expected` the previous.
struct Applied<'a> {
    family: &'a Family,
    expected: Hash,
    kind: EventKind,
    detail: &'a str,
}

/// How many rotations audit mode follows from a presented token to its family's current one:
/// a rotation a day for almost three years, at a few microseconds a step.
const MAX_AUDITED_GENERATIONS: u32 = 1_000;

/// The family's current token, found from a token rotated out of it by deriving successors
/// (each rotation's successor is derived from the token it replaced, see [`Successor`]), and how
/// many rotations behind it the presented token is. `None` when the chain is broken (a rotation
/// of an earlier version drew its successor at random) or longer than
/// [`MAX_AUDITED_GENERATIONS`].
fn current_token_from(
    key: &crate::tokens::server_key::ServerKey,
    presented: &str,
    grant_id: &str,
    current: &Hash,
) -> Option<(RefreshToken, u32)> {
    let mut token = RefreshToken::new(presented.to_owned());
    for behind in 1..=MAX_AUDITED_GENERATIONS {
        let next = Successor::of(key, token.expose_secret()).refresh_token(key, grant_id);
        if same(&secret_hash(next.expose_secret()), Some(current)) {
            return Some((next, behind));
        }
        token = next;
    }
    None
}

/// A `rotation_audit` event's detail: how far behind the presented token was (a fixed phrase
/// and a number, never a token).
fn audit_detail(behind: Option<u32>) -> String {
    let how_old = match behind {
        Some(1) => "rotated out 1 generation ago".to_owned(),
        Some(n) => format!("rotated out {n} generations ago"),
        // More than the limit, or past a rotation of an earlier version.
        None => "rotated out generations ago (not counted)".to_owned(),
    };
    format!("{how_old}: the client did not keep the new token (reuse, were rotation on)")
}

/// Whether `commit` writes the grant's row (and so its last use and use count): a rotation, or
/// a refresh that records its use for an idle limit.
fn writes_the_row(commit: &RefreshCommit) -> bool {
    commit.record_use || commit.successor_hash.is_some()
}

/// The family as `commit` left it.
fn committed(family: &Family, commit: &RefreshCommit) -> Family {
    let mut next = family.clone();
    if writes_the_row(commit) {
        next.grant.last_used_at = commit.now;
    }
    if let Some(successor) = commit.successor_hash {
        next.previous = Some(commit.presented_hash);
        next.current = Some(successor);
        next.rotated_at = Some(commit.now);
        next.rotated_jkt = commit.successor_jkt.clone();
    }
    next
}

/// The scope of a refresh: narrowing is allowed, widening is `invalid_scope` (for a replay as
/// for a fresh request), and the result is cut to what the client may still have. The refresh
/// token keeps the original scope.
fn refreshed_scope(
    client: &Client,
    grant: &Grant,
    requested: Option<&str>,
) -> Result<Scope, OAuthError> {
    let asked = match requested {
        None => grant.scope.clone(),
        Some(text) => match Scope::parse(text) {
            Some(s) if !s.is_empty() && s.is_subset(&grant.scope) => s,
            _ => return Err(OAuthError::InvalidScope),
        },
    };
    let scope = still_allowed(client, &asked);
    if scope.is_empty() {
        return Err(OAuthError::InvalidScope);
    }
    Ok(scope)
}

#[cfg(test)]
mod tests {
    //! The refresh state machine on a fixed clock and an in-memory store.

    // Tests cut ASCII tokens at known places.
    #![allow(clippy::unwrap_used, clippy::string_slice)]

    use std::sync::Arc;

    use tessera_proto::{OAuthError, Password, RefreshToken, TokenResponse};

    use crate::authority::{Authority, AuthorityConfig, ClientCredentials, Source};
    use crate::flows::token_request::TokenRequest;
    use crate::model::{EventKind, FROM_ANOTHER_ADDRESS};
    use crate::operations::admin::ClientSettings;
    use crate::policy::RefreshTokenPolicy;
    use crate::store::memory::MemoryStore;
    use crate::store::EventFilter;
    use crate::time::{ManualClock, SystemRandom, Timestamp};
    use crate::tokens::server_key::ServerKey;

    struct World {
        authority: Authority,
        store: Arc<MemoryStore>,
        clock: Arc<ManualClock>,
        creds: ClientCredentials,
        first: TokenResponse,
    }

    const USER: &str = "ada@example.com";

    async fn world(settings: ClientSettings) -> World {
        let clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000)));
        let store = Arc::new(MemoryStore::new());
        let authority = Authority::new(
            store.clone(),
            clock.clone(),
            Arc::new(SystemRandom),
            AuthorityConfig::new("http://as.test", ServerKey::generate(&SystemRandom)),
        );
        authority
            .operator()
            .create_user(USER, Password::new("password one"), None)
            .await
            .unwrap();
        let settings = ClientSettings {
            name: Some("App".into()),
            redirect_uris: Some(vec!["https://app.example/cb".into()]),
            ..settings
        };
        let (client, secret) = authority
            .operator()
            .create_client(false, &settings)
            .await
            .unwrap();
        let first = authority
            .operator()
            .mint_for(&client.client_id, USER, "api refresh_token")
            .await
            .unwrap();
        let creds = ClientCredentials {
            client_id: client.client_id,
            secret,
            via_basic: false,
        };
        World {
            authority,
            store,
            clock,
            creds,
            first,
        }
    }

    /// Each refresh is counted once, with the outcome its path decided: rotations, a replay
    /// inside the window, a duplicate just after a rotation (window 0), reuse, the revoked
    /// family, a made-up token, and a non-rotating refresh.
    #[tokio::test]
    async fn each_outcome_is_counted_where_it_is_decided() {
        use metrics_util::debugging::{DebugValue, DebuggingRecorder};
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        // The test runs on one thread, so every poll of the futures below sees this recorder.
        let _recording = metrics::set_default_local_recorder(&recorder);

        let strict = world(rotating(0)).await;
        let rt1 = strict.rt();
        let rt2 = strict.refresh(&rt1).await.unwrap().refresh_token.unwrap();
        assert_eq!(
            strict.refresh(&rt1).await.unwrap_err(),
            OAuthError::TokenRequestInProgress
        );
        strict.clock.advance_secs(3);
        assert_eq!(
            strict.refresh(&rt1).await.unwrap_err(),
            OAuthError::ExpiredRefreshToken,
            "reuse"
        );
        assert_eq!(
            strict.refresh(&rt2).await.unwrap_err(),
            OAuthError::ExpiredRefreshToken,
            "the revoked family"
        );
        assert_eq!(
            strict
                .refresh(&RefreshToken::new("made-up".to_owned()))
                .await
                .unwrap_err(),
            OAuthError::ExpiredRefreshToken
        );
        let windowed = world(rotating(60)).await;
        let next = windowed.refresh(&windowed.rt()).await.unwrap();
        assert_eq!(
            windowed
                .refresh(&windowed.rt())
                .await
                .unwrap()
                .refresh_token,
            next.refresh_token
        );
        let plain = world(ClientSettings::default()).await;
        plain.refresh(&plain.rt()).await.unwrap();
        let audited = world(audit(60)).await;
        audited.refresh(&audited.rt()).await.unwrap();
        audited.clock.advance_secs(61);
        audited.refresh(&audited.rt()).await.unwrap();

        let counted: std::collections::HashMap<String, u64> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| key.key().name() == crate::operations::metrics::REFRESHES)
            .filter_map(|(key, _, _, value)| {
                let outcome = key.key().labels().find(|l| l.key() == "outcome")?;
                match value {
                    DebugValue::Counter(n) => Some((outcome.value().to_owned(), n)),
                    _ => None,
                }
            })
            .collect();
        let expected = [
            ("rotated", 3),
            ("rotation_audit", 1),
            ("concurrent_refused", 1),
            ("reuse_detected", 1),
            ("revoked", 1),
            ("invalid", 1),
            ("replayed", 1),
            ("refreshed", 1),
        ];
        assert_eq!(
            counted,
            expected
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            "{counted:?}"
        );
    }

    /// Rotation on, in audit mode.
    fn audit(window_secs: u64) -> ClientSettings {
        ClientSettings {
            rotation_audit: Some(true),
            refresh_retry_window_secs: Some(window_secs),
            ..Default::default()
        }
    }

    /// The use count and last use of the world's one grant, as OAuth Usage lists it.
    async fn usage(world: &World) -> (u64, Timestamp) {
        use crate::store::Usage;
        use crate::time::Clock;
        let user = world.authority.operator().user(USER).await.unwrap();
        let now = world.clock.now();
        let tokens = world
            .store
            .user_tokens_usage(&world.creds.client_id, &user.id, now)
            .await
            .unwrap();
        assert_eq!(tokens.len(), 1);
        (tokens[0].use_count, tokens[0].last_used_at)
    }

    /// A non-rotating refresh of an `infinite` grant writes no row: its use waits in the usage
    /// ledger, coalesced, and the flush writes the count and the last use.
    #[tokio::test]
    async fn a_refresh_that_writes_no_row_is_counted_by_the_next_flush() {
        use crate::time::Clock;
        let world = world(ClientSettings::default()).await;
        let issued_at = world.clock.now();
        for _ in 0..4 {
            world.clock.advance_secs(600);
            world.refresh(&world.rt()).await.unwrap();
        }
        assert_eq!(usage(&world).await, (1, issued_at), "nothing written yet");
        assert_eq!(world.authority.unwritten_usage(), 1, "one grant, coalesced");

        assert_eq!(world.authority.flush_usage().await.unwrap(), 1);
        assert_eq!(usage(&world).await, (5, world.clock.now()));
        assert_eq!(world.authority.flush_usage().await.unwrap(), 0);
    }

    /// A rotation counts its use in the write it makes: nothing goes to the ledger.
    #[tokio::test]
    async fn a_rotation_counts_its_use_without_the_ledger() {
        use crate::time::Clock;
        let world = world(rotating(0)).await;
        world.clock.advance_secs(60);
        world.refresh(&world.rt()).await.unwrap();
        assert_eq!(world.authority.unwritten_usage(), 0);
        assert_eq!(usage(&world).await, (2, world.clock.now()));
    }

    fn rotating(window_secs: u64) -> ClientSettings {
        ClientSettings {
            rotate_refresh_tokens: Some(true),
            refresh_retry_window_secs: Some(window_secs),
            ..Default::default()
        }
    }

    impl World {
        async fn refresh_with(
            &self,
            token: &RefreshToken,
            scope: Option<&str>,
        ) -> Result<TokenResponse, OAuthError> {
            let request = TokenRequest::RefreshToken {
                refresh_token: token.clone(),
                scope: scope.map(str::to_owned),
            };
            self.authority
                .token(Some(self.creds.clone()), request, &Source::default())
                .await
        }

        async fn refresh(&self, token: &RefreshToken) -> Result<TokenResponse, OAuthError> {
            self.refresh_with(token, None).await
        }

        fn rt(&self) -> RefreshToken {
            self.first.refresh_token.clone().unwrap()
        }

        /// Another server process on the same store, with the same key: its caches are its own.
        fn second_process(&self) -> World {
            let authority = Authority::new(
                self.store.clone(),
                self.clock.clone(),
                Arc::new(SystemRandom),
                self.authority.config().clone(),
            );
            World {
                authority,
                store: self.store.clone(),
                clock: self.clock.clone(),
                creds: self.creds.clone(),
                first: self.first.clone(),
            }
        }

        /// Every one of `tokens` is refused: the family is revoked.
        async fn assert_revoked(&self, tokens: &[&RefreshToken]) {
            for token in tokens {
                assert_eq!(
                    self.refresh(token).await.unwrap_err(),
                    OAuthError::ExpiredRefreshToken
                );
            }
        }
    }

    #[tokio::test]
    async fn refresh_without_rotation_keeps_the_refresh_token() {
        let w = world(ClientSettings::default()).await;
        let next = w.refresh(&w.rt()).await.unwrap();
        assert!(next.refresh_token.is_none());
        assert_ne!(next.access_token, w.first.access_token);
        assert!(
            w.refresh(&w.rt()).await.is_ok(),
            "the same token works again"
        );
    }

    #[tokio::test]
    async fn a_token_rotated_out_before_rotation_was_switched_off_is_refused_without_revoking() {
        let w = world(rotating(60)).await;
        let rt1 = w.rt();
        let rt2 = w.refresh(&rt1).await.unwrap().refresh_token.unwrap();
        let rt3 = w.refresh(&rt2).await.unwrap().refresh_token.unwrap();
        let client_id = w.creds.client_id.clone();
        let off = ClientSettings {
            rotate_refresh_tokens: Some(false),
            ..Default::default()
        };
        w.authority
            .operator()
            .update_client(&client_id, &off)
            .await
            .unwrap();
        w.clock.advance_secs(120);
        // rt2 is the previous generation, rt1 an older one: both refused.
        for stale in [&rt2, &rt1] {
            assert_eq!(
                w.refresh(stale).await.unwrap_err(),
                OAuthError::ExpiredRefreshToken
            );
        }
        assert!(w.events_of(EventKind::ReuseDetected).await.is_empty());
        // The family lives on: its current token refreshes, and keeps being the one token.
        let next = w.refresh(&rt3).await.unwrap();
        assert!(next.refresh_token.is_none());
        assert!(w.refresh(&rt3).await.is_ok());
    }

    #[tokio::test]
    async fn replay_inside_the_window_returns_the_same_pair_until_the_successor_is_used() {
        let w = world(rotating(60)).await;
        let rt1 = w.rt();
        let second = w.refresh(&rt1).await.unwrap();
        let rt2 = second.refresh_token.clone().unwrap();
        assert_ne!(rt2, rt1);
        w.clock.advance_secs(30);
        for _ in 0..3 {
            let replay = w.refresh(&rt1).await.unwrap();
            assert_eq!(replay.refresh_token, second.refresh_token);
            assert_eq!(replay.access_token, second.access_token);
        }
        // Using the successor closes the window: the old token is now reuse.
        let rt3 = w.refresh(&rt2).await.unwrap().refresh_token.unwrap();
        // The old token is now reuse, which revokes the whole family.
        w.assert_revoked(&[&rt1, &rt3]).await;
    }

    fn from(address: &str) -> Source {
        Source::new(Some(address.parse().unwrap()), None)
    }

    impl World {
        async fn refresh_from(
            &self,
            token: &RefreshToken,
            source: &Source,
        ) -> Result<TokenResponse, OAuthError> {
            let request = TokenRequest::RefreshToken {
                refresh_token: token.clone(),
                scope: None,
            };
            self.authority
                .token(Some(self.creds.clone()), request, source)
                .await
        }

        async fn events_of(&self, kind: EventKind) -> Vec<crate::model::Event> {
            let filter = EventFilter {
                kind: Some(kind),
                ..EventFilter::default()
            };
            let events = self.authority.operator().events(&filter).await.unwrap();
            events.into_iter().map(|e| e.event).collect()
        }
    }

    /// Rotates the first token from `rotated_from`, replays it 5 s later from `replayed_from`
    /// (answered with the same pair) and returns the replay's one `retry_replayed` event.
    async fn replayed_event(rotated_from: &str, replayed_from: &str) -> crate::model::Event {
        let w = world(rotating(60)).await;
        let rt1 = w.rt();
        let second = w.refresh_from(&rt1, &from(rotated_from)).await.unwrap();
        w.clock.advance_secs(5);
        // By design the replay is answered with the live pair, wherever it comes from.
        let replay = w.refresh_from(&rt1, &from(replayed_from)).await.unwrap();
        assert_eq!(replay.refresh_token, second.refresh_token);
        let mut replays = w.events_of(EventKind::RetryReplayed).await;
        assert_eq!(replays.len(), 1, "{replays:?}");
        let event = replays.remove(0);
        assert_eq!(event.source.as_deref(), Some(replayed_from));
        event
    }

    #[tokio::test]
    async fn a_replay_from_the_rotations_address_is_recorded_with_its_source_and_unflagged() {
        let event = replayed_event("192.0.2.7", "192.0.2.7").await;
        assert_eq!(event.detail, "replay");
    }

    #[tokio::test]
    async fn a_replay_from_another_address_than_the_rotations_is_flagged() {
        let event = replayed_event("192.0.2.7", "203.0.113.9").await;
        assert!(event.detail.contains(FROM_ANOTHER_ADDRESS), "{event:?}");
        assert!(event.detail.contains("rotated from 192.0.2.7"), "{event:?}");
    }

    /// The `refresh_refused` events once every refusal is accounted for: each event stands
    /// for itself and the repeats its detail counts (`+N repeats`, `N more`). Waits for the
    /// writes made off the request path, and fails if they never account for `refusals`.
    async fn refusals_accounted_for(w: &World, refusals: usize) -> Vec<crate::model::Event> {
        fn stands_for(event: &crate::model::Event) -> usize {
            let number_after = |marker: &str| {
                event.detail.split(marker).nth(1).and_then(|rest| {
                    rest.split(|c: char| !c.is_ascii_digit())
                        .next()
                        .and_then(|n| n.parse::<usize>().ok())
                })
            };
            if let Some(repeats) = number_after("(+") {
                // An event opening a window and a summary of a window's repeats.
                usize::from(!event.detail.contains(": repeats")) + repeats
            } else if event.client_id.is_none() {
                number_after(": ").unwrap_or(0)
            } else {
                1
            }
        }
        for _ in 0..10_000 {
            let events = w.events_of(EventKind::RefreshRefused).await;
            if events.iter().map(stands_for).sum::<usize>() >= refusals {
                return events;
            }
            tokio::task::yield_now().await;
        }
        panic!("the refusals were never all accounted for");
    }

    #[tokio::test]
    async fn a_flood_of_bogus_refresh_tokens_writes_a_bounded_number_of_events() {
        use crate::operations::audit_repeats::MAX_REFUSALS_ITEMISED_PER_WINDOW;
        let w = world(rotating(60)).await;
        // Ten thousand made-up tokens, each from its own address (none spends its budget).
        for i in 0u32..10_000 {
            let [_, a, b, c] = i.to_be_bytes();
            let source = from(&format!("10.{a}.{b}.{c}"));
            let bogus = RefreshToken::new(format!("bogus-{i}"));
            assert_eq!(
                w.refresh_from(&bogus, &source).await.unwrap_err(),
                OAuthError::ExpiredRefreshToken
            );
        }
        // Housekeeping reports what the cap left unitemised: one summary for the reason.
        w.authority.summarise_repeats().await;
        let events = refusals_accounted_for(&w, 10_000).await;
        let cap = MAX_REFUSALS_ITEMISED_PER_WINDOW as usize;
        assert_eq!(events.len(), cap + 1);
        let summary = events.iter().find(|e| e.client_id.is_none()).unwrap();
        assert!(
            summary
                .detail
                .starts_with("unknown token: 9900 more from other clients or sources since"),
            "{summary:?}"
        );
        assert_eq!(
            (summary.client_id.as_ref(), summary.source.as_ref()),
            (None, None)
        );
        // The next window itemises again.
        w.clock.advance_secs(60);
        let late = RefreshToken::new("bogus-late".to_owned());
        w.refresh_from(&late, &from("192.0.2.99"))
            .await
            .unwrap_err();
        let events = refusals_accounted_for(&w, 10_001).await;
        assert!(events
            .iter()
            .any(|e| e.source.as_deref() == Some("192.0.2.99")));
    }

    #[tokio::test]
    async fn a_disabled_users_refusal_and_a_widened_scope_are_recorded_too() {
        let w = world(ClientSettings::default()).await;
        assert_eq!(
            w.refresh_with(&w.rt(), Some("api full")).await.unwrap_err(),
            OAuthError::InvalidScope
        );
        w.authority
            .operator()
            .set_user_disabled(USER, true)
            .await
            .unwrap();
        let refused = w.refresh(&w.rt()).await.unwrap_err();
        // Disabling revokes the user's grants: their family is refused as revoked.
        assert_eq!(refused, OAuthError::ExpiredRefreshToken);
        let events = refusals_accounted_for(&w, 2).await;
        let mut details: Vec<&str> = events.iter().map(|e| e.detail.as_str()).collect();
        details.sort_unstable();
        assert_eq!(details, ["revoked family", "scope wider than granted"]);
    }

    #[tokio::test]
    async fn a_public_client_created_without_a_window_gets_ten_seconds_a_confidential_one_sixty() {
        let w = world(ClientSettings::default()).await;
        let settings = ClientSettings {
            name: Some("Public".into()),
            redirect_uris: Some(vec!["https://app.example/cb".into()]),
            ..Default::default()
        };
        let operator = w.authority.operator();
        let (public, _) = operator.create_client(true, &settings).await.unwrap();
        let (confidential, _) = operator.create_client(false, &settings).await.unwrap();
        assert_eq!(public.refresh_retry_window_secs, 10);
        assert_eq!(confidential.refresh_retry_window_secs, 60);
        // A window given at creation is kept, for a public client too.
        let given = ClientSettings {
            refresh_retry_window_secs: Some(45),
            ..settings
        };
        let (public, _) = operator.create_client(true, &given).await.unwrap();
        assert_eq!(public.refresh_retry_window_secs, 45);
    }

    #[tokio::test]
    async fn a_family_another_process_rotated_is_judged_afresh_never_from_the_cache() {
        let a = world(rotating(60)).await;
        let b = a.second_process();
        // B rotates rt1 and caches the family with rt2 current.
        let rt2 = b.refresh(&a.rt()).await.unwrap().refresh_token.unwrap();
        // A rotates rt2; B's cache still shows rt2 current.
        let third = a.refresh(&rt2).await.unwrap();
        let rt3 = third.refresh_token.clone().unwrap();
        // B is handed rt2 again (a retry that reached it): the store says it was rotated out, so
        // it is a replay inside the window, answered with A's pair.
        let replay = b.refresh(&rt2).await.unwrap();
        assert_eq!(replay.refresh_token, third.refresh_token);
        assert_eq!(replay.access_token, third.access_token);
        // B is handed rt3, which its cache has never seen: current in the store, so it rotates.
        let rt4 = b.refresh(&rt3).await.unwrap().refresh_token.unwrap();
        assert!(a.refresh(&rt4).await.is_ok(), "nothing was revoked");
    }

    impl World {
        /// The family of the first token is revoked, and one `reuse_detected` event says so.
        async fn assert_reuse_detected(&self) {
            let grant_id = crate::tokens::sealing::signed_grant_id(
                &self.authority.config().server_key,
                tessera_proto::ExposeSecret::expose_secret(&self.rt()),
            )
            .unwrap()
            .to_owned();
            let grant = crate::store::Grants::grant(self.store.as_ref(), &grant_id)
                .await
                .unwrap()
                .unwrap();
            assert!(grant.revoked_at.is_some(), "the family is revoked");
            assert_eq!(self.events_of(EventKind::ReuseDetected).await.len(), 1);
        }
    }

    #[tokio::test]
    async fn a_token_rotated_out_past_the_window_is_reuse_though_another_process_cached_it_current()
    {
        let a = world(rotating(60)).await;
        let b = a.second_process();
        // B rotates rt1 and caches the family with rt2 current.
        let rt2 = b.refresh(&a.rt()).await.unwrap().refresh_token.unwrap();
        // A rotates rt2; past the window, rt2 is a stolen token's replay.
        let rt3 = a.refresh(&rt2).await.unwrap().refresh_token.unwrap();
        a.clock.advance_secs(61);
        // B's cache says rt2 is current; the store's update says otherwise.
        assert_eq!(
            b.refresh(&rt2).await.unwrap_err(),
            OAuthError::ExpiredRefreshToken
        );
        a.assert_reuse_detected().await;
        a.assert_revoked(&[&rt3]).await;
    }

    #[tokio::test]
    async fn an_older_token_is_reuse_though_another_process_cached_it_current() {
        let a = world(rotating(60)).await;
        let b = a.second_process();
        let rt2 = b.refresh(&a.rt()).await.unwrap().refresh_token.unwrap();
        // A rotates twice: rt2 is two generations old, whatever the time.
        let rt3 = a.refresh(&rt2).await.unwrap().refresh_token.unwrap();
        let rt4 = a.refresh(&rt3).await.unwrap().refresh_token.unwrap();
        assert_eq!(
            b.refresh(&rt2).await.unwrap_err(),
            OAuthError::ExpiredRefreshToken
        );
        a.assert_reuse_detected().await;
        a.assert_revoked(&[&rt4]).await;
    }

    #[tokio::test]
    async fn a_token_another_process_just_rotated_is_in_progress_not_reuse_from_a_stale_cache() {
        let a = world(rotating(0)).await;
        let b = a.second_process();
        let rt2 = b.refresh(&a.rt()).await.unwrap().refresh_token.unwrap();
        let rt3 = a.refresh(&rt2).await.unwrap().refresh_token.unwrap();
        // Within the grace: a duplicate that lost a race by moments, not a thief.
        assert_eq!(
            b.refresh(&rt2).await.unwrap_err(),
            OAuthError::TokenRequestInProgress
        );
        assert!(a.refresh(&rt3).await.is_ok(), "nothing was revoked");
        assert!(a.events_of(EventKind::ReuseDetected).await.is_empty());
    }

    #[tokio::test]
    async fn a_rotation_whose_pair_cannot_be_rebuilt_is_never_taken_for_reuse_in_its_window() {
        use crate::store::{Grants, RefreshCommit, RefreshOutcome};
        use crate::tokens::hash::secret_hash;
        use tessera_proto::ExposeSecret;

        let w = world(rotating(60)).await;
        let rt1 = w.rt();
        let grant_id = crate::tokens::sealing::signed_grant_id(
            &w.authority.config().server_key,
            rt1.expose_secret(),
        )
        .unwrap()
        .to_owned();
        let grant = w.store.grant(&grant_id).await.unwrap().unwrap();
        // A rotation made by an earlier version: its successor was drawn at random, and the pair
        // it answered is not kept.
        let now = crate::time::Clock::now(w.clock.as_ref());
        let commit = RefreshCommit {
            presented_hash: secret_hash(rt1.expose_secret()),
            grant_id: grant_id.clone(),
            successor_hash: Some(secret_hash("a successor drawn at random")),
            successor_jkt: None,
            idle_expires_at: None,
            record_use: false,
            now,
            event: w
                .authority
                .grant_event(crate::model::EventKind::Rotated, &grant, "", None),
        };
        assert_eq!(
            w.store.commit_refresh(&commit).await.unwrap(),
            RefreshOutcome::Committed
        );
        w.clock.advance_secs(30);
        assert_eq!(
            w.refresh(&rt1).await.unwrap_err(),
            OAuthError::TokenRequestInProgress
        );
        let grant = w.store.grant(&grant_id).await.unwrap().unwrap();
        assert_eq!(
            grant.revoked_at, None,
            "a replay inside the window is not reuse"
        );
        // Out of the window, it is.
        w.clock.advance_secs(31);
        w.assert_revoked(&[&rt1]).await;
    }

    #[tokio::test]
    async fn replay_after_the_window_is_reuse_and_revokes_the_family() {
        let w = world(rotating(60)).await;
        let rt1 = w.rt();
        let rt2 = w.refresh(&rt1).await.unwrap().refresh_token.unwrap();
        w.clock.advance_secs(61);
        w.assert_revoked(&[&rt1, &rt2]).await;
    }

    #[tokio::test]
    async fn without_a_window_a_duplicate_is_in_progress_then_reuse() {
        let w = world(rotating(0)).await;
        let rt1 = w.rt();
        let rt2 = w.refresh(&rt1).await.unwrap().refresh_token.unwrap();
        assert_eq!(
            w.refresh(&rt1).await.unwrap_err(),
            OAuthError::TokenRequestInProgress
        );
        assert!(
            w.refresh(&rt2).await.is_ok(),
            "a duplicate is not punished: the successor still works"
        );
        let w = world(rotating(0)).await;
        let rt1 = w.rt();
        let rt2 = w.refresh(&rt1).await.unwrap().refresh_token.unwrap();
        w.clock.advance_secs(3);
        w.assert_revoked(&[&rt1, &rt2]).await;
    }

    #[tokio::test]
    async fn a_replay_is_held_to_the_scope_of_the_grant() {
        let w = world(rotating(60)).await;
        let rt1 = w.rt();
        w.refresh(&rt1).await.unwrap();
        assert_eq!(
            w.refresh_with(&rt1, Some("api refresh_token full"))
                .await
                .unwrap_err(),
            OAuthError::InvalidScope
        );
        assert!(w.refresh_with(&rt1, Some("api")).await.is_ok());
    }

    #[tokio::test]
    async fn no_replay_after_the_grants_absolute_lifetime() {
        let w = world(ClientSettings {
            refresh_token_policy: Some(RefreshTokenPolicy::SpecificLifetime {
                amount: 90,
                unit: crate::policy::PolicyUnit::Seconds,
            }),
            ..rotating(60)
        })
        .await;
        let rt1 = w.rt();
        w.clock.advance_secs(80);
        w.refresh(&rt1).await.unwrap();
        w.clock.advance_secs(20);
        assert_eq!(
            w.refresh(&rt1).await.unwrap_err(),
            OAuthError::ExpiredRefreshToken,
            "inside the retry window, but past the lifetime"
        );
    }

    #[tokio::test]
    async fn removing_scopes_from_the_client_cuts_live_grants() {
        let w = world(ClientSettings::default()).await;
        w.authority
            .operator()
            .update_client(
                &w.creds.client_id,
                &ClientSettings {
                    scopes: Some("id refresh_token".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let cut = w.refresh(&w.rt()).await.unwrap();
        assert_eq!(cut.scope, "refresh_token");
        w.authority
            .operator()
            .update_client(
                &w.creds.client_id,
                &ClientSettings {
                    scopes: Some("api id".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            w.refresh(&w.rt()).await.unwrap_err(),
            OAuthError::ExpiredRefreshToken
        );
    }

    #[tokio::test]
    async fn another_clients_token_is_refused_and_left_alone() {
        let w = world(rotating(60)).await;
        let (other, secret) = w
            .authority
            .operator()
            .create_client(
                false,
                &ClientSettings {
                    name: Some("Other".into()),
                    redirect_uris: Some(vec!["https://other.example/cb".into()]),
                    ..rotating(60)
                },
            )
            .await
            .unwrap();
        let request = TokenRequest::RefreshToken {
            refresh_token: w.rt(),
            scope: None,
        };
        let creds = ClientCredentials {
            client_id: other.client_id,
            secret,
            via_basic: false,
        };
        assert_eq!(
            w.authority
                .token(Some(creds), request, &Source::default())
                .await
                .unwrap_err(),
            OAuthError::ExpiredRefreshToken
        );
        assert!(w.refresh(&w.rt()).await.is_ok());
    }

    #[tokio::test]
    async fn a_forged_token_naming_a_live_family_revokes_nothing() {
        let w = world(rotating(60)).await;
        let genuine = w.rt();
        let value = tessera_proto::ExposeSecret::expose_secret(&genuine);
        let forged = format!("{}{}", &value[..24], "A".repeat(value.len() - 24));
        assert_eq!(
            w.refresh(&RefreshToken::new(forged)).await.unwrap_err(),
            OAuthError::ExpiredRefreshToken
        );
        assert!(w.refresh(&genuine).await.is_ok());
    }

    #[tokio::test]
    async fn concurrent_refreshes_of_one_token_make_one_successor() {
        let w = Arc::new(world(rotating(60)).await);
        let rt1 = w.rt();
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let w = w.clone();
                let rt1 = rt1.clone();
                tokio::spawn(async move { w.refresh(&rt1).await })
            })
            .collect();
        let mut successors = std::collections::HashSet::new();
        for task in tasks {
            let response = task.await.unwrap().unwrap();
            successors.insert(
                tessera_proto::ExposeSecret::expose_secret(&response.refresh_token.unwrap())
                    .to_owned(),
            );
        }
        assert_eq!(successors.len(), 1);
    }

    // ------------------------------------------------------------------ rotation audit mode

    impl World {
        /// Rotates the first token, waits past the window and presents it again.
        async fn present_rotated_out_past_the_window(
            &self,
        ) -> (RefreshToken, Result<TokenResponse, OAuthError>) {
            let rt2 = self
                .refresh(&self.rt())
                .await
                .unwrap()
                .refresh_token
                .unwrap();
            self.clock.advance_secs(61);
            (rt2, self.refresh(&self.rt()).await)
        }

        async fn first_grant(&self) -> crate::model::Grant {
            let grant_id = crate::tokens::sealing::signed_grant_id(
                &self.authority.config().server_key,
                tessera_proto::ExposeSecret::expose_secret(&self.rt()),
            )
            .unwrap()
            .to_owned();
            crate::store::Grants::grant(self.store.as_ref(), &grant_id)
                .await
                .unwrap()
                .unwrap()
        }
    }

    fn value(token: &RefreshToken) -> &str {
        tessera_proto::ExposeSecret::expose_secret(token)
    }

    #[tokio::test]
    async fn in_audit_mode_a_token_rotated_out_past_the_window_gets_a_new_pair_and_revokes_nothing()
    {
        let w = world(audit(60)).await;
        let source = Source {
            address: Some("198.51.100.7".parse().unwrap()),
            ..Source::default()
        };
        let rt2 = w.refresh(&w.rt()).await.unwrap().refresh_token.unwrap();
        w.clock.advance_secs(61);
        let answered = w.refresh_from(&w.rt(), &source).await.unwrap();
        let rt3 = answered.refresh_token.unwrap();
        assert!(value(&rt3) != value(&w.rt()) && value(&rt3) != value(&rt2));
        let audited = w.events_of(EventKind::RotationAudit).await;
        assert_eq!(audited.len(), 1);
        let event = &audited[0];
        assert_eq!(
            event.detail,
            "rotated out 1 generation ago: the client did not keep the new token \
             (reuse, were rotation on)"
        );
        assert_eq!(event.source.as_deref(), Some("198.51.100.7"));
        let grant = w.first_grant().await;
        assert_eq!(event.grant_id.as_deref(), Some(grant.id.as_str()));
        assert_eq!(event.user_id.as_deref(), Some(grant.user_id.as_str()));
        assert_eq!(grant.revoked_at, None, "nothing revoked");
        assert!(w.events_of(EventKind::ReuseDetected).await.is_empty());
        // The evidence: one family that rotation on would have revoked, its user and address.
        let summary = w
            .authority
            .operator()
            .rotation_audit_summary(&w.creds.client_id)
            .await
            .unwrap();
        assert_eq!((summary.family_count, summary.event_count), (1, 1));
        let family = &summary.families[0];
        assert_eq!(family.grant_id, grant.id);
        assert_eq!(family.username.as_deref(), Some(USER));
        assert_eq!(family.addresses, ["198.51.100.7"]);
        // Thirty days and a moment later, it is out of the period.
        w.clock.advance_secs(30 * 86_400 + 1);
        let operator = w.authority.operator();
        let later = operator.rotation_audit_summary(&w.creds.client_id).await;
        assert_eq!(later.unwrap().family_count, 0);
        // The new token is the family's only live one: it rotates as usual.
        let rt4 = w.refresh(&rt3).await.unwrap().refresh_token.unwrap();
        assert!(w.refresh(&rt4).await.is_ok());
    }

    #[tokio::test]
    async fn the_same_sequence_with_rotation_on_revokes_the_family() {
        let w = world(rotating(60)).await;
        let (rt2, answered) = w.present_rotated_out_past_the_window().await;
        assert_eq!(answered.unwrap_err(), OAuthError::ExpiredRefreshToken);
        w.assert_reuse_detected().await;
        w.assert_revoked(&[&rt2]).await;
        assert!(w.events_of(EventKind::RotationAudit).await.is_empty());
    }

    #[tokio::test]
    async fn in_audit_mode_the_token_the_audit_rotated_out_replays_to_the_same_pair() {
        let w = world(audit(60)).await;
        let (rt2, answered) = w.present_rotated_out_past_the_window().await;
        let answered = answered.unwrap();
        // The client instance that kept rt2 presents it inside the window: the same pair, as
        // any replay of the previous token (the audit rotated from rt2).
        let replayed = w.refresh(&rt2).await.unwrap();
        assert_eq!(
            value(replayed.refresh_token.as_ref().unwrap()),
            value(answered.refresh_token.as_ref().unwrap())
        );
        assert_eq!(replayed.access_token, answered.access_token);
        assert_eq!(w.events_of(EventKind::RetryReplayed).await.len(), 1);
        assert_eq!(w.events_of(EventKind::RotationAudit).await.len(), 1);
    }

    #[tokio::test]
    async fn in_audit_mode_the_replay_rule_inside_the_window_stays() {
        let w = world(audit(60)).await;
        let second = w.refresh(&w.rt()).await.unwrap();
        let replayed = w.refresh(&w.rt()).await.unwrap();
        assert_eq!(
            value(replayed.refresh_token.as_ref().unwrap()),
            value(second.refresh_token.as_ref().unwrap())
        );
        assert!(w.events_of(EventKind::RotationAudit).await.is_empty());
        // Without a window, a duplicate just after the rotation is still "already being
        // processed", not audited.
        let strict = world(audit(0)).await;
        strict.refresh(&strict.rt()).await.unwrap();
        assert_eq!(
            strict.refresh(&strict.rt()).await.unwrap_err(),
            OAuthError::TokenRequestInProgress
        );
        assert!(strict.events_of(EventKind::RotationAudit).await.is_empty());
    }

    #[tokio::test]
    async fn in_audit_mode_an_older_generation_is_answered_and_says_how_old() {
        let w = world(audit(60)).await;
        let rt2 = w.refresh(&w.rt()).await.unwrap().refresh_token.unwrap();
        let rt3 = w.refresh(&rt2).await.unwrap().refresh_token.unwrap();
        let answered = w.refresh(&w.rt()).await.unwrap().refresh_token.unwrap();
        let audited = w.events_of(EventKind::RotationAudit).await;
        assert_eq!(audited.len(), 1);
        assert!(
            audited[0]
                .detail
                .starts_with("rotated out 2 generations ago"),
            "{audited:?}"
        );
        // rt3, the token the audit rotated out, replays to the audit's pair inside the window.
        let replayed = w.refresh(&rt3).await.unwrap().refresh_token.unwrap();
        assert_eq!(value(&replayed), value(&answered));
        assert!(w.first_grant().await.revoked_at.is_none());
    }

    #[tokio::test]
    async fn in_audit_mode_a_revoked_family_is_still_refused() {
        let w = world(audit(60)).await;
        let rt2 = w.refresh(&w.rt()).await.unwrap().refresh_token.unwrap();
        let grant = w.first_grant().await;
        w.authority
            .operator()
            .revoke_grant_by_id(&grant.id, "admin")
            .await
            .unwrap();
        w.clock.advance_secs(61);
        w.assert_revoked(&[&w.rt(), &rt2]).await;
        assert!(w.events_of(EventKind::RotationAudit).await.is_empty());
    }

    #[tokio::test]
    async fn in_audit_mode_a_chain_an_earlier_version_broke_still_gets_a_pair_of_its_own() {
        use crate::store::{Grants, RefreshCommit, RefreshOutcome};
        use crate::tokens::hash::secret_hash;

        let w = world(audit(60)).await;
        let grant = w.first_grant().await;
        // A rotation made by an earlier version: its successor was drawn at random.
        let commit = RefreshCommit {
            presented_hash: secret_hash(value(&w.rt())),
            grant_id: grant.id.clone(),
            successor_hash: Some(secret_hash("a successor drawn at random")),
            successor_jkt: None,
            idle_expires_at: None,
            record_use: false,
            now: crate::time::Clock::now(w.clock.as_ref()),
            event: w
                .authority
                .grant_event(EventKind::Rotated, &grant, "", None),
        };
        assert_eq!(
            w.store.commit_refresh(&commit).await.unwrap(),
            RefreshOutcome::Committed
        );
        w.clock.advance_secs(61);
        let answered = w.refresh(&w.rt()).await.unwrap().refresh_token.unwrap();
        let audited = w.events_of(EventKind::RotationAudit).await;
        assert!(
            audited[0]
                .detail
                .starts_with("rotated out generations ago (not counted)"),
            "{audited:?}"
        );
        let family = w.store.family(&grant.id).await.unwrap().unwrap();
        assert!(super::same(
            &secret_hash(value(&answered)),
            family.current.as_ref()
        ));
        assert!(super::same(
            &secret_hash("a successor drawn at random"),
            family.previous.as_ref()
        ));
    }

    #[tokio::test]
    async fn audit_mode_is_refused_with_rotation_required_and_for_public_clients_and_ends_with_rotation(
    ) {
        use crate::operations::admin::{AUDIT_IS_BEFORE_REQUIRED, PUBLIC_CLIENTS_ENFORCE_ROTATION};
        let w = world(ClientSettings::default()).await;
        let operator = w.authority.operator();
        let id = &w.creds.client_id;
        let refused =
            |result: Result<crate::model::Client, crate::operations::admin::AdminError>| {
                match result {
                    Err(crate::operations::admin::AdminError::Invalid(why)) => why,
                    other => panic!("{other:?}"),
                }
            };
        // Audit turns rotation on.
        let client = operator.update_client(id, &audit(60)).await.unwrap();
        assert_eq!(client.rotation_mode(), crate::model::RotationMode::Audit);
        let required = ClientSettings {
            rotation_required: Some(true),
            ..Default::default()
        };
        assert_eq!(
            refused(operator.update_client(id, &required).await),
            AUDIT_IS_BEFORE_REQUIRED
        );
        // Rotation off ends audit; rotation on again does not bring it back.
        let off = ClientSettings {
            rotate_refresh_tokens: Some(false),
            ..Default::default()
        };
        let client = operator.update_client(id, &off).await.unwrap();
        assert_eq!(client.rotation_mode(), crate::model::RotationMode::Off);
        assert!(!client.controls.rotation_audit);
        let client = operator.update_client(id, &rotating(60)).await.unwrap();
        assert_eq!(client.rotation_mode(), crate::model::RotationMode::On);
        let client = operator.update_client(id, &required).await.unwrap();
        assert_eq!(
            refused(operator.update_client(id, &audit(60)).await),
            AUDIT_IS_BEFORE_REQUIRED
        );
        assert!(!client.controls.rotation_audit);
        let contradiction = ClientSettings {
            rotation_audit: Some(true),
            rotate_refresh_tokens: Some(false),
            ..Default::default()
        };
        let (other, _) = operator
            .create_client(
                false,
                &ClientSettings {
                    name: Some("Other".into()),
                    redirect_uris: Some(vec!["https://other.example/cb".into()]),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            refused(
                operator
                    .update_client(&other.client_id, &contradiction)
                    .await
            ),
            "rotation audit mode needs rotation on"
        );
        let public = ClientSettings {
            name: Some("Public".into()),
            redirect_uris: Some(vec!["https://app.example/cb".into()]),
            ..audit(10)
        };
        assert_eq!(
            refused(operator.create_client(true, &public).await.map(|(c, _)| c)),
            PUBLIC_CLIENTS_ENFORCE_ROTATION
        );
    }
}
