//! Thread dumps of a stuck process tree, taken before it is killed.
//!
//! Python processes are dumped with `py-spy dump` when it is on `PATH`; native ones with `gdb`
//! (`thread apply all bt`), else `eu-stack`, else `lldb` (macOS). Build drivers and shells
//! (`cargo`, `sh`) are skipped: their stacks never explain a hang. Every tool call is bounded.

use std::process::Command;
use std::time::Duration;

use super::model::ProcessStack;

/// How long one dump may take.
const DUMP_TIMEOUT: Duration = Duration::from_secs(20);

/// `root` and all its descendants as `(pid, command line)`, root first. Empty when `ps` is
/// unavailable (the root is still listed).
pub fn process_tree(root: u32) -> Vec<(u32, String)> {
    let mut all: Vec<(u32, u32, String)> = Vec::new();
    if let Some(out) = bounded_output(
        Command::new("ps").args(["-A", "-o", "pid=,ppid=,args="]),
        Duration::from_secs(5),
    ) {
        for line in out.lines() {
            let mut it = line.split_whitespace();
            let (Some(pid), Some(ppid)) = (it.next(), it.next()) else {
                continue;
            };
            let (Ok(pid), Ok(ppid)) = (pid.parse::<u32>(), ppid.parse::<u32>()) else {
                continue;
            };
            all.push((pid, ppid, it.collect::<Vec<_>>().join(" ")));
        }
    }
    let mut tree = vec![(
        root,
        all.iter()
            .find(|(p, _, _)| *p == root)
            .map(|(_, _, c)| c.clone())
            .unwrap_or_default(),
    )];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i].0;
        for (pid, ppid, cmd) in &all {
            if *ppid == parent && !tree.iter().any(|(p, _)| p == pid) {
                tree.push((*pid, cmd.clone()));
            }
        }
        i += 1;
    }
    tree
}

fn program_name(command: &str) -> &str {
    let first = command.split_whitespace().next().unwrap_or("");
    first.rsplit('/').next().unwrap_or(first)
}

fn is_python(command: &str) -> bool {
    let name = program_name(command);
    name.starts_with("python") || name == "pytest" || name == "py.test"
}

fn is_driver(command: &str) -> bool {
    let name = program_name(command);
    matches!(
        name,
        "cargo"
            | "cargo-nextest"
            | "rustup"
            | "sh"
            | "bash"
            | "zsh"
            | "dash"
            | "timeout"
            | "env"
            | "ps"
    )
}

use crate::crash::hang::on_path;

/// Which dump tools are available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StackTools {
    /// `py-spy` (Python processes).
    pub py_spy: bool,
    /// `gdb` (native processes).
    pub gdb: bool,
    /// `eu-stack` (native, when gdb is missing).
    pub eu_stack: bool,
    /// `lldb` (native, macOS).
    pub lldb: bool,
}

impl StackTools {
    /// What is on `PATH`.
    pub fn detect() -> Self {
        StackTools {
            py_spy: on_path("py-spy"),
            gdb: on_path("gdb"),
            eu_stack: on_path("eu-stack"),
            lldb: on_path("lldb"),
        }
    }
}

/// What [`capture`] got.
#[derive(Debug, Default)]
pub struct Captured {
    /// Dumps taken by an outside tool.
    pub stacks: Vec<ProcessStack>,
    /// Python processes with no py-spy to dump them: the caller asks their own faulthandler
    /// (SIGABRT; pytest enables it) and reads the dump from their stderr.
    pub faulthandler: Vec<u32>,
}

/// Dump every thread of every interesting process in `tree`.
pub fn capture(tree: &[(u32, String)], tools: StackTools) -> Captured {
    let mut out = Captured::default();
    for (pid, command) in tree {
        if is_driver(command) {
            continue;
        }
        let pid_s = pid.to_string();
        let (tool, mut cmd) = if is_python(command) {
            if !tools.py_spy {
                out.faulthandler.push(*pid);
                continue;
            }
            let mut c = Command::new("py-spy");
            c.args(["dump", "--pid", &pid_s]);
            ("py-spy", c)
        } else if tools.gdb {
            let mut c = Command::new("gdb");
            c.args(["-p", &pid_s, "-batch", "-nx", "-ex", "thread apply all bt"]);
            ("gdb", c)
        } else if tools.eu_stack {
            let mut c = Command::new("eu-stack");
            c.args(["-p", &pid_s]);
            ("eu-stack", c)
        } else if tools.lldb {
            let mut c = Command::new("lldb");
            c.args(["-p", &pid_s, "--batch", "-o", "thread backtrace all"]);
            ("lldb", c)
        } else {
            continue;
        };
        if let Some(text) = bounded_output(&mut cmd, DUMP_TIMEOUT) {
            out.stacks.push(ProcessStack {
                pid: *pid,
                command: command.clone(),
                tool: tool.to_string(),
                text: tidy(tool, &text),
            });
        }
    }
    out
}

/// Python's faulthandler dumps in a process's stderr (`Fatal Python error: …`, then per
/// thread `Thread 0x… (most recent call first):` and `  File "P", line N in F` frames), one
/// [`ProcessStack`] per dump, frames rewritten in py-spy's `    F (P:N)` form.
pub fn parse_faulthandler(stderr: &str) -> Vec<ProcessStack> {
    let mut out: Vec<ProcessStack> = Vec::new();
    let mut text: Option<String> = None;
    for line in stderr.lines() {
        let t = line.trim_end();
        if t.starts_with("Fatal Python error:") {
            if let Some(done) = text.take().filter(|s| !s.is_empty()) {
                out.push(faulthandler_stack(done));
            }
            text = Some(String::new());
            continue;
        }
        let Some(buf) = text.as_mut() else { continue };
        let header = t
            .strip_prefix("Current thread ")
            .map(|r| (r, " (current)"))
            .or_else(|| t.strip_prefix("Thread ").map(|r| (r, "")));
        if let Some((rest, current)) = header {
            let id = rest.split_whitespace().next().unwrap_or("?");
            buf.push_str(&format!("Thread {id}{current}:\n"));
        } else if let Some(frame) = t.trim_start().strip_prefix("File \"") {
            // File "PATH", line N in FUNC
            let Some((path, rest)) = frame.split_once("\", line ") else {
                continue;
            };
            let Some((line_no, func)) = rest.split_once(" in ") else {
                continue;
            };
            buf.push_str(&format!("    {func} ({path}:{line_no})\n"));
        } else if t.is_empty() || t.starts_with("Extension modules:") {
            continue;
        } else if !t.starts_with(' ') && !buf.is_empty() {
            // The dump ended; the rest is other output.
            out.push(faulthandler_stack(std::mem::take(buf)));
            text = None;
        }
    }
    if let Some(done) = text.filter(|s| !s.is_empty()) {
        out.push(faulthandler_stack(done));
    }
    out
}

fn faulthandler_stack(text: String) -> ProcessStack {
    ProcessStack {
        pid: 0,
        command: "python".into(),
        tool: "faulthandler".into(),
        text,
    }
}

/// Drop the noise debuggers print around the frames.
fn tidy(tool: &str, text: &str) -> String {
    if tool != "gdb" {
        return text.to_string();
    }
    text.lines()
        .filter(|l| l.starts_with('#') || l.starts_with("Thread "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// [`crash::hang::bounded_output`](crate::crash::hang) for a dump tool, started clean (see
/// [`super::exec::clean_child`]): none of racegate's descriptors, default signal dispositions.
fn bounded_output(cmd: &mut Command, timeout: Duration) -> Option<String> {
    #[cfg(unix)]
    super::exec::clean_child(cmd);
    crate::crash::hang::bounded_output(cmd, timeout)
}

/// The part of a dump worth showing in a terminal: the threads that run user code (not only
/// the runner's or the interpreter's own frames), at most `max_lines` lines.
pub fn excerpt(stacks: &[ProcessStack], max_lines: usize) -> String {
    let mut out = Vec::new();
    for s in stacks {
        for thread in split_threads(&s.text) {
            let user: Vec<&str> = thread
                .iter()
                .skip(1)
                .copied()
                .filter(|l| is_user_frame(l))
                .collect();
            if user.is_empty() {
                continue;
            }
            out.push(format!("pid {} {}", s.pid, thread[0].trim()));
            out.extend(user.iter().take(8).map(|l| format!("    {}", l.trim())));
            if out.len() >= max_lines {
                out.truncate(max_lines);
                return out.join("\n");
            }
        }
    }
    out.join("\n")
}

/// Split a dump into threads: each starts with a `Thread …` header line.
pub fn split_threads(text: &str) -> Vec<Vec<&str>> {
    let mut threads: Vec<Vec<&str>> = Vec::new();
    for line in text.lines() {
        if line.starts_with("Thread ")
            || line.starts_with("TID ")
            || line.starts_with("* thread")
            || line.starts_with("  thread #")
        {
            threads.push(vec![line]);
        } else if let Some(t) = threads.last_mut() {
            if !line.trim().is_empty() {
                t.push(line);
            }
        }
    }
    threads
}

/// A frame outside the interpreter, the test runner and the C/Rust runtimes.
fn is_user_frame(line: &str) -> bool {
    const NOISE: &[&str] = &[
        "site-packages",
        "/lib/python",
        "_pytest",
        "execnet",
        "pluggy",
        "xdist",
        "libc.so",
        "libpthread",
        "__GI_",
        "__futex",
        "futex_",
        "clone",
        "start_thread",
        "std::sys::",
        "std::thread::",
        "core::ops::function",
        "test::run_test",
        "<frozen",
        "threading.py",
        "queue.py",
        "selectors.py",
        "socket.py",
        "subprocess.py",
        "pytest/__main__.py",
        "(<string>:",
        "?? ()",
    ];
    !NOISE.iter().any(|n| line.contains(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_contains_the_root() {
        let me = std::process::id();
        let tree = process_tree(me);
        assert_eq!(tree[0].0, me);
    }

    #[test]
    fn faulthandler_dumps_become_stacks() {
        let err = "ok line\nFatal Python error: Aborted\n\nThread 0x00007f1 (most recent call first):\n  File \"/x/threading.py\", line 320 in wait\n  File \"/s/pool.py\", line 75 in acquire\n\nCurrent thread 0x00007f2 (most recent call first):\n  File \"/s/conftest.py\", line 17 in chunked\n\nExtension modules: a, b (total: 2)\nnext output\n";
        let s = parse_faulthandler(err);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].tool, "faulthandler");
        assert_eq!(
            s[0].text,
            "Thread 0x00007f1:\n    wait (/x/threading.py:320)\n    acquire (/s/pool.py:75)\nThread 0x00007f2 (current):\n    chunked (/s/conftest.py:17)\n"
        );
        assert!(parse_faulthandler("no dumps here\n").is_empty());
    }

    proptest::proptest! {
        #[test]
        fn faulthandler_parser_never_panics(s in "\\PC*") {
            let _ = parse_faulthandler(&s);
            let _ = split_threads(&s);
        }
    }

    #[test]
    fn excerpt_keeps_user_frames_only() {
        let dump = "Thread 10 (idle): \"MainThread\"\n    wait (threading.py:320)\n    acquire (leaky_pool/pool.py:41)\n    solve (leaky_pool/solver.py:20)\n    pytest_fixture_setup (_pytest/fixtures.py:900)\nThread 11 (idle): \"Thread-1\"\n    wait (threading.py:320)\n";
        let s = ProcessStack {
            pid: 7,
            command: "python".into(),
            tool: "py-spy".into(),
            text: dump.into(),
        };
        let e = excerpt(&[s], 20);
        assert!(e.contains("acquire (leaky_pool/pool.py:41)"), "{e}");
        assert!(!e.contains("threading.py"));
        assert!(!e.contains("Thread-1"));
    }
}
