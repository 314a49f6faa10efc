//! One crash, every trace of it, one signature: what stderr said, what faulthandler dumped, the
//! frames the tracer took, and how the process ended.
//!
//! # Which trace names the crash
//!
//! 1. A specific message on stderr (an assertion, a panic, a sanitizer report, a GPU runtime
//!    error): its text already tells one bug from another, as on macOS.
//! 2. Else the crashing thread's native frames ([`super::native`]): the class (the signal, or
//!    `heap` when glibc printed a heap-corruption message) plus the top meaningful frame.
//! 3. Else faulthandler's Python frames of the crashing thread.
//! 4. Else a glibc heap message, else a generic stderr line (`Fatal Python error: …`), else the
//!    exit status.
//!
//! Whatever names it, every trace found is kept in the [`Evidence`] beside the signature.

use std::time::Duration;

use serde::Serialize;

use super::faulthandler;
use super::frames::{key_frames, CrashClass, Frame, ThreadStack};
use super::native::{NativeCrash, Unavailable};
use super::signature::{CrashSignature, CrashSource, SignatureKind};

/// What is known about where a crash (or hang) happened, besides its signature.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Evidence {
    /// The crashing thread's frames, innermost first (native, or Python when there are none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub frames: Vec<Frame>,
    /// Who produced [`Self::frames`]: `tracer`, `faulthandler`, `ips`, `gdb`, `py-spy`, ….
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frames_from: Option<String>,
    /// The crashing thread (`tid 4171 (python3)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    /// The Python frames of the crashing thread when native frames name the crash.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub python_frames: Vec<Frame>,
    /// glibc's heap-corruption message printed before the abort.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heap_message: Option<String>,
    /// Why there are no native frames, when there are none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frames_unavailable: Option<String>,
    /// How long capturing the frames took in the dying process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture: Option<Duration>,
    /// When the frames reached racegate, since the run started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frames_at: Option<Duration>,
    /// Every thread's stack (hangs).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub threads: Vec<ThreadStack>,
}

impl Evidence {
    /// Whether there is anything to show.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty() && self.threads.is_empty() && self.heap_message.is_none()
    }

    /// The top `n` meaningful frames (else the top `n` frames), for short reports.
    pub fn excerpt(&self, n: usize) -> Vec<String> {
        let meaningful = super::frames::meaningful(&self.frames);
        if meaningful.is_empty() {
            self.frames.iter().take(n).map(|f| f.to_string()).collect()
        } else {
            meaningful.iter().take(n).map(|f| f.to_string()).collect()
        }
    }
}

/// Everything seen of one crash.
#[derive(Debug, Default)]
pub struct Traces<'a> {
    /// Crash signatures the stderr scanner found in the crash's last lines, in order.
    pub stderr: &'a [CrashSignature],
    /// The process's last stderr lines (for faulthandler dumps and heap messages).
    pub stderr_tail: &'a str,
    /// The native frames, or why there are none (`None`: not attempted).
    pub native: Option<Result<NativeCrash, Unavailable>>,
    /// The fatal signal's name, when a signal ended the process.
    pub signal: Option<&'a str>,
}

/// Kinds whose stderr text names a bug better than any frame.
fn is_specific(kind: SignatureKind) -> bool {
    matches!(
        kind,
        SignatureKind::Assertion
            | SignatureKind::Panic
            | SignatureKind::Sanitizer
            | SignatureKind::Gpu
            | SignatureKind::Driver
    )
}

/// Name a crash from its traces (see the [module docs](self) for the order); `None` when the
/// traces show no crash at all (no signal, nothing on stderr).
pub fn identify(t: Traces<'_>) -> Option<(CrashSignature, Evidence)> {
    let mut ev = Evidence::default();
    let dump = faulthandler::parse(t.stderr_tail).pop();
    let heap = dump.as_ref().and_then(|d| d.heap.clone()).or_else(|| {
        t.stderr_tail
            .lines()
            .rev()
            .take(50)
            .find_map(faulthandler::heap_message)
    });
    ev.heap_message = heap.clone();
    let python: Vec<Frame> = dump
        .as_ref()
        .and_then(|d| d.current())
        .map(|th| th.frames.clone())
        .unwrap_or_default();
    let native = match t.native {
        Some(Ok(c)) if !c.frames.is_empty() => {
            ev.thread = Some(match &c.thread_name {
                Some(n) => format!("tid {} ({n})", c.tid),
                None => format!("tid {}", c.tid),
            });
            ev.capture = Some(c.capture);
            ev.frames_unavailable = c.problem.clone();
            Some(c)
        }
        Some(Ok(c)) => {
            ev.frames_unavailable = c
                .problem
                .or_else(|| Some("the tracer read no frame".into()));
            None
        }
        Some(Err(why)) => {
            ev.frames_unavailable = Some(why.0);
            None
        }
        None => None,
    };
    let signal_class = |sig: &str| match &heap {
        Some(_) if sig == "SIGABRT" => CrashClass::Heap,
        _ => CrashClass::Signal(sig.to_string()),
    };
    let class = match (t.signal, &dump) {
        (Some(sig), _) => Some(signal_class(sig)),
        (None, Some(d)) => Some(d.class()),
        (None, None) => None,
    };
    // 2. and 3.: the frames, native first.
    if let Some(c) = &native {
        ev.frames = c.frames.clone();
        ev.frames_from = Some("tracer".into());
        ev.python_frames = python.clone();
    } else if !python.is_empty() {
        ev.frames = python.clone();
        ev.frames_from = Some("faulthandler".into());
    }
    if let Some(first) = t.stderr.iter().find(|s| is_specific(s.kind())) {
        return Some((first.clone(), ev));
    }
    let source = if native.is_some() {
        CrashSource::Stacks
    } else {
        CrashSource::Stderr
    };
    if let Some(class) = &class {
        if key_frames(&ev.frames).is_some() {
            return Some((class.signature(&ev.frames, source), ev));
        }
    }
    // 4.
    if let Some(msg) = &heap {
        return Some((
            CrashSignature::new(SignatureKind::Heap, msg, CrashSource::Stderr),
            ev,
        ));
    }
    if let Some(first) = t.stderr.first() {
        return Some((first.clone(), ev));
    }
    let sig = t.signal?;
    Some((
        CrashSignature::signal(sig, None, CrashSource::ExitStatus),
        ev,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn native(frames: Vec<Frame>) -> NativeCrash {
        NativeCrash {
            pid: 1,
            tid: 2,
            thread_name: Some("python3".into()),
            signal: "SIGABRT".into(),
            frames,
            problem: None,
            capture: Duration::from_millis(3),
            received: Instant::now(),
            died: true,
        }
    }

    #[test]
    fn native_frames_name_a_heap_abort() {
        let tail = "malloc(): unaligned fastbin chunk detected\nFatal Python error: Aborted\n\nCurrent thread 0x1 (most recent call first):\n  File \"/srv/server.py\", line 9 in infer\n";
        let generic = [super::super::stderr::scan_line("Fatal Python error: Aborted").unwrap()];
        let (sig, ev) = identify(Traces {
            stderr: &generic,
            stderr_tail: tail,
            native: Some(Ok(native(vec![
                Frame::native("raise", "libc.so.6"),
                Frame::native("abort", "libc.so.6"),
                Frame::native("mlx::core::array::release", "libmlx.so"),
            ]))),
            signal: Some("SIGABRT"),
        })
        .unwrap();
        assert_eq!(
            sig.key(),
            "heap: corruption at libmlx.so!mlx::core::array::release"
        );
        assert_eq!(
            ev.heap_message.as_deref(),
            Some("malloc(): unaligned fastbin chunk detected")
        );
        assert_eq!(ev.python_frames.len(), 1);
        assert_eq!(ev.thread.as_deref(), Some("tid 2 (python3)"));
    }

    #[test]
    fn specific_stderr_wins_and_python_frames_stand_in() {
        let assertion = [super::super::stderr::scan_line(
            "-[X commit]:1: failed assertion `commit an already committed command buffer'",
        )
        .unwrap()];
        let (sig, ev) = identify(Traces {
            stderr: &assertion,
            stderr_tail: "",
            native: Some(Ok(native(vec![Frame::native("f", "libx.so")]))),
            signal: Some("SIGABRT"),
        })
        .unwrap();
        assert_eq!(
            sig.key(),
            "assertion: commit an already committed command buffer"
        );
        assert_eq!(ev.frames.len(), 1);

        let tail = "Fatal Python error: Segmentation fault\n\nCurrent thread 0x1 (most recent call first):\n  File \"/srv/server.py\", line 9 in infer\n";
        let (sig, ev) = identify(Traces {
            stderr: &[],
            stderr_tail: tail,
            native: Some(Err(Unavailable("ptrace is not permitted".into()))),
            signal: Some("SIGSEGV"),
        })
        .unwrap();
        assert_eq!(sig.key(), "signal: SIGSEGV at server.py!infer");
        assert_eq!(ev.frames_from.as_deref(), Some("faulthandler"));
        assert_eq!(
            ev.frames_unavailable.as_deref(),
            Some("ptrace is not permitted")
        );
    }

    #[test]
    fn without_frames_the_old_signatures_remain() {
        let (sig, _) = identify(Traces {
            signal: Some("SIGSEGV"),
            ..Traces::default()
        })
        .unwrap();
        assert_eq!(sig.key(), "signal: SIGSEGV");
        let (sig, _) = identify(Traces {
            stderr_tail: "double free or corruption (out)\n",
            signal: Some("SIGABRT"),
            ..Traces::default()
        })
        .unwrap();
        assert_eq!(sig.key(), "heap: double free or corruption (out)");
        assert!(identify(Traces::default()).is_none());
    }
}
