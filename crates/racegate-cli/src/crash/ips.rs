//! macOS `.ips` crash reports (macOS 12 and later): line 1 is a JSON header (`app_name`,
//! `timestamp`, `bug_type`, `name`, …), the rest is one JSON body (`procName`, `pid`,
//! `exception`, `termination`, `asi`, `faultingThread`, `threads`, `usedImages`, …).
//!
//! The parser is liberal: every field but the process name is optional, unknown fields are
//! ignored, and a field with the wrong JSON type is an error naming it. The older plain-text
//! `.crash` format is refused with [`CrashError::LegacyText`].

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};

use super::errors::CrashError;
use super::signature::{assertion_text, CrashSignature, CrashSource, SignatureKind};

/// How many frames of the faulting thread [`IpsReport::frames`] keeps.
pub const TOP_FRAMES: usize = 12;

/// The parts of an `.ips` report racegate uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IpsReport {
    /// Header `app_name`.
    pub app_name: Option<String>,
    /// Header `timestamp` (`2026-05-10 09:14:03.00 -0700`), as written.
    pub timestamp: Option<String>,
    /// Header `bug_type` (`309` for a crash).
    pub bug_type: Option<String>,
    /// The crashed process: body `procName`, else header `name` or `app_name`.
    pub process: String,
    /// Body `pid`.
    pub pid: Option<u32>,
    /// `exception.type` (`EXC_CRASH`, `EXC_BAD_ACCESS`).
    pub exception_type: Option<String>,
    /// `exception.signal` (`SIGABRT`).
    pub signal: Option<String>,
    /// `termination.indicator` (`Abort trap: 6`).
    pub termination: Option<String>,
    /// `asi`: application-specific information, image name → messages.
    pub asi: BTreeMap<String, Vec<String>>,
    /// The assertion text found in `asi`, normalized (`failed assertion `X'` → `X`).
    pub assertion: Option<String>,
    /// `exceptionReason.composed_message` (uncaught Objective-C exceptions).
    pub exception_reason: Option<String>,
    /// `faultingThread`.
    pub faulting_thread: Option<usize>,
    /// The top frames of the faulting thread, innermost first.
    pub frames: Vec<Frame>,
}

/// One stack frame of the faulting thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Frame {
    /// The image's name (`Metal`, `libmlx.dylib`), from `usedImages[imageIndex]`.
    pub image: Option<String>,
    /// The symbol, when the report is symbolicated.
    pub symbol: Option<String>,
    /// Offset of the instruction within its image.
    pub image_offset: Option<u64>,
}

impl std::fmt::Display for Frame {
    /// `image!symbol`, `symbol`, `image+0x1f0` or `???`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.image, &self.symbol, self.image_offset) {
            (Some(image), Some(symbol), _) => write!(f, "{image}!{symbol}"),
            (None, Some(symbol), _) => f.write_str(symbol),
            (Some(image), None, Some(offset)) => write!(f, "{image}+{offset:#x}"),
            (Some(image), None, None) => f.write_str(image),
            (None, None, _) => f.write_str("???"),
        }
    }
}

/// Images whose frames say where a crash was delivered, not where it came from.
const SYSTEM_IMAGES: [&str; 8] = [
    "libsystem_kernel.dylib",
    "libsystem_pthread.dylib",
    "libsystem_c.dylib",
    "libsystem_platform.dylib",
    "libc++abi.dylib",
    "libobjc.A.dylib",
    "libdyld.dylib",
    "dyld",
];

/// `asi` messages that say only that the process aborted.
const GENERIC_ASI: [&str; 2] = ["abort() called", "crashed on child side of fork pre-exec"];

impl IpsReport {
    /// The crash signature: the assertion from `asi` when there is one; else any other
    /// crash message in `asi` (Swift `Fatal error`, …); else an uncaught exception; else the
    /// signal with the top frame outside the system libraries.
    pub fn signature(&self) -> CrashSignature {
        let src = CrashSource::CrashReport;
        if let Some(text) = &self.assertion {
            return CrashSignature::new(SignatureKind::Assertion, text, src);
        }
        for message in self.asi.values().flatten() {
            if GENERIC_ASI.contains(&message.trim()) {
                continue;
            }
            if let Some(sig) = super::stderr::scan_line(message) {
                return sig.with_source(src);
            }
        }
        if let Some(reason) = &self.exception_reason {
            return CrashSignature::new(
                SignatureKind::Fatal,
                &format!("uncaught exception: {reason}"),
                src,
            );
        }
        let name = self
            .signal
            .clone()
            .or_else(|| self.exception_type.clone())
            .unwrap_or_else(|| "unknown signal".to_string());
        let frame = self
            .frames
            .iter()
            .find(|f| {
                f.symbol.is_some()
                    && !f
                        .image
                        .as_deref()
                        .is_some_and(|i| SYSTEM_IMAGES.contains(&i))
            })
            .map(|f| f.to_string());
        CrashSignature::signal(&name, frame.as_deref(), src)
    }

    /// The top `n` frames as `image!symbol` strings.
    pub fn top_frames(&self, n: usize) -> Vec<String> {
        self.frames.iter().take(n).map(|f| f.to_string()).collect()
    }
}

/// Read and parse an `.ips` file.
pub fn parse_file(path: &Path) -> Result<IpsReport, CrashError> {
    let bytes = std::fs::read(path).map_err(|source| CrashError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_str(
        &String::from_utf8_lossy(&bytes),
        &path.display().to_string(),
    )
}

/// Parse the text of an `.ips` report; `origin` names it in errors (a path, or `<input>`).
pub fn parse_str(text: &str, origin: &str) -> Result<IpsReport, CrashError> {
    let text = text.trim_start_matches('\u{feff}');
    if text.trim().is_empty() {
        return Err(CrashError::Empty {
            origin: origin.to_string(),
        });
    }
    let (first, rest) = match text.find('\n') {
        Some(i) => (&text[..i], &text[i + 1..]),
        None => (text, ""),
    };
    let first_trim = first.trim();
    if !first_trim.starts_with('{') {
        return Err(CrashError::LegacyText {
            origin: origin.to_string(),
            start: first_trim.chars().take(40).collect(),
        });
    }
    let (header, body, body_line) = match serde_json::from_str::<Value>(first_trim) {
        Ok(header) if !rest.trim().is_empty() => {
            let body = serde_json::from_str::<Value>(rest)
                .map_err(|e| json_error(origin, "body", 1, &e))?;
            (header, body, 2)
        }
        // A body alone (no header line): some tools strip the header.
        Ok(only) => (Value::Object(Map::new()), only, 1),
        // A pretty-printed body alone, starting with `{` on its own line.
        Err(_) => {
            let body = serde_json::from_str::<Value>(text)
                .map_err(|e| json_error(origin, "body", 0, &e))?;
            (Value::Object(Map::new()), body, 1)
        }
    };
    let field_err = |line: usize, field: &str, problem: &str| CrashError::Field {
        origin: origin.to_string(),
        line,
        field: field.to_string(),
        problem: problem.to_string(),
    };
    let header = header
        .as_object()
        .ok_or_else(|| field_err(1, "header", "must be a JSON object"))?;
    let body = body
        .as_object()
        .ok_or_else(|| field_err(body_line, "body", "must be a JSON object"))?;

    let h = Fields {
        map: header,
        line: 1,
        origin,
        prefix: String::new(),
    };
    let b = Fields {
        map: body,
        line: body_line,
        origin,
        prefix: String::new(),
    };
    let bug_type = h.string_or_number("bug_type")?;
    if let Some(bt) = &bug_type {
        if bt != "309" && bt != "109" {
            return Err(CrashError::NotACrash {
                origin: origin.to_string(),
                bug_type: bt.clone(),
            });
        }
    }
    let app_name = h.string("app_name")?;
    let process = match b.string("procName")? {
        Some(p) => p,
        None => match h.string("name")?.or_else(|| app_name.clone()) {
            Some(p) => p,
            None => {
                return Err(field_err(
                    body_line,
                    "procName",
                    "is missing (and the header has no `name`)",
                ))
            }
        },
    };
    let pid = b
        .u64("pid")?
        .map(|p| u32::try_from(p).map_err(|_| field_err(body_line, "pid", "is out of range")))
        .transpose()?;

    let (exception_type, signal) = match b.object("exception")? {
        Some(e) => (e.string("type")?, e.string("signal")?),
        None => (None, None),
    };
    let termination = match b.object("termination")? {
        Some(t) => t.string("indicator")?,
        None => None,
    };
    let exception_reason = match b.object("exceptionReason")? {
        Some(r) => r.string("composed_message")?,
        None => None,
    };
    let mut asi = BTreeMap::new();
    if let Some(map) = b.object("asi")? {
        for (image, v) in map.map {
            let messages = match v {
                Value::Array(items) => items
                    .iter()
                    .map(|m| match m {
                        Value::String(s) => Ok(s.clone()),
                        _ => Err(field_err(
                            body_line,
                            &format!("asi.{image}[]"),
                            "must be a string",
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                Value::String(s) => vec![s.clone()],
                _ => {
                    return Err(field_err(
                        body_line,
                        &format!("asi.{image}"),
                        "must be an array of strings",
                    ))
                }
            };
            asi.insert(image.clone(), messages);
        }
    }
    let assertion = asi
        .values()
        .flatten()
        .find_map(|m| assertion_text(m))
        .map(|t| t.to_string());

    let faulting_thread = b
        .u64("faultingThread")?
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let images = used_images(&b)?;
    let frames = faulting_frames(&b, faulting_thread, &images)?;

    Ok(IpsReport {
        app_name,
        timestamp: h.string("timestamp")?,
        bug_type,
        process,
        pid,
        exception_type,
        signal,
        termination,
        asi,
        assertion,
        exception_reason,
        faulting_thread,
        frames,
    })
}

/// `usedImages[i]` → its name (or the file name of its path).
fn used_images(b: &Fields<'_>) -> Result<Vec<Option<String>>, CrashError> {
    let Some(list) = b.array("usedImages")? else {
        return Ok(Vec::new());
    };
    list.iter()
        .enumerate()
        .map(|(i, img)| {
            let Some(map) = img.as_object() else {
                return Err(b.err(&format!("usedImages[{i}]"), "must be an object"));
            };
            let f = b.nested(map, format!("usedImages[{i}]."));
            let name = f.string("name")?;
            let path = f.string("path")?;
            Ok(name.or_else(|| path.map(|p| p.rsplit('/').next().unwrap_or(&p).to_string())))
        })
        .collect()
}

fn faulting_frames(
    b: &Fields<'_>,
    faulting: Option<usize>,
    images: &[Option<String>],
) -> Result<Vec<Frame>, CrashError> {
    let Some(threads) = b.array("threads")? else {
        return Ok(Vec::new());
    };
    let index = faulting.or_else(|| {
        threads
            .iter()
            .position(|t| t.get("triggered").and_then(Value::as_bool).unwrap_or(false))
    });
    let Some(thread) = index.and_then(|i| threads.get(i)) else {
        return Ok(Vec::new());
    };
    let i = index.unwrap_or_default();
    let Some(thread) = thread.as_object() else {
        return Err(b.err(&format!("threads[{i}]"), "must be an object"));
    };
    let t = b.nested(thread, format!("threads[{i}]."));
    let Some(frames) = t.array("frames")? else {
        return Ok(Vec::new());
    };
    frames
        .iter()
        .take(TOP_FRAMES)
        .enumerate()
        .map(|(j, fr)| {
            let Some(map) = fr.as_object() else {
                return Err(t.err(&format!("frames[{j}]"), "must be an object"));
            };
            let f = t.nested(map, format!("frames[{j}]."));
            let image = f
                .u64("imageIndex")?
                .and_then(|k| images.get(usize::try_from(k).ok()?).cloned().flatten());
            Ok(Frame {
                image,
                symbol: f.string("symbol")?,
                image_offset: f.u64("imageOffset")?,
            })
        })
        .collect()
}

fn json_error(
    origin: &str,
    part: &'static str,
    line_offset: usize,
    e: &serde_json::Error,
) -> CrashError {
    CrashError::Json {
        origin: origin.to_string(),
        part,
        line: e.line() + line_offset,
        column: e.column(),
        message: e.to_string(),
    }
}

/// Typed access to one JSON object's fields, with errors naming the field's dotted path.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    line: usize,
    origin: &'a str,
    prefix: String,
}

impl<'a> Fields<'a> {
    fn err(&self, field: &str, problem: &str) -> CrashError {
        CrashError::Field {
            origin: self.origin.to_string(),
            line: self.line,
            field: format!("{}{field}", self.prefix),
            problem: problem.to_string(),
        }
    }

    fn nested(&self, map: &'a Map<String, Value>, prefix: String) -> Fields<'a> {
        Fields {
            map,
            line: self.line,
            origin: self.origin,
            prefix: format!("{}{prefix}", self.prefix),
        }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn string(&self, key: &str) -> Result<Option<String>, CrashError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.err(key, "must be a string")),
        }
    }

    fn string_or_number(&self, key: &str) -> Result<Option<String>, CrashError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(self.err(key, "must be a string or a number")),
        }
    }

    fn u64(&self, key: &str) -> Result<Option<u64>, CrashError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.err(key, "must be a non-negative integer")),
        }
    }

    fn array(&self, key: &str) -> Result<Option<&'a Vec<Value>>, CrashError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(_) => Err(self.err(key, "must be an array")),
        }
    }

    fn object(&self, key: &str) -> Result<Option<Fields<'a>>, CrashError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(self.nested(m, format!("{key}.")))),
            Some(_) => Err(self.err(key, "must be an object")),
        }
    }
}
