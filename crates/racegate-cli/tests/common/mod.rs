//! Helpers shared by the integration tests that interrupt a running `racegate` command.

use std::io::{BufRead, BufReader};
use std::process::{Child, ExitStatus};
use std::sync::mpsc;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Whether `pid` is still a live process (a zombie would still answer; racegate reaps its
/// children, so after it exits any answer means an orphan).
pub fn alive(pid: u64) -> bool {
    !matches!(kill(Pid::from_raw(pid as i32), None), Err(Errno::ESRCH))
}

/// Wait (bounded) until `child` (spawned with piped stderr) reports on stderr the pid of the
/// server it started (`<pid_marker><pid>)`) and then that it is hammering it; send it SIGINT
/// and wait (bounded) for it to exit. Returns the server's pid, checked alive before the
/// interrupt, and racegate's exit status.
pub fn interrupt_once_hammering(mut child: Child, pid_marker: &str) -> (u64, ExitStatus) {
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut server = None;
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
        if let Some(rest) = line.split(pid_marker).nth(1) {
            server = rest.trim_end_matches(')').parse::<u64>().ok();
        }
        let hammering = line.contains("hammering");
        seen.push(line);
        if hammering {
            break;
        }
    }
    let server = server.unwrap_or_else(|| panic!("no server pid in:\n{}", seen.join("\n")));
    assert!(
        alive(server),
        "the server should be running before the interrupt"
    );

    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(child.wait());
    });
    let status = done_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("racegate did not stop within 30 s of Ctrl-C")
        .unwrap();
    (server, status)
}
