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

/// Starts `racegate run <args> -- sh -c <script>` that writes its device variables to `env`,
/// touches `ready`, and holds until its stdin closes.
fn holding(d: &Path, name: &str, args: &[&str]) -> (Child, std::path::PathBuf) {
    let ready = d.join(format!("{name}.ready"));
    let script = format!(
        "echo \"$CUDA_VISIBLE_DEVICES|$HIP_VISIBLE_DEVICES|$ROCR_VISIBLE_DEVICES|$RACEGATE_DEVICES|$CUDA_DEVICE_ORDER\" > {0}.tmp; mv {0}.tmp {0}; read line || true",
        ready.display()
    );
    let child = racegate(d)
        .arg("run")
        .args(args)
        .args(["--", "sh", "-c", &script])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || ready.exists()),
        "{name} never ran"
    );
    (child, ready)
}

fn release(mut child: Child) {
    drop(child.stdin.take());
    assert!(wait_child(&mut child, Duration::from_secs(10)).success());
}

#[test]
fn gpus_take_whole_devices_and_the_command_is_told_which() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let dev = ["--gate", "gpus", "--devices", "0,1,2,3"];
    let (two, seen) = holding(d, "two", &[&dev[..], &["--gpus", "2"]].concat());
    assert_eq!(
        fs::read_to_string(&seen).unwrap().trim(),
        "0,1|0,1|0,1|0,1|"
    );
    let (one, seen) = holding(d, "one", &[&dev[..], &["--gpus", "1"]].concat());
    assert_eq!(fs::read_to_string(&seen).unwrap().trim(), "2|2|2|2|");
    // Two more devices are not free: a timeout names the holders and their devices.
    let out = racegate(d)
        .args(["run", "--timeout", "300ms"])
        .args(dev)
        .args(["--gpus", "2", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(124), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("with 2 units on 0,1"), "{err}");
    let out = racegate(d)
        .args(["status", "--gate", "gpus"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("capacity 1 per device, 4 devices"), "{text}");
    assert!(text.contains("used    3 of 4 units"), "{text}");
    assert!(
        text.contains(&format!(
            "device  0        1/1 units  held by pid {}",
            two.id()
        )),
        "{text}"
    );
    assert!(text.contains("device  3        0/1 units\n"), "{text}");
    release(two);
    release(one);
    // More devices than the gate has, and a share that fits no placement, are usage errors.
    let out = racegate(d)
        .args(["run"])
        .args(dev)
        .args(["--gpus", "5", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`--gpus 5`"));
    let out = racegate(d)
        .args([
            "run",
            "--gate",
            "halves",
            "--capacity",
            "2",
            "--devices",
            "0,1",
        ])
        .args(["--need", "3", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot place `3` units"), "{err}");
}

/// A fake `nvidia-smi` on the `PATH` stands in for the driver: `--gpus` discovers its GPUs,
/// numbers them by PCI bus (and says so to CUDA), and `CUDA_VISIBLE_DEVICES` overrides it.
#[test]
fn gpus_discover_devices_from_nvidia_smi_or_cuda_visible_devices() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let bin = d.join("bin");
    fs::create_dir(&bin).unwrap();
    let smi = bin.join("nvidia-smi");
    fs::write(
        &smi,
        "#!/bin/sh\n[ \"$1\" = -L ] || exit 9\n\
         echo 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0f0e0d0c-1111-2222-3333-444455556666)'\n\
         echo 'GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-1a1b1c1d-1111-2222-3333-444455556666)'\n",
    )
    .unwrap();
    fs::set_permissions(&smi, fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let run = |gate: &str, visible: Option<&str>| {
        let mut cmd = racegate(d);
        cmd.env("PATH", &path)
            .env_remove("CUDA_DEVICE_ORDER")
            .env_remove("CUDA_VISIBLE_DEVICES")
            .args(["run", "--gate", gate, "--gpus", "1", "--", "sh", "-c"])
            .arg("echo \"$CUDA_VISIBLE_DEVICES $CUDA_DEVICE_ORDER\"");
        if let Some(v) = visible {
            cmd.env("CUDA_VISIBLE_DEVICES", v);
        }
        cmd.output().unwrap()
    };
    let out = run("smi", None);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0 PCI_BUS_ID");
    let out = run("visible", Some("1"));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
    let out = run("none", Some(""));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("CUDA_VISIBLE_DEVICES="),
        "{out:?}"
    );
}

#[test]
fn need_takes_a_share_of_the_budget_and_every_user_must_agree_on_it() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (fifty, _) = holding(
        d,
        "fifty",
        &[
            "--gate",
            "vram",
            "--capacity",
            "80",
            "--need",
            "50",
            "--label",
            "trainer",
        ],
    );
    // 30 more fit beside it; 40 do not, and the timeout names the trainer's share.
    assert_eq!(
        code(
            d,
            &[
                "run",
                "--gate",
                "vram",
                "--capacity",
                "80",
                "--need",
                "30",
                "--timeout",
                "10s",
                "--",
                "true"
            ]
        ),
        0
    );
    let out = racegate(d)
        .args([
            "run",
            "--gate",
            "vram",
            "--capacity",
            "80",
            "--need",
            "40",
            "--timeout",
            "300ms",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(124), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`trainer`") && err.contains("with 50 of 80 units"),
        "{err}"
    );
    let out = racegate(d)
        .args(["run", "--gate", "vram", "--capacity", "40", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("capacity `80`") && err.contains("capacity `40`"),
        "{err}"
    );
    let doc: serde_json::Value = serde_json::from_slice(
        &racegate(d)
            .args(["status", "--json", "--gate", "vram"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let g = &doc["gates"][0];
    assert_eq!(
        (g["units_used"].as_u64(), g["units_total"].as_u64()),
        (Some(50), Some(80))
    );
    assert_eq!(g["holders"][0]["units"], 50);
    release(fifty);
}

/// `--prepare` runs before the gate is held: a run inside the preparation gets the same gate
/// (it would time out if the preparation held it), and a failed preparation ends the run with
/// its status before the gate or the command.
#[test]
fn prepare_runs_unguarded_and_its_failure_stops_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let racegate_bin = assert_cmd::cargo::cargo_bin("racegate");
    let nested = format!(
        "{} run --timeout 5s -- sh -c 'echo inside > {}'",
        racegate_bin.display(),
        d.join("prepared").display()
    );
    let out = racegate(d)
        .args(["run", "--prepare", &nested, "--", "sh", "-c"])
        .arg(format!("echo ran > {}", d.join("ran").display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        fs::read_to_string(d.join("prepared")).unwrap().trim(),
        "inside"
    );
    assert_eq!(fs::read_to_string(d.join("ran")).unwrap().trim(), "ran");

    let out = racegate(d)
        .args(["run", "--prepare", "exit 3", "--", "touch"])
        .arg(d.join("never"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("`--prepare`"));
    assert!(!d.join("never").exists());
}
