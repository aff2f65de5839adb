//! The refresh-token rotation protocol as a `stateright` model, checked against the real rule:
//! a server reading the family calls [`tessera_core::flows::rotation::decide`], the function the
//! refresh flow calls; its write reaches the one store later, conditional on the family being
//! as read, and one that finds it moved is judged again by
//! [`tessera_core::flows::rotation::decide_after_lost_race`], as the refresh flow does
//! (docs/rotation-model.md).
//!
//! Around that server: honest clients that share one persisted refresh token (the instances of
//! one app), send refreshes, persist a rotation when they receive it, retry "already being
//! processed", and may crash or time out (losing only their in-flight request) and send again;
//! a network that loses and duplicates messages and delivers them in any order; the retry window
//! closing as an explicit step; and optionally an attacker holding the first refresh token
//! (rotated out once the family moves on), with or without the grant's DPoP key.
//!
//! Test support (`publish = false`, no crate that ships depends on it).

use std::collections::BTreeSet;

use stateright::{Model, Property};
use tessera_core::flows::rotation::{
    decide, decide_after_lost_race, Decision, FamilyView, Fault, Rules,
};
use tessera_core::time::Timestamp;

pub mod trace;

/// A refresh token, by the order it was minted in: `1` is the first (RT1 in a trace).
pub type Token = u8;

/// When the family was created (any instant will do: only differences matter).
const T0: Timestamp = Timestamp(1_800_000_000_000);

/// The client's retry window in the model.
pub const RETRY_WINDOW_SECS: u64 = 60;

/// The thumbprint of the key the grant is bound to (held by the honest clients), and of the key
/// an attacker without it proves instead.
const CLIENT_KEY: &str = "client-key";
const ATTACKER_KEY: &str = "attacker-key";

/// Who sent a request, and so who its response goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Who {
    Client(u8),
    Attacker,
}

/// What the server answers a refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Answer {
    /// An access token and this refresh token.
    Pair(Token),
    /// An access token and no refresh token.
    AccessOnly,
    /// "token request is already being processed": try again.
    InProgress,
    /// `invalid_grant`: the client must log in again.
    Refused,
}

impl Answer {
    fn answers_tokens(self) -> bool {
        matches!(self, Answer::Pair(_) | Answer::AccessOnly)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Message {
    /// `grant_type=refresh_token&refresh_token=RT{token}`, with a DPoP proof of the grant's key
    /// or not.
    Request {
        from: Who,
        token: Token,
        proves_key: bool,
    },
    Response {
        to: Who,
        token: Token,
        answer: Answer,
    },
}

/// A request a server has read the family for and decided to write for: the write is pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serving {
    pub from: Who,
    pub token: Token,
    pub proves_key: bool,
    pub decision: Decision,
    /// The current token the conditional write expects.
    pub expected: Token,
    /// The token was no longer answerable when it was read (for the revocation's cause).
    pub stale: bool,
}

/// The family as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Family {
    pub current: Token,
    pub previous: Option<Token>,
    pub rotated_at: Option<Timestamp>,
    pub rotated_jkt: Option<&'static str>,
    pub revoked: bool,
    /// The last token minted (the count of tokens so far).
    pub minted: Token,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Client {
    /// The token of the request it waits for an answer to.
    pub awaiting: Option<Token>,
    /// It was refused: its user must log in again.
    pub logged_out: bool,
}

/// Why the family was revoked, as the properties judge it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cause {
    /// A token no longer answerable: rotated out and its window closed (or older).
    StaleToken,
    /// A request of the attacker.
    Attacker,
    /// Anything else: a rule that revoked where none says it should.
    Unnamed,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct State {
    pub now: Timestamp,
    pub family: Family,
    /// Whether the last rotation's retry window is still open (the model's own clock: the
    /// window closes only by the explicit step).
    pub window_open: bool,
    /// The refresh token the clients persisted (one, shared).
    pub stored: Token,
    pub clients: Vec<Client>,
    /// In flight, in no order; a message may be there twice (duplicated).
    pub network: Vec<Message>,
    /// Requests read and decided, their writes pending.
    pub serving: Vec<Serving>,
    pub losses_left: u8,
    pub duplicates_left: u8,
    pub crashes_left: u8,
    pub attacker_sends_left: u8,
    // What happened, for the properties.
    /// (presented, minted): each token minted in answer to a presented one.
    pub minted_for: BTreeSet<(Token, Token)>,
    /// (presented, answer): each answer that carried tokens.
    pub answered: BTreeSet<(Token, Answer)>,
    pub revoked_by: Option<Cause>,
    pub attacker_sent: bool,
    /// A token an honest client still held or had in flight stopped being answerable (its
    /// window closed, or the family rotated twice past it) while the family was live.
    pub window_closed_early: bool,
    pub answered_after_revocation: bool,
    pub wrong_key_revoked: bool,
}

/// A model configuration: who is there and what may go wrong, how often.
#[derive(Debug, Clone)]
pub struct RotationModel {
    pub clients: u8,
    /// Clients stop refreshing once the family has rotated this often (they still recover a
    /// rotation they have not persisted).
    pub max_rotations: u8,
    pub losses: u8,
    pub duplicates: u8,
    pub crashes: u8,
    /// How many requests the attacker (holding RT1) may send; 0: no attacker.
    pub attacker_sends: u8,
    /// The grant is bound to the clients' DPoP key.
    pub dpop_bound: bool,
    /// Whether the explicit "window closes" step exists.
    pub window_expiry: bool,
    /// Clients are interchangeable: states that differ only by their numbering are one.
    pub symmetry: bool,
    /// A seeded fault in the rule (the mutant tests).
    pub fault: Option<Fault>,
    /// Check this property only. `stateright`'s breadth-first checker keeps the last violation
    /// it meets while other properties are still open, and stops at the first one it meets
    /// when none is: checking one property alone gives a shortest counterexample.
    pub only: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// A client sends the stored refresh token.
    Send(u8),
    /// The attacker sends RT1, proving the grant's key or another.
    AttackerSends {
        with_key: bool,
    },
    Deliver(Message),
    Lose(Message),
    Duplicate(Message),
    /// A client crashes, or gives up waiting: its in-flight request is forgotten.
    Crash(u8),
    /// A server's pending write reaches the store.
    Commit(Serving),
    /// The retry window of the last rotation closes.
    WindowCloses,
}

impl RotationModel {
    /// One client that may crash and restart, on a network that may lose and duplicate.
    pub fn one_client_crash_restart() -> Self {
        Self {
            clients: 1,
            max_rotations: 2,
            losses: 1,
            duplicates: 1,
            crashes: 1,
            attacker_sends: 0,
            dpop_bound: false,
            window_expiry: true,
            symmetry: false,
            fault: None,
            only: None,
        }
    }

    /// Two clients sharing one family (one persisted token).
    pub fn two_clients_sharing_one_family() -> Self {
        Self {
            clients: 2,
            symmetry: true,
            ..Self::one_client_crash_restart()
        }
    }

    /// Two clients, an attacker with RT1 (with or without the DPoP key), the window expiring.
    pub fn two_clients_attacker_window_expiry() -> Self {
        Self {
            attacker_sends: 2,
            dpop_bound: true,
            duplicates: 0,
            ..Self::two_clients_sharing_one_family()
        }
    }

    /// On demand, not in CI: three clients, three rotations, the attacker. (With a duplicate and
    /// a second loss, crash and attacker request as well, it outgrows the machine: more than
    /// 5 GB after three minutes.)
    pub fn deep() -> Self {
        Self {
            clients: 3,
            max_rotations: 3,
            losses: 1,
            duplicates: 0,
            crashes: 1,
            attacker_sends: 1,
            dpop_bound: true,
            window_expiry: true,
            symmetry: true,
            fault: None,
            only: None,
        }
    }

    pub fn with_fault(self, fault: Fault) -> Self {
        Self {
            fault: Some(fault),
            ..self
        }
    }

    /// The same model, checking `property` alone (see [`RotationModel::only`]).
    pub fn only(self, property: &'static str) -> Self {
        Self {
            only: Some(property),
            ..self
        }
    }

    fn rules(&self) -> Rules {
        let mut rules = Rules::new(true, false, RETRY_WINDOW_SECS);
        rules.fault = self.fault;
        rules
    }

    fn bound_jkt(&self) -> Option<&'static str> {
        self.dpop_bound.then_some(CLIENT_KEY)
    }

    /// The key a request proves: the grant's, another, or (DPoP not in use) none.
    fn key_of(&self, proves_key: bool) -> Option<&'static str> {
        match (self.dpop_bound, proves_key) {
            (false, _) => None,
            (true, true) => Some(CLIENT_KEY),
            (true, false) => Some(ATTACKER_KEY),
        }
    }

    fn view<'a>(&self, family: &'a Family) -> FamilyView<'a, Token> {
        FamilyView {
            current: Some(&family.current),
            previous: family.previous.as_ref(),
            rotated_at: family.rotated_at,
            rotated_jkt: family.rotated_jkt,
            bound_jkt: self.bound_jkt(),
            revoked: family.revoked,
        }
    }

    /// A server receives a request and reads the family: the rule decides on what it read. A
    /// decision that writes (a rotation, a revocation) is pending until [`Action::Commit`], so
    /// that other requests are served between this read and that write, as on several nodes;
    /// any other is answered at once (`Some`).
    pub fn receive(
        &self,
        state: &mut State,
        from: Who,
        token: Token,
        proves_key: bool,
    ) -> Option<Answer> {
        let decision = decide(
            &self.view(&state.family),
            &token,
            self.key_of(proves_key),
            state.now,
            &self.rules(),
        );
        let stale = !answerable(state, token);
        match decision {
            Decision::Rotate | Decision::Audit { .. } | Decision::Reuse { .. } => {
                let expected = match decision {
                    Decision::Rotate => token,
                    _ => state.family.current,
                };
                state.serving.push(Serving {
                    from,
                    token,
                    proves_key,
                    decision,
                    expected,
                    stale,
                });
                state.serving.sort();
                None
            }
            _ => Some(self.apply(
                state,
                decision,
                &Serving {
                    from,
                    token,
                    proves_key,
                    decision,
                    expected: token,
                    stale,
                },
            )),
        }
    }

    /// The pending write of `serving`, to the store: a rotation only if the family is still as
    /// read (the conditional write), otherwise the refresh lost the race and is judged again on
    /// a fresh read (`decide_after_lost_race`); a revocation as it is.
    pub fn commit(&self, state: &mut State, serving: &Serving) -> Answer {
        let still_as_read = state.family.current == serving.expected && !state.family.revoked;
        match serving.decision {
            Decision::Rotate | Decision::Audit { .. } if still_as_read => {
                self.apply(state, serving.decision, serving)
            }
            Decision::Rotate => {
                let decision = decide_after_lost_race(
                    &self.view(&state.family),
                    &serving.token,
                    self.key_of(serving.proves_key),
                    state.now,
                    &self.rules(),
                );
                let fresh = Serving {
                    decision,
                    stale: !answerable(state, serving.token),
                    ..*serving
                };
                self.apply(state, decision, &fresh)
            }
            // An audit rotation whose write finds the family moved is "already being processed".
            Decision::Audit { .. } => Answer::InProgress,
            decision => self.apply(state, decision, serving),
        }
    }

    /// `decision` carried out on the family in one step, and the answer to `request`.
    fn apply(&self, state: &mut State, decision: Decision, request: &Serving) -> Answer {
        let Serving {
            from,
            token,
            proves_key,
            stale,
            ..
        } = *request;
        let key = self.key_of(proves_key);
        let was_revoked = state.family.revoked;
        let answer = match decision {
            Decision::Rotate => rotate(state, token, token, key),
            Decision::Audit { .. } => {
                let current = state.family.current;
                rotate(state, current, token, key)
            }
            Decision::Refresh => Answer::AccessOnly,
            Decision::Replay => {
                // The pair is rebuilt from the presented token: answered only if it is the
                // family's current one (as the server checks).
                let rebuilt = state
                    .minted_for
                    .iter()
                    .find(|(parent, _)| *parent == token)
                    .map(|(_, child)| *child);
                if rebuilt == Some(state.family.current) {
                    Answer::Pair(state.family.current)
                } else {
                    Answer::InProgress
                }
            }
            Decision::InProgress => Answer::InProgress,
            Decision::Reuse { .. } => {
                if !state.family.revoked {
                    state.family.revoked = true;
                    state.revoked_by = Some(match (from, stale) {
                        (Who::Attacker, _) => Cause::Attacker,
                        (Who::Client(_), true) => Cause::StaleToken,
                        (Who::Client(_), false) => Cause::Unnamed,
                    });
                    if self.dpop_bound && !proves_key {
                        state.wrong_key_revoked = true;
                    }
                }
                Answer::Refused
            }
            Decision::KeyMismatch | Decision::Revoked { .. } | Decision::RotatedOut => {
                Answer::Refused
            }
        };
        if answer.answers_tokens() {
            state.answered.insert((token, answer));
            if was_revoked {
                state.answered_after_revocation = true;
            }
        }
        answer
    }

    fn honest_tokens(state: &State) -> impl Iterator<Item = Token> + '_ {
        let live_clients = state.clients.iter().any(|c| !c.logged_out);
        let stored = live_clients.then_some(state.stored);
        let awaiting = state.clients.iter().filter_map(|c| c.awaiting);
        let in_flight = state.network.iter().filter_map(|m| match m {
            Message::Request {
                from: Who::Client(_),
                token,
                ..
            } => Some(*token),
            _ => None,
        });
        let being_served = state.serving.iter().filter_map(|r| match r.from {
            Who::Client(_) => Some(r.token),
            Who::Attacker => None,
        });
        stored
            .into_iter()
            .chain(awaiting)
            .chain(in_flight)
            .chain(being_served)
    }

    fn note_closed_windows(state: &mut State) {
        if !state.family.revoked && Self::honest_tokens(state).any(|t| !answerable(state, t)) {
            state.window_closed_early = true;
        }
    }

    fn client_mut(state: &mut State, i: u8) -> Option<&mut Client> {
        state.clients.get_mut(usize::from(i))
    }

    /// The state with its clients numbered in a canonical order (their messages renumbered to
    /// match): two states that differ only by which client is which become one.
    pub fn canonical(state: &State) -> State {
        let count = state.clients.len();
        // What tells a client apart, with its number left out: its state, then what is in
        // flight to or from it and what the servers are doing for it.
        let anonymous = |i: usize| {
            let of = |w: Who| w == Who::Client(u8::try_from(i).unwrap_or(u8::MAX));
            let mut messages: Vec<Message> = state
                .network
                .iter()
                .filter(|m| of(party(m)))
                .map(|m| readdress(m, &|_| 0))
                .collect();
            messages.sort();
            let mut serving: Vec<Serving> = state
                .serving
                .iter()
                .filter(|r| of(r.from))
                .map(|r| Serving {
                    from: Who::Client(0),
                    ..*r
                })
                .collect();
            serving.sort();
            (state.clients.get(i).copied(), messages, serving)
        };
        let mut order: Vec<usize> = (0..count).collect();
        order.sort_by_cached_key(|&i| anonymous(i));
        let mut new_index = vec![0u8; count];
        for (new, &old) in order.iter().enumerate() {
            if let Some(slot) = new_index.get_mut(old) {
                *slot = u8::try_from(new).unwrap_or(u8::MAX);
            }
        }
        let renumber = |old: usize| new_index.get(old).copied().unwrap_or(u8::MAX);
        let mut next = state.clone();
        next.clients = order
            .iter()
            .filter_map(|&old| state.clients.get(old).copied())
            .collect();
        next.network = state
            .network
            .iter()
            .map(|m| readdress(m, &renumber))
            .collect();
        next.network.sort();
        next.serving = state
            .serving
            .iter()
            .map(|r| Serving {
                from: renumbered(r.from, &renumber),
                ..*r
            })
            .collect();
        next.serving.sort();
        next
    }
}

/// The answer to a request goes back over the network; the attacker's are its own business (not
/// modelled further).
fn respond(state: &mut State, to: Who, token: Token, answer: Answer) {
    if let Who::Client(_) = to {
        state.network.push(Message::Response { to, token, answer });
    }
}

/// Rotates the family from `from` (the presented token, or in audit mode the current one) and
/// answers the new pair to `presented`.
fn rotate(state: &mut State, from: Token, presented: Token, key: Option<&'static str>) -> Answer {
    let family = &mut state.family;
    // The conditional write: only if `from` is still current and the family live. In one step
    // this always holds; it is checked all the same, as the store does.
    if family.current != from || family.revoked {
        return Answer::InProgress;
    }
    let successor = family.minted.saturating_add(1);
    family.minted = successor;
    family.previous = Some(from);
    family.current = successor;
    family.rotated_at = Some(state.now);
    family.rotated_jkt = key;
    state.window_open = true;
    state.minted_for.insert((presented, successor));
    Answer::Pair(successor)
}

/// Whether `token` is still answered with tokens by the rules as the model states them: the
/// current one, or the previous one while its window is open.
pub fn answerable(state: &State, token: Token) -> bool {
    token == state.family.current || (Some(token) == state.family.previous && state.window_open)
}

/// The client (or the attacker) a message is from or to.
fn party(message: &Message) -> Who {
    match *message {
        Message::Request { from, .. } => from,
        Message::Response { to, .. } => to,
    }
}

fn renumbered(who: Who, renumber: &dyn Fn(usize) -> u8) -> Who {
    match who {
        Who::Client(i) => Who::Client(renumber(usize::from(i))),
        Who::Attacker => Who::Attacker,
    }
}

fn readdress(message: &Message, renumber: &dyn Fn(usize) -> u8) -> Message {
    match *message {
        Message::Request {
            from,
            token,
            proves_key,
        } => Message::Request {
            from: renumbered(from, renumber),
            token,
            proves_key,
        },
        Message::Response { to, token, answer } => Message::Response {
            to: renumbered(to, renumber),
            token,
            answer,
        },
    }
}

fn remove_one(network: &mut Vec<Message>, message: &Message) -> bool {
    match network.iter().position(|m| m == message) {
        Some(at) => {
            network.remove(at);
            true
        }
        None => false,
    }
}

impl Model for RotationModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![State {
            now: T0,
            family: Family {
                current: 1,
                previous: None,
                rotated_at: None,
                rotated_jkt: None,
                revoked: false,
                minted: 1,
            },
            window_open: false,
            stored: 1,
            clients: vec![
                Client {
                    awaiting: None,
                    logged_out: false,
                };
                usize::from(self.clients)
            ],
            network: Vec::new(),
            serving: Vec::new(),
            losses_left: self.losses,
            duplicates_left: self.duplicates,
            crashes_left: self.crashes,
            attacker_sends_left: self.attacker_sends,
            minted_for: BTreeSet::new(),
            answered: BTreeSet::new(),
            revoked_by: None,
            attacker_sent: false,
            window_closed_early: false,
            answered_after_revocation: false,
            wrong_key_revoked: false,
        }]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        let rotations = state.family.minted.saturating_sub(1);
        let more = rotations < self.max_rotations || state.stored != state.family.current;
        for (i, client) in (0u8..).zip(&state.clients) {
            if client.logged_out {
                continue;
            }
            if client.awaiting.is_none() && more {
                actions.push(Action::Send(i));
            }
            if client.awaiting.is_some() && state.crashes_left > 0 {
                actions.push(Action::Crash(i));
            }
        }
        if state.attacker_sends_left > 0 {
            actions.push(Action::AttackerSends { with_key: true });
            if self.dpop_bound {
                actions.push(Action::AttackerSends { with_key: false });
            }
        }
        let mut distinct = state.network.clone();
        distinct.sort();
        distinct.dedup();
        for message in distinct {
            actions.push(Action::Deliver(message));
            if state.losses_left > 0 {
                actions.push(Action::Lose(message));
            }
            if state.duplicates_left > 0 {
                actions.push(Action::Duplicate(message));
            }
        }
        let mut pending = state.serving.clone();
        pending.dedup();
        actions.extend(pending.into_iter().map(Action::Commit));
        if self.window_expiry && state.window_open && !state.family.revoked {
            actions.push(Action::WindowCloses);
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut state = last.clone();
        match action {
            Action::Send(i) => {
                let token = state.stored;
                Self::client_mut(&mut state, i)?.awaiting = Some(token);
                state.network.push(Message::Request {
                    from: Who::Client(i),
                    token,
                    proves_key: true,
                });
            }
            Action::AttackerSends { with_key } => {
                state.attacker_sends_left = state.attacker_sends_left.saturating_sub(1);
                state.network.push(Message::Request {
                    from: Who::Attacker,
                    token: 1,
                    proves_key: with_key,
                });
            }
            Action::Deliver(message) => {
                if !remove_one(&mut state.network, &message) {
                    return None;
                }
                match message {
                    Message::Request {
                        from,
                        token,
                        proves_key,
                    } => {
                        if from == Who::Attacker {
                            state.attacker_sent = true;
                        }
                        if let Some(answer) = self.receive(&mut state, from, token, proves_key) {
                            respond(&mut state, from, token, answer);
                        }
                    }
                    Message::Response {
                        to: Who::Client(i),
                        token,
                        answer,
                    } => {
                        let client = Self::client_mut(&mut state, i)?;
                        // A response to a request it forgot (it crashed since) is dropped.
                        if client.awaiting == Some(token) {
                            client.awaiting = None;
                            match answer {
                                Answer::Pair(successor) => state.stored = successor,
                                Answer::AccessOnly | Answer::InProgress => {}
                                Answer::Refused => client.logged_out = true,
                            }
                        }
                    }
                    Message::Response {
                        to: Who::Attacker, ..
                    } => {}
                }
            }
            Action::Lose(message) => {
                state.losses_left = state.losses_left.saturating_sub(1);
                if !remove_one(&mut state.network, &message) {
                    return None;
                }
            }
            Action::Duplicate(message) => {
                state.duplicates_left = state.duplicates_left.saturating_sub(1);
                state.network.push(message);
            }
            Action::Commit(serving) => {
                let at = state.serving.iter().position(|s| *s == serving)?;
                state.serving.remove(at);
                let answer = self.commit(&mut state, &serving);
                respond(&mut state, serving.from, serving.token, answer);
            }
            Action::Crash(i) => {
                state.crashes_left = state.crashes_left.saturating_sub(1);
                Self::client_mut(&mut state, i)?.awaiting = None;
            }
            Action::WindowCloses => {
                let rotated_at = state.family.rotated_at?;
                state.now = rotated_at.plus_secs(RETRY_WINDOW_SECS);
                state.window_open = false;
            }
        }
        Self::note_closed_windows(&mut state);
        state.network.sort();
        Some(if self.symmetry {
            Self::canonical(&state)
        } else {
            state
        })
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let mut properties = all_properties();
        if let Some(only) = self.only {
            properties.retain(|p| p.name == only);
        }
        properties
    }
}

fn all_properties() -> Vec<Property<RotationModel>> {
    type Model = RotationModel;
    {
        vec![
            Property::always(ONE_SUCCESSOR, |_: &Model, s: &State| {
                let parents: BTreeSet<Token> = s.minted_for.iter().map(|(p, _)| *p).collect();
                parents.len() == s.minted_for.len()
            }),
            Property::always(ONE_LIVE_TOKEN, |m: &Model, s: &State| {
                let view = m.view(&s.family);
                let rules = m.rules();
                let refreshable = (1..=s.family.minted)
                    .filter(|t| {
                        matches!(
                            decide(&view, t, m.key_of(true), s.now, &rules),
                            Decision::Rotate
                        )
                    })
                    .count();
                refreshable <= 1
            }),
            Property::always(IDENTICAL_PAIR, |_: &Model, s: &State| {
                let parents: BTreeSet<Token> = s.answered.iter().map(|(p, _)| *p).collect();
                parents.len() == s.answered.len()
            }),
            Property::always(NOTHING_AFTER_REVOCATION, |_: &Model, s: &State| {
                !s.answered_after_revocation
            }),
            Property::always(NO_HONEST_LOGOUT, |_: &Model, s: &State| {
                s.attacker_sent || s.window_closed_early || s.clients.iter().all(|c| !c.logged_out)
            }),
            Property::always(REVOCATION_HAS_A_CAUSE, |_: &Model, s: &State| {
                s.revoked_by != Some(Cause::Unnamed)
            }),
            Property::always(WRONG_KEY_NEVER_REVOKES, |_: &Model, s: &State| {
                !s.wrong_key_revoked
            }),
            Property::sometimes(FAMILY_REVOKED, |_: &Model, s: &State| s.family.revoked),
            Property::sometimes(TWO_ROTATIONS, |_: &Model, s: &State| s.family.minted >= 3),
        ]
    }
}

pub const ONE_SUCCESSOR: &str = "at most one successor per parent";
pub const ONE_LIVE_TOKEN: &str = "at most one live refresh token per family";
pub const IDENTICAL_PAIR: &str = "every response for the same parent carries the identical pair";
pub const NOTHING_AFTER_REVOCATION: &str = "nothing succeeds after the family is revoked";
pub const NO_HONEST_LOGOUT: &str =
    "no honest client is forced to log in again (no attacker, no window closed early)";
pub const REVOCATION_HAS_A_CAUSE: &str =
    "a revocation has a named cause (a stale token after its window, or the attacker)";
pub const WRONG_KEY_NEVER_REVOKES: &str = "a request with the wrong key never revokes";
pub const FAMILY_REVOKED: &str = "a family is revoked";
pub const TWO_ROTATIONS: &str = "two rotations happen";

/// Every `always` property, by name.
pub const SAFETY: [&str; 7] = [
    ONE_SUCCESSOR,
    ONE_LIVE_TOKEN,
    IDENTICAL_PAIR,
    NOTHING_AFTER_REVOCATION,
    NO_HONEST_LOGOUT,
    REVOCATION_HAS_A_CAUSE,
    WRONG_KEY_NEVER_REVOKES,
];
