//! A real runtime crash, not our simulator: Apple MLX's CPU backend (from PyPI) evaluated from
//! several handler threads on one `new_thread_unsafe_stream`, served by our fixture server and
//! hammered by `racegate stress`. The signature must name MLX's own frame in `libmlx.so`.
//!
//! MLX is installed by the test into `target/pytools-mlx` (about 11 MB, a few seconds, once).
//! Every run ends at the first crash (`restart = false`), bounded by a 60 s duration.
#![cfg(target_os = "linux")]

mod pytools;

use std::path::Path;
use std::process::Command;

fn scenario(dir: &Path, pythonpath: &Path, dispatch: &str) -> std::path::PathBuf {
    let server = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/mlx-server/server.py");
    let path = dir.join("mlx.toml");
    std::fs::write(
        &path,
        format!(
            r#"target = "http://127.0.0.1:{{port}}"
duration = "60s"

[[pipeline]]
name = "infer"
workers = 12
method = "POST"
path = "/v1/infer"
json = {{ prompt = "hi" }}

[target_process]
command = ["python3", {server:?}, "{{port}}", "--dispatch", "{dispatch}"]
env = {{ PYTHONPATH = {pythonpath:?} }}
health = "/healthz"
restart = false
startup_timeout = "60s"
"#,
            server = server.display().to_string(),
            pythonpath = pythonpath.display().to_string(),
        ),
    )
    .unwrap();
    path
}

fn run(dir: &Path, scenario: &Path, frames: bool) -> serde_json::Value {
    let json = dir.join(if frames { "frames.json" } else { "plain.json" });
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_racegate"));
    cmd.arg("stress")
        .arg(scenario)
        .arg("--json")
        .arg(&json)
        .arg("--quiet");
    if !frames {
        cmd.env("RACEGATE_NATIVE_FRAMES", "0");
    }
    let out = cmd.output().unwrap();
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
fn the_mlx_stream_race_is_named_by_mlx_own_frame() {
    let mlx = pytools::provision("mlx", &["mlx[cpu]==0.32.4"]);
    let dir = tempfile::tempdir().unwrap();
    let sc = scenario(dir.path(), &mlx, "shared");

    let r = run(dir.path(), &sc, true);
    assert_eq!(r["verdict"], "FAIL", "{r:#}");
    assert_eq!(r["ended_by"], "target_exited", "{r:#}");
    let crash = &r["crashes"][0];
    let sig = crash["signature"].as_str().unwrap();
    assert!(
        sig.contains(" at libmlx.so!mlx::core::"),
        "the signature names MLX's frame: {r:#}"
    );
    assert_eq!(crash["frames_from"], "tracer", "{r:#}");
    let frames = crash["frames"].as_array().unwrap();
    assert!(
        frames.iter().any(|f| f["library"] == "libmlx.so"
            && f["function"]
                .as_str()
                .unwrap_or("")
                .starts_with("mlx::core::")),
        "{r:#}"
    );
    // When the frames arrived, next to when the crash was seen.
    assert!(crash["frames_at_s"].as_f64().is_some(), "{r:#}");
    assert!(crash["first_at_s"].as_f64().is_some(), "{r:#}");

    // Control: the same crash without frame capture is named as before, by the interpreter's
    // message or the signal, never by MLX's frame.
    let plain = run(dir.path(), &sc, false);
    assert_eq!(plain["verdict"], "FAIL", "{plain:#}");
    let crash = &plain["crashes"][0];
    assert!(
        !crash["signature"].as_str().unwrap().contains("mlx::core"),
        "{plain:#}"
    );
    assert!(
        crash["frames_unavailable"]
            .as_str()
            .unwrap_or("")
            .contains("RACEGATE_NATIVE_FRAMES"),
        "{plain:#}"
    );
}
