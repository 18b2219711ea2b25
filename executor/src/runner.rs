//! The runner: [`Session`] is one executor process attached to one run; [`Session::forward`]
//! drives the DAG, [`Session::rollback`] undoes it.
//!
//! ```text
//!            ┌──────────── coordinator (owns the log and the state) ────────────┐
//!  ready ──► │ append step_started (fsync) ──► spawn driver.run ──► join result │
//!  steps     │ append step_succeeded{undo} / step_failed (fsync)  ◄─────────────┘
//!            └──────────────────────────────────────────────────────────────────┘
//! ```
//!
//! Only the coordinator writes events, so the log has one writer and the state one mutator (as in
//! cargo's job queue); drivers run concurrently up to `jobs`. An event is durable before the effect
//! it announces starts, so after a crash every step is pending, succeeded, failed, or *started*
//! (in doubt): a resume probes those, re-runs idempotent ones, and stops for the operator
//! otherwise. A rollback compensates succeeded steps in reverse completion order with their
//! recorded undo data and stops at a pivot.

use crate::driver::{AnyDriver, Done, Drivers, Probe, StepContext, StepError};
use crate::error::{ExecError, StepFailure};
use crate::event::{Event, Outcome, ProbeOutcome, Record};
use crate::redact::Redactor;
use crate::report::Reporter;
use crate::sink::Sink;
use crate::state::{RunState, StepState};
use cutover_planner::dag::{Plan, Step, StepKind};
use cutover_planner::spec::OnFailure;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinSet;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Steps running at once, at most.
    pub jobs: usize,
    /// What to do when a step fails.
    pub on_failure: OnFailure,
    /// Passed to drivers.
    pub ctx: StepContext,
    /// A rollback that meets an irreversible migration restores that database's backup from
    /// this run instead of stopping (losing writes made since the backup).
    pub restore_backup: bool,
}

impl RunOptions {
    /// Options for `session`'s run: relative paths resolve in `spec_dir`, and what drivers
    /// report is redacted of the plan's secrets ([`Redactor::for_plan`]).
    pub fn new(session: &Session, spec_dir: PathBuf, on_failure: OnFailure, jobs: usize) -> Self {
        RunOptions {
            jobs,
            on_failure,
            ctx: StepContext::new(
                session.dir.clone(),
                spec_dir,
                std::sync::Arc::new(Redactor::for_plan(&session.plan)),
            ),
            restore_backup: false,
        }
    }
}

/// One executor attached to one run: holds its lock and is the only writer of its log.
pub struct Session {
    /// Run directory.
    pub dir: PathBuf,
    /// The steps.
    pub plan: Plan,
    /// The run as the log tells it.
    pub state: RunState,
    sink: Sink,
    reporter: Box<dyn Reporter>,
    /// `CUTOVER_CRASH_AFTER_EFFECT`: abort after this step's effect, before its end event.
    crash_after_effect: Option<String>,
}

/// The result of [`Session::forward`].
#[derive(Debug, Clone, PartialEq)]
pub struct ForwardResult {
    /// How the invocation ended.
    pub outcome: Outcome,
    /// The step that failed, with its error, if one did.
    pub failed: Option<(String, String)>,
    /// Where a rollback stopped, with why.
    pub stopped_at: Option<(String, String)>,
}

impl Session {
    /// Attaches to a run whose lock is held and whose log is open.
    pub fn new(
        dir: PathBuf,
        plan: Plan,
        state: RunState,
        sink: Sink,
        reporter: Box<dyn Reporter>,
    ) -> Self {
        let crash_after_effect = std::env::var("CUTOVER_CRASH_AFTER_EFFECT")
            .ok()
            .filter(|s| !s.is_empty());
        Session {
            dir,
            plan,
            state,
            sink,
            reporter,
            crash_after_effect,
        }
    }

    /// Appends `event` (durably), applies it to the state and reports it.
    pub async fn emit(&mut self, event: Event) -> Result<Record, ExecError> {
        let record = self.sink.append(event).await?;
        self.state
            .apply(&record)
            .map_err(|source| ExecError::Replay {
                path: PathBuf::from(self.sink.describe()),
                source,
            })?;
        self.reporter.event(&record);
        Ok(record)
    }

    /// Where this session's events go.
    pub fn log_location(&self) -> String {
        self.sink.describe()
    }

    /// Ends the session cleanly (releases a PostgreSQL lock at once rather than at disconnect).
    pub async fn close(self) {
        if let Sink::Postgres(run) = self.sink {
            run.close().await;
        }
    }

    /// Tells the operator something.
    pub fn notice(&self, text: &str) {
        self.reporter.notice(text);
    }

    fn crash_point(&self, step: &str) {
        if self.crash_after_effect.as_deref() == Some(step) {
            eprintln!("cutover: CUTOVER_CRASH_AFTER_EFFECT={step} reached; aborting");
            std::process::abort();
        }
    }

    /// Kinds in the plan that have no driver (nothing is checked for a dry run).
    pub fn missing_drivers(&self, drivers: &Drivers) -> Vec<String> {
        let kinds: BTreeSet<StepKind> = self.plan.steps().map(|s| s.kind()).collect();
        kinds
            .into_iter()
            .filter(|k| drivers.get(*k).is_none())
            .map(|k| k.as_str().to_string())
            .collect()
    }

    /// Makes sure no earlier attempt of a step is still acting before anything judges or
    /// repeats it: for every step in doubt (started, end not recorded) or half-compensated, the
    /// driver's [`crate::driver::Driver::fence`] kills what is left of the dead executor's
    /// processes or waits for its database statements to end.
    async fn fence_unfinished(
        &mut self,
        drivers: &Drivers,
        opts: &RunOptions,
    ) -> Result<(), ExecError> {
        if self.state.dry_run {
            return Ok(());
        }
        let unfinished: Vec<String> = self
            .state
            .steps
            .iter()
            .filter(|(_, s)| matches!(s.state, StepState::Started | StepState::Compensating))
            .map(|(id, _)| id.clone())
            .collect();
        for id in unfinished {
            let Some(step) = self.plan.step(&id).cloned() else {
                continue;
            };
            let Some(driver) = drivers.get(step.kind()) else {
                continue;
            };
            // What the attempt recorded about itself (a command's process group) helps find it.
            let mut ctx = opts.ctx.clone();
            ctx.resume_from = self.state.steps[&id].progress.clone();
            match driver.fence(&step, ctx).await {
                Ok(Some(line)) => self.notice(&format!("{id}: {line}")),
                Ok(None) => {}
                Err(e) => {
                    return Err(ExecError::Fence {
                        step: id,
                        source: StepFailure::new(&e, &opts.ctx.redactor),
                    });
                }
            }
        }
        Ok(())
    }

    /// Asks the driver whether an in-doubt step took effect and records the answer as a
    /// `step_probed` event; false when the step cannot be probed. A partial effect counts as
    /// done for a rollback (`for_rollback`: its undo takes back what is there) and as not done
    /// for a resume (the step runs again and skips what is there).
    async fn record_probe(
        &mut self,
        drivers: &Drivers,
        opts: &RunOptions,
        step: &Step,
        for_rollback: bool,
    ) -> Result<bool, ExecError> {
        let probe = match drivers.get(step.kind()) {
            Some(d) => d
                .probe(step, opts.ctx.clone())
                .await
                .map_err(|e| ExecError::Probe {
                    step: step.id.clone(),
                    source: StepFailure::new(&e, &opts.ctx.redactor),
                })?,
            None => None,
        };
        let (outcome, undo) = match probe {
            Some(Probe::Done(undo)) => (ProbeOutcome::Done, undo),
            Some(Probe::NotDone) => (ProbeOutcome::NotDone, Value::Null),
            Some(Probe::Partial(undo)) => {
                let next = if for_rollback {
                    "its undo takes back what is there"
                } else {
                    "it runs again and skips what is done"
                };
                self.notice(&format!(
                    "{}: part of its effect is in place; {next}",
                    step.id
                ));
                if for_rollback {
                    (ProbeOutcome::Done, undo)
                } else {
                    (ProbeOutcome::NotDone, Value::Null)
                }
            }
            None => return Ok(false),
        };
        self.emit(Event::StepProbed {
            step: step.id.clone(),
            outcome,
            undo,
        })
        .await?;
        Ok(true)
    }

    /// Resolves steps left in doubt by a crash: probes them, or marks idempotent ones for a re-run.
    /// `retry` lists steps the operator checked and wants run again.
    pub async fn settle_in_doubt(
        &mut self,
        drivers: &Drivers,
        opts: &RunOptions,
        retry: &[String],
    ) -> Result<(), ExecError> {
        self.fence_unfinished(drivers, opts).await?;
        for id in self
            .state
            .in_doubt()
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
        {
            let step = self.planned(&id)?;
            if self.state.dry_run || retry.contains(&id) {
                let why = if self.state.dry_run {
                    "dry run: described again"
                } else {
                    "the operator checked it and asked for a retry"
                };
                self.emit(Event::StepFailed {
                    step: id.clone(),
                    error: format!("interrupted before its end was recorded; {why}"),
                })
                .await?;
                continue;
            }
            if self.record_probe(drivers, opts, &step, false).await? {
                continue;
            }
            if !step.idempotent {
                return Err(ExecError::InDoubt { step: id });
            }
            self.emit(Event::StepFailed {
                step: id.clone(),
                error: "interrupted before its end was recorded; idempotent, so it runs again"
                    .into(),
            })
            .await?;
        }
        Ok(())
    }

    /// Runs every step that is not done yet, in dependency order. On a failure no new step
    /// starts; then, by `opts.on_failure`, the run rolls back or pauses (an inconclusive step
    /// pauses it whatever `on_failure` says). On the first SIGINT or SIGTERM no new step starts
    /// either: steps that only wait or watch ([`Driver::interruptible`], pauses and analysis
    /// gates) stop at once and stay in doubt for `resume`, the others finish; a second signal
    /// stops those too. Every way it ends is recorded as a `run_finished` event.
    ///
    /// [`Driver::interruptible`]: crate::driver::Driver::interruptible
    pub async fn forward(
        &mut self,
        drivers: &Drivers,
        opts: &RunOptions,
    ) -> Result<ForwardResult, ExecError> {
        if self.state.rollback.is_some() {
            return Err(ExecError::RollingBack {
                run: self.state.run_id.clone(),
            });
        }
        self.refuse_missing_drivers(drivers).await?;
        let mut sigint =
            signal(SignalKind::interrupt()).map_err(|e| ExecError::io(&self.dir, e))?;
        let mut sigterm =
            signal(SignalKind::terminate()).map_err(|e| ExecError::io(&self.dir, e))?;
        let (progress_tx, mut progress_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut q = Queue::new(&self.plan, &self.state, progress_tx);
        loop {
            self.start_ready(&mut q, drivers, opts).await?;
            if q.running.is_empty() {
                break;
            }
            tokio::select! {
                // Progress first, so a step's last progress is in the log before its end.
                biased;
                Some((step, data)) = progress_rx.recv() => {
                    if q.running.contains(&step) {
                        self.emit(Event::StepProgress { step, data }).await?;
                    }
                }
                joined = q.tasks.join_next() => {
                    let Some(joined) = joined else { break };
                    let (id, result) = joined.map_err(|source| ExecError::Panicked { source })?;
                    self.step_ended(&mut q, id, result, opts).await?;
                }
                _ = sigint.recv() => q.interrupted += 1,
                _ = sigterm.recv() => q.interrupted += 1,
            }
            if self.on_interrupt(&mut q).await? {
                return self.finish_interrupted(q.failed).await;
            }
        }
        if q.interrupted > 0 {
            return self.finish_interrupted(q.failed).await;
        }
        match q.failed.take() {
            Some(failed) => {
                self.after_failure(drivers, opts, failed, q.inconclusive)
                    .await
            }
            None => self.finish_complete(&q.order).await,
        }
    }

    /// Refuses a real run whose plan has step kinds this build cannot run, before any step
    /// starts; the run records why (`run_finished`, failed).
    async fn refuse_missing_drivers(&mut self, drivers: &Drivers) -> Result<(), ExecError> {
        if self.state.dry_run {
            return Ok(());
        }
        let kinds = self.missing_drivers(drivers);
        if kinds.is_empty() {
            return Ok(());
        }
        self.emit(Event::RunFinished {
            outcome: Outcome::Failed,
        })
        .await?;
        Err(ExecError::NoDriver { kinds })
    }

    /// Starts ready steps, in plan order, up to `jobs` at once; none once a step failed or a
    /// signal came.
    async fn start_ready(
        &mut self,
        q: &mut Queue,
        drivers: &Drivers,
        opts: &RunOptions,
    ) -> Result<(), ExecError> {
        while q.failed.is_none() && q.interrupted == 0 && q.running.len() < opts.jobs.max(1) {
            // Lowest index first: plan order among the ready steps.
            let Some(i) = q.ready.pop_first() else { break };
            let (id, kind) = (q.order[i].id.clone(), q.order[i].kind());
            let attempt = self.state.steps[&id].attempts + 1;
            self.emit(Event::StepStarted {
                step: id.clone(),
                attempt,
            })
            .await?;
            q.running.insert(id.clone());
            if self.state.dry_run {
                let detail = format!("dry run: {}", q.order[i].description);
                q.tasks.spawn(async move {
                    let done = Done {
                        undo: Value::Null,
                        detail: Some(detail),
                    };
                    (id, Some(Ok(done)))
                });
                continue;
            }
            let driver = drivers.get(kind).ok_or_else(|| ExecError::NoDriver {
                kinds: vec![kind.as_str().into()],
            })?;
            let mut ctx = opts.ctx.clone();
            ctx.progress = Some(crate::driver::Progress::new(
                id.clone(),
                q.progress_tx.clone(),
            ));
            ctx.resume_from = self.state.steps[&id].progress.clone();
            ctx.attempt = attempt;
            q.spawn(i, driver.as_ref(), ctx);
        }
        Ok(())
    }

    /// Records how a step's task ended: success (its dependents may become ready), failure (no
    /// new step starts), or stopped by the first signal (no end event: a resume probes it).
    async fn step_ended(
        &mut self,
        q: &mut Queue,
        id: String,
        result: Option<Result<Done, StepError>>,
        opts: &RunOptions,
    ) -> Result<(), ExecError> {
        q.running.remove(&id);
        q.stoppable.remove(&id);
        match result {
            None => {}
            Some(Ok(done)) => {
                self.crash_point(&id);
                self.emit(Event::StepSucceeded {
                    step: id.clone(),
                    undo: done.undo,
                    detail: done.detail,
                })
                .await?;
                q.succeeded(&id, &self.state);
            }
            Some(Err(e)) => {
                let error = StepFailure::new(&e, &opts.ctx.redactor)
                    .as_str()
                    .to_string();
                self.emit(Event::StepFailed {
                    step: id.clone(),
                    error: error.clone(),
                })
                .await?;
                if q.failed.is_none() {
                    q.inconclusive = e.is_inconclusive();
                }
                q.failed.get_or_insert((id, error));
            }
        }
        Ok(())
    }

    /// After a signal: the first stops the steps that only wait or watch and lets the others
    /// finish; a second stops those too. True when the forward pass must end now.
    async fn on_interrupt(&mut self, q: &mut Queue) -> Result<bool, ExecError> {
        if q.interrupted == 1 && !q.running.is_empty() {
            // Pauses and gates stop now; steps with effects finish.
            let _ = q.stop_tx.send(true);
            let effectful = q.running.len() - q.stoppable.len();
            if effectful > 0 {
                self.notice(&format!("interrupted: waiting for {effectful} running step(s) to finish (signal again to stop them now; the run stays resumable)"));
            }
            q.interrupted = 2;
        } else if q.interrupted > 2 {
            // Second signal: stop now. The steps stay "started" in the log, and a resume
            // probes them.
            q.tasks.abort_all();
            self.notice("stopped; the interrupted steps will be checked by `cutover resume`");
            return Ok(true);
        }
        Ok(false)
    }

    /// Ends the run as interrupted (resumable).
    async fn finish_interrupted(
        &mut self,
        failed: Option<(String, String)>,
    ) -> Result<ForwardResult, ExecError> {
        self.finish(Outcome::Interrupted, failed, None).await
    }

    /// Records `run_finished` with `outcome`, and returns it with the failed step and where a
    /// rollback stopped.
    async fn finish(
        &mut self,
        outcome: Outcome,
        failed: Option<(String, String)>,
        stopped_at: Option<(String, String)>,
    ) -> Result<ForwardResult, ExecError> {
        self.emit(Event::RunFinished { outcome }).await?;
        Ok(ForwardResult {
            outcome,
            failed,
            stopped_at,
        })
    }

    /// A step failed: pause (by policy, or because it could not decide) or roll back.
    async fn after_failure(
        &mut self,
        drivers: &Drivers,
        opts: &RunOptions,
        (step, error): (String, String),
        inconclusive: bool,
    ) -> Result<ForwardResult, ExecError> {
        let reason = format!("step `{step}` failed: {error}");
        let on_failure = if inconclusive {
            OnFailure::Pause
        } else {
            opts.on_failure
        };
        match on_failure {
            OnFailure::Pause => {
                self.emit(Event::Paused { reason }).await?;
                self.finish(Outcome::Paused, Some((step, error)), None)
                    .await
            }
            OnFailure::Rollback => {
                self.emit(Event::RollbackStarted {
                    target: None,
                    reason,
                })
                .await?;
                let r = self.compensate(drivers, opts, None).await?;
                Ok(ForwardResult {
                    outcome: r.outcome,
                    failed: Some((step, error)),
                    stopped_at: r.stopped_at,
                })
            }
        }
    }

    /// Nothing failed and nothing runs: the run succeeded, unless steps are left that can never
    /// start.
    async fn finish_complete(&mut self, order: &[Step]) -> Result<ForwardResult, ExecError> {
        if !self.state.complete() {
            let left = order
                .iter()
                .filter(|s| self.state.steps[&s.id].state != StepState::Succeeded)
                .map(|s| s.id.clone())
                .take(5)
                .collect();
            return Err(ExecError::Stuck { left });
        }
        self.finish(Outcome::Succeeded, None, None).await
    }

    /// Starts (or continues) a rollback to `target`.
    pub async fn rollback(
        &mut self,
        drivers: &Drivers,
        opts: &RunOptions,
        target: Option<String>,
        reason: &str,
    ) -> Result<ForwardResult, ExecError> {
        if let Some(t) = &target
            && !self.state.completed.contains(t)
        {
            return Err(ExecError::NotSucceeded { target: t.clone() });
        }
        match &self.state.rollback {
            Some(existing) if *existing != target && target.is_some() => {
                return Err(ExecError::RollbackUnderWay {
                    under_way: existing.clone(),
                });
            }
            Some(_) => {}
            None => {
                self.emit(Event::RollbackStarted {
                    target: target.clone(),
                    reason: reason.into(),
                })
                .await?;
            }
        }
        let target = self.state.rollback.clone().flatten();
        self.compensate(drivers, opts, target).await
    }

    /// The step `id` of the recorded plan.
    fn planned(&self, id: &str) -> Result<Step, ExecError> {
        self.plan
            .step(id)
            .cloned()
            .ok_or_else(|| ExecError::UnknownStep { step: id.into() })
    }

    /// Undoes the succeeded steps newest first, down to `target`; stops at a pivot (unless
    /// `restore_backup` restores the database instead) or at an undo that fails.
    async fn compensate(
        &mut self,
        drivers: &Drivers,
        opts: &RunOptions,
        target: Option<String>,
    ) -> Result<ForwardResult, ExecError> {
        self.settle_for_rollback(drivers, opts).await?;
        // Databases put back to their backup by this rollback: their remaining migration and
        // backfill steps are undone by the restore itself.
        let mut restored: Vec<String> = Vec::new();
        for id in rollback_order(&self.state, target.as_deref()) {
            let step = self.planned(&id)?;
            if let Some(db) = step
                .database()
                .filter(|db| restored.iter().any(|r| r == db))
                && matches!(step.kind(), StepKind::Migrate | StepKind::Backfill)
            {
                self.emit(Event::CompensationStarted { step: id.clone() })
                    .await?;
                self.notice(&format!("{id}: undone by the restore of `{db}`"));
                self.emit(Event::CompensationSucceeded { step: id }).await?;
                continue;
            }
            let undone =
                if !step.reversible && opts.restore_backup && step.kind() == StepKind::Migrate {
                    self.restore_database(drivers, opts, &step, &mut restored)
                        .await?
                } else if !step.reversible {
                    let why = format!("`{id}` cannot be undone: {}", step.undo);
                    self.notice(&format!("rollback stops at the pivot {why}"));
                    Err((id, why))
                } else {
                    self.undo_step(drivers, opts, &step).await?
                };
            if let Err(stopped_at) = undone {
                return self
                    .finish(Outcome::RollbackStopped, None, Some(stopped_at))
                    .await;
            }
        }
        self.finish(Outcome::RolledBack, None, None).await
    }

    /// A step in doubt may or may not have had its effect: find out before undoing anything,
    /// once nothing of the dead executor's attempt is still acting.
    async fn settle_for_rollback(
        &mut self,
        drivers: &Drivers,
        opts: &RunOptions,
    ) -> Result<(), ExecError> {
        self.fence_unfinished(drivers, opts).await?;
        for id in self
            .state
            .in_doubt()
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
        {
            let step = self.planned(&id)?;
            if self.state.dry_run {
                // A described step did nothing: there is nothing to undo.
                self.emit(Event::StepProbed {
                    step: id,
                    outcome: ProbeOutcome::NotDone,
                    undo: Value::Null,
                })
                .await?;
            } else if !self.record_probe(drivers, opts, &step, true).await? {
                return Err(ExecError::InDoubt { step: id });
            }
        }
        Ok(())
    }

    /// Undoes one step with its recorded undo data. `Ok(Err((step, why)))`: the undo failed
    /// (recorded), and the rollback stops there.
    async fn undo_step(
        &mut self,
        drivers: &Drivers,
        opts: &RunOptions,
        step: &Step,
    ) -> Result<Result<(), (String, String)>, ExecError> {
        let id = step.id.clone();
        let undo = self.state.steps[&id].undo.clone().unwrap_or(Value::Null);
        self.emit(Event::CompensationStarted { step: id.clone() })
            .await?;
        let result = if self.state.dry_run {
            Ok(())
        } else {
            match drivers.get(step.kind()) {
                Some(d) => d.undo(step, undo, opts.ctx.clone()).await,
                None => Err(StepError::NoDriver {
                    kind: step.kind().as_str(),
                }),
            }
        };
        self.compensated(id, result.map(|()| None), opts).await
    }

    /// Past an irreversible migration, with `--restore-backup`: restores its database from the
    /// backup this run took. `Ok(Err((step, why)))`: no backup, or the restore failed; the
    /// rollback stops there.
    async fn restore_database(
        &mut self,
        drivers: &Drivers,
        opts: &RunOptions,
        step: &Step,
        restored: &mut Vec<String>,
    ) -> Result<Result<(), (String, String)>, ExecError> {
        let id = step.id.clone();
        let db = step
            .database()
            .expect("migrate steps name their database")
            .to_string();
        let Some(backup) = self.backup_of(&db) else {
            let why =
                format!("`{id}` cannot be undone and no backup of `{db}` was taken in this run");
            self.notice(&format!("rollback stops: {why}"));
            return Ok(Err((id, why)));
        };
        let backup_step = self.planned(&backup)?;
        let undo = self.state.steps[&backup]
            .undo
            .clone()
            .unwrap_or(Value::Null);
        self.emit(Event::CompensationStarted { step: id.clone() })
            .await?;
        let result = if self.state.dry_run {
            Ok(format!("dry run: would restore {backup}"))
        } else {
            match drivers.get(StepKind::Backup) {
                Some(d) => d.restore(&backup_step, undo, opts.ctx.clone()).await,
                None => Err(StepError::NoDriver { kind: "backup" }),
            }
        };
        let note = result.map(|detail| Some(format!("{id}: restored database `{db}` from its pre-release backup ({detail}); writes made since the backup are gone")));
        let done = self.compensated(id, note, opts).await?;
        if done.is_ok() {
            restored.push(db);
        }
        Ok(done)
    }

    /// The backup step of this run that succeeded for database `db`, with undo data (its dump).
    fn backup_of(&self, db: &str) -> Option<String> {
        self.state
            .completed
            .iter()
            .find(|b| {
                self.plan
                    .step(b)
                    .is_some_and(|s| s.kind() == StepKind::Backup && s.database() == Some(db))
                    && self.state.steps[*b]
                        .undo
                        .as_ref()
                        .is_some_and(|u| !u.is_null())
            })
            .cloned()
    }

    /// Records how the compensation of `id` ended (`Ok(note)`: done, with a line for the
    /// operator). `Ok(Err((step, why)))` when it failed, which stops the rollback.
    async fn compensated(
        &mut self,
        id: String,
        result: Result<Option<String>, StepError>,
        opts: &RunOptions,
    ) -> Result<Result<(), (String, String)>, ExecError> {
        match result {
            Ok(note) => {
                if let Some(note) = note {
                    self.notice(&note);
                }
                self.crash_point(&id);
                self.emit(Event::CompensationSucceeded { step: id }).await?;
                Ok(Ok(()))
            }
            Err(e) => {
                let error = StepFailure::new(&e, &opts.ctx.redactor)
                    .as_str()
                    .to_string();
                self.emit(Event::CompensationFailed {
                    step: id.clone(),
                    error: error.clone(),
                })
                .await?;
                Ok(Err((id, error)))
            }
        }
    }
}

/// The state of one [`Session::forward`] pass, which only the coordinator touches: which steps
/// wait for which, which are ready and running, what failed, how many signals came.
struct Queue {
    /// The plan's steps, in plan order.
    order: Vec<Step>,
    /// Each step's index in `order`.
    index: HashMap<String, usize>,
    /// Steps depending on each step.
    dependents: Vec<Vec<usize>>,
    /// Unfinished dependencies of each step: a step is ready when its count reaches zero, so
    /// each completion costs work proportional to its dependents, not to the plan's size.
    waiting: Vec<usize>,
    ready: BTreeSet<usize>,
    running: BTreeSet<String>,
    /// `None`: an interruptible step stopped by the first signal (it stays in doubt).
    tasks: JoinSet<(String, Option<Result<Done, StepError>>)>,
    /// Running steps that only wait or watch, and the switch that stops them.
    stoppable: BTreeSet<String>,
    stop_tx: tokio::sync::watch::Sender<bool>,
    progress_tx: tokio::sync::mpsc::UnboundedSender<(String, Value)>,
    /// The first step that failed, with its (redacted) error.
    failed: Option<(String, String)>,
    /// The first failure was an inconclusive result: pause, whatever `on_failure` says.
    inconclusive: bool,
    interrupted: u32,
}

impl Queue {
    fn new(
        plan: &Plan,
        state: &RunState,
        progress_tx: tokio::sync::mpsc::UnboundedSender<(String, Value)>,
    ) -> Self {
        let order: Vec<Step> = plan.steps().cloned().collect();
        let index: HashMap<String, usize> = order
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i))
            .collect();
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); order.len()];
        let mut waiting: Vec<usize> = vec![0; order.len()];
        for (i, step) in order.iter().enumerate() {
            for d in &step.depends_on {
                dependents[index[d.as_str()]].push(i);
                if state.steps[d].state != StepState::Succeeded {
                    waiting[i] += 1;
                }
            }
        }
        let ready = (0..order.len())
            .filter(|i| waiting[*i] == 0 && runnable(state.steps[&order[*i].id].state))
            .collect();
        Queue {
            order,
            index,
            dependents,
            waiting,
            ready,
            running: BTreeSet::new(),
            tasks: JoinSet::new(),
            stoppable: BTreeSet::new(),
            stop_tx: tokio::sync::watch::channel(false).0,
            progress_tx,
            failed: None,
            inconclusive: false,
            interrupted: 0,
        }
    }

    /// Runs step `i` with `driver` as a task; an interruptible one stops at the first signal.
    fn spawn(&mut self, i: usize, driver: &dyn AnyDriver, ctx: StepContext) {
        let step = &self.order[i];
        let (id, fut) = (step.id.clone(), driver.run(step, ctx));
        if driver.interruptible() {
            self.stoppable.insert(id.clone());
            let mut stop = self.stop_tx.subscribe();
            self.tasks.spawn(async move {
                tokio::select! {
                    r = fut => (id, Some(r)),
                    _ = stop.wait_for(|s| *s) => (id, None),
                }
            });
        } else {
            self.tasks.spawn(async move { (id, Some(fut.await)) });
        }
    }

    /// `id` succeeded: its dependents whose last dependency it was become ready.
    fn succeeded(&mut self, id: &str, state: &RunState) {
        for &j in &self.dependents[self.index[id]] {
            self.waiting[j] -= 1;
            if self.waiting[j] == 0 && runnable(state.steps[&self.order[j].id].state) {
                self.ready.insert(j);
            }
        }
    }
}

fn runnable(st: StepState) -> bool {
    matches!(st, StepState::Pending | StepState::Failed)
}

/// Steps a rollback to `target` would undo, newest first: those that succeeded after `target`
/// (or at all) and are not undone yet. `rollback` and `rollback --dry-run` both use this.
pub fn rollback_order(state: &RunState, target: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    for id in state.completed.iter().rev() {
        if Some(id.as_str()) == target {
            break;
        }
        if matches!(
            state.steps[id].state,
            StepState::Succeeded | StepState::Compensating | StepState::CompensationFailed
        ) {
            out.push(id.clone());
        }
    }
    out
}
