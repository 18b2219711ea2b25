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
    #[error("step `{step}` started but its end was not recorded, and it cannot be checked automatically (no probe) nor safely run twice (not idempotent)")]
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
    /// This build has no driver for some step kinds of the plan.
    #[error("this build of cutover cannot run {} step(s) yet: {}", kinds.len(), kinds.join(", "))]
    NoDriver {
        /// Step kinds without a driver.
        kinds: Vec<String>,
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
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl ExecError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        ExecError::Io { path: path.to_path_buf(), source }
    }

    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            ExecError::Locked { holder, .. } => match holder {
                Some(h) => format!("wait for pid {} to finish, or stop it; the lock is released the moment that process exits, even on kill -9", h.pid),
                None => "wait for the other process to finish; the lock is released when it exits".into(),
            },
            ExecError::PlanChanged { .. } => "restore the spec and migrations the run started with (e.g. `git checkout`), or roll this run back with `cutover rollback RUN` (it uses the recorded plan) and start a new one".into(),
            ExecError::InDoubt { step } => format!("check by hand whether `{step}` took effect. If it did not, run `cutover resume RUN --retry {step}`. To let cutover decide next time, give the command a `probe` argv in the spec or mark it `idempotent`"),
            ExecError::PlanMismatch { .. } => "the log is intact and is the truth; plan.json was edited or damaged on disk (or the directory holds another run's files). Restore the run directory from a backup; `cutover status RUN` still shows what was done".into(),
            ExecError::NoSuchRun { .. } => "`cutover runs` lists the runs of this state directory (`--state-dir` or CUTOVER_STATE_DIR)".into(),
            ExecError::NoDriver { .. } => "`cutover apply SPEC --dry-run` walks the whole plan without side effects; real PostgreSQL, Docker and router steps arrive with their drivers".into(),
            ExecError::Log(LogError::Corrupt { .. }) => "the log is the record of what was done: do not delete it. Inspect the listed offset; `cutover status` works on a copy truncated before it".into(),
            _ => return None,
        })
    }
}
