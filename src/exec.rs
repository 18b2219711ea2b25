//! The executor commands: `apply`, `resume`, `rollback`, `status`, `log` and `runs`. Each
//! returns `Ok` or an [`Error`] (which prints itself and owns the exit code).

use crate::error::Error;
use crate::progress::{Mode, Progress};
use cutover_executor::driver::Drivers;
use cutover_executor::event::Outcome;
use cutover_executor::resume::{Continue, Resumable};
use cutover_executor::runner::{ForwardResult, RunOptions, Session};
use cutover_executor::scheduler::{self, Compensation};
use cutover_executor::session::Backend;
use cutover_executor::state::{RunState, StepState};
use cutover_executor::store::Store;
use cutover_executor::{ExecError, session};
use cutover_planner::lint::Severity;
use cutover_planner::plan_file;
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

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
}

/// How a run ended, for the operator: what a success took, or the [`Error`] of the outcome.
fn finish(session: &Session, r: &ForwardResult) -> Result<(), Error> {
    let run = session.state.run_id.clone();
    match r.outcome {
        Outcome::Succeeded => {
            succeeded(session);
            Ok(())
        }
        Outcome::RolledBack => match r.failed.clone() {
            Some((step, error)) => Err(Error::RolledBack { step, error }),
            None => Ok(()),
        },
        Outcome::Failed if r.failed.is_some() => Err(Error::NothingChanged {
            run,
            failed: r.failed.clone().expect("checked"),
            dry_run: session.state.dry_run,
        }),
        Outcome::Paused if session.state.gate.is_some() => Err(Error::AwaitingPromotion {
            run,
            reason: session.state.paused.clone().unwrap_or_default(),
        }),
        Outcome::Paused | Outcome::Failed => Err(Error::Paused {
            run,
            failed: r.failed.clone(),
        }),
        Outcome::RollbackStopped => {
            // Two reasons to stop: a step that cannot be undone (a pivot), or an undo that failed
            // (a database down, a command that errored), which running the rollback again retries.
            let undo_failed = r
                .stopped_at
                .as_ref()
                .and_then(|(step, _)| session.state.steps.get(step))
                .is_some_and(|s| s.state == StepState::CompensationFailed);
            Err(Error::RollbackStopped {
                run,
                stopped_at: r.stopped_at.clone(),
                undo_failed,
                failed: r.failed.clone(),
            })
        }
        Outcome::Interrupted => Err(Error::Interrupted { run }),
    }
}

/// What a run that succeeded did: a dry run's step count, a recreate's downtime window.
fn succeeded(session: &Session) {
    if session.state.dry_run {
        eprintln!(
            "dry run complete: {} step(s) described, nothing changed. Log: {}",
            session.plan.graph.node_count(),
            session.log_location()
        );
    } else if let Some(d) = &session.plan.downtime {
        // Recreate: from the start of the step that stops the old version to the end of the
        // health check of the new one.
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
}

/// What `cutover apply` was asked.
pub struct ApplyArgs {
    /// The spec, when given.
    pub spec: Option<PathBuf>,
    /// `--plan FILE`: a saved plan to run (its spec is planned again and must match).
    pub saved: Option<PathBuf>,
    /// `--expect-hash HASH`.
    pub expect_hash: Option<String>,
    /// `--yes`: do not ask.
    pub yes: bool,
    /// `--dry-run`.
    pub dry_run: bool,
    /// `--hold`: stop before the point of no return until `cutover promote`.
    pub hold: bool,
    /// `--allow-error-findings`.
    pub allow_error_findings: bool,
}

/// `cutover apply SPEC` (or `--plan FILE`).
pub fn apply(common: &Common, args: &ApplyArgs) -> Result<(), Error> {
    let saved = args.saved.as_deref().map(crate::saved::read).transpose()?;
    let spec_path = match (&args.spec, &saved) {
        (Some(spec), _) => spec.clone(),
        (None, Some(s)) => s.spec.clone(),
        (None, None) => unreachable!("clap requires SPEC without --plan"),
    };
    let spec_path = spec_path.as_path();
    let dry_run = args.dry_run;
    refuse_non_utf8_spec(spec_path)?;
    let planned = plan_file(spec_path).map_err(|source| Error::Plan {
        source,
        json: false,
    })?;
    // Before the confirmation: a hold that cannot work is refused before anyone says `yes`.
    let hold = args.hold || planned.spec.release.hold;
    if hold {
        check_hold(&planned.plan, dry_run)?;
    }
    check_reviewed(&planned.plan, spec_path, args, saved.as_ref())?;
    let allow_error_findings = args.allow_error_findings;
    let errors: Vec<_> = planned
        .plan
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .cloned()
        .collect();
    if !errors.is_empty() && !allow_error_findings && !dry_run {
        return Err(Error::FindingsRefused {
            spec: spec_path.to_path_buf(),
            findings: errors,
        });
    }
    let on_failure = planned.spec.release.on_failure;
    let spec_dir = std::fs::canonicalize(spec_path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    let store = Store::new(&common.state_dir);
    runtime().block_on(async {
        let reporter = Box::new(Progress::for_run(common.mode));
        let session = session::start(
            &common.backend,
            &store,
            planned.plan,
            spec_path,
            session::NewRun { dry_run, hold },
            reporter,
        )
        .await?;
        let opts = RunOptions::new(&session, spec_dir, on_failure, common.jobs);
        run_forward(session, &opts).await
    })
}

/// Refuses a hold whose point of no return (the first step that cannot be undone) lies inside a
/// recreate's downtime window: the run would stop there with nothing serving. A plan whose every
/// step can be undone has nothing to hold before: said, and the run goes to the end.
fn check_hold(plan: &cutover_planner::dag::Plan, dry_run: bool) -> Result<(), Error> {
    if !dry_run && plan.steps().all(scheduler::undoable) {
        eprintln!(
            "cutover: the hold has nothing to stop before: every step of this plan can be undone \
             (no contract migration, no pivot), so the run goes to the end; `cutover rollback \
             RUN` undoes it"
        );
    }
    let (Some(d), Some(pivot)) = (
        &plan.downtime,
        plan.steps().find(|s| !scheduler::undoable(s)),
    ) else {
        return Ok(());
    };
    if !d.steps.contains(&pivot.id) {
        return Ok(());
    }
    Err(Error::HoldInDowntime {
        step: pivot.id.clone(),
        from: d.from.clone(),
        to: d.to.clone(),
    })
}

/// Refuses a plan other than the one reviewed (`--plan FILE` gone stale, `--expect-hash`), then
/// shows the plan's hash and summary and, on a terminal, asks before anything starts.
fn check_reviewed(
    plan: &cutover_planner::dag::Plan,
    spec: &Path,
    args: &ApplyArgs,
    saved: Option<&crate::saved::SavedPlan>,
) -> Result<(), Error> {
    if let (Some(file), Some(saved)) = (&args.saved, saved) {
        let drift = saved.drift(plan);
        if !drift.is_empty() {
            return Err(Error::StalePlan {
                file: file.clone(),
                spec: spec.to_path_buf(),
                drift,
            });
        }
    }
    if let Some(expected) = &args.expect_hash
        && !crate::saved::hash_matches(plan, expected)
    {
        return Err(Error::HashMismatch {
            expected: expected.clone(),
            actual: plan.hash.clone(),
        });
    }
    let summary = format!(
        "plan {} for release `{}`: {}",
        &plan.hash[..16],
        plan.release,
        cutover_planner::render::Summary::of(plan).line()
    );
    eprintln!("{summary}");
    use std::io::IsTerminal;
    if args.yes || args.dry_run || !std::io::stdin().is_terminal() {
        return Ok(());
    }
    eprint!("Apply this release? Only `yes` is accepted: ");
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(Error::NotConfirmed)
    }
}

/// Runs the rest of the run, says how it ended, and closes the session.
async fn run_forward(mut session: Session, opts: &RunOptions) -> Result<(), Error> {
    let result = session.forward(&Drivers::builtin(), opts).await;
    let ended = result
        .map_err(Error::from)
        .and_then(|r| finish(&session, &r));
    session.close().await;
    ended
}

/// A run records its spec's path as text (`resume` plans from it again): a path that is not
/// valid UTF-8 could not be found again, so `apply` refuses it before anything starts.
fn refuse_non_utf8_spec(spec_path: &Path) -> Result<(), Error> {
    let abs = std::fs::canonicalize(spec_path).unwrap_or_else(|_| spec_path.to_path_buf());
    if abs.to_str().is_some() {
        return Ok(());
    }
    Err(Error::SpecNotUtf8 { path: abs })
}

/// `cutover resume RUN`, or with `Continue::Promote`, `cutover promote RUN [--full]`.
pub fn resume(common: &Common, run: &str, retry: &[String], how: Continue) -> Result<(), Error> {
    if how != Continue::Resume {
        // A promote the run cannot take is refused before attaching: the log stays as it was.
        let (snap, state) = snapshot(common, run)?;
        if state.gate.is_none() {
            return Err(ExecError::not_at_gate(&state, snap.holder.is_some()).into());
        }
    }
    let store = Store::new(&common.state_dir);
    runtime().block_on(async {
        let reporter = Box::new(Progress::for_run(common.mode));
        let (backend, jobs) = (&common.backend, common.jobs);
        match cutover_executor::resume::resume(backend, &store, run, jobs, how, reporter).await? {
            Resumable::Succeeded(run) => {
                eprintln!("run {run} already succeeded; nothing to do");
                Ok(())
            }
            Resumable::Ready(ready) => {
                let (mut session, opts) = *ready;
                session
                    .settle_in_doubt(&Drivers::builtin(), &opts, retry)
                    .await?;
                run_forward(session, &opts).await
            }
        }
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

/// `cutover abort RUN`: a rollback of a run in flight (at a gate, paused, failed, interrupted);
/// a run that succeeded is refused before attaching, its log left as it was (`cutover rollback`
/// undoes a finished release).
pub fn abort(common: &Common, run: &str, restore_backup: bool) -> Result<(), Error> {
    let (_, state) = snapshot(common, run)?;
    if state.complete() && state.rollback.is_none() && !state.dry_run {
        return Err(ExecError::NothingToAbort { run: state.run_id }.into());
    }
    rollback(
        common,
        run,
        None,
        false,
        restore_backup,
        "aborted by the operator",
    )
}

/// `cutover rollback RUN`.
///
/// `reason` goes into the log's `rollback_started` event: `requested by the operator`, or for
/// `cutover abort`, `aborted by the operator`.
pub fn rollback(
    common: &Common,
    run: &str,
    to: Option<String>,
    dry_run: bool,
    restore_backup: bool,
    reason: &str,
) -> Result<(), Error> {
    if dry_run {
        return rollback_preview(common, run, to.as_deref());
    }
    // A `--to` the rollback would refuse is refused before attaching, so the run's log is left
    // exactly as it was.
    let (_, state) = snapshot(common, run)?;
    cutover_executor::runner::check_rollback_target(&state, to.as_deref())?;
    let store = Store::new(&common.state_dir);
    runtime().block_on(async {
        let reporter = Box::new(Progress::for_run(common.mode));
        let mut session =
            session::attach(&common.backend, &store, run, "rollback", reporter).await?;
        let spec_dir = session.state.spec_dir();
        let mut opts = RunOptions::new(&session, spec_dir, OnFailure::Pause, common.jobs);
        opts.restore_backup = restore_backup;
        session.environment_ready(&opts, false)?;
        let result = session
            .rollback(&Drivers::builtin(), &opts, to, reason)
            .await;
        let ended = result
            .map_err(Error::from)
            .and_then(|r| finish(&session, &r));
        session.close().await;
        ended
    })
}

fn rollback_preview(common: &Common, run: &str, to: Option<&str>) -> Result<(), Error> {
    let (snap, state) = snapshot(common, run)?;
    cutover_executor::runner::check_rollback_target(&state, to)?;
    let plan = snap.plan;
    let mut lines = Vec::new();
    for id in scheduler::rollback_order(&state, to) {
        // The rollback's own rule, without `--restore-backup`: undo, or stop at a pivot.
        match plan.step(&id) {
            Some(s) if scheduler::compensation(s, &[], false) == Compensation::Pivot => {
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
    Ok(())
}

/// `cutover status RUN --format json`: where a run stands, as its log tells it (docs/json.md,
/// docs/schemas/status.schema.json).
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct StatusDoc<'a> {
    /// Run id (also the run directory's name).
    run_id: &'a str,
    /// Release name.
    release: &'a str,
    /// Plan hash at the start.
    plan_hash: &'a str,
    /// A describe-only run (`apply --dry-run`).
    dry_run: bool,
    /// How the last invocation ended (`succeeded`, `failed`, `paused`, `interrupted`,
    /// `rolled_back`, `rollback_stopped`); null while one runs or after a crash.
    #[schemars(with = "Option<Outcome>")]
    outcome: Option<&'static str>,
    /// A rollback's `--to` target; null without a rollback and for a full rollback alike (serde
    /// writes an outer and an inner `None` the same).
    rollback: Option<Option<&'a str>>,
    /// Why the run is paused, or null.
    paused: Option<&'a str>,
    /// When it paused (RFC 3339), or null.
    #[schemars(with = "Option<String>", extend("format" = "date-time"))]
    paused_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The gate it waits at for `cutover promote`: `{"kind": "manual"|"hold", "step": ...}`.
    gate: Option<&'a cutover_executor::event::Gate>,
    /// It holds before the point of no return until promoted.
    hold: bool,
    /// Where a rollback stopped and why, or null.
    rollback_stopped: Option<StoppedDoc<'a>>,
    /// Databases a rollback put back to this run's backup.
    restored: Vec<RestoredDoc<'a>>,
    /// The executor that holds the run now, or null.
    lock_holder: Option<cutover_executor::store::Holder>,
    /// Bytes of a torn record at the log's end (not replayed), or null.
    torn_tail_bytes: Option<usize>,
    /// Every step, in plan order.
    steps: Vec<StepDoc<'a>>,
}

/// Where a rollback stopped.
#[derive(Serialize, schemars::JsonSchema)]
struct StoppedDoc<'a> {
    /// The step the rollback could not undo.
    step: &'a str,
    /// Why.
    reason: &'a str,
}

/// A database a rollback restored from this run's backup.
#[derive(Serialize, schemars::JsonSchema)]
struct RestoredDoc<'a> {
    /// The database (its name in the spec).
    database: &'a str,
    /// The backup step whose dump was restored.
    backup: &'a str,
}

/// One step of a run.
#[derive(Serialize, schemars::JsonSchema)]
struct StepDoc<'a> {
    /// Step id.
    id: &'a str,
    /// Where it stands.
    state: StepState,
    /// Attempts started.
    attempts: u32,
    /// How long its last attempt took, when it started and ended.
    duration_ms: Option<i64>,
    /// Its last error, or null.
    error: Option<&'a str>,
    /// A canary gate's latest evaluation (an analysis step, or a pause that watches its gate):
    /// the window's figures and the verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    evaluation: Option<cutover_executor::drivers::traffic::Evaluation>,
}

/// `cutover status RUN [--watch]`: shows the run (with `watch`, again every second until no
/// executor holds it), then exits by how it stands: 0 succeeded or still running, 3 failed,
/// paused after a failure or rolled back, 4 a rollback stopped, 5 waiting at a gate for
/// `cutover promote`, 130 stopped before it finished (resumable).
pub fn status(common: &Common, run: &str, watch: bool) -> Result<(), Error> {
    use std::io::IsTerminal;
    let tty = std::io::stdout().is_terminal();
    let mut shown_events = None;
    loop {
        let (snap, st) = snapshot(common, run)?;
        let held = snap.holder.is_some();
        // Redraw on a terminal; elsewhere print again only when something happened.
        if shown_events != Some((st.events, held)) {
            if watch && tty {
                print!("\x1b[2J\x1b[H");
            }
            show_status(common, snap, &st);
            shown_events = Some((st.events, held));
        }
        if !watch || !held {
            return exit_by_state(&st, held);
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// `status`'s exit code for a run: as `apply` ended it, or 0 while an executor holds it.
fn exit_by_state(st: &RunState, held: bool) -> Result<(), Error> {
    let code = match (held, st.outcome) {
        (true, _) | (false, Some(Outcome::Succeeded)) => return Ok(()),
        (false, Some(Outcome::RollbackStopped)) => crate::exit::ROLLBACK_STOPPED,
        // A gate recorded by an invocation that died before `run_finished` (or one that
        // attached and died at it) still holds: nothing else is left to run.
        (false, Some(Outcome::Paused) | None) if st.gate.is_some() => {
            crate::exit::AWAITING_PROMOTION
        }
        (false, Some(Outcome::Interrupted) | None) => crate::exit::INTERRUPTED,
        (false, Some(_)) => crate::exit::RELEASE_FAILED,
    };
    Err(Error::RunState { code })
}

/// Prints one view of a run (text or JSON).
fn show_status(common: &Common, snap: session::Snapshot, st: &RunState) {
    let st = st.clone();
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
                evaluation: s
                    .progress
                    .as_ref()
                    .filter(|_| id.starts_with("analysis/") || id.starts_with("pause/"))
                    .and_then(|p| serde_json::from_value(p.clone()).ok()),
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
        paused_at: st.paused_at,
        gate: st.gate.as_ref(),
        hold: st.hold,
        rollback_stopped: st
            .rollback_stopped
            .as_ref()
            .map(|(step, reason)| StoppedDoc { step, reason }),
        restored: st
            .restored
            .iter()
            .map(|(database, backup)| RestoredDoc { database, backup })
            .collect(),
        lock_holder: holder.clone(),
        torn_tail_bytes: torn,
        steps,
    };
    if common.mode == Mode::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("status serializes")
        );
    } else {
        print_status(&st, &doc, holder.as_ref(), torn);
    }
}

/// `cutover status RUN` as text.
fn print_status(
    st: &RunState,
    doc: &StatusDoc,
    holder: Option<&cutover_executor::store::Holder>,
    torn: Option<usize>,
) {
    let state_word = match (holder, st.outcome) {
        (Some(h), _) => format!("in progress: held by {h}"),
        (None, Some(Outcome::Paused) | None) if st.gate.is_some() => {
            "paused at a gate (`cutover promote` continues)".to_string()
        }
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
        match st.paused_at {
            Some(at) => {
                let ago = (chrono::Utc::now() - at).num_seconds().max(0);
                let ago = cutover_planner::duration::Duration::from_secs(ago as u64);
                let at = at.format("%Y-%m-%d %H:%M:%S UTC");
                println!("paused since {at} ({ago} ago): {r}");
            }
            None => println!("paused: {r}"),
        }
        if st.gate.is_some() {
            let run = &st.run_id;
            println!("next: `cutover promote {run}` continues, `cutover abort {run}` rolls back");
        }
    }
    if let Some(t) = &st.rollback {
        println!(
            "rollback{} under way or done",
            t.as_ref().map(|t| format!(" to {t}")).unwrap_or_default()
        );
    }
    for (database, backup) in &st.restored {
        println!("restored: database `{database}` from `{backup}`");
    }
    if let Some((step, reason)) = &st.rollback_stopped {
        println!("rollback stopped at `{step}`: {reason}");
    }
    if let Some(n) = torn {
        println!(
            "note: the log ends in a torn record ({n} bytes); the next resume or rollback cuts it \
             off"
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
        let seen = s
            .evaluation
            .as_ref()
            .and_then(|e| serde_json::to_value(e).ok())
            .and_then(|v| crate::progress::observation_text(&v));
        if let Some(seen) = seen {
            println!("  {:<width$}  last evaluation: {seen}", "");
        }
    }
}

/// `cutover log RUN`.
pub fn log(common: &Common, run: &str) -> Result<(), Error> {
    let store = Store::new(&common.state_dir);
    let contents = runtime()
        .block_on(session::read(&common.backend, &store, run))?
        .contents;
    if common.mode == Mode::Json {
        for r in &contents.records {
            println!("{}", r.to_flat_json());
        }
    } else {
        for line in crate::progress::replay(&contents.records) {
            println!("{line}");
        }
    }
    if let Some(t) = &contents.torn {
        eprintln!(
            "note: the log ends in a torn record ({} bytes), not shown",
            t.len()
        );
    }
    Ok(())
}

/// `cutover runs`.
pub fn runs(common: &Common) -> Result<(), Error> {
    let store = Store::new(&common.state_dir);
    let list = runtime().block_on(session::list(&common.backend, &store))?;
    if common.mode == Mode::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&list).expect("runs serialize")
        );
        return Ok(());
    }
    if list.is_empty() {
        eprintln!("no runs under {}", common.state_dir.join("runs").display());
    }
    for r in list {
        let started = r.started_at.map_or("-".to_string(), |t| {
            t.format("%Y-%m-%d %H:%M:%SZ").to_string()
        });
        let stopped = r
            .stopped_at
            .map(|s| format!("  at {s}"))
            .unwrap_or_default();
        let user = if r.user.is_empty() { "-" } else { &r.user };
        println!(
            "{}  {started}  {user:<10}  {:<20}  {}{}{stopped}",
            r.run_id,
            r.state,
            r.release,
            if r.dry_run { "  (dry run)" } else { "" }
        );
    }
    Ok(())
}
