//! A path of the model told as what happened on the wire: each request the server received as
//! the HTTP request it is, with the answer the model's server gave, and between them what the
//! network and the clients did ("response lost", "client crashes", "window closes").
//!
//! The server's lines have one shape, which [`parse_request_line`] reads back, so that a
//! recorded counterexample can be replayed against a real server (crates/cli/tests).

use tessera_core::flows::rotation::Decision;

use crate::{Action, Answer, Message, RotationModel, State, Who, RETRY_WINDOW_SECS};

/// A counterexample recorded from the model (a second rotation on an in-window replay), relative
/// to this crate's directory: the server test replays it against a real `tessera serve`.
pub const RECORDED_TRACE: &str = "traces/rotate-on-replay.trace";

/// The token endpoint every request of a trace goes to.
pub const TOKEN_ENDPOINT: &str = "POST /services/oauth2/token";

fn who(who: Who) -> String {
    match who {
        Who::Client(i) => format!("client {}", u16::from(i) + 1),
        Who::Attacker => "attacker".to_owned(),
    }
}

fn answer(answer: Answer) -> String {
    match answer {
        Answer::Pair(token) => format!("200 access_token, refresh_token=RT{token}"),
        Answer::AccessOnly => "200 access_token, no refresh_token".to_owned(),
        Answer::InProgress => {
            "400 invalid_grant: token request is already being processed".to_owned()
        }
        Answer::Refused => "400 invalid_grant: expired access/refresh token".to_owned(),
    }
}

fn message(m: &Message) -> String {
    match *m {
        Message::Request { from, token, .. } => format!("the request RT{token} of {}", who(from)),
        Message::Response { to, token, answer } => {
            format!(
                "the response to {} for RT{token} ({})",
                who(to),
                self::answer(answer)
            )
        }
    }
}

/// The request line of a refresh the server receives: the endpoint, the form, the DPoP proof
/// when one is involved, and the sender, then ` -> ` and the answer.
fn request_line(model: &RotationModel, from: Who, token: Token, proves_key: bool) -> String {
    let dpop = match (model.dpop_bound, proves_key) {
        (false, _) => "",
        (true, true) => " DPoP=<proof of the grant's key>",
        (true, false) => " DPoP=<proof of another key>",
    };
    format!(
        "{TOKEN_ENDPOINT} grant_type=refresh_token&refresh_token=RT{token}{dpop} from {}",
        who(from)
    )
}

type Token = crate::Token;

/// One line per step of `path` (as `stateright`'s `Path::into_vec` gives it).
pub fn http_trace(model: &RotationModel, path: &[(State, Option<Action>)]) -> Vec<String> {
    let mut lines = Vec::new();
    for (state, action) in path {
        let Some(action) = action else { continue };
        let line = match action {
            Action::Send(i) => format!(
                "{} sends RT{} (its stored refresh token)",
                who(Who::Client(*i)),
                state.stored
            ),
            Action::AttackerSends { with_key } => format!(
                "attacker sends the stolen RT1{}",
                match (model.dpop_bound, with_key) {
                    (false, _) => "",
                    (true, true) => " with the grant's DPoP key",
                    (true, false) => " without the grant's DPoP key",
                }
            ),
            Action::Deliver(Message::Request {
                from,
                token,
                proves_key,
            }) => {
                let mut after = state.clone();
                let answered = match model.receive(&mut after, *from, *token, *proves_key) {
                    Some(answered) => answer(answered),
                    None => "(the family read: its write pending)".to_owned(),
                };
                format!(
                    "{} -> {answered}",
                    request_line(model, *from, *token, *proves_key)
                )
            }
            Action::Commit(serving) => {
                let mut after = state.clone();
                let answered = model.commit(&mut after, serving);
                let write = match serving.decision {
                    Decision::Reuse { .. } => "revocation".to_owned(),
                    _ => format!("rotation (if RT{} is still current)", serving.expected),
                };
                format!(
                    "the {write} for RT{} from {} reaches the store -> {}",
                    serving.token,
                    who(serving.from),
                    answer(answered)
                )
            }
            Action::Deliver(m @ Message::Response { to, token, answer }) => {
                let waits = match to {
                    Who::Client(i) => state
                        .clients
                        .get(usize::from(*i))
                        .is_some_and(|c| c.awaiting == Some(*token)),
                    Who::Attacker => false,
                };
                let what = match (waits, answer) {
                    (false, _) => "ignored: it no longer waits for it".to_owned(),
                    (true, Answer::Pair(t)) => format!("persists RT{t}"),
                    (true, Answer::AccessOnly) => format!("keeps RT{token}"),
                    (true, Answer::InProgress) => "will retry".to_owned(),
                    (true, Answer::Refused) => "its user must log in again".to_owned(),
                };
                format!("{} arrives: {what}", message(m))
            }
            Action::Lose(m) => format!("network loses {}", message(m)),
            Action::Duplicate(m) => format!("network duplicates {}", message(m)),
            Action::Crash(i) => format!(
                "{} crashes (or gives up waiting) and restarts: its request is forgotten",
                who(Who::Client(*i))
            ),
            Action::WindowCloses => {
                format!("the retry window closes ({RETRY_WINDOW_SECS} s pass)")
            }
        };
        lines.push(line);
    }
    lines
}

/// A request the server received in a recorded trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub token: Token,
    pub attacker: bool,
    /// `Some(true)`: with a proof of the grant's key; `Some(false)`: of another; `None`: no
    /// DPoP.
    pub proves_key: Option<bool>,
}

/// A step of a recorded trace that the server sees: a request, or the window closing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerStep {
    Request(RecordedRequest),
    WindowCloses,
}

/// Reads back the server's steps of a trace [`http_trace`] printed; every other line is what
/// clients and the network did, which a replay does not need.
pub fn server_steps(trace: &str) -> Vec<ServerStep> {
    trace
        .lines()
        .filter_map(|line| {
            if line.starts_with("the retry window closes") {
                Some(ServerStep::WindowCloses)
            } else {
                parse_request_line(line).map(ServerStep::Request)
            }
        })
        .collect()
}

/// A server line of a trace, read back.
pub fn parse_request_line(line: &str) -> Option<RecordedRequest> {
    let rest = line.strip_prefix(TOKEN_ENDPOINT)?;
    let rest = rest
        .trim_start()
        .strip_prefix("grant_type=refresh_token&refresh_token=RT")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let token = digits.parse().ok()?;
    let proves_key = if rest.contains("DPoP=<proof of the grant's key>") {
        Some(true)
    } else if rest.contains("DPoP=<proof of another key>") {
        Some(false)
    } else {
        None
    };
    let sender = rest.split(" -> ").next()?;
    Some(RecordedRequest {
        token,
        attacker: sender.ends_with("from attacker"),
        proves_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_printed_request_line_reads_back() {
        let model = RotationModel::two_clients_attacker_window_expiry();
        let line = format!(
            "{} -> {}",
            request_line(&model, Who::Attacker, 1, false),
            answer(Answer::Refused)
        );
        assert_eq!(
            parse_request_line(&line),
            Some(RecordedRequest {
                token: 1,
                attacker: true,
                proves_key: Some(false)
            })
        );
        assert_eq!(
            parse_request_line("client 1 sends RT1 (its stored refresh token)"),
            None
        );
    }
}
