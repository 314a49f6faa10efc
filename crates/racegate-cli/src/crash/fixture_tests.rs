//! The table in `fixtures/crash-reports/README.md`, asserted row by row, and cross-channel
//! signature agreement.

use std::path::{Path, PathBuf};

use super::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/crash-reports")
}

struct Row {
    file: String,
    format: String,
    process: String,
    pid: String,
    signature: String,
}

fn table() -> Vec<Row> {
    let readme = std::fs::read_to_string(fixtures().join("README.md")).unwrap();
    readme
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            assert_eq!(cells.len(), 6, "README row `{l}`");
            assert!(!cells[5].is_empty(), "README row `{l}` names no source");
            let strip = |s: &str| s.trim_matches('`').to_string();
            Row {
                file: strip(cells[0]),
                format: cells[1].to_string(),
                process: cells[2].to_string(),
                pid: cells[3].to_string(),
                signature: strip(cells[4]),
            }
        })
        .collect()
}

#[test]
fn every_fixture_gives_its_documented_signature() {
    let rows = table();
    assert!(rows.len() >= 17, "the README table lost rows");
    for row in rows {
        let path = fixtures().join(&row.file);
        if row.format == "kmsg" {
            let text = std::fs::read_to_string(&path).unwrap();
            let found: Vec<String> = text
                .lines()
                .filter_map(|l| kmsg::xid(kmsg::kmsg_message(l)))
                .map(|x| x.signature(CrashSource::KernelLog).key().to_string())
                .collect();
            assert_eq!(found.join(" ; "), row.signature, "{}", row.file);
            continue;
        }
        if row.format == "faulthandler" {
            let text = std::fs::read_to_string(&path).unwrap();
            let dump = faulthandler::parse(&text).pop().expect("a dump");
            let signal = faulthandler::signal_of_error(&dump.error);
            let (sig, evidence) = identify(Traces {
                stderr_tail: &text,
                signal,
                ..Traces::default()
            })
            .unwrap();
            assert_eq!(sig.key(), row.signature, "{}", row.file);
            assert!(evidence.heap_message.is_some() || !evidence.frames.is_empty());
            continue;
        }
        if row.format == "stderr" {
            let text = std::fs::read_to_string(&path).unwrap();
            let mut scanner = StderrScanner::new();
            let mut found: Vec<String> = text
                .lines()
                .filter_map(|l| scanner.feed(l))
                .map(|s| s.key().to_string())
                .collect();
            found.extend(scanner.finish().map(|s| s.key().to_string()));
            assert_eq!(found.join(" ; "), row.signature, "{}", row.file);
            continue;
        }
        let report = parse_file(&path).unwrap_or_else(|e| panic!("{}: {e}", row.file));
        let format = match report.format {
            ReportFormat::Ips => "ips",
            ReportFormat::Apport => "apport",
            ReportFormat::Coredump => "coredump",
        };
        assert_eq!(format, row.format, "{}", row.file);
        assert_eq!(report.signature.key(), row.signature, "{}", row.file);
        assert_eq!(
            report.process.as_deref(),
            Some(row.process.as_str()),
            "{}",
            row.file
        );
        assert_eq!(
            report.pid.map(|p| p.to_string()),
            Some(row.pid),
            "{}",
            row.file
        );
    }
}

#[test]
fn ips_fixture_fields() {
    let r = ips::parse_file(&fixtures().join("sanctum-mlx-2026-05-10-091403.ips")).unwrap();
    assert_eq!(r.bug_type.as_deref(), Some("309"));
    assert_eq!(r.exception_type.as_deref(), Some("EXC_CRASH"));
    assert_eq!(r.signal.as_deref(), Some("SIGABRT"));
    assert_eq!(r.termination.as_deref(), Some("Abort trap: 6"));
    assert_eq!(r.faulting_thread, Some(3));
    assert_eq!(
        r.top_frames(6),
        [
            "libsystem_kernel.dylib!__pthread_kill",
            "libsystem_pthread.dylib!pthread_kill",
            "libsystem_c.dylib!abort",
            "Metal!MTLReportFailure",
            "IOGPU!-[IOGPUMetalCommandBuffer encodeSignalEvent:value:]",
            "libmlx.dylib!mlx::core::metal::Device::end_encoding(int)",
        ]
    );
    let segv = ips::parse_file(&fixtures().join("sanctum-mlx-2026-05-09-221710.ips")).unwrap();
    // An unsymbolicated frame is named by image and offset.
    assert_eq!(segv.frames[4].to_string(), "sanctum-mlx+0x201000");
}

#[test]
fn the_same_crash_gives_the_same_key_on_every_channel() {
    // The sim server's stderr line and the `.ips` it writes for the same abort.
    let line = "-[SimCommandBuffer commit]:690: failed assertion `commit an already committed command buffer'";
    let from_stderr = stderr::scan_line(line).unwrap();
    let ips_text = format!(
        "{{\"bug_type\":\"309\",\"name\":\"sim\"}}\n{{\"procName\":\"sim\",\"asi\":{{\"libsystem_c.dylib\":[\"abort() called\"],\"Metal\":[{}]}}}}",
        serde_json::to_string(line).unwrap()
    );
    let from_ips = ips::parse_str(&ips_text, "<input>").unwrap().signature();
    assert_eq!(from_stderr.key(), from_ips.key());
    assert_eq!(from_stderr.source(), CrashSource::Stderr);
    assert_eq!(from_ips.source(), CrashSource::CrashReport);

    // A segfault seen on stderr and as an exit status.
    let shell = stderr::scan_line("Segmentation fault (core dumped)").unwrap();
    let status = Termination::from_shell_code(128 + signal::signal_number("SIGSEGV").unwrap())
        .signature()
        .unwrap();
    assert_eq!(shell.key(), status.key());
}

#[test]
fn parse_errors_name_file_line_and_field() {
    let e = ips::parse_str("{\"bug_type\":\"309\"}\n{\"procName\": 7}", "a.ips").unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("`a.ips`") && msg.contains("line 2") && msg.contains("`procName`"),
        "{msg}"
    );

    let e = ips::parse_str(
        "{\"bug_type\":\"309\",\"name\":\"x\"}\n{\"exception\":{\"signal\":6}}",
        "b.ips",
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("`exception.signal` must be a string"),
        "{e}"
    );

    let e = ips::parse_str(
        "{\"bug_type\":\"309\"}\n{\"procName\":\"x\",\n\"pid\": }",
        "c.ips",
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            CrashError::Json {
                line: 3,
                part: "body",
                ..
            }
        ),
        "{e:?}"
    );

    let e = ips::parse_str("Process:   sim [42]\nPath: /x\n", "d.ips").unwrap_err();
    assert!(matches!(e, CrashError::LegacyText { .. }), "{e:?}");

    let e = ips::parse_str("{\"bug_type\":\"288\",\"name\":\"x\"}\n{}", "e.ips").unwrap_err();
    assert!(matches!(e, CrashError::NotACrash { .. }), "{e:?}");

    let e = ips::parse_str("", "f.ips").unwrap_err();
    assert!(matches!(e, CrashError::Empty { .. }), "{e:?}");

    let e = parse_file(Path::new("/nonexistent/racegate/x.ips")).unwrap_err();
    assert!(matches!(e, CrashError::Io { .. }) && e.to_string().contains("x.ips"));
}

#[test]
fn a_legacy_text_report_named_crash_is_refused() {
    let text =
        "Process:               Xcodes [26133]\nPath:                  /Applications/Xcodes.app\n";
    let e = coredump::parse_apport(text.as_bytes(), "Xcodes.crash").unwrap_err();
    assert!(matches!(e, CrashError::LegacyText { .. }), "{e:?}");
}

#[cfg(target_os = "linux")]
#[test]
fn coredump_xattrs_give_the_signal() {
    // ext4 and tmpfs take `user.*` attributes; skip (saying so) where the file system does not.
    let dir = std::env::temp_dir().join(format!("racegate-xattr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let core =
        dir.join("core.sim-server.1000.8f2d0c6bd3a54d2c9f0c4e7f5a1b2c3d.77.1763815267123456.zst");
    std::fs::write(&core, b"").unwrap();
    let set = |name: &str, value: &str| {
        use std::os::unix::ffi::OsStrExt;
        let p = std::ffi::CString::new(core.as_os_str().as_bytes()).unwrap();
        let n = std::ffi::CString::new(name).unwrap();
        // SAFETY: NUL-terminated strings and a value buffer valid for its length.
        let r = unsafe {
            libc::setxattr(
                p.as_ptr(),
                n.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        r == 0
    };
    let without = parse_file(&core).unwrap();
    assert_eq!(without.signature.key(), "signal: core dumped by sim-server");
    if !set("user.coredump.signal", "11")
        || !set("user.coredump.exe", "/usr/local/bin/sim-server-v2")
    {
        eprintln!("skipped: {} takes no user xattrs", dir.display());
    } else {
        let with = parse_file(&core).unwrap();
        assert_eq!(with.signature.key(), "signal: SIGSEGV");
        assert_eq!(with.signal.as_deref(), Some("SIGSEGV"));
        assert_eq!(with.process.as_deref(), Some("sim-server-v2"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
