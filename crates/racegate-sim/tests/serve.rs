//! The demo server as a child process under concurrent clients, per dispatch mode.
#![cfg(unix)]

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

use common::*;

const LIFECYCLE: [&str; 5] = [
    "A command encoder is already encoding to this command buffer",
    "commit an already committed command buffer",
    "Completed handler provided after commit call",
    "commit command buffer with uncommitted encoder",
    "Command encoder created after commit call",
];
const SIGNAL: &str = "encodeSignalEvent:value: with uncommitted encoder";

/// Run 8 clients (4 text, 4 vision) until the server dies (at most 20 s) and return its exit
/// status and stderr.
fn hammer_until_abort(server: &mut Server) -> (std::process::ExitStatus, String) {
    let result = load(server, 8, Duration::from_secs(20), 1_000_000, false);
    let status = server
        .wait(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("server survived 8 concurrent clients: {result:?}"));
    (status, server.stop())
}

/// Parse an `.ips` file: a JSON header line, then a JSON body.
fn read_ips(dir: &Path) -> (serde_json::Value, serde_json::Value, String) {
    let reports: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        reports.len(),
        1,
        "exactly one report, no temp files: {reports:?}"
    );
    let path = &reports[0];
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(path).unwrap();
    let (header, body) = text.split_once('\n').expect("header line");
    (
        serde_json::from_str(header).expect("header is JSON"),
        serde_json::from_str(body).expect("body is JSON"),
        name,
    )
}

fn check_ips(dir: &Path, app: &str, message: &str) {
    let (header, body, name) = read_ips(dir);
    assert!(
        name.starts_with(&format!("{app}-")) && name.ends_with(".ips"),
        "{name}"
    );
    // <app>-YYYY-MM-DD-HHMMSS.ips
    assert_eq!(name.len(), app.len() + 1 + 17 + 4, "{name}");
    assert_eq!(header["app_name"], app);
    assert_eq!(header["name"], app);
    assert_eq!(header["bug_type"], "309");
    assert!(header["timestamp"].as_str().unwrap().ends_with(" +0000"));
    assert_eq!(body["procName"], app);
    assert!(body["pid"].as_u64().unwrap() > 0);
    assert_eq!(body["exception"]["type"], "EXC_CRASH");
    assert_eq!(body["exception"]["signal"], "SIGABRT");
    assert_eq!(body["termination"]["namespace"], "SIGNAL");
    assert_eq!(body["termination"]["code"], 6);
    let asi = body["asi"]["Metal"][0].as_str().unwrap();
    assert!(asi.contains(message), "{asi}");
    assert!(asi.starts_with("-[SimCommandBuffer "), "{asi}");
    let faulting = body["faultingThread"].as_u64().unwrap() as usize;
    let thread = &body["threads"][faulting];
    assert_eq!(thread["triggered"], true);
    let frames = thread["frames"].as_array().unwrap();
    let symbols: Vec<&str> = frames
        .iter()
        .map(|f| f["symbol"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(symbols[2], "abort", "{symbols:?}");
    assert!(
        symbols.iter().any(|s| s.contains("racegate_sim::device::")),
        "symbolized device frames: {symbols:?}"
    );
    let images = body["usedImages"].as_array().unwrap();
    for f in frames {
        assert!((f["imageIndex"].as_u64().unwrap() as usize) < images.len());
    }
}

#[test]
fn shared_stream_aborts_with_an_encoder_lifecycle_assertion_and_an_ips_report() {
    let crashes = tempfile::tempdir().unwrap();
    let dir = crashes.path().to_str().unwrap();
    let mut server = Server::start(&[
        "--dispatch",
        "shared",
        "--work-us",
        "300",
        "--crash-dir",
        dir,
        "--app-name",
        "sanctum-mlx",
    ]);
    let (status, stderr) = hammer_until_abort(&mut server);
    assert_eq!(status.signal(), Some(6), "SIGABRT; stderr: {stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("failed assertion `"))
        .unwrap_or_else(|| panic!("no assertion line in stderr: {stderr}"));
    assert!(line.starts_with("-[SimCommandBuffer "), "{line}");
    let message = LIFECYCLE
        .iter()
        .find(|m| line.ends_with(&format!("`{m}'")))
        .unwrap_or_else(|| panic!("not an encoder-lifecycle assertion: {line}"));
    check_ips(crashes.path(), "sanctum-mlx", message);
}

#[test]
fn distinct_streams_abort_with_the_signal_event_assertion() {
    let crashes = tempfile::tempdir().unwrap();
    let dir = crashes.path().to_str().unwrap();
    let mut server = Server::start(&[
        "--dispatch",
        "streams",
        "--work-us",
        "300",
        "--crash-dir",
        dir,
    ]);
    let (status, stderr) = hammer_until_abort(&mut server);
    assert_eq!(status.signal(), Some(6), "SIGABRT; stderr: {stderr}");
    assert!(
        stderr.contains(
            "-[SimCommandBuffer encodeSignalEvent:value:]:427: failed assertion `encodeSignalEvent:value: with uncommitted encoder'"
        ),
        "{stderr}"
    );
    check_ips(crashes.path(), "racegate-sim", SIGNAL);
}

#[test]
fn gated_serves_the_same_load_with_zero_errors() {
    let crashes = tempfile::tempdir().unwrap();
    let dir = crashes.path().to_str().unwrap();
    let mut server = Server::start(&[
        "--dispatch",
        "gated",
        "--work-us",
        "300",
        "--crash-dir",
        dir,
    ]);
    let result = load(&server, 8, Duration::from_millis(1500), 400, false);
    assert!(result.ok >= 8, "{result:?}");
    assert_eq!(
        (result.wrong, result.http_errors, result.io_errors),
        (0, 0, 0),
        "{result:?}"
    );
    assert!(!server.has_exited());
    // Every dispatch went through the gate: one acquisition per request.
    let health = request(server.addr, "GET", "/healthz", b"").unwrap().json();
    assert_eq!(health["gate"]["name"], "gpu");
    assert_eq!(health["gate"]["acquisitions"], result.ok, "{health}");
    assert_eq!(health["gate"]["holders"], 0);
    // The same figures in OpenMetrics, per pipeline label.
    let metrics = request(server.addr, "GET", "/metrics", b"").unwrap();
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    let count = |label: &str| -> u64 {
        let series = format!("racegate_gate_acquisitions_total{{gate=\"gpu\",label=\"{label}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&series))
            .map_or(0, |v| v.trim().parse().unwrap())
    };
    assert_eq!(count("text") + count("vision"), result.ok, "{text}");
    assert!(
        text.contains("racegate_gate_hold_seconds_bucket{"),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    let stderr = server.stop();
    assert!(!stderr.contains("failed assertion"), "{stderr}");
    assert_eq!(std::fs::read_dir(crashes.path()).unwrap().count(), 0);
}

#[test]
fn one_client_at_a_time_never_aborts_in_any_mode() {
    for mode in ["shared", "streams", "corrupt", "gated"] {
        let mut server = Server::start(&["--dispatch", mode, "--work-us", "200"]);
        let result = load(&server, 1, Duration::from_millis(400), 200, false);
        // The single worker alternates nothing; a second pass covers the vision pipeline.
        let mut alternating = 0;
        for i in 0..20u8 {
            let body = if i % 2 == 0 {
                text_body(&format!("seq {i}"), 3)
            } else {
                vision_body(&format!("seq {i}"), i, 3)
            };
            let resp = post(server.addr, &body).unwrap();
            assert_eq!(resp.status, 200, "{mode}: {}", resp.text());
            assert_eq!(
                resp.json()["choices"][0]["message"]["content"],
                expected(&body),
                "{mode}"
            );
            alternating += 1;
        }
        assert!(result.ok > 0, "{mode}: {result:?}");
        assert_eq!(
            (result.wrong, result.http_errors, result.io_errors),
            (0, 0, 0),
            "{mode}: {result:?}"
        );
        assert_eq!(alternating, 20);
        assert!(!server.has_exited(), "{mode}: server died");
        let stderr = server.stop();
        assert!(!stderr.contains("failed assertion"), "{mode}: {stderr}");
    }
}

#[test]
fn shared_scratch_corrupts_answers_without_crashing() {
    let mut server = Server::start(&["--dispatch", "corrupt", "--work-us", "300"]);
    let result = load(&server, 8, Duration::from_secs(20), 100_000, true);
    assert!(
        result.wrong > 0,
        "no wrong answer under 8 clients: {result:?}"
    );
    assert_eq!((result.http_errors, result.io_errors), (0, 0), "{result:?}");
    assert!(!server.has_exited(), "corruption must never crash");
    let resp = request(server.addr, "GET", "/healthz", b"").unwrap();
    assert_eq!(resp.json()["dispatch"], "corrupt");
    server.stop();
}

#[test]
fn streaming_deltas_concatenate_to_the_answer() {
    let server = Server::start(&["--dispatch", "gated", "--work-us", "100"]);
    for body in [text_body("stream me", 5), vision_body("and me", 3, 5)] {
        let plain = post(server.addr, &body).unwrap();
        assert_eq!(plain.status, 200);
        let content = plain.json()["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(content, expected(&body));

        let mut v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        v["stream"] = true.into();
        let sse = post(server.addr, v.to_string().as_bytes()).unwrap();
        assert_eq!(sse.status, 200);
        assert!(sse
            .headers
            .iter()
            .any(|(k, v)| k == "content-type" && v.starts_with("text/event-stream")));
        let text = sse.text();
        let data: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .collect();
        assert_eq!(data.last(), Some(&"[DONE]"), "{text}");
        let mut streamed = String::new();
        for d in &data[..data.len() - 1] {
            let chunk: serde_json::Value = serde_json::from_str(d).unwrap();
            assert_eq!(chunk["object"], "chat.completion.chunk");
            if let Some(piece) = chunk["choices"][0]["delta"]["content"].as_str() {
                streamed.push_str(piece);
            }
        }
        assert_eq!(streamed, content);
    }
}

#[test]
fn bad_requests_get_json_4xx_and_the_server_keeps_serving() {
    let server = Server::start(&["--dispatch", "shared", "--max-body-bytes", "65536"]);
    let image = |url: &str| {
        serde_json::json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}}]}]})
        .to_string()
    };
    let huge = vec![b' '; 200_000];
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"{\"messages\": [".to_vec(), 400, "invalid_json"),
        (b"not json at all".to_vec(), 400, "invalid_json"),
        (b"{\"messages\": []}".to_vec(), 400, "invalid_request"),
        (
            image("data:image/png;base64,***").into_bytes(),
            400,
            "invalid_image_base64",
        ),
        (
            image("data:image/png;base64,bm90IGEgcG5n").into_bytes(),
            400,
            "invalid_png",
        ),
        (
            image("https://example.invalid/a.png").into_bytes(),
            400,
            "unsupported_image_url",
        ),
        (huge, 413, "body_too_large"),
    ];
    for (body, status, code) in cases {
        let resp = post(server.addr, &body).unwrap();
        assert_eq!(resp.status, status, "{code}: {}", resp.text());
        let json = resp.json();
        assert_eq!(json["error"]["code"], code, "{json}");
        assert!(json["error"]["message"].as_str().unwrap().len() > 5);
        // Still serving after each bad request.
        let ok = post(server.addr, &text_body("still there?", 2)).unwrap();
        assert_eq!(ok.status, 200);
    }
    let resp = request(server.addr, "GET", "/nope", b"").unwrap();
    assert_eq!(
        (resp.status, resp.json()["error"]["code"].clone()),
        (404, "not_found".into())
    );
    let resp = request(server.addr, "GET", "/v1/chat/completions", b"").unwrap();
    assert_eq!(resp.status, 405);
    assert_eq!(resp.json()["error"]["code"], "method_not_allowed");
}

#[test]
fn fail_every_answers_every_nth_request_with_a_json_500() {
    let server = Server::start(&["--fail-every", "3", "--work-us", "50"]);
    let statuses: Vec<u16> = (0..6)
        .map(|i| {
            let resp = post(server.addr, &text_body(&format!("n{i}"), 1)).unwrap();
            if resp.status == 500 {
                assert_eq!(resp.json()["error"]["code"], "injected_failure");
            }
            resp.status
        })
        .collect();
    assert_eq!(statuses, [200, 200, 500, 200, 200, 500]);
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    let out = std::process::Command::new(BIN)
        .args(["serve", "--listen", "not-an-address"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen"));

    let out = std::process::Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            "/nonexistent/cert.pem",
            "--tls-key",
            "/nonexistent/key.pem",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--tls-cert `/nonexistent/cert.pem`"),
        "{stderr}"
    );

    let out = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--max-body-bytes", "10"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-body-bytes"));

    let out = std::process::Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--app-name",
            "../escape",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--app-name"));
}

/// The streaming path keeps its gate guard until the last event: streaming and plain clients
/// mixed on the gated server never abort, while the same mix on the shared stream does (the
/// control that shows this load can fail).
#[test]
fn gated_streaming_holds_the_gate_until_the_last_event() {
    let mut gated = Server::start(&["--dispatch", "gated", "--work-us", "300"]);
    let result = load_mixed(&gated, 8, 4, Duration::from_millis(1500), 300, false);
    assert!(result.ok >= 8, "{result:?}");
    assert_eq!(
        (result.wrong, result.http_errors, result.io_errors),
        (0, 0, 0),
        "{result:?}"
    );
    assert!(!gated.has_exited());
    gated.stop();

    let mut shared = Server::start(&["--dispatch", "shared", "--work-us", "300"]);
    let result = load_mixed(&shared, 8, 8, Duration::from_secs(20), 1_000_000, false);
    let status = shared
        .wait(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("streaming load on the shared stream did not abort: {result:?}"));
    assert_eq!(status.signal(), Some(6));
}

#[test]
fn on_violation_error_answers_500_and_keeps_serving() {
    let mut server = Server::start(&[
        "--dispatch",
        "shared",
        "--work-us",
        "300",
        "--on-violation",
        "error",
    ]);
    let result = load(&server, 8, Duration::from_millis(1500), 2_000, false);
    assert!(
        result.http_errors > 0,
        "no device error under 8 clients: {result:?}"
    );
    assert!(!server.has_exited(), "the error policy must not abort");
    let body = text_body("after the storm", 2);
    let resp = post(server.addr, &body).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    server.stop();
}

/// The streaming path holds its owned gate guard while events are still being produced, and
/// releases it once the stream ended.
#[test]
fn gated_stream_holds_the_guard_while_streaming_and_releases_it_after() {
    use std::io::{BufRead, BufReader, Write};

    let server = Server::start(&["--dispatch", "gated", "--work-us", "5000"]);
    let body = serde_json::json!({
        "messages": [{"role": "user", "content": "a long answer"}],
        "max_tokens": 256,
        "stream": true,
    })
    .to_string();
    let mut tcp = std::net::TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        tcp,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reader = BufReader::new(tcp);
    let mut line = String::new();
    while !line.starts_with("data: ") {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "stream ended early"
        );
    }
    // 256 tokens at 5 ms each are still being produced: the guard is held.
    let health = request(server.addr, "GET", "/healthz", b"").unwrap().json();
    assert_eq!(health["gate"]["holders"], 1, "{health}");

    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    // (chunked transfer encoding: the chunk framing is still around the events)
    assert!(rest.contains("data: [DONE]"), "{rest}");
    // The producer drops the guard right after the response stream ended; give it a bounded
    // number of looks.
    let released = (0..500).any(|_| {
        request(server.addr, "GET", "/healthz", b"").unwrap().json()["gate"]["holders"] == 0
    });
    assert!(released, "the guard outlived the stream");
}
