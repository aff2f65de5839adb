//! The servers under test: `tessera serve --bench-floor` child processes on the prepared
//! database, pinned to the server's core.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// The nodes under test, each a child process on the same database; killed on drop.
pub(crate) struct Servers {
    nodes: Vec<Server>,
}

impl Servers {
    pub(crate) fn start(
        dir: &Path,
        url: &str,
        nodes: usize,
        cpu: Option<usize>,
    ) -> anyhow::Result<Self> {
        let nodes = (0..nodes)
            .map(|_| Server::start(dir, url, cpu))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { nodes })
    }

    /// The node worker `n` talks to; `None` only without nodes.
    pub(crate) fn address(&self, n: usize) -> Option<SocketAddr> {
        let node = self.nodes.get(n.checked_rem(self.nodes.len())?)?;
        Some(node.address)
    }

    pub(crate) fn rss_kib(&self) -> u64 {
        self.nodes.iter().map(Server::rss_kib).sum()
    }

    pub(crate) fn pids(&self) -> Vec<u32> {
        self.nodes.iter().map(Server::server_pid).collect()
    }
}

/// One server process.
struct Server {
    child: Child,
    address: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(dir: &Path, url: &str, cpu: Option<usize>) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let address: SocketAddr = ([127, 0, 0, 1], port).into();
        let exe = std::env::current_exe()?;
        let mut command = match cpu {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpu.to_string()).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        command
            // No access log: the figures measure serving, not writing a line per request.
            .args(["serve", "--bench-floor", "--access-log", "false"])
            .args(["--listen", &address.to_string()])
            .args(["--issuer", crate::data::ISSUER])
            .args(["--max-grants-per-user-client", "0"])
            .args(["--housekeeping-interval", "1h"])
            // The loader is one source making many honest requests; none should fail anyway.
            .args(["--credential-failures-per-address", "1000000/1s"])
            .env("TESSERA_DATA_DIR", dir)
            .env("TESSERA_DATABASE_URL", url)
            .env_remove("TESSERA_CONFIG")
            .env("TESSERA_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = command.spawn().context("starting the server")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(address).is_err() {
            if Instant::now() > deadline {
                bail!("the server did not start");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Self { child, address })
    }

    fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.server_pid()))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|n| n.parse().ok())
            })
            .unwrap_or(0)
    }

    /// `taskset` execs the server in its own process, so the child's pid is the server's.
    fn server_pid(&self) -> u32 {
        self.child.id()
    }
}
