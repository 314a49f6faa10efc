//! Stress scenarios: the TOML file plus values given outside it, parsed then validated into a
//! resolved [`Scenario`] with no side effects (nothing is started, nothing is connected; only
//! the scenario file and the body files it names are read).
//!
//! Resolution goes by section, each in its own file: [`target`] (and TLS), [`load`]
//! (duration, request bound, smoke probes, grace), [`pipeline`], [`process`] (the managed
//! target), [`crash`] (crash watching) and [`verdict`] thresholds. Values given outside the
//! file ([`Overrides`]) replace the file's and pass the same checks; an error about one names
//! its [`Setting`], never a flag: `cli/` says how it was given.
//!
//! A scenario keeps what the user gave beside what was derived from it, so `compare` and
//! `demo`, which run one scenario against targets they start themselves, aim it at each
//! through one function, [`Scenario::retarget`].
//!
//! ```
//! use racegate_cli::scenario::{Overrides, Scenario};
//! let src = r#"
//! target = "http://127.0.0.1:8080"
//! duration = "2s"
//! [[pipeline]]
//! name = "health"
//! path = "/healthz"
//! "#;
//! let s = Scenario::from_toml_str(src, None, &Overrides::default()).unwrap();
//! assert_eq!(s.pipelines[0].name, "health");
//! assert_eq!(s.duration, std::time::Duration::from_secs(2));
//! ```

pub mod crash;
mod error;
mod load;
pub mod model;
pub mod pipeline;
pub mod process;
pub mod target;
mod verdict;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use error::Locator;
pub use error::{HintPart, Key, ScenarioError, Setting};
use model::RawScenario;

pub use crash::{CrashGiven, CrashWatch};
pub use pipeline::{
    png_1x1_data_url, Check, Pipeline, OPENAI_CONTENT_POINTER, PNG_1X1_PLACEHOLDER,
};
pub use process::{program_of, TargetProcess};
pub use target::{Target, Tls};

use crate::verdict::Thresholds;

/// Values given for a scenario outside its file; each replaces the file's value (see
/// [`Setting`] for how errors name them).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// [`Setting::Target`]: the target URL.
    pub target: Option<String>,
    /// [`Setting::Duration`]: the run's length (more than zero).
    pub duration: Option<Duration>,
    /// [`Setting::Requests`]: a bound on the total number of requests (at least 1).
    pub requests: Option<u64>,
    /// [`Setting::Workers`]: workers for every pipeline (1 to 10,000).
    pub workers: Option<u32>,
    /// [`Setting::CrashDirs`]: crash-report folders (replace the file's and the OS defaults).
    pub crash_dirs: Vec<PathBuf>,
    /// [`Setting::CrashPatterns`]: report-name globs (replace the file's and the defaults).
    pub crash_patterns: Vec<String>,
    /// [`Setting::AllowRemote`]: accept a target that is not a loopback address.
    pub allow_remote: bool,
    /// [`Setting::KeepGoing`]: run the full duration even when the target is down for good.
    pub keep_going: bool,
}

/// A resolved, validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The file it came from.
    pub source: Option<PathBuf>,
    /// The service under test.
    pub target: Target,
    /// Hard bound on the run.
    pub duration: Duration,
    /// Optional bound on the total number of requests.
    pub requests: Option<u64>,
    /// Smoke probes per pipeline, sent one at a time before the load (file key `probes`).
    pub smoke_probes: u32,
    /// Time given to in-flight requests after `duration`.
    pub grace: Duration,
    /// TLS material.
    pub tls: Tls,
    /// Pipelines, at least one.
    pub pipelines: Vec<Pipeline>,
    /// Crash folders.
    pub crash: CrashWatch,
    /// The managed target, if any.
    pub target_process: Option<TargetProcess>,
    /// Verdict thresholds.
    pub verdict: Thresholds,
    /// End the load early (after a short settle) when the target is down for good: a managed
    /// target that exited and will not be restarted, or an unmanaged one the dead-target
    /// detector gave up on. `[target_process] stop_on_exit` (default true), unless
    /// [`Overrides::keep_going`].
    pub stop_on_exit: bool,
}

/// A program started as the managed target on a loopback port racegate picked: each build of
/// `compare`, each dispatch mode of `demo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retarget {
    /// Program and arguments; `{port}` is replaced by the port, which is also in `PORT`.
    pub command: Vec<String>,
    /// The port.
    pub port: u16,
    /// Health path below the target's path prefix (starts with `/`); default: the scenario's
    /// managed target's, else `/healthz`.
    pub health: Option<String>,
    /// Bound on becoming healthy; default: the scenario's, else 30 s.
    pub startup_timeout: Option<Duration>,
    /// Restart it when it exits; default: the scenario's, else no.
    pub restart: Option<bool>,
}

/// Health path of a retargeted scenario that names none.
pub const DEFAULT_HEALTH: &str = "/healthz";

impl Scenario {
    /// Read and resolve a scenario file.
    pub fn from_file(path: &Path, overrides: &Overrides) -> Result<Scenario, ScenarioError> {
        let src = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            file: Some(path.to_path_buf()),
            line: None,
            column: None,
            key: None,
            message: format!("cannot read the scenario file: {e}"),
            hint: None,
        })?;
        Scenario::from_toml_str(&src, Some(path), overrides)
    }

    /// Resolve scenario text; relative paths are taken from `file`'s folder.
    pub fn from_toml_str(
        src: &str,
        file: Option<&Path>,
        overrides: &Overrides,
    ) -> Result<Scenario, ScenarioError> {
        let loc = Locator { file, src };
        let raw: RawScenario = toml::from_str(src).map_err(|e| loc.toml_error(&e))?;
        resolve(raw, &loc, overrides)
    }

    /// The built-in scenario, for a target given in `overrides` and no file: a text pipeline
    /// and a 1x1 PNG vision pipeline on `/v1/chat/completions`, 4 workers each,
    /// `check = "consistent"`.
    pub fn builtin(overrides: &Overrides) -> Result<Scenario, ScenarioError> {
        let Some(target) = &overrides.target else {
            return Err(
                ScenarioError::given(Setting::Target, "no scenario file and no target").with_hint(
                    vec![
                        error::text("give a scenario file or "),
                        HintPart::Setting(Setting::Target),
                    ],
                ),
            );
        };
        let src = builtin_toml(target);
        let loc = Locator {
            file: None,
            src: &src,
        };
        let raw: RawScenario = toml::from_str(&src).map_err(|e| loc.toml_error(&e))?;
        resolve(raw, &loc, overrides)
    }

    /// Total workers across pipelines.
    pub fn total_workers(&self) -> u32 {
        self.pipelines.iter().map(|p| p.workers).sum()
    }

    /// This scenario against `to`, a program racegate starts on a port it picked. The one way
    /// `compare` and `demo` aim a scenario at their targets: what the user gave is kept (the
    /// file's `[target_process]` settings, crash folders and patterns), what was derived from
    /// the old target is derived again from the new one (the URL's port, the health path, the
    /// crash-report names narrowed to its program).
    pub fn retarget(&self, to: &Retarget) -> Scenario {
        let mut s = self.clone();
        let base = self.target_process.as_ref();
        s.target.port = Some(to.port);
        s.target.url = s.target.base_url(Some(to.port));
        let port = to.port.to_string();
        let mut env = base.map(|tp| tp.env.clone()).unwrap_or_default();
        env.retain(|(k, _)| k != "PORT");
        env.push(("PORT".into(), port.clone()));
        let health = match (&to.health, base) {
            (Some(h), _) => format!("{}{h}", s.target.base_path),
            (None, Some(tp)) => tp.health.clone(),
            (None, None) => format!("{}{DEFAULT_HEALTH}", s.target.base_path),
        };
        let tp = TargetProcess {
            command: to
                .command
                .iter()
                .map(|w| w.replace("{port}", &port))
                .collect(),
            health,
            restart: to.restart.unwrap_or(base.is_some_and(|tp| tp.restart)),
            startup_timeout: to
                .startup_timeout
                .unwrap_or(base.map_or(process::DEFAULT_STARTUP_TIMEOUT, |tp| tp.startup_timeout)),
            cwd: base.and_then(|tp| tp.cwd.clone()),
            env,
        };
        s.crash.dirs = CrashWatch::derive(&s.crash.given, program_of(&to.command).as_deref());
        s.target_process = Some(tp);
        s
    }
}

/// The TOML text of the built-in scenario.
pub fn builtin_toml(target: &str) -> String {
    let target = toml::Value::String(target.to_string());
    format!(
        r#"target = {target}
duration = "30s"

[[pipeline]]
name = "text"
workers = 4
method = "POST"
path = "/v1/chat/completions"
json = {{ model = "default", messages = [{{ role = "user", content = "Say hi" }}], max_tokens = 8 }}
check = "consistent"

[[pipeline]]
name = "vision"
workers = 4
method = "POST"
path = "/v1/chat/completions"
json = {{ model = "default", messages = [{{ role = "user", content = [{{ type = "text", text = "What is in this image?" }}, {{ type = "image_url", image_url = {{ url = "{PNG_1X1_PLACEHOLDER}" }} }}] }}], max_tokens = 8 }}
check = "consistent"
"#
    )
}

/// Every section in order; the target process comes before crash watching, whose defaults
/// depend on its program.
fn resolve(raw: RawScenario, loc: &Locator<'_>, o: &Overrides) -> Result<Scenario, ScenarioError> {
    let target = target::resolve(&raw, loc, o)?;
    let load = load::resolve(&raw, loc, o)?;
    let tls = target::resolve_tls(raw.tls.as_ref(), &target, loc)?;
    let pipelines = pipeline::resolve(&raw.pipelines, &target, loc, o)?;
    let target_process = process::resolve(&raw, &target, loc)?;
    let stop_on_exit = process::stop_on_exit(&raw, o);
    let program = target_process
        .as_ref()
        .map(|tp| tp.program().unwrap_or_default());
    let crash = crash::resolve(raw.crash.as_ref(), program.as_deref(), loc, o)?;
    let verdict = verdict::resolve(raw.verdict.as_ref(), loc)?;
    Ok(Scenario {
        source: loc.file.map(Path::to_path_buf),
        target,
        duration: load.duration,
        requests: load.requests,
        smoke_probes: load.smoke_probes,
        grace: load.grace,
        tls,
        pipelines,
        crash,
        target_process,
        verdict,
        stop_on_exit,
    })
}

fn span<T>(s: &Spanned<T>) -> Option<Range<usize>> {
    Some(s.span())
}

/// A duration value of the file: humantime, more than zero.
fn parse_duration(
    loc: &Locator<'_>,
    v: &Spanned<String>,
    key: &str,
) -> Result<Duration, ScenarioError> {
    let d = humantime::parse_duration(v.get_ref().trim()).map_err(|e| {
        let mut err = loc.error(
            span(v),
            key,
            format!("`{}` is not a duration: {e}", v.get_ref()),
        );
        err.hint = Some(vec![error::text(
            "write it like \"500ms\", \"30s\", \"5m\"",
        )]);
        err
    })?;
    if d.is_zero() {
        return Err(loc.error(span(v), key, "must be greater than zero"));
    }
    Ok(d)
}

/// A path of the file, relative to the file's folder.
fn resolve_path(file: Option<&Path>, p: &str) -> PathBuf {
    let p = PathBuf::from(p);
    if p.is_absolute() {
        return p;
    }
    match file.and_then(Path::parent) {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(p),
        _ => p,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The key of an error, as text: a file key, or `given <setting>`.
    fn key(e: &ScenarioError) -> Option<String> {
        match &e.key {
            Some(Key::File(k)) => Some(k.clone()),
            Some(Key::Given(s)) => Some(format!("given {}", s.name())),
            None => None,
        }
    }

    fn parse(src: &str) -> Result<Scenario, ScenarioError> {
        Scenario::from_toml_str(src, Some(Path::new("s.toml")), &Overrides::default())
    }

    const MIN: &str = "target = \"http://127.0.0.1:9\"\n[[pipeline]]\nname = \"a\"\npath = \"/\"\n";

    #[test]
    fn minimal_scenario_gets_defaults() {
        let s = parse(MIN).unwrap();
        assert_eq!(s.duration, Duration::from_secs(30));
        assert_eq!(s.pipelines[0].workers, 1);
        assert_eq!(s.pipelines[0].method, hyper::Method::GET);
        assert_eq!(s.target.base_url(None), "http://127.0.0.1:9");
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let e = parse(&format!("{MIN}wokers = 4\n")).unwrap_err();
        assert_eq!(e.line, Some(5), "{e}");
        assert!(e.to_string().contains("wokers"), "{e}");
        assert!(e.to_string().starts_with("s.toml:5:"), "{e}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let e = parse(&format!("{MIN}workers = \"four\"\n")).unwrap_err();
        assert_eq!(key(&e).as_deref(), Some("pipeline[0].workers"), "{e}");
        assert_eq!(e.line, Some(5));
    }

    #[test]
    fn stop_on_exit_defaults_on_and_the_file_or_flag_turn_it_off() {
        let managed =
            "target = \"http://127.0.0.1:{port}\"\n[[pipeline]]\nname = \"a\"\npath = \"/\"\n\
                       [target_process]\ncommand = [\"srv\", \"{port}\"]\n";
        assert!(parse(MIN).unwrap().stop_on_exit);
        assert!(parse(managed).unwrap().stop_on_exit);
        let off = format!("{managed}stop_on_exit = false\n");
        assert!(!parse(&off).unwrap().stop_on_exit);
        let keep_going = Overrides {
            keep_going: true,
            ..Default::default()
        };
        for src in [MIN, managed] {
            let s = Scenario::from_toml_str(src, None, &keep_going).unwrap();
            assert!(!s.stop_on_exit);
        }
        let e = parse(&format!("{managed}stop_on_exit = \"no\"\n")).unwrap_err();
        assert_eq!(
            key(&e).as_deref(),
            Some("target_process.stop_on_exit"),
            "{e}"
        );
        assert_eq!(e.line, Some(7), "{e}");
    }

    #[test]
    fn remote_targets_need_the_flag() {
        let src = MIN.replace("127.0.0.1", "10.1.2.3");
        let e = parse(&src).unwrap_err();
        assert!(e.to_string().contains("`allow_remote`"), "{e}");
        let as_flags = e.render(&|s| format!("--{}", s.name().replace('_', "-")));
        assert!(
            as_flags.contains("give --allow-remote to stress"),
            "{as_flags}"
        );
        let o = Overrides {
            allow_remote: true,
            ..Default::default()
        };
        Scenario::from_toml_str(&src, None, &o).unwrap();
        for ok in ["http://localhost:1", "http://[::1]:80", "https://127.8.0.1"] {
            target::parse_target(ok, false).unwrap();
        }
    }

    #[test]
    fn flags_override_the_file() {
        let o = Overrides {
            target: Some("http://127.0.0.1:7".into()),
            duration: Some(Duration::from_millis(1500)),
            workers: Some(3),
            ..Default::default()
        };
        let s = Scenario::from_toml_str(MIN, None, &o).unwrap();
        assert_eq!(s.target.port, Some(7));
        assert_eq!(s.duration, Duration::from_millis(1500));
        assert_eq!(s.pipelines[0].workers, 3);
    }

    #[test]
    fn builtin_has_text_and_vision() {
        let o = Overrides {
            target: Some("http://127.0.0.1:8080".into()),
            ..Default::default()
        };
        let s = Scenario::builtin(&o).unwrap();
        let names: Vec<_> = s.pipelines.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["text", "vision"]);
        assert!(s.pipelines.iter().all(|p| p.workers == 4));
        let vision = std::str::from_utf8(&s.pipelines[1].body).unwrap();
        assert!(
            vision.contains("data:image/png;base64,iVBORw0KGgo"),
            "{vision}"
        );
        assert!(!vision.contains("{{"));
        let e = Scenario::builtin(&Overrides::default()).unwrap_err();
        assert_eq!(key(&e).as_deref(), Some("given target"));
    }

    #[test]
    fn given_values_pass_the_file_values_checks_and_name_their_setting() {
        let cases: [(Overrides, &str); 4] = [
            (
                Overrides {
                    duration: Some(Duration::ZERO),
                    ..Default::default()
                },
                "given duration",
            ),
            (
                Overrides {
                    requests: Some(0),
                    ..Default::default()
                },
                "given requests",
            ),
            (
                Overrides {
                    workers: Some(10_001),
                    ..Default::default()
                },
                "given workers",
            ),
            (
                Overrides {
                    crash_patterns: vec!["[".into()],
                    ..Default::default()
                },
                "given crash.patterns",
            ),
        ];
        for (o, want) in cases {
            let e = Scenario::from_toml_str(MIN, Some(Path::new("s.toml")), &o).unwrap_err();
            assert_eq!(key(&e).as_deref(), Some(want), "{e}");
            assert_eq!(e.line, None, "a given value has no line in the file: {e}");
        }
    }

    fn retargetable(dirs: Option<Vec<PathBuf>>, patterns: Option<Vec<String>>) -> Scenario {
        let mut s = Scenario::builtin(&Overrides {
            target: Some("http://127.0.0.1:1".into()),
            ..Overrides::default()
        })
        .unwrap();
        s.crash.given = CrashGiven { dirs, patterns };
        s.crash.dirs = CrashWatch::derive(&s.crash.given, None);
        s
    }

    fn to(command: &[&str], port: u16) -> Retarget {
        Retarget {
            command: command.iter().map(|w| w.to_string()).collect(),
            port,
            health: None,
            startup_timeout: None,
            restart: None,
        }
    }

    #[test]
    fn a_retargeted_scenario_gets_the_port_in_command_url_and_env() {
        let s = retargetable(None, None);
        let r = s.retarget(&to(&["/opt/builds/server-a", "--port", "{port}"], 40123));
        let tp = r.target_process.unwrap();
        assert_eq!(tp.command, ["/opt/builds/server-a", "--port", "40123"]);
        assert!(tp.env.contains(&("PORT".into(), "40123".into())));
        assert_eq!(tp.health, "/healthz");
        assert!(!tp.restart);
        assert_eq!(r.target.base_url(None), "http://127.0.0.1:40123");
        // A program without `{port}` still learns it from `PORT`.
        let r = s.retarget(&to(&["./server-b"], 40124));
        let tp = r.target_process.unwrap();
        assert_eq!(tp.command, ["./server-b"]);
        assert!(tp.env.contains(&("PORT".into(), "40124".into())));
    }

    #[test]
    fn derived_crash_patterns_follow_the_new_program_and_given_ones_stay() {
        // Folders given without patterns: every report format, narrowed to the program.
        let s = retargetable(Some(vec!["/reports".into()]), None);
        assert_eq!(s.crash.dirs[0].patterns, ["*.ips", "*.crash", "core.*"]);
        let r = s.retarget(&to(&["/opt/builds/server-a"], 1));
        assert_eq!(
            r.crash.dirs[0].patterns,
            ["server-a*.ips", "*server-a*.crash", "core.server-a.*"]
        );
        let r = r.retarget(&to(&["./server-b"], 1));
        assert_eq!(
            r.crash.dirs[0].patterns[0], "server-b*.ips",
            "from the given, not from A"
        );
        // Patterns given: kept whatever the program.
        let s = retargetable(
            Some(vec!["/mine".into()]),
            Some(vec!["sanctum-*.ips".into()]),
        );
        let r = s.retarget(&to(&["./server-b"], 1));
        assert_eq!(r.crash.dirs[0].patterns, ["sanctum-*.ips"]);
        assert_eq!(r.crash.given, s.crash.given);
    }

    #[test]
    fn checks_parse() {
        let s = parse(&format!(
            "{MIN}check = {{ pointer = \"/a/0\", equals = 3 }}\n[[pipeline]]\nname = \"b\"\npath = \"/x\"\ncheck = {{ regex = \"^ok\" }}\n"
        ))
        .unwrap();
        assert!(matches!(s.pipelines[0].check, Check::PointerEquals { .. }));
        assert!(matches!(s.pipelines[1].check, Check::Regex(_)));
        let e = parse(&format!("{MIN}check = \"same\"\n")).unwrap_err();
        assert_eq!(key(&e).as_deref(), Some("pipeline[0].check"));
        let e = parse(&format!("{MIN}check = {{ pointr = \"/a\" }}\n")).unwrap_err();
        assert_eq!(key(&e).as_deref(), Some("pipeline[0].check"), "{e}");
        assert!(e.message.contains("regex"), "{e}");
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(src in "\\PC{0,400}") {
            let _ = parse(&src);
        }

        #[test]
        fn mutated_scenarios_never_panic(cut in 0usize..400, insert in "[\\[\\]=\"{}a-z0-9 \\n]{0,12}") {
            let base = format!("{MIN}workers = 2\nrate = 5.0\ncheck = \"consistent\"\n[crash]\ndirs = [\"/tmp\"]\n[verdict]\nmax_error_rate = 0.1\n");
            let mut cut = cut.min(base.len());
            while !base.is_char_boundary(cut) { cut -= 1; }
            let src = format!("{}{}{}", &base[..cut], insert, &base[cut..]);
            if let Err(e) = parse(&src) {
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }
}
