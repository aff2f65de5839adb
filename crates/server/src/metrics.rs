//! `/metrics`: the Prometheus text exposition of every metric the process records (the HTTP
//! ones here, the domain's and the stores' in `tessera_core::operations::metrics`), rendered when scraped.
//! The exporter has no listener of its own: `/metrics` is a route of the main router, or of a
//! router of its own on `metrics_listen` (see [`router`]).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics::{describe_counter, describe_histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tessera_core::Authority;

/// HTTP requests answered, by `method`, `route` (the route template, never the raw path) and
/// `status`.
pub const HTTP_REQUESTS: &str = "tessera_http_requests_total";
/// Seconds from the request's arrival to its response's headers, by `route`.
pub const HTTP_REQUEST_SECONDS: &str = "tessera_http_request_duration_seconds";

/// The latency buckets: a refresh answers in about a millisecond, a login in tens (Argon2id),
/// a storage outage after seconds.
const HTTP_SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How often histograms are compacted: the exporter leaves that to its user.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The installed recorder's handle: what `/metrics` renders.
#[derive(Debug, Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
}

impl Metrics {
    /// Installs the Prometheus recorder as the process's metrics recorder, with real histogram
    /// buckets (not the exporter's default summaries, which cannot be aggregated over nodes),
    /// and starts its upkeep on the current Tokio runtime. Once per process: a second call
    /// fails.
    pub fn install() -> Result<Self, String> {
        let buckets = [
            (HTTP_REQUEST_SECONDS, HTTP_SECONDS_BUCKETS),
            (
                tessera_core::operations::metrics::STORE_COMMIT_SECONDS,
                tessera_core::operations::metrics::COMMIT_SECONDS_BUCKETS,
            ),
            (
                tessera_core::operations::metrics::STORE_COMMIT_GROUP_SIZE,
                tessera_core::operations::metrics::GROUP_SIZE_BUCKETS,
            ),
        ];
        let mut builder = PrometheusBuilder::new();
        for (name, values) in buckets {
            builder = builder
                .set_buckets_for_metric(Matcher::Full(name.to_owned()), values)
                .map_err(|e| e.to_string())?;
        }
        let handle = builder.install_recorder().map_err(|e| e.to_string())?;
        describe();
        tessera_core::operations::metrics::describe();
        let upkeep = handle.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(UPKEEP_EVERY);
            loop {
                ticker.tick().await;
                upkeep.run_upkeep();
            }
        });
        Ok(Self { handle })
    }

    fn render(&self, authority: &Authority) -> String {
        // Gauges of state outside the recorder are read when asked.
        authority.publish_store_gauges();
        self.handle.render()
    }
}

fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        Unit::Count,
        "HTTP requests answered, by method, route template and status."
    );
    describe_histogram!(
        HTTP_REQUEST_SECONDS,
        Unit::Seconds,
        "Time to answer an HTTP request, by route template."
    );
}

#[derive(Debug, Clone)]
struct Exposition {
    metrics: Metrics,
    authority: Authority,
}

/// `GET /metrics` alone, for the metrics listener (`metrics_listen`).
pub fn router(metrics: Metrics, authority: Authority) -> Router {
    Router::new().route(
        "/metrics",
        get(render).with_state(Exposition { metrics, authority }),
    )
}

async fn render(State(exposition): State<Exposition>) -> Response {
    exposition_of(&exposition.metrics, &exposition.authority)
}

/// The Prometheus text exposition of everything recorded.
pub(crate) fn exposition_of(metrics: &Metrics, authority: &Authority) -> Response {
    let text = metrics.render(authority);
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
