//! The change notices ([`Store::change_notices`](tessera_core::store::Store::change_notices)):
//! a task that owns one connection of its own, outside the pool (a pooled connection would
//! listen only while it happens to be idle), runs `LISTEN tessera_changes` on it, and passes on
//! every entry that an append to the change feed announces at commit.
//!
//! A missed notice costs only latency, since followers also poll. So when the connection is lost
//! the task tells the followers to read the feed (what was appended meanwhile is not announced),
//! reconnects with a backoff, listens again, and tells them again. It ends when the store's last
//! clone is dropped ([`Listener`]'s `Drop`).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{stream, StreamExt};
use tessera_core::model::{Change, ChangeKind};
use tessera_core::store::ChangeNotice;
use tessera_core::time::Timestamp;
use tokio::sync::broadcast::Sender;
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

/// Starts listening with `config` (the store's, with keepalives added), passing notices to
/// `signal`'s receivers. Must be called inside a Tokio runtime.
pub(crate) fn spawn(mut config: Config, signal: Arc<Sender<ChangeNotice>>) -> Listener {
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

/// The entry a notification announces: `seq kind until key`.
fn entry(payload: &str) -> Option<Change> {
    let mut parts = payload.splitn(4, ' ');
    let seq = parts.next()?.parse().ok()?;
    let kind = ChangeKind::from_name(parts.next()?)?;
    let until = Timestamp(parts.next()?.parse().ok()?);
    let key = parts.next()?.to_owned();
    Some(Change {
        seq,
        kind,
        key,
        until,
    })
}

fn read_feed(signal: &Sender<ChangeNotice>) {
    // No receiver yet is fine: nobody follows.
    let _ = signal.send(ChangeNotice::ReadFeed);
}

async fn run(config: Config, signal: Arc<Sender<ChangeNotice>>) {
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
        read_feed(&signal);
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
async fn listen(config: &Config, signal: &Sender<ChangeNotice>) -> Session {
    let (client, mut connection) = match config.connect(NoTls).await {
        Ok(connected) => connected,
        Err(error) => return Session::Failed(Some(error)),
    };
    // The connection does its I/O only while polled: this stream is the only place it is, both
    // for LISTEN's reply and for the notifications.
    let mut messages = stream::poll_fn(move |cx| connection.poll_message(cx));
    let wake = |message: AsyncMessage| {
        if let AsyncMessage::Notification(notification) = message {
            let notice =
                entry(notification.payload()).map_or(ChangeNotice::ReadFeed, ChangeNotice::Entry);
            let _ = signal.send(notice);
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
    read_feed(signal);
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
    fn a_notification_names_its_entry() {
        use tessera_core::model::ChangeKind;
        let change = super::entry("42 grant_revoked 1700000000000 some grant id").unwrap();
        assert_eq!(change.seq, 42);
        assert_eq!(change.kind, ChangeKind::GrantRevoked);
        assert_eq!(change.until.0, 1_700_000_000_000);
        assert_eq!(change.key, "some grant id");
        assert!(super::entry("").is_none());
        assert!(super::entry("x grant_revoked 1 k").is_none());
        assert!(super::entry("1 no_such_kind 1 k").is_none());
    }

    #[test]
    fn the_channel_is_the_one_appends_notify() {
        assert!(crate::sql::CHANGE_INSERT.contains("pg_notify('tessera_changes'"));
        assert_eq!(super::LISTEN, format!("LISTEN {}", super::CHANNEL));
    }
}
