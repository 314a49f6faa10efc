//! A managed target that deadlocks (our fixture server: two handlers take two locks in opposite
//! orders) stops answering without dying. `racegate stress` takes every thread's stack before it
//! stops it, and keys the hang by where the threads are blocked. py-spy (pip-installed by the
//! test into `target/pytools-pyspy`) reads the Python frames; the tracer the native ones.
#![cfg(target_os = "linux")]

mod pytools;

use std::path::Path;
use std::process::Command;

fn scenario(dir: &Path, dispatch: &str) -> std::path::PathBuf {
    let server = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/mlx-server/server.py");
    let path = dir.join("hang.toml");
    let pipeline = |name: &str| {
        format!(
            "[[pipeline]]\nname = \"{name}\"\nworkers = 2\nmethod = \"POST\"\npath = \"/v1/{name}\"\njson = {{ text = \"hi\" }}\ntimeout = \"1s\"\n\n"
        )
    };
    std::fs::write(
        &path,
        format!(
            "target = \"http://127.0.0.1:{{port}}\"\nduration = \"30s\"\n\n{}{}[target_process]\ncommand = [\"python3\", {:?}, \"{{port}}\", \"--dispatch\", \"{dispatch}\"]\nhealth = \"/healthz\"\nrestart = false\nstartup_timeout = \"30s\"\n",
            pipeline("infer"),
            pipeline("embed"),
            server.display().to_string(),
        ),
    )
    .unwrap();
    path
}

fn run(dir: &Path, scenario: &Path, py_spy_bin: &Path) -> serde_json::Value {
    let json = dir.join("r.json");
    let path = std::env::join_paths(std::iter::once(py_spy_bin.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_racegate"))
        .arg("stress")
        .arg(scenario)
        .arg("--json")
        .arg(&json)
        .arg("--quiet")
        .env("PATH", path)
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| {
        panic!(
            "no report ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    serde_json::from_str(&text).unwrap()
}

#[test]
fn a_deadlocked_target_is_keyed_by_where_its_threads_block() {
    let tools = pytools::provision("pyspy", &["py-spy==0.4.3"]);
    let dir = tempfile::tempdir().unwrap();
    let r = run(
        dir.path(),
        &scenario(dir.path(), "deadlock"),
        &tools.join("bin"),
    );
    assert_eq!(r["verdict"], "FAIL", "{r:#}");
    let crashes = r["crashes"].as_array().unwrap();
    let hang = crashes
        .iter()
        .find(|c| c["signature"].as_str().unwrap().starts_with("hang: "))
        .unwrap_or_else(|| panic!("no hang group: {r:#}"));
    assert_eq!(
        hang["signature"], "hang: server.py!embed + server.py!infer",
        "{r:#}"
    );
    assert_eq!(hang["sources"][0], "stacks", "{r:#}");
    let threads = hang["threads"].as_array().unwrap();
    assert!(threads.len() >= 3, "every thread: {r:#}");
    // The native side came from the tracer, the Python side from py-spy.
    assert_eq!(hang["frames_from"], "tracer+py-spy", "{r:#}");
    assert!(
        threads.iter().any(|t| t["frames"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "native")),
        "{r:#}"
    );
    // racegate stopped the hung target itself: its exit is not a second crash.
    assert!(
        !crashes.iter().any(|c| c["sources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "exit_status")),
        "{r:#}"
    );
}
