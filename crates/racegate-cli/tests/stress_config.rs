//! Bad scenario files and flags: exit 2 and an error naming the file, line and key. Nothing is
//! started: these runs end before any network traffic.

use assert_cmd::Command;
use predicates::prelude::*;

fn racegate() -> Command {
    let mut c = Command::cargo_bin("racegate").unwrap();
    c.timeout(std::time::Duration::from_secs(30));
    c
}

const GOOD: &str = r#"target = "http://127.0.0.1:9"
duration = "1s"

[[pipeline]]
name = "text"
workers = 2
path = "/v1/chat/completions"
"#;

fn write(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let p = dir.join("bad.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), &format!("{GOOD}wokers = 4\n"));
    racegate()
        .arg("stress")
        .arg(&p)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("bad.toml:8:"))
        .stderr(predicate::str::contains("wokers"));
}

#[test]
fn wrong_type_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        &GOOD.replace("workers = 2", "workers = \"two\""),
    );
    racegate()
        .arg("stress")
        .arg(&p)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("bad.toml:6:"))
        .stderr(predicate::str::contains("pipeline[0].workers"));
}

#[test]
fn missing_target_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        &GOOD.replace("target = \"http://127.0.0.1:9\"\n", ""),
    );
    racegate()
        .arg("stress")
        .arg(&p)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("bad.toml"))
        .stderr(predicate::str::contains("`target`"));
}

#[test]
fn missing_body_file_names_the_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), &format!("{GOOD}body_file = \"nope.json\"\n"));
    racegate()
        .arg("stress")
        .arg(&p)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("bad.toml:8:"))
        .stderr(predicate::str::contains("pipeline[0].body_file"))
        .stderr(predicate::str::contains("nope.json"));
}

#[test]
fn bad_duration_names_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), &GOOD.replace("\"1s\"", "\"soon\""));
    racegate()
        .arg("stress")
        .arg(&p)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("bad.toml:2:"))
        .stderr(predicate::str::contains("`duration`"));
}

#[test]
fn remote_targets_need_allow_remote() {
    racegate()
        .args([
            "stress",
            "--target",
            "http://192.0.2.1:80",
            "--duration",
            "1s",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--allow-remote"));
}

#[test]
fn no_file_and_no_target_is_a_usage_error() {
    racegate()
        .arg("stress")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--target"));
}

#[test]
fn bad_flag_values_are_usage_errors() {
    racegate()
        .args([
            "stress",
            "--target",
            "http://127.0.0.1:9",
            "--duration",
            "0s",
        ])
        .assert()
        .code(2);
    racegate()
        .args(["stress", "--target", "http://127.0.0.1:9", "--workers", "0"])
        .assert()
        .code(2);
}

#[test]
fn shipped_examples_parse() {
    // Every example validates (their targets are never contacted: the report folder is missing,
    // which is checked before anything starts).
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut n = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        // The mTLS example names certificates the reader provides.
        if path.extension().is_some_and(|e| e == "toml") && !text.contains("\n[tls]") {
            n += 1;
            racegate()
                .arg("stress")
                .arg(&path)
                .args(["--json", "/nonexistent-racegate-dir/r.json"])
                .assert()
                .code(2)
                .stderr(predicate::str::contains("/nonexistent-racegate-dir"));
        }
    }
    assert!(n > 0, "no examples found in {}", examples.display());
}
