//! Linux crash traces: systemd-coredump file names and apport `.crash` reports.
//!
//! systemd-coredump stores `core.<comm>.<uid>.<boot_id>.<pid>.<timestamp_us>[.zst|.lz4|.xz]` in
//! `/var/lib/systemd/coredump`; the name carries the process and pid, and the file's extended
//! attributes (`user.coredump.signal`, `user.coredump.exe`, read by [`CoredumpAttrs`]) the
//! signal and executable, where the file system keeps them. apport writes `/var/crash/<exe>.<uid>.crash`, a
//! `Key: value` file whose continuation lines start with a space; `Signal`, `ExecutablePath`,
//! `ProcStatus` (`Name:`, `Pid:`) and `AssertionMessage` are read, and the base64 `CoreDump`
//! value (often hundreds of megabytes) is skipped without being held in memory.

use std::io::BufRead;
use std::path::Path;

use serde::Serialize;

use super::errors::CrashError;
use super::signal::{signal_name, signal_number};
use super::signature::{CrashSignature, CrashSource, SignatureKind};

/// The fields of a systemd-coredump file name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CoredumpName {
    /// The process's `comm` (at most 15 bytes; may contain dots).
    pub comm: String,
    /// The process's user id.
    pub uid: u32,
    /// The boot id (32 hex digits).
    pub boot_id: String,
    /// The process id.
    pub pid: u32,
    /// When it crashed, microseconds since the Unix epoch.
    pub timestamp_us: u64,
    /// `zst`, `lz4` or `xz` when compressed.
    pub compression: Option<String>,
}

impl CoredumpName {
    /// `signal: core dumped by <comm>`: the name has no signal, so the process names the crash.
    pub fn signature(&self) -> CrashSignature {
        CrashSignature::new(
            SignatureKind::Signal,
            &format!("core dumped by {}", self.comm),
            CrashSource::CoreDump,
        )
    }
}

/// What systemd-coredump records in a core file's extended attributes (`user.coredump.*`):
/// the name alone lacks the signal and the executable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CoredumpAttrs {
    /// `user.coredump.signal`.
    pub signal: Option<i32>,
    /// `user.coredump.exe`.
    pub exe: Option<String>,
}

impl CoredumpAttrs {
    /// Read them from `path`; empty where the file system, the OS or the file has none.
    pub fn read(path: &Path) -> CoredumpAttrs {
        let text =
            |name: &str| get_xattr(path, name).map(|v| v.trim_end_matches('\0').trim().to_string());
        CoredumpAttrs {
            signal: text("user.coredump.signal").and_then(|s| s.parse().ok()),
            exe: text("user.coredump.exe").filter(|s| !s.is_empty()),
        }
    }
}

#[cfg(target_os = "linux")]
fn get_xattr(path: &Path, name: &str) -> Option<String> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
    let c_name = CString::new(name).ok()?;
    // systemd's values are short (a number, a path): one page is plenty; longer is not ours.
    let mut buf = vec![0u8; 4096];
    // SAFETY: both strings are NUL-terminated and outlive the call; `buf` is valid for
    // `buf.len()` bytes and the kernel writes at most that many.
    let n = unsafe {
        libc::getxattr(
            c_path.as_ptr(),
            c_name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = usize::try_from(n).ok()?;
    buf.truncate(n);
    String::from_utf8(buf).ok()
}

#[cfg(not(target_os = "linux"))]
fn get_xattr(_path: &Path, _name: &str) -> Option<String> {
    None
}

/// Parse a systemd-coredump file name (the name only, not a path).
pub fn parse_coredump_name(name: &str) -> Result<CoredumpName, CrashError> {
    let err = |reason: &str| CrashError::CoredumpName {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    let rest = name
        .strip_prefix("core.")
        .ok_or_else(|| err("it does not start with `core.`"))?;
    let (rest, compression) = match rest.rsplit_once('.') {
        Some((head, ext)) if matches!(ext, "zst" | "lz4" | "xz") => (head, Some(ext.to_string())),
        _ => (rest, None),
    };
    // comm may contain dots, so the four numeric fields are taken from the right.
    let mut parts = rest.rsplitn(5, '.');
    let timestamp = parts
        .next()
        .ok_or_else(|| err("the timestamp is missing"))?;
    let pid = parts.next().ok_or_else(|| err("the pid is missing"))?;
    let boot_id = parts.next().ok_or_else(|| err("the boot id is missing"))?;
    let uid = parts.next().ok_or_else(|| err("the uid is missing"))?;
    let comm = parts
        .next()
        .ok_or_else(|| err("the process name is missing"))?;
    if comm.is_empty() {
        return Err(err("the process name is empty"));
    }
    if boot_id.len() != 32 || !boot_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(err("the boot id is not 32 hex digits"));
    }
    Ok(CoredumpName {
        comm: unescape(comm),
        uid: uid.parse().map_err(|_| err("the uid is not a number"))?,
        boot_id: boot_id.to_string(),
        pid: pid.parse().map_err(|_| err("the pid is not a number"))?,
        timestamp_us: timestamp
            .parse()
            .map_err(|_| err("the timestamp is not a number"))?,
        compression,
    })
}

/// systemd escapes unusual bytes of `comm` as `\xNN`.
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'x') {
            if let Some(v) = bytes
                .get(i + 2..i + 4)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The parts of an apport report racegate uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApportReport {
    /// `ProblemType` (`Crash`).
    pub problem_type: Option<String>,
    /// `ExecutablePath`.
    pub executable_path: Option<String>,
    /// `ProcStatus` `Name:`, else the file name of `ExecutablePath`.
    pub process: Option<String>,
    /// `ProcStatus` `Pid:`.
    pub pid: Option<u32>,
    /// `Signal`, as a number.
    pub signal: Option<i32>,
    /// `AssertionMessage` (glibc assertion failures).
    pub assertion: Option<String>,
    /// `Date`, as written.
    pub date: Option<String>,
}

impl ApportReport {
    /// The signature: the assertion when apport captured one, else the signal's name.
    pub fn signature(&self) -> CrashSignature {
        if let Some(a) = &self.assertion {
            return CrashSignature::assertion(a, CrashSource::CrashReport);
        }
        let name = match self.signal {
            Some(n) => signal_name(n)
                .map(str::to_string)
                .unwrap_or_else(|| format!("signal {n}")),
            None => "unknown signal".to_string(),
        };
        CrashSignature::signal(&name, None, CrashSource::CrashReport)
    }
}

/// First keys of a macOS plain-text crash report, which shares the `.crash` extension.
const MACOS_TEXT_STARTS: [&str; 4] = [
    "Process:",
    "Incident Identifier:",
    "-----",
    "Translated Report",
];

/// Values longer than this are not kept (only `CoreDump` and friends get there).
const MAX_VALUE_LEN: usize = 64 * 1024;
/// Lines longer than this are cut (base64 core lines are short; anything longer is not apport).
const MAX_LINE_LEN: usize = 1024 * 1024;

/// Read and parse an apport `.crash` file.
pub fn parse_apport_file(path: &Path) -> Result<ApportReport, CrashError> {
    let file = std::fs::File::open(path).map_err(|source| CrashError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_apport(std::io::BufReader::new(file), &path.display().to_string()).map_err(|e| match e {
        CrashError::Io { source, .. } => CrashError::Io {
            path: path.to_path_buf(),
            source,
        },
        other => other,
    })
}

/// Parse an apport report from `reader`; `origin` names it in errors.
pub fn parse_apport<R: BufRead>(mut reader: R, origin: &str) -> Result<ApportReport, CrashError> {
    let mut report = ApportReport {
        problem_type: None,
        executable_path: None,
        process: None,
        pid: None,
        signal: None,
        assertion: None,
        date: None,
    };
    let err = |line: usize, reason: String| CrashError::Apport {
        origin: origin.to_string(),
        line,
        reason,
    };
    let mut current: Option<(String, String, usize)> = None;
    let mut buf = Vec::new();
    let mut line_no = 0usize;
    let mut any_key = false;
    loop {
        buf.clear();
        let n = std::io::Read::take(&mut reader, MAX_LINE_LEN as u64)
            .read_until(b'\n', &mut buf)
            .map_err(|source| CrashError::Io {
                path: origin.into(),
                source,
            })?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\n', '\r']);
        if line.starts_with(' ') || line.starts_with('\t') {
            let Some((_, value, _)) = current.as_mut() else {
                return Err(err(
                    line_no,
                    "a continuation line comes before any key".into(),
                ));
            };
            if value.len() < MAX_VALUE_LEN {
                if !value.is_empty() {
                    value.push('\n');
                }
                value.push_str(line.trim_start());
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        if let Some((key, value, at)) = current.take() {
            apply(&mut report, &key, &value, at, origin)?;
        }
        if !any_key && MACOS_TEXT_STARTS.iter().any(|m| line.starts_with(m)) {
            return Err(CrashError::LegacyText {
                origin: origin.to_string(),
                start: line.chars().take(40).collect(),
            });
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(err(
                line_no,
                format!(
                    "expected `Key: value`, found `{}`",
                    line.chars().take(40).collect::<String>()
                ),
            ));
        };
        if key.is_empty() || key.contains(' ') {
            return Err(err(line_no, format!("`{key}` is not an apport key")));
        }
        any_key = true;
        current = Some((key.to_string(), value.trim().to_string(), line_no));
    }
    if let Some((key, value, at)) = current.take() {
        apply(&mut report, &key, &value, at, origin)?;
    }
    if !any_key {
        return Err(CrashError::Empty {
            origin: origin.to_string(),
        });
    }
    if report.process.is_none() {
        report.process = report
            .executable_path
            .as_deref()
            .map(|p| p.rsplit('/').next().unwrap_or(p).to_string());
    }
    Ok(report)
}

fn apply(
    report: &mut ApportReport,
    key: &str,
    value: &str,
    line: usize,
    origin: &str,
) -> Result<(), CrashError> {
    match key {
        "ProblemType" => report.problem_type = Some(value.to_string()),
        "ExecutablePath" => report.executable_path = Some(value.to_string()),
        "Date" => report.date = Some(value.to_string()),
        "AssertionMessage" => report.assertion = Some(value.to_string()),
        "Signal" => {
            report.signal = Some(signal_number(value).ok_or_else(|| CrashError::Apport {
                origin: origin.to_string(),
                line,
                reason: format!("`Signal` is `{value}`, not a signal number"),
            })?)
        }
        "ProcStatus" => {
            for l in value.lines() {
                if let Some(name) = l.strip_prefix("Name:") {
                    report.process = Some(name.trim().to_string());
                } else if let Some(pid) = l.strip_prefix("Pid:") {
                    report.pid = pid.trim().parse().ok();
                }
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coredump_names_parse_from_the_right() {
        let n = parse_coredump_name(
            "core.python3\\x2e11.1000.8f2d0c6bd3a54d2c9f0c4e7f5a1b2c3d.48213.1763800000123456.zst",
        )
        .unwrap();
        assert_eq!(n.comm, "python3.11");
        assert_eq!(n.uid, 1000);
        assert_eq!(n.pid, 48213);
        assert_eq!(n.timestamp_us, 1_763_800_000_123_456);
        assert_eq!(n.compression.as_deref(), Some("zst"));
        let dotted =
            parse_coredump_name("core.sim.v2.0.8f2d0c6bd3a54d2c9f0c4e7f5a1b2c3d.7.1").unwrap();
        assert_eq!(dotted.comm, "sim.v2");
        assert_eq!(dotted.compression, None);
        assert_eq!(dotted.signature().key(), "signal: core dumped by sim.v2");
    }

    #[test]
    fn bad_coredump_names_say_why() {
        for (name, why) in [
            ("vmcore", "does not start"),
            ("core.x.1000.nothex.1.2", "boot id"),
            ("core.x.u.8f2d0c6bd3a54d2c9f0c4e7f5a1b2c3d.1.2", "uid"),
            ("core..0.8f2d0c6bd3a54d2c9f0c4e7f5a1b2c3d.1.2", "empty"),
        ] {
            let e = parse_coredump_name(name).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(name), "{e}");
        }
    }

    #[test]
    fn apport_errors_name_the_line() {
        let e = parse_apport(
            "ProblemType: Crash\nnot a key value line\n".as_bytes(),
            "x.crash",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("x.crash") && e.contains("line 2"), "{e}");
        let e = parse_apport("ProblemType: Crash\nSignal: eleven\n".as_bytes(), "y.crash")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("`Signal`"), "{e}");
    }
}
