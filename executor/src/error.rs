//! The executor's errors: [`ExecError`], why a command on a run refused or stopped, with what to
//! do about it; [`StepError`], why a step (or its undo, probe, fence or restore) failed, which the
//! runner records in the log and acts on (a [`StepError::Inconclusive`] result pauses the run).
//!
//! Each variant names the failure and holds what it is about (the step, the database, the file);
//! an underlying error stays the variant's `source`, so [`chain`] (and the CLI) can print the
//! whole cause chain.

use crate::drivers::command::CommandError;
use crate::drivers::containers::ContainerError;
use crate::drivers::pgerror::PgError;
use crate::drivers::preflight::EnvError;
use crate::log::LogError;
use crate::router::RouterError;
use crate::runtime::RuntimeError;
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
        "step `{step}` started but its end was not recorded, and it cannot be checked automatically \
         (no probe) nor safely run twice (not idempotent)"
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
    /// A run id prefix that more than one run starts with.
    #[error("`{run}` is the start of {} run ids: {}", candidates.len(), candidates.join(", "))]
    AmbiguousRun {
        /// What was asked for.
        run: String,
        /// The run ids it could mean, newest first.
        candidates: Vec<String>,
    },
    /// A run directory without its event log.
    #[error("{}: the run has no event log (events.log is missing); cutover creates it right after \
             the run directory, so either the run is being started right now (look again in a \
             moment), or the process that started it stopped in between (then no step ran), or \
             the file was removed", dir.display())]
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
    /// A recorded plan in another plan format than this cutover's: its steps would not read
    /// back as they were planned.
    #[error(
        "{what} is in plan format {found}; this cutover reads plan format {} only",
        cutover_planner::dag::PLAN_FORMAT
    )]
    PlanFormat {
        /// Where the plan is recorded.
        what: String,
        /// Its format.
        found: u32,
    },
    /// A row of the PostgreSQL log is missing, altered or spliced.
    #[error("PostgreSQL log of {run} is damaged at seq {seq}: {what}; nothing was changed")]
    PgLogDamaged {
        /// Run id.
        run: String,
        /// The first row that is not as written.
        seq: u64,
        /// What is wrong with it.
        what: String,
    },
    /// The PostgreSQL log of a run is in another format than this cutover's.
    #[error(
        "PostgreSQL log of {run} is in format {found}; this cutover reads format {} (and {}, a \
         run with gates) only",
        crate::log::FORMAT_VERSION,
        crate::log::GATED_FORMAT_VERSION
    )]
    PgLogFormat {
        /// Run id.
        run: String,
        /// Its format.
        found: u32,
    },
    /// A row of the PostgreSQL log is intact but not an event this cutover knows.
    #[error(
        "PostgreSQL log of {run}: the row of seq {seq} is intact (its checksum holds) but cannot be \
         read: {source}; nothing was changed"
    )]
    PgRowUnreadable {
        /// Run id.
        run: String,
        /// The row.
        seq: i64,
        /// serde's error.
        source: serde_json::Error,
    },
    /// `resume` of a run whose process died before its first event.
    #[error(
        "run {run} was created but never started (its process died before the first event); nothing \
         ran, so start a new run with `cutover apply`"
    )]
    NeverStarted {
        /// Run id.
        run: String,
    },
    /// `promote` of a run that does not wait at a gate.
    #[error("run {run} does not wait at a gate{}", match paused {
        Some(why) => format!(": it paused after a failure ({why})"),
        None => String::new(),
    })]
    NotAtGate {
        /// Run id.
        run: String,
        /// Why it paused, if it did.
        paused: Option<String>,
        /// It stopped before it finished with no gate pending (e.g. died after a promote):
        /// `resume` continues it.
        resumable: bool,
        /// An executor runs it now.
        running: bool,
    },
    /// `abort` of a run that already succeeded: there is no release in flight to abort.
    #[error("run {run} already succeeded: there is nothing in flight to abort")]
    NothingToAbort {
        /// Run id.
        run: String,
    },
    /// `resume` of a run that is being rolled back.
    #[error("run {run} is being rolled back; continue it with `cutover rollback {run}`")]
    RollingBack {
        /// Run id.
        run: String,
    },
    /// The spec path a run recorded is not its file's real name (that name was not UTF-8).
    #[error(
        "run {run}: the spec path it recorded, {spec}, is not the file's real name: that name was \
         not valid UTF-8 (\u{FFFD} marks the bytes that were not)"
    )]
    SpecPathLost {
        /// Run id.
        run: String,
        /// The path as recorded.
        spec: String,
    },
    /// The spec or its migrations, planned again for a resume, are not valid.
    #[error("run {run}: its spec {} cannot be planned again", spec.display())]
    Replan {
        /// Run id.
        run: String,
        /// The spec.
        spec: PathBuf,
        /// The planner's error, with its diagnostics.
        source: cutover_planner::PlanError,
    },
    /// `rollback --to STEP` names a step that has not succeeded.
    #[error(
        "`--to {target}`: that step has not succeeded in this run, so there is nothing to roll back \
         to"
    )]
    NotSucceeded {
        /// The step.
        target: String,
    },
    /// `rollback --to STEP` while a rollback to another target is under way.
    #[error("a rollback to {} is already under way; finish it first", under_way.as_deref().unwrap_or("the start"))]
    RollbackUnderWay {
        /// Its target (`None`: the start).
        under_way: Option<String>,
    },
    /// The log names a step the recorded plan does not have.
    #[error("step `{step}` is in the log but not in the plan")]
    UnknownStep {
        /// Step id.
        step: String,
    },
    /// An earlier attempt of a step may still be acting, and cutover cannot stop it.
    #[error("cannot make sure the earlier attempt of `{step}` has stopped")]
    Fence {
        /// Step id.
        step: String,
        /// Why (redacted).
        source: StepFailure,
    },
    /// A probe of a step in doubt failed.
    #[error("probing `{step}` failed")]
    Probe {
        /// Step id.
        step: String,
        /// Why (redacted).
        source: StepFailure,
    },
    /// A step's task panicked (a bug in a driver).
    #[error("a step task panicked")]
    Panicked {
        /// The task's error.
        source: tokio::task::JoinError,
    },
    /// Steps are left that can never start (their dependencies did not succeed).
    #[error("no step can start, but some are not done: {}", left.join(", "))]
    Stuck {
        /// The first few of them.
        left: Vec<String>,
    },
    /// A run id with a path separator or `..`.
    #[error("`{run}` is not a run id")]
    BadRunId {
        /// What was given.
        run: String,
    },
    /// The PostgreSQL log failed.
    #[error("PostgreSQL log: {action}")]
    PgLog {
        /// What cutover was doing ("cannot connect", "reading events").
        action: &'static str,
        /// sqlx's error.
        source: sqlx::Error,
    },
    /// The PostgreSQL log database holds no cutover tables.
    #[error(
        "PostgreSQL log: no run `{run}`: this database holds no cutover runs (no cutover_runs \
         table); check CUTOVER_LOG_DATABASE_URL"
    )]
    PgLogEmpty {
        /// Run id.
        run: String,
    },
    /// No such run in the PostgreSQL log.
    #[error("no run `{run}` in the PostgreSQL log (`cutover runs` lists them)")]
    NoSuchPgRun {
        /// Run id.
        run: String,
    },
    /// The plan row of a PostgreSQL-logged run is not JSON of a plan.
    #[error("PostgreSQL log: the recorded plan of {run} is unreadable")]
    PgPlanUnreadable {
        /// Run id.
        run: String,
        /// serde's error.
        source: serde_json::Error,
    },
    /// The plan row of a PostgreSQL-logged run is not a valid plan.
    #[error("PostgreSQL log: the recorded plan of {run} is not a valid plan")]
    PgPlanInvalid {
        /// Run id.
        run: String,
        /// What is wrong.
        source: cutover_planner::dag::RecordedPlanError,
    },
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
    #[error("run {run}: this shell cannot run the rest of it: {source}; nothing was changed")]
    Environment {
        /// Run id.
        run: String,
        /// What is missing (names only, never a value).
        source: EnvError,
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

/// A step's error as the operator may see it: its cause chain on one line, with the run's
/// secrets removed (the form the log records). Errors of a run that carry a step's failure hold
/// this, so no secret a step's error quoted leaves the executor.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct StepFailure(String);

impl StepFailure {
    /// `e`, redacted with `redactor`.
    pub fn new(e: &StepError, redactor: &crate::redact::Redactor) -> Self {
        StepFailure(redactor.redact(&e.message()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a step, its undo, probe, fence or restore failed. The runner writes its
/// [`StepFailure`] (its message, redacted) to the log and shows it to the operator; it matches
/// [`StepError::Inconclusive`] to
/// pause the run instead of rolling it back.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The step could not decide (an analysis gate saw too few requests). The run pauses then,
    /// whatever `on_failure` says: rolling back a release nobody found fault with would be as
    /// wrong as going on.
    #[error("inconclusive: {reason}")]
    Inconclusive {
        /// What was missing to decide, and what the operator can do.
        reason: String,
    },
    /// An analysis gate judged the canary and it failed.
    #[error("analysis gate failed: {reason}")]
    GateFailed {
        /// Which threshold was crossed, with what the window saw.
        reason: String,
    },
    /// The shell lacks a variable the step needs, or a program it starts.
    #[error(transparent)]
    Environment(Box<EnvError>),
    /// PostgreSQL: connecting, a migration statement, a lock, a backup, a backfill, a restore.
    #[error(transparent)]
    Database(Box<PgError>),
    /// The container engine refused or could not be reached.
    #[error(transparent)]
    Runtime(Box<RuntimeError>),
    /// A container step found the containers other than it needs them.
    #[error(transparent)]
    Container(Box<ContainerError>),
    /// A command step's program.
    #[error(transparent)]
    Command(Box<CommandError>),
    /// nginx or HAProxy.
    #[error(transparent)]
    Router(Box<RouterError>),
    /// A file of the step's own in the run or backup directory.
    #[error("cannot {action} {}", path.display())]
    File {
        /// What cutover was doing, as a verb phrase ("save the router state to").
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The step failed after changing something, and put back what it had changed (a failed step
    /// is not undone by a rollback).
    #[error("{}; {put_back}", chain(source))]
    PutBack {
        /// Why the step failed.
        source: Box<StepError>,
        /// What is back as it was.
        put_back: &'static str,
    },
    /// The step failed after changing something, and putting that back failed too.
    #[error("{}; {what} failed too: {}", chain(source), chain(also))]
    PutBackFailed {
        /// Why the step failed.
        source: Box<StepError>,
        /// What it tried, as a noun phrase ("removing what it started").
        what: &'static str,
        /// Why that failed.
        also: Box<StepError>,
    },
    /// A driver was given a step of another kind (a registration mistake).
    #[error("`{step}` is a `{kind}` step, which this driver does not run")]
    WrongKind {
        /// Step id.
        step: String,
        /// Its kind.
        kind: &'static str,
    },
    /// The undo data recorded in the log does not fit the driver's type.
    #[error("the recorded undo data of `{step}` is unreadable")]
    UndoUnreadable {
        /// Step id.
        step: String,
        /// What serde says.
        source: serde_json::Error,
    },
    /// Only backup steps can restore a database.
    #[error("`{step}` cannot restore anything")]
    CannotRestore {
        /// Step id.
        step: String,
    },
    /// This build has no driver for the step's kind.
    #[error("no driver for `{kind}` steps")]
    NoDriver {
        /// The step kind.
        kind: &'static str,
    },
}

// The domain errors are boxed: they carry the names an operator needs (database, table,
// statement, file), and a step's `Result` should not be as large as its rarest failure.
impl From<EnvError> for StepError {
    fn from(e: EnvError) -> Self {
        StepError::Environment(Box::new(e))
    }
}

impl From<PgError> for StepError {
    fn from(e: PgError) -> Self {
        StepError::Database(Box::new(e))
    }
}

impl From<RuntimeError> for StepError {
    fn from(e: RuntimeError) -> Self {
        StepError::Runtime(Box::new(e))
    }
}

impl From<ContainerError> for StepError {
    fn from(e: ContainerError) -> Self {
        StepError::Container(Box::new(e))
    }
}

impl From<CommandError> for StepError {
    fn from(e: CommandError) -> Self {
        StepError::Command(Box::new(e))
    }
}

impl From<RouterError> for StepError {
    fn from(e: RouterError) -> Self {
        StepError::Router(Box::new(e))
    }
}

impl StepError {
    /// This failure of a step that had changed something, with how putting that back went:
    /// `back` says what is back as it was, `what` what was tried (a failed step is not undone by
    /// a rollback, so it puts back what it changed itself).
    pub fn put_back(
        self,
        result: Result<(), StepError>,
        back: &'static str,
        what: &'static str,
    ) -> StepError {
        let source = Box::new(self);
        match result {
            Ok(()) => StepError::PutBack {
                source,
                put_back: back,
            },
            Err(also) => StepError::PutBackFailed {
                source,
                what,
                also: Box::new(also),
            },
        }
    }

    /// Whether the step could not decide (the run pauses, whatever `on_failure` says).
    pub fn is_inconclusive(&self) -> bool {
        matches!(self, StepError::Inconclusive { .. })
    }

    /// The error and its causes on one line, not yet redacted: what leaves the executor is a
    /// [`StepFailure`], this text with the run's secrets removed. (Secret values are replaced
    /// before URL passwords, so a secret URL is replaced whole, host and all.)
    pub fn message(&self) -> String {
        chain(self)
    }
}

/// `e` and its causes on one line, `: ` between them. A cause whose text the line already holds
/// is not repeated: some messages name their cause inline, where it reads best (an I/O error in
/// the middle of a sentence, sqlx's own "error returned from database: ..."), and the chain still
/// reaches it for code that wants it.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
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
        K::NotFound => {
            "check the path; `--state-dir` (or CUTOVER_STATE_DIR) says where runs live, \
                        and `cutover runs` lists them"
                .into()
        }
        K::PermissionDenied => format!(
            "the user running cutover (uid {}) may not do this: fix the owner or mode (`ls -ld` on \
             the path and its directory), or choose another state directory with --state-dir \
             (apply, resume and rollback write in it; status, log and runs only read)",
            unsafe { libc::geteuid() }
        ),
        K::ReadOnlyFilesystem => "the file system is mounted read-only: remount it read-write, or \
                                  choose another state directory with --state-dir"
            .into(),
        K::StorageFull | K::QuotaExceeded | K::FileTooLarge => "the disk (or your quota) is full: \
                                                                free space on it (`df -h` on the \
                                                                path), then run the command again"
            .into(),
        K::IsADirectory => "a directory is where cutover expects a file: move it away (cutover \
                            never deletes it)"
            .into(),
        K::NotADirectory => "a file is where cutover expects a directory: move it away or choose \
                             another state directory with --state-dir"
            .into(),
        _ => "check the file system (`dmesg` may say more), then run the same command again".into(),
    }
}

impl ExecError {
    /// [`ExecError::NotAtGate`] for a run standing at `state`; `running`: an executor holds it.
    pub fn not_at_gate(state: &crate::state::RunState, running: bool) -> Self {
        let unfinished = matches!(
            state.outcome,
            None | Some(crate::event::Outcome::Interrupted)
        );
        ExecError::NotAtGate {
            run: state.run_id.clone(),
            paused: state.paused.clone(),
            resumable: unfinished && state.rollback.is_none() && !state.complete(),
            running,
        }
    }

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

    /// What to do about it: the `hint:` line printed under the error, or `None` when the message
    /// says it all.
    pub fn hint(&self) -> Option<String> {
        if let Some(fixed) = self.fixed_hint() {
            return Some(fixed.into());
        }
        Some(match self {
            ExecError::Locked { holder, .. } => match holder {
                Some(h) => format!(
                    "wait for pid {} to finish, or stop it; the lock is released the moment that \
                     process exits, even on kill -9",
                    h.pid
                ),
                None => "wait for the other process to finish; the lock is released when it exits"
                    .into(),
            },
            ExecError::LockedByPid { pid, .. } => format!(
                "wait for pid {pid} to finish, or stop it; the lock is released the moment that \
                 process exits, even on kill -9"
            ),
            ExecError::InDoubt { step } if step.starts_with("migrate/") => format!(
                "the migration ran outside a transaction and its statement is not one cutover can \
                 judge from the catalog; check in the database whether it took effect. If it did \
                 not, run `cutover resume RUN --retry {step}`. If it did, a plain retry would run \
                 it twice: undo it by hand first (e.g. re-attach the partition), then retry"
            ),
            ExecError::InDoubt { step } => format!(
                "check by hand whether `{step}` took effect. If it did not, run `cutover resume RUN \
                 --retry {step}`. To let cutover decide next time, give the command a `probe` argv \
                 in the spec or mark it `idempotent`"
            ),
            ExecError::Log(e) => e.hint(),
            ExecError::PlanFormat { .. } | ExecError::PgLogFormat { .. } => {
                crate::log::VERSION_HINT.into()
            }
            // A run stopped by a failed append continues where it stopped, not from the start.
            ExecError::File { action, source, .. }
                if action.starts_with("append") && is_full(source) =>
            {
                "the disk (or your quota) is full: free space on it (`df -h` on the path), then \
                 `cutover resume RUN` continues the run; every event before this one is on disk, \
                 and a partly written one is cut off and kept aside"
                    .into()
            }
            ExecError::Io { source, .. } | ExecError::File { source, .. } => io_hint(source),
            ExecError::NothingToAbort { run } => format!(
                "the log is left as it was; to undo the finished release, `cutover rollback {run}`"
            ),
            ExecError::NotAtGate {
                run,
                paused,
                resumable,
                running,
            } => match paused {
                _ if *running => format!(
                    "it is running now: `cutover status {run} --watch` follows it and shows the gate \
                     if it stops at one"
                ),
                None if *resumable => format!(
                    "it stopped before it finished, past its gates (a promote may have been \
                     recorded before it died): `cutover resume {run}` continues it"
                ),
                Some(_) => format!(
                    "`cutover resume {run}` runs the failed step again; `cutover abort {run}` \
                     rolls back"
                ),
                None => format!("`cutover status {run}` shows where it stands"),
            },
            ExecError::SpecPathLost { run, .. } => format!(
                "rename the spec's file or directory to the name shown (or to UTF-8 and link it \
                 there), then run `cutover resume {run}` again"
            ),
            _ => return None,
        })
    }

    /// The hints that name nothing of the error's own (no step, pid or path).
    fn fixed_hint(&self) -> Option<&'static str> {
        Some(match self {
            ExecError::PlanChanged { .. } => {
                "restore the spec and migrations the run started with (e.g. `git checkout`), or \
                 roll this run back with `cutover rollback RUN` (it uses the recorded plan) and \
                 start a new one"
            }
            ExecError::Environment { .. } => {
                "set what it names in this shell, to the values the run started with (a resume or \
                 rollback reaches the same databases and runs the same commands), then run the \
                 same command again"
            }
            ExecError::PlanMismatch { .. } => {
                "the log is intact and is the truth; plan.json was edited or damaged on disk (or \
                 the directory holds another run's files). Restore the run directory from a \
                 backup; `cutover status RUN` still shows what was done"
            }
            ExecError::NoSuchRun { .. } | ExecError::NoSuchPgRun { .. } => {
                "`cutover runs` lists the runs of this state directory (`--state-dir` or \
                 CUTOVER_STATE_DIR); a RUN can also be `latest`, a release name (its newest run) \
                 or the start of a run id"
            }
            ExecError::AmbiguousRun { .. } => "give more of the run id (`cutover runs` lists them)",
            ExecError::NoDriver { .. } => {
                "`cutover apply SPEC --dry-run` walks the whole plan without side effects; real \
                 PostgreSQL, Docker and router steps arrive with their drivers"
            }
            ExecError::PgLogDamaged { .. } => {
                "the log is the record of what was done: do not delete or edit its rows; `SELECT \
                 seq, payload FROM cutover_events WHERE run_id = 'RUN' ORDER BY seq` shows the \
                 events before the damage"
            }
            ExecError::PgRowUnreadable { .. } => {
                "a newer cutover may have written it (it knows more kinds of events): use that \
                 version"
            }
            ExecError::NoLog { .. } => {
                "if the run never started, start a new one with `cutover apply`; if events.log \
                 was removed, restore it from a backup of the state directory: without it cutover \
                 cannot know what the run did"
            }
            ExecError::Damaged { .. } => {
                "cutover writes a run's plan.json once, when the run starts, and never changes \
                 it; without it the run's steps are unknown: restore the file from a backup of \
                 the state directory"
            }
            ExecError::Replay { .. } => {
                "every record is intact but they contradict each other, as happens when another \
                 cutover version wrote them: use that version, and keep the file"
            }
            ExecError::Replan { .. } => {
                "fix what the planner names, keeping the steps the run started with (the plan \
                 must not change), then run the same command again"
            }
            _ => return None,
        })
    }
}
