//! `racegate run` and `racegate status`: the machine-wide gate from the shell.
//!
//! `run` stays lean so that wrapping a command costs no more than `flock(1)`: no async runtime,
//! no threads, one pass over the lock directory. It forwards SIGINT, SIGTERM and SIGHUP to its
//! command and exits with the command's status, like `timeout(1)`; that is its interrupt policy
//! (the report-writing commands share another, `cli/interrupt.rs`).
//!
//! Both take a resolved config from `cli/` and return a result or a [`GateError`]; `cli/` maps
//! the error to its exit status and prints the status with [`crate::reporter::status`].

mod share;
#[cfg(unix)]
mod signals;

use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime};

use racegate::machine::{read_status, LockDir, MachineStatus, SystemProbe};
use racegate::{AcquireTimeoutError, Label, Labeled, MachineGate, MachineGateError};

pub use share::{device_env, resolve, DeviceChoice, Share, DEVICE_VARS};

/// A resolved `racegate run`.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The gate's name.
    pub gate: String,
    /// Its units (per device, with devices); every user must agree.
    pub capacity: u32,
    /// Units to take (`None` with `gpus`: whole devices; neither: one unit).
    pub need: Option<u32>,
    /// Whole devices to take.
    pub gpus: Option<u32>,
    /// The devices the gate spans (discovered by the run for [`DeviceChoice::Auto`], or for
    /// `gpus` without a list).
    pub devices: DeviceChoice,
    /// A shell command to run to its end before waiting for the gate, without holding it.
    pub prepare: Option<String>,
    /// Give up waiting after this long.
    pub timeout: Option<Duration>,
    /// Shown to others in `racegate status` and their timeout messages.
    pub label: Option<String>,
    /// The command and its arguments (at least the program).
    pub command: Vec<OsString>,
}

/// A resolved `racegate status`.
#[derive(Debug, Clone, Default)]
pub struct StatusConfig {
    /// Only this gate; `None`: every gate in the lock directory.
    pub gate: Option<String>,
}

/// What `racegate status` read.
#[derive(Debug, Clone)]
pub struct StatusReport {
    /// The lock directory.
    pub lock_dir: PathBuf,
    /// Each gate asked for that exists, by name.
    pub gates: Vec<MachineStatus>,
    /// When it was read.
    pub now: SystemTime,
}

/// Why `racegate run` or `racegate status` stopped.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The lock directory or a record cannot be used (the message names the path).
    #[error(transparent)]
    Setup(#[from] MachineGateError),
    /// The gate refused the request itself (e.g. more units than its capacity).
    #[error(transparent)]
    Acquire(AcquireTimeoutError),
    /// The request cannot be made: no devices found for `--gpus`, or more devices than the
    /// gate has (the message names the flag and the fix).
    #[error("{0}")]
    Request(String),
    /// The `--prepare` command could not be run.
    #[error("cannot run the `--prepare` command `{line}`: {source}")]
    PrepareNotStarted {
        /// The shell command.
        line: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The `--prepare` command failed: the run stops with its status, before the gate.
    #[error("the `--prepare` command failed with exit status `{code}`; not waiting for the gate")]
    PrepareFailed {
        /// Its exit status as a shell reports it.
        code: u8,
    },
    /// The gate was not granted within the timeout.
    #[error("gate `{gate}` not granted within {}: {queue}", humantime::format_duration(*.waited))]
    Timeout {
        /// The gate.
        gate: String,
        /// How long it waited (whole milliseconds).
        waited: Duration,
        /// Who holds it and who waits, in words.
        queue: String,
    },
    /// The signal forwarding could not be installed.
    #[error("cannot set up signal forwarding: {0}")]
    Signals(#[source] io::Error),
    /// The command could not be started; a shell exits 127 (not found) or 126 for this.
    #[error("`{program}`: {what} ({source})")]
    NotStarted {
        /// The program.
        program: String,
        /// "command not found", "permission denied", "cannot run command".
        what: &'static str,
        /// 127 for a missing program, else 126.
        code: u8,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Waiting for the command failed.
    #[error("waiting for `{program}` failed: {source}")]
    Wait {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// Run `racegate run`: wait for the gate, run the command holding it, release it when the
/// command ends. Returns the command's exit status as a shell reports it (128+N for signal N).
///
/// # Errors
/// [`GateError`]: the gate cannot be used or was not granted in time, or the command could not
/// be started or waited for.
pub fn run(cfg: &RunConfig) -> Result<u8, GateError> {
    let words: Vec<String> = cfg
        .command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let probe = SystemProbe;
    let share = resolve(&cfg.devices, cfg.need, cfg.gpus, cfg.capacity, &probe)
        .map_err(GateError::Request)?;
    let gate = MachineGate::builder(&cfg.gate)
        .capacity(cfg.capacity)
        .devices(share.devices.iter().cloned())
        .command(words.clone())
        // One acquisition per process: in-process histograms would cost more to allocate than
        // the whole lock protocol. The history log keeps the machine-wide figures.
        .config(racegate::GateConfig::default().with_stats(false))
        .open()?;
    if let Some(line) = &cfg.prepare {
        // Unguarded: the gate is only opened (its declaration checked), not held.
        let status = prepare_status(line)?;
        if !status.success() {
            return Err(GateError::PrepareFailed {
                code: exit_code_of(status),
            });
        }
    }
    let view = Labeled::new(&gate, cfg.label.clone().map(Label::from));
    let acquired = match cfg.timeout {
        Some(t) => view.acquire_many_blocking_timeout(share.units, t),
        None => view
            .acquire_many_blocking(share.units)
            .map_err(AcquireTimeoutError::from),
    };
    let guard = match acquired {
        Ok(g) => g,
        Err(AcquireTimeoutError::TimedOut { waited, .. }) => {
            let status = gate.status();
            return Err(GateError::Timeout {
                gate: cfg.gate.clone(),
                waited: round_ms(waited),
                queue: describe_queue(&status, SystemTime::now()),
            });
        }
        Err(AcquireTimeoutError::Machine(e)) => return Err(e.into()),
        Err(e) => return Err(GateError::Acquire(e)),
    };

    let mut cmd = Command::new(&cfg.command[0]);
    cmd.args(&cfg.command[1..]);
    cmd.envs(device_env(guard.devices(), share.pci_order, &probe));
    #[cfg(target_os = "linux")]
    die_with_parent(&mut cmd);
    #[cfg(unix)]
    let forwarder = signals::Forwarder::install().map_err(GateError::Signals)?;
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            drop(guard);
            let (code, what) = match e.kind() {
                io::ErrorKind::NotFound => (127, "command not found"),
                io::ErrorKind::PermissionDenied => (126, "permission denied"),
                _ => (126, "cannot run command"),
            };
            return Err(GateError::NotStarted {
                program: words[0].clone(),
                what,
                code,
                source: e,
            });
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
    let status = status.map_err(|source| GateError::Wait {
        program: words[0].clone(),
        source,
    })?;
    Ok(exit_code_of(status))
}

/// Runs `racegate run --prepare`'s shell command to its end. It shares our process group (a
/// Ctrl-C at the terminal reaches it directly) and, on Linux, dies with us.
fn prepare_status(line: &str) -> Result<std::process::ExitStatus, GateError> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(line);
    #[cfg(target_os = "linux")]
    die_with_parent(&mut cmd);
    cmd.status().map_err(|source| GateError::PrepareNotStarted {
        line: line.to_owned(),
        source,
    })
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
/// share ("with 20 of 80 units", "with 20 units on 1") when the gate has a budget or devices.
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
            match (h.units, h.devices.is_empty()) {
                (Some(u), true) => {
                    out.push_str(&format!(" with {u} of {} units", status.units_total))
                }
                (Some(u), false) => {
                    out.push_str(&format!(" with {u} units on {}", h.devices.join(",")))
                }
                (None, _) => out.push_str(" with an unknown share"),
            }
        }
    }
    if !status.waiters.is_empty() {
        out.push_str(&format!("; {} waiting", status.waiters.len()));
    }
    out
}

/// Read the machine-wide gates for `racegate status`, without joining any queue.
///
/// # Errors
/// The lock directory cannot be used, or the gate name is not valid.
pub fn status(cfg: &StatusConfig) -> Result<StatusReport, GateError> {
    let root = LockDir::from_env()?;
    let names = match &cfg.gate {
        Some(name) => {
            racegate::machine::validate_gate_name(name)?;
            // A gate nobody has used has no directory: report it as unknown rather than
            // describing a made-up "free, capacity 1" gate.
            if root.path().join(name).is_dir() {
                vec![name.clone()]
            } else {
                Vec::new()
            }
        }
        None => root.gates()?,
    };
    let gates = names
        .iter()
        .map(|n| read_status(&root.path().join(n), n))
        .collect();
    Ok(StatusReport {
        lock_dir: root.path().to_path_buf(),
        gates,
        now: SystemTime::now(),
    })
}
