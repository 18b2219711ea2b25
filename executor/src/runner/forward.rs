//! The forward pass, [`Session::forward`]: a `select!` loop that turns what happens into
//! [`Input`]s (a step reported progress, a step's task ended, a stop was asked for), tells the
//! [`Scheduler`], and carries out what it decides: it writes the events, spawns the steps'
//! tasks ([`Tasks`]), stops them, and at the end pauses, rolls back or finishes the run.

use super::{ForwardResult, RunOptions, Session};
use crate::driver::{AnyDriver, Done, Drivers, Progress, StepContext, StepError};
use crate::error::{ExecError, StepFailure};
use crate::event::{Event, Outcome};
use crate::scheduler::{Ended, Failure, Interrupt, Scheduler, Verdict};
use cutover_planner::dag::{Step, StepKind};
use serde_json::Value;
use std::path::Path;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

/// How a step's task ends: its driver's result, or `None` when a stop request ended it first
/// (an interruptible step; it stays in doubt).
type TaskEnd = (String, Option<Result<Done, StepError>>);

/// What the loop waits for, turned into one value.
enum Input {
    /// A running step reported progress.
    Progress {
        step: String,
        data: Value,
        amount: Option<crate::event::Amount>,
    },
    /// A step's task ended.
    Ended {
        step: String,
        result: Option<Result<Done, StepError>>,
    },
    /// SIGINT or SIGTERM (or a test's request).
    Stop,
}

/// Where requests to stop come from: SIGINT and SIGTERM, or in tests a channel (a signal would
/// reach every test of the process).
pub(crate) enum Stops {
    /// SIGINT and SIGTERM.
    Signals,
    /// Each message is one request.
    #[cfg(test)]
    Channel(mpsc::UnboundedReceiver<()>),
}

/// [`Stops`], listening.
enum Listening {
    Signals {
        int: Signal,
        term: Signal,
    },
    #[cfg(test)]
    Channel(mpsc::UnboundedReceiver<()>),
}

impl Stops {
    fn listen(self, dir: &Path) -> Result<Listening, ExecError> {
        match self {
            Stops::Signals => Ok(Listening::Signals {
                int: signal(SignalKind::interrupt()).map_err(|e| ExecError::io(dir, e))?,
                term: signal(SignalKind::terminate()).map_err(|e| ExecError::io(dir, e))?,
            }),
            #[cfg(test)]
            Stops::Channel(rx) => Ok(Listening::Channel(rx)),
        }
    }
}

impl Listening {
    /// The next stop request.
    async fn recv(&mut self) {
        match self {
            Listening::Signals { int, term } => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            #[cfg(test)]
            Listening::Channel(rx) => {
                if rx.recv().await.is_none() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

/// The running steps' tasks, and the switch that stops the ones that only wait or watch.
struct Tasks {
    set: JoinSet<TaskEnd>,
    stop_tx: watch::Sender<bool>,
    progress_tx: mpsc::UnboundedSender<crate::driver::Reported>,
}

impl Tasks {
    fn new(progress_tx: mpsc::UnboundedSender<crate::driver::Reported>) -> Self {
        Tasks {
            set: JoinSet::new(),
            stop_tx: watch::channel(false).0,
            progress_tx,
        }
    }

    /// Runs `step` with `driver` as a task; an interruptible one (returns true) stops at the
    /// first stop request.
    fn spawn(&mut self, step: &Step, driver: &dyn AnyDriver, ctx: StepContext) -> bool {
        let (id, fut) = (step.id.clone(), driver.run(step, ctx));
        if !driver.interruptible() {
            self.set.spawn(async move { (id, Some(fut.await)) });
            return false;
        }
        let mut stop = self.stop_tx.subscribe();
        self.set.spawn(async move {
            tokio::select! {
                r = fut => (id, Some(r)),
                _ = stop.wait_for(|s| *s) => (id, None),
            }
        });
        true
    }

    /// A dry run's step: described, at once.
    fn describe(&mut self, id: String, detail: String) {
        self.set.spawn(async move {
            let done = Done {
                undo: Value::Null,
                detail: Some(detail),
            };
            (id, Some(Ok(done)))
        });
    }

    /// Stops the steps that only wait or watch.
    fn stop_watching(&self) {
        let _ = self.stop_tx.send(true);
    }
}

impl Session {
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
        self.forward_until(drivers, opts, Stops::Signals).await
    }

    /// [`Session::forward`], stopped by what `stops` delivers.
    pub(crate) async fn forward_until(
        &mut self,
        drivers: &Drivers,
        opts: &RunOptions,
        stops: Stops,
    ) -> Result<ForwardResult, ExecError> {
        if self.state.rollback.is_some() {
            return Err(ExecError::RollingBack {
                run: self.state.run_id.clone(),
            });
        }
        self.refuse_missing_drivers(drivers).await?;
        let mut stops = stops.listen(&self.dir)?;
        let (progress_tx, mut progress_rx) = mpsc::unbounded_channel();
        let mut tasks = Tasks::new(progress_tx);
        let mut sched = Scheduler::new(&self.plan, &self.state, opts.jobs, opts.on_failure);
        loop {
            self.start_ready(&mut sched, &mut tasks, drivers, opts)
                .await?;
            if !sched.has_running() {
                break;
            }
            let input = tokio::select! {
                // Progress first, so a step's last progress is in the log before its end.
                biased;
                Some((step, data, amount)) = progress_rx.recv() => {
                    Input::Progress { step, data, amount }
                }
                joined = tasks.set.join_next() => {
                    let Some(joined) = joined else { break };
                    let (step, result) = joined.map_err(|source| ExecError::Panicked { source })?;
                    Input::Ended { step, result }
                }
                () = stops.recv() => Input::Stop,
            };
            if let Some(stopped) = self.take(input, &mut sched, &mut tasks, opts).await? {
                return Ok(stopped);
            }
        }
        self.conclude(sched.verdict(), drivers, opts).await
    }

    /// Carries out what `input` means; `Some` when the pass ends now (a second stop request).
    async fn take(
        &mut self,
        input: Input,
        sched: &mut Scheduler,
        tasks: &mut Tasks,
        opts: &RunOptions,
    ) -> Result<Option<ForwardResult>, ExecError> {
        match input {
            Input::Progress { step, data, amount } => {
                if sched.is_running(&step) {
                    self.emit(Event::StepProgress { step, data, amount })
                        .await?;
                }
            }
            Input::Ended { step, result } => self.step_ended(sched, step, result, opts).await?,
            Input::Stop => match sched.stop_requested() {
                Interrupt::StopWatching { effectful } => {
                    // Pauses and gates stop now; steps with effects finish.
                    tasks.stop_watching();
                    if effectful > 0 {
                        self.notice(&format!(
                            "interrupted: waiting for {effectful} running step(s) to finish (signal \
                             again to stop them now; the run stays resumable)"
                        ));
                    }
                }
                Interrupt::StopAll => {
                    // The steps stay "started" in the log, and a resume probes them.
                    tasks.set.abort_all();
                    self.notice(
                        "stopped; the interrupted steps will be checked by `cutover resume`",
                    );
                    let failed = sched.failed().cloned();
                    return Ok(Some(self.finish(Outcome::Interrupted, failed, None).await?));
                }
            },
        }
        Ok(None)
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

    /// Starts the steps the scheduler lets start: records each start, then spawns its driver
    /// (a dry run only describes it).
    async fn start_ready(
        &mut self,
        sched: &mut Scheduler,
        tasks: &mut Tasks,
        drivers: &Drivers,
        opts: &RunOptions,
    ) -> Result<(), ExecError> {
        while let Some(i) = sched.next_start() {
            let step = sched.step(i);
            let (id, kind) = (step.id.clone(), step.kind());
            let attempt = self.state.steps[&id].attempts + 1;
            self.emit(Event::StepStarted {
                step: id.clone(),
                attempt,
            })
            .await?;
            // A dry run describes every step but preflight, which only reads: it checks the
            // world for real (variables, databases, history, images, router), so a dry run that
            // passes means the real run can start.
            if self.state.dry_run && kind != StepKind::Preflight {
                tasks.describe(id, format!("dry run: {}", step.description));
                continue;
            }
            if sched.skipped(i) {
                tasks.describe(id, "skipped: promoted with --full".into());
                continue;
            }
            let driver = drivers.get(kind).ok_or_else(|| ExecError::NoDriver {
                kinds: vec![kind.as_str().into()],
            })?;
            let mut ctx = opts.ctx.clone();
            ctx.progress = Some(Progress::new(id.clone(), tasks.progress_tx.clone()));
            ctx.resume_from = self.state.steps[&id].progress.clone();
            ctx.attempt = attempt;
            if tasks.spawn(step, driver.as_ref(), ctx) {
                sched.watching(&id);
            }
        }
        Ok(())
    }

    /// Records how a step's task ended: success (its dependents may become ready), failure (no
    /// new step starts), or stopped by the first signal (no end event: a resume probes it).
    async fn step_ended(
        &mut self,
        sched: &mut Scheduler,
        id: String,
        result: Option<Result<Done, StepError>>,
        opts: &RunOptions,
    ) -> Result<(), ExecError> {
        let ended = match result {
            None => Ended::Stopped,
            Some(Ok(done)) => {
                self.crash_point(&id);
                self.emit(Event::StepSucceeded {
                    step: id.clone(),
                    undo: done.undo,
                    detail: done.detail,
                })
                .await?;
                Ended::Succeeded
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
                Ended::Failed {
                    error,
                    inconclusive: e.is_inconclusive(),
                }
            }
        };
        sched.ended(&id, ended);
        Ok(())
    }

    /// Ends the pass as the scheduler's `verdict` says, once nothing runs.
    async fn conclude(
        &mut self,
        verdict: Verdict,
        drivers: &Drivers,
        opts: &RunOptions,
    ) -> Result<ForwardResult, ExecError> {
        match verdict {
            Verdict::Interrupted { failed } => {
                self.finish(Outcome::Interrupted, failed, None).await
            }
            Verdict::Complete => self.finish_complete().await,
            Verdict::Fail { failed } => self.finish(Outcome::Failed, Some(failed), None).await,
            Verdict::Pause { failed } => {
                let reason = failure_reason(&failed);
                self.emit(Event::Paused { reason, gate: None }).await?;
                self.finish(Outcome::Paused, Some(failed), None).await
            }
            Verdict::AwaitPromotion { gate } => {
                let reason = gate.reason();
                self.emit(Event::Paused {
                    reason,
                    gate: Some(gate),
                })
                .await?;
                self.finish(Outcome::Paused, None, None).await
            }
            Verdict::RollBack { failed } => {
                let reason = failure_reason(&failed);
                self.emit(Event::RollbackStarted {
                    target: None,
                    reason,
                })
                .await?;
                let r = self.compensate(drivers, opts, None).await?;
                Ok(ForwardResult {
                    outcome: r.outcome,
                    failed: Some(failed),
                    stopped_at: r.stopped_at,
                })
            }
        }
    }

    /// Nothing failed and nothing runs: the run succeeded, unless steps are left that can never
    /// start.
    async fn finish_complete(&mut self) -> Result<ForwardResult, ExecError> {
        if !self.state.complete() {
            let left = self
                .plan
                .steps()
                .filter(|s| self.state.steps[&s.id].state != crate::state::StepState::Succeeded)
                .map(|s| s.id.clone())
                .take(5)
                .collect();
            return Err(ExecError::Stuck { left });
        }
        self.finish(Outcome::Succeeded, None, None).await
    }
}

/// Why a run pauses or rolls back after `failed`.
fn failure_reason((step, error): &Failure) -> String {
    format!("step `{step}` failed: {error}")
}
