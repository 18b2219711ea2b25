//! [`ExecError`]: why the executor refused or stopped, with what to do about it.

use crate::log::LogError;
use crate::state::ReplayError;
use crate::store::Holder;
use std::path::{Path, PathBuf};

/// Why a command on a run could not proceed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// Another executor holds the run.
    #[error("run {run} is held by {}", holder.as_ref().map_or("another process".to_string(), |h| h.to_string()))]
    Locked {
        /// Run id.
        run: String,
        /// Who holds it.
        holder: Option<Holder>,
    },
    /// Another executor holds the run: the kernel names its process, which has not written its
    /// details (command, host, since when) to the run's holder file yet.
    #[error("run {run} is held by pid {pid} (`{cmdline}`), which has not written its details yet")]
    LockedByPid {
        /// Run id.
        run: String,
        /// The holder's process id.
        pid: u32,
        /// Its command line (passwords in URLs removed).
        cmdline: String,
    },
    /// The run's spec or migrations changed since it started.
    #[error("the plan changed since run {run} started (plan {old} → {new}); changed steps: {}", changed.join(", "))]
    PlanChanged {
        /// Run id.
        run: String,
        /// Old hash (short).
        old: String,
        /// New hash (short).
        new: String,
        /// Steps whose definition changed, appeared or disappeared.
        changed: Vec<String>,
    },
    /// A step started but its end was not recorded, and it can be neither probed nor re-run.
    #[error(
        "step `{step}` started but its end was not recorded, and it cannot be checked automatically (no probe) nor safely run twice (not idempotent)"
    )]
    InDoubt {
        /// Step id.
        step: String,
    },
    /// No run by that name.
    #[error("no run `{run}` (looked in {} and for a run directory or events.log at that path)", runs_dir.display())]
    NoSuchRun {
        /// What was asked for.
        run: String,
        /// Where runs live.
        runs_dir: PathBuf,
    },
    /// A run directory without its event log.
    #[error("{}: the run has no event log (events.log is missing); cutover creates it right after the run directory, so either the process that started the run stopped in between (then no step ran) or the file was removed", dir.display())]
    NoLog {
        /// The run directory.
        dir: PathBuf,
    },
    /// This build has no driver for some step kinds of the plan.
    #[error("this build of cutover cannot run {} step(s) yet: {}", kinds.len(), kinds.join(", "))]
    NoDriver {
        /// Step kinds without a driver.
        kinds: Vec<String>,
    },
    /// Refused, with what to do about it (messages built where the cause is known).
    #[error("{message}")]
    Refused {
        /// What is wrong, naming where.
        message: String,
        /// What to do.
        hint: String,
    },
    /// The run cannot do what was asked in its current state.
    #[error("{0}")]
    State(String),
    /// The event log is damaged.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The event log contradicts itself.
    #[error("{}: {source}", path.display())]
    Replay {
        /// The log.
        path: PathBuf,
        /// What is inconsistent.
        source: ReplayError,
    },
    /// The shell lacks what the rest of a run needs (a database URL's variable, a `secret_env`).
    #[error("{0}")]
    Environment(String),
    /// The run's recorded plan does not match what its log recorded when the run started.
    #[error("{}: {why}; cutover will not run or undo steps it cannot trust", path.display())]
    PlanMismatch {
        /// The recorded plan (or the run directory).
        path: PathBuf,
        /// What differs.
        why: String,
    },
    /// A run file other than the log is damaged.
    #[error("{}: {why}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// I/O.
    #[error("{}: {}", path.display(), io_cause(source))]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file-system operation of the state directory failed: `action` says which.
    #[error("{}: cannot {action}: {}", path.display(), io_cause(source))]
    File {
        /// The file or directory.
        path: PathBuf,
        /// What cutover was doing, as a verb phrase ("create the run directory").
        action: String,
        /// The error.
        source: std::io::Error,
    },
}

/// The cause of an I/O error in words: the operating system's own text, which names the real
/// cause ("Permission denied", "No space left on device") and its errno.
pub fn io_cause(e: &std::io::Error) -> String {
    e.to_string()
}

fn is_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull
            | std::io::ErrorKind::QuotaExceeded
            | std::io::ErrorKind::FileTooLarge
    )
}

/// What to do about an I/O error, by its kind.
pub fn io_hint(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::NotFound => "check the path; `--state-dir` (or CUTOVER_STATE_DIR) says where runs live, and `cutover runs` lists them".into(),
        K::PermissionDenied => format!(
            "the user running cutover (uid {}) may not do this: fix the owner or mode (`ls -ld` on the path and its directory), or choose another state directory with --state-dir (apply, resume and rollback write in it; status, log and runs only read)",
            unsafe { libc::geteuid() }
        ),
        K::ReadOnlyFilesystem => "the file system is mounted read-only: remount it read-write, or choose another state directory with --state-dir".into(),
        K::StorageFull | K::QuotaExceeded | K::FileTooLarge => "the disk (or your quota) is full: free space on it (`df -h` on the path), then run the command again".into(),
        K::IsADirectory => "a directory is where cutover expects a file: move it away (cutover never deletes it)".into(),
        K::NotADirectory => "a file is where cutover expects a directory: move it away or choose another state directory with --state-dir".into(),
        _ => "check the file system (`dmesg` may say more), then run the same command again".into(),
    }
}

impl ExecError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        ExecError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// An I/O error on `path` while doing `action` (a verb phrase: "create the run directory").
    pub fn file(action: impl Into<String>, path: &Path, source: std::io::Error) -> Self {
        ExecError::File {
            path: path.to_path_buf(),
            action: action.into(),
            source,
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            ExecError::Locked { holder, .. } => match holder {
                Some(h) => format!("wait for pid {} to finish, or stop it; the lock is released the moment that process exits, even on kill -9", h.pid),
                None => "wait for the other process to finish; the lock is released when it exits".into(),
            },
            ExecError::LockedByPid { pid, .. } => format!("wait for pid {pid} to finish, or stop it; the lock is released the moment that process exits, even on kill -9"),
            ExecError::PlanChanged { .. } => "restore the spec and migrations the run started with (e.g. `git checkout`), or roll this run back with `cutover rollback RUN` (it uses the recorded plan) and start a new one".into(),
            ExecError::InDoubt { step } if step.starts_with("migrate/") => format!("the migration ran outside a transaction and its statement is not one cutover can judge from the catalog; check in the database whether it took effect. If it did not, run `cutover resume RUN --retry {step}`. If it did, a plain retry would run it twice: undo it by hand first (e.g. re-attach the partition), then retry"),
            ExecError::InDoubt { step } => format!("check by hand whether `{step}` took effect. If it did not, run `cutover resume RUN --retry {step}`. To let cutover decide next time, give the command a `probe` argv in the spec or mark it `idempotent`"),
            ExecError::Environment(_) => "set what it names in this shell, to the values the run started with (a resume or rollback reaches the same databases and runs the same commands), then run the same command again".into(),
            ExecError::PlanMismatch { .. } => "the log is intact and is the truth; plan.json was edited or damaged on disk (or the directory holds another run's files). Restore the run directory from a backup; `cutover status RUN` still shows what was done".into(),
            ExecError::NoSuchRun { .. } => "`cutover runs` lists the runs of this state directory (`--state-dir` or CUTOVER_STATE_DIR)".into(),
            ExecError::NoDriver { .. } => "`cutover apply SPEC --dry-run` walks the whole plan without side effects; real PostgreSQL, Docker and router steps arrive with their drivers".into(),
            ExecError::Log(e) => e.hint(),
            ExecError::Refused { hint, .. } => hint.clone(),
            ExecError::NoLog { .. } => "if the run never started, start a new one with `cutover apply`; if events.log was removed, restore it from a backup of the state directory: without it cutover cannot know what the run did".into(),
            ExecError::Damaged { .. } => "cutover writes a run's plan.json once, when the run starts, and never changes it; without it the run's steps are unknown: restore the file from a backup of the state directory".into(),
            ExecError::Replay { .. } => "every record is intact but they contradict each other, as happens when another cutover version wrote them: use that version, and keep the file".into(),
            // A run stopped by a failed append continues where it stopped, not from the start.
            ExecError::File { action, source, .. } if action.starts_with("append") && is_full(source) => {
                "the disk (or your quota) is full: free space on it (`df -h` on the path), then `cutover resume RUN` continues the run; every event before this one is on disk, and a partly written one is cut off and kept aside".into()
            }
            ExecError::Io { source, .. } | ExecError::File { source, .. } => io_hint(source),
            _ => return None,
        })
    }
}
