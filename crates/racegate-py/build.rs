//! On macOS an extension module leaves Python's symbols to be resolved when the interpreter loads
//! it (`-undefined dynamic_lookup`): without this, `cargo build` of the workspace could not link
//! the cdylib there (maturin passes the same flags for wheels). Nothing on Linux.
fn main() {
    pyo3_build_config::add_extension_module_link_args();
}
