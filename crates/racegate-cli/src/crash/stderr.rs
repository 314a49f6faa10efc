//! Crash lines in a process's stderr.
//!
//! [`scan_line`] classifies one line on its own. A Rust panic since Rust 1.73 spans two lines
//! (`thread 'main' panicked at src/main.rs:2:5:` and then the message), so a stream of lines
//! goes through a [`StderrScanner`], which holds the header until the message arrives.
//!
//! Recognized (first match wins, in this order): assertions (`failed assertion`, glibc and
//! macOS libc `assert`), sanitizer reports (AddressSanitizer, ThreadSanitizer, … keyed by the
//! function their `SUMMARY` line or first frame names; compute-sanitizer's `=========` reports,
//! keyed by the kernel), NVIDIA `NVRM: Xid` lines, GPU runtime errors (CUDA error strings and
//! codes, cudarc's `DriverError(CUDA_ERROR_…)`, ROCm's `Memory access fault by GPU node-N`, Metal
//! command-buffer errors, MLX's `There is no Stream(gpu, N) in current thread`), glibc heap
//! checks (`double free or corruption (fasttop)`), `Fatal Python error`, `fatal error` / `fatal
//! runtime error`, Rust panics (a panic whose message is a GPU error is that GPU error), and
//! fatal signals (`Segmentation fault`, `Abort trap`, `Aborted`, `Bus error`, `Illegal
//! instruction`, `SIGSEGV`…). `SIGTERM`, `SIGINT` and `SIGKILL` are not crashes: a server
//! logging `received SIGTERM` is being stopped.

use super::signature::{assertion_text, find_ascii_ci, CrashSignature, CrashSource, SignatureKind};

/// Classify one stderr line on its own. A report that spans lines (a new-format panic header,
/// a sanitizer report) gives what its first line says; use [`StderrScanner`] for streams.
pub fn scan_line(line: &str) -> Option<CrashSignature> {
    let line = clean(line);
    match classify(&line)? {
        Hit::Done(sig) => Some(sig),
        Hit::Open(pending) => Some(pending.close()),
    }
}

/// A line-stateful scanner for a stream of stderr lines.
///
/// ```
/// use racegate_cli::crash::stderr::StderrScanner;
///
/// let mut scanner = StderrScanner::new();
/// assert!(scanner.feed("thread 'tokio-runtime-worker' panicked at src/gpu.rs:41:9:").is_none());
/// let sig = scanner.feed("encoder already ended").unwrap();
/// assert_eq!(sig.key(), "panic: encoder already ended at src/gpu.rs");
/// ```
#[derive(Debug, Default)]
pub struct StderrScanner {
    /// A report whose first line was seen; the lines after it complete it.
    open: Option<Pending>,
    /// A crash completed while another line also started one: returned next.
    ready: Option<CrashSignature>,
}

/// A crash report that spans lines, waiting for the line that completes it.
#[derive(Debug, Clone)]
enum Pending {
    /// A Rust panic header (1.73+): the next line is the message.
    Panic { location: String },
    /// A sanitizer's `WARNING:`/`ERROR:` line: the first `#0 func …` frame or the `SUMMARY:`
    /// line names where.
    Sanitizer { what: String, frame: Option<String> },
    /// A compute-sanitizer error line: the `at …` line names the kernel.
    Compute { what: String },
}

impl Pending {
    /// The signature with what has been seen so far.
    fn close(self) -> CrashSignature {
        match self {
            Pending::Panic { location } => {
                CrashSignature::panic("", Some(&location), CrashSource::Stderr)
            }
            Pending::Sanitizer { what, frame } => CrashSignature::new(
                SignatureKind::Sanitizer,
                &match frame {
                    Some(f) => format!("{what} in {f}"),
                    None => what,
                },
                CrashSource::Stderr,
            ),
            Pending::Compute { what } => CrashSignature::new(
                SignatureKind::Sanitizer,
                &format!("compute-sanitizer: {what}"),
                CrashSource::Stderr,
            ),
        }
    }

    /// Feed the next line: `Ok(sig)` completes the report, `Err(self)` keeps waiting, and
    /// `None`... is never returned: a line that does not belong ends it (the caller closes it).
    fn next(self, line: &str) -> Step {
        match self {
            // The line after a two-line panic header is its message, whatever it says; a GPU
            // error in it names the crash better than the panic's location (GPU errors surface
            // at whatever call synchronized next).
            Pending::Panic { location } => Step::Done(match gpu_error(line) {
                Some(message) => {
                    CrashSignature::new(SignatureKind::Gpu, &message, CrashSource::Stderr)
                }
                None => CrashSignature::panic(line, Some(&location), CrashSource::Stderr),
            }),
            Pending::Sanitizer { what, frame } => {
                let t = line.trim_start();
                if let Some(rest) = t.strip_prefix("SUMMARY: ") {
                    // `SUMMARY: ThreadSanitizer: data race input/fifo.c:47 in input_fifo`
                    let func = rest.rsplit_once(" in ").map(|(_, f)| f.trim().to_string());
                    return Step::Done(
                        Pending::Sanitizer {
                            what,
                            frame: func.or(frame),
                        }
                        .close(),
                    );
                }
                let frame = match frame {
                    Some(f) => Some(f),
                    // `#0 input_fifo input/fifo.c:49 (cava+0x9acb)`: a `<null>` frame names nothing.
                    None => t
                        .strip_prefix("#0 ")
                        .and_then(|r| r.split_whitespace().next())
                        .filter(|f| !f.starts_with('<'))
                        .map(str::to_string),
                };
                let other_report =
                    t.starts_with("WARNING: ") || t.starts_with("==") && t.contains("ERROR: ");
                if other_report {
                    return Step::Ends(Pending::Sanitizer { what, frame });
                }
                Step::Wait(Pending::Sanitizer { what, frame })
            }
            Pending::Compute { what } => {
                let Some(body) = line.trim_start().strip_prefix("=========") else {
                    return Step::Ends(Pending::Compute { what });
                };
                let body = body.trim();
                if let Some(at) = body.strip_prefix("at ") {
                    let kernel = kernel_name(at);
                    let what = if kernel.is_empty() {
                        what
                    } else {
                        format!("{what} in {kernel}")
                    };
                    return Step::Done(Pending::Compute { what }.close());
                }
                if body.is_empty() || body.starts_with("ERROR SUMMARY") {
                    return Step::Ends(Pending::Compute { what });
                }
                Step::Wait(Pending::Compute { what })
            }
        }
    }
}

enum Step {
    /// The report is complete.
    Done(CrashSignature),
    /// Not yet.
    Wait(Pending),
    /// This line is not part of the report: close it, then read the line on its own.
    Ends(Pending),
}

/// `col_kernel(const unsigned int *, …)+0x490`, `0x3b0 in void k<T>(T*)`, `__half
/// cub::X<…>::F<…>(T2, …)+0x6320 in /x/f.cuh:118` → the function's qualified name, without
/// templates, parameters, offset or file.
fn kernel_name(at: &str) -> String {
    let mut s = at.trim();
    // `0x3b0 in NAME`: an address first.
    if let Some(rest) = s.strip_prefix("0x").and_then(|r| r.split_once(" in ")) {
        s = rest.1;
    }
    // `NAME in /path/file.cu:12`
    if let Some((name, file)) = s.rsplit_once(" in ") {
        if file.contains('/') || file.contains(':') {
            s = name;
        }
    }
    let s = match s.rfind("+0x") {
        Some(i) => &s[..i],
        None => s,
    };
    // Drop `<…>` and `(…)` groups, balanced.
    let mut out = String::new();
    let mut depth = 0usize;
    for c in s.chars() {
        match c {
            '<' | '(' => depth += 1,
            '>' | ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().last().unwrap_or("").to_string()
}

impl StderrScanner {
    /// A scanner with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed one line (without its newline); returns the crash it completes, if any.
    pub fn feed(&mut self, line: &str) -> Option<CrashSignature> {
        let line = clean(line);
        if let Some(ready) = self.ready.take() {
            // A crash completed by the previous line while it also started one: report it now,
            // and this line after it.
            let now = self.feed_clean(&line);
            self.ready = now;
            return Some(ready);
        }
        self.feed_clean(&line)
    }

    fn feed_clean(&mut self, line: &str) -> Option<CrashSignature> {
        let mut closed = None;
        if let Some(open) = self.open.take() {
            match open.next(line) {
                Step::Done(sig) => return Some(sig),
                Step::Wait(p) => {
                    self.open = Some(p);
                    return None;
                }
                Step::Ends(p) => closed = Some(p.close()),
            }
        }
        let now = match classify(line) {
            Some(Hit::Done(sig)) => Some(sig),
            Some(Hit::Open(p)) => {
                self.open = Some(p);
                None
            }
            None => None,
        };
        match (closed, now) {
            (Some(c), Some(n)) => {
                self.ready = Some(n);
                Some(c)
            }
            (Some(c), None) => Some(c),
            (None, n) => n,
        }
    }

    /// Feed raw bytes of one line (invalid UTF-8 is replaced).
    pub fn feed_bytes(&mut self, line: &[u8]) -> Option<CrashSignature> {
        self.feed(&String::from_utf8_lossy(line))
    }

    /// The stream ended: a report still waiting for its next lines is closed with what it has.
    /// Call it until it returns `None`.
    pub fn finish(&mut self) -> Option<CrashSignature> {
        if let Some(r) = self.ready.take() {
            return Some(r);
        }
        self.open.take().map(Pending::close)
    }
}

enum Hit {
    Done(CrashSignature),
    Open(Pending),
}

/// Strip ANSI escape sequences, the line ending and surrounding blanks.
fn clean(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params final-byte (0x40..=0x7e).
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out.trim().to_string()
}

fn done(kind: SignatureKind, text: &str) -> Option<Hit> {
    Some(Hit::Done(CrashSignature::new(
        kind,
        text,
        CrashSource::Stderr,
    )))
}

fn classify(line: &str) -> Option<Hit> {
    if line.is_empty() {
        return None;
    }
    if let Some(text) = assertion_text(line) {
        return done(SignatureKind::Assertion, text);
    }
    if let Some(hit) = sanitizer(line) {
        return Some(hit);
    }
    if let Some(hit) = compute_sanitizer(line) {
        return Some(hit);
    }
    if let Some(xid) = super::kmsg::xid(line) {
        return Some(Hit::Done(xid.signature(CrashSource::Stderr)));
    }
    if let Some(message) = gpu_error(line) {
        return done(SignatureKind::Gpu, &message);
    }
    if let Some(message) = super::faulthandler::heap_message(line) {
        return done(SignatureKind::Heap, &message);
    }
    if let Some(at) = line.find("Fatal Python error: ") {
        let msg = &line[at + "Fatal Python error: ".len()..];
        return done(SignatureKind::Fatal, &format!("Python: {}", msg.trim()));
    }
    for marker in ["fatal runtime error: ", "fatal error: "] {
        if let Some(at) = find_word_ci(line, marker) {
            return done(SignatureKind::Fatal, line[at + marker.len()..].trim());
        }
    }
    if let Some(hit) = panic_line(line) {
        return Some(hit);
    }
    signal_line(line).and_then(|name| done(SignatureKind::Signal, name))
}

/// Like [`find_ascii_ci`], but only where `needle` starts a word (`non-fatal error:` is not
/// `fatal error:`).
fn find_word_ci(line: &str, needle: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = find_ascii_ci(&line[from..], needle) {
        let at = from + i;
        let before = line[..at].chars().next_back();
        if !before.is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_') {
            return Some(at);
        }
        // `needle` is ASCII, so one byte on is a char boundary.
        from = at + 1;
    }
    None
}

/// `==123==ERROR: AddressSanitizer: heap-use-after-free on address 0x…` →
/// `AddressSanitizer: heap-use-after-free`; `WARNING: ThreadSanitizer: data race (pid=1)` →
/// `ThreadSanitizer: data race`.
fn sanitizer(line: &str) -> Option<Hit> {
    const TOOLS: [&str; 5] = [
        "AddressSanitizer",
        "ThreadSanitizer",
        "LeakSanitizer",
        "MemorySanitizer",
        "UndefinedBehaviorSanitizer",
    ];
    let tool = TOOLS.iter().find(|t| line.contains(&format!("{t}: ")))?;
    if !(line.contains("ERROR: ") || line.contains("WARNING: ")) {
        return None;
    }
    let rest = &line[line.find(&format!("{tool}: "))? + tool.len() + 2..];
    let mut end = rest.len();
    for stop in [" on address", " on unknown address", " (", " at pc", ":"] {
        if let Some(i) = rest.find(stop) {
            end = end.min(i);
        }
    }
    // The report's frames follow: wait for the first one or the SUMMARY line.
    Some(Hit::Open(Pending::Sanitizer {
        what: format!("{tool}: {}", rest[..end].trim()),
        frame: None,
    }))
}

/// compute-sanitizer's error lines: `========= Invalid __global__ read of size 4 bytes`,
/// `========= Error: Race reported between Write access at …`, `========= Program hit
/// cudaErrorLaunchFailure (error 719) …`.
fn compute_sanitizer(line: &str) -> Option<Hit> {
    let body = line.strip_prefix("=========")?.trim();
    const ERRORS: [&str; 12] = [
        "Invalid ",
        "Uninitialized ",
        "Error: Race reported",
        "Race reported",
        "Barrier error",
        "Program hit ",
        "Out-of-range ",
        "Misaligned ",
        "Malloc/Free error",
        "Hardware Exception",
        "Leaked ",
        "Warning: Race reported",
    ];
    if !ERRORS.iter().any(|e| body.starts_with(e)) {
        return None;
    }
    // `Program hit cudaErrorLaunchFailure (error 719) due to "…" on CUDA API call to …`
    let what = match body.find(" due to ").or_else(|| body.find(" between ")) {
        Some(i) => &body[..i],
        None => body,
    };
    let what = match what.find(" (error ") {
        Some(i) => &what[..i],
        None => what,
    };
    Some(Hit::Open(Pending::Compute {
        what: what.trim().to_string(),
    }))
}

/// CUDA runtime and driver error codes with the message `cudaGetErrorString` gives for them.
const CUDA_CODES: [(&str, &str, &str); 10] = [
    (
        "cudaErrorIllegalAddress",
        "CUDA_ERROR_ILLEGAL_ADDRESS",
        "an illegal memory access was encountered",
    ),
    (
        "cudaErrorLaunchFailure",
        "CUDA_ERROR_LAUNCH_FAILED",
        "unspecified launch failure",
    ),
    (
        "cudaErrorMisalignedAddress",
        "CUDA_ERROR_MISALIGNED_ADDRESS",
        "misaligned address",
    ),
    (
        "cudaErrorIllegalInstruction",
        "CUDA_ERROR_ILLEGAL_INSTRUCTION",
        "an illegal instruction was encountered",
    ),
    (
        "cudaErrorAssert",
        "CUDA_ERROR_ASSERT",
        "device-side assert triggered",
    ),
    (
        "cudaErrorLaunchTimeout",
        "CUDA_ERROR_LAUNCH_TIMEOUT",
        "the launch timed out and was terminated",
    ),
    (
        "cudaErrorMemoryAllocation",
        "CUDA_ERROR_OUT_OF_MEMORY",
        "out of memory",
    ),
    (
        "cudaErrorHardwareStackError",
        "CUDA_ERROR_HARDWARE_STACK_ERROR",
        "hardware stack error",
    ),
    (
        "cudaErrorECCUncorrectable",
        "CUDA_ERROR_ECC_UNCORRECTABLE",
        "uncorrectable ECC error encountered",
    ),
    (
        "cudaErrorInvalidResourceHandle",
        "CUDA_ERROR_INVALID_HANDLE",
        "invalid resource handle",
    ),
];

/// The GPU runtime error a line reports, as its message.
fn gpu_error(line: &str) -> Option<String> {
    // ROCm: `Memory access fault by GPU node-2 (Agent handle: 0x…) on address 0x…. Reason: Page
    // not present or supervisor privilege.`
    if let Some(at) = line.find("Memory access fault by GPU node-") {
        let reason = line[at..]
            .split_once("Reason: ")
            .map(|(_, r)| r.trim().trim_end_matches('.'))
            .filter(|r| !r.is_empty());
        return Some(match reason {
            Some(r) => format!("ROCm memory access fault: {r}"),
            None => "ROCm memory access fault".to_string(),
        });
    }
    // MLX: `RuntimeError: There is no Stream(gpu, 1) in current thread.`
    if let Some(at) = line.find("There is no Stream(") {
        return Some(format!("MLX: {}", line[at..].trim().trim_end_matches('.')));
    }
    for (runtime, driver, message) in CUDA_CODES {
        if line.contains(runtime) || line.contains(driver) || line.contains(message) {
            return Some(message.to_string());
        }
    }
    if let Some(at) = line.find("CUDA error: ") {
        return Some(line[at + "CUDA error: ".len()..].trim().to_string());
    }
    for prefix in ["cudaError", "CUDA_ERROR_"] {
        if let Some(at) = line.find(prefix) {
            let ident: String = line[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            return Some(ident);
        }
    }
    // Metal: `Caused GPU Timeout Error (00000002:kIOGPUCommandBufferCallbackErrorTimeout)`.
    if let Some(at) = line.find("kIOGPUCommandBufferCallbackError") {
        let ident: String = line[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        return Some(format!("Metal {ident}"));
    }
    // MLX's Metal backend without an IOGPU code: `[METAL] Command buffer execution failed:
    // Internal Error (0000000e:Internal Error)`.
    if let Some(at) = line.find("[METAL] Command buffer execution failed: ") {
        let rest = &line[at + "[METAL] Command buffer execution failed: ".len()..];
        let what = rest
            .split(" (")
            .next()
            .unwrap_or(rest)
            .trim()
            .trim_end_matches('.');
        return Some(format!("Metal command buffer execution failed: {what}"));
    }
    None
}

/// `thread 'main' panicked at 'msg', src/main.rs:2:5` (before Rust 1.73),
/// `thread 'main' panicked at src/main.rs:2:5:` + message line (1.73 and later),
/// `thread 'main' (12345) panicked at …` (with a thread id).
fn panic_line(line: &str) -> Option<Hit> {
    let at = line.find(" panicked at ")?;
    if !line[..at].contains("thread '") && !line[..at].ends_with("thread") {
        return None;
    }
    let rest = line[at + " panicked at ".len()..].trim();
    if let Some(body) = rest.strip_prefix('\'') {
        // Old format: the message is quoted and may itself contain `', `; the location follows
        // the last one.
        return Some(match body.rfind("', ") {
            Some(end) => Hit::Done(CrashSignature::panic(
                &body[..end],
                Some(&body[end + 3..]),
                CrashSource::Stderr,
            )),
            None => Hit::Done(CrashSignature::panic(
                body.trim_end_matches('\''),
                None,
                CrashSource::Stderr,
            )),
        });
    }
    if let Some(location) = rest.strip_suffix(':') {
        return Some(Hit::Open(Pending::Panic {
            location: location.to_string(),
        }));
    }
    // `panicked at src/x.rs:1:2: message` on one line (custom hooks, log forwarders).
    let loc_end = location_end(rest);
    let (location, message) = rest.split_at(loc_end);
    Some(Hit::Done(CrashSignature::panic(
        message.trim_start_matches(':').trim(),
        Some(location),
        CrashSource::Stderr,
    )))
}

/// End of a leading `path:line:col` in `s`.
fn location_end(s: &str) -> usize {
    let mut end = s.find(' ').unwrap_or(s.len());
    while end > 0 && s[..end].ends_with(':') {
        end -= 1;
    }
    end
}

/// The fatal signal a shell or runtime line reports.
fn signal_line(line: &str) -> Option<&'static str> {
    const PHRASES: [(&str, &str); 7] = [
        ("Segmentation fault", "SIGSEGV"),
        ("Abort trap", "SIGABRT"),
        ("Aborted (core dumped)", "SIGABRT"),
        ("Bus error", "SIGBUS"),
        ("Illegal instruction", "SIGILL"),
        ("Floating point exception", "SIGFPE"),
        ("Trace/breakpoint trap", "SIGTRAP"),
    ];
    for (phrase, name) in PHRASES {
        if line.contains(phrase) {
            return Some(name);
        }
    }
    if line == "Aborted" || line.ends_with(" Aborted") {
        return Some("SIGABRT");
    }
    const SIGNALS: [&str; 7] = [
        "SIGSEGV", "SIGABRT", "SIGBUS", "SIGILL", "SIGFPE", "SIGTRAP", "SIGSYS",
    ];
    let bytes = line.as_bytes();
    for name in SIGNALS {
        let mut from = 0;
        while let Some(i) = line[from..].find(name) {
            let start = from + i;
            let end = start + name.len();
            let before_ok = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
            let after_ok = end == bytes.len() || !bytes[end].is_ascii_alphanumeric();
            if before_ok && after_ok {
                return Some(name);
            }
            from = end;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(line: &str) -> Option<String> {
        scan_line(line).map(|s| s.key().to_string())
    }

    #[test]
    fn recognizes_every_documented_line() {
        let cases = [
            (
                "-[_MTLCommandBuffer addCompletedHandler:]:1011: failed assertion `Completed handler provided after commit call'",
                "assertion: Completed handler provided after commit call",
            ),
            (
                "thread 'main' panicked at 'index out of bounds: the len is 3 but the index is 7', src/lib.rs:10:5",
                "panic: index out of bounds: the len is <n> but the index is <n> at src/lib.rs",
            ),
            ("Segmentation fault (core dumped)", "signal: SIGSEGV"),
            ("./webui.sh: line 256: 34023 Abort trap: 6  python -u launch.py", "signal: SIGABRT"),
            (
                "process didn't exit successfully: `target/debug/deps/a-1f2e` (signal: 11, SIGSEGV: invalid memory reference)",
                "signal: SIGSEGV",
            ),
            ("fatal error: concurrent map writes", "fatal: concurrent map writes"),
            ("Fatal Python error: Segmentation fault", "fatal: Python: Segmentation fault"),
            (
                "==4242==ERROR: AddressSanitizer: heap-use-after-free on address 0x602000000010 at pc 0x1",
                "sanitizer: AddressSanitizer: heap-use-after-free",
            ),
            (
                "RuntimeError: CUDA error: an illegal memory access was encountered",
                "gpu: an illegal memory access was encountered",
            ),
            (
                "GPUassert: cudaErrorIllegalAddress file.cu 23",
                "gpu: an illegal memory access was encountered",
            ),
            ("fatal runtime error: stack overflow", "fatal: stack overflow"),
            (
                "Swift/ContiguousArrayBuffer.swift:600: Fatal error: Index out of range",
                "fatal: Index out of range",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(key(line).as_deref(), Some(want), "line: {line}");
        }
    }

    #[test]
    fn ignores_ordinary_lines() {
        for line in [
            "",
            "listening on http://127.0.0.1:4000",
            "received SIGTERM, shutting down",
            "GET /healthz 200",
            "SIGSEGVX is not a signal",
            "warn: non-fatal error: retrying in 1s",
        ] {
            assert_eq!(key(line), None, "line: {line}");
        }
    }

    #[test]
    fn two_line_panic_equals_one_line_panic() {
        let mut s = StderrScanner::new();
        assert!(s
            .feed("thread 'tokio-runtime-worker' (81234) panicked at src/gpu.rs:41:9:")
            .is_none());
        let two = s.feed("encoder already ended").unwrap();
        let one =
            scan_line("thread 'main' panicked at 'encoder already ended', src/gpu.rs:7:1").unwrap();
        assert_eq!(two.key(), one.key());
        assert!(s.finish().is_none());
    }

    #[test]
    fn finish_flushes_a_header_without_message() {
        let mut s = StderrScanner::new();
        assert!(s
            .feed("\u{1b}[31mthread 'main' panicked at src/a.rs:1:1:\u{1b}[0m")
            .is_none());
        assert_eq!(s.finish().unwrap().key(), "panic: (no message) at src/a.rs");
    }
}
