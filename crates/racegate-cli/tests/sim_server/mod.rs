//! An unmanaged `racegate sim-serve` on a free loopback port, for the tests that drive their
//! own load against it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// An unmanaged `racegate sim-serve`, killed on drop.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`, as the server printed it.
    pub url: String,
}

impl Server {
    /// Started with `--work-us 200` and `flags`; returns once it is bound.
    pub fn start(flags: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_racegate"))
            .args(["sim-serve", "--listen", "127.0.0.1:0", "--work-us", "200"])
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        // The server prints its address as its first line once it is bound.
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Server { child, url }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
