//! `racegate status`: text and `--json` against the documented schema (docs/machine-gate.md).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

fn racegate(lock_dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("racegate").unwrap();
    cmd.env("RACEGATE_DIR", lock_dir);
    cmd
}

fn status_json(lock_dir: &Path, gate: Option<&str>) -> Value {
    let mut cmd = racegate(lock_dir);
    cmd.args(["status", "--json"]);
    if let Some(g) = gate {
        cmd.args(["--gate", g]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Check `v` has exactly these keys, each satisfying its check: the schema is closed so that the
/// document and its description cannot drift apart unnoticed.
type Check<'a> = &'a dyn Fn(&Value) -> bool;

fn object(v: &Value, fields: &[(&str, Check<'_>)]) {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"));
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    let mut want: Vec<&str> = fields.iter().map(|(k, _)| *k).collect();
    keys.sort_unstable();
    want.sort_unstable();
    assert_eq!(keys, want, "fields of {v}");
    for (k, check) in fields {
        assert!(
            check(&obj[*k]),
            "field `{k}` has the wrong type: {}",
            obj[*k]
        );
    }
}

fn num(v: &Value) -> bool {
    v.is_number()
}
fn uint(v: &Value) -> bool {
    v.is_u64()
}
fn opt_uint(v: &Value) -> bool {
    v.is_null() || v.is_u64()
}
fn opt_num(v: &Value) -> bool {
    v.is_null() || v.is_number()
}
fn opt_str(v: &Value) -> bool {
    v.is_null() || v.is_string()
}
fn opt_words(v: &Value) -> bool {
    v.is_null() || v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
}
fn words(v: &Value) -> bool {
    v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
}
fn pcts(v: &Value) -> bool {
    object(
        v,
        &[("p50", &num), ("p90", &num), ("p99", &num), ("max", &num)],
    );
    true
}

fn check_schema(doc: &Value) {
    object(
        doc,
        &[
            ("schema_version", &|v| v == 1),
            ("lock_dir", &Value::is_string),
            ("generated_at_ms", &uint),
            ("gates", &Value::is_array),
        ],
    );
    for g in doc["gates"].as_array().unwrap() {
        object(
            g,
            &[
                ("name", &Value::is_string),
                ("capacity", &uint),
                ("slots", &uint),
                ("units_total", &uint),
                ("units_used", &uint),
                ("devices", &Value::is_array),
                ("holders", &Value::is_array),
                ("waiters", &Value::is_array),
                ("history", &|h| {
                    object(
                        h,
                        &[
                            ("count", &uint),
                            ("first_ms", &opt_uint),
                            ("last_ms", &opt_uint),
                            ("wait_ms", &pcts),
                            ("hold_ms", &pcts),
                        ],
                    );
                    true
                }),
            ],
        );
        for h in g["holders"].as_array().unwrap() {
            object(
                h,
                &[
                    ("lane", &uint),
                    ("pid", &opt_uint),
                    ("label", &opt_str),
                    ("command", &opt_words),
                    ("since_ms", &opt_uint),
                    ("held_ms", &opt_num),
                    ("units", &opt_uint),
                    ("devices", &words),
                ],
            );
        }
        for d in g["devices"].as_array().unwrap() {
            object(
                d,
                &[
                    ("id", &Value::is_string),
                    ("capacity", &uint),
                    ("used", &uint),
                    ("holder_lanes", &|v| {
                        v.as_array().is_some_and(|a| a.iter().all(Value::is_u64))
                    }),
                ],
            );
        }
        for w in g["waiters"].as_array().unwrap() {
            object(
                w,
                &[
                    ("position", &uint),
                    ("ticket", &uint),
                    ("pid", &opt_uint),
                    ("label", &opt_str),
                    ("command", &opt_words),
                    ("since_ms", &opt_uint),
                    ("waiting_ms", &opt_num),
                ],
            );
        }
    }
}

fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

#[test]
fn status_shows_holder_waiter_and_history_in_the_documented_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let empty = status_json(d, None);
    check_schema(&empty);
    assert_eq!(empty["gates"].as_array().unwrap().len(), 0);

    let ready = d.join("ready");
    let hold = format!("echo > {}; read line || true", ready.display());
    let mut holder = racegate(d)
        .args(["run", "--label", "trainer", "--", "sh", "-c", &hold])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || ready.exists()));
    let mut waiter = racegate(d)
        .args(["run", "--label", "bench", "--", "true"])
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        status_json(d, Some("gpu"))["gates"][0]["waiters"]
            .as_array()
            .is_some_and(|w| w.len() == 1)
    }));

    let doc = status_json(d, Some("gpu"));
    check_schema(&doc);
    let g = &doc["gates"][0];
    assert_eq!(g["name"], "gpu");
    assert_eq!(g["capacity"], 1);
    assert_eq!(g["slots"], g["capacity"], "the old name keeps its value");
    let h = &g["holders"][0];
    assert_eq!(h["pid"], holder.id());
    assert_eq!(h["label"], "trainer");
    assert_eq!(h["command"], serde_json::json!(["sh", "-c", hold]));
    assert_eq!(h["lane"], 0);
    let w = &g["waiters"][0];
    assert_eq!(w["pid"], waiter.id());
    assert_eq!(w["label"], "bench");
    assert_eq!(w["position"], 1);
    assert_eq!(w["command"], serde_json::json!(["true"]));

    let text = racegate(d).args(["status"]).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("gate gpu (capacity 1)"), "{text}");
    assert!(
        text.contains(&format!("pid {}", holder.id())) && text.contains("trainer"),
        "{text}"
    );
    assert!(text.contains("waiter") && text.contains("bench"), "{text}");

    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());
    assert!(waiter.wait().unwrap().success());
    let after = status_json(d, Some("gpu"));
    check_schema(&after);
    let g = &after["gates"][0];
    assert_eq!(g["holders"].as_array().unwrap().len(), 0);
    assert_eq!(g["history"]["count"], 2);
    assert!(
        g["history"]["wait_ms"]["max"].as_f64().unwrap() > 0.0,
        "the waiter's wait is logged"
    );
    let text = racegate(d).args(["status"]).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("history: 2 acquisitions") && text.contains("p99"),
        "{text}"
    );
}

#[test]
fn a_gate_nobody_used_is_reported_unknown_not_free() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let doc = status_json(d, Some("nosuch"));
    check_schema(&doc);
    assert_eq!(doc["gates"].as_array().unwrap().len(), 0, "{doc}");

    let out = racegate(d)
        .args(["status", "--gate", "nosuch"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("no gate `nosuch`"), "{text}");
    assert!(!text.contains("free"), "{text}");
    assert!(
        !d.join("nosuch").exists(),
        "status must not create the gate"
    );
}

/// A gate with a budget on devices: used/total, each holder's share and devices, and each
/// device's holders, in the documented schema.
#[test]
fn status_shows_shares_and_devices_in_the_documented_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ready = d.join("ready");
    let hold = format!("echo > {}; read line || true", ready.display());
    let mut holder = racegate(d)
        .args([
            "run",
            "--gate",
            "gpus",
            "--capacity",
            "80",
            "--devices",
            "0,1",
        ])
        .args(["--need", "20", "--label", "share", "--", "sh", "-c", &hold])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || ready.exists()));
    let doc = status_json(d, Some("gpus"));
    check_schema(&doc);
    let g = &doc["gates"][0];
    assert_eq!(
        (
            g["capacity"].as_u64(),
            g["units_total"].as_u64(),
            g["units_used"].as_u64()
        ),
        (Some(80), Some(160), Some(20))
    );
    let h = &g["holders"][0];
    assert_eq!(
        (h["units"].as_u64(), h["label"].as_str()),
        (Some(20), Some("share"))
    );
    assert_eq!(h["devices"], serde_json::json!(["0"]));
    assert_eq!(
        g["devices"],
        serde_json::json!([
            { "id": "0", "capacity": 80, "used": 20, "holder_lanes": [h["lane"]] },
            { "id": "1", "capacity": 80, "used": 0, "holder_lanes": [] },
        ])
    );
    let text = racegate(d)
        .args(["status", "--gate", "gpus"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("used    20 of 160 units"), "{text}");
    assert!(text.contains("20 units on 0"), "{text}");
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());
}
