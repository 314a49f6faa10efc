//! `racegate run` end to end: the real binary, real child commands, a private lock directory.

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;

fn racegate(lock_dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("racegate").unwrap();
    cmd.env("RACEGATE_DIR", lock_dir);
    cmd
}

fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

fn wait_child(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let end = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            panic!("`racegate run` did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn code(lock_dir: &Path, args: &[&str]) -> i32 {
    racegate(lock_dir)
        .args(args)
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .code()
        .unwrap()
}

#[test]
fn run_passes_the_command_status_through_like_a_shell() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    assert_eq!(code(d, &["run", "--", "true"]), 0);
    assert_eq!(code(d, &["run", "--", "sh", "-c", "exit 7"]), 7);
    assert_eq!(
        code(d, &["run", "--", "sh", "-c", "kill -KILL $$"]),
        128 + 9
    );
    assert_eq!(
        code(d, &["run", "--", "sh", "-c", "kill -TERM $$"]),
        128 + 15
    );
    assert_eq!(code(d, &["run", "--", "racegate-no-such-command"]), 127);
    assert_eq!(code(d, &["run", "--", "/"]), 126);
    // Flags of the command are the command's, not ours.
    assert_eq!(
        code(
            d,
            &[
                "run",
                "--gate",
                "x",
                "--",
                "sh",
                "-c",
                "exit $#",
                "sh",
                "--timeout",
                "-x"
            ]
        ),
        2
    );
}

#[test]
fn run_forwards_sigterm_and_sigint_to_the_command() {
    for (sig, name) in [(libc::SIGTERM, "TERM"), (libc::SIGINT, "INT")] {
        let tmp = tempfile::tempdir().unwrap();
        let ready = tmp.path().join("ready");
        let got = tmp.path().join("got");
        let script = format!(
            "trap 'echo {name} > {got}; exit 42' {name}; echo > {ready}; i=0; \
             while [ $i -lt 400 ]; do sleep 0.025; i=$((i+1)); done; exit 1",
            got = got.display(),
            ready = ready.display()
        );
        let mut cmd = racegate(tmp.path());
        cmd.args(["run", "--", "sh", "-c", &script]);
        // A runner started in the background may hand us SIGINT ignored, and an ignored signal
        // stays ignored (for racegate too, by design): start from the default disposition.
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                libc::signal(libc::SIGTERM, libc::SIG_DFL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap();
        assert!(
            wait_until(Duration::from_secs(10), || ready.exists()),
            "the command never started"
        );
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(child.id() as libc::pid_t, sig) };
        let status = wait_child(&mut child, Duration::from_secs(10));
        assert_eq!(status.code(), Some(42), "SIG{name} was not forwarded");
        assert_eq!(fs::read_to_string(&got).unwrap().trim(), name);
    }
}

#[test]
fn a_second_run_queues_behind_the_first_and_a_timeout_names_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ready = d.join("ready");
    let hold = format!("echo > {}; read line || true", ready.display());
    let mut holder = racegate(d)
        .args(["run", "--label", "trainer", "--", "sh", "-c", &hold])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || ready.exists()));

    let out = racegate(d)
        .args(["run", "--timeout", "300ms", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(124), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("held by pid {}", holder.id())),
        "{err}"
    );
    assert!(
        err.contains("`trainer`") && err.contains("running `sh -c"),
        "{err}"
    );
    assert!(err.contains("racegate status --gate gpu"), "{err}");

    // Another gate is independent.
    assert_eq!(
        code(
            d,
            &["run", "--gate", "other", "--timeout", "5s", "--", "true"]
        ),
        0
    );

    // A queued run gets the gate once the holder's command ends.
    let mut queued = racegate(d)
        .args(["run", "--timeout", "10s", "--", "sh", "-c", "exit 5"])
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        let out = racegate(d).args(["status", "--json"]).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["gates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "gpu" && g["waiters"].as_array().unwrap().len() == 1)
    }));
    drop(holder.stdin.take());
    assert!(wait_child(&mut holder, Duration::from_secs(10)).success());
    assert_eq!(
        wait_child(&mut queued, Duration::from_secs(10)).code(),
        Some(5)
    );
}

#[test]
fn bad_lock_dirs_and_bad_flags_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    fs::create_dir(&real).unwrap();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let out = racegate(&link)
        .args(["run", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is a symlink"),
        "{out:?}"
    );

    let out = racegate(&real)
        .args(["run", "--gate", "../x", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("gate name `../x` is invalid"));

    for bad in [
        &["run", "--slots", "0", "--", "true"][..],
        &["run", "--timeout", "soon", "--", "true"],
        &["run"],
    ] {
        let mut child = racegate(&real)
            .args(bad)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert_eq!(child.wait().unwrap().code(), Some(2), "{bad:?}: {err}");
    }
}

/// `kill -9` of `racegate run` releases the gate (the kernel drops the lock) and, on Linux, the
/// command dies with it rather than go on using the GPU without the gate.
#[cfg(target_os = "linux")]
#[test]
fn sigkill_of_racegate_run_hands_the_gate_on_and_takes_the_command_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let pidfile = d.join("child.pid");
    let script = format!(
        "echo $$ > {}; i=0; while [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done",
        pidfile.display()
    );
    let mut holder = racegate(d)
        .args(["run", "--", "sh", "-c", &script])
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || fs::read_to_string(
        &pidfile
    )
    .is_ok_and(|s| s.ends_with('\n'))));
    let child: i32 = fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    holder.kill().unwrap(); // SIGKILL
    holder.wait().unwrap();
    let gone = |pid: i32| {
        // Gone, or a zombie waiting for init to reap it.
        fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(true)
    };
    assert!(
        wait_until(Duration::from_secs(5), || gone(child)),
        "the command outlived `racegate run`"
    );
    assert_eq!(
        code(d, &["run", "--timeout", "5s", "--", "true"]),
        0,
        "the gate was not handed on"
    );
}
