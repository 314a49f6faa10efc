//! The scenario the sim-server tests share: two pipelines (text and vision) against a managed
//! `racegate sim-serve` on a free loopback port.

use std::path::{Path, PathBuf};

/// `s` as a TOML (and JSON) string.
pub fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// A scenario whose target is a managed `racegate sim-serve` on a free port, started with
/// `sim_flags` after `--work-us 200`; `duration` is the load's, `extra` ends `[target_process]`.
pub fn managed_scenario(dir: &Path, duration: &str, sim_flags: &[&str], extra: &str) -> PathBuf {
    let mut cmd = vec![
        q(env!("CARGO_BIN_EXE_racegate")),
        q("sim-serve"),
        q("--listen"),
        q("127.0.0.1:{port}"),
        q("--work-us"),
        q("200"),
    ];
    cmd.extend(sim_flags.iter().map(|f| q(f)));
    let text = format!(
        r#"target = "http://127.0.0.1:{{port}}"
duration = "{duration}"
grace = "1s"

[[pipeline]]
name = "text"
workers = 4
path = "/v1/chat/completions"
json = {{ model = "sim", messages = [{{ role = "user", content = "Say hi" }}], max_tokens = 4 }}
check = "consistent"
timeout = "5s"

[[pipeline]]
name = "vision"
workers = 4
path = "/v1/chat/completions"
body_file = "vision.json"
check = "consistent"
timeout = "5s"

[target_process]
command = [{}]
health = "/healthz"
startup_timeout = "20s"
{extra}
"#,
        cmd.join(", ")
    );
    std::fs::write(
        dir.join("vision.json"),
        r#"{"model":"sim","max_tokens":4,"messages":[{"role":"user","content":[{"type":"text","text":"What is this?"},{"type":"image_url","image_url":{"url":"{{png_1x1_data_url}}"}}]}]}"#,
    )
    .unwrap();
    let path = dir.join("scenario.toml");
    std::fs::write(&path, text).unwrap();
    path
}
