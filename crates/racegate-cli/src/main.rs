//! The `racegate` binary: parsing and dispatch live in the library; `main` only maps the result
//! to an exit status.

fn main() -> std::process::ExitCode {
    // `racegate __crash-tracer`: the helper that captures a crashing child's frames (Linux).
    if let Some(status) = racegate_cli::crash::native::main_if_helper() {
        return status;
    }
    racegate_cli::main_with_args(std::env::args_os())
}
