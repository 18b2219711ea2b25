//! The runner: [`Session`] is one executor process attached to one run, the only writer of its
//! log. [`Session::forward`] drives the DAG (`forward.rs`), [`Session::rollback`] undoes it
//! (`rollback.rs`); what either decides is [`crate::scheduler`]'s, and how a resume or rollback
//! settles the steps a crash left in doubt is [`crate::resume`]'s.
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

mod forward;
mod rollback;
pub use rollback::check_rollback_target;
#[cfg(test)]
mod tests;

use crate::driver::{Drivers, StepContext};
use crate::error::ExecError;
use crate::event::{Event, Outcome, Record};
use crate::redact::Redactor;
use crate::report::Reporter;
use crate::sink::Sink;
use crate::state::RunState;
use cutover_planner::dag::{Plan, Step, StepKind};
use cutover_planner::spec::OnFailure;
use std::collections::BTreeSet;
use std::path::PathBuf;

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
            ctx: StepContext {
                run: crate::driver::RunInfo {
                    run_id: session.state.run_id.clone(),
                    release: session.state.release.clone(),
                    dry_run: session.state.dry_run,
                },
                ..StepContext::new(
                    session.dir.clone(),
                    spec_dir,
                    std::sync::Arc::new(Redactor::for_plan(&session.plan)),
                )
            },
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

    /// `CUTOVER_CRASH_AFTER_EFFECT`: aborts here when `step` is the one named.
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

    /// The step `id` of the recorded plan.
    pub(crate) fn planned(&self, id: &str) -> Result<Step, ExecError> {
        self.plan
            .step(id)
            .cloned()
            .ok_or_else(|| ExecError::UnknownStep { step: id.into() })
    }
}
