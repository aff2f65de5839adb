//! Every request runs in a span with its method, route template and request id, so a log line
//! written while it is handled (here the domain's "failed login") says which request it is.

use std::io;
use std::sync::{Arc, Mutex};

use tracing::instrument::WithSubscriber;
use tracing_subscriber::fmt::MakeWriter;

use crate::support::*;

/// A log sink the test reads back.
#[derive(Clone, Default)]
pub(crate) struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl CapturedLog {
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl io::Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for CapturedLog {
    type Writer = CapturedLog;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// A subscriber of INFO and above, without colours, writing into the returned log.
pub(crate) fn captured_log() -> (CapturedLog, impl tracing::Subscriber + Send + Sync) {
    let log = CapturedLog::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    (log, subscriber)
}

/// Runs `future` with `subscriber` as its dispatcher. Tracing caches each callsite's interest
/// process-wide: a test on another thread that hits a callsite while no subscriber of ours is
/// registered may cache it as disabled, racing with our registration (seen once in CI: the
/// event logged, its request span missing). Once our dispatcher is registered, the interest of
/// every callsite is computed again, so what this future logs is what the code logs.
pub(crate) async fn logged_with<F: std::future::Future>(
    subscriber: impl tracing::Subscriber + Send + Sync + 'static,
    future: F,
) -> F::Output {
    let future = future.with_subscriber(subscriber);
    tracing::callsite::rebuild_interest_cache();
    future.await
}

#[tokio::test]
async fn a_log_line_written_in_a_handler_names_the_route_and_the_request_id() {
    let harness = Harness::new().await;
    let client = harness.confidential().await;
    let mut browser = Browser::default();
    let login_page = harness
        .get(&harness.authorize_url(&client, &[]), Some(&mut browser))
        .await;
    let html = login_page.text();
    let body = form(&[
        ("request", &hidden_value(&html, "request").unwrap()),
        ("csrf_token", &hidden_value(&html, "csrf_token").unwrap()),
        ("username", USERNAME),
        ("password", "not the password"),
    ]);

    let (log, subscriber) = captured_log();
    let reply = logged_with(
        subscriber,
        harness.post_form_from(
            None,
            &[("x-request-id", "req-4711")],
            "/services/oauth2/authorize/login?state=never-logged",
            &body,
            Some(&mut browser),
        ),
    )
    .await;

    assert_eq!(reply.header("x-request-id"), Some("req-4711"));
    let log = log.text();
    let line = log
        .lines()
        .find(|l| l.contains("failed login"))
        .unwrap_or_else(|| panic!("no failed-login line:\n{log}"));
    assert!(line.contains("req-4711"), "{line}");
    assert!(
        line.contains("route=\"/services/oauth2/authorize/login\""),
        "{line}"
    );
    assert!(line.contains("method=\"POST\""), "{line}");
    assert!(!line.contains("never-logged"), "no query string: {line}");
}

#[tokio::test]
async fn a_request_without_a_usable_id_gets_one_of_ours_echoed() {
    let harness = Harness::new().await;
    for sent in [None, Some("has spaces in it")] {
        let mut request = axum::http::Request::builder().uri("/healthz");
        if let Some(id) = sent {
            request = request.header("x-request-id", id);
        }
        let reply = harness
            .send(request.body(axum::body::Body::empty()).unwrap())
            .await;
        let id = reply.header("x-request-id").unwrap();
        assert_eq!(id.len(), 32, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    }
}
