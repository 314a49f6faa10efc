//! The lock directory: where machine-wide gates keep their lock files, records and history.
//!
//! `RACEGATE_DIR` if set, else `$XDG_RUNTIME_DIR/racegate`, else `/tmp/racegate-<uid>`. It is
//! created with mode 0700 and refused when it is a symlink, not a directory, owned by another
//! user, or writable by group or others: anyone who can write there can plant files that make
//! our `status` lie or delete lock files under us.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::MachineGateError;

/// Environment variable naming the lock directory.
pub const DIR_ENV: &str = "RACEGATE_DIR";

/// A validated lock directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockDir {
    path: PathBuf,
}

impl LockDir {
    /// The lock directory from the environment (see the module docs), created if missing.
    pub fn from_env() -> Result<LockDir, MachineGateError> {
        LockDir::at(default_path(
            std::env::var_os(DIR_ENV),
            std::env::var_os("XDG_RUNTIME_DIR"),
            rustix::process::getuid().as_raw(),
        ))
    }

    /// Use `path` as the lock directory, creating it (mode 0700) if missing.
    pub fn at(path: impl Into<PathBuf>) -> Result<LockDir, MachineGateError> {
        let path = path.into();
        ensure_private_dir(&path)?;
        Ok(LockDir { path })
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory of one gate, validated like the root (created if missing).
    pub(crate) fn gate_dir(&self, gate: &str) -> Result<PathBuf, MachineGateError> {
        validate_gate_name(gate)?;
        let path = self.path.join(gate);
        ensure_private_dir(&path)?;
        Ok(path)
    }

    /// Names of the gates that have a directory here, sorted.
    pub fn gates(&self) -> Result<Vec<String>, MachineGateError> {
        let entries = fs::read_dir(&self.path).map_err(|source| MachineGateError::Dir {
            path: self.path.clone(),
            source,
        })?;
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| validate_gate_name(n).is_ok())
            .filter(|n| self.path.join(n).join(super::lock::QUEUE_FILE).exists())
            .collect();
        names.sort();
        Ok(names)
    }
}

fn default_path(explicit: Option<OsString>, runtime: Option<OsString>, uid: u32) -> PathBuf {
    if let Some(dir) = explicit.filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    // The XDG spec says to ignore a relative XDG_RUNTIME_DIR.
    if let Some(dir) = runtime.map(PathBuf::from).filter(|d| d.is_absolute()) {
        return dir.join("racegate");
    }
    PathBuf::from(format!("/tmp/racegate-{uid}"))
}

/// Check a gate name: it becomes a file name, so 1 to 64 letters, digits, `.`, `_` or `-`,
/// not starting with `.`.
pub fn validate_gate_name(name: &str) -> Result<(), MachineGateError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(MachineGateError::BadName {
            name: name.to_owned(),
        })
    }
}

fn ensure_private_dir(path: &Path) -> Result<(), MachineGateError> {
    let dir_err = |source: io::Error| MachineGateError::Dir {
        path: path.to_owned(),
        source,
    };
    match fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
    {
        Ok(()) => {}
        // `recursive` reports an existing non-directory as AlreadyExists; the checks below say which.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(dir_err(e)),
    }
    let md = fs::symlink_metadata(path).map_err(dir_err)?;
    if md.file_type().is_symlink() {
        return Err(MachineGateError::Symlink {
            path: path.to_owned(),
        });
    }
    if !md.is_dir() {
        return Err(MachineGateError::NotADirectory {
            path: path.to_owned(),
        });
    }
    let uid = rustix::process::getuid().as_raw();
    if md.uid() != uid {
        return Err(MachineGateError::ForeignOwner {
            path: path.to_owned(),
            owner: md.uid(),
            uid,
        });
    }
    if md.mode() & 0o022 != 0 {
        return Err(MachineGateError::Insecure {
            path: path.to_owned(),
            mode: md.mode() & 0o7777,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_path_prefers_explicit_then_runtime_then_tmp() {
        let p = |e: Option<&str>, r: Option<&str>| {
            default_path(e.map(Into::into), r.map(Into::into), 7)
        };
        assert_eq!(p(Some("/x"), Some("/run/user/7")), PathBuf::from("/x"));
        assert_eq!(
            p(Some(""), Some("/run/user/7")),
            PathBuf::from("/run/user/7/racegate")
        );
        assert_eq!(p(None, Some("relative")), PathBuf::from("/tmp/racegate-7"));
        assert_eq!(p(None, None), PathBuf::from("/tmp/racegate-7"));
    }

    #[test]
    fn gate_names_are_plain_file_names() {
        for ok in ["gpu", "gpu-0", "a.b_c"] {
            assert!(validate_gate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", ".hidden", "a/b", "a b", &"x".repeat(65)] {
            assert!(validate_gate_name(bad).is_err(), "{bad}");
        }
    }
}
