//! The `cutover` binary: all of it lives in the library so tests can drive it too.
fn main() -> std::process::ExitCode {
    cutover::cli::main()
}
