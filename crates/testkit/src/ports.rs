//! Ports for servers a test starts.

use std::process::Child;
use std::time::{Duration, Instant};

/// A port nothing listens on at the moment, for a server to bind.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `server` accepts connections on `port` of 127.0.0.1, for up to 30 seconds;
/// fails the test at once if it exits first, with what `log` then says.
pub fn wait_until_accepting(port: u16, server: &mut Child, log: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = server.try_wait().unwrap() {
            panic!("server exited ({status}): {}", log());
        }
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}
