//! `racegate run` and `racegate status`: the machine-wide gate from the shell.
//!
//! `run` stays lean so that wrapping a command costs no more than `flock(1)`: no async runtime,
//! no threads, one pass over the lock directory.

mod render;
mod share;
#[cfg(unix)]
mod signals;

use std::io::{self, Write};
use std::process::Command;
use std::time::SystemTime;

use anyhow::anyhow;
use racegate::machine::{read_status, LockDir, MachineStatus, SystemProbe};
use racegate::{AcquireTimeoutError, Label, Labeled, MachineGate, MachineGateError};

use crate::cli::run::RunArgs;
use crate::cli::status::StatusArgs;
use crate::exit::CliError;

pub use render::{status_json, write_status_text};
pub use share::{device_env, resolve, DeviceChoice, Share, DEVICE_VARS};

/// Run `racegate run`.
pub fn run(args: RunArgs) -> Result<u8, CliError> {
    let words: Vec<String> = args
        .command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let probe = SystemProbe;
    let share = resolve(
        args.devices.as_ref().unwrap_or(&DeviceChoice::None),
        args.need,
        args.gpus,
        args.capacity,
        &probe,
    )
    .map_err(|e| CliError::Usage(anyhow!("{e}")))?;
    let gate = MachineGate::builder(&args.gate)
        .capacity(args.capacity)
        .devices(share.devices.iter().cloned())
        .command(words.clone())
        // One acquisition per process: in-process histograms would cost more to allocate than
        // the whole lock protocol. The history log keeps the machine-wide figures.
        .config(racegate::GateConfig::default().with_stats(false))
        .open()
        .map_err(setup_error)?;
    if let Some(prepare) = &args.prepare {
        // Unguarded: the gate is only opened (its declaration checked), not held.
        let status = prepare_status(prepare)?;
        if !status.success() {
            let code = exit_code_of(status);
            eprintln!(
                "racegate: `--prepare` command failed (exit {code}); not waiting for the gate"
            );
            return Ok(code);
        }
    }
    let view = Labeled::new(&gate, args.label.clone().map(Label::from));
    let acquired = match args.timeout {
        Some(t) => view.acquire_many_blocking_timeout(share.units, t),
        None => view
            .acquire_many_blocking(share.units)
            .map_err(AcquireTimeoutError::from),
    };
    let guard = match acquired {
        Ok(g) => g,
        Err(AcquireTimeoutError::TimedOut { waited, .. }) => {
            let status = gate.status();
            return Err(CliError::GateTimeout(anyhow!(
                "gate `{}` not granted within {}: {}",
                args.gate,
                humantime::format_duration(round_ms(waited)),
                describe_queue(&status, SystemTime::now())
            )));
        }
        Err(AcquireTimeoutError::Machine(e)) => return Err(setup_error(e)),
        Err(e) => return Err(CliError::Usage(anyhow::Error::new(e))),
    };

    let mut cmd = Command::new(&args.command[0]);
    cmd.args(&args.command[1..]);
    cmd.envs(device_env(guard.devices(), share.pci_order, &probe));
    #[cfg(target_os = "linux")]
    die_with_parent(&mut cmd);
    #[cfg(unix)]
    let forwarder = signals::Forwarder::install()
        .map_err(|e| CliError::Other(anyhow!("cannot set up signal forwarding: {e}")))?;
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            drop(guard);
            let (code, what) = match e.kind() {
                io::ErrorKind::NotFound => (127, "command not found"),
                io::ErrorKind::PermissionDenied => (126, "permission denied"),
                _ => (126, "cannot run command"),
            };
            eprintln!("racegate: `{}`: {what} ({e})", words[0]);
            return Ok(code);
        }
    };
    #[cfg(unix)]
    let status = forwarder.run_child(child);
    #[cfg(not(unix))]
    let status = {
        let mut child = child;
        child.wait()
    };
    drop(guard);
    let status =
        status.map_err(|e| CliError::Other(anyhow!("waiting for `{}` failed: {e}", words[0])))?;
    Ok(exit_code_of(status))
}

/// Runs `racegate run --prepare`'s shell command to its end. It shares our process group (a
/// Ctrl-C at the terminal reaches it directly) and, on Linux, dies with us.
fn prepare_status(line: &str) -> Result<std::process::ExitStatus, CliError> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(line);
    #[cfg(target_os = "linux")]
    die_with_parent(&mut cmd);
    cmd.status()
        .map_err(|e| CliError::Other(anyhow!("cannot run the `--prepare` command `{line}`: {e}")))
}

/// If `racegate run` is killed (even by SIGKILL, which it cannot forward), the kernel releases
/// the gate at once; the command must not go on using the GPU without it, so it gets SIGKILL
/// too. (Linux only: elsewhere an orphaned command keeps running.) Costs a `fork` instead of
/// `posix_spawn`, about 0.1 ms.
#[cfg(target_os = "linux")]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls (prctl, getppid, raise) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before the prctl took effect.
            if libc::getppid() != parent {
                libc::raise(libc::SIGKILL);
            }
            Ok(())
        });
    }
}

/// A shell's view of how a command ended: its code, or 128+N for signal N.
fn exit_code_of(status: std::process::ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return code as u8;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return (128 + sig) as u8;
        }
    }
    crate::exit::FAILURE
}

fn round_ms(d: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_millis(d.as_millis() as u64)
}

/// "held by pid 4242 (`vision`) running `sleep 30` for 12.3s; 2 waiting", with each holder's
/// share ("20 of 80 units on 1") when the gate has a budget or devices.
fn describe_queue(status: &MachineStatus, now: SystemTime) -> String {
    let mut out = String::new();
    if status.holders.is_empty() {
        out.push_str("no holder seen (it may have just left)");
    }
    let shared = status.units_total > 1;
    for (i, h) in status.holders.iter().enumerate() {
        out.push_str(if i == 0 { "held by " } else { ", " });
        match &h.record {
            Some(r) => {
                out.push_str(&format!("pid {}", r.pid));
                if let Some(l) = &r.label {
                    out.push_str(&format!(" (`{l}`)"));
                }
                out.push_str(&format!(" running `{}`", r.command_line()));
                if let Some(d) = h.held_for(now) {
                    out.push_str(&format!(" for {}", humantime::format_duration(round_ms(d))));
                }
            }
            None => out.push_str(&format!(
                "an unknown process on lane {} (no current record)",
                h.lane
            )),
        }
        if shared {
            match h.units {
                Some(u) => out.push_str(&format!(" with {u} of {} units", status.units_total)),
                None => out.push_str(" with an unknown share"),
            }
            if !h.devices.is_empty() {
                out.push_str(&format!(" on {}", h.devices.join(",")));
            }
        }
    }
    if !status.waiters.is_empty() {
        out.push_str(&format!("; {} waiting", status.waiters.len()));
    }
    out.push_str(&format!(
        "; hint: `racegate status --gate {}` shows the queue",
        status.name
    ));
    out
}

/// Lock-directory problems are the user's environment: usage errors (exit 2), message kept.
fn setup_error(e: MachineGateError) -> CliError {
    CliError::Usage(anyhow::Error::new(e))
}

/// Run `racegate status`.
pub fn status(args: StatusArgs) -> Result<u8, CliError> {
    let root = LockDir::from_env().map_err(setup_error)?;
    let names = match &args.gate {
        Some(name) => {
            racegate::machine::validate_gate_name(name).map_err(setup_error)?;
            // A gate nobody has used has no directory: report it as unknown rather than
            // describing a made-up "free, capacity 1" gate.
            if root.path().join(name).is_dir() {
                vec![name.clone()]
            } else {
                Vec::new()
            }
        }
        None => root.gates().map_err(setup_error)?,
    };
    let gates: Vec<MachineStatus> = names
        .iter()
        .map(|n| read_status(&root.path().join(n), n))
        .collect();
    let now = SystemTime::now();
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let written = if args.json {
        serde_json::to_writer_pretty(&mut out, &status_json(root.path(), &gates, now))
            .map_err(io::Error::other)
            .and_then(|()| writeln!(out))
    } else if let (Some(name), true) = (&args.gate, gates.is_empty()) {
        writeln!(
            out,
            "no gate `{name}` in {}: nothing has used it yet",
            root.path().display()
        )
    } else {
        write_status_text(&mut out, root.path(), &gates, now)
    };
    match written {
        Ok(()) => Ok(crate::exit::SUCCESS),
        // A closed pipe (`| head`) is not an error.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(crate::exit::SUCCESS),
        Err(e) => Err(CliError::Other(anyhow!("writing the status failed: {e}"))),
    }
}
