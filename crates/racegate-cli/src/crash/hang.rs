//! A hang's identity: every thread's stack of a process that stopped answering, taken before it
//! is stopped, and a signature keyed by where its threads are blocked.
//!
//! Native stacks come from the frame tracer ([`super::native::Tracer::dump`]: every thread
//! stopped for a moment and unwound, with library names); Python stacks from `py-spy dump
//! --nonblocking` when py-spy is on `PATH` (it reads the interpreter's memory without ptrace, so
//! it works beside the tracer). Both are merged per thread; the key is the sorted set of each
//! thread's top meaningful frame ([`super::frames::hang_key`]): native ones when any thread has
//! one, else Python ones (`hang: server.py!embed + server.py!infer`).

use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde::Deserialize;

use super::frames::{hang_signature, Frame, ThreadStack};
use super::identity::Evidence;
use super::native::Tracer;
use super::signature::CrashSignature;

/// How long one tool may take.
const TOOL_TIMEOUT: Duration = Duration::from_secs(20);

/// Whether `tool` is an executable on `PATH`.
pub(crate) fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(tool).is_file()))
        .unwrap_or(false)
}

/// Run `cmd`, returning its stdout if it finished within `timeout`; kills it otherwise.
pub(crate) fn bounded_output(cmd: &mut Command, timeout: Duration) -> Option<String> {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(out)) => Some(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(Err(_)) => None,
        Err(_) => {
            #[cfg(unix)]
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = pid;
            None
        }
    }
}

#[derive(Deserialize)]
struct PySpyThread {
    os_thread_id: Option<u64>,
    thread_id: Option<u64>,
    thread_name: Option<String>,
    #[serde(default)]
    frames: Vec<PySpyFrame>,
}

#[derive(Deserialize)]
struct PySpyFrame {
    name: Option<String>,
    filename: Option<String>,
    line: Option<u32>,
}

/// Threads of `py-spy dump --json` output; nothing for anything else.
pub fn parse_py_spy_json(text: &str) -> Vec<ThreadStack> {
    let Ok(threads) = serde_json::from_str::<Vec<PySpyThread>>(text) else {
        return Vec::new();
    };
    threads
        .into_iter()
        .map(|t| ThreadStack {
            thread: t
                .os_thread_id
                .or(t.thread_id)
                .map(|n| n.to_string())
                .unwrap_or_default(),
            name: t.thread_name,
            current: false,
            frames: t
                .frames
                .iter()
                .take(super::frames::KEPT_FRAMES)
                .map(|f| {
                    Frame::python(
                        f.name.as_deref().unwrap_or("???"),
                        f.filename.as_deref().unwrap_or("???"),
                        f.line,
                    )
                })
                .collect(),
        })
        .collect()
}

/// Add each Python thread's frames after the native frames of the same thread (same id), or as
/// a thread of its own.
fn merge(native: &mut Vec<ThreadStack>, python: Vec<ThreadStack>) {
    for p in python {
        match native.iter_mut().find(|t| t.thread == p.thread) {
            Some(t) => {
                if t.name.is_none() {
                    t.name = p.name;
                }
                t.frames.extend(p.frames);
            }
            None => native.push(p),
        }
    }
}

/// Every thread of `pid` (and what it started, through the tracer), the hang's signature, and
/// the evidence to show. Bounded: each tool gets at most 20 s.
pub fn capture(pid: u32, tracer: Option<&Tracer>) -> (CrashSignature, Evidence) {
    let mut evidence = Evidence::default();
    let mut threads: Vec<ThreadStack> = Vec::new();
    let mut tools = Vec::new();
    match tracer.map(|t| t.dump(TOOL_TIMEOUT)) {
        Some(Ok(processes)) => {
            tools.push("tracer");
            let several = processes.len() > 1;
            for (p, ts) in processes {
                for mut t in ts {
                    if several && p != pid {
                        t.thread = format!("{p}/{}", t.thread);
                    }
                    threads.push(t);
                }
            }
        }
        Some(Err(why)) => evidence.frames_unavailable = Some(why.0),
        None => evidence.frames_unavailable = Some("no frame tracer on this target".into()),
    }
    if on_path("py-spy") {
        let out = bounded_output(
            Command::new("py-spy").args([
                "dump",
                "--nonblocking",
                "--full-filenames",
                "--json",
                "--pid",
                &pid.to_string(),
            ]),
            TOOL_TIMEOUT,
        );
        let python = out.as_deref().map(parse_py_spy_json).unwrap_or_default();
        if !python.is_empty() {
            tools.push("py-spy");
            merge(&mut threads, python);
        }
    }
    let signature = hang_signature(&threads);
    if !tools.is_empty() {
        evidence.frames_from = Some(tools.join("+"));
    }
    evidence.threads = threads;
    (signature, evidence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn py_spy_json_becomes_threads_and_merges_by_id() {
        let json = r#"[{"pid":1,"thread_id":140588996642496,"thread_name":"Thread-2 (embed)","os_thread_id":10919,"active":false,"owns_gil":false,"frames":[{"name":"embed","filename":"/srv/server.py","module":null,"short_filename":"/srv/server.py","line":10,"locals":null,"is_entry":true},{"name":"Thread.run","filename":"/usr/lib/python3.11/threading.py","line":982}]}]"#;
        let py = parse_py_spy_json(json);
        assert_eq!(py.len(), 1);
        assert_eq!(py[0].thread, "10919");
        let mut native = vec![ThreadStack {
            thread: "10919".into(),
            name: None,
            current: false,
            frames: vec![Frame::native(
                "PyThread_acquire_lock_timed",
                "libpython3.11.so.1.0",
            )],
        }];
        merge(&mut native, py);
        assert_eq!(native.len(), 1);
        assert_eq!(native[0].frames.len(), 3);
        assert_eq!(native[0].name.as_deref(), Some("Thread-2 (embed)"));
        assert_eq!(hang_signature(&native).key(), "hang: server.py!embed");
        assert!(parse_py_spy_json("not json").is_empty());
    }

    proptest::proptest! {
        #[test]
        fn py_spy_parser_never_panics(s in "\\PC*") {
            let _ = parse_py_spy_json(&s);
            let _ = parse_py_spy_json(&format!("[{{\"frames\":[{s}]}}]"));
        }
    }
}
