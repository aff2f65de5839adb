//! The load generator: one HTTP/1.1 connection a worker, one request in flight, closed-loop or
//! at a fixed rate, its latencies in a histogram.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::data::Credentials;
use crate::histogram::new_histogram;

/// One connection's load: a scenario's request, again and again, until `end`.
pub(crate) struct Worker {
    pub(crate) address: SocketAddr,
    pub(crate) scenario: String,
    pub(crate) credentials: Credentials,
    pub(crate) interval: Option<Duration>,
    pub(crate) first_due: Instant,
    pub(crate) measured_from: Instant,
    pub(crate) end: Instant,
}

pub(crate) struct WorkerResult {
    pub(crate) histogram: Histogram<u64>,
    pub(crate) ok: u64,
    pub(crate) errors: BTreeMap<u16, u64>,
    pub(crate) credentials: Credentials,
}

#[derive(serde::Deserialize)]
struct Rotated {
    refresh_token: Option<String>,
}

impl Worker {
    pub(crate) async fn run(mut self) -> anyhow::Result<WorkerResult> {
        let stream = TcpStream::connect(self.address).await?;
        stream.set_nodelay(true)?;
        let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::task::spawn_local(connection);
        let host = self.address.to_string();
        let mut histogram = new_histogram()?;
        let mut ok = 0;
        let mut errors = BTreeMap::new();
        let mut due = self.first_due;
        loop {
            let sent = match self.interval {
                Some(interval) => {
                    tokio::time::sleep_until(due.into()).await;
                    due += interval;
                    due - interval
                }
                None => Instant::now(),
            };
            if sent >= self.end {
                return Ok(WorkerResult {
                    histogram,
                    ok,
                    errors,
                    credentials: self.credentials,
                });
            }
            let request = self.request(&host)?;
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await?.to_bytes();
            let done = Instant::now();
            if status == 200 && self.is_refresh() {
                let rotated: Rotated = serde_json::from_slice(&body)?;
                if let Some(next) = rotated.refresh_token {
                    self.credentials.refresh_token = next;
                }
            }
            if sent >= self.measured_from {
                if status == 200 {
                    ok += 1;
                    let micros = done.duration_since(sent).as_micros() as u64;
                    histogram.record(micros.max(1))?;
                } else {
                    *errors.entry(status).or_insert(0) += 1;
                }
            }
        }
    }

    /// Whether the scenario refreshes (and then chains what a rotation answers) rather than
    /// calls the API.
    fn is_refresh(&self) -> bool {
        matches!(
            self.scenario.as_str(),
            "rotating" | "non-rotating" | "openid-rs256" | "openid-es256"
        )
    }

    fn request(&self, host: &str) -> anyhow::Result<Request<Full<Bytes>>> {
        let c = &self.credentials;
        let form = |pairs: &[(&str, &str)]| {
            let mut ser = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in pairs {
                ser.append_pair(k, v);
            }
            Bytes::from(ser.finish())
        };
        let post = |path: &str, body: Bytes| {
            Request::post(path)
                .header(hyper::header::HOST, host)
                .header(
                    hyper::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(Full::new(body))
        };
        Ok(match self.scenario.as_str() {
            "floor" => post("/bench/floor", form(&[("grant_type", "refresh_token")]))?,
            _ if self.is_refresh() => post(
                "/services/oauth2/token",
                form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &c.refresh_token),
                    ("client_id", &c.client_id),
                    ("client_secret", &c.client_secret),
                ]),
            )?,
            _ => Request::get(format!("/services/data/v65.0/sobjects/User/{}", c.user_id))
                .header(hyper::header::HOST, host)
                .header(
                    hyper::header::AUTHORIZATION,
                    format!("Bearer {}", c.access_token),
                )
                .body(Full::new(Bytes::new()))?,
        })
    }
}
