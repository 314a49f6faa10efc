//! Native frames of real crashing processes, captured by racegate's tracer helper (Linux).
#![cfg(target_os = "linux")]

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use racegate_cli::crash::native::Prepared;

fn helper() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_racegate"))
}

#[test]
fn a_shell_killed_by_sigsegv_has_its_frames() {
    let prepared = Prepared::new(helper()).expect("helper starts");
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "kill -SEGV $$"]);
    // SAFETY: the hook makes async-signal-safe calls only.
    unsafe { cmd.pre_exec(prepared.hook()) };
    let mut child = cmd.spawn().unwrap();
    let tracer = prepared.started(child.id());
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGSEGV));
    let crash = tracer
        .crash(child.id(), "SIGSEGV", Duration::from_secs(10))
        .expect("frames");
    eprintln!("{crash:#?}");
    assert!(!crash.frames.is_empty());
    let top = &crash.frames[0];
    assert!(
        top.library.as_deref().unwrap_or("").starts_with("libc"),
        "{top:?}"
    );
}

#[test]
fn a_helper_that_cannot_trace_leaves_the_child_running_and_says_why() {
    // `true` exits at once: the child's pid write finds no reader (no SIGPIPE may kill it) and
    // its wait for the go-ahead ends at end-of-file.
    let prepared = Prepared::new(Path::new("/bin/true")).expect("helper starts");
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "exit 7"]);
    // SAFETY: the hook makes async-signal-safe calls only.
    unsafe { cmd.pre_exec(prepared.hook()) };
    let mut child = cmd.spawn().unwrap();
    let tracer = prepared.started(child.id());
    assert_eq!(child.wait().unwrap().code(), Some(7));
    let why = tracer
        .crash(child.id(), "SIGSEGV", Duration::from_secs(10))
        .unwrap_err();
    assert!(why.0.contains("before it attached"), "{why}");
}
