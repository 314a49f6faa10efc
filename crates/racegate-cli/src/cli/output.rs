//! Where reports go. Every report flag (`--json`, `--markdown`, `--junit`) of every subcommand
//! takes a file or `-` for stdout, is checked before the run (a missing folder is a usage error
//! now, not a lost report after a half-hour run), and is written the same way: a closed stdout
//! (`| head`) is not an error, and one output that cannot be written does not stop the others.

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::exit::CliError;

/// A report destination: a file, or stdout for `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// `-`
    Stdout,
    /// A file, created or truncated.
    File(PathBuf),
}

impl Output {
    /// The clap value parser of every report flag.
    pub fn parse(s: &str) -> Result<Output, String> {
        match s {
            "" => Err("give a file name, or `-` for stdout".into()),
            "-" => Ok(Output::Stdout),
            path => Ok(Output::File(PathBuf::from(path))),
        }
    }

    /// Whether this is stdout.
    pub fn is_stdout(&self) -> bool {
        matches!(self, Output::Stdout)
    }

    /// A file's folder must exist; checked before the run.
    ///
    /// # Errors
    /// A usage error naming the flag and the folder.
    pub fn check(&self, flag: &str) -> Result<(), CliError> {
        let Output::File(path) = self else {
            return Ok(());
        };
        match path.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(dir) if !dir.is_dir() => Err(CliError::usage(format!(
                "`{flag} {}`: folder `{}` does not exist",
                path.display(),
                dir.display()
            ))),
            _ => Ok(()),
        }
    }

    /// Write with `f`.
    ///
    /// # Errors
    /// The file cannot be created or written (a closed stdout is fine); the message names it.
    pub fn write(&self, f: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<(), CliError> {
        let result = match self {
            Output::Stdout => {
                let mut out = io::stdout().lock();
                f(&mut out).and_then(|()| out.flush())
            }
            Output::File(path) => write_file(path, f),
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) if self.is_stdout() && e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            Err(e) => Err(CliError::other(format!("cannot write `{self}`: {e}"))),
        }
    }
}

fn write_file(path: &Path, f: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
    let mut file = io::BufWriter::new(std::fs::File::create(path)?);
    f(&mut file)?;
    file.flush()
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Stdout => f.write_str("stdout"),
            Output::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A reporter, as the function that writes a report of type `R`.
pub type Writer<R> = fn(&R, &mut dyn Write) -> io::Result<()>;

/// The report outputs one command was given, by flag.
#[derive(Debug, Default)]
pub struct Outputs<'a> {
    list: Vec<(&'static str, &'a Output)>,
}

impl<'a> Outputs<'a> {
    /// The outputs given, as `(flag, value)`; flags not given are `None`.
    pub fn new(given: impl IntoIterator<Item = (&'static str, Option<&'a Output>)>) -> Outputs<'a> {
        Outputs {
            list: given
                .into_iter()
                .filter_map(|(flag, o)| o.map(|o| (flag, o)))
                .collect(),
        }
    }

    /// Check every one before the run.
    ///
    /// # Errors
    /// The first output whose folder does not exist.
    pub fn check(&self) -> Result<(), CliError> {
        self.list.iter().try_for_each(|(flag, o)| o.check(flag))
    }

    /// Whether a report goes to stdout; then the terminal summary does not, so that stdout
    /// stays machine-readable.
    pub fn to_stdout(&self) -> bool {
        self.list.iter().any(|(_, o)| o.is_stdout())
    }

    /// The output given for `flag`.
    pub fn get(&self, flag: &str) -> Option<&'a Output> {
        self.list.iter().find(|(f, _)| *f == flag).map(|(_, o)| *o)
    }

    /// Write a command's report: `terminal` on stdout unless a report goes there, then each
    /// flag given with its writer. Every write is attempted; the first error is returned.
    ///
    /// # Errors
    /// The first output that could not be written.
    pub fn write<R>(
        &self,
        report: &R,
        terminal: Writer<R>,
        by_flag: &[(&str, Writer<R>)],
    ) -> Result<(), CliError> {
        let terminal = (!self.to_stdout()).then(|| Output::Stdout.write(|w| terminal(report, w)));
        let files = by_flag
            .iter()
            .filter_map(|(flag, writer)| self.get(flag).map(|o| o.write(|w| writer(report, w))));
        write_all(terminal.into_iter().chain(files))
    }
}

/// Run every write, even after one failed; return the first error.
///
/// # Errors
/// The first write that failed.
pub fn write_all(writes: impl IntoIterator<Item = Result<(), CliError>>) -> Result<(), CliError> {
    let mut first = None;
    for w in writes {
        if let Err(e) = w {
            eprintln!("racegate: error: {e}");
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dash_is_stdout_and_missing_folders_are_caught_before_the_run() {
        assert_eq!(Output::parse("-"), Ok(Output::Stdout));
        assert!(Output::parse("").is_err());
        let dir = tempfile::tempdir().unwrap();
        let ok = Output::parse(dir.path().join("r.json").to_str().unwrap()).unwrap();
        ok.check("--json").unwrap();
        let bad = Output::File(dir.path().join("nope/r.json"));
        let e = bad.check("--json").unwrap_err().to_string();
        assert!(
            e.contains("`--json ") && e.contains("does not exist"),
            "{e}"
        );
        Output::Stdout.check("--json").unwrap();
        Output::File("r.json".into()).check("--json").unwrap();
    }

    #[test]
    fn writes_files_and_names_them_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.txt");
        Output::File(path.clone())
            .write(|w| w.write_all(b"hello"))
            .unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "hello");
        let e = Output::File(dir.path().join("nope/r.txt"))
            .write(|w| w.write_all(b"x"))
            .unwrap_err();
        assert!(e.to_string().contains("nope/r.txt"), "{e}");
    }

    #[test]
    fn every_failed_write_is_reported_and_the_first_returned() {
        let r = write_all([
            Ok(()),
            Err(CliError::other("two")),
            Ok(()),
            Err(CliError::other("four")),
        ]);
        assert_eq!(r.unwrap_err().to_string(), "two");
        write_all([Ok(()), Ok(())]).unwrap();
    }
}
