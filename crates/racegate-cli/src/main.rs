//! The `racegate` binary: parsing and dispatch live in the library; `main` only maps the result
//! to an exit status.

fn main() -> std::process::ExitCode {
    racegate_cli::main_with_args(std::env::args_os())
}
