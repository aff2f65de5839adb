//! The rotation rules as one pure decision: what a refresh token presented to its family gets,
//! from the family as read, the request's DPoP key and the time (docs/rotation-model.md).
//!
//! [`decide`] does no IO and keeps no state. The refresh flow ([`crate::flows::refresh`]) calls
//! it on the family it read and carries out what it says (minting, the store's conditional
//! write, events); the model checker of `crates/rotation-model` calls the same function on its
//! model of the store. So the rules exist once, and what the checker proves of them is what the
//! server runs:
//!
//! - the current token rotates to one successor, by a write conditional on it still being
//!   current (a second request for the same token loses that write and is judged again);
//! - the token it replaced, presented again inside the client's retry window, gets the same
//!   pair again, never a second one;
//! - a token rotated out past its window (or older) is reuse: the family is revoked;
//! - a request that does not prove the DPoP key the grant (or the replayed rotation) is bound
//!   to is refused and revokes nothing.

use subtle::ConstantTimeEq;

use crate::flows::dpop_binding::proves_key;
use crate::time::Timestamp;
use crate::tokens::hash::Hash;

/// Without a retry window, a replay of a rotated-out token this soon after its rotation is taken
/// for a simultaneous duplicate of that refresh: refused with "token request is already being
/// processed", neither answered with tokens nor punished. Later, it is reuse.
pub const CONCURRENT_REFRESH_GRACE_MS: i64 = 2_000;

/// What identifies a refresh token to the rules: the server compares hashes (in constant time);
/// the model checker, small numbers.
pub trait TokenId {
    fn same(&self, other: &Self) -> bool;
}

impl TokenId for Hash {
    fn same(&self, other: &Self) -> bool {
        bool::from(self.ct_eq(other))
    }
}

/// The model checker's tokens: the order they were minted in.
impl TokenId for u8 {
    fn same(&self, other: &Self) -> bool {
        self == other
    }
}

/// Which of its family's tokens a presented refresh token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Generation {
    Current,
    /// The one the current token replaced: answerable inside the retry window.
    Previous,
    /// Older still (or the family has no token any more): a genuine token, rotated out long ago.
    Older,
}

/// The family as the rules need it, borrowed from what the store returned.
#[derive(Debug, Clone, Copy)]
pub struct FamilyView<'a, T> {
    /// The family's current refresh token; `None` when it has none.
    pub current: Option<&'a T>,
    /// The token the current one replaced.
    pub previous: Option<&'a T>,
    /// When `previous` was rotated out.
    pub rotated_at: Option<Timestamp>,
    /// The key the last rotation's pair is bound to, if it is.
    pub rotated_jkt: Option<&'a str>,
    /// The key the grant is bound to, if it is (a DPoP-bound public client's).
    pub bound_jkt: Option<&'a str>,
    pub revoked: bool,
}

impl<T: TokenId> FamilyView<'_, T> {
    /// Which of this family's tokens `presented` is.
    pub fn generation(&self, presented: &T) -> Generation {
        if self.current.is_some_and(|c| presented.same(c)) {
            Generation::Current
        } else if self.previous.is_some_and(|p| presented.same(p)) {
            Generation::Previous
        } else {
            Generation::Older
        }
    }
}

/// The client's settings the rules read.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub rotates: bool,
    /// Rotation audit mode: reuse is answered with a new pair and recorded, not punished.
    pub audits: bool,
    pub retry_window_secs: u64,
    /// A seeded fault, for the model checker's mutant tests only.
    #[cfg(feature = "mutants")]
    pub fault: Option<Fault>,
}

impl Rules {
    pub fn new(rotates: bool, audits: bool, retry_window_secs: u64) -> Self {
        Self {
            rotates,
            audits,
            retry_window_secs,
            #[cfg(feature = "mutants")]
            fault: None,
        }
    }

    /// Whether a replay of a token rotated out at `rotated_at` is still inside the retry window.
    pub fn inside_window(&self, rotated_at: Timestamp, now: Timestamp) -> bool {
        self.rotates
            && self.retry_window_secs > 0
            && now < rotated_at.plus_secs(self.retry_window_secs)
    }
}

/// The faults the model checker must catch, each a bug shipped by some server in exactly these
/// rules. Compiled only with the `mutants` feature, which only the model's crate turns on.
#[cfg(feature = "mutants")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// An in-window replay rotates the family again (a second successor).
    RotateOnReplay,
    /// An in-window replay is answered without the pair (an access token only).
    ReplayWithoutPair,
    /// An in-window replay revokes the family.
    RevokeOnReplay,
    /// A request with the wrong DPoP key revokes the family.
    RevokeOnWrongKey,
}

/// What a presented refresh token gets. Each variant says what the store applies, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Decision {
    /// The request did not prove the key the grant or the replayed rotation is bound to:
    /// refused, nothing changes.
    KeyMismatch,
    /// The family is revoked: refused, nothing changes. `which` tells a repeat of reuse (a
    /// rotated-out token) from the current token of a revoked family.
    Revoked { which: Generation },
    /// The current token of a rotating client: a successor pair, written only if the presented
    /// token is still current and the family live.
    Rotate,
    /// The current token of a client that does not rotate: an access token, the refresh token
    /// kept.
    Refresh,
    /// The previous token inside the retry window: the pair its rotation issued, again.
    Replay,
    /// The previous token just after a rotation, without a window: a duplicate that lost the
    /// race by moments, refused as "already being processed", nothing changes.
    InProgress,
    /// A rotated-out token past its window: the family is revoked.
    Reuse { which: Generation },
    /// Reuse in rotation audit mode: the family's current token rotates (written only if it is
    /// still current), nothing is revoked.
    Audit { which: Generation },
    /// A rotated-out token of a client that no longer rotates: refused, nothing changes.
    RotatedOut,
}

/// The rule: what `presented`, with the DPoP key `key` (the thumbprint its proof proved, if
/// any), gets from `family` at `now`: [`admit`], then [`judge`].
pub fn decide<T: TokenId>(
    family: &FamilyView<'_, T>,
    presented: &T,
    key: Option<&str>,
    now: Timestamp,
    rules: &Rules,
) -> Decision {
    match admit(family, presented, key, rules) {
        Ok(which) => judge(family, which, key, now, rules),
        Err(refused) => refused,
    }
}

/// The checks before anything is answered from the family: the grant's key, then whether the
/// family is live. `Ok` with the token's generation when it is to be judged; the refresh flow
/// checks the client's lifetime and scope limits (which refuse and change nothing) in between.
pub fn admit<T: TokenId>(
    family: &FamilyView<'_, T>,
    presented: &T,
    key: Option<&str>,
    rules: &Rules,
) -> Result<Generation, Decision> {
    // A grant bound to a DPoP key refreshes only with a proof of that key, whatever the token's
    // generation: whoever holds the token but not the key cannot log the user out (RFC 9449 §5).
    if family
        .bound_jkt
        .is_some_and(|bound| !proves_key(key, bound))
    {
        return Err(wrong_key(rules));
    }
    let which = family.generation(presented);
    if family.revoked {
        return Err(Decision::Revoked { which });
    }
    Ok(which)
}

/// What a token of generation `which` of a live family gets.
pub fn judge<T>(
    family: &FamilyView<'_, T>,
    which: Generation,
    key: Option<&str>,
    now: Timestamp,
    rules: &Rules,
) -> Decision {
    match which {
        Generation::Current if rules.rotates => Decision::Rotate,
        Generation::Current => Decision::Refresh,
        Generation::Previous | Generation::Older => not_current(family, which, key, now, rules),
    }
}

/// What a refresh that lost the store's conditional write to a concurrent one gets, on a fresh
/// read: the rule for a token that is not current (the winner's pair inside the window, reuse
/// past it). A token still current after a lost write is refused: the write lost to a change
/// this read missed, and a refresh never rotates from a second read.
pub fn decide_after_lost_race<T: TokenId>(
    family: &FamilyView<'_, T>,
    presented: &T,
    key: Option<&str>,
    now: Timestamp,
    rules: &Rules,
) -> Decision {
    match decide(family, presented, key, now, rules) {
        Decision::Rotate | Decision::Refresh => Decision::RotatedOut,
        decision => decision,
    }
}

fn not_current<T>(
    family: &FamilyView<'_, T>,
    which: Generation,
    key: Option<&str>,
    now: Timestamp,
    rules: &Rules,
) -> Decision {
    // Reuse detection belongs to rotation. A client whose rotation was switched off keeps one
    // token per family, its current one: a token rotated out before the switch is refused and
    // nothing else happens (revoking would log out the holder of the live token for a leak that
    // rotation no longer guards).
    if !rules.rotates {
        return Decision::RotatedOut;
    }
    if which == Generation::Previous {
        if let Some(rotated_at) = family.rotated_at {
            if rules.inside_window(rotated_at, now) {
                // The pair is rebuilt bound to the key its rotation bound it to: a replay must
                // prove that key, or it is refused without revoking.
                if family
                    .rotated_jkt
                    .is_some_and(|bound| !proves_key(key, bound))
                {
                    return wrong_key(rules);
                }
                return replay(rules);
            }
            if now
                < Timestamp(
                    rotated_at
                        .millis()
                        .saturating_add(CONCURRENT_REFRESH_GRACE_MS),
                )
            {
                // Simultaneous requests that lost the race by a few milliseconds are not thieves.
                return Decision::InProgress;
            }
        }
    }
    if rules.audits {
        Decision::Audit { which }
    } else {
        Decision::Reuse { which }
    }
}

fn replay(rules: &Rules) -> Decision {
    #[cfg(feature = "mutants")]
    match rules.fault {
        Some(Fault::RotateOnReplay) => {
            return Decision::Audit {
                which: Generation::Previous,
            }
        }
        Some(Fault::ReplayWithoutPair) => return Decision::Refresh,
        Some(Fault::RevokeOnReplay) => {
            return Decision::Reuse {
                which: Generation::Previous,
            }
        }
        Some(Fault::RevokeOnWrongKey) | None => {}
    }
    let _ = rules;
    Decision::Replay
}

fn wrong_key(rules: &Rules) -> Decision {
    #[cfg(feature = "mutants")]
    if rules.fault == Some(Fault::RevokeOnWrongKey) {
        return Decision::Reuse {
            which: Generation::Older,
        };
    }
    let _ = rules;
    Decision::KeyMismatch
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp(1_800_000_000_000);

    fn family<'a>(current: &'a u8, previous: Option<&'a u8>) -> FamilyView<'a, u8> {
        FamilyView {
            current: Some(current),
            previous,
            rotated_at: previous.map(|_| T0),
            rotated_jkt: None,
            bound_jkt: None,
            revoked: false,
        }
    }

    fn reuse(which: Generation) -> Decision {
        Decision::Reuse { which }
    }

    const ROTATING: Rules = Rules {
        rotates: true,
        audits: false,
        retry_window_secs: 60,
        #[cfg(feature = "mutants")]
        fault: None,
    };

    #[test]
    fn the_current_token_rotates_and_the_previous_replays_inside_the_window() {
        let f = family(&2, Some(&1));
        assert_eq!(decide(&f, &2, None, T0, &ROTATING), Decision::Rotate);
        assert_eq!(
            decide(&f, &1, None, T0.plus_secs(59), &ROTATING),
            Decision::Replay
        );
    }

    #[test]
    fn the_previous_token_past_the_window_and_an_older_one_are_reuse() {
        let f = family(&3, Some(&2));
        assert_eq!(
            decide(&f, &2, None, T0.plus_secs(60), &ROTATING),
            reuse(Generation::Previous)
        );
        assert_eq!(
            decide(&f, &1, None, T0, &ROTATING),
            reuse(Generation::Older)
        );
    }

    #[test]
    fn without_a_window_a_duplicate_within_the_grace_is_in_progress() {
        let f = family(&2, Some(&1));
        let strict = Rules::new(true, false, 0);
        assert_eq!(
            decide(&f, &1, None, T0.plus_secs(1), &strict),
            Decision::InProgress
        );
        assert_eq!(
            decide(&f, &1, None, T0.plus_secs(2), &strict),
            reuse(Generation::Previous)
        );
    }

    #[test]
    fn a_wrong_key_is_refused_before_anything_else_and_revokes_nothing() {
        let f = FamilyView {
            bound_jkt: Some("key"),
            rotated_jkt: Some("key"),
            ..family(&3, Some(&2))
        };
        for (token, key) in [1, 2, 3]
            .into_iter()
            .flat_map(|t| [(t, Some("other")), (t, None)])
        {
            assert_eq!(
                decide(&f, &token, key, T0, &ROTATING),
                Decision::KeyMismatch
            );
        }
        assert_eq!(decide(&f, &3, Some("key"), T0, &ROTATING), Decision::Rotate);
    }

    #[test]
    fn a_revoked_family_refuses_every_token() {
        let f = FamilyView {
            revoked: true,
            ..family(&2, Some(&1))
        };
        assert_eq!(
            decide(&f, &2, None, T0, &ROTATING),
            Decision::Revoked {
                which: Generation::Current
            }
        );
        assert_eq!(
            decide(&f, &1, None, T0, &ROTATING),
            Decision::Revoked {
                which: Generation::Previous
            }
        );
    }

    #[test]
    fn audit_mode_answers_reuse_and_a_client_that_stopped_rotating_only_refuses() {
        let f = family(&3, Some(&2));
        let audit = Rules::new(true, true, 60);
        assert_eq!(
            decide(&f, &1, None, T0, &audit),
            Decision::Audit {
                which: Generation::Older
            }
        );
        let off = Rules::new(false, false, 60);
        assert_eq!(decide(&f, &1, None, T0, &off), Decision::RotatedOut);
        assert_eq!(decide(&f, &3, None, T0, &off), Decision::Refresh);
    }

    #[test]
    fn after_a_lost_race_the_winners_pair_is_replayed_and_a_still_current_token_refused() {
        let f = family(&2, Some(&1));
        assert_eq!(
            decide_after_lost_race(&f, &1, None, T0, &ROTATING),
            Decision::Replay
        );
        assert_eq!(
            decide_after_lost_race(&f, &2, None, T0, &ROTATING),
            Decision::RotatedOut
        );
    }
}
