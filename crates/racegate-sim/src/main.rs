//! `racegate-sim`: the demo inference server on the simulated GPU.
//!
//! ```text
//! racegate-sim serve --listen 127.0.0.1:0 --dispatch shared --crash-dir /tmp/crashes
//! ```
//!
//! Exit status: 0 never (the server runs until killed), 2 for bad flags or a server that
//! cannot start, SIGABRT on a device violation under `--on-violation abort`.

use clap::{Parser, Subcommand};

/// A simulated GPU that fails like Metal under concurrent misuse, and a demo server on it.
#[derive(Debug, Parser)]
#[command(name = "racegate-sim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve OpenAI-compatible chat completions (text and vision) on the simulated device.
    Serve(racegate_sim::server::ServeArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => match racegate_sim::server::run(args) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("racegate-sim: error: {e}");
                std::process::ExitCode::from(2)
            }
        },
    }
}
