//! Engine behaviour end to end: request bounds, open-loop rate, HTTPS with mTLS, Ctrl-C.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_racegate");

fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Wait for a child with a hard bound.
fn wait_bounded(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("racegate did not end within {limit:?}");
        }
        // Polling the exit status, not synchronizing on time.
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run(args: &[&str]) -> (i32, Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let mut child = Command::new(BIN)
        .arg("stress")
        .args(args)
        .arg("--json")
        .arg(&json)
        .args(["--quiet", "--crash-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status = wait_bounded(&mut child, Duration::from_secs(60));
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    let v = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    (status.code().unwrap_or(-1), v, out)
}

fn scenario(dir: &Path, sim_flags: &[&str], pipeline_extra: &str, top_extra: &str) -> String {
    let mut cmd = vec![
        q(BIN),
        q("sim-serve"),
        q("--listen"),
        q("127.0.0.1:{port}"),
        q("--dispatch"),
        q("gated"),
        q("--work-us"),
        q("100"),
    ];
    cmd.extend(sim_flags.iter().map(|f| q(f)));
    let text = format!(
        r#"target = "http://127.0.0.1:{{port}}"
{top_extra}

[[pipeline]]
name = "text"
workers = 4
path = "/v1/chat/completions"
json = {{ model = "sim", messages = [{{ role = "user", content = "hi" }}], max_tokens = 2 }}
check = "consistent"
{pipeline_extra}

[target_process]
command = [{}]
health = "/healthz"
"#,
        cmd.join(", ")
    );
    let p = dir.join("s.toml");
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn a_request_budget_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let sc = scenario(dir.path(), &[], "", "duration = \"20s\"");
    let (code, v, _) = run(&[&sc, "--requests", "37"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["requests"], 37, "{v:#}");
    assert!(v["duration_s"].as_f64().unwrap() < 20.0);
    assert_eq!(v["ended_by"], "requests", "{v:#}");
}

#[test]
fn a_report_on_stdout_replaces_the_table_and_every_other_output_is_still_written() {
    let dir = tempfile::tempdir().unwrap();
    let sc = scenario(dir.path(), &[], "", "duration = \"20s\"");
    let md = dir.path().join("r.md");
    let out = Command::new(BIN)
        .args([
            "stress",
            &sc,
            "--requests",
            "12",
            "--quiet",
            "--json",
            "-",
            "--markdown",
        ])
        .arg(&md)
        .arg("--crash-dir")
        .arg(dir.path())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    // stdout is the JSON document alone: no table before or after it.
    let v: Value = serde_json::from_slice(&out.stdout).expect("stdout is only the JSON report");
    assert_eq!(v["requests"], 12, "{v:#}");
    let md = std::fs::read_to_string(&md).unwrap();
    assert!(md.starts_with("### racegate stress: **PASS**"), "{md}");
}

#[test]
fn a_missing_report_folder_is_refused_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let sc = scenario(dir.path(), &[], "", "duration = \"20s\"");
    let out = Command::new(BIN)
        .args(["stress", &sc, "--junit"])
        .arg(dir.path().join("nope/r.xml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`--junit ") && err.contains("does not exist"),
        "{err}"
    );
    assert!(!err.contains("hammering"), "nothing ran: {err}");
}

#[test]
fn open_loop_rate_bounds_the_requests() {
    // 40 requests/s for 1 s is at most 40 requests; a closed loop would send hundreds.
    let dir = tempfile::tempdir().unwrap();
    let sc = scenario(dir.path(), &[], "rate = 40.0", "duration = \"1s\"");
    let (code, v, _) = run(&[&sc]);
    assert_eq!(code, 0, "{v:#}");
    let n = v["requests"].as_u64().unwrap();
    assert!((1..=40).contains(&n), "{n} requests: {v:#}");
}

#[test]
fn https_with_client_certificates() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "racegate test CA");
    let ca = ca.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let mut sp = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    sp.subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let server = sp.signed_by(&server_key, &ca, &ca_key).unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client = CertificateParams::new(vec!["racegate-client".to_string()])
        .unwrap()
        .signed_by(&client_key, &ca, &ca_key)
        .unwrap();
    let write = |name: &str, text: String| {
        std::fs::write(d.join(name), text).unwrap();
        d.join(name).to_str().unwrap().to_string()
    };
    let ca_pem = write("ca.pem", ca.pem());
    let server_pem = write("server.pem", server.pem());
    let server_key_pem = write("server-key.pem", server_key.serialize_pem());
    write("client.pem", client.pem());
    write("client-key.pem", client_key.serialize_pem());
    let tls = "[tls]\nca = \"ca.pem\"\ncert = \"client.pem\"\nkey = \"client-key.pem\"\n";
    let sc = scenario(
        d,
        &[
            "--tls-cert",
            &server_pem,
            "--tls-key",
            &server_key_pem,
            "--client-ca",
            &ca_pem,
        ],
        "",
        &format!("duration = \"1s\"\n{tls}"),
    );
    let text = std::fs::read_to_string(&sc)
        .unwrap()
        .replace("\"http://", "\"https://");
    std::fs::write(&sc, &text).unwrap();
    let (code, v, out) = run(&[&sc]);
    assert_eq!(code, 0, "{text}\n{out}\n{v:#}");
    assert!(v["target"].as_str().unwrap().starts_with("https://"));
    assert!(v["pipelines"][0]["ok"].as_u64().unwrap() > 0);

    // Without the client certificate the server refuses the handshake: not healthy, ERROR.
    let no_client = text.replace("cert = \"client.pem\"\nkey = \"client-key.pem\"\n", "");
    std::fs::write(&sc, no_client).unwrap();
    let (code, v, _) = run(&[&sc]);
    assert_eq!(code, 2, "{v:#}");
    assert_eq!(v["verdict"], "ERROR");
}

#[cfg(unix)]
#[test]
fn ctrl_c_aborts_writes_reports_and_stops_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let sc = scenario(dir.path(), &[], "", "duration = \"60s\"");
    let json = dir.path().join("r.json");
    let mut child = Command::new(BIN)
        .args(["stress", &sc, "--json"])
        .arg(&json)
        .arg("--crash-dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The plain progress output announces the load phase: interrupt only after it began.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        let n = stderr.read_line(&mut line).unwrap();
        assert!(n > 0, "racegate ended before the load began");
        if line.contains("hammering") {
            break;
        }
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = wait_bounded(&mut child, Duration::from_secs(20));
    assert_eq!(status.code(), Some(130));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["verdict"], "ABORTED");
    assert!(v["duration_s"].as_f64().unwrap() < 60.0);
    // The managed target was stopped: its port no longer accepts connections.
    let target = v["target"].as_str().unwrap().trim_start_matches("http://");
    assert!(
        std::net::TcpStream::connect(target).is_err(),
        "{target} still up"
    );
}

#[test]
fn a_target_that_stops_answering_counts_as_a_crash() {
    // An unmanaged server (racegate cannot see its exit) killed once the load is running.
    let mut server = Command::new(BIN)
        .args([
            "sim-serve",
            "--listen",
            "127.0.0.1:0",
            "--dispatch",
            "gated",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first.trim().trim_start_matches("listening on ").to_string();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let mut child = Command::new(BIN)
        .args([
            "stress",
            "--target",
            &url,
            "--duration",
            "4s",
            "--workers",
            "2",
        ])
        .arg("--json")
        .arg(&json)
        .arg("--crash-dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "ended before the load"
        );
        if line.contains("hammering") {
            break;
        }
    }
    server.kill().unwrap();
    server.wait().unwrap();
    let status = wait_bounded(&mut child, Duration::from_secs(30));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(status.code(), Some(1), "{v:#}");
    let crashes = v["crashes"].as_array().unwrap();
    assert_eq!(crashes.len(), 1, "{v:#}");
    assert_eq!(crashes[0]["source"], "unresponsive");
    assert_eq!(crashes[0]["count"], 1);
    assert!(crashes[0]["signature"]
        .as_str()
        .unwrap()
        .starts_with("unresponsive:"));
}

#[test]
fn a_server_closing_idle_keep_alive_connections_is_not_an_error() {
    // Answers each connection once, with a keep-alive response, then closes it: what a server
    // with a short idle timeout or a per-connection request cap does.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming().take(500) {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        }
    });
    let (code, v, out) = run(&[
        "--target",
        &format!("http://{addr}"),
        "--duration",
        "10s",
        "--workers",
        "1",
        "--requests",
        "30",
    ]);
    assert_eq!(code, 0, "{out}\n{v:#}");
    assert_eq!(v["requests"], 30);
    assert_eq!(v["errors"], 0, "{v:#}");
}
