//! Opening a run: [`start`] creates one for `apply`, [`attach`] reopens one for `resume`,
//! `rollback` (taking its lock, cutting a torn tail, replaying the log), and [`check_plan`]
//! refuses to continue a run whose spec or migrations changed.

use crate::error::ExecError;
use crate::event::{Event, RunStarted};
use crate::log::{LogWriter, read_log};
use crate::redact::Redactor;
use crate::report::Reporter;
use crate::runner::Session;
use crate::state::RunState;
use crate::store::{LOG_FILE, Store, header, hostname, lock_run, read_plan};
use cutover_planner::dag::{Params, Plan};
use std::path::Path;

/// Who is running cutover.
fn user() -> String {
    std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| format!("uid {}", unsafe { libc::getuid() }))
}

/// Creates a run for `plan` and attaches to it.
pub fn start(store: &Store, plan: Plan, spec_path: &Path, dry_run: bool, redactor: Redactor, reporter: Box<dyn Reporter>) -> Result<Session, ExecError> {
    let (run_id, dir) = store.create(&plan)?;
    let lock = lock_run(&dir, "apply")?;
    let hdr = header(&run_id, &plan, dry_run);
    let path = dir.join(LOG_FILE);
    let mut log = LogWriter::create(&path, &hdr).map_err(|e| ExecError::io(&path, e))?;
    log.set_redactor(redactor);
    let state = RunState::replay(&hdr, &[]).expect("an empty log replays");
    let step_hashes = plan.steps().map(|s| (s.id.clone(), s.hash.clone())).collect();
    let spec_abs = std::fs::canonicalize(spec_path).unwrap_or_else(|_| spec_path.to_path_buf());
    let release = plan.release.clone();
    let plan_hash = plan.hash.clone();
    let mut session = Session::new(dir, plan, state, log, lock, reporter);
    session.emit(Event::RunStarted(Box::new(RunStarted {
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
    })))?;
    session.emit(Event::Attached { pid: std::process::id(), host: hostname(), command: "apply".into() })?;
    Ok(session)
}

/// Reopens the run `run` (an id or a path) for `command` (`resume` or `rollback`).
pub fn attach(store: &Store, run: &str, command: &str, redactor: Redactor, reporter: Box<dyn Reporter>) -> Result<Session, ExecError> {
    let dir = store.resolve(run)?;
    let lock = lock_run(&dir, command)?;
    let path = dir.join(LOG_FILE);
    let contents = read_log(&path)?;
    if let Some(torn) = &contents.torn {
        reporter.notice(&format!("the log ended in a torn record ({} bytes, from a crash mid-write); it was cut off and kept in {}.torn-{}", torn.len(), path.display(), contents.valid_len));
    }
    let mut log = LogWriter::open(&path, &contents).map_err(|e| ExecError::io(&path, e))?;
    let plan = read_plan(&dir)?;
    let state = RunState::replay(&contents.header, &contents.records).map_err(|source| ExecError::Replay { path: path.clone(), source })?;
    log.set_redactor(redactor.merge(Redactor::for_plan(&plan)));
    let mut session = Session::new(dir, plan, state, log, lock, reporter);
    session.emit(Event::Attached { pid: std::process::id(), host: hostname(), command: command.into() })?;
    Ok(session)
}

/// Refuses if `current` (planned from the spec and migrations as they are now) differs from the
/// plan the run started with, naming the steps that changed.
pub fn check_plan(state: &RunState, current: &Plan) -> Result<(), ExecError> {
    if current.hash == state.plan_hash {
        return Ok(());
    }
    let now: Vec<(String, String)> = current.steps().map(|s| (s.id.clone(), s.hash.clone())).collect();
    let mut changed = Vec::new();
    for (id, h) in &state.step_hashes {
        match now.iter().find(|(i, _)| i == id) {
            Some((_, h2)) if h2 == h => {}
            Some(_) => changed.push(format!("{id} (changed)")),
            None => changed.push(format!("{id} (removed)")),
        }
    }
    for (id, _) in &now {
        if !state.step_hashes.iter().any(|(i, _)| i == id) {
            changed.push(format!("{id} (new)"));
        }
    }
    Err(ExecError::PlanChanged { run: state.run_id.clone(), old: state.plan_hash[..12.min(state.plan_hash.len())].into(), new: current.hash[..12].into(), changed })
}

impl Redactor {
    /// Secrets a recorded plan names: `secret_env` of deploys and commands, `url_env` of backups.
    pub fn for_plan(plan: &Plan) -> Redactor {
        let mut names = Vec::new();
        for s in plan.steps() {
            match &s.params {
                Params::Deploy { secret_env, .. } | Params::Command { secret_env, .. } => names.extend(secret_env.iter().cloned()),
                Params::Backup { url_env, .. } => names.push(url_env.clone()),
                _ => {}
            }
        }
        Redactor::new(names.iter().filter_map(|n| std::env::var(n).ok()))
    }
}
