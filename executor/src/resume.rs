//! The resume rules: what `cutover resume` (and a rollback, which meets the same leftovers)
//! does with a run that stopped, and with each of its steps, by where the log left it. The rules
//! are the pure functions here ([`runs_forward`], [`needs_fence`], [`before_probe`],
//! [`after_probe`]); [`resume`] checks a run can continue at all, and
//! [`Session::settle_in_doubt`] applies the rules to the steps in doubt, writing what it decides
//! to the log before anything runs.
//!
//! A run as a whole ([`resume`]): one that never got to its `run_started` event, or is being
//! rolled back, is refused; one whose every step succeeded has nothing to do; one whose spec or
//! migrations changed since it started is refused, naming the steps that changed.
//!
//! Each step, by where the log left it (the order of a rollback: [`crate::scheduler::compensation`];
//! a step that cannot be judged: `ExecError::InDoubt`, checked by hand, then `--retry`):
//!
//! | the log says | a resume | a rollback |
//! |---|---|---|
//! | pending | runs it | has nothing to undo |
//! | failed | runs it again (the next attempt) | has nothing to undo |
//! | succeeded | skips it | undoes it with its recorded undo data, newest first |
//! | started, no end (in doubt) | fences and settles it (below) first | fences and settles it first |
//! | compensating, compensation failed | refuses (being rolled back) | fences it, undoes it again |
//! | compensated | refuses (the run is being rolled back) | skips it |
//!
//! Settling a step in doubt: first [`crate::driver::Driver::fence`] makes sure nothing of the
//! dead executor's attempt still acts ([`needs_fence`]). Then ([`before_probe`]) a dry run's step
//! is described again (resume) or counted as not done (rollback: a described step did nothing),
//! and a step the operator named with `--retry` runs again; any other is probed
//! ([`crate::driver::Driver::probe`]), and ([`after_probe`]):
//!
//! | the probe says | a resume | a rollback |
//! |---|---|---|
//! | done | counts it succeeded, with the undo data the probe found | undoes it |
//! | not done | runs it again | has nothing to undo |
//! | partly done | runs it again; the step skips what is there | undoes it; the undo tolerates what is missing |
//! | cannot tell (no probe) | runs it again if idempotent, else refuses (`InDoubt`; then `--retry`) | refuses |
//!
//! Every decision is written to the log first (`step_probed`, or `step_failed` "interrupted
//! before its end was recorded; ..." for a step that runs again), so a resume interrupted while
//! settling continues from what it already decided.

use crate::driver::{Drivers, Probe};
use crate::error::{ExecError, StepFailure};
use crate::event::{Event, ProbeOutcome};
use crate::report::Reporter;
use crate::runner::{RunOptions, Session};
use crate::session::{Backend, attach, check_plan};
use crate::state::StepState;
use crate::store::Store;
use cutover_planner::dag::Step;
use serde_json::Value;
use std::path::PathBuf;

/// Whether a forward pass (apply's or resume's) runs a step that stands at `state`: a pending
/// one, and a failed one again. A succeeded one is skipped; one in doubt is settled before the
/// pass; one being undone belongs to a rollback.
pub fn runs_forward(state: StepState) -> bool {
    matches!(state, StepState::Pending | StepState::Failed)
}

/// Whether a step at `state` may still have a dead executor's attempt acting (it started, or
/// its undo started, and the end was not recorded), so it must be fenced before anything judges,
/// repeats or undoes it.
pub fn needs_fence(state: StepState) -> bool {
    matches!(state, StepState::Started | StepState::Compensating)
}

/// Who settles steps in doubt: a resume (which then runs what is not done) or a rollback
/// (which then undoes what is done).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `cutover resume`.
    Resume,
    /// `cutover rollback`, or the rollback a failure starts.
    Rollback,
}

/// How a step in doubt is settled.
#[derive(Debug, Clone, PartialEq)]
pub enum Settled {
    /// It runs again: recorded as failed, "interrupted before its end was recorded; {why}".
    RunAgain {
        /// Why, for the log.
        why: &'static str,
    },
    /// Recorded as probed with `outcome` (and, when done, the undo data the probe found).
    Probed {
        /// Done or not done.
        outcome: ProbeOutcome,
        /// Its undo data (`null` when not done).
        undo: Value,
        /// Part of its effect is in place: what happens next, for the operator.
        partial: Option<&'static str>,
    },
    /// Nobody can tell whether it took effect: the operator must check.
    InDoubt,
}

/// What settles a step in doubt before any probe: `Some` when it needs none (a dry run's step,
/// or one the operator checked and named with `--retry`); `None`: probe it.
pub fn before_probe(purpose: Purpose, dry_run: bool, retry: bool) -> Option<Settled> {
    match (purpose, dry_run) {
        (Purpose::Resume, true) => Some(Settled::RunAgain {
            why: "dry run: described again",
        }),
        (Purpose::Rollback, true) => Some(Settled::Probed {
            outcome: ProbeOutcome::NotDone,
            undo: Value::Null,
            partial: None,
        }),
        (Purpose::Resume, false) if retry => Some(Settled::RunAgain {
            why: "the operator checked it and asked for a retry",
        }),
        _ => None,
    }
}

/// How a step in doubt is settled by what its probe found (`None`: the driver cannot probe
/// it). A partial effect counts as done for a rollback (its undo takes back what is there) and
/// as not done for a resume (the step runs again and skips what is there).
pub fn after_probe(purpose: Purpose, probe: Option<Probe>, idempotent: bool) -> Settled {
    let probed = |outcome, undo, partial| Settled::Probed {
        outcome,
        undo,
        partial,
    };
    match (probe, purpose) {
        (Some(Probe::Done(undo)), _) => probed(ProbeOutcome::Done, undo, None),
        (Some(Probe::NotDone), _) => probed(ProbeOutcome::NotDone, Value::Null, None),
        (Some(Probe::Partial(_)), Purpose::Resume) => probed(
            ProbeOutcome::NotDone,
            Value::Null,
            Some("it runs again and skips what is done"),
        ),
        (Some(Probe::Partial(undo)), Purpose::Rollback) => probed(
            ProbeOutcome::Done,
            undo,
            Some("its undo takes back what is there"),
        ),
        (None, Purpose::Resume) if idempotent => Settled::RunAgain {
            why: "idempotent, so it runs again",
        },
        (None, _) => Settled::InDoubt,
    }
}

/// What [`resume`] found.
pub enum Resumable {
    /// Every step succeeded already: nothing to do. Holds the run id.
    Succeeded(String),
    /// The run can continue: attached (its lock held), checked, with the options to continue
    /// it with.
    Ready(Box<(Session, RunOptions)>),
}

/// Reopens `run` for `cutover resume` and checks that it can continue, before anything changes:
/// the run exists, its lock is free, its recorded plan is the one its log fingerprinted
/// ([`attach`]); it started, is not being rolled back, and has not succeeded already; its spec
/// is still where it recorded it and plans (read once) to the steps it started with
/// ([`check_plan`]); and this shell has the variables and programs the rest of it needs.
///
/// With [`Continue::Promote`], the run must wait at a gate ([`crate::event::Gate`];
/// `ExecError::NotAtGate` otherwise), and once every check passed the gate is released
/// (`promoted`, recorded in the log) before the caller runs the rest.
pub async fn resume(
    backend: &Backend,
    store: &Store,
    run: &str,
    jobs: usize,
    how: Continue,
    reporter: Box<dyn Reporter>,
) -> Result<Resumable, ExecError> {
    let command = match how {
        Continue::Resume => "resume",
        Continue::Promote { .. } => "promote",
    };
    let mut session = attach(backend, store, run, command, reporter).await?;
    let state = &session.state;
    let run = state.run_id.clone();
    if !state.started() {
        return Err(ExecError::NeverStarted { run });
    }
    if state.rollback.is_some() {
        return Err(ExecError::RollingBack { run });
    }
    if state.complete() {
        session.close().await;
        return Ok(Resumable::Succeeded(run));
    }
    // The spec and migrations must still be what the run started with.
    let spec = PathBuf::from(&state.spec_abs);
    if !spec.exists() && state.spec_abs.contains('\u{FFFD}') {
        // Recorded by a cutover that accepted a spec path that is not UTF-8: its real name is lost.
        let spec = state.spec_abs.clone();
        return Err(ExecError::SpecPathLost { run, spec });
    }
    let planned = cutover_planner::plan_file(&spec).map_err(|source| ExecError::Replan {
        run,
        spec,
        source,
    })?;
    check_plan(state, &planned.plan)?;
    let on_failure = planned.spec.release.on_failure;
    let opts = RunOptions::new(&session, state.spec_dir(), on_failure, jobs);
    session.environment_ready(&opts, true)?;
    if let Continue::Promote { full } = how {
        session.promote(full).await?;
    }
    Ok(Resumable::Ready(Box::new((session, opts))))
}

/// What continues a stopped run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Continue {
    /// `cutover resume`: where it stopped; a gate it waits at still holds.
    Resume,
    /// `cutover promote [--full]`: past the gate it waits at (with `full`, past every later
    /// pause and analysis too).
    Promote {
        /// `--full`.
        full: bool,
    },
}

impl Session {
    /// Releases the gate the run waits at (`promoted` in the log).
    pub(crate) async fn promote(&mut self, full: bool) -> Result<(), ExecError> {
        let Some(gate) = self.state.gate.clone() else {
            return Err(ExecError::not_at_gate(&self.state, false));
        };
        // The `promoted` event is the line the terminal shows (`promoted `step` by user`).
        let user = crate::session::user();
        self.emit(Event::Promoted { gate, full, user }).await?;
        Ok(())
    }
}

impl Session {
    /// Settles the steps a crash left in doubt before a resume runs anything: fences them, then
    /// probes them or marks them for a re-run, by [`before_probe`] and [`after_probe`]. `retry`
    /// lists steps the operator checked and wants run again.
    pub async fn settle_in_doubt(
        &mut self,
        drivers: &Drivers,
        opts: &RunOptions,
        retry: &[String],
    ) -> Result<(), ExecError> {
        self.settle(drivers, opts, Purpose::Resume, retry).await
    }

    /// Settles every step in doubt for `purpose`, once nothing of the dead executor's attempts
    /// is still acting; refuses (`ExecError::InDoubt`) at the first one nobody can judge.
    pub(crate) async fn settle(
        &mut self,
        drivers: &Drivers,
        opts: &RunOptions,
        purpose: Purpose,
        retry: &[String],
    ) -> Result<(), ExecError> {
        self.fence_unfinished(drivers, opts).await?;
        let in_doubt: Vec<String> = self
            .state
            .in_doubt()
            .into_iter()
            .map(String::from)
            .collect();
        for id in in_doubt {
            let step = self.planned(&id)?;
            let settled = match before_probe(purpose, self.state.dry_run, retry.contains(&id)) {
                Some(settled) => settled,
                None => {
                    let probe = self.probe(drivers, opts, &step).await?;
                    after_probe(purpose, probe, step.idempotent)
                }
            };
            self.record_settled(id, settled).await?;
        }
        Ok(())
    }

    /// Writes how step `id` was settled to the log.
    async fn record_settled(&mut self, id: String, settled: Settled) -> Result<(), ExecError> {
        match settled {
            Settled::RunAgain { why } => {
                self.emit(Event::StepFailed {
                    step: id,
                    error: format!("interrupted before its end was recorded; {why}"),
                })
                .await?;
            }
            Settled::Probed {
                outcome,
                undo,
                partial,
            } => {
                if let Some(next) = partial {
                    self.notice(&format!("{id}: part of its effect is in place; {next}"));
                }
                self.emit(Event::StepProbed {
                    step: id,
                    outcome,
                    undo,
                })
                .await?;
            }
            Settled::InDoubt => return Err(ExecError::InDoubt { step: id }),
        }
        Ok(())
    }

    /// Asks the driver of `step` whether its effect is in place; `None` when it cannot tell.
    async fn probe(
        &self,
        drivers: &Drivers,
        opts: &RunOptions,
        step: &Step,
    ) -> Result<Option<Probe>, ExecError> {
        let Some(driver) = drivers.get(step.kind()) else {
            return Ok(None);
        };
        driver
            .probe(step, opts.ctx.clone())
            .await
            .map_err(|e| ExecError::Probe {
                step: step.id.clone(),
                source: StepFailure::new(&e, &opts.ctx.redactor),
            })
    }

    /// Makes sure no earlier attempt of a step is still acting before anything judges or
    /// repeats it: for every step [`needs_fence`] names, the driver's
    /// [`crate::driver::Driver::fence`] kills what is left of the dead executor's processes or
    /// waits for its database statements to end.
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
            .filter(|(_, s)| needs_fence(s.state))
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_runs_pending_and_failed_steps_only() {
        use StepState::*;
        let runs: Vec<StepState> = StepState::ALL
            .into_iter()
            .filter(|s| runs_forward(*s))
            .collect();
        assert_eq!(runs, [Pending, Failed]);
        assert!(needs_fence(Started) && needs_fence(Compensating));
        assert!(!needs_fence(Failed) && !needs_fence(CompensationFailed));
    }

    #[test]
    fn a_dry_run_or_a_retry_needs_no_probe() {
        assert!(matches!(
            before_probe(Purpose::Resume, true, false),
            Some(Settled::RunAgain { why }) if why.starts_with("dry run")
        ));
        assert!(matches!(
            before_probe(Purpose::Resume, false, true),
            Some(Settled::RunAgain { why }) if why.contains("asked for a retry")
        ));
        assert_eq!(
            before_probe(Purpose::Rollback, true, false),
            Some(Settled::Probed {
                outcome: ProbeOutcome::NotDone,
                undo: Value::Null,
                partial: None
            })
        );
        assert_eq!(before_probe(Purpose::Resume, false, false), None);
        // `--retry` belongs to resume: a rollback probes.
        assert_eq!(before_probe(Purpose::Rollback, false, true), None);
    }

    #[test]
    fn a_partial_effect_runs_again_on_resume_and_is_undone_on_rollback() {
        let undo = serde_json::json!({"version": 3});
        let resume = after_probe(Purpose::Resume, Some(Probe::Partial(undo.clone())), false);
        assert!(matches!(
            resume,
            Settled::Probed {
                outcome: ProbeOutcome::NotDone,
                undo: Value::Null,
                partial: Some(_)
            }
        ));
        let rollback = after_probe(Purpose::Rollback, Some(Probe::Partial(undo.clone())), false);
        assert!(matches!(
            rollback,
            Settled::Probed { outcome: ProbeOutcome::Done, undo: u, partial: Some(_) } if u == undo
        ));
        for purpose in [Purpose::Resume, Purpose::Rollback] {
            assert!(matches!(
                after_probe(purpose, Some(Probe::Done(undo.clone())), false),
                Settled::Probed {
                    outcome: ProbeOutcome::Done,
                    partial: None,
                    ..
                }
            ));
        }
    }

    #[test]
    fn a_step_nobody_can_judge_runs_again_only_when_idempotent_and_resuming() {
        assert_eq!(
            after_probe(Purpose::Resume, None, true),
            Settled::RunAgain {
                why: "idempotent, so it runs again"
            }
        );
        assert_eq!(after_probe(Purpose::Resume, None, false), Settled::InDoubt);
        assert_eq!(after_probe(Purpose::Rollback, None, true), Settled::InDoubt);
    }
}
