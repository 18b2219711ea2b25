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

use crate::driver::{Done, Drivers, Probe, StepContext, StepError};
use crate::error::ExecError;
use crate::event::{Event, Outcome, ProbeOutcome, Record};
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
        // Every database connection of this process names the run (see `drivers::postgres`).
        if let Some(run) = dir.file_name() {
            crate::drivers::postgres::attach_run(&run.to_string_lossy());
        }
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
                    return Err(ExecError::State(format!(
                        "cannot make sure the earlier attempt of `{id}` has stopped: {}",
                        opts.ctx.redactor.redact(&e.message())
                    )));
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
            Some(d) => d.probe(step, opts.ctx.clone()).await.map_err(|e| {
                ExecError::State(format!(
                    "probing `{}` failed: {}",
                    step.id,
                    opts.ctx.redactor.redact(&e.message())
                ))
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
            let step = self.plan.step(&id).cloned().ok_or_else(|| {
                ExecError::State(format!("step `{id}` is in the log but not in the plan"))
            })?;
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
    /// starts; then, by `opts.on_failure`, the run rolls back or pauses. On the first SIGINT or
    /// SIGTERM no new step starts either: steps that only wait or watch ([`Driver::interruptible`],
    /// pauses and analysis gates) stop at once and stay in doubt for `resume`, the others finish;
    /// a second signal stops those too.
    ///
    /// [`Driver::interruptible`]: crate::driver::Driver::interruptible
    pub async fn forward(
        &mut self,
        drivers: &Drivers,
        opts: &RunOptions,
    ) -> Result<ForwardResult, ExecError> {
        if self.state.rollback.is_some() {
            return Err(ExecError::State(
                "this run is being rolled back; continue with `cutover rollback RUN`".into(),
            ));
        }
        let mut sigint =
            signal(SignalKind::interrupt()).map_err(|e| ExecError::io(&self.dir, e))?;
        let mut sigterm =
            signal(SignalKind::terminate()).map_err(|e| ExecError::io(&self.dir, e))?;
        // Dependency counting: a step is ready when its last unfinished dependency succeeds, so
        // each completion costs work proportional to its dependents, not to the plan's size.
        let order: Vec<Step> = self.plan.steps().cloned().collect();
        let index: HashMap<&str, usize> = order
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); order.len()];
        let mut waiting: Vec<usize> = vec![0; order.len()];
        for (i, step) in order.iter().enumerate() {
            for d in &step.depends_on {
                dependents[index[d.as_str()]].push(i);
                if self.state.steps[d].state != StepState::Succeeded {
                    waiting[i] += 1;
                }
            }
        }
        let runnable = |st: StepState| matches!(st, StepState::Pending | StepState::Failed);
        let mut ready: BTreeSet<usize> = (0..order.len())
            .filter(|i| waiting[*i] == 0 && runnable(self.state.steps[&order[*i].id].state))
            .collect();
        let mut running: BTreeSet<String> = BTreeSet::new();
        // `None`: an interruptible step stopped by the first signal (it stays in doubt).
        let mut tasks: JoinSet<(String, Option<Result<Done, StepError>>)> = JoinSet::new();
        // Running steps that only wait or watch, and the switch that stops them.
        let mut stoppable: BTreeSet<String> = BTreeSet::new();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut failed: Option<(String, String)> = None;
        // The first failure was an inconclusive gate: pause, whatever `on_failure` says.
        let mut inconclusive = false;
        let mut interrupted = 0u32;
        let (progress_tx, mut progress_rx) =
            tokio::sync::mpsc::unbounded_channel::<(String, Value)>();
        loop {
            while failed.is_none() && interrupted == 0 && running.len() < opts.jobs.max(1) {
                // Lowest index first: plan order among the ready steps.
                let Some(i) = ready.pop_first() else { break };
                let step = &order[i];
                let attempt = self.state.steps[&step.id].attempts + 1;
                self.emit(Event::StepStarted {
                    step: step.id.clone(),
                    attempt,
                })
                .await?;
                running.insert(step.id.clone());
                let id = step.id.clone();
                if self.state.dry_run {
                    let detail = format!("dry run: {}", step.description);
                    tasks.spawn(async move {
                        (
                            id,
                            Some(Ok(Done {
                                undo: Value::Null,
                                detail: Some(detail),
                            })),
                        )
                    });
                } else {
                    let driver = drivers
                        .get(step.kind())
                        .ok_or_else(|| ExecError::NoDriver {
                            kinds: vec![step.kind().as_str().into()],
                        })?;
                    let mut ctx = opts.ctx.clone();
                    ctx.progress = Some(crate::driver::Progress::new(
                        step.id.clone(),
                        progress_tx.clone(),
                    ));
                    ctx.resume_from = self.state.steps[&step.id].progress.clone();
                    ctx.attempt = attempt;
                    let fut = driver.run(step, ctx);
                    if driver.interruptible() {
                        stoppable.insert(id.clone());
                        let mut stop = stop_rx.clone();
                        tasks.spawn(async move {
                            tokio::select! {
                                r = fut => (id, Some(r)),
                                _ = stop.wait_for(|s| *s) => (id, None),
                            }
                        });
                    } else {
                        tasks.spawn(async move { (id, Some(fut.await)) });
                    }
                }
            }
            if running.is_empty() {
                break;
            }
            tokio::select! {
                // Progress first, so a step's last progress is in the log before its end.
                biased;
                Some((id, data)) = progress_rx.recv() => {
                    if running.contains(&id) {
                        self.emit(Event::StepProgress { step: id, data }).await?;
                    }
                }
                joined = tasks.join_next() => {
                    let Some(joined) = joined else { break };
                    let (id, result) = joined.map_err(|e| ExecError::State(format!("a step task panicked: {e}")))?;
                    running.remove(&id);
                    stoppable.remove(&id);
                    match result {
                        // Stopped by the signal: no end event, so a resume probes it.
                        None => {}
                        Some(Ok(done)) => {
                            self.crash_point(&id);
                            self.emit(Event::StepSucceeded { step: id.clone(), undo: done.undo, detail: done.detail }).await?;
                            for &j in &dependents[index[id.as_str()]] {
                                waiting[j] -= 1;
                                if waiting[j] == 0 && runnable(self.state.steps[&order[j].id].state) {
                                    ready.insert(j);
                                }
                            }
                        }
                        Some(Err(e)) => {
                            let error = opts.ctx.redactor.redact(&e.message());
                            self.emit(Event::StepFailed { step: id.clone(), error: error.clone() }).await?;
                            if failed.is_none() {
                                inconclusive = e.is_inconclusive();
                            }
                            failed.get_or_insert((id, error));
                        }
                    }
                }
                _ = sigint.recv() => interrupted += 1,
                _ = sigterm.recv() => interrupted += 1,
            }
            if interrupted == 1 && !running.is_empty() {
                // Pauses and gates stop now; steps with effects finish.
                let _ = stop_tx.send(true);
                let effectful = running.len() - stoppable.len();
                if effectful > 0 {
                    self.notice(&format!("interrupted: waiting for {effectful} running step(s) to finish (signal again to stop them now; the run stays resumable)"));
                }
                interrupted = 2;
            } else if interrupted > 2 {
                // Second signal: stop now. The steps stay "started" in the log, and a resume
                // probes them.
                tasks.abort_all();
                self.notice("stopped; the interrupted steps will be checked by `cutover resume`");
                self.emit(Event::RunFinished {
                    outcome: Outcome::Interrupted,
                })
                .await?;
                return Ok(ForwardResult {
                    outcome: Outcome::Interrupted,
                    failed,
                    stopped_at: None,
                });
            }
        }
        if interrupted > 0 {
            self.emit(Event::RunFinished {
                outcome: Outcome::Interrupted,
            })
            .await?;
            return Ok(ForwardResult {
                outcome: Outcome::Interrupted,
                failed,
                stopped_at: None,
            });
        }
        if let Some((step, error)) = failed {
            let reason = format!("step `{step}` failed: {error}");
            let on_failure = if inconclusive {
                OnFailure::Pause
            } else {
                opts.on_failure
            };
            return match on_failure {
                OnFailure::Pause => {
                    self.emit(Event::Paused { reason }).await?;
                    self.emit(Event::RunFinished {
                        outcome: Outcome::Paused,
                    })
                    .await?;
                    Ok(ForwardResult {
                        outcome: Outcome::Paused,
                        failed: Some((step, error)),
                        stopped_at: None,
                    })
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
            };
        }
        if !self.state.complete() {
            let left: Vec<&str> = order
                .iter()
                .filter(|s| self.state.steps[&s.id].state != StepState::Succeeded)
                .map(|s| s.id.as_str())
                .take(5)
                .collect();
            return Err(ExecError::State(format!(
                "no step can start, but some are not done: {}",
                left.join(", ")
            )));
        }
        self.emit(Event::RunFinished {
            outcome: Outcome::Succeeded,
        })
        .await?;
        Ok(ForwardResult {
            outcome: Outcome::Succeeded,
            failed: None,
            stopped_at: None,
        })
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
            return Err(ExecError::State(format!(
                "`--to {t}`: that step has not succeeded in this run, so there is nothing to roll back to"
            )));
        }
        match &self.state.rollback {
            Some(existing) if *existing != target && target.is_some() => {
                return Err(ExecError::State(format!(
                    "a rollback to {} is already under way; finish it first",
                    existing.as_deref().unwrap_or("the start")
                )));
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

    async fn compensate(
        &mut self,
        drivers: &Drivers,
        opts: &RunOptions,
        target: Option<String>,
    ) -> Result<ForwardResult, ExecError> {
        // A step in doubt may or may not have had its effect: find out before undoing anything,
        // once nothing of the dead executor's attempt is still acting.
        self.fence_unfinished(drivers, opts).await?;
        for id in self
            .state
            .in_doubt()
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
        {
            let step = self
                .plan
                .step(&id)
                .cloned()
                .ok_or_else(|| ExecError::State(format!("step `{id}` is not in the plan")))?;
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
        // Databases put back to their backup by this rollback: their remaining migration and
        // backfill steps are undone by the restore itself.
        let mut restored: Vec<String> = Vec::new();
        for id in rollback_order(&self.state, target.as_deref()) {
            let step = self
                .plan
                .step(&id)
                .cloned()
                .ok_or_else(|| ExecError::State(format!("step `{id}` is not in the plan")))?;
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
            if !step.reversible && opts.restore_backup && step.kind() == StepKind::Migrate {
                let db = step
                    .database()
                    .expect("migrate steps name their database")
                    .to_string();
                let backup = self
                    .state
                    .completed
                    .iter()
                    .find(|b| {
                        self.plan.step(b).is_some_and(|s| {
                            s.kind() == StepKind::Backup && s.database() == Some(db.as_str())
                        }) && self.state.steps[*b]
                            .undo
                            .as_ref()
                            .is_some_and(|u| !u.is_null())
                    })
                    .cloned();
                let Some(backup) = backup else {
                    let why = format!(
                        "`{id}` cannot be undone and no backup of `{db}` was taken in this run"
                    );
                    self.notice(&format!("rollback stops: {why}"));
                    self.emit(Event::RunFinished {
                        outcome: Outcome::RollbackStopped,
                    })
                    .await?;
                    return Ok(ForwardResult {
                        outcome: Outcome::RollbackStopped,
                        failed: None,
                        stopped_at: Some((id, why)),
                    });
                };
                let backup_step = self
                    .plan
                    .step(&backup)
                    .cloned()
                    .expect("completed steps are in the plan");
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
                match result {
                    Ok(detail) => {
                        self.notice(&format!("{id}: restored database `{db}` from its pre-release backup ({detail}); writes made since the backup are gone"));
                        self.crash_point(&id);
                        self.emit(Event::CompensationSucceeded { step: id }).await?;
                        restored.push(db);
                        continue;
                    }
                    Err(e) => {
                        let error = opts.ctx.redactor.redact(&e.message());
                        self.emit(Event::CompensationFailed {
                            step: id.clone(),
                            error: error.clone(),
                        })
                        .await?;
                        self.emit(Event::RunFinished {
                            outcome: Outcome::RollbackStopped,
                        })
                        .await?;
                        return Ok(ForwardResult {
                            outcome: Outcome::RollbackStopped,
                            failed: None,
                            stopped_at: Some((id, error)),
                        });
                    }
                }
            }
            if !step.reversible {
                let why = format!("`{id}` cannot be undone: {}", step.undo);
                self.notice(&format!("rollback stops at the pivot {why}"));
                self.emit(Event::RunFinished {
                    outcome: Outcome::RollbackStopped,
                })
                .await?;
                return Ok(ForwardResult {
                    outcome: Outcome::RollbackStopped,
                    failed: None,
                    stopped_at: Some((id, why)),
                });
            }
            let undo = self.state.steps[&id].undo.clone().unwrap_or(Value::Null);
            self.emit(Event::CompensationStarted { step: id.clone() })
                .await?;
            let result = if self.state.dry_run {
                Ok(())
            } else {
                match drivers.get(step.kind()) {
                    Some(d) => d.undo(&step, undo, opts.ctx.clone()).await,
                    None => Err(StepError::NoDriver {
                        kind: step.kind().as_str(),
                    }),
                }
            };
            match result {
                Ok(()) => {
                    self.crash_point(&id);
                    self.emit(Event::CompensationSucceeded { step: id }).await?;
                }
                Err(e) => {
                    let error = opts.ctx.redactor.redact(&e.message());
                    self.emit(Event::CompensationFailed {
                        step: id.clone(),
                        error: error.clone(),
                    })
                    .await?;
                    self.emit(Event::RunFinished {
                        outcome: Outcome::RollbackStopped,
                    })
                    .await?;
                    return Ok(ForwardResult {
                        outcome: Outcome::RollbackStopped,
                        failed: None,
                        stopped_at: Some((id, error)),
                    });
                }
            }
        }
        self.emit(Event::RunFinished {
            outcome: Outcome::RolledBack,
        })
        .await?;
        Ok(ForwardResult {
            outcome: Outcome::RolledBack,
            failed: None,
            stopped_at: None,
        })
    }
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
