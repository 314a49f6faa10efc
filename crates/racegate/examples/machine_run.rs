//! A minimal `racegate run`: take the machine-wide gate `gpu`, run a command holding it, exit
//! with its status. No flags, no signal forwarding, no timeout: it exists to show the library
//! in a small binary and to measure what the lock costs a whole process
//! (`bench/machine-vs-flock.sh` runs it beside `racegate run` and `flock(1)`).
//!
//! `cargo run --release -p racegate --example machine_run -- sleep 1`

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((program, rest)) = args.split_first() else {
        eprintln!("usage: machine_run CMD [ARGS...]");
        return ExitCode::from(2);
    };
    let gate = match racegate::MachineGate::builder("gpu")
        .command(args.clone())
        .config(racegate::GateConfig::default().with_stats(false))
        .open()
    {
        Ok(g) => g,
        Err(e) => {
            eprintln!("machine_run: {e}");
            return ExitCode::from(2);
        }
    };
    let guard = match gate.acquire_blocking() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("machine_run: {e}");
            return ExitCode::from(2);
        }
    };
    let status = Command::new(program).args(rest).status();
    drop(guard);
    match status {
        Ok(s) => ExitCode::from(s.code().map_or(1, |c| c as u8)),
        Err(e) => {
            eprintln!("machine_run: `{program}`: {e}");
            ExitCode::from(127)
        }
    }
}
