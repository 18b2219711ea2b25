//! Running the real `cutover` binary from the repository root.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (where `plans/` and `migrations-sample/` live).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `cutover` with `args` from the repository root.
pub fn cutover(args: &[&str]) -> Output {
    cutover_in(&root(), args)
}

/// Runs `cutover` with `args` from `dir`.
pub fn cutover_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("the cutover binary runs")
}

/// Exit code, stdout and stderr as one transcript, for snapshots.
pub fn transcript(out: &Output) -> String {
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        out.status
            .code()
            .map_or("signal".to_string(), |c| c.to_string()),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts the process did not panic (a panic is never an acceptable answer to bad input).
pub fn assert_no_panic(out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "cutover panicked:\n{stderr}");
    assert_ne!(
        out.status.code(),
        Some(101),
        "exit code 101 is a panic:\n{stderr}"
    );
}

/// The sample specs shipped in `plans/`.
pub const SAMPLES: &[&str] = &[
    "recreate",
    "rolling",
    "blue-green",
    "canary",
    "canary-rename",
];

/// A tiny deterministic generator (xorshift), so the kill moments of a seeded test are the same on
/// every run and every machine.
pub struct Seeded(pub u64);

impl Seeded {
    /// The next number.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
