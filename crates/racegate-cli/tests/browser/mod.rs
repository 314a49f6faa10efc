//! A real browser for the HTML reports: Debian's Chromium, headless, driven from the command
//! line (`--dump-dom` for the page as the browser parsed it, `--screenshot` for a picture,
//! `--enable-logging=stderr` for console messages). No DevTools client or npm package is
//! needed, and each run is one bounded process.
//!
//! The page must ask nothing of the network: Chromium is pointed at a proxy on loopback that
//! only notes the host of each request, so any `http(s)` fetch the page makes is seen (and
//! fails). Chromium's own service calls (component updates, its clock, accounts: Google hosts,
//! made even with background networking off) are told apart by host.

use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::provision::debian_program;

/// What the browser made of a page.
pub struct Rendered {
    /// The DOM after load, serialized.
    pub dom: String,
    /// Console messages (any level; a report has no script, so any is a fault).
    pub console: Vec<String>,
    /// Hosts the page asked for (Chromium's own service calls left out).
    pub fetches: Vec<String>,
    /// The screenshot.
    pub screenshot: PathBuf,
}

/// A proxy that notes the host of each request (`CONNECT host:443`, `GET http://host/...`),
/// then drops the connection.
struct NotingProxy {
    port: u16,
    hosts: Arc<Mutex<Vec<String>>>,
}

/// The host a proxy request line asks for.
fn requested_host(line: &str) -> String {
    let target = line.split_whitespace().nth(1).unwrap_or("");
    let target = target.split("://").nth(1).unwrap_or(target);
    let authority = target.split('/').next().unwrap_or("");
    authority
        .rsplit_once(':')
        .map_or(authority, |(h, _)| h)
        .to_string()
}

/// Chromium's own service hosts (updates, time, accounts), contacted whatever the page is.
fn chromium_service(host: &str) -> bool {
    ["google.com", "googleapis.com", "gstatic.com", "gvt1.com"]
        .iter()
        .any(|d| host == *d || host.ends_with(&format!(".{d}")))
}

impl NotingProxy {
    fn start() -> NotingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hosts = Arc::new(Mutex::new(Vec::new()));
        let seen = hosts.clone();
        // The thread ends with the test binary; it only ever accepts on loopback.
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { break };
                let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
                let mut buf = [0u8; 2048];
                let n = conn.read(&mut buf).unwrap_or(0);
                let text = String::from_utf8_lossy(&buf[..n]);
                let line = text.lines().next().unwrap_or("(nothing read)");
                seen.lock().unwrap().push(requested_host(line));
            }
        });
        NotingProxy { port, hosts }
    }
}

/// Run Chromium headless with `args` on `page`, bounded in time; returns stdout and stderr.
fn chromium(page: &Path, proxy: u16, args: &[String]) -> (String, String) {
    let bin = debian_program("chromium", "chromium");
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--proxy-server=127.0.0.1:{proxy}"))
        // Loopback too goes through the counting proxy.
        .arg("--proxy-bypass-list=<-loopback>")
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish with {} in 90 s", page.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (reader.join().unwrap(), err_reader.join().unwrap())
}

/// Render `page` in headless Chromium: its DOM, its console, its fetches, and a screenshot
/// kept as a test artifact under `target/tmp/html-reports/<name>.png`.
pub fn render(page: &Path, name: &str) -> Rendered {
    let proxy = NotingProxy::start();
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("html-reports");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join(format!("{name}.png"));
    let _ = std::fs::remove_file(&screenshot);
    let (dom, stderr) = chromium(page, proxy.port, &["--dump-dom".to_string()]);
    let (_, shot_err) = chromium(
        page,
        proxy.port,
        &[
            "--window-size=1100,2600".to_string(),
            format!("--screenshot={}", screenshot.display()),
        ],
    );
    let console = stderr
        .lines()
        .chain(shot_err.lines())
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    // Both browsers have exited, so their connections are all queued at the proxy, which
    // handles them in order: once it has noted one of ours, made last, it has noted them all.
    let mut sentinel = std::net::TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
    std::io::Write::write_all(
        &mut sentinel,
        b"GET http://racegate.sentinel/ HTTP/1.1\r\n\r\n",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let hosts = loop {
        let hosts = proxy.hosts.lock().unwrap().clone();
        if hosts.iter().any(|h| h == "racegate.sentinel") {
            break hosts;
        }
        assert!(
            Instant::now() < deadline,
            "the proxy never noted its sentinel"
        );
        std::thread::yield_now();
    };
    let fetches = hosts
        .into_iter()
        .filter(|h| h != "racegate.sentinel" && !chromium_service(h))
        .collect();
    Rendered {
        dom,
        console,
        fetches,
        screenshot,
    }
}

/// The `<svg>` elements of the page's charts, as the browser serialized them.
pub fn charts(dom: &str) -> Vec<&str> {
    dom.split("<div class=\"chart\">")
        .skip(1)
        .filter_map(|rest| rest.find("</svg>").map(|end| &rest[..end]))
        .collect()
}

/// Whether a chart draws at least one data line: a `polyline` in a series colour (the axes
/// and ticks are black) with at least two points.
pub fn has_data_line(svg: &str) -> bool {
    svg.split("<polyline").skip(1).any(|el| {
        let el = &el[..el.find('>').unwrap_or(el.len())];
        let attr = |name: &str| {
            el.split(&format!(" {name}=\""))
                .nth(1)
                .and_then(|v| v.split('"').next())
        };
        let stroke = attr("stroke").unwrap_or("");
        let points = attr("points").unwrap_or("");
        stroke != "#000000" && points.split_whitespace().count() >= 2
    })
}

/// How many pixels of the screenshot have exactly this colour.
pub fn pixels_of(png_path: &Path, rgb: (u8, u8, u8)) -> usize {
    let decoder = png::Decoder::new(std::fs::File::open(png_path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    buf[..info.buffer_size()]
        .chunks(channels)
        .filter(|p| p.len() >= 3 && (p[0], p[1], p[2]) == rgb)
        .count()
}
