//! The gates in a real Prometheus (Debian's `prometheus`, on loopback): it scrapes `/metrics`
//! of a sim server under load (`racegate stress` against `racegate sim-serve --dispatch
//! gated`), and its HTTP API shows the gate's series, with counts that grow. Also `racegate
//! status --format openmetrics` checked by `promtool check metrics` (the parser behind
//! node_exporter's textfile collector).
//!
//! Bounded: every wait polls with a deadline; every process is killed on drop.
#![cfg(unix)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

mod provision;
mod sim_server;
use sim_server::Server;

/// A child process killed (and reaped) on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` on loopback; the body, or `None` when nothing answers yet.
fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200")
        .then(|| body.to_string())
        .or_else(|| head.starts_with("HTTP/1.0 200").then(|| body.to_string()))
}

/// Poll `f` until it gives a value, for at most `limit`.
fn poll<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The instant vector of a PromQL query, as `(labels, value)`.
fn query(port: u16, promql: &str) -> Option<Vec<(Value, f64)>> {
    let mut encoded = String::new();
    for b in promql.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => encoded.push(b as char),
            _ => encoded.push_str(&format!("%{b:02X}")),
        }
    }
    let body = get(port, &format!("/api/v1/query?query={encoded}"))?;
    let doc: Value = serde_json::from_str(&body).ok()?;
    let result = doc["data"]["result"].as_array()?;
    Some(
        result
            .iter()
            .map(|r| {
                let v = r["value"][1].as_str().unwrap().parse().unwrap();
                (r["metric"].clone(), v)
            })
            .collect(),
    )
}

#[test]
fn prometheus_scrapes_the_gate_series_and_sees_them_grow() {
    let prometheus = provision::debian_program("prometheus", "prometheus");
    let server = Server::start(&["--dispatch", "gated"]);
    let port: u16 = server
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no port in `{}`", server.url));
    // The load: bounded in time by itself, killed at the end of the test if still running.
    let _load = Killed(
        Command::cargo_bin("racegate")
            .unwrap()
            .args(["stress", "--quiet", "--target"])
            .arg(format!("http://127.0.0.1:{port}"))
            .args(["--duration", "60s", "--workers", "2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: racegate-sim\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .unwrap();
    let web = free_port();
    let _prom = Killed(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{web}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let limit = Duration::from_secs(90);
    // Prometheus is up and has scraped the sim successfully.
    poll("a successful scrape", limit, || {
        let up = query(web, "up{job=\"racegate-sim\"}")?;
        (up.first()?.1 == 1.0).then_some(())
    });
    // The gate's series exist, one per pipeline label.
    let first = poll("the acquisition series of both labels", limit, || {
        let got = query(web, "racegate_gate_acquisitions_total{gate=\"gpu\"}")?;
        let of = |label: &str| {
            got.iter()
                .find(|(m, _)| m["label"] == label)
                .map(|(_, v)| *v)
        };
        Some((of("text")?, of("vision")?))
    });
    for series in [
        "racegate_gate_hold_seconds_bucket{gate=\"gpu\",label=\"text\",le=\"+Inf\"}",
        "racegate_gate_wait_seconds_count{gate=\"gpu\",label=\"vision\"}",
        "racegate_gate_holders{gate=\"gpu\"}",
        "racegate_gate_waiters{gate=\"gpu\"}",
        "racegate_gate_timeouts_total{gate=\"gpu\"}",
    ] {
        poll(series, limit, || {
            query(web, series).filter(|r| !r.is_empty()).map(|_| ())
        });
    }
    // ... and grow while the load goes on.
    poll("the counts to grow", limit, || {
        let got = query(
            web,
            "racegate_gate_acquisitions_total{gate=\"gpu\",label=\"text\"}",
        )?;
        (got.first()?.1 > first.0).then_some(())
    });
    // A real histogram: PromQL computes a quantile from its buckets.
    poll("a hold-time quantile", limit, || {
        let got = query(
            web,
            "histogram_quantile(0.99, sum by (le) (racegate_gate_hold_seconds_bucket{gate=\"gpu\"}))",
        )?;
        let v = got.first()?.1;
        (v.is_finite() && v > 0.0).then_some(())
    });
}

fn racegate_in(lock_dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("racegate").unwrap();
    cmd.env("RACEGATE_DIR", lock_dir);
    cmd
}

#[test]
fn status_openmetrics_passes_promtool_and_names_the_holder() {
    let promtool = provision::debian_program("promtool", "prometheus");
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // History first: one completed acquisition.
    assert!(racegate_in(d)
        .args(["run", "--gate", "gpu-0", "--", "true"])
        .status()
        .unwrap()
        .success());
    let ready = d.join("ready");
    let hold = format!("echo > {}; read line || true", ready.display());
    let mut holder = racegate_in(d)
        .args(["run", "--gate", "gpu-0", "--label", "trainer", "--"])
        .args(["sh", "-c", &hold])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    poll("the holder", Duration::from_secs(20), || {
        ready.exists().then_some(())
    });
    let out = racegate_in(d)
        .args(["status", "--format", "openmetrics"])
        .output()
        .unwrap();
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(
        text.contains(r#"racegate_machine_gate_holders{gate="gpu-0"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"racegate_machine_gate_history_acquisitions{gate="gpu-0"} 1"#));
    let file = d.join("racegate.prom");
    std::fs::write(&file, &text).unwrap();
    let check = |path: &Path| {
        Command::new(&promtool)
            .args(["check", "metrics"])
            .stdin(std::fs::File::open(path).unwrap())
            .output()
            .unwrap()
    };
    let checked = check(&file);
    assert!(
        checked.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    // Control: promtool does fail on broken text.
    let broken = d.join("broken.prom");
    std::fs::write(&broken, "racegate_machine_gate_holders{gate=\"x} 1\n").unwrap();
    assert!(!check(&broken).status.success());

    // And node_exporter's textfile collector reads it, typed, without an error.
    let exporter =
        provision::debian_program("prometheus-node-exporter", "prometheus-node-exporter");
    let textfiles = d.join("textfile");
    std::fs::create_dir(&textfiles).unwrap();
    std::fs::write(textfiles.join("racegate.prom"), &text).unwrap();
    let port = free_port();
    let _exporter = Killed(
        Command::new(exporter)
            .args(["--collector.disable-defaults", "--collector.textfile"])
            .arg(format!(
                "--collector.textfile.directory={}",
                textfiles.display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let scraped = poll("node_exporter's /metrics", Duration::from_secs(30), || {
        get(port, "/metrics")
    });
    assert!(
        scraped.contains("node_textfile_scrape_error 0"),
        "{scraped}"
    );
    assert!(
        scraped.contains("# TYPE racegate_machine_gate_holders gauge")
            && scraped.contains(r#"racegate_machine_gate_holders{gate="gpu-0"} 1"#),
        "{scraped}"
    );
}
