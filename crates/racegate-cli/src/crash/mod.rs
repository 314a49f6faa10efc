//! Crash signatures: `.ips` reports, stderr lines, exit signals, core dumps.
//!
//! Every parser here is pure (it reads the file it is given and nothing else) and never panics
//! on any input. Each turns what it reads into a [`CrashSignature`], a normalized name under
//! which the same crash groups together whichever way it was seen (see [`signature`] for the
//! normalization rules):
//!
//! ```
//! use racegate_cli::crash::{ips, stderr};
//!
//! let header = r#"{"app_name":"sim-server","timestamp":"2026-05-10 09:14:03.00 -0700","bug_type":"309","name":"sim-server"}"#;
//! let body = r#"{"procName":"sim-server","pid":4242,
//!   "exception":{"type":"EXC_CRASH","signal":"SIGABRT"},
//!   "asi":{"Metal":["-[_MTLCommandBuffer commit]:690: failed assertion `commit an already committed command buffer'"]}}"#;
//! let report = ips::parse_str(&format!("{header}\n{body}"), "<input>").unwrap();
//! let line = stderr::scan_line(
//!     "-[SimCommandBuffer commit]:212: failed assertion `commit an already committed command buffer'",
//! )
//! .unwrap();
//! assert_eq!(report.signature().key(), line.key());
//! assert_eq!(line.key(), "assertion: commit an already committed command buffer");
//! ```

pub mod coredump;
pub mod defaults;
pub mod errors;
pub mod faulthandler;
pub mod frames;
pub mod hang;
pub mod identity;
pub mod ips;
pub mod kmsg;
pub mod native;
pub mod signal;
pub mod signature;
pub mod stderr;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use defaults::{default_crash_dirs, report_patterns, scoped_patterns, REPORT_PATTERNS};
pub use errors::CrashError;
pub use frames::{CrashClass, Frame, FrameKind, ThreadStack};
pub use identity::{identify, Evidence, Traces};
pub use signal::{signal_name, Termination};
pub use signature::{CrashSignature, CrashSource, SignatureKind};
pub use stderr::StderrScanner;

/// A folder where the OS drops crash reports, and the file names in it that are reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrashDir {
    /// The folder.
    pub path: PathBuf,
    /// Glob patterns of report file names in it.
    pub patterns: Vec<String>,
}

/// The OS's crash-report folders: on macOS `~/Library/Logs/DiagnosticReports` and
/// `/Library/Logs/DiagnosticReports` (`*.ips`); on Linux systemd-coredump's
/// `/var/lib/systemd/coredump` (`core.*`) and apport's `/var/crash` (`*.crash`); none elsewhere.
/// Folders that do not exist are included: they may appear during a run.
pub fn default_dirs() -> Vec<CrashDir> {
    default_dirs_for(
        std::env::consts::OS,
        std::env::var_os("HOME").map(PathBuf::from),
    )
}

/// [`default_dirs`] for a given OS (`macos`, `linux`) and home folder.
pub fn default_dirs_for(os: &str, home: Option<PathBuf>) -> Vec<CrashDir> {
    let dir = |path: PathBuf, pattern: &str| CrashDir {
        path,
        patterns: vec![pattern.to_string()],
    };
    match os {
        "macos" => {
            let mut dirs = Vec::new();
            if let Some(home) = home {
                dirs.push(dir(home.join("Library/Logs/DiagnosticReports"), "*.ips"));
            }
            dirs.push(dir("/Library/Logs/DiagnosticReports".into(), "*.ips"));
            dirs
        }
        "linux" => vec![
            dir("/var/lib/systemd/coredump".into(), "core.*"),
            dir("/var/crash".into(), "*.crash"),
        ],
        _ => Vec::new(),
    }
}

/// Which format a crash-report file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportFormat {
    /// A macOS `.ips` JSON report.
    Ips,
    /// An apport `.crash` report.
    Apport,
    /// A systemd-coredump core file (only its name is read).
    Coredump,
}

/// A crash read from a file in a crash-report folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrashReport {
    /// The file.
    pub path: PathBuf,
    /// Its format.
    pub format: ReportFormat,
    /// The crashed process's name.
    pub process: Option<String>,
    /// The crashed process's id.
    pub pid: Option<u32>,
    /// The signal's name, when the report has one.
    pub signal: Option<String>,
    /// The crash signature.
    pub signature: CrashSignature,
    /// Top frames of the faulting thread (`image!symbol`), when the report has them.
    pub frames: Vec<String>,
    /// The same frames, structured.
    pub stack: Vec<Frame>,
}

/// The format of a crash-report file, from its name: `*.ips`, `*.crash` (apport; a legacy
/// macOS text `.crash` is told apart by content), systemd `core.*`.
pub fn format_of(path: &Path) -> Option<ReportFormat> {
    let name = path.file_name()?.to_str()?;
    if name.ends_with(".ips") {
        Some(ReportFormat::Ips)
    } else if name.ends_with(".crash") {
        Some(ReportFormat::Apport)
    } else if name.starts_with("core.") {
        Some(ReportFormat::Coredump)
    } else {
        None
    }
}

/// Read a crash report of any supported format.
pub fn parse_file(path: &Path) -> Result<CrashReport, CrashError> {
    let format = format_of(path).ok_or_else(|| CrashError::UnknownFormat {
        path: path.to_path_buf(),
    })?;
    let report = |process, pid, signal, signature, (frames, stack)| CrashReport {
        path: path.to_path_buf(),
        format,
        process,
        pid,
        signal,
        signature,
        frames,
        stack,
    };
    match format {
        ReportFormat::Ips => {
            let r = ips::parse_file(path)?;
            Ok(report(
                Some(r.process.clone()),
                r.pid,
                r.signal.clone(),
                r.signature(),
                (
                    r.top_frames(ips::TOP_FRAMES),
                    r.frames
                        .iter()
                        .map(|f| Frame {
                            kind: FrameKind::Native,
                            function: f.symbol.clone(),
                            library: f.image.clone(),
                            file: None,
                            line: None,
                            address: f.image_offset,
                        })
                        .collect(),
                ),
            ))
        }
        ReportFormat::Apport => {
            let r = coredump::parse_apport_file(path)?;
            Ok(report(
                r.process.clone(),
                r.pid,
                r.signal.and_then(signal_name).map(str::to_string),
                r.signature(),
                (Vec::new(), Vec::new()),
            ))
        }
        ReportFormat::Coredump => {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let r = coredump::parse_coredump_name(name)?;
            // The signal, when systemd recorded it, names the crash the way the exit status
            // does, so the two sightings group under one signature.
            let attrs = coredump::CoredumpAttrs::read(path);
            let signal = attrs.signal.and_then(signal_name);
            let signature = match signal {
                Some(sig) => CrashSignature::signal(sig, None, CrashSource::CoreDump),
                None => r.signature(),
            };
            let process = attrs
                .exe
                .as_deref()
                .and_then(|e| Path::new(e).file_name())
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_else(|| r.comm.clone());
            Ok(report(
                Some(process),
                Some(r.pid),
                signal.map(str::to_string),
                signature,
                (Vec::new(), Vec::new()),
            ))
        }
    }
}

#[cfg(test)]
mod fixture_tests;
#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_dirs_per_os() {
        let mac = default_dirs_for("macos", Some("/Users/me".into()));
        assert_eq!(
            mac[0].path,
            PathBuf::from("/Users/me/Library/Logs/DiagnosticReports")
        );
        assert_eq!(
            mac[1].path,
            PathBuf::from("/Library/Logs/DiagnosticReports")
        );
        assert!(mac.iter().all(|d| d.patterns == ["*.ips"]));
        let linux = default_dirs_for("linux", None);
        assert_eq!(linux[0].patterns, ["core.*"]);
        assert_eq!(linux[1].path, PathBuf::from("/var/crash"));
        assert!(default_dirs_for("windows", None).is_empty());
    }

    #[test]
    fn formats_from_names() {
        assert_eq!(
            format_of(Path::new("a/sim-2026.ips")),
            Some(ReportFormat::Ips)
        );
        assert_eq!(
            format_of(Path::new("/var/crash/_usr_bin_x.1000.crash")),
            Some(ReportFormat::Apport)
        );
        assert_eq!(
            format_of(Path::new("core.x.1.b.2.3.zst")),
            Some(ReportFormat::Coredump)
        );
        assert_eq!(format_of(Path::new("notes.txt")), None);
    }
}
