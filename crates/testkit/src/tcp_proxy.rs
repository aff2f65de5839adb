//! A TCP proxy in front of a server (PostgreSQL), for cutting one process off from it while the
//! others keep their connections: a network partition of one node, which stopping or locking
//! the server cannot give (that cuts everyone off).
//!
//! Cut, it closes every connection it carries and closes new ones as soon as they arrive, so
//! the process behind it sees errors at once rather than a silent peer. Restored, it carries
//! connections again.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A proxy on a loopback port, forwarding to `target`; it stops when dropped.
#[derive(Debug)]
pub struct TcpProxy {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    cut: watch::Sender<bool>,
    accepting: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a free loopback port and forwards every connection to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, _) = watch::channel(false);
        let watching = cut.clone();
        let accepting = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    continue;
                };
                let mut is_cut = watching.subscribe();
                if *is_cut.borrow_and_update() {
                    drop(inbound);
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    carry(inbound, outbound, &mut is_cut).await;
                });
            }
        });
        Self {
            port,
            cut,
            accepting,
        }
    }

    /// Closes every connection and refuses new ones until [`TcpProxy::restore`].
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Carries connections again.
    pub fn restore(&self) {
        self.cut.send_replace(false);
    }

    /// `url` (a `scheme://user@host:port/path` URL) with its host and port replaced by this
    /// proxy's.
    pub fn url_through(&self, url: &str) -> String {
        let mut parsed = url::Url::parse(url).unwrap();
        parsed.set_host(Some("127.0.0.1")).unwrap();
        parsed.set_port(Some(self.port)).unwrap();
        parsed.to_string()
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut.send_replace(true);
        self.accepting.abort();
    }
}

/// Copies both ways until either side closes or the proxy is cut; both sockets close on return.
async fn carry(
    mut inbound: TcpStream,
    mut outbound: TcpStream,
    is_cut: &mut watch::Receiver<bool>,
) {
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        _ = is_cut.wait_for(|cut| *cut) => {}
    }
}

/// The address of a `scheme://host:port/…` URL, for [`TcpProxy::start`].
pub fn address_of(url: &str) -> SocketAddr {
    let parsed = url::Url::parse(url).unwrap();
    let host = parsed.host_str().unwrap();
    let port = parsed.port().unwrap_or(5432);
    std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .unwrap()
        .next()
        .unwrap()
}
