//! Errors of the crash parsers. Each names the file (or `<input>` for in-memory text), and the
//! line or field where parsing stopped.

use std::path::PathBuf;

/// Why a crash report, core-dump name or exit status could not be turned into a crash.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CrashError {
    /// The file could not be read.
    #[error("cannot read crash report `{}`: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is empty (crash reporters write files in several steps; a later scan may succeed).
    #[error("crash report `{origin}` is empty")]
    Empty {
        /// The file or `<input>`.
        origin: String,
    },
    /// An old plain-text macOS `.crash` report: racegate reads the JSON `.ips` format only.
    #[error(
        "crash report `{origin}` is in the legacy text `.crash` format (line 1 starts with `{start}`); \
         only the JSON `.ips` format (macOS 12 and later) is parsed"
    )]
    LegacyText {
        /// The file or `<input>`.
        origin: String,
        /// The first characters of line 1.
        start: String,
    },
    /// A line of an `.ips` report is not valid JSON.
    #[error("crash report `{origin}` line {line}, column {column}: invalid JSON in the {part}: {message}")]
    Json {
        /// The file or `<input>`.
        origin: String,
        /// `header` (line 1) or `body` (line 2 onwards).
        part: &'static str,
        /// 1-based line in the file.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What serde_json reported.
        message: String,
    },
    /// A field has the wrong JSON type, or a required field is missing.
    #[error("crash report `{origin}` line {line}: field `{field}` {problem}")]
    Field {
        /// The file or `<input>`.
        origin: String,
        /// 1-based line where the JSON value holding the field starts.
        line: usize,
        /// The field, as a dotted path (`exception.signal`).
        field: String,
        /// What is wrong (`is missing`, `must be a string`, …).
        problem: String,
    },
    /// An `.ips` report that does not describe a crash (`bug_type` other than 309 or 109).
    #[error(
        "crash report `{origin}` has `bug_type` `{bug_type}`, which is not a crash (309 and 109 are)"
    )]
    NotACrash {
        /// The file or `<input>`.
        origin: String,
        /// The header's `bug_type`.
        bug_type: String,
    },
    /// A file name in a systemd-coredump folder that does not follow
    /// `core.<comm>.<uid>.<boot_id>.<pid>.<timestamp_us>[.<compression>]`.
    #[error("core dump name `{name}` is not a systemd-coredump name: {reason}")]
    CoredumpName {
        /// The file name.
        name: String,
        /// What does not match.
        reason: String,
    },
    /// An apport `.crash` report that cannot be read.
    #[error("apport report `{origin}` line {line}: {reason}")]
    Apport {
        /// The file or `<input>`.
        origin: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A file whose name matches none of the crash report formats racegate reads.
    #[error(
        "`{}` is not a crash report racegate reads (expected `*.ips`, `*.crash` or systemd `core.*`)",
        path.display()
    )]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
}
