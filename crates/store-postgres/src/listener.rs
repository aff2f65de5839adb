//! The change signal ([`Store::change_signal`](tessera_core::store::Store::change_signal)): a
//! task that owns one connection of its own, outside the pool (a pooled connection would listen
//! only while it happens to be idle), runs `LISTEN tessera_changes` on it, and wakes every
//! follower on each notification, which every append to the change feed sends at commit.
//!
//! A wake-up is a hint to read the feed now; a missed one costs only latency, since followers
//! also poll. So when the connection is lost the task wakes the followers once (what was
//! appended meanwhile is not announced), reconnects with a backoff, listens again, and wakes
//! them again. It ends when the store's last clone is dropped ([`Listener`]'s `Drop`).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{stream, StreamExt};
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio_postgres::{AsyncMessage, Config, NoTls};

/// The channel every append notifies.
pub(crate) const CHANNEL: &str = "tessera_changes";
const LISTEN: &str = "LISTEN tessera_changes";
/// The first wait before reconnecting, doubled after each failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// TCP keepalives on the listening connection, which otherwise only reads: a peer that
/// vanished (a failed-over database, a cut network) is noticed in about a minute, not hours.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_RETRIES: u32 = 3;
/// How the listening connection names itself in `pg_stat_activity`.
pub(crate) const APPLICATION_NAME: &str = "tessera-listener";

/// The listening task, aborted when dropped.
#[derive(Debug)]
pub(crate) struct Listener {
    task: AbortHandle,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts listening with `config` (the store's, with keepalives added), waking `signal`'s
/// waiters. Must be called inside a Tokio runtime.
pub(crate) fn spawn(mut config: Config, signal: Arc<Notify>) -> Listener {
    config
        .application_name(APPLICATION_NAME)
        .keepalives(true)
        .keepalives_idle(KEEPALIVE_IDLE)
        .keepalives_interval(KEEPALIVE_INTERVAL)
        .keepalives_retries(KEEPALIVE_RETRIES);
    let task = tokio::spawn(run(config, signal));
    Listener {
        task: task.abort_handle(),
    }
}

async fn run(config: Config, signal: Arc<Notify>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        match listen(&config, &signal).await {
            Session::Lost => {
                tracing::warn!("the change feed's listening connection was lost; reconnecting");
                backoff = FIRST_BACKOFF;
            }
            Session::Failed(error) => {
                let error = error.map_or_else(
                    || "connection closed".to_owned(),
                    |e| crate::error::classify(&e).to_string(),
                );
                tracing::warn!(%error, ?backoff, "cannot listen to the change feed; retrying");
            }
        }
        // Whatever was appended while nobody listened is read by the followers now.
        signal.notify_waiters();
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// How a listening connection ended.
enum Session {
    /// It listened, then the connection was lost.
    Lost,
    /// It never got to listen.
    Failed(Option<tokio_postgres::Error>),
}

/// Connects, listens, and wakes the followers on every notification until the connection ends.
async fn listen(config: &Config, signal: &Notify) -> Session {
    let (client, mut connection) = match config.connect(NoTls).await {
        Ok(connected) => connected,
        Err(error) => return Session::Failed(Some(error)),
    };
    // The connection does its I/O only while polled: this stream is the only place it is, both
    // for LISTEN's reply and for the notifications.
    let mut messages = stream::poll_fn(move |cx| connection.poll_message(cx));
    let wake = |message: AsyncMessage| {
        if let AsyncMessage::Notification(_) = message {
            signal.notify_waiters();
        }
    };
    {
        let listening = client.batch_execute(LISTEN);
        tokio::pin!(listening);
        loop {
            tokio::select! {
                outcome = &mut listening => match outcome {
                    Ok(()) => break,
                    Err(error) => return Session::Failed(Some(error)),
                },
                message = messages.next() => match message {
                    Some(Ok(message)) => wake(message),
                    Some(Err(error)) => return Session::Failed(Some(error)),
                    None => return Session::Failed(None),
                },
            }
        }
    }
    tracing::debug!(channel = CHANNEL, "listening to the change feed");
    // Anything appended before LISTEN took effect is read now.
    signal.notify_waiters();
    while let Some(message) = messages.next().await {
        match message {
            Ok(message) => wake(message),
            Err(error) => {
                let error = crate::error::classify(&error);
                tracing::warn!(%error, "the change feed's listening connection failed");
                break;
            }
        }
    }
    drop(client);
    Session::Lost
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_channel_is_the_one_appends_notify() {
        assert!(crate::sql::CHANGE_INSERT.contains("pg_notify('tessera_changes'"));
        assert_eq!(super::LISTEN, format!("LISTEN {}", super::CHANNEL));
    }
}
