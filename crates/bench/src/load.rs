//! The load generator: one HTTP/1.1 connection a worker, one request in flight, closed-loop or
//! at a fixed rate, its latencies in a histogram. The DPoP scenarios' workers sign a fresh proof
//! for every request here, in the load generator: its cost is the loader's, not the server's
//! (whose CPU is read from `/proc`), and no proof is made ahead of time, since a proof used
//! twice is a replay the server refuses.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::bail;

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tessera_client::DpopKey;
use tessera_core::time::{Clock, SystemClock};
use tessera_proto::dpop::{DPOP_HEADER, DPOP_SCHEME};
use tokio::net::TcpStream;

use crate::data::{Credentials, ISSUER};
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
    access_token: String,
}

/// The token endpoint's path, which refreshes go to.
const TOKEN_PATH: &str = "/services/oauth2/token";

type Sender = http1::SendRequest<Full<Bytes>>;

impl Worker {
    pub(crate) async fn run(mut self) -> anyhow::Result<WorkerResult> {
        let stream = TcpStream::connect(self.address).await?;
        stream.set_nodelay(true)?;
        let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::task::spawn_local(connection);
        let host = self.address.to_string();
        // One key a worker and a run: a confidential client's refresh token is not bound, so a
        // new key binds the next access token without refusing the refresh token.
        let key = match self.scenario.as_str() {
            "dpop-rotating" | "dpop-api" => Some(DpopKey::generate()?),
            _ => None,
        };
        if let (Some(key), "dpop-api") = (&key, self.scenario.as_str()) {
            self.bind_access_token(&mut sender, &host, key).await?;
        }
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
            let request = self.request(&host, key.as_ref())?;
            let (status, body) = exchange(&mut sender, request).await?;
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
            "rotating" | "non-rotating" | "openid-rs256" | "openid-es256" | "dpop-rotating"
        )
    }

    /// Replaces the worker's access token with one bound to `key`, by one refresh with a proof
    /// (the grant's client does not rotate, so its refresh token stays as it is): the minted
    /// tokens are unbound, and the server has no path to mint bound ones but its token endpoint.
    /// It runs before the loop, so that it is never measured as an API call.
    async fn bind_access_token(
        &mut self,
        sender: &mut Sender,
        host: &str,
        key: &DpopKey,
    ) -> anyhow::Result<()> {
        let (status, body) = exchange(sender, self.refresh(host, Some(key))?).await?;
        if status != 200 {
            bail!("the refresh that binds a DPoP access token answered {status}");
        }
        let bound: Rotated = serde_json::from_slice(&body)?;
        self.credentials.access_token = bound.access_token;
        Ok(())
    }

    fn request(&self, host: &str, key: Option<&DpopKey>) -> anyhow::Result<Request<Full<Bytes>>> {
        match self.scenario.as_str() {
            "floor" => post(
                host,
                "/bench/floor",
                form(&[("grant_type", "refresh_token")]),
            ),
            _ if self.is_refresh() => self.refresh(host, key),
            _ => self.api_call(host, key),
        }
    }

    /// A refresh by the confidential client, with a proof of `key` when given.
    fn refresh(&self, host: &str, key: Option<&DpopKey>) -> anyhow::Result<Request<Full<Bytes>>> {
        let c = &self.credentials;
        let mut request = post(
            host,
            TOKEN_PATH,
            form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &c.refresh_token),
                ("client_id", &c.client_id),
                ("client_secret", &c.client_secret),
            ]),
        )?;
        if let Some(key) = key {
            let proof = sign_proof(key, "POST", TOKEN_PATH, None)?;
            request.headers_mut().insert(DPOP_HEADER, proof.parse()?);
        }
        Ok(request)
    }

    /// The REST call: with a Bearer token, or with `key` its DPoP-bound token and a proof that
    /// names the token's hash (`ath`).
    fn api_call(&self, host: &str, key: Option<&DpopKey>) -> anyhow::Result<Request<Full<Bytes>>> {
        let c = &self.credentials;
        let path = format!("/services/data/v65.0/sobjects/User/{}", c.user_id);
        let request = Request::get(&path).header(hyper::header::HOST, host);
        let request = match key {
            None => request.header(
                hyper::header::AUTHORIZATION,
                format!("Bearer {}", c.access_token),
            ),
            Some(key) => request
                .header(
                    hyper::header::AUTHORIZATION,
                    format!("{DPOP_SCHEME} {}", c.access_token),
                )
                .header(
                    DPOP_HEADER,
                    sign_proof(key, "GET", &path, Some(&c.access_token))?,
                ),
        };
        Ok(request.body(Full::new(Bytes::new()))?)
    }
}

/// Sends one request on the worker's connection and reads the whole answer.
async fn exchange(
    sender: &mut Sender,
    request: Request<Full<Bytes>>,
) -> anyhow::Result<(u16, Bytes)> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// A fresh proof (new `jti`, `iat` now) for `method` on `path` of the server as its clients
/// reach it: the issuer the bench serves as, which is what the server checks `htu` against.
fn sign_proof(
    key: &DpopKey,
    method: &str,
    path: &str,
    access_token: Option<&str>,
) -> anyhow::Result<String> {
    Ok(key.proof(
        method,
        &format!("{ISSUER}{path}"),
        access_token,
        None,
        SystemClock.now().seconds(),
    )?)
}

fn form(pairs: &[(&str, &str)]) -> Bytes {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    Bytes::from(ser.finish())
}

fn post(host: &str, path: &str, body: Bytes) -> anyhow::Result<Request<Full<Bytes>>> {
    Ok(Request::post(path)
        .header(hyper::header::HOST, host)
        .header(
            hyper::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(Full::new(body))?)
}
