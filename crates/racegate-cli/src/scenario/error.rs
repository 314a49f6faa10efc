//! Errors of scenarios: each names the file, line, column and key, or the setting given outside
//! the file. No flag names here: `cli/` renders a [`Setting`] as its flag.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A value given for the scenario outside its file (by the command line, or by `compare` and
/// `demo` for the scenarios they run). It replaces the file's value and is checked by the same
/// rules; an error about it names the setting, and the caller says how it was given (`cli/`
/// names the flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Setting {
    /// The target URL.
    Target,
    /// The run's length.
    Duration,
    /// The bound on the total number of requests.
    Requests,
    /// Workers per pipeline, for every pipeline.
    Workers,
    /// Crash-report folders (replace the file's and the OS defaults).
    CrashDirs,
    /// Crash-report file-name globs (replace the file's and the defaults).
    CrashPatterns,
    /// Accept a target that is not a loopback address.
    AllowRemote,
    /// Run the full duration even when the target is down for good.
    KeepGoing,
}

impl Setting {
    /// The scenario's own name for it (the file key where there is one).
    pub fn name(self) -> &'static str {
        match self {
            Setting::Target => "target",
            Setting::Duration => "duration",
            Setting::Requests => "requests",
            Setting::Workers => "workers",
            Setting::CrashDirs => "crash.dirs",
            Setting::CrashPatterns => "crash.patterns",
            Setting::AllowRemote => "allow_remote",
            Setting::KeepGoing => "keep_going",
        }
    }
}

/// Where the offending value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// A key of the scenario file, as a path (`pipeline[1].workers`).
    File(String),
    /// A value given outside the file.
    Given(Setting),
}

/// One piece of a hint: words, or the name of a setting (which the caller renders its way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HintPart {
    /// Plain words.
    Text(String),
    /// A setting, e.g. "give `allow_remote`" (`--allow-remote` on the command line).
    Setting(Setting),
}

/// A scenario that cannot be used. `racegate` exits 2 (ERROR) on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    /// The scenario file, when there is one.
    pub file: Option<PathBuf>,
    /// 1-based line of the offending key or value.
    pub line: Option<u32>,
    /// 1-based column.
    pub column: Option<u32>,
    /// The key, or the setting given outside the file.
    pub key: Option<Key>,
    /// What is wrong, lowercase.
    pub message: String,
    /// How to fix it, when there is something useful to say.
    pub hint: Option<Vec<HintPart>>,
}

impl ScenarioError {
    /// An error about a value given outside the file.
    pub(crate) fn given(setting: Setting, message: impl Into<String>) -> ScenarioError {
        ScenarioError {
            file: None,
            line: None,
            column: None,
            key: Some(Key::Given(setting)),
            message: message.into(),
            hint: None,
        }
    }

    /// This error with a hint.
    pub(crate) fn with_hint(mut self, hint: Vec<HintPart>) -> ScenarioError {
        self.hint = Some(hint);
        self
    }

    /// The message with settings named by `name` (quoted as it likes): `cli/` names each by
    /// its flag.
    pub fn render(&self, name: &dyn Fn(Setting) -> String) -> String {
        let mut out = String::new();
        match (&self.file, self.line) {
            (Some(file), Some(line)) => {
                out.push_str(&format!("{}:{line}", file.display()));
                if let Some(col) = self.column {
                    out.push_str(&format!(":{col}"));
                }
                out.push_str(": ");
            }
            (Some(file), None) => out.push_str(&format!("{}: ", file.display())),
            (None, _) => {}
        }
        match &self.key {
            Some(Key::File(key)) => out.push_str(&format!("`{key}`: ")),
            Some(Key::Given(s)) => out.push_str(&format!("{}: ", name(*s))),
            None => {}
        }
        out.push_str(&self.message);
        if let Some(hint) = &self.hint {
            out.push_str("\n  hint: ");
            for part in hint {
                match part {
                    HintPart::Text(t) => out.push_str(t),
                    HintPart::Setting(s) => out.push_str(&name(*s)),
                }
            }
        }
        out
    }
}

/// Shorthand for hint pieces.
pub(crate) fn text(s: impl Into<String>) -> HintPart {
    HintPart::Text(s.into())
}

impl std::error::Error for ScenarioError {}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(&|s| format!("`{}`", s.name())))
    }
}

/// Locates errors in one source text.
pub(crate) struct Locator<'a> {
    pub file: Option<&'a Path>,
    pub src: &'a str,
}

impl Locator<'_> {
    pub fn error(
        &self,
        span: Option<Range<usize>>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ScenarioError {
        let (line, column) = match span {
            Some(span) => {
                let (l, c) = line_col(self.src, span.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        ScenarioError {
            file: self.file.map(Path::to_path_buf),
            line,
            column,
            key: Some(Key::File(key.into())),
            message: message.into(),
            hint: None,
        }
    }

    /// Turn a TOML/serde error into one that names the key at its position.
    pub fn toml_error(&self, err: &toml::de::Error) -> ScenarioError {
        let span = err.span();
        let (line, column) = match &span {
            Some(s) => {
                let (l, c) = line_col(self.src, s.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        let mut message = err.message().trim().to_string();
        if message.contains("untagged enum RawCheck") {
            message = "expected \"consistent\", \"none\", { pointer = \"/a\", equals = VALUE } or { regex = \"...\" }".into();
        }
        let key = span
            .and_then(|s| key_path_at(self.src, s.start))
            .map(Key::File);
        ScenarioError {
            file: self.file.map(Path::to_path_buf),
            line,
            column,
            key,
            message,
            hint: None,
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(src: &str, offset: usize) -> (u32, u32) {
    let mut offset = offset.min(src.len());
    while !src.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(column).unwrap_or(u32::MAX),
    )
}

/// The dotted key path (`pipeline[1].workers`, `crash.dirs`) of the key written on the line
/// that holds `offset`, following `[table]` and `[[array]]` headers above it. Best effort: it
/// only reads headers and `key =` prefixes, which is what scenario files use.
pub(crate) fn key_path_at(src: &str, offset: usize) -> Option<String> {
    let mut table = String::new();
    let mut array_counts: std::collections::HashMap<String, usize> = Default::default();
    let mut pos = 0usize;
    for line in src.split_inclusive('\n') {
        let start = pos;
        pos += line.len();
        let t = line.trim();
        if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim().to_string();
            let n = array_counts.entry(name.clone()).or_insert(0);
            table = format!("{name}[{n}]");
            *n += 1;
        } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            table = name.trim().to_string();
        }
        if offset < pos || pos == src.len() {
            let _ = start;
            let key = t
                .split_once('=')
                .map(|(k, _)| k.trim().trim_matches('"').to_string())
                .filter(|k| {
                    !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
                });
            return match (table.is_empty(), key) {
                (true, Some(k)) => Some(k),
                (false, Some(k)) => Some(format!("{table}.{k}")),
                (false, None) => Some(table),
                (true, None) => None,
            };
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_follow_headers() {
        let src = "target = 1\n[[pipeline]]\nname = \"a\"\n[[pipeline]]\nworkers = \"x\"\n[crash]\ndirs = 3\n";
        assert_eq!(key_path_at(src, 2).as_deref(), Some("target"));
        let w = src.find("workers").unwrap() + 10;
        assert_eq!(key_path_at(src, w).as_deref(), Some("pipeline[1].workers"));
        let d = src.find("dirs").unwrap();
        assert_eq!(key_path_at(src, d).as_deref(), Some("crash.dirs"));
        assert_eq!(line_col(src, w), (5, 11));
    }
}
