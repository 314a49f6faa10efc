//! Test harness: the server as a child process, a minimal HTTP/1.1 client (plain and TLS), and
//! a bounded load generator. Every wait has a timeout; nothing sleeps to synchronize.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use racegate_sim::server::api;

pub const BIN: &str = env!("CARGO_BIN_EXE_racegate-sim");

/// A server child process.
pub struct Server {
    pub addr: SocketAddr,
    pub https: bool,
    pid: i32,
    exited: Arc<AtomicBool>,
    status: mpsc::Receiver<ExitStatus>,
    stderr: mpsc::Receiver<String>,
    reaped: Option<ExitStatus>,
}

impl Server {
    /// Start `racegate-sim serve --listen 127.0.0.1:0 ARGS` and read the port from the first
    /// stdout line.
    pub fn start(args: &[&str]) -> Server {
        let mut child: Child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn racegate-sim");
        let pid = child.id() as i32;
        let stdout = child.stdout.take().unwrap();
        let mut stderr_pipe = child.stderr.take().unwrap();
        let (line_tx, line_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = line_tx.send(line);
            }
            for _ in lines {}
        });
        let (err_tx, err_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr_pipe.read_to_string(&mut text);
            let _ = err_tx.send(text);
        });
        let exited = Arc::new(AtomicBool::new(false));
        let (st_tx, st_rx) = mpsc::channel();
        let flag = Arc::clone(&exited);
        std::thread::spawn(move || {
            if let Ok(status) = child.wait() {
                flag.store(true, Ordering::SeqCst);
                let _ = st_tx.send(status);
            }
        });
        let line = line_rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                let err = err_rx
                    .recv_timeout(Duration::from_secs(5))
                    .unwrap_or_default();
                panic!("server printed no first line; stderr: {err}")
            });
        let (https, rest) = if let Some(r) = line.strip_prefix("listening on https://") {
            (true, r)
        } else if let Some(r) = line.strip_prefix("listening on http://") {
            (false, r)
        } else {
            panic!("unexpected first line `{line}`")
        };
        Server {
            addr: rest.parse().expect("address in first line"),
            https,
            pid,
            exited,
            status: st_rx,
            stderr: err_rx,
            reaped: None,
        }
    }

    pub fn has_exited(&self) -> bool {
        self.exited.load(Ordering::SeqCst)
    }

    pub fn exited_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.exited)
    }

    /// Wait up to `timeout` for the process to end on its own.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.reaped.is_none() {
            self.reaped = self.status.recv_timeout(timeout).ok();
        }
        self.reaped
    }

    /// Kill (if running) and return everything it wrote to stderr.
    pub fn stop(&mut self) -> String {
        if self.wait(Duration::ZERO).is_none() {
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_raw(self.pid).unwrap(),
                rustix::process::Signal::KILL,
            );
            self.wait(Duration::from_secs(10));
        }
        self.stderr
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.reaped.is_none() && !self.has_exited() {
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_raw(self.pid).unwrap(),
                rustix::process::Signal::KILL,
            );
        }
    }
}

/// An HTTP response: status, headers (lowercased names), decoded body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn parse_response(raw: &[u8]) -> std::io::Result<Response> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let end = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| bad("bad chunk"))?;
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&rest[..end])
                    .split(';')
                    .next()
                    .unwrap()
                    .trim(),
                16,
            )
            .map_err(|_| bad("bad chunk size"))?;
            rest = &rest[end + 2..];
            if size == 0 {
                break;
            }
            if rest.len() < size + 2 {
                return Err(bad("truncated chunk"));
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body = out;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn request_bytes(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

/// One request over a fresh plain connection.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    stream.set_write_timeout(Some(Duration::from_secs(20)))?;
    stream.write_all(&request_bytes(method, path, body))?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
}

pub fn post(addr: SocketAddr, body: &[u8]) -> std::io::Result<Response> {
    request(addr, "POST", "/v1/chat/completions", body)
}

/// One request over a fresh TLS connection.
pub fn request_tls(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<Response> {
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    tcp.set_read_timeout(Some(Duration::from_secs(20)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(20)))?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(&request_bytes(method, path, body))?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // The server closes without close_notify after `Connection: close` on some paths.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e),
    }
    parse_response(&raw)
}

pub fn png_data_url(width: u32, height: u32, fill: u8) -> String {
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, width, height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&vec![fill; (width * height * 3) as usize])
            .unwrap();
    }
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

pub fn text_body(prompt: &str, tokens: u32) -> Vec<u8> {
    serde_json::json!({
        "model": "sim",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": tokens,
    })
    .to_string()
    .into_bytes()
}

pub fn vision_body(prompt: &str, fill: u8, tokens: u32) -> Vec<u8> {
    serde_json::json!({
        "model": "sim",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": prompt},
            {"type": "image_url", "image_url": {"url": png_data_url(1, 1, fill)}},
        ]}],
        "max_tokens": tokens,
    })
    .to_string()
    .into_bytes()
}

/// The content a correct server answers for `body`.
pub fn expected(body: &[u8]) -> String {
    api::reference_answer(&api::parse_request(body).expect("valid request"))
}

/// What a load run saw.
#[derive(Debug, Default)]
pub struct LoadResult {
    pub ok: u64,
    pub wrong: u64,
    pub http_errors: u64,
    pub io_errors: u64,
    pub elapsed: Duration,
}

/// `workers` clients (even: text, odd: vision), each sending requests one after another until
/// `duration` passed, `max_requests` were sent in all, the server exited, or (with
/// `stop_on_wrong`) a wrong answer came back.
pub fn load(
    server: &Server,
    workers: usize,
    duration: Duration,
    max_requests: u64,
    stop_on_wrong: bool,
) -> LoadResult {
    load_mixed(server, workers, 0, duration, max_requests, stop_on_wrong)
}

/// The content of a streamed (SSE) answer: the concatenated deltas, or `None` when the stream
/// did not end with `[DONE]` or carried an error.
pub fn streamed_content(resp: &Response) -> Option<String> {
    let text = resp.text();
    let data: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    if data.last() != Some(&"[DONE]") {
        return None;
    }
    let mut out = String::new();
    for d in &data[..data.len() - 1] {
        let chunk: serde_json::Value = serde_json::from_str(d).ok()?;
        if chunk.get("error").is_some() {
            return None;
        }
        if let Some(piece) = chunk["choices"][0]["delta"]["content"].as_str() {
            out.push_str(piece);
        }
    }
    Some(out)
}

/// As [`load`], with the first `streaming` workers asking for server-sent events.
pub fn load_mixed(
    server: &Server,
    workers: usize,
    streaming: usize,
    duration: Duration,
    max_requests: u64,
    stop_on_wrong: bool,
) -> LoadResult {
    let addr = server.addr;
    let exited = server.exited_flag();
    let start = Instant::now();
    let sent = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let result = Mutex::new(LoadResult::default());
    std::thread::scope(|s| {
        for w in 0..workers {
            let (sent, stop, result, exited) = (&sent, &stop, &result, &exited);
            s.spawn(move || {
                let mut i = 0u32;
                while start.elapsed() < duration
                    && !stop.load(Ordering::SeqCst)
                    && !exited.load(Ordering::SeqCst)
                    && sent.fetch_add(1, Ordering::SeqCst) < max_requests
                {
                    let prompt = format!("worker {w} request {i}");
                    let body = if w % 2 == 0 {
                        text_body(&prompt, 4)
                    } else {
                        vision_body(&prompt, (i % 251) as u8, 4)
                    };
                    i += 1;
                    let streams = w < streaming;
                    let sent_body = if streams {
                        let mut v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                        v["stream"] = true.into();
                        v.to_string().into_bytes()
                    } else {
                        body.clone()
                    };
                    let outcome = post(addr, &sent_body);
                    let mut r = result.lock().unwrap();
                    match outcome {
                        Ok(resp) if resp.status == 200 => {
                            let content = if streams {
                                streamed_content(&resp).unwrap_or_default()
                            } else {
                                resp.json()["choices"][0]["message"]["content"]
                                    .as_str()
                                    .unwrap_or_default()
                                    .to_owned()
                            };
                            if content == expected(&body) {
                                r.ok += 1;
                            } else {
                                r.wrong += 1;
                                if stop_on_wrong {
                                    stop.store(true, Ordering::SeqCst);
                                }
                            }
                        }
                        Ok(_) => r.http_errors += 1,
                        Err(_) => r.io_errors += 1,
                    }
                }
            });
        }
    });
    let mut r = result.into_inner().unwrap();
    r.elapsed = start.elapsed();
    r
}
