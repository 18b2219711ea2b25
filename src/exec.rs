//! The executor commands: `apply`, `resume`, `rollback`, `status`, `log` and `runs`.

use crate::exit;
use crate::progress::{Mode, Progress};
use cutover_executor::driver::Drivers;
use cutover_executor::event::Outcome;
use cutover_executor::runner::{ForwardResult, RunOptions, Session};
use cutover_executor::session::{Backend, Resumable};
use cutover_executor::state::{RunState, StepState};
use cutover_executor::store::Store;
use cutover_executor::{ExecError, session};
use cutover_planner::lint::Severity;
use cutover_planner::spec::OnFailure;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Like `println!`, but a closed stdout (`cutover log RUN | head`) ends the process quietly, with
/// exit code 0 as ripgrep does, instead of a panic.
macro_rules! println {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*)
            && e.kind() == std::io::ErrorKind::BrokenPipe
        {
            std::process::exit(0);
        }
    }};
}

/// Options shared by the run commands.
pub struct Common {
    /// Where runs live.
    pub state_dir: PathBuf,
    /// Output.
    pub mode: Mode,
    /// Concurrent steps.
    pub jobs: usize,
    /// Where events are kept.
    pub backend: Backend,
}

fn fail(e: &ExecError) -> u8 {
    eprintln!("error: {e}");
    if let Some(h) = e.hint() {
        eprintln!("  hint: {h}");
    }
    exit::INPUT
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
}

fn finish(session: &Session, r: &ForwardResult) -> u8 {
    let run = &session.state.run_id;
    match r.outcome {
        Outcome::Succeeded => {
            if session.state.dry_run {
                eprintln!(
                    "dry run complete: {} step(s) described, nothing changed. Log: {}",
                    session.plan.graph.node_count(),
                    session.log_location()
                );
            } else if let Some(d) = &session.plan.downtime {
                // Recreate: from the start of the step that stops the old version to the end of
                // the health check of the new one.
                let from = session.state.steps.get(&d.from).and_then(|s| s.started_at);
                let to = session.state.steps.get(&d.to).and_then(|s| s.finished_at);
                if let (Some(from), Some(to)) = (from, to) {
                    eprintln!(
                        "downtime window: {:.1} s (from `{}` to `{}`)",
                        (to - from).num_milliseconds() as f64 / 1000.0,
                        d.from,
                        d.to
                    );
                }
            }
            exit::OK
        }
        Outcome::RolledBack if r.failed.is_some() => {
            let (step, error) = r.failed.as_ref().unwrap();
            eprintln!("error: step `{step}` failed ({error}); the release was rolled back");
            exit::RELEASE_FAILED
        }
        Outcome::RolledBack => exit::OK,
        Outcome::Paused | Outcome::Failed => {
            if let Some((step, error)) = &r.failed {
                eprintln!("error: step `{step}` failed: {error}");
            }
            eprintln!(
                "  hint: fix the cause, then `cutover resume {run}` retries from that step, or `cutover rollback {run}` undoes what was done"
            );
            exit::RELEASE_FAILED
        }
        Outcome::RollbackStopped => {
            // Two reasons to stop: a step that cannot be undone (a pivot), or an undo that failed
            // (a database down, a command that errored), which running the rollback again retries.
            let undo_failed = r
                .stopped_at
                .as_ref()
                .and_then(|(step, _)| session.state.steps.get(step))
                .is_some_and(|s| s.state == StepState::CompensationFailed);
            match &r.stopped_at {
                Some((step, why)) if undo_failed => eprintln!(
                    "error: undoing `{step}` failed, so the rollback stopped there: {why}"
                ),
                Some((step, why)) => eprintln!("error: the rollback stopped at `{step}`: {why}"),
                None => {}
            }
            if let Some((step, error)) = &r.failed {
                eprintln!("  (it started because step `{step}` failed: {error})");
            }
            match &r.stopped_at {
                Some((step, _)) if undo_failed => {
                    eprintln!(
                        "  hint: fix what made the undo of `{step}` fail (its error is above), then run `cutover rollback {run}` again: it retries that undo and continues; `cutover status {run}` shows what was undone"
                    )
                }
                _ => eprintln!(
                    "  hint: `cutover status {run}` shows what was undone; the steps before the pivot need a decision (a backup restore, or finishing the release)"
                ),
            }
            exit::ROLLBACK_STOPPED
        }
        Outcome::Interrupted => {
            eprintln!("interrupted; continue with `cutover resume {run}`");
            exit::INTERRUPTED
        }
    }
}

/// `cutover apply SPEC`.
pub fn apply(common: &Common, spec_path: &Path, dry_run: bool, allow_error_findings: bool) -> u8 {
    if let Some(code) = refuse_non_utf8_spec(spec_path) {
        return code;
    }
    let planned = match cutover_executor::planned::plan_file(spec_path) {
        Ok(p) => p,
        Err(e) => return crate::cli::report(&e, false),
    };
    let errors: Vec<_> = planned
        .plan
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    if !errors.is_empty() && !allow_error_findings && !dry_run {
        eprintln!(
            "error: the plan has {} error-severity finding(s); nothing was applied",
            errors.len()
        );
        for f in errors {
            eprintln!(
                "  {}:{}: {}[{}] {}",
                f.file, f.line, f.severity, f.rule, f.message
            );
        }
        eprintln!(
            "  hint: fix them (see `cutover plan {}`), or pass --allow-error-findings to apply anyway",
            spec_path.display()
        );
        return exit::FINDINGS;
    }
    let on_failure = planned.spec.release.on_failure;
    let drivers = Drivers::builtin();
    let store = Store::new(&common.state_dir);
    let rt = runtime();
    rt.block_on(async {
        let mut session = match session::start(
            &common.backend,
            &store,
            planned.plan,
            spec_path,
            dry_run,
            Box::new(Progress::new(common.mode)),
        )
        .await
        {
            Ok(s) => s,
            Err(e) => return fail(&e),
        };
        let spec_dir = std::fs::canonicalize(spec_path)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."));
        let opts = RunOptions::new(&session, spec_dir, on_failure, common.jobs);
        let code = match session.forward(&drivers, &opts).await {
            Ok(r) => finish(&session, &r),
            Err(e) => fail(&e),
        };
        session.close().await;
        code
    })
}

/// A run records its spec's path as text (`resume` plans from it again): a path that is not
/// valid UTF-8 could not be found again, so `apply` refuses it before anything starts.
fn refuse_non_utf8_spec(spec_path: &Path) -> Option<u8> {
    let abs = std::fs::canonicalize(spec_path).unwrap_or_else(|_| spec_path.to_path_buf());
    if abs.to_str().is_some() {
        return None;
    }
    eprintln!(
        "error: {}: the spec's path is not valid UTF-8 (shown with \u{FFFD} for the bytes that are not); a run records its spec's path as text, so `cutover resume` could not find the file again. Nothing was started",
        abs.display()
    );
    eprintln!(
        "  hint: rename the file, or the directory holding it, to a UTF-8 name (or copy the spec and its migrations to one), then run `cutover apply` again"
    );
    Some(exit::INPUT)
}

/// `cutover resume RUN`.
pub fn resume(common: &Common, run: &str, retry: &[String]) -> u8 {
    let store = Store::new(&common.state_dir);
    let drivers = Drivers::builtin();
    runtime().block_on(async {
        let reporter = Box::new(Progress::new(common.mode));
        let (mut session, opts) =
            match session::resume(&common.backend, &store, run, common.jobs, reporter).await {
                Ok(Resumable::Ready(ready)) => *ready,
                Ok(Resumable::Succeeded(run)) => {
                    eprintln!("run {run} already succeeded; nothing to do");
                    return exit::OK;
                }
                Err(ExecError::Replan { source, .. }) => return crate::cli::report(&source, false),
                Err(e) => return fail(&e),
            };
        if let Err(e) = session.settle_in_doubt(&drivers, &opts, retry).await {
            return fail(&e);
        }
        let code = match session.forward(&drivers, &opts).await {
            Ok(r) => finish(&session, &r),
            Err(e) => fail(&e),
        };
        session.close().await;
        code
    })
}

fn snapshot(common: &Common, run: &str) -> Result<(session::Snapshot, RunState), ExecError> {
    let store = Store::new(&common.state_dir);
    let snap = runtime().block_on(session::read(&common.backend, &store, run))?;
    let state =
        RunState::replay(&snap.contents.header, &snap.contents.records).map_err(|source| {
            ExecError::Replay {
                path: snap.dir.clone(),
                source,
            }
        })?;
    Ok((snap, state))
}

/// `cutover rollback RUN`.
pub fn rollback(
    common: &Common,
    run: &str,
    to: Option<String>,
    dry_run: bool,
    restore_backup: bool,
) -> u8 {
    if dry_run {
        return rollback_preview(common, run, to.as_deref());
    }
    let store = Store::new(&common.state_dir);
    let drivers = Drivers::builtin();
    runtime().block_on(async {
        let mut session = match session::attach(
            &common.backend,
            &store,
            run,
            "rollback",
            Box::new(Progress::new(common.mode)),
        )
        .await
        {
            Ok(s) => s,
            Err(e) => return fail(&e),
        };
        let spec_dir = session.state.spec_dir();
        let mut opts = RunOptions::new(&session, spec_dir, OnFailure::Pause, common.jobs);
        opts.restore_backup = restore_backup;
        if let Err(e) = session.environment_ready(&opts, false) {
            return fail(&e);
        }
        let code = match session
            .rollback(&drivers, &opts, to, "requested by the operator")
            .await
        {
            Ok(r) => finish(&session, &r),
            Err(e) => fail(&e),
        };
        session.close().await;
        code
    })
}

fn rollback_preview(common: &Common, run: &str, to: Option<&str>) -> u8 {
    let (snap, state) = match snapshot(common, run) {
        Ok(x) => x,
        Err(e) => return fail(&e),
    };
    let plan = snap.plan;
    let mut lines = Vec::new();
    for id in cutover_executor::runner::rollback_order(&state, to) {
        let step = plan.step(&id);
        match step {
            Some(s) if !s.reversible => {
                lines.push(format!("  stop at {id}: {}", s.undo));
                break;
            }
            Some(s) => lines.push(format!("  undo    {id}: {}", s.undo)),
            None => lines.push(format!("  ?       {id}: not in the recorded plan")),
        }
    }
    let in_doubt = state.in_doubt();
    println!("A rollback of {} would, newest first:", state.run_id);
    if !in_doubt.is_empty() {
        println!(
            "  first check {} (started, end not recorded) with its probe",
            in_doubt.join(", ")
        );
    }
    if lines.is_empty() {
        println!(
            "  nothing: no step has succeeded{}",
            to.map(|t| format!(" after {t}")).unwrap_or_default()
        );
    }
    for l in lines {
        println!("{l}");
    }
    println!("(dry run: nothing was changed and nothing was written)");
    exit::OK
}

#[derive(Serialize)]
struct StatusDoc<'a> {
    run_id: &'a str,
    release: &'a str,
    plan_hash: &'a str,
    dry_run: bool,
    outcome: Option<&'static str>,
    rollback: Option<Option<&'a str>>,
    paused: Option<&'a str>,
    lock_holder: Option<cutover_executor::store::Holder>,
    torn_tail_bytes: Option<usize>,
    steps: Vec<StepDoc<'a>>,
}

#[derive(Serialize)]
struct StepDoc<'a> {
    id: &'a str,
    state: StepState,
    attempts: u32,
    duration_ms: Option<i64>,
    error: Option<&'a str>,
}

/// `cutover status RUN`.
pub fn status(common: &Common, run: &str) -> u8 {
    let (snap, st) = match snapshot(common, run) {
        Ok(x) => x,
        Err(e) => return fail(&e),
    };
    let torn = snap.contents.torn.as_ref().map(Vec::len);
    let holder = snap.holder;
    let steps: Vec<StepDoc> = st
        .step_hashes
        .iter()
        .map(|(id, _)| {
            let s = &st.steps[id];
            let duration_ms = match (s.started_at, s.finished_at) {
                (Some(a), Some(b)) if b >= a => Some((b - a).num_milliseconds()),
                _ => None,
            };
            StepDoc {
                id,
                state: s.state,
                attempts: s.attempts,
                duration_ms,
                error: s.error.as_deref(),
            }
        })
        .collect();
    let doc = StatusDoc {
        run_id: &st.run_id,
        release: &st.release,
        plan_hash: &st.plan_hash,
        dry_run: st.dry_run,
        outcome: st.outcome.map(Outcome::as_str),
        rollback: st.rollback.as_ref().map(|t| t.as_deref()),
        paused: st.paused.as_deref(),
        lock_holder: holder.clone(),
        torn_tail_bytes: torn,
        steps,
    };
    if common.mode == Mode::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("status serializes")
        );
        return exit::OK;
    }
    let state_word = match (&holder, st.outcome) {
        (Some(h), _) => format!("in progress: held by {h}"),
        (None, Some(o)) => o.as_str().to_string(),
        (None, None) => "stopped before it finished (resumable with `cutover resume`)".to_string(),
    };
    println!(
        "run {}  release `{}`{}",
        st.run_id,
        st.release,
        if st.dry_run { "  (dry run)" } else { "" }
    );
    println!("state: {state_word}");
    if let Some(r) = &st.paused {
        println!("paused: {r}");
    }
    if let Some(t) = &st.rollback {
        println!(
            "rollback{} under way or done",
            t.as_ref().map(|t| format!(" to {t}")).unwrap_or_default()
        );
    }
    if let Some(n) = torn {
        println!(
            "note: the log ends in a torn record ({n} bytes); the next resume or rollback cuts it off"
        );
    }
    let width = doc.steps.iter().map(|s| s.id.len()).max().unwrap_or(0);
    for s in &doc.steps {
        let state = serde_json::to_value(s.state)
            .unwrap()
            .as_str()
            .unwrap()
            .to_string();
        let dur = s
            .duration_ms
            .map(|d| format!("{:.1}s", d as f64 / 1000.0))
            .unwrap_or_default();
        let attempts = if s.attempts > 1 {
            format!(" ({} attempts)", s.attempts)
        } else {
            String::new()
        };
        println!(
            "  {:<width$}  {:<19} {:>7}{attempts}{}",
            s.id,
            state,
            dur,
            s.error.map(|e| format!("  {e}")).unwrap_or_default()
        );
    }
    exit::OK
}

/// `cutover log RUN`.
pub fn log(common: &Common, run: &str) -> u8 {
    let store = Store::new(&common.state_dir);
    let contents = match runtime().block_on(session::read(&common.backend, &store, run)) {
        Ok(snap) => snap.contents,
        Err(e) => return fail(&e),
    };
    for r in &contents.records {
        let mut v = r.to_flat_json();
        if common.mode == Mode::Json {
            println!("{v}");
        } else {
            let o = v.as_object_mut().expect("records are objects");
            let kind = o
                .remove("type")
                .and_then(|t| t.as_str().map(String::from))
                .unwrap_or_default();
            o.remove("seq");
            o.remove("time");
            println!(
                "{:>5}  {}  {:<22} {}",
                r.seq,
                r.time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                kind,
                v
            );
        }
    }
    if let Some(t) = &contents.torn {
        eprintln!(
            "note: the log ends in a torn record ({} bytes), not shown",
            t.len()
        );
    }
    exit::OK
}

/// `cutover runs`.
pub fn runs(common: &Common) -> u8 {
    let store = Store::new(&common.state_dir);
    let list = match runtime().block_on(session::list(&common.backend, &store)) {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    if common.mode == Mode::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&list).expect("runs serialize")
        );
        return exit::OK;
    }
    if list.is_empty() {
        eprintln!("no runs under {}", common.state_dir.join("runs").display());
    }
    for r in list {
        println!(
            "{}  {:<20}  {}{}",
            r.run_id,
            r.state,
            r.release,
            if r.dry_run { "  (dry run)" } else { "" }
        );
    }
    exit::OK
}
