//! Property tests: no parser panics on any input, a generated `.ips` round-trips, and the two
//! channels agree on assertion signatures for any assertion text.

use std::path::Path;

use proptest::prelude::*;
use serde_json::json;

use super::signature::{assertion_text, normalize_text};
use super::*;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/crash-reports")
            .join(name),
    )
    .unwrap()
}

/// A mutation of a real report: cut a range, splice in bytes, or flip one byte.
#[derive(Debug, Clone)]
enum Mutation {
    Cut(usize, usize),
    Insert(usize, Vec<u8>),
    Flip(usize, u8),
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    let one = prop_oneof![
        (any::<usize>(), 0usize..400).prop_map(|(a, n)| Mutation::Cut(a, n)),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..12)
        )
            .prop_map(|(a, b)| Mutation::Insert(a, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Mutation::Flip(a, b)),
    ];
    proptest::collection::vec(one, 1..6)
}

fn mutate(text: &str, muts: &[Mutation]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for m in muts {
        let len = bytes.len().max(1);
        match m {
            Mutation::Cut(at, n) => {
                let at = at % len;
                let end = (at + n).min(bytes.len());
                if at < end {
                    bytes.drain(at..end);
                }
            }
            Mutation::Insert(at, b) => {
                let at = at % (bytes.len() + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            Mutation::Flip(at, b) => {
                if !bytes.is_empty() {
                    let at = at % bytes.len();
                    bytes[at] = *b;
                }
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Text that is a plausible signature body: printable, no quote that would end the assertion.
fn message() -> impl Strategy<Value = String> {
    "[a-zA-Z][a-zA-Z0-9 :_,()<>=!-]{0,60}".prop_map(|s| s.trim().to_string())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn no_parser_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = ips::parse_str(&text, "<input>");
        let _ = coredump::parse_apport(&bytes[..], "<input>");
        let _ = coredump::parse_coredump_name(&text);
        let mut scanner = StderrScanner::new();
        for line in bytes.split(|b| *b == b'\n') {
            let _ = scanner.feed_bytes(line);
        }
        let _ = scanner.finish();
        let _ = stderr::scan_line(&text);
        let _ = normalize_text(&text);
        let _ = assertion_text(&text);
        let _ = signal::signal_number(&text);
    }

    #[test]
    fn no_parser_panics_on_crash_like_strings(
        s in "(core\\.|thread '|==1==ERROR: |failed assertion `|Assertion failed: \\(|cudaError|CUDA_ERROR_|\\{\"bug_type\":\"309\"\\}\n)[ -~]{0,80}"
    ) {
        let _ = ips::parse_str(&s, "<input>");
        let _ = coredump::parse_coredump_name(&s);
        let _ = coredump::parse_apport(s.as_bytes(), "<input>");
        let mut scanner = StderrScanner::new();
        for line in s.lines() {
            let _ = scanner.feed(line);
        }
        let _ = scanner.finish();
    }

    #[test]
    fn mutated_real_reports_never_panic(muts in mutations()) {
        for name in ["sanctum-mlx-2026-05-10-091403.ips", "sanctum-mlx-2026-05-09-221710.ips"] {
            let text = mutate(&fixture(name), &muts);
            if let Ok(r) = ips::parse_str(&text, name) {
                let _ = r.signature();
            }
        }
        let apport = mutate(&fixture("_usr_local_bin_sim-server.1000.crash"), &muts);
        if let Ok(r) = coredump::parse_apport(apport.as_bytes(), "x.crash") {
            let _ = r.signature();
        }
        // Every multi-line shape: the scanner, faulthandler, the kernel log and identify().
        for name in [
            "stderr-tsan-data-race.txt",
            "stderr-compute-sanitizer.txt",
            "stderr-candle-driver-error.txt",
            "faulthandler-mlx-cpu.txt",
            "faulthandler-glibc-heap.txt",
            "kmsg-nvrm-xid.txt",
        ] {
            let text = mutate(&fixture(name), &muts);
            let mut scanner = StderrScanner::new();
            let mut found = Vec::new();
            for line in text.lines() {
                found.extend(scanner.feed(line));
            }
            while let Some(s) = scanner.finish() {
                found.push(s);
            }
            for line in text.lines() {
                let _ = kmsg::xid(kmsg::kmsg_message(line));
            }
            let _ = identify(Traces {
                stderr: &found,
                stderr_tail: &text,
                signal: Some("SIGABRT"),
                ..Traces::default()
            });
        }
    }

    /// Whatever the text, a crash is still named: unparseable traces give a generic signature.
    #[test]
    fn identify_always_names_a_signalled_crash(text in "\\PC{0,400}", sig in "SIG[A-Z]{2,5}") {
        let (s, _) = identify(Traces { stderr_tail: &text, signal: Some(&sig), ..Traces::default() }).unwrap();
        proptest::prop_assert!(!s.key().is_empty());
    }

    #[test]
    fn normalization_is_idempotent_and_bounded(s in any::<String>()) {
        let once = normalize_text(&s);
        prop_assert!(once.len() <= signature::MAX_TEXT_LEN);
        prop_assert_eq!(normalize_text(&once), once.clone());
    }

    #[test]
    fn generated_ips_round_trips(
        process in "[a-z][a-z0-9_-]{0,20}",
        pid in 1u32..u32::MAX,
        exc in prop_oneof![Just("EXC_CRASH"), Just("EXC_BAD_ACCESS"), Just("EXC_BREAKPOINT")],
        sig in prop_oneof![Just("SIGABRT"), Just("SIGSEGV"), Just("SIGBUS"), Just("SIGTRAP")],
        assertion in proptest::option::of(message()),
        frames in proptest::collection::vec((0usize..4, proptest::option::of("[a-zA-Z_:]{1,30}"), any::<u32>()), 0..20),
        faulting in 0usize..3,
    ) {
        let images = ["sim-server", "libmlx.dylib", "Metal", "libsystem_kernel.dylib"];
        let frame_json: Vec<_> = frames.iter().map(|(img, sym, off)| {
            let mut f = json!({"imageOffset": off, "imageIndex": img, "symbolLocation": 4});
            if let Some(sym) = sym { f["symbol"] = json!(sym); }
            f
        }).collect();
        let mut threads: Vec<_> = (0..3).map(|i| json!({"id": 100 + i, "frames": []})).collect();
        threads[faulting] = json!({"id": 7, "triggered": true, "frames": frame_json});
        let mut asi = json!({"libsystem_c.dylib": ["abort() called"]});
        if let Some(a) = &assertion {
            asi["Metal"] = json!([format!("-[MTLDebugCommandBuffer commit]:12: failed assertion `{a}'")]);
        }
        let header = json!({"app_name": process, "timestamp": "2026-05-10 09:14:03.00 -0700", "bug_type": "309", "name": process});
        let body = json!({
            "procName": process, "pid": pid,
            "exception": {"type": exc, "signal": sig},
            "termination": {"indicator": "Abort trap: 6"},
            "asi": asi, "faultingThread": faulting, "threads": threads,
            "usedImages": images.iter().map(|n| json!({"name": n, "path": format!("/x/{n}")})).collect::<Vec<_>>(),
        });
        let text = format!("{}\n{}", header, serde_json::to_string_pretty(&body).unwrap());
        let r = ips::parse_str(&text, "<gen>").unwrap();
        prop_assert_eq!(&r.process, &process);
        prop_assert_eq!(r.pid, Some(pid));
        prop_assert_eq!(r.exception_type.as_deref(), Some(exc));
        prop_assert_eq!(r.signal.as_deref(), Some(sig));
        prop_assert_eq!(r.faulting_thread, Some(faulting));
        prop_assert_eq!(r.assertion.as_deref(), assertion.as_deref());
        prop_assert_eq!(r.frames.len(), frames.len().min(ips::TOP_FRAMES));
        for (got, (img, sym, off)) in r.frames.iter().zip(&frames) {
            prop_assert_eq!(got.image.as_deref(), Some(images[*img]));
            prop_assert_eq!(got.symbol.as_ref(), sym.as_ref());
            prop_assert_eq!(got.image_offset, Some(u64::from(*off)));
        }
        if let Some(a) = &assertion {
            prop_assert_eq!(r.signature().key().to_string(), format!("assertion: {}", normalize_text(a)));
        }
    }

    #[test]
    fn stderr_and_ips_agree_on_any_assertion(
        class in "[A-Z][A-Za-z]{2,20}",
        sel in "[a-z][A-Za-z:]{0,20}",
        line in 1u32..5000,
        line2 in 1u32..5000,
        text in message(),
    ) {
        prop_assume!(!text.is_empty());
        let stderr_line = format!("-[{class} {sel}]:{line}: failed assertion `{text}'");
        let asi_line = format!("-[_MTL{class} {sel}]:{line2}: failed assertion `{text}'");
        let ips_text = format!(
            "{{\"bug_type\":\"309\",\"name\":\"p\"}}\n{}",
            json!({"procName": "p", "asi": {"Metal": [asi_line]}})
        );
        let a = stderr::scan_line(&stderr_line).unwrap();
        let b = ips::parse_str(&ips_text, "<gen>").unwrap().signature();
        prop_assert_eq!(a.key(), b.key());
    }

    #[test]
    fn coredump_names_round_trip(
        comm in "[a-z][a-z0-9.-]{0,14}",
        uid in any::<u32>(),
        boot in "[0-9a-f]{32}",
        pid in any::<u32>(),
        ts in any::<u64>(),
        ext in proptest::option::of(prop_oneof![Just("zst"), Just("lz4"), Just("xz")]),
    ) {
        let mut name = format!("core.{comm}.{uid}.{boot}.{pid}.{ts}");
        if let Some(ext) = ext { name.push('.'); name.push_str(ext); }
        let n = coredump::parse_coredump_name(&name).unwrap();
        prop_assert_eq!(n.comm, comm);
        prop_assert_eq!(n.uid, uid);
        prop_assert_eq!(n.boot_id, boot);
        prop_assert_eq!(n.pid, pid);
        prop_assert_eq!(n.timestamp_us, ts);
        prop_assert_eq!(n.compression.as_deref(), ext);
    }
}
