//! Naming signals and decoding exit statuses, the same way on Linux and macOS.
//!
//! Signal numbers differ between the two (SIGBUS is 7 on Linux, 10 on macOS), so names come
//! from the platform's own table (nix) and signatures always carry the name.

use std::process::ExitStatus;

use super::signature::{CrashSignature, CrashSource};

/// The name (`SIGSEGV`) of signal `signal` on this platform, if it is one.
pub fn signal_name(signal: i32) -> Option<&'static str> {
    #[cfg(unix)]
    {
        nix::sys::signal::Signal::try_from(signal)
            .ok()
            .map(|s| s.as_str())
    }
    #[cfg(not(unix))]
    {
        // Linux numbering: the only other platform racegate's reports come from.
        LINUX_NAMES
            .iter()
            .find(|(n, _)| *n == signal)
            .map(|(_, name)| *name)
    }
}

#[cfg(not(unix))]
const LINUX_NAMES: [(i32, &str); 12] = [
    (1, "SIGHUP"),
    (2, "SIGINT"),
    (3, "SIGQUIT"),
    (4, "SIGILL"),
    (5, "SIGTRAP"),
    (6, "SIGABRT"),
    (7, "SIGBUS"),
    (8, "SIGFPE"),
    (9, "SIGKILL"),
    (11, "SIGSEGV"),
    (13, "SIGPIPE"),
    (15, "SIGTERM"),
];

/// The number of a signal named `SIGSEGV`, `SEGV`, `sigsegv` or given as a number (`11`).
pub fn signal_number(name: &str) -> Option<i32> {
    let name = name.trim();
    if let Ok(n) = name.parse::<i32>() {
        return signal_name(n).map(|_| n);
    }
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    (1..=64).find(|&n| signal_name(n) == Some(full.as_str()))
}

/// Whether `signal` is a polite request to stop (SIGTERM, SIGINT, SIGHUP) rather than a crash.
/// A supervisor must still ignore signals it sent itself.
pub fn is_stop_request(signal: i32) -> bool {
    matches!(signal_name(signal), Some("SIGTERM" | "SIGINT" | "SIGHUP"))
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// It exited with this code.
    Exited(i32),
    /// A signal ended it.
    Signaled {
        /// The signal number on this platform.
        signal: i32,
        /// Whether it dumped core.
        core_dumped: bool,
    },
}

impl Termination {
    /// Decode a std exit status.
    pub fn from_status(status: ExitStatus) -> Self {
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            if let Some(signal) = status.signal() {
                return Termination::Signaled {
                    signal,
                    core_dumped: status.core_dumped(),
                };
            }
        }
        Termination::Exited(status.code().unwrap_or(-1))
    }

    /// Decode a shell-style code: 128+N means "killed by signal N" when N is a signal
    /// (what `sh -c` and most wrappers report for a child killed by a signal).
    pub fn from_shell_code(code: i32) -> Self {
        match decode_shell_code(code) {
            Some(signal) => Termination::Signaled {
                signal,
                core_dumped: false,
            },
            None => Termination::Exited(code),
        }
    }

    /// The signal's name, for a signaled process.
    pub fn signal_name(&self) -> Option<&'static str> {
        match *self {
            Termination::Signaled { signal, .. } => signal_name(signal),
            Termination::Exited(_) => None,
        }
    }

    /// Whether this ending is a crash: any signal but a polite stop request.
    pub fn is_crash(&self) -> bool {
        match *self {
            Termination::Signaled { signal, .. } => !is_stop_request(signal),
            Termination::Exited(_) => false,
        }
    }

    /// The crash signature of this ending (`signal: SIGSEGV`), when it is a crash.
    pub fn signature(&self) -> Option<CrashSignature> {
        if !self.is_crash() {
            return None;
        }
        let Termination::Signaled { signal, .. } = *self else {
            return None;
        };
        let name = match signal_name(signal) {
            Some(name) => name.to_string(),
            None => format!("signal {signal}"),
        };
        Some(CrashSignature::signal(&name, None, CrashSource::ExitStatus))
    }
}

impl std::fmt::Display for Termination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Termination::Exited(code) => write!(f, "exit code {code}"),
            Termination::Signaled {
                signal,
                core_dumped,
            } => {
                match signal_name(signal) {
                    Some(name) => write!(f, "{name} (signal {signal})")?,
                    None => write!(f, "signal {signal}")?,
                }
                if core_dumped {
                    f.write_str(", core dumped")?;
                }
                Ok(())
            }
        }
    }
}

/// The signal N in a shell-style exit code 128+N, if N names a signal here.
pub fn decode_shell_code(code: i32) -> Option<i32> {
    let n = code.checked_sub(128)?;
    if (1..=64).contains(&n) && signal_name(n).is_some() {
        Some(n)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn names_follow_the_platform() {
        assert_eq!(signal_name(libc_sig("SIGSEGV")), Some("SIGSEGV"));
        assert_eq!(signal_name(6), Some("SIGABRT"));
        assert_eq!(signal_name(0), None);
        assert_eq!(signal_name(-3), None);
        assert_eq!(signal_number("segv"), Some(libc_sig("SIGSEGV")));
        assert_eq!(signal_number("SIGABRT"), Some(6));
        assert_eq!(signal_number("6"), Some(6));
        assert_eq!(signal_number("SIGNOPE"), None);
    }

    #[cfg(unix)]
    fn libc_sig(name: &str) -> i32 {
        use std::str::FromStr;
        nix::sys::signal::Signal::from_str(name).unwrap() as i32
    }

    #[cfg(unix)]
    #[test]
    fn shell_codes_decode_to_signals() {
        assert_eq!(decode_shell_code(134), Some(6));
        assert_eq!(
            decode_shell_code(128 + libc_sig("SIGSEGV")),
            Some(libc_sig("SIGSEGV"))
        );
        assert_eq!(decode_shell_code(1), None);
        assert_eq!(decode_shell_code(128), None);
        assert_eq!(decode_shell_code(i32::MIN), None);
        let t = Termination::from_shell_code(139);
        assert_eq!(t.signature().unwrap().key(), "signal: SIGSEGV");
        assert!(
            !Termination::from_shell_code(143).is_crash(),
            "SIGTERM is a stop"
        );
    }

    #[cfg(unix)]
    #[test]
    fn real_exit_statuses_decode() {
        use std::process::Command;
        let status = Command::new("sh")
            .args(["-c", "kill -SEGV $$"])
            .status()
            .unwrap();
        let t = Termination::from_status(status);
        assert_eq!(t.signal_name(), Some("SIGSEGV"));
        assert!(t.is_crash());
        let ok =
            Termination::from_status(Command::new("sh").args(["-c", "exit 3"]).status().unwrap());
        assert_eq!(ok, Termination::Exited(3));
        assert!(ok.signature().is_none());
    }
}
