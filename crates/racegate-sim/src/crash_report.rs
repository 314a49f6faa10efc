//! macOS-style crash reports (`.ips`, bug type 309) for aborts on a lifecycle violation.
//!
//! The layout follows what ReportCrash writes to `~/Library/Logs/DiagnosticReports`: a first
//! line holding a one-line JSON header (`app_name`, `timestamp`, `bug_type`, `name`, ...), then a
//! JSON body (`procName`, `pid`, `exception`, `termination`, `asi`, `faultingThread`,
//! `threads[].frames`, `usedImages`, ...). Frames come from the aborting thread's real,
//! symbolized backtrace; image offsets are synthetic (the simulator has no load addresses).
//! Reports are written to a temporary file and renamed into place, so a watcher never reads a
//! half-written report.

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::device::DeviceConfig;
use crate::errors::Violation;

/// One frame of the faulting thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The function.
    pub symbol: String,
    /// Index into the report's `usedImages`.
    pub image_index: usize,
    /// Source file, when known.
    pub source_file: Option<String>,
    /// Source line, when known.
    pub source_line: Option<u32>,
}

/// A crash report for one abort on a violation.
#[derive(Debug, Clone)]
pub struct CrashReport {
    /// Process name (`procName`, header `app_name` and `name`, and the file name's prefix).
    pub app_name: String,
    /// Process id.
    pub pid: u32,
    /// The broken rule.
    pub violation: Violation,
    /// When the crash happened.
    pub time: SystemTime,
    /// The executable's path.
    pub exe_path: String,
    /// The name of the faulting thread, when it has one.
    pub thread_name: Option<String>,
    /// The faulting thread's frames, innermost first, below the abort frames.
    pub frames: Vec<Frame>,
}

// usedImages: 0 is the executable, the rest are the system libraries the abort passes through.
const SYSTEM_IMAGES: [(&str, &str); 4] = [
    (
        "libsystem_kernel.dylib",
        "/usr/lib/system/libsystem_kernel.dylib",
    ),
    (
        "libsystem_pthread.dylib",
        "/usr/lib/system/libsystem_pthread.dylib",
    ),
    ("libsystem_c.dylib", "/usr/lib/system/libsystem_c.dylib"),
    (
        "Metal",
        "/System/Library/Frameworks/Metal.framework/Versions/A/Metal",
    ),
];

impl CrashReport {
    /// A report for an abort on `violation` in this process, now, with this thread's backtrace.
    pub fn capture(app_name: &str, violation: Violation) -> CrashReport {
        let backtrace = std::backtrace::Backtrace::force_capture().to_string();
        let exe_path = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| app_name.to_owned());
        CrashReport {
            app_name: app_name.to_owned(),
            pid: std::process::id(),
            violation,
            time: SystemTime::now(),
            exe_path,
            thread_name: std::thread::current().name().map(str::to_owned),
            frames: parse_backtrace(&backtrace),
        }
    }

    /// The file name: `<app>-YYYY-MM-DD-HHMMSS.ips`, as ReportCrash names them. Characters of
    /// the app name other than ASCII letters, digits, `.`, `_` and `-` become `_`, so the name
    /// never leaves the crash directory.
    pub fn file_name(&self) -> String {
        let t = Civil::from(self.time);
        let app: String = self
            .app_name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let app = if app.is_empty() || app.starts_with('.') {
            format!("_{app}")
        } else {
            app
        };
        format!(
            "{app}-{:04}-{:02}-{:02}-{:02}{:02}{:02}.ips",
            t.year, t.month, t.day, t.hour, t.minute, t.second
        )
    }

    /// The report's text: the header line, a newline, the body.
    pub fn render(&self) -> String {
        let t = Civil::from(self.time);
        let incident = self.incident_id();
        let app = json_str(&self.app_name);
        let os = json_str(&format!("{} (racegate-sim)", std::env::consts::OS));
        let mut out = String::new();
        // Header: one line of JSON.
        let _ = writeln!(
            out,
            "{{\"app_name\":{app},\"timestamp\":{},\"app_version\":{},\"slice_uuid\":{},\
             \"build_version\":\"\",\"platform\":1,\"share_with_app_devs\":0,\"is_first_party\":0,\
             \"bug_type\":\"309\",\"os_version\":{os},\"roots_installed\":0,\"name\":{app},\
             \"incident_id\":{}}}",
            json_str(&format!("{}.00 +0000", t.seconds_text())),
            json_str(env!("CARGO_PKG_VERSION")),
            json_str(&uuid_like(self.exe_path.as_bytes())),
            json_str(&incident),
        );
        let line = self.violation.assertion_line();
        let cpu = if cfg!(target_arch = "aarch64") {
            "ARM-64"
        } else {
            "X86-64"
        };
        let arch = if cfg!(target_arch = "aarch64") {
            "arm64e"
        } else {
            "x86_64"
        };
        let _ = write!(
            out,
            "{{\n  \"uptime\" : 0,\n  \"procRole\" : \"Default\",\n  \"version\" : 2,\n  \
             \"captureTime\" : {},\n  \"incident\" : {},\n  \"pid\" : {},\n  \
             \"cpuType\" : \"{cpu}\",\n  \"bug_type\" : \"309\",\n  \"procName\" : {app},\n  \
             \"procPath\" : {},\n  \"parentProc\" : \"racegate\",\n  \
             \"exception\" : {{\"codes\":\"0x0000000000000000, 0x0000000000000000\",\"rawCodes\":[0,0],\"type\":\"EXC_CRASH\",\"signal\":\"SIGABRT\"}},\n  \
             \"termination\" : {{\"flags\":0,\"code\":6,\"namespace\":\"SIGNAL\",\"indicator\":\"Abort trap: 6\",\"byProc\":{app},\"byPid\":{}}},\n  \
             \"asi\" : {{\"libsystem_c.dylib\":[\"abort() called\"],\"Metal\":[{}]}},\n  \
             \"faultingThread\" : 0,\n  \"threads\" : [{{\"triggered\":true,\"id\":{}",
            json_str(&format!("{}.0000 +0000", t.seconds_text())),
            json_str(&incident),
            self.pid,
            json_str(&self.exe_path),
            self.pid,
            json_str(&line),
            u64::from(self.pid) * 1000 + 1,
        );
        if let Some(name) = &self.thread_name {
            let _ = write!(out, ",\"name\":{}", json_str(name));
        }
        out.push_str(",\"frames\":[");
        let abort_frames = [
            ("__pthread_kill", 1),
            ("pthread_kill", 2),
            ("abort", 3),
            ("MTLReportFailure", 4),
        ];
        let method = format!("-[SimCommandBuffer {}]", self.violation.method());
        let mut all: Vec<Frame> = abort_frames
            .iter()
            .map(|(symbol, image)| Frame {
                symbol: (*symbol).to_owned(),
                image_index: *image,
                source_file: None,
                source_line: None,
            })
            .collect();
        all.push(Frame {
            symbol: method,
            image_index: 0,
            source_file: None,
            source_line: Some(self.violation.line()),
        });
        all.extend(self.frames.iter().cloned());
        for (i, frame) in all.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "{{\"imageOffset\":{},\"symbol\":{},\"symbolLocation\":{},\"imageIndex\":{}",
                synthetic_offset(&frame.symbol),
                json_str(&frame.symbol),
                (i * 4) % 512,
                frame.image_index
            );
            if let Some(file) = &frame.source_file {
                let _ = write!(out, ",\"sourceFile\":{}", json_str(file));
            }
            if let Some(line) = frame.source_line {
                let _ = write!(out, ",\"sourceLine\":{line}");
            }
            out.push('}');
        }
        out.push_str("]}],\n  \"usedImages\" : [\n");
        let exe_name = Path::new(&self.exe_path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.app_name.clone());
        let mut images = vec![(exe_name, self.exe_path.clone())];
        images.extend(
            SYSTEM_IMAGES
                .iter()
                .map(|(n, p)| ((*n).to_owned(), (*p).to_owned())),
        );
        for (i, (name, path)) in images.iter().enumerate() {
            let _ = write!(
                out,
                "  {{\n    \"source\" : \"P\",\n    \"arch\" : \"{arch}\",\n    \"base\" : {},\n    \
                 \"size\" : 1048576,\n    \"uuid\" : {},\n    \"path\" : {},\n    \"name\" : {}\n  }}{}\n",
                4_294_967_296u64 + (i as u64) * 16_777_216,
                json_str(&uuid_like(path.as_bytes()).to_lowercase()),
                json_str(path),
                json_str(name),
                if i + 1 < images.len() { "," } else { "" }
            );
        }
        out.push_str("],\n  \"legacyInfo\" : {\n  \"threadTriggered\" : {\n\n  }\n}\n}\n");
        out
    }

    /// Write the report into `dir` atomically (temporary file, then rename) under
    /// [`file_name`](Self::file_name), adding `-1`, `-2`, ... when that name is taken.
    /// Returns the report's path.
    ///
    /// # Errors
    /// Any I/O error creating, writing or renaming the file.
    pub fn write_to(&self, dir: &Path) -> io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let text = self.render();
        let name = self.file_name();
        let tmp = dir.join(format!(".{name}.{}.tmp", self.pid));
        {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
        }
        let stem = name.trim_end_matches(".ips");
        let mut target = dir.join(&name);
        let mut n = 1;
        while target.exists() {
            target = dir.join(format!("{stem}-{n}.ips"));
            n += 1;
        }
        std::fs::rename(&tmp, &target)?;
        Ok(target)
    }

    fn incident_id(&self) -> String {
        let nanos = self
            .time
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        uuid_like(format!("{}-{}-{nanos}", self.app_name, self.pid).as_bytes())
    }
}

/// Abort the process on `violation` the way the real runtime does: crash report first (when
/// configured), then the assertion line on stderr, then SIGABRT.
pub(crate) fn abort_with(config: &DeviceConfig, violation: Violation) -> ! {
    if let Some(dir) = &config.crash_dir {
        let report = CrashReport::capture(&config.app_name, violation);
        if let Err(e) = report.write_to(dir) {
            eprintln!(
                "racegate-sim: could not write crash report into `{}`: {e}",
                dir.display()
            );
        }
    }
    // Straight to fd 2, not `eprintln!`: libtest captures `eprintln!` output, so a test binary that
    // aborts here would lose the assertion line, while the real runtime's line always survives.
    {
        use std::io::Write as _;
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(stderr, "{}", violation.assertion_line());
        let _ = stderr.flush();
    }
    std::process::abort()
}

/// The frames of a `std::backtrace::Backtrace` text, minus the capture machinery itself.
pub fn parse_backtrace(text: &str) -> Vec<Frame> {
    let mut frames: Vec<Frame> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(location) = trimmed.strip_prefix("at ") {
            if let Some(frame) = frames.last_mut() {
                // `file:line:col`; the file itself may contain colons (Windows drive letters).
                let mut parts = location.rsplitn(3, ':');
                let _col = parts.next();
                let line_no = parts.next().and_then(|l| l.parse().ok());
                if let (Some(file), Some(line_no)) = (parts.next(), line_no) {
                    frame.source_file = Some(file.to_owned());
                    frame.source_line = Some(line_no);
                }
            }
            continue;
        }
        if let Some((index, symbol)) = trimmed.split_once(": ") {
            if index.chars().all(|c| c.is_ascii_digit()) && !index.is_empty() {
                frames.push(Frame {
                    symbol: symbol.trim().to_owned(),
                    image_index: 0,
                    source_file: None,
                    source_line: None,
                });
            }
        }
    }
    // Drop the frames of the capture itself and of the abort path above the violation.
    if let Some(pos) = frames
        .iter()
        .rposition(|f| f.symbol.contains("crash_report::"))
    {
        frames.drain(..=pos);
    }
    // The policy plumbing is not part of the story; start at the method that asserted.
    let skip = frames
        .iter()
        .take_while(|f| f.symbol.ends_with("::violate"))
        .count();
    frames.drain(..skip);
    frames
}

fn synthetic_offset(symbol: &str) -> u64 {
    fnv1a(symbol.as_bytes()) & 0x000f_fff0
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A stable, UUID-shaped identifier derived from `seed`.
fn uuid_like(seed: &[u8]) -> String {
    let a = fnv1a(seed);
    let b = fnv1a(&[seed, b"#2"].concat());
    format!(
        "{:08X}-{:04X}-{:04X}-{:04X}-{:012X}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// A JSON string literal for `s`.
pub(crate) fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A UTC calendar time (no time-zone database needed).
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

impl Civil {
    fn seconds_text(&self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

impl From<SystemTime> for Civil {
    fn from(time: SystemTime) -> Civil {
        let secs = time
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        // Howard Hinnant's days-to-civil algorithm.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem % 3600 / 60) as u32,
            second: (rem % 60) as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn civil_time() {
        let t = UNIX_EPOCH + Duration::from_secs(1_778_412_345); // 2026-05-10 11:25:45 UTC
        assert_eq!(Civil::from(t).seconds_text(), "2026-05-10 11:25:45");
        assert_eq!(
            Civil::from(UNIX_EPOCH).seconds_text(),
            "1970-01-01 00:00:00"
        );
    }

    #[test]
    fn backtrace_frames_are_parsed() {
        let text = "   0: std::backtrace::Backtrace::force_capture\n             at /rustc/x/library/std/src/backtrace.rs:312:13\n   1: racegate_sim::crash_report::CrashReport::capture\n             at ./src/crash_report.rs:70:25\n   2: racegate_sim::device::Stream::eval\n             at ./src/device.rs:250:9\n   3: main\n";
        let frames = parse_backtrace(text);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].symbol, "racegate_sim::device::Stream::eval");
        assert_eq!(frames[0].source_file.as_deref(), Some("./src/device.rs"));
        assert_eq!(frames[0].source_line, Some(250));
        assert_eq!(frames[1].source_line, None);
    }

    fn report(app: &str, exe: &str, thread: Option<String>, symbol: &str) -> CrashReport {
        CrashReport {
            app_name: app.to_owned(),
            pid: 4242,
            violation: Violation::SignalWithUncommittedEncoder,
            time: UNIX_EPOCH + Duration::from_secs(1_778_412_345),
            exe_path: exe.to_owned(),
            thread_name: thread,
            frames: vec![Frame {
                symbol: symbol.to_owned(),
                image_index: 0,
                source_file: Some("src/x.rs".to_owned()),
                source_line: Some(7),
            }],
        }
    }

    #[test]
    fn report_matches_the_ips_layout() {
        let r = report(
            "sanctum-mlx",
            "/opt/bin/sanctum-mlx",
            Some("tokio-rt-worker".into()),
            "main",
        );
        assert_eq!(r.file_name(), "sanctum-mlx-2026-05-10-112545.ips");
        let text = r.render();
        let (header, body) = text.split_once('\n').unwrap();
        let header: serde_json::Value = serde_json::from_str(header).unwrap();
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(header["bug_type"], "309");
        assert_eq!(header["timestamp"], "2026-05-10 11:25:45.00 +0000");
        assert_eq!(body["pid"], 4242);
        assert_eq!(body["exception"]["signal"], "SIGABRT");
        assert_eq!(
            body["asi"]["Metal"][0],
            "-[SimCommandBuffer encodeSignalEvent:value:]:427: failed assertion `encodeSignalEvent:value: with uncommitted encoder'"
        );
        let frames = body["threads"][0]["frames"].as_array().unwrap();
        assert_eq!(
            frames[4]["symbol"],
            "-[SimCommandBuffer encodeSignalEvent:value:]"
        );
        assert_eq!(frames[5]["symbol"], "main");
        assert_eq!(frames[5]["sourceLine"], 7);
        assert_eq!(body["usedImages"][0]["path"], "/opt/bin/sanctum-mlx");
    }

    #[test]
    fn write_to_is_atomic_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let r = report("app", "/bin/app", None, "main");
        let first = r.write_to(dir.path()).unwrap();
        let second = r.write_to(dir.path()).unwrap();
        assert_ne!(first, second);
        assert!(second
            .to_string_lossy()
            .ends_with("app-2026-05-10-112545-1.ips"));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
    }

    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        #[test]
        fn any_names_render_valid_json(
            app in proptest::collection::vec(proptest::prelude::any::<char>(), 0..24)
                .prop_map(String::from_iter),
            exe in "\\PC{0,48}",
            thread in proptest::option::of("\\PC{0,16}"),
            symbol in "\\PC{0,40}",
        ) {
            let r = report(&app, &exe, thread.clone(), &symbol);
            let text = r.render();
            let (header, body) = text.split_once('\n').unwrap();
            let header: serde_json::Value = serde_json::from_str(header).unwrap();
            let body: serde_json::Value = serde_json::from_str(body).unwrap();
            proptest::prop_assert_eq!(header["app_name"].as_str(), Some(app.as_str()));
            proptest::prop_assert_eq!(body["procPath"].as_str(), Some(exe.as_str()));
            proptest::prop_assert_eq!(body["threads"][0]["name"].as_str(), thread.as_deref());
            proptest::prop_assert_eq!(body["threads"][0]["frames"][5]["symbol"].as_str(), Some(symbol.as_str()));
            let name = r.file_name();
            proptest::prop_assert!(!name.contains('/') && !name.starts_with('.'), "{}", name);
        }
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
    }
}
