//! Stack frames, which of them say where a crash came from, and the signature keyed by them.
//!
//! A crash report, a Python `faulthandler` dump, a debugger or racegate's own unwinder
//! ([`super::native`]) all give the crashing thread's frames, innermost first. Most of the top
//! frames say how the crash was *delivered*, not where it came from: `raise` and `abort` in
//! libc, glibc's heap checks (`malloc_printerr`), signal trampolines, the C++ and Rust standard
//! libraries, and the Python interpreter's eval loop. [`is_meaningful`] skips those, so the
//! signature names the first frame of the code that crashed:
//!
//! ```
//! use racegate_cli::crash::frames::{key_frames, Frame};
//!
//! let frames = [
//!     Frame::native("__pthread_kill_implementation", "libc.so.6"),
//!     Frame::native("raise", "libc.so.6"),
//!     Frame::native("abort", "libc.so.6"),
//!     Frame::native("std::_Sp_counted_base<(__gnu_cxx::_Lock_policy)2>::_M_release", "libmlx.so"),
//!     Frame::native("mlx::core::array::release", "libmlx.so"),
//!     Frame::native("_PyEval_EvalFrameDefault", "libpython3.11.so.1.0"),
//! ];
//! assert_eq!(key_frames(&frames).unwrap(), "libmlx.so!mlx::core::array::release");
//! ```
//!
//! Native frames come first: Python frames name the signature only when no native frame is
//! meaningful (a crash inside the interpreter, or no native frames at all).

use std::fmt;

use serde::Serialize;

use super::signature::{CrashSignature, CrashSource, SignatureKind};

/// How many meaningful frames make a signature's key. One names the crash site; more would split
/// one bug into several groups by the path that reached it (measured on MLX's CPU stream race:
/// the site `mlx::core::array::release` is reached from several callers).
pub const KEY_FRAMES: usize = 1;

/// Frames kept per thread in reports: enough to read the path to the crash site.
pub const KEPT_FRAMES: usize = 16;

/// Whether a frame is native code or a Python source line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameKind {
    /// Machine code: a function in a library or executable.
    Native,
    /// A Python function at a source line (from `faulthandler` or `py-spy`).
    Python,
}

/// One stack frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Frame {
    /// Native or Python.
    pub kind: FrameKind,
    /// The function, demangled and without its parameter list (`mlx::core::array::release`);
    /// `None` when it could not be named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// The library or executable's file name (`libmlx.so`), for native frames.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub library: Option<String>,
    /// The source file, for Python frames (and native ones when known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The source line, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// The instruction address, for native frames.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<u64>,
}

impl Frame {
    /// A native frame: `function` in `library`.
    pub fn native(function: &str, library: &str) -> Frame {
        Frame {
            kind: FrameKind::Native,
            function: Some(function.to_string()),
            library: Some(library.to_string()),
            file: None,
            line: None,
            address: None,
        }
    }

    /// A Python frame: `function` at `file`:`line`.
    pub fn python(function: &str, file: &str, line: Option<u32>) -> Frame {
        Frame {
            kind: FrameKind::Python,
            function: Some(function.to_string()),
            library: None,
            file: Some(file.to_string()),
            line,
            address: None,
        }
    }

    /// The file name of [`Self::file`] (Python) or [`Self::library`] (native), without folders.
    pub fn image(&self) -> Option<&str> {
        let path = match self.kind {
            FrameKind::Python => self.file.as_deref().or(self.library.as_deref()),
            FrameKind::Native => self.library.as_deref().or(self.file.as_deref()),
        }?;
        Some(path.rsplit('/').next().unwrap_or(path))
    }

    /// The frame as a signature names it: `libmlx.so!mlx::core::array::release`,
    /// `server.py!infer` (no line: lines move between builds).
    pub fn key_text(&self) -> String {
        let function = self.function.as_deref().unwrap_or("???");
        match self.image() {
            Some(image) => format!("{image}!{function}"),
            None => function.to_string(),
        }
    }
}

impl fmt::Display for Frame {
    /// `libmlx.so!mlx::core::array::release`, `infer (server.py:12)`, `libx.so+0x1f0`, `???`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            FrameKind::Python => {
                let function = self.function.as_deref().unwrap_or("???");
                match (&self.file, self.line) {
                    (Some(file), Some(line)) => write!(f, "{function} ({file}:{line})"),
                    (Some(file), None) => write!(f, "{function} ({file})"),
                    _ => f.write_str(function),
                }
            }
            FrameKind::Native => match (&self.function, self.image(), self.address) {
                (Some(func), Some(image), _) => write!(f, "{image}!{func}"),
                (Some(func), None, _) => f.write_str(func),
                (None, Some(image), Some(addr)) => write!(f, "{image}@{addr:#x}"),
                (None, Some(image), None) => write!(f, "{image}!???"),
                (None, None, Some(addr)) => write!(f, "{addr:#x}"),
                (None, None, None) => f.write_str("???"),
            },
        }
    }
}

/// Libraries whose frames only say how a crash was delivered or how code was reached: the C
/// and C++ runtimes, the dynamic loader, the kernel's trampolines, the Python interpreter.
/// Matched against the file name's start (`libc.so.6`, `libstdc++.so.6.0.30`).
const RUNTIME_LIBRARIES: [&str; 22] = [
    "libc.so",
    "libc-",
    "libm.so",
    "libpthread",
    "libdl.so",
    "librt.so",
    "ld-linux",
    "ld-musl",
    "libc.musl",
    "linux-vdso",
    "linux-gate",
    "[vdso]",
    "libgcc_s",
    "libstdc++",
    "libc++",
    "libunwind",
    "libpython",
    "libsystem_",
    "libdyld",
    "libobjc",
    "dyld",
    "libc++abi",
];

/// Function-name prefixes of delivery and dispatch code, wherever it was linked (the C++ and
/// Rust standard libraries are inlined into every binary; a static Python has its interpreter
/// in the executable).
const RUNTIME_PREFIXES: [&str; 19] = [
    "__GI_",
    "__libc_",
    "__pthread_",
    "__restore_rt",
    "_sigtramp",
    "__kernel_rt_sigreturn",
    "std::",
    "__gnu_cxx::",
    "__cxxabiv1::",
    "operator delete",
    "operator new",
    "core::",
    "alloc::",
    "<core::",
    "<alloc::",
    "<std::",
    "__rust_",
    "rust_panic",
    "__futex",
];

/// Whole function names of delivery code (as prefixes they would hide `freeze_model`).
const RUNTIME_NAMES: [&str; 24] = [
    "raise",
    "abort",
    "__abort",
    "__assert_fail",
    "__assert_fail_base",
    "__assert_rtn",
    "malloc_printerr",
    "_int_free",
    "_int_malloc",
    "_int_realloc",
    "free",
    "malloc",
    "realloc",
    "calloc",
    "cfree",
    "start_thread",
    "clone",
    "clone3",
    "__clone",
    "thread_start",
    "_start",
    "__sigsuspend",
    "pthread_kill",
    "pthread_cond_wait",
];

/// Whether `function` is delivery code by its name alone.
fn is_runtime_function(function: &str) -> bool {
    // `free@plt`, `raise@@GLIBC_2.2.5`: symbol versions and PLT stubs name the same function.
    let bare = function.split('@').next().unwrap_or(function);
    RUNTIME_PREFIXES.iter().any(|p| bare.starts_with(p))
        || RUNTIME_NAMES.contains(&bare)
        || is_interpreter_function(bare)
}

/// Python interpreter entry points: the eval loop, the C API's call machinery.
fn is_interpreter_function(f: &str) -> bool {
    // `PyObject_Call`, `PyEval_EvalCode`, `_PyEval_EvalFrameDefault`, `_Py_…`: `Py` then a capital
    // or an underscore, optionally behind one underscore.
    let rest = f.strip_prefix('_').unwrap_or(f);
    let py = rest.starts_with("Py")
        && rest
            .as_bytes()
            .get(2)
            .is_some_and(|c| c.is_ascii_uppercase() || *c == b'_');
    py || [
        "method_vectorcall",
        "cfunction_",
        "builtin_",
        "slot_tp_",
        "vectorcall_",
        "wrapper_call",
        "thread_run",
        "pymain_",
        "Py_RunMain",
        "Py_BytesMain",
        "call_function",
        "function_code_fastcall",
    ]
    .iter()
    .any(|p| f.starts_with(p))
}

/// Whether a Python interpreter is this executable (`python3.11`, `python`, `pypy3`).
fn is_python_executable(image: &str) -> bool {
    image.starts_with("python") || image.starts_with("pypy")
}

/// Whether a frame says where a crash came from (see the [module docs](self)).
pub fn is_meaningful(frame: &Frame) -> bool {
    let Some(function) = frame.function.as_deref().map(str::trim) else {
        return false;
    };
    if function.is_empty() || function.starts_with("??") || function.starts_with("<unknown") {
        return false;
    }
    match frame.kind {
        FrameKind::Python => {
            let file = frame.file.as_deref().unwrap_or("");
            // The standard library (threading, socketserver, selectors) and frozen bootstrap
            // code run every thread; third-party packages (site-packages) are the runtime.
            let stdlib = file.contains("/lib/python")
                && !file.contains("site-packages")
                && !file.contains("dist-packages");
            !(stdlib || file.starts_with("<frozen") || function.starts_with('<'))
        }
        FrameKind::Native => {
            let image = frame.image().unwrap_or("");
            if RUNTIME_LIBRARIES.iter().any(|l| image.starts_with(l)) || is_python_executable(image)
            {
                return false;
            }
            // The interpreter's own extension modules (`select`, `_socket`, `_ssl`) serve every
            // thread, like the interpreter; third-party ones (site-packages) are runtimes.
            if frame
                .file
                .as_deref()
                .is_some_and(|p| p.contains("/lib-dynload/"))
            {
                return false;
            }
            !is_runtime_function(function)
        }
    }
}

/// The frames that name a crash: the meaningful native frames, else the meaningful Python ones.
pub fn meaningful(frames: &[Frame]) -> Vec<&Frame> {
    let native: Vec<&Frame> = frames
        .iter()
        .filter(|f| f.kind == FrameKind::Native && is_meaningful(f))
        .collect();
    if !native.is_empty() {
        return native;
    }
    frames
        .iter()
        .filter(|f| f.kind == FrameKind::Python && is_meaningful(f))
        .collect()
}

/// The key text of the top [`KEY_FRAMES`] meaningful frames, joined by ` < ` (callee first), or
/// `None` when no frame is meaningful.
pub fn key_frames(frames: &[Frame]) -> Option<String> {
    let top: Vec<String> = meaningful(frames)
        .into_iter()
        .take(KEY_FRAMES)
        .map(Frame::key_text)
        .collect();
    (!top.is_empty()).then(|| top.join(" < "))
}

/// What a crash is, before its frames: the part of the key that comes before ` at <frame>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case", tag = "class", content = "name")]
pub enum CrashClass {
    /// A fatal signal, by name (`SIGSEGV`).
    Signal(String),
    /// glibc found its heap corrupted and aborted (the message, which varies between runs of one
    /// bug, is kept beside the key, not in it).
    Heap,
    /// A runtime's fatal error without a signal (`Fatal Python error: PyThreadState_Get: …`).
    Fatal(String),
    /// The process stopped answering and its threads were blocked.
    Hang,
}

impl CrashClass {
    /// The signature for this class, at `frames` when one is meaningful.
    pub fn signature(&self, frames: &[Frame], source: CrashSource) -> CrashSignature {
        let at = key_frames(frames);
        match self {
            CrashClass::Signal(name) => CrashSignature::signal(name, at.as_deref(), source),
            CrashClass::Heap => CrashSignature::new(
                SignatureKind::Heap,
                &match at {
                    Some(at) => format!("corruption at {at}"),
                    None => "corruption".to_string(),
                },
                source,
            ),
            CrashClass::Fatal(message) => CrashSignature::new(
                SignatureKind::Fatal,
                &match at {
                    Some(at) => format!("{message} at {at}"),
                    None => message.clone(),
                },
                source,
            ),
            CrashClass::Hang => CrashSignature::new(
                SignatureKind::Hang,
                &at.unwrap_or_else(|| "no thread stack".into()),
                source,
            ),
        }
    }
}

/// One thread's stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThreadStack {
    /// The thread id (`tid` on Linux, `0x7f…` for Python), as the tool printed it.
    pub thread: String,
    /// Its name, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Whether this thread crashed (or, in a faulthandler dump, was current).
    pub current: bool,
    /// Frames, innermost first (at most [`KEPT_FRAMES`]).
    pub frames: Vec<Frame>,
}

/// The key of a hang: the distinct top meaningful frames of the threads, sorted, joined by
/// ` + ` (at most four), so the same deadlock keys the same whichever thread id held what.
pub fn hang_key(threads: &[ThreadStack]) -> Option<String> {
    let mut native = std::collections::BTreeSet::new();
    let mut python = std::collections::BTreeSet::new();
    for t in threads {
        let m = meaningful(&t.frames);
        if let Some(top) = m.first() {
            match top.kind {
                FrameKind::Native => native.insert(top.key_text()),
                FrameKind::Python => python.insert(top.key_text()),
            };
        }
    }
    let set = if native.is_empty() { python } else { native };
    (!set.is_empty()).then(|| set.into_iter().take(4).collect::<Vec<_>>().join(" + "))
}

/// The signature of a hang whose threads are `threads`.
pub fn hang_signature(threads: &[ThreadStack]) -> CrashSignature {
    CrashSignature::new(
        SignatureKind::Hang,
        &hang_key(threads).unwrap_or_else(|| "no thread stack".into()),
        CrashSource::Stacks,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_frames_are_skipped() {
        for f in [
            Frame::native("raise", "libc.so.6"),
            Frame::native("malloc_printerr", "libc.so.6"),
            Frame::native("mlx::core::x", "libc.so.6"),
            Frame::native("std::_Function_handler<void ()>::_M_invoke", "libmlx.so"),
            Frame::native("_PyEval_EvalFrameDefault", "libpython3.11.so.1.0"),
            Frame::native("PyObject_Vectorcall", "python3.11"),
            Frame::native("method_vectorcall_VARARGS", "libmlx.so"),
            Frame::native("core::ptr::drop_in_place<x>", "server"),
            Frame::native("??", "libmlx.so"),
            Frame {
                file: Some(
                    "/usr/lib/python3.11/lib-dynload/select.cpython-311-x86_64-linux-gnu.so".into(),
                ),
                ..Frame::native("select_poll_poll", "select.cpython-311-x86_64-linux-gnu.so")
            },
            Frame::python("wait", "/usr/lib/python3.11/threading.py", Some(320)),
            Frame::python("<module>", "server.py", Some(1)),
        ] {
            assert!(!is_meaningful(&f), "{f}");
        }
        for f in [
            Frame::native("mlx::core::array::release", "libmlx.so"),
            Frame::native("sim_dispatch", "racegate"),
            Frame::native("Pyramid::draw", "libgeo.so"),
            Frame::python("infer", "/srv/app/server.py", Some(12)),
            Frame::python("eval", "/v/lib/python3.11/site-packages/mlx/nn.py", None),
        ] {
            assert!(is_meaningful(&f), "{f}");
        }
    }

    #[test]
    fn native_frames_win_over_python_ones() {
        let frames = [
            Frame::python("infer", "server.py", Some(3)),
            Frame::native("mlx::core::eval", "libmlx.so"),
        ];
        assert_eq!(
            key_frames(&frames).as_deref(),
            Some("libmlx.so!mlx::core::eval")
        );
        let py = [Frame::python("infer", "/srv/server.py", Some(3))];
        let sig = CrashClass::Signal("SIGSEGV".into()).signature(&py, CrashSource::Stderr);
        assert_eq!(sig.key(), "signal: SIGSEGV at server.py!infer");
        let none = CrashClass::Heap.signature(&[], CrashSource::Stderr);
        assert_eq!(none.key(), "heap: corruption");
    }

    #[test]
    fn hang_keys_ignore_thread_order() {
        let t = |id: &str, f: &str| ThreadStack {
            thread: id.into(),
            name: None,
            current: false,
            frames: vec![
                Frame::native("__futex_abstimed_wait_common", "libc.so.6"),
                Frame::native(f, "libmlx.so"),
            ],
        };
        let a = [
            t("1", "mlx::core::Event::wait"),
            t("2", "mlx::core::array::detach"),
        ];
        let b = [
            t("9", "mlx::core::array::detach"),
            t("7", "mlx::core::Event::wait"),
        ];
        assert_eq!(hang_key(&a), hang_key(&b));
        assert_eq!(
            hang_signature(&a).key(),
            "hang: libmlx.so!mlx::core::Event::wait + libmlx.so!mlx::core::array::detach"
        );
    }
}
