//! [`CrashSignature`]: one normalized name per crash, whichever way the crash was seen.
//!
//! # Normalization rules
//!
//! A signature's key is `<kind>: <text>`. The text is built so that the same crash seen twice,
//! or seen through two channels (a stderr line and a crash report), gives the same key:
//!
//! 1. **Assertions** keep only the asserted text: Metal's
//!    `-[SimCommandBuffer commit]:690: failed assertion `X'`, glibc's `prog: f.c:12: fn: Assertion
//!    `X' failed.` and macOS libc's `Assertion failed: (X), function fn, file f.c, line 12.` all
//!    become `assertion: X`. The Objective-C class, selector and line number are dropped: they
//!    differ between a stderr line and the `.ips` `asi` text for one crash, and between builds.
//! 2. **Panics** become `panic: <message> at <file>`: the thread name and id, and the line and
//!    column of the location, are dropped (worker threads are named by their index; line numbers
//!    move between builds). The old one-line and the new two-line formats give the same key.
//! 3. **Signals** are named (`SIGSEGV`, never `11`: numbers differ between Linux and macOS);
//!    `Segmentation fault`, `Abort trap: 6`, `signal: 11, SIGSEGV` and an exit status all give
//!    `signal: SIGSEGV`. A crash report adds the top frame outside the system libraries:
//!    `signal: SIGSEGV at libmlx.dylib!mlx::core::binary_op_gpu`.
//! 4. **GPU runtime errors** are named by their message: `cudaErrorIllegalAddress`,
//!    `CUDA_ERROR_ILLEGAL_ADDRESS` and `CUDA error: an illegal memory access was encountered`
//!    all become `gpu: an illegal memory access was encountered`.
//! 5. In every text: hexadecimal addresses become `<addr>`, UUIDs `<uuid>`, free-standing decimal
//!    numbers (pids, thread ids, sizes, counters) `<n>`; digits inside identifiers (`fp16`,
//!    `sm_80`) and version numbers (`0.30.6`) are kept. Whitespace runs become one space, and the
//!    text is cut at 240 bytes.
//!
//! The source (stderr, crash report, core dump, exit status) is kept beside the key but is not
//! part of it: group crashes by [`CrashSignature::key`].

use std::fmt;

use serde::Serialize;

/// The longest signature text kept, in bytes.
pub const MAX_TEXT_LEN: usize = 240;

/// What kind of crash a signature names. Its [`as_str`](Self::as_str) is the key's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureKind {
    /// A failed assertion (Metal validation, C `assert`).
    Assertion,
    /// A Rust panic.
    Panic,
    /// A fatal signal (SIGSEGV, SIGABRT, …).
    Signal,
    /// A sanitizer report (AddressSanitizer, ThreadSanitizer, …).
    Sanitizer,
    /// A GPU runtime error (CUDA error codes, Metal command-buffer errors).
    Gpu,
    /// A runtime's fatal error (`fatal error:`, `Fatal Python error:`, uncaught exceptions).
    Fatal,
    /// The target stopped answering after being healthy, with no other trace.
    Unresponsive,
    /// glibc found its heap corrupted and aborted (`double free or corruption (fasttop)`).
    Heap,
    /// A process stopped answering and its threads' stacks were captured: keyed by the frames
    /// its threads were blocked in.
    Hang,
    /// A GPU driver fault reported by the kernel (NVIDIA `NVRM: Xid`).
    Driver,
}

impl SignatureKind {
    /// The key prefix: `assertion`, `panic`, `signal`, `sanitizer`, `gpu`, `fatal`, `unresponsive`,
    /// `heap`, `hang`, `driver`.
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureKind::Assertion => "assertion",
            SignatureKind::Panic => "panic",
            SignatureKind::Signal => "signal",
            SignatureKind::Sanitizer => "sanitizer",
            SignatureKind::Gpu => "gpu",
            SignatureKind::Fatal => "fatal",
            SignatureKind::Unresponsive => "unresponsive",
            SignatureKind::Heap => "heap",
            SignatureKind::Hang => "hang",
            SignatureKind::Driver => "driver",
        }
    }
}

/// Where a crash was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CrashSource {
    /// A line of the target's (or a test's) stderr.
    Stderr,
    /// A crash-report file (`.ips`, apport `.crash`).
    CrashReport,
    /// A core dump file.
    CoreDump,
    /// The exit status of a managed process.
    ExitStatus,
    /// The target stopped answering.
    Unresponsive,
    /// Frames captured from the process itself as it died or hung (racegate's tracer, a
    /// debugger, py-spy).
    Stacks,
    /// The kernel log (`/dev/kmsg`).
    KernelLog,
}

impl CrashSource {
    /// `stderr`, `crash_report`, `core_dump`, `exit_status`, `unresponsive`, `stacks` or
    /// `kernel_log` (as in JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            CrashSource::Stderr => "stderr",
            CrashSource::CrashReport => "crash_report",
            CrashSource::CoreDump => "core_dump",
            CrashSource::ExitStatus => "exit_status",
            CrashSource::Unresponsive => "unresponsive",
            CrashSource::Stacks => "stacks",
            CrashSource::KernelLog => "kernel_log",
        }
    }
}

/// A normalized name for a crash (see the [module docs](self) for the rules).
///
/// ```
/// use racegate_cli::crash::{CrashSignature, CrashSource};
///
/// let a = racegate_cli::crash::stderr::scan_line(
///     "-[SimCommandBuffer commit]:690: failed assertion `commit an already committed command buffer'",
/// )
/// .unwrap();
/// let b = CrashSignature::assertion(
///     "-[_MTLCommandBuffer commit]:512: failed assertion `commit an already committed command buffer'",
///     CrashSource::CrashReport,
/// );
/// assert_eq!(a.key(), "assertion: commit an already committed command buffer");
/// assert_eq!(a.key(), b.key());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct CrashSignature {
    kind: SignatureKind,
    key: String,
    source: CrashSource,
}

impl CrashSignature {
    /// A signature of `kind` from `text`, normalized by rule 5 only.
    pub fn new(kind: SignatureKind, text: &str, source: CrashSource) -> Self {
        let text = normalize_text(text);
        let text = if text.is_empty() {
            "(no message)".to_string()
        } else {
            text
        };
        CrashSignature {
            kind,
            key: format!("{}: {}", kind.as_str(), text),
            source,
        }
    }

    /// A signature whose text racegate composed from parts it parsed (`NVIDIA Xid 79: GPU has
    /// fallen off the bus`): its numbers are identity, so only whitespace is normalized.
    pub fn composed(kind: SignatureKind, text: &str, source: CrashSource) -> Self {
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut end = text.len().min(MAX_TEXT_LEN);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        CrashSignature {
            kind,
            key: format!("{}: {}", kind.as_str(), &text[..end]),
            source,
        }
    }

    /// An assertion signature; `text` may be a whole line (`-[C sel]:12: failed assertion `X'`),
    /// from which only the asserted text is kept.
    pub fn assertion(text: &str, source: CrashSource) -> Self {
        let inner = assertion_text(text).unwrap_or(text);
        Self::new(SignatureKind::Assertion, inner, source)
    }

    /// A panic signature: `message` with the `location` file (line and column dropped).
    pub fn panic(message: &str, location: Option<&str>, source: CrashSource) -> Self {
        let message = message.trim();
        let message = if message.is_empty() {
            "(no message)"
        } else {
            message
        };
        match location.map(strip_line_col).filter(|l| !l.is_empty()) {
            Some(file) => Self::new(
                SignatureKind::Panic,
                &format!("{message} at {file}"),
                source,
            ),
            None => Self::new(SignatureKind::Panic, message, source),
        }
    }

    /// A signal signature (`SIGSEGV`), optionally with the frame it happened in.
    pub fn signal(name: &str, frame: Option<&str>, source: CrashSource) -> Self {
        match frame {
            Some(frame) => Self::new(SignatureKind::Signal, &format!("{name} at {frame}"), source),
            None => Self::new(SignatureKind::Signal, name, source),
        }
    }

    /// The signature of a target that stopped answering after being healthy.
    pub fn unresponsive() -> Self {
        Self::new(
            SignatureKind::Unresponsive,
            "target stopped answering",
            CrashSource::Unresponsive,
        )
    }

    /// The normalized key, `<kind>: <text>`: equal keys mean the same crash.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The text after the `<kind>: ` prefix.
    pub fn text(&self) -> &str {
        &self.key[self.kind.as_str().len() + 2..]
    }

    /// The kind of crash.
    pub fn kind(&self) -> SignatureKind {
        self.kind
    }

    /// Where the crash was seen.
    pub fn source(&self) -> CrashSource {
        self.source
    }

    /// The same signature, seen through another channel.
    pub fn with_source(mut self, source: CrashSource) -> Self {
        self.source = source;
        self
    }
}

impl fmt::Display for CrashSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)
    }
}

/// The asserted text of an assertion line, if `line` holds one: Metal/Objective-C
/// `failed assertion `X'`, glibc `Assertion `X' failed.`, macOS libc
/// `Assertion failed: (X), function …`.
pub fn assertion_text(line: &str) -> Option<&str> {
    if let Some(at) = find_ascii_ci(line, "failed assertion") {
        let rest = line[at + "failed assertion".len()..].trim_start();
        return Some(quoted(rest).unwrap_or(rest).trim());
    }
    if let Some(at) = line.find("Assertion `") {
        let rest = &line[at + "Assertion ".len()..];
        let inner = quoted(rest).unwrap_or(rest);
        return Some(inner.trim());
    }
    if let Some(at) = line.find("Assertion failed: ") {
        let rest = line[at + "Assertion failed: ".len()..].trim();
        // `(expr), function f, file x.c, line 5.`: the expression is the balanced parenthesized part.
        if let Some(body) = rest.strip_prefix('(') {
            let mut depth = 1usize;
            for (i, c) in body.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(body[..i].trim());
                        }
                    }
                    _ => {}
                }
            }
        }
        let end = rest.find(", function ").unwrap_or(rest.len());
        return Some(rest[..end].trim());
    }
    None
}

/// The text between an opening backtick or quote and the last closing `'` of `s`.
fn quoted(s: &str) -> Option<&str> {
    let body = s.strip_prefix('`').or_else(|| s.strip_prefix('\''))?;
    match body.rfind('\'') {
        Some(end) => Some(&body[..end]),
        None => Some(body),
    }
}

/// Byte offset of an ASCII `needle` in `hay`, ignoring ASCII case.
pub(crate) fn find_ascii_ci(hay: &str, needle: &str) -> Option<usize> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    if n.is_empty() || h.len() < n.len() {
        return None;
    }
    (0..=h.len() - n.len()).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

/// `src/main.rs:12:5` → `src/main.rs`; anything without a trailing `:line[:col]` is unchanged.
pub fn strip_line_col(location: &str) -> &str {
    let mut s = location.trim().trim_end_matches(':');
    for _ in 0..2 {
        match s.rfind(':') {
            Some(i) if i + 1 < s.len() && s[i + 1..].bytes().all(|b| b.is_ascii_digit()) => {
                s = &s[..i]
            }
            _ => break,
        }
    }
    s
}

/// Rule 5 of the module docs: addresses, UUIDs and free-standing numbers replaced, whitespace
/// collapsed, length capped.
pub fn normalize_text(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len().min(MAX_TEXT_LEN + 8));
    let mut i = 0;
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    while i < chars.len() {
        let c = chars[i];
        let prev = if i > 0 { Some(chars[i - 1]) } else { None };
        if c.is_whitespace() || c.is_control() {
            if !out.is_empty() && !out.ends_with(' ') {
                out.push(' ');
            }
            i += 1;
            continue;
        }
        if let Some(len) = uuid_len(&chars[i..]) {
            if !prev.is_some_and(is_word) {
                out.push_str("<uuid>");
                i += len;
                continue;
            }
        }
        if c == '0'
            && matches!(chars.get(i + 1), Some('x' | 'X'))
            && chars.get(i + 2).is_some_and(|c| c.is_ascii_hexdigit())
            && !prev.is_some_and(is_word)
        {
            let mut j = i + 2;
            while j < chars.len() && chars[j].is_ascii_hexdigit() {
                j += 1;
            }
            out.push_str("<addr>");
            i = j;
            continue;
        }
        if c.is_ascii_digit() && !prev.is_some_and(|p| is_word(p) || p == '.') {
            let mut j = i;
            while j < chars.len() && chars[j].is_ascii_digit() {
                j += 1;
            }
            let next = chars.get(j).copied();
            let in_version =
                next == Some('.') && chars.get(j + 1).is_some_and(|c| c.is_ascii_digit());
            if !next.is_some_and(is_word) && !in_version {
                out.push_str("<n>");
                i = j;
                continue;
            }
            out.extend(&chars[i..j]);
            i = j;
            continue;
        }
        out.push(c);
        i += 1;
    }
    let trimmed = out.trim_end();
    let mut end = trimmed.len().min(MAX_TEXT_LEN);
    while !trimmed.is_char_boundary(end) {
        end -= 1;
    }
    trimmed[..end].trim_end().to_string()
}

/// Length in chars of a UUID (8-4-4-4-12 hex digits) at the start of `s`.
fn uuid_len(s: &[char]) -> Option<usize> {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    let mut i = 0;
    for (g, &len) in GROUPS.iter().enumerate() {
        if g > 0 {
            if s.get(i) != Some(&'-') {
                return None;
            }
            i += 1;
        }
        for _ in 0..len {
            if !s.get(i)?.is_ascii_hexdigit() {
                return None;
            }
            i += 1;
        }
    }
    if s.get(i).is_some_and(|c| c.is_alphanumeric()) {
        return None;
    }
    Some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assertion_forms_agree() {
        let metal = "-[SimCommandBuffer commit]:690: failed assertion `commit an already committed command buffer'";
        let glibc = "server: queue.c:88: commit: Assertion `!cb->committed' failed.";
        let mac = "Assertion failed: (!cb->committed), function commit, file queue.c, line 88.";
        assert_eq!(
            assertion_text(metal),
            Some("commit an already committed command buffer")
        );
        assert_eq!(assertion_text(glibc), Some("!cb->committed"));
        assert_eq!(assertion_text(mac), Some("!cb->committed"));
        assert_eq!(assertion_text("all good"), None);
    }

    #[test]
    fn normalization_replaces_varying_parts() {
        assert_eq!(
            normalize_text("pid 4242 at 0x7ff81366a00e  thread\t3"),
            "pid <n> at <addr> thread <n>"
        );
        assert_eq!(
            normalize_text("mlx 0.30.6 fp16 sm_80 x2"),
            "mlx 0.30.6 fp16 sm_80 x2"
        );
        assert_eq!(
            normalize_text("incident 8B8D7A5F-13CF-4943-BA6B-1B0EC51D312A done"),
            "incident <uuid> done"
        );
        assert_eq!(normalize_text(&"é".repeat(400)).len(), MAX_TEXT_LEN);
    }

    #[test]
    fn line_and_column_are_dropped() {
        assert_eq!(strip_line_col("src/main.rs:12:5"), "src/main.rs");
        assert_eq!(strip_line_col("src/main.rs:12:5:"), "src/main.rs");
        assert_eq!(strip_line_col("src/main.rs"), "src/main.rs");
        assert_eq!(strip_line_col("C:\\x\\main.rs:3"), "C:\\x\\main.rs");
    }

    #[test]
    fn keys_ignore_the_source() {
        let a = CrashSignature::signal("SIGSEGV", None, CrashSource::Stderr);
        let b = CrashSignature::signal("SIGSEGV", None, CrashSource::ExitStatus);
        assert_eq!(a.key(), b.key());
        assert_eq!(a.text(), "SIGSEGV");
        assert_ne!(a, b);
    }
}
