//! Opening a run: [`start`] creates one for `apply`, [`attach`] reopens one for `resume` and
//! `rollback` (taking its lock, cutting a torn tail, replaying the log), [`read`] looks at one
//! without locking, and [`check_plan`] refuses to continue a run whose spec or migrations changed.
//! Each works on either [`Backend`].
//!
//! What `cutover resume` checks before it changes anything, and what it does with each step, is
//! [`crate::resume`]'s.

use crate::error::ExecError;
use crate::event::{Event, RunStarted};
use crate::log::{LogContents, LogWriter, read_log};
use crate::pglog::PgStore;
use crate::redact::Redactor;
use crate::report::Reporter;
use crate::runner::{RunOptions, Session};
use crate::sink::Sink;
use crate::state::RunState;
use crate::store::{
    Holder, LOG_FILE, RunSummary, Store, current_holder, header, hostname, lock_run, read_plan,
};
use cutover_planner::dag::Plan;
use std::path::{Path, PathBuf};

/// Who is running cutover.
pub(crate) fn user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| format!("uid {}", unsafe { libc::getuid() }))
}

/// Where a run's events are kept.
pub enum Backend {
    /// `events.log` files under the state directory.
    Files,
    /// A PostgreSQL database (the state directory still holds each run's scratch files).
    Postgres(PgStore),
}

/// The session of the run in `dir`. Every database connection this process opens from now on
/// names the run (see [`crate::drivers::postgres::attach_run`]), so a later executor of the
/// same run can find what this one left running.
fn open_session(
    dir: PathBuf,
    plan: Plan,
    state: RunState,
    sink: Sink,
    reporter: Box<dyn Reporter>,
) -> Session {
    if let Some(run) = dir.file_name() {
        crate::drivers::postgres::attach_run(&run.to_string_lossy());
    }
    reporter.plan(&plan);
    Session::new(dir, plan, state, sink, reporter)
}

/// How a new run runs, recorded in its first event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NewRun {
    /// Describe every step, change nothing (preflight still checks the world, read-only).
    pub dry_run: bool,
    /// Stop before the point of no return until `cutover promote` ([`crate::event::Gate::Hold`]).
    pub hold: bool,
}

/// Creates a run for `plan` and attaches to it.
pub async fn start(
    backend: &Backend,
    store: &Store,
    plan: Plan,
    spec_path: &Path,
    how: NewRun,
    reporter: Box<dyn Reporter>,
) -> Result<Session, ExecError> {
    let NewRun { dry_run, hold } = how;
    let (run_id, dir) = store.create(&plan)?;
    let hdr = header(&run_id, &plan, dry_run, hold);
    let mut sink = match backend {
        Backend::Files => {
            let lock = lock_run(&dir, "apply")?;
            let path = dir.join(LOG_FILE);
            let writer = LogWriter::create(&path, &hdr)
                .map_err(|e| ExecError::file("create the event log", &path, e))?;
            Sink::File { writer, lock }
        }
        Backend::Postgres(pg) => Sink::Postgres(pg.create(&run_id, &plan, &hdr, "apply").await?),
    };
    sink.set_redactor(Redactor::for_plan(&plan));
    let state = RunState::replay(&hdr, &[]).expect("an empty log replays");
    let step_hashes = plan
        .steps()
        .map(|s| (s.id.clone(), s.hash.clone()))
        .collect();
    let spec_abs = std::fs::canonicalize(spec_path).unwrap_or_else(|_| spec_path.to_path_buf());
    let release = plan.release.clone();
    let plan_hash = plan.hash.clone();
    let mut session = open_session(dir, plan, state, sink, reporter);
    session
        .emit(Event::RunStarted(Box::new(RunStarted {
            run_id,
            plan_hash,
            step_hashes,
            release,
            spec_path: spec_path.display().to_string(),
            spec_abs: spec_abs.display().to_string(),
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            user: user(),
            host: hostname(),
            dry_run,
            hold,
        })))
        .await?;
    session
        .emit(Event::Attached {
            pid: std::process::id(),
            host: hostname(),
            command: "apply".into(),
        })
        .await?;
    Ok(session)
}

/// Reopens the run `run` (any name [`resolve_run`] takes) for `command` (`resume` or
/// `rollback`).
pub async fn attach(
    backend: &Backend,
    store: &Store,
    run: &str,
    command: &str,
    reporter: Box<dyn Reporter>,
) -> Result<Session, ExecError> {
    let run = &resolve_run(backend, store, run).await?;
    let replay = |contents: &LogContents, describe: String| {
        RunState::replay(&contents.header, &contents.records).map_err(|source| ExecError::Replay {
            path: PathBuf::from(describe),
            source,
        })
    };
    let (dir, mut sink, state, plan) = match backend {
        Backend::Files => {
            let dir = store.resolve(run)?;
            let lock = lock_run(&dir, command)?;
            let path = dir.join(LOG_FILE);
            let contents = read_log(&path)?;
            // The plan first, checked against the log: a run that cannot continue is left
            // exactly as it was (no torn tail cut).
            let plan = read_plan(&dir)?;
            let state = replay(&contents, path.display().to_string())?;
            verify_recorded_plan(&dir, backend, &state, &plan)?;
            let (writer, kept) = LogWriter::open(&path, &contents)?;
            if let (Some(torn), Some(kept)) = (&contents.torn, kept) {
                reporter.notice(&crate::log::torn_notice(torn, &kept));
            }
            (dir, Sink::File { writer, lock }, state, plan)
        }
        Backend::Postgres(pg) => {
            let (run_handle, contents, plan) = pg.open(run, command).await?;
            let dir = store.scratch_dir(run)?;
            let sink = Sink::Postgres(run_handle);
            let state = replay(&contents, sink.describe())?;
            verify_recorded_plan(&dir, backend, &state, &plan)?;
            (dir, sink, state, plan)
        }
    };
    sink.set_redactor(Redactor::for_plan(&plan));
    let mut session = open_session(dir, plan, state, sink, reporter);
    session
        .emit(Event::Attached {
            pid: std::process::id(),
            host: hostname(),
            command: command.into(),
        })
        .await?;
    Ok(session)
}

/// Trusts nothing that was not written durably: the recorded plan (`plan.json`, or the plan row
/// of a PostgreSQL log) must be the one the log's `run_started` event fingerprinted, step for
/// step, and (file log) the log must belong to this directory. Each step's fingerprint is
/// computed again from its recorded content, so a flipped bit in a step's SQL, argv or
/// dependencies is found before anything runs or is undone.
pub fn verify_recorded_plan(
    dir: &Path,
    backend: &Backend,
    state: &RunState,
    plan: &Plan,
) -> Result<(), ExecError> {
    use cutover_planner::dag::plan_hash;
    let plan_path = match backend {
        Backend::Files => {
            log_belongs_here(dir, state)?;
            dir.join("plan.json")
        }
        Backend::Postgres(_) => PathBuf::from(format!("the recorded plan of run {}", state.run_id)),
    };
    let mismatch = |why: String| ExecError::PlanMismatch {
        path: plan_path.clone(),
        why,
    };
    let recorded: Vec<&cutover_planner::dag::Step> = plan.steps().collect();
    steps_as_logged(&recorded, state).map_err(mismatch)?;
    if plan_hash(recorded.iter().copied()) != state.plan_hash || plan.hash != state.plan_hash {
        return Err(mismatch(format!(
            "its plan hash is not the log's ({})",
            &state.plan_hash[..12.min(state.plan_hash.len())]
        )));
    }
    Ok(())
}

/// A file log is in the directory of the run it belongs to.
fn log_belongs_here(dir: &Path, state: &RunState) -> Result<(), ExecError> {
    let dir_name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if dir_name == state.run_id {
        return Ok(());
    }
    Err(ExecError::PlanMismatch {
        path: dir.join(LOG_FILE),
        why: format!(
            "the log belongs to run `{}`, but it is in the directory of run `{dir_name}`",
            state.run_id
        ),
    })
}

/// The recorded steps are the ones `run_started` fingerprinted, in its order, and each one's
/// content still has that fingerprint; `Err`: why not.
fn steps_as_logged(
    recorded: &[&cutover_planner::dag::Step],
    state: &RunState,
) -> Result<(), String> {
    use cutover_planner::dag::step_fingerprint;
    let ids: Vec<&str> = recorded.iter().map(|s| s.id.as_str()).collect();
    let logged: Vec<&str> = state
        .step_hashes
        .iter()
        .map(|(id, _)| id.as_str())
        .collect();
    // A log cut before its `run_started` event (the run died before it began) has no step
    // fingerprints; the header's plan hash still has to match.
    if !logged.is_empty() && ids != logged {
        let missing: Vec<&str> = logged
            .iter()
            .filter(|i| !ids.contains(i))
            .copied()
            .collect();
        let extra: Vec<&str> = ids
            .iter()
            .filter(|i| !logged.contains(i))
            .copied()
            .collect();
        return Err(format!(
            "its steps are not the ones the log recorded at the start (missing: {}; not in the log: \
             {}; or in another order)",
            list_or_none(&missing),
            list_or_none(&extra)
        ));
    }
    let mut changed = Vec::new();
    for (i, step) in recorded.iter().enumerate() {
        let now = step_fingerprint(step);
        let logged_hash = state
            .step_hashes
            .get(i)
            .map_or(step.hash.as_str(), |(_, h)| h.as_str());
        if now != logged_hash || step.hash != logged_hash {
            changed.push(step.id.as_str());
        }
    }
    if !changed.is_empty() {
        return Err(format!(
            "the content of step(s) {} differs from the fingerprint the log recorded at the start",
            changed.join(", ")
        ));
    }
    Ok(())
}

fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// A run read without taking its lock: for `status`, `log` and `rollback --dry-run`.
pub struct Snapshot {
    /// Its scratch directory (file backend: where the log is).
    pub dir: PathBuf,
    /// The log's contents.
    pub contents: LogContents,
    /// The recorded plan.
    pub plan: Plan,
    /// Who holds it now, if anyone.
    pub holder: Option<Holder>,
}

/// The run `run` names, as the backends know it: a run id (or, with files, a run directory or
/// `events.log` path) as given; else `latest` (the newest run), a release name (its newest run),
/// or the start of exactly one run id, as `cutover runs` lists them.
///
/// Errors: [`ExecError::NoSuchRun`] when nothing matches (with files; the PostgreSQL reader
/// refuses an unknown name itself), [`ExecError::AmbiguousRun`] for a prefix of several run ids.
pub async fn resolve_run(backend: &Backend, store: &Store, run: &str) -> Result<String, ExecError> {
    // What an exact lookup says when nothing else matches: the files' error, or for PostgreSQL
    // the name itself, which its reader then refuses with what it found.
    let exact = match backend {
        Backend::Files => match store.resolve(run) {
            Ok(_) => return Ok(run.to_string()),
            Err(e @ ExecError::NoSuchRun { .. }) => Err(e),
            Err(e) => return Err(e),
        },
        Backend::Postgres(_) => Ok(run.to_string()),
    };
    let runs = list(backend, store).await?;
    if runs.iter().any(|r| r.run_id == run) {
        return Ok(run.to_string());
    }
    let newest = |found: Option<&RunSummary>| found.map(|r| r.run_id.clone());
    if let Some(id) = match run {
        "latest" => newest(runs.first()),
        _ => newest(runs.iter().find(|r| r.release == run)),
    } {
        return Ok(id);
    }
    let candidates: Vec<String> = runs
        .iter()
        .filter(|r| r.run_id.starts_with(run))
        .map(|r| r.run_id.clone())
        .collect();
    match candidates.as_slice() {
        [one] => Ok(one.clone()),
        [] => exact,
        _ => Err(ExecError::AmbiguousRun {
            run: run.into(),
            candidates,
        }),
    }
}

/// Reads `run` (any name [`resolve_run`] takes) without locking it.
pub async fn read(backend: &Backend, store: &Store, run: &str) -> Result<Snapshot, ExecError> {
    let run = &resolve_run(backend, store, run).await?;
    match backend {
        Backend::Files => {
            let dir = store.resolve(run)?;
            // The holder before the log: an executor writes its last event before it lets go,
            // so a run seen unheld is never read without its end.
            let holder = current_holder(&dir);
            let contents = read_log(&dir.join(LOG_FILE))?;
            let plan = read_plan(&dir)?;
            Ok(Snapshot {
                dir,
                contents,
                plan,
                holder,
            })
        }
        Backend::Postgres(pg) => {
            let (contents, plan, holder) = pg.read(run).await?;
            Ok(Snapshot {
                dir: store.scratch_dir(run)?,
                contents,
                plan,
                holder,
            })
        }
    }
}

/// Every run of the backend, newest first.
pub async fn list(backend: &Backend, store: &Store) -> Result<Vec<RunSummary>, ExecError> {
    match backend {
        Backend::Files => store.list(),
        Backend::Postgres(pg) => pg.list().await,
    }
}

/// Refuses if `current` (planned from the spec and migrations as they are now) differs from the
/// plan the run started with, naming the steps that changed.
pub fn check_plan(state: &RunState, current: &Plan) -> Result<(), ExecError> {
    if current.hash == state.plan_hash {
        return Ok(());
    }
    let changed = step_drift(&state.step_hashes, current)
        .into_iter()
        .map(|d| match d {
            StepDrift::Changed(id) => format!("{id} (changed)"),
            StepDrift::Removed(id) => format!("{id} (removed)"),
            StepDrift::Added(id) => format!("{id} (new)"),
        })
        .collect();
    Err(ExecError::PlanChanged {
        run: state.run_id.clone(),
        old: state.plan_hash[..12.min(state.plan_hash.len())].into(),
        new: current.hash[..12].into(),
        changed,
    })
}

impl Session {
    /// The environment the rest of the run needs (database URLs, `secret_env`, and with
    /// `programs` the programs its commands start), as preflight checked it when the run
    /// started: the shell a `resume` or `rollback` runs in may not have what that one had.
    pub fn environment_ready(&self, opts: &RunOptions, programs: bool) -> Result<(), ExecError> {
        if self.state.dry_run {
            return Ok(());
        }
        crate::drivers::preflight::check_environment(&self.plan, &opts.ctx.spec_dir, programs)
            .map_err(|source| ExecError::Environment {
                run: self.state.run_id.clone(),
                source,
            })
    }
}

/// How one step differs between recorded step fingerprints and a plan made now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepDrift {
    /// The step is in both, with another fingerprint.
    Changed(String),
    /// The step was recorded and is no longer planned.
    Removed(String),
    /// The step is planned now and was not recorded.
    Added(String),
}

/// What differs between `recorded` (step id and fingerprint, in plan order) and `current`:
/// changed and removed steps in recorded order, then added ones in plan order. Used by a resume
/// ([`check_plan`]) and by `apply --plan` against a saved plan.
pub fn step_drift(recorded: &[(String, String)], current: &Plan) -> Vec<StepDrift> {
    let now: Vec<(&str, &str)> = current
        .steps()
        .map(|s| (s.id.as_str(), s.hash.as_str()))
        .collect();
    let mut out = Vec::new();
    for (id, h) in recorded {
        match now.iter().find(|(i, _)| i == id) {
            Some((_, h2)) if h2 == h => {}
            Some(_) => out.push(StepDrift::Changed(id.clone())),
            None => out.push(StepDrift::Removed(id.clone())),
        }
    }
    for (id, _) in &now {
        if !recorded.iter().any(|(i, _)| i == id) {
            out.push(StepDrift::Added((*id).to_string()));
        }
    }
    out
}
