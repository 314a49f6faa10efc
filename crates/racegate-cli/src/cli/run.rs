//! `racegate run`: flags, their resolution into a [`RunConfig`], and the run.

use std::ffi::OsString;
use std::time::Duration;

use crate::exit::CliError;
use crate::gate_cmd::{self, GateError, RunConfig};

/// `racegate run`'s one-line description, shared by the full command tree and [`parse_run`].
pub const ABOUT: &str = "Run a command while holding a machine-wide gate";

use super::parse_duration_or_zero;
use crate::gate_cmd::DeviceChoice;

/// Run a command while holding a machine-wide gate.
///
/// Waits for the gate (in arrival order with every other process on this machine), runs the
/// command holding it, forwards SIGINT, SIGTERM and SIGHUP to the command, releases the gate
/// when the command ends, and exits with the command's status (128+N if a signal N killed it).
/// Exits 124 if `--timeout` passes first, naming who holds the gate.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The gate's name (shared by every process that names it).
    #[arg(long, default_value = "gpu", value_name = "NAME")]
    pub gate: String,

    /// Capacity of the gate in units (per device, with `--devices`): how many commands may
    /// hold it at once, or a budget they take shares of with `--need` (e.g. 80 GiB). Every user
    /// must agree.
    #[arg(long, visible_alias = "slots", default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=racegate::machine::MAX_CAPACITY as i64))]
    pub capacity: u32,

    /// Units to take of the capacity (default 1), on one device when the gate has devices;
    /// the command waits, in arrival order, until they are free.
    #[arg(long, value_name = "UNITS", conflicts_with = "gpus",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub need: Option<u32>,

    /// Take this many whole devices and run the command with `CUDA_VISIBLE_DEVICES`,
    /// `HIP_VISIBLE_DEVICES`, `ROCR_VISIBLE_DEVICES` and `RACEGATE_DEVICES` set to them.
    /// Discovers the devices unless `--devices` lists them.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub gpus: Option<u32>,

    /// The devices the gate spans: ids as `CUDA_VISIBLE_DEVICES` takes them (`0,1,2,3`), or
    /// `auto`: `CUDA_VISIBLE_DEVICES` when set, else `nvidia-smi -L`. Default: none (`auto`
    /// with `--gpus`). Every user must agree.
    #[arg(long, value_name = "LIST|auto", value_parser = parse_devices)]
    pub devices: Option<DeviceChoice>,

    /// Run this shell command first, without holding the gate (e.g. `cargo test --no-run`, a
    /// model download), and wait for the gate only once it succeeded (its failure status is
    /// racegate's).
    #[arg(long, value_name = "SHELL_CMD")]
    pub prepare: Option<String>,

    /// Give up waiting after this long (e.g. `30s`, `5m`); default: wait as long as it takes.
    #[arg(long, value_name = "DUR", value_parser = parse_duration_or_zero)]
    pub timeout: Option<Duration>,

    /// A label shown to others in `racegate status` and in their timeout messages.
    #[arg(long, value_name = "L")]
    pub label: Option<String>,

    /// The command to run and its arguments (after `--`).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<OsString>,
}

/// `--devices LIST|auto`.
fn parse_devices(s: &str) -> Result<DeviceChoice, String> {
    if s.trim() == "auto" {
        return Ok(DeviceChoice::Auto);
    }
    racegate::machine::parse_device_list(s)
        .map(DeviceChoice::List)
        .map_err(|e| e.to_string())
}

/// `racegate` with `run` as its only subcommand: the same top-level settings as
/// [`super::Cli`], so help, usage, version and errors read exactly as through the full tree
/// (a test compares them). Building clap's full command tree costs a quarter of a
/// `racegate run -- true` process; `run` wraps short commands, where that start-up shows.
#[derive(Debug, clap::Parser)]
#[command(name = "racegate", version, propagate_version = true)]
struct RunOnly {
    #[command(subcommand)]
    command: RunOnlyCommand,
}

#[derive(Debug, clap::Subcommand)]
enum RunOnlyCommand {
    #[command(about = ABOUT, long_about = None)]
    Run(RunArgs),
}

/// Parse a `racegate run ...` command line (`args[1]` must be `run`) without building the
/// other subcommands.
pub fn parse_run<I, T>(args: I) -> Result<RunArgs, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    use clap::Parser;
    let RunOnly {
        command: RunOnlyCommand::Run(args),
    } = RunOnly::try_parse_from(args)?;
    Ok(args)
}

impl RunArgs {
    /// The resolved config.
    pub fn config(self) -> RunConfig {
        RunConfig {
            gate: self.gate,
            capacity: self.capacity,
            need: self.need,
            gpus: self.gpus,
            devices: self.devices.unwrap_or_default(),
            prepare: self.prepare,
            timeout: self.timeout,
            label: self.label,
            command: self.command,
        }
    }
}

/// Run `racegate run`: the command's exit status, or 126/127 when it cannot be started (like a
/// shell).
pub fn run(args: RunArgs) -> Result<u8, CliError> {
    match gate_cmd::run(&args.config()) {
        Ok(code) => Ok(code),
        Err(e @ (GateError::NotStarted { code, .. } | GateError::PrepareFailed { code })) => {
            eprintln!("racegate: {e}");
            Ok(code)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    /// What a parse shows the user: the arguments, or the rendered error and its exit code.
    fn through_full_tree(argv: &[&str]) -> Result<String, (String, i32)> {
        match Cli::try_parse_from(argv) {
            Ok(Cli {
                command: Command::Run(a),
            }) => Ok(format!("{a:?}")),
            Ok(other) => panic!("not a run: {other:?}"),
            Err(e) => Err((e.render().to_string(), e.exit_code())),
        }
    }

    fn through_run_only(argv: &[&str]) -> Result<String, (String, i32)> {
        parse_run(argv)
            .map(|a| format!("{a:?}"))
            .map_err(|e| (e.render().to_string(), e.exit_code()))
    }

    #[test]
    fn slots_is_an_alias_of_capacity() {
        let by_alias = parse_run(["racegate", "run", "--slots", "3", "--", "true"]).unwrap();
        let by_name = parse_run(["racegate", "run", "--capacity", "3", "--", "true"]).unwrap();
        assert_eq!((by_alias.capacity, by_name.capacity), (3, 3));
    }

    #[test]
    fn device_lists_and_auto_parse() {
        let a = parse_run(["racegate", "run", "--devices", "auto", "--", "true"]).unwrap();
        assert_eq!(a.devices, Some(DeviceChoice::Auto));
        let l = parse_run(["racegate", "run", "--devices", "0, 2", "--", "true"]).unwrap();
        assert_eq!(
            l.devices,
            Some(DeviceChoice::List(vec!["0".into(), "2".into()]))
        );
        let err = parse_run(["racegate", "run", "--devices", "0,0", "--", "true"]).unwrap_err();
        assert!(err.to_string().contains("listed twice"), "{err}");
    }

    #[test]
    fn run_only_parser_reads_exactly_like_the_full_tree() {
        let cases: &[&[&str]] = &[
            &["racegate", "run", "--", "true"],
            &[
                "racegate",
                "run",
                "--gate",
                "g",
                "--capacity",
                "3",
                "--timeout",
                "1m",
                "--label",
                "L",
                "--",
                "sh",
                "-c",
                "exit 7",
            ],
            &["racegate", "run", "--label=x", "--", "echo", "--x", "-y"],
            &["racegate", "run", "echo", "no-dashes"],
            &["racegate", "run", "--help"],
            &["racegate", "run", "-h"],
            &["racegate", "run", "--version"],
            &["racegate", "run", "-V"],
            &["racegate", "run"],
            &["racegate", "run", "--"],
            &["racegate", "run", "--gate"],
            &["racegate", "run", "--slots", "3", "--", "true"],
            &["racegate", "run", "--capacity", "0", "--", "true"],
            &["racegate", "run", "--slots", "65", "--", "true"],
            &["racegate", "run", "--capacity", "x", "--", "true"],
            &[
                "racegate",
                "run",
                "--capacity",
                "2",
                "--slots",
                "3",
                "--",
                "true",
            ],
            &["racegate", "run", "--timeout", "soon", "--", "true"],
            &[
                "racegate",
                "run",
                "--capacity",
                "80",
                "--need",
                "20",
                "--devices",
                "0,1",
                "--prepare",
                "make",
                "--",
                "true",
            ],
            &[
                "racegate",
                "run",
                "--gpus",
                "2",
                "--devices",
                "auto",
                "--",
                "true",
            ],
            &[
                "racegate", "run", "--gpus", "2", "--need", "3", "--", "true",
            ],
            &["racegate", "run", "--devices", "0,,1", "--", "true"],
            &["racegate", "run", "--need", "0", "--", "true"],
            &["racegate", "run", "--bogus", "--", "true"],
            &["racegate", "run", "help"],
            &["/usr/local/bin/racegate", "run", "--help"],
        ];
        for argv in cases {
            assert_eq!(through_run_only(argv), through_full_tree(argv), "{argv:?}");
        }
    }
}
