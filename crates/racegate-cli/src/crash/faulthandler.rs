//! Python's `faulthandler` dumps and glibc's heap-corruption messages, read from stderr.
//!
//! A Python process with faulthandler enabled (pytest and `python -X faulthandler` enable it)
//! writes this when a fatal signal arrives, before it dies:
//!
//! ```text
//! malloc(): unaligned fastbin chunk detected
//! Fatal Python error: Aborted
//!
//! Thread 0x00007f16d9083b80 (most recent call first):
//!   File "/srv/app/server.py", line 41 in handle
//!   File "/usr/lib/python3.11/threading.py", line 982 in run
//!
//! Current thread 0x00007f16d4dfd6c0 (most recent call first):
//!   File "/srv/app/server.py", line 17 in infer
//!   <no Python frame>
//!
//! Extension modules: mlx.core (total: 1)
//! ```
//!
//! [`parse`] finds every dump in a text; each gives the error, every thread's frames (the
//! current one, the one that crashed, flagged) and the glibc heap message printed just before it,
//! if any. Lines it does not understand end a dump; nothing here panics on any input.

use serde::Serialize;

use super::frames::{CrashClass, Frame, ThreadStack, KEPT_FRAMES};

/// One faulthandler dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dump {
    /// The text after `Fatal Python error: ` (`Segmentation fault`, `Aborted`).
    pub error: String,
    /// Every thread in the dump, in order; the crashing one has `current: true`.
    pub threads: Vec<ThreadStack>,
    /// A glibc heap-corruption message printed right before the dump.
    pub heap: Option<String>,
}

impl Dump {
    /// The thread that crashed: the `Current thread`, else the only one.
    pub fn current(&self) -> Option<&ThreadStack> {
        self.threads
            .iter()
            .find(|t| t.current)
            .or_else(|| (self.threads.len() == 1).then(|| &self.threads[0]))
    }

    /// What crashed: a heap check, a signal (`Segmentation fault` → SIGSEGV), or another fatal
    /// error of the interpreter.
    pub fn class(&self) -> CrashClass {
        if self.heap.is_some() {
            return CrashClass::Heap;
        }
        match signal_of_error(&self.error) {
            Some(sig) => CrashClass::Signal(sig.to_string()),
            None => CrashClass::Fatal(format!("Python: {}", self.error)),
        }
    }
}

/// The signal a faulthandler error names.
pub fn signal_of_error(error: &str) -> Option<&'static str> {
    const ERRORS: [(&str, &str); 5] = [
        ("Segmentation fault", "SIGSEGV"),
        ("Aborted", "SIGABRT"),
        ("Bus error", "SIGBUS"),
        ("Floating point exception", "SIGFPE"),
        ("Illegal instruction", "SIGILL"),
    ];
    let e = error.trim();
    ERRORS.iter().find(|(m, _)| e == *m).map(|(_, s)| *s)
}

/// The glibc functions that name a heap check in its message (`free(): invalid pointer`).
const HEAP_FUNCTIONS: [&str; 12] = [
    "malloc",
    "free",
    "realloc",
    "calloc",
    "malloc_consolidate",
    "munmap_chunk",
    "tcache_thread_shutdown",
    "_int_malloc",
    "_int_free",
    "memalign",
    "aligned_alloc",
    "posix_memalign",
];

/// glibc's heap-check messages that are not `fn(): …`.
const HEAP_MESSAGES: [&str; 4] = [
    "double free or corruption",
    "corrupted size vs. prev_size",
    "corrupted double-linked list",
    "corrupted top size",
];

/// The glibc heap-corruption message on `line`, if it is one: `malloc(): unaligned fastbin chunk
/// detected`, `double free or corruption (fasttop)`, and the old glibc form
/// ``*** Error in `./prog': free(): invalid pointer: 0x00000000015e8010 ***``.
pub fn heap_message(line: &str) -> Option<String> {
    let line = line.trim();
    let line = match line.strip_prefix("*** Error in `") {
        Some(rest) => {
            let msg = rest.split_once("': ")?.1;
            let msg = msg.trim_end_matches("***").trim();
            // The address after the last `: ` varies.
            match msg.rsplit_once(": 0x") {
                Some((m, _)) => m,
                None => msg,
            }
        }
        None => line,
    };
    if HEAP_MESSAGES.iter().any(|m| line.starts_with(m)) {
        return Some(line.to_string());
    }
    let (func, rest) = line.split_once("(): ")?;
    (HEAP_FUNCTIONS.contains(&func) && !rest.is_empty() && rest.len() < 120)
        .then(|| line.to_string())
}

/// Every faulthandler dump in `text`.
pub fn parse(text: &str) -> Vec<Dump> {
    let mut dumps = Vec::new();
    let mut last_heap: Option<(usize, String)> = None;
    let mut current: Option<Dump> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        if let Some(msg) = heap_message(line) {
            last_heap = Some((n, msg));
            continue;
        }
        if let Some(at) = line.find("Fatal Python error: ") {
            if let Some(done) = current.take() {
                dumps.push(done);
            }
            // glibc prints its message, then abort() raises SIGABRT, and faulthandler writes its
            // dump: a heap line within the few lines before belongs to this crash.
            let heap = last_heap
                .take()
                .filter(|(at, _)| n.saturating_sub(*at) <= 3)
                .map(|(_, m)| m);
            current = Some(Dump {
                error: line[at + "Fatal Python error: ".len()..].trim().to_string(),
                threads: Vec::new(),
                heap,
            });
            continue;
        }
        let Some(dump) = current.as_mut() else {
            continue;
        };
        if let Some(thread) = thread_header(line) {
            dump.threads.push(thread);
            continue;
        }
        let trimmed = line.trim_start();
        if let Some(frame) = trimmed.strip_prefix("File \"") {
            if let (Some(frame), Some(thread)) = (file_line(frame), dump.threads.last_mut()) {
                if thread.frames.len() < KEPT_FRAMES {
                    thread.frames.push(frame);
                }
            }
            continue;
        }
        if line.is_empty()
            || trimmed.starts_with('<')
            || trimmed == "Garbage-collecting"
            || trimmed.starts_with("...")
            || trimmed.starts_with("Python runtime state:")
        {
            continue;
        }
        if line.starts_with("Extension modules:") || !line.starts_with(' ') {
            // The dump is over; the rest is other output.
            if let Some(done) = current.take() {
                dumps.push(done);
            }
        }
    }
    if let Some(done) = current {
        dumps.push(done);
    }
    dumps
}

/// `Current thread 0x00007f… (most recent call first):`, `Thread 0x… [name] (most recent call
/// first):` (3.14 names threads), `Stack (most recent call first):` (one thread only).
fn thread_header(line: &str) -> Option<ThreadStack> {
    let rest = line.strip_suffix("(most recent call first):")?.trim_end();
    let (current, rest) = if let Some(r) = rest.strip_prefix("Current thread ") {
        (true, r)
    } else if let Some(r) = rest.strip_prefix("Thread ") {
        (false, r)
    } else if rest == "Stack" {
        (true, "")
    } else {
        return None;
    };
    let mut parts = rest.splitn(2, ' ');
    let id = parts.next().unwrap_or("").to_string();
    let name = parts
        .next()
        .map(str::trim)
        .and_then(|n| n.strip_prefix('[').and_then(|n| n.strip_suffix(']')))
        .map(str::to_string);
    Some(ThreadStack {
        thread: id,
        name,
        current,
        frames: Vec::new(),
    })
}

/// `/srv/server.py", line 17 in infer` (after the opening `File "`).
fn file_line(s: &str) -> Option<Frame> {
    let (path, rest) = s.rsplit_once("\", line ")?;
    let (line, func) = rest.split_once(" in ")?;
    Some(Frame::python(func.trim(), path, line.trim().parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "survived
terminate called without an active exception
malloc(): unaligned fastbin chunk detected
Fatal Python error: Aborted

Thread 0x00007f16d9083b80 (most recent call first):
  File \"/usr/lib/python3.11/threading.py\", line 320 in wait
  File \"/srv/app/server.py\", line 41 in handle

Current thread 0x00007f16d4dfd6c0 [worker-3] (most recent call first):
  File \"/srv/app/server.py\", line 17 in infer
  File \"/usr/lib/python3.11/threading.py\", line 982 in run

Extension modules: mlx.core (total: 1)
next line
";

    #[test]
    fn reads_a_dump_with_its_heap_line() {
        let dumps = parse(DUMP);
        assert_eq!(dumps.len(), 1);
        let d = &dumps[0];
        assert_eq!(d.error, "Aborted");
        assert_eq!(
            d.heap.as_deref(),
            Some("malloc(): unaligned fastbin chunk detected")
        );
        assert_eq!(d.threads.len(), 2);
        let cur = d.current().unwrap();
        assert_eq!(cur.thread, "0x00007f16d4dfd6c0");
        assert_eq!(cur.name.as_deref(), Some("worker-3"));
        assert_eq!(cur.frames[0].to_string(), "infer (/srv/app/server.py:17)");
        assert_eq!(d.class(), CrashClass::Heap);
    }

    #[test]
    fn crashes_without_python_frames_have_an_empty_current_thread() {
        let text = "Fatal Python error: Segmentation fault\n\nCurrent thread 0x00007fce75ffb6c0 (most recent call first):\n  <no Python frame>\n";
        let d = &parse(text)[0];
        assert!(d.current().unwrap().frames.is_empty());
        assert_eq!(d.class(), CrashClass::Signal("SIGSEGV".into()));
        let other = &parse("Fatal Python error: PyThreadState_Get: no current thread\n")[0];
        assert_eq!(
            other.class(),
            CrashClass::Fatal("Python: PyThreadState_Get: no current thread".into())
        );
    }

    #[test]
    fn heap_messages_old_and_new() {
        for (line, want) in [
            (
                "double free or corruption (fasttop)",
                Some("double free or corruption (fasttop)"),
            ),
            ("free(): invalid pointer", Some("free(): invalid pointer")),
            (
                "*** Error in `./a.out': free(): invalid next size (fast): 0x0000000001c4a010 ***",
                Some("free(): invalid next size (fast)"),
            ),
            (
                "corrupted size vs. prev_size",
                Some("corrupted size vs. prev_size"),
            ),
            ("my_free(): all good", None),
            ("free(): ", None),
            ("listening on :8000", None),
        ] {
            assert_eq!(heap_message(line).as_deref(), want, "{line}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            for d in parse(&s) {
                let _ = d.class();
                let _ = d.current();
            }
            let _ = heap_message(&s);
        }

        #[test]
        fn never_panics_on_dump_shaped_text(
            lines in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just("Fatal Python error: Aborted".to_string()),
                    proptest::strategy::Just("Current thread 0x1 (most recent call first):".to_string()),
                    proptest::strategy::Just("Thread 0x2 [x (most recent call first):".to_string()),
                    "  File \"[^\"]{0,8}\", line [0-9]{0,3} in .{0,6}",
                    "\\PC{0,20}",
                ],
                0..30,
            )
        ) {
            let _ = parse(&lines.join("\n"));
        }
    }
}
