//! `tessera demo`: the whole refresh-token story, live and narrated, against a server started in
//! this process on a free port. Acts 1 to 6 tell the flow as it should go — login, an API call,
//! expiry and a proactive refresh with rotation, an access token revoked early and the reactive
//! path, a stolen token replayed and its family revoked, and the "log in again" a real app turns
//! into a login prompt. Acts 7 to 10 make the flow's common mistakes on purpose, and a quiz
//! closes. Each request is a line of a sequence diagram.

mod mistakes;
mod narration;
mod stage;
mod story;

use std::future::Future;

use clap::{Args, ValueEnum};

use narration::{explain, heading, mute, Pause};
use stage::Stage;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Access-token lifetime of the demo client.
    #[arg(long, default_value = "4s", value_parser = |s: &str| tessera_core::time::parse_duration_secs(s).filter(|v| *v > 0).ok_or("a positive duration like 4s"))]
    access_token_ttl: u64,
    /// Pause after each act until Enter is pressed (and before each answer of the quiz).
    #[arg(long)]
    step: bool,
    /// Run only this act. An act of the story (login to log-in-again) first runs the acts it
    /// builds on, without telling them.
    #[arg(long, value_enum, value_name = "NAME")]
    act: Option<Act>,
}

/// The demo's acts, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum Act {
    /// 1. Log in (Web Server flow with PKCE).
    Login,
    /// 2. Call the API.
    Api,
    /// 3. The access token expires; a refresh before the next call, with rotation.
    Expiry,
    /// 4. The access token is revoked early; a refresh on the 401, the call replayed.
    EarlyRevocation,
    /// 5. An attacker replays a stolen, rotated-out refresh token.
    StolenToken,
    /// 6. The family is revoked: the app must ask the user to log in again.
    LogInAgain,
    /// 7. Mistake: not asking for the refresh_token scope.
    NoRefreshScope,
    /// 8. Mistake: counting on a refresh token that has expired.
    ExpiredRefreshToken,
    /// 9. Mistake: storing refresh tokens in plain text.
    PlainTextStorage,
    /// 10. Mistake: not keeping the rotated refresh token.
    KeptOldToken,
    /// 11. Quiz: three questions, each answered by an act.
    Quiz,
}

/// Which acts a run plays, and how it paces them.
struct Playbill {
    only: Option<Act>,
    pause: Pause,
}

impl Playbill {
    fn shows(&self, act: Act) -> bool {
        self.only.is_none_or(|only| only == act)
    }

    /// Whether `act` runs: it is shown, or a later act of the story builds on it.
    fn plays(&self, act: Act) -> bool {
        match self.only {
            None => true,
            Some(only) => only == act || (only <= Act::LogInAgain && act < only),
        }
    }

    /// Runs `act`, told if it is shown and silently otherwise, then pauses under `--step`.
    async fn play<T>(
        &self,
        act: Act,
        scene: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        mute(!self.shows(act));
        let result = scene.await;
        mute(false);
        let value = result?;
        if self.shows(act) {
            self.pause.wait("Press Enter for the next act").await?;
        }
        Ok(value)
    }
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let bill = Playbill {
        only: args.act,
        pause: Pause::new(args.step),
    };
    let stage = Stage::start().await?;
    let app = story::register_demo_app(&stage, args.access_token_ttl).await?;

    if bill.plays(Act::Login) {
        let demo = bill.play(Act::Login, story::log_in(&stage, &app)).await?;
        let mut path = String::new();
        if bill.plays(Act::Api) {
            path = bill.play(Act::Api, demo.call_the_api()).await?;
        }
        if bill.plays(Act::Expiry) {
            bill.play(Act::Expiry, demo.refresh_before_expiry(&path))
                .await?;
        }
        if bill.plays(Act::EarlyRevocation) {
            bill.play(
                Act::EarlyRevocation,
                demo.refresh_on_a_401_after_an_early_revocation(&path),
            )
            .await?;
        }
        if bill.plays(Act::StolenToken) {
            bill.play(
                Act::StolenToken,
                demo.replay_the_stolen_first_refresh_token(),
            )
            .await?;
        }
        if bill.plays(Act::LogInAgain) {
            bill.play(Act::LogInAgain, demo.end_with_log_in_again(&path))
                .await?;
        }
    }
    if bill.plays(Act::NoRefreshScope) {
        bill.play(
            Act::NoRefreshScope,
            mistakes::no_refresh_scope(&stage, &app),
        )
        .await?;
    }
    if bill.plays(Act::ExpiredRefreshToken) {
        bill.play(
            Act::ExpiredRefreshToken,
            mistakes::expired_refresh_token(&stage),
        )
        .await?;
    }
    if bill.plays(Act::PlainTextStorage) {
        bill.play(
            Act::PlainTextStorage,
            mistakes::plain_text_storage(&stage, &app),
        )
        .await?;
    }
    if bill.plays(Act::KeptOldToken) {
        bill.play(Act::KeptOldToken, mistakes::kept_old_token(&stage))
            .await?;
    }
    if bill.plays(Act::Quiz) {
        quiz(&bill.pause).await?;
    }
    heading("Done. Everything above ran against a real server; nothing was simulated.");
    Ok(())
}

/// The three questions a learner should now answer, each answered by the acts that showed it.
const QUIZ: [(&str, &str); 3] = [
    (
        "What is the refresh-token flow for?",
        "To keep an app working without asking the user to log in again: access tokens stay \
         short-lived, and the refresh token renews them — before expiry (act 3) or on a 401 \
         (act 4). Without it, the user logs in again every time one expires (act 7).",
    ),
    (
        "Where do refresh tokens belong?",
        "In the app's own secure store: encrypted, with the key kept apart (the OS keyring or a \
         0600 file), never in a plain file, browser storage or a log — a copied plain file is a \
         working session for a thief (act 9). And always the newest one: a rotated-out token \
         presented again revokes the whole family (acts 5 and 10).",
    ),
    (
        "What happens when a refresh token expires?",
        "The token endpoint answers 400 invalid_grant. The app stops — no retry loop — and asks \
         the user to log in again; the token manager says so with one ReauthRequired error \
         (acts 6 and 8).",
    ),
];

/// Act 11: the quiz; under `--step` each answer waits for Enter, so the learner can answer first.
async fn quiz(pause: &Pause) -> anyhow::Result<()> {
    heading("11. Quiz: what you can answer now");
    for (number, (question, answer)) in QUIZ.iter().enumerate() {
        explain(&format!("Q{}. {question}", number + 1));
        pause.wait("Press Enter for the answer").await?;
        explain(&format!("A{}. {answer}", number + 1));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_act_of_the_story_plays_the_acts_it_builds_on_and_a_mistake_plays_alone() {
        let bill = |only| Playbill {
            only: Some(only),
            pause: Pause::new(false),
        };
        let stolen = bill(Act::StolenToken);
        assert!(stolen.plays(Act::Login) && stolen.plays(Act::EarlyRevocation));
        assert!(stolen.shows(Act::StolenToken) && !stolen.shows(Act::Login));
        assert!(!stolen.plays(Act::LogInAgain) && !stolen.plays(Act::NoRefreshScope));
        let kept = bill(Act::KeptOldToken);
        assert!(!kept.plays(Act::Login) && !kept.plays(Act::PlainTextStorage));
        assert!(kept.plays(Act::KeptOldToken) && !kept.plays(Act::Quiz));
    }

    #[test]
    fn every_answer_of_the_quiz_points_at_an_act() {
        for (question, answer) in QUIZ {
            assert!(answer.contains("(act"), "{question}: {answer}");
        }
    }
}
